"""Datapath actions, each against byte-exact expected frames.

Frames are built with scapy; the expected output is computed independently with scapy (the
packet changed field by field, its checksums deleted and rebuilt from scratch), and every
checksum the datapath produced (incrementally, RFC 1624) is checked against scapy's own
recomputation.  Actions run through packet-out (``execute``) or installed flows (inject/poll),
and the test ports are drained.
"""
from __future__ import annotations

import logging
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dpdkswitch.datapath import MANUAL_PMD, Datapath, odp, parse
from dpdkswitch.datapath._dpdkswitch import lib
from dpdkswitch.flowkey import KEY_SIZE
from dpdkswitch.ofproto.fields import BY_NAME

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR  # noqa: E402
from scapy.layers.inet6 import (ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr,  # noqa: E402
                                ICMPv6NDOptSrcLLAddr, IPv6, IPv6ExtHdrHopByHop, in6_chksum)
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether  # noqa: E402
from scapy.layers.sctp import SCTP, SCTPChunkData, crc32c  # noqa: E402
from scapy.packet import NoPayload, Raw  # noqa: E402
from scapy.utils import checksum  # noqa: E402

pytestmark = pytest.mark.dpdk

PORTS = (1, 2, 3, 4)
MAC1, MAC2 = "02:00:00:00:00:01", "02:00:00:00:00:02"
SECOND = 1_000_000_000


# ---- the rig ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rig(eal):
    d = Datapath("act", n_mbufs=8192, manual_clock=True, upcall_ring=4096, emc_insert_inv_prob=1)
    for p in PORTS:
        d.add_test_port(p, f"act{p}")
    d.idle_mbufs = d.mbufs_in_use()
    d.clock = SECOND
    d.set_clock(d.clock)
    yield d
    d.close()


@pytest.fixture
def dp(rig):
    """The module's datapath, left clean after each test: no flows, nothing queued, no mbuf held."""
    yield rig
    rig.flow_flush()
    for u in rig.upcalls(4096):
        u.free()
    for p in PORTS:
        rig.drain(p)
    assert rig.mbufs_in_use() == rig.idle_mbufs, "an mbuf leaked"


def run(d, frame: bytes, actions: list, in_port: int = 1) -> dict[int, list[bytes]]:
    """Packet-out FRAME through ACTIONS; what each port sent."""
    d.execute(frame, in_port, odp.encode(actions))
    return {p: d.drain(p) for p in PORTS}


def only(out: dict[int, list[bytes]], port: int) -> bytes:
    """The one frame PORT sent, nothing sent elsewhere."""
    assert {p: len(v) for p, v in out.items() if v} == {port: 1}, out
    return out[port][0]


def tick(d, ns: int = SECOND) -> None:
    d.clock += ns
    d.set_clock(d.clock)


def key_mask(**fields) -> tuple[bytes, bytes]:
    """A flow key and mask matching FIELDS exactly; 'recirc_id' and 'dp_hash' (not in the field
    table) are the key's bytes 4:8 and 8:12, host order; dp_hash may be (value, mask)."""
    key, mask = bytearray(KEY_SIZE), bytearray(KEY_SIZE)
    for name, v in fields.items():
        if name in ("recirc_id", "dp_hash"):
            off = 4 if name == "recirc_id" else 8
            value, m = v if isinstance(v, tuple) else (v, 0xFFFFFFFF)
            key[off:off + 4] = (value & m).to_bytes(4, "little")
            mask[off:off + 4] = m.to_bytes(4, "little")
        else:
            BY_NAME[name].to_key(key, v)
            BY_NAME[name].to_key(mask, BY_NAME[name].all_ones)
    return bytes(key), bytes(mask)


# ---- independent checksums (scapy) ----------------------------------------------------------

CSUM_LAYERS = (IP, TCP, UDP, ICMP, SCTP)         # and every ICMPv6 message type


def rebuilt(pkt) -> bytes:
    """PKT's bytes with every checksum deleted and recomputed by scapy (SCTP's CRC32c too),
    except a zero UDP checksum over IPv4 (no checksum), which stays zero."""
    p = pkt.copy()
    layer = p
    while not isinstance(layer, NoPayload):
        if isinstance(layer, CSUM_LAYERS) or type(layer).__name__.startswith("ICMPv6"):
            for name in ("chksum", "cksum"):
                if any(f.name == name for f in layer.fields_desc):
                    if not (isinstance(layer, UDP) and IP in p and layer.chksum == 0):
                        delattr(layer, name)
        layer = layer.payload
    return bytes(p)


def assert_checksums_ok(frame: bytes) -> None:
    """Scapy recomputes the same checksums the frame carries."""
    assert rebuilt(Ether(frame)) == frame, "a checksum the datapath wrote differs from scapy's"


def expect(pkt) -> bytes:
    """The expected output: PKT (already changed) with its checksums rebuilt."""
    return rebuilt(pkt)


# ---- frames -------------------------------------------------------------------------------

def tcp4(**ip) -> bytes:
    return bytes(Ether(src=MAC1, dst=MAC2) / IP(src="10.0.0.1", dst="10.0.0.2", tos=0x10, ttl=64, **ip)
                 / TCP(sport=1234, dport=80, flags="S", seq=1000) / Raw(b"hello tcp"))


def udp4(chksum=None) -> bytes:
    u = UDP(sport=5353, dport=53) if chksum is None else UDP(sport=5353, dport=53, chksum=chksum)
    return bytes(Ether(src=MAC1, dst=MAC2) / IP(src="192.168.1.10", dst="192.168.1.20", ttl=17) / u
                 / Raw(b"hello udp payload"))


def tcp6() -> bytes:
    return bytes(Ether(src=MAC1, dst=MAC2) / IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0x20, fl=0x12345,
                                                  hlim=64) / TCP(sport=40000, dport=443, flags="PA") / Raw(b"v6 tcp"))


def udp6(ext: bool = False) -> bytes:
    ip = IPv6(src="2001:db8:1::10", dst="2001:db8:2::20", tc=0, fl=7, hlim=9)
    if ext:
        ip = ip / IPv6ExtHdrHopByHop()
    return bytes(Ether(src=MAC1, dst=MAC2) / ip / UDP(sport=546, dport=547) / Raw(b"v6 udp data"))


def tagged(frame: bytes, *tags) -> bytes:
    """FRAME with VLAN tags (tpid, vid, pcp, dei) inserted after the MAC addresses, outer first."""
    p = Ether(frame)
    inner = p.payload
    out = Ether(src=p.src, dst=p.dst)
    for tpid, vid, pcp, dei in tags:
        out = out / (Dot1AD if tpid == 0x88A8 else Dot1Q)(vlan=vid, prio=pcp, dei=dei)
    return bytes(out / inner)


def eth_set(dst: bytes = b"\0" * 6, src: bytes = b"\0" * 6, dmask: bytes = b"\0" * 6, smask: bytes = b"\0" * 6):
    return odp.SetMasked("eth", dst + src, dmask + smask)


def ipv4_set(src=b"\0" * 4, dst=b"\0" * 4, tos=0, ttl=0, smask=b"\0" * 4, dmask=b"\0" * 4, tosmask=0, ttlmask=0):
    return odp.SetMasked("ipv4", src + dst + bytes([tos, ttl]), smask + dmask + bytes([tosmask, ttlmask]))


def ipv6_set(src=b"\0" * 16, dst=b"\0" * 16, label=0, tc=0, hlim=0, smask=b"\0" * 16, dmask=b"\0" * 16,
             lmask=0, tcmask=0, hmask=0):
    return odp.SetMasked("ipv6", src + dst + label.to_bytes(4, "big") + bytes([tc, hlim]),
                         smask + dmask + lmask.to_bytes(4, "big") + bytes([tcmask, hmask]))


def ports_set(kind, sport=0, dport=0, smask=0, dmask=0):
    return odp.SetMasked(kind, struct.pack("!HH", sport, dport), struct.pack("!HH", smask, dmask))


def masked(old: bytes, value: bytes, mask: bytes) -> bytes:
    return bytes((o & ~m) | (v & m) for o, v, m in zip(old, value, mask))


def ip4b(s: str) -> bytes:
    return bytes(int(x) for x in s.split("."))


def ip6b(s: str) -> bytes:
    import ipaddress
    return ipaddress.IPv6Address(s).packed


def b2ip4(b: bytes) -> str:
    return ".".join(map(str, b))


def b2ip6(b: bytes) -> str:
    import ipaddress
    return str(ipaddress.IPv6Address(b))


# ---- output, drop -------------------------------------------------------------------------

def test_output_to_several_ports_sends_the_same_bytes(dp):
    fr = tcp4()
    out = run(dp, fr, [odp.Output(2), odp.Output(3), odp.Output(4), odp.Output(2)])
    assert out == {1: [], 2: [fr, fr], 3: [fr], 4: [fr]}


def test_output_back_to_the_input_port(dp):
    fr = udp4()
    assert run(dp, fr, [odp.Output(1)]) == {1: [fr], 2: [], 3: [], 4: []}


def test_empty_list_drops(dp):
    dp.execute(tcp4(), 1, b"")
    assert all(dp.drain(p) == [] for p in PORTS)
    key, mask = key_mask(in_port=1)
    dp.flow_put(1, key, mask, b"")
    dp.inject(1, [tcp4(), udp4()])
    dp.poll(1)
    assert all(dp.drain(p) == [] for p in PORTS) and dp.upcalls() == []
    assert dp.flow_get(1)["packets"] == 2


def test_output_to_a_port_that_is_not_there_drops_that_copy_only(dp):
    fr = udp4()
    drops = int(dp.pmd_stats()[MANUAL_PMD]["action_drops"])
    assert run(dp, fr, [odp.Output(200), odp.Output(3)]) == {1: [], 2: [], 3: [fr], 4: []}
    assert int(dp.pmd_stats()[MANUAL_PMD]["action_drops"]) == drops + 1


# ---- VLAN ---------------------------------------------------------------------------------

@pytest.mark.parametrize("tpid,layer", [(0x8100, Dot1Q), (0x88A8, Dot1AD)])
def test_push_vlan_on_an_untagged_frame(dp, tpid, layer):
    fr = tcp4()
    got = only(run(dp, fr, [odp.PushVlan(tci=100 | 5 << 13, tpid=tpid), odp.Output(2)]), 2)
    p = Ether(fr)
    want = bytes(Ether(src=p.src, dst=p.dst) / layer(vlan=100, prio=5, dei=0) / p.payload)
    assert got == want == fr[:12] + struct.pack("!HH", tpid, 100 | 5 << 13) + fr[12:]
    assert parse(got, 1)[BY_NAME["vlan_vid"].key_offset:][:2] == struct.pack("!H", 0x1000 | 100 | 5 << 13)


@pytest.mark.parametrize("tpid,layer", [(0x8100, Dot1Q), (0x88A8, Dot1AD)])
def test_push_vlan_on_a_tagged_frame_adds_an_outer_tag(dp, tpid, layer):
    fr = tagged(udp4(), (0x8100, 10, 3, 0))
    got = only(run(dp, fr, [odp.PushVlan(tci=200, tpid=tpid), odp.Output(2)]), 2)
    p = Ether(udp4())
    want = bytes(Ether(src=p.src, dst=p.dst) / layer(vlan=200, prio=0) / Dot1Q(vlan=10, prio=3) / p.payload)
    assert got == want
    assert_checksums_ok(got)


def test_push_vlan_ignores_the_cfi_bit_it_is_given(dp):
    fr = udp4()
    raw = struct.pack("=HHI", lib.DPS_ACT_PUSH_VLAN, 8, 0x8100 << 16 | 0x1000 | 42) + \
        struct.pack("=HHI", lib.DPS_ACT_OUTPUT, 8, 2)
    dp.execute(fr, 1, raw)
    assert dp.drain(2) == [fr[:12] + b"\x81\x00\x00\x2a" + fr[12:]]


