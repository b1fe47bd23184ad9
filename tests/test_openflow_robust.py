"""The OpenFlow channel under stress and at its edges, with a raw client built on the codec:
version negotiation, malformed and truncated messages (hypothesis), errors carrying the
offending bytes, roles, async messages (packet-in, flow-removed, port-status), multipart replies
split in parts, an active controller that reconnects with backoff, and the inactivity probe.

One switch for the module: two ``net_null`` ports (no namespaces needed), no PMD thread, a
ptcp listener, and an active controller target that this module's own fake controller serves.
"""
from __future__ import annotations

import os
import select
import socket
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dpdkswitch.ofproto import actions as A
from dpdkswitch.openflow import codec as C
from dpdkswitch.openflow import consts as K

from test_openflow_ofctl import free_port, start_switch

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

FAIL_OPEN_COOKIE = 0xFA110BE400000000


class Client:
    """A blocking OpenFlow peer: HELLO exchanged on connect (VERSIONS bitmap)."""

    def __init__(self, port: int | None = None, versions=(4,), sock: socket.socket | None = None,
                 hello: bool = True):
        self.s = sock or socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        self.version = max(versions)
        self.xid = 100
        if hello:
            self.send(C.Hello(versions=tuple(versions), version=max(versions)))
            h = self.recv()
            assert isinstance(h, C.Hello), h

    def send(self, msg) -> int:
        if isinstance(msg, (bytes, bytearray)):
            self.s.sendall(msg)
            return struct.unpack_from("!I", msg, 4)[0]
        if not msg.xid:
            self.xid += 1
            msg.xid = self.xid
        if not isinstance(msg, C.Hello):
            msg.version = self.version
        self.s.sendall(C.encode(msg))
        return msg.xid

    def recv_raw(self, timeout: float = 5.0) -> bytes | None:
        """One whole message, or None when the peer closed."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 8:
                n = struct.unpack_from("!H", self.buf, 2)[0]
                if len(self.buf) >= n:
                    m, self.buf = self.buf[:n], self.buf[n:]
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from the switch")
            r, _, _ = select.select([self.s], [], [], left)
            if r:
                try:
                    chunk = self.s.recv(1 << 16)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    return None
                self.buf += chunk

    def recv(self, timeout: float = 5.0):
        raw = self.recv_raw(timeout)
        return None if raw is None else C.decode(raw)

    def until(self, xid: int, cls, timeout: float = 5.0) -> list:
        """Messages received up to and including the CLS one with XID (echo requests answered)."""
        out = []
        while True:
            m = self.recv(timeout)
            assert m is not None, f"connection closed; got {out}"
            out.append(m)
            if isinstance(m, cls) and m.xid == xid:
                return out

    def echo(self, timeout: float = 5.0) -> list:
        """Round trip an echo; the other messages that came first."""
        xid = self.send(C.EchoRequest(data=b"ping"))
        got = self.until(xid, C.EchoReply, timeout)
        return got[:-1]

    def barrier(self) -> list:
        xid = self.send(C.BarrierRequest())
        return self.until(xid, C.BarrierReply)[:-1]

    def multipart(self, type_, body=None) -> list:
        """The reply bodies of a multipart request, parts joined."""
        xid = self.send(C.MultipartRequest(type=type_, body=body))
        parts = []
        while True:
            m = self.recv()
            if isinstance(m, C.Error):
                raise AssertionError(f"error {K.error_name(m.type, m.code)} for multipart {type_}")
            if isinstance(m, C.MultipartReply) and m.xid == xid:
                parts.append(m)
                if not m.flags & K.OFPMPF_REPLY_MORE:
                    return parts

    def close(self):
        self.s.close()


def flow_mod(**kw) -> C.FlowMod:
    return C.FlowMod(**{"match": {"in_port": (1, None)}, "priority": 100,
                        "instructions": (A.ApplyActions((A.Output(2),)),), **kw})


def controller_switch(tmp, tag: str, fail_mode: str):
    """The switch with two net_null ports (1, 2), a ptcp listener and an active controller
    target on a free port (``.ctl_port``) that the test serves itself."""
    ctl_port = free_port()
    s = start_switch(tmp, f"{os.getpid() % 10000}{tag}",
                     {"openflow": {"controllers": [f"tcp:127.0.0.1:{ctl_port}"], "fail_mode": fail_mode}},
                     taps=0, extra_ports={f"p{i}": {"device": f"net_null_{tag}{os.getpid() % 10000}_{i},no-rx=1",
                                                    "ofport": i} for i in (1, 2)})
    s.ctl_port = ctl_port
    return s


@pytest.fixture(scope="module")
def sw(tmp_path_factory):
    s = controller_switch(tmp_path_factory.mktemp("robust"), "r", "standalone")
    yield s
    log = s.stop()
    assert s.proc.returncode == 0, log


def table0(c: Client) -> list:
    return [r for part in c.multipart(K.OFPMP_FLOW, C.FlowStatsRequest(table_id=0)) for r in part.body]


# --- negotiation ------------------------------------------------------------------------------
@pytest.mark.parametrize("versions,header,expect", [
    ((4,), 4, 4), ((1,), 1, 1), ((1, 4, 5, 6), 6, 4), ((1, 2, 3), 3, 1), (None, 6, 4), (None, 1, 1),
    ((5, 6), 6, None), ((2, 3), 3, None), (None, 2, None)])
def test_version_negotiation(sw, versions, header, expect):
    s = socket.create_connection(("127.0.0.1", sw.port), timeout=5)
    c = Client(sock=s, hello=False)
    c.send(C.encode(C.Hello(versions=versions or (), version=header, xid=1)))
    hello = c.recv()
    assert isinstance(hello, C.Hello) and set(hello.versions) == {1, 4}
    if expect is None:
        err = c.recv()
        assert isinstance(err, C.Error) and err.type == K.OFPET_HELLO_FAILED, err
        assert err.code == K.OFPHFC_INCOMPATIBLE
        assert c.recv_raw() is None                # and it closes
    else:
        c.version = expect
        reply = c.until(c.send(C.FeaturesRequest()), C.FeaturesReply)[-1]
        assert reply.version == expect and reply.n_tables == 255
    c.close()


def test_message_before_hello_fails_negotiation(sw):
    c = Client(sw.port, hello=False)
    c.send(C.encode(C.FeaturesRequest(version=4, xid=9)))
    assert isinstance(c.recv(), C.Hello)
    err = c.recv()
    assert isinstance(err, C.Error) and err.type == K.OFPET_HELLO_FAILED and err.xid == 9
    assert c.recv_raw() is None


# --- malformed input --------------------------------------------------------------------------
def test_errors_carry_the_offending_message(sw):
    c = Client(sw.port)
    bad = struct.pack("!BBHI", 4, 99, 16, 77) + b"ABCDEFGH"
    c.send(bad)
    err = c.echo()[0]
    assert isinstance(err, C.Error) and (err.type, err.code) == (K.OFPET_BAD_REQUEST, K.OFPBRC_BAD_TYPE)
    assert err.xid == 77 and err.data == bad
    big = C.encode(C.PacketOut(in_port=1, actions=(A.Output(2),), data=bytes(200), xid=78))
    c.send(big[:8] + big[8:12] + b"\xff\xff" + big[14:])        # in_port 0xffff...: not a port
    err = c.echo()[0]
    assert isinstance(err, C.Error) and err.xid == 78 and err.data == (big[:12] + b"\xff\xff" + big[14:])[:64]
    # Wrong version on a negotiated connection.
    c.send(C.encode(C.FeaturesRequest(version=1, xid=79)))
    err = c.echo()[0]
    assert (err.type, err.code, err.xid) == (K.OFPET_BAD_REQUEST, K.OFPBRC_BAD_VERSION, 79)
    # Flow-mods the switch refuses, each with its own error; the connection stays.
    cases = [
        (flow_mod(table_id=255), (K.OFPET_FLOW_MOD_FAILED, K.OFPFMFC_BAD_TABLE_ID)),
        (flow_mod(instructions=(A.Meter(99), A.ApplyActions((A.Output(2),)))),
         (K.OFPET_METER_MOD_FAILED, K.OFPMMFC_UNKNOWN_METER)),
        (flow_mod(instructions=(A.ApplyActions((A.Group(5),)),)), (K.OFPET_BAD_ACTION, K.OFPBAC_BAD_OUT_GROUP)),
        (flow_mod(table_id=3, instructions=(A.GotoTable(2),)), (K.OFPET_BAD_INSTRUCTION, K.OFPBIC_BAD_TABLE_ID)),
        (flow_mod(flags=1 << 9), (K.OFPET_FLOW_MOD_FAILED, K.OFPFMFC_BAD_FLAGS)),
        (C.GroupMod(group_id=K.OFPG_ALL, buckets=()), (K.OFPET_GROUP_MOD_FAILED, K.OFPGMFC_INVALID_GROUP)),
        (C.MeterMod(meter_id=5, flags=K.OFPMF_KBPS, bands=(C.MeterBand(K.OFPMBT_DSCP_REMARK, 10),)),
         (K.OFPET_METER_MOD_FAILED, K.OFPMMFC_BAD_BAND)),
        (C.PortMod(port_no=9, hw_addr=0), (K.OFPET_PORT_MOD_FAILED, K.OFPPMFC_BAD_PORT)),
        (C.RoleRequest(role=7), (K.OFPET_ROLE_REQUEST_FAILED, K.OFPRRFC_BAD_ROLE)),
        (C.PacketOut(in_port=1, actions=(A.Output(2),), data=b"short"), (K.OFPET_BAD_REQUEST, K.OFPBRC_BAD_PACKET)),
    ]
    for msg, want in cases:
        xid = c.send(msg)
        got = c.echo()
        assert len(got) == 1 and isinstance(got[0], C.Error), (msg, got)
        assert (got[0].type, got[0].code) == want and got[0].xid == xid, (msg, got[0])
        assert got[0].data == C.encode(msg)[:64]
    # buffer_id: there are no buffers; the flow-mod applies, the buffer is unknown.
    xid = c.send(flow_mod(priority=4321, buffer_id=7))
    err = c.echo()[0]
    assert (err.type, err.code, err.xid) == (K.OFPET_BAD_REQUEST, K.OFPBRC_BUFFER_UNKNOWN, xid)
    assert any(f.priority == 4321 for f in table0(c))
    c.send(flow_mod(command=K.OFPFC_DELETE_STRICT, priority=4321))
    c.close()


def test_pipelined_flow_mods_are_applied_in_order_and_each_failure_answered(sw):
    """300 flow-mods written back to back (so the switch reads them in runs and applies each
    run together), then a barrier: each refused one (an unknown group; an add under
    check_overlap that overlaps rules added before it in the same stream) gets its own error
    with its xid, in the order sent, all before the barrier's reply; a delete in the stream
    takes the rules before it and not those after; the rest are in the table."""
    c = Client(sw.port)
    table = 9

    def add(i, **kw):
        return flow_mod(table_id=table, priority=50, match={"eth_type": (0x0800, None), "ipv4_src": (0x0A000000 | i, None)},
                        **kw)
    wide = {"eth_type": (0x0800, None)}
    msgs, bad, present = [], [], set()
    for i in range(300):
        if i % 50 == 17:
            m = add(i, instructions=(A.ApplyActions((A.Group(777),)),))
            bad.append((len(msgs), (K.OFPET_BAD_ACTION, K.OFPBAC_BAD_OUT_GROUP)))
        elif i == 100:
            m = flow_mod(table_id=table, priority=50, match=wide, flags=K.OFPFF_CHECK_OVERLAP)
            bad.append((len(msgs), (K.OFPET_FLOW_MOD_FAILED, K.OFPFMFC_OVERLAP)))
        elif i == 150:
            m = flow_mod(table_id=table, command=K.OFPFC_DELETE, match={})
            present.clear()
        elif i == 151:                            # the table is empty again: no overlap now
            m = flow_mod(table_id=table, priority=50, match=wide, flags=K.OFPFF_CHECK_OVERLAP)
            present.add((50, 0))
        else:
            m = add(i)
            present.add((50, 0x0A000000 | i))
        msgs.append(m)
    data = b""
    for m in msgs:
        c.xid += 1
        m.xid, m.version = c.xid, 4
        data += C.encode(m)
    c.s.sendall(data)
    got = c.barrier()
    errors = [m for m in got if isinstance(m, C.Error)]
    assert [(e.xid, (e.type, e.code)) for e in errors] == [(msgs[i].xid, want) for i, want in bad]
    assert all(e.data == C.encode(msgs[i])[:64] for e, (i, _) in zip(errors, bad))
    flows = {(f.priority, f.match.get("ipv4_src", (0, None))[0]) for f in
             (r for part in c.multipart(K.OFPMP_FLOW, C.FlowStatsRequest(table_id=table)) for r in part.body)}
    assert flows == present
    c.send(flow_mod(table_id=table, command=K.OFPFC_DELETE, match={}))
    c.barrier()
    c.close()


def test_framing_error_closes_only_that_connection(sw):
    a, b = Client(sw.port), Client(sw.port)
    a.send(struct.pack("!BBHI", 4, 2, 4, 1))                     # length 4 < 8: no boundary is trusted
    assert a.recv_raw() is None
    assert b.echo() == []
    b.close()


# --- roles ----------------------------------------------------------------------------------
def test_roles(sw):
    a, b = Client(sw.port), Client(sw.port)
    try:
        g = a.until(a.send(C.RoleRequest(role=K.OFPCR_ROLE_NOCHANGE)), C.RoleReply)[-1].generation_id
        r = a.until(a.send(C.RoleRequest(role=K.OFPCR_ROLE_MASTER, generation_id=g + 10)), C.RoleReply)[-1]
        assert (r.role, r.generation_id) == (K.OFPCR_ROLE_MASTER, g + 10)
        r = b.until(b.send(C.RoleRequest(role=K.OFPCR_ROLE_SLAVE, generation_id=g + 11)), C.RoleReply)[-1]
        assert r.role == K.OFPCR_ROLE_SLAVE
        xid = b.send(flow_mod(priority=555))
        err = b.echo()[0]
        assert (err.type, err.code, err.xid) == (K.OFPET_BAD_REQUEST, K.OFPBRC_IS_SLAVE, xid)
        assert isinstance(b.until(b.send(C.FeaturesRequest()), C.FeaturesReply)[-1], C.FeaturesReply)
        xid = a.send(C.RoleRequest(role=K.OFPCR_ROLE_MASTER, generation_id=g + 9))   # older than g + 11: stale
        err = a.echo()[0]
        assert (err.type, err.code) == (K.OFPET_ROLE_REQUEST_FAILED, K.OFPRRFC_STALE)
        b.until(b.send(C.RoleRequest(role=K.OFPCR_ROLE_MASTER, generation_id=g + 12)), C.RoleReply)
        r = a.until(a.send(C.RoleRequest(role=K.OFPCR_ROLE_NOCHANGE)), C.RoleReply)[-1]
        assert r.role == K.OFPCR_ROLE_SLAVE and r.generation_id == g + 12        # demoted
        a.send(C.SetAsync(packet_in_mask=(0, 0), port_status_mask=(7, 7), flow_removed_mask=(0, 0)))
        got = a.until(a.send(C.GetAsyncRequest()), C.GetAsyncReply)[-1]
        assert got.port_status_mask == (7, 7) and got.packet_in_mask == (0, 0)
    finally:
        a.close()
        b.close()


# --- async messages -------------------------------------------------------------------------
def test_async_messages(sw):
    mon, c = Client(sw.port), Client(sw.port)
    try:
        mon.send(C.SetConfig(miss_send_len=0xFFFF))                 # service connections ask for them
        mon.barrier()
        frame = bytes.fromhex("ffffffffffff0200000000010800") + bytes(50)
        # packet-in: a packet-out whose actions send to the controller
        c.send(C.PacketOut(in_port=1, actions=(A.Output(A.OFPP_CONTROLLER, 20),), data=frame))
        c.barrier()
        pi = next(m for m in iter(lambda: mon.recv(), None) if isinstance(m, C.PacketIn))
        assert pi.reason == K.OFPR_ACTION and pi.match["in_port"] == (1, None)
        assert pi.total_len == len(frame) and pi.data == frame[:20] and pi.buffer_id == K.OFP_NO_BUFFER
        # flow-removed: by delete, and by hard timeout
        c.send(flow_mod(priority=77, cookie=0xABC, flags=K.OFPFF_SEND_FLOW_REM))
        c.send(flow_mod(priority=78, cookie=0xABD, flags=K.OFPFF_SEND_FLOW_REM, hard_timeout=1))
        c.send(flow_mod(command=K.OFPFC_DELETE_STRICT, priority=77))
        c.barrier()
        seen = {}
        deadline = time.monotonic() + 5
        while len(seen) < 2:
            m = mon.recv(max(0.1, deadline - time.monotonic()))
            if isinstance(m, C.FlowRemoved) and m.cookie in (0xABC, 0xABD):
                seen[m.cookie] = m
        assert seen[0xABC].reason == K.OFPRR_DELETE and seen[0xABC].priority == 77
        assert seen[0xABD].reason == K.OFPRR_HARD_TIMEOUT and seen[0xABD].hard_timeout == 1
        assert seen[0xABC].match == {"in_port": (1, None)}
        # port-status: a port-mod changes a port's config
        desc = next(p for part in c.multipart(K.OFPMP_PORT_DESC) for p in part.body if p.port_no == 2)
        c.send(C.PortMod(port_no=2, hw_addr=desc.hw_addr, config=K.OFPPC_NO_FWD, mask=K.OFPPC_NO_FWD))
        c.barrier()
        ps = next(m for m in iter(lambda: mon.recv(), None) if isinstance(m, C.PortStatus))
        assert ps.reason == K.OFPPR_MODIFY and ps.desc.port_no == 2 and ps.desc.config & K.OFPPC_NO_FWD
        c.send(C.PortMod(port_no=2, hw_addr=desc.hw_addr, config=0, mask=K.OFPPC_NO_FWD))
        c.send(C.PortMod(port_no=2, hw_addr=desc.hw_addr + 1, config=0, mask=0))
        err = c.echo()[0]
        assert (err.type, err.code) == (K.OFPET_PORT_MOD_FAILED, K.OFPPMFC_BAD_HW_ADDR)
        # port-status: ports added and removed while the switch runs
        sw.ctl("dpif/add-port", "br0", "p9", f"net_null_r{os.getpid() % 10000}_9,no-rx=1", "9")
        ps = next(m for m in iter(lambda: mon.recv(), None) if isinstance(m, C.PortStatus) and m.desc.port_no == 9)
        assert ps.reason == K.OFPPR_ADD and ps.desc.name == "p9"
        sw.ctl("dpif/del-port", "br0", "p9")
        ps = next(m for m in iter(lambda: mon.recv(), None) if isinstance(m, C.PortStatus) and m.desc.port_no == 9)
        assert ps.reason == K.OFPPR_DELETE
    finally:
        mon.close()
        c.close()


def test_multipart_replies(sw):
    c = Client(sw.port)
    try:
        for t in (K.OFPMP_DESC, K.OFPMP_TABLE, K.OFPMP_PORT_DESC, K.OFPMP_GROUP_DESC, K.OFPMP_GROUP_FEATURES,
                  K.OFPMP_METER_FEATURES):
            assert c.multipart(t)
        assert len(c.multipart(K.OFPMP_TABLE)[0].body) == 255
        assert c.multipart(K.OFPMP_QUEUE, C.QueueStatsRequest())[0].body == ()
        stats = [p for part in c.multipart(K.OFPMP_PORT_STATS, C.PortStatsRequest()) for p in part.body]
        assert sorted(p.port_no for p in stats) == [1, 2]
        feats = c.multipart(K.OFPMP_TABLE_FEATURES, ())
        assert len(feats) > 1 and all(p.flags & K.OFPMPF_REPLY_MORE for p in feats[:-1])
        assert sum(len(p.body) for p in feats) == 255
        # 1500 flows: their stats take several messages.
        for i in range(1500):
            c.send(flow_mod(table_id=7, match={"eth_type": (0x800, None), "ipv4_dst": (i, None)}))
        c.barrier()
        parts = c.multipart(K.OFPMP_FLOW, C.FlowStatsRequest(table_id=7))
        assert len(parts) > 1 and sum(len(p.body) for p in parts) == 1500
        agg = c.multipart(K.OFPMP_AGGREGATE, C.FlowStatsRequest(table_id=7))[0].body
        assert agg.flow_count == 1500
        c.send(flow_mod(command=K.OFPFC_DELETE, table_id=7, match={}))
        c.barrier()
        assert c.multipart(K.OFPMP_AGGREGATE, C.FlowStatsRequest(table_id=7))[0].body.flow_count == 0
        # OpenFlow 1.0 stats on a 1.0 connection.
        c10 = Client(sw.port, versions=(1,))
        assert c10.multipart(K.OFPMP_DESC)[0].body.dp_desc == "br0"
        assert len(c10.multipart(K.OFPMP_TABLE)[0].body) == 255
        c10.close()
    finally:
        c.close()


# --- active controller, fail mode, probes ---------------------------------------------------
def controller_listener(port: int, timeout: float) -> socket.socket:
    """Where the switch's active controller connection lands (the test plays the controller)."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(4)
    ls.settimeout(timeout)
    return ls


