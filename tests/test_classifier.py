"""The masked classifier (exact-match cache + tuple-space search) against a brute-force linear
scan in Python over the same key bytes.

Hypothesis draws frames (Ethernet, 802.1Q/802.1ad tags, IPv4, IPv6, TCP, UDP, ICMP, ND, ARP,
fragments) from small value pools so that flows hit, overlap and collide; masks as unions of
fields from ofproto.fields with random prefix (or arbitrary) masks; flows as (mask, key of a
frame & mask).  Every flow's action is ``userspace(cookie=its index)``, so the upcall of type
"action" names the flow the datapath chose; a frame no flow matches comes up as a miss.

The reference: a frame matches a flow iff ``key & mask == flow key``, bytewise.  Megaflows are
assumed not to overlap, so when several match the datapath may pick any of them; when exactly
one matches it must be that one; when none, a miss.
"""
from __future__ import annotations

import logging
import random
import time

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dpdkswitch.datapath import MANUAL_PMD, Datapath, odp, parse
from dpdkswitch.flowkey import KEY_SIZE
from dpdkswitch.ofproto.fields import BY_NAME, FIELDS

from frames import udp_frame

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402
from scapy.layers.inet6 import (ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS,  # noqa: E402
                                ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, IPv6,
                                IPv6ExtHdrFragment, IPv6ExtHdrHopByHop)
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402

pytestmark = pytest.mark.dpdk

PORTS = (1, 2)
SECOND = 1_000_000_000

# ---- frames -------------------------------------------------------------------------------

MACS = ["02:00:00:00:00:01", "02:00:00:00:00:02", "0a:1b:2c:3d:4e:5f"]
IP4S = ["10.0.0.1", "10.0.0.2", "10.0.1.1", "192.168.7.9"]
IP6S = ["2001:db8::1", "2001:db8::2", "2001:db8:0:1::1", "fe80::1"]
L4PORTS = [53, 80, 1024, 65535]


@st.composite
def frames(draw):
    """(in_port, frame bytes)."""
    pick = lambda pool: draw(st.sampled_from(pool))   # noqa: E731
    p = Ether(src=pick(MACS), dst=pick(MACS))
    for tag in pick([(), (Dot1Q,), (Dot1AD,), (Dot1AD, Dot1Q), (Dot1Q, Dot1Q)]):
        p = p / tag(vlan=pick([0, 10, 4095]), prio=pick([0, 5]), dei=pick([0, 0, 1]))
    kind = pick(["ipv4", "ipv4", "ipv6", "ipv6", "arp", "other"])
    if kind == "ipv4":
        frag = pick([(0, 0), (0, 0), (0, 0), (1, 0), (0, 100)])   # (MF, offset)
        p = p / IP(src=pick(IP4S), dst=pick(IP4S), tos=pick([0, 0x10, 0xb9]), ttl=pick([64, 1]),
                   flags=frag[0], frag=frag[1])
        l4 = pick(["tcp", "udp", "icmp", "raw"])
        if l4 == "tcp":
            p = p / TCP(sport=pick(L4PORTS), dport=pick(L4PORTS), flags=pick(["S", "A", "SA", "FPU"]))
        elif l4 == "udp":
            p = p / UDP(sport=pick(L4PORTS), dport=pick(L4PORTS))
        elif l4 == "icmp":
            p = p / ICMP(type=pick([0, 8, 3]), code=pick([0, 1]))
        else:
            p.lastlayer().proto = pick([47, 132])
    elif kind == "ipv6":
        p = p / IPv6(src=pick(IP6S), dst=pick(IP6S), tc=pick([0, 0xb8]), fl=pick([0, 1, 0xfffff]),
                     hlim=pick([64, 255]))
        for ext in pick([(), (), (IPv6ExtHdrHopByHop,), (IPv6ExtHdrFragment,)]):
            p = p / (ext(m=pick([0, 1]), offset=pick([0, 0, 7])) if ext is IPv6ExtHdrFragment else ext())
        l4 = pick(["tcp", "udp", "echo", "ns", "na"])
        if l4 == "tcp":
            p = p / TCP(sport=pick(L4PORTS), dport=pick(L4PORTS), flags=pick(["S", "A"]))
        elif l4 == "udp":
            p = p / UDP(sport=pick(L4PORTS), dport=pick(L4PORTS))
        elif l4 == "echo":
            p = p / ICMPv6EchoRequest()
        elif l4 == "ns":
            p = p / ICMPv6ND_NS(tgt=pick(IP6S)) / ICMPv6NDOptSrcLLAddr(lladdr=pick(MACS))
        else:
            p = p / ICMPv6ND_NA(tgt=pick(IP6S)) / ICMPv6NDOptDstLLAddr(lladdr=pick(MACS))
    elif kind == "arp":
        p = p / ARP(op=pick([1, 2]), hwsrc=pick(MACS), psrc=pick(IP4S), hwdst=pick(MACS), pdst=pick(IP4S))
    else:
        p.lastlayer().type = pick([0x88cc, 0x0042])   # LLDP, or an 802.3 length
    p = p / Raw(bytes(pick([0, 4, 20])))
    return pick(PORTS), bytes(p)


