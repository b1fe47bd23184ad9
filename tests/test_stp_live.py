"""STP live: `dpdkswitch run` against the Linux bridge's kernel STP (802.1D), two links between
them (a loop), with short timers.  The links are veth pairs (the switch's end through
net_af_packet, the other end enslaved to the Linux bridge in a namespace); a host hangs off a
third port, a tap.
"""
import os
import time

import pytest

from switchproc import TAG, SwitchProc, ns_sh, ping, sh

pytestmark = [pytest.mark.netns, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

HELLO, MAX_AGE, FWD = 1, 6, 4


def config(ns_host, priority):
    """s1 and s2: veths (links()), s3: the host's tap."""
    veth = lambda i: f"      s{i}: {{device: 'net_af_packet_st{TAG}{i},iface=sv{TAG}{i}', ofport: {i}}}\n"
    tap = lambda i, ns, extra: (f"      s{i}: {{device: 'net_tap_st{TAG}{i},iface=st{TAG}{i}', ofport: {i}, "
                                f"netns: {{name: {ns}{extra}}}}}\n")
    return ("dpdk: {cores: [0, 1]}\ncontrol: {socket: @SOCK@}\nbridges:\n  br0:\n    datapath: {pmd_cores: [1]}\n"
            f"    stp_enable: true\n    stp_priority: {priority}\n    stp_hello_time: {HELLO}\n"
            f"    stp_max_age: {MAX_AGE}\n    stp_forward_delay: {FWD}\n"
            "    ports:\n" + veth(1) + veth(2) + tap(3, ns_host, ", address: 10.13.0.1/24"))


def links(ns):
    """Namespace NS with the far ends (st…1, st…2) of two veth pairs; the near ends (sv…) here."""
    sh("ip", "netns", "add", ns)
    for i in (1, 2):
        sh("ip", "link", "add", f"sv{TAG}{i}", "type", "veth", "peer", "name", f"st{TAG}{i}")
        sh("ip", "link", "set", f"st{TAG}{i}", "netns", ns)
        sh("ip", "link", "set", f"sv{TAG}{i}", "up")


def unlink(ns):
    for i in (1, 2):
        sh("ip", "link", "del", f"sv{TAG}{i}", check=False)
    sh("ip", "netns", "del", ns, check=False)


def linux_bridge(ns, priority):
    ns_sh(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", check=False)
    ns_sh(ns, "ip", "link", "add", "b0", "type", "bridge", "stp_state", "1", "priority", str(priority),
          "hello_time", str(HELLO * 100), "max_age", str(MAX_AGE * 100), "forward_delay", str(FWD * 100))
    # its own MAC (and bridge id), not its lowest port's, which changes when a port leaves
    ns_sh(ns, "ip", "link", "set", "b0", "address", "02:13:00:00:00:02")
    for i in (1, 2):
        ns_sh(ns, "ip", "link", "set", f"st{TAG}{i}", "master", "b0")
        ns_sh(ns, "ip", "link", "set", f"st{TAG}{i}", "up")
    ns_sh(ns, "ip", "addr", "add", "10.13.0.2/24", "dev", "b0")
    ns_sh(ns, "ip", "link", "set", "b0", "up")


def linux_state(ns, i):
    """The kernel's port state: 0 disabled, 1 listening, 2 learning, 3 forwarding, 4 blocking."""
    return int(ns_sh(ns, "cat", f"/sys/class/net/b0/brif/st{TAG}{i}/state").stdout)


def ours(sw):
    """{port: (role, state)} from our stp/show, and the root's system id."""
    text = sw.ctl("stp/show", "br0")
    rows = {ln.split()[0]: tuple(ln.split()[1:3]) for ln in text.splitlines() if ln.strip().startswith("s")
            and not ln.strip().startswith("stp-")}
    root = next(ln.split()[-1] for ln in text.splitlines() if "stp-system-id" in ln)
    return rows, root, text


def wait_for(cond, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.3)
    raise AssertionError(f"not within {seconds} s: {what}")


def rx(ns, dev):
    return int(ns_sh(ns, "cat", f"/sys/class/net/{dev}/statistics/rx_packets").stdout)


def test_loop_with_the_linux_bridge_blocks_one_of_our_ports_and_fails_over(tmp_path):
    peer, host = f"stpp{TAG}", f"stph{TAG}"
    links(peer)
    sw = SwitchProc(tmp_path, config(host, 32768))
    try:
        ns_sh(host, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", check=False)
        linux_bridge(peer, 4096)                     # the kernel bridge is the root
        lmac = ns_sh(peer, "cat", "/sys/class/net/b0/address").stdout.strip()

        def converged():
            rows, root, _ = ours(sw)
            return (root == lmac and sorted(rows.get(f"s{i}", ("", ""))[0] for i in (1, 2)) == ["alternate", "root"]
                    and all(rows.get(f"s{i}", ("", ""))[1] in ("forwarding", "blocking") for i in (1, 2))
                    and linux_state(peer, 1) == 3 and linux_state(peer, 2) == 3)
        wait_for(converged, 2 * MAX_AGE + 4 * FWD + 10, "one root (the kernel bridge), one of our ports blocked")
        rows, root, text = ours(sw)
        assert ns_sh(peer, "cat", "/sys/class/net/b0/bridge/root_id").stdout.strip().endswith(lmac.replace(":", ""))
        blocked = [p for p, (role, state) in rows.items() if state == "blocking"]
        assert len(blocked) == 1 and rows[blocked[0]][0] == "alternate", text
        root_port = next(p for p, (role, _) in rows.items() if role == "root")

        assert ping(host, "10.13.0.2", count=3)
        # no storm: broadcasts (three ARP requests for nobody) arrive once, and the links go quiet
        ns_sh(host, "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.13.0.99", check=False)
        before = rx(peer, "b0")
        time.sleep(3)
        assert rx(peer, "b0") - before < 10

        # cut the root port's link at the kernel's end: our blocked port takes over
        t0 = time.monotonic()
        ns_sh(peer, "ip", "link", "set", f"st{TAG}{root_port[1:]}", "nomaster")
        ns_sh(peer, "ip", "link", "set", f"st{TAG}{root_port[1:]}", "down")
        wait_for(lambda: ours(sw)[0][blocked[0]] == ("root", "forwarding"), MAX_AGE + 2 * FWD + 3,
                 f"{blocked[0]} forwarding")
        took = time.monotonic() - t0
        assert 2 * FWD - 1 <= took <= MAX_AGE + 2 * FWD + 3
        ok = ping(host, "10.13.0.2", count=3)
        assert ok, "\n".join([ours(sw)[2], sw.ctl("fdb/show", "br0"), sw.ctl("dpif/dump-flows"),
                              ns_sh(peer, "bridge", "link").stdout, ns_sh(peer, "bridge", "fdb").stdout,
                              ns_sh(host, "ip", "neigh").stdout])
    finally:
        assert sw.stop() == 0
        unlink(peer)


def test_loop_with_the_linux_bridge_as_non_root_blocks_its_port(tmp_path):
    peer, host = f"stpq{TAG}", f"stpi{TAG}"
    links(peer)
    sw = SwitchProc(tmp_path, config(host, 4096))
    try:
        linux_bridge(peer, 32768)
        wait_for(lambda: sorted((linux_state(peer, 1), linux_state(peer, 2))) == [3, 4],
                 2 * MAX_AGE + 4 * FWD + 10, "the kernel bridge blocks one port")
        rows, root, text = ours(sw)
        assert "This bridge is the root" in text
        assert rows["s1"] == ("designated", "forwarding") and rows["s2"] == ("designated", "forwarding")
        rid = ns_sh(peer, "cat", "/sys/class/net/b0/bridge/root_id").stdout.strip()
        assert rid.replace(".", "").startswith("1000") and rid.endswith(root.replace(":", ""))
        assert ping(host, "10.13.0.2", count=3)
    finally:
        assert sw.stop() == 0
        unlink(peer)


def ovs_rows(ovs):
    """{port: (role, state)} from Open vSwitch's stp/show, and its root's system id."""
    text = ovs.appctl("stp/show", ovs.bridge)
    rows = {}
    for ln in text.splitlines():
        f = ln.split()
        if len(f) == 5 and f[1] in ("root", "designated", "alternate", "disabled") and "." in f[4]:
            rows[f[0]] = (f[1], f[2])
    root = next(ln.split()[-1] for ln in text.splitlines() if "stp-system-id" in ln)
    return rows, root, text


def test_a_loop_of_three_with_open_vswitch_and_the_linux_bridge(tmp_path):
    """Our switch, Open vSwitch 3.1 (DPDK, net_af_packet) and a Linux bridge (kernel STP), each
    linked to both others by a veth pair: one root agreed by all three, exactly one port blocked,
    no storm; cut a forwarding link and the blocked port forwards within max age + 2 x forward
    delay, and the host behind our switch reaches the Linux bridge again."""
    ovs_mod = pytest.importorskip("dpdkswitch.bench.ovs")
    if ovs_mod.missing():
        pytest.skip(ovs_mod.missing())
    peer, host = f"stpr{TAG}", f"stpj{TAG}"
    pairs = {"L1": (f"sv{TAG}1", f"so{TAG}1"), "L2": (f"sv{TAG}2", f"st{TAG}2"), "L3": (f"so{TAG}3", f"st{TAG}3")}
    sh("ip", "netns", "add", peer)
    for near, far in pairs.values():
        sh("ip", "link", "add", near, "type", "veth", "peer", "name", far)
    for dev in (pairs["L2"][1], pairs["L3"][1]):
        sh("ip", "link", "set", dev, "netns", peer)
    sh("ip", "link", "set", pairs["L1"][0], "up")
    sh("ip", "link", "set", pairs["L2"][0], "up")
    ovs = ovs_mod.Ovs(tmp_path / "ovs")
    sw = None
    try:
        ovs.start()
        for dev in (pairs["L1"][1], pairs["L3"][0]):           # into Open vSwitch's own namespace
            sh("ip", "link", "set", dev, "netns", str(ovs.vswitchd.pid))
            sh("nsenter", "-t", str(ovs.vswitchd.pid), "-n", "ip", "link", "set", dev, "up")
        ovs.vsctl("set", "Bridge", ovs.bridge, "stp_enable=true", "other_config:stp-priority=40000",
                  f"other_config:stp-hello-time={HELLO}", f"other_config:stp-max-age={MAX_AGE}",
                  f"other_config:stp-forward-delay={FWD}", "other_config:hwaddr=02:13:00:00:00:0f")
        ovs.add_port("o1", 1, f"net_af_packet_o{TAG}1,iface={pairs['L1'][1]}")
        ovs.add_port("o3", 3, f"net_af_packet_o{TAG}3,iface={pairs['L3'][0]}")
        ovs.add_flows(["actions=NORMAL"])
        ovs.start_pmd()
        cfg = ("dpdk: {cores: [0, 1]}\ncontrol: {socket: @SOCK@}\nbridges:\n  br0:\n    datapath: {pmd_cores: [1]}\n"
               f"    stp_enable: true\n    stp_priority: 32768\n    stp_hello_time: {HELLO}\n"
               f"    stp_max_age: {MAX_AGE}\n    stp_forward_delay: {FWD}\n    ports:\n"
               f"      s1: {{device: 'net_af_packet_st{TAG}1,iface={pairs['L1'][0]}', ofport: 1}}\n"
               f"      s2: {{device: 'net_af_packet_st{TAG}2,iface={pairs['L2'][0]}', ofport: 2}}\n"
               f"      s3: {{device: 'net_tap_st{TAG}3,iface=sh{TAG}3', ofport: 3, "
               f"netns: {{name: {host}, address: 10.13.0.1/24}}}}\n")
        sw = SwitchProc(tmp_path, cfg)
        ns_sh(host, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", check=False)
        ns_sh(peer, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", check=False)
        ns_sh(peer, "ip", "link", "add", "b0", "type", "bridge", "stp_state", "1", "priority", "4096",
              "hello_time", str(HELLO * 100), "max_age", str(MAX_AGE * 100), "forward_delay", str(FWD * 100))
        ns_sh(peer, "ip", "link", "set", "b0", "address", "02:13:00:00:00:02")
        lports = {"L2": pairs["L2"][1], "L3": pairs["L3"][1]}
        for dev in lports.values():
            ns_sh(peer, "ip", "link", "set", dev, "master", "b0")
            ns_sh(peer, "ip", "link", "set", dev, "up")
        ns_sh(peer, "ip", "addr", "add", "10.13.0.2/24", "dev", "b0")
        ns_sh(peer, "ip", "link", "set", "b0", "up")
        kstate = lambda dev: int(ns_sh(peer, "cat", f"/sys/class/net/b0/brif/{dev}/state").stdout)

        def blocked_ports():
            o, _, _ = ours(sw)
            v, _, _ = ovs_rows(ovs)
            states = {f"ours:{p}": s for p, (_, s) in o.items() if p in ("s1", "s2")}
            states.update({f"ovs:{p}": s for p, (_, s) in v.items()})
            states.update({f"linux:{k}": {3: "forwarding", 4: "blocking"}.get(kstate(d), "other")
                           for k, d in lports.items()})
            return states

        def settled():
            st = blocked_ports()
            return (len(st) == 6 and sorted(st.values()).count("blocking") == 1
                    and sorted(st.values()).count("forwarding") == 5)
        wait_for(settled, 2 * MAX_AGE + 4 * FWD + 20, "one blocked port among six")
        st = blocked_ports()
        _, our_root, our_text = ours(sw)
        _, ovs_root, ovs_text = ovs_rows(ovs)
        linux_root = ns_sh(peer, "cat", "/sys/class/net/b0/bridge/root_id").stdout.strip()
        assert our_root == ovs_root == "02:13:00:00:00:02", our_text + ovs_text
        assert linux_root.endswith("021300000002")
        assert ping(host, "10.13.0.2", count=3)
        ns_sh(host, "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.13.0.99", check=False)
        before = rx(peer, "b0")
        time.sleep(3)
        assert rx(peer, "b0") - before < 10              # no storm
        # cut the forwarding link between the Linux bridge and the side that is not blocked
        blocked = next(k for k, s in st.items() if s == "blocking")
        cut = "L3" if blocked.startswith("ours") else "L2"
        t0 = time.monotonic()
        ns_sh(peer, "ip", "link", "set", lports[cut], "down")
        wait_for(lambda: blocked_ports()[blocked] == "forwarding", MAX_AGE + 2 * FWD + 3, f"{blocked} forwarding")
        took = time.monotonic() - t0
        print(f"blocked: {blocked}; cut {cut}; forwarding after {took:.1f} s")
        assert took <= MAX_AGE + 2 * FWD + 3
        assert ping(host, "10.13.0.2", count=5)
    finally:
        if sw is not None:
            sw.stop()
        ovs.stop()
        for near, _ in pairs.values():
            sh("ip", "link", "del", near, check=False)
        sh("ip", "netns", "del", peer, check=False)
