/*
 * testport.c — a port a test drives: a net_ring ethdev on rings the datapath owns.  The test
 * injects frames into its rx rings and drains what the datapath sent from its tx rings.
 * Control thread only; the PMD side is an ordinary ethdev.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_malloc.h>

#include "datapath.h"

#define TESTPORT_RING_SIZE 4096

void
dps_testport_free(struct dps_testport *t)
{
    rte_pktmbuf_free(t->held);
    for (unsigned q = 0; q < t->n_queues; q++) {
        struct rte_mbuf *m;
        while (t->rx[q] && rte_ring_dequeue(t->rx[q], (void **)&m) == 0)
            rte_pktmbuf_free(m);
        while (t->tx[q] && rte_ring_dequeue(t->tx[q], (void **)&m) == 0)
            rte_pktmbuf_free(m);
        rte_ring_free(t->rx[q]);
        rte_ring_free(t->tx[q]);
    }
    rte_free(t);
}

int
dps_testport_add(struct dps_dp *dp, const char *name, uint32_t dp_port, uint16_t n_queues)
{
    if (dp_port >= DPS_MAX_PORTS || dp->ports[dp_port].used)
        return dps_error(EEXIST, "port number %u is out of range or taken", dp_port);
    if (n_queues == 0 || n_queues > DPS_MAX_TESTPORT_QUEUES)
        return dps_error(EINVAL, "a test port has 1..%d queues", DPS_MAX_TESTPORT_QUEUES);
    struct dps_testport *t = rte_zmalloc("dps_testport", sizeof *t, 0);
    if (!t)
        return dps_error(ENOMEM, "no memory for test port %s", name);
    t->n_queues = n_queues;
    for (unsigned q = 0; q < n_queues; q++) {
        char rn[RTE_RING_NAMESIZE];
        snprintf(rn, sizeof rn, "tp%u_%s_r%u", dp_port, name, q);
        t->rx[q] = rte_ring_create(rn, TESTPORT_RING_SIZE, SOCKET_ID_ANY, 0);
        snprintf(rn, sizeof rn, "tp%u_%s_t%u", dp_port, name, q);
        t->tx[q] = rte_ring_create(rn, TESTPORT_RING_SIZE, SOCKET_ID_ANY, 0);
        if (!t->rx[q] || !t->tx[q]) {
            dps_testport_free(t);
            return dps_error(rte_errno, "cannot create rings for test port %s: %s", name,
                             rte_strerror(rte_errno));
        }
    }
    int pid = rte_eth_from_rings(name, t->rx, n_queues, t->tx, n_queues, (unsigned)rte_socket_id());
    if (pid < 0) {
        dps_testport_free(t);
        return dps_error(rte_errno ? rte_errno : EINVAL, "cannot create ring ethdev %s: %s", name,
                         rte_strerror(rte_errno));
    }
    struct dps_port *p = &dp->ports[dp_port];
    memset(p, 0, sizeof *p);
    p->eth_port = (uint16_t)pid;
    p->test = t;
    snprintf(p->devargs, sizeof p->devargs, "net_ring:%s", name);
    struct dps_port_params pp = { .devargs = p->devargs, .dp_port = dp_port, .n_rxq = n_queues,
                                  .n_txq = n_queues, .n_rxd = 1024, .n_txd = 1024 };
    return dps_port_setup(dp, p, &pp);
}

static struct dps_testport *
testport_get(struct dps_dp *dp, uint32_t dp_port)
{
    if (dp_port >= DPS_MAX_PORTS || !dp->ports[dp_port].used || !dp->ports[dp_port].test) {
        dps_error(ENOENT, "port %u is not a test port", dp_port);
        return NULL;
    }
    return dp->ports[dp_port].test;
}

int
dps_testport_inject(struct dps_dp *dp, uint32_t dp_port, uint16_t queue, const uint8_t *frames,
                    const uint32_t *lens, unsigned n)
{
    struct dps_testport *t = testport_get(dp, dp_port);
    if (!t)
        return -ENOENT;
    if (queue >= t->n_queues)
        return dps_error(EINVAL, "test port %u has %u queues", dp_port, t->n_queues);
    struct rte_mempool *mp = dp->ports[dp_port].pool;
    unsigned done = 0;
    size_t off = 0;
    for (; done < n; off += lens[done], done++) {
        struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
        if (!m)
            break;
        char *d = rte_pktmbuf_append(m, (uint16_t)lens[done]);
        if (!d || lens[done] > UINT16_MAX) {
            rte_pktmbuf_free(m);
            return dps_error(EMSGSIZE, "frame %u: %u bytes do not fit one mbuf", done, lens[done]);
        }
        memcpy(d, frames + off, lens[done]);
        if (rte_ring_enqueue(t->rx[queue], m) < 0) {
            rte_pktmbuf_free(m);
            break;
        }
    }
    return (int)done;
}

int
dps_testport_drain(struct dps_dp *dp, uint32_t dp_port, uint8_t *buf, size_t buflen, uint32_t *lens,
                   unsigned max)
{
    struct dps_testport *t = testport_get(dp, dp_port);
    if (!t)
        return -ENOENT;
    unsigned k = 0;
    size_t off = 0;
    for (unsigned q = 0; q < t->n_queues && k < max; q++) {
        struct rte_mbuf *m;
        /* A frame that did not fit last time waits in `held` and goes first. */
        while (k < max && (t->held || rte_ring_dequeue(t->tx[q], (void **)&m) == 0)) {
            if (t->held) {
                m = t->held;
                t->held = NULL;
            }
            uint32_t len = rte_pktmbuf_pkt_len(m);
            if (off + len > buflen) {
                t->held = m;
                return (int)k;
            }
            const void *d = rte_pktmbuf_read(m, 0, len, buf + off);
            if (d != buf + off)
                memcpy(buf + off, d, len);
            lens[k++] = len;
            off += len;
            rte_pktmbuf_free(m);
        }
    }
    return (int)k;
}
