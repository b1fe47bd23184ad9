"""Open vSwitch's extension fields and actions (registers, pkt_mark, resubmit, load, move,
masked set_field, push/pop, note, exit): the text syntax, the wire (Nicira extension actions
and NXM fields, checked against what ovs-ofctl sends and prints), and translation.

Frame-by-frame equality with Open vSwitch 3.1 is tests/test_reference_ovs.py's sets
registers_resubmit and load_move_set_field; the megaflow soundness property draws these
actions too (tests/test_slowpath.py).
"""
from __future__ import annotations

import os

import pytest

from dpdkswitch.datapath import odp, parse
from dpdkswitch.ofproto.fields import BY_NAME
from dpdkswitch.ofproto.flowstr import FlowParseError, format_actions, format_flow, format_match, parse_flow
from dpdkswitch.ofproto.match import Match
from dpdkswitch.ofproto.pipeline import Pipeline, PortEntry
from dpdkswitch.ofproto.xlate import MAX_DEPTH, Translator
from dpdkswitch.openflow import acts
from dpdkswitch.openflow import consts as C
from dpdkswitch.openflow.errors import OFPError
from dpdkswitch.openflow.oxm import decode_match, encode_match
from frames import udp_frame
from test_openflow_ofctl import flows, ofctl, ping, start_switch

# What ovs-ofctl 3.1 prints for this flow in OpenFlow 1.3 (ovs-ofctl -O OpenFlow13 parse-flow).
TEXT = ("table=3,reg0=5,reg1=0x10/0xff,pkt_mark=3,xxreg1=0x1/0xf,actions=resubmit(,1),resubmit(2),"
        "resubmit(3,4),load:5->NXM_NX_REG0[0..3],move:reg1[]->reg2[],set_field:1/3->reg3,push:reg0[],"
        "pop:reg4[8..15],note:ab.cd,exit,load:0xabc->xreg3[],"
        "set_field:00:00:00:00:00:05/ff:ff:00:00:00:ff->eth_dst,set_field:0x3->reg3,load:1->reg5[0],"
        "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]")
OVS_PRINTS = ("pkt_mark=0x3,reg0=0x5,reg1=0x10/0xff,reg7=0x1/0xf actions=resubmit(,1),resubmit:2,resubmit(3,4),"
              "load:0x5->NXM_NX_REG0[0..3],move:NXM_NX_REG1[]->NXM_NX_REG2[],load:0x1->NXM_NX_REG3[0..1],"
              "push:NXM_NX_REG0[],pop:NXM_NX_REG4[8..15],note:ab.cd.00.00.00.00,exit,"
              "load:0xabc->OXM_OF_PKT_REG3[],load:0x5->NXM_OF_ETH_DST[0..7],load:0->NXM_OF_ETH_DST[32..47],"
              "set_field:0x3->reg3,load:0x1->NXM_NX_REG5[0],move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]")
# The bytes ovs-ofctl 3.1 sends for TEXT's actions (captured from its NXT_FLOW_MOD; the Nicira
# actions are the same in OpenFlow 1.0 and 1.3), up to the masked set_field to eth_dst.
OVS_ACTION_BYTES = bytes.fromhex(
    "ffff001000002320000efff801000000ffff001000002320000e0002ff000000ffff001000002320000e000304000000"
    "ffff00180000232000070003000100040000000000000005ffff00180000232000060020000000000001020400010404"
    "ffff00180000232000070001000106040000000000000001ffff001800002320001b0000000100040020000000000000"
    "ffff001800002320001c0008000108040008000000000000ffff0010000023200008abcd00000000"
    "ffff0010000023200011000000000000ffff0018000023200007003f800106080000000000000abc")


def test_text_round_trip_as_ovs_ofctl_prints_it():
    spec = parse_flow(TEXT)
    wire = acts.encode_actions(spec.instructions[0].actions, C.OFP13_VERSION)
    back = acts.decode_actions(wire, C.OFP13_VERSION)
    m, _ = decode_match(encode_match(dict(spec.match.items())))
    assert format_match(Match(m)) == OVS_PRINTS.split(" actions=")[0]
    assert format_actions([type(spec.instructions[0])(back)]) == OVS_PRINTS.split(" actions=")[1]
    assert wire.startswith(OVS_ACTION_BYTES)
    assert acts.decode_actions(OVS_ACTION_BYTES, C.OFP10_VERSION) == acts.decode_actions(OVS_ACTION_BYTES,
                                                                                          C.OFP13_VERSION)


def test_registers_are_one_storage():
    # As in Open vSwitch, the later of two overlapping names wins (xxreg0 = reg0..reg3).
    m = parse_flow("reg0=7,xxreg0=0x500000000/0xff00000000,actions=drop").match
    assert dict(m.items()) == {"reg2": (5, 0xFF)}
    m = parse_flow("xxreg0=0x500000000/0xff00000000,xreg1=0x100000002,actions=drop").match
    assert dict(m.items()) == {"reg2": (1, None), "reg3": (2, None)}
    assert Match({"xreg1": (1 << 32, (0xFFFFFFFF << 32))}) == Match({"reg2": 1})


@pytest.mark.parametrize("tlv,code", [
    ("ffff001000002321000e000101000000", C.OFPBAC_BAD_EXPERIMENTER),      # not Nicira
    ("ffff0010000023200063000000000000", C.OFPBAC_BAD_EXP_TYPE),          # no such Nicira action
    ("ffff00180000232000070003ffff00040000000000000005", C.OFPBAC_BAD_ARGUMENT),   # no such field
    ("ffff00180000232000070003000100040000000000000015", C.OFPBAC_BAD_ARGUMENT),   # 0x15 in 4 bits
    ("ffff0018000023200007007f000100040000000000000000", C.OFPBAC_BAD_ARGUMENT),   # bits 1..64 of reg0
    ("ffff0018000023200007000f000006020000000000000000", C.OFPBAC_BAD_SET_ARGUMENT),  # eth_type
    ("ffff0020000023200007000300010004000000000000000500000000", C.OFPBAC_BAD_LEN),
])
def test_bad_extension_actions_get_openflow_errors(tlv, code):
    for version in (C.OFP13_VERSION, C.OFP10_VERSION):
        with pytest.raises(OFPError) as e:
            acts.decode_actions(bytes.fromhex(tlv), version)
        assert (e.value.type, e.value.code) == (C.OFPET_BAD_ACTION, code)


