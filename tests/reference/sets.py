"""The table sets the reference test runs: OpenFlow tables (ovs-ofctl syntax, the same strings
for both switches), groups (ovs-ofctl add-group syntax), and input frames built with scapy.

Every input frame that has room for it carries a tag ``ref#NNNN`` (its index) at the end of
its payload, so a difference can be traced to the frame that caused it.  Frames of one flow
come several times (they then hit the same megaflow) and every set has frames no rule matches.

Conventions that keep the comparison meaningful (see the test module's docstring for why):
  - VLAN flows under OpenFlow 1.3 say whether they want a tag (``vlan_tci=0x0000/0x1fff`` or
    ``dl_vlan=N``); ``vlan_of10`` covers mod_vlan_vid on frames that may or may not have one.
  - select groups: ``combine`` names the ports whose outputs are compared as one multiset,
    because OVS and dpdkswitch hash flows onto buckets differently.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR  # noqa: E402
from scapy.layers.inet6 import (ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS,  # noqa: E402
                                ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
                                IPv6ExtHdrHopByHop, IPv6ExtHdrRouting)
from scapy.layers.l2 import ARP, LLC, SNAP, Dot1AD, Dot1Q, Dot3, Ether  # noqa: E402
from scapy.layers.sctp import SCTP  # noqa: E402
from scapy.packet import Padding, Raw  # noqa: E402

TAG = b"ref#%04d"

H1, H2, H3 = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"
BCAST = "ff:ff:ff:ff:ff:ff"


@dataclass
class RefSet:
    name: str
    doc: str
    flows: list[str]
    frames: list[bytes]
    groups: list[str] = field(default_factory=list)
    ports: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    combine: list[set[int]] = field(default_factory=list)     # ports compared as one multiset
    protocol: str = "OpenFlow13"                               # what ovs-ofctl speaks to OVS


class Frames:
    """Input frames; ``add`` appends COUNT copies of PKT, each with its own tag."""

    def __init__(self):
        self.frames: list[bytes] = []

    def add(self, pkt, count: int = 1, tag: bool = True) -> None:
        for _ in range(count):
            p = pkt.copy()
            if tag:
                p = p / Raw(TAG % len(self.frames))
            self.frames.append(bytes(p))

    def __len__(self) -> int:
        return len(self.frames)


def eth(src=H1, dst=H2, vlans=()):
    """Ether with VLAN tags, outer first: (vid, pcp) for 802.1Q, (vid, pcp, 0x88a8) for 802.1ad."""
    p = Ether(src=src, dst=dst)
    for v in vlans:
        vid, pcp, *tpid = v
        p = p / (Dot1AD(vlan=vid, prio=pcp) if tpid and tpid[0] == 0x88A8 else Dot1Q(vlan=vid, prio=pcp))
    return p


def ip4(src, dst, ttl=64, tos=0, **kw):
    return IP(src=src, dst=dst, ttl=ttl, tos=tos, **kw)


def arp(op, spa, tpa, sha=H1, tha="00:00:00:00:00:00"):
    return ARP(op=op, psrc=spa, pdst=tpa, hwsrc=sha, hwdst=tha)


# -------------------------------------------------------------------------------------- sets

def set_vlan() -> RefSet:
    f = Frames()
    for i in range(6):
        f.add(eth() / ip4(f"10.0.{i}.1", f"10.1.0.{i % 3}") / UDP(sport=1000 + i, dport=53), 3)
        f.add(eth() / ip4(f"10.0.{i}.1", f"10.2.0.{i}") / TCP(sport=2000 + i, dport=80), 2)
        f.add(eth() / ip4(f"10.0.{i}.1", f"10.3.0.{i}") / UDP(sport=1, dport=2), 1)          # misses
    f.add(eth(dst=BCAST) / arp(1, "10.0.0.1", "10.0.0.2"), 4)
    f.add(eth() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=7, dport=7), 4)
    for vid in (10, 20, 40, 50, 70, 99):
        for pcp in (0, 3, 7):
            f.add(eth(vlans=[(vid, pcp)]) / ip4("10.5.0.1", f"10.6.{vid}.{pcp}") / UDP(sport=vid, dport=pcp), 2)
        f.add(eth(dst=BCAST, vlans=[(vid, 1)]) / arp(1, "10.7.0.1", f"10.7.0.{vid}"), 1)
    f.add(eth(vlans=[(0, 5)]) / ip4("10.8.0.1", "10.8.0.2") / UDP(), 3)        # priority tag (VID 0)
    for outer, inner in ((10, 5), (20, 6), (50, 7), (99, 8)):                   # 802.1ad over 802.1Q
        f.add(eth(vlans=[(outer, 2, 0x88A8), (inner, 4)]) / ip4("10.9.0.1", f"10.9.{outer}.{inner}") / UDP(), 2)
        f.add(eth(vlans=[(outer, 2), (inner, 4)]) / ip4("10.9.1.1", f"10.9.{outer}.{inner}") / TCP(), 2)
    flows = [
        "priority=100,vlan_tci=0x0000/0x1fff,ip,nw_dst=10.1.0.0/16,actions=mod_vlan_vid:100,output:2",
        "priority=100,vlan_tci=0x0000/0x1fff,ip,nw_dst=10.2.0.0/16,"
        "actions=push_vlan:0x8100,set_field:4196->vlan_vid,mod_vlan_pcp:6,output:2",
        "priority=100,vlan_tci=0x0000/0x1fff,arp,actions=push_vlan:0x88a8,set_field:4296->vlan_vid,output:3",
        "priority=100,vlan_tci=0x0000/0x1fff,ipv6,actions=push_vlan:0x8100,set_field:4101->vlan_vid,"
        "set_field:3->vlan_pcp,output:4",
        "priority=100,dl_vlan=10,actions=strip_vlan,output:3",
        "priority=100,dl_vlan=20,actions=mod_vlan_vid:30,output:3",
        "priority=100,dl_vlan=40,actions=mod_vlan_pcp:5,output:4",
        "priority=100,dl_vlan=50,actions=push_vlan:0x88a8,mod_vlan_vid:60,mod_vlan_pcp:1,output:4",
        "priority=100,dl_vlan=70,ip,actions=pop_vlan,output:2,push_vlan:0x8100,mod_vlan_vid:71,output:3",
        "priority=90,vlan_tci=0x1000/0x1000,ip,actions=output:4",
        "priority=90,dl_vlan=99,arp,actions=set_field:4195->vlan_vid,output:2",
    ]
    return RefSet("vlan", "push_vlan (0x8100, 0x88a8), pop_vlan/strip_vlan, mod_vlan_vid/pcp, set_field "
                  "vlan_vid/pcp on untagged, tagged, priority-tagged and double-tagged frames", flows, f.frames)


def set_vlan_of10() -> RefSet:
    f = Frames()
    for i in range(8):
        f.add(eth() / ip4("10.0.0.1", f"10.1.0.{i}") / UDP(sport=i, dport=9), 3)
        f.add(eth(vlans=[(5 + i, i % 8)]) / ip4("10.0.0.1", f"10.2.0.{i}") / UDP(sport=i, dport=9), 3)
        f.add(eth(dst=BCAST, vlans=[(30 + i, 1)] if i % 2 else []) / arp(1, "10.0.0.1", f"10.0.1.{i}"), 2)
        f.add(eth(vlans=[(60 + i, 0)] if i % 2 else []) / IPv6(src="2001:db8::1", dst=f"2001:db8::{i}") / UDP(), 2)
    f.add(Ether(src=H1, dst=H2, type=0x88B5) / Raw(b"\x00" * 40), 5)                     # misses
    flows = [
        "priority=10,ip,actions=mod_vlan_vid:7,output:2",
        "priority=10,arp,actions=mod_vlan_pcp:3,output:3",
        "priority=10,ipv6,actions=strip_vlan,output:4",
    ]
    return RefSet("vlan_of10", "OpenFlow 1.0 mod_vlan_vid/mod_vlan_pcp: push a tag when there is none, else "
                  "modify it; strip_vlan on untagged frames", flows, f.frames, protocol="OpenFlow10")


def set_set_field_l2l3() -> RefSet:
    f = Frames()
    for i in range(5):
        f.add(eth() / ip4(f"10.0.1.{i}", "10.20.0.1") / UDP(sport=100 + i, dport=200), 3)
        f.add(eth() / ip4(f"10.0.2.{i}", "10.9.0.1") / TCP(sport=3000 + i, dport=443, flags="S"), 3)
        f.add(eth() / ip4(f"10.0.3.{i}", "10.9.0.2") / UDP(sport=4000 + i, dport=53), 3)
        f.add(eth() / ip4(f"10.0.3.{i}", "10.9.0.2") / UDP(sport=4100 + i, dport=53, chksum=0), 2)   # no UDP csum
        f.add(eth() / ip4(f"10.0.4.{i}", "10.9.0.3", tos=(0x1c, 0x01, 0x02, 0x03, 0xff)[i]) / ICMP(type=8, id=i), 2)
        f.add(eth() / ip4(f"10.0.5.{i}", "10.9.0.4", tos=0xb9) / TCP(sport=5, dport=6), 2)
        f.add(eth() / ip4(f"10.0.8.{i}", "10.9.0.7", tos=(0x00, 0x04, 0xb8, 0x29, 0xfd)[i]) / UDP(sport=5), 2)
        f.add(eth() / ip4(f"10.0.6.{i}", "10.9.0.5") / UDP(sport=5, dport=6), 2)
        f.add(eth() / ip4(f"10.0.7.{i}", "10.9.0.6") / TCP(sport=5, dport=6), 2)
        f.add(eth() / IPv6(src=f"2001:db8::{i + 10:x}", dst="2001:db8::1", tc=(0, 1, 2, 3, 0xa3)[i], fl=i)
              / TCP(sport=1, dport=2), 2)
        f.add(eth() / IPv6(src=f"2001:db8::{i + 10:x}", dst="2001:db8::1") / UDP(sport=1, dport=2), 2)
    f.add(eth() / ip4("10.0.2.9", "10.9.0.1", options=[IPOption_RR(routers=["1.2.3.4"])]) / TCP(), 3)  # IHL 7
    f.add(eth() / ip4("10.0.3.9", "10.9.0.2", options=[IPOption_RR(routers=["1.2.3.4"])]) / UDP(), 3)
    f.add(eth(dst=BCAST) / arp(1, "10.0.0.1", "10.0.0.2"), 4)                                       # misses
    flows = [
        "priority=100,ip,nw_src=10.0.1.0/24,actions=mod_dl_src:02:aa:00:00:00:01,mod_dl_dst:02:bb:00:00:00:02,"
        "output:2",
        "priority=100,tcp,nw_dst=10.9.0.1,actions=mod_nw_src:192.168.1.1,mod_nw_dst:192.168.2.2,output:2",
        "priority=100,udp,nw_dst=10.9.0.2,actions=set_field:172.16.0.1->ip_dst,output:3",
        "priority=100,icmp,nw_dst=10.9.0.3,actions=mod_nw_tos:32,mod_nw_ttl:9,output:3",
        "priority=100,ip,nw_dst=10.9.0.4,actions=set_field:46->ip_dscp,mod_nw_ecn:1,output:4",
        "priority=100,ip,nw_dst=10.9.0.7,actions=mod_nw_ecn:2,output:2",
        "priority=100,ip,nw_dst=10.9.0.5,actions=set_field:10.5.5.5->ip_src,set_field:10.6.6.6->ip_src,output:4",
        "priority=100,ip,nw_dst=10.9.0.6,actions=set_field:02:00:00:00:00:09->eth_dst,output:2,"
        "set_field:10.7.7.7->ip_dst,output:3",
        "priority=100,tcp6,ipv6_dst=2001:db8::1,actions=set_field:2001:db8::99->ipv6_dst,"
        "set_field:0x12345->ipv6_label,mod_nw_tos:16,output:4",
        "priority=100,udp6,ipv6_dst=2001:db8::1,actions=set_field:2001:db8:ffff::1->ipv6_src,mod_nw_ttl:3,"
        "output:2",
    ]
    return RefSet("set_field_l2l3", "set-field on eth src/dst, IPv4 src/dst/dscp/ecn/ttl (IP and TCP/UDP "
                  "checksums, UDP without checksum, IPv4 options), IPv6 src/dst/label/tclass/hlimit", flows, f.frames)


def set_set_field_l4() -> RefSet:
    f = Frames()
    for i in range(6):
        f.add(eth() / ip4("10.0.0.1", f"10.1.0.{i}") / TCP(sport=40000 + i, dport=80, flags="S"), 3)
        f.add(eth() / ip4("10.0.0.2", f"10.1.0.{i}") / TCP(sport=1234, dport=9000 + i, flags="PA"), 2)
        f.add(eth() / ip4("10.0.0.3", f"10.1.0.{i}") / UDP(sport=5000, dport=7000 + i), 3)
        f.add(eth() / ip4("10.0.0.4", f"10.1.0.{i}") / UDP(sport=6000 + i, dport=53), 2)
        f.add(eth() / ip4("10.0.0.4", f"10.1.0.{i}") / UDP(sport=6100 + i, dport=53, chksum=0), 2)
        f.add(eth() / IPv6(src="2001:db8::1", dst=f"2001:db8::{i + 2}") / TCP(sport=50000 + i, dport=443), 2)
        f.add(eth() / IPv6(src="2001:db8::1", dst=f"2001:db8::{i + 2}") / UDP(sport=50000 + i, dport=53), 2)
        f.add(eth() / ip4("10.0.0.5", f"10.1.0.{i}") / TCP(sport=1, dport=2), 1)                   # priority 50
    for i in range(3):
        # Behind one and two VLAN tags (header offsets), and frames padded to 60 bytes (the L4
        # checksum covers the IP payload, not the Ethernet padding).
        f.add(eth(vlans=[(5, 1)]) / ip4("10.0.0.1", f"10.1.2.{i}") / TCP(sport=40100 + i, dport=80), 2)
        f.add(eth(vlans=[(6, 0, 0x88A8), (7, 0)]) / ip4("10.0.0.4", f"10.1.2.{i}") / UDP(sport=6200 + i, dport=53), 2)
        f.add(eth(vlans=[(8, 2)]) / IPv6(src="2001:db8::1", dst="2001:db8::9") / TCP(sport=50100 + i, dport=443), 2)
        f.add(eth() / ip4("10.0.0.3", f"10.1.3.{i}") / UDP(sport=5000, dport=7100 + i) / Padding(TAG % len(f)), 2,
              tag=False)
        f.add(eth() / ip4("10.0.0.1", f"10.1.3.{i}") / TCP(sport=40200 + i, dport=80) / Padding(b"\0" * 6), 2)
    f.add(eth(dst=BCAST) / arp(1, "10.0.0.1", "10.0.0.2"), 3)                                       # misses
    flows = [
        "priority=100,tcp,tp_dst=80,actions=mod_tp_dst:8080,output:2",
        "priority=100,tcp,tp_src=1234,actions=mod_tp_src:4321,mod_tp_dst:22,output:2",
        "priority=100,udp,udp_src=5000,actions=set_field:6000->udp_src,output:3",
        "priority=100,udp,udp_dst=53,actions=set_field:5353->udp_dst,mod_nw_src:10.99.0.1,output:3",
        "priority=100,tcp6,tp_dst=443,actions=set_field:8443->tcp_dst,output:4",
        "priority=100,udp6,tp_dst=53,actions=mod_tp_dst:5353,output:4",
        "priority=50,ip,actions=output:4",
    ]
    return RefSet("set_field_l4", "set-field on TCP/UDP ports over IPv4 and IPv6 (checksums, UDP checksum 0), "
                  "behind one and two VLAN tags, in frames with Ethernet padding", flows, f.frames)


def set_ip_fragments() -> RefSet:
    f = Frames()
    for i in range(4):
        f.add(eth() / ip4("10.0.0.6", "10.1.1.1", id=100 + i, flags="MF") / TCP(sport=999, dport=80), 2)
        f.add(eth() / ip4("10.0.0.6", "10.1.1.1", id=100 + i, frag=3, proto=6) / Raw(b"x" * 24), 2)
        f.add(eth() / ip4("10.0.0.7", "10.1.1.2", id=200 + i, flags="MF") / UDP(sport=5000, dport=1), 2)
        f.add(eth() / ip4("10.0.0.7", "10.1.1.2", id=200 + i, frag=2, proto=17) / Raw(b"y" * 16), 2)
        f.add(eth() / ip4("10.0.0.8", "10.1.1.3") / TCP(sport=999, dport=80), 2)               # not fragments
        f.add(eth() / ip4("10.0.0.8", "10.1.1.3") / UDP(sport=5000, dport=1), 2)
        f.add(eth() / ip4("10.0.0.9", "10.1.1.4") / ICMP(), 1)
        f.add(eth() / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(id=i, m=1)
              / TCP(sport=999, dport=80), 2)
        f.add(eth() / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(id=i, offset=3, nh=6)
              / Raw(b"z" * 16), 2)
    f.add(eth(dst=BCAST) / arp(1, "10.0.0.1", "10.0.0.2"), 3)                                       # misses
    flows = [
        "priority=100,tcp,tp_dst=80,actions=mod_tp_dst:8080,output:2",
        "priority=100,udp,udp_src=5000,actions=set_field:6000->udp_src,output:3",
        "priority=100,tcp6,tp_dst=80,actions=mod_tp_dst:8080,output:2",
        "priority=90,ip,nw_frag=first,actions=output:4",
        "priority=90,ip,nw_frag=later,actions=mod_nw_ttl:9,output:4",
        "priority=80,ip,nw_frag=no,actions=output:2",
        "priority=90,ipv6,nw_frag=yes,actions=output:3",
    ]
    return RefSet("ip_fragments", "IPv4 and IPv6 fragments: nw_frag matches, L4 port matches and rewrites on first "
                  "fragments (OVS's default frag handling sees their ports as 0), later fragments", flows, f.frames)


def set_ipv6_ext() -> RefSet:
    f = Frames()
    v6 = lambda i: IPv6(src=f"2001:db8::{i + 1}", dst="2001:db8::ff", hlim=30)      # noqa: E731
    for i in range(5):
        f.add(eth() / v6(i) / IPv6ExtHdrHopByHop() / UDP(sport=i, dport=53), 2)
        f.add(eth() / v6(i) / IPv6ExtHdrRouting(addresses=["2001:db8::aa"]) / TCP(sport=i, dport=80), 2)
        f.add(eth() / v6(i) / IPv6ExtHdrDestOpt() / UDP(sport=i, dport=53), 2)
        f.add(eth() / v6(i) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / TCP(sport=i, dport=81), 2)
        f.add(eth() / v6(i) / UDP(sport=i, dport=53), 2)
        f.add(eth() / v6(i) / IPv6ExtHdrHopByHop() / ICMPv6EchoRequest(id=i), 2)
    f.add(eth() / IPv6(src="2001:db8::1", dst="2001:db8::2", nh=59) / Raw(b"\0" * 8), 3)   # no next header
    f.add(eth(dst=BCAST) / arp(1, "10.0.0.1", "10.0.0.2"), 3)                                       # misses
    flows = [
        "priority=100,udp6,tp_dst=53,actions=mod_tp_dst:5353,output:2",
        "priority=100,tcp6,tp_dst=80,actions=set_field:2001:db8::80->ipv6_dst,output:3",
        "priority=90,icmp6,icmpv6_type=128,actions=dec_ttl,output:3",
        "priority=10,ipv6,actions=dec_ttl,output:4",
    ]
    return RefSet("ipv6_ext_headers", "IPv6 behind hop-by-hop, routing and destination-options headers: L4 "
                  "matches, port and address rewrites (checksums), dec_ttl, no next header", flows, f.frames)


def set_l2_misc() -> RefSet:
    f = Frames()
    for i in range(4):
        f.add(Dot3(src=H1, dst="01:80:c2:00:00:00") / LLC(dsap=0x42, ssap=0x42, ctrl=3) / Raw(b"\0" * 30), 2)
        f.add(Dot3(src=H1, dst=H2) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=0x0800)
              / ip4("10.0.0.1", "10.0.0.2") / UDP(sport=i), 2)
        f.add(Ether(src=f"02:00:00:00:00:{i:02x}", dst=H2, type=0x88B5) / Raw(b"\0" * 40), 2)
        f.add(Ether(src=f"04:00:00:00:00:{i:02x}", dst=H2, type=0x88B5) / Raw(b"\0" * 40), 1)
        f.add(eth() / ip4(f"10.0.1.{i}", "10.0.0.2") / UDP(sport=i), 2)
    # Malformed IPv4: a header cut short, an IHL below 5, a total length beyond the frame.
    f.add(Ether(src=H1, dst=H2, type=0x0800) / Raw(b"\x45\x00\x00\x30" + b"\0" * 6), 2, tag=False)
    f.add(Ether(src=H1, dst=H2) / IP(src="10.0.2.1", dst="10.0.0.2", ihl=4) / UDP(), 2)
    f.add(Ether(src=H1, dst=H2) / IP(src="10.0.2.2", dst="10.0.0.2", len=400) / UDP(), 2)
    f.add(Ether(src=H1, dst=H2, type=0x86DD) / Raw(b"\x60" + b"\0" * 10), 2, tag=False)
    flows = [
        "priority=30,dl_type=0x05ff,actions=output:4",
        "priority=20,ip,nw_src=0.0.0.0,actions=output:2",
        "priority=10,ip,actions=output:3",
        "priority=10,ipv6,actions=output:4",
        "priority=10,dl_type=0x88b5,dl_src=02:00:00:00:00:00/ff:ff:ff:00:00:00,actions=output:2,output:3",
    ]
    return RefSet("l2_misc", "802.3/LLC and SNAP frames (OVS's dl_type 0x05ff), masked eth_src, malformed "
                  "IPv4/IPv6 headers (OVS leaves the L3 fields zero)", flows, f.frames)


def set_set_field_other() -> RefSet:
    f = Frames()
    for i in range(5):
        f.add(eth() / ip4("10.0.0.1", f"10.1.0.{i}") / SCTP(sport=1000 + i, dport=9), 3)
        f.add(eth() / ip4("10.0.0.2", f"10.1.0.{i}") / ICMP(type=8, id=i, seq=1), 3)
        f.add(eth(dst=BCAST) / arp(1, f"10.0.1.{i}", "10.0.0.254", sha=f"02:00:00:00:01:{i:02x}"), 3)
        f.add(eth() / IPv6(src="2001:db8::1", dst=f"2001:db8::{i + 2}") / ICMPv6EchoRequest(id=i), 3)
    for i in range(3):
        f.add(eth() / IPv6(src="2001:db8::1", dst=f"2001:db8::{i + 2}") / SCTP(sport=2000 + i, dport=7), 2)
        f.add(eth() / ip4("10.0.0.3", f"10.1.0.{i}") / SCTP(sport=3000 + i, dport=7, chksum=0x12345678), 2)
        f.add(eth() / ip4("10.0.0.4", f"10.1.0.{i}") / ICMP(type=3, code=1), 2)
        f.add(eth(dst=BCAST) / arp(2, f"10.0.2.{i}", "10.0.0.254", tha=H2), 2)
        f.add(eth() / IPv6(src="2001:db8::1", dst=f"2001:db8::{i + 2}") / ICMPv6EchoReply(id=i), 2)
        nd = eth(dst="33:33:ff:00:00:02") / IPv6(src="fe80::1", dst="ff02::1:ff00:2", hlim=255)
        f.add(nd / ICMPv6ND_NS(tgt=f"2001:db8::{i + 2}") / ICMPv6NDOptSrcLLAddr(lladdr=H1), 2)
        f.add(nd / ICMPv6ND_NS(tgt=f"2001:db8::{i + 2}"), 2)                          # no SLL option
        f.add(nd / ICMPv6ND_NS(tgt=f"2001:db8::{i + 2}") / Raw(b"\x0e\x01" + bytes(6))     # a nonce first
              / ICMPv6NDOptSrcLLAddr(lladdr=H1), 2)
        f.add(eth(src=H2, dst=H1) / IPv6(src="fe80::2", dst="fe80::1", hlim=255) / ICMPv6ND_NA(
            tgt=f"2001:db8::{i + 2}", S=1) / ICMPv6NDOptDstLLAddr(lladdr=H2), 2)
    f.add(eth() / ip4("10.0.0.3", "10.1.0.1") / UDP(), 3)                                        # misses
    flows = [
        "priority=100,sctp,sctp_dst=9,actions=set_field:99->sctp_dst,output:2",
        "priority=100,sctp,sctp_dst=7,actions=set_field:0x9999->sctp_src,output:3",
        "priority=100,sctp6,sctp_dst=7,actions=mod_tp_src:7,mod_tp_dst:8,output:2",
        "priority=100,icmp,icmp_type=8,actions=set_field:13->icmp_type,output:3",
        "priority=100,icmp,icmp_type=3,actions=set_field:0->icmp_type,set_field:4->icmp_code,output:2",
        "priority=100,arp,arp_op=1,actions=set_field:10.0.0.253->arp_spa,set_field:02:00:00:00:00:fe->arp_sha,"
        "output:4",
        "priority=100,arp,arp_op=2,actions=set_field:1->arp_op,set_field:10.0.0.9->arp_tpa,"
        "set_field:02:00:00:00:00:ee->arp_tha,output:3",
        "priority=100,icmp6,icmpv6_type=128,actions=set_field:129->icmpv6_type,output:4",
        "priority=100,icmp6,icmpv6_type=129,actions=set_field:5->icmpv6_code,output:2",
        "priority=100,icmp6,icmpv6_type=135,icmpv6_code=0,actions=set_field:2001:db8::77->nd_target,"
        "set_field:02:00:00:00:00:dd->nd_sll,output:3",
        "priority=100,icmp6,icmpv6_type=136,icmpv6_code=0,actions=set_field:02:00:00:00:00:cc->nd_tll,output:4",
    ]
    return RefSet("set_field_sctp_icmp_arp", "set-field on the writable fields beyond Ethernet/IP/TCP/UDP: SCTP "
                  "ports (a wrong CRC32c among them), ICMP/ICMPv6 type and code, ARP fields, ND target, SLL (an "
                  "NS without the option among them) and TLL", flows, f.frames)


def set_dec_ttl() -> RefSet:
    f = Frames()
    for ttl in (64, 255, 2, 1, 0):
        for i in range(3):
            f.add(eth() / ip4("10.0.0.1", f"10.1.0.{i}", ttl=ttl) / UDP(sport=ttl, dport=i), 2)
            f.add(eth() / ip4("10.0.0.1", f"10.2.0.{i}", ttl=ttl) / TCP(sport=ttl, dport=i), 2)
            f.add(eth() / ip4("10.0.0.1", f"10.3.0.{i}", ttl=ttl) / UDP(sport=ttl, dport=i), 1)
            f.add(eth() / ip4("10.0.0.1", f"10.4.0.{i}", ttl=ttl) / UDP(sport=ttl, dport=i), 1)
        f.add(eth() / IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=ttl) / UDP(sport=ttl), 2)
    f.add(eth(dst=BCAST) / arp(1, "10.0.0.1", "10.0.0.2"), 3)                                       # misses
    f.add(eth() / ip4("10.0.0.1", "10.5.0.1", ttl=1) / UDP(), 3)
    flows = [
        "priority=100,ip,nw_dst=10.1.0.0/16,actions=dec_ttl,output:2",
        "priority=100,ip,nw_dst=10.2.0.0/16,actions=output:3,dec_ttl,output:2",
        "priority=100,ip,nw_dst=10.3.0.0/16,actions=dec_ttl,dec_ttl,mod_nw_src:10.33.0.1,output:4",
        "priority=100,ip,nw_dst=10.4.0.0/16,actions=mod_nw_ttl:2,output:2,dec_ttl,output:3,dec_ttl,output:4",
        "priority=100,ipv6,actions=dec_ttl,output:3",
    ]
    return RefSet("dec_ttl", "dec_ttl on IPv4/IPv6 (TTL 255, 64, 2, 1, 0: an expired TTL stops the actions "
                  "after it), twice, between outputs", flows, f.frames)


def _five_tuple_frames(f: Frames, n: int) -> None:
    for i in range(n):
        f.add(eth() / ip4(f"10.0.{i % 7}.{i}", f"10.1.{i % 5}.{i % 11}") / UDP(sport=1000 + i, dport=2000 + i % 13),
              1 + i % 3)
        f.add(eth() / ip4(f"10.2.{i % 3}.{i}", f"10.3.0.{i}") / TCP(sport=3000 + i, dport=80), 1 + i % 2)


def set_groups_select() -> RefSet:
    f = Frames()
    _five_tuple_frames(f, 30)
    for i in range(10):
        f.add(eth() / ip4(f"10.4.0.{i}", "10.5.0.1") / ICMP(id=i), 2)
        f.add(eth(src=f"02:00:00:00:02:{i:02x}", dst=BCAST) / arp(1, f"10.6.0.{i}", "10.6.0.254"), 1)
    f.add(eth() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(), 3)                           # misses
    groups = [
        "group_id=1,type=select,bucket=output:2,bucket=output:3,bucket=output:4",
        "group_id=2,type=select,bucket=weight:10,actions=mod_dl_dst:02:00:00:00:00:99,output:2,"
        "bucket=weight:20,actions=mod_dl_dst:02:00:00:00:00:99,output:3,bucket=weight:0,actions=output:5",
        "group_id=3,type=select,bucket=watch_port:9,actions=output:5,bucket=watch_port:4,actions=output:4",
    ]
    flows = [
        "priority=10,udp,actions=group:1",
        "priority=10,tcp,actions=group:2",
        "priority=10,icmp,actions=mod_nw_tos:8,group:1",
        "priority=10,arp,actions=group:3",
    ]
    return RefSet("groups_select", "select groups: equal buckets, weighted buckets with one of weight 0, a "
                  "bucket whose watch_port does not exist; outputs compared over ports 2-4 together (bucket "
                  "choice is each switch's own hash), port 5 must stay empty", flows, f.frames, groups,
                  ports=[1, 2, 3, 4, 5], combine=[{2, 3, 4}])


def set_groups_all_indirect() -> RefSet:
    f = Frames()
    for i in range(8):
        f.add(eth() / ip4(f"10.0.0.{i}", "10.1.0.1") / UDP(sport=i, dport=9), 3)
        f.add(eth() / ip4(f"10.0.1.{i}", "10.1.0.2") / TCP(sport=i, dport=9), 3)
        f.add(eth() / ip4(f"10.0.2.{i}", "10.1.0.3", ttl=5) / ICMP(id=i), 2)
        f.add(eth() / IPv6(src=f"2001:db8::{i + 1}", dst="2001:db8::ff", hlim=9) / UDP(sport=i), 2)
    f.add(eth() / ip4("10.0.4.1", "10.1.0.5", proto=47) / Raw(b"\x00" * 8), 3)
    f.add(eth(dst=BCAST) / arp(1, "10.0.0.1", "10.0.0.2"), 3)                                       # misses
    groups = [
        "group_id=10,type=indirect,bucket=mod_dl_src:02:00:00:00:10:10,output:5",
        "group_id=1,type=all,bucket=output:2,bucket=mod_vlan_vid:7,output:3,"
        "bucket=set_field:10.8.8.8->ip_dst,output:4,bucket=group:10",
        "group_id=2,type=all,bucket=in_port,bucket=mod_nw_ttl:1,output:2",
        "group_id=3,type=indirect,bucket=dec_ttl,mod_nw_tos:4,output:3",
    ]
    flows = [
        "priority=10,udp,actions=group:1",
        "priority=10,tcp,actions=mod_dl_dst:02:00:00:00:00:77,group:1,output:2",
        "priority=10,icmp,actions=group:2,dec_ttl,output:4",
        "priority=10,ipv6,actions=group:3",
        "priority=5,ip,actions=group:3,group:10",
    ]
    return RefSet("groups_all_indirect", "all groups (each bucket on its own copy; the flow's later actions "
                  "unaffected), indirect groups, a group calling a group, in_port in a bucket",
                  flows, f.frames, groups, ports=[1, 2, 3, 4, 5])


def set_groups_ff() -> RefSet:
    f = Frames()
    for g in range(1, 7):
        for i in range(6):
            f.add(eth() / ip4(f"10.0.{g}.{i}", "10.1.0.1") / UDP(sport=100 + i, dport=g), 1 + i % 3)
    f.add(eth() / ip4("10.0.9.1", "10.1.0.1") / UDP(sport=1, dport=99), 3)                          # misses
    groups = [
        "group_id=1,type=fast_failover,bucket=watch_port:9,actions=output:2,bucket=watch_port:3,actions=output:3,"
        "bucket=watch_port:4,actions=output:4",
        "group_id=2,type=fast_failover,bucket=watch_port:2,actions=mod_dl_dst:02:00:00:00:00:22,output:2,"
        "bucket=watch_port:3,actions=output:3",
        "group_id=3,type=fast_failover,bucket=watch_port:9,actions=output:2,bucket=watch_port:8,actions=output:3",
        "group_id=4,type=indirect,bucket=group:1",
        "group_id=5,type=fast_failover,bucket=watch_group:3,actions=output:2,bucket=watch_group:2,actions=output:5",
        "group_id=6,type=fast_failover,bucket=watch_group:4,actions=mod_nw_tos:4,group:2,"
        "bucket=watch_port:4,actions=output:4",
    ]
    flows = [f"priority=10,udp,udp_dst={g},actions=group:{g}" for g in range(1, 7)]
    return RefSet("groups_ff", "fast-failover groups: dead watch_port (no such port), live ones, none live, "
                  "watch_group on a dead and a live group, an indirect group in front of one", flows,
                  f.frames, groups, ports=[1, 2, 3, 4, 5])


def set_groups_ff_watch_both() -> RefSet:
    f = Frames()
    for g in (1, 2, 3):
        for i in range(8):
            f.add(eth() / ip4(f"10.0.{g}.{i}", "10.1.0.1") / UDP(sport=100 + i, dport=g), 1 + i % 3)
    f.add(eth() / ip4("10.0.9.1", "10.1.0.1") / UDP(sport=1, dport=99), 3)                          # misses
    groups = [
        "group_id=10,type=indirect,bucket=output:5",
        "group_id=11,type=fast_failover,bucket=watch_port:9,actions=output:5",
        "group_id=1,type=fast_failover,bucket=watch_port:9,watch_group:10,actions=output:2,"
        "bucket=watch_port:4,actions=output:4",
        "group_id=2,type=fast_failover,bucket=watch_port:3,watch_group:11,actions=output:3,"
        "bucket=watch_port:4,actions=output:4",
        "group_id=3,type=fast_failover,bucket=watch_port:9,watch_group:11,actions=output:2,"
        "bucket=watch_port:4,actions=output:4",
    ]
    flows = [f"priority=10,udp,udp_dst={g},actions=group:{g}" for g in (1, 2, 3)]
    return RefSet("groups_ff_watch_both", "fast-failover buckets with both watch_port and watch_group: OVS "
                  "takes such a bucket as live when either is (OpenFlow says a port \"and/or\" a group "
                  "controls liveness)", flows, f.frames, groups, ports=[1, 2, 3, 4, 5])


def set_multi_table() -> RefSet:
    f = Frames()
    for i in range(6):
        f.add(eth() / ip4(f"10.1.{i}.1", "10.9.0.1") / UDP(sport=i, dport=1), 3)
        f.add(eth() / ip4(f"10.2.{i}.1", "10.9.0.1") / TCP(sport=i, dport=1), 3)
        f.add(eth() / ip4(f"10.2.{i}.1", "10.9.0.1") / UDP(sport=i, dport=1), 3)
        f.add(eth() / ip4(f"10.2.{i}.1", "10.9.0.1") / ICMP(id=i), 2)                  # table 2 miss
        f.add(eth() / IPv6(src=f"2001:db8::{i + 1}", dst="2001:db8::ff") / UDP(sport=i), 2)
        f.add(eth(dst=BCAST) / arp(1, f"10.3.0.{i}", "10.3.0.254"), 2)
    f.add(Ether(src=H1, dst=H2, type=0x88B5) / Raw(b"\x00" * 40), 3)                               # misses
    flows = [
        "table=0,priority=10,in_port=1,ip,actions=mod_dl_src:02:00:00:00:00:aa,write_metadata:0x1/0xff,goto_table:1",
        "table=0,priority=10,in_port=1,ipv6,actions=write_metadata:0x2/0xff,goto_table:1",
        "table=0,priority=10,in_port=1,arp,actions=write_metadata:0xa00/0xff00,goto_table:2",
        "table=0,priority=0,actions=drop",
        "table=1,priority=20,metadata=0x1/0xff,ip,nw_src=10.1.0.0/16,actions=write_metadata:0x100/0xf00,"
        "goto_table:2",
        "table=1,priority=10,metadata=0x1/0xff,actions=write_metadata:0x200/0xf00,goto_table:2",
        "table=1,priority=10,metadata=0x2/0xff,actions=output:4",
        "table=2,priority=10,metadata=0x101,actions=output:2",
        "table=2,priority=10,metadata=0x201,tcp,actions=output:3",
        "table=2,priority=10,metadata=0x201,udp,actions=mod_tp_dst:7,goto_table:3",
        "table=2,priority=10,metadata=0xa00/0xff00,actions=output:4",
        "table=3,priority=1,metadata=0x201,actions=output:2,output:3",
    ]
    return RefSet("multi_table_metadata", "goto_table across four tables, write_metadata with masks, metadata "
                  "matches (masked and exact), apply-actions carried across tables, misses in later tables",
                  flows, f.frames)


def set_action_set() -> RefSet:
    f = Frames()
    for i in range(6):
        f.add(eth() / ip4(f"10.0.{i}.1", "10.9.0.1", ttl=9) / TCP(sport=i, dport=80), 3)
        f.add(eth() / ip4(f"10.0.{i}.1", "10.9.0.1", ttl=9) / TCP(sport=i, dport=22), 2)
        f.add(eth() / ip4(f"10.0.{i}.1", "10.9.0.1") / UDP(sport=i, dport=7), 2)
        f.add(eth() / ip4(f"10.0.{i}.1", "10.9.0.1") / UDP(sport=i, dport=9), 2)
        f.add(eth() / ip4(f"10.1.{i}.1", "10.9.0.1") / ICMP(), 2)                       # clear_actions: dropped
        f.add(eth() / ip4(f"10.2.{i}.1", "10.9.0.1", ttl=1 + i % 2) / ICMP(), 2)        # dec_ttl in the set
        f.add(eth() / IPv6(src=f"2001:db8::{i + 1}", dst="2001:db8::2") / UDP(sport=i), 2)
        f.add(eth(dst=BCAST) / arp(1, f"10.3.0.{i}", "10.3.0.254"), 2)
    f.add(Ether(src=H1, dst=H2, type=0x88B5) / Raw(b"\x00" * 40), 3)                               # misses
    groups = ["group_id=1,type=all,bucket=output:4,bucket=output:5"]
    flows = [
        "table=0,priority=10,ip,actions=write_actions(output:2),goto_table:1",
        "table=0,priority=10,ipv6,actions=write_actions(set_field:2001:db8::ff->ipv6_dst,output:3),goto_table:1",
        "table=0,priority=10,arp,actions=write_actions(output:4),goto_table:1",
        "table=1,priority=30,tcp,actions=write_actions(mod_dl_dst:02:00:00:00:00:33,set_field:10.3.3.3->ip_dst,"
        "mod_nw_ttl:7),goto_table:2",
        "table=1,priority=30,udp,actions=clear_actions,write_actions(output:3),goto_table:2",
        "table=1,priority=20,ip,nw_src=10.1.0.0/16,actions=clear_actions",
        "table=1,priority=10,arp,actions=output:2,write_actions(output:3)",
        "table=1,priority=5,actions=goto_table:2",
        "table=2,priority=10,udp,udp_dst=7,actions=write_actions(group:1)",
        "table=2,priority=10,tcp,tcp_dst=22,actions=write_actions(push_vlan:0x8100,set_field:4097->vlan_vid)",
        "table=2,priority=1,actions=write_actions(dec_ttl)",
    ]
    return RefSet("action_set", "write_actions/clear_actions: the action set across tables, its execution "
                  "order (push_vlan, dec_ttl, set_field, group, output), one set-field per field, group "
                  "overriding output, apply-actions beside it", flows, f.frames, groups, ports=[1, 2, 3, 4, 5])


def set_priorities() -> RefSet:
    f = Frames()
    srcs = ["10.0.0.1", "10.1.0.1", "10.1.2.1", "10.1.2.3", "10.200.0.1", "11.0.0.1"]
    for s in srcs:
        f.add(eth() / ip4(s, "10.9.0.1") / UDP(sport=1, dport=5), 2)
        f.add(eth() / ip4(s, "10.9.0.1") / UDP(sport=1, dport=0x8001), 1)
        f.add(eth() / ip4(s, "10.9.0.1") / TCP(sport=1, dport=0x1234, flags="A"), 2)
        f.add(eth() / ip4(s, "10.9.0.1") / TCP(sport=1, dport=0x2234, flags="S"), 1)
        f.add(eth() / ip4(s, "192.168.5.1") / UDP(), 1)
        f.add(eth(dst="01:00:5e:00:00:01") / ip4(s, "224.0.0.1") / UDP(), 1)
    for s in ["2001:db8::1", "2001:db8:1::1", "2001:db8:1:2::1", "2001:db8:1:2::5", "2001:db9::1"]:
        f.add(eth() / IPv6(src=s, dst="2001:db8::ff") / UDP(), 2)
    f.add(eth(dst=BCAST) / arp(1, "10.0.0.1", "10.0.0.2"), 3)
    f.add(Ether(src=H1, dst=H2, type=0x88B5) / Raw(b"\x00" * 40), 3)                               # misses
    flows = [
        "priority=10,ip,nw_src=10.0.0.0/8,actions=output:2",
        "priority=20,ip,nw_src=10.1.0.0/16,actions=output:3",
        "priority=30,ip,nw_src=10.1.2.0/24,actions=output:4",
        "priority=5,ip,nw_src=10.1.2.3,actions=output:5",
        "priority=40,tcp,nw_src=10.1.0.0/16,tp_dst=0x1000/0xf000,actions=output:5",
        "priority=45,tcp,tcp_flags=+syn-ack,actions=output:2",
        "priority=35,ip,nw_dst=192.168.0.1/255.255.0.255,actions=output:5",
        "priority=50,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=output:2,output:3",
        "priority=60,udp,udp_dst=0x8000/0x8000,actions=output:4",
        "priority=10,ipv6,ipv6_src=2001:db8::/32,actions=output:2",
        "priority=20,ipv6,ipv6_src=2001:db8:1::/48,actions=output:3",
        "priority=30,ipv6,ipv6_src=2001:db8:1:2::/64,actions=output:4",
        "priority=40,ipv6,ipv6_src=2001:db8:1:2::5/128,actions=output:5",
    ]
    return RefSet("priorities_prefixes", "overlapping rules at different priorities: nested IPv4 and IPv6 prefixes, "
                  "a shadowed /32, masked ports, a non-contiguous mask, a multicast bit, TCP flags",
                  flows, f.frames, ports=[1, 2, 3, 4, 5])


def set_output_ports() -> RefSet:
    f = Frames()
    for d in range(1, 10):
        for i in range(3):
            f.add(eth() / ip4(f"10.0.0.{100 + i}", f"10.0.0.{d}") / UDP(sport=i, dport=d), 1 + i)
    f.add(eth(dst=BCAST) / arp(1, "10.0.0.1", "10.0.0.2"), 4)
    f.add(eth() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(), 4)
    f.add(Ether(src=H1, dst=H2, type=0x88B5) / Raw(b"\x00" * 40), 3)                               # misses
    flows = [
        "priority=10,ip,nw_dst=10.0.0.1,actions=in_port",
        "priority=10,ip,nw_dst=10.0.0.2,actions=flood",
        "priority=10,ip,nw_dst=10.0.0.3,actions=all",
        "priority=10,ip,nw_dst=10.0.0.4,actions=output:1",
        "priority=10,ip,nw_dst=10.0.0.5,actions=output:2,output:2,output:3",
        "priority=10,ip,nw_dst=10.0.0.6,actions=mod_dl_src:02:00:00:00:00:06,in_port,output:2",
        "priority=10,ip,nw_dst=10.0.0.7,actions=output:9",
        "priority=10,ip,nw_dst=10.0.0.8,actions=flood,in_port",
        "priority=10,ip,nw_dst=10.0.0.9,actions=output:in_port,mod_nw_ttl:3,all",
        "priority=10,arp,actions=flood",
        "priority=10,ipv6,actions=all",
    ]
    return RefSet("output_ports", "output to in_port (by name and by number), flood, all (OVS's LOCAL port is "
                  "left out of the comparison), a port twice, a port that does not exist", flows, f.frames)


def set_arp_ipv6() -> RefSet:
    f = Frames()
    for i in range(5):
        f.add(eth(dst=BCAST) / arp(1, f"10.0.0.{10 + i}", "10.0.0.1"), 2)
        f.add(eth() / arp(2, "10.0.0.1", f"10.0.0.{10 + i}", sha=H2, tha=H1), 2)
        f.add(eth(dst=BCAST) / arp(1, f"10.0.1.{i}", "10.0.0.99"), 2)
        f.add(eth(dst=BCAST) / arp(1, "10.0.2.1", "10.0.0.98", sha=f"02:00:00:00:01:{i:02x}"), 2)
        f.add(eth(dst=BCAST) / arp(3, "10.0.2.1", "10.0.0.98", sha="02:00:00:00:02:00"), 1)          # RARP-like op
        sll = f"02:00:00:00:00:{0xa0 + i:02x}"
        f.add(eth(dst="33:33:ff:00:00:01") / IPv6(src=f"fe80::{i + 1}", dst="ff02::1:ff00:1", hlim=255)
              / ICMPv6ND_NS(tgt="2001:db8::1") / ICMPv6NDOptSrcLLAddr(lladdr=sll), 2, tag=False)
        f.add(eth(dst="33:33:ff:00:00:02") / IPv6(src=f"fe80::{i + 1}", dst="ff02::1:ff00:2", hlim=255)
              / ICMPv6ND_NS(tgt="2001:db8::2") / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:aa"), 2, tag=False)
        f.add(eth() / IPv6(src="2001:db8::1", dst=f"fe80::{i + 1}", hlim=255)
              / ICMPv6ND_NA(tgt="2001:db8::1", R=0, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr=H2), 2, tag=False)
        f.add(eth() / IPv6(src=f"2001:db8::{i + 1}", dst="2001:db8::ff", hlim=3) / ICMPv6EchoRequest(id=i), 2)
        f.add(eth() / IPv6(src=f"2001:db8::{i + 1}", dst="2001:db8::ff", fl=0x12345) / TCP(), 2)
        f.add(eth() / IPv6(src=f"2001:db8::{i + 1}", dst="2001:db8::fe") / UDP(sport=i), 2)
    f.add(Ether(src=H1, dst=H2, type=0x88B5) / Raw(b"\x00" * 40), 3)                               # misses
    flows = [
        "priority=20,arp,arp_op=1,arp_tpa=10.0.0.1,actions=output:2",
        "priority=20,arp,arp_op=2,actions=output:3",
        "priority=15,arp,arp_spa=10.0.1.0/24,actions=output:4",
        "priority=10,arp,arp_sha=02:00:00:00:01:00/ff:ff:ff:ff:ff:00,actions=output:3",
        "priority=5,arp,arp_op=3,actions=output:2",
        "priority=20,icmp6,icmpv6_type=135,nd_target=2001:db8::1,actions=output:2",
        "priority=15,icmp6,icmpv6_type=135,nd_sll=02:00:00:00:00:aa,actions=output:4",
        "priority=20,icmp6,icmpv6_type=136,nd_target=2001:db8::1,actions=output:3",
        "priority=15,icmp6,icmpv6_type=128,actions=dec_ttl,output:4",
        "priority=10,ipv6,ipv6_label=0x12345,actions=output:4",
        "priority=10,udp6,actions=set_field:2001:db8::77->ipv6_src,output:3",
        "priority=5,ipv6,ipv6_dst=ff02::/16,actions=output:2,output:4",
    ]
    return RefSet("arp_ipv6", "ARP matches (op, spa/tpa prefixes, sha masks), IPv6 neighbour discovery (nd_target, "
                  "nd_sll), ICMPv6, flow label, hop limit, set-field on IPv6", flows, f.frames)


def set_fragments_l4() -> RefSet:
    f = Frames()
    frag6 = lambda dst, **kw: eth() / IPv6(src="2001:db8::9", dst=dst, nh=44) / IPv6ExtHdrFragment(**kw)  # noqa: E731
    for i in range(3):
        # IPv6 later fragments: their nw_proto is 44, the fragment header's (OVS), not the upper protocol.
        f.add(frag6("2001:db8::1", id=i, offset=3, nh=6) / Raw(b"z" * 16), 2)
        f.add(frag6("2001:db8::1", id=i, offset=5, nh=17) / Raw(b"y" * 16), 2)
        f.add(frag6("2001:db8::1", id=i, m=1, nh=6) / TCP(sport=10 + i, dport=80), 2)          # first: 6
        # L4 set-field on IPv6 first fragments (and on whole packets, and later fragments: not set).
        f.add(frag6("2001:db8::2", id=i, m=1, nh=6) / TCP(sport=20 + i, dport=80, flags="S"), 2)
        f.add(frag6("2001:db8::2", id=i, m=1, nh=17) / UDP(sport=30 + i, dport=6), 2)
        f.add(frag6("2001:db8::2", id=i, offset=2, nh=17) / Raw(b"x" * 16), 2)
        f.add(eth() / IPv6(src="2001:db8::9", dst="2001:db8::2") / UDP(sport=40 + i, dport=6), 2)
        # tcp_flags on IPv4 first fragments: matched (OVS zeroes only the ports, for the lookup).
        f.add(eth() / ip4("10.0.0.1", "10.1.0.1", id=100 + i, flags="MF") / TCP(sport=50 + i, dport=80, flags="S"), 2)
        f.add(eth() / ip4("10.0.0.1", "10.1.0.1", id=100 + i, flags="MF") / TCP(sport=50 + i, dport=80, flags="A"), 2)
        f.add(eth() / ip4("10.0.0.1", "10.1.0.1") / TCP(sport=50 + i, dport=80, flags="S"), 2)
        f.add(eth() / ip4("10.0.0.1", "10.1.0.1", id=100 + i, frag=4, proto=6) / Raw(b"w" * 16), 2)
        # L4 set-field on IPv4 first fragments: TCP, UDP, SCTP.
        f.add(eth() / ip4("10.0.0.2", "10.1.0.2", id=200 + i, flags="MF") / UDP(sport=60 + i, dport=6), 2)
        f.add(eth() / ip4("10.0.0.2", "10.1.0.2", id=200 + i, flags="MF") / TCP(sport=70 + i, dport=7), 2)
        f.add(eth() / ip4("10.0.0.2", "10.1.0.2", id=200 + i, flags="MF") / SCTP(sport=80 + i, dport=8), 2)
        f.add(eth() / ip4("10.0.0.2", "10.1.0.2") / UDP(sport=60 + i, dport=6), 2)
        # The lookup sees a fragment's ports as 0, the actions see the real ones.
        f.add(eth() / ip4("10.0.0.3", "10.1.0.3", id=300 + i, flags="MF") / UDP(sport=90 + i, dport=6), 2)
        f.add(eth() / ip4("10.0.0.3", "10.1.0.3") / UDP(sport=90 + i, dport=6), 2)
        f.add(eth() / ip4("10.0.0.3", "10.1.0.3") / UDP(sport=90 + i, dport=0), 1)
        # ICMP in first fragments: its type is set too (the lookup sees type and code as 0).
        f.add(eth() / ip4("10.0.0.4", "10.1.0.4", id=400 + i, flags="MF") / ICMP(type=8, id=i), 2)
        f.add(eth() / ip4("10.0.0.4", "10.1.0.4", id=400 + i, frag=2, proto=1) / Raw(b"v" * 16), 2)
    f.add(eth(dst=BCAST) / arp(1, "10.0.0.1", "10.0.0.2"), 3)                                       # misses
    flows = [
        "priority=100,ipv6,ipv6_dst=2001:db8::1,nw_proto=6,actions=output:4",
        "priority=100,ipv6,ipv6_dst=2001:db8::1,nw_proto=17,actions=output:4",
        "priority=90,ipv6,ipv6_dst=2001:db8::1,nw_proto=44,actions=output:3",
        "priority=100,tcp6,ipv6_dst=2001:db8::2,actions=mod_tp_dst:8080,output:2",
        "priority=100,udp6,ipv6_dst=2001:db8::2,actions=set_field:80->udp_dst,mod_tp_src:7,output:3",
        "priority=100,tcp,nw_dst=10.1.0.1,tcp_flags=+syn,actions=output:2",
        "priority=50,ip,nw_dst=10.1.0.1,actions=output:3",
        "priority=100,udp,nw_dst=10.1.0.2,actions=set_field:80->udp_dst,output:4",
        "priority=100,tcp,nw_dst=10.1.0.2,actions=mod_tp_src:1234,mod_tp_dst:22,output:4",
        "priority=100,sctp,nw_dst=10.1.0.2,actions=set_field:99->sctp_dst,output:2",
        "priority=100,udp,nw_dst=10.1.0.3,tp_dst=6,actions=output:2",
        "priority=90,udp,nw_dst=10.1.0.3,tp_dst=0,actions=set_field:7->udp_src,output:4",
        "priority=50,ip,nw_dst=10.1.0.3,actions=output:3",
        "priority=100,icmp,nw_dst=10.1.0.4,icmp_type=8,actions=output:2",
        "priority=90,icmp,nw_dst=10.1.0.4,actions=set_field:0->icmp_type,output:3",
    ]
    return RefSet("fragments_l4", "IPv6 later fragments' nw_proto (44), tcp_flags matched on first fragments, "
                  "L4 set-field (TCP, UDP, SCTP; IPv4 and IPv6) on first fragments, ports seen as 0 by the "
                  "lookup only", flows, f.frames)


def set_ttl_expiry_groups() -> RefSet:
    f = Frames()
    for ttl in (64, 2, 1, 0):
        for i in range(2):
            for d in (1, 2, 3):
                f.add(eth() / ip4("10.0.0.1", f"10.1.0.{d}", ttl=ttl) / TCP(sport=ttl, dport=i), 1 + i)
            for d in (1, 2, 3):
                f.add(eth() / ip4("10.0.0.1", f"10.2.0.{d}", ttl=ttl) / UDP(sport=ttl, dport=i), 1 + i)
        f.add(eth() / IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=ttl) / UDP(sport=ttl), 2)
    f.add(eth(dst=BCAST) / arp(1, "10.0.0.1", "10.0.0.2"), 3)                                       # misses
    groups = [
        "group_id=1,type=all,bucket=dec_ttl,bucket=output:in_port",
        "group_id=2,type=all,bucket=dec_ttl,output:2,bucket=output:3",
        "group_id=3,type=indirect,bucket=dec_ttl,output:4",
    ]
    flows = [
        "table=0,priority=10,tcp,nw_dst=10.1.0.1,actions=group:1",
        "table=0,priority=10,tcp,nw_dst=10.1.0.2,actions=group:2,output:4",
        "table=0,priority=10,tcp,nw_dst=10.1.0.3,actions=group:3,output:2",
        "table=0,priority=10,udp,nw_dst=10.2.0.0/16,actions=write_actions(output:2),goto_table:1",
        "table=0,priority=10,ipv6,actions=write_actions(output:3),goto_table:1",
        "table=1,priority=10,udp,nw_dst=10.2.0.1,actions=dec_ttl,output:3",
        "table=1,priority=10,udp,nw_dst=10.2.0.2,actions=dec_ttl,write_actions(output:4),goto_table:2",
        "table=1,priority=10,udp,nw_dst=10.2.0.3,actions=group:3,write_actions(output:3)",
        "table=1,priority=10,ipv6,actions=dec_ttl,clear_actions",
        "table=2,priority=10,ip,actions=output:3",
    ]
    return RefSet("ttl_expiry_groups_action_set", "dec_ttl expiring (TTL 1, 0) in a group bucket ends that bucket "
                  "only, and in apply-actions ends that table's instructions but not the pending action set",
                  flows, f.frames, groups, ports=[1, 2, 3, 4])


def set_bucket_action_set() -> RefSet:
    f = Frames()
    for i in range(4):
        for d in range(1, 7):
            f.add(eth() / ip4("10.0.0.1", f"10.1.0.{d}", ttl=64 - i) / UDP(sport=i, dport=d), 1 + i % 2)
        f.add(eth(vlans=[(10, 1), (20, 2)]) / ip4("10.0.0.2", f"10.2.0.{i}") / UDP(sport=i), 2)
        f.add(eth(vlans=[(11, 3)]) / ip4("10.0.0.2", f"10.2.1.{i}") / UDP(sport=i), 2)
        f.add(eth() / ip4("10.0.0.3", f"10.3.0.{i}") / TCP(sport=i), 2)
    f.add(eth(dst=BCAST) / arp(1, "10.0.0.1", "10.0.0.2"), 3)                                       # misses
    groups = [
        "group_id=9,type=indirect,bucket=output:3",
        "group_id=1,type=all,bucket=output:2,dec_ttl",
        "group_id=2,type=indirect,bucket=output:4,output:4",
        "group_id=3,type=all,bucket=pop_vlan,strip_vlan,output:in_port,bucket=output:3",
        "group_id=4,type=all,bucket=output:3,mod_dl_dst:02:00:00:00:00:99,set_field:10.9.9.9->ip_dst",
        "group_id=5,type=all,bucket=mod_nw_ttl:5,dec_ttl,output:4,bucket=output:2,group:9",
        "group_id=6,type=fast_failover,bucket=watch_port:4,actions=output:4,output:2,mod_nw_tos:8",
        "group_id=7,type=all,bucket=push_vlan:0x8100,mod_vlan_vid:5,output:3",
        "group_id=8,type=all,bucket=mod_dl_src:02:00:00:00:00:88",
    ]
    flows = [
        "priority=10,udp,nw_dst=10.1.0.1,actions=group:1",
        "priority=10,udp,nw_dst=10.1.0.2,actions=group:2",
        "priority=10,udp,nw_dst=10.1.0.3,actions=group:4,output:2",
        "priority=10,udp,nw_dst=10.1.0.4,actions=group:5",
        "priority=10,udp,nw_dst=10.1.0.5,actions=group:6",
        "priority=10,udp,nw_dst=10.1.0.6,actions=group:8,output:4",
        "priority=10,dl_vlan=10,actions=group:3",
        "priority=10,dl_vlan=11,actions=group:3",
        "priority=10,tcp,vlan_tci=0x0000/0x1fff,actions=group:7",
    ]
    return RefSet("bucket_action_set", "group buckets are action sets: pop/push/dec_ttl/set-fields run before "
                  "the output, one action of each kind (the last output; a group over an output), a bucket "
                  "without an output does nothing", flows, f.frames, groups, ports=[1, 2, 3, 4])


def set_ipv4_proto58() -> RefSet:
    f = Frames()
    for i in range(3):
        f.add(eth() / ip4("10.0.0.1", f"10.1.0.{i}", proto=58) / Raw(b"\x00" * 8), 2, tag=False)
        f.add(eth() / ip4("10.0.0.1", f"10.1.0.{i}", proto=58) / Raw(b"\x80\x00\x12\x34" + b"\x00" * 4), 2)
        f.add(eth() / ip4("10.0.0.1", f"10.1.0.{i}") / ICMP(type=8, id=i), 2)
        f.add(eth() / IPv6(src="2001:db8::1", dst=f"2001:db8::{i + 2}") / ICMPv6EchoRequest(id=i), 2)
        f.add(eth() / IPv6(src="2001:db8::1", dst=f"2001:db8::{i + 2}", nh=1) / Raw(b"\x08\x00\x12\x34" + bytes(4)),
              2)
    f.add(eth(dst=BCAST) / arp(1, "10.0.0.1", "10.0.0.2"), 3)                                       # misses
    flows = [
        "priority=10,ip,actions=set_field:10.0.0.9->ip_src,output:2",
        "priority=10,ipv6,actions=set_field:2001:db8::99->ipv6_src,output:3",
    ]
    return RefSet("ipv4_proto58", "an address rewrite on IPv4 carrying protocol 58 (not ICMPv6 there) and IPv6 "
                  "carrying protocol 1 leaves the payload alone; ICMPv6's checksum follows the address",
                  flows, f.frames)


def set_metadata_in_port() -> RefSet:
    f = Frames()
    for i in range(4):
        for d in (1, 2, 3, 4):
            f.add(eth() / ip4(f"10.0.0.{i + 1}", f"10.1.0.{d}") / UDP(sport=i, dport=d), 1 + i % 2)
    f.add(eth(dst=BCAST) / arp(1, "10.0.0.1", "10.0.0.2"), 3)                                       # misses
    flows = [
        "table=0,priority=10,ip,nw_dst=10.1.0.1,actions=set_field:0x5->metadata,goto_table:1",
        "table=0,priority=10,ip,nw_dst=10.1.0.4,actions=goto_table:1",
        "table=1,priority=10,metadata=0x5,actions=output:2",
        "table=1,priority=5,actions=output:3",
        "table=0,priority=10,ip,nw_dst=10.1.0.2,actions=set_field:3->in_port,goto_table:2",
        "table=2,priority=10,in_port=3,actions=output:1,output:in_port",
        "table=2,priority=5,actions=output:4",
        "table=0,priority=10,ip,nw_dst=10.1.0.3,actions=set_field:2->in_port,output:2,output:4",
    ]
    return RefSet("set_field_metadata_in_port", "set_field to metadata (later tables match it) and to in_port "
                  "(later tables match it; output to the new in_port is skipped, to the old one allowed)",
                  flows, f.frames)


def set_vlan_pcp_partial() -> RefSet:
    f = Frames()
    for pcp in range(8):
        f.add(eth(vlans=[(10, pcp)]) / ip4("10.0.0.1", f"10.1.0.{pcp}") / UDP(sport=pcp), 2)
    f.add(eth() / ip4("10.0.0.1", "10.2.0.1") / UDP(), 3)
    flows = [
        "priority=20,vlan_tci=0x3000/0x3000,actions=output:2",
        "priority=10,vlan_tci=0x9000/0x9000,actions=output:3",
        "priority=5,vlan_tci=0x1000/0x1000,actions=output:4",
    ]
    return RefSet("vlan_pcp_partial", "vlan_tci with partial PCP masks (OpenFlow 1.0 + NXM on the OVS side: "
                  "OpenFlow 1.3's OXM cannot carry them)", flows, f.frames, protocol="OpenFlow10")


# ---- Open vSwitch 3.1's own bugs (test_reference_ovs.KNOWN says what each is and why ours is right)

def set_ovs_bug_later_fragment_csum() -> RefSet:
    f = Frames()
    for i in range(3):
        f.add(eth() / ip4("10.0.0.1", f"10.1.0.{i}", id=10 + i, frag=4, proto=6) / Raw(bytes(range(32))), 2)
        f.add(eth() / ip4("10.0.0.1", f"10.1.0.{i}", id=20 + i, frag=4, proto=17) / Raw(bytes(range(32))), 2)
        f.add(eth() / ip4("10.0.0.1", f"10.1.0.{i}") / TCP(sport=i, dport=80), 2)               # whole: agree
    f.add(eth(dst=BCAST) / arp(1, "10.0.0.1", "10.0.0.2"), 3)                                       # misses
    flows = ["priority=10,ip,actions=mod_nw_src:10.9.9.9,output:2"]
    return RefSet("ovs_bug_later_fragment_csum", "an address rewrite on later IPv4 TCP/UDP fragments (their payload "
                  "is no L4 header)", flows, f.frames)


def set_ovs_bug_vlan_megaflow() -> RefSet:
    f = Frames()
    f.add(eth(vlans=[(10, 1)]) / ip4("10.0.0.1", "10.1.0.1") / UDP(sport=1), 3)             # one tag, first
    f.add(eth(vlans=[(10, 1), (20, 2)]) / ip4("10.0.0.1", "10.1.0.1") / UDP(sport=1), 3)   # then two
    flows = ["priority=10,dl_vlan=10,actions=push_vlan:0x8100,set_field:4126->vlan_vid,set_field:3->vlan_pcp,"
             "output:2"]
    return RefSet("ovs_bug_vlan_megaflow", "push_vlan onto a one-tag frame, then onto two-tag frames of the same "
                  "outer tag", flows, f.frames)


def set_ovs_bug_ff_select_action_set() -> RefSet:
    f = Frames()
    for i in range(4):
        f.add(eth() / ip4("10.0.0.1", f"10.1.0.{i}") / UDP(sport=i), 2)
    f.add(eth(dst=BCAST) / arp(1, "10.0.0.1", "10.0.0.2"), 3)                                       # misses
    groups = ["group_id=2,type=select,bucket=output:3",
              "group_id=1,type=fast_failover,bucket=watch_port:3,actions=group:2"]
    flows = ["table=0,priority=10,ip,actions=write_actions(output:4),goto_table:1",
             "table=1,priority=10,ip,actions=group:1"]
    return RefSet("ovs_bug_ff_select_action_set", "an action set pending when a select group is reached "
                  "through a fast-failover group", flows, f.frames, groups)


def set_registers_resubmit() -> RefSet:
    f = Frames()
    for d in (0, 1, 2, 5, 6, 0x80, 0xFF, 0x23):
        f.add(eth() / ip4("10.0.0.1", f"10.1.0.{d}") / UDP(sport=d, dport=9), 2)      # the bounded loop
    for i in range(3):
        f.add(eth() / ip4("10.0.0.2", f"10.2.0.{i}") / UDP(sport=i, dport=10), 2)     # resubmit(3,2), regs
        f.add(eth() / ip4("10.0.0.3", f"10.3.0.{i}") / TCP(sport=i, dport=11), 2)     # xreg, pkt_mark
        f.add(eth(src=f"02:00:00:00:01:0{i}") / ip4("10.0.0.4", "10.4.0.1") / UDP(sport=i, dport=12), 2)  # stack
        f.add(eth() / ip4("10.0.0.5", "10.5.0.1") / UDP(sport=i, dport=13), 2)        # exit
    f.add(eth(dst=BCAST) / arp(1, "10.0.0.1", "10.0.0.2"), 3)                            # an endless loop
    f.add(eth() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=1, dport=2), 2)  # misses
    flows = [
        # A bounded loop: reg0 holds the low byte of nw_dst; each round shifts it right and
        # outputs to 3, until it is 0 (then to 2): as many frames to 3 as the byte has bits.
        "table=0,priority=10,udp,tp_dst=9,actions=move:NXM_OF_IP_DST[0..7]->NXM_NX_REG0[0..7],resubmit(,1)",
        "table=1,priority=20,reg0=0,actions=output:2",
        "table=1,priority=10,actions=move:NXM_NX_REG0[1..31]->NXM_NX_REG0[0..30],load:0->NXM_NX_REG0[31],"
        "output:3,resubmit(,1)",
        # resubmit with an in_port, registers matched exactly and masked, the same table again.
        "table=0,priority=10,udp,tp_dst=10,actions=load:0x5->reg2[],load:0xf->reg3[4..7],resubmit(3,2),"
        "resubmit(,2),output:1",
        "table=2,priority=10,reg2=5,reg3=0xf0/0xf0,in_port=3,actions=output:2",
        "table=2,priority=5,reg2=5,actions=output:4",
        # xreg and xxreg are the registers seen whole; pkt_mark; set_field to them, masked too.
        "table=0,priority=10,tcp,tp_dst=11,actions=set_field:0x1122334455667788->xreg3,load:7->pkt_mark,"
        "set_field:0x10/0xf0->reg9,resubmit(,3)",
        "table=3,priority=10,reg6=0x11223344,reg7=0x55667788,pkt_mark=7,reg9=0x10,actions=output:3,resubmit(,4)",
        "table=3,priority=5,actions=output:4",
        "table=4,priority=10,xxreg1=0x11223344556677880000000000000000/0xffffffffffffffff0000000000000000,"
        "actions=output:2",
        # The field stack swaps the MACs.
        "table=0,priority=10,udp,tp_dst=12,actions=push:NXM_OF_ETH_SRC[],push:NXM_OF_ETH_DST[],"
        "pop:NXM_OF_ETH_SRC[],pop:NXM_OF_ETH_DST[],output:2",
        # exit inside a resubmit ends the caller's actions too.
        "table=0,priority=10,udp,tp_dst=13,actions=write_actions(output:1),goto_table:6",
        "table=6,priority=10,actions=output:2,resubmit(,5),output:3",
        "table=5,priority=10,actions=output:4,exit,output:3",
        # An endless loop: over the depth limit, the packet is dropped.
        "table=0,priority=10,arp,actions=output:2,resubmit(,0)",
    ]
    return RefSet("registers_resubmit", "registers (reg, xreg, xxreg), pkt_mark, resubmit (to a table, with an "
                  "in_port, a bounded loop, an endless one), the field stack, exit", flows, f.frames)


def set_load_move_set_field() -> RefSet:
    f = Frames()
    for i in range(4):
        f.add(eth() / ip4("10.0.0.1", f"10.1.0.{i}") / UDP(sport=1000 + i, dport=20), 2)
        f.add(eth() / ip4("10.0.0.2", f"10.1.0.{i}") / TCP(sport=2000 + i, dport=21), 2)
        f.add(eth(src=f"02:00:00:00:02:0{i}") / ip4("10.0.0.3", f"10.1.0.{i}") / UDP(sport=i, dport=22), 2)
        f.add(eth() / IPv6(src="2001:db8::1", dst=f"2001:db8::{i + 5}") / UDP(sport=i, dport=23), 2)
    f.add(eth(dst=BCAST) / arp(1, "10.0.0.1", "10.0.0.2"), 3)                            # misses
    flows = [
        "priority=10,udp,tp_dst=20,actions=load:0x63->NXM_OF_IP_DST[0..7],load:0x2->NXM_OF_UDP_DST[8..11],"
        "load:1->NXM_NX_IP_TTL[0],output:2",
        "priority=10,tcp,tp_dst=21,actions=move:NXM_OF_TCP_SRC[]->NXM_OF_TCP_DST[],"
        "move:NXM_OF_IP_SRC[24..31]->NXM_OF_IP_DST[0..7],set_field:0x1000/0xf000->tcp_src,output:3",
        "priority=10,udp,tp_dst=22,actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],"
        "set_field:00:00:00:00:00:05/00:00:00:00:00:0f->eth_src,set_field:10.9.0.0/255.255.0.0->ip_src,output:4",
        "priority=10,udp6,tp_dst=23,actions=move:NXM_NX_IPV6_DST[0..15]->NXM_NX_IPV6_SRC[16..31],"
        "load:0x7->NXM_NX_IPV6_LABEL[],move:NXM_OF_UDP_SRC[]->NXM_NX_REG0[0..15],"
        "move:NXM_NX_REG0[0..7]->NXM_OF_ETH_DST[0..7],output:2",
    ]
    return RefSet("load_move_set_field", "load and move on packet fields and registers (subfields, across "
                  "fields), masked set_field on Ethernet, IPv4 and TCP fields", flows, f.frames)


def set_learn() -> RefSet:
    """Open vSwitch's "Advanced Features" tutorial pipeline (a VLAN learning switch: p1 trunk,
    p2 access VLAN 20, p3 and p4 access VLAN 30), fed on the trunk.  Frames that depend on what
    an earlier frame learned come 8 frames later (multicast-source frames table 0 drops), so
    that dpdkswitch's batch of upcalls (8 frames a poll here) has committed the learned flow,
    as Open vSwitch's PMD has, which translates its misses one by one."""
    f = Frames()
    a, b, c = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"

    def gap():
        f.add(eth(src="03:00:00:00:00:01", dst=b) / ip4("10.0.0.9", "10.0.0.8") / UDP(), 8)

    f.add(eth(src=a, dst=b, vlans=[(20, 0)]) / ip4("10.0.0.1", "10.0.0.2") / UDP(sport=1), 1)  # learns A, floods
    gap()
    f.add(eth(src=b, dst=a, vlans=[(20, 0)]) / ip4("10.0.0.2", "10.0.0.1") / UDP(sport=2), 1)  # A is on p1: none
    gap()
    f.add(eth(src=c, dst=a, vlans=[(30, 0)]) / ip4("10.0.0.3", "10.0.0.1") / UDP(sport=3), 1)  # not in VLAN 30
    f.add(eth(src=c, dst=b, vlans=[(20, 0)]) / ip4("10.0.0.3", "10.0.0.2") / UDP(sport=4), 1)  # B learned: none
    f.add(eth(src=c, dst=BCAST, vlans=[(30, 0)]) / arp(1, "10.0.0.3", "10.0.0.4"), 2)           # broadcast
    f.add(eth(src=a, dst=b) / ip4("10.0.0.1", "10.0.0.2") / UDP(sport=5), 2)                    # untagged on the trunk
    flows = [
        "table=0, dl_src=01:00:00:00:00:00/01:00:00:00:00:00, actions=drop",
        "table=0, dl_dst=01:80:c2:00:00:00/ff:ff:ff:ff:ff:f0, actions=drop",
        "table=0, priority=0, actions=resubmit(,1)",
        "table=1, priority=0, actions=drop",
        "table=1, priority=99, in_port=1, actions=resubmit(,2)",
        "table=1, priority=99, in_port=2, vlan_tci=0, actions=mod_vlan_vid:20, resubmit(,2)",
        "table=1, priority=99, in_port=3, vlan_tci=0, actions=mod_vlan_vid:30, resubmit(,2)",
        "table=1, priority=99, in_port=4, vlan_tci=0, actions=mod_vlan_vid:30, resubmit(,2)",
        "table=2 actions=learn(table=10, NXM_OF_VLAN_TCI[0..11], NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[], "
        "load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15]), resubmit(,3)",
        "table=3 priority=50 actions=resubmit(,10), resubmit(,4)",
        "table=3 priority=99 dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions=resubmit(,4)",
        "table=4 reg0=1 actions=1",
        "table=4 reg0=2 actions=strip_vlan,2",
        "table=4 reg0=3 actions=strip_vlan,3",
        "table=4 reg0=4 actions=strip_vlan,4",
        "table=4 reg0=0 priority=99 dl_vlan=20 actions=1,strip_vlan,2",
        "table=4 reg0=0 priority=99 dl_vlan=30 actions=1,strip_vlan,3,4",
        "table=4 reg0=0 priority=50 actions=1",
    ]
    return RefSet("learn", "learn: the advanced tutorial's VLAN learning switch, learned flows deciding later "
                  "frames (flood, or drop when learned on the input port, per VLAN)", flows, f.frames,
                  protocol="OpenFlow10")


