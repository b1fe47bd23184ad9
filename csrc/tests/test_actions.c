/*
 * C unit tests of the action executor.  Through include/dpdkswitch.h: action lists far longer
 * than translation usually makes (thousands of outputs in one list, as one OpenFlow message
 * can ask for), run by packet-out and by an installed flow, every frame checked byte for byte.
 * Through csrc/actions.h, with callbacks of its own: frames no test port can inject (chained
 * mbufs).  Runs EAL in memory without hugepages, so it needs root but no set-up.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "actions.h"
#include "dpdkswitch.h"

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "FAIL %s:%d: %s: ", \
    __FILE__, __LINE__, #cond); fprintf(stderr, __VA_ARGS__); fprintf(stderr, " (%s)\n", \
    dps_last_error()); } } while (0)

#define N_OUT 4000
#define FRAME_LEN 64

static uint8_t acts[(2 * N_OUT + 8) * 8 + 64];
static uint8_t buf[(N_OUT + 16) * FRAME_LEN];
static uint32_t lens[N_OUT + 16];

/* An Ethernet/IPv4/UDP frame; its last two bytes say which one it is. */
static void
frame(uint8_t *f, unsigned i)
{
    memset(f, 0, FRAME_LEN);
    memcpy(f, "\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00", 14);
    f[14] = 0x45;
    f[23] = 17;
    f[FRAME_LEN - 2] = (uint8_t)(i >> 8);
    f[FRAME_LEN - 1] = (uint8_t)i;
}

static uint32_t
put_output(uint8_t *at, uint32_t port)
{
    struct dps_action a = { DPS_ACT_OUTPUT, 8, port };
    memcpy(at, &a, 8);
    return 8;
}

/* set_masked of the Ethernet source address to 02:00:00:00:00:ee. */
static uint32_t
put_set_eth_src(uint8_t *at)
{
    struct dps_action a = { DPS_ACT_SET_MASKED, 8 + 24, DPS_SET_ETH };
    uint8_t vm[24] = { 0 };
    memcpy(vm + 6, "\x02\x00\x00\x00\x00\xee", 6);          /* value: dst[6] src[6] */
    memset(vm + 12 + 6, 0xff, 6);                             /* mask: src only */
    memcpy(at, &a, 8);
    memcpy(at + 8, vm, 24);
    return 32;
}

/* What PORT sent: EXPECT frames, each frame(WHICH) with its source address SRC (NULL: as
 * built). */
static void
drain_check(struct dps_dp *dp, uint32_t port, unsigned expect, unsigned which, const char *src)
{
    int n = dps_testport_drain(dp, port, buf, sizeof buf, lens, N_OUT + 16);
    CHECK(n == (int)expect, "port %u: drained %d frames, expected %u", port, n, expect);
    uint8_t want[FRAME_LEN];
    frame(want, which);
    if (src)
        memcpy(want + 6, src, 6);
    unsigned bad = 0;
    for (int i = 0; i < n; i++)
        bad += lens[i] != FRAME_LEN || memcmp(buf + (size_t)i * FRAME_LEN, want, FRAME_LEN) != 0;
    CHECK(bad == 0, "port %u: %u of %d frames differ from what was sent", port, bad, n);
}

/* ---- The executor alone, with callbacks that keep what they are handed ---- */

static struct rte_mbuf *kept[16];
static unsigned n_kept;

static unsigned n_gone;                 /* outputs refused: port GONE_PORT is not there */
#define GONE_PORT 9

static bool
keep_port_ok(void *ctx, uint32_t port)
{
    (void)ctx;
    n_gone += port == GONE_PORT;
    return port != GONE_PORT;
}

static void
keep_output(void *ctx, uint32_t port, struct rte_mbuf *m)
{
    (void)ctx, (void)port;
    if (n_kept < 16)
        kept[n_kept++] = m;
}

static void
keep_userspace(void *ctx, struct rte_mbuf *m, const struct dps_flow_key *key, uint64_t cookie)
{
    (void)key, (void)cookie;
    keep_output(ctx, 0, m);
}

static void
keep_recirculate(void *ctx, struct rte_mbuf *m, const struct dps_flow_key *key, uint32_t id)
{
    (void)key, (void)id;
    keep_output(ctx, 0, m);
}

static bool
pass_meter(void *ctx, uint32_t id, uint32_t bytes)
{
    (void)ctx, (void)id, (void)bytes;
    return true;
}

static uint32_t
no_random(void *ctx)
{
    (void)ctx;
    return 0;
}

static void
count_drop(void *ctx)
{
    ++*(unsigned *)ctx;
}

static const struct dps_exec_ops keep_ops = {
    .port_ok = keep_port_ok, .output = keep_output, .userspace = keep_userspace, .recirculate = keep_recirculate,
    .meter = pass_meter, .random = no_random, .dropped = count_drop,
};

/* A frame in two segments (as a port with scatter gives a jumbo frame) sent to two ports
 * unchanged: both take the one mbuf, so every segment must count both references, or the
 * first port to let go frees the second segment under the other. */
