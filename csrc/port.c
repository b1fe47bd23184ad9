/*
 * port.c — ports: any DPDK ethdev, hot-plugged by devargs, configured, started, given to
 * PMDs; and stopped, closed and unplugged again.  Control thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>

#include "datapath.h"

static struct dps_port *
port_get(const struct dps_dp *dp, uint32_t dp_port)
{
    if (dp_port >= DPS_MAX_PORTS || !dp->ports[dp_port].used)
        return NULL;
    return (struct dps_port *)&dp->ports[dp_port];
}

/* The device name a devargs string probes: "net_tap0,iface=x" -> "net_tap0". */
static void
devargs_name(const char *devargs, char *name, size_t len)
{
    size_t n = strcspn(devargs, ",");
    snprintf(name, len, "%.*s", (int)n, devargs);
}

/* Find the ethdev a just-probed device created.  PCI names are normalised by the bus
 * ("01:00.0" -> "0000:01:00.0"), so match on the device's own name too. */
static int
find_eth_port(const char *name, uint16_t *port_id)
{
    if (rte_eth_dev_get_port_by_name(name, port_id) == 0)
        return 0;
    uint16_t pid;
    RTE_ETH_FOREACH_DEV(pid) {
        struct rte_eth_dev_info info;
        if (rte_eth_dev_info_get(pid, &info) == 0 && info.device) {
            const char *dn = rte_dev_name(info.device);
            size_t ln = strlen(name), ld = strlen(dn);
            if (ld >= ln && strcmp(dn + ld - ln, name) == 0) {
                *port_id = pid;
                return 0;
            }
        }
    }
    return -ENODEV;
}

int
dps_port_add(struct dps_dp *dp, const struct dps_port_params *pp)
{
    if (!pp->devargs || !*pp->devargs)
        return dps_error(EINVAL, "a port needs devargs");
    if (pp->dp_port >= DPS_MAX_PORTS)
        return dps_error(EINVAL, "port number %u out of range (max %d)", pp->dp_port, DPS_MAX_PORTS - 1);
    if (dp->ports[pp->dp_port].used)
        return dps_error(EEXIST, "port number %u is taken by %s", pp->dp_port, dp->ports[pp->dp_port].name);

    char name[DPS_NAME_LEN];
    devargs_name(pp->devargs, name, sizeof name);
    uint16_t eth_port;
    if (find_eth_port(name, &eth_port) == 0)
        return dps_error(EEXIST, "device %s is already in use", name);
    int ret = rte_dev_probe(pp->devargs);
    if (ret < 0)
        return dps_error(-ret, "cannot probe device '%s': %s (see the EAL log above for the driver's reason)",
                         pp->devargs, rte_strerror(-ret));
    if (find_eth_port(name, &eth_port) < 0) {
        rte_eal_hotplug_remove("vdev", name);
        return dps_error(ENODEV, "device '%s' probed but gave no ethdev (not a network device?)", pp->devargs);
    }

    struct dps_port *p = &dp->ports[pp->dp_port];
    memset(p, 0, sizeof *p);
    p->eth_port = eth_port;
    snprintf(p->devargs, sizeof p->devargs, "%s", pp->devargs);
    return dps_port_setup(dp, p, pp);
}

static int port_configure(struct dps_dp *dp, struct dps_port *p, const struct dps_port_params *pp);

/* Configure and start an ethdev that exists (eth_port set), and publish it; on failure, tear
 * it down again (closed, unplugged, its mbufs released) and keep the reason. */
int
dps_port_setup(struct dps_dp *dp, struct dps_port *p, const struct dps_port_params *pp)
{
    int ret = port_configure(dp, p, pp);
    if (ret < 0) {
        char err[512];
        snprintf(err, sizeof err, "%s", dps_last_error());
        dps_port_teardown(dp, p);
        return dps_error(-ret, "%s", err);
    }
    return 0;
}

