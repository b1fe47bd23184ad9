"""Live reconfiguration: the difference between the running config and the YAML read again,
applied to the running switch without restarting EAL (``dpdkswitch ctl reload``, SIGHUP).

``diff(old, new)`` is pure: a `Plan` of what changes per bridge (ports removed, added, or
changed in place, bonds removed, added, or changed in place, the YAML's rules removed and added, mirrors, MAC table settings and static
entries, flood_vlans, OpenFlow listeners and controllers, the datapath id, the packet-in rate
limit), or `ReloadRefused` naming the key that cannot change while the switch runs
(``dpdk:``, ``control.socket``, ``metrics.listen``, bridges added or removed, a bridge's ``datapath:``,
``openflow.fail_mode`` and ``ssl``, patch ports that would regroup the datapaths).  ``reload(switch, service)`` loads the file the switch was started
with, checks it as ``dpdkswitch check`` does (ConfigError, FILE:LINE), diffs it and only then
applies it: a refused file changes nothing.

What is not in the plan is not touched: a port whose settings are the same keeps its datapath
port, queues and counters; a rule of the YAML that is the same (table, priority, match,
instructions, cookie, timeouts, flags) stays, with its counters; rules that controllers added
are never looked at.  A rule whose match and priority stay but whose actions change is
replaced as an OpenFlow add replaces it (counters kept).  A port whose device, netns, queues,
MTU or ofport change is removed and added again; one whose VLAN settings change keeps its
datapath port (`Bridge.set_port_vlan`).  A bond whose keys or members change is built again
from the new config (`Bridge.drop_bond`, `join_bond`) on the member ports that stay, which keep
their devices: a member added or removed is a port added or removed; the members' state
(enabled, delays), the active member and, in the same mode, the buckets carry over; its LACP
carries on unless a key LACP reads changed (lacp, lacp_time, lacp_fallback_ab, the system id or
priority: then it negotiates again), or just for the member whose own LACP keys changed.
Afterwards one revalidation pass brings the cached
megaflows in line with the changed ports, rules and settings.

What a reload ends, it ends as a stop would: a removed port's network namespace is deleted
when the switch created it and no port is left in it (netns.Namespaces.release); a removed
listener's accepted connections close with it.  A changed datapath id closes every OpenFlow
connection of the bridge, as Open vSwitch does (OpenFlow cannot tell a controller its switch's
id changed): controllers reconnect and read the new id in the features reply.

Contract: the control thread (its asyncio loop), as every other change of the switch.  Cost:
the file's parse and check, plus one device probe or unplug per port added or removed, one
flow-mod per rule changed and one revalidation pass per datapath touched.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass, field

from .config import BridgeConfig, Config, load
from .datapath import DatapathError
from .ofproto.flowstr import FlowSpec
from .ofproto.pipeline import DEFAULT_FLOW_LIMIT, FlowModError
from .openflow.connection import ActiveController, Listener
from .switch import Bridge, Switch, check, config_flows

LOG = logging.getLogger("dpdkswitch")

VLAN_KEYS = ("vlan_mode", "tag", "trunks")
PIN_KEYS = ("rxq_affinity",)
DPDK_KEYS = ("cores", "hugepages", "memory_mb", "extra_args", "file_prefix")
DATAPATH_KEYS = ("pmd_cores", "emc_insert_inv_prob", "flow_limit")
# A bond member's own LACP keys: a change reconfigures its bond, the member's device stays.
MEMBER_KEYS = ("lacp_port_id", "lacp_port_priority", "lacp_aggregation_key")
# A bond's keys that its LACP reads: a change starts its LACP again (a new actor for the
# partner); the others (mode, delays, primary, rebalancing) keep the negotiation as it is.
LACP_KEYS = ("lacp", "lacp_time", "lacp_fallback_ab", "lacp_system_id", "lacp_system_priority")
# A bond's VLAN keys are its members' (config.py copies them): changed in place, as a port's.
BOND_VLAN_KEYS = ("vlan_mode", "tag", "trunks")


class ReloadRefused(Exception):
    """A change the running switch cannot take (one line, naming the key); nothing changed."""


class ReloadFailed(Exception):
    """Applying a checked plan failed part way (a device that does not probe): what was done."""


def _same(a, b) -> bool:
    """Two config records (with a ``where``) equal but for where they are written."""
    return dataclasses.replace(a, where="") == dataclasses.replace(b, where="")


def _port_key(pc) -> dict:
    return {f.name: getattr(pc, f.name) for f in dataclasses.fields(pc) if f.name not in ("where", "peer_bridge")}


def _static_key(sm) -> tuple[str, int, str]:
    return sm.mac.lower(), sm.vlan, sm.port


def _flow_key(spec: FlowSpec) -> tuple:
    """A rule's identity in its table: what an OpenFlow add with it replaces."""
    return spec.table_id or 0, spec.priority, spec.match


