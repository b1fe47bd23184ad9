"""YAML config loader and strict schema checker for dpdkswitch.

Owns: turning a config file into typed dataclasses (`Config` and friends) and
rejecting anything questionable with ONE line of the form ``FILE:LINE: message``
(raised as `ConfigError`).  The file is composed into a YAML node tree
(``yaml.compose``) rather than ``safe_load``-ed so that every key and value keeps
its position; unknown keys (with a "did you mean" hint), wrong types (bools are
never ints), duplicate keys, bad device strings, cores that are not online and
cross-field conflicts each give one precise error.  Line 0 means the file could
not be read at all.

Called by: the CLI and the tests, from the main thread, before EAL starts.
Cost: pure Python, no I/O beyond reading the file (plus /sys/.../cpu/online, and whether
the TLS files named exist).

The schema is the tables under "the schema" below (key -> checker and default); the README's
"Config reference" shows every key with its meaning and default, and a test holds the two to
the same keys.  Device strings: PCI ``[DDDD:]BB:DD.F[,key=value...]`` (any keys), or a vdev
whose driver is one of `VDEV_KEYS` with only that driver's keys.

What needs more than the file (a flow the pipeline refuses, hugepages that are not free, TLS
files that do not load) is checked by ``switch.check``, which ``dpdkswitch check`` and ``run``
both call.
"""
from __future__ import annotations

import difflib
import hashlib
import ipaddress
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, NoReturn

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .log import DPDK_LEVEL_DEFAULT, DPDK_LEVELS
from .ofproto.pipeline import DEFAULT_FLOW_LIMIT, MAX_FLOW_LIMIT, N_TABLES

LOG = logging.getLogger("dpdkswitch.config")
# control.busy_poll_us: how long the control loop polls after a peer's message before it sleeps
# (app.InteractiveSelector), its default and its largest value.
BUSY_POLL_US, BUSY_POLL_US_MAX = 500, 10_000

__all__ = [
    "ConfigError", "NetnsConfig", "PortConfig", "OpenflowConfig", "SslConfig", "FlowConfig",
    "BridgeConfig", "DpdkConfig", "Config", "load", "loads", "online_cpus", "MacTableConfig", "StaticMac",
    "parse_device", "VDEV_KEYS", "default_datapath_id", "NetflowConfig", "SflowConfig", "IpfixConfig", "IpfixCollectorSet", "RstpConfig",
]


class ConfigError(Exception):
    """A config problem; str() is the single line ``path:line: msg``."""

    def __init__(self, path: str, line: int, msg: str):
        self.path, self.line, self.msg = path, line, re.sub(r"\s*\n\s*", " ", str(msg))
        super().__init__(f"{path}:{line}: {self.msg}")

    def __reduce__(self):
        return ConfigError, (self.path, self.line, self.msg)

    @classmethod
    def at(cls, where: str, msg: str) -> "ConfigError":
        """The error at WHERE, a ``file:line`` as the dataclasses keep it."""
        path, _, line = where.rpartition(":")
        return cls(path, int(line), msg)


# ---------------------------------------------------------------- dataclasses

@dataclass
class NetnsConfig:
    name: str
    address: str | None = None


@dataclass
class PortConfig:
    name: str
    device: str
    ofport: int
    n_rxq: int = 1
    n_txq: int | None = None
    rxd: int = 1024
    txd: int = 1024
    mtu: int | None = None
    rxq_affinity: dict[int, int] = field(default_factory=dict)
    netns: NetnsConfig | None = None
    where: str = ""  # "file:line" of the port's key
    vlan_mode: str | None = None       # None: trunk, or access when a tag is given
    tag: int | None = None
    trunks: list[int] | None = None
    peer: str | None = None            # a patch port (device ""): the peer patch port's name
    peer_bridge: str | None = None     # ... and its bridge, once linked
    stp_enable: bool = True            # takes part in the bridge's spanning tree (when it has one)
    stp_port_priority: int = 128
    stp_path_cost: int | None = None   # None: from the link speed (802.1D-1998's table)
    rstp_enable: bool = True           # takes part in the bridge's rapid spanning tree (when it has one)
    rstp_port_priority: int = 128
    rstp_port_path_cost: int | None = None   # None: from the link speed (802.1D-2004's table)
    rstp_port_admin_edge: bool = False
    rstp_port_auto_edge: bool = True
    rstp_port_mcheck: bool = False
    bfd: "BfdConfig | None" = None     # a BFD session on the port (bfd.py)
    cfm: "CfmConfig | None" = None     # a CFM maintenance point on the port (cfm.py)
    bond: str | None = None            # a member of this bond (BridgeConfig.bonds), named as its interface
    lacp_port_id: int | None = None    # a bond member's LACP port id (None: its ofport)
    lacp_port_priority: int = 65535
    lacp_aggregation_key: int = 0      # 0: the bond's first member's port id

    @property
    def driver(self) -> str:
        """'pci', the vdev driver (tap, af_packet, pcap, ring, null, memif), or 'patch'."""
        return "patch" if self.peer else parse_device(self.device)[0]

    @property
    def vdev_name(self) -> str | None:
        if self.peer:
            return None
        driver, name, _ = parse_device(self.device)
        return None if driver == "pci" else name

    @property
    def devargs_dict(self) -> dict[str, str]:
        return {} if self.peer else {k: v or "" for k, v in parse_device(self.device)[2]}


@dataclass
class StaticMac:
    mac: str
    vlan: int
    port: str                  # a port name of the bridge
    where: str = ""


@dataclass
class MirrorConfig:
    name: str
    select_all: bool = False
    select_src_port: list[str] = field(default_factory=list)
    select_dst_port: list[str] = field(default_factory=list)
    select_vlan: list[int] | None = None
    output_port: str | None = None
    output_vlan: int | None = None
    where: str = ""


@dataclass
class MacTableConfig:
    idle_time: int = 300
    max_entries: int = 8192
    static: list[StaticMac] = field(default_factory=list)


@dataclass
class SslConfig:
    private_key: str
    certificate: str
    ca_cert: str
    where: str = field(default="", compare=False)   # "file:line" of the ssl key


@dataclass
class OpenflowConfig:
    listen: list[str]
    controllers: list[str]
    fail_mode: str
    ssl: SslConfig | None = None
    datapath_id: int | None = None     # None: default_datapath_id(bridge name)
    controller_rate_limit: int | None = None     # packet-ins/s per connection; None: no limit
    controller_burst_limit: int | None = None    # None: controller_rate_limit / 4


@dataclass
class BfdConfig:
    """A port's BFD session, Open vSwitch's Interface bfd column (times in ms)."""
    enable: bool = False
    min_rx: int = 1000
    min_tx: int = 100
    mult: int = 3
    cpath_down: bool = False
    decay_min_rx: int = 0
    forwarding_if_rx: bool = False
    dst_mac: str = "00:23:20:00:00:01"
    src_ip: str = "169.254.1.1"
    dst_ip: str = "169.254.1.0"


@dataclass
class CfmConfig:
    """A port's CFM maintenance point, Open vSwitch's Interface cfm_mpid and other_config:cfm_interval."""
    mpid: int
    interval: int = 1000               # ms, rounded down to 802.1ag's steps


@dataclass
class BondConfig:
    """A port of several members (Open vSwitch's bonded Port): its members are in the bridge's
    ``ports`` as interfaces, each with ``bond`` naming this; NORMAL and mirrors see the bond."""
    name: str
    members: list[str]                 # interface names, in config order
    bond_mode: str = "active-backup"   # active-backup | balance-slb | balance-tcp
    lacp: str = "off"                  # active | passive | off
    lacp_time: str = "slow"            # fast (1 s PDUs) | slow (30 s)
    lacp_fallback_ab: bool = False
    lacp_system_id: str | None = None  # None: the bridge's MAC
    lacp_system_priority: int = 65534
    bond_updelay: int = 0              # ms
    bond_downdelay: int = 0
    bond_rebalance_interval: int = 10000   # ms; 0: never
    bond_primary: str | None = None
    bond_hash_basis: int = 0           # Open vSwitch's other_config:bond-hash-basis: both hashes' seed
    vlan_mode: str = "trunk"
    tag: int | None = None
    trunks: list[int] | None = None
    where: str = ""


@dataclass
class StpConfig:
    """The bridge's spanning tree (802.1D-1998), Open vSwitch's other_config:stp-* keys."""
    enable: bool = False
    priority: int = 32768
    hello_time: int = 2                # seconds
    max_age: int = 20
    forward_delay: int = 15


