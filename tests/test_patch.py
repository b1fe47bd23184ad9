"""Patch ports: two bridges of one datapath, a frame crossing both in one datapath pass.

Deterministic: the bridges come from YAML (their patch ports with them), the hosts are
ring-backed test ports added to them, and the slow path runs by hand on the manual clock.
"""
import pytest

from dpdkswitch.config import ConfigError, PortConfig, loads
from dpdkswitch.datapath import odp
from dpdkswitch.ofproto.actions import OFPP_CONTROLLER, OFPP_TABLE, Output
from dpdkswitch.ofproto.fields import BY_NAME
from dpdkswitch.ofproto.flowstr import parse_flow
from dpdkswitch.ofproto.pipeline import PortEntry
from dpdkswitch.switch import Bridge, Port, Switch

from frames import udp_frame

pytestmark = pytest.mark.dpdk

IN_PORT = BY_NAME["in_port"]

TWO_BRIDGES = """\
bridges:
  br0:
    datapath: {pmd_cores: []}
    ports:
      patch0: {peer: patch1, ofport: 10%(p0)s}
%(br0)s
  br1:
    datapath: {pmd_cores: []}
    ports:
      patch1: {peer: patch0, ofport: 20%(p1)s}
%(br1)s
"""


def two_bridges(br0_flows=(), br1_flows=(), p0="", p1=""):
    flows = lambda fs: ("    flows:\n" + "".join(f"      - {f!r}\n" for f in fs)) if fs else ""
    return loads(TWO_BRIDGES % {"br0": flows(br0_flows), "br1": flows(br1_flows), "p0": p0, "p1": p1},
                 "patch.yaml")


_seq = iter(range(1, 1 << 20))


def host_port(br: Bridge, name: str, ofport: int, **vlan) -> int:
    """A ring-backed test port on BR (a host), with OpenFlow port OFPORT; its datapath port."""
    dp_port = br.backer.free_dp_port()
    br.dp.add_test_port(dp_port, f"pt{next(_seq)}")
    pc = PortConfig(name=name, device="", ofport=ofport, vlan_mode=vlan.get("vlan_mode", "trunk"),
                    tag=vlan.get("tag"), trunks=vlan.get("trunks"))
    br.ports[name] = Port(name, ofport, dp_port, pc, br.dp.port_info(dp_port))
    br.pipeline.set_port(PortEntry(ofport, name, dp_port, vlan=Bridge._vlan(pc)))
    return dp_port


@pytest.fixture
def switch(eal):
    made = []

    def make(config):
        sw = Switch(config, manual_clock=True)
        sw.start()
        made.append(sw)
        return sw
    yield make
    for sw in made:
        sw.stop()


def run(backer, port, frames):
    backer.dp.inject(port, frames)
    backer.dp.poll(4)
    backer.upcalls.handle()
    backer.dp.poll(4)
    backer.upcalls.handle()                # the userspace actions the first packets ran


def test_bridges_linked_by_patch_ports_share_one_datapath(switch):
    sw = switch(two_bridges())
    br0, br1 = sw.bridges["br0"], sw.bridges["br1"]
    assert br0.backer is br1.backer and br0.dp is br1.dp and br0.upcalls is br1.upcalls
    assert sw.backers() == [br0.backer]
    p0, p1 = br0.pipeline.ports[10], br1.pipeline.ports[20]
    assert p0.patch == (br1.pipeline, 20) and p1.patch == (br0.pipeline, 10)
    assert p0.live and p1.live and br0.port_info(br0.ports["patch0"]).link_up


