"""PMD threads on real vdevs: pcap in -> static map -> pcap out, hot-plug under traffic."""
import time

import pytest

from dpdkswitch.datapath import Datapath

from frames import read_pcap, udp_frame, write_pcap

pytestmark = pytest.mark.dpdk


def wait_for(cond, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def pmd_dp(eal, worker_lcore):
    d = Datapath("pmdtest", n_mbufs=16384)
    yield d
    d.close()


def test_pcap_through_pmd_is_byte_exact(pmd_dp, worker_lcore, tmp_path):
    frames = [udp_frame(i, size=60 + (i * 37) % 1400) for i in range(3000)]
    src, dst = tmp_path / "in.pcap", tmp_path / "out.pcap"
    write_pcap(str(src), frames)
    pmd_dp.start_pmds([worker_lcore])
    pmd_dp.add_port(2, f"net_pcap_o{id(src) % 1000},tx_pcap={dst}")
    pmd_dp.set_forward(1, [2])
    pmd_dp.add_port(1, f"net_pcap_i{id(src) % 1000},rx_pcap={src}")
    stats = pmd_dp.pmd_stats()[0]
    wait_for(lambda: stats["tx_packets"] >= len(frames), what="all frames forwarded")
    assert stats["rx_packets"] == len(frames) and stats["tx_dropped"] == 0
    assert pmd_dp.rxq_assignment() == [(1, 0, worker_lcore), (2, 0, worker_lcore)]
    pmd_dp.stop_pmds()
    pmd_dp.del_port(2)                     # closing the device flushes its pcap
    assert read_pcap(str(dst)) == frames


def test_hotplug_under_traffic_leaks_no_mbuf(pmd_dp, worker_lcore, tmp_path):
    base = pmd_dp.mbufs_in_use()
    write_pcap(str(tmp_path / "loop.pcap"), [udp_frame(i) for i in range(64)])
    pmd_dp.start_pmds([worker_lcore])
    pmd_dp.add_port(2, "net_null_sink,no-rx=1")
    pmd_dp.add_port(1, f"net_pcap_loop,rx_pcap={tmp_path / 'loop.pcap'},infinite_rx=1")
    stats = pmd_dp.pmd_stats()[0]
    for round_ in range(15):
        # A port that receives flooded frames and sends its own, added and removed mid-stream.
        pmd_dp.add_test_port(3, f"hp{round_}")
        pmd_dp.set_forward(1, [2, 3])
        pmd_dp.set_forward(3, [2])
        pmd_dp.inject(3, [udp_frame(i) for i in range(100)])
        before = int(stats["rx_packets"])
        wait_for(lambda: stats["rx_packets"] > before + 1000, what="traffic while port 3 exists")
        pmd_dp.del_port(3)
        after = int(stats["tx_packets"])
        wait_for(lambda: stats["tx_packets"] > after + 1000, what="traffic after port 3 left")
    assert pmd_dp.port_stats(2)["tx_packets"] > 0
    pmd_dp.del_port(1)                     # the polled rx port itself, under the PMD
    pmd_dp.del_port(2)
    pmd_dp.stop_pmds()
    while ups := pmd_dp.upcalls():         # misses (frames before the flows) wait by reference
        for u in ups:
            u.free()
    assert pmd_dp.mbufs_in_use() == base


def test_rx_queues_round_robin_and_pins(eal, tmp_path):
    lcores = eal.lcores()
    if len(lcores) < 2:
        pytest.skip("needs a worker lcore")
    with Datapath("rr", n_mbufs=8192) as d:
        d.add_port(1, "net_null_rr,no-rx=1", n_rxq=3)
        assert {lc for _, _, lc in d.rxq_assignment()} == {None}      # deterministic mode
        d.start_pmds([lcores[1]])
        assert d.rxq_assignment() == [(1, q, lcores[1]) for q in range(3)]
        assert d.pmd_stats()[0]["n_rxq"] == 3
        d.pin_rxqs([(1, 2, lcores[1])])
        assert (1, 2, lcores[1]) in d.rxq_assignment()
        d.stop_pmds()
        assert d.pmd_stats()[0]["active"] == 0
