"""CFM (IEEE 802.1ag continuity check), as Open vSwitch's lib/cfm.c in its standard (not
extended) mode.

One ``CfmSession`` per port with ``cfm: {mpid: N}``: it sends a CCM every interval (3.3 ms to
10 min, rounded down to 802.1ag's steps; 1 s by default) to 01:80:c2:00:00:30, ethertype
0x8902, with Open vSwitch's MAID (MD name "ovs", MA name "ovs"), so the two interoperate.
Every fault interval (3.5 × the CCM interval) it looks at what arrived since the last look:

* remote MPs not heard from are forgotten; none left: fault ``recv``;
* a CCM with another MAID: ``maid``; with the RDI bit (the remote hears nobody): ``rdi``;
  with our own MPID: ``loopback``; from more than 256 remote MPs: ``overflow``;
* ``cfm/set-fault`` overrides it (``override``).

One ``Cfm`` per bridge is its SlowProtocol (ofproto/special.py: it claims 0x8902 frames to the
CCM address on its ports, and its CCMs leave whatever STP says) and a liveness input: a port
with a session may be enabled while the session has no fault (ORed with BFD's forwarding, as
Open vSwitch 3.1's may_enable).  Times in seconds on the bridge's clock (``run(now)``).
Contract: the control thread only.  Cost: ``run`` is O(sessions + remote MPs).
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from .ofproto.special import LinkHealth

CCM_DST = bytes.fromhex("0180c2000030")
ETH_TYPE_CFM = 0x8902
CCM = struct.Struct("!BBBBIH48sHQB5sB")         # 75 bytes
CCM_ACCEPT_LEN = 74
MAX_RMPS = 256
RDI = 0x80
FAULTS = ("recv", "rdi", "maid", "loopback", "overflow", "override")
INTERVALS_MS = {1: 3, 2: 10, 3: 100, 4: 1000, 5: 10000, 6: 60000, 7: 600000}


def ovs_maid() -> bytes:
    """Open vSwitch's MAID: MD name format 4 (string) "ovs", MA name format 2 (string) "ovs"."""
    return (bytes([4, 3]) + b"ovs" + bytes([2, 3]) + b"ovs").ljust(48, b"\x00")


def ccm_interval(ms: int) -> int:
    """802.1ag's interval code for the largest step not above MS (as ms_to_ccm_interval)."""
    for code in range(7, 0, -1):
        if INTERVALS_MS[code] <= ms:
            return code
    return 1


@dataclass
class RemoteMp:
    mpid: int
    recv: bool = True
    seq: int = 0
    last_rx: float = 0.0