# --- translation ------------------------------------------------------------------------------------
def rig(*texts: str) -> Translator:
    p = Pipeline()
    for of in (1, 2, 3, 4):
        p.set_port(PortEntry(of, f"p{of}", of + 10))
    for t in texts:
        p.add(parse_flow(t))
    return Translator(p)


def outs(t) -> list[int]:
    return [a.port - 10 for a in t.actions if isinstance(a, odp.Output)]


def test_a_bounded_loop_runs_once_per_bit():
    x = rig("table=0,udp,actions=move:NXM_OF_UDP_SRC[0..7]->NXM_NX_REG0[0..7],resubmit(,1)",
            "table=1,priority=20,reg0=0,actions=output:2",
            "table=1,priority=10,actions=move:NXM_NX_REG0[1..31]->NXM_NX_REG0[0..30],load:0->reg0[31],"
            "output:3,resubmit(,1)")
    for low in (0, 1, 5, 0x80, 0xFF):
        t = x.translate(parse(udp_frame(low), 11))            # source port 1024 + low
        assert outs(t) == [3] * low.bit_length() + [2], low
        # The loop read 8 bits of the port: the megaflow matches those, not the rest.
        assert not t.error and BY_NAME["udp_src"].from_key(t.megaflow_mask()) == 0xFF


def test_endless_resubmit_is_over_the_depth_limit_as_in_ovs():
    x = rig("table=0,priority=1,actions=output:2,resubmit(,0)")
    t = x.translate(parse(udp_frame(0), 11))
    assert t.error and t.actions == []
    # 64 nested resubmits are allowed (Open vSwitch's MAX_DEPTH), 65 are not.
    chain = [f"table={i},actions=resubmit(,{i + 1})" for i in range(MAX_DEPTH)]
    assert not rig(*chain, f"table={MAX_DEPTH},actions=output:2").translate(parse(udp_frame(0), 11)).error
    chain = [f"table={i},actions=resubmit(,{i + 1})" for i in range(MAX_DEPTH + 1)]
    assert rig(*chain, f"table={MAX_DEPTH + 1},actions=output:2").translate(parse(udp_frame(0), 11)).error


def test_resubmit_miss_does_nothing_and_exit_ends_every_level():
    x = rig("table=0,actions=write_actions(output:4),goto_table:1",
            "table=1,actions=resubmit(,5),output:2,resubmit(,2),output:3",
            "table=2,actions=exit,output:1")
    assert outs(x.translate(parse(udp_frame(0), 11))) == [2, 4]


def test_registers_start_at_zero_and_do_not_cross_patch_ports():
    x = rig("table=0,reg0=0,actions=load:1->reg0[],resubmit(,1)", "table=1,reg0=1,actions=output:2")
    assert outs(x.translate(parse(udp_frame(0), 11))) == [2]


def test_load_and_masked_set_field_write_only_their_bits():
    x = rig("udp,actions=load:0x2->NXM_OF_UDP_DST[8..11],set_field:0x5/0xf->udp_src,output:2")
    t = x.translate(parse(udp_frame(0), 11))                  # ports 1024 (0x400) -> 53 (0x35)
    sets = [a for a in t.actions if isinstance(a, odp.SetMasked)]
    # Only the bits that change are written; only the bits written are matched.
    assert len(sets) == 1 and sets[0].kind == "udp", sets
    assert sets[0].mask == bytes([0x00, 0x05, 0x02, 0x00]), sets[0].mask.hex()
    mask = t.megaflow_mask()
    assert (BY_NAME["udp_src"].from_key(mask), BY_NAME["udp_dst"].from_key(mask)) == (0xF, 0xF00)


# --- ovs-ofctl over a connection ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def sw(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ext")
    s = start_switch(tmp, f"{os.getpid() % 10000}x", {"openflow": {"fail_mode": "secure"}})
    yield s
    log = s.stop()
    assert s.proc.returncode == 0, log


def test_ovs_ofctl_adds_and_dumps_extension_flows(sw):
    ofctl("OpenFlow13", "add-flow", sw.tcp, TEXT)
    got = flows("OpenFlow13", sw.tcp)
    assert len(got) == 1 and got[0].endswith(OVS_PRINTS), got
    ofctl("OpenFlow13", "del-flows", sw.tcp)


def test_ovs_ofctl_over_openflow10_speaks_nxm(sw):
    """ovs-ofctl's default OpenFlow 1.0 switches to Nicira's NXM flow format for what 1.0's match
    cannot say (registers, masked ports): NXT_SET_FLOW_FORMAT, NXT_FLOW_MOD, NXST_FLOW."""
    ofctl("OpenFlow13", "del-flows", sw.tcp)
    ofctl("OpenFlow10", "add-flow", sw.tcp, "table=2,priority=5,reg1=5,tcp,tp_dst=0x50/0xfff0,dl_vlan=7,nw_tos=8,"
                                            "in_port=3,actions=load:1->reg0[],output:2")
    ofctl("OpenFlow10", "add-flow", sw.tcp, "table=1,ipv6,ipv6_src=2001:db8::1,actions=output:2,resubmit(,3)")
    want = ["table=1, n_packets=0, n_bytes=0, ipv6,ipv6_src=2001:db8::1 actions=output:2,resubmit(,3)",
            "table=2, n_packets=0, n_bytes=0, priority=5,tcp,reg1=0x5,in_port=3,dl_vlan=7,nw_tos=8,"
            "tp_dst=0x50/0xfff0 actions=load:0x1->NXM_NX_REG0[],output:2"]
    for version in ("OpenFlow10", "OpenFlow13"):
        got = flows(version, sw.tcp)
        assert [ln.split(", ", 2)[2] for ln in got] == want, got
    assert len(flows("OpenFlow10", sw.tcp, "reg1=5")) == 1
    ofctl("OpenFlow10", "del-flows", sw.tcp, "reg1=5")
    assert len(flows("OpenFlow10", sw.tcp)) == 1
    ofctl("OpenFlow13", "del-flows", sw.tcp)


