/*
 * actions.h — the action executor: runs a datapath action list (struct dps_action, in
 * include/dpdkswitch.h) on one frame.  A leaf, as Open vSwitch's lib/odp-execute.c: it does
 * what changes the frame itself (VLAN and MPLS push and pop, masked set-field with its checksum
 * updates, truncation, the hash) and hands whatever needs a datapath (output, the slow path,
 * recirculation, meters, random numbers, drop counters) to the callbacks it is given.  It
 * calls nothing of ours but the parser (parse.h) and util.h, so it is fuzzed alone
 * (csrc/fuzz/fuzz_actions.c) with callbacks that only check and count.
 *
 * Contract:
 *   - Callers: a PMD thread, for the flows its frames hit, and the control thread, for
 *     packet-out and deterministic polling (csrc/pmd.c's callbacks for both).  Any
 *     thread; re-entrant: the executor keeps no state, and the callbacks run on the caller's
 *     thread before it returns (recirculate runs the executor again inside).
 *   - Two entry points, one loop: dps_actions_run is inline, so a datapath that passes its
 *     callbacks as a constant struct gets direct calls the compiler can inline (the PMD: an
 *     out-of-line loop with an indirect call per action cost its VLAN-push path 2-5 cycles a
 *     frame); dps_actions_execute is the same loop out of line, for ops known at run time only
 *     (the fuzz target), for what is not per frame (packet-out) and for nested lists (clone,
 *     sample).
 *   - The list has passed dps_actions_validate (every length and argument in range, ports and
 *     meter ids below their limits): the executor does not check it again.
 *   - The frame is consumed exactly once: handed to output, userspace or recirculate (each
 *     takes it), or freed here.  A side branch (an output that is not the last action, a clone,
 *     a sample, a userspace or recirculation that is not last) gets the same mbuf with its
 *     reference count raised when no later action can change the frame, else a copy.
 *   - Cost: one pass over the list, a few tens of cycles per action; one scan of the list
 *     for what later actions change, made only when a side branch needs it; a copy
 *     (rte_pktmbuf_copy) per side branch that a later action would otherwise change under it.
 *     A masked set-field parses the frame (dps_parse_ofs) to find its header.
 */
#ifndef DPS_ACTIONS_H
#define DPS_ACTIONS_H 1

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_hash_crc.h>
#include <rte_mbuf.h>

#include "dpdkswitch.h"
#include "util.h"

/* The datapath as the executor sees it.  CTX is the caller's, passed back unchanged.  Every
 * callback that takes a frame takes it for good (sends, queues or frees it). */
struct dps_exec_ops {
    /* Whether datapath PORT (< DPS_MAX_PORTS) is there to send to: false skips the output (the
     * callback counts the drop).  Asked before the frame is branched, so an output to a port
     * that is gone costs no copy. */
    bool (*port_ok)(void *ctx, uint32_t port);
    /* Send M out of datapath PORT (one port_ok accepted). */
    void (*output)(void *ctx, uint32_t port, struct rte_mbuf *m);
    /* Hand M to the slow path with COOKIE and KEY (the frame's key as the list began, with the
     * dp_hash a hash action gave it). */
    void (*userspace)(void *ctx, struct rte_mbuf *m, const struct dps_flow_key *key, uint64_t cookie);
    /* Look M up again as recirculation RECIRC_ID (in_port and dp_hash from KEY) and run what it
     * hits.  KEY is M's key as M is now: the list's own key while no action changed the frame,
     * else a copy the executor parsed again (so the callback never parses).  The callback
     * bounds how deep recirculation goes. */
    void (*recirculate)(void *ctx, struct rte_mbuf *m, const struct dps_flow_key *key, uint32_t recirc_id);
    /* Meter ID's verdict on a frame of BYTES: false drops it (the callback counts it). */
    bool (*meter)(void *ctx, uint32_t id, uint32_t bytes);
    /* 32 random bits, for sample. */
    uint32_t (*random)(void *ctx);
    /* Count one frame (or copy of one) that an action could not handle: no mbuf for a copy, no
     * headroom for a tag.  The executor frees it. */
    void (*dropped)(void *ctx);
};

