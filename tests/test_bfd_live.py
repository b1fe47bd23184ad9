"""BFD live: `dpdkswitch run` and Open vSwitch 3.1 (DPDK, net_af_packet) on the two ends of a
veth pair, both with BFD at 300 ms: the sessions come up on both sides; when the peer goes
silent (its end of the link down), ours goes down within the detection time and stops
forwarding; bfd/set-forwarding overrides it.
"""
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

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
        if not (field(ours, "Local Session State") == "up" and field(theirs, "Local Session State") == "up"):
            # Both sides, what each datapath did with the BFD frames, and Open vSwitch's log
            # (a single CI run once saw ours stay in init, Open vSwitch in down, for 20 s).
            pytest.fail("no session after 20 s\n-- ours --\n" + ours + "\n-- Open vSwitch --\n" + theirs
                        + "\n-- our datapath --\n" + sw.ctl("dpif/show") + sw.ctl("dpif/dump-flows")
                        + "\n-- Open vSwitch's datapath --\n" + ovs.appctl("dpctl/dump-flows", check=False)
                        + ovs.appctl("coverage/show", check=False) + "\n" + ovs.log_tail(40))
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


@pytest.mark.skipif(not os.path.exists("/usr/lib/frr/bfdd"), reason="FRR's bfdd is not installed")
@pytest.mark.parametrize("ms", [300, 100])
def test_bfd_session_with_frr_bfdd_comes_up_and_goes_down_when_it_stops(tmp_path, ms):
    """FRR 8.4's bfdd in a namespace at the far end of a veth pair (its recipe:
    ../shared/reference/peers/ovs_bfd_vs_frr.sh), MS both ways; at 100 ms the session holds 10 s
    without a flap on either side (FRR's down events counted by ``show bfd peers counters``)."""
    ns, near, far = f"bfr{TAG}{ms}", f"bw{TAG}{ms}", f"bf{TAG}{ms}"
    frr = Path(tempfile.mkdtemp(prefix="frr-", dir="/tmp"))     # frr's daemons cannot reach pytest's tmp
    sh("chown", "frr:frr", str(frr), check=False)
    os.chmod(frr, 0o777)
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", near, "type", "veth", "peer", "name", far)
    sh("ip", "link", "set", far, "netns", ns)
    sh("ip", "link", "set", near, "up")
    ns_run = lambda *a, **k: sh("ip", "netns", "exec", ns, *a, **k)
    ns_run("ip", "link", "set", "lo", "up")
    ns_run("ip", "link", "set", far, "up")
    ns_run("ip", "addr", "add", "169.254.1.2/24", "dev", far)
    near_mac = open(f"/sys/class/net/{near}/address").read().strip()
    far_mac = ns_run("cat", f"/sys/class/net/{far}/address").stdout.strip()
    ns_run("ip", "neigh", "replace", "169.254.1.1", "lladdr", near_mac, "dev", far, "nud", "permanent")
    (frr / "zebra.conf").write_text("hostname frrpeer\n")
    (frr / "bfdd.conf").write_text(f"bfd\n peer 169.254.1.1 local-address 169.254.1.2 interface {far}\n"
                                   f"  receive-interval {ms}\n  transmit-interval {ms}\n exit\nexit\n")
    sw = None
    vty = lambda: ns_run("vtysh", "--vty_socket", str(frr), "-c", "show bfd peers", check=False).stdout
    try:
        ns_run("/usr/lib/frr/zebra", "-d", "-f", str(frr / "zebra.conf"), "-i", str(frr / "zebra.pid"),
               "-z", str(frr / "zserv.api"), "--vty_socket", str(frr))
        time.sleep(0.5)
        ns_run("/usr/lib/frr/bfdd", "-d", "-f", str(frr / "bfdd.conf"), "-i", str(frr / "bfdd.pid"),
               "-z", str(frr / "zserv.api"), "--vty_socket", str(frr))
        sw = SwitchProc(tmp_path, (
            "dpdk: {cores: [0, 1]}\ncontrol: {socket: @SOCK@}\nbridges:\n  br0:\n    datapath: {pmd_cores: [1]}\n"
            f"    ports:\n      b1: {{device: 'net_af_packet_bw{TAG}{ms},iface={near}', ofport: 1, "
            f"bfd: {{enable: true, min_rx: {ms}, min_tx: {ms}, dst_mac: '{far_mac}', src_ip: 169.254.1.1, "
            "dst_ip: 169.254.1.2}}\n"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ours = sw.ctl("bfd/show", "b1")
            if field(ours, "Local Session State") == "up" and re.search(r"Status: up", vty()):
                break
            time.sleep(0.3)
        assert field(ours, "Local Session State") == "up", ours
        peers = vty()
        assert re.search(r"Status: up", peers), peers
        assert field(ours, "Forwarding") == "true"
        if ms == 100:
            counters = lambda: ns_run("vtysh", "--vty_socket", str(frr), "-c", "show bfd peers counters",
                                      check=False).stdout
            frr_downs = lambda: int(re.search(r"Session down events: (\d+)", counters()).group(1))
            while field(sw.ctl("bfd/show", "b1"), "RX Interval") != "Approx 100ms" and time.monotonic() < deadline:
                time.sleep(0.2)                                    # the poll sequences done
            theirs = lambda: "up" if re.search(r"Status: up", vty()) else "down"
            ours_flaps, their_downs, downs, ours = _hold(sw, 10, theirs, frr_downs)
            gap = int(field(ours, "Worst TX Gap").removesuffix("ms"))
            print(f"100 ms BFD with FRR bfdd: flaps ours {ours_flaps}, FRR's down events {their_downs}; worst TX "
                  f"gap {gap} ms")
            assert (ours_flaps, their_downs, downs) == (0, 0, []), ours
        t0 = time.monotonic()
        sh("kill", open(frr / "bfdd.pid").read().strip())           # the peer stops
        while field(sw.ctl("bfd/show", "b1"), "Local Session State") == "up":
            assert time.monotonic() - t0 < 3, "still up 3 s after bfdd stopped"
            time.sleep(0.02)
        assert field(sw.ctl("bfd/show", "b1"), "Forwarding") == "false"
    finally:
        if sw is not None:
            sw.stop()
        for pid in ("bfdd.pid", "zebra.pid"):
            try:
                sh("kill", open(frr / pid).read().strip(), check=False)
            except OSError:
                pass
        sh("ip", "link", "del", near, check=False)
        sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(frr, ignore_errors=True)


def _storm(tmp_path):
    """A pcap of 20,000 distinct UDP flows: replayed without end by a net_pcap port of a datapath
    whose flow limit is 2,000, a miss storm that never settles."""
    from frames import udp_frame, write_pcap
    pcap = tmp_path / "storm.pcap"
    write_pcap(str(pcap), [udp_frame(i) for i in range(20000)])
    return pcap


def _translations(sw) -> int:
    m = re.search(r"translations: (\d+)", sw.ctl("upcall/show"))
    return int(m.group(1)) if m else 0


def _hold(sw, seconds, peer_state, peer_flaps):
    """Watch the session for SECONDS: ours and the peer's up all along; the flap counts at the end."""
    ours0, theirs0 = int(field(sw.ctl("bfd/show", "b1"), "Flap Count")), peer_flaps()
    t0, downs = time.monotonic(), []
    while time.monotonic() - t0 < seconds:
        ours = sw.ctl("bfd/show", "b1")
        if field(ours, "Local Session State") != "up" or peer_state() != "up":
            downs.append((round(time.monotonic() - t0, 2), field(ours, "Local Session State"), peer_state()))
        time.sleep(0.2)
    ours = sw.ctl("bfd/show", "b1")
    return int(field(ours, "Flap Count")) - ours0, peer_flaps() - theirs0, downs, ours


@pytest.mark.skipif(not os.environ.get("DPDKSWITCH_TIMING_TESTS"),
                    reason="needs CPU for the switch's threads within 300 ms: on the shared 2-core VM (load ~12) "
                    "it flaps when they get none; DPDKSWITCH_TIMING_TESTS=1 runs it")
def test_bfd_at_100ms_with_open_vswitch_holds_10s_under_a_miss_storm(tmp_path):
    """100 ms both ways (detection time 300 ms) while a miss storm keeps our control thread
    translating from the start: the session comes up, and neither side's flaps for 10 s; our worst
    gap between two control packets stays inside the peer's detection time."""
    ovs_mod = pytest.importorskip("dpdkswitch.bench.ovs")
    if ovs_mod.missing():
        pytest.skip(ovs_mod.missing())
    near, far = f"bv{TAG}2", f"bo{TAG}2"
    sh("ip", "link", "add", near, "type", "veth", "peer", "name", far)
    sh("ip", "link", "set", near, "up")
    ovs = ovs_mod.Ovs(tmp_path / "ovs")
    sw = None
    pcap = _storm(tmp_path)
    try:
        ovs.start()
        sh("ip", "link", "set", far, "netns", str(ovs.vswitchd.pid))
        sh("nsenter", "-t", str(ovs.vswitchd.pid), "-n", "ip", "link", "set", far, "up")
        ovs.add_port("o1", 1, f"net_af_packet_b{TAG}2,iface={far}")
        ovs.vsctl("set", "Interface", "o1", "bfd:enable=true", "bfd:min_rx=100", "bfd:min_tx=100")
        ovs.add_flows(["actions=NORMAL"])
        ovs.start_pmd()
        sw = SwitchProc(tmp_path, (
            "dpdk: {cores: [0, 1]}\ncontrol: {socket: @SOCK@}\nbridges:\n  br0:\n"
            "    datapath: {pmd_cores: [1], flow_limit: 2000}\n    flows: ['priority=0,udp,actions=move:NXM_OF_UDP_SRC[]->NXM_NX_REG0[0..15]']\n"
            f"    ports:\n      b1: {{device: 'net_af_packet_bv{TAG}2,iface={near}', ofport: 1, "
            "bfd: {enable: true, min_rx: 100, min_tx: 100}}\n"
            f"      st: {{device: 'net_pcap_st{TAG},rx_pcap={pcap},infinite_rx=1', ofport: 2}}\n"))
        theirs = lambda: field(ovs.appctl("bfd/show", "o1"), "Local Session State")
        flaps = lambda: int(ovs.vsctl("get", "Interface", "o1", "bfd_status:flap_count").strip().strip('"'))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ours = sw.ctl("bfd/show", "b1")
            if (field(ours, "Local Session State") == "up" and theirs() == "up"
                    and field(ours, "RX Interval") == "Approx 100ms"):        # the poll sequences done
                break
            time.sleep(0.3)
        assert field(ours, "Local Session State") == "up" and theirs() == "up", ours
        assert field(ours, "TX Interval") == "Approx 100ms" and field(ours, "RX Interval") == "Approx 100ms"
        before = _translations(sw)
        ours_flaps, their_flaps, downs, ours = _hold(sw, 10, theirs, flaps)
        translated = _translations(sw) - before
        gap = int(field(ours, "Worst TX Gap").removesuffix("ms"))
        print(f"100 ms BFD with Open vSwitch under a miss storm ({translated} translations in 10 s): "
              f"flaps ours {ours_flaps}, theirs {their_flaps}; worst TX gap {gap} ms; last diagnostics: ours "
              f"{field(ours, 'Local Diagnostic')!r}, theirs {field(ovs.appctl('bfd/show', 'o1'), 'Local Diagnostic')!r}")
        assert translated > 10000, "no miss storm"
        assert (ours_flaps, their_flaps, downs) == (0, 0, []), ours
        assert gap < 300, ours                                 # the peer's detection time
    finally:
        if sw is not None:
            sw.stop()
        ovs.stop()
        sh("ip", "link", "del", near, check=False)


def test_a_fast_failover_group_follows_a_bfd_session_with_open_vswitch(tmp_path):
    """A host pings through a fast-failover group whose first bucket watches a port with a BFD
    session to Open vSwitch 3.1 (300 ms): while the session is up the pings leave by that port;
    when Open vSwitch goes silent the session goes down, the group takes its next bucket and the
    pings leave by the other port; when it comes back, by the first again."""
    from test_openflow_ofctl import free_port

    ovs_mod = pytest.importorskip("dpdkswitch.bench.ovs")
    if ovs_mod.missing():
        pytest.skip(ovs_mod.missing())
    near, far, host = f"bv{TAG}3", f"bo{TAG}3", f"bfh{TAG}"
    sh("ip", "link", "add", near, "type", "veth", "peer", "name", far)
    sh("ip", "link", "set", near, "up")
    ovs = ovs_mod.Ovs(tmp_path / "ovs")
    sw = pinger = None
    port = free_port()
    try:
        ovs.start()
        sh("ip", "link", "set", far, "netns", str(ovs.vswitchd.pid))
        sh("nsenter", "-t", str(ovs.vswitchd.pid), "-n", "ip", "link", "set", far, "up")
        ovs.add_port("o1", 1, f"net_af_packet_b{TAG}3,iface={far}")
        ovs.vsctl("set", "Interface", "o1", "bfd:enable=true", "bfd:min_rx=300", "bfd:min_tx=300")
        ovs.add_flows(["actions=drop"])
        ovs.start_pmd()
        sw = SwitchProc(tmp_path, (
            "dpdk: {cores: [0, 1]}\ncontrol: {socket: @SOCK@}\nbridges:\n  br0:\n"
            f"    datapath: {{pmd_cores: [1]}}\n    openflow: {{listen: ['ptcp:{port}:127.0.0.1']}}\n"
            f"    ports:\n      b1: {{device: 'net_af_packet_bv{TAG}3,iface={near}', ofport: 1, "
            "bfd: {enable: true, min_rx: 300, min_tx: 300}}\n"
            f"      h: {{device: 'net_tap_bf{TAG},iface=bt{TAG}', ofport: 2, netns: {{name: {host}, "
            "address: 10.14.0.1/24}}\n"
            f"      alt: {{device: 'net_null_bf{TAG},no-rx=1', ofport: 3}}\n"))
        sh("ovs-ofctl", "-O", "OpenFlow13", "add-group", f"tcp:127.0.0.1:{port}",
           "group_id=1,type=ff,bucket=watch_port:1,actions=output:1,bucket=watch_port:3,actions=output:3")
        for flow in ("priority=10,in_port=2,actions=group:1", "priority=10,in_port=1,actions=drop"):
            sh("ovs-ofctl", "-O", "OpenFlow13", "add-flow", f"tcp:127.0.0.1:{port}", flow)
        sh("ip", "netns", "exec", host, "ip", "neigh", "replace", "10.14.0.2", "lladdr", "02:00:00:00:14:02",
           "dev", f"bt{TAG}", "nud", "permanent")
        pinger = subprocess.Popen(["ip", "netns", "exec", host, "ping", "-q", "-i", "0.05", "10.14.0.2"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        state = lambda: field(sw.ctl("bfd/show", "b1"), "Local Session State")

        def wait_for(want, seconds):
            t0 = time.monotonic()
            while state() != want and time.monotonic() - t0 < seconds:
                time.sleep(0.05)
            return state()

        def out_by(seconds=1.0):
            """Frames each port sent in SECONDS (about 20 pings; BFD adds at most 4 on b1)."""
            a = (sw.tx_packets("b1"), sw.tx_packets("alt"))
            time.sleep(seconds)
            return sw.tx_packets("b1") - a[0], sw.tx_packets("alt") - a[1]

        def follows(port, within=3.0):
            """The pings leave by PORT alone (b1 also sends BFD's own packets: at most 2 a second
            while the session is down) within WITHIN seconds of the change; the last window's counts."""
            t0 = time.monotonic()
            while True:
                b1, alt = out_by()
                if (b1 >= 12 and alt == 0) if port == "b1" else (alt >= 12 and b1 <= 2):
                    return b1, alt
                assert time.monotonic() - t0 < within, (port, b1, alt)

        assert wait_for("up", 20) == "up"
        follows("b1")
        sh("nsenter", "-t", str(ovs.vswitchd.pid), "-n", "ip", "link", "set", far, "down")    # silent
        assert wait_for("down", 3) == "down"
        follows("alt")                                   # the group's next bucket
        sh("nsenter", "-t", str(ovs.vswitchd.pid), "-n", "ip", "link", "set", far, "up")
        assert wait_for("up", 10) == "up"
        follows("b1")                                    # and back
    finally:
        if pinger is not None:
            pinger.kill()
            pinger.wait()
        if sw is not None:
            sw.stop()
        ovs.stop()
        sh("ip", "link", "del", near, check=False)
