"""Limits on what reaches the controllers: the OFPM_CONTROLLER and OFPM_SLOWPATH meters,
``controller_rate_limit``/``controller_burst_limit``, and the per-connection packet-in queue cap.

Mostly deterministic: a bridge from YAML on the manual clock, a ring-backed test port for the frames,
the slow path run by hand, and the bridge's OpenFlow side (``OFSwitch``) with one real
``OFConnection`` on a fake transport (a controller that reads everything, or one that never
reads).  Every limiter runs on the datapath's clock, so the clock the test sets is the only one.
One test runs ``dpdkswitch run`` with a host on a tap port and a raw OpenFlow client, as the
issue's controller did.
"""
from __future__ import annotations

import asyncio
import itertools
import os
import re
import socket
import struct
import subprocess
import sys
import time

import pytest

from dpdkswitch.config import ConfigError, loads
from dpdkswitch.ofproto import actions as A
from dpdkswitch.ofswitch.channel import OFSwitch, connection_status
from dpdkswitch.openflow import codec as C
from dpdkswitch.openflow import consts as K
from dpdkswitch.openflow.connection import PACKET_IN_QUEUE_MAX, OFConnection
from dpdkswitch.switch import Switch

from test_openflow_ofctl import start_switch
from test_openflow_robust import Client
from test_patch import host_port

pytestmark = pytest.mark.dpdk

SECOND = 1_000_000_000
_names = itertools.count(1)


class Transport(asyncio.Transport):
    """What the switch writes, kept; ``stuck``: the peer never reads (it all stays buffered)."""

    def __init__(self, stuck: bool = False):
        super().__init__()
        self.stuck = stuck
        self.written = bytearray()        # everything written, in order
        self.buffered = 0                 # bytes not yet taken by the "kernel"

    def write(self, data) -> None:
        self.written += data
        if self.stuck:
            self.buffered += len(data)

    def drain(self) -> None:
        """The peer finally reads."""
        self.buffered = 0

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return False

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def messages(self, msg_type: int) -> int:
        """How many messages of MSG_TYPE were written."""
        return len(self.raw(msg_type))

    def raw(self, msg_type: int) -> list[bytes]:
        out, at = [], 0
        while at + 8 <= len(self.written):
            n = struct.unpack_from("!H", self.written, at + 2)[0]
            if self.written[at + 1] == msg_type:
                out.append(bytes(self.written[at:at + n]))
            at += n
        return out

    def errors(self) -> list[tuple[int, int]]:
        """(type, code) of every error sent."""
        return [struct.unpack_from("!HH", m, 8) for m in self.raw(K.OFPT_ERROR)]


