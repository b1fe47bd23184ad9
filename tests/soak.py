"""A soak of ``dpdkswitch run`` under mixed load (issue 20), for ``scripts/soak.sh`` (any length)
and ``tests/test_soak.py`` (3 minutes, in ``make test``).

One switch, one bridge, a PMD thread, and in cycles of ``CYCLE_S`` seconds:

* a packet-in flood: a ``net_null`` port (frames as fast as the PMD asks) and a rule
  ``in_port=1,actions=controller`` added, then deleted;
* a miss storm: a ``net_pcap`` port replaying 20,000 distinct flows without end, added by
  ``dpif/add-port`` and removed by ``dpif/del-port`` (port churn), exact-match flows
  (``dpif/disable-megaflows``) with a flow limit of 2,000, so most frames miss every time;
* a flow-mod flood: ``ovs-ofctl add-flows`` of 3,000 rules into table 5 over the ptcp listener,
  then ``del-flows``;
* a controller (a socket here) that reads its packet-ins and answers echo requests, closing its
  connection once a cycle (a flap: the switch reconnects after its backoff);
* control commands: ``ofctl/dump-flows`` and ``upcall/show`` once a cycle.

Throughout, sampled every ``SAMPLE_S``: ``ctl version`` latency, an OpenFlow echo's round trip
over a second (ptcp) connection, the switch's RSS, and mbufs in use.  At the end the load stops,
the datapath flows idle out, and ``Soak.result`` says what was seen: percentiles, baselines and
final values, for the caller to check with bounds of its own.

Run alone: ``python tests/soak.py SECONDS`` (prints the figures); ``python tests/soak.py
--storms SECONDS``: the issue's figures (``storms``), a miss storm, a 15,000/s packet-in stream
and both, SECONDS each.
"""
from __future__ import annotations

import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml  # noqa: E402

from dpdkswitch.config import online_cpus  # noqa: E402
from dpdkswitch.control import call  # noqa: E402
from dpdkswitch.openflow import codec as C  # noqa: E402

from frames import udp_frame, write_pcap  # noqa: E402

CYCLE_S = 30.0
SAMPLE_S = 0.25
FLOWS_IN_PCAP = 20_000
FLOW_LIMIT = 2_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


