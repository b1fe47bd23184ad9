/*
 * oftable.c — table 0's kept rules in C, and flow setup from them (dpdkswitch.h, "Table 0's
 * kept rules in C").  The lookup mirrors ofproto/classifier.py's Classifier._lookup step for
 * step (subtables in the same order, the same pruning, the same stages, the same bits
 * consulted); where Python would go on with prefix or ports tracking's partial bits it declines.
 *
 * Contract: control thread only; a table is built whole by the slow path and freed whole.
 * Hash sets: open addressing, linear probing, keys of a subtable's nonzero mask words (flow.c's
 * compressed form), CRC32C hashing as dps_key_hash.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rte_hash_crc.h>

#include "datapath.h"
#include "flow.h"
#include "util.h"

#define KW DPS_KEY_WORDS
#define MAX_TRIES 4
#define MAX_STAGES 8
#define MAX_PREFIXES 8

struct oset {                              /* words[nw] keys -> uint32 value */
    uint32_t nw, cap, n;
    uint64_t *keys;
    uint32_t *vals;
    uint8_t *used;
};

struct ost {                               /* a subtable */
    uint64_t mask[KW];
    uint64_t stage[MAX_STAGES][KW];        /* every stage but the last (the mask) */
    struct oset stage_set[MAX_STAGES];
    struct oset rules;                     /* masked key -> index in t->rules */
    uint32_t words[KW];                    /* the mask's nonzero words */
    uint32_t n_words, n_stages;            /* n_stages: without the last */
    int32_t max_priority;
    uint8_t tries[MAX_PREFIXES], plens[MAX_PREFIXES];
    uint32_t n_prefixes;
    int ports;
};

struct orule {
    int32_t priority;
    uint32_t id, shape;
};

struct okept {
    uint8_t *actions;
    uint32_t len;
};

struct otrie {
    uint32_t ofs, len;
    uint16_t eth_type;
    int set;
};

struct dps_oftable {
    uint64_t in_port[KW], recirc_frag[KW], ports[KW], frag[KW];
    uint32_t eth_ofs;
    uint32_t ofport[DPS_MAX_PORTS];        /* UINT32_MAX: not the bridge's */
    struct otrie tries[MAX_TRIES];
    struct oset prefixes;                  /* (trie, plen, 16 bytes of masked field) */
    struct ost *st;
    uint32_t n_st, cap_st;
    struct orule *rules;
    uint32_t n_rules, cap_rules;
    struct oset kept_idx;                  /* (shape << 32 | dp_port) -> index in kept */
    struct okept *kept;
    uint32_t n_kept, cap_kept;
};

/* ---- hash sets */

static uint32_t
oset_hash(const uint64_t *k, uint32_t nw)
{
    uint32_t h = 0x9e3779b9;
    for (uint32_t i = 0; i < nw; i++)
        h = rte_hash_crc_8byte(k[i], h);
    return h;
}

static int
oset_init(struct oset *s, uint32_t nw, uint32_t cap)
{
    s->nw = nw ? nw : 1;
    s->cap = cap;
    s->n = 0;
    s->keys = calloc((size_t)cap * s->nw, 8);
    s->vals = calloc(cap, 4);
    s->used = calloc(cap, 1);
    return s->keys && s->vals && s->used ? 0 : -ENOMEM;
}

static void
oset_fini(struct oset *s)
{
    free(s->keys);
    free(s->vals);
    free(s->used);
    memset(s, 0, sizeof *s);
}

static int64_t
oset_find(const struct oset *s, const uint64_t *k)
{
    if (!s->cap)
        return -1;
    uint32_t i = oset_hash(k, s->nw) & (s->cap - 1);
    while (s->used[i]) {
        if (!memcmp(&s->keys[(size_t)i * s->nw], k, 8 * s->nw))
            return i;
        i = (i + 1) & (s->cap - 1);
    }
    return -1;
}

