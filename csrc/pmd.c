/*
 * pmd.c — the poll-mode loop.  One thread per worker lcore, each with its own rx queues, its
 * own tx queue on every port, its own exact-match cache and counters; or the control thread
 * itself in deterministic mode (dps_dp_poll).  Reads the RCU-published forwarding snapshot
 * and flow table only (see datapath.h and flow.h).  Also the action executor's callbacks: how
 * an action list reaches the datapath (tx batches, the upcall ring, a second lookup, meters).
 */
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>
#include <rte_prefetch.h>

#include "datapath.h"
#include "parse.h"

struct dps_pmd *
dps_pmd_new(struct dps_dp *dp, unsigned index, unsigned lcore)
{
    struct dps_pmd *pmd = rte_zmalloc("dps_pmd", sizeof *pmd, RTE_CACHE_LINE_SIZE);
    if (!pmd) {
        dps_error(ENOMEM, "no memory for a PMD");
        return NULL;
    }
    pmd->dp = dp;
    pmd->index = index;
    pmd->lcore = lcore;
    pmd->stats = &dp->stats[index];
    pmd->port_tx_dropped = dp->port_tx_dropped[index];
    pmd->rng = 0x9e3779b9u * (index + 1);
    pmd->sample.rng = 0x243f6a8885a308d3ull * (index + 1);
    pmd->sflow = dps_sflow_ring_new();
    pmd->fstats = calloc(dp->ft.limit, sizeof *pmd->fstats);
    pmd->upcalls_by_port = calloc(DPS_MAX_PORTS, sizeof *pmd->upcalls_by_port);
    pmd->emc = rte_zmalloc("dps_emc", sizeof *pmd->emc, RTE_CACHE_LINE_SIZE);
    pmd->hints = rte_zmalloc("dps_hints", sizeof *pmd->hints, RTE_CACHE_LINE_SIZE);
    pmd->rcache = rte_zmalloc("dps_rcache", sizeof *pmd->rcache, RTE_CACHE_LINE_SIZE);
    if (!pmd->sflow || !pmd->fstats || !pmd->upcalls_by_port || !pmd->emc || !pmd->hints || !pmd->rcache) {
        dps_pmd_free(pmd);
        dps_error(ENOMEM, "no memory for a PMD's caches and counters");
        return NULL;
    }
    for (unsigned i = 0; i < DPS_EMC_ENTRIES; i++)
        pmd->emc->e[i].slot = UINT32_MAX;
    for (unsigned i = 0; i < DPS_RCACHE_ENTRIES; i++)
        pmd->rcache->e[i].f_slot = UINT32_MAX;
    return pmd;
}

void
dps_pmd_free(struct dps_pmd *pmd)
{
    if (!pmd)
        return;
    for (uint32_t i = 0; i < pmd->inflight.n_parked; i++)
        rte_pktmbuf_free(pmd->inflight.parked[i]);
    free(pmd->fstats);
    free(pmd->upcalls_by_port);
    dps_sflow_ring_free(pmd->sflow);
    rte_free(pmd->emc);
    rte_free(pmd->hints);
    rte_free(pmd->rcache);
    rte_free(pmd);
}

/* Stage timing (see DPS_STAGE_* in dpdkswitch.h): every Nth iteration, when it is on, the TSC
 * is read at each stage boundary; otherwise a boundary is one predicted branch. */
static inline void
stage_begin(struct dps_pmd *pmd)
{
    uint32_t every = __atomic_load_n(&pmd->dp->stage_every, __ATOMIC_RELAXED);
    pmd->stage_t0 = pmd->stage_tsc = likely(!every) || pmd->stats->iterations % every ? 0 : rte_rdtsc();
}

static inline void
stage_lap(struct dps_pmd *pmd, unsigned stage)
{
    if (unlikely(pmd->stage_tsc)) {
        uint64_t t = rte_rdtsc();
        pmd->stage_laps[stage] += t - pmd->stage_tsc;
        pmd->stage_tsc = t;
    }
}

/* The timed iteration's laps into the counters if it received frames; dropped if not. */
static void
stage_end(struct dps_pmd *pmd, unsigned received)
{
    if (likely(!pmd->stage_t0))
        return;
    if (received) {
        pmd->stats->sampled_iterations++;
        pmd->stats->sampled_packets += received;
        pmd->stats->sampled_cycles += pmd->stage_tsc - pmd->stage_t0;
        for (unsigned s = 0; s < DPS_STAGES; s++)
            pmd->stats->stage_cycles[s] += pmd->stage_laps[s];
    }
    memset(pmd->stage_laps, 0, sizeof pmd->stage_laps);
    pmd->stage_t0 = pmd->stage_tsc = 0;
}

