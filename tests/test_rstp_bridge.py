"""RSTP in a bridge on the datapath (rstp.py through switch.Bridge): RST BPDUs caught by the
hook before the tables and answered out of real (ring-backed) datapath ports, the port roles'
states gating forwarding and learning, OpenFlow port status bits, a topology change flushing
what other ports learned.  Deterministic: the manual clock; the test plays the control thread.
"""
import pytest
from scapy.layers.l2 import LLC, STP, Dot3

from dpdkswitch.config import loads
from dpdkswitch.datapath import parse
from dpdkswitch.ofswitch.ports import PortManager
from dpdkswitch.openflow import consts as C
from dpdkswitch.rstp import F_AGREEMENT, F_FORWARDING, F_LEARNING, F_PROPOSAL, F_TC
from dpdkswitch.switch import Switch

from frames import udp_frame
from test_patch import host_port
from test_special import BROADCAST, Clock, bpdus_out, cycle

pytestmark = pytest.mark.dpdk

RSTP_BRIDGE = """\
bridges:
  br0:
    datapath: {pmd_cores: []}
    rstp_enable: true
    stp_enable: true
    ports:
      patch0: {peer: patch1, ofport: 10, rstp_enable: false}
  br1:
    datapath: {pmd_cores: []}
    ports:
      patch1: {peer: patch0, ofport: 20}
"""
DESIGNATED = 3 << 2


def rst_bpdu(port_id=0x8001, flags=DESIGNATED | F_PROPOSAL, prio=0, mac="02:00:00:00:00:aa"):
    """An RST BPDU from root bridge PRIO.MAC (scapy's codec, plus the version 1 length byte
    it lacks)."""
    stp = (LLC(dsap=0x42, ssap=0x42, ctrl=3)
           / STP(version=2, bpdutype=2, bpduflags=flags, rootid=prio, rootmac=mac, pathcost=0,
                 bridgeid=prio, bridgemac=mac, portid=port_id, age=0, maxage=20, hellotime=2,
                 fwddelay=15))
    payload = bytes(stp) + b"\x00"
    return (bytes.fromhex("0180c2000000") + bytes.fromhex("0200000000aa") + len(payload).to_bytes(2, "big")
            + payload)


@pytest.fixture
def rstp_bridge(eal):
    sw = Switch(loads(RSTP_BRIDGE, "rstp.yaml"), manual_clock=True)
    sw.start()
    br = sw.bridges["br0"]
    ports = {n: host_port(br, f"p{n}", n) for n in (1, 2, 3)}
    for n in (1, 2, 3):
        br.join_rstp(br.by_ofport(n))
    yield sw, br, ports
    sw.stop()


def test_rstp_replaces_stp_agrees_gates_and_sets_port_status(rstp_bridge):
    sw, br, ports = rstp_bridge
    assert br.stp is None and br.rstp is not None               # both set: RSTP wins
    assert 10 not in br.rstp.ports                              # rstp_enable: false on the patch port
    clock = Clock(br)
    clock.run(0.2)
    cycle(br, ports[1], [rst_bpdu(0x8001)])                     # a better root proposes on p1 ...
    cycle(br, ports[2], [rst_bpdu(0x8002)])                     # ... and is heard on p2 too
    assert (br.rstp.role(1), br.rstp.state(1)) == ("root", "forwarding")
    assert (br.rstp.role(2), br.rstp.state(2)) == ("alternate", "discarding")
    replies = [Dot3(f)[STP] for f in bpdus_out(br, ports[1])]
    assert replies and replies[-1].version == 2 and replies[-1].bpdutype == 2
    assert any(r.bpduflags & F_AGREEMENT for r in replies)      # we agreed: no forward delay
    assert replies[-1].rootmac == "02:00:00:00:00:aa" and replies[-1].pathcost == 2000
    assert br.upcalls.stats.special == 2
    clock.run(4)                                                # p3 hears nothing: edge after 3 s
    cycle(br, ports[1], [rst_bpdu(0x8001, DESIGNATED | F_LEARNING | F_FORWARDING)])
    assert br.rstp.state(3) == "forwarding" and br.rstp.ports[3].oper_edge
    # OpenFlow port status, as Open vSwitch sets RSTP's: discarding shows as STP listen
    pm = PortManager(br, lambda *a: None, lambda: None)
    v10 = {p.port_no: p.state for p in pm.desc(C.OFP10_VERSION)}
    v13 = {p.port_no: p.state for p in pm.desc(C.OFP13_VERSION)}
    assert v10[1] & 0x300 == 2 << 8 and v10[2] & 0x300 == 0 << 8 and v10[3] & 0x300 == 2 << 8
    assert not v13[1] & C.OFPPS_BLOCKED and v13[2] & C.OFPPS_BLOCKED
    # the discarding port neither forwards nor learns
    for p in ports.values():
        br.dp.drain(p)
    h1 = BROADCAST + bytes.fromhex("020000000101") + udp_frame(1)[12:]
    cycle(br, ports[1], [h1])
    assert br.dp.drain(ports[3]) == [h1] and br.dp.drain(ports[2]) == []
    h2 = BROADCAST + bytes.fromhex("020000000202") + udp_frame(2)[12:]
    cycle(br, ports[2], [h2])
    assert br.dp.drain(ports[1]) == [] and br.dp.drain(ports[3]) == []
    assert br.pipeline.macs.lookup(0, 0x020000000202) is None
    t = br.xlate.translate(parse(h2, ports[2]), trace=True)
    assert t.actions == [] and any("neither forwards nor learns" in ln for ln in t.trace)
    assert "Consists of STP packets" in "\n".join(br.xlate.translate(parse(rst_bpdu(), ports[1]), trace=True).trace)
    # a topology change from the root (TC on p1) keeps what the edge port p3 learned (hosts
    # do not move) ...
    host3 = BROADCAST + bytes.fromhex("020000000303") + udp_frame(3)[12:]
    tc = rst_bpdu(0x8001, DESIGNATED | F_LEARNING | F_FORWARDING | F_TC)
    cycle(br, ports[3], [host3])
    cycle(br, ports[1], [tc])
    assert br.pipeline.macs.lookup(0, 0x020000000303) == 3
    # ... and once p3 heard a (worse) bridge, it is no edge (a topology change of its own,
    # flushing p1): the next TC from the root flushes p3, not p1
    cycle(br, ports[3], [rst_bpdu(0x8001, DESIGNATED, prio=0xF000, mac="02:00:00:00:00:cc")])
    assert not br.rstp.ports[3].oper_edge and br.rstp.state(3) == "forwarding"
    cycle(br, ports[3], [host3])
    cycle(br, ports[1], [h1])
    assert br.pipeline.macs.lookup(0, 0x020000000303) == 3
    cycle(br, ports[1], [tc])
    assert br.pipeline.macs.lookup(0, 0x020000000303) is None
    assert br.pipeline.macs.lookup(0, 0x020000000101) == 1
    # the root's BPDUs stop on p1 and go on on p2: p1's information ages out after 3 hellos,
    # p2 is the root port, and what p1 learned (upstream) moves to it rather than being flushed
    for _ in range(8):
        clock.run(1)
        cycle(br, ports[2], [rst_bpdu(0x8002, DESIGNATED | F_LEARNING | F_FORWARDING)])
    assert (br.rstp.role(2), br.rstp.state(2)) == ("root", "forwarding"), br.rstp.show()
    assert br.rstp.role(1) == "designated"
    assert br.pipeline.macs.lookup(0, 0x020000000101) == 2
    # and when they stop on p2 too, we are the root
    clock.run(7)
    assert br.rstp.is_root(), br.rstp.show()


