/*
 * upcall.c — frames to and from the slow path.  PMDs put misses (and userspace actions) on one
 * multi-producer ring, by reference, the key in the mbuf's private area; the control thread is
 * its single consumer, woken by an eventfd.  Control protocols' frames (a userspace action with
 * DPS_UPCALL_CONTROL in its cookie) take a second, reserved ring, drained first.  Also packet-out:
 * the control thread runs action lists on frames, through its own tx queue.
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <rte_malloc.h>
#include <rte_mbuf.h>

#include "datapath.h"

struct dps_upcall_meta {
    struct dps_flow_key key;
    uint32_t type;
    uint32_t hash;
    uint64_t cookie;
    uint32_t pmd;                          /* the PMD that upcalled it */
    uint32_t pad;
};

uint16_t
dps_mbuf_priv_size(void)
{
    return RTE_ALIGN_CEIL(sizeof(struct dps_upcall_meta), RTE_MBUF_PRIV_ALIGN);
}

int
dps_upcall_init(struct dps_dp *dp)
{
    uint32_t size = dp->params.upcall_ring ? dp->params.upcall_ring : 4096;
    if (!rte_is_power_of_2(size))
        return dps_error(EINVAL, "upcall ring size %u is not a power of two", size);
    char name[RTE_RING_NAMESIZE];
    snprintf(name, sizeof name, "dps_up%p", (void *)dp);
    dp->upcalls = rte_ring_create(name, size, (int)rte_socket_id(), RING_F_SC_DEQ | RING_F_EXACT_SZ);
    snprintf(name, sizeof name, "dps_uc%p", (void *)dp);
    dp->control_upcalls = rte_ring_create(name, DPS_CONTROL_RING, (int)rte_socket_id(),
                                          RING_F_SC_DEQ | RING_F_EXACT_SZ);
    dp->upcall_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!dp->upcalls || !dp->control_upcalls || dp->upcall_efd < 0)
        return dps_error(ENOMEM, "cannot create the upcall ring (%u) or its eventfd", size);
    dp->upcall_share = size;
    return 0;
}

void
dps_upcall_fini(struct dps_dp *dp)
{
    struct rte_mbuf *m;
    while (dp->upcalls && rte_ring_dequeue(dp->upcalls, (void **)&m) == 0)
        rte_pktmbuf_free(m);
    while (dp->control_upcalls && rte_ring_dequeue(dp->control_upcalls, (void **)&m) == 0)
        rte_pktmbuf_free(m);
    rte_ring_free(dp->upcalls);
    rte_ring_free(dp->control_upcalls);
    if (dp->upcall_efd > 0)
        close(dp->upcall_efd);
}

static void upcall_control(struct dps_pmd *pmd, struct rte_mbuf *m, const struct dps_flow_key *key,
                           uint64_t cookie);

