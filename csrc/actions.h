/*
 * actions.h — the action executor: runs a datapath action list (struct dps_action, in
 * include/dpdkswitch.h) on one frame.  A leaf, as Open vSwitch's lib/odp-execute.c: it does
 * what changes the frame itself (VLAN push and pop, masked set-field with its checksum
 * updates, truncation, the hash) and hands whatever needs a datapath (output, the slow path,
 * recirculation, meters, random numbers, drop counters) to the callbacks it is given.  It
 * calls nothing of ours but the parser (parse.h) and util.h, so it is fuzzed alone
 * (csrc/fuzz/fuzz_actions.c) with callbacks that only check and count.
 *
 * Contract:
 *   - Callers: a PMD thread, for the flows its frames hit, and the control thread, for
 *     packet-out and deterministic polling (csrc/pmd.c's dps_pmd_execute for both).  Any
 *     thread; re-entrant: the executor keeps no state, and the callbacks run on the caller's
 *     thread before dps_actions_execute returns (recirculate runs the executor again inside).
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

#include <rte_mbuf.h>

#include "dpdkswitch.h"

/* The datapath as the executor sees it.  CTX is the caller's, passed back unchanged.  Every
 * callback that takes a frame takes it for good (sends, queues or frees it). */
struct dps_exec_ops {
    /* Send M out of datapath PORT (< DPS_MAX_PORTS; a port that is not there drops M and
     * counts it). */
    void (*output)(void *ctx, uint32_t port, struct rte_mbuf *m);
    /* Hand M to the slow path with COOKIE and KEY (the frame's key as the list began, with the
     * dp_hash a hash action gave it). */
    void (*userspace)(void *ctx, struct rte_mbuf *m, const struct dps_flow_key *key, uint64_t cookie);
    /* Look M up again as recirculation RECIRC_ID (in_port and dp_hash from KEY) and run what it
     * hits.  The callback bounds how deep recirculation goes. */
    void (*recirculate)(void *ctx, struct rte_mbuf *m, const struct dps_flow_key *key, uint32_t recirc_id);
    /* Meter ID's verdict on a frame of BYTES: false drops it (the callback counts it). */
    bool (*meter)(void *ctx, uint32_t id, uint32_t bytes);
    /* 32 random bits, for sample. */
    uint32_t (*random)(void *ctx);
    /* Count one frame (or copy of one) that an action could not handle: no mbuf for a copy, no
     * headroom for a tag.  The executor frees it. */
    void (*dropped)(void *ctx);
};

/* Run the LEN bytes of ACTIONS on M (see the contract above).  KEY is M's flow key: read by
 * userspace, recirculate and hash, which also writes its dp_hash. */
void dps_actions_execute(const struct dps_exec_ops *ops, void *ctx, struct rte_mbuf *m, struct dps_flow_key *key,
                         const uint8_t *actions, uint32_t len);

/* Check a list before it is used: 0, or -1 with the reason (one line) in WHY.  Any thread;
 * linear in the list's length. */
int dps_actions_validate(const uint8_t *actions, uint32_t len, char *why, size_t whylen);

/* Whether a valid list reads the frame's key beyond its L2 metadata (hash, userspace), so the
 * frame must be fully parsed before it runs.  Linear in the list's length. */
bool dps_actions_need_key(const uint8_t *actions, uint32_t len);

#endif /* DPS_ACTIONS_H */
