"""BFD commands on the control socket: ``bfd/show [INTERFACE]``, ``bfd/set-forwarding
[INTERFACE] normal|false|true``, as Open vSwitch's.

Handlers run on the control thread (see control/__init__.py); they read or override the
bridges' BFD sessions (bfd.py) through their public calls.
"""
from __future__ import annotations

from ..switch import Switch
from . import CommandError, Commands


def register(commands: Commands, switch: Switch) -> None:
    def sessions(name: str | None):
        out = []
        for br in switch.bridges.values():
            if br.bfd is None:
                continue
            for ofport, s in sorted(br.bfd.sessions.items()):
                if name is None or s.name == name:
                    out.append((br, ofport, s))
        if name is not None and not out:
            raise CommandError("no such bfd object")
        return out

    def show(args: list[str]) -> str:
        return "\n".join(s.show() for _, _, s in sessions(args[0] if args else None)) or "no port has bfd enabled"

    def set_forwarding(args: list[str]) -> str:
        value = args[-1]
        if value not in ("normal", "false", "true"):
            raise CommandError(f"unknown fault string {value!r} (normal, false or true)")
        for br, ofport, s in sessions(args[0] if len(args) == 2 else None):
            s.forwarding_override = None if value == "normal" else value == "true"
            br.pipeline.liveness.update(ofport)
        return "OK"

    commands.register("bfd/show", "[INTERFACE]", "BFD sessions: state, diagnostics, timers, the remote's", 0, 1, show)
    commands.register("bfd/set-forwarding", "[INTERFACE] normal|false|true",
                      "override a session's forwarding (its port's liveness), or normal", 1, 2, set_forwarding)
