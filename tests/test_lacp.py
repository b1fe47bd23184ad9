"""LACP (lacp.py) on the manual clock: two bonds of two members each, back to back, as Open
vSwitch's lib/lacp.c behaves: negotiation, fast and slow timeouts (3 x 1 s, 3 x 30 s), expired
then defaulted, aggregation by partner system id and key, loopback, fallback to active-backup,
passive with passive, markers and bad PDUs; PDUs built and read by scapy's contrib LACP layer,
independently of our codec.
"""
from scapy.contrib.lacp import LACP, SlowProtocol
from scapy.layers.l2 import Ether

from dpdkswitch import lacp as L

SYS_A, SYS_B = bytes.fromhex("aa55aa55000a"), bytes.fromhex("aa55aa55000b")


class Wire:
    """Bond A's member N linked to bond B's member N (ofports 1 and 2 on each side)."""

    def __init__(self, fast=True, fast_b=None, active_b=True, key_b=(0, 0), sys_b2=None, fallback=False,
                 passive_a=False):
        self.now = 0.0
        self.cut: set[int] = set()
        self.sent = []
        self.changes = 0
        self.a = L.LacpBond("bondA", SYS_A, 65534, not passive_a, fast, fallback,
                            send=lambda o, f: self.deliver("a", o, f), src_mac=lambda o: bytes([2, 0, 0, 0, 0xa, o]),
                            on_change=self.changed)
        self.b = L.LacpBond("bondB", SYS_B, 65534, active_b, fast if fast_b is None else fast_b, False,
                            send=lambda o, f: self.deliver("b", o, f), src_mac=lambda o: bytes([2, 0, 0, 0, 0xb, o]))
        self.b2 = None
        for o in (1, 2):
            self.a.add_member(L.LacpMember(f"m{o}", o, o))
        if sys_b2 is not None:                      # member 2 goes to another system
            self.b2 = L.LacpBond("bondC", sys_b2, 65534, True, fast, False,
                                 send=lambda o, f: self.deliver("b", o, f))
            self.b.add_member(L.LacpMember("m1", 1, 1, key=key_b[0]))
            self.b2.add_member(L.LacpMember("m2", 2, 2, key=key_b[1]))
        else:
            for o in (1, 2):
                self.b.add_member(L.LacpMember(f"m{o}", o, o, key=key_b[o - 1]))

    def changed(self):
        self.changes += 1

    def deliver(self, side, ofport, frame):
        self.sent.append((side, ofport, frame))
        if ofport in self.cut:
            return
        if side == "a":
            far = self.b2 if (self.b2 is not None and ofport == 2) else self.b
        else:
            far = self.a
        far.receive(ofport, frame, self.now)

    def run(self, seconds, step=0.1):
        for _ in range(round(seconds / step)):
            self.now = round(self.now + step, 6)
            for bond in (self.a, self.b, self.b2):
                if bond is not None:
                    bond.run(self.now)


def members(bond):
    return {m.name: (m.status, m.attached, bond.member_may_enable(m)) for m in bond.members.values()}


def test_two_active_fast_bonds_negotiate_and_show_each_other_as_open_vswitch_does():
    w = Wire()
    w.run(0.5)
    assert w.a.negotiated and w.b.negotiated
    assert members(w.a) == members(w.b) == {"m1": ("current", True, True), "m2": ("current", True, True)}
    show = w.a.show()
    assert "  status: active negotiated" in show and "member: m1: current attached" in show
    assert "  partner sys_id: aa:55:aa:55:00:0b" in show and "  may_enable: true" in show
    assert show.count("state: activity timeout aggregation synchronized collecting distributing") == 4
    assert "  aggregation key: 1" in show and "  lacp_time: fast" in show
    assert w.a.status == "negotiated" and w.changes >= 1