class Controller(threading.Thread):
    """A controller on a TCP port: reads everything (counts packet-ins), answers echo requests;
    ``flap()`` closes the connection it has (the switch reconnects)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.port = self.lsock.getsockname()[1]
        self.packet_ins = 0
        self.connections = 0
        self.stop = threading.Event()
        self._flap = threading.Event()

    def flap(self) -> None:
        self._flap.set()

    def run(self) -> None:
        while not self.stop.is_set():
            r, _, _ = select.select([self.lsock], [], [], 0.2)
            if not r:
                continue
            conn, _ = self.lsock.accept()
            self.connections += 1
            self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        conn.sendall(C.encode(C.Hello(versions=(4,), version=4)))
        buf = b""
        with conn:
            while not self.stop.is_set():
                if self._flap.is_set():
                    self._flap.clear()
                    return
                r, _, _ = select.select([conn], [], [], 0.2)
                if not r:
                    continue
                try:
                    data = conn.recv(1 << 20)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                # Walked by offset: slicing the rest off after each message copied the whole
                # buffer per message (quadratic in a megabyte read), and this thread held the
                # GIL the prober's measurements wait for.
                at = 0
                while len(buf) - at >= 8:
                    n = max(8, struct.unpack_from("!H", buf, at + 2)[0])
                    if len(buf) - at < n:
                        break
                    if buf[at + 1] == 10:                             # OFPT_PACKET_IN
                        self.packet_ins += 1
                    elif buf[at + 1] == 2:                            # OFPT_ECHO_REQUEST
                        conn.sendall(bytes([buf[at], 3]) + buf[at + 2:at + n])
                    at += n
                buf = buf[at:]


class Prober(threading.Thread):
    """Every SAMPLE_S: ``ctl version`` and an echo round trip; RSS and mbufs every second."""

    def __init__(self, soak: "Soak"):
        super().__init__(daemon=True)
        self.soak = soak
        self.ctl: list[float] = []
        self.echo: list[float] = []
        self.failures: list[str] = []
        self.rss: list[tuple[float, int]] = []
        self.mbufs: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self.phase = "idle"
        self.by_phase: dict[str, list[float]] = {}

    def run(self) -> None:
        s = self.soak
        of = socket.create_connection(("127.0.0.1", s.listen_port), timeout=10)
        of.sendall(C.encode(C.Hello(versions=(4,), version=4)))
        buf = b""
        xid = 0
        last_slow = 0.0
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                call(s.sock, "version", timeout=15)
                d = time.monotonic() - t0
                self.ctl.append(d)
                self.by_phase.setdefault(self.phase, []).append(d)
            except (ConnectionError, OSError) as e:
                self.failures.append(f"ctl: {e}")
            xid += 1
            t0 = time.monotonic()
            try:
                of.sendall(C.encode(C.EchoRequest(version=4, xid=xid, data=b"soak")))
                got = False
                while not got:
                    r, _, _ = select.select([of], [], [], 15)
                    if not r:
                        raise TimeoutError("no echo reply in 15 s")
                    data = of.recv(1 << 16)
                    if not data:
                        raise ConnectionError("the switch closed the echo connection")
                    buf += data
                    while len(buf) >= 8 and len(buf) >= struct.unpack_from("!H", buf, 2)[0]:
                        n = struct.unpack_from("!H", buf, 2)[0]
                        raw, buf = buf[:n], buf[n:]
                        if raw[1] == 3 and struct.unpack_from("!I", raw, 4)[0] == xid:
                            got = True
                        elif raw[1] == 2:
                            of.sendall(bytes([raw[0], 3]) + raw[2:])
                self.echo.append(time.monotonic() - t0)
            except (OSError, TimeoutError, ConnectionError) as e:
                self.failures.append(f"echo: {e}")
                of.close()
                of = socket.create_connection(("127.0.0.1", s.listen_port), timeout=10)
                of.sendall(C.encode(C.Hello(versions=(4,), version=4)))
                buf = b""
            now = time.monotonic()
            if now - last_slow >= 1.0:
                last_slow = now
                self.rss.append((now, s.rss()))
                m = s.mbufs()
                if m is not None:
                    self.mbufs.append((now, m))
            time.sleep(max(0.0, SAMPLE_S - (time.monotonic() - t0)))
        of.close()


class Soak:
    def __init__(self, workdir: Path, seconds: float, log=print):
        self.dir = Path(workdir)
        self.seconds = seconds
        self.say = log
        self.tag = f"sk{os.getpid() % 10000}"
        self.sock = str(self.dir / "ctl.sock")
        self.listen_port = _free_port()
        self.pcap = self.dir / "storm.pcap"
        write_pcap(str(self.pcap), [udp_frame(i) for i in range(FLOWS_IN_PCAP)])
        self.flows_file = self.dir / "flows.txt"
        self.flows_file.write_text("".join(f"table=5,priority={i % 60000 + 1},udp,tp_src={i % 65536},"
                                           f"nw_src=10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255},actions=drop\n"
                                           for i in range(3000)))
        self.controller = Controller()
        cores = sorted(online_cpus())    # not our affinity: EAL pins this process to its main lcore
        cfg = {"dpdk": {"cores": cores[:2] if len(cores) > 1 else cores}, "control": {"socket": self.sock},
               "bridges": {"br0": {
                   "datapath": {"pmd_cores": [cores[-1]], "flow_limit": FLOW_LIMIT},
                   "openflow": {"listen": [f"ptcp:{self.listen_port}:127.0.0.1"],
                                "controllers": [f"tcp:127.0.0.1:{self.controller.port}"]},
                   "flows": ["priority=0,actions=NORMAL"],
                   "ports": {"p1": {"device": f"net_null_{self.tag}", "ofport": 1}}}}}
        (self.dir / "soak.yaml").write_text(yaml.safe_dump(cfg))
        self.log = self.dir / "switch.log"
        self.proc: subprocess.Popen | None = None
        self.result: dict = {}

    # -- the switch
    def ctl(self, *args, timeout: float = 30) -> str:
        return call(self.sock, args[0], list(args[1:]), timeout=timeout)

    def rss(self) -> int:
        """The switch's resident set, bytes, without shared memory: without hugepages EAL's memory
        is a memfd ("nohuge", RssShmem), whose pages become resident as the mbuf pool cycles
        through them (130 MB in a miss storm); with hugepages it is not in VmRSS at all.  What is
        left (RssAnon + RssFile) is the process's own memory, where a leak would show."""
        try:
            text = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0
        kb = {k: int(v) for k, v in re.findall(r"^(VmRSS|RssShmem):\s+(\d+) kB", text, re.M)}
        return (kb["VmRSS"] - kb.get("RssShmem", 0)) * 1024

    def mbufs(self) -> int | None:
        try:
            return int(re.search(r"mbufs in use (\d+)/", self.ctl("dpif/show", timeout=15)).group(1))
        except (ConnectionError, OSError, AttributeError):
            return None

    def upcalls(self) -> int:
        return int(re.search(r"upcalls: (\d+)", self.ctl("upcall/show")).group(1))

    def flows(self) -> int:
        return int(re.search(r"flows: (\d+)", self.ctl("upcall/show")).group(1))

    def start(self) -> None:
        self.controller.start()
        self.proc = subprocess.Popen([sys.executable, "-m", "dpdkswitch", "run", str(self.dir / "soak.yaml"),
                                      "--no-top"], stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.ctl("version", timeout=5)
                break
            except (ConnectionError, OSError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.proc.kill()
                    raise AssertionError("switch did not start:\n" + self.log.read_text())
                time.sleep(0.2)
        while self.controller.connections == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        # Exact-match datapath flows: the storm's 20,000 flows each need one, over a limit of
        # 2,000, so most of its frames miss every time (with megaflows, NORMAL's two cover them all).
        self.ctl("dpif/disable-megaflows", "br0")

    def stop(self) -> float:
        """SIGTERM; seconds until it exited."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.controller.stop.set()
        return time.monotonic() - t0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.controller.stop.set()

    # -- the load, one cycle
    def _ofctl(self, *args) -> None:
        subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", *args], capture_output=True, timeout=300)

    def cycle(self, n: int, prober: Prober) -> None:
        t0 = time.monotonic()

        def at(s: float) -> None:
            time.sleep(max(0.0, t0 + s * CYCLE_S / 30 - time.monotonic()))

        tcp = f"tcp:127.0.0.1:{self.listen_port}"
        prober.phase = "packet-in flood"
        self.ctl("ofctl/add-flow", "br0", "priority=100,in_port=1,actions=controller")
        at(5)
        prober.phase = "packet-in flood + miss storm"
        self.ctl("dpif/add-port", "br0", "p2", f"net_pcap_{self.tag}{n},rx_pcap={self.pcap},infinite_rx=1", "2")
        at(8)
        prober.phase = "miss storm"
        self.ctl("ofctl/del-flows", "br0", "in_port=1")
        at(10)
        prober.phase = "miss storm + flow-mod flood"
        self._ofctl("add-flows", tcp, str(self.flows_file))
        at(15)
        self.controller.flap()
        self.ctl("ofctl/dump-flows", "br0")
        self.ctl("upcall/show")
        at(20)
        prober.phase = "flow-mod flood"
        self.ctl("dpif/del-port", "br0", "p2")
        self._ofctl("del-flows", tcp, "table=5")
        at(22)
        prober.phase = "idle"
        at(30)

    def run(self) -> dict:
        self.start()
        try:
            time.sleep(2)
            base_mbufs, base_flows, base_rss = self.mbufs(), self.flows(), self.rss()
            prober = Prober(self)
            prober.start()
            t_start = time.monotonic()
            t_end = t_start + self.seconds
            n = 0
            rss_after_first = None
            while time.monotonic() + CYCLE_S <= t_end or n == 0:
                self.cycle(n, prober)
                n += 1
                if rss_after_first is None:
                    rss_after_first = self.rss()
                self.say(f"soak: cycle {n} done; ctl p99 {pct(prober.ctl, .99) * 1e3:.0f} ms, echo p99 "
                         f"{pct(prober.echo, .99) * 1e3:.0f} ms, RSS {self.rss() >> 20} MB, "
                         f"packet-ins {self.controller.packet_ins}")
            # The load is off: the flows idle out (10 s), the mbufs come home.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (self.flows() > base_flows or (self.mbufs() or 0) > base_mbufs):
                time.sleep(1)
            prober.stop.set()
            prober.join(timeout=30)
            end_mbufs, end_flows, end_rss = self.mbufs(), self.flows(), self.rss()
            sigterm_s = self.stop()
        finally:
            self.kill()
        log = self.log.read_text()
        self.result = {
            "cycles": n, "ctl": prober.ctl, "echo": prober.echo, "failures": prober.failures,
            "by_phase": prober.by_phase,
            "base": {"mbufs": base_mbufs, "flows": base_flows, "rss": base_rss},
            "end": {"mbufs": end_mbufs, "flows": end_flows, "rss": end_rss},
            "rss_after_first_cycle": rss_after_first, "rss_max": max(r for _, r in prober.rss),
            # The yardstick: RSS at minute 5 (the first sample from then on) against the end.
            "rss_at_5min": next((r for t, r in prober.rss if t >= t_start + 300), None),
            "mbufs_max": max((m for _, m in prober.mbufs), default=None),
            "packet_ins": self.controller.packet_ins, "controller_connections": self.controller.connections,
            "sigterm_s": sigterm_s, "exit": self.proc.returncode, "tracebacks": log.count("Traceback"),
        }
        return self.result


def storms(workdir: Path, seconds: float, log=print) -> list[dict]:
    """The issue's figures: a miss storm, a 15,000/s packet-in stream (a datapath meter of
    15,000 pkt/s before the controller action, on the null port's endless frames), and both
    together, SECONDS each, on one switch; ctl and echo latency (p50/p99/max) and RSS during
    each, and the time SIGTERM takes during the last.  One row per scenario."""
    s = Soak(workdir, seconds, log)
    s.start()
    rows = []
    tcp = f"tcp:127.0.0.1:{s.listen_port}"
    try:
        time.sleep(2)
        base_rss = s.rss()
        subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "add-meter", tcp,
                        "meter=1,pktps,band=type=drop,rate=15000"], check=True, capture_output=True, timeout=30)
        for i, name in enumerate(("miss storm", "packet-ins 15,000/s", "both")):
            if name != "packet-ins 15,000/s":
                s.ctl("dpif/add-port", "br0", "p2", f"net_pcap_{s.tag}{i},rx_pcap={s.pcap},infinite_rx=1", "2")
            if name != "miss storm":
                s.ctl("ofctl/add-flow", "br0", "priority=100,in_port=1,actions=meter:1,controller")
            pins0, up0 = s.controller.packet_ins, s.upcalls()
            time.sleep(1)
            prober = Prober(s)
            prober.start()
            time.sleep(seconds)
            prober.stop.set()
            prober.join(timeout=60)
            row = {"scenario": name, "ctl": prober.ctl, "echo": prober.echo, "failures": prober.failures,
                   "rss_base": base_rss, "rss_max": max((r for _, r in prober.rss), default=0),
                   "packet_ins_per_s": (s.controller.packet_ins - pins0) / (seconds + 1),
                   "upcalls_per_s": (s.upcalls() - up0) / (seconds + 1)}
            if name == "both":
                row["sigterm_s"] = s.stop()
                row["exit"] = s.proc.returncode
            else:
                s.ctl("ofctl/del-flows", "br0", "in_port=1")
                if name != "packet-ins 15,000/s":
                    s.ctl("dpif/del-port", "br0", "p2")
                time.sleep(2)
            rows.append(row)
            log(storm_line(row))
    finally:
        s.kill()
    return rows


def storm_line(r: dict) -> str:
    ms = lambda x: f"{x * 1e3:.0f}"  # noqa: E731
    out = (f"{r['scenario']}: ctl p50/p99/max {ms(pct(r['ctl'], .5))}/{ms(pct(r['ctl'], .99))}/"
           f"{ms(max(r['ctl'], default=0))} ms ({len(r['ctl'])}), echo {ms(pct(r['echo'], .5))}/"
           f"{ms(pct(r['echo'], .99))}/{ms(max(r['echo'], default=0))} ms, RSS {r['rss_base'] >> 20} -> max "
           f"{r['rss_max'] >> 20} MB, upcalls {r.get('upcalls_per_s', 0):.0f}/s, packet-ins {r['packet_ins_per_s']:.0f}/s, "
           f"failures {len(r['failures'])}")
    if "sigterm_s" in r:
        out += f"; SIGTERM to exit {r['sigterm_s']:.2f} s (status {r['exit']})"
    return out


def summary(r: dict) -> str:
    lines = [f"cycles: {r['cycles']}; SIGTERM to exit: {r['sigterm_s']:.2f} s (status {r['exit']})",
             f"ctl version: {len(r['ctl'])} samples, p50 {pct(r['ctl'], .5) * 1e3:.1f} ms, "
             f"p99 {pct(r['ctl'], .99) * 1e3:.1f} ms, max {max(r['ctl'], default=0) * 1e3:.1f} ms",
             f"echo: {len(r['echo'])} samples, p50 {pct(r['echo'], .5) * 1e3:.1f} ms, "
             f"p99 {pct(r['echo'], .99) * 1e3:.1f} ms, max {max(r['echo'], default=0) * 1e3:.1f} ms"]
    for phase, xs in r["by_phase"].items():
        lines.append(f"  ctl during {phase}: p99 {pct(xs, .99) * 1e3:.1f} ms ({len(xs)} samples)")
    at5 = r.get("rss_at_5min")
    lines += [f"RSS: before {r['base']['rss'] >> 20} MB, after cycle 1 {r['rss_after_first_cycle'] >> 20} MB, "
              + (f"at minute 5 {at5 >> 20} MB, " if at5 else "")
              + f"max {r['rss_max'] >> 20} MB, end {r['end']['rss'] >> 20} MB"
              + (f" ({(r['end']['rss'] - at5) * 100 / at5:+.1f} % from minute 5)" if at5 else ""),
              f"mbufs in use: before {r['base']['mbufs']}, max {r['mbufs_max']}, end {r['end']['mbufs']}",
              f"datapath flows: before {r['base']['flows']}, end {r['end']['flows']}",
              f"packet-ins to the controller: {r['packet_ins']}; its connections: {r['controller_connections']}",
              f"failures: {len(r['failures'])} {r['failures'][:5]}; tracebacks in the log: {r['tracebacks']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    storm_mode = len(sys.argv) > 1 and sys.argv[1] == "--storms"
    args = sys.argv[2:] if storm_mode else sys.argv[1:]
    secs = float(args[0]) if args else (60 if storm_mode else 1800)
    keep = os.environ.get("SOAK_DIR")             # the switch's log and config stay there
    with tempfile.TemporaryDirectory(prefix="dpdkswitch-soak-") as d:
        where = Path(keep or d)
        where.mkdir(parents=True, exist_ok=True)
        if storm_mode:
            storms(where, secs)
        else:
            print(summary(Soak(where, secs).run()))
