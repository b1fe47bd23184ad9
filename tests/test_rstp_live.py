"""RSTP live: `dpdkswitch run` with rstp_enable against Open vSwitch 3.1's RSTP (DPDK,
net_af_packet) over two veth links (a loop), and against the Linux bridge's kernel STP, which
speaks 802.1D only (it drops BPDUs of version 2: only our fallback to STP BPDUs lets it hear
us).  The switch's ends of the veths are net_af_packet ports; a host hangs off a tap that is an
admin edge port.
"""
import os
import time

import pytest

from switchproc import TAG, SwitchProc, ns_sh, ping, sh
from test_stp_live import linux_bridge, linux_state, links, unlink, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def config(priority, near, host, address="10.13.0.1/24", times=""):
    """s1 and s2 on the veths NEAR (names), s3 the host's tap (an admin edge port)."""
    return ("dpdk: {cores: [0, 1]}\ncontrol: {socket: @SOCK@}\nbridges:\n  br0:\n    datapath: {pmd_cores: [1]}\n"
            f"    rstp_enable: true\n    rstp_priority: {priority}\n    rstp_address: '02:13:00:00:00:01'\n{times}"
            "    ports:\n"
            + "".join(f"      s{i}: {{device: 'net_af_packet_rs{TAG}{i},iface={dev}', ofport: {i}}}\n"
                      for i, dev in enumerate(near, 1))
            + f"      s3: {{device: 'net_tap_rs{TAG}3,iface=rh{TAG}3', ofport: 3, rstp_port_admin_edge: true, "
              f"netns: {{name: {host}, address: {address}}}}}\n")


def rows(text):
    """{port: (role, state)} from an rstp/show (ours or Open vSwitch's), and the root's system id."""
    out = {}
    for ln in text.splitlines():
        f = ln.lower().split()
        if len(f) == 5 and f[1] in ("root", "designated", "alternate", "backup", "disabled") and "." in f[4]:
            out[f[0]] = (f[1], f[2])
    root = next((ln.split()[-1] for ln in text.splitlines() if "stp-system-id" in ln), "")
    # (rows' keys are lowercased port names: s1, o1)
    return out, root