/* Send one port's batch on this PMD's tx queue; count what the queue refused. */
static void
tx_flush_port(struct dps_pmd *pmd, const struct dps_fwd *f, uint32_t port)
{
    const struct dps_port_out *o = &f->port[port];
    uint16_t n = pmd->txb[port].n, sent;
    uint16_t q = (uint16_t)(f->pmd[pmd->index].txq % o->n_txq);
    if (o->shared)
        rte_spinlock_lock(&o->txq_locks[q]);
    sent = rte_eth_tx_burst(o->eth_port, q, pmd->txb[port].pkts, n);
    if (o->shared)
        rte_spinlock_unlock(&o->txq_locks[q]);
    pmd->stats->tx_packets += sent;
    pmd->stats->tx_batches++;
    if (sent < n) {
        rte_pktmbuf_free_bulk(&pmd->txb[port].pkts[sent], n - sent);
        pmd->stats->tx_dropped += n - sent;
        pmd->port_tx_dropped[port] += n - sent;
    }
    pmd->txb[port].n = 0;
}

/* PORT has output this iteration: list it (once) for dps_pmd_flush. */
static inline void
tx_list(struct dps_pmd *pmd, uint32_t port)
{
    if (!pmd->txb[port].listed) {
        pmd->txb[port].listed = 1;
        pmd->pending[pmd->n_pending++] = port;
    }
}

/* Queue one frame for output on a port; sent at the end of the iteration. */
void
dps_tx_enqueue(struct dps_pmd *pmd, const struct dps_fwd *f, uint32_t port, struct rte_mbuf *m)
{
    if (pmd->txb[port].n == DPS_BURST)   /* a full batch mid-burst goes now */
        tx_flush_port(pmd, f, port);
    tx_list(pmd, port);
    pmd->txb[port].pkts[pmd->txb[port].n++] = m;
}

/* The same for N frames in a row. */
static void
tx_enqueue_burst(struct dps_pmd *pmd, const struct dps_fwd *f, uint32_t port, struct rte_mbuf **pkts, uint16_t n)
{
    tx_list(pmd, port);
    while (n) {
        if (pmd->txb[port].n == DPS_BURST)
            tx_flush_port(pmd, f, port);
        uint16_t k = RTE_MIN(n, (uint16_t)(DPS_BURST - pmd->txb[port].n));
        memcpy(&pmd->txb[port].pkts[pmd->txb[port].n], pkts, k * sizeof *pkts);
        pmd->txb[port].n += k;
        pkts += k;
        n -= k;
    }
}

void
dps_pmd_flush(struct dps_pmd *pmd, const struct dps_fwd *f)
{
    for (uint32_t i = 0; i < pmd->n_pending; i++) {
        if (pmd->txb[pmd->pending[i]].n)
            tx_flush_port(pmd, f, pmd->pending[i]);
        pmd->txb[pmd->pending[i]].listed = 0;
    }
    pmd->n_pending = 0;
}

/* ---- The executor's callbacks: how an action list reaches this PMD's datapath ----
 * CTX is the PMD; pmd->fwd is the snapshot its iteration (or packet-out) reads. */

static bool
exec_port_ok(void *ctx, uint32_t port)
{
    struct dps_pmd *pmd = ctx;
    if (unlikely(!pmd->fwd->port[port].valid)) {
        pmd->stats->action_drops++;
        return false;
    }
    return true;
}

static void
exec_output(void *ctx, uint32_t port, struct rte_mbuf *m)
{
    struct dps_pmd *pmd = ctx;
    dps_tx_enqueue(pmd, pmd->fwd, port, m);
}

static void
exec_userspace(void *ctx, struct rte_mbuf *m, const struct dps_flow_key *key, uint64_t cookie)
{
    if ((cookie & (DPS_UPCALL_SFLOW | DPS_UPCALL_CONTROL)) == DPS_UPCALL_SFLOW) {   /* the sample ring (sflow.c) */
        dps_sflow_record(ctx, m, key->in_port, cookie);
        rte_pktmbuf_free(m);
        return;
    }
    dps_upcall(ctx, m, key, DPS_UPCALL_ACTION, cookie, 0);
}

/* A recirculated frame's lookup hash: the first pass's (HASH) with recirc_id and dp_hash folded
 * in (one CRC step, not the whole key again; the same key gets the same hash from the same first
 * pass, all the exact-match cache needs). */
static inline uint32_t
recirc_hash(uint32_t recirc_id, uint32_t dp_hash, uint32_t hash)
{
    return rte_hash_crc_8byte((uint64_t)recirc_id << 32 | dp_hash, hash);
}

/* Queue M for the round's lookup: KEY with RECIRC_ID and DP_HASH, F_SLOT the flow it ran
 * unchanged (or UINT32_MAX).  False if the batch is full. */
