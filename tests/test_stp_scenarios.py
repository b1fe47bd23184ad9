"""Open vSwitch's STP simulator scenarios (tests/stp.at, run there by ovstest test-stp): the
802.1D-1998 example, 802.1D-2004 figures 17.4-17.7 and the Bridge Functions Consortium
conformance cases it approximates, run here on stp.py with the same small language:

    bridge N ID[^PRIO] = LAN[:COST][^PORTPRIO] ...   a bridge and its ports' LANs
                                                     (0: on no LAN, X: disabled, _: unchanged)
    bridge N^PRIO                                    a new bridge priority
    run N                                            N seconds (timers 2/20/15 s)
    check N = root | [rootid:ID] STATE[:COST] ...    F B Li Le D; F:C = the root port, at cost C

Path cost defaults to 10, as there.  Time is simulated (no datapath, no waiting).
"""
import re

import pytest

from dpdkswitch import rstp as R
from dpdkswitch import stp as S

STATE = {"F": S.FORWARDING, "B": S.BLOCKING, "Li": S.LISTENING, "Le": S.LEARNING, "D": S.DISABLED}


class Sim:
    def __init__(self):
        self.bridges: dict[int, S.Stp] = {}
        self.lan: dict[tuple[int, int], str | None] = {}
        self.queue: list = []
        self.now = 0.0

    def _send(self, n, ofport, frame):
        lan = self.lan.get((n, ofport))
        if lan is None:
            return
        for (m, o), other in self.lan.items():
            if other == lan and (m, o) != (n, ofport):
                self.queue.append((m, o, frame))

    def _deliver(self):
        for _ in range(100000):
            if not self.queue:
                return
            m, o, frame = self.queue.pop(0)
            self.bridges[m].receive(o, frame, self.now)
        raise AssertionError("BPDUs never stop")

    @staticmethod
    def _id(text):
        mac, _, prio = text.partition("^")
        return int(mac, 16), int(prio, 16) if prio else S.DEFAULT_PRIORITY

    def bridge(self, n, ident, lans, rstp=False):
        if ident is not None:
            mac, prio = self._id(ident)
            kind = R.Rstp if rstp else S.Stp
            self.bridges[n] = kind(f"stp{n}", mac, prio, send=lambda o, f, n=n: self._send(n, o, f), now=self.now)
        b = self.bridges[n]
        for i, spec in enumerate(lans, 1):
            if spec == "_":
                continue
            if spec == "X":
                if i in b.ports:
                    b.disable_port(i)
                continue
            m = re.fullmatch(r"(\w)(?::(\d+))?(?:\^(0x[0-9a-f]+|\d+))?", spec)
            assert m, spec
            lan, cost, prio = m.group(1), m.group(2), m.group(3)
            if i not in b.ports:
                b.add_port(i, f"p{i}", int(cost or 10))
            else:
                if b.ports[i].state == S.DISABLED:
                    b.enable_port(i)
                if cost:
                    b.set_path_cost(i, int(cost))
            if prio:
                b.set_port_priority(i, int(prio, 0))
            self.lan[n, i] = None if lan == "0" else lan
        self._deliver()

    def run(self, seconds, step=0.25):
        for _ in range(round(seconds / step)):
            self.now += step
            for b in self.bridges.values():
                b.tick(self.now)
            self._deliver()

    def check(self, n, words):
        b = self.bridges[n]
        where = f"bridge {n}: {' '.join(words)}\n{b.show()}"
        rstp = isinstance(b, R.Rstp)           # an RSTP bridge among 802.1D ones (rbridge)
        root_id = b.root_priority.root if rstp else b.designated_root
        root_port = b.root_port() if rstp else b.root_port
        root_cost = b.root_priority.cost if rstp else b.root_path_cost
        if words and words[0].startswith("rootid:"):
            mac, prio = self._id(words.pop(0)[7:])
            assert root_id == (prio << 48) | mac, where
        if words == ["root"]:
            assert b.is_root(), where
            return
        for i, w in enumerate(words, 1):
            state, _, cost = w.partition(":")
            want = R.DISCARDING if rstp and state == "B" else STATE[state]
            assert b.ports[i].state == want, f"port {i}: {where}"
            if cost:
                assert root_port is b.ports[i] and root_cost == int(cost), f"port {i}: {where}"
            else:
                assert root_port is not b.ports[i], f"port {i}: {where}"

    def script(self, text):
        for line in text.strip().splitlines():
            line = line.split("#")[0].strip()
            if not line:
                continue
            head, _, rest = line.partition("=")
            h = head.split()
            if h[0] == "run":
                self.run(int(h[1]))
            elif h[0] == "check":
                self.check(int(h[1]), rest.split())
            elif h[0] == "bridge" and "^" in h[1] and not rest:
                n, prio = h[1].split("^")
                self.bridges[int(n)].set_priority(int(prio, 16))
                self._deliver()
            else:
                self.bridge(int(h[1]), h[2] if len(h) > 2 else None, rest.split(), rstp=h[0] == "rbridge")


