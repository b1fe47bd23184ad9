"""``dpdkswitch bench``: one short run end to end (as a child process: EAL starts once per
process), and the pieces that must agree with the shared peer runners.  Never a performance
assertion: figures depend on the machine."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from dpdkswitch import bench
from dpdkswitch.config import online_cpus

REPO = Path(__file__).resolve().parent.parent
SHARED = bench.SHARED_BENCH
needs_shared = pytest.mark.skipif(not (SHARED / "scenarios.yaml").is_file(),
                                  reason=f"the shared benchmark material is not in {SHARED}")


def _load(path: Path, name: str):
    return bench._load_module(path, name)


@needs_shared
def test_rules_generate_matches_the_ovs_peer():
    peer = _load(SHARED / "ovs_dpdk_peer.py", "ovs_dpdk_peer_under_test")
    scenarios = bench.load_scenarios(SHARED / "scenarios.yaml")
    for name, sc in scenarios.items():
        assert bench.rules_for(sc) == peer.rules_for(sc), name
    # beyond 65,535 rules the third octet carries over, as in the peer
    sc = {"rules": ["priority=0,actions=drop"],
          "rules_generate": {"count": 70000, "template": "priority={i},ip,nw_src={ip_src},actions=output:2"}}
    ours = bench.rules_for(sc)
    assert ours == peer.rules_for(sc)
    assert ours[0] == "priority=0,actions=drop" and len(ours) == 70001
    assert ours[1 + 65536] == "priority=65536,ip,nw_src=10.1.0.0,actions=output:2"


@needs_shared
def test_generated_rules_match_the_generated_traffic():
    """Rule i of rules_generate names the source address genpcap.py gives frame i."""
    gen = _load(SHARED / "genpcap.py", "genpcap_under_test")
    for i in (0, 1, 255, 256, 65535, 65536, 99999):
        fr = gen.frame(i, ["ip_src"], 64, None)
        assert ".".join(map(str, struct.unpack("!4B", fr[26:30]))) == bench.ip_src(i)


def test_medians_and_ratios_with_a_failed_peer():
    scenarios = {"s": {"measure": "forwarding"}, "u": {"measure": "setup"}}
    ok = lambda peer, v, **kw: {"scenario": kw.get("sc", "s"), "peer": peer, "run": 1, "ok": True,
                                "result": {kw.get("metric", "mpps"): v, "cycles_per_packet": 100}}
    runs = [ok("dpdkswitch", 4.0), ok("dpdkswitch", 6.0), ok("dpdkswitch", 5.0),
            ok("testpmd-io", 20.0),
            {"scenario": "s", "peer": "ovs-dpdk", "run": 1, "ok": False, "result": {}, "error": "exit 1: no OVS"},
            ok("dpdkswitch", 1000, sc="u", metric="setups_per_s"), ok("ovs-dpdk", 4000, sc="u", metric="setups_per_s")]
    med = bench.medians(runs, scenarios)
    assert med["s"]["peers"]["dpdkswitch"]["mpps"] == 5.0
    assert med["s"]["ours_over_testpmd"] == 0.25
    assert med["s"]["peers"]["ovs-dpdk"] == {"ok": False, "runs": 1, "error": "exit 1: no OVS"}
    assert "ours_over_ovs" not in med["s"]
    assert med["u"]["metric"] == "setups_per_s" and med["u"]["ours_over_ovs"] == 0.25
    table = bench.format_medians(med)
    assert "FAILED" in table and "0.25" in table
    assert bench._last_json("noise\n{\"mpps\": 1.5}\n") == {"mpps": 1.5}
    assert bench._last_json("no json here") is None


@needs_shared
@pytest.mark.skipif(os.geteuid() != 0, reason="the bench starts DPDK (EAL, vdevs, hugepages): needs root")
@pytest.mark.skipif(len(online_cpus()) < 2, reason="the bench needs 2 CPUs: a control thread and a PMD thread")
def test_bench_p2p_1flow_json():
    ctl, pmd = sorted(online_cpus())[:2]
    cmd = [sys.executable, "-m", "dpdkswitch", "bench", "p2p-1flow", "--seconds", "1", "--json",
           "--ctl-core", str(ctl), "--pmd-core", str(pmd)]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    assert len(lines) == 1, p.stdout                    # one JSON line, progress stays off with --json
    r = json.loads(lines[0])
    for k in bench.FORWARDING_KEYS + bench.COMMON_KEYS:
        assert k in r, k
    assert r["peer"] == "dpdkswitch" and r["scenario"] == "p2p-1flow" and r["seconds"] == 1
    assert r["mpps"] > 0 and r["packets"] > 0
    hits = r["emc_hits"] + r["megaflow_hits"] + r["simple_match_hits"]
    assert abs(hits - r["packets"]) <= 0.01 * r["packets"] + 64, r
    assert r["miss_ok"] >= 1


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"),
                    reason="needs root and Open vSwitch with DPDK (make test's set-up installs it)")
def test_flow_mod_throughput_side_by_side():
    r = subprocess.run([sys.executable, "-m", "dpdkswitch", "bench", "--flow-mods", "1000", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads(r.stdout.strip().splitlines()[-1])
    by = {x["peer"]: x for x in d["results"]}
    assert by["dpdkswitch"]["flows"] == 1000 and by["ovs-dpdk"]["flows"] >= 1000   # OVS adds its NORMAL rule
    assert by["dpdkswitch"]["seconds"] > 0 and by["ovs-dpdk"]["seconds"] > 0