/* Adds K -> V unless K is in already (then its value stays).  0 or -ENOMEM. */
static int
oset_add(struct oset *s, const uint64_t *k, uint32_t v)
{
    if (2 * (s->n + 1) > s->cap) {
        struct oset big;
        if (oset_init(&big, s->nw, s->cap ? 2 * s->cap : 16) < 0) {
            oset_fini(&big);
            return -ENOMEM;
        }
        for (uint32_t i = 0; i < s->cap; i++)
            if (s->used[i])
                oset_add(&big, &s->keys[(size_t)i * s->nw], s->vals[i]);
        oset_fini(s);
        *s = big;
    }
    uint32_t i = oset_hash(k, s->nw) & (s->cap - 1);
    while (s->used[i]) {
        if (!memcmp(&s->keys[(size_t)i * s->nw], k, 8 * s->nw))
            return 0;
        i = (i + 1) & (s->cap - 1);
    }
    s->used[i] = 1;
    memcpy(&s->keys[(size_t)i * s->nw], k, 8 * s->nw);
    s->vals[i] = v;
    s->n++;
    return 0;
}

/* ---- building */

struct dps_oftable *
dps_oftable_new(const uint8_t *in_port, const uint8_t *recirc_frag, const uint8_t *ports, const uint8_t *frag,
                uint32_t eth_ofs)
{
    if (eth_ofs + 2 > sizeof(struct dps_flow_key))
        return NULL;
    struct dps_oftable *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    memcpy(t->in_port, in_port, sizeof t->in_port);
    memcpy(t->recirc_frag, recirc_frag, sizeof t->recirc_frag);
    memcpy(t->ports, ports, sizeof t->ports);
    memcpy(t->frag, frag, sizeof t->frag);
    t->eth_ofs = eth_ofs;
    memset(t->ofport, 0xff, sizeof t->ofport);
    if (oset_init(&t->prefixes, 3, 16) < 0 || oset_init(&t->kept_idx, 1, 16) < 0) {
        dps_oftable_free(t);
        return NULL;
    }
    return t;
}

void
dps_oftable_free(struct dps_oftable *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < t->n_st; i++) {
        for (uint32_t j = 0; j < t->st[i].n_stages; j++)
            oset_fini(&t->st[i].stage_set[j]);
        oset_fini(&t->st[i].rules);
    }
    for (uint32_t i = 0; i < t->n_kept; i++)
        free(t->kept[i].actions);
    oset_fini(&t->prefixes);
    oset_fini(&t->kept_idx);
    free(t->st);
    free(t->rules);
    free(t->kept);
    free(t);
}

int
dps_oftable_port(struct dps_oftable *t, uint32_t dp_port, uint32_t ofport)
{
    if (dp_port >= DPS_MAX_PORTS)
        return -EINVAL;
    t->ofport[dp_port] = ofport;
    return 0;
}

int
dps_oftable_trie(struct dps_oftable *t, unsigned i, uint32_t ofs, uint32_t len, uint16_t eth_type)
{
    if (i >= MAX_TRIES || len > 16 || ofs + len > sizeof(struct dps_flow_key))
        return -EINVAL;
    t->tries[i] = (struct otrie){ .ofs = ofs, .len = len, .eth_type = eth_type, .set = 1 };
    return 0;
}

static void
prefix_key(uint64_t out[3], unsigned trie, unsigned plen, const uint8_t *field, uint32_t len)
{
    uint8_t b[16] = { 0 };
    for (uint32_t i = 0; i < len && 8 * i < plen; i++) {
        unsigned keep = plen - 8 * i >= 8 ? 8 : plen - 8 * i;
        b[i] = field[i] & (uint8_t)(0xff00 >> keep);
    }
    out[0] = (uint64_t)trie << 8 | plen;
    memcpy(&out[1], b, 16);
}

int
dps_oftable_prefixes(struct dps_oftable *t, unsigned i, unsigned plen, unsigned n, const uint8_t *prefixes)
{
    if (i >= MAX_TRIES || !t->tries[i].set || plen > 8 * t->tries[i].len)
        return -EINVAL;
    uint32_t len = t->tries[i].len;
    for (unsigned j = 0; j < n; j++) {
        uint64_t k[3];
        prefix_key(k, i, plen, prefixes + (size_t)j * len, len);
        if (oset_add(&t->prefixes, k, 1) < 0)
            return -ENOMEM;
    }
    return 0;
}

