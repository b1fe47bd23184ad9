/*
 * datapath.h — the datapath's internal state, shared by the C files of csrc/.  Not part of the boundary: Python sees only include/dpdkswitch.h.
 *
 * Concurrency: one writer, the control thread.  PMD threads read the forwarding snapshot
 * (struct dps_fwd) through an RCU-published pointer and report a quiescent state after every
 * poll iteration (rte_rcu_qsbr).  The control thread never edits a published snapshot: it
 * builds a new one, swaps the pointer, waits for a grace period, then frees the old one and
 * only then releases what the old one referred to (a port being removed).  RCU rather than a
 * command ring because a change (port removal above all) must know when no PMD can touch the
 * old state any more, and a grace period says exactly that; PMDs pay one store per iteration.
 *
 * Callers of the functions below: the control thread, except those marked "PMD side" (pmd.c's
 * loop, tx batches and action callbacks; upcall.c's dps_upcall, dps_upcall_miss and
 * dps_inflight_retry), which run on a PMD thread, or on the control thread in deterministic
 * mode and for packet-out.  Cost: PMD-side calls are per frame or per burst (tens to hundreds
 * of cycles); control-side calls that publish a snapshot wait a grace period (microseconds).
 */
#ifndef DPS_DATAPATH_H
#define DPS_DATAPATH_H 1

#include <stdint.h>
#include <stdbool.h>

#include <rte_common.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_spinlock.h>

#include "actions.h"
#include "dpdkswitch.h"
#include "flow.h"
#include "util.h"

#define DPS_MAX_SOCKETS 8
#define DPS_MAX_POOLS 16
#define DPS_MANUAL_PMD DPS_MAX_PMDS      /* stats/snapshot slot of deterministic polling */
#define DPS_MAX_TESTPORT_QUEUES 16

struct dps_rxq_ref {
    uint16_t eth_port;
    uint16_t queue;
    uint32_t dp_port;
};

/* How a PMD reaches one output port. */
struct dps_port_out {
    uint16_t eth_port;
    uint16_t n_txq;
    bool valid;
    bool shared;                      /* fewer tx queues than lcores: lock txq_locks[] */
    rte_spinlock_t *txq_locks;        /* n_txq locks, owned by struct dps_port */
};

/* An immutable forwarding snapshot: what each PMD polls and how it reaches each port. */
struct dps_fwd {
    struct {
        uint32_t n_rxq;
        uint32_t txq;                 /* the tx queue index this PMD (or the manual poller) uses */
        struct dps_rxq_ref rxq[DPS_MAX_RXQ_PER_PMD];
    } pmd[DPS_MAX_PMDS + 1];
    struct dps_port_out port[DPS_MAX_PORTS];
};

struct dps_testport {
    uint16_t n_queues;
    struct rte_ring *rx[DPS_MAX_TESTPORT_QUEUES];
    struct rte_ring *tx[DPS_MAX_TESTPORT_QUEUES];
    struct rte_mbuf *held;            /* drained but did not fit the caller's buffer */
};

struct dps_port {
    bool used;
    uint32_t dp_port;
    uint16_t eth_port;
    char name[DPS_NAME_LEN];
    char devargs[256];
    int socket;
    uint16_t n_rxq, n_txq, n_rxd, n_txd;
    bool shared_txq;
    rte_spinlock_t txq_locks[RTE_MAX_QUEUES_PER_PORT];
    struct rte_mempool *pool;
    uint32_t mbufs_committed;         /* what its rx/tx rings can hold */
    struct dps_testport *test;        /* non-NULL for a test port */
};

struct dps_pool {
    struct rte_mempool *mp;
    int socket;
    uint32_t committed;               /* mbufs promised to port rings */
};

/* One sFlow sample as the PMD saw it (sflow.c).  The ring is single-producer (its PMD),
 * single-consumer (the control thread): HEAD is written by the producer only, TAIL by the
 * consumer only, each on its own cache line; a record is published by HEAD's release store. */
struct dps_sflow_rec {
    uint32_t in_port;
    uint32_t frame_len;               /* the whole frame's bytes */
    uint64_t cookie;                  /* the userspace cookie: its low 32 bits, the output ifIndex */
    uint32_t header_len;              /* bytes of HEADER that are the frame's */
    uint32_t pad;
    uint8_t header[DPS_SFLOW_HEADER_MAX];
};

struct dps_sflow_ring {
    uint64_t head __rte_cache_aligned;    /* records written (producer) */
    uint64_t tail __rte_cache_aligned;    /* records taken (consumer) */
    struct dps_sflow_rec rec[DPS_SFLOW_RING] __rte_cache_aligned;
};

