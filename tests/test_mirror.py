"""Mirrors (SPAN/RSPAN) through the real datapath, deterministic: ports are ring-backed test
ports, the slow path runs by hand."""
import pytest

from dpdkswitch.datapath import Datapath
from dpdkswitch.ofproto.flowstr import parse_flow
from dpdkswitch.ofproto.normal import Mirror, VlanPort
from dpdkswitch.ofproto.pipeline import FlowModError, Pipeline, PortEntry
from dpdkswitch.ofproto.xlate import Translator
from dpdkswitch.revalidator import Revalidator
from dpdkswitch.upcall import UpcallHandler

from frames import udp_frame

pytestmark = pytest.mark.dpdk

A, B, M, R = 1, 2, 3, 4


@pytest.fixture
def l2(eal):
    dp = Datapath("mirror", n_mbufs=8192, manual_clock=True, emc_insert_inv_prob=1)
    p = Pipeline(clock=lambda: dp.now_ns / 1e9)
    vlans = {A: VlanPort("access", 10), B: VlanPort("access", 10), M: VlanPort("trunk"), R: VlanPort("trunk", None,
                                                                                                    frozenset({20}))}
    for n, v in vlans.items():
        dp.add_test_port(n, f"mir{n}")
        p.set_port(PortEntry(n, f"p{n}", n, vlan=v))
    p.add(parse_flow("priority=0,actions=NORMAL"))
    x = Translator(p)
    h = UpcallHandler(dp, p, x)
    yield dp, p, h, Revalidator(dp, p, x, h)
    dp.close()


def run(dp, h, port, frames):
    dp.inject(port, frames)
    dp.poll(4)
    h.handle()
    dp.poll(4)


def tagged(frame: bytes, vid: int) -> bytes:
    return frame[:12] + b"\x81\x00" + vid.to_bytes(2, "big") + frame[12:]


def test_span_copies_every_frame_from_a_byte_exact_with_its_vlan_tag(l2):
    dp, p, h, reval = l2
    p.set_mirror(Mirror("span", src=frozenset({A}), out_port=M))
    frames = [udp_frame(i) for i in range(50)] * 2          # misses, then cached hits
    run(dp, h, A, frames[:50])
    run(dp, h, A, frames[50:])
    assert dp.drain(B) == frames                             # normal forwarding (flooded in VLAN 10)
    assert dp.drain(M) == [tagged(f, 10) for f in frames]    # the trunk mirror port gets them tagged
    assert dp.drain(R) == []
    run(dp, h, B, [udp_frame(7)])                            # B's traffic is not selected
    assert dp.drain(M) == []
    reval.run()
    assert (p.mirrors[0].packets, p.mirrors[0].bytes) == (100, 100 * 64)


def test_rspan_to_a_vlan_and_one_copy_for_two_mirrors(l2):
    dp, p, h, _ = l2
    p.set_mirror(Mirror("rspan", src=frozenset({A}), out_vlan=20))
    p.set_mirror(Mirror("again", select_all=True, vlans=frozenset({10}), out_vlan=20))   # same output
    frames = [udp_frame(i) for i in range(20)]
    run(dp, h, A, frames)
    assert dp.drain(R) == [tagged(f, 20) for f in frames]   # once each, though two mirrors select it
    # M, a trunk of every VLAN, gets VLAN 10's flooding and the VLAN 20 copies too.
    assert sorted(dp.drain(M)) == sorted([tagged(f, 20) for f in frames] + [tagged(f, 10) for f in frames])
    assert dp.drain(B) == frames


def test_dst_selection_and_mirror_port_is_never_a_source(l2):
    dp, p, h, _ = l2
    p.set_mirror(Mirror("egress", dst=frozenset({B}), out_port=M))
    run(dp, h, A, [udp_frame(1)])
    assert dp.drain(M) == [tagged(udp_frame(1), 10)] and dp.drain(B) == [udp_frame(1)]
    run(dp, h, M, [tagged(udp_frame(2), 10)])               # frames arriving on a mirror output: dropped
    assert dp.drain(A) == [] and dp.drain(B) == []


def test_at_most_32_mirrors_and_one_output_each(l2):
    _, p, _, _ = l2
    for i in range(32):
        p.set_mirror(Mirror(f"m{i}", select_all=True, out_port=M))
    with pytest.raises(FlowModError, match="32"):
        p.set_mirror(Mirror("m32", select_all=True, out_port=M))
    with pytest.raises(FlowModError, match="one output"):
        p.set_mirror(Mirror("m0", select_all=True, out_port=M, out_vlan=5))
