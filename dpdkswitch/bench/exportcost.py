"""``dpdkswitch bench --export-cost``: what traffic visibility costs the forwarding rate.

For each scenario (default ``p2p-1k`` and ``normal-1k``), child runs of ``dpdkswitch bench
SCENARIO --json`` alternate within each round: plain, with sFlow sampling 1-in-``SFLOW_N``
(``--sflow``), and on the scenarios of ``SCRAPE_SCENARIOS`` with a Prometheus scrape every
``SCRAPE_MS`` ms (``--scrape-ms``).  It prints the medians of Mpps and each variant's ratio to
plain, and the same of the rate per second the PMD thread ran (``mpps_on_cpu``: on a machine
whose PMD core other jobs' threads share, the wall-clock rate measures them as much as us), and writes the raw runs to ``--out``/``export-cost.json``.

Main thread only; it costs the runs' time and starts no EAL itself.
"""
from __future__ import annotations

import datetime
import json
import statistics
import sys
from pathlib import Path

from .compare import CHILD_TIMEOUT_S, Children, _last_json
from .console import interruptible, table, version
from .scenarios import REPO_ROOT, BenchError, load_scenarios

SCENARIOS = ("p2p-1k", "normal-1k")
SFLOW_N = 1000
SCRAPE_MS = 100
SCRAPE_SCENARIOS = ("p2p-1k",)


def variants(scenario: str) -> list[tuple[str, list[str]]]:
    out = [("plain", []), (f"sflow 1/{SFLOW_N}", ["--sflow", str(SFLOW_N)])]
    if scenario in SCRAPE_SCENARIOS:
        out.append((f"scrape {SCRAPE_MS} ms", ["--scrape-ms", str(SCRAPE_MS)]))
    return out


def summary(runs: list[dict]) -> dict:
    """Per scenario and variant: the median Mpps, its runs, and its ratio to plain's median."""
    out: dict = {}
    for r in runs:
        out.setdefault(r["scenario"], {}).setdefault(r["variant"], []).append(r)
    med: dict = {}
    for name, by_variant in out.items():
        row = med[name] = {}
        for variant, rs in by_variant.items():
            ok = [r["result"]["mpps"] for r in rs if r["ok"]]
            on_cpu = [r["result"]["mpps_on_cpu"] for r in rs if r["ok"] and r["result"].get("mpps_on_cpu")]
            row[variant] = {"runs": [r["result"].get("mpps") for r in rs],
                            "mpps": statistics.median(ok) if ok else None,
                            "mpps_on_cpu": statistics.median(on_cpu) if on_cpu else None}
        base = row.get("plain", {}).get("mpps")
        base_cpu = row.get("plain", {}).get("mpps_on_cpu")
        for variant, e in row.items():
            if variant != "plain" and base and e["mpps"] is not None:
                e["of_plain"] = round(e["mpps"] / base, 4)
            if variant != "plain" and base_cpu and e["mpps_on_cpu"] is not None:
                e["on_cpu_of_plain"] = round(e["mpps_on_cpu"] / base_cpu, 4)
    return med


def format_summary(med: dict) -> str:
    rows = [("scenario", "variant", "Mpps (median)", "of plain", "Mpps per PMD CPU s", "of plain", "runs (Mpps)")]
    for name, row in med.items():
        for variant, e in row.items():
            on_cpu = e.get("mpps_on_cpu")
            rows.append((name, variant, "FAILED" if e["mpps"] is None else f"{e['mpps']:.3f}",
                         f"{100 * e['of_plain']:.1f} %" if "of_plain" in e else "-",
                         "-" if on_cpu is None else f"{on_cpu:.3f}",
                         f"{100 * e['on_cpu_of_plain']:.1f} %" if "on_cpu_of_plain" in e else "-",
                         " ".join("-" if v is None else f"{v:.3f}" for v in e["runs"])))
    return table(rows)


def main(names: list[str], scen_file: Path, runs: int, seconds: float, out: Path | None, ctl_core: int,
         pmd_core: int) -> int:
    scenarios = load_scenarios(scen_file)
    names = names or list(SCENARIOS)
    unknown = [n for n in names if n not in scenarios]
    if unknown:
        raise BenchError(f"no scenario {', '.join(map(repr, unknown))} in {scen_file}")
    out = out or Path("results") / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    kids = Children()
    all_runs: list[dict] = []
    meta = {"started": datetime.datetime.now().isoformat(timespec="seconds"), "scenarios_file": str(scen_file),
            "runs": runs, "seconds": seconds, "version": version()}
    interrupted = False
    with interruptible():
        try:
            for i in range(runs):
                for name in names:
                    for variant, extra in variants(name):
                        cmd = [sys.executable, "-m", "dpdkswitch", "bench", name, "--json", "--seconds", str(seconds),
                               "--scenarios", str(scen_file), "--ctl-core", str(ctl_core), "--pmd-core",
                               str(pmd_core), *extra]
                        print(f"[round {i + 1}/{runs}] {name} {variant}", file=sys.stderr, flush=True)
                        rc, so, se, wall = kids.run(cmd, CHILD_TIMEOUT_S, REPO_ROOT)
                        res = _last_json(so)
                        rec = {"scenario": name, "variant": variant, "round": i + 1, "wall_s": round(wall, 1),
                               "ok": rc == 0 and res is not None and "mpps" in res, "result": res or {}}
                        if not rec["ok"]:
                            rec["error"] = f"exit {rc}: " + " | ".join((se.strip() or "no output").splitlines()[-3:])
                            print(f"    FAILED: {rec['error']}", file=sys.stderr, flush=True)
                        else:
                            print(f"    mpps = {res['mpps']}", file=sys.stderr, flush=True)
                        all_runs.append(rec)
                        with open(out / "export-cost.json", "w") as f:
                            json.dump({"meta": meta, "summary": summary(all_runs), "runs": all_runs}, f, indent=1)
        except KeyboardInterrupt:
            interrupted = True
            kids.kill()
    print(format_summary(summary(all_runs)))
    print(f"results: {out / 'export-cost.json'}")
    return 130 if interrupted else 0