@dataclass
class RstpConfig:
    """The bridge's rapid spanning tree (802.1D-2004), Open vSwitch's rstp_enable and
    other_config:rstp-* keys."""
    enable: bool = False
    priority: int = 32768
    address: str | None = None         # None: the bridge's datapath id's low 48 bits
    max_age: int = 20
    hello_time: int = 2
    forward_delay: int = 15
    transmit_hold_count: int = 6
    ageing_time: int | None = None     # MAC table ageing while RSTP runs; None: mac_table's


@dataclass
class FlowConfig:
    text: str
    where: str


@dataclass
class NetflowConfig:
    """NetFlow v5 export of a bridge's flows (Open vSwitch's NetFlow table)."""
    targets: list[str]                 # "IP:PORT" collectors
    engine_type: int = 0
    engine_id: int = 0
    active_timeout: int = 600          # seconds between records of a flow that lasts
    add_id_to_interface: bool = False  # engine_id's low 7 bits in the top of the interface numbers
    where: str = field(default="", compare=False)


@dataclass
class SflowConfig:
    """sFlow v5 agent of a bridge (Open vSwitch's sFlow table)."""
    targets: list[str]                 # "IP:PORT" collectors
    sampling: int = 400                # one frame in N is sampled
    polling: int = 30                  # seconds between counter samples of each port
    header: int = 128                  # bytes of each sampled frame's header sent
    agent: str | None = None           # the agent address; default: the source of the route to the first target
    where: str = field(default="", compare=False)


@dataclass
class IpfixCollectorSet:
    """A flow-sample collector set (Open vSwitch's Flow_Sample_Collector_Set with its IPFIX row):
    where the OpenFlow ``sample`` actions naming its id export."""
    id: int
    targets: list[str]
    cache_active_timeout: int = 0      # seconds a record aggregates samples (0: no caching)
    cache_max_flows: int = 0           # records cached at most (0: no caching)


@dataclass
class IpfixConfig:
    """IPFIX export of a bridge (Open vSwitch's IPFIX table and its collector sets)."""
    targets: list[str] = field(default_factory=list)   # bridge-level sampling's collectors (none: off)
    sampling: int = 400                # one frame in N sampled at ingress, bridge-level
    obs_domain_id: int = 0
    obs_point_id: int = 0
    cache_active_timeout: int = 0      # seconds (0: each sample its own record)
    cache_max_flows: int = 0
    collector_sets: dict[int, IpfixCollectorSet] = field(default_factory=dict)
    where: str = field(default="", compare=False)


@dataclass
class BridgeConfig:
    name: str
    pmd_cores: list[int]
    emc_insert_inv_prob: int
    flow_limit: int
    openflow: OpenflowConfig
    ports: dict[str, PortConfig]
    flows: list[FlowConfig]
    where: str
    mac_table: MacTableConfig = field(default_factory=MacTableConfig)
    flood_vlans: list[int] = field(default_factory=list)
    forward_bpdu: bool = False
    mirrors: list[MirrorConfig] = field(default_factory=list)
    flow_limits: dict[int, int] = field(default_factory=dict)   # table id -> rules at most (flow_tables)
    netflow: NetflowConfig | None = None
    sflow: SflowConfig | None = None
    stp: StpConfig = field(default_factory=StpConfig)
    ipfix: IpfixConfig | None = None
    rstp: RstpConfig = field(default_factory=RstpConfig)
    bonds: dict[str, BondConfig] = field(default_factory=dict)

    @property
    def datapath_id(self) -> int:
        """The bridge's OpenFlow datapath id: ``openflow.datapath_id``, or the default from its name."""
        return self.openflow.datapath_id or default_datapath_id(self.name)

    def patch_peers(self) -> set[str]:
        """The bridges this one's patch ports link to."""
        return {p.peer_bridge for p in self.ports.values() if p.peer_bridge}


@dataclass
class DpdkConfig:
    cores: list[int]
    hugepages: str
    memory_mb: int | None
    extra_args: list[str]
    file_prefix: str | None
    log_level: str = DPDK_LEVEL_DEFAULT     # DPDK's own log: a name of log.DPDK_LEVELS
    hugepages_where: str = field(default="", compare=False)   # "file:line" of the hugepages key, if given


@dataclass
class Config:
    path: str
    dpdk: DpdkConfig
    control_socket: str
    bridges: dict[str, BridgeConfig]
    metrics_listen: str | None = None     # "IP:PORT" of the Prometheus endpoint; None: none
    control_busy_poll_us: int = BUSY_POLL_US   # the control loop polls this long after a peer's message

    def datapaths(self) -> list[list[str]]:
        """The bridges, grouped by datapath: bridges linked by patch ports (directly or through
        others) share one; every other bridge has its own.  In config order."""
        groups: list[list[str]] = []
        placed: set[str] = set()
        for name in self.bridges:
            if name in placed:
                continue
            group, todo = [], [name]
            while todo:
                b = todo.pop()
                if b not in placed:
                    placed.add(b)
                    group.append(b)
                    todo += sorted(self.bridges[b].patch_peers())
            groups.append(sorted(group, key=list(self.bridges).index))
        return groups


# ------------------------------------------------------------------- helpers

def parse_cpulist(text: str) -> set[int]:
    """'0-3,8' -> {0, 1, 2, 3, 8} (the /sys cpulist format)."""
    cpus: set[int] = set()
    for part in filter(None, text.strip().split(",")):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def _cpulist(cpus) -> str:
    """{0, 1, 2, 5} -> '0-2,5'."""
    out, cpus = [], sorted(cpus)
    for c in cpus:
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in out)


def online_cpus() -> set[int]:
    """CPUs we may run on: our affinity mask plus the kernel's online CPUs."""
    cpus = set(os.sched_getaffinity(0))
    try:
        with open("/sys/devices/system/cpu/online") as f:
            cpus |= parse_cpulist(f.read())
    except (OSError, ValueError):
        pass
    return cpus


def default_datapath_id(bridge: str) -> int:
    """The datapath id of a bridge whose config sets none: 48 stable bits from its name (a
    locally administered unicast MAC, as Open vSwitch derives one from the bridge's MAC)."""
    return int.from_bytes(hashlib.blake2b(bridge.encode(), digest_size=6).digest(), "big") & 0xFEFFFFFFFFFF | (
        0x020000000000)


def _unknown(key: str, allowed, where: str = "") -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key {key!r}{where}{hint} (allowed: {', '.join(allowed)})"


# -------------------------------------------------------------- device strings

VDEV_KEYS: dict[str, tuple[str, ...]] = {
    "tap": ("iface", "mac", "remote", "persist"),
    "af_packet": ("iface", "qpairs", "blocksz", "framesz", "framecnt", "qdisc_bypass"),
    "pcap": ("rx_pcap", "tx_pcap", "rx_iface", "rx_iface_in", "tx_iface", "iface",
             "infinite_rx", "phy_mac"),
    "ring": ("nodeaction",),
    "null": ("size", "copy", "no-rx"),
    "memif": ("id", "role", "bsize", "rsize", "socket", "socket-abstract", "mac",
              "secret", "zero-copy"),
}
_REQUIRED_DEVARGS = {"af_packet": ("iface",)}
_FLAG_DEVARGS = {("tap", "persist")}  # may be given without '='
_PCI_RE = re.compile(r"(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]")
_VDEV_RE = re.compile(rf"net_({'|'.join(VDEV_KEYS)})[A-Za-z0-9_]+")


def parse_device(dev: str) -> tuple[str, str, list[tuple[str, str | None]]]:
    """Split a device string into (driver, name, [(key, value)]).

    driver is 'pci' or a `VDEV_KEYS` driver; name is the part before the first
    comma; value is None for a bare flag.  Raises ValueError (one line) if bad.
    """
    name, *args = dev.split(",")
    if _PCI_RE.fullmatch(name):
        driver = "pci"
    elif m := _VDEV_RE.fullmatch(name):
        driver = m.group(1)
    else:
        raise ValueError(f"bad device string {dev!r}: expected a PCI address or "
                         f"net_<driver>N[,key=value...] with driver one of "
                         f"{', '.join(VDEV_KEYS)}")
    pairs: list[tuple[str, str | None]] = []
    for arg in args:
        key, eq, value = arg.partition("=")
        if driver != "pci" and key not in VDEV_KEYS[driver]:
            raise ValueError(f"device {dev!r}: "
                             f"{_unknown(key, VDEV_KEYS[driver], f' for net_{driver}')}")
        if not key or (not value and (driver, key) not in _FLAG_DEVARGS):
            raise ValueError(f"device {dev!r}: devarg {arg!r} is not key=value")
        pairs.append((key, value if eq else None))
    for key in _REQUIRED_DEVARGS.get(driver, ()):
        if key not in dict(pairs):
            raise ValueError(f"device {dev!r}: net_{driver} needs {key}=...")
    return driver, name, pairs