static inline bool
batch_add(struct dps_recirc_batch *b, struct rte_mbuf *m, const struct dps_flow_key *key, uint32_t recirc_id,
          uint32_t dp_hash, uint32_t hash, uint32_t f_slot, uint32_t f_gen)
{
    if (b->n == DPS_BURST)
        return false;
    uint16_t i = b->n++;
    b->keys[i] = *key;
    b->keys[i].recirc_id = recirc_id;
    b->keys[i].dp_hash = dp_hash;
    b->hashes[i] = hash;
    b->pkts[i] = m;
    b->f_slot[i] = f_slot;
    b->f_gen[i] = f_gen;
    return true;
}

/* Look M up now as KEY's recirculation RECIRC_ID (HASH its lookup hash) and run what it hits:
 * outside a burst (packet-out, parked frames), or when the burst's batch is full. */
static __attribute__((noinline)) void
recirc_now(struct dps_pmd *pmd, struct rte_mbuf *m, const struct dps_flow_key *prev, uint32_t recirc_id,
           uint32_t dp_hash, uint32_t hash)
{
    struct dps_flow_key key = *prev;
    key.recirc_id = recirc_id;
    key.dp_hash = dp_hash;
    uint32_t slot, saved = pmd->frame_hash, saved_slot = pmd->frame_slot;
    const struct dps_flow_key *saved_key = pmd->frame_key;
    unsigned saved_depth = pmd->recirc_depth;
    dps_classify(pmd, &m, &key, &hash, &slot, 1);
    if (slot == UINT32_MAX) {
        dps_upcall_miss(pmd, m, &key, hash);
        return;
    }
    pmd->recirc_depth++;
    pmd->frame_hash = hash;
    dps_pmd_run_flow(pmd, m, &key, slot, dps_clock_now(pmd->dp));
    pmd->frame_hash = saved;
    pmd->frame_slot = saved_slot;
    pmd->frame_key = saved_key;
    pmd->recirc_depth = saved_depth;
}

/* Recirculation.  KEY is the frame's key as the frame is now (the executor parses a changed
 * frame again), so the second pass takes it on and sets RECIRC_ID: no parse.  Within a burst
 * (process) the frame waits in pmd->recirc and the burst's recirculated frames are looked up
 * together after its actions (recirc_drain), as Open vSwitch batches them: a frame that ran its
 * flow unchanged first in the recirculation cache (flow.h: a balance-tcp bond's second pass is
 * one small entry, not an exact-match probe of the whole key), its key not even copied; the
 * others by their whole key.  Elsewhere (packet-out, parked frames) it is looked up at once. */
static inline void
exec_recirculate(void *ctx, struct rte_mbuf *m, const struct dps_flow_key *prev, uint32_t recirc_id)
{
    struct dps_pmd *pmd = ctx;
    if (pmd->recirc_depth >= DPS_MAX_RECIRC) {
        pmd->stats->action_drops++;
        rte_pktmbuf_free(m);
        return;
    }
    pmd->stats->recirculations++;
    struct dps_recirc_batch *b = &pmd->recirc.b[pmd->recirc.fill];
    if (pmd->recirc.batching && prev == pmd->frame_key && b->nq < DPS_BURST) {
        uint32_t f_slot = pmd->frame_slot;
        b->q[b->nq++] = (struct dps_recirc_quick){
            .m = m, .key = prev, .dp_hash = prev->dp_hash, .recirc_id = recirc_id, .hash = pmd->frame_hash,
            .f_slot = f_slot, .f_gen = pmd->dp->ft.flows[f_slot].gen };
        rte_prefetch0(&pmd->rcache->e[dps_rcache_index(f_slot, prev->dp_hash)]);
        return;
    }
    uint32_t hash = recirc_hash(recirc_id, prev->dp_hash, pmd->frame_hash);
    if (pmd->recirc.batching && batch_add(b, m, prev, recirc_id, prev->dp_hash, hash, UINT32_MAX, 0)) {
        if (__atomic_load_n(&pmd->dp->emc_inv_prob, __ATOMIC_RELAXED))
            dps_emc_prefetch(pmd->emc, hash);
        return;
    }
    recirc_now(pmd, m, prev, recirc_id, prev->dp_hash, hash);
}

static bool
exec_meter(void *ctx, uint32_t id, uint32_t bytes)
{
    struct dps_pmd *pmd = ctx;
    if (dps_meter_allow(pmd->dp, id, bytes, dps_clock_now(pmd->dp)))
        return true;
    pmd->stats->meter_drops++;
    return false;
}

static uint32_t
exec_random(void *ctx)
{
    struct dps_pmd *pmd = ctx;
    pmd->rng = pmd->rng * 1103515245u + 12345u;
    return pmd->rng ^ (pmd->rng >> 16);
}

