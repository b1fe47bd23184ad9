"""IPFIX (RFC 7011) export of one bridge's sampled frames, as Open vSwitch's
ofproto/ofproto-dpif-ipfix.c.

Two kinds of exporter, each with its collectors, flow cache and templates:

* the bridge exporter (``ipfix: {targets, sampling, ...}``): translation puts
  ``sample(1/N, userspace(IPFIX_COOKIE))`` first in every megaflow of the bridge
  (``xlate.ipfix_sample``), so one frame in N entering the bridge comes up, at ingress, as Open
  vSwitch's input sampling; BFD frames are not counted, as Open vSwitch;
* one per collector set (``ipfix: {collector_sets: {ID: {targets, ...}}}``): the OpenFlow
  ``sample(probability=P,collector_set_id=ID,obs_domain_id=D,obs_point_id=O)`` action sends
  P/65535 of the frames reaching it up (``xlate.Translator._flow_sample``); a sample for a set
  that is not configured is counted and dropped.

The upcall handler hands both to ``Ipfix.sampled`` (``UpcallHandler.ipfix_hooks``).  A sample
becomes a flow cache entry keyed as Open vSwitch 3.1 keys it (observation domain, template, and
the template's key fields: observation point, direction, MACs, EtherType, the ingress
interface (its OpenFlow number, type, name, description), VLAN, IP version, TTL, protocol,
DSCP, addresses, ports or ICMP type/code); it stands for N frames (the sampling rate, or
65535/P), their bytes estimated from its length: ``packetDeltaCount``,
``layer2OctetDeltaCount`` and, for IP, ``octetDeltaCount`` (IP total length), its sum of
squares, minimum and maximum; with the exporter's totals since it started (packets, by
unicast/multicast/broadcast, bytes, TCP flags), as Open vSwitch 3.1's records carry them.  Entries of the same key aggregate.  An entry leaves the cache
as a data record when it is ``cache_active_timeout`` seconds old (flowEndReason 2) or when the
cache holds more than ``cache_max_flows`` (the oldest first, reason 5 unless due); both 0 (the
defaults) make every sample its own record, as Open vSwitch.  Stopping ends them all (4).
Records wait to be sent until a message is full or the revalidator's pass (≤ 500 ms).

Messages go to every collector of the exporter, at most 1400 bytes, one data set per record;
before the first data of an observation domain, and again every 600 s (Open vSwitch's
IPFIX_TEMPLATE_INTERVAL), its template sets: 22 templates (Ethernet or VLAN × not IP, IPv4,
IPv6 × other, TCP, UDP, SCTP, ICMP; ingress, not tunnelled), with Open vSwitch 3.1's template
ids and information elements.  Timestamps:
the datapath's clock from the exporter's start, so the manual clock drives them in tests.

Contract: the control thread only (the upcall handler, the revalidator's pass).  Cost: one
frame parse (``datapath.parse``) and one dict lookup per sample; records encoded at expiry.
"""
from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

from .datapath import Upcall, dpdk_version, parse
from .ofproto.fields import BY_NAME as F
from .ofproto.xlate import FlowSampleIn, sflow_ifindex
from .revalidator import PassReport
from .switch import Bridge

VERSION = 10
MESSAGE_MAX = 1400
TEMPLATE_INTERVAL_S = 600
TEMPLATE_ID_MIN = 256
END_ACTIVE_TIMEOUT, END_FORCED, END_LACK_OF_RESOURCES = 2, 4, 5
BFD_PORTS = (3784, 3785)
HEADER = struct.Struct("!HHIII")                 # version, length, export time, sequence, observation domain
VARLEN = 0xFFFF
IF_TYPE_ETHERNET = 6                             # ifType ethernetCsmacd

