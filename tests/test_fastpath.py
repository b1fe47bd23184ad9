"""The fast path: exact-match cache, flows, misses, the upcall ring, packet-out, megaflows.
Deterministic (no PMD thread, manual clock) unless a test says otherwise; the test plays the
slow path by hand."""
import threading
import time

import pytest

from dpdkswitch.datapath import MANUAL_PMD, Datapath, DatapathError, odp, parse
from dpdkswitch.flowkey import KEY_SIZE
from dpdkswitch.ofproto.fields import BY_NAME

from frames import read_pcap, udp_frame, write_pcap

pytestmark = pytest.mark.dpdk


def in_port_flow(port: int) -> tuple[bytes, bytes]:
    key, mask = bytearray(KEY_SIZE), bytearray(KEY_SIZE)
    BY_NAME["in_port"].to_key(key, port)
    BY_NAME["in_port"].to_key(mask, 0xFFFFFFFF)
    return bytes(key), bytes(mask)


def field_mask(*names) -> bytes:
    mask = bytearray(KEY_SIZE)
    for n in names:
        BY_NAME[n].to_key(mask, BY_NAME[n].all_ones)
    return bytes(mask)


def counters(dp) -> dict:
    st = dp.pmd_stats()[MANUAL_PMD]
    return {k: int(st[k]) for k in ("rx_packets", "emc_hits", "megaflow_hits", "misses", "lost", "dups")}


@pytest.fixture
def dp2(eal):
    d = Datapath("fp", n_mbufs=8192, manual_clock=True, emc_insert_inv_prob=1)
    d.add_test_port(1, "fpa")
    d.add_test_port(2, "fpb")
    yield d
    d.close()


def test_one_miss_then_exact_match_hits(dp2):
    frames = [udp_frame(7)] * 20
    dp2.inject(1, frames)
    dp2.poll(1)
    assert counters(dp2) == {"rx_packets": 20, "emc_hits": 0, "megaflow_hits": 0, "misses": 1, "lost": 0,
                             "dups": 19}
    (up,) = dp2.upcalls()                        # one upcall for the burst of one new flow
    assert up.type == "miss" and up.data == frames[0] and up.key == parse(frames[0], 1)
    actions = odp.encode([odp.Output(2)])
    mask = field_mask("in_port", "eth_dst")       # not in_port alone: that takes the cheap path
    dp2.flow_put(1, bytes(a & b for a, b in zip(up.key, mask)), mask, actions)   # the slow path installs the flow,
    up.execute(actions)                           # then sends the missed frame itself
    dp2.poll(1)
    c = counters(dp2)
    assert (c["misses"], c["emc_hits"], c["megaflow_hits"]) == (1, 19, 0)
    assert dp2.drain(2) == frames
    assert dp2.flow_get(1)["packets"] == 19       # the packet-out is not a datapath hit


def test_emc_insertion_probability_zero_means_masked_hits_only(dp2):
    dp2.set_emc_insert_inv_prob(0)
    mask = field_mask("in_port", "eth_dst")
    dp2.flow_put(1, bytes(a & b for a, b in zip(parse(udp_frame(1), 1), mask)), mask, odp.encode([odp.Output(2)]))
    dp2.inject(1, [udp_frame(1)] * 10)
    dp2.poll(2)
    c = counters(dp2)
    assert (c["emc_hits"], c["megaflow_hits"]) == (0, 10)


