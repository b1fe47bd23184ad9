"""The switch: bridges built from a config, each one datapath with its ports and PMD threads.

Owns the mapping from config to datapath: EAL arguments, mempool sizing, OpenFlow port
numbers to datapath port numbers, namespaces of tap ports, and each bridge's OpenFlow
pipeline with its upcall handler and revalidator.

Contract: built, changed and stopped from the control thread only (the one that started
EAL).  Adding or removing a port costs a device probe or unplug plus one RCU grace period;
the PMDs keep forwarding meanwhile.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .config import BridgeConfig, Config, ConfigError, FlowConfig, PortConfig
from .datapath import Datapath, DatapathError, Eal, PortInfo, is_pci
from .ofproto.flowstr import FlowParseError, FlowSpec, parse_flow
from .ofproto.match import MatchError
from .ofproto.normal import Mirror, VlanPort
from .ofproto.pipeline import FlowModError, Pipeline, PortEntry
from .ofproto.xlate import Translator
from .revalidator import Revalidator
from .upcall import UpcallHandler
from .netns import Namespaces
from .netns import link_up as netns_link_up

def parse_config_flow(flow: FlowConfig) -> FlowSpec:
    """A flow of the YAML, in ovs-ofctl syntax; a bad one is a config error at its line."""
    try:
        return parse_flow(flow.text)
    except (FlowParseError, MatchError) as e:
        path, _, line = flow.where.rpartition(":")
        raise ConfigError(path, int(line), f"flow {flow.text!r}: {e}") from None


# A bridge without flows is a learning switch, as Open vSwitch's default bridge.
DEFAULT_FLOWS = ["priority=0,actions=NORMAL"]


def mbufs_for(ports: list[PortConfig], n_lcores: int) -> int:
    """A mempool big enough for every port's rings, frames in flight and per-lcore caches."""
    rings = sum(p.n_rxq * p.rxd + (p.n_txq or n_lcores) * p.txd for p in ports)
    need = rings * 4 // 3 + n_lcores * 512 + 4096 + n_lcores * 4096   # + frames parked behind misses
    n = 16384
    while n < need:
        n *= 2
    return n


@dataclass
class Port:
    name: str
    ofport: int
    dp_port: int
    config: PortConfig
    info: PortInfo


