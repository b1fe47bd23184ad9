"""Bonds live against Open vSwitch 3.1: `dpdkswitch run` and an OVS-DPDK bond linked by two veth
pairs (net_af_packet both sides), a host in a namespace behind each switch.  For balance-tcp with
LACP active (fast) and for active-backup without LACP: LACP (when on) negotiated both ends, each
lacp/show naming the other's system as partner, every member current attached, collecting and
distributing; ping and a TCP exchange between the hosts; many flows (source MACs and UDP ports)
on both members in the balance modes, on one in active-backup; a broadcast from a host arrives
once; one link cut: traffic goes on by the other within 3 s, no reply duplicated; the link back:
the member rejoins and carries traffic again.  Also balance-slb with LACP, and without against
two plain ports (a switch that knows no bonds), and active-backup (both ends preferring link 1).  A partner without LACP leaves our LACP
bond down (both members defaulted, detached, "no partner"), unless lacp_fallback_ab: then it runs
active-backup and the hosts reach each other.  A partner whose two links are in aggregations of
different keys leaves our member on the second detached, and lacp/show says why.
"""
import contextlib
import os
import re
import subprocess
import sys
import time

import pytest

from switchproc import TAG, SwitchProc, ns_sh, ping, sh

pytestmark = [pytest.mark.netns, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def wait(cond, seconds, what, extra=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s: {what}" + (extra() if extra else ""))


def member_enabled(show: str, name: str) -> bool:
    return re.search(rf"^member {name}: enabled", show, re.M) is not None


FULL = "activity timeout aggregation synchronized collecting distributing"


def lacp_member(text: str, name: str) -> str:
    """A member's block of a lacp/show."""
    m = re.search(rf"^member: {name}: (.*?)(?=^member: |\Z)", text, re.M | re.S)
    return m.group(0) if m else ""


def lacp_full(text: str, members) -> bool:
    """Every member of MEMBERS current attached, actor and partner both in sync, collecting and
    distributing (a lacp/show of ours or Open vSwitch's: the same format)."""
    return all(lacp_member(text, m).startswith(f"member: {m}: current attached")
               and lacp_member(text, m).count(FULL) == 2 for m in members)


def tcp_exchange(client_ns: str, server_ns: str, addr: str, port: int) -> str:
    """A TCP connection from CLIENT_NS to ADDR:PORT in SERVER_NS: 64 kB sent, echoed back."""
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, sys.executable, "-c",
                               "import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                               f"s.bind(('{addr}', {port})); s.listen(1); s.settimeout(20); c, _ = s.accept()\n"
                               "while (d := c.recv(65536)): c.sendall(d)\n"])
    try:
        time.sleep(0.5)
        out = ns_sh(client_ns, sys.executable, "-c",
                    "import socket, sys; s=socket.create_connection(('%s', %d), timeout=10)\n"
                    "data=bytes(range(256))*256; s.sendall(data); s.shutdown(socket.SHUT_WR); got=b''\n"
                    "while (d := s.recv(65536)): got += d\n"
                    "sys.stdout.write('echoed %%d ok %%s' %% (len(got), got == data))" % (addr, port))
        return out.stdout
    finally:
        server.kill()
        server.wait()


