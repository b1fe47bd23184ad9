"""Open vSwitch's "Advanced Features" tutorial (Documentation/tutorials/ovs-advanced.rst, Open
vSwitch 3.1), run unchanged against ``dpdkswitch run``: the issue #16 acceptance test.

The tutorial's commands are its own shell text, run by bash in the order the tutorial gives
them, where ``ovs-ofctl`` is Open vSwitch's own client (its default OpenFlow 1.0 with Nicira
extensions, to the bridge by name: OVS_RUNDIR holds the bridge's ``br0.mgmt`` socket) and
``ovs-appctl`` is ``dpdkswitch ctl`` on the switch's control socket.  The bridge is the
tutorial's: br0 in fail mode secure with p1 (a trunk) and p2-p4 (access ports, VLANs 20, 30,
30) as OpenFlow ports 1-4; here they are tap ports whose far ends are network namespaces.

Each ``ofproto/trace`` step is checked for what the tutorial shows: the tables visited in
order, the flows ``learn`` adds (``-generate``: the trace's side effects), the rules hit in
the learning table, and the datapath actions (the output ports); ``dump-flows br0 table=10``
for the learned flows.  The tutorial's "try on your own" broadcasts are checked against what
its VLAN switch intends (flood within the VLAN, tagged on the trunk only).  Then hosts in the
namespaces talk through the same tables: within a VLAN across the trunk and access ports, not
across VLANs, the learned flows naming their ports, and unicast to a learned host not flooded.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_openflow_ofctl import ping, port_counters, start_switch

pytestmark = [pytest.mark.netns, pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not os.path.exists("/usr/bin/ovs-ofctl"), reason="needs ovs-ofctl")]

LEARN_RULE = ("learn(table=10,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],"
              "load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15])")


def learned(vlan: int, mac: str, port: int) -> str:
    """The trace's line for the flow the tutorial's learn action adds."""
    return (f"-> table=10 vlan_tci={vlan:#06x}/0x0fff,dl_dst={mac} priority=32768 "
            f"actions=load:{port:#x}->NXM_NX_REG0[0..15]")


def hit(vlan: int, mac: str) -> str:
    """The trace's line for a rule of the learning table matched."""
    return f"10. vlan_tci={vlan:#06x}/0x0fff,dl_dst={mac}, priority 32768"


def dumped(vlan: int, mac: str, port: int) -> str:
    """dump-flows' line for a learned flow, from its table on (the tutorial omits the rest)."""
    return f"table=10, vlan_tci={vlan:#06x}/0x0fff,dl_dst={mac} actions=load:{port:#x}->NXM_NX_REG0[0..15]"