def test_pop_vlan(dp):
    fr = udp4()
    one = tagged(fr, (0x8100, 10, 0, 0))
    two = tagged(fr, (0x88A8, 20, 1, 0), (0x8100, 10, 0, 0))
    assert only(run(dp, one, [odp.PopVlan(), odp.Output(2)]), 2) == fr
    assert only(run(dp, two, [odp.PopVlan(), odp.Output(2)]), 2) == one
    assert only(run(dp, two, [odp.PopVlan(), odp.PopVlan(), odp.Output(2)]), 2) == fr
    assert only(run(dp, fr, [odp.PopVlan(), odp.Output(2)]), 2) == fr          # nothing to pop
    # push then pop is the identity; output between them sees the tag
    out = run(dp, fr, [odp.PushVlan(7), odp.Output(3), odp.PopVlan(), odp.Output(2)])
    assert out[2] == [fr] and out[3] == [fr[:12] + b"\x81\x00\x00\x07" + fr[12:]]


@pytest.mark.parametrize("value,mask,vid,pcp", [
    (0x0123, 0x0FFF, 0x123, 6),           # VID only
    (0xA000, 0xE000, 10, 5),              # PCP only
    (0xFFFF, 0x00F0, 0x0FA, 6),           # a few VID bits
    (0x2FFF, 0xEFFF, 0xFFF, 1),           # both, DEI outside the mask
])
def test_set_vlan_vid_pcp_on_a_tagged_frame(dp, value, mask, vid, pcp):
    fr = tagged(tcp4(), (0x8100, 10, 6, 1))     # DEI set: outside the mask, it must stay set
    got = only(run(dp, fr, [odp.SetMasked("vlan", struct.pack("!H", value), struct.pack("!H", mask)),
                            odp.Output(2)]), 2)
    p = Ether(fr)
    p[Dot1Q].vlan, p[Dot1Q].prio = vid, pcp
    assert got == expect(p)
    assert Ether(got)[Dot1Q].dei == 1


@pytest.mark.parametrize("value,dei", [(0x2FFF, 0), (0x3FFF, 1)])
def test_set_vlan_writes_dei_when_the_mask_has_it(dp, value, dei):
    """Translation rewrites a whole tag with DEI cleared (as Open vSwitch's pop + push)."""
    fr = tagged(tcp4(), (0x8100, 10, 6, 1 - dei))
    got = only(run(dp, fr, [odp.SetMasked("vlan", struct.pack("!H", value), b"\xff\xff"), odp.Output(2)]), 2)
    tag = Ether(got)[Dot1Q]
    assert (tag.vlan, tag.prio, tag.dei) == (0xFFF, 1, dei)


def test_set_vlan_changes_the_outer_tag_only(dp):
    fr = tagged(udp4(), (0x88A8, 100, 0, 0), (0x8100, 10, 0, 0))
    got = only(run(dp, fr, [odp.SetMasked("vlan", b"\x00\x07", b"\x0f\xff"), odp.Output(2)]), 2)
    p = Ether(fr)
    p[Dot1AD].vlan = 7
    assert got == expect(p) and Ether(got)[Dot1Q].vlan == 10


# ---- Ethernet -----------------------------------------------------------------------------

def test_set_eth_src_dst_masked(dp):
    fr = tcp4()
    act = eth_set(dst=bytes.fromhex("aabbccddeeff"), src=bytes.fromhex("112233445566"),
                  dmask=bytes.fromhex("ffffff000000"), smask=bytes.fromhex("0000000000ff"))
    got = only(run(dp, fr, [act, odp.Output(2)]), 2)
    p = Ether(fr)
    p.dst = "aa:bb:cc:00:00:02"
    p.src = "02:00:00:00:00:66"
    assert got == expect(p)
    assert got[12:] == fr[12:]


# ---- IPv4 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [tcp4, udp4, lambda: tagged(tcp4(), (0x8100, 5, 0, 0)),
                                  lambda: tcp4(options=[IPOption_RR(routers=["1.2.3.4"])])],
                         ids=["tcp", "udp", "vlan-tcp", "options-tcp"])
@pytest.mark.parametrize("what", ["src", "dst", "tos", "ttl", "all", "partial"])
def test_set_ipv4_fields_fixes_checksums(dp, make, what):
    fr = make()
    new_src, new_dst = ip4b("172.16.5.9"), ip4b("8.8.4.4")
    args = {"src": dict(src=new_src, smask=b"\xff" * 4), "dst": dict(dst=new_dst, dmask=b"\xff" * 4),
            "tos": dict(tos=0xB8, tosmask=0xFF), "ttl": dict(ttl=3, ttlmask=0xFF),
            "all": dict(src=new_src, dst=new_dst, tos=0xB8, ttl=3, smask=b"\xff" * 4, dmask=b"\xff" * 4,
                        tosmask=0xFF, ttlmask=0xFF),
            "partial": dict(src=new_src, dst=new_dst, tos=0xFF, ttl=0xFF, smask=b"\xff\xff\0\0",
                            dmask=b"\0\0\0\xff", tosmask=0xFC, ttlmask=0x0F)}[what]
    got = only(run(dp, fr, [ipv4_set(**args), odp.Output(2)]), 2)
    p = Ether(fr)
    ip = p[IP]
    ip.src = b2ip4(masked(ip4b(ip.src), args.get("src", b"\0" * 4), args.get("smask", b"\0" * 4)))
    ip.dst = b2ip4(masked(ip4b(ip.dst), args.get("dst", b"\0" * 4), args.get("dmask", b"\0" * 4)))
    ip.tos = masked(bytes([ip.tos]), bytes([args.get("tos", 0)]), bytes([args.get("tosmask", 0)]))[0]
    ip.ttl = masked(bytes([ip.ttl]), bytes([args.get("ttl", 0)]), bytes([args.get("ttlmask", 0)]))[0]
    assert got == expect(p)
    assert_checksums_ok(got)


def test_set_ipv4_keeps_a_zero_udp_checksum_zero(dp):
    fr = udp4(chksum=0)
    got = only(run(dp, fr, [ipv4_set(src=ip4b("1.1.1.1"), smask=b"\xff" * 4, ttl=1, ttlmask=0xFF),
                            ports_set("udp", sport=7, smask=0xFFFF), odp.Output(2)]), 2)
    p = Ether(fr)
    p[IP].src, p[IP].ttl, p[UDP].sport = "1.1.1.1", 1, 7
    assert got == expect(p)
    assert Ether(got)[UDP].chksum == 0
    assert_checksums_ok(got)


@pytest.mark.parametrize("v6", [False, True])
def test_udp_checksum_that_comes_out_zero_is_sent_as_ffff(dp, v6):
    """One's complement has two zeros; UDP sends 0xffff, since 0 means 'no checksum' (IPv4)."""
    fr = udp6() if v6 else udp4()
    p = Ether(fr)
    # The port value making the checksum come out as zero: with sport = 0 the sum is S, the
    # checksum ~S; with sport = v the sum is S + v, which must be 0xffff.
    q = p.copy()
    q[UDP].sport = 0
    del q[UDP].chksum
    s0 = ~Ether(bytes(q))[UDP].chksum & 0xFFFF
    v = (0xFFFF - s0) % 0xFFFF
    assert v
    got = only(run(dp, fr, [ports_set("udp", sport=v, smask=0xFFFF), odp.Output(2)]), 2)
    p[UDP].sport = v
    assert got == expect(p)
    assert Ether(got)[UDP].chksum == 0xFFFF


# ---- IPv6 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [tcp6, udp6, lambda: udp6(ext=True)], ids=["tcp", "udp", "hbh-udp"])
@pytest.mark.parametrize("what", ["src", "dst", "label", "tclass", "hlimit", "all", "partial"])
def test_set_ipv6_fields_fixes_checksums(dp, make, what):
    fr = make()
    s6, d6 = ip6b("2001:db8:ffff::abcd"), ip6b("fd00::1:2:3")
    args = {"src": dict(src=s6, smask=b"\xff" * 16), "dst": dict(dst=d6, dmask=b"\xff" * 16),
            "label": dict(label=0xABCDE, lmask=0xFFFFF), "tclass": dict(tc=0xE3, tcmask=0xFF),
            "hlimit": dict(hlim=1, hmask=0xFF),
            "all": dict(src=s6, dst=d6, label=0xABCDE, tc=0xE3, hlim=1, smask=b"\xff" * 16, dmask=b"\xff" * 16,
                        lmask=0xFFFFF, tcmask=0xFF, hmask=0xFF),
            "partial": dict(src=s6, dst=d6, label=0xFFFFFFFF, tc=0xFF, hlim=0xFF, smask=b"\xff" * 8 + b"\0" * 8,
                            dmask=b"\0" * 15 + b"\x0f", lmask=0xFFF0000F, tcmask=0x0F, hmask=0x80)}[what]
    got = only(run(dp, fr, [ipv6_set(**args), odp.Output(2)]), 2)
    p = Ether(fr)
    ip = p[IPv6]
    ip.src = b2ip6(masked(ip6b(ip.src), args.get("src", b"\0" * 16), args.get("smask", b"\0" * 16)))
    ip.dst = b2ip6(masked(ip6b(ip.dst), args.get("dst", b"\0" * 16), args.get("dmask", b"\0" * 16)))
    lm = args.get("lmask", 0) & 0xFFFFF                        # the label is 20 bits
    ip.fl = (ip.fl & ~lm) | (args.get("label", 0) & lm)
    ip.tc = masked(bytes([ip.tc]), bytes([args.get("tc", 0)]), bytes([args.get("tcmask", 0)]))[0]
    ip.hlim = masked(bytes([ip.hlim]), bytes([args.get("hlim", 0)]), bytes([args.get("hmask", 0)]))[0]
    assert got == expect(p)
    assert_checksums_ok(got)


def test_set_ipv6_addresses_fixes_the_icmpv6_checksum(dp):
    fr = bytes(Ether(src=MAC1, dst=MAC2) / IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoRequest(
        id=7, seq=1, data=b"ping"))
    got = only(run(dp, fr, [ipv6_set(src=ip6b("2001:db8::99"), smask=b"\xff" * 16), odp.Output(2)]), 2)
    p = Ether(fr)
    p[IPv6].src = "2001:db8::99"
    assert got == expect(p)
    assert_checksums_ok(got)


def test_set_ipv4_addresses_over_protocol_58_leave_the_payload_alone(dp):
    """58 is ICMPv6 only under IPv6: over IPv4 it has no pseudo-header checksum to fix, so an
    address rewrite changes the IP header alone (it used to change payload bytes 2-3)."""
    fr = bytes(Ether(src=MAC1, dst=MAC2) / IP(src="10.9.9.9", dst="10.0.0.2", proto=58) / Raw(bytes(8)))
    got = only(run(dp, fr, [ipv4_set(src=ip4b("10.0.0.1"), smask=b"\xff" * 4), odp.Output(2)]), 2)
    p = Ether(fr)
    p[IP].src = "10.0.0.1"
    assert got == expect(p)
    assert got[-8:] == bytes(8)


# ---- TCP, UDP ports -----------------------------------------------------------------------

@pytest.mark.parametrize("make,kind,layer", [(tcp4, "tcp", TCP), (tcp6, "tcp", TCP), (udp4, "udp", UDP),
                                             (udp6, "udp", UDP)], ids=["tcp4", "tcp6", "udp4", "udp6"])
@pytest.mark.parametrize("sport,dport,smask,dmask", [(8080, 0, 0xFFFF, 0), (0, 9999, 0, 0xFFFF),
                                                     (0xABCD, 0x1234, 0xFF00, 0x00FF)])
