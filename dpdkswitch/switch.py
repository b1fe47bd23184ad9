"""The switch: bridges built from a config, on datapaths with their ports and PMD threads.

Owns the mapping from config to datapath: EAL arguments, mempool sizing, OpenFlow port
numbers to datapath port numbers, namespaces of tap ports, and each bridge's OpenFlow
pipeline.  A bridge has a datapath of its own, unless patch ports link it to other bridges:
those share one (a ``Backer``, as Open vSwitch calls it), with one upcall handler and one
revalidator for all of them, so a frame crosses every bridge on its way in one datapath pass.

Contract: built, changed and stopped from the control thread only (the one that started
EAL).  Adding or removing a port costs a device probe or unplug plus one RCU grace period;
the PMDs keep forwarding meanwhile.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .config import BridgeConfig, Config, ConfigError, FlowConfig, MirrorConfig, PortConfig
from .datapath import PORT_STATS_FIELDS, Datapath, DatapathError, Eal, PortInfo, is_pci, odp, parse
from .ofproto.flowstr import FlowParseError, FlowSpec, parse_flow
from .ofproto.match import MatchError
from .ofproto.normal import Mirror, VlanPort
from .ofproto.pipeline import FlowModError, MeterEntry, Pipeline, PortEntry
from .ofproto.xlate import PacketInRegistry, Translation, Translator
from .openflow.connection import tls_context
from .ofproto.actions import OFPP_ANY, OFPP_LOCAL, Output
from .revalidator import Revalidator
from .bfd import Bfd, BfdSession, BfdSettings
from .cfm import Cfm, CfmSession
from .bond import Bond
from .lacp import Lacp, LacpBond, LacpMember
from .rstp import Rstp
from .rstp import cost_for_speed as rstp_cost_for_speed
from .stp import Stp, cost_for_speed
from .upcall import UpcallHandler
from .netns import Namespaces
from .netns import kernel_carrier
from .netns import link_up as netns_link_up

LOG = logging.getLogger("dpdkswitch.bond")

def parse_config_flow(flow: FlowConfig) -> FlowSpec:
    """A flow of the YAML, in ovs-ofctl syntax; a bad one is a config error at its line."""
    try:
        return parse_flow(flow.text)
    except (FlowParseError, MatchError) as e:
        raise ConfigError.at(flow.where, f"flow {flow.text!r}: {e}") from None


# A bridge without flows is a learning switch, as Open vSwitch's default bridge.
DEFAULT_FLOWS = ["priority=0,actions=NORMAL"]


def config_flows(config: BridgeConfig) -> list[FlowSpec]:
    """The bridge's rules as its config gives them: the YAML flows, or with none the default
    (a learning switch, unless the bridge is for controllers only, fail_mode secure).
    ConfigError at its line for a flow that does not parse."""
    defaults = [] if config.openflow.fail_mode == "secure" else DEFAULT_FLOWS
    return [parse_config_flow(f) for f in config.flows] or [parse_flow(f) for f in defaults]


def bridge_pipeline(config: BridgeConfig, clock=lambda: 0.0) -> Pipeline:
    """The bridge's OpenFlow pipeline as its config sets it up: MAC table settings and the
    rules of `config_flows`, under the tables' flow limits.  A flow that does not parse, or
    that the pipeline refuses (a group or meter that does not exist, a goto_table that does not
    go forward, a table past its flow_limit, too many actions), is a ConfigError at its line."""
    specs = config_flows(config)
    pipeline = Pipeline(clock=clock, name=config.name)
    pipeline.macs.idle_time = config.mac_table.idle_time
    pipeline.macs.max_entries = config.mac_table.max_entries
    pipeline.flood_vlans = set(config.flood_vlans)
    pipeline.forward_bpdu = config.forward_bpdu
    for tid, limit in config.flow_limits.items():
        pipeline.set_flow_limit(tid, limit)
    pipeline.split_ipv4_flows = config.netflow is not None
    pipeline.sflow_probability = 1 / config.sflow.sampling if config.sflow else 0.0
    ix = config.ipfix
    pipeline.ipfix_probability = 1 / ix.sampling if ix and ix.targets else 0.0
    pipeline.ipfix_flow_samples = ix is not None
    for spec, fc in zip(specs, config.flows or [None] * len(specs)):
        try:
            pipeline.add(spec)
        except (FlowModError, MatchError) as e:
            if fc is None:
                raise
            raise ConfigError.at(fc.where, f"flow {fc.text!r}: {e}") from None
    return pipeline


def mbufs_for(ports: list[PortConfig], n_lcores: int) -> int:
    """A mempool big enough for every port's rings, frames in flight and per-lcore caches."""
    rings = sum(p.n_rxq * p.rxd + (p.n_txq or n_lcores) * p.txd for p in ports)
    need = rings * 4 // 3 + n_lcores * 512 + 4096 + n_lcores * 4096   # + frames parked behind misses
    n = 16384
    while n < need:
        n *= 2
    return n


def eal_args(config: Config) -> tuple[list[str], str]:
    """EAL's arguments for the config's ``dpdk:`` section, and a note on the memory choice
    (DatapathError: hugepages: on, but too few are free)."""
    d = config.dpdk
    pci = any(is_pci(p.device) for b in config.bridges.values() for p in b.ports.values())
    return Eal.build_args(d.cores, d.hugepages, d.memory_mb, d.extra_args, d.file_prefix, pci, d.log_level)


