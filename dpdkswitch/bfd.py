"""BFD (RFC 5880 asynchronous mode, single hop over UDP/IPv4, RFC 5881), as Open vSwitch's lib/bfd.c.

One ``BfdSession`` per port with ``bfd: {enable: true}``; one ``Bfd`` per bridge holds them and
is the bridge's ``SlowProtocol`` (ofproto/special.py): it claims IPv4/UDP frames to port 3784 on
those ports (the megaflow matches eth_type, ip_proto and tp_dst; eth_dst too, as Open vSwitch's
bfd_should_process_flow), and a liveness input (ofproto/liveness.py): a port with a session may
be enabled only while the session is forwarding (up, and the remote's diagnostic is not a path
down).  Control packets leave as packet-outs with no input port, from ``run(now)``:

* state machine of RFC 5880 §6.8.6 (admin_down, down, init, up) with its diagnostics;
* detection time = max(min_rx, remote min_tx) × remote mult, from the last control packet;
* transmit interval = max(min_tx, remote min_rx), 1 s at least while not up (§6.8.3), less a
  jitter of 0-25 % (§6.8.7);
* poll/final (§6.5): a change of min_tx or min_rx while up is announced with Poll and takes
  effect on the Final; a received Poll is answered at once with Final;
* TTL 255 required on receipt (RFC 5881); no authentication, no demand mode, no echo.

Times are in seconds on the bridge's clock (``run``'s NOW), so tests use the manual clock.
Contract: the control thread only.  Cost: ``run`` is O(sessions); a packet O(1).
"""
from __future__ import annotations

import ipaddress
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass

from .ofproto.special import LinkHealth

ADMIN_DOWN, DOWN, INIT, UP = 0, 1, 2, 3
STATE_NAMES = {ADMIN_DOWN: "admin_down", DOWN: "down", INIT: "init", UP: "up"}
DIAG_NONE, DIAG_EXPIRED, DIAG_RMT_DOWN, DIAG_PATH_DOWN, DIAG_CPATH_DOWN, DIAG_ADMIN_DOWN, DIAG_RCPATH_DOWN = (
    0, 1, 3, 5, 6, 7, 8)
DIAG_NAMES = {0: "No Diagnostic", 1: "Control Detection Time Expired", 2: "Echo Function Failed",
              3: "Neighbor Signaled Session Down", 4: "Forwarding Plane Reset", 5: "Path Down",
              6: "Concatenated Path Down", 7: "Administratively Down", 8: "Reverse Concatenated Path Down"}
FLAG_POLL, FLAG_FINAL, FLAG_CTL, FLAG_AUTH, FLAG_DEMAND, FLAG_MULTIPOINT = 0x20, 0x10, 0x08, 0x04, 0x02, 0x01
PORT = 3784
MSG = struct.Struct("!BBBBIIIII")          # 24 bytes: vers|diag, state|flags, mult, length, discs, times
DEFAULT_DST_MAC = "00:23:20:00:00:01"
DEFAULT_SRC_IP, DEFAULT_DST_IP = "169.254.1.1", "169.254.1.0"


def _csum(b: bytes) -> int:
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


@dataclass
class BfdSettings:
    min_rx: int = 1000                    # ms
    min_tx: int = 100
    mult: int = 3
    cpath_down: bool = False
    decay_min_rx: int = 0                 # ms; 0: no decay.  Up and little else received: min_rx decays to it
    forwarding_if_rx: bool = False        # forwarding while data arrives, even with the session down
    dst_mac: str = DEFAULT_DST_MAC
    src_ip: str = DEFAULT_SRC_IP
    dst_ip: str = DEFAULT_DST_IP


