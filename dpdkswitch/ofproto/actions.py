"""OpenFlow actions and instructions as values: what the flow-string parser produces, the wire
codec encodes and decodes, and translation executes.

Immutable dataclasses, hashable, compared by value.  Port numbers are OpenFlow 1.3's 32-bit
ones (``OFPP_*``); the 1.0 codec maps its 16-bit reserved ports onto these.  Field names in
``SetField`` are the names of ``fields.FIELDS``.  Pure data; any thread.
"""
from __future__ import annotations

from dataclasses import dataclass

# Reserved ports, OpenFlow 1.3 numbering.
OFPP_MAX = 0xFFFFFF00
OFPP_IN_PORT = 0xFFFFFFF8
OFPP_TABLE = 0xFFFFFFF9
OFPP_NORMAL = 0xFFFFFFFA
OFPP_FLOOD = 0xFFFFFFFB
OFPP_ALL = 0xFFFFFFFC
OFPP_CONTROLLER = 0xFFFFFFFD
OFPP_LOCAL = 0xFFFFFFFE
OFPP_ANY = 0xFFFFFFFF
RESERVED_PORTS = {"in_port": OFPP_IN_PORT, "table": OFPP_TABLE, "normal": OFPP_NORMAL, "flood": OFPP_FLOOD,
                  "all": OFPP_ALL, "controller": OFPP_CONTROLLER, "local": OFPP_LOCAL, "any": OFPP_ANY}
OFPCML_NO_BUFFER = 0xFFFF        # controller max_len: send the whole packet


@dataclass(frozen=True)
class Output:
    port: int
    max_len: int = OFPCML_NO_BUFFER   # bytes to the controller, for port CONTROLLER


@dataclass(frozen=True)
class Group:
    group_id: int


@dataclass(frozen=True)
class SetField:
    field: str                 # a fields.FIELDS name
    value: int


@dataclass(frozen=True)
class PushVlan:
    ethertype: int = 0x8100


@dataclass(frozen=True)
class PopVlan:
    pass


@dataclass(frozen=True)
class SetQueue:
    queue_id: int


@dataclass(frozen=True)
class DecNwTtl:
    pass


@dataclass(frozen=True)
class SetNwTtl:
    ttl: int


@dataclass(frozen=True)
class CopyTtlOut:
    pass


@dataclass(frozen=True)
class CopyTtlIn:
    pass


Action = Output | Group | SetField | PushVlan | PopVlan | SetQueue | DecNwTtl | SetNwTtl | CopyTtlOut | CopyTtlIn


# Instructions (OpenFlow 1.3).  An OpenFlow 1.0 flow's actions are one ApplyActions.
@dataclass(frozen=True)
class ApplyActions:
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class WriteActions:
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class ClearActions:
    pass


@dataclass(frozen=True)
class WriteMetadata:
    value: int
    mask: int = 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True)
class GotoTable:
    table_id: int


@dataclass(frozen=True)
class Meter:
    meter_id: int


Instruction = ApplyActions | WriteActions | ClearActions | WriteMetadata | GotoTable | Meter

# The order OpenFlow 1.3 executes instructions in, whatever order they were given.
INSTRUCTION_ORDER = (Meter, ApplyActions, ClearActions, WriteActions, WriteMetadata, GotoTable)

# The order an action set executes in (OpenFlow 1.3 §5.10); Output/Group last.
ACTION_SET_ORDER = (CopyTtlIn, PopVlan, PushVlan, CopyTtlOut, DecNwTtl, SetNwTtl, SetField, SetQueue, Group,
                    Output)