def test_hosts_talk_through_registers_and_resubmit(sw):
    (h1, _), (_, ip2) = sw.hosts["p1"], sw.hosts["p2"]
    ofctl("OpenFlow13", "del-flows", sw.tcp)
    for f in ["table=0,in_port=1,actions=load:2->reg0[0..15],resubmit(,1)",
              "table=0,in_port=2,actions=load:1->reg0[0..15],resubmit(,1)",
              "table=1,reg0=0x2/0xffff,actions=output:2", "table=1,reg0=0x1/0xffff,actions=output:1"]:
        ofctl("OpenFlow13", "add-flow", sw.tcp, f)
    assert ping(h1, ip2)
    # OpenFlow 1.0 carries the Nicira actions too (as vendor actions).
    ofctl("OpenFlow10", "add-flow", sw.tcp, "table=0,priority=40000,in_port=1,actions=resubmit(,2)")
    assert not ping(h1, ip2, count=1)
    ofctl("OpenFlow10", "add-flow", sw.tcp, "table=2,actions=output:2")
    assert ping(h1, ip2)
    assert any(ln.endswith("in_port=1 actions=resubmit(,2)") for ln in flows("OpenFlow10", sw.tcp))
    ofctl("OpenFlow13", "del-flows", sw.tcp)


def test_parse_errors_are_one_line():
    with pytest.raises(FlowParseError, match="widths differ"):
        parse_flow("actions=move:reg0[0..3]->reg1[]")


# --- learn ------------------------------------------------------------------------------------------
TUTORIAL_LEARN = ("table=0,actions=learn(table=10,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],"
                  "load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15]),resubmit(,10),resubmit(,4)")


def test_learn_adds_its_flow_when_the_miss_commits_and_later_frames_use_it():
    x = rig(TUTORIAL_LEARN, "table=4,priority=10,reg0=0,actions=flood", "table=4,priority=10,reg0=1,actions=1",
            "table=4,priority=10,reg0=2,actions=2")
    p = x.p
    a_to_b = parse(udp_frame(0), 11)                                          # 02..01 -> 02..02 on port 1
    b_to_a = parse(udp_frame(0, src_mac=b"\x02\0\0\0\0\x02", dst_mac=b"\x02\0\0\0\0\x01"), 12)
    t = x.translate(a_to_b)
    assert outs(t) == [2, 3, 4] and list(p.entries(10)) == []                # translating adds nothing
    version = p.version
    t.commit(1.0, 1, 64)
    learned = [format_flow(e.spec()) for e in p.entries(10)]
    assert learned == ["table=10, vlan_tci=0x0000/0x0fff,dl_dst=02:00:00:00:00:01 "
                       "actions=load:0x1->NXM_NX_REG0[0..15]"], learned
    assert p.version != version
    # The reply goes to port 1 only; learning it again changes no table.
    assert outs(x.translate(b_to_a)) == [1]
    version = p.version
    x.translate(a_to_b).commit(2.0, 1, 64)
    assert p.version == version and len(list(p.entries(10))) == 1
    # The learned flow's source fields are in the megaflow: another source MAC is another flow.
    assert BY_NAME["eth_src"].from_key(t.megaflow_mask()) == (1 << 48) - 1
    assert BY_NAME["vlan_vid"].from_key(t.megaflow_mask()) & 0xFFF == 0xFFF


# --- conjunction ------------------------------------------------------------------------------------
def _frame(src_ip: str, dst_ip: str, sport: int, dport: int) -> bytes:
    f = bytearray(udp_frame(0))
    f[26:30], f[30:34] = bytes(map(int, src_ip.split("."))), bytes(map(int, dst_ip.split(".")))
    f[34:36], f[36:38] = sport.to_bytes(2, "big"), dport.to_bytes(2, "big")
    return bytes(f)


# ovs-fields(7)'s example, three dimensions: (source 10.0.0.1 or .2) and (destination 172.16.0.1
# or .2) and (UDP port 53 or 67) go to port 2; two dimensions of id 2, at a lower priority, to 3;
# and an ordinary rule between them for 10.0.0.1.
CONJ = ["priority=100,ip,nw_src=10.0.0.1,actions=conjunction(1,1/3)",
        "priority=100,ip,nw_src=10.0.0.2,actions=conjunction(1,1/3)",
        "priority=100,ip,nw_dst=172.16.0.1,actions=conjunction(1,2/3)",
        "priority=100,ip,nw_dst=172.16.0.2,actions=conjunction(1,2/3),note:ab",
        "priority=100,udp,tp_dst=53,actions=conjunction(1,3/3)",
        "priority=100,udp,tp_dst=67,actions=conjunction(1,3/3)",
        "priority=100,conj_id=1,ip,actions=output:2",
        "priority=50,ip,nw_src=10.0.0.9,actions=conjunction(2,1/2)",
        "priority=50,udp,tp_src=7,actions=conjunction(2,2/2)",
        "priority=5,conj_id=2,actions=output:3",
        "priority=60,ip,nw_src=10.0.0.1,actions=output:4",
        "priority=0,actions=drop"]


