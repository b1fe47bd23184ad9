"""The switch: bridges built from a config, each one datapath with its ports and PMD threads.

Owns the mapping from config to datapath: EAL arguments, mempool sizing, OpenFlow port
numbers to datapath port numbers, namespaces of tap ports, and (until the OpenFlow pipeline
lands) the static forwarding map read from ``flows``.

Contract: built, changed and stopped from the control thread only (the one that started
EAL).  Adding or removing a port costs a device probe or unplug plus one RCU grace period;
the PMDs keep forwarding meanwhile.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .config import BridgeConfig, Config, ConfigError, FlowConfig, PortConfig
from .datapath import Datapath, DatapathError, Eal, PortInfo, is_pci
from .netns import Namespaces
from .netns import link_up as netns_link_up

_FLOW_RE = re.compile(r"^(?:priority=(?P<prio>\d+),)?(?:in_port=(?P<in>\d+),)?actions=(?P<actions>.*)$")


@dataclass
class StaticRule:
    priority: int
    in_port: int | None       # OpenFlow port, None = any
    outputs: list[int]        # OpenFlow ports; [] = drop


def parse_static_flow(flow: FlowConfig) -> StaticRule:
    """``[priority=N,][in_port=N,]actions=output:M[,output:K]|drop``: the static map's rules.

    The full OpenFlow pipeline replaces this; until then anything else is refused, by name.
    """
    def refuse() -> ConfigError:
        path, _, line = flow.where.rpartition(":")
        return ConfigError(path, int(line), f"flow {flow.text!r}: this datapath forwards by a static port "
                           "map, which takes only '[priority=N,][in_port=N,]actions=output:M[,output:K...]' "
                           "or 'actions=drop'")

    m = _FLOW_RE.match(flow.text.replace(" ", ""))
    if not m:
        raise refuse()
    outputs: list[int] = []
    if m.group("actions") not in ("drop", ""):
        for action in m.group("actions").split(","):
            am = re.fullmatch(r"output:(\d+)", action)
            if not am:
                raise refuse()
            outputs.append(int(am.group(1)))
    return StaticRule(int(m.group("prio") or 32768), int(m.group("in")) if m.group("in") else None, outputs)


def mbufs_for(ports: list[PortConfig], n_lcores: int) -> int:
    """A mempool big enough for every port's rings, frames in flight and per-lcore caches."""
    rings = sum(p.n_rxq * p.rxd + (p.n_txq or n_lcores) * p.txd for p in ports)
    need = rings * 4 // 3 + n_lcores * 512 + 4096
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
    ports: dict[str, Port] = field(default_factory=dict)
    rules: list[StaticRule] = field(default_factory=list)

    @classmethod
    def create(cls, config: BridgeConfig, netns: Namespaces, manual_clock: bool = False) -> "Bridge":
        n = mbufs_for(list(config.ports.values()), len(Eal.lcores()))
        dp = Datapath(config.name, n_mbufs=n, manual_clock=manual_clock, flow_limit=config.flow_limit,
                      emc_insert_inv_prob=config.emc_insert_inv_prob)
        br = cls(config, dp, netns)
        br.rules = [parse_static_flow(f) for f in config.flows]
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
        self.apply_pins()
        self.apply_forwarding()
        return port

    def del_port(self, name: str) -> None:
        port = self.ports.pop(name, None)
        if port is None:
            raise DatapathError(f"bridge {self.config.name} has no port {name}")
        self.dp.clear_forward(port.dp_port)
        self.apply_forwarding()
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

    # -- forwarding: the static map
    def outputs_for(self, in_port: Port) -> list[int]:
        """Datapath ports a frame from IN_PORT goes to: the highest-priority matching rule, or
        with no rules at all, every other port (a hub, until MAC learning lands)."""
        if not self.rules:
            return [p.dp_port for p in self.ports.values() if p is not in_port]
        best = None
        for r in self.rules:
            if (r.in_port is None or r.in_port == in_port.ofport) and (best is None or r.priority > best.priority):
                best = r
        if best is None:
            return []
        out = [self.by_ofport(o) for o in best.outputs]
        return [p.dp_port for p in out if p is not None and p is not in_port]

    def apply_forwarding(self) -> None:
        for p in self.ports.values():
            self.dp.set_forward(p.dp_port, self.outputs_for(p))

    def apply_pins(self) -> None:
        pins = [(p.dp_port, q, core) for p in self.ports.values() for q, core in p.config.rxq_affinity.items()]
        self.dp.pin_rxqs(pins)

    # -- PMDs
    def start(self) -> None:
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

