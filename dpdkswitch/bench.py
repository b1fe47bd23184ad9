"""``dpdkswitch bench``: the shared benchmark scenarios on this switch, and beside its peers.

One run (``dpdkswitch bench SCENARIO``) is one process: it builds the scenario's pcap with the
shared ``genpcap.py`` (cached), starts EAL, builds bridge ``br0`` with port 1 =
``net_pcap0,rx_pcap=PCAP,infinite_rx=1`` and port 2 = ``net_null0,no-rx=1`` exactly as the
peers do, installs the scenario's rules through the OpenFlow pipeline *before* port 1 exists,
then runs the control loop itself in the foreground (upcalls, revalidator every 500 ms,
progress once a second) while one PMD thread forwards.

* ``measure: forwarding``: 3 s of warm-up, then the PMD counters over ``--seconds``.
* ``measure: setup``: datapath flows installed per second while the miss storm lasts.

It prints a table, or with ``--json`` one JSON line with the keys the peer scripts print
(``mpps``, ``cycles_per_packet``, ``emc_hits``, ``megaflow_hits``, ``subtable_lookups_per_hit``,
``miss_ok``, ``miss_failed``, ``packets``; ``setups_per_s``, ``flows_at_end`` for setup).
A forwarding run also has cycles per frame by stage: the PMD reads the TSC at its stage
boundaries every ``--stage-sample`` th iteration (64; 0 turns it off), once per burst, and
``stage_cycles_per_packet`` holds the stages of ``datapath.abi.STAGES`` and ``other`` (the
loop's own), which add up to ``stage_sampled_cycles_per_packet``, the timed iterations' cycles
per frame (about a TSC read per stage per burst above the untimed ones').

``--revalidation N[,N...]`` and ``--memory [N]`` measure the flow table at scale instead
(``flowtable_bench.py``).

``dpdkswitch bench --compare`` runs each scenario on this switch, on Open vSwitch 3.1's DPDK
datapath (``ovs_dpdk_peer.py``) and on testpmd (``testpmd_limit.sh``, io mode), interleaved,
each run a child process, and writes the raw runs, the medians and a bar plot.

Where the shared material lives: ``<repo>/../shared/bench`` (``scenarios.yaml``, ``genpcap.py``,
the peers), or the directory of ``--scenarios FILE``.  Pure control-thread code: everything
that touches the datapath runs on the main thread, the EAL main lcore.
"""
from __future__ import annotations

import datetime
import gc
import hashlib
import importlib.util
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_BENCH = REPO_ROOT.parent / "shared" / "bench"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dpdkswitch" / "bench"

WARMUP_S = 3.0
REVALIDATE_S = 0.5

# The keys every forwarding result carries (the peers' vocabulary), and setup results.
FORWARDING_KEYS = ("mpps", "cycles_per_packet", "emc_hits", "megaflow_hits", "subtable_lookups_per_hit",
                   "miss_ok", "miss_failed", "packets")
SETUP_KEYS = ("setups_per_s", "miss_ok", "miss_failed", "flows_at_end")
COMMON_KEYS = ("scenario", "seconds", "peer", "version")

COUNTERS = ("rx_packets", "tx_packets", "tx_dropped", "busy_cycles", "idle_cycles", "iterations", "emc_hits",
            "megaflow_hits", "subtable_lookups", "misses", "lost", "dups", "action_drops", "simple_hits",
            "sampled_iterations", "sampled_packets", "sampled_cycles")
STAGE_SAMPLE = 64          # time the stages of every 64th PMD iteration (--stage-sample)


class BenchError(Exception):
    """A problem that stops a bench run; the message is one line for the user."""


# ------------------------------------------------------------------ scenarios and traffic

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
    import yaml
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


# ------------------------------------------------------------------ one run on this switch

