"""OpenFlow-level commands on the control socket: trace a packet through the tables, list and
change rules without a controller, show the upcall handler and the revalidator, and a bridge's
OpenFlow side (datapath id, ports, fail mode) and its controllers.

``ofproto/trace`` (``-generate``: with its learning), ``ofproto/show``, ``ofproto/list-controllers``, ``ofctl/dump-flows``,
``ofctl/add-flow``, ``ofctl/mod-flows``, ``ofctl/del-flows``, ``upcall/show``,
``revalidator/run``.  Handlers run on the control thread; a rule change triggers one
revalidation pass before the command returns, so its effect on cached traffic is done when the
command is.  ``ofproto/show`` reads ports and rules in O(ports + rules).
"""
from __future__ import annotations

from ..datapath import odp, parse
from ..flowkey import KEY_SIZE
from ..ofproto.fields import BY_NAME, format_key
from ..ofproto.flowstr import FlowParseError, FlowStats, format_flow, parse_flow, parse_match
from ..ofproto.match import MatchError
from ..ofproto.actions import OFPP_LOCAL
from ..ofproto.pipeline import N_TABLES, FlowModError
from ..ofswitch import OpenFlowService
from ..ofswitch.channel import CAPABILITIES_V13
from ..openflow import consts as C
from ..switch import Switch
from . import CommandError, Commands

IN_PORT = BY_NAME["in_port"]
CAPABILITY_NAMES = [(C.OFPC_FLOW_STATS, "FLOW_STATS"), (C.OFPC_TABLE_STATS, "TABLE_STATS"),
                    (C.OFPC_PORT_STATS, "PORT_STATS"), (C.OFPC_GROUP_STATS, "GROUP_STATS"),
                    (C.OFPC_IP_REASM, "IP_REASM"), (C.OFPC_QUEUE_STATS, "QUEUE_STATS"),
                    (C.OFPC_PORT_BLOCKED, "PORT_BLOCKED")]
PORT_CONFIG_NAMES = [(C.OFPPC_PORT_DOWN, "PORT_DOWN"), (C.OFPPC_NO_RECV, "NO_RECV"), (C.OFPPC_NO_FWD, "NO_FWD"),
                     (C.OFPPC_NO_PACKET_IN, "NO_PACKET_IN")]
PORT_STATE_NAMES = [(C.OFPPS_LINK_DOWN, "LINK_DOWN"), (C.OFPPS_BLOCKED, "BLOCKED"), (C.OFPPS_LIVE, "LIVE")]


def _bits(value: int, names) -> str:
    """OpenFlow flag bits as ovs-ofctl prints them: their names, or 0."""
    return " ".join(n for bit, n in names if value & bit) or "0"


def _fields(row: dict, skip=("kind", "target", "connections")) -> str:
    """key=value ..., values with spaces quoted."""
    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        return f'"{v}"' if isinstance(v, str) and (" " in v or not v) else str(v)
    return " ".join(f"{k}={val(v)}" for k, v in row.items() if k not in skip)


