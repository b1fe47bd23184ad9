"""The flow table at scale: `dpdkswitch bench --revalidation N[,N...]` and `--memory N`.

Each measurement builds bridge ``br0`` in deterministic mode (no PMD thread: this thread polls,
as the tests do) with a manual clock, port 1 = ``net_pcap`` reading once a pcap of N UDP frames
from N distinct source addresses (the shared ``genpcap.py``, as setup-100k's traffic), ports 2
and 3 = ``net_null``, and the rules ``priority=10,udp,actions=output:2`` and
``priority=0,actions=drop``.  Megaflows are off (as ``dpif/disable-megaflows``), so every frame
misses, goes up the upcall ring, and the upcall handler translates it and installs its own
exact-match flow: N datapath flows and N ukeys, all from one rule.  Then:

* revalidation: one revalidator pass with nothing changed, then a flow-mod of that rule to
  ``output:3`` and the pass that follows, timed; afterwards every datapath flow must have the
  new action, and the pass must have modified all N (else the run fails);
* memory: DPDK heap bytes in use before and after the install (per installed flow), the bytes
  each flow slot reserves whether used or not (outside the heap, from the C side's own
  accounting; the UFID index's share of the heap, from two bare datapaths of different flow
  limits), and the Python heap the slow path keeps per ukey (tracemalloc, on for that install
  only, so its install time is not comparable).

Control thread only (EAL starts here); one process for every N.
"""
from __future__ import annotations

import gc
import json
import time
import tracemalloc
from pathlib import Path

from ..config import loads
from ..datapath import MANUAL_PMD, Datapath, Eal, odp
from ..ofproto.flowstr import parse_flow
from ..switch import Bridge, Switch
from .console import Progress, table, version
from .scenarios import BenchError, bench_dir, pcap_for

RULE = "priority=10,udp,actions=output:2"
NEW_RULE = "priority=10,udp,actions=output:3"
SECOND = 1_000_000_000
_runs = iter(range(1 << 30))


def config_text(pcap: Path, n: int, ctl_core: int, tag: int) -> str:
    return f"""\
dpdk:
  cores: [{ctl_core}]
  hugepages: auto
bridges:
  br0:
    datapath:
      pmd_cores: []
      flow_limit: {max(200000, n + 1024)}
    flows: ["{RULE}", "priority=0,actions=drop"]
    ports:
      p1: {{device: "net_pcap_rv{tag},rx_pcap={pcap}", ofport: 1}}
      p2: {{device: "net_null_rv{tag}a,no-rx=1", ofport: 2}}
      p3: {{device: "net_null_rv{tag}b,no-rx=1", ofport: 3}}
"""


class FlowTableBench:
    """N exact-match megaflows of one rule, installed through the upcall path."""

    def __init__(self, n: int, pcap: Path, ctl_core: int = 0):
        self.n, self.pcap, self.ctl_core = n, pcap, ctl_core
        self.switch = None
        self.br = None

    def __enter__(self) -> "FlowTableBench":
        config = loads(config_text(self.pcap, self.n, self.ctl_core, next(_runs)), "<bench>")
        bc = config.bridges["br0"]
        self.switch = Switch(config, manual_clock=True)
        if not Eal.running():                 # the first run of this process (a test's EAL may be up)
            self.switch.start_eal()
        try:
            br = self.br = self.switch.bridges["br0"] = Bridge.create(bc, self.switch.netns, manual_clock=True)
            br.dp.set_clock(SECOND)
            br.dp.set_megaflows(False)        # as dpif/disable-megaflows: one flow per source address
            br.upcalls.megaflows = False
            br.add_port(bc.ports["p2"])
            br.add_port(bc.ports["p3"])
            br.start()                        # no PMD thread: this thread polls below
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.switch is not None:
            self.switch.stop()
            self.switch = self.br = None

    def install(self) -> float:
        """Port 1 comes up and its pcap is polled until it is exhausted and every upcall handled;
        returns the seconds that took.  Fails unless N flows and N ukeys resulted."""
        br = self.br
        t0 = time.perf_counter()
        br.add_port(br.config.ports["p1"])
        quiet = 0
        while quiet < 3:                      # net_pcap without infinite_rx: 0 frames at the end
            got = br.dp.poll(4)               # at most 128 frames: far below the upcall ring's share
            handled = br.upcalls.handle()
            quiet = quiet + 1 if not got and not handled else 0
        dt = time.perf_counter() - t0
        st = br.dp.pmd_stats()[MANUAL_PMD]
        flows, ukeys = br.dp.flow_count(), len(br.upcalls.ukeys)
        if flows != self.n or ukeys != self.n:
            raise BenchError(f"{self.n} frames left {flows} datapath flows and {ukeys} ukeys (misses {int(st['misses'])}, "
                             f"lost {int(st['lost'])}, flow limit hits {br.upcalls.stats.flow_limit_hits}, "
                             f"put errors {br.upcalls.stats.put_errors})")
        return dt

    def revalidation(self) -> dict:
        install_s = self.install()
        return {"flows": self.n, "install_s": round(install_s, 3), "setups_per_s": round(self.n / install_s),
                **self.flow_mod_pass()}

    def flow_mod_pass(self) -> dict:
        """A pass with nothing changed; the flow-mod; the pass after it, timed and checked."""
        br = self.br
        quiet = br.revalidator.run()          # counters pushed to the rule; nothing to re-translate
        t0 = time.perf_counter()
        changed = br.pipeline.modify(parse_flow(NEW_RULE), strict=True)
        t1 = time.perf_counter()
        rep = br.revalidator.run()
        t2 = time.perf_counter()
        out_port = br.ports["p3"].dp_port
        flows = br.dp.flow_dump()
        wrong = sum(1 for f in flows if odp.decode(f["actions"]) != [odp.Output(out_port)])
        ok = len(changed) == 1 and len(flows) == self.n and not wrong and rep.modified == self.n and not rep.deleted
        return {"pass_unchanged_s": round(quiet.seconds, 4), "flow_mod_s": round(t1 - t0, 6),
                "revalidation_s": round(rep.seconds, 4), "revalidation_wall_s": round(t2 - t1, 4),
                "us_per_flow": round(1e6 * rep.seconds / self.n, 2), "revalidated": rep.revalidated,
                "modified": rep.modified, "deleted": rep.deleted, "flows_after": len(flows),
                "flows_with_old_action": wrong, "verified": ok}

    def memory(self) -> dict:
        br = self.br
        gc.collect()
        m0 = br.dp.mem_stats()
        tracemalloc.start()
        try:
            py0 = tracemalloc.get_traced_memory()[0]
            install_s = self.install()
            gc.collect()
            py1 = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        m1 = br.dp.mem_stats()
        ufid_index = ufid_index_heap_per_slot(br.dp)
        return {"flows": self.n, "install_s_traced": round(install_s, 3),
                "dp_heap_per_flow": round((m1["heap_allocated"] - m0["heap_allocated"]) / self.n, 1),
                "dp_slot_bytes_outside_heap": m1["flow_slot_bytes"],
                "dp_slot_ufid_index_heap": round(ufid_index, 1),
                "dp_reserved_per_slot": round(m1["flow_slot_bytes"] + ufid_index, 1),
                "flow_limit": m1["flow_limit"],
                "py_per_ukey": round((py1 - py0) / self.n, 1),
                "key_bytes": len(next(iter(br.upcalls.ukeys.values())).key)}


