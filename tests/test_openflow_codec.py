"""The OpenFlow wire codec (dpdkswitch.openflow): known-answer tests against bytes assembled here
with struct from the OpenFlow 1.3 / 1.0 spec layouts, hypothesis round-trips, fuzzing (decode
raises only OFPError, carrying the offending bytes), malformed input mapped to the right error
type/code, and, when ovs-ofctl is installed, Open vSwitch's own decoder and encoder as a second
opinion (``ovs-ofctl ofp-print``, and ovs-ofctl talking to a fake switch on a unix socket).

No network; no EAL.
"""
from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import struct
import subprocess
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dpdkswitch.ofproto import actions as A
from dpdkswitch.ofproto import fields as F
from dpdkswitch.openflow import consts as C
from dpdkswitch.openflow.codec import (
    AggregateStats, BarrierReply, BarrierRequest, Bucket, DescStats, EchoReply, EchoRequest, Error, Experimenter,
    ExperimenterBody, FeaturesReply, FeaturesRequest, FlowMod, FlowRemoved, FlowStats, FlowStatsRequest, FramingError,
    GetAsyncReply, GetAsyncRequest, GetConfigReply, GetConfigRequest, GroupDesc, GroupFeatures, GroupMod, GroupStats,
    GroupStatsRequest, Hello, MeterBand, MeterConfig, MeterFeatures, MeterMod, MeterStats, MeterStatsRequest,
    MultipartReply, MultipartRequest, OFPError, PacketIn, PacketOut, PacketQueue, Port, PortMod, PortStats,
    PortStatsRequest, PortStatus, QueueGetConfigReply, QueueGetConfigRequest, QueueStats, QueueStatsRequest,
    RoleReply, RoleRequest, SetAsync, SetConfig, TableFeatures, TableMod, TableStats, decode, encode, error_reply,
    split_messages)

V10, V13 = 1, 4
OFCTL = shutil.which("ovs-ofctl")
needs_ofctl = pytest.mark.skipif(OFCTL is None, reason="ovs-ofctl not installed")
MANY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- hand assembly from the spec layouts (independent of the codec) ------------------------------
def hdr(version: int, type_: int, body: bytes, xid: int = 0) -> bytes:
    return struct.pack("!BBHI", version, type_, 8 + len(body), xid) + body


def oxm(cls: int, field: int, value: bytes, mask: bytes = b"") -> bytes:
    """OXM_HEADER(class, field, hasmask, length) + value + mask."""
    return struct.pack("!HBB", cls, field << 1 | bool(mask), len(value) + len(mask)) + value + mask


def pad8(b: bytes) -> bytes:
    return b + bytes(-len(b) % 8)


def ofp_match(tlvs: bytes) -> bytes:
    return pad8(struct.pack("!HH", 1, 4 + len(tlvs)) + tlvs)


def ip4(s: str) -> bytes:
    return ipaddress.IPv4Address(s).packed


def fm13_body(match: bytes, instructions: bytes = b"", command: int = 0) -> bytes:
    """ofp_flow_mod after the header: cookie, cookie_mask, table_id, command, idle, hard, priority,
    buffer_id, out_port, out_group, flags, pad[2], match, instructions."""
    return struct.pack("!QQBBHHHIIIH2x", 0, 0, 0, command, 0, 0, 0x8000, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF,
                       0) + match + instructions


def apply_actions(actions: bytes, itype: int = 4) -> bytes:
    return struct.pack("!HH4x", itype, 8 + len(actions)) + actions


def output13(port: int, max_len: int = 0xFFFF) -> bytes:
    return struct.pack("!HHIH6x", 0, 16, port, max_len)


def set_field13(tlv: bytes) -> bytes:
    return pad8(struct.pack("!HH", 25, len(pad8(bytes(4) + tlv))) + tlv)


def fm13(match_tlvs: bytes, actions: bytes = b"") -> bytes:
    """A 1.3 flow-mod with MATCH_TLVS and an apply-actions of ACTIONS."""
    return hdr(V13, 14, fm13_body(ofp_match(match_tlvs), apply_actions(actions) if actions else b""))


IN_PORT_1 = oxm(0x8000, 0, struct.pack("!I", 1))
ETH_IP = oxm(0x8000, 5, b"\x08\x00")
PROTO_TCP = oxm(0x8000, 10, b"\x06")


# --- known answers --------------------------------------------------------------------------------
def check_kat(wire: bytes, msg) -> None:
    assert decode(wire) == msg
    assert encode(msg) == wire


def test_hello_with_version_bitmap():
    wire = hdr(V13, 0, struct.pack("!HHI", 1, 8, 1 << 1 | 1 << 4), xid=0x1234)
    check_kat(wire, Hello(versions=(1, 4), xid=0x1234))
    check_kat(hdr(V10, 0, b"", xid=1), Hello(version=V10, xid=1))
    # A hello of a version the codec does not speak still decodes (version negotiation).
    assert decode(hdr(6, 0, struct.pack("!HHI", 1, 8, 0x52))) == Hello(versions=(1, 4, 6), version=6)


def test_features_reply():
    body = struct.pack("!QIBB2xII", 0x0000AABBCCDDEEFF, 256, 254, 0, 0x4F, 0)
    check_kat(hdr(V13, 6, body, 7), FeaturesReply(0xAABBCCDDEEFF, 256, 254, 0x4F, xid=7))
    port = struct.pack("!H6s16sIIIIII", 0xFFFE, bytes.fromhex("020000000001"), b"br0", 1, 0, 0, 0, 0, 0)
    body10 = struct.pack("!QIB3xII", 5, 0, 1, 0x87, 0xFFF) + port
    check_kat(hdr(V10, 6, body10), FeaturesReply(5, 0, 1, 0x87, actions=0xFFF, version=V10,
                                                 ports=(Port(A.OFPP_LOCAL, 0x020000000001, "br0", config=1),)))


def test_flow_mod13_oxm_match_apply_actions():
    tlvs = (IN_PORT_1 + ETH_IP + PROTO_TCP + oxm(0x8000, 12, ip4("10.0.0.0"), ip4("255.0.0.0"))
            + oxm(0x8000, 14, struct.pack("!H", 80)))
    acts = set_field13(oxm(0x8000, 3, bytes.fromhex("001122334455"))) + output13(2)
    wire = hdr(V13, 14, fm13_body(ofp_match(tlvs), apply_actions(acts)), xid=9)
    assert len(ofp_match(tlvs)) == 48 and len(wire) == 8 + 40 + 48 + 8 + 16 + 16
    msg = FlowMod(match={"in_port": (1, None), "eth_type": (0x800, None), "ip_proto": (6, None),
                         "ipv4_dst": (0x0A000000, 0xFF000000), "tcp_dst": (80, None)},
                  instructions=(A.ApplyActions((A.SetField("eth_dst", 0x001122334455), A.Output(2))),), xid=9)
    check_kat(wire, msg)


