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

from dpdkswitch.bench import compare, exportcost, flowtable, forwarding
from dpdkswitch.bench import scenarios as bench_scenarios
from dpdkswitch.config import online_cpus
from dpdkswitch.datapath.abi import STAGES

from frames import udp_frame, write_pcap

REPO = Path(__file__).resolve().parent.parent
SHARED = bench_scenarios.SHARED_BENCH
needs_shared = pytest.mark.skipif(not (SHARED / "scenarios.yaml").is_file(),
                                  reason=f"the shared benchmark material is not in {SHARED}")


def _load(path: Path, name: str):
    return bench_scenarios._load_module(path, name)


@needs_shared
def test_rules_generate_matches_the_ovs_peer():
    peer = _load(SHARED / "ovs_dpdk_peer.py", "ovs_dpdk_peer_under_test")
    scenarios = bench_scenarios.load_scenarios(SHARED / "scenarios.yaml")
    for name, sc in scenarios.items():
        assert bench_scenarios.rules_for(sc) == peer.rules_for(sc), name
    # beyond 65,535 rules the third octet carries over, as in the peer
    sc = {"rules": ["priority=0,actions=drop"],
          "rules_generate": {"count": 70000, "template": "priority={i},ip,nw_src={ip_src},actions=output:2"}}
    ours = bench_scenarios.rules_for(sc)
    assert ours == peer.rules_for(sc)
    assert ours[0] == "priority=0,actions=drop" and len(ours) == 70001
    assert ours[1 + 65536] == "priority=65536,ip,nw_src=10.1.0.0,actions=output:2"


@needs_shared
def test_generated_rules_match_the_generated_traffic():
    """Rule i of rules_generate names the source address genpcap.py gives frame i."""
    gen = _load(SHARED / "genpcap.py", "genpcap_under_test")
    for i in (0, 1, 255, 256, 65535, 65536, 99999):
        fr = gen.frame(i, ["ip_src"], 64, None)
        assert ".".join(map(str, struct.unpack("!4B", fr[26:30]))) == bench_scenarios.ip_src(i)


def test_medians_and_ratios_with_a_failed_peer():
    scenarios = {"s": {"measure": "forwarding"}, "u": {"measure": "setup"}}
    ok = lambda peer, v, **kw: {"scenario": kw.get("sc", "s"), "peer": peer, "run": 1, "ok": True,
                                "result": {kw.get("metric", "mpps"): v, "cycles_per_packet": 100}}
    runs = [ok("dpdkswitch", 4.0), ok("dpdkswitch", 6.0), ok("dpdkswitch", 5.0),
            ok("testpmd-io", 20.0),
            {"scenario": "s", "peer": "ovs-dpdk", "run": 1, "ok": False, "result": {}, "error": "exit 1: no OVS"},
            ok("dpdkswitch", 1000, sc="u", metric="setups_per_s"), ok("ovs-dpdk", 4000, sc="u", metric="setups_per_s")]
    med = compare.medians(runs, scenarios)
    assert med["s"]["peers"]["dpdkswitch"]["mpps"] == 5.0
    assert med["s"]["ours_over_testpmd"] == 0.25
    assert med["s"]["peers"]["ovs-dpdk"] == {"ok": False, "runs": 1, "error": "exit 1: no OVS"}
    assert "ours_over_ovs" not in med["s"]
    assert med["u"]["metric"] == "setups_per_s" and med["u"]["ours_over_ovs"] == 0.25
    table = compare.format_medians(med)
    assert "FAILED" in table and "0.25" in table
    assert compare._last_json("noise\n{\"mpps\": 1.5}\n") == {"mpps": 1.5}
    assert compare._last_json("no json here") is None


