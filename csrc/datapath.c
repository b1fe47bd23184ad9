/*
 * datapath.c — EAL start-up, datapath lifetime, mempools, the forwarding snapshot and PMD
 * thread management.  Control thread only (see include/dpdkswitch.h and datapath.h), but for
 * the log stream's write, which runs on whatever thread DPDK logs from.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE                    /* fopencookie */
#endif
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_malloc.h>
#include <rte_spinlock.h>
#include <rte_version.h>

#include "datapath.h"

static bool eal_up;

/* ---- DPDK's log: a bounded buffer of lines, drained by the control thread ---- */

static struct dps_log_line log_ring[DPS_LOG_SLOTS];
static uint32_t log_head, log_tail;            /* free-running; under log_lock */
static uint64_t log_dropped;                   /* under log_lock */
static rte_spinlock_t log_lock = RTE_SPINLOCK_INITIALIZER;
static FILE *log_stream;

/* The line a thread is writing, until its newline: DPDK writes a message in one or more
 * pieces, and threads write at the same time. */
static __thread char log_partial[DPS_LOG_LINE];
static __thread size_t log_partial_len;
static __thread uint32_t log_partial_level;

static void
log_push(uint32_t level, const char *text, size_t len)
{
    rte_spinlock_lock(&log_lock);
    if (log_head - log_tail >= DPS_LOG_SLOTS) {
        log_dropped++;
    } else {
        struct dps_log_line *l = &log_ring[log_head % DPS_LOG_SLOTS];
        l->level = level;
        memcpy(l->text, text, len);
        l->text[len] = '\0';
        log_head++;
    }
    rte_spinlock_unlock(&log_lock);
}

/* The stream's write: cut what DPDK writes into lines.  rte_vlog() set the level of the
 * message this thread is writing; the stream is unbuffered, so it is this thread's. */
static ssize_t
log_write(void *cookie, const char *buf, size_t size)
{
    (void)cookie;
    int level = rte_log_cur_msg_loglevel();
    size_t i = 0;
    while (i < size) {
        const char *nl = memchr(buf + i, '\n', size - i);
        size_t n = nl ? (size_t)(nl - (buf + i)) : size - i;
        if (log_partial_len == 0)
            log_partial_level = level > 0 ? (uint32_t)level : 0;
        size_t room = sizeof log_partial - 1 - log_partial_len;
        size_t take = n < room ? n : room;
        memcpy(log_partial + log_partial_len, buf + i, take);
        log_partial_len += take;
        i += n;
        if (nl) {
            i++;
            log_push(log_partial_level, log_partial, log_partial_len);
            log_partial_len = 0;
        }
    }
    return (ssize_t)size;
}

int
dps_log_capture(void)
{
    if (log_stream)
        return 0;
    cookie_io_functions_t io = { .write = log_write };
    FILE *f = fopencookie(NULL, "w", io);
    if (!f)
        return dps_error(errno, "cannot open a stream for DPDK's log: %s", strerror(errno));
    setvbuf(f, NULL, _IONBF, 0);
    if (rte_openlog_stream(f) < 0) {
        fclose(f);
        return dps_error(EINVAL, "DPDK refused the log stream");
    }
    log_stream = f;
    return 0;
}

unsigned
dps_log_take(struct dps_log_line *out, unsigned n, uint64_t *dropped)
{
    unsigned k = 0;
    rte_spinlock_lock(&log_lock);
    for (; k < n && log_tail != log_head; k++, log_tail++)
        out[k] = log_ring[log_tail % DPS_LOG_SLOTS];
    if (dropped)
        *dropped = log_dropped;
    log_dropped = 0;
    rte_spinlock_unlock(&log_lock);
    return k;
}

/* ---- EAL ---- */

int
dps_eal_init(int argc, char **argv)
{
    if (eal_up)
        return dps_error(EALREADY, "EAL is already running in this process");
    int ret = rte_eal_init(argc, argv);
    if (ret < 0)
        return dps_error(rte_errno ? rte_errno : EINVAL, "EAL init failed: %s",
                         rte_strerror(rte_errno));
    eal_up = true;
    return 0;
}

int
dps_eal_initialized(void)
{
    return eal_up;
}

