"""The OpenFlow classifier (dpdkswitch/ofproto/classifier.py) indexes the rules inserted into a
subtable in batches as they go in, and the rest when the next lookup comes: a few one by one,
more in bulk.  Either way
a lookup must find the rule, and consult the bits, that it finds and consults when every rule
was indexed as it went in; and the rule must be the highest-priority rule that matches.

Rules are drawn from a few shapes (masks), many rules a shape, so that runs of inserts into one
subtable go past the one-by-one limit: exact and prefix matches on IPv4 and IPv6 addresses (the
prefix tries; rules of two eth_types in one subtable, over the same key bits), L4 ports (the ports trie), and
pipeline fields (metadata, a register: keys with a nonzero pipeline vector).

No network; no EAL.
"""
from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dpdkswitch.ofproto import classifier as CL
from dpdkswitch.ofproto.classifier import Classifier, Rule, Wildcards
from dpdkswitch.ofproto.fields import BY_NAME
from dpdkswitch.ofproto.match import Match

KEY_ALL = (1 << CL.KEY_BITS) - 1
META_ALL = (1 << 640) - 1
# Shapes: the fields a rule of the shape matches, name -> mask (None: exact).
SHAPES = [
    {"in_port": None, "eth_type": None, "ip_proto": None, "ipv4_src": None},
    {"eth_type": None, "ipv4_src": 0xFFFF0000},
    {"eth_type": None, "ipv4_dst": 0xFFFFFF00},
    {"eth_type": None, "ipv6_src": (1 << 128) - (1 << 64)},
    {"eth_type": None, "ip_proto": None, "tcp_dst": None},
    {"eth_type": None, "ip_proto": None, "tcp_src": 0xFF00, "tcp_dst": 0xFFF0},
    {"metadata": 0xFFFF, "eth_type": None},
    {"reg0": None, "in_port": None},
    # One mask, two eth_types: IPv4 addresses and IPv6 /32 prefixes share these key bits.
    [{"eth_type": None, "ipv4_src": None, "ipv4_dst": None},
     {"eth_type": None, "ipv6_src": (1 << 128) - (1 << 96), "ipv6_dst": (1 << 128) - (1 << 96)}],
]
ETH = {"ipv4_src": 0x0800, "ipv4_dst": 0x0800, "ipv6_src": 0x86DD, "ipv6_dst": 0x86DD, "tcp_dst": 0x0800,
       "tcp_src": 0x0800}


def _match(shape: dict | list, rnd: random.Random) -> Match:
    if isinstance(shape, list):
        shape = rnd.choice(shape)
    eth = next((ETH[n] for n in shape if n in ETH), rnd.choice([0x0800, 0x86DD]))
    d = {}
    for name, mask in shape.items():
        f = BY_NAME[name]
        if name == "eth_type":
            d[name] = eth
        elif name == "ip_proto":
            d[name] = 6 if "tcp_dst" in shape or "tcp_src" in shape else rnd.choice([6, 17])
        else:
            v = rnd.getrandbits(f.bits) & (rnd.choice([0xFF, 0xFFFF, f.all_ones]))   # shared prefixes, too
            d[name] = (v, mask) if mask is not None else v
    return Match(d)


@st.composite
def rule_sets(draw):
    rnd = random.Random(draw(st.integers(0, 2**32)))
    shapes = draw(st.lists(st.sampled_from(range(len(SHAPES))), min_size=1, max_size=4, unique=True))
    run = CL.INDEX_ONE_BY_ONE + 1 + draw(st.sampled_from([0, CL.INDEX_BATCH]))
    picks = [shapes[0]] * run + [rnd.choice(shapes) for _ in range(draw(st.integers(0, 50)))]
    rnd.shuffle(picks)            # (one shape's run goes past the one-by-one limit, or a batch and that)
    specs = [(rnd.choice([1, 10, 100, 1000]), _match(SHAPES[i], rnd)) for i in picks]
    return specs, rnd.getrandbits(32)


def _probes(rules: list[Rule], seed: int) -> list[tuple[int, int]]:
    """Keys and pipeline vectors that hit each rule, just miss it in a stage, or are random."""
    rnd = random.Random(seed)
    out = []
    for r in rules:
        key = r.key | (rnd.getrandbits(CL.KEY_BITS) & ~r.mask & KEY_ALL)
        meta = r.meta | (rnd.getrandbits(640) & ~r.meta_mask & META_ALL)
        out.append((key, meta))
        if r.mask:
            bit = rnd.choice([i for i in range(CL.KEY_BITS) if r.mask >> i & 1])
            out.append((key ^ 1 << bit, meta))
        out.append((rnd.getrandbits(CL.KEY_BITS), 0))
    return out


