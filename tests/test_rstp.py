"""Rapid spanning tree (rstp.py) on the manual clock: bridges of Rstp objects (and, for
migration, stp.py's 802.1D Stp) linked by simulated LANs, as Open vSwitch's test-rstp
simulator links them, with no datapath.  Time is passed in; nothing waits.  BPDUs are read
with scapy's independent 802.1D codec.  Then RSTP in a bridge: BPDUs in and out of real
(ring) datapath ports, the port gates, OpenFlow port status, the config keys.
"""
import pytest
from scapy.layers.l2 import LLC, STP, Dot3, Ether

from dpdkswitch import rstp as R
from dpdkswitch import stp as S
from dpdkswitch.config import ConfigError, loads


class Net:
    """Bridges and LANs; a frame sent on a port reaches every other port of its LAN."""

    def __init__(self):
        self.bridges = {}
        self.lan_of, self.lans = {}, {}
        self.queue, self.sent = [], []
        self.now = 0.0
        self.flushed: dict[str, list[int]] = {}

    def _send(self, name, ofport, frame):
        self.sent.append((name, ofport, frame))
        lan = self.lan_of.get((name, ofport))
        for peer in self.lans.get(lan, ()):
            if peer != (name, ofport):
                self.queue.append((peer[0], peer[1], frame))

    def rstp(self, name, mac, priority=32768, **kw):
        self.flushed[name] = []
        b = R.Rstp(name, mac, priority, send=lambda o, f, n=name: self._send(n, o, f),
                   on_flush=lambda o, n=name: self.flushed[n].append(o), now=self.now, **kw)
        self.bridges[name] = b
        return b

    def stp(self, name, mac, priority=32768, **kw):
        b = S.Stp(name, mac, priority, send=lambda o, f, n=name: self._send(n, o, f), now=self.now, **kw)
        self.bridges[name] = b
        return b

    def link(self, lan, *ends, cost=20000):
        self.lans[lan] = list(ends)
        for br, ofport in ends:
            self.lan_of[br, ofport] = lan
            b = self.bridges[br]
            if ofport not in b.ports:
                b.add_port(ofport, f"{br}p{ofport}", cost)
        self.deliver()

    def unlink(self, lan):
        for br, ofport in self.lans.pop(lan):
            del self.lan_of[br, ofport]
            self.bridges[br].disable_port(ofport)
        self.deliver()

    def deliver(self):
        for _ in range(10000):
            if not self.queue:
                return
            br, ofport, frame = self.queue.pop(0)
            self.bridges[br].receive(ofport, frame, self.now)
        raise AssertionError("BPDUs keep coming: a storm of them")

    def run(self, seconds, step=0.25):
        end = self.now + seconds
        self.deliver()
        while self.now < end - 1e-9:
            self.now = round(self.now + step, 6)
            for b in self.bridges.values():
                b.tick(self.now)
            self.deliver()

    def ports(self, br):
        b = self.bridges[br]
        return {o: (b.role(o), b.state(o)) for o in b.ports}

    def bpdus(self, br, ofport):
        return [Dot3(f)[STP] for n, o, f in self.sent if (n, o) == (br, ofport) and f[20] != 0x80]


def two_links():
    net = Net()
    net.rstp("a", 0x020000000001, 4096)
    net.rstp("b", 0x020000000002)
    net.link("l1", ("a", 1), ("b", 1))
    net.link("l2", ("a", 2), ("b", 2))
    return net


def test_a_loop_of_two_links_converges_by_proposal_and_agreement_not_timers():
    net = two_links()                               # no time has passed: handshakes only
    assert net.ports("a") == {1: ("designated", "forwarding"), 2: ("designated", "forwarding")}
    assert net.ports("b") == {1: ("root", "forwarding"), 2: ("alternate", "discarding")}
    assert net.bridges["a"].is_root() and net.bridges["b"].root_priority.cost == 20000
    sent = net.bpdus("a", 1)
    assert sent[0].version == 2 and sent[0].bpdutype == 2          # RST BPDUs
    assert any(b.bpduflags & R.F_PROPOSAL for b in sent)               # a proposed ...
    assert any(b.bpduflags & R.F_AGREEMENT for b in net.bpdus("b", 1))  # ... b agreed
    net.run(60)
    assert net.ports("b") == {1: ("root", "forwarding"), 2: ("alternate", "discarding")}


def test_losing_the_root_port_moves_to_the_alternate_at_once():
    net = two_links()
    net.run(5)
    net.unlink("l1")
    assert net.ports("b") == {1: ("disabled", "disabled"), 2: ("root", "forwarding")}
    assert net.ports("a")[2] == ("designated", "forwarding")