def test_active_controller_reconnects_with_backoff(sw):
    ls = controller_listener(sw.ctl_port, 12)
    watcher = Client(sw.port)
    try:
        assert any(f.cookie == FAIL_OPEN_COOKIE and f.priority == 0 for f in table0(watcher))
        s, _ = ls.accept()                                     # the switch connects (within its backoff)
        ctl = Client(sock=s)
        ctl.send(C.SetConfig(miss_send_len=0xFFFF))
        ctl.barrier()
        deadline = time.monotonic() + 5
        while any(f.cookie == FAIL_OPEN_COOKIE for f in table0(watcher)):
            assert time.monotonic() < deadline, "the fail-open rule should go when a controller connects"
            time.sleep(0.1)
        # A primary connection gets packet-ins by default.
        watcher.send(C.PacketOut(in_port=2, actions=(A.Output(A.OFPP_CONTROLLER),),
                                 data=bytes.fromhex("ffffffffffff02000000000208060001") + bytes(40)))
        pi = next(m for m in iter(lambda: ctl.recv(), None) if isinstance(m, C.PacketIn))
        assert pi.match["in_port"] == (2, None)
        # It goes away: the fail-open rule is back, and the switch reconnects after ~1 s.
        ctl.close()
        t0 = time.monotonic()
        s, _ = ls.accept()
        assert 0.5 < time.monotonic() - t0 < 3
        assert any(f.cookie == FAIL_OPEN_COOKIE for f in table0(watcher))
        # Connections that never complete a HELLO: the waits double (2, then 4 s; 8 s at most).
        gaps, last = [], time.monotonic()
        s.close()
        for _ in range(2):
            s, _ = ls.accept()
            now = time.monotonic()
            gaps.append(now - last)
            last = now
            s.close()
        assert 1.5 < gaps[0] < 3 and 3.5 < gaps[1] < 5.5, gaps
    finally:
        ls.close()
        watcher.close()


