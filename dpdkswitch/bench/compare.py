"""``dpdkswitch bench --compare``: this switch beside its peers, interleaved, with medians.

Each scenario runs on this switch (``dpdkswitch bench SCENARIO --json``, forwarding.py), on Open
vSwitch 3.1's DPDK datapath (the shared ``ovs_dpdk_peer.py``) and on testpmd (the shared
``testpmd_limit.sh``, io mode), each run a child process in a session of its own, peers
alternating within each round; it writes the raw runs, the medians and a bar plot.

Main thread only; it costs the runs' time and starts no EAL itself.
"""
from __future__ import annotations

import datetime
import hashlib
import importlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .console import interruptible, table, version
from .forwarding import STAGE_SAMPLE
from .scenarios import CACHE_DIR, REPO_ROOT, BenchError, bench_dir, load_scenarios

PEERS = ("dpdkswitch", "ovs-dpdk", "testpmd-io")
CHILD_TIMEOUT_S = 900      # the first OVS run installs openvswitch-switch-dpdk
UNSUPPORTED_RC = 2          # a peer script's exit status for "this scenario is not for me" (with an error)


def _last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


class Children:
    """Child processes of --compare, each in its own session so Ctrl-C reaches them through us
    and they are all stopped (their process group: testpmd, OVS's daemons' runner)."""

    def __init__(self):
        self.current: subprocess.Popen | None = None

    def run(self, cmd: list[str], timeout: float, cwd: Path, env: dict | None = None) -> tuple[int, str, str, float]:
        t0 = time.monotonic()
        p = self.current = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                            cwd=cwd, env=env, start_new_session=True)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = p.communicate()
            err += f"\n(timed out after {timeout:.0f} s)"
            return -1, out, err, time.monotonic() - t0
        finally:
            if self.current is p and p.returncode is not None:
                self.current = None
        return p.returncode, out, err, time.monotonic() - t0

    def kill(self) -> None:
        p = self.current
        if p is None or p.poll() is not None:
            return
        for sig, wait in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                return
            try:
                p.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


def peer_command(peer: str, scenario: str, scen_file: Path, tools: Path, seconds: float, ctl_core: int,
                 pmd_core: int, stage_sample: int = STAGE_SAMPLE) -> list[str]:
    if peer == "dpdkswitch":
        return [sys.executable, "-m", "dpdkswitch", "bench", scenario, "--json", "--seconds", str(seconds),
                "--scenarios", str(scen_file), "--ctl-core", str(ctl_core), "--pmd-core", str(pmd_core),
                "--stage-sample", str(stage_sample)]
    if peer == "ovs-dpdk":
        # A work directory of ours: the peer otherwise leaves a fresh /tmp/ovs-peer-* (with the
        # pcap) behind on every run.  Keyed by the traffic's inputs, as it caches pcaps by name.
        return [sys.executable, str(tools / "ovs_dpdk_peer.py"), scenario, "--seconds", str(seconds),
                "--scenarios", str(scen_file), "--ctl-core", str(ctl_core), "--pmd-core", str(pmd_core),
                "--workdir", str(peer_workdir("ovs-peer", scen_file, tools))]
    if peer == "testpmd-io":
        # testpmd_limit.sh reads the scenarios.yaml next to itself and always runs on lcores 0-1.
        return ["bash", str(tools / "testpmd_limit.sh"), scenario, "io", str(int(round(seconds)))]
    raise ValueError(peer)


def peer_workdir(kind: str, scen_file: Path, tools: Path) -> Path:
    """A cache directory for a peer's pcaps, one per content of the scenarios and genpcap.py
    (the peers reuse a pcap by scenario name alone)."""
    h = hashlib.sha256()
    for f in (scen_file, tools / "genpcap.py"):
        h.update(f.read_bytes() if f.is_file() else b"")
    d = CACHE_DIR / f"{kind}-{h.hexdigest()[:12]}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def metric_of(measure: str) -> str:
    return "setups_per_s" if measure == "setup" else "mpps"


