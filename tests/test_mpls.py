"""MPLS as Open vSwitch does it: the outer label stack entry in the flow key (mpls_label, mpls_tc,
mpls_bos, mpls_ttl), matched and written; push_mpls, pop_mpls, set_mpls_*, dec_mpls_ttl run in
the C datapath; after pop_mpls to a non-MPLS ethertype, an action that needs the headers under
the label recirculates the frame (Open vSwitch's freezing).  Frames through the manual datapath
(test_slowpath's Rig); the wire as ovs-ofctl 3.1 encodes it."""
from __future__ import annotations

import struct

import pytest

from dpdkswitch.datapath import odp, parse
from dpdkswitch.ofproto.fields import BY_NAME
from dpdkswitch.ofproto.flowstr import format_flow, parse_flow
from dpdkswitch.openflow import acts
from dpdkswitch.openflow import consts as C
from frames import checksum
from test_slowpath import Rig

MACS = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01"


def ip4(ttl: int = 64, tos: int = 0, payload: bytes = bytes(range(20))) -> bytes:
    udp = struct.pack("!HHHH", 1000, 53, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBHII", 0x45, tos, 20 + len(udp), 1, 0, ttl, 17, 0, 0x0A000001, 0x0A000002)
    return ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:] + udp


def lse(label: int, tc: int = 0, bos: int = 1, ttl: int = 64) -> bytes:
    return struct.pack("!I", label << 12 | tc << 9 | bos << 8 | ttl)


def mpls(*lses: bytes, inner: bytes | None = None, vlan: int | None = None) -> bytes:
    tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    return MACS + tag + b"\x88\x47" + b"".join(lses) + (ip4() if inner is None else inner)


def test_the_key_holds_the_outer_entry_and_no_l3():
    k = parse(mpls(lse(100, 5, 0, 9), lse(7)), 1)
    get = lambda n: BY_NAME[n].from_key(k)     # noqa: E731
    assert (get("eth_type"), get("mpls_label"), get("mpls_tc"), get("mpls_bos"), get("mpls_ttl")) == (0x8847, 100, 5, 0, 9)
    assert get("ipv4_src") == 0 and get("ip_proto") == 0
    assert BY_NAME["mpls_label"].from_key(parse(MACS + b"\x88\x47\x00", 1)) == 0      # truncated: nothing


def test_text_and_wire_as_ovs_ofctl():
    text = ("mpls,mpls_label=5,mpls_ttl=3 actions=set_field:7->mpls_label,set_field:2->mpls_tc,set_mpls_ttl(9),"
            "dec_mpls_ttl,pop_mpls:0x0800,push_mpls:0x8847,output:1")
    spec = parse_flow(text)
    assert format_flow(spec) == text
    a = spec.instructions[0].actions
    w10 = acts.encode_actions(a, C.OFP10_VERSION)
    # NXAST_SET_MPLS_LABEL (30), _TC (31), _TTL (25), DEC_MPLS_TTL (26), POP (24), PUSH (23), each 16 bytes
    assert [struct.unpack_from("!H", w10, o + 8)[0] for o in range(0, 96, 16)] == [30, 31, 25, 26, 24, 23]
    w13 = acts.encode_actions(a, C.OFP13_VERSION)
    # set_field (25) x2, OFPAT_SET_MPLS_TTL (15), DEC_MPLS_TTL (16), POP_MPLS (20), PUSH_MPLS (19)
    assert w13[:2] == b"\x00\x19" and w13[32:34] == b"\x00\x0f" and w13[40:42] == b"\x00\x10"
    for v, w in ((C.OFP10_VERSION, w10), (C.OFP13_VERSION, w13)):
        assert acts.decode_actions(w, v) == a
    with pytest.raises(Exception):
        parse_flow("ip,actions=push_mpls:0x0800")


@pytest.fixture
def rig(dp):
    return Rig(dp)


def test_push_set_and_pop_in_the_datapath(rig):
    rig.add("in_port=1,ip,actions=push_mpls:0x8847,set_field:100->mpls_label,set_mpls_tc(3),output:2",
            "in_port=2,mpls,mpls_label=100,actions=set_mpls_ttl(7),push_mpls:0x8848,set_field:200->mpls_label,"
            "output:3",
            "in_port=3,mpls,actions=pop_mpls:0x0800,output:1")
    frame = MACS + b"\x08\x00" + ip4(ttl=33, tos=0x28)        # DSCP 10: TC 2 from its low bits
    out = rig.send(1, [frame])
    assert out[2] == [MACS + b"\x88\x47" + lse(100, 3, 1, 33) + ip4(ttl=33, tos=0x28)]
    out = rig.send(2, out[2])
    assert out[3] == [MACS + b"\x88\x48" + lse(200, 3, 0, 7) + lse(100, 3, 1, 7) + ip4(ttl=33, tos=0x28)]
    two = mpls(lse(100, bos=1), inner=ip4())
    assert rig.send(3, [two])[1] == [MACS + b"\x08\x00" + ip4()]


def test_push_after_vlan_tags_and_ipv6_label_two(rig):
    rig.add("in_port=1,actions=push_mpls:0x8847,output:2")
    tagged = MACS + struct.pack("!HH", 0x8100, 10) + b"\x08\x06" + bytes(28)
    assert rig.send(1, [tagged])[2] == [MACS + struct.pack("!HH", 0x8100, 10) + b"\x88\x47" + lse(0, 0, 1, 64)
                                        + bytes(28)]
    ip6 = struct.pack("!IHBB", 6 << 28, 0, 59, 9) + bytes(32)
    assert rig.send(1, [MACS + b"\x86\xdd" + ip6])[2] == [MACS + b"\x88\x47" + lse(2, 0, 1, 9) + ip6]