def test_rstp_show_and_tcn_commands(rstp_bridge):
    from dpdkswitch.control import CommandError, Commands
    from dpdkswitch.control import rstp as rstp_cmds
    sw, br, ports = rstp_bridge
    cmds = Commands()
    rstp_cmds.register(cmds, sw)
    cycle(br, ports[1], [rst_bpdu(0x8001)])
    out = cmds.run("rstp/show", ["br0"])
    assert out.startswith("---- br0 ----\nRoot ID:\n  stp-priority    0\n  stp-system-id   02:00:00:00:00:aa\n")
    assert "  root-port       p1\n" in out and "  p1         Root       Forwarding 2000     128.1\n" in out
    assert cmds.run("rstp/show", []) == out
    with pytest.raises(CommandError, match="br1: no such RSTP object"):
        cmds.run("rstp/show", ["br1"])
    # rstp/tcn: TC in the next BPDU out of the root port, and p1's learned addresses flushed
    cycle(br, ports[1], [BROADCAST + bytes.fromhex("020000000101") + udp_frame(1)[12:]])
    assert br.pipeline.macs.lookup(0, 0x020000000101) == 1
    bpdus_out(br, ports[1])
    assert cmds.run("rstp/tcn", ["br0"]) == "OK"
    assert br.pipeline.macs.lookup(0, 0x020000000101) is None
    assert any(Dot3(f)[STP].bpduflags & F_TC for f in bpdus_out(br, ports[1]))



def test_a_discarding_or_learning_port_sends_no_packet_in(eal):
    """RSTP's gates as STP's (test_special): discarding, the frames are looked up and nothing run;
    learning, learn sees them and what the tables would send is cancelled, packet-ins included
    (dec_ttl's, output:controller's); forwarding, the packet-ins come."""
    from dpdkswitch.ofproto.flowstr import parse_flow

    from test_special import GATED_FLOWS, gated_frames

    sw = Switch(loads(RSTP_BRIDGE.replace("    rstp_enable: true\n", "    rstp_enable: true\n    rstp_hello_time: 1\n"
                                          "    rstp_max_age: 6\n    rstp_forward_delay: 4\n"), "rstp.yaml"),
                manual_clock=True)
    sw.start()
    try:
        br = sw.bridges["br0"]
        ports = {n: host_port(br, f"p{n}", n) for n in (1, 3)}
        for n in (1, 3):
            br.join_rstp(br.by_ofport(n))
        br.rstp.set_edge(1, False, False)                # no edge: p1 waits for its timers
        got = []
        br.set_packet_in_hook(got.append)
        for f in GATED_FLOWS:
            br.pipeline.add(parse_flow(f))
        clock = Clock(br)
        clock.run(0.5)
        assert (br.rstp.role(1), br.rstp.state(1)) == ("designated", "discarding")
        assert gated_frames(br, ports[1], got, ports[3]) == ([], 0, 0)
        for _ in range(100):
            clock.run(0.1)
            if br.rstp.state(1) != "discarding":
                break
        assert br.rstp.state(1) == "learning"
        assert gated_frames(br, ports[1], got, ports[3]) == ([], 0, 1)
        for _ in range(100):
            clock.run(0.1)
            if br.rstp.state(1) != "learning":
                break
        assert br.rstp.state(1) == "forwarding"
        assert gated_frames(br, ports[1], got, ports[3]) == (["action", "invalid_ttl", "invalid_ttl"], 1, 0)
    finally:
        sw.stop()
