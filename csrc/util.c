/*
 * util.c — the calling thread's last error (see util.h).  Any thread: each has its own.
 */
#include <stdarg.h>
#include <stdio.h>

#include "dpdkswitch.h"
#include "util.h"

static __thread char last_error[512];

int
dps_error(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return -err;
}

const char *
dps_last_error(void)
{
    return last_error;
}
