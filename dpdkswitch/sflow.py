"""sFlow v5 agent of one bridge, as Open vSwitch's ofproto/ofproto-dpif-sflow.c.

Sampling happens in the datapath: while a bridge has ``sflow:``, its translation puts
``sample(1/N, userspace(SFLOW_COOKIE | output))`` first in every megaflow's actions
(``xlate.sflow_sample``).  The PMD decides by a geometric countdown (one random draw per
sample, not per frame) and copies a sampled frame's first bytes, length, input port and the
cookie into its own sample ring (C, ``csrc/sflow.c``): no upcall.  The upcall handler drains
every ring in one C call (``UpcallHandler.sflow_drain``, this module's ``SampleDrain``: one per
datapath, for every bridge's agent on it), which encodes each record as this bridge's flow
sample, with Open vSwitch's records:

* the extended switch record (1001): the frame's VLAN and priority (0 for untagged) in and out;
* the raw header record (format 1): the first ``header`` bytes of the frame, its length with
  the 4 bytes of FCS the NIC stripped, as Open vSwitch;
* input ifIndex, output ifIndex as the cookie encodes it (one port, 0x40000000|256 for a drop,
  0x80000000|N for N outputs), sampling rate N, sample pool (N per sample: the frames the
  bridge's one sampler stood for), drops (samples the full rings dropped, every PMD's); the
  source is the bridge (entPhysicalEntry 1000 + sub-agent id), as Open vSwitch's.

ifIndex of a port is Open vSwitch's for a DPDK port of that name (``xlate.sflow_ifindex``: a
hash of the name), so a collector sees the same interface numbers from either switch.  Every
``polling`` seconds each device port gets a counter sample with Open vSwitch's records in its
order: Ethernet (2: the FCS errors where the device counts them, rx_crc_errors, the rest
"unknown", 0xFFFFFFFF), OpenFlow port (1004: datapath id and port number), port name (1005)
and generic interface counters (1: multicast, broadcast and unknown protocols "unknown", as
DPDK counts none of them).  Samples wait in a datagram of at most 1400 bytes,
sent when full and at every revalidator pass (≤ 500 ms); the pass also runs the counter
polling (``Revalidator.observers``).  Times: the datapath's clock.

Contract: the control thread only (the upcall handler and the revalidator).  Cost: one C call
per 1,024 samples (encoding them) and a list append per sample; per polling interval, one C
call for every port's counters.
"""
from __future__ import annotations

import ipaddress
import socket
import struct

import numpy as np

from .datapath import MAX_PORTS, SFLOW_BATCH, DatapathError
from .datapath.abi import SFLOW_AGENT_DTYPE
from .ofproto.xlate import sflow_ifindex
from .revalidator import PassReport
from .switch import Bridge

DATAGRAM_MAX = 1400
UNKNOWN = 0xFFFFFFFF            # a counter the device does not keep (sFlow's "unknown")
PHYSICAL_ENTITY = 2 << 24       # the source class of a flow sample: the bridge, as Open vSwitch's


def _xdr_opaque(data: bytes) -> bytes:
    return struct.pack("!I", len(data)) + data + b"\0" * (-len(data) % 4)


def _record(fmt: int, body: bytes) -> bytes:
    return struct.pack("!II", fmt, len(body)) + body


