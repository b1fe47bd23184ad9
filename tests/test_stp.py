"""Spanning tree (stp.py) on the manual clock: bridges of Stp objects linked by simulated LANs,
as Open vSwitch's test-stp simulator links them, with no datapath.  Time is passed in; nothing
waits.  BPDUs are checked against scapy's independent 802.1D codec both ways.
"""
from scapy.layers.l2 import LLC, STP, Dot3, Ether

from dpdkswitch import stp as S


class Net:
    """Bridges (Stp) and LANs; a frame sent on a port reaches every other port of its LAN."""

    def __init__(self):
        self.bridges: dict[str, S.Stp] = {}
        self.lan_of: dict[tuple[str, int], str] = {}
        self.lans: dict[str, list[tuple[str, int]]] = {}
        self.queue: list[tuple[str, int, bytes]] = []
        self.now = 0.0
        self.cut: set[str] = set()
        self.flushes: dict[str, int] = {}
        self.sent: list[tuple[str, int, bytes]] = []

    def bridge(self, name, mac, priority=32768, **times):
        def send(ofport, frame, name=name):
            self.sent.append((name, ofport, frame))
            lan = self.lan_of.get((name, ofport))
            if lan is None or lan in self.cut:
                return
            for peer in self.lans[lan]:
                if peer != (name, ofport):
                    self.queue.append((peer[0], peer[1], frame))

        def flush(name=name):
            self.flushes[name] = self.flushes.get(name, 0) + 1
        b = S.Stp(name, mac, priority, send=send, on_flush=flush, now=self.now, **times)
        self.bridges[name] = b
        return b

    def link(self, lan, *ends, cost=19):
        """LAN joins the ports ENDS: (bridge, ofport) each."""
        self.lans[lan] = list(ends)
        for br, ofport in ends:
            self.lan_of[br, ofport] = lan
            self.bridges[br].add_port(ofport, f"{br}p{ofport}", cost)

    def deliver(self):
        for _ in range(10000):
            if not self.queue:
                return
            br, ofport, frame = self.queue.pop(0)
            self.bridges[br].receive(ofport, frame, self.now)
        raise AssertionError("BPDUs keep coming: a storm of them")

    def run(self, seconds, step=0.1):
        end = self.now + seconds
        self.deliver()
        while self.now < end - 1e-9:
            self.now = round(self.now + step, 6)
            for b in self.bridges.values():
                b.tick(self.now)
            self.deliver()

    def states(self, br):
        return {o: p.state for o, p in self.bridges[br].ports.items()}

    def roles(self, br):
        return {o: self.bridges[br].role(o) for o in self.bridges[br].ports}


CONVERGE = 20 + 2 * 15 + 5            # max age + 2 × forward delay, with room


def test_two_links_between_two_bridges_block_one_port():
    net = Net()
    a = net.bridge("a", 0x020000000001)
    b = net.bridge("b", 0x020000000002)
    net.link("l1", ("a", 1), ("b", 1))
    net.link("l2", ("a", 2), ("b", 2))
    net.run(CONVERGE)
    assert a.is_root() and not b.is_root()
    assert b.designated_root == a.bridge_id
    assert net.states("a") == {1: S.FORWARDING, 2: S.FORWARDING}
    assert net.roles("a") == {1: "designated", 2: "designated"}
    # b's root port is the one facing a's lower port id; the other is an alternate, blocked
    assert net.roles("b") == {1: "root", 2: "alternate"}
    assert net.states("b") == {1: S.FORWARDING, 2: S.BLOCKING}
    assert b.root_path_cost == 19
    assert not b.forwarding(2) and not b.learning(2) and not b.sends_bpdu(2)
    assert b.forwarding(1) and b.learning(1)
    assert b.forwarding(99)               # a port outside the tree forwards (as disabled)


def test_ports_pass_listening_and_learning_for_a_forward_delay_each():
    net = Net()
    net.bridge("a", 1, hello_time=1, max_age=6, forward_delay=4)
    net.bridge("b", 2, hello_time=1, max_age=6, forward_delay=4)
    net.link("l1", ("a", 1), ("b", 1))
    net.run(0.1)
    assert net.states("a")[1] == S.LISTENING
    assert not net.bridges["a"].learning(1)
    net.run(3.7)
    assert net.states("a")[1] == S.LISTENING
    net.run(0.4)
    assert net.states("a")[1] == S.LEARNING
    assert net.bridges["a"].learning(1) and not net.bridges["a"].forwarding(1)
    net.run(4.1)
    assert net.states("a")[1] == S.FORWARDING


