"""What a bridge's OpenFlow side says about its connections, in-process: a packet-in that finds its
connection closing is counted as dropped on that connection (``packet_ins_dropped``, which
``ofproto/list-controllers`` shows), and one sent is not.  (The commands themselves, with real
controllers, are in test_openflow_ofctl.py and test_openflow_osken.py.)"""
from __future__ import annotations

import asyncio

from dpdkswitch.ofswitch.channel import OFSwitch, connection_status
from dpdkswitch.openflow import consts as C
from dpdkswitch.openflow.connection import OFConnection


class Transport:
    def __init__(self, closing: bool):
        self.closing, self.written = closing, []

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default


class Owner:
    """The parts of OFSwitch that _broadcast uses: its connections and who wants what."""

    def __init__(self, conns):
        self.conns = set(conns)

    def _wants(self, conn, kind, reason) -> bool:
        return True


def test_packet_ins_to_a_closing_connection_are_counted_dropped():
    async def run():
        up, closing = (OFConnection(None, "primary", f"tcp:127.0.0.1:{n}") for n in (1, 2))
        for conn, t in ((up, Transport(False)), (closing, Transport(True))):
            conn.transport, conn.version, conn.connected_at = t, C.OFP13_VERSION, 0.0
        owner = Owner([up, closing])
        for _ in range(3):
            OFSwitch._broadcast(owner, "packet_in", C.OFPR_NO_MATCH, lambda conn: b"pi")
        OFSwitch._broadcast(owner, "port_status", C.OFPPR_MODIFY, lambda conn: b"ps")
        return up, closing

    up, closing = asyncio.run(run())
    # The packet-ins of a turn go out in one write, before any other message (order kept).
    assert up.transport.written == [b"pi" * 3, b"ps"] and closing.transport.written == []
    assert connection_status(up, 5.0)["packet_ins_dropped"] == 0
    got = connection_status(closing, 5.0)
    assert got["packet_ins_dropped"] == 3 and got["messages_out"] == 0      # a port-status is not a packet-in
    assert (got["peer"], got["version"], got["role"], got["sec_since_connect"]) == \
        ("127.0.0.1:40000", "OpenFlow13", "other", 5)
