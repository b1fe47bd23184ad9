"""OpenFlow messages as dataclasses, and ``encode``/``decode`` between them and bytes.

Every message carries its ``version`` (OFP10_VERSION or OFP13_VERSION; HELLO, ERROR and ECHO
decode for any version) and ``xid`` as keyword fields.  One class serves both versions where
OpenFlow 1.0 has the message: fields that a version lacks are ignored when encoding it and take
their defaults when decoding it; OpenFlow 1.0 flows' actions appear as one ApplyActions
instruction (none when empty) and its packet-in's in_port as ``match['in_port']``.  Port
numbers are always 1.3's (``wire.port_from10``).

The messages are ``records.Record``s; ``REGISTRY`` maps (version, type) to the class, and
multipart bodies are looked up in ``multipart.MULTIPART`` by (type, is_reply).

``decode`` raises only ``OFPError`` for any input, carrying the first 64 bytes of the message
and its xid; ``encode`` expects a valid message (ValueError/struct.error otherwise).

Pure functions; any thread; cost linear in the message size.
"""
from __future__ import annotations

import struct
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar

from ..ofproto import actions as A
from . import consts as C
from .acts import decode_actions, encode_actions
from .errors import OFPError
from .multipart import MULTIPART, MULTIPART10
from .oxm import Match, decode_match, encode_match
from .records import (V10, V13, Bucket, DataTail, MatchTail, MeterBand, PacketQueue, Port, Record, instr_tail,
                      instr_untail, pack_all)
from .wire import BAD_LEN, Layout, need, zeros_to8

HEADER = struct.Struct("!BBHI")


# --- messages -------------------------------------------------------------------------------------
@dataclass
class Message(Record):
    """An OpenFlow message; ``TYPE`` maps each version that has it to its message type."""
    TYPE: ClassVar[dict[int, int]] = {}
    _: KW_ONLY
    version: int = V13
    xid: int = 0


