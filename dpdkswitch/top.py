"""The live terminal view of ``dpdkswitch run``: port and PMD rates, redrawn each second, and
below them the last messages the switch logged (the redraw clears the screen, so a message
written to the terminal alone would last a second).

Called from the control thread's loop once a second; reads counters in place (no datapath
change), so it costs a few microseconds per port.
"""
from __future__ import annotations

import time

from .datapath import Eal
from .log import RECENT, Recent
from .stats import PmdCounters
from .switch import Switch

MESSAGE_LINES = 8              # the last messages' lines, below the table


class TopView:
    def __init__(self, switch: Switch, counters: dict[str, PmdCounters], header: list[str],
                 messages: Recent = RECENT):
        self.switch = switch
        self.messages = messages
        self.counters = counters
        self.header = header
        self.started = time.monotonic()
        self.last: dict[tuple[str, str], dict[str, int]] = {}
        self.last_pmd: dict[tuple[str, int], dict[str, int]] = {}
        self.last_t = time.monotonic()

    def render(self) -> str:
        now = time.monotonic()
        dt = max(now - self.last_t, 1e-6)
        self.last_t = now
        up = int(now - self.started)
        lines = list(self.header) + [f"up {up // 60}m{up % 60:02d}s", ""]
        for bname, br in self.switch.bridges.items():
            lines.append(f"bridge {bname}   mbufs in use {br.dp.mbufs_in_use()}/{br.dp.mbufs_total()}")
            lines.append(f"  {'port':<10} {'ofport':>6} {'link':>5} {'rx pps':>10} {'tx pps':>10} "
                         f"{'rx total':>12} {'tx total':>12} {'dropped':>9}")
            for p in sorted(br.ports.values(), key=lambda p: p.ofport):
                s = br.port_stats(p)
                info = br.port_info(p)
                prev = self.last.get((bname, p.name), s)
                self.last[(bname, p.name)] = s
                drops = s["rx_missed"] + s["rx_nombuf"] + s["tx_dropped"] + s["tx_errors"]
                lines.append(f"  {p.name:<10} {p.ofport:>6} {'up' if info.link_up else 'down':>5} "
                             f"{(s['rx_packets'] - prev['rx_packets']) / dt:>10.0f} "
                             f"{(s['tx_packets'] - prev['tx_packets']) / dt:>10.0f} "
                             f"{s['rx_packets']:>12} {s['tx_packets']:>12} {drops:>9}")
            for f in self.counters[bname].figures():
                key = (bname, f.slot)
                prev = self.last_pmd.get(key, f.c)
                self.last_pmd[key] = f.c
                d = {k: f.c[k] - prev[k] for k in f.c}
                cyc = d["busy_cycles"] + d["idle_cycles"]
                busy = 100.0 * d["busy_cycles"] / cyc if cyc else 0.0
                cpp = d["busy_cycles"] / d["rx_packets"] if d["rx_packets"] else 0.0
                who = f"PMD core {f.lcore}" if f.lcore is not None else "main thread"
                lines.append(f"  {who}: rx {d['rx_packets'] / dt:.0f} pps, tx {d['tx_packets'] / dt:.0f} pps, "
                             f"busy {busy:.1f}%, {cpp:.0f} cycles/packet, {f.n_rxq} rx queue(s)")
            lines.append("")
        recent = self.messages.lines(MESSAGE_LINES)
        if recent:
            lines += ["messages:"] + [f"  {m}" for m in recent]
        return "\n".join(lines)


def hz_note() -> str:
    return f"TSC {Eal.tsc_hz() / 1e9:.2f} GHz"
