"""CFM live: `dpdkswitch run` and Open vSwitch 3.1 (DPDK, net_af_packet) on the two ends of a
veth pair, CCMs every 100 ms: each side sees the other's MPID and no fault; when the peer goes
silent a fault (recv) is raised, and it clears when the peer returns.
"""
import os
import re
import time

import pytest

from switchproc import TAG, SwitchProc, sh

pytestmark = [pytest.mark.netns, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def faulted(text):
    return re.search(r"^\s*fault: (.*)$", text, re.M)


def wait(cond, seconds, what, extra=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s: {what}" + (extra() if extra else ""))


def test_cfm_with_open_vswitch_sees_the_remote_mpid_and_faults_when_it_stops(tmp_path):
    ovs_mod = pytest.importorskip("dpdkswitch.bench.ovs")
    if ovs_mod.missing():
        pytest.skip(ovs_mod.missing())
    near, far = f"cv{TAG}1", f"co{TAG}1"
    sh("ip", "link", "add", near, "type", "veth", "peer", "name", far)
    sh("ip", "link", "set", near, "up")
    ovs = ovs_mod.Ovs(tmp_path / "ovs")
    sw = None
    nsenter = lambda *a: sh("nsenter", "-t", str(ovs.vswitchd.pid), "-n", *a)
    try:
        ovs.start()
        sh("ip", "link", "set", far, "netns", str(ovs.vswitchd.pid))
        nsenter("ip", "link", "set", far, "up")
        ovs.add_port("o1", 1, f"net_af_packet_c{TAG}1,iface={far}")
        ovs.vsctl("set", "Interface", "o1", "cfm_mpid=2", "other_config:cfm_interval=100")
        ovs.add_flows(["actions=NORMAL"])
        ovs.start_pmd()
        sw = SwitchProc(tmp_path, (
            "dpdk: {cores: [0, 1]}\ncontrol: {socket: @SOCK@}\nbridges:\n  br0:\n    datapath: {pmd_cores: [1]}\n"
            f"    ports:\n      c1: {{device: 'net_af_packet_cv{TAG}1,iface={near}', ofport: 1, "
            "cfm: {mpid: 1, interval: 100}}\n"))
        ours = lambda: sw.ctl("cfm/show", "c1")
        theirs = lambda: ovs.appctl("cfm/show", "o1")
        wait(lambda: "Remote MPID 2" in ours() and not faulted(ours())
             and "Remote MPID 1" in theirs() and not faulted(theirs()), 15, "both see each other, no fault",
             lambda: "\n" + ours() + "\n" + theirs())
        assert "interval: 100ms" in ours()
        nsenter("ip", "link", "set", far, "down")                  # the peer goes silent
        t0 = time.monotonic()
        wait(lambda: faulted(ours()) and "recv" in faulted(ours()).group(1), 3, "a recv fault")
        print(f"fault after {time.monotonic() - t0:.2f} s (fault interval 0.35 s)")
        assert "Remote MPID 2" not in ours()
        nsenter("ip", "link", "set", far, "up")                    # and returns
        wait(lambda: "Remote MPID 2" in ours() and not faulted(ours()), 5, "the fault clears")
        assert "OK" in sw.ctl("cfm/set-fault", "c1", "true")
        assert "fault: override" in ours()
    finally:
        if sw is not None:
            sw.stop()
        ovs.stop()
        sh("ip", "link", "del", near, check=False)