@dataclass
class Hello(Message):
    """HELLO; ``versions`` the version bitmap element (empty: none sent)."""
    versions: tuple[int, ...] = ()
    TYPE = {V10: C.OFPT_HELLO, V13: C.OFPT_HELLO}

    def _tail(self, version):
        if not self.versions:
            return b""
        words = [0] * (max(self.versions) // 32 + 1)
        for v in self.versions:
            words[v // 32] |= 1 << (v % 32)
        elem = struct.pack(f"!HH{len(words)}I", C.OFPHET_VERSIONBITMAP, 4 + 4 * len(words), *words)
        return elem + zeros_to8(len(elem))

    @classmethod
    def _untail(cls, version, tail, kw):
        pos, versions = 0, []
        while pos < len(tail):
            need(tail, pos + 4)
            t, n = struct.unpack_from("!HH", tail, pos)
            if n < 4 or pos + n > len(tail):
                raise OFPError(*BAD_LEN)
            if t == C.OFPHET_VERSIONBITMAP:
                if n % 4:
                    raise OFPError(*BAD_LEN)
                words = struct.unpack_from(f"!{(n - 4) // 4}I", tail, pos + 4)
                versions = [i * 32 + b for i, w in enumerate(words) for b in range(32) if w >> b & 1]
            pos += (n + 7) & ~7
        kw["versions"] = tuple(versions)


@dataclass
class Error(DataTail, Message):
    type: int = 0                 # the error type
    code: int = 0
    data: bytes = b""
    TYPE = {V10: C.OFPT_ERROR, V13: C.OFPT_ERROR}
    LAYOUT = {None: Layout("type:H code:H")}


@dataclass
class EchoRequest(DataTail, Message):
    data: bytes = b""
    TYPE = {V10: C.OFPT_ECHO_REQUEST, V13: C.OFPT_ECHO_REQUEST}


@dataclass
class EchoReply(EchoRequest):
    TYPE = {V10: C.OFPT_ECHO_REPLY, V13: C.OFPT_ECHO_REPLY}


@dataclass
class Experimenter(DataTail, Message):
    """EXPERIMENTER (1.0: VENDOR, whose first body word is taken as exp_type), passed through."""
    experimenter: int = 0
    exp_type: int = 0
    data: bytes = b""
    TYPE = {V10: C.OFPT10_VENDOR, V13: C.OFPT_EXPERIMENTER}
    LAYOUT = {None: Layout("experimenter:I exp_type:I")}


HEADER_ONLY: set[type] = set()          # the classes _empty makes: decode builds them from the header


def _empty(name: str, t13: int | None, t10: int | None) -> type[Message]:
    """A message class without a body."""
    types = {v: t for v, t in ((V13, t13), (V10, t10)) if t is not None}
    cls = dataclass(type(name, (Message,), {"TYPE": types, "__doc__": f"{name}: header only."}))
    HEADER_ONLY.add(cls)
    return cls


FeaturesRequest = _empty("FeaturesRequest", C.OFPT_FEATURES_REQUEST, C.OFPT_FEATURES_REQUEST)
GetConfigRequest = _empty("GetConfigRequest", C.OFPT_GET_CONFIG_REQUEST, C.OFPT_GET_CONFIG_REQUEST)
BarrierRequest = _empty("BarrierRequest", C.OFPT_BARRIER_REQUEST, C.OFPT10_BARRIER_REQUEST)
BarrierReply = _empty("BarrierReply", C.OFPT_BARRIER_REPLY, C.OFPT10_BARRIER_REPLY)
GetAsyncRequest = _empty("GetAsyncRequest", C.OFPT_GET_ASYNC_REQUEST, None)


@dataclass
class FeaturesReply(Message):
    datapath_id: int = 0
    n_buffers: int = 0
    n_tables: int = 0
    capabilities: int = 0
    auxiliary_id: int = 0         # 1.3 only
    actions: int = 0              # 1.0 only: supported action bitmap
    ports: tuple[Port, ...] = ()  # 1.0 only (1.3: port-desc multipart)
    TYPE = {V10: C.OFPT_FEATURES_REPLY, V13: C.OFPT_FEATURES_REPLY}
    LAYOUT = {V13: Layout("datapath_id:Q n_buffers:I n_tables:B auxiliary_id:B 2x capabilities:I _reserved:I"),
              V10: Layout("datapath_id:Q n_buffers:I n_tables:B 3x capabilities:I actions:I")}

    def _tail(self, version):
        return pack_all(self.ports, version) if version == V10 else b""

    @classmethod
    def _untail(cls, version, tail, kw):
        if version == V10:
            kw["ports"] = Port.unpack_array(version, tail)
        elif tail:
            raise OFPError(*BAD_LEN)


@dataclass
class GetConfigReply(Message):
    flags: int = 0
    miss_send_len: int = C.OFPCML_NO_BUFFER
    TYPE = {V10: C.OFPT_GET_CONFIG_REPLY, V13: C.OFPT_GET_CONFIG_REPLY}
    LAYOUT = {None: Layout("flags:H miss_send_len:H")}


@dataclass
class SetConfig(GetConfigReply):
    TYPE = {V10: C.OFPT_SET_CONFIG, V13: C.OFPT_SET_CONFIG}


@dataclass
class PacketIn(Message):
    """PACKET_IN; in 1.0 ``match`` holds just in_port."""
    buffer_id: int = C.OFP_NO_BUFFER
    total_len: int = 0
    reason: int = C.OFPR_NO_MATCH
    table_id: int = 0             # 1.3 only
    cookie: int = 0               # 1.3 only
    match: Match = field(default_factory=dict)
    data: bytes = b""
    TYPE = {V10: C.OFPT_PACKET_IN, V13: C.OFPT_PACKET_IN}
    LAYOUT = {V13: Layout("buffer_id:I total_len:H reason:B table_id:B cookie:Q"),
              V10: Layout("buffer_id:I total_len:H in_port:p reason:B 1x")}

    @property
    def in_port(self) -> int:
        return self.match.get("in_port", (A.OFPP_ANY, None))[0]

    def _tail(self, version):
        return self.data if version == V10 else encode_match(self.match) + bytes(2) + self.data

    @classmethod
    def _untail(cls, version, tail, kw):
        if version == V10:
            kw["match"] = {"in_port": (kw.pop("in_port"), None)}
            kw["data"] = tail
            return
        kw["match"], n = decode_match(tail)
        need(tail, n + 2)
        kw["data"] = tail[n + 2:]


@dataclass
class FlowRemoved(MatchTail, Message):
    cookie: int = 0
    priority: int = C.OFP_DEFAULT_PRIORITY
    reason: int = C.OFPRR_IDLE_TIMEOUT
    table_id: int = 0             # 1.3 only
    duration_sec: int = 0
    duration_nsec: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0         # 1.3 only
    packet_count: int = 0
    byte_count: int = 0
    match: Match = field(default_factory=dict)
    TYPE = {V10: C.OFPT_FLOW_REMOVED, V13: C.OFPT_FLOW_REMOVED}
    LAYOUT = {V13: Layout("cookie:Q priority:H reason:B table_id:B duration_sec:I duration_nsec:I idle_timeout:H "
                          "hard_timeout:H packet_count:Q byte_count:Q"),
              V10: Layout("match:W cookie:Q priority:H reason:B 1x duration_sec:I duration_nsec:I idle_timeout:H "
                          "2x packet_count:Q byte_count:Q")}


@dataclass
class PortStatus(Message):
    reason: int = C.OFPPR_ADD
    desc: Port = field(default_factory=lambda: Port(0))
    TYPE = {V10: C.OFPT_PORT_STATUS, V13: C.OFPT_PORT_STATUS}
    LAYOUT = {None: Layout("reason:B 7x")}

    def _tail(self, version):
        return self.desc.pack(version)

    @classmethod
    def _untail(cls, version, tail, kw):
        if len(tail) != Port.layout(version).size:
            raise OFPError(*BAD_LEN)
        kw["desc"] = Port.unpack(version, tail)


@dataclass
class PacketOut(Message):
    buffer_id: int = C.OFP_NO_BUFFER
    in_port: int = A.OFPP_CONTROLLER
    actions: tuple[A.Action, ...] = ()
    data: bytes = b""
    TYPE = {V10: C.OFPT_PACKET_OUT, V13: C.OFPT_PACKET_OUT}
    LAYOUT = {V13: Layout("buffer_id:I in_port:P _actions_len:H 6x"),
              V10: Layout("buffer_id:I in_port:p _actions_len:H")}

    def pack(self, version):
        acts = encode_actions(self.actions, version)
        return self.layout(version).pack(self, _actions_len=len(acts)) + acts + self.data

    @classmethod
    def unpack(cls, ver, data, **extra):
        lay = cls.layout(ver)
        kw = lay.unpack(data)
        n = kw.pop("_actions_len")
        need(data, lay.size + n)
        acts = decode_actions(data[lay.size:lay.size + n], ver)
        return cls(kw["buffer_id"], kw["in_port"], acts, data[lay.size + n:], **extra)


@dataclass
class FlowMod(Message):
    """FLOW_MOD; a 1.0 one has table_id 0, no cookie_mask/out_group and one ApplyActions at most."""
    match: Match = field(default_factory=dict)
    instructions: tuple[A.Instruction, ...] = ()
    cookie: int = 0
    cookie_mask: int = 0          # 1.3 only
    table_id: int = 0             # 1.3 only
    command: int = C.OFPFC_ADD
    idle_timeout: int = 0
    hard_timeout: int = 0
    priority: int = C.OFP_DEFAULT_PRIORITY
    buffer_id: int = C.OFP_NO_BUFFER
    out_port: int = A.OFPP_ANY
    out_group: int = C.OFPG_ANY   # 1.3 only
    flags: int = 0
    TYPE = {V10: C.OFPT_FLOW_MOD, V13: C.OFPT_FLOW_MOD}
    LAYOUT = {V13: Layout("cookie:Q cookie_mask:Q table_id:B command:B idle_timeout:H hard_timeout:H priority:H "
                          "buffer_id:I out_port:P out_group:I flags:H 2x"),
              V10: Layout("match:W cookie:Q command:H idle_timeout:H hard_timeout:H priority:H buffer_id:I "
                          "out_port:p flags:H")}

    def _tail(self, version):
        return instr_tail(version, self.match, self.instructions)

    @classmethod
    def _untail(cls, version, tail, kw):
        if kw["command"] > C.OFPFC_DELETE_STRICT:
            raise OFPError(C.OFPET_FLOW_MOD_FAILED, C.OFPFMFC_BAD_COMMAND)
        instr_untail(version, tail, kw)


@dataclass
class GroupMod(Message):
    command: int = C.OFPGC_ADD
    type: int = C.OFPGT_ALL       # the group type
    group_id: int = 0
    buckets: tuple[Bucket, ...] = ()
    TYPE = {V13: C.OFPT_GROUP_MOD}
    LAYOUT = {V13: Layout("command:H type:B 1x group_id:I")}

    def _tail(self, version):
        return pack_all(self.buckets, version)

    @classmethod
    def _untail(cls, version, tail, kw):
        if kw["command"] > C.OFPGC_DELETE:
            raise OFPError(C.OFPET_GROUP_MOD_FAILED, C.OFPGMFC_BAD_COMMAND)
        if kw["type"] > C.OFPGT_FF:
            raise OFPError(C.OFPET_GROUP_MOD_FAILED, C.OFPGMFC_BAD_TYPE)
        kw["buckets"] = Bucket.unpack_array(version, tail)


@dataclass
class PortMod(Message):
    port_no: int = 0
    hw_addr: int = 0
    config: int = 0
    mask: int = 0
    advertise: int = 0
    TYPE = {V10: C.OFPT10_PORT_MOD, V13: C.OFPT_PORT_MOD}
    LAYOUT = {V13: Layout("port_no:P 4x hw_addr:M 2x config:I mask:I advertise:I 4x"),
              V10: Layout("port_no:p hw_addr:M config:I mask:I advertise:I 4x")}


@dataclass
class TableMod(Message):
    table_id: int = 0
    config: int = 0
    TYPE = {V13: C.OFPT_TABLE_MOD}
    LAYOUT = {V13: Layout("table_id:B 3x config:I")}


@dataclass
class MeterMod(Message):
    command: int = C.OFPMC_ADD
    flags: int = 0
    meter_id: int = 0
    bands: tuple[MeterBand, ...] = ()
    TYPE = {V13: C.OFPT_METER_MOD}
    LAYOUT = {V13: Layout("command:H flags:H meter_id:I")}

    def _tail(self, version):
        return pack_all(self.bands, version)

    @classmethod
    def _untail(cls, version, tail, kw):
        if kw["command"] > C.OFPMC_DELETE:
            raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_BAD_COMMAND)
        kw["bands"] = MeterBand.unpack_array(version, tail)


@dataclass
class QueueGetConfigRequest(Message):
    port: int = A.OFPP_ANY
    TYPE = {V10: C.OFPT10_QUEUE_GET_CONFIG_REQUEST, V13: C.OFPT_QUEUE_GET_CONFIG_REQUEST}
    LAYOUT = {V13: Layout("port:P 4x"), V10: Layout("port:p 2x")}


@dataclass
class QueueGetConfigReply(Message):
    port: int = A.OFPP_ANY
    queues: tuple[PacketQueue, ...] = ()
    TYPE = {V10: C.OFPT10_QUEUE_GET_CONFIG_REPLY, V13: C.OFPT_QUEUE_GET_CONFIG_REPLY}
    LAYOUT = {V13: Layout("port:P 4x"), V10: Layout("port:p 6x")}

    def _tail(self, version):
        return pack_all(self.queues, version)

    @classmethod
    def _untail(cls, version, tail, kw):
        kw["queues"] = PacketQueue.unpack_array(version, tail)


@dataclass
class RoleRequest(Message):
    role: int = C.OFPCR_ROLE_NOCHANGE
    generation_id: int = 0
    TYPE = {V13: C.OFPT_ROLE_REQUEST}
    LAYOUT = {V13: Layout("role:I 4x generation_id:Q")}


@dataclass
class RoleReply(RoleRequest):
    TYPE = {V13: C.OFPT_ROLE_REPLY}


@dataclass
class GetAsyncReply(Message):
    """Async masks, each (master/equal, slave)."""
    packet_in_mask: tuple[int, int] = (0, 0)
    port_status_mask: tuple[int, int] = (0, 0)
    flow_removed_mask: tuple[int, int] = (0, 0)
    TYPE = {V13: C.OFPT_GET_ASYNC_REPLY}
    LAYOUT = {V13: Layout("packet_in_mask:2I port_status_mask:2I flow_removed_mask:2I")}


@dataclass
class SetAsync(GetAsyncReply):
    TYPE = {V13: C.OFPT_SET_ASYNC}


@dataclass
class MultipartRequest(Message):
    """MULTIPART_REQUEST (1.0: STATS_REQUEST).  ``body`` per ``MULTIPART``: None, a record, or a
    tuple of records."""
    type: int = C.OFPMP_DESC      # the multipart type
    flags: int = 0
    body: Any = None
    TYPE = {V10: C.OFPT10_STATS_REQUEST, V13: C.OFPT_MULTIPART_REQUEST}
    LAYOUT = {V13: Layout("type:H flags:H 4x"), V10: Layout("type:H flags:H")}
    REPLY: ClassVar[bool] = False

    def _tail(self, version):
        spec = MULTIPART[self.type, self.REPLY]
        if spec is None:
            return b""
        return pack_all(self.body, version) if isinstance(spec, list) else self.body.pack(version)

    @classmethod
    def _untail(cls, version, tail, kw):
        spec = MULTIPART.get((kw["type"], cls.REPLY), False)
        if spec is False or version == V10 and kw["type"] not in MULTIPART10:
            raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_MULTIPART)
        if spec is None:
            super()._untail(version, tail, kw)
            kw["body"] = None
        else:
            kw["body"] = spec[0].unpack_array(version, tail) if isinstance(spec, list) else spec.unpack(version, tail)