def test_a_peer_that_cannot_run_a_scenario_is_said_so_not_failed():
    # Open vSwitch's peer script exits 2 with an error for bond-tcp-1k (balance-tcp needs LACP
    # negotiated, null members cannot): "not run" and why, no ratio, ours still reported.
    scenarios = {"bond-tcp-1k": {"measure": "forwarding"}}
    why = "Open vSwitch runs balance-tcp only with LACP negotiated; null members cannot negotiate"
    runs = [{"scenario": "bond-tcp-1k", "peer": "dpdkswitch", "run": 1, "ok": True, "result": {"mpps": 7.5}},
            {"scenario": "bond-tcp-1k", "peer": "ovs-dpdk", "run": 1, "ok": False, "rc": 2, "unsupported": True,
             "result": {"error": why}, "error": why}]
    med = compare.medians(runs, scenarios)
    assert med["bond-tcp-1k"]["peers"]["ovs-dpdk"] == {"ok": False, "unsupported": True, "error": why}
    assert med["bond-tcp-1k"]["peers"]["dpdkswitch"]["mpps"] == 7.5
    assert "ours_over_ovs" not in med["bond-tcp-1k"]
    table = compare.format_medians(med)
    assert "not run" in table and "FAILED" not in table
    assert f"bond-tcp-1k: ovs-dpdk does not run it: {why}" in table


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
    for k in forwarding.FORWARDING_KEYS + forwarding.COMMON_KEYS:
        assert k in r, k
    assert r["peer"] == "dpdkswitch" and r["scenario"] == "p2p-1flow" and r["seconds"] == 1
    assert r["mpps"] > 0 and r["packets"] > 0
    hits = r["emc_hits"] + r["megaflow_hits"] + r["simple_match_hits"]
    assert abs(hits - r["packets"]) <= 0.01 * r["packets"] + 64, r
    assert r["miss_ok"] >= 1
    # Cycles by stage, from the sampled iterations: every stage has a figure, none is negative,
    # they add up to the timed iterations' own cycles per frame (the loop's own is "other"), and
    # that is of the order of the whole run's (a unit slip, e.g. per burst, would be 32 times it).
    assert r["stage_sample_every"] == 64 and r["stage_sampled_packets"] > 0
    per = r["stage_cycles_per_packet"]
    assert set(per) == set(STAGES) | {"other"}
    assert all(v >= 0 for v in per.values()), per
    assert abs(sum(per.values()) - r["stage_sampled_cycles_per_packet"]) <= 0.1 * len(per), r
    assert 0 < r["stage_sampled_cycles_per_packet"] < 10 * r["busy_cycles_per_packet"], r
    # One in_port-only flow: the cheap path takes every frame; nothing is parsed or looked up.
    assert per["simple"] > 0 and per["rx"] > 0 and per["tx"] > 0
    assert per["parse"] == per["emc"] == per["masked"] == per["actions"] == per["recirc"] == 0, per


@needs_shared
@pytest.mark.skipif(os.geteuid() != 0, reason="the bench starts DPDK (EAL, vdevs, hugepages): needs root")
@pytest.mark.skipif(len(online_cpus()) < 2, reason="the bench needs 2 CPUs: a control thread and a PMD thread")
def test_bench_with_sflow_and_scraping():
    """--sflow N samples 1-in-N of what the PMD received (the agent made a flow sample of each
    and sent them), on the cheap path still; --scrape-ms scrapes /metrics from another process
    about every MS while the run lasts, every scrape answered."""
    ctl, pmd = sorted(online_cpus())[:2]
    cmd = [sys.executable, "-m", "dpdkswitch", "bench", "p2p-1flow", "--seconds", "1", "--json",
           "--ctl-core", str(ctl), "--pmd-core", str(pmd), "--sflow", "1000", "--scrape-ms", "100"]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["sflow_sampling"] == 1000 and r["sflow_expected"] > 1000, r
    # every sample taken became a flow sample; lost upcalls (ring full on a loaded machine) aside,
    # about 1 in 1000 of the frames received
    assert r["sflow_flow_samples"] == r["sflow_upcalls"] and r["sflow_datagrams"] > 0 and not r["sflow_send_errors"]
    assert r["sflow_upcalls"] <= 1.1 * r["sflow_expected"] + 50
    assert r["sflow_upcalls"] + r["miss_failed"] >= 0.9 * r["sflow_expected"], r
    assert r["simple_match_hits"] >= 0.99 * r["packets"], r        # the leading sample keeps the cheap path
    assert r["scrape_ms"] == 100 and r["scrapes"] >= 10 and r["scrape_failures"] == 0, r   # warm-up 3 s + 1 s


def test_export_cost_summary():
    runs = [{"scenario": "s", "variant": v, "ok": True, "result": {"mpps": m}}
            for v, m in (("plain", 10.0), ("plain", 12.0), ("plain", 11.0), ("sflow 1/1000", 10.45),
                         ("sflow 1/1000", 9.0), ("sflow 1/1000", 11.0))]
    runs.append({"scenario": "s", "variant": "scrape 100 ms", "ok": False, "result": {}})
    med = exportcost.summary(runs)
    assert med["s"]["plain"]["mpps"] == 11.0 and med["s"]["sflow 1/1000"]["of_plain"] == 0.95
    assert med["s"]["scrape 100 ms"]["mpps"] is None and "of_plain" not in med["s"]["scrape 100 ms"]
    text = exportcost.format_summary(med)
    assert "95.0 %" in text and "FAILED" in text
    assert [v for v, _ in exportcost.variants("p2p-1k")] == ["plain", "sflow 1/1000", "scrape 100 ms"]
    assert [v for v, _ in exportcost.variants("normal-1k")] == ["plain", "sflow 1/1000"]