static void
chained_frame_shared_by_two_outputs(void)
{
    struct rte_mempool *mp = rte_pktmbuf_pool_create("tact_chain", 63, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                                     SOCKET_ID_ANY);
    CHECK(mp != NULL, "mempool");
    if (!mp)
        return;
    struct rte_mbuf *head = rte_pktmbuf_alloc(mp), *tail = rte_pktmbuf_alloc(mp);
    uint8_t *a = (uint8_t *)rte_pktmbuf_append(head, 40), *b = (uint8_t *)rte_pktmbuf_append(tail, 24);
    frame(buf, 3);
    memcpy(a, buf, 40);
    memcpy(b, buf + 40, 24);
    CHECK(rte_pktmbuf_chain(head, tail) == 0, "chain");
    uint8_t list[16];
    put_output(list, 2);
    put_output(list + 8, 3);
    struct dps_flow_key key = { .in_port = 1 };
    unsigned drops = 0;
    n_kept = 0;
    dps_actions_execute(&keep_ops, &drops, head, &key, list, sizeof list);
    CHECK(n_kept == 2 && kept[0] == head && kept[1] == head, "both outputs take the frame itself");
    CHECK(rte_mbuf_refcnt_read(head) == 2 && rte_mbuf_refcnt_read(tail) == 2,
          "each segment holds both references: %u and %u", rte_mbuf_refcnt_read(head),
          rte_mbuf_refcnt_read(tail));
    if (rte_mbuf_refcnt_read(tail) != 2)
        return;                          /* freeing twice would corrupt the pool: leak it */
    rte_pktmbuf_free(kept[0]);
    CHECK(rte_mbuf_refcnt_read(tail) == 1 && rte_pktmbuf_pkt_len(kept[1]) == FRAME_LEN
          && memcmp(rte_pktmbuf_mtod(tail, uint8_t *), buf + 40, 24) == 0,
          "the second output's frame is whole after the first let go");
    rte_pktmbuf_free(kept[1]);
    CHECK(rte_mempool_in_use_count(mp) == 0, "both segments back in the pool: %u in use",
          rte_mempool_in_use_count(mp));
    CHECK(drops == 0, "nothing dropped");
    rte_mempool_free(mp);
}

/* A side branch to the slow path or to a second pass is always a copy; when no mbuf is left for
 * it, the frame goes on and the copy that could not be made is counted (action_drops). */
static void
failed_copies_are_counted(void)
{
    struct rte_mempool *mp = rte_pktmbuf_pool_create("tact_one", 1, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                                     SOCKET_ID_ANY);
    CHECK(mp != NULL, "mempool");
    if (!mp)
        return;
    static const struct dps_action lists[][2] = {
        { { DPS_ACT_USERSPACE, 16, 0 }, { DPS_ACT_OUTPUT, 8, 2 } },
        { { DPS_ACT_RECIRC, 8, 1 }, { DPS_ACT_OUTPUT, 8, 2 } },
    };
    for (unsigned i = 0; i < 2; i++) {
        uint8_t list[24] = { 0 };
        uint32_t len = 0;
        memcpy(list, &lists[i][0], 8);
        len = lists[i][0].len;
        memcpy(list + len, &lists[i][1], 8);
        len += 8;
        struct rte_mbuf *m = rte_pktmbuf_alloc(mp);          /* the pool's only mbuf */
        memcpy(rte_pktmbuf_append(m, FRAME_LEN), buf, FRAME_LEN);
        struct dps_flow_key key = { .in_port = 1 };
        unsigned drops = 0;
        n_kept = 0;
        dps_actions_execute(&keep_ops, &drops, m, &key, list, len);
        CHECK(n_kept == 1 && kept[0] == m, "list %u: the frame itself goes on to the output", i);
        CHECK(drops == 1, "list %u: the copy that could not be made is counted: %u", i, drops);
        for (unsigned k = 0; k < n_kept; k++)
            rte_pktmbuf_free(kept[k]);
        CHECK(rte_mempool_in_use_count(mp) == 0, "list %u: nothing held", i);
    }
    rte_mempool_free(mp);
}

/* An output to a port that is gone is refused before the frame is branched: no copy is made
 * for it (the pool's only mbuf is the frame), and the frame goes on to the next action. */
static void
output_to_gone_port_makes_no_copy(void)
{
    struct rte_mempool *mp = rte_pktmbuf_pool_create("tact_gone", 1, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                                     SOCKET_ID_ANY);
    CHECK(mp != NULL, "mempool");
    if (!mp)
        return;
    static const struct dps_action list[] = {
        { DPS_ACT_OUTPUT, 8, GONE_PORT }, { DPS_ACT_PUSH_VLAN, 8, 0x81000005 }, { DPS_ACT_OUTPUT, 8, 2 },
    };
    struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
    memcpy(rte_pktmbuf_append(m, FRAME_LEN), buf, FRAME_LEN);
    struct dps_flow_key key = { .in_port = 1 };
    unsigned drops = 0;
    n_kept = 0;
    n_gone = 0;
    dps_actions_execute(&keep_ops, &drops, m, &key, (const uint8_t *)list, sizeof list);
    CHECK(n_gone == 1, "the gone port is refused once: %u", n_gone);
    CHECK(drops == 0, "no copy was tried for it: %u dropped", drops);
    CHECK(n_kept == 1 && kept[0] == m && rte_pktmbuf_pkt_len(m) == FRAME_LEN + 4,
          "the frame itself, tagged, goes on to port 2");
    for (unsigned k = 0; k < n_kept; k++)
        rte_pktmbuf_free(kept[k]);
    CHECK(rte_mempool_in_use_count(mp) == 0, "nothing held");
    rte_mempool_free(mp);
}