# The tutorial, section by section: its shell text, then what each step must show.  An entry is
# (shell text, expectations); expectations: tables (visited, in order), learned (the trace's
# "-> table=10 ..." lines), hits (lines of the trace), actions (the datapath actions), table10
# (lines dump-flows table=10 must have).
TUTORIAL = [
    # Implementing Table 0: Admission control
    ('''ovs-ofctl add-flow br0 \\
        "table=0, dl_src=01:00:00:00:00:00/01:00:00:00:00:00, actions=drop"''', {}),
    ('''ovs-ofctl add-flow br0 \\
        "table=0, dl_dst=01:80:c2:00:00:00/ff:ff:ff:ff:ff:f0, actions=drop"''', {}),
    ('''ovs-ofctl add-flow br0 "table=0, priority=0, actions=resubmit(,1)"''', {}),
    # Testing Table 0
    ("ovs-appctl ofproto/trace br0 in_port=1,dl_dst=01:80:c2:00:00:05",
     {"tables": [0], "hits": ["0. dl_dst=01:80:c2:00:00:00/ff:ff:ff:ff:ff:f0, priority 32768"], "actions": "drop"}),
    ("ovs-appctl ofproto/trace br0 in_port=1,dl_dst=01:80:c2:00:00:10",
     {"tables": [0, 1], "hits": ["0. priority 0", "resubmit(,1)"], "actions": "drop"}),
    # Implementing Table 1: VLAN Input Processing
    ('''ovs-ofctl add-flow br0 "table=1, priority=0, actions=drop"''', {}),
    ('''ovs-ofctl add-flow br0 \\
        "table=1, priority=99, in_port=1, actions=resubmit(,2)"''', {}),
    ('''ovs-ofctl add-flows br0 - <<'EOF'
table=1, priority=99, in_port=2, vlan_tci=0, actions=mod_vlan_vid:20, resubmit(,2)
table=1, priority=99, in_port=3, vlan_tci=0, actions=mod_vlan_vid:30, resubmit(,2)
table=1, priority=99, in_port=4, vlan_tci=0, actions=mod_vlan_vid:30, resubmit(,2)
EOF''', {}),
    # Testing Table 1
    ("ovs-appctl ofproto/trace br0 in_port=1,vlan_tci=5",
     {"tables": [0, 1, 2], "hits": ["1. in_port=1, priority 99", "resubmit(,2)"], "actions": "drop"}),
    ("ovs-appctl ofproto/trace br0 in_port=2",
     {"tables": [0, 1, 2], "hits": ["mod_vlan_vid:20"], "actions": "drop"}),
    ("ovs-appctl ofproto/trace br0 in_port=2,vlan_tci=5",
     {"tables": [0, 1], "hits": ["1. priority 0", "drop"], "actions": "drop"}),
    # Implementing Table 2: MAC+VLAN Learning for Ingress Port
    ('''ovs-ofctl add-flow br0 \\
    "table=2 actions=learn(table=10, NXM_OF_VLAN_TCI[0..11], \\
                           NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[], \\
                           load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15]), \\
                     resubmit(,3)"''', {}),
    # Testing Table 2
    ('''ovs-appctl ofproto/trace br0 \\
    in_port=1,vlan_tci=20,dl_src=50:00:00:00:00:01 -generate''',
     {"tables": [0, 1, 2, 3], "hits": ["2. priority 32768", LEARN_RULE],
      "learned": [learned(20, "50:00:00:00:00:01", 1)], "actions": "drop",
      "table10": [dumped(20, "50:00:00:00:00:01", 1)]}),
    ('''ovs-appctl ofproto/trace br0 \\
    in_port=2,dl_src=50:00:00:00:00:01 -generate''',
     {"tables": [0, 1, 2, 3], "learned": [learned(20, "50:00:00:00:00:01", 2)], "actions": "drop",
      "table10": [dumped(20, "50:00:00:00:00:01", 2)]}),
    # Implementing Table 3: Look Up Destination Port
    ('''ovs-ofctl add-flow br0 \\
    "table=3 priority=50 actions=resubmit(,10), resubmit(,4)"''', {}),
    ('''ovs-ofctl add-flow br0 \\
    "table=3 priority=99 dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 \\
      actions=resubmit(,4)"''', {}),
    # Testing Table 3
    ('''ovs-appctl ofproto/trace br0 \\
    in_port=1,dl_vlan=20,dl_src=f0:00:00:00:00:01,dl_dst=90:00:00:00:00:01 \\
    -generate''',
     {"tables": [0, 1, 2, 3, 10, 4], "learned": [learned(20, "f0:00:00:00:00:01", 1)], "actions": "drop",
      "table10": [dumped(20, "f0:00:00:00:00:01", 1)]}),
    ('''ovs-appctl ofproto/trace br0 \\
    in_port=2,dl_src=90:00:00:00:00:01,dl_dst=f0:00:00:00:00:01 -generate''',
     {"tables": [0, 1, 2, 3, 10, 4], "learned": [learned(20, "90:00:00:00:00:01", 2)],
      "hits": [hit(20, "f0:00:00:00:00:01"), "load:0x1->NXM_NX_REG0[0..15]"], "actions": "drop"}),
    ('''ovs-appctl ofproto/trace br0 \\
    in_port=1,dl_vlan=20,dl_src=f0:00:00:00:00:01,dl_dst=90:00:00:00:00:01 \\
    -generate''',
     {"tables": [0, 1, 2, 3, 10, 4], "learned": [learned(20, "f0:00:00:00:00:01", 1)],
      "hits": [hit(20, "90:00:00:00:00:01"), "load:0x2->NXM_NX_REG0[0..15]"], "actions": "drop"}),
    # Implementing Table 4: Output Processing
    ('''ovs-ofctl add-flow br0 "table=4 reg0=1 actions=1"''', {}),
    ('''ovs-ofctl add-flows br0 - <<'EOF'
table=4 reg0=2 actions=strip_vlan,2
table=4 reg0=3 actions=strip_vlan,3
table=4 reg0=4 actions=strip_vlan,4
EOF''', {}),
    ('''ovs-ofctl add-flows br0 - <<'EOF'
table=4 reg0=0 priority=99 dl_vlan=20 actions=1,strip_vlan,2
table=4 reg0=0 priority=99 dl_vlan=30 actions=1,strip_vlan,3,4
table=4 reg0=0 priority=50            actions=1
EOF''', {}),
    # Testing Table 4, Example 1: Broadcast, Multicast, and Unknown Destination
    ('''ovs-appctl ofproto/trace br0 \\
    in_port=1,dl_dst=ff:ff:ff:ff:ff:ff,dl_vlan=30''', {"tables": [0, 1, 2, 3, 4], "actions": "pop_vlan,3,4"}),
    ("ovs-appctl ofproto/trace br0 in_port=3,dl_dst=ff:ff:ff:ff:ff:ff",
     {"actions": "push_vlan(vid=30,pcp=0),1,pop_vlan,4"}),
    ('''ovs-appctl ofproto/trace br0 \\
    in_port=1,dl_dst=ff:ff:ff:ff:ff:ff''', {"actions": "drop"}),
    ('''ovs-appctl ofproto/trace br0 \\
    in_port=1,dl_dst=ff:ff:ff:ff:ff:ff,dl_vlan=55''', {"actions": "drop"}),
    # ("Try some other broadcast cases on your own": flooded within the VLAN, tagged on the trunk)
    ('''ovs-appctl ofproto/trace br0 \\
    in_port=1,dl_dst=ff:ff:ff:ff:ff:ff,dl_vlan=20''', {"actions": "pop_vlan,2"}),
    ('''ovs-appctl ofproto/trace br0 \\
    in_port=2,dl_dst=ff:ff:ff:ff:ff:ff''', {"actions": "push_vlan(vid=20,pcp=0),1"}),
    ('''ovs-appctl ofproto/trace br0 \\
    in_port=4,dl_dst=ff:ff:ff:ff:ff:ff''', {"actions": "push_vlan(vid=30,pcp=0),1,pop_vlan,3"}),
    ('''ovs-appctl ofproto/trace br0 \\
    in_port=4,dl_dst=01:00:00:00:00:00''', {"actions": "push_vlan(vid=30,pcp=0),1,pop_vlan,3"}),
    ('''ovs-appctl ofproto/trace br0 \\
    in_port=1,dl_dst=90:12:34:56:78:90,dl_vlan=20''', {"tables": [0, 1, 2, 3, 10, 4], "actions": "pop_vlan,2"}),
    ('''ovs-appctl ofproto/trace br0 \\
    in_port=1,dl_dst=90:12:34:56:78:90,dl_vlan=30''', {"actions": "pop_vlan,3,4"}),
    # Example 2: MAC Learning
    ('''ovs-appctl ofproto/trace br0 \\
    in_port=1,dl_vlan=30,dl_src=10:00:00:00:00:01,dl_dst=20:00:00:00:00:01 \\
    -generate''', {"learned": [learned(30, "10:00:00:00:00:01", 1)], "actions": "pop_vlan,3,4"}),
    ('''ovs-appctl ofproto/trace br0 \\
    in_port=4,dl_src=20:00:00:00:00:01,dl_dst=10:00:00:00:00:01 -generate''',
     {"hits": [hit(30, "10:00:00:00:00:01")], "actions": "push_vlan(vid=30,pcp=0),1"}),
    ('''ovs-appctl ofproto/trace br0 \\
    in_port=1,dl_vlan=30,dl_src=10:00:00:00:00:01,dl_dst=20:00:00:00:00:01 \\
    -generate''', {"hits": [hit(30, "20:00:00:00:00:01")], "actions": "pop_vlan,4"}),
]


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    """The switch with the tutorial run on it: (switch, [(command, output)])."""
    tmp = tmp_path_factory.mktemp("tutorial")
    s = start_switch(tmp, f"{os.getpid() % 10000}u", {"openflow": {"fail_mode": "secure"}}, taps=4)
    env = dict(os.environ, OVS_RUNDIR=str(tmp), SOCK=s.sock, PY=sys.executable)
    shim = ('ovs-ofctl() { /usr/bin/ovs-ofctl "$@"; }\n'
            'ovs-appctl() { "$PY" -m dpdkswitch ctl -s "$SOCK" "$@"; }\n')
    ran = []
    try:
        for cmd, _ in TUTORIAL:
            r = subprocess.run(["bash", "-c", shim + cmd], env=env, capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, f"{cmd}\n{r.stdout}{r.stderr}"
            table10 = ""
            if "-generate" in cmd:
                table10 = subprocess.run(["bash", "-c", shim + "ovs-ofctl dump-flows br0 table=10"], env=env,
                                         capture_output=True, text=True, timeout=60, check=True).stdout
            ran.append((cmd, r.stdout, table10))
        yield s, ran
    finally:
        log = s.stop()
        assert s.proc.returncode == 0, log


def _tables(trace: str) -> list[int]:
    return [int(m.group(1)) for m in re.finditer(r"^\s*(\d+)\. ", trace, re.M)]


@pytest.mark.parametrize("step", [i for i, (_, want) in enumerate(TUTORIAL) if want])
def test_tutorial_trace_step(tutorial, step):
    _, ran = tutorial
    cmd, want = TUTORIAL[step]
    got_cmd, out, table10 = ran[step]
    assert got_cmd == cmd
    lines = [ln.strip() for ln in out.splitlines()]
    if "tables" in want:
        assert _tables(out) == want["tables"], out
    for h in want.get("hits", []):
        assert h in lines, f"{h!r} not in:\n{out}"
    if "learned" in want:
        assert [ln for ln in lines if ln.startswith("-> ")] == want["learned"], out
    actions = next(ln for ln in lines if ln.startswith("Datapath actions: "))
    assert actions == "Datapath actions: " + want["actions"], out
    for flow in want.get("table10", []):
        rest = flow.split(", ", 1)[1]
        assert any("table=10," in ln and ln.endswith(" " + rest) for ln in table10.splitlines()), \
            f"{flow!r} not in:\n{table10}"


def test_a_trace_without_generate_learns_nothing(tutorial):
    s, _ = tutorial
    before = s.ctl("ofctl/dump-flows", "br0", "table=10")
    out = s.ctl("ofproto/trace", "br0", "in_port=3,dl_src=30:00:00:00:00:09,dl_dst=ff:ff:ff:ff:ff:ff")
    assert learned(30, "30:00:00:00:00:09", 3) in [ln.strip() for ln in out.splitlines()]
    assert "30:00:00:00:00:09" not in s.ctl("ofctl/dump-flows", "br0", "table=10")
    assert s.ctl("ofctl/dump-flows", "br0", "table=10").count("table=10") == before.count("table=10")


def _sh(ns: str, *cmd: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, *cmd], check=True, capture_output=True, text=True, timeout=30)


