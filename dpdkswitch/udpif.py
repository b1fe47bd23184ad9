"""When the control thread serves a datapath: one upcall wake-up, and the revalidator's passes.

Named after Open vSwitch's udpif (ofproto/ofproto-dpif-upcall.c), which owns a datapath's
upcall handler and revalidator threads.  Here both are duties of the one control thread, and
this module says what one turn of each does.  ``dpdkswitch run`` (app.py) drives these
functions from its asyncio loop, ``dpdkswitch bench`` (bench/forwarding.py) from a select()
loop of its own, so that a benchmark measures the switch under the control-thread work that
``run`` does.  The caller keeps the clock: these functions say when to come back; they never
sleep or schedule.

* ``upcall_wakeup(backer)``: the datapath's eventfd fired.  Take the upcalls (batches of up to
  ``UpcallHandler.max_batch``) until none wait; if a MAC was learned or moved meanwhile, ask
  for ``mac_change_pass`` within ``MAC_CHANGE_S`` (one pass for every change until it runs:
  coalesced), so the megaflows that depend on the MAC are translated again sooner than the
  next periodic pass; re-arm the eventfd, and say whether upcalls already wait again.
* ``periodic_pass(backers)``: every ``REVALIDATE_S`` (longer while passes are long): each
  datapath's revalidator pass (stats to rules, expiry, megaflows true to the tables).

Contract: the control thread only (EAL's main lcore, the datapath's only writer).  Cost: a
wake-up is one translation per distinct flow key taken and a packet-out per upcall
(UpcallHandler.handle); a pass is Revalidator.run's (the flows whose counters moved, and those
a change touched, translated again).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

from .revalidator import PassReport
from .switch import Backer

REVALIDATE_S = 0.5          # the periodic pass (Revalidator.interval stretches it)
MAC_CHANGE_S = 0.01         # a pass this soon after a MAC table change


@dataclass
class Wakeup:
    """What one upcall wake-up did, and what it asks of the caller."""
    handled: int = 0                     # upcalls taken
    batches: int = 0                     # UpcallHandler.handle() calls that took some
    mac_pass_in: float | None = None     # call mac_change_pass(backer) in this many seconds
    again: bool = False                  # upcalls wait already: wake up again without the eventfd


def upcall_wakeup(backer: Backer, budget_s: float | None = None) -> Wakeup:
    """The datapath's eventfd fired (or the last wake-up said ``again``): take the upcalls until
    none wait, or until BUDGET_S seconds have passed (a caller whose own clock must keep
    running through a miss storm; ``run`` gives none), then schedule and re-arm."""
    w = Wakeup()
    try:
        os.read(backer.dp.upcall_fd(), 8)
    except BlockingIOError:
        pass
    t0 = time.monotonic() if budget_s is not None else 0.0
    while n := backer.upcalls.handle():
        w.handled += n
        w.batches += 1
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


def periodic_pass(backers: list[Backer]) -> float:
    """Each datapath's periodic revalidator pass; returns the seconds to the next one."""
    for backer in backers:
        backer.revalidator.run()
    return max((b.revalidator.interval(REVALIDATE_S) for b in backers), default=REVALIDATE_S)
