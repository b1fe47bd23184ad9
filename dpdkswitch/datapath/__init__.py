"""The datapath: the only package that touches cffi.

Wraps ``csrc/include/dpdkswitch.h``: EAL start-up, datapaths, ports, test ports, the static
forwarding map, PMD threads and their counters (numpy views of C memory, see ``abi``).

Contract: every method is called from the control thread (the thread that started EAL,
Python's main thread), one call at a time; the C side assumes a single writer.  Calls release
the GIL.  Port and forwarding changes cost one RCU grace period (microseconds); reading
counters costs a memory read.  Errors raise ``DatapathError`` with the C side's one-line
reason.
"""
from __future__ import annotations

import array

import errno
import itertools
import logging
import os
import re
import struct
from dataclasses import dataclass

import numpy as np

from .. import log
from ..flowkey import KEY_SIZE
from . import _dpdkswitch, odp
from ._dpdkswitch import ffi, lib
from .abi import FLOW_DELTA_DTYPE, PMD_STATS_DTYPE, PORT_STATS_DTYPE

MAX_PORTS = lib.DPS_MAX_PORTS
MAX_PMDS = lib.DPS_MAX_PMDS
MANUAL_PMD = lib.DPS_MAX_PMDS  # counters slot of deterministic polling
UPCALL_BATCH = 256             # upcalls one Datapath.upcalls() call takes at most (dps_upcall_recv's)
SFLOW_TARGETS = lib.DPS_SFLOW_TARGETS    # collectors of one sFlow agent, at most
# struct dps_upcall as one unpack reads it: packet, data (addresses), len, type, cookie, key
_UPCALL = struct.Struct(f"=QQIIQ{KEY_SIZE}s")
assert _UPCALL.size == ffi.sizeof("struct dps_upcall") and \
    [ffi.offsetof("struct dps_upcall", f) for f in ("len", "cookie", "key")] == [16, 24, 32]

# struct dps_setup_row as one unpack reads it: ufid (lo, hi), rule, result, len, in_port, key, masked, mask
SETUP_ROW = struct.Struct(f"=QQIiII{KEY_SIZE}s{KEY_SIZE}s{KEY_SIZE}s")
assert SETUP_ROW.size == ffi.sizeof("struct dps_setup_row") and \
    [ffi.offsetof("struct dps_setup_row", f) for f in ("rule", "key", "mask")] == [16, 32, 32 + 2 * KEY_SIZE]


def megaflow_ufid(masked: bytes, mask: bytes) -> int:
    """The UFID that names megaflow (MASKED, a key already masked, + MASK), as C's setups name
    theirs (``dps_megaflow_ufid``): the same megaflow, the same UFID."""
    out = _UFID_OUT
    lib.dps_megaflow_ufid(ffi.from_buffer("struct dps_flow_key *", masked),
                          ffi.from_buffer("struct dps_flow_key *", mask), out)
    return out.lo | out.hi << 64


_UFID_OUT = ffi.new("struct dps_ufid *")


def _u8(b: bytes):
    return ffi.from_buffer("uint8_t[]", b)


class OfTable:
    """Table 0's rules with kept translations, in C (``dps_oftable_*``; ofproto/ctable.py
    compiles it).  Control thread only; freed with the object (or ``close``)."""

    def __init__(self, in_port: bytes, recirc_frag: bytes, ports: bytes, frag: bytes, eth_ofs: int):
        h = lib.dps_oftable_new(_u8(in_port), _u8(recirc_frag), _u8(ports), _u8(frag), eth_ofs)
        if h == ffi.NULL:
            raise DatapathError("no memory for a kept-rule table")
        self.h = ffi.gc(h, lib.dps_oftable_free)

    def close(self) -> None:
        if self.h is not None:
            ffi.release(self.h)
            self.h = None

    def port(self, dp_port: int, ofport: int) -> None:
        _check(lib.dps_oftable_port(self.h, dp_port, ofport), "kept-rule table port")

    def trie(self, i: int, ofs: int, length: int, eth_type: int) -> None:
        _check(lib.dps_oftable_trie(self.h, i, ofs, length, eth_type), "kept-rule table trie")

    def prefixes(self, i: int, plen: int, prefixes: list[bytes]) -> None:
        if prefixes:
            _check(lib.dps_oftable_prefixes(self.h, i, plen, len(prefixes), _u8(b"".join(prefixes))),
                   "kept-rule table prefixes")

    def subtable(self, mask: bytes, stages: list[bytes], max_priority: int, prefixes: list[tuple[int, int]],
                 ports: bool) -> int:
        tries = bytes(t for t, _ in prefixes) or b"\0"
        plens = bytes(p for _, p in prefixes) or b"\0"
        return _check(lib.dps_oftable_subtable(self.h, _u8(mask), _u8(b"".join(stages)), len(stages), max_priority,
                                               _u8(tries), _u8(plens), len(prefixes), int(ports)), "kept-rule subtable")

    def rules(self, st: int, keys: list[bytes], priorities: list[int], ids: list[int], shapes: list[int]) -> None:
        n = len(keys)
        if not n:
            return
        _check(lib.dps_oftable_rules(self.h, st, n, _u8(b"".join(keys)), ffi.from_buffer("int32_t[]", array.array("i", priorities)),
                                     ffi.from_buffer("uint32_t[]", array.array("I", ids)),
                                     ffi.from_buffer("uint32_t[]", array.array("I", shapes))), "kept rules")

    def kept(self, shape: int, dp_port: int, actions: bytes) -> None:
        _check(lib.dps_oftable_kept(self.h, shape, dp_port, _u8(actions or b"\0"), len(actions)), "kept actions")

    def lookup(self, key: bytes) -> tuple[int, int, bytes]:
        """(1, rule id, wildcards) when a rule matched KEY, (0, 0, wildcards) when none did, (-1, 0,
        b"") when the table declines; wildcards as key bytes."""
        rule = ffi.new("uint32_t *")
        wc = ffi.new("struct dps_flow_key *")
        ret = lib.dps_oftable_lookup(self.h, ffi.from_buffer("struct dps_flow_key *", key), rule, wc)
        if ret < 0:
            return -1, 0, b""
        return ret, int(rule[0]), bytes(ffi.buffer(wc))


