"""sFlow v5 agent of one bridge, as Open vSwitch's ofproto/ofproto-dpif-sflow.c.

Sampling happens in the datapath: while a bridge has ``sflow:``, its translation puts
``sample(1/N, userspace(SFLOW_COOKIE | output))`` first in every megaflow's actions
(``xlate.sflow_sample``).  The PMD decides by a geometric countdown (one random draw per
sample, not per frame) and copies a sampled frame's first bytes, length, input port and the
cookie into its own sample ring (C, ``csrc/sflow.c``): no upcall.  The upcall handler drains
every ring in one C call (``UpcallHandler.sflow_drain``, this module's ``SampleDrain``: one per
datapath, for every bridge's agent on it), which encodes each record as this bridge's flow
sample into the bridge's datagram, kept in C (``Datapath.sflow_agent``), and sends the
datagrams it filled in batches (sendmmsg), with Open vSwitch's records:

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
DPDK counts none of them; built here, added to the same datagram).  Samples wait in a
datagram of at most 1400 bytes, sent when full and at every revalidator pass (≤ 500 ms); the
pass also runs the counter polling (``Revalidator.observers``).  Times: the datapath's clock.

Contract: the control thread only (the upcall handler and the revalidator).  Cost: one C call
per drain, whatever the samples (encoding them, building and sending their datagrams: one
sendmmsg per 64 datagrams); per polling interval, one C call for every port's counters and
one per counter sample.
"""
from __future__ import annotations

import ipaddress
import socket
import struct

import numpy as np

from .datapath import MAX_PORTS, DatapathError
from .ofproto.xlate import sflow_ifindex
from .revalidator import PassReport
from .switch import Bridge

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
        self.counter_seq: dict[int, int] = {}
        self.source = PHYSICAL_ENTITY | (1000 + sub_id)
        self.next_poll_ns = self.boot_ns
        self.counter_samples = 0
        # the datagrams (flow samples' sequence numbers and pool, what was sent) live in C
        self.out = self.dp.sflow_agent(
            self.source, cfg.sampling, cfg.header, sub_id, ip.packed, self.boot_ns,
            [(self.socks[socket.AF_INET6 if ":" in h else socket.AF_INET].fileno(), ipaddress.ip_address(h).packed, p)
             for h, p in self.targets])
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

    @property
    def flow_samples(self) -> int:
        return self.out.flow_samples

    @property
    def datagrams(self) -> int:
        return self.out.datagrams

    @property
    def send_errors(self) -> int:
        return self.out.send_errors

    # -- samples
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
            self.out.add(_record(2, body))

    def _xstat(self, p, name: str) -> int:
        """The device's extended counter NAME, UNKNOWN if it keeps none."""
        try:
            v = self.dp.port_xstats(p.dp_port).get(name)
        except DatapathError:                       # a port going away meanwhile
            return UNKNOWN
        return UNKNOWN if v is None else int(v) & 0xFFFFFFFF

    # -- datagrams
    def flush(self) -> None:
        self.out.flush()

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
    agent's datagram is C's (``Sflow.out``), and the datapath ports' agent and ifIndex are
    two tables, rebuilt when a bridge's ports change; a drain is one C call."""

    def __init__(self, dp):
        self.dp = dp
        self.agents: list[Sflow] = []
        self._key = None
        self._outs: list = []
        self.port_agent = np.full(MAX_PORTS, 0xFFFFFFFF, dtype=np.uint32)
        self.port_ifindex = np.zeros(MAX_PORTS, dtype=np.uint32)

    def _tables(self) -> None:
        # the agents themselves, not their ids: a closed agent's id can be a new one's, and
        # the C datagrams (``_outs``) must be the agents' of now
        key = tuple((a, a.bridge.pipeline.version) for a in self.agents)
        if key == self._key:
            return
        self.port_agent[:] = 0xFFFFFFFF
        self.port_ifindex[:] = 0
        for i, a in enumerate(self.agents):
            for p in a.bridge.pipeline.ports.values():
                if 0 <= p.dp_port < MAX_PORTS and self.port_agent[p.dp_port] == 0xFFFFFFFF:
                    self.port_agent[p.dp_port] = i
                    self.port_ifindex[p.dp_port] = 0 if p.patch else sflow_ifindex(p.name)
        self._outs = [a.out for a in self.agents]
        self._key = key

    def __call__(self) -> int:
        """Every record waiting, into its agent's datagrams (those filled sent); returns how many."""
        if not self.agents:
            return 0
        self._tables()
        return self.dp.sflow_export(self._outs, self.port_agent, self.port_ifindex)