def test_a_frame_crosses_both_bridges_in_one_datapath_pass(switch):
    sw = switch(two_bridges(["in_port=1,actions=output:10"],
                            ["in_port=20,actions=mod_dl_dst:02:00:00:00:00:99,output:2"]))
    br0, br1 = sw.bridges["br0"], sw.bridges["br1"]
    h1, h2 = host_port(br0, "h1", 1), host_port(br1, "h2", 2)
    br0.revalidator.run()
    frames = [udp_frame(i) for i in range(20)]
    run(br0.backer, h1, frames)
    want = [b"\x02\x00\x00\x00\x00\x99" + f[6:] for f in frames]
    assert br1.dp.drain(h2) == want
    (flow,) = br0.dp.flow_dump()                     # one megaflow for the whole path ...
    acts = odp.decode(flow["actions"])
    assert [type(a) for a in acts] == [odp.SetMasked, odp.Output] and acts[-1].port == h2   # ... straight to h2
    assert IN_PORT.from_key(flow["key"]) == h1
    run(br0.backer, h1, frames)                      # now datapath hits: no upcall
    assert br1.dp.drain(h2) == want
    assert br0.upcalls.stats.upcalls == 20
    br0.revalidator.run()                            # counters to both bridges' rules and the patch
    (r0,) = [e for e in br0.pipeline.entries() if e.priority == 32768]
    (r1,) = [e for e in br1.pipeline.entries() if e.priority == 32768]
    assert (r0.packets, r1.packets) == (40, 40)
    n = 40 * len(frames[0])
    assert br0.port_stats(br0.ports["patch0"])["tx_packets"] == 40
    assert br0.port_stats(br0.ports["patch0"])["tx_bytes"] == n
    assert br1.port_stats(br1.ports["patch1"])["rx_packets"] == 40
    # Lookups count on the input bridge alone, as Open vSwitch's dpif/show.
    assert (br0.pipeline.n_missed, br0.pipeline.n_hit) == (20, 20)
    assert (br1.pipeline.n_missed, br1.pipeline.n_hit) == (0, 0)


def test_a_flow_mod_in_the_peer_bridge_revalidates_the_megaflow(switch):
    sw = switch(two_bridges(["in_port=1,actions=output:10"], ["in_port=20,actions=output:2"]))
    br0, br1 = sw.bridges["br0"], sw.bridges["br1"]
    h1, h2, h3 = host_port(br0, "h1", 1), host_port(br1, "h2", 2), host_port(br1, "h3", 3)
    br0.revalidator.run()
    frames = [udp_frame(i) for i in range(10)]
    run(br0.backer, h1, frames)
    assert br1.dp.drain(h2) == frames
    br1.pipeline.modify(parse_flow("in_port=20,actions=output:3"))
    rep = br0.revalidator.run()
    assert rep.revalidated == 1 and rep.modified == 1
    run(br0.backer, h1, frames)
    assert br1.dp.drain(h2) == [] and br1.dp.drain(h3) == frames
    assert br0.upcalls.stats.upcalls == 10           # the megaflow changed in place


def test_normal_learns_in_each_bridge_and_vlans_hold_across(switch):
    # br0: h1 access VLAN 10, the patch a trunk; br1: the patch a trunk, h2 in 10, h3 in 20.
    sw = switch(two_bridges())
    br0, br1 = sw.bridges["br0"], sw.bridges["br1"]
    h1 = host_port(br0, "h1", 1, vlan_mode="access", tag=10)
    h2 = host_port(br1, "h2", 2, vlan_mode="access", tag=10)
    h3 = host_port(br1, "h3", 3, vlan_mode="access", tag=20)
    br0.revalidator.run()
    mac1, mac2 = 0x020000000001, 0x020000000002
    bcast = b"\xff" * 6 + mac1.to_bytes(6, "big") + udp_frame(1)[12:]
    run(br0.backer, h1, [bcast])
    assert br1.dp.drain(h2) == [bcast]               # untagged again on h2's access port
    assert br1.dp.drain(h3) == []                    # VLAN 20: not for it
    assert br0.pipeline.macs.lookup(10, mac1) == 1   # each bridge learned h1 where it came in
    assert br1.pipeline.macs.lookup(10, mac1) == 20
    reply = mac1.to_bytes(6, "big") + mac2.to_bytes(6, "big") + udp_frame(2)[12:]
    run(br0.backer, h2, [reply])
    assert br0.dp.drain(h1) == [reply]               # known unicast back across the patch
    assert br1.dp.drain(h3) == []
    assert br1.pipeline.macs.lookup(10, mac2) == 2 and br0.pipeline.macs.lookup(10, mac2) == 10