class Sflow:
    """The sFlow agent of one bridge."""

    def __init__(self, bridge: Bridge, sub_id: int = 0):
        cfg = bridge.config.sflow
        self.bridge = bridge
        self.cfg = cfg
        self.dp = bridge.dp
        self.sub_id = sub_id
        self.boot_ns = self.dp.now_ns
        self.targets = []
        for t in cfg.targets:
            host, _, port = t.rpartition(":")
            self.targets.append((host.strip("[]"), int(port)))
        agent = cfg.agent or self._route_source(self.targets[0])
        ip = ipaddress.ip_address(agent)
        self.agent = (1 if ip.version == 4 else 2, ip.packed)
        self.socks = {fam: socket.socket(fam, socket.SOCK_DGRAM) for fam in
                      {socket.AF_INET6 if ":" in h else socket.AF_INET for h, _ in self.targets}}
        for s in self.socks.values():
            s.setblocking(False)
        self.pending: list[bytes] = []
        self.pending_len = 0
        self.datagram_seq = 0
        self.flow_seq = 0
        self.counter_seq: dict[int, int] = {}
        self.pool = 0                              # frames the bridge's sampler stood for
        self.source = PHYSICAL_ENTITY | (1000 + sub_id)
        self.next_poll_ns = self.boot_ns
        self.flow_samples = self.counter_samples = self.datagrams = self.send_errors = 0
        bridge.backer.revalidator.observers.append(self)
        h = bridge.upcalls
        if h.sflow_drain is None:
            h.sflow_drain = SampleDrain(self.dp)
        h.sflow_drain.agents.append(self)

    @staticmethod
    def _route_source(target: tuple[str, int]) -> str:
        fam = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
        with socket.socket(fam, socket.SOCK_DGRAM) as s:
            try:
                s.connect(target)
                return s.getsockname()[0]
            except OSError:
                return "0.0.0.0" if fam == socket.AF_INET else "::"

    def close(self) -> None:
        self.flush()
        obs = self.bridge.backer.revalidator.observers
        if self in obs:
            obs.remove(self)
        drain = self.bridge.upcalls.sflow_drain
        if drain is not None and self in drain.agents:
            self.bridge.upcalls.stats.sflow_samples += drain()   # what waits for this agent, sent below
            self.flush()
            drain.agents.remove(self)
        for s in self.socks.values():
            s.close()

    # -- samples
    def sampled(self, sample: bytes) -> None:
        """A flow sample the datapath made (SampleDrain): into the next datagram."""
        self.flow_samples += 1
        self._add(sample)

    def poll_counters(self) -> None:
        """A counter sample of every device port (generic and Ethernet records)."""
        br = self.bridge
        ports = sorted((p for p in br.ports.values() if not p.is_patch), key=lambda p: p.ofport)
        rows = self.dp.port_stats_many([p.dp_port for p in ports])
        dpid = br.config.datapath_id
        for p, c in zip(ports, rows):
            i = br.port_info(p)
            status = 1 | (2 if i.link_up else 0)
            index = sflow_ifindex(p.name)
            generic = struct.pack("!IIQIIQIIIIIIQIIIIII", index, 6, i.link_speed * 1_000_000, 1, status,
                                  int(c["rx_bytes"]), int(c["rx_packets"]) & 0xFFFFFFFF, UNKNOWN, UNKNOWN,
                                  int(c["rx_missed"] + c["rx_nombuf"]) & 0xFFFFFFFF,
                                  int(c["rx_errors"]) & 0xFFFFFFFF, UNKNOWN,
                                  int(c["tx_bytes"]), int(c["tx_packets"]) & 0xFFFFFFFF, UNKNOWN, UNKNOWN,
                                  int(c["tx_dropped"]) & 0xFFFFFFFF, int(c["tx_errors"]) & 0xFFFFFFFF, 0)
            fcs = self._xstat(p, "rx_crc_errors")
            ethernet = struct.pack("!13I", UNKNOWN, fcs, *[UNKNOWN] * 11)
            name = p.name.encode()
            seq = self.counter_seq[index] = self.counter_seq.get(index, 0) + 1
            body = (struct.pack("!III", seq, index, 4) + _record(2, ethernet)
                    + _record(1004, struct.pack("!QI", dpid, p.ofport)) + _record(1005, _xdr_opaque(name))
                    + _record(1, generic))
            self.counter_samples += 1
            self._add(_record(2, body))

    def _xstat(self, p, name: str) -> int:
        """The device's extended counter NAME, UNKNOWN if it keeps none."""
        try:
            v = self.dp.port_xstats(p.dp_port).get(name)
        except DatapathError:                       # a port going away meanwhile
            return UNKNOWN
        return UNKNOWN if v is None else int(v) & 0xFFFFFFFF

    # -- datagrams
    def _add(self, sample: bytes) -> None:
        if self.pending and 28 + len(self.agent[1]) + self.pending_len + len(sample) > DATAGRAM_MAX:
            self.flush()
        self.pending.append(sample)
        self.pending_len += len(sample)

    def flush(self) -> None:
        if not self.pending:
            return
        self.datagram_seq += 1
        uptime = ((self.dp.now_ns - self.boot_ns) // 1_000_000) & 0xFFFFFFFF
        head = (struct.pack("!II", 5, self.agent[0]) + self.agent[1]
                + struct.pack("!IIII", self.sub_id, self.datagram_seq, uptime, len(self.pending)))
        datagram = head + b"".join(self.pending)
        self.pending, self.pending_len = [], 0
        for host, port in self.targets:
            s = self.socks[socket.AF_INET6 if ":" in host else socket.AF_INET]
            try:
                s.sendto(datagram, (host, port))
                self.datagrams += 1
            except OSError:
                self.send_errors += 1

    # -- the revalidator's observer
    def flow_deleted(self, uk) -> None:
        pass

    def pass_done(self, rep: PassReport) -> None:
        now = self.dp.now_ns
        if now >= self.next_poll_ns:
            self.poll_counters()
            self.next_poll_ns = now + self.cfg.polling * 1_000_000_000
        self.flush()

    def show(self) -> str:
        """``sflow/show``."""
        c = self.cfg
        agent = ipaddress.ip_address(self.agent[1])
        return (f"{self.bridge.config.name}: sFlow v5 to {', '.join(c.targets)}: agent {agent}, sampling 1/"
                f"{c.sampling}, polling {c.polling} s, header {c.header} bytes\n"
                f"  flow samples: {self.flow_samples}, counter samples: {self.counter_samples}, "
                f"datagrams sent: {self.datagrams}, send errors: {self.send_errors}\n")


class SampleDrain:
    """The sample rings of one datapath, drained for every sFlow agent on it (one per bridge):
    the upcall handler calls it (``UpcallHandler.sflow_drain``) before its upcalls.  Each
    agent's sampling rate, header size, sequence number and pool live in one C-viewed array
    (abi.SFLOW_AGENT_DTYPE), and the datapath ports' agent and ifIndex in two tables, rebuilt
    when a bridge's ports change."""

    def __init__(self, dp):
        self.dp = dp
        self.agents: list[Sflow] = []
        self._key = None
        self.port_agent = np.full(MAX_PORTS, 0xFFFFFFFF, dtype=np.uint32)
        self.port_ifindex = np.zeros(MAX_PORTS, dtype=np.uint32)

    def _tables(self) -> None:
        key = tuple((id(a), a.bridge.pipeline.version) for a in self.agents)
        if key == self._key:
            return
        self.port_agent[:] = 0xFFFFFFFF
        self.port_ifindex[:] = 0
        for i, a in enumerate(self.agents):
            for p in a.bridge.pipeline.ports.values():
                if 0 <= p.dp_port < MAX_PORTS and self.port_agent[p.dp_port] == 0xFFFFFFFF:
                    self.port_agent[p.dp_port] = i
                    self.port_ifindex[p.dp_port] = 0 if p.patch else sflow_ifindex(p.name)
        self._key = key

    def __call__(self) -> int:
        """Every record waiting, to its agent; returns how many."""
        agents = self.agents
        if not agents:
            return 0
        self._tables()
        lost = int(self.dp.pmd_stats()["sflow_lost"].sum()) & 0xFFFFFFFF
        state = np.array([(a.source, a.cfg.sampling, a.cfg.header, a.flow_seq, a.pool, lost) for a in agents],
                         dtype=SFLOW_AGENT_DTYPE)
        total = 0
        while True:
            data, agent_of, lens = self.dp.sflow_drain(state, self.port_agent, self.port_ifindex)
            off = 0
            for a, n in zip(agent_of.tolist(), lens.tolist()):
                agents[a].sampled(data[off:off + n])
                off += n
            total += len(lens)
            if len(lens) < SFLOW_BATCH:
                break
        for a, (seq, pool) in zip(agents, state[["seq", "pool"]].tolist()):
            a.flow_seq, a.pool = seq, pool
        return total