def test_flow_mod10_with_wildcards():
    wc = (C.OFPFW10_ALL & ~(C.OFPFW10_IN_PORT | C.OFPFW10_DL_TYPE | C.OFPFW10_NW_PROTO | C.OFPFW10_TP_DST
                            | C.OFPFW10_NW_DST_MASK)) | 24 << C.OFPFW10_NW_DST_SHIFT
    match = struct.pack("!IH6s6sHBxHBBxxIIHH", wc, 1, bytes(6), bytes(6), 0, 0, 0x800, 0, 6, 0, 0x0A000000, 0, 80)
    assert len(match) == 40
    actions = struct.pack("!HHHH", 0, 8, 2, 0) + struct.pack("!HHH2x", 1, 8, 5) + struct.pack("!HH4x", 3, 8)
    body = match + struct.pack("!QHHHHIHH", 0x55, 0, 10, 20, 100, 0xFFFFFFFF, 0xFFFF, 1) + actions
    msg = FlowMod(match={"in_port": (1, None), "eth_type": (0x800, None), "ip_proto": (6, None),
                         "ipv4_dst": (0x0A000000, 0xFF000000), "tcp_dst": (80, None)},
                  instructions=(A.ApplyActions((A.Output(2, 0), A.SetField("vlan_vid", 0x1005), A.PopVlan())),),
                  cookie=0x55, idle_timeout=10, hard_timeout=20, priority=100, flags=1, version=V10, xid=3)
    check_kat(hdr(V10, 14, body, 3), msg)


def test_packet_out():
    data = bytes(range(60))
    body = struct.pack("!IIH6x", 0xFFFFFFFF, A.OFPP_CONTROLLER, 16) + output13(A.OFPP_FLOOD, 0) + data
    check_kat(hdr(V13, 13, body), PacketOut(in_port=A.OFPP_CONTROLLER, actions=(A.Output(A.OFPP_FLOOD, 0),),
                                            data=data))
    body10 = struct.pack("!IHH", 42, 0xFFF8, 8) + struct.pack("!HHHH", 0, 8, 3, 0) + data
    check_kat(hdr(V10, 13, body10), PacketOut(42, A.OFPP_IN_PORT, (A.Output(3, 0),), data, version=V10))


def test_packet_in():
    data = bytes(range(64))
    body = struct.pack("!IHBBQ", 0xFFFFFFFF, 1500, 1, 2, 0xC0FFEE) + ofp_match(oxm(0x8000, 0, struct.pack("!I", 5)))
    check_kat(hdr(V13, 10, body + bytes(2) + data, 11),
              PacketIn(total_len=1500, reason=1, table_id=2, cookie=0xC0FFEE, match={"in_port": (5, None)}, data=data,
                       xid=11))
    body10 = struct.pack("!IHHBx", 77, 64, 0xFFFE, 0) + data
    check_kat(hdr(V10, 10, body10), PacketIn(77, 64, 0, match={"in_port": (A.OFPP_LOCAL, None)}, data=data,
                                             version=V10))


def test_group_mod_and_meter_mod():
    bucket = struct.pack("!HHII4x", 32, 7, 0xFFFFFFFF, 0xFFFFFFFF) + output13(1)
    check_kat(hdr(V13, 15, struct.pack("!HBxI", 0, 1, 9) + bucket),
              GroupMod(C.OFPGC_ADD, C.OFPGT_SELECT, 9, (Bucket((A.Output(1),), weight=7),)))
    bands = struct.pack("!HHII4x", 1, 16, 1000, 100) + struct.pack("!HHIIB3x", 2, 16, 500, 50, 1)
    check_kat(hdr(V13, 29, struct.pack("!HHI", 0, 5, 3) + bands),
              MeterMod(C.OFPMC_ADD, 5, 3, (MeterBand(1, 1000, 100), MeterBand(2, 500, 50, prec_level=1))))


def test_error_reply():
    bad = hdr(V13, 99, b"x" * 100, xid=0x77)
    with pytest.raises(OFPError) as ei:
        decode(bad)
    assert (ei.value.type, ei.value.code, ei.value.data) == (C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_TYPE, bad[:64])
    assert error_reply(ei.value, 0x77, V13) == hdr(V13, 1, struct.pack("!HH", 1, 1) + bad[:64], 0x77)
    assert decode(error_reply(ei.value)) == Error(1, 1, bad[:64], xid=0x77)
    # 1.0 peers get 1.0 numbering: a match error becomes BAD_REQUEST/EPERM, flow-mod codes move.
    e = OFPError(C.OFPET_BAD_MATCH, C.OFPBMC_BAD_PREREQ, b"abc")
    assert error_reply(e, 1, V10) == hdr(V10, 1, struct.pack("!HH", 1, 5) + b"abc", 1)
    e = OFPError(C.OFPET_FLOW_MOD_FAILED, C.OFPFMFC_BAD_COMMAND)
    assert error_reply(e, 2, V10) == hdr(V10, 1, struct.pack("!HH", 3, 4), 2)
    assert str(OFPError(1, 6)) == "OFPET_BAD_REQUEST/OFPBRC_BAD_LEN (0 bytes of data)"


# --- hypothesis strategies ------------------------------------------------------------------------
u8, u16, u32, u64 = (st.integers(0, (1 << n) - 1) for n in (8, 16, 32, 64))
VALID_RESERVED = [A.OFPP_IN_PORT, A.OFPP_TABLE, A.OFPP_NORMAL, A.OFPP_FLOOD, A.OFPP_ALL, A.OFPP_CONTROLLER,
                  A.OFPP_LOCAL]
out_ports13 = st.one_of(st.integers(1, A.OFPP_MAX - 1), st.sampled_from(VALID_RESERVED))
out_ports10 = st.one_of(st.integers(1, 0xFEFF), st.sampled_from(VALID_RESERVED))
ports10 = st.integers(0, 0xFFFF).map(lambda p: p if p < 0xFF00 else p + 0xFFFF0000)   # any 1.0 port, as 1.3's
OXM_FIELDS = [f for f in F.FIELDS if f.oxm]


def prereqs_hold(match: dict, f: F.Field) -> bool:
    """Independent of the codec: does MATCH satisfy one of F's prerequisite alternatives?"""
    def holds(pf, value, mask):
        if pf.name not in match:
            return False
        v, m = match[pf.name]
        want, have = mask or pf.all_ones, m or pf.all_ones
        return have & want == want and v & want == value & want
    return any(all(holds(*c) for c in alt) for alt in F.prereqs_of(f))


@st.composite
def matches13(draw):
    """A canonical match whose every field has its prerequisites."""
    m = {}
    eth = draw(st.sampled_from([None, 0x800, 0x86DD, 0x806, 0x800, 0x86DD, -1]))
    if eth is not None:
        m["eth_type"] = (eth if eth >= 0 else draw(u16), None)
    if eth in (0x800, 0x86DD) and draw(st.booleans()):
        proto = draw(st.sampled_from([6, 17, 132, 1 if eth == 0x800 else 58, -1]))
        m["ip_proto"] = (proto if proto >= 0 else draw(u8), None)
        if proto == 58 and draw(st.booleans()):
            m["icmpv6_type"], m["icmpv6_code"] = (draw(st.sampled_from([135, 136])), None), (0, None)
    vlan = draw(st.sampled_from(["none", "untagged", "vid", "any"]))
    if vlan != "none":
        m["vlan_vid"] = {"untagged": (0, None), "vid": (0x1000 | draw(st.integers(0, 0xFFF)), None),
                         "any": (0x1000, 0x1000)}[vlan]
    for f in OXM_FIELDS:
        if f.name in m or not prereqs_hold(m, f) or not draw(st.booleans()):
            continue
        value, mask = draw(st.integers(0, f.all_ones)), None
        if f.maskable and draw(st.booleans()):
            mask = draw(st.integers(1, f.all_ones - 1))
            value &= mask
        m[f.name] = (value, mask)
    return m