def test_export_cost_summary_per_pmd_cpu_second():
    """The rate over the PMD thread's CPU time has its own medians and ratio: a run that shared
    the PMD's core with another job forwards less per wall second, not per second it ran."""
    runs = [{"scenario": "s", "variant": v, "ok": True, "result": {"mpps": m, "mpps_on_cpu": c}}
            for v, m, c in (("plain", 30.0, 60.0), ("plain", 60.0, 62.0), ("plain", 20.0, 61.0),
                            ("sflow 1/1000", 20.0, 59.0), ("sflow 1/1000", 61.0, 60.0), ("sflow 1/1000", 15.0, 58.0))]
    med = exportcost.summary(runs)
    assert med["s"]["plain"]["mpps_on_cpu"] == 61.0 and med["s"]["sflow 1/1000"]["on_cpu_of_plain"] == 0.9672
    assert "96.7 %" in exportcost.format_summary(med)


def test_thread_cpu_s_reads_a_named_threads_run_time():
    import threading
    stop = threading.Event()
    t = threading.Thread(target=lambda: stop.wait(5), name="cpu-probe")
    t.start()
    try:
        with open(f"/proc/self/task/{t.native_id}/comm", "w") as f:
            f.write("cpu-probe")
        assert forwarding.thread_cpu_s("cpu-probe") is not None
        assert forwarding.thread_cpu_s("no-such-thread") is None
    finally:
        stop.set()
        t.join()


def test_stage_figures_and_their_table():
    d = {"sampled_packets": 64, "sampled_iterations": 2, "sampled_cycles": 6400,
         **{"stage_" + s: 0 for s in STAGES}}
    d.update(stage_rx=1280, stage_parse=1920, stage_emc=640, stage_actions=1600, stage_tx=640)
    f = forwarding.stage_figures(d, 16)
    assert f["stage_cycles_per_packet"] == {**{s: 0.0 for s in STAGES}, "rx": 20.0, "parse": 30.0, "emc": 10.0,
                                            "actions": 25.0, "tx": 10.0, "other": 5.0}
    assert f["stage_sampled_cycles_per_packet"] == 100.0 and f["stage_sample_every"] == 16
    assert forwarding.stage_figures(d, 0) == {"stage_sample_every": 0}                  # off: no figures
    assert forwarding.stage_figures({**d, "sampled_packets": 0}, 16) == {"stage_sample_every": 16}
    r = {"scenario": "s", "mpps": 1.0, "hit_mpps": 1.0, "cycles_per_packet": 120.0, "busy_cycles_per_packet": 110.0,
         "emc_hits": 1, "megaflow_hits": 2, "subtable_lookups_per_hit": 1.0, "miss_ok": 3, "miss_failed": 0,
         "stage_sampled_iterations": 2, "stage_sampled_packets": 64, **f}
    table = forwarding.format_result(r)
    assert "every 16th PMD iteration" in table
    row = next(line for line in table.splitlines() if line.startswith("cycles/frame")).split()
    assert row[1:] == ["0.0", "20.0", "0.0", "30.0", "10.0", "0.0", "25.0", "10.0", "0.0", "5.0", "100.0", "110.0"]


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"),
                    reason="needs root and Open vSwitch with DPDK (make test's set-up installs it)")