__all__ = ["DatapathError", "Eal", "Datapath", "Upcall", "OfTable", "megaflow_ufid", "SETUP_ROW", "parse", "MAX_PORTS", "MAX_PMDS", "MANUAL_PMD",
           "extension_path"]


class DatapathError(RuntimeError):
    """A datapath call failed; the message is the C side's reason."""

    def __init__(self, msg: str, errno: int = 0):
        super().__init__(msg)
        self.errno = errno


def _check(ret: int, what: str = "") -> int:
    if ret < 0:
        Eal.drain_log()                 # the driver's reason, if it gave one, comes first
        msg = ffi.string(lib.dps_last_error()).decode(errors="replace")
        raise DatapathError(f"{what}: {msg}" if what and msg else (msg or what or "datapath error"), -ret)
    return ret


def extension_path() -> str:
    """The compiled extension, whose DWARF describes the C structures Python views."""
    return _dpdkswitch.__file__


def dpdk_version() -> str:
    """The DPDK version the datapath is built with ("DPDK 22.11.0")."""
    return ffi.string(lib.dps_dpdk_version()).decode()


def hugepages_meminfo() -> tuple[int, int, int]:
    """The kernel's default-size hugepage pool (vm.nr_hugepages): page size in kB, pages
    reserved, pages free; zeros if /proc/meminfo cannot be read."""
    keys = {"Hugepagesize:": 0, "HugePages_Total:": 0, "HugePages_Free:": 0}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(" ")
                if key in keys:
                    keys[key] = int(rest.split()[0])
    except OSError:
        pass
    return keys["Hugepagesize:"], keys["HugePages_Total:"], keys["HugePages_Free:"]


def hugepages_free_mb() -> int:
    """2 MB (default-size) hugepages free on this machine, in MB."""
    size_kb, _, free = hugepages_meminfo()
    return free * size_kb // 1024


# DPDK's messages that read like failures and are not, on the machines the switch runs on.
# Logged at debug (seen with ``dpdk: {log_level: debug}``) whatever level DPDK gave them; every
# other line keeps its level.  Each pattern is searched in the line; the second item says why
# the message is harmless.
_MULTIQ = ("net_tap: this kernel has no multiq qdisc (sch_multiq), which the tap driver wants only "
           "for rte_flow rules on the tap; the switch uses none, and the tap forwards without it")
HARMLESS = tuple((re.compile(pattern), why) for pattern, why in (
    (r"No free \d+ kB hugepages reported on node",
     "EAL: every hugepage size the kernel offers is listed; a size with none reserved (1 GB pages, "
     "usually) is skipped, and the start-up banner says which memory the switch runs on"),
    (r"TELEMETRY: No legacy callbacks, legacy socket not created",
     "telemetry: the legacy socket serves pre-20.05 clients through callbacks nothing here registers; "
     "the telemetry socket itself (dpdk-telemetry.py) runs"),
    (r"tap_nl_dump_ext_ack\(\): Specified qdisc kind is unknown", _MULTIQ),
    (r"Could not add multiq qdisc", _MULTIQ),
    (r"failed to create multiq qdisc", _MULTIQ),
    (r"Disabling rte flow support", _MULTIQ),
    (r"Failed to send (start|stop) req to secondary",
     "net_tap tells secondary processes that its queues start or stop; EAL runs --in-memory or "
     "--no-shconf here, so there can be none, and DPDK's multi-process channel refuses the request"),
))


def _harmless(text: str) -> bool:
    return any(pattern.search(text) for pattern, _ in HARMLESS)


