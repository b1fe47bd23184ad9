"""Prometheus metrics: what a scrape of ``metrics.listen`` shows, checked by prometheus-client's
own parser, by ``promtool check metrics`` (Debian's prometheus package), and by a real
Prometheus server scraping ``dpdkswitch run`` while hosts send traffic across it."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from dpdkswitch.config import PortConfig, loads
from dpdkswitch.metrics import Metrics
from dpdkswitch.ofproto.pipeline import PortEntry
from dpdkswitch.switch import Bridge, Port, Switch

from frames import udp_frame
from test_run import default_config, wait_started

CONFIG = """\
metrics: {listen: "127.0.0.1:9101"}
bridges:
  br0:
    datapath: {pmd_cores: []}
    ports:
      idle: {device: "net_null_met%(tag)s,no-rx=1", ofport: 9}
    flows: ["in_port=1,actions=output:2"]
"""


def host_port(br: Bridge, name: str, ofport: int) -> int:
    """A ring-backed test port on BR; its datapath port."""
    dp_port = br.backer.free_dp_port()
    br.dp.add_test_port(dp_port, f"met{os.getpid() % 100000}{name}")
    pc = PortConfig(name=name, device="", ofport=ofport)
    br.ports[name] = Port(name, ofport, dp_port, pc, br.dp.port_info(dp_port))
    br.pipeline.set_port(PortEntry(ofport, name, dp_port, vlan=Bridge._vlan(pc)))
    return dp_port


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        return r.read().decode()


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, frozenset of labels): value} through prometheus-client's parser."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


@pytest.fixture
def metered(eal):
    """An in-process switch (manual clock, no PMD) with two ring ports and its metrics endpoint
    on a free port; yields (switch, bridge, metrics, p1, p2)."""
    sw = Switch(loads(CONFIG % {"tag": os.getpid() % 100000}, "metrics.yaml"), manual_clock=True)
    sw.start()
    br = sw.bridge("br0")
    p1, p2 = host_port(br, "h1", 1), host_port(br, "h2", 2)
    assert sw.config.metrics_listen == "127.0.0.1:9101"
    m = Metrics(sw, "127.0.0.1:0")            # any free port: tests run side by side
    m.start()
    try:
        yield sw, br, m, p1, p2
    finally:
        m.stop()
        sw.stop()


@pytest.mark.dpdk
def test_scrape_shows_the_traffic_sent(metered):
    sw, br, m, p1, p2 = metered
    n = 300
    frames = [udp_frame(i % 3) for i in range(n)]   # 3 flows: 3 misses, 3 megaflows (exact on in_port)
    sent = 0
    for i in range(0, n, 30):
        sent += br.dp.inject(p1, frames[i:i + 30])
        br.dp.poll(4)
        br.upcalls.handle()
    br.dp.poll(4)
    assert sent == n and len(br.dp.drain(p2)) == n
    br.backer.revalidator.run()
    br.backer.revalidator.run()
    m.refresh()                      # the control thread's snapshot (no loop here: taken by hand)
    url = f"http://127.0.0.1:{m.bound_port}/metrics"
    s = samples(scrape(url))
    port = lambda name: frozenset({"bridge": "br0", "port": name}.items())
    assert s["dpdkswitch_port_rx_packets_total", port("h1")] == n
    for name, dp_port in (("h1", p1), ("h2", p2)):     # every counter as dpif/show reads it (net_ring
        c = br.dp.port_stats(dp_port)                   # counts no bytes: the tap test below does)
        for d in ("rx", "tx"):
            for k in ("packets", "bytes", "errors"):
                assert s[f"dpdkswitch_port_{d}_{k}_total", port(name)] == c[f"{d}_{k}"]
    assert s["dpdkswitch_port_tx_packets_total", port("h2")] == n
    assert s["dpdkswitch_port_tx_packets_total", port("h1")] == 0
    assert s["dpdkswitch_port_rx_packets_total", port("idle")] == 0
    assert s["dpdkswitch_port_tx_dropped_total", port("h2")] == 0
    main = frozenset({"bridge": "br0", "pmd": "main"}.items())
    assert s["dpdkswitch_pmd_rx_packets_total", main] == n
    pmd = br.dp.pmd_stats()[-1]
    assert s["dpdkswitch_pmd_misses_total", main] == pmd["misses"] >= 1
    hits = sum(s[f"dpdkswitch_pmd_{t}_hits_total", main] for t in ("simple", "emc", "megaflow"))
    assert hits + s["dpdkswitch_pmd_misses_total", main] == n
    assert s["dpdkswitch_pmd_lost_upcalls_total", main] == 0
    b = frozenset({"bridge": "br0"}.items())
    assert s["dpdkswitch_upcalls_total", b] == br.upcalls.stats.upcalls >= 1
    assert s["dpdkswitch_datapath_flows", b] == br.dp.flow_count() >= 1
    assert s["dpdkswitch_bridge_rules", b] == 1
    assert s["dpdkswitch_bridge_lookup_misses_total", b] == br.pipeline.n_missed
    passes = s["dpdkswitch_revalidator_pass_seconds_count", b]
    assert passes >= 2                # the start-up pass and the two above
    assert s["dpdkswitch_revalidator_pass_seconds_bucket", b | {("le", "+Inf")}] == passes
    # Only low-cardinality labels.
    for fam in text_string_to_metric_families(scrape(url)):
        for smp in fam.samples:
            assert set(smp.labels) <= {"bridge", "port", "pmd", "le"}, smp


@pytest.mark.dpdk
def test_scrape_without_an_answer_from_the_control_thread_serves_the_last_snapshot(metered, monkeypatch):
    import asyncio

    sw, br, m, p1, p2 = metered
    br.dp.inject(p1, [udp_frame(1)] * 5)
    br.dp.poll(4)
    m.refresh()
    loop = asyncio.new_event_loop()          # a loop nobody runs: the control thread never answers
    monkeypatch.setattr("dpdkswitch.metrics.FRESH_WAIT_S", 0.2)
    m.loop = loop
    try:
        t0 = time.monotonic()
        s = samples(scrape(f"http://127.0.0.1:{m.bound_port}/metrics"))
        assert time.monotonic() - t0 < 5
        assert s["dpdkswitch_port_rx_packets_total", frozenset({"bridge": "br0", "port": "h1"}.items())] == 5
    finally:
        loop.close()


@pytest.mark.dpdk
@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian's prometheus) not installed")
def test_promtool_check_metrics_passes(metered, tmp_path):
    sw, br, m, p1, p2 = metered
    br.dp.inject(p1, [udp_frame(i) for i in range(10)])
    br.dp.poll(4)
    br.upcalls.handle()
    br.backer.revalidator.run()
    m.refresh()
    text = scrape(f"http://127.0.0.1:{m.bound_port}/metrics")
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r.stdout + r.stderr


def test_metrics_listen_is_checked_with_its_line():
    from dpdkswitch.config import ConfigError
    for bad in ('"127.0.0.1"', '"localhost:9101"', '"127.0.0.1:70000"', '{}'):
        text = CONFIG.replace('{listen: "127.0.0.1:9101"}', bad if bad == "{}" else f"{{listen: {bad}}}")
        with pytest.raises(ConfigError) as e:
            loads(text % {"tag": 0}, "m.yaml")
        assert str(e.value).startswith("m.yaml:1: ") and "listen" in str(e.value)
    assert loads(CONFIG.replace("127.0.0.1:9101", "[::1]:9101") % {"tag": 0}, "m.yaml").metrics_listen == "[::1]:9101"
    assert loads("bridges: {br0: {ports: {p: {device: net_null0, ofport: 1}}}}", "m.yaml").metrics_listen is None


# ---------------------------------------------------------------- a real Prometheus server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prom_query(base: str, q: str) -> list:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


SENDER = """
import socket, sys, time
n, rate, dst = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
t0 = time.monotonic()
for i in range(n):
    wait = t0 + i / rate - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    s.sendto(b"x" * 64, (dst, 9999))
