"""Spanning tree commands on the control socket: ``stp/show [BRIDGE]``, ``stp/tcn [BRIDGE]``.

Handlers run on the control thread (see control/__init__.py); each reads or pokes the bridges'
``Stp`` (stp.py) through its public calls.
"""
from __future__ import annotations

from ..datapath import DatapathError
from ..switch import Switch
from . import CommandError, Commands


def register(commands: Commands, switch: Switch) -> None:
    def with_stp(args: list[str]):
        if args:
            try:
                brs = [switch.bridge(args[0])]
            except DatapathError as e:
                raise CommandError(str(e)) from None
            if brs[0].stp is None:
                raise CommandError(f"bridge {args[0]}: no such stp object (stp_enable is false)")
            return brs
        return [br for br in switch.bridges.values() if br.stp is not None]

    def show(args: list[str]) -> str:
        return "\n\n".join(br.stp.show() for br in with_stp(args)) or "no bridge has stp_enable"

    def tcn(args: list[str]) -> str:
        for br in with_stp(args):
            br.run_protocols()
            br.stp.tcn()
        return "OK"

    commands.register("stp/show", "[BRIDGE]", "the spanning tree: root, bridge, each port's role and state",
                      0, 1, show)
    commands.register("stp/tcn", "[BRIDGE]", "signal a topology change (MAC tables flushed, TCNs sent)", 0, 1, tcn)