unsigned
dps_eal_lcores(unsigned *out, unsigned n)
{
    unsigned k = 0, lcore;
    if (k < n)
        out[k] = rte_get_main_lcore();
    k++;
    RTE_LCORE_FOREACH_WORKER(lcore) {
        if (k < n)
            out[k] = lcore;
        k++;
    }
    return k < n ? k : n;
}

unsigned
dps_eal_main_lcore(void)
{
    return rte_get_main_lcore();
}

const char *
dps_dpdk_version(void)
{
    return rte_version();
}

int
dps_eal_has_hugepages(void)
{
    return rte_eal_has_hugepages();
}

uint64_t
dps_tsc_hz(void)
{
    return rte_get_tsc_hz();
}

void
dps_pmd_stage_sampling(struct dps_dp *dp, uint32_t every)
{
    __atomic_store_n(&dp->stage_every, every, __ATOMIC_RELAXED);
}

void
dps_mem_stats(const struct dps_dp *dp, struct dps_mem_stats *out)
{
    memset(out, 0, sizeof *out);
    for (unsigned s = 0; s < rte_socket_count(); s++) {
        struct rte_malloc_socket_stats ms;
        if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(s), &ms) == 0) {
            out->heap_allocated += ms.heap_allocsz_bytes;
            out->heap_total += ms.heap_totalsz_bytes;
        }
    }
    out->flow_slot_bytes = sizeof(struct dps_flow) + sizeof *dp->ft.free
                           + (dp->n_pmds + 1) * sizeof(struct dps_flow_stats);
    out->flow_limit = dp->ft.limit;
    out->n_flows = dp->ft.n_flows;
}

/* ---- Datapath lifetime ---- */

struct dps_dp *
dps_dp_create(const char *name, const struct dps_dp_params *params)
{
    if (!eal_up) {
        dps_error(EINVAL, "EAL is not running: start it before creating a datapath");
        return NULL;
    }
    struct dps_dp *dp = rte_zmalloc("dps_dp", sizeof *dp, RTE_CACHE_LINE_SIZE);
    if (!dp) {
        dps_error(ENOMEM, "no memory for datapath %s", name);
        return NULL;
    }
    snprintf(dp->name, sizeof dp->name, "%s", name);
    if (params)
        dp->params = *params;
    if (!dp->params.n_mbufs)
        dp->params.n_mbufs = 16384;
    if (!dp->params.mbuf_cache)
        dp->params.mbuf_cache = 256;
    if (!dp->params.flow_limit)
        dp->params.flow_limit = 200000;
    dp->emc_inv_prob = dp->params.emc_insert_inv_prob;

    size_t qsz = rte_rcu_qsbr_get_memsize(DPS_MAX_PMDS);
    dp->qsbr = rte_zmalloc("dps_qsbr", qsz, RTE_CACHE_LINE_SIZE);
    dp->stats = rte_zmalloc("dps_stats", sizeof *dp->stats * (DPS_MAX_PMDS + 1), RTE_CACHE_LINE_SIZE);
    dp->port_tx_dropped = rte_zmalloc("dps_txdrop", sizeof *dp->port_tx_dropped * (DPS_MAX_PMDS + 1),
                                      RTE_CACHE_LINE_SIZE);
    if (!dp->qsbr || !dp->stats || !dp->port_tx_dropped || rte_rcu_qsbr_init(dp->qsbr, DPS_MAX_PMDS)) {
        dps_error(ENOMEM, "no memory for datapath %s state", name);
        goto fail;
    }
    dp->meters = rte_zmalloc("dps_meters", sizeof *dp->meters * DPS_MAX_METERS, RTE_CACHE_LINE_SIZE);
    if (!dp->meters) {
        dps_error(ENOMEM, "no memory for meters");
        goto fail;
    }
    for (unsigned i = 0; i < DPS_MAX_METERS; i++)
        rte_spinlock_init(&dp->meters[i].lock);
    if (dps_flow_table_init(dp, dp->params.flow_limit) < 0 || dps_upcall_init(dp) < 0)
        goto fail;
    dp->pmds[DPS_MANUAL_PMD] = dps_pmd_new(dp, DPS_MANUAL_PMD, rte_get_main_lcore());
    if (!dp->pmds[DPS_MANUAL_PMD] || dps_fwd_publish(dp) < 0)
        goto fail;
    return dp;
fail:
    dps_dp_destroy(dp);
    return NULL;
}