def test_inactivity_probe(sw):
    c = Client(sw.port)
    t0 = time.monotonic()
    m = c.recv(timeout=8)
    assert isinstance(m, C.EchoRequest) and 4.5 < time.monotonic() - t0 < 7, m
    assert c.recv_raw(timeout=8) is None                   # no reply: closed after 2 x 5 s
    assert 9 < time.monotonic() - t0 < 13
    # A peer that answers stays connected.
    c = Client(sw.port)
    m = c.recv(timeout=8)
    assert isinstance(m, C.EchoRequest)
    c.send(C.encode(C.EchoReply(version=4, xid=m.xid)))
    assert c.echo(timeout=8) == []
    c.close()


# --- fuzz (last: the random messages change the switch's state) -------------------------
SAMPLES = [
    flow_mod(), flow_mod(command=K.OFPFC_DELETE, match={}), flow_mod(command=K.OFPFC_MODIFY_STRICT),
    C.GroupMod(group_id=7, type=K.OFPGT_SELECT, buckets=(C.Bucket(actions=(A.Output(1),), weight=3),)),
    C.MeterMod(meter_id=3, flags=K.OFPMF_PKTPS, bands=(C.MeterBand(K.OFPMBT_DROP, 1000),)),
    C.PacketOut(in_port=A.OFPP_CONTROLLER, actions=(A.Output(1),), data=bytes(60)),
    C.PortMod(port_no=1), C.SetConfig(miss_send_len=128), C.SetAsync(packet_in_mask=(7, 0)),
    C.RoleRequest(role=K.OFPCR_ROLE_EQUAL), C.TableMod(table_id=1),
    C.MultipartRequest(type=K.OFPMP_FLOW, body=C.FlowStatsRequest()),
    C.MultipartRequest(type=K.OFPMP_PORT_STATS, body=C.PortStatsRequest()),
    C.MultipartRequest(type=K.OFPMP_GROUP, body=C.GroupStatsRequest()),
    C.MultipartRequest(type=K.OFPMP_METER_CONFIG, body=C.MeterStatsRequest()),
    C.QueueGetConfigRequest(port=1), C.EchoRequest(data=b"x"),
]
SAMPLE_BYTES = [C.encode(m) for m in SAMPLES]