/* The sampling countdowns of one PMD: per probability (a sample action's argument), the frames
 * still to come before the next sampled one (a geometric draw, sflow.c's dps_sample_skip). */
#define DPS_SAMPLE_RATES 4
struct dps_sample_countdown {
    uint64_t prob[DPS_SAMPLE_RATES];      /* the probability + 1; 0: a free entry */
    uint64_t left[DPS_SAMPLE_RATES];
    uint64_t rng;                         /* splitmix64 state, seeded from the PMD's index */
    unsigned next;                        /* the entry a new probability takes when all are used */
};

/* Per-PMD state the owning thread alone writes. */
struct dps_pmd {
    struct dps_dp *dp;
    unsigned index;                   /* 0 .. DPS_MAX_PMDS-1, or DPS_MANUAL_PMD */
    unsigned lcore;
    volatile bool stop;
    const struct dps_fwd *fwd;        /* the snapshot of the iteration (or packet-out) running:
                                       * what the executor's callbacks read; stale in between */
    unsigned recirc_depth;            /* recirculations of the frame being run */
    uint32_t frame_hash;              /* the lookup hash of the frame being run (a recirculated
                                       * frame's is derived from it) */
    uint32_t frame_slot;              /* the flow it runs, and the key it runs with: a frame */
    const struct dps_flow_key *frame_key;   /* recirculated with that key is unchanged */
    struct {
        bool batching;                /* in a burst's actions: recirculated frames wait here */
        uint64_t now;                 /* the burst's clock (a flow's used_ns) while batching */
        unsigned fill;                /* the batch being filled; the other is being looked up */
        struct dps_recirc_batch {
            uint16_t n;
            struct rte_mbuf *pkts[DPS_BURST];
            uint32_t hashes[DPS_BURST];
            uint32_t f_slot[DPS_BURST], f_gen[DPS_BURST];   /* the flow it ran unchanged, or UINT32_MAX */
            struct dps_flow_key keys[DPS_BURST];
            /* Frames that ran their flow F unchanged, for the recirculation cache first
             * (pmd.c's recirc_cached): the key F matched is pointed to, not copied (it lives
             * until the round that reads it: the burst's keys, or the other batch's). */
            uint16_t nq;
            struct dps_recirc_quick {
                struct rte_mbuf *m;
                const struct dps_flow_key *key;
                uint32_t dp_hash, recirc_id;  /* as at the recirculation (a later hash may change KEY's) */
                uint32_t hash;                /* the first pass's lookup hash */
                uint32_t f_slot, f_gen;
            } q[DPS_BURST];
        } b[2];
    } recirc;                         /* the burst's next pass, looked up as a batch */
    struct dps_pmd_stats *stats;
    uint64_t *port_tx_dropped;        /* [DPS_MAX_PORTS] */
    struct {
        uint16_t n;
        uint16_t listed;                  /* in pending[] (a full batch sent mid-iteration stays) */
        struct rte_mbuf *pkts[DPS_BURST];
    } txb[DPS_MAX_PORTS];             /* pending output, flushed every iteration */
    uint32_t pending[DPS_MAX_PORTS];  /* ports with output in txb, in order, each once */
    uint32_t n_pending;
    struct dps_flow_stats *fstats;    /* [flow_limit]: this PMD's counters of each flow */
    struct dps_emc *emc;
    struct dps_rcache *rcache;        /* second passes by first flow and dp_hash (flow.h) */
    struct dps_emc_hints *hints;
    struct dps_pmd_cls cls;           /* its own ranking of the subtables */
    struct dps_inflight inflight;     /* misses upcalled, not yet answered; parked frames */
    uint64_t *upcalls_by_port;        /* [DPS_MAX_PORTS]: upcalls queued, per input port */
    uint32_t rng;
    struct dps_sample_countdown sample;   /* leading samples' decisions (pmd.c's sample_due) */
    struct dps_sflow_ring *sflow;         /* its sFlow samples, to the control thread (sflow.c) */
    uint64_t stage_t0, stage_tsc;     /* this iteration's first and last TSC read; 0: not timed */
    uint64_t stage_laps[DPS_STAGES];  /* its cycles by stage, kept if it received frames */
};

struct dps_dp {
    char name[DPS_NAME_LEN];
    struct dps_dp_params params;
    uint64_t manual_ns;
    struct dps_port ports[DPS_MAX_PORTS];
    struct dps_pool pools[DPS_MAX_POOLS];
    unsigned n_pools;
    struct dps_rxq_pin pins[DPS_MAX_PORTS * 4];
    unsigned n_pins;

    struct dps_fwd *fwd;              /* RCU-published; PMDs load it with acquire */
    struct rte_rcu_qsbr *qsbr;

