"""The revalidator: keeps the datapath's megaflows true to the OpenFlow tables.

Each pass (every ≤ 500 ms, and on demand after a change) it dumps the datapath flows and:

* pushes their counters to the OpenFlow rules (and tables, groups, buckets) their translation
  used, so rule counters and idle timeouts see cached traffic;
* expires rules past their idle or hard timeout;
* deletes megaflows idle longer than max-idle (10 s by default; 100 ms while there are more
  flows than the flow limit, as Open vSwitch shrinks it under pressure);
* re-translates the megaflows a change may have affected — those that used a modified or
  deleted rule, that crossed a table where a new rule overlaps them, or that used a changed
  group; all of them after a port change — and then changes their actions in place, or
  deletes them when the new translation needs bits the megaflow does not match.

Contract: the control thread's loop; one pass costs a flow dump plus one translation per
affected megaflow (megaflows that share a rule's kept translation: one per rule and input
port, the rest a dict probe each), and one datapath call per distinct new action list.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from .datapath import Datapath
from .ofproto.classifier import key_int
from .ofproto.fields import BY_NAME
from .ofproto.pipeline import Pipeline
from .ofproto.xlate import Kept, Translator
from .ukey import Ukey, Ukeys

IN_PORT = BY_NAME["in_port"]
STEP_UKEYS = 64             # megaflows checked between two looks at a step's clock


class Observer(Protocol):
    """Told of what the revalidator did, on the control thread (metrics, NetFlow).  Each call
    must be cheap: it runs inside the pass."""

    def flow_deleted(self, uk: Ukey) -> None:
        """UK's megaflow left the datapath; its last counters are in uk.packets/uk.bytes."""

    def pass_done(self, rep: PassReport) -> None:
        """A pass ended; REP says what it did and how long it took."""


class Installer(Protocol):
    """What the revalidator needs of the upcall handler: the megaflows it installed."""
    ukeys: Ukeys


@dataclass
class PassReport:
    flows: int = 0
    revalidated: int = 0
    modified: int = 0
    deleted: int = 0
    idle_deleted: int = 0
    rules_expired: int = 0
    seconds: float = 0.0


@dataclass
class _Changes:
    """One pipeline's changes since the last pass."""
    rules: set
    tables: set
    groups: set
    full: bool
    macs: set

    def __bool__(self) -> bool:
        return bool(self.rules or self.tables or self.groups or self.full or self.macs)