# Input bounds, checked as the file is read (each a one-line error at its line, never a Python
# exception): the file's size, how deep its YAML nests, how long an integer literal is.
MAX_FILE_BYTES = 16 << 20
MAX_DEPTH = 32
MAX_INT_DIGITS = 40                  # 2^64 has 20 digits; the limit is for junk, not for values
UNIX_PATH_MAX = 107                  # bytes of a unix socket's path (sun_path: 108 with the NUL)
_FILE_PREFIX_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")   # a name under /run/dpdk


def socket_path_problem(path: str, what: str) -> str | None:
    """Why a unix socket cannot be bound at PATH (WHAT names it in the message), or None."""
    n = len(os.fsencode(path))
    if n > UNIX_PATH_MAX:
        return f"{what} {path!r} is {n} bytes long: a unix socket's path holds at most {UNIX_PATH_MAX}"
    return None


def control_socket_problem(socket: str, bridges) -> str | None:
    """Why the control socket at SOCKET, or the .mgmt socket of one of BRIDGES (names) beside
    it, cannot be bound (too long a path), or None."""
    for path, what in [(socket, "control socket")] + [
            (os.path.join(os.path.dirname(socket), f"{b}.mgmt"), f"bridge {b}'s OpenFlow socket") for b in bridges]:
        if problem := socket_path_problem(path, what):
            return problem
    return None


def _valid_port(s: str, lo: int = 0) -> bool:
    return s.isascii() and s.isdigit() and lo <= int(s) <= 65535


def _valid_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s.removeprefix("[").removesuffix("]"))
        return True
    except ValueError:
        return False


def _valid_listen(s: str) -> bool:
    kind, _, rest = s.partition(":")
    port, _, ip = rest.partition(":")
    return (kind == "punix" and bool(rest)) or (
        kind in ("ptcp", "pssl") and _valid_port(port) and (not ip or _valid_ip(ip)))


def _valid_hostport(s: str) -> bool:
    """IP:PORT (an IPv6 address in brackets), port 1..65535."""
    host, _, port = s.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return _valid_ip(host) and _valid_port(port, 1)


def _valid_unscoped_hostport(s: str) -> bool:
    """IP:PORT without an IPv6 zone (``%eth0``): the datapath sends sFlow from C to the address
    alone, so a link-local collector's zone would be dropped without a word."""
    return "%" not in s and _valid_hostport(s)


def _valid_controller(s: str) -> bool:
    kind, _, rest = s.partition(":")
    host, _, port = rest.rpartition(":")
    return (kind == "unix" and bool(rest)) or (
        kind in ("tcp", "ssl") and bool(host) and _valid_port(port, 1))


def _valid_cidr(s: str) -> bool:
    try:
        ipaddress.ip_interface(s)
        return True
    except ValueError:
        return False


def _valid_ipv4(s: str) -> bool:
    try:
        ipaddress.IPv4Address(s)
        return True
    except ValueError:
        return False


def _name_re(maxlen: int) -> re.Pattern:
    return re.compile(rf"[A-Za-z0-9_.-]{{1,{maxlen}}}")


# ------------------------------------------------------------- value checkers
# A checker is fn(reader, node, key) -> python value; it raises via reader.fail.

_T = "tag:yaml.org,2002:"
_NULL, _BOOL, _INT, _FLOAT, _STR = (_T + t for t in ("null", "bool", "int", "float", "str"))
_KINDS = {_BOOL: "boolean", _INT: "integer", _FLOAT: "float", _STR: "string"}
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
Checker = Callable[["_Reader", Node, str], Any]
REQUIRED = object()


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL


def _describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return f"null {node.value!r}" if node.value else "nothing (empty value)"
    return f"{_KINDS.get(node.tag, node.tag)} {node.value!r}"


def _str(r: _Reader, node: Node, key: str) -> str:
    if isinstance(node, ScalarNode) and node.tag == _STR:
        return node.value
    quote = " (quote it to make it a string)" if node.tag in (_INT, _FLOAT, _BOOL) else ""
    r.fail(node, f"{key}: expected a string, got {_describe(node)}{quote}")


def _yaml_int(r: _Reader, node: ScalarNode, key: str) -> int:
    """The value of an integer scalar, its literal's length checked first."""
    if len(node.value) > MAX_INT_DIGITS:
        r.fail(node, f"{key}: an integer of {len(node.value)} characters (at most {MAX_INT_DIGITS})")
    return _CONSTRUCTOR.construct_yaml_int(node)


def _int(lo: int | None = None, hi: int | None = None, pow2: bool = False) -> Checker:
    want = (f"a power of two in {lo}..{hi}" if pow2 else f"an integer in {lo}..{hi}"
            if hi is not None else f"an integer >= {lo}" if lo is not None else "an integer")

    def check(r: _Reader, node: Node, key: str) -> int:
        if not (isinstance(node, ScalarNode) and node.tag == _INT):
            r.fail(node, f"{key}: expected an integer, got {_describe(node)}")
        v = _yaml_int(r, node, key)
        if (lo is not None and v < lo) or (hi is not None and v > hi) or (pow2 and v & (v - 1)):
            r.fail(node, f"{key}: expected {want}, got {v}")
        return v
    return check


def _opt(check: Checker) -> Checker:
    return lambda r, node, key: None if _is_null(node) else check(r, node, key)


def _list(item: Checker) -> Checker:
    def check(r: _Reader, node: Node, key: str) -> list:
        if not isinstance(node, SequenceNode):
            r.fail(node, f"{key}: expected a list, got {_describe(node)}")
        return [item(r, n, f"{key}[{i}]") for i, n in enumerate(node.value)]
    return check


def _enum(*choices: str) -> Checker:
    def check(r: _Reader, node: Node, key: str) -> str:
        # on/off are YAML 1.1 booleans; accept their source text
        if isinstance(node, ScalarNode) and node.tag in (_STR, _BOOL) and node.value in choices:
            return node.value
        r.fail(node, f"{key}: expected one of {', '.join(choices)}, got {_describe(node)}")
    return check


def _text(valid: Callable[[str], bool], expected: str) -> Checker:
    def check(r: _Reader, node: Node, key: str) -> str:
        s = _str(r, node, key)
        if not valid(s):
            r.fail(node, f"{key}: bad value {s!r}: expected {expected}")
        return s
    return check


def _bool(r: _Reader, node: Node, key: str) -> bool:
    if not (isinstance(node, ScalarNode) and node.tag.endswith(":bool")):
        r.fail(node, f"{key}: expected true or false, got {_describe(node)}")
    return node.value.lower() in ("true", "yes", "on")


_MAC_RE = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")


def _static_mac(r: _Reader, node: Node, key: str) -> "StaticMac":
    """{mac: 02:00:00:00:00:01, vlan: 10, port: p1}"""
    v, _ = r.section(node, STATIC_MAC, f"{key} entry", node)
    return StaticMac(v["mac"], v["vlan"], v["port"], r.where(node))


def _device(r: _Reader, node: Node, key: str) -> str:
    # a device is never a number, so take unquoted 01:00.0 (a YAML 1.1 float) as text
    if isinstance(node, ScalarNode) and node.tag in (_INT, _FLOAT):
        node = ScalarNode(_STR, node.value, node.start_mark, node.end_mark)
    s = _str(r, node, key)
    try:
        parse_device(s)
    except ValueError as e:
        r.fail(node, str(e))
    return s


OFPP_LOCAL = 0xFFFFFFFE


def _ofport(r: _Reader, node: Node, key: str) -> int:
    """1..65279, or LOCAL: the bridge's local port."""
    if isinstance(node, ScalarNode) and node.tag == _STR and node.value.upper() == "LOCAL":
        return OFPP_LOCAL
    if not (isinstance(node, ScalarNode) and node.tag == _INT):
        r.fail(node, f"{key}: expected an integer in 1..65279 or LOCAL, got {_describe(node)}")
    return _int(1, 65279)(r, node, key)


_HEX_DPID_RE = re.compile(r"(0[xX])?[0-9a-fA-F]{1,16}")
MAX_DPID = (1 << 64) - 1


