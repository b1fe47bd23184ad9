"""Prometheus metrics: the switch's counters at ``http://<metrics.listen>/metrics``.

prometheus-client serves the text exposition format from its own HTTP server thread, through
the custom collector here (``SwitchCollector``: metric families built at scrape time, no
client-side metric objects kept up to date).  That thread never touches the datapath or the
Python pipeline: a scrape asks the control thread for a ``Snapshot`` (``loop.
call_soon_threadsafe``) and waits for it, up to ``FRESH_WAIT_S``; a control thread that does not
answer in time (a long revalidation pass, a miss storm) gets the last snapshot served instead.
A snapshot is plain data, made on the control thread and never changed after it is published.

What a snapshot reads: the PMD counters through the datapath's numpy view of C memory (one
copy of the array per datapath), every device port's counters in one C call per datapath
(``Datapath.port_stats_many`` fills a numpy array), link states (at most every
``LINK_EVERY_S``: a tap in a host namespace takes a subprocess to ask), and the slow path's
counters (attributes of Python objects).  The revalidator's pass times are fed into a histogram
as passes end (``Revalidator.observers``).

Labels are low-cardinality only: ``bridge``, ``port``, ``pmd``.  PMD and slow-path figures
belong to a datapath, which bridges linked by patch ports share: their ``bridge`` label is the
datapath's name, its first bridge's.

Contract: ``Metrics.start``/``stop``/``refresh`` on the control thread (its asyncio loop given
to ``start``); ``SwitchCollector.collect`` on prometheus-client's server thread.  Cost of a
scrape on the control thread: a copy of each datapath's PMD counter array, one
``rte_eth_stats_get`` per port, a few attribute reads per bridge; then the HTTP thread formats
about 40 series per port and PMD.
"""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import start_http_server
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from .datapath import MANUAL_PMD
from .datapath.abi import STAGES
from .revalidator import PassReport
from .switch import Backer, Switch

FRESH_WAIT_S = 1.0          # a scrape waits this long for the control thread's snapshot
LINK_EVERY_S = 2.0          # link states are asked at most this often
# The revalidator's pass time, in seconds: a pass with nothing to do takes well under a
# millisecond, one that translates 100,000 flows again takes seconds.
PASS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Port counters: (metric suffix, help, the dps_port_stats fields summed).
PORT_COUNTERS = (
    ("rx_packets", "Frames the port received (the device's count).", ("rx_packets",)),
    ("rx_bytes", "Bytes the port received.", ("rx_bytes",)),
    ("rx_dropped", "Frames the device dropped on receive: no rx descriptor free (missed) or no mbuf.",
     ("rx_missed", "rx_nombuf")),
    ("rx_errors", "Frames received in error.", ("rx_errors",)),
    ("tx_packets", "Frames the port sent (the device's count).", ("tx_packets",)),
    ("tx_bytes", "Bytes the port sent.", ("tx_bytes",)),
    ("tx_dropped", "Frames dropped because the device's tx queue was full.", ("tx_dropped",)),
    ("tx_errors", "Frames the device failed to send.", ("tx_errors",)),
)
# PMD counters: (metric suffix, help, dps_pmd_stats field).
PMD_COUNTERS = (
    ("rx_packets", "Frames the PMD received from its rx queues.", "rx_packets"),
    ("tx_packets", "Frames the PMD handed to tx queues.", "tx_packets"),
    ("tx_dropped", "Frames the PMD dropped because a tx queue was full.", "tx_dropped"),
    ("simple_hits", "Frames forwarded by the cheap in_port path (no parse, no cache).", "simple_hits"),
    ("emc_hits", "Frames that hit the exact-match cache.", "emc_hits"),
    ("megaflow_hits", "Frames that hit the masked classifier (megaflows).", "megaflow_hits"),
    ("subtable_lookups", "Subtables searched for the megaflow hits.", "subtable_lookups"),
    ("misses", "Frames that missed every cache and went up to the slow path.", "misses"),
    ("lost_upcalls", "Missed frames dropped because the upcall ring was full.", "lost"),
    ("recirculations", "Frames recirculated.", "recirculations"),
    ("meter_drops", "Frames a datapath meter dropped.", "meter_drops"),
    ("action_drops", "Frames dropped by bad actions, too deep recirculation or no buffer.", "action_drops"),
    ("busy_cycles", "TSC cycles of poll iterations that received frames.", "busy_cycles"),
    ("idle_cycles", "TSC cycles of poll iterations that received none.", "idle_cycles"),
    ("sampled_packets", "Frames of the iterations whose stages were timed.", "sampled_packets"),
)
# Slow-path counters of a datapath: (metric suffix, help, UpcallStats attribute).
UPCALL_COUNTERS = (
    ("upcalls", "Upcalls (misses and userspace actions) the slow path took.", "upcalls"),
    ("upcall_translations", "Flow translations the upcall handler made.", "translations"),
    ("upcall_flows_installed", "Megaflows the upcall handler installed.", "installed"),
    ("upcall_flow_limit_hits", "Misses forwarded without a flow: the flow limit was reached.", "flow_limit_hits"),
    ("upcall_errors", "Upcalls whose translation failed.", "errors"),
    ("upcall_packet_ins", "Upcalls that became packet-ins.", "packet_ins"),
    ("upcall_metered_drops", "Misses the bridge's OFPM_SLOWPATH meter dropped.", "metered"),
)