int
dps_oftable_subtable(struct dps_oftable *t, const uint8_t *mask, const uint8_t *stages, unsigned n_stages,
                     int32_t max_priority, const uint8_t *tries, const uint8_t *plens, unsigned n_prefixes, int ports)
{
    if (!n_stages || n_stages > MAX_STAGES + 1 || n_prefixes > MAX_PREFIXES)
        return -EINVAL;
    for (unsigned j = 0; j < n_prefixes; j++)
        if (tries[j] >= MAX_TRIES || !t->tries[tries[j]].set || plens[j] > 8 * t->tries[tries[j]].len)
            return -EINVAL;
    if (t->n_st == t->cap_st) {
        uint32_t cap = t->cap_st ? 2 * t->cap_st : 16;
        struct ost *st = realloc(t->st, cap * sizeof *st);
        if (!st)
            return -ENOMEM;
        t->st = st;
        t->cap_st = cap;
    }
    struct ost *st = &t->st[t->n_st];
    memset(st, 0, sizeof *st);
    memcpy(st->mask, mask, sizeof st->mask);
    for (uint32_t w = 0; w < KW; w++)
        if (st->mask[w])
            st->words[st->n_words++] = w;
    st->n_stages = n_stages - 1;
    bool ok = true;
    for (unsigned j = 0; ok && j < st->n_stages; j++) {
        memcpy(st->stage[j], stages + (size_t)j * sizeof(struct dps_flow_key), sizeof st->stage[j]);
        ok = oset_init(&st->stage_set[j], st->n_words, 16) == 0;
    }
    if (!ok || oset_init(&st->rules, st->n_words, 16) < 0) {
        /* not counted in n_st, so dps_oftable_free would not see it: free what was allocated
         * (the sets not reached are zero from the memset, which oset_fini takes) */
        for (unsigned j = 0; j < st->n_stages; j++)
            oset_fini(&st->stage_set[j]);
        oset_fini(&st->rules);
        return -ENOMEM;
    }
    st->max_priority = max_priority;
    st->n_prefixes = n_prefixes;
    memcpy(st->tries, tries, n_prefixes);
    memcpy(st->plens, plens, n_prefixes);
    st->ports = ports;
    return (int)t->n_st++;
}

static inline void
compress(const struct ost *st, const uint64_t *k, const uint64_t *m, uint64_t *out)
{
    out[0] = 0;
    for (uint32_t i = 0; i < st->n_words; i++)
        out[i] = k[st->words[i]] & m[st->words[i]];
}

int
dps_oftable_rules(struct dps_oftable *t, unsigned sti, unsigned n, const uint8_t *keys, const int32_t *priorities,
                  const uint32_t *ids, const uint32_t *shapes)
{
    if (sti >= t->n_st)
        return -EINVAL;
    struct ost *st = &t->st[sti];
    if (t->n_rules + n > t->cap_rules) {
        uint32_t cap = t->cap_rules ? t->cap_rules : 1024;
        while (cap < t->n_rules + n)
            cap *= 2;
        struct orule *r = realloc(t->rules, cap * sizeof *r);
        if (!r)
            return -ENOMEM;
        t->rules = r;
        t->cap_rules = cap;
    }
    uint64_t k[KW], ck[KW];
    for (unsigned i = 0; i < n; i++) {
        memcpy(k, keys + (size_t)i * sizeof k, sizeof k);
        for (uint32_t j = 0; j < st->n_stages; j++) {
            compress(st, k, st->stage[j], ck);
            if (oset_add(&st->stage_set[j], ck, 0) < 0)
                return -ENOMEM;
        }
        compress(st, k, st->mask, ck);
        t->rules[t->n_rules] = (struct orule){ .priority = priorities[i], .id = ids[i], .shape = shapes[i] };
        if (oset_add(&st->rules, ck, t->n_rules) < 0)
            return -ENOMEM;
        t->n_rules++;
    }
    return 0;
}