def _datapath_id(r: _Reader, node: Node, key: str) -> int:
    """1..2^64-1: an integer (0x... in YAML is one), or a hex string, "0x..." or Open vSwitch's
    other-config:datapath-id form (16 hex digits)."""
    want = "a hex string (0x1 to 0xffffffffffffffff, or 16 hex digits) or an integer in 1..2^64-1"
    if isinstance(node, ScalarNode) and node.tag == _INT and ":" not in node.value:   # not 1:30 (base 60)
        if re.fullmatch(r"[-+]?0[0-9_]+", node.value):   # YAML 1.1 reads 0010 as octal 8
            r.fail(node, f"{key}: {node.value} reads as an octal number in YAML; write 0x{node.value.lstrip('0')}"
                         f" or quote it ('{node.value}') for the hex digits")
        v = _yaml_int(r, node, key)
    elif isinstance(node, ScalarNode) and node.tag == _STR:
        text = node.value.strip()
        if not _HEX_DPID_RE.fullmatch(text) or not (text[:2] in ("0x", "0X") or len(text) == 16):
            r.fail(node, f"{key}: bad value {node.value!r}: expected {want}")
        v = int(text, 16)
    else:
        r.fail(node, f"{key}: expected {want}, got {_describe(node)}")
    if not 1 <= v <= MAX_DPID:
        r.fail(node, f"{key}: {node.value} is out of range: expected {want}")
    return v


def _flow(r: _Reader, node: Node, key: str) -> FlowConfig:
    text = _str(r, node, key)
    if not text.strip():
        r.fail(node, f"{key}: empty flow")
    return FlowConfig(text, r.where(node))


class Section:
    """The checker of a key whose value is made of mappings that TABLE checks: one of them
    (kind "one"), a mapping of names the user picks (bridges, ports, mirrors) to them ("named"),
    or a list of them ("list", checked by CHECK).  A mapping is handed on as its node: the
    reader checks it against TABLE when it gets there."""

    def __init__(self, table: dict, kind: str = "one", check: Checker | None = None):
        self.table, self.kind, self.check = table, kind, check

    def __call__(self, r: _Reader, node: Node, key: str):
        return self.check(r, node, key) if self.check else node


def _mapping(r: _Reader, node: Node, key: str) -> Node:
    return node  # a mapping of values (rxq_affinity: queue -> core); the reader checks it


# ---------------------------------------------------------------- the schema
# key -> (checker, default); REQUIRED marks mandatory keys.  These tables are the schema: the
# README's "Config reference" shows every key they accept (tests/test_config.py holds it to that).

NETNS = {
    "name": (_text(_name_re(32).fullmatch, "1-32 characters of A-Za-z0-9_.-"), REQUIRED),
    "address": (_opt(_text(_valid_cidr, "an IPv4 or IPv6 address/prefix, e.g. 10.0.0.1/24")),
                None),
}
BFD = {
    "enable": (_bool, False),
    "min_rx": (_int(1, 3600000), 1000),
    "min_tx": (_int(1, 3600000), 100),
    "mult": (_int(1, 255), 3),
    "cpath_down": (_bool, False),
    "decay_min_rx": (_int(0, 3600000), 0),
    "forwarding_if_rx": (_bool, False),
    "dst_mac": (_text(_MAC_RE.fullmatch, "a MAC address xx:xx:xx:xx:xx:xx"), "00:23:20:00:00:01"),
    "src_ip": (_text(_valid_ipv4, "an IPv4 address"), "169.254.1.1"),
    "dst_ip": (_text(_valid_ipv4, "an IPv4 address"), "169.254.1.0"),
}
CFM = {
    "mpid": (_int(1, 8191), REQUIRED),
    "interval": (_int(3, 600000), 1000),
}
MEMBER_ONLY = {
    "lacp_port_id": (_opt(_int(1, 65535)), None),
    "lacp_port_priority": (_int(1, 65535), 65535),
    "lacp_aggregation_key": (_int(0, 65535), 0),
}
BOND_ONLY = {
    "bond_mode": (_enum("active-backup", "balance-slb", "balance-tcp"), "active-backup"),
    "lacp": (_enum("active", "passive", "off"), "off"),
    "lacp_time": (_enum("fast", "slow"), "slow"),
    "lacp_fallback_ab": (_bool, False),
    "lacp_system_id": (_opt(_text(_MAC_RE.fullmatch, "a MAC address xx:xx:xx:xx:xx:xx")), None),
    "lacp_system_priority": (_int(1, 65535), 65534),
    "bond_updelay": (_int(0, 3600000), 0),
    "bond_downdelay": (_int(0, 3600000), 0),
    "bond_rebalance_interval": (_int(0, 10000000), 10000),
    "bond_primary": (_opt(_str), None),
    "bond_hash_basis": (_int(0, 4294967295), 0),
}
PORT = {
    "device": (_opt(_device), None),
    "peer": (_opt(_text(_name_re(15).fullmatch, "a patch port name (1-15 characters of A-Za-z0-9_.-)")), None),
    "ofport": (_ofport, None),
    "n_rxq": (_int(1, 64), 1),
    "n_txq": (_opt(_int(1, 64)), None),
    "rxd": (_int(64, 16384, pow2=True), 1024),
    "txd": (_int(64, 16384, pow2=True), 1024),
    "mtu": (_opt(_int(68, 9710)), None),
    "rxq_affinity": (_mapping, None),
    "netns": (Section(NETNS), None),
    "vlan_mode": (_enum("access", "trunk", "native-tagged", "native-untagged", "dot1q-tunnel"), None),
    "tag": (_opt(_int(0, 4095)), None),
    "trunks": (_opt(_list(_int(0, 4095))), None),
    "stp_enable": (_bool, True),
    "stp_port_priority": (_int(0, 255), 128),
    "stp_path_cost": (_opt(_int(1, 65535)), None),
    "rstp_enable": (_bool, True),
    "rstp_port_priority": (_int(0, 240), 128),
    "rstp_port_path_cost": (_opt(_int(1, 200000000)), None),
    "rstp_port_admin_edge": (_bool, False),
    "rstp_port_auto_edge": (_bool, True),
    "rstp_port_mcheck": (_bool, False),
    "bfd": (Section(BFD), None),
    "cfm": (Section(CFM), None),
}
# a bond's member interfaces: a port's device keys, and their LACP identity
MEMBER = {k: PORT[k] for k in ("device", "ofport", "n_rxq", "n_txq", "rxd", "txd", "mtu",
                                "rxq_affinity")} | MEMBER_ONLY
