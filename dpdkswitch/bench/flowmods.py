"""Flow-mod throughput: the same `ovs-ofctl add-flows` file of N rules into this switch (over
OpenFlow, a ptcp: listener) and into Open vSwitch 3.1 with its DPDK datapath (its br0.mgmt
socket; started by ovs.py, as the reference tests start it), timed side by side.  Each side
runs in its own processes and is stopped afterwards; both tables start empty, in
``fail_mode: secure``.

Called by `dpdkswitch bench --flow-mods N`; the main thread only; costs two switch start-ups
and the two add-flows runs.
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

from .ovs import Ovs, OvsError, missing


def rules(n: int) -> list[str]:
    return [f"priority=10,udp,in_port=1,nw_src=10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255},actions=output:2"
            for i in range(n)]


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


def ours(path: Path, work: Path) -> dict:
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
    target = f"tcp:127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "show", target], capture_output=True).returncode:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dpdkswitch did not start: " + (work / "switch.log").read_text()[-500:])
            time.sleep(0.3)
        dt = _timed_add_flows(target, path)
        return {"peer": "dpdkswitch", "seconds": round(dt, 2), "flows": _count(target)}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def ovs(path: Path, work: Path) -> dict:
    why = missing()
    if why:
        raise OvsError(why)
    with Ovs(work, bridge="br0") as sw:
        dt = _timed_add_flows(sw.mgmt, path, sw.env)
        return {"peer": "ovs-dpdk", "seconds": round(dt, 2), "flows": _count(sw.mgmt, sw.env)}


def main(n: int, as_json: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="dps-flowmods-") as d:
        work = Path(d)
        path = work / "flows.txt"
        path.write_text("\n".join(rules(n)) + "\n")
        results = []
        for fn in (ours, ovs):
            sub = work / fn.__name__
            sub.mkdir()
            try:
                results.append(fn(path, sub))
            except Exception as e:        # a peer that fails is reported, the other still runs
                results.append({"peer": fn.__name__, "error": str(e)})
    by = {r["peer"]: r for r in results}
    ratio = (by["ovs-dpdk"]["seconds"] / by["dpdkswitch"]["seconds"]
             if "seconds" in by.get("ovs-dpdk", {}) and "seconds" in by.get("dpdkswitch", {}) else None)
    if as_json:
        print(json.dumps({"flow_mods": n, "results": results, "speed_vs_ovs": ratio and round(ratio, 2)}))
    else:
        for r in results:
            print(f"{r['peer']:<12} " + (f"{n:,} flows via ovs-ofctl add-flows in {r['seconds']} s "
                                         f"({n / r['seconds']:,.0f} flow-mods/s), {r['flows']:,} in the table"
                                         if "seconds" in r else f"failed: {r['error']}"))
        if ratio:
            print(f"dpdkswitch takes {1 / ratio:.2f}x Open vSwitch's time")
    return 0 if all("seconds" in r for r in results) else 1
