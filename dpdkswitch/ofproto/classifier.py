"""The OpenFlow classifier of one table: tuple space search with wildcard tracking.

Rules are grouped by mask into subtables; subtables are visited in order of their highest
priority, so a lookup stops as soon as no later subtable can beat the best rule found.  Every
lookup records in ``Wildcards`` exactly which key bits it consulted, so that translation can
install the narrowest megaflow that is still correct:

* **staged lookup** (as Open vSwitch): a subtable is probed stage by stage (metadata, L2, L3,
  L4); a miss at a stage consults only the bits of the stages so far, so a rule on tp_dst does
  not make megaflows of non-matching traffic match L4 (or even L3) fields;
* **prefix tracking** on IPv4/IPv6 source and destination: before probing a subtable that
  matches an address prefix of length p, the set of all rule prefixes of length p says whether
  any can match; if none can, the subtable is skipped and only the leading address bits needed
  to tell the packet apart from every such prefix are consulted.  A trie holds only the rules of
  its eth_type (IPv4 for ipv4_*, IPv6 for ipv6_*): the fields share key bits, but as in Open
  vSwitch an IPv4 rule's prefix never narrows an IPv6 packet's megaflow, nor the reverse;
* **ports tracking** (Open vSwitch's ports trie): when a subtable's last stage adds only L4 port
  bits and its probe fails, only the leading bits of (tp_src, tp_dst) that tell the packet apart
  from every rule's ports are consulted, not all 32 — a rule on tp_dst=2048 costs megaflows a
  few port bits, not one megaflow per port.

Keys are big-endian ints of the datapath flow key's bytes (``fields.KEY_SIZE``), with in_port
holding the OpenFlow port; ``meta`` is the pipeline vector (metadata, pkt_mark, registers:
fields.PIPELINE_BITS), tracked separately (it never reaches the datapath); a subtable indexes
both as one int, ``meta << KEY_BITS | key``.

Called from the control thread.  A lookup costs one dict probe per stage per subtable visited.
An insert files the rule under its key; its subtable's stage sets and the prefix and ports
tries count it with the next INDEX_BATCH - 1 rules inserted there, in bulk (a few C-level passes
rather than a few dict updates per rule each in Python: a controller's run of flow-mods), or at
the next lookup, removal or ``flush``, whichever comes first.
"""
from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import rshift

from ..flowkey import KEY_SIZE
from .fields import BY_NAME, CONJ_ID_SHIFT, Field, stage_masks
from .match import Match

STAGES = stage_masks()
CUMULATIVE = [sum(STAGES[:i + 1]) for i in range(len(STAGES))]
KEY_BITS = 8 * KEY_SIZE
TRIE_FIELDS = [BY_NAME[n] for n in ("ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst")]
_TP_DST = BY_NAME["tcp_dst"]
PORTS_SHIFT = _TP_DST.key_bit_shift              # (tp_src, tp_dst): 32 contiguous key bits
PORTS_BITS = 0xFFFFFFFF << PORTS_SHIFT
assert BY_NAME["tcp_src"].key_bit_shift == PORTS_SHIFT + 16
_ETH_TYPE = BY_NAME["eth_type"]
CONJ_ID_MASK = 0xFFFFFFFF << CONJ_ID_SHIFT
TRIE_ETH = {"ipv4_src": 0x0800, "ipv4_dst": 0x0800, "ipv6_src": 0x86DD, "ipv6_dst": 0x86DD}
# Rules inserted into a subtable are indexed (stage sets, prefix and ports tries) INDEX_BATCH at
# a time, in bulk, as they go in; the rest by the next lookup: up to INDEX_ONE_BY_ONE of them one
# by one, more in bulk (see Classifier.flush).
INDEX_BATCH = 64
INDEX_ONE_BY_ONE = 8


@dataclass(slots=True)
class Wildcards:
    """Bits a translation consulted: ``key`` over the flow key, ``meta`` over the pipeline vector."""
    key: int = 0
    meta: int = 0

    def unwildcard(self, f: Field, mask: int | None = None) -> None:
        if mask is None or f.byteorder == "big":
            self.key |= ((f.all_ones if mask is None else mask) & f.all_ones) << f.key_bit_shift
        else:                          # a host-order member (dp_hash): its low byte comes first
            self.key |= f.key_ints(0, mask & f.all_ones)[1]


def key_int(key: bytes) -> int:
    return int.from_bytes(key, "big")


def combined_key(key: int, meta: int) -> int:
    """KEY and the pipeline vector META as one int, what a subtable indexes: ``meta << KEY_BITS | key``."""
    return meta << KEY_BITS | key if meta else key


