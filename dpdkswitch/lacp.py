"""LACP (802.1AX link aggregation control), as Open vSwitch's lib/lacp.c: a simplified 802.3ad.

One ``LacpBond`` per bond with ``lacp: active|passive``; one ``LacpMember`` per interface of it.
There are no separate selection, mux and churn machines (as there): a member is

* ``current`` while LACPDUs arrive (its rx timer: 3 x our transmit period, 3 s fast, 90 s slow);
* ``expired`` when they stop (the partner is taken as short-timeout and out of sync, 3 s more);
* ``defaulted`` after that (the partner forgotten).

Aggregation (``update_attached``): the lead is the best-priority member, preferring one already
current and attached; members attach when their partner's system id and key equal the lead's;
a partner with our own system id is a loopback and never attaches.  An attached member says
synchronized, collecting and distributing.  A member may be enabled when it is attached and its
partner says synchronized, or (``lacp_fallback_ab``) when it is defaulted.  PDUs go out every
second or 30 s, as the partner's timeout bit asks, and at once when what we say changes (NTT).
Marker PDUs are counted, not answered; PDUs arriving while the carrier is down are dropped.

One ``Lacp`` per bridge is its SlowProtocol (ofproto/special.py: it claims ethertype 0x8809 on
its bonds' members) and a liveness input (a member's ``may_enable``).  Its PDUs leave as
packet-outs with no input port, through the SEND callback the bridge gives.  Times are seconds
on the bridge's clock (``run(now)``).

Contract: the control thread only.  Cost: ``run`` is O(members) per bond.
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

LACP_DST = bytes.fromhex("0180c2000002")      # the Slow Protocols multicast address
ETH_TYPE_LACP = 0x8809
SUBTYPE_LACP, SUBTYPE_MARKER = 1, 2

ACT, TIME, AGG, SYNC, COL, DIST, DEF, EXP = (1 << i for i in range(8))
STATE_NAMES = ((ACT, "activity"), (TIME, "timeout"), (AGG, "aggregation"), (SYNC, "synchronized"),
               (COL, "collecting"), (DIST, "distributing"), (DEF, "defaulted"), (EXP, "expired"))

FAST_TX, SLOW_TX, RX_MULTIPLIER = 1.0, 30.0, 3

INFO = struct.Struct("!H6sHHHB")              # sys_priority, sys_id, key, port_priority, port_id, state
PDU_LEN = 110                                  # subtype, version, actor TLV, partner TLV, collector TLV


@dataclass(frozen=True)
class Info:
    """An actor's or partner's information, as a LACPDU carries it."""
    sys_priority: int = 0
    sys_id: bytes = bytes(6)
    key: int = 0
    port_priority: int = 0
    port_id: int = 0
    state: int = 0

    def pack(self) -> bytes:
        return INFO.pack(self.sys_priority, self.sys_id, self.key, self.port_priority, self.port_id, self.state)

    @classmethod
    def unpack(cls, b: bytes) -> "Info":
        return cls(*INFO.unpack(b))

    def priority_key(self) -> tuple:
        """What ranks links (lower is better): everything but key and state."""
        return (self.sys_priority, self.sys_id, self.port_priority, self.port_id)

    def tx_equal(self, other: "Info") -> bool:
        """Whether a PDU need not go out for the difference (802.1AX's NTT fields)."""
        return (not (self.state ^ other.state) & (ACT | TIME | SYNC | AGG)
                and (self.port_id, self.port_priority, self.key, self.sys_priority, self.sys_id)
                == (other.port_id, other.port_priority, other.key, other.sys_priority, other.sys_id))


def compose_pdu(actor: Info, partner: Info) -> bytes:
    """The 110-byte LACPDU (collector max delay 0, as Open vSwitch's)."""
    return (bytes([SUBTYPE_LACP, 1, 1, 20]) + actor.pack() + bytes(3) + bytes([2, 20]) + partner.pack()
            + bytes(3) + bytes([3, 16]) + bytes(2) + bytes(64))


def parse_pdu(frame: bytes) -> tuple[int, Info | None, Info | None]:
    """(subtype, actor, partner) of a slow-protocols frame; subtype 0 when it is no PDU we read."""
    off = 14
    while frame[off - 2:off] in (b"\x81\x00", b"\x88\xa8") and len(frame) >= off + 4:
        off += 4
    body = frame[off:]
    if len(body) >= 1 and body[0] == SUBTYPE_MARKER:
        return SUBTYPE_MARKER, None, None
    if (len(body) < PDU_LEN or body[0] != SUBTYPE_LACP or body[2] != 1 or body[3] != 20
            or body[22] != 2 or body[23] != 20):
        return 0, None, None
    return SUBTYPE_LACP, Info.unpack(body[4:19]), Info.unpack(body[24:39])


def state_text(state: int) -> str:
    return "".join(" " + name for bit, name in STATE_NAMES if state & bit)


def mac_text(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


@dataclass
class LacpMember:
    """One interface of a LACP bond."""
    name: str
    ofport: int
    port_id: int
    port_priority: int = 65535
    key: int = 0                              # 0: the key member's port id
    status: str = "defaulted"                 # current | expired | defaulted
    attached: bool = False
    carrier_up: bool = True
    partner: Info = field(default_factory=Info)
    ntt_actor: Info = field(default_factory=Info)
    tx_at: float = 0.0                        # next periodic PDU (0: at once)
    rx_at: float = 0.0                        # when the partner's information runs out
    why: str = ""                             # why it is not attached (lacp/show)
    count_tx_pdus: int = 0
    count_rx_pdus: int = 0
    count_rx_pdus_bad: int = 0
    count_rx_pdus_marker: int = 0
    count_link_expired: int = 0
    count_link_defaulted: int = 0
    count_carrier_changed: int = 0


class LacpBond:
    """The LACP of one bond (Open vSwitch's struct lacp).  SEND(ofport, frame) transmits a PDU by a
    member; SRC_MAC(ofport) is that member's MAC; ON_CHANGE() is called after a run or a PDU that
    may have changed some member's may_enable."""

    def __init__(self, name: str, sys_id: bytes, sys_priority: int = 65534, active: bool = True,
                 fast: bool = False, fallback_ab: bool = False,
                 send: Callable[[int, bytes], None] = lambda ofport, frame: None,
                 src_mac: Callable[[int], bytes] = lambda ofport: bytes(6),
                 on_change: Callable[[], None] = lambda: None, now: float = 0.0) -> None:
        self.name, self.sys_id, self.sys_priority = name, sys_id, sys_priority
        self.active, self.fast, self.fallback_ab = active, fast, fallback_ab
        self.send, self.src_mac, self.on_change = send, src_mac, on_change
        self.members: dict[int, LacpMember] = {}
        self.key_member: LacpMember | None = None
        self.negotiated = False
        self.update = True
        self.now = now
        self.reported: dict[int, bool] = {}     # each member's may_enable, as ON_CHANGE last told it

    # -- members
    def add_member(self, m: LacpMember) -> None:
        """As lacp_member_register: a new member starts defaulted (and expired when we are
        active, so it speaks at once)."""
        self.members[m.ofport] = m
        self.set_defaulted(m)
        if self.key_member is None:
            self.key_member = m
        if self.active or self.negotiated:
            self.set_expired(m)
        self.update = True

    def remove_member(self, ofport: int) -> None:
        m = self.members.pop(ofport, None)
        if m is None:
            return
        if self.key_member is m:
            self.key_member = next(iter(self.members.values()), None)
        self.update = True

    def set_defaulted(self, m: LacpMember) -> None:
        m.partner = Info()
        m.status = "defaulted"
        self.update = True

    def set_expired(self, m: LacpMember) -> None:
        m.status = "expired"
        m.partner = Info(m.partner.sys_priority, m.partner.sys_id, m.partner.key, m.partner.port_priority,
                         m.partner.port_id, (m.partner.state | TIME) & ~SYNC)
        m.rx_at = self.now + RX_MULTIPLIER * FAST_TX

    def carrier_changed(self, ofport: int, up: bool) -> None:
        """The member's link went UP or down (lacp_member_carrier_changed)."""
        m = self.members.get(ofport)
        if m is None:
            return
        if m.status == "current" or self.active:
            self.set_expired(m)
        if m.carrier_up != up:
            m.carrier_up = up
            m.count_carrier_changed += 1

    # -- what a member says and may do
    @property
    def aggregation_key(self) -> int:
        k = self.key_member
        return 0 if k is None else (k.key or k.port_id)

    def actor(self, m: LacpMember) -> Info:
        state = ACT if self.active else 0
        if self.fast:
            state |= TIME
        if m.attached:
            state |= SYNC
        if m.status == "defaulted":
            state |= DEF
        if m.status == "expired":
            state |= EXP
        if len(self.members) > 1:
            state |= AGG
        if m.attached or not self.negotiated:
            state |= COL | DIST
        return Info(self.sys_priority, self.sys_id, self.aggregation_key, m.port_priority, m.port_id, state)

    def priority(self, m: LacpMember) -> tuple:
        """The link's rank: the higher-priority system's side of it (member_get_priority)."""
        p = m.partner
        ours = (self.sys_priority, self.sys_id) < (p.sys_priority, p.sys_id)
        return self.actor(m).priority_key() if ours else p.priority_key()

    def member_may_enable(self, m: LacpMember) -> bool:
        return m.attached and (bool(m.partner.state & SYNC) or (self.fallback_ab and m.status == "defaulted"))

    def may_enable(self, ofport: int) -> bool | None:
        m = self.members.get(ofport)
        return None if m is None else self.member_may_enable(m)

    def may_tx(self, m: LacpMember) -> bool:
        return self.active or m.status != "defaulted"

    @property
    def status(self) -> str:
        """Open vSwitch's bond lacp_status: negotiated or configured."""
        return "negotiated" if self.negotiated else "configured"

    # -- the protocol
    def receive(self, ofport: int, frame: bytes, now: float) -> bool:
        """A slow-protocols frame on a member (lacp_process_packet); whether the member may be
        enabled now."""
        self.now = now
        m = self.members.get(ofport)
        if m is None:
            return False
        m.count_rx_pdus += 1
        subtype, actor, partner = parse_pdu(frame)
        if subtype == SUBTYPE_MARKER:
            m.count_rx_pdus_marker += 1
            return False
        if subtype != SUBTYPE_LACP:
            m.count_rx_pdus_bad += 1
            return False
        if not m.carrier_up:
            return False
        m.status = "current"
        m.rx_at = now + RX_MULTIPLIER * (FAST_TX if self.fast else SLOW_TX)
        m.ntt_actor = partner
        if m.partner != actor:
            self.update = True
            m.partner = actor
        self.run(now)                          # answer at once, as the next lacp_run would
        return self.member_may_enable(m)

    def run(self, now: float) -> None:
        """Timers: expire or default silent members, re-aggregate, transmit (lacp_run)."""
        self.now = now
        for m in self.members.values():
            if now >= m.rx_at:
                if m.status == "current":
                    self.set_expired(m)
                    m.count_link_expired += 1
                elif m.status == "expired":
                    self.set_defaulted(m)
                    m.count_link_defaulted += 1
        if self.update:
            self.update_attached()
        for m in self.members.values():
            if not self.may_tx(m):
                continue
            actor = self.actor(m)
            if now >= m.tx_at or not actor.tx_equal(m.ntt_actor):
                m.ntt_actor = actor
                frame = (LACP_DST + self.src_mac(m.ofport) + ETH_TYPE_LACP.to_bytes(2, "big")
                         + compose_pdu(actor, m.partner))
                m.count_tx_pdus += 1
                m.tx_at = now + (FAST_TX if m.partner.state & TIME else SLOW_TX)
                self.send(m.ofport, frame)
        may = {o: self.member_may_enable(m) for o, m in self.members.items()}
        if may != self.reported:
            self.reported = may
            self.on_change()

    def update_attached(self) -> None:
        """Which members aggregate (lacp_update_attached), and why the others do not."""
        self.update = False
        lead = lead_current = None
        lead_pri: tuple = ()
        lead_enable = False
        for m in self.members.values():
            if m.status == "current" and m.attached:
                pri = self.priority(m)
                if lead_current is None or pri < lead_pri:
                    lead = lead_current = m
                    lead_pri, lead_enable = pri, True
        for m in self.members.values():
            m.attached, m.why = False, ""
            if m.partner.sys_id == self.sys_id:
                m.why = "loopback: the partner is this bond's own system"
                continue
            if m.status == "defaulted":
                if self.fallback_ab:
                    m.attached = True
                else:
                    m.why = "no partner: no LACPDU received (defaulted)"
                continue
            pri = self.priority(m)
            enable = self.member_may_enable(m)
            if lead_current is None or m.partner.sys_id == lead_current.partner.sys_id:
                m.attached = True
            else:
                m.why = (f"partner system {mac_text(m.partner.sys_id)} is not the working link's "
                         f"{mac_text(lead_current.partner.sys_id)}")
            if m.attached and (lead is None or enable > lead_enable or (enable == lead_enable and pri < lead_pri)):
                lead, lead_enable, lead_pri = m, enable, pri
        self.negotiated = lead is not None
        if lead is not None:
            for m in self.members.values():
                if self.fallback_ab and m.status == "defaulted":
                    m.attached = False
                    m.why = "no partner: no LACPDU received (defaulted); fallback to active-backup"
                elif lead.partner.key != m.partner.key or lead.partner.sys_id != m.partner.sys_id:
                    if m.attached:
                        m.why = (f"partner system {mac_text(m.partner.sys_id)} key {m.partner.key} differs from "
                                 f"the lead {lead.name}'s: {mac_text(lead.partner.sys_id)} key {lead.partner.key}")
                    m.attached = False

    # -- lacp/show, lacp/show-stats (Open vSwitch 3.1's layout)
    def show(self) -> str:
        out = [f"---- {self.name} ----",
               f"  status: {'active' if self.active else 'passive'}{' negotiated' if self.negotiated else ''}",
               f"  sys_id: {mac_text(self.sys_id)}", f"  sys_priority: {self.sys_priority}",
               f"  aggregation key: {self.aggregation_key if self.key_member else 'none'}",
               f"  lacp_time: {'fast' if self.fast else 'slow'}"]
        for m in sorted(self.members.values(), key=lambda m: m.name):
            a, p = self.actor(m), m.partner
            out += ["", f"member: {m.name}: {m.status} {'attached' if m.attached else 'detached'}",
                    f"  port_id: {m.port_id}", f"  port_priority: {m.port_priority}",
                    f"  may_enable: {'true' if self.member_may_enable(m) else 'false'}"]
            if m.why and not m.attached:
                out.append(f"  detached: {m.why}")
            out += ["", f"  actor sys_id: {mac_text(a.sys_id)}", f"  actor sys_priority: {a.sys_priority}",
                    f"  actor port_id: {a.port_id}", f"  actor port_priority: {a.port_priority}",
                    f"  actor key: {a.key}", f"  actor state:{state_text(a.state)}", "",
                    f"  partner sys_id: {mac_text(p.sys_id)}", f"  partner sys_priority: {p.sys_priority}",
                    f"  partner port_id: {p.port_id}", f"  partner port_priority: {p.port_priority}",
                    f"  partner key: {p.key}", f"  partner state:{state_text(p.state)}"]
        return "\n".join(out)

    def show_stats(self) -> str:
        out = [f"---- {self.name} statistics ----"]
        for m in sorted(self.members.values(), key=lambda m: m.name):
            out += ["", f"member: {m.name}:", f"  TX PDUs: {m.count_tx_pdus}", f"  RX PDUs: {m.count_rx_pdus}",
                    f"  RX Bad PDUs: {m.count_rx_pdus_bad}",
                    f"  RX Marker Request PDUs: {m.count_rx_pdus_marker}",
                    f"  Link Expired: {m.count_link_expired}", f"  Link Defaulted: {m.count_link_defaulted}",
                    f"  Carrier Status Changed: {m.count_carrier_changed}"]
        return "\n".join(out)


class Lacp:
    """A bridge's LACP bonds: its SlowProtocol (ethertype 0x8809 on their members) and a
    liveness input (a member's may_enable)."""

    name = "lacp"

    def __init__(self, bridge: str) -> None:
        self.bridge = bridge
        self.bonds: dict[str, LacpBond] = {}
        self.by_port: dict[int, LacpBond] = {}

    def add(self, bond: LacpBond) -> None:
        self.bonds[bond.name] = bond
        for ofport in bond.members:
            self.by_port[ofport] = bond

    def remove_port(self, ofport: int) -> None:
        bond = self.by_port.pop(ofport, None)
        if bond is not None:
            bond.remove_member(ofport)
            if not bond.members:
                self.bonds.pop(bond.name, None)

    def run(self, now: float) -> None:
        for b in list(self.bonds.values()):
            b.run(now)

    def carrier_changed(self, ofport: int, up: bool) -> None:
        bond = self.by_port.get(ofport)
        if bond is not None:
            bond.carrier_changed(ofport, up)

    # -- SlowProtocol
    def claims(self, ofport: int, flow) -> bool:
        return ofport in self.by_port and flow.get("eth_type") == ETH_TYPE_LACP

    def receive(self, ofport: int, frame: bytes, now: float) -> None:
        bond = self.by_port.get(ofport)
        if bond is not None:
            bond.receive(ofport, frame, now)

    def forwarding(self, ofport: int) -> bool:
        return True

    def learning(self, ofport: int) -> bool:
        return True

    def sends_bpdu(self, ofport: int) -> bool:
        return True

    def exempt(self, ofport: int, flow) -> bool:
        return self.claims(ofport, flow)

    # -- liveness
    def may_enable(self, ofport: int) -> bool | None:
        bond = self.by_port.get(ofport)
        return None if bond is None else bond.may_enable(ofport)