void
dps_dp_destroy(struct dps_dp *dp)
{
    if (!dp)
        return;
    dps_pmd_stop(dp);
    for (unsigned i = 0; i < DPS_MAX_PORTS; i++)
        if (dp->ports[i].used)
            dps_port_del(dp, i);
    for (unsigned i = 0; i <= DPS_MAX_PMDS; i++)
        dps_pmd_free(dp->pmds[i]);
    dps_upcall_fini(dp);
    dps_flow_table_fini(dp);
    rte_free(dp->meters);
    for (unsigned i = 0; i < dp->n_pools; i++)
        rte_mempool_free(dp->pools[i].mp);
    rte_free(dp->fwd);
    rte_free(dp->qsbr);
    rte_free(dp->stats);
    rte_free(dp->port_tx_dropped);
    rte_free(dp);
}

uint64_t
dps_clock_now(const struct dps_dp *dp)
{
    if (dp->params.manual_clock)
        return dp->manual_ns;
    return (uint64_t)((double)rte_get_tsc_cycles() * 1e9 / (double)rte_get_tsc_hz());
}

void
dps_clock_set(struct dps_dp *dp, uint64_t ns)
{
    dp->manual_ns = ns;
}

/* ---- Mempools: one or more per NUMA socket ---- */

struct rte_mempool *
dps_pool_for(struct dps_dp *dp, int socket, uint32_t need)
{
    if (socket < 0)
        socket = 0;
    for (unsigned i = 0; i < dp->n_pools; i++) {
        struct dps_pool *p = &dp->pools[i];
        /* Keep a quarter of each pool for frames in flight (batches, caches, queues). */
        if (p->socket == socket && p->committed + need <= p->mp->size * 3 / 4) {
            p->committed += need;
            return p->mp;
        }
    }
    if (dp->n_pools == DPS_MAX_POOLS) {
        dps_error(ENOSPC, "too many mempools: ports need more mbufs than %u pools hold", DPS_MAX_POOLS);
        return NULL;
    }
    uint32_t n = dp->params.n_mbufs;
    while (need > n * 3 / 4)
        n *= 2;
    char name[RTE_MEMPOOL_NAMESIZE];
    snprintf(name, sizeof name, "dps%p_%u", (void *)dp, dp->n_pools);
    /* The private area carries a frame's key and reason on its way to the slow path. */
    struct rte_mempool *mp = rte_pktmbuf_pool_create(name, n, dp->params.mbuf_cache, dps_mbuf_priv_size(),
                                                     RTE_MBUF_DEFAULT_BUF_SIZE, socket);
    if (!mp && socket != 0)   /* a socket with no memory of its own (--no-huge, one node) */
        mp = rte_pktmbuf_pool_create(name, n, dp->params.mbuf_cache, dps_mbuf_priv_size(),
                                     RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    if (!mp) {
        dps_error(rte_errno ? rte_errno : ENOMEM, "cannot create a mempool of %u mbufs on socket %d: %s",
                  n, socket, rte_strerror(rte_errno));
        return NULL;
    }
    dp->pools[dp->n_pools++] = (struct dps_pool){ .mp = mp, .socket = socket, .committed = need };
    return mp;
}

void
dps_pool_release(struct dps_dp *dp, struct rte_mempool *mp, uint32_t n)
{
    for (unsigned i = 0; i < dp->n_pools; i++)
        if (dp->pools[i].mp == mp)
            dp->pools[i].committed -= RTE_MIN(n, dp->pools[i].committed);
}

uint64_t
dps_mbufs_in_use(const struct dps_dp *dp)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < dp->n_pools; i++)
        n += rte_mempool_in_use_count(dp->pools[i].mp);
    return n;
}

uint64_t
dps_mbufs_total(const struct dps_dp *dp)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < dp->n_pools; i++)
        n += dp->pools[i].mp->size;
    return n;
}

/* ---- The forwarding snapshot ---- */

