"""Set-field on SCTP ports, ICMP and ICMPv6 type/code, the ARP fields and the IPv6 ND fields,
through the slow path: such flows are accepted, translate to the datapath's masked sets
(DPS_SET_SCTP .. DPS_SET_ND), with megaflows that match the written field and its
prerequisites, and the frames that come out (of the upcall's packet-out and of the installed
megaflow alike) are what scapy makes of the change.

The datapath side of each set, byte by byte, is tests/test_actions.py's; the comparison with
Open vSwitch is tests/test_reference_ovs.py's set_field_sctp_icmp_arp.
"""
from __future__ import annotations

import functools
import logging
from collections import Counter

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dpdkswitch.datapath import Datapath, odp, parse
from dpdkswitch.ofproto.fields import BY_NAME
from dpdkswitch.ofproto.flowstr import FlowParseError, parse_flow
from dpdkswitch.ofproto.pipeline import Pipeline, PortEntry
from dpdkswitch.ofproto.xlate import Translator

from test_actions import rebuilt
from test_slowpath import (PROP_OF2DP, SECOND, Rig, _run_cached, assert_same_as_packet_out,
                           check_megaflows, field_mask)

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.layers.inet import ICMP, IP, UDP  # noqa: E402
from scapy.layers.inet6 import (ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS,  # noqa: E402
                                ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, IPv6)
from scapy.layers.l2 import ARP, Ether  # noqa: E402
from scapy.layers.sctp import SCTP, SCTPChunkData  # noqa: E402
from scapy.packet import Raw  # noqa: E402

pytestmark = pytest.mark.dpdk

H1, H2 = "02:00:00:00:00:01", "02:00:00:00:00:02"


def icmp(i: int = 0, type_: int = 8, code: int = 0, **ip) -> bytes:
    return bytes(Ether(src=H1, dst=H2) / IP(src=f"10.0.0.{1 + i}", dst="10.0.0.99", **ip)
                 / ICMP(type=type_, code=code, id=i, seq=1) / Raw(b"ping"))


def echo6(i: int = 0, reply: bool = False) -> bytes:
    return bytes(Ether(src=H1, dst=H2) / IPv6(src=f"2001:db8::{1 + i}", dst="2001:db8::99")
                 / (ICMPv6EchoReply if reply else ICMPv6EchoRequest)(id=i, data=b"ping6"))


def sctp(i: int = 0, dport: int = 80, v6: bool = False) -> bytes:
    ip = IPv6(src=f"2001:db8::{1 + i}", dst="2001:db8::99") if v6 else IP(src=f"10.0.0.{1 + i}", dst="10.0.0.99")
    return bytes(Ether(src=H1, dst=H2) / ip / SCTP(sport=1000, dport=dport, tag=5 + i) / SCTPChunkData(data=b"x" * 9))


def arp(i: int = 0, op: int = 1, sha: str = H1, spa: str = "10.0.0.1") -> bytes:
    return bytes(Ether(src=f"02:00:00:00:01:{i:02x}", dst="ff:ff:ff:ff:ff:ff")
                 / ARP(op=op, hwsrc=sha, psrc=spa, pdst="10.0.0.99"))


ND_IP = dict(src="fe80::1", dst="ff02::1:ff00:99", hlim=255)


def ns(i: int = 0, sll: str | None = H1, tgt: str = "2001:db8::99") -> bytes:
    p = Ether(src=H1, dst="33:33:ff:00:00:99") / IPv6(**ND_IP) / ICMPv6ND_NS(tgt=tgt)
    if sll:
        p = p / ICMPv6NDOptSrcLLAddr(lladdr=sll)
    return bytes(p / Raw(bytes([i])) if i else p)


def na(i: int = 0, tll: str | None = H2, tgt: str = "2001:db8::99") -> bytes:
    p = Ether(src=H2, dst=H1) / IPv6(**ND_IP) / ICMPv6ND_NA(tgt=tgt, S=1)
    if tll:
        p = p / ICMPv6NDOptDstLLAddr(lladdr=tll)
    return bytes(p / Raw(bytes([i])) if i else p)


def changed(frame: bytes, layer, **fields) -> bytes:
    """FRAME with FIELDS of LAYER changed and every checksum recomputed by scapy."""
    p = Ether(frame)
    for k, v in fields.items():
        setattr(p[layer], k, v)
    return rebuilt(p)


# ---- flows with these set-fields: translation, megaflow, frames out ----------------------------