/* Run the LEN bytes of ACTIONS on M (see the contract above).  KEY is M's flow key, fully
 * parsed when the list has a hash or recirculation (dps_actions_need_key): read by userspace,
 * recirculate and hash, which also writes its dp_hash.  The out-of-line instance of
 * dps_actions_run, below. */
void dps_actions_execute(const struct dps_exec_ops *ops, void *ctx, struct rte_mbuf *m, struct dps_flow_key *key,
                         const uint8_t *actions, uint32_t len);

/* Check a list before it is used: 0, or -1 with the reason (one line) in WHY.  Any thread;
 * linear in the list's length. */
int dps_actions_validate(const uint8_t *actions, uint32_t len, char *why, size_t whylen);

/* Whether a valid list reads the frame's key beyond its L2 metadata (hash, userspace,
 * recirculation, which takes the key on as the second pass's), so the
 * frame must be fully parsed before it runs.  Linear in the list's length. */
bool dps_actions_need_key(const uint8_t *actions, uint32_t len);

/* ---- The loop and what it needs, inline; the rest of the executor is in actions.c ---- */

/* Apply one set_masked of KIND (DPS_SET_*, VALUE then mask as the action carries them):
 * parses the frame for its header; false, and the frame unchanged, if it has none. */
bool dps_set_masked(struct rte_mbuf *m, uint32_t kind, const uint8_t *value);
/* Whether any action of a list might change the frame, or hand it on to be changed (the slow
 * path, a second pass).  The early-exit form of dps_actions_modifying_end() != 0: it stops at
 * the first such action, where that one must walk the whole list to find the last; used
 * where only "any?" is asked (a clone's or sample's nested list). */
bool dps_actions_modify(const uint8_t *actions, uint32_t len);
/* Where the list's last such action ends, 0 if none: an action that starts before that offset
 * has one after it.  One pass over the whole list (made once per run of a list, when a side
 * branch first needs it: dps_modified_from). */
uint32_t dps_actions_modifying_end(const uint8_t *actions, uint32_t len);
/* MPLS: push an LSE (after the VLAN tags, the frame's ethertype becoming ETHERTYPE), false if
 * there is no room (the frame is then unchanged); pop the outer LSE of an MPLS frame, its
 * ethertype becoming ETHERTYPE (another frame is left alone).  As Open vSwitch's push_mpls and
 * pop_mpls datapath actions. */
bool dps_push_mpls(struct rte_mbuf *m, uint16_t ethertype, uint32_t lse);
void dps_pop_mpls(struct rte_mbuf *m, uint32_t arg);
/* The hash action's dp_hash: the 5-tuple of KEY from BASIS.  Inline: a balance-tcp bond runs
 * it on every frame. */
static inline uint32_t
dps_actions_hash(const struct dps_flow_key *k, uint32_t basis)
{
    uint32_t h = rte_hash_crc(k->nw_src, 16, basis);
    h = rte_hash_crc(k->nw_dst, 16, h);
    h = rte_hash_crc_4byte((uint32_t)k->nw_proto << 16 | k->eth_type, h);
    return rte_hash_crc_4byte((uint32_t)k->tp_src << 16 | k->tp_dst, h);
}

static inline const struct dps_action *
dps_act_at(const uint8_t *a)
{
    return (const struct dps_action *)(const void *)a;
}

/* Move the 12 address bytes of an Ethernet header by 4 (overlapping): both words are loaded
 * before either is stored, which the compiler keeps inline, unlike a memmove call. */
static inline void
dps_move_macs(uint8_t *dst, const uint8_t *src)
{
    uint64_t a;
    uint32_t b;
    memcpy(&a, src, 8);
    memcpy(&b, src + 8, 4);
    memcpy(dst, &a, 8);
    memcpy(dst + 8, &b, 4);
}

