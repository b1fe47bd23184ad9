/*
 * C unit tests of the action executor through include/dpdkswitch.h: action lists far longer
 * than translation usually makes (thousands of outputs in one list, as one OpenFlow message
 * can ask for), run by packet-out and by an installed flow, every frame checked byte for byte.
 * Runs EAL in memory without hugepages, so it needs root but no set-up.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    CHECK(dps_actions_check(dp, acts, len) == 0, "a list of %u outputs is valid", N_OUT);
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
    CHECK(dps_actions_check(dp, acts, len) == 0, "outputs around a rewrite");
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
    printf("%d failed\n", failures);
    return failures ? 1 : 0;
}
