"""``dpdkswitch run``: the switch in the foreground, with its control socket and live view.

Owns the control thread's asyncio loop: the control socket, SIGINT/SIGTERM, SIGHUP (a reload
of the config file, as ``ctl reload``: reconfig.py), the once-a-second live view, the upcall
handlers (woken by each datapath's eventfd), the revalidators (every 500 ms) -- what one turn
of each does is udpif.py's, which the benchmark drives too -- and polling of bridges that have
no PMD thread (``pmd_cores: []``).  Everything here runs on the main thread, which is EAL's
main lcore and the datapath's only writer.
"""
from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import os
import resource
import selectors
import signal
import sys
import time

from . import __version__, udpif
from .config import BUSY_POLL_US, Config
from .control import CommandError, Commands, Server, dpif
from .control import ofproto as ofproto_cmds
from .control import reload as reload_cmds
from .control import bfd as bfd_cmds
from .control import cfm as cfm_cmds
from .control import rstp as rstp_cmds
from .control import lacp as lacp_cmds
from .control import bond as bond_cmds
from .control import stp as stp_cmds
from .datapath import Eal, dpdk_version
from .instance import Instance, remove_runtime_dir, sweep_runtime_dirs
from .log import rate_limited
from .metrics import Metrics
from .netflow import NetFlow
from .ipfix import Ipfix
from .sflow import Sflow
from .ofproto.actions import OFPP_LOCAL
from .ofswitch import OpenFlowService
from .reconfig import Reloader
from .openflow.connection import MAX_CONNECTIONS, OFConnection, out_of_files, set_connection_limit
from .switch import Checked, Switch
from .top import TopView

LOG = logging.getLogger("dpdkswitch")
_RESOURCE_LOG = rate_limited("dpdkswitch.resources")


def version_text() -> str:
    """This switch's version and DPDK's, as ``version`` and every bench result show them."""
    return f"dpdkswitch {__version__} ({dpdk_version()})\n"


def try_hint(config: Config) -> str | None:
    """'ip netns exec h1 ping 10.0.0.2' for the first two addressed namespaces, if any."""
    hosts = [(p.netns.name, p.netns.address) for b in config.bridges.values() for p in b.ports.values()
             if p.netns and p.netns.address]
    if len(hosts) < 2:
        return None
    return f"ip netns exec {hosts[0][0]} ping {ipaddress.ip_interface(hosts[1][1]).ip}"


def port_lines(switch: Switch) -> list[str]:
    """Each bridge with its PMD threads, and each of its ports with its device and link state
    (for a tap in a host namespace, as the host sees it), for the start-up banner."""
    out = []
    for br in switch.bridges.values():
        pmds = br.dp.n_pmds
        out.append(f"bridge {br.config.name}: " + (f"{pmds} PMD thread(s) on lcores {br.config.pmd_cores}"
                                                  if pmds else "no PMD thread: the control thread polls"))
        for p in sorted(br.ports.values(), key=lambda p: p.ofport):
            i = br.port_info(p)
            ofport = "LOCAL" if p.ofport == OFPP_LOCAL else p.ofport
            where = f"patch to {p.config.peer}" if p.is_patch else f"{i.name} ({i.driver})"
            host = ""
            if p.config.netns:
                ns = p.config.netns
                host = (f"; host side {p.config.devargs_dict.get('iface', '')} in netns {ns.name}"
                        + (f", {ns.address}" if ns.address else ""))
            out.append(f"  port {p.name} (ofport {ofport}): {where}, link {'up' if i.link_up else 'down'}{host}")
    return out


async def _poll_without_pmds(switch: Switch, stop: asyncio.Event) -> None:
    """Datapaths with no PMD thread are polled here, between control-thread work."""
    while not stop.is_set():
        got = 0
        for backer in switch.backers():
            if backer.dp.n_pmds == 0:
                got += backer.dp.poll(4)
        await asyncio.sleep(0 if got else 0.001)