def bench_config_text(pcap: Path, ctl_core: int, pmd_core: int) -> str:
    return f"""\
dpdk:
  cores: [{ctl_core}, {pmd_core}]
  hugepages: auto
bridges:
  br0:
    datapath:
      pmd_cores: [{pmd_core}]
    ports:
      p2:
        device: "net_null0,no-rx=1"
        ofport: 2
      p1:
        device: "net_pcap0,rx_pcap={pcap},infinite_rx=1"
        ofport: 1
"""


def version() -> str:
    from . import __version__
    try:
        from .datapath import ffi, lib
        return f"dpdkswitch {__version__} ({ffi.string(lib.dps_dpdk_version()).decode()})"
    except Exception:                                    # pragma: no cover - extension missing
        return f"dpdkswitch {__version__}"


class Progress:
    """A line on stderr, redrawn in place on a terminal, one line a second otherwise."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.drawn = False

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            sys.stderr.write("\r\x1b[K" + text)
            self.drawn = True
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def note(self, text: str) -> None:
        if not self.enabled:
            return
        self.done()
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.drawn = False


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


class Bench:
    """One scenario on one switch in this process: set-up, the control loop, the figures."""

    def __init__(self, name: str, sc: dict, pcap: Path, n_frames: int, ctl_core: int = 0, pmd_core: int = 1,
                 progress: Progress | None = None, stage_sample: int = STAGE_SAMPLE):
        self.name, self.sc, self.pcap, self.n_frames = name, sc, pcap, n_frames
        self.ctl_core, self.pmd_core = ctl_core, pmd_core
        self.stage_sample = stage_sample
        self.progress = progress or Progress(False)
        self.switch = None
        self.br = None
        self.info: dict = {}
        self.reval_max_s = 0.0
        self.reval_passes = 0
        self.upcall_batches = 0
        self.upcall_busy_s = 0.0
        self._last_install_t: float | None = None
        self._miss_seen = (0, 0.0)               # (misses + lost, when that last changed)

    # -- set-up
    def start(self) -> None:
        from .config import loads
        from .ofproto.flowstr import FlowSpec, parse_flow
        from .switch import Bridge, Switch

        config = loads(bench_config_text(self.pcap, self.ctl_core, self.pmd_core), "<bench>")
        bc = config.bridges["br0"]
        self.switch = Switch(config)
        self.switch.start_eal()
        self.info["eal"] = self.switch.eal_note
        br = self.br = Bridge.create(bc, self.switch.netns)   # pools sized for the pcap by the port
        self.switch.bridges["br0"] = br
        br.pipeline.delete(FlowSpec())           # the bridge's default rule: the scenario brings its own
        br.add_port(bc.ports["p2"])
        rules = rules_for(self.sc)
        t0 = time.perf_counter()
        specs = [parse_flow(r) for r in rules]
        t1 = time.perf_counter()
        for s in specs:
            br.pipeline.add(s)
        t2 = time.perf_counter()
        br.revalidator.run()
        gc.freeze()                              # as `dpdkswitch run` does after start-up (app.py)
        br.dp.set_stage_sampling(self.stage_sample)
        self.info.update(rules=len(rules), rules_parse_s=round(t1 - t0, 3), rules_add_s=round(t2 - t1, 3),
                         rules_install_s=round(t2 - t0, 3))
        if len(rules) > 1000:
            self.progress.note(f"{self.name}: {len(rules)} rules installed in {t2 - t0:.2f} s "
                               f"(parse {t1 - t0:.2f} s, pipeline {t2 - t1:.2f} s)")
        br.start()                               # the PMD thread
        self.t_traffic = time.monotonic()
        br.add_port(bc.ports["p1"])              # traffic starts now

    def stop(self) -> None:
        if self.switch is not None:
            self.switch.stop()
            self.switch = None
            self.br = None

    # -- counters
    def snapshot(self) -> tuple[float, dict[str, int]]:
        from .datapath.abi import STAGES
        st = self.br.dp.pmd_stats().copy()
        t = time.monotonic()
        c = {k: int(st[k].sum()) for k in COUNTERS}
        c.update(zip(("stage_" + s for s in STAGES), (int(v) for v in st["stage_cycles"].sum(axis=0))))
        return t, c

    # -- the control loop
    def loop(self, seconds: float, tick=None) -> None:
        """Run the control thread's duties for SECONDS: upcalls (eventfd, bounded batches),
        the revalidator every 500 ms, TICK() once a second."""
        br = self.br
        fd = br.dp.upcall_fd()
        now = time.monotonic()
        deadline = now + seconds
        next_reval = now + REVALIDATE_S
        next_tick = now + 1.0
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            got = self._handle_upcalls(budget_s=0.05)
            now = time.monotonic()
            if now >= next_reval:
                rep = br.revalidator.run()
                self.reval_passes += 1
                self.reval_max_s = max(self.reval_max_s, rep.seconds)
                next_reval = max(next_reval + br.revalidator.interval(REVALIDATE_S), time.monotonic())
            if now >= next_tick:
                if tick:
                    tick()
                next_tick = max(next_tick + 1.0, now + 0.5)   # no burst of ticks after a long upcall batch
            if not got and not br.dp.upcall_arm():
                wait = max(0.0, min(next_reval, next_tick, deadline) - time.monotonic())
                r, _, _ = select.select([fd], [], [], wait)
                if r:
                    try:
                        os.read(fd, 8)
                    except BlockingIOError:
                        pass

    def _handle_upcalls(self, budget_s: float) -> int:
        handler = self.br.upcalls
        t0 = time.monotonic()
        total = 0
        before = handler.stats.installed
        while True:
            n = handler.handle()
            if not n:
                break
            total += n
            self.upcall_batches += 1
            if time.monotonic() - t0 >= budget_s:
                break
        t1 = time.monotonic()
        if total:
            self.upcall_busy_s += t1 - t0
        if handler.stats.installed != before:
            self._last_install_t = t1
        return total

    # -- measures
    def run(self, seconds: float) -> dict:
        measure = self.sc.get("measure", "forwarding")
        if measure == "setup":
            return self._setup(seconds)
        if measure != "forwarding":
            raise BenchError(f"scenario {self.name}: unknown measure {measure!r}")
        return self._forwarding(seconds)

    def _rate_ticker(self, phase: str, t_end: float):
        last = [self.snapshot()]

        def tick():
            t, c = self.snapshot()
            if c["misses"] + c["lost"] != self._miss_seen[0]:
                self._miss_seen = (c["misses"] + c["lost"], t)
            t0, c0 = last[0]
            last[0] = (t, c)
            mpps = (c["rx_packets"] - c0["rx_packets"]) / max(t - t0, 1e-9) / 1e6
            self.progress.show(f"{self.name}: {phase} {max(0, t_end - t):4.0f} s left  {mpps:7.3f} Mpps  "
                               f"flows {self.br.dp.flow_count()}  upcalls {self.br.upcalls.stats.upcalls}  "
                               f"lost {c['lost']}")
        return tick

    def _forwarding(self, seconds: float) -> dict:
        self.loop(WARMUP_S, self._rate_ticker("warm-up", time.monotonic() + WARMUP_S))
        t0, c0 = self.snapshot()
        self.loop(seconds, self._rate_ticker("measuring", t0 + seconds))
        t1, c1 = self.snapshot()
        self.progress.done()
        d = {k: c1[k] - c0[k] for k in c1}
        dt = t1 - t0
        rx = d["rx_packets"]
        cycles = d["busy_cycles"] + d["idle_cycles"]
        return {
            "mpps": round(rx / dt / 1e6, 3),
            # frames the fast path decided (cache hits); the rest of rx were misses, upcalled or lost
            "hit_mpps": round((d["emc_hits"] + d["megaflow_hits"] + d["simple_hits"]) / dt / 1e6, 3),
            "simple_match_hits": d["simple_hits"],
            "tx_mpps": round(d["tx_packets"] / dt / 1e6, 3),
            "cycles_per_packet": round(cycles / rx, 1) if rx else 0.0,
            "busy_cycles_per_packet": round(d["busy_cycles"] / rx, 1) if rx else 0.0,
            "emc_hits": d["emc_hits"],
            "megaflow_hits": d["megaflow_hits"],
            "subtable_lookups_per_hit": round(d["subtable_lookups"] / d["megaflow_hits"], 2)
            if d["megaflow_hits"] else 0.0,
            # misses since traffic started (warm-up included: that is where flows are set up)
            "miss_ok": c1["misses"],
            "miss_failed": c1["lost"],
            "miss_ok_window": d["misses"],
            "miss_failed_window": d["lost"],
            "dups": c1["dups"],
            "packets": rx,
            "tx_packets": d["tx_packets"],
            "tx_dropped": d["tx_dropped"],
            "action_drops": d["action_drops"],
            "busy_pct": round(100.0 * d["busy_cycles"] / cycles, 2) if cycles else 0.0,
            "measured_s": round(dt, 3),
            "flows_at_end": self.br.dp.flow_count(),
            "subtables": self.br.dp.subtable_count(),
            **stage_figures(d, self.stage_sample),
        }

    def _setup(self, seconds: float) -> dict:
        # The storm began when port 1 was added (counters were zero then).
        t0 = self.t_traffic
        stats = self.br.upcalls.stats
        self.loop(max(0.0, seconds - (time.monotonic() - t0)),
                  self._rate_ticker("miss storm", t0 + seconds))
        t1, c1 = self.snapshot()
        self.progress.done()
        installed = stats.installed
        # The storm is over when no frame has missed for a second (sampled once a second):
        # then the rate is over the time it took; otherwise over the whole window.
        done = self._last_install_t is not None and c1["misses"] + c1["lost"] == self._miss_seen[0] \
            and t1 - self._miss_seen[1] >= 1.0
        storm_s = (self._last_install_t - t0) if done else (t1 - t0)
        return {
            "setups_per_s": round(installed / storm_s) if storm_s > 0 else 0,
            "miss_ok": c1["misses"],
            "miss_failed": c1["lost"],
            "flows_at_end": self.br.dp.flow_count(),
            "installed": installed,
            "storm_s": round(storm_s, 3),
            "storm_over": done,
            "dups": c1["dups"],
            "upcalls": stats.upcalls,
            "translations": stats.translations,
            "flow_limit_hits": stats.flow_limit_hits,
            "put_errors": stats.put_errors,
            "packets": c1["rx_packets"],
            "measured_s": round(t1 - t0, 3),
        }


def stage_figures(d: dict[str, int], every: int) -> dict:
    """Cycles per frame by stage over the sampled iterations of D (counter deltas), the loop's own
    as "other"; and the sampled iterations' cycles per frame, to hold against the whole run's."""
    from .datapath.abi import STAGES
    out: dict = {"stage_sample_every": every}
    n = d["sampled_packets"]
    if not every or not n:
        return out
    per = {s: round(d["stage_" + s] / n, 1) for s in STAGES}
    per["other"] = round((d["sampled_cycles"] - sum(d["stage_" + s] for s in STAGES)) / n, 1)
    out.update(stage_cycles_per_packet=per, stage_sampled_cycles_per_packet=round(d["sampled_cycles"] / n, 1),
               stage_sampled_iterations=d["sampled_iterations"], stage_sampled_packets=n)
    return out


def run_one(name: str, scen_file: Path, seconds: float, ctl_core: int, pmd_core: int,
            progress: Progress, stage_sample: int = STAGE_SAMPLE) -> dict:
    """One scenario, one run, in this process (EAL starts here)."""
    scenarios = load_scenarios(scen_file)
    if name not in scenarios:
        raise BenchError(f"no scenario {name!r} in {scen_file} (have: {', '.join(scenarios)})")
    sc = scenarios[name]
    pcap, n_frames = pcap_for(name, sc, bench_dir(scen_file))
    b = Bench(name, sc, pcap, n_frames, ctl_core, pmd_core, progress, stage_sample)
    # Ctrl-C and SIGTERM stop the run cleanly (even when started with SIGINT ignored, as a
    # background job of a shell is): the switch is stopped in the finally below.
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        b.start()
        figures = b.run(seconds)
    finally:
        progress.done()
        b.stop()
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
    result = {"peer": "dpdkswitch", "version": version(), "scenario": name, "seconds": seconds,
              "measure": sc.get("measure", "forwarding")}
    result.update(figures)
    result.update(b.info)
    result.update(revalidator_passes=b.reval_passes, revalidator_max_s=round(b.reval_max_s, 4),
                  upcall_busy_s=round(b.upcall_busy_s, 3))
    return result


def format_result(r: dict) -> str:
    if r.get("measure") == "setup":
        head = ("scenario", "setups/s", "storm s", "installed", "misses", "lost", "dups", "flows at end",
                "rules", "rules install s")
        row = (r["scenario"], f"{r['setups_per_s']:,}", f"{r['storm_s']:.2f}", f"{r['installed']:,}",
               f"{r['miss_ok']:,}", f"{r['miss_failed']:,}", f"{r['dups']:,}", f"{r['flows_at_end']:,}",
               f"{r['rules']:,}", f"{r['rules_install_s']:.2f}")
    else:
        head = ("scenario", "Mpps", "hit Mpps", "cycles/pkt", "busy cyc/pkt", "EMC hits", "megaflow hits",
                "subtables/hit", "misses", "lost")
        row = (r["scenario"], f"{r['mpps']:.3f}", f"{r['hit_mpps']:.3f}", f"{r['cycles_per_packet']:.1f}",
               f"{r['busy_cycles_per_packet']:.1f}", f"{r['emc_hits']:,}", f"{r['megaflow_hits']:,}",
               f"{r['subtable_lookups_per_hit']:.2f}", f"{r['miss_ok']:,}", f"{r['miss_failed']:,}")
    out = _table([head, row])
    per = r.get("stage_cycles_per_packet")
    if per:
        names = list(per)
        out += (f"\n\ncycles per frame by stage (every {r['stage_sample_every']}th PMD iteration timed: "
                f"{r['stage_sampled_iterations']:,} iterations, {r['stage_sampled_packets']:,} frames)\n")
        out += _table([("stage", *names, "timed total", "all busy"),
                       ("cycles/frame", *(f"{per[n]:.1f}" for n in names),
                        f"{r['stage_sampled_cycles_per_packet']:.1f}", f"{r['busy_cycles_per_packet']:.1f}")])
    return out


def _table(rows: list[tuple]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, r in enumerate(rows):
        out.append("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in
                             enumerate(zip(r, widths))))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


# ------------------------------------------------------------------ --compare

PEERS = ("dpdkswitch", "ovs-dpdk", "testpmd-io")
CHILD_TIMEOUT_S = 900      # the first OVS run installs openvswitch-switch-dpdk


def _last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


class Children:
    """Child processes of --compare, each in its own session so Ctrl-C reaches them through us
    and they are all stopped (their process group: testpmd, OVS's daemons' runner)."""

    def __init__(self):
        self.current: subprocess.Popen | None = None

    def run(self, cmd: list[str], timeout: float, cwd: Path, env: dict | None = None) -> tuple[int, str, str, float]:
        t0 = time.monotonic()
        p = self.current = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                            cwd=cwd, env=env, start_new_session=True)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = p.communicate()
            err += f"\n(timed out after {timeout:.0f} s)"
            return -1, out, err, time.monotonic() - t0
        finally:
            if self.current is p and p.returncode is not None:
                self.current = None
        return p.returncode, out, err, time.monotonic() - t0

    def kill(self) -> None:
        p = self.current
        if p is None or p.poll() is not None:
            return
        for sig, wait in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                return
            try:
                p.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


def peer_command(peer: str, scenario: str, scen_file: Path, tools: Path, seconds: float, ctl_core: int,
                 pmd_core: int, stage_sample: int = STAGE_SAMPLE) -> list[str]:
    if peer == "dpdkswitch":
        return [sys.executable, "-m", "dpdkswitch", "bench", scenario, "--json", "--seconds", str(seconds),
                "--scenarios", str(scen_file), "--ctl-core", str(ctl_core), "--pmd-core", str(pmd_core),
                "--stage-sample", str(stage_sample)]
    if peer == "ovs-dpdk":
        # A work directory of ours: the peer otherwise leaves a fresh /tmp/ovs-peer-* (with the
        # pcap) behind on every run.  Keyed by the traffic's inputs, as it caches pcaps by name.
        return [sys.executable, str(tools / "ovs_dpdk_peer.py"), scenario, "--seconds", str(seconds),
                "--scenarios", str(scen_file), "--ctl-core", str(ctl_core), "--pmd-core", str(pmd_core),
                "--workdir", str(peer_workdir("ovs-peer", scen_file, tools))]
    if peer == "testpmd-io":
        # testpmd_limit.sh reads the scenarios.yaml next to itself and always runs on lcores 0-1.
        return ["bash", str(tools / "testpmd_limit.sh"), scenario, "io", str(int(round(seconds)))]
    raise ValueError(peer)


def peer_workdir(kind: str, scen_file: Path, tools: Path) -> Path:
    """A cache directory for a peer's pcaps, one per content of the scenarios and genpcap.py
    (the peers reuse a pcap by scenario name alone)."""
    h = hashlib.sha256()
    for f in (scen_file, tools / "genpcap.py"):
        h.update(f.read_bytes() if f.is_file() else b"")
    d = CACHE_DIR / f"{kind}-{h.hexdigest()[:12]}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def metric_of(measure: str) -> str:
    return "setups_per_s" if measure == "setup" else "mpps"


def medians(runs: list[dict], scenarios: dict) -> dict:
    out: dict = {}
    for name in dict.fromkeys(r["scenario"] for r in runs):
        measure = scenarios[name].get("measure", "forwarding")
        metric = metric_of(measure)
        row: dict = {"measure": measure, "metric": metric, "peers": {}}
        for peer in PEERS:
            mine = [r for r in runs if r["scenario"] == name and r["peer"] == peer]
            if not mine:
                continue
            ok = [r["result"] for r in mine if r["ok"] and isinstance(r["result"].get(metric), (int, float))]
            if not ok:
                row["peers"][peer] = {"ok": False, "runs": len(mine), "error": mine[-1].get("error", "failed")}
                continue
            entry = {"ok": True, "runs": len(ok), "failed_runs": len(mine) - len(ok),
                     metric: statistics.median(r[metric] for r in ok)}
            cpp = [r["cycles_per_packet"] for r in ok if isinstance(r.get("cycles_per_packet"), (int, float))]
            if cpp and measure != "setup":
                entry["cycles_per_packet"] = statistics.median(cpp)
            if peer == "dpdkswitch" and measure != "setup":
                hit = [r["hit_mpps"] for r in ok if isinstance(r.get("hit_mpps"), (int, float))]
                lost = [r["miss_failed_window"] / r["packets"] for r in ok
                        if r.get("packets") and isinstance(r.get("miss_failed_window"), (int, float))]
                if hit:
                    entry["hit_mpps"] = statistics.median(hit)
                if lost:
                    entry["lost_share"] = round(statistics.median(lost), 4)
            row["peers"][peer] = entry
        ours = row["peers"].get("dpdkswitch", {})
        for peer, key in (("ovs-dpdk", "ours_over_ovs"), ("testpmd-io", "ours_over_testpmd")):
            theirs = row["peers"].get(peer, {})
            if ours.get("ok") and theirs.get("ok") and theirs.get(metric):
                row[key] = round(ours[metric] / theirs[metric], 3)
        out[name] = row
    return out


def format_medians(med: dict) -> str:
    rows = [("scenario", "metric", *PEERS, "ours/OVS", "ours/testpmd", "ours hit Mpps")]
    notes = []
    for name, row in med.items():
        cells = []
        for peer in PEERS:
            e = row["peers"].get(peer)
            if e is None:
                cells.append("n/a")
            elif not e["ok"]:
                cells.append("FAILED")
            else:
                v = e[row["metric"]]
                cells.append(f"{v:,.0f}" if row["metric"] == "setups_per_s" else f"{v:.3f}")
        ratio = lambda k: f"{row[k]:.2f}" if k in row else "-"
        ours = row["peers"].get("dpdkswitch") or {}
        hit = f"{ours['hit_mpps']:.3f}" if "hit_mpps" in ours else "-"
        if ours.get("lost_share", 0) > 0.01:
            hit += " (!)"
            notes.append(f"(!) {name}: {100 * ours['lost_share']:.0f}% of the frames dpdkswitch received while "
                         f"measuring were misses it dropped (upcall ring full): its Mpps counts them, "
                         f"'hit Mpps' does not")
        rows.append((name, "setups/s" if row["metric"] == "setups_per_s" else "Mpps", *cells,
                     ratio("ours_over_ovs"), ratio("ours_over_testpmd"), hit))
    return "\n".join([_table(rows)] + notes)


def _matplotlib():
    """pyplot on the Agg backend, installed with pip if missing; None if it cannot be had."""
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is missing: installing it with pip for the plot ...", file=sys.stderr)
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--root-user-action=ignore",
                            "matplotlib"], capture_output=True, text=True)
        if r.returncode != 0:
            print("dpdkswitch bench: cannot install matplotlib (pip install matplotlib); no plot written: "
                  + (r.stderr.strip().splitlines() or ["?"])[-1], file=sys.stderr)
            return None
        importlib.invalidate_caches()
        try:
            import matplotlib
        except ImportError as e:
            print(f"dpdkswitch bench: matplotlib still cannot be imported ({e}); no plot written", file=sys.stderr)
            return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot(med: dict, path: Path) -> bool:
    plt = _matplotlib()
    if plt is None:
        return False
    groups = [("mpps", "Mpps (one PMD core)"), ("setups_per_s", "flow setups / s")]
    present = [(m, label) for m, label in groups if any(r["metric"] == m for r in med.values())]
    fig, axes = plt.subplots(1, len(present), figsize=(max(6, 2.2 * len(med)) + 2, 4.5), squeeze=False)
    colors = {"dpdkswitch": "#1f77b4", "ovs-dpdk": "#ff7f0e", "testpmd-io": "#7f7f7f"}
    for ax, (metric, label) in zip(axes[0], present):
        names = [n for n, r in med.items() if r["metric"] == metric]
        width = 0.8 / len(PEERS)
        for j, peer in enumerate(PEERS):
            vals = []
            for n in names:
                e = med[n]["peers"].get(peer)
                vals.append(e[metric] if e and e.get("ok") else 0)
            xs = [i + (j - (len(PEERS) - 1) / 2) * width for i in range(len(names))]
            bars = ax.bar(xs, vals, width, label=peer, color=colors[peer])
            for b, n in zip(bars, names):
                e = med[n]["peers"].get(peer)
                if e is not None and not e.get("ok"):
                    ax.annotate("failed", (b.get_x() + b.get_width() / 2, 0), ha="center", va="bottom",
                                rotation=90, fontsize=7)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=20, ha="right")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("dpdkswitch bench --compare (medians)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def compare(names: list[str], scen_file: Path, runs: int, seconds: float, out: Path | None, ctl_core: int,
            pmd_core: int, quiet: bool = False, stage_sample: int = STAGE_SAMPLE) -> int:
    scenarios = load_scenarios(scen_file)
    names = names or list(scenarios)
    unknown = [n for n in names if n not in scenarios]
    if unknown:
        raise BenchError(f"no scenario {', '.join(map(repr, unknown))} in {scen_file} "
                         f"(have: {', '.join(scenarios)})")
    tools = bench_dir(scen_file)
    out = out or Path("results") / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    log = (lambda s: None) if quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    kids = Children()
    all_runs: list[dict] = []
    meta = {"started": datetime.datetime.now().isoformat(timespec="seconds"), "scenarios_file": str(scen_file),
            "runs": runs, "seconds": seconds, "ctl_core": ctl_core, "pmd_core": pmd_core, "version": version(),
            "host": os.uname().nodename, "cpus": os.cpu_count()}

    def save() -> dict:
        med = medians(all_runs, scenarios)
        with open(out / "results.json", "w") as f:
            json.dump({"meta": meta, "medians": med, "runs": all_runs}, f, indent=1)
        return med

    interrupted = False
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        for name in names:
            measure = scenarios[name].get("measure", "forwarding")
            peers = [p for p in PEERS if not (p == "testpmd-io" and measure == "setup")]
            for i in range(runs):
                for peer in peers:
                    cmd = peer_command(peer, name, scen_file, tools, seconds, ctl_core, pmd_core, stage_sample)
                    log(f"[{name} run {i + 1}/{runs}] {peer}: {' '.join(cmd)}")
                    env = None
                    if peer == "testpmd-io":   # its pcap cache, keyed like the OVS peer's
                        env = dict(os.environ, WORKDIR=str(peer_workdir("testpmd", tools / "scenarios.yaml", tools)))
                    rc, so, se, wall = kids.run(cmd, CHILD_TIMEOUT_S, REPO_ROOT, env)
                    res = _last_json(so)
                    rec = {"scenario": name, "peer": peer, "run": i + 1, "wall_s": round(wall, 1), "rc": rc,
                           "ok": rc == 0 and res is not None, "result": res or {}}
                    if not rec["ok"]:
                        tail = (se.strip() or so.strip() or "no output").splitlines()[-5:]
                        rec["error"] = f"exit {rc}: " + " | ".join(tail)
                        log(f"    FAILED: {rec['error']}")
                    else:
                        m = metric_of(measure)
                        log(f"    {m} = {res.get(m)}")
                    all_runs.append(rec)
                    save()
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping the running child")
        kids.kill()
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    med = save()
    print(format_medians(med))
    print(f"results: {out / 'results.json'}")
    if med and plot(med, out / "results.png"):
        print(f"plot:    {out / 'results.png'}")
    return 130 if interrupted else 0


# ------------------------------------------------------------------ the command

def main(a) -> int:
    """``dpdkswitch bench``, from cli.cmd_bench with its parsed arguments."""
    from .config import ConfigError
    from .datapath import DatapathError
    from .netns import NetnsError
    try:
        scen_file = scenarios_path(a.scenarios)
        if getattr(a, "revalidation", None) or getattr(a, "memory", None):
            from . import flowtable_bench
            return flowtable_bench.main(a, scen_file, Progress(not a.json))
        if a.compare:
            return compare(a.scenario, scen_file, a.runs, a.seconds, Path(a.out) if a.out else None,
                           a.ctl_core, a.pmd_core, stage_sample=a.stage_sample)
        if len(a.scenario) != 1:
            raise BenchError("give one SCENARIO (or --compare [SCENARIO...])")
        progress = Progress(not a.json)
        result = run_one(a.scenario[0], scen_file, a.seconds, a.ctl_core, a.pmd_core, progress, a.stage_sample)
    except BenchError as e:
        print(f"dpdkswitch bench: {e}", file=sys.stderr)
        return 2
    except (DatapathError, ConfigError, NetnsError, OSError) as e:
        print(f"dpdkswitch bench: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndpdkswitch bench: interrupted", file=sys.stderr)
        return 130
    if a.json:
        print(json.dumps(result), flush=True)
    else:
        print(format_result(result))
        extra = [f"EAL: {result.get('eal')}"]
        if result.get("rules", 0) > 1:
            extra.append(f"rules: {result['rules']} installed in {result['rules_install_s']:.2f} s")
        extra.append(f"revalidator: {result['revalidator_passes']} passes, slowest {result['revalidator_max_s'] * 1000:.1f} ms;"
                     f" upcall handling busy {result['upcall_busy_s']:.2f} s")
        print("\n".join(extra))
    return 0