# sFlow's sample rings of a datapath, every PMD's summed: (metric suffix, help, dps_pmd_stats field).
SFLOW_COUNTERS = (
    ("sflow_samples", "sFlow samples the PMDs put in their sample rings.", "sflow_samples"),
    ("sflow_lost", "sFlow samples dropped because a PMD's sample ring was full.", "sflow_lost"),
)


# Protocol states, one gauge per port each (a number, so that labels stay bridge and port):
# (metric suffix, help).  Values: STP_STATES, RSTP_STATES, BFD's RFC 5880 state, 0/1.
STP_STATES = {"disabled": 0, "blocking": 1, "listening": 2, "learning": 3, "forwarding": 4}
RSTP_STATES = {"disabled": 0, "discarding": 1, "learning": 2, "forwarding": 3}
PROTOCOL_GAUGES = (
    ("stp_port_state", "The port's 802.1D state: 0 disabled, 1 blocking, 2 listening, 3 learning, 4 forwarding."),
    ("rstp_port_state", "The port's RSTP state: 0 disabled, 1 discarding, 2 learning, 3 forwarding."),
    ("bfd_session_state", "The port's BFD session state (RFC 5880): 0 admin down, 1 down, 2 init, 3 up."),
    ("bfd_forwarding", "1 while the port's BFD session says it may forward, else 0."),
    ("cfm_fault", "1 while the port's CFM session has a fault, else 0."),
    ("lacp_member_enabled", "1 while LACP lets the bond member carry traffic (attached, in sync), else 0."),
    ("bond_member_enabled", "1 while the bond member carries traffic (its liveness after updelay/downdelay)."),
)


def protocol_states(br) -> list[tuple[str, str, int]]:
    """(metric suffix, port, value) of BR's control protocols' per-port states."""
    out = []
    name_of = {p.ofport: p.name for p in br.ports.values()}
    if br.stp is not None:
        for ofport in sorted(br.stp.ports):
            out.append(("stp_port_state", name_of.get(ofport, str(ofport)), STP_STATES.get(br.stp.state(ofport), 0)))
    if br.rstp is not None:
        for ofport in sorted(br.rstp.ports):
            out.append(("rstp_port_state", name_of.get(ofport, str(ofport)),
                        RSTP_STATES.get(br.rstp.state(ofport), 0)))
    if br.bfd is not None:
        for ofport, s in sorted(br.bfd.sessions.items()):
            out.append(("bfd_session_state", name_of.get(ofport, str(ofport)), int(s.state)))
            out.append(("bfd_forwarding", name_of.get(ofport, str(ofport)), int(br.bfd.healthy(s))))
    if br.cfm is not None:
        for ofport, s in sorted(br.cfm.sessions.items()):
            out.append(("cfm_fault", name_of.get(ofport, str(ofport)), int(bool(s.faults()))))
    if br.lacp is not None:
        for bond in br.lacp.bonds.values():
            for ofport in sorted(bond.members):
                out.append(("lacp_member_enabled", name_of.get(ofport, str(ofport)), int(bool(bond.may_enable(ofport)))))
    for bond in br.bonds.values():
        for ofport, m in sorted(bond.members.items()):
            out.append(("bond_member_enabled", m.name, int(m.enabled)))
    return out