# ---- masks --------------------------------------------------------------------------------

KEY_FIELDS = sorted({f.name for f in FIELDS if f.member is not None})


@st.composite
def masks(draw):
    """A mask: the union of a few fields, maskable ones under a random prefix (or any bits)."""
    mask = bytearray(KEY_SIZE)
    for name in draw(st.lists(st.sampled_from(KEY_FIELDS), min_size=1, max_size=4, unique=True)):
        f = BY_NAME[name]
        bits = min(f.bits, 8 * f.key_nbytes - f.shift)   # arp_op: 16 bits, but one key byte
        m = (1 << bits) - 1
        if f.maskable:
            how = draw(st.sampled_from(["exact", "prefix", "prefix", "any"]))
            if how == "prefix":
                n = draw(st.integers(1, bits))
                m = ((1 << n) - 1) << (bits - n)
            elif how == "any":
                m = draw(st.integers(1, (1 << bits) - 1))
        off, b = f.key_mask_bytes(m)
        for i, x in enumerate(b):
            mask[off + i] |= x
    return bytes(mask)


def band(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") & int.from_bytes(b, "big")).to_bytes(KEY_SIZE, "big")


# ---- the datapath side ---------------------------------------------------------------------

class Rig:
    """A datapath with two test ports, a manual clock, and a way to classify frames by hand."""

    def __init__(self, name: str, emc: int):
        self.dp = Datapath(name, n_mbufs=8192, manual_clock=True, upcall_ring=4096, flow_limit=4096,
                           emc_insert_inv_prob=emc)
        self.emc = emc
        for p in PORTS:
            self.dp.add_test_port(p, f"{name}{p}")
        self.clock = SECOND
        self.dp.set_clock(self.clock)
        self.mbufs_idle = self.dp.mbufs_in_use()

    def tick(self) -> None:
        """A second later: misses still in flight (20 ms) are forgotten, so a key that missed
        before comes up again instead of being parked behind its earlier upcall."""
        self.clock += SECOND
        self.dp.set_clock(self.clock)

    def classify(self, items: list[tuple[int, bytes, bytes]]) -> dict[bytes, int | None]:
        """ITEMS: (in_port, frame, key), keys distinct.  Injects them up to 32 per port at a time,
        polls once, and returns key -> the cookie of the flow that took it, or None for a miss."""
        assert len({k for _, _, k in items}) == len(items)
        out: dict[bytes, int | None] = {}
        by_port = {p: [(f, k) for q, f, k in items if q == p] for p in PORTS}
        for start in range(0, max(len(v) for v in by_port.values()), 32):
            sent = {}
            self.tick()
            for p in PORTS:
                chunk = by_port[p][start:start + 32]
                if chunk:
                    assert self.dp.inject(p, [f for f, _ in chunk]) == len(chunk)
                    sent.update({k: f for f, k in chunk})
            assert self.dp.poll(1) == len(sent)
            ups = self.dp.upcalls(256)
            assert len(ups) == len(sent), "one upcall per frame (a miss, or the flow's userspace action)"
            for u in ups:
                assert u.key in sent and u.key not in out, "upcall of an unknown or repeated key"
                assert u.data == sent[u.key]
                out[u.key] = u.cookie if u.type == "action" else None
                u.free()
        for p in PORTS:
            assert self.dp.drain(p) == []
        assert self.dp.mbufs_in_use() == self.mbufs_idle, "an mbuf leaked"
        return out

    def close(self) -> None:
        self.dp.close()


@pytest.fixture(scope="module")
def rigs(eal):
    r = {1: Rig("clse", 1), 0: Rig("clsn", 0)}
    yield r
    for x in r.values():
        x.close()


def check(answers: dict[bytes, int | None], flows: dict[int, tuple[bytes, bytes]], what: str) -> None:
    """ANSWERS (key -> cookie or None) against a linear scan over FLOWS (cookie -> (mask, key))."""
    table = [(c, int.from_bytes(m, "big"), int.from_bytes(k, "big")) for c, (m, k) in flows.items()]
    overlaps = 0
    for key, got in answers.items():
        ki = int.from_bytes(key, "big")
        matching = {c for c, m, k in table if ki & m == k}
        overlaps += len(matching) > 1
        if not matching:
            assert got is None, f"{what}: key {key.hex()} matches no flow, yet flow {got} took it"
        else:
            assert got is not None, f"{what}: key {key.hex()} missed, but flows {sorted(matching)} match it"
            assert got in matching, f"{what}: flow {got} took key {key.hex()}, which only {sorted(matching)} match"
    if overlaps:
        event(f"{what}: a key matches several flows")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.data_too_large])