@st.composite
def bad_messages(draw):
    """A message with a consistent header length: random bodies of any type, or a valid sample
    with bytes flipped, truncated or extended."""
    if draw(st.booleans()):
        version = draw(st.sampled_from([4, 4, 4, 1, 2, 7]))
        type_ = draw(st.integers(0, 40))
        body = draw(st.binary(max_size=160))
    else:
        raw = bytearray(draw(st.sampled_from(SAMPLE_BYTES)))
        version, type_, body = raw[0], raw[1], bytearray(raw[8:])
        for _ in range(draw(st.integers(0, 4))):
            if body:
                i = draw(st.integers(0, len(body) - 1))
                body[i] = draw(st.integers(0, 255))
        cut = draw(st.integers(0, len(body)))
        body = bytes(body[:cut]) if draw(st.booleans()) else bytes(body) + draw(st.binary(max_size=24))
    return struct.pack("!BBHI", version, type_, 8 + len(body), draw(st.integers(0, 2**32 - 1))) + bytes(body)


@pytest.fixture(scope="module")
def fuzz_clients(sw):
    a, b = Client(sw.port), Client(sw.port)
    yield a, b
    a.close()
    b.close()


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(bad_messages())
def test_fuzz_each_message_gets_an_answer_and_the_switch_keeps_serving(sw, fuzz_clients, raw):
    a, b = fuzz_clients
    a.send(raw)
    got = a.echo()
    for m in got:                                # errors (with our bytes), or replies to valid requests
        if isinstance(m, C.Error):
            assert m.data == raw[:64] and m.xid == struct.unpack_from("!I", raw, 4)[0], (raw, m)
    assert b.echo() == []