def set_conjunction() -> RefSet:
    """conjunction(id,k/n) and conj_id: three dimensions (source, destination, UDP port), two
    (source and TCP port) below an ordinary rule that beats it for one source, a clause that
    is a clause of two conjunctions, and conjunctions in a resubmitted-to table."""
    f = Frames()
    for s_ in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.9"):
        for d in ("10.1.0.1", "10.1.0.2", "10.1.0.3"):
            for l4 in (UDP(sport=5, dport=53), UDP(sport=5, dport=67), UDP(sport=7, dport=54), TCP(sport=5, dport=80)):
                f.add(eth() / ip4(s_, d) / l4, 1)
    f.add(eth(dst=BCAST) / arp(1, "10.0.0.1", "10.0.0.2"), 2)
    flows = [
        # id 1, three dimensions: (10.0.0.1 or .2) x (10.1.0.1 or .2) x (UDP 53 or 67) -> 2
        "priority=100,ip,nw_src=10.0.0.1,actions=conjunction(1,1/3),conjunction(2,1/2)",
        "priority=100,ip,nw_src=10.0.0.2,actions=conjunction(1,1/3)",
        "priority=100,ip,nw_dst=10.1.0.1,actions=conjunction(1,2/3)",
        "priority=100,ip,nw_dst=10.1.0.2,actions=conjunction(1,2/3)",
        "priority=100,udp,tp_dst=53,actions=conjunction(1,3/3)",
        "priority=100,udp,tp_dst=67,actions=conjunction(1,3/3)",
        "priority=100,conj_id=1,ip,actions=output:2",
        # id 2, two dimensions at the same priority: 10.0.0.1 x TCP 80 -> 3 (with a TTL change)
        "priority=100,tcp,tp_dst=80,actions=conjunction(2,2/2)",
        "priority=100,conj_id=2,ip,actions=mod_nw_ttl:9,output:3",
        # id 3, two dimensions at a lower priority, below an ordinary rule for 10.0.0.3 and UDP 54
        "priority=50,ip,nw_src=10.0.0.3,actions=conjunction(3,1/2)",
        "priority=50,ip,nw_src=10.0.0.9,actions=conjunction(3,1/2)",
        "priority=50,ip,nw_dst=10.1.0.3,actions=conjunction(3,2/2)",
        "priority=60,udp,nw_src=10.0.0.3,tp_dst=54,actions=output:4",
        "priority=10,conj_id=3,actions=output:4,output:2",
        # the rest goes to table 1: id 4 there, UDP source port 7 x 10.1.0.2 -> 3
        "priority=0,actions=resubmit(,1)",
        "table=1,priority=20,udp,tp_src=7,actions=conjunction(4,1/2)",
        "table=1,priority=20,ip,nw_dst=10.1.0.2,actions=conjunction(4,2/2)",
        "table=1,priority=20,conj_id=4,actions=output:3",
        "table=1,priority=0,arp,actions=output:4",
    ]
    return RefSet("conjunction", "conjunction(id,k/n) and conj_id in two and three dimensions, a clause of two "
                  "conjunctions, an ordinary rule between them, conjunctions after a resubmit", flows, f.frames)