@dataclass
class BridgePlan:
    """What changes on one bridge."""
    name: str
    new: BridgeConfig
    ports_removed: list[str] = field(default_factory=list)     # incl. those replaced
    ports_added: list[str] = field(default_factory=list)       # incl. those replaced
    ports_replaced: list[str] = field(default_factory=list)
    ports_vlan: list[str] = field(default_factory=list)        # VLAN settings, in place
    ports_pins: list[str] = field(default_factory=list)        # rxq_affinity, in place
    flows_removed: list[FlowSpec] = field(default_factory=list)
    flows_added: list[FlowSpec] = field(default_factory=list)
    flows_kept: int = 0
    mirrors_removed: list[str] = field(default_factory=list)
    mirrors_set: list[str] = field(default_factory=list)
    mac_table: bool = False                                    # idle_time, max_entries
    statics_removed: list = field(default_factory=list)        # (mac, vlan, port)
    statics_added: list = field(default_factory=list)
    flood: bool = False                                        # flood_vlans, forward_bpdu
    listen_removed: list[str] = field(default_factory=list)
    listen_added: list[str] = field(default_factory=list)
    controllers_removed: list[str] = field(default_factory=list)
    controllers_added: list[str] = field(default_factory=list)
    datapath_id: tuple[int, int] | None = None                 # (old, new) when it changes
    pin_limits: bool = False                                   # controller_rate_limit, _burst_limit
    flow_limits: dict[int, int] = field(default_factory=dict)  # table id -> its new flow_limit
    bonds_removed: list[str] = field(default_factory=list)
    bonds_added: list[str] = field(default_factory=list)
    bonds_changed: list[str] = field(default_factory=list)     # keys or members, in place
    bonds_lacp: list[str] = field(default_factory=list)        # of those, LACP started again
    bond_members_lacp: list[str] = field(default_factory=list)  # members whose own LACP keys changed

    def changes(self) -> list[str]:
        """One short phrase per change, for the command's answer and the log."""
        out = [f"port {n} removed" for n in self.ports_removed if n not in self.ports_replaced]
        out += [f"port {n} added" for n in self.ports_added if n not in self.ports_replaced]
        out += [f"port {n} replaced" for n in self.ports_replaced]
        out += [f"port {n} VLANs changed" for n in self.ports_vlan]
        out += [f"port {n} rxq_affinity changed" for n in self.ports_pins]
        out += [f"bond {n} removed" for n in self.bonds_removed]
        out += [f"bond {n} added" for n in self.bonds_added]
        out += [f"bond {n} changed" + (" (LACP restarted)" if n in self.bonds_lacp else "")
                for n in self.bonds_changed]
        if self.flows_removed or self.flows_added:
            out.append(f"flows: {len(self.flows_removed)} removed, {len(self.flows_added)} added, "
                       f"{self.flows_kept} kept")
        out += [f"mirror {n} removed" for n in self.mirrors_removed]
        out += [f"mirror {n} set" for n in self.mirrors_set]
        if self.mac_table:
            out.append("mac_table settings changed")
        if self.statics_removed or self.statics_added:
            out.append(f"static MACs: {len(self.statics_removed)} removed, {len(self.statics_added)} added")
        if self.flood:
            out.append("flood_vlans/forward_bpdu changed")
        out += [f"listener {t} removed" for t in self.listen_removed]
        out += [f"listener {t} added" for t in self.listen_added]
        out += [f"controller {t} removed" for t in self.controllers_removed]
        out += [f"controller {t} added" for t in self.controllers_added]
        if self.pin_limits:
            out.append("controller_rate_limit/controller_burst_limit changed")
        out += [f"table {t} flow_limit {n}" for t, n in sorted(self.flow_limits.items())]
        if self.datapath_id is not None:
            old, new = self.datapath_id
            out.append(f"datapath_id {old:#018x} -> {new:#018x} (its OpenFlow connections reconnect)")
        return out