def test_pdus_read_by_scapys_lacp_layer_and_scapys_pdus_read_by_ours():
    w = Wire()
    w.run(0.5)
    side, ofport, frame = [s for s in w.sent if s[0] == "a" and s[1] == 2][-1]
    pkt = Ether(frame)
    assert pkt.dst == "01:80:c2:00:00:02" and pkt.type == 0x8809 and len(frame) == 14 + 110
    lacp = pkt[LACP]
    assert (lacp.actor_system, lacp.actor_system_priority, lacp.actor_port_number, lacp.actor_key) == (
        "aa:55:aa:55:00:0a", 65534, 2, 1)
    assert lacp.actor_state == L.ACT | L.TIME | L.AGG | L.SYNC | L.COL | L.DIST
    assert lacp.partner_system == "aa:55:aa:55:00:0b" and lacp.partner_port_number == 2
    # a PDU scapy builds: a partner that is slow, passive, key 77, not yet in sync
    theirs = bytes(Ether(dst="01:80:c2:00:00:02", src="02:00:00:00:00:99", type=0x8809) / SlowProtocol() / LACP(
        actor_system_priority=100, actor_system="02:00:00:00:00:99", actor_key=77, actor_port_priority=5,
        actor_port_number=9, actor_state=L.AGG | L.COL, partner_system="aa:55:aa:55:00:0a",
        partner_port_number=1, partner_state=0))
    solo = L.LacpBond("solo", SYS_A, active=True, fast=False)
    solo.add_member(L.LacpMember("m1", 1, 1))
    solo.receive(1, theirs, 0.0)
    m = solo.members[1]
    assert m.status == "current" and m.partner == L.Info(100, bytes.fromhex("020000000099"), 77, 5, 9, L.AGG | L.COL)
    assert m.attached and not solo.member_may_enable(m)          # the partner is not synchronized
    assert "partner key: 77" in solo.show() and "partner state: aggregation collecting" in solo.show()


def test_fast_a_silent_member_expires_after_3s_then_defaults_after_3s_more():
    w = Wire()
    w.run(1)
    w.cut = {2}                                  # both directions of link 2 go silent
    t0 = w.now
    while w.a.members[2].status == "current":
        w.run(0.1)
    t_expired = w.now
    assert 2.0 < w.now - t0 <= 3.1 and w.a.members[2].status == "expired"  # 3 s after the last PDU
    assert not w.a.member_may_enable(w.a.members[2]) and w.a.members[1].status == "current"
    assert " timeout" in L.state_text(w.a.members[2].partner.state)      # taken as short timeout
    while w.a.members[2].status == "expired":
        w.run(0.1)
    assert 2.9 <= w.now - t_expired <= 3.1 and w.a.members[2].status == "defaulted"
    assert w.a.members[2].partner == L.Info() and not w.a.members[2].attached
    assert "no partner" in w.a.show() and w.a.members[2].count_link_expired == 1
    assert w.a.members[2].count_link_defaulted == 1 and w.a.negotiated       # member 1 still is
    w.cut = set()                                # the link returns, silently (no carrier change):
    w.run(29)                                    # a defaulted partner is slow: its next PDU is due
    assert members(w.a)["m2"][0] == "defaulted"  # 30 s after the last, as Open vSwitch's
    w.run(2)
    assert members(w.a)["m2"] == ("current", True, True)


def test_slow_the_partner_is_current_for_90s_and_pdus_go_every_30s():
    w = Wire(fast=False)
    w.run(1)
    assert w.a.negotiated and members(w.a)["m1"] == ("current", True, True)
    n = len([s for s in w.sent if s[:2] == ("a", 1)])
    w.run(60)
    assert len([s for s in w.sent if s[:2] == ("a", 1)]) - n == 2            # every 30 s
    w.cut = {1}
    t0 = w.now
    while w.a.members[1].status == "current":
        w.run(1, step=0.5)
    assert 60 < w.now - t0 <= 91                                             # 3 x 30 s after the last PDU
    t_expired = w.now
    while w.a.members[1].status == "expired":
        w.run(0.5)
    assert 2.5 <= w.now - t_expired <= 3.5                                   # then 3 x 1 s


def test_we_send_fast_when_the_partner_asks_for_it_even_when_we_are_slow():
    w = Wire(fast=False, fast_b=True)
    w.run(1)
    n = len([s for s in w.sent if s[:2] == ("a", 1)])
    w.run(5)
    assert len([s for s in w.sent if s[:2] == ("a", 1)]) - n == 5            # B's timeout bit: 1 s