@pytest.mark.parametrize("src,dst,sport,dport,want", [
    ("10.0.0.1", "172.16.0.1", 9, 53, [2]), ("10.0.0.2", "172.16.0.2", 9, 67, [2]),
    ("10.0.0.1", "172.16.0.1", 9, 54, [4]),     # one clause short: the ordinary rule below
    ("10.0.0.3", "172.16.0.1", 9, 53, []),      # another clause short, nothing else matches
    ("10.0.0.9", "172.16.0.1", 7, 53, [3]),     # two dimensions (priority 50), its conj_id rule at 5
    ("10.0.0.9", "172.16.0.1", 8, 53, []),
])
def test_conjunction_in_two_and_three_dimensions(src, dst, sport, dport, want):
    x = rig(*CONJ)
    frame = _frame(src, dst, sport, dport)
    t = x.translate(parse(frame, 11))
    assert outs(t) == want
    # The megaflow is sound: every packet under it translates the same.
    mask = t.megaflow_mask()
    key = parse(frame, 11)
    for other in (_frame("10.0.0.1", "172.16.0.2", 9, 53), _frame("10.0.0.9", "172.16.0.9", 7, 67),
                  _frame(src, dst, sport ^ 1, dport), _frame(src, dst, sport, dport ^ 1)):
        k2 = parse(other, 11)
        if all((a ^ b) & m == 0 for a, b, m in zip(key, k2, mask)):
            assert outs(x.translate(k2)) == want, other.hex()


def test_conjunction_text_wire_and_limits():
    spec = parse_flow("priority=9,ip,actions=conjunction(7,2/3)")
    wire = acts.encode_actions(spec.instructions[0].actions, C.OFP13_VERSION)
    # NXAST_CONJUNCTION (34): clause 0-based, n_clauses, id (lib/ofp-actions.c's layout).
    assert wire == bytes.fromhex("ffff00100000232000220103" + "00000007")
    assert acts.decode_actions(wire, C.OFP10_VERSION) == spec.instructions[0].actions
    assert format_actions(spec.instructions) == "conjunction(7,2/3)"
    assert format_match(parse_flow("conj_id=7,ip,actions=drop").match) == "conj_id=7,ip"
    for bad in ("conjunction(1,0/2)", "conjunction(1,3/2)", "conjunction(1,1/1)", "conjunction(1,1/65)",
                "conjunction(1)"):
        with pytest.raises(FlowParseError):
            parse_flow("actions=" + bad)
    p = Pipeline()
    with pytest.raises(Exception, match="conjunction actions may be used with note"):
        p.add(parse_flow("ip,actions=conjunction(1,1/2),output:1"))
    with pytest.raises(OFPError):
        acts.decode_actions(bytes.fromhex("ffff00100000232000220202" + "00000007"), C.OFP13_VERSION)


def test_ovs_ofctl_adds_and_dumps_conjunctions(sw):
    ofctl("OpenFlow13", "del-flows", sw.tcp)
    for v in ("OpenFlow13", "OpenFlow10"):
        ofctl(v, "add-flow", sw.tcp, "priority=5,ip,nw_src=10.0.0.1,actions=conjunction(3,1/2)")
        ofctl(v, "add-flow", sw.tcp, "priority=5,conj_id=3,ip,actions=output:2")
        got = sorted(ln.split(", ", 2)[2] for ln in flows(v, sw.tcp))
        assert got == ["table=0, n_packets=0, n_bytes=0, priority=5,conj_id=3,ip actions=output:2",
                       "table=0, n_packets=0, n_bytes=0, priority=5,ip,nw_src=10.0.0.1 actions=conjunction(3,1/2)"], got
        ofctl("OpenFlow13", "del-flows", sw.tcp)


# --- learn's delete_learned -------------------------------------------------------------------------
DEL_LEARN = ("table=0,priority={p},in_port={port},actions=learn(table=10,cookie=0x5,delete_learned,"
             "NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),output:3")


def test_delete_learned_removes_the_learned_flows_with_the_last_learning_rule():
    x = rig(DEL_LEARN.format(p=10, port=1), DEL_LEARN.format(p=10, port=2),
            "table=10,priority=1,cookie=0x6,actions=drop")
    p = x.p
    x.translate(parse(udp_frame(0), 11)).commit(1.0, 1, 64)
    x.translate(parse(udp_frame(0, src_mac=b"\x02\0\0\0\0\x07"), 12)).commit(1.0, 1, 64)
    assert sorted(e.cookie for e in p.entries(10)) == [5, 5, 6]
    # One learning rule with that (table, cookie) left: the learned flows stay.
    p.delete(parse_flow("table=0,in_port=1", require_actions=False), strict=False)
    assert sorted(e.cookie for e in p.entries(10)) == [5, 5, 6]
    # The last one goes (here by modification to other actions): so do the flows with its cookie.
    p.modify(parse_flow("table=0,in_port=2,actions=output:4"))
    assert [e.cookie for e in p.entries(10)] == [6]


def test_delete_learned_with_the_whole_table_deleted_and_without_the_flag():
    x = rig(DEL_LEARN.format(p=10, port=1), "table=10,priority=1,actions=drop")
    x.translate(parse(udp_frame(0), 11)).commit(1.0, 1, 64)
    assert len(list(x.p.entries(10))) == 2
    assert len(x.p.delete(parse_flow("", require_actions=False))) == 3     # one went with its learning rule
    assert list(x.p.entries()) == []
    x = rig(DEL_LEARN.format(p=10, port=1).replace("delete_learned,", ""))
    x.translate(parse(udp_frame(0), 11)).commit(1.0, 1, 64)
    x.p.delete(parse_flow("table=0", require_actions=False))
    assert [e.cookie for e in x.p.entries(10)] == [5]


def test_ovs_ofctl_sends_and_dumps_delete_learned(sw):
    ofctl("OpenFlow13", "del-flows", sw.tcp)
    text = "learn(table=10,delete_learned,cookie=0x5,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[])"
    for v in ("OpenFlow13", "OpenFlow10"):
        ofctl(v, "add-flow", sw.tcp, f"table=1,actions={text}")
        assert [ln.split(" actions=")[1] for ln in flows(v, sw.tcp)] == [text]
        ofctl("OpenFlow13", "del-flows", sw.tcp)