class Eal:
    """DPDK's Environment Abstraction Layer: process-global, started once.

    DPDK's own log goes to a buffer in C from the moment `start` is called (whatever thread
    logs, it never waits on Python); `drain_log` moves it to the "dpdk" logger (log.py), and
    runs after every call of this package that fails, after EAL's start and port changes, and
    whenever the control thread's loop calls it."""

    args: list[str] | None = None
    log_dropped = 0                     # DPDK log lines lost to a full buffer, in all

    @classmethod
    def drain_log(cls) -> int:
        """DPDK's buffered lines to the "dpdk" logger, the known-harmless ones (`HARMLESS`) at
        debug; returns how many.  Control thread."""
        out = ffi.new("struct dps_log_line[]", 64)
        dropped = ffi.new("uint64_t *")
        total = 0
        while True:
            n = lib.dps_log_take(out, 64, dropped)
            if dropped[0]:
                cls.log_dropped += dropped[0]
                log.dpdk_line(logging.WARNING, f"{dropped[0]} lines of DPDK's log lost: they came faster "
                                                "than the control thread took them")
            for i in range(n):
                text = ffi.string(out[i].text).decode(errors="replace")
                log.dpdk_line(logging.DEBUG if _harmless(text) else log.from_dpdk(out[i].level), text)
            total += n
            if n < 64:
                return total

    @staticmethod
    def log_level_of(args: list[str]) -> str | None:
        """The level EAL's arguments give every log type (``--log-level *:LEVEL``), if any."""
        level = None
        for i, a in enumerate(args):
            value = a.partition("=")[2] if a.startswith("--log-level=") else \
                (args[i + 1] if a == "--log-level" and i + 1 < len(args) else "")
            if value.startswith("*:"):
                level = value[2:]
        return level

    @staticmethod
    def running() -> bool:
        return bool(lib.dps_eal_initialized())

    @classmethod
    def build_args(cls, cores: list[int], hugepages: str = "auto", memory_mb: int | None = None,
                   extra_args: list[str] | None = None, file_prefix: str | None = None,
                   pci: bool = False, log_level: str = log.DPDK_LEVEL_DEFAULT) -> tuple[list[str], str]:
        """EAL arguments for a config's ``dpdk:`` section, and a note on the memory choice
        (where the memory comes from, for the start-up banner).

        hugepages: 'on' needs free hugepages, 'off' runs without, 'auto' takes them when
        enough are free.  Each process gets its own file prefix, so several switches and test
        sessions run side by side.  log_level (a name of log.DPDK_LEVELS) is DPDK's global level
        and every log type's, those its drivers register later included.
        """
        mem = memory_mb or 1024
        need = memory_mb or 256               # on hugepages EAL grows its memory on demand
        free = hugepages_free_mb()
        size_kb, total, _ = hugepages_meminfo()
        if hugepages == "on" and free < need:
            raise DatapathError(f"hugepages: on, but only {free} MB of hugepages are free, {need} MB needed "
                                f"(reserve them: echo N > /proc/sys/vm/nr_hugepages)")
        use_huge = hugepages == "on" or (hugepages == "auto" and free >= need)
        prefix = file_prefix or f"dpdkswitch-{os.getpid()}"
        args = ["dpdkswitch", "-l", ",".join(map(str, cores)), "--main-lcore", str(cores[0]),
                "--file-prefix", prefix, "--log-level", log_level, "--log-level", f"*:{log_level}"]
        if use_huge:
            args += ["--in-memory"]
            if memory_mb:
                args += ["-m", str(memory_mb)]
            note = (f"memory: {size_kb // 1024 or size_kb} {'MB' if size_kb >= 1024 else 'kB'} hugepages from "
                    f"the kernel's pool (vm.nr_hugepages), {free} MB free of {total * size_kb // 1024} MB; "
                    f"EAL maps them as it needs them (--in-memory)")
        else:
            args += ["--no-huge", "-m", str(mem), "--no-shconf"]
            note = (f"memory: no hugepages ({free} MB free, {need} MB wanted): --no-huge, {mem} MB of "
                    f"ordinary memory" if hugepages == "auto" else
                    f"memory: hugepages: off, so --no-huge, {mem} MB of ordinary memory")
        if not pci:
            args += ["--no-pci"]
        args += list(extra_args or [])
        return args, note

    @classmethod
    def start(cls, args: list[str]) -> None:
        if cls.running():
            if cls.args != args:
                raise DatapathError("EAL already runs in this process with other arguments "
                                    f"({cls.args}); it starts once per process")
            return
        _check(lib.dps_log_capture(), "DPDK's log")
        level = cls.log_level_of(args)
        if level in log.DPDK_LEVELS:
            log.set_dpdk_level(level)
        argv = [ffi.new("char[]", a.encode()) for a in args]
        _check(lib.dps_eal_init(len(argv), ffi.new("char *[]", argv)), "EAL")
        cls.args = list(args)
        cls.drain_log()

    @classmethod
    def file_prefix(cls) -> str | None:
        """The --file-prefix EAL runs with (its runtime directory's name), once started."""
        args = cls.args or []
        return args[args.index("--file-prefix") + 1] if "--file-prefix" in args else None

    @staticmethod
    def lcores() -> list[int]:
        out = ffi.new("unsigned[]", 256)
        return list(out[0:lib.dps_eal_lcores(out, 256)])

    @staticmethod
    def has_hugepages() -> bool:
        return bool(lib.dps_eal_has_hugepages())

    @staticmethod
    def tsc_hz() -> int:
        return int(lib.dps_tsc_hz())


@dataclass
class PortInfo:
    dp_port: int
    name: str
    driver: str
    eth_port: int
    socket: int
    n_rxq: int
    n_txq: int
    n_rxd: int
    n_txd: int
    mtu: int
    txq_shared: bool
    link_up: bool
    link_speed: int
    mac: str


PORT_STATS_FIELDS = PORT_STATS_DTYPE.names