static unsigned
pmd_slot_of_lcore(const struct dps_dp *dp, uint32_t lcore)
{
    for (unsigned i = 0; i < dp->n_pmds; i++)
        if (dp->pmds[i]->lcore == lcore)
            return i;
    return DPS_MAX_PMDS;
}

static int
pin_of(const struct dps_dp *dp, uint32_t dp_port, uint16_t queue)
{
    for (unsigned i = 0; i < dp->n_pins; i++)
        if (dp->pins[i].dp_port == dp_port && dp->pins[i].queue == queue)
            return (int)pmd_slot_of_lcore(dp, dp->pins[i].lcore);
    return -1;
}

/* Build the snapshot the current ports, map, PMDs and pins describe; publish it; wait until
 * no PMD can still see the old one; free it. */
int
dps_fwd_publish(struct dps_dp *dp)
{
    struct dps_fwd *f = rte_zmalloc("dps_fwd", sizeof *f, RTE_CACHE_LINE_SIZE);
    if (!f)
        return dps_error(ENOMEM, "no memory for a forwarding snapshot");

    unsigned rr = 0;
    for (uint32_t pn = 0; pn < DPS_MAX_PORTS; pn++) {
        const struct dps_port *p = &dp->ports[pn];
        if (!p->used)
            continue;
        f->port[pn] = (struct dps_port_out){
            .eth_port = p->eth_port, .n_txq = p->n_txq, .valid = true,
            .shared = p->shared_txq, .txq_locks = (rte_spinlock_t *)p->txq_locks,
        };
        for (uint16_t q = 0; q < p->n_rxq; q++) {
            unsigned slot;
            if (!dp->n_pmds)
                slot = DPS_MANUAL_PMD;
            else {
                int pinned = pin_of(dp, pn, q);
                slot = pinned >= 0 && pinned < (int)dp->n_pmds ? (unsigned)pinned : rr++ % dp->n_pmds;
            }
            if (f->pmd[slot].n_rxq == DPS_MAX_RXQ_PER_PMD) {
                rte_free(f);
                return dps_error(ENOSPC, "a PMD would poll more than %d rx queues", DPS_MAX_RXQ_PER_PMD);
            }
            f->pmd[slot].rxq[f->pmd[slot].n_rxq++] = (struct dps_rxq_ref){ p->eth_port, q, pn };
        }
    }
    for (unsigned slot = 0; slot <= DPS_MAX_PMDS; slot++) {
        unsigned lcore = dp->pmds[slot] ? dp->pmds[slot]->lcore : rte_get_main_lcore();
        int idx = rte_lcore_index(lcore);
        f->pmd[slot].txq = idx < 0 ? 0 : (uint32_t)idx;
        if (dp->pmds[slot] && dp->pmds[slot]->stats)
            dp->pmds[slot]->stats->n_rxq = f->pmd[slot].n_rxq;
    }

    /* Each port may hold an equal share of the upcall ring, so one cannot starve the rest. */
    unsigned n_ports = 0;
    for (uint32_t pn = 0; pn < DPS_MAX_PORTS; pn++)
        n_ports += dp->ports[pn].used;
    dp->upcall_share = rte_ring_get_capacity(dp->upcalls) / (n_ports ? n_ports : 1);

    struct dps_fwd *old = dp->fwd;
    __atomic_store_n(&dp->fwd, f, __ATOMIC_RELEASE);
    rte_rcu_qsbr_synchronize(dp->qsbr, RTE_QSBR_THRID_INVALID);
    rte_free(old);
    dps_flow_reclaim(dp);
    return 0;
}

/* ---- PMD threads ---- */