def _handle_upcalls(backer, switch: Switch, again: bool = False) -> None:
    """The datapath's eventfd fired: one upcall wake-up (udpif), then what it asks for.  A
    wake-up takes upcalls for ``udpif.UPCALL_BUDGET_S`` (5 ms) at most past its first batch;
    when more wait it comes back at the loop's next turn (call_soon), after the control
    socket's, OpenFlow's, the timers' and the signals' callbacks that are ready, so a miss
    storm or a packet-in stream slows flow setup, never the switch's answers.  One wake-up
    per datapath waits at a time: the eventfd's while one is scheduled is left to that one
    (else each turn would add one more, and the turns grow without end)."""
    if again:
        _again.discard(backer)
    elif backer in _again:
        return
    def protocols() -> float:
        now = time.monotonic()
        return switch.run_protocols_due(now) - now
    w = udpif.upcall_wakeup(backer, _upcall_budget(), between=protocols)
    loop = asyncio.get_running_loop()
    if w.mac_pass_in is not None:              # a MAC was learned or moved
        loop.call_later(w.mac_pass_in, _start_mac_pass, backer, switch)
    if w.again:                                # more arrived meanwhile: go again after the next I/O
        _again.add(backer)
        loop.call_soon(_after_io, backer, switch)


def _upcall_budget() -> float:
    """An upcall wake-up's budget: ``udpif.UPCALL_BUDGET_S``, or ``udpif.INTERACTIVE_BUDGET_S``
    while an OpenFlow peer or a control-socket client is talking (a message or a request within
    ``udpif.INTERACTIVE_S``): a controller's or ovs-ofctl's request-reply round trips (a
    flow-mod and its barrier, 3,000 times over) each wait for a slice, and a short one keeps them
    quick under a miss storm, for a turn's overhead (~50 us) per millisecond of upcalls."""
    return udpif.INTERACTIVE_BUDGET_S if time.monotonic() - _last_talked() < udpif.INTERACTIVE_S else udpif.UPCALL_BUDGET_S


def _last_talked() -> float:
    """When a peer last talked: an OpenFlow message read or a control-socket request (monotonic)."""
    return max(OFConnection.last_message, Server.last_request)


def _after_io(backer, switch: Switch) -> None:
    """The turn after an upcall slice: its I/O callbacks (a control-socket request, an OpenFlow
    peer's messages, queued after this one when the loop polled) run before the next slice,
    which goes to the end of the following turn's queue.  Scheduled straight away, the slice
    ran first in every turn, and a request that came in during one slice waited for the next
    one too: two slices instead of one."""
    asyncio.get_running_loop().call_soon(_handle_upcalls, backer, switch, True)


_again: set = set()                            # datapaths whose next wake-up is scheduled (call_soon)


_passes: set[asyncio.Task] = set()             # MAC-change passes running (the loop keeps weak references)


def _start_mac_pass(backer, switch: Switch) -> None:
    backer.revalidation_due = False
    task = asyncio.get_running_loop().create_task(_sliced_pass(backer, switch, fresh=True))
    _passes.add(task)
    task.add_done_callback(_passes.discard)


async def _sliced_pass(backer, switch: Switch, fresh: bool = False) -> None:
    """One revalidator pass in steps of ``udpif.PASS_STEP_S``, a loop turn between two, and the
    control protocols' timers that are due right after each (as between upcall batches)."""
    for _ in udpif.pass_slices(backer, fresh=fresh):
        switch.run_protocols_due(time.monotonic())
        await asyncio.sleep(0)


async def _revalidate(switch: Switch, stop: asyncio.Event) -> None:
    """Every 500 ms: stats to rules, expiry, megaflows true to the tables, in slices."""
    while not stop.is_set():
        for backer in switch.backers():
            if udpif.samples_waiting(backer):  # samples do not wake the handler one by one
                _handle_upcalls(backer, switch)
            await _sliced_pass(backer, switch)
            if stop.is_set():
                return
        wait = udpif.next_pass_in(switch.backers())
        try:
            await asyncio.wait_for(stop.wait(), timeout=wait)
        except asyncio.TimeoutError:
            pass


def _run_protocols(switch: Switch) -> None:
    """The control protocols' timer (stp.py, bfd.py, ...): the bridges whose timers are due run
    them, and the timer is set again for the next one (every 10 ms while a bridge has BFD
    sessions, 100 ms for STP alone, 1 s with neither: ``Bridge.protocol_tick``).  A plain
    timer callback, one loop turn: a task waking from a timeout takes several turns, and a
    turn under a miss storm may hold an upcall slice.  Upcall wake-ups run the due ones too,
    between their batches."""
    loop = asyncio.get_running_loop()
    due = switch.run_protocols_due(time.monotonic())
    _protocol_timer[0] = loop.call_at(due, _run_protocols, switch)   # the loop's clock is time.monotonic()