@dataclass
class MultipartReply(MultipartRequest):
    """MULTIPART_REPLY (1.0: STATS_REPLY)."""
    TYPE = {V10: C.OFPT10_STATS_REPLY, V13: C.OFPT_MULTIPART_REPLY}
    REPLY = True


# --- registry, encode, decode ---------------------------------------------------------------------
MESSAGES: tuple[type[Message], ...] = (
    Hello, Error, EchoRequest, EchoReply, Experimenter, FeaturesRequest, FeaturesReply, GetConfigRequest,
    GetConfigReply, SetConfig, PacketIn, FlowRemoved, PortStatus, PacketOut, FlowMod, GroupMod, PortMod, TableMod,
    MultipartRequest, MultipartReply, BarrierRequest, BarrierReply, QueueGetConfigRequest, QueueGetConfigReply,
    RoleRequest, RoleReply, GetAsyncRequest, GetAsyncReply, SetAsync, MeterMod)
REGISTRY: dict[tuple[int, int], type[Message]] = {(v, t): cls for cls in MESSAGES for v, t in cls.TYPE.items()}
ANY_VERSION = {cls.TYPE[V13]: cls for cls in (Hello, Error, EchoRequest, EchoReply)}


def encode(msg: Message) -> bytes:
    """MSG on the wire, header included."""
    cls, version = type(msg), msg.version
    if version not in C.VERSIONS and cls in ANY_VERSION.values():
        version = V13                             # HELLO/ERROR/ECHO of another version: same layout
    t = cls.TYPE.get(version)
    if t is None:
        raise ValueError(f"{cls.__name__} does not exist in OpenFlow version {msg.version}")
    body = msg.pack(version)
    if len(body) + 8 > C.OFP_MAX_MSG_LEN:
        raise ValueError(f"{cls.__name__} of {len(body) + 8} bytes exceeds 65535")
    return HEADER.pack(msg.version, t, len(body) + 8, msg.xid) + body


def decode(data: bytes) -> Message:
    """The message DATA holds (exactly one, header included); OFPError if it is malformed."""
    data = bytes(data)
    if len(data) < 8:
        raise OFPError(*BAD_LEN, data[:64])
    version, type_, length, xid = HEADER.unpack_from(data)
    try:
        if version in C.VERSIONS:
            cls, layout_version = REGISTRY.get((version, type_)), version
            if cls is None:
                raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_TYPE)
        else:                                     # only HELLO/ERROR/ECHO, for version negotiation
            cls, layout_version = ANY_VERSION.get(type_), V13
            if cls is None:
                raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_VERSION)
        if length != len(data):
            raise OFPError(*BAD_LEN)
        if length == 8 and cls in HEADER_ONLY:     # (a barrier after every ovs-ofctl flow-mod)
            return cls(version=version, xid=xid)
        return cls.unpack(layout_version, data[8:], version=version, xid=xid)
    except OFPError as e:
        e.data, e.xid, e.version = e.data or data[:64], xid, version
        raise
