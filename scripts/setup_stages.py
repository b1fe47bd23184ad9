"""Where a flow setup's time goes: setup-100k's rules and traffic in this process, no PMD thread.

    .venv/bin/python scripts/setup_stages.py [N] [--profile] [--scenarios FILE]

Builds bridge br0 in deterministic mode (this thread polls, manual clock) with setup-100k's
rules scaled to N (``priority=10,udp,in_port=1,nw_src=<i>,actions=output:2`` for N sources, and
``priority=0,actions=drop``), port 1 = ``net_pcap`` reading once a pcap of N UDP frames from
those N sources (the shared ``genpcap.py``), port 2 = ``net_null``.  Every frame misses, goes up
the upcall ring, is translated and installed (megaflows on, as in the scenario).  It prints the
control thread's CPU time per setup (``time.thread_time``: on a loaded machine wall time mostly
measures the other jobs) and the cyclic GC's share; with --profile, the upcall handler runs
under cProfile with a CPU-time clock and the time per stage is printed as the README's table
(profiled microseconds: read the shares).  Runs as root (EAL); N = 30,000 by default.
"""
from __future__ import annotations

import cProfile
import gc
import pstats
import sys
import time
from pathlib import Path

from dpdkswitch.app import FreezeSurvivors
from dpdkswitch.bench.scenarios import bench_dir, load_scenarios, pcap_for, rules_for, scenarios_path
from dpdkswitch.config import loads
from dpdkswitch.datapath import Datapath, Upcall
from dpdkswitch.ofproto.classifier import Classifier
from dpdkswitch.ofproto.ctable import KeptTable
from dpdkswitch.ofproto.flowstr import FlowSpec, parse_flow
from dpdkswitch.ofproto.xlate import Kept, Translation, Translator, XlateCache
from dpdkswitch.switch import Bridge, Switch
from dpdkswitch.upcall import UpcallHandler


def config_text(pcap: Path) -> str:
    return f"""\
dpdk:
  cores: [0]
  hugepages: auto
bridges:
  br0:
    datapath:
      pmd_cores: []
      flow_limit: 200000
    ports:
      p1: {{device: "net_pcap_ss0,rx_pcap={pcap}", ofport: 1}}
      p2: {{device: "net_null_ss0,no-rx=1", ofport: 2}}
"""


def stages(st: pstats.Stats, n: int) -> list[tuple[str, float, float]]:
    """(stage, profiled µs per setup, share) from the handler's profile."""
    raw = st.stats            # (file, line, function) -> (calls, ncalls, tottime, cumtime, callers)

    def at(fn) -> tuple[str, int, str]:
        code = fn.__code__
        return code.co_filename, code.co_firstlineno, code.co_name

    def cum(fn) -> float:
        return raw.get(at(fn), (0, 0, 0, 0.0))[3]

    def cum_from(fn, caller) -> float:
        """FN's cumulative time in its calls from CALLER."""
        got = raw.get(at(fn))
        return got[4].get(at(caller), (0, 0, 0, 0.0))[3] if got else 0.0

    total = cum(UpcallHandler.handle)
    translate = cum(Translator.translate_miss)
    commit = cum(Translation.commit) + cum_from(XlateCache.push_stats, UpcallHandler._translate)
    encode = cum(Translation.encoded) + cum_from(Kept.encode, UpcallHandler._translate)
    rows = [("translation (`Translator.translate_miss`), all of it", translate),
            ("— of which the classifier lookup", cum(Classifier.lookup)),
            ("— of which a rule's own xlate cache, from its shape's kept translation (`_shaped`)",
             cum(Translator._shaped)),
            ("side effects through their owners (stats: `XlateCache.push_stats`, `Translation.commit`)", commit),
            ("encoding the datapath actions", encode),
            ("ukey bookkeeping (UFID, covering checks, index, megaflow mask)",
             cum(UpcallHandler._translate) - translate - commit - encode),
            ("the flow put (one C call per batch)", cum(UpcallHandler._install)),
            ("the packet-out of the missed frame", cum(Upcall.execute)),
            ("taking the upcalls (C to Python)", cum(UpcallHandler._take)),
            ("C setups: lookup, put, packet-out in C (`Datapath.upcalls_setup`)", cum(Datapath.upcalls_setup)),
            ("C setups: their ukeys and stats (`UpcallHandler._c_setups`)", cum(UpcallHandler._c_setups)),
            ("building table 0's C table (`KeptTable.build`)", cum(KeptTable.build)),
            ("total, the upcall handler", total)]
    return [(name, 1e6 * t / n, t / total) for name, t in rows]


def main(argv: list[str]) -> int:
    n = int(next((a for a in argv if a.isdigit()), 30000))
    profile = "--profile" in argv
    given = argv[argv.index("--scenarios") + 1] if "--scenarios" in argv else None
    scen = scenarios_path(given)
    sc = dict(load_scenarios(scen)["setup-100k"])
    sc["traffic"] = {"flows": n, "vary": ["ip_src"]}
    sc["rules_generate"] = dict(sc["rules_generate"], count=n)
    pcap, _ = pcap_for(f"flows-{n}", {"traffic": sc["traffic"]}, bench_dir(scen))
    config = loads(config_text(pcap), "<setup_stages>")
    bc = config.bridges["br0"]
    sw = Switch(config, manual_clock=True)
    sw.start_eal()
    try:
        br = sw.bridges["br0"] = Bridge.create(bc, sw.netns, manual_clock=True)
        br.dp.set_clock(1_000_000_000)
        br.pipeline.delete(FlowSpec())
        br.add_port(bc.ports["p2"])
        for r in rules_for(sc):
            br.pipeline.add(parse_flow(r))
        br.revalidator.run()
        gc.freeze()                          # as `dpdkswitch run` does after start-up,
        survivors = FreezeSurvivors().install()   # and after each full collection
        br.start()
        gc_cpu = [0.0, 0.0]

        def on_gc(phase, _info):
            if phase == "start":
                gc_cpu[1] = time.thread_time()
            else:
                gc_cpu[0] += time.thread_time() - gc_cpu[1]

        gc.callbacks.append(on_gc)
        prof = cProfile.Profile(time.thread_time) if profile else None
        br.add_port(bc.ports["p1"])
        busy, quiet = 0.0, 0
        while quiet < 3:                     # net_pcap without infinite_rx: 0 frames at the end
            got = br.dp.poll(4)
            t = time.thread_time()
            if prof:
                prof.enable()
            handled = br.upcalls.handle()
            if prof:
                prof.disable()
            busy += time.thread_time() - t
            quiet = quiet + 1 if not got and not handled else 0
        gc.callbacks.remove(on_gc)
        survivors.remove()
        st = br.upcalls.stats
        done = max(1, st.installed)
        print(f"{st.installed:,} setups of {n:,} frames ({st.translations:,} translations, {st.c_setups:,} in C, "
              f"{br.upcalls.kept_table.builds} C table builds, {st.errors} errors): "
              f"{1e6 * busy / done:.1f} µs of CPU a setup{' (profiled)' if prof else ''}, "
              f"of which the cyclic GC {1e6 * gc_cpu[0] / done:.1f}")
        if prof:
            print("| stage | µs (share) |\n|---|---|")
            for name, us, share in stages(pstats.Stats(prof), done):
                print(f"| {name} | {us:.1f} ({100 * share:.0f}%) |")
    finally:
        sw.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