def _mac(ns: str, iface: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "cat", f"/sys/class/net/{iface}/address"],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(shutil.which("ping") is None, reason="needs ping")
def test_hosts_talk_as_the_vlan_learning_switch_intends(tutorial):
    """p1's host is a trunk (VLAN 20 as 10.0.0.1, VLAN 30 as 10.0.30.1: tests/tagged_host.py),
    p2's host is in VLAN 20 (10.0.0.2), p3's and p4's in VLAN 30 (10.0.0.3, 10.0.0.4; p3's
    also 10.0.30.3).  The tutorial's tables carry each VLAN across the trunk and between its
    access ports, keep the VLANs apart, learn every host on its port and VLAN, and send
    unicast to a learned host only."""
    s, _ = tutorial
    (ns1, _), (ns2, _), (ns3, _), (ns4, _) = (s.hosts[f"p{i}"] for i in range(1, 5))
    tag = ns1.split("-")[1]
    trunk = f"do{tag}1"
    _sh(ns1, "ip", "addr", "del", "10.0.0.1/24", "dev", trunk)
    _sh(ns3, "ip", "addr", "add", "10.0.30.3/24", "dev", f"do{tag}3")
    host = subprocess.Popen(["ip", "netns", "exec", ns1, sys.executable, str(Path(__file__).with_name("tagged_host.py")),
                             trunk, "20:10.0.0.1", "30:10.0.30.1"], stdout=subprocess.PIPE, text=True)
    try:
        assert host.stdout.readline().strip() == "ready"
        _talk(s, ns1, ns2, ns3, ns4, tag)
    finally:
        host.kill()
        host.wait()


