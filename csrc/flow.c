/*
 * flow.c — the flow table and the masked classifier: flow put/delete/get/dump from the control
 * thread, batched classification (exact-match cache, then subtables) on the PMDs, and meters.
 * The concurrency rules are in flow.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_hash_crc.h>
#include <rte_prefetch.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include "datapath.h"

/* ---- Hashing and masks ---- */

/* CRC32C of the key in three independent chains (the instruction's latency, not its
 * throughput, bounds one chain), folded into one. */
uint32_t
dps_key_hash(const struct dps_flow_key *k)
{
    const uint64_t *w = (const uint64_t *)(const void *)k;
    uint32_t a = 0xdeadbeef, b = 0x9e3779b9, c = 0x85ebca6b;
    for (unsigned i = 0; i + 2 < DPS_KEY_WORDS; i += 3) {
        a = rte_hash_crc_8byte(w[i], a);
        b = rte_hash_crc_8byte(w[i + 1], b);
        c = rte_hash_crc_8byte(w[i + 2], c);
    }
    return rte_hash_crc_4byte(a ^ (b << 11 | b >> 21) ^ (c << 22 | c >> 10), 0x27d4eb2f);
}

static void
key_and(struct dps_flow_key *out, const struct dps_flow_key *k, const struct dps_flow_key *m)
{
    uint64_t *o = (uint64_t *)(void *)out;
    const uint64_t *a = (const void *)k, *b = (const void *)m;
    for (unsigned i = 0; i < DPS_KEY_WORDS; i++)
        o[i] = a[i] & b[i];
}

/* The subtable's hash key: the masked words of a key, packed. */
static inline void
compress(const struct dps_subtable *st, const struct dps_flow_key *k, uint64_t *out)
{
    const uint64_t *w = (const uint64_t *)(const void *)k;
    out[0] = 0;
    for (uint32_t i = 0; i < st->n_words; i++)
        out[i] = w[st->words[i]] & st->mword[i];
}

static uint32_t
subtable_key_len(const struct dps_subtable *st)
{
    return (st->n_words ? st->n_words : 1) * 8;
}

/* ---- Subtables ---- */

