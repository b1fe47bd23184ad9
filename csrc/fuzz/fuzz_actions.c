/*
 * fuzz_actions.c — libFuzzer target for the action executor (csrc/actions.c).
 *
 * An input is a few knobs, an action list and a frame (layout at struct knobs).  The list is
 * checked with dps_actions_validate first, as the datapath checks every list before it runs
 * one, and an invalid one is rejected; the frame goes into an mbuf whose data buffer ends where
 * the frame does, so AddressSanitizer reports any access past it; then dps_actions_execute runs
 * it with fake callbacks (struct dps_exec_ops) that keep every frame they are handed, as a tx
 * queue does.  Afterwards these invariants are checked (a violation prints its name and aborts,
 * which libFuzzer reports as a crash with a reproducer):
 *   - handed_whole: every mbuf a callback got is consistent (rte_mbuf_check: data within its
 *     buffer, segment lengths summing to pkt_len, a live reference count);
 *   - unchanged_after_handover: no frame changed after it was handed on (a mbuf shared with a
 *     tx queue is never written again);
 *   - consumed_once: once the callbacks let go of what they hold, no mbuf is left: the frame and
 *     every copy were sent, upcalled, recirculated or freed, and none twice (each mbuf is its
 *     own heap block, so ASan reports a double free or a use after free);
 *   - failed_copy_counted: every copy that could not be made (allocations fail on demand) was
 *     counted through the dropped callback;
 *   - length: a frame handed on is no longer than the input plus 4 bytes per push_vlan or
 *     push_mpls;
 *   - only_set_fields_change: in a list without VLAN or MPLS pushes and pops or truncate, every byte of a
 *     frame handed on that no set_masked of the list may write (its fields, and the checksums
 *     over them) is as it came;
 *   - checksum_kept: a checksum that was right in the input (IPv4 header, TCP, UDP, ICMP,
 *     ICMPv6, SCTP's CRC32c; computed here from scratch) is right in every frame handed on;
 *   - key_kept: the executor changes nothing in the key but dp_hash.
 *
 * The mbufs come from an EAL-less mempool: struct rte_mempool filled in by hand (no cache, so
 * no per-lcore state) over mempool ops registered here whose dequeue mallocs a fresh mbuf and
 * whose enqueue frees it.  rte_pktmbuf_pool_create would need EAL (memzones, hugepages or
 * --no-huge memory and its start-up per process: slow, and it would recycle mbufs, hiding a
 * double free or a use after free from ASan).  DPDK's own mbuf code (rte_pktmbuf_copy, free,
 * prepend, adj) runs unchanged on top.
 *
 * Build and run: scripts/fuzz.sh [SECONDS] (both targets) or scripts/fuzz.sh SECONDS actions.
 * Replay one input: build/fuzz/fuzz_actions FILE.  Seeds: csrc/fuzz/make_action_seeds.py.
 * FUZZ_ACTIONS_IGNORE (environment): comma-separated invariant names not to check.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "actions.h"
#include "parse.h"
#include "util.h"

#define FUZZ_TARGET "fuzz_actions"
#include "invariant.h"

#define DATA_ROOM 2048                  /* of the mbufs the pool hands out (copies) */
#define MAX_HELD 4096                   /* frames the callbacks keep per input */
#define MAX_FRAME 4096
#define MAX_GROWTH RTE_PKTMBUF_HEADROOM /* what push_vlan can prepend, at most */

/* ---- An EAL-less mempool: each mbuf its own two heap blocks (header, data buffer) ---- */

static struct rte_mempool *pool;
static long alive;                      /* mbufs allocated and not yet freed */
static unsigned allocs, fail_every, failed_allocs;

