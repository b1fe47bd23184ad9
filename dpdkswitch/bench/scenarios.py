"""The shared benchmark material: the scenarios, their rules, their traffic.

Where it lives: ``<repo>/../shared/bench`` (``scenarios.yaml``, ``genpcap.py``, the peer
runners), or the directory of ``--scenarios FILE``.  A scenario's rules are expanded here as
``ovs_dpdk_peer.py`` expands them, and its pcap is written by ``genpcap.py``'s own functions
into a cache, so this switch and its peers see the same rules and the same frames.

Pure functions of files, no datapath; any thread (the bench calls them from the main thread).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
SHARED_BENCH = REPO_ROOT.parent / "shared" / "bench"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dpdkswitch" / "bench"


class BenchError(Exception):
    """A problem that stops a bench run; the message is one line for the user."""


def scenarios_path(given: str | None = None) -> Path:
    """The scenarios file: --scenarios, else the shared one next to the repository."""
    if given:
        p = Path(given)
        if not p.is_file():
            raise BenchError(f"{given}: no such scenarios file")
        return p.resolve()
    p = SHARED_BENCH / "scenarios.yaml"
    if not p.is_file():
        raise BenchError(f"no scenarios file: expected the shared benchmark material in {SHARED_BENCH} "
                         f"(or give --scenarios FILE)")
    return p


def bench_dir(scen_path: Path) -> Path:
    """Where genpcap.py and the peer runners are: next to the scenarios file, else the shared dir."""
    d = scen_path.parent
    return d if (d / "genpcap.py").is_file() else SHARED_BENCH


def load_scenarios(path: Path) -> dict:
    with open(path) as f:
        data = yaml.safe_load(f)
    scen = (data or {}).get("scenarios")
    if not isinstance(scen, dict) or not scen:
        raise BenchError(f"{path}: no 'scenarios' mapping")
    return scen


def ip_src(i: int) -> str:
    """The i-th source address of rules_generate's {ip_src}: the one genpcap.py's frame i carries."""
    return "10.%d.%d.%d" % ((i >> 16) & 255, (i >> 8) & 255, i & 255)


def rules_for(sc: dict) -> list[str]:
    """A scenario's rules: ``rules``, then ``rules_generate`` expanded (as ovs_dpdk_peer.py does)."""
    rules = list(sc.get("rules", []))
    gen = sc.get("rules_generate")
    if gen:
        rules += [gen["template"].format(i=i, ip_src=ip_src(i)) for i in range(gen["count"])]
    return rules


def _load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BenchError(f"cannot import {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def pcap_for(name: str, sc: dict, tools: Path, cache: Path = CACHE_DIR) -> tuple[Path, int]:
    """The scenario's pcap, written by genpcap.py's own functions into the cache (once per
    traffic description and genpcap.py version).  Returns (path, frames)."""
    gen_path = tools / "genpcap.py"
    if not gen_path.is_file():
        raise BenchError(f"{gen_path}: not found (the shared pcap generator)")
    traffic = sc.get("traffic") or {}
    flows, vary = int(traffic.get("flows", 1)), list(traffic.get("vary", ["ip_src"]))
    size, vlan = int(traffic.get("size", 64)), traffic.get("vlan")
    h = hashlib.sha256(gen_path.read_bytes())
    h.update(json.dumps([flows, vary, size, vlan]).encode())
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / f"{name}-{h.hexdigest()[:12]}.pcap"
    if not out.exists():
        gen = _load_module(gen_path, "dpdkswitch_bench_genpcap")
        tmp = out.with_suffix(f".tmp{os.getpid()}")
        try:
            gen.write_pcap(str(tmp), (gen.frame(i, vary, size, vlan) for i in range(flows)))
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    return out, flows