# Information elements (id, length) in Open vSwitch 3.1's order: the flow key, then the aggregated ones.
COMMON = ((138, 4), (61, 1), (56, 6), (80, 6), (256, 2), (240, 1))   # obs point, direction, MACs, ethertype, L2 header length
INGRESS_IFACE = ((10, 4), (368, 4), (82, VARLEN), (83, VARLEN))     # ingressInterface, its type, name, description
VLAN = ((58, 2), (243, 2), (244, 1))             # vlanId, dot1qVlanId, dot1qPriority
IP = ((60, 1), (192, 1), (4, 1), (195, 1), (196, 1), (5, 1))   # version, TTL, protocol, DSCP, precedence, class of service
IPV4 = ((8, 4), (12, 4))
IPV6 = ((27, 16), (28, 16), (31, 4))             # addresses, flow label
TRANSPORT = ((7, 2), (11, 2))
ICMP4, ICMP6 = ((176, 1), (177, 1)), ((178, 1), (179, 1))
# start/end deltas (µs); dropped packets delta/total; packets delta/total; ingress unicast,
# multicast, broadcast totals; egress unicast, broadcast totals; post-multicast delta/total;
# layer-2 bytes delta/total; end reason.  Totals: the exporter's since it started.
AGGREGATED = ((158, 4), (159, 4), (133, 8), (135, 8), (2, 8), (86, 8), (354, 8), (355, 8), (356, 8), (357, 8),
              (358, 8), (19, 8), (174, 8), (352, 8), (353, 8), (136, 1))
# dropped IP bytes delta/total; IP bytes delta/total, their sums of squares; min and max IP
# length; post-multicast IP bytes delta/total.
AGGREGATED_IP = ((132, 8), (134, 8), (1, 8), (85, 8), (198, 8), (199, 8), (25, 8), (26, 8), (20, 8), (175, 8))
AGGREGATED_TCP = ((222, 8), (219, 8), (221, 8), (220, 8), (218, 8), (223, 8))   # ACK, FIN, PSH, RST, SYN, URG totals
TCP_FLAG_BITS = (0x10, 0x01, 0x08, 0x04, 0x02, 0x20)                          # in that order
L2_ETH, L2_VLAN = 0, 1
L3_NONE, L3_IPV4, L3_IPV6 = 0, 1, 2
L4_NONE, L4_TCP, L4_UDP, L4_SCTP, L4_ICMP = 0, 1, 2, 3, 4
L4_OF_PROTO = {6: L4_TCP, 17: L4_UDP, 132: L4_SCTP}
INGRESS = 0


def template_id(l2: int, l3: int, l4: int) -> int:
    """Open vSwitch 3.1's ipfix_get_template_id, not tunnelled, ingress: layers × 3 × 5 × 2 × 2."""
    return TEMPLATE_ID_MIN + (((l2 * 3 + l3) * 5 + l4) * 2 + 0) * 2 + INGRESS


def template_fields(l2: int, l3: int, l4: int) -> tuple:
    out = COMMON + INGRESS_IFACE + (VLAN if l2 == L2_VLAN else ())
    if l3 != L3_NONE:
        out += IP + (IPV4 if l3 == L3_IPV4 else IPV6)
        if l4 in (L4_TCP, L4_UDP, L4_SCTP):
            out += TRANSPORT
        elif l4 == L4_ICMP:
            out += ICMP4 if l3 == L3_IPV4 else ICMP6
    out += AGGREGATED
    if l3 != L3_NONE:
        out += AGGREGATED_IP
        if l4 == L4_TCP:
            out += AGGREGATED_TCP
    return out


TEMPLATES = {template_id(l2, l3, l4): template_fields(l2, l3, l4)
             for l2 in (L2_ETH, L2_VLAN) for l3 in (L3_NONE, L3_IPV4, L3_IPV6)
             for l4 in (L4_NONE, L4_TCP, L4_UDP, L4_SCTP, L4_ICMP) if l3 != L3_NONE or l4 == L4_NONE}