class Datapath:
    """One datapath: its ports, its PMD threads, its mempools."""

    def __init__(self, name: str, n_mbufs: int = 0, manual_clock: bool = False, flow_limit: int = 0,
                 upcall_ring: int = 0, emc_insert_inv_prob: int = 100):
        if not Eal.running():
            raise DatapathError("start EAL (Eal.start) before creating a datapath")
        params = ffi.new("struct dps_dp_params *", {
            "n_mbufs": n_mbufs, "manual_clock": int(manual_clock), "flow_limit": flow_limit,
            "upcall_ring": upcall_ring, "emc_insert_inv_prob": emc_insert_inv_prob})
        self._dp = lib.dps_dp_create(name.encode(), params)
        if self._dp == ffi.NULL:
            _check(-1, f"datapath {name}")
        self.name = name
        stats = lib.dps_pmd_stats(self._dp)
        buf = ffi.buffer(stats, PMD_STATS_DTYPE.itemsize * (MAX_PMDS + 1))
        self._stats = np.frombuffer(buf, dtype=PMD_STATS_DTYPE)
        self._upcall_buf = ffi.new("struct dps_upcall[]", UPCALL_BATCH)   # reused: upcalls() copies out of it
        self._setup_rows = ffi.new("struct dps_setup_row[]", UPCALL_BATCH)   # upcalls_setup's, likewise
        self._setup_left = ffi.new("unsigned *")

    # -- lifetime
    def close(self) -> None:
        if self._dp is not None:
            self._stats = None
            lib.dps_dp_destroy(self._dp)
            self._dp = None
            Eal.drain_log()

    def __enter__(self) -> "Datapath":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._dp is None

    @property
    def h(self):
        """The C handle; a closed datapath refuses every call instead of crashing."""
        if self._dp is None:
            raise DatapathError(f"datapath {self.name} is closed")
        return self._dp

    # -- clock and memory
    @property
    def now_ns(self) -> int:
        return int(lib.dps_clock_now(self.h))

    def set_clock(self, ns: int) -> None:
        lib.dps_clock_set(self.h, ns)

    def mbufs_in_use(self) -> int:
        return int(lib.dps_mbufs_in_use(self.h))

    def mbufs_total(self) -> int:
        return int(lib.dps_mbufs_total(self.h))

    # -- ports
    def add_port(self, dp_port: int, devargs: str, n_rxq: int = 1, n_txq: int | None = None,
                 rxd: int = 1024, txd: int = 1024, mtu: int | None = None) -> PortInfo:
        keep = ffi.new("char[]", devargs.encode())
        params = ffi.new("struct dps_port_params *", {
            "devargs": keep, "dp_port": dp_port, "n_rxq": n_rxq, "n_txq": n_txq or 0,
            "n_rxd": rxd, "n_txd": txd, "mtu": mtu or 0, "extra_mbufs": _held_mbufs(devargs) * n_rxq})
        _check(lib.dps_port_add(self.h, params), f"port {dp_port} ({devargs})")
        Eal.drain_log()
        return self.port_info(dp_port)

    def add_test_port(self, dp_port: int, name: str, n_queues: int = 1) -> PortInfo:
        _check(lib.dps_testport_add(self.h, name.encode(), dp_port, n_queues), f"test port {name}")
        return self.port_info(dp_port)

    def del_port(self, dp_port: int) -> None:
        _check(lib.dps_port_del(self.h, dp_port), f"port {dp_port}")
        Eal.drain_log()

    def ports(self) -> list[int]:
        out = ffi.new("uint32_t[]", MAX_PORTS)
        return list(out[0:lib.dps_port_list(self.h, out, MAX_PORTS)])

    def port_info(self, dp_port: int) -> PortInfo:
        i = ffi.new("struct dps_port_info *")
        _check(lib.dps_port_info(self.h, dp_port, i), f"port {dp_port}")
        return PortInfo(dp_port, ffi.string(i.name).decode(), ffi.string(i.driver).decode(), i.eth_port,
                        i.socket, i.n_rxq, i.n_txq, i.n_rxd, i.n_txd, i.mtu, bool(i.txq_shared),
                        bool(i.link_up), i.link_speed, ":".join("%02x" % b for b in i.mac))

    def port_stats(self, dp_port: int) -> dict[str, int]:
        s = ffi.new("struct dps_port_stats *")
        _check(lib.dps_port_stats(self.h, dp_port, s), f"port {dp_port}")
        return {k: int(getattr(s, k)) for k in PORT_STATS_FIELDS}

    def port_stats_many(self, dp_ports: list[int]) -> np.ndarray:
        """The counters of DP_PORTS, one row each (abi.PORT_STATS_DTYPE), in one C call that
        fills the array in place; a port that is gone reads zeros."""
        out = np.zeros(len(dp_ports), dtype=PORT_STATS_DTYPE)
        if dp_ports:
            ports = np.asarray(dp_ports, dtype=np.uint32)
            lib.dps_port_stats_many(self.h, ffi.cast("uint32_t *", ffi.from_buffer(ports)), len(dp_ports),
                                    ffi.cast("struct dps_port_stats *", ffi.from_buffer(out)))
        return out

    # -- sFlow samples (the PMDs' sample rings, include/dpdkswitch.h)
    def sflow_agent(self, source: int, rate: int, header: int, sub_id: int, address: bytes, boot_ns: int,
                    targets: list[tuple[int, bytes, int]]) -> SflowDatagrams:
        """The datagrams of an sFlow agent, built and sent in C (include/dpdkswitch.h's struct
        dps_sflow_agent): flow samples of SOURCE at 1-in-RATE with HEADER bytes of each frame,
        from sub-agent SUB_ID at ADDRESS (4 or 16 bytes), up since BOOT_NS (the datapath's
        clock), to TARGETS: (a non-blocking UDP
        socket's fd, the collector's address, 4 or 16 bytes, its port).  The sockets stay the
        caller's, open while the agent sends."""
        if not 1 <= len(targets) <= SFLOW_TARGETS:
            raise ValueError(f"sFlow: 1 to {SFLOW_TARGETS} collectors, not {len(targets)}")
        if len(address) not in (4, 16) or any(len(a) not in (4, 16) for _, a, _ in targets):
            raise ValueError("sFlow: addresses of 4 (IPv4) or 16 bytes (IPv6)")
        c = ffi.new("struct dps_sflow_agent *")
        c.source, c.rate, c.header, c.sub_id = source, rate, header, sub_id
        c.addr_type = 1 if len(address) == 4 else 2
        c.addr[0:len(address)] = address
        c.boot_ns = boot_ns
        c.n_targets = len(targets)
        for t, (fd, addr, port) in zip(c.targets, targets):
            t.fd, t.family, t.port = fd, 4 if len(addr) == 4 else 6, port
            t.addr[0:len(addr)] = addr
        return SflowDatagrams(self, c)

    def sflow_export(self, agents: list[SflowDatagrams], port_agent: np.ndarray, port_ifindex: np.ndarray,
                     max_samples: int = 1 << 20) -> int:
        """Up to MAX_SAMPLES records of the PMDs' sample rings, encoded as sFlow v5 flow
        samples into AGENTS' datagrams and the datagrams filled sent, in one C call.
        PORT_AGENT and PORT_IFINDEX (uint32, MAX_PORTS each): the agent index and ifIndex of a
        datapath port; an index past AGENTS drops that port's records.  Returns the samples."""
        if len(port_agent) != MAX_PORTS or len(port_ifindex) != MAX_PORTS:
            raise ValueError("sflow_export: port tables of MAX_PORTS")
        if not agents:
            return 0
        pa = np.ascontiguousarray(port_agent, dtype=np.uint32)
        pi = np.ascontiguousarray(port_ifindex, dtype=np.uint32)
        ptrs = ffi.new("struct dps_sflow_agent *[]", [a.c for a in agents])
        return lib.dps_sflow_export(self.h, ffi.cast("uint32_t *", ffi.from_buffer(pa)),
                                    ffi.cast("uint32_t *", ffi.from_buffer(pi)), ptrs, len(agents), max_samples)

    def sflow_waiting(self) -> int:
        """sFlow records waiting in the PMDs' sample rings."""
        return lib.dps_sflow_waiting(self.h)

    def port_xstats(self, dp_port: int) -> dict[str, int]:
        n = 64
        while True:
            out = ffi.new("struct dps_xstat[]", n)
            got = _check(lib.dps_port_xstats(self.h, dp_port, out, n), f"port {dp_port}")
            if got <= n:
                return {ffi.string(out[i].name).decode(): int(out[i].value) for i in range(got)}
            n = got

    # -- test ports
    def inject(self, dp_port: int, frames: list[bytes], queue: int = 0) -> int:
        data = b"".join(frames)
        lens = ffi.new("uint32_t[]", [len(f) for f in frames])
        return _check(lib.dps_testport_inject(self.h, dp_port, queue, data, lens, len(frames)),
                      f"inject into port {dp_port}")

    def drain(self, dp_port: int, max_frames: int = 1 << 16) -> list[bytes]:
        frames: list[bytes] = []
        buf = ffi.new("uint8_t[]", 1 << 20)
        lens = ffi.new("uint32_t[]", 4096)
        while len(frames) < max_frames:
            n = _check(lib.dps_testport_drain(self.h, dp_port, buf, 1 << 20, lens,
                                              min(4096, max_frames - len(frames))), f"drain port {dp_port}")
            off = 0
            for i in range(n):
                frames.append(bytes(ffi.buffer(buf + off, lens[i])))
                off += lens[i]
            if n == 0:
                break
        return frames

    # -- flows
    def flow_put(self, ufid: int, key: bytes, mask: bytes, actions: bytes, create: bool = False,
                 modify: bool = False, reset_stats: bool = False) -> None:
        """Install (or change the actions of) one flow; raises on failure."""
        res = self.flow_put_batch([(ufid, key, mask, actions)], create=create, modify=modify,
                                  reset_stats=reset_stats)
        if res[0]:
            raise DatapathError(ffi.string(lib.dps_last_error()).decode(), res[0][0])

    def flow_put_batch(self, puts, create: bool = False, modify: bool = False,
                       reset_stats: bool = False) -> list[tuple[int, str] | None]:
        """PUTS: (ufid, key bytes, mask bytes, actions bytes) each.  Per put: None, or (errno, reason)."""
        if not puts:
            return []
        ufids, keys, masks, acts = zip(*puts)
        return self.flow_put_many(ufids, keys, masks, acts, create=create, modify=modify, reset_stats=reset_stats)

    def flow_put_many(self, ufids, keys, masks, actions, create: bool = False, modify: bool = False,
                      reset_stats: bool = False) -> list[tuple[int, str] | None]:
        """Put i is (UFIDS[i], KEYS[i], MASKS[i], ACTIONS[i]), the last three bytes; all in one call
        (packed: a few joins, no C object per put).  Per put: None, or (errno, reason)."""
        n = len(ufids)
        if not n:
            return []
        kb, mb = b"".join(keys), b"".join(masks)
        if len(kb) != n * KEY_SIZE or len(mb) != n * KEY_SIZE or any(len(k) != KEY_SIZE for k in keys):
            raise ValueError(f"flow key and mask are {KEY_SIZE} bytes")
        ub = b"".join([u.to_bytes(16, "little") for u in ufids])    # struct dps_ufid: lo, hi (x86)
        ofs = array.array("I", [0, *itertools.accumulate(map(len, actions))])
        ab = b"".join(actions) or b"\0"
        flags = (lib.DPS_FLOW_CREATE if create else 0) | (lib.DPS_FLOW_MODIFY if modify else 0) | \
                (lib.DPS_FLOW_RESET_STATS if reset_stats else 0)
        res = array.array("i", bytes(4 * n))
        lib.dps_flow_put_packed(self.h, n, ffi.from_buffer("struct dps_ufid[]", ub), ffi.from_buffer("uint8_t[]", kb),
                                ffi.from_buffer("uint8_t[]", mb), ffi.from_buffer("uint8_t[]", ab),
                                ffi.from_buffer("uint32_t[]", ofs), flags, ffi.from_buffer("int32_t[]", res))
        if not any(res):
            return [None] * n
        return [None if r == 0 else (-r, self._put_error(r)) for r in res]

    def flow_set_actions(self, ufids, actions: bytes) -> list[int]:
        """The flows UFIDS (existing ones) take ACTIONS, in one call (the megaflows of one rule
        after a flow-mod); the UFIDs it could not change (no such flow, bad actions, no memory)."""
        n = len(ufids)
        if not n:
            return []
        ub = b"".join([u.to_bytes(16, "little") for u in ufids])    # struct dps_ufid: lo, hi (x86)
        res = array.array("i", bytes(4 * n))
        ok = lib.dps_flow_set_actions(self.h, n, ffi.from_buffer("struct dps_ufid[]", ub),
                                      ffi.from_buffer("uint8_t[]", actions or b"\0"), len(actions),
                                      ffi.from_buffer("int32_t[]", res))
        return [] if ok == n else [u for u, r in zip(ufids, res) if r]

    @staticmethod
    def _put_error(result: int) -> str:
        return {errno.EEXIST: "flow exists", errno.ENOENT: "no such flow",
                errno.ENOSPC: "flow limit reached or no room",
                errno.EINVAL: "bad key, mask or actions"}.get(-result, f"error {-result}")

    def flow_del(self, ufids: list[int]) -> list[dict | None]:
        """Delete flows; for each, its final counters, or None if it did not exist."""
        n = len(ufids)
        arr = ffi.new("struct dps_ufid[]", max(n, 1))
        for i, u in enumerate(ufids):
            arr[i].lo, arr[i].hi = u & 0xFFFFFFFFFFFFFFFF, u >> 64
        stats = ffi.new("struct dps_flow_stats[]", max(n, 1))
        found = ffi.new("uint8_t[]", max(n, 1))
        _check(lib.dps_flow_del_batch(self.h, arr, n, stats, found), "flow delete")
        return [_stats(stats[i]) if found[i] else None for i in range(n)]

    def flow_get(self, ufid: int) -> dict | None:
        u = ffi.new("struct dps_ufid *", {"lo": ufid & 0xFFFFFFFFFFFFFFFF, "hi": ufid >> 64})
        key, mask = ffi.new("struct dps_flow_key *"), ffi.new("struct dps_flow_key *")
        st = ffi.new("struct dps_flow_stats *")
        alen = ffi.new("uint32_t *", 4096)
        acts = ffi.new("uint8_t[]", 4096)
        if lib.dps_flow_get(self.h, u, key, mask, st, acts, alen) < 0:
            return None
        return {"ufid": ufid, "key": bytes(ffi.buffer(key)), "mask": bytes(ffi.buffer(mask)),
                "actions": bytes(ffi.buffer(acts, alen[0])), **_stats(st[0])}

    def flow_dump(self) -> list[dict]:
        out = []
        cursor = ffi.new("uint32_t *", 0)
        batch = ffi.new("struct dps_flow_dump[]", 256)
        abuf = ffi.new("uint8_t[]", 1 << 18)
        while cursor[0] != 0xFFFFFFFF:
            n = _check(lib.dps_flow_dump(self.h, cursor, batch, 256, abuf, 1 << 18), "flow dump")
            for i in range(n):
                d = batch[i]
                out.append({"ufid": d.ufid.lo | d.ufid.hi << 64, "key": bytes(ffi.buffer(ffi.addressof(d.key))),
                            "mask": bytes(ffi.buffer(ffi.addressof(d.mask))),
                            "actions": bytes(ffi.buffer(abuf + d.actions_ofs, d.actions_len)), **_stats(d.stats)})
        return out

    def flow_stats_changed(self, idle_before_ns: int = 0) -> list[tuple[int, int, int, int, int, int]]:
        """(ufid, packets, bytes, used_ns, created_ns, tcp_flags) of the flows whose packet count
        changed since this was last asked, and of those idle since before IDLE_BEFORE_NS (0: none)."""
        out: list = []
        cursor = ffi.new("uint32_t *", 0)
        n = 4096
        batch = ffi.new("struct dps_flow_delta[]", n)
        view = np.frombuffer(ffi.buffer(batch), dtype=FLOW_DELTA_DTYPE)     # abi: checked against DWARF
        while cursor[0] != 0xFFFFFFFF:
            got = _check(lib.dps_flow_stats_changed(self.h, cursor, idle_before_ns, batch, n), "flow stats")
            if not got:
                continue
            d = view[:got]
            s = d["stats"]
            ufids = [lo | hi << 64 for lo, hi in zip(d["ufid"]["lo"].tolist(), d["ufid"]["hi"].tolist())]
            out += zip(ufids, s["packets"].tolist(), s["bytes"].tolist(), s["used_ns"].tolist(),
                       d["created_ns"].tolist(), s["tcp_flags"].tolist())
        return out

    def flow_flush(self) -> int:
        return _check(lib.dps_flow_flush(self.h), "flow flush")

    def flow_count(self) -> int:
        return int(lib.dps_flow_count(self.h))

    def subtable_count(self) -> int:
        return int(lib.dps_subtable_count(self.h))

    def set_megaflows(self, enabled: bool) -> None:
        _check(lib.dps_megaflows_set(self.h, int(enabled)), "megaflows")

    def set_emc_insert_inv_prob(self, n: int) -> None:
        lib.dps_emc_insert_prob_set(self.h, n)

    def set_forward(self, in_port: int, outputs: list[int]) -> None:
        """Frames from IN_PORT go out of each of OUTPUTS (none: dropped): one flow matching in_port
        alone, named by a UFID derived from the port (the static port map)."""
        key, mask = bytearray(KEY_SIZE), bytearray(KEY_SIZE)
        key[0:4] = in_port.to_bytes(4, "little")
        mask[0:4] = b"\xff\xff\xff\xff"
        self.flow_put(STATIC_UFID_BASE | in_port, bytes(key), bytes(mask),
                      odp.encode([odp.Output(p) for p in outputs]))

    def clear_forward(self, in_port: int) -> None:
        self.flow_del([STATIC_UFID_BASE | in_port])

    # -- meters
    def meter_set(self, meter_id: int, rate: int, burst: int = 0, pktps: bool = False) -> None:
        band = ffi.new("struct dps_meter_band *", {"rate": rate, "burst": burst})
        _check(lib.dps_meter_set(self.h, meter_id, lib.DPS_METER_PKTPS if pktps else 0, band, 1), "meter")

    def meter_del(self, meter_id: int) -> None:
        _check(lib.dps_meter_set(self.h, meter_id, 0, ffi.NULL, 0), "meter")

    def meter_stats(self, meter_id: int) -> tuple[int, int]:
        p, d = ffi.new("uint64_t *"), ffi.new("uint64_t *")
        _check(lib.dps_meter_stats(self.h, meter_id, p, d), "meter")
        return int(p[0]), int(d[0])

    # -- the slow path's side: upcalls and packet-out
    def upcall_fd(self) -> int:
        return int(lib.dps_upcall_fd(self.h))

    def upcall_arm(self) -> int:
        """Ask for the eventfd; how many upcalls wait already (samples only once DPS_LAZY_WAKE do)."""
        return int(lib.dps_upcall_arm(self.h))

    def upcall_count(self) -> int:
        """How many upcalls wait, the samples that wait for company too."""
        return int(lib.dps_upcall_count(self.h))

    def upcalls(self, max_n: int = 64) -> list["Upcall"]:
        """Up to MAX_N (at most UPCALL_BATCH) waiting upcalls."""
        arr = self._upcall_buf
        n = lib.dps_upcall_recv(self.h, arr, min(max_n, UPCALL_BATCH))
        return self._upcalls_of(arr, n)

    def control_upcalls(self, max_n: int = 64) -> list["Upcall"]:
        """Upcalls of the reserved ring only: the control protocols' frames."""
        arr = ffi.new("struct dps_upcall[]", max_n)
        n = lib.dps_control_upcall_recv(self.h, arr, max_n)
        return self._upcalls_of(arr, n)

    def _upcalls_of(self, arr, n: int) -> list["Upcall"]:
        """The first N upcalls of ARR, read by one unpack each (no cdata object per field)."""
        if n <= 0:
            return []
        return [Upcall(self, *f) for f in _UPCALL.iter_unpack(ffi.buffer(arr, n * _UPCALL.size))]

    def upcalls_setup(self, table: "OfTable", max_n: int, room: int) -> tuple[list[tuple], list["Upcall"]]:
        """Up to MAX_N waiting upcalls, those misses that TABLE answers (ROOM of them at most) set
        up in C (``dps_oftable_setup``: megaflow put, frame executed): (their rows, as
        ``SETUP_ROW`` unpacks them: ufid lo, hi, rule id, put result, frame length, datapath in_port, key,
        masked key, mask), and the other upcalls, in order."""
        rows: list[tuple] = []
        left: list[Upcall] = []
        arr, out, n_left = self._upcall_buf, self._setup_rows, self._setup_left
        while max_n > 0:
            want = min(max_n, UPCALL_BATCH)
            got = lib.dps_upcall_recv(self.h, arr, want)
            if got <= 0:
                break
            nr = lib.dps_oftable_setup(self.h, table.h, arr, got, max(room - len(rows), 0), out, n_left)
            if nr:
                rows += SETUP_ROW.iter_unpack(ffi.buffer(out, nr * SETUP_ROW.size))
            left += self._upcalls_of(arr, n_left[0])
            max_n -= got
            if got < want:
                break
        return rows, left

    def execute(self, frame: bytes, in_port: int, actions: bytes) -> None:
        """Packet-out: FRAME, as if received on IN_PORT, through ACTIONS."""
        _check(lib.dps_execute(self.h, frame, len(frame), in_port, actions, len(actions)), "execute")

    # -- PMD threads
    def start_pmds(self, lcores: list[int]) -> None:
        _check(lib.dps_pmd_start(self.h, ffi.new("uint32_t[]", lcores), len(lcores)), "PMD start")

    def pin_rxqs(self, pins: list[tuple[int, int, int]]) -> None:
        """Pin rx queues: (dp_port, queue, lcore) each."""
        arr = ffi.new("struct dps_rxq_pin[]", [{"dp_port": p, "queue": q, "lcore": c} for p, q, c in pins] or 1)
        _check(lib.dps_pmd_pin(self.h, arr, len(pins)), "rx queue pinning")

    def stop_pmds(self) -> None:
        _check(lib.dps_pmd_stop(self.h), "PMD stop")

    @property
    def n_pmds(self) -> int:
        return int(lib.dps_pmd_count(self.h))

    def poll(self, iterations: int = 1) -> int:
        """Deterministic mode: run poll iterations on this thread; frames received."""
        return _check(lib.dps_dp_poll(self.h, iterations), "poll")

    def pmd_stats(self) -> np.ndarray:
        """Per-PMD counters, a live view of C memory: slot i is PMD i, the last is manual polling."""
        return self._stats

    def set_stage_sampling(self, every: int) -> None:
        """Time the stages of every EVERY-th poll iteration of each PMD (abi.STAGES, counted in
        stage_cycles of pmd_stats()); 0 turns it off."""
        if not 0 <= every < 1 << 32:
            raise ValueError(f"stage sampling: {every} is not an iteration count")
        lib.dps_pmd_stage_sampling(self.h, every)

    def mem_stats(self) -> dict[str, int]:
        """DPDK heap bytes in use and in all (the whole process's), the bytes each flow slot
        takes outside that heap, the flow limit and the flows installed."""
        m = ffi.new("struct dps_mem_stats *")
        lib.dps_mem_stats(self.h, m)
        return {k: int(getattr(m, k)) for k in ("heap_allocated", "heap_total", "flow_slot_bytes", "flow_limit",
                                                "n_flows")}

    def rxq_assignment(self) -> list[tuple[int, int, int | None]]:
        """(dp_port, queue, lcore polling it or None) for every rx queue."""
        out = ffi.new("struct dps_rxq_pin[]", 1024)
        n = _check(lib.dps_rxq_assignment(self.h, out, 1024), "rx queue assignment")
        return [(out[i].dp_port, out[i].queue, None if out[i].lcore == 0xFFFFFFFF else out[i].lcore)
                for i in range(min(n, 1024))]