# --- fin_timeout ------------------------------------------------------------------------------------
def _tcp(flags: str) -> bytes:
    return _tcp_port(80, flags)


def test_fin_timeout_shortens_the_rules_timeouts_on_fin_or_rst():
    x = rig("priority=5,tcp,actions=fin_timeout(idle_timeout=5,hard_timeout=60),output:2",
            "priority=6,tcp,tp_dst=81,idle_timeout=3,actions=fin_timeout(idle_timeout=5),output:2")
    p = x.p
    e = next(e for e in p.entries(0) if e.priority == 5)
    t = x.translate(parse(_tcp("A"), 11))
    t.commit(1.0, 1, 60)
    assert (e.idle_timeout, e.hard_timeout) == (0, 0)
    fin = x.translate(parse(_tcp("FA"), 11))
    # The megaflows tell FIN/RST packets from the rest (and read no other flag).
    assert BY_NAME["tcp_flags"].from_key(fin.megaflow_mask()) == 0x005
    assert BY_NAME["tcp_flags"].from_key(t.megaflow_mask()) == 0x005
    fin.commit(2.0, 1, 60)
    assert (e.idle_timeout, e.hard_timeout) == (5, 60)
    # A shorter timeout stays; RST counts too.
    e6 = next(e for e in p.entries(0) if e.priority == 6)
    x.translate(parse(_tcp_port(81, "R"), 11)).commit(2.0, 1, 60)
    assert (e6.idle_timeout, e6.hard_timeout) == (3, 0)
    e.last_used = e6.last_used = 2.0
    assert p.expire(2.0 + 4) == [e6] and p.expire(2.0 + 5) == [e]


def _tcp_port(dport: int, flags: str) -> bytes:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.0.0.1", dst="10.0.0.2")
                 / TCP(sport=1000, dport=dport, flags=flags))


def test_fin_timeout_text_and_wire(sw):
    spec = parse_flow("tcp,actions=fin_timeout(hard_timeout=7),output:2")
    assert format_actions(spec.instructions) == "fin_timeout(hard_timeout=7),output:2"
    wire = acts.encode_actions(spec.instructions[0].actions, C.OFP13_VERSION)
    assert wire.startswith(bytes.fromhex("ffff001000002320001300000007" + "0000"))    # NXAST_FIN_TIMEOUT (19)
    for v in (C.OFP13_VERSION, C.OFP10_VERSION):
        assert acts.decode_actions(acts.encode_actions(spec.instructions[0].actions, v), v) == \
            spec.instructions[0].actions
    ofctl("OpenFlow13", "del-flows", sw.tcp)
    for v in ("OpenFlow13", "OpenFlow10"):
        ofctl(v, "add-flow", sw.tcp, "tcp,actions=fin_timeout(idle_timeout=3,hard_timeout=7),output:2")
        assert [ln.split(" actions=")[1] for ln in flows(v, sw.tcp)] == [
            "fin_timeout(idle_timeout=3,hard_timeout=7),output:2"]
        ofctl("OpenFlow13", "del-flows", sw.tcp)


# --- writing NXM_OF_VLAN_TCI ------------------------------------------------------------------------
def _tagged(frame: bytes, vid: int) -> bytes:
    return frame[:12] + b"\x81\x00" + vid.to_bytes(2, "big") + frame[12:]


@pytest.mark.parametrize("actions,untagged,tagged", [
    ("load:0x1014->NXM_OF_VLAN_TCI[],output:2", "push_vlan(vid=20,pcp=0),12", "set(vlan(value=0014,mask=ffff)),12"),
    ("load:0->NXM_OF_VLAN_TCI[12],output:2", "12", "pop_vlan,12"),
    # The VID bits stay without the present bit, as in Open vSwitch's flow, until it is set.
    ("load:5->reg0[],move:NXM_NX_REG0[0..11]->NXM_OF_VLAN_TCI[0..11],load:1->NXM_OF_VLAN_TCI[12],output:2",
     "push_vlan(vid=5,pcp=0),12", "set(vlan(value=0005,mask=ffff)),12"),
    ("push:NXM_OF_VLAN_TCI[],load:0->NXM_OF_VLAN_TCI[],output:3,pop:NXM_OF_VLAN_TCI[],output:2",
     "13,12", "pop_vlan,13,push_vlan(vid=7,pcp=0),12"),
])
def test_load_move_and_pop_write_the_vlan_tci(actions, untagged, tagged):
    x = rig("actions=" + actions)
    assert odp.format_actions(x.translate(parse(udp_frame(0), 11)).actions) == untagged
    assert odp.format_actions(x.translate(parse(_tagged(udp_frame(0), 7), 11)).actions) == tagged
    spec = parse_flow("actions=" + actions)
    wire = acts.encode_actions(spec.instructions[0].actions, C.OFP10_VERSION)
    assert acts.decode_actions(wire, C.OFP10_VERSION) == spec.instructions[0].actions


def test_hosts_talk_through_a_conjunction_until_a_clause_goes(sw):
    """A cached megaflow that a conjunction decided is revalidated when one of its clauses
    (a rule that is not the one it matched) is deleted."""
    (h1, _), (_, ip2) = sw.hosts["p1"], sw.hosts["p2"]
    ofctl("OpenFlow13", "del-flows", sw.tcp)
    for f in ["priority=10,ip,nw_src=10.0.0.1,actions=conjunction(1,1/2)",
              "priority=10,ip,nw_dst=10.0.0.2,actions=conjunction(1,2/2)",
              "priority=10,conj_id=1,ip,actions=output:2",
              "priority=5,in_port=2,actions=output:1", "priority=5,arp,actions=flood"]:
        ofctl("OpenFlow13", "add-flow", sw.tcp, f)
    assert ping(h1, ip2)
    ofctl("OpenFlow13", "del-flows", sw.tcp, "--strict", "priority=10,ip,nw_dst=10.0.0.2")
    assert not ping(h1, ip2, count=2)
    ofctl("OpenFlow13", "add-flow", sw.tcp, "priority=10,ip,nw_dst=10.0.0.2,actions=conjunction(1,2/2)")
    assert ping(h1, ip2)
    ofctl("OpenFlow13", "del-flows", sw.tcp)