def _template_sets() -> list[bytes]:
    """The template sets (set id 2), split to fit messages."""
    recs = [struct.pack("!HH", tid, len(f)) + b"".join(struct.pack("!HH", i, n) for i, n in f)
            for tid, f in TEMPLATES.items()]
    sets, cur = [], []
    for r in recs:
        if cur and HEADER.size + 4 + sum(map(len, cur)) + len(r) > MESSAGE_MAX:
            sets.append(cur)
            cur = []
        cur.append(r)
    sets.append(cur)
    return [struct.pack("!HH", 2, 4 + sum(map(len, s))) + b"".join(s) for s in sets]


TEMPLATE_SETS = _template_sets()


def _varlen(b: bytes) -> bytes:
    b = b[:65535]
    return bytes([len(b)]) + b if len(b) < 255 else b"\xff" + struct.pack("!H", len(b)) + b


@dataclass(slots=True)
class Entry:
    """One flow cache entry: what its data record will carry beyond the key (the exporter's
    totals as they were at its last sample)."""
    tid: int
    start_us: int
    end_us: int
    packets: int = 0
    l2_bytes: int = 0
    ip_bytes: int = 0
    sum_squares: int = 0
    min_len: int = 0
    max_len: int = 0
    totals: tuple = ()


@dataclass(slots=True)
class Totals:
    """An exporter's counts since it started (Open vSwitch's ipfix_global_stats)."""
    packets: int = 0
    l2_bytes: int = 0
    ip_bytes: int = 0
    sum_squares: int = 0
    in_ucast: int = 0
    in_mcast: int = 0
    in_bcast: int = 0
    tcp: list = field(default_factory=lambda: [0] * len(TCP_FLAG_BITS))


def flow_key(frame: bytes, in_port: int, obs_point_id: int, iface: bytes):
    """(template id, the record's key bytes, frame length, IP total length or 0, TCP flags or
    None, destination MAC) of FRAME.  IFACE: the ingress interface part."""
    k = parse(frame, in_port)
    g = lambda n: F[n].from_key(k)       # noqa: E731
    vid = g("vlan_vid")
    l2 = L2_VLAN if vid else L2_ETH
    eth_type = g("eth_type")
    l3 = {0x0800: L3_IPV4, 0x86DD: L3_IPV6}.get(eth_type, L3_NONE)
    proto = g("ip_proto") if l3 else 0
    l4 = L4_NONE
    if l3:
        l4 = L4_OF_PROTO.get(proto, L4_ICMP if (l3, proto) in ((L3_IPV4, 1), (L3_IPV6, 58)) else L4_NONE)
    eth_len = 18 if l2 == L2_VLAN else 14
    dst = g("eth_dst")
    key = struct.pack("!IB6s6sHB", obs_point_id, INGRESS, g("eth_src").to_bytes(6, "big"), dst.to_bytes(6, "big"),
                      eth_type, eth_len) + iface
    if l2 == L2_VLAN:
        key += struct.pack("!HHB", vid & 0xFFF, vid & 0xFFF, g("vlan_pcp"))
    ip_len = 0
    if l3:
        tos = g("ip_dscp") << 2 | g("ip_ecn")
        key += struct.pack("!BBBBBB", 4 if l3 == L3_IPV4 else 6, g("nw_ttl"), proto, tos >> 2, tos >> 5, tos)
        if l3 == L3_IPV4:
            key += struct.pack("!II", g("ipv4_src"), g("ipv4_dst"))
        else:
            key += g("ipv6_src").to_bytes(16, "big") + g("ipv6_dst").to_bytes(16, "big") + struct.pack("!I", g("ipv6_label"))
        if l4 in (L4_TCP, L4_UDP, L4_SCTP):
            key += struct.pack("!HH", g("tcp_src"), g("tcp_dst"))
        elif l4 == L4_ICMP:
            t, c = ("icmp_type", "icmp_code") if l3 == L3_IPV4 else ("icmpv6_type", "icmpv6_code")
            key += struct.pack("!BB", g(t), g(c))
        ip_len = len(frame) - eth_len
    return template_id(l2, l3, l4), key, len(frame), ip_len, g("tcp_flags") if l4 == L4_TCP else None, dst


