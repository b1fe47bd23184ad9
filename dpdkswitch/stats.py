"""Counters of a running switch, read in place from C memory and shaped for people.

PMD counters are numpy views of the datapath's shared memory (one writer each, the PMD);
"clear" keeps a baseline here and subtracts it, so no PMD counter is ever written from the
control thread.  Called from the control thread; costs a memory read per counter.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .datapath import MANUAL_PMD, Eal
from .switch import Bridge

PMD_COUNTERS = ("rx_packets", "tx_packets", "tx_dropped", "busy_cycles", "idle_cycles", "iterations",
                "emc_hits", "megaflow_hits", "subtable_lookups", "misses", "lost", "dups", "tx_batches",
                "recirculations", "meter_drops", "action_drops", "simple_hits", "one_pass",
                "bucket_pass")


@dataclass
class PmdFigures:
    slot: int
    lcore: int | None          # None: the control thread's deterministic polling
    active: bool
    n_rxq: int
    c: dict[str, int]

    @property
    def cycles_per_packet(self) -> float:
        total = self.c["busy_cycles"] + self.c["idle_cycles"]
        return total / self.c["rx_packets"] if self.c["rx_packets"] else 0.0

    @property
    def busy_cycles_per_packet(self) -> float:
        return self.c["busy_cycles"] / self.c["rx_packets"] if self.c["rx_packets"] else 0.0

    @property
    def busy_pct(self) -> float:
        total = self.c["busy_cycles"] + self.c["idle_cycles"]
        return 100.0 * self.c["busy_cycles"] / total if total else 0.0


class PmdCounters:
    """Per-PMD figures of one bridge, with a clearable baseline."""

    def __init__(self, bridge: Bridge):
        self.bridge = bridge
        self.baseline = np.zeros_like(bridge.dp.pmd_stats())

    def clear(self) -> None:
        self.baseline = self.bridge.dp.pmd_stats().copy()

    def figures(self) -> list[PmdFigures]:
        now = self.bridge.dp.pmd_stats().copy()   # one consistent-enough snapshot
        out = []
        n = self.bridge.dp.n_pmds
        for slot in list(range(n)) + [MANUAL_PMD]:
            row, base = now[slot], self.baseline[slot]
            c = {k: int(row[k]) - int(base[k]) for k in PMD_COUNTERS}
            if slot == MANUAL_PMD and not any(c.values()):
                continue
            out.append(PmdFigures(slot, None if slot == MANUAL_PMD else int(row["lcore"]), bool(row["active"]),
                                  int(row["n_rxq"]), c))
        return out


def format_pmd_stats(bridge: Bridge, counters: PmdCounters) -> str:
    """``dpif/pmd-stats-show``: Open vSwitch's vocabulary, one block per PMD thread."""
    hz = Eal.tsc_hz()
    lines = []
    for f in counters.figures():
        total = f.c["busy_cycles"] + f.c["idle_cycles"]
        head = (f"pmd thread numa_id 0 core_id {f.lcore}:" if f.lcore is not None
                else "main thread (deterministic polling):")
        c = f.c
        lines += [f"{bridge.config.name} {head}",
                  f"  packets received: {c['rx_packets']}",
                  f"  packet recirculations: {c['recirculations']}",
                  f"  simple match hits: {c['simple_hits']}",
                  f"  emc hits: {c['emc_hits']}",
                  f"  megaflow hits: {c['megaflow_hits']}",
                  f"  avg. subtable lookups per megaflow hit: "
                  f"{c['subtable_lookups'] / c['megaflow_hits'] if c['megaflow_hits'] else 0:.2f}",
                  f"  miss with success upcall: {c['misses']}",
                  f"  miss with failed upcall: {c['lost']}",
                  f"  miss duplicates parked: {c['dups']}",
                  f"  packets sent: {c['tx_packets']}",
                  f"  avg. packets per output batch: {c['tx_packets'] / c['tx_batches'] if c['tx_batches'] else 0:.2f}",
                  f"  tx dropped (queue full): {c['tx_dropped']}",
                  f"  meter drops: {c['meter_drops']}",
                  f"  action drops: {c['action_drops']}",
                  f"  iterations: {c['iterations']}",
                  f"  rx queues polled: {f.n_rxq}"]
        if f.lcore is not None:
            lines += [f"  idle cycles: {f.c['idle_cycles']} ({100 - f.busy_pct if total else 0:.2f}%)",
                      f"  processing cycles: {f.c['busy_cycles']} ({f.busy_pct:.2f}%)",
                      f"  avg cycles per packet: {f.cycles_per_packet:.2f} "
                      f"({total}/{f.c['rx_packets']})",
                      f"  avg processing cycles per packet: {f.busy_cycles_per_packet:.2f} "
                      f"({f.c['busy_cycles']}/{f.c['rx_packets']})",
                      f"  tsc: {hz} Hz"]
    return "\n".join(lines) + "\n" if lines else f"{bridge.config.name}: no PMD thread and no polling yet\n"