/* The tiny[] sequence count (one writer, the control thread), as DPDK's rte_seqcount. */
static inline void
tiny_write_begin(struct dps_subtable *st)
{
    __atomic_store_n(&st->tiny_seq, st->tiny_seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static inline void
tiny_write_end(struct dps_subtable *st)
{
    __atomic_store_n(&st->tiny_seq, st->tiny_seq + 1, __ATOMIC_RELEASE);
}

static void
tiny_add(struct dps_subtable *st, const uint64_t *ck, uint32_t slot)
{
    if (st->n_tiny == DPS_TINY_OFF)
        return;
    tiny_write_begin(st);
    if (st->n_tiny == DPS_TINY) {
        __atomic_store_n(&st->n_tiny, DPS_TINY_OFF, __ATOMIC_RELAXED);
    } else {
        memcpy(&st->tiny_ck[st->n_tiny * st->n_words], ck, st->n_words * 8);
        st->tiny_slot[st->n_tiny] = slot;
        __atomic_store_n(&st->n_tiny, st->n_tiny + 1, __ATOMIC_RELAXED);
    }
    tiny_write_end(st);
}

static void
tiny_del(struct dps_subtable *st, uint32_t slot)
{
    if (st->n_tiny == DPS_TINY_OFF)
        return;
    for (uint32_t e = 0; e < st->n_tiny; e++)
        if (st->tiny_slot[e] == slot) {
            uint32_t last = st->n_tiny - 1;
            tiny_write_begin(st);
            memcpy(&st->tiny_ck[e * st->n_words], &st->tiny_ck[last * st->n_words], st->n_words * 8);
            st->tiny_slot[e] = st->tiny_slot[last];
            __atomic_store_n(&st->n_tiny, last, __ATOMIC_RELAXED);
            tiny_write_end(st);
            return;
        }
}

/* PMD side: FOUND[j] = the slot of the flow KEYS[MISS[j]] belongs to in ST, or UINT32_MAX.
 * False when tiny[] cannot answer (too many flows, or edited meanwhile): probe the hash. */
static inline bool
tiny_probe(const struct dps_subtable *st, const struct dps_flow_key *keys, const unsigned *miss, unsigned n,
           uint32_t *found)
{
    uint32_t seq = __atomic_load_n(&st->tiny_seq, __ATOMIC_ACQUIRE);
    uint32_t nt = __atomic_load_n(&st->n_tiny, __ATOMIC_RELAXED);
    if ((seq & 1) || nt > DPS_TINY)
        return false;
    const uint32_t nw = st->n_words;
    for (unsigned j = 0; j < n; j++) {
        const uint64_t *k = (const uint64_t *)(const void *)&keys[miss[j]];
        found[j] = UINT32_MAX;
        for (uint32_t e = 0; e < nt; e++) {
            const uint64_t *t = &st->tiny_ck[e * nw];
            uint32_t w = 0;
            while (w < nw && t[w] == (k[st->words[w]] & st->mword[w]))
                w++;
            if (w == nw) {
                found[j] = st->tiny_slot[e];
                break;
            }
        }
    }
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return __atomic_load_n(&st->tiny_seq, __ATOMIC_RELAXED) == seq;
}

static struct rte_hash *
subtable_hash(const struct dps_subtable *st, uint32_t capacity)
{
    static uint32_t seq;
    char name[RTE_HASH_NAMESIZE];
    snprintf(name, sizeof name, "dps_st%u", __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED));
    struct rte_hash_parameters p = {
        .name = name, .entries = capacity, .key_len = subtable_key_len(st),
        .hash_func = rte_hash_crc, .hash_func_init_val = 0, .socket_id = (int)rte_socket_id(),
        .extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF | RTE_HASH_EXTRA_FLAGS_EXT_TABLE,
    };
    return rte_hash_create(&p);
}

static struct dps_subtable *
subtable_new(const struct dps_flow_key *mask, uint32_t capacity)
{
    struct dps_subtable *st = rte_zmalloc("dps_subtable", sizeof *st, RTE_CACHE_LINE_SIZE);
    if (!st)
        return NULL;
    st->mask = *mask;
    const uint64_t *m = (const uint64_t *)(const void *)mask;
    for (unsigned i = 0; i < DPS_KEY_WORDS; i++)
        if (m[i]) {
            st->words[st->n_words] = (uint8_t)i;
            st->mword[st->n_words++] = m[i];
        }
    st->capacity = capacity;
    st->h = subtable_hash(st, capacity);
    if (!st->h) {
        rte_free(st);
        return NULL;
    }
    return st;
}

static void
subtable_free(struct dps_subtable *st)
{
    if (st) {
        rte_hash_free(st->h);
        rte_free(st);
    }
}

static bool
mask_is_simple(const struct dps_flow_table *ft, const struct dps_flow_key *mask)
{
    const uint64_t *m = (const void *)mask, *s = (const void *)&ft->simple_mask;
    uint64_t extra = 0;
    for (unsigned i = 0; i < DPS_KEY_WORDS; i++)
        extra |= m[i] & ~s[i];
    return !extra && mask->in_port == UINT32_MAX;
}

/* Publish a new set of subtables: OLD's array with REMOVE taken out and ADD put in. */
static int
cls_publish(struct dps_dp *dp, struct dps_subtable *remove, struct dps_subtable *add)
{
    struct dps_flow_table *ft = &dp->ft;
    struct dps_cls *n = rte_zmalloc("dps_cls", sizeof *n, RTE_CACHE_LINE_SIZE);
    if (!n)
        return dps_error(ENOMEM, "no memory for the classifier");
    for (uint32_t i = 0; i < ft->cls->n; i++)
        if (ft->cls->st[i] != remove)
            n->st[n->n++] = ft->cls->st[i];
    if (add)
        n->st[n->n++] = add;
    n->gen = ft->cls->gen + 1;
    uint32_t complex = 0;
    for (uint32_t i = 0; i < n->n; i++)
        complex += !mask_is_simple(ft, &n->st[i]->mask);
    __atomic_store_n(&ft->n_complex, complex, __ATOMIC_RELEASE);
    struct dps_cls *old = ft->cls;
    __atomic_store_n(&ft->cls, n, __ATOMIC_RELEASE);
    ft->version++;
    rte_rcu_qsbr_synchronize(dp->qsbr, RTE_QSBR_THRID_INVALID);
    rte_free(old);
    return 0;
}

static struct dps_subtable *
subtable_find(struct dps_flow_table *ft, const struct dps_flow_key *mask)
{
    for (uint32_t i = 0; i < ft->cls->n; i++)
        if (memcmp(&ft->cls->st[i]->mask, mask, sizeof *mask) == 0)
            return ft->cls->st[i];
    return NULL;
}

/* A full subtable is rebuilt twice as big and swapped in. */
static int
subtable_grow(struct dps_dp *dp, struct dps_subtable *st, struct dps_subtable **out)
{
    struct dps_flow_table *ft = &dp->ft;
    struct dps_subtable *big = subtable_new(&st->mask, st->capacity * 2);
    if (!big)
        return dps_error(ENOMEM, "no memory to grow a subtable to %u flows", st->capacity * 2);
    const void *k;
    void *data;
    uint32_t it = 0;
    while (rte_hash_iterate(st->h, &k, &data, &it) >= 0) {
        if (rte_hash_add_key_data(big->h, k, data) < 0) {
            subtable_free(big);
            return dps_error(ENOMEM, "cannot grow a subtable");
        }
        ft->flows[(uintptr_t)data].st = big;
    }
    big->n_flows = st->n_flows;
    big->n_tiny = DPS_TINY_OFF;
    int ret = cls_publish(dp, st, big);
    if (ret < 0)
        return ret;
    subtable_free(st);
    *out = big;
    return 0;
}

/* ---- The table ---- */

int
dps_flow_table_init(struct dps_dp *dp, uint32_t limit)
{
    struct dps_flow_table *ft = &dp->ft;
    ft->limit = limit;
    ft->flows = calloc(limit, sizeof *ft->flows);
    ft->free = malloc(limit * sizeof *ft->free);
    ft->cls = rte_zmalloc("dps_cls", sizeof *ft->cls, RTE_CACHE_LINE_SIZE);
    char name[RTE_HASH_NAMESIZE];
    static uint32_t seq;
    snprintf(name, sizeof name, "dps_ufid%u", __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED));
    struct rte_hash_parameters p = { .name = name, .entries = limit < 1024 ? 1024 : limit,
                                     .key_len = sizeof(struct dps_ufid), .hash_func = rte_hash_crc,
                                     .socket_id = (int)rte_socket_id(),
                                     .extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE };
    ft->by_ufid = rte_hash_create(&p);
    if (!ft->flows || !ft->free || !ft->cls || !ft->by_ufid)
        return dps_error(ENOMEM, "no memory for a flow table of %u flows", limit);
    for (uint32_t i = 0; i < limit; i++)
        ft->free[i] = limit - 1 - i;
    ft->n_free = limit;
    ft->megaflows = true;
    ft->cls->gen = 1;
    memset(ft->port_slots, 0xff, sizeof ft->port_slots);
    ft->simple_mask.in_port = UINT32_MAX;
    ft->simple_mask.recirc_id = UINT32_MAX;
    ft->simple_mask.eth_type = UINT16_MAX;
    ft->simple_mask.vlan_tci[0] = ft->simple_mask.vlan_tci[1] = UINT16_MAX;
    ft->simple_mask.vlan_tpid[0] = ft->simple_mask.vlan_tpid[1] = UINT16_MAX;
    memset(&ft->exact, 0xff, sizeof ft->exact);
    ft->exact.pad0 = ft->exact.pad1 = ft->exact.pad2 = 0;
    return 0;
}