@dataclass
class Bridge:
    config: BridgeConfig
    dp: Datapath
    netns: Namespaces
    pipeline: Pipeline
    xlate: Translator
    upcalls: UpcallHandler
    revalidator: Revalidator
    ports: dict[str, Port] = field(default_factory=dict)
    revalidation_due: bool = False         # a pass is scheduled after a MAC table change

    @classmethod
    def create(cls, config: BridgeConfig, netns: Namespaces, manual_clock: bool = False) -> "Bridge":
        # No flows: a learning switch, unless the bridge is for controllers only (fail_mode secure).
        defaults = [] if config.openflow.fail_mode == "secure" else DEFAULT_FLOWS
        specs = [parse_config_flow(f) for f in config.flows] or [parse_flow(f) for f in defaults]
        n = mbufs_for(list(config.ports.values()), len(Eal.lcores()))
        dp = Datapath(config.name, n_mbufs=n, manual_clock=manual_clock, flow_limit=config.flow_limit,
                      emc_insert_inv_prob=config.emc_insert_inv_prob)
        pipeline = Pipeline(clock=lambda: dp.now_ns / 1e9)
        pipeline.macs.idle_time = config.mac_table.idle_time
        pipeline.macs.max_entries = config.mac_table.max_entries
        pipeline.flood_vlans = set(config.flood_vlans)
        pipeline.forward_bpdu = config.forward_bpdu
        xlate = Translator(pipeline)
        handler = UpcallHandler(dp, pipeline, xlate, flow_limit=config.flow_limit)
        br = cls(config, dp, netns, pipeline, xlate, handler, Revalidator(dp, pipeline, xlate, handler))
        for spec, fc in zip(specs, config.flows or [None] * len(specs)):
            try:
                pipeline.add(spec)
            except (FlowModError, MatchError) as e:
                if fc is None:
                    raise
                path, _, line = fc.where.rpartition(":")
                raise ConfigError(path, int(line), f"flow {fc.text!r}: {e}") from None
        return br

    # -- ports
    def _free_dp_port(self) -> int:
        used = {p.dp_port for p in self.ports.values()}
        return next(i for i in range(1, 256) if i not in used)

    def add_port(self, pc: PortConfig) -> Port:
        if pc.name in self.ports:
            raise DatapathError(f"bridge {self.config.name} already has a port {pc.name}")
        if any(p.ofport == pc.ofport for p in self.ports.values()):
            raise DatapathError(f"bridge {self.config.name}: ofport {pc.ofport} is taken")
        dp_port = self._free_dp_port()
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
        self.pipeline.set_port(PortEntry(pc.ofport, pc.name, dp_port, vlan=VlanPort(
            pc.vlan_mode or "trunk", pc.tag, frozenset(pc.trunks) if pc.trunks is not None else None)))
        for sm in self.config.mac_table.static:
            if sm.port == pc.name:
                self.pipeline.macs.add_static(sm.vlan, int(sm.mac.replace(":", ""), 16), pc.ofport)
        self.apply_pins()
        self.revalidator.run()
        return port

    def del_port(self, name: str) -> None:
        port = self.ports.pop(name, None)
        if port is None:
            raise DatapathError(f"bridge {self.config.name} has no port {name}")
        self.pipeline.del_port(port.ofport)
        self.revalidator.run()                 # no megaflow sends to it any more
        self.dp.del_port(port.dp_port)

    def port_info(self, port: Port) -> PortInfo:
        """The device's view of the port; for a tap in a host namespace, the link state the
        host sees (the tap driver cannot see into the namespace)."""
        info = self.dp.port_info(port.dp_port)
        if port.config.netns:
            info.link_up = netns_link_up(port.config.devargs_dict["iface"], port.config.netns.name)
        return info

    def by_ofport(self, ofport: int) -> Port | None:
        return next((p for p in self.ports.values() if p.ofport == ofport), None)

    def apply_pins(self) -> None:
        pins = [(p.dp_port, q, core) for p in self.ports.values() for q, core in p.config.rxq_affinity.items()]
        self.dp.pin_rxqs(pins)

    def apply_mirrors(self) -> None:
        byname = {p.name: p.ofport for p in self.ports.values()}
        for mc in self.config.mirrors:
            self.pipeline.set_mirror(Mirror(
                mc.name, mc.select_all, frozenset(byname[n] for n in mc.select_src_port if n in byname),
                frozenset(byname[n] for n in mc.select_dst_port if n in byname),
                frozenset(mc.select_vlan) if mc.select_vlan is not None else None,
                byname.get(mc.output_port) if mc.output_port else None, mc.output_vlan))

    # -- PMDs
    def start(self) -> None:
        self.apply_mirrors()
        self.revalidator.run()
        if self.config.pmd_cores:
            self.dp.start_pmds(self.config.pmd_cores)
            self.apply_pins()

    def close(self) -> None:
        self.dp.close()   # stops PMDs, removes ports


class Switch:
    """Every bridge of one config, on one EAL."""

    def __init__(self, config: Config, manual_clock: bool = False):
        self.config = config
        self.manual_clock = manual_clock
        self.bridges: dict[str, Bridge] = {}
        self.netns = Namespaces()
        self.eal_note = ""

    def start_eal(self) -> None:
        d = self.config.dpdk
        pci = any(is_pci(p.device) for b in self.config.bridges.values() for p in b.ports.values())
        args, self.eal_note = Eal.build_args(d.cores, d.hugepages, d.memory_mb, d.extra_args, d.file_prefix, pci)
        Eal.start(args)

    def start(self) -> None:
        if not Eal.running():
            self.start_eal()
        try:
            for name, bc in self.config.bridges.items():
                br = self.bridges[name] = Bridge.create(bc, self.netns, self.manual_clock)
                for pc in bc.ports.values():
                    try:
                        br.add_port(pc)
                    except DatapathError as e:
                        raise DatapathError(f"{pc.where}: port {pc.name}: {e}") from None
                br.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for br in self.bridges.values():
            br.close()
        self.bridges.clear()
        self.netns.cleanup()

    def bridge(self, name: str) -> Bridge:
        try:
            return self.bridges[name]
        except KeyError:
            raise DatapathError(f"no bridge {name} (have: {', '.join(self.bridges)})") from None