def set_vlan_tci_load() -> RefSet:
    """NXM_OF_VLAN_TCI written by load, move, push/pop: a tag pushed, rewritten, removed, and
    the TCI's bits kept without the present bit until a later load sets it."""
    f = Frames()
    for port in (30, 31, 32, 33):
        f.add(eth() / ip4("10.0.0.1", "10.1.0.1") / UDP(sport=7, dport=port), 2)
        f.add(eth(vlans=[(9, 3)]) / ip4("10.0.0.1", "10.1.0.1") / UDP(sport=7, dport=port), 2)
    flows = [
        "priority=10,udp,tp_dst=30,actions=load:0x1014->NXM_OF_VLAN_TCI[],output:2",
        "priority=10,udp,tp_dst=31,actions=load:0->NXM_OF_VLAN_TCI[],output:3",
        "priority=10,udp,tp_dst=32,actions=move:NXM_OF_UDP_SRC[0..11]->NXM_OF_VLAN_TCI[0..11],"
        "load:1->NXM_OF_VLAN_TCI[12],output:4",
        "priority=10,udp,tp_dst=33,actions=push:NXM_OF_VLAN_TCI[],load:0->NXM_OF_VLAN_TCI[12],output:2,"
        "pop:NXM_OF_VLAN_TCI[],output:3",
    ]
    return RefSet("vlan_tci_load", "NXM_OF_VLAN_TCI written by load, move and the field stack: tags pushed, "
                  "rewritten, removed", flows, f.frames)