void
dps_flow_table_fini(struct dps_dp *dp)
{
    struct dps_flow_table *ft = &dp->ft;
    if (ft->flows)
        for (uint32_t i = 0; i < ft->limit; i++)
            if (ft->flows[i].used)
                rte_free(ft->flows[i].actions);
    for (uint32_t i = 0; i < ft->n_dead_actions; i++)
        rte_free(ft->dead_actions[i]);
    if (ft->cls)
        for (uint32_t i = 0; i < ft->cls->n; i++)
            subtable_free(ft->cls->st[i]);
    rte_free(ft->cls);
    rte_hash_free(ft->by_ufid);
    free(ft->flows);
    free(ft->free);
    free(ft->dead_actions);
    memset(ft, 0, sizeof *ft);
}

static void
flow_stats_sum(const struct dps_dp *dp, uint32_t slot, struct dps_flow_stats *out)
{
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i <= DPS_MAX_PMDS; i++) {
        const struct dps_pmd *pmd = dp->pmds[i];
        if (!pmd || !pmd->fstats)
            continue;
        const struct dps_flow_stats *s = &pmd->fstats[slot];
        out->packets += s->packets;
        out->bytes += s->bytes;
        out->tcp_flags |= s->tcp_flags;
        if (s->used_ns > out->used_ns)
            out->used_ns = s->used_ns;
    }
}

/* Counters since the flow was put or last reset.  PMDs own the counters, so a reset keeps a
 * baseline instead of writing them; TCP flags, an OR, cannot be un-ORed and stay as seen. */
static void
flow_stats_since_reset(const struct dps_dp *dp, uint32_t slot, struct dps_flow_stats *out)
{
    const struct dps_flow *f = &dp->ft.flows[slot];
    flow_stats_sum(dp, slot, out);
    out->packets -= f->base.packets;
    out->bytes -= f->base.bytes;
    if (!out->packets)
        out->tcp_flags = 0;
}

static int
ufid_slot(const struct dps_flow_table *ft, const struct dps_ufid *ufid)
{
    void *data;
    if (rte_hash_lookup_data(ft->by_ufid, ufid, &data) < 0)
        return -1;
    return (int)(uintptr_t)data;
}

/* The list's DPS_SHAPE_* (flow.h). */
static uint16_t
actions_shape(const uint8_t *a, uint32_t len)
{
    const struct dps_action *h = (const void *)a;
    if (len == sizeof *h && h->type == DPS_ACT_OUTPUT)
        return DPS_SHAPE_OUTPUT;
    if (len == 2 * sizeof *h && h[0].type == DPS_ACT_HASH && h[0].len == sizeof *h && h[1].type == DPS_ACT_RECIRC)
        return DPS_SHAPE_HASH_RECIRC;
    return DPS_SHAPE_ANY;
}

static struct dps_actions *
actions_copy(const uint8_t *a, uint32_t len)
{
    struct dps_actions *acts = rte_malloc("dps_actions", sizeof *acts + len, RTE_CACHE_LINE_SIZE);
    if (acts) {
        const struct dps_action *h = (const void *)a;
        uint32_t lead = 0;
        acts->len = len;
        acts->lead_copy = 0;
        acts->lead_sflow = 0;
        if (len >= sizeof *h && h->type == DPS_ACT_SAMPLE) {
            lead = h->len;
            acts->lead_copy = dps_actions_modify(a + sizeof *h, lead - (uint32_t)sizeof *h)
                              || dps_actions_modify(a + lead, len - lead);
            const struct dps_action *u = (const void *)(a + sizeof *h);
            uint64_t cookie;
            if (lead == 2 * sizeof *h + 8 && u->type == DPS_ACT_USERSPACE && u->len == sizeof *u + 8) {
                memcpy(&cookie, a + 2 * sizeof *h, 8);
                if ((cookie & (DPS_UPCALL_SFLOW | DPS_UPCALL_CONTROL)) == DPS_UPCALL_SFLOW)
                    acts->lead_sflow = cookie;
            }
        }
        acts->lead = (uint16_t)lead;
        acts->needs_key = dps_actions_need_key(a + lead, len - lead);
        acts->shape = actions_shape(a + lead, len - lead);   /* what runs after the lead sample */
        memcpy(acts->data, a, len);
    }
    return acts;
}

static bool
is_simple(const struct dps_flow_table *ft, const struct dps_flow *f)
{
    return mask_is_simple(ft, &f->st->mask) && f->key.recirc_id == 0 && f->key.in_port < DPS_MAX_PORTS;
}

/* A simple flow joins (or leaves) its port's short list; a full list is no loss, only slower:
 * the frames take the full path.  Stores are single words: PMDs read the list lock-free. */
static void
simple_link(struct dps_flow_table *ft, const struct dps_flow *f, uint32_t slot, bool add)
{
    uint32_t *l = ft->port_slots[f->key.in_port];
    for (unsigned i = 0; i < DPS_SIMPLE_PER_PORT; i++)
        if (add ? l[i] == UINT32_MAX : l[i] == slot) {
            __atomic_store_n(&l[i], add ? slot : UINT32_MAX, __ATOMIC_RELEASE);
            return;
        }
}

