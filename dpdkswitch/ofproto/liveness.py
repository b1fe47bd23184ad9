"""Port liveness: one ``may_enable`` per port, as Open vSwitch's port_run computes it.

``may_enable`` = carrier (the device's link state, or a patch port's being linked) and not
administratively down (port-mod OFPPC_PORT_DOWN) and every registered input that has a say
about the port (LACP, BFD and CFM register one each: a function of the OpenFlow port giving
True, False, or None for "no opinion on this port").  Inputs registered in one group are ORed
(BFD and CFM, group "oam", as Open vSwitch 3.1: a port with both is enabled while either says
so); groups and ungrouped inputs are ANDed.  The result is the port's
``PortEntry.live``, which fast-failover groups' ``watch_port`` read during translation and the
OpenFlow port status reports as OFPPS_LIVE; a change goes through ``Pipeline.set_port``, so
the revalidator's next pass translates the cached megaflows again.

Contract: the control thread only.  Cost: ``update`` is one call per registered input per port.
"""
from __future__ import annotations

from collections.abc import Callable


class Liveness:
    """The liveness inputs of one bridge's ports; PIPELINE: the bridge's ``Pipeline``."""

    def __init__(self, pipeline) -> None:
        self.p = pipeline
        self.carrier: dict[int, bool] = {}           # ofport -> link up (unknown: up)
        self.admin_down: set[int] = set()
        self.inputs: dict[str, Callable[[int], bool | None]] = {}
        self.groups: dict[str, str] = {}              # input name -> its group (ORed within)
        self.changes = 0                              # may_enable flips, all ports

    def register(self, name: str, fn: Callable[[int], bool | None], group: str | None = None) -> None:
        """A protocol's say on ports (FN(ofport): True, False, or None for no opinion)."""
        self.inputs[name] = fn
        if group is not None:
            self.groups[name] = group

    def unregister(self, name: str) -> None:
        self.inputs.pop(name, None)
        self.groups.pop(name, None)

    def may_enable(self, ofport: int) -> bool:
        if not self.carrier.get(ofport, True) or ofport in self.admin_down:
            return False
        grouped: dict[str, list[bool]] = {}
        for name, fn in self.inputs.items():
            say = fn(ofport)
            if say is None:
                continue
            if name in self.groups:
                grouped.setdefault(self.groups[name], []).append(say)
            elif not say:
                return False
        return all(any(says) for says in grouped.values())

    def set_carrier(self, ofport: int, up: bool) -> bool:
        """The device says its link is UP (or not); whether the port's may_enable changed."""
        self.carrier[ofport] = up
        return self.update(ofport)

    def set_admin_down(self, ofport: int, down: bool) -> bool:
        (self.admin_down.add if down else self.admin_down.discard)(ofport)
        return self.update(ofport)

    def forget(self, ofport: int) -> None:
        """The port left the bridge."""
        self.carrier.pop(ofport, None)
        self.admin_down.discard(ofport)

    def update(self, ofport: int | None = None) -> bool:
        """Recompute OFPORT's (default: every port's) may_enable into its PortEntry.live; a
        port whose value changed is set again in the pipeline (the megaflows that read it are
        revalidated).  Whether any changed."""
        ports = self.p.ports
        changed = False
        for n in ([ofport] if ofport is not None else list(ports)):
            e = ports.get(n)
            if e is None:
                continue
            live = self.may_enable(n)
            if e.live != live:
                e.live = live
                self.changes += 1
                self.p.set_port(e)
                changed = True
        return changed