def test_in_port_and_vlan_flows_take_the_cheap_path(dp2):
    """While every flow matches only in_port and L2 tags (Open vSwitch's "simple match"), frames
    are forwarded without a full parse or a cache lookup, and the flows still count them."""
    key, mask = in_port_flow(1)
    dp2.flow_put(1, key, mask, odp.encode([odp.PushVlan(100), odp.Output(2)]))
    frames = [udp_frame(i) for i in range(40)]
    dp2.inject(1, frames)
    dp2.poll(2)
    c = dp2.pmd_stats()[MANUAL_PMD]
    assert (int(c["simple_hits"]), int(c["emc_hits"]), int(c["megaflow_hits"])) == (40, 0, 0)
    assert dp2.drain(2) == [f[:12] + b"\x81\x00\x00\x64" + f[12:] for f in frames]
    assert dp2.flow_get(1)["packets"] == 40
    # Two flows on port 2 told apart by their VLAN tag, from the L2 header alone.
    vmask = field_mask("in_port", "vlan_vid")
    tagged = bytearray(parse(frames[0][:12] + b"\x81\x00\x00\x0a" + frames[0][12:], 2))
    untagged = bytearray(parse(frames[0], 2))
    dp2.flow_put(2, bytes(a & b for a, b in zip(tagged, vmask)), vmask, odp.encode([odp.PopVlan(), odp.Output(1)]))
    dp2.flow_put(3, bytes(a & b for a, b in zip(untagged, vmask)), vmask, b"")
    dp2.inject(2, [frames[1][:12] + b"\x81\x00\x00\x0a" + frames[1][12:], frames[2]])
    dp2.poll(2)
    assert dp2.drain(1) == [frames[1]]
    assert (dp2.flow_get(2)["packets"], dp2.flow_get(3)["packets"]) == (1, 1)
    assert int(dp2.pmd_stats()[MANUAL_PMD]["simple_hits"]) == 42
    # A flow with any other field ends the cheap path: the classifier takes over.
    other = field_mask("in_port", "eth_dst")
    dp2.flow_put(4, bytes(a & b for a, b in zip(parse(frames[3], 3), other)), other, b"")
    dp2.inject(1, frames[:5])
    dp2.poll(2)
    assert int(dp2.pmd_stats()[MANUAL_PMD]["simple_hits"]) == 42 and len(dp2.drain(2)) == 5


def test_in_port_flow_with_one_output_forwards_whole_bursts_in_order(dp2):
    """The commonest flow of all (in_port=1,actions=output:2) hands the received burst to the
    output port as it is: every frame, in order, counted against the flow; an output to a port
    that is not there is a counted drop, not a crash or a leak."""
    key, mask = in_port_flow(1)
    dp2.flow_put(1, key, mask, odp.encode([odp.Output(2)]))
    frames = [udp_frame(i, size=60 + i % 40) for i in range(100)]   # 4 bursts, the last partial
    idle = dp2.mbufs_in_use()
    dp2.inject(1, frames)
    dp2.poll(5)
    assert dp2.drain(2) == frames
    f = dp2.flow_get(1)
    assert (f["packets"], f["bytes"]) == (100, sum(map(len, frames)))
    assert int(dp2.pmd_stats()[MANUAL_PMD]["simple_hits"]) == 100
    dp2.flow_put(1, key, mask, odp.encode([odp.Output(9)]), modify=True)    # no port 9
    drops = int(dp2.pmd_stats()[MANUAL_PMD]["action_drops"])
    dp2.inject(1, frames[:40])
    dp2.poll(3)
    assert int(dp2.pmd_stats()[MANUAL_PMD]["action_drops"]) - drops == 40
    assert dp2.drain(2) == [] and dp2.mbufs_in_use() == idle


def test_frames_parked_behind_a_miss_go_out_many_ports_at_once(eal):
    """A thousand frames of one new flow wait behind its first miss; once the flow is in, the
    next iteration sends all of them out of 11 ports, over 32 full batches per port (each port
    listed once for the end-of-iteration flush however many batches went mid-way)."""
    with Datapath("fppark", n_mbufs=32768, manual_clock=True) as dp:
        for p in range(1, 13):
            dp.add_test_port(p, f"fpk{p}")
        dp.set_clock(10**9)
        fr = udp_frame(3)
        assert dp.inject(1, [fr] * 1000) == 1000
        dp.poll(40)
        c = counters(dp)
        assert (c["rx_packets"], c["misses"], c["dups"]) == (1000, 1, 999)
        (up,) = dp.upcalls()
        up.free()
        mask = field_mask("in_port", "eth_dst")
        dp.flow_put(1, bytes(a & b for a, b in zip(parse(fr, 1), mask)), mask,
                    odp.encode([odp.Output(p) for p in range(2, 13)]))
        dp.poll(1)
        for p in range(2, 13):
            assert dp.drain(p) == [fr] * 999, p
        assert dp.flow_get(1)["packets"] == 999


