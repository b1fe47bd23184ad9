"""A host on a trunk port, for kernels without 802.1Q devices: answers ARP and ping for one
address per VLAN, with tagged frames, on a raw socket.  Run inside the host's namespace:

    python3 vlanhost.py IFACE VID=IP [VID=IP ...]

It reads frames with their tags (the kernel hands them over as auxdata; scapy puts them back)
and replies on the same VLAN from the interface's MAC.  Stops when killed.
"""
import sys

from scapy.all import ARP, ICMP, IP, Dot1Q, Ether, conf, get_if_hwaddr


def main() -> None:
    iface = sys.argv[1]
    addrs = {int(v): ip for v, ip in (a.split("=") for a in sys.argv[2:])}
    mac = get_if_hwaddr(iface)
    sock = conf.L2socket(iface=iface)
    while True:
        p = sock.recv()
        if p is None or Dot1Q not in p:
            continue
        vid = p[Dot1Q].vlan
        me = addrs.get(vid)
        if me is None:
            continue
        if ARP in p and p[ARP].op == 1 and p[ARP].pdst == me:
            sock.send(Ether(dst=p.src, src=mac) / Dot1Q(vlan=vid) /
                      ARP(op=2, hwsrc=mac, psrc=me, hwdst=p[ARP].hwsrc, pdst=p[ARP].psrc))
        elif IP in p and ICMP in p and p[IP].dst == me and p[ICMP].type == 8:
            sock.send(Ether(dst=p.src, src=mac) / Dot1Q(vlan=vid) /
                      IP(src=me, dst=p[IP].src) / ICMP(type=0, id=p[ICMP].id, seq=p[ICMP].seq) /
                      bytes(p[ICMP].payload))


if __name__ == "__main__":
    main()