static int
port_configure(struct dps_dp *dp, struct dps_port *p, const struct dps_port_params *pp)
{
    uint16_t pid = p->eth_port;
    struct rte_eth_dev_info info;
    int ret = rte_eth_dev_info_get(pid, &info);
    if (ret < 0)
        return dps_error(-ret, "cannot read device info of port %u", pid);
    rte_eth_dev_get_name_by_port(pid, p->name);

    p->dp_port = pp->dp_port;
    p->socket = rte_eth_dev_socket_id(pid);
    p->n_rxq = pp->n_rxq ? pp->n_rxq : 1;
    if (p->n_rxq > info.max_rx_queues)
        return dps_error(EINVAL, "%s: %u rx queues asked, the device has %u", p->name, p->n_rxq,
                         info.max_rx_queues);
    uint16_t want_txq = pp->n_txq ? pp->n_txq : (uint16_t)rte_lcore_count();
    /* net_tap wants as many tx queues as rx queues (a queue pair is one fd of the tap): ask for
     * that at once, sharing the tx queues between lcores, rather than fail a configure that
     * logs "dev_configure = -1" and retry. */
    if (!pp->n_txq && strcmp(info.driver_name, "net_tap") == 0)
        want_txq = p->n_rxq;
    if (pp->n_txq && pp->n_txq > info.max_tx_queues)
        return dps_error(EINVAL, "%s: %u tx queues asked, the device has %u", p->name, pp->n_txq,
                         info.max_tx_queues);
    p->n_txq = RTE_MIN(want_txq, info.max_tx_queues);
    if (p->n_txq == 0)
        return dps_error(EINVAL, "%s: the device has no tx queue", p->name);
    p->shared_txq = p->n_txq < rte_lcore_count();
    for (unsigned i = 0; i < p->n_txq; i++)
        rte_spinlock_init(&p->txq_locks[i]);

    struct rte_eth_desc_lim rl = info.rx_desc_lim, tl = info.tx_desc_lim;
    p->n_rxd = pp->n_rxd ? pp->n_rxd : 1024;
    p->n_txd = pp->n_txd ? pp->n_txd : 1024;
    ret = rte_eth_dev_adjust_nb_rx_tx_desc(pid, &p->n_rxd, &p->n_txd);
    if (ret < 0)
        return dps_error(-ret, "%s: bad descriptor counts (rx %u..%u, tx %u..%u)", p->name,
                         rl.nb_min, rl.nb_max, tl.nb_min, tl.nb_max);

    p->mbufs_committed = (uint32_t)p->n_rxq * p->n_rxd + (uint32_t)p->n_txq * p->n_txd + pp->extra_mbufs;
    p->pool = dps_pool_for(dp, p->socket, p->mbufs_committed);
    if (!p->pool)
        return -ENOMEM;

    struct rte_eth_conf conf = { 0 };
    if (p->n_rxq > 1 && info.flow_type_rss_offloads) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf = info.flow_type_rss_offloads &
            (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP);
    }
    /* No MBUF_FAST_FREE: it needs refcnt-1 mbufs of one pool, and flooding shares mbufs. */

    ret = rte_eth_dev_configure(pid, p->n_rxq, p->n_txq, &conf);
    if (ret < 0 && !pp->n_txq && p->n_txq != p->n_rxq && p->n_rxq <= info.max_tx_queues) {
        /* Some devices (net_tap) want as many tx queues as rx queues: share them then. */
        p->n_txq = p->n_rxq;
        p->shared_txq = p->n_txq < rte_lcore_count();
        ret = rte_eth_dev_configure(pid, p->n_rxq, p->n_txq, &conf);
    }
    if (ret < 0)
        goto fail_cfg;
    if (pp->mtu && (ret = rte_eth_dev_set_mtu(pid, pp->mtu)) < 0)
        return dps_error(-ret, "%s: cannot set MTU %u (device allows %u..%u): %s", p->name, pp->mtu,
                         info.min_mtu, info.max_mtu, rte_strerror(-ret));
    for (uint16_t q = 0; q < p->n_rxq; q++)
        if ((ret = rte_eth_rx_queue_setup(pid, q, p->n_rxd, p->socket, NULL, p->pool)) < 0)
            goto fail_cfg;
    for (uint16_t q = 0; q < p->n_txq; q++)
        if ((ret = rte_eth_tx_queue_setup(pid, q, p->n_txd, p->socket, NULL)) < 0)
            goto fail_cfg;
    rte_eth_promiscuous_enable(pid);   /* a switch port takes every frame; some vdevs can't: fine */
    if ((ret = rte_eth_dev_start(pid)) < 0)
        goto fail_cfg;

    for (unsigned s = 0; s <= DPS_MAX_PMDS; s++)
        dp->port_tx_dropped[s][p->dp_port] = 0;
    p->used = true;
    ret = dps_fwd_publish(dp);
    if (ret < 0) {
        p->used = false;
        return ret;
    }
    return 0;

fail_cfg:
    return dps_error(-ret, "%s: cannot configure %u rx / %u tx queues of %u / %u descriptors: %s",
                     p->name, p->n_rxq, p->n_txq, p->n_rxd, p->n_txd, rte_strerror(-ret));
}

/* Stop, close and unplug a port no snapshot refers to any more. */
void
dps_port_teardown(struct dps_dp *dp, struct dps_port *p)
{
    struct rte_eth_dev_info info;
    struct rte_device *dev = NULL;
    if (rte_eth_dev_info_get(p->eth_port, &info) == 0)
        dev = info.device;
    rte_eth_dev_stop(p->eth_port);
    rte_eth_dev_close(p->eth_port);
    if (dev)
        rte_dev_remove(dev);
    if (p->pool)
        dps_pool_release(dp, p->pool, p->mbufs_committed);
    if (p->test)
        dps_testport_free(p->test);
    memset(p, 0, sizeof *p);
}

