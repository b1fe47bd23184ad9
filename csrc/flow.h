/*
 * flow.h — datapath flows: the flow table, the masked classifier (tuple space search: one hash
 * table per distinct mask), the per-PMD exact-match and recirculation caches, in-flight misses
 * and meters.
 *
 * Concurrency (see datapath.h): the control thread is the only writer.  PMDs read flows and
 * subtables without locks:
 *   - a flow is published by inserting it into its subtable's lock-free hash (rte_hash with
 *     RW_CONCURRENCY_LF) after it is fully written; deleted by removing it and marking it dead;
 *     its slot is reused, with a new generation, only after an RCU grace period;
 *   - a flow's actions are swapped as one pointer; the old list is freed after a grace period;
 *   - the set of subtables is an immutable array published by pointer (RCU), replaced when a
 *     subtable appears, disappears or is rebuilt bigger;
 *   - a subtable that has never held more than DPS_TINY flows also keeps their compressed keys
 *     in place (tiny[]), under a sequence count: PMDs compare against those instead of probing
 *     the hash, and use the hash when the count says the control thread was editing them.
 * The exact-match and recirculation caches belong to their PMD alone; their entries name flows
 * by (slot, generation) and are checked against the flows on every hit, so a dead flow is never
 * used.
 *
 * Callers and cost: table set-up, puts, deletes, dumps, meter changes and
 * dps_flow_lookup_slot run on the control thread (a put or delete may wait a grace period);
 * dps_classify*, dps_emc_*, dps_rcache_*, dps_meter_allow and dps_key_hash on a PMD (or the
 * control thread polling by hand): per burst, an exact-match probe per frame and a hash probe
 * per subtable tried for the misses; a recirculation cache probe is one 32-byte entry, an
 * insert compares two masks; a meter check takes its meter's spinlock.
 */
#ifndef DPS_FLOW_H
#define DPS_FLOW_H 1

#include <stdint.h>
#include <stdbool.h>

#include <rte_hash.h>
#include <rte_prefetch.h>
#include <rte_spinlock.h>

#include "dpdkswitch.h"

#define DPS_KEY_WORDS (sizeof(struct dps_flow_key) / 8)
#define DPS_MAX_SUBTABLES 512
#define DPS_EMC_ENTRIES 8192               /* per PMD; a power of two */
#define DPS_EMC_SHIFT 13
#define DPS_INFLIGHT 256                   /* misses in flight per PMD; a power of two */
#define DPS_PARKED 4096                    /* frames parked behind them (a few ms at line rate) */
#define DPS_INFLIGHT_NS 20000000ull        /* 20 ms: after that a parked frame is upcalled again */
#define DPS_MAX_RECIRC 6
#define DPS_SIMPLE_PER_PORT 4
#define DPS_TINY 8                         /* flows a subtable compares in place */
#define DPS_TINY_OFF UINT32_MAX            /* n_tiny: it held more once; the hash alone */

struct dps_actions {
    uint32_t len;
    /* A leading sample action (sFlow's, IPFIX's bridge-level): its length (0: none).  The cheap
     * path draws it per frame and parses the key of a sampled frame only (pmd.c's lead_sample),
     * then runs the rest, DATA + LEAD, on the burst. */
    uint16_t lead;
    uint16_t lead_copy;                    /* a sampled frame's branch is a copy (as the executor's) */
    uint16_t needs_key;                    /* hash or userspace in the rest: the frame's key must be parsed */
    uint16_t shape;                        /* DPS_SHAPE_*: DATA + LEAD (the list past the lead sample)
                                            * is one the PMD runs without the executor */
    uint32_t pad;
    uint64_t lead_sflow;                   /* the lead sample is sFlow's alone (a userspace action with
                                            * DPS_UPCALL_SFLOW): its cookie, the record made from the
                                            * frame itself (sflow.c); 0: not */
    uint8_t data[];
};

/* Lists of one of these shapes, and nothing else, run without the executor's loop (pmd.c's
 * dps_pmd_run_flow): the same effect, fewer steps a frame. */
#define DPS_SHAPE_ANY 0
#define DPS_SHAPE_OUTPUT 1                 /* output:PORT */
#define DPS_SHAPE_HASH_RECIRC 2            /* hash(BASIS), recirc(ID): a balance-tcp bond's first pass */

struct dps_subtable;

struct dps_flow {
    struct dps_flow_key key;               /* already masked */
    struct dps_ufid ufid;
    struct dps_actions *actions;           /* RCU: swap whole */
    struct dps_subtable *st;
    uint32_t gen;                          /* bumped whenever the slot is (re)used */
    volatile uint8_t dead;
    uint8_t used;                          /* slot taken (control thread's view) */
    uint16_t pad;
    struct dps_flow_stats base;            /* counters at the last reset (control thread) */
    uint64_t reported;                     /* packets dps_flow_stats_changed() last reported */
    uint64_t created_ns;                   /* datapath clock at the put */
};

