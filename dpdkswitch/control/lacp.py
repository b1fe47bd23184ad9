"""LACP commands on the control socket: ``lacp/show [PORT]`` and ``lacp/show-stats [PORT]``, as
Open vSwitch's (PORT: a bond's name).

Handlers run on the control thread (see control/__init__.py); they read the bridges' LACP bonds
(lacp.py) through their public calls.
"""
from __future__ import annotations

from ..switch import Switch
from . import CommandError, Commands


def register(commands: Commands, switch: Switch) -> None:
    def bonds(name: str | None):
        out = [b for br in switch.bridges.values() if br.lacp is not None
               for n, b in sorted(br.lacp.bonds.items()) if name is None or n == name]
        if name is not None and not out:
            raise CommandError("no such lacp object")
        return out

    def show(args: list[str]) -> str:
        return "\n".join(b.show() for b in bonds(args[0] if args else None))

    def show_stats(args: list[str]) -> str:
        return "\n".join(b.show_stats() for b in bonds(args[0] if args else None))

    commands.register("lacp/show", "[PORT]", "LACP of bonds: status, system, each member's actor and partner",
                      0, 1, show)
    commands.register("lacp/show-stats", "[PORT]", "LACP counters of bonds' members (PDUs, expiries, carrier)",
                      0, 1, show_stats)