def _held_mbufs(devargs: str) -> int:
    """Frames a device keeps in mbufs of its own: net_pcap with infinite_rx=1 loads its whole
    rx file into the pool at start.  Counted from the pcap's record headers."""
    parts = dict(kv.split("=", 1) for kv in devargs.split(",")[1:] if "=" in kv)
    if not devargs.startswith("net_pcap") or parts.get("infinite_rx") != "1" or "rx_pcap" not in parts:
        return 0
    n = 0
    try:
        with open(parts["rx_pcap"], "rb") as f:
            head = f.read(24)
            endian = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
            while rec := f.read(16):
                if len(rec) < 16:
                    break
                f.seek(int.from_bytes(rec[8:12], "little" if endian == "<" else "big"), 1)
                n += 1
    except OSError:
        return 0                             # the driver will say what is wrong with the file
    return n


STATIC_UFID_BASE = 0x5747 << 112        # UFIDs of the static port map's flows


def _stats(s) -> dict:
    return {"packets": int(s.packets), "bytes": int(s.bytes), "used_ns": int(s.used_ns),
            "tcp_flags": int(s.tcp_flags)}


class Upcall:
    """A frame the datapath handed to the slow path, by reference: ``execute`` or ``free`` it,
    once (a later call is refused; one never made is made by the garbage collector).  ``data``,
    the frame's bytes, is copied out when first read, or when the upcall is freed (a miss that
    is executed and never read costs no copy); after ``execute`` it is gone unless read before."""

    __slots__ = ("dp", "_pkt", "_addr", "len", "type", "cookie", "key", "_data")

    def __init__(self, dp: "Datapath", packet: int, addr: int, length: int, kind: int, cookie: int, key: bytes):
        self.dp = dp
        self._pkt = packet               # the packet's address; 0 once executed or freed
        self._addr = addr                # the frame's, valid until then
        self.len = length                # the frame's length
        self.type = "miss" if kind == lib.DPS_UPCALL_MISS else "action"
        self.cookie = cookie
        self.key = key
        self._data: bytes | None = None

    @property
    def data(self) -> bytes:
        d = self._data
        if d is None:
            if not self._pkt:
                raise DatapathError("this upcall's packet was executed before its frame was read")
            d = self._data = ffi.buffer(ffi.cast("uint8_t *", self._addr), self.len)[:]
        return d

    @property
    def in_port(self) -> int:
        return int.from_bytes(self.key[0:4], "little")

    def _take(self):
        if not self._pkt:
            raise DatapathError("this upcall's packet was already executed or freed")
        p, self._pkt = self._pkt, 0
        return ffi.cast("void *", p)

    def execute(self, actions: bytes) -> None:
        _check(lib.dps_packet_execute(self.dp.h, self._take(), actions, len(actions)), "execute")

    def free(self) -> None:
        if self._data is None and self._pkt:      # kept for whoever holds the upcall
            self._data = ffi.buffer(ffi.cast("uint8_t *", self._addr), self.len)[:]
        lib.dps_packet_free(self.dp.h, self._take())

    def __del__(self):
        if self._pkt and not self.dp.closed:
            lib.dps_packet_free(self.dp.h, ffi.cast("void *", self._pkt))
            self._pkt = 0