def test_set_l4_ports_fixes_the_checksum(dp, make, kind, layer, sport, dport, smask, dmask):
    fr = make()
    got = only(run(dp, fr, [ports_set(kind, sport, dport, smask, dmask), odp.Output(2)]), 2)
    p = Ether(fr)
    p[layer].sport = (p[layer].sport & ~smask) | (sport & smask)
    p[layer].dport = (p[layer].dport & ~dmask) | (dport & dmask)
    assert got == expect(p)
    assert_checksums_ok(got)


# ---- SCTP, ICMP, ICMPv6, ARP, ND ----------------------------------------------------------

def sctp4(**ip) -> bytes:
    return bytes(Ether(src=MAC1, dst=MAC2) / IP(src="10.0.0.1", dst="10.0.0.2", **ip)
                 / SCTP(sport=5000, dport=6000, tag=0x11223344) / SCTPChunkData(tsn=1, data=b"sctp chunk bytes"))


def sctp6() -> bytes:
    return bytes(Ether(src=MAC1, dst=MAC2) / IPv6(src="2001:db8::1", dst="2001:db8::2")
                 / SCTP(sport=5000, dport=6000, tag=7) / SCTPChunkData(tsn=9, data=b"sctp over v6"))


def icmp4(type_: int = 8, code: int = 0, **ip) -> bytes:
    return bytes(Ether(src=MAC1, dst=MAC2) / IP(src="10.0.0.1", dst="10.0.0.2", **ip)
                 / ICMP(type=type_, code=code, id=0x4242, seq=3) / Raw(b"ping data 12"))


def icmp6(ext: bool = False) -> bytes:
    ip = IPv6(src="2001:db8::1", dst="2001:db8::2")
    if ext:
        ip = ip / IPv6ExtHdrHopByHop()
    return bytes(Ether(src=MAC1, dst=MAC2) / ip / ICMPv6EchoRequest(id=9, seq=2, data=b"ping6"))


def arp_frame(op: int = 1) -> bytes:
    return bytes(Ether(src=MAC1, dst="ff:ff:ff:ff:ff:ff") / ARP(op=op, hwsrc=MAC1, psrc="10.0.0.1",
                                                                hwdst="00:00:00:00:00:00", pdst="10.0.0.2"))


ND_IP = IPv6(src="fe80::1", dst="ff02::1:ff00:2", hlim=255)


def ns(*opts) -> bytes:
    p = Ether(src=MAC1, dst="33:33:ff:00:00:02") / ND_IP / ICMPv6ND_NS(tgt="2001:db8::2")
    for o in opts:
        p = p / o
    return bytes(p)


def na(*opts) -> bytes:
    p = Ether(src=MAC2, dst=MAC1) / ND_IP / ICMPv6ND_NA(tgt="2001:db8::2", R=0, S=1, O=1)
    for o in opts:
        p = p / o
    return bytes(p)


SLL = ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")
TLL = ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:02")
NONCE = Raw(b"\x0e\x01" + bytes.fromhex("a1a2a3a4a5a6"))        # RFC 3971 nonce option, 8 bytes


def icmp_set(kind, type_=0, code=0, tmask=0, cmask=0):
    return odp.SetMasked(kind, bytes([type_, code]), bytes([tmask, cmask]))


def arp_set(op=0, sha=b"\0" * 6, spa=b"\0" * 4, tha=b"\0" * 6, tpa=b"\0" * 4,
            opmask=0, shamask=b"\0" * 6, spamask=b"\0" * 4, thamask=b"\0" * 6, tpamask=b"\0" * 4):
    return odp.SetMasked("arp", struct.pack("!H", op) + sha + spa + tha + tpa,
                         struct.pack("!H", opmask) + shamask + spamask + thamask + tpamask)


def nd_set(target=b"\0" * 16, sll=b"\0" * 6, tll=b"\0" * 6, tmask=b"\0" * 16, smask=b"\0" * 6, lmask=b"\0" * 6):
    return odp.SetMasked("nd", target + sll + tll, tmask + smask + lmask)


def l4_at(frame: bytes, layer) -> int:
    """Where LAYER starts in FRAME."""
    p = Ether(frame)
    return len(frame) - len(bytes(p[layer]))


def edited(frame: bytes, at: int, new: bytes) -> bytes:
    """FRAME with NEW written at AT, then its checksums rebuilt by scapy (which must read the
    edited bytes back as they are: a sanity check of the expectation itself)."""
    raw = frame[:at] + new + frame[at + len(new):]
    p = Ether(raw)
    assert bytes(p) == raw
    return rebuilt(p)


def mac(s: str) -> bytes:
    return bytes.fromhex(s.replace(":", ""))


@pytest.mark.parametrize("make", [sctp4, sctp6, lambda: tagged(sctp4(), (0x8100, 5, 0, 0)),
                                  lambda: sctp4(options=[IPOption_RR(routers=["1.2.3.4"])]),
                                  lambda: sctp4(flags="MF")],          # a first fragment: set too, as OVS
                         ids=["sctp4", "sctp6", "vlan-sctp4", "options-sctp4", "first-fragment-sctp4"])
@pytest.mark.parametrize("sport,dport,smask,dmask", [(8080, 0, 0xFFFF, 0), (0, 9999, 0, 0xFFFF),
                                                     (0xABCD, 0x1234, 0xFF00, 0x00FF)])
def test_set_sctp_ports_fixes_the_crc32c(dp, make, sport, dport, smask, dmask):
    fr = make()
    assert_checksums_ok(fr)                      # scapy's CRC32c: the frame starts out right
    got = only(run(dp, fr, [ports_set("sctp", sport, dport, smask, dmask), odp.Output(2)]), 2)
    p = Ether(fr)
    p[SCTP].sport = (p[SCTP].sport & ~smask) | (sport & smask)
    p[SCTP].dport = (p[SCTP].dport & ~dmask) | (dport & dmask)
    assert got == expect(p)
    assert_checksums_ok(got)


def with_crc32c(sctp: bytes) -> bytes:
    """An SCTP packet given scapy's CRC32c (its checksum field zero while computing)."""
    zeroed = sctp[:8] + bytes(4) + sctp[12:]
    return sctp[:8] + struct.pack("!I", crc32c(zeroed)) + sctp[12:]


@pytest.mark.parametrize("n", range(0, 18))
def test_set_sctp_crc32c_over_every_length_remainder(dp, n):
    """SCTP packets of every length modulo 8 (chunks are padded to 4 bytes, but the datapath
    must not care), raw bytes so that no parser has a say; the CRC by scapy's crc32c."""
    sctp = with_crc32c(struct.pack("!HHI", 5000, 6000, 0x0BADCAFE) + bytes(4) + bytes(range(7, 7 + n)))
    ip = IP(src="10.0.0.1", dst="10.0.0.2", proto=132)
    fr = bytes(Ether(src=MAC1, dst=MAC2) / ip / Raw(sctp))
    got = only(run(dp, fr, [ports_set("sctp", 1, 0x2345, 0xFFFF, 0xFF00), odp.Output(2)]), 2)
    want_sctp = with_crc32c(struct.pack("!HHI", 1, 0x2370, 0x0BADCAFE) + bytes(4) + bytes(range(7, 7 + n)))
    assert got == fr[:34] + want_sctp + fr[34 + len(sctp):]


def test_set_sctp_keeps_a_wrong_crc32c_exactly_as_wrong(dp):
    """As Open vSwitch: the checksum changes by the ports' share only, so a receiver still sees
    the corruption it would have seen."""
    fr = bytes(Ether(src=MAC1, dst=MAC2) / IP(src="10.0.0.1", dst="10.0.0.2")
               / SCTP(sport=5000, dport=6000, chksum=0xDEADBEEF) / SCTPChunkData(data=b"corrupted?"))
    got = only(run(dp, fr, [ports_set("sctp", dport=80, dmask=0xFFFF), odp.Output(2)]), 2)
    good_old = Ether(rebuilt(Ether(fr)))[SCTP].chksum
    p = Ether(fr)
    p[SCTP].dport = 80
    good_new = Ether(rebuilt(p))[SCTP].chksum
    assert good_old != 0xDEADBEEF
    assert Ether(got)[SCTP].chksum == 0xDEADBEEF ^ good_old ^ good_new
    assert got[:-len(bytes(Ether(got)[SCTP]))] == fr[:-len(bytes(Ether(fr)[SCTP]))]   # headers before: as they were
    assert Ether(got)[SCTP].dport == 80


@pytest.mark.parametrize("make", [lambda: icmp4(), lambda: icmp4(options=[IPOption_RR(routers=["1.2.3.4"])]),
                                  lambda: tagged(icmp4(), (0x8100, 5, 0, 0)), lambda: icmp4(3, 1)],
                         ids=["echo", "options-echo", "vlan-echo", "unreachable"])
@pytest.mark.parametrize("type_,code,tmask,cmask", [(0, 0, 0xFF, 0), (3, 13, 0xFF, 0xFF), (0xF5, 0x0A, 0x0F, 0xF0),
                                                    (0, 4, 0, 0xFF)])
def test_set_icmp_type_code_fixes_the_checksum(dp, make, type_, code, tmask, cmask):
    fr = make()
    at = l4_at(fr, ICMP)
    got = only(run(dp, fr, [icmp_set("icmp", type_, code, tmask, cmask), odp.Output(2)]), 2)
    want = masked(fr[at:at + 2], bytes([type_, code]), bytes([tmask, cmask]))
    assert got == edited(fr, at, want)
    assert_checksums_ok(got)


@pytest.mark.parametrize("ext", [False, True], ids=["plain", "hbh"])
@pytest.mark.parametrize("type_,code,tmask,cmask", [(129, 0, 0xFF, 0), (1, 4, 0xFF, 0xFF), (0x0F, 0xFF, 0x0F, 0x03)])
def test_set_icmpv6_type_code_fixes_the_checksum(dp, ext, type_, code, tmask, cmask):
    fr = icmp6(ext)
    at = l4_at(fr, ICMPv6EchoRequest)
    got = only(run(dp, fr, [icmp_set("icmpv6", type_, code, tmask, cmask), odp.Output(2)]), 2)
    want = masked(fr[at:at + 2], bytes([type_, code]), bytes([tmask, cmask]))
    assert got == edited(fr, at, want)
    assert_checksums_ok(got)


@pytest.mark.parametrize("make", [arp_frame, lambda: tagged(arp_frame(), (0x88A8, 7, 0, 0), (0x8100, 5, 0, 0))],
                         ids=["arp", "qinq-arp"])