@dataclass
class Checked:
    """What `check` built, for `Switch` to take rather than build again: each bridge's pipeline
    by name (on no clock yet: `Bridge.create` gives it its datapath's) and EAL's arguments
    with their note (None when EAL was not checked)."""
    pipelines: dict[str, Pipeline]
    eal: tuple[list[str], str] | None = None


def check(config: Config, eal: bool = True) -> Checked:
    """Every check ``dpdkswitch run`` applies to CONFIG short of starting EAL, for ``dpdkswitch
    check`` and for ``run`` before it starts EAL: EAL's arguments (``hugepages: on`` needs them
    free; not with EAL false, for a reload into a running EAL that holds them), each bridge's
    pipeline built as `Bridge.create` builds it (without a datapath), and the OpenFlow TLS
    files loaded as the connections load them.  What it built (``Checked``); ConfigError, one
    line with FILE:LINE, on the first problem."""
    checked = Checked({})
    try:
        if eal:
            checked.eal = eal_args(config)
    except DatapathError as e:
        raise ConfigError.at(config.dpdk.hugepages_where or f"{config.path}:1", f"dpdk.{e}") from None
    for bc in config.bridges.values():
        checked.pipelines[bc.name] = bridge_pipeline(bc)
        if bc.openflow.ssl is not None:
            try:
                tls_context(bc.openflow.ssl, server=True)
            except (OSError, ValueError) as e:     # ssl.SSLError is an OSError
                raise ConfigError.at(bc.openflow.ssl.where, f"bridge {bc.name!r} openflow ssl: the files do "
                                     f"not load as a certificate, its key and a CA: {e}") from None
    return checked


PATCH_MAC_OUI = 0x02_00_5E_00_00_00    # patch ports get a locally administered MAC (no device)


@dataclass
class Port:
    name: str
    ofport: int
    dp_port: int                           # -1 for a patch port
    config: PortConfig
    info: PortInfo

    @property
    def is_patch(self) -> bool:
        return self.dp_port < 0


@dataclass(frozen=True)
class _Eth:
    """A flow of which only the source MAC is known (a learning frame's, for Bond.choose)."""
    src: int

    def get(self, name: str) -> int:
        return self.src if name == "eth_src" else 0


class Backer:
    """One datapath and the slow path that serves it, for the bridges on it.

    The first bridge's pipeline and translator seed the upcall handler and revalidator; every
    bridge's translator shares the list of pipelines, so any of them translates a miss in the
    bridge that owns its input port."""

    def __init__(self, configs: list[BridgeConfig], manual_clock: bool = False):
        first = configs[0]
        ports = [p for c in configs for p in c.ports.values() if not p.peer]
        self.names = [c.name for c in configs]
        self.pmd_cores = sorted({core for c in configs for core in c.pmd_cores})
        self.dp = Datapath(first.name, n_mbufs=mbufs_for(ports, len(Eal.lcores())), manual_clock=manual_clock,
                           flow_limit=first.flow_limit, emc_insert_inv_prob=first.emc_insert_inv_prob)
        self.flow_limit = first.flow_limit
        self.pipelines: list[Pipeline] = []
        self.registry = PacketInRegistry()
        self.bridges: dict[str, "Bridge"] = {}
        self.upcalls: UpcallHandler | None = None
        self.revalidator: Revalidator | None = None
        self.started = False
        self.revalidation_due = False          # a pass is scheduled after a MAC table change

    def attach(self, pipeline: Pipeline) -> Translator:
        self.pipelines.append(pipeline)
        xlate = Translator(pipeline, self.registry, self.pipelines)
        if self.upcalls is None:
            self.upcalls = UpcallHandler(self.dp, pipeline, xlate, flow_limit=self.flow_limit)
            self.revalidator = Revalidator(self.dp, pipeline, xlate, self.upcalls)
        return xlate

    def free_dp_port(self) -> int:
        used = {p.dp_port for br in self.bridges.values() for p in br.ports.values()}
        return next(i for i in range(1, 256) if i not in used)

    def start(self) -> None:
        """PMD threads, once every bridge on it has its ports."""
        if self.started:
            return
        self.started = True
        self.revalidator.run()
        if self.pmd_cores:
            self.dp.start_pmds(self.pmd_cores)
            for br in self.bridges.values():
                br.apply_pins()

    def detach(self, bridge: "Bridge") -> None:
        """BRIDGE leaves; the last one out closes the datapath (stops PMDs, removes ports)."""
        self.bridges.pop(bridge.config.name, None)
        if bridge.pipeline in self.pipelines:
            self.pipelines.remove(bridge.pipeline)
        if not self.bridges:
            self.dp.close()


