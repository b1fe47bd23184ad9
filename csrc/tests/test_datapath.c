/*
 * C unit tests of the datapath through include/dpdkswitch.h: test ports on rings, the static
 * map, deterministic polling, a PMD thread, mbuf accounting across port removal, and DPDK's log
 * captured in lines.
 * Runs EAL in memory without hugepages, so it needs root but no set-up.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_log.h>             /* to log as a driver does */

#include "dpdkswitch.h"

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "FAIL %s:%d: %s: ", \
    __FILE__, __LINE__, #cond); fprintf(stderr, __VA_ARGS__); fprintf(stderr, " (%s)\n", \
    dps_last_error()); } } while (0)

static void
frame(uint8_t *f, unsigned i, unsigned len)
{
    memset(f, 0, len);
    memcpy(f, "\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00", 14);
    f[14] = 0x45;
    f[len - 2] = (uint8_t)(i >> 8);
    f[len - 1] = (uint8_t)i;
}

/* Frames from IN go out of each of OUT: one flow matching in_port alone. */
static int
fwd(struct dps_dp *dp, uint32_t in, const uint32_t *out, unsigned n)
{
    struct dps_flow_key key = { .in_port = in }, mask = { .in_port = UINT32_MAX };
    uint8_t acts[8 * 16];
    for (unsigned i = 0; i < n; i++) {
        struct dps_action a = { DPS_ACT_OUTPUT, 8, out[i] };
        memcpy(acts + 8 * i, &a, 8);
    }
    struct dps_flow_put p = { .ufid = { in, 0xfeed }, .key = &key, .mask = &mask, .actions = acts,
                              .actions_len = 8 * n };
    return dps_flow_put_batch(dp, &p, 1) == 1 ? 0 : p.result;
}

static unsigned
drain_check(struct dps_dp *dp, uint32_t port, unsigned expect, unsigned len)
{
    static uint8_t buf[1 << 20];
    uint32_t lens[4096];
    int n = dps_testport_drain(dp, port, buf, sizeof buf, lens, 4096);
    CHECK(n == (int)expect, "port %u: drained %d frames, expected %u", port, n, expect);
    for (int i = 0; i < n; i++) {
        uint8_t want[2048];
        frame(want, (unsigned)i, len);
        CHECK(lens[i] == len && memcmp(buf + (size_t)i * len, want, len) == 0,
              "port %u frame %d differs", port, i);
    }
    return n < 0 ? 0 : (unsigned)n;
}

static void
inject(struct dps_dp *dp, uint32_t port, unsigned n, unsigned len)
{
    static uint8_t frames[1 << 20];
    uint32_t lens[4096];
    for (unsigned i = 0; i < n; i++) {
        frame(frames + (size_t)i * len, i, len);
        lens[i] = len;
    }
    int got = dps_testport_inject(dp, port, 0, frames, lens, n);
    CHECK(got == (int)n, "injected %d of %u", got, n);
}

static void *
log_lines(void *arg)
{
    unsigned id = *(unsigned *)arg;
    for (unsigned i = 0; i < 1000; i++)
        rte_log(RTE_LOG_ERR, RTE_LOGTYPE_USER1, "ctest: thread %u line %u\n", id, i);
    return NULL;
}

/* DPDK's log reaches the buffer in whole lines at their level, whatever thread writes and in
 * however many pieces; a full buffer drops lines and counts them. */