@pytest.mark.parametrize("what", ["op", "sha", "spa", "tha", "tpa", "all", "partial"])
def test_set_arp_fields(dp, make, what):
    fr = make()
    sha, spa, tha, tpa = mac("0a:0b:0c:0d:0e:0f"), ip4b("192.168.7.7"), mac("1a:1b:1c:1d:1e:1f"), ip4b("172.16.0.9")
    ones = dict(opmask=0xFFFF, shamask=b"\xff" * 6, spamask=b"\xff" * 4, thamask=b"\xff" * 6, tpamask=b"\xff" * 4)
    args = {"op": dict(op=2, opmask=0xFFFF), "sha": dict(sha=sha, shamask=b"\xff" * 6),
            "spa": dict(spa=spa, spamask=b"\xff" * 4), "tha": dict(tha=tha, thamask=b"\xff" * 6),
            "tpa": dict(tpa=tpa, tpamask=b"\xff" * 4),
            "all": dict(op=2, sha=sha, spa=spa, tha=tha, tpa=tpa, **ones),
            "partial": dict(op=0x0302, sha=sha, spa=spa, tha=tha, tpa=tpa, opmask=0x00FF, shamask=b"\0\0\0\xff\xff\xff",
                            spamask=b"\xff\0\0\0", thamask=b"\x0f" * 6, tpamask=b"\0\0\0\xf0")}[what]
    got = only(run(dp, fr, [arp_set(**args), odp.Output(2)]), 2)
    full = dict(op=0, sha=b"\0" * 6, spa=b"\0" * 4, tha=b"\0" * 6, tpa=b"\0" * 4, opmask=0, shamask=b"\0" * 6,
                spamask=b"\0" * 4, thamask=b"\0" * 6, tpamask=b"\0" * 4) | args
    p = Ether(fr)
    a = p[ARP]
    a.op = (a.op & ~full["opmask"]) | (full["op"] & full["opmask"])
    a.hwsrc = ":".join("%02x" % b for b in masked(mac(a.hwsrc), full["sha"], full["shamask"]))
    a.psrc = b2ip4(masked(ip4b(a.psrc), full["spa"], full["spamask"]))
    a.hwdst = ":".join("%02x" % b for b in masked(mac(a.hwdst), full["tha"], full["thamask"]))
    a.pdst = b2ip4(masked(ip4b(a.pdst), full["tpa"], full["tpamask"]))
    assert got == bytes(p)
    assert len(got) == len(fr)


def test_set_icmp_type_to_an_all_zero_message_gives_checksum_ffff(dp):
    """Echo request id 0 seq 0 turned into an echo reply: every byte zero, whose checksum is
    0xffff; RFC 1624's update alone would give 0x0000, the other zero, which receivers reject."""
    fr = bytes(Ether(src=MAC1, dst=MAC2) / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=8, id=0, seq=0))
    at = l4_at(fr, ICMP)
    got = only(run(dp, fr, [icmp_set("icmp", 0, 0, 0xFF, 0), odp.Output(2)]), 2)
    assert got[at + 2:at + 4] == b"\xff\xff"
    assert got == edited(fr, at, b"\0\0")
    # and back: a message that sums to -0 keeps its checksum 0x0000
    assert only(run(dp, got, [icmp_set("icmp", 8, 0, 0xFF, 0), odp.Output(2)]), 2) == fr


def test_set_arp_op_low_byte_keeps_the_high_byte(dp):
    """The key holds an op's low byte only (as Open vSwitch's): translation writes that byte."""
    fr = arp_frame(op=0x0101)
    got = only(run(dp, fr, [arp_set(op=0x0002, opmask=0x00FF), odp.Output(2)]), 2)
    assert Ether(got)[ARP].op == 0x0102


@pytest.mark.parametrize("make,layer", [(lambda: ns(SLL), ICMPv6ND_NS), (lambda: na(TLL), ICMPv6ND_NA),
                                        (lambda: ns(), ICMPv6ND_NS)], ids=["ns-sll", "na-tll", "ns-bare"])
@pytest.mark.parametrize("tmask", [b"\xff" * 16, b"\0" * 14 + b"\xff\x0f"], ids=["whole", "masked"])
def test_set_nd_target_fixes_the_checksum(dp, make, layer, tmask):
    fr = make()
    at = l4_at(fr, layer) + 8
    new = ip6b("2001:db8:aaaa::77")
    got = only(run(dp, fr, [nd_set(target=new, tmask=tmask), odp.Output(2)]), 2)
    assert got == edited(fr, at, masked(fr[at:at + 16], new, tmask))
    assert_checksums_ok(got)


@pytest.mark.parametrize("opts,kind", [((SLL,), "sll"), ((NONCE, SLL), "sll"), ((SLL, NONCE), "sll"),
                                       ((TLL,), "tll"), ((NONCE, TLL), "tll")],
                         ids=["sll", "nonce-sll", "sll-nonce", "tll", "nonce-tll"])
@pytest.mark.parametrize("mask", [b"\xff" * 6, b"\0\0\0\xff\xf0\x0f"], ids=["whole", "masked"])
def test_set_nd_link_layer_address_option(dp, opts, kind, mask):
    fr = ns(*opts) if kind == "sll" else na(*opts)
    layer = ICMPv6NDOptSrcLLAddr if kind == "sll" else ICMPv6NDOptDstLLAddr
    at = l4_at(fr, layer) + 2
    new = mac("0a:bb:cc:dd:ee:ff")
    act = nd_set(sll=new, smask=mask) if kind == "sll" else nd_set(tll=new, lmask=mask)
    got = only(run(dp, fr, [act, odp.Output(2)]), 2)
    assert got == edited(fr, at, masked(fr[at:at + 6], new, mask))
    assert_checksums_ok(got)


@pytest.mark.parametrize("frame,action", [
    (ns(), nd_set(sll=b"\x0a" * 6, smask=b"\xff" * 6)),                     # OVS: no option, nothing written
    (na(), nd_set(tll=b"\x0a" * 6, lmask=b"\xff" * 6)),
    (ns(SLL), nd_set(tll=b"\x0a" * 6, lmask=b"\xff" * 6)),                  # the other kind's option
    (ns(TLL, SLL), nd_set(sll=b"\x0a" * 6, smask=b"\xff" * 6)),             # OVS: the first one only
    (ns(Raw(b"\x01\x00" + bytes(6)), SLL), nd_set(sll=b"\x0a" * 6, smask=b"\xff" * 6)),   # length 0: the walk stops
    (ns(Raw(b"\x05\x04" + bytes(6)), SLL), nd_set(sll=b"\x0a" * 6, smask=b"\xff" * 6)),   # runs past the end
    (ns(Raw(b"\x01\x02" + bytes(14))), nd_set(sll=b"\x0a" * 6, smask=b"\xff" * 6)),      # an SLL of 16 bytes
], ids=["ns-without-sll", "na-without-tll", "tll-on-ns-with-sll", "sll-behind-tll", "zero-length-option",
        "overlong-option", "sll-not-ethernet"])
def test_set_nd_option_that_is_not_there_leaves_the_frame_unchanged(dp, frame, action):
    assert run(dp, frame, [action, odp.Output(2)])[2] == [frame]


def test_set_nd_target_and_sll_together(dp):
    fr = ns(NONCE, SLL)
    tgt, new = ip6b("2001:db8::99"), mac("0a:bb:cc:dd:ee:ff")
    got = only(run(dp, fr, [nd_set(target=tgt, sll=new, tmask=b"\xff" * 16, smask=b"\xff" * 6), odp.Output(2)]), 2)
    p = Ether(fr)
    p[ICMPv6ND_NS].tgt = b2ip6(tgt)
    p[ICMPv6NDOptSrcLLAddr].lladdr = "0a:bb:cc:dd:ee:ff"
    assert got == expect(p)
    assert_checksums_ok(got)


def test_nd_sll_cut_short_by_the_ipv6_payload_length_is_not_written(dp):
    """An SLL option past the IPv6 payload (in Ethernet padding) is no option."""
    fr = bytearray(ns(SLL))
    fr[18:20] = struct.pack("!H", 24)             # the payload ends after the target
    fr = bytes(fr)
    got = only(run(dp, fr, [nd_set(sll=b"\x0a" * 6, smask=b"\xff" * 6), odp.Output(2)]), 2)
    assert got == fr


# ---- a set-field on a frame without that header -------------------------------------------

ARP_FRAME = bytes(Ether(src=MAC1, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=MAC1, psrc="10.0.0.1",
                                                                 pdst="10.0.0.2"))
ICMP_FRAME = bytes(Ether(src=MAC1, dst=MAC2) / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP() / Raw(b"x" * 8))
LATER_FRAGMENT = bytes(Ether(src=MAC1, dst=MAC2) / IP(src="10.0.0.1", dst="10.0.0.2", proto=6, frag=100)
                       / Raw(b"\x12\x34\x00\x50" + b"\0" * 28))
SCTP_SHORT = bytes(Ether(src=MAC1, dst=MAC2) / IP(src="10.0.0.1", dst="10.0.0.2", proto=132)
                   / Raw(b"\x13\x88\x17\x70\0\0\0\x01\xaa\xbb\xcc"))          # 11 bytes of SCTP header
ICMP_SHORT = bytes(Ether(src=MAC1, dst=MAC2) / IP(src="10.0.0.1", dst="10.0.0.2", proto=1) / Raw(b"\x08\x00\xf7"))
LATER_ICMP_FRAGMENT = bytes(Ether(src=MAC1, dst=MAC2) / IP(src="10.0.0.1", dst="10.0.0.2", proto=1, frag=10)
                            / Raw(b"\x08\x00\xf7\xff" + bytes(20)))
