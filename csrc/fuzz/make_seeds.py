#!/usr/bin/env python3
"""Write the seed corpus of the parser fuzz target (csrc/fuzz/fuzz_parse.c) into a directory.

usage: make_seeds.py DIR

One file per frame, built with scapy so that no binary is committed: Ethernet, 802.3, VLAN and
QinQ tags, IPv4 with options and as fragments, IPv6 with extension headers and fragments, TCP,
UDP, SCTP, ICMP, ICMPv6 neighbour solicitation/advertisement with link-layer options, ARP, and
a few cut short.  Deterministic: the same files every run.
"""
from __future__ import annotations

import struct

import hashlib
import logging
import os
import sys

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_RR  # noqa: E402
from scapy.layers.inet6 import (ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS,  # noqa: E402
                                ICMPv6NDOptDstLLAddr, ICMPv6NDOptMTU, ICMPv6NDOptSrcLLAddr, IPv6,
                                IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                                IPv6ExtHdrRouting)
from scapy.layers.ipsec import AH  # noqa: E402
from scapy.layers.l2 import ARP, Dot1Q, Dot3, Ether, LLC  # noqa: E402
from scapy.layers.sctp import SCTP  # noqa: E402
from scapy.packet import Raw  # noqa: E402

DST, SRC = "02:00:00:00:00:02", "02:00:00:00:00:01"
V4A, V4B = "10.0.0.1", "192.168.7.9"
V6A, V6B = "2001:db8::1", "fe80::1234:5678:9abc:def0"


def eth(payload, tags=()):
    """Ethernet with TAGS: a list of (tpid, tci) outer first."""
    if not tags:
        return Ether(dst=DST, src=SRC) / payload
    pkt = Ether(dst=DST, src=SRC, type=tags[0][0])
    for i, (_, tci) in enumerate(tags):
        nxt = tags[i + 1][0] if i + 1 < len(tags) else None
        tag = Dot1Q(prio=tci >> 13, dei=(tci >> 12) & 1, vlan=tci & 0xFFF)
        if nxt is not None:
            tag.type = nxt
        pkt = pkt / tag
    return pkt / payload