def _talk(s, ns1, ns2, ns3, ns4, tag) -> None:
    assert ping(ns2, "10.0.0.1"), "VLAN 20: access p2 to the trunk's VLAN 20"
    assert ping(ns3, "10.0.0.4"), "VLAN 30: access p3 to access p4"
    assert ping(ns3, "10.0.30.1"), "VLAN 30: access p3 to the trunk's VLAN 30"
    assert not ping(ns3, "10.0.0.2", count=2), "VLAN 30 reached VLAN 20"
    assert not ping(ns2, "10.0.0.4", count=2), "VLAN 20 reached VLAN 30"
    assert not ping(ns4, "10.0.0.1", count=2), "VLAN 30 reached the trunk's VLAN 20"

    table10 = s.ctl("ofctl/dump-flows", "br0", "table=10")
    trunk_mac = _mac(ns1, f"do{tag}1")
    for vlan, mac, port in ((20, trunk_mac, 1), (30, trunk_mac, 1), (20, _mac(ns2, f"do{tag}2"), 2),
                            (30, _mac(ns3, f"do{tag}3"), 3), (30, _mac(ns4, f"do{tag}4"), 4)):
        assert dumped(vlan, mac, port).split(", ", 1)[1] in table10, (vlan, mac, port, table10)

    # p3 and p4 know each other: their unicast is not flooded to the trunk (nor to p2).
    tx = {p: c["tx"] for p, c in port_counters("OpenFlow10", s.tcp).items()}
    assert ping(ns3, "10.0.0.4", count=10)
    tx2 = {p: c["tx"] for p, c in port_counters("OpenFlow10", s.tcp).items()}
    assert tx2[4] - tx[4] >= 10
    assert tx2[1] - tx[1] < 10 and tx2[2] - tx[2] < 10, (tx, tx2)