static void
actions_retire(struct dps_flow_table *ft, struct dps_actions *a)
{
    if (ft->n_dead_actions == ft->dead_actions_cap) {
        uint32_t cap = ft->dead_actions_cap ? ft->dead_actions_cap * 2 : 256;
        void *n = realloc(ft->dead_actions, cap * sizeof *ft->dead_actions);
        if (!n)
            return;   /* leak one list rather than free it under a reader */
        ft->dead_actions = n;
        ft->dead_actions_cap = cap;
    }
    ft->dead_actions[ft->n_dead_actions++] = a;
}

void
dps_flow_reclaim(struct dps_dp *dp)
{
    struct dps_flow_table *ft = &dp->ft;
    for (uint32_t i = 0; i < ft->n_dead_actions; i++)
        rte_free(ft->dead_actions[i]);
    ft->n_dead_actions = 0;
}

int
dps_actions_check(const uint8_t *actions, uint32_t len)
{
    char why[160];
    if (dps_actions_validate(actions, len, why, sizeof why) < 0)
        return dps_error(EINVAL, "bad actions: %s", why);
    return 0;
}

static int
flow_put_one(struct dps_dp *dp, struct dps_flow_put *p)
{
    struct dps_flow_table *ft = &dp->ft;
    if (!p->key || !p->mask)
        return dps_error(EINVAL, "a flow needs a key and a mask");
    int rc = dps_actions_check(p->actions, p->actions_len);
    if (rc < 0)
        return rc;

    int slot = ufid_slot(ft, &p->ufid);
    if (slot >= 0) {
        if (p->flags & DPS_FLOW_CREATE)
            return dps_error(EEXIST, "flow %016lx%016lx exists", (unsigned long)p->ufid.hi,
                             (unsigned long)p->ufid.lo);
        struct dps_flow *f = &ft->flows[slot];
        struct dps_actions *a = actions_copy(p->actions, p->actions_len);
        if (!a)
            return dps_error(ENOMEM, "no memory for actions");
        struct dps_actions *old = f->actions;
        __atomic_store_n(&f->actions, a, __ATOMIC_RELEASE);
        actions_retire(ft, old);
        if (p->flags & DPS_FLOW_RESET_STATS)
            flow_stats_sum(dp, (uint32_t)slot, &f->base);
        return 0;
    }
    if (p->flags & DPS_FLOW_MODIFY)
        return dps_error(ENOENT, "no flow %016lx%016lx to modify", (unsigned long)p->ufid.hi,
                         (unsigned long)p->ufid.lo);
    if (ft->n_free == 0)
        return dps_error(ENOSPC, "flow limit (%u) reached", ft->limit);

    const struct dps_flow_key *mask = ft->megaflows ? p->mask : &ft->exact;
    struct dps_flow_key key;
    key_and(&key, p->key, mask);
    struct dps_subtable *st = subtable_find(ft, mask);
    if (!st) {
        if (ft->cls->n == DPS_MAX_SUBTABLES)
            return dps_error(ENOSPC, "%d distinct masks: no room for another", DPS_MAX_SUBTABLES);
        st = subtable_new(mask, 1024);
        if (!st)
            return dps_error(ENOMEM, "no memory for a subtable");
        int ret = cls_publish(dp, NULL, st);
        if (ret < 0) {
            subtable_free(st);
            return ret;
        }
    }
    uint64_t ck[DPS_KEY_WORDS];
    compress(st, &key, ck);
    if (rte_hash_lookup(st->h, ck) >= 0)
        return dps_error(EEXIST, "an identical flow (same key and mask) exists under another UFID");
    if (st->n_flows >= st->capacity * 7 / 8) {
        int ret = subtable_grow(dp, st, &st);
        if (ret < 0)
            return ret;
    }

    uint32_t s = ft->free[--ft->n_free];
    struct dps_flow *f = &ft->flows[s];
    f->actions = actions_copy(p->actions, p->actions_len);
    if (!f->actions) {
        ft->free[ft->n_free++] = s;
        return dps_error(ENOMEM, "no memory for actions");
    }
    f->key = key;
    f->ufid = p->ufid;
    f->st = st;
    f->gen++;
    f->used = 1;
    memset(&f->base, 0, sizeof f->base);   /* the slot's PMD counters were zeroed when it died */
    f->reported = 0;
    f->created_ns = dps_clock_now(dp);
    __atomic_store_n(&f->dead, 0, __ATOMIC_RELEASE);
    int ret = rte_hash_add_key_data(ft->by_ufid, &p->ufid, (void *)(uintptr_t)s);
    if (ret == 0)
        ret = rte_hash_add_key_data(st->h, ck, (void *)(uintptr_t)s);
    if (ret < 0) {
        rte_hash_del_key(ft->by_ufid, &p->ufid);
        rte_free(f->actions);
        f->used = 0;
        f->dead = 1;
        ft->free[ft->n_free++] = s;
        return dps_error(-ret, "cannot index the flow: %s", rte_strerror(-ret));
    }
    tiny_add(st, ck, s);
    st->n_flows++;
    ft->n_flows++;
    if (is_simple(ft, f))
        simple_link(ft, f, s, true);
    return 0;
}

int
dps_flow_put_batch(struct dps_dp *dp, struct dps_flow_put *puts, unsigned n)
{
    int ok = 0;
    for (unsigned i = 0; i < n; i++) {
        puts[i].result = flow_put_one(dp, &puts[i]);
        ok += puts[i].result == 0;
    }
    if (ok)
        __atomic_fetch_add(&dp->ft.version, 1, __ATOMIC_RELEASE);
    if (dp->ft.n_dead_actions > 4096) {
        rte_rcu_qsbr_synchronize(dp->qsbr, RTE_QSBR_THRID_INVALID);
        dps_flow_reclaim(dp);
    }
    return ok;
}

