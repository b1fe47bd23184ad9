"""Control protocols' frames before the OpenFlow tables (ofproto/special.py), port liveness
(ofproto/liveness.py) and the spanning tree in a bridge (stp.py through switch.Bridge).

Deterministic: no PMD thread, the manual clock, ring-backed test ports; the tests play the
control thread by hand (inject, poll, handle upcalls, tick the protocols, revalidate).
"""
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import LLC, STP, Dot3, Ether

from dpdkswitch.config import loads
from dpdkswitch.datapath import MANUAL_PMD, Datapath, odp, parse
from dpdkswitch.ofproto.actions import Output
from dpdkswitch.ofproto.fields import BY_NAME
from dpdkswitch.ofproto.flowstr import parse_flow
from dpdkswitch.ofproto.pipeline import Bucket, GroupEntry
from dpdkswitch.ofswitch.ports import PortManager
from dpdkswitch.openflow import consts as C
from dpdkswitch.switch import Switch

from frames import udp_frame
from test_fastpath import field_mask
from test_patch import host_port

pytestmark = pytest.mark.dpdk

SECOND = 1_000_000_000
BROADCAST = bytes.fromhex("ffffffffffff")


def bpdu(root_prio=0, root_mac="02:00:00:00:00:aa", cost=0, port_id=0x8001, tc=False):
    """A config BPDU from a bridge 02:00:00:00:00:aa (scapy's 802.1D codec, not ours)."""
    return bytes(Dot3(bytes(Ether(dst="01:80:c2:00:00:00", src="02:00:00:00:00:aa", type=38)
                            / LLC(dsap=0x42, ssap=0x42, ctrl=3)
                            / STP(rootid=root_prio, rootmac=root_mac, pathcost=cost, bridgeid=root_prio,
                                  bridgemac="02:00:00:00:00:aa", portid=port_id, age=0, maxage=6,
                                  hellotime=1, fwddelay=4, bpduflags=1 if tc else 0))))


def test_control_frames_have_a_reserved_ring_that_misses_cannot_fill(eal):
    with Datapath("resv", n_mbufs=8192, manual_clock=True, upcall_ring=16) as d:
        d.add_test_port(1, "rsa")
        frame = bpdu()
        mask = field_mask("in_port", "eth_dst")
        d.flow_put(1, bytes(a & b for a, b in zip(parse(frame, 1), mask)), mask,
                   odp.encode([odp.Userspace(odp.CONTROL_COOKIE | 7)]))
        d.inject(1, [udp_frame(i) for i in range(100)])      # a miss storm: the ring fills
        d.poll(10)
        d.inject(1, [frame] * 5)
        d.poll(2)
        assert int(d.pmd_stats()[MANUAL_PMD]["lost"]) == 100 - 16      # misses beyond the ring: lost
        ups = d.upcalls(256)
        assert [u.cookie for u in ups[:5]] == [odp.CONTROL_COOKIE | 7] * 5   # first, none lost
        assert all(u.type == "action" and u.data == frame for u in ups[:5])
        assert all(u.type == "miss" for u in ups[5:]) and len(ups) == 5 + 16
        for u in ups:
            u.free()


STP_BRIDGE = """\
bridges:
  br0:
    datapath: {pmd_cores: []}
    stp_enable: true
    stp_hello_time: 1
    stp_max_age: 6
    stp_forward_delay: 4
    ports:
      patch0: {peer: patch1, ofport: 10, stp_enable: false}
  br1:
    datapath: {pmd_cores: []}
    ports:
      patch1: {peer: patch0, ofport: 20}
"""


@pytest.fixture
def stp_bridge(eal):
    sw = Switch(loads(STP_BRIDGE, "stp.yaml"), manual_clock=True)
    sw.start()
    br = sw.bridges["br0"]
    ports = {n: host_port(br, f"p{n}", n) for n in (1, 2, 3)}
    for n in (1, 2, 3):
        br.join_stp(br.by_ofport(n))
    yield sw, br, ports
    sw.stop()


