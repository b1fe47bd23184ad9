"""Bonds: a port of several members, as Open vSwitch's ofproto/bond.c.

One ``Bond`` per bond of the config.  NORMAL (ofproto/xlate.py) sees it through the pipeline's
``bonds`` (``normal.Bundle``): the bond is one port for MAC learning and flooding; it says
whether a frame received on a member is admissible (``admissible``) and which member a frame
leaves by (``choose``):

* active-backup: everything by the active member (``bond_primary`` while it is enabled, else the
  current one while it stays enabled, else the first enabled); frames received on the others
  are dropped.
* balance-slb: the source MAC and VLAN hashed into 256 buckets, each bucket on a member; a
  frame received with a source MAC learned on another port is a reflection and is dropped
  (except a gratuitous ARP), and multicast is taken only on the active member.
* balance-tcp: needs LACP negotiated (or ``lacp_fallback_ab``: then it is active-backup).  The
  datapath hashes the frame's L4 fields and recirculates it (``recirculates``); the frame back
  is translated by its bucket, dp_hash & 0xff (``bucket_member``), as Open vSwitch's
  post-recirculation rules.  With ``recirculation`` off the symmetric L3/L4 hash is taken at
  translation instead (``choose``), and the megaflow matches those fields.

A member is enabled while its port's liveness (carrier, LACP, BFD, CFM) says it may be, after
``bond_updelay`` (coming up) or ``bond_downdelay`` (going down).  Every
``bond_rebalance_interval`` the buckets' bytes (credited by the revalidator through the
translations that chose them) move buckets from the most loaded member to the least, while that
takes at least 1/32 of the load and 100 kB off it, as Open vSwitch's; then the loads are halved.
After the active member changes (active-backup, or balance-slb without negotiated LACP) a RARP
learning frame goes out for every MAC learned on the bridge's other ports, so the far switch
learns them anew.

Contract: the control thread only (translation, the protocols' timers, commands).  Cost:
``choose`` and ``admissible`` are a few field reads and a CRC; ``run`` is O(members).
"""
from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

N_BUCKETS = 256
REBALANCE_MIN_BYTES = 100_000          # Open vSwitch's: a move must take at least 100 kB ...
ETH_TYPE_RARP = 0x8035


@dataclass
class BondMember:
    name: str
    ofport: int
    may_enable: bool = False           # the port's liveness
    enabled: bool = False              # carries traffic (may_enable after updelay/downdelay)
    delay_until: float | None = None   # a pending enable or disable
    forced: bool | None = None         # bond/enable-member, bond/disable-member
    tx_bytes: int = 0                  # the member's buckets' load, for bond/show


def slb_hash(mac: int, vlan: int, basis: int = 0) -> int:
    return zlib.crc32(struct.pack("!QHI", mac, vlan, basis))


def tcp_hash(fields: tuple[int, int, int, int, int], basis: int = 0) -> int:
    """Both directions of a connection hash alike (Open vSwitch's symmetric L3L4 hash)."""
    proto, a, b, pa, pb = fields
    lo, hi = sorted(((a, pa), (b, pb)))
    return zlib.crc32(struct.pack("!B16sH16sHI", proto, lo[0].to_bytes(16, "big"), lo[1],
                                  hi[0].to_bytes(16, "big"), hi[1], basis))