@dataclass
class Plan:
    new: Config
    bridges: list[BridgePlan]

    def summary(self) -> str:
        lines = [f"{b.name}: {'; '.join(b.changes())}" for b in self.bridges if b.changes()]
        return "\n".join(lines) + "\n" if lines else "no change\n"


def _refuse(key: str, old, new) -> ReloadRefused:
    return ReloadRefused(f"reload refused: {key} changed ({old!r} -> {new!r}); that takes a restart "
                         f"of the switch. Nothing changed.")


def diff(old: Config, new: Config) -> Plan:
    """What turns the running OLD config into NEW; ReloadRefused for what cannot change live."""
    for k in DPDK_KEYS:
        if getattr(old.dpdk, k) != getattr(new.dpdk, k):
            raise _refuse(f"dpdk.{k}", getattr(old.dpdk, k), getattr(new.dpdk, k))
    if old.control_socket != new.control_socket:
        raise _refuse("control.socket", old.control_socket, new.control_socket)
    if old.control_busy_poll_us != new.control_busy_poll_us:
        raise _refuse("control.busy_poll_us", old.control_busy_poll_us, new.control_busy_poll_us)
    if old.metrics_listen != new.metrics_listen:
        raise _refuse("metrics.listen", old.metrics_listen, new.metrics_listen)
    if list(old.bridges) != list(new.bridges):
        raise _refuse("bridges", list(old.bridges), list(new.bridges))
    if old.datapaths() != new.datapaths():
        raise _refuse("bridges (patch ports that link bridges into one datapath)", old.datapaths(),
                      new.datapaths())
    return Plan(new, [_bridge_diff(old.bridges[n], new.bridges[n]) for n in old.bridges])