@dataclass
class PassTimes:
    """A histogram of revalidator pass times, fed on the control thread."""
    counts: list[int] = field(default_factory=lambda: [0] * (len(PASS_BUCKETS) + 1))
    total_s: float = 0.0
    flows_deleted: int = 0

    def pass_done(self, rep: PassReport) -> None:
        i = next((i for i, le in enumerate(PASS_BUCKETS) if rep.seconds <= le), len(PASS_BUCKETS))
        self.counts[i] += 1
        self.total_s += rep.seconds

    def flow_deleted(self, uk) -> None:
        self.flows_deleted += 1

    def buckets(self) -> list[tuple[str, int]]:
        """Cumulative, with +Inf last, as the exposition format wants them."""
        out, n = [], 0
        for le, c in zip([*map(str, PASS_BUCKETS), "+Inf"], self.counts):
            n += c
            out.append((le, n))
        return out


@dataclass(frozen=True)
class Snapshot:
    """What a scrape shows, read on the control thread.  Rows are tuples of label values first."""
    ports: list[tuple[str, str, dict[str, int], bool]]      # bridge, port, counters, link up
    pmds: list[tuple[str, str, np.void]]                    # datapath, pmd, its dps_pmd_stats row
    datapaths: list[tuple[str, dict[str, int], list[tuple[str, int]], float, int]]
    #          name, gauges and counters, pass-time buckets, their sum, flows deleted
    bridges: list[tuple[str, dict[str, int]]]
    protocols: list[tuple[str, str, str, int]] = field(default_factory=list)   # metric, bridge, port, value
    taken: float = 0.0