def test_flow_mod_throughput_side_by_side():
    r = subprocess.run([sys.executable, "-m", "dpdkswitch", "bench", "--flow-mods", "1000", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads(r.stdout.strip().splitlines()[-1])
    by = {x["peer"]: x for x in d["results"]}
    assert by["dpdkswitch"]["flows"] == 1000 and by["ovs-dpdk"]["flows"] >= 1000
    assert by["dpdkswitch"]["seconds"] > 0 and by["ovs-dpdk"]["seconds"] > 0
    # The pipelined controller's run: the same rules, one barrier, every one in the table on both.
    for peer in ("dpdkswitch", "ovs-dpdk"):
        assert by[peer]["pipelined_flows"] == 1000 and by[peer]["pipelined_seconds"] > 0, by[peer]
    assert d["pipelined_speed_vs_ovs"] > 0
    # The switch processes' CPU time for each way (ticks: a quick run may take none of OVS's).
    assert by["dpdkswitch"]["cpu_s"] > 0 and by["ovs-dpdk"]["cpu_s"] >= 0
    assert by["dpdkswitch"]["pipelined_cpu_s"] >= 0 and by["ovs-dpdk"]["pipelined_cpu_s"] >= 0
    assert d["per_cpu_vs_ovs"] is None or d["per_cpu_vs_ovs"] > 0


@needs_shared
@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"),
                    reason="needs root and Open vSwitch with DPDK (make test's set-up installs it)")
def test_compare_runs_all_three_peers_end_to_end(tmp_path):
    """`bench --compare` as a user runs it (one short run each): this switch, OVS-DPDK and
    testpmd, their medians and ratios in results.json, and the plot."""
    ctl, pmd = sorted(online_cpus())[:2]
    out = tmp_path / "cmp"
    r = subprocess.run([sys.executable, "-m", "dpdkswitch", "bench", "--compare", "p2p-1flow", "--runs", "1",
                        "--seconds", "1", "--out", str(out), "--ctl-core", str(ctl), "--pmd-core", str(pmd)],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    d = json.loads((out / "results.json").read_text())
    m = d["medians"]["p2p-1flow"]
    for peer in ("dpdkswitch", "ovs-dpdk", "testpmd-io"):
        assert m["peers"][peer]["ok"] and m["peers"][peer]["mpps"] > 0, (peer, m)
    assert m["ours_over_ovs"] == pytest.approx(m["peers"]["dpdkswitch"]["mpps"] / m["peers"]["ovs-dpdk"]["mpps"],
                                               rel=0.01)
    assert (out / "results.png").stat().st_size > 1000
    assert "ours/OVS" in r.stdout and "p2p-1flow" in r.stdout


# ---- the flow table at scale: revalidation after a flow-mod, memory per megaflow --------------

@pytest.fixture
def flows_pcap(tmp_path):
    def make(n: int):
        path = tmp_path / f"flows{n}.pcap"
        frames = [udp_frame(i) for i in range(n)]
        assert len({f[26:30] for f in frames}) == n               # n distinct source addresses
        write_pcap(str(path), frames)
        return path
    return make


@pytest.mark.dpdk
def test_revalidation_leaves_every_flow_with_the_new_output(eal, flows_pcap):
    with flowtable.FlowTableBench(500, flows_pcap(500)) as b:
        r = b.revalidation()
        assert b.br.dp.flow_count() == 500 and len(b.br.upcalls.ukeys) == 500
    assert r["verified"] is True, r
    assert r["flows"] == r["flows_after"] == r["modified"] == r["revalidated"] == 500
    assert r["deleted"] == 0 and r["flows_with_old_action"] == 0
    assert r["revalidation_s"] > 0 and r["install_s"] > 0 and r["setups_per_s"] > 0


@pytest.mark.dpdk
def test_revalidation_check_catches_flows_left_behind(eal, flows_pcap):
    """The measurement checks its result: a pass after the flow-mod that changes nothing is
    reported as such, not timed as if it had worked."""
    from dpdkswitch.revalidator import PassReport
    with flowtable.FlowTableBench(200, flows_pcap(200)) as b:
        b.install()
        passes = iter([b.br.revalidator.run, PassReport])     # the unchanged pass, then one doing nothing
        b.br.revalidator.run = lambda: next(passes)()
        r = b.flow_mod_pass()
    assert r["verified"] is False
    assert r["flows_with_old_action"] == 200 and r["flows_after"] == 200 and r["modified"] == 0


@pytest.mark.dpdk
def test_memory_per_megaflow_is_measured_on_both_sides(eal, flows_pcap):
    with flowtable.FlowTableBench(2000, flows_pcap(2000)) as b:
        m = b.memory()
    assert m["flows"] == 2000 and m["key_bytes"] == 120
    assert 24 <= m["dp_heap_per_flow"] < 8192, m            # an action list at least; not pages
    assert m["dp_slot_bytes_outside_heap"] >= 120 + 16 + 4 + 32, m
    assert 0 < m["dp_slot_ufid_index_heap"] < 1024, m
    assert m["dp_reserved_per_slot"] == pytest.approx(m["dp_slot_bytes_outside_heap"] + m["dp_slot_ufid_index_heap"], abs=0.1)
    assert 120 < m["py_per_ukey"] < 64 * 1024, m            # the key and mask bytes at least


@needs_shared
@pytest.mark.skipif(os.geteuid() != 0, reason="the bench starts DPDK (EAL, vdevs, hugepages): needs root")
def test_bench_revalidation_and_memory_json():
    cmd = [sys.executable, "-m", "dpdkswitch", "bench", "--revalidation", "300,1000", "--memory", "500", "--json",
           "--ctl-core", str(sorted(online_cpus())[0])]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    assert len(lines) == 1, p.stdout
    r = json.loads(lines[0])
    assert [x["flows"] for x in r["revalidation"]] == [300, 1000]
    for x in r["revalidation"]:
        assert x["verified"] and x["modified"] == x["flows_after"] == x["flows"] and x["flows_with_old_action"] == 0
    assert r["memory"]["flows"] == 500 and r["memory"]["dp_heap_per_flow"] > 0 and r["memory"]["py_per_ukey"] > 0
    text = flowtable.format_result(r)
    assert "all output:3" in text and "Python heap per ukey" in text
