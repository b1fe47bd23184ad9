"""The control thread under load (issue 20): a stream of upcalls that never ends must not take
the control socket, OpenFlow, the timers or the signals from the switch.

``dpdkswitch run`` with a PMD thread polling a ``net_null`` port (which receives frames as fast
as the PMD asks: an endless stream) and one rule ``actions=controller``: every frame is an
upcall.  The latencies asserted are generous (a loaded 2-core machine); the figures are printed
(``-s``) for the README, never compared to a tight bound.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

from dpdkswitch.config import online_cpus
from dpdkswitch.control import call
from dpdkswitch.openflow import codec as C

from test_openflow_ofctl import free_port
from test_openflow_robust import Client

pytestmark = pytest.mark.dpdk


def p99(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


class Loaded:
    """``dpdkswitch run`` on a bridge with a null port that receives without end, a ptcp listener."""

    def __init__(self, tmp_path, tag: str, extra: dict | None = None):
        self.port = free_port()
        self.sock = str(tmp_path / "ctl.sock")
        cores = sorted(online_cpus())    # not our affinity: EAL pins this process to its main lcore
        br = {"datapath": {"pmd_cores": [cores[-1]]},
              "openflow": {"listen": [f"ptcp:{self.port}:127.0.0.1"]},
              "ports": {"p1": {"device": f"net_null_{tag}", "ofport": 1}}}
        br.update(extra or {})
        cfg = {"dpdk": {"cores": cores[:2] if len(cores) > 1 else cores}, "control": {"socket": self.sock},
               "bridges": {"br0": br}}
        (tmp_path / "s.yaml").write_text(yaml.safe_dump(cfg))
        self.log = tmp_path / "log"
        self.proc = subprocess.Popen([sys.executable, "-m", "dpdkswitch", "run", str(tmp_path / "s.yaml"), "--no-top"],
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                call(self.sock, "version", timeout=5)
                return
            except (ConnectionError, OSError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.proc.kill()
                    raise AssertionError("switch did not start:\n" + self.log.read_text())
                time.sleep(0.2)

    def ctl(self, *args, timeout: float = 10) -> str:
        return call(self.sock, args[0], list(args[1:]), timeout=timeout)

    def upcalls(self) -> int:
        return int(re.search(r"upcalls: (\d+)", self.ctl("upcall/show")).group(1))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def echo(client: Client, timeout: float) -> float:
    """One echo round trip (the switch's own probes answered meanwhile)."""
    t0 = time.monotonic()
    xid = client.send(C.EchoRequest(data=b"x"))
    while True:
        m = client.recv(timeout)
        assert m is not None, "the switch closed the connection"
        if isinstance(m, C.EchoReply) and m.xid == xid:
            return time.monotonic() - t0
        if isinstance(m, C.EchoRequest):
            client.send(C.EchoReply(data=m.data, xid=m.xid))


def latencies(sw: Loaded, client: Client | None, n: int, timeout: float) -> tuple[list[float], list[float]]:
    """N ``ctl version`` and N echo round trips, alternating; seconds each."""
    ctl, echoes = [], []
    for _ in range(n):
        t0 = time.monotonic()
        assert sw.ctl("version", timeout=timeout).startswith("dpdkswitch ")
        ctl.append(time.monotonic() - t0)
        if client is not None:
            echoes.append(echo(client, timeout))
        time.sleep(0.05)
    return ctl, echoes


def test_an_endless_upcall_stream_leaves_ctl_openflow_and_sigterm_their_turn(tmp_path):
    """Every frame of the null port goes to the controller: upcalls never stop coming.  The
    control socket and an OpenFlow peer's echo still answer (within 5 s each here, a bound for
    a loaded machine: the figures are printed), the periodic revalidator still runs, and
    SIGTERM stops the switch (within 10 s).  Before the control thread sliced its work, the
    upcall handler ran until the ring was empty, which it never was: nothing answered."""
    sw = Loaded(tmp_path, f"ld{os.getpid() % 10000}")
    try:
        client = Client(sw.port)
        sw.ctl("ofctl/add-flow", "br0", "priority=100,actions=controller")
        before = sw.upcalls()
        time.sleep(1.0)
        ctl, echoes = latencies(sw, client, 40, timeout=5)
        moved = sw.upcalls() - before
        assert moved > 1000, f"no upcall stream: {moved} upcalls"
        print(f"\nupcall stream: {moved} upcalls; ctl version p99 {p99(ctl) * 1e3:.1f} ms, "
              f"max {max(ctl) * 1e3:.1f} ms; echo p99 {p99(echoes) * 1e3:.1f} ms, max {max(echoes) * 1e3:.1f} ms")
        t0 = time.monotonic()
        sw.proc.send_signal(signal.SIGTERM)
        rc = sw.proc.wait(timeout=10)
        print(f"SIGTERM to exit under the stream: {time.monotonic() - t0:.2f} s")
        assert rc == 0, sw.log.read_text()
        client.s.close()
    finally:
        sw.kill()
    assert "Traceback" not in sw.log.read_text()


# ---- bounded per peer: OFConnection over a socketpair, an owner that records ----------------

class Recorder:
    """An OFConnection owner that keeps each batch it is handed, and when."""

    def __init__(self):
        self.batches: list[tuple[str, int]] = []      # (connection name, messages)

    def connected(self, conn) -> None:
        pass

    def disconnected(self, conn) -> None:
        pass

    def handle_batch(self, conn, batch) -> None:
        self.batches.append((conn.name, len(batch)))
        time.sleep(0.0002 * len(batch))               # a flow-mod's cost, about


def _pair(loop, owner, name: str, probe: float = 5.0):
    import socket

    from dpdkswitch.openflow.connection import OFConnection
    a, b = socket.socketpair()
    conn = OFConnection(owner, "service", name, probe)
    b.setblocking(True)
    return a, b, conn


def _hello() -> bytes:
    return C.encode(C.Hello(versions=(4,), version=4))


def test_a_flow_mod_flood_from_one_peer_leaves_another_its_turn():
    """Peer A sends 2,000 messages in one go, then peer B an echo request: A's messages are
    handled MESSAGES_PER_TURN at a time, and B's echo is answered after a few of A's turns,
    not after all of them (before, a read's every message was handled in one go)."""
    import asyncio

    from dpdkswitch.openflow.connection import MESSAGES_PER_TURN

    async def main():
        loop = asyncio.get_running_loop()
        owner = Recorder()
        a, a_peer, ca = _pair(loop, owner, "A")
        b, b_peer, cb = _pair(loop, owner, "B")
        await loop.connect_accepted_socket(lambda: ca, sock=a)
        await loop.connect_accepted_socket(lambda: cb, sock=b)
        for p in (a_peer, b_peer):
            p.sendall(_hello())
        await asyncio.sleep(0.05)
        flood = b"".join(C.encode(C.BarrierRequest(version=4, xid=i + 1)) for i in range(2000))
        a_peer.sendall(flood)
        await asyncio.sleep(0)                      # A's first read is in
        b_peer.sendall(C.encode(C.EchoRequest(version=4, xid=7, data=b"b")))
        b_peer.settimeout(0.01)
        answered_after = None
        for _ in range(2000):
            await asyncio.sleep(0)
            try:
                if b_peer.recv(1 << 16):
                    answered_after = sum(n for name, n in owner.batches if name == "A")
                    break
            except (BlockingIOError, TimeoutError, OSError):
                pass
        while sum(n for name, n in owner.batches if name == "A") < 2000:
            await asyncio.sleep(0.01)
        for s in (a_peer, b_peer):
            s.close()
        return owner, answered_after

    owner, answered_after = asyncio.run(main())
    sizes = [n for name, n in owner.batches if name == "A"]
    assert max(sizes) <= MESSAGES_PER_TURN, sizes
    assert answered_after is not None and answered_after < 1000, answered_after


def test_a_peer_that_never_reads_is_dropped():
    """A peer that keeps sending (so it never looks idle) but never reads its replies: once
    they stay unread for twice the probe interval it is dropped, and at once past
    WRITE_BUFFER_MAX bytes, instead of being buffered for ever."""
    import asyncio

    from dpdkswitch.openflow import connection as oc

    async def stuck_for(probe: float, blob: int, n: int):
        loop = asyncio.get_running_loop()
        owner = Recorder()
        a, peer, conn = _pair(loop, owner, "stuck", probe)
        await loop.connect_accepted_socket(lambda: conn, sock=a)
        peer.sendall(_hello())
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        for _ in range(n):
            conn.send(b"\0" * blob)                   # replies it never reads
            peer.sendall(C.encode(C.EchoRequest(version=4, xid=1)))   # yet it talks
            await asyncio.sleep(0.05)
            if conn.closed.done():
                break
        peer.close()
        return conn, time.monotonic() - t0

    conn, took = asyncio.run(stuck_for(0.5, 1 << 20, 100))
    assert conn.closed.done() and "unread for 1 s" in conn.error, (conn.error, took)
    assert took < 4
    conn, took = asyncio.run(stuck_for(30.0, oc.WRITE_BUFFER_MAX // 4, 10))
    assert conn.closed.done() and "MB of replies unread" in conn.error, (conn.error, took)