# --- clone ------------------------------------------------------------------------------------------
def test_clone_keeps_its_changes_inside():
    x = rig("actions=mod_dl_dst:02:00:00:00:00:07,clone(mod_vlan_vid:5,output:2,resubmit(,1)),output:3",
            "table=1,ip,actions=mod_nw_ttl:9,output:4")
    acts_ = x.translate(parse(udp_frame(0), 11)).actions
    assert [type(a) for a in acts_] == [odp.Clone, odp.SetMasked, odp.Output]
    inner = acts_[0].actions
    assert [type(a) for a in inner] == [odp.PushVlan, odp.SetMasked, odp.Output, odp.SetMasked, odp.Output]
    # Outputs alone need no datapath clone (as Open vSwitch).
    assert rig("actions=clone(output:2),output:3").translate(parse(udp_frame(0), 11)).actions == \
        [odp.Output(12), odp.Output(13)]


def test_clone_text_and_wire(sw):
    text = "clone(set_field:02:00:00:00:00:09->eth_src,output:2,clone(resubmit(,1))),output:3"
    spec = parse_flow("actions=" + text)
    assert format_actions(spec.instructions) == text
    for v in (C.OFP13_VERSION, C.OFP10_VERSION):
        wire = acts.encode_actions(spec.instructions[0].actions, v)
        assert wire[:2] == b"\xff\xff" and wire[4:10] == bytes.fromhex("00002320002a")   # NXAST_CLONE (42)
        assert acts.decode_actions(wire, v) == spec.instructions[0].actions
    ofctl("OpenFlow13", "del-flows", sw.tcp)
    for v in ("OpenFlow13", "OpenFlow10"):
        ofctl(v, "add-flow", sw.tcp, "actions=clone(mod_dl_src:02:00:00:00:00:09,output:2),output:1")
        got = [ln.split(" actions=")[1] for ln in flows(v, sw.tcp)]
        assert got == ["clone(mod_dl_src:02:00:00:00:00:09,output:2),output:1"
                       if v == "OpenFlow10" else "clone(set_field:02:00:00:00:00:09->eth_src,output:2),output:1"], got
        ofctl("OpenFlow13", "del-flows", sw.tcp)


# --- multipath --------------------------------------------------------------------------------------
@pytest.mark.parametrize("alg", ["modulo_n", "hash_threshold", "hrw", "iter_hash"])
def test_multipath_spreads_flows_and_symmetric_fields_choose_one_link_both_ways(alg):
    x = rig(f"udp,actions=multipath(symmetric_l4,5,{alg},3,0,reg0[0..1]),resubmit(,1)",
            "table=1,reg0=0,actions=output:2", "table=1,reg0=1,actions=output:3", "table=1,reg0=2,actions=output:4")
    links = set()
    for i in range(40):
        fwd = _frame(f"10.0.0.{i}", "10.9.0.1", 1000 + i, 53)
        back = _frame("10.9.0.1", f"10.0.0.{i}", 53, 1000 + i)
        back = back[6:12] + back[0:6] + back[12:]
        a, b = outs(x.translate(parse(fwd, 11))), outs(x.translate(parse(back, 11)))
        assert a == b and len(a) == 1
        links.add(a[0])
        # Every field hashed is in the megaflow: the ports, both addresses.
        mask = x.translate(parse(fwd, 11)).megaflow_mask()
        assert BY_NAME["udp_src"].from_key(mask) == 0xFFFF and BY_NAME["ipv4_dst"].from_key(mask) == 0xFFFFFFFF
    assert links == {2, 3, 4}


def test_multipath_text_and_wire(sw):
    text = "multipath(symmetric_l3l4+udp,1024,iter_hash,5000,4000,NXM_NX_REG0[0..12])"
    spec = parse_flow("actions=" + text)
    assert format_actions(spec.instructions) == text
    wire = acts.encode_actions(spec.instructions[0].actions, C.OFP13_VERSION)
    assert len(wire) == 32 and wire[8:10] == b"\x00\x0a"                     # NXAST_MULTIPATH (10)
    assert acts.decode_actions(wire, C.OFP10_VERSION) == spec.instructions[0].actions
    with pytest.raises(FlowParseError, match="less than n_links"):
        parse_flow("actions=multipath(eth_src,0,modulo_n,5,0,reg0[0..1])")
    ofctl("OpenFlow13", "del-flows", sw.tcp)
    for v in ("OpenFlow13", "OpenFlow10"):
        ofctl(v, "add-flow", sw.tcp, "actions=" + text)
        assert [ln.split(" actions=")[1] for ln in flows(v, sw.tcp)] == [text]
        ofctl("OpenFlow13", "del-flows", sw.tcp)


# --- controller options, dec_ttl(ids) --------------------------------------------------------------
CONTROLLER_TEXTS = ["controller(reason=no_match,max_len=64,id=3,userdata=01.02.03)",
                    "controller(userdata=de.ad.be.ef.00.11.22.33.44)", "controller(id=7)",
                    "controller(reason=invalid_ttl)", "CONTROLLER:100", "dec_ttl(1,2,3)", "dec_ttl", "dec_ttl(0)"]