class Rig:
    """Bridge br0 (secure, one rule: table misses to the controller) on the manual clock, host
    port 1, and its OFSwitch with one connected controller on a fake transport."""

    def __init__(self, tmp_path, openflow: str = "", stuck: bool = False):
        n = next(_names)
        self.sw = Switch(loads(f"""\
bridges:
  br0:
    datapath: {{pmd_cores: []}}
    openflow: {{fail_mode: secure{openflow}}}
    ports:
      null: {{device: "net_null_pil{n},no-rx=1", ofport: 9}}
    flows: ["priority=0,actions=controller"]
""", "limits.yaml"), manual_clock=True)
        self.sw.start()
        self.br = self.sw.bridges["br0"]
        self.dp = self.br.dp
        self.port = host_port(self.br, "h1", 1)
        self.now = SECOND
        self.dp.set_clock(self.now)
        self.br.revalidate()
        self.loop = asyncio.new_event_loop()
        self.of = OFSwitch(self.br, str(tmp_path))
        self.br.set_packet_in_hook(self.of.on_packet_in)
        self.t = Transport(stuck)
        self.conn = self.run(self._connect())

    async def _connect(self) -> OFConnection:
        conn = OFConnection(self.of, "primary", "test")
        conn.connection_made(self.t)
        conn.data_received(C.encode(C.Hello(versions=(4,), version=4)))
        return conn

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def send(self, msg) -> None:
        """A message from the controller, handled as the loop would."""
        async def go():
            msg.version, msg.xid = 4, 1
            self.conn.data_received(C.encode(msg))
        self.run(go())

    def frames(self, n: int, per_chunk: int = 100, step_ns: int = 0) -> None:
        """N frames from N unknown source MACs on port 1, injected PER_CHUNK at a time, the
        clock STEP_NS further for each chunk; the slow path runs after each."""
        for i in range(0, n, per_chunk):
            frames = [bytes.fromhex("ffffffffffff") + (0x020000000000 + i + j).to_bytes(6, "big") + b"\x88\xb5"
                      + bytes(46) for j in range(min(per_chunk, n - i))]
            assert self.dp.inject(self.port, frames) == len(frames)
            for _ in range(4):
                self.dp.poll(4)
                self.br.upcalls.handle()
            self.now += step_ns
            self.dp.set_clock(self.now)

    def packet_ins(self) -> int:
        return self.t.messages(K.OFPT_PACKET_IN)

    def meter_stats(self, meter_id: int) -> C.MeterStats:
        reply = self.of.meters.mp_meter(self.conn, C.MultipartRequest(
            type=K.OFPMP_METER, body=C.MeterStatsRequest(meter_id=meter_id)))
        (stats,) = reply
        return stats

    def close(self) -> None:
        self.br.set_packet_in_hook(None)
        self.sw.stop()
        self.loop.close()


@pytest.fixture
def rig(eal, tmp_path):
    made = []

    def make(**kw) -> Rig:
        r = Rig(tmp_path, **kw)
        made.append(r)
        return r
    yield make
    for r in made:
        r.close()


def meter(meter_id: int, rate: int, flags: int = K.OFPMF_PKTPS | K.OFPMF_STATS, burst: int = 0, command=K.OFPMC_ADD):
    if burst:
        flags |= K.OFPMF_BURST
    return C.MeterMod(command=command, flags=flags, meter_id=meter_id,
                      bands=(C.MeterBand(K.OFPMBT_DROP, rate, burst),))


