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
