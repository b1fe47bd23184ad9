"""The datapath in deterministic mode: test ports, the static map, counters, errors, mbufs."""
import pytest

from dpdkswitch.datapath import MANUAL_PMD, Datapath, DatapathError, Eal

from frames import udp_frame

pytestmark = pytest.mark.dpdk


def test_frames_cross_the_map_byte_exact(dp):
    base = dp.mbufs_in_use()
    dp.add_test_port(1, "dta")
    dp.add_test_port(2, "dtb")
    dp.set_forward(1, [2])
    frames = [udp_frame(i, size=64 + i) for i in range(200)]
    assert dp.inject(1, frames) == 200
    assert dp.drain(2) == []                   # nothing moves until polled
    assert dp.poll(20) == 200
    assert dp.drain(2) == frames
    assert dp.drain(1) == []
    st = dp.pmd_stats()[MANUAL_PMD]
    assert (st["rx_packets"], st["tx_packets"], st["iterations"]) == (200, 200, 20)
    assert dp.port_stats(2)["tx_packets"] == 200
    dp.del_port(1)
    dp.del_port(2)
    assert dp.mbufs_in_use() == base


def test_flood_copies_to_every_output_and_frees_once(dp):
    for n in (1, 2, 3, 4):
        dp.add_test_port(n, f"fl{n}")
    in_use = dp.mbufs_in_use()
    dp.set_forward(1, [2, 3, 4])
    frames = [udp_frame(i) for i in range(100)]
    dp.inject(1, frames)
    dp.poll(10)
    for n in (2, 3, 4):
        assert dp.drain(n) == frames
    assert dp.mbufs_in_use() == in_use


def test_drop_frees_and_unmatched_frames_go_up_by_reference(dp):
    dp.add_test_port(1, "dr1")
    dp.add_test_port(2, "dr2")
    in_use = dp.mbufs_in_use()
    dp.set_forward(1, [])                       # a flow that drops
    dp.inject(1, [udp_frame(i) for i in range(50)])
    dp.poll(5)
    assert dp.mbufs_in_use() == in_use
    frames = [udp_frame(i) for i in range(20)]
    dp.inject(2, frames)                        # no flow for port 2: misses
    dp.poll(5)
    ups = dp.upcalls()
    assert [u.data for u in ups] == frames and {u.in_port for u in ups} == {2}
    assert dp.mbufs_in_use() == in_use + 20     # held by reference, not copied
    for u in ups:
        u.free()
    with pytest.raises(DatapathError, match="already"):
        ups[0].free()                           # exactly once
    assert dp.mbufs_in_use() == in_use


def test_an_upcall_reports_its_frame_and_key_and_keeps_a_frame_read_or_freed(dp):
    """Upcalls are read from C in one unpack and copy their frame out lazily: a frame read before
    execute, or one freed, stays readable; an executed frame never read is gone, said clearly."""
    from dpdkswitch.datapath import odp, parse
    dp.add_test_port(1, "lz1")
    dp.add_test_port(2, "lz2")
    frames = [udp_frame(i, size=64 + i) for i in range(3)]
    dp.inject(1, frames)
    dp.poll(2)
    a, b, c = dp.upcalls()
    assert [u.len for u in (a, b, c)] == [len(f) for f in frames]
    assert [u.key for u in (a, b, c)] == [parse(f, 1) for f in frames]
    assert (a.type, a.in_port, a.cookie) == ("miss", 1, 0)
    out = odp.encode([odp.Output(2)])
    assert a.data == frames[0]
    a.execute(out)
    assert a.data == frames[0]                  # read before: kept
    b.free()
    assert b.data == frames[1]                  # freed: copied out first, for whoever holds it
    c.execute(out)
    with pytest.raises(DatapathError, match="executed before its frame was read"):
        c.data
    assert dp.drain(2) == [frames[0], frames[2]]


def test_removed_output_port_is_never_used(dp):
    dp.add_test_port(1, "ro1")
    dp.add_test_port(2, "ro2")
    dp.add_test_port(3, "ro3")
    dp.set_forward(1, [2, 3])
    dp.del_port(3)
    dp.inject(1, [udp_frame(0)])
    dp.poll(1)
    assert dp.drain(2) == [udp_frame(0)]
    assert dp.ports() == [1, 2]


def test_manual_clock(dp):
    dp.set_clock(5_000_000_000)
    assert dp.now_ns == 5_000_000_000