def test_icmp_type_set_installs_translates_and_forwards(dp):
    rig = Rig(dp)
    (rule,) = rig.add("priority=10,icmp,actions=set_field:0->icmp_type,output:2")
    t = rig.x.translate(parse(icmp(), 1))
    assert t.actions == [odp.SetMasked("icmp", b"\0\0", b"\x08\x00"), odp.Output(2)]
    mask = t.megaflow_mask()
    assert (field_mask(mask, "eth_type"), field_mask(mask, "ip_proto")) == (0xFFFF, 0xFF)     # prerequisites
    assert field_mask(mask, "icmp_type") == 0xFF                                               # the field
    assert field_mask(mask, "icmp_code") == 0 and field_mask(mask, "ipv4_src") == 0
    frames = [icmp(i) for i in range(20)]
    out = rig.send(1, frames[:1])                 # the miss: upcall, translation, packet-out, flow put
    assert out[2] == [changed(frames[0], ICMP, type=0)] and dp.flow_count() == 1
    out = rig.send(1, frames[1:])                 # the megaflow
    assert out[2] == [changed(f, ICMP, type=0) for f in frames[1:]]
    assert out[1] == out[3] == []
    assert dp.flow_count() == 1 and rig.misses() == 1
    rig.r.run()
    assert rule.packets == 20


CASES = [
    # (flow, input frames, expected output of each on port 2)
    ("sctp,actions=set_field:99->sctp_dst,output:2", [sctp(i) for i in range(3)],
     lambda f: changed(f, SCTP, dport=99)),
    ("sctp6,tp_dst=80,actions=mod_tp_src:7,output:2", [sctp(i, v6=True) for i in range(3)],
     lambda f: changed(f, SCTP, sport=7)),
    ("icmp,icmp_type=8,actions=set_field:0->icmp_type,set_field:5->icmp_code,output:2", [icmp(i) for i in range(3)],
     lambda f: changed(f, ICMP, type=0, code=5)),
    ("icmp6,icmp_type=128,actions=set_field:129->icmpv6_type,output:2", [echo6(i) for i in range(3)],
     lambda f: rebuilt(Ether(f[:54] + b"\x81" + f[55:]))),
    ("icmp6,icmp_type=128,actions=set_field:7->icmpv6_code,output:2", [echo6(i) for i in range(3)],
     lambda f: changed(f, ICMPv6EchoRequest, code=7)),
    ("arp,arp_op=1,actions=set_field:2->arp_op,set_field:10.0.0.253->arp_spa,"
     "set_field:02:00:00:00:00:fe->arp_sha,set_field:10.0.0.1->arp_tpa,set_field:0a:0b:0c:0d:0e:0f->arp_tha,output:2",
     [arp(i) for i in range(3)],
     lambda f: changed(f, ARP, op=2, psrc="10.0.0.253", hwsrc="02:00:00:00:00:fe", pdst="10.0.0.1",
                       hwdst="0a:0b:0c:0d:0e:0f")),
    ("icmp6,icmp_type=135,icmp_code=0,actions=set_field:2001:db8::77->nd_target,output:2", [ns(i) for i in range(3)],
     lambda f: changed(f, ICMPv6ND_NS, tgt="2001:db8::77")),
    ("icmp6,icmp_type=135,icmp_code=0,actions=set_field:0a:00:00:00:00:01->nd_sll,output:2",
     [ns(i) for i in range(3)], lambda f: changed(f, ICMPv6NDOptSrcLLAddr, lladdr="0a:00:00:00:00:01")),
    ("icmp6,icmp_type=136,icmp_code=0,actions=set_field:0a:00:00:00:00:02->nd_tll,output:2",
     [na(i) for i in range(3)], lambda f: changed(f, ICMPv6NDOptDstLLAddr, lladdr="0a:00:00:00:00:02")),
    # As Open vSwitch: an NS without the SLL option has nothing to write; the frame goes out as it was.
    ("icmp6,icmp_type=135,icmp_code=0,actions=set_field:0a:00:00:00:00:01->nd_sll,output:2",
     [ns(i, sll=None) for i in range(3)], lambda f: f),
]


@pytest.mark.parametrize("flow,frames,want", CASES, ids=[c[0].split(",actions=")[1][:50] for c in CASES])
def test_set_field_end_to_end(dp, flow, frames, want):
    """The upcalled frame (packet-out of its translation) and the ones after it (the installed
    megaflow) come out alike, as scapy changes them; one megaflow covers them all."""
    rig = Rig(dp)
    rig.add("priority=10," + flow, "priority=0,actions=drop")
    out = rig.send(1, frames[:1])
    assert out[2] == [want(frames[0])]
    out = rig.send(1, frames[1:])
    assert out[2] == [want(f) for f in frames[1:]]
    assert out[1] == out[3] == []
    assert dp.flow_count() == 1 and rig.misses() == 1


