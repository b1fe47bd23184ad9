"""The Rapid Spanning Tree Protocol (IEEE 802.1D-2004, clause 17), as Open vSwitch's lib/rstp.c runs it.

One ``Rstp`` per bridge with ``rstp_enable``: its bridge id (priority and address), the bridge
times (hello time, max age, forward delay, transmit hold count) and an ``RstpPort`` per port that
takes part (port id = priority << 8 | port number (12 bits), path cost, admin/auto edge).  It owns
the clause 17 state machines, run to a fixed point after every event as Open vSwitch's
``move_rstp``: port receive (17.23), protocol migration (17.24, STP BPDUs towards an 802.1D
peer and back), bridge detection (17.25, edge ports), port transmit (17.26), port information
(17.27), port role selection (17.28), port role transitions (17.29, proposal/agreement), port
state transitions (17.30) and topology change (17.31).  Its timers count whole seconds, ticked
once a second as Open vSwitch's ``rstp_tick_timers``.  Everything else reaches it through calls:

* ``tick(now)``: time passed (seconds, the datapath's clock: tests run it on the manual clock);
* ``receive(ofport, frame, now)``: a BPDU the translation hook (ofproto/special.py) caught; it is
  a ``SlowProtocol`` there, named "stp" as the 802.1D one (RSTP replaces STP on a bridge, as in
  Open vSwitch), gating ports by their state: ``forwarding``, ``learning``, ``sends_bpdu`` (RSTP
  sends BPDUs in any state but disabled, as Open vSwitch's rstp_should_manage_bpdu);
* what it does goes out through callbacks: ``send(ofport, frame)``, ``on_state(ofport, old, new)``,
  ``on_flush(ofport)`` (a topology change: the MAC table learned on OFPORT is flushed),
  ``on_root_moved(old, new)`` (the root port moved from port OLD to port NEW: what was learned
  upstream moves with it, as Open vSwitch's bundle_move).

Contract: the control thread only.  Cost: an event runs the machines of every port until none
changes (a few passes of O(ports), O(ports²) for role selection).
"""
from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from .ofproto.special import is_bpdu

LOG = logging.getLogger("dpdkswitch.rstp")

DISABLED, DISCARDING, LEARNING, FORWARDING = "disabled", "discarding", "learning", "forwarding"
ROOT, DESIGNATED, ALTERNATE, BACKUP = "root", "designated", "alternate", "backup"
INFO_DISABLED, INFO_AGED, INFO_MINE, INFO_RECEIVED = "disabled", "aged", "mine", "received"

BPDU_DST = bytes.fromhex("0180c2000000")
LLC = bytes((0x42, 0x42, 0x03))
TYPE_CONFIG, TYPE_TCN, TYPE_RST = 0x00, 0x80, 0x02
F_TC, F_PROPOSAL, F_LEARNING, F_FORWARDING, F_AGREEMENT, F_TCA = 0x01, 0x02, 0x10, 0x20, 0x40, 0x80
ROLE_SHIFT, ROLE_MASK = 2, 0x0C
ROLE_CODE = {ALTERNATE: 1, BACKUP: 1, ROOT: 2, DESIGNATED: 3}      # the BPDU's port role field
CODE_ROLE = {1: ALTERNATE, 2: ROOT, 3: DESIGNATED}
BPDU = struct.Struct("!HBBBQIQHHHHH")           # 35 bytes: the config BPDU; an RST BPDU adds 1
MIGRATE_TIME = 3
DEFAULT_PRIORITY, DEFAULT_PORT_PRIORITY = 32768, 128
DEFAULT_PATH_COST = 2000                        # Open vSwitch's, for a port of unknown speed


