"""Open vSwitch's RSTP simulator scenarios (tests/rstp.at, run there by ovstest test-rstp): a
single bridge, link failure, double link failure, and 802.1D-2004 figures 17.4-17.7, run here
on rstp.py with the same small language:

    bridge N ID = LAN[:COST][^PORTPRIO] ...   a bridge and its ports' LANs (0: on no LAN,
                                              X: disabled)
    bridge N ^ PRIO                           a new bridge priority
    run N                                     N seconds (a timer tick and delivery each)
    check N = root | STATE[:COST] ...         F Di D (forwarding, discarding, disabled);
                                              F:C = the root port, at root path cost C

Path cost defaults to 200000, as there.  Time is simulated (no datapath, no waiting).
"""
import re

import pytest

from dpdkswitch import rstp as R

STATE = {"F": R.FORWARDING, "Di": R.DISCARDING, "D": R.DISABLED, "Le": R.LEARNING}


class Sim:
    def __init__(self):
        self.bridges: dict[int, R.Rstp] = {}
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

    def deliver(self):
        for _ in range(100000):
            if not self.queue:
                return
            m, o, frame = self.queue.pop(0)
            self.bridges[m].receive(o, frame, self.now)
        raise AssertionError("BPDUs never stop")

    def bridge(self, n, ident, lans):
        if ident is not None:
            self.bridges[n] = R.Rstp(f"rstp{n}", int(ident, 16), send=lambda o, f, n=n: self._send(n, o, f),
                                     now=self.now)
        b = self.bridges[n]
        for i, spec in enumerate(lans, 1):
            if spec == "X":
                if i in b.ports:
                    b.disable_port(i)
                self.lan.pop((n, i), None)
                continue
            m = re.fullmatch(r"(\w)(?::(\d+))?(?:\^(\d+))?", spec)
            assert m, spec
            lan, cost, prio = m.group(1), m.group(2), m.group(3)
            self.lan[n, i] = None if lan == "0" else lan
            if i not in b.ports:
                b.add_port(i, f"p{i}", int(cost or 200000), int(prio or 128))
            else:
                b.enable_port(i)
                if cost:
                    b.set_path_cost(i, int(cost))
                if prio:
                    b.set_port_priority(i, int(prio))
        self.deliver()

    def run(self, seconds):
        for _ in range(seconds):
            self.now += 1
            for b in self.bridges.values():
                b.tick(self.now)
            self.deliver()

    def check(self, n, spec):
        b = self.bridges[n]
        if spec == ["root"]:
            assert b.is_root(), f"bridge {n} is not the root:\n{b.show()}"
            return
        assert not b.is_root(), f"bridge {n} is the root:\n{b.show()}"
        for i, want in enumerate(spec, 1):
            state, _, cost = want.partition(":")
            got = b.ports[i]
            assert got.state == STATE[state], f"bridge {n} port {i}: {got.state}, want {want}\n{b.show()}"
            if cost:
                assert got.role == R.ROOT, f"bridge {n} port {i}: {got.role}, want root\n{b.show()}"
                assert b.root_priority.cost == int(cost), f"bridge {n}: cost {b.root_priority.cost}, want {cost}"
            else:
                assert got.role != R.ROOT, f"bridge {n} port {i} is the root port\n{b.show()}"


def play(script):
    sim = Sim()
    for line in script.strip().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] == "run":
            sim.run(int(words[1]))
        elif words[0] == "check":
            sim.check(int(words[1]), words[3:])
        elif words[0] == "bridge" and words[2] == "^":
            sim.bridges[int(words[1])].set_priority(int(words[3]))
            sim.deliver()
        elif words[0] == "bridge":
            ident = None if words[2] == "=" else words[2]
            lans = words[3:] if ident is None else words[4:]
            sim.bridge(int(words[1]), ident, lans)
        else:
            raise AssertionError(line)
    return sim


SCENARIOS = {
    "single bridge": """
bridge 0 0x111 = a b
run 1000
check 0 = root
""",
    "link failure": """
bridge 0 0x111 = a b
bridge 1 0x222 = a c
bridge 2 0x333 = b c
run 1000
check 0 = root
check 1 = F:200000 F
check 2 = F:200000 Di
# Link b goes down
bridge 2 = X c
run 1000
check 1 = F:200000 F
check 2 = D F:400000
""",
    "double link failure": """
bridge 0 0x111 = a b
bridge 1 0x222 = a c d
bridge 2 0x333 = b c e
bridge 3 0x444 = d f
bridge 4 0x555 = e f
run 1000
check 0 = root
check 1 = F:200000 F F
check 2 = F:200000 Di F
check 3 = F:400000 F
check 4 = F:400000 Di
# Link b goes down
bridge 2 = X c e
run 1000
check 0 = root
check 1 = F:200000 F F
check 2 = D F:400000 F
check 3 = F:400000 F
check 4 = F:600000 Di
# Link e goes down
bridge 4 = X f
run 1000
check 0 = root
check 1 = F:200000 F F
check 2 = D F:400000 F
check 3 = F:400000 F
check 4 = D F:600000
# Link f cost changes
bridge 4 = X f:100000
run 1000
check 4 = D F:500000
# Bridge 4 becomes root
bridge 4 ^ 31000
run 1000
check 4 = root
""",
    "802.1D-2004 figures 17.4 and 17.5": """
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
check 1 = F:200000 Di F F
check 2 = F:200000 Di F F F F
check 3 = F:200000 Di F F F F
check 4 = F:400000 Di F F
check 5 = F:400000 Di F F
check 6 = F:400000 Di F F
check 7 = F:400000 Di F F
# Now connect two ports of bridge 7 to the same LAN: one is a backup port.
bridge 7 = l n o o
run 1000
check 0 = root
check 1 = F:200000 Di F F
check 2 = F:200000 Di F F F F
check 3 = F:200000 Di F F F F
check 4 = F:400000 Di F F
check 5 = F:400000 Di F F
check 6 = F:400000 Di F F
check 7 = F:400000 Di F Di
""",
    "802.1D-2004 figure 17.6": """
bridge 0 0x111 = a b l
bridge 1 0x222 = b c d
bridge 2 0x333 = d e f
bridge 3 0x444 = f g h
bridge 4 0x555 = j h i
bridge 5 0x666 = l j k
run 1000
check 0 = root
check 1 = F:200000 F F
check 2 = F:400000 F F
check 3 = F:600000 F Di
check 4 = F:400000 F F
check 5 = F:200000 F F
""",
    "802.1D-2004 figure 17.7": """
bridge 0 0x000 = b
bridge 1 0x111 = a b d f h g e c
bridge 2 0x222 = g h j l n m k i
run 1000
check 0 = root
check 1 = F F:200000 F F F F F F
check 2 = Di F:400000 F F F F F F
# Link g priority increment
bridge 1 = a b d f h g^112 e c
run 1000
check 0 = root
check 1 = F F:200000 F F F F F F
check 2 = F:400000 Di F F F F F F
""",
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_open_vswitch_rstp_scenario(name):
    play(SCENARIOS[name])


def test_fig_17_4_two_ports_on_one_lan_make_a_backup_port():
    """On figure 17.4 with two ports of bridge 7 on LAN o, the second port of bridge 7 on LAN o is a backup port."""
    sim = play(SCENARIOS["802.1D-2004 figures 17.4 and 17.5"])
    assert [sim.bridges[7].role(i) for i in (3, 4)] == [R.DESIGNATED, R.BACKUP]
