"""A scenario of the shared benchmark on this switch, in this process: ``dpdkswitch bench SCENARIO``.

One run is one process: it builds the scenario's pcap with the shared ``genpcap.py`` (cached),
starts EAL, builds bridge ``br0`` with port 1 = ``net_pcap0,rx_pcap=PCAP,infinite_rx=1`` and
port 2 = ``net_null0,no-rx=1`` exactly as the peers do, installs the scenario's rules through
the OpenFlow pipeline *before* port 1 exists, then runs the control loop itself in the
foreground while one PMD thread forwards: ``dpdkswitch run``'s upcall wake-ups and revalidator
passes (udpif.py, the same functions), progress once a second.

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

Contract: the main thread, which is EAL's main lcore and the datapath's only writer; it costs
the run's seconds of the control core and of the PMD core.
"""
from __future__ import annotations

import gc
import os
import select
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from .. import lacp, udpif
from ..app import FreezeSurvivors
from ..config import loads
from ..datapath.abi import STAGES
from ..metrics import Metrics
from ..sflow import Sflow
from ..ofproto.flowstr import FlowSpec, parse_flow
from ..switch import Bridge, Switch
from .console import Progress, interruptible, table, version
from .scenarios import BenchError, bench_dir, load_scenarios, pcap_for, rules_for

WARMUP_S = 3.0

# The keys every forwarding result carries (the peers' vocabulary), and setup results.
FORWARDING_KEYS = ("mpps", "cycles_per_packet", "emc_hits", "megaflow_hits", "subtable_lookups_per_hit",
                   "miss_ok", "miss_failed", "packets")
SETUP_KEYS = ("setups_per_s", "miss_ok", "miss_failed", "flows_at_end")
COMMON_KEYS = ("scenario", "seconds", "peer", "version")

COUNTERS = ("rx_packets", "tx_packets", "tx_dropped", "busy_cycles", "idle_cycles", "iterations", "emc_hits",
            "megaflow_hits", "subtable_lookups", "misses", "lost", "dups", "action_drops", "simple_hits",
            "recirculations", "one_pass", "bucket_pass", "sampled_iterations", "sampled_packets", "sampled_cycles")
STAGE_SAMPLE = 64          # time the stages of every 64th PMD iteration (--stage-sample)


def memory_mb_for(n_frames: int) -> int:
    """EAL memory a run needs: net_pcap with infinite_rx holds the pcap's N_FRAMES in mbufs
    (the datapath's pool doubles until a quarter stays free; 3 KB an mbuf with its headers), plus the rest
    (flow table, rings, heap).  Stated, so that ``hugepages: auto`` takes hugepages only when
    that much is free on a machine others share (else --no-huge with this much memory)."""
    n = 16384
    while n * 3 // 4 < n_frames + 8192:
        n *= 2
    return 512 + n * 3 // 1024


def bench_config_text(pcap: Path, ctl_core: int, pmd_core: int, output: dict | None = None,
                      n_frames: int = 0, sflow: tuple[int, int] | None = None) -> str:
    """OUTPUT (a scenario's ``output``): port 2 is a bond of OUTPUT["members"] net_null members
    (OpenFlow ports 2..N+1, as the peers number them), of OUTPUT["bond_mode"]; balance-tcp runs
    LACP, its partner played by the bench (``ScenarioRun.play_partner``).  N_FRAMES: the pcap's
    frames (``memory_mb_for``).  SFLOW (sampling N, collector's UDP port on 127.0.0.1): br0 runs an
    sFlow agent sampling 1-in-N."""
    if output:
        n, mode = int(output.get("members", 2)), output.get("bond_mode", "balance-slb")
        members = "".join(f'          m{i}: {{device: "net_null{i - 1},no-rx=1", ofport: {i + 1}}}\n'
                          for i in range(1, n + 1))
        port2 = (f"      bond0:\n        interfaces:\n{members}        bond_mode: {mode}\n"
                 f"        lacp: {'active' if mode == 'balance-tcp' else 'off'}\n")
    else:
        port2 = '      p2:\n        device: "net_null0,no-rx=1"\n        ofport: 2\n'
    sflow_text = (f'    sflow: {{targets: ["127.0.0.1:{sflow[1]}"], sampling: {sflow[0]}, agent: 127.0.0.1}}\n'
                  if sflow else "")
    return f"""\
dpdk:
  cores: [{ctl_core}, {pmd_core}]
  hugepages: auto
  memory_mb: {memory_mb_for(n_frames)}
bridges:
  br0:
    datapath:
      pmd_cores: [{pmd_core}]
{sflow_text}    ports:
{port2}      p1:
        device: "net_pcap0,rx_pcap={pcap},infinite_rx=1"
        ofport: 1
"""