def test_errors_are_clear(dp):
    with pytest.raises(DatapathError, match="nosuch"):
        dp.add_port(5, "net_nosuch0")
    dp.add_test_port(1, "er1")
    with pytest.raises(DatapathError, match="taken"):
        dp.add_test_port(1, "er2")
    with pytest.raises(DatapathError, match="no port 9"):
        dp.del_port(9)
    with pytest.raises(DatapathError, match="ports go up to 255"):
        dp.set_forward(1, [300])
    with pytest.raises(DatapathError, match="main lcore"):
        dp.start_pmds([Eal.lcores()[0]])
    with pytest.raises(DatapathError, match="rx queues"):
        dp.add_port(6, "net_null_q,no-rx=1", n_rxq=4096)
    assert dp.ports() == [1]                 # failed adds leave nothing behind


def test_vdevs_probe_and_report(dp, tmp_path):
    info = dp.add_port(3, "net_null_rep,no-rx=1", n_rxq=2, rxd=512, txd=512)
    assert (info.driver, info.n_rxq, info.n_rxd) == ("net_null", 2, 512)
    xs = dp.port_xstats(3)
    assert "rx_good_packets" in xs and "tx_good_packets" in xs
    with pytest.raises(DatapathError, match="in use"):
        dp.add_port(4, "net_null_rep")
    dp.del_port(3)
    dp.add_port(3, "net_null_rep")          # the name is free again once unplugged


def test_eal_starts_once(eal):
    with pytest.raises(DatapathError, match="once"):
        Eal.start(["dpdkswitch", "--no-huge"])


def test_datapath_after_close_is_refused_cleanly(eal):
    d = Datapath("closing", manual_clock=True)
    d.add_test_port(1, "cl1")
    d.close()
    assert d.closed
    with pytest.raises(DatapathError, match="closed"):
        d.add_test_port(2, "cl2")
    with pytest.raises(DatapathError, match="closed"):
        d.poll()
    d.close()                                # twice is harmless


def test_memory_accounting_follows_the_flows(dp):
    from dpdkswitch.datapath import odp
    from dpdkswitch.flowkey import KEY_SIZE
    m0 = dp.mem_stats()
    assert m0["n_flows"] == 0 and m0["flow_limit"] == 200000
    assert 0 < m0["heap_allocated"] <= m0["heap_total"]
    # A slot, its free-list entry, and the deterministic poller's counters of it, at least.
    assert m0["flow_slot_bytes"] >= KEY_SIZE + 16 + 4 + 32
    mask = b"\xff" * KEY_SIZE
    acts = odp.encode([odp.Output(2)])
    dp.flow_put_batch([(i + 1, i.to_bytes(4, "little") + bytes(KEY_SIZE - 4), mask, acts) for i in range(2000)])
    m1 = dp.mem_stats()
    assert m1["n_flows"] == 2000
    grown = m1["heap_allocated"] - m0["heap_allocated"]
    assert 2000 * len(acts) < grown < 2000 * 4096          # an action list each, the subtable's share
    dp.flow_flush()
    assert dp.mem_stats()["heap_allocated"] < m1["heap_allocated"]


def test_stats_changed_reports_active_and_idle_flows_only(dp):
    """The revalidator's incremental stats: a flow comes up when its counters moved since it last
    came up, or when it has been idle since before the given time; otherwise it stays in C."""
    from dpdkswitch.datapath import odp, parse
    from dpdkswitch.flowkey import KEY_SIZE
    dp.add_test_port(1, "sca")
    dp.add_test_port(2, "scb")
    frames = [udp_frame(i) for i in range(3)]
    acts = odp.encode([odp.Output(2)])
    dp.set_clock(1_000)
    dp.flow_put_batch([(100 + i, parse(f, 1), b"\xff" * KEY_SIZE, acts) for i, f in enumerate(frames)])
    assert dp.flow_stats_changed() == []                   # no traffic yet, nothing idle asked
    dp.set_clock(5_000)
    dp.inject(1, [frames[1], frames[1]])
    dp.poll(4)
    (got,) = dp.flow_stats_changed()
    assert got[:4] == (101, 2, 2 * len(frames[1]), 5_000) and got[4] == 1_000
    assert dp.flow_stats_changed() == []                   # reported once
    # Idle since before 3000: the two never hit (created at 1000); 101 was used at 5000.
    assert sorted(u for u, *_ in dp.flow_stats_changed(3_000)) == [100, 102]
    assert sorted(u for u, *_ in dp.flow_stats_changed(6_000)) == [100, 101, 102]
    dp.flow_flush()
    assert dp.flow_stats_changed(10**9) == []
