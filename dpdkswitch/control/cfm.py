"""CFM commands on the control socket: ``cfm/show [INTERFACE]``, ``cfm/set-fault [INTERFACE]
normal|false|true``, as Open vSwitch's.

Handlers run on the control thread (see control/__init__.py); they read or override the
bridges' CFM sessions (cfm.py) through their public calls.
"""
from __future__ import annotations

from ..switch import Switch
from . import CommandError, Commands


def register(commands: Commands, switch: Switch) -> None:
    def sessions(name: str | None):
        out = [(br, ofport, s) for br in switch.bridges.values() if br.cfm is not None
               for ofport, s in sorted(br.cfm.sessions.items()) if name is None or s.name == name]
        if name is not None and not out:
            raise CommandError("no such CFM object")
        return out

    def show(args: list[str]) -> str:
        return "\n".join(s.show() for _, _, s in sessions(args[0] if args else None)) or "no port has cfm"

    def set_fault(args: list[str]) -> str:
        value = args[-1]
        if value not in ("normal", "false", "true"):
            raise CommandError(f"unknown fault string {value!r} (normal, false or true)")
        for br, ofport, s in sessions(args[0] if len(args) == 2 else None):
            s.fault_override = None if value == "normal" else value == "true"
            br.pipeline.liveness.update(ofport)
        return "OK"

    commands.register("cfm/show", "[INTERFACE]", "CFM maintenance points: faults, interval, remote MPIDs", 0, 1, show)
    commands.register("cfm/set-fault", "[INTERFACE] normal|false|true",
                      "override a maintenance point's fault (its port's liveness), or normal", 1, 2, set_fault)