class Revalidator:
    """Revalidates the megaflows of one datapath, for every bridge on it (the translator's
    pipelines)."""

    def __init__(self, dp: Datapath, pipeline: Pipeline, translator: Translator, handler: Installer,
                 max_idle_ms: int = 10000):
        self.dp = dp
        self.p = pipeline
        self.xlate = translator
        self.ukeys = handler.ukeys
        self.max_idle_ms = max_idle_ms
        self.last: PassReport | None = None
        self.observers: list[Observer] = []
        self._current = None                  # the sliced pass in progress (a generator), if any
        self._rep = PassReport()              # its report so far
        self._breaks = 0                      # times a sliced pass was left between two steps

    def interval(self, base: float = 0.5) -> float:
        """Seconds to the next periodic pass: BASE, or more while passes are long (many active
        flows), so that they take at most a quarter of the control thread."""
        return max(base, 4 * self.last.seconds) if self.last else base

    @staticmethod
    def _pipeline_key(uk: Ukey) -> int:
        k = bytearray(uk.key)
        port = uk.visits[0].pipeline.port_by_dp(IN_PORT.from_key(k))
        IN_PORT.to_key(k, port.ofport if port else 0xFFFFFFFF)
        return key_int(bytes(k))

    def _affected(self, uk: Ukey, changes: dict, versions: dict) -> bool:
        for i, v in enumerate(uk.visits):
            ch = changes.get(v.pipeline)
            if not ch:
                continue
            if ch.macs and any(m in ch.macs for m in v.macs):
                return True
            if v.version >= versions[v.pipeline]:
                continue                      # translated after every rule, group or port change there
            if ch.full or any(g in ch.groups for g, _ in v.groups) or any(e in ch.rules for e in v.entries) \
                    or any(e in ch.rules for e in v.clauses):      # a conjunction's clause removed or changed
                return True
            if v.limits and any((e.table_id, e.cookie) in v.limits for e in ch.rules):
                return True                   # a learn limit counted the rules of that table and cookie
            if not ch.tables or not ch.tables.intersection(v.tables):
                continue
            if i > 0:                         # behind a patch port: the key there is not uk.key
                return True
            ok, om = self._pipeline_key(uk), key_int(uk.mask)
            for e in ch.rules:                # a new rule in a table it crossed, overlapping it
                if e.table_id in v.tables and e.rule is not None and not (e.rule.key ^ ok) & e.rule.mask & om:
                    return True
        return False

    @staticmethod
    def _kept(uk: Ukey, changes: dict, versions: dict) -> Kept | None:
        """For a UK that a change to the one rule it matched affects: the kept translation
        (xlate.Kept) that is its translation now, if one is sure to be without translating.
        That is when UK crossed one table of one bridge and matched one rule there, which is
        still in it; no rule went into or out of that table since the last pass (so the
        packet's lookup finds that rule again, consulting the same bits); nothing changed that
        every translation depends on; and the rule kept a translation, from UK's input port at
        the bridge's version at the pass's beginning (VERSIONS)."""
        vs = uk.visits
        if len(vs) != 1:
            return None
        v = vs[0]
        entries = v.entries
        if len(entries) != 1:
            return None
        e = entries[0]
        k = e.kept
        p = v.pipeline
        if k is None or k.version != versions[p] or e.rule is None:
            return None
        ch = changes[p]
        if (e not in ch.rules or ch.full or len(v.tables) != 1 or v.tables[0] in ch.tables or v.groups or v.macs
                or v.learns or v.mirrors or k.dp_in_port != IN_PORT.from_key(uk.key)):
            return None
        return k

    def run(self) -> PassReport:
        """One whole pass, now (after the rest of a sliced pass in progress, which ends first:
        passes never interleave)."""
        self.finish()
        return self.step(None)

    def finish(self) -> PassReport | None:
        """The sliced pass in progress, to its end; its report (None when none was going on)."""
        return self.step(None) if self._current is not None else None

    @property
    def in_pass(self) -> bool:
        """Whether a sliced pass has begun and not ended."""
        return self._current is not None

    def step(self, budget_s: float | None) -> PassReport | None:
        """Go on with the pass in progress (or begin one) for BUDGET_S seconds at most (None:
        to its end); its report when it ended, else None and the caller steps again later.
        A step stops between megaflows (every ``STEP_UKEYS``); what happens between steps (new
        megaflows, flow-mods, a flush) is for the next pass: the pass's change records and
        table versions are those of its beginning."""
        if self._current is None:
            self._rep = PassReport()
            self._current = self._pass(self._rep)
        t0 = time.perf_counter()
        deadline = None if budget_s is None else t0 + budget_s
        rep = self._rep
        try:
            while True:
                next(self._current)
                if deadline is not None and time.perf_counter() >= deadline:
                    rep.seconds += time.perf_counter() - t0
                    self._breaks += 1
                    return None
        except StopIteration:
            pass
        self._current = None
        rep.seconds += time.perf_counter() - t0
        self.last = rep
        for o in self.observers:
            o.pass_done(rep)
        return rep

    def _pass(self, rep: PassReport):
        """A pass, as a generator that yields where it may be sliced; REP filled in."""
        now_ns = self.dp.now_ns
        now_s = now_ns / 1e9
        ukeys = self.ukeys
        rep.flows = self.dp.flow_count()
        max_idle_ns = (100 if rep.flows > ukeys.limit else self.max_idle_ms) * 1_000_000

        idle = []
        # Counters to the rules, and idle megaflows: only the flows that saw traffic since the
        # last pass, or are idle, come up from the datapath.
        for ufid, packets, nbytes, used_ns, created_ns, flags in self.dp.flow_stats_changed(
                max(0, now_ns - max_idle_ns + 1)):
            uk = ukeys.get(ufid)
            if uk is None:
                continue
            self._push(uk, packets, nbytes, used_ns, now_s, flags)
            if now_ns - (used_ns or created_ns) >= max_idle_ns:
                idle.append(uk)
        pipelines = self.xlate.pipelines
        rep.rules_expired = sum(len(p.expire(now_s)) for p in pipelines)
        for p in pipelines:
            p.macs.expire(now_s)
        self._delete(idle)
        rep.idle_deleted = len(idle)

        changes = {p: _Changes(*p.take_changes(), p.macs.take_changes()) for p in pipelines}
        if any(changes.values()):
            # The tables' versions the change records run to: a flow-mod between two steps is
            # the next pass's, and a megaflow checked here is true at these versions, not newer.
            versions = {p: p.version for p in pipelines}
            modify, delete, unaffected = [], [], []
            kepts: dict = {}                  # (id(visits), in_port bytes) -> (visits, the kept's visits, actions)
            a, b = IN_PORT.key_offset, IN_PORT.key_offset + IN_PORT.key_nbytes
            items = list(ukeys.values())
            breaks = self._breaks
            n_kept = 0
            for start in range(0, len(items), STEP_UKEYS):
                if start:
                    yield
                chunk = items[start:start + STEP_UKEYS]
                if self._breaks != breaks:    # the pass was left between two steps: some may be gone
                    chunk = [u for u in chunk if ukeys.get(u.ufid) is u]   # (a flush, dpif/del-flows)
                for uk in chunk:
                    # Megaflows that took one kept translation share its visits: a kept
                    # translation found for one is theirs from the same input port (the tuple
                    # holds the visits, so its id is not reused during the pass).  None is not
                    # remembered: translating the first may keep a translation for the rest.
                    vs = uk.visits
                    mk = (id(vs), uk.key[a:b])
                    hit = kepts.get(mk)
                    if hit is None:
                        kept = self._kept(uk, changes, versions)
                        if kept is not None:
                            hit = kepts[mk] = (vs, kept.visits, kept.encode())
                    if hit is not None:       # its rule's kept translation, no lookup needed
                        n_kept += 1
                        uk.visits = hit[1]
                        acts = hit[2]
                        if acts != uk.actions:
                            uk.actions = acts
                            modify.append(uk)
                        continue
                    if not self._affected(uk, changes, versions):
                        unaffected.append(uk)
                        continue
                    rep.revalidated += 1
                    # The packet that made it, not the masked key: a lookup on the masked key may read
                    # other bits and want a wider match for no reason.
                    t = self.xlate.translate(uk.orig_key or uk.key)
                    new_mask = key_int(t.megaflow_mask())
                    if t.error or new_mask & ~key_int(uk.mask):
                        delete.append(uk)          # it would now need bits it does not match
                        continue
                    acts = t.encoded()
                    uk.visits = t.visits
                    if acts != uk.actions:
                        uk.actions = acts
                        modify.append(uk)
            rep.revalidated += n_kept
            yield
            # Still true at the pass's versions.  Only now, at the pass's end: ukeys share visits
            # (kept translations), and one that a change affected must not pass for checked while
            # the pass goes on, over however many steps.
            for uk in unaffected:
                for v in uk.visits:
                    v.version = max(v.version, versions.get(v.pipeline, v.version))
            if modify:
                # One datapath call per distinct action list: the megaflows of one rule share theirs.
                by_actions: dict[bytes, list[int]] = {}
                for u in modify:
                    if ukeys.get(u.ufid) is u:
                        by_actions.setdefault(u.actions, []).append(u.ufid)
                failed: list[int] = []
                for acts, ufids in by_actions.items():
                    res = self.dp.flow_set_actions(ufids, acts)
                    rep.modified += len(ufids)
                    if res:
                        failed += res
                        rep.modified -= len(res)
                if failed:
                    gone = set(failed)
                    delete += [u for u in modify if u.ufid in gone]
            delete = [u for u in delete if ukeys.get(u.ufid) is u]
            self._delete(delete)
            rep.deleted = len(delete)

    def _push(self, uk: Ukey, packets: int, nbytes: int, used_ns: int, now_s: float, tcp_flags: int = 0) -> None:
        dp_, db = packets - uk.packets, nbytes - uk.bytes
        if dp_ <= 0:
            return
        uk.packets, uk.bytes, uk.used_ns = packets, nbytes, used_ns
        uk.tcp_flags |= tcp_flags
        uk.visits.push_stats(dp_, db, used_ns / 1e9 if used_ns else now_s)

    def _delete(self, ukeys: list[Ukey]) -> None:
        if not ukeys:
            return
        finals = self.dp.flow_del([u.ufid for u in ukeys])
        now_s = self.dp.now_ns / 1e9
        for u, fin in zip(ukeys, finals):
            if fin is not None:
                self._push(u, fin["packets"], fin["bytes"], fin["used_ns"], now_s, fin["tcp_flags"])
            self.ukeys.forget(u)
            for o in self.observers:
                o.flow_deleted(u)