def cost_for_speed(mbps: int) -> int:
    """802.1D-2004's recommended path cost (table 17-3) for a link speed in Mb/s; 0 (unknown)
    costs as 10 Gb/s, as Open vSwitch's default."""
    if mbps <= 0:
        return DEFAULT_PATH_COST
    return max(1, min(200000000, 20000000 // mbps))


@dataclass(order=True, frozen=True)
class Vector:
    """A priority vector (17.6): lower is better, compared in this order."""
    root: int = 0
    cost: int = 0
    bridge: int = 0
    port: int = 0


def _superior(msg: Vector, port: Vector) -> bool:
    """17.6: MSG is better than PORT, or was sent by the same designated bridge and port."""
    return msg < port or ((msg.bridge & (1 << 48) - 1) == (port.bridge & (1 << 48) - 1)
                          and (msg.port & 0xFFF) == (port.port & 0xFFF))


@dataclass(frozen=True)
class Times:
    message_age: int = 0
    max_age: int = 20
    forward_delay: int = 15
    hello_time: int = 2


@dataclass
class Received:
    kind: int
    flags: int
    vector: Vector
    times: Times


@dataclass(eq=False)
class RstpPort:
    ofport: int
    name: str
    port_id: int
    path_cost: int
    mac: bytes = b"\x00" * 6
    admin_edge: bool = False
    auto_edge: bool = True
    port_enabled: bool = False
    state: str = DISABLED
    role: str = DISABLED
    selected_role: str = DISABLED
    info_is: str = INFO_DISABLED
    port_priority: Vector = field(default_factory=Vector)
    port_times: Times = field(default_factory=Times)
    designated_priority: Vector = field(default_factory=Vector)
    designated_times: Times = field(default_factory=Times)
    msg: Received | None = None
    # 17.19's port variables
    agree: bool = False
    agreed: bool = False
    fdb_flush: bool = False
    forward: bool = False
    forwarding: bool = False
    learn: bool = False
    learning: bool = False
    mcheck: bool = False
    new_info: bool = False
    oper_edge: bool = False
    proposed: bool = False
    proposing: bool = False
    rcvd_bpdu: bool = False
    rcvd_msg: bool = False
    rcvd_rstp: bool = False
    rcvd_stp: bool = False
    rcvd_tc: bool = False
    rcvd_tc_ack: bool = False
    rcvd_tcn: bool = False
    re_root: bool = False
    reselect: bool = False
    selected: bool = False
    send_rstp: bool = True
    sync: bool = False
    synced: bool = False
    tc_ack: bool = False
    tc_prop: bool = False
    updt_info: bool = False
    tx_count: int = 0
    # 17.17's timers, in seconds
    edge_delay_while: int = 0
    fd_while: int = 0
    hello_when: int = 0
    mdelay_while: int = 0
    rb_while: int = 0
    rcvd_info_while: int = 0
    rr_while: int = 0
    tc_while: int = 0
    # the machines' states
    prx: str = "init"
    ppm: str = "init"
    bdm: str = "init"
    ptx: str = "init"
    pim: str = "init"
    prt: str = "init"
    pst: str = "init"
    tcm: str = "init"
    rx_bpdus: int = 0
    tx_bpdus: int = 0
    errors: int = 0

    @property
    def priority(self) -> int:
        return self.port_id >> 12 << 4


class Rstp:
    """One bridge's rapid spanning tree.  ADDRESS: 48 bits; times in seconds."""

    def __init__(self, name: str, address: int, priority: int = DEFAULT_PRIORITY, hello_time: int = 2,
                 max_age: int = 20, forward_delay: int = 15, transmit_hold_count: int = 6,
                 ageing_time: int = 300,
                 send: Callable[[int, bytes], None] = lambda ofport, frame: None,
                 on_state: Callable[[int, str, str], None] = lambda ofport, old, new: None,
                 on_flush: Callable[[int], None] = lambda ofport: None,
                 on_root_moved: Callable[[int, int], None] = lambda old, new: None, now: float = 0.0):
        self.name = "stp"                          # its name as a SlowProtocol: RSTP replaces STP
        self.bridge = name
        self.send, self.on_state, self.on_flush, self.on_root_moved = send, on_state, on_flush, on_root_moved
        self.bridge_id = ((priority & 0xF000) << 48) | (address & ((1 << 48) - 1))
        self.times = Times(0, max_age, forward_delay, hello_time)
        self.transmit_hold_count = transmit_hold_count
        self.ageing_time = ageing_time
        self.rstp_version = True                   # force-protocol-version 2
        self.ports: dict[int, RstpPort] = {}
        self.root_priority = Vector(self.bridge_id, 0, self.bridge_id, 0)
        self.root_port_id = 0
        self.root_times = self.times
        self.prs = "init"
        self.root_move: tuple[int, ...] | None = None     # (old, new) root port, until the machines settle
        self.begin = True
        self.last = now
        self.remainder = 0.0
        self.flushes = 0
        self._run()
        self.begin = False

    # -- configuration
    @property
    def bridge_priority(self) -> Vector:
        return Vector(self.bridge_id, 0, self.bridge_id, 0)

    def set_priority(self, priority: int) -> None:
        self.bridge_id = ((priority & 0xF000) << 48) | (self.bridge_id & ((1 << 48) - 1))
        self._reselect_all()

    def set_times(self, hello_time: int, max_age: int, forward_delay: int) -> None:
        self.times = Times(0, max_age, forward_delay, hello_time)
        self._reselect_all()

    def _reselect_all(self) -> None:
        for p in self.ports.values():
            p.reselect, p.selected = True, False
        self._run()

    def add_port(self, ofport: int, name: str, path_cost: int, priority: int = DEFAULT_PORT_PRIORITY,
                 mac: bytes = b"\x00" * 6, admin_edge: bool = False, auto_edge: bool = True,
                 enabled: bool = True) -> RstpPort:
        """A port taking part (OFPORT 1..4095 is its port number), its link up or not."""
        p = RstpPort(ofport, name, ((priority & 0xF0) << 8) | (ofport & 0xFFF), path_cost, mac,
                     admin_edge, auto_edge)
        self.ports[ofport] = p
        self._begin_port(p)
        p.port_enabled = enabled
        self._run()
        return p

    def _begin_port(self, p: RstpPort) -> None:
        """The BEGIN of every machine of P."""
        p.prx = p.ppm = p.bdm = p.ptx = p.pim = p.prt = p.pst = p.tcm = "init"
        begin, self.begin = self.begin, True
        self._port_machines(p)
        self.begin = begin

    def remove_port(self, ofport: int) -> None:
        p = self.ports.pop(ofport, None)
        if p is not None:
            self._reselect_all()

    def enable_port(self, ofport: int) -> None:
        p = self.ports[ofport]
        if not p.port_enabled:
            p.port_enabled = True
            self._run()

    def disable_port(self, ofport: int) -> None:
        p = self.ports[ofport]
        if p.port_enabled:
            p.port_enabled = False
            self._run()

    def set_port_priority(self, ofport: int, priority: int) -> None:
        p = self.ports[ofport]
        p.port_id = ((priority & 0xF0) << 8) | (p.port_id & 0xFFF)
        self._reselect_all()

    def set_path_cost(self, ofport: int, cost: int) -> None:
        self.ports[ofport].path_cost = cost
        self._reselect_all()

    def set_edge(self, ofport: int, admin_edge: bool, auto_edge: bool) -> None:
        p = self.ports[ofport]
        p.admin_edge, p.auto_edge = admin_edge, auto_edge
        if admin_edge and p.port_enabled and p.bdm == "not_edge" and not p.rcvd_bpdu:
            p.oper_edge = True
        self._run()

    def mcheck(self, ofport: int) -> None:
        """rstp_port_mcheck: try RSTP again on OFPORT (after a legacy peer went away)."""
        p = self.ports[ofport]
        if self.rstp_version:
            p.mcheck = True
            self._run()

    # -- what others ask
    def is_root(self) -> bool:
        return self.root_priority.root == self.bridge_id

    def state(self, ofport: int) -> str:
        p = self.ports.get(ofport)
        return p.state if p is not None else DISABLED

    def role(self, ofport: int) -> str:
        p = self.ports.get(ofport)
        return p.role if p is not None else DISABLED

    def root_moving_from(self) -> int | None:
        """While the root port moves (until ``on_root_moved``), the old one: its learned
        addresses move rather than being flushed when it stops learning."""
        return self.root_move[0] if self.root_move else None

    def root_port(self) -> RstpPort | None:
        return next((p for p in self.ports.values() if p.role == ROOT), None)

    # SlowProtocol (ofproto/special.py)
    def claims(self, ofport: int, flow) -> bool:
        return is_bpdu(flow)

    def forwarding(self, ofport: int) -> bool:
        return self.state(ofport) in (DISABLED, FORWARDING)

    def learning(self, ofport: int) -> bool:
        return self.state(ofport) in (DISABLED, LEARNING, FORWARDING)

    def sends_bpdu(self, ofport: int) -> bool:
        return self.state(ofport) != DISABLED or ofport not in self.ports

    def exempt(self, ofport: int, flow) -> bool:
        return False

    # -- time
    def tick(self, now: float) -> None:
        """NOW (seconds) on the bridge's clock: one timer tick per whole second passed."""
        s = max(0.0, now - self.last) + self.remainder
        self.last = now
        n = int(s)
        self.remainder = s - n
        for _ in range(min(n, 3600)):
            self._tick_timers()
            self._run()

    def _tick_timers(self) -> None:
        """17.22, the Port Timers state machine: every timer counts down to 0, txCount too."""
        for p in self.ports.values():
            for t in ("hello_when", "tc_while", "fd_while", "rcvd_info_while", "rr_while", "rb_while",
                      "mdelay_while", "edge_delay_while"):
                v = getattr(p, t)
                if v > 0:
                    setattr(p, t, v - 1)
            if p.tx_count > 0:
                p.tx_count -= 1

    # -- BPDUs in
    def receive(self, ofport: int, frame: bytes, now: float) -> None:
        """FRAME (Ethernet, 802.3 + LLC, maybe VLAN-tagged) came in on OFPORT."""
        self.tick(now)
        p = self.ports.get(ofport)
        if p is None or not p.port_enabled:
            return
        off = 18 if frame[12:14] in (b"\x81\x00", b"\x88\xa8") else 14
        if len(frame) < off + 3 + 4 or frame[off:off + 3] != LLC:
            p.errors += 1
            return
        bpdu = frame[off + 3:]
        if bpdu[0:2] != b"\x00\x00":
            p.errors += 1
            return
        kind = bpdu[3]
        if kind == TYPE_TCN:
            msg = Received(TYPE_TCN, 0, Vector(), Times())
        elif kind in (TYPE_CONFIG, TYPE_RST) and len(bpdu) >= BPDU.size + (kind == TYPE_RST):
            (_, _, _, flags, root, cost, bridge, port_id, age, max_age, hello, fwd) = BPDU.unpack_from(bpdu)
            times = Times(age >> 8, max_age >> 8, fwd >> 8, hello >> 8)
            if kind == TYPE_CONFIG:
                flags &= F_TC | F_TCA
            if times.message_age >= times.max_age and kind == TYPE_CONFIG or port_id & 0xFFF == p.port_id & 0xFFF \
                    and bridge & ((1 << 48) - 1) == self.bridge_id & ((1 << 48) - 1):
                p.errors += 1                      # aged out, or our own BPDU looped back (9.3.4)
                return
            msg = Received(kind, flags, Vector(root, cost, bridge, port_id), times)
        else:
            p.errors += 1
            return
        p.rx_bpdus += 1
        p.msg = msg
        p.rcvd_bpdu = True
        self._run()

    # -- the machines
    def _run(self) -> None:
        """Every machine, until none changes (Open vSwitch's move_rstp)."""
        for _ in range(1000):
            changed = False
            for p in list(self.ports.values()):
                changed |= self._port_machines(p)
            changed |= self._prs()
            for p in list(self.ports.values()):
                changed |= self._prt(p) | self._pst(p) | self._tcm(p) | self._ptx(p)
            for p in self.ports.values():
                if p.fdb_flush:
                    p.fdb_flush = False
                    self.flushes += 1
                    self.on_flush(p.ofport)
            if not changed:
                if self.root_move is not None:
                    (old, new), self.root_move = self.root_move, None
                    if old != new:
                        self.on_root_moved(old, new)
                return
        LOG.warning("%s: rstp did not settle", self.bridge)

    def _port_machines(self, p: RstpPort) -> bool:
        before = (p.prx, p.ppm, p.bdm, p.pim)
        self._prx(p)
        self._ppm(p)
        self._bdm(p)
        self._pim(p)
        return before != (p.prx, p.ppm, p.bdm, p.pim)

    # 17.23 port receive
    def _prx(self, p: RstpPort) -> None:
        if self.begin or ((p.rcvd_bpdu or p.edge_delay_while != MIGRATE_TIME) and not p.port_enabled):
            if p.prx != "discard" or p.rcvd_bpdu or p.edge_delay_while != MIGRATE_TIME:
                p.rcvd_bpdu = p.rcvd_rstp = p.rcvd_stp = p.rcvd_msg = False
                p.edge_delay_while = MIGRATE_TIME
                p.prx = "discard"
            return
        if p.rcvd_bpdu and p.port_enabled and (p.prx == "discard" or not p.rcvd_msg):
            p.rcvd_rstp = p.msg.kind == TYPE_RST
            p.rcvd_stp = not p.rcvd_rstp
            p.oper_edge = p.rcvd_bpdu = False
            p.rcvd_msg = True
            p.edge_delay_while = MIGRATE_TIME
            p.prx = "receive"

    # 17.24 port protocol migration
    def _ppm(self, p: RstpPort) -> None:
        for _ in range(4):
            if p.ppm == "init" or (p.ppm == "checking_rstp" and p.mdelay_while != MIGRATE_TIME
                                   and not p.port_enabled) or (
                    p.ppm == "sensing" and (not p.port_enabled or p.mcheck
                                            or (self.rstp_version and not p.send_rstp and p.rcvd_rstp))):
                p.mcheck = False
                p.send_rstp = self.rstp_version
                p.mdelay_while = MIGRATE_TIME
                p.ppm = "checking_rstp"
            elif (p.ppm == "checking_rstp" and p.mdelay_while == 0) or (
                    p.ppm == "selecting_stp" and (p.mdelay_while == 0 or not p.port_enabled or p.mcheck)):
                p.rcvd_rstp = p.rcvd_stp = False
                p.ppm = "sensing"
            elif p.ppm == "sensing" and p.send_rstp and p.rcvd_stp:
                p.send_rstp = False
                p.mdelay_while = MIGRATE_TIME
                p.ppm = "selecting_stp"
                LOG.info("%s: port %s: an 802.1D peer: sending STP BPDUs", self.bridge, p.name)
            else:
                return

    # 17.25 bridge detection
    def _bdm(self, p: RstpPort) -> None:
        if p.bdm == "init":
            p.bdm = "edge" if p.admin_edge else "not_edge"
            p.oper_edge = p.admin_edge
        elif p.bdm == "edge" and ((not p.port_enabled and not p.admin_edge) or not p.oper_edge):
            p.bdm, p.oper_edge = "not_edge", False
        elif p.bdm == "not_edge" and ((not p.port_enabled and p.admin_edge) or (
                p.edge_delay_while == 0 and p.auto_edge and p.send_rstp and p.proposing)):
            p.bdm, p.oper_edge = "edge", True

    # 17.27 port information
    def _pim(self, p: RstpPort) -> None:
        for _ in range(4):
            if self.begin or (not p.port_enabled and p.info_is != INFO_DISABLED) or (
                    p.pim == "disabled" and p.rcvd_msg):
                p.rcvd_msg = p.proposing = p.proposed = p.agree = p.agreed = False
                p.rcvd_info_while = 0
                p.info_is = INFO_DISABLED
                p.reselect, p.selected = True, False
                p.pim = "disabled"
            elif p.pim == "disabled" and p.port_enabled:
                self._aged(p)
            elif p.pim in ("aged", "current") and p.selected and p.updt_info:
                p.proposing = p.proposed = False
                p.agreed = p.agreed and p.designated_priority <= p.port_priority   # betterorsameInfo(Mine)
                p.synced = p.synced and p.agreed
                p.port_priority, p.port_times = p.designated_priority, p.designated_times
                p.updt_info = False
                p.info_is = INFO_MINE
                p.new_info = True
                p.pim = "current"
            elif p.pim == "current" and p.info_is == INFO_RECEIVED and p.rcvd_info_while == 0 \
                    and not p.updt_info and not p.rcvd_msg:
                self._aged(p)
            elif p.pim == "current" and p.rcvd_msg and not p.updt_info:
                self._pim_receive(p)
                p.rcvd_msg = False
                p.pim = "current"
            else:
                return

    def _aged(self, p: RstpPort) -> None:
        p.info_is = INFO_AGED
        p.reselect, p.selected = True, False
        p.pim = "aged"

    def _pim_receive(self, p: RstpPort) -> None:
        m = p.msg
        role = CODE_ROLE.get((m.flags & ROLE_MASK) >> ROLE_SHIFT) if m.kind == TYPE_RST else None
        if m.kind == TYPE_CONFIG or role == DESIGNATED:
            if _superior(m.vector, p.port_priority) and (m.vector != p.port_priority or m.times != p.port_times):
                info = "superior"
            elif m.vector == p.port_priority and m.times == p.port_times:
                info = "repeated"
            else:
                info = "inferior"
        elif m.kind == TYPE_RST and role in (ROOT, ALTERNATE) and not (m.vector < p.port_priority):
            info = "inferior_root_alternate"
        else:
            info = "other"
        if info == "superior":
            p.agreed = p.proposing = False
            self._record_proposal(p)
            self._set_tc_flags(p)
            p.agree = p.agree and not (p.port_priority < m.vector)              # betterorsameInfo(Received)
            p.port_priority = m.vector
            p.port_times = Times(m.times.message_age, m.times.max_age, m.times.forward_delay,
                                 m.times.hello_time or 1)
            self._updt_rcvd_info_while(p)
            p.info_is = INFO_RECEIVED
            p.reselect, p.selected = True, False
        elif info == "repeated":
            self._record_proposal(p)
            self._set_tc_flags(p)
            self._updt_rcvd_info_while(p)
        elif info == "inferior":
            if m.flags & F_LEARNING:              # recordDispute (802.1D-2004's)
                p.agreed, p.proposing = True, False
        elif info == "inferior_root_alternate":
            if self.rstp_version and m.flags & F_AGREEMENT:     # recordAgreement (point-to-point)
                p.agreed, p.proposing = True, False
            else:
                p.agreed = False
            self._set_tc_flags(p)

    @staticmethod
    def _record_proposal(p: RstpPort) -> None:
        m = p.msg
        if m.kind == TYPE_RST and (m.flags & ROLE_MASK) >> ROLE_SHIFT == 3 and m.flags & F_PROPOSAL:
            p.proposed = True

    @staticmethod
    def _set_tc_flags(p: RstpPort) -> None:
        m = p.msg
        if m.kind == TYPE_TCN:
            p.rcvd_tcn = True
        else:
            p.rcvd_tc = p.rcvd_tc or bool(m.flags & F_TC)
            p.rcvd_tc_ack = p.rcvd_tc_ack or bool(m.flags & F_TCA)

    @staticmethod
    def _updt_rcvd_info_while(p: RstpPort) -> None:
        t = p.port_times
        p.rcvd_info_while = 3 * t.hello_time if t.message_age + 1 <= t.max_age else 0

    # 17.28 port role selection
    def _prs(self) -> bool:
        if self.prs == "init" or self.begin:
            if self.prs != "init":
                return False
            for p in self.ports.values():
                p.selected_role = DISABLED
            self.prs = "role_selection"
            self._select()
            return True
        if any(p.reselect for p in self.ports.values()):
            self._select()
            return True
        return False

    def _select(self) -> None:
        for p in self.ports.values():
            p.reselect = False
        self._updt_roles_tree()
        if not any(p.reselect for p in self.ports.values()):
            for p in self.ports.values():
                p.selected = True

    def _updt_roles_tree(self) -> None:
        me = self.bridge_id & ((1 << 48) - 1)
        best, best_port, root_port = self.bridge_priority, 0, None
        self.root_times = self.times
        for p in sorted(self.ports.values(), key=lambda q: q.port_id):
            if p.info_is != INFO_RECEIVED or p.port_priority.bridge & ((1 << 48) - 1) == me:
                continue
            cand = Vector(p.port_priority.root, p.port_priority.cost + p.path_cost, p.port_priority.bridge,
                          p.port_priority.port)
            if (cand, p.port_id) < (best, best_port) or root_port is None and cand < best:
                best, best_port, root_port = cand, p.port_id, p
                t = p.port_times
                self.root_times = Times(t.message_age + 1, t.max_age, t.forward_delay, t.hello_time)
        old = self.root_port()
        if old is not None and root_port is not None and old is not root_port:
            self.root_move = (self.root_move or (old.ofport,))[:1] + (root_port.ofport,)
        self.root_priority, self.root_port_id = best, best_port
        for p in self.ports.values():
            p.designated_priority = Vector(best.root, best.cost, self.bridge_id, p.port_id)
            p.designated_times = Times(self.root_times.message_age, self.root_times.max_age,
                                       self.root_times.forward_delay, self.times.hello_time)
        for p in self.ports.values():
            if p.info_is == INFO_DISABLED:
                p.selected_role = DISABLED
            elif p.info_is == INFO_AGED:
                p.selected_role, p.updt_info = DESIGNATED, True
            elif p.info_is == INFO_MINE:
                p.selected_role = DESIGNATED
                if p.port_priority != p.designated_priority or p.port_times != p.designated_times:
                    p.updt_info = True
            elif p is root_port:
                p.selected_role, p.updt_info = ROOT, False
            elif not (p.designated_priority < p.port_priority):
                p.selected_role = ALTERNATE if p.port_priority.bridge != self.bridge_id else BACKUP
                p.updt_info = False
            else:
                p.selected_role, p.updt_info = DESIGNATED, True

    # 17.29 port role transitions
    def _all_synced(self, me: RstpPort) -> bool:
        return all(p.selected and p.role == p.selected_role and not p.updt_info
                   and (p.synced or p.role == ROOT) for p in self.ports.values() if p is not me)

    def _re_rooted(self, me: RstpPort) -> bool:
        return all(p.rr_while == 0 for p in self.ports.values() if p is not me)

    def _prt(self, p: RstpPort) -> bool:
        before = (p.prt, p.role, p.learn, p.forward, p.synced, p.sync, p.re_root, p.agree, p.proposing, p.fd_while,
                  p.rr_while, p.rb_while, p.new_info)
        for _ in range(8):
            if not self._prt_step(p):
                break
        return before != (p.prt, p.role, p.learn, p.forward, p.synced, p.sync, p.re_root, p.agree, p.proposing,
                          p.fd_while, p.rr_while, p.rb_while, p.new_info)

    def _prt_step(self, p: RstpPort) -> bool:
        fd = p.designated_times.forward_delay
        if self.begin or p.prt == "init":
            p.role = DISABLED
            p.learn = p.forward = p.synced = False
            p.sync = p.re_root = True
            p.rr_while, p.fd_while, p.rb_while = fd, p.designated_times.max_age, 0
            p.prt = "disable"
            return True
        if not (p.selected and not p.updt_info):
            return False
        if p.selected_role != p.role:
            if p.selected_role == DISABLED:
                p.role = DISABLED
                p.learn = p.forward = False
                p.prt = "disable"
            elif p.selected_role == ROOT:
                p.role, p.rr_while, p.prt = ROOT, fd, "root"
            elif p.selected_role == DESIGNATED:
                p.role, p.prt = DESIGNATED, "designated"
            else:                                   # alternate or backup: BLOCK_PORT
                p.role = p.selected_role
                p.learn = p.forward = False
                p.prt = "block"
            return True
        if p.prt == "disable":
            if not p.learning and not p.forwarding:
                self._disabled_port(p)
                return True
        elif p.prt == "disabled":
            if p.fd_while != p.designated_times.max_age or p.sync or p.re_root or not p.synced:
                self._disabled_port(p)
                return True
        elif p.prt == "root":
            return self._root_port(p, fd)
        elif p.prt == "designated":
            return self._designated_port(p, fd)
        elif p.prt == "block":
            if not p.learning and not p.forwarding:
                self._alternate_port(p, fd)
                return True
        elif p.prt == "alternate":
            if p.rb_while != 2 * p.designated_times.hello_time and p.role == BACKUP:
                p.rb_while = 2 * p.designated_times.hello_time
                self._alternate_port(p, fd)
            elif p.fd_while != fd or p.sync or p.re_root or not p.synced:
                self._alternate_port(p, fd)
            elif p.proposed and not p.agree:
                self._set_sync_tree()
                p.proposed = False
                self._alternate_port(p, fd)
            elif (self._all_synced(p) and not p.agree) or (p.proposed and p.agree):
                p.proposed, p.agree, p.new_info = False, True, True
                self._alternate_port(p, fd)
            else:
                return False
            return True
        return False

    def _disabled_port(self, p: RstpPort) -> None:
        p.fd_while = p.designated_times.max_age
        p.synced, p.rr_while, p.sync, p.re_root = True, 0, False, False
        p.prt = "disabled"

    def _alternate_port(self, p: RstpPort, fd: int) -> None:
        p.fd_while, p.synced, p.rr_while, p.sync, p.re_root = fd, True, 0, False, False
        p.prt = "alternate"

    def _root_port(self, p: RstpPort, fd: int) -> bool:
        rooted = self._re_rooted(p) and p.rb_while == 0 and self.rstp_version
        if p.rr_while != fd:
            p.rr_while = fd
        elif p.re_root and p.forward:
            p.re_root = False
        elif (p.fd_while == 0 or rooted) and not p.learn:
            p.fd_while, p.learn = fd, True
        elif (p.fd_while == 0 or rooted) and p.learn and not p.forward:
            p.fd_while, p.forward = 0, True
        elif p.proposed and not p.agree:
            self._set_sync_tree()
            p.proposed = False
        elif (self._all_synced(p) and not p.agree) or (p.proposed and p.agree):
            p.proposed = p.sync = False
            p.agree = p.new_info = True
        elif not p.forward and not p.re_root:
            for q in self.ports.values():
                q.re_root = True
        else:
            return False
        return True

    def _designated_port(self, p: RstpPort, fd: int) -> bool:
        ready = (p.fd_while == 0 or p.agreed or p.oper_edge) and (p.rr_while == 0 or not p.re_root) and not p.sync
        if ((p.sync and not p.synced) or (p.re_root and p.rr_while != 0)) and not p.oper_edge and (
                p.learn or p.forward):
            p.learn = p.forward = False
            p.fd_while = fd
        elif ready and not p.learn:
            p.learn, p.fd_while = True, fd
        elif ready and p.learn and not p.forward:
            p.forward, p.fd_while, p.agreed = True, 0, p.send_rstp
        elif not p.forward and not p.agreed and not p.proposing and not p.oper_edge:
            p.proposing, p.new_info = True, True
            p.edge_delay_while = MIGRATE_TIME          # edgeDelay(): a point-to-point link's
        elif ((not p.learning and not p.forwarding and not p.synced) or (p.agreed and not p.synced)
              or (p.oper_edge and not p.synced) or (p.sync and p.synced)):
            p.rr_while, p.synced, p.sync = 0, True, False
        elif p.rr_while == 0 and p.re_root:
            p.re_root = False
        else:
            return False
        return True

    def _set_sync_tree(self) -> None:
        for q in self.ports.values():
            q.sync = True

    # 17.30 port state transitions
    def _pst(self, p: RstpPort) -> bool:
        old = p.pst
        if self.begin or p.pst == "init":
            self._discarding(p)
        elif p.pst == "discarding" and p.learn:
            p.learning = True
            self._set_state(p, LEARNING)
            p.pst = "learning"
        elif p.pst == "learning" and not p.learn:
            self._discarding(p)
        elif p.pst == "learning" and p.forward:
            p.forwarding = True
            self._set_state(p, FORWARDING)
            p.pst = "forwarding"
        elif p.pst == "forwarding" and not p.forward:
            self._discarding(p)
        if p.pst == "discarding" and not p.port_enabled and p.role == DISABLED:
            self._set_state(p, DISABLED)
        elif p.pst == "discarding" and p.state == DISABLED and p.port_enabled:
            self._set_state(p, DISCARDING)
        return old != p.pst

    def _discarding(self, p: RstpPort) -> None:
        p.learning = p.forwarding = False
        p.pst = "discarding"
        self._set_state(p, DISCARDING if p.port_enabled else DISABLED)

    def _set_state(self, p: RstpPort, state: str) -> None:
        old, p.state = p.state, state
        if old != state:
            LOG.info("%s: port %s: RSTP state changed from %s to %s", self.bridge, p.name, old.capitalize(),
                     state.capitalize())
            self.on_state(p.ofport, old, state)

    # 17.31 topology change
    def _new_tc_while(self, p: RstpPort) -> None:
        if p.tc_while == 0:
            if p.send_rstp:
                p.tc_while = self.times.hello_time + 1
                p.new_info = True
            else:
                p.tc_while = self.times.max_age + self.times.forward_delay

    def _tcm(self, p: RstpPort) -> bool:
        old = p.tcm
        rcvd = p.rcvd_tc or p.rcvd_tcn or p.rcvd_tc_ack or p.tc_prop
        active_role = p.role in (ROOT, DESIGNATED)
        if self.begin or p.tcm == "init":
            p.fdb_flush, p.tc_while, p.tc_ack = True, 0, False
            p.tcm = "inactive"
        elif p.tcm == "inactive":
            if p.learn and not p.fdb_flush:
                self._tc_learning(p)
        elif p.tcm == "learning":
            if not active_role and not (p.learn or p.learning) and not rcvd:
                p.fdb_flush, p.tc_while, p.tc_ack = True, 0, False
                p.tcm = "inactive"
            elif rcvd:
                self._tc_learning(p)
            elif active_role and p.forward and not p.oper_edge:
                self._new_tc_while(p)
                for q in self.ports.values():
                    if q is not p:
                        q.tc_prop = True
                p.new_info = True
                p.tcm = "active"
        elif p.tcm == "active":
            if not active_role or p.oper_edge:
                self._tc_learning(p)
            elif p.rcvd_tcn:
                self._new_tc_while(p)
                p.rcvd_tcn = False
                p.tcm = "notified_tcn"
            elif p.rcvd_tc:
                p.rcvd_tcn = p.rcvd_tc = False
                if p.role == DESIGNATED:
                    p.tc_ack = True
                for q in self.ports.values():
                    if q is not p:
                        q.tc_prop = True
                p.tcm = "notified_tc"
            elif p.tc_prop and not p.oper_edge:
                self._new_tc_while(p)
                p.fdb_flush, p.tc_prop = True, False
                p.tcm = "propagating"
            elif p.rcvd_tc_ack:
                p.tc_while, p.rcvd_tc_ack = 0, False
                p.tcm = "acknowledged"
        else:                                       # notified_*, propagating, acknowledged: back to ACTIVE
            p.tcm = "active"
        return old != p.tcm

    @staticmethod
    def _tc_learning(p: RstpPort) -> None:
        p.rcvd_tc = p.rcvd_tcn = p.rcvd_tc_ack = p.tc_prop = False
        p.tcm = "learning"

    def tcn(self) -> None:
        """rstp/tcn: a topology change, as if detected on every root or designated port."""
        for p in self.ports.values():
            if p.role in (ROOT, DESIGNATED) and p.forward:
                self._new_tc_while(p)
                p.fdb_flush = p.new_info = True
        self._run()

    # 17.26 port transmit
    def _ptx(self, p: RstpPort) -> bool:
        old = (p.ptx, p.tx_count)
        if self.begin or p.ptx == "init" or not p.port_enabled:
            if p.ptx != "transmit_init" or p.port_enabled:
                p.new_info, p.tx_count = True, 0
                p.ptx = "transmit_init"
            if not p.port_enabled:
                return old != (p.ptx, p.tx_count)
        if p.ptx == "transmit_init":
            p.hello_when, p.ptx = p.designated_times.hello_time, "idle"
        if p.ptx == "idle" and p.selected and not p.updt_info:
            if p.hello_when == 0:
                p.new_info = p.new_info or p.role == DESIGNATED or (p.role == ROOT and p.tc_while != 0)
                p.hello_when = p.designated_times.hello_time
            if p.new_info and p.tx_count < self.transmit_hold_count:
                if p.send_rstp:
                    self._tx(p, self._rst_bpdu(p))
                    p.tc_ack = False
                elif p.role == ROOT:
                    self._tx(p, bytes((0, 0, 0, TYPE_TCN)))
                elif p.role == DESIGNATED:
                    self._tx(p, self._config_bpdu(p))
                    p.tc_ack = False
                else:
                    return old != (p.ptx, p.tx_count)
                p.new_info = False
                p.hello_when = p.designated_times.hello_time        # back to IDLE
        return old != (p.ptx, p.tx_count)

    def _tx(self, p: RstpPort, bpdu: bytes) -> None:
        p.tx_count += 1
        payload = LLC + bpdu
        frame = BPDU_DST + p.mac + len(payload).to_bytes(2, "big") + payload
        frame += bytes(max(0, 60 - len(frame)))
        p.tx_bpdus += 1
        self.send(p.ofport, frame)

    def _fields(self, p: RstpPort, kind: int, flags: int) -> bytes:
        v, t = p.designated_priority, p.designated_times
        return BPDU.pack(0, 2 if kind == TYPE_RST else 0, kind, flags, v.root, v.cost, v.bridge, v.port,
                         t.message_age << 8, t.max_age << 8, t.hello_time << 8, t.forward_delay << 8)

    def _config_bpdu(self, p: RstpPort) -> bytes:
        flags = (F_TC if p.tc_while else 0) | (F_TCA if p.tc_ack else 0)
        return self._fields(p, TYPE_CONFIG, flags)

    def _rst_bpdu(self, p: RstpPort) -> bytes:
        flags = ROLE_CODE.get(p.role, 0) << ROLE_SHIFT
        flags |= (F_TC if p.tc_while else 0) | (F_PROPOSAL if p.proposing else 0)
        flags |= (F_LEARNING if p.learning else 0) | (F_FORWARDING if p.forwarding else 0)
        flags |= F_AGREEMENT if p.agree else 0
        return self._fields(p, TYPE_RST, flags) + b"\x00"        # version 1 length 0

    # -- rstp/show
    def show(self) -> str:
        """Open vSwitch's ``rstp/show`` for this bridge, in its layout (rstp_print_details)."""
        def ident(bid: int, t: Times) -> list[str]:
            mac = ":".join(f"{b:02x}" for b in (bid & ((1 << 48) - 1)).to_bytes(6, "big"))
            return [f"  stp-priority    {bid >> 48}", f"  stp-system-id   {mac}",
                    f"  stp-hello-time  {t.hello_time}s", f"  stp-max-age     {t.max_age}s",
                    f"  stp-fwd-delay   {t.forward_delay}s"]

        out = [f"---- {self.bridge} ----", "Root ID:"]
        if self.is_root():
            out += ident(self.bridge_id, self.times) + ["  This bridge is the root"]
        else:
            rp = self.root_port()
            if rp is None:
                return "\n".join(out + ["unknown root port"])
            out += ident(self.root_priority.root, rp.designated_times)
            out += [f"  root-port       {rp.name}", f"  root-path-cost  {self.root_priority.cost}"]
        out += ["", "Bridge ID:"] + ident(self.bridge_id, self.times) + [""]
        out += [f"  {'Interface':<11}{'Role':<11}{'State':<11}{'Cost':<9}{'Pri.Nbr':<8}",
                "  ---------- ---------- ---------- -------- -------"]
        for p in sorted(self.ports.values(), key=lambda q: q.ofport):
            if p.state != DISABLED:
                out.append(f"  {p.name[:10]:<11}{p.role.capitalize():<11}{p.state.capitalize():<11}{p.path_cost:<9}"
                           f"{p.priority}.{p.port_id & 0xFFF}")
        return "\n".join(out) + "\n"