MEMBER["ofport"] = (_ofport, REQUIRED)
MEMBER["device"] = (_device, REQUIRED)
PORT |= {"interfaces": (Section(MEMBER, "named"), None)} | BOND_ONLY
BOND_KEYS = {"interfaces", "vlan_mode", "tag", "trunks"} | set(BOND_ONLY)
SSL = {
    "private_key": (_text(bool, "a file path"), REQUIRED),
    "certificate": (_text(bool, "a file path"), REQUIRED),
    "ca_cert": (_text(bool, "a file path"), REQUIRED),
}
OPENFLOW = {
    "listen": (_list(_text(_valid_listen, "ptcp:PORT[:IP], pssl:PORT[:IP] or punix:PATH")), []),
    "controllers": (_list(_text(_valid_controller,
                                "tcp:HOST:PORT, ssl:HOST:PORT or unix:PATH")), []),
    "fail_mode": (_enum("standalone", "secure"), "standalone"),
    "ssl": (Section(SSL), None),
    "datapath_id": (_opt(_datapath_id), None),
    "controller_rate_limit": (_opt(_int(100)), None),    # Open vSwitch's minimums: 100 and 25
    "controller_burst_limit": (_opt(_int(25)), None),
}
DATAPATH = {
    "pmd_cores": (_list(_int(0)), None),  # None: all dpdk.cores but the main one
    "emc_insert_inv_prob": (_int(0, MAX_FLOW_LIMIT), 100),
    "flow_limit": (_int(1, MAX_FLOW_LIMIT), 200000),
}
FLOW_TABLE = {
    "flow_limit": (_int(0, MAX_FLOW_LIMIT), DEFAULT_FLOW_LIMIT),
}
STATIC_MAC = {
    "mac": (_text(_MAC_RE.fullmatch, "a MAC address xx:xx:xx:xx:xx:xx"), REQUIRED),
    "vlan": (_int(0, 4095), 0),
    "port": (_str, REQUIRED),
}
MAC_TABLE = {
    "idle_time": (_int(15, 3600), 300),
    "max_entries": (_int(10, 1000000), 8192),
    "static": (Section(STATIC_MAC, "list", _list(_static_mac)), []),
}
MIRROR = {
    "select_all": (_bool, False),
    "select_src_port": (_list(_str), []),
    "select_dst_port": (_list(_str), []),
    "select_vlan": (_opt(_list(_int(0, 4095))), None),
    "output_port": (_opt(_str), None),
    "output_vlan": (_opt(_int(1, 4095)), None),
}
NETFLOW = {
    "targets": (_list(_text(_valid_hostport, "IP:PORT, e.g. 127.0.0.1:2055")), REQUIRED),
    "engine_type": (_int(0, 255), 0),
    "engine_id": (_int(0, 255), 0),
    "active_timeout": (_int(1, 86400), 600),
    "add_id_to_interface": (_bool, False),
}
SFLOW_MAX_TARGETS = 8     # collectors of one sFlow agent: the datapath's DPS_SFLOW_TARGETS
SFLOW = {
    "targets": (_list(_text(_valid_unscoped_hostport,
                            "IP:PORT without an IPv6 zone (%eth0), e.g. 127.0.0.1:6343")), REQUIRED),
    "sampling": (_int(1, 1 << 30), 400),
    "polling": (_int(1, 3600), 30),
    "header": (_int(18, 256), 128),
    "agent": (_opt(_text(_valid_ip, "an IPv4 or IPv6 address")), None),
}
IPFIX_SET = {
    "targets": (_list(_text(_valid_hostport, "IP:PORT, e.g. 127.0.0.1:4739")), REQUIRED),
    "cache_active_timeout": (_int(0, 4200), 0),
    "cache_max_flows": (_int(0, (1 << 32) - 1), 0),
}
IPFIX = {
    "targets": (_list(_text(_valid_hostport, "IP:PORT, e.g. 127.0.0.1:4739")), []),
    "sampling": (_int(1, (1 << 32) - 1), 400),
    "obs_domain_id": (_int(0, (1 << 32) - 1), 0),
    "obs_point_id": (_int(0, (1 << 32) - 1), 0),
    "cache_active_timeout": (_int(0, 4200), 0),
    "cache_max_flows": (_int(0, (1 << 32) - 1), 0),
    "collector_sets": (Section(IPFIX_SET, "named"), None),
}
BRIDGE = {
    "datapath": (Section(DATAPATH), None),
    "openflow": (Section(OPENFLOW), None),
    "ports": (Section(PORT, "named"), REQUIRED),
    "flows": (_list(_flow), []),
    "flow_tables": (Section(FLOW_TABLE, "named"), None),
    "mac_table": (Section(MAC_TABLE), None),
    "flood_vlans": (_list(_int(0, 4095)), []),
    "forward_bpdu": (_bool, False),
    "mirrors": (Section(MIRROR, "named"), None),
    "netflow": (Section(NETFLOW), None),
    "sflow": (Section(SFLOW), None),
    "ipfix": (Section(IPFIX), None),
    "stp_enable": (_bool, False),
    "stp_priority": (_int(0, 65535), 32768),
    "stp_hello_time": (_int(1, 10), 2),
    "stp_max_age": (_int(6, 40), 20),
    "stp_forward_delay": (_int(4, 30), 15),
    "rstp_enable": (_bool, False),
    "rstp_priority": (_int(0, 61440), 32768),
    "rstp_address": (_opt(_text(_MAC_RE.fullmatch, "a MAC address xx:xx:xx:xx:xx:xx")), None),
    "rstp_max_age": (_int(6, 40), 20),
    "rstp_hello_time": (_int(1, 10), 2),
    "rstp_forward_delay": (_int(4, 30), 15),
    "rstp_transmit_hold_count": (_int(1, 10), 6),
    "rstp_ageing_time": (_opt(_int(10, 1000000)), None),
}
CONTROL = {"socket": (_text(bool, "a non-empty path"), "/run/dpdkswitch/ctl.sock"),
           "busy_poll_us": (_int(0, BUSY_POLL_US_MAX), BUSY_POLL_US)}
METRICS = {"listen": (_text(_valid_hostport, "IP:PORT, e.g. 127.0.0.1:9101 or [::1]:9101"), REQUIRED)}
DPDK = {
    "cores": (_list(_int(0)), None),  # None: computed from online_cpus()
    "hugepages": (_enum("auto", "on", "off"), "auto"),
    "memory_mb": (_opt(_int(1)), None),
    "extra_args": (_list(_str), []),
    "file_prefix": (_opt(_text(_FILE_PREFIX_RE.fullmatch, "a name under /run/dpdk: 1-64 characters of "
                                                          "A-Za-z0-9_.-, the first a letter or digit")), None),
    "log_level": (_enum(*DPDK_LEVELS), DPDK_LEVEL_DEFAULT),
}
TOP = {"dpdk": (Section(DPDK), None), "control": (Section(CONTROL), None),
       "metrics": (Section(METRICS), None), "bridges": (Section(BRIDGE, "named"), REQUIRED)}


# -------------------------------------------------------------------- reader