static void
exec_dropped(void *ctx)
{
    struct dps_pmd *pmd = ctx;
    pmd->stats->action_drops++;
}

static const struct dps_exec_ops pmd_exec_ops = {
    .port_ok = exec_port_ok, .output = exec_output, .userspace = exec_userspace,
    .recirculate = exec_recirculate, .meter = exec_meter, .random = exec_random, .dropped = exec_dropped,
};

/* The executor with this PMD behind it, inline: the callbacks above become direct calls.  For the
 * per-frame sites only; packet-out (dps_pmd_execute) takes the out-of-line instance. */
static inline __attribute__((always_inline)) void
pmd_execute(struct dps_pmd *pmd, struct rte_mbuf *m, struct dps_flow_key *key, const uint8_t *actions,
            uint32_t len)
{
    dps_actions_run(&pmd_exec_ops, pmd, m, key, actions, len);
}

void
dps_pmd_execute(struct dps_pmd *pmd, const struct dps_fwd *f, struct rte_mbuf *m, struct dps_flow_key *key,
                const uint8_t *actions, uint32_t len)
{
    pmd->fwd = f;
    pmd->frame_hash = dps_key_hash(key);
    dps_actions_execute(&pmd_exec_ops, pmd, m, key, actions, len);   /* out of line: not per frame */
}

static inline void lead_sample(struct dps_pmd *pmd, struct rte_mbuf *m, uint32_t in_port,
                               const struct dps_flow_key *key, const struct dps_actions *acts);

/* A list of no DPS_SHAPE_* (most), by the executor inline; out of line itself, so that the
 * per-frame callers below inline what the two shapes need only. */
static __attribute__((noinline)) void
run_actions(struct dps_pmd *pmd, struct rte_mbuf *m, struct dps_flow_key *key, const struct dps_actions *acts)
{
    pmd_execute(pmd, m, key, acts->data + acts->lead, acts->len - acts->lead);
}

/* A frame that hit flow SLOT: count it against the flow, run the flow's actions (the two
 * shapes' steps here, without the executor).  Inline in the burst loops; dps_pmd_run_flow
 * for the rest. */
static inline __attribute__((always_inline)) void
run_flow(struct dps_pmd *pmd, struct rte_mbuf *m, struct dps_flow_key *key, uint32_t slot, uint64_t now)
{
    const struct dps_flow *fl = &pmd->dp->ft.flows[slot];
    const struct dps_actions *acts = __atomic_load_n(&fl->actions, __ATOMIC_ACQUIRE);
    struct dps_flow_stats *s = &pmd->fstats[slot];
    s->packets++;
    s->bytes += rte_pktmbuf_pkt_len(m);
    s->used_ns = now;
    s->tcp_flags |= rte_be_to_cpu_16(key->tcp_flags);
    pmd->frame_slot = slot;
    pmd->frame_key = key;
    if (acts->lead)
        lead_sample(pmd, m, key->in_port, key, acts);
    const struct dps_action *h = (const void *)(acts->data + acts->lead);   /* the shape: past the lead */
    if (acts->shape == DPS_SHAPE_OUTPUT) {
        if (exec_port_ok(pmd, h->arg))
            dps_tx_enqueue(pmd, pmd->fwd, h->arg, m);
        else
            rte_pktmbuf_free(m);
    } else if (acts->shape == DPS_SHAPE_HASH_RECIRC) {
        key->dp_hash = dps_actions_hash(key, h[0].arg);
        exec_recirculate(pmd, m, key, h[1].arg);
    } else
        run_actions(pmd, m, key, acts);
}

void
dps_pmd_run_flow(struct dps_pmd *pmd, struct rte_mbuf *m, struct dps_flow_key *key, uint32_t slot, uint64_t now)
{
    run_flow(pmd, m, key, slot, now);
}

/* Whether this frame is sampled by a sample action of probability PROB (its argument): the
 * PMD's countdown for that probability, a geometric draw per sample (dps_sample_skip), so one
 * frame in N costs a draw and the others a decrement.  A probability beyond the PMD's
 * DPS_SAMPLE_RATES takes the oldest entry over (its countdown starts afresh, which keeps each
 * decision a fair draw). */
static inline bool
sample_due(struct dps_pmd *pmd, uint32_t prob)
{
    struct dps_sample_countdown *c = &pmd->sample;
    unsigned i = 0;
    while (i < DPS_SAMPLE_RATES && c->prob[i] != (uint64_t)prob + 1)
        i++;
    if (unlikely(i == DPS_SAMPLE_RATES)) {
        i = c->next++ % DPS_SAMPLE_RATES;
        c->prob[i] = (uint64_t)prob + 1;
        c->left[i] = dps_sample_skip(&c->rng, prob);
    }
    if (--c->left[i])
        return false;
    c->left[i] = dps_sample_skip(&c->rng, prob);
    return true;
}

