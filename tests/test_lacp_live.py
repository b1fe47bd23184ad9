"""LACP live: `dpdkswitch run` and Open vSwitch 3.1 (DPDK, net_af_packet) linked by two veth
pairs, a bond on each side with lacp: active and fast timers.  Both negotiate: our lacp/show
names Open vSwitch's system id as partner and Open vSwitch's names ours, both members "current
attached", collecting and distributing.  A member whose partner goes silent is expired, then
defaulted 3 s later; one whose link is cut is expired at once; each rejoins when it returns.
"""
import os
import re
import time

import pytest

from switchproc import TAG, SwitchProc, sh

pytestmark = [pytest.mark.netns, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]
FULL = "activity timeout aggregation synchronized collecting distributing"


def wait(cond, seconds, what, extra=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s: {what}" + (extra() if extra else ""))


def member(text, name):
    """A member's block of a lacp/show."""
    m = re.search(rf"^member: {name}: (.*?)(?=^member: |\Z)", text, re.M | re.S)
    return m.group(0) if m else ""


def test_lacp_negotiates_with_open_vswitch_and_a_silent_member_expires_then_defaults(tmp_path):
    ovs_mod = pytest.importorskip("dpdkswitch.bench.ovs")
    if ovs_mod.missing():
        pytest.skip(ovs_mod.missing())
    links = [(f"lv{TAG}{i}", f"lo{TAG}{i}") for i in (1, 2)]
    for near, far in links:
        sh("ip", "link", "add", near, "type", "veth", "peer", "name", far)
        sh("ip", "link", "set", near, "up")
    ovs = ovs_mod.Ovs(tmp_path / "ovs")
    sw = None
    nsenter = lambda *a: sh("nsenter", "-t", str(ovs.vswitchd.pid), "-n", *a)
    try:
        ovs.start()
        for _, far in links:
            sh("ip", "link", "set", far, "netns", str(ovs.vswitchd.pid))
            nsenter("ip", "link", "set", far, "up")
        ovs.vsctl("set", "bridge", ovs.bridge, "other-config:hwaddr=aa:55:aa:55:00:0b")
        ovs.vsctl("add-bond", ovs.bridge, "bondP", "o1", "o2", "bond_mode=balance-tcp", "lacp=active",
                  "other_config:lacp-time=fast",
                  "--", "set", "Interface", "o1", "type=dpdk",
                  f"options:dpdk-devargs=net_af_packet_l{TAG}1,iface={links[0][1]}", "ofport_request=1",
                  "--", "set", "Interface", "o2", "type=dpdk",
                  f"options:dpdk-devargs=net_af_packet_l{TAG}2,iface={links[1][1]}", "ofport_request=2")
        ovs.add_flows(["actions=NORMAL"])
        ovs.start_pmd()
        sw = SwitchProc(tmp_path, (
            "dpdk: {cores: [0, 1]}\ncontrol: {socket: @SOCK@}\nbridges:\n  br0:\n    datapath: {pmd_cores: [1]}\n"
            "    ports:\n      bond0:\n        interfaces:\n"
            f"          m1: {{device: 'net_af_packet_lv{TAG}1,iface={links[0][0]}', ofport: 1}}\n"
            f"          m2: {{device: 'net_af_packet_lv{TAG}2,iface={links[1][0]}', ofport: 2}}\n"
            "        bond_mode: balance-tcp\n        lacp: active\n        lacp_time: fast\n"
            "        lacp_system_id: 'aa:55:aa:55:00:0a'\n"))
        ours = lambda: sw.ctl("lacp/show", "bond0")
        theirs = lambda: ovs.appctl("lacp/show", "bondP")

        def both_full():
            o, t = ours(), theirs()
            return all(member(x, m).startswith(f"member: {m}: current attached") and member(x, m).count(FULL) == 2
                       for x in (o, t) for m in ({"m1", "m2"} if x is o else {"o1", "o2"}))
        wait(both_full, 20, "both bonds negotiated, every member current attached, in sync both ways",
             lambda: "\n" + ours() + "\n" + theirs())
        o, t = ours(), theirs()
        assert "status: active negotiated" in o and "status: active negotiated" in t
        assert "partner sys_id: aa:55:aa:55:00:0b" in member(o, "m1")
        assert "partner sys_id: aa:55:aa:55:00:0a" in member(t, "o1")
        assert "may_enable: true" in member(o, "m2")
        assert "lacp_status: negotiated" in ovs.appctl("bond/show", "bondP")

        # link 2 goes silent, its carrier up: an MTU of 68 on our end of the veth drops every LACPDU
        # (124 bytes) both ways.  m2 expires, then defaults
        sh("ip", "link", "set", links[1][0], "mtu", "68")
        t0 = time.monotonic()
        wait(lambda: member(ours(), "m2").startswith("member: m2: expired"), 5, "m2 expired", lambda: "\n" + ours())
        t_exp = time.monotonic() - t0
        wait(lambda: member(ours(), "m2").startswith("member: m2: defaulted"), 5, "m2 defaulted",
             lambda: "\n" + ours())
        t_def = time.monotonic() - t0
        print(f"expired after {t_exp:.2f} s, defaulted after {t_def:.2f} s")
        assert t_exp <= 3.6 and 2.4 <= t_def - t_exp <= 3.8
        assert "may_enable: false" in member(ours(), "m2") and "detached" in member(ours(), "m2")
        assert member(ours(), "m1").startswith("member: m1: current attached")
        stats = sw.ctl("lacp/show-stats", "bond0")
        assert re.search(r"member: m2:\n(  .*\n){4}  Link Expired: 1\n  Link Defaulted: 1", stats), stats
        sh("ip", "link", "set", links[1][0], "mtu", "1500")
        wait(both_full, 40, "m2 rejoins (a defaulted partner is slow: within 30 s)", lambda: "\n" + ours())

        # cut link 1: m1's carrier goes, it is expired at once; back, it rejoins
        nsenter("ip", "link", "set", links[0][1], "down")
        wait(lambda: not member(ours(), "m1").startswith("member: m1: current"), 3, "m1 not current",
             lambda: "\n" + ours())
        assert "may_enable: false" in member(ours(), "m1")
        nsenter("ip", "link", "set", links[0][1], "up")
        wait(both_full, 15, "m1 rejoins", lambda: "\n" + ours() + "\n" + theirs())
        assert "Carrier Status Changed: 2" in sw.ctl("lacp/show-stats", "bond0")
    finally:
        if sw is not None:
            sw.stop()
        ovs.stop()
        for near, _ in links:
            sh("ip", "link", "del", near, check=False)