/* Queue a frame for the slow path, or drop and count it: ring full, or its port's share used. */
void
dps_upcall(struct dps_pmd *pmd, struct rte_mbuf *m, const struct dps_flow_key *key, uint32_t type,
           uint64_t cookie, uint32_t hash)
{
    struct dps_dp *dp = pmd->dp;
    if (type == DPS_UPCALL_ACTION && (cookie & DPS_UPCALL_CONTROL)) {
        upcall_control(pmd, m, key, cookie);
        return;
    }
    uint32_t port = key->in_port < DPS_MAX_PORTS ? key->in_port : 0;
    uint64_t queued = 0;
    for (unsigned i = 0; i <= DPS_MAX_PMDS; i++)
        if (dp->pmds[i] && dp->pmds[i]->upcalls_by_port)
            queued += __atomic_load_n(&dp->pmds[i]->upcalls_by_port[port], __ATOMIC_RELAXED);
    uint64_t taken = __atomic_load_n(&dp->upcalls_taken[port], __ATOMIC_RELAXED);
    if (queued - taken >= dp->upcall_share || rte_pktmbuf_priv_size(m->pool) < sizeof(struct dps_upcall_meta)) {
        pmd->stats->lost++;
        rte_pktmbuf_free(m);
        return;
    }
    struct dps_upcall_meta *meta = rte_mbuf_to_priv(m);
    meta->key = *key;
    meta->type = type;
    meta->cookie = cookie;
    meta->pmd = pmd->index;
    meta->hash = hash;
    if (rte_ring_mp_enqueue(dp->upcalls, m) != 0) {
        pmd->stats->lost++;
        rte_pktmbuf_free(m);
        return;
    }
    __atomic_store_n(&pmd->upcalls_by_port[port], pmd->upcalls_by_port[port] + 1, __ATOMIC_RELAXED);
    if (type == DPS_UPCALL_MISS)
        pmd->stats->misses++;
    else if (cookie & DPS_UPCALL_LAZY) {
        __atomic_fetch_add(&dp->lazy_queued, 1, __ATOMIC_RELEASE);
        if (rte_ring_count(dp->upcalls) < DPS_LAZY_WAKE)
            return;                        /* a sample: it waits for company, or the periodic pass */
    }
    if (__atomic_load_n(&dp->upcall_waiting, __ATOMIC_ACQUIRE)
        && __atomic_exchange_n(&dp->upcall_waiting, 0, __ATOMIC_ACQ_REL)) {
        uint64_t one = 1;
        ssize_t r = write(dp->upcall_efd, &one, sizeof one);
        (void)r;
    }
}

/* A control protocol's frame: onto the reserved ring, outside every port's share. */
static void
upcall_control(struct dps_pmd *pmd, struct rte_mbuf *m, const struct dps_flow_key *key, uint64_t cookie)
{
    struct dps_dp *dp = pmd->dp;
    if (rte_pktmbuf_priv_size(m->pool) < sizeof(struct dps_upcall_meta)) {
        pmd->stats->lost++;
        rte_pktmbuf_free(m);
        return;
    }
    struct dps_upcall_meta *meta = rte_mbuf_to_priv(m);
    meta->key = *key;
    meta->type = DPS_UPCALL_ACTION;
    meta->cookie = cookie;
    meta->pmd = pmd->index;
    meta->hash = 0;
    if (rte_ring_mp_enqueue(dp->control_upcalls, m) != 0) {
        pmd->stats->lost++;
        rte_pktmbuf_free(m);
        return;
    }
    if (__atomic_load_n(&dp->upcall_waiting, __ATOMIC_ACQUIRE)
        && __atomic_exchange_n(&dp->upcall_waiting, 0, __ATOMIC_ACQ_REL)) {
        uint64_t one = 1;
        ssize_t r = write(dp->upcall_efd, &one, sizeof one);
        (void)r;
    }
}

static inline bool
same_key(const struct dps_flow_key *a, const struct dps_flow_key *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}

/* A miss: upcall it, unless the same flow's miss is already in flight; then park the frame
 * until flows change (or the miss is old), so a burst of one new flow costs one upcall. */
void
dps_upcall_miss(struct dps_pmd *pmd, struct rte_mbuf *m, const struct dps_flow_key *key, uint32_t hash)
{
    struct dps_inflight *in = &pmd->inflight;
    uint64_t now = dps_clock_now(pmd->dp);
    typeof(in->miss[0]) *e = &in->miss[hash & (DPS_INFLIGHT - 1)];
    if (e->valid && e->hash == hash && now - e->since_ns < DPS_INFLIGHT_NS && same_key(&e->key, key)
        && in->n_parked < DPS_PARKED && rte_pktmbuf_priv_size(m->pool) >= sizeof(struct dps_upcall_meta)) {
        ((struct dps_upcall_meta *)rte_mbuf_to_priv(m))->key = *key;
        if (in->n_parked == 0) {
            in->oldest_ns = now;
            in->parked_version = __atomic_load_n(&pmd->dp->ft.version, __ATOMIC_ACQUIRE);
        }
        in->parked[in->n_parked++] = m;
        pmd->stats->dups++;
        return;
    }
    e->hash = hash;
    e->valid = 1;
    e->since_ns = now;
    e->key = *key;
    dps_upcall(pmd, m, key, DPS_UPCALL_MISS, 0, hash);
}

