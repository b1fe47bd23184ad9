"""BFD sessions (bfd.py) back to back on the manual clock, RFC 5880 §6.8.6: the three-way
handshake, detection time, diagnostics, poll/final, cpath_down; control packets checked
against scapy's independent BFD codec.
"""
import random

from scapy.contrib.bfd import BFD
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from dpdkswitch import bfd as B


class Link:
    """Two sessions, a and b, each one's packets delivered to the other (unless cut)."""

    def __init__(self, sa=None, sb=None):
        self.now = 0.0
        self.cut = False
        self.wire: list[tuple[str, bytes]] = []
        self.sent: list[tuple[str, bytes]] = []
        self.rx = {"a": 0, "b": 0}             # each port's received-packet counter: BFD and data
        mk = lambda name, s, mac, seed: B.BfdSession(name, s or B.BfdSettings(min_rx=100, min_tx=100), mac,
                                                     lambda f, n=name: self._send(n, f), self.now,
                                                     random.Random(seed), rx_packets=lambda n=name: self.rx[n])
        self.a = mk("a", sa, b"\x02\x00\x00\x00\x00\x0a", 1)
        self.b = mk("b", sb, b"\x02\x00\x00\x00\x00\x0b", 2)

    def _send(self, name, frame):
        self.sent.append((name, frame))
        if not self.cut:
            self.wire.append((name, frame))

    def run(self, seconds, step=0.01):
        for _ in range(round(seconds / step)):
            self.now = round(self.now + step, 6)
            for s in (self.a, self.b):
                s.run(self.now)
            while self.wire:
                name, frame = self.wire.pop(0)
                self.rx["b" if name == "a" else "a"] += 1
                (self.b if name == "a" else self.a).receive(frame, self.now)


def test_sessions_come_up_through_down_init_up():
    link = Link()
    link.run(0.01)
    assert link.a.state in (B.DOWN, B.INIT)
    link.run(3)
    assert link.a.state == link.b.state == B.UP
    assert link.a.forwarding() and link.b.forwarding()
    assert link.a.rmt_disc == link.b.disc and link.b.rmt_disc == link.a.disc


def test_up_transmits_at_min_tx_less_jitter_and_down_at_one_second_at_least():
    link = Link()
    link.run(3)
    link.sent.clear()
    link.run(2)
    times = [i for i, (n, _) in enumerate(link.sent) if n == "a"]
    assert 2 / 0.100 <= len(times) <= 2 / 0.075 + 1       # 75-100 ms apart
    link.cut = True
    link.run(1)
    link.sent.clear()
    link.run(5)
    n = sum(1 for name, _ in link.sent if name == "a")
    assert 5 <= n <= 5 / 0.75 + 1                           # down: 0.75-1 s apart


def test_detection_time_expiry_takes_the_session_down_with_its_diagnostic():
    link = Link()
    link.run(3)
    link.cut = True
    t0 = link.now
    while link.a.state == B.UP:
        link.run(0.01)
    took = link.now - t0
    assert took <= 0.100 * 3 + 0.02                       # max(min_rx, remote min_tx) x remote mult
    assert link.a.diag == B.DIAG_EXPIRED and not link.a.forwarding()
    assert link.a.rmt_disc == 0                           # the remote is forgotten
    link.cut = False
    link.run(3)
    assert link.a.state == B.UP and link.a.flap_count == 3    # up, down, up


def test_a_remote_signalling_down_takes_the_session_down():
    link = Link()
    link.run(3)
    link.b.state = B.ADMIN_DOWN                            # b goes administratively down
    link.b.diag = B.DIAG_ADMIN_DOWN
    link.run(0.3)
    assert link.a.state == B.DOWN and link.a.diag == B.DIAG_RMT_DOWN


def test_poll_sequence_applies_new_timers_on_the_final():
    link = Link()
    link.run(3)
    link.sent.clear()
    link.a.set_settings(B.BfdSettings(min_rx=300, min_tx=300))
    assert link.a.flags & B.FLAG_POLL and link.a.min_tx == 100     # not before the Final
    link.run(0.05)
    polls = [f for n, f in link.sent if n == "a" and BFD(bytes(Ether(f)[UDP].payload)).flags & 0x20]
    finals = [f for n, f in link.sent if n == "b" and BFD(bytes(Ether(f)[UDP].payload)).flags & 0x10]
    assert polls and finals
    assert not link.a.flags & B.FLAG_POLL and (link.a.min_tx, link.a.min_rx) == (300, 300)
    assert link.b.rmt_min_rx == 300 and link.b.tx_interval() == 300
    link.run(2)
    assert link.a.state == link.b.state == B.UP