@given(frame_pool=st.lists(frames(), min_size=1, max_size=40),
       mask_pool=st.lists(masks(), min_size=1, max_size=6),
       flow_picks=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 1 << 16)), min_size=1, max_size=48),
       emc=st.sampled_from([1, 0]),
       data=st.data())
def test_classifier_agrees_with_linear_scan(rigs, frame_pool, mask_pool, flow_picks, emc, data):
    rig = rigs[emc]
    dp = rig.dp
    assert dp.flow_count() == 0 and dp.subtable_count() == 0
    try:
        keyed = [(p, f, parse(f, p)) for p, f in frame_pool]
        items, seen = [], set()
        for p, f, k in keyed:
            if k not in seen:
                seen.add(k)
                items.append((p, f, k))

        # Flows: (a pooled mask, a pooled frame's key under it); identical (key, mask) pairs are
        # refused by the datapath with EEXIST, the first one stays.
        puts, flows, pairs, dup = [], {}, set(), set()
        for i, (mi, fi) in enumerate(flow_picks):
            mask = mask_pool[mi % len(mask_pool)]
            key = band(keyed[fi % len(keyed)][2], mask)
            puts.append((1000 + i, key, mask, odp.encode([odp.Userspace(i)])))
            if (key, mask) in pairs:
                dup.add(i)
            else:
                pairs.add((key, mask))
                flows[i] = (mask, key)
        res = dp.flow_put_batch(puts)
        for i, r in enumerate(res):
            if i in dup:
                assert r is not None and r[0] == 17, f"a second identical flow was accepted: {r}"
            else:
                assert r is None, f"flow {i} refused: {r}"
        assert dp.flow_count() == len(flows)
        assert dp.subtable_count() == len({m for m, _ in flows.values()})
        for i, (mask, key) in flows.items():
            got = dp.flow_get(1000 + i)
            assert (got["key"], got["mask"]) == (key, mask)

        first = rig.classify(items)
        check(first, flows, "first pass")
        hits = sum(c is not None for c in first.values())
        event(f"first pass: {'no' if not hits else 'all' if hits == len(first) else 'some'} frames hit")
        if emc:
            # The exact-match cache now holds these keys: same answers, from the cache.
            emc_hits = int(dp.pmd_stats()[MANUAL_PMD]["emc_hits"])
            again = rig.classify(items)
            assert again == first
            assert int(dp.pmd_stats()[MANUAL_PMD]["emc_hits"]) - emc_hits == hits

        # Delete some flows: they are never the answer again (nor stale cache entries of them).
        gone = data.draw(st.sets(st.sampled_from(sorted(flows))), label="deleted") if flows else set()
        ufids = [1000 + i for i in sorted(gone)] + [999]            # 999 never existed
        finals = dp.flow_del(ufids)
        assert finals[-1] is None and all(s is not None for s in finals[:-1])
        for i, s in zip(sorted(gone), finals):
            hits_first = sum(1 for c in first.values() if c == i) * (2 if emc else 1)
            assert s["packets"] == hits_first
        kept = {i: v for i, v in flows.items() if i not in gone}
        assert dp.flow_count() == len(kept)
        after = rig.classify(items)
        assert not (set(after.values()) & gone)
        check(after, kept, "after deleting flows")

        # Put the deleted flows back under new UFIDs and cookies: their slots are reused, and no
        # cache entry of the old flows may answer for the new ones.
        if gone:
            res = dp.flow_put_batch([(5000 + i, flows[i][1], flows[i][0], odp.encode([odp.Userspace(500 + i)]))
                                     for i in sorted(gone)])
            assert res == [None] * len(gone)
            back = dict(kept)
            back.update({500 + i: flows[i] for i in gone})
            readded = rig.classify(items)
            assert not (set(readded.values()) & gone)
            check(readded, back, "after putting flows back")
    finally:
        dp.flow_flush()
    assert dp.flow_count() == 0 and dp.subtable_count() == 0


