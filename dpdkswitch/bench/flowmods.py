"""Flow-mod throughput: the same N rules into this switch (over OpenFlow, by its br0.mgmt socket) and
into Open vSwitch 3.1 with its DPDK datapath (its br0.mgmt socket; started by ovs.py, as the
reference tests start it), timed side by side, two ways:

* ``ovs-ofctl add-flows`` of a file of the N rules: ovs-ofctl sends a barrier after every
  flow-mod and waits for its reply, so this is a round trip per flow-mod;
* a pipelined controller (``pipelined``, a raw OpenFlow 1.3 client): the N flow-mods (the same
  rules, encoded by ``openflow.message``) written back to back with one barrier at the end,
  timed from the first byte sent to the barrier's reply, replies read as they come (an error
  reply is counted and fails the run).

Each side runs in its own processes and is stopped afterwards and is reached the same way, by
its bridge's management socket (``unix:.../br0.mgmt``); both tables start empty, in
``fail_mode: secure``, and the pipelined run starts from an emptied table (``del-flows``).  A
run is checked: the table holds N rules after each way.  Each way also reports the CPU time the
switch process took (every thread: ours, ovs-vswitchd), and the ratio of flow-mods per CPU
second: on a machine shared with other jobs the wall-clock rates follow the CPU each gets.

Called by `dpdkswitch bench --flow-mods N`; the main thread (and one reader thread per
pipelined run); costs two switch start-ups and the four runs.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..ofproto import actions as A
from ..openflow import consts as C
from ..openflow.message import HEADER, BarrierRequest, FlowMod, Hello, encode
from .ovs import Ovs, OvsError, missing

PIPELINED_TIMEOUT_S = 600


def rules(n: int) -> list[str]:
    return [f"priority=10,udp,in_port=1,nw_src=10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255},actions=output:2"
            for i in range(n)]


def flow_mods(n: int) -> list[bytes]:
    """The rules of ``rules(n)`` as OpenFlow 1.3 flow-mods (xids 1..N)."""
    out = []
    apply = (A.ApplyActions((A.Output(2),)),)
    for i in range(n):
        match = {"in_port": (1, None), "eth_type": (0x0800, None), "ip_proto": (17, None),
                 "ipv4_src": ((10 << 24) | (i & 0xFFFFFF), None)}
        out.append(encode(FlowMod(match=match, instructions=apply, priority=10, xid=i + 1)))
    return out


def _connect(target: str) -> socket.socket:
    kind, _, rest = target.partition(":")
    if kind == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(rest)
    else:
        host, _, port = rest.rpartition(":")
        s = socket.create_connection((host, int(port)))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _recv_msg(s: socket.socket, buf: bytearray) -> tuple[int, int, bytes]:
    """(type, xid, message) of the next message on S (BUF holds what was read past it)."""
    while True:
        if len(buf) >= 8:
            n = HEADER.unpack_from(buf)[2]
            if len(buf) >= n:
                msg = bytes(buf[:n])
                del buf[:n]
                return msg[1], HEADER.unpack_from(msg)[3], msg
        data = s.recv(1 << 20)
        if not data:
            raise RuntimeError("the switch closed the connection")
        buf += data


def pipelined(target: str, msgs: list[bytes]) -> float:
    """Seconds from the first flow-mod sent to the barrier reply after the last, MSGS written
    back to back on one OpenFlow 1.3 connection to TARGET (tcp:IP:PORT or unix:PATH); a
    reader thread takes the replies meanwhile (an error reply fails the run)."""
    import threading
    s = _connect(target)
    s.settimeout(PIPELINED_TIMEOUT_S)
    buf = bytearray()
    try:
        s.sendall(encode(Hello(versions=(C.OFP13_VERSION,), version=C.OFP13_VERSION)))
        if _recv_msg(s, buf)[0] != C.OFPT_HELLO:
            raise RuntimeError("no HELLO from the switch")
        barrier_xid = len(msgs) + 1
        data = b"".join(msgs) + encode(BarrierRequest(version=C.OFP13_VERSION, xid=barrier_xid))
        result: dict = {}

        def read():
            try:
                errors = 0
                while True:
                    t, xid, msg = _recv_msg(s, buf)
                    if t == C.OFPT_ERROR:
                        errors += 1
                    elif t == C.OFPT_BARRIER_REPLY and xid == barrier_xid:
                        result["end"] = time.perf_counter()
                        result["errors"] = errors
                        return
                    elif t == C.OFPT_ECHO_REQUEST:
                        s.sendall(msg[:1] + bytes([C.OFPT_ECHO_REPLY]) + msg[2:])
            except Exception as e:           # reported by the caller
                result["error"] = e

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        t0 = time.perf_counter()
        s.sendall(data)
        reader.join(PIPELINED_TIMEOUT_S)
        if "error" in result:
            raise RuntimeError(f"pipelined flow-mods to {target}: {result['error']}")
        if "end" not in result:
            raise RuntimeError(f"pipelined flow-mods to {target}: no barrier reply in {PIPELINED_TIMEOUT_S} s")
        if result["errors"]:
            raise RuntimeError(f"pipelined flow-mods to {target}: {result['errors']} error replies")
        return result["end"] - t0
    finally:
        s.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _timed_add_flows(target: str, path: Path, env=None) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "add-flows", target, str(path)], capture_output=True,
                       text=True, env=env, timeout=1800)
    dt = time.perf_counter() - t0
    if r.returncode:
        raise RuntimeError(f"ovs-ofctl add-flows {target}: {r.stderr.strip()}")
    return dt


def _count(target: str, env=None) -> int:
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-aggregate", target], capture_output=True,
                         text=True, env=env, timeout=300).stdout
    return int(out.split("flow_count=")[1].split()[0]) if "flow_count=" in out else -1


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system, every thread's) process PID has had so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _both(peer: str, target: str, path: Path, msgs: list[bytes], pid: int, env=None) -> dict:
    """ovs-ofctl add-flows of PATH into TARGET, then (the table emptied) MSGS pipelined; with the
    CPU time the switch (process PID) took for each: on a machine shared with other jobs the
    wall clock follows the CPU each process gets, the CPU time what each needs."""
    c0 = cpu_seconds(pid)
    dt = _timed_add_flows(target, path, env)
    cpu = cpu_seconds(pid) - c0
    flows = _count(target, env)
    r = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "del-flows", target], capture_output=True, text=True,
                       env=env, timeout=600)
    if r.returncode or _count(target, env) != 0:
        raise RuntimeError(f"ovs-ofctl del-flows {target}: {r.stderr.strip() or 'rules left'}")
    c0 = cpu_seconds(pid)
    pt = pipelined(target, msgs)
    pcpu = cpu_seconds(pid) - c0
    return {"peer": peer, "seconds": round(dt, 2), "flows": flows, "cpu_s": round(cpu, 2),
            "pipelined_seconds": round(pt, 3), "pipelined_flows": _count(target, env),
            "pipelined_cpu_s": round(pcpu, 2)}


def ours(path: Path, msgs: list[bytes], work: Path) -> dict:
    port = _free_port()
    sock = work / "ctl.sock"
    cfg = work / "flowmod.yaml"
    cfg.write_text("dpdk: {cores: [0, 1]}\n"
                   f"control: {{socket: {sock}}}\n"
                   "bridges:\n  br0:\n    datapath: {pmd_cores: []}\n"
                   f"    openflow: {{listen: ['ptcp:{port}:127.0.0.1'], fail_mode: secure}}\n"
                   f"    ports:\n      p1: {{device: 'net_null_fm{os.getpid()}a,no-rx=1', ofport: 1}}\n"
                   f"      p2: {{device: 'net_null_fm{os.getpid()}b,no-rx=1', ofport: 2}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "dpdkswitch", "run", str(cfg), "--no-top"],
                            stdout=subprocess.DEVNULL, stderr=open(work / "switch.log", "w"))
    target = f"unix:{work / 'br0.mgmt'}"             # as Open vSwitch's side: its br0.mgmt
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "show", target], capture_output=True).returncode:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dpdkswitch did not start: " + (work / "switch.log").read_text()[-500:])
            time.sleep(0.3)
        return _both("dpdkswitch", target, path, msgs, proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def ovs(path: Path, msgs: list[bytes], work: Path) -> dict:
    why = missing()
    if why:
        raise OvsError(why)
    with Ovs(work, bridge="br0") as sw:
        return _both("ovs-dpdk", sw.mgmt, path, msgs, sw.vswitchd.pid, sw.env)


def _per_cpu(ovs_cpu: float, our_cpu: float) -> float | None:
    """Our flow-mods per switch CPU-second over Open vSwitch's (None when a figure is 0)."""
    return round(ovs_cpu / our_cpu, 2) if ovs_cpu and our_cpu else None