static struct rte_mbuf *
mbuf_new(uint16_t headroom, uint16_t room)
{
    struct rte_mbuf *m;
    if (posix_memalign((void **)&m, RTE_CACHE_LINE_SIZE, sizeof *m))
        return NULL;
    memset(m, 0, sizeof *m);
    uint8_t *buf = malloc((size_t)headroom + room ? (size_t)headroom + room : 1);
    if (!buf) {
        free(m);
        return NULL;
    }
    m->buf_addr = buf;
    m->buf_iova = (rte_iova_t)(uintptr_t)buf;
    m->buf_len = (uint16_t)(headroom + room);
    m->data_off = headroom;
    m->pool = pool;
    m->nb_segs = 1;
    m->port = RTE_MBUF_PORT_INVALID;
    rte_mbuf_refcnt_set(m, 1);
    alive++;
    return m;
}

static int
heap_enqueue(struct rte_mempool *mp, void *const *objs, unsigned n)
{
    (void)mp;
    for (unsigned i = 0; i < n; i++) {
        struct rte_mbuf *m = objs[i];
        free(m->buf_addr);
        free(m);
        alive--;
    }
    return 0;
}

static int
heap_dequeue(struct rte_mempool *mp, void **objs, unsigned n)
{
    (void)mp;
    for (unsigned i = 0; i < n; i++) {
        allocs++;
        struct rte_mbuf *m = fail_every && allocs % fail_every == 0 ? NULL
                                                                    : mbuf_new(RTE_PKTMBUF_HEADROOM, DATA_ROOM);
        if (!m) {
            failed_allocs++;
            heap_enqueue(mp, objs, i);
            return -ENOBUFS;
        }
        objs[i] = m;
    }
    return 0;
}

static unsigned
heap_count(const struct rte_mempool *mp)
{
    (void)mp;
    return 1u << 20;
}

static int
heap_alloc(struct rte_mempool *mp)
{
    (void)mp;
    return 0;
}

static void
heap_free(struct rte_mempool *mp)
{
    (void)mp;
}

static struct rte_mempool_ops heap_ops = {
    .name = "dps_fuzz_heap", .alloc = heap_alloc, .free = heap_free,
    .enqueue = heap_enqueue, .dequeue = heap_dequeue, .get_count = heap_count,
};
RTE_MEMPOOL_REGISTER_OPS(heap_ops);

/* The pool as the inline mbuf code reads it: no per-lcore cache (cache_size 0), the ops
 * above, and the pktmbuf private area right after the header (RTE_MEMPOOL_HEADER_SIZE with
 * no cache). */
static struct rte_mempool *
pool_make(void)
{
    struct rte_mempool *mp;
    size_t size = sizeof *mp + sizeof(struct rte_pktmbuf_pool_private);
    if (posix_memalign((void **)&mp, RTE_CACHE_LINE_SIZE, size))
        abort();
    memset(mp, 0, size);
    snprintf(mp->name, sizeof mp->name, "fuzz_heap");
    mp->size = 1u << 20;
    mp->cache_size = 0;
    mp->elt_size = sizeof(struct rte_mbuf) + RTE_PKTMBUF_HEADROOM + DATA_ROOM;
    mp->private_data_size = sizeof(struct rte_pktmbuf_pool_private);
    struct rte_pktmbuf_pool_private *priv = rte_mempool_get_priv(mp);
    priv->mbuf_data_room_size = RTE_PKTMBUF_HEADROOM + DATA_ROOM;
    priv->mbuf_priv_size = 0;
    if (rte_mempool_set_ops_byname(mp, "dps_fuzz_heap", NULL) != 0) {
        fprintf(stderr, "fuzz_actions: cannot select the heap mempool ops\n");
        abort();
    }
    return mp;
}

/* ---- The frames the callbacks are handed ---- */

static struct held {
    struct rte_mbuf *m;
    uint32_t len;
    uint8_t bytes[MAX_FRAME + MAX_GROWTH];   /* as handed on */
} held[MAX_HELD];
static unsigned n_held, n_dropped, meter_calls;
static uint8_t meter_bits;
static uint32_t rng;

/* A frame's bytes, all segments, into OUT (room for MAX_FRAME + MAX_GROWTH). */
static uint32_t
flatten(const struct rte_mbuf *m, uint8_t *out)
{
    uint32_t n = 0;
    for (const struct rte_mbuf *s = m; s; s = s->next) {
        uint32_t k = s->data_len;
        if (n + k > MAX_FRAME + MAX_GROWTH)
            k = MAX_FRAME + MAX_GROWTH - n;
        memcpy(out + n, rte_pktmbuf_mtod(s, const uint8_t *), k);
        n += k;
    }
    return n;
}