/* A flow's leading sample (dps_actions.lead) on frame M of IN_PORT, sampled: sFlow's (a lone
 * userspace action with DPS_UPCALL_SFLOW, dps_actions.lead_sflow) goes into the sample ring
 * straight from M; anything else gets its key (KEY, or M parsed when the caller has none) and
 * the nested actions run on a branch of M.  M itself is left to the rest of the list. */
static void
lead_sampled(struct dps_pmd *pmd, struct rte_mbuf *m, uint32_t in_port, const struct dps_flow_key *key,
             const struct dps_actions *acts)
{
    const struct dps_action *h = (const void *)acts->data;
    if (acts->lead_sflow) {
        dps_sflow_record(pmd, m, in_port, acts->lead_sflow);
        return;
    }
    struct rte_mbuf *c = dps_branch(m, acts->lead_copy, UINT32_MAX);
    if (!c) {
        pmd->stats->action_drops++;
        return;
    }
    struct dps_flow_key k;
    if (key)
        k = *key;
    else
        dps_parse(rte_pktmbuf_mtod(c, const uint8_t *), rte_pktmbuf_data_len(c), in_port, &k);
    dps_actions_execute(&pmd_exec_ops, pmd, c, &k, acts->data + sizeof *h, h->len - (uint32_t)sizeof *h);
}

static inline void
lead_sample(struct dps_pmd *pmd, struct rte_mbuf *m, uint32_t in_port, const struct dps_flow_key *key,
            const struct dps_actions *acts)
{
    const struct dps_action *h = (const void *)acts->data;
    if (sample_due(pmd, h->arg))
        lead_sampled(pmd, m, in_port, key, acts);
}

/* The leading sample on a burst of N frames of one flow: the countdown jumps to the sampled
 * frames (none, mostly), no per-frame work. */
static inline void
lead_sample_burst(struct dps_pmd *pmd, struct rte_mbuf **pkts, uint16_t n, uint32_t in_port,
                  const struct dps_actions *acts)
{
    const struct dps_action *h = (const void *)acts->data;
    struct dps_sample_countdown *c = &pmd->sample;
    unsigned e = 0;
    while (e < DPS_SAMPLE_RATES && c->prob[e] != (uint64_t)h->arg + 1)
        e++;
    if (unlikely(e == DPS_SAMPLE_RATES)) {
        for (uint16_t i = 0; i < n; i++)      /* the first burst at this probability: take an entry */
            lead_sample(pmd, pkts[i], in_port, NULL, acts);
        return;
    }
    uint16_t i = 0;
    while (c->left[e] <= (uint64_t)(n - i)) {
        i = (uint16_t)(i + c->left[e]);
        c->left[e] = dps_sample_skip(&c->rng, h->arg);
        lead_sampled(pmd, pkts[i - 1], in_port, NULL, acts);
    }
    c->left[e] -= n - i;
}

/* The cheap path: every flow matches the L2 header's metadata at most (in_port, eth_type,
 * VLAN tags), so a frame's flow is one of its port's few simple flows, found from the L2 header
 * alone.  Returns how many frames of the burst it took (a prefix); the rest take the full path. */