SET_FIELDS = [f for f in OXM_FIELDS if f.writable]
set_fields13 = st.sampled_from(SET_FIELDS).flatmap(
    lambda f: st.builds(A.SetField, st.just(f.name), st.integers(0, f.all_ones)))
actions13 = st.one_of(
    st.builds(A.Output, out_ports13, u16), st.builds(A.Group, u32), st.builds(A.SetQueue, u32),
    st.builds(A.PushVlan, st.sampled_from([0x8100, 0x88A8])), st.just(A.PopVlan()), st.just(A.DecNwTtl()),
    st.builds(A.SetNwTtl, u8), st.just(A.CopyTtlOut()), st.just(A.CopyTtlIn()), set_fields13)
action_lists13 = st.lists(actions13, max_size=8).map(tuple)


@st.composite
def instructions13(draw):
    kinds = draw(st.lists(st.sampled_from([A.Meter, A.ApplyActions, A.ClearActions, A.WriteActions,
                                           A.WriteMetadata, A.GotoTable]), unique=True))
    make = {A.Meter: lambda: A.Meter(draw(u32)), A.ApplyActions: lambda: A.ApplyActions(draw(action_lists13)),
            A.ClearActions: A.ClearActions, A.WriteActions: lambda: A.WriteActions(draw(action_lists13)),
            A.WriteMetadata: lambda: A.WriteMetadata(draw(u64), draw(u64)),
            A.GotoTable: lambda: A.GotoTable(draw(st.integers(0, 0xFE)))}
    return tuple(make[k]() for k in kinds)


flow_mods13 = st.builds(FlowMod, matches13(), instructions13(), cookie=u64, cookie_mask=u64,
                        table_id=st.integers(0, 0xFF), command=st.integers(0, 4), idle_timeout=u16,
                        hard_timeout=u16, priority=u16, buffer_id=u32, out_port=u32, out_group=u32, flags=u16,
                        xid=u32)


def prefix_masks(bits: int = 32):
    return st.integers(1, bits).map(lambda n: None if n == bits else ((1 << n) - 1) << (bits - n))


@st.composite
def matches10(draw):
    """A match OpenFlow 1.0's ofp_match can express, in canonical form."""
    m = {}
    if draw(st.booleans()):
        m["in_port"] = (draw(ports10), None)
    for name in ("eth_src", "eth_dst"):
        if draw(st.booleans()):
            m[name] = (draw(st.integers(0, (1 << 48) - 1)), None)
    vlan = draw(st.sampled_from(["none", "untagged", "vid", "vid+pcp", "pcp"]))
    if vlan == "untagged":
        m["vlan_vid"] = (0, None)
    elif vlan.startswith("vid"):
        m["vlan_vid"] = (0x1000 | draw(st.integers(0, 0xFFF)), None)
    elif vlan == "pcp":
        m["vlan_vid"] = (0x1000, 0x1000)
    if vlan.endswith("pcp"):
        m["vlan_pcp"] = (draw(st.integers(0, 7)), None)
    eth = draw(st.sampled_from([None, 0x800, 0x806, 0x86DD, -1]))
    if eth is None:
        return m
    m["eth_type"] = (eth if eth >= 0 else draw(u16), None)
    if eth == 0x806:
        for name in ("arp_op", "arp_spa", "arp_tpa"):
            if draw(st.booleans()):
                mask = draw(prefix_masks()) if name != "arp_op" else None
                m[name] = (draw(u8) if name == "arp_op" else draw(u32) & (mask or 0xFFFFFFFF), mask)
    if eth not in (0x800, 0x86DD):
        return m
    if draw(st.booleans()):
        m["ip_dscp"] = (draw(st.integers(0, 63)), None)
    if eth == 0x800:
        for name in ("ipv4_src", "ipv4_dst"):
            if draw(st.booleans()):
                mask = draw(prefix_masks())
                m[name] = (draw(u32) & (mask or 0xFFFFFFFF), mask)
    if draw(st.booleans()):
        proto = draw(st.sampled_from([6, 17, 132, 1 if eth == 0x800 else 58, -1]))
        m["ip_proto"] = (proto if proto >= 0 else draw(u8), None)
        tp = {6: ("tcp_src", "tcp_dst", 16), 17: ("udp_src", "udp_dst", 16), 132: ("sctp_src", "sctp_dst", 16),
              1: ("icmp_type", "icmp_code", 8), 58: ("icmpv6_type", "icmpv6_code", 8)}.get(proto)
        for name in tp[:2] if tp else ():
            if draw(st.booleans()):
                m[name] = (draw(st.integers(0, (1 << tp[2]) - 1)), None)
    return m


def actions10(tp: str = "tcp"):
    sf = st.one_of(
        st.builds(A.SetField, st.just("vlan_vid"), st.integers(0, 0xFFF).map(lambda v: v | 0x1000)),
        st.builds(A.SetField, st.just("vlan_pcp"), st.integers(0, 7)),
        st.builds(A.SetField, st.sampled_from(["eth_src", "eth_dst"]), st.integers(0, (1 << 48) - 1)),
        st.builds(A.SetField, st.sampled_from(["ipv4_src", "ipv4_dst"]), u32),
        st.builds(A.SetField, st.just("ip_dscp"), st.integers(0, 63)),
        st.builds(A.SetField, st.sampled_from([f"{tp}_src", f"{tp}_dst"]), u16))
    one = st.one_of(st.builds(A.Output, out_ports10, u16), st.builds(A.Output, out_ports10), st.just(A.PopVlan()),
                    st.just(A.DecNwTtl()), st.builds(A.SetQueue, u32), sf)
    return st.lists(one, max_size=8).map(tuple)


@st.composite
def flow_mods10(draw):
    match = draw(matches10())
    tp = {17: "udp", 132: "sctp"}.get(match.get("ip_proto", (0,))[0], "tcp")
    acts = draw(actions10(tp))
    return FlowMod(match, (A.ApplyActions(acts),) if acts else (), cookie=draw(u64), command=draw(st.integers(0, 4)),
                   idle_timeout=draw(u16), hard_timeout=draw(u16), priority=draw(u16), buffer_id=draw(u32),
                   out_port=draw(ports10), flags=draw(u16), version=V10, xid=draw(u32))


buckets = st.builds(Bucket, action_lists13, u16, u32, u32)
group_mods = st.builds(GroupMod, st.integers(0, 2), st.integers(0, 3), u32, st.lists(buckets, max_size=5).map(tuple),
                       xid=u32)
meter_bands = st.one_of(
    st.builds(MeterBand, st.just(C.OFPMBT_DROP), u32, u32),
    st.builds(MeterBand, st.just(C.OFPMBT_DSCP_REMARK), u32, u32, prec_level=u8),
    st.builds(MeterBand, st.just(C.OFPMBT_EXPERIMENTER), u32, u32, experimenter=u32,
              data=st.integers(0, 3).flatmap(lambda n: st.binary(min_size=8 * n, max_size=8 * n))))
meter_mods = st.builds(MeterMod, st.integers(0, 2), u16, u32, st.lists(meter_bands, max_size=5).map(tuple), xid=u32)
packet_data = st.binary(max_size=300)
packet_ins13 = st.builds(PacketIn, u32, u16, u8, u8, u64, matches13(), packet_data, xid=u32)
packet_ins10 = st.builds(PacketIn, u32, u16, u8, match=ports10.map(lambda p: {"in_port": (p, None)}),
                         data=packet_data, version=st.just(V10), xid=u32)
