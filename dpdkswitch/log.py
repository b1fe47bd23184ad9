"""The switch's messages: one logging set-up for ``dpdkswitch run``, rate limits for the
messages a packet or a peer can cause, and the recent messages the live view shows.

Messages are `logging` records of the ``dpdkswitch`` logger and its children, written in the
text the switch has always printed: a child logger's messages carry its last name
(``openflow: br0: controller tcp:10.0.0.9:6653 disconnected``), the ``dpdkswitch`` logger's
information is written as it is (the start-up banner), and its warnings and errors read
``dpdkswitch: ...``.  `setup` sends information to stdout and warnings and errors to stderr.
With the live view, whose redraw clears the screen every second, it also keeps the recent
messages in `RECENT`, which the view draws below its table.

A logger whose messages a packet or a peer can cause comes from `rate_limited`: each of its
call sites passes at most `RATE_BURST` messages per `RATE_INTERVAL` seconds, and the next one
that passes after some were dropped says how many (Open vSwitch's VLOG_RATE_LIMIT).

DPDK's own messages (EAL, its libraries, the drivers) come through the ``dpdkswitch.dpdk``
logger, written ``dpdk: EAL: ...``: the datapath drains them from C (see `Eal.drain_log`) and
hands each line to `dpdk_line` with DPDK's level, which `from_dpdk` maps to logging's.  The
user picks how much of it to see with ``dpdk: {log_level: ...}`` (`DPDK_LEVELS`).

Contract: set up once by the CLI, before the switch starts.  Records come from the control
thread (logging's handlers lock, so another thread may log too).  Cost per record: one dict
look-up in the rate limit, one formatted write per handler.
"""
from __future__ import annotations

import logging
import sys
import time
from collections import deque
from dataclasses import dataclass

ROOT = "dpdkswitch"
RATE_BURST = 10                # messages per call site ...
RATE_INTERVAL = 60.0           # ... per this many seconds
RECENT_SIZE = 100              # messages the live view can show


DPDK = ROOT + ".dpdk"           # DPDK's own messages, shown as "dpdk: ..."
# dpdk.log_level: each name, as DPDK's --log-level takes it, and the level of logging's the
# "dpdk" logger passes from (logging has no notice: it is information, as DPDK's info is).
DPDK_LEVELS = {"error": logging.ERROR, "warning": logging.WARNING, "notice": logging.INFO,
               "info": logging.INFO, "debug": logging.DEBUG}
DPDK_LEVEL_DEFAULT = "warning"


def from_dpdk(level: int) -> int:
    """logging's level for DPDK's (rte_log's 1 emergency .. 8 debug; 0, a line written outside
    rte_log, is information)."""
    if 1 <= level <= 3:
        return logging.CRITICAL
    return {4: logging.ERROR, 5: logging.WARNING, 8: logging.DEBUG}.get(level, logging.INFO)


def set_dpdk_level(name: str) -> None:
    """Let the "dpdk" logger pass what ``dpdk.log_level: NAME`` asks for (a name of `DPDK_LEVELS`)."""
    logging.getLogger(DPDK).setLevel(DPDK_LEVELS[name])


def dpdk_line(level: int, text: str) -> None:
    """One line of DPDK's log at logging's LEVEL, through the "dpdk" logger."""
    logging.getLogger(DPDK).log(level, "%s", text)


class Format(logging.Formatter):
    """``openflow: msg`` for a child logger's records (its last name), ``dpdkswitch: msg`` for the
    root logger's warnings and errors, the message alone for its information."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        sub = record.name.rpartition(".")[2] if record.name.startswith(ROOT + ".") else ""
        prefix = sub or (ROOT if record.levelno >= logging.WARNING else "")
        return f"{prefix}: {text}" if prefix else text


@dataclass
class _Window:
    start: float
    passed: int = 0
    suppressed: int = 0
    first_suppressed: float = 0.0


class RateLimit(logging.Filter):
    """At most BURST records per INTERVAL seconds from each call site (file and line) of the
    logger it filters; the first record that passes after some were suppressed ends with
    ``(suppressed N like this in the last T s)``."""

    def __init__(self, burst: int = RATE_BURST, interval: float = RATE_INTERVAL, clock=time.monotonic):
        super().__init__()
        self.burst, self.interval, self.clock = burst, interval, clock
        self.sites: dict[tuple[str, int], _Window] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = self.clock()
        site = (record.pathname, record.lineno)
        w = self.sites.get(site)
        if w is None:
            w = self.sites[site] = _Window(now)
        elif now - w.start >= self.interval:
            w.start, w.passed = now, 0
        if w.passed >= self.burst:
            if not w.suppressed:
                w.first_suppressed = now
            w.suppressed += 1
            return False
        w.passed += 1
        if w.suppressed:
            record.msg = (f"{record.getMessage()} (suppressed {w.suppressed} like this in the last "
                          f"{now - w.first_suppressed:.0f} s)")
            record.args = ()
            w.suppressed = 0
        return True


def rate_limited(name: str) -> logging.Logger:
    """The logger NAME (a child of ``dpdkswitch``) for messages a packet or a peer can cause:
    rate limited per call site.  Log through it with ``stacklevel`` pointing at the real call
    site when a helper wraps it."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RateLimit) for f in logger.filters):
        logger.addFilter(RateLimit())
    return logger


class Recent(logging.Handler):
    """The last `RECENT_SIZE` messages, formatted, with the time each was logged."""

    def __init__(self, size: int = RECENT_SIZE):
        super().__init__()
        self.records: deque[tuple[float, str]] = deque(maxlen=size)
        self.setFormatter(Format())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.created, self.format(record)))

    def lines(self, n: int) -> list[str]:
        """The last N lines of the recent messages, each message's first line stamped with its time."""
        out: list[str] = []
        for created, text in reversed(self.records):
            stamp = time.strftime("%H:%M:%S", time.localtime(created))
            first, *rest = text.splitlines() or [""]
            out[:0] = [f"{stamp} {first}"] + [f"         {r}" for r in rest]
            if len(out) >= n:
                break
        return out[-n:] if n else []


RECENT = Recent()
_installed: list[logging.Handler] = []


def setup(live_view: bool = False, out=None, err=None) -> None:
    """``dpdkswitch run``'s messages: information to OUT (stdout), warnings and errors to ERR
    (stderr); with the live view, the recent ones kept in `RECENT` for it as well.  Calling it
    again replaces what the previous call installed."""
    close()
    root = logging.getLogger(ROOT)
    info = logging.StreamHandler(out if out is not None else sys.stdout)
    info.addFilter(lambda record: record.levelno < logging.WARNING)
    errors = logging.StreamHandler(err if err is not None else sys.stderr)
    errors.setLevel(logging.WARNING)
    handlers: list[logging.Handler] = [info, errors]
    if live_view:
        RECENT.records.clear()
        handlers.append(RECENT)
    for h in handlers:
        if h is not RECENT:
            h.setFormatter(Format())
        root.addHandler(h)
    _installed[:] = handlers
    root.setLevel(logging.INFO)
    root.propagate = False            # our handlers write them; not again through the root logger's


def close() -> None:
    """Undo `setup`."""
    root = logging.getLogger(ROOT)
    for h in _installed:
        root.removeHandler(h)
    if _installed:
        root.setLevel(logging.NOTSET)
        root.propagate = True
    _installed.clear()