int
dps_port_del(struct dps_dp *dp, uint32_t dp_port)
{
    struct dps_port *p = port_get(dp, dp_port);
    if (!p)
        return dps_error(ENOENT, "no port %u", dp_port);
    p->used = false;
    int ret = dps_fwd_publish(dp);   /* after this, no PMD polls it or sends to it */
    if (ret < 0) {
        p->used = true;
        return ret;
    }
    dps_port_teardown(dp, p);
    return 0;
}

unsigned
dps_port_list(const struct dps_dp *dp, uint32_t *out, unsigned n)
{
    unsigned k = 0;
    for (uint32_t i = 0; i < DPS_MAX_PORTS && k < n; i++)
        if (dp->ports[i].used)
            out[k++] = i;
    return k;
}

int
dps_port_info(const struct dps_dp *dp, uint32_t dp_port, struct dps_port_info *out)
{
    const struct dps_port *p = port_get(dp, dp_port);
    if (!p)
        return dps_error(ENOENT, "no port %u", dp_port);
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", p->name);
    struct rte_eth_dev_info info;
    if (rte_eth_dev_info_get(p->eth_port, &info) == 0)
        snprintf(out->driver, sizeof out->driver, "%s", info.driver_name);
    out->eth_port = p->eth_port;
    out->socket = p->socket;
    out->n_rxq = p->n_rxq;
    out->n_txq = p->n_txq;
    out->n_rxd = p->n_rxd;
    out->n_txd = p->n_txd;
    out->txq_shared = p->shared_txq;
    rte_eth_dev_get_mtu(p->eth_port, &out->mtu);
    struct rte_eth_link link;
    if (rte_eth_link_get_nowait(p->eth_port, &link) == 0) {
        out->link_up = link.link_status == RTE_ETH_LINK_UP;
        out->link_speed = link.link_speed;
    }
    struct rte_ether_addr mac;
    if (rte_eth_macaddr_get(p->eth_port, &mac) == 0)
        memcpy(out->mac, mac.addr_bytes, 6);
    return 0;
}

int
dps_port_stats(const struct dps_dp *dp, uint32_t dp_port, struct dps_port_stats *out)
{
    const struct dps_port *p = port_get(dp, dp_port);
    if (!p)
        return dps_error(ENOENT, "no port %u", dp_port);
    struct rte_eth_stats st;
    int ret = rte_eth_stats_get(p->eth_port, &st);
    if (ret < 0)
        return dps_error(-ret, "%s: cannot read stats", p->name);
    memset(out, 0, sizeof *out);
    out->rx_packets = st.ipackets;
    out->rx_bytes = st.ibytes;
    out->rx_missed = st.imissed;
    out->rx_errors = st.ierrors;
    out->rx_nombuf = st.rx_nombuf;
    out->tx_packets = st.opackets;
    out->tx_bytes = st.obytes;
    out->tx_errors = st.oerrors;
    for (unsigned s = 0; s <= DPS_MAX_PMDS; s++)
        out->tx_dropped += dp->port_tx_dropped[s][dp_port];
    return 0;
}

int
dps_port_stats_many(const struct dps_dp *dp, const uint32_t *dp_ports, unsigned n,
                    struct dps_port_stats *out)
{
    int got = 0;
    for (unsigned i = 0; i < n; i++) {
        if (dps_port_stats(dp, dp_ports[i], &out[i]) == 0)
            got++;
        else
            memset(&out[i], 0, sizeof out[i]);
    }
    return got;
}

int
dps_port_xstats(const struct dps_dp *dp, uint32_t dp_port, struct dps_xstat *out, unsigned n)
{
    const struct dps_port *p = port_get(dp, dp_port);
    if (!p)
        return dps_error(ENOENT, "no port %u", dp_port);
    int total = rte_eth_xstats_get(p->eth_port, NULL, 0);
    if (total < 0)
        return dps_error(-total, "%s: cannot read xstats", p->name);
    if ((unsigned)total > n || total == 0)
        return total;
    struct rte_eth_xstat vals[total];
    struct rte_eth_xstat_name names[total];
    int got = rte_eth_xstats_get(p->eth_port, vals, (unsigned)total);
    if (got < 0 || rte_eth_xstats_get_names(p->eth_port, names, (unsigned)total) < 0)
        return dps_error(EIO, "%s: cannot read xstats", p->name);
    for (int i = 0; i < got && i < total; i++) {
        snprintf(out[i].name, sizeof out[i].name, "%s", names[vals[i].id].name);
        out[i].value = vals[i].value;
    }
    return got;
}