class Bond:
    """One bond.  LACP: its ``lacp.LacpBond`` (None: lacp off).  SEND(ofport, frame) transmits a
    learning frame; ON_CHANGE() is called when translation would choose differently now."""

    def __init__(self, name: str, members: list[tuple[str, int]], mode: str = "active-backup",
                 primary: str | None = None, updelay: int = 0, downdelay: int = 0,
                 rebalance_interval: int = 10000, lacp=None, fallback_ab: bool = False,
                 send: Callable[[int, bytes], None] = lambda ofport, frame: None,
                 on_change: Callable[[], None] = lambda: None, now: float = 0.0, basis: int = 0) -> None:
        self.name, self.mode, self.primary = name, mode, primary
        self.updelay, self.downdelay = updelay / 1000, downdelay / 1000
        self.rebalance_interval = rebalance_interval / 1000
        self.lacp, self.fallback_ab = lacp, fallback_ab
        self.send, self.on_change, self.basis = send, on_change, basis
        self.members: dict[int, BondMember] = {o: BondMember(n, o) for n, o in members}
        self.id = min(self.members)                  # the bond's port in the MAC table
        self.active: int | None = None
        self.buckets: list[int | None] = [None] * N_BUCKETS
        self.loads = [0] * N_BUCKETS
        self.next_rebalance = now + self.rebalance_interval
        self.send_learning = False
        self.now = now
        self.learning_sent = 0
        self.recirculation = True                  # balance-tcp by datapath hash + recirculation

    def take_state(self, old: "Bond") -> None:
        """Carry on from OLD, the bond this one replaces (a reload changed its keys or members):
        the members both have keep their state (enabled, delays, forced), the active member stays
        active, and in the same balancing mode the buckets stay where they are, so a change of,
        say, the rebalance interval moves no traffic and sends no learning frames."""
        for o, m in self.members.items():
            om = old.members.get(o)
            if om is not None and om.name == m.name:
                m.may_enable, m.enabled, m.delay_until, m.forced = om.may_enable, om.enabled, om.delay_until, om.forced
                m.tx_bytes = om.tx_bytes
        if old.active in self.members and self.members[old.active].enabled:
            self.active = old.active
        if old.mode == self.mode:
            self.buckets = [b if b in self.members else None for b in old.buckets]
            self.loads = list(old.loads)

    # -- what LACP says
    @property
    def lacp_status(self) -> str:
        """off, negotiated or configured (Open vSwitch's lacp_status)."""
        if self.lacp is None:
            return "off"
        return self.lacp.status

    def balancing(self) -> str:
        """The mode in force: balance-tcp without negotiated LACP falls back to active-backup
        with lacp_fallback_ab."""
        if self.mode == "balance-tcp" and self.lacp_status != "negotiated" and self.fallback_ab:
            return "active-backup"
        return self.mode

    # -- NORMAL's questions (normal.Bundle)
    def admissible(self, ofport: int, multicast: bool) -> str:
        """A frame received on member OFPORT: "accept", "drop_if_moved" (balance-slb: unless its
        source MAC was learned elsewhere), or "drop: why" (bond_check_admissibility)."""
        m = self.members.get(ofport)
        if m is None:
            return "drop: not a member"
        status = self.lacp_status
        if status == "negotiated":
            return "accept" if (m.enabled or m.may_enable) else "drop: member disabled"
        if status == "configured" and not self.fallback_ab:
            return "drop: LACP is not negotiated"
        if multicast and self.active != ofport:
            return "drop: multicast on an inactive member"
        mode = self.mode
        if mode == "balance-tcp":
            if not self.fallback_ab:
                return "drop: balance-tcp needs LACP"
            mode = "active-backup"
        if mode == "active-backup":
            return "accept" if self.active == ofport else "drop: not the active member"
        return "drop_if_moved"

    def choose(self, flow, vlan: int) -> tuple[int | None, int | None]:
        """(member ofport, bucket) a frame with FLOW (read through ``get``: matched by the
        megaflow) in VLAN leaves by; (None, None) when none may carry it."""
        mode = self.balancing()
        if mode == "balance-tcp" and self.lacp_status != "negotiated":
            return None, None
        if mode == "active-backup" or not any(m.enabled for m in self.members.values()):
            return self.active, None
        if mode == "balance-slb":
            h = slb_hash(flow.get("eth_src"), vlan, self.basis)
        else:
            h = tcp_hash(self.l4_fields(flow), self.basis)
        b = h & (N_BUCKETS - 1)
        m = self.buckets[b]
        if m is None or not self.members[m].enabled:
            m = self.buckets[b] = self._least_loaded()
        return m, b

    def recirculates(self) -> bool:
        """balance-tcp with LACP negotiated: the datapath hashes the frame's L4 fields and
        recirculates it; ``bucket_member`` then names the member (Open vSwitch's recirculation)."""
        return self.recirculation and self.balancing() == "balance-tcp" and self.lacp_status == "negotiated"

    def bucket_member(self, bucket: int) -> int | None:
        if not any(m.enabled for m in self.members.values()):
            return None
        m = self.buckets[bucket]
        if m is None or not self.members[m].enabled:
            m = self.buckets[bucket] = self._least_loaded()
        return m

    @staticmethod
    def l4_fields(flow) -> tuple[int, int, int, int, int]:
        et = flow.get("eth_type")
        if et == 0x0800:
            src, dst = flow.get("ipv4_src"), flow.get("ipv4_dst")
        elif et == 0x86DD:
            src, dst = flow.get("ipv6_src"), flow.get("ipv6_dst")
        else:
            return (0, flow.get("eth_src"), flow.get("eth_dst"), 0, 0)
        proto = flow.get("ip_proto")
        if proto in (6, 17, 132):
            name = {6: "tcp", 17: "udp", 132: "sctp"}[proto]
            return (proto, src, dst, flow.get(f"{name}_src"), flow.get(f"{name}_dst"))
        return (proto, src, dst, 0, 0)

    def _least_loaded(self) -> int | None:
        enabled = [m for m in self.members.values() if m.enabled]
        if not enabled:
            return self.active
        count = {m.ofport: 0 for m in enabled}
        for b in self.buckets:
            if b in count:
                count[b] += 1
        return min(enabled, key=lambda m: (count[m.ofport], m.ofport)).ofport

    def account(self, bucket: int, nbytes: int) -> None:
        """NBYTES left by BUCKET (the revalidator, through the translations that chose it)."""
        self.loads[bucket] += nbytes

    # -- enabling members, the active member
    def set_may_enable(self, ofport: int, may: bool) -> None:
        m = self.members.get(ofport)
        if m is not None and m.may_enable != may:
            m.may_enable = may
            delay = self.updelay if may else self.downdelay
            m.delay_until = self.now + delay

    def run(self, now: float) -> None:
        """Members enabled or disabled as their delays run out, the active member, rebalancing."""
        self.now = now
        changed = False
        for m in self.members.values():
            want = m.may_enable if m.forced is None else m.forced
            if m.forced is None and m.delay_until is not None and now < m.delay_until:
                continue
            m.delay_until = None
            if m.enabled != want:
                m.enabled = want
                changed = True
        if self._choose_active():
            changed = True
        if self.rebalance_interval and now >= self.next_rebalance:
            self.next_rebalance = now + self.rebalance_interval
            if self.rebalance():
                changed = True
        if changed:
            self.on_change()

    def _choose_active(self) -> bool:
        members = self.members
        cur = self.active
        best = None
        if self.primary is not None:
            best = next((m.ofport for m in members.values() if m.name == self.primary and m.enabled), None)
        if best is None and cur is not None and members[cur].enabled:
            best = cur
        if best is None:
            best = next((m.ofport for m in members.values() if m.enabled), None)
        if best is None:                             # none enabled: one waiting for its updelay
            best = next((m.ofport for m in members.values() if m.may_enable), None)
        if best == cur:
            return False
        self.active = best
        if best is not None and (self.balancing() == "active-backup" or
                                 (self.mode == "balance-slb" and self.lacp_status != "negotiated")):
            self.send_learning = True
        return True

    def set_active(self, name: str) -> str:
        m = next((m for m in self.members.values() if m.name == name), None)
        if m is None:
            raise KeyError(f"no such member {name}")
        if not m.enabled:
            return f"cannot make disabled member {name} active"
        if self.active == m.ofport:
            return f"{name} is already the active member"
        self.active = m.ofport
        self.send_learning = True
        self.on_change()
        return "done"

    def force(self, name: str, enable: bool) -> None:
        """bond/enable-member, bond/disable-member."""
        m = next((m for m in self.members.values() if m.name == name), None)
        if m is None:
            raise KeyError(f"no such member {name}")
        m.forced = enable
        self.run(self.now)

    def migrate(self, bucket: int, name: str) -> str:
        m = next((m for m in self.members.values() if m.name == name), None)
        if m is None:
            raise KeyError(f"no such member {name}")
        if self.balancing() == "active-backup":
            return "not an SLB or TCP bond"
        if not m.enabled:
            return "cannot migrate to disabled member"
        self.buckets[bucket] = m.ofport
        self.on_change()
        return "migrated"

    # -- rebalancing (bond_rebalance)
    def rebalance(self) -> bool:
        """Buckets move from the most loaded member to the least loaded while that helps (at
        least 1/32 of the bigger load and 100 kB), then every load is halved; whether any moved."""
        if self.balancing() == "active-backup":
            return False
        enabled = [m.ofport for m in self.members.values() if m.enabled]
        if len(enabled) < 2:
            return False
        load = {o: 0 for o in enabled}
        for b, o in enumerate(self.buckets):
            if o in load:
                load[o] += self.loads[b]
        moved = False
        for _ in range(N_BUCKETS):
            hi = max(enabled, key=lambda o: load[o])
            lo = min(enabled, key=lambda o: load[o])
            overload = load[hi] - load[lo]
            if overload < load[hi] / 32 or overload < REBALANCE_MIN_BYTES:
                break
            # the bucket of HI whose move brings the two closest
            best = None
            for b, o in enumerate(self.buckets):
                if o != hi or not self.loads[b]:
                    continue
                after = abs((load[hi] - self.loads[b]) - (load[lo] + self.loads[b]))
                if after < overload and (best is None or after < best[0]):
                    best = (after, b)
            if best is None:
                break
            b = best[1]
            self.buckets[b] = lo
            load[hi] -= self.loads[b]
            load[lo] += self.loads[b]
            moved = True
        for o, m in self.members.items():
            m.tx_bytes = sum(self.loads[b] for b, x in enumerate(self.buckets) if x == o)
        self.loads = [x // 2 for x in self.loads]
        return moved

    # -- learning frames after a failover
    def take_learning(self) -> bool:
        """Whether learning frames are due now (once per active-member change)."""
        due, self.send_learning = self.send_learning, False
        return due

    @staticmethod
    def learning_frame(mac: int, vlan: int) -> bytes:
        """A RARP from MAC (Open vSwitch's bond_compose_learning_packet), tagged VLAN unless 0."""
        src = mac.to_bytes(6, "big")
        tag = struct.pack("!HH", 0x8100, vlan) if vlan else b""
        rarp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 3, src, bytes(4), src, bytes(4))
        return b"\xff" * 6 + src + tag + ETH_TYPE_RARP.to_bytes(2, "big") + rarp

    # -- bond/show, bond/list
    def show(self) -> str:
        out = [f"---- {self.name} ----", f"bond_mode: {self.mode}",
               f"bond may use recirculation: {'yes' if self.recirculates() else 'no'}", f"bond-hash-basis: {self.basis}",
               f"updelay: {round(self.updelay * 1000)} ms", f"downdelay: {round(self.downdelay * 1000)} ms"]
        if self.mode != "active-backup" and self.rebalance_interval:
            out.append(f"next rebalance: {max(0, round((self.next_rebalance - self.now) * 1000))} ms")
        out += [f"lacp_status: {self.lacp_status}",
                f"lacp_fallback_ab: {'true' if self.fallback_ab else 'false'}",
                f"active-backup primary: {self.primary or '<none>'}"]
        act = self.members.get(self.active) if self.active is not None else None
        out.append(f"active member: {act.name if act else '<none>'}")
        for m in sorted(self.members.values(), key=lambda m: m.name):
            out += ["", f"member {m.name}: {'enabled' if m.enabled else 'disabled'}"]
            if m.ofport == self.active:
                out.append("  active member")
            if m.delay_until is not None:
                out.append(f"  {'upd' if m.may_enable else 'downd'}elay expires in "
                           f"{max(0, round((m.delay_until - self.now) * 1000))} ms")
            out.append(f"  may_enable: {'true' if m.may_enable else 'false'}")
            if self.balancing() != "active-backup":
                for b, o in enumerate(self.buckets):
                    if o == m.ofport and self.loads[b]:
                        out.append(f"  hash {b}: {self.loads[b] // 1024} kB load")
        return "\n".join(out)

    def list_line(self) -> str:
        return f"{self.name}\t{self.mode}\t0\t{', '.join(m.name for m in self.members.values())}"