class BfdSession:
    """One port's session.  SEND(frame) transmits a control packet; RNG: its jitter and ids."""

    def __init__(self, name: str, settings: BfdSettings, src_mac: bytes, send: Callable[[bytes], None],
                 now: float, rng: random.Random | None = None,
                 on_change: Callable[[], None] = lambda: None, rx_packets: Callable[[], int] = lambda: 0):
        """RX_PACKETS: the port's received-packet counter (decay_min_rx, forwarding_if_rx)."""
        self.name, self.cfg, self.src_mac, self.send, self.on_change = name, settings, src_mac, send, on_change
        self.rx_packets = rx_packets
        self.now = now
        self.in_decay = False
        self.decay_rx_ctl = 0
        self.decay_rx_packets = 0
        self.decay_detect_time = 0.0
        self.fwd_rx_packets = self.fwd_rx_ctl = 0
        self.forwarding_if_rx_detect_time = 0.0
        self.rng = rng or random.Random()
        self.disc = self.rng.randrange(1, 1 << 32)
        self.udp_src = self.rng.randrange(49152, 65536)
        self.state, self.diag = DOWN, DIAG_NONE
        self.flags = 0
        self.min_tx, self.min_rx = settings.min_tx, settings.min_rx
        self.poll_min_tx = self.poll_min_rx = 0
        self.mult = settings.mult
        self._reset_remote()
        self.detect_time = 0.0
        self.last_tx = now
        self.next_tx = now                    # the first packet at once
        self.flap_count = 0
        self.rx = self.tx = self.rx_invalid = 0
        self.tx_gap_max = 0.0                 # seconds: the longest time between two packets sent while up
        self._tx_up = 0                       # the transmit interval (ms) the last packet was sent at, if up
        self.forwarding_override: bool | None = None
        self._forwarding = False

    def _reset_remote(self) -> None:
        self.rmt_state, self.rmt_diag, self.rmt_flags, self.rmt_disc = DOWN, DIAG_NONE, 0, 0
        self.rmt_min_rx, self.rmt_min_tx, self.rmt_mult = 1, 0, 0

    # -- timers
    def tx_min(self) -> int:
        """bfd.DesiredMinTxInterval: 1 s at least while not up (RFC 5880 §6.8.3)."""
        return self.min_tx if self.state == UP else max(self.min_tx, 1000)

    def tx_interval(self) -> int:
        return max(self.tx_min(), self.rmt_min_rx)

    def rx_interval(self) -> int:
        return max(self.min_rx, self.rmt_min_tx)

    def _set_next_tx(self) -> None:
        interval = self.tx_interval()
        interval -= interval * self.rng.randrange(26) / 100
        self.next_tx = self.last_tx + interval / 1000

    def set_settings(self, settings: BfdSettings) -> None:
        """New timers or mult: up, a change of min_tx/min_rx starts a poll sequence (§6.8.3)."""
        self.cfg, self.mult = settings, settings.mult
        if self.state != UP:
            self.min_tx, self.min_rx = settings.min_tx, settings.min_rx
        elif (settings.min_tx, settings.min_rx) != (self.min_tx, self.min_rx):
            self._poll()

    def _decay_update(self) -> None:
        self.decay_rx_packets = self.rx_packets()
        self.decay_rx_ctl = 0
        self.decay_detect_time = self.now + max(self.cfg.decay_min_rx, 2000) / 1000

    def _poll(self) -> None:
        if self.state > DOWN and not self.flags & (FLAG_POLL | FLAG_FINAL):
            self.poll_min_tx = self.cfg.min_tx
            self.poll_min_rx = self.cfg.decay_min_rx if self.in_decay else self.cfg.min_rx
            self.flags |= FLAG_POLL
            self.next_tx = 0.0

    def run(self, now: float) -> None:
        """Detection time, decay, data received, then whatever is due to be sent."""
        self.now = now
        old_in_decay = self.in_decay
        if self.state > DOWN and now >= self.detect_time:
            self._set_state(DOWN, DIAG_EXPIRED)
        if self.state == UP and self.cfg.decay_min_rx > 0 and now >= self.decay_detect_time:
            # Open vSwitch's bfd_try_decay: little but control packets arrived (twice their
            # count, for counters read at other moments): min_rx decays to decay_min_rx
            diff = self.rx_packets() - self.decay_rx_packets
            self.in_decay = diff <= 2 * max(self.decay_rx_ctl, 1)
            self._decay_update()
        if self.cfg.forwarding_if_rx:
            rx = self.rx_packets()
            if rx - self.fwd_rx_packets > self.fwd_rx_ctl:    # data besides control packets
                self.forwarding_if_rx_detect_time = now + max(self.rx_interval() * self.mult, 2000) / 1000
            self.fwd_rx_packets, self.fwd_rx_ctl = rx, 0
        want_rx = self.cfg.decay_min_rx if self.in_decay else self.cfg.min_rx
        if (self.min_tx != self.cfg.min_tx or self.min_rx != want_rx or self.in_decay != old_in_decay):
            self._poll()
        if self.flags & FLAG_FINAL or now >= self.next_tx:
            self._transmit(now)
        self._check_forwarding()

    # -- state
    def _set_state(self, state: int, diag: int) -> None:
        if self.cfg.cpath_down:
            diag = DIAG_CPATH_DOWN
        if (state, diag) == (self.state, self.diag):
            return
        self.state, self.diag = state, diag
        if state <= DOWN:
            self._reset_remote()
            self.min_tx, self.min_rx = self.cfg.min_tx, self.cfg.min_rx
            self.flags &= ~FLAG_POLL
            self.in_decay = False
        if state == UP and self.cfg.decay_min_rx:
            self._decay_update()
        self._check_forwarding()

    def forwarding(self) -> bool:
        """Open vSwitch's bfd_forwarding: up, and the remote reports no path down."""
        if self.forwarding_override is not None:
            return self.forwarding_override
        rx_alive = self.cfg.forwarding_if_rx and self.forwarding_if_rx_detect_time > self.now
        return ((self.state == UP or rx_alive)
                and self.rmt_diag not in (DIAG_PATH_DOWN, DIAG_CPATH_DOWN, DIAG_RCPATH_DOWN))

    def _check_forwarding(self) -> None:
        f = self.forwarding()
        if f != self._forwarding:
            self._forwarding = f
            self.flap_count += 1
            self.on_change()

    # -- packets
    def _transmit(self, now: float) -> None:
        if self.flags & FLAG_POLL:
            min_tx, min_rx = self.poll_min_tx, self.poll_min_rx
        else:
            min_tx, min_rx = self.tx_min(), self.min_rx
        msg = MSG.pack((1 << 5) | self.diag, (self.state << 6) | self.flags, self.mult, MSG.size, self.disc,
                       self.rmt_disc, min_tx * 1000, min_rx * 1000, 0)
        udp = struct.pack("!HHHH", self.udp_src, PORT, 8 + len(msg), 0) + msg
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(udp), 0, 0, 255, 17, 0,
                         ipaddress.IPv4Address(self.cfg.src_ip).packed, ipaddress.IPv4Address(self.cfg.dst_ip).packed)
        ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
        frame = bytes.fromhex(self.cfg.dst_mac.replace(":", "")) + self.src_mac + b"\x08\x00" + ip + udp
        self.flags &= ~FLAG_FINAL
        interval = self.tx_interval() if self.state == UP else 0
        if interval and interval == self._tx_up:       # up both times, at one interval
            self.tx_gap_max = max(self.tx_gap_max, now - self.last_tx)
        self._tx_up = interval
        self.now = self.last_tx = now
        self._set_next_tx()
        self.tx += 1
        self.send(frame)

    def receive(self, frame: bytes, now: float) -> None:
        """A frame the hook caught (RFC 5880 §6.8.6, as Open vSwitch's bfd_process_packet)."""
        ok = (len(frame) >= 14 + 20 + 8 + MSG.size and frame[12:14] == b"\x08\x00" and frame[14] >> 4 == 4
              and frame[22] == 255)
        ihl = (frame[14] & 0xF) * 4 if ok else 0
        if not ok or len(frame) < 14 + ihl + 8 + MSG.size:
            self.rx_invalid += 1
            return
        vd, sf, mult, length, my_disc, your_disc, min_tx, min_rx, _ = MSG.unpack_from(frame, 14 + ihl + 8)
        flags, rmt_state = sf & 0x3F, sf >> 6
        if (vd >> 5 != 1 or flags & (FLAG_AUTH | FLAG_MULTIPOINT) or length < MSG.size or not mult
                or not my_disc or (your_disc and your_disc != self.disc) or (not your_disc and rmt_state > DOWN)):
            self.rx_invalid += 1
            return
        self.rx += 1
        self.now = now
        self.decay_rx_ctl += 1
        self.fwd_rx_ctl += 1
        self.rmt_disc, self.rmt_state, self.rmt_flags, self.rmt_diag = my_disc, rmt_state, flags, vd & 0x1F
        self.rmt_mult = mult
        if flags & FLAG_FINAL and self.flags & FLAG_POLL:
            self.min_tx, self.min_rx = self.poll_min_tx, self.poll_min_rx
            self.flags &= ~FLAG_POLL
        if flags & FLAG_POLL:
            self.flags = (self.flags & ~FLAG_POLL) | FLAG_FINAL
        rmt_min_rx = max(min_rx // 1000, 1)
        if rmt_min_rx != self.rmt_min_rx:
            self.rmt_min_rx = rmt_min_rx
            self._set_next_tx()
        self.rmt_min_tx = max(min_tx // 1000, 1)
        self.detect_time = now + self.rx_interval() * mult / 1000
        if self.state == ADMIN_DOWN:
            return
        if rmt_state == ADMIN_DOWN:
            if self.state != DOWN:
                self._set_state(DOWN, DIAG_RMT_DOWN)
        elif self.state == DOWN:
            if rmt_state == DOWN:
                self._set_state(INIT, self.diag)
            elif rmt_state == INIT:
                self._set_state(UP, self.diag)
        elif self.state == INIT:
            if rmt_state > DOWN:
                self._set_state(UP, self.diag)
        elif self.state == UP and rmt_state <= DOWN:
            self._set_state(DOWN, DIAG_RMT_DOWN)
        self._check_forwarding()

    def show(self) -> str:
        """Open vSwitch's bfd/show for one interface."""
        def flags(f: int) -> str:
            names = [n for bit, n in ((FLAG_MULTIPOINT, "multipoint"), (FLAG_DEMAND, "demand"), (FLAG_AUTH, "auth"),
                                      (FLAG_CTL, "ctl"), (FLAG_FINAL, "final"), (FLAG_POLL, "poll")) if f & bit]
            return " ".join(names) or "none"
        return "\n".join([
            f"---- {self.name} ----",
            f"\tForwarding: {'true' if self.forwarding() else 'false'}",
            f"\tDetect Multiplier: {self.mult}",
            f"\tConcatenated Path Down: {'true' if self.cfg.cpath_down else 'false'}",
            f"\tTX Interval: Approx {self.tx_interval()}ms",
            f"\tRX Interval: Approx {self.rx_interval()}ms",
            f"\tDetect Time: now {round((self.now - self.detect_time) * 1000):+d}ms",
            f"\tNext TX Time: now {round((self.now - self.next_tx) * 1000):+d}ms",
            f"\tLast TX Time: now {round((self.now - self.last_tx) * 1000):+d}ms",
            "",
            f"\tLocal Flags: {flags(self.flags)}",
            f"\tLocal Session State: {STATE_NAMES[self.state]}",
            f"\tLocal Diagnostic: {DIAG_NAMES.get(self.diag, 'Invalid Diagnostic')}",
            f"\tLocal Discriminator: 0x{self.disc:x}",
            f"\tLocal Minimum TX Interval: {self.tx_min()}ms",
            f"\tLocal Minimum RX Interval: {self.min_rx}ms",
            "",
            f"\tRemote Flags: {flags(self.rmt_flags)}",
            f"\tRemote Session State: {STATE_NAMES[self.rmt_state]}",
            f"\tRemote Diagnostic: {DIAG_NAMES.get(self.rmt_diag, 'Invalid Diagnostic')}",
            f"\tRemote Discriminator: 0x{self.rmt_disc:x}",
            f"\tRemote Minimum TX Interval: {self.rmt_min_tx}ms",
            f"\tRemote Minimum RX Interval: {self.rmt_min_rx}ms",
            f"\tRemote Detect Multiplier: {self.rmt_mult}",
            "",
            f"\tFlap Count: {self.flap_count}",
            f"\tWorst TX Gap: {round(self.tx_gap_max * 1000)}ms"])


class Bfd(LinkHealth):
    """A bridge's BFD sessions, by OpenFlow port: its SlowProtocol and liveness input."""

    name = "bfd"
    sessions: dict[int, BfdSession]

    def healthy(self, session: BfdSession) -> bool:
        return session.forwarding()

    def claims(self, ofport: int, flow) -> bool:
        if ofport not in self.sessions:
            return False
        return (flow.get("eth_type") == 0x0800 and flow.get("ip_proto") == 17 and flow.get("udp_dst") == PORT)
