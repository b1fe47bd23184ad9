/*
 * sflow.c — sFlow samples from the PMDs to the control thread, without upcalls.
 *
 * A PMD that samples a frame for sFlow (a userspace action with DPS_UPCALL_SFLOW, see
 * include/dpdkswitch.h) copies its first DPS_SFLOW_HEADER_MAX bytes and the few fields a flow
 * sample needs into its own single-producer, single-consumer ring (struct dps_sflow_ring,
 * datapath.h) and keeps forwarding the frame: no mbuf is held, no upcall slot taken, nothing
 * shared with other PMDs is written.  The control thread drains every ring in one call
 * (dps_sflow_export), encodes the records as sFlow v5 flow samples (XDR) into each agent's
 * datagram, and sends the datagrams it filled in batches (sendmmsg): the slow path makes one
 * call per drain, not one per sample or datagram.  Also the geometric draw of the sampling
 * countdowns (pmd.c's sample_due).
 *
 * Threads: dps_sflow_record and dps_sample_skip run on a PMD (or the control thread in
 * deterministic mode, on the manual poller's ring); the rest on the control thread (the
 * datagram batch is a thread-local buffer, filled and sent within one call).  Cost: a record
 * is a copy of up to DPS_SFLOW_HEADER_MAX bytes and two atomics; a draw, a log(); a drained
 * sample a few hundred cycles; a batch of up to 64 datagrams, one sendmmsg per socket.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE                        /* sendmmsg */
#endif
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

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

/* ---- Datagrams: built here, sent in batches ---- */

#define BATCH_DATAGRAMS 64
#define BATCH_MSGS 64
#define DATAGRAM_HEAD_MAX 40               /* version, address type, IPv6 address, sub id, seq, uptime, count */

/* Datagrams closed but not sent yet, and one message per datagram and target. */
struct out_batch {
    unsigned n_dg, n_msg;
    uint32_t dg_len[BATCH_DATAGRAMS];
    struct mmsghdr msg[BATCH_MSGS];
    struct iovec iov[BATCH_MSGS];
    struct sockaddr_in6 to[BATCH_MSGS];
    struct dps_sflow_agent *agent[BATCH_MSGS];
    int fd[BATCH_MSGS];
    uint8_t dg[BATCH_DATAGRAMS][DATAGRAM_HEAD_MAX + DPS_SFLOW_PENDING];
};

static __thread struct out_batch batch;   /* control thread: filled and sent within one call */

static inline uint8_t *
put32(uint8_t *p, uint32_t v)
{
    v = rte_cpu_to_be_32(v);
    memcpy(p, &v, 4);
    return p + 4;
}

static inline uint32_t
addr_len(const struct dps_sflow_agent *a)
{
    return a->addr_type == 2 ? 16 : 4;
}

/* MSGS[0..N) all on socket FD: each sent once; one a socket refuses is counted, not retried. */
static void
send_run(int fd, struct mmsghdr *msgs, struct dps_sflow_agent **agents, unsigned n)
{
    unsigned off = 0;
    while (off < n) {
        int r = sendmmsg(fd, msgs + off, n - off, MSG_DONTWAIT);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {                      /* message OFF refused (a full socket buffer, ...) */
            agents[off]->send_errors++;
            off++;
            continue;
        }
        for (int j = 0; j < r; j++)
            agents[off + j]->datagrams++;
        off += (unsigned)r;
    }
}

/* Every message of the batch, one sendmmsg per socket (in order within a socket). */
static void
batch_send(struct out_batch *b)
{
    struct mmsghdr run[BATCH_MSGS];
    struct dps_sflow_agent *who[BATCH_MSGS];
    uint8_t done[BATCH_MSGS] = {0};
    for (unsigned i = 0; i < b->n_msg; i++) {
        if (done[i])
            continue;
        unsigned k = 0;
        for (unsigned j = i; j < b->n_msg; j++) {
            if (!done[j] && b->fd[j] == b->fd[i]) {
                run[k] = b->msg[j];
                who[k++] = b->agent[j];
                done[j] = 1;
            }
        }
        send_run(b->fd[i], run, who, k);
    }
    b->n_dg = b->n_msg = 0;
}