# A Prometheus server's part for --scrape-ms: GET /metrics every MS until killed or LIMIT
# seconds; prints scrapes done, failed, and the seconds they took.
SCRAPER = r"""
import signal, sys, time, urllib.request
port, every, limit = int(sys.argv[1]), int(sys.argv[2]) / 1000, float(sys.argv[3])
done = failed = 0
spent = 0.0
def out(*_):
    print(done, failed, spent, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, out)
end = time.monotonic() + limit
nxt = time.monotonic()
while time.monotonic() < end:
    t0 = time.monotonic()
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        ok = b"dpdkswitch_pmd_rx_packets_total" in body
        done += ok
        failed += not ok
    except OSError:
        failed += 1
    spent += time.monotonic() - t0
    nxt += every
    time.sleep(max(0.0, nxt - time.monotonic()))
out()
"""
SCRAPER_LIMIT_S = 3600


class CallQueue:
    """What metrics.py asks of the control thread's event loop (``call_soon_threadsafe``), for
    the bench's select() loop: prometheus-client's thread queues a call and wakes the loop
    through a pipe; the loop runs it (``run``)."""

    def __init__(self):
        self.rfd, self.wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.fd = self.rfd
        self.calls: deque = deque()

    @property
    def pending(self) -> bool:
        return bool(self.calls)

    def call_soon_threadsafe(self, fn, *args) -> None:
        self.calls.append((fn, args))
        try:
            os.write(self.wfd, b"x")
        except BlockingIOError:
            pass

    def is_closed(self) -> bool:
        return False

    def run(self) -> None:
        try:
            os.read(self.rfd, 4096)
        except BlockingIOError:
            pass
        while self.calls:
            fn, args = self.calls.popleft()
            fn(*args)