def _bridge_diff(o: BridgeConfig, n: BridgeConfig) -> BridgePlan:
    what = f"bridge {o.name}"
    for k in DATAPATH_KEYS:
        if getattr(o, k) != getattr(n, k):
            raise _refuse(f"{what} datapath.{k}", getattr(o, k), getattr(n, k))
    if o.openflow.fail_mode != n.openflow.fail_mode:
        raise _refuse(f"{what} openflow.fail_mode", o.openflow.fail_mode, n.openflow.fail_mode)
    if o.openflow.ssl != n.openflow.ssl:
        raise _refuse(f"{what} openflow.ssl", o.openflow.ssl, n.openflow.ssl)
    if o.netflow != n.netflow:
        raise _refuse(f"{what} netflow", o.netflow, n.netflow)
    if o.sflow != n.sflow:
        raise _refuse(f"{what} sflow", o.sflow, n.sflow)
    if o.ipfix != n.ipfix:
        raise _refuse(f"{what} ipfix", o.ipfix, n.ipfix)
    if o.stp != n.stp:
        raise _refuse(f"{what} stp_enable/stp_priority/stp_hello_time/stp_max_age/stp_forward_delay", o.stp, n.stp)
    if o.rstp != n.rstp:
        raise _refuse(f"{what} rstp_enable/rstp_priority/rstp_address/rstp_max_age/rstp_hello_time/"
                      "rstp_forward_delay/rstp_transmit_hold_count/rstp_ageing_time", o.rstp, n.rstp)
    p = BridgePlan(o.name, n)
    _bonds_diff(o, n, p)
    for name, opc in o.ports.items():
        npc = n.ports.get(name)
        if npc is None:
            p.ports_removed.append(name)
            continue
        a, b = _port_key(opc), _port_key(npc)
        differ = {k for k in a if a[k] != b[k]}
        if opc.bond is not None and opc.bond == npc.bond:
            differ -= set(MEMBER_KEYS)         # the bond's change (_bonds_diff), the device stays
        if differ - set(VLAN_KEYS) - set(PIN_KEYS):
            p.ports_removed.append(name)
            p.ports_added.append(name)
            p.ports_replaced.append(name)
            continue
        if differ & set(VLAN_KEYS):
            p.ports_vlan.append(name)
        if differ & set(PIN_KEYS):
            p.ports_pins.append(name)
    p.ports_added += [name for name in n.ports if name not in o.ports]

    old_flows, new_flows = config_flows(o), config_flows(n)
    new_set, old_set = set(new_flows), set(old_flows)
    p.flows_added = [s for s in dict.fromkeys(new_flows) if s not in old_set]
    p.flows_removed = [s for s in dict.fromkeys(old_flows) if s not in new_set]
    p.flows_kept = len(set(old_flows) & new_set)

    touched = set(p.ports_removed) | set(p.ports_added) | set(p.bonds_removed) | set(p.bonds_added) \
        | set(p.bonds_changed)
    old_m = {m.name: m for m in o.mirrors}
    for m in n.mirrors:
        om = old_m.get(m.name)
        names = set(m.select_src_port) | set(m.select_dst_port) | {m.output_port}
        if om is None or not _same(om, m) or names & touched:
            p.mirrors_set.append(m.name)
    p.mirrors_removed = [name for name in old_m if name not in {m.name for m in n.mirrors}]

    p.mac_table = (o.mac_table.idle_time, o.mac_table.max_entries) != (n.mac_table.idle_time,
                                                                         n.mac_table.max_entries)
    old_s = {_static_key(s) for s in o.mac_table.static}
    new_s = {_static_key(s) for s in n.mac_table.static}
    gone_ports = set(p.ports_removed) | set(p.bonds_removed) | set(p.bonds_changed)
    p.statics_removed = sorted(s for s in old_s if s not in new_s or s[2] in gone_ports)
    # A port added (or added again) takes its static entries as it comes (Bridge.add_port), a
    # bond built (again) as its members join (Bridge.join_bond).
    joining = set(p.ports_added) | set(p.bonds_added) | set(p.bonds_changed)
    p.statics_added = sorted(s for s in new_s if s[2] not in joining
                             and (s not in old_s or s[2] in gone_ports))
    p.flood = (o.flood_vlans, o.forward_bpdu) != (n.flood_vlans, n.forward_bpdu)

    p.listen_removed = [t for t in o.openflow.listen if t not in n.openflow.listen]
    p.listen_added = [t for t in n.openflow.listen if t not in o.openflow.listen]
    p.controllers_removed = [t for t in o.openflow.controllers if t not in n.openflow.controllers]
    p.controllers_added = [t for t in n.openflow.controllers if t not in o.openflow.controllers]
    p.pin_limits = (o.openflow.controller_rate_limit, o.openflow.controller_burst_limit) != (
        n.openflow.controller_rate_limit, n.openflow.controller_burst_limit)
    p.flow_limits = {t: n.flow_limits.get(t, DEFAULT_FLOW_LIMIT) for t in set(o.flow_limits) | set(n.flow_limits)
                     if o.flow_limits.get(t, DEFAULT_FLOW_LIMIT) != n.flow_limits.get(t, DEFAULT_FLOW_LIMIT)}
    if o.datapath_id != n.datapath_id:
        p.datapath_id = (o.datapath_id, n.datapath_id)
    return p