def test_a_loop_with_open_vswitch_rstp_converges_and_fails_over_in_under_3_s(tmp_path):
    ovs_mod = pytest.importorskip("dpdkswitch.bench.ovs")
    if ovs_mod.missing():
        pytest.skip(ovs_mod.missing())
    host = f"rsth{TAG}"
    pairs = [(f"rv{TAG}1", f"ro{TAG}1"), (f"rv{TAG}2", f"ro{TAG}2")]
    for near, far in pairs:
        sh("ip", "link", "add", near, "type", "veth", "peer", "name", far)
        sh("ip", "link", "set", near, "up")
    ovs = ovs_mod.Ovs(tmp_path / "ovs")
    sw = None
    try:
        ovs.start()
        ovsns = ["nsenter", "-t", str(ovs.vswitchd.pid), "-n"]
        for _, far in pairs:
            sh("ip", "link", "set", far, "netns", str(ovs.vswitchd.pid))
            sh(*ovsns, "ip", "link", "set", far, "up")
        ovs.vsctl("set", "Bridge", ovs.bridge, "rstp_enable=true", "other_config:rstp-priority=4096",
                  "other_config:rstp-address=02:13:00:00:00:0f")
        for i, (_, far) in enumerate(pairs, 1):
            ovs.add_port(f"o{i}", i, f"net_af_packet_ro{TAG}{i},iface={far}")
            ovs.vsctl("set", "Port", f"o{i}", "other_config:rstp-enable=true")
        ovs.add_flows(["actions=NORMAL"])
        ovs.start_pmd()
        t0 = time.monotonic()
        sw = SwitchProc(tmp_path, config(32768, [near for near, _ in pairs], host))
        started = time.monotonic()

        def ours():
            return rows(sw.ctl("rstp/show", "br0"))

        def converged():
            o, root = ours()
            v, vroot = rows(ovs.appctl("rstp/show", ovs.bridge))
            return (root == vroot == "02:13:00:00:00:0f"
                    and sorted(o.get(p, ("", ""))[0] for p in ("s1", "s2")) == ["alternate", "root"]
                    and sorted(o.get(p, ("", ""))[1] for p in ("s1", "s2")) == ["discarding", "forwarding"]
                    and v.get("o1") == v.get("o2") == ("designated", "forwarding"))
        try:
            wait_for(converged, 10, "one of our ports alternate/discarding, Open vSwitch the root")
        except AssertionError as e:
            raise AssertionError("\n".join([str(e), sw.ctl("rstp/show", "br0"),
                                             ovs.appctl("rstp/show", ovs.bridge)])) from None
        took = time.monotonic() - started
        o, _ = ours()
        text = sw.ctl("rstp/show", "br0")
        assert o["s3"] == ("designated", "forwarding"), text                 # the edge port
        alt = next(p for p, (role, _) in o.items() if role == "alternate")
        root_port = next(p for p, (role, _) in o.items() if role == "root")
        print(f"converged {took:.1f} s after the switch answered (started {started - t0:.1f} s)")
        assert took < 3, text                       # proposal/agreement, not 2 x forward delay (30 s)
        # no storm: broadcasts from the host (ARP for nobody) cross to Open vSwitch once
        ns_sh(host, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", check=False)
        ns_sh(host, "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.13.0.99", check=False)
        time.sleep(1)
        rx = lambda: sum(st.get(f"o{i}", st.get(str(i), {})).get("rx_packets", 0)
                         for st in [ovs.port_stats()] for i in (1, 2))
        assert rx() > 0
        before = rx()
        time.sleep(3)
        assert rx() - before < 10, "a storm between the two links"
        # cut the root port's link at Open vSwitch's end: our alternate takes over
        t1 = time.monotonic()
        sh(*ovsns, "ip", "link", "set", pairs[int(root_port[1:]) - 1][1], "down")
        wait_for(lambda: ours()[0][alt] == ("root", "forwarding"), 10, f"{alt} root and forwarding")
        failover = time.monotonic() - t1
        print(f"failover to {alt} in {failover:.2f} s")
        assert failover < 3, sw.ctl("rstp/show", "br0")
        v, _ = rows(ovs.appctl("rstp/show", ovs.bridge))
        assert v[f"o{alt[1:]}"] == ("designated", "forwarding")
    finally:
        if sw is not None:
            assert sw.stop() == 0
        ovs.stop()
        for near, _ in pairs:
            sh("ip", "link", "del", near, check=False)
        sh("ip", "netns", "del", host, check=False)


@pytest.mark.parametrize("ours_root", [True, False])
def test_the_linux_bridge_gets_stp_bpdus_from_us(tmp_path, ours_root):
    """The kernel bridge reads only 802.1D BPDUs: it agrees on the root and blocks or lets us
    block exactly one port only because our ports fell back to STP BPDUs."""
    peer, host = f"rstp{TAG}", f"rsti{TAG}"
    links(peer)
    # the kernel bridge's short timers (test_stp_live's): towards an 802.1D bridge RSTP has no
    # agreement to wait for, only its timers
    times = "    rstp_hello_time: 1\n    rstp_max_age: 6\n    rstp_forward_delay: 4\n"
    sw = SwitchProc(tmp_path, config(4096 if ours_root else 32768, [f"sv{TAG}1", f"sv{TAG}2"], host, times=times))
    try:
        linux_bridge(peer, 32768 if ours_root else 4096)
        lmac = ns_sh(peer, "cat", "/sys/class/net/b0/address").stdout.strip()
        if ours_root:
            wait_for(lambda: sorted((linux_state(peer, 1), linux_state(peer, 2))) == [3, 4]
                     and [r[1] for p, r in sorted(rows(sw.ctl("rstp/show", "br0"))[0].items())]
                     == ["forwarding"] * 3, 40,
                     "the kernel bridge blocks one port, ours forward")
            text = sw.ctl("rstp/show", "br0")
            o, root = rows(text)
            assert "This bridge is the root" in text and root == "02:13:00:00:00:01"
            assert o["s1"] == o["s2"] == ("designated", "forwarding"), text
            rid = ns_sh(peer, "cat", "/sys/class/net/b0/bridge/root_id").stdout.strip()
            assert rid.replace(".", "").startswith("1000") and rid.endswith("021300000001")
        else:
            def settled():
                o, root = rows(sw.ctl("rstp/show", "br0"))
                return (root == lmac and sorted(o.get(p, ("", "")) for p in ("s1", "s2"))
                        == [("alternate", "discarding"), ("root", "forwarding")]
                        and linux_state(peer, 1) == linux_state(peer, 2) == 3)
            wait_for(settled, 40, "the kernel bridge the root, one of our ports alternate")
        assert ping(host, "10.13.0.2", count=3)
    finally:
        assert sw.stop() == 0
        unlink(peer)