static void
keep(struct rte_mbuf *m)
{
    const char *why = NULL;
    CHECK("handed_whole", rte_mbuf_check(m, 1, &why) == 0, why);
    CHECK("length", rte_pktmbuf_pkt_len(m) <= MAX_FRAME + MAX_GROWTH, NULL);
    if (n_held == MAX_HELD) {           /* more than any input of -max_len makes */
        rte_pktmbuf_free(m);
        return;
    }
    held[n_held].m = m;
    held[n_held].len = flatten(m, held[n_held].bytes);
    n_held++;
}

static bool
fake_port_ok(void *ctx, uint32_t port)
{
    (void)ctx;
    CHECK("output_port_valid", port < DPS_MAX_PORTS, NULL);
    return true;
}

static void
fake_output(void *ctx, uint32_t port, struct rte_mbuf *m)
{
    (void)ctx;
    CHECK("output_port_valid", port < DPS_MAX_PORTS, NULL);
    keep(m);
}

static void
fake_userspace(void *ctx, struct rte_mbuf *m, const struct dps_flow_key *key, uint64_t cookie)
{
    (void)ctx, (void)key, (void)cookie;
    keep(m);
}

static void
fake_recirculate(void *ctx, struct rte_mbuf *m, const struct dps_flow_key *key, uint32_t recirc_id)
{
    (void)ctx, (void)key, (void)recirc_id;
    keep(m);
}

static bool
fake_meter(void *ctx, uint32_t id, uint32_t bytes)
{
    (void)ctx, (void)bytes;
    CHECK("meter_id_valid", id < DPS_MAX_METERS, NULL);
    return !(meter_bits >> (meter_calls++ % 8) & 1);
}

static uint32_t
fake_random(void *ctx)
{
    (void)ctx;
    rng ^= rng << 13;                   /* xorshift32 */
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static void
fake_dropped(void *ctx)
{
    (void)ctx;
    n_dropped++;
}

static const struct dps_exec_ops fake_ops = {
    .port_ok = fake_port_ok, .output = fake_output, .userspace = fake_userspace, .recirculate = fake_recirculate,
    .meter = fake_meter, .random = fake_random, .dropped = fake_dropped,
};

/* ---- What a list holds (walked here, independently of actions.c) ---- */

struct list_info {
    unsigned pushes;
    bool pop, trunc;
    uint32_t set_kinds;                 /* bit per DPS_SET_* */
};

static void
list_scan(const uint8_t *a, uint32_t len, struct list_info *li)
{
    for (uint32_t off = 0; off + 8 <= len;) {
        struct dps_action h;
        memcpy(&h, a + off, sizeof h);
        if (h.len < 8)
            return;
        if (h.type == DPS_ACT_PUSH_VLAN || h.type == DPS_ACT_PUSH_MPLS)
            li->pushes++;
        else if (h.type == DPS_ACT_POP_VLAN || h.type == DPS_ACT_POP_MPLS)
            li->pop = true;
        else if (h.type == DPS_ACT_TRUNCATE)
            li->trunc = true;
        else if (h.type == DPS_ACT_SET_MASKED && h.arg < 32)
            li->set_kinds |= 1u << h.arg;
        else if (h.type == DPS_ACT_CLONE || h.type == DPS_ACT_SAMPLE)
            list_scan(a + off + 8, h.len - 8u, li);
        else if (h.type == DPS_ACT_CHECK_PKT_LEN && h.len >= 16)    /* its two lists, back to back */
            list_scan(a + off + 16, h.len - 16u, li);
        off += h.len;
    }
}

/* ---- Checksums, from scratch ---- */

static uint32_t
sum16(const uint8_t *p, uint32_t n, uint32_t s)
{
    for (uint32_t i = 0; i + 1 < n; i += 2)
        s += dps_get_be16(p + i);
    if (n & 1)
        s += (uint32_t)p[n - 1] << 8;
    return s;
}

static int
sum_ok(uint32_t s)
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return s == 0xffff;
}

