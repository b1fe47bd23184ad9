"""CFM maintenance points (cfm.py) back to back on the manual clock: fault timing (3.5 x the
CCM interval), recv, rdi, maid, loopback, overflow, override; the CCM's fields read at
802.1ag's offsets (this scapy has no CFM layer).
"""
from scapy.layers.l2 import Ether

from dpdkswitch import cfm as C


class Pair:
    def __init__(self, mpid_a=1, mpid_b=2, interval=100):
        self.now = 0.0
        self.cut = False
        self.sent = []
        self.a = C.CfmSession("a", mpid_a, interval, b"\x02\x00\x00\x00\x00\x0a", lambda f: self._send("a", f))
        self.b = C.CfmSession("b", mpid_b, interval, b"\x02\x00\x00\x00\x00\x0b", lambda f: self._send("b", f))

    def _send(self, name, frame):
        self.sent.append((name, frame))
        if not self.cut:
            (self.b if name == "a" else self.a).receive(frame, self.now)

    def run(self, seconds, step=0.01):
        for _ in range(round(seconds / step)):
            self.now = round(self.now + step, 6)
            self.a.run(self.now)
            self.b.run(self.now)


def test_each_side_sees_the_other_and_a_silent_peer_is_a_recv_fault_within_two_fault_intervals():
    p = Pair()
    p.run(1)
    assert p.a.remote_mpids == [2] and p.b.remote_mpids == [1] and p.a.ok() and p.b.ok()
    p.cut = True
    t0 = p.now
    while p.a.ok():
        p.run(0.01)
    assert p.now - t0 <= 2 * 0.35 + 0.02 and p.a.faults() == {"recv"} and p.a.remote_mpids == []
    p.run(0.4)
    rdi = [f for n, f in p.sent[-10:] if n == "a" and f[16] & C.RDI]
    assert rdi                                            # a hears nobody: it says so (RDI)
    p.cut = False
    p.run(0.4)
    assert p.b.faults() == {"rdi"}                        # b hears a, who hears nobody
    p.run(0.8)
    assert p.a.ok() and p.b.ok() and p.a.flap_count == 2


def test_maid_loopback_and_override_faults():
    p = Pair(mpid_a=5, mpid_b=5)                          # the same MPID both sides: a loop
    p.run(1)
    assert "loopback" in p.a.faults()
    q = Pair()
    q.b.maid = bytes(48)
    q.run(1)
    assert "maid" in q.a.faults() and "recv" in q.a.faults()
    q.a.fault_override = True
    assert q.a.faults() == {"override"}
    q.a.fault_override = False
    assert q.a.ok()


def test_overflow_beyond_256_remote_mps():
    s = C.CfmSession("s", 1, 1000, bytes(6), lambda f: None)
    peers = [C.CfmSession(f"p{i}", 10 + i, 1000, bytes(6), lambda f: s.receive(f, 0.1)) for i in range(257)]
    for p in peers:
        p.run(0.05)
    s.run(3.6)
    assert "overflow" in s.faults() and len(s.remote_mpids) == 256


def test_ccm_fields_at_802_1ag_offsets():
    p = Pair(interval=1000)
    p.run(0.02)
    frame = [f for n, f in p.sent if n == "a"][0]
    pkt = Ether(frame)
    assert pkt.dst == "01:80:c2:00:00:30" and pkt.type == 0x8902 and len(frame) == 14 + 75
    m = bytes(pkt.payload)
    assert m[0] == 0 and m[1] == 1 and m[3] == 70            # MD level 0, version 0; CCM; first TLV offset
    assert m[2] & 7 == 4                                     # period: 1 s
    assert int.from_bytes(m[4:8], "big") == 1 and int.from_bytes(m[8:10], "big") == 1   # seq, MEP ID
    assert m[10:58] == b"\x04\x03ovs\x02\x03ovs" + bytes(38)   # Open vSwitch's MAID
    assert m[74] == 0                                        # End TLV