def set_clone() -> RefSet:
    """clone(actions): changes inside a clone stay there (Ethernet, VLAN, IPv4, a register
    for a resubmit), outputs inside and after it, nested clones, exit inside one."""
    f = Frames()
    for port in (40, 41, 42, 43):
        f.add(eth() / ip4("10.0.0.1", "10.1.0.1") / UDP(sport=7, dport=port), 2)
        f.add(eth(vlans=[(9, 3)]) / ip4("10.0.0.1", "10.1.0.1") / UDP(sport=7, dport=port), 2)
    flows = [
        "priority=10,udp,tp_dst=40,actions=clone(mod_dl_src:02:00:00:00:00:09,mod_nw_dst:10.9.9.9,output:2),"
        "output:3",
        "priority=10,udp,tp_dst=41,actions=mod_dl_dst:02:00:00:00:00:07,clone(push_vlan:0x8100,"
        "set_field:4101->vlan_vid,set_field:1->vlan_pcp,output:2),clone(mod_nw_ttl:9,output:4),output:3",
        "priority=10,udp,tp_dst=42,actions=clone(load:1->reg0[],resubmit(,1),clone(mod_tp_src:99,output:2)),"
        "resubmit(,1)",
        "table=1,priority=10,reg0=1,actions=output:4",
        "table=1,priority=5,actions=output:3",
        "priority=10,udp,tp_dst=43,actions=clone(output:2,exit,output:4),output:3",
    ]
    return RefSet("clone", "clone: header and register changes stay inside, outputs around it, nested clones, "
                  "exit inside one", flows, f.frames)