@dataclass
class CfmSession:
    """One port's maintenance point.  SEND(frame) transmits a CCM."""
    name: str
    mpid: int
    interval_ms: int
    src_mac: bytes
    send: Callable[[bytes], None]
    now: float = 0.0
    on_change: Callable[[], None] = lambda: None
    maid: bytes = field(default_factory=ovs_maid)

    def __post_init__(self) -> None:
        self.code = ccm_interval(self.interval_ms)
        self.interval_ms = INTERVALS_MS[self.code]
        self.seq = 0
        self.rmps: dict[int, RemoteMp] = {}
        self.remote_mpids: list[int] = []
        self.fault: set[str] = set()
        self.recv_fault: set[str] = set()
        self.fault_override: bool | None = None
        self.booted = False
        self.next_tx = self.now
        self.next_check = self.now + self.fault_interval()
        self.flap_count = 0
        self.rx = self.tx = 0
        self._ok = False

    def fault_interval(self) -> float:
        return self.interval_ms * 7 / 2 / 1000

    def faults(self) -> set[str]:
        if self.fault_override is not None:
            return {"override"} if self.fault_override else set()
        return self.fault

    def ok(self) -> bool:
        return not self.faults()

    def run(self, now: float) -> None:
        self.now = now
        if now >= self.next_check:
            old = set(self.fault)
            self.fault, self.recv_fault = set(self.recv_fault), set()
            for mpid, rmp in list(self.rmps.items()):
                if not rmp.recv:
                    del self.rmps[mpid]
                else:
                    rmp.recv = False
            self.remote_mpids = sorted(self.rmps)
            if not self.rmps:
                self.fault.add("recv")
            if old != self.fault and (not old or not self.fault):
                self.flap_count += 1
            self.booted = True
            self.next_check = now + self.fault_interval()
        if now >= self.next_tx:
            self._transmit(now)
        self._notify()

    def _notify(self) -> None:
        ok = self.ok()
        if ok != self._ok:
            self._ok = ok
            self.on_change()

    def _transmit(self, now: float) -> None:
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        flags = self.code | (RDI if self.booted and not self.rmps else 0)
        pdu = CCM.pack(0, 1, flags, 70, self.seq, self.mpid, self.maid, 0, 0, 0, bytes(5), 0)
        self.next_tx = now + self.interval_ms / 1000
        self.tx += 1
        self.send(CCM_DST + self.src_mac + ETH_TYPE_CFM.to_bytes(2, "big") + pdu)

    def receive(self, frame: bytes, now: float) -> None:
        """A CCM the hook caught (as Open vSwitch's cfm_process_heartbeat)."""
        self.now = now
        off = 14
        if frame[12:14] in (b"\x81\x00", b"\x88\xa8"):
            off = 18
        body = frame[off:]
        if len(body) < CCM_ACCEPT_LEN or body[1] != 1:
            return
        body = body.ljust(CCM.size, b"\x00")
        _, _, flags, _, seq, mpid, maid, _, _, _, _, _ = CCM.unpack_from(body)
        self.rx += 1
        if maid != self.maid:
            self.recv_fault.add("maid")
            return
        fault = set()
        rmp = self.rmps.get(mpid)
        if rmp is None:
            if len(self.rmps) < MAX_RMPS:
                rmp = self.rmps[mpid] = RemoteMp(mpid)
            else:
                fault.add("overflow")
        if flags & RDI:
            fault.add("rdi")
        if rmp is not None:
            if mpid == self.mpid:
                fault.add("loopback")
            rmp.recv, rmp.seq, rmp.last_rx = True, seq, now
        # (Open vSwitch records faults only for a CCM it keeps, so its overflow never shows;
        # here a CCM dropped for want of room is the overflow fault it names.)
        self.recv_fault |= fault

    def show(self) -> str:
        """Open vSwitch's cfm/show for one interface."""
        out = [f"---- {self.name} ----",
               f"MPID {self.mpid}:{' fault_override' if self.fault_override is not None else ''}"]
        f = self.faults()
        if f:
            out.append("\tfault: " + " ".join(x for x in FAULTS if x in f))
        out += ["\taverage health: undefined" if len(self.rmps) != 1 else "\taverage health: 100",
                "\topstate: up", "\tremote_opstate: up", f"\tinterval: {self.interval_ms}ms",
                f"\tnext CCM tx: {max(0, round((self.next_tx - self.now) * 1000))}ms",
                f"\tnext fault check: {max(0, round((self.next_check - self.now) * 1000))}ms"]
        for mpid, rmp in sorted(self.rmps.items()):
            out += [f"Remote MPID {mpid}", f"\trecv since check: {'true' if rmp.recv else 'false'}",
                    "\topstate: up"]
        return "\n".join(out)


class Cfm(LinkHealth):
    """A bridge's CFM sessions, by OpenFlow port: its SlowProtocol and liveness input."""

    name = "cfm"
    sessions: dict[int, CfmSession]

    def healthy(self, session: CfmSession) -> bool:
        return session.ok()

    def claims(self, ofport: int, flow) -> bool:
        if ofport not in self.sessions:
            return False
        return flow.get("eth_dst") == 0x0180C2000030 and flow.get("eth_type") == ETH_TYPE_CFM