@dataclass
class Bridge:
    config: BridgeConfig
    dp: Datapath
    netns: Namespaces
    pipeline: Pipeline
    xlate: Translator
    upcalls: UpcallHandler
    revalidator: Revalidator
    backer: Backer
    ports: dict[str, Port] = field(default_factory=dict)
    stp: Stp | None = None                 # its spanning tree, with stp_enable (start_stp)
    rstp: Rstp | None = None               # its rapid spanning tree, with rstp_enable (start_rstp)
    bfd: Bfd | None = None                 # its ports' BFD sessions, once a port has one (join_bfd)
    cfm: Cfm | None = None                 # its ports' CFM maintenance points (join_cfm)
    lacp: Lacp | None = None               # its bonds' LACP, once a bond has lacp (join_lacp)
    carrier: dict[int, bool] = field(default_factory=dict)   # bond members' link state, as last polled
    bonds: dict[str, Bond] = field(default_factory=dict)      # its bonds (join_bond)
    next_protocol_run: float = 0.0         # time.monotonic() when run_protocols is due (Switch.run_protocols_due)
    dropped_bonds: dict[str, Bond] = field(default_factory=dict)   # drop_bond's, until built again

    @classmethod
    def create(cls, config: BridgeConfig, netns: Namespaces, manual_clock: bool = False,
               backer: Backer | None = None, pipeline: Pipeline | None = None) -> "Bridge":
        """A bridge on BACKER's datapath (default: a datapath of its own), with PIPELINE (one
        `bridge_pipeline` built from CONFIG, as `check` does; default: built here)."""
        backer = backer or Backer([config], manual_clock)
        dp = backer.dp
        clock = lambda: dp.now_ns / 1e9
        if pipeline is None:
            pipeline = bridge_pipeline(config, clock=clock)
        else:
            pipeline.set_clock(clock)
        xlate = backer.attach(pipeline)
        br = cls(config, dp, netns, pipeline, xlate, backer.upcalls, backer.revalidator, backer)
        backer.bridges[config.name] = br
        return br

    # -- ports
    def add_port(self, pc: PortConfig) -> Port:
        if pc.name in self.ports:
            raise DatapathError(f"bridge {self.config.name} already has a port {pc.name}")
        if any(p.ofport == pc.ofport for p in self.ports.values()):
            raise DatapathError(f"bridge {self.config.name}: ofport {pc.ofport} is taken")
        if pc.peer:
            return self._add_patch(pc)
        dp_port = self.backer.free_dp_port()
        info = self.dp.add_port(dp_port, pc.device, n_rxq=pc.n_rxq, n_txq=pc.n_txq, rxd=pc.rxd,
                                txd=pc.txd, mtu=pc.mtu)
        port = Port(pc.name, pc.ofport, dp_port, pc, info)
        self.ports[pc.name] = port
        try:
            if pc.netns:
                self.netns.attach(pc.devargs_dict["iface"], pc.netns.name, pc.netns.address)
        except Exception:
            self.del_port(pc.name)
            raise
        self.pipeline.set_port(PortEntry(pc.ofport, pc.name, dp_port, vlan=self._vlan(pc)))
        self.join_stp(port)
        self.join_rstp(port)
        self.join_bfd(port)
        self.join_cfm(port)
        self.join_lacp(port)
        self.join_bond(port)
        self._port_added(pc)
        return port

    @staticmethod
    def _vlan(pc: PortConfig) -> VlanPort:
        return VlanPort(pc.vlan_mode or "trunk", pc.tag, frozenset(pc.trunks) if pc.trunks is not None else None)

    def _patch_peer(self, pc: PortConfig) -> tuple["Bridge", PortEntry] | None:
        """The peer bridge and its end of the patch, when both are there."""
        peer_br = self.backer.bridges.get(pc.peer_bridge or "")
        if peer_br is None:
            return None
        peer = peer_br.ports.get(pc.peer)
        if peer is None or not peer.is_patch or peer.config.peer != pc.name:
            return None
        return peer_br, peer_br.pipeline.ports[peer.ofport]

    def _add_patch(self, pc: PortConfig) -> Port:
        """A patch port: no datapath port; linked both ways once the peer is there."""
        if pc.peer_bridge and pc.peer_bridge not in self.backer.names:
            raise DatapathError(f"patch port {pc.name}: bridge {pc.peer_bridge} is on another datapath")
        mac = PATCH_MAC_OUI | (hash(pc.name) & 0xFFFFFF)
        info = PortInfo(-1, pc.name, "patch", -1, -1, 0, 0, 0, 0, 0, False, False, 0,
                        ":".join(f"{b:02x}" for b in mac.to_bytes(6, "big")))
        port = Port(pc.name, pc.ofport, -1, pc, info)
        self.ports[pc.name] = port
        entry = PortEntry(pc.ofport, pc.name, -1, live=False, vlan=self._vlan(pc))
        linked = self._patch_peer(pc)
        if linked is not None:
            peer_br, peer = linked
            entry.patch, entry.live = (peer_br.pipeline, peer.ofport), True
            peer.patch, peer.live = (self.pipeline, pc.ofport), True
            peer_br.ports[peer.name].info.link_up = True
            info.link_up = True
            peer_br.pipeline.set_port(peer)         # its translations change too
        self.pipeline.set_port(entry)
        self.join_stp(port)
        self.join_rstp(port)
        self.pipeline.liveness.set_carrier(pc.ofport, entry.live)      # a patch port: linked
        if linked is not None:
            linked[0].pipeline.liveness.set_carrier(linked[1].ofport, True)
        self._port_added(pc)
        return port

    def _port_added(self, pc: PortConfig) -> None:
        for sm in self.config.mac_table.static:
            if sm.port == pc.name:
                self.pipeline.macs.add_static(sm.vlan, int(sm.mac.replace(":", ""), 16), pc.ofport)
        self.apply_pins()
        self.revalidator.run()

    def del_port(self, name: str) -> None:
        port = self.ports.pop(name, None)
        if port is None:
            raise DatapathError(f"bridge {self.config.name} has no port {name}")
        entry = self.pipeline.ports.get(port.ofport)
        if port.is_patch and entry is not None and entry.patch is not None:
            peer_p, peer_ofport = entry.patch           # the other end stays, unlinked
            peer = peer_p.ports.get(peer_ofport)
            if peer is not None:
                peer.patch, peer.live = None, False
                peer_br = self.backer.bridges.get(peer_p.name)
                if peer_br is not None and peer.name in peer_br.ports:
                    peer_br.ports[peer.name].info.link_up = False
                peer_p.set_port(peer)
                peer_p.liveness.set_carrier(peer_ofport, False)
        if self.stp is not None:
            self.stp.remove_port(port.ofport)
        if self.rstp is not None:
            self.rstp.remove_port(port.ofport)
        if self.bfd is not None:
            self.bfd.remove(port.ofport)
        if self.cfm is not None:
            self.cfm.remove(port.ofport)
        if self.lacp is not None:
            self.lacp.remove_port(port.ofport)
            self.pipeline.liveness.forget(port.ofport)
        self.carrier.pop(port.ofport, None)
        if port.ofport in self.pipeline.bonds:
            self.pipeline.del_bond_member(port.ofport)
        self.pipeline.del_port(port.ofport)
        self.revalidator.run()                 # no megaflow sends to it any more
        if not port.is_patch:
            self.dp.del_port(port.dp_port)

    def port_info(self, port: Port) -> PortInfo:
        """The device's view of the port; for a tap in a host namespace, the link state the
        host sees (the tap driver cannot see into the namespace); a patch port is up while
        linked."""
        if port.is_patch:
            return port.info
        info = self.dp.port_info(port.dp_port)
        if port.config.netns:
            info.link_up = netns_link_up(port.config.devargs_dict["iface"], port.config.netns.name)
        elif port.config.device.startswith("net_af_packet") and info.link_up:
            carrier = kernel_carrier(port.config.devargs_dict.get("iface", ""))
            info.link_up = info.link_up if carrier is None else carrier
        return info

    def port_stats(self, port: Port) -> dict[str, int]:
        """The port's counters: the device's, or for a patch port what crossed it (counted as
        the revalidator pushes datapath flow stats, as Open vSwitch counts patch ports)."""
        if not port.is_patch:
            return self.dp.port_stats(port.dp_port)
        e = self.pipeline.ports.get(port.ofport)
        stats = dict.fromkeys(PORT_STATS_FIELDS, 0)
        if e is not None:
            stats.update(rx_packets=e.rx_packets, rx_bytes=e.rx_bytes, tx_packets=e.tx_packets,
                         tx_bytes=e.tx_bytes)
        return stats

    def by_ofport(self, ofport: int) -> Port | None:
        return next((p for p in self.ports.values() if p.ofport == ofport), None)

    def apply_pins(self) -> None:
        pins = [(p.dp_port, q, core) for br in self.backer.bridges.values() for p in br.ports.values()
                for q, core in p.config.rxq_affinity.items()]
        self.dp.pin_rxqs(pins)

    def mirror(self, mc: MirrorConfig) -> Mirror:
        """The pipeline's mirror for MC, on the OpenFlow ports its port names have now."""
        byname = {p.name: {p.ofport} for p in self.ports.values()}
        for name, bond in self.bonds.items():          # a bond: its members, out by the bond
            byname[name] = {o for o in bond.members if self.by_ofport(o) is not None}
        out = None
        if mc.output_port in self.bonds:
            out = self.bonds[mc.output_port].id
        elif mc.output_port in byname:
            out = min(byname[mc.output_port])
        return Mirror(
            mc.name, mc.select_all, frozenset(o for n in mc.select_src_port for o in byname.get(n, ())),
            frozenset(o for n in mc.select_dst_port for o in byname.get(n, ())),
            frozenset(mc.select_vlan) if mc.select_vlan is not None else None, out, mc.output_vlan)

    def apply_mirrors(self) -> None:
        for mc in self.config.mirrors:
            self.pipeline.set_mirror(self.mirror(mc))

    def set_port_vlan(self, pc: PortConfig) -> None:
        """Port PC.name takes PC's VLAN settings (mode, tag, trunks) in place: its datapath port
        and counters stay; the MACs learned on it are forgotten (they were learned on its old
        VLANs) and every cached translation is looked at again on the next revalidation."""
        port = self.ports[pc.name]
        port.config = pc
        entry = self.pipeline.ports[port.ofport]
        entry.vlan = self._vlan(pc)
        self.pipeline.set_port(entry)
        self.pipeline.macs.flush(port.ofport)

    # -- the slow path, for the bridge's OpenFlow side
    def revalidate(self):
        """One revalidation pass now (of the datapath's every megaflow, shared with the bridges
        patch ports link to): fresh rule counters, expiry, megaflows true to the tables."""
        return self.revalidator.run()

    def caches_megaflows(self) -> bool:
        """Whether the datapath holds any megaflow the slow path installed (else a rule change
        needs no revalidation pass: the periodic one takes its records)."""
        return bool(self.upcalls.ukeys)

    def set_packet_in_hook(self, hook) -> None:
        """HOOK(PacketInEvent) receives the packet-ins of this bridge's rules (None: nobody)."""
        if hook is None:
            self.upcalls.packet_in_hooks.pop(self.config.name, None)
        else:
            self.upcalls.packet_in_hooks[self.config.name] = hook

    def packet_out(self, frame: bytes, in_ofport: int, actions) -> Translation:
        """OpenFlow packet-out: FRAME through ACTIONS (an OpenFlow action list), as received on
        IN_OFPORT, a port of the bridge or a reserved port (CONTROLLER, LOCAL, ANY; those and
        patch ports enter the datapath as its port 0).  The rules the actions reach (through
        output:TABLE) count the frame (``FlowEntry.credit``: unless their flags say not to) and
        were used now.  The translation; DatapathError if the datapath refuses
        the frame."""
        entry = self.pipeline.ports.get(in_ofport)
        dp_in = max(entry.dp_port, 0) if entry is not None else 0      # a patch port has no datapath port
        t = self.xlate.translate_actions(parse(frame, dp_in), in_ofport, actions)
        now = self.dp.now_ns / 1e9
        for e in t.entries:
            e.credit(1, len(frame), now)
        if t.actions:
            self.dp.execute(frame, dp_in, odp.encode(t.actions))
        return t

    # -- meters
    def meter_mod(self, command: str, meter: MeterEntry) -> list[int]:
        """OpenFlow meter-mod (add, modify, delete; see Pipeline.meter_mod): the pipeline's meter
        table and the datapath's meters, kept in step; the ids of the meters changed.  A set
        meter is programmed before the table takes it, so FlowModError (the table refuses) or
        DatapathError (the datapath does) leave both as they were.  A deleted meter leaves the
        table, its rules with it, then the datapath, where a missing meter passes everything."""
        if command == "delete":
            gone = self.pipeline.meter_mod(command, meter)
            for mid in gone:
                try:
                    self.dp.meter_del(mid)
                except DatapathError:
                    pass                                # not in the datapath: nothing to undo
            return gone
        self.pipeline.check_meter_mod(command, meter)
        rate, burst = meter.lowest_band()
        self.dp.meter_set(meter.meter_id, rate, burst, meter.pktps)
        return self.pipeline.meter_mod(command, meter)

    def meter_stats(self, meter_id: int) -> tuple[int, int]:
        """(packets, dropped) of the datapath's meter; DatapathError if it has none."""
        return self.dp.meter_stats(meter_id)

    # -- the spanning tree (stp.py), with stp_enable
    def start_stp(self) -> None:
        """The bridge's spanning tree, on its ports with stp_enable, registered as the control
        protocol that takes BPDUs before the OpenFlow tables (ofproto/special.py)."""
        c = self.config.stp
        if not c.enable or self.stp is not None:
            return
        self.stp = Stp(self.config.name, self.config.datapath_id & ((1 << 48) - 1), c.priority, c.hello_time,
                       c.max_age, c.forward_delay, send=self._stp_send, on_state=self._stp_state,
                       on_flush=self._stp_flush, now=self.dp.now_ns / 1e9)
        for port in sorted(self.ports.values(), key=lambda p: p.ofport):
            self.join_stp(port)
        self.pipeline.special.register(self.stp)
        self.pipeline.ports_changed()

    def join_stp(self, port: Port) -> None:
        """PORT joins the spanning tree, if the bridge has one and the port takes part (the
        LOCAL port never does, as Open vSwitch's internal ports)."""
        pc = port.config
        if self.stp is None or not pc.stp_enable or port.ofport == OFPP_LOCAL or port.ofport > 255:
            return
        cost = pc.stp_path_cost or cost_for_speed(port.info.link_speed or 0)
        mac = bytes.fromhex(port.info.mac.replace(":", "")) if port.info.mac else bytes(6)
        self.stp.add_port(port.ofport, port.name, cost, pc.stp_port_priority, mac)

    def _stp_send(self, ofport: int, frame: bytes) -> None:
        """A BPDU out of OFPORT: a packet-out with no input port (Open vSwitch's send_bpdu_cb)."""
        try:
            self.packet_out(frame, OFPP_ANY, [Output(ofport)])
        except DatapathError:
            pass                               # the port went away; the next hello tries again

    def _stp_state(self, ofport: int, old: str, new: str) -> None:
        """A port's spanning tree state changed: translations that read it are redone, and a
        change of whether the port learns flushes the MAC table (as Open vSwitch)."""
        if self.stp is not None and (old in ("learning", "forwarding", "disabled")) != (
                new in ("learning", "forwarding", "disabled")):
            self.pipeline.macs.flush()
        self.pipeline.ports_changed()

    def _stp_flush(self) -> None:
        """A topology change: the MAC table is flushed, as Open vSwitch's fdb_needs_flush."""
        self.pipeline.macs.flush()
        self.pipeline.ports_changed()

    # -- the rapid spanning tree (rstp.py), with rstp_enable (it wins over stp_enable, as in OVS)
    def start_rstp(self) -> None:
        """The bridge's rapid spanning tree, on its ports with rstp_enable, registered as the
        control protocol that takes BPDUs before the OpenFlow tables (ofproto/special.py)."""
        c = self.config.rstp
        if not c.enable or self.rstp is not None:
            return
        address = int(c.address.replace(":", ""), 16) if c.address else self.config.datapath_id & ((1 << 48) - 1)
        self.rstp = Rstp(self.config.name, address, c.priority, c.hello_time, c.max_age, c.forward_delay,
                         c.transmit_hold_count, c.ageing_time or 300, send=self._stp_send, on_state=self._rstp_state,
                         on_flush=self._rstp_flush, on_root_moved=self._rstp_root_moved,
                         now=self.dp.now_ns / 1e9)
        if c.ageing_time is not None:
            self.pipeline.macs.idle_time = c.ageing_time
        for port in sorted(self.ports.values(), key=lambda p: p.ofport):
            self.join_rstp(port)
        self.pipeline.special.register(self.rstp)
        self.pipeline.ports_changed()

    def join_rstp(self, port: Port) -> None:
        """PORT joins the rapid spanning tree, if the bridge has one and the port takes part."""
        pc = port.config
        if self.rstp is None or not pc.rstp_enable or port.ofport == OFPP_LOCAL or port.ofport > 4095:
            return
        cost = pc.rstp_port_path_cost or rstp_cost_for_speed(port.info.link_speed or 0)
        mac = bytes.fromhex(port.info.mac.replace(":", "")) if port.info.mac else bytes(6)
        e = self.pipeline.ports.get(port.ofport)
        self.rstp.add_port(port.ofport, port.name, cost, pc.rstp_port_priority, mac, pc.rstp_port_admin_edge,
                           pc.rstp_port_auto_edge, enabled=e is not None and e.live)
        if pc.rstp_port_mcheck:
            self.rstp.mcheck(port.ofport)

    def _rstp_state(self, ofport: int, old: str, new: str) -> None:
        """A port's RSTP state changed: translations that read it are redone; a change of
        whether it learns flushes what was learned on it, unless it is the old root port whose
        addresses move to the new one (Open vSwitch's update_rstp_port_state)."""
        if ((old in ("learning", "forwarding", "disabled")) != (new in ("learning", "forwarding", "disabled"))
                and self.rstp is not None and ofport != self.rstp.root_moving_from()):
            self.pipeline.macs.flush(ofport)
        self.pipeline.ports_changed()

    def _rstp_root_moved(self, old: int, new: int) -> None:
        """The root port moved: what was learned on the old one is on the new one (bundle_move)."""
        if self.pipeline.macs.move(old, new):
            self.pipeline.ports_changed()

    def _rstp_flush(self, ofport: int) -> None:
        """A topology change on OFPORT: what was learned on it is flushed (RSTP's fdbFlush),
        unless it is the old root port, whose addresses move (as Open vSwitch's rstp_run)."""
        if self.rstp is not None and ofport == self.rstp.root_moving_from():
            return
        self.pipeline.macs.flush(ofport)
        self.pipeline.ports_changed()

    # -- BFD (bfd.py), per port with bfd: {enable: true}
    def join_bfd(self, port: Port) -> None:
        """A BFD session on PORT when its config asks: the bridge's Bfd registers (once) as a
        control protocol and as an input of the ports' liveness."""
        bc = port.config.bfd
        if bc is None or not bc.enable or port.is_patch:
            return
        if self.bfd is None:
            self.bfd = Bfd(self.config.name)
            self.pipeline.special.register(self.bfd)
            self.pipeline.liveness.register("bfd", self.bfd.may_enable, group="oam")
        ofport = port.ofport
        mac = bytes.fromhex(port.info.mac.replace(":", "")) if port.info.mac else bytes(6)
        settings = BfdSettings(bc.min_rx, bc.min_tx, bc.mult, bc.cpath_down, bc.decay_min_rx, bc.forwarding_if_rx,
                               bc.dst_mac, bc.src_ip, bc.dst_ip)

        def rx_packets() -> int:
            try:
                return int(self.dp.port_stats(port.dp_port)["rx_packets"])
            except DatapathError:
                return 0
        self.bfd.add(ofport, BfdSession(port.name, settings, mac, lambda frame: self._protocol_send(ofport, frame),
                                        self.dp.now_ns / 1e9,
                                        on_change=lambda: self.pipeline.liveness.update(ofport),
                                        rx_packets=rx_packets))
        self.pipeline.ports_changed()
        self.pipeline.liveness.update(ofport)

    def join_cfm(self, port: Port) -> None:
        """A CFM maintenance point on PORT when its config gives cfm.mpid (as join_bfd)."""
        cc = port.config.cfm
        if cc is None or port.is_patch:
            return
        if self.cfm is None:
            self.cfm = Cfm(self.config.name)
            self.pipeline.special.register(self.cfm)
            self.pipeline.liveness.register("cfm", self.cfm.may_enable, group="oam")
        ofport = port.ofport
        mac = bytes.fromhex(port.info.mac.replace(":", "")) if port.info.mac else bytes(6)
        self.cfm.add(ofport, CfmSession(port.name, cc.mpid, cc.interval, mac,
                                        lambda frame: self._protocol_send(ofport, frame), self.dp.now_ns / 1e9,
                                        on_change=lambda: self.pipeline.liveness.update(ofport)))
        self.pipeline.ports_changed()
        self.pipeline.liveness.update(ofport)

    # -- LACP (lacp.py), per bond with lacp: active|passive
    def lacp_system_id(self, bond: str) -> bytes:
        """The bond's LACP system id: lacp_system_id, or the bridge's MAC (the low 48 bits of its
        datapath id, as its STP bridge id)."""
        sid = self.config.bonds[bond].lacp_system_id
        if sid:
            return bytes.fromhex(sid.replace(":", ""))
        return (self.config.datapath_id & ((1 << 48) - 1)).to_bytes(6, "big")

    def join_lacp(self, port: Port) -> None:
        """PORT, a bond member, joins its bond's LACP when the bond has lacp: active|passive: the
        bridge's Lacp registers (once) as a control protocol and as an input of the ports'
        liveness, and the member's link state is polled from then on (run_protocols).  A member
        already in (reload: its LACP keys changed) starts again as configured now."""
        bc = self.config.bonds.get(port.config.bond or "")
        if bc is None:
            return
        if self.lacp is not None:
            self.lacp.remove_port(port.ofport)
        self.carrier[port.ofport] = True
        if bc.lacp == "off":
            return
        if self.lacp is None:
            self.lacp = Lacp(self.config.name)
            self.pipeline.special.register(self.lacp)
            self.pipeline.liveness.register("lacp", self.lacp.may_enable)
        bond = self.lacp.bonds.get(bc.name)
        now = self.dp.now_ns / 1e9
        if bond is None:
            bond = LacpBond(bc.name, self.lacp_system_id(bc.name), bc.lacp_system_priority, bc.lacp == "active",
                            bc.lacp_time == "fast", bc.lacp_fallback_ab, send=self._protocol_send,
                            src_mac=self._port_mac, on_change=lambda: self.pipeline.liveness.update(), now=now)
        pc = port.config
        bond.now = now
        bond.add_member(LacpMember(pc.name, pc.ofport, pc.lacp_port_id or pc.ofport, pc.lacp_port_priority,
                                   pc.lacp_aggregation_key))
        self.lacp.add(bond)
        self.pipeline.ports_changed()
        self.pipeline.liveness.update(pc.ofport)

    # -- bonds (bond.py)
    def join_bond(self, port: Port, lacp: bool = False) -> None:
        """PORT, a bond member, joins its bond, which NORMAL sees as one port from now on; with
        LACP, its LACP first (join_lacp: a member that stays in a bond reload rebuilt)."""
        bc = self.config.bonds.get(port.config.bond or "")
        if bc is None:
            return
        if lacp:
            self.join_lacp(port)
        bond = self.bonds.get(bc.name)
        if bond is None:
            members = [(n, self.config.ports[n].ofport) for n in bc.members if n in self.config.ports]
            lacp = self.lacp.bonds.get(bc.name) if self.lacp is not None else None
            bond = self.bonds[bc.name] = Bond(
                bc.name, members, bc.bond_mode, bc.bond_primary, bc.bond_updelay, bc.bond_downdelay,
                bc.bond_rebalance_interval, lacp, bc.lacp_fallback_ab, send=self._protocol_send,
                on_change=self.pipeline.ports_changed, now=self.dp.now_ns / 1e9, basis=bc.bond_hash_basis)
            old = self.dropped_bonds.pop(bc.name, None)
            if old is not None:
                bond.take_state(old)
        self.pipeline.set_bond(bond, [port.ofport])
        for sm in self.config.mac_table.static:
            if sm.port == bc.name:
                self.pipeline.macs.add_static(sm.vlan, int(sm.mac.replace(":", ""), 16), bond.id)
        self.run_bonds()

    def drop_bond(self, name: str, again: bool = False, keep_lacp: bool = False) -> None:
        """Bond NAME is no more (reload: removed, or to be built again from the new config as its
        members join, join_bond): its members that stay are plain ports meanwhile, what was learned
        on it is forgotten; its LACP goes too unless KEEP_LACP (the negotiation carries on into the
        bond built again: only its mode, delays, primary or rebalancing changed).  AGAIN: it is
        built again, and the new bond takes its members' state over (Bond.take_state)."""
        bond = self.bonds.pop(name, None)
        if bond is None:
            return
        if again:
            self.dropped_bonds[name] = bond
        for ofport in bond.members:
            if self.pipeline.bonds.get(ofport) is bond:
                self.pipeline.del_bond_member(ofport)
            if not keep_lacp and self.lacp is not None:
                self.lacp.remove_port(ofport)
        self.pipeline.macs.flush(bond.id)
        self.pipeline.liveness.update()
        self.pipeline.ports_changed()

    def run_bonds(self) -> None:
        """Each bond's members follow their ports' liveness; learning frames after a failover."""
        now = self.dp.now_ns / 1e9
        for bond in self.bonds.values():
            for ofport in bond.members:
                e = self.pipeline.ports.get(ofport)
                bond.set_may_enable(ofport, e is not None and e.live)
            bond.run(now)
            if bond.take_learning():
                self._send_learning(bond)

    def _send_learning(self, bond: Bond) -> None:
        """A RARP from every MAC learned on the bridge's other ports, out of the member the bond
        chooses for it (bundle_send_learning_packets)."""
        sent = 0
        for (vlan, mac), e in list(self.pipeline.macs.entries.items()):
            if e.port == bond.id:
                continue
            member, _ = bond.choose(_Eth(mac), vlan)
            entry = self.pipeline.ports.get(member) if member is not None else None
            if entry is None or not entry.vlan.carries(vlan):
                continue
            frame = Bond.learning_frame(mac, 0)
            tags = entry.vlan.egress([(0x8100, vlan, 0), (0, 0, 0)])
            if tags:
                frame = frame[:12] + b"".join(t.to_bytes(2, "big") + c.to_bytes(2, "big") for t, c in tags) + frame[12:]
            self._protocol_send(member, frame)
            sent += 1
        bond.learning_sent += sent
        if sent:
            LOG.info("bond %s: sent %d gratuitous learning packets", bond.name, sent)

    def _port_mac(self, ofport: int) -> bytes:
        port = next((p for p in self.ports.values() if p.ofport == ofport), None)
        if port is None or not port.info.mac:
            return bytes(6)
        return bytes.fromhex(port.info.mac.replace(":", ""))

    def _poll_carrier(self) -> None:
        """Bond members' link state from the device (as Open vSwitch's port_run reads the
        netdev's carrier): a change goes to LACP and to the port's liveness."""
        for port in list(self.ports.values()):
            if port.ofport not in self.carrier:
                continue
            try:
                up = self.port_info(port).link_up
            except DatapathError:
                continue
            if up != self.carrier[port.ofport]:
                self.carrier[port.ofport] = up
                if self.lacp is not None:
                    self.lacp.carrier_changed(port.ofport, up)
                self.pipeline.liveness.set_carrier(port.ofport, up)

    def _protocol_send(self, ofport: int, frame: bytes) -> None:
        try:
            self.packet_out(frame, OFPP_ANY, [Output(ofport)])
        except DatapathError:
            pass

    def protocol_tick(self) -> float:
        """How soon ``run_protocols`` wants to run again, in seconds."""
        if (self.bfd is not None and self.bfd.sessions) or (self.cfm is not None and self.cfm.sessions):
            return 0.01
        return 0.1 if self.stp is not None or self.rstp is not None or self.lacp is not None or self.bonds else 1.0

    def run_protocols(self) -> None:
        """The control protocols' timers, on the datapath's clock (a few times a second); an
        STP port follows its port's liveness (a port that may not be enabled is disabled in
        the tree, as Open vSwitch's stp_run polls link state)."""
        if self.bfd is not None:
            self.bfd.run(self.dp.now_ns / 1e9)
        if self.cfm is not None:
            self.cfm.run(self.dp.now_ns / 1e9)
        if self.carrier:
            self._poll_carrier()
        if self.lacp is not None:
            self.lacp.run(self.dp.now_ns / 1e9)
        if self.bonds:
            self.run_bonds()
        if self.stp is not None:
            self.stp.tick(self.dp.now_ns / 1e9)
            for ofport, sp in list(self.stp.ports.items()):
                e = self.pipeline.ports.get(ofport)
                if e is None:
                    continue
                if e.live and sp.state == "disabled":
                    self.stp.enable_port(ofport)
                elif not e.live and sp.state != "disabled":
                    self.stp.disable_port(ofport)
        if self.rstp is not None:
            self.rstp.tick(self.dp.now_ns / 1e9)
            for ofport, rp in list(self.rstp.ports.items()):
                e = self.pipeline.ports.get(ofport)
                if e is None:
                    continue
                if e.live != rp.port_enabled:
                    (self.rstp.enable_port if e.live else self.rstp.disable_port)(ofport)

    # -- PMDs
    def start(self) -> None:
        """Mirrors, the spanning tree, then the datapath's PMDs (once, for all the bridges on it)."""
        self.apply_mirrors()
        self.start_stp()
        self.start_rstp()
        self.backer.start()

    def close(self) -> None:
        self.backer.detach(self)