def medians(runs: list[dict], scenarios: dict) -> dict:
    out: dict = {}
    for name in dict.fromkeys(r["scenario"] for r in runs):
        measure = scenarios[name].get("measure", "forwarding")
        metric = metric_of(measure)
        row: dict = {"measure": measure, "metric": metric, "peers": {}}
        for peer in PEERS:
            mine = [r for r in runs if r["scenario"] == name and r["peer"] == peer]
            if not mine:
                continue
            ok = [r["result"] for r in mine if r["ok"] and isinstance(r["result"].get(metric), (int, float))]
            if not ok and all(r.get("unsupported") for r in mine):
                row["peers"][peer] = {"ok": False, "unsupported": True, "error": mine[-1].get("error", "")}
                continue
            if not ok:
                row["peers"][peer] = {"ok": False, "runs": len(mine), "error": mine[-1].get("error", "failed")}
                continue
            entry = {"ok": True, "runs": len(ok), "failed_runs": len(mine) - len(ok),
                     metric: statistics.median(r[metric] for r in ok)}
            cpp = [r["cycles_per_packet"] for r in ok if isinstance(r.get("cycles_per_packet"), (int, float))]
            if cpp and measure != "setup":
                entry["cycles_per_packet"] = statistics.median(cpp)
            if peer == "dpdkswitch" and measure != "setup":
                hit = [r["hit_mpps"] for r in ok if isinstance(r.get("hit_mpps"), (int, float))]
                lost = [r["miss_failed_window"] / r["packets"] for r in ok
                        if r.get("packets") and isinstance(r.get("miss_failed_window"), (int, float))]
                if hit:
                    entry["hit_mpps"] = statistics.median(hit)
                if lost:
                    entry["lost_share"] = round(statistics.median(lost), 4)
            row["peers"][peer] = entry
        ours = row["peers"].get("dpdkswitch", {})
        for peer, key in (("ovs-dpdk", "ours_over_ovs"), ("testpmd-io", "ours_over_testpmd")):
            theirs = row["peers"].get(peer, {})
            if ours.get("ok") and theirs.get("ok") and theirs.get(metric):
                row[key] = round(ours[metric] / theirs[metric], 3)
        out[name] = row
    return out


def format_medians(med: dict) -> str:
    rows = [("scenario", "metric", *PEERS, "ours/OVS", "ours/testpmd", "ours hit Mpps")]
    notes = []
    for name, row in med.items():
        cells = []
        for peer in PEERS:
            e = row["peers"].get(peer)
            if e is None:
                cells.append("n/a")
            elif e.get("unsupported"):
                cells.append("not run")
                notes.append(f"{name}: {peer} does not run it: {e['error']}")
            elif not e["ok"]:
                cells.append("FAILED")
            else:
                v = e[row["metric"]]
                cells.append(f"{v:,.0f}" if row["metric"] == "setups_per_s" else f"{v:.3f}")
        ratio = lambda k: f"{row[k]:.2f}" if k in row else "-"
        ours = row["peers"].get("dpdkswitch") or {}
        hit = f"{ours['hit_mpps']:.3f}" if "hit_mpps" in ours else "-"
        if ours.get("lost_share", 0) > 0.01:
            hit += " (!)"
            notes.append(f"(!) {name}: {100 * ours['lost_share']:.0f}% of the frames dpdkswitch received while "
                         f"measuring were misses it dropped (upcall ring full): its Mpps counts them, "
                         f"'hit Mpps' does not")
        rows.append((name, "setups/s" if row["metric"] == "setups_per_s" else "Mpps", *cells,
                     ratio("ours_over_ovs"), ratio("ours_over_testpmd"), hit))
    return "\n".join([table(rows)] + notes)