def test_priority_decides_the_root_then_the_mac():
    net = Net()
    net.bridge("a", 0x020000000001, priority=32768)
    net.bridge("b", 0x020000000002, priority=4096)
    net.link("l1", ("a", 1), ("b", 1))
    net.run(CONVERGE)
    assert net.bridges["b"].is_root() and not net.bridges["a"].is_root()
    assert net.roles("a") == {1: "root"}


def test_a_triangle_of_three_bridges_blocks_exactly_one_port():
    net = Net()
    for n, mac in (("x", 3), ("y", 1), ("z", 2)):
        net.bridge(n, mac)
    net.link("xy", ("x", 1), ("y", 1))
    net.link("yz", ("y", 2), ("z", 1))
    net.link("zx", ("z", 2), ("x", 2))
    net.run(CONVERGE)
    assert all(b.designated_root == net.bridges["y"].bridge_id for b in net.bridges.values())
    blocked = [(n, o) for n in net.bridges for o, s in net.states(n).items() if s == S.BLOCKING]
    # x and z are both 19 from the root; z (the lower id) is designated on their LAN
    assert blocked == [("x", 2)]


def test_a_silent_root_link_fails_over_within_max_age_plus_two_forward_delays():
    net = Net()
    a = net.bridge("a", 1, hello_time=1, max_age=6, forward_delay=4)
    net.bridge("b", 2, hello_time=1, max_age=6, forward_delay=4)
    net.link("l1", ("a", 1), ("b", 1))
    net.link("l2", ("a", 2), ("b", 2))
    net.run(20)
    assert net.states("b") == {1: S.FORWARDING, 2: S.BLOCKING}
    net.cut.add("l1")                      # frames stop, carriers stay up
    t0 = net.now
    while net.states("b")[2] != S.FORWARDING:
        net.run(0.1)
        assert net.now - t0 <= 6 + 2 * 4 + 1, net.states("b")
    assert net.now - t0 >= 2 * 4           # it went through listening and learning
    assert net.roles("b")[2] == "root" and a.is_root()


def test_disabling_the_root_port_moves_the_root_at_once_and_the_port_forwards_after_two_delays():
    net = Net()
    net.bridge("a", 1, hello_time=1, max_age=6, forward_delay=4)
    b = net.bridge("b", 2, hello_time=1, max_age=6, forward_delay=4)
    net.link("l1", ("a", 1), ("b", 1))
    net.link("l2", ("a", 2), ("b", 2))
    net.run(20)
    b.disable_port(1)
    assert b.role(2) == "root" and net.states("b")[2] == S.LISTENING
    net.run(8.2)
    assert net.states("b")[2] == S.FORWARDING


def test_topology_change_tcn_sent_acknowledged_and_mac_tables_flushed():
    net = Net()
    a = net.bridge("a", 1, hello_time=1, max_age=6, forward_delay=4)
    b = net.bridge("b", 2, hello_time=1, max_age=6, forward_delay=4)
    net.link("l1", ("a", 1), ("b", 1))
    net.run(20)
    assert a.topology_change is False       # the start-up change has timed out (max age + fwd delay)
    flushes_a, flushes_b = net.flushes.get("a", 0), net.flushes.get("b", 0)
    net.sent.clear()
    sent, acked = b.tcn_sent, b.tcn_acked
    b.tcn()                                 # stp/tcn on the non-root bridge
    net.run(0.1)
    tcns = [f for br, o, f in net.sent if br == "b" and f[17 + 3] == S.TYPE_TCN]
    assert tcns and b.tcn_sent >= 1
    assert a.topology_change                # the root took it, and says so in its config BPDUs
    net.run(1.0)                            # its answer waits for the port's hold timer (1 s)
    assert b.tcn_acked == acked + 1 and not b.tcn_timer.active   # acknowledged: b stops repeating it
    tca = [f for br, o, f in net.sent if br == "a" and f[17 + 3] == S.TYPE_CONFIG and f[17 + 4] & S.FLAG_TCA]
    assert tca and sent + 1 <= b.tcn_sent <= sent + 2    # (the ack and the repeat are both due at 1 s)
    sent = b.tcn_sent
    net.run(3)
    assert b.tcn_sent == sent                # acknowledged: no more
    assert net.flushes["a"] > flushes_a and net.flushes["b"] > flushes_b
    net.run(6 + 4 + 1)
    assert not a.topology_change


