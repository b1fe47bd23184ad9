"""Bond commands on the control socket, as Open vSwitch's: ``bond/list``, ``bond/show [PORT]``,
``bond/migrate PORT HASH MEMBER``, ``bond/set-active-member PORT MEMBER``,
``bond/enable-member PORT MEMBER``, ``bond/disable-member PORT MEMBER``,
``bond/hash MAC [VLAN] [BASIS]``.

Handlers run on the control thread (see control/__init__.py); they read and steer the bridges'
bonds (bond.py) through their public calls.
"""
from __future__ import annotations

from ..bond import N_BUCKETS, slb_hash
from ..switch import Switch
from . import CommandError, Commands


def register(commands: Commands, switch: Switch) -> None:
    def find(name: str):
        for br in switch.bridges.values():
            if name in br.bonds:
                return br.bonds[name]
        raise CommandError("no such bond")

    def all_bonds():
        return [b for br in switch.bridges.values() for _, b in sorted(br.bonds.items())]

    def show(args: list[str]) -> str:
        return "\n".join(b.show() for b in ([find(args[0])] if args else all_bonds()))

    def list_(args: list[str]) -> str:
        return "\n".join(["bond\ttype\trecircID\tmembers"] + [b.list_line() for b in all_bonds()])

    def member_call(fn):
        def handler(args: list[str]) -> str:
            bond = find(args[0])
            try:
                return fn(bond, *args[1:])
            except KeyError:
                raise CommandError("no such member") from None
        return handler

    def migrate(bond, hash_, member) -> str:
        try:
            bucket = int(hash_, 0)
        except ValueError:
            raise CommandError("bad hash") from None
        if not 0 <= bucket < N_BUCKETS:
            raise CommandError("bad hash")
        out = bond.migrate(bucket, member)
        if out != "migrated":
            raise CommandError(out)
        return out

    def set_active(bond, member) -> str:
        out = bond.set_active(member)
        if out.startswith("cannot"):
            raise CommandError(out)
        return out

    def enable(flag: bool):
        def fn(bond, member) -> str:
            bond.force(member, flag)
            return "enabled" if flag else "disabled"
        return fn

    def hash_(args: list[str]) -> str:
        try:
            mac = int(args[0].replace(":", ""), 16)
            vlan = int(args[1]) if len(args) > 1 else 0
            basis = int(args[2]) if len(args) > 2 else 0
        except ValueError:
            raise CommandError("invalid mac, vlan or basis") from None
        if len(args[0].split(":")) != 6 or not 0 <= mac < 1 << 48 or not 0 <= vlan < 4096:
            raise CommandError("invalid mac, vlan or basis")
        return str(slb_hash(mac, vlan, basis) & (N_BUCKETS - 1))

    commands.register("bond/list", "", "every bond: its mode and members", 0, 0, list_)
    commands.register("bond/show", "[PORT]", "bonds: mode, LACP status, active member, members and their hash buckets' load",
                      0, 1, show)
    commands.register("bond/migrate", "PORT HASH MEMBER", "move a hash bucket (0..255) of a balance bond to a member",
                      3, 3, member_call(migrate))
    commands.register("bond/set-active-member", "PORT MEMBER", "make an enabled member the active one",
                      2, 2, member_call(set_active))
    commands.register("bond/enable-member", "PORT MEMBER", "enable a member, whatever its liveness says",
                      2, 2, member_call(enable(True)))
    commands.register("bond/disable-member", "PORT MEMBER", "disable a member, whatever its liveness says",
                      2, 2, member_call(enable(False)))
    commands.register("bond/hash", "MAC [VLAN] [BASIS]", "the balance-slb hash bucket of a MAC (and VLAN)",
                      1, 3, hash_)
