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
    mask: int | None = None    # None: the whole field (masked: Open vSwitch's set_field:V/M->F)


# Open vSwitch's extension actions (ovs-actions(7)).  A subfield is (field name, first bit, bits),
# bit 0 the field's least significant one.
@dataclass(frozen=True)
class Resubmit:
    port: int = OFPP_IN_PORT   # the in_port the lookup sees (OFPP_IN_PORT: the current one)
    table: int = 0xFF          # 0xFF: the current table


@dataclass(frozen=True)
class Load:
    field: str
    ofs: int
    nbits: int
    value: int


@dataclass(frozen=True)
class Move:
    src: str
    src_ofs: int
    dst: str
    dst_ofs: int
    nbits: int


@dataclass(frozen=True)
class StackPush:
    field: str
    ofs: int
    nbits: int


@dataclass(frozen=True)
class StackPop:
    field: str
    ofs: int
    nbits: int


@dataclass(frozen=True)
class Note:
    data: bytes


@dataclass(frozen=True)
class Exit:
    pass


MULTIPATH_FIELDS = ("eth_src", "symmetric_l4", "symmetric_l3l4", "symmetric_l3l4+udp", "nw_src", "nw_dst",
                    "symmetric_l3")                    # NX_HASH_FIELDS_*, in wire order
MULTIPATH_ALGORITHMS = ("modulo_n", "hash_threshold", "hrw", "iter_hash")   # NX_MP_ALG_*


@dataclass(frozen=True)
class Multipath:
    """multipath(fields,basis,algorithm,n_links,arg,dst): a link 0..n_links-1 chosen from a hash
    of FIELDS (with BASIS) by ALGORITHM, written into DST (field, ofs, nbits)."""
    fields: str
    basis: int
    algorithm: str
    n_links: int
    arg: int
    dst: str
    ofs: int
    nbits: int


BUNDLE_ALGORITHMS = ("active_backup", "hrw")         # NX_BD_ALG_*, in wire order


@dataclass(frozen=True)
class Bundle:
    """bundle(fields,basis,algorithm,ofport,members:P,...): an output to one live member of
    MEMBERS, the first live one (active_backup) or the one a hash of FIELDS (with BASIS) picks
    (hrw); bundle_load's form writes the member's port number (0xffff: none) into DST (field,
    ofs, nbits) instead.  Liveness is the ports' may_enable (liveness.py)."""
    fields: str
    basis: int
    algorithm: str
    members: tuple[int, ...]
    dst: str | None = None
    ofs: int = 0
    nbits: int = 0


@dataclass(frozen=True)
class Clone:
    """clone(actions): ACTIONS run on a copy of the packet; what they change stays inside."""
    actions: tuple


@dataclass(frozen=True)
class FinTimeout:
    """fin_timeout(idle_timeout=,hard_timeout=): a TCP FIN or RST through the rule shortens its
    timeouts to these (0: that one unchanged)."""
    idle_timeout: int = 0
    hard_timeout: int = 0


@dataclass(frozen=True)
class Conjunction:
    """conjunction(id,k/n): the rule is clause K (1-based) of N of conjunctive match ID; a rule
    of these (and notes) alone is a soft match in its table (classifier.py)."""
    id: int
    clause: int
    n_clauses: int


@dataclass(frozen=True)
class Sample:
    """Open vSwitch's sample: PROBABILITY/65535 of the packets go to the IPFIX collector set
    COLLECTOR_SET_ID, as flow samples of OBS_DOMAIN_ID/OBS_POINT_ID (ovs-actions(7))."""
    probability: int = 65535
    collector_set_id: int = 0
    obs_domain_id: int = 0
    obs_point_id: int = 0


@dataclass(frozen=True)
class LearnSpec:
    """One part of a learn action: KIND match (the learned flow matches DST on the bits), load
    (its actions load them into DST) or output (its actions output to them); the bits come
    from SRC (field, first bit) in the packet, or are VALUE when SRC is None."""
    kind: str
    nbits: int
    src: tuple[str, int] | None
    value: int = 0
    dst: tuple[str, int] | None = None


LEARN_SEND_FLOW_REM, LEARN_DELETE_LEARNED, LEARN_WRITE_RESULT = 1, 2, 4      # NX_LEARN_F_*


@dataclass(frozen=True)
class Learn:
    """Open vSwitch's learn: a flow added to TABLE while translating (ovs-actions(7))."""
    table: int = 0
    specs: tuple[LearnSpec, ...] = ()
    idle_timeout: int = 0
    hard_timeout: int = 0
    priority: int = 0x8000
    cookie: int = 0
    flags: int = 0
    fin_idle_timeout: int = 0
    fin_hard_timeout: int = 0
    limit: int = 0                                   # at most this many flows of (table, cookie); 0: no limit
    result_dst: tuple[str, int] | None = None        # (field, bit): 1 if the flow is (or was) there, else 0


@dataclass(frozen=True)
class PushVlan:
    ethertype: int = 0x8100


@dataclass(frozen=True)
class PopVlan:
    pass


@dataclass(frozen=True)
class PushMpls:
    """push_mpls:ETHERTYPE (0x8847 or 0x8848): a new outer label stack entry, after the VLAN tags."""
    ethertype: int = 0x8847