static void
test_log(void)
{
    static struct dps_log_line lines[DPS_LOG_SLOTS];
    uint64_t dropped;
    CHECK(dps_log_capture() == 0 && dps_log_capture() == 0, "log capture");
    dps_log_take(lines, DPS_LOG_SLOTS, &dropped);
    rte_log(RTE_LOG_WARNING, RTE_LOGTYPE_USER1, "ctest: in ");
    rte_log(RTE_LOG_WARNING, RTE_LOGTYPE_USER1, "two pieces\nctest: %s\n", "second line");
    unsigned n = dps_log_take(lines, DPS_LOG_SLOTS, &dropped);
    CHECK(n == 2 && dropped == 0, "%u lines, %lu dropped", n, (unsigned long)dropped);
    CHECK(n >= 1 && lines[0].level == RTE_LOG_WARNING && strcmp(lines[0].text, "ctest: in two pieces") == 0,
          "first line '%s' level %u", lines[0].text, lines[0].level);
    CHECK(n >= 2 && strcmp(lines[1].text, "ctest: second line") == 0, "second line '%s'", lines[1].text);

    pthread_t t[2];
    unsigned ids[2] = { 0, 1 };
    for (unsigned i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, log_lines, &ids[i]);
    for (unsigned i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    n = dps_log_take(lines, DPS_LOG_SLOTS, &dropped);
    CHECK(n == DPS_LOG_SLOTS && dropped == 2000 - DPS_LOG_SLOTS, "%u lines kept, %lu dropped", n,
          (unsigned long)dropped);
    int next[2] = { 0, 0 };
    for (unsigned i = 0; i < n; i++) {
        unsigned id, line;
        char end;
        int ok = sscanf(lines[i].text, "ctest: thread %u line %u%c", &id, &line, &end) == 2 && id < 2
                 && (int)line >= next[id] && lines[i].level == RTE_LOG_ERR;
        CHECK(ok, "line %u is '%s' (level %u)", i, lines[i].text, lines[i].level);
        if (ok)
            next[id] = (int)line + 1;
    }
    CHECK(dps_log_take(lines, DPS_LOG_SLOTS, &dropped) == 0 && dropped == 0, "drained, counter reset");
}

int
main(int argc, char **argv)
{
    (void)argc;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "--file-prefix=dps-ctest-%d", getpid());
    /* --no-huge keeps EAL's memory private; --no-shconf leaves nothing in /var/run. */
    const char *cores = sysconf(_SC_NPROCESSORS_ONLN) > 1 ? "0,1" : "0";
    char *eal[] = { argv[0], "--no-huge", "-m", "512", "--no-shconf", "--no-pci", "-l", (char *)cores,
                    "--log-level=lib.eal:error", prefix };
    if (dps_eal_init(sizeof eal / sizeof eal[0], eal) < 0) {
        fprintf(stderr, "EAL: %s\n", dps_last_error());
        return 1;
    }
    CHECK(dps_eal_init(sizeof eal / sizeof eal[0], eal) == -EALREADY, "second EAL init must fail");

    struct dps_dp_params params = { .n_mbufs = 8192, .manual_clock = 1 };
    struct dps_dp *dp = dps_dp_create("ctest", &params);
    CHECK(dp != NULL, "datapath");
    uint64_t base = dps_mbufs_in_use(dp);

    CHECK(dps_testport_add(dp, "tpa", 1, 1) == 0, "test port a");
    CHECK(dps_testport_add(dp, "tpb", 2, 1) == 0, "test port b");
    CHECK(dps_testport_add(dp, "tpc", 3, 1) == 0, "test port c");
    CHECK(dps_testport_add(dp, "tpd", 3, 1) == -EEXIST, "a taken port number is refused");
    uint64_t with_ports = dps_mbufs_in_use(dp);

    /* Deterministic: nothing moves until polled; 1 -> 2. */
    uint32_t to2 = 2;
    CHECK(fwd(dp, 1, &to2, 1) == 0, "map");
    inject(dp, 1, 100, 60);
    drain_check(dp, 2, 0, 60);
    CHECK(dps_dp_poll(dp, 10) == 100, "poll returns the frames received");
    drain_check(dp, 2, 100, 60);
    drain_check(dp, 3, 0, 60);
    struct dps_pmd_stats *st = dps_pmd_stats(dp);
    CHECK(st[DPS_MAX_PMDS].rx_packets == 100 && st[DPS_MAX_PMDS].tx_packets == 100, "manual counters");
    CHECK(st[DPS_MAX_PMDS].iterations == 10, "iterations counted");

    /* Flood 1 -> {2,3}: both get every frame, in order, sharing mbufs. */
    uint32_t both[] = { 2, 3 };
    CHECK(fwd(dp, 1, both, 2) == 0, "map flood");
    inject(dp, 1, 64, 128);
    dps_dp_poll(dp, 4);
    drain_check(dp, 2, 64, 128);
    drain_check(dp, 3, 64, 128);
    CHECK(dps_mbufs_in_use(dp) == with_ports, "flooded mbufs freed: %lu in use, %lu before",
          (unsigned long)dps_mbufs_in_use(dp), (unsigned long)with_ports);

    /* Clock. */
    dps_clock_set(dp, 12345);
    CHECK(dps_clock_now(dp) == 12345, "manual clock");

    /* A PMD thread, when EAL has a worker lcore. */
    unsigned lcores[8];
    unsigned nl = dps_eal_lcores(lcores, 8);
    if (nl > 1) {
        CHECK(dps_pmd_start(dp, &lcores[0], 1) < 0, "main lcore refused for a PMD");
        CHECK(dps_pmd_start(dp, &lcores[1], 1) == 0, "PMD start");
        CHECK(dps_dp_poll(dp, 1) == -EBUSY, "no manual polling under PMDs");
        inject(dp, 1, 500, 60);
        for (int i = 0; i < 2000 && st[0].rx_packets < 500; i++)
            usleep(1000);
        CHECK(st[0].rx_packets == 500, "PMD received %lu", (unsigned long)st[0].rx_packets);
        usleep(10000);
        drain_check(dp, 2, 500, 60);
        drain_check(dp, 3, 500, 60);
        /* Remove a port under the running PMD. */
        CHECK(dps_port_del(dp, 3) == 0, "port del under PMD");
        inject(dp, 1, 50, 60);
        for (int i = 0; i < 2000 && st[0].rx_packets < 550; i++)
            usleep(1000);
        usleep(10000);
        drain_check(dp, 2, 50, 60);
        CHECK(dps_pmd_stop(dp) == 0, "PMD stop");
        CHECK(st[0].active == 0, "PMD inactive after stop");
    } else {
        CHECK(dps_port_del(dp, 3) == 0, "port del");
    }
    CHECK(dps_port_del(dp, 3) == -ENOENT, "double delete refused");
    CHECK(dps_port_del(dp, 1) == 0 && dps_port_del(dp, 2) == 0, "port del");
    CHECK(dps_mbufs_in_use(dp) == base, "mbufs back to baseline: %lu, was %lu",
          (unsigned long)dps_mbufs_in_use(dp), (unsigned long)base);

    CHECK(dps_port_add(dp, &(struct dps_port_params){ .devargs = "net_nosuch0", .dp_port = 5 }) < 0,
          "an unknown driver is refused");
    printf("%s\n", dps_last_error());
    CHECK(dps_port_add(dp, &(struct dps_port_params){ .devargs = "net_null0,no-rx=1", .dp_port = 5 }) == 0,
          "null port");
    dps_dp_destroy(dp);
    test_log();
    printf("%d failed\n", failures);
    return failures ? 1 : 0;
}