class Metrics:
    """The Prometheus endpoint of one running switch."""

    def __init__(self, switch: Switch, listen: str, openflow=None):
        self.switch = switch
        self.openflow = openflow                  # OpenFlowService, for connections and flow-mods
        host, _, port = listen.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.pass_times: dict[int, PassTimes] = {}   # by id(backer)
        self.links: dict[tuple[str, str], bool] = {}
        self.links_at = -LINK_EVERY_S
        self.snapshot = Snapshot([], [], [], [])
        self.loop: asyncio.AbstractEventLoop | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SwitchCollector(self))
        self.server = None
        self.thread: threading.Thread | None = None
        for backer in switch.backers():
            self.watch(backer)

    def watch(self, backer: Backer) -> None:
        """Feed BACKER's revalidator passes into its pass-time histogram."""
        if id(backer) not in self.pass_times:
            pt = self.pass_times[id(backer)] = PassTimes()
            backer.revalidator.observers.append(pt)

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Listen; scrapes ask LOOP's thread (this one) for fresh figures.  OSError when the
        address cannot be bound."""
        self.loop = loop
        self.refresh()
        self.server, self.thread = start_http_server(self.port, self.host, registry=self.registry)

    @property
    def bound_port(self) -> int:
        return self.server.server_port if self.server else self.port

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        for backer in self.switch.backers():
            pt = self.pass_times.get(id(backer))
            if pt in backer.revalidator.observers:
                backer.revalidator.observers.remove(pt)

    # -- the control thread
    def refresh(self) -> Snapshot:
        """Read every figure now (control thread) and publish it as the snapshot."""
        now = time.monotonic()
        if now - self.links_at >= LINK_EVERY_S:
            self.links_at = now
            self.links = {(br.config.name, p.name): br.port_info(p).link_up
                          for br in self.switch.bridges.values() for p in br.ports.values()}
        ports, pmds, datapaths, bridges = [], [], [], []
        for backer in self.switch.backers():
            dp = backer.dp
            name = dp.name
            devices = [(br, p) for br in backer.bridges.values() for p in br.ports.values() if not p.is_patch]
            rows = dp.port_stats_many([p.dp_port for _, p in devices])
            for (br, p), row in zip(devices, rows):
                ports.append((br.config.name, p.name, {f: int(row[f]) for f in row.dtype.names},
                              self.links.get((br.config.name, p.name), False)))
            for br in backer.bridges.values():
                for p in br.ports.values():
                    if p.is_patch:
                        ports.append((br.config.name, p.name, br.port_stats(p),
                                      self.links.get((br.config.name, p.name), False)))
            stats = dp.pmd_stats().copy()
            for slot in range(dp.n_pmds):
                pmds.append((name, str(int(stats[slot]["lcore"])), stats[slot]))
            if stats[MANUAL_PMD]["iterations"]:
                pmds.append((name, "main", stats[MANUAL_PMD]))
            up = backer.upcalls.stats
            figures = {attr: getattr(up, attr) for _, _, attr in UPCALL_COUNTERS}
            figures.update(flows=dp.flow_count(), flow_limit=backer.flow_limit)
            figures.update({f: int(stats[f].sum()) for _, _, f in SFLOW_COUNTERS})
            pt = self.pass_times.get(id(backer), PassTimes())
            datapaths.append((name, figures, pt.buckets(), pt.total_s, pt.flows_deleted))
        for name, br in self.switch.bridges.items():
            p = br.pipeline
            figures = {"lookup_hits": p.n_hit, "lookup_misses": p.n_missed,
                       "rules": sum(t.cls.n_rules for t in p.tables), "mac_entries": len(p.macs.entries)}
            of = self.openflow.switches.get(name) if self.openflow is not None else None
            if of is not None:
                figures.update(openflow_connections=len(of.conns), flow_mods=of.stats["flow_mods"],
                               packet_ins=of.stats["packet_ins"])
            bridges.append((name, figures))
        protocols = [(metric, name, port, value) for name, br in self.switch.bridges.items()
                     for metric, port, value in protocol_states(br)]
        self.snapshot = Snapshot(ports, pmds, datapaths, bridges, protocols, time.time())
        return self.snapshot

    # -- the server thread
    def fresh(self) -> Snapshot:
        """The control thread's figures as of now, or the last ones if it does not answer in
        FRESH_WAIT_S (or no longer runs)."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return self.snapshot
        done = threading.Event()

        def take() -> None:
            try:
                self.refresh()
            finally:
                done.set()
        try:
            loop.call_soon_threadsafe(take)
        except RuntimeError:                      # the loop closed meanwhile
            return self.snapshot
        done.wait(FRESH_WAIT_S)
        return self.snapshot