def _targets(texts: list[str]) -> list[tuple[str, int]]:
    out = []
    for t in texts:
        host, _, port = t.rpartition(":")
        out.append((host.strip("[]"), int(port)))
    return out


class Exporter:
    """An exporter: its collectors, its flow cache and its template times (the bridge's, or a
    collector set's)."""

    def __init__(self, owner: "Ipfix", name: str, targets: list[str], active_timeout: int, max_flows: int):
        self.owner = owner
        self.name = name
        self.target_texts = targets
        self.targets = _targets(targets)
        self.active_timeout = active_timeout
        self.max_flows = max_flows
        self.socks = {fam: socket.socket(fam, socket.SOCK_DGRAM) for fam in
                      {socket.AF_INET6 if ":" in h else socket.AF_INET for h, _ in self.targets}}
        for s in self.socks.values():
            s.setblocking(False)
        self.cache: dict[tuple, Entry] = {}          # (obs domain, template id, key) -> entry; oldest first
        self.out: dict[int, list[bytes]] = {}        # obs domain -> data sets waiting to be sent
        self.pending = 0                             # their bytes
        self.sequence: dict[int, int] = {}           # obs domain -> data records sent (RFC 7011's sequence)
        self.templates_at: dict[int, int] = {}       # obs domain -> when its templates went (µs)
        self.samples = self.records = self.template_sets = self.messages = self.send_errors = 0
        self.totals = Totals()

    def close(self) -> None:
        self.expire(self.owner.now_us(), forced=True)
        for s in self.socks.values():
            s.close()

    def sample(self, dom: int, point: int, frame: bytes, in_port: int, count: int) -> None:
        now = self.owner.now_us()
        tid, key, l2_len, ip_len, tcp_flags, dst = flow_key(frame, in_port, point, self.owner.iface(in_port))
        self.samples += 1
        t = self.totals
        t.packets += count
        t.l2_bytes += count * l2_len
        if dst == 0xFFFFFFFFFFFF:
            t.in_bcast += count
        elif dst >> 40 & 1:
            t.in_mcast += count
        else:
            t.in_ucast += count
        if ip_len:
            t.ip_bytes += count * ip_len
            t.sum_squares += count * ip_len * ip_len
        if tcp_flags is not None:
            for i, bit in enumerate(TCP_FLAG_BITS):
                if tcp_flags & bit:
                    t.tcp[i] += count
        e = self.cache.get((dom, tid, key))
        if e is None:
            e = self.cache[dom, tid, key] = Entry(tid, now, now, min_len=ip_len, max_len=ip_len)
        e.end_us = now
        e.packets += count
        e.l2_bytes += count * l2_len
        if ip_len:
            e.ip_bytes += count * ip_len
            e.sum_squares += count * ip_len * ip_len
            e.min_len, e.max_len = min(e.min_len, ip_len), max(e.max_len, ip_len)
        e.totals = (t.packets, t.in_ucast, t.in_mcast, t.in_bcast, t.l2_bytes, t.ip_bytes, t.sum_squares, tuple(t.tcp))
        if len(self.cache) > self.max_flows:
            self.expire(now, send=self.pending > MESSAGE_MAX)

    def expire(self, now_us: int, forced: bool = False, send: bool = True) -> None:
        """Records of the entries due (or of all, FORCED), oldest first; then send what waits
        (SEND false: a sample's expiry, sent at the pass or once a message is full)."""
        due_start = now_us - self.active_timeout * 1_000_000
        while self.cache:
            k = next(iter(self.cache))
            e = self.cache[k]
            if forced:
                reason = END_FORCED
            elif e.start_us <= due_start:
                reason = END_ACTIVE_TIMEOUT
            elif len(self.cache) > self.max_flows:
                reason = END_LACK_OF_RESOURCES
            else:
                break
            del self.cache[k]
            self._record(k, e, reason, now_us)
        if send:
            self.flush(now_us)

    def _record(self, k: tuple, e: Entry, reason: int, now_us: int) -> None:
        dom, tid, key = k
        packets, ucast, mcast, bcast, l2_total, ip_total, sq_total, tcp = e.totals
        export_us = now_us // 1_000_000 * 1_000_000        # deltas from the header's export time
        body = key + struct.pack("!IIQQQQQQQQQQQQQB", max(0, export_us - e.start_us) & 0xFFFFFFFF,
                                 max(0, export_us - e.end_us) & 0xFFFFFFFF, 0, 0, e.packets, packets,
                                 ucast, mcast, bcast, 0, 0, 0, 0, e.l2_bytes, l2_total, reason)
        if TEMPLATES[tid][-1] in (AGGREGATED_IP[-1], AGGREGATED_TCP[-1]):
            body += struct.pack("!QQQQQQQQQQ", 0, 0, e.ip_bytes, ip_total, e.sum_squares, sq_total,
                                e.min_len, e.max_len, 0, 0)
        if TEMPLATES[tid][-1] == AGGREGATED_TCP[-1]:
            body += struct.pack("!QQQQQQ", *tcp)
        self.out.setdefault(dom, []).append(struct.pack("!HH", tid, 4 + len(body)) + body)
        self.pending += 4 + len(body)

    def flush(self, now_us: int) -> None:
        """Send what waits: per observation domain, its templates first when due."""
        export_s = (now_us // 1_000_000) & 0xFFFFFFFF
        for dom, sets in self.out.items():
            last = self.templates_at.get(dom)
            if last is None or now_us - last >= TEMPLATE_INTERVAL_S * 1_000_000:
                for ts in TEMPLATE_SETS:
                    self._send(dom, export_s, [ts], 0)
                    self.template_sets += 1
                self.templates_at[dom] = now_us
            batch: list[bytes] = []
            for s in sets:
                if batch and HEADER.size + sum(map(len, batch)) + len(s) > MESSAGE_MAX:
                    self._send(dom, export_s, batch, len(batch))
                    batch = []
                batch.append(s)
            if batch:
                self._send(dom, export_s, batch, len(batch))
        self.out.clear()
        self.pending = 0

    def _send(self, dom: int, export_s: int, sets: list[bytes], n_records: int) -> None:
        seq = self.sequence.get(dom, 0)
        body = b"".join(sets)
        msg = HEADER.pack(VERSION, HEADER.size + len(body), export_s, seq & 0xFFFFFFFF, dom) + body
        self.sequence[dom] = seq + n_records
        self.records += n_records
        self.messages += 1
        for host, port in self.targets:
            s = self.socks[socket.AF_INET6 if ":" in host else socket.AF_INET]
            try:
                s.sendto(msg, (host, port))
            except OSError:
                self.send_errors += 1

    def show(self) -> str:
        return (f"  {self.name} to {', '.join(self.target_texts)}: cache_active_timeout {self.active_timeout} s, "
                f"cache_max_flows {self.max_flows}\n"
                f"    samples: {self.samples}, flows cached: {len(self.cache)}, records sent: {self.records}, "
                f"template sets sent: {self.template_sets}, messages sent: {self.messages}, "
                f"send errors: {self.send_errors}\n")


class Ipfix:
    """The IPFIX exporters of one bridge: bridge-level sampling's, and one per collector set."""

    def __init__(self, bridge: Bridge):
        cfg = bridge.config.ipfix
        self.bridge = bridge
        self.cfg = cfg
        self.dp = bridge.dp
        self.boot_ns = self.dp.now_ns
        self.wall0_us = int(time.time() * 1_000_000)
        self.exporter = None
        if cfg.targets:
            self.exporter = Exporter(self, "bridge exporter", cfg.targets, cfg.cache_active_timeout,
                                     cfg.cache_max_flows)
        self.sets = {sid: Exporter(self, f"collector set {sid}", cs.targets, cs.cache_active_timeout,
                                   cs.cache_max_flows)
                     for sid, cs in cfg.collector_sets.items()}
        self._ifaces: dict[int, bytes] = {}       # dp port -> its ingress interface part
        self.unknown_set = 0                 # sample actions naming a collector set not configured
        self.skipped_bfd = 0
        bridge.backer.revalidator.observers.append(self)
        bridge.upcalls.ipfix_hooks[bridge.config.name] = self.sampled

    def iface(self, dp_port: int) -> bytes:
        """The ingress interface part of a record: the port's ifIndex as Open vSwitch gives a
        DPDK port of its name (``xlate.sflow_ifindex``, sFlow's too), type ethernet, name, and
        "DPDK <version> <driver>" as description, as Open vSwitch's."""
        b = self._ifaces.get(dp_port)
        if b is None:
            e = self.bridge.pipeline.port_by_dp(dp_port)
            port = self.bridge.ports.get(e.name) if e is not None else None
            driver = port.info.driver if port is not None and port.info is not None else ""
            b = struct.pack("!II", sflow_ifindex(e.name) if e else 0, IF_TYPE_ETHERNET) + _varlen(e.name.encode() if e else b"")
            b += _varlen(f"{dpdk_version()} {driver}".encode())
            self._ifaces[dp_port] = b
        return b

    def now_us(self) -> int:
        return self.wall0_us + (self.dp.now_ns - self.boot_ns) // 1000

    def close(self) -> None:
        obs = self.bridge.backer.revalidator.observers
        if self in obs:
            obs.remove(self)
        if self.bridge.upcalls.ipfix_hooks.get(self.bridge.config.name) == self.sampled:
            del self.bridge.upcalls.ipfix_hooks[self.bridge.config.name]
        for ex in self.exporters():
            ex.close()

    def exporters(self) -> list[Exporter]:
        return ([self.exporter] if self.exporter else []) + list(self.sets.values())

    # -- samples
    def sampled(self, u: Upcall, fs: FlowSampleIn | None) -> None:
        """A frame sampled for IPFIX: bridge-level (FS None) or by a sample action."""
        if fs is None:
            if self.exporter is None:
                return
            if self._is_bfd(u.data):
                self.skipped_bfd += 1
                return
            self.exporter.sample(self.cfg.obs_domain_id, self.cfg.obs_point_id, u.data, u.in_port,
                                 self.cfg.sampling)
            return
        ex = self.sets.get(fs.collector_set_id)
        if ex is None:
            self.unknown_set += 1
            return
        ex.sample(fs.obs_domain_id, fs.obs_point_id, u.data, u.in_port, 65535 // fs.probability)

    @staticmethod
    def _is_bfd(frame: bytes) -> bool:
        k = parse(frame)
        return (F["eth_type"].from_key(k) in (0x0800, 0x86DD) and F["ip_proto"].from_key(k) == 17
                and F["udp_dst"].from_key(k) in BFD_PORTS)

    # -- the revalidator's observer
    def flow_deleted(self, uk) -> None:
        pass

    def pass_done(self, rep: PassReport) -> None:
        self._ifaces.clear()                     # a reload may have moved ports
        now = self.now_us()
        for ex in self.exporters():
            ex.expire(now)

    def show(self) -> str:
        """``ipfix/show``."""
        c = self.cfg
        head = f"{self.bridge.config.name}: IPFIX"
        if self.exporter:
            head += (f", sampling 1/{c.sampling} at ingress, obs_domain_id {c.obs_domain_id}, "
                     f"obs_point_id {c.obs_point_id}")
        head += f"; samples for collector sets not configured: {self.unknown_set}\n"
        return head + "".join(ex.show() for ex in self.exporters())
