"""The Spanning Tree Protocol (IEEE 802.1D-1998, clause 8), as Open vSwitch's lib/stp.c runs it.

One ``Stp`` per bridge with ``stp_enable``: its bridge id (priority and MAC), the bridge timers
(hello time, max age, forward delay: the root's are everyone's), and an ``StpPort`` per port
that takes part (port id = priority << 8 | OpenFlow port number, path cost, the 802.1D port
variables, state blocking → listening → learning → forwarding, or disabled).  It owns the
state machine and the timers; everything else reaches it through calls:

* ``tick(now)``: time passed (seconds, the datapath's clock, so tests run it on the manual
  clock; the timers count 1/256 s ticks, as Open vSwitch's, and keep the remainder);
* ``receive(ofport, frame, now)``: a BPDU the translation hook (ofproto/special.py) caught on
  the port; it is a ``SlowProtocol`` there, claiming 802.1D BPDUs and gating ports:
  ``forwarding`` (disabled or forwarding), ``learning`` (disabled, learning or forwarding),
  ``sends_bpdu`` (any state but blocking), as Open vSwitch's xport_stp_*_state;
* what it does goes out through callbacks the bridge gives it: ``send(ofport, frame)`` for a
  BPDU (a packet-out with no input port), ``on_state(ofport, old, new)`` when a port changes
  state, ``on_flush()`` when a topology change means the MAC table must be flushed.

Contract: the control thread only.  Cost: a tick is O(ports); a BPDU is O(ports) (root and
designated port selection).
"""
from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from .ofproto.special import is_bpdu

LOG = logging.getLogger("dpdkswitch.stp")

DISABLED, LISTENING, LEARNING, FORWARDING, BLOCKING = "disabled", "listening", "learning", "forwarding", "blocking"
STATES = (DISABLED, LISTENING, LEARNING, FORWARDING, BLOCKING)

BPDU_DST = bytes.fromhex("0180c2000000")
LLC = bytes((0x42, 0x42, 0x03))
TYPE_CONFIG, TYPE_TCN = 0x00, 0x80
FLAG_TC, FLAG_TCA = 0x01, 0x80
CONFIG_BPDU = struct.Struct("!HBBBQIQHHHHH")     # 35 bytes: header, flags, root, cost, bridge, port, times
TICKS = 256                                      # timer ticks per second (802.1D's 1/256 s units)
MESSAGE_AGE_INCREMENT = 1
HOLD_TICKS = TICKS                               # at most one config BPDU a second per port
DEFAULT_PRIORITY = 32768
DEFAULT_PORT_PRIORITY = 128


def cost_for_speed(mbps: int) -> int:
    """802.1D-1998's recommended path cost for a link speed (Mb/s), as Open vSwitch's
    stp_convert_speed_to_cost; an unknown speed (0) costs as 100 Mb/s."""
    for speed, cost in ((10000, 2), (1000, 4), (100, 19), (16, 62), (10, 100), (4, 250)):
        if mbps >= speed:
            return cost
    return 19


def _clamp(x: int, lo: int, hi: int) -> int:
    return lo if x < lo else hi if x > hi else x


class _Timer:
    __slots__ = ("active", "value")

    def __init__(self) -> None:
        self.active, self.value = False, 0

    def start(self, value: int = 0) -> None:
        self.active, self.value = True, value

    def stop(self) -> None:
        self.active = False

    def expired(self, elapsed: int, timeout: int) -> bool:
        if self.active:
            self.value += elapsed
            if self.value >= timeout:
                self.active = False
                return True
        return False


