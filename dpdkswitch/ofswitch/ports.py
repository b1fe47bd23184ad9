"""The bridge's ports as OpenFlow sees them: port-mod (the OFPPC_* configuration bits: down,
no-recv, no-fwd, no-packet-in, no-flood), port desc, port stats, queues (none: the datapath has
no queues), and port-status messages for ports that came, went, or changed (their link, their
liveness, their spanning tree state: OpenFlow 1.0's STP bits, OpenFlow 1.3's OFPPS_BLOCKED).

Contract: the control thread's asyncio loop.  Cost: port desc and stats are O(ports) (stats: a
datapath call each); a link check (``poll_links``) is a datapath call per port, plus a few
``ip`` calls for ports in namespaces.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from ..datapath import DatapathError
from ..ofproto import actions as A
from ..openflow import consts as C
from ..openflow.errors import OFPError
from ..openflow.message import PortMod, PortStatus, QueueGetConfigReply, encode
from ..openflow.multipart import PortStats
from ..openflow.records import Port
from ..switch import Bridge
from .duration import split_time

V10, V13 = C.OFP10_VERSION, C.OFP13_VERSION
SPEEDS = [(10, C.OFPPF_10MB_FD), (100, C.OFPPF_100MB_FD), (1000, C.OFPPF_1GB_FD), (10000, C.OFPPF_10GB_FD),
          (40000, C.OFPPF_40GB_FD), (100000, C.OFPPF_100GB_FD), (1000000, C.OFPPF_1TB_FD)]
NO_PACKET_IN = C.OFPPC_NO_PACKET_IN | C.OFPPC_NO_RECV | C.OFPPC_PORT_DOWN
# OpenFlow 1.0's port state STP bits (OFPPS_STP_LISTEN 0, LEARN, FORWARD, BLOCK << 8)
RSTP_AS_STP = {"discarding": "listening", "learning": "learning", "forwarding": "forwarding", "disabled": "disabled"}
STP_BITS = {"listening": 0 << 8, "learning": 1 << 8, "forwarding": 2 << 8, "blocking": 3 << 8}


def mac_int(text: str) -> int:
    """A MAC address in text ("02:00:00:00:00:01") as the integer OpenFlow carries; 0 if bad."""
    try:
        return int(text.replace(":", ""), 16)
    except ValueError:
        return 0


class PortManager:
    """One bridge's ports, for its OpenFlow switch.  BROADCAST(kind, reason, make) sends an
    async message to the connections that want it; CHANGED() says the ports changed (the
    switch brings the cached megaflows in line)."""

    def __init__(self, br: Bridge, broadcast: Callable[..., None], changed: Callable[[], None]):
        self.br = br
        self.pipeline = br.pipeline
        self.broadcast = broadcast
        self.changed = changed
        self.config: dict[int, int] = {}            # ofport -> OFPPC_* bits set by port-mod
        self.snapshot: dict[int, tuple] = {}        # ofport -> _state()'s tuple
        self.since: dict[int, float] = {}
        self.link: dict[int, bool] = {}

    def start(self) -> None:
        self.snapshot = self._state()

    def sends_packet_ins(self, ofport: int) -> bool:
        """Whether frames received on OFPORT may go to controllers (port-mod may say not)."""
        return not self.config.get(ofport, 0) & NO_PACKET_IN

    # -- port-mod
    def port_mod(self, conn, msg: PortMod):
        p = self.pipeline
        entry = p.ports.get(msg.port_no)
        port = self.br.by_ofport(msg.port_no)
        if entry is None or port is None:
            raise OFPError(C.OFPET_PORT_MOD_FAILED, C.OFPPMFC_BAD_PORT)
        if msg.hw_addr != mac_int(port.info.mac):
            raise OFPError(C.OFPET_PORT_MOD_FAILED, C.OFPPMFC_BAD_HW_ADDR)
        allowed = C.OFPPC_PORT_DOWN | C.OFPPC_NO_RECV | C.OFPPC_NO_FWD | C.OFPPC_NO_PACKET_IN | C.OFPPC_NO_FLOOD
        if conn.version == V10:
            allowed |= C.OFPPC_NO_STP | C.OFPPC_NO_RECV_STP
        if msg.mask & ~allowed:
            raise OFPError(C.OFPET_PORT_MOD_FAILED, C.OFPPMFC_BAD_CONFIG)
        cfg = self.config.get(msg.port_no, 0)
        cfg = (cfg & ~msg.mask) | (msg.config & msg.mask)
        self.config[msg.port_no] = cfg
        entry.no_fwd = bool(cfg & (C.OFPPC_NO_FWD | C.OFPPC_PORT_DOWN))
        entry.no_flood = bool(cfg & C.OFPPC_NO_FLOOD)
        p.liveness.set_admin_down(msg.port_no, bool(cfg & C.OFPPC_PORT_DOWN))
        p.set_port(entry)                       # bumps the version: every megaflow is looked at again
        self.changed()

    # -- descriptions and stats
    def _record(self, port, version: int, link_up: bool) -> Port:
        cfg = self.config.get(port.ofport, 0)
        entry = self.pipeline.ports.get(port.ofport)
        state = 0 if link_up else C.OFPPS_LINK_DOWN
        stp = self.br.stp.state(port.ofport) if self.br.stp is not None else "disabled"
        if self.br.rstp is not None:             # RSTP's states in the STP bits, as update_rstp_port_state
            stp = RSTP_AS_STP[self.br.rstp.state(port.ofport)]
        if version == V10:
            state |= STP_BITS.get(stp, 0)
        elif stp not in ("disabled", "forwarding"):
            state |= C.OFPPS_BLOCKED            # the spanning tree blocks it (OpenFlow 1.3 has no STP bits)
        if version == V13:
            cfg &= ~(C.OFPPC_NO_FLOOD | C.OFPPC_NO_STP | C.OFPPC_NO_RECV_STP)
            if link_up and not (cfg & C.OFPPC_PORT_DOWN) and (entry is None or entry.live):
                state |= C.OFPPS_LIVE
        speed = port.info.link_speed or 0
        curr = next((bit for mbps, bit in SPEEDS if mbps == speed), C.OFPPF_OTHER if speed else 0)
        if version == V10:
            curr &= (1 << 7) - 1
        return Port(port_no=port.ofport, hw_addr=mac_int(port.info.mac), name=port.name[:15], config=cfg,
                    state=state, curr=curr, advertised=0, supported=curr, peer=0,
                    curr_speed=speed * 1000, max_speed=speed * 1000)

    def desc(self, version: int) -> list[Port]:
        """Every port's description, in VERSION's terms, by port number."""
        out = []
        for port in sorted(self.br.ports.values(), key=lambda p: p.ofport):
            out.append(self._record(port, version, self.link.get(port.ofport, port.info.link_up)))
        return out

    def mp_port_desc(self, conn, msg):
        return self.desc(conn.version)

    def mp_port_stats(self, conn, msg):
        want = msg.body.port_no
        out = []
        for port in sorted(self.br.ports.values(), key=lambda p: p.ofport):
            if want not in (A.OFPP_ANY, port.ofport):
                continue
            try:
                s = self.br.port_stats(port)
            except DatapathError:
                continue
            sec, nsec = split_time(time.monotonic() - self.since.get(port.ofport, time.monotonic()))
            out.append(PortStats(port_no=port.ofport, rx_packets=s["rx_packets"], tx_packets=s["tx_packets"],
                                 rx_bytes=s["rx_bytes"], tx_bytes=s["tx_bytes"],
                                 rx_dropped=s["rx_missed"] + s["rx_nombuf"], tx_dropped=s["tx_dropped"],
                                 rx_errors=s["rx_errors"], tx_errors=s["tx_errors"], duration_sec=sec,
                                 duration_nsec=nsec))
        return out

    # -- queues: none
    def queue_config(self, conn, msg):
        if msg.port not in self.pipeline.ports and msg.port != A.OFPP_ANY:
            raise OFPError(C.OFPET_QUEUE_OP_FAILED, C.OFPQOFC_BAD_PORT)
        reply = QueueGetConfigReply(port=msg.port)
        reply.xid = msg.xid
        conn.send_msg(reply)

    def mp_queue(self, conn, msg):
        want = msg.body.port_no
        if want != A.OFPP_ANY and want not in self.pipeline.ports:
            raise OFPError(C.OFPET_QUEUE_OP_FAILED, C.OFPQOFC_BAD_PORT)
        return []

    # -- port-status
    def _state(self) -> dict[int, tuple]:
        """ofport -> (name, dp_port, config bits, STP state, live) of the bridge's ports now."""
        now = time.monotonic()
        out = {}
        for e in self.pipeline.ports.values():
            stp = self.br.stp.state(e.ofport) if self.br.stp is not None else "disabled"
            if self.br.rstp is not None:
                stp = RSTP_AS_STP[self.br.rstp.state(e.ofport)]
            out[e.ofport] = (e.name, e.dp_port, self.config.get(e.ofport, 0), stp, e.live)
            if self.snapshot.get(e.ofport, (None, None))[:2] != out[e.ofport][:2]:
                self.since[e.ofport] = now
        return out

    def poll_status(self) -> None:
        """Port-status messages for ports that came, went or changed since the last look."""
        state = self._state()
        if state != self.snapshot:
            old, self.snapshot = self.snapshot, state
            for ofport in sorted(set(old) | set(state)):
                if ofport in old and ofport not in state:
                    rec = Port(port_no=ofport, name=old[ofport][0], config=C.OFPPC_PORT_DOWN,
                               state=C.OFPPS_LINK_DOWN)
                    self.link.pop(ofport, None)
                    self.config.pop(ofport, None)
                    self.since.pop(ofport, None)
                    self._status(C.OFPPR_DELETE, lambda v, rec=rec: rec)
                elif old.get(ofport) != state[ofport]:
                    port = self.br.by_ofport(ofport)
                    if port is not None:
                        reason = C.OFPPR_ADD if ofport not in old or old[ofport][1] != state[ofport][1] \
                            else C.OFPPR_MODIFY
                        self._status(reason, lambda v, port=port: self._record(
                            port, v, self.link.get(port.ofport, port.info.link_up)))

    def poll_links(self) -> None:
        """Link changes: the port's carrier for its liveness (``Pipeline.liveness``; a change
        of may_enable revalidates), and port-status MODIFY."""
        for port in list(self.br.ports.values()):
            try:
                up = self.br.port_info(port).link_up
            except DatapathError:
                continue
            if self.link.get(port.ofport, port.info.link_up) != up:
                self.link[port.ofport] = up
                if self.pipeline.liveness.set_carrier(port.ofport, up):
                    self.changed()              # fast-failover buckets watching it, say
                self._status(C.OFPPR_MODIFY, lambda v, port=port, up=up: self._record(port, v, up))
                now = self._state().get(port.ofport)
                if now is not None and port.ofport in self.snapshot:
                    self.snapshot[port.ofport] = now    # this message told the liveness change too

    def _status(self, reason: int, record) -> None:
        self.broadcast("port_status", reason, lambda conn: encode(PortStatus(
            reason=reason, desc=record(conn.version), version=conn.version)))