def test_full_ring_counts_lost_and_cached_flows_keep_forwarding(eal):
    with Datapath("ring", n_mbufs=8192, manual_clock=True, upcall_ring=16) as d:
        d.add_test_port(1, "rga")
        d.add_test_port(2, "rgb")
        d.add_test_port(3, "rgc")
        base = d.mbufs_in_use()
        d.set_forward(3, [2])                     # a cached flow
        misses = [udp_frame(i) for i in range(100)]  # 100 distinct new flows on port 1
        d.inject(1, misses)
        d.inject(3, [udp_frame(1000 + i) for i in range(50)])
        d.poll(10)
        c = counters(d)
        share = 16 // 3                           # three ports share the ring
        assert c["misses"] == share and c["lost"] == 100 - share
        assert len(d.drain(2)) == 50              # forwarding went on
        while ups := d.upcalls():
            assert all(u.in_port == 1 for u in ups)
            for u in ups:
                u.free()
        assert d.mbufs_in_use() == base


def test_one_port_cannot_take_the_whole_ring(eal):
    with Datapath("fair", n_mbufs=8192, manual_clock=True, upcall_ring=64) as d:
        d.add_test_port(1, "fra")
        d.add_test_port(2, "frb")
        d.inject(1, [udp_frame(i) for i in range(200)])
        d.poll(10)
        d.inject(2, [udp_frame(500 + i) for i in range(10)])
        d.poll(2)
        ports = [u.in_port for u in d.upcalls(256)]
        assert ports.count(1) == 32 and ports.count(2) == 10


def test_deleted_flow_stops_matching_and_reports_its_counters(dp2):
    key, mask = in_port_flow(1)
    dp2.flow_put(9, key, mask, odp.encode([odp.Output(2)]))
    dp2.inject(1, [udp_frame(1), udp_frame(2)])
    dp2.poll(1)
    assert len(dp2.drain(2)) == 2
    (final,) = dp2.flow_del([9])
    assert final["packets"] == 2 and final["bytes"] == 2 * 64
    assert dp2.flow_del([9]) == [None]
    dp2.inject(1, [udp_frame(1)])
    dp2.poll(1)
    assert dp2.drain(2) == [] and len(dp2.upcalls()) == 1


def test_put_create_modify_and_errors(dp2):
    key, mask = in_port_flow(1)
    dp2.flow_put(5, key, mask, odp.encode([odp.Output(2)]), create=True)
    with pytest.raises(DatapathError, match="exists"):
        dp2.flow_put(5, key, mask, b"", create=True)
    with pytest.raises(DatapathError, match="no flow"):
        dp2.flow_put(6, key, mask, b"", modify=True)
    with pytest.raises(DatapathError, match="identical flow"):
        dp2.flow_put(6, key, mask, b"")
    with pytest.raises(DatapathError, match="bad actions"):
        dp2.flow_put(7, key, field_mask("in_port", "eth_type"), b"\x63\x00\x08\x00\x00\x00\x00\x00")
    dp2.flow_put(5, key, mask, odp.encode([odp.Output(1)]), modify=True, reset_stats=True)
    assert odp.decode(dp2.flow_get(5)["actions"]) == [odp.Output(1)]
    assert [f["ufid"] for f in dp2.flow_dump()] == [5]


