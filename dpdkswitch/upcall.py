"""Miss handling: the datapath's upcalls, in batches, turned into megaflows and packet-outs.

A batch is taken from the upcall ring and grouped by flow key; each group is translated once
(ofproto.xlate), installed as one batch of datapath flow puts, and the missed packets are then
sent by packet-out with the same actions, so the first packet of every new flow is forwarded.
Userspace upcalls (the controller action, an expired TTL) become packet-in events.  Every
installed megaflow is remembered as a ``Ukey`` (for the revalidator).

Contract: runs on the control thread's loop (woken by the datapath's eventfd); one handle()
call takes at most ``max_batch`` upcalls so the loop stays responsive.  Cost: one translation
per distinct flow in the batch, one flow_put_batch, one packet-out per packet.
"""
from __future__ import annotations

import errno
from collections import defaultdict
from dataclasses import dataclass

from .datapath import Datapath, odp
from .flowkey import KEY_SIZE
from .ofproto.pipeline import Pipeline
from .ofproto.xlate import PacketIn, Translator, Visit
from .ukey import Ukey, Ukeys, megaflow_ufid


def credit(visits: list[Visit], packets: int, nbytes: int, used_s: float) -> None:
    """Traffic of a megaflow (or of missed packets) to what its translation used: rules, their
    tables, groups and buckets, mirrors, patch ports; and NORMAL's MACs stay learned."""
    for v in visits:
        p = v.pipeline
        for vlan, mac, port, _ in v.learns:
            p.macs.refresh(vlan, mac, port, used_s)
        for e in v.entries:
            e.count(packets, nbytes)
            e.last_used = max(e.last_used, used_s)
        for tid in v.tables:
            p.tables[tid].lookups += packets
        for tid in {e.table_id for e in v.entries}:
            p.tables[tid].matches += packets
        for i in v.mirrors:
            if i < len(p.mirrors):
                p.mirrors[i].packets += packets
                p.mirrors[i].bytes += nbytes
        for gid, b in v.groups:
            g = p.groups.get(gid)
            if g is not None and b < len(g.buckets):
                g.packets += packets
                g.bytes += nbytes
                g.buckets[b].packets += packets
                g.buckets[b].bytes += nbytes
        if v.patch is not None:
            left, entered = v.patch
            left.tx_packets += packets
            left.tx_bytes += nbytes
            entered.rx_packets += packets
            entered.rx_bytes += nbytes


@dataclass
class UpcallStats:
    upcalls: int = 0
    translations: int = 0
    covered: int = 0                 # misses an installed megaflow already covered (queued before it)
    installed: int = 0
    flow_limit_hits: int = 0         # forwarded, but no flow installed: the limit was reached
    put_errors: int = 0
    packet_ins: int = 0
    errors: int = 0


@dataclass
class PacketInEvent:
    pi: PacketIn
    data: bytes
    in_port: int                     # OpenFlow port, in the bridge that sent it (pi.bridge)
    key: bytes