/* Parked frames: looked up again when flows changed; upcalled when their miss is old. */
void
dps_inflight_retry(struct dps_pmd *pmd)
{
    struct dps_inflight *in = &pmd->inflight;
    if (!in->n_parked)
        return;
    uint64_t version = __atomic_load_n(&pmd->dp->ft.version, __ATOMIC_ACQUIRE);
    uint64_t now = dps_clock_now(pmd->dp);
    bool expired = now - in->oldest_ns >= DPS_INFLIGHT_NS;
    if (version == in->parked_version && !expired)
        return;
    struct rte_mbuf *pkts[DPS_PARKED], *kept[DPS_PARKED];
    unsigned n = in->n_parked, keep = 0;
    memcpy(pkts, in->parked, n * sizeof *pkts);
    in->n_parked = 0;
    for (unsigned i = 0; i < n; i++) {
        struct dps_flow_key key = ((struct dps_upcall_meta *)rte_mbuf_to_priv(pkts[i]))->key;
        uint32_t hash = dps_key_hash(&key), slot;
        dps_classify(pmd, &pkts[i], &key, &hash, &slot, 1);
        if (slot != UINT32_MAX)
            dps_pmd_run_flow(pmd, pkts[i], &key, slot, now);
        else if (expired)
            dps_upcall(pmd, pkts[i], &key, DPS_UPCALL_MISS, 0, hash);
        else
            kept[keep++] = pkts[i];
    }
    /* A frame run here may have parked its recirculated second pass (dps_upcall_miss) in
     * in->parked meanwhile: the frames still waiting go after those, none overwritten. */
    for (unsigned i = 0; i < keep; i++) {
        if (in->n_parked < DPS_PARKED) {
            in->parked[in->n_parked++] = kept[i];
        } else {
            struct dps_flow_key key = ((struct dps_upcall_meta *)rte_mbuf_to_priv(kept[i]))->key;
            dps_upcall(pmd, kept[i], &key, DPS_UPCALL_MISS, 0, dps_key_hash(&key));
        }
    }
    in->parked_version = version;
    if (expired)
        in->oldest_ns = now;
}

/* ---- The control thread's side ---- */

int
dps_upcall_fd(const struct dps_dp *dp)
{
    return dp->upcall_efd;
}

unsigned
dps_upcall_arm(struct dps_dp *dp)
{
    __atomic_store_n(&dp->upcall_waiting, 1, __ATOMIC_SEQ_CST);
    unsigned n = rte_ring_count(dp->upcalls);
    if (n < DPS_LAZY_WAKE) {               /* the samples among them may wait */
        uint64_t lazy = __atomic_load_n(&dp->lazy_queued, __ATOMIC_ACQUIRE) - dp->lazy_taken;
        n = lazy >= n ? 0 : n - (unsigned)lazy;
    }
    unsigned samples = dps_sflow_waiting(dp);  /* sFlow's records wake it in batches too */
    return n + rte_ring_count(dp->control_upcalls) + (samples >= DPS_SFLOW_WAKE ? samples : 0);
}

unsigned
dps_upcall_count(const struct dps_dp *dp)
{
    return rte_ring_count(dp->upcalls) + rte_ring_count(dp->control_upcalls) + dps_sflow_waiting(dp);
}

/* The first CONTROL of PKTS came from the reserved ring, the rest (to GOT) from the main one. */
static int
upcalls_out(struct dps_dp *dp, struct rte_mbuf **pkts, unsigned control, unsigned got, struct dps_upcall *out)
{
    for (unsigned i = 0; i < got; i++) {
        struct rte_mbuf *m = pkts[i];
        const struct dps_upcall_meta *meta = rte_mbuf_to_priv(m);
        if (m->nb_segs > 1)
            rte_pktmbuf_linearize(m);
        out[i].packet = m;
        out[i].data = rte_pktmbuf_mtod(m, const uint8_t *);
        out[i].len = rte_pktmbuf_data_len(m);
        out[i].type = meta->type;
        out[i].cookie = meta->cookie;
        out[i].key = meta->key;
        if (i < control)
            continue;                      /* the reserved ring: no port's share */
        if (meta->type == DPS_UPCALL_ACTION && (meta->cookie & DPS_UPCALL_LAZY))
            dp->lazy_taken++;
        uint32_t port = meta->key.in_port < DPS_MAX_PORTS ? meta->key.in_port : 0;
        __atomic_store_n(&dp->upcalls_taken[port], dp->upcalls_taken[port] + 1, __ATOMIC_RELAXED);
    }
    return (int)got;
}