int
dps_pmd_start(struct dps_dp *dp, const uint32_t *lcores, unsigned n)
{
    if (dp->n_pmds)
        return dps_error(EBUSY, "PMD threads already run on datapath %s", dp->name);
    if (n > DPS_MAX_PMDS)
        return dps_error(EINVAL, "%u PMD threads: at most %d", n, DPS_MAX_PMDS);
    for (unsigned i = 0; i < n; i++) {
        if (lcores[i] >= RTE_MAX_LCORE || !rte_lcore_is_enabled(lcores[i]))
            return dps_error(EINVAL, "lcore %u is not one EAL was started with", lcores[i]);
        if (lcores[i] == rte_get_main_lcore())
            return dps_error(EINVAL, "lcore %u is the main lcore (the control thread): a PMD needs a worker lcore",
                             lcores[i]);
        if (rte_eal_get_lcore_state(lcores[i]) != WAIT)
            return dps_error(EBUSY, "lcore %u is already running something", lcores[i]);
        for (unsigned j = 0; j < i; j++)
            if (lcores[j] == lcores[i])
                return dps_error(EINVAL, "lcore %u given twice", lcores[i]);
    }
    for (unsigned i = 0; i < n; i++) {
        if (!dp->pmds[i]) {
            dp->pmds[i] = dps_pmd_new(dp, i, lcores[i]);   /* kept until the datapath goes: flows count on it */
            if (!dp->pmds[i])
                return -ENOMEM;
        }
        dp->pmds[i]->lcore = lcores[i];
        dp->pmds[i]->stop = false;
        dp->stats[i].lcore = lcores[i];
        rte_rcu_qsbr_thread_register(dp->qsbr, i);
    }
    dp->n_pmds = n;
    int ret = dps_fwd_publish(dp);
    if (ret < 0) {
        dp->n_pmds = 0;
        return ret;
    }
    for (unsigned i = 0; i < n; i++) {
        ret = rte_eal_remote_launch(dps_pmd_main, dp->pmds[i], lcores[i]);
        if (ret < 0) {
            dps_pmd_stop(dp);
            return dps_error(-ret, "cannot launch a PMD on lcore %u", lcores[i]);
        }
    }
    return 0;
}

int
dps_pmd_stop(struct dps_dp *dp)
{
    if (!dp->n_pmds)
        return 0;
    for (unsigned i = 0; i < dp->n_pmds; i++)
        dp->pmds[i]->stop = true;
    for (unsigned i = 0; i < dp->n_pmds; i++) {
        rte_eal_wait_lcore(dp->pmds[i]->lcore);
        rte_rcu_qsbr_thread_unregister(dp->qsbr, i);
    }
    dp->n_pmds = 0;
    return dps_fwd_publish(dp);   /* every rx queue goes back to the manual poller */
}

unsigned
dps_pmd_count(const struct dps_dp *dp)
{
    return dp->n_pmds;
}

int
dps_pmd_pin(struct dps_dp *dp, const struct dps_rxq_pin *pins, unsigned n)
{
    if (n > RTE_DIM(dp->pins))
        return dps_error(EINVAL, "%u pins: at most %zu", n, RTE_DIM(dp->pins));
    memcpy(dp->pins, pins, n * sizeof *pins);
    dp->n_pins = n;
    return dps_fwd_publish(dp);
}

int
dps_dp_poll(struct dps_dp *dp, unsigned iterations)
{
    if (dp->n_pmds)
        return dps_error(EBUSY, "PMD threads poll datapath %s: stop them to poll by hand", dp->name);
    uint64_t before = dp->stats[DPS_MANUAL_PMD].rx_packets;
    for (unsigned i = 0; i < iterations; i++)
        dps_pmd_iterate(dp->pmds[DPS_MANUAL_PMD]);
    return (int)(dp->stats[DPS_MANUAL_PMD].rx_packets - before);
}

struct dps_pmd_stats *
dps_pmd_stats(struct dps_dp *dp)
{
    return dp->stats;
}

int
dps_rxq_assignment(const struct dps_dp *dp, struct dps_rxq_pin *out, unsigned n)
{
    unsigned k = 0;
    for (unsigned slot = 0; slot <= DPS_MAX_PMDS; slot++) {
        for (uint32_t i = 0; i < dp->fwd->pmd[slot].n_rxq; i++, k++) {
            if (k >= n)
                continue;
            const struct dps_rxq_ref *r = &dp->fwd->pmd[slot].rxq[i];
            out[k] = (struct dps_rxq_pin){
                .dp_port = r->dp_port, .queue = r->queue,
                .lcore = slot == DPS_MANUAL_PMD ? UINT32_MAX : dp->pmds[slot]->lcore,
            };
        }
    }
    return (int)k;
}