def test_controller_options_and_dec_ttl_ids_text_and_wire(sw):
    """controller(...) as NXAST_CONTROLLER, or NXAST_CONTROLLER2 when it has userdata, as ovs-ofctl
    encodes it; dec_ttl(ids) as NXAST_DEC_TTL_CNT_IDS; ovs-ofctl adds them over both versions
    and dumps them back as it printed them."""
    for text in CONTROLLER_TEXTS:
        spec = parse_flow("ip,actions=" + text)
        assert format_actions(spec.instructions) == text
        for v in (C.OFP13_VERSION, C.OFP10_VERSION):
            assert acts.decode_actions(acts.encode_actions(spec.instructions[0].actions, v), v) == \
                spec.instructions[0].actions
    wire = acts.encode_actions(parse_flow("actions=controller(userdata=01.02,id=3)").instructions[0].actions,
                               C.OFP13_VERSION)
    # NXAST_CONTROLLER2 (37), as ovs-ofctl parse-actions re-encodes it (a u16 property counts its padding)
    assert wire.hex() == "ffff002000002320002500000000000000010008000300000003000601020000"
    for bad in ("controller(pause)", "controller(userdata=1)", "controller(reason=nope)", "controller(meter_id=1)"):
        with pytest.raises(FlowParseError):
            parse_flow("actions=" + bad)
    ofctl("OpenFlow13", "del-flows", sw.tcp)
    for v in ("OpenFlow13", "OpenFlow10"):
        for i, text in enumerate(CONTROLLER_TEXTS):
            ofctl(v, "add-flow", sw.tcp, f"priority={i},ip,actions={text}")
        got = sorted(ln.split(" actions=")[1] for ln in flows(v, sw.tcp))
        assert got == sorted(CONTROLLER_TEXTS), got
        ofctl("OpenFlow13", "del-flows", sw.tcp)


def _ttl1(frame: bytes) -> bytes:
    return frame[:22] + b"\x01" + frame[23:]


def test_dec_ttl_ids_and_controller_options_make_their_packet_ins():
    x = rig("udp,tp_dst=1,actions=dec_ttl(4,5),output:2", "udp,tp_dst=2,actions=load:7->reg3[],"
            "controller(reason=no_match,max_len=9,id=4,userdata=aa.bb)", "udp,tp_dst=3,actions=dec_ttl,output:2")
    t = x.translate(parse(_ttl1(_frame("10.0.0.1", "10.0.0.2", 5, 1)), 11))
    assert [(p.reason, p.controller_id) for p in t.packet_ins] == [("invalid_ttl", 4), ("invalid_ttl", 5)]
    assert outs(t) == []
    t = x.translate(parse(_ttl1(_frame("10.0.0.1", "10.0.0.2", 5, 3)), 11))
    assert [(p.reason, p.controller_id) for p in t.packet_ins] == [("invalid_ttl", 0)]
    t = x.translate(parse(_frame("10.0.0.1", "10.0.0.2", 5, 2), 11))
    (p,) = t.packet_ins
    assert (p.reason, p.max_len, p.controller_id, p.userdata) == ("no_match", 9, 4, b"\xaa\xbb")
    assert (p.vector >> BY_NAME["reg3"].meta_shift) & 0xFFFFFFFF == 7


# --- bundle -----------------------------------------------------------------------------------------
def test_bundle_follows_liveness():
    """active_backup takes the first live member; hrw spreads flows over the live members and,
    when one goes down, moves only the flows it had (highest random weight); bundle_load writes
    the member, or 0xffff when none is live.  Liveness is the port's may_enable (liveness.py)."""
    x = rig("icmp,actions=bundle(eth_src,0,active_backup,ofport,members:9,2,3)",
            "udp,actions=bundle(symmetric_l4,5,hrw,ofport,members:2,3,4)",
            "tcp,actions=bundle_load(nw_src,0,active_backup,ofport,reg0[],members:9,8),resubmit(,1)",
            "table=1,reg0=0xffff,actions=output:4")
    icmp = bytearray(_frame("10.0.0.1", "10.0.0.2", 0, 0))
    icmp[23] = 1
    assert outs(x.translate(parse(bytes(icmp), 11))) == [2]
    flows = [_frame(f"10.0.0.{i}", "10.9.0.1", 1000 + i, 53) for i in range(40)]
    before = [outs(x.translate(parse(f, 11))) for f in flows]
    assert {o[0] for o in before} == {2, 3, 4} and all(len(o) == 1 for o in before)
    mask = x.translate(parse(flows[0], 11)).megaflow_mask()
    assert BY_NAME["udp_src"].from_key(mask) == 0xFFFF and BY_NAME["ipv4_src"].from_key(mask) == 0xFFFFFFFF
    x.p.liveness.set_admin_down(2, True)
    assert outs(x.translate(parse(bytes(icmp), 11))) == [3]
    after = [outs(x.translate(parse(f, 11))) for f in flows]
    for b, a in zip(before, after):
        assert a == (b if b != [2] else a) and a != [2] and len(a) == 1
    tcp = bytearray(_frame("10.0.0.1", "10.0.0.2", 1, 2))
    tcp[23] = 6
    assert outs(x.translate(parse(bytes(tcp), 11))) == [4]


def test_bundle_text_and_wire(sw):
    texts = ["bundle(eth_src,0,hrw,ofport,members:4,8)",
             "bundle(symmetric_l4,60,active_backup,ofport,members:1,2,3,10)",
             "bundle_load(symmetric_l3l4+udp,5,hrw,ofport,NXM_NX_REG0[],members:2,3,4)",
             "bundle_load(nw_src,5,active_backup,ofport,NXM_NX_REG1[0..15],members:1,LOCAL,IN_PORT)"]
    for text in texts:
        spec = parse_flow("actions=" + text)
        assert format_actions(spec.instructions) == text
        for v in (C.OFP13_VERSION, C.OFP10_VERSION):
            assert acts.decode_actions(acts.encode_actions(spec.instructions[0].actions, v), v) == \
                spec.instructions[0].actions
    assert format_actions(parse_flow("actions=bundle(eth_src,0,hrw,ofport,slaves:4,8)").instructions) == texts[0]
    for bad in ("bundle(eth_src,0,hrw,ofport,4,8)", "bundle(eth_src,0,nope,ofport,members:4)",
                "bundle_load(eth_src,0,hrw,ofport,reg0[0..7],members:4)", "bundle(eth_src,0,hrw,vport,members:4)"):
        with pytest.raises(FlowParseError):
            parse_flow("actions=" + bad)
    ofctl("OpenFlow13", "del-flows", sw.tcp)
    for v in ("OpenFlow13", "OpenFlow10"):
        for i, text in enumerate(texts):
            ofctl(v, "add-flow", sw.tcp, f"priority={i},actions={text}")
        assert sorted(ln.split(" actions=")[1] for ln in flows(v, sw.tcp)) == sorted(texts)
        ofctl("OpenFlow13", "del-flows", sw.tcp)