class ScenarioRun:
    """One scenario on one switch in this process: set-up, the control loop, the figures."""

    def __init__(self, name: str, sc: dict, pcap: Path, n_frames: int, ctl_core: int = 0, pmd_core: int = 1,
                 progress: Progress | None = None, stage_sample: int = STAGE_SAMPLE, sflow: int = 0,
                 scrape_ms: int = 0):
        self.name, self.sc, self.pcap, self.n_frames = name, sc, pcap, n_frames
        self.sflow_n, self.scrape_ms = sflow, scrape_ms
        self.sflow: Sflow | None = None
        self.collector: socket.socket | None = None
        self.metrics: Metrics | None = None
        self.calls = CallQueue()
        self.scraper: subprocess.Popen | None = None
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
        self.upcall_cpu_s = 0.0                  # of it, the control thread's CPU time (the rest: others ran)
        self._last_install_t: float | None = None
        self.next_pass: float | None = None      # the control loop's timers, kept from warm-up to measuring
        self.mac_pass_at: float | None = None
        self._miss_seen = (0, 0.0)               # (misses + lost, when that last changed)
        self.member_tx_at_end: dict[str, int] = {}

    # -- set-up
    def start(self) -> None:
        sflow = None
        if self.sflow_n:
            # The collector: a socket nobody reads (the kernel drops what overflows it), so the
            # agent's sends succeed and the collector's cost is not the switch's.
            self.collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.collector.bind(("127.0.0.1", 0))
            sflow = (self.sflow_n, self.collector.getsockname()[1])
        config = loads(bench_config_text(self.pcap, self.ctl_core, self.pmd_core, self.sc.get("output"),
                                         self.n_frames, sflow),
                       "<bench>")
        bc = config.bridges["br0"]
        self.switch = Switch(config)
        self.switch.start_eal()
        self.info["eal"] = self.switch.eal_note
        br = self.br = Bridge.create(bc, self.switch.netns)   # pools sized for the pcap by the port
        self.switch.bridges["br0"] = br
        if self.sflow_n:
            self.sflow = Sflow(br)
        if self.scrape_ms:
            self.metrics = Metrics(self.switch, "127.0.0.1:0")
            self.metrics.start(self.calls)      # scrapes ask this loop for a snapshot, as in `run`
        br.pipeline.delete(FlowSpec())           # the bridge's default rule: the scenario brings its own
        for pc in [p for p in bc.ports.values() if p.name != "p1"]:     # p2, or the bond's members
            br.add_port(pc)
        self.play_partner()
        rules = rules_for(self.sc)
        t0 = time.perf_counter()
        specs = [parse_flow(r) for r in rules]
        t1 = time.perf_counter()
        for s in specs:
            br.pipeline.add(s)
        t2 = time.perf_counter()
        br.revalidator.run()
        gc.freeze()                              # as `dpdkswitch run` does after start-up (app.py),
        self.survivors = FreezeSurvivors().install()   # and after each full collection
        br.dp.set_stage_sampling(self.stage_sample)
        self.info.update(rules=len(rules), rules_parse_s=round(t1 - t0, 3), rules_add_s=round(t2 - t1, 3),
                         rules_install_s=round(t2 - t0, 3))
        if len(rules) > 1000:
            self.progress.note(f"{self.name}: {len(rules)} rules installed in {t2 - t0:.2f} s "
                               f"(parse {t1 - t0:.2f} s, pipeline {t2 - t1:.2f} s)")
        br.start()                               # the PMD thread
        br.add_port(bc.ports["p1"])              # traffic starts now
        if self.metrics is not None:
            self.scraper = subprocess.Popen([sys.executable, "-c", SCRAPER, str(self.metrics.bound_port),
                                             str(self.scrape_ms), str(SCRAPER_LIMIT_S)],
                                            stdout=subprocess.PIPE, text=True)
        # (once the port is up: net_pcap reads the whole pcap into mbufs first, seconds for
        # 100,000 frames on a loaded machine, which must not eat setup's measuring window)
        self.t_traffic = time.monotonic()

    def play_partner(self) -> None:
        """A bond's LACP partner, played by the bench (null members hear nothing): a LACPDU on
        each member from a partner in sync, then the protocols' timers run (as ``dpdkswitch run``
        runs them); once at set-up and every second."""
        br = self.br
        if br.lacp is not None:
            now = br.dp.now_ns / 1e9
            for bond in br.lacp.bonds.values():
                for ofport, m in bond.members.items():
                    partner = lacp.Info(65534, bytes.fromhex("020000000099"), 7, 65535, ofport,
                                        lacp.ACT | lacp.AGG | lacp.SYNC | lacp.COL | lacp.DIST)
                    frame = lacp.LACP_DST + bytes(6) + b"\x88\x09" + lacp.compose_pdu(partner, bond.actor(m))
                    bond.receive(ofport, frame, now)
        if br.bonds:
            br.run_protocols()

    def member_tx(self) -> dict[str, int]:
        """Frames out of each bond member (both must carry traffic)."""
        return {p.name: int(self.br.port_stats(p)["tx_packets"]) for p in self.br.ports.values()
                if p.config.bond is not None}

    def stop_export(self) -> dict:
        """Stop the scraper and the exporters; what they did."""
        out: dict = {}
        if self.scraper is not None:
            self.scraper.terminate()
            text, _ = self.scraper.communicate(timeout=10)
            self.scraper = None
            done, failed, seconds = (text.split() + ["0", "0", "0"])[:3]
            out.update(scrapes=int(done), scrape_failures=int(failed),
                       scrape_mean_ms=round(1000 * float(seconds) / max(int(done), 1), 2))
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None
        if self.sflow is not None:
            self.sflow.close()
            out.update(sflow_flow_samples=self.sflow.flow_samples, sflow_datagrams=self.sflow.datagrams,
                       sflow_send_errors=self.sflow.send_errors)
            self.sflow = None
        if self.collector is not None:
            self.collector.close()
            self.collector = None
        return out

    def stop(self) -> None:
        self.stop_export()
        if getattr(self, "survivors", None) is not None:
            self.survivors.remove()
            self.survivors = None
        if self.switch is not None:
            self.switch.stop()
            self.switch = None
            self.br = None

    # -- counters
    def snapshot(self) -> tuple[float, dict[str, int]]:
        st = self.br.dp.pmd_stats().copy()
        t = time.monotonic()
        c = {k: int(st[k].sum()) for k in COUNTERS}
        c.update(zip(("stage_" + s for s in STAGES), (int(v) for v in st["stage_cycles"].sum(axis=0))))
        return t, c

    # -- the control loop
    def loop(self, seconds: float, tick=None) -> None:
        """Run the control thread's duties for SECONDS, as ``dpdkswitch run`` does them
        (udpif's upcall wake-up and its passes: periodic, and after a MAC change), and TICK()
        once a second.  Its clock is a select() on the upcall eventfd, not asyncio; an upcall
        wake-up yields after udpif.UPCALL_BUDGET_S as in ``run``, so that the measuring window
        and the ticks hold through a miss storm (the periodic pass runs whole here)."""
        backer = self.br.backer
        fd = backer.dp.upcall_fd()
        now = time.monotonic()
        deadline = now + seconds
        next_tick = now + 1.0
        if self.next_pass is None:
            self.next_pass = now + udpif.REVALIDATE_S
        again = True                             # whatever waits already
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            if again:
                again = self._upcall_wakeup(backer)
            now = time.monotonic()
            if self.mac_pass_at is not None and now >= self.mac_pass_at:
                self.mac_pass_at = None
                self._count_pass(udpif.mac_change_pass(backer))
            if now >= self.next_pass:
                wait = udpif.periodic_pass(self.switch.backers())
                self._count_pass(backer.revalidator.last)
                self.next_pass = time.monotonic() + wait
            if now >= next_tick:
                if tick:
                    tick()
                next_tick = max(next_tick + 1.0, now + 0.5)   # no burst of ticks after a long upcall batch
            if self.calls.pending:
                self.calls.run()
            if not again:
                due = min(self.next_pass, next_tick, deadline, self.mac_pass_at or deadline)
                r, _, _ = select.select([fd, self.calls.fd], [], [], max(0.0, due - time.monotonic()))
                again = fd in r

    def _upcall_wakeup(self, backer) -> bool:
        """One upcall wake-up, its cost and its installs counted; True to go again at once."""
        before = backer.upcalls.stats.installed
        t0, c0 = time.monotonic(), time.thread_time()
        w = udpif.upcall_wakeup(backer)
        t1 = time.monotonic()
        if w.handled:
            self.upcall_busy_s += t1 - t0
            self.upcall_cpu_s += time.thread_time() - c0
            self.upcall_batches += w.batches
        if backer.upcalls.stats.installed != before:
            self._last_install_t = t1
        if w.mac_pass_in is not None:
            self.mac_pass_at = t1 + w.mac_pass_in
        return w.again

    def _count_pass(self, rep) -> None:
        self.reval_passes += 1
        self.reval_max_s = max(self.reval_max_s, rep.seconds)

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
            self.play_partner()
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
        pmd_thread = f"rte-worker-{self.pmd_core}"       # DPDK's name of the PMD's lcore thread
        t0, c0 = self.snapshot()
        p0 = thread_cpu_s(pmd_thread)
        self.loop(seconds, self._rate_ticker("measuring", t0 + seconds))
        t1, c1 = self.snapshot()
        p1 = thread_cpu_s(pmd_thread)
        self.progress.done()
        pmd_cpu = p1 - p0 if p0 is not None and p1 is not None else None
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
            "recirculations": d["recirculations"],
            "one_pass": d["one_pass"],            # of those, second passes run at once (pmd.c's one_pass)
            "bucket_pass": d["bucket_pass"],      # of those, from the recirculation buckets (flow.h)
            "busy_pct": round(100.0 * d["busy_cycles"] / cycles, 2) if cycles else 0.0,
            "measured_s": round(dt, 3),
            # the PMD thread's CPU seconds in the window, and the rate over them: what the PMD
            # forwards per second it runs, whatever other threads took of its core meanwhile
            "pmd_cpu_s": round(pmd_cpu, 3) if pmd_cpu is not None else None,
            "mpps_on_cpu": round(rx / pmd_cpu / 1e6, 3) if pmd_cpu else None,
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
            "c_setups": stats.c_setups,            # misses set up in C (table 0's kept rules)
            "c_table_builds": self.br.upcalls.kept_table.builds,
            "flow_limit_hits": stats.flow_limit_hits,
            "put_errors": stats.put_errors,
            "packets": c1["rx_packets"],
            "measured_s": round(t1 - t0, 3),
        }