class Clock:
    def __init__(self, br):
        self.br, self.ns = br, br.dp.now_ns

    def run(self, seconds, step=0.1):
        for _ in range(round(seconds / step)):
            self.ns += int(step * SECOND)
            self.br.dp.set_clock(self.ns)
            self.br.run_protocols()


def cycle(br, port, frames):
    if frames:
        br.dp.inject(port, frames)
    for _ in range(2):
        br.dp.poll(4)
        br.upcalls.handle()
    br.revalidator.run()


def bpdus_out(br, port):
    return [f for f in br.dp.drain(port) if f[:6] == bytes.fromhex("0180c2000000")]


def test_stp_in_a_bridge_bpdus_in_and_out_ports_gated(stp_bridge):
    sw, br, ports = stp_bridge
    clock = Clock(br)
    clock.run(1.1)                                           # the first hello: br0 is root alone
    sent = bpdus_out(br, ports[1])
    assert sent, "no BPDU out of p1"
    got = Dot3(sent[-1])[STP]
    assert got.rootmac == got.bridgemac and got.portid == 0x8001
    # a better root behind p1 and p2 (two links to one peer bridge): p1 root, p2 blocked
    cycle(br, ports[1], [bpdu(port_id=0x8001)])
    cycle(br, ports[2], [bpdu(port_id=0x8002)])
    assert br.stp.role(1) == "root" and br.stp.role(2) == "alternate" and br.stp.role(3) == "designated"
    assert br.stp.state(2) == "blocking"
    assert br.upcalls.stats.special == 2
    # the BPDU's megaflow: userspace on the reserved ring, matching eth_dst
    specials = [f for f in br.dp.flow_dump() if odp.decode(f["actions"])
                and isinstance(odp.decode(f["actions"])[0], odp.Userspace)
                and odp.decode(f["actions"])[0].cookie & odp.CONTROL_COOKIE]
    assert specials
    t = br.xlate.translate(parse(bpdu(), ports[1]), trace=True)
    assert any("Consists of STP packets" in ln for ln in t.trace)
    assert BY_NAME["eth_dst"].from_key(t.megaflow_mask()) == (1 << 48) - 1
    # keep the peer's information fresh while p1 and p3 go listening -> learning -> forwarding
    for _ in range(9):
        clock.run(1.0)
        cycle(br, ports[1], [bpdu(port_id=0x8001)])
        cycle(br, ports[2], [bpdu(port_id=0x8002)])
    assert br.stp.state(1) == "forwarding" and br.stp.state(3) == "forwarding"
    assert br.stp.state(2) == "blocking"
    # OpenFlow port status: 1.0's STP bits, 1.3's BLOCKED
    pm = PortManager(br, lambda *a: None, lambda: None)
    v10 = {p.port_no: p.state for p in pm.desc(C.OFP10_VERSION)}
    v13 = {p.port_no: p.state for p in pm.desc(C.OFP13_VERSION)}
    assert v10[1] & 0x300 == 2 << 8 and v10[2] & 0x300 == 3 << 8 and v10[10] & 0x300 == 0
    assert not v13[1] & C.OFPPS_BLOCKED and v13[2] & C.OFPPS_BLOCKED and v13[1] & C.OFPPS_LIVE
    for p in ports.values():
        br.dp.drain(p)
    h1 = BROADCAST + bytes.fromhex("020000000101") + udp_frame(1)[12:]
    cycle(br, ports[1], [h1])
    assert br.dp.drain(ports[3]) == [h1] and br.dp.drain(ports[2]) == []   # not out of the blocked port
    h2 = BROADCAST + bytes.fromhex("020000000202") + udp_frame(2)[12:]
    cycle(br, ports[2], [h2])
    assert br.dp.drain(ports[1]) == [] and br.dp.drain(ports[3]) == []     # nothing in from it
    assert br.pipeline.macs.lookup(0, 0x020000000202) is None               # nor learned from it
    assert br.pipeline.macs.lookup(0, 0x020000000101) == 1
    t = br.xlate.translate(parse(h2, ports[2]), trace=True)
    assert t.actions == [] and any("neither forwards nor learns" in ln for ln in t.trace)