    unsigned n_pmds;
    struct dps_pmd *pmds[DPS_MAX_PMDS + 1];       /* + the manual poller */
    struct dps_pmd_stats *stats;                  /* [DPS_MAX_PMDS + 1] */
    struct dps_flow_table ft;                     /* flows, subtables, UFID index */
    struct dps_meter *meters;                     /* [DPS_MAX_METERS] */
    struct rte_ring *upcalls;                     /* PMDs -> control thread */
    struct rte_ring *control_upcalls;             /* control protocols' frames (DPS_UPCALL_CONTROL) */
    int upcall_efd;
    volatile uint32_t upcall_waiting;             /* set by the consumer before it sleeps */
    uint64_t upcalls_taken[DPS_MAX_PORTS];        /* consumed, per input port (control thread) */
    uint64_t lazy_queued;                         /* lazy upcalls queued (PMDs, atomic) */
    uint64_t lazy_taken;                          /* lazy upcalls taken (control thread) */
    uint32_t upcall_share;                        /* ring slots one port may hold */
    uint32_t emc_inv_prob;
    uint32_t stage_every;                         /* time every Nth iteration's stages; 0 off */
    uint64_t (*port_tx_dropped)[DPS_MAX_PORTS];   /* [DPS_MAX_PMDS + 1][DPS_MAX_PORTS] */
};

/* datapath.c */
int dps_fwd_publish(struct dps_dp *dp);
struct rte_mempool *dps_pool_for(struct dps_dp *dp, int socket, uint32_t need);
void dps_pool_release(struct dps_dp *dp, struct rte_mempool *mp, uint32_t n);

/* port.c */
int dps_port_setup(struct dps_dp *dp, struct dps_port *p, const struct dps_port_params *pp);
void dps_port_teardown(struct dps_dp *dp, struct dps_port *p);

/* pmd.c (dps_pmd_new/free: control thread; the rest: PMD side) */
struct dps_pmd *dps_pmd_new(struct dps_dp *dp, unsigned index, unsigned lcore);
void dps_pmd_free(struct dps_pmd *pmd);
int dps_pmd_main(void *arg);
unsigned dps_pmd_iterate(struct dps_pmd *pmd);
void dps_pmd_flush(struct dps_pmd *pmd, const struct dps_fwd *f);
void dps_tx_enqueue(struct dps_pmd *pmd, const struct dps_fwd *f, uint32_t port, struct rte_mbuf *m);
/* A frame that hit flow SLOT: its counters, its actions (on the snapshot pmd->fwd). */
void dps_pmd_run_flow(struct dps_pmd *pmd, struct rte_mbuf *m, struct dps_flow_key *key, uint32_t slot,
                      uint64_t now);
/* Run ACTIONS on M with this PMD (or the control thread's) behind the executor's callbacks,
 * on snapshot F: output into its tx batches, userspace onto the upcall ring, recirculation
 * back into classification, meters, its counters. */
void dps_pmd_execute(struct dps_pmd *pmd, const struct dps_fwd *f, struct rte_mbuf *m, struct dps_flow_key *key,
                     const uint8_t *actions, uint32_t len);

/* upcall.c (init/fini: control thread; dps_upcall, dps_upcall_miss, dps_inflight_retry: PMD side) */
uint16_t dps_mbuf_priv_size(void);
int dps_upcall_init(struct dps_dp *dp);
void dps_upcall_fini(struct dps_dp *dp);
void dps_upcall(struct dps_pmd *pmd, struct rte_mbuf *m, const struct dps_flow_key *key, uint32_t type,
                uint64_t cookie, uint32_t hash);
void dps_upcall_miss(struct dps_pmd *pmd, struct rte_mbuf *m, const struct dps_flow_key *key, uint32_t hash);
void dps_inflight_retry(struct dps_pmd *pmd);

/* sflow.c (alloc/free: control thread; dps_sflow_record, dps_sample_skip: PMD side) */
struct dps_sflow_ring *dps_sflow_ring_new(void);
void dps_sflow_ring_free(struct dps_sflow_ring *r);
/* Frame M, sampled on input port IN_PORT with COOKIE, into PMD's sample ring; M is not taken. */
void dps_sflow_record(struct dps_pmd *pmd, const struct rte_mbuf *m, uint32_t in_port, uint64_t cookie);
/* The frames until the next sampled one (>= 1) at probability PROB / 2^32 (UINT32_MAX:
 * every frame), a geometric draw from RNG. */
uint64_t dps_sample_skip(uint64_t *rng, uint32_t prob);

/* testport.c */
void dps_testport_free(struct dps_testport *t);

#endif /* DPS_DATAPATH_H */
