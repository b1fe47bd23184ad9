"""NORMAL: the L2 learning switch a bridge is by default — MAC learning, VLAN port modes,
flooding — as Open vSwitch's NORMAL action does it.

``MacTable`` maps (VLAN, MAC) to a port, with idle aging (300 s by default), a size cap with LRU
eviction (8192 by default), static entries and a gratuitous-ARP lock; every change is recorded
so the revalidator re-translates exactly the megaflows that looked that (VLAN, MAC) up.

Port VLAN modes (``VlanPort``): access (tag), trunk (trunks; none = all), native-tagged and
native-untagged (tag + trunks), dot1q-tunnel (tag, an outer 802.1ad tag added on the way in and
removed on the way out).

Pure Python; the control thread.  A learn or lookup is a dict operation.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

RESERVED_MCAST = 0x0180C2000000           # 01:80:c2:00:00:0x, the 802.1D reserved range
RESERVED_MCAST_MASK = 0xFFFFFFFFFFF0
DEFAULT_IDLE = 300
DEFAULT_MAX = 8192
MODES = ("access", "trunk", "native-tagged", "native-untagged", "dot1q-tunnel")


@dataclass
class VlanPort:
    mode: str = "trunk"
    tag: int | None = None                # access / native / dot1q-tunnel VLAN
    trunks: frozenset[int] | None = None  # None: every VLAN
    qinq_tpid: int = 0x88A8

    def carries(self, vlan: int) -> bool:
        if self.mode in ("access", "dot1q-tunnel"):
            return vlan == self.tag
        if self.mode in ("native-tagged", "native-untagged") and vlan == self.tag:
            return True
        return self.trunks is None or vlan in self.trunks

    def input_vlan(self, vid: int | None) -> int | None:
        """The VLAN of a frame received with VID (None: untagged; 0: priority-tagged), or None
        when the port does not accept it."""
        if vid == 0:
            vid = None
        if self.mode == "access":
            return self.tag if vid is None else None
        if self.mode == "dot1q-tunnel":
            return self.tag
        if self.mode in ("native-tagged", "native-untagged"):
            if vid is None:
                return self.tag
            return vid if self.trunks is None or vid in self.trunks or vid == self.tag else None
        if vid is None:                        # trunk: untagged frames are VLAN 0
            return 0 if self.trunks is None or 0 in self.trunks else None
        return vid if self.trunks is None or vid in self.trunks else None

    def output_tag(self, vlan: int) -> int | None:
        """The VID a frame of VLAN leaves this port with, None for untagged."""
        if self.mode in ("access", "dot1q-tunnel"):
            return None
        if self.mode == "native-untagged" and vlan == self.tag:
            return None
        return vlan or None


MAX_MIRRORS = 32


@dataclass
class Mirror:
    """SPAN/RSPAN: copies of the frames that enter SRC ports or leave DST ports (all, with
    select_all), of the VLANs selected (all if none), to OUT_PORT or flooded on OUT_VLAN."""
    name: str
    select_all: bool = False
    src: frozenset[int] = frozenset()        # OpenFlow ports
    dst: frozenset[int] = frozenset()
    vlans: frozenset[int] | None = None
    out_port: int | None = None
    out_vlan: int | None = None
    packets: int = 0
    bytes: int = 0


@dataclass
class MacEntry:
    port: int
    last_seen: float
    static: bool = False
    locked_until: float = 0.0


@dataclass
class MacTable:
    idle_time: float = DEFAULT_IDLE
    max_entries: int = DEFAULT_MAX
    entries: "OrderedDict[tuple[int, int], MacEntry]" = field(default_factory=OrderedDict)
    changed: set[tuple[int, int]] = field(default_factory=set)   # for the revalidator
    learned: int = 0
    moved: int = 0
    evicted: int = 0
    expired: int = 0

    def lookup(self, vlan: int, mac: int) -> int | None:
        e = self.entries.get((vlan, mac))
        return e.port if e else None

    def learn(self, vlan: int, mac: int, port: int, now: float, gratuitous_arp: bool = False) -> bool:
        """Record that MAC was seen on PORT; True if the table changed (new entry or a move)."""
        if mac & 0x010000000000:               # group addresses are never learned
            return False
        key = (vlan, mac)
        e = self.entries.get(key)
        if e is not None:
            self.entries.move_to_end(key)
            if e.port == port:
                e.last_seen = max(e.last_seen, now)
                return False
            if e.static or now < e.locked_until:
                return False                   # a static or locked entry does not move
            e.port, e.last_seen = port, now
            self.moved += 1
        else:
            if len(self.entries) >= self.max_entries:
                old, _ = next((k, v) for k, v in self.entries.items() if not v.static)
                del self.entries[old]
                self.changed.add(old)
                self.evicted += 1
            e = self.entries[key] = MacEntry(port, now)
            self.learned += 1
        if gratuitous_arp:
            e.locked_until = now + 5           # OVS's gratuitous-ARP lock: 5 s
        self.changed.add(key)
        return True

    def refresh(self, vlan: int, mac: int, port: int, now: float) -> None:
        """Cached traffic from MAC on PORT was seen: keep its entry alive.  Never a move: counters
        arrive late, and a host that moved since must not be pulled back."""
        e = self.entries.get((vlan, mac))
        if e is None:
            self.learn(vlan, mac, port, now)
        elif e.port == port:
            e.last_seen = max(e.last_seen, now)
            self.entries.move_to_end((vlan, mac))

    def add_static(self, vlan: int, mac: int, port: int) -> None:
        self.entries[(vlan, mac)] = MacEntry(port, 0.0, static=True)
        self.changed.add((vlan, mac))

    def expire(self, now: float) -> int:
        old = [k for k, e in self.entries.items() if not e.static and now - e.last_seen >= self.idle_time]
        for k in old:
            del self.entries[k]
            self.changed.add(k)
        self.expired += len(old)
        return len(old)

    def flush(self, port: int | None = None) -> int:
        gone = [k for k, e in self.entries.items() if not e.static and (port is None or e.port == port)]
        for k in gone:
            del self.entries[k]
            self.changed.add(k)
        return len(gone)

    def take_changes(self) -> set[tuple[int, int]]:
        out, self.changed = self.changed, set()
        return out