def set_multipath() -> RefSet:
    """multipath over three links (each switch hashes its own way: compared as one multiset),
    every algorithm and field set, and a one-link multipath, which both must send to link 0."""
    f = Frames()
    _five_tuple_frames(f, 24)
    flows = [
        "table=0,priority=10,udp,actions=multipath(symmetric_l4,50,modulo_n,3,0,reg0[0..1]),resubmit(,1)",
        "table=0,priority=10,tcp,actions=multipath(symmetric_l3l4,7,hash_threshold,3,0,reg0[4..5]),"
        "move:reg0[4..5]->reg0[0..1],load:0->reg0[4..5],resubmit(,1)",
        "table=0,priority=5,ip,actions=multipath(nw_src,0,hrw,3,0,NXM_NX_REG0[0..1]),resubmit(,1)",
        "table=0,priority=1,actions=multipath(eth_src,1,iter_hash,1,0,reg0[0]),load:1->reg0[1],resubmit(,1)",
        "table=1,reg0=0,actions=output:2", "table=1,reg0=1,actions=output:3", "table=1,reg0=2,actions=output:4",
    ]
    return RefSet("multipath", "multipath's fields and algorithms over three links (a multiset), one link",
                  flows, f.frames, combine=[{2, 3, 4}])


def set_bundle() -> RefSet:
    """bundle and bundle_load over three live members (hrw: each switch hashes its own way, so
    ports 2-4 are one multiset), active_backup past a member that is not there (port 9) to the
    next (5, compared exactly), and bundles with no live member (nothing out, 0xffff loaded)."""
    f = Frames()
    _five_tuple_frames(f, 24)
    for i in range(4):
        f.add(eth(src=f"02:00:00:00:03:0{i}") / ip4("10.7.0.1", f"10.8.0.{i}") / ICMP(id=i), 2)
        f.add(eth(src=f"02:00:00:00:04:0{i}", dst=BCAST) / arp(1, f"10.9.0.{i}", "10.9.0.254"), 1)
        f.add(eth() / IPv6(src="2001:db8::1", dst=f"2001:db8::{i + 2}") / UDP(sport=i, dport=7), 2)
    flows = [
        "table=0,priority=10,udp,actions=bundle(symmetric_l4,50,hrw,ofport,members:2,3,4)",
        "table=0,priority=10,tcp,actions=bundle_load(eth_src,7,hrw,ofport,NXM_NX_REG0[],members:2,3,4),"
        "resubmit(,1)",
        "table=0,priority=10,icmp,actions=bundle(nw_src,0,active_backup,ofport,members:9,5,2)",
        "table=0,priority=10,ipv6,actions=bundle_load(nw_dst,0,active_backup,ofport,NXM_NX_REG1[0..15],"
        "members:9,8),resubmit(,2)",
        "table=0,priority=10,arp,actions=bundle(eth_src,0,hrw,ofport,members:9,8),output:5",
        "table=1,reg0=2,actions=output:2", "table=1,reg0=3,actions=output:3", "table=1,reg0=4,actions=output:4",
        "table=2,reg1=0xffff,actions=output:5",
    ]
    return RefSet("bundle", "bundle and bundle_load: hrw over live members (a multiset), active_backup past a "
                  "missing member, no live member", flows, f.frames, ports=[1, 2, 3, 4, 5], combine=[{2, 3, 4}])


