"""NetFlow v5 export of one bridge's flows, as Open vSwitch's ofproto/netflow.c.

A NetFlow flow is keyed as NetFlow v5 keys it: input port, IPv4 source and destination,
protocol, ToS and L4 ports (zeros for a packet that is not IPv4).  The bridge's pipeline then
splits IPv4 megaflows on those fields (``Pipeline.split_ipv4_flows``, set from the config), so
each megaflow feeds one NetFlow flow.  The revalidator tells this module (``Revalidator.
observers``) when a pass ends and when a megaflow leaves the datapath:

* a megaflow deleted (idle, revalidated away, its port gone): its last counters are added and
  its NetFlow flow expires: one record, as Open vSwitch's netflow_expire on flow removal;
* every pass: the counters that moved since the last pass are added to their flows, and a flow
  whose last record is ``active_timeout`` old or more (and that counted packets since) gets a
  record with the packets since then.

Records go to every target in v5 datagrams of at most 30 records, with Open vSwitch's fields:
``input``/``output`` are OpenFlow port numbers (output 65535 for a flood to every other port,
65534 for several outputs, 65533 for a drop), ``engine_type``/``engine_id`` from the config, and
with ``add_id_to_interface`` the engine id's low 7 bits in the interface numbers' top bits.
Flows whose actions only send to the controller give no record.  Times are the datapath's
clock (``First``/``Last`` in ms of the exporter's uptime).

Contract: the control thread only (the revalidator's pass).  Cost: per pass, one look at each
megaflow of the bridge; one UDP datagram per 30 records.
"""
from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

from .datapath import odp
from .ofproto.fields import BY_NAME as F
from .ofproto.xlate import FLOW_SAMPLE_COOKIE, IPFIX_COOKIE, SFLOW_COOKIE
from .revalidator import PassReport
from .switch import Bridge
from .ukey import Ukey

HEADER = struct.Struct("!HHIIIIBBH")            # version, count, uptime, secs, nsecs, seq, engine type/id, sampling
RECORD = struct.Struct("!IIIHHIIIIHHBBBBHHBBH")
MAX_RECORDS = 30                                # per datagram (v5)
NF_OUT_FLOOD, NF_OUT_MULTI, NF_OUT_DROP = 65535, 65534, 65533
SAMPLE_COOKIES = SFLOW_COOKIE | IPFIX_COOKIE | FLOW_SAMPLE_COOKIE    # userspace actions that are not packet-ins
KEY_FIELDS = [F[n] for n in ("ipv4_src", "ipv4_dst", "ip_proto", "ip_dscp", "ip_ecn", "tcp_src", "tcp_dst")]


@dataclass
class NfFlow:
    """One NetFlow flow: what its records will carry."""
    in_port: int
    src: int
    dst: int
    proto: int
    tos: int
    sport: int
    dport: int
    output: int = NF_OUT_DROP
    packets: int = 0                 # since the last record
    bytes: int = 0
    tcp_flags: int = 0               # ORed over its megaflows' frames since the last record
    first_ns: int = 0                # first packet since the last record
    last_ns: int = 0
    exported_ns: int = 0             # when the last record went (or the flow was created)
    megaflows: int = 0               # live megaflows that feed it