def test_set_actions_of_many_flows_in_one_call(dp2):
    """flow_set_actions: the flows named take the one action list (each as a modify put), a
    UFID with no flow is reported and the rest still change, bad actions change none; the
    frames follow the new actions at once (the revalidator's call for one rule's megaflows)."""
    mask = field_mask("in_port", "ipv4_src")
    to2, to1 = odp.encode([odp.Output(2)]), odp.encode([odp.Output(1)])
    assert dp2.flow_put_batch([(10 + i, parse(udp_frame(i), 1), mask, to2) for i in range(3)]) == [None] * 3
    assert dp2.flow_set_actions([10, 99, 12], to1) == [99]
    assert [odp.decode(dp2.flow_get(u)["actions"]) for u in (10, 11, 12)] == \
        [[odp.Output(1)], [odp.Output(2)], [odp.Output(1)]]
    assert dp2.flow_set_actions([11, 12], b"\x63\x00\x08\x00\x00\x00\x00\x00") == [11, 12]
    assert [odp.decode(dp2.flow_get(u)["actions"]) for u in (10, 11, 12)] == \
        [[odp.Output(1)], [odp.Output(2)], [odp.Output(1)]]
    dp2.inject(1, [udp_frame(i) for i in range(3)])
    dp2.poll(1)
    assert [parse(f, 1) for f in dp2.drain(1)] == [parse(udp_frame(i), 1) for i in (0, 2)]
    assert [parse(f, 2) for f in dp2.drain(2)] == [parse(udp_frame(1), 2)]
    assert dp2.flow_set_actions([], to1) == []


def test_flow_limit(eal):
    with Datapath("lim", n_mbufs=8192, manual_clock=True, flow_limit=3) as d:
        mask = field_mask("in_port", "ipv4_src")
        res = d.flow_put_batch([(i, parse(udp_frame(i), 1), mask, b"") for i in range(5)])
        assert res[:3] == [None] * 3 and all(r[0] == 28 for r in res[3:])
        assert d.flow_count() == 3
        d.flow_del([0])
        assert d.flow_put_batch([(9, parse(udp_frame(9), 1), mask, b"")]) == [None]


def test_megaflows_off_installs_exact_flows(dp2):
    dp2.set_megaflows(False)
    key, mask = in_port_flow(1)
    dp2.flow_put(1, key, mask, odp.encode([odp.Output(2)]))
    assert dp2.flow_get(1)["mask"] == b"".join(
        [b"\xff" * 12, b"\0" * 4, b"\xff" * 22, b"\0" * 2, b"\xff" * 58, b"\0" * 2, b"\xff" * 20])   # mpls_lse last
    dp2.inject(1, [udp_frame(1)])                 # another frame of port 1 misses now
    dp2.poll(1)
    assert dp2.drain(2) == [] and len(dp2.upcalls()) == 1
    dp2.set_megaflows(True)
    assert dp2.flow_count() == 0                  # switching flushes


def test_packet_out_of_built_bytes(dp2):
    frame = udp_frame(3)
    dp2.execute(frame, 1, odp.encode([odp.PushVlan(10), odp.Output(2), odp.PopVlan(), odp.Output(1)]))
    assert dp2.drain(2) == [frame[:12] + b"\x81\x00\x00\x0a" + frame[12:]]
    assert dp2.drain(1) == [frame]


def test_userspace_action_upcalls_a_copy_with_its_cookie(dp2):
    key, mask = in_port_flow(1)
    dp2.flow_put(1, key, mask, odp.encode([odp.Userspace(0xC0FFEE), odp.Output(2)]))
    dp2.inject(1, [udp_frame(4)])
    dp2.poll(1)
    (up,) = dp2.upcalls()
    assert (up.type, up.cookie, up.data) == ("action", 0xC0FFEE, udp_frame(4))
    assert dp2.drain(2) == [udp_frame(4)]