def _bonds_diff(o: BridgeConfig, n: BridgeConfig, p: BridgePlan) -> None:
    """Bonds removed, added, and changed in place: a bond key (but its VLANs, which are its
    members'), its members, or a member's LACP keys; LACP restarts only when what it reads changed."""
    p.bonds_removed = [k for k in o.bonds if k not in n.bonds]
    p.bonds_added = [k for k in n.bonds if k not in o.bonds]
    for k in [k for k in o.bonds if k in n.bonds]:
        ob, nb = o.bonds[k], n.bonds[k]
        keys = [f.name for f in dataclasses.fields(ob) if f.name not in ("where", "members", *BOND_VLAN_KEYS)]
        differ = {x for x in keys if getattr(ob, x) != getattr(nb, x)}
        members = {m: tuple(getattr(o.ports[m], x) for x in ("ofport", *MEMBER_KEYS)) for m in ob.members}
        nmembers = {m: tuple(getattr(n.ports[m], x) for x in ("ofport", *MEMBER_KEYS)) for m in nb.members}
        if differ or members != nmembers or ob.members != nb.members:
            p.bonds_changed.append(k)
            if differ & set(LACP_KEYS):
                p.bonds_lacp.append(k)
            else:                              # members come and go; a member's own keys: it alone
                p.bond_members_lacp += [m for m in nmembers if m in members and members[m] != nmembers[m]]


def _mac(text: str) -> int:
    return int(text.replace(":", ""), 16)


def apply_bridge(br: Bridge, p: BridgePlan) -> list[str]:
    """BR takes plan P (ports, rules, mirrors, MAC table, flooding); then one revalidation pass.
    The problems, one line each: a port that does not come up is left out (and out of P.new,
    which becomes the running config, so that a reload of the same file tries it again); a
    rule that a controller's rule refuses is left out.  The rest is applied.  A removed port's
    namespace goes once the ports added are in (a port replaced in its own namespace keeps it)."""
    problems = []
    readded = {_flow_key(s) for s in p.flows_added}
    br.config = p.new                          # the ports added below take their static MACs from it
    pipeline = br.pipeline
    for mac, vlan, _port in p.statics_removed:
        pipeline.macs.del_static(vlan, _mac(mac))
    left_netns = []
    for name in p.ports_removed:
        if name in br.ports:                   # (not: dpif/del-port took it already)
            netns = br.ports[name].config.netns
            br.del_port(name)
            if netns is not None:
                left_netns.append(netns.name)
    for name in p.bonds_removed + p.bonds_changed:   # the new config's bond is built below
        again = name in p.bonds_changed
        br.drop_bond(name, again=again, keep_lacp=again and name not in p.bonds_lacp)
    for name in p.ports_added:
        try:
            br.add_port(p.new.ports[name])
        except (DatapathError, OSError, RuntimeError) as e:
            problems.append(f"{p.new.ports[name].where}: port {name}: {e}")
            del p.new.ports[name]
    for ns in left_netns:
        if br.netns.release(ns):
            LOG.info("reload: network namespace %s deleted (no port of the switch is in it)", ns)
    for name in p.ports_vlan:
        if name in br.ports:
            br.set_port_vlan(p.new.ports[name])
    for name, port in br.ports.items():        # the rest: the same settings, from the new file
        port.config = p.new.ports.get(name, port.config)      # (not: one dpif/add-port added)
    for name in p.bonds_changed:               # its members that stayed join the bond as configured now
        for m in p.new.bonds[name].members:
            if m in br.ports and m not in p.ports_added:
                br.join_bond(br.ports[m], lacp=name in p.bonds_lacp or m in p.bond_members_lacp)
    if p.ports_pins:
        br.apply_pins()
    for spec in p.flows_removed:
        if _flow_key(spec) not in readded:   # else the add below replaces it, counters kept
            pipeline.delete(dataclasses.replace(spec, table_id=spec.table_id or 0), strict=True)
    for tid, limit in p.flow_limits.items():   # before the adds: they count against the new limits
        pipeline.set_flow_limit(tid, limit)
    for spec in p.flows_added:
        try:
            pipeline.add(spec)
        except FlowModError as e:              # checked on a fresh pipeline; a controller's rule may clash
            problems.append(f"bridge {p.name}: a flow of the file: {e}")
    for name in p.mirrors_removed:
        pipeline.del_mirror(name)
    for mc in p.new.mirrors:
        if mc.name in p.mirrors_set:
            pipeline.set_mirror(br.mirror(mc))
    if p.mac_table:
        pipeline.macs.idle_time = p.new.mac_table.idle_time
        pipeline.macs.max_entries = p.new.mac_table.max_entries
    for mac, vlan, port in p.statics_added:
        if port in br.ports:
            pipeline.macs.add_static(vlan, _mac(mac), br.ports[port].ofport)
    if p.flood:
        pipeline.flood_vlans = set(p.new.flood_vlans)
        pipeline.forward_bpdu = p.new.forward_bpdu
        pipeline.invalidate()
    if p.changes():
        br.revalidate()                        # the megaflows the changes touch, now
    return problems