def parse(frame: bytes, in_port: int = 0) -> bytes:
    """The datapath's flow key of FRAME (``KEY_SIZE`` bytes, layout in flowkey)."""
    key = ffi.new("struct dps_flow_key *")
    lib.dps_parse(frame, len(frame), in_port, key)
    return bytes(ffi.buffer(key))


_PCI_RE = re.compile(r"^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]")


def is_pci(devargs: str) -> bool:
    return bool(_PCI_RE.match(devargs))


class SflowDatagrams:
    """One sFlow agent's datagram state in C (Datapath.sflow_agent): the samples waiting, the
    sequence numbers and pool, and what was sent.  Control thread only."""

    def __init__(self, dp: Datapath, c):
        self.dp = dp
        self.c = c

    def add(self, sample: bytes) -> None:
        """SAMPLE (XDR, its record header included) into the datagram; the datagram is sent
        first if it would not fit."""
        if lib.dps_sflow_add(self.dp.h, self.c, sample, len(sample)) < 0:
            raise ValueError(f"sFlow: a sample of {len(sample)} bytes does not fit a datagram")

    def flush(self) -> None:
        """Send the datagram now if it holds a sample."""
        lib.dps_sflow_flush(self.dp.h, self.c)

    @property
    def seq(self) -> int:
        return self.c.seq

    @property
    def pool(self) -> int:
        return self.c.pool

    @property
    def pending(self) -> int:
        return self.c.n_pending

    @property
    def datagram_seq(self) -> int:
        return self.c.datagram_seq

    @property
    def flow_samples(self) -> int:
        return self.c.flow_samples

    @property
    def datagrams(self) -> int:
        return self.c.datagrams

    @property
    def send_errors(self) -> int:
        return self.c.send_errors