class UpcallHandler:
    """The upcalls of one datapath, for every bridge on it (TRANSLATOR knows their pipelines)."""

    def __init__(self, dp: Datapath, pipeline: Pipeline, translator: Translator, flow_limit: int = 200000,
                 on_packet_in=None, max_batch: int = 1024):
        self.dp = dp
        self.p = pipeline
        self.xlate = translator
        self.ukeys = Ukeys(flow_limit)                 # the megaflows it installed
        self.stats = UpcallStats()
        self.on_packet_in = on_packet_in or (lambda ev: None)
        self.packet_in_hooks: dict[str, object] = {}   # bridge name -> its packet-in consumer
        self.max_batch = max_batch
        self.megaflows = True

    @property
    def flow_limit(self) -> int:
        """Megaflows installed at most; misses beyond it are forwarded, not cached."""
        return self.ukeys.limit

    @flow_limit.setter
    def flow_limit(self, n: int) -> None:
        self.ukeys.limit = n

    def _installed_covering(self, k: int) -> Ukey | None:
        """An installed megaflow that covers key K and whose translation still holds as far as
        can be told without translating again: one bridge, no MAC table in it, and no rule,
        group or port change since (its pipeline's version).  Frames queued before their
        megaflow went in come up as misses all the same; they need no translation of their own."""
        uk = self.ukeys.covering(k)
        if uk is None:
            return None
        v = uk.visits
        ok = (self.ukeys.get(uk.ufid) is uk and len(v) == 1 and not v[0].macs
              and v[0].version == v[0].pipeline.version)
        return uk if ok else None

    def clear(self) -> None:
        """Every megaflow left the datapath (a flush)."""
        self.ukeys.clear()

    def handle(self) -> int:
        """Take up to max_batch upcalls; returns how many were handled."""
        ups = []
        while len(ups) < self.max_batch:
            got = self.dp.upcalls(min(256, self.max_batch - len(ups)))
            if not got:
                break
            ups += got
        if not ups:
            return 0
        self.stats.upcalls += len(ups)
        now = self.dp.now_ns
        groups: dict[bytes, list] = defaultdict(list)
        for u in ups:
            if u.type == "action":
                self._packet_in(u)
            else:
                groups[u.key].append(u)

        puts, planned = [], []
        fresh: dict[int, dict[int, Ukey]] = {}        # this batch's megaflows: mask -> masked key -> ukey
        for key, members in groups.items():
            k = int.from_bytes(key, "big")
            covered = next((by[k & m] for m, by in fresh.items() if k & m in by), None)
            if covered is None and self.ukeys.index:
                covered = self._installed_covering(k)
                self.stats.covered += covered is not None
            if covered is not None:           # a megaflow installed (maybe by this batch) covers it
                covered.visits[0].pipeline.n_missed += len(members)
                planned.append((members, covered.actions))
                self._credit(covered.visits, members)
                continue
            t = self.xlate.translate(key)
            self.stats.translations += 1
            t.visits[0].pipeline.n_missed += len(members)
            for v in t.visits:                           # NORMAL learns from the packets it saw
                for vlan, mac, port, garp in v.learns:
                    v.pipeline.macs.learn(vlan, mac, port, now / 1e9, garp)
            actions = odp.encode(t.actions)
            if t.error or t.peer_errors:
                self.stats.errors += 1
            self._credit(t.visits, members)
            mask = t.megaflow_mask() if self.megaflows else b"\xff" * KEY_SIZE
            ufid = megaflow_ufid(key, mask)
            planned.append((members, actions))
            if t.error or ufid in self.ukeys:
                continue
            if len(self.ukeys) >= self.ukeys.limit:
                self.stats.flow_limit_hits += 1
                continue
            masked = (int.from_bytes(key, "big") & int.from_bytes(mask, "big")).to_bytes(KEY_SIZE, "big")
            uk = self.ukeys[ufid] = Ukey(ufid, masked, mask, actions, t.visits, now, key)
            fresh.setdefault(int.from_bytes(mask, "big"), {})[int.from_bytes(masked, "big")] = uk
            puts.append((ufid, masked, mask, actions))
        if puts:
            for (ufid, masked, mask, _), res in zip(puts, self.dp.flow_put_batch(puts)):
                if res is None:
                    self.stats.installed += 1
                    self.ukeys.indexed(self.ukeys[ufid])
                    continue
                del self.ukeys[ufid]
                if res[0] == errno.ENOSPC:           # the datapath's own limit
                    self.stats.flow_limit_hits += 1
                elif res[0] != errno.EEXIST:         # not the same megaflow there already
                    self.stats.put_errors += 1
        for members, actions in planned:             # the missed packets themselves
            for u in members:
                u.execute(actions)
        return len(ups)

    def _credit(self, visits: list[Visit], members) -> None:
        """The missed packets count for the rules that decided their fate, as cached ones do."""
        credit(visits, len(members), sum(len(u.data) for u in members), self.dp.now_ns / 1e9)

    def _packet_in(self, u) -> None:
        pi = self.xlate.registry.get(u.cookie)
        if pi is not None:
            self.stats.packet_ins += 1
            hook = self.packet_in_hooks.get(pi.bridge, self.on_packet_in)
            hook(PacketInEvent(pi, u.data, pi.in_port, u.key))
        u.free()
