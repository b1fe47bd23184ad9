"""Control protocols' frames, caught before the OpenFlow tables (Open vSwitch's process_special).

A bridge's control protocols (STP today; LACP, BFD, CFM later) each register one
``SlowProtocol`` with the bridge's ``Specials`` (``Pipeline.special``).  Translation asks the
registry first, on the input port and again on the peer port of every patch port a frame
crosses: a protocol that ``claims`` the frame gets it, and the frame's megaflow is one
userspace action whose cookie has ``odp.CONTROL_COOKIE`` set (the datapath queues those on a
ring of their own, drained before the misses: a miss storm cannot starve the protocols).  The
fields a protocol read to decide are matched by the megaflow (read through ``FlowView.get``),
so other traffic keeps its own megaflows.  The upcall handler hands the frame back through
``Specials.deliver`` to the protocol, which answers, when it does, by a packet-out with no
input port through its bridge's public calls.

A protocol may also gate the port (``forwarding``, ``learning``, ``sends_bpdu``): STP's port
states, as Open vSwitch's xport_stp_*_state.  Translation asks ``Specials`` and never knows
which protocol said no.

Contract: the control thread only (translation, the upcall handler and the protocols' timers
all run there).  Cost: one call per registered protocol for each translation, a few field reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

BPDU_DST = 0x0180C2000000            # 802.1D's bridge group address (STP and RSTP)
ETH_TYPE_NONE = 0x05FF               # the flow key's eth_type of an 802.3 (length) frame


class FlowView(Protocol):
    """A translation's flow, read field by field; every field read is matched by the megaflow."""

    def get(self, name: str) -> int: ...


class SlowProtocol(Protocol):
    """One control protocol of one bridge, as the hook sees it."""

    name: str                         # "stp", "lacp", "bfd", "cfm": one of each per bridge

    def claims(self, ofport: int, flow: FlowView) -> bool:
        """Whether the frame with FLOW, received on OFPORT, is this protocol's to handle."""

    def receive(self, ofport: int, frame: bytes, now: float) -> None:
        """FRAME, a frame it claimed, came in on OFPORT at NOW (seconds, the datapath's clock)."""

    def forwarding(self, ofport: int) -> bool:
        """Whether frames received on OFPORT may be forwarded, and frames may leave by it."""

    def learning(self, ofport: int) -> bool:
        """Whether NORMAL may learn source MACs from frames received on OFPORT."""

    def sends_bpdu(self, ofport: int) -> bool:
        """Whether a BPDU (a frame to 01:80:c2:00:00:00) may leave by OFPORT."""

    def exempt(self, ofport: int, flow: FlowView) -> bool:
        """Whether FLOW leaving by OFPORT is this protocol's link-health frame, which leaves
        whatever the port gates say (BFD, CFM: "STP should not block link health detection")."""


class LinkHealth:
    """A link-health protocol of one bridge (BFD, CFM): one session per OpenFlow port, each with
    ``run(now)`` and ``receive(frame, now)``; a SlowProtocol that gates nothing and whose own frames
    leave whatever STP says, and a liveness input (``may_enable``) from ``healthy(session)``."""

    name = ""

    def __init__(self, bridge: str) -> None:
        self.bridge = bridge
        self.sessions: dict = {}

    def add(self, ofport: int, session) -> None:
        self.sessions[ofport] = session

    def remove(self, ofport: int) -> None:
        self.sessions.pop(ofport, None)

    def run(self, now: float) -> None:
        for s in list(self.sessions.values()):
            s.run(now)

    def healthy(self, session) -> bool:
        """Whether SESSION says its port may be enabled."""
        raise NotImplementedError

    # SlowProtocol
    def claims(self, ofport: int, flow: FlowView) -> bool:
        raise NotImplementedError

    def receive(self, ofport: int, frame: bytes, now: float) -> None:
        s = self.sessions.get(ofport)
        if s is not None:
            s.receive(frame, now)

    def forwarding(self, ofport: int) -> bool:
        return True

    def learning(self, ofport: int) -> bool:
        return True

    def sends_bpdu(self, ofport: int) -> bool:
        return True

    def exempt(self, ofport: int, flow: FlowView) -> bool:
        """Its own control frames leave a port with a session whatever STP says of the port."""
        return self.claims(ofport, flow)

    # liveness input
    def may_enable(self, ofport: int) -> bool | None:
        s = self.sessions.get(ofport)
        return None if s is None else self.healthy(s)


@dataclass(frozen=True)
class SpecialIn:
    """The context of a control protocol's userspace action (interned in the translator's
    ``PacketInRegistry`` as packet-ins are: its cookie is its id | ``odp.CONTROL_COOKIE``)."""
    bridge: str
    in_port: int                      # OpenFlow port of BRIDGE the frame came in by
    protocol: str


class Specials:
    """One bridge's registered control protocols."""

    def __init__(self) -> None:
        self.protocols: dict[str, SlowProtocol] = {}
        self.received: dict[str, int] = {}          # frames delivered, by protocol
        self.unclaimed = 0                          # delivered for a protocol no longer there

    def register(self, proto: SlowProtocol) -> None:
        """PROTO handles its frames on this bridge from now on (one per name: a second replaces
        the first).  The caller revalidates (the megaflows now cached miss the hook)."""
        self.protocols[proto.name] = proto

    def unregister(self, name: str) -> None:
        self.protocols.pop(name, None)

    def __bool__(self) -> bool:
        return bool(self.protocols)

    def claim(self, ofport: int, flow: FlowView) -> SlowProtocol | None:
        """The protocol whose frame FLOW (received on OFPORT) is, if any."""
        for proto in self.protocols.values():
            if proto.claims(ofport, flow):
                return proto
        return None

    def deliver(self, name: str, ofport: int, frame: bytes, now: float) -> bool:
        """A claimed frame back from the datapath, to its protocol; False when it is gone."""
        proto = self.protocols.get(name)
        if proto is None:
            self.unclaimed += 1
            return False
        self.received[name] = self.received.get(name, 0) + 1
        proto.receive(ofport, frame, now)
        return True

    # -- the port gates (every protocol must agree)
    def forwarding(self, ofport: int) -> bool:
        return all(p.forwarding(ofport) for p in self.protocols.values())

    def learning(self, ofport: int) -> bool:
        return all(p.learning(ofport) for p in self.protocols.values())

    def sends_bpdu(self, ofport: int) -> bool:
        return all(p.sends_bpdu(ofport) for p in self.protocols.values())

    def exempt(self, ofport: int, flow: FlowView) -> bool:
        return any(p.exempt(ofport, flow) for p in self.protocols.values())


def is_bpdu(flow: FlowView) -> bool:
    """An 802.1D BPDU (STP or RSTP): to the bridge group address, 802.3 with LLC (Open
    vSwitch's is_stp); reads eth_dst, and eth_type only for frames to that address."""
    return flow.get("eth_dst") == BPDU_DST and flow.get("eth_type") == ETH_TYPE_NONE
