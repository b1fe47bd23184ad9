"""The ``dpdkswitch`` command: run a switch, talk to one, check a config.

``run`` sends its messages through `logging` (see log.py): the switch logs for a long time,
under the live view, and some of its messages are rate limited.  The one-shot commands
(``check``, ``ctl``, ``bench``'s usage errors, argparse's) print their answer or their error as
a plain line on stdout or stderr: that line is the command's result, for a person or a script,
written once as the process ends, so there is nothing to rate-limit or keep in view.

Each command imports what it needs when it runs: ``ctl`` answers without loading
the datapath's extension (cffi, numpy, DPDK's libraries).  No import here dodges a circle: this
is the top layer (see the README's "Layers, checked").
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING

from . import __version__, log
from .config import Config, ConfigError, control_socket_problem, load, online_cpus

if TYPE_CHECKING:
    from .switch import Checked

DEFAULT_SOCKET = "/run/dpdkswitch/ctl.sock"
LOG = logging.getLogger("dpdkswitch")


def _all_cpus() -> None:
    """Start from every online CPU: a parent pinned to one core (EAL pins its main thread)
    must not pin us, EAL places our threads itself."""
    try:
        os.sched_setaffinity(0, online_cpus())
    except OSError:
        pass


def checked_config(path: str) -> tuple[Config, Checked]:
    """The config at PATH, through every check ``run`` applies before it starts EAL (the
    schema, then `switch.check`), and what the checks built (``switch.Checked``, for ``run``
    to take); ConfigError, one line with FILE:LINE, on the first problem."""
    from .switch import check
    config = load(path)
    return config, check(config)


def cmd_run(a: argparse.Namespace) -> int:
    from .app import run
    from .datapath import DatapathError
    from .instance import AlreadyRunning
    from .netns import NetnsError
    top = sys.stdout.isatty() if a.top is None else a.top
    log.setup(live_view=top)
    try:
        config, checked = checked_config(a.config)
    except ConfigError as e:
        LOG.error("%s", e)
        return 2
    if a.socket and (problem := control_socket_problem(a.socket, config.bridges)):
        LOG.error("-s: %s", problem)           # before EAL starts, as the config's own
        return 2
    _all_cpus()
    try:
        return run(config, a.socket, top, checked)
    except (AlreadyRunning, DatapathError, NetnsError, OSError, ConfigError) as e:
        LOG.error("%s", e)
        return 1


def cmd_check(a: argparse.Namespace) -> int:
    try:
        config, _ = checked_config(a.config)
    except ConfigError as e:
        print(f"dpdkswitch: {e}", file=sys.stderr)
        return 2
    print(f"{a.config}: OK ({len(config.bridges)} bridge(s), "
          f"{sum(len(b.ports) for b in config.bridges.values())} port(s))")
    return 0


def cmd_ctl(a: argparse.Namespace) -> int:
    from .control import CommandError, call
    try:
        sys.stdout.write(call(a.socket, a.command, a.args, timeout=a.timeout))
        return 0
    except CommandError as e:
        print(f"dpdkswitch ctl: {e}", file=sys.stderr)
        return 2
    except ConnectionError as e:
        print(f"dpdkswitch ctl: {e}", file=sys.stderr)
        return 1


def _counts(text: str) -> list[int]:
    try:
        counts = [int(x.replace("_", "")) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give flow counts separated by commas, e.g. 10000,100000")
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: flow counts are 1 or more")
    return counts


def _every(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 0 <= n < 1 << 32:
        raise argparse.ArgumentTypeError(f"{text!r}: an iteration count, 0 for off")
    return n


def _seconds(text: str) -> float:
    try:
        t = float(text)
    except ValueError:
        t = -1.0
    if not 0 < t <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r}: a time in seconds, more than 0")
    return t


def _count(text: str) -> int:
    (n,) = _counts(text)
    return n


def _positive(what: str):
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            n = 0
        if not 1 <= n < 1 << 31:
            raise argparse.ArgumentTypeError(f"{text!r}: {what}, 1 or more")
        return n
    return parse


def cmd_bench(a: argparse.Namespace) -> int:
    from .bench import main as bench_main
    if not (a.compare or a.flow_mods or a.export_cost):
        _all_cpus()                  # EAL starts in this process, as in `run`
    return bench_main(a)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="dpdkswitch", description=__doc__)
    ap.add_argument("--version", action="version", version=f"dpdkswitch {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="run the switch in the foreground (Ctrl-C or SIGTERM stops it)")
    r.add_argument("config")
    r.add_argument("-s", "--socket", help="control socket (default: the config's control.socket)")
    r.add_argument("--top", dest="top", action="store_true", default=None,
                   help="live view of port and PMD counters (default when stdout is a terminal)")
    r.add_argument("--no-top", dest="top", action="store_false")
    r.set_defaults(fn=cmd_run)

    c = sub.add_parser("ctl", help="send a command to a running switch (list-commands lists them)")
    c.add_argument("-s", "--socket", default=os.environ.get("DPDKSWITCH_CTL", DEFAULT_SOCKET))
    c.add_argument("-T", "--timeout", type=_seconds, default=30.0, metavar="SECS",
                   help="wait at most SECS for the answer (default 30)")
    c.add_argument("command")
    c.add_argument("args", nargs=argparse.REMAINDER)
    c.set_defaults(fn=cmd_ctl)

    k = sub.add_parser("check", help="validate a config file and exit")
    k.add_argument("config")
    k.set_defaults(fn=cmd_check)

    b = sub.add_parser("bench", help="run a benchmark scenario (or --compare with OVS-DPDK and testpmd)")
    b.add_argument("scenario", nargs="*", metavar="SCENARIO",
                   help="one scenario; with --compare any number (default: all in the file)")
    b.add_argument("--scenarios", metavar="FILE", help="scenarios.yaml (default: ../shared/bench/ of the repo)")
    b.add_argument("--seconds", type=float, default=10.0, help="measuring time per run (default 10)")
    b.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    b.add_argument("--pmd-core", type=int, default=1, help="the PMD thread's core (default 1)")
    b.add_argument("--ctl-core", type=int, default=0, help="the control thread's core (default 0)")
    b.add_argument("--compare", action="store_true",
                   help="run this switch, OVS-DPDK and testpmd, interleaved, and compare their medians")
    b.add_argument("--runs", type=int, default=3, help="runs of each peer with --compare (default 3)")
    b.add_argument("--out", metavar="DIR", help="--compare's output directory (default results/<timestamp>/)")
    b.add_argument("--stage-sample", type=_every, default=64, metavar="N",
                   help="time the PMD's stages (cycles per frame by stage) every Nth iteration; 0: off (default 64)")
    b.add_argument("--sflow", type=_positive("a sampling rate N (1-in-N)"), default=0, metavar="N",
                   help="run br0 with an sFlow agent sampling 1-in-N (to a local collector)")
    b.add_argument("--scrape-ms", type=_positive("milliseconds"), default=0, metavar="MS",
                   help="serve Prometheus metrics and scrape them every MS milliseconds from another process")
    b.add_argument("--export-cost", action="store_true",
                   help="what sFlow at 1/1000 and scraping every 100 ms cost: alternating runs of SCENARIO... "
                        "(default p2p-1k normal-1k) plain, with sFlow and with scraping; medians and ratios")
    b.add_argument("--flow-mods", type=int, metavar="N",
                   help="time adding N flows with ovs-ofctl add-flows, here and on OVS-DPDK (e.g. 100000)")
    b.add_argument("--revalidation", type=_counts, metavar="N[,N...]",
                   help="time the revalidator pass after a flow-mod with N cached flows of one rule (e.g. 10000,100000)")
    b.add_argument("--memory", type=_count, nargs="?", const=100000, metavar="N",
                   help="memory per megaflow, datapath and slow path, with N flows installed (default 100000)")
    b.set_defaults(fn=cmd_bench)

    a = ap.parse_args(argv)
    return a.fn(a)