def test_pop_then_an_l3_action_recirculates(rig):
    rig.add("in_port=1,mpls,actions=pop_mpls:0x0800,dec_ttl,resubmit(,1)",
            "table=1,ip,nw_dst=10.0.0.2,actions=mod_nw_dst:10.0.0.9,output:2",
            "table=1,priority=0,actions=output:3")
    out = rig.send(1, [mpls(lse(5), inner=ip4(ttl=20))])
    want = bytearray(ip4(ttl=19))
    want[16:20] = bytes([10, 0, 0, 9])
    want[10:12] = b"\0\0"
    want[10:12] = struct.pack("!H", checksum(bytes(want[:20])))
    got = out[2]
    assert len(got) == 1 and got[0][:14 + 20] == MACS + b"\x08\x00" + bytes(want[:20])
    t = rig.x.translate(parse(mpls(lse(5), inner=ip4(ttl=20)), rig.of2dp[1]))
    assert [type(a) for a in t.actions] == [odp.PopMpls, odp.Recirc]
    # the frame after pop, to output only: no recirculation (Open vSwitch's recirc_for_mpls)
    rig.add("in_port=2,mpls,actions=pop_mpls:0x0800,mod_dl_dst:02:00:00:00:00:09,output:3")
    t = rig.x.translate(parse(mpls(lse(5)), rig.of2dp[2]))
    assert odp.Recirc not in {type(a) for a in t.actions}
    assert rig.send(2, [mpls(lse(5))])[3] == [b"\x02\0\0\0\0\x09" + MACS[6:] + b"\x08\x00" + ip4()]


def test_pop_of_an_inner_entry_recirculates_for_the_next_one(rig):
    rig.add("in_port=1,mpls,mpls_bos=0,actions=pop_mpls:0x8847,set_mpls_ttl(3),output:2")
    out = rig.send(1, [mpls(lse(5, bos=0), lse(6, ttl=9))])
    assert out[2] == [mpls(lse(6, ttl=3))]


def test_pop_to_ip_takes_the_stack_down_to_its_bottom(rig):
    """As Open vSwitch 3.1 (its commit pops every entry its flow holds, three at most)."""
    rig.add("in_port=1,mpls,actions=pop_mpls:0x0800,output:2")
    frames = [mpls(lse(5, bos=0), lse(6)), mpls(lse(5, bos=0), lse(6, bos=0), lse(7)), mpls(lse(5))]
    assert rig.send(1, frames)[2] == [MACS + b"\x08\x00" + ip4()] * 3


def test_dec_mpls_ttl_to_zero_goes_to_the_controller(rig):
    rig.add("in_port=1,mpls,actions=dec_mpls_ttl,output:2")
    out = rig.send(1, [mpls(lse(5, ttl=2)), mpls(lse(5, ttl=1)), mpls(lse(5, ttl=0))])
    assert out[2] == [mpls(lse(5, ttl=1))]
    assert [pi.pi.reason for pi in rig.pins] == ["invalid_ttl", "invalid_ttl"]


def test_a_burst_of_a_new_recirculating_flow_loses_no_frame(rig):
    """The frames parked behind the first miss run its flow once it is in; the second pass of one
    of them, parked while the parked frames were being retried, was overwritten (lost, its mbuf
    leaked) when the retry put back the frames still waiting."""
    rig.add("in_port=1,mpls,actions=pop_mpls:0x0800,goto_table:2", "table=2,udp,actions=mod_tp_dst:99,output:3")
    fr = mpls(lse(21, bos=0, ttl=4), lse(99), inner=ip4())
    out = rig.send(1, [fr] * 5)[3]
    assert len(out) == 5 and len(set(out)) == 1


# --- check_pkt_larger, pop_queue (Open vSwitch's, ovs-actions(7)) ------------------------------------
def test_check_pkt_larger_is_decided_per_frame_in_the_datapath(rig):
    """One megaflow for frames of every length: the datapath's check_pkt_len picks the branch
    translated with the bit 1 (longer than 100 bytes) or 0; the rest of the rule, its
    instructions and the action set run in each."""
    rig.add("in_port=1,udp,actions=check_pkt_larger(100)->reg0[0],pop_queue,resubmit(,1),goto_table:2",
            "table=1,reg0=1,actions=mod_dl_dst:02:00:00:00:00:09,output:2",
            "table=1,reg0=0,actions=write_actions(output:3)",
            "table=2,reg0=1,actions=output:3")
    small = MACS + b"\x08\x00" + ip4(payload=bytes(40))                     # 82 bytes
    big = MACS + b"\x08\x00" + ip4(payload=bytes(100))                      # 142 bytes
    out = rig.send(1, [small, big, big, small])
    moved = b"\x02\0\0\0\0\x09" + big[6:]
    assert out[2] == [moved] * 2 and sorted(out[3]) == sorted([small, moved, moved, small])
    assert rig.dp.flow_count() == 1
    t = rig.x.translate(parse(big, rig.of2dp[1]))
    assert [type(a) for a in t.actions] == [odp.CheckPktLen]
    spec = parse_flow("actions=check_pkt_larger(1500)->NXM_NX_REG0[0],pop_queue,output:1")
    assert format_flow(spec) == "actions=check_pkt_larger(1500)->NXM_NX_REG0[0],pop_queue,output:1"
    # as ovs-ofctl 3.1 sends them: NXAST_CHECK_PKT_LARGER (49), NXAST_POP_QUEUE (5)
    assert acts.encode_actions(spec.instructions[0].actions, C.OFP13_VERSION).hex().startswith(
        "ffff001800002320003105dc000000010004000000000000ffff0010000023200005000000000000")
