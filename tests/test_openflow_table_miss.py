"""Table misses and the OpenFlow version of the controller: under OpenFlow 1.0 a miss is a
packet-in (reason no_match, cut to miss_send_len), under 1.3 it is a drop unless a table-miss
rule says otherwise.  As Open vSwitch: misses go to the controllers while any controller
connection speaks 1.0, and cached misses follow when that changes.

The switch runs as a user runs it, fail mode secure (no rules at all), with an active
controller target served by this module's raw OpenFlow client."""
from __future__ import annotations

import os
import socket

import pytest

from dpdkswitch.ofproto import actions as A
from dpdkswitch.openflow import codec as C
from dpdkswitch.openflow import consts as K

from test_openflow_robust import Client, controller_listener, controller_switch

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

MISSED = bytes.fromhex("020000000002020000000001080045000032000100004011f96b0a0000010a000002") + bytes(200)
SENT = bytes.fromhex("020000000002020000000001080045000032000200004011f96a0a0000010a000002") + bytes(30)


@pytest.fixture
def sw(tmp_path):
    s = controller_switch(tmp_path, "m", "secure")
    yield s
    log = s.stop()
    assert s.proc.returncode == 0, log


def packet_ins(ctl: Client, watcher: Client) -> list:
    """A frame through the tables (packet-out to TABLE: no rule matches it), then one sent to
    the controller by its own action: the packet-ins the controller gets, up to the second."""
    watcher.send(C.PacketOut(in_port=1, actions=(A.Output(A.OFPP_TABLE),), data=MISSED))
    watcher.send(C.PacketOut(in_port=1, actions=(A.Output(A.OFPP_CONTROLLER),), data=SENT))
    watcher.barrier()
    got = []
    while not got or got[-1].data != SENT:             # the upcalls come in order
        m = ctl.recv()
        assert m is not None, "the switch closed the controller connection"
        if isinstance(m, C.PacketIn):
            got.append(m)
    return got


def controller(ls: socket.socket, version: int) -> Client:
    s, _ = ls.accept()
    return Client(sock=s, versions=(version,))


def test_a_table_miss_is_a_packet_in_for_an_openflow_10_controller_and_a_drop_for_13(sw):
    ls = controller_listener(sw.ctl_port, 15)
    watcher = Client(sw.port)
    try:
        ctl = controller(ls, 1)
        ctl.barrier()
        miss, sent = packet_ins(ctl, watcher)
        assert miss.match["in_port"] == (1, None)
        assert miss.reason == K.OFPR_NO_MATCH and miss.total_len == len(MISSED)
        assert miss.data == MISSED[:128]                # the connection's miss_send_len (default 128)
        assert sent.reason == K.OFPR_ACTION and sent.data == SENT
        ctl.close()

        ctl = controller(ls, 4)                         # the switch reconnects; now OpenFlow 1.3
        ctl.barrier()
        (sent,) = packet_ins(ctl, watcher)              # the miss is dropped: no packet-in for it
        assert sent.reason == K.OFPR_ACTION and sent.data == SENT
        ctl.close()
    finally:
        ls.close()
        watcher.close()
