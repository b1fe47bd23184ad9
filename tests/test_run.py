"""`dpdkswitch run` as a user runs it: the default config, two hosts in namespaces, ping
between them across the DPDK tap ports, the control socket, ports added and removed while it
runs, and a clean stop on SIGTERM."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

from dpdkswitch.control import call

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = [pytest.mark.netns, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def netns_list() -> list[str]:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()


def iface_of(ns: str) -> str:
    out = subprocess.run(["ip", "-n", ns, "-o", "link", "show"], capture_output=True, text=True).stdout
    return next(line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if "LOOPBACK" not in line)


def ctl(sock, *args):
    return call(sock, args[0], list(args[1:]))


def wait_started(proc, sock, log_path, timeout: float = 60) -> None:
    """Until the switch PROC answers on its control socket SOCK; its log in the error if it
    stops or does not answer in TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ctl(sock, "version")
            return
        except (ConnectionError, FileNotFoundError, OSError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("switch did not start:\n" + log_path.read_text())
            time.sleep(0.2)


def default_config(tmp_path, pmd_cores, dpdk=None):
    """The default config, renamed so it cannot clash with a switch a person is running (and
    DPDK settings changed as DPDK says), written to TMP_PATH/switch.yaml: its path, its control
    socket and its hosts ({port: (namespace, address)})."""
    cfg = yaml.safe_load(open(os.path.join(ROOT, "configs/default.yaml")))
    cfg["dpdk"].update(dpdk or {})
    tag = f"{os.getpid() % 100000}{'p' if pmd_cores else 'm'}"
    br = cfg["bridges"]["br0"]
    if pmd_cores is not None:
        br["datapath"]["pmd_cores"] = pmd_cores
    hosts = {}
    for i, (name, port) in enumerate(br["ports"].items()):
        port["device"] = f"net_tap_{tag}{i},iface=dt{tag}{i}"
        port["netns"]["name"] = f"dpst-{tag}-{i}"
        hosts[name] = (port["netns"]["name"], port["netns"]["address"].split("/")[0])
    sock = str(tmp_path / "ctl.sock")
    cfg["control"]["socket"] = sock
    path = tmp_path / "switch.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, sock, hosts


def start_switch(tmp_path, pmd_cores, dpdk=None):
    """`dpdkswitch run` on the default config (default_config): the process, its control socket,
    its hosts and its log."""
    path, sock, hosts = default_config(tmp_path, pmd_cores, dpdk)
    log = open(tmp_path / "switch.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "dpdkswitch", "run", str(path), "--no-top"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    wait_started(proc, sock, tmp_path / "switch.log")
    return proc, sock, hosts, tmp_path / "switch.log"


@pytest.mark.parametrize("pmd_cores", [None, []], ids=["pmd-thread", "main-thread-polling"])
def test_default_config_pings_across_the_switch(tmp_path, pmd_cores):
    if pmd_cores is None and os.cpu_count() < 2:
        pytest.skip("the default config's PMD needs a second CPU")
    proc, sock, hosts, log = start_switch(tmp_path, pmd_cores)
    (ns1, _), (ns2, ip2) = hosts["p1"], hosts["p2"]
    try:
        assert ns1 in netns_list() and ns2 in netns_list()
        ping = subprocess.run(["ip", "netns", "exec", ns1, "ping", "-c", "3", "-i", "0.2", "-W", "2", ip2],
                              capture_output=True, text=True, timeout=30)
        assert ping.returncode == 0, ping.stdout + ping.stderr + log.read_text()
        assert " 0% packet loss" in ping.stdout

        assert ctl(sock, "version").startswith("dpdkswitch ")
        show = ctl(sock, "dpif/show")
        for line in show.splitlines():
            if line.strip().startswith("RX packets:"):
                assert int(line.split("RX packets:")[1].split()[0]) >= 3, show
        stats = ctl(sock, "dpif/pmd-stats-show")
        received = int(stats.split("packets received:")[1].split()[0])
        assert received >= 6, stats            # 3 requests + 3 replies, at least
        if pmd_cores is None:
            assert "core_id 1" in stats and "avg processing cycles per packet" in stats

        # Ports come and go while it runs.
        out = ctl(sock, "dpif/add-port", "br0", "p3", f"net_null_rt{os.getpid() % 1000},no-rx=1", "3")
        assert "ofport 3" in out
        show = ctl(sock, "dpif/show")
        assert " p3 3/" in show
        assert show.count("link up") == 3, show   # the taps as their hosts see them, and the null port
        with pytest.raises(Exception, match="ofport 3 is taken"):
            ctl(sock, "dpif/add-port", "br0", "p4", "net_null_other,no-rx=1", "3")
        ctl(sock, "dpif/del-port", "br0", "p3")
        assert " p3 " not in ctl(sock, "dpif/show")
        ping = subprocess.run(["ip", "netns", "exec", ns1, "ping", "-c", "2", "-i", "0.2", "-W", "2", ip2],
                              capture_output=True, text=True, timeout=30)
        assert ping.returncode == 0, ping.stdout

        # A bridge without flows is a learning switch: megaflows match MACs, known MACs go to
        # one port, and the table lists each host's MAC on its port.
        flows = ctl(sock, "dpif/dump-flows")
        assert "in_port=1," in flows and "eth_type=0x800" in flows and "actions:2" in flows, flows
        fdb = ctl(sock, "fdb/show", "br0")
        for port, (ns, _) in ((1, hosts["p1"]), (2, hosts["p2"])):
            mac = subprocess.run(["ip", "netns", "exec", ns, "cat", f"/sys/class/net/{iface_of(ns)}/address"],
                                 capture_output=True, text=True).stdout.strip()
            assert any(line.split()[0] == str(port) and mac in line for line in fdb.splitlines()[1:]), fdb
        assert "ufid:" in ctl(sock, "dpif/dump-flows", "-m")
        assert "emc hits:" in ctl(sock, "dpif/pmd-stats-show")
        trace = ctl(sock, "ofproto/trace", "br0", "in_port=1,icmp,nw_src=10.0.0.1,nw_dst=10.0.0.2")
        assert "Datapath actions: 2" in trace and "NORMAL" in trace and "flooding" in trace, trace
        assert "priority=0 actions=NORMAL" in ctl(sock, "ofctl/dump-flows", "br0")
        ctl(sock, "dpif/disable-megaflows")
        ping = subprocess.run(["ip", "netns", "exec", ns1, "ping", "-c", "2", "-i", "0.2", "-W", "2", ip2],
                              capture_output=True, text=True, timeout=30)
        assert ping.returncode == 0, ping.stdout
        exact = ctl(sock, "dpif/dump-flows")
        assert "icmp_type=8" in exact and "ipv4_src=10.0.0.1" in exact, exact
        ctl(sock, "dpif/enable-megaflows")
        # A rule from the control socket takes effect on cached traffic at once: drop ICMP.
        ctl(sock, "ofctl/add-flow", "br0", "priority=100,icmp,actions=drop")
        ping = subprocess.run(["ip", "netns", "exec", ns1, "ping", "-c", "2", "-i", "0.2", "-W", "1", ip2],
                              capture_output=True, text=True, timeout=30)
        assert ping.returncode != 0
        assert "n_packets=" in ctl(sock, "ofctl/dump-flows", "br0", "icmp")
        ctl(sock, "ofctl/del-flows", "br0", "icmp")
        assert "upcalls:" in ctl(sock, "upcall/show")
        with pytest.raises(Exception, match="unknown command"):
            ctl(sock, "no/such-command")
        assert "dpif/pmd-stats-show" in ctl(sock, "list-commands")
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
    assert rc == 0, log.read_text()
    assert ns1 not in netns_list() and ns2 not in netns_list()
    assert not os.path.exists(sock)


def test_bad_config_is_one_line_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("bridges:\n  br0:\n    ports:\n      p1: {device: 'net_bogus0', ofport: 1}\n")
    r = subprocess.run([sys.executable, "-m", "dpdkswitch", "run", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{bad}:4:" in lines[0] and "net_bogus0" in lines[0], r.stderr


def test_ctl_without_a_switch_says_so(tmp_path):
    r = subprocess.run([sys.executable, "-m", "dpdkswitch", "ctl", "-s", str(tmp_path / "none.sock"), "version"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "cannot reach the switch" in r.stderr


def test_device_that_fails_to_probe_names_its_line(tmp_path):
    bad = tmp_path / "probe.yaml"
    bad.write_text("bridges:\n  br0:\n    datapath: {pmd_cores: []}\n    ports:\n"
                   f"      p1: {{device: 'net_pcap_np,rx_pcap={tmp_path}/missing.pcap', ofport: 1}}\n")
    r = subprocess.run([sys.executable, "-m", "dpdkswitch", "run", str(bad), "--no-top"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"dpdkswitch: {bad}:5: port p1:") and "cannot probe" in last, r.stderr


def test_run_refuses_what_check_refuses_with_the_same_line_before_eal(tmp_path):
    bad = tmp_path / "group.yaml"
    bad.write_text("dpdk: {cores: [0]}\nbridges:\n  br0:\n    datapath: {pmd_cores: []}\n"
                   "    ports:\n      p1: {device: net_null_rg0, ofport: 1}\n"
                   "    flows: ['priority=1,actions=group:5']\n")
    check = subprocess.run([sys.executable, "-m", "dpdkswitch", "check", str(bad)], capture_output=True, text=True)
    run = subprocess.run([sys.executable, "-m", "dpdkswitch", "run", str(bad), "--no-top"], capture_output=True,
                         text=True, timeout=60)
    assert check.returncode == run.returncode == 2
    assert check.stderr == run.stderr == f"dpdkswitch: {bad}:7: flow 'priority=1,actions=group:5': group 5 does not exist\n"
    assert run.stdout == ""                     # no banner, no EAL: it stopped before starting anything


def run_and_stop(tmp_path, pmd_cores=None, dpdk=None) -> tuple[str, str]:
    """Start the default config, stop it with SIGTERM; its control socket and everything it
    printed (stdout and stderr)."""
    proc, sock, _, log = start_switch(tmp_path, pmd_cores, dpdk)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log.read_text()
    return sock, log.read_text()


def test_start_prints_no_failure_and_says_what_runs(tmp_path):
    """A start that works reads like one: no line of DPDK's or ours says error or failed, and
    the banner says what a user needs to know: bridges, ports and their links, the control
    socket, where the memory came from."""
    if os.cpu_count() < 2:
        pytest.skip("the default config's PMD needs a second CPU")
    sock, out = run_and_stop(tmp_path)
    bad = [line for line in out.splitlines() if re.search(r"error|failed|= -1", line, re.I)]
    assert not bad, out
    assert "bridge br0:" in out, out
    for port, ofport in (("p1", 1), ("p2", 2)):
        assert re.search(rf"^  port {port} \(ofport {ofport}\): .*net_tap.*, link up", out, re.M), out
    assert f"control socket: {sock}" in out, out
    assert re.search(r"^memory: (\d+ MB hugepages|no hugepages|hugepages: off)", out, re.M), out


def test_dpdk_log_level_debug_shows_dpdks_lines_through_our_log(tmp_path):
    sock, out = run_and_stop(tmp_path, [], {"log_level": "debug"})
    assert re.search(r"^dpdk: EAL: ", out, re.M), out           # EAL's own lines, our prefix
    # the tap driver's known-harmless messages are kept for debug, not deleted
    assert re.search(r"^dpdk: .*(multiq qdisc|req to secondary)", out, re.M), out
    # and the tap ports were configured with equal queues at once, not after a refusal
    assert "must be equal to number of tx queues" not in out and "dev_configure = -1" not in out, out


def test_make_run_on_the_default_config_prints_no_failure(tmp_path):
    """The quick start as the README gives it, `make run` (its setup step included), on the
    default config (renamed: default_config): what it prints, all of it, has no line that says
    error, failed or "= -1"; the hosts ping; `ctl exit` ends it and make with it, cleanly."""
    if os.cpu_count() < 2:
        pytest.skip("the default config's PMD needs a second CPU")
    path, sock, hosts = default_config(tmp_path, None)
    log = tmp_path / "make.log"
    # PYTHON from the environment: setup.sh and the recipe both take this interpreter (whose
    # editable install is this checkout's, so setup.sh builds nothing).
    proc = subprocess.Popen(["make", "-C", ROOT, "run", f"CONFIG={path}"], stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, cwd=tmp_path, env=dict(os.environ, PYTHON=sys.executable))
    try:
        wait_started(proc, sock, log)
        (ns1, _), (_, ip2) = hosts["p1"], hosts["p2"]
        r = subprocess.run(["ip", "netns", "exec", ns1, "ping", "-c", "2", "-i", "0.2", "-W", "2", ip2],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stdout + log.read_text()
        ctl(sock, "exit")
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = log.read_text()
    assert f"dpdkswitch run {path}" in out, out                        # it did run the switch
    bad = [line for line in out.splitlines() if re.search(r"error|failed|= -1", line, re.I)]
    assert not bad, out