class SwitchCollector:
    """prometheus-client's custom collector: metric families from one snapshot per scrape."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def collect(self):
        s = self.metrics.fresh()
        yield from port_families(s)
        yield from pmd_families(s)
        yield from datapath_families(s)
        yield from bridge_families(s)
        yield from protocol_families(s)


def port_families(s: Snapshot):
    labels = ["bridge", "port"]
    for suffix, help_, fields in PORT_COUNTERS:
        m = CounterMetricFamily(f"dpdkswitch_port_{suffix}", help_, labels=labels)
        for bridge, port, c, _ in s.ports:
            m.add_metric([bridge, port], sum(c[f] for f in fields))
        yield m
    m = GaugeMetricFamily("dpdkswitch_port_link_up", "1 while the port's link is up, else 0.", labels=labels)
    for bridge, port, _, up in s.ports:
        m.add_metric([bridge, port], int(up))
    yield m


def pmd_families(s: Snapshot):
    labels = ["bridge", "pmd"]
    for suffix, help_, f in PMD_COUNTERS:
        m = CounterMetricFamily(f"dpdkswitch_pmd_{suffix}", help_, labels=labels)
        for dp, pmd, row in s.pmds:
            m.add_metric([dp, pmd], int(row[f]))
        yield m
    for i, stage in enumerate(STAGES):
        c = CounterMetricFamily(f"dpdkswitch_pmd_stage_{stage}_cycles",
                                f"TSC cycles in the {stage} stage, of the iterations whose stages were timed.",
                                labels=labels)
        g = GaugeMetricFamily(f"dpdkswitch_pmd_stage_{stage}_cycles_per_packet",
                              f"Cycles per frame in the {stage} stage, over the timed iterations since start.",
                              labels=labels)
        for dp, pmd, row in s.pmds:
            cycles, n = int(row["stage_cycles"][i]), int(row["sampled_packets"])
            c.add_metric([dp, pmd], cycles)
            g.add_metric([dp, pmd], cycles / n if n else 0.0)
        yield c
        yield g


def datapath_families(s: Snapshot):
    labels = ["bridge"]
    for suffix, help_, attr in UPCALL_COUNTERS:
        m = CounterMetricFamily(f"dpdkswitch_{suffix}", help_, labels=labels)
        for name, f, *_ in s.datapaths:
            m.add_metric([name], f[attr])
        yield m
    for suffix, help_, f in SFLOW_COUNTERS:
        m = CounterMetricFamily(f"dpdkswitch_{suffix}", help_, labels=labels)
        for name, figures, *_ in s.datapaths:
            m.add_metric([name], figures[f])
        yield m
    for key, help_ in (("flows", "Flows in the datapath now."),
                       ("flow_limit", "The most flows the datapath holds (datapath.flow_limit).")):
        m = GaugeMetricFamily(f"dpdkswitch_datapath_{key}", help_, labels=labels)
        for name, f, *_ in s.datapaths:
            m.add_metric([name], f[key])
        yield m
    h = HistogramMetricFamily("dpdkswitch_revalidator_pass_seconds", "Time a revalidator pass took.",
                              labels=labels)
    d = CounterMetricFamily("dpdkswitch_revalidator_flows_deleted",
                            "Megaflows the revalidator deleted (idle, or no longer true to the tables).",
                            labels=labels)
    for name, _, buckets, total, deleted in s.datapaths:
        h.add_metric([name], buckets, total)
        d.add_metric([name], deleted)
    yield h
    yield d


BRIDGE_FAMILIES = (
    ("lookup_hits", CounterMetricFamily, "dpdkswitch_bridge_lookup_hits",
     "Packets the bridge's megaflows took in the datapath, as of the revalidator's last pass."),
    ("lookup_misses", CounterMetricFamily, "dpdkswitch_bridge_lookup_misses",
     "Packets that missed into the slow path (counted on the input bridge)."),
    ("rules", GaugeMetricFamily, "dpdkswitch_bridge_rules", "OpenFlow rules in the bridge's tables."),
    ("mac_entries", GaugeMetricFamily, "dpdkswitch_bridge_mac_entries", "Entries in the bridge's MAC table."),
    ("openflow_connections", GaugeMetricFamily, "dpdkswitch_openflow_connections",
     "OpenFlow connections open to the bridge (controllers, listeners' peers, .mgmt)."),
    ("flow_mods", CounterMetricFamily, "dpdkswitch_openflow_flow_mods", "Flow-mods the bridge received."),
    ("packet_ins", CounterMetricFamily, "dpdkswitch_openflow_packet_ins", "Packet-ins the bridge sent."),
)


def bridge_families(s: Snapshot):
    for key, kind, name, help_ in BRIDGE_FAMILIES:
        m = kind(name, help_, labels=["bridge"])
        for bridge, f in s.bridges:
            if key in f:
                m.add_metric([bridge], f[key])
        yield m


def protocol_families(s: Snapshot):
    for suffix, help_ in PROTOCOL_GAUGES:
        m = GaugeMetricFamily(f"dpdkswitch_{suffix}", help_, labels=["bridge", "port"])
        for metric, bridge, port, value in s.protocols:
            if metric == suffix:
                m.add_metric([bridge, port], value)
        yield m