@dataclass(frozen=True)
class PopMpls:
    """pop_mpls:ETHERTYPE: the outer label stack entry removed; ETHERTYPE is the frame's after it."""
    ethertype: int


@dataclass(frozen=True)
class SetMplsTtl:
    ttl: int


@dataclass(frozen=True)
class DecMplsTtl:
    pass


@dataclass(frozen=True)
class CheckPktLarger:
    """check_pkt_larger(PKT_LEN)->DST[OFS]: the bit is 1 when the frame is longer than PKT_LEN
    bytes, else 0; the datapath decides per frame (translation runs what follows for each)."""
    pkt_len: int
    dst: str
    ofs: int


@dataclass(frozen=True)
class PopQueue:
    """pop_queue: the queue back to the one the packet came with (no queues here: a no-op)."""


@dataclass(frozen=True)
class SetQueue:
    queue_id: int


@dataclass(frozen=True)
class DecNwTtl:
    """dec_ttl; IDS (Open vSwitch's dec_ttl(id,...)): the controller ids an expired TTL's
    packet-in goes to (None: plain dec_ttl, controller id 0)."""
    ids: tuple[int, ...] | None = None


PACKET_IN_REASONS = ("no_match", "action", "invalid_ttl", "action_set", "group", "packet_out")   # OFPR_*


@dataclass(frozen=True)
class Controller:
    """Open vSwitch's controller(reason=,max_len=,id=,userdata=): a packet-in with REASON to
    the connections whose controller id is ID, carrying USERDATA (NXT_PACKET_IN2 only).  The
    plain form (reason action, id 0, no userdata) is ``Output(OFPP_CONTROLLER, max_len)``."""
    max_len: int = OFPCML_NO_BUFFER
    id: int = 0
    reason: str = "action"
    userdata: bytes = b""


@dataclass(frozen=True)
class SetNwTtl:
    ttl: int


@dataclass(frozen=True)
class CopyTtlOut:
    pass


@dataclass(frozen=True)
class CopyTtlIn:
    pass


Action = (Output | Group | SetField | PushVlan | PopVlan | PushMpls | PopMpls | SetMplsTtl | DecMplsTtl | CheckPktLarger | PopQueue | SetQueue | DecNwTtl | SetNwTtl | CopyTtlOut | CopyTtlIn
          | Resubmit | Load | Move | StackPush | StackPop | Note | Exit | Learn | Conjunction | FinTimeout | Clone | Multipath | Sample
          | Controller | Bundle)


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

# An action set runs these first, the last of each kind, in this order (OpenFlow 1.3 §5.10).
_ONE_OF_EACH = (CopyTtlIn, PopVlan, PopMpls, PushMpls, PushVlan, CopyTtlOut, DecNwTtl, DecMplsTtl)   # before the sets
_SETS = (SetNwTtl, SetMplsTtl, SetField, Load, Move)
# Open vSwitch's extensions an action set may hold (ofpact_is_allowed_in_actions_set): load and
# move run with the set-fields; these may not be written into one (OFPBAC_UNSUPPORTED_ORDER).
NOT_IN_ACTION_SET = (CheckPktLarger, PopQueue, Resubmit, StackPush, StackPop, Note, Exit, Learn, Conjunction, FinTimeout, Clone, Multipath, Sample,
                     Controller, Bundle)


def conjunctions(instructions) -> tuple[tuple[int, int, int], ...]:
    """(id, clause, n_clauses) of each conjunction action, when INSTRUCTIONS are conjunction
    actions (and notes) only, as Open vSwitch requires of a conjunctive rule; () otherwise."""
    out = []
    for ins in instructions:
        if not isinstance(ins, ApplyActions):
            return ()
        for a in ins.actions:
            if isinstance(a, Conjunction):
                out.append((a.id, a.clause, a.n_clauses))
            elif not isinstance(a, Note):
                return ()
    return tuple(out)


def mixes_conjunction(instructions) -> bool:
    """True if INSTRUCTIONS have a conjunction action beside anything but conjunctions and notes
    (Open vSwitch refuses such a rule)."""
    has = any(isinstance(a, Conjunction) for ins in instructions if isinstance(ins, (ApplyActions, WriteActions))
              for a in ins.actions)
    return has and not conjunctions(instructions)


def execution_order(action_set) -> tuple[Action, ...]:
    """The action list an action set runs as (OpenFlow 1.3 §5.10, as Open vSwitch's
    ofpacts_execute_action_set): ACTION_SET holds actions in the order they were written (a
    later one replaces an earlier one of its kind); what runs is the last copy_ttl_in, pop_vlan,
    pop_mpls, push_mpls, push_vlan, copy_ttl_out, dec_ttl and dec_mpls_ttl, then every set-field,
    mod_nw_ttl and set_mpls_ttl in the order
    written (so the last value of each field), the last set_queue, then the last group, or
    else the last output.  Without a group or an output nothing runs at all: a packet that
    goes nowhere needs no change.  Group buckets are action sets too."""
    last: dict[type, Action] = {}
    sets = []
    for a in action_set:
        if isinstance(a, _SETS):
            sets.append(a)
        else:
            last[type(a)] = a
    end = last.get(Group) or last.get(Output)
    if end is None:
        return ()
    return (*(last[t] for t in _ONE_OF_EACH if t in last), *sets,
            *((last[SetQueue],) if SetQueue in last else ()), end)
