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
fields.PIPELINE_BITS), tracked separately (it never reaches the datapath).  Called from the control thread; a lookup costs one dict probe per
stage per subtable visited.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

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


def field_of(f: Field, key: int) -> int:
    return (key >> f.key_bit_shift) & f.all_ones


class PrefixSet:
    """Every rule's prefix on one address field, by length, with counts (several rules may
    share one).  ``bits_to_rule_out`` answers the prefix-tracking question."""

    def __init__(self, f: Field | None, bits: int = 0):
        self.f = f
        self.bits = f.bits if f is not None else bits
        self.eth_type = TRIE_ETH[f.name] if f is not None else -1   # the only rules it holds
        self.count: dict[int, dict[int, int]] = {}
        self._sorted: dict[int, list[int]] = {}

    def add(self, plen: int, prefix: int) -> None:
        c = self.count.get(plen)
        if c is None:
            c = self.count[plen] = {}
        c[prefix] = c.get(prefix, 0) + 1
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

    @classmethod
    def of(cls, priority: int, match: Match, data: object = None, conj: tuple = ()) -> "Rule":
        k, m = match.key_and_mask_ints()
        meta, meta_mask = match.pipeline_ints()
        return cls(priority, match, k, m, meta, meta_mask, data, conj)


@dataclass(eq=False)
class Subtable:
    mask: int
    meta_mask: int
    stage_masks: list[int]
    stage_sets: list[dict] = field(default_factory=list)
    rules: dict[tuple[int, int], list[Rule]] = field(default_factory=dict)
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
    stage_pairs: tuple = ()          # zip(stage_masks, stage_sets), made once: what insert and remove walk


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

    # -- changes
    def insert(self, rule: Rule) -> None:
        if rule.conj and not self.is_soft:
            if self.soft is None:
                self.soft = Classifier(soft=True)
            self.soft.insert(rule)
            self.n_rules += 1
            return
        key, priority = rule.key, rule.priority
        st = self.subtables.get((rule.mask, rule.meta_mask))
        if st is None:
            st = self._new_subtable(rule.mask, rule.meta_mask)
        rk = (key, rule.meta)
        lst = st.rules.get(rk)
        if lst is None:
            st.rules[rk] = [rule]
        else:
            lst.append(rule)
            lst.sort(key=lambda r: -r.priority)
        meta = rule.meta & st.meta_mask
        for sm, counts in st.stage_pairs:                        # (the last stage has no set)
            k = (key & sm, meta)
            counts[k] = counts.get(k, 0) + 1
        if st.prefixes:
            eth_type = (key >> _ETH_TYPE.key_bit_shift) & _ETH_TYPE.all_ones
            for i, (ps, plen) in enumerate(st.prefixes):
                if ps.eth_type == eth_type:
                    f = ps.f
                    ps.add(plen, (key >> f.key_bit_shift & f.all_ones) >> (f.bits - plen) if plen else 0)
                    st.prefix_rules[i] += 1
        if st.ports is not None:
            st.ports.add(32, (key >> PORTS_SHIFT) & st.ports_mask)
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
        st = self.subtables[(rule.mask, rule.meta_mask)]
        lst = st.rules[(rule.key, rule.meta)]
        lst.remove(rule)
        if not lst:
            del st.rules[(rule.key, rule.meta)]
        for i, sm in enumerate(st.stage_masks[:-1]):
            k = (rule.key & sm, rule.meta & st.meta_mask)
            st.stage_sets[i][k] -= 1
            if not st.stage_sets[i][k]:
                del st.stage_sets[i][k]
        if st.prefixes:
            eth_type = field_of(_ETH_TYPE, rule.key)
            for i, (ps, plen) in enumerate(st.prefixes):
                if ps.eth_type == eth_type:
                    ps.remove(plen, field_of(ps.f, rule.key) >> (ps.f.bits - plen) if plen else 0)
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

    def _new_subtable(self, mask: int, meta_mask: int) -> Subtable:
        # Stages that add no bits are dropped; the last one is the whole mask.
        stages, prev = [], -1
        for cm in CUMULATIVE:
            if mask & cm != prev:
                stages.append(mask & cm)
                prev = mask & cm
        if not stages or stages[-1] != mask:
            stages.append(mask)
        st = Subtable(mask, meta_mask, stages, [dict() for _ in stages[:-1]])
        st.stage_pairs = tuple(zip(st.stage_masks, st.stage_sets))
        for f in TRIE_FIELDS:
            fm = field_of(f, mask)
            if fm:
                plen = _prefix_len(f, fm)
                if plen is not None and plen < f.bits or plen == f.bits:
                    st.prefixes.append((self.tries[f.name], plen))
                    st.prefix_rules.append(0)
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
        out: list[Rule] = []
        eth_type = field_of(_ETH_TYPE, key)
        for st in self.order:
            if st.max_priority <= above:
                break
            if self._ruled_out_by_prefix(st, key, eth_type, wc):
                continue
            wc.meta |= st.meta_mask
            m = meta & st.meta_mask
            for i, sm in enumerate(st.stage_masks[:-1]):
                if (key & sm, m) not in st.stage_sets[i]:
                    wc.key |= sm
                    break
            else:
                wc.key |= st.mask
                out += [r for r in st.rules.get((key & st.mask, m), ()) if r.priority > above]
        return out

    def _lookup(self, key: int, meta: int, wc: Wildcards) -> Rule | None:
        best: Rule | None = None
        eth_type = (key >> _ETH_TYPE.key_bit_shift) & _ETH_TYPE.all_ones
        for st in self.order:
            if best is not None and st.max_priority <= best.priority:
                break
            if st.prefixes and self._ruled_out_by_prefix(st, key, eth_type, wc):
                continue
            wc.meta |= st.meta_mask
            m = meta & st.meta_mask
            for sm, stage in zip(st.stage_masks, st.stage_sets):   # every stage but the last
                if (key & sm, m) not in stage:
                    wc.key |= sm
                    break
            else:
                rules = st.rules.get((key & st.mask, m))
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
        return self._find(key, mask, meta, meta_mask, match, priority)

    def find_same(self, rule: Rule) -> Rule | None:
        """``find_exactly(rule.match, rule.priority)`` for a RULE not inserted yet (its ints
        computed already)."""
        if self.soft is not None and self.soft.n_rules:
            r = self.soft.find_same(rule)
            if r is not None:
                return r
        return self._find(rule.key, rule.mask, rule.meta, rule.meta_mask, rule.match, rule.priority)

    def _find(self, key: int, mask: int, meta: int, meta_mask: int, match: Match, priority: int) -> Rule | None:
        st = self.subtables.get((mask, meta_mask))
        if st is None:
            return None
        for cand in st.rules.get((key, meta), ()):
            if cand.priority == priority and cand.match == match:
                return cand
        return None
