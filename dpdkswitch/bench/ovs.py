"""Open vSwitch 3.1 with its DPDK datapath (Debian's openvswitch-switch-dpdk), run privately:
the peer of ``dpdkswitch bench --flow-mods`` and the reference model of the tests
(tests/reference/ovs.py).  The one place that starts and stops it.

``Ovs`` is a context manager: a private ovsdb-server and ovs-vswitchd-dpdk in a run directory
of their own, one netdev bridge (``fail_mode=secure``, every OpenFlow version, an empty table,
its LOCAL port out of floods), DPDK with ``--no-pci --in-memory`` and a file prefix of its own
(so it never meets this process's EAL nor any other DPDK process), the vswitchd in a network
namespace of its own when we are root (the bridge's LOCAL port and the datapath's
``ovs-netdev`` port are kernel taps: there they cannot collide with another OVS's).  No PMD
thread runs until ``start_pmd()``: a port's first frames would otherwise race with ofproto
learning of the port.  Leaving the context deletes the ports (closing a net_pcap device flushes
its tx pcap), asks the daemon to exit and kills whatever is left: both daemons are this
process's children, and die with it (PR_SET_PDEATHSIG) if it is killed outright.

Memory: 2 MB hugepages when enough are free (reserved first, as root, as
shared/bench/ovs_dpdk_peer.py does; harmless when they are there already), else ``--no-huge``.
OVSREF_HUGEPAGES=on|off|auto forces the choice.

The shared ``ovs_dpdk_peer.py`` (``bench --compare``'s peer) starts Open vSwitch its own way:
it is the peer's published script, run as it is.

Contract: any one thread at a time (it runs child processes and waits for them; no EAL in this
process).  Cost: a start-up of one to a few seconds, OVS's DPDK memory (512 MB of hugepages
or 768 MB without), one core for the PMD thread once started.
"""
from __future__ import annotations

import ctypes
import glob
import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from ..config import parse_cpulist
from ..datapath import hugepages_free_mb

VSWITCHD = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"
SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
TOOLS = ("ovs-vsctl", "ovsdb-tool", "ovsdb-server", "ovs-ofctl", "ovs-appctl")
PROTOCOLS = "OpenFlow10,OpenFlow11,OpenFlow12,OpenFlow13,OpenFlow14,OpenFlow15"
PR_SET_PDEATHSIG = 1