def register(commands: Commands, switch: Switch, openflow: OpenFlowService | None = None) -> None:
    """The commands on SWITCH's bridges; ofproto/show and ofproto/list-controllers need OPENFLOW,
    the bridges' OpenFlow side (without it they are not registered)."""
    def bridge(name: str):
        if name not in switch.bridges:
            raise CommandError(f"no bridge {name} (have: {', '.join(switch.bridges)})")
        return switch.bridges[name]

    def flow_arg(text: str, require_actions: bool = True):
        try:
            return parse_flow(text, require_actions=require_actions)
        except (FlowParseError, MatchError) as e:
            raise CommandError(f"bad flow {text!r}: {e}") from None

    def trace(args: list[str]) -> str:
        br = bridge(args[0])
        try:
            match = parse_match(args[1])
        except (FlowParseError, MatchError) as e:
            raise CommandError(f"bad flow {args[1]!r}: {e}") from None
        ofport = match.value("in_port")
        port = br.by_ofport(ofport) if ofport is not None else None
        if port is None:
            raise CommandError("the flow needs in_port=N, a port of the bridge")
        if port.is_patch:
            raise CommandError(f"in_port={ofport} is a patch port: its frames come from the peer bridge "
                               f"{port.config.peer_bridge}; trace them from a port there")
        opts, packet, generate = list(args[2:]), None, False
        while opts:
            opt = opts.pop(0)
            if opt == "-generate" and not generate:
                generate = True
            elif opt == "-packet" and opts and packet is None:
                packet = opts.pop(0)
            else:
                raise CommandError("usage: ofproto/trace BRIDGE FLOW [-generate] [-packet HEX]")
        if packet is not None:
            try:
                key = parse(bytes.fromhex(packet), port.dp_port)
            except ValueError:
                raise CommandError("-packet takes the frame in hex") from None
        else:
            k = bytearray(match.key_and_mask()[0])
            IN_PORT.to_key(k, port.dp_port)
            key = bytes(k)
        t = br.xlate.translate(key, trace=True)
        mask = t.megaflow_mask()
        full = bytes([0xFF]) * KEY_SIZE
        out = [f"Flow: {format_key(key, full)}", "", f'bridge("{br.config.name}")',
               "-" * (10 + len(br.config.name))]
        out += t.trace
        out += ["", f"Megaflow: {format_key(key, mask)}",
                f"Datapath actions: {odp.format_actions(t.actions)}"]
        if t.error:
            out.append(f"Translation failed: {t.error}")
        if generate and not t.error:
            # As Open vSwitch's trace of a generated packet: it learns (the learn action's
            # flows, NORMAL's MACs) but is not sent and counts nowhere.
            t.visits.learn(br.dp.now_ns / 1e9)
            changed(br)
        return "\n".join(out) + "\n"

    def dump_flows(args: list[str]):
        """The rules, streamed (control.Stream): 150,000 of them take seconds to format."""
        br = bridge(args[0])
        spec = flow_arg(args[1], require_actions=False) if len(args) > 1 else None
        entries = list(br.pipeline.select(spec, strict=False)) if spec else list(br.pipeline.entries())
        entries.sort(key=lambda e: (e.table_id, -e.priority, e.seq))

        def lines():
            now = br.dp.now_ns / 1e9
            for i in range(0, len(entries), 25):        # a piece: ~1-5 ms of formatting
                out = []
                for e in entries[i:i + 25]:
                    st = FlowStats(duration=now - e.created, n_packets=e.packets, n_bytes=e.bytes,
                                   idle_age=int(now - e.last_used))
                    out.append(" " + format_flow(e.spec(), st) + "\n")
                yield "".join(out)
        return lines()

    def changed(br) -> None:
        br.revalidator.run()

    def add_flow(args: list[str]) -> str:
        br = bridge(args[0])
        try:
            br.pipeline.add(flow_arg(args[1]))
        except (FlowModError, MatchError) as e:
            raise CommandError(str(e)) from None
        changed(br)
        return ""

    def mod_flows(args: list[str]) -> str:
        strict = "--strict" in args
        args = [a for a in args if a != "--strict"]
        br = bridge(args[0])
        try:
            n = len(br.pipeline.modify(flow_arg(args[1]), strict=strict))
        except (FlowModError, MatchError) as e:
            raise CommandError(str(e)) from None
        changed(br)
        return f"modified {n} rule(s)\n"

    def del_flows(args: list[str]) -> str:
        strict = "--strict" in args
        args = [a for a in args if a != "--strict"]
        br = bridge(args[0])
        spec = flow_arg(args[1], require_actions=False) if len(args) > 1 else flow_arg("", require_actions=False)
        n = len(br.pipeline.delete(spec, strict=strict))
        changed(br)
        return f"deleted {n} rule(s)\n"

    def upcall_show(args: list[str]) -> str:
        out = []
        for br in ([bridge(args[0])] if args else switch.bridges.values()):
            s = br.upcalls.stats
            last = br.revalidator.last
            out += [f"{br.config.name}:",
                    f"  flows: {br.dp.flow_count()} (limit {br.upcalls.flow_limit}), megaflows "
                    f"{'on' if br.upcalls.megaflows else 'off'}, subtables {br.dp.subtable_count()}",
                    f"  upcalls: {s.upcalls}, translations: {s.translations}, covered by an installed megaflow: "
                    f"{s.covered}, installed: {s.installed}, "
                    f"flow limit hits: {s.flow_limit_hits}, put errors: {s.put_errors}, "
                    f"packet-ins: {s.packet_ins}, translation errors: {s.errors}",
                    f"  control protocols' frames (reserved ring): {s.special}"]
            ofs = openflow.switches.get(br.config.name) if openflow is not None else None
            out.append(f"  metered drops: {s.metered} misses (OFPM_SLOWPATH), "
                       f"{ofs.packets.n_metered if ofs is not None else 0} packet-ins (OFPM_CONTROLLER)")
            if last:
                out.append(f"  last revalidation: {last.seconds * 1000:.1f} ms, {last.flows} flows, "
                           f"{last.revalidated} re-translated, {last.modified} modified, {last.deleted} deleted, "
                           f"{last.idle_deleted} idle, {last.rules_expired} rules expired")
        return "\n".join(out) + "\n"

    def reval(args: list[str]) -> str:
        out = []
        for br in ([bridge(args[0])] if args else switch.bridges.values()):
            r = br.revalidator.run()
            out.append(f"{br.config.name}: {r.flows} flows, {r.revalidated} re-translated, "
                       f"{r.modified} modified, {r.deleted + r.idle_deleted} deleted in {r.seconds * 1000:.1f} ms")
        return "\n".join(out) + "\n"

    def fdb_show(args: list[str]) -> str:
        br = bridge(args[0])
        now = br.dp.now_ns / 1e9
        names = {p.ofport: p.name for p in br.ports.values()}
        out = [" port  VLAN  MAC                Age"]
        for (vlan, mac), e in sorted(br.pipeline.macs.entries.items(), key=lambda kv: (kv[1].port, kv[0])):
            age = "static" if e.static else str(int(now - e.last_seen))
            macs = ":".join(f"{b:02x}" for b in mac.to_bytes(6, "big"))
            out.append(f"{e.port:>5}  {vlan:>4}  {macs}  {age:>4}    ({names.get(e.port, '?')})")
        return "\n".join(out) + "\n"

    def fdb_flush(args: list[str]) -> str:
        for br in ([bridge(args[0])] if args else switch.bridges.values()):
            br.pipeline.macs.flush()
            br.revalidator.run()
        return "table successfully flushed\n"

    def fdb_stats(args: list[str]) -> str:
        m = bridge(args[0]).pipeline.macs
        return (f"Statistics for bridge \"{args[0]}\":\n  Current/maximum MAC entries in the table: "
                f"{len(m.entries)}/{m.max_entries}\n  Total number of learned MAC entries     : {m.learned}\n"
                f"  Total number of expired MAC entries     : {m.expired}\n"
                f"  Total number of evicted MAC entries     : {m.evicted}\n"
                f"  Total number of port moved MAC entries  : {m.moved}\n")

    def mirror_show(args: list[str]) -> str:
        br = bridge(args[0])
        names = {p.ofport: p.name for p in br.ports.values()}
        out = []
        for m in br.pipeline.mirrors:
            dest = f"port {names.get(m.out_port, m.out_port)}" if m.out_port is not None else f"VLAN {m.out_vlan}"
            sel = "all" if m.select_all else (f"src {sorted(names[p] for p in m.src)} "
                                              f"dst {sorted(names[p] for p in m.dst)}")
            out.append(f"{m.name}: {sel}, vlans {sorted(m.vlans) if m.vlans is not None else 'all'} -> {dest}: "
                       f"packets {m.packets}, bytes {m.bytes}")
        return "\n".join(out) + ("\n" if out else "")

    def ofswitch(name: str):
        bridge(name)
        return openflow.switches[name]

    def of_show(args: list[str]) -> str:
        """As ``ovs-ofctl show``: features, ports with their OpenFlow numbers, and the fail mode."""
        ofs = ofswitch(args[0])
        br = ofs.br
        source = "openflow.datapath_id" if br.config.openflow.datapath_id is not None else \
            "default: a hash of the bridge name"
        out = [f"{ofs.name}: dpid:{ofs.dpid:016x} ({source})",
               f"n_tables:{N_TABLES}, n_buffers:0",
               f"capabilities: {_bits(CAPABILITIES_V13, CAPABILITY_NAMES)}"]
        for rec in ofs.ports.desc(C.OFP13_VERSION):
            number = "LOCAL" if rec.port_no == OFPP_LOCAL else str(rec.port_no)
            mac = ":".join(f"{b:02x}" for b in rec.hw_addr.to_bytes(6, "big"))
            out += [f" {number}({rec.name}): addr:{mac}",
                    f"     config:     {_bits(rec.config, PORT_CONFIG_NAMES)}",
                    f"     state:      {_bits(rec.state, PORT_STATE_NAMES)}",
                    f"     speed: {rec.curr_speed // 1000} Mbps now, {rec.max_speed // 1000} Mbps max"]
        mode = ofs.cfg.fail_mode
        if mode == "standalone" and ofs.cfg.controllers:
            mode += (" (no controller connected: priority=0,actions=NORMAL is in force)" if ofs.flows.fail_open
                     else " (a controller is connected)")
        elif mode == "standalone":
            mode += " (no controller configured)"
        rows = ofs.endpoints()
        ctls = [r for r in rows if r["kind"] == "controller"]
        n_service = sum(len(r["connections"]) for r in rows if r["kind"] == "listener")
        out += [f"fail_mode: {mode}",
                f"rules: {sum(1 for _ in br.pipeline.entries())}, groups: {len(br.pipeline.groups)}, "
                f"meters: {len(br.pipeline.meters)}",
                f"controllers: {len(ctls)} configured, {sum(r['is_connected'] for r in ctls)} connected; "
                f"listeners: {', '.join(r['target'] for r in rows if r['kind'] == 'listener')} "
                f"({n_service} connection(s)); see ofproto/list-controllers"]
        return "\n".join(out) + "\n"

    def list_controllers(args: list[str]) -> str:
        out = []
        for name in ([args[0]] if args else list(openflow.switches)):
            out.append(f"{name}:")
            for row in ofswitch(name).endpoints():
                out.append(f"  {row['kind']} {row['target']}: {_fields(row)}")
                for conn in row.get("connections", []):
                    out.append(f"    connection: {_fields(conn)}")
        return "\n".join(out) + "\n"

    if openflow is not None:
        commands.register("ofproto/show", "BRIDGE",
                          "the bridge as OpenFlow sees it: datapath id, tables, ports, fail mode", 1, 1, of_show)
        commands.register("ofproto/list-controllers", "[BRIDGE]",
                          "controllers and listeners: target, connected, role, state, counters", 0, 1,
                          list_controllers)
    commands.register("mirror/show", "BRIDGE", "mirrors and their counters", 1, 1, mirror_show)
    commands.register("fdb/show", "BRIDGE", "the learned MAC addresses: port, VLAN, MAC, age", 1, 1, fdb_show)
    commands.register("fdb/flush", "[BRIDGE]", "forget the learned MAC addresses", 0, 1, fdb_flush)
    commands.register("fdb/stats-show", "BRIDGE", "MAC table counters", 1, 1, fdb_stats)
    commands.register("ofproto/trace", "BRIDGE FLOW [-generate] [-packet HEX]",
                      "the tables and rules a packet visits, its datapath actions and megaflow; "
                      "-generate: with its side effects (learn)", 2, 5, trace)
    commands.register("ofctl/dump-flows", "BRIDGE [MATCH]", "OpenFlow rules with their counters", 1, 2,
                      dump_flows)
    commands.register("ofctl/add-flow", "BRIDGE FLOW", "add a rule (ovs-ofctl syntax)", 2, 2, add_flow)
    commands.register("ofctl/mod-flows", "BRIDGE FLOW [--strict]", "change the actions of rules", 2, 3,
                      mod_flows)
    commands.register("ofctl/del-flows", "BRIDGE [MATCH] [--strict]", "delete rules", 1, 3, del_flows)
    commands.register("upcall/show", "[BRIDGE]", "the upcall handler's and revalidator's counters", 0, 1,
                      upcall_show)
    commands.register("revalidator/run", "[BRIDGE]", "one revalidation pass, now", 0, 1, reval)