int
dps_flow_put_packed(struct dps_dp *dp, unsigned n, const struct dps_ufid *ufids, const uint8_t *keys,
                    const uint8_t *masks, const uint8_t *actions, const uint32_t *actions_ofs, uint32_t flags,
                    int32_t *results)
{
    int ok = 0;
    for (unsigned i = 0; i < n; i++) {
        struct dps_flow_put p = {
            .ufid = ufids[i],
            .key = (const struct dps_flow_key *)(keys + (size_t)i * sizeof(struct dps_flow_key)),
            .mask = (const struct dps_flow_key *)(masks + (size_t)i * sizeof(struct dps_flow_key)),
            .actions = actions + actions_ofs[i],
            .actions_len = actions_ofs[i + 1] - actions_ofs[i],
            .flags = flags,
        };
        results[i] = flow_put_one(dp, &p);
        ok += results[i] == 0;
    }
    if (ok)
        __atomic_fetch_add(&dp->ft.version, 1, __ATOMIC_RELEASE);
    if (dp->ft.n_dead_actions > 4096) {
        rte_rcu_qsbr_synchronize(dp->qsbr, RTE_QSBR_THRID_INVALID);
        dps_flow_reclaim(dp);
    }
    return ok;
}

int
dps_flow_del_batch(struct dps_dp *dp, const struct dps_ufid *ufids, unsigned n, struct dps_flow_stats *stats,
                   uint8_t *found)
{
    struct dps_flow_table *ft = &dp->ft;
    struct { uint32_t slot; int32_t pos; struct dps_subtable *st; unsigned idx; } *dead =
        malloc((n ? n : 1) * sizeof *dead);
    if (!dead)
        return dps_error(ENOMEM, "no memory to delete %u flows", n);
    unsigned n_dead = 0;
    for (unsigned i = 0; i < n; i++) {
        int slot = ufid_slot(ft, &ufids[i]);
        if (stats)
            memset(&stats[i], 0, sizeof stats[i]);
        if (found)
            found[i] = slot >= 0;
        if (slot < 0)
            continue;
        struct dps_flow *f = &ft->flows[slot];
        uint64_t ck[DPS_KEY_WORDS];
        compress(f->st, &f->key, ck);
        if (is_simple(ft, f))
            simple_link(ft, f, (uint32_t)slot, false);
        __atomic_store_n(&f->dead, 1, __ATOMIC_RELEASE);
        tiny_del(f->st, (uint32_t)slot);
        int32_t pos = rte_hash_del_key(f->st->h, ck);
        rte_hash_del_key(ft->by_ufid, &ufids[i]);
        f->st->n_flows--;
        ft->n_flows--;
        dead[n_dead++] = (typeof(*dead)){ (uint32_t)slot, pos, f->st, i };
    }
    if (n_dead) {
        __atomic_fetch_add(&ft->version, 1, __ATOMIC_RELEASE);
        rte_rcu_qsbr_synchronize(dp->qsbr, RTE_QSBR_THRID_INVALID);   /* no PMD holds them now */
        for (unsigned i = 0; stats && i < n_dead; i++)
            flow_stats_since_reset(dp, dead[i].slot, &stats[dead[i].idx]);
        for (unsigned i = 0; i < n_dead; i++) {
            struct dps_flow *f = &ft->flows[dead[i].slot];
            for (unsigned p = 0; p <= DPS_MAX_PMDS; p++)   /* no PMD writes them any more */
                if (dp->pmds[p] && dp->pmds[p]->fstats)
                    memset(&dp->pmds[p]->fstats[dead[i].slot], 0, sizeof(struct dps_flow_stats));
            if (dead[i].pos >= 0)
                rte_hash_free_key_with_position(dead[i].st->h, dead[i].pos);
            rte_free(f->actions);
            f->actions = NULL;
            f->used = 0;
            ft->free[ft->n_free++] = dead[i].slot;
        }
        for (unsigned i = 0; i < n_dead; i++)    /* empty subtables go */
            if (dead[i].st && dead[i].st->n_flows == 0) {
                struct dps_subtable *st = dead[i].st;
                for (unsigned j = i; j < n_dead; j++)
                    if (dead[j].st == st)
                        dead[j].st = NULL;
                if (cls_publish(dp, st, NULL) == 0)
                    subtable_free(st);
            }
        dps_flow_reclaim(dp);
    }
    free(dead);
    return (int)n_dead;
}

int
dps_flow_get(const struct dps_dp *dp, const struct dps_ufid *ufid, struct dps_flow_key *key,
             struct dps_flow_key *mask, struct dps_flow_stats *stats, uint8_t *actions, uint32_t *actions_len)
{
    int slot = ufid_slot(&dp->ft, ufid);
    if (slot < 0)
        return dps_error(ENOENT, "no flow %016lx%016lx", (unsigned long)ufid->hi, (unsigned long)ufid->lo);
    const struct dps_flow *f = &dp->ft.flows[slot];
    if (key)
        *key = f->key;
    if (mask)
        *mask = f->st->mask;
    if (stats)
        flow_stats_since_reset(dp, (uint32_t)slot, stats);
    if (actions_len) {
        uint32_t room = *actions_len;
        *actions_len = f->actions->len;
        if (f->actions->len > room)
            return dps_error(ENOSPC, "actions are %u bytes", f->actions->len);
        if (actions)
            memcpy(actions, f->actions->data, f->actions->len);
    }
    return 0;
}

int
dps_flow_dump(const struct dps_dp *dp, uint32_t *cursor, struct dps_flow_dump *out, unsigned n,
              uint8_t *actbuf, uint32_t actbuf_len)
{
    const struct dps_flow_table *ft = &dp->ft;
    unsigned k = 0;
    uint32_t used = 0, i = *cursor;
    for (; i < ft->limit && k < n; i++) {
        const struct dps_flow *f = &ft->flows[i];
        if (!f->used || f->dead)
            continue;
        if (used + f->actions->len > actbuf_len)
            break;
        out[k].ufid = f->ufid;
        out[k].key = f->key;
        out[k].mask = f->st->mask;
        flow_stats_since_reset(dp, i, &out[k].stats);
        out[k].actions_ofs = used;
        out[k].actions_len = f->actions->len;
        memcpy(actbuf + used, f->actions->data, f->actions->len);
        used += f->actions->len;
        k++;
    }
    *cursor = i >= ft->limit ? UINT32_MAX : i;
    return (int)k;
}

