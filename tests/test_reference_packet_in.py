"""Packet-ins against Open vSwitch 3.1: the same table and the same frames through Open vSwitch
(DPDK datapath, a net_pcap port) and through ``dpdkswitch run``, each watched by
``ovs-ofctl monitor`` on the bridge's management socket, must print the same packet-ins.

The monitor speaks OpenFlow 1.0, asks for NXT_PACKET_IN2 (as ovs-ofctl always does first), a
miss_send_len of 65534 and invalid_ttl packet-ins (OFPC_INVALID_TTL_TO_CONTROLLER), as Open
vSwitch's own tests watch packet-ins.  So what is compared is what a controller reads: reason,
table, cookie, the pipeline state (in_port, registers, pkt_mark), the controller action's
userdata, the packet (as modified; Open vSwitch 3.1 sends it whole in an NXT_PACKET_IN2,
whatever the max_len) and its length.  The table covers
controller(userdata=,reason=,max_len=,id=), an output to CONTROLLER with a max_len,
dec_ttl, dec_ttl(ids) whose ids include the monitor's (0) or not, a controller action for
another controller id (the monitor must see nothing of it), dec_mpls_ttl's invalid_ttl
packet-in and a controller action after pop_mpls (sent from the recirculated second pass, with
the rule's table and cookie).  Printed xids are left out.  The frames out of port 2 (the rules'
outputs) must be the same too.

fin_timeout: after TCP frames with FIN, RST or neither through fin_timeout rules (with and
without timeouts of their own), ``dump-flows`` must show the same timeouts on both.

Ours: the frames arrive by a port added with dpif/add-port once the monitor is connected
(``ovs-ofctl monitor --detach`` returns when it has configured its connection); Open vSwitch's
input port is added last too (tests/reference/ovs.py's way).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from scapy.layers.inet import IP, TCP, UDP
from scapy.contrib.mpls import MPLS
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from dpdkswitch.config import online_cpus
from dpdkswitch.control import call
from frames import read_pcap, write_pcap
from reference import ovs as ovs_mod

pytestmark = [pytest.mark.dpdk, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

FLOWS = [
    "cookie=0x1234,priority=10,udp,tp_dst=1,actions=controller(userdata=01.02.03.04.05)",
    "priority=10,udp,tp_dst=2,actions=load:0x7->NXM_NX_REG3[],load:0xab->NXM_NX_PKT_MARK[],resubmit(,1)",
    "table=1,priority=10,udp,actions=controller(reason=no_match,max_len=40,userdata=aa.bb)",
    "priority=10,udp,tp_dst=3,actions=controller(id=5,userdata=01),output:2",
    "priority=10,udp,tp_dst=4,actions=dec_ttl(0,5),output:2",
    "priority=10,udp,tp_dst=5,actions=dec_ttl(5),output:2",
    "priority=10,udp,tp_dst=6,actions=dec_ttl,output:2",
    "priority=10,udp,tp_dst=7,actions=controller(reason=invalid_ttl,max_len=50)",
    "priority=10,udp,tp_dst=8,actions=mod_dl_src:02:00:00:00:00:99,controller(userdata=ff.00)",
    "priority=10,udp,tp_dst=9,actions=controller:30",
    # fin_timeout: a FIN or RST shortens the rule's timeouts (compared in dump-flows afterwards)
    "priority=10,idle_timeout=60,hard_timeout=300,tcp,tp_dst=20,actions=fin_timeout(idle_timeout=5,hard_timeout=30),"
    "output:2",
    "priority=10,tcp,tp_dst=21,actions=fin_timeout(idle_timeout=7),output:2",
    "priority=10,idle_timeout=50,tcp,tp_dst=22,actions=fin_timeout(idle_timeout=9),output:2",
    "priority=10,hard_timeout=200,tcp,tp_dst=23,actions=fin_timeout(hard_timeout=250),output:2",
    # MPLS: dec_mpls_ttl's invalid_ttl packet-in; a packet-in after a pop (from the recirculated
    # second pass: its table and cookie are the rule's)
    "cookie=0x77,priority=10,mpls,mpls_label=16,actions=dec_mpls_ttl,output:2",
    "cookie=0x78,priority=10,mpls,mpls_label=17,actions=pop_mpls:0x0800,controller(userdata=0a.0b),output:2",
    "priority=0,actions=drop",
]
FIN_FLAGS = {20: "FA", 21: "R", 22: "S", 23: "F"}


def frames() -> list[bytes]:
    out = []
    for dport in range(1, 10):
        for ttl in (64, 1):
            for i in range(2):
                p = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.0.0.1", dst=f"10.1.0.{i}",
                     ttl=ttl) / UDP(sport=1000 + dport, dport=dport) / Raw(b"pin-%02d-%d-%d" % (dport, ttl, i) * 4))
                out.append(bytes(p))
    for dport, flags in FIN_FLAGS.items():
        p = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.0.0.1", dst="10.2.0.1")
             / TCP(sport=5000, dport=dport, flags=flags))
        out.append(bytes(p))
    for label in (16, 17):
        for ttl in (64, 1):
            for i in range(2):
                p = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / MPLS(label=label, s=1, ttl=ttl)
                     / IP(src="10.0.0.1", dst=f"10.3.0.{i}") / UDP(sport=7, dport=9) / Raw(b"mpls-%d-%d" % (ttl, i)))
                out.append(bytes(p))
    return out


def fin_flows(target: str) -> list[str]:
    """The fin_timeout rules as dump-flows prints them (timeouts included), sorted."""
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", target, "--no-stats", "tcp"],
                         capture_output=True, text=True, check=True).stdout
    return sorted(ln.strip() for ln in out.splitlines() if "fin_timeout" in ln)


def _monitor(target: str, workdir: Path, name: str) -> tuple[Path, Path]:
    """ovs-ofctl monitor on TARGET, detached once its connection is set up; (output, pidfile)."""
    out, pid = workdir / f"{name}-monitor.txt", workdir / f"{name}-monitor.pid"
    with open(out, "w") as f:
        subprocess.run(["ovs-ofctl", "-O", "OpenFlow10", "monitor", target, "65534", "invalid_ttl", "--detach",
                        "--no-chdir", f"--pidfile={pid}", f"--unixctl={workdir / (name + '-monitor.ctl')}"], stdout=f, stderr=subprocess.STDOUT, check=True,
                       timeout=30)
    return out, pid


def _stop_monitor(pid: Path) -> None:
    try:
        os.kill(int(pid.read_text()), 15)
    except (OSError, ValueError):
        pass
    time.sleep(0.2)


def packet_ins(text: str) -> Counter:
    """The packet-in messages a monitor printed (each with its following lines), xids left out."""
    blocks, cur = [], None
    for line in text.splitlines():
        if re.match(r"^[A-Z][A-Z0-9_]+ \(", line):
            cur = [] if re.match(r"^(NXT_PACKET_IN2|NXT_PACKET_IN|OFPT_PACKET_IN) ", line) else None
            if cur is not None:
                blocks.append(cur)
        if cur is not None:
            cur.append(re.sub(r"xid=0x[0-9a-f]+", "xid=*", line))
    return Counter("\n".join(b) for b in blocks)


def run_ovs_side(workdir: Path, in_pcap: str, n: int) -> tuple[Counter, list[str]]:
    with ovs_mod.Ovs(workdir / "ovs") as ovs:
        tag = ovs.file_prefix.replace("-", "_")
        ovs.add_port("p2", 2, f"net_pcap_{tag}_2,rx_pcap={workdir / 'empty.pcap'},tx_pcap={workdir / 'ovs-out2.pcap'}")
        ovs.add_flows(FLOWS)
        out, pid = _monitor(ovs.mgmt, workdir, "ovs")
        ovs.add_port("p1", 1, f"net_pcap_{tag}_1,rx_pcap={in_pcap},tx_pcap={workdir / 'ovs-out1.pcap'}")
        ovs.start_pmd()
        ovs.wait_rx(1, n)
        ovs.wait_quiet(0.2)
        time.sleep(0.5)
        _stop_monitor(pid)
        fins = fin_flows(ovs.mgmt)
    return packet_ins(out.read_text()), fins


def run_our_side(workdir: Path, in_pcap: str, n: int) -> tuple[Counter, list[str]]:
    tag = f"pin{os.getpid() % 10000}"
    sock = workdir / "ctl.sock"
    cfg = {"dpdk": {"cores": sorted(online_cpus())[:2]}, "control": {"socket": str(sock)},    # (not our affinity)
           "bridges": {"br0": {"datapath": {"pmd_cores": []}, "openflow": {"fail_mode": "secure"},
                               "ports": {"p2": {"device": f"net_pcap_{tag}p2,tx_pcap={workdir / 'ours-out2.pcap'}",
                                                "ofport": 2}},
                               "flows": FLOWS}}}
    path = workdir / "switch.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log = workdir / "switch.log"
    proc = subprocess.Popen([sys.executable, "-m", "dpdkswitch", "run", str(path), "--no-top"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=workdir)
    try:
        deadline = time.monotonic() + 60
        while not (workdir / "br0.mgmt").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "switch did not start:\n" + log.read_text()
            time.sleep(0.2)
        out, pid = _monitor(f"unix:{workdir / 'br0.mgmt'}", workdir, "ours")
        call(str(sock), "dpif/add-port", ["br0", "p1", f"net_pcap_{tag}p1,rx_pcap={in_pcap},"
                                          f"tx_pcap={workdir / 'ours-out1.pcap'}", "1"])
        deadline = time.monotonic() + 30
        while True:
            got = subprocess.run(["ovs-ofctl", "dump-ports", f"unix:{workdir / 'br0.mgmt'}", "1"],
                                 capture_output=True, text=True).stdout
            m = re.search(r"rx pkts=(\d+)", got)
            if m and int(m.group(1)) >= n:
                break
            assert time.monotonic() < deadline, f"port 1 received too few frames: {got}\n{log.read_text()}"
            time.sleep(0.1)
        time.sleep(1.0)
        _stop_monitor(pid)
        fins = fin_flows(f"unix:{workdir / 'br0.mgmt'}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return packet_ins(out.read_text()), fins


def test_packet_ins_and_fin_timeouts_as_open_vswitch(tmp_path):
    why = ovs_mod.missing()
    if why:
        pytest.skip(f"Open vSwitch (DPDK) is not installed: {why}")
    fs = frames()
    in_pcap = str(tmp_path / "in.pcap")
    write_pcap(in_pcap, fs)
    write_pcap(str(tmp_path / "empty.pcap"), [])
    want, want_fins = run_ovs_side(tmp_path, in_pcap, len(fs))
    assert sum(want.values()) >= 10, f"Open vSwitch sent too few packet-ins: the set tests nothing\n{want}"
    assert any("cookie=0x77" in k and "invalid_ttl" in k for k in want), "no dec_mpls_ttl packet-in from OVS"
    assert any("cookie=0x78" in k and "userdata=0a.0b" in k for k in want), "no packet-in after pop_mpls from OVS"
    got, got_fins = run_our_side(tmp_path, in_pcap, len(fs))
    only_ovs, only_ours = want - got, got - want
    assert not only_ovs and not only_ours, (
        f"packet-ins differ (OVS {sum(want.values())}, dpdkswitch {sum(got.values())}; monitors' output in "
        f"{tmp_path}):\nonly from Open vSwitch:\n" + "\n--\n".join(only_ovs.elements())
        + "\nonly from dpdkswitch:\n" + "\n--\n".join(only_ours.elements()))
    assert got_fins == want_fins, f"fin_timeout's rules after FIN/RST frames differ:\nOVS:  {want_fins}\nours: {got_fins}"
    assert any("idle_timeout=5" in f for f in want_fins), want_fins        # the FIN did shorten something
    # The frames out of port 2 (the rules' outputs after dec_ttl(ids), controller, fin_timeout,
    # dec_mpls_ttl and pop_mpls): the same, order aside.
    ovs_frames, our_frames = (Counter(read_pcap(str(tmp_path / f"{side}-out2.pcap"))) for side in ("ovs", "ours"))
    assert sum(ovs_frames.values()) >= 10, ovs_frames
    assert ovs_frames == our_frames, (f"frames out of port 2 differ:\nonly from Open vSwitch: {ovs_frames - our_frames}"
                                      f"\nonly from dpdkswitch: {our_frames - ovs_frames}")