def test_meter_drops_over_rate(dp2):
    dp2.meter_set(7, rate=10, burst=10, pktps=True)
    key, mask = in_port_flow(1)
    dp2.flow_put(1, key, mask, odp.encode([odp.Meter(7), odp.Output(2)]))
    dp2.set_clock(1_000_000_000)
    dp2.inject(1, [udp_frame(i) for i in range(30)])
    dp2.poll(2)
    assert len(dp2.drain(2)) == 10                # the bucket holds 10
    dp2.set_clock(1_500_000_000)                  # half a second refills 5
    dp2.inject(1, [udp_frame(i) for i in range(30)])
    dp2.poll(2)
    assert len(dp2.drain(2)) == 5
    assert dp2.meter_stats(7) == (60, 45)


def test_modify_is_atomic_under_a_running_pmd(eal, worker_lcore):
    """Two action lists rewrite eth_src differently and send to different ports; a frame never
    leaves with one list's rewrite through the other's port, however often the flow changes."""
    with Datapath("atomic", n_mbufs=16384) as d:
        d.add_test_port(1, "ata")
        d.add_test_port(2, "atb")
        d.add_test_port(3, "atc")
        key, mask = in_port_flow(1)
        ones = b"\xff" * 6 + b"\0" * 6, b"\0" * 6 + b"\xff" * 6
        lists = [odp.encode([odp.SetMasked("eth", b"\0" * 6 + bytes([0xA] * 6), ones[1]), odp.Output(2)]),
                 odp.encode([odp.SetMasked("eth", b"\0" * 6 + bytes([0xB] * 6), ones[1]), odp.Output(3)])]
        d.flow_put(1, key, mask, lists[0])
        d.start_pmds([worker_lcore])
        stop = threading.Event()
        seen = {2: [], 3: []}

        def drain():
            while not stop.is_set():
                for p in (2, 3):
                    seen[p] += d.drain(p)
        frames = [udp_frame(i) for i in range(200)]
        for round_ in range(40):
            d.inject(1, frames)
            d.flow_put(1, key, mask, lists[round_ % 2], modify=True)
            time.sleep(0.002)
            seen[2] += d.drain(2)
            seen[3] += d.drain(3)
        time.sleep(0.05)
        seen[2] += d.drain(2)
        seen[3] += d.drain(3)
        d.stop_pmds()
        assert all(f[6:12] == bytes([0xA] * 6) for f in seen[2])
        assert all(f[6:12] == bytes([0xB] * 6) for f in seen[3])
        assert len(seen[2]) + len(seen[3]) == 40 * 200 and seen[2] and seen[3]


def test_thousand_flows_through_pmd_and_pcap_vdevs(eal, worker_lcore, tmp_path):
    frames = [udp_frame(i, size=64 + i % 200) for i in range(1000)]
    src, dst = tmp_path / "in.pcap", tmp_path / "out.pcap"
    write_pcap(str(src), frames)
    with Datapath("thousand", n_mbufs=16384) as d:
        d.add_port(2, f"net_pcap_k{id(d) % 997},tx_pcap={dst}")
        mask = field_mask("in_port", "eth_type", "ipv4_src")
        # One flow per source address; each rewrites eth_dst to its own value and sends to 2.
        puts = []
        for i, fr in enumerate(frames):
            mac = (0x020000000000 | i).to_bytes(6, "big")
            acts = odp.encode([odp.SetMasked("eth", mac + b"\0" * 6, b"\xff" * 6 + b"\0" * 6), odp.Output(2)])
            puts.append((1000 + i, parse(fr, 1), mask, acts))
        assert d.flow_put_batch(puts) == [None] * 1000 and d.flow_count() == 1000
        d.start_pmds([worker_lcore])
        d.add_port(1, f"net_pcap_j{id(d) % 997},rx_pcap={src}")
        st = d.pmd_stats()[0]
        deadline = time.monotonic() + 20
        while st["tx_packets"] < 1000 and time.monotonic() < deadline:
            time.sleep(0.01)
        d.stop_pmds()
        assert int(st["misses"]) == 0 and int(st["megaflow_hits"]) + int(st["emc_hits"]) == 1000
        stats = {f["ufid"]: f["packets"] for f in d.flow_dump()}
        assert all(stats[1000 + i] == 1 for i in range(1000))
        d.del_port(2)
    expect = [(0x020000000000 | i).to_bytes(6, "big") + fr[6:] for i, fr in enumerate(frames)]
    assert read_pcap(str(dst)) == expect