ARP_NOT_ETH_IP = bytes(Ether(src=MAC1, dst="ff:ff:ff:ff:ff:ff") / ARP(hwtype=6, hwlen=6, psrc="10.0.0.1"))
LLDP_FRAME = bytes(Ether(src=MAC1, dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(b"\x02\x07\x04" + b"\0" * 40))


@pytest.mark.parametrize("frame,action", [
    (ARP_FRAME, ipv4_set(src=b"\x01" * 4, smask=b"\xff" * 4, ttl=1, ttlmask=0xFF)),
    (ARP_FRAME, ipv6_set(src=b"\x01" * 16, smask=b"\xff" * 16)),
    (udp6(), ipv4_set(src=b"\x01" * 4, smask=b"\xff" * 4, tos=4, tosmask=0xFF)),
    (tcp4(), ipv6_set(dst=b"\x01" * 16, dmask=b"\xff" * 16, hlim=1, hmask=0xFF)),
    (udp4(), ports_set("tcp", 1, 2, 0xFFFF, 0xFFFF)),
    (tcp6(), ports_set("udp", 1, 2, 0xFFFF, 0xFFFF)),
    (ICMP_FRAME, ports_set("udp", 1, 2, 0xFFFF, 0xFFFF)),
    (ICMP_FRAME, ports_set("tcp", 1, 2, 0xFFFF, 0xFFFF)),
    (LATER_FRAGMENT, ports_set("tcp", 1, 2, 0xFFFF, 0xFFFF)),
    (tcp4(), odp.SetMasked("vlan", b"\x0f\xff", b"\xff\xff")),
    (LLDP_FRAME, ipv4_set(src=b"\x01" * 4, smask=b"\xff" * 4)),
    (LLDP_FRAME, ports_set("udp", 1, 2, 0xFFFF, 0xFFFF)),
    (udp4(), ports_set("sctp", 1, 2, 0xFFFF, 0xFFFF)),
    (ICMP_FRAME, ports_set("sctp", 1, 2, 0xFFFF, 0xFFFF)),
    (SCTP_SHORT, ports_set("sctp", 1, 2, 0xFFFF, 0xFFFF)),
    (icmp6(), icmp_set("icmp", 1, 1, 0xFF, 0xFF)),
    (ICMP_FRAME, icmp_set("icmpv6", 1, 1, 0xFF, 0xFF)),
    (udp4(), icmp_set("icmp", 1, 1, 0xFF, 0xFF)),
    (ICMP_SHORT, icmp_set("icmp", 1, 1, 0xFF, 0xFF)),
    (LATER_ICMP_FRAGMENT, icmp_set("icmp", 1, 1, 0xFF, 0xFF)),
    (ARP_FRAME, icmp_set("icmp", 1, 1, 0xFF, 0xFF)),
    (tcp4(), arp_set(op=2, opmask=0xFFFF, spa=b"\x01" * 4, spamask=b"\xff" * 4)),
    (ARP_NOT_ETH_IP, arp_set(op=2, opmask=0xFFFF, spa=b"\x01" * 4, spamask=b"\xff" * 4)),
    (ARP_FRAME[:14 + 27], arp_set(tpa=b"\x01" * 4, tpamask=b"\xff" * 4)),
    (ICMP_FRAME, nd_set(target=b"\x01" * 16, tmask=b"\xff" * 16)),
    (icmp6(), nd_set(target=b"\x01" * 16, tmask=b"\xff" * 16)),                # 16 bytes: no room for a target
    (tcp6(), nd_set(target=b"\x01" * 16, tmask=b"\xff" * 16)),
    (LLDP_FRAME, arp_set(op=2, opmask=0xFFFF)),
    (LLDP_FRAME, nd_set(target=b"\x01" * 16, tmask=b"\xff" * 16)),
], ids=["ipv4-on-arp", "ipv6-on-arp", "ipv4-on-ipv6", "ipv6-on-ipv4", "tcp-on-udp", "udp-on-tcp",
        "udp-on-icmp", "tcp-on-icmp", "tcp-on-later-fragment", "vlan-on-untagged", "ipv4-on-lldp",
        "udp-on-lldp", "sctp-on-udp", "sctp-on-icmp", "sctp-cut-short",
        "icmp-on-icmpv6", "icmpv6-on-icmp", "icmp-on-udp", "icmp-cut-short", "icmp-on-later-fragment",
        "icmp-on-arp", "arp-on-ipv4", "arp-not-ethernet-ipv4", "arp-cut-short", "nd-on-icmp", "nd-on-echo6",
        "nd-on-tcp6", "arp-on-lldp", "nd-on-lldp"])
def test_set_on_a_frame_without_that_header_leaves_it_unchanged(dp, frame, action):
    assert run(dp, frame, [action, odp.Output(2)])[2] == [frame]


def test_set_ipv4_on_a_later_fragment_fixes_the_ip_checksum_only(dp):
    got = only(run(dp, LATER_FRAGMENT, [ipv4_set(dst=ip4b("10.9.9.9"), dmask=b"\xff" * 4), odp.Output(2)]), 2)
    p = Ether(LATER_FRAGMENT)
    p[IP].dst = "10.9.9.9"
    assert got == expect(p)                       # the payload (no L4 header here) is untouched
    assert got[34:] == LATER_FRAGMENT[34:]


@pytest.mark.parametrize("frame,action", [
    (bytes(Ether(src=MAC1, dst=MAC2, type=0x0800) / Raw(bytes(46))),
     ipv4_set(src=b"\x01" * 4, smask=b"\xff" * 4)),                         # version 0
    (bytes(Ether(src=MAC1, dst=MAC2, type=0x0800) / Raw(b"\x4f" + bytes(45))),
     ipv4_set(src=b"\x01" * 4, smask=b"\xff" * 4)),                         # IHL 60 > what is there
    (bytes(Ether(src=MAC1, dst=MAC2, type=0x86DD) / Raw(bytes(60))),
     ipv6_set(src=b"\x01" * 16, smask=b"\xff" * 16)),                       # version 0
    (bytes(Ether(src=MAC1, dst=MAC2, type=0x86DD) / Raw(b"\x60" + bytes(30))),
     ipv6_set(src=b"\x01" * 16, smask=b"\xff" * 16, hlim=1, hmask=0xFF)),   # header cut short
], ids=["ipv4-version-0", "ipv4-ihl-too-long", "ipv6-version-0", "ipv6-truncated"])
def test_set_on_a_malformed_ip_header_leaves_the_frame_unchanged(dp, frame, action):
    assert parse(frame, 1)[BY_NAME["ipv4_src"].key_offset:][:16] == bytes(16)   # the parser saw no IP
    assert run(dp, frame, [action, odp.Output(2)])[2] == [frame]


# ---- clone, sample ------------------------------------------------------------------------

def test_clone_with_different_rewrites_to_two_ports(dp):
    fr = tcp4()
    a = ipv4_set(dst=ip4b("10.1.1.1"), dmask=b"\xff" * 4)
    b = ports_set("tcp", dport=8443, dmask=0xFFFF)
    out = run(dp, fr, [odp.Clone((a, odp.Output(2))), odp.Clone((b, odp.PushVlan(9), odp.Output(3))),
                       odp.Output(4)])
    pa, pb = Ether(fr), Ether(fr)
    pa[IP].dst = "10.1.1.1"
    pb[TCP].dport = 8443
    want_b = expect(pb)
    assert out[2] == [expect(pa)]
    assert out[3] == [want_b[:12] + b"\x81\x00\x00\x09" + want_b[12:]]
    assert out[4] == [fr]                         # the original went on unmodified
    assert out[1] == []


def test_nested_clones(dp):
    fr = udp4()
    out = run(dp, fr, [odp.Clone((odp.PushVlan(1), odp.Clone((odp.PushVlan(2), odp.Output(3))), odp.Output(2))),
                       odp.Output(4)])
    assert out[2] == [fr[:12] + b"\x81\x00\x00\x01" + fr[12:]]
    assert out[3] == [fr[:12] + b"\x81\x00\x00\x02\x81\x00\x00\x01" + fr[12:]]
    assert out[4] == [fr]



@pytest.mark.parametrize("side", [lambda o: odp.Clone((o,)), lambda o: odp.Sample(1.0, (o,))],
                         ids=["clone", "sample"])
def test_side_branch_output_is_not_changed_by_later_actions(dp, side):
    fr = tcp4()
    later = eth_set(src=b"\x0a" * 6, smask=b"\xff" * 6)
    out = run(dp, fr, [side(odp.Output(2)), later, odp.Output(3)])
    assert out[3] == [fr[:6] + b"\x0a" * 6 + fr[12:]]
    assert out[2] == [fr]


def test_userspace_in_a_clone_keeps_the_frame_as_it_was(dp):
    fr = tcp4()
    dp.execute(fr, 1, odp.encode([odp.Clone((odp.Userspace(1),)), eth_set(src=b"\x0a" * 6, smask=b"\xff" * 6),
                                  odp.Output(2)]))
    assert dp.drain(2) == [fr[:6] + b"\x0a" * 6 + fr[12:]]
    (u,) = dp.upcalls()
    data = u.data
    u.free()
    assert data == fr


def test_recirculation_in_a_clone_leaves_the_original_alone(dp):
    k, m = key_mask(recirc_id=5)
    dp.flow_put(1, k, m, odp.encode([eth_set(src=b"\x0a" * 6, smask=b"\xff" * 6), odp.Output(2)]))
    fr = tcp4()
    out = run(dp, fr, [odp.Clone((odp.Recirc(5),)), odp.Output(3)])
    assert out[2] == [fr[:6] + b"\x0a" * 6 + fr[12:]]
    assert out[3] == [fr]


def test_userspace_not_last_then_rewrite(dp):
    fr = tcp4()
    dp.execute(fr, 1, odp.encode([odp.Userspace(9), eth_set(src=b"\x0a" * 6, smask=b"\xff" * 6), odp.Output(3)]))
    (u,) = dp.upcalls()
    assert (u.cookie, u.data) == (9, fr)
    u.free()
    assert dp.drain(3) == [fr[:6] + b"\x0a" * 6 + fr[12:]]


def test_sample_probability_one_and_zero(dp):
    frames_ = [udp4()] * 200
    for fr in frames_:
        dp.execute(fr, 1, odp.encode([odp.Sample(1.0, (odp.Output(2),)), odp.Sample(0.0, (odp.Output(3),)),
                                      odp.Output(4)]))
    assert dp.drain(2) == frames_ and dp.drain(3) == [] and dp.drain(4) == frames_


def test_sample_with_a_rewrite_leaves_the_original_alone(dp):
    fr = tcp4()
    out = run(dp, fr, [odp.Sample(1.0, (ipv4_set(ttl=1, ttlmask=0xFF), odp.Output(2))), odp.Output(3)])
    p = Ether(fr)
    p[IP].ttl = 1
    assert out[2] == [expect(p)] and out[3] == [fr]


def test_half_probability_samples_about_half(dp):
    fr = udp4()
    for _ in range(2000):
        dp.execute(fr, 1, odp.encode([odp.Sample(0.5, (odp.Output(2),))]))
    n = len(dp.drain(2))
    assert 850 < n < 1150


# ---- truncate -----------------------------------------------------------------------------

def test_truncate_cuts_every_later_output(dp):
    fr = bytes(Ether(src=MAC1, dst=MAC2) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP() / Raw(bytes(range(200))))
    out = run(dp, fr, [odp.Output(1), odp.Truncate(60), odp.Output(2), odp.Output(3), odp.Truncate(100),
                       odp.Output(4)])
    assert out == {1: [fr], 2: [fr[:60]], 3: [fr[:60]], 4: [fr[:100]]}


def test_truncate_longer_than_the_frame_changes_nothing(dp):
    fr = udp4()
    assert run(dp, fr, [odp.Truncate(1500), odp.Output(2), odp.Output(3)]) == {1: [], 2: [fr], 3: [fr], 4: []}


def test_truncate_then_rewrite(dp):
    fr = tcp4()
    out = run(dp, fr, [odp.Truncate(30), ipv4_set(ttl=9, ttlmask=0xFF), odp.Output(2), odp.Output(3)])
    p = Ether(fr)
    p[IP].ttl = 9
    assert out[2] == out[3] == [expect(p)[:30]]


def test_truncated_flow_output(dp):
    key, mask = key_mask(in_port=1)
    dp.flow_put(1, key, mask, odp.encode([odp.Output(2), odp.Truncate(20), odp.Output(3)]))
    frames_ = [tcp4(), udp4(), tcp6()]
    dp.inject(1, frames_)
    dp.poll(1)
    assert dp.drain(2) == frames_ and dp.drain(3) == [f[:20] for f in frames_]


# ---- userspace ----------------------------------------------------------------------------

def test_userspace_upcalls_with_the_cookie_and_the_frame_goes_on(dp):
    key, mask = key_mask(in_port=1)
    dp.flow_put(1, key, mask, odp.encode([odp.Userspace(0xDEADBEEF12345678), odp.Output(2)]))
    frames_ = [tcp4(), udp6()]
    tick(dp)
    dp.inject(1, frames_)
    dp.poll(1)
    ups = dp.upcalls()
    assert [(u.type, u.cookie, u.data, u.key) for u in ups] == \
           [("action", 0xDEADBEEF12345678, f, parse(f, 1)) for f in frames_]
    for u in ups:
        u.free()
    assert dp.drain(2) == frames_


def test_userspace_sees_the_frame_as_rewritten_so_far(dp):
    fr = tcp4()
    dp.execute(fr, 1, odp.encode([ipv4_set(ttl=2, ttlmask=0xFF), odp.Userspace(5), odp.PushVlan(3), odp.Output(2)]))
    (u,) = dp.upcalls()
    p = Ether(fr)
    p[IP].ttl = 2
    rewritten = expect(p)
    assert (u.type, u.cookie, u.data) == ("action", 5, rewritten)
    u.free()
    assert dp.drain(2) == [rewritten[:12] + b"\x81\x00\x00\x03" + rewritten[12:]]


def test_userspace_last_hands_the_frame_itself(dp):
    fr = udp4()
    dp.execute(fr, 1, odp.encode([odp.Output(3), odp.Userspace(77)]))
    (u,) = dp.upcalls()
    assert (u.type, u.cookie, u.data) == ("action", 77, fr)
    u.free()
    assert dp.drain(3) == [fr]


# ---- recirculation ------------------------------------------------------------------------

def test_hash_and_recirculate_then_output(dp):
    k1, m1 = key_mask(in_port=1, recirc_id=0)
    k2, m2 = key_mask(recirc_id=5)
    dp.flow_put(1, k1, m1, odp.encode([odp.Hash(0), odp.Recirc(5)]))
    dp.flow_put(2, k2, m2, odp.encode([odp.PushVlan(5), odp.Output(2)]))
    recircs = int(dp.pmd_stats()[MANUAL_PMD]["recirculations"])
    fr = tcp4()
    dp.inject(1, [fr])
    dp.poll(1)
    assert dp.drain(2) == [fr[:12] + b"\x81\x00\x00\x05" + fr[12:]]
    assert int(dp.pmd_stats()[MANUAL_PMD]["recirculations"]) == recircs + 1
    assert dp.upcalls() == []
    # Packet-out through the same actions recirculates too.
    dp.execute(fr, 1, odp.encode([odp.Hash(0), odp.Recirc(5)]))
    assert dp.drain(2) == [fr[:12] + b"\x81\x00\x00\x05" + fr[12:]]


def test_recirculation_not_last_works_on_a_copy(dp):
    k, m = key_mask(recirc_id=5)
    dp.flow_put(1, k, m, odp.encode([eth_set(src=b"\x0a" * 6, smask=b"\xff" * 6), odp.Output(2)]))
    fr = tcp4()
    out = run(dp, fr, [odp.Recirc(5), odp.Output(3)])
    assert out[2] == [fr[:6] + b"\x0a" * 6 + fr[12:]]
    assert out[3] == [fr]


def test_recirculated_frame_sees_earlier_rewrites(dp):
    k1, m1 = key_mask(in_port=1, recirc_id=0)
    dp.flow_put(1, k1, m1, odp.encode([ipv4_set(dst=ip4b("10.0.0.99"), dmask=b"\xff" * 4), odp.Recirc(6)]))
    k2, m2 = key_mask(recirc_id=6, eth_type=0x0800, ipv4_dst=0x0A000063)
    dp.flow_put(2, k2, m2, odp.encode([odp.Output(3)]))
    fr = tcp4()
    dp.inject(1, [fr])
    dp.poll(1)
    p = Ether(fr)
    p[IP].dst = "10.0.0.99"
    assert dp.drain(3) == [expect(p)]


def udp_from(sport: int) -> bytes:
    return bytes(Ether(src=MAC1, dst=MAC2) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=sport, dport=53))