def field_of(f: Field, key: int) -> int:
    return (key >> f.key_bit_shift) & f.all_ones


class PrefixSet:
    """Every rule's prefix on one address field, by length, with counts (several rules may
    share one).  ``bits_to_rule_out`` answers the prefix-tracking question."""

    def __init__(self, f: Field | None, bits: int = 0):
        self.f = f
        self.bits = f.bits if f is not None else bits
        self.eth_type = TRIE_ETH[f.name] if f is not None else -1   # the only rules it holds
        self.count: dict[int, Counter[int]] = {}
        self._sorted: dict[int, list[int]] = {}

    def add(self, plen: int, prefix: int) -> None:
        c = self.count.get(plen)
        if c is None:
            c = self.count[plen] = Counter()
        c[prefix] = c.get(prefix, 0) + 1
        if self._sorted:
            self._sorted.pop(plen, None)

    def add_all(self, plen: int, prefixes) -> None:
        """``add(PLEN, p)`` for each p of the iterable PREFIXES (counted in bulk)."""
        c = self.count.get(plen)
        if c is None:
            c = self.count[plen] = Counter()
        c.update(prefixes)
        if self._sorted:
            self._sorted.pop(plen, None)

    def remove(self, plen: int, prefix: int) -> None:
        c = self.count[plen]
        c[prefix] -= 1
        if not c[prefix]:
            del c[prefix]
        if not c:
            del self.count[plen]
        self._sorted.pop(plen, None)

    def bits_to_rule_out(self, addr: int, plen: int) -> int:
        """0 if some prefix of length PLEN matches ADDR; else how many leading bits of ADDR prove
        that none does (any address sharing them also matches none)."""
        c = self.count.get(plen)
        if not c:
            return 1 if plen else 0
        p = addr >> (self.bits - plen)
        if p in c:
            return 0
        vals = self._sorted.get(plen)
        if vals is None:
            vals = self._sorted[plen] = sorted(c)
        i = bisect.bisect_left(vals, p)
        lcp = 0
        for x in vals[max(0, i - 1):i + 1]:      # the longest common prefix is with a neighbour
            lcp = max(lcp, plen - (x ^ p).bit_length())
        return min(plen, lcp + 1)


def _prefix_len(f: Field, mask: int) -> int | None:
    """The prefix length if MASK (of field F) is a CIDR mask, else None."""
    m = mask & f.all_ones
    inv = ~m & f.all_ones
    if inv & (inv + 1):
        return None
    return f.bits - inv.bit_length()


@dataclass(eq=False, slots=True)
class Rule:
    """One OpenFlow rule as the classifier sees it; the table keeps the rest on it (slotted:
    a table holds many)."""
    priority: int
    match: Match
    key: int = 0
    mask: int = 0
    meta: int = 0
    meta_mask: int = 0
    data: object = None          # the table's own record (instructions, counters, timeouts)
    conj: tuple = ()             # a soft match: its conjunctions, (id, clause 1.., n_clauses)
    ck: int = 0                  # key and meta as one int: meta << KEY_BITS | key (its subtable's index)

    @classmethod
    def of(cls, priority: int, match: Match, data: object = None, conj: tuple = ()) -> "Rule":
        k, m = match.key_and_mask_ints()
        meta, meta_mask = match.pipeline_ints()
        return cls(priority, match, k, m, meta, meta_mask, data, conj, combined_key(k, meta))


@dataclass(eq=False)
class Subtable:
    """The rules of one (mask, meta_mask).  A packet's key and pipeline vector are one int
    here, ``combined_key`` (``Rule.ck``), under ``cmask``: ``rules`` maps it to the rules
    (highest priority first).  A stage's set counts the rules' combined keys under that stage's
    combined mask (``stages``: each stage's key mask, combined mask and set).  Rules inserted
    since the last lookup wait in ``pending`` to be counted in the sets and tries
    (``Classifier.flush``)."""
    mask: int
    meta_mask: int
    stage_masks: list[int]
    stage_sets: list[Counter] = field(default_factory=list)
    cmask: int = 0                   # meta_mask << KEY_BITS | mask
    rules: dict[int, list[Rule]] = field(default_factory=dict)
    prefixes: list[tuple[PrefixSet, int]] = field(default_factory=list)
    # Per entry of ``prefixes``: how many of the rules here are of its trie's eth_type (only
    # those enter the trie: ipv4_src shares its key bits with ipv6_src's leading ones, and an
    # IPv4 rule says nothing of IPv6 packets, which its eth_type already rules out).
    prefix_rules: list[int] = field(default_factory=list)
    ports: PrefixSet | None = None   # the rules' (tp_src, tp_dst) under ports_mask: see lookup
    ports_mask: int = 0              # 32 bits
    max_priority: int = -1
    n_rules: int = 0
    priorities: dict[int, int] = field(default_factory=dict)   # priority -> rules with it
    stages: tuple = ()               # (key mask, combined mask, set) per stage but the last
    prefix_cuts: list[tuple[int, int]] = field(default_factory=list)   # per prefixes entry: key >> shift & mask
    pending: list[Rule] = field(default_factory=list)