def test_overlapping_flows_each_key_gets_a_matching_flow(rigs):
    """Two masks over the same field, nested (a /8 and a /24 on ipv4_src): keys in both
    get one of the two; keys only in the /8 get the /8's flow."""
    dp = rigs[1].dp
    try:
        m8, m24 = bytearray(KEY_SIZE), bytearray(KEY_SIZE)
        BY_NAME["ipv4_src"].to_key(m8, 0xFF000000)
        BY_NAME["ipv4_src"].to_key(m24, 0xFFFFFF00)
        k8, k24 = bytearray(KEY_SIZE), bytearray(KEY_SIZE)
        BY_NAME["ipv4_src"].to_key(k8, 0x0A000000)
        BY_NAME["ipv4_src"].to_key(k24, 0x0A000100)
        assert dp.flow_put_batch([(1, bytes(k8), bytes(m8), odp.encode([odp.Userspace(8)])),
                                  (2, bytes(k24), bytes(m24), odp.encode([odp.Userspace(24)]))]) == [None, None]
        fr = [(1, bytes(Ether(dst=MACS[0]) / IP(src=s, dst="1.2.3.4") / UDP())) for s in
              ("10.0.1.7", "10.9.9.9", "11.0.1.7")]
        got = rigs[1].classify([(p, f, parse(f, p)) for p, f in fr])
        a, b, c = (got[parse(f, p)] for p, f in fr)
        assert a in (8, 24) and b == 8 and c is None
    finally:
        dp.flow_flush()


def test_subtable_set_republished_between_lookups(eal):
    """Subtables come and go between lookups, so a new subtable set can land at the address of
    one the PMD saw before (freed since): the PMD must still notice the change.  (Once a
    use-after-free in the PMD's subtable order, which recognised the set by its address.)"""
    fr = udp_frame(0)
    key = parse(fr, 1)
    names = ["ipv4_src", "ipv4_dst", "udp_src", "udp_dst", "eth_src"]
    with Datapath("clsaba", manual_clock=True, emc_insert_inv_prob=0) as dp:
        dp.add_test_port(1, "clsaba")
        for n in range(1, len(names) + 1):
            for rnd in range(8):
                flows = []
                for i, name in enumerate(names[:n]):
                    m, k = bytearray(KEY_SIZE), bytearray(KEY_SIZE)
                    f = BY_NAME[name]
                    f.to_key(m, f.all_ones)
                    f.to_key(k, f.from_key(key) ^ (0 if i == n - 1 else 1))   # only the last matches
                    flows.append((1 + i, bytes(k), bytes(m), odp.encode([odp.Userspace(1 + i)])))
                assert dp.flow_put_batch(flows) == [None] * n
                dp.set_clock((n * 100 + rnd) * SECOND)
                dp.inject(1, [fr])
                dp.poll(1)
                (u,) = dp.upcalls()
                assert (u.type, u.cookie) == ("action", n), f"{n} subtables, round {rnd}"
                u.free()
                dp.flow_flush()