def test_recirculated_frame_is_matched_by_the_tag_pushed_before(dp):
    # The second pass looks the frame up as the actions before left it: the key is taken on
    # from the first pass only while nothing changed the frame; a pushed tag makes it parsed again.
    k1, m1 = key_mask(in_port=1, recirc_id=0)
    dp.flow_put(1, k1, m1, odp.encode([odp.PushVlan(7), odp.Hash(0), odp.Recirc(8)]))
    k2, m2 = key_mask(recirc_id=8, vlan_vid=0x1007)
    dp.flow_put(2, k2, m2, odp.encode([odp.Output(2)]))
    k3, m3 = key_mask(recirc_id=8, vlan_vid=0)
    dp.flow_put(3, k3, m3, odp.encode([odp.Output(3)]))       # the first pass's untagged key: to 3
    frames_ = [udp_from(1000 + i) for i in range(32)]
    dp.inject(1, frames_)
    dp.poll(1)
    assert dp.drain(2) == [fr[:12] + b"\x81\x00\x00\x07" + fr[12:] for fr in frames_]
    assert dp.drain(3) == []


def test_a_burst_recirculates_twice_in_order(dp):
    # A whole burst through two recirculations (each pass looked up as a batch): every frame
    # out once, in the order it came, each counted twice.
    k1, m1 = key_mask(in_port=1, recirc_id=0)
    dp.flow_put(1, k1, m1, odp.encode([odp.Hash(3), odp.Recirc(5)]))
    k2, m2 = key_mask(recirc_id=5)
    dp.flow_put(2, k2, m2, odp.encode([odp.Recirc(6)]))
    k3, m3 = key_mask(recirc_id=6)
    dp.flow_put(3, k3, m3, odp.encode([odp.Output(2)]))
    recircs = int(dp.pmd_stats()[MANUAL_PMD]["recirculations"])
    frames_ = [udp_from(2000 + i) for i in range(32)]
    for rnd in range(2):                          # the second round from the exact-match cache
        dp.inject(1, frames_)
        dp.poll(1)
        assert dp.drain(2) == frames_
        assert all(dp.drain(p) == [] for p in PORTS if p != 2)
    assert int(dp.pmd_stats()[MANUAL_PMD]["recirculations"]) == recircs + 128
    assert dp.upcalls() == []


def test_second_pass_cache_follows_the_flow_table(dp):
    # The second pass of an unchanged frame is found by its first flow and dp_hash bucket
    # (the recirculation cache): a flow replaced under it is seen at once.
    k1, m1 = key_mask(in_port=1, recirc_id=0)
    dp.flow_put(1, k1, m1, odp.encode([odp.Hash(3), odp.Recirc(5)]))
    k2, m2 = key_mask(recirc_id=5)
    dp.flow_put(2, k2, m2, odp.encode([odp.Output(2)]))
    frames_ = [udp_from(3000 + i) for i in range(32)]
    for _ in range(2):
        dp.inject(1, frames_)
        dp.poll(1)
        assert dp.drain(2) == frames_
    dp.flow_del([2])
    dp.flow_put(3, k2, m2, odp.encode([odp.Output(3)]))
    dp.inject(1, frames_)
    dp.poll(1)
    assert dp.drain(3) == frames_ and dp.drain(2) == []


def test_second_pass_cache_never_answers_for_a_field_the_first_flow_did_not_match(dp):
    # The first flow matches in_port alone; the second passes split on ipv4_dst, which it does
    # not read: frames of one dp_hash bucket but another destination must not share an answer.
    k1, m1 = key_mask(in_port=1, recirc_id=0)
    dp.flow_put(1, k1, m1, odp.encode([odp.Hash(3), odp.Recirc(5)]))
    for ufid, (dst, port) in enumerate([(0x0A000002, 2), (0x0A000003, 3)], start=2):
        k, m = key_mask(recirc_id=5, eth_type=0x0800, ipv4_dst=dst)
        dp.flow_put(ufid, k, m, odp.encode([odp.Output(port)]))
    frames_ = [bytes(Ether(src=MAC1, dst=MAC2) / IP(src="10.0.0.1", dst=f"10.0.0.{2 + i % 2}")
                     / UDP(sport=4000 + i, dport=53)) for i in range(512)]   # buckets shared, surely
    for _ in range(2):
        for i in range(0, len(frames_), 32):
            dp.inject(1, frames_[i:i + 32])
            dp.poll(1)
        assert dp.drain(2) == frames_[0::2] and dp.drain(3) == frames_[1::2]


def one_pass(d) -> int:
    return int(d.pmd_stats()[MANUAL_PMD]["one_pass"])


def test_a_second_pass_the_cache_knows_runs_without_its_own_lookup_in_order(dp):
    # A balance-tcp bond's shape: hash, recirc; the second passes by dp_hash bucket.  Once the
    # recirculation cache knows them (the first burst), a burst's second passes are taken from
    # it (counted in one_pass), each frame by its own bucket's flow, in order on each port; a
    # second pass whose flow recirculates again is looked up by key, not taken from the cache.
    k1, m1 = key_mask(in_port=1, recirc_id=0)
    dp.flow_put(1, k1, m1, odp.encode([odp.Hash(9), odp.Recirc(5)]))
    for ufid, (bit, port) in enumerate([(0, 2), (1, 3)], start=2):
        k, m = key_mask(recirc_id=5, dp_hash=(bit, 1))
        dp.flow_put(ufid, k, m, odp.encode([odp.Output(port)]))
    # 16 flows, and 16 frames of one more flow between them (its frames told apart by payload)
    flow = [bytes(Ether(src=MAC1, dst=MAC2) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=4999, dport=53)
                  / Raw(bytes([i]))) for i in range(16)]
    frames_ = [f for i in range(16) for f in (udp_from(5000 + i), flow[i])]

    def send():
        dp.inject(1, frames_)
        dp.poll(1)
        out = {p: dp.drain(p) for p in (2, 3)}
        assert [f for f in out[2] + out[3] if f in flow] == flow   # the one flow in order
        return {p: sorted(f) for p, f in out.items()}
    first = send()
    assert first[2] and first[3] and sorted(first[2] + first[3]) == sorted(frames_)
    before = one_pass(dp)
    for _ in range(3):
        assert send() == first                                    # each frame by its bucket
    assert one_pass(dp) == before + 3 * len(frames_)
    # bit 1's flow now recirculates again (it needs its key): looked up by key, not taken from
    # the cache; its own second pass (a third) is, from the next burst on
    k, m = key_mask(recirc_id=5, dp_hash=(1, 1))
    dp.flow_put(3, k, m, odp.encode([odp.Recirc(6)]))
    k, m = key_mask(recirc_id=6)
    dp.flow_put(4, k, m, odp.encode([odp.Output(3)]))
    for third_cached in (False, True):
        before = one_pass(dp)
        assert send() == first
        assert one_pass(dp) - before == len(first[2]) + (len(first[3]) if third_cached else 0)


def test_a_recirculation_keeps_its_dp_hash_when_a_later_hash_rewrites_the_key(dp):
    # A list hashes again after a recirculation that is not last: the second pass is by the
    # first hash's bucket, though the key's dp_hash was rewritten before the burst's second
    # passes ran (taken from the recirculation cache or looked up).
    for ufid, (bit, port) in enumerate([(0, 2), (1, 3)], start=2):
        k, m = key_mask(recirc_id=5, dp_hash=(bit, 1))
        dp.flow_put(ufid, k, m, odp.encode([odp.Output(port)]))
    k1, m1 = key_mask(in_port=1, recirc_id=0)
    frames_ = [udp_from(6000 + i) for i in range(512)]           # every bucket's cache entry made

    def send(actions):
        dp.flow_put(1, k1, m1, odp.encode(actions))
        for i in range(0, len(frames_), 32):
            dp.inject(1, frames_[i:i + 32])
            dp.poll(1)
        dp.flow_del([1])
        return {p: sorted(dp.drain(p)) for p in (2, 3, 4)}
    want = send([odp.Hash(9), odp.Recirc(5)])
    # a second basis that puts every frame in the other bit's bucket (the hash is a CRC: two
    # bases' hashes of one frame differ by the same bits for every frame)
    other = next(b for b in range(10, 100) if send([odp.Hash(b), odp.Recirc(5)])[2] == want[3])
    want[4] = sorted(frames_)
    # each send's first burst fills the cache, the other 15 are taken from it
    assert send([odp.Hash(9), odp.Recirc(5), odp.Hash(other), odp.Output(4)]) == want


def bucket_pass(d) -> int:
    return int(d.pmd_stats()[MANUAL_PMD]["bucket_pass"])


def send_bursts(d, frames_: list[bytes], ports=(2, 3, 4)) -> dict[int, list[bytes]]:
    """FRAMES_ in on port 1, 32 a burst; what each of PORTS sent, in order."""
    out: dict[int, list[bytes]] = {p: [] for p in ports}
    for i in range(0, len(frames_), 32):
        d.inject(1, frames_[i:i + 32])
        d.poll(1)
        for p in ports:
            out[p] += d.drain(p)
    return out


def bond_first_pass(d) -> None:
    k1, m1 = key_mask(in_port=1, recirc_id=0)
    d.flow_put(1, k1, m1, odp.encode([odp.Hash(9), odp.Recirc(5)]))


def bucket_flow(value: int, mask: int = 0xFF) -> tuple[bytes, bytes]:
    """A balance-tcp bond's second pass, as the slow path installs it: in_port, recirc_id and
    the dp_hash bucket, nothing else."""
    return key_mask(in_port=1, recirc_id=5, dp_hash=(value, mask))