@pytest.mark.parametrize("flow,frame,written,prereqs", [
    ("sctp,actions=set_field:99->sctp_dst,output:2", sctp(), ["sctp_dst"], ["eth_type", "ip_proto", "ip_frag"]),
    ("icmp6,actions=set_field:1->icmpv6_code,output:2", echo6(), ["icmpv6_code"], ["eth_type", "ip_proto"]),
    ("arp,actions=set_field:10.1.1.1->arp_tpa,output:2", arp(), ["arp_tpa"], ["eth_type"]),
    ("icmp6,icmp_type=135,icmp_code=0,actions=set_field:0a:00:00:00:00:01->nd_sll,output:2", ns(), ["nd_sll"],
     ["eth_type", "ip_proto", "icmpv6_type", "icmpv6_code"]),
    ("icmp6,icmp_type=136,icmp_code=0,actions=set_field:::1->nd_target,output:2", na(), ["nd_target"],
     ["eth_type", "ip_proto", "icmpv6_type", "icmpv6_code"]),
])
def test_megaflow_matches_the_written_field_and_its_prerequisites(eal, flow, frame, written, prereqs):
    p = Pipeline()
    for of in (1, 2, 3):
        p.set_port(PortEntry(of, f"p{of}", of))
    p.add(parse_flow("priority=10," + flow))
    t = Translator(p).translate(parse(frame, 1))
    assert any(isinstance(a, odp.SetMasked) for a in t.actions), t.actions
    mask = t.megaflow_mask()
    for name in written + prereqs:
        assert field_mask(mask, name) == BY_NAME[name].all_ones, name


def test_nd_sll_set_on_ns_with_and_without_the_option_are_two_megaflows(dp):
    """The key's nd_sll is 0 without the option: the set writes nothing then, and the megaflow
    must not hand that (empty) result to an NS that has the option, nor the other way round."""
    rig = Rig(dp)
    rig.add("priority=10,icmp6,icmp_type=135,icmp_code=0,actions=set_field:0a:00:00:00:00:01->nd_sll,output:2")
    with_, without = ns(1), ns(1, sll=None)
    out = rig.send(1, [with_, without, with_, without])
    w = changed(with_, ICMPv6NDOptSrcLLAddr, lladdr="0a:00:00:00:00:01")
    assert out[2] == [w, without, w, without]
    assert dp.flow_count() == 2


def test_set_field_on_first_fragments_not_on_later_ones(dp):
    """As Open vSwitch (issue 19): only the lookup sees a fragment's L4 fields as 0; the actions
    write a first fragment's ICMP type and SCTP ports (checksums fixed), and leave a later
    fragment, which has no L4 header, alone."""
    rig = Rig(dp)
    rig.add("priority=10,icmp,actions=set_field:0->icmp_type,output:2",
            "priority=10,sctp,actions=set_field:9->sctp_dst,output:2")
    first_sctp = bytes(Ether(src=H1, dst=H2) / IP(src="10.0.0.4", dst="10.0.0.99", flags="MF")
                       / SCTP(sport=1, dport=2) / SCTPChunkData(data=b"f"))
    later_icmp = icmp(2, frag=10)
    frames = [icmp(1, flags="MF"), later_icmp, first_sctp]
    assert rig.x.translate(parse(later_icmp, 1)).actions == [odp.Output(2)]
    out = rig.send(1, frames)
    assert sorted(out[2]) == sorted([changed(frames[0], ICMP, type=0), later_icmp,
                                     changed(first_sctp, SCTP, dport=9)])


def test_icmp_set_does_not_apply_to_icmpv6_and_back(dp):
    """Two rules, one per ICMP version, each writing its own type: each frame gets its own
    checksum fix (ICMPv6's covers a pseudo-header, ICMP's does not)."""
    rig = Rig(dp)
    rig.add("priority=10,icmp,actions=set_field:0->icmp_type,output:2",
            "priority=10,icmp6,actions=set_field:129->icmpv6_type,output:3")
    out = rig.send(1, [icmp(1), echo6(1)])
    assert out[2] == [changed(icmp(1), ICMP, type=0)]
    assert out[3] == [rebuilt(Ether(echo6(1)[:54] + b"\x81" + echo6(1)[55:]))]


# ---- megaflow soundness with these fields (hypothesis) ------------------------------------------

MATCHES = ["icmp", "icmp,icmp_type=8", "icmp6", "icmp6,icmp_type=128", "icmp6,icmp_type=135,icmp_code=0",
           "icmp6,icmp_type=136,icmp_code=0", "arp", "arp,arp_op=1", "arp,arp_spa=10.0.0.1",
           "arp,arp_sha=02:00:00:00:00:01", "sctp", "sctp,tp_dst=80", "sctp6", "ip", "ipv6", "",
           "icmp6,nd_sll=02:00:00:00:00:01,icmp_type=135,icmp_code=0"]
