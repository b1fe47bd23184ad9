"""OpenFlow with a real client: ``ovs-ofctl`` (OpenFlow 1.3 and its default 1.0) programs and
reads a running ``dpdkswitch run`` over TCP and over the bridge's ``br0.mgmt`` unix socket.

One switch for the module: bridge br0 in fail mode ``secure`` (so it starts with no rule at all)
with two tap ports whose far ends are namespaces h1 (10.0.0.1) and h2 (10.0.0.2), polled by the
control thread.  The helpers here (``start_switch``, ``ofctl``, ``free_port``) serve the other
OpenFlow test modules too.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

from dpdkswitch.control import CommandError, call

pytestmark = [pytest.mark.netns, pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not os.path.exists("/usr/bin/ovs-ofctl"), reason="needs ovs-ofctl")]

OFCTL = "/usr/bin/ovs-ofctl"
VERSIONS = ["OpenFlow13", "OpenFlow10"]
DPID = "0x00000000cafef00d"          # the module switch's openflow.datapath_id


# --- helpers shared by the OpenFlow test modules --------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Switch:
    def __init__(self, proc, sock, log, listen_port, mgmt, hosts):
        self.proc, self.sock, self.log, self.port, self.mgmt, self.hosts = proc, sock, log, listen_port, mgmt, hosts

    @property
    def tcp(self) -> str:
        return f"tcp:127.0.0.1:{self.port}"

    def ctl(self, *args) -> str:
        return call(self.sock, args[0], list(args[1:]))

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.log.read_text()


def start_switch(tmp_path, tag: str, bridge: dict, taps: int = 2, extra_ports: dict | None = None) -> Switch:
    """``dpdkswitch run`` on bridge br0 = BRIDGE (its openflow/flows keys) plus TAPS tap ports
    p1.. in namespaces dof-TAG-N (10.0.0.N/24), no PMD thread, a private control socket and a
    ptcp listener on a free port."""
    port = free_port()
    ports, hosts = {}, {}
    for i in range(1, taps + 1):
        ns = f"dof-{tag}-{i}"
        ports[f"p{i}"] = {"device": f"net_tap_{tag}{i},iface=do{tag}{i}", "ofport": i,
                          "netns": {"name": ns, "address": f"10.0.0.{i}/24"}}
        hosts[f"p{i}"] = (ns, f"10.0.0.{i}")
    ports.update(extra_ports or {})
    br = {"datapath": {"pmd_cores": []}, "ports": ports, **bridge}
    br.setdefault("openflow", {})
    br["openflow"] = {"listen": [f"ptcp:{port}:127.0.0.1"], **br["openflow"]}
    sock = str(tmp_path / "ctl.sock")
    cfg = {"dpdk": {"cores": sorted(os.sched_getaffinity(0))[:2]}, "control": {"socket": sock},
           "bridges": {"br0": br}}
    path = tmp_path / "switch.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log = tmp_path / "switch.log"
    proc = subprocess.Popen([sys.executable, "-m", "dpdkswitch", "run", str(path), "--no-top"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while True:
        try:
            call(sock, "version")
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except (ConnectionError, FileNotFoundError, OSError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("switch did not start:\n" + log.read_text())
            time.sleep(0.2)
    return Switch(proc, sock, log, port, str(tmp_path / "br0.mgmt"), hosts)


def ofctl(version: str, *args, check: bool = True, timeout: float = 60) -> str:
    r = subprocess.run([OFCTL, "-O", version, *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, f"ovs-ofctl {' '.join(args)}: {r.stderr}"
    return r.stdout + r.stderr


def flows(version: str, target: str, *match) -> list[str]:
    """dump-flows lines, without their reply header."""
    out = ofctl(version, "dump-flows", target, *match)
    return [ln.strip() for ln in out.splitlines() if ln.startswith(" cookie=")]


def ping(ns: str, ip: str, count: int = 2, wait: int = 1) -> bool:
    r = subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", str(count), "-i", "0.2", "-W", str(wait), ip],
                       capture_output=True, text=True, timeout=30)
    return r.returncode == 0


def port_counters(version: str, target: str) -> dict[int, dict[str, int]]:
    """{port: {'rx': packets, 'tx': packets}} from dump-ports."""
    out = ofctl(version, "dump-ports", target)
    got, port = {}, None
    for ln in out.splitlines():
        m = re.match(r"\s+port\s+(\d+): rx pkts=(\d+)", ln)
        if m:
            port = int(m.group(1))
            got[port] = {"rx": int(m.group(2))}
        m = re.match(r"\s+tx pkts=(\d+)", ln)
        if m and port is not None:
            got[port]["tx"] = int(m.group(1))
    return got


# --- the module's switch --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sw(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ofctl")
    s = start_switch(tmp, f"{os.getpid() % 10000}c", {"openflow": {"fail_mode": "secure", "datapath_id": DPID}})
    yield s
    log = s.stop()
    assert s.proc.returncode == 0, log


def targets(sw):
    return {"tcp": sw.tcp, "unix": f"unix:{sw.mgmt}"}


def test_secure_mode_adds_nothing_until_ovs_ofctl_does(sw):
    (h1, _), (_, ip2) = sw.hosts["p1"], sw.hosts["p2"]
    for v in VERSIONS:
        assert flows(v, sw.tcp) == []
    assert not ping(h1, ip2, count=1)
    ofctl("OpenFlow13", "add-flow", sw.tcp, "priority=10,in_port=1,actions=output:2")
    ofctl("OpenFlow10", "add-flow", f"unix:{sw.mgmt}", "priority=10,in_port=2,actions=output:1")
    assert ping(h1, ip2)
    got = flows("OpenFlow13", sw.tcp)
    assert len(got) == 2 and all(int(re.search(r"n_packets=(\d+)", ln).group(1)) >= 2 for ln in got), got
    ofctl("OpenFlow13", "del-flows", sw.tcp)
    assert flows("OpenFlow13", sw.tcp) == []
    assert not ping(h1, ip2, count=1)


@pytest.mark.parametrize("via", ["tcp", "unix"])
@pytest.mark.parametrize("version", VERSIONS)
def test_flow_commands(sw, version, via):
    t = targets(sw)[via]
    ofctl(version, "del-flows", t)
    ofctl(version, "add-flow", t, "priority=100,ip,nw_dst=10.1.0.1,actions=output:2")
    ofctl(version, "add-flow", t, "priority=90,tcp,tp_dst=80,actions=output:1")
    ofctl(version, "add-flow", t, "cookie=0x5,priority=80,in_port=2,dl_src=02:00:00:00:00:01,actions=drop")
    got = flows(version, t)
    assert len(got) == 3, got
    assert re.search(r"priority=100,ip,nw_dst=10\.1\.0\.1 actions=output:2$", got[0]), got
    assert re.search(r"priority=90,tcp,tp_dst=80 actions=output:1$", got[1]), got
    assert got[2].startswith("cookie=0x5,") and got[2].endswith("in_port=2,dl_src=02:00:00:00:00:01 actions=drop")

    ofctl(version, "mod-flows", t, "ip,nw_dst=10.1.0.1,actions=output:1")
    assert flows(version, t, "ip,nw_dst=10.1.0.1")[0].endswith("actions=output:1")
    ofctl(version, "--strict", "mod-flows", t, "priority=90,tcp,tp_dst=80,actions=drop")
    assert flows(version, t, "tcp")[0].endswith("actions=drop")

    agg = ofctl(version, "dump-aggregate", t)
    assert "flow_count=3" in agg, agg
    tables = ofctl(version, "dump-tables", t)
    assert re.search(r"table 0.*:\s*\n\s*active=3, lookup=\d+, matched=\d+", tables), tables

    ofctl(version, "del-flows", t, "tcp")
    assert len(flows(version, t)) == 2
    ofctl(version, "--strict", "del-flows", t, "priority=100,ip,nw_dst=10.1.0.1")
    assert len(flows(version, t)) == 1
    ofctl(version, "del-flows", t)
    assert flows(version, t) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_add_flows_file(sw, version, tmp_path):
    f = tmp_path / "flows.txt"
    f.write_text("".join(f"table=0,priority=50,udp,nw_dst=10.2.{i >> 8}.{i & 255},tp_dst={i % 1000},"
                         f"actions=output:{1 + i % 2}\n" for i in range(2000)))
    ofctl(version, "add-flows", sw.tcp, str(f))
    assert "flow_count=2000" in ofctl(version, "dump-aggregate", sw.tcp, "udp")
    got = flows(version, sw.tcp, "udp,nw_dst=10.2.3.7")
    assert len(got) == 1 and got[0].endswith("udp,nw_dst=10.2.3.7,tp_dst=775 actions=output:2"), got
    assert len(flows(version, sw.tcp)) == 2000
    ofctl(version, "del-flows", sw.tcp)


@pytest.mark.parametrize("version", VERSIONS)
def test_show_ports_and_packet_out(sw, version):
    show = ofctl(version, "show", sw.tcp)
    assert re.search(r"dpid:[0-9a-f]{16}", show) and "n_tables:255" in show, show
    for n in (1, 2):
        assert re.search(rf"^ {n}\(p{n}\): addr:[0-9a-f:]{{17}}$", show, re.M), show
    desc = ofctl(version, "dump-ports-desc", sw.tcp)
    assert " 1(p1): addr:" in desc and " 2(p2): addr:" in desc, desc
    before = port_counters(version, sw.tcp)
    assert set(before) == {1, 2}
    one = port_counters(version, sw.tcp)
    assert port_counters(version, f"unix:{sw.mgmt}").keys() == one.keys()
    if version == "OpenFlow13":
        assert "duration=" in ofctl(version, "dump-ports", sw.tcp, "2")
    frame = "ffffffffffff02000000000108060001080006040001020000000001" "0a0000010000000000000a000002"
    ofctl(version, "packet-out", sw.tcp, f"in_port=1,packet={frame},actions=output:2")
    ofctl(version, "packet-out", sw.tcp, f"in_port=controller,packet={frame},actions=output:2")
    deadline = time.monotonic() + 5
    while port_counters(version, sw.tcp)[2]["tx"] < before[2]["tx"] + 2:
        assert time.monotonic() < deadline, (before, port_counters(version, sw.tcp))
        time.sleep(0.1)
    # Errors come back as errors; a packet-out to a port that does not exist is refused.
    out = ofctl(version, "packet-out", sw.tcp, f"in_port=77,packet={frame},actions=output:2", check=False)
    # (OpenFlow 1.0 has no BAD_PORT code: the nearest is EPERM)
    assert ("OFPBRC_BAD_PORT" if version == "OpenFlow13" else "OFPBRC_EPERM") in out, out


@pytest.mark.parametrize("via", ["tcp", "unix"])
@pytest.mark.parametrize("version", VERSIONS)
def test_show_gives_the_configured_datapath_id(sw, version, via):
    show = ofctl(version, "show", targets(sw)[via])
    assert re.search(r"dpid:00000000cafef00d$", show.splitlines()[0]), show
    assert "  dpid:00000000cafef00d\n" in sw.ctl("dpif/show")
    mine = sw.ctl("ofproto/show", "br0")
    assert mine.startswith("br0: dpid:00000000cafef00d (openflow.datapath_id)\nn_tables:255"), mine
    for n in (1, 2):                                   # the ports by OpenFlow number, as ovs-ofctl has them
        addr = re.search(rf"^ {n}\(p{n}\): addr:([0-9a-f:]{{17}})$", show, re.M).group(1)
        assert f"\n {n}(p{n}): addr:{addr}\n" in mine, mine
    assert "fail_mode: secure\n" in mine, mine
    with pytest.raises(CommandError, match="no bridge br9"):
        sw.ctl("ofproto/show", "br9")
    commands = sw.ctl("list-commands")
    assert "ofproto/show BRIDGE " in commands and "ofproto/list-controllers [BRIDGE] " in commands, commands


def test_list_controllers_shows_the_listeners_connections(sw, tmp_path):
    """A listener's row lists the connections made to it (ovs-ofctl monitor stays connected)."""
    # The previous test's ovs-ofctl connections may still be listed for a loop turn or two after
    # it exited (a control request can be served in the turn that reads their end): let them go.
    deadline = time.monotonic() + 10
    while "connection:" in (idle := sw.ctl("ofproto/list-controllers", "br0")):
        assert time.monotonic() < deadline, idle
        time.sleep(0.05)
    assert f"  listener ptcp:{sw.port}:127.0.0.1: listening=true port={sw.port}\n" in idle, idle
    assert f"  listener punix:{sw.mgmt}: listening=true\n" in idle, idle
    assert "connection:" not in idle and "controller" not in idle, idle
    mon = subprocess.Popen([OFCTL, "-O", "OpenFlow13", f"--unixctl={tmp_path}/mon.ctl", "monitor", sw.tcp],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while "connection:" not in (got := sw.ctl("ofproto/list-controllers")):
            assert time.monotonic() < deadline and mon.poll() is None, got
            time.sleep(0.1)
        lines = got.splitlines()
        i = lines.index(f"  listener ptcp:{sw.port}:127.0.0.1: listening=true port={sw.port}")
        conn = lines[i + 1]
        assert re.fullmatch(r"    connection: peer=127\.0\.0\.1:\d+ version=OpenFlow13 role=other "
                            r"sec_since_connect=\d+ messages_in=[1-9]\d* messages_out=[1-9]\d* errors_sent=\d+ "
                            r"packet_ins_dropped=0", conn), got
    finally:
        mon.terminate()
        mon.wait()
    deadline = time.monotonic() + 10
    while "connection:" in (got := sw.ctl("ofproto/list-controllers", "br0")):
        assert time.monotonic() < deadline, got
        time.sleep(0.1)


def test_groups(sw):
    v, t = "OpenFlow13", sw.tcp
    ofctl(v, "add-group", t, "group_id=1,type=all,bucket=output:1,bucket=output:2")
    ofctl(v, "add-group", t, "group_id=2,type=select,bucket=weight:10,output:1,bucket=weight:20,output:2")
    dump = ofctl(v, "dump-groups", t)
    assert "group_id=1,type=all,bucket=actions=output:1,bucket=actions=output:2" in dump, dump
    assert "group_id=2,type=select,bucket=weight:10,actions=output:1,bucket=weight:20,actions=output:2" in dump
    out = ofctl(v, "add-group", t, "group_id=1,type=all,bucket=output:1", check=False)
    assert "OFPGMFC_GROUP_EXISTS" in out, out
    ofctl(v, "add-flow", t, "priority=5,in_port=1,actions=group:1")
    assert "ref_count=1" in ofctl(v, "dump-group-stats", t, "group_id=1")
    out = ofctl(v, "add-flow", t, "priority=5,in_port=2,actions=group:9", check=False)
    assert "OFPBAC_BAD_OUT_GROUP" in out, out
    ofctl(v, "del-groups", t, "group_id=1")
    assert flows(v, t) == []                     # the rule that used it went with it
    ofctl(v, "del-groups", t)
    assert "group_id" not in ofctl(v, "dump-groups", t)
    # Meters: programmed into the datapath, reported back.
    ofctl(v, "add-meter", t, "meter=3,pktps,burst,band=type=drop,rate=100,burst_size=10")
    assert "meter=3 pktps burst bands=\ntype=drop rate=100 burst_size=10" in ofctl(v, "dump-meters", t)
    ofctl(v, "add-flow", t, "priority=5,in_port=1,actions=meter:3,output:2")
    assert "flow_count:1" in ofctl(v, "meter-stats", t)
    ofctl(v, "del-meters", t)
    assert flows(v, t) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_monitor_shows_packet_ins(sw, version, tmp_path):
    (h1, _), (_, ip2) = sw.hosts["p1"], sw.hosts["p2"]
    ofctl(version, "del-flows", sw.tcp)
    ofctl(version, "add-flow", sw.tcp, "priority=200,in_port=1,arp,actions=controller")
    out = open(tmp_path / "monitor.txt", "w+")
    mon = subprocess.Popen([OFCTL, "-O", version, f"--unixctl={tmp_path}/mon.ctl", "monitor", sw.tcp, "65534"],
                           stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        text = ""
        while "PACKET_IN" not in text:             # NXT_PACKET_IN2: ovs-ofctl asks for it first, as of OVS
            assert time.monotonic() < deadline and mon.poll() is None, text
            subprocess.run(["ip", "-n", h1, "neigh", "flush", "all"], capture_output=True)
            ping(h1, ip2, count=1, wait=1)         # its ARP request hits the controller rule
            text = (tmp_path / "monitor.txt").read_text()
    finally:
        mon.terminate()
        mon.wait()
    pi = text[text.index("NXT_PACKET_IN2"):]
    assert re.search(r"in_port=1 \(via (action|no_match)\) data_len=\d+", pi), pi
    assert "arp," in pi and "arp_spa=10.0.0.1,arp_tpa=10.0.0.2" in pi, pi
    ofctl(version, "del-flows", sw.tcp)


def test_flow_mod_throughput(sw, tmp_path):
    """ovs-ofctl add-flows sends a barrier after each flow-mod and waits for it: this is the
    round trip rate.  (100,000 flows: about 25-30 s on the reference machine, see the report.)"""
    n = 10000
    f = tmp_path / "many.txt"
    f.write_text("".join(f"table=1,priority=100,ip,nw_dst=10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255},"
                         f"actions=output:2\n" for i in range(n)))
    t0 = time.monotonic()
    ofctl("OpenFlow13", "add-flows", sw.tcp, str(f), timeout=120)
    dt = time.monotonic() - t0
    assert f"flow_count={n}" in ofctl("OpenFlow13", "dump-aggregate", sw.tcp, "table=1")
    print(f"{n} flow-mods via ovs-ofctl add-flows: {dt:.2f} s ({n / dt:.0f}/s)")
    assert dt < 20, f"{n} flows took {dt:.1f} s"