/* A's pending samples as a datagram into the batch (sent first if it is full). */
static void
close_datagram(struct out_batch *b, struct dps_sflow_agent *a, uint64_t now)
{
    if (!a->n_pending)
        return;
    unsigned targets = RTE_MIN(a->n_targets, (uint32_t)DPS_SFLOW_TARGETS);
    if (b->n_dg == BATCH_DATAGRAMS || b->n_msg + targets > BATCH_MSGS)
        batch_send(b);
    uint8_t *dg = b->dg[b->n_dg], *p = dg;
    a->datagram_seq++;
    p = put32(p, 5);
    p = put32(p, a->addr_type);
    memcpy(p, a->addr, addr_len(a));
    p += addr_len(a);
    p = put32(p, a->sub_id);
    p = put32(p, a->datagram_seq);
    p = put32(p, (uint32_t)((now - a->boot_ns) / 1000000));
    p = put32(p, a->n_pending);
    memcpy(p, a->pending, a->pending_len);
    uint32_t len = (uint32_t)(p - dg) + a->pending_len;
    a->n_pending = a->pending_len = 0;
    b->dg_len[b->n_dg++] = len;
    for (unsigned t = 0; t < targets; t++) {
        const struct dps_sflow_target *tg = &a->targets[t];
        unsigned m = b->n_msg++;
        struct sockaddr_in6 *to = &b->to[m];
        socklen_t to_len;
        memset(to, 0, sizeof *to);
        if (tg->family == 6) {
            to->sin6_family = AF_INET6;
            to->sin6_port = rte_cpu_to_be_16((uint16_t)tg->port);
            memcpy(&to->sin6_addr, tg->addr, 16);
            to_len = sizeof(struct sockaddr_in6);
        } else {
            struct sockaddr_in *to4 = (struct sockaddr_in *)to;
            to4->sin_family = AF_INET;
            to4->sin_port = rte_cpu_to_be_16((uint16_t)tg->port);
            memcpy(&to4->sin_addr, tg->addr, 4);
            to_len = sizeof(struct sockaddr_in);
        }
        b->iov[m] = (struct iovec){.iov_base = dg, .iov_len = len};
        b->msg[m] = (struct mmsghdr){.msg_hdr = {.msg_name = to, .msg_namelen = to_len,
                                                 .msg_iov = &b->iov[m], .msg_iovlen = 1}};
        b->agent[m] = a;
        b->fd[m] = tg->fd;
    }
}

/* Whether a sample of LEN bytes would take A's datagram past its size (Open vSwitch's test,
 * counting 28 bytes of header besides the address). */
static inline int
overflows(const struct dps_sflow_agent *a, uint32_t len)
{
    return a->n_pending && 28 + addr_len(a) + a->pending_len + len > DPS_SFLOW_DATAGRAM_MAX;
}

int
dps_sflow_add(struct dps_dp *dp, struct dps_sflow_agent *a, const uint8_t *sample, uint32_t len)
{
    if (len > DPS_SFLOW_PENDING)
        return -1;
    if (overflows(a, len) || a->pending_len + len > DPS_SFLOW_PENDING) {
        close_datagram(&batch, a, dps_clock_now(dp));
        batch_send(&batch);
    }
    memcpy(a->pending + a->pending_len, sample, len);
    a->pending_len += len;
    a->n_pending++;
    return 0;
}

void
dps_sflow_flush(struct dps_dp *dp, struct dps_sflow_agent *a)
{
    close_datagram(&batch, a, dps_clock_now(dp));
    batch_send(&batch);
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
dps_sflow_export(struct dps_dp *dp, const uint32_t *port_agent, const uint32_t *port_ifindex,
                 struct dps_sflow_agent *const *agents, unsigned n_agents, unsigned max)
{
    uint64_t lost = 0;
    for (unsigned i = 0; i <= DPS_MAX_PMDS; i++)
        lost += dp->stats[i].sflow_lost;
    for (unsigned i = 0; i < n_agents; i++)
        agents[i]->drops = (uint32_t)lost;
    uint64_t now = dps_clock_now(dp);
    unsigned got = 0;
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
            struct dps_sflow_agent *a = agents[ai];
            uint32_t hlen = RTE_MIN(RTE_MIN(rec->header_len, a->header), (uint32_t)DPS_SFLOW_HEADER_MAX);
            uint32_t need = 8 + 32 + 8 + 16 + 8 + 16 + ((hlen + 3) & ~3u);
            if (overflows(a, need))
                close_datagram(&batch, a, now);
            uint8_t *end = encode(a->pending + a->pending_len, rec, a, port_ifindex[port]);
            a->pending_len = (uint32_t)(end - a->pending);
            a->n_pending++;
            a->flow_samples++;
            got++;
        }
        __atomic_store_n(&r->tail, tail, __ATOMIC_RELEASE);
    }
    batch_send(&batch);
    return (int)got;
}