class Switch:
    """Every bridge of one config, on one EAL."""

    def __init__(self, config: Config, manual_clock: bool = False, netns_record: str | None = None,
                 checked: Checked | None = None):
        """CHECKED: what `check` built from CONFIG, taken rather than built again (once)."""
        self.config = config
        self.checked = checked
        self.manual_clock = manual_clock
        self.bridges: dict[str, Bridge] = {}
        self.netns = Namespaces(netns_record)
        self.eal_note = ""

    def start_eal(self) -> None:
        if self.checked is not None and self.checked.eal is not None:
            args, self.eal_note = self.checked.eal
            self.checked.eal = None
        else:
            args, self.eal_note = eal_args(self.config)
        Eal.start(args)

    def start(self) -> None:
        if not Eal.running():
            self.start_eal()
        try:
            for group in self.config.datapaths():
                backer = Backer([self.config.bridges[n] for n in group], self.manual_clock)
                for name in group:
                    bc = self.config.bridges[name]
                    built = self.checked.pipelines.pop(name, None) if self.checked is not None else None
                    br = self.bridges[name] = Bridge.create(bc, self.netns, self.manual_clock, backer, built)
                    for pc in bc.ports.values():
                        try:
                            br.add_port(pc)
                        except DatapathError as e:
                            raise DatapathError(f"{pc.where}: port {pc.name}: {e}") from None
                for name in group:
                    self.bridges[name].start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for br in self.bridges.values():
            br.close()
        self.bridges.clear()
        self.netns.cleanup()

    def run_protocols_due(self, now: float) -> float:
        """The bridges whose control protocols' timers are due at NOW (seconds, time.monotonic())
        run them (``Bridge.run_protocols``); returns when the next is due.  ``dpdkswitch run``
        calls it from a loop timer and between two upcall batches (app.py, udpif.upcall_wakeup),
        so upcall work delays a BFD packet by one batch at most, not by loop turns.  The frames
        waiting on the reserved ring go to their protocols first (``handle_control``).  Cost: a
        clock comparison per bridge when nothing is due."""
        due = now + 1.0
        if any(now >= br.next_protocol_run for br in self.bridges.values()):
            for backer in self.backers():           # what they received first, then their timers
                if backer.upcalls is not None:
                    backer.upcalls.handle_control()
        for br in list(self.bridges.values()):
            if now >= br.next_protocol_run:
                br.run_protocols()
                br.next_protocol_run = now + br.protocol_tick()
            due = min(due, br.next_protocol_run)
        return due

    def backers(self) -> list[Backer]:
        """Each datapath once (bridges linked by patch ports share one)."""
        out: list[Backer] = []
        for br in self.bridges.values():
            if br.backer not in out:
                out.append(br.backer)
        return out

    def bridge(self, name: str) -> Bridge:
        try:
            return self.bridges[name]
        except KeyError:
            raise DatapathError(f"no bridge {name} (have: {', '.join(self.bridges)})") from None

