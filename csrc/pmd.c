/*
 * pmd.c — the poll-mode loop.  One thread per worker lcore, each with its own rx queues, its
 * own tx queue on every port and its own counters; or the control thread itself in
 * deterministic mode (dps_dp_poll).  Reads only the RCU-published forwarding snapshot.
 */
#include <string.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_malloc.h>

#include "datapath.h"

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
    return pmd;
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
    if (sent < n) {
        rte_pktmbuf_free_bulk(&pmd->txb[port].pkts[sent], n - sent);
        pmd->stats->tx_dropped += n - sent;
        pmd->port_tx_dropped[port] += n - sent;
    }
    pmd->txb[port].n = 0;
}

/* Queue one frame for output on a port; flushed at the end of the iteration. */
static inline void
tx_enqueue(struct dps_pmd *pmd, const struct dps_fwd *f, uint32_t port, struct rte_mbuf *m)
{
    if (pmd->txb[port].n == DPS_BURST)   /* a full batch mid-burst goes now */
        tx_flush_port(pmd, f, port);
    if (pmd->txb[port].n == 0)
        pmd->pending[pmd->n_pending++] = port;
    pmd->txb[port].pkts[pmd->txb[port].n++] = m;
}

static void
tx_flush(struct dps_pmd *pmd, const struct dps_fwd *f)
{
    for (uint32_t i = 0; i < pmd->n_pending; i++)
        if (pmd->txb[pmd->pending[i]].n)
            tx_flush_port(pmd, f, pmd->pending[i]);
    pmd->n_pending = 0;
}

/* Forward a burst by the static map: each frame to every output of its input port. */
static void
process(struct dps_pmd *pmd, const struct dps_fwd *f, uint32_t in_port, struct rte_mbuf **pkts,
        uint16_t n)
{
    const struct dps_fwd_entry *e = &f->map[in_port];
    if (e->n_out == 0) {
        rte_pktmbuf_free_bulk(pkts, n);
        return;
    }
    if (e->n_out > 1)
        for (uint16_t i = 0; i < n; i++)
            rte_mbuf_refcnt_update(pkts[i], (int16_t)(e->n_out - 1));
    for (uint32_t o = 0; o < e->n_out; o++)
        for (uint16_t i = 0; i < n; i++)
            tx_enqueue(pmd, f, e->out[o], pkts[i]);
}

/* One poll iteration: every rx queue once, then flush output.  Returns frames received. */
unsigned
dps_pmd_iterate(struct dps_pmd *pmd)
{
    const struct dps_fwd *f = __atomic_load_n(&pmd->dp->fwd, __ATOMIC_ACQUIRE);
    const typeof(f->pmd[0]) *mine = &f->pmd[pmd->index];
    struct rte_mbuf *pkts[DPS_BURST];
    unsigned total = 0;

    for (uint32_t i = 0; i < mine->n_rxq; i++) {
        const struct dps_rxq_ref *rxq = &mine->rxq[i];
        uint16_t n = rte_eth_rx_burst(rxq->eth_port, rxq->queue, pkts, DPS_BURST);
        if (n == 0)
            continue;
        total += n;
        process(pmd, f, rxq->dp_port, pkts, n);
    }
    tx_flush(pmd, f);
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
        rte_rcu_qsbr_quiescent(qsbr, pmd->index);   /* holds no snapshot past this point */
    }
    pmd->stats->active = 0;
    rte_rcu_qsbr_thread_offline(qsbr, pmd->index);
    return 0;
}