SCENARIOS = {
    "ieee802.1d-1998": """
        bridge 0 0x42 = a b
        bridge 1 0x97 = c:5 a d:5
        bridge 2 0x45 = b e
        bridge 3 0x57 = b:5 e:5
        bridge 4 0x83 = a:5 e:5
        run 1000
        check 0 = root
        check 1 = F F:10 F
        check 2 = F:10 B
        check 3 = F:5 F
        check 4 = F:5 B""",
    "ieee802.1d-2004-fig17.4": """
        bridge 0 0x111 = a b e c
        bridge 1 0x222 = a b d f
        bridge 2 0x333 = c d l j h g
        bridge 3 0x444 = e f n m k i
        bridge 4 0x555 = g i 0 0
        bridge 5 0x666 = h k 0 0
        bridge 6 0x777 = j m 0 0
        bridge 7 0x888 = l n 0 0
        run 1000
        check 0 = root
        check 1 = F:10 B F F
        check 2 = F:10 B F F F F
        check 3 = F:10 B F F F F
        check 4 = F:20 B F F
        check 5 = F:20 B F F
        check 6 = F:20 B F F
        check 7 = F:20 B F F
        bridge 7 = l n o o
        run 1000
        check 0 = root
        check 1 = F:10 B F F
        check 2 = F:10 B F F F F
        check 3 = F:10 B F F F F
        check 4 = F:20 B F F
        check 5 = F:20 B F F
        check 6 = F:20 B F F
        check 7 = F:20 B F B""",
    "ieee802.1d-2004-fig17.6": """
        bridge 0 0x111 = a b l
        bridge 1 0x222 = b c d
        bridge 2 0x333 = d e f
        bridge 3 0x444 = f g h
        bridge 4 0x555 = j h i
        bridge 5 0x666 = l j k
        run 1000
        check 0 = root
        check 1 = F:10 F F
        check 2 = F:20 F F
        check 3 = F:30 F B
        check 4 = F:20 F F
        check 5 = F:10 F F""",
    "ieee802.1d-2004-fig17.7": """
        bridge 0 0xaa = b
        bridge 1 0x111 = a b d f h g e c
        bridge 2 0x222 = g h j l n m k i
        run 1000
        check 0 = root
        check 1 = F F:10 F F F F F F
        check 2 = B F:20 F F F F F F
        bridge 2 = g X j l n m k i
        run 1000
        check 0 = root
        check 1 = F F:10 F F F F F F
        check 2 = F:20 D F F F F F F""",
    "iol-io-1.1 link failure": """
        bridge 0 0x111 = a b c
        bridge 1 0x222 = a b c
        run 1000
        check 0 = root
        check 1 = F:10 B B
        bridge 1 = 0 _ _
        run 1000
        check 0 = root
        check 1 = F F:10 B
        bridge 1 = X _ _
        run 1000
        check 0 = root
        check 1 = D F:10 B
        bridge 1 = _ 0 _
        run 1000
        check 0 = root
        check 1 = D F F:10
        bridge 1 = _ X _
        run 1000
        check 0 = root
        check 1 = D D F:10""",
    "iol-io-1.2 repeated network": """
        bridge 0 0x111 = a a
        bridge 1 0x222 = a a
        run 1000
        check 0 = rootid:0x111 F B
        check 1 = rootid:0x111 F:10 B
        bridge 1 = a^0x90 _
        run 1000
        check 0 = rootid:0x111 F B
        check 1 = rootid:0x111 B F:10""",
    "iol-io-1.4 network initialization": """
        bridge 0 0x111 = a b c
        bridge 1 0x222 = b d e
        bridge 2 0x333 = a d f
        bridge 3 0x444 = c e f
        run 1000
        check 0 = root
        check 1 = F:10 F F
        check 2 = F:10 B F
        check 3 = F:10 B B""",
    "iol-io-1.5 topology change": """
        bridge 0 0x111 = a b d c
        bridge 1 0x222 = a b f e
        bridge 2 0x333 = c d g h
        bridge 3 0x444 = e f g h
        run 1000
        check 0 = root
        check 1 = F:10 B F F
        check 2 = B F:10 F F
        check 3 = B F:20 B B
        bridge 1^0x7000
        run 1000
        check 0 = F:10 B F F
        check 1 = root
        check 2 = B F:20 B B
        check 3 = B F:10 F F
        bridge 2^0x6000
        run 1000
        check 0 = F F B F:10
        check 1 = F:20 B B B
        check 2 = root
        check 3 = F F F:10 B
        bridge 3^0x5000
        run 1000
        check 0 = B B B F:20
        check 1 = F F B F:10
        check 2 = F F F:10 B
        check 3 = root
        bridge 0^0x4000
        bridge 1^0x4001
        bridge 2^0x4002
        bridge 3^0x4003
        run 1000
        check 0 = root
        check 1 = F:10 B F F
        check 2 = B F:10 F F
        check 3 = B F:20 B B""",
    "iol-op-1.1 root id and cost initialized": """
        bridge 0 0x123 =
        check 0 = root""",
    "iol-op-1.4 all ports initialized designated": """
        bridge 0 0x123 = a b c d e f
        check 0 = Li Li Li Li Li Li
        run 1000
        check 0 = F F F F F F""",
    "iol-op-3.1 root id values": """
        bridge 0 0x111 = a
        bridge 1 0x222 = a
        check 0 = rootid:0x111 Li
        check 1 = rootid:0x222 Li
        run 1000
        check 0 = rootid:0x111 root
        check 1 = rootid:0x111 F:10""",
    "iol-op-3.3 bridge id values": """
        bridge 0 0x333^0x6000 = a
        bridge 1 0x222^0x7000 = b
        bridge 2 0x111 = a b
        run 1000
        check 0 = rootid:0x333^0x6000 root
        check 1 = rootid:0x333^0x6000 F:20
        check 2 = rootid:0x333^0x6000 F:10 F""",
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_open_vswitch_stp_scenario(name):
    Sim().script(SCENARIOS[name])


def mixed(text, rstp_bridges):
    """TEXT with the bridges RSTP_BRIDGES made RSTP ones ("rbridge N ID = ..."): 802.1D-2004
    17.4's interoperation, each RSTP port towards an 802.1D bridge falling back to STP BPDUs."""
    out = []
    for line in text.splitlines():
        w = line.split()
        if len(w) > 3 and w[0] == "bridge" and w[2] != "=" and int(w[1]) in rstp_bridges:
            line = line.replace("bridge", "rbridge", 1)
        out.append(line)
    return "\n".join(out)


@pytest.mark.parametrize("name,rstp_bridges", [
    ("ieee802.1d-1998", {1, 3}),
    ("ieee802.1d-1998", {0, 2, 4}),
    ("ieee802.1d-2004-fig17.4", {0, 2, 4, 6}),       # with 17.5: two ports of bridge 7 on one LAN
    ("ieee802.1d-2004-fig17.4", {1, 3, 5, 7}),       # ... bridge 7 an RSTP one: a backup port
    ("ieee802.1d-2004-fig17.6", {1, 3, 5}),
    ("iol-io-1.5 topology change", {1, 2}),
])
def test_stp_and_rstp_bridges_together_make_the_same_tree(name, rstp_bridges):
    """Open vSwitch's STP scenarios with some bridges running RSTP: the same root, root ports,
    costs and blocked (discarding) ports; ports on no LAN are edge ports on the RSTP bridges."""
    sim = Sim()
    sim.script(mixed(SCENARIOS[name], rstp_bridges))
    for n in rstp_bridges:
        b = sim.bridges[n]
        assert isinstance(b, R.Rstp)
        for o, p in b.ports.items():
            peers = [(m, i) for (m, i), lan in sim.lan.items()
                     if lan is not None and lan == sim.lan.get((n, o)) and (m, i) != (n, o)]
            # an 802.1D bridge's designated port on the LAN sends config BPDUs: ours speaks STP
            # there (one that is not designated is silent, and reads our RST BPDUs as config)
            if p.state != R.DISABLED and any(m not in rstp_bridges and sim.bridges[m].role(i) == "designated"
                                             for m, i in peers):
                assert not p.send_rstp, f"bridge {n} port {o}: RST BPDUs to an 802.1D bridge\n{b.show()}"
            if not peers and p.state != R.DISABLED:
                assert p.oper_edge, f"bridge {n} port {o}: on no LAN, not an edge port\n{b.show()}"
