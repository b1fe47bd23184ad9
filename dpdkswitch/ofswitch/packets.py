"""Frames between the bridge and its controllers: packet-in (the upcall handler's, to the
connections that want it; a table-miss rule's controller action is reported as a table miss)
and packet-out (a controller's frame through an action list, into the datapath).

Packet-ins are limited three ways, each drop counted: the ``OFPM_CONTROLLER`` meter, when a
controller set one (all the bridge's packet-ins; the meter stats count its drops); the
bridge's ``controller_rate_limit``/``controller_burst_limit`` (as Open vSwitch's: per
connection, a bucket for table misses and one for the rest; Open vSwitch queues up to the
burst and sends later, here what the bucket cannot pay for is dropped and counted in the
connection's ``packet_ins_limited``; the connections of the bridge's .mgmt socket take no
rate limit, as Open vSwitch's management connections); and the connection's queue cap (connection.py: at most
``PACKET_IN_QUEUE_MAX`` packet-ins waiting in its write buffer).  Every limiter runs on the
datapath's clock (manual in deterministic tests).

Contract: the control thread's asyncio loop; packet-ins come from the upcall handler there.
Cost: a packet-in is a copy of its frame behind a header made once per kind (version, reason,
table, cookie, input port, metadata, length: ``_head``) per connection, and a classifier lookup
to tell a table miss only while the table's table-miss rule sends to the controller (known once
per table version); a packet-out is a parse, a translation of its actions and one datapath
execute.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable

from ..datapath import DatapathError
from ..ofproto import actions as A
from ..ofproto import fields as F
from ..ofproto.pipeline import N_TABLES, OFPM_CONTROLLER, TokenBucket
from ..openflow import consts as C
from ..openflow import nx
from ..openflow.errors import OFPError
from ..ofproto.match import Match
from ..openflow.message import PacketIn, PacketOut, encode
from ..switch import Bridge
from .actions import check_actions
from .ports import PortManager

V13 = C.OFP13_VERSION
# Reasons as OpenFlow 1.0 and 1.3 send them (1.4's action_set, group and packet_out are "action" there)
PI_REASON = {"no_match": C.OFPR_NO_MATCH, "action": C.OFPR_ACTION, "invalid_ttl": C.OFPR_INVALID_TTL,
             "action_set": C.OFPR_ACTION, "group": C.OFPR_ACTION, "packet_out": C.OFPR_ACTION}
IN_PORT = F.BY_NAME["in_port"]
HEADS_MAX = 1024                # packet-in headers kept (a packet-in stream has a few kinds)
_REGS = [F.BY_NAME[f"reg{i}"] for i in range(F.N_REGS)]
_PKT_MARK = F.BY_NAME["pkt_mark"]


def _metadata(pi, in_port: int) -> dict:
    """The pipeline state PI reports (nx.packet_in_metadata's match)."""
    v = pi.vector
    regs = {f.name: (v >> f.meta_shift) & f.all_ones for f in _REGS}
    return nx.packet_in_metadata(in_port, v & ((1 << 64) - 1), regs, (v >> _PKT_MARK.meta_shift) & _PKT_MARK.all_ones)


class PacketManager:
    """One bridge's packet-ins and packet-outs, for its OpenFlow switch.  PORTS: the bridge's
    PortManager (port-mod may stop a port's packet-ins).  BROADCAST(kind, reason, make) sends
    an async message to the connections that want it.  UNLIMITED(conn): a connection that
    takes no controller_rate_limit (the .mgmt socket's)."""

    def __init__(self, br: Bridge, ports: PortManager, broadcast: Callable[..., None],
                 unlimited: Callable[[object], bool] = lambda conn: False):
        self.br = br
        self.pipeline = br.pipeline
        self.ports = ports
        self.broadcast = broadcast
        self.unlimited = unlimited
        self.n_packet_ins = 0
        self.n_metered = 0                        # dropped by the OFPM_CONTROLLER meter
        self._heads: dict[tuple, bytes] = {}      # packet-in kind -> its encoding without the frame
        self._miss_rules: dict[tuple, bool] = {}  # (table, cookie) -> its table-miss rule sends to the controller
        self._miss_version = -1                   # the pipeline version _miss_rules holds for
        of = br.config.openflow
        self.set_rate_limit(of.controller_rate_limit, of.controller_burst_limit)

    def set_rate_limit(self, rate: int | None, burst: int | None) -> None:
        """controller_rate_limit (packets/s per connection; None: off) and controller_burst_limit
        (None: a quarter of the rate), at start and by reload; every bucket starts full again."""
        self.rate_limit = rate
        self.burst_limit = burst or max(1, (rate or 0) // 4)
        self._buckets: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # conn -> [miss, other]

    def _rate_limited(self, conn, reason: int, now_ns: int) -> bool:
        """Over CONN's controller_rate_limit (Open vSwitch's two schedulers per connection: table
        misses, and every other reason)?  Counted on the connection when so."""
        if self.rate_limit is None or self.unlimited(conn):
            return False
        pair = self._buckets.get(conn)
        if pair is None:
            pair = self._buckets[conn] = [TokenBucket(self.rate_limit, self.burst_limit) for _ in range(2)]
        if pair[reason != C.OFPR_NO_MATCH].take(1000, now_ns):
            return False
        conn.stats["packet_ins_limited"] = conn.stats.get("packet_ins_limited", 0) + 1
        return True

    # -- packet-in
    def packet_in(self, ev) -> None:
        """The upcall handler's packet-in (PacketInEvent: pi, data, in_port, key)."""
        if not self.ports.sends_packet_ins(ev.in_port):
            return
        now_ns = self.br.dp.now_ns
        if not self.pipeline.meter_admit(OFPM_CONTROLLER, len(ev.data), now_ns):
            self.n_metered += 1                   # counted on the meter's band too
            return
        pi = ev.pi
        reason = PI_REASON.get(pi.reason, C.OFPR_ACTION)
        if pi.reason == "action" and self._is_table_miss(ev):
            reason = C.OFPR_NO_MATCH              # a table-miss rule's controller action
        data = bytes(ev.data)
        self.n_packet_ins += 1

        def make(conn):
            if conn.controller_id != pi.controller_id or self._rate_limited(conn, reason, now_ns):
                return None
            max_len = pi.max_len
            if max_len == C.OFPCML_NO_BUFFER and pi.reason in ("no_match", "invalid_ttl"):
                max_len = conn.miss_send_len          # a table miss's, an expired TTL's: the connection's
            body = data if max_len == C.OFPCML_NO_BUFFER else data[:max_len]
            if conn.packet_in_format == nx.NXPIF_NXT_PACKET_IN2:    # the whole frame, as Open vSwitch 3.1's
                return nx.encode_packet_in2(conn.version, data, len(data), reason, pi.table_id, pi.cookie,
                                            _metadata(pi, ev.in_port), pi.userdata)
            if conn.packet_in_format == nx.NXPIF_NXT_PACKET_IN:
                return nx.encode_nx_packet_in(conn.version, body, len(data), reason, pi.table_id, pi.cookie,
                                              _metadata(pi, ev.in_port))
            head = self._head(conn.version, reason, pi, ev.in_port, len(data))
            n = len(head) + len(body)
            if n > C.OFP_MAX_MSG_LEN:
                raise ValueError(f"PacketIn of {n} bytes exceeds 65535")
            return head[:2] + n.to_bytes(2, "big") + head[4:] + body
        self.broadcast("packet_in", reason, make)

    def _head(self, version: int, reason: int, pi, in_port: int, total_len: int) -> bytes:
        """The packet-in's encoding up to its frame (the frame is its last field in both
        versions; the length is the caller's to set), made by ``encode`` once per kind."""
        vector = pi.vector if version == V13 else 0      # 1.3's match: metadata, registers, pkt_mark
        k = (version, reason, pi.table_id, pi.cookie, in_port, vector, total_len)
        head = self._heads.get(k)
        if head is None:
            if len(self._heads) >= HEADS_MAX:
                self._heads.clear()
            match = _metadata(pi, in_port) if version == V13 else {"in_port": (in_port, None)}
            head = self._heads[k] = encode(PacketIn(buffer_id=C.OFP_NO_BUFFER, total_len=total_len, reason=reason,
                                                    table_id=pi.table_id, cookie=pi.cookie, match=match,
                                                    data=b"", version=version, xid=0))
        return head

    def _is_table_miss(self, ev) -> bool:
        """Did the packet hit its table's table-miss rule (priority 0, matching everything), and
        was it that rule's controller action that sent it?"""
        if ev.pi.table_id >= N_TABLES:
            return False                          # from a packet-out's own actions
        if not self._miss_rule_sends(ev.pi.table_id, ev.pi.cookie):
            return False                          # no such rule: no lookup
        k = bytearray(ev.key)
        IN_PORT.to_key(k, ev.in_port)
        e = self.pipeline.lookup(ev.pi.table_id, bytes(k), ev.pi.metadata)
        return (e is not None and e.priority == 0 and not len(e.match) and e.cookie == ev.pi.cookie
                and e.outputs_to(A.OFPP_CONTROLLER))

    def _miss_rule_sends(self, table_id: int, cookie: int) -> bool:
        """Has table TABLE_ID a table-miss rule (priority 0, matching everything) with COOKIE
        that outputs to the controller?  Known once per pipeline version."""
        if self._miss_version != self.pipeline.version:
            self._miss_rules.clear()
            self._miss_version = self.pipeline.version
        k = (table_id, cookie)
        sends = self._miss_rules.get(k)
        if sends is None:
            r = self.pipeline.tables[table_id].cls.find_exactly(Match(), 0)
            sends = self._miss_rules[k] = (r is not None and r.data.cookie == cookie
                                           and r.data.outputs_to(A.OFPP_CONTROLLER))
        return sends

    # -- packet-out
    def packet_out(self, conn, msg: PacketOut):
        if msg.buffer_id != C.OFP_NO_BUFFER:
            raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BUFFER_UNKNOWN)
        if msg.in_port not in self.pipeline.ports and msg.in_port not in (A.OFPP_CONTROLLER, A.OFPP_LOCAL,
                                                                          A.OFPP_ANY):
            raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_PORT)
        if len(msg.data) < 14:
            raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_PACKET)
        check_actions(self.pipeline.groups, msg.actions)
        try:
            self.br.packet_out(msg.data, msg.in_port, msg.actions)
        except DatapathError:
            raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_PACKET) from None