def frames():
    l4v4 = [TCP(sport=1234, dport=80, flags="S"),
            TCP(sport=443, dport=5555, flags="PA", options=[("MSS", 1460)]) / b"data", UDP(sport=5353, dport=53) / b"q", SCTP(sport=2905, dport=2905), ICMP(type=8, code=0) / b"ping",
            ICMP(type=3, code=4)]
    l4v6 = [TCP(sport=22, dport=40000, flags="FA"), UDP(sport=546, dport=547), SCTP(sport=1, dport=2),
            ICMPv6EchoRequest() / b"x"]
    nd = [ICMPv6ND_NS(tgt=V6B) / ICMPv6NDOptSrcLLAddr(lladdr=SRC),
          ICMPv6ND_NS(tgt=V6B),
          ICMPv6ND_NA(tgt=V6A, R=1, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr=DST),
          ICMPv6ND_NA(tgt=V6A) / ICMPv6NDOptMTU(mtu=1500) / ICMPv6NDOptDstLLAddr(lladdr=DST)]
    ip_opts = [[], [IPOption_NOP(), IPOption_NOP(), IPOption_NOP(), IPOption_NOP()],
               [IPOption_RR(routers=["1.2.3.4", "5.6.7.8"])]]
    tags_list = [(), ((0x8100, 0x2064),), ((0x88A8, 0x0064), (0x8100, 0xE00A)), ((0x8100, 1), (0x8100, 2))]
    out = []
    for tags in tags_list:
        for l4 in l4v4:
            for opts in ip_opts:
                out.append(eth(IP(src=V4A, dst=V4B, tos=0xB8, ttl=33, options=opts) / l4, tags))
        out.append(eth(IP(src=V4A, dst=V4B, flags="MF", frag=0) / TCP(sport=1, dport=2) / (b"a" * 32), tags))
        out.append(eth(IP(src=V4A, dst=V4B, proto=6, flags=0, frag=185) / (b"b" * 24), tags))
        for l4 in l4v6 + nd:
            out.append(eth(IPv6(src=V6A, dst=V6B, tc=0x2C, fl=0xABCDE, hlim=255 if l4 in nd else 17) / l4, tags))
        for ext in [IPv6ExtHdrHopByHop(), IPv6ExtHdrRouting(), IPv6ExtHdrDestOpt(),
                    IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting(), AH(spi=7, seq=1)]:
            out.append(eth(IPv6(src=V6A, dst=V6B) / ext / TCP(sport=7, dport=8), tags))
        out.append(eth(IPv6(src=V6A, dst=V6B) / IPv6ExtHdrFragment(m=1, offset=0, id=9) / UDP(sport=9, dport=10), tags))
        out.append(eth(IPv6(src=V6A, dst=V6B) / IPv6ExtHdrFragment(m=0, offset=100, id=9, nh=17) / (b"c" * 16), tags))
        out.append(eth(IPv6(src=V6A, dst=V6B) / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment(m=1, offset=0)
                       / ICMPv6EchoRequest(), tags))
        out.append(eth(ARP(op=1, hwsrc=SRC, psrc=V4A, hwdst="00:00:00:00:00:00", pdst=V4B), tags))
        out.append(eth(ARP(op=2, hwsrc=DST, psrc=V4B, hwdst=SRC, pdst=V4A), tags))
        out.append(eth(Raw(b"\x00" * 30), tags) if not tags else eth(Raw(b"\x01" * 30), tags))
    out.append(Ether(dst=DST, src=SRC, type=0x88CC) / (b"\x02\x07\x04" + b"\x00" * 40))
    # MPLS: one, two and four label stack entries over IPv4, one tagged; a truncated entry.
    lse = lambda label, bos, ttl: struct.pack("!I", label << 12 | 5 << 9 | bos << 8 | ttl)   # noqa: E731
    inner = bytes(IP(src=V4A, dst=V4B, ttl=9) / UDP(sport=1, dport=2) / b"mpls")
    for stack in ([lse(16, 1, 64)], [lse(16, 0, 64), lse(17, 1, 3)], [lse(i, i == 3, 1) for i in range(4)]):
        out.append(Ether(dst=DST, src=SRC, type=0x8847) / Raw(b"".join(stack) + inner))
    out.append(Ether(dst=DST, src=SRC, type=0x8100) / Dot1Q(vlan=5, type=0x8848) / Raw(lse(99, 1, 7) + inner))
    out.append(Ether(dst=DST, src=SRC, type=0x8847) / Raw(b"\x00\x01"))
    out.append(Dot3(dst=DST, src=SRC) / LLC() / b"stp")
    # Ethernet padding after short IPv4 and IPv6 packets: not payload.
    out.append(Ether(dst=DST, src=SRC) / IP(src=V4A, dst=V4B) / UDP(sport=1, dport=2) / (b"\xee" * 18))
    out.append(Ether(dst=DST, src=SRC) / IPv6(src=V6A, dst=V6B, nh=59, plen=0) / (b"\x3a" * 20))

    raw = [bytes(p) for p in out]
    # A few cut short, at every layer boundary of a tagged TCP/IPv6 and an ND frame.
    for base in (raw[0], bytes(eth(IPv6(src=V6A, dst=V6B) / IPv6ExtHdrDestOpt() / TCP(), ((0x8100, 5),))),
                 bytes(eth(IPv6() / nd[0]))):
        for n in (0, 6, 12, 13, 14, 16, 18, 20, 33, 34, 40, 54, 61, 62, 70, 77, 78, 85, 86):
            raw.append(base[:n])
    return raw


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    d = argv[1]
    os.makedirs(d, exist_ok=True)
    seen = set()
    for fr in frames():
        h = hashlib.sha1(fr).hexdigest()
        if h in seen:
            continue
        seen.add(h)
        with open(os.path.join(d, "seed-" + h), "wb") as f:
            f.write(fr)
    print(f"make_seeds: {len(seen)} seed frames in {d}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