GATED_FLOWS = [
    "table=0,priority=30,udp,tp_dst=9,actions=output:controller",
    "table=0,priority=20,udp,tp_dst=8,actions=write_actions(output:3),goto_table:2",
    "table=0,priority=10,ip,actions=learn(table=1,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),"
    "dec_ttl,output:3",
    "table=2,priority=0,ip,actions=dec_ttl",
]


def ttl1(src: int, dport: int = 7) -> bytes:
    """A UDP frame with TTL 1 from SRC (a MAC as an int)."""
    mac = ":".join(f"{b:02x}" for b in src.to_bytes(6, "big"))
    return bytes(Ether(src=mac, dst="02:00:00:00:00:09") / IP(src="10.0.0.1", dst="10.0.0.2", ttl=1)
                 / UDP(sport=1000, dport=dport))


def data_out(br, port):
    return [f for f in br.dp.drain(port) if f[:6] != bytes.fromhex("0180c2000000")]


def gated_frames(br, port, got, gate):
    """What three frames with TTL 1 into PORT make: packet-ins (dec_ttl's, the controller
    action's, the action set's after dec_ttl in table 2), frames out of port 3, learned flows."""
    del got[:]
    br.revalidator.run()                          # the megaflows made in the port's last state go
    learned = len(list(br.pipeline.tables[1].entries()))
    cycle(br, port, [ttl1(0x020000000100 + port, 7), ttl1(0x020000000100 + port, 9), ttl1(0x020000000100 + port, 8)])
    cycle(br, port, [])
    return (sorted(ev.pi.reason for ev in got), len(data_out(br, gate)), len(list(br.pipeline.tables[1].entries())) - learned)


def test_a_port_that_does_not_forward_sends_no_packet_in(stp_bridge):
    """As Open vSwitch: a port that neither forwards nor learns (STP listening) has its frames
    looked up (the rule counts them) and nothing run; a learning port runs the tables for learn and
    NORMAL to see the frame, then everything after them is cancelled, packet-ins (dec_ttl's,
    output:controller) included, and the action set never runs; a packet-out from such a port
    the same.  Once forwarding, the same frames make their packet-ins."""
    from dpdkswitch.ofproto.actions import DecNwTtl

    sw, br, ports = stp_bridge
    got = []
    br.set_packet_in_hook(got.append)
    for f in GATED_FLOWS:
        br.pipeline.add(parse_flow(f))
    frame = ttl1(0x020000000101)
    learn_rule = next(e for e in br.pipeline.tables[0].entries() if e.priority == 10)
    assert br.stp.state(1) == "listening"
    assert gated_frames(br, ports[1], got, ports[3]) == ([], 0, 0)
    t = br.xlate.translate(parse(frame, ports[1]), trace=True)
    assert t.actions == [] and any("neither forwards nor learns" in ln for ln in t.trace)
    br.revalidator.run()
    assert learn_rule.packets == 1                           # looked up and counted, as Open vSwitch
    assert br.packet_out(frame, 1, [DecNwTtl(), Output(3)]).actions == []
    cycle(br, ports[1], [])
    assert got == [] and data_out(br, ports[3]) == []
    Clock(br).run(4.5)
    assert br.stp.state(1) == "learning"
    assert gated_frames(br, ports[1], got, ports[3]) == ([], 0, 1)     # learn saw it, nothing sent
    t = br.xlate.translate(parse(frame, ports[1]), trace=True)
    assert t.actions == [] and t.packet_ins == [] and any("not forwarding" in ln for ln in t.trace)
    assert br.packet_out(frame, 1, [DecNwTtl(), Output(3)]).actions == []
    cycle(br, ports[1], [])
    assert got == [] and data_out(br, ports[3]) == []
    Clock(br).run(4)
    assert br.stp.state(1) == "forwarding"
    assert gated_frames(br, ports[1], got, ports[3]) == (["action", "invalid_ttl", "invalid_ttl"], 1, 0)   # 1: the action set
    del got[:]
    br.packet_out(frame, 1, [DecNwTtl(), Output(3)])
    cycle(br, ports[1], [])
    assert [ev.pi.reason for ev in got] == ["invalid_ttl"]