static inline bool
dps_push_vlan(struct rte_mbuf *m, uint32_t arg)
{
    if (rte_pktmbuf_data_len(m) < 12)
        return false;
    uint8_t *f = (uint8_t *)rte_pktmbuf_prepend(m, 4);
    if (!f)
        return false;
    dps_move_macs(f, f + 4);
    uint16_t tpid = rte_cpu_to_be_16((uint16_t)(arg >> 16));
    uint16_t tci = rte_cpu_to_be_16((uint16_t)(arg & 0xefff));   /* the CFI bit means "present" to us */
    memcpy(f + 12, &tpid, 2);
    memcpy(f + 14, &tci, 2);
    return true;
}

static inline void
dps_pop_vlan(struct rte_mbuf *m)
{
    uint8_t *f = rte_pktmbuf_mtod(m, uint8_t *);
    if (rte_pktmbuf_data_len(m) < 18)
        return;
    uint16_t t = dps_get_be16(f + 12);
    if (t != 0x8100 && t != 0x88a8)
        return;
    dps_move_macs(f + 4, f);
    rte_pktmbuf_adj(m, 4);
}

/* Whether an action of the list at or after OFF might change the frame; *MOD_END caches
 * dps_actions_modifying_end(), UINT32_MAX until it is needed (most lists never ask). */
static inline bool
dps_modified_from(const uint8_t *a, uint32_t len, uint32_t off, uint32_t *mod_end)
{
    if (*mod_end == UINT32_MAX)
        *mod_end = dps_actions_modifying_end(a, len);
    return off < *mod_end;
}

/* A frame for a side branch: the same mbuf, shared, when nothing will change it, else a copy. */
static inline struct rte_mbuf *
dps_branch(struct rte_mbuf *m, bool must_copy, uint32_t max_len)
{
    if (!must_copy && max_len >= rte_pktmbuf_pkt_len(m)) {
        rte_pktmbuf_refcnt_update(m, 1);      /* every segment: each is freed on its own */
        return m;
    }
    return rte_pktmbuf_copy(m, m->pool, 0, max_len);
}

/* KEY parsed again from M as it is now, its metadata (in_port, recirc_id, dp_hash) kept: after
 * an action changed the frame, for a second pass or a nested list that recirculates. */
static inline void
dps_key_reparse(const struct rte_mbuf *m, const struct dps_flow_key *key, struct dps_flow_key *out)
{
    dps_parse(rte_pktmbuf_mtod(m, const uint8_t *), rte_pktmbuf_data_len(m), key->in_port, out);
    out->recirc_id = key->recirc_id;
    out->dp_hash = key->dp_hash;
}