int
dps_upcall_recv(struct dps_dp *dp, struct dps_upcall *out, unsigned n)
{
    struct rte_mbuf *pkts[256];
    unsigned want = RTE_MIN(n, 256u);
    unsigned control = rte_ring_sc_dequeue_burst(dp->control_upcalls, (void **)pkts, want, NULL);
    unsigned got = control + rte_ring_sc_dequeue_burst(dp->upcalls, (void **)pkts + control, want - control, NULL);
    return upcalls_out(dp, pkts, control, got, out);
}

int
dps_control_upcall_recv(struct dps_dp *dp, struct dps_upcall *out, unsigned n)
{
    struct rte_mbuf *pkts[256];
    unsigned got = rte_ring_sc_dequeue_burst(dp->control_upcalls, (void **)pkts, RTE_MIN(n, 256u), NULL);
    return upcalls_out(dp, pkts, got, got, out);
}

static int
execute_on(struct dps_dp *dp, struct rte_mbuf *m, struct dps_flow_key *key, const uint8_t *actions, uint32_t len)
{
    int rc = dps_actions_check(actions, len);
    if (rc < 0) {
        rte_pktmbuf_free(m);
        return rc;
    }
    struct dps_pmd *ctl = dp->pmds[DPS_MANUAL_PMD];
    const struct dps_fwd *f = __atomic_load_n(&dp->fwd, __ATOMIC_ACQUIRE);
    dps_pmd_execute(ctl, f, m, key, actions, len);
    dps_pmd_flush(ctl, f);
    return 0;
}

int
dps_packet_execute(struct dps_dp *dp, void *packet, const uint8_t *actions, uint32_t len)
{
    struct rte_mbuf *m = packet;
    const struct dps_upcall_meta *meta = rte_mbuf_to_priv(m);
    struct dps_flow_key key = meta->key;
    /* The miss's flow is installed by now (the slow path puts before it executes): let the PMD
     * that missed put it in its exact-match cache, so the flow's next frames hit there. */
    if (meta->type == DPS_UPCALL_MISS && meta->pmd <= DPS_MAX_PMDS && dp->pmds[meta->pmd]) {
        uint32_t slot = dps_flow_lookup_slot(dp, &key);
        if (slot != UINT32_MAX)
            dps_emc_hint(dp->pmds[meta->pmd], &key, meta->hash, slot, dp->ft.flows[slot].gen);
    }
    return execute_on(dp, m, &key, actions, len);
}

void
dps_packet_free(struct dps_dp *dp, void *packet)
{
    (void)dp;
    rte_pktmbuf_free(packet);
}

int
dps_execute(struct dps_dp *dp, const uint8_t *frame, uint32_t len, uint32_t in_port, const uint8_t *actions,
            uint32_t actions_len)
{
    struct rte_mempool *mp = dp->n_pools ? dp->pools[0].mp : dps_pool_for(dp, 0, 0);
    if (!mp)
        return -ENOMEM;
    struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
    if (!m)
        return dps_error(ENOBUFS, "no mbuf for a packet-out");
    char *d = len <= rte_pktmbuf_tailroom(m) ? rte_pktmbuf_append(m, (uint16_t)len) : NULL;
    if (!d) {
        rte_pktmbuf_free(m);
        return dps_error(EMSGSIZE, "a %u-byte packet does not fit one mbuf", len);
    }
    memcpy(d, frame, len);
    struct dps_flow_key key;
    dps_parse(frame, len, in_port, &key);
    return execute_on(dp, m, &key, actions, actions_len);
}