SETS = ["set_field:0->icmp_type", "set_field:3->icmp_code", "set_field:129->icmpv6_type",
        "set_field:135->icmpv6_type", "set_field:0->icmpv6_code", "set_field:1->icmpv6_code",
        "set_field:2001:db8::77->nd_target", "set_field:0a:00:00:00:00:01->nd_sll",
        "set_field:0a:00:00:00:00:02->nd_tll", "set_field:2->arp_op", "set_field:1->arp_op",
        "set_field:10.9.9.9->arp_spa", "set_field:10.0.0.1->arp_tpa", "set_field:0a:00:00:00:00:03->arp_sha",
        "set_field:0a:00:00:00:00:04->arp_tha", "set_field:99->sctp_dst", "set_field:80->sctp_dst",
        "set_field:1000->sctp_src", "mod_dl_src:0a:00:00:00:00:05", "dec_ttl"]
OUTS = ["output:2", "output:3", "controller"]


@functools.cache
def _valid(match: str, action: str) -> bool:
    try:
        parse_flow(f"{match},actions={action}" if match else f"actions={action}")
        return True
    except FlowParseError:
        return False


@st.composite
def set_pipelines(draw) -> list[str]:
    flows = []
    for t in (0, 1):
        for _ in range(draw(st.integers(1, 5))):
            m = draw(st.sampled_from(MATCHES))
            acts = [a for a in draw(st.lists(st.sampled_from(SETS), min_size=1, max_size=4)) if _valid(m, a)]
            acts += draw(st.lists(st.sampled_from(OUTS), min_size=0 if t == 0 else 1, max_size=2))
            if t == 0 and draw(st.booleans()):
                acts.append("goto_table:1")
            head = f"table={t},priority={draw(st.integers(0, 3))}" + (f",{m}" if m else "")
            flows.append(f"{head},actions={','.join(acts) or 'drop'}")
    return flows


def _pool() -> list[bytes]:
    out = []
    for i in (0, 1):
        out += [icmp(i), icmp(i, 0), icmp(i, 3, 1), icmp(i, ttl=1), echo6(i), echo6(i, reply=True),
                ns(i), ns(i, sll=None), ns(i, sll="02:00:00:00:00:09"), ns(i, tgt="2001:db8::5"), na(i),
                na(i, tll=None), arp(i), arp(i, op=2), arp(i, op=0x0101), arp(i, sha="02:00:00:00:00:09"),
                arp(i, spa="10.0.0.2"),
                sctp(i), sctp(i, dport=99), sctp(i, v6=True),
                bytes(Ether(src=H1, dst=H2) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=i))]
    return out


POOL = _pool()


def _make(flows: list[str], clock=lambda: 0.0) -> tuple[Pipeline, Translator]:
    p = Pipeline(clock=clock)
    for of, d in PROP_OF2DP.items():
        p.set_port(PortEntry(of, f"p{of}", d))
    for f in flows:
        p.add(parse_flow(f))
    return p, Translator(p)


@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(flows=set_pipelines(), idx=st.lists(st.integers(0, len(POOL) - 1), min_size=2, max_size=12))
def test_megaflows_with_these_set_fields_are_sound(eal, flows, idx):
    _, x = _make(flows)
    keys = [parse(POOL[i], PROP_OF2DP[1]) for i in idx]
    shared = check_megaflows(x, keys)
    event(f"distinct packets sharing a megaflow: {'0' if not shared else '1-3' if shared < 4 else '4+'}")


@pytest.fixture(scope="module")
def set_rig(eal):
    d = Datapath("ssetf", n_mbufs=8192, manual_clock=True)
    for dpp in PROP_OF2DP.values():
        d.add_test_port(dpp, f"ssf{dpp}")
    d.set_clock(SECOND)
    yield d
    d.close()


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(flows=set_pipelines(), idx=st.lists(st.integers(0, len(POOL) - 1), min_size=2, max_size=12))
def test_cached_set_fields_do_what_packet_out_does(set_rig, flows, idx):
    d = set_rig
    d.set_clock(d.now_ns + SECOND)
    p, x = _make(flows, clock=lambda: d.now_ns / 1e9)
    items = [(1, POOL[i], parse(POOL[i], PROP_OF2DP[1])) for i in idx]
    d.flow_flush()
    cached, pins_cached, h = _run_cached(d, p, x, items)
    event("a set-field changed a frame" if any(f not in Counter(POOL) for c in cached.values() for f in c)
          else "no frame changed")
    assert_same_as_packet_out(d, p, x, items, cached, pins_cached, h)