def ufid_index_heap_per_slot(dp, limit: int = 100000) -> float:
    """DPDK heap a datapath takes per flow slot of its limit (the UFID index): the heap growth of
    creating a bare datapath of 2 × LIMIT slots less that of one of LIMIT, over LIMIT."""
    grown = []
    for k, lim in enumerate((limit, 2 * limit)):
        before = dp.mem_stats()["heap_allocated"]
        probe = Datapath(f"memprobe{k}", manual_clock=True, flow_limit=lim)
        try:
            grown.append(probe.mem_stats()["heap_allocated"] - before)
        finally:
            probe.close()
    return (grown[1] - grown[0]) / limit


def _pcap(n: int, scen_file: Path) -> Path:
    path, _ = pcap_for(f"flows-{n}", {"traffic": {"flows": n, "vary": ["ip_src"]}}, bench_dir(scen_file))
    return path


def run(counts: list[int], memory_n: int | None, scen_file: Path, ctl_core: int, progress: Progress) -> dict:
    out: dict = {"peer": "dpdkswitch", "version": version(), "rule": RULE, "new_rule": NEW_RULE}
    if counts:
        out["revalidation"] = []
        for n in counts:
            progress.note(f"revalidation: installing {n:,} flows through the upcall path ...")
            with FlowTableBench(n, _pcap(n, scen_file), ctl_core) as b:
                out["revalidation"].append(b.revalidation())
    if memory_n:
        progress.note(f"memory: installing {memory_n:,} flows with tracemalloc on ...")
        with FlowTableBench(memory_n, _pcap(memory_n, scen_file), ctl_core) as b:
            out["memory"] = b.memory()
    return out


def format_result(r: dict) -> str:
    parts = []
    if "revalidation" in r:
        rows = [("flows", "install s", "setups/s", "pass, unchanged ms", "flow-mod ms", "pass after it ms",
                 "µs/flow", "modified", "deleted", "all output:3")]
        for x in r["revalidation"]:
            rows.append((f"{x['flows']:,}", f"{x['install_s']:.2f}", f"{x['setups_per_s']:,}",
                         f"{1000 * x['pass_unchanged_s']:.1f}", f"{1000 * x['flow_mod_s']:.2f}",
                         f"{1000 * x['revalidation_s']:.1f}", f"{x['us_per_flow']:.1f}", f"{x['modified']:,}",
                         f"{x['deleted']:,}", "yes" if x["verified"] else
                         f"NO ({x['flows_with_old_action']:,} flows with the old action, {x['flows_after']:,} flows)"))
        parts.append(f"revalidation after a flow-mod ({r['rule']} -> {r['new_rule']}), N exact-match megaflows "
                     f"of that one rule installed through the upcall path\n" + table(rows))
    if "memory" in r:
        m = r["memory"]
        rows = [("what", "bytes"),
                ("datapath, per installed flow (DPDK heap: action list, subtable hash share)",
                 f"{m['dp_heap_per_flow']:,.0f}"),
                (f"datapath, reserved per flow slot (flow_limit {m['flow_limit']:,}, used or not)",
                 f"{m['dp_reserved_per_slot']:,.0f}"),
                ("  of which outside the heap: the slot, free list entry, per-PMD counters",
                 f"{m['dp_slot_bytes_outside_heap']:,}"),
                ("  of which in the heap: the UFID index", f"{m['dp_slot_ufid_index_heap']:,.0f}"),
                ("slow path, Python heap per ukey (tracemalloc)", f"{m['py_per_ukey']:,.0f}")]
        parts.append(f"memory per megaflow, {m['flows']:,} exact-match megaflows ({m['key_bytes']}-byte keys) "
                     f"installed through the upcall path\n" + table(rows))
    return "\n\n".join(parts)


def main(a, scen_file: Path, progress: Progress) -> int:
    r = run(a.revalidation or [], a.memory, scen_file, a.ctl_core, progress)
    if a.json:
        print(json.dumps(r), flush=True)
    else:
        print(format_result(r))
    return 0 if all(x["verified"] for x in r.get("revalidation", [])) else 1