def test_recirculation_buckets_answer_as_the_lookup_for_every_bucket(dp):
    # The second passes of a bond's shape are taken from the recirculation buckets (one array
    # read per frame, counted in bucket_pass); with them off (a flow that leaves recirc_id
    # wildcarded is in the table) the same frames are looked up by key: every frame leaves by
    # the same port, and every flow counts the same frames (the order across flows may differ:
    # the lookup runs the recirculation cache's hits first).  4,096 flows over 256 buckets:
    # every bucket's flow is hit (checked on its counter).
    bond_first_pass(dp)
    flows = {100: bucket_flow(0, 0x0F)}             # one flow over the 16 buckets b & 0x0f == 0
    ports = {100: 4}
    for b in range(256):
        if b & 0x0F:
            flows[200 + b] = bucket_flow(b)
            ports[200 + b] = 2 + (b * 7 + b // 16) % 3
    for ufid, (k, m) in flows.items():
        dp.flow_put(ufid, k, m, odp.encode([odp.Output(ports[ufid])]))
    frames_ = [udp_from(10000 + i) for i in range(4096)]

    def counts():
        return {u: dp.flow_get(u)["packets"] for u in flows}
    def send():
        return {p: sorted(f) for p, f in send_bursts(dp, frames_).items()}
    before = bucket_pass(dp)
    by_buckets = send()
    assert bucket_pass(dp) - before == len(frames_)                 # all from the buckets
    c1 = counts()
    assert all(c1.values()) and sum(c1.values()) == len(frames_)    # every bucket was hit
    k, m = key_mask(in_port=4)                                      # recirc_id wildcarded
    dp.flow_put(99, k, m, odp.encode([odp.Output(2)]))
    before = bucket_pass(dp)
    assert send() == by_buckets                                     # the lookup: the same
    assert bucket_pass(dp) == before
    c2 = counts()
    assert {u: c2[u] - c1[u] for u in flows} == c1
    dp.flow_del([99])                                               # the buckets again
    assert send() == by_buckets
    assert bucket_pass(dp) - before == len(frames_)
    assert sum(p == 2 for p in ports.values()) and all(by_buckets.values())


def test_recirculation_buckets_follow_flow_changes_at_once(dp):
    # A bucket flow's actions modified, its flow deleted, put again under another UFID, a flow
    # of the same recirc_id and in_port with another mask put and deleted: the very next burst
    # goes by what the table holds now.
    bond_first_pass(dp)
    for ufid, (bit, port) in enumerate([(0, 2), (1, 3)], start=2):
        k, m = bucket_flow(bit, 1)
        dp.flow_put(ufid, k, m, odp.encode([odp.Output(port)]))
    frames_ = [udp_from(20000 + i) for i in range(64)]
    before = bucket_pass(dp)
    first = send_bursts(dp, frames_)
    even, odd = first[2], first[3]
    assert even and odd and first[4] == [] and bucket_pass(dp) - before == 64
    k0, m0 = bucket_flow(0, 1)
    dp.flow_put(2, k0, m0, odp.encode([odp.Output(4)]))              # modify: even to 4
    before = bucket_pass(dp)
    assert send_bursts(dp, frames_) == {2: [], 3: odd, 4: even}
    assert bucket_pass(dp) - before == 64
    assert dp.flow_set_actions([2, 3], odp.encode([odp.Output(3)])) == []   # the revalidator's way
    assert send_bursts(dp, frames_) == {2: [], 3: [f for f in frames_ if f in even or f in odd], 4: []}
    assert bucket_pass(dp) - before == 128
    dp.flow_put(3, *bucket_flow(1, 1), odp.encode([odp.Output(3)]))
    dp.flow_put(2, k0, m0, odp.encode([odp.Output(4)]))
    dp.flow_put(2, k0, m0, odp.encode([odp.Output(2), odp.Output(4)]))   # not output:PORT alone
    before = bucket_pass(dp)
    assert send_bursts(dp, frames_) == {2: even, 3: odd, 4: even}
    assert bucket_pass(dp) - before < len(odd)                      # even ones looked up
    dp.flow_put(2, k0, m0, odp.encode([odp.Sample(1.0, (odp.Output(3),)), odp.Output(2)]))   # a lead sample
    before = bucket_pass(dp)
    out = send_bursts(dp, frames_)
    assert out[2] == even and sorted(out[3]) == sorted(even + odd) and out[4] == []
    assert bucket_pass(dp) - before < len(odd)
    dp.flow_put(2, k0, m0, odp.encode([odp.Output(2)]))
    dp.flow_del([3])                                                # delete: odd ones miss
    assert send_bursts(dp, frames_) == {2: even, 3: [], 4: []}
    ups = dp.upcalls(4096)
    assert len(ups) == len(odd) and all(u.key[4:8] == (5).to_bytes(4, "little") for u in ups)
    for u in ups:
        u.free()
    k1, m1 = bucket_flow(1, 1)
    dp.flow_put(5, k1, m1, odp.encode([odp.Output(4)]))              # another UFID: odd to 4
    before = bucket_pass(dp)
    assert send_bursts(dp, frames_) == {2: even, 3: [], 4: odd}
    assert bucket_pass(dp) - before == 64
    assert dp.flow_get(5)["packets"] == len(odd) and dp.flow_get(2)["packets"] >= 2 * len(even)
    # a flow of the pair with another mask (IPv6 only: none of these frames): the buckets are
    # off while it is there, the answers the same
    k6, m6 = key_mask(in_port=1, recirc_id=5, eth_type=0x86DD)
    dp.flow_put(6, k6, m6, odp.encode([odp.Output(3)]))
    before = bucket_pass(dp)
    assert send_bursts(dp, frames_) == {2: even, 3: [], 4: odd}
    assert bucket_pass(dp) == before
    dp.flow_del([6])
    assert send_bursts(dp, frames_) == {2: even, 3: [], 4: odd}
    assert bucket_pass(dp) - before == 64


def test_recirculation_buckets_count_the_flows_put_before_them(dp):
    # A flow of the pair with another mask put before the pair's first bucket flow (its set
    # made then, from the table): the buckets stay off while it is there.
    bond_first_pass(dp)
    k6, m6 = key_mask(in_port=1, recirc_id=5, eth_type=0x86DD)
    dp.flow_put(6, k6, m6, odp.encode([odp.Output(3)]))
    for ufid, (bit, port) in enumerate([(0, 2), (1, 4)], start=2):
        k, m = bucket_flow(bit, 1)
        dp.flow_put(ufid, k, m, odp.encode([odp.Output(port)]))
    frames_ = [udp_from(30000 + i) for i in range(64)]

    def send():                       # (the lookup may run them in another order across flows)
        return {p: sorted(f) for p, f in send_bursts(dp, frames_).items()}
    before = bucket_pass(dp)
    out = send()
    assert out[2] and out[4] and out[3] == [] and sorted(out[2] + out[4]) == sorted(frames_)
    assert bucket_pass(dp) == before
    dp.flow_del([6])
    assert send() == out
    assert bucket_pass(dp) - before == 64


def test_dp_hash_spreads_flows_and_is_stable(dp):
    k1, m1 = key_mask(in_port=1, recirc_id=0)
    dp.flow_put(1, k1, m1, odp.encode([odp.Hash(77), odp.Recirc(5)]))
    for ufid, (bit, port) in enumerate([(0, 2), (1, 3)], start=2):
        k, m = key_mask(recirc_id=5, dp_hash=(bit, 1))
        dp.flow_put(ufid, k, m, odp.encode([odp.Output(port)]))
    frames_ = [bytes(Ether(src=MAC1, dst=MAC2) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000 + i, dport=53))
               for i in range(64)]
    where = {}
    for rnd in range(2):
        for i in range(0, 64, 32):
            dp.inject(1, frames_[i:i + 32])
            dp.poll(1)
        got2, got3 = dp.drain(2), dp.drain(3)
        assert sorted(got2 + got3) == sorted(frames_)
        assert got2 and got3, "a 5-tuple hash over 64 ports should use both buckets"
        now = {f: 2 for f in got2} | {f: 3 for f in got3}
        if rnd:
            assert now == where, "the same 5-tuple must hash to the same bucket"
        where = now


def test_recirculation_miss_upcalls_with_recirc_id_and_dp_hash(dp):
    k1, m1 = key_mask(in_port=1, recirc_id=0)
    dp.flow_put(1, k1, m1, odp.encode([odp.Hash(1), odp.Recirc(7)]))
    fr = udp4()
    tick(dp)
    dp.inject(1, [fr])
    dp.poll(1)
    (u,) = dp.upcalls()
    assert u.type == "miss" and u.data == fr
    assert int.from_bytes(u.key[4:8], "little") == 7 and int.from_bytes(u.key[8:12], "little") != 0
    assert u.key[12:] == parse(fr, 1)[12:] and u.in_port == 1
    u.free()


def test_recirculation_loop_is_cut(dp):
    k, m = key_mask(in_port=1)                    # recirc_id wildcarded: matches itself again
    dp.flow_put(1, k, m, odp.encode([odp.Recirc(1)]))
    drops = int(dp.pmd_stats()[MANUAL_PMD]["action_drops"])
    dp.inject(1, [udp4()])
    dp.poll(1)
    assert all(dp.drain(p) == [] for p in PORTS)
    assert int(dp.pmd_stats()[MANUAL_PMD]["action_drops"]) == drops + 1


def test_output_before_recirculation_is_not_changed_by_the_next_pass(dp):
    k1, m1 = key_mask(in_port=1, recirc_id=0)
    k2, m2 = key_mask(recirc_id=5)
    dp.flow_put(1, k1, m1, odp.encode([odp.Output(2), odp.Recirc(5)]))
    dp.flow_put(2, k2, m2, odp.encode([eth_set(src=b"\x0a" * 6, smask=b"\xff" * 6), odp.Output(3)]))
    fr = tcp4()
    dp.inject(1, [fr])
    dp.poll(1)
    assert dp.drain(3) == [fr[:6] + b"\x0a" * 6 + fr[12:]]
    assert dp.drain(2) == [fr]


def test_flow_hit_after_recirculation_is_counted(dp):
    k1, m1 = key_mask(in_port=1, recirc_id=0)
    k2, m2 = key_mask(recirc_id=5)
    dp.flow_put(1, k1, m1, odp.encode([odp.Recirc(5)]))
    dp.flow_put(2, k2, m2, odp.encode([odp.Output(2)]))
    frames_ = [tcp4(), udp4(), tcp6()]
    tick(dp)
    dp.inject(1, frames_)
    dp.poll(1)
    assert len(dp.drain(2)) == 3
    assert dp.flow_get(1)["packets"] == 3
    second = dp.flow_get(2)
    assert (second["packets"], second["bytes"], second["used_ns"]) == (3, sum(map(len, frames_)), dp.clock)


# ---- meters -------------------------------------------------------------------------------

def test_meter_drops_over_its_packet_rate(dp):
    tick(dp)
    dp.meter_set(3, rate=100, pktps=True)            # burst 0: rate / 10 = 10 packets
    key, mask = key_mask(in_port=1)
    dp.flow_put(1, key, mask, odp.encode([odp.Meter(3), odp.Output(2)]))
    frames_ = [udp4()] * 25

    def burst() -> int:
        dp.inject(1, frames_)
        dp.poll(1)
        return len(dp.drain(2))
    assert burst() == 10                            # the bucket starts full
    assert burst() == 0                             # same instant: nothing refilled
    tick(dp, 50_000_000)                            # 50 ms at 100/s: 5 packets
    assert burst() == 5
    tick(dp, 10 * SECOND)                           # long idle: capped at the burst
    assert burst() == 10
    assert dp.meter_stats(3) == (100, 75)
    assert int(dp.pmd_stats()[MANUAL_PMD]["meter_drops"]) >= 75
    dp.meter_del(3)                                 # a missing meter lets everything through
    assert burst() == 25