class NetFlow:
    """The NetFlow v5 exporter of one bridge."""

    def __init__(self, bridge: Bridge):
        cfg = bridge.config.netflow
        self.bridge = bridge
        self.cfg = cfg
        self.dp = bridge.dp
        self.boot_ns = self.dp.now_ns
        self.targets = []
        for t in cfg.targets:
            host, _, port = t.rpartition(":")
            self.targets.append((host.strip("[]"), int(port)))
        self.socks = {fam: socket.socket(fam, socket.SOCK_DGRAM) for fam in
                      {socket.AF_INET6 if ":" in h else socket.AF_INET for h, _ in self.targets}}
        for s in self.socks.values():
            s.setblocking(False)
        self.flows: dict[tuple, NfFlow] = {}
        self.seen: dict[int, tuple[int, int]] = {}     # ufid -> counters already counted
        self.of: dict[int, tuple] = {}                 # ufid -> its flow's key
        self.sequence = 0                              # flows exported so far (v5 flow_sequence)
        self.sent_records = self.sent_datagrams = self.send_errors = 0
        bridge.backer.revalidator.observers.append(self)

    def close(self) -> None:
        obs = self.bridge.backer.revalidator.observers
        if self in obs:
            obs.remove(self)
        for s in self.socks.values():
            s.close()

    # -- flows
    def _flow_of(self, uk: Ukey) -> NfFlow | None:
        """UK's NetFlow flow (made on first sight), or None for a megaflow of another bridge
        or one that only sends to the controller."""
        key = self.of.get(uk.ufid)
        if key is not None:
            return self.flows.get(key)
        p = self.bridge.pipeline
        if not uk.visits or uk.visits[0].pipeline is not p:
            return None
        acts = odp.decode(uk.actions)
        outs = [a.port for a in acts if isinstance(a, odp.Output)]
        if not outs and any(isinstance(a, odp.Userspace) and not a.cookie & SAMPLE_COOKIES for a in acts):
            return None                               # a controller flow: no record, as Open vSwitch
        k = uk.orig_key or uk.key
        in_port = p.port_by_dp(F["in_port"].from_key(k))
        ofport = in_port.ofport if in_port else 0
        ipv4 = F["eth_type"].from_key(k) == 0x0800
        vals = [f.from_key(k) if ipv4 else 0 for f in KEY_FIELDS]
        key = (ofport, vals[0], vals[1], vals[2], (vals[3] << 2) | vals[4], vals[5], vals[6])
        nf = self.flows.get(key)
        if nf is None:
            nf = self.flows[key] = NfFlow(*key, exported_ns=uk.created_ns)
        nf.output = self._output(outs, ofport)
        nf.megaflows += 1
        self.of[uk.ufid] = key
        return nf

    def _output(self, dp_ports: list[int], in_ofport: int) -> int:
        p = self.bridge.pipeline
        ofports = {e.ofport for e in (p.port_by_dp(d) for d in dp_ports) if e is not None}
        if not ofports:
            return NF_OUT_DROP
        if len(ofports) == 1:
            return next(iter(ofports)) & 0xFFFF
        others = {o for o, e in p.ports.items() if o != in_ofport and e.dp_port >= 0}
        return NF_OUT_FLOOD if ofports >= others else NF_OUT_MULTI

    def _count(self, uk: Ukey) -> NfFlow | None:
        nf = self._flow_of(uk)
        if nf is None:
            return None
        packets, nbytes = self.seen.get(uk.ufid, (0, 0))
        tp, tb = uk.packets + uk.missed_packets, uk.bytes + uk.missed_bytes   # the misses too
        if tp > packets:
            self.seen[uk.ufid] = (tp, tb)
            if not nf.packets:
                nf.first_ns = max(uk.created_ns, nf.exported_ns)
            nf.packets += tp - packets
            nf.bytes += tb - nbytes
            nf.tcp_flags |= uk.tcp_flags & 0xFF
            nf.last_ns = max(nf.last_ns, uk.used_ns or uk.created_ns)
        return nf

    # -- the revalidator's observer
    def flow_deleted(self, uk: Ukey) -> None:
        nf = self._count(uk)
        self.seen.pop(uk.ufid, None)
        key = self.of.pop(uk.ufid, None)
        if nf is None:
            return
        nf.megaflows -= 1
        self._export([nf])
        if nf.megaflows <= 0:
            self.flows.pop(key, None)

    def pass_done(self, rep: PassReport) -> None:
        ukeys = self.bridge.upcalls.ukeys
        for uk in list(ukeys.values()):
            self._count(uk)
        if len(self.of) > len(ukeys):                # megaflows flushed without the revalidator
            for ufid in [u for u in self.of if u not in ukeys]:     # (dpif/del-flows): their flows end
                key = self.of.pop(ufid)
                self.seen.pop(ufid, None)
                nf = self.flows.get(key)
                if nf is not None:
                    nf.megaflows -= 1
                    if nf.megaflows <= 0:
                        self._export([nf])
                        del self.flows[key]
        now = self.dp.now_ns
        due = [nf for nf in self.flows.values() if nf.packets and now - nf.exported_ns >= self.cfg.active_timeout * 1e9]
        self._export(due)

    # -- records
    def _iface(self, port: int) -> int:
        if self.cfg.add_id_to_interface and port < NF_OUT_DROP:
            return ((self.cfg.engine_id & 0x7F) << 9) | (port & 0x1FF)
        return port & 0xFFFF

    def _export(self, flows: list[NfFlow]) -> None:
        """One record per flow that counted packets since its last; their counters start again."""
        flows = [nf for nf in flows if nf.packets]
        now = self.dp.now_ns
        for i in range(0, len(flows), MAX_RECORDS):
            chunk = flows[i:i + MAX_RECORDS]
            uptime = lambda ns: max(0, (ns - self.boot_ns) // 1_000_000) & 0xFFFFFFFF
            secs = time.time()
            head = HEADER.pack(5, len(chunk), uptime(now), int(secs), int(secs % 1 * 1e9),
                               self.sequence & 0xFFFFFFFF, self.cfg.engine_type, self.cfg.engine_id, 0)
            recs = b"".join(RECORD.pack(nf.src, nf.dst, 0, self._iface(nf.in_port), self._iface(nf.output),
                                        min(nf.packets, 0xFFFFFFFF), min(nf.bytes, 0xFFFFFFFF),
                                        uptime(nf.first_ns), uptime(nf.last_ns or now), nf.sport, nf.dport,
                                        0, nf.tcp_flags, nf.proto, nf.tos, 0, 0, 0, 0, 0) for nf in chunk)
            self.sequence += len(chunk)
            for host, port in self.targets:
                s = self.socks[socket.AF_INET6 if ":" in host else socket.AF_INET]
                try:
                    s.sendto(head + recs, (host, port))
                    self.sent_datagrams += 1
                except OSError:
                    self.send_errors += 1
            self.sent_records += len(chunk)
            for nf in chunk:
                nf.packets = nf.bytes = nf.tcp_flags = 0
                nf.first_ns = nf.last_ns = 0
                nf.exported_ns = now

    def show(self) -> str:
        """``netflow/show``."""
        c = self.cfg
        return (f"{self.bridge.config.name}: NetFlow v5 to {', '.join(c.targets)}: engine_type {c.engine_type}, "
                f"engine_id {c.engine_id}, active_timeout {c.active_timeout} s"
                f"{', add_id_to_interface' if c.add_id_to_interface else ''}\n"
                f"  flows: {len(self.flows)}, records sent: {self.sent_records}, datagrams sent: "
                f"{self.sent_datagrams}, send errors: {self.send_errors}\n")
