"""Translation: a packet's flow key through the OpenFlow pipeline, to datapath actions plus the
megaflow mask that makes them valid for every packet it covers.

In: the datapath flow key of a missed packet (in_port is a datapath port).  Out
(``Translation``): datapath actions (``datapath.odp``), the wildcards — every key bit a
decision looked at, from classifier lookups (see classifier.py) and from actions that read the
packet (dec_ttl, select groups, prerequisites of set-field, VLAN presence) — packet-ins (as
userspace actions, so they stay in the slow path), errors, and the side effects, recorded and
not done: an xlate cache (``XlateCache``) of the rules, tables, groups, mirrors, patch ports and
MACs used and the MACs NORMAL learns, bridge by bridge, which ``Translation.commit`` replays
through each owner's own function (and ``XlateCache.push_stats`` again for cached traffic).
Translating changes nothing else, with one exception: a packet-in context not seen before gets
its cookie in the ``PacketInRegistry`` (an interning: the same context keeps the same cookie,
so translating again changes nothing), so tracing and revalidation translate freely.

**Kept translations.**  When the input bridge's first table matches a rule whose actions, the
action set and all, read no bit of the packet (an output to a port, a drop: no NORMAL, no
group, no packet-in, no header change that depends on the packet), the datapath actions are a
function of the rule, the input port and the bridge's state alone.  Translation then keeps
them on the rule (``FlowEntry.kept``: ``Kept``, stamped with the datapath input port and the
pipeline version), and the next translation that matches the rule from that port at that
version does the lookup (its wildcards are the packet's own) and takes the kept actions
instead of running the rule's instructions again.  The same translator produced them: there is
no second definition of what a rule does.  Any change to the bridge bumps the version, so a
kept translation never outlives what it was made from.

Header changes are tracked on a copy of the flow and *committed* as datapath set/push/pop
actions only where they matter (before an output, a userspace action or a group), the way
Open vSwitch's commit_odp_actions does.  Pure Python; control thread.  Cost: one classifier
lookup per table visited plus a few field compares per output.
"""
from __future__ import annotations

import functools

import zlib
from dataclasses import dataclass, field

from ..datapath import odp
from ..flowkey import KEY_DTYPE, KEY_SIZE
from .actions import Bundle as BundleAction
from .actions import (INSTRUCTION_ORDER, ApplyActions, ClearActions, CopyTtlIn, CopyTtlOut,
                      Clone, Controller, DecNwTtl, Exit, FinTimeout, GotoTable, Multipath, Sample, Group, LEARN_SEND_FLOW_REM, Learn, Load, Meter, Move,
                      OFPCML_NO_BUFFER, OFPP_ALL,
                      OFPP_CONTROLLER, OFPP_FLOOD, OFPP_IN_PORT, OFPP_LOCAL, OFPP_MAX, OFPP_NORMAL, OFPP_TABLE, Output,
                      PopVlan, PushVlan, Resubmit, SetField, SetNwTtl, SetQueue, StackPop, StackPush, WriteActions,
                      WriteMetadata, execution_order, DecMplsTtl, PopMpls, PushMpls, SetMplsTtl, CheckPktLarger,
                      PopQueue)
from .classifier import Wildcards, key_int
from .match import Match, MatchError
from .fields import BY_NAME, CONJ_ID_SHIFT, FRAG_LATER, STAGE_OF_MEMBER, VLAN_CFI, prereqs_of
from .flowstr import FlowSpec, format_actions, format_match
from .normal import Bundle, is_reserved
from .pipeline import FlowEntry, Pipeline, PortEntry
from .special import SpecialIn, is_bpdu

MAX_DEPTH = 64
MAX_RESUBMITS = MAX_DEPTH * MAX_DEPTH        # as Open vSwitch: resubmits in one translation
U64 = (1 << 64) - 1
OFPP10_MAX = 0xFF00                          # OpenFlow 1.0 reserved ports start here (NXM_OF_IN_PORT)
_PKT_MARK = BY_NAME["pkt_mark"]
_VECTOR = (1 << CONJ_ID_SHIFT) - 1           # the pipeline vector a packet-in reports (conj_id is the lookup's)
# Datapath actions one translation may make, nested ones counted: the PMD runs them all on every
# frame of the flow, so a chain of tables or groups of big rules (each at most MAX_ACTIONS) is
# bounded too.  Past it the translation fails and the frame is dropped, as Open vSwitch drops a
# flow whose datapath actions grow too large.
MAX_DP_ACTIONS = 16384
MAX_SHAPES = 4096                    # kept translations by shape remembered (Translator._shapes)
NO_TABLE = 0xFF                      # OpenFlow's OFPTT_ALL: the table of a packet-out's packet-ins
F = BY_NAME
IN_PORT = F["in_port"]
RECIRC_ID = F["recirc_id"]
IP_FRAG = F["ip_frag"]
DP_HASH = F["dp_hash"]

def _ofs(member: str) -> int:
    return KEY_DTYPE.fields[member][1]


_TCI = [(_ofs("vlan_tci") + 2 * i, _ofs("vlan_tci") + 2 * i + 2) for i in range(2)]   # outer, inner
_TPID = [(_ofs("vlan_tpid") + 2 * i, _ofs("vlan_tpid") + 2 * i + 2) for i in range(2)]
_VLAN_BYTES = (slice(_TCI[0][0], _TCI[1][1]), slice(_TPID[0][0], _TPID[1][1]))   # both tags' TCIs, TPIDs
_ETH = slice(_ofs("eth_dst"), _ofs("eth_src") + 6)                                  # dst, src
_SRC, _DST, _LABEL, _TOS, _TTL = _ofs("nw_src"), _ofs("nw_dst"), _ofs("ipv6_label"), _ofs("nw_tos"), _ofs("nw_ttl")
_PORTS = slice(_ofs("tp_src"), _ofs("tp_dst") + 2)
_PORTS_WC = Wildcards()                             # the L4 ports' bits, as wildcards
_IN_PORT_MASK = IN_PORT.key_ints(0, IN_PORT.all_ones)[1]      # in_port's bits in a key int
_RECIRC_FRAG = RECIRC_ID.key_ints(0, RECIRC_ID.all_ones)[1] | IP_FRAG.key_ints(0, IP_FRAG.all_ones)[1]
_PORTS_WC.unwildcard(F["tcp_src"])                  # tp_src, tp_dst whole
_PORTS_WC.unwildcard(F["tcp_dst"])
_PROTO, _SHA, _THA, _NDT = _ofs("nw_proto"), _ofs("arp_sha"), _ofs("arp_tha"), _ofs("nd_target")
_MPLS = slice(_ofs("mpls_lse"), _ofs("mpls_lse") + 4)
_L3_L4 = slice(_SRC, _MPLS.start)                   # what an MPLS packet's key leaves zero (opaque)
MPLS_TYPES = (0x8847, 0x8848)
assert _TTL == _TOS + 1


@dataclass(frozen=True)
class PacketIn:
    reason: str                      # actions.PACKET_IN_REASONS: no_match, action, invalid_ttl, ...
    table_id: int
    cookie: int
    max_len: int
    metadata: int
    bridge: str = ""                 # the bridge whose pipeline sent it (patch ports: not the input's)
    in_port: int = 0                 # its OpenFlow input port there
    controller_id: int = 0           # only the connections with this controller id get it
    userdata: bytes = b""            # controller(userdata=...): NXT_PACKET_IN2 carries it
    vector: int = 0                  # the pipeline vector (metadata, pkt_mark, registers) when sent


@dataclass(frozen=True)
class FlowSampleIn:
    """What an OpenFlow ``sample`` action's upcall stands for (its cookie names it in the
    registry): the bridge whose pipeline ran it and the action's arguments (ipfix.py)."""
    bridge: str
    probability: int
    collector_set_id: int
    obs_domain_id: int
    obs_point_id: int


class PacketInRegistry:
    """Packet-in contexts by a small integer, the userspace action's cookie.  Translation adds
    a context the first time it makes it (its one side effect not recorded in the xlate cache);
    a context keeps its cookie, so translating the same flow again adds nothing."""

    def __init__(self) -> None:
        self.by_id: list = []                      # PacketIn, or SpecialIn (special.py)
        self.ids: dict[PacketIn, int] = {}

    def id_of(self, pi: "PacketIn | SpecialIn | FlowSampleIn") -> int:
        if pi not in self.ids:
            self.ids[pi] = len(self.by_id)
            self.by_id.append(pi)
        return self.ids[pi]

    def get(self, cookie: int) -> "PacketIn | SpecialIn | FlowSampleIn | None":
        return self.by_id[cookie] if 0 <= cookie < len(self.by_id) else None


@dataclass(frozen=True)
class BondRecirc:
    """The context of a balance-tcp bond's recirculation (interned in the ``PacketInRegistry``:
    its recirc_id is its id + 1): the frame, its headers as it leaves, comes back with a
    dp_hash, and the bond's bucket ``dp_hash & 0xff`` names the member (Open vSwitch's
    post-recirculation rules, here translated on a miss)."""
    bridge: str
    bond: str


@dataclass(frozen=True)
class Unroll:
    """In frozen actions: the table and cookie of the rule the actions after it belong to (the
    packet-ins they make say so), as Open vSwitch's OFPACT_UNROLL_XLATE."""
    table_id: int
    cookie: int


@dataclass(frozen=True)
class Frozen:
    """A translation frozen for recirculation (Open vSwitch's frozen state, interned in the
    ``PacketInRegistry``: its recirc_id is its id + 1): after pop_mpls the headers under the
    label are unknown to translation, so an action that needs them stops it there; the frame
    recirculates, is parsed again, and translation goes on from ITEMS (the actions and
    instructions left, innermost rule's first, each rule's after an ``Unroll``) with the
    pipeline state it had: the bridge, the input port, the pipeline vector, the field stack and
    the action set (run at the end when RUN_ACTION_SET: the freeze was in the tables' actions)."""
    bridge: str
    in_ofport: int
    items: tuple
    metadata: int
    stack: tuple
    action_set: tuple
    run_action_set: bool


def _needs_headers(a) -> bool:
    """Whether action A needs the headers under a popped MPLS label (Open vSwitch's
    recirc_for_mpls): outputs, set_queue, groups and writes of fields below L3 do not; every
    other action does (as Open vSwitch, for simplicity)."""
    if isinstance(a, (Output, SetQueue, Group)):
        return False
    if isinstance(a, (SetField, Load)):
        f = F[a.field]
        return f.member is not None and STAGE_OF_MEMBER[f.member] >= 2
    return True


