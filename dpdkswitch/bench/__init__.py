"""``dpdkswitch bench``: the shared benchmark scenarios on this switch, and beside its peers.

One module per measure, and this dispatch, which ``cli.py`` calls with the parsed arguments:

  scenarios.py   the shared material (``<repo>/../shared/bench`` or ``--scenarios FILE``): the
                 scenarios, their rules as the peers expand them, their pcaps (genpcap.py)
  forwarding.py  ``bench SCENARIO``: one scenario on this switch in this process (forwarding
                 Mpps and cycles by stage, or the flow-setup rate)
  compare.py     ``bench --compare``: this switch, Open vSwitch's DPDK datapath and testpmd,
                 interleaved child processes, medians, ratios, a plot
  flowmods.py    ``bench --flow-mods N``: ``ovs-ofctl add-flows`` of N rules, here and on OVS
  flowtable.py   ``bench --revalidation N[,N...]`` and ``--memory [N]``: the flow table at scale
  exportcost.py  ``bench --export-cost``: sFlow's and Prometheus scraping's cost, alternating runs
  console.py     the progress line, tables, the version line, Ctrl-C

Main thread only: a run that starts EAL does so on this thread, the datapath's only writer.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config import ConfigError
from ..datapath import DatapathError
from ..netns import NetnsError
from . import compare, exportcost, flowmods, flowtable, forwarding
from .console import Progress
from .scenarios import BenchError, scenarios_path


def main(a: argparse.Namespace) -> int:
    """``dpdkswitch bench``, with the command line's parsed arguments; the exit status."""
    if (a.revalidation or a.memory) and (a.scenario or a.compare or a.flow_mods):
        print("dpdkswitch bench: --revalidation and --memory run alone (no SCENARIO, --compare or --flow-mods)",
              file=sys.stderr)
        return 2
    if a.flow_mods:
        return flowmods.main(a.flow_mods, a.json)
    if a.compare and a.json:
        print("dpdkswitch bench: --json is for one run; --compare writes JSON into --out", file=sys.stderr)
        return 2
    try:
        scen_file = scenarios_path(a.scenarios)
        if a.revalidation or a.memory:
            return flowtable.main(a, scen_file, Progress(not a.json))
        if a.export_cost:
            return exportcost.main(a.scenario, scen_file, a.runs, a.seconds, Path(a.out) if a.out else None,
                                   a.ctl_core, a.pmd_core)
        if a.compare:
            return compare.compare(a.scenario, scen_file, a.runs, a.seconds, Path(a.out) if a.out else None,
                                   a.ctl_core, a.pmd_core, stage_sample=a.stage_sample)
        if len(a.scenario) != 1:
            raise BenchError("give one SCENARIO (or --compare [SCENARIO...])")
        progress = Progress(not a.json)
        result = forwarding.run_one(a.scenario[0], scen_file, a.seconds, a.ctl_core, a.pmd_core, progress,
                                    a.stage_sample, a.sflow, a.scrape_ms)
    except BenchError as e:
        print(f"dpdkswitch bench: {e}", file=sys.stderr)
        return 2
    except (DatapathError, ConfigError, NetnsError, OSError) as e:
        print(f"dpdkswitch bench: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndpdkswitch bench: interrupted", file=sys.stderr)
        return 130
    if a.json:
        print(json.dumps(result), flush=True)
    else:
        print(forwarding.format_result(result))
        extra = [f"EAL: {result.get('eal')}"]
        if result.get("rules", 0) > 1:
            extra.append(f"rules: {result['rules']} installed in {result['rules_install_s']:.2f} s")
        extra.append(f"revalidator: {result['revalidator_passes']} passes, slowest {result['revalidator_max_s'] * 1000:.1f} ms;"
                     f" upcall handling busy {result['upcall_busy_s']:.2f} s"
                     f" ({result['upcall_cpu_s']:.2f} s of it on the CPU)")
        print("\n".join(extra))
    return 0