def test_learn_limit_and_result_dst_text_and_wire(sw):
    """learn's limit and result_dst: NXAST_LEARN2 as ovs-ofctl encodes it (checked with ovs-ofctl
    parse-actions), added and dumped back by ovs-ofctl over both versions."""
    texts = ["learn(table=10,limit=5,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[])",
             "learn(table=10,cookie=0x5,limit=2,result_dst=NXM_NX_REG1[3],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],"
             "load:0x1->NXM_NX_REG0[0..3])",
             "learn(table=3,result_dst=NXM_NX_REG1[0],NXM_OF_ETH_DST[])"]
    for text in texts:
        spec = parse_flow("actions=" + text)
        assert format_actions(spec.instructions) == text
        for v in (C.OFP13_VERSION, C.OFP10_VERSION):
            wire = acts.encode_actions(spec.instructions[0].actions, v)
            assert wire[8:10] == b"\x00\x2d"                                    # NXAST_LEARN2 (45)
            assert acts.decode_actions(wire, v) == spec.instructions[0].actions
    ofctl("OpenFlow13", "del-flows", sw.tcp)
    for v in ("OpenFlow13", "OpenFlow10"):
        for i, text in enumerate(texts):
            # a match no host sends (a local experimental ethertype): the hosts' own frames (an
            # IPv6 router solicitation, say) must not run the learn and add a rule to the dump
            ofctl(v, "add-flow", sw.tcp, f"priority={i},dl_type=0x88b5,actions={text}")
        assert sorted(ln.split(" actions=")[1] for ln in flows(v, sw.tcp)) == sorted(texts)
        ofctl("OpenFlow13", "del-flows", sw.tcp)


# --- MPLS ---------------------------------------------------------------------------------------------
def test_ovs_ofctl_adds_and_dumps_mpls(sw):
    """ovs-ofctl 3.1 sends MPLS actions as Nicira actions over OpenFlow 1.0 and as 1.1+'s own (label
    and TC as set_field) over 1.3; both dump back as ovs-ofctl prints them."""
    ofctl("OpenFlow13", "del-flows", sw.tcp)
    text = ("mpls,mpls_label=16,mpls_tc=1,mpls_bos=1,mpls_ttl=3,actions=set_mpls_label(7),set_mpls_tc(2),"
            "set_mpls_ttl(9),dec_mpls_ttl,pop_mpls:0x0800,push_mpls:0x8848,output:1")
    want = {"OpenFlow10": "mpls,mpls_label=16,mpls_tc=1,mpls_ttl=3,mpls_bos=1 actions=set_mpls_label(7),"
                          "set_mpls_tc(2),set_mpls_ttl(9),dec_mpls_ttl,pop_mpls:0x0800,push_mpls:0x8848,output:1",
            "OpenFlow13": "mpls,mpls_label=16,mpls_tc=1,mpls_ttl=3,mpls_bos=1 actions=set_field:7->mpls_label,"
                          "set_field:2->mpls_tc,set_mpls_ttl(9),dec_mpls_ttl,pop_mpls:0x0800,push_mpls:0x8848,"
                          "output:1"}
    for v in ("OpenFlow10", "OpenFlow13"):
        ofctl(v, "add-flow", sw.tcp, text)
        got = [ln.split("n_bytes=0, ", 1)[1] for ln in flows(v, sw.tcp)]
        assert got == [want[v]], got
        ofctl("OpenFlow13", "del-flows", sw.tcp)


def test_ovs_ofctl_adds_and_dumps_check_pkt_larger_and_pop_queue(sw):
    ofctl("OpenFlow13", "del-flows", sw.tcp)
    text = "udp,actions=check_pkt_larger(1500)->NXM_NX_REG0[0],pop_queue,resubmit(,1)"
    for v in ("OpenFlow10", "OpenFlow13"):
        ofctl(v, "add-flow", sw.tcp, text)
        got = [ln.split("n_bytes=0, ", 1)[1] for ln in flows(v, sw.tcp)]
        assert got == ["udp actions=check_pkt_larger(1500)->NXM_NX_REG0[0],pop_queue,resubmit(,1)"], got
        ofctl("OpenFlow13", "del-flows", sw.tcp)


def test_enqueue_is_set_queue_output_pop_queue(sw):
    """ovs-ofctl sends enqueue over OpenFlow 1.3 as set_queue, output, pop_queue (1.0: ENQUEUE);
    our text makes the same three actions, an action set's the first two."""
    spec = parse_flow("actions=enqueue:1:5,enqueue(2,7),write_actions(enqueue:3:9)")
    assert format_flow(spec) == ("actions=set_queue:5,output:1,pop_queue,set_queue:7,output:2,pop_queue,"
                                 "write_actions(set_queue:9,output:3)")
    ofctl("OpenFlow13", "del-flows", sw.tcp)
    ofctl("OpenFlow13", "add-flow", sw.tcp, "udp,actions=enqueue:1:5")
    got = [ln.split("n_bytes=0, ", 1)[1] for ln in flows("OpenFlow13", sw.tcp)]
    assert got == ["udp actions=set_queue:5,output:1,pop_queue"], got
    ofctl("OpenFlow13", "del-flows", sw.tcp)