class _Reader:
    """Walks the node tree of one file; knows the path and config-wide names."""

    def __init__(self, path: str):
        self.path = path
        self.seen: dict[tuple[str, str], str] = {}  # (kind, name) -> "file:line"

    def fail(self, node: Node, msg: str) -> NoReturn:
        raise ConfigError(self.path, node.start_mark.line + 1, msg)

    def where(self, node: Node) -> str:
        return f"{self.path}:{node.start_mark.line + 1}"

    def unique(self, kind: str, name: str, node: Node) -> None:
        if (kind, name) in self.seen:
            self.fail(node, f"{kind} {name!r} is already used at {self.seen[kind, name]}")
        self.seen[kind, name] = self.where(node)

    def pairs(self, node: Node | None, what: str) -> list[tuple[ScalarNode, Node]]:
        """(key, value) nodes of a mapping; absent or empty -> []; no duplicates."""
        if node is None or _is_null(node):
            return []
        if not isinstance(node, MappingNode):
            self.fail(node, f"{what}: expected a mapping, got {_describe(node)}")
        first: dict[str, Node] = {}
        for k, _ in node.value:
            if not isinstance(k, ScalarNode):
                self.fail(k, f"{what}: keys must be plain scalars, got {_describe(k)}")
            if k.tag == _T + "merge":
                self.fail(k, f"{what}: YAML merge keys ('<<') are not supported")
            if k.value in first:
                self.fail(k, f"{what}: duplicate key {k.value!r} "
                             f"(first defined on line {first[k.value].start_mark.line + 1})")
            first[k.value] = k
        return node.value

    def section(self, node: Node | None, spec: dict, what: str, owner: Node):
        """Check a mapping against spec; return ({key: value}, {key: (key_node, value_node)})."""
        vals, nodes = {}, {}
        for k, v in self.pairs(node, what):
            if k.value not in spec:
                self.fail(k, f"{what}: {_unknown(k.value, spec)}")
            vals[k.value] = spec[k.value][0](self, v, k.value)
            nodes[k.value] = (k, v)
        for key, (_, default) in spec.items():
            if key not in vals:
                if default is REQUIRED:
                    self.fail(owner, f"{what}: missing required key {key!r}")
                vals[key] = list(default) if isinstance(default, list) else default
        return vals, nodes

    def name(self, key: ScalarNode, kind: str) -> str:
        if not _name_re(15).fullmatch(key.value):
            self.fail(key, f"bad {kind} name {key.value!r}: expected 1-15 characters of "
                           f"A-Za-z0-9_.-")
        return key.value

    # -- sections

    def config(self, root: Node) -> Config:
        top, nodes = self.section(root, TOP, "top level", root)
        dpdk = self.dpdk(top["dpdk"], nodes.get("dpdk", (root,))[0])
        control, _ = self.section(top["control"], CONTROL, "control",
                                  nodes.get("control", (root,))[0])
        pmd_claims: list[tuple[int, str, bool, Node]] = []
        bridges = {}
        for k, v in self.pairs(top["bridges"], "bridges"):
            bridges[k.value] = self.bridge(k, v, dpdk, pmd_claims)
        if not bridges:
            self.fail(nodes["bridges"][0], "bridges: at least one bridge is required")
        self.link_patches(bridges)
        for b in bridges.values():
            dpid = f"0x{b.datapath_id:016x}"
            if b.openflow.datapath_id is None and ("datapath_id", dpid) in self.seen:
                raise ConfigError.at(self.seen["datapath_id", dpid],
                                     f"datapath_id {dpid} is the default of bridge {b.name!r} (a hash of its "
                                     f"name); datapath ids are unique across bridges")
        if problem := control_socket_problem(control["socket"], bridges):
            self.fail(nodes.get("control", (root,))[0], problem)
        metrics = None
        if top["metrics"] is not None:
            metrics, _ = self.section(top["metrics"], METRICS, "metrics", nodes["metrics"][0])
        config = Config(self.path, dpdk, control["socket"], bridges,
                        metrics_listen=metrics["listen"] if metrics else None,
                        control_busy_poll_us=control["busy_poll_us"])
        self.check_datapaths(config, pmd_claims)
        return config

    def link_patches(self, bridges: dict[str, BridgeConfig]) -> None:
        """Each patch port's peer: a patch port of that name in another bridge that names this
        one back (Open vSwitch links only such pairs)."""
        patches = {p.name: (b, p) for b in bridges.values() for p in b.ports.values() if p.peer}
        for b, p in patches.values():
            other = patches.get(p.peer)
            if other is None:
                raise ConfigError.at(p.where, f"patch port {p.name!r}: no patch port {p.peer!r} "
                                              f"in any bridge (peer names the other end)")
            ob, op = other
            if ob is b:
                raise ConfigError.at(p.where, f"patch port {p.name!r}: its peer {p.peer!r} is in "
                                              f"the same bridge {b.name!r}; a patch links two bridges")
            if op.peer != p.name:
                raise ConfigError.at(p.where, f"patch port {p.name!r}: its peer {p.peer!r} (at "
                                              f"{op.where}) names {op.peer!r}, not {p.name!r}, as its peer")
            p.peer_bridge = ob.name

    def check_datapaths(self, config: Config, pmd_claims) -> None:
        """Bridges of one datapath (linked by patch ports) agree on its settings and pool their
        PMD cores; bridges of different datapaths never share a core."""
        group_of = {b: i for i, g in enumerate(config.datapaths()) for b in g}
        for group in config.datapaths():
            first = config.bridges[group[0]]
            for name in group[1:]:
                b = config.bridges[name]
                for key in ("flow_limit", "emc_insert_inv_prob"):
                    if getattr(b, key) != getattr(first, key):
                        raise ConfigError.at(b.where, f"bridge {name!r} shares a datapath with bridge "
                                             f"{first.name!r} (patch ports): datapath.{key} must be the same "
                                             f"({getattr(b, key)} here, {getattr(first, key)} there)")
        owner: dict[int, str] = {}
        for core, name, explicit, item in pmd_claims:
            other = owner.setdefault(core, name)
            if group_of[other] != group_of[name]:
                self.fail(item, f"pmd_cores: core {core} is already used by bridge {other!r}"
                          + ("" if explicit else " (pmd_cores defaults to all dpdk.cores but "
                                                 "the first; set it explicitly)"))

    def dpdk(self, node: Node | None, owner: Node) -> DpdkConfig:
        d, nodes = self.section(node, DPDK, "dpdk", owner)
        online = online_cpus()
        if d["cores"] is None:
            d["cores"] = sorted(online)[:2]
        else:
            seq = nodes["cores"][1]
            if not d["cores"]:
                self.fail(seq, "dpdk.cores: at least one core is required")
            for i, (core, item) in enumerate(zip(d["cores"], seq.value)):
                if core not in online:
                    self.fail(item, f"dpdk.cores: core {core} does not exist or is offline "
                                    f"(online CPUs: {_cpulist(online)})")
                if core in d["cores"][:i]:
                    self.fail(item, f"dpdk.cores: core {core} is listed twice")
        for arg, item in zip(d["extra_args"], nodes["extra_args"][1].value if "extra_args" in nodes else []):
            if arg.split("=", 1)[0] == "--file-prefix":       # checked where it is set: file_prefix
                self.fail(item, "dpdk.extra_args: --file-prefix is dpdk.file_prefix's (set it there)")
        return DpdkConfig(**d, hugepages_where=self.where(nodes["hugepages"][0]) if "hugepages" in nodes else "")

    def bridge(self, key: ScalarNode, node: Node, dpdk: DpdkConfig,
               pmd_claims: list) -> BridgeConfig:
        name = self.name(key, "bridge")
        what = f"bridge {name!r}"
        b, nodes = self.section(node, BRIDGE, what, key)
        dp, dp_nodes = self.section(b["datapath"], DATAPATH, f"{what} datapath",
                                    nodes.get("datapath", (key,))[0])
        main = dpdk.cores[0]
        pmd, explicit = dp["pmd_cores"], dp["pmd_cores"] is not None
        if explicit:
            items = dp_nodes["pmd_cores"][1].value
        else:
            pmd = dpdk.cores[1:]
            items = [key] * len(pmd)
            if not pmd:
                self.fail(key, f"{what}: PMD threads need a core besides the main lcore "
                               f"{main}; add one to dpdk.cores, or set datapath.pmd_cores: [] "
                               f"to run without PMD threads")
        for core, item in zip(pmd, items):
            if core == main:
                self.fail(item, f"pmd_cores: core {core} is the main lcore (dpdk.cores[0]); "
                                f"PMD threads need other cores")
            if core not in dpdk.cores:
                self.fail(item, f"pmd_cores: core {core} is not in dpdk.cores {dpdk.cores}")
            if any(c == core and b == name for c, b, _, _ in pmd_claims):
                self.fail(item, f"pmd_cores: core {core} is listed twice")
            pmd_claims.append((core, name, explicit, item))
        of_key = nodes.get("openflow", (key,))[0]
        openflow, of_nodes = self.section(b["openflow"], OPENFLOW, f"{what} openflow", of_key)
        for k in ("listen", "controllers"):
            for t, item in zip(openflow[k], of_nodes[k][1].value if k in of_nodes else []):
                if t.startswith(("punix:", "unix:")) and (problem := socket_path_problem(t.partition(":")[2], t)):
                    self.fail(item, f"{what} openflow {k}: {problem}")
        tls = [t for t in openflow["listen"] + openflow["controllers"] if t.startswith(("ssl:", "pssl:"))]
        if openflow["datapath_id"] is not None:
            self.unique("datapath_id", f"0x{openflow['datapath_id']:016x}", of_nodes["datapath_id"][1])
        if openflow["ssl"] is not None:
            ssl_cfg, ssl_nodes = self.section(openflow["ssl"], SSL, f"{what} openflow ssl", of_nodes["ssl"][0])
            for k, v in ssl_cfg.items():
                if not os.path.isfile(os.path.join(os.path.dirname(os.path.abspath(self.path)), v)):
                    self.fail(ssl_nodes[k][1], f"openflow ssl {k}: no file {v!r}")
            openflow["ssl"] = SslConfig(**{k: os.path.join(os.path.dirname(os.path.abspath(self.path)), v)
                                           for k, v in ssl_cfg.items()}, where=self.where(of_nodes["ssl"][0]))
        elif tls:
            self.fail(of_key, f"{what} openflow: {tls[0]} needs ssl: {{private_key, certificate, ca_cert}}")
        if openflow["controller_burst_limit"] is not None and openflow["controller_rate_limit"] is None:
            self.fail(of_nodes["controller_burst_limit"][1],
                      f"{what} openflow: controller_burst_limit needs controller_rate_limit")
        ports: dict[str, PortConfig] = {}
        ofports: dict[int, str] = {}
        bonds: dict[str, BondConfig] = {}
        for k, v in self.pairs(b["ports"], f"{what} ports"):
            for pc in self.port(k, v, pmd, ofports, bonds):
                if pc.name in ports or (pc.bond is None and pc.name in bonds):
                    raise ConfigError.at(pc.where, f"{what}: the name {pc.name!r} is already used by another "
                                                   f"port or interface")
                ports[pc.name] = pc
        if not ports:
            self.fail(nodes["ports"][0], f"{what}: at least one port is required")
        mt, _ = self.section(b["mac_table"], MAC_TABLE, f"{what} mac_table",
                             nodes.get("mac_table", (key,))[0])
        for sm in mt["static"]:
            if sm.port not in ports and sm.port not in bonds:
                raise ConfigError.at(sm.where, f"static MAC {sm.mac}: no port {sm.port!r} in {what}")
        mirrors = []
        for mk, mv in self.pairs(b["mirrors"], f"{what} mirrors"):
            m, mnodes = self.section(mv, MIRROR, f"mirror {mk.value!r}", mk)
            if (m["output_port"] is None) == (m["output_vlan"] is None):
                self.fail(mk, f"mirror {mk.value!r}: give exactly one of output_port and output_vlan")
            for k in ("select_src_port", "select_dst_port"):
                for pn in m[k]:
                    if pn not in ports and pn not in bonds:
                        self.fail(mnodes[k][1], f"mirror {mk.value!r}: {k}: no port {pn!r} in {what}")
            if m["output_port"] is not None and m["output_port"] not in ports and m["output_port"] not in bonds:
                self.fail(mnodes["output_port"][1], f"mirror {mk.value!r}: no port {m['output_port']!r} in {what}")
            if not (m["select_all"] or m["select_src_port"] or m["select_dst_port"]):
                self.fail(mk, f"mirror {mk.value!r} selects nothing: select_all, select_src_port or select_dst_port")
            mirrors.append(MirrorConfig(mk.value, where=self.where(mk), **m))
        if len(mirrors) > 32:
            self.fail(nodes["mirrors"][0], f"{what}: at most 32 mirrors")
        flow_limits = {}
        for tk, tv in self.pairs(b["flow_tables"], f"{what} flow_tables"):
            tid = _int(0, N_TABLES - 1)(self, tk, "flow_tables table id")
            t, _ = self.section(tv, FLOW_TABLE, f"{what} flow_tables table {tid}", tk)
            flow_limits[tid] = t["flow_limit"]
        netflow = None
        if b["netflow"] is not None:
            nf, _ = self.section(b["netflow"], NETFLOW, f"{what} netflow", nodes["netflow"][0])
            if not nf["targets"]:
                self.fail(nodes["netflow"][0], f"{what} netflow: targets: at least one collector IP:PORT")
            netflow = NetflowConfig(**nf, where=self.where(nodes["netflow"][0]))
        sflow = None
        if b["sflow"] is not None:
            sf, _ = self.section(b["sflow"], SFLOW, f"{what} sflow", nodes["sflow"][0])
            if not sf["targets"]:
                self.fail(nodes["sflow"][0], f"{what} sflow: targets: at least one collector IP:PORT")
            if len(sf["targets"]) > SFLOW_MAX_TARGETS:
                self.fail(nodes["sflow"][0], f"{what} sflow: targets: at most {SFLOW_MAX_TARGETS} collectors, "
                          f"not {len(sf['targets'])}")
            sflow = SflowConfig(**sf, where=self.where(nodes["sflow"][0]))
        ipfix = self.ipfix(b["ipfix"], nodes.get("ipfix"), what)
        stp = StpConfig(b["stp_enable"], b["stp_priority"], b["stp_hello_time"], b["stp_max_age"],
                        b["stp_forward_delay"])
        if stp.max_age < 2 * (stp.hello_time + 1) or stp.forward_delay < stp.max_age / 2 + 1:
            self.fail(nodes.get("stp_max_age", nodes.get("stp_forward_delay", (key,)))[0],
                      f"{what}: 802.1D needs stp_max_age ≥ 2 × (stp_hello_time + 1) and stp_forward_delay ≥ "
                      f"stp_max_age / 2 + 1 (have hello {stp.hello_time}, max age {stp.max_age}, forward "
                      f"delay {stp.forward_delay})")
        if stp.enable and not b["rstp_enable"]:
            for pc in ports.values():
                if pc.stp_enable and pc.ofport > 255 and pc.ofport != OFPP_LOCAL:
                    raise ConfigError.at(pc.where, f"port {pc.name!r}: an STP port number is 8 bits: ofport "
                                                   f"{pc.ofport} > 255 (set stp_enable: false on it)")
        rstp = RstpConfig(b["rstp_enable"], b["rstp_priority"], b["rstp_address"], b["rstp_max_age"],
                          b["rstp_hello_time"], b["rstp_forward_delay"], b["rstp_transmit_hold_count"],
                          b["rstp_ageing_time"])
        if rstp.priority % 4096:
            self.fail(nodes["rstp_priority"][0], f"{what}: rstp_priority: a multiple of 4096 (0-61440), "
                                                 f"have {rstp.priority}")
        if rstp.max_age < 2 * (rstp.hello_time + 1) or rstp.forward_delay < rstp.max_age / 2 + 1:
            self.fail(nodes.get("rstp_max_age", nodes.get("rstp_forward_delay", (key,)))[0],
                      f"{what}: 802.1D needs rstp_max_age ≥ 2 × (rstp_hello_time + 1) and rstp_forward_delay ≥ "
                      f"rstp_max_age / 2 + 1 (have hello {rstp.hello_time}, max age {rstp.max_age}, forward "
                      f"delay {rstp.forward_delay})")
        for pc in ports.values():
            if pc.rstp_port_priority % 16:
                raise ConfigError.at(pc.where, f"port {pc.name!r}: rstp_port_priority: a multiple of 16 (0-240), "
                                               f"have {pc.rstp_port_priority}")
            if rstp.enable and pc.rstp_enable and pc.ofport > 4095 and pc.ofport != OFPP_LOCAL:
                raise ConfigError.at(pc.where, f"port {pc.name!r}: an RSTP port number is 12 bits: ofport "
                                               f"{pc.ofport} > 4095 (set rstp_enable: false on it)")
        if rstp.enable and stp.enable:
            LOG.warning("%s: stp_enable and rstp_enable are both set: RSTP wins, as in Open vSwitch", what)
            stp = StpConfig(False, stp.priority, stp.hello_time, stp.max_age, stp.forward_delay)
        return BridgeConfig(name, pmd, dp["emc_insert_inv_prob"], dp["flow_limit"],
                            OpenflowConfig(**openflow), ports, b["flows"], self.where(key),
                            MacTableConfig(**mt), b["flood_vlans"], b["forward_bpdu"], mirrors, flow_limits, netflow,
                            sflow, stp, ipfix, rstp, bonds)

    def ipfix(self, node, nodes, what: str) -> IpfixConfig | None:
        if node is None:
            return None
        ix, _ = self.section(node, IPFIX, f"{what} ipfix", nodes[0])
        sets = {}
        for sk, sv in self.pairs(ix.pop("collector_sets"), f"{what} ipfix collector_sets"):
            sid = _int(0, (1 << 32) - 1)(self, sk, "ipfix collector set id")
            cs, _ = self.section(sv, IPFIX_SET, f"{what} ipfix collector set {sid}", sk)
            if not cs["targets"]:
                self.fail(sk, f"{what} ipfix collector set {sid}: targets: at least one collector IP:PORT")
            sets[sid] = IpfixCollectorSet(sid, **cs)
        if not ix["targets"] and not sets:
            self.fail(nodes[0], f"{what} ipfix: targets (bridge-level sampling) or collector_sets (the sample "
                                f"action's), at least one collector")
        return IpfixConfig(**ix, collector_sets=sets, where=self.where(nodes[0]))

    def port(self, key: ScalarNode, node: Node, pmd: list[int],
             ofports: dict[int, str], bonds: dict[str, BondConfig]) -> list[PortConfig]:
        """A port: one PortConfig, or a bond's members (its BondConfig goes into BONDS)."""
        name = self.name(key, "port")
        what = f"port {name!r}"
        p, nodes = self.section(node, PORT, what, key)
        if "interfaces" in nodes:
            return self.bond(key, name, p, nodes, pmd, ofports, bonds)
        for k in BOND_ONLY:
            if k in nodes:
                self.fail(nodes[k][0], f"{what}: {k!r} applies to a bond (a port with interfaces)")
            p.pop(k)
        p.pop("interfaces")
        if p["ofport"] is None:
            self.fail(key, f"{what}: missing required key 'ofport'")
        self.take_ofport(p["ofport"], name, nodes["ofport"][1], ofports)
        if p["peer"] is not None:
            return [self.patch_port(key, name, p, nodes)]
        if p["device"] is None:
            self.fail(key, f"{what}: missing required key 'device' (or 'peer', for a patch port)")
        mode = self.vlan(what, key, p, nodes)
        p.update(vlan_mode=mode, **self.device_keys(what, key, p, nodes, pmd))
        return [PortConfig(name=name, where=self.where(key), **p)]

    def take_ofport(self, ofport: int, name: str, node: Node, ofports: dict[int, str]) -> None:
        if ofport in ofports:
            self.fail(node, f"ofport {ofport} is already used by port {ofports[ofport]!r} of this bridge")
        ofports[ofport] = name

    def vlan(self, what: str, key: ScalarNode, p: dict, nodes: dict) -> str:
        """The port's (or bond's) vlan_mode, its tag and trunks checked against it."""
        mode = p["vlan_mode"] or ("access" if p["tag"] is not None else "trunk")
        if mode in ("access", "native-tagged", "native-untagged", "dot1q-tunnel") and p["tag"] is None:
            self.fail(nodes.get("vlan_mode", (key,))[0], f"{what}: vlan_mode {mode} needs a tag")
        if mode in ("access", "dot1q-tunnel") and p["trunks"] is not None:
            self.fail(nodes["trunks"][0], f"{what}: an {mode} port carries only its tag; trunks do not apply")
        if mode == "trunk" and p["tag"] is not None:
            self.fail(nodes["tag"][0], f"{what}: a trunk port has no tag (use native-tagged or "
                                       f"native-untagged for a native VLAN)")
        return mode

    def device_keys(self, what: str, key: ScalarNode, p: dict, nodes: dict, pmd: list[int]) -> dict:
        """The device's keys of a port or a bond member checked: {rxq_affinity, netns, bfd, cfm}."""
        dev_node = nodes["device"][1]
        driver, devname, args = parse_device(p["device"])
        if driver == "pci":
            self.unique("PCI device", ("0000:" + devname)[-12:].lower(), dev_node)
        else:
            self.unique("vdev name", devname, dev_node)
        if driver == "tap" and (iface := dict(args).get("iface")):
            self.unique("tap iface", iface, dev_node)

        affinity: dict[int, int] = {}
        for qk, cv in self.pairs(p["rxq_affinity"], "rxq_affinity"):
            q = _int(0)(self, qk, "rxq_affinity queue")
            core = _int(0)(self, cv, f"rxq_affinity[{q}]")
            if q in affinity:
                self.fail(qk, f"rxq_affinity: queue {q} is listed twice")
            if q >= p["n_rxq"]:
                self.fail(qk, f"rxq_affinity: queue {q} does not exist (n_rxq is {p['n_rxq']})")
            if core not in pmd:
                self.fail(cv, f"rxq_affinity[{q}]: core {core} is not one of the bridge's "
                              f"pmd_cores {pmd}")
            affinity[q] = core

        netns = None
        if "netns" in nodes:
            ns_key = nodes["netns"][0]
            if driver != "tap":
                self.fail(ns_key, f"netns: only valid for net_tap devices, {what} is {driver}")
            if not dict(args).get("iface"):
                self.fail(dev_node, f"{what} has a netns: name its tap interface with iface=NAME")
            ns, ns_nodes = self.section(p["netns"], NETNS, f"{what} netns", ns_key)
            self.unique("netns name", ns["name"], ns_nodes["name"][1])
            netns = NetnsConfig(**ns)
        bfd = cfm = None
        if "bfd" in nodes:
            b, _ = self.section(p["bfd"], BFD, f"{what} bfd", nodes["bfd"][0])
            bfd = BfdConfig(**b)
        if "cfm" in nodes:
            c, _ = self.section(p["cfm"], CFM, f"{what} cfm", nodes["cfm"][0])
            cfm = CfmConfig(**c)
        return dict(rxq_affinity=affinity, netns=netns, bfd=bfd, cfm=cfm)

    def bond(self, key: ScalarNode, name: str, p: dict, nodes: dict, pmd: list[int],
             ofports: dict[int, str], bonds: dict[str, BondConfig]) -> list[PortConfig]:
        """A bond: Open vSwitch's Port with several Interfaces.  Its keys are the bond's; each
        interface is a device of its own (a port of the datapath, with its own ofport)."""
        what = f"bond {name!r}"
        for k in PORT:
            if k not in BOND_KEYS and k in nodes:
                self.fail(nodes[k][0], f"{what}: {k!r} belongs to each of its interfaces, not to the bond")
        mode = self.vlan(what, key, p, nodes)
        members: list[PortConfig] = []
        for mk, mv in self.pairs(p["interfaces"], f"{what} interfaces"):
            mname = self.name(mk, "interface")
            if mname == name or mname in bonds or any(mname in b.members for b in bonds.values()):
                self.fail(mk, f"{what}: interface name {mname!r} is already used in this bridge")
            mwhat = f"interface {mname!r} of {what}"
            m, mnodes = self.section(mv, MEMBER, mwhat, mk)
            self.take_ofport(m["ofport"], mname, mnodes["ofport"][1], ofports)
            m.update(self.device_keys(mwhat, mk, m, mnodes, pmd))
            members.append(PortConfig(name=mname, where=self.where(mk), vlan_mode=mode, tag=p["tag"],
                                      trunks=p["trunks"], stp_enable=False, bond=name, **m))
        if len(members) < 2:
            self.fail(nodes["interfaces"][0], f"{what}: a bond needs at least two interfaces (have "
                                              f"{len(members)}); a single device is a plain port")
        if p["bond_mode"] == "balance-tcp" and p["lacp"] == "off":
            self.fail(nodes["bond_mode"][1], f"{what}: balance-tcp needs LACP (lacp: active or passive), "
                                             f"as Open vSwitch's")
        if p["bond_primary"] is not None and p["bond_primary"] not in [m.name for m in members]:
            self.fail(nodes["bond_primary"][1], f"{what}: bond_primary {p['bond_primary']!r} is not one of "
                                                f"its interfaces ({', '.join(m.name for m in members)})")
        if p["bond_rebalance_interval"] and p["bond_rebalance_interval"] < 1000:
            self.fail(nodes["bond_rebalance_interval"][1], f"{what}: bond_rebalance_interval is 0 (off) or "
                                                           f"at least 1000 ms")
        bonds[name] = BondConfig(name, [m.name for m in members], vlan_mode=mode, tag=p["tag"],
                                 trunks=p["trunks"], where=self.where(key),
                                 **{k: p[k] for k in BOND_ONLY})
        return members

    def patch_port(self, key: ScalarNode, name: str, p: dict, nodes: dict) -> PortConfig:
        """A patch port: no device, no queues; VLAN settings apply as to any port."""
        what = f"patch port {name!r}"
        for k in ("device", "n_rxq", "n_txq", "rxd", "txd", "mtu", "rxq_affinity", "netns", "bfd", "cfm"):
            if k in nodes:
                self.fail(nodes[k][0], f"{what}: {k!r} does not apply to a patch port (it has no device)")
        self.unique("patch port", name, key)
        mode = p["vlan_mode"] or ("access" if p["tag"] is not None else "trunk")
        if mode != "trunk" and p["tag"] is None:
            self.fail(nodes.get("vlan_mode", (key,))[0], f"{what}: vlan_mode {mode} needs a tag")
        return PortConfig(name=name, device="", ofport=p["ofport"], where=self.where(key), vlan_mode=mode,
                          tag=p["tag"], trunks=p["trunks"], peer=p["peer"], stp_enable=p["stp_enable"],
                          stp_port_priority=p["stp_port_priority"], stp_path_cost=p["stp_path_cost"],
                          **{k: p[k] for k in p if k.startswith("rstp_")})


