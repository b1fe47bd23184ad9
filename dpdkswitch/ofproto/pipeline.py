"""A bridge's OpenFlow state: ports, up to 255 tables of rules, groups and meters, and the
flow-mod, group-mod and meter-mod semantics of OpenFlow 1.3.

Every change bumps ``version`` and records what it touched (``changes``), so the revalidator
knows which cached megaflows to look at again.  Pure Python; the control thread only.  A
flow-mod costs a classifier insert or a scan of the table for loose matches.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from .actions import (ApplyActions, GotoTable, Group, LEARN_DELETE_LEARNED, Learn, Meter, Output, WriteActions,
                      OFPP_ANY, conjunctions, mixes_conjunction)
from .classifier import Classifier, Rule, key_int
from .flowstr import FlowSpec
from .match import Match
from .normal import MAX_MIRRORS, Bundle, MacTable, Mirror, VlanPort
from .liveness import Liveness
from .special import Specials

N_TABLES = 255
OFPG_ANY = 0xFFFFFFFF
OFPG_ALL = 0xFFFFFFFC
OFPM_ALL = 0xFFFFFFFF
OFPM_MAX = 0xFFFF0000                 # the last meter id a rule may use
OFPM_SLOWPATH = 0xFFFFFFFD            # the slow path's meter: misses of the bridge
OFPM_CONTROLLER = 0xFFFFFFFE          # the controllers' meter: the bridge's packet-ins
SLOW_PATH_METERS = (OFPM_SLOWPATH, OFPM_CONTROLLER)
# Limits, as Open vSwitch's: rules per table (its Flow_Table flow_limit; OpenFlow's table
# features advertise it as max_entries; past it an add is OFPFMFC_TABLE_FULL, as Open vSwitch's
# overflow_policy=refuse), and actions per rule (OFPBAC_TOO_MANY past it; the datapath runs a
# rule's list once per frame, so this bounds the work one frame costs).
DEFAULT_FLOW_LIMIT = 1_000_000
MAX_FLOW_LIMIT = (1 << 32) - 1
MAX_ACTIONS = 4096
INSTRUCTIONS_MEMO = 1024              # instruction lists whose static checks are remembered
FLAG_SEND_FLOW_REM, FLAG_CHECK_OVERLAP, FLAG_RESET_COUNTS, FLAG_NO_PKT_COUNTS, FLAG_NO_BYT_COUNTS = 1, 2, 4, 8, 16


class FlowModError(Exception):
    """A flow-mod, group-mod or meter-mod OpenFlow refuses: ``kind`` names the error."""

    def __init__(self, kind: str, msg: str):
        super().__init__(msg)
        self.kind = kind          # overlap, bad_table, bad_group, group_exists, unknown_group, ...


@dataclass(eq=False, slots=True)
class FlowEntry:
    """One rule of a table, with its counters and timeouts (slotted: a table holds many)."""
    table_id: int
    priority: int
    match: Match
    instructions: tuple
    cookie: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    flags: int = 0
    created: float = 0.0            # seconds, on the switch clock
    last_used: float = 0.0
    packets: int = 0
    bytes: int = 0
    rule: Rule | None = None
    seq: int = 0
    kept: object = None             # its kept translation (xlate.Kept), when it has one

    def count(self, packets: int, nbytes: int) -> None:
        """Traffic that hit the rule, unless its flags ask not to count it."""
        if not self.flags & FLAG_NO_PKT_COUNTS:
            self.packets += packets
        if not self.flags & FLAG_NO_BYT_COUNTS:
            self.bytes += nbytes

    def credit(self, packets: int, nbytes: int, used: float) -> None:
        """Traffic that hit the rule (``count``), the last of it at USED (seconds): idle timeouts see it."""
        self.count(packets, nbytes)
        if used > self.last_used:
            self.last_used = used

    def outputs_to(self, port: int) -> bool:
        return any(isinstance(a, Output) and a.port == port for i in self.instructions
                   if isinstance(i, (ApplyActions, WriteActions)) for a in i.actions)

    def uses_group(self, gid: int) -> bool:
        return any(isinstance(a, Group) and a.group_id == gid for i in self.instructions
                   if isinstance(i, (ApplyActions, WriteActions)) for a in i.actions)

    def uses_meter(self, meter_id: int) -> bool:
        return any(isinstance(i, Meter) and i.meter_id == meter_id for i in self.instructions)

    def spec(self) -> FlowSpec:
        return FlowSpec(match=self.match, instructions=self.instructions, table_id=self.table_id,
                        priority=self.priority, cookie=self.cookie, idle_timeout=self.idle_timeout,
                        hard_timeout=self.hard_timeout, flags=self.flags)


@dataclass
class Table:
    table_id: int
    cls: Classifier = field(default_factory=Classifier)
    lookups: int = 0
    matches: int = 0
    flow_limit: int = DEFAULT_FLOW_LIMIT        # rules at most (see DEFAULT_FLOW_LIMIT)

    def entries(self):
        for r in self.cls.rules():
            yield r.data

    def count(self, lookups: int, matches: int = 0) -> None:
        """Packets looked up in the table, and those of them a rule matched."""
        self.lookups += lookups
        self.matches += matches


@dataclass
class Bucket:
    actions: tuple
    weight: int = 1
    watch_port: int = OFPP_ANY
    watch_group: int = OFPG_ANY
    packets: int = 0
    bytes: int = 0


@dataclass
class GroupEntry:
    group_id: int
    type: str                       # all, select, indirect, ff
    buckets: list[Bucket]
    packets: int = 0
    bytes: int = 0

    def credit(self, bucket: int, packets: int, nbytes: int) -> None:
        """Traffic that went through the group's BUCKET (an index: a bucket it no longer has
        after a modify counts for nothing)."""
        if bucket < len(self.buckets):
            b = self.buckets[bucket]
            self.packets += packets
            self.bytes += nbytes
            b.packets += packets
            b.bytes += nbytes


@dataclass
class MeterEntry:
    meter_id: int
    pktps: bool
    bands: list[tuple[int, int]]    # (rate, burst)

    def lowest_band(self) -> tuple[int, int]:
        """(rate, burst) of the band that drops first: the lowest rate's (the first of equals),
        the one the datapath's token bucket runs."""
        return min(self.bands, key=lambda b: b[0])