def _answers(c: Classifier, probes, index_of) -> list:
    out = []
    for key, meta in probes:
        wc = Wildcards()
        r = c.lookup(key, meta, wc)
        out.append((index_of.get(id(r)), wc.key, wc.meta))
    return out


def _best(rules: list[Rule], key: int, meta: int) -> int:
    return max((r.priority for r in rules if not (key ^ r.key) & r.mask and not (meta ^ r.meta) & r.meta_mask),
               default=-1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=rule_sets())
def test_bulk_indexing_looks_up_as_indexing_one_by_one(case):
    specs, seed = case
    rules_a = [Rule.of(p, m) for p, m in specs]
    rules_b = [Rule.of(p, m) for p, m in specs]
    one_by_one, bulk = Classifier(), Classifier()
    for r in rules_a:
        one_by_one.insert(r)
        one_by_one.lookup(0, 0)                   # indexes what was inserted, now
    for r in rules_b:
        bulk.insert(r)
    assert any(len(st.pending) > CL.INDEX_ONE_BY_ONE for st in bulk.dirty), "the bulk path is not taken"
    probes = _probes(rules_a, seed)
    ia = {id(r): i for i, r in enumerate(rules_a)}
    ib = {id(r): i for i, r in enumerate(rules_b)}
    got_a, got_b = _answers(one_by_one, probes, ia), _answers(bulk, probes, ib)
    for (key, meta), (ra, _, _), (rb, _, _) in zip(probes, got_a, got_b):
        want = _best(rules_a, key, meta)
        assert (rules_a[ra].priority if ra is not None else -1) == want
        assert (rules_b[rb].priority if rb is not None else -1) == want
    assert got_a == got_b

    # Removing rules (some while others wait to be indexed) leaves both alike, and right.
    rnd = random.Random(seed)
    gone = set(rnd.sample(range(len(specs)), len(specs) // 2))
    more = [Rule.of(p, m) for p, m in specs[: CL.INDEX_ONE_BY_ONE + 1]]
    more_a = [Rule.of(p, m) for p, m in specs[: CL.INDEX_ONE_BY_ONE + 1]]
    for r in more:
        bulk.insert(r)                            # pending when the removals come
    for r in more_a:
        one_by_one.insert(r)
        one_by_one.lookup(0, 0)
    for i in sorted(gone):
        one_by_one.remove(rules_a[i])
        bulk.remove(rules_b[i])
    left_a = [r for i, r in enumerate(rules_a) if i not in gone] + more_a
    left_b = [r for i, r in enumerate(rules_b) if i not in gone] + more
    ia = {id(r): i for i, r in enumerate(left_a)}
    ib = {id(r): i for i, r in enumerate(left_b)}
    got_a, got_b = _answers(one_by_one, probes, ia), _answers(bulk, probes, ib)
    for (key, meta), (ra, _, _) in zip(probes, got_a):
        assert (left_a[ra].priority if ra is not None else -1) == _best(left_a, key, meta)
    assert got_a == got_b
    for r in left_b:                              # and every rule can still go
        bulk.remove(r)
    assert bulk.n_rules == 0 and not bulk.subtables
    assert all(not c for ps in bulk.tries.values() for c in ps.count.values())


def test_a_run_of_inserts_is_indexed_in_batches_and_the_rest_at_the_next_lookup():
    """Rules inserted into one subtable are counted INDEX_BATCH at a time as they go in (no
    debt for a later lookup to pay beyond a batch), the rest by the next lookup; the prefix
    counts (which the C table of flow setup copies) then hold every rule's prefix."""
    c = Classifier()
    base = {"eth_type": 0x0800, "ip_proto": 17}
    n = 2 * CL.INDEX_BATCH + CL.INDEX_ONE_BY_ONE + 1
    for i in range(n):
        c.insert(Rule.of(10, Match({**base, "ipv4_src": ((10 << 24) | i << 8, 0xFFFFFF00)})))
    counted = c.tries["ipv4_src"].count[24]
    assert counted == {(10 << 16) | i: 1 for i in range(2 * CL.INDEX_BATCH)}
    wc = Wildcards()
    assert c.lookup(Rule.of(0, Match({**base, "ipv4_src": 0x0B000000})).key, 0, wc) is None
    assert all(not st.pending for st in c.subtables.values())
    assert c.tries["ipv4_src"].count == {24: {(10 << 16) | i: 1 for i in range(n)}}
    # Ruled out by the prefixes: a miss consults a few leading address bits, not the subtable's.
    f = BY_NAME["ipv4_src"]
    consulted = (wc.key >> f.key_bit_shift) & f.all_ones
    assert consulted and consulted != 0xFFFFFF00