static uint16_t
process_simple(struct dps_pmd *pmd, const struct dps_fwd *f, uint32_t in_port, struct rte_mbuf **pkts,
               uint16_t n, uint64_t now)
{
    const struct dps_flow_table *ft = &pmd->dp->ft;
    if (__atomic_load_n(&ft->n_complex, __ATOMIC_ACQUIRE) || in_port >= DPS_MAX_PORTS)
        return 0;
    const uint32_t *list = ft->port_slots[in_port];
    uint32_t slots[DPS_SIMPLE_PER_PORT];
    unsigned n_slots = 0;
    for (unsigned i = 0; i < DPS_SIMPLE_PER_PORT; i++) {
        uint32_t s = __atomic_load_n(&list[i], __ATOMIC_ACQUIRE);
        if (s != UINT32_MAX)
            slots[n_slots++] = s;
    }
    if (!n_slots)
        return 0;
    if (n_slots == 1) {                        /* in_port alone decides: the whole burst at once */
        const struct dps_flow *fl = &ft->flows[slots[0]];
        const uint64_t *mw = (const void *)&fl->st->mask;
        const struct dps_actions *acts = __atomic_load_n(&fl->actions, __ATOMIC_ACQUIRE);
        if (!(mw[3] | mw[4]) && !acts->needs_key) {
            struct dps_flow_stats *s = &pmd->fstats[slots[0]];
            struct dps_flow_key key = { .in_port = in_port };
            const uint8_t *rest = acts->data + acts->lead;
            uint32_t rest_len = acts->len - acts->lead;
            const struct dps_action *a = (const void *)rest;
            for (uint16_t i = 0; i < n; i++)
                s->bytes += rte_pktmbuf_pkt_len(pkts[i]);
            if (acts->lead)
                lead_sample_burst(pmd, pkts, n, in_port, acts);
            if (rest_len == sizeof *a && a->type == DPS_ACT_OUTPUT && f->port[a->arg].valid)
                tx_enqueue_burst(pmd, f, a->arg, pkts, n);      /* output:PORT alone: as it came */
            else
                for (uint16_t i = 0; i < n; i++)
                    pmd_execute(pmd, pkts[i], &key, rest, rest_len);
            s->packets += n;
            s->used_ns = now;
            pmd->stats->simple_hits += n;
            stage_lap(pmd, DPS_STAGE_SIMPLE);
            return n;
        }
    }
    for (uint16_t i = 0; i < n; i++)           /* the headers are read below: fetch them all now */
        rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void *));
    /* The candidates' masks and keys, in the three words a simple mask may cover: 0 (in_port,
     * recirc_id), 3 and 4 (eth_type, VLAN tags). */
    uint64_t cm[DPS_SIMPLE_PER_PORT][3], ck[DPS_SIMPLE_PER_PORT][3];
    const struct dps_actions *ca[DPS_SIMPLE_PER_PORT];
    for (unsigned i = 0; i < n_slots; i++) {
        const struct dps_flow *fl = &ft->flows[slots[i]];
        const uint64_t *mw = (const void *)&fl->st->mask, *fw = (const void *)&fl->key;
        cm[i][0] = mw[0], cm[i][1] = mw[3], cm[i][2] = mw[4];
        ck[i][0] = fw[0], ck[i][1] = fw[3], ck[i][2] = fw[4];
        ca[i] = __atomic_load_n(&fl->actions, __ATOMIC_ACQUIRE);
    }
    /* The L2 headers first, all of them: matching a key right after parsing it stalled on
     * store forwarding (word loads over the parser's narrow stores), half the stage's time. */
    struct dps_flow_key keys[DPS_BURST];
    for (uint16_t j = 0; j < n; j++) {
        uint64_t *kw = (uint64_t *)(void *)&keys[j];
        kw[0] = in_port, kw[1] = 0, kw[3] = 0, kw[4] = 0;   /* all a simple flow or action reads */
        dps_parse_l2(rte_pktmbuf_mtod(pkts[j], const uint8_t *), rte_pktmbuf_data_len(pkts[j]), &keys[j]);
    }
    uint16_t done = 0;
    for (; done < n; done++) {
        struct rte_mbuf *m = pkts[done];
        struct dps_flow_key *key = &keys[done];
        const uint64_t *kw = (const uint64_t *)(const void *)key;
        unsigned i = 0;
        while (i < n_slots && (((kw[0] & cm[i][0]) ^ ck[i][0]) | ((kw[3] & cm[i][1]) ^ ck[i][1])
                               | ((kw[4] & cm[i][2]) ^ ck[i][2])))
            i++;
        if (i == n_slots || ca[i]->needs_key)
            break;
        struct dps_flow_stats *s = &pmd->fstats[slots[i]];
        s->packets++;
        s->bytes += rte_pktmbuf_pkt_len(m);
        s->used_ns = now;
        if (ca[i]->lead)
            lead_sample(pmd, m, in_port, NULL, ca[i]);
        pmd_execute(pmd, m, key, ca[i]->data + ca[i]->lead, ca[i]->len - ca[i]->lead);
    }
    stage_lap(pmd, DPS_STAGE_SIMPLE);
    pmd->stats->simple_hits += done;
    return done;
}

/* A round's frames that ran their flow F unchanged (B's q): those whose second-pass flow G the
 * recirculation cache knows, and whose actions read no key (no hash, userspace or
 * recirculation: nothing there needs the key copied), run now, each line they need fetched a
 * step ahead (the cache entry, G, G's counters and actions), as a balance-tcp bond's whole
 * second pass; the rest join B's frames looked up by key.  Order within a flow holds: cache
 * entries are made after these lookups, so a flow's frames of one round all hit or all miss
 * (or the later ones miss, G having just gone), and the misses run after the hits. */