class TokenBucket:
    """A token bucket on the caller's clock (nanoseconds: the datapath's, manual in tests; it
    never reads a clock itself).  RATE tokens a second, at most CAPACITY held; it starts full.
    Tokens are counted in thousandths, as the datapath's meters count them (a token is a
    packet, or a kilobit: a byte is 8 thousandths)."""

    __slots__ = ("rate", "capacity_milli", "milli", "last_ns")

    def __init__(self, rate: int, capacity: int):
        self.rate = rate
        self.capacity_milli = capacity * 1000
        self.milli = self.capacity_milli
        self.last_ns = 0                    # full already: the first refill changes nothing

    def refill(self, now_ns: int) -> None:
        if now_ns > self.last_ns:
            self.milli = min(self.capacity_milli, self.milli + (now_ns - self.last_ns) * self.rate // 1_000_000)
            self.last_ns = now_ns

    def take(self, milli: int, now_ns: int) -> bool:
        """Take MILLI thousandths of a token if there are that many."""
        self.refill(now_ns)
        if self.milli >= milli:
            self.milli -= milli
            return True
        return False


class SlowPathMeter:
    """A meter the slow path runs (OFPM_CONTROLLER, OFPM_SLOWPATH), as Open vSwitch's userspace
    datapath runs meters: one bucket per drop band, holding its burst plus one second of its
    rate and starting full; a packet one band cannot pay for is dropped, counted on the band
    of the highest rate it exceeded.  Rates in packets/s or kb/s (tokens are bits then)."""

    def __init__(self, entry: MeterEntry):
        self.entry = entry
        self.buckets = [TokenBucket(rate, rate + burst) for rate, burst in entry.bands]
        self.packets = self.bytes = 0
        self.band_packets = [0] * len(entry.bands)
        self.band_bytes = [0] * len(entry.bands)

    def admit(self, nbytes: int, now_ns: int) -> bool:
        """Whether a packet of NBYTES passes at NOW_NS; counted either way."""
        self.packets += 1
        self.bytes += nbytes
        cost = 1000 if self.entry.pktps else nbytes * 8          # thousandths of a packet or a kilobit
        exceeded = -1
        for i, b in enumerate(self.buckets):
            if not b.take(cost, now_ns) and (exceeded < 0 or b.rate > self.buckets[exceeded].rate):
                exceeded = i
        if exceeded < 0:
            return True
        self.band_packets[exceeded] += 1
        self.band_bytes[exceeded] += nbytes
        return False


@dataclass
class PortEntry:
    ofport: int
    name: str
    dp_port: int                    # -1 for a patch port: it has none
    live: bool = True
    no_flood: bool = False
    no_fwd: bool = False
    vlan: VlanPort = field(default_factory=VlanPort)
    patch: tuple["Pipeline", int] | None = None   # a linked patch port: the peer's pipeline and port
    rx_packets: int = 0             # a patch port's counters (a datapath port's are the datapath's)
    rx_bytes: int = 0
    tx_packets: int = 0
    tx_bytes: int = 0

    def count_rx(self, packets: int, nbytes: int) -> None:
        """Traffic that entered the bridge by this (patch) port."""
        self.rx_packets += packets
        self.rx_bytes += nbytes

    def count_tx(self, packets: int, nbytes: int) -> None:
        """Traffic that left the bridge by this (patch) port."""
        self.tx_packets += packets
        self.tx_bytes += nbytes


@dataclass
class Removed:
    """A rule that left by timeout or delete, for flow-removed messages."""
    entry: FlowEntry
    reason: str                     # idle_timeout, hard_timeout, delete, group_delete


class Pipeline:
    def __init__(self, clock=lambda: 0.0, name: str = ""):
        self.name = name                              # the bridge's
        self.tables = [Table(i) for i in range(N_TABLES)]
        self.groups: dict[int, GroupEntry] = {}
        self.meters: dict[int, MeterEntry] = {}
        self.slow_meters: dict[int, SlowPathMeter] = {}   # OFPM_CONTROLLER, OFPM_SLOWPATH when set
        self.ports: dict[int, PortEntry] = {}        # set_port and del_port change it
        self._by_dp: dict[int, PortEntry] | None = None   # datapath port -> its entry (port_by_dp)
        self.version = 0
        self.clock = clock
        self._seq = itertools.count(1)
        self._instructions_memo: dict[int, tuple] = {}   # _instructions_ok's
        self.changed_rules: set[FlowEntry] = set()   # since the revalidator last looked
        self.changed_tables: set[int] = set()
        self.changed_groups: set[int] = set()
        self.full_revalidation = False
        self.removed: list[Removed] = []
        self.timed: set[FlowEntry] = set()            # rules with an idle or hard timeout
        self.macs = MacTable()                        # NORMAL's MAC learning table
        self.mirrors: list[Mirror] = []
        self.flood_vlans: set[int] = set()
        self.forward_bpdu = False
        self.special = Specials()                     # control protocols before the tables (special.py)
        self.liveness = Liveness(self)                # each port's may_enable (liveness.py)
        self.bonds: dict[int, Bundle] = {}            # member ofport -> its bond (bond.py), for NORMAL
        self.miss_to_controller = False               # table misses: packet-ins (an OpenFlow 1.0 controller)
        # Megaflows of IPv4 packets entering here match addresses, protocol, ToS and ports
        # exactly, one per flow as NetFlow counts them (Open vSwitch's netflow_mask_wc).
        self.split_ipv4_flows = False
        # sFlow: the probability (1/sampling) that a packet entering here is sampled; 0: off.
        self.sflow_probability = 0.0
        # IPFIX: bridge-level sampling's probability (0: off), and whether sample actions
        # send their frames up (the bridge has IPFIX configured).
        self.ipfix_probability = 0.0
        self.ipfix_flow_samples = False
        # Lookups, as Open vSwitch's dpif/show counts them on the input bridge (not a bridge
        # reached through a patch port): packets its megaflows took in the datapath (as the
        # revalidator pushes their counters), and packets that missed into the slow path.
        self.n_hit = 0
        self.n_missed = 0

    def count_lookups(self, hit: int = 0, missed: int = 0) -> None:
        """Packets that came in on this bridge: HIT a megaflow in the datapath, or MISSED into the slow path."""
        self.n_hit += hit
        self.n_missed += missed

    # -- bookkeeping for the revalidator
    def _touch(self, entry: FlowEntry | None = None, table: int | None = None) -> None:
        """A change to ENTRY; TABLE: a rule went into or out of that table, so its lookups may
        find other rules (or consult other bits)."""
        self.version += 1
        if entry is not None:
            self.changed_rules.add(entry)
        if table is not None:
            self.changed_tables.add(table)

    def take_removed(self) -> list[Removed]:
        """The rules that left (with flow-removed asked for) since the last call, oldest first."""
        out = list(self.removed)
        self.removed.clear()
        return out

    def take_changes(self):
        out = (self.changed_rules, self.changed_tables, self.changed_groups, self.full_revalidation)
        self.changed_rules, self.changed_tables, self.changed_groups = set(), set(), set()
        self.full_revalidation = False
        return out

    # -- ports
    def port_by_dp(self, dp_port: int) -> PortEntry | None:
        by = self._by_dp
        if by is None:
            by = self._by_dp = {}
            for p in self.ports.values():
                by.setdefault(p.dp_port, p)
        return by.get(dp_port)

    def set_port(self, port: PortEntry) -> None:
        self._by_dp = None
        self.ports[port.ofport] = port
        self.version += 1
        self.full_revalidation = True

    def set_bond(self, bond: Bundle, members: list[int]) -> None:
        """BOND (its MEMBERS' OpenFlow ports) is one port for NORMAL from now on."""
        for o in members:
            self.bonds[o] = bond
        self.ports_changed()

    def del_bond_member(self, ofport: int) -> None:
        self.bonds.pop(ofport, None)
        self.ports_changed()

    def ports_changed(self) -> None:
        """Something translation reads about ports changed (a spanning tree port state, a
        control protocol registered): every cached translation is looked at again."""
        self.version += 1
        self.full_revalidation = True

    def del_port(self, ofport: int) -> None:
        self._by_dp = None
        self.ports.pop(ofport, None)
        self.liveness.forget(ofport)
        self.macs.flush(ofport)
        self.version += 1
        self.full_revalidation = True

    # -- table misses
    def set_miss_to_controller(self, on: bool) -> bool:
        """Table misses become packet-ins (ON: an OpenFlow 1.0 controller is connected) or
        drops; every cached translation is looked at again.  Whether it changed anything."""
        if self.miss_to_controller == on:
            return False
        self.miss_to_controller = on
        self.full_revalidation = True           # cached misses: drops become packet-ins, or back
        self.version += 1
        return True

    # -- flow-mod
    def set_flow_limit(self, table_id: int, limit: int) -> None:
        """Table TABLE_ID takes at most LIMIT rules (0..MAX_FLOW_LIMIT); rules it holds beyond
        that stay (as Open vSwitch's: a lower limit refuses adds, it evicts nothing)."""
        if not 0 <= limit <= MAX_FLOW_LIMIT:
            raise ValueError(f"flow_limit {limit}: expected 0..{MAX_FLOW_LIMIT}")
        self.tables[table_id].flow_limit = limit

    def _check(self, match: Match, instructions: tuple, tid: int) -> tuple:
        """FlowModError (MatchError) unless MATCH and INSTRUCTIONS may go into table TID; the
        instructions' conjunctions (classifier.Rule.conj)."""
        match.check_prereqs()
        refs, error, conj = self._instructions_ok(instructions, tid)
        for kind, n in refs:
            if kind == "group" and n not in self.groups:
                raise FlowModError("unknown_group", f"group {n} does not exist")
            if kind == "meter" and n not in self.meters:
                raise FlowModError("unknown_meter", f"meter {n} does not exist")
        if error is not None:
            raise FlowModError(*error)
        return conj

    def _instructions_ok(self, instructions: tuple, table_id: int) -> tuple[tuple, tuple | None, tuple]:
        """What INSTRUCTIONS in table TABLE_ID need checked: (the groups and meters they name,
        as ("group" or "meter", id) in the order a check meets them, up to the first error
        that needs nothing of the tables' state; that error, (kind, message), or None; their
        conjunctions).  Errors found before any group or meter are raised (FlowModError).
        Remembered per instructions object (flow-mods of one shape share theirs:
        ofswitch/flowshapes.py), for INSTRUCTIONS_MEMO of them at most."""
        memo = self._instructions_memo.get(id(instructions))
        if memo is not None and memo[0] is instructions and memo[1] == table_id:
            return memo[2]
        n = sum(len(ins.actions) for ins in instructions if isinstance(ins, (ApplyActions, WriteActions)))
        if n > MAX_ACTIONS:
            raise FlowModError("too_many_actions", f"{n} actions in one rule: at most {MAX_ACTIONS}")
        if mixes_conjunction(instructions):
            raise FlowModError("bad_conjunction", "conjunction actions may be used with note but no other action")
        refs: list[tuple[str, int]] = []
        error = None
        for ins in instructions:
            if isinstance(ins, GotoTable) and ins.table_id <= table_id:
                error = "bad_table", f"goto_table:{ins.table_id} must go forward from table {table_id}"
                break
            if isinstance(ins, GotoTable) and ins.table_id >= N_TABLES:
                error = "bad_table", f"no table {ins.table_id}"
                break
            if isinstance(ins, (ApplyActions, WriteActions)):
                refs += [("group", a.group_id) for a in ins.actions if isinstance(a, Group)]
            if isinstance(ins, Meter):
                refs.append(("meter", ins.meter_id))
        out = tuple(refs), error, conjunctions(instructions)
        if len(self._instructions_memo) >= INSTRUCTIONS_MEMO:
            self._instructions_memo.clear()
        self._instructions_memo[id(instructions)] = (instructions, table_id, out)   # (holds it: the id stays its)
        return out

    def add(self, spec: FlowSpec, now: float | None = None) -> FlowEntry:
        """SPEC's rule into its table (FlowModError, MatchError if refused); an identical rule
        (same match and priority) is replaced, its counters kept unless reset_counts.  NOW: the
        switch clock's time to take as the rule's creation (a caller adding a run of rules reads
        the clock once); None: read it."""
        return self.add_rule(spec.table_id or 0, spec.match, spec.priority, spec.instructions, spec.cookie,
                             spec.idle_timeout, spec.hard_timeout, spec.flags, now)

    def add_rule(self, tid: int, match: Match, priority: int, instructions: tuple, cookie: int = 0,
                 idle_timeout: int = 0, hard_timeout: int = 0, flags: int = 0,
                 now: float | None = None) -> FlowEntry:
        """``add`` of a FlowSpec with these values (its table_id TID, an int), for a caller
        that has them apart (a compiled flow-mod shape's)."""
        if tid >= N_TABLES:
            raise FlowModError("bad_table", f"no table {tid}")
        conj = self._check(match, instructions, tid)
        table = self.tables[tid]
        cls = table.cls
        rule = Rule.of(priority, match, None, conj)
        old = cls.find_same(rule)
        if old is None and cls.n_rules >= table.flow_limit:
            raise FlowModError("table_full", f"table {tid} is full: {table.flow_limit} rules (its flow_limit)")
        if flags & FLAG_CHECK_OVERLAP:
            for r in cls.rules():
                if r is not old and r.priority == priority and r.match.overlaps(match):
                    raise FlowModError("overlap", "the new rule overlaps an existing rule of the same priority")
        if now is None:
            now = self.clock()
        e = FlowEntry(tid, priority, match, instructions, cookie, idle_timeout, hard_timeout, flags, now, now, 0, 0,
                      rule, next(self._seq))
        rule.data = e
        if old is not None:                       # an identical rule is replaced; counters kept
            oe: FlowEntry = old.data
            if not flags & FLAG_RESET_COUNTS:
                e.packets, e.bytes = oe.packets, oe.bytes
            cls.remove(old)
            oe.rule = None
            self.timed.discard(oe)
            self._touch(oe, tid)
        cls.insert(rule)
        if idle_timeout or hard_timeout:
            self.timed.add(e)
        self._touch(e, tid)
        if old is not None:
            self._delete_learned(oe.instructions)
        return e

    def learn(self, spec: FlowSpec, limit: int = 0) -> FlowEntry | None:
        """A flow the learn action adds (translation's side effect, replayed by xlate.Visit): an
        identical rule already there (same match, priority, actions) is only refreshed, as Open
        vSwitch's learn does, so that the tables, and the megaflows, stay as they are.  LIMIT
        (learn's limit=): a new flow only while fewer than LIMIT rules of its table have its
        cookie (None when it is not added)."""
        if not self.learn_fits(spec, limit):
            return None
        tid = spec.table_id or 0
        old = self.tables[tid].cls.find_exactly(spec.match, spec.priority) if tid < N_TABLES else None
        if old is not None:
            e: FlowEntry = old.data
            if self._same_learned(e, spec):
                e.last_used = max(e.last_used, self.clock())
                return e
        return self.add(spec)

    @staticmethod
    def _same_learned(e: FlowEntry, spec: FlowSpec) -> bool:
        return (e.instructions, e.cookie, e.idle_timeout, e.hard_timeout) == (
            spec.instructions, spec.cookie, spec.idle_timeout, spec.hard_timeout)

    def learn_fits(self, spec: FlowSpec, limit: int) -> bool:
        """Would ``learn(SPEC, LIMIT)`` have SPEC's flow in the table, as Open vSwitch's
        ofproto_flow_mod_learn decides: yes when the identical flow is there already, or there is
        no limit, or fewer than LIMIT rules of SPEC's table have SPEC's cookie.  Cost: a walk of
        that table's rules when there is a limit."""
        tid = spec.table_id or 0
        if not limit or tid >= N_TABLES:
            return True
        old = self.tables[tid].cls.find_exactly(spec.match, spec.priority)
        if old is not None and self._same_learned(old.data, spec):
            return True
        n = 0
        for e in self.tables[tid].entries():
            n += e.cookie == spec.cookie
            if n >= limit:
                return False
        return True

    def select(self, spec: FlowSpec, strict: bool, tables=None):
        """The rules SPEC selects, as a flow-mod's modify or delete (or a flow stats request)
        would: in its table (every table when ``table_id`` is None or 0xFF; or those TABLES
        name), the rule with exactly its match and priority when STRICT, else every rule whose
        match is within SPEC's; then only those with its cookie under ``cookie_mask``, and
        that output to ``out_port`` or use ``out_group`` when given.  A generator: take what
        it yields before changing the tables."""
        tids = [spec.table_id] if spec.table_id not in (None, 0xFF) else range(N_TABLES)
        for tid in tids if tables is None else tables:
            t = self.tables[tid]
            if not t.cls.n_rules:
                continue
            if strict:
                r = t.cls.find_exactly(spec.match, spec.priority)
                cands = [r.data] if r else []
            else:
                cands = [r.data for r in t.cls.rules() if r.match.is_subset_of(spec.match)]
            for e in cands:
                if spec.cookie_mask and (e.cookie ^ spec.cookie) & spec.cookie_mask:
                    continue
                if spec.out_port not in (None, OFPP_ANY) and not e.outputs_to(spec.out_port):
                    continue
                if spec.out_group not in (None, OFPG_ANY) and not e.uses_group(spec.out_group):
                    continue
                yield e

    def modify(self, spec: FlowSpec, strict: bool = False) -> list[FlowEntry]:
        self._check(spec.match, spec.instructions, spec.table_id or 0)
        out = list(self.select(spec, strict))
        for e in out:
            old, e.instructions = e.instructions, spec.instructions
            if spec.flags & FLAG_RESET_COUNTS:
                e.packets = e.bytes = 0
            self._touch(e)              # no table: its match stays, so no lookup changes
            self._delete_learned(old)
        return out

    def delete(self, spec: FlowSpec, strict: bool = False, reason: str = "delete") -> list[FlowEntry]:
        out = list(self.select(spec, strict))
        for e in out:
            self._remove(e, reason)
        return out          # (some may have gone with a learning rule before their turn: see _remove)

    def _remove(self, e: FlowEntry, reason: str) -> None:
        if e.rule is None:            # already gone (its learning rule's delete_learned took it)
            return
        self.tables[e.table_id].cls.remove(e.rule)
        e.rule = None                 # no entry<->rule cycle: refcounting frees them (see app.py's gc)
        self.timed.discard(e)
        self._touch(e, e.table_id)
        if e.flags & FLAG_SEND_FLOW_REM:
            self.removed.append(Removed(e, reason))
        self._delete_learned(e.instructions)

    def _delete_learned(self, gone) -> None:
        """Instructions GONE left the tables (their rule removed, or modified to others): for
        each learn with delete_learned among them, the flows it learned go too, as Open
        vSwitch's learned cookies: every flow of the learn's table with its cookie, once no
        rule left has a delete_learned learn into that table with that cookie."""
        pairs = _learned_cookies(gone)
        if not pairs:
            return
        for e in self.entries():
            pairs -= _learned_cookies(e.instructions)
            if not pairs:
                return
        for table_id, cookie in sorted(pairs):
            if table_id < N_TABLES:
                self.delete(FlowSpec(table_id=table_id, cookie=cookie, cookie_mask=(1 << 64) - 1))

    def reduce_timeouts(self, e: FlowEntry, idle: int, hard: int) -> None:
        """fin_timeout's effect (a FIN or RST through E): E's idle and hard timeouts become at
        most IDLE and HARD (0: unchanged), as Open vSwitch's ofproto_rule_reduce_timeouts."""
        if e.rule is None or not (idle or hard):
            return
        if idle and (not e.idle_timeout or idle < e.idle_timeout):
            e.idle_timeout = idle
        if hard and (not e.hard_timeout or hard < e.hard_timeout):
            e.hard_timeout = hard
        self.timed.add(e)

    def lookup(self, table_id: int, key: bytes, metadata: int = 0) -> FlowEntry | None:
        """The rule of table TABLE_ID that a packet with flow key KEY (in_port an OpenFlow port)
        and METADATA hits; nothing counted, no wildcards tracked (translation does that)."""
        r = self.tables[table_id].cls.lookup(key_int(key), metadata)
        return r.data if r is not None else None

    def set_clock(self, clock) -> None:
        """CLOCK (seconds) from now on.  The rules already in (a pipeline built before its
        datapath, whose clock it takes) count as created and used now on it."""
        self.clock = clock
        now = clock()
        for e in self.entries():
            e.created = e.last_used = now

    def entries(self, table_id: int | None = None):
        for t in self.tables if table_id is None else [self.tables[table_id]]:
            yield from t.entries()

    def expire(self, now: float) -> list[FlowEntry]:
        """Rules past their idle or hard timeout leave."""
        gone = []
        for e in list(self.timed):
            if e.rule is None:        # gone with its learning rule meanwhile
                continue
            if e.hard_timeout and now - e.created >= e.hard_timeout:
                self._remove(e, "hard_timeout")
                gone.append(e)
            elif e.idle_timeout and now - e.last_used >= e.idle_timeout:
                self._remove(e, "idle_timeout")
                gone.append(e)
        return gone

    # -- mirrors
    def mirror_outputs(self) -> set[int]:
        return {m.out_port for m in self.mirrors if m.out_port is not None}

    def set_mirror(self, mirror: Mirror) -> None:
        others = [m for m in self.mirrors if m.name != mirror.name]
        if len(others) >= MAX_MIRRORS:
            raise FlowModError("too_many_mirrors", f"at most {MAX_MIRRORS} mirrors")
        if (mirror.out_port is None) == (mirror.out_vlan is None):
            raise FlowModError("bad_mirror", f"mirror {mirror.name}: one output, a port or a VLAN")
        self.mirrors = others + [mirror]
        self.macs.flush()
        self.version += 1
        self.full_revalidation = True

    def del_mirror(self, name: str) -> bool:
        """Mirror NAME stops copying; whether there was one."""
        others = [m for m in self.mirrors if m.name != name]
        if len(others) == len(self.mirrors):
            return False
        self.mirrors = others
        self.macs.flush()
        self.version += 1
        self.full_revalidation = True
        return True

    def invalidate(self) -> None:
        """A setting NORMAL translates with changed (flood_vlans, forward_bpdu): every cached
        translation is looked at again."""
        self.version += 1
        self.full_revalidation = True

    # -- groups and meters
    def group_mod(self, command: str, group: GroupEntry) -> None:
        gid = group.group_id
        if command == "add":
            if gid in self.groups:
                raise FlowModError("group_exists", f"group {gid} exists")
            self.groups[gid] = group
        elif command == "modify":
            if gid not in self.groups:
                raise FlowModError("unknown_group", f"group {gid} does not exist")
            self.groups[gid] = group
        elif command == "delete":
            gids = list(self.groups) if gid == OFPG_ALL else [gid]
            for g in gids:
                if self.groups.pop(g, None) is not None:
                    for e in [e for e in self.entries() if e.uses_group(g)]:
                        self._remove(e, "group_delete")
        self.changed_groups.add(gid)
        self.version += 1
        if gid == OFPG_ALL:
            self.full_revalidation = True

    def check_meter_mod(self, command: str, meter: MeterEntry) -> None:
        """FlowModError if the meter table refuses COMMAND (add, modify, delete) for METER."""
        mid = meter.meter_id
        if command == "add" and mid in self.meters:
            raise FlowModError("meter_exists", f"meter {mid} exists")
        if command == "modify" and mid not in self.meters:
            raise FlowModError("unknown_meter", f"meter {mid} does not exist")

    def meter_mod(self, command: str, meter: MeterEntry) -> list[int]:
        """OpenFlow meter-mod on the meter table: add or modify METER, or delete it (meter id
        OFPM_ALL: every meter; one that is not there is no error), the rules that use a deleted
        meter with it (flow-removed reason "delete").  The ids of the meters changed.  The
        table only: the bridge that owns the datapath keeps its meters in step (switch.py's
        Bridge.meter_mod).  FlowModError (``check_meter_mod``), and nothing changed, if refused."""
        self.check_meter_mod(command, meter)
        mid = meter.meter_id
        if command == "delete":
            gone = []
            for m in list(self.meters) if mid == OFPM_ALL else [mid]:
                if self.meters.pop(m, None) is None:
                    continue
                gone.append(m)
                self.slow_meters.pop(m, None)
                for e in [e for e in self.entries() if e.uses_meter(m)]:
                    self._remove(e, "delete")
            return gone
        self.meters[mid] = meter
        if mid in SLOW_PATH_METERS:
            self.slow_meters[mid] = SlowPathMeter(meter)
        self.version += 1
        return [mid]

    def meter_admit(self, meter_id: int, nbytes: int, now_ns: int) -> bool:
        """Whether the slow-path meter METER_ID (OFPM_CONTROLLER, OFPM_SLOWPATH) lets a packet of
        NBYTES through at NOW_NS (the datapath's clock); True when that meter is not set."""
        m = self.slow_meters.get(meter_id)
        return m is None or m.admit(nbytes, now_ns)


def _learned_cookies(instructions) -> set[tuple[int, int]]:
    """(table, cookie) of each learn action with delete_learned in INSTRUCTIONS."""
    return {(a.table, a.cookie) for ins in instructions if isinstance(ins, (ApplyActions, WriteActions))
            for a in ins.actions if isinstance(a, Learn) and a.flags & LEARN_DELETE_LEARNED}