struct dps_subtable {
    struct dps_flow_key mask;
    uint32_t n_words;                      /* mask words that are not zero */
    uint8_t words[DPS_KEY_WORDS];
    uint64_t mword[DPS_KEY_WORDS];
    struct rte_hash *h;                    /* compressed masked key -> flow slot */
    uint32_t capacity;
    uint32_t n_flows;
    uint32_t tiny_seq;                     /* odd while the control thread edits the two below */
    uint32_t n_tiny;                       /* == n_flows, or DPS_TINY_OFF */
    uint32_t tiny_slot[DPS_TINY];
    uint64_t tiny_ck[DPS_TINY * DPS_KEY_WORDS];   /* entry e's compressed key at e * n_words */
};

/* The subtables, as PMDs see them: immutable once published. */
struct dps_cls {
    uint64_t gen;                          /* distinct for every published set */
    uint32_t n;
    struct dps_subtable *st[DPS_MAX_SUBTABLES];
};

struct dps_flow_table {
    struct dps_flow *flows;                /* [limit] */
    uint32_t limit;
    uint32_t n_flows;
    uint32_t *free;                        /* free slots (a stack) */
    uint32_t n_free;
    struct dps_actions **dead_actions;     /* replaced action lists waiting, likewise */
    uint32_t n_dead_actions, dead_actions_cap;
    struct rte_hash *by_ufid;              /* UFID -> slot (control thread only) */
    struct dps_cls *cls;                   /* RCU-published */
    volatile uint64_t version;             /* bumped by every change PMDs should notice */
    /* The cheap path (as Open vSwitch's "simple match"): while every subtable's mask covers
     * nothing but in_port, recirc_id, eth_type and the VLAN tags, a frame's flow is found among
     * its port's few flows from its L2 header alone: no full parse, hash or cache. */
    volatile uint32_t n_complex;           /* subtables with any other mask */
    uint32_t port_slots[DPS_MAX_PORTS][DPS_SIMPLE_PER_PORT];   /* simple flows by in_port */
    struct dps_flow_key simple_mask;       /* the bits a simple mask may have */
    bool megaflows;
    struct dps_flow_key exact;             /* the mask used while megaflows are off */
};

/* A PMD's own order of the subtables, re-ranked by hits. */
struct dps_pmd_cls {
    uint64_t seen_gen;                     /* the snapshot the order was made for (by gen: a new
                                            * snapshot may reuse a freed one's address) */
    uint32_t n;
    struct dps_subtable *order[DPS_MAX_SUBTABLES];
    uint64_t hits[DPS_MAX_SUBTABLES];      /* by position in order[] */
    uint64_t next_rank_tsc;
};

struct dps_emc_entry {
    uint32_t hash;
    uint32_t slot;
    uint32_t gen;
    uint32_t pad;
    struct dps_flow_key key;
};
struct dps_emc {
    struct dps_emc_entry e[DPS_EMC_ENTRIES];
};

/* The recirculation cache (per PMD): a frame that ran flow F unchanged and recirculated as
 * RECIRC_ID with a dp_hash hits, on its second pass, the flow G the last such frame of F with
 * the same dp_hash bucket hit, without an exact-match probe of its whole key.  Sound because an
 * entry is made only when G's mask reads nothing F's mask does not (but recirc_id and the low 8
 * bits of dp_hash, both checked): every frame that hit F agrees with that one on all G reads.
 * Entries are checked against both flows' generations, so a flow gone or replaced misses. */
#define DPS_RCACHE_ENTRIES 4096            /* a power of two */
#define DPS_RCACHE_SHIFT 12
struct dps_rcache_entry {
    uint32_t f_slot, f_gen;                /* the first pass's flow */
    uint32_t recirc_id;
    uint32_t dph_mask, dph_value;          /* G's dp_hash match (mask within 0xff) */
    uint32_t g_slot, g_gen;                /* the flow the second pass hits */
    uint32_t pad;
};
struct dps_rcache {
    struct dps_rcache_entry e[DPS_RCACHE_ENTRIES];
};

static inline uint32_t
dps_rcache_index(uint32_t f_slot, uint32_t dp_hash)
{
    return ((f_slot << 8 | (dp_hash & 0xff)) * 0x9e3779b1u) >> (32 - DPS_RCACHE_SHIFT);
}

struct dps_inflight {
    struct {
        uint32_t hash;
        uint32_t valid;
        uint64_t since_ns;
        struct dps_flow_key key;
    } miss[DPS_INFLIGHT];
    struct rte_mbuf *parked[DPS_PARKED];
    uint32_t n_parked;
    uint64_t parked_version;               /* flow table version when last retried */
    uint64_t oldest_ns;
};