@dataclass(eq=False, slots=True)
class Visit:
    """What translation used and did in one bridge's pipeline: the input bridge's, then one per
    patch port crossed (in the order crossed).  Its side effects are replayed from here through
    their owners (``learn``, ``credit``), and a change to anything it used makes the megaflow
    due for revalidation."""
    pipeline: Pipeline
    entries: list[FlowEntry] = field(default_factory=list)
    tables: list[int] = field(default_factory=list)
    groups: list[tuple[int, int]] = field(default_factory=list)   # (group id, bucket index)
    mirrors: list[int] = field(default_factory=list)              # indexes into pipeline.mirrors
    macs: list[tuple[int, int]] = field(default_factory=list)          # (vlan, mac) NORMAL looked up
    learns: list[tuple[int, int, int, bool]] = field(default_factory=list)  # (vlan, mac, ofport, garp)
    learned: list = field(default_factory=list)       # (FlowSpec, limit) the learn action adds
    limits: list = field(default_factory=list)        # (table, cookie) a learn's limit counted rules of
    fins: list = field(default_factory=list)          # (rule, idle, hard): fin_timeout on a FIN/RST
    clauses: list = field(default_factory=list)       # conjunctive (soft) rules the lookups consulted
    bonds: list[tuple[Bundle, int]] = field(default_factory=list)       # (bond, bucket) NORMAL chose
    patch: tuple[PortEntry, PortEntry] | None = None              # (left by, entered by): not for the first
    version: int = -1        # the pipeline's version when translated (or last found still valid)

    @classmethod
    def sealed(cls, pipeline: Pipeline, entries: tuple, tables: tuple, version: int) -> "Visit":
        """A sealed visit of ENTRIES in TABLES and nothing else (a kept translation's xlate
        cache; ENTRIES and TABLES may be tuples: nothing is added to a sealed visit): every field set by name, without
        the generated __init__'s keyword parsing (a third of its cost; checked at import to
        set them all)."""
        v = _new(cls)
        v.pipeline, v.entries, v.tables, v.version = pipeline, entries, tables, version
        v.groups = v.mirrors = v.macs = v.learns = v.limits = v.fins = v.clauses = v.bonds = ()
        v.learned, v.patch = [], None          # (as seal leaves it)
        return v

    def seal(self) -> None:
        """Translation is done with it: the lists it left empty become the one empty tuple (a
        ukey keeps its visits: fewer objects to keep and for the cyclic GC to walk)."""
        if not self.groups:
            self.groups = ()
        if not self.mirrors:
            self.mirrors = ()
        if not self.macs:
            self.macs = ()
        if not self.learns:
            self.learns = ()
        if not self.fins:
            self.fins = ()
        if not self.clauses:
            self.clauses = ()
        if not self.bonds:
            self.bonds = ()
        if not self.limits:
            self.limits = ()

    def learn(self, now: float) -> None:
        """NORMAL learns the source MACs it saw, in this bridge's MAC table (a move, a GARP lock);
        the learn action's flows are added (or refreshed) through the pipeline."""
        for spec, limit in self.learned:
            self.pipeline.learn(spec, limit)
        if self.learns:
            macs = self.pipeline.macs
            for vlan, mac, port, garp in self.learns:
                macs.learn(vlan, mac, port, now, garp)

    def credit(self, packets: int, nbytes: int, used: float) -> None:
        """PACKETS (NBYTES, the last at USED) to what translation used here, each through its
        owner: rules, tables, groups and their buckets, mirrors, the patch port it came in by
        and the one it left by; and NORMAL's source MACs stay learned (never moved: a host may
        have moved since the packets were counted)."""
        p = self.pipeline
        if self.learns:
            for vlan, mac, port, _ in self.learns:
                p.macs.refresh(vlan, mac, port, used)
        if packets and (self.learned or self.fins):
            for spec, limit in self.learned:    # cached traffic keeps its learned flows (Open vSwitch's XC_LEARN)
                p.learn(spec, limit)
            for e, idle, hard in self.fins:     # FINs and RSTs through fin_timeout (XC_FIN_TIMEOUT)
                p.reduce_timeouts(e, idle, hard)
        entries, tables = self.entries, p.tables
        if len(entries) == 1 and len(self.tables) == 1 and entries[0].table_id == self.tables[0]:
            entries[0].credit(packets, nbytes, used)         # the common case: one table, its rule
            tables[self.tables[0]].count(packets, packets)
        else:
            for e in entries:
                e.credit(packets, nbytes, used)
            for tid in self.tables:
                tables[tid].count(packets)
            for tid in {e.table_id for e in entries}:        # a table counts a packet matched once
                tables[tid].count(0, packets)
        for i in self.mirrors:
            if i < len(p.mirrors):
                p.mirrors[i].count(packets, nbytes)
        for gid, bucket in self.groups:
            g = p.groups.get(gid)
            if g is not None:
                g.credit(bucket, packets, nbytes)
        if self.patch is not None:
            left, entered = self.patch
            left.count_tx(packets, nbytes)
            entered.count_rx(packets, nbytes)
        for bond, bucket in self.bonds:
            bond.account(bucket, nbytes)


_new = object.__new__
_TABLE_IDS = [(t,) for t in range(256)]     # a sealed visit's tables, one tuple per table id
assert all(hasattr(Visit.sealed(None, (), (), 0), f) for f in Visit.__slots__), "Visit.sealed misses a field"


class XlateCache(list[Visit]):
    """A translation's side effects, to replay through their owners (Open vSwitch's xlate cache,
    ofproto-dpif-xlate-cache.c): its ``Visit``s, the input bridge's first.  ``commit`` replays
    those of the miss it was translated for; ``push_stats`` the stats of packets that took the
    translation since: the datapath counters of its megaflow (the revalidator), or misses the
    megaflow covered.  Translating has no other side effect of its own than the interning of
    new packet-in contexts (``PacketInRegistry.id_of``)."""

    def commit(self, now: float, packets: int, nbytes: int) -> None:
        """A miss of PACKETS (NBYTES) at NOW (seconds): NORMAL learns the MACs it saw, and the
        packets count as missed (``push_stats``)."""
        self.learn(now)
        self.push_stats(packets, nbytes, now, missed=True)

    def learn(self, now: float) -> None:
        """The learning side effects alone, at NOW (seconds): NORMAL's MACs and the learn
        action's flows, no packet counted (``ofproto/trace -generate``, as Open vSwitch's
        trace of a generated packet, which learns but counts nothing)."""
        for v in self:
            v.learn(now)

    def push_stats(self, packets: int, nbytes: int, used: float, missed: bool = False) -> None:
        """PACKETS (NBYTES, the last at USED, seconds) took the translation: they count in the
        input bridge's lookups, as hits in the datapath or MISSED into the slow path, and for
        what translation used (``Visit.credit``)."""
        if missed:
            self[0].pipeline.count_lookups(missed=packets)
        else:
            self[0].pipeline.count_lookups(hit=packets)
        for v in self:
            v.credit(packets, nbytes, used)


class Kept:
    """A rule's kept translation (see the module's docstring): its datapath actions from datapath
    input port DP_IN_PORT at pipeline VERSION, and its xlate cache (one visit, the rule: the
    same side effects for every packet that takes it, so its translations share it; the
    revalidator never changes a shared visit in the middle of a pass)."""

    __slots__ = ("dp_in_port", "version", "actions", "visits", "encoded")

    def __init__(self, dp_in_port: int, version: int, actions: tuple, visits: "XlateCache"):
        self.dp_in_port, self.version, self.actions = dp_in_port, version, actions
        self.visits = visits             # the xlate cache of every translation that takes it
        self.encoded: bytes | None = None

    def encode(self) -> bytes:
        """The actions as the datapath takes them (encoded once)."""
        if self.encoded is None:
            self.encoded = odp.encode(self.actions)
        return self.encoded


@dataclass(slots=True)
class Translation:
    actions: list = field(default_factory=list)
    wc: Wildcards = field(default_factory=Wildcards)
    visits: XlateCache = field(default_factory=XlateCache)   # what it used and did, bridge by bridge
    packet_ins: list[PacketIn] = field(default_factory=list)
    error: str | None = None
    peer_errors: list[str] = field(default_factory=list)   # errors in bridges behind patch ports
    trace: list[str] = field(default_factory=list)
    kept: Kept | None = None         # the rule's kept translation it took its actions from

    def encoded(self) -> bytes:
        """The datapath actions as the datapath takes them (a kept translation's, encoded once)."""
        return odp.encode(self.actions) if self.kept is None else self.kept.encode()

    @property
    def entries(self) -> list[FlowEntry]:
        """Every rule matched, in every bridge crossed."""
        return [e for v in self.visits for e in v.entries]

    # The input bridge's part (the only one without patch ports).
    tables = property(lambda self: self.visits[0].tables)
    groups = property(lambda self: self.visits[0].groups)
    mirrors = property(lambda self: self.visits[0].mirrors)
    macs = property(lambda self: self.visits[0].macs)
    learns = property(lambda self: self.visits[0].learns)

    def commit(self, now: float, packets: int, nbytes: int) -> None:
        """The side effects of translating a miss of PACKETS (NBYTES) at NOW (seconds), through
        their owners (``XlateCache.commit``; a kept translation learns nothing, by definition:
        its stats alone)."""
        if self.kept is not None:
            self.visits.push_stats(packets, nbytes, now, missed=True)
        else:
            self.visits.commit(now, packets, nbytes)

    def megaflow_mask(self) -> bytes:
        """The wildcards as a datapath mask; in_port and recirc_id are always exact."""
        return megaflow_mask(self.wc.key)


def megaflow_mask(wc_key: int) -> bytes:
    """Wildcards over the key (WC_KEY, a big-endian int) as a datapath mask; in_port and
    recirc_id are always exact."""
    m = bytearray(wc_key.to_bytes(KEY_SIZE, "big"))
    m[0:8] = b"\xff" * 8
    return bytes(m)


def first_lookup_applies(p: Pipeline) -> bool:
    """Whether table 0's lookup alone may decide a miss in P (``_first_applies``)."""
    return _first_applies(p)


def _first_applies(p: Pipeline) -> bool:
    """Nothing but P's tables decides a translation in P (no mirror, control protocol, sampling,
    NetFlow split or conjunction in table 0), so ``Translator._first_lookup`` may begin it."""
    return not (p.mirrors or p.special or p.split_ipv4_flows or p.sflow_probability
                or p.ipfix_probability) and p.tables[0].cls.soft is None


class _Ctx:
    """The state of one translation: the flow as the pipeline sees it, and as committed."""

    def __init__(self, pipeline: Pipeline, key: bytes, registry: PacketInRegistry, trace: bool):
        self.p = pipeline                         # the bridge translation is in (patch ports change it)
        self.reg = registry
        port = pipeline.port_by_dp(IN_PORT.from_key(key))
        self.in_ofport = port.ofport if port else 0xFFFFFFFF
        self.flow = bytearray(key)
        IN_PORT.to_key(self.flow, self.in_ofport)
        self.base = bytearray(self.flow)          # what the packet is, as far as actions went
        self.metadata = 0                         # the pipeline vector: metadata, pkt_mark, registers
        self.resubmits = 0                        # resubmits so far (MAX_RESUBMITS)
        self.exit = False                         # an exit action ran: no further action but the action set
        self.stack: list[int] = []                # the push/pop field stack
        self.out = Translation()
        self.v = Visit(pipeline, version=pipeline.version)
        self.out.visits.append(self.v)
        self.odp = self.out.actions
        self.depth = 0
        self.tracing = trace
        self.action_set: list = []                # written actions, in order (execution_order runs them)
        self.table_id = 0
        self.cookie = 0
        self.dp_in_port = -1                      # >= 0: the first table's rule may keep or give a kept translation
        self.first_table = False                  # the next table looked up is the input bridge's first
        self.keeping: FlowEntry | None = None     # the rule whose translation may be kept
        self.lookup_wc: Wildcards | None = None   # the lookups' wildcards while out.wc gathers the actions' reads
        self.trace_match = None                   # tracing: the match of the rule whose actions run
        self.rule: FlowEntry | None = None        # the rule whose actions run (none: a packet-out's)
        self.l3_unknown = False                   # after pop_mpls: the headers under the label are not known
        self.freezing = False                     # an action needs them: translation stops for recirculation
        self.frozen: list = []                    # what is left to run after it (``Frozen.items``)
        self.after_apply: tuple = ()              # the running rule's instructions after its apply-actions

    def log(self, msg: str) -> None:
        if self.tracing:
            self.out.trace.append("    " * self.depth + msg)

    # -- reading the flow, recording what was read
    def get(self, name: str) -> int:
        f = F[name]
        self.out.wc.unwildcard(f)
        return f.from_key(self.flow)

    def prereqs_hold(self, name: str) -> bool:
        alts = prereqs_of(F[name])
        for alt in alts:
            for g, _, _ in alt:
                self.out.wc.unwildcard(g)
        return any(all(g.from_key(self.flow) & (g.all_ones if m is None else m) == v for g, v, m in alt)
                   for alt in alts)

    # -- VLAN stack: [(tpid, tci)] outer first
    def vlan_stack(self) -> list[tuple[int, int]]:
        """The flow's VLAN tags as the pipeline sees them (no bit of it is recorded as read)."""
        return _stack(self.flow)

    def set_vlan_stack(self, stack: list[tuple[int, int]]) -> None:
        """Give the flow these VLAN tags (commit() turns the change into push/pop/set actions)."""
        _set_stack(self.flow, stack)

    def vlan_present(self) -> bool:
        self.out.wc.key |= ((1 << 64) - 1) << 8 * (KEY_SIZE - _TPID[1][1])   # the tag stack: VLAN actions move/keep its bits
        return bool(int.from_bytes(self.flow[_TCI[0][0]:_TCI[0][1]], "big") & VLAN_CFI)

    # -- commit header changes to datapath actions
    def commit(self) -> None:
        f, b = self.flow, self.base
        if f == b:                      # nothing changed since the last commit (the common case)
            return
        if f[_VLAN_BYTES[0]] != b[_VLAN_BYTES[0]] or f[_VLAN_BYTES[1]] != b[_VLAN_BYTES[1]]:
            fs, bs = _stack(f), _stack(b)
        else:
            fs = bs = ()
        if fs != bs:
            k = 0
            while k < min(len(fs), len(bs)) and fs[-1 - k] == bs[-1 - k]:
                k += 1
            if len(fs) == len(bs) and len(fs) - k == 1 and fs[0][0] == bs[0][0]:
                # The whole TCI, DEI cleared: the key has no DEI (its bit says "tagged"), and a
                # rewritten tag leaves without one, as Open vSwitch's pop + push gives it.
                self.odp.append(odp.SetMasked("vlan", (fs[0][1] & 0xEFFF).to_bytes(2, "big"), b"\xff\xff"))
            else:
                for _ in range(len(bs) - k):
                    self.odp.append(odp.PopVlan())
                for tpid, tci in reversed(fs[:len(fs) - k]):
                    self.odp.append(odp.PushVlan(tci & 0xEFFF, tpid))
        if f[_ETH] != b[_ETH]:
            self.odp.append(_set("eth", bytes(f[_ETH]), _diff_mask(f[_ETH], b[_ETH])))
        eth_type = F["eth_type"].from_key(f)
        if eth_type == 0x0800:
            new = bytes(f[_SRC:_SRC + 4] + f[_DST:_DST + 4] + f[_TOS:_TTL + 1])    # src dst tos ttl
            old = bytes(b[_SRC:_SRC + 4] + b[_DST:_DST + 4] + b[_TOS:_TTL + 1])
            if new != old:
                self.odp.append(_set("ipv4", new, _diff_mask(new, old)))
        elif eth_type == 0x86DD:
            new = bytes(f[_SRC:_SRC + 16] + f[_DST:_DST + 16] + f[_LABEL:_LABEL + 4] + f[_TOS:_TTL + 1])
            old = bytes(b[_SRC:_SRC + 16] + b[_DST:_DST + 16] + b[_LABEL:_LABEL + 4] + b[_TOS:_TTL + 1])
            if new != old:
                mask = bytearray(_diff_mask(new, old))
                mask[32:36] = bytes(a & c for a, c in zip(mask[32:36], b"\x00\x0f\xff\xff"))
                self.odp.append(_set("ipv6", new, bytes(mask)))
        elif eth_type in MPLS_TYPES and f[_MPLS] != b[_MPLS]:
            self.odp.append(_set("mpls", bytes(f[_MPLS]), _diff_mask(f[_MPLS], b[_MPLS])))
        proto = f[_PROTO]
        if eth_type == 0x86DD and proto == 58 and _nd(f) != _nd(b):     # ND before ICMP type/code, as OVS
            self.odp.append(_set("nd", *_whole_fields(_nd(f), _nd(b))))
        elif eth_type == 0x0806 and _arp(f) != _arp(b):
            self.odp.append(_set("arp", *_whole_fields(_arp(f), _arp(b))))
        if eth_type in (0x0800, 0x86DD) and f[_PORTS] != b[_PORTS]:
            kind = {6: "tcp", 17: "udp", 132: "sctp"}.get(proto)
            if kind:
                self.odp.append(_set(kind, bytes(f[_PORTS]), _diff_mask(f[_PORTS], b[_PORTS])))
            elif proto == (1 if eth_type == 0x0800 else 58):          # type, code: the ports' low bytes
                new, old = bytes(f[_PORTS][1::2]), bytes(b[_PORTS][1::2])
                self.odp.append(_set("icmp" if proto == 1 else "icmpv6", new, _diff_mask(new, old)))
        self.base = bytearray(f)