/* The executor's loop (see the contract above). */
static inline __attribute__((always_inline)) void
dps_actions_run(const struct dps_exec_ops *ops, void *ctx, struct rte_mbuf *m, struct dps_flow_key *key,
                const uint8_t *a, uint32_t len)
{
    uint32_t trunc = UINT32_MAX;
    uint32_t mod_end = UINT32_MAX;         /* see dps_modified_from() */
    bool changed = false;                  /* an action changed the frame: KEY no longer tells it */
    for (uint32_t off = 0; off < len;) {
        const struct dps_action *h = dps_act_at(a + off);
        const uint8_t *payload = a + off + sizeof *h;
        uint32_t plen = h->len - sizeof *h;
        off += h->len;
        bool last = off >= len;
        switch (h->type) {
        case DPS_ACT_OUTPUT: {
            if (!ops->port_ok(ctx, h->arg))
                break;                     /* counted by the callback; a last output's frame is freed below */
            if (last && trunc >= rte_pktmbuf_pkt_len(m)) {
                ops->output(ctx, h->arg, m);
                return;
            }
            struct rte_mbuf *c = dps_branch(m, !last && dps_modified_from(a, len, off, &mod_end), trunc);
            if (c)
                ops->output(ctx, h->arg, c);
            else
                ops->dropped(ctx);
            break;
        }
        case DPS_ACT_PUSH_VLAN:
            if (!dps_push_vlan(m, h->arg)) {
                ops->dropped(ctx);
                rte_pktmbuf_free(m);
                return;
            }
            changed = true;
            break;
        case DPS_ACT_POP_VLAN:
            dps_pop_vlan(m);
            changed = true;
            break;
        case DPS_ACT_PUSH_MPLS: {
            uint16_t ethertype;
            memcpy(&ethertype, payload, 2);
            if (!dps_push_mpls(m, ethertype, h->arg)) {
                ops->dropped(ctx);
                rte_pktmbuf_free(m);
                return;
            }
            changed = true;
            break;
        }
        case DPS_ACT_POP_MPLS:
            dps_pop_mpls(m, h->arg);
            changed = true;
            break;
        case DPS_ACT_SET_MASKED:
            dps_set_masked(m, h->arg, payload);   /* a frame without the header is left as it is */
            changed = true;
            break;
        case DPS_ACT_USERSPACE: {
            uint64_t cookie;
            memcpy(&cookie, payload, 8);
            struct rte_mbuf *c = last ? m : dps_branch(m, true, UINT32_MAX);
            if (c)
                ops->userspace(ctx, c, key, cookie);
            else
                ops->dropped(ctx);
            if (last)
                return;
            break;
        }
        case DPS_ACT_SAMPLE:
            if (h->arg != UINT32_MAX && ops->random(ctx) > h->arg)
                break;
            /* sampled: run the nested actions on a branch, as clone does */
            __attribute__((fallthrough));
        case DPS_ACT_CLONE: {
            /* Shared only if neither the branch nor what follows it can change the frame. */
            bool must_copy = (!last && dps_modified_from(a, len, off, &mod_end)) || dps_actions_modify(payload, plen);
            struct rte_mbuf *c = dps_branch(m, must_copy, UINT32_MAX);
            if (!c) {
                ops->dropped(ctx);
                break;
            }
            struct dps_flow_key k2 = *key;
            if (changed)
                dps_key_reparse(c, key, &k2);
            dps_actions_execute(ops, ctx, c, &k2, payload, plen);   /* out of line: nesting is rare */
            break;
        }
        case DPS_ACT_CHECK_PKT_LEN: {
            uint32_t gt_len;
            memcpy(&gt_len, payload, 4);
            bool larger = rte_pktmbuf_pkt_len(m) > h->arg;
            const uint8_t *list = larger ? payload + 8 : payload + 8 + gt_len;
            uint32_t list_len = larger ? gt_len : plen - 8 - gt_len;
            struct rte_mbuf *c = last ? m : dps_branch(m, true, UINT32_MAX);
            if (!c) {
                ops->dropped(ctx);
                break;
            }
            struct dps_flow_key k2 = *key;
            if (changed)
                dps_key_reparse(c, key, &k2);
            dps_actions_execute(ops, ctx, c, &k2, list, list_len);   /* out of line, as clone's */
            if (last)
                return;
            break;
        }
        case DPS_ACT_HASH:
            key->dp_hash = dps_actions_hash(key, h->arg);
            break;
        case DPS_ACT_RECIRC: {
            struct dps_flow_key fresh;
            const struct dps_flow_key *rk = key;
            if (changed) {
                dps_key_reparse(m, key, &fresh);
                rk = &fresh;
            }
            if (!last) {
                struct rte_mbuf *c = dps_branch(m, true, UINT32_MAX);
                if (c)
                    ops->recirculate(ctx, c, rk, h->arg);
                else
                    ops->dropped(ctx);
                break;
            }
            ops->recirculate(ctx, m, rk, h->arg);
            return;
        }
        case DPS_ACT_METER:
            if (!ops->meter(ctx, h->arg, rte_pktmbuf_pkt_len(m))) {
                rte_pktmbuf_free(m);
                return;
            }
            break;
        case DPS_ACT_TRUNCATE:
            trunc = h->arg;
            break;
        }
    }
    rte_pktmbuf_free(m);                   /* no output took it: the list ends in a drop */
}

#endif /* DPS_ACTIONS_H */