def main(n: int, as_json: bool) -> int:
    msgs = flow_mods(n)
    with tempfile.TemporaryDirectory(prefix="dps-flowmods-") as d:
        work = Path(d)
        path = work / "flows.txt"
        path.write_text("\n".join(rules(n)) + "\n")
        results = []
        for fn in (ours, ovs):
            sub = work / fn.__name__
            sub.mkdir()
            try:
                r = fn(path, msgs, sub)
                for key in ("flows", "pipelined_flows"):
                    if r[key] != n:
                        raise RuntimeError(f"{r[key]:,} rules in the table after {n:,} flow-mods ({key})")
                results.append(r)
            except Exception as e:        # a peer that fails is reported, the other still runs
                results.append({"peer": fn.__name__, "error": str(e)})
    by = {r["peer"]: r for r in results}
    ok = all("seconds" in by.get(p, {}) for p in ("dpdkswitch", "ovs-dpdk"))
    ratio = ok and by["ovs-dpdk"]["seconds"] / by["dpdkswitch"]["seconds"]
    pratio = ok and by["ovs-dpdk"]["pipelined_seconds"] / by["dpdkswitch"]["pipelined_seconds"]
    cratio = ok and _per_cpu(by["ovs-dpdk"]["cpu_s"], by["dpdkswitch"]["cpu_s"])
    pcratio = ok and _per_cpu(by["ovs-dpdk"]["pipelined_cpu_s"], by["dpdkswitch"]["pipelined_cpu_s"])
    if as_json:
        print(json.dumps({"flow_mods": n, "results": results, "speed_vs_ovs": ratio and round(ratio, 2),
                          "pipelined_speed_vs_ovs": pratio and round(pratio, 2),
                          "per_cpu_vs_ovs": cratio, "pipelined_per_cpu_vs_ovs": pcratio}))
    else:
        for r in results:
            if "seconds" not in r:
                print(f"{r['peer']:<12} failed: {r['error']}")
                continue
            print(f"{r['peer']:<12} {n:,} flows via ovs-ofctl add-flows in {r['seconds']} s "
                  f"({n / r['seconds']:,.0f} flow-mods/s, switch CPU {r['cpu_s']} s); pipelined with one barrier "
                  f"in {r['pipelined_seconds']} s ({n / r['pipelined_seconds']:,.0f} flow-mods/s, switch CPU "
                  f"{r['pipelined_cpu_s']} s)")
        if ok:
            print(f"dpdkswitch / Open vSwitch rate: ovs-ofctl {ratio:.2f}x, pipelined {pratio:.2f}x; "
                  f"per switch CPU-second: ovs-ofctl {cratio}x, pipelined {pcratio}x")
    return 0 if ok else 1