@contextlib.contextmanager
def rig(tmp_path, t, ovs_bond, bond_yaml):
    """Our bond0 (m1, m2; BOND_YAML: its other keys) linked by two veth pairs to Open vSwitch's
    bondP (o1, o2; OVS_BOND: its add-bond settings), host ha{T} (10.77.0.1) behind us and hb{T}
    (10.77.0.2) behind it (OVS_BOND None: two plain ports o1, o2 there).  Yields (switch, ovs, nsenter into Open vSwitch's namespace, links)."""
    ovs_mod = pytest.importorskip("dpdkswitch.bench.ovs")
    if ovs_mod.missing():
        pytest.skip(ovs_mod.missing())
    links = [(f"bv{t}{i}", f"bo{t}{i}") for i in (1, 2)]
    host_b, hb_in, hb_out = f"hb{t}", f"hv{t}", f"ho{t}"
    for near, far in links:
        sh("ip", "link", "add", near, "type", "veth", "peer", "name", far)
        sh("ip", "link", "set", near, "up")
    sh("ip", "netns", "add", host_b)
    sh("ip", "link", "add", hb_in, "type", "veth", "peer", "name", hb_out)
    sh("ip", "link", "set", hb_in, "netns", host_b)
    ns_sh(host_b, "ip", "addr", "add", "10.77.0.2/24", "dev", hb_in)
    ns_sh(host_b, "ip", "link", "set", hb_in, "up")
    # no TCP/UDP checksum offload on host b's veth: Open vSwitch's af_packet port would take its
    # frames with the checksum not yet filled in, and host a would drop them (ethtool -K tx off)
    ns_sh(host_b, sys.executable, "-c", "import ctypes, fcntl, socket, struct; "
          "cmd = ctypes.create_string_buffer(struct.pack('II', 0x17, 0)); "      # ETHTOOL_STXCSUM, off
          f"s = socket.socket(); fcntl.ioctl(s.fileno(), 0x8946, "                 # SIOCETHTOOL
          f"struct.pack('16sP16x', b'{hb_in}', ctypes.addressof(cmd)))")
    ovs = ovs_mod.Ovs(tmp_path / "ovs")
    sw = None
    nsenter = lambda *a: sh("nsenter", "-t", str(ovs.vswitchd.pid), "-n", *a)
    try:
        ovs.start()
        for dev in [far for _, far in links] + [hb_out]:
            sh("ip", "link", "set", dev, "netns", str(ovs.vswitchd.pid))
            nsenter("ip", "link", "set", dev, "up")
        if ovs_bond is None:                   # two plain ports: a switch that knows nothing of bonds
            for i in (1, 2):
                ovs.add_port(f"o{i}", i, f"net_af_packet_b{t}{i},iface={links[i - 1][1]}")
        else:
            ovs.vsctl("add-bond", ovs.bridge, "bondP", "o1", "o2", *ovs_bond,
                      "--", "set", "Interface", "o1", "type=dpdk",
                      f"options:dpdk-devargs=net_af_packet_b{t}1,iface={links[0][1]}", "ofport_request=1",
                      "--", "set", "Interface", "o2", "type=dpdk",
                      f"options:dpdk-devargs=net_af_packet_b{t}2,iface={links[1][1]}", "ofport_request=2")
        ovs.add_port("oh", 3, f"net_af_packet_h{t},iface={hb_out}")
        ovs.add_flows(["actions=NORMAL"])
        ovs.start_pmd()
        sw = SwitchProc(tmp_path, (
            "dpdk: {cores: [0, 1]}\ncontrol: {socket: @SOCK@}\nbridges:\n  br0:\n    datapath: {pmd_cores: [1]}\n"
            "    ports:\n      bond0:\n        interfaces:\n"
            f"          m1: {{device: 'net_af_packet_bv{t}1,iface={links[0][0]}', ofport: 1}}\n"
            f"          m2: {{device: 'net_af_packet_bv{t}2,iface={links[1][0]}', ofport: 2}}\n"
            + bond_yaml +
            f"      h1: {{device: 'net_tap_h{t},iface=ht{t}', ofport: 3, "
            f"netns: {{name: ha{t}, address: 10.77.0.1/24}}}}\n"))
        yield sw, ovs, nsenter, links
    finally:
        if sw is not None:
            sw.stop()
        ovs.stop()
        for near, _ in links:
            sh("ip", "link", "del", near, check=False)
        sh("ip", "netns", "del", host_b, check=False)


@pytest.mark.parametrize("mode, lacp", [("balance-tcp", "active"), ("active-backup", "off"),
                                        ("balance-slb", "off"), ("balance-slb", "active")])