# ----------------------------------------------------------------------- API

PORT_ARG_KEYS = ("n_rxq", "n_txq", "rxd", "txd", "mtu")
_INT_ARG_RE = re.compile(r"[-+]?(0[xX][0-9a-fA-F_]+|[0-9][0-9_]*)")


def port_from_args(name: str, device: str, ofport: str, options: dict[str, str], pmd_cores: list[int],
                   where: str = "dpif/add-port") -> PortConfig:
    """A port given as a command's words (``dpif/add-port``): NAME, DEVICE, OFPORT and OPTIONS
    (PORT_ARG_KEYS, as text), through the very checks a port of the config file takes.
    ConfigError at WHERE:1, its ``msg`` the one line, for anything they refuse."""
    mark = yaml.Mark(where, 0, 0, 0, None, None)

    def scalar(text: str, key: str) -> ScalarNode:
        tag = _STR if key in ("device", "name") or not _INT_ARG_RE.fullmatch(text) else _INT
        return ScalarNode(tag, text, mark, mark)

    r = _Reader(where)
    for k in options:
        if k not in PORT_ARG_KEYS:
            r.fail(ScalarNode(_STR, k, mark, mark), f"unknown option {k!r}: {', '.join(PORT_ARG_KEYS)} are known")
    items = {"device": device, "ofport": ofport, **options}
    node = MappingNode(_T + "map", [(ScalarNode(_STR, k, mark, mark), scalar(v, k)) for k, v in items.items()],
                       mark, mark)
    (pc,) = r.port(scalar(name, "name"), node, pmd_cores, {}, {})     # no interfaces: one port, never a bond
    return pc