def test_meter_in_kbps_counts_bytes(dp):
    tick(dp)
    dp.meter_set(4, rate=800, burst=8)              # 8 kbit = 1000 bytes in the bucket
    fr = bytes(Ether(src=MAC1, dst=MAC2) / IP() / UDP() / Raw(bytes(100 - 42)))
    assert len(fr) == 100
    for _ in range(15):
        dp.execute(fr, 1, odp.encode([odp.Meter(4), odp.Output(2)]))
    assert len(dp.drain(2)) == 10
    tick(dp, 20_000_000)                            # 20 ms at 800 kbit/s = 16 kbit, capped at 8
    for _ in range(15):
        dp.execute(fr, 1, odp.encode([odp.Meter(4), odp.Output(2)]))
    assert len(dp.drain(2)) == 10
    dp.meter_del(4)


def test_meter_before_one_output_only(dp):
    tick(dp)
    dp.meter_set(5, rate=10, burst=2, pktps=True)
    fr = udp4()
    for _ in range(5):
        dp.execute(fr, 1, odp.encode([odp.Output(3), odp.Meter(5), odp.Output(2)]))
    assert len(dp.drain(3)) == 5 and len(dp.drain(2)) == 2
    dp.meter_del(5)


# ---- hypothesis: random masked rewrites, checksums against scapy ---------------------------

def _addr(n: int):
    return st.binary(min_size=n, max_size=n)


@st.composite
def rewrite_cases(draw):
    """(frame, actions, expected frame)."""
    v6 = draw(st.booleans())
    proto = draw(st.sampled_from(["tcp", "udp"]))
    payload = Raw(draw(st.binary(min_size=0, max_size=64)))
    sport, dport = draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFF))
    l4 = TCP(sport=sport, dport=dport, flags=draw(st.sampled_from(["S", "A", "PA", "FA"])),
             seq=draw(st.integers(0, 2 ** 32 - 1))) if proto == "tcp" else UDP(sport=sport, dport=dport)
    zero_udp = False
    if v6:
        ip = IPv6(src=b2ip6(draw(_addr(16))), dst=b2ip6(draw(_addr(16))), tc=draw(st.integers(0, 255)),
                  fl=draw(st.integers(0, 0xFFFFF)), hlim=draw(st.integers(0, 255)))
        if draw(st.booleans()):
            ip = ip / IPv6ExtHdrHopByHop()
    else:
        ip = IP(src=b2ip4(draw(_addr(4))), dst=b2ip4(draw(_addr(4))), tos=draw(st.integers(0, 255)),
                ttl=draw(st.integers(0, 255)), id=draw(st.integers(0, 0xFFFF)),
                options=[IPOption_RR(routers=["9.9.9.9"])] if draw(st.booleans()) else [])
        if proto == "udp" and draw(st.integers(0, 3)) == 0:
            l4.chksum = 0
            zero_udp = True
    eth = Ether(src=MAC1, dst=MAC2)
    if draw(st.booleans()):
        eth = eth / Dot1Q(vlan=draw(st.integers(0, 4095)))
    frame = bytes(eth / ip / l4 / payload)
    p = Ether(frame)

    actions = []
    if draw(st.booleans()):                          # L3 rewrite
        if v6:
            s, sm, d, dm = draw(_addr(16)), draw(_addr(16)), draw(_addr(16)), draw(_addr(16))
            lab, lm = draw(st.integers(0, 2 ** 32 - 1)), draw(st.integers(0, 2 ** 32 - 1))
            tc, tcm, hl, hlm = (draw(st.integers(0, 255)) for _ in range(4))
            actions.append(ipv6_set(s, d, lab, tc, hl, sm, dm, lm, tcm, hlm))
            q = p[IPv6]
            q.src = b2ip6(masked(ip6b(q.src), s, sm))
            q.dst = b2ip6(masked(ip6b(q.dst), d, dm))
            q.fl = (q.fl & ~(lm & 0xFFFFF)) | (lab & lm & 0xFFFFF)
            q.tc = (q.tc & ~tcm) | (tc & tcm)
            q.hlim = (q.hlim & ~hlm) | (hl & hlm)
        else:
            s, sm, d, dm = draw(_addr(4)), draw(_addr(4)), draw(_addr(4)), draw(_addr(4))
            tos, tosm, ttl, ttlm = (draw(st.integers(0, 255)) for _ in range(4))
            actions.append(ipv4_set(s, d, tos, ttl, sm, dm, tosm, ttlm))
            q = p[IP]
            q.src = b2ip4(masked(ip4b(q.src), s, sm))
            q.dst = b2ip4(masked(ip4b(q.dst), d, dm))
            q.tos = (q.tos & ~tosm) | (tos & tosm)
            q.ttl = (q.ttl & ~ttlm) | (ttl & ttlm)
    if draw(st.booleans()) or not actions:           # L4 rewrite
        sp, spm, dpv, dpm = (draw(st.integers(0, 0xFFFF)) for _ in range(4))
        actions.append(ports_set(proto, sp, dpv, spm, dpm))
        q = p[TCP] if proto == "tcp" else p[UDP]
        q.sport = (q.sport & ~spm) | (sp & spm)
        q.dport = (q.dport & ~dpm) | (dpv & dpm)
    if draw(st.booleans()):                          # and the L2 addresses
        e, em = draw(_addr(12)), draw(_addr(12))
        actions.append(odp.SetMasked("eth", e, em))
        new = masked(frame[:12], e, em)
        p.dst, p.src = ":".join("%02x" % b for b in new[:6]), ":".join("%02x" % b for b in new[6:])
    draw(st.randoms()).shuffle(actions)              # set-fields commute
    return frame, actions, expect(p), zero_udp


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.data_too_large])
@given(case=rewrite_cases())
def test_random_masked_rewrites_match_scapy(rig, case):
    frame, actions, want, zero_udp = case
    rig.execute(frame, 1, odp.encode(actions + [odp.Output(2)]))
    (got,) = rig.drain(2)
    assert got == want
    assert_checksums_ok(got)
    if zero_udp:
        assert Ether(got)[UDP].chksum == 0
    assert rig.mbufs_in_use() == rig.idle_mbufs


@st.composite
def other_kind_cases(draw):
    """(frame, set action, expected frame) for the SCTP, ICMP, ICMPv6, ARP and ND kinds: random
    headers, values and masks; the expectation written byte by byte, checksums by scapy."""
    what = draw(st.sampled_from(["sctp", "icmp", "icmpv6", "arp", "nd"]))
    v6 = what in ("icmpv6", "nd") or (what == "sctp" and draw(st.booleans()))
    data = draw(st.binary(min_size=0, max_size=40))
    ip = (IPv6(src=b2ip6(draw(_addr(16))), dst=b2ip6(draw(_addr(16)))) if v6
          else IP(src=b2ip4(draw(_addr(4))), dst=b2ip4(draw(_addr(4)))))
    if v6 and draw(st.booleans()):
        ip = ip / IPv6ExtHdrHopByHop()
    eth = Ether(src=MAC1, dst=MAC2)
    if draw(st.booleans()):
        eth = eth / Dot1Q(vlan=draw(st.integers(0, 4095)))
    if what == "sctp":
        layer = SCTP
        pkt = eth / ip / SCTP(sport=draw(st.integers(0, 0xFFFF)), dport=draw(st.integers(0, 0xFFFF)),
                              tag=draw(st.integers(0, 2 ** 32 - 1))) / SCTPChunkData(data=data)
    elif what == "icmp":
        layer = ICMP
        pkt = eth / ip / ICMP(type=draw(st.sampled_from([0, 8])), id=draw(st.integers(0, 0xFFFF)),
                              seq=draw(st.integers(0, 1))) / Raw(data)
    elif what == "icmpv6":
        layer = ICMPv6EchoRequest
        pkt = eth / ip / ICMPv6EchoRequest(id=draw(st.integers(0, 0xFFFF)), data=data)
    elif what == "arp":
        layer = ARP
        pkt = eth / ARP(op=draw(st.integers(0, 0xFFFF)), hwsrc=b2mac(draw(_addr(6))), psrc=b2ip4(draw(_addr(4))),
                        hwdst=b2mac(draw(_addr(6))), pdst=b2ip4(draw(_addr(4))))
    else:
        na_ = draw(st.booleans())
        layer = ICMPv6ND_NA if na_ else ICMPv6ND_NS
        pkt = eth / ip / layer(tgt=b2ip6(draw(_addr(16))))
        for o in draw(st.lists(st.sampled_from(["sll", "tll", "nonce"]), max_size=3)):
            pkt = pkt / {"sll": ICMPv6NDOptSrcLLAddr(lladdr=b2mac(draw(_addr(6)))),
                         "tll": ICMPv6NDOptDstLLAddr(lladdr=b2mac(draw(_addr(6)))), "nonce": NONCE}[o]
    frame = bytes(pkt)
    at = l4_at(frame, layer)
    kind = {"sctp": "sctp", "icmp": "icmp", "icmpv6": "icmpv6", "arp": "arp", "nd": "nd"}[what]
    n = odp.SET_KINDS[kind][1]
    value, mask = draw(_addr(n)), draw(_addr(n))
    want = bytearray(frame)
    if what == "sctp":
        want[at:at + 4] = masked(frame[at:at + 4], value, mask)
        end = at + len(bytes(Ether(frame)[SCTP]))
        want[at:end] = with_crc32c(bytes(want[at:end]))
        if Ether(frame)[SCTP].chksum != Ether(rebuilt(Ether(frame)))[SCTP].chksum:
            raise AssertionError("scapy built a wrong CRC32c")
        return frame, odp.SetMasked(kind, value, mask), bytes(want)
    if what in ("icmp", "icmpv6"):
        want[at:at + 2] = masked(frame[at:at + 2], value, mask)
    elif what == "arp":
        want[at + 6:at + 28] = masked(frame[at + 6:at + 28], value, mask)
        return frame, odp.SetMasked(kind, value, mask), bytes(want)
    else:
        want[at + 8:at + 24] = masked(frame[at + 8:at + 24], value[:16], mask[:16])
        i = at + 24
        while i + 8 <= len(frame):
            if frame[i] in (1, 2) and frame[i + 1] == 1:      # the first link-layer address option
                o = 16 if frame[i] == 1 else 22
                want[i + 2:i + 8] = masked(frame[i + 2:i + 8], value[o:o + 6], mask[o:o + 6])
                break
            i += frame[i + 1] * 8
    return frame, odp.SetMasked(kind, value, mask), with_icmp_csum(bytes(want), at, v6)


def with_icmp_csum(frame: bytes, at: int, v6: bool) -> bytes:
    """FRAME with the checksum of its ICMP (V6: ICMPv6) message at AT computed by scapy, whatever
    the message's type (scapy reads unknown ICMPv6 types as Raw, which it leaves alone)."""
    p = Ether(frame)
    ip = p[IPv6] if v6 else p[IP]
    ip_at = len(frame) - len(bytes(ip))
    end = ip_at + (40 + ip.plen if v6 else ip.len)
    msg = frame[at:at + 2] + b"\0\0" + frame[at + 4:end]
    if v6:
        layer = p
        while len(frame) - len(bytes(layer)) != at:
            layer = layer.payload
        c = in6_chksum(58, layer, msg)
    else:
        c = checksum(msg)
    return frame[:at + 2] + struct.pack("!H", c) + frame[at + 4:]


def b2mac(b: bytes) -> str:
    return ":".join("%02x" % x for x in b)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.data_too_large])
@given(case=other_kind_cases())
def test_random_sctp_icmp_arp_nd_sets_match_scapy(rig, case):
    frame, action, want = case
    rig.execute(frame, 1, odp.encode([action, odp.Output(2)]))
    (got,) = rig.drain(2)
    assert got == want
    assert rig.mbufs_in_use() == rig.idle_mbufs