def test_a_patch_port_that_does_not_forward_cancels_the_peers_packet_ins(eal):
    """The peer port of a patch port a frame crosses is gated as an input port: listening, the
    peer bridge's tables are not run; learning, their packet-ins and outputs are cancelled and
    the first bridge's own actions after the patch port still leave."""
    yaml = PATCHED.replace("actions=output:20", "actions=output:20,output:2").replace(
        "    stp_enable: true\n", "    stp_enable: true\n    stp_hello_time: 1\n    stp_max_age: 6\n    stp_forward_delay: 4\n")
    sw = Switch(loads(yaml, "patched.yaml"), manual_clock=True)
    sw.start()
    try:
        br0, br1 = sw.bridges["br0"], sw.bridges["br1"]
        h = host_port(br1, "h", 1)
        h2 = host_port(br1, "h2", 2)
        out = host_port(br0, "o", 3)
        br0.join_stp(br0.by_ofport(3))
        br0.pipeline.add(parse_flow("priority=10,ip,actions=dec_ttl,output:3"))
        got = []
        br0.set_packet_in_hook(got.append)
        frame = ttl1(0x020000000101)
        assert br0.stp.state(10) == "listening"
        t = br1.xlate.translate(parse(frame, h), trace=True)
        assert [a.port for a in t.actions] == [h2]
        assert any("neither forwards nor learns" in ln for ln in t.trace)
        Clock(br0).run(4.5)
        assert br0.stp.state(10) == "learning"
        t = br1.xlate.translate(parse(frame, h), trace=True)
        assert [a.port for a in t.actions] == [h2] and t.packet_ins == []
        cycle(br1, h, [frame])
        assert got == [] and len(data_out(br1, h2)) == 1
        Clock(br0).run(4)
        assert br0.stp.state(10) == "forwarding"
        br1.revalidator.run()
        cycle(br1, h, [frame])
        assert [ev.pi.reason for ev in got] == ["invalid_ttl"] and len(data_out(br1, h2)) == 1
        assert data_out(br0, out) == []                  # TTL 1: to the controller, not out of port 3
    finally:
        sw.stop()


def test_stp_topology_change_from_the_root_flushes_the_mac_table(stp_bridge):
    sw, br, ports = stp_bridge
    cycle(br, ports[1], [bpdu(port_id=0x8001)])
    Clock(br).run(8.5)
    cycle(br, ports[1], [bpdu(port_id=0x8001)])
    cycle(br, ports[3], [BROADCAST + bytes.fromhex("020000000303") + udp_frame(3)[12:]])
    assert br.pipeline.macs.lookup(0, 0x020000000303) == 3
    cycle(br, ports[1], [bpdu(port_id=0x8001, tc=True)])
    assert br.pipeline.macs.lookup(0, 0x020000000303) is None


def test_liveness_carrier_drives_fast_failover_and_revalidates(stp_bridge):
    sw, br, ports = stp_bridge
    p = br.pipeline
    p.group_mod("add", GroupEntry(1, "ff", [Bucket((Output(1),), watch_port=1), Bucket((Output(3),), watch_port=3)]))
    p.add(parse_flow("priority=100,in_port=2,actions=group:1"))
    br.pipeline.special.unregister("stp")
    p.ports_changed()
    frame = udp_frame(5)
    cycle(br, ports[2], [frame])
    assert len(br.dp.drain(ports[1])) == 1
    assert p.liveness.set_carrier(1, False) and not p.ports[1].live
    assert br.revalidator.run().modified == 1   # the megaflow through the group, translated again
    cycle(br, ports[2], [frame])
    assert br.dp.drain(ports[1]) == [] and len(br.dp.drain(ports[3])) == 1
    p.liveness.register("bfd", lambda ofport: False if ofport == 3 else None)
    assert p.liveness.update() and not p.ports[3].live
    p.liveness.unregister("bfd")
    assert p.liveness.set_carrier(1, True) and p.ports[1].live and p.ports[3].live is False
    p.liveness.update()
    assert p.ports[3].live