static uint32_t
crc32c(const uint8_t *p, uint32_t n)
{
    uint32_t c = 0xffffffff;
    for (uint32_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c >> 1 ^ (0x82f63b78 & -(c & 1));
    }
    return ~c;
}

#define CS_IP4 1u                       /* the IPv4 header checksum */
#define CS_L4 2u                        /* TCP, UDP, ICMP, ICMPv6 or SCTP over a whole datagram */

/* Which checksums of frame F can be checked (*checkable) and which of those are right. */
static unsigned
csum_state(const uint8_t *f, uint32_t len, unsigned *checkable)
{
    struct dps_flow_key k;
    struct dps_offsets o;
    unsigned ok = 0;
    *checkable = 0;
    dps_parse_ofs(f, len, 0, &k, &o);
    if (o.l3 == DPS_OFS_NONE)
        return 0;
    uint16_t type = (uint16_t)(k.eth_type >> 8 | k.eth_type << 8);
    const uint8_t *ip = f + o.l3;
    uint32_t s = 0, l4len = 0, l4 = o.l4;
    uint8_t proto = 0;
    if (type == 0x0800) {
        uint32_t ihl = (ip[0] & 15) * 4u, total = dps_get_be16(ip + 2);
        if (ihl < 20 || o.l3 + ihl > len)
            return 0;
        *checkable |= CS_IP4;
        ok |= sum_ok(sum16(ip, ihl, 0)) ? CS_IP4 : 0;
        if (k.nw_frag || l4 != o.l3 + ihl || total < ihl || o.l3 + total > len)
            return ok;
        proto = ip[9];
        l4len = total - ihl;
        if (proto == 6 || proto == 17)
            s = sum16(ip + 12, 8, proto + l4len);
        else if (proto != 1 && proto != 132)
            return ok;
    } else if (type == 0x86dd) {
        uint32_t end = o.l3 + 40u + dps_get_be16(ip + 4);
        if (k.nw_frag || l4 == DPS_OFS_NONE || o.l3 + 40u > len || end > len || l4 > end)
            return 0;
        proto = k.nw_proto;
        l4len = end - l4;
        if (proto != 6 && proto != 17 && proto != 58 && proto != 132)
            return 0;
        if (proto != 132)
            s = sum16(ip + 8, 32, proto + (l4len >> 16) + (l4len & 0xffff));
    } else {
        return 0;
    }
    const uint8_t *p = f + l4;
    uint32_t need = proto == 6 ? 20 : proto == 132 ? 12 : proto == 17 ? 8 : 4;
    if (l4len < need)
        return ok;
    if (proto == 17 && type == 0x0800 && dps_get_be16(p + 6) == 0)
        return ok;                      /* UDP over IPv4 without a checksum */
    *checkable |= CS_L4;
    if (proto == 132) {
        uint8_t *copy = malloc(l4len);
        memcpy(copy, p, l4len);
        uint32_t want;
        memcpy(&want, copy + 8, 4);
        memset(copy + 8, 0, 4);
        uint32_t c = crc32c(copy, l4len);
        free(copy);
        uint8_t le[4] = { (uint8_t)c, (uint8_t)(c >> 8), (uint8_t)(c >> 16), (uint8_t)(c >> 24) };
        return ok | (memcmp(&want, le, 4) == 0 ? CS_L4 : 0);
    }
    return ok | (sum_ok(sum16(p, l4len, s)) ? CS_L4 : 0);
}

/* ---- The bytes each set_masked kind may write, in the input's layout ---- */

static void
allow(uint8_t *may, uint32_t len, uint32_t from, uint32_t to)
{
    for (uint32_t i = from; i < to && i < len; i++)
        may[i] = 1;
}