_protocol_timer: list = [None]                 # the protocols' next timer handle


async def _reload_on_sighup(reloader: Reloader) -> None:
    """SIGHUP: ``reload``, its answer or its refusal in the log."""
    try:
        await reloader.reload()                # logs what changed
    except Exception as e:                     # a bad file, a refused key: the switch runs on
        LOG.error("SIGHUP: %s", e)


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """The loop's errors: running out of file descriptors at an accept is one rate-limited
    line (asyncio retries a second later); anything else as asyncio logs it."""
    if out_of_files(context):
        _RESOURCE_LOG.warning("%s: %s (new connections wait)", context.get("message", "accept failed"),
                              context["exception"].strerror)
        return
    loop.default_exception_handler(context)


async def serve(switch: Switch, config: Config, socket_path: str, top: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_loop_exception)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    commands = Commands()
    commands.register("version", "", "this switch's version and DPDK's", 0, 0, lambda a: version_text())

    def exit_cmd(args: list[str]) -> str:
        loop.call_soon(stop.set)
        return ""
    commands.register("exit", "", "stop the switch", 0, 0, exit_cmd)
    counters = dpif.register(commands, switch)
    netflows = {name: NetFlow(br) for name, br in switch.bridges.items() if br.config.netflow}

    def netflow_show(args: list[str]) -> str:
        if args and args[0] not in switch.bridges:
            raise CommandError(f"no bridge {args[0]}")
        shown = [nf.show() for name, nf in netflows.items() if not args or name == args[0]]
        return "".join(shown) or "no NetFlow export configured\n"
    commands.register("netflow/show", "[BRIDGE]", "NetFlow export: targets, flows, records sent", 0, 1,
                      netflow_show)
    sflows = {name: Sflow(br, i) for i, (name, br) in enumerate(switch.bridges.items()) if br.config.sflow}

    def sflow_show(args: list[str]) -> str:
        if args and args[0] not in switch.bridges:
            raise CommandError(f"no bridge {args[0]}")
        shown = [sf.show() for name, sf in sflows.items() if not args or name == args[0]]
        return "".join(shown) or "no sFlow agent configured\n"
    commands.register("sflow/show", "[BRIDGE]", "sFlow agent: targets, sampling, samples sent", 0, 1, sflow_show)
    ipfixes = {name: Ipfix(br) for name, br in switch.bridges.items() if br.config.ipfix}

    def ipfix_show(args: list[str]) -> str:
        if args and args[0] not in switch.bridges:
            raise CommandError(f"no bridge {args[0]}")
        shown = [ix.show() for name, ix in ipfixes.items() if not args or name == args[0]]
        return "".join(shown) or "no IPFIX export configured\n"
    commands.register("ipfix/show", "[BRIDGE]", "IPFIX exporters: targets, samples, records and templates sent",
                      0, 1, ipfix_show)
    openflow = OpenFlowService(switch, socket_path)
    ofproto_cmds.register(commands, switch, openflow)
    stp_cmds.register(commands, switch)
    rstp_cmds.register(commands, switch)
    bfd_cmds.register(commands, switch)
    cfm_cmds.register(commands, switch)
    lacp_cmds.register(commands, switch)
    bond_cmds.register(commands, switch)
    server = Server(socket_path, commands)
    # The OpenFlow listeners first: a tool that waits for the control socket to answer may then
    # connect to them (each listener's start yields to the loop, which would serve the control
    # socket meanwhile if it were listening already).
    await openflow.start()
    await server.start()
    reloader = Reloader(switch, openflow)
    metrics = None
    if config.metrics_listen:
        metrics = Metrics(switch, config.metrics_listen, openflow)
        try:
            metrics.start(loop)
        except OSError as e:                   # the switch runs on without its endpoint
            LOG.error("metrics: cannot listen on %s: %s", config.metrics_listen, e.strerror or e)
            metrics.stop()
            metrics = None
    reload_cmds.register(commands, reloader)
    reloads: set[asyncio.Task] = set()         # held until done (the loop keeps only weak references)

    def on_sighup() -> None:
        task = loop.create_task(_reload_on_sighup(reloader))
        reloads.add(task)
        task.add_done_callback(reloads.discard)
    loop.add_signal_handler(signal.SIGHUP, on_sighup)

    header = [f"dpdkswitch {__version__} on {config.path}: {len(switch.bridges)} bridge(s)",
              switch.eal_note,
              f"control socket: {socket_path}"
              + (f"; metrics: http://{config.metrics_listen}/metrics" if metrics is not None else ""),
              f"Ctrl-C stops it.  Counters: dpdkswitch ctl -s {socket_path} dpif/show"]
    hint = try_hint(config)
    if hint:
        header.append(f"Try, in another terminal: {hint}")
    if not top:                                # the live view shows it (less the ports) at its top
        LOG.info("\n".join(header[:2] + port_lines(switch) + header[2:]))
    view = TopView(switch, counters, header)
    poller = asyncio.create_task(_poll_without_pmds(switch, stop))
    revalidator = asyncio.create_task(_revalidate(switch, stop))
    _run_protocols(switch)
    for backer in switch.backers():
        loop.add_reader(backer.dp.upcall_fd(), _handle_upcalls, backer, switch)
        _handle_upcalls(backer, switch)
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass
            Eal.drain_log()                    # what DPDK logged meanwhile, from any thread
            if top and not stop.is_set():
                sys.stdout.write("\x1b[H\x1b[2J" + view.render() + "\n")
                sys.stdout.flush()
    finally:
        for backer in switch.backers():
            loop.remove_reader(backer.dp.upcall_fd())
            _again.discard(backer)
        if metrics is not None:
            metrics.stop()
        for nf in netflows.values():
            nf.close()
        for sf in sflows.values():
            sf.close()
        for ix in ipfixes.values():
            ix.close()
        await poller
        await revalidator
        if _protocol_timer[0] is not None:
            _protocol_timer[0].cancel()
        await openflow.stop()
        await server.stop()
    LOG.info("stopping: PMD threads, ports, namespaces")