def test_unacknowledged_tcn_is_repeated_every_hello_time():
    net = Net()
    net.bridge("a", 1, hello_time=1, max_age=6, forward_delay=4)
    b = net.bridge("b", 2, hello_time=1, max_age=6, forward_delay=4)
    net.link("l1", ("a", 1), ("b", 1))
    net.run(20)
    net.cut.add("l1")
    sent = b.tcn_sent
    b.tcn()
    net.run(3.05)
    assert b.tcn_sent == sent + 4            # at once, then at 1, 2 and 3 s


def test_config_bpdu_read_by_scapy():
    net = Net()
    a = net.bridge("a", 0x020000000001, priority=4096)
    a.add_port(3, "a3", 4, priority=0x80, mac=bytes.fromhex("020000000003"))
    net.run(2.1)                            # the first hello
    frame = [f for br, o, f in net.sent if o == 3][0]
    pkt = Dot3(frame)
    assert pkt.dst == "01:80:c2:00:00:00" and pkt.src == "02:00:00:00:00:03"
    assert pkt[LLC].dsap == 0x42 and pkt[LLC].ssap == 0x42 and pkt[LLC].ctrl == 3
    bpdu = pkt[STP]
    assert bpdu.proto == 0 and bpdu.version == 0 and bpdu.bpdutype == 0
    assert bpdu.rootid == 4096 and bpdu.rootmac == "02:00:00:00:00:01"
    assert bpdu.bridgeid == 4096 and bpdu.bridgemac == "02:00:00:00:00:01"
    assert bpdu.portid == 0x8003 and bpdu.pathcost == 0
    assert (bpdu.age, bpdu.maxage, bpdu.hellotime, bpdu.fwddelay) == (0, 20, 2, 15)


def test_scapy_bpdu_from_a_better_root_makes_that_port_the_root_port():
    net = Net()
    a = net.bridge("a", 0x020000000009)
    a.add_port(1, "a1", 19)
    a.add_port(2, "a2", 19)
    bpdu = (Ether(dst="01:80:c2:00:00:00", src="02:00:00:00:00:aa", type=38) / LLC(dsap=0x42, ssap=0x42, ctrl=3)
            / STP(rootid=4096, rootmac="02:00:00:00:00:aa", pathcost=0, bridgeid=4096,
                  bridgemac="02:00:00:00:00:aa", portid=0x8001, age=0, maxage=20, hellotime=2, fwddelay=15))
    a.receive(2, bytes(Dot3(bytes(bpdu))), 0.0)
    assert not a.is_root() and a.role(2) == "root" and a.root_path_cost == 19
    assert a.designated_root == (4096 << 48) | 0x0200000000AA
    assert a.role(1) == "designated"
    # runts, wrong LLC, aged-out messages: counted, not taken
    a.receive(1, bytes(bpdu)[:18], 0.0)
    a.receive(1, bytes(bpdu)[:14] + b"\xaa\xaa\x03" + bytes(bpdu)[17:], 0.0)
    old = (Ether(dst="01:80:c2:00:00:00", src="02:00:00:00:00:bb", type=38) / LLC(dsap=0x42, ssap=0x42, ctrl=3)
           / STP(rootid=0, rootmac="02:00:00:00:00:bb", bridgeid=0, bridgemac="02:00:00:00:00:bb", portid=0x8001,
                 age=20, maxage=20, hellotime=2, fwddelay=15))
    a.receive(1, bytes(old), 0.0)
    assert a.ports[1].errors == 3 and a.role(1) == "designated"


def test_timers_are_clamped_as_802_1d_requires():
    b = S.Stp("b", 1, hello_time=0.2, max_age=1, forward_delay=1)
    assert (b.bridge_hello_time, b.bridge_max_age, b.bridge_forward_delay) == (256, 6 * 256, 4 * 256)


def test_path_cost_from_link_speed():
    assert [S.cost_for_speed(m) for m in (100000, 10000, 1000, 100, 10, 0)] == [2, 2, 4, 19, 100, 19]


def test_stp_show_names_root_and_ports():
    net = Net()
    net.bridge("a", 0x020000000001)
    net.bridge("b", 0x020000000002)
    net.link("l1", ("a", 1), ("b", 1))
    net.link("l2", ("a", 2), ("b", 2))
    net.run(CONVERGE)
    text = net.bridges["b"].show()
    assert "---- b ----" in text and "stp-system-id   02:00:00:00:00:01" in text
    assert "root-port       bp1" in text
    lines = {ln.split()[0]: ln.split()[1:] for ln in text.splitlines() if ln.strip().startswith("bp")}
    assert lines == {"bp1": ["root", "forwarding", "19", "128.1"], "bp2": ["alternate", "blocking", "19", "128.2"]}
    assert "This bridge is the root" in net.bridges["a"].show()