static void
l4_csum_field(uint8_t *may, uint32_t len, const struct dps_offsets *o, uint8_t proto, bool v6)
{
    if (o->l4 == DPS_OFS_NONE)
        return;
    if (proto == 6)
        allow(may, len, o->l4 + 16u, o->l4 + 18u);
    else if (proto == 17)
        allow(may, len, o->l4 + 6u, o->l4 + 8u);
    else if (proto == 58 && v6)         /* ICMPv6's pseudo-header; ICMPv4 has none */
        allow(may, len, o->l4 + 2u, o->l4 + 4u);
}

static void
writable(const uint8_t *f, uint32_t len, uint32_t kinds, uint8_t *may)
{
    struct dps_flow_key k;
    struct dps_offsets o;
    dps_parse_ofs(f, len, 0, &k, &o);
    memset(may, 0, len);
    uint32_t l3 = o.l3, l4 = o.l4;
    uint32_t l4_end = l4 == DPS_OFS_NONE ? 0 : o.l4_end;
    if (kinds & 1u << DPS_SET_ETH)
        allow(may, len, 0, 12);
    if (kinds & 1u << DPS_SET_VLAN && o.n_vlans)
        allow(may, len, 14, 16);
    if (kinds & 1u << DPS_SET_MPLS && (k.eth_type == rte_cpu_to_be_16(0x8847) || k.eth_type == rte_cpu_to_be_16(0x8848)))
        allow(may, len, 14 + 4u * o.n_vlans, 18 + 4u * o.n_vlans);     /* the outer label stack entry */
    if (l3 != DPS_OFS_NONE) {
        if (kinds & 1u << DPS_SET_IPV4) {
            allow(may, len, l3 + 1, l3 + 2);
            allow(may, len, l3 + 8, l3 + 9);
            allow(may, len, l3 + 10, l3 + 20);
            l4_csum_field(may, len, &o, k.nw_proto, false);
        }
        if (kinds & 1u << DPS_SET_IPV6) {
            allow(may, len, l3, l3 + 4);
            allow(may, len, l3 + 7, l3 + 40);
            l4_csum_field(may, len, &o, k.nw_proto, true);
        }
        if (kinds & 1u << DPS_SET_ARP)
            allow(may, len, l3 + 6, l3 + 28);
    }
    if (l4 != DPS_OFS_NONE) {
        if (kinds & (1u << DPS_SET_TCP | 1u << DPS_SET_UDP | 1u << DPS_SET_SCTP | 1u << DPS_SET_ICMP
                     | 1u << DPS_SET_ICMPV6))
            allow(may, len, l4, l4 + 4);
        if (kinds & 1u << DPS_SET_TCP)
            allow(may, len, l4 + 16, l4 + 18);
        if (kinds & 1u << DPS_SET_UDP)
            allow(may, len, l4 + 6, l4 + 8);
        if (kinds & 1u << DPS_SET_SCTP)
            allow(may, len, l4 + 8, l4 + 12);
        if (kinds & 1u << DPS_SET_ND) {
            allow(may, len, l4 + 2, l4 + 4);
            allow(may, len, l4 + 8, l4_end);
        }
    }
}

/* ---- The target ---- */

/* The input: the knobs, then the action list (list_len bytes), then the frame. */
struct knobs {
    uint8_t flags;                      /* bit 0: the frame in two segments; bits 1-2: headroom
                                         * 128, 0, 2 or 4 bytes */
    uint8_t split;                      /* two segments: the first has split % (len + 1) bytes */
    uint8_t fail_every;                 /* every Nth mbuf allocation fails; 0 none */
    uint8_t meter_bits;                 /* bit i % 8: the i-th meter check says over rate */
    uint32_t seed;                      /* for sample's random numbers */
    uint16_t list_len;                  /* little-endian */
} __attribute__((packed));

int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_invariants_init("FUZZ_ACTIONS_IGNORE");
    pool = pool_make();
    return 0;
}