async def apply_openflow(ofs, p: BridgePlan) -> list[str]:
    """OFS (the bridge's OFSwitch) takes P's listeners and controllers: those removed stop
    (a removed controller's connection closes, and the connections made to a removed listener),
    those added start; a new packet-in rate limit; a new datapath id closes every connection
    (controllers reconnect).  The problems, one line each (a listener whose address is taken):
    the rest is applied."""
    problems = []
    ofs.cfg = p.new.openflow
    if p.datapath_id is not None:              # before the listeners and controllers added connect
        ofs.reconnect(f"datapath id changed to {p.datapath_id[1]:#018x}")
    if p.pin_limits:
        ofs.packets.set_rate_limit(p.new.openflow.controller_rate_limit, p.new.openflow.controller_burst_limit)
    for target in p.listen_removed:
        await ofs.stop_listener(target)
    for c in [x for x in ofs.controllers if x.target in p.controllers_removed]:
        ofs.controllers.remove(c)
        await c.stop()
    for t in p.listen_added:
        lst = Listener(t, ofs, ofs.probe_interval, p.new.openflow.ssl)
        try:
            await lst.start()
        except OSError as e:
            problems.append(f"bridge {p.name}: listener {t}: {e.strerror or e}")
            continue
        ofs.listeners.append(lst)
    for t in p.controllers_added:
        c = ActiveController(t, ofs, ofs.probe_interval, p.new.openflow.ssl)
        c.start()
        ofs.controllers.append(c)
    # Standalone: the fail-open NORMAL rule while controllers are configured and none is
    # connected, as at start (a bridge without controllers is a plain one: its own rules).
    fail_open = p.new.openflow.fail_mode == "standalone" and bool(ofs.controllers) and not ofs.primaries()
    if fail_open != ofs.flows.fail_open:
        ofs.flows.set_fail_open(fail_open)
    return problems


class Reloader:
    """``reload`` for one running switch and its OpenFlow side (SERVICE: an OpenFlowService,
    or None): one reload at a time."""

    def __init__(self, switch: Switch, service=None):
        self.switch = switch
        self.service = service
        self.lock = asyncio.Lock()

    def plan(self, path: str | None = None) -> Plan:
        """The checked plan for the file (default: the one the switch runs on); ConfigError or
        ReloadRefused, with nothing changed."""
        new = load(path or self.switch.config.path)
        refused = None
        try:
            plan = diff(self.switch.config, new)
        except ReloadRefused as e:
            refused = e
        check(new, eal=False)                  # a bad file says where first
        if refused is not None:
            raise refused
        return plan

    async def reload(self, path: str | None = None) -> str:
        """Read the file again and apply the difference; what changed (one line per bridge).
        ConfigError, ReloadRefused (nothing changed) or ReloadFailed (part applied)."""
        async with self.lock:
            plan = self.plan(path)
            problems = []
            for bp in plan.bridges:
                problems += apply_bridge(self.switch.bridges[bp.name], bp)
            self.switch.config = plan.new
            for bp in plan.bridges:
                ofs = self.service.switches.get(bp.name) if self.service is not None else None
                if ofs is not None:
                    problems += await apply_openflow(ofs, bp)
            out = plan.summary()
            LOG.info("reload of %s: %s", plan.new.path, out.strip().replace("\n", "; "))
            if problems:
                raise ReloadFailed("; ".join(problems) + " (the rest of the reload is applied)")
            return out