print(time.monotonic() - t0)
"""


@pytest.mark.netns
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
@pytest.mark.skipif(not shutil.which("prometheus"), reason="Debian's prometheus not installed")
def test_prometheus_scrapes_the_switch_and_its_rate_matches_the_traffic(tmp_path):
    mport, pport = free_port(), free_port()
    path, sock, hosts = default_config(tmp_path, None)      # a PMD thread on core 1, as `make run`
    cfg = yaml.safe_load(path.read_text())
    cfg["metrics"] = {"listen": f"127.0.0.1:{mport}"}
    path.write_text(yaml.safe_dump(cfg))
    (tmp_path / "prom.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "dpdkswitch", "static_configs": [{"targets": [f"127.0.0.1:{mport}"]}]}]}))
    log = open(tmp_path / "switch.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "dpdkswitch", "run", str(path), "--no-top"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    prom = None
    try:
        wait_started(proc, sock, tmp_path / "switch.log")
        assert f"metrics: http://127.0.0.1:{mport}/metrics" in (tmp_path / "switch.log").read_text()
        prom = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prom.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{pport}"],
                                stdout=open(tmp_path / "prom.log", "w"), stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{pport}"
        series = 'dpdkswitch_port_rx_packets_total{bridge="br0",port="p1"}'
        deadline = time.monotonic() + 60
        while True:                      # until Prometheus has scraped the switch
            try:
                if prom_query(base, series):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and prom.poll() is None, (tmp_path / "prom.log").read_text()
            time.sleep(0.5)
        (h1, _), (_, a2) = hosts["p1"], hosts["p2"]
        subprocess.run(["ip", "netns", "exec", h1, "ping", "-c", "1", "-W", "2", a2], capture_output=True)
        time.sleep(3)                    # the ping and its ARP scraped, then quiet
        before = float(prom_query(base, series)[0]["value"][1])
        n, rate = 2000, 200.0
        r = subprocess.run(["ip", "netns", "exec", h1, sys.executable, "-c", SENDER, str(n), str(rate), a2],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        took = float(r.stdout)
        # The rate over the last 5 s of sending, as Prometheus computes it, against the sender's.
        got = float(prom_query(base, f"rate({series}[5s])")[0]["value"][1])
        assert abs(got - n / took) <= 0.2 * n / took, (got, n / took)
        time.sleep(3)                    # every frame scraped
        after = float(prom_query(base, series)[0]["value"][1])
        assert n <= after - before <= n + 10, (before, after)   # a stray ARP or ND frame at most
        inc = float(prom_query(base, f"increase({series}[1m])")[0]["value"][1])
        assert inc >= 0.9 * n
    finally:
        if prom is not None:
            prom.terminate()
            prom.wait(timeout=30)
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.dpdk
def test_protocol_states_are_gauges_per_port(eal):
    """The spanning tree's port states as a gauge per port: listening while the forward delay
    runs, forwarding after it (a root bridge alone); ports without STP have no series."""
    from test_special import STP_BRIDGE, Clock
    from test_special import host_port as special_port

    sw = Switch(loads(STP_BRIDGE, "stp.yaml"), manual_clock=True)
    sw.start()
    m = Metrics(sw, "127.0.0.1:0")
    m.start()
    try:
        br = sw.bridges["br0"]
        for n in (1, 2, 3):
            special_port(br, f"p{n}", n)
            br.join_stp(br.by_ofport(n))
        clock = Clock(br)
        url = f"http://127.0.0.1:{m.bound_port}/metrics"
        port = lambda name: frozenset({"bridge": "br0", "port": name}.items())

        def states():
            m.refresh()
            s = samples(scrape(url))
            return {k: v for (name, k), v in s.items() if name == "dpdkswitch_stp_port_state"}
        clock.run(1)
        assert states() == {port(f"p{n}"): 2 for n in (1, 2, 3)}        # listening
        assert {br.stp.state(n) for n in (1, 2, 3)} == {"listening"}
        clock.run(2 * 4 + 1)                                             # 2 × forward delay
        assert states() == {port(f"p{n}"): 4 for n in (1, 2, 3)}        # forwarding
        text = scrape(url)
        assert "# TYPE dpdkswitch_bfd_session_state gauge" in text and "dpdkswitch_bfd_session_state{" not in text
    finally:
        m.stop()
        sw.stop()