def test_a_partner_with_another_key_leaves_that_member_detached_and_show_says_why():
    w = Wire(key_b=(5, 6), sys_b2=SYS_B)             # the far system's member 2 is in another bond
    w.run(1)
    att = {m.name: m.attached for m in w.a.members.values()}
    assert sorted(att.values()) == [False, True]
    loser = next(m for m in w.a.members.values() if not m.attached)
    assert "key" in loser.why and "differs from the lead" in w.a.show()
    assert not w.a.member_may_enable(loser)


def test_a_member_on_another_partner_system_does_not_aggregate():
    w = Wire(sys_b2=bytes.fromhex("aa55aa55000c"))
    w.run(1)
    assert sum(m.attached for m in w.a.members.values()) == 1


def test_loopback_a_bond_cabled_to_itself_never_attaches():
    b = L.LacpBond("loop", SYS_A, active=True, fast=True, send=lambda o, f: b.receive(3 - o, f, b.now))
    b.add_member(L.LacpMember("m1", 1, 1))
    b.add_member(L.LacpMember("m2", 2, 2))
    for i in range(10):
        b.run(i * 0.5)
    assert not any(m.attached for m in b.members.values()) and not b.negotiated
    assert "loopback" in b.show()


def test_without_a_partner_the_bond_is_down_unless_it_falls_back_to_active_backup():
    for fallback in (False, True):
        b = L.LacpBond("alone", SYS_A, active=True, fast=True, fallback_ab=fallback)
        for o in (1, 2):
            b.add_member(L.LacpMember(f"m{o}", o, o))
        for i in range(80):
            b.run(i * 0.1)
        assert all(m.status == "defaulted" for m in b.members.values())
        assert [b.may_enable(o) for o in (1, 2)] == [fallback, fallback]
        assert not b.negotiated


def test_passive_with_passive_says_nothing_and_passive_with_active_negotiates():
    quiet = Wire(passive_a=True, active_b=False)
    quiet.run(5)
    assert quiet.sent == []                      # neither is active: neither transmits
    assert not quiet.a.negotiated and not quiet.b.negotiated
    w = Wire(passive_a=True)
    w.run(2)
    assert w.a.negotiated and w.b.negotiated and "status: passive negotiated" in w.a.show()


def test_markers_are_counted_bad_pdus_counted_and_neither_changes_state():
    b = L.LacpBond("s", SYS_A, active=True, fast=True)
    b.add_member(L.LacpMember("m1", 1, 1))
    marker = bytes(Ether(dst="01:80:c2:00:00:02", type=0x8809)) + bytes([2, 1]) + bytes(40)
    bad = bytes(Ether(dst="01:80:c2:00:00:02", type=0x8809)) + bytes([1, 1, 9, 20]) + bytes(106)
    b.receive(1, marker, 0.1)
    b.receive(1, bad, 0.2)
    b.receive(1, bytes(Ether(dst="01:80:c2:00:00:02", type=0x8809)) + b"\x01", 0.3)     # short
    m = b.members[1]
    assert (m.count_rx_pdus, m.count_rx_pdus_marker, m.count_rx_pdus_bad) == (3, 1, 2)
    assert m.status == "expired"
    stats = b.show_stats()
    assert "---- s statistics ----" in stats and "  RX Marker Request PDUs: 1" in stats
    assert "  RX Bad PDUs: 2" in stats and "member: m1:" in stats


def test_a_pdu_while_the_carrier_is_down_is_dropped_and_carrier_changes_expire_the_member():
    w = Wire()
    w.run(1)
    w.a.carrier_changed(1, False)
    assert w.a.members[1].status == "expired" and w.a.members[1].count_carrier_changed == 1
    w.run(4)
    assert w.a.members[1].status == "defaulted"       # B's PDUs dropped while down
    w.a.carrier_changed(1, True)
    w.run(1)
    assert members(w.a)["m1"] == ("current", True, True)


def test_churn_a_partner_that_changes_system_id_is_followed():
    w = Wire()
    w.run(1)
    w.b.sys_id = bytes.fromhex("aa55aa5500ff")        # the far switch is replaced
    w.b.update = True
    w.run(1)
    assert all(m.partner.sys_id == w.b.sys_id for m in w.a.members.values())
    assert members(w.a) == {"m1": ("current", True, True), "m2": ("current", True, True)}
