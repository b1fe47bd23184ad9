/*
 * sflow.c — sFlow samples from the PMDs to the control thread, without upcalls.
 *
 * A PMD that samples a frame for sFlow (a userspace action with DPS_UPCALL_SFLOW, see
 * include/dpdkswitch.h) copies its first DPS_SFLOW_HEADER_MAX bytes and the few fields a flow
 * sample needs into its own single-producer, single-consumer ring (struct dps_sflow_ring,
 * datapath.h) and keeps forwarding the frame: no mbuf is held, no upcall slot taken, nothing
 * shared with other PMDs is written.  The control thread drains every ring in one call and
 * encodes the records as sFlow v5 flow samples (XDR), so the slow path handles a few hundred
 * bytes per sample instead of an upcall each.  Also the geometric draw of the sampling
 * countdowns (pmd.c's sample_due).
 *
 * Threads: dps_sflow_record and dps_sample_skip run on a PMD (or the control thread in
 * deterministic mode, on the manual poller's ring); the rest on the control thread.  Cost:
 * a record is a copy of up to DPS_SFLOW_HEADER_MAX bytes and two atomics; a draw, a log().
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_byteorder.h>
#include <rte_mbuf.h>

#include "datapath.h"

struct dps_sflow_ring *
dps_sflow_ring_new(void)
{
    /* 4.6 MB, never touched while sFlow is off (the allocator maps it lazily; only HEAD and
     * TAIL are written here). */
    void *r = NULL;
    if (posix_memalign(&r, RTE_CACHE_LINE_SIZE, sizeof(struct dps_sflow_ring)) != 0)
        return NULL;
    struct dps_sflow_ring *ring = r;
    ring->head = ring->tail = 0;
    return ring;
}

void
dps_sflow_ring_free(struct dps_sflow_ring *r)
{
    free(r);
}

void
dps_sflow_record(struct dps_pmd *pmd, const struct rte_mbuf *m, uint32_t in_port, uint64_t cookie)
{
    struct dps_sflow_ring *r = pmd->sflow;
    uint64_t head = r->head;
    uint64_t tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
    if (head - tail >= DPS_SFLOW_RING) {
        pmd->stats->sflow_lost++;
        return;
    }
    struct dps_sflow_rec *rec = &r->rec[head & (DPS_SFLOW_RING - 1)];
    uint32_t len = rte_pktmbuf_pkt_len(m);
    uint32_t n = RTE_MIN(len, (uint32_t)DPS_SFLOW_HEADER_MAX);
    const void *p = rte_pktmbuf_read(m, 0, n, rec->header);
    if (p && p != rec->header)
        memcpy(rec->header, p, n);
    rec->in_port = in_port;
    rec->frame_len = len;
    rec->cookie = cookie;
    rec->header_len = p ? n : 0;
    __atomic_store_n(&r->head, head + 1, __ATOMIC_RELEASE);
    pmd->stats->sflow_samples++;
    struct dps_dp *dp = pmd->dp;
    if (head + 1 - tail >= DPS_SFLOW_WAKE && __atomic_load_n(&dp->upcall_waiting, __ATOMIC_ACQUIRE)
        && __atomic_exchange_n(&dp->upcall_waiting, 0, __ATOMIC_ACQ_REL)) {
        uint64_t one = 1;
        ssize_t w = write(dp->upcall_efd, &one, sizeof one);
        (void)w;
    }
}

static inline uint64_t
splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t
dps_sample_skip(uint64_t *rng, uint32_t prob)
{
    if (prob == UINT32_MAX)
        return 1;
    /* The executor samples when a 32-bit draw is <= PROB: p = (PROB + 1) / 2^32.  The trials
     * up to and including the first success: 1 + floor(ln U / ln(1 - p)), U uniform in (0, 1]. */
    double p = ((double)prob + 1.0) / 4294967296.0;
    double u = ((double)(splitmix64(rng) >> 11) + 1.0) / 9007199254740992.0;
    double k = floor(log(u) / log1p(-p));
    return k >= 1e18 ? (uint64_t)1e18 : (uint64_t)k + 1;
}

/* ---- The control thread's side ---- */