def _check_depth(text: str, path: str) -> None:
    """ConfigError where the YAML nests deeper than MAX_DEPTH: read as a stream of events
    (no recursion), before the composer, which recurses once per level."""
    depth = 0
    for ev in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(path, ev.start_mark.line + 1, f"the YAML nests deeper than {MAX_DEPTH} levels")
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def loads(text: str, path: str = "<string>") -> Config:
    """Parse and check config text; raise ConfigError (one line) on any problem."""
    try:
        _check_depth(text, path)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        if e.context_mark and "end of stream" in (e.problem or ""):
            mark = e.context_mark  # e.g. an unclosed quote: point at where it opened
        context = f" ({e.context} at line {e.context_mark.line + 1})" if e.context_mark else ""
        raise ConfigError(path, mark.line + 1 if mark else 1,
                          f"YAML syntax error: {e.problem or e}{context}") from None
    except yaml.reader.ReaderError as e:
        raise ConfigError(path, text.count("\n", 0, e.position) + 1,
                          f"YAML syntax error: {e.reason}") from None
    except yaml.YAMLError as e:
        raise ConfigError(path, 1, f"YAML syntax error: {e}") from None
    if root is None:
        raise ConfigError(path, 1, "config is empty; 'bridges' is required")
    return _Reader(path).config(root)


def load(path: str) -> Config:
    """Read and check a config file; raise ConfigError (one line) on any problem."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigError(path, 0, f"cannot read config: {e.strerror or e}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(path, 1, f"config is larger than {MAX_FILE_BYTES >> 20} MB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(path, data.count(b"\n", 0, e.start) + 1,
                          "config is not valid UTF-8") from None
    return loads(text, path)