def test_a_silent_root_link_fails_over_within_three_hellos():
    net = two_links()
    net.run(5)
    net.lans["l1"] = []                             # l1 carries nothing, carriers stay up
    net.run(3 * 2 + 1)
    assert net.ports("b")[2] == ("root", "forwarding")
    assert net.ports("b")[1][0] == "designated"


def test_a_port_with_no_peer_becomes_edge_and_forwards_after_the_edge_delay():
    net = Net()
    b = net.rstp("a", 0x020000000001)
    b.add_port(1, "auto", 20000)
    b.add_port(2, "admin", 20000, admin_edge=True)
    b.add_port(3, "neither", 20000, auto_edge=False)
    assert b.state(2) == "forwarding" and b.ports[2].oper_edge           # admin edge: at once
    assert b.state(1) == "discarding"
    net.run(R.MIGRATE_TIME + 1)
    assert b.state(1) == "forwarding" and b.ports[1].oper_edge            # auto edge: after 3 s
    assert b.state(3) != "forwarding"
    net.run(20 + 15 - R.MIGRATE_TIME - 2)
    assert b.state(3) != "forwarding"
    net.run(3)
    assert b.state(3) == "forwarding" and not b.ports[3].oper_edge        # fdWhile starts at max age


def test_a_bpdu_on_an_edge_port_makes_it_a_bridge_port():
    net = two_links()
    a = net.bridges["a"]
    a.set_edge(1, admin_edge=True, auto_edge=True)
    net.run(5)
    assert not a.ports[1].oper_edge                 # b's BPDUs keep coming on it


def test_an_802_1d_peer_makes_the_port_speak_stp_and_mcheck_brings_rstp_back():
    net = Net()
    a = net.rstp("a", 0x020000000001)
    a.add_port(2, "ap2", 20000)
    net.stp("s", 0x020000000002, 4096, hello_time=1, max_age=6, forward_delay=4)
    net.link("l1", ("a", 1), ("s", 1))
    net.run(R.MIGRATE_TIME + 3)
    assert not a.ports[1].send_rstp and a.ports[2].send_rstp
    net.run(2 * 15 + 1)
    assert net.bridges["s"].is_root() and a.role(1) == "root"           # both see s as the root
    assert net.bridges["s"].state(1) == "forwarding" and a.state(1) == "forwarding"
    # a's designated port towards nobody still speaks RSTP; its root port sends TCNs, not RST
    # BPDUs, on a topology change
    a.tcn()
    assert [b for n, o, b in net.sent if (n, o) == ("a", 1)][-1][17:21] == b"\x00\x00\x00\x80"
    assert net.bpdus("a", 2)[-1].version == 2
    # the legacy bridge goes; an RSTP bridge comes: mcheck tries RSTP again
    net.lans["l1"] = []
    net.deliver()
    del net.bridges["s"]
    net.rstp("r", 0x020000000003)
    net.lans["l1"] = [("a", 1), ("r", 1)]
    net.lan_of["r", 1] = "l1"
    net.bridges["r"].add_port(1, "rp1", 20000)
    a.mcheck(1)
    net.run(R.MIGRATE_TIME + 1)
    assert a.ports[1].send_rstp and net.bpdus("a", 1)[-1].version == 2
    assert net.ports("r") == {1: ("root", "forwarding")}


def test_a_topology_change_sets_the_tc_flag_and_flushes_the_other_ports():
    net = Net()
    net.rstp("a", 0x020000000001, 4096)
    net.rstp("b", 0x020000000002)
    net.link("l1", ("a", 1), ("b", 1))
    net.bridges["b"].add_port(2, "bp2", 20000, admin_edge=True)
    net.run(5)
    net.flushed["b"].clear()
    c = net.rstp("c", 0x020000000003)
    net.lans["l3"] = [("b", 3), ("c", 1)]
    net.lan_of["b", 3] = net.lan_of["c", 1] = "l3"
    c.add_port(1, "cp1", 20000)
    net.bridges["b"].add_port(3, "bp3", 20000)       # a new forwarding link: a topology change
    net.deliver()
    assert any(b.bpduflags & R.F_TC for b in net.bpdus("b", 1))       # told the root
    assert 1 in net.flushed["a"] or 1 in net.flushed["b"]
    net.flushed["a"].clear()
    net.bridges["a"].tcn()
    assert net.flushed["a"]