@dataclass(eq=False)
class StpPort:
    ofport: int
    name: str
    port_id: int
    path_cost: int
    mac: bytes = b"\x00" * 6               # the source address of its BPDUs
    state: str = DISABLED
    designated_root: int = 0
    designated_cost: int = 0
    designated_bridge: int = 0
    designated_port: int = 0
    topology_change_ack: bool = False
    config_pending: bool = False
    change_detection: bool = True
    message_age: _Timer = field(default_factory=_Timer)
    forward_delay: _Timer = field(default_factory=_Timer)
    hold: _Timer = field(default_factory=_Timer)
    rx_bpdus: int = 0
    tx_bpdus: int = 0
    errors: int = 0

    @property
    def priority(self) -> int:
        return self.port_id >> 8


class Stp:
    """One bridge's spanning tree.  BRIDGE_MAC: 48 bits (the bridge's MAC); times in seconds."""

    def __init__(self, name: str, bridge_mac: int, priority: int = DEFAULT_PRIORITY, hello_time: float = 2,
                 max_age: float = 20, forward_delay: float = 15,
                 send: Callable[[int, bytes], None] = lambda ofport, frame: None,
                 on_state: Callable[[int, str, str], None] = lambda ofport, old, new: None,
                 on_flush: Callable[[], None] = lambda: None, now: float = 0.0):
        self.name = "stp"                        # its name as a SlowProtocol
        self.bridge = name
        self.send, self.on_state, self.on_flush = send, on_state, on_flush
        self.bridge_id = (priority << 48) | (bridge_mac & ((1 << 48) - 1))
        self.rq = (hello_time, max_age, forward_delay)
        self.ports: dict[int, StpPort] = {}
        self.designated_root = self.bridge_id
        self.root_path_cost = 0
        self.root_port: StpPort | None = None
        self.topology_change_detected = False
        self.topology_change = False
        self.hello = _Timer()
        self.tcn_timer = _Timer()
        self.topology_change_timer = _Timer()
        self.last = now
        self.remainder = 0.0
        self.tcn_sent = self.tcn_acked = self.flushes = 0
        self._update_bridge_timers()
        self.max_age, self.hello_time, self.forward_delay = (self.bridge_max_age, self.bridge_hello_time,
                                                             self.bridge_forward_delay)
        self.hello.start(0)

    # -- configuration
    def _update_bridge_timers(self) -> None:
        """The requested times, clamped as 802.1D requires (hello 1-10 s, max age 6-40 s and
        ≥ 2 × (hello + 1 s), forward delay 4-30 s and ≥ max age / 2 + 1 s), in ticks."""
        ht = _clamp(int(self.rq[0] * 1000), 1000, 10000)
        ma = _clamp(int(self.rq[1] * 1000), max(2 * (ht + 1000), 6000), 40000)
        fd = _clamp(int(self.rq[2] * 1000), ma // 2 + 1000, 30000)
        self.bridge_hello_time, self.bridge_max_age, self.bridge_forward_delay = (
            ht * TICKS // 1000, ma * TICKS // 1000, fd * TICKS // 1000)
        if self.is_root():
            self.max_age, self.hello_time, self.forward_delay = (self.bridge_max_age, self.bridge_hello_time,
                                                                 self.bridge_forward_delay)

    def set_times(self, hello_time: float, max_age: float, forward_delay: float) -> None:
        self.rq = (hello_time, max_age, forward_delay)
        self._update_bridge_timers()

    def set_priority(self, priority: int) -> None:
        self._set_bridge_id((priority << 48) | (self.bridge_id & ((1 << 48) - 1)))

    def _set_bridge_id(self, new: int) -> None:
        if new == self.bridge_id:
            return
        root = self.is_root()
        for p in self._enabled():
            if self._is_designated(p):
                p.designated_bridge = new
        self.bridge_id = new
        self._configuration_update()
        self._port_state_selection()
        if self.is_root() and not root:
            self._become_root_bridge()

    def add_port(self, ofport: int, name: str, path_cost: int, priority: int = DEFAULT_PORT_PRIORITY,
                 mac: bytes = b"\x00" * 6, enabled: bool = True) -> StpPort:
        """A port taking part (OFPORT 1..255 is its port number), enabled (blocking) or not."""
        p = StpPort(ofport, name, (priority << 8) | (ofport & 0xFF), path_cost, mac)
        self.ports[ofport] = p
        self._initialize_port(p, DISABLED)
        if enabled:
            self.enable_port(ofport)
        return p

    def remove_port(self, ofport: int) -> None:
        if ofport in self.ports:
            self.disable_port(ofport)
            del self.ports[ofport]

    def enable_port(self, ofport: int) -> None:
        """The port's link is up (and STP is on for it): it starts blocking."""
        p = self.ports[ofport]
        if p.state == DISABLED:
            self._initialize_port(p, BLOCKING)
            self._port_state_selection()

    def disable_port(self, ofport: int) -> None:
        p = self.ports[ofport]
        if p.state == DISABLED:
            return
        root = self.is_root()
        self._become_designated_port(p)
        self._set_state(p, DISABLED)
        p.topology_change_ack = p.config_pending = False
        p.message_age.stop()
        p.forward_delay.stop()
        self._configuration_update()
        self._port_state_selection()
        if self.is_root() and not root:
            self._become_root_bridge()

    def set_port_priority(self, ofport: int, priority: int) -> None:
        p = self.ports[ofport]
        new = (p.port_id & 0xFF) | (priority << 8)
        if new == p.port_id:
            return
        if self._is_designated(p):
            p.designated_port = new
        p.port_id = new
        if self.bridge_id == p.designated_bridge and p.port_id < p.designated_port:
            self._become_designated_port(p)
            self._port_state_selection()

    def set_path_cost(self, ofport: int, cost: int) -> None:
        p = self.ports[ofport]
        if p.path_cost != cost:
            p.path_cost = cost
            self._configuration_update()
            self._port_state_selection()

    # -- what others ask
    def is_root(self) -> bool:
        return self.bridge_id == self.designated_root

    def state(self, ofport: int) -> str:
        p = self.ports.get(ofport)
        return p.state if p is not None else DISABLED

    def role(self, ofport: int) -> str:
        """root, designated, alternate or disabled (as Open vSwitch's stp_port_get_role)."""
        p = self.ports.get(ofport)
        if p is None or p.state == DISABLED:
            return "disabled"
        if p is self.root_port:
            return "root"
        return "designated" if self._is_designated(p) else "alternate"

    # SlowProtocol (ofproto/special.py)
    def claims(self, ofport: int, flow) -> bool:
        return is_bpdu(flow)

    def forwarding(self, ofport: int) -> bool:
        return self.state(ofport) in (DISABLED, FORWARDING)

    def learning(self, ofport: int) -> bool:
        return self.state(ofport) in (DISABLED, LEARNING, FORWARDING)

    def sends_bpdu(self, ofport: int) -> bool:
        return self.state(ofport) != BLOCKING

    def exempt(self, ofport: int, flow) -> bool:
        return False

    # -- time
    def tick(self, now: float) -> None:
        """NOW (seconds) on the bridge's clock: the timers that expired since the last call fire."""
        ms = max(0.0, now - self.last) * 1000 + self.remainder
        self.last = now
        elapsed = int(ms * TICKS // 1000)
        self.remainder = ms - elapsed * 1000 / TICKS
        if not elapsed:
            return
        if self.hello.expired(elapsed, self.hello_time):
            self._config_bpdu_generation()
            self.hello.start(0)
        if self.tcn_timer.expired(elapsed, self.bridge_hello_time):
            self._transmit_tcn()
            self.tcn_timer.start(0)
        if self.topology_change_timer.expired(elapsed, self.max_age + self.forward_delay):
            self.topology_change_detected = self.topology_change = False
        for p in self._enabled():
            if p.message_age.expired(elapsed, self.max_age):
                self._message_age_expiry(p)
        for p in self._enabled():
            if p.forward_delay.expired(elapsed, self.forward_delay):
                self._forward_delay_expiry(p)
            if p.hold.expired(elapsed, HOLD_TICKS) and p.config_pending:
                self._transmit_config(p)

    # -- BPDUs in
    def receive(self, ofport: int, frame: bytes, now: float) -> None:
        """FRAME (Ethernet, 802.3 + LLC) came in on OFPORT."""
        self.tick(now)
        p = self.ports.get(ofport)
        if p is None or p.state == DISABLED:
            return
        if len(frame) < 14 + 3 + 4 or frame[14:17] != LLC:
            p.errors += 1
            return
        length = int.from_bytes(frame[12:14], "big")
        bpdu = frame[17:14 + length] if 3 <= length <= len(frame) - 14 else frame[17:]
        if len(bpdu) < 4 or bpdu[0:2] != b"\x00\x00":
            p.errors += 1
            return
        kind = bpdu[3]
        p.rx_bpdus += 1
        if kind == TYPE_CONFIG and len(bpdu) >= CONFIG_BPDU.size:
            (_, _, _, flags, root, cost, bridge, port_id, age, max_age, hello, fwd) = CONFIG_BPDU.unpack_from(bpdu)
            self._received_config(p, flags, root, cost, bridge, port_id, age, max_age, hello, fwd)
        elif kind == TYPE_TCN:
            self._received_tcn(p)
        elif bpdu[2] >= 2 and kind == 0x02 and len(bpdu) >= CONFIG_BPDU.size:
            # An RSTP BPDU (version 2): an 802.1D-1998 bridge reads its config part (802.1D-2004
            # 17.4 keeps the fields where 1998 had them), so an RSTP peer falls back to STP.
            (_, _, _, flags, root, cost, bridge, port_id, age, max_age, hello, fwd) = CONFIG_BPDU.unpack_from(bpdu)
            self._received_config(p, flags & (FLAG_TC | FLAG_TCA), root, cost, bridge, port_id, age, max_age,
                                  hello, fwd)
        else:
            p.errors += 1

    def _received_config(self, p: StpPort, flags, root, cost, bridge, port_id, age, max_age, hello, fwd) -> None:
        if age >= max_age:
            p.errors += 1
            return
        was_root = self.is_root()
        if self._supersedes_port_info(p, root, cost, bridge, port_id):
            p.designated_root, p.designated_cost = root, cost
            p.designated_bridge, p.designated_port = bridge, port_id
            p.message_age.start(age)
            self._configuration_update()
            self._port_state_selection()
            if not self.is_root() and was_root:
                self.hello.stop()
                if self.topology_change_detected:
                    self.topology_change_timer.stop()
                    self._transmit_tcn()
                    self.tcn_timer.start(0)
            if p is self.root_port:
                self.max_age, self.hello_time, self.forward_delay = max_age, hello, fwd
                self.topology_change = bool(flags & FLAG_TC)
                if self.topology_change:
                    self._flush()            # the root says the topology changed: age MACs out now
                self._config_bpdu_generation()
                if flags & FLAG_TCA:
                    self.topology_change_detected = False
                    self.tcn_timer.stop()
                    self.tcn_acked += 1
        elif self._is_designated(p):
            self._transmit_config(p)

    def _received_tcn(self, p: StpPort) -> None:
        if self._is_designated(p):
            self._topology_change_detection()
            p.topology_change_ack = True
            self._transmit_config(p)

    def tcn(self) -> None:
        """``stp/tcn``: as if this bridge detected a topology change."""
        self._topology_change_detection()

    # -- 802.1D clause 8.6 procedures
    def _enabled(self):
        return [p for p in self.ports.values() if p.state != DISABLED]

    def _is_designated(self, p: StpPort) -> bool:
        return p.designated_bridge == self.bridge_id and p.designated_port == p.port_id

    def _supersedes_port_info(self, p: StpPort, root, cost, bridge, port_id) -> bool:
        if root != p.designated_root:
            return root < p.designated_root
        if cost != p.designated_cost:
            return cost < p.designated_cost
        if bridge != p.designated_bridge:
            return bridge < p.designated_bridge
        return bridge != self.bridge_id or port_id <= p.designated_port

    def _supersedes_root(self, root: StpPort, p: StpPort) -> bool:
        pc, rc = p.designated_cost + p.path_cost, root.designated_cost + root.path_cost
        if p.designated_root != root.designated_root:
            return p.designated_root < root.designated_root
        if pc != rc:
            return pc < rc
        if p.designated_bridge != root.designated_bridge:
            return p.designated_bridge < root.designated_bridge
        if p.designated_port != root.designated_port:
            return p.designated_port < root.designated_port
        return p.port_id < root.port_id

    def _configuration_update(self) -> None:
        root = None
        for p in self._enabled():           # root selection
            if self._is_designated(p) or p.designated_root >= self.bridge_id:
                continue
            if root is None or self._supersedes_root(root, p):
                root = p
        self.root_port = root
        if root is None:
            self.designated_root, self.root_path_cost = self.bridge_id, 0
        else:
            self.designated_root = root.designated_root
            self.root_path_cost = root.designated_cost + root.path_cost
        for p in self._enabled():           # designated port selection
            if (self._is_designated(p) or p.designated_root != self.designated_root
                    or self.root_path_cost < p.designated_cost
                    or (self.root_path_cost == p.designated_cost
                        and (self.bridge_id < p.designated_bridge
                             or (self.bridge_id == p.designated_bridge and p.port_id <= p.designated_port)))):
                self._become_designated_port(p)

    def _become_designated_port(self, p: StpPort) -> None:
        p.designated_root, p.designated_cost = self.designated_root, self.root_path_cost
        p.designated_bridge, p.designated_port = self.bridge_id, p.port_id

    def _port_state_selection(self) -> None:
        for p in self._enabled():
            if p is self.root_port:
                p.config_pending = p.topology_change_ack = False
                self._make_forwarding(p)
            elif self._is_designated(p):
                p.message_age.stop()
                self._make_forwarding(p)
            else:
                p.config_pending = p.topology_change_ack = False
                self._make_blocking(p)

    def _make_forwarding(self, p: StpPort) -> None:
        if p.state == BLOCKING:
            self._set_state(p, LISTENING)
            p.forward_delay.start(0)

    def _make_blocking(self, p: StpPort) -> None:
        if p.state not in (DISABLED, BLOCKING):
            if p.state in (FORWARDING, LEARNING) and p.change_detection:
                self._topology_change_detection()
            self._set_state(p, BLOCKING)
            p.forward_delay.stop()

    def _set_state(self, p: StpPort, state: str) -> None:
        old, p.state = p.state, state
        if old != state:
            LOG.info("%s: port %s: %s -> %s", self.bridge, p.name, old, state)
            self.on_state(p.ofport, old, state)

    def _topology_change_detection(self) -> None:
        if self.is_root():
            self.topology_change = True
            self.topology_change_timer.start(0)
        elif not self.topology_change_detected:
            self._transmit_tcn()
            self.tcn_timer.start(0)
        self.topology_change_detected = True
        self._flush()

    def _flush(self) -> None:
        self.flushes += 1
        self.on_flush()

    def _message_age_expiry(self, p: StpPort) -> None:
        root = self.is_root()
        self._become_designated_port(p)
        self._configuration_update()
        self._port_state_selection()
        if self.is_root() and not root:
            self._become_root_bridge()

    def _forward_delay_expiry(self, p: StpPort) -> None:
        if p.state == LISTENING:
            self._set_state(p, LEARNING)
            p.forward_delay.start(0)
        elif p.state == LEARNING:
            self._set_state(p, FORWARDING)
            if any(q.designated_bridge == self.bridge_id for q in self._enabled()) and p.change_detection:
                self._topology_change_detection()

    def _initialize_port(self, p: StpPort, state: str) -> None:
        self._become_designated_port(p)
        self._set_state(p, state)
        p.topology_change_ack = p.config_pending = False
        p.change_detection = True
        p.message_age.stop()
        p.forward_delay.stop()
        p.hold.stop()

    def _become_root_bridge(self) -> None:
        self.max_age, self.hello_time, self.forward_delay = (self.bridge_max_age, self.bridge_hello_time,
                                                             self.bridge_forward_delay)
        self._topology_change_detection()
        self.tcn_timer.stop()
        self._config_bpdu_generation()
        self.hello.start(0)

    # -- BPDUs out
    def _config_bpdu_generation(self) -> None:
        for p in self._enabled():
            if self._is_designated(p):
                self._transmit_config(p)

    def _transmit_config(self, p: StpPort) -> None:
        root = self.is_root()
        if not root and self.root_port is None:
            return
        if p.hold.active:
            p.config_pending = True
            return
        age = 0 if root else self.root_port.message_age.value + MESSAGE_AGE_INCREMENT
        if age >= self.max_age:
            return
        flags = (FLAG_TCA if p.topology_change_ack else 0) | (FLAG_TC if self.topology_change else 0)
        bpdu = CONFIG_BPDU.pack(0, 0, TYPE_CONFIG, flags, self.designated_root, self.root_path_cost,
                                self.bridge_id, p.port_id, age, self.max_age, self.hello_time, self.forward_delay)
        p.topology_change_ack = p.config_pending = False
        self._send(p, bpdu)
        p.hold.start(0)

    def _transmit_tcn(self) -> None:
        p = self.root_port
        if p is not None:
            self.tcn_sent += 1
            self._send(p, bytes((0, 0, 0, TYPE_TCN)))

    def _send(self, p: StpPort, bpdu: bytes) -> None:
        payload = LLC + bpdu
        frame = BPDU_DST + p.mac + len(payload).to_bytes(2, "big") + payload
        frame += bytes(max(0, 60 - len(frame)))          # an Ethernet minimum frame
        p.tx_bpdus += 1
        self.send(p.ofport, frame)

    # -- stp/show
    def show(self) -> str:
        """Open vSwitch's ``stp/show`` for this bridge, in its layout (ports by our number: the
        OpenFlow port)."""
        def ident(bid: int) -> list[str]:
            mac = ":".join(f"{b:02x}" for b in (bid & ((1 << 48) - 1)).to_bytes(6, "big"))
            return [f"  stp-priority  {bid >> 48}", f"  stp-system-id   {mac}"]

        def times(ma: int, ht: int, fd: int) -> list[str]:
            return [f"  stp-hello-time  {ht // TICKS}s", f"  stp-max-age     {ma // TICKS}s",
                    f"  stp-fwd-delay   {fd // TICKS}s"]

        out = [f"---- {self.bridge} ----", "Root ID:"] + ident(self.designated_root)
        out += times(self.max_age, self.hello_time, self.forward_delay)
        if self.is_root():
            out.append("  This bridge is the root")
        else:
            rp = self.root_port
            out += [f"  root-port       {rp.name if rp else '-'}", f"  root-path-cost  {self.root_path_cost}"]
        out += ["", "Bridge ID:"] + ident(self.bridge_id)
        out += times(self.bridge_max_age, self.bridge_hello_time, self.bridge_forward_delay)
        out += ["", f"  {'Interface':<10} {'Role':<10} {'State':<10} {'Cost':<5} Pri.Nbr ",
                f"  {'-' * 10} {'-' * 10} {'-' * 10} {'-' * 5} -------"]
        for p in sorted(self.ports.values(), key=lambda q: q.ofport):
            if p.state == DISABLED:
                continue
            out.append(f"  {p.name:<10} {self.role(p.ofport):<10} {p.state:<10} {p.path_cost:<5} "
                       f"{p.priority}.{p.port_id & 0xFF}")
        return "\n".join(out)