def _stack(k: bytearray) -> list[tuple[int, int]]:
    """K's VLAN tags, [(tpid, tci)] outer first."""
    out = []
    for (a, b), (c, d) in zip(_TCI, _TPID):
        tci = int.from_bytes(k[a:b], "big")
        if tci & VLAN_CFI:
            out.append((int.from_bytes(k[c:d], "big"), tci))
    return out


def _set_stack(k: bytearray, stack) -> None:
    """Write STACK (``_stack``'s form) into K's tags; absent ones are zero."""
    for i, ((a, b), (c, d)) in enumerate(zip(_TCI, _TPID)):
        tpid, tci = stack[i] if i < len(stack) else (0, 0)
        k[a:b] = tci.to_bytes(2, "big")
        k[c:d] = tpid.to_bytes(2, "big")


def _set(kind: str, value: bytes, mask: bytes):
    """A masked set with its value reduced to the mask: the bytes outside it are the first
    packet's own and must not make two translations of one megaflow look different."""
    return odp.SetMasked(kind, bytes(v & m for v, m in zip(value, mask)), mask)


def _nd(k: bytearray) -> list[tuple[bytes, bytes]]:
    """The ND set's fields in K: (value, the bits a set may write), target sll tll."""
    return [(bytes(k[_NDT:_NDT + 16]), b"\xff" * 16), (bytes(k[_SHA:_SHA + 6]), b"\xff" * 6),
            (bytes(k[_THA:_THA + 6]), b"\xff" * 6)]


def _arp(k: bytearray) -> list[tuple[bytes, bytes]]:
    """The ARP set's fields in K, op sha spa tha tpa: the key has the op's low byte only (as Open
    vSwitch's), so only that byte is written."""
    return [(bytes([0, k[_PROTO]]), b"\x00\xff"), (bytes(k[_SHA:_SHA + 6]), b"\xff" * 6),
            (bytes(k[_SRC:_SRC + 4]), b"\xff" * 4), (bytes(k[_THA:_THA + 6]), b"\xff" * 6),
            (bytes(k[_DST:_DST + 4]), b"\xff" * 4)]


def _whole_fields(new, old) -> tuple[bytes, bytes]:
    """Value and mask writing each changed field whole, as Open vSwitch's commit does: for ARP and
    ND the frame may hold what the key does not (an op above 255, a second SLL option)."""
    return (b"".join(v for v, _ in new),
            b"".join(m if v != w else bytes(len(m)) for (v, m), (w, _) in zip(new, old)))


def _diff_mask(new: bytes, old: bytes) -> bytes:
    """The bits that changed, and only those: a masked set writes nothing else, so bits the
    megaflow does not match (ECN beside a written DSCP, say) keep each packet's own value.
    (Every written field is matched, so its unchanged bits are the same in every packet.)"""
    return bytes(a ^ b for a, b in zip(new, old))


# A userspace cookie with this bit is an sFlow sample (the low 32 bits: its output).  Bit 63 is
# odp.CONTROL_COOKIE (control protocols' frames, on the reserved ring); the rest are packet-ins.
# Every sample's cookie also has odp.LAZY_COOKIE: the datapath hands samples over in batches.
TCP_FIN, TCP_RST = 0x001, 0x004        # tcp_flags bits fin_timeout acts on
SFLOW_COOKIE = 1 << 62
assert not SFLOW_COOKIE & odp.CONTROL_COOKIE
# IPFIX: bridge-level samples (the bridge of the input port), and the OpenFlow sample action's
# (the low 32 bits: its FlowSampleIn's registry id).
IPFIX_COOKIE = 1 << 61
FLOW_SAMPLE_COOKIE = 1 << 60


def _mhash_add(h: int, data: int) -> int:
    if data:
        data = (data * 0xCC9E2D51) & 0xFFFFFFFF
        data = ((data << 15) | (data >> 17)) & 0xFFFFFFFF
        h ^= (data * 0x1B873593) & 0xFFFFFFFF
    h = ((h << 13) | (h >> 19)) & 0xFFFFFFFF
    return (h * 5 + 0xE6546B64) & 0xFFFFFFFF


@functools.lru_cache(maxsize=4096)
def sflow_ifindex(name: str) -> int:
    """The sFlow ifIndex of the device port NAME, as Open vSwitch gives a DPDK port
    (netdev_dpdk_get_ifindex): its name's hash_string (murmur3 words, lib/hash.c) modulo
    0xfffffe, plus 1: a positive 24-bit number, the same on both switches for one name."""
    b = name.encode()
    h = 0
    for i in range(0, len(b) - len(b) % 4, 4):
        h = _mhash_add(h, int.from_bytes(b[i:i + 4], "little"))
    if len(b) % 4:
        h = _mhash_add(h, int.from_bytes(b[len(b) - len(b) % 4:], "little"))
    h ^= len(b)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h % 0xFFFFFE + 1


def sflow_output(actions: list, pipeline: Pipeline) -> int:
    """sFlow's output interface of ACTIONS (Open vSwitch's cookie encoding): the one port's
    ifIndex (``sflow_ifindex``; 0 for a patch port, which has none), 0x40000000|256 for a
    drop, 0x80000000|N for N outputs."""
    outs = []
    todo = list(actions)
    while todo:
        a = todo.pop()
        if isinstance(a, odp.Output):
            outs.append(a.port)
        elif isinstance(a, (odp.Clone, odp.Sample)):
            todo += a.actions
    if not outs:
        return 0x40000000 | 256
    if len(outs) > 1:
        return 0x80000000 | len(outs)
    e = pipeline.port_by_dp(outs[0])
    return sflow_ifindex(e.name) if e is not None and not e.patch else 0


def _sampled(probability: float, cookie: int):
    """The datapath action sending PROBABILITY of the frames up with COOKIE: a bare userspace
    action when that is every frame, as Open vSwitch's compose_sample_action."""
    if probability >= 1:
        return odp.Userspace(cookie)
    return odp.Sample(probability, (odp.Userspace(cookie),))


def ipfix_sample(actions: list, pipeline: Pipeline) -> None:
    """Put the bridge's IPFIX sample first in ACTIONS (ingress sampling, as Open vSwitch's
    compose_ipfix_action at the input port)."""
    actions.insert(0, _sampled(pipeline.ipfix_probability, IPFIX_COOKIE | odp.LAZY_COOKIE))


def sflow_sample(actions: list, pipeline: Pipeline) -> None:
    """Put sFlow's sample first in ACTIONS, as Open vSwitch's compose_sflow_action: with the
    bridge's probability, the frame goes to the slow path with its output in the cookie."""
    cookie = SFLOW_COOKIE | odp.LAZY_COOKIE | sflow_output(actions, pipeline)
    actions.insert(0, odp.Sample(pipeline.sflow_probability, (odp.Userspace(cookie),)))


NETFLOW_FIELDS = [F[n] for n in ("ipv4_src", "ipv4_dst", "ip_proto", "ip_dscp", "ip_ecn", "tcp_src", "tcp_dst")]


def split_ipv4_flow(wc, flow) -> None:
    """An IPv4 megaflow matches what NetFlow keys a flow on exactly (tcp_src/tcp_dst: the L4
    ports of any protocol), as Open vSwitch's netflow_mask_wc."""
    wc.unwildcard(F["eth_type"])
    if F["eth_type"].from_key(flow) == 0x0800:
        for f in NETFLOW_FIELDS:
            wc.unwildcard(f)


def _n_actions(acts) -> int:
    """Datapath actions in ACTS, those nested in clones, samples and check_pkt_len counted."""
    return sum(1 + _n_actions(a.actions) if isinstance(a, (odp.Clone, odp.Sample)) else
               1 + _n_actions(a.greater) + _n_actions(a.less_equal) if isinstance(a, odp.CheckPktLen) else 1
               for a in acts)