PATCHED = """\
bridges:
  br0:
    datapath: {pmd_cores: []}
    stp_enable: true
    ports:
      patch0: {peer: patch1, ofport: 10}
  br1:
    datapath: {pmd_cores: []}
    flows: ["actions=output:20"]
    ports:
      patch1: {peer: patch0, ofport: 20}
"""


def test_the_hook_runs_again_when_a_frame_crosses_a_patch_port(eal):
    sw = Switch(loads(PATCHED, "patched.yaml"), manual_clock=True)
    sw.start()
    try:
        br0, br1 = sw.bridges["br0"], sw.bridges["br1"]
        h = host_port(br1, "h", 1)
        frame = bpdu()
        t = br1.xlate.translate(parse(frame, h), trace=True)
        assert any("Consists of STP packets" in ln and "port 10" in ln for ln in t.trace)
        (act,) = t.actions
        assert isinstance(act, odp.Userspace) and act.cookie & odp.CONTROL_COOKIE
        assert br0.stp.role(10) == "designated"
        cycle(br1, h, [frame])
        # it reached br0's spanning tree through its patch port, the peer of the one it left by
        assert br0.pipeline.special.received == {"stp": 1} and br1.upcalls.stats.special == 1
        assert br0.stp.role(10) == "root"          # a better root's BPDU, on patch0
        data = udp_frame(9)                          # not a BPDU: br0's tables see it
        t = br1.xlate.translate(parse(data, h), trace=True)
        assert not any("Consists of" in ln for ln in t.trace)
    finally:
        sw.stop()


# ---- megaflow soundness with STP on (test_slowpath's property, port states drawn too) ----------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dpdkswitch.ofproto.xlate import Translator  # noqa: E402
from dpdkswitch.rstp import Rstp  # noqa: E402
from dpdkswitch.stp import STATES, Stp  # noqa: E402

from test_slowpath import PROP_OF2DP, check_megaflows, frame_and_key, make_pipeline, packets, pipelines  # noqa: E402


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=pipelines(), pkts=packets(), states=st.lists(st.sampled_from(STATES), min_size=3, max_size=3),
       bpdu_ports=st.lists(st.sampled_from([1, 2, 3]), max_size=3), rapid=st.booleans())