@pytest.mark.parametrize("n", [1, 7, 8, 9, 20])
def test_few_flow_subtables_delete_one_at_a_time(rigs, n):
    """A subtable of up to 8 flows is answered from keys kept in place, not its hash (see
    flow.h); past 8 from the hash alone.  Either way, deleting its flows one by one in a random
    order leaves every remaining frame on its own flow and every deleted one missing."""
    rig = rigs[0]
    dp = rig.dp
    try:
        mask = bytearray(KEY_SIZE)
        BY_NAME["ipv4_src"].to_key(mask, 0xFFFFFFFF)
        BY_NAME["udp_dst"].to_key(mask, 0xFFFF)
        items = [(1, f, parse(f, 1)) for f in (udp_frame(i) for i in range(n + 3))]   # 3 never get a flow
        puts = [(100 + i, band(k, bytes(mask)), bytes(mask), odp.encode([odp.Userspace(i)]))
                for i, (_, _, k) in enumerate(items[:n])]
        assert dp.flow_put_batch(puts) == [None] * n
        assert dp.subtable_count() == 1
        live = set(range(n))
        order = list(range(n))
        random.Random(n).shuffle(order)
        for gone in [None] + order:
            if gone is not None:
                assert dp.flow_del([100 + gone])[0] is not None
                live.discard(gone)
            got = rig.classify(items)
            want = {k: (i if i in live else None) for i, (_, _, k) in enumerate(items)}
            assert got == want, f"{n} flows, after deleting {gone}"
        assert dp.subtable_count() == 0
    finally:
        dp.flow_flush()


# ---- scale ------------------------------------------------------------------------------------

N_SCALE = 200_000


def test_200k_flows_classify_to_the_right_flow(eal):
    """200,000 flows in one subtable (in_port + ipv4_src exact), installed in batches; a sample
    of 2,000 frames each hits its own flow (flow counters), a frame of another port misses."""
    with Datapath("cls200k", manual_clock=True, flow_limit=N_SCALE, upcall_ring=4096,
                  emc_insert_inv_prob=0) as dp:
        dp.add_test_port(1, "s200a")
        dp.add_test_port(2, "s200b")
        src = BY_NAME["ipv4_src"]
        mask = bytearray(KEY_SIZE)
        BY_NAME["in_port"].to_key(mask, 0xFFFFFFFF)
        src.to_key(mask, 0xFFFFFFFF)
        mask = bytes(mask)
        tmpl = bytearray(KEY_SIZE)
        BY_NAME["in_port"].to_key(tmpl, 1)
        off = src.key_offset
        head, tail = bytes(tmpl[:off]), bytes(tmpl[off + 4:])
        act = odp.encode([odp.Output(2)])

        def addr(i: int) -> int:                  # udp_frame(i)'s source address
            return (10 << 24) | i

        t0 = time.perf_counter()
        for start in range(0, N_SCALE, 10_000):
            puts = [(1 + i, head + addr(i).to_bytes(4, "big") + tail, mask, act)
                    for i in range(start, min(start + 10_000, N_SCALE))]
            assert dp.flow_put_batch(puts) == [None] * len(puts)
        took = time.perf_counter() - t0
        print(f"\ninstalled {N_SCALE} flows in {took:.2f} s ({N_SCALE / took:,.0f} flows/s)")
        assert dp.flow_count() == N_SCALE and dp.subtable_count() == 1
        (over,) = dp.flow_put_batch([(N_SCALE + 1, head + addr(N_SCALE).to_bytes(4, "big") + tail, mask, act)])
        assert over is not None and over[0] == 28          # the flow limit

        sample = random.Random(7).sample(range(N_SCALE), 2000)
        frames_ = [udp_frame(i) for i in sample]
        for fr, i in zip(frames_, sample):
            assert band(parse(fr, 1), mask) == head + addr(i).to_bytes(4, "big") + tail
        out = []
        for start in range(0, len(frames_), 512):
            chunk = frames_[start:start + 512]
            assert dp.inject(1, chunk) == len(chunk)
            while dp.poll(1):
                pass
            out += dp.drain(2)
        assert sorted(out) == sorted(frames_)
        for i in sample:
            assert dp.flow_get(1 + i)["packets"] == 1, f"flow {i}"
        st_ = dp.pmd_stats()[MANUAL_PMD]
        assert int(st_["megaflow_hits"]) == 2000 and int(st_["misses"]) == 0
        # The same addresses from port 2 match nothing; one outside the range neither.
        dp.set_clock(SECOND)
        dp.inject(2, [frames_[0], udp_frame(N_SCALE + 5)])
        dp.poll(1)
        ups = dp.upcalls()
        assert [u.type for u in ups] == ["miss", "miss"]
        for u in ups:
            u.free()
        (f2,) = dp.flow_del([1 + sample[0]])
        assert f2["packets"] == 1
        dp.inject(1, [frames_[0]])
        dp.poll(1)
        ups = dp.upcalls()
        assert [u.type for u in ups] == ["miss"] and dp.drain(2) == []
        ups[0].free()