def set_learn_limit() -> RefSet:
    """learn's limit and result_dst: two flows of (table 10, cookie 7) at most; a learn that
    finds its flow there already succeeds; the result bit decides the output, and the learned
    flows decide later frames.  Gap frames (no rule) between, as in set_learn."""
    f = Frames()
    macs = {k: f"02:00:00:00:00:{k}" for k in ("0a", "0b", "0c", "0d")}

    def gap():
        f.add(eth(dst=BCAST) / arp(1, "10.0.0.9", "10.0.0.8"), 8)

    for k in ("0a", "0b", "0c", "0a", "0c", "0d", "0b"):
        f.add(eth(src=macs[k], dst=H2) / ip4("10.0.0.1", "10.0.0.2") / UDP(sport=int(k, 16), dport=9), 1)
        gap()
    for k in ("0a", "0b", "0c", "0d"):
        f.add(eth(src=H1, dst=macs[k]) / ip4("10.0.0.1", "10.0.0.2") / TCP(sport=int(k, 16), dport=9), 2)
    flows = [
        "table=0,priority=10,udp,actions=learn(table=10,limit=2,cookie=0x7,result_dst=NXM_NX_REG1[0],"
        "NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:0x1->NXM_NX_REG2[0..3]),resubmit(,1)",
        "table=1,priority=10,reg1=1,actions=output:2",
        "table=1,priority=5,actions=output:3",
        "table=0,priority=10,tcp,actions=resubmit(,10),resubmit(,2)",
        "table=2,priority=10,reg2=1,actions=output:4",
    ]
    return RefSet("learn_limit", "learn's limit and result_dst: flows learned up to the limit, the result bit "
                  "deciding the output, the learned flows deciding later frames", flows, f.frames)


