"""BFD live: `dpdkswitch run` and Open vSwitch 3.1 (DPDK, net_af_packet) on the two ends of a
veth pair, both with BFD at 300 ms: the sessions come up on both sides; when the peer goes
silent (its end of the link down), ours goes down within the detection time and stops
forwarding; bfd/set-forwarding overrides it.
"""
import os
import re
import time

import pytest

from switchproc import TAG, SwitchProc, sh

pytestmark = [pytest.mark.netns, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def field(text, name):
    m = re.search(rf"{name}: (.*)", text)
    return m.group(1).strip() if m else None


def test_bfd_session_with_open_vswitch_comes_up_and_detects_the_peer_stopping(tmp_path):
    ovs_mod = pytest.importorskip("dpdkswitch.bench.ovs")
    if ovs_mod.missing():
        pytest.skip(ovs_mod.missing())
    near, far = f"bv{TAG}1", f"bo{TAG}1"
    sh("ip", "link", "add", near, "type", "veth", "peer", "name", far)
    sh("ip", "link", "set", near, "up")
    ovs = ovs_mod.Ovs(tmp_path / "ovs")
    sw = None
    try:
        ovs.start()
        sh("ip", "link", "set", far, "netns", str(ovs.vswitchd.pid))
        sh("nsenter", "-t", str(ovs.vswitchd.pid), "-n", "ip", "link", "set", far, "up")
        ovs.add_port("o1", 1, f"net_af_packet_b{TAG}1,iface={far}")
        ovs.vsctl("set", "Interface", "o1", "bfd:enable=true", "bfd:min_rx=300", "bfd:min_tx=300")
        ovs.add_flows(["actions=NORMAL"])
        ovs.start_pmd()
        sw = SwitchProc(tmp_path, (
            "dpdk: {cores: [0, 1]}\ncontrol: {socket: @SOCK@}\nbridges:\n  br0:\n    datapath: {pmd_cores: [1]}\n"
            f"    ports:\n      b1: {{device: 'net_af_packet_bv{TAG}1,iface={near}', ofport: 1, "
            "bfd: {enable: true, min_rx: 300, min_tx: 300}}\n"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ours, theirs = sw.ctl("bfd/show", "b1"), ovs.appctl("bfd/show", "o1")
            if (field(ours, "Local Session State") == "up" and field(theirs, "Local Session State") == "up"
                    and field(ours, "Remote Session State") == "up"):
                break
            time.sleep(0.3)
        assert field(ours, "Local Session State") == "up", ours
        assert field(theirs, "Local Session State") == "up", theirs
        assert field(ours, "Forwarding") == "true" and field(theirs, "Forwarding") == "true"
        assert field(ours, "Remote Minimum RX Interval") == "300ms"
        assert int(field(theirs, "Remote Discriminator"), 16) == int(field(ours, "Local Discriminator"), 16)

        t0 = time.monotonic()
        sh("nsenter", "-t", str(ovs.vswitchd.pid), "-n", "ip", "link", "set", far, "down")   # nothing arrives
        while field(sw.ctl("bfd/show", "b1"), "Local Session State") == "up":
            assert time.monotonic() - t0 < 1.5, "still up 1.5 s after the peer went silent:\n" + sw.ctl(
                "bfd/show", "b1") + sh("nsenter", "-t", str(ovs.vswitchd.pid), "-n", "ip", "link").stdout
            time.sleep(0.02)
        took = time.monotonic() - t0
        ours = sw.ctl("bfd/show", "b1")
        assert field(ours, "Local Diagnostic") == "Control Detection Time Expired"
        assert field(ours, "Forwarding") == "false"
        print(f"down {took * 1000:.0f} ms after the peer went silent (detection time 900 ms)")
        assert "OK" in sw.ctl("bfd/set-forwarding", "b1", "true")
        assert field(sw.ctl("bfd/show", "b1"), "Forwarding") == "true"
    finally:
        if sw is not None:
            sw.stop()
        ovs.stop()
        sh("ip", "link", "del", near, check=False)
