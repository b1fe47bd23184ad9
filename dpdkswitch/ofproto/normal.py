"""NORMAL: the L2 learning switch a bridge is by default — MAC learning, VLAN port modes,
flooding — as Open vSwitch's NORMAL action does it.

``MacTable`` maps (VLAN, MAC) to a port, with idle aging (300 s by default), a size cap with LRU
eviction (8192 by default), static entries and a gratuitous-ARP lock; every change is recorded
so the revalidator re-translates exactly the megaflows that looked that (VLAN, MAC) up.

Port VLAN modes (``VlanPort``): access (tag), trunk (trunks; none = all), native-tagged and
native-untagged (tag + trunks), dot1q-tunnel (tag, an outer 802.1ad tag added on the way in and
removed on the way out).  Tags are handled as Open vSwitch's NORMAL handles them (its xvlan, two
tags deep, tests/test_reference_normal.py compares): ``ingress`` gives the tags a frame has inside
the bridge, ``egress`` the ones it leaves a port with, ``carries`` whether a flood goes out a port.

Pure Python; the control thread.  A learn or lookup is a dict operation.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

RESERVED_MCAST = 0x0180C2000000           # 01:80:c2:00:00:0x, the 802.1D reserved range
RESERVED_MCAST_MASK = 0xFFFFFFFFFFF0
# What NORMAL drops unless forward_bpdu (OVS's eth_addr_is_reserved): the 802.1D range, and the
# Extreme (EDP, EAPS: unicast addresses) and Cisco (ISL, CDP/VTP/DTP/PAgP/UDLD, PVST+, STP
# UplinkFast, CFM) protocol addresses.
RESERVED_MACS = frozenset([RESERVED_MCAST + i for i in range(16)]
                          + [0x00E02B000000, 0x00E02B000004, 0x00E02B000006]
                          + [0x01000C000000, 0x01000CCCCCCC, 0x01000CCCCCCD, 0x01000CCDCDCD]
                          + [0x01000CCCCCC0 + i for i in range(8)])
TAG_PRESENT = 0x1000                      # the flow key's "tag present" bit in a TCI (fields.VLAN_CFI)


def is_reserved(mac: int) -> bool:
    return mac in RESERVED_MACS
DEFAULT_IDLE = 300
DEFAULT_MAX = 8192
MODES = ("access", "trunk", "native-tagged", "native-untagged", "dot1q-tunnel")


@dataclass
class VlanPort:
    mode: str = "trunk"
    tag: int | None = None                # access / native / dot1q-tunnel VLAN
    trunks: frozenset[int] | None = None  # None: every VLAN
    qinq_tpid: int = 0x88A8

    def trunks_vlan(self, vlan: int) -> bool:
        """Whether VLAN rides this port tagged.  A native port always trunks its own VLAN and
        never VLAN 0 (untagged frames on it are in its own VLAN)."""
        if self.mode in ("access", "dot1q-tunnel"):
            return False
        if self.mode != "trunk" and self.tag:
            if vlan == 0:
                return False
            if vlan == self.tag:
                return True
        return self.trunks is None or vlan in self.trunks

    def carries(self, vlan: int, inner: int = 0) -> bool:
        """Whether a frame flooded in VLAN goes out this port; INNER: the VID of the tag below
        the VLAN's inside the bridge (0: none), which an access port would not send."""
        if self.mode == "access":
            return vlan == self.tag and inner == 0
        if self.mode == "dot1q-tunnel":
            return vlan == self.tag
        return self.trunks_vlan(vlan)

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
            return vid if self.trunks_vlan(vid) else None
        if vid is None:                        # trunk: untagged frames are VLAN 0
            return 0 if self.trunks_vlan(0) else None
        return vid if self.trunks_vlan(vid) else None

    def ingress(self, stack: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
        """The frame's tags as received, [(tpid, tci)] outer first (the flow key's two) -> its
        tags inside the bridge, [(tpid, vid, pcp)], always two, (0, 0, 0) for none; the first
        is its VLAN.  An access port's frame keeps only its VLAN (and the priority of a priority
        tag); a dot1q-tunnel port's gets an outer tag of PCP 0 over the customer's outer tag."""
        tags = [(tpid, tci & 0xFFF, tci >> 13) for tpid, tci in stack[:2]]
        tags += [(0, 0, 0)] * (2 - len(tags))
        (tpid, vid, pcp), inner = tags
        if self.mode == "access":
            return [(tpid or 0x8100, self.tag, pcp), (0, 0, 0)]
        if self.mode == "dot1q-tunnel":
            return [(self.qinq_tpid, self.tag, 0), tags[0]]
        if self.mode != "trunk" and vid == 0:          # native: untagged or priority-tagged
            return [(tpid or 0x8100, self.tag, pcp), inner]
        return tags

    def egress(self, tags: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
        """Tags inside the bridge (``ingress``) -> the tags [(tpid, tci)] the frame leaves this
        port with.  An access port sends no tag, a native-untagged one none for its own VLAN, a
        dot1q-tunnel one removes the outer; a tag with VID 0 and PCP 0 is left out, and with
        it every tag below it (a priority tag with a priority stays)."""
        if self.mode == "access":
            tags = []
        elif self.mode == "dot1q-tunnel" or (self.mode == "native-untagged" and tags[0][1] == self.tag):
            tags = tags[1:]
        out = []
        for tpid, vid, pcp in tags:
            if not vid and not pcp:
                break
            out.append((tpid or 0x8100, vid | pcp << 13 | TAG_PRESENT))
        return out


class Bundle(Protocol):
    """A bond as NORMAL sees it (bond.py's ``Bond``): one port for learning and flooding, known
    in the MAC table by ``id`` (one of its members' OpenFlow ports)."""
    id: int
    name: str
    basis: int                         # the hashes' seed (bond_hash_basis)

    def admissible(self, ofport: int, multicast: bool) -> str:
        """A frame in on member OFPORT: "accept", "drop_if_moved" or "drop: why"."""

    def choose(self, flow, vlan: int) -> tuple[int | None, int | None]:
        """(member, hash bucket or None) a frame leaves by; FLOW's fields read through ``get``."""

    def account(self, bucket: int, nbytes: int) -> None:
        """NBYTES went out by BUCKET."""

    def recirculates(self) -> bool:
        """Whether frames leave by a datapath hash and recirculation (balance-tcp)."""

    def bucket_member(self, bucket: int) -> int | None:
        """The member BUCKET leaves by (after a recirculation)."""


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

    def count(self, packets: int, nbytes: int) -> None:
        """Traffic the mirror copied."""
        self.packets += packets
        self.bytes += nbytes


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

    def del_static(self, vlan: int, mac: int) -> bool:
        """The static entry for MAC on VLAN leaves (a learned one stays); whether there was one."""
        e = self.entries.get((vlan, mac))
        if e is None or not e.static:
            return False
        del self.entries[(vlan, mac)]
        self.changed.add((vlan, mac))
        return True

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

    def move(self, old: int, new: int) -> int:
        """Every address learned on port OLD is on port NEW from now on (Open vSwitch's
        bundle_move, when RSTP's root port moves: what was upstream still is); how many."""
        n = 0
        for k, e in self.entries.items():
            if not e.static and e.port == old:
                e.port = new
                self.changed.add(k)
                n += 1
        return n

    def take_changes(self) -> set[tuple[int, int]]:
        out, self.changed = self.changed, set()
        return out