# --- peers that misbehave as a whole ----------------------------------------------------------
def test_a_peers_error_is_not_answered(sw):
    """Two ends that answered each other's errors would do so for ever: an ERROR from the
    peer gets no reply, and the connection keeps serving."""
    c = Client(sw.port)
    c.send(C.Error(type=K.OFPET_BAD_REQUEST, code=K.OFPBRC_BAD_TYPE, data=b"x" * 12))
    got = c.echo()
    assert got == [], got
    assert table0(c) is not None
    c.close()


def test_connections_beyond_the_limit_are_refused_and_the_rest_keep_working(sw):
    import resource
    from dpdkswitch.openflow.connection import MAX_CONNECTIONS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = MAX_CONNECTIONS + 200
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    first = Client(sw.port)
    held = [first.s]
    try:
        # Fill the switch up (raw sockets: accepted, counted, never spoken on).
        for _ in range(MAX_CONNECTIONS + 50):
            held.append(socket.create_connection(("127.0.0.1", sw.port), timeout=5))
        # The switch accepts at its own pace: one more peer is closed by it at once, without
        # a word, as soon as it has counted the ones before.
        deadline = time.monotonic() + 30
        while True:
            extra = socket.create_connection(("127.0.0.1", sw.port), timeout=5)
            extra.settimeout(5)
            first_bytes = extra.recv(64)
            if first_bytes == b"":
                extra.close()
                break
            held.append(extra)                    # greeted: the switch had not caught up yet
            assert time.monotonic() < deadline, "no connection was refused"
            time.sleep(0.05)
        # An established peer is served all along (its own inactivity probe may come first);
        # the control socket answers.
        assert all(isinstance(m, C.EchoRequest) for m in first.echo())
        from dpdkswitch.control import call
        assert call(sw.sock, "version", []).startswith("dpdkswitch ")
    finally:
        for s in held:
            s.close()
    # Once they are gone, a new peer connects as usual.
    deadline = time.monotonic() + 10
    while True:
        try:
            c = Client(sw.port)
            break
        except (AssertionError, ConnectionError, TimeoutError):
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert table0(c) is not None
    c.close()