def test_rstp_show_in_open_vswitchs_layout():
    net = two_links()
    out = net.bridges["b"].show()
    assert out.splitlines()[:9] == [
        "---- b ----", "Root ID:", "  stp-priority    4096", "  stp-system-id   02:00:00:00:00:01",
        "  stp-hello-time  2s", "  stp-max-age     20s", "  stp-fwd-delay   15s",
        "  root-port       bp1", "  root-path-cost  20000"]
    assert "  bp2        Alternate  Discarding 20000    128.2" in out.splitlines()
    assert "  This bridge is the root" in net.bridges["a"].show()


def test_bpdus_from_scapy_an_older_root_and_our_own_echo():
    net = Net()
    a = net.rstp("a", 0x020000000001)
    a.add_port(1, "p1", 20000)
    a.add_port(2, "p2", 20000)
    better = bytes(Ether(dst="01:80:c2:00:00:00", src="02:00:00:00:00:aa", type=39)
                   / LLC(dsap=0x42, ssap=0x42, ctrl=3)
                   / STP(rootid=0, rootmac="02:00:00:00:00:aa", pathcost=0, bridgeid=0,
                         bridgemac="02:00:00:00:00:aa", portid=0x8001, age=0, maxage=20, hellotime=2,
                         fwddelay=15))
    a.receive(1, better, 0.0)
    assert a.role(1) == "root" and a.root_priority.root == 0x0200000000AA
    assert a.role(2) == "designated"
    own = [f for n, o, f in net.sent if o == 2][-1]
    errors = a.ports[2].errors
    a.receive(2, own, 0.0)                                               # our own, looped back
    assert a.ports[2].errors == errors + 1 and a.role(2) == "designated"
    a.receive(2, b"\x01\x80\xc2\x00\x00\x00" + bytes(6) + b"\x00\x05" + b"\x42\x42\x03\x00\x01", 0.0)
    assert a.ports[2].errors == errors + 2                               # not a BPDU: counted


CONFIG = """\
bridges:
  br0:
    datapath: {pmd_cores: []}
    stp_enable: true
    rstp_enable: true
    rstp_priority: 8192
    rstp_address: "02:00:00:00:00:77"
    rstp_max_age: 6
    rstp_hello_time: 1
    rstp_forward_delay: 4
    rstp_transmit_hold_count: 3
    rstp_ageing_time: 100
    ports:
      patch0: {peer: patch1, ofport: 10, rstp_port_priority: 64, rstp_port_path_cost: 5000,
               rstp_port_admin_edge: true, rstp_port_auto_edge: false}
  br1:
    datapath: {pmd_cores: []}
    ports:
      patch1: {peer: patch0, ofport: 20}
"""


def test_config_keys_and_rstp_wins_over_stp():
    br = loads(CONFIG, "r.yaml").bridges["br0"]
    assert not br.stp.enable and br.rstp.enable                         # as Open vSwitch: RSTP wins
    assert (br.rstp.priority, br.rstp.address, br.rstp.max_age, br.rstp.hello_time, br.rstp.forward_delay,
            br.rstp.transmit_hold_count, br.rstp.ageing_time) == (8192, "02:00:00:00:00:77", 6, 1, 4, 3, 100)
    p = br.ports["patch0"]
    assert (p.rstp_port_priority, p.rstp_port_path_cost, p.rstp_port_admin_edge, p.rstp_port_auto_edge) == (
        64, 5000, True, False)


@pytest.mark.parametrize("old,new,msg", [
    ("rstp_priority: 8192", "rstp_priority: 8000", "r.yaml:6: bridge 'br0': rstp_priority: a multiple of 4096"),
    ("rstp_max_age: 6", "rstp_max_age: 40", "r.yaml:8: bridge 'br0': 802.1D needs rstp_max_age"),
    ("rstp_transmit_hold_count: 3", "rstp_transmit_hold_count: 11", "r.yaml:11: rstp_transmit_hold_count"),
    ("rstp_port_priority: 64", "rstp_port_priority: 65", "r.yaml:14: port 'patch0': rstp_port_priority"),
    ('"02:00:00:00:00:77"', "nope", "r.yaml:7:"),
])
def test_config_errors_name_file_and_line(old, new, msg):
    with pytest.raises(ConfigError) as e:
        loads(CONFIG.replace(old, new), "r.yaml")
    assert str(e.value).startswith(msg), str(e.value)


def test_the_root_port_moving_moves_what_was_learned_upstream():
    net = two_links()
    moved = []
    b = net.bridges["b"]
    b.on_root_moved = lambda old, new: moved.append((old, new, b.state(new)))
    net.run(3)
    net.unlink("l1")
    assert moved == [(1, 2, "forwarding")]            # once, after the machines settled
    assert b.root_moving_from() is None