static void
recirc_cached(struct dps_pmd *pmd, struct dps_recirc_batch *b, uint64_t now)
{
    const struct dps_flow_table *ft = &pmd->dp->ft;
    uint32_t g[DPS_BURST], hits = 0;
    struct dps_recirc_batch spill;             /* its keys touched only when B is full */
    spill.n = 0;
    uint16_t nq = b->nq;
    b->nq = 0;
    for (uint16_t i = 0; i < nq; i++) {
        const struct dps_rcache_entry *e = &pmd->rcache->e[dps_rcache_index(b->q[i].f_slot, b->q[i].dp_hash)];
        if (e->g_slot < ft->limit)
            rte_prefetch0(&ft->flows[e->g_slot].gen);
    }
    for (uint16_t i = 0; i < nq; i++) {
        const struct dps_recirc_quick *q = &b->q[i];
        g[i] = dps_rcache_lookup(pmd->rcache, ft, q->f_slot, q->f_gen, q->recirc_id, q->dp_hash);
        if (g[i] != UINT32_MAX) {
            rte_prefetch0(__atomic_load_n(&ft->flows[g[i]].actions, __ATOMIC_ACQUIRE));
            rte_prefetch0(&pmd->fstats[g[i]]);
        }
    }
    for (uint16_t i = 0; i < nq; i++) {
        const struct dps_recirc_quick *q = &b->q[i];
        if (g[i] != UINT32_MAX && !__atomic_load_n(&ft->flows[g[i]].actions, __ATOMIC_ACQUIRE)->needs_key) {
            hits++;
            run_flow(pmd, q->m, (struct dps_flow_key *)(uintptr_t)q->key, g[i], now);  /* G writes no key */
            continue;
        }
        uint32_t hash = recirc_hash(q->recirc_id, q->dp_hash, q->hash);
        if (!batch_add(b, q->m, q->key, q->recirc_id, q->dp_hash, hash, q->f_slot, q->f_gen))
            batch_add(&spill, q->m, q->key, q->recirc_id, q->dp_hash, hash, UINT32_MAX, 0);
    }
    pmd->stats->emc_hits += hits;              /* counted with the exact-match cache's hits */
    pmd->stats->one_pass += hits;
    /* B full (more recirculations than a burst): the rest now, their keys copied first (a flow
     * run may recirculate into the batch their keys are in) */
    pmd->recirc_depth--;
    for (uint16_t i = 0; i < spill.n; i++)
        recirc_now(pmd, spill.pkts[i], &spill.keys[i], spill.keys[i].recirc_id, spill.keys[i].dp_hash,
                   spill.hashes[i]);
    pmd->recirc_depth++;
}

/* The burst's recirculated frames, looked up together (exact-match cache, then the masked
 * classifier) and run: one round per depth, a round's own recirculations waiting for the next. */
static void
recirc_drain(struct dps_pmd *pmd, uint64_t now)
{
    uint32_t slots[DPS_BURST];
    unsigned miss[DPS_BURST];
    for (unsigned depth = 1; pmd->recirc.b[pmd->recirc.fill].n || pmd->recirc.b[pmd->recirc.fill].nq; depth++) {
        struct dps_recirc_batch *b = &pmd->recirc.b[pmd->recirc.fill];
        pmd->recirc.fill ^= 1;                 /* this round's recirculations: the other batch */
        pmd->recirc_depth = depth;
        recirc_cached(pmd, b, now);
        uint16_t n = b->n;
        bool cached[DPS_BURST];
        for (uint16_t i = 0; i < n; i++) {
            slots[i] = b->f_slot[i] == UINT32_MAX ? UINT32_MAX
                       : dps_rcache_lookup(pmd->rcache, &pmd->dp->ft, b->f_slot[i], b->f_gen[i], b->keys[i].recirc_id,
                                           b->keys[i].dp_hash);
            cached[i] = slots[i] != UINT32_MAX;
        }
        unsigned n_miss = dps_classify_emc_rest(pmd, b->keys, b->hashes, slots, n, miss);
        dps_classify_masked(pmd, b->keys, b->hashes, slots, miss, n_miss);
        for (uint16_t i = 0; i < n; i++) {
            if (cached[i])
                pmd->stats->emc_hits++;        /* counted with the exact-match cache's hits */
            else if (slots[i] != UINT32_MAX && b->f_slot[i] != UINT32_MAX)
                dps_rcache_insert(pmd, b->f_slot[i], b->f_gen[i], b->keys[i].recirc_id, b->keys[i].dp_hash, slots[i]);
        }
        pmd->recirc_depth = depth;
        for (uint16_t i = 0; i < n; i++) {
            if (slots[i] == UINT32_MAX)
                dps_upcall_miss(pmd, b->pkts[i], &b->keys[i], b->hashes[i]);
            else {
                pmd->frame_hash = b->hashes[i];
                run_flow(pmd, b->pkts[i], &b->keys[i], slots[i], now);
            }
        }
        b->n = 0;
    }
    pmd->recirc_depth = 0;
    stage_lap(pmd, DPS_STAGE_RECIRC);
}