def test_controller_meter_limits_a_burst_of_packet_ins(rig):
    r = rig()
    r.send(meter(K.OFPM_CONTROLLER, 20))
    assert r.t.errors() == []
    r.frames(3000, step_ns=SECOND // 300)            # 3,000 frames from new sources in 100 ms
    got = r.packet_ins()
    assert 15 <= got <= 25, got                       # 20 pkt/s: a full bucket and 0.1 s of refill
    st = r.meter_stats(K.OFPM_CONTROLLER)
    assert st.packet_in_count == 3000 and st.byte_in_count == 3000 * 60
    assert st.band_stats == ((3000 - got, (3000 - got) * 60),)      # the rest: dropped, on the band
    assert r.of.packets.n_metered == 3000 - got
    # The rate holds over time: 10 s more of 300 frames a second give 20 a second.
    r.frames(3000, per_chunk=30, step_ns=SECOND // 10)
    assert abs(r.packet_ins() - got - 200) <= 5, r.packet_ins() - got
    # Deleted, the meter limits nothing any more.
    r.send(C.MeterMod(command=K.OFPMC_DELETE, meter_id=K.OFPM_CONTROLLER))
    before = r.packet_ins()
    r.frames(500)
    assert r.packet_ins() - before == 500


def test_controller_meter_in_kbps(rig):
    r = rig()
    r.send(meter(K.OFPM_CONTROLLER, 48, flags=K.OFPMF_KBPS, burst=0))   # 48 kb/s = 100 60-byte frames a second
    r.frames(1000)
    assert r.packet_ins() == 100
    assert r.meter_stats(K.OFPM_CONTROLLER).band_stats == ((900, 900 * 60),)


def test_slowpath_meter_limits_misses(rig):
    r = rig()
    r.br.upcalls.megaflows = False                   # every new source misses (dpif/disable-megaflows)
    r.send(meter(K.OFPM_SLOWPATH, 50))
    r.frames(2000)
    st = r.meter_stats(K.OFPM_SLOWPATH)
    assert st.packet_in_count == 2000 and st.band_stats == ((1950, 1950 * 60),)
    assert r.br.upcalls.stats.metered == 1950
    assert r.packet_ins() == 50                      # only the misses it let through were handled


def test_slow_path_meters_in_meter_config_and_stats(rig):
    r = rig()
    r.send(meter(K.OFPM_CONTROLLER, 20))
    r.send(meter(K.OFPM_SLOWPATH, 1000, flags=K.OFPMF_KBPS, burst=100))
    r.send(meter(7, 500))
    assert r.t.errors() == []
    configs = r.of.meters.mp_meter_config(r.conn, C.MultipartRequest(
        type=K.OFPMP_METER_CONFIG, body=C.MeterStatsRequest(meter_id=K.OFPM_ALL)))
    assert [(c.meter_id, c.flags & (K.OFPMF_KBPS | K.OFPMF_PKTPS), c.bands[0].rate) for c in configs] == [
        (7, K.OFPMF_PKTPS, 500), (K.OFPM_SLOWPATH, K.OFPMF_KBPS, 1000), (K.OFPM_CONTROLLER, K.OFPMF_PKTPS, 20)]
    # Modified: new rate, counters start over; a second add is refused as for any meter.
    r.frames(100)
    assert r.meter_stats(K.OFPM_CONTROLLER).packet_in_count == 100
    r.send(meter(K.OFPM_CONTROLLER, 40, command=K.OFPMC_MODIFY))
    assert r.meter_stats(K.OFPM_CONTROLLER).packet_in_count == 0
    assert r.t.errors() == []
    r.send(meter(K.OFPM_CONTROLLER, 40))
    assert r.t.errors() == [(K.OFPET_METER_MOD_FAILED, K.OFPMMFC_METER_EXISTS)]
    # A rule cannot use them (Open vSwitch: OFPMMFC_INVALID_METER).
    r.send(C.FlowMod(match={}, priority=5, instructions=(A.Meter(K.OFPM_CONTROLLER),
                                                         A.ApplyActions((A.Output(1),)))))
    assert r.t.errors()[1:] == [(K.OFPET_METER_MOD_FAILED, K.OFPMMFC_INVALID_METER)]
    # OFPM_ALL deletes them with the rest.
    r.send(C.MeterMod(command=K.OFPMC_DELETE, meter_id=K.OFPM_ALL))
    assert not r.br.pipeline.meters and not r.br.pipeline.slow_meters


def test_controller_rate_limit_per_connection(rig):
    r = rig(openflow=", controller_rate_limit: 100, controller_burst_limit: 25")
    r.frames(3000)                                    # one instant: the burst only
    assert r.packet_ins() == 25
    assert r.conn.stats["packet_ins_limited"] == 2975
    r.now += SECOND
    r.dp.set_clock(r.now)
    r.frames(3000)                                    # a second later: the bucket is full again
    assert r.packet_ins() == 50


def test_packet_in_queue_is_capped_for_a_controller_that_never_reads(rig):
    r = rig(stuck=True)
    r.frames(3000)
    assert r.conn.packet_ins_queued() == PACKET_IN_QUEUE_MAX
    assert r.packet_ins() == PACKET_IN_QUEUE_MAX
    assert r.conn.stats["packet_ins_dropped"] == 3000 - PACKET_IN_QUEUE_MAX
    r.frames(3000)                                    # still not read: nothing more is buffered
    assert r.packet_ins() == PACKET_IN_QUEUE_MAX
    assert r.conn.stats["packet_ins_dropped"] == 6000 - PACKET_IN_QUEUE_MAX
    r.t.drain()                                       # it reads at last: packet-ins flow again
    assert r.conn.packet_ins_queued() == 0
    r.frames(50)
    assert r.packet_ins() == PACKET_IN_QUEUE_MAX + 50


def service_conn(r: Rig, name: str, stuck: bool = False) -> tuple[OFConnection, Transport]:
    """One more connection to R's switch, as a peer of listener NAME makes it, asking for
    packet-ins (miss_send_len: ovs-ofctl monitor's way)."""
    t = Transport(stuck)

    async def go():
        conn = OFConnection(r.of, "service", name)
        conn.connection_made(t)
        conn.data_received(C.encode(C.Hello(versions=(4,), version=4)))
        conn.data_received(C.encode(C.SetConfig(miss_send_len=0xFFFF, version=4, xid=2)))
        return conn
    return r.run(go()), t


def test_mgmt_connections_take_no_rate_limit_but_the_queue_cap(rig):
    """As Open vSwitch: controller_rate_limit holds for controllers and the configured listeners'
    connections, not for the bridge's .mgmt socket's (ovs-ofctl monitor, snoop-like tools);
    the queue cap of PACKET_IN_QUEUE_MAX holds for all."""
    r = rig(openflow=", controller_rate_limit: 100, controller_burst_limit: 25")
    mgmt, mt = service_conn(r, r.of.mgmt.target)
    listener, lt = service_conn(r, "ptcp:6653")
    stuck_mgmt, st = service_conn(r, r.of.mgmt.target, stuck=True)
    assert r.of.is_mgmt(mgmt) and not r.of.is_mgmt(listener) and not r.of.is_mgmt(r.conn)
    r.frames(3000)
    assert r.packet_ins() == 25 and lt.messages(K.OFPT_PACKET_IN) == 25     # limited
    assert listener.stats["packet_ins_limited"] == 2975
    assert connection_status(listener, 0.0)["packet_ins_limited"] == 2975      # list-controllers shows it
    assert mt.messages(K.OFPT_PACKET_IN) == 3000                              # not limited
    assert "packet_ins_limited" not in mgmt.stats
    assert st.messages(K.OFPT_PACKET_IN) == PACKET_IN_QUEUE_MAX               # but capped
    assert stuck_mgmt.stats["packet_ins_dropped"] == 3000 - PACKET_IN_QUEUE_MAX


def test_meter_features_and_bands_as_open_vswitch(rig):
    """Open vSwitch 3.1's userspace datapath announces 8 bands per meter and refuses a ninth
    with OFPMMFC_OUT_OF_BANDS; a packet-in over several drop bands is dropped on the band of
    the highest rate it exceeds."""
    r = rig()
    (feat,) = [r.of.meters.mp_meter_features(r.conn, None)]
    assert (feat.max_bands, feat.band_types, feat.max_color) == (8, 1 << K.OFPMBT_DROP, 0)

    def bands(n, first=20):
        return C.MeterMod(command=K.OFPMC_ADD, flags=K.OFPMF_PKTPS | K.OFPMF_STATS, meter_id=5,
                          bands=tuple(C.MeterBand(K.OFPMBT_DROP, first + 10 * i, 0) for i in range(n)))
    r.send(bands(9))
    assert r.t.errors() == [(K.OFPET_METER_MOD_FAILED, K.OFPMMFC_OUT_OF_BANDS)]
    r.send(bands(8))
    assert r.t.errors()[1:] == []
    m = bands(2)                                      # OFPM_CONTROLLER at 20 and 30 pkt/s
    m.meter_id = K.OFPM_CONTROLLER
    r.send(m)
    assert r.t.errors()[1:] == []
    r.frames(3000)                                    # one instant: each band's bucket, full
    assert r.packet_ins() == 20
    # 10 more paid by the 30 pkt/s band (dropped by the 20's); the rest exceed both
    assert r.meter_stats(K.OFPM_CONTROLLER).band_stats == ((10, 600), (2970, 2970 * 60))


@pytest.mark.parametrize("openflow, line, needle", [
    ("{controller_rate_limit: 50}", 4, "controller_rate_limit: expected an integer >= 100, got 50"),
    ("{controller_rate_limit: 100, controller_burst_limit: 10}", 4,
     "controller_burst_limit: expected an integer >= 25, got 10"),
    ("\n      controller_burst_limit: 30", 5, "controller_burst_limit needs controller_rate_limit"),
])
def test_rate_limit_config_errors(openflow, line, needle):
    text = f"""\
bridges:
  br0:
    ports: {{p1: {{device: "net_null0", ofport: 1}}}}
    openflow: {openflow}
"""
    with pytest.raises(ConfigError) as e:
        loads(text, "limits.yaml")
    assert f"limits.yaml:{line}:" in str(e.value) and needle in str(e.value), str(e.value)


def test_rate_limit_config_read():
    br = loads("""\
bridges:
  br0:
    ports: {p1: {device: "net_null0", ofport: 1}}
    openflow: {controller_rate_limit: 200}
""", "limits.yaml").bridges["br0"]
    assert (br.openflow.controller_rate_limit, br.openflow.controller_burst_limit) == (200, None)


SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for i in range(int(sys.argv[2])):
    if i % 100 == 99:
        time.sleep(0.002)            # 100 frames every 2 ms: the tap's queue holds them
    s.send(b"\\xff" * 6 + (0x020000000000 + i).to_bytes(6, "big") + b"\\x88\\xb5" + bytes(46))
"""


@pytest.mark.netns
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_controller_meter_end_to_end(tmp_path):
    """The issue's case: a controller sets OFPM_CONTROLLER to 20 pkt/s; a host sends 3,000
    frames from unknown sources, which a table-miss rule sends to the controller."""
    tag = f"m{os.getpid() % 10000}"
    sw = start_switch(tmp_path, tag, {"openflow": {"fail_mode": "secure"},
                                      "flows": ["priority=0,actions=controller"]}, taps=1)
    c = Client(sw.port)
    try:
        c.send(C.SetConfig(miss_send_len=0xFFFF))               # a service connection asks for them
        for mid in (K.OFPM_CONTROLLER, K.OFPM_SLOWPATH):       # both accepted (was INVALID_METER)
            c.send(meter(mid, 20 if mid == K.OFPM_CONTROLLER else 100000))
        assert not [m for m in c.barrier() if isinstance(m, C.Error)]
        configs = [m for part in c.multipart(K.OFPMP_METER_CONFIG, C.MeterStatsRequest()) for m in part.body]
        assert {(m.meter_id, m.bands[0].rate) for m in configs} == {(K.OFPM_CONTROLLER, 20),
                                                                   (K.OFPM_SLOWPATH, 100000)}
        ns, _ = sw.hosts["p1"]
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", SENDER, f"do{tag}1", "3000"],
                       check=True, timeout=60)
        first, got, total = None, 0, 0
        while True:                                   # packet-ins until 1 s of quiet
            try:
                m = c.recv(timeout=1.0)
            except TimeoutError:
                break
            if isinstance(m, C.PacketIn):
                first = first or time.monotonic()
                got += time.monotonic() - first < 1.0
                total += 1
        assert 15 <= got <= 25, got                   # in the first second: 20 and the refill
        (st,) = [s for part in c.multipart(K.OFPMP_METER, C.MeterStatsRequest(meter_id=K.OFPM_CONTROLLER))
                 for s in part.body]
        dropped = st.band_stats[0][0]
        assert st.packet_in_count >= 1000, st         # most of the burst reached the meter,
        assert 0 <= st.packet_in_count - dropped - total <= 2, (st, total)   # which dropped what we did not get
    finally:
        c.close()
        log = sw.stop()
    assert sw.proc.returncode == 0, log


@pytest.mark.netns
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_controller_meter_end_to_end_on_the_switchs_connection_to_its_controller(tmp_path):
    """The issue's case with the switch as a controller knows it: ``controllers:
    [tcp:...]``, so the switch connects to the test controller (a primary connection, packet-ins
    at once).  It installs OFPM_CONTROLLER at 20 pkt/s; a host sends 3,000 frames from unknown
    sources: 20 ± 5 packet-ins reach it in the first second, and meter stats count every other
    frame that reached the meter as dropped on its band, as upcall/show does."""
    tag = f"n{os.getpid() % 10000}"
    lsock = socket.create_server(("127.0.0.1", 0))
    ctl_port = lsock.getsockname()[1]
    sw = start_switch(tmp_path, tag, {"openflow": {"fail_mode": "secure",
                                                  "controllers": [f"tcp:127.0.0.1:{ctl_port}"]},
                                      "flows": ["priority=0,actions=controller"]}, taps=1)
    c = None
    try:
        lsock.settimeout(30)
        conn, _ = lsock.accept()                      # the switch's first attempt, at start
        conn.settimeout(5)
        c = Client(sock=conn)
        xid = c.send(C.FeaturesRequest())
        (feat,) = [m for m in c.until(xid, C.FeaturesReply) if isinstance(m, C.FeaturesReply)]
        c.send(meter(K.OFPM_CONTROLLER, 20))
        # a packet-in the meter let through before the barrier's reply (the host's kernel sends
        # frames of its own) arrives among its messages: count it
        early = c.barrier()
        assert not [m for m in early if isinstance(m, C.Error)]
        assert f"controller tcp:127.0.0.1:{ctl_port}: is_connected=true" in sw.ctl("ofproto/list-controllers")
        assert f"  dpid:{feat.datapath_id:016x}\n" in sw.ctl("dpif/show")
        ns, _ = sw.hosts["p1"]
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", SENDER, f"do{tag}1", "3000"],
                       check=True, timeout=60)
        first, got, total = None, 0, sum(isinstance(m, C.PacketIn) for m in early)
        while True:                                   # packet-ins until 1 s of quiet
            try:
                m = c.recv(timeout=1.0)
            except TimeoutError:
                break
            if isinstance(m, C.PacketIn):
                first = first or time.monotonic()
                got += time.monotonic() - first < 1.0
                total += 1
            elif isinstance(m, C.EchoRequest):
                c.send(C.EchoReply(data=m.data, xid=m.xid))
        assert 15 <= got <= 25, got
        # the stats, with any packet-in that still comes first counted (the host's kernel sends
        # frames of its own, an IPv6 router solicitation say, and the meter lets one through
        # after a quiet second); then a second of quiet again for one still queued
        xid = c.send(C.MultipartRequest(type=K.OFPMP_METER, body=C.MeterStatsRequest(meter_id=K.OFPM_CONTROLLER)))
        msgs = c.until(xid, C.MultipartReply)
        total += sum(isinstance(m, C.PacketIn) for m in msgs)
        (st,) = msgs[-1].body
        while True:
            try:
                m = c.recv(timeout=1.0)
            except TimeoutError:
                break
            total += isinstance(m, C.PacketIn)
        dropped = st.band_stats[0][0]
        assert st.packet_in_count >= 1000, st         # most of the burst reached the meter,
        assert st.packet_in_count - dropped <= total <= st.packet_in_count - dropped + 1, (st, total)
        upcalls = sw.ctl("upcall/show", "br0")
        assert f"{dropped} packet-ins (OFPM_CONTROLLER)" in upcalls, upcalls
    finally:
        if c is not None:
            c.close()
        lsock.close()
        log = sw.stop()
    assert sw.proc.returncode == 0, log


@pytest.mark.netns
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_queue_cap_end_to_end_under_a_controller_that_never_reads(tmp_path):
    """No meter, no rate limit, a controller that says HELLO and never reads again (its
    receive buffer small): once the kernel's buffers and PACKET_IN_QUEUE_MAX packet-ins are
    queued, every further packet-in is dropped and counted, none is buffered; the switch
    forwards on."""
    tag = f"q{os.getpid() % 10000}"
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)     # inherited by the accepted socket
    lsock.bind(("127.0.0.1", 0))
    lsock.listen()
    lsock.settimeout(30)
    target = f"tcp:127.0.0.1:{lsock.getsockname()[1]}"
    sw = start_switch(tmp_path, tag, {"openflow": {"fail_mode": "secure", "controllers": [target]},
                                      "flows": ["priority=0,actions=controller"]}, taps=1)
    ns, _ = sw.hosts["p1"]

    def counters() -> tuple[int, int]:
        """(packet-ins made by the upcall handler, packet-ins the controller's connection dropped),
        once they stop moving."""
        last = None
        while True:
            up = int(re.search(r"packet-ins: (\d+)", sw.ctl("upcall/show", "br0")).group(1))
            row = next(ln for ln in sw.ctl("ofproto/list-controllers", "br0").splitlines() if target in ln)
            assert "is_connected=true" in row, row
            now = (up, int(re.search(r"packet_ins_dropped=(\d+)", row).group(1)))
            if now == last:
                return now
            last = now
            time.sleep(0.3)
    conn = None
    try:
        conn, _ = lsock.accept()
        conn.sendall(C.encode(C.Hello(versions=(4,), version=4)))       # and never reads again
        for _ in range(30):                                             # negotiated (the switch read it)
            if "is_connected=true" in sw.ctl("ofproto/list-controllers", "br0"):
                break
            time.sleep(0.1)

        def burst():
            conn.sendall(C.encode(C.EchoRequest(version=4, xid=7)))    # alive (its answers are not read)
            subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", SENDER, f"do{tag}1", "3000"],
                           check=True, timeout=60)
        for _ in range(20):                             # until the kernel's buffers and the queue are full
            burst()
            up1, dropped1 = counters()
            if dropped1:
                break
        assert dropped1 > 0, (up1, dropped1)
        burst()
        up2, dropped2 = counters()
        assert up2 - up1 >= 1000, (up1, up2)
        assert dropped2 - dropped1 == up2 - up1, (up1, up2, dropped1, dropped2)   # none of them buffered
        assert sw.ctl("version").startswith("dpdkswitch ")
    finally:
        if conn is not None:
            conn.close()
        lsock.close()
        log = sw.stop()
    assert sw.proc.returncode == 0, log


def test_packet_ins_are_encoded_as_encode_does_and_table_misses_told(rig):
    """Packet-ins are made from a header encoded once per kind (packets.py ``_head``): each one
    sent is byte for byte what ``encode`` makes of it, with its own frame and length; the
    reason follows the rule that sent it (the table-miss rule: OFPR_NO_MATCH; another rule, or
    a table-miss rule with another cookie or no controller output: OFPR_ACTION), also after
    the rules change (what is known of the table-miss rule is per table version)."""
    r = rig()

    def sent(n: int) -> list[C.PacketIn]:
        r.br.revalidate()                              # the megaflows follow the rules
        before = len(r.t.raw(K.OFPT_PACKET_IN))
        r.frames(n)
        raws = r.t.raw(K.OFPT_PACKET_IN)[before:]
        msgs = [C.decode(raw) for raw in raws]
        for raw, m in zip(raws, msgs):
            assert C.encode(m) == raw
            assert m.in_port == 1 and m.total_len == len(m.data) == 60 and m.data[12:14] == b"\x88\xb5"
        assert len({m.data for m in msgs}) == n        # each its own frame
        return msgs

    assert {(m.reason, m.cookie) for m in sent(20)} == {(K.OFPR_NO_MATCH, 0)}
    r.send(C.FlowMod(match={}, priority=0, cookie=7, command=K.OFPFC_ADD,
                     instructions=(A.ApplyActions((A.Output(A.OFPP_CONTROLLER, max_len=0xFFFF),)),)))
    assert {(m.reason, m.cookie) for m in sent(20)} == {(K.OFPR_NO_MATCH, 7)}
    r.send(C.FlowMod(match={"in_port": (1, None)}, priority=10, cookie=9, command=K.OFPFC_ADD,
                     instructions=(A.ApplyActions((A.Output(A.OFPP_CONTROLLER, max_len=0xFFFF),)),)))
    assert {(m.reason, m.cookie) for m in sent(20)} == {(K.OFPR_ACTION, 9)}
    assert r.t.errors() == []
