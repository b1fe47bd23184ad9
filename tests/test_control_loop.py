"""The control loop's selector (app.InteractiveSelector): right after an OpenFlow message or a
control-socket request it polls before it sleeps, for a bounded time, yielding the core between
two polls; otherwise it sleeps at once, and it never waits past the loop's timeout.  A manual
clock and a recording yield drive it; the sockets are a real socketpair.  No EAL."""
from __future__ import annotations

import selectors
import socket

import pytest

from dpdkswitch import config
from dpdkswitch.app import InteractiveSelector, control_selector
from dpdkswitch.control import Server
from dpdkswitch.openflow.connection import OFConnection


class Recorded(selectors.EpollSelector):
    """Below InteractiveSelector in the MRO: records every epoll wait's timeout."""

    def __init__(self):
        super().__init__()
        self.waits: list[float | None] = []

    def select(self, timeout=None):
        self.waits.append(timeout)
        return super().select(timeout)


class Sel(InteractiveSelector, Recorded):
    pass


@pytest.fixture
def rig(monkeypatch):
    now = [1000.0]
    yields = []
    monkeypatch.setattr(OFConnection, "last_message", 0.0)
    monkeypatch.setattr(Server, "last_request", 0.0)

    def clock():
        now[0] += 0.0001                     # every reading of the clock: 100 us later
        return now[0]
    a, b = socket.socketpair()
    sel = Sel(clock=clock, spin_s=0.0005, yield_=lambda: yields.append(now[0]))
    sel.register(a, selectors.EVENT_READ)
    yield sel, now, yields, a, b
    sel.close()
    a.close()
    b.close()


def test_a_quiet_peer_makes_the_loop_sleep_at_once(rig):
    sel, now, yields, a, b = rig
    OFConnection.last_message = now[0] - 0.01          # 10 ms ago: longer than the spin
    assert sel.select(0.001) == []
    assert sel.waits == [0.001] and yields == [] and sel.spins == 0


def test_after_a_message_the_loop_polls_and_takes_the_next_one_without_sleeping(rig):
    sel, now, yields, a, b = rig
    OFConnection.last_message = now[0]
    sel.yield_ = lambda: (yields.append(now[0]), len(yields) == 3 and b.send(b"x"))
    ready = sel.select(5.0)                          # the loop's next timer is far
    assert [k.fileobj for k, _ in ready] == [a]
    assert sel.waits == [0, 0, 0, 0] and len(yields) == 3 and sel.spins == 1


def test_the_poll_is_bounded_and_the_sleep_keeps_the_loops_timeout(rig):
    sel, now, yields, a, b = rig
    Server.last_request = now[0]                      # a control-socket request counts too
    assert sel.select(0.002) == []
    polls, sleep = sel.waits[:-1], sel.waits[-1]
    assert polls == [0] * len(polls) and 1 <= len(yields) < len(polls) <= 6      # 0.5 ms of 100 us readings
    assert 0.002 - 0.0007 <= sleep <= 0.002 - 0.0005 + 1e-9                     # what the poll left
    # A timeout shorter than the spin bounds the poll: it never waits past the loop's timer.
    sel.waits.clear()
    Server.last_request = now[0]
    assert sel.select(0.0002) == []
    assert len(sel.waits) <= 3 and sel.waits[-1] <= 1e-9


def test_data_already_there_is_returned_by_the_first_poll(rig):
    sel, now, yields, a, b = rig
    b.send(b"x")
    OFConnection.last_message = now[0]
    assert [k.fileobj for k, _ in sel.select(None)] == [a]          # no timer at all
    assert sel.waits == [0] and yields == []


CONFIG = "bridges:\n  br0:\n    ports:\n      p1: {device: net_ring0, ofport: 1}\n"


def test_busy_poll_us_sets_how_long_the_loop_polls_and_0_turns_it_off(monkeypatch):
    """control.busy_poll_us: 500 us unless the config says; 0: a peer that just talked still
    gets a plain wait, no poll and no yield."""
    assert control_selector(config.loads(CONFIG)).spin_s == pytest.approx(0.0005)
    assert control_selector(config.loads("control: {busy_poll_us: 2000}\n" + CONFIG)).spin_s == pytest.approx(0.002)
    sel = control_selector(config.loads("control: {busy_poll_us: 0}\n" + CONFIG))
    yields = []
    sel.yield_ = lambda: yields.append(1)
    monkeypatch.setattr(OFConnection, "last_message", sel.clock())     # a peer talked just now
    a, b = socket.socketpair()
    try:
        sel.register(a, selectors.EVENT_READ)
        assert sel.select(0.01) == [] and yields == [] and sel.spins == 0
    finally:
        sel.close()
        a.close()
        b.close()