def set_mpls() -> RefSet:
    """MPLS push, pop and set, as Open vSwitch 3.1: push onto IPv4 (TC from the DSCP, TTL from
    the IP TTL), IPv6 (label 2), a tagged frame (after the tag) and a labelled one (a copy of the
    outer entry, BoS clear); set_mpls_label/tc/ttl and set_field; dec_mpls_ttl (TTL 1: to the
    controller, none here, so nothing out); matches on label, TC, BoS and TTL; pop to IPv4 (the
    whole stack goes, up to three entries, as Open vSwitch's commit pops them) with output only, and with L3 actions and a resubmit after it (recirculation); pop of an inner
    entry then a set of the next; two pops; pop and push in an action set."""
    from scapy.contrib.mpls import MPLS
    f = Frames()
    for port in (50, 51, 52, 53):
        f.add(eth() / ip4("10.0.0.1", "10.1.0.1", ttl=33, tos=0x28) / UDP(sport=7, dport=port), 2)
    f.add(eth() / IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=9) / UDP(sport=7, dport=50), 2)
    f.add(eth(vlans=[(9, 3)]) / ip4("10.0.0.1", "10.1.0.1") / UDP(sport=7, dport=52), 2)
    inner = ip4("10.0.0.1", "10.1.0.1", ttl=20) / UDP(sport=7, dport=9)
    for label in range(16, 25):
        for ttl in (1, 2, 64):
            f.add(Ether(src=H1, dst=H2, type=0x8847) / MPLS(label=label, cos=label % 8, s=1, ttl=ttl) / inner, 1)
        f.add(Ether(src=H1, dst=H2, type=0x8847) / MPLS(label=label, s=0, ttl=30) / MPLS(label=99, s=1, ttl=31)
              / inner, 2)
    for label in (16, 21, 23):                 # three entries: the most Open vSwitch's flow holds
        f.add(Ether(src=H1, dst=H2, type=0x8847) / MPLS(label=label, s=0, ttl=3) / MPLS(label=98, s=0, ttl=4)
              / MPLS(label=99, s=1, ttl=5) / inner, 2)
    f.add(Ether(src=H1, dst=H2, type=0x8847) / MPLS(label=40, s=1, ttl=5) / inner, 2)   # no rule: table miss
    flows = [
        "priority=10,udp,tp_dst=50,actions=push_mpls:0x8847,set_field:100->mpls_label,output:2",
        "priority=10,udp,tp_dst=51,actions=push_mpls:0x8848,set_mpls_label(101),set_mpls_tc(5),set_mpls_ttl(7),"
        "push_mpls:0x8847,set_mpls_label(102),output:3",
        "priority=10,udp,tp_dst=52,actions=push_mpls:0x8847,output:4",
        "priority=10,udp,tp_dst=53,actions=mod_nw_dst:10.9.9.9,push_mpls:0x8847,dec_mpls_ttl,output:2",
        "priority=10,mpls,mpls_label=16,actions=pop_mpls:0x0800,output:2",
        "priority=10,mpls,mpls_label=17,mpls_bos=1,actions=pop_mpls:0x0800,dec_ttl,mod_nw_dst:10.7.7.7,output:3",
        "priority=10,mpls,mpls_label=17,mpls_bos=0,actions=pop_mpls:0x8847,set_mpls_ttl(5),output:4",
        "priority=10,mpls,mpls_label=18,actions=set_field:99->mpls_label,dec_mpls_ttl,output:2",
        "priority=10,mpls,mpls_label=19,mpls_bos=0,actions=pop_mpls:0x8847,pop_mpls:0x0800,output:3",
        "priority=10,mpls,mpls_label=19,mpls_bos=1,actions=pop_mpls:0x0800,load:5->reg0[],resubmit(,1),output:4",
        "table=1,priority=10,ip,reg0=5,nw_dst=10.1.0.1,actions=mod_dl_src:02:00:00:00:00:09,output:2",
        "priority=10,mpls,mpls_label=20,mpls_tc=4,actions=set_mpls_tc(1),push_mpls:0x8847,set_mpls_label(7),"
        "output:3",
        "priority=10,mpls,mpls_label=20,actions=output:4",
        "priority=10,mpls,mpls_label=21,mpls_ttl=64,actions=set_mpls_ttl(9),output:2",
        "priority=10,mpls,mpls_label=21,actions=pop_mpls:0x0800,goto_table:2",
        "table=2,priority=10,udp,actions=mod_tp_dst:99,output:3",
        "table=2,priority=5,actions=output:4",
        "priority=10,mpls,mpls_label=22,actions=write_actions(pop_mpls:0x0800,output:2)",
        "priority=10,mpls,mpls_label=23,actions=pop_mpls:0x0800,clone(mod_nw_tos:16,output:2),output:3",
        "priority=10,mpls,mpls_label=24,actions=dec_mpls_ttl,dec_mpls_ttl,output:2",
    ]
    return RefSet("mpls", "MPLS push, pop and set: the LSE pushed from IP, copied from the outer one, after "
                  "a tag; label/TC/TTL set, dec_mpls_ttl; pop with outputs, L3 actions, resubmit, goto_table, "
                  "clone after it (recirculation); two pops; an action set", flows, f.frames)