/* Parse, classify, act on one burst from one rx queue. */
static void
process(struct dps_pmd *pmd, const struct dps_fwd *f, uint32_t in_port, struct rte_mbuf **pkts, uint16_t n,
        uint64_t now)
{
    uint16_t simple = process_simple(pmd, f, in_port, pkts, n, now);
    if (simple == n)
        return;
    pkts += simple;
    n -= simple;
    struct dps_flow_key keys[DPS_BURST];
    uint32_t hashes[DPS_BURST], slots[DPS_BURST];
    unsigned miss[DPS_BURST];
    for (uint16_t i = 0; i < n; i++)
        rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void *));
    for (uint16_t i = 0; i < n; i++) {
        struct dps_offsets o;
        dps_parse_ofs(rte_pktmbuf_mtod(pkts[i], const uint8_t *), rte_pktmbuf_data_len(pkts[i]), in_port,
                      &keys[i], &o);
    }
    /* Hashed in a second pass: the parser's narrow stores into a key are retired by then, so
     * the hash's word loads do not stall on store forwarding (a fifth of the cycles when
     * hashed right after each parse). */
    bool emc = __atomic_load_n(&pmd->dp->emc_inv_prob, __ATOMIC_RELAXED) != 0;
    for (uint16_t i = 0; i < n; i++) {
        hashes[i] = (pkts[i]->ol_flags & RTE_MBUF_F_RX_RSS_HASH)
                    ? pkts[i]->hash.rss ^ (in_port * 0x9e3779b1u) : dps_key_hash(&keys[i]);
        if (emc)
            dps_emc_prefetch(pmd->emc, hashes[i]);
    }
    stage_lap(pmd, DPS_STAGE_PARSE);
    unsigned n_miss = dps_classify_emc(pmd, keys, hashes, slots, n, miss);
    stage_lap(pmd, DPS_STAGE_EMC);
    dps_classify_masked(pmd, keys, hashes, slots, miss, n_miss);
    stage_lap(pmd, DPS_STAGE_MASKED);
    pmd->recirc.batching = true;
    for (uint16_t i = 0; i < n; i++) {
        if (slots[i] == UINT32_MAX)
            dps_upcall_miss(pmd, pkts[i], &keys[i], hashes[i]);
        else {
            pmd->frame_hash = hashes[i];
            run_flow(pmd, pkts[i], &keys[i], slots[i], now);
        }
    }
    stage_lap(pmd, DPS_STAGE_ACTIONS);
    recirc_drain(pmd, now);
    pmd->recirc.batching = false;
}

/* One poll iteration: parked frames, every rx queue once, then flush output.  Returns frames
 * received. */
unsigned
dps_pmd_iterate(struct dps_pmd *pmd)
{
    const struct dps_fwd *f = __atomic_load_n(&pmd->dp->fwd, __ATOMIC_ACQUIRE);
    const typeof(f->pmd[0]) *mine = &f->pmd[pmd->index];
    struct rte_mbuf *pkts[DPS_BURST];
    uint64_t now = dps_clock_now(pmd->dp);
    unsigned total = 0;

    pmd->fwd = f;
    stage_begin(pmd);
    dps_emc_hints_apply(pmd);
    dps_inflight_retry(pmd);
    stage_lap(pmd, DPS_STAGE_UPKEEP);
    for (uint32_t i = 0; i < mine->n_rxq; i++) {
        const struct dps_rxq_ref *rxq = &mine->rxq[i];
        uint16_t n = rte_eth_rx_burst(rxq->eth_port, rxq->queue, pkts, DPS_BURST);
        stage_lap(pmd, DPS_STAGE_RX);
        if (n == 0)
            continue;
        total += n;
        process(pmd, f, rxq->dp_port, pkts, n, now);
    }
    dps_pmd_flush(pmd, f);
    stage_lap(pmd, DPS_STAGE_TX);
    stage_end(pmd, total);
    pmd->stats->rx_packets += total;
    pmd->stats->iterations++;
    return total;
}

int
dps_pmd_main(void *arg)
{
    struct dps_pmd *pmd = arg;
    struct rte_rcu_qsbr *qsbr = pmd->dp->qsbr;

    rte_rcu_qsbr_thread_online(qsbr, pmd->index);
    pmd->stats->active = 1;
    while (!pmd->stop) {
        uint64_t start = rte_rdtsc();
        unsigned n = dps_pmd_iterate(pmd);
        uint64_t cycles = rte_rdtsc() - start;
        if (n)
            pmd->stats->busy_cycles += cycles;
        else
            pmd->stats->idle_cycles += cycles;
        rte_rcu_qsbr_quiescent(qsbr, pmd->index);   /* holds nothing published past this point */
    }
    pmd->stats->active = 0;
    rte_rcu_qsbr_thread_offline(qsbr, pmd->index);
    return 0;
}
