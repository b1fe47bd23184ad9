"""A host on an 802.1Q trunk, for kernels without VLAN interfaces (no 8021q module): on
interface IFACE it answers ARP requests and ICMP echo requests for each VID:IP given, in that
VLAN's tag, from IFACE's MAC.  Run it in the trunk port's namespace; it runs until killed.

    python tagged_host.py IFACE 20:10.0.0.1 30:10.0.30.1
"""
from __future__ import annotations

import socket
import struct
import sys


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def answer(frame: bytes, mac: bytes, addrs: dict[int, bytes]) -> bytes | None:
    """The reply to FRAME, or None: an ARP reply or an ICMP echo reply in FRAME's VLAN."""
    if len(frame) < 18 or frame[12:14] != b"\x81\x00":
        return None
    vid = int.from_bytes(frame[14:16], "big") & 0xFFF
    ip = addrs.get(vid)
    if ip is None:
        return None
    etype, body = frame[16:18], frame[18:]
    head = frame[6:12] + mac + frame[12:16]
    if etype == b"\x08\x06" and len(body) >= 28 and body[6:8] == b"\x00\x01" and body[24:28] == ip:
        arp = body[:6] + b"\x00\x02" + mac + ip + body[8:18]
        return head + etype + arp
    if etype == b"\x08\x00" and len(body) >= 28 and body[16:20] == ip and body[9] == 1:
        ihl = (body[0] & 0xF) * 4
        total = int.from_bytes(body[2:4], "big")
        icmp = body[ihl:total]
        if not icmp or icmp[0] != 8:
            return None
        icmp = b"\x00\x00\x00\x00" + icmp[4:]
        icmp = icmp[:2] + struct.pack("!H", _checksum(icmp)) + icmp[4:]
        iph = bytearray(body[:ihl])
        iph[8] = 64
        iph[12:16], iph[16:20] = body[16:20], body[12:16]
        iph[10:12] = b"\0\0"
        iph[10:12] = struct.pack("!H", _checksum(bytes(iph)))
        return head + etype + bytes(iph) + icmp
    return None


SOL_PACKET, PACKET_AUXDATA = 263, 8
TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 0x10, 0x40


def retagged(data: bytes, ancdata) -> bytes:
    """The frame as it was on the wire: Linux takes a received frame's tag off into metadata
    (struct tpacket_auxdata) before a packet socket sees it; put it back."""
    for level, kind, aux in ancdata:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(aux) >= 20:
            status = int.from_bytes(aux[0:4], sys.byteorder)
            tci = int.from_bytes(aux[16:18], sys.byteorder)
            tpid = int.from_bytes(aux[18:20], sys.byteorder) if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
            if status & TP_STATUS_VLAN_VALID:
                return data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
    return data


def main() -> None:
    iface = sys.argv[1]
    addrs = {int(v): socket.inet_aton(a) for v, a in (x.split(":") for x in sys.argv[2:])}
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.bind((iface, 0))
    mac = s.getsockname()[4][:6]
    print("ready", flush=True)
    while True:
        frame = retagged(*s.recvmsg(65535, socket.CMSG_SPACE(32))[:2])
        reply = answer(frame, mac, addrs)
        if reply is not None:
            s.send(reply)


if __name__ == "__main__":
    main()