def _limit_connections() -> None:
    """OpenFlow connections at most what the open-files limit leaves room for, now that EAL,
    the ports and the namespaces hold theirs (openflow.connection.set_connection_limit)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return
    in_use = len(os.listdir("/proc/self/fd"))
    limit = set_connection_limit(soft, in_use)
    if limit < MAX_CONNECTIONS:
        LOG.warning("at most %d open files (ulimit -n), %d in use: OpenFlow connections limited to %d",
                    soft, in_use, limit)


class FreezeSurvivors:
    """Python's cyclic collector, kept from walking the switch's long-lived objects again and
    again: after each full collection, what survived it is frozen (``gc.freeze``: out of the
    collector's sight), so the next full collection walks only what came since.  Rules from a
    stream of flow-mods (four objects each) and megaflows accumulate in the oldest generation;
    each full collection (every 25 % of growth) walked them all: ~30 % of a flow-mod's cost at
    100,000 rules.  Nothing garbage is frozen (the collection just took it all), but a cycle
    among frozen objects that becomes garbage later would be held: every UNFREEZE_AFTER seconds
    (CLOCK) the frozen objects are thawed into the oldest generation, so that the next full
    collection looks at them all once.

    The youngest generation is collected every ``YOUNG_THRESHOLD`` allocations (net) instead of
    Python's 700: a miss storm makes a ukey's few objects per setup, and at 700 the young
    collections and the middle ones they trigger took ~1 us of a setup's ~9.5 (setup-100k: 95,000
    -> 102,000 setups/s); a young collection walks at most that many objects (~1 ms), and young
    cyclic garbage waits that long to go.  ``install`` sets it and adds the policy to
    ``gc.callbacks``; ``remove`` puts the threshold back, takes the policy out and thaws
    everything.  Main thread (the collector runs on the thread that allocates: ours)."""

    UNFREEZE_AFTER = 600.0
    YOUNG_THRESHOLD = 100_000

    def __init__(self, clock=None):
        import time
        self.clock = clock or time.monotonic
        self.thawed_at = self.clock()
        self.thaws = 0

    def __call__(self, phase: str, info: dict) -> None:
        if phase != "stop" or info.get("generation") != 2:
            return
        now = self.clock()
        if now - self.thawed_at >= self.UNFREEZE_AFTER:
            gc.unfreeze()                # the next full collection looks at everything once
            self.thawed_at = now
            self.thaws += 1
        else:
            gc.freeze()

    def install(self) -> "FreezeSurvivors":
        self.threshold = gc.get_threshold()
        gc.set_threshold(self.YOUNG_THRESHOLD, *self.threshold[1:])
        gc.callbacks.append(self)
        return self

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)
            gc.set_threshold(*self.threshold)
        gc.unfreeze()


INTERACTIVE_SPIN_S = BUSY_POLL_US / 1e6   # how long the loop polls before it sleeps, after a peer's
                                          #   message, by default (the config's control.busy_poll_us)


class InteractiveSelector(selectors.EpollSelector):
    """The control loop's selector: within ``INTERACTIVE_SPIN_S`` of an OpenFlow message or a
    control-socket request, a wait for I/O first polls (epoll with no timeout, the core yielded
    between two polls) for up to that long, then sleeps for what is left of the loop's timeout.

    A peer in request-reply round trips (ovs-ofctl add-flows: a flow-mod, a barrier, its reply,
    100,000 times) sends its next message tens of microseconds after our reply.  Asleep, the
    control core halts; waking it again, on a virtual machine above all, cost our thread as much
    CPU as the flow-mod did (20,000 round trips: 72 us of CPU each with ovs-ofctl on the other
    core, 38 us on ours).  Polling keeps the core awake for the next message; ``sched_yield``
    between polls leaves the core to a peer that shares it.  Idle, or with a peer quiet for
    longer, the loop sleeps at once: the cost is at most this long a core per burst.  SPIN_S:
    how long (``control.busy_poll_us``; 0: never, plain epoll waits)."""

    def __init__(self, clock=time.monotonic, spin_s: float | None = None, yield_=os.sched_yield):
        super().__init__()
        self.clock = clock
        self.spin_s = INTERACTIVE_SPIN_S if spin_s is None else spin_s
        self.yield_ = yield_
        self.spins = 0                       # waits that polled first (a peer had just talked)

    def select(self, timeout: float | None = None):
        if timeout is not None and timeout <= 0 or not self.spin_s:
            return super().select(timeout)
        start = self.clock()
        if start - _last_talked() >= self.spin_s:
            return super().select(timeout)
        self.spins += 1
        end = start + (self.spin_s if timeout is None else min(self.spin_s, timeout))
        while True:
            ready = super().select(0)
            if ready:
                return ready
            now = self.clock()
            if now >= end:
                break
            self.yield_()
        return super().select(None if timeout is None else max(0.0, timeout - (now - start)))


def control_selector(config: Config) -> InteractiveSelector:
    """The control loop's selector for CONFIG: it polls for control.busy_poll_us."""
    return InteractiveSelector(spin_s=config.control_busy_poll_us / 1e6)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run(config: Config, socket_path: str | None = None, top: bool = False, checked: Checked | None = None) -> int:
    """Run the switch until SIGINT/SIGTERM or ``exit`` (with what `switch.check` built from
    CONFIG, when CHECKED: not built again).  Raises AlreadyRunning, before anything
    is touched, when another instance holds this control socket or a bridge's .mgmt socket."""
    socket_path = socket_path or config.control_socket
    instance = Instance(socket_path, list(config.bridges))
    instance.acquire()
    sweep_runtime_dirs()
    # Room for the OpenFlow connections it admits (openflow.connection.MAX_CONNECTIONS) beside
    # its own ports and sockets: the soft limit of open files up to the hard one.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = MAX_CONNECTIONS + 1024 if hard == resource.RLIM_INFINITY else min(hard, MAX_CONNECTIONS + 1024)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    # Until the event loop takes the signals over, SIGTERM unwinds like Ctrl-C: whatever start-up
    # has made (ports, namespaces) is taken down by the handlers on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    switch = Switch(config, netns_record=instance.netns_record, checked=checked)
    try:
        switch.start()
        # What start-up built (config, rules, ports) lives as long as the process: out of the
        # cyclic collector's sight, so that a full collection (triggered as megaflows accumulate)
        # does not walk every rule again; at 100k rules that was ~50 us per flow setup.
        gc.freeze()
        FreezeSurvivors().install()      # and what lives on, after each full collection
        _limit_connections()
        with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(control_selector(config))) as runner:
            runner.run(serve(switch, config, socket_path, top))
    except KeyboardInterrupt:
        LOG.info("stopped during start-up: what it had set up is removed")
    finally:
        # Stopping is not interrupted by a second signal: a half-stopped switch leaks more.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        try:
            switch.stop()
            if Eal.running():
                remove_runtime_dir(Eal.file_prefix())
        finally:
            instance.release()
    return 0