packet_outs13 = st.builds(PacketOut, u32, u32, action_lists13, packet_data, xid=u32)
packet_outs10 = st.builds(PacketOut, u32, ports10, actions10(), packet_data, version=st.just(V10), xid=u32)


def roundtrip(msg) -> bytes:
    wire = encode(msg)
    assert decode(wire) == msg
    assert encode(decode(wire)) == wire
    return wire


@MANY
@given(flow_mods13)
def test_roundtrip_flow_mod13(msg):
    roundtrip(msg)


@MANY
@given(flow_mods10())
def test_roundtrip_flow_mod10(msg):
    roundtrip(msg)


@MANY
@given(group_mods)
def test_roundtrip_group_mod(msg):
    roundtrip(msg)


@MANY
@given(meter_mods)
def test_roundtrip_meter_mod(msg):
    roundtrip(msg)


@MANY
@given(st.one_of(packet_ins13, packet_ins10))
def test_roundtrip_packet_in(msg):
    roundtrip(msg)


@MANY
@given(st.one_of(packet_outs13, packet_outs10))
def test_roundtrip_packet_out(msg):
    roundtrip(msg)


# One of every other message (and multipart body), both versions where 1.0 has it.
def _examples():
    mp = [(C.OFPMP_DESC, None, DescStats("mfr", "hw", "sw", "serial", "dp")),
          (C.OFPMP_FLOW, FlowStatsRequest({"eth_type": (0x800, None)}, 1, 2),
           (FlowStats(1, 2, 3, 4, 5, 6, 0, 7, 8, 9, {"eth_type": (0x800, None)},
                      (A.ApplyActions((A.Output(1, 0),)),)),)),
          (C.OFPMP_AGGREGATE, FlowStatsRequest(), AggregateStats(1, 2, 3)),
          (C.OFPMP_TABLE, None, (TableStats(0, 1, 2, 3), TableStats(1))),
          (C.OFPMP_PORT_STATS, PortStatsRequest(3), (PortStats(1, *range(12)),)),
          (C.OFPMP_QUEUE, QueueStatsRequest(1, 2), (QueueStats(1, 2, 3, 4, 5),)),
          (C.OFPMP_EXPERIMENTER, ExperimenterBody(0x1234, 5, b"abcd"), ExperimenterBody(0x1234, 6, b"efgh"))]
    mp13 = [(C.OFPMP_GROUP, GroupStatsRequest(1), (GroupStats(1, 2, 3, 4, 5, 6, ((1, 2), (3, 4))),)),
            (C.OFPMP_GROUP_DESC, None, (GroupDesc(1, 2, (Bucket((A.Output(1),), 1),)),)),
            (C.OFPMP_GROUP_FEATURES, None, GroupFeatures(15, 7, (1, 2, 3, 4), (5, 6, 7, 8))),
            (C.OFPMP_METER, MeterStatsRequest(1), (MeterStats(1, 2, 3, 4, 5, 6, ((7, 8),)),)),
            (C.OFPMP_METER_CONFIG, MeterStatsRequest(), (MeterConfig(1, 2, (MeterBand(1, 10, 20),)),)),
            (C.OFPMP_METER_FEATURES, None, MeterFeatures(100, 6, 15, 2, 0)),
            (C.OFPMP_TABLE_FEATURES, (), (TableFeatures(0, "t0", 1, 2, 3, 4, struct.pack("!HH4x", 0, 4)),)),
            (C.OFPMP_PORT_DESC, None, (Port(1, 2, "p1", curr_speed=10**7),))]
    out = [
        Hello(), Error(1, 6, b"oops"), EchoRequest(b"ping"), EchoReply(b"pong"), Experimenter(0x1234, 1, b"xyz"),
        FeaturesRequest(), GetConfigRequest(), GetConfigReply(1, 128), SetConfig(0, 0xFFFF), BarrierRequest(),
        BarrierReply(), QueueGetConfigRequest(1),
        FlowRemoved(1, 2, 3, 0, 5, 6, 7, 0, 9, 10, {"in_port": (1, None), "eth_type": (0x806, None)}),
        PortStatus(C.OFPPR_MODIFY, Port(5, 0x0A0B0C0D0E0F, "eth5", 1, 2, 3, 4, 5, 6)),
        PortMod(1, 0x020000000001, 1, 1, 0),
        QueueGetConfigReply(1, (PacketQueue(7, properties=struct.pack("!HH4xH6x", 1, 16, 100)),)),
    ]
    out10 = [Hello(version=V10), *(type(m)(**{**m.__dict__, "version": V10}) for m in out[1:])]
    out13 = [*out, Hello(versions=(1, 4)),
             FeaturesReply(1, 2, 3, 4, auxiliary_id=1), TableMod(1, 3), RoleRequest(2, 7), RoleReply(3, 8),
             GetAsyncRequest(), GetAsyncReply((1, 2), (3, 4), (5, 6)), SetAsync((7, 0), (0, 7), (1, 1)),
             FlowRemoved(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, {"metadata": (1, 3)}),
             QueueGetConfigReply(1, (PacketQueue(7, 1, struct.pack("!HH4xH6x", 2, 16, 500)),)),
             FeaturesReply(1, 2, 3, 4, actions=0, version=V10, ports=(Port(1), Port(A.OFPP_LOCAL)))]
    for t, req, rep in mp:
        for v in (V10, V13):
            out13 += [MultipartRequest(t, 0, req, version=v), MultipartReply(t, 1, rep, version=v)]
    for t, req, rep in mp13:
        out13 += [MultipartRequest(t, 1, req), MultipartReply(t, 0, rep)]
    return out10 + out13


EXAMPLES = _examples()


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: f"{type(m).__name__}-v{m.version}")
def test_roundtrip_examples(msg):
    roundtrip(msg)


# --- fuzzing --------------------------------------------------------------------------------------
def decode_or_ofperror(data: bytes) -> None:
    """decode(DATA) either succeeds or raises OFPError carrying DATA's first 64 bytes."""
    try:
        decode(data)
    except OFPError as e:
        assert e.data == data[:64]
        assert C.error_name(e.type, e.code)
        error_reply(e)


any_message = st.one_of(flow_mods13, flow_mods10(), group_mods, meter_mods, packet_ins13, packet_ins10,
                        packet_outs13, packet_outs10, st.sampled_from(EXAMPLES))


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data):
    decode_or_ofperror(data)


@FUZZ
@given(st.sampled_from([V10, V13, 2, 6]), st.integers(0, 31), st.binary(max_size=200), u32)
def test_fuzz_random_bodies(version, type_, body, xid):
    decode_or_ofperror(hdr(version, type_, body, xid))


@FUZZ
@given(any_message, st.data())
def test_fuzz_truncated(msg, data):
    wire = encode(msg)
    n = data.draw(st.integers(0, len(wire)))
    cut = bytearray(wire[:n])
    if n >= 4 and data.draw(st.booleans()):
        cut[2:4] = struct.pack("!H", n)          # keep the header consistent: reach the body parsers
    decode_or_ofperror(bytes(cut))