def thread_cpu_s(name: str) -> float | None:
    """The CPU time of this process's thread NAME (its scheduler's run time, in seconds), None
    if there is no such thread.  The PMD's: what it ran, whatever else shared its core."""
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                if f.read().strip() != name:
                    continue
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                return int(f.read().split()[0]) / 1e9
        except OSError:
            continue
    return None


def stage_figures(d: dict[str, int], every: int) -> dict:
    """Cycles per frame by stage over the sampled iterations of D (counter deltas), the loop's own
    as "other"; and the sampled iterations' cycles per frame, to hold against the whole run's."""
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
            progress: Progress, stage_sample: int = STAGE_SAMPLE, sflow: int = 0, scrape_ms: int = 0) -> dict:
    """One scenario, one run, in this process (EAL starts here)."""
    scenarios = load_scenarios(scen_file)
    if name not in scenarios:
        raise BenchError(f"no scenario {name!r} in {scen_file} (have: {', '.join(scenarios)})")
    sc = scenarios[name]
    pcap, n_frames = pcap_for(name, sc, bench_dir(scen_file))
    b = ScenarioRun(name, sc, pcap, n_frames, ctl_core, pmd_core, progress, stage_sample, sflow, scrape_ms)
    # Ctrl-C and SIGTERM stop the run cleanly: the switch is stopped in the finally below.
    with interruptible():
        try:
            b.start()
            figures = b.run(seconds)
            if b.sc.get("output"):
                b.member_tx_at_end = b.member_tx()
            exported = b.stop_export()
            if sflow:
                rx = int(b.br.dp.pmd_stats()["rx_packets"].sum())
                exported.update(sflow_sampling=sflow, sflow_upcalls=b.br.upcalls.stats.sflow_samples,
                                sflow_expected=rx // sflow)
            if scrape_ms:
                exported.update(scrape_ms=scrape_ms)
            figures.update(exported)
        finally:
            progress.done()
            b.stop()
    result = {"peer": "dpdkswitch", "version": version(), "scenario": name, "seconds": seconds,
              "measure": sc.get("measure", "forwarding")}
    result.update(figures)
    result.update(b.info)
    if b.sc.get("output"):
        result["bond_member_tx"] = b.member_tx_at_end
    result.update(revalidator_passes=b.reval_passes, revalidator_max_s=round(b.reval_max_s, 4),
                  upcall_busy_s=round(b.upcall_busy_s, 3), upcall_cpu_s=round(b.upcall_cpu_s, 3))
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
    out = table([head, row])
    per = r.get("stage_cycles_per_packet")
    if per:
        names = list(per)
        out += (f"\n\ncycles per frame by stage (every {r['stage_sample_every']}th PMD iteration timed: "
                f"{r['stage_sampled_iterations']:,} iterations, {r['stage_sampled_packets']:,} frames)\n")
        out += table([("stage", *names, "timed total", "all busy"),
                       ("cycles/frame", *(f"{per[n]:.1f}" for n in names),
                        f"{r['stage_sampled_cycles_per_packet']:.1f}", f"{r['busy_cycles_per_packet']:.1f}")])
    return out
