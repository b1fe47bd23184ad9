"""When the control thread serves a datapath: one upcall wake-up, and the revalidator's passes.

Named after Open vSwitch's udpif (ofproto/ofproto-dpif-upcall.c), which owns a datapath's
upcall handler and revalidator threads.  Here both are duties of the one control thread, and
this module says what one turn of each does.  ``dpdkswitch run`` (app.py) drives these
functions from its asyncio loop, ``dpdkswitch bench`` (bench/forwarding.py) from a select()
loop of its own, so that a benchmark measures the switch under the control-thread work that
``run`` does.  The caller keeps the clock: these functions say when to come back; they never
sleep or schedule.

* ``upcall_wakeup(backer)``: the datapath's eventfd fired.  Take the upcalls (batches of up to
  ``UpcallHandler.max_batch``, fewer when upcalls are costly: a batch is sized by the
  handler's smoothed cost per upcall to what is left of the budget, ``BATCH_S`` at most) until none wait or
  ``UPCALL_BUDGET_S`` has passed (the caller then runs its other duties and comes back:
  ``again``); if a MAC was learned or moved meanwhile, ask
  for ``mac_change_pass`` within ``MAC_CHANGE_S`` (one pass for every change until it runs:
  coalesced), so the megaflows that depend on the MAC are translated again sooner than the
  next periodic pass; re-arm the eventfd, and say whether upcalls already wait again.  Between
  two batches the caller's ``between`` runs (``run``: the control protocols' due timers,
  ``Switch.run_protocols_due``), and a batch is sized to end when it wants to run again.
* ``periodic_pass(backers)``: every ``REVALIDATE_S`` (longer while passes are long): each
  datapath's revalidator pass (stats to rules, expiry, megaflows true to the tables), after a
  wake-up for the samples that wait (``samples_waiting``: sFlow's and IPFIX's upcalls wake
  the thread only once ``DPS_LAZY_WAKE`` of them wait, so they come in batches).
* ``pass_slices(backer)``: the same pass in steps of ``PASS_STEP_S`` at most, a generator that
  yields between steps (``run`` gives the loop a turn at each; Revalidator.step).

Contract: the control thread only (EAL's main lcore, the datapath's only writer).  Cost: a
wake-up is one translation per distinct flow key taken and a packet-out per upcall
(UpcallHandler.handle); a pass is Revalidator.run's (the flows whose counters moved, and those
a change touched, translated again).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from .revalidator import PassReport
from .switch import Backer

REVALIDATE_S = 0.5          # the periodic pass (Revalidator.interval stretches it)
MAC_CHANGE_S = 0.01         # a pass this soon after a MAC table change
UPCALL_BUDGET_S = 0.005     # an upcall wake-up's time at most (past its first batch), then the loop turns
BATCH_S = 0.001             # a batch's expected cost at most: the clock is read at least this often
INTERACTIVE_BUDGET_S = 0.001  # the wake-up's budget while a peer or a control client is talking
INTERACTIVE_S = 0.1         # ... that is, within this long of its last message
MIN_BATCH = 16              # upcalls a batch takes at least, however costly they are
PASS_STEP_S = 0.005         # a revalidator pass's step at most (past its first megaflow dump), likewise


@dataclass
class Wakeup:
    """What one upcall wake-up did, and what it asks of the caller."""
    handled: int = 0                     # upcalls taken
    batches: int = 0                     # UpcallHandler.handle() calls that took some
    mac_pass_in: float | None = None     # call mac_change_pass(backer) in this many seconds
    again: bool = False                  # upcalls wait already: wake up again without the eventfd


def upcall_wakeup(backer: Backer, budget_s: float | None = UPCALL_BUDGET_S,
                  between: Callable[[], float] | None = None) -> Wakeup:
    """The datapath's eventfd fired (or the last wake-up said ``again``): take the upcalls until
    none wait, or until BUDGET_S seconds have passed (so that a miss storm or a packet-in
    stream leaves the control socket, OpenFlow, timers and signals their turn; None: until
    none wait), then schedule and re-arm.  BETWEEN, if given, is called before the first batch
    and after every one, and returns the seconds until it wants to be called again: the
    control protocols' timers that are due (``Switch.run_protocols_due``), so a batch is sized
    to end by then (one upcall at least); a batch begins with the control protocols' frames, so
    what they received is in before their timers run."""
    w = Wakeup()
    try:
        os.read(backer.dp.upcall_fd(), 8)
    except BlockingIOError:
        pass
    h = backer.upcalls
    t0 = time.monotonic()
    until = between() if between is not None else None
    while True:
        limit = None
        if budget_s is not None:              # a batch sized to what is left of the budget, BATCH_S at most:
            # on a loaded machine the thread is preempted within a batch, and the wall clock the
            # budget counts runs on meanwhile; a short batch notices the budget is spent sooner.
            left = min(budget_s - (time.monotonic() - t0), BATCH_S)
            limit = max(MIN_BATCH, int(left / h.cost_s)) if left > 0 else MIN_BATCH
        if until is not None:                 # and to end when the protocols' timers are due
            limit = max(1, min(limit or h.max_batch, int(until / h.cost_s)))
        t = time.monotonic()
        n = h.handle(limit)
        if not n:
            break
        h.cost_s = 0.8 * h.cost_s + 0.2 * (time.monotonic() - t) / n
        w.handled += n
        w.batches += 1
        if between is not None:
            until = between()
        if budget_s is not None and time.monotonic() - t0 >= budget_s:
            break
    if any(p.macs.changed for p in backer.pipelines) and not backer.revalidation_due:
        backer.revalidation_due = True
        w.mac_pass_in = MAC_CHANGE_S
    w.again = bool(backer.dp.upcall_arm())
    return w


def mac_change_pass(backer: Backer) -> PassReport:
    """The pass a wake-up asked for after a MAC table change."""
    backer.revalidation_due = False
    return backer.revalidator.run()


def pass_slices(backer: Backer, budget_s: float = PASS_STEP_S, fresh: bool = False):
    """One revalidator pass of BACKER in steps of BUDGET_S at most: a generator that yields
    between steps.  With FRESH, a pass that began before the call (so before the change that
    asks for it) ends first, then one of its own runs.  A pass that another caller ends
    meanwhile (Revalidator.run, synchronous) ends this one too: that pass saw everything."""
    rev = backer.revalidator
    if fresh:
        while rev.in_pass:
            if rev.step(budget_s) is None:
                yield
    while rev.step(budget_s) is None:
        yield
        if not rev.in_pass:
            return


def next_pass_in(backers: list[Backer]) -> float:
    """Seconds to the next periodic pass (longer while passes are long)."""
    return max((b.revalidator.interval(REVALIDATE_S) for b in backers), default=REVALIDATE_S)


def samples_waiting(backer: Backer) -> bool:
    """Whether upcalls wait that did not wake the control thread: samples (sFlow, IPFIX) wait
    in the ring until DPS_LAZY_WAKE of them do; the periodic pass takes them first, so that
    what its exporters flush is complete to then."""
    return backer.dp.upcall_count() > 0


def periodic_pass(backers: list[Backer]) -> float:
    """Each datapath's periodic revalidator pass, after an upcall wake-up for the samples that
    wait; returns the seconds to the next one."""
    for backer in backers:
        if samples_waiting(backer):
            upcall_wakeup(backer)
        backer.revalidator.run()
    return next_pass_in(backers)