unsigned
dps_sflow_waiting(const struct dps_dp *dp)
{
    uint64_t n = 0;
    for (unsigned i = 0; i <= DPS_MAX_PMDS; i++) {
        const struct dps_pmd *pmd = dp->pmds[i];
        if (pmd && pmd->sflow)
            n += __atomic_load_n(&pmd->sflow->head, __ATOMIC_ACQUIRE) - pmd->sflow->tail;
    }
    return (unsigned)n;
}

static inline uint8_t *
put32(uint8_t *p, uint32_t v)
{
    v = rte_cpu_to_be_32(v);
    memcpy(p, &v, 4);
    return p + 4;
}

/* One record as agent A's flow sample at P (room checked by the caller); returns its end. */
static uint8_t *
encode(uint8_t *p, const struct dps_sflow_rec *rec, struct dps_sflow_agent *a, uint32_t in_if)
{
    uint32_t hlen = RTE_MIN(rec->header_len, a->header);
    uint32_t hpad = (hlen + 3) & ~3u;
    uint32_t raw_len = 16 + hpad, switch_len = 16;
    uint32_t body_len = 32 + 8 + switch_len + 8 + raw_len;
    uint32_t vlan = 0, prio = 0;
    if (rec->header_len >= 18) {
        uint16_t tpid = (uint16_t)(rec->header[12] << 8 | rec->header[13]);
        if (tpid == 0x8100 || tpid == 0x88a8) {
            uint16_t tci = (uint16_t)(rec->header[14] << 8 | rec->header[15]);
            vlan = tci & 0xfff;
            prio = tci >> 13;
        }
    }
    a->seq++;
    a->pool += a->rate;
    p = put32(p, 1);                       /* flow sample */
    p = put32(p, body_len);
    p = put32(p, a->seq);
    p = put32(p, a->source);
    p = put32(p, a->rate);
    p = put32(p, a->pool);
    p = put32(p, a->drops);
    p = put32(p, in_if);
    p = put32(p, (uint32_t)rec->cookie);   /* output: the cookie's low 32 bits */
    p = put32(p, 2);                       /* records */
    p = put32(p, 1001);                    /* extended switch */
    p = put32(p, switch_len);
    p = put32(p, vlan);
    p = put32(p, prio);
    p = put32(p, vlan);
    p = put32(p, prio);
    p = put32(p, 1);                       /* raw packet header */
    p = put32(p, raw_len);
    p = put32(p, 1);                       /* header protocol: Ethernet */
    p = put32(p, rec->frame_len + 4);      /* with the FCS the NIC stripped, as Open vSwitch */
    p = put32(p, 4);                       /* stripped */
    p = put32(p, hlen);
    memcpy(p, rec->header, hlen);
    memset(p + hlen, 0, hpad - hlen);
    return p + hpad;
}

int
dps_sflow_drain(struct dps_dp *dp, const uint32_t *port_agent, const uint32_t *port_ifindex,
                struct dps_sflow_agent *agents, unsigned n_agents, uint8_t *out, uint32_t cap,
                uint32_t *agent_of, uint32_t *lens, unsigned max)
{
    unsigned got = 0;
    uint32_t used = 0;
    for (unsigned i = 0; i <= DPS_MAX_PMDS && got < max; i++) {
        struct dps_pmd *pmd = dp->pmds[i];
        if (!pmd || !pmd->sflow)
            continue;
        struct dps_sflow_ring *r = pmd->sflow;
        uint64_t head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE), tail = r->tail;
        for (; tail != head && got < max; tail++) {
            const struct dps_sflow_rec *rec = &r->rec[tail & (DPS_SFLOW_RING - 1)];
            uint32_t port = rec->in_port < DPS_MAX_PORTS ? rec->in_port : 0;
            uint32_t ai = port_agent[port];
            if (ai >= n_agents)
                continue;                  /* no agent on that port (any more): dropped */
            uint32_t hlen = RTE_MIN(rec->header_len, agents[ai].header);
            uint32_t need = 8 + 32 + 8 + 16 + 8 + 16 + ((hlen + 3) & ~3u);
            if (cap - used < need)
                break;
            uint8_t *end = encode(out + used, rec, &agents[ai], port_ifindex[port]);
            agent_of[got] = ai;
            lens[got] = (uint32_t)(end - (out + used));
            used += lens[got];
            got++;
        }
        __atomic_store_n(&r->tail, tail, __ATOMIC_RELEASE);
        if (tail != head && got < max)
            break;                         /* OUT is full */
    }
    return (int)got;
}