static uint8_t in_frame[MAX_FRAME], may[MAX_FRAME];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct knobs kn;
    if (size < sizeof kn)
        return -1;
    memcpy(&kn, data, sizeof kn);
    uint32_t alen = kn.list_len;
    if (alen > size - sizeof kn)
        return -1;
    uint32_t flen = (uint32_t)(size - sizeof kn - alen);
    if (flen > MAX_FRAME)
        return -1;
    fuzz_invariants_input(data, size);

    /* The list, exactly sized (ASan sees a read past its end), and checked as a put is. */
    uint8_t *acts = malloc(alen ? alen : 1);
    memcpy(acts, data + sizeof kn, alen);
    char why[160];
    if (dps_actions_validate(acts, alen, why, sizeof why) < 0) {
        free(acts);
        return -1;
    }
    struct list_info li = { 0 };
    list_scan(acts, alen, &li);

    /* The frame in an mbuf whose data ends with it; in two segments if asked. */
    memcpy(in_frame, data + sizeof kn + alen, flen);
    static const uint16_t headrooms[] = { RTE_PKTMBUF_HEADROOM, 0, 2, 4 };
    uint16_t head = headrooms[(kn.flags >> 1) & 3];
    uint32_t first = kn.flags & 1 ? kn.split % (flen + 1) : flen;
    struct rte_mbuf *m = mbuf_new(head, (uint16_t)first);
    m->data_len = (uint16_t)first;
    m->pkt_len = flen;
    memcpy(rte_pktmbuf_mtod(m, uint8_t *), in_frame, first);
    if (first < flen) {
        struct rte_mbuf *s = mbuf_new(0, (uint16_t)(flen - first));
        s->data_len = (uint16_t)(flen - first);
        memcpy(rte_pktmbuf_mtod(s, uint8_t *), in_frame + first, flen - first);
        m->next = s;
        m->nb_segs = 2;
    }
    bool one_seg = m->nb_segs == 1;

    struct dps_flow_key key, key0;
    dps_parse(in_frame, flen, 1, &key);
    key0 = key;
    n_held = n_dropped = meter_calls = 0;
    allocs = failed_allocs = 0;
    fail_every = kn.fail_every;
    meter_bits = kn.meter_bits;
    rng = kn.seed | 1;

    dps_actions_execute(&fake_ops, NULL, m, &key, acts, alen);

    /* What the executor did to the key, and what it counted. */
    key0.dp_hash = key.dp_hash;
    CHECK("key_kept", memcmp(&key, &key0, sizeof key) == 0, NULL);
    CHECK("failed_copy_counted", n_dropped >= failed_allocs, NULL);

    /* Each frame handed on: as it was when handed on, and what its actions may have made it. */
    unsigned in_checkable = 0, in_ok = one_seg ? csum_state(in_frame, flen, &in_checkable) : 0;
    bool layout_kept = !li.pushes && !li.pop && !li.trunc;
    if (layout_kept)
        writable(in_frame, flen, li.set_kinds, may);
    static uint8_t now[MAX_FRAME + MAX_GROWTH];
    for (unsigned i = 0; i < n_held; i++) {
        const struct held *h = &held[i];
        uint32_t n = flatten(h->m, now);
        CHECK("unchanged_after_handover", n == h->len && memcmp(now, h->bytes, n) == 0, NULL);
        CHECK("length", h->len <= flen + 4 * li.pushes, NULL);
        if (!one_seg)
            continue;
        if (layout_kept) {
            CHECK("only_set_fields_change", h->len == flen, NULL);
            uint32_t j = 0;
            while (j < flen && (may[j] || h->bytes[j] == in_frame[j]))
                j++;
            char at[64];
            snprintf(at, sizeof at, "frame byte %u", j);
            CHECK("only_set_fields_change", j == flen, at);
        }
        unsigned out_checkable = 0, out_ok = csum_state(h->bytes, h->len, &out_checkable);
        unsigned claimed = in_checkable & in_ok & out_checkable;
        char which[64];
        snprintf(which, sizeof which, "%s", (claimed & ~out_ok & CS_IP4) ? "IPv4 header" : "L4");
        CHECK("checksum_kept", (claimed & ~out_ok) == 0, which);
    }

    /* Let go of everything: nothing may be left. */
    for (unsigned i = 0; i < n_held; i++)
        rte_pktmbuf_free(held[i].m);
    CHECK("consumed_once", alive == 0, NULL);
    alive = 0;
    free(acts);
    return 0;
}