int
dps_oftable_kept(struct dps_oftable *t, uint32_t shape, uint32_t dp_port, const uint8_t *actions, uint32_t len)
{
    uint64_t k = (uint64_t)shape << 32 | dp_port;
    if (oset_find(&t->kept_idx, &k) >= 0)
        return 0;
    if (t->n_kept == t->cap_kept) {
        uint32_t cap = t->cap_kept ? 2 * t->cap_kept : 16;
        struct okept *p = realloc(t->kept, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        t->kept = p;
        t->cap_kept = cap;
    }
    uint8_t *a = malloc(len ? len : 1);
    if (!a)
        return -ENOMEM;
    memcpy(a, actions, len);
    t->kept[t->n_kept] = (struct okept){ .actions = a, .len = len };
    if (oset_add(&t->kept_idx, &k, t->n_kept) < 0) {
        free(a);
        return -ENOMEM;
    }
    t->n_kept++;
    return 0;
}

/* ---- lookup */

static inline void
or_into(uint64_t *wc, const uint64_t *m)
{
    for (uint32_t i = 0; i < KW; i++)
        wc[i] |= m[i];
}

/* Whether some rule has subtable ST's prefixes of K (else Python's prefix tracking would rule
 * it out with partial bits: the caller declines). */
static bool
prefixes_present(const struct dps_oftable *t, const struct ost *st, const uint8_t *kb, uint16_t eth)
{
    for (uint32_t j = 0; j < st->n_prefixes; j++) {
        const struct otrie *tr = &t->tries[st->tries[j]];
        if (eth != tr->eth_type || st->plens[j] == 0)
            continue;
        uint64_t pk[3];
        prefix_key(pk, st->tries[j], st->plens[j], kb + tr->ofs, tr->len);
        if (oset_find(&t->prefixes, pk) < 0)
            return false;
    }
    return true;
}

static int
lookup(const struct dps_oftable *t, const struct dps_flow_key *key, uint32_t *rule, uint64_t *wc)
{
    if (key->in_port >= DPS_MAX_PORTS || t->ofport[key->in_port] == UINT32_MAX)
        return -1;
    uint64_t k[KW], ck[KW];
    memcpy(k, key, sizeof k);
    for (uint32_t i = 0; i < KW; i++)
        if (k[i] & t->recirc_frag[i])
            return -1;
    struct dps_flow_key *kk = (struct dps_flow_key *)(void *)k;
    kk->in_port = t->ofport[key->in_port];
    memcpy(wc, t->in_port, 8 * KW);
    const uint8_t *kb = (const uint8_t *)k;
    uint16_t eth = (uint16_t)(kb[t->eth_ofs] << 8 | kb[t->eth_ofs + 1]);
    const struct orule *best = NULL;
    for (uint32_t s = 0; s < t->n_st; s++) {
        const struct ost *st = &t->st[s];
        if (best && st->max_priority <= best->priority)
            break;
        if (st->n_prefixes && !prefixes_present(t, st, kb, eth))
            return -1;
        bool missed = false;
        for (uint32_t j = 0; j < st->n_stages; j++) {
            compress(st, k, st->stage[j], ck);
            if (oset_find(&st->stage_set[j], ck) < 0) {
                or_into(wc, st->stage[j]);
                missed = true;
                break;
            }
        }
        if (missed)
            continue;
        compress(st, k, st->mask, ck);
        int64_t at = oset_find(&st->rules, ck);
        if (at < 0 && st->ports)
            return -1;
        or_into(wc, st->mask);
        if (at >= 0) {
            const struct orule *r = &t->rules[st->rules.vals[at]];
            if (!best || r->priority > best->priority)
                best = r;
        }
    }
    bool ports = false;
    for (uint32_t i = 0; i < KW; i++)
        ports |= (wc[i] & t->ports[i]) != 0;
    if (ports)
        or_into(wc, t->frag);
    if (!best)
        return 0;
    *rule = (uint32_t)(best - t->rules);
    return 1;
}

int
dps_oftable_lookup(const struct dps_oftable *t, const struct dps_flow_key *key, uint32_t *rule,
                   struct dps_flow_key *wc)
{
    uint32_t r = 0;
    int ret = lookup(t, key, &r, (uint64_t *)(void *)wc);
    if (ret == 1)
        *rule = t->rules[r].id;
    return ret;
}

/* ---- setup */

static inline uint64_t
mix(uint64_t h, uint64_t v)
{
    h ^= v * 0x9ddfea08eb382d69ull;
    h = (h << 31 | h >> 33) * 0x87c37b91114253d5ull;
    return h ^ (h >> 29);
}

static inline uint64_t
fmix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

void
dps_megaflow_ufid(const struct dps_flow_key *masked, const struct dps_flow_key *mask, struct dps_ufid *out)
{
    const uint64_t *a = (const void *)masked, *m = (const void *)mask;
    uint64_t h1 = 0x243f6a8885a308d3ull, h2 = 0x13198a2e03707344ull;
    for (uint32_t i = 0; i < KW; i++) {
        h1 = mix(h1, a[i]) + h2;
        h2 = mix(h2 ^ 0xa4093822299f31d0ull, m[i]) + h1;
    }
    for (uint32_t i = 0; i < KW; i++)
        h2 = mix(h2, a[i] ^ (m[i] << 1 | m[i] >> 63));
    h1 = fmix(h1 + h2);
    h2 = fmix(h2 + h1);
    out->lo = h1;
    out->hi = h2;
}

int
dps_oftable_setup(struct dps_dp *dp, const struct dps_oftable *t, struct dps_upcall *ups, unsigned n,
                  unsigned room, struct dps_setup_row *rows, unsigned *n_left)
{
    struct dps_flow_put puts[n ? n : 1];
    const struct okept *acts[n ? n : 1];
    void *pkts[n ? n : 1];
    unsigned nr = 0, left = 0;
    for (unsigned i = 0; i < n; i++) {
        struct dps_upcall *u = &ups[i];
        uint32_t r;
        int64_t at = -1;
        if (nr < room && u->type == DPS_UPCALL_MISS
            && lookup(t, &u->key, &r, (uint64_t *)(void *)&rows[nr].mask) == 1) {
            uint64_t kk = (uint64_t)t->rules[r].shape << 32 | u->key.in_port;
            at = oset_find(&t->kept_idx, &kk);
        }
        if (at < 0) {
            ups[left++] = *u;
            continue;
        }
        struct dps_setup_row *row = &rows[nr];
        uint8_t *mb = (uint8_t *)&row->mask;
        memset(mb, 0xff, 8);                               /* in_port, recirc_id: exact */
        row->key = u->key;
        const uint64_t *kw = (const void *)&u->key, *mw = (const void *)&row->mask;
        uint64_t *ow = (void *)&row->masked;
        for (uint32_t w = 0; w < KW; w++)
            ow[w] = kw[w] & mw[w];
        dps_megaflow_ufid(&row->masked, &row->mask, &row->ufid);
        row->rule = t->rules[r].id;
        row->len = u->len;
        row->in_port = u->key.in_port;
        acts[nr] = &t->kept[t->kept_idx.vals[at]];
        pkts[nr] = u->packet;
        puts[nr] = (struct dps_flow_put){ .ufid = row->ufid, .key = &row->masked, .mask = &row->mask,
                                          .actions = acts[nr]->actions, .actions_len = acts[nr]->len,
                                          .flags = DPS_FLOW_CREATE };
        nr++;
    }
    if (nr)
        dps_flow_put_batch(dp, puts, nr);
    for (unsigned i = 0; i < nr; i++) {
        rows[i].result = puts[i].result;
        dps_packet_execute(dp, pkts[i], acts[i]->actions, acts[i]->len);
    }
    *n_left = left;
    return (int)nr;
}