def test_a_packet_in_from_the_peer_bridge_is_that_bridges(switch):
    sw = switch(two_bridges(["in_port=1,actions=output:10"], ["in_port=20,actions=CONTROLLER:128"]))
    br0 = sw.bridges["br0"]
    h1 = host_port(br0, "h1", 1)
    br0.revalidator.run()
    got = {"br0": [], "br1": []}
    for name in got:
        br0.upcalls.packet_in_hooks[name] = got[name].append
    run(br0.backer, h1, [udp_frame(5)])
    assert got["br0"] == []
    (ev,) = got["br1"]
    assert (ev.pi.bridge, ev.in_port, ev.pi.reason, ev.data) == ("br1", 20, "action", udp_frame(5))


def test_a_loop_of_patch_ports_is_a_counted_error_and_bounded(switch):
    text = """\
bridges:
  br0:
    datapath: {pmd_cores: []}
    ports:
      pa: {peer: pb, ofport: 10}
      pc: {peer: pd, ofport: 11}
  br1:
    datapath: {pmd_cores: []}
    ports:
      pb: {peer: pa, ofport: 20}
      pd: {peer: pc, ofport: 21}
"""
    sw = switch(loads(text, "loop.yaml"))
    br0 = sw.bridges["br0"]
    h1 = host_port(br0, "h1", 1)
    br0.revalidator.run()
    frame = b"\xff" * 6 + udp_frame(1)[6:]
    run(br0.backer, h1, [frame])                                # NORMAL floods round the loop
    assert br0.upcalls.stats.errors == 1
    # As Open vSwitch: the depth limit ends the innermost lap, and its error stays in that
    # bridge; each bridge before it keeps what it did, so the flood comes back out h1 once a
    # lap: a loop of patch ports is a broadcast storm, bounded by the depth of 64.
    back = br0.dp.drain(h1)
    assert 1 <= len(back) <= 64 and set(back) == {frame}, len(back)
    assert len(br0.dp.flow_dump()) == 1


def test_an_error_in_the_peer_bridge_stays_there(switch):
    """Open vSwitch's "out bridge errors do not propagate back": a frame br0 sends to a host
    and across the patch port, where br1 runs past the depth limit (a chain of 70 goto_table),
    still reaches the host; br1's part does nothing; the error is counted and traced."""
    chain = [f"table={t},actions=goto_table:{t + 1}" for t in range(70)] + ["table=70,actions=output:2"]
    sw = switch(two_bridges(["in_port=1,actions=output:3,output:10"], chain))
    br0, br1 = sw.bridges["br0"], sw.bridges["br1"]
    h1, h3, h2 = host_port(br0, "h1", 1), host_port(br0, "h3", 3), host_port(br1, "h2", 2)
    br0.revalidator.run()
    frames = [udp_frame(i) for i in range(5)]
    run(br0.backer, h1, frames)
    assert br0.dp.drain(h3) == frames and br1.dp.drain(h2) == []
    assert br0.upcalls.stats.errors == 1
    (flow,) = br0.dp.flow_dump()
    assert [a.port for a in odp.decode(flow["actions"]) if isinstance(a, odp.Output)] == [h3]
    t = br0.backer.upcalls.xlate.translate(flow["key"], trace=True)
    assert t.error is None and len(t.peer_errors) == 1 and "depth" in t.peer_errors[0]
    assert any("error in bridge br1" in line for line in t.trace)


def test_deleting_one_end_unlinks_the_other(switch):
    sw = switch(two_bridges(["in_port=1,actions=output:10"], ["in_port=20,actions=output:2"]))
    br0, br1 = sw.bridges["br0"], sw.bridges["br1"]
    h1, h2 = host_port(br0, "h1", 1), host_port(br1, "h2", 2)
    br0.revalidator.run()
    run(br0.backer, h1, [udp_frame(1)])
    assert br1.dp.drain(h2) == [udp_frame(1)]
    br1.del_port("patch1")
    assert not br0.pipeline.ports[10].live and br0.pipeline.ports[10].patch is None
    assert not br0.port_info(br0.ports["patch0"]).link_up
    run(br0.backer, h1, [udp_frame(1)])
    assert br1.dp.drain(h2) == []