def _stages(d) -> dict:
    from dpdkswitch.datapath.abi import STAGES
    st = d.pmd_stats()[MANUAL_PMD]
    return {"iterations": int(st["sampled_iterations"]), "packets": int(st["sampled_packets"]),
            "cycles": int(st["sampled_cycles"]), **{s: int(c) for s, c in zip(STAGES, st["stage_cycles"])}}


def _stage_sum(s: dict) -> int:
    from dpdkswitch.datapath.abi import STAGES
    return sum(s[n] for n in STAGES)


def test_stage_cycles_are_sampled_only_when_asked(dp2):
    """Stage timing: nothing while off; when on, every Nth iteration with frames is timed, the
    stages the frames took have cycles, those they did not have none, and the stages add up to
    no more than the timed iterations' own cycles."""
    frames = [udp_frame(i) for i in range(32)]
    key, mask = in_port_flow(1)
    dp2.flow_put(1, key, mask, odp.encode([odp.Output(2)]))     # in_port alone: the cheap path
    dp2.inject(1, frames)
    dp2.poll(1)
    assert all(v == 0 for v in _stages(dp2).values())           # off: never a TSC read
    dp2.set_stage_sampling(1)
    dp2.inject(1, frames)
    dp2.poll(3)                                                 # one iteration with frames, two without
    s = _stages(dp2)
    assert (s["iterations"], s["packets"]) == (1, 32)           # idle iterations are not counted
    assert s["simple"] > 0 and s["rx"] > 0 and s["tx"] > 0
    assert s["parse"] == s["emc"] == s["masked"] == s["actions"] == 0
    assert 0 < _stage_sum(s) <= s["cycles"]
    assert len(dp2.drain(2)) == 64

    # The full path: a mask beyond L2 ends the cheap path; first misses, then classifier hits.
    dp2.flow_del([1])
    m = field_mask("in_port", "eth_type", "ipv4_src")
    dp2.flow_put_batch([(100 + i, bytes(a & b for a, b in zip(parse(f, 1), m)), m, odp.encode([odp.Output(2)]))
                        for i, f in enumerate(frames)])
    dp2.inject(1, frames)
    dp2.poll(1)
    s2 = _stages(dp2)
    assert (s2["iterations"], s2["packets"]) == (2, 64)
    for st in ("parse", "emc", "masked", "actions"):
        assert s2[st] > 0, st
    assert s2["simple"] == s["simple"]
    assert 0 < _stage_sum(s2) <= s2["cycles"]
    assert len(dp2.drain(2)) == 32

    # Every 4th iteration only; off again stops it.
    dp2.set_stage_sampling(4)
    it0 = int(dp2.pmd_stats()[MANUAL_PMD]["iterations"])
    for _ in range(8):
        dp2.inject(1, frames)
        dp2.poll(1)
    timed = sum(1 for i in range(it0, it0 + 8) if i % 4 == 0)
    assert _stages(dp2)["iterations"] == 2 + timed and _stages(dp2)["packets"] == 64 + 32 * timed
    dp2.set_stage_sampling(0)
    before = _stages(dp2)
    dp2.inject(1, frames)
    dp2.poll(4)
    assert _stages(dp2) == before
    with pytest.raises(ValueError):
        dp2.set_stage_sampling(-1)
