"""The learning switch with real hosts: VLAN access and trunk ports, MAC moves, fdb commands.
Hosts are network namespaces behind DPDK tap ports of `dpdkswitch run`."""
import os
import subprocess
import sys
import time

import pytest

from switchproc import TAG, SwitchProc, ns_sh, ping, sh

pytestmark = [pytest.mark.netns, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def quiet(ns: str) -> None:
    """No IPv6 chatter (router solicitations, MLD) in a host: counters then show only our traffic."""
    ns_sh(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", check=False)
    ns_sh(ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", check=False)


def trunk_host(ns: str, tap: str, vlans: dict[int, str]) -> subprocess.Popen:
    """A host on a trunk port answering ARP and ping on each VLAN, tagged on the wire
    (tests/vlanhost.py: this kernel may have no 802.1Q devices to do it)."""
    ns_sh(ns, "ip", "link", "set", tap, "up")
    here = os.path.dirname(os.path.abspath(__file__))
    p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, os.path.join(here, "vlanhost.py"), tap]
                         + [f"{vid}={addr.split('/')[0]}" for vid, addr in vlans.items()])
    time.sleep(1.5)                            # scapy's start-up
    return p


def port(name, i, ns, addr=None, extra=""):
    a = f", address: {addr}" if addr else ""
    return (f"      {name}: {{device: 'net_tap_l{TAG}{i},iface=l{TAG}{i}', ofport: {i}, "
            f"netns: {{name: {ns}{a}}}{extra}}}\n")


def test_vlans_keep_hosts_apart_and_trunks_carry_them(tmp_path):
    ns = {h: f"l2v{TAG}{h}" for h in ("a", "b", "c", "d")}
    cfg = ("dpdk: {cores: [0, 1]}\ncontrol: {socket: @SOCK@}\nbridges:\n  br0:\n    datapath: {pmd_cores: [1]}\n"
           "    ports:\n"
           + port("pa", 1, ns["a"], "10.9.0.1/24", ", tag: 10")
           + port("pb", 2, ns["b"], "10.9.0.2/24", ", tag: 10")
           + port("pc", 3, ns["c"], None, ", vlan_mode: trunk, trunks: [10, 20]")
           + port("pd", 4, ns["d"], "10.9.0.4/24", ", tag: 20"))
    sw = SwitchProc(tmp_path, cfg)
    try:
        for h in ns.values():
            quiet(h)
        host_c = trunk_host(ns["c"], f"l{TAG}3", {10: "10.9.0.3/24", 20: "10.9.20.3/24"})
        ns_sh(ns["d"], "ip", "addr", "add", "10.9.20.4/24", "dev", f"l{TAG}4")

        assert ping(ns["a"], "10.9.0.2")                   # access to access, VLAN 10
        assert ping(ns["a"], "10.9.0.3")                   # access to trunk, tagged 10 there
        assert ping(ns["d"], "10.9.20.3")                  # VLAN 20 over the same trunk
        assert not ping(ns["d"], "10.9.0.3", count=1, wait=1)  # the trunk host's VLAN 10 address
        assert not ping(ns["a"], "10.9.0.4", count=2, wait=1)   # same subnet, VLAN 20: apart
        assert not ping(ns["d"], "10.9.0.2", count=2, wait=1)

        host_c.kill()
        # A TCP transfer inside VLAN 10, between the access hosts.
        payload = os.urandom(200_000)
        (tmp_path / "payload").write_bytes(payload)
        server = ("import socket,sys;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
                  "s.bind(('10.9.0.2',5001));s.listen(1);c,_=s.accept();d=b''\n"
                  "while True:\n b=c.recv(65536)\n if not b: break\n d+=b\n"
                  f"open('{tmp_path}/got','wb').write(d)")
        srv = subprocess.Popen(["ip", "netns", "exec", ns["b"], "python3", "-c", server])
        time.sleep(0.5)
        client = ("import socket;s=socket.create_connection(('10.9.0.2',5001),timeout=10);"
                  f"s.sendall(open('{tmp_path}/payload','rb').read());s.close()")
        ns_sh(ns["a"], "python3", "-c", client)
        srv.wait(timeout=20)
        assert (tmp_path / "got").read_bytes() == payload

        fdb = sw.ctl("fdb/show", "br0")
        rows = [l.split() for l in fdb.splitlines()[1:]]
        assert {(r[0], r[1]) for r in rows} >= {("1", "10"), ("2", "10"), ("3", "10"), ("3", "20"), ("4", "20")}, fdb
        # Across VLANs no TCP either: VLAN 20's host cannot reach VLAN 10's server.
        srv = subprocess.Popen(["ip", "netns", "exec", ns["b"], "python3", "-c", server])
        time.sleep(0.5)
        r = ns_sh(ns["d"], "python3", "-c", client.replace("10.9.0.2", "10.9.0.2") , check=False, timeout=30)
        srv.kill()
        assert r.returncode != 0
    finally:
        assert sw.stop() == 0, sw.log.read_text()
    for h in ns.values():
        assert h not in sh("ip", "netns", "list").stdout


def test_mac_move_follows_within_one_revalidation(tmp_path):
    ns = {h: f"l2m{TAG}{h}" for h in ("h", "a", "b")}
    cfg = ("dpdk: {cores: [0, 1]}\ncontrol: {socket: @SOCK@}\nbridges:\n  br0:\n    datapath: {pmd_cores: [1]}\n"
           "    ports:\n"
           + port("ph", 1, ns["h"], "10.8.0.1/24")
           + port("pa", 2, ns["a"])
           + port("pb", 3, ns["b"]))
    sw = SwitchProc(tmp_path, cfg)
    mac, ip = "02:aa:bb:cc:dd:01", "10.8.0.9/24"
    try:
        for h in ns.values():
            quiet(h)
        ta, tb = f"l{TAG}2", f"l{TAG}3"
        ns_sh(ns["a"], "ip", "link", "set", ta, "address", mac)
        ns_sh(ns["a"], "ip", "addr", "add", ip, "dev", ta)
        assert ping(ns["h"], "10.8.0.9")
        assert any(mac in l and l.split()[0] == "2" for l in sw.ctl("fdb/show", "br0").splitlines())

        # The host moves: gone from A, the same MAC and address now behind B.
        ns_sh(ns["a"], "ip", "addr", "flush", "dev", ta)
        ns_sh(ns["a"], "ip", "link", "set", ta, "down")
        ns_sh(ns["b"], "ip", "link", "set", tb, "address", mac)
        ns_sh(ns["b"], "ip", "addr", "add", ip, "dev", tb)
        assert ping(ns["b"], "10.8.0.1", count=8)          # it speaks first: the switch learns the move
        sw.ctl("revalidator/run")
        assert any(mac in l and l.split()[0] == "3" for l in sw.ctl("fdb/show", "br0").splitlines())
        before = sw.tx_packets("pa")
        assert ping(ns["h"], "10.8.0.9", count=5)
        assert sw.tx_packets("pa") == before, "a frame went to the old port after the move"
        assert "port moved MAC entries  : 1" in sw.ctl("fdb/stats-show", "br0")
    finally:
        assert sw.stop() == 0, sw.log.read_text()


def test_hosts_on_two_bridges_talk_through_patch_ports(tmp_path):
    """Two bridges linked by a patch port pair (sharing one datapath and its PMD): hosts on
    each side ping and carry a TCP transfer; each direction is one datapath flow that outputs
    straight to the far host's tap, and dpif/show lists the patch ports with no datapath port."""
    ns = {h: f"l2p{TAG}{h}" for h in ("a", "b")}
    cfg = ("dpdk: {cores: [0, 1]}\ncontrol: {socket: @SOCK@}\nbridges:\n"
           "  br0:\n    ports:\n" + port("pa", 1, ns["a"], "10.7.0.1/24")
           + "      px: {peer: py, ofport: 9}\n"
           "  br1:\n    ports:\n" + port("pb", 2, ns["b"], "10.7.0.2/24")
           + "      py: {peer: px, ofport: 9}\n")
    sw = SwitchProc(tmp_path, cfg)
    try:
        for h in ns.values():
            quiet(h)
        assert ping(ns["a"], "10.7.0.2", count=3)
        server = subprocess.Popen(["ip", "netns", "exec", ns["b"], sys.executable, "-c",
                                   "import socket; s = socket.create_server(('10.7.0.2', 5001)); c, _ = s.accept(); "
                                   "n = 0\nwhile (d := c.recv(65536)): n += len(d)\nprint(n)"],
                                  stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        ns_sh(ns["a"], sys.executable, "-c", "import socket; s = socket.create_connection(('10.7.0.2', 5001)); "
              "s.sendall(bytes(2_000_000)); s.close()")
        assert server.communicate(timeout=30)[0].strip() == "2000000"
        show = sw.ctl("dpif/show")
        assert "px 9/none: (patch: peer=py) link up" in show and "py 9/none: (patch: peer=px) link up" in show
        # Lookups, per input bridge: br0 took the 2 MB (~1,400 frames), nearly all datapath hits
        # once the revalidator has pushed the counters (every 500 ms at most).
        deadline = time.time() + 5
        while True:
            look = {l.split(":")[0]: l for l in show.splitlines() if l.startswith("br")}
            hits = [int(l.split("hit:")[1].split()[0]) for l in show.splitlines() if "lookups:" in l]
            missed = [int(l.split("missed:")[1].split()[0]) for l in show.splitlines() if "lookups:" in l]
            if hits[0] > 1300 or time.time() > deadline:
                break
            time.sleep(0.2)
            show = sw.ctl("dpif/show")
        assert list(look) == ["br0", "br1"] and len(hits) == 2, show
        assert hits[0] > 1300 and 1 <= missed[0] < 100, show
        assert hits[1] > 0 and missed[1] >= 1, show               # the ACKs, in on br1
        flows = sw.ctl("dpif/dump-flows", "br0")
        lines = flows.splitlines()
        assert any("eth_type=0x800" in l for l in lines), flows
        # br0's flows (in on pa) go out on pb's datapath port, in one pass: no second lookup.
        dp_b = next(l.split()[1].split("/")[1].rstrip(":") for l in show.splitlines() if l.strip().startswith("pb "))
        assert all(l.rstrip().endswith(f"actions:{dp_b}") for l in lines), flows
        assert sw.ctl("ofctl/dump-flows", "br1").count("n_packets=0") == 0
    finally:
        assert sw.stop() == 0, sw.log.read_text()


def test_the_local_port_takes_output_local_and_matches_in_port_local(tmp_path):
    """ofport: LOCAL makes a port the bridge's local port (Open vSwitch's bridge interface):
    rules send to it with output:LOCAL and match its frames with in_port=LOCAL."""
    ns = {h: f"l2l{TAG}{h}" for h in ("h", "l")}
    cfg = ("dpdk: {cores: [0, 1]}\ncontrol: {socket: @SOCK@}\nbridges:\n  br0:\n    datapath: {pmd_cores: [1]}\n"
           "    ports:\n" + port("ph", 1, ns["h"], "10.6.0.1/24")
           + f"      loc: {{device: 'net_tap_l{TAG}9,iface=l{TAG}9', ofport: LOCAL, "
             f"netns: {{name: {ns['l']}, address: 10.6.0.2/24}}}}\n"
           "    flows:\n      - 'in_port=1,actions=output:LOCAL'\n      - 'in_port=LOCAL,actions=output:1'\n")
    sw = SwitchProc(tmp_path, cfg)
    try:
        for h in ns.values():
            quiet(h)
        assert ping(ns["h"], "10.6.0.2", count=3)
        assert "loc LOCAL/" in sw.ctl("dpif/show")
        flows = sw.ctl("ofctl/dump-flows", "br0")
        assert "in_port=LOCAL" in flows and "actions=LOCAL" in flows.replace("output:LOCAL", "LOCAL")
        assert all("n_packets=0" not in l for l in flows.splitlines() if "in_port" in l), flows
    finally:
        assert sw.stop() == 0, sw.log.read_text()