/* Flows the slow path just installed for a PMD's misses, for that PMD to put in its exact-match
 * cache (as Open vSwitch inserts a new flow into the EMC of the PMD that missed).  Single
 * producer (control thread), single consumer (the PMD). */
#define DPS_EMC_HINTS 64
struct dps_emc_hints {
    struct {
        uint32_t slot, gen, hash, pad;
        struct dps_flow_key key;
    } h[DPS_EMC_HINTS];
    volatile uint32_t head, tail;
};

struct dps_meter {
    rte_spinlock_t lock;
    bool valid;
    bool pktps;
    uint64_t rate;                         /* tokens per second: packets, or bits / 1000 */
    uint64_t burst;                        /* bucket size, in tokens */
    uint64_t tokens_milli;                 /* thousandths of a token */
    uint64_t last_ns;
    uint64_t packets, dropped;
};

struct dps_dp;
struct dps_pmd;
struct dps_fwd;

int dps_flow_table_init(struct dps_dp *dp, uint32_t limit);
void dps_flow_table_fini(struct dps_dp *dp);
/* After a grace period: recycle dead flow slots and free replaced action lists. */
void dps_flow_reclaim(struct dps_dp *dp);

/* Control thread: the flow KEY hits, without any cache; UINT32_MAX if none. */
uint32_t dps_flow_lookup_slot(const struct dps_dp *dp, const struct dps_flow_key *key);
void dps_emc_hint(struct dps_pmd *pmd, const struct dps_flow_key *key, uint32_t hash, uint32_t slot, uint32_t gen);
void dps_emc_hints_apply(struct dps_pmd *pmd);
/* PMD side: fetch the exact-match cache entry HASH would probe first (its 3 lines), a while
 * before dps_classify_emc looks. */
static inline void
dps_emc_prefetch(const struct dps_emc *emc, uint32_t hash)
{
    const char *e = (const char *)&emc->e[hash & (DPS_EMC_ENTRIES - 1)];
    rte_prefetch0(e);
    rte_prefetch0(e + 64);
    rte_prefetch0(e + 128);
}

/* PMD side: classify a burst (n <= DPS_BURST).  slots[i] gets the slot of keys[i]'s flow or
 * UINT32_MAX.  The two halves, for a PMD that times them: the exact-match cache (sets every
 * slot; the misses' indexes into MISS, returns how many), then the masked classifier for those. */
void dps_classify(struct dps_pmd *pmd, struct rte_mbuf **pkts, struct dps_flow_key *keys, uint32_t *hashes,
                  uint32_t *slots, unsigned n);
unsigned dps_classify_emc(struct dps_pmd *pmd, const struct dps_flow_key *keys, const uint32_t *hashes,
                          uint32_t *slots, unsigned n, unsigned *miss);
void dps_classify_masked(struct dps_pmd *pmd, const struct dps_flow_key *keys, const uint32_t *hashes,
                         uint32_t *slots, unsigned *miss, unsigned n_miss);
/* The same for the frames whose slots[i] is still UINT32_MAX (the others hit already). */
unsigned dps_classify_emc_rest(struct dps_pmd *pmd, const struct dps_flow_key *keys, const uint32_t *hashes,
                               uint32_t *slots, unsigned n, unsigned *miss);
/* PMD side: the recirculation cache (above).  Lookup (inline: per frame of a balance-tcp bond):
 * G's slot, or UINT32_MAX.  Insert: after a second pass found G the slow way; does nothing
 * unless G's mask is within F's (see above). */
static inline uint32_t
dps_rcache_lookup(const struct dps_rcache *rc, const struct dps_flow_table *ft, uint32_t f_slot, uint32_t f_gen,
                  uint32_t recirc_id, uint32_t dp_hash)
{
    const struct dps_rcache_entry *e = &rc->e[dps_rcache_index(f_slot, dp_hash)];
    if (e->f_slot != f_slot || e->f_gen != f_gen || e->recirc_id != recirc_id
        || (dp_hash & e->dph_mask) != e->dph_value || e->g_slot >= ft->limit)
        return UINT32_MAX;
    const struct dps_flow *g = &ft->flows[e->g_slot];
    return g->gen == e->g_gen && !__atomic_load_n(&g->dead, __ATOMIC_ACQUIRE) ? e->g_slot : UINT32_MAX;
}
void dps_rcache_insert(struct dps_pmd *pmd, uint32_t f_slot, uint32_t f_gen, uint32_t recirc_id, uint32_t dp_hash,
                       uint32_t g_slot);
bool dps_meter_allow(struct dps_dp *dp, uint32_t id, uint32_t bytes, uint64_t now_ns);
uint32_t dps_key_hash(const struct dps_flow_key *k);

#endif