def set_check_pkt_larger() -> RefSet:
    """check_pkt_larger: the bit decides a resubmit's lookup, the rule's goto_table and its action
    set, for frames below, at and above the length (the length is the whole frame's); pop_queue."""
    f = Frames()
    for size in (10, 33, 34, 35, 40, 200):    # frames of 60, 83, 84, 85, 90, 250 bytes (4 more tagged)
        f.add(eth() / ip4("10.0.0.1", "10.1.0.1") / UDP(sport=7, dport=60) / Raw(bytes(size)), 2)
        f.add(eth(vlans=[(9, 3)]) / ip4("10.0.0.1", "10.1.0.1") / UDP(sport=7, dport=61) / Raw(bytes(size)), 1)
    flows = [
        "priority=10,udp,tp_dst=60,actions=check_pkt_larger(84)->reg0[0],pop_queue,resubmit(,1),"
        "write_actions(output:4),goto_table:2",
        "table=1,reg0=1,actions=mod_dl_dst:02:00:00:00:00:09,output:2",
        "table=1,reg0=0,actions=output:3",
        "table=2,ip,reg0=1,actions=mod_nw_tos:32,output:3",
        "table=2,reg0=0,actions=clear_actions",
        "priority=10,udp,dl_vlan=9,tp_dst=61,actions=check_pkt_larger(90)->NXM_NX_REG1[5],strip_vlan,resubmit(,3)",
        "table=3,reg1=0x20,actions=output:4",
        "table=3,reg1=0,actions=output:2",
    ]
    return RefSet("check_pkt_larger", "check_pkt_larger: per-frame branches (resubmit, goto_table, the action "
                  "set) below, at and above the length", flows, f.frames)


SETS = [set_vlan, set_vlan_of10, set_set_field_l2l3, set_set_field_l4, set_ip_fragments, set_ipv6_ext,
        set_l2_misc, set_set_field_other, set_dec_ttl, set_groups_select, set_groups_all_indirect, set_groups_ff,
        set_groups_ff_watch_both, set_multi_table, set_action_set, set_priorities, set_output_ports, set_arp_ipv6,
        set_fragments_l4, set_ttl_expiry_groups, set_bucket_action_set, set_ipv4_proto58,
        set_metadata_in_port, set_vlan_pcp_partial,
        set_ovs_bug_later_fragment_csum, set_ovs_bug_vlan_megaflow, set_ovs_bug_ff_select_action_set,
        set_registers_resubmit, set_load_move_set_field, set_learn, set_conjunction, set_vlan_tci_load, set_clone, set_multipath,
        set_bundle, set_learn_limit, set_mpls, set_check_pkt_larger]


def all_sets() -> list[RefSet]:
    return [s() for s in SETS]