int
dps_flow_stats_changed(struct dps_dp *dp, uint32_t *cursor, uint64_t idle_before_ns,
                       struct dps_flow_delta *out, unsigned n)
{
    struct dps_flow_table *ft = &dp->ft;
    unsigned k = 0;
    uint32_t i = *cursor;
    for (; i < ft->limit && k < n; i++) {
        struct dps_flow *f = &ft->flows[i];
        if (!f->used || f->dead)
            continue;
        struct dps_flow_stats st;
        flow_stats_since_reset(dp, i, &st);
        uint64_t last = st.used_ns ? st.used_ns : f->created_ns;
        if (st.packets == f->reported && !(idle_before_ns && last < idle_before_ns))
            continue;
        f->reported = st.packets;
        out[k].ufid = f->ufid;
        out[k].stats = st;
        out[k].created_ns = f->created_ns;
        k++;
    }
    *cursor = i >= ft->limit ? UINT32_MAX : i;
    return (int)k;
}

int
dps_flow_flush(struct dps_dp *dp)
{
    struct dps_flow_table *ft = &dp->ft;
    struct dps_ufid *all = malloc((ft->n_flows ? ft->n_flows : 1) * sizeof *all);
    if (!all)
        return dps_error(ENOMEM, "no memory to flush");
    unsigned n = 0;
    for (uint32_t i = 0; i < ft->limit; i++)
        if (ft->flows[i].used && !ft->flows[i].dead)
            all[n++] = ft->flows[i].ufid;
    int ret = dps_flow_del_batch(dp, all, n, NULL, NULL);
    free(all);
    return ret;
}

unsigned
dps_flow_count(const struct dps_dp *dp)
{
    return dp->ft.n_flows;
}

unsigned
dps_subtable_count(const struct dps_dp *dp)
{
    return dp->ft.cls->n;
}

int
dps_megaflows_set(struct dps_dp *dp, int enabled)
{
    dp->ft.megaflows = enabled != 0;
    int ret = dps_flow_flush(dp);
    return ret < 0 ? ret : 0;
}

void
dps_emc_insert_prob_set(struct dps_dp *dp, uint32_t inv_prob)
{
    __atomic_store_n(&dp->emc_inv_prob, inv_prob, __ATOMIC_RELAXED);
}

/* ---- Classification (PMD side) ---- */

