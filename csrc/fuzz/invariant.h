/*
 * invariant.h — the fuzz targets' invariants: CHECK(name, cond[, detail]) aborts with the
 * input's bytes in hex, so libFuzzer keeps the input as a finding, unless NAME is listed in the
 * target's ignore variable (comma-separated names, read once by fuzz_invariants_init).
 *
 * Header-only, for the libFuzzer targets in this folder (each is one binary, one thread);
 * a target defines FUZZ_TARGET ("fuzz_parse") before including it and tells it the current
 * input with fuzz_invariants_input() before each run.  Cost: nothing until a check fails.
 */
#ifndef DPS_FUZZ_INVARIANT_H
#define DPS_FUZZ_INVARIANT_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *fuzz_ignored;
static const uint8_t *fuzz_input;
static size_t fuzz_input_len;

static inline void
fuzz_invariants_init(const char *ignore_var)
{
    fuzz_ignored = getenv(ignore_var);
}

static inline void
fuzz_invariants_input(const uint8_t *data, size_t size)
{
    fuzz_input = data;
    fuzz_input_len = size;
}

static inline int
fuzz_is_ignored(const char *name)
{
    if (!fuzz_ignored)
        return 0;
    size_t n = strlen(name);
    for (const char *p = fuzz_ignored; (p = strstr(p, name)) != NULL; p += n)
        if ((p == fuzz_ignored || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

/* The optional third argument of CHECK: the macro always passes a trailing NULL. */
static inline const char *
fuzz_detail(const char *unused, ...)
{
    va_list ap;
    va_start(ap, unused);
    const char *d = va_arg(ap, const char *);
    va_end(ap);
    return d;
}

static void
fuzz_violated(const char *name, const char *expr, int line, const char *detail)
{
    if (fuzz_is_ignored(name))
        return;
    fprintf(stderr, "\n" FUZZ_TARGET ": invariant '%s' violated: %s (" FUZZ_TARGET ".c:%d)%s%s\ninput (%zu bytes): ",
            name, expr, line, detail ? ": " : "", detail ? detail : "", fuzz_input_len);
    for (size_t i = 0; i < fuzz_input_len; i++)
        fprintf(stderr, "%02x", fuzz_input[i]);
    fprintf(stderr, "\n");
    abort();
}

#define CHECK(name, cond, ...)                                                               \
    do {                                                                                     \
        if (!(cond))                                                                         \
            fuzz_violated(name, #cond, __LINE__, fuzz_detail(NULL, ##__VA_ARGS__, NULL));    \
    } while (0)

#endif