def test_bond_with_open_vswitch_carries_traffic_and_survives_a_member_failure(tmp_path, mode, lacp):
    t = f"{TAG}{mode[8] if mode.startswith('balance') else 'a'}{lacp[0]}"
    host_b, hb_in = f"hb{t}", f"hv{t}"
    # without LACP: active-backup at both ends preferring link 1, as two switches configured alike
    # would; balance-slb against two plain ports (what it is for: a switch that knows no bonds)
    ovs_bond = [f"bond_mode={mode}"] + (["lacp=active", "other_config:lacp-time=fast"] if lacp != "off"
                                        else ["other_config:bond-primary=o1"])
    if mode == "balance-slb" and lacp == "off":
        ovs_bond = None
    bond_yaml = (f"        bond_mode: {mode}\n        lacp: '{lacp}'\n        lacp_time: fast\n"
                 + ("        bond_primary: m1\n" if lacp == "off" else "")
                 + ("        bond_rebalance_interval: 1000\n" if mode != "active-backup" else ""))
    with rig(tmp_path, t, ovs_bond, bond_yaml) as (sw, ovs, nsenter, links):
        ours = lambda: sw.ctl("bond/show", "bond0")
        extra = lambda: "\n" + ours() + "\n" + ovs.appctl("bond/show", check=False) + (
            "\n" + sw.ctl("lacp/show", "bond0") if lacp != "off" else "")
        wait(lambda: member_enabled(ours(), "m1") and member_enabled(ours(), "m2"), 20, "both members enabled",
             extra)
        if lacp != "off":
            wait(lambda: "lacp_status: negotiated" in ours()
                 and "lacp_status: negotiated" in ovs.appctl("bond/show", "bondP"), 10, "LACP negotiated", extra)
            our_lacp, their_lacp = lambda: sw.ctl("lacp/show", "bond0"), lambda: ovs.appctl("lacp/show", "bondP")
            wait(lambda: lacp_full(our_lacp(), ("m1", "m2")) and lacp_full(their_lacp(), ("o1", "o2")), 10,
                 "every member current attached, collecting and distributing, both ends",
                 lambda: "\n" + our_lacp() + "\n" + their_lacp())
            o, th = our_lacp(), their_lacp()
            assert "status: active negotiated" in o and "status: active negotiated" in th
            our_id = re.search(r"^\s*sys_id: (\S+)", o, re.M).group(1)
            their_id = re.search(r"^\s*sys_id: (\S+)", th, re.M).group(1)
            assert our_id != their_id
            for m in ("m1", "m2"):
                assert f"partner sys_id: {their_id}" in lacp_member(o, m), o
            for m in ("o1", "o2"):
                assert f"partner sys_id: {our_id}" in lacp_member(th, m), th
        wait(lambda: ping(f"ha{t}", "10.77.0.2", count=1, wait=1), 20, "ping across the bond", extra)
        assert "echoed 65536 ok True" in tcp_exchange(f"ha{t}", host_b, "10.77.0.2", 5001)
        # many flows: UDP to many ports; with balance-tcp both members carry some
        def sent():                            # frames out of each member, LACPDUs not counted
            pdus = {}
            if lacp != "off":
                stats = sw.ctl("lacp/show-stats", "bond0")
                pdus = {m: int(re.search(rf"member: {m}:\n  TX PDUs: (\d+)", stats).group(1)) for m in ("m1", "m2")}
            return {m: sw.tx_packets(m) - pdus.get(m, 0) for m in ("m1", "m2")}
        hb_mac = re.search(r"link/ether (\S+)", ns_sh(host_b, "ip", "link", "show", hb_in).stdout).group(1)

        def many_flows(frames=1, size=0) -> dict:
            """40 flows from host a to host b, each its own source MAC and UDP ports (balance-slb
            hashes the MAC, balance-tcp the ports), FRAMES each of SIZE payload bytes: the
            frames each member sent."""
            tx0 = sent()
            ns_sh(f"ha{t}", sys.executable, "-c", "from scapy.all import Ether, IP, UDP, sendp; "
                  f"sendp([Ether(src='02:5a:00:00:00:%02x' % i, dst='{hb_mac}') / IP(src='10.77.0.1', "
                  f"dst='10.77.0.2') / UDP(sport=20000 + i, dport=30000 + i) / (b'x' * {size}) "
                  f"for _ in range({frames}) for i in range(40)], iface='ht{t}', verbose=False)")
            time.sleep(0.5)
            after = sent()
            return {m: after[m] - tx0[m] for m in ("m1", "m2")}
        tx = many_flows()
        print(mode, "frames by member:", tx)
        assert sum(tx.values()) >= 40, tx
        if mode == "active-backup":
            assert tx["m2"] == 0, tx
        else:
            assert tx["m1"] > 0 and tx["m2"] > 0, tx
        # one broadcast from the far host arrives once
        ns_sh(f"ha{t}", "ip", "neigh", "flush", "all")
        cap = subprocess.Popen(["ip", "netns", "exec", f"ha{t}", "tcpdump", "-c", "5", "-i", f"ht{t}", "-n",
                                "-l", "arp and src host 10.77.0.2"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
        time.sleep(1)
        ns_sh(host_b, sys.executable, "-c", "from scapy.all import ARP, Ether, sendp; "
              "sendp(Ether(dst='ff:ff:ff:ff:ff:ff') / ARP(psrc='10.77.0.2', pdst='10.77.0.9'), "
              f"iface='{hb_in}', verbose=False)")
        time.sleep(1)
        cap.terminate()
        got = cap.communicate(timeout=5)[0]
        assert got.count("Request who-has 10.77.0.9") == 1, got
        # cut link 1 under a ping every 0.1 s: both ends lose the carrier (Open vSwitch's DPDK
        # af_packet port sees its own only through set-admin-state); the longest run of lost
        # replies is the outage
        pinger = subprocess.Popen(["ip", "netns", "exec", f"ha{t}", "ping", "-i", "0.1", "-c", "80", "-W", "1",
                                   "10.77.0.2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1)
        ovs.appctl("netdev-dpdk/set-admin-state", "o1", "down")
        nsenter("ip", "link", "set", links[0][1], "down")
        wait(lambda: not member_enabled(ours(), "m1"), 5, "m1 disabled", extra)
        out = pinger.communicate(timeout=30)[0]
        seqs = sorted(int(x) for x in re.findall(r"icmp_seq=(\d+)", out))
        gap = max((b - a - 1 for a, b in zip(seqs, seqs[1:])), default=80) * 0.1
        print(mode, f"outage {gap:.1f} s, {len(seqs)} of 80 replies")
        assert seqs and seqs[-1] >= 70 and gap <= 3.0, out
        assert "DUP" not in out, out                  # no frame twice, nothing looped
        ovs.appctl("netdev-dpdk/set-admin-state", "o1", "up")
        nsenter("ip", "link", "set", links[0][1], "up")
        wait(lambda: member_enabled(ours(), "m1"), 40, "m1 rejoins", extra)
        if lacp != "off":
            wait(lambda: "may_enable: true" in sw.ctl("lacp/show", "bond0").split("member: m1:")[1].split("member:")[0],
                 10, "m1 back in the aggregation", extra)
        if mode == "active-backup":                   # both ends go back to their primary, each on its own clock
            wait(lambda: "active member: m1" in ours()
                 and re.search(r"active member mac: \S+\(o1\)", ovs.appctl("bond/show", "bondP")), 10,
                 "both ends back on their primary", extra)
        wait(lambda: ping(f"ha{t}", "10.77.0.2", count=1, wait=1), 10, "ping after m1 rejoins", extra)
        # m1 carries traffic again: at once in active-backup (the primary); in the balance modes
        # the buckets stay where the failure moved them until a rebalancing (every second here)
        # moves load back, as Open vSwitch's: once a member carries 100 kB more than the other
        deadline = time.monotonic() + 15
        while (tx := many_flows(8, 1000))["m1"] == 0 and mode != "active-backup" and time.monotonic() < deadline:
            pass
        print(mode, "after m1 rejoined, frames by member:", tx)
        assert tx["m1"] > 0 and (mode != "active-backup" or tx["m2"] == 0), tx


def test_a_partner_without_lacp_leaves_the_bond_down_unless_it_falls_back_to_active_backup(tmp_path):
    t = f"{TAG}x"
    ovs_bond = ["bond_mode=active-backup", "other_config:bond-primary=o1"]         # no LACP there
    for fallback in (False, True):
        bond_yaml = ("        bond_mode: balance-tcp\n        lacp: active\n        lacp_time: fast\n"
                     f"        lacp_fallback_ab: {'true' if fallback else 'false'}\n")
        with rig(tmp_path / str(fallback), f"{t}{int(fallback)}", ovs_bond, bond_yaml) as (sw, ovs, nsenter, links):
            lacp = lambda: sw.ctl("lacp/show", "bond0")
            wait(lambda: lacp().count(": defaulted detached") == 2 if not fallback
                 else lacp().count(": defaulted attached") == 2, 15, "both members defaulted",
                 lambda: "\n" + lacp())
            show = sw.ctl("bond/show", "bond0")
            assert "lacp_status: configured" in show and "status: active\n" in lacp()
            if not fallback:
                assert "no partner: no LACPDU received (defaulted)" in lacp()
                assert "may_enable: true" not in show
                assert not ping(f"ha{t}{int(fallback)}", "10.77.0.2", count=2, wait=1)
            else:
                wait(lambda: ping(f"ha{t}{int(fallback)}", "10.77.0.2", count=1, wait=1), 15,
                     "ping by the fallback active-backup", lambda: "\n" + sw.ctl("bond/show", "bond0"))
                assert "active member: m1" in sw.ctl("bond/show", "bond0")


def test_a_partner_member_with_another_aggregation_key_is_left_unattached_and_lacp_show_says_why(tmp_path):
    # Open vSwitch's o1 and o2 as two ports with LACP each, not one bond: one system, two
    # aggregation keys (a port's key is its first member's port id).  Our member on the link
    # that is not the lead's is current (its partner answers) but detached, lacp/show naming the
    # keys; the bond carries traffic by the other member alone
    t = f"{TAG}k"
    bond_yaml = "        bond_mode: balance-tcp\n        lacp: active\n        lacp_time: fast\n"
    with rig(tmp_path, t, None, bond_yaml) as (sw, ovs, nsenter, links):
        for o in ("o1", "o2"):
            ovs.vsctl("set", "Port", o, "lacp=active", "other_config:lacp-time=fast")
        lacp = lambda: sw.ctl("lacp/show", "bond0")
        extra = lambda: "\n" + lacp() + "\n" + ovs.appctl("lacp/show", check=False)
        wait(lambda: lacp_member(lacp(), "m2").startswith("member: m2: current detached")
             and lacp_member(lacp(), "m1").startswith("member: m1: current attached"), 20,
             "m1 current attached, m2 current detached", extra)
        shown = lacp()
        assert "status: active negotiated" in shown
        assert re.search(r"detached: partner system \S+ key 2 differs from the lead m1's: \S+ key 1",
                         lacp_member(shown, "m2")), shown
        assert "may_enable: false" in lacp_member(shown, "m2")
        # the bond enables a member on the control thread's next pass after LACP attaches it
        show = lambda: sw.ctl("bond/show", "bond0")
        wait(lambda: member_enabled(show(), "m1"), 10, "m1 enabled in bond/show", lambda: "\n" + show())
        assert not member_enabled(show(), "m2"), show()
        wait(lambda: ping(f"ha{t}", "10.77.0.2", count=1, wait=1), 15, "ping by m1", extra)