class Translator:
    """Translates for the bridges of one datapath.  PIPELINES: every bridge's pipeline on the
    datapath (shared with the other bridges' translators; patch ports link them), or just
    PIPELINE's.  A key is translated by the bridge that owns its input port."""

    def __init__(self, pipeline: Pipeline, registry: PacketInRegistry | None = None,
                 pipelines: list[Pipeline] | None = None):
        self.p = pipeline
        self.registry = registry or PacketInRegistry()
        self.pipelines = pipelines if pipelines is not None else [pipeline]
        # Kept translations by shape: (pipeline, instructions, datapath input port) -> the Kept
        # that a translation of a rule with those instructions made (see ``_shaped``).
        self._shapes: dict[tuple, Kept] = {}
        self._in_port_bits: dict[int, int] = {}        # OpenFlow port -> its in_port bits in a key int
        # Called as on_kept(pipeline, instructions, dp_in_port, kept) when a shape's kept translation
        # is made (ofproto/ctable.py's table in C takes its actions).
        self.on_kept = None

    def pipeline_of(self, dp_port: int) -> Pipeline:
        """The pipeline of the bridge that owns datapath port DP_PORT (default: this one's)."""
        if len(self.pipelines) > 1:
            for p in self.pipelines:
                if p.port_by_dp(dp_port) is not None:
                    return p
        return self.p

    def translate(self, key: bytes, trace: bool = False, table_id: int = 0) -> Translation:
        dp_in = IN_PORT.from_key(key)
        p = self.pipeline_of(dp_in)
        first = None
        if not (trace or table_id) and _first_applies(p) and not key_int(key) & _RECIRC_FRAG:
            first = self._first_lookup(p, key_int(key), dp_in)
            if first[0].__class__ is Kept:
                kept, wc = first
                return Translation(actions=list(kept.actions), wc=wc, visits=kept.visits, kept=kept)
        return self._translate(p, key, trace, table_id, first)

    def translate_miss(self, key: bytes, k: int) -> "tuple[Kept, Wildcards] | Translation":
        """``translate(KEY)`` for a missed packet (K: KEY as a big-endian int), with nothing
        built when table 0's rule has a kept translation for KEY's input port: then (that
        ``Kept``, the lookup's wildcards), which is what ``translate`` would make its
        ``Translation`` of; otherwise the translation."""
        dp_in = IN_PORT.from_key(key)
        p = self.pipeline_of(dp_in)
        first = None
        if not k & _RECIRC_FRAG and _first_applies(p):
            first = self._first_lookup(p, k, dp_in)
            if first[0].__class__ is Kept:
                return first
        return self._translate(p, key, False, 0, first)

    def _translate(self, p: Pipeline, key: bytes, trace: bool, table_id: int, first: tuple | None) -> Translation:
        """KEY through P's tables from TABLE_ID; FIRST: table 0's lookup, when made already."""
        c = _Ctx(p, key, self.registry, trace)
        c.out.wc.unwildcard(IN_PORT)
        rid = RECIRC_ID.from_key(c.flow)
        if rid:
            self._post_recirc(c, rid)
            return c.out
        in_bond = c.p.bonds.get(c.in_ofport)
        if c.p.mirrors and (in_bond.id if in_bond is not None else c.in_ofport) in c.p.mirror_outputs():
            c.log("input port is a mirror output port: dropped")
            return c.out
        sp = c.p.special
        if sp and self._special(c):
            return c.out
        # The input port's spanning tree state (Open vSwitch's may_receive and the cancelling
        # after do_xlate_actions): a port that neither forwards nor learns gets its frames
        # looked up in the first table (the rule counts them) and no further; one that learns
        # only runs the tables, for NORMAL and learn to see the frame, and what they would
        # send is cancelled, packet-ins included, the action set never run.
        forwards = not sp or sp.forwarding(c.in_ofport)
        receives = forwards or sp.learning(c.in_ofport)
        orig = bytearray(c.flow)
        if not trace and not table_id and not (c.p.mirrors or c.p.split_ipv4_flows or c.p.sflow_probability
                                               or c.p.ipfix_probability) and forwards:
            # (a kept translation is the tables' actions alone: mirrors, NetFlow's split and
            # sFlow's sample are added after them, per translation; a port that does not forward
            # (spanning tree) has them cancelled)
            c.dp_in_port, c.first_table = IN_PORT.from_key(key), True
        if receives:
            self._pipeline(c, table_id, action_set=forwards, first=first)
        else:
            rule = self._lookup(c, table_id)
            if rule is not None:
                c.v.entries.append(rule.data)
                if c.tracing:
                    match = format_match(rule.data.match)
                    c.log(f"{table_id}. {match + ', ' if match else ''}priority {rule.data.priority}")
            c.log(f"port {c.in_ofport} neither forwards nor learns (spanning tree): dropped after the lookup "
                  f"in table {table_id}, its actions not run")
        if c.p.split_ipv4_flows:
            split_ipv4_flow(c.out.wc, c.flow)
        if not c.out.error and _n_actions(c.odp) > MAX_DP_ACTIONS:
            c.out.error = f"more than {MAX_DP_ACTIONS} datapath actions"
        if c.keeping is not None:
            self._keep(c)
        if c.out.error:
            c.odp.clear()
            c.log(f"error: {c.out.error}; the packet is dropped")
            return c.out
        if not forwards:
            if receives:
                c.log(f"port {c.in_ofport} is not forwarding (spanning tree): the actions are cancelled")
            c.odp.clear()
            c.out.packet_ins.clear()
        elif c.p.mirrors:
            self._mirror(c, orig)
        if c.out.kept is None or c.keeping is not None:      # not a kept translation's (sealed) visits
            for v in c.out.visits:
                v.seal()
        if c.p.ipfix_probability and not c.out.error:
            ipfix_sample(c.out.actions, c.p)
        if c.p.sflow_probability and not c.out.error:
            sflow_sample(c.out.actions, c.p)
        return c.out

    def _keep(self, c: _Ctx) -> None:
        """The translation is done: the lookups' wildcards and the actions' reads become one, and
        the rule keeps the translation if the actions read nothing of the packet."""
        reads, c.out.wc = c.out.wc, c.lookup_wc
        c.out.wc.key |= reads.key
        c.out.wc.meta |= reads.meta
        out, v = c.out, c.v
        if (reads.key or reads.meta or out.error or out.packet_ins or out.peer_errors or len(out.visits) != 1
                or len(v.tables) != 1 or len(v.entries) != 1 or v.groups or v.macs or v.learns or v.learned
                or v.fins or v.clauses or v.bonds or v.limits
                or v.mirrors):
            return
        c.keeping.kept = out.kept = Kept(c.dp_in_port, c.p.version, tuple(c.odp), out.visits)
        if len(self._shapes) >= MAX_SHAPES:
            self._shapes.clear()
        self._shapes[(c.p, c.keeping.instructions, c.dp_in_port)] = out.kept
        if self.on_kept is not None:
            self.on_kept(c.p, c.keeping.instructions, c.dp_in_port, out.kept)

    def shape_kepts(self, p: Pipeline):
        """(instructions, datapath input port, Kept) of every shape's kept translation in P
        valid at its current version."""
        for (sp, instructions, dp_in), k in self._shapes.items():
            if sp is p and k.version == p.version:
                yield instructions, dp_in, k

    def kept_for(self, p: Pipeline, e: FlowEntry, dp_in: int, like: Kept | None = None) -> Kept | None:
        """Rule E's (of table 0 in P) kept translation from datapath port DP_IN: its own if valid,
        else one made from its shape's (``_shaped``), or from LIKE (a kept translation of a rule
        with E's instructions from DP_IN at P's version) when the shapes forgot it."""
        kept = e.kept
        if kept is not None and kept.dp_in_port == dp_in and kept.version == p.version:
            return kept
        kept = self._shaped(p, e, dp_in, 0)
        if kept is None and like is not None and like.version == p.version and like.dp_in_port == dp_in:
            kept = self.kept_like(p, e, like)
        return kept

    @staticmethod
    def kept_like(p: Pipeline, e: FlowEntry, like: Kept) -> Kept:
        """Rule E's (of table 0 in P) kept translation made from LIKE, a kept translation of a
        rule with E's instructions from the same datapath port at P's version: LIKE's actions,
        an xlate cache of E's own (so its counters stay its own); kept on E.  The caller checked
        LIKE's port and version (``kept_for``; the C table's setups, upcall.py)."""
        v = Visit.sealed(p, (e,), _TABLE_IDS[0], like.version)
        e.kept = kept = Kept(like.dp_in_port, like.version, like.actions, XlateCache((v,)))
        kept.encoded = like.encode()
        return kept

    def _first_lookup(self, p: Pipeline, k: int, dp_in: int) -> tuple:
        """The lookup in table 0 of P for key K (a big-endian int), the way ``_table`` does it
        for a packet that is not a fragment, in a table without conjunctions, when nothing but
        the tables decides (no mirror, control protocol, sampling or recirculation:
        ``_first_applies`` and ``translate`` say when).  (the ``Kept``, the lookup's wildcards)
        if the rule found has a kept translation for K's input port (its own or by shape,
        ``_shaped``).  Otherwise (rule, wildcards), for ``_table`` to go on from without looking
        up again.  DP_IN: K's input port."""
        port = p.port_by_dp(dp_in)
        of = port.ofport if port else 0xFFFFFFFF
        bits = self._in_port_bits.get(of)
        if bits is None:
            if len(self._in_port_bits) > 4096:
                self._in_port_bits.clear()
            bits = self._in_port_bits[of] = IN_PORT.key_ints(of, IN_PORT.all_ones)[0]
        wc = Wildcards(_IN_PORT_MASK)
        rule = p.tables[0].cls.lookup(k & ~_IN_PORT_MASK | bits, 0, wc)
        if wc.key & _PORTS_WC.key:            # as _table: the ports decided, so whether a fragment did
            wc.unwildcard(IP_FRAG)
        if rule is not None:
            e = rule.data
            kept = e.kept
            if kept is None or kept.dp_in_port != dp_in or kept.version != p.version:
                kept = self._shaped(p, e, dp_in, 0)
            if kept is not None:
                return kept, wc
        return rule, wc

    def _shaped(self, p: Pipeline, e: FlowEntry, dp_in_port: int, table_id: int) -> Kept | None:
        """A kept translation for rule E (which has none valid) from one that a rule with the
        same instructions, in the same table of the same bridge, kept from the same input port
        at the current version: a kept translation's actions are a function of the
        instructions, the input port and the bridge's state alone (they read nothing of the
        packet, made no packet-in, crossed no other table), so E's are those.  E gets its own
        xlate cache (its rule and table: what a translation of E would record) and keeps it."""
        k = self._shapes.get((p, e.instructions, dp_in_port))
        if k is None or k.version != p.version:
            return None
        v = Visit.sealed(p, (e,), _TABLE_IDS[table_id], k.version)
        e.kept = kept = Kept(k.dp_in_port, k.version, k.actions, XlateCache((v,)))
        kept.encoded = k.encode()
        return kept

    def _special(self, c: _Ctx) -> bool:
        """Open vSwitch's process_special: a control protocol's frame on the current input port
        goes to that protocol, by a userspace action on the reserved ring; True if one took it."""
        proto = c.p.special.claim(c.in_ofport, c)
        if proto is None:
            return False
        c.log(f"Consists of {proto.name.upper()} packets: port {c.in_ofport}'s {proto.name} takes it in the "
              f"control plane (userspace, reserved ring); the OpenFlow tables are not consulted")
        cookie = self.registry.id_of(SpecialIn(c.p.name, c.in_ofport, proto.name)) | odp.CONTROL_COOKIE
        c.odp.append(odp.Userspace(cookie))
        return True

    def translate_actions(self, key: bytes, in_ofport: int, actions) -> Translation:
        """ACTIONS (an OpenFlow action list: a packet-out's) run on the packet whose datapath
        flow key is KEY, received on IN_OFPORT of this translator's bridge.  IN_OFPORT may be a
        port with no datapath port to be seen in KEY: a patch port, or a reserved one
        (CONTROLLER, LOCAL, ANY).  Unlike ``translate``, no table is looked up unless the
        actions say so (output:TABLE), no mirror applies, and packet-ins the actions make come
        from no table (``NO_TABLE``).  An error leaves no datapath actions."""
        c = _Ctx(self.p, key, self.registry, False)
        if in_ofport not in self.p.ports or self.p.ports[in_ofport].dp_port < 0:    # or a patch port
            c.in_ofport = in_ofport
            IN_PORT.to_key(c.flow, in_ofport & IN_PORT.all_ones)
            c.base = bytearray(c.flow)
        c.out.wc.unwildcard(IN_PORT)
        c.table_id = NO_TABLE
        sp = self.p.special
        if sp and not sp.forwarding(in_ofport):
            # As a frame received there (Open vSwitch's xlate_actions gates a packet-out by its
            # in_port the same way): nothing when the port neither forwards nor learns, the
            # actions run for NORMAL and learn only, and cancelled, when it learns.
            if sp.learning(in_ofport):
                self._actions(c, actions)
            c.odp.clear()
            c.out.packet_ins.clear()
            return c.out
        self._actions(c, actions)
        if c.freezing and not c.out.error:
            self._finish_freeze(c, False)
        if not c.out.error and _n_actions(c.odp) > MAX_DP_ACTIONS:
            c.out.error = f"more than {MAX_DP_ACTIONS} datapath actions"
        if c.out.error:
            c.odp.clear()
        return c.out

    def _mirror(self, c: _Ctx, orig: bytearray) -> None:
        """Copies of the frame as it came in, for the mirrors that select it, first thing (OVS
        mirrors the original flow): each in a clone, so its VLAN tagging stays its own."""
        p = c.p
        inp = p.ports.get(c.in_ofport)
        if inp is None:
            return
        outs = {q.ofport for q in p.ports.values() if any(isinstance(a, odp.Output) and a.port == q.dp_port
                                                              for a in _flat(c.odp))}
        flow, base = c.flow, c.base
        c.flow, c.base = bytearray(orig), bytearray(orig)
        present = c.vlan_present()
        vlan = inp.vlan.input_vlan(c.get("vlan_vid") & 0xFFF if present else None)
        copies, done = [], set()
        for i, m in enumerate(p.mirrors):
            if not (m.select_all or c.in_ofport in m.src or outs & m.dst):
                continue
            if vlan is None or (m.vlans is not None and vlan not in m.vlans):
                continue
            target = (m.out_port, m.out_vlan)
            if target in done:                 # two mirrors to one place: one copy
                c.v.mirrors.append(i)
                continue
            done.add(target)
            c.v.mirrors.append(i)
            saved_odp, c.odp = c.odp, []
            in_bond = p.bonds.get(c.in_ofport)
            if m.out_port is not None and m.out_port in p.ports and m.out_port != (
                    in_bond.id if in_bond is not None else c.in_ofport):
                self._output_bundle(c, inp, m.out_port, vlan)
            elif m.out_vlan is not None and m.out_vlan != vlan:
                for q in sorted(p.ports.values(), key=lambda q: q.ofport):
                    if q.ofport != c.in_ofport and q.ofport not in p.mirror_outputs() and q.vlan.carries(m.out_vlan):
                        self._output_normal(c, inp, q, m.out_vlan)
            if c.odp:
                copies.append(odp.Clone(tuple(c.odp)))
            c.odp = saved_odp
            c.base = bytearray(orig)
        c.flow, c.base = flow, base
        c.odp[:0] = copies

    # -- tables and instructions
    def _lookup(self, c: _Ctx, table_id: int, first: tuple | None = None):
        """The rule of table TABLE_ID the packet matches (its classifier's rule), or None; the
        fields the lookup read are matched by the megaflow.  FIRST: the lookup, done already
        (``_first_lookup``: the rule, the wildcards)."""
        table = c.p.tables[table_id]
        c.v.tables.append(table_id)
        seen: list | None = [] if table.cls.soft is not None else None     # conjunctions' clauses
        if first is not None:
            rule, c.out.wc = first
            consulted_ports = 0                   # (ip_frag unwildcarded already if it mattered)
        elif IP_FRAG.from_key(c.flow):
            # As Open vSwitch's default fragment handling: the lookup sees no L4 ports in a
            # fragment (the first one's would send it one way and its followers another), and
            # only the lookup: the actions see the first fragment's ports and TCP flags.  The
            # real ports then decide nothing here, so their bits stay wildcarded.
            key = bytearray(c.flow)
            key[_PORTS] = bytes(4)
            ports_wc = c.out.wc.key & _PORTS_WC.key
            rule = table.cls.lookup(key_int(bytes(key)), c.metadata, c.out.wc, seen)
            consulted_ports = c.out.wc.key & _PORTS_WC.key & ~ports_wc
            c.out.wc.key = c.out.wc.key & ~_PORTS_WC.key | ports_wc
        else:
            rule = table.cls.lookup(key_int(bytes(c.flow)), c.metadata, c.out.wc, seen)
            consulted_ports = c.out.wc.key & _PORTS_WC.key
        if seen:
            c.v.clauses += [r.data for r in seen]
        if consulted_ports:
            # The lookup looked at L4 ports, which a fragment's lookup sees as zeros: whether
            # the packet is a fragment decided it.  A lookup that never looked at them decides
            # the same for fragments and whole packets, so the megaflow stays as wide as
            # before (an in_port rule keeps its in_port-only megaflow and the cheap path).
            c.out.wc.unwildcard(F["ip_frag"])
        return rule

    def _table(self, c: _Ctx, table_id: int, resubmit: bool = False, first: tuple | None = None) -> None:
        """TABLE_ID's lookup (FIRST: done already) and the instructions of the rule it finds."""
        c.depth += 1
        # A resubmit may nest MAX_DEPTH deep below the first table, as in Open vSwitch (whose
        # first table is depth 0, ours 1).
        if c.depth > MAX_DEPTH + resubmit:
            c.out.error = f"over the maximum translation depth {MAX_DEPTH}"
            return
        rule = self._lookup(c, table_id, first)
        if rule is None:
            c.first_table = False
            if resubmit:                      # as Open vSwitch: a resubmit's miss does nothing
                c.log(f"{table_id}. No match (resubmit): nothing done")
            elif c.p.miss_to_controller:        # OpenFlow 1.0's table miss (Open vSwitch's miss rule)
                c.log(f"{table_id}. No match: table miss, to the controller (an OpenFlow 1.0 controller is connected)")
                c.table_id, c.cookie = table_id, 0
                self._packet_in(c, "no_match", OFPCML_NO_BUFFER)
            else:
                c.log(f"{table_id}. No match: table miss, drop")
            return
        e: FlowEntry = rule.data
        c.v.entries.append(e)
        c.table_id, c.cookie = table_id, e.cookie
        if c.first_table:                       # the input bridge's first table (see Kept)
            c.first_table = False
            kept = e.kept
            if kept is None or kept.dp_in_port != c.dp_in_port or kept.version != c.p.version:
                kept = self._shaped(c.p, e, c.dp_in_port, table_id)
            if kept is not None:
                c.odp.extend(kept.actions)
                c.out.kept = kept
                c.out.visits = kept.visits       # the same rule and table: its side effects
                c.v = kept.visits[0]
                return
            c.keeping, c.lookup_wc, c.out.wc = e, c.out.wc, Wildcards()
        c.rule = e
        if c.tracing:       # as Open vSwitch's trace: the rule, then each action as it runs (``_actions``)
            match = format_match(e.match)
            cookie = f", cookie {e.cookie:#x}" if e.cookie else ""
            c.log(f"{table_id}. {match + ', ' if match else ''}priority {e.priority}{cookie}")
            c.trace_match = e.match
            if not e.instructions:
                c.log("    drop")
        goto = None
        ordered = sorted(e.instructions, key=lambda i: INSTRUCTION_ORDER.index(type(i)))
        for j, ins in enumerate(ordered):
            if c.l3_unknown and not isinstance(ins, (Meter, ApplyActions)):
                c.log("the headers under the popped MPLS label are unknown: recirculate for the rest")
                c.freezing = c.exit = True
                c.frozen.append(Unroll(c.table_id, c.cookie))
                c.frozen.extend(ordered[j:])
                return
            if c.tracing and not isinstance(ins, ApplyActions):
                c.log(f"    {format_actions([ins])}")
            if isinstance(ins, Meter):
                if ins.meter_id in c.p.meters:
                    c.odp.append(odp.Meter(ins.meter_id))
            elif isinstance(ins, ApplyActions):
                after, c.after_apply = c.after_apply, tuple(x for x in ordered[j + 1:])
                ok = self._actions(c, ins.actions)
                c.after_apply = after
                if not ok:
                    c.log("the rest of this rule's instructions are skipped (the action set stays)")
                    return
            elif isinstance(ins, GotoTable):
                goto = ins.table_id
            else:
                self._write_instruction(c, ins)
            if c.out.error or c.exit:
                rest = [x for x in ordered[j + 1:] if not isinstance(x, (Meter, ApplyActions))]
                if c.freezing and not c.out.error and rest:
                    c.frozen.append(Unroll(c.table_id, c.cookie))
                    c.frozen.extend(rest)
                return
        if goto is not None:
            self._table(c, goto)

    @staticmethod
    def _write_instruction(c: _Ctx, ins) -> None:
        """clear_actions, write_actions or write_metadata: a rule's own instruction, or one left
        in a frozen translation (``_run_items``): one definition for both."""
        if isinstance(ins, ClearActions):
            c.action_set.clear()
        elif isinstance(ins, WriteActions):
            c.action_set.extend(ins.actions)
        elif isinstance(ins, WriteMetadata):
            c.metadata = (c.metadata & ~ins.mask) | (ins.value & ins.mask)

    def _pipeline(self, c: _Ctx, table_id: int, action_set: bool = True, first: tuple | None = None) -> None:
        """From TABLE_ID to the end of the pipeline, then the action set (as Open vSwitch: once,
        whatever ended the pipeline: a rule without goto_table, a table miss, an expired TTL),
        unless ACTION_SET is False (the input port does not forward: the set is cleared).
        FIRST: TABLE_ID's lookup, done already (``_table``)."""
        self._table(c, table_id, first=first)
        if c.freezing and not c.out.error:
            self._finish_freeze(c, action_set)
        elif not c.out.error and action_set:
            self._end_of_pipeline(c)
        c.action_set = []

    def _end_of_pipeline(self, c: _Ctx) -> None:
        c.exit = False                   # an exit ends the action lists, not the action set
        acts = execution_order(c.action_set)
        c.action_set, c.after_apply = [], ()
        if acts:
            c.log(f"action set: {acts}")
            self._actions(c, acts)
            if c.freezing and not c.out.error:
                self._finish_freeze(c, False)

    def _finish_freeze(self, c: _Ctx, action_set: bool) -> None:
        """Translation stopped for the headers under a popped MPLS label: what is left (and the
        action set, if ACTION_SET) goes into a ``Frozen`` state, and the frame recirculates
        under its id (Open vSwitch's finish_freezing)."""
        state = Frozen(c.p.name, c.in_ofport, tuple(c.frozen), c.metadata, tuple(c.stack),
                       tuple(c.action_set) if action_set else (), action_set)
        c.frozen, c.freezing, c.exit = [], False, False
        c.commit()
        rid = self.registry.id_of(state) + 1
        c.odp.append(odp.Recirc(rid))
        c.log(f"recirc({rid:#x}): parsed again, translation goes on after the MPLS pop")

    def _thaw(self, c: _Ctx, state: Frozen) -> None:
        """A frozen translation's frame back from recirculation, parsed again: on from where it
        stopped, with the pipeline state it had."""
        p = next((q for q in self.pipelines if q.name == state.bridge), None)
        if p is None:
            c.log(f"recirculation of bridge {state.bridge}, which is gone: dropped")
            return
        if p is not c.p:
            c.p, c.v = p, Visit(p, version=p.version)
            c.out.visits.append(c.v)
        c.in_ofport = state.in_ofport
        IN_PORT.to_key(c.flow, state.in_ofport & IN_PORT.all_ones)
        c.base = bytearray(c.flow)
        c.metadata, c.stack, c.action_set = state.metadata, list(state.stack), list(state.action_set)
        self._run_items(c, state.items)
        if c.freezing and not c.out.error:
            self._finish_freeze(c, state.run_action_set)
        elif state.run_action_set and not c.out.error:
            self._end_of_pipeline(c)
        if c.out.error:
            c.odp.clear()

    def _run_items(self, c: _Ctx, items) -> None:
        """Frozen items (``Frozen.items``: actions, instructions, ``Unroll`` marks) in order, or
        what follows a check_pkt_larger: an expired TTL skips the rest of its rule's items; a
        freeze leaves the rest in ``c.frozen``."""
        skip = False
        for j, it in enumerate(items):
            if c.out.error or c.exit:
                break
            if isinstance(it, Unroll):
                c.table_id, c.cookie, skip = it.table_id, it.cookie, False
                continue
            if skip:
                continue
            if c.l3_unknown and isinstance(it, (ClearActions, WriteActions, WriteMetadata, GotoTable)):
                c.freezing = c.exit = True
                c.frozen += [Unroll(c.table_id, c.cookie), *items[j:]]
                break
            if isinstance(it, (ClearActions, WriteActions, WriteMetadata)):
                self._write_instruction(c, it)
            elif isinstance(it, GotoTable):
                self._table(c, it.table_id)
            elif isinstance(it, CheckPktLarger):
                self._check_pkt_larger(c, it, items[j + 1:])
                break
            elif not self._actions(c, (it,)):
                skip = True                  # an expired TTL ends that rule's actions
            if c.freezing and not c.out.error:
                c.frozen.extend(items[j + 1:])
                break

    def _check_pkt_larger(self, c: _Ctx, a: CheckPktLarger, rest) -> None:
        """check_pkt_larger as Open vSwitch's xlate_check_pkt_larger: the datapath decides per
        frame (check_pkt_len), so what follows in this rule (REST: the actions after it, the
        instructions after them) and the action set are translated twice, with the bit 1 and 0,
        each into its branch; then translation ends (as Open vSwitch's, an exit)."""
        c.commit()
        saved = (c.flow, c.base, c.odp, c.action_set, c.metadata, c.stack, c.l3_unknown, c.table_id, c.cookie,
                 c.depth, c.after_apply)
        branches = []
        for bit in (1, 0):
            c.flow, c.base, c.odp, c.action_set = bytearray(saved[0]), bytearray(saved[1]), [], list(saved[3])
            c.metadata, c.stack, c.l3_unknown = saved[4], list(saved[5]), saved[6]
            c.table_id, c.cookie, c.depth, c.after_apply, c.exit = saved[7], saved[8], saved[9], (), False
            c.log(f"check_pkt_larger({a.pkt_len}): the frame {'longer' if bit else 'not longer'}: "
                  f"{a.dst}[{a.ofs}]={bit}")
            self._write(c, a.dst, a.ofs, 1, bit)
            self._run_items(c, rest)
            if c.freezing and not c.out.error:
                self._finish_freeze(c, True)
            elif not c.out.error and c.action_set:
                self._end_of_pipeline(c)
            branches.append(tuple(c.odp))
        (c.flow, c.base, c.odp, c.action_set, c.metadata, c.stack, c.l3_unknown, c.table_id, c.cookie, c.depth,
         c.after_apply) = saved
        c.odp.append(odp.CheckPktLen(a.pkt_len, branches[0], branches[1]))
        c.action_set = []
        c.exit = True

    # -- actions
    def _actions(self, c: _Ctx, actions) -> bool:
        """Run an action list; False when a dec_ttl expired in it, which ends this list only
        (Open vSwitch: "stop processing for the current table"): the rest of the rule's
        instructions, of a group bucket or of the action set.  The pending action set, the
        actions after a group whose bucket it was, another bucket: these carry on."""
        for i, a in enumerate(actions):
            if c.out.error or c.exit:
                if c.freezing and not c.out.error:
                    c.frozen.append(Unroll(c.table_id, c.cookie))
                    c.frozen.extend(actions[i:])
                return True
            if c.l3_unknown and _needs_headers(a):
                c.log("the headers under the popped MPLS label are unknown: recirculate for the rest")
                c.freezing = c.exit = True
                c.frozen.append(Unroll(c.table_id, c.cookie))
                c.frozen.extend(actions[i:])
                return True
            if c.tracing:
                c.log(f"    {format_actions([ApplyActions((a,))], c.trace_match)}")
            if isinstance(a, Output):
                self._output(c, a)
            elif isinstance(a, Group):
                self._group(c, a.group_id)
            elif isinstance(a, SetField):
                self._set_field(c, a.field, a.value, a.mask)
            elif isinstance(a, PushVlan):
                stack = c.vlan_stack()
                c.vlan_present()
                tci = (stack[0][1] if stack else 0) | VLAN_CFI
                c.set_vlan_stack([(a.ethertype, tci)] + stack)
            elif isinstance(a, PopVlan):
                stack = c.vlan_stack()
                if c.vlan_present():
                    c.set_vlan_stack(stack[1:])
            elif isinstance(a, PushMpls):
                self._push_mpls(c, a.ethertype)
            elif isinstance(a, PopMpls):
                self._pop_mpls(c, a.ethertype)
            elif isinstance(a, SetMplsTtl):
                if c.get("eth_type") in MPLS_TYPES:
                    self._set_field(c, "mpls_ttl", a.ttl)
            elif isinstance(a, DecMplsTtl):
                if c.get("eth_type") not in MPLS_TYPES:
                    c.log("dec_mpls_ttl: not MPLS: this action list ends (as Open vSwitch)")
                    return False
                ttl = c.get("mpls_ttl")
                if ttl <= 1:
                    c.log("dec_mpls_ttl: TTL expired")
                    self._packet_in(c, "invalid_ttl", OFPCML_NO_BUFFER)
                    return False
                F["mpls_ttl"].to_key(c.flow, ttl - 1)
            elif isinstance(a, DecNwTtl):
                if not c.prereqs_hold("nw_ttl"):
                    continue
                ttl = c.get("nw_ttl")
                if ttl <= 1:                 # to the controller(s), and this action list ends
                    c.log("dec_ttl: TTL expired")
                    for cid in (0,) if a.ids is None else a.ids:
                        self._packet_in(c, "invalid_ttl", OFPCML_NO_BUFFER, cid)
                    return False
                F["nw_ttl"].to_key(c.flow, ttl - 1)
            elif isinstance(a, SetNwTtl):
                if c.prereqs_hold("nw_ttl"):
                    self._set_field(c, "nw_ttl", a.ttl)      # unwildcards nw_ttl, as set_field does
            elif isinstance(a, CheckPktLarger):
                self._check_pkt_larger(c, a, (*actions[i + 1:], *c.after_apply))
                return True
            elif isinstance(a, (SetQueue, PopQueue, CopyTtlOut, CopyTtlIn)):
                pass                 # no queues in the datapath; no MPLS to copy TTLs with
            elif isinstance(a, Resubmit):
                self._resubmit(c, a)
            elif isinstance(a, Load):
                self._write(c, a.field, a.ofs, a.nbits, a.value)
            elif isinstance(a, Move):
                self._write(c, a.dst, a.dst_ofs, a.nbits, self._read(c, a.src, a.src_ofs, a.nbits))
            elif isinstance(a, StackPush):
                c.stack.append(self._read(c, a.field, a.ofs, a.nbits))
            elif isinstance(a, StackPop):
                if c.stack:
                    self._write(c, a.field, a.ofs, a.nbits, c.stack.pop() & ((1 << a.nbits) - 1))
                else:
                    c.log(f"pop:{a.field}: the stack is empty, nothing done")
            elif isinstance(a, Learn):
                self._learn(c, a)
            elif isinstance(a, FinTimeout):
                self._fin_timeout(c, a)
            elif isinstance(a, Clone):
                self._clone(c, a.actions)
            elif isinstance(a, Multipath):
                self._multipath(c, a)
            elif isinstance(a, Exit):
                c.log("exit: no further actions (the action set still runs)")
                c.exit = True
            elif isinstance(a, Sample):
                self._flow_sample(c, a)
            elif isinstance(a, Controller):
                self._packet_in(c, a.reason, a.max_len, a.id, a.userdata)
            elif isinstance(a, BundleAction):
                self._bundle(c, a)
        return True

    @staticmethod
    def _push_mpls(c: _Ctx, ethertype: int) -> None:
        """A new outer label stack entry, as Open vSwitch's flow_push_mpls: on an MPLS packet a
        copy of the outer one, BoS cleared; else label 0 (2 for IPv6), TC from the DSCP's low 3
        bits and TTL from the IP TTL (64 without IP or with TTL 0), BoS set.  Committed at once:
        the changes before it apply to the headers it covers; after it the L3 is opaque."""
        eth = c.get("eth_type")
        if eth in MPLS_TYPES:
            c.out.wc.unwildcard(F["mpls_label"])
            c.out.wc.unwildcard(F["mpls_tc"])
            c.out.wc.unwildcard(F["mpls_bos"])
            c.out.wc.unwildcard(F["mpls_ttl"])
            lse = int.from_bytes(c.flow[_MPLS], "big") & ~0x100
        else:
            label, tc, ttl = (2 if eth == 0x86DD else 0), 0, 64
            if eth in (0x0800, 0x86DD):
                tc = c.get("ip_dscp") & 7
                ttl = c.get("nw_ttl") or 64
            lse = label << 12 | tc << 9 | 1 << 8 | ttl
        c.commit()
        c.odp.append(odp.PushMpls(lse, ethertype))
        F["eth_type"].to_key(c.flow, ethertype)
        c.flow[_MPLS] = lse.to_bytes(4, "big")
        c.flow[_L3_L4] = bytes(_L3_L4.stop - _L3_L4.start)
        c.base = bytearray(c.flow)

    @staticmethod
    def _pop_mpls(c: _Ctx, ethertype: int) -> None:
        """The outer label stack entry removed; the packet's ethertype becomes ETHERTYPE.  To an
        ethertype that is not MPLS, every entry down to the bottom of the stack goes (three at
        most), as Open vSwitch's commit pops every entry its flow holds then.  What lies under
        is unknown to translation (the key holds one entry): an action that needs it
        recirculates the frame to have it parsed (Open vSwitch's was_mpls)."""
        if c.get("eth_type") not in MPLS_TYPES:
            c.log("pop_mpls: not MPLS, nothing done")
            return
        c.get("mpls_bos")
        c.commit()
        c.odp.append(odp.PopMpls(ethertype, ethertype not in MPLS_TYPES))
        F["eth_type"].to_key(c.flow, ethertype)
        c.flow[_MPLS] = bytes(4)
        c.base = bytearray(c.flow)
        c.l3_unknown = True

    def _flow_sample(self, c: _Ctx, a: Sample) -> None:
        """The sample action: with its probability, the frame as it is here goes up to the
        bridge's IPFIX exporter of that collector set (Open vSwitch's xlate_sample_action);
        nothing on a bridge without IPFIX."""
        if not c.p.ipfix_flow_samples:
            c.log("sample: the bridge has no IPFIX: nothing done")
            return
        c.commit()
        fs = FlowSampleIn(c.p.name, a.probability, a.collector_set_id, a.obs_domain_id, a.obs_point_id)
        c.odp.append(_sampled(a.probability / 65535, FLOW_SAMPLE_COOKIE | odp.LAZY_COOKIE | self.registry.id_of(fs)))

    # -- Open vSwitch's extensions: resubmit, and fields read and written in part
    def _resubmit(self, c: _Ctx, a: Resubmit) -> None:
        """A lookup in another (or the same) table and that rule's instructions, then back here
        (Open vSwitch's xlate_table_action): depth and count bounded as Open vSwitch bounds
        them; a miss does nothing; a port other than IN_PORT is the lookup's in_port meanwhile."""
        c.resubmits += 1
        if c.resubmits > MAX_RESUBMITS:
            c.out.error = f"over {MAX_RESUBMITS} resubmit actions"
            return
        table = (c.table_id if c.table_id != NO_TABLE else 0) if a.table == 0xFF else a.table
        if table >= len(c.p.tables):
            c.log(f"resubmit to table {table}: no such table")
            return
        saved = c.table_id, c.cookie, c.in_ofport, c.depth, c.rule
        if a.port != OFPP_IN_PORT:
            c.in_ofport = a.port
            IN_PORT.to_key(c.flow, a.port & IN_PORT.all_ones)
        try:
            self._table(c, table, resubmit=True)
        finally:
            if a.port != OFPP_IN_PORT:
                IN_PORT.to_key(c.flow, saved[2] & IN_PORT.all_ones)
            c.table_id, c.cookie, c.in_ofport, c.depth, c.rule = saved

    def _bundle(self, c: _Ctx, a: BundleAction) -> None:
        """bundle/bundle_load (Open vSwitch's bundle_execute): the first live member
        (active_backup), or of the live members the one with the highest hash of the flow's
        fields and the member's index (hrw, every field hashed read); live is the port's
        may_enable, and NORMAL, FLOOD, ALL, IN_PORT and TABLE are always live, CONTROLLER never.
        A change of liveness revalidates (``Pipeline.set_port``).  No live member: no output,
        or 0xffff loaded."""
        chosen = None
        if a.algorithm == "active_backup":
            chosen = next((m for m in a.members if self._member_live(c, m)), None)
        else:
            h = self._flow_hash(c, a.fields, a.basis)
            best = -1
            for i, m in enumerate(a.members):
                if self._member_live(c, m):
                    score = zlib.crc32(i.to_bytes(4, "big"), h)
                    if score > best:
                        chosen, best = m, score
        c.log(f"bundle: member {chosen if chosen is not None else '(none live)'}")
        if a.dst is not None:
            port = 0xFFFF if chosen is None else chosen if chosen < OFPP10_MAX else chosen - (OFPP_MAX - OFPP10_MAX)
            self._write(c, a.dst, a.ofs, a.nbits, port & 0xFFFF)
        elif chosen is not None:
            self._output(c, Output(chosen))

    @staticmethod
    def _member_live(c: _Ctx, port: int) -> bool:
        if port in (OFPP_IN_PORT, OFPP_TABLE, OFPP_NORMAL, OFPP_FLOOD, OFPP_ALL):
            return True
        e = c.p.ports.get(port)
        return port != OFPP_CONTROLLER and e is not None and e.live

    @staticmethod
    def _flow_hash(c: _Ctx, kind: str, basis: int) -> int:
        """A hash of the flow's fields of KIND (multipath's and bundle's field sets), every field
        hashed read: our own hash (CRC-32 with the basis), not Open vSwitch's."""
        vals: list[int] = []
        eth_type = c.get("eth_type")
        if kind in ("eth_src", "symmetric_l4"):
            vals.append(c.get("eth_src") if kind == "eth_src" else c.get("eth_src") ^ c.get("eth_dst"))
        if kind == "symmetric_l4":
            vals += [eth_type, c.get("vlan_vid") & 0xFFF]
        if kind != "eth_src" and eth_type in (0x0800, 0x86DD):
            src, dst = ("ipv4_src", "ipv4_dst") if eth_type == 0x0800 else ("ipv6_src", "ipv6_dst")
            if kind == "nw_src":
                vals.append(c.get(src))
            elif kind == "nw_dst":
                vals.append(c.get(dst))
            else:
                vals.append(c.get(src) ^ c.get(dst))
            if kind in ("symmetric_l4", "symmetric_l3l4", "symmetric_l3l4+udp"):
                proto = c.get("ip_proto")
                vals.append(proto)
                if proto in ((6, 17, 132) if kind != "symmetric_l3l4" else (6, 132)) and not c.get("ip_frag") & 2:
                    vals.append(c.get("tcp_src") ^ c.get("tcp_dst"))
        return zlib.crc32(b"".join(v.to_bytes(16, "big") for v in vals), basis)

    def _multipath(self, c: _Ctx, a: Multipath) -> None:
        """multipath: a link from a hash of A's fields (every field hashed is read, so the
        megaflow matches it) by A's algorithm, into A's destination.  The hash is ours (CRC-32
        with the basis), not Open vSwitch's: the same fields choose the same link every time,
        and the symmetric ones the same link both ways; which link differs."""
        h = self._flow_hash(c, a.fields, a.basis)
        n = a.n_links
        if a.algorithm == "modulo_n":
            link = h % n
        elif a.algorithm == "hash_threshold":
            link = h // ((0xFFFFFFFF // n) + 1)
        elif a.algorithm == "hrw":
            link = max(range(n), key=lambda i: (zlib.crc32(i.to_bytes(4, "big"), h), -i))
        else:                                   # iter_hash: rehash until a link in range
            mask, i = (1 << (n - 1).bit_length()) - 1, 0
            while True:
                link = zlib.crc32(i.to_bytes(4, "big"), h) & mask
                i += 1
                if link < n:
                    break
        c.log(f"multipath: link {link} of {n}")
        self._write(c, a.dst, a.ofs, a.nbits, link)

    def _clone(self, c: _Ctx, actions) -> None:
        """clone(ACTIONS): they run on a copy, in a datapath clone of their own (changes not yet
        committed are committed inside it); the flow and the action set are as they were before
        it, and an exit inside it ends the actions after it too (Open vSwitch's
        clone_xlate_actions)."""
        saved = (bytearray(c.flow), bytearray(c.base), c.odp, c.action_set, c.metadata, list(c.stack), c.l3_unknown,
                 c.after_apply)
        c.odp, c.action_set, c.after_apply = [], [], ()
        try:
            self._actions(c, actions)
            if c.freezing and not c.out.error:
                self._finish_freeze(c, False)
            nested = c.odp
        finally:
            c.flow, c.base, c.odp, c.action_set, c.metadata, c.stack, c.l3_unknown, c.after_apply = saved
        if all(isinstance(a, odp.Output) for a in nested):     # nothing to undo: inline, as Open vSwitch
            c.odp.extend(nested)
        else:
            c.odp.append(odp.Clone(tuple(nested)))

    @staticmethod
    def _fin_timeout(c: _Ctx, a: FinTimeout) -> None:
        """A TCP FIN or RST shortens the rule's timeouts when its packets are counted
        (``Visit.credit``).  Unlike Open vSwitch (which ORs the flags of a megaflow's packets
        in its datapath stats), the megaflow matches the FIN and RST bits: the packets of one
        megaflow all have them or none does."""
        if c.rule is None or not c.prereqs_hold("tcp_flags"):
            return
        c.out.wc.unwildcard(F["tcp_flags"], TCP_FIN | TCP_RST)
        if F["tcp_flags"].from_key(c.flow) & (TCP_FIN | TCP_RST):
            c.v.fins.append((c.rule, a.idle_timeout, a.hard_timeout))
            c.log(f"fin_timeout: a FIN or RST: the rule's timeouts become at most "
                  f"idle {a.idle_timeout or '-'}, hard {a.hard_timeout or '-'}")

    def _learn(self, c: _Ctx, a: Learn) -> None:
        """The flow A would add, from the packet's fields as they are now (every source bit is
        read, so the megaflow matches them), recorded for ``Visit.learn`` to add through the
        pipeline: translating adds nothing by itself (ofproto-dpif-xlate.c's xlate_learn_action)."""
        fields: dict[str, list[int]] = {}               # dst field -> [value, mask]
        acts: list = []
        for sp in a.specs:
            v = self._read(c, *sp.src, sp.nbits) if sp.src else sp.value
            if sp.kind == "match":
                name, ofs = sp.dst
                vm = fields.setdefault(name, [0, 0])
                bits = ((1 << sp.nbits) - 1) << ofs
                vm[0] = (vm[0] & ~bits) | ((v << ofs) & bits)
                vm[1] |= bits
            elif sp.kind == "load":
                acts.append(Load(sp.dst[0], sp.dst[1], sp.nbits, v))
            else:
                acts.append(Output(v if v < OFPP10_MAX else v + (OFPP_MAX - OFPP10_MAX)))
        match = {}
        for name, (v, m) in fields.items():
            if name == "NXM_OF_VLAN_TCI":          # as the match fields vlan_vid (present + VID), vlan_pcp
                if m & 0x1FFF:
                    match["vlan_vid"] = (v & 0x1FFF, m & 0x1FFF)
                if m & 0xE000:
                    match["vlan_pcp"] = (v >> 13, m >> 13)
            elif name == "NXM_OF_IN_PORT":
                match["in_port"] = (v if v < OFPP10_MAX else v + (OFPP_MAX - OFPP10_MAX), None)
            else:
                match[name] = (v, m)
        try:
            m = Match(match).implied()
        except MatchError as e:
            c.log(f"learn: no flow ({e})")
            return
        spec = FlowSpec(match=m, instructions=(ApplyActions(tuple(acts)),) if acts else (), table_id=a.table,
                        priority=a.priority, cookie=a.cookie, idle_timeout=a.idle_timeout,
                        hard_timeout=a.hard_timeout, flags=1 if a.flags & LEARN_SEND_FLOW_REM else 0)
        if a.limit:
            # Whether the flow is (or may be) there depends on the table's rules of this cookie:
            # a change to one revalidates the megaflow (Visit.limits, revalidator.py).
            c.v.limits.append((a.table, a.cookie))
        fits = c.p.learn_fits(spec, a.limit)
        if c.tracing:                           # as Open vSwitch's trace of a learn action
            acts_text = format_actions(spec.instructions) if acts else "drop"
            c.log(f"     -> table={a.table} {format_match(m)} priority={a.priority} actions={acts_text}"
                  + ("" if fits else f" (not learned: limit {a.limit} reached)"))
        if fits:
            c.v.learned.append((spec, a.limit))
        if a.result_dst is not None:
            self._write(c, a.result_dst[0], a.result_dst[1], 1, int(fits))

    def _read(self, c: _Ctx, name: str, ofs: int, nbits: int) -> int:
        """Bits OFS..OFS+NBITS-1 of field NAME, as the pipeline sees it now (a packet field's
        whole value is then recorded as read)."""
        f = F[name]
        if f.member is None:
            v = (c.metadata >> f.meta_shift) & f.all_ones
        elif f.name == "in_port":
            v = c.in_ofport
        else:
            c.out.wc.unwildcard(f, ((1 << nbits) - 1) << ofs)      # the bits read, as OVS's subfield copy
            v = f.from_key(c.flow)
        return (v >> ofs) & ((1 << nbits) - 1)

    def _write(self, c: _Ctx, name: str, ofs: int, nbits: int, value: int) -> None:
        """VALUE into bits OFS..OFS+NBITS-1 of field NAME (load, move, pop)."""
        mask = ((1 << nbits) - 1) << ofs
        f = F[name]
        if name == "NXM_OF_VLAN_TCI":
            self._write_tci(c, mask, value << ofs)
            return
        if f.member is None:
            old = (c.metadata >> f.meta_shift) & f.all_ones
            self._set_field(c, name, (old & ~mask) | ((value << ofs) & mask))
        elif mask == f.all_ones:
            self._set_field(c, name, value)
        else:
            self._set_field(c, name, value << ofs, mask)

    @staticmethod
    def _write_tci(c: _Ctx, mask: int, value: int) -> None:
        """load/move/pop into the outer tag's TCI (NXM_OF_VLAN_TCI), as Open vSwitch's
        MFF_VLAN_TCI: the bits of MASK become VALUE's; a TCI with the present bit (0x1000) is
        the outer tag (pushed, 0x8100, if there was none), one without it means no tag (the
        outer one is popped).  As in Open vSwitch's flow, a TCI without the present bit keeps
        its other bits (in the key's outer TCI, which no tag reads then) for a later write."""
        stack = c.vlan_stack()
        present = c.vlan_present()
        a, b = _TCI[0]
        tci = (int.from_bytes(c.flow[a:b], "big") & ~mask) | (value & mask)
        if tci & VLAN_CFI:
            c.set_vlan_stack([(stack[0][0] if present else 0x8100, tci)] + (stack[1:] if present else stack))
        else:
            rest = stack[1:] if present else stack
            c.set_vlan_stack(rest)
            if not rest:
                c.flow[a:b] = tci.to_bytes(2, "big")

    def _set_field(self, c: _Ctx, name: str, value: int, mask: int | None = None) -> None:
        f = F[name]
        if mask is not None:                     # set_field:V/M->F: the other bits stay the flow's
            if f.member is None:
                old = (c.metadata >> f.meta_shift) & f.all_ones
            elif f.name == "in_port":
                old = c.in_ofport
            else:
                if not c.prereqs_hold(name):
                    c.log(f"set_field {name}: prerequisites not met, skipped")
                    return
                old = f.from_key(c.flow)         # its other bits stay: only MASK's decide a commit
            value = (old & ~mask) | (value & mask)
        if name in ("vlan_vid", "vlan_pcp"):
            stack = c.vlan_stack()
            if not c.vlan_present():     # as Open vSwitch's mod_vlan_vid/pcp: push a tag first
                stack = [(0x8100, VLAN_CFI)]
            tpid, tci = stack[0]
            if name == "vlan_vid":
                tci = (tci & 0xE000) | (value & 0xFFF) | VLAN_CFI
            else:
                tci = (tci & 0x1FFF) | ((value & 7) << 13)
            c.set_vlan_stack([(tpid, tci)] + stack[1:])
            return
        if f.member is None:                     # pipeline state, not a header: no commit
            c.metadata = (c.metadata & ~(f.all_ones << f.meta_shift)) | ((value & f.all_ones) << f.meta_shift)
            return
        if f.name == "in_port":                  # as OVS: later lookups, in_port and NORMAL see it
            c.in_ofport = value
            IN_PORT.to_key(c.flow, value)
            return
        if f.member == "tp_src" or f.member == "tp_dst":
            c.out.wc.unwildcard(F["ip_frag"])
            if F["ip_frag"].from_key(c.flow) & FRAG_LATER:   # a first fragment's are set, as OVS
                c.log(f"set_field {name}: a later fragment has no L4 header, skipped")
                return
        if not f.writable or f.member is None or not c.prereqs_hold(name):
            c.log(f"set_field {name}: prerequisites not met, skipped")
            return
        c.out.wc.unwildcard(f, mask)    # as Open vSwitch: whether commit() emits a set depends on the old value
        f.to_key(c.flow, value)

    def _packet_in(self, c: _Ctx, reason: str, max_len: int, controller_id: int = 0, userdata: bytes = b"") -> None:
        c.commit()
        pi = PacketIn(reason, c.table_id, c.cookie, max_len, c.metadata & U64, c.p.name, c.in_ofport, controller_id,
                      userdata, c.metadata & _VECTOR)
        c.out.packet_ins.append(pi)
        c.odp.append(odp.Userspace(self.registry.id_of(pi)))

    def _output(self, c: _Ctx, a: Output) -> None:
        port = a.port
        if port == OFPP_CONTROLLER:
            c.log(f"output to controller (max_len {a.max_len})")
            self._packet_in(c, "action", a.max_len)
        elif port == OFPP_IN_PORT:
            if c.in_ofport in c.p.ports:
                self._emit(c, c.p.ports[c.in_ofport])
        elif port in (OFPP_FLOOD, OFPP_ALL):
            c.commit()
            for p in sorted(c.p.ports.values(), key=lambda p: p.ofport):
                if p.ofport != c.in_ofport and not p.no_fwd and (port == OFPP_ALL or not p.no_flood):
                    self._emit(c, p)
        elif port == OFPP_TABLE:
            self._pipeline(c, 0)
        elif port == OFPP_NORMAL:
            self._normal(c)
        elif port == OFPP_LOCAL:
            p = c.p.ports.get(OFPP_LOCAL)
            if p is None or p.no_fwd:
                c.log("output to LOCAL: the bridge has no local port (ofport: LOCAL in its config), dropped")
            elif c.in_ofport == OFPP_LOCAL:
                c.log("output:LOCAL is the input port: skipped (use in_port)")
            else:
                self._emit(c, p)
        elif port < OFPP_MAX:
            p = c.p.ports.get(port)
            if p is None or p.no_fwd:
                c.log(f"output:{port}: no such port, dropped")
            elif port == c.in_ofport:
                c.log(f"output:{port} is the input port: skipped (use in_port)")
            else:
                self._emit(c, p)

    def _emit(self, c: _Ctx, port: PortEntry) -> None:
        """Out of PORT of the current bridge: a datapath output, or on across a patch port.
        A port a control protocol blocks (STP) takes no frame, and a BPDU only in the states
        that send them, as Open vSwitch's compose_output_action."""
        sp = c.p.special
        if sp:
            # the frame is read (and matched by the megaflow) only when one of the port's gates
            # is shut: with both open every frame leaves (a bond's second pass, under LACP
            # alone, matches its bucket and nothing of the frame)
            fwd = sp.forwarding(port.ofport)
            if not (fwd and sp.sends_bpdu(port.ofport)):
                if is_bpdu(c):
                    if not sp.sends_bpdu(port.ofport):
                        c.log(f"output to {port.name}: the port sends no BPDU in its spanning tree state, skipped")
                        return
                elif not fwd and not sp.exempt(port.ofport, c):
                    c.log(f"output to {port.name}: not forwarding (spanning tree), skipped")
                    return
        if port.dp_port >= 0:
            c.commit()
            c.odp.append(odp.Output(port.dp_port))
        else:
            self._patch(c, port)

    def _patch(self, c: _Ctx, port: PortEntry) -> None:
        """Into the peer bridge as if the frame came in on the peer port, as Open vSwitch does:
        table 0 of the peer with metadata and the action set cleared, in one translation (so
        one megaflow covers both bridges).  The frame's headers are the peer's to change; this
        bridge carries on with its own view of them afterwards (commit() puts back what it
        needs).  A dec_ttl that ends the frame there does not end it here, and, as in Open
        vSwitch, neither does an error there (too deep, say): the peer keeps what it did before
        the error, this bridge carries on, and the error is reported (peer_errors)."""
        peer_p, peer_ofport = port.patch or (None, 0)
        peer = peer_p.ports.get(peer_ofport) if peer_p else None
        if peer is None or peer.patch is None:
            c.log(f"output to patch port {port.name}: its peer is not there, dropped")
            return
        saved = (c.p, c.v, c.in_ofport, c.metadata, c.action_set, c.table_id, c.cookie, c.depth, bytearray(c.flow),
                 c.l3_unknown)
        c.log(f"patch port {port.name} -> bridge {peer_p.name}, in_port {peer.ofport} ({peer.name})")
        c.p, c.v = peer_p, Visit(peer_p, patch=(port, peer), version=peer_p.version)
        c.out.visits.append(c.v)
        # As Open vSwitch's patch_port_output: metadata and registers start at zero, pkt_mark stays.
        c.in_ofport, c.action_set = peer.ofport, []
        c.metadata &= _PKT_MARK.all_ones << _PKT_MARK.meta_shift
        IN_PORT.to_key(c.flow, peer.ofport)
        try:
            sp = c.p.special
            if not (sp and self._special(c)):
                # the peer port's spanning tree state, as the input port's in ``translate``
                # (Open vSwitch's patch_port_output: may_receive, then the tables' actions
                # cancelled and the flow as committed put back when it does not forward)
                if not sp or sp.forwarding(c.in_ofport):
                    self._pipeline(c, 0)
                elif sp.learning(c.in_ofport):
                    n_odp, n_pi, base = len(c.odp), len(c.out.packet_ins), bytearray(c.base)
                    self._pipeline(c, 0, action_set=False)
                    del c.odp[n_odp:], c.out.packet_ins[n_pi:]
                    c.base = base
                    c.log(f"patch port {peer.name} is not forwarding (spanning tree): its actions are cancelled")
                else:
                    c.log(f"patch port {peer.name} neither forwards nor learns (spanning tree): dropped")
        finally:
            (c.p, c.v, c.in_ofport, c.metadata, c.action_set, c.table_id, c.cookie, c.depth, c.flow,
             c.l3_unknown) = saved
        if c.out.error:
            c.log(f"error in bridge {peer_p.name}: {c.out.error}; bridge {c.p.name} carries on")
            c.out.peer_errors.append(f"{peer_p.name}: {c.out.error}")
            c.out.error = None

    # -- NORMAL: the learning switch
    def _normal(self, c: _Ctx) -> None:
        p = c.p
        inp = p.ports.get(c.in_ofport)
        if inp is None:
            c.log("NORMAL: packet from an unknown port, dropped")
            return
        eth_type = c.get("eth_type")
        present = c.vlan_present()
        if not present and eth_type in (0x8100, 0x88A8):
            c.log("NORMAL: partial VLAN tag, dropped")
            return
        vid = c.get("vlan_vid") & 0xFFF if present else None
        vlan = inp.vlan.input_vlan(vid)
        if vlan is None:
            c.log(f"NORMAL: VLAN {vid} is not allowed on {inp.vlan.mode} port {inp.name}, dropped")
            return
        dst, src = c.get("eth_dst"), c.get("eth_src")
        if is_reserved(dst) and not p.forward_bpdu:
            c.log("NORMAL: reserved destination (forward_bpdu is off), dropped")
            return
        garp = eth_type == 0x0806 and dst == 0xFFFFFFFFFFFF and (
            c.get("arp_op") == 2 or c.get("arp_spa") == c.get("arp_tpa"))
        in_bond = p.bonds.get(inp.ofport)
        in_bundle = inp.ofport
        if in_bond is not None:                    # Open vSwitch's bond_check_admissibility
            in_bundle = in_bond.id
            verdict = in_bond.admissible(inp.ofport, bool(dst & 0x010000000000))
            if verdict.startswith("drop:"):
                c.log(f"NORMAL: bond {in_bond.name}: {verdict[6:]} ({inp.name}), dropped")
                return
            if verdict == "drop_if_moved":
                c.v.macs.append((vlan, src))
                e = p.macs.entries.get((vlan, src))
                if e is not None and e.port != in_bundle and (not garp or e.locked_until > p.clock()):
                    c.log(f"NORMAL: bond {in_bond.name}: SLB bond thinks this packet looped back "
                          f"({src:012x} is learned on port {e.port}), dropped")
                    return
        learn = vlan not in p.flood_vlans
        if learn and not src & 0x010000000000 and (not p.special or p.special.learning(inp.ofport)):
            c.v.learns.append((vlan, src, in_bundle, garp))
        c.v.macs.append((vlan, dst))
        out = p.macs.lookup(vlan, dst) if learn and not dst & 0x010000000000 else None
        if out == in_bundle:
            c.log(f"NORMAL: {dst:012x} was learned on the input port, dropped")
            return
        if out is not None and out in p.ports and out not in p.mirror_outputs():
            c.log(f"NORMAL: VLAN {vlan}, {dst:012x} learned on port {out}: forwarding")
            self._output_bundle(c, inp, out, vlan)
            return
        c.log(f"NORMAL: VLAN {vlan}, no learned port for {dst:012x}: flooding")
        mirror_out = p.mirror_outputs()
        inner = inp.vlan.ingress(c.vlan_stack())[1][1]
        for port in sorted(p.ports.values(), key=lambda q: q.ofport):
            bond = p.bonds.get(port.ofport)
            if bond is not None and (bond is in_bond or port.ofport != bond.id):
                continue                           # a bond takes one copy (by the member it chooses)
            if (port.ofport != inp.ofport and not port.no_flood and not port.no_fwd and port.vlan.carries(vlan, inner)
                    and port.ofport not in mirror_out):
                self._output_bundle(c, inp, port.ofport, vlan)

    def _post_recirc(self, c: _Ctx, rid: int) -> None:
        """A balance-tcp bond's frame back from recirculation: out by the member of its bucket."""
        c.out.wc.unwildcard(RECIRC_ID)
        ctx = self.registry.get(rid - 1)
        if isinstance(ctx, Frozen):
            self._thaw(c, ctx)
            return
        p = next((q for q in self.pipelines if isinstance(ctx, BondRecirc) and q.name == ctx.bridge), None)
        bond = next((b for b in p.bonds.values() if b.name == ctx.bond), None) if p is not None else None
        if bond is None:
            c.log(f"recirc_id {rid}: no such bond recirculation (any more), dropped")
            return
        if p is not c.p:
            c.p, c.v = p, Visit(p, version=p.version)
            c.out.visits.append(c.v)
        c.out.wc.unwildcard(DP_HASH, 0xFF)
        bucket = DP_HASH.from_key(c.flow) & 0xFF
        member = bond.bucket_member(bucket)
        if member is None or member not in p.ports:
            c.log(f"bond {bond.name}: hash bucket {bucket}: no member may carry it, dropped")
            return
        c.log(f"bond {bond.name}: dp_hash bucket {bucket}: member {p.ports[member].name}")
        c.v.bonds.append((bond, bucket))
        self._emit(c, p.ports[member])

    def _output_bundle(self, c: _Ctx, inp, ofport: int, vlan: int) -> None:
        """NORMAL's output to the port OFPORT, or to the bond it stands for (by the member the
        bond chooses for the frame, as Open vSwitch's output_normal)."""
        p = c.p
        bond = p.bonds.get(ofport)
        if bond is None:
            self._output_normal(c, inp, p.ports[ofport], vlan)
            return
        if bond.recirculates():                   # balance-tcp: hash and recirculate in the datapath
            tmpl = next((p.ports[o] for o in p.bonds if p.bonds[o] is bond), None)
            tags = inp.vlan.ingress(c.vlan_stack())
            tags[0] = (tags[0][0], vlan, tags[0][2])
            saved = bytearray(c.flow)
            c.set_vlan_stack(tmpl.vlan.egress(tags))
            c.commit()
            rid = self.registry.id_of(BondRecirc(p.name, bond.name)) + 1
            c.odp += [odp.Hash(bond.basis), odp.Recirc(rid)]
            c.log(f"NORMAL: bond {bond.name}: hash(l4({bond.basis})), recirc({rid:#x}): the member by dp_hash & 0xff")
            c.flow = saved
            return
        member, bucket = bond.choose(c, vlan)
        if member is None or member not in p.ports:
            c.log(f"NORMAL: bond {bond.name}: no member may carry it, dropped")
            return
        c.log(f"NORMAL: bond {bond.name}: member {p.ports[member].name}"
              + (f" (hash bucket {bucket})" if bucket is not None else " (active member)"))
        if bucket is not None:
            c.v.bonds.append((bond, bucket))
        self._output_normal(c, inp, p.ports[member], vlan)

    def _output_normal(self, c: _Ctx, inp, port, vlan: int) -> None:
        tags = inp.vlan.ingress(c.vlan_stack())      # the tags inside the bridge (normal.VlanPort)
        tags[0] = (tags[0][0], vlan, tags[0][2])        # in VLAN (a mirror's output VLAN, say)
        saved = bytearray(c.flow)
        c.set_vlan_stack(port.vlan.egress(tags))
        self._emit(c, port)
        c.flow = saved

    def _group(self, c: _Ctx, gid: int) -> None:
        c.depth += 1                           # groups that name each other: bounded like resubmits
        try:
            if c.depth > MAX_DEPTH:
                c.out.error = f"over the maximum translation depth {MAX_DEPTH} (a loop of groups?)"
                return
            self._group_in(c, gid)
        finally:
            c.depth -= 1

    def _group_in(self, c: _Ctx, gid: int) -> None:
        g = c.p.groups.get(gid)
        if g is None:
            c.log(f"group {gid}: no such group, dropped")
            return
        live = [i for i, b in enumerate(g.buckets) if self._live(c, b)]
        if g.type == "all":
            chosen = list(range(len(g.buckets)))
        elif g.type == "indirect":
            chosen = [0] if g.buckets else []
        elif g.type == "ff":
            chosen = live[:1]
        else:                                          # select: a hash of the flow, by weight
            chosen = self._select(c, g, live)
        c.log(f"group {gid} ({g.type}): bucket(s) {chosen}")
        c.commit()
        for i in chosen:               # a bucket's changes stay in the bucket, whatever the type
            c.v.groups.append((gid, i))
            self._bucket(c, g.buckets[i].actions, clone=True)

    def _bucket(self, c: _Ctx, actions, clone: bool) -> None:
        """A bucket's actions are an action set, as in Open vSwitch (OpenFlow 1.3 §5.6.1 and
        ofpacts_execute_action_set): they run in the action set's order, one of each kind, and
        not at all without an output or a group.  A TTL that expires ends this bucket only."""
        actions = execution_order(actions)
        after, c.after_apply = c.after_apply, ()
        try:
            self._bucket_actions(c, actions, clone)
        finally:
            c.after_apply = after

    def _bucket_actions(self, c: _Ctx, actions, clone: bool) -> None:
        if not clone:
            self._actions(c, actions)
            if c.freezing and not c.out.error:
                self._finish_freeze(c, False)
            return
        saved = (bytearray(c.flow), bytearray(c.base), c.odp, c.action_set, c.l3_unknown)
        c.odp, c.action_set = [], []
        try:
            self._actions(c, actions)
            if c.freezing and not c.out.error:
                self._finish_freeze(c, False)
            nested = c.odp
        finally:
            c.flow, c.base, c.odp, c.action_set, c.l3_unknown = saved
        if nested:
            c.odp.append(odp.Clone(tuple(nested)))

    def _live(self, c: _Ctx, b) -> bool:
        """A bucket watching nothing is live; else it is live if its port or its group is (as
        Open vSwitch reads OpenFlow's 'port and/or group')."""
        watches = []
        if b.watch_port not in (None, 0xFFFFFFFF):
            p = c.p.ports.get(b.watch_port)
            watches.append(p is not None and p.live)
        if b.watch_group not in (None, 0xFFFFFFFF):
            g = c.p.groups.get(b.watch_group)
            watches.append(g is not None and any(self._live(c, x) for x in g.buckets))
        return not watches or any(watches)

    def _select(self, c: _Ctx, g, live: list[int]) -> list[int]:
        weights = [(i, g.buckets[i].weight) for i in live if g.buckets[i].weight > 0]
        if not weights:
            return []
        names = ["eth_src", "eth_dst", "eth_type"]
        eth_type = F["eth_type"].from_key(c.flow)
        if eth_type in (0x0800, 0x86DD):
            names += ["ipv4_src", "ipv4_dst"] if eth_type == 0x0800 else ["ipv6_src", "ipv6_dst"]
            names.append("ip_proto")
            proto = F["ip_proto"].from_key(c.flow)
            if proto in (6, 17, 132):
                names += {6: ["tcp_src", "tcp_dst"], 17: ["udp_src", "udp_dst"], 132: ["sctp_src", "sctp_dst"]}[proto]
        data = b"".join(c.get(n).to_bytes(16, "big") for n in names)
        h = zlib.crc32(data) % sum(w for _, w in weights)
        for i, w in weights:
            if h < w:
                return [i]
            h -= w
        return [weights[-1][0]]


def _flat(actions):
    for a in actions:
        if isinstance(a, (odp.Clone, odp.Sample)):
            yield from _flat(a.actions)
        elif isinstance(a, odp.CheckPktLen):
            yield from _flat(a.greater)
            yield from _flat(a.less_equal)
        else:
            yield a