def test_megaflows_are_sound_with_stp(eal, spec, pkts, states, bpdu_ports, rapid):
    """With STP's or RSTP's port states (RAPID: RSTP's, where listening and blocking are
    discarding)."""
    p = make_pipeline(spec, PROP_OF2DP)
    if rapid:
        stp = Rstp("prop", 1)
        states = [{"listening": "discarding", "blocking": "discarding"}.get(s, s) for s in states]
        for of in (1, 2, 3):
            stp.add_port(of, f"p{of}", 20000, enabled=False)
        for of, state in zip((1, 2, 3), states):     # (adding a port runs the machines of all)
            stp.ports[of].state = state
    else:
        stp = Stp("prop", 1)
        for of, state in zip((1, 2, 3), states):
            stp.add_port(of, f"p{of}", 19, enabled=False)
            stp.ports[of].state = state                  # any mix of states, however reached
    p.special.register(stp)
    x = Translator(p)
    keys = [frame_and_key(q, PROP_OF2DP)[1] for q in pkts]
    # the same packets to the bridge group address (not BPDUs: Ethernet II), and real BPDUs
    keys += [bytearray(k) for k in keys]
    for k in keys[len(keys) // 2:]:
        BY_NAME["eth_dst"].to_key(k, 0x0180C2000000)
    bpdus = [parse(bpdu(port_id=0x8000 | o), PROP_OF2DP[o]) for o in bpdu_ports]
    check_megaflows(x, [bytes(k) for k in keys] + bpdus)
    for k in bpdus:                                  # every BPDU goes to STP, whatever the rules
        (act,) = x.translate(k).actions
        assert isinstance(act, odp.Userspace) and act.cookie & odp.CONTROL_COOKIE
    for k in keys[:len(keys) // 2]:                  # a port that does not forward sends nothing on
        q = p.ports[next(o for o, d in PROP_OF2DP.items() if d == BY_NAME["in_port"].from_key(k))].ofport
        if states[q - 1] not in ("disabled", "forwarding"):
            assert x.translate(bytes(k)).actions == []


def test_a_bfd_session_going_down_fails_a_fast_failover_group_over(eal):
    """BFD feeds liveness: the group's first bucket watches a port whose session the test's own
    peer session (bfd.py, as the far end of the link) brings up and then lets expire."""
    import random

    from dpdkswitch import bfd as B
    from dpdkswitch.config import BfdConfig, PortConfig
    from dpdkswitch.switch import Port

    sw = Switch(loads(STP_BRIDGE.replace("    stp_enable: true\n", ""), "bfd.yaml"), manual_clock=True)
    sw.start()
    try:
        br = sw.bridges["br0"]
        ports = {n: host_port(br, f"p{n}", n) for n in (1, 2, 3)}
        pc = PortConfig(name="p1", device="", ofport=1, bfd=BfdConfig(enable=True, min_rx=100, min_tx=100))
        br.ports["p1"] = Port("p1", 1, ports[1], pc, br.dp.port_info(ports[1]))
        br.join_bfd(br.ports["p1"])
        p = br.pipeline
        p.group_mod("add", GroupEntry(1, "ff", [Bucket((Output(1),), watch_port=1), Bucket((Output(3),), watch_port=3)]))
        p.add(parse_flow("priority=100,udp,in_port=2,actions=group:1"))
        assert not p.ports[1].live                    # a session not up: the port may not be enabled
        clock = Clock(br)
        peer = B.BfdSession("peer", B.BfdSettings(min_rx=100, min_tx=100), b"\x02\x00\x00\x00\x00\x99",
                            lambda f: br.dp.inject(ports[1], [f]), br.dp.now_ns / 1e9, random.Random(7))

        def step(seconds, peer_alive=True):
            for _ in range(round(seconds / 0.01)):
                clock.run(0.01, step=0.01)
                if peer_alive:
                    peer.run(clock.ns / 1e9)
                cycle(br, ports[1], [])
                for f in br.dp.drain(ports[1]):
                    if f[12:14] == b"\x08\x00" and f[23] == 17 and f[36:38] == b"\x0e\xc8":
                        peer.receive(f, clock.ns / 1e9)
                    elif peer_alive is None:
                        step.data.append(f)
        step.data = []
        step(3)
        assert br.bfd.sessions[1].state == B.UP and peer.state == B.UP
        assert p.ports[1].live
        frame = udp_frame(5)
        cycle(br, ports[2], [frame])
        assert br.dp.drain(ports[3]) == []
        step(0.05, peer_alive=None)
        assert frame in step.data                     # out of port 1, the live bucket
        step(0.5, peer_alive=False)                   # the peer goes silent: detection time 300 ms
        assert br.bfd.sessions[1].state == B.DOWN and not p.ports[1].live
        br.revalidator.run()
        cycle(br, ports[2], [frame])
        assert br.dp.drain(ports[3]) == [frame]       # the group's next bucket
    finally:
        sw.stop()


def test_control_frames_are_taken_alone_before_the_protocols_timers(eal):
    """``Switch.run_protocols_due`` (dpdkswitch run, between upcall batches) first hands the
    frames waiting on the reserved ring to their protocols, leaving the misses queued: a BPDU
    that came in time is in before STP's timers run."""
    import time

    sw = Switch(loads(STP_BRIDGE, "stp.yaml"), manual_clock=True)
    sw.start()
    try:
        br = sw.bridges["br0"]
        p1 = host_port(br, "p1", 1)
        br.join_stp(br.by_ofport(1))
        cycle(br, p1, [bpdu(port_id=0x8001)])                # its megaflow: userspace on the reserved ring
        assert br.upcalls.stats.special == 1
        br.dp.inject(p1, [udp_frame(i) for i in range(5)] + [bpdu(port_id=0x8001)])
        br.dp.poll(4)
        br.next_protocol_run = 0.0
        sw.run_protocols_due(time.monotonic())
        assert br.upcalls.stats.special == 2                 # the BPDU, taken alone ...
        assert len(br.dp.upcalls(64)) == 5                   # ... the misses still wait
    finally:
        sw.stop()