def test_cpath_down_diagnostic_stops_the_remote_forwarding():
    link = Link(sa=B.BfdSettings(min_rx=100, min_tx=100, cpath_down=True))
    link.run(3)
    assert link.a.state == B.UP and link.a.diag == B.DIAG_CPATH_DOWN
    assert link.a.forwarding() and not link.b.forwarding()


def test_control_packet_read_by_scapy_and_bad_ones_refused():
    link = Link()
    link.run(3)
    frame = [f for n, f in link.sent if n == "a"][-1]
    pkt = Ether(frame)
    assert pkt.dst == "00:23:20:00:00:01" and pkt[IP].ttl == 255 and pkt[IP].tos == 0xC0
    assert (pkt[IP].src, pkt[IP].dst) == ("169.254.1.1", "169.254.1.0") and pkt[UDP].dport == 3784
    assert 49152 <= pkt[UDP].sport <= 65535
    assert IP(bytes(pkt[IP])).chksum == pkt[IP].chksum
    m = BFD(bytes(pkt[UDP].payload))
    assert (m.version, m.sta, m.detect_mult, m.len) == (1, 3, 3, 24)
    assert (m.my_discriminator, m.your_discriminator) == (link.a.disc, link.b.disc)
    assert (m.min_tx_interval, m.min_rx_interval) == (100000, 100000)
    bad_ttl = bytes(pkt)[:22] + b"\x40" + bytes(pkt)[23:]           # TTL 64: not from a neighbour
    rx = link.b.rx
    link.b.receive(bad_ttl, link.now)
    link.b.receive(bytes(pkt)[:40], link.now)
    assert link.b.rx == rx and link.b.rx_invalid == 2


def test_decay_min_rx_slows_the_remote_while_only_control_packets_arrive():
    link = Link(sa=B.BfdSettings(min_rx=100, min_tx=100, decay_min_rx=1000))
    link.run(3)
    assert link.a.state == B.UP
    link.run(2.5)                                   # 2 s of nothing but BFD: a decays, by a poll sequence
    assert link.a.in_decay and link.a.min_rx == 1000
    assert link.b.rmt_min_rx == 1000 and link.b.tx_interval() == 1000
    link.sent.clear()
    link.run(3)
    assert sum(1 for n, _ in link.sent if n == "b") <= 3 / 0.75 + 1      # b now sends about once a second
    for _ in range(40):                             # data arrives: the decay ends at the next check
        link.rx["a"] += 50
        link.run(0.1)
    assert not link.a.in_decay and link.a.min_rx == 100 and link.b.rmt_min_rx == 100
    assert link.a.state == link.b.state == B.UP


def test_forwarding_if_rx_keeps_forwarding_while_data_arrives():
    link = Link(sa=B.BfdSettings(min_rx=100, min_tx=100, forwarding_if_rx=True))
    link.run(3)
    link.cut = True                                  # no BFD either way; data still arrives at a
    for _ in range(30):
        link.rx["a"] += 10
        link.run(0.1)
    assert link.a.state == B.DOWN and link.a.forwarding()
    link.run(1.9)
    assert link.a.forwarding()                        # max(rx interval x mult, 2 s) after the last data
    link.run(0.2)
    assert not link.a.forwarding()
    plain = Link()
    plain.run(3)
    plain.cut = True
    for _ in range(10):
        plain.rx["a"] += 10
        plain.run(0.1)
    assert not plain.a.forwarding()                   # without the option: down is down


def test_worst_tx_gap_and_flap_count_in_bfd_show():
    """bfd/show's last lines: the flaps (forwarding changes) and the longest time between two
    packets sent while up at one interval (a control thread held up shows there)."""
    link = Link()
    link.run(3)
    assert link.a.state == B.UP and 75 <= link.a.tx_gap_max * 1000 <= 100.5
    assert "\tFlap Count: 1\n\tWorst TX Gap: " in link.a.show()
    link.now += 0.15                                 # a's and b's loop held up for 150 ms
    link.run(0.01)
    assert link.a.state == B.UP and 150 <= link.a.tx_gap_max * 1000 <= 262
    assert link.a.show().endswith(f"\tWorst TX Gap: {round(link.a.tx_gap_max * 1000)}ms")
    link.cut = True
    link.run(0.5)
    assert link.a.state == B.DOWN and link.a.flap_count == 2