def _die_with_owner() -> None:
    """In the daemon's child before exec: SIGTERM when the thread that started it dies, so a test
    process killed outright (a CI timeout, SIGKILL) does not leave an Open vSwitch holding its
    hugepages and cores for the next test."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
OFCTL_VERSION = "OpenFlow13"
_seq = itertools.count()


class OvsError(RuntimeError):
    pass


def missing() -> str | None:
    """Why Open vSwitch (DPDK build) cannot run here, or None when it can."""
    if not os.path.exists(VSWITCHD):
        return f"{VSWITCHD} is absent (apt-get install openvswitch-switch-dpdk; scripts/setup.sh test does it)"
    gone = [t for t in TOOLS if shutil.which(t) is None]
    if gone:
        return f"Open vSwitch tools not found: {', '.join(gone)} (apt-get install openvswitch-switch-dpdk)"
    if not os.path.exists(SCHEMA):
        return f"{SCHEMA} is absent (apt-get install openvswitch-common)"
    return None


def ensure_hugepages(pages: int = 1024) -> None:
    """Reserve 2 MB hugepages (root only; a no-op when there are enough)."""
    try:
        with open("/proc/sys/vm/nr_hugepages") as f:
            have = int(f.read())
        if have < pages and os.geteuid() == 0:
            with open("/proc/sys/vm/nr_hugepages", "w") as f:
                f.write(str(pages))
    except (OSError, ValueError):
        pass


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def _no_cpu() -> int:
    """A core number this machine does not have."""
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            return max(parse_cpulist(f.read())) + 1
    except (OSError, ValueError):
        return max(_cpus()) + 64


class Ovs:
    """ovsdb-server + ovs-vswitchd-dpdk + one netdev bridge, in WORKDIR/run."""

    def __init__(self, workdir: str | os.PathLike, bridge: str | None = None, hugepages: str | None = None,
                 timeout: float = 60.0):
        self.n = next(_seq)
        self.workdir = Path(workdir)
        self.bridge = bridge or "ref%d" % self.n
        self.hugepages = hugepages or os.environ.get("OVSREF_HUGEPAGES", "auto")
        self.timeout = timeout
        self.file_prefix = "ovsref-%d-%d" % (os.getpid(), self.n)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Unix socket paths (RUN/ovs-vswitchd-dpdk.PID.ctl) must stay under 108 bytes.
        if len(str(self.workdir)) > 50:
            run = Path(tempfile.mkdtemp(prefix="ovsref-"))
            self._own_run = True                       # removed on stop, its logs copied to WORKDIR
        else:
            run = Path(tempfile.mkdtemp(prefix="ovs-run", dir=self.workdir))
            self._own_run = False                      # kept with the test's other files
        self.run = run
        self.env = dict(os.environ, OVS_RUNDIR=str(run), OVS_LOGDIR=str(run), OVS_DBDIR=str(run),
                        OVS_SYSCONFDIR=str(run), OVS_PKGDATADIR="/usr/share/openvswitch")
        self.db = "unix:" + str(run / "db.sock")
        self.mgmt = "unix:" + str(run / (self.bridge + ".mgmt"))
        self.ports: dict[str, int] = {}              # name -> ofport
        self.procs: list[subprocess.Popen] = []
        self.vswitchd: subprocess.Popen | None = None
        self.memory_note = ""

    # -- commands
    def sh(self, *args, check: bool = True, timeout: float | None = None) -> str:
        """Run a command; fail at once when ovs-vswitchd dies meanwhile (DPDK refused to start,
        say), rather than when ovs-vsctl gives up waiting for it."""
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while True:
                try:
                    out, err = p.communicate(timeout=0.05)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if self.vswitchd is not None and self.vswitchd.poll() is not None:
                    raise OvsError(f"ovs-vswitchd exited ({self.vswitchd.returncode}) during: {' '.join(args)}\n"
                                   f"{self.log_tail()}")
                if time.monotonic() > deadline:
                    raise OvsError(f"timed out: {' '.join(args)}\n{self.log_tail()}")
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        if check and p.returncode:
            raise OvsError(f"{' '.join(args)}: exit {p.returncode}: {err.strip()}\n{self.log_tail()}")
        return out

    def vsctl(self, *args, wait: bool = True) -> str:
        return self.sh("ovs-vsctl", "--db=" + self.db, "--timeout=%d" % self.timeout,
                       *([] if wait else ["--no-wait"]), *args)

    def ofctl(self, *args, check: bool = True, protocol: str | None = None) -> str:
        return self.sh("ovs-ofctl", "-O", protocol or OFCTL_VERSION, *args, check=check)

    def appctl(self, *args, check: bool = True) -> str:
        ctl = glob.glob(str(self.run / ("ovs-vswitchd*.%d.ctl" % self.vswitchd.pid)))
        if not ctl:
            raise OvsError(f"no control socket of ovs-vswitchd in {self.run}")
        return self.sh("ovs-appctl", "-t", ctl[0], *args, check=check)

    def log_tail(self, n: int = 12) -> str:
        out = []
        for name in ("vswitchd.log", "vswitchd.stderr"):
            try:
                lines = (self.run / name).read_text(errors="replace").splitlines()
            except OSError:
                continue
            out.append(f"--- {self.run / name} (last {n} lines)\n" + "\n".join(lines[-n:]))
        return "\n".join(out)

    # -- life cycle
    def _dpdk_extra(self) -> str:
        extra = f"--no-pci --file-prefix={self.file_prefix} --log-level=lib.eal:notice"
        mode = self.hugepages
        if mode != "off":
            ensure_hugepages()
        free = hugepages_free_mb()
        use_huge = mode == "on" or (mode == "auto" and free >= 768)
        if use_huge:
            self.memory_note = f"hugepages ({free} MB free)"
            return extra + " --in-memory -m 512"
        self.memory_note = f"--no-huge ({free} MB of hugepages free)"
        # --no-huge implies --legacy-mem, which --in-memory (OVS adds it unless it sees
        # --legacy-mem) refuses; --no-shconf keeps it to itself instead.
        return extra + " --no-huge --legacy-mem --no-shconf -m 768"

    def start(self) -> "Ovs":
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        run = self.run
        self.sh("ovsdb-tool", "create", str(run / "conf.db"), SCHEMA)
        db_log = open(run / "db.stderr", "wb")
        self.procs.append(subprocess.Popen(
            ["ovsdb-server", str(run / "conf.db"), "--remote=p" + self.db, "--pidfile=" + str(run / "db.pid"),
             "--log-file=" + str(run / "db.log"), "-vconsole:off"],
            stdout=db_log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
            preexec_fn=_die_with_owner))
        db_log.close()
        deadline = time.monotonic() + self.timeout
        while not (run / "db.sock").exists():
            if self.procs[0].poll() is not None or time.monotonic() > deadline:
                raise OvsError(f"ovsdb-server did not start: {(run / 'db.stderr').read_text(errors='replace')}")
            time.sleep(0.02)
        cpus = _cpus()
        ctl_cpu = cpus[0]
        self.pmd_cpu = cpus[1] if len(cpus) > 1 else cpus[0]
        self.vsctl("init", wait=False)
        self.vsctl("set", "Open_vSwitch", ".", "other_config:dpdk-init=true",
                   "other_config:dpdk-extra=" + self._dpdk_extra(),
                   "other_config:dpdk-lcore-mask=0x%x" % (1 << ctl_cpu),
                   "other_config:pmd-cpu-mask=0x%x" % (1 << _no_cpu()),
                   "other_config:vlan-limit=2",           # two tags, as dpdkswitch's flow key has
                   wait=False)
        cmd = [VSWITCHD, self.db, "--pidfile=" + str(run / "vswitchd.pid"), "--log-file=" + str(run / "vswitchd.log"),
               "-vconsole:off", "-vfile:info"]
        if os.geteuid() == 0 and shutil.which("unshare"):
            cmd = ["unshare", "--net", "--"] + cmd       # its tap ports in a namespace of its own
        err = open(run / "vswitchd.stderr", "wb")
        self.vswitchd = subprocess.Popen(cmd, stdout=err, stderr=subprocess.STDOUT, env=self.env,
                                         start_new_session=True, preexec_fn=_die_with_owner)
        err.close()
        self.procs.append(self.vswitchd)
        self.vsctl("add-br", self.bridge, "--", "set", "bridge", self.bridge, "datapath_type=netdev",
                   "protocols=" + PROTOCOLS, "fail_mode=secure")
        if self.vswitchd.poll() is not None:
            raise OvsError(f"ovs-vswitchd exited with {self.vswitchd.returncode}\n{self.log_tail()}")
        self.ofctl("del-flows", self.mgmt)
        # The LOCAL port is a kernel tap: keep floods off it, dpdkswitch has no such port.
        self.sh("ovs-ofctl", "mod-port", self.mgmt, self.bridge, "no-flood")

    def stop(self) -> None:
        """Delete the ports (flushes the tx pcaps), then end both daemons; never raises."""
        if self.vswitchd is not None and self.vswitchd.poll() is None:
            for name in list(self.ports):
                try:
                    self.vsctl("del-port", self.bridge, name)
                except Exception:
                    pass
            self.ports.clear()
            try:
                self.appctl("exit", check=False)
            except Exception:
                pass
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    p.wait(timeout=5 if p is self.vswitchd else 0.01)
                except subprocess.TimeoutExpired:
                    pass
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs.clear()
        if self._own_run:
            logs = self.workdir / f"ovs-logs{self.n}"
            logs.mkdir(exist_ok=True)
            for f in self.run.glob("*.log"):
                shutil.copy(f, logs)
            shutil.rmtree(self.run, ignore_errors=True)

    def __enter__(self) -> "Ovs":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the bridge
    def add_port(self, name: str, ofport: int, devargs: str, port_settings: list[str] = ()) -> None:
        """PORT_SETTINGS: Port table column=value pairs (vlan_mode=trunk, tag=10, trunks=10,20)."""
        self.vsctl("add-port", self.bridge, name, "--", "set", "Interface", name, "type=dpdk",
                   "options:dpdk-devargs=" + devargs, "ofport_request=%d" % ofport,
                   *(["--", "set", "Port", name, *port_settings] if port_settings else []))
        self.ports[name] = ofport
        got = self.vsctl("get", "Interface", name, "ofport").strip()
        err = self.vsctl("get", "Interface", name, "error").strip()
        if got != str(ofport) or err not in ("[]", ""):
            raise OvsError(f"port {name} ({devargs}): ofport {got}, error {err}\n{self.log_tail()}")

    def start_pmd(self) -> None:
        """The PMD thread starts polling.  Until then pmd-cpu-mask names a core that does not
        exist, so there is no PMD thread and no rx queue is polled: a port's first frames
        would otherwise race with ofproto learning of the port, and be dropped as "miss with
        failed upcall"."""
        self.vsctl("set", "Open_vSwitch", ".", "other_config:pmd-cpu-mask=0x%x" % (1 << self.pmd_cpu))

    def del_port(self, name: str) -> None:
        self.vsctl("del-port", self.bridge, name)
        self.ports.pop(name, None)

    def _file(self, kind: str, lines: list[str]) -> str:
        path = self.workdir / f"{kind}.{self.n}.txt"
        path.write_text("".join(line + "\n" for line in lines))
        return str(path)

    def add_groups(self, groups: list[str]) -> None:
        if groups:
            self.ofctl("add-groups", self.mgmt, self._file("groups", groups))

    def add_flows(self, flows: list[str], protocol: str | None = None) -> None:
        """PROTOCOL: the OpenFlow version ovs-ofctl encodes them in; it matters (mod_vlan_vid
        becomes push_vlan + set_field in OpenFlow 1.3 when the match does not say there is
        a tag, while OpenFlow 1.0's pushes a tag only when the packet has none)."""
        if flows:
            self.ofctl("add-flows", self.mgmt, self._file("flows", flows), protocol=protocol)

    def port_stats(self) -> dict[str, dict[str, int]]:
        """{port: {"rx_packets", "tx_packets", "rx_dropped", "tx_dropped"}}, port as ovs-ofctl names it."""
        out = self.ofctl("dump-ports", self.mgmt)
        stats: dict[str, dict[str, int]] = {}
        num = lambda s: 0 if s == "?" else int(s)          # noqa: E731
        for m in re.finditer(r"port\s+\"?([^:\"]+)\"?:\s*rx pkts=(\d+|\?), bytes=[^,]+, drop=(\d+|\?).*?\n"
                             r"\s*tx pkts=(\d+|\?), bytes=[^,]+, drop=(\d+|\?)", out):
            stats[m.group(1).strip()] = {"rx_packets": num(m.group(2)), "rx_dropped": num(m.group(3)),
                                         "tx_packets": num(m.group(4)), "tx_dropped": num(m.group(5))}
        return stats

    def wait_rx(self, ofport: int, n: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        got = -1
        while time.monotonic() < deadline:
            got = self.port_stats().get(str(ofport), {}).get("rx_packets", -1)
            if got >= n:
                return
            if self.vswitchd.poll() is not None:
                raise OvsError(f"ovs-vswitchd died\n{self.log_tail()}")
            time.sleep(0.05)
        raise OvsError(f"port {ofport} received {got} of {n} frames in {timeout} s\n{self.log_tail()}")


    def wait_quiet(self, period: float = 0.1, timeout: float = 10.0) -> None:
        """Until the counters of every port stay the same for PERIOD seconds."""
        deadline = time.monotonic() + timeout
        last = self.port_stats()
        while time.monotonic() < deadline:
            time.sleep(period)
            now = self.port_stats()
            if now == last:
                return
            last = now