def test_bridges_without_patch_ports_keep_their_own_datapaths(eal):
    config = loads("bridges:\n"
                   "  a: {datapath: {pmd_cores: []}, ports: {p: {device: net_null_pa1, ofport: 1}}}\n"
                   "  b: {datapath: {pmd_cores: []}, ports: {p: {device: net_null_pb1, ofport: 1}}}\n")
    assert config.datapaths() == [["a"], ["b"]]
    sw = Switch(config, manual_clock=True)
    sw.start()
    try:
        assert sw.bridges["a"].dp is not sw.bridges["b"].dp and len(sw.backers()) == 2
    finally:
        sw.stop()


@pytest.mark.parametrize("text, line, msg", [
    ("  br0:\n    ports:\n      x: {peer: nothere, ofport: 1}\n", 3, "no patch port 'nothere'"),
    ("  br0:\n    ports:\n      x: {peer: y, ofport: 1}\n      y: {peer: x, ofport: 2}\n", 3,
     "in the same bridge"),
    ("  br0:\n    ports:\n      x: {peer: y, ofport: 1}\n  br1:\n    ports:\n      y: {peer: z, ofport: 1}\n"
     "      z: {device: net_null0, ofport: 2}\n", 3, "names 'z', not 'x'"),
    ("  br0:\n    ports:\n      x: {peer: y, ofport: 1, device: net_null0}\n", 3, "'device' does not apply"),
    ("  br0:\n    ports:\n      x: {ofport: 1}\n", 3, "missing required key 'device'"),
    ("  br0:\n    datapath: {flow_limit: 5}\n    ports:\n      x: {peer: y, ofport: 1}\n"
     "  br1:\n    ports:\n      y: {peer: x, ofport: 1}\n", 5, "must be the same"),
])
def test_patch_port_config_errors_name_the_line(text, line, msg):
    with pytest.raises(ConfigError) as e:
        loads("dpdk: {cores: [0, 1]}\nbridges:\n" + text, "bad.yaml")
    assert e.value.line == line + 2 and msg in str(e.value), str(e.value)


def test_linked_bridges_pool_their_pmd_cores_others_do_not():
    ok = loads("dpdk: {cores: [0, 1]}\nbridges:\n  br0:\n    ports:\n      x: {peer: y, ofport: 1}\n"
               "  br1:\n    ports:\n      y: {peer: x, ofport: 1}\n")
    assert ok.bridges["br0"].pmd_cores == ok.bridges["br1"].pmd_cores == [1]
    with pytest.raises(ConfigError, match="already used by bridge 'br0'"):
        loads("dpdk: {cores: [0, 1]}\nbridges:\n  br0:\n    ports:\n      x: {device: net_null0, ofport: 1}\n"
              "  br1:\n    ports:\n      y: {device: net_null1, ofport: 1}\n")


def test_a_packet_out_through_table_credits_the_rule_as_its_flags_say(switch):
    """A packet-out's output:TABLE hit counts through the rule's own credit: a no_packet_counts
    rule keeps its packet count at 0, counts the bytes, and was used at the packet-out."""
    sw = switch(two_bridges(["priority=5,no_packet_counts,actions=drop"]))
    br0 = sw.bridges["br0"]
    (rule,) = [e for e in br0.pipeline.entries() if e.priority == 5]
    before = rule.last_used
    br0.dp.set_clock(br0.dp.now_ns + 7 * 10**9)
    frame = udp_frame(1)
    br0.packet_out(frame, OFPP_CONTROLLER, (Output(OFPP_TABLE),))
    assert rule.packets == 0
    assert rule.bytes == len(frame)
    assert rule.last_used == br0.dp.now_ns / 1e9 > before