class Classifier:
    """Rules with conjunction actions (``Rule.conj``) are soft matches, kept in a classifier of
    their own (``soft``): a lookup that finds soft matches above its best rule checks their
    conjunctions as Open vSwitch's classifier_lookup__ does (see ``lookup``)."""

    def __init__(self, soft: bool = False) -> None:
        self.is_soft = soft                        # the soft rules' own classifier
        self.subtables: dict[tuple[int, int], Subtable] = {}
        self.order: list[Subtable] = []            # by max_priority, highest first
        self.tries = {f.name: PrefixSet(f) for f in TRIE_FIELDS}
        self.n_rules = 0
        self.soft: Classifier | None = None        # the conjunctive (soft) rules
        self.dirty: list[Subtable] = []            # the subtables with pending rules

    # -- changes
    def insert(self, rule: Rule) -> None:
        if rule.conj and not self.is_soft:
            if self.soft is None:
                self.soft = Classifier(soft=True)
            self.soft.insert(rule)
            self.n_rules += 1
            return
        priority = rule.priority
        st = self.subtables.get((rule.mask, rule.meta_mask))
        if st is None:
            st = self._new_subtable(rule.mask, rule.meta_mask)
        lst = st.rules.get(rule.ck)
        if lst is None:
            st.rules[rule.ck] = [rule]
        else:
            lst.append(rule)
            lst.sort(key=lambda r: -r.priority)
        pending = st.pending
        if not pending:
            self.dirty.append(st)
        pending.append(rule)
        if len(pending) >= INDEX_BATCH:           # (st stays in dirty: flush passes it by)
            st.pending = []
            self._index_all(st, pending)
        st.n_rules += 1
        self.n_rules += 1
        pr = st.priorities
        pr[priority] = pr.get(priority, 0) + 1
        if priority > st.max_priority:
            st.max_priority = priority
            self._sort()

    def remove(self, rule: Rule) -> None:
        if rule.conj and not self.is_soft:
            self.soft.remove(rule)
            self.n_rules -= 1
            return
        if self.dirty:
            self.flush()
        st = self.subtables[(rule.mask, rule.meta_mask)]
        ck = rule.ck
        lst = st.rules[ck]
        lst.remove(rule)
        if not lst:
            del st.rules[ck]
        for _, cm, counts in st.stages:
            k = ck & cm
            counts[k] -= 1
            if not counts[k]:
                del counts[k]
        if st.prefixes:
            eth_type = field_of(_ETH_TYPE, rule.key)
            for i, (ps, plen) in enumerate(st.prefixes):
                if ps.eth_type == eth_type:
                    sh, pm = st.prefix_cuts[i]
                    ps.remove(plen, rule.key >> sh & pm)
                    st.prefix_rules[i] -= 1
        if st.ports is not None:
            st.ports.remove(32, (rule.key >> PORTS_SHIFT) & st.ports_mask)
        st.n_rules -= 1
        self.n_rules -= 1
        if not st.n_rules:
            del self.subtables[(st.mask, st.meta_mask)]
            self.order.remove(st)
        else:
            st.priorities[rule.priority] -= 1
            if not st.priorities[rule.priority]:
                del st.priorities[rule.priority]
                if rule.priority == st.max_priority:     # by distinct priorities, not by rules
                    st.max_priority = max(st.priorities)
                    self._sort()

    def flush(self) -> None:
        """Count the rules inserted and not counted yet (fewer than INDEX_BATCH a subtable) in
        their subtables' stage sets and prefix and ports tries.  A lookup, a match walk and a
        removal flush first; so does a reader of those indexes (ctable)."""
        for st in self.dirty:
            rules, st.pending = st.pending, []
            if len(rules) <= INDEX_ONE_BY_ONE:
                for r in rules:
                    self._index(st, r)
            else:
                self._index_all(st, rules)
        self.dirty = []

    @staticmethod
    def _index(st: Subtable, rule: Rule) -> None:
        key, ck = rule.key, rule.ck
        for _, cm, counts in st.stages:
            k = ck & cm
            counts[k] = counts.get(k, 0) + 1
        if st.prefixes:
            eth_type = (key >> _ETH_TYPE.key_bit_shift) & _ETH_TYPE.all_ones
            for i, (ps, plen) in enumerate(st.prefixes):
                if ps.eth_type == eth_type:
                    sh, pm = st.prefix_cuts[i]
                    ps.add(plen, key >> sh & pm)
                    st.prefix_rules[i] += 1
        if st.ports is not None:
            st.ports.add(32, (key >> PORTS_SHIFT) & st.ports_mask)

    @staticmethod
    def _index_all(st: Subtable, rules: list[Rule]) -> None:
        """``_index`` of each of RULES, counted a set or trie at a time."""
        keys = [r.key for r in rules]
        cks = [r.ck for r in rules] if st.meta_mask else keys
        for _, cm, counts in st.stages:
            counts.update(map(cm.__and__, cks))
        if st.prefixes:
            ets = [(k >> _ETH_TYPE.key_bit_shift) & _ETH_TYPE.all_ones for k in keys]
            for i, (ps, plen) in enumerate(st.prefixes):
                n = ets.count(ps.eth_type)
                if n:
                    mine = keys if n == len(keys) else list(compress(keys, [e == ps.eth_type for e in ets]))
                    sh, pm = st.prefix_cuts[i]
                    ps.add_all(plen, map(pm.__and__, map(rshift, mine, repeat(sh))))
                    st.prefix_rules[i] += n
        if st.ports is not None:
            st.ports.add_all(32, map(st.ports_mask.__and__, map(rshift, keys, repeat(PORTS_SHIFT))))

    def _new_subtable(self, mask: int, meta_mask: int) -> Subtable:
        # Stages that add no bits are dropped; the last one is the whole mask.
        stages, prev = [], -1
        for cm in CUMULATIVE:
            if mask & cm != prev:
                stages.append(mask & cm)
                prev = mask & cm
        if not stages or stages[-1] != mask:
            stages.append(mask)
        st = Subtable(mask, meta_mask, stages, [Counter() for _ in stages[:-1]], meta_mask << KEY_BITS | mask)
        cmasks = [meta_mask << KEY_BITS | sm for sm in stages[:-1]]
        st.stages = tuple(zip(stages[:-1], cmasks, st.stage_sets))
        for f in TRIE_FIELDS:
            fm = field_of(f, mask)
            if fm:
                plen = _prefix_len(f, fm)
                if plen is not None and plen < f.bits or plen == f.bits:
                    st.prefixes.append((self.tries[f.name], plen))
                    st.prefix_rules.append(0)
                    st.prefix_cuts.append((f.key_bit_shift + f.bits - plen, (1 << plen) - 1))
        last = stages[-1] & ~(stages[-2] if len(stages) > 1 else 0)
        if last and not last & ~PORTS_BITS:          # the last stage is L4 ports alone
            st.ports, st.ports_mask = PrefixSet(None, 32), (mask >> PORTS_SHIFT) & 0xFFFFFFFF
        self.subtables[(mask, meta_mask)] = st
        self.order.append(st)
        return st

    def _sort(self) -> None:
        self.order.sort(key=lambda s: -s.max_priority)

    # -- lookup
    def lookup(self, key: int, meta: int = 0, wc: Wildcards | None = None, seen: list | None = None) -> Rule | None:
        """The highest-priority rule matching (KEY, META); WC gathers the bits consulted.

        With soft matches (conjunctive rules) above the best ordinary rule, as Open vSwitch:
        from the highest soft priority down, a conjunction ID whose every clause has a soft
        match at that priority makes a lookup again with conj_id = ID (ordinary rules only),
        and the rule it finds is the result; without one, the ordinary rule is.  SEEN, if
        given, gets the soft matches consulted (removing one may change the result)."""
        wc = wc if wc is not None else Wildcards()
        if self.dirty:
            self.flush()
        hard = self._lookup(key, meta, wc)
        if self.soft is None or not self.soft.n_rules:
            return hard
        hard_pri = hard.priority if hard is not None else -1
        soft = self.soft.matching(key, meta, wc, hard_pri)
        if not soft:
            return hard
        if seen is not None:
            seen += soft
        for pri in sorted({r.priority for r in soft}, reverse=True):
            clauses: dict[int, tuple[int, set[int]]] = {}
            for r in soft:
                if r.priority == pri:
                    for cid, k, n in r.conj:
                        clauses.setdefault((cid, n), set()).add(k)
            for (cid, n), ks in sorted(clauses.items()):
                if len(ks) == n:
                    wc.meta |= CONJ_ID_MASK
                    rule = self._lookup(key, meta & ~CONJ_ID_MASK | cid << CONJ_ID_SHIFT, wc)
                    if rule is not None:
                        return rule
        return hard

    def matching(self, key: int, meta: int, wc: Wildcards, above: int) -> list[Rule]:
        """Every rule matching (KEY, META) with a priority above ABOVE; WC gathers the bits
        consulted (every subtable that could hold one is probed)."""
        if self.dirty:
            self.flush()
        out: list[Rule] = []
        eth_type = field_of(_ETH_TYPE, key)
        ck = combined_key(key, meta)
        for st in self.order:
            if st.max_priority <= above:
                break
            if self._ruled_out_by_prefix(st, key, eth_type, wc):
                continue
            wc.meta |= st.meta_mask
            for sm, cm, stage in st.stages:
                if ck & cm not in stage:
                    wc.key |= sm
                    break
            else:
                wc.key |= st.mask
                out += [r for r in st.rules.get(ck & st.cmask, ()) if r.priority > above]
        return out

    def _lookup(self, key: int, meta: int, wc: Wildcards) -> Rule | None:
        best: Rule | None = None
        eth_type = (key >> _ETH_TYPE.key_bit_shift) & _ETH_TYPE.all_ones
        ck = combined_key(key, meta)
        for st in self.order:
            if best is not None and st.max_priority <= best.priority:
                break
            if st.prefixes and self._ruled_out_by_prefix(st, key, eth_type, wc):
                continue
            wc.meta |= st.meta_mask
            for sm, cm, stage in st.stages:           # every stage but the last
                if ck & cm not in stage:
                    wc.key |= sm
                    break
            else:
                rules = st.rules.get(ck & st.cmask)
                if not rules and st.ports is not None:
                    # Earlier stages matched some rule, the ports none: the leading port bits
                    # that differ from every rule's say so (0: some rule has these very ports,
                    # so the miss is elsewhere; then everything was consulted).
                    bits = st.ports.bits_to_rule_out((key >> PORTS_SHIFT) & st.ports_mask, 32)
                    if bits:
                        wc.key |= st.stage_masks[-2] if len(st.stage_masks) > 1 else 0
                        wc.key |= ((((1 << bits) - 1) << (32 - bits)) & st.ports_mask) << PORTS_SHIFT
                        continue
                wc.key |= st.mask
                if rules and (best is None or rules[0].priority > best.priority):
                    best = rules[0]
        return best

    @staticmethod
    def _ruled_out_by_prefix(st: Subtable, key: int, eth_type: int, wc: Wildcards) -> bool:
        for i, (ps, plen) in enumerate(st.prefixes):
            # No rule here of the packet's eth_type: the staged lookup rules the subtable out
            # on eth_type alone, as Open vSwitch's, whose IPv4 and IPv6 tries never meet.
            if eth_type != ps.eth_type or plen == 0 or not st.prefix_rules[i]:
                continue
            bits = ps.bits_to_rule_out(field_of(ps.f, key), plen)
            if bits:
                wc.unwildcard(ps.f, ((1 << bits) - 1) << (ps.f.bits - bits))
                wc.unwildcard(_ETH_TYPE)
                return True
        return False

    def rules(self):
        for st in list(self.order):
            for lst in list(st.rules.values()):
                yield from list(lst)
        if self.soft is not None:
            yield from self.soft.rules()

    def find_exactly(self, match: Match, priority: int) -> Rule | None:
        """The rule with exactly this match and priority (OpenFlow's strict semantics)."""
        if self.soft is not None and self.soft.n_rules:
            r = self.soft.find_exactly(match, priority)
            if r is not None:
                return r
        key, mask = match.key_and_mask_ints()
        meta, meta_mask = match.pipeline_ints()
        return self._find(combined_key(key, meta), mask, meta_mask, match, priority)

    def find_same(self, rule: Rule) -> Rule | None:
        """``find_exactly(rule.match, rule.priority)`` for a RULE not inserted yet (its ints
        computed already)."""
        if self.soft is not None and self.soft.n_rules:
            r = self.soft.find_same(rule)
            if r is not None:
                return r
        return self._find(rule.ck, rule.mask, rule.meta_mask, rule.match, rule.priority)

    def _find(self, ck: int, mask: int, meta_mask: int, match: Match, priority: int) -> Rule | None:
        st = self.subtables.get((mask, meta_mask))
        if st is None:
            return None
        for cand in st.rules.get(ck, ()):
            if cand.priority == priority and cand.match == match:
                return cand
        return None