def _matplotlib():
    """pyplot on the Agg backend, installed with pip if missing; None if it cannot be had."""
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is missing: installing it with pip for the plot ...", file=sys.stderr)
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--root-user-action=ignore",
                            "matplotlib"], capture_output=True, text=True)
        if r.returncode != 0:
            print("dpdkswitch bench: cannot install matplotlib (pip install matplotlib); no plot written: "
                  + (r.stderr.strip().splitlines() or ["?"])[-1], file=sys.stderr)
            return None
        importlib.invalidate_caches()
        try:
            import matplotlib
        except ImportError as e:
            print(f"dpdkswitch bench: matplotlib still cannot be imported ({e}); no plot written", file=sys.stderr)
            return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot(med: dict, path: Path) -> bool:
    plt = _matplotlib()
    if plt is None:
        return False
    groups = [("mpps", "Mpps (one PMD core)"), ("setups_per_s", "flow setups / s")]
    present = [(m, label) for m, label in groups if any(r["metric"] == m for r in med.values())]
    fig, axes = plt.subplots(1, len(present), figsize=(max(6, 2.2 * len(med)) + 2, 4.5), squeeze=False)
    colors = {"dpdkswitch": "#1f77b4", "ovs-dpdk": "#ff7f0e", "testpmd-io": "#7f7f7f"}
    for ax, (metric, label) in zip(axes[0], present):
        names = [n for n, r in med.items() if r["metric"] == metric]
        width = 0.8 / len(PEERS)
        for j, peer in enumerate(PEERS):
            vals = []
            for n in names:
                e = med[n]["peers"].get(peer)
                vals.append(e[metric] if e and e.get("ok") else 0)
            xs = [i + (j - (len(PEERS) - 1) / 2) * width for i in range(len(names))]
            bars = ax.bar(xs, vals, width, label=peer, color=colors[peer])
            for b, n in zip(bars, names):
                e = med[n]["peers"].get(peer)
                if e is not None and not e.get("ok"):
                    ax.annotate("not run" if e.get("unsupported") else "failed", (b.get_x() + b.get_width() / 2, 0), ha="center", va="bottom",
                                rotation=90, fontsize=7)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=20, ha="right")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("dpdkswitch bench --compare (medians)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def compare(names: list[str], scen_file: Path, runs: int, seconds: float, out: Path | None, ctl_core: int,
            pmd_core: int, quiet: bool = False, stage_sample: int = STAGE_SAMPLE) -> int:
    scenarios = load_scenarios(scen_file)
    names = names or list(scenarios)
    unknown = [n for n in names if n not in scenarios]
    if unknown:
        raise BenchError(f"no scenario {', '.join(map(repr, unknown))} in {scen_file} "
                         f"(have: {', '.join(scenarios)})")
    tools = bench_dir(scen_file)
    out = out or Path("results") / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    log = (lambda s: None) if quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    kids = Children()
    all_runs: list[dict] = []
    meta = {"started": datetime.datetime.now().isoformat(timespec="seconds"), "scenarios_file": str(scen_file),
            "runs": runs, "seconds": seconds, "ctl_core": ctl_core, "pmd_core": pmd_core, "version": version(),
            "host": os.uname().nodename, "cpus": os.cpu_count()}

    def save() -> dict:
        med = medians(all_runs, scenarios)
        with open(out / "results.json", "w") as f:
            json.dump({"meta": meta, "medians": med, "runs": all_runs}, f, indent=1)
        return med

    interrupted = False
    unsupported: set[tuple[str, str]] = set()   # (scenario, peer): the peer said it cannot run it
    with interruptible():
        try:
            for name in names:
                measure = scenarios[name].get("measure", "forwarding")
                peers = [p for p in PEERS if not (p == "testpmd-io" and measure == "setup")]
                for i in range(runs):
                    for peer in peers:
                        if (name, peer) in unsupported:
                            continue
                        cmd = peer_command(peer, name, scen_file, tools, seconds, ctl_core, pmd_core, stage_sample)
                        log(f"[{name} run {i + 1}/{runs}] {peer}: {' '.join(cmd)}")
                        env = None
                        if peer == "testpmd-io":   # its pcap cache, keyed like the OVS peer's
                            env = dict(os.environ, WORKDIR=str(peer_workdir("testpmd", tools / "scenarios.yaml", tools)))
                        rc, so, se, wall = kids.run(cmd, CHILD_TIMEOUT_S, REPO_ROOT, env)
                        res = _last_json(so)
                        rec = {"scenario": name, "peer": peer, "run": i + 1, "wall_s": round(wall, 1), "rc": rc,
                               "ok": rc == 0 and res is not None, "result": res or {}}
                        if rc == UNSUPPORTED_RC and res and res.get("error"):
                            # The peer cannot run this scenario (Open vSwitch's balance-tcp needs
                            # LACP negotiated, which null members cannot do): said once, not retried.
                            rec.update(unsupported=True, error=str(res["error"]))
                            unsupported.add((name, peer))
                            log(f"    not run by {peer}: {rec['error']}")
                        elif not rec["ok"]:
                            tail = (se.strip() or so.strip() or "no output").splitlines()[-5:]
                            rec["error"] = f"exit {rc}: " + " | ".join(tail)
                            log(f"    FAILED: {rec['error']}")
                        else:
                            m = metric_of(measure)
                            log(f"    {m} = {res.get(m)}")
                        all_runs.append(rec)
                        save()
        except KeyboardInterrupt:
            interrupted = True
            log("interrupted: stopping the running child")
            kids.kill()
    med = save()
    print(format_medians(med))
    print(f"results: {out / 'results.json'}")
    if med and plot(med, out / "results.png"):
        print(f"plot:    {out / 'results.png'}")
    return 130 if interrupted else 0