static inline bool
key_eq(const struct dps_flow_key *a, const struct dps_flow_key *b)
{
    const uint64_t *x = (const void *)a, *y = (const void *)b;
    uint64_t d = 0;
    for (unsigned i = 0; i < DPS_KEY_WORDS; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}

static inline bool
flow_alive(const struct dps_flow_table *ft, uint32_t slot, uint32_t gen)
{
    if (slot >= ft->limit)
        return false;
    const struct dps_flow *f = &ft->flows[slot];
    return f->gen == gen && !__atomic_load_n(&f->dead, __ATOMIC_ACQUIRE);
}

static inline uint32_t
emc_lookup(const struct dps_emc *emc, const struct dps_flow_table *ft, const struct dps_flow_key *k, uint32_t h)
{
    for (uint32_t probe = 0, idx = h; probe < 2; probe++, idx >>= DPS_EMC_SHIFT) {
        const struct dps_emc_entry *e = &emc->e[idx & (DPS_EMC_ENTRIES - 1)];
        if (e->hash == h && e->slot != UINT32_MAX && key_eq(&e->key, k) && flow_alive(ft, e->slot, e->gen))
            return e->slot;
    }
    return UINT32_MAX;
}

static inline void
emc_insert(struct dps_emc *emc, const struct dps_flow_table *ft, const struct dps_flow_key *k, uint32_t h,
           uint32_t slot)
{
    struct dps_emc_entry *a = &emc->e[h & (DPS_EMC_ENTRIES - 1)];
    struct dps_emc_entry *b = &emc->e[(h >> DPS_EMC_SHIFT) & (DPS_EMC_ENTRIES - 1)];
    struct dps_emc_entry *e = a;
    if (a->slot != UINT32_MAX && flow_alive(ft, a->slot, a->gen) && !(a->hash == h && key_eq(&a->key, k)))
        e = b;                             /* keep a live entry in the first place; take the second */
    e->hash = h;
    e->slot = slot;
    e->gen = ft->flows[slot].gen;
    e->key = *k;
}

/* Bring the PMD's subtable order up to date with the published set; re-rank by hits now and
 * then (about once a second), as Open vSwitch re-sorts its pvector. */
static void
pmd_cls_refresh(struct dps_pmd_cls *pc, const struct dps_cls *cls)
{
    if (pc->seen_gen != cls->gen) {
        struct dps_subtable *order[DPS_MAX_SUBTABLES];
        uint64_t hits[DPS_MAX_SUBTABLES];
        uint32_t n = 0;
        for (uint32_t i = 0; i < pc->n; i++)              /* keep the order of those still there */
            for (uint32_t j = 0; j < cls->n; j++)
                if (cls->st[j] == pc->order[i]) {
                    hits[n] = pc->hits[i];
                    order[n++] = pc->order[i];
                    break;
                }
        for (uint32_t j = 0; j < cls->n; j++) {          /* then the new ones */
            bool known = false;
            for (uint32_t i = 0; i < n && !known; i++)
                known = order[i] == cls->st[j];
            if (!known) {
                hits[n] = 0;
                order[n++] = cls->st[j];
            }
        }
        memcpy(pc->order, order, n * sizeof *order);
        memcpy(pc->hits, hits, n * sizeof *hits);
        pc->n = n;
        pc->seen_gen = cls->gen;
    }
    uint64_t now = rte_rdtsc();
    if (now >= pc->next_rank_tsc) {
        pc->next_rank_tsc = now + rte_get_tsc_hz();
        for (uint32_t i = 1; i < pc->n; i++)             /* insertion sort, most hits first */
            for (uint32_t j = i; j > 0 && pc->hits[j] > pc->hits[j - 1]; j--) {
                RTE_SWAP(pc->hits[j], pc->hits[j - 1]);
                RTE_SWAP(pc->order[j], pc->order[j - 1]);
            }
        for (uint32_t i = 0; i < pc->n; i++)
            pc->hits[i] /= 2;
    }
}

unsigned
dps_classify_emc(struct dps_pmd *pmd, const struct dps_flow_key *keys, const uint32_t *hashes, uint32_t *slots,
                 unsigned n, unsigned *miss)
{
    const struct dps_flow_table *ft = &pmd->dp->ft;
    uint32_t inv = __atomic_load_n(&pmd->dp->emc_inv_prob, __ATOMIC_RELAXED);
    unsigned n_miss = 0;

    for (unsigned i = 0; i < n; i++) {
        if (inv && i + 4 < n) {            /* the flow a later frame's entry names: its line */
            uint32_t s = pmd->emc->e[hashes[i + 4] & (DPS_EMC_ENTRIES - 1)].slot;
            if (s < ft->limit)
                rte_prefetch0(&ft->flows[s].gen);
        }
        slots[i] = inv ? emc_lookup(pmd->emc, ft, &keys[i], hashes[i]) : UINT32_MAX;
        if (slots[i] != UINT32_MAX)
            pmd->stats->emc_hits++;
        else
            miss[n_miss++] = i;
    }
    return n_miss;
}

unsigned
dps_classify_emc_rest(struct dps_pmd *pmd, const struct dps_flow_key *keys, const uint32_t *hashes, uint32_t *slots,
                      unsigned n, unsigned *miss)
{
    const struct dps_flow_table *ft = &pmd->dp->ft;
    uint32_t inv = __atomic_load_n(&pmd->dp->emc_inv_prob, __ATOMIC_RELAXED);
    unsigned n_miss = 0;
    for (unsigned i = 0; i < n; i++) {
        if (slots[i] != UINT32_MAX)
            continue;
        slots[i] = inv ? emc_lookup(pmd->emc, ft, &keys[i], hashes[i]) : UINT32_MAX;
        if (slots[i] != UINT32_MAX)
            pmd->stats->emc_hits++;
        else
            miss[n_miss++] = i;
    }
    return n_miss;
}

void
dps_rcache_insert(struct dps_pmd *pmd, uint32_t f_slot, uint32_t f_gen, uint32_t recirc_id, uint32_t dp_hash,
                  uint32_t g_slot)
{
    const struct dps_flow_table *ft = &pmd->dp->ft;
    const struct dps_flow *f = &ft->flows[f_slot], *g = &ft->flows[g_slot];
    const struct dps_flow_key *fm = &f->st->mask, *gm = &g->st->mask;
    if ((gm->in_port & ~fm->in_port) || (gm->dp_hash & ~0xffu) || gm->pad0)
        return;
    const uint64_t *fw = (const void *)fm, *gw = (const void *)gm;
    for (unsigned w = 2; w < DPS_KEY_WORDS; w++)       /* past the metadata: within F's mask */
        if (gw[w] & ~fw[w])
            return;
    struct dps_rcache_entry *e = &pmd->rcache->e[dps_rcache_index(f_slot, dp_hash)];
    e->f_slot = f_slot;
    e->f_gen = f_gen;
    e->recirc_id = recirc_id;
    e->dph_mask = gm->dp_hash;
    e->dph_value = g->key.dp_hash;
    e->g_slot = g_slot;
    e->g_gen = g->gen;
}

void
dps_classify_masked(struct dps_pmd *pmd, const struct dps_flow_key *keys, const uint32_t *hashes, uint32_t *slots,
                    unsigned *miss, unsigned n_miss)
{
    const struct dps_flow_table *ft = &pmd->dp->ft;
    uint32_t inv = __atomic_load_n(&pmd->dp->emc_inv_prob, __ATOMIC_RELAXED);
    if (!n_miss)
        return;

    const struct dps_cls *cls = __atomic_load_n(&ft->cls, __ATOMIC_ACQUIRE);
    struct dps_pmd_cls *pc = &pmd->cls;
    pmd_cls_refresh(pc, cls);
    uint64_t ck[DPS_BURST][DPS_KEY_WORDS];
    const void *kp[DPS_BURST];
    void *data[DPS_BURST];
    for (uint32_t s = 0; s < pc->n && n_miss; s++) {
        const struct dps_subtable *st = pc->order[s];
        uint64_t hit = 0;
        uint32_t found[DPS_BURST];
        if (tiny_probe(st, keys, miss, n_miss, found)) {
            for (unsigned j = 0; j < n_miss; j++)
                if (found[j] != UINT32_MAX) {
                    hit |= 1ull << j;
                    data[j] = (void *)(uintptr_t)found[j];
                }
            if (!hit)
                continue;
        } else {
            for (unsigned j = 0; j < n_miss; j++) {
                compress(st, &keys[miss[j]], ck[j]);
                kp[j] = ck[j];
            }
            if (rte_hash_lookup_bulk_data(st->h, kp, n_miss, &hit, data) <= 0)
                continue;
        }
        unsigned left = 0;
        for (unsigned j = 0; j < n_miss; j++) {
            unsigned i = miss[j];
            if (!(hit & (1ull << j))) {
                miss[left++] = i;
                continue;
            }
            uint32_t slot = (uint32_t)(uintptr_t)data[j];
            slots[i] = slot;
            pc->hits[s]++;
            pmd->stats->megaflow_hits++;
            pmd->stats->subtable_lookups += s + 1;
            if (inv && (inv == 1 || (pmd->rng = pmd->rng * 1103515245u + 12345u) % inv == 0))
                emc_insert(pmd->emc, ft, &keys[i], hashes[i], slot);
        }
        n_miss = left;
    }
}

void
dps_classify(struct dps_pmd *pmd, struct rte_mbuf **pkts, struct dps_flow_key *keys, uint32_t *hashes,
             uint32_t *slots, unsigned n)
{
    unsigned miss[DPS_BURST];
    dps_classify_masked(pmd, keys, hashes, slots, miss, dps_classify_emc(pmd, keys, hashes, slots, n, miss));
    (void)pkts;
}

uint32_t
dps_flow_lookup_slot(const struct dps_dp *dp, const struct dps_flow_key *key)
{
    const struct dps_cls *cls = dp->ft.cls;
    for (uint32_t i = 0; i < cls->n; i++) {
        uint64_t ck[DPS_KEY_WORDS];
        void *data;
        compress(cls->st[i], key, ck);
        if (rte_hash_lookup_data(cls->st[i]->h, ck, &data) >= 0)
            return (uint32_t)(uintptr_t)data;
    }
    return UINT32_MAX;
}

void
dps_emc_hint(struct dps_pmd *pmd, const struct dps_flow_key *key, uint32_t hash, uint32_t slot, uint32_t gen)
{
    struct dps_emc_hints *q = pmd->hints;
    uint32_t head = q->head, tail = __atomic_load_n(&q->tail, __ATOMIC_ACQUIRE);
    if (head - tail >= DPS_EMC_HINTS)
        return;                            /* full: the cache fills itself the slow way */
    typeof(q->h[0]) *e = &q->h[head % DPS_EMC_HINTS];
    e->slot = slot;
    e->gen = gen;
    e->hash = hash;
    e->key = *key;
    __atomic_store_n(&q->head, head + 1, __ATOMIC_RELEASE);
}

void
dps_emc_hints_apply(struct dps_pmd *pmd)
{
    struct dps_emc_hints *q = pmd->hints;
    uint32_t tail = q->tail, head = __atomic_load_n(&q->head, __ATOMIC_ACQUIRE);
    uint32_t inv = __atomic_load_n(&pmd->dp->emc_inv_prob, __ATOMIC_RELAXED);
    for (; tail != head; tail++) {
        const typeof(q->h[0]) *e = &q->h[tail % DPS_EMC_HINTS];
        if (inv && flow_alive(&pmd->dp->ft, e->slot, e->gen)
            && (inv == 1 || (pmd->rng = pmd->rng * 1103515245u + 12345u) % inv == 0))
            emc_insert(pmd->emc, &pmd->dp->ft, &e->key, e->hash, e->slot);
    }
    __atomic_store_n(&q->tail, tail, __ATOMIC_RELEASE);
}

/* ---- Meters ---- */

int
dps_meter_set(struct dps_dp *dp, uint32_t id, uint32_t flags, const struct dps_meter_band *bands, unsigned n)
{
    if (id >= DPS_MAX_METERS)
        return dps_error(EINVAL, "meter %u: ids go up to %d", id, DPS_MAX_METERS - 1);
    struct dps_meter *m = &dp->meters[id];
    rte_spinlock_lock(&m->lock);
    if (n == 0) {
        m->valid = false;
    } else {
        uint32_t rate = bands[0].rate, burst = bands[0].burst;
        for (unsigned i = 1; i < n; i++)              /* the lowest rate's band drops first */
            if (bands[i].rate < rate) {
                rate = bands[i].rate;
                burst = bands[i].burst;
            }
        m->pktps = flags & DPS_METER_PKTPS;
        m->rate = rate;
        m->burst = burst ? burst : (rate / 10 ? rate / 10 : 1);
        m->tokens_milli = m->burst * 1000;
        m->last_ns = dps_clock_now(dp);
        m->packets = m->dropped = 0;
        m->valid = true;
    }
    rte_spinlock_unlock(&m->lock);
    return 0;
}

int
dps_meter_stats(const struct dps_dp *dp, uint32_t id, uint64_t *packets, uint64_t *dropped)
{
    if (id >= DPS_MAX_METERS || !dp->meters[id].valid)
        return dps_error(ENOENT, "no meter %u", id);
    *packets = dp->meters[id].packets;
    *dropped = dp->meters[id].dropped;
    return 0;
}

/* Shared token bucket (one per meter, a spinlock each): the rate holds whatever PMDs the
 * metered traffic spreads over, which per-PMD buckets could not promise. */
bool
dps_meter_allow(struct dps_dp *dp, uint32_t id, uint32_t bytes, uint64_t now)
{
    if (id >= DPS_MAX_METERS)
        return true;
    struct dps_meter *m = &dp->meters[id];
    if (!m->valid)
        return true;                       /* OpenFlow: a missing meter is the slow path's error */
    rte_spinlock_lock(&m->lock);
    if (now > m->last_ns) {
        m->tokens_milli += (now - m->last_ns) * m->rate / 1000000;
        if (m->tokens_milli > m->burst * 1000)
            m->tokens_milli = m->burst * 1000;
        m->last_ns = now;
    }
    uint64_t cost = m->pktps ? 1000 : (uint64_t)bytes * 8;
    bool ok = m->tokens_milli >= cost;
    if (ok)
        m->tokens_milli -= cost;
    else
        m->dropped++;
    m->packets++;
    rte_spinlock_unlock(&m->lock);
    return ok;
}
