"""Rapid spanning tree commands on the control socket: ``rstp/show [BRIDGE]``, ``rstp/tcn [BRIDGE]``.

Handlers run on the control thread (see control/__init__.py); each reads or pokes the bridges'
``Rstp`` (rstp.py) through its public calls.
"""
from __future__ import annotations

from ..datapath import DatapathError
from ..switch import Switch
from . import CommandError, Commands


def register(commands: Commands, switch: Switch) -> None:
    def with_rstp(args: list[str]):
        if args:
            try:
                brs = [switch.bridge(args[0])]
            except DatapathError as e:
                raise CommandError(str(e)) from None
            if brs[0].rstp is None:
                raise CommandError(f"bridge {args[0]}: no such RSTP object (rstp_enable is false)")
            return brs
        return [br for br in switch.bridges.values() if br.rstp is not None]

    def show(args: list[str]) -> str:
        out = []
        for br in with_rstp(args):
            br.run_protocols()
            out.append(br.rstp.show())
        return "\n".join(out) or "no bridge has rstp_enable"

    def tcn(args: list[str]) -> str:
        for br in with_rstp(args):
            br.run_protocols()
            br.rstp.tcn()
        return "OK"

    commands.register("rstp/show", "[BRIDGE]", "the rapid spanning tree: root, bridge, each port's role and state",
                      0, 1, show)
    commands.register("rstp/tcn", "[BRIDGE]", "signal a topology change (MAC tables flushed, TC flags sent)",
                      0, 1, tcn)
