"""Datapath commands on the control socket: ports, their counters, PMD threads.

``dpif/show``, ``dpif/pmd-stats-show``, ``dpif/pmd-stats-clear``, ``dpif/pmd-rxq-show``,
``dpif/add-port``, ``dpif/del-port``, ``dpif/port-xstats``.  Handlers run on the control
thread (see control/__init__.py); each reads counters in place or makes one datapath change.
"""
from __future__ import annotations

from ..config import PORT_ARG_KEYS, ConfigError, port_from_args
from ..datapath import DatapathError
from ..datapath.odp import decode, format_actions
from ..ofproto.actions import OFPP_LOCAL
from ..ofproto.fields import BY_NAME, format_key
from ..stats import PmdCounters, format_pmd_stats
from ..switch import Switch
from . import CommandError, Commands

IN_PORT = BY_NAME["in_port"]


def register(commands: Commands, switch: Switch) -> dict[str, PmdCounters]:
    counters = {name: PmdCounters(br) for name, br in switch.bridges.items()}

    def bridges(args: list[str]):
        if args:
            try:
                return [switch.bridge(args[0])]
            except DatapathError as e:
                raise CommandError(str(e)) from None
        return list(switch.bridges.values())

    def show(args: list[str]) -> str:
        out = []
        for br in bridges(args):
            dp = br.dp
            cores = br.config.pmd_cores if dp.n_pmds else []
            out.append(f"{br.config.name}: {dp.n_pmds} PMD thread(s) on lcores {cores}, "
                       f"mbufs in use {dp.mbufs_in_use()}/{dp.mbufs_total()}")
            out.append(f"  dpid:{br.config.datapath_id:016x}")
            out.append(f"  lookups: hit:{br.pipeline.n_hit} missed:{br.pipeline.n_missed}")
            for p in sorted(br.ports.values(), key=lambda p: p.ofport):
                i = br.port_info(p)
                s = br.port_stats(p)
                link = f"link {'up' if i.link_up else 'down'}" + (f" {i.link_speed} Mbps" if i.link_up else "")
                ns = f", netns {p.config.netns.name}" if p.config.netns else ""
                ofport = "LOCAL" if p.ofport == OFPP_LOCAL else p.ofport
                if p.is_patch:            # as Open vSwitch's dpif/show: no datapath port
                    out.append(f"  {p.name} {ofport}/none: (patch: peer={p.config.peer}) {link}")
                else:
                    out.append(f"  {p.name} {ofport}/{p.dp_port}: ({i.driver}: {i.name}) {link}, "
                               f"rxq {i.n_rxq}, txq {i.n_txq}{' (shared)' if i.txq_shared else ''}, "
                               f"mtu {i.mtu}, mac {i.mac}{ns}")
                out.append(f"    RX packets:{s['rx_packets']} bytes:{s['rx_bytes']} missed:{s['rx_missed']} "
                           f"errors:{s['rx_errors']} nombuf:{s['rx_nombuf']}")
                out.append(f"    TX packets:{s['tx_packets']} bytes:{s['tx_bytes']} errors:{s['tx_errors']} "
                           f"dropped:{s['tx_dropped']}")
        return "\n".join(out) + "\n"

    def pmd_stats_show(args: list[str]) -> str:
        return "".join(format_pmd_stats(br, counters[br.config.name]) for br in bridges(args))

    def pmd_stats_clear(args: list[str]) -> str:
        for br in bridges(args):
            counters[br.config.name].clear()
        return ""

    def pmd_rxq_show(args: list[str]) -> str:
        out = []
        for br in bridges(args):
            names = {p.dp_port: p.name for p in br.ports.values()}
            by_lcore: dict[object, list[str]] = {}
            for dp_port, q, lcore in br.dp.rxq_assignment():
                by_lcore.setdefault(lcore, []).append(f"  port: {names.get(dp_port, dp_port):<16} queue-id: {q}")
            for lcore, rows in sorted(by_lcore.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
                head = f"pmd thread numa_id 0 core_id {lcore}:" if lcore is not None else "main thread:"
                out += [f"{br.config.name} {head}"] + rows
        return "\n".join(out) + "\n"

    def add_port(args: list[str]) -> str:
        bridge, name, device, ofport, *rest = args
        br = bridges([bridge])[0]
        opts = {}
        for kv in rest:
            k, eq, v = kv.partition("=")
            if not eq:
                raise CommandError(f"dpif/add-port: {kv!r}: options are KEY=VALUE ({', '.join(PORT_ARG_KEYS)})")
            opts[k] = v
        try:                                   # the config file's checks, every one
            pc = port_from_args(name, device, ofport, opts, br.config.pmd_cores)
        except ConfigError as e:
            raise CommandError(f"dpif/add-port: {e.msg}") from None
        try:
            p = br.add_port(pc)
        except DatapathError as e:
            raise CommandError(str(e)) from None
        return f"added {p.name} as ofport {p.ofport} (datapath port {p.dp_port})\n"

    def del_port(args: list[str]) -> str:
        br = bridges([args[0]])[0]
        try:
            br.del_port(args[1])
        except DatapathError as e:
            raise CommandError(str(e)) from None
        return ""

    def xstats(args: list[str]) -> str:
        br = bridges([args[0]])[0]
        p = br.ports.get(args[1])
        if p is None:
            raise CommandError(f"bridge {args[0]} has no port {args[1]}")
        if p.is_patch:
            raise CommandError(f"{args[1]} is a patch port: it has no device and no extended stats")
        return "".join(f"{k}: {v}\n" for k, v in br.dp.port_xstats(p.dp_port).items())

    def dump_flows(args: list[str]) -> str:
        verbose = "-m" in args
        rest = [a for a in args if a != "-m"]
        out = []
        for br in bridges(rest[:1]):
            now = br.dp.now_ns
            mine = {p.dp_port for p in br.ports.values()}      # its datapath may serve other bridges
            for f in br.dp.flow_dump():
                if IN_PORT.from_key(f["key"]) not in mine:
                    continue
                used = "never" if not f["used_ns"] else f"{max(0.0, (now - f['used_ns']) / 1e9):.3f}s"
                acts = format_actions(decode(f["actions"]))
                ufid = f"ufid:{f['ufid']:032x}, " if verbose else ""
                out.append(f"{ufid}{format_key(f['key'], f['mask'], verbose)}, packets:{f['packets']}, "
                           f"bytes:{f['bytes']}, used:{used}, actions:{acts}")
        return "\n".join(out) + ("\n" if out else "")

    def del_flows(args: list[str]) -> str:
        for br in bridges(args):
            br.dp.flow_flush()
            br.upcalls.clear()
        return ""

    def megaflows(enabled: bool):
        def run(args: list[str]) -> str:
            for br in bridges(args):
                br.dp.set_megaflows(enabled)         # flushes the datapath's flows
                br.upcalls.megaflows = enabled
                br.upcalls.clear()
            return f"megaflows {'enabled' if enabled else 'disabled'}\n"
        return run

    commands.register("dpif/dump-flows", "[-m] [BRIDGE]", "datapath flows: match, counters, actions", 0, 2,
                      dump_flows)
    commands.register("dpif/del-flows", "[BRIDGE]", "delete every datapath flow", 0, 1, del_flows)
    commands.register("dpif/disable-megaflows", "[BRIDGE]", "install exact-match flows only (flushes)", 0, 1,
                      megaflows(False))
    commands.register("dpif/enable-megaflows", "[BRIDGE]", "install wildcarded flows again (flushes)", 0, 1,
                      megaflows(True))
    commands.register("dpif/show", "[BRIDGE]", "ports with their counters", 0, 1, show)
    commands.register("dpif/pmd-stats-show", "[BRIDGE]", "per-PMD counters", 0, 1, pmd_stats_show)
    commands.register("dpif/pmd-stats-clear", "[BRIDGE]", "zero the per-PMD counters", 0, 1, pmd_stats_clear)
    commands.register("dpif/pmd-rxq-show", "[BRIDGE]", "which PMD polls which rx queue", 0, 1, pmd_rxq_show)
    commands.register("dpif/add-port", "BRIDGE NAME DEVICE OFPORT [n_rxq=N n_txq=N rxd=N txd=N mtu=N]",
                      "add a port while the switch runs", 4, 9, add_port)
    commands.register("dpif/del-port", "BRIDGE NAME", "remove a port while the switch runs", 2, 2, del_port)
    commands.register("dpif/port-xstats", "BRIDGE PORT", "the device's extended statistics", 2, 2, xstats)
    return counters
