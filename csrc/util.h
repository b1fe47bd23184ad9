/*
 * util.h — helpers any C file of csrc/ may use, none of them tied to a datapath: the calling
 * thread's last error, unaligned reads and writes of frame bytes, and one's-complement checksum
 * arithmetic (folding a 32-bit sum's carries into 16 bits, as RFC 1071 does; RFC 1624
 * incremental updates).  No full sum over a buffer: the datapath never computes one, every
 * rewrite updates the checksum it touches incrementally.
 *
 * Contract: any thread; nothing here keeps shared state (the last error is per thread).  All
 * but dps_error (util.c) are inline and cost a few instructions: a checksum update costs two
 * adds per 16-bit word changed and a fold.  Frame bytes are read and written with memcpy, so a
 * header at any address is fine (no aligned-pointer casts).
 */
#ifndef DPS_UTIL_H
#define DPS_UTIL_H 1

#include <stdint.h>
#include <string.h>

/* Set the thread's last error (printf-style; dps_last_error() reads it) and return -err
 * (err > 0).  Costs a vsnprintf: for errors, never per packet. */
int dps_error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- Frame bytes at any alignment ---- */

/* The 16 bits at P as they are (network order stays network order). */
static inline uint16_t
dps_get16(const void *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static inline void
dps_put16(void *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

/* The big-endian 16 bits at P, in host order. */
static inline uint16_t
dps_get_be16(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)(b[0] << 8 | b[1]);
}

/* ---- One's-complement checksums ---- */

static inline uint16_t
dps_csum_fold(uint32_t s)
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}

/* RFC 1624 (eqn. 3): the checksum at CSUM (2 bytes, as in the frame) after NBYTES (even) of the
 * data it covers went from OLD to NEW, all as raw 16-bit words. */
static inline void
dps_csum_replace(void *csum, const void *old, const void *new, unsigned nbytes)
{
    uint32_t s = (uint16_t)~dps_get16(csum);
    const uint8_t *o = old, *w = new;
    for (unsigned i = 0; i < nbytes; i += 2) {
        s += (uint16_t)~dps_get16(o + i);
        s += dps_get16(w + i);
    }
    dps_put16(csum, (uint16_t)~dps_csum_fold(s));
}

#endif /* DPS_UTIL_H */