int
main(int argc, char **argv)
{
    (void)argc;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "--file-prefix=dps-ctest-act-%d", getpid());
    char *eal[] = { argv[0], "--no-huge", "-m", "512", "--no-shconf", "--no-pci", "-l", "0",
                    "--log-level=lib.eal:error", prefix };
    if (dps_eal_init(sizeof eal / sizeof eal[0], eal) < 0) {
        fprintf(stderr, "EAL: %s\n", dps_last_error());
        return 1;
    }
    struct dps_dp_params params = { .n_mbufs = 16384, .manual_clock = 1 };
    struct dps_dp *dp = dps_dp_create("ctest-actions", &params);
    CHECK(dp != NULL, "datapath");
    for (uint32_t p = 1; p <= 3; p++) {
        char name[16];
        snprintf(name, sizeof name, "tact%u", p);
        CHECK(dps_testport_add(dp, name, p, 1) == 0, "test port %u", p);
    }
    uint64_t idle = dps_mbufs_in_use(dp);
    uint8_t f[FRAME_LEN];

    /* 4,000 outputs in one list: 4,000 frames, all the same mbuf (nothing changes it). */
    uint32_t len = 0;
    for (unsigned i = 0; i < N_OUT; i++)
        len += put_output(acts + len, 2);
    CHECK(dps_actions_check(acts, len) == 0, "a list of %u outputs is valid", N_OUT);
    frame(f, 7);
    CHECK(dps_execute(dp, f, FRAME_LEN, 1, acts, len) == 0, "packet-out of %u outputs", N_OUT);
    drain_check(dp, 2, N_OUT, 7, NULL);

    /* 2,000 outputs, a rewrite, 2,000 more: the first 2,000 are copies the rewrite leaves alone,
     * the last 2,000 carry it. */
    len = 0;
    for (unsigned i = 0; i < N_OUT / 2; i++)
        len += put_output(acts + len, 2);
    len += put_set_eth_src(acts + len);
    for (unsigned i = 0; i < N_OUT / 2; i++)
        len += put_output(acts + len, 3);
    CHECK(dps_actions_check(acts, len) == 0, "outputs around a rewrite");
    frame(f, 8);
    CHECK(dps_execute(dp, f, FRAME_LEN, 1, acts, len) == 0, "packet-out around a rewrite");
    drain_check(dp, 2, N_OUT / 2, 8, NULL);
    drain_check(dp, 3, N_OUT / 2, 8, "\x02\x00\x00\x00\x00\xee");
    CHECK(dps_mbufs_in_use(dp) == idle, "mbufs back to idle: %lu in use, %lu before",
          (unsigned long)dps_mbufs_in_use(dp), (unsigned long)idle);

    /* The same list as a flow's actions, run by the poller on an injected frame. */
    struct dps_flow_key key = { .in_port = 1 }, mask = { .in_port = UINT32_MAX };
    struct dps_flow_put put = { .ufid = { 1, 2 }, .key = &key, .mask = &mask, .actions = acts,
                                .actions_len = len };
    CHECK(dps_flow_put_batch(dp, &put, 1) == 1, "flow put: %d", put.result);
    uint64_t tx_before = dps_pmd_stats(dp)[DPS_MAX_PMDS].tx_packets;
    frame(f, 9);
    uint32_t flen = FRAME_LEN;
    CHECK(dps_testport_inject(dp, 1, 0, f, &flen, 1) == 1, "inject");
    CHECK(dps_dp_poll(dp, 1) == 1, "poll");
    drain_check(dp, 2, N_OUT / 2, 9, NULL);
    drain_check(dp, 3, N_OUT / 2, 9, "\x02\x00\x00\x00\x00\xee");
    CHECK(dps_pmd_stats(dp)[DPS_MAX_PMDS].tx_packets - tx_before == N_OUT, "tx counted: %lu",
          (unsigned long)(dps_pmd_stats(dp)[DPS_MAX_PMDS].tx_packets - tx_before));
    CHECK(dps_mbufs_in_use(dp) == idle, "mbufs back to idle: %lu in use, %lu before",
          (unsigned long)dps_mbufs_in_use(dp), (unsigned long)idle);

    dps_dp_destroy(dp);

    chained_frame_shared_by_two_outputs();
    failed_copies_are_counted();
    output_to_gone_port_makes_no_copy();
    printf("%d failed\n", failures);
    return failures ? 1 : 0;
}