@FUZZ
@given(any_message, st.data())
def test_fuzz_bit_flips(msg, data):
    wire = bytearray(encode(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(4 if data.draw(st.booleans()) else 0, len(wire) - 1))
        wire[pos] ^= 1 << data.draw(st.integers(0, 7))
    decode_or_ofperror(bytes(wire))


@MANY
@given(st.lists(any_message, min_size=1, max_size=5), st.data())
def test_split_messages_reassembles_a_stream(msgs, data):
    stream = b"".join(encode(m) for m in msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    got, rest = [], b""
    for a, b in zip([0, *cuts], [*cuts, len(stream)]):
        done, rest = split_messages(rest + stream[a:b])
        got += done
    assert rest == b"" and [decode(m) for m in got] == msgs


def test_split_messages_framing_error():
    ok = encode(BarrierRequest())
    assert split_messages(ok + ok[:5]) == ([ok], ok[:5])
    assert split_messages(b"") == ([], b"")
    for n in range(8):
        with pytest.raises(FramingError):
            split_messages(ok + struct.pack("!BBHI", 4, 0, n, 0))


# --- malformed input -> (type, code) --------------------------------------------------------------
BAD = [
    # header
    ("short", b"\x04\x00\x00", C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_LEN),
    ("version 2", hdr(2, 5, b""), C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_VERSION),
    ("length mismatch", hdr(V13, 5, b"")[:2] + b"\x00\x09" + hdr(V13, 5, b"")[4:], C.OFPET_BAD_REQUEST,
     C.OFPBRC_BAD_LEN),
    ("body on features request", hdr(V13, 5, b"\0" * 8), C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_LEN),
    ("short set-config", hdr(V13, 9, b"\0"), C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_LEN),
    ("unknown type 1.3", hdr(V13, 30, b""), C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_TYPE),
    ("unknown type 1.0", hdr(V10, 22, b""), C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_TYPE),
    ("group-mod in 1.0", hdr(V10, 29, b""), C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_TYPE),
    ("unknown multipart", hdr(V13, 18, struct.pack("!HH4x", 14, 0)), C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_MULTIPART),
    ("1.0 has no group stats", hdr(V10, 16, struct.pack("!HH", 6, 0) + bytes(8)), C.OFPET_BAD_REQUEST,
     C.OFPBRC_BAD_MULTIPART),
    ("multipart body too short", hdr(V13, 18, struct.pack("!HH4x", 4, 0) + bytes(4)), C.OFPET_BAD_REQUEST,
     C.OFPBRC_BAD_LEN),
    ("packet-out actions_len past the end", hdr(V13, 13, struct.pack("!IIH6x", 0, 1, 16)), C.OFPET_BAD_REQUEST,
     C.OFPBRC_BAD_LEN),
    # match
    ("standard match", hdr(V13, 14, fm13_body(struct.pack("!HH4x", 0, 8))), C.OFPET_BAD_MATCH, C.OFPBMC_BAD_TYPE),
    ("match past the end", hdr(V13, 14, fm13_body(struct.pack("!HH4x", 1, 64))), C.OFPET_BAD_MATCH,
     C.OFPBMC_BAD_LEN),
    ("in_phy_port", fm13(oxm(0x8000, 1, bytes(4))), C.OFPET_BAD_MATCH, C.OFPBMC_BAD_FIELD),
    ("unknown class", fm13(oxm(0x0003, 1, bytes(4))), C.OFPET_BAD_MATCH, C.OFPBMC_BAD_FIELD),
    ("experimenter OXM", fm13(oxm(0xFFFF, 1, bytes(8))), C.OFPET_BAD_MATCH, C.OFPBMC_BAD_FIELD),
    ("OXM length", fm13(oxm(0x8000, 0, bytes(3))), C.OFPET_BAD_MATCH, C.OFPBMC_BAD_LEN),
    ("OXM past the match", fm13(IN_PORT_1[:6]), C.OFPET_BAD_MATCH, C.OFPBMC_BAD_LEN),
    ("tcp_dst without ip_proto", fm13(ETH_IP + oxm(0x8000, 14, b"\0\x50")), C.OFPET_BAD_MATCH,
     C.OFPBMC_BAD_PREREQ),
    ("tcp_dst without eth_type", fm13(PROTO_TCP + oxm(0x8000, 14, b"\0\x50")), C.OFPET_BAD_MATCH,
     C.OFPBMC_BAD_PREREQ),
    ("tcp_dst with udp", fm13(ETH_IP + oxm(0x8000, 10, b"\x11") + oxm(0x8000, 14, b"\0\x50")),
     C.OFPET_BAD_MATCH, C.OFPBMC_BAD_PREREQ),
    ("ipv4 on ipv6", fm13(oxm(0x8000, 5, b"\x86\xdd") + oxm(0x8000, 11, bytes(4))), C.OFPET_BAD_MATCH,
     C.OFPBMC_BAD_PREREQ),
    ("vlan_pcp untagged", fm13(oxm(0x8000, 6, b"\0\0") + oxm(0x8000, 7, b"\x03")), C.OFPET_BAD_MATCH,
     C.OFPBMC_BAD_PREREQ),
    ("nw_ttl (NXM) without ip", fm13(oxm(0x0001, 29, b"\x40")), C.OFPET_BAD_MATCH, C.OFPBMC_BAD_PREREQ),
    ("masked eth_type", fm13(oxm(0x8000, 5, b"\x08\x00", b"\xff\x00")), C.OFPET_BAD_MATCH, C.OFPBMC_BAD_MASK),
    ("value outside mask", fm13(oxm(0x8000, 3, b"\xff" * 6, b"\xff\xff\xff\0\0\0")), C.OFPET_BAD_MATCH,
     C.OFPBMC_BAD_WILDCARDS),
    ("vlan_pcp 8", fm13(oxm(0x8000, 6, b"\x10\x00") + oxm(0x8000, 7, b"\x08")), C.OFPET_BAD_MATCH,
     C.OFPBMC_BAD_VALUE),
    ("vlan_vid mask too wide", fm13(oxm(0x8000, 6, b"\x10\x00", b"\xf0\x00")), C.OFPET_BAD_MATCH,
     C.OFPBMC_BAD_MASK),
    ("duplicate field", fm13(IN_PORT_1 + IN_PORT_1), C.OFPET_BAD_MATCH, C.OFPBMC_DUP_FIELD),
    # actions
    ("unknown action", fm13(IN_PORT_1, struct.pack("!HH4x", 99, 8)), C.OFPET_BAD_ACTION, C.OFPBAC_BAD_TYPE),
    ("pbb action", fm13(IN_PORT_1, struct.pack("!HH4x", C.OFPAT_PUSH_PBB, 8)), C.OFPET_BAD_ACTION,
     C.OFPBAC_BAD_TYPE),
    ("action len 0", fm13(IN_PORT_1, struct.pack("!HH4x", 0, 0)), C.OFPET_BAD_ACTION, C.OFPBAC_BAD_LEN),
    ("action len 12", fm13(IN_PORT_1, struct.pack("!HH12x", 0, 12)), C.OFPET_BAD_ACTION, C.OFPBAC_BAD_LEN),
    ("output len 8", fm13(IN_PORT_1, struct.pack("!HHI", 0, 8, 1)), C.OFPET_BAD_ACTION, C.OFPBAC_BAD_LEN),
    ("action past the end", fm13(IN_PORT_1, struct.pack("!HH4x", 0, 16)), C.OFPET_BAD_ACTION, C.OFPBAC_BAD_LEN),
    ("output to port 0", fm13(IN_PORT_1, output13(0)), C.OFPET_BAD_ACTION, C.OFPBAC_BAD_OUT_PORT),
    ("output to ANY", fm13(IN_PORT_1, output13(A.OFPP_ANY)), C.OFPET_BAD_ACTION, C.OFPBAC_BAD_OUT_PORT),
    ("push_vlan 0x800", fm13(IN_PORT_1, struct.pack("!HHH2x", 17, 8, 0x800)), C.OFPET_BAD_ACTION,
     C.OFPBAC_BAD_ARGUMENT),
    ("experimenter action", fm13(IN_PORT_1, struct.pack("!HHIH6x", 0xFFFF, 16, 0x1234, 1)), C.OFPET_BAD_ACTION,
     C.OFPBAC_BAD_EXPERIMENTER),
    ("Nicira action too short", fm13(IN_PORT_1, struct.pack("!HHI", 0xFFFF, 8, 0x2320)), C.OFPET_BAD_ACTION,
     C.OFPBAC_BAD_LEN),
    ("set_field eth_type", fm13(IN_PORT_1, set_field13(oxm(0x8000, 5, b"\x08\x00"))), C.OFPET_BAD_ACTION,
     C.OFPBAC_BAD_SET_TYPE),
    ("set_field unknown", fm13(IN_PORT_1, set_field13(oxm(0x8000, 1, bytes(4)))), C.OFPET_BAD_ACTION,
     C.OFPBAC_BAD_SET_TYPE),
    ("set_field masked", fm13(IN_PORT_1, set_field13(oxm(0x8000, 3, bytes(6), b"\xff" * 6))), C.OFPET_BAD_ACTION,
     C.OFPBAC_BAD_SET_ARGUMENT),
    ("set_field bad value", fm13(IN_PORT_1, set_field13(oxm(0x8000, 7, b"\x09"))), C.OFPET_BAD_ACTION,
     C.OFPBAC_BAD_SET_ARGUMENT),
    ("set_field OXM past the action", fm13(IN_PORT_1, struct.pack("!HH", 25, 8) + oxm(0x8000, 3, bytes(6))[:4]),
     C.OFPET_BAD_ACTION, C.OFPBAC_BAD_SET_LEN),
    ("set_field padded too far", fm13(IN_PORT_1, struct.pack("!HH", 25, 24) + oxm(0x8000, 3, bytes(6)) + bytes(10)),
     C.OFPET_BAD_ACTION, C.OFPBAC_BAD_SET_LEN),
    # instructions
    ("unknown instruction", hdr(V13, 14, fm13_body(ofp_match(b""), struct.pack("!HH4x", 7, 8))),
     C.OFPET_BAD_INSTRUCTION, C.OFPBIC_UNKNOWN_INST),
    ("instruction len", hdr(V13, 14, fm13_body(ofp_match(b""), struct.pack("!HHB3x", 1, 12, 1) + bytes(4))),
     C.OFPET_BAD_INSTRUCTION, C.OFPBIC_BAD_LEN),
    ("goto len 16", hdr(V13, 14, fm13_body(ofp_match(b""), struct.pack("!HHB11x", 1, 16, 1))),
     C.OFPET_BAD_INSTRUCTION, C.OFPBIC_BAD_LEN),
    ("goto table 255", hdr(V13, 14, fm13_body(ofp_match(b""), struct.pack("!HHB3x", 1, 8, 255))),
     C.OFPET_BAD_INSTRUCTION, C.OFPBIC_BAD_TABLE_ID),
    ("two apply-actions", hdr(V13, 14, fm13_body(ofp_match(b""), apply_actions(b"") * 2)),
     C.OFPET_BAD_INSTRUCTION, C.OFPBIC_UNSUP_INST),
    ("experimenter instruction", hdr(V13, 14, fm13_body(ofp_match(b""), struct.pack("!HHI", 0xFFFF, 8, 1))),
     C.OFPET_BAD_INSTRUCTION, C.OFPBIC_BAD_EXPERIMENTER),
    # mods
    ("flow-mod command 5", hdr(V13, 14, fm13_body(ofp_match(b""), command=5)), C.OFPET_FLOW_MOD_FAILED,
     C.OFPFMFC_BAD_COMMAND),
    ("group type 4", hdr(V13, 15, struct.pack("!HBxI", 0, 4, 1)), C.OFPET_GROUP_MOD_FAILED, C.OFPGMFC_BAD_TYPE),
    ("group command 3", hdr(V13, 15, struct.pack("!HBxI", 3, 0, 1)), C.OFPET_GROUP_MOD_FAILED,
     C.OFPGMFC_BAD_COMMAND),
    ("bucket len past the end", hdr(V13, 15, struct.pack("!HBxI", 0, 0, 1) + struct.pack("!HHII4x", 40, 0, 0, 0)),
     C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_LEN),
    ("meter band type 3", hdr(V13, 29, struct.pack("!HHI", 0, 0, 1) + struct.pack("!HHII4x", 3, 16, 1, 1)),
     C.OFPET_METER_MOD_FAILED, C.OFPMMFC_BAD_BAND),
    ("meter band len 8", hdr(V13, 29, struct.pack("!HHI", 0, 0, 1) + struct.pack("!HHI", 1, 8, 1)),
     C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_LEN),
    ("meter command 3", hdr(V13, 29, struct.pack("!HHI", 3, 0, 1)), C.OFPET_METER_MOD_FAILED,
     C.OFPMMFC_BAD_COMMAND),
    # OpenFlow 1.0 actions
    ("1.0 set_vlan_vid 0x1000", hdr(V10, 13, struct.pack("!IHH", 0, 1, 8) + struct.pack("!HHH2x", 1, 8, 0x1000)),
     C.OFPET_BAD_ACTION, C.OFPBAC_BAD_ARGUMENT),
    ("1.0 set_nw_tos ECN bits", hdr(V10, 13, struct.pack("!IHH", 0, 1, 8) + struct.pack("!HHB3x", 8, 8, 3)),
     C.OFPET_BAD_ACTION, C.OFPBAC_BAD_ARGUMENT),
    ("1.0 action type 12", hdr(V10, 13, struct.pack("!IHH", 0, 1, 8) + struct.pack("!HH4x", 12, 8)),
     C.OFPET_BAD_ACTION, C.OFPBAC_BAD_TYPE),
    ("1.0 output len 16", hdr(V10, 13, struct.pack("!IHH", 0, 1, 16) + struct.pack("!HHHH8x", 0, 16, 1, 0)),
     C.OFPET_BAD_ACTION, C.OFPBAC_BAD_LEN),
    ("1.0 vendor action", hdr(V10, 13, struct.pack("!IHH", 0, 1, 16) + struct.pack("!HHIH6x", 0xFFFF, 16, 1, 18)),
     C.OFPET_BAD_ACTION, C.OFPBAC_BAD_EXPERIMENTER),
    ("1.0 unknown Nicira action", hdr(V10, 13, struct.pack("!IHH", 0, 1, 16)
                                      + struct.pack("!HHIH6x", 0xFFFF, 16, 0x2320, 99)),
     C.OFPET_BAD_ACTION, C.OFPBAC_BAD_EXP_TYPE),
]


@pytest.mark.parametrize("wire,type_,code", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_malformed(wire, type_, code):
    with pytest.raises(OFPError) as ei:
        decode(wire)
    e = ei.value
    assert (C.error_name(e.type, e.code), e.data) == (C.error_name(type_, code), wire[:64])
    if len(wire) >= 8:
        assert e.xid == struct.unpack_from("!I", wire, 4)[0]


def test_of10_match_semantics():
    """1.0 members that their dl_type/nw_proto make meaningless are ignored, as 1.0 switches do."""
    def m10(wc, dl_type=0, proto=0, nw_src=0, tp_src=0, dl_vlan=0, pcp=0):
        return struct.pack("!IH6s6sHBxHBBxxIIHH", wc, 0, bytes(6), bytes(6), dl_vlan, pcp, dl_type, 0, proto,
                           nw_src, 0, tp_src, 0)

    def decode_match(raw):
        wire = hdr(V10, 14, raw + struct.pack("!QHHHHIHH", 0, 0, 0, 0, 0, 0, 0xFFFF, 0))
        return decode(wire).match
    all_but = C.OFPFW10_ALL
    # tp_src on a non-IP packet; nw_src on ARP is arp_spa; icmp type from tp_src.
    assert decode_match(m10(all_but & ~(C.OFPFW10_DL_TYPE | C.OFPFW10_TP_SRC), 0x88CC, tp_src=5)) == {
        "eth_type": (0x88CC, None)}
    assert decode_match(m10(all_but & ~(C.OFPFW10_DL_TYPE | C.OFPFW10_NW_SRC_MASK), 0x806, nw_src=0x01020304)) == {
        "eth_type": (0x806, None), "arp_spa": (0x01020304, None)}
    assert decode_match(m10(all_but & ~(C.OFPFW10_DL_TYPE | C.OFPFW10_NW_PROTO | C.OFPFW10_TP_SRC), 0x800, 1,
                            tp_src=8)) == {"eth_type": (0x800, None), "ip_proto": (1, None), "icmp_type": (8, None)}
    # nw_src wildcard bits: 32..63 mean all; values outside the prefix are dropped.
    wc = (all_but & ~(C.OFPFW10_DL_TYPE | C.OFPFW10_NW_SRC_MASK)) | 40 << C.OFPFW10_NW_SRC_SHIFT
    assert decode_match(m10(wc, 0x800, nw_src=0x01020304)) == {"eth_type": (0x800, None)}
    wc = (all_but & ~(C.OFPFW10_DL_TYPE | C.OFPFW10_NW_SRC_MASK)) | 24 << C.OFPFW10_NW_SRC_SHIFT
    assert decode_match(m10(wc, 0x800, nw_src=0x01020304)) == {"eth_type": (0x800, None),
                                                               "ipv4_src": (0x01000000, 0xFF000000)}
    # dl_vlan 0xffff: untagged (pcp ignored); pcp alone: any tag with that pcp.
    assert decode_match(m10(all_but & ~(C.OFPFW10_DL_VLAN | C.OFPFW10_DL_VLAN_PCP), dl_vlan=0xFFFF, pcp=3)) == {
        "vlan_vid": (0, None)}
    assert decode_match(m10(all_but & ~C.OFPFW10_DL_VLAN_PCP, pcp=3)) == {
        "vlan_vid": (0x1000, 0x1000), "vlan_pcp": (3, None)}


def test_encode_rejects_what_the_version_cannot_express():
    with pytest.raises(ValueError):
        encode(FlowMod({"ipv6_src": (1, None), "eth_type": (0x86DD, None)}, version=V10))
    with pytest.raises(ValueError):
        encode(FlowMod({"eth_type": (0x800, None), "ipv4_src": (0x01000000, 0x0F000000)}, version=V10))
    with pytest.raises(ValueError):
        encode(FlowMod(instructions=(A.ApplyActions((A.Group(1),)),), version=V10))
    with pytest.raises(ValueError):
        encode(GroupMod(version=V10))
    with pytest.raises(ValueError):
        encode(PacketOut(actions=(A.Output(0xFFFF0000),), version=V10))


# --- Open vSwitch as a second opinion -------------------------------------------------------------
OFP_PRINT = [
    (Hello(versions=(1, 4)), "version bitmap: 0x01, 0x04"),
    (FlowMod({"in_port": (1, None), "eth_type": (0x800, None), "ip_proto": (6, None),
              "ipv4_dst": (0x0A000000, 0xFF000000), "tcp_dst": (80, None)},
             (A.ApplyActions((A.SetField("eth_dst", 0x001122334455), A.Output(2))),), priority=7),
     "ADD priority=7,tcp,in_port=1,nw_dst=10.0.0.0/8,tp_dst=80 actions=set_field:00:11:22:33:44:55->eth_dst,output:2"),
    (FlowMod({"eth_type": (0x800, None), "ip_proto": (17, None), "vlan_vid": (0x1005, None), "udp_src": (5, None)},
             (A.ApplyActions((A.SetField("udp_dst", 7), A.SetQueue(3), A.Output(1), A.PopVlan(), A.DecNwTtl(),
                              A.SetField("ip_dscp", 3))),), version=V10),
     "ADD udp,dl_vlan=5,tp_src=5 actions=mod_tp_dst:7,enqueue:1:3,strip_vlan,dec_ttl,mod_nw_tos:12"),
    (FlowMod({"eth_type": (0x86DD, None), "ipv6_label": (0x12345, 0xFFF45), "ip_frag": (1, 1), "nw_ttl": (3, None)},
             (A.Meter(3), A.ApplyActions((A.PushVlan(), A.SetField("vlan_vid", 0x1005), A.Group(3))),
              A.WriteMetadata(1, 3), A.GotoTable(3)), command=C.OFPFC_MODIFY),
     "MOD ipv6,ipv6_label=0x12345/0xfff45,nw_ttl=3,nw_frag=yes actions=meter:3,push_vlan:0x8100,"
     "set_field:4101->vlan_vid,group:3,write_metadata:0x1/0x3,goto_table:3"),
    (GroupMod(C.OFPGC_ADD, C.OFPGT_SELECT, 5, (Bucket((A.Output(1),), 3), Bucket((A.Output(2),), 4))),
     "ADD group_id=5,type=select,bucket=weight:3,actions=output:1,bucket=weight:4,actions=output:2"),
    (MeterMod(C.OFPMC_ADD, C.OFPMF_KBPS | C.OFPMF_BURST, 1, (MeterBand(1, 1000, 100),)),
     "ADD meter=1 kbps burst bands=\ntype=drop rate=1000 burst_size=100"),
    (PacketIn(7, 60, 1, 3, 9, {"in_port": (3, None)}, bytes(60)), "table_id=3 cookie=0x9 total_len=60 in_port=3"),
    (PacketOut(in_port=A.OFPP_CONTROLLER, actions=(A.Output(A.OFPP_FLOOD),), data=bytes(14), version=V10),
     "in_port=CONTROLLER actions=FLOOD data_len=14"),
    (MultipartReply(C.OFPMP_FLOW, body=(FlowStats(match={"eth_type": (0x800, None)}, packet_count=3,
                                                  instructions=(A.GotoTable(1),)),)),
     "n_packets=3, n_bytes=0, ip actions=goto_table:1"),
    (MultipartReply(C.OFPMP_PORT_STATS, body=(PortStats(1, 1, 2, 3, 4),), version=V10), "rx pkts=1, bytes=3"),
    (MultipartReply(C.OFPMP_METER, body=(MeterStats(1, 2, 3, 4, 5, 6, ((1, 2),)),)), "meter:1 flow_count:2"),
    (PortStatus(C.OFPPR_ADD, Port(1, 0x0A0B0C0D0E0F, "eth0", curr=C.OFPPF_10GB_FD)), "1(eth0): addr:0a:0b:0c:0d:0e:0f"),
    (RoleRequest(C.OFPCR_ROLE_MASTER, 7), "role=primary generation_id=7"),
    (SetAsync((1, 2), (3, 4), (5, 6)), "PACKET_IN: no_match"),
    (QueueGetConfigReply(1, (PacketQueue(1, properties=struct.pack("!HH4xH6x", 1, 16, 100)),), version=V10),
     "queue 1: min_rate:10.0%"),
]


@needs_ofctl
@pytest.mark.parametrize("msg,expect", OFP_PRINT, ids=lambda x: type(x).__name__ if not isinstance(x, str) else "")
def test_ovs_ofp_print_reads_our_bytes(msg, expect):
    out = subprocess.run([OFCTL, "ofp-print", encode(msg).hex()], capture_output=True, text=True, timeout=10)
    assert "error" not in out.stdout.lower() and out.returncode == 0, out.stdout + out.stderr
    assert expect in out.stdout, out.stdout


def ofctl_session(*args: str, replies=None, timeout: float = 10.0):
    """Run ovs-ofctl ARGS against a fake switch on a unix socket (``SW`` in ARGS is its address)
    built from this codec: it answers hello, echo and barrier, and multipart requests from
    REPLIES {multipart type: body} (KeyError for others).  Returns (messages received, ovs-ofctl's
    stdout)."""
    replies = replies or {}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "sw.sock")
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(path)
        srv.listen(1)
        srv.settimeout(timeout)
        proc = subprocess.Popen([OFCTL, "--no-names", *(a.replace("SW", f"unix:{path}") for a in args)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        got, buf = [], b""
        try:
            conn, _ = srv.accept()
            conn.settimeout(timeout)
            with conn:
                while data := conn.recv(65536):
                    msgs, buf = split_messages(buf + data)
                    for raw in msgs:
                        m = decode(raw)
                        got.append(m)
                        v, x = m.version, m.xid
                        reply = {Hello: lambda: Hello(version=v, xid=x),
                                 EchoRequest: lambda: EchoReply(m.data, version=v, xid=x),
                                 BarrierRequest: lambda: BarrierReply(version=v, xid=x),
                                 MultipartRequest: lambda: MultipartReply(m.type, 0, replies[m.type], version=v,
                                                                          xid=x)}.get(type(m))
                        if reply:
                            conn.sendall(encode(reply()))
            out, err = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            srv.close()
    assert proc.returncode == 0, err
    return got, out


@needs_ofctl
def test_ovs_ofctl_openflow10_default():
    got, _ = ofctl_session("add-flow", "SW", "in_port=1,ip,nw_dst=10.0.0.0/8,"
                           "actions=mod_vlan_vid:5,mod_nw_tos:16,enqueue:3:7,strip_vlan,dec_ttl,normal")
    assert [type(m) for m in got] == [Hello, FlowMod, BarrierRequest] and got[0].version == V10
    assert got[1] == FlowMod(
        {"in_port": (1, None), "eth_type": (0x800, None), "ipv4_dst": (0x0A000000, 0xFF000000)},
        (A.ApplyActions((A.SetField("vlan_vid", 0x1005), A.SetField("ip_dscp", 4), A.SetQueue(7), A.Output(3),
                         A.PopVlan(), A.DecNwTtl(), A.Output(A.OFPP_NORMAL, 0))),),
        command=C.OFPFC_ADD, version=V10, xid=got[1].xid)
    got, _ = ofctl_session("del-flows", "SW", "udp,nw_src=192.168.0.0/16,tp_dst=53,dl_vlan=7,dl_vlan_pcp=2")
    fm = got[1]
    assert (fm.command, fm.out_port, fm.instructions) == (C.OFPFC_DELETE, A.OFPP_ANY, ())
    assert fm.match == {"eth_type": (0x800, None), "ip_proto": (17, None), "ipv4_src": (0xC0A80000, 0xFFFF0000),
                        "udp_dst": (53, None), "vlan_vid": (0x1007, None), "vlan_pcp": (2, None)}
    got, _ = ofctl_session("packet-out", "SW", "in_port=1 packet=ffffffffffff00000000000108004500 "
                           "actions=output:2,mod_dl_src:00:00:00:00:00:09")
    assert got[1] == PacketOut(C.OFP_NO_BUFFER, 1,
                               (A.Output(2, 0), A.SetField("eth_src", 9)),
                               bytes.fromhex("ffffffffffff00000000000108004500"), version=V10, xid=got[1].xid)


@needs_ofctl
def test_ovs_ofctl_openflow13():
    got, _ = ofctl_session("-O", "OpenFlow13", "add-flow", "SW",
                           "table=1,priority=5,cookie=0x42,tcp,nw_src=1.2.3.4,"
                           "actions=meter:2,set_field:00:11:22:33:44:55->eth_dst,push_vlan:0x8100,"
                           "set_field:4101->vlan_vid,group:3,goto_table:2")
    assert [type(m) for m in got] == [Hello, FlowMod, BarrierRequest] and got[0].versions == (4,)
    fm = got[1]
    assert (fm.table_id, fm.priority, fm.cookie, fm.version) == (1, 5, 0x42, V13)
    assert fm.match["ipv4_src"] == (0x01020304, None) and fm.match["ip_proto"] == (6, None)
    assert fm.instructions == (A.Meter(2), A.ApplyActions((A.SetField("eth_dst", 0x001122334455), A.PushVlan(),
                                                           A.SetField("vlan_vid", 0x1005), A.Group(3))),
                               A.GotoTable(2))
    got, _ = ofctl_session("-O", "OpenFlow13", "add-group", "SW",
                           "group_id=1,type=select,bucket=weight:5,output:1,bucket=weight:3,output:2")
    assert got[1] == GroupMod(C.OFPGC_ADD, C.OFPGT_SELECT, 1, (Bucket((A.Output(1, 0),), 5),
                                                               Bucket((A.Output(2, 0),), 3)), xid=got[1].xid)
    got, _ = ofctl_session("-O", "OpenFlow13", "add-meter", "SW",
                           "meter=1,kbps,burst,band=type=drop,rate=1000,burst_size=100")
    assert got[1] == MeterMod(C.OFPMC_ADD, C.OFPMF_KBPS | C.OFPMF_BURST, 1, (MeterBand(1, 1000, 100),),
                              xid=got[1].xid)


@needs_ofctl
@pytest.mark.parametrize("proto", ["OpenFlow10", "OpenFlow13"])
def test_ovs_ofctl_reads_our_replies(proto):
    """ovs-ofctl dump-flows / dump-desc print what our encoder answered (-F OpenFlow10: 1.0's own
    flow stats rather than Nicira's)."""
    flows = (FlowStats(0, 5, 0, 100, 10, 0, 0, 0x42, 7, 700, {"eth_type": (0x800, None), "ip_proto": (6, None),
                                                              "tcp_dst": (80, None)},
                       (A.ApplyActions((A.Output(2, 0),)),)),)
    fmt = ["-F", "OpenFlow10"] if proto == "OpenFlow10" else []
    got, out = ofctl_session("-O", proto, *fmt, "dump-flows", "SW", replies={C.OFPMP_FLOW: flows})
    assert isinstance(got[1], MultipartRequest) and got[1].type == C.OFPMP_FLOW
    assert got[1].body.table_id == C.OFPTT_ALL and got[1].body.match == {}
    assert ("cookie=0x42, duration=5s, table=0, n_packets=7, n_bytes=700, idle_timeout=10, priority=100,"
            "tcp,tp_dst=80 actions=output:2") in out, out
    _, out = ofctl_session("-O", proto, "dump-desc", "SW",
                           replies={C.OFPMP_DESC: DescStats("acme", "hw1", "sw2", "sn3", "dp4")})
    assert "Manufacturer: acme" in out and "DP Description: dp4" in out
