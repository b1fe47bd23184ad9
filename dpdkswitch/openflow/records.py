"""Records: the structs OpenFlow messages are made of, as dataclasses that pack to and unpack
from bytes, plus the records shared by several messages (ports, group buckets, meter bands,
queues).

A Record has a fixed head described by a ``wire.Layout`` per version (key None: all versions)
and an optional variable tail (``_tail``/``_untail``).  Fields that a version's layout lacks are
ignored when encoding and take their defaults when decoding.  Unpacking raises only ``OFPError``.

Pure functions; any thread; cost linear in the bytes handled.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, ClassVar

from ..ofproto import actions as A
from . import consts as C
from .acts import decode_actions, decode_instructions, encode_actions, encode_instructions
from .errors import OFPError
from .oxm import Match, decode_match, encode_match
from .wire import BAD_LEN, Layout, need

V10, V13 = C.OFP10_VERSION, C.OFP13_VERSION
U16 = struct.Struct("!H")


@dataclass
class Record:
    """A struct with a fixed head (``LAYOUT`` per version, key None for all versions) and a
    variable tail (``_tail``/``_untail``, none by default).  ``LEN_AT`` is the offset of the
    record's own 16-bit total length, for records that carry one."""
    LAYOUT: ClassVar[dict[int | None, Layout]] = {None: Layout()}
    LEN_AT: ClassVar[int | None] = None

    @classmethod
    def len_at(cls, version: int) -> int | None:
        return cls.LEN_AT

    @classmethod
    def layout(cls, version: int) -> Layout:
        lay = cls.LAYOUT.get(version) or cls.LAYOUT.get(None)
        if lay is None:
            raise ValueError(f"{cls.__name__} does not exist in OpenFlow version {version}")
        return lay

    def _tail(self, version: int) -> bytes:
        return b""

    @classmethod
    def _untail(cls, version: int, tail: bytes, kw: dict[str, Any]) -> None:
        if tail:
            raise OFPError(*BAD_LEN)

    def pack(self, version: int) -> bytes:
        b = self.layout(version).pack(self) + self._tail(version)
        at = self.len_at(version)
        return b if at is None else b[:at] + U16.pack(len(b)) + b[at + 2:]

    @classmethod
    def unpack(cls, ver: int, data: bytes, **extra: Any) -> Record:
        """The record filling DATA exactly, in version VER's layout; EXTRA: more constructor args."""
        lay = cls.layout(ver)
        kw = {k: v for k, v in lay.unpack(data).items() if not k.startswith("_")}
        cls._untail(ver, data[lay.size:], kw)
        return cls(**kw, **extra)

    @classmethod
    def unpack_array(cls, version: int, data: bytes) -> tuple[Record, ...]:
        """The records filling DATA, self-delimited (LEN_AT) or of the fixed size."""
        out, pos, size, at = [], 0, cls.layout(version).size, cls.len_at(version)
        assert size > 0
        while pos < len(data):
            if at is not None:
                need(data, pos + at + 2)
                n, = U16.unpack_from(data, pos + at)
                if n < size:
                    raise OFPError(*BAD_LEN)
            else:
                n = size
            need(data, pos + n)
            out.append(cls.unpack(version, data[pos:pos + n]))
            pos += n
        return tuple(out)


class DataTail:
    """Tail: the rest of the record, as ``data``."""

    def _tail(self, version):
        return self.data

    @classmethod
    def _untail(cls, version, tail, kw):
        kw["data"] = tail


class PropertiesTail:
    """Tail: ``properties``, TLVs padded to 8 that the codec keeps as bytes."""

    def _tail(self, version):
        return self.properties

    @classmethod
    def _untail(cls, version, tail, kw):
        if len(tail) % 8:
            raise OFPError(*BAD_LEN)
        kw["properties"] = tail


class MatchTail:
    """Tail (1.3 only): ``match``, an ofp_match."""

    def _tail(self, version):
        return encode_match(self.match) if version == V13 else b""

    @classmethod
    def _untail(cls, version, tail, kw):
        if version == V13:
            kw["match"], n = decode_match(tail)
            tail = tail[n:]
        if tail:
            raise OFPError(*BAD_LEN)


def pack_all(records, version: int) -> bytes:
    return b"".join(r.pack(version) for r in records)


def instr_tail(version: int, match: Match, instructions) -> bytes:
    """The match (1.3) and instructions of a flow; 1.0's actions (its match is in the head)."""
    if version == V10:
        if len(instructions) > 1 or instructions and not isinstance(instructions[0], A.ApplyActions):
            raise ValueError("OpenFlow 1.0 flows take a single ApplyActions")
        return encode_actions(instructions[0].actions if instructions else (), V10)
    return encode_match(match) + encode_instructions(instructions)


def instr_untail(version: int, tail: bytes, kw: dict[str, Any]) -> None:
    if version == V10:
        acts = decode_actions(tail, V10, kw["match"])
        kw["instructions"] = (A.ApplyActions(acts),) if acts else ()
        return
    kw["match"], n = decode_match(tail)
    kw["instructions"] = decode_instructions(tail[n:])


@dataclass
class Port(Record):
    """ofp_port (1.3) / ofp_phy_port (1.0)."""
    port_no: int
    hw_addr: int = 0
    name: str = ""
    config: int = 0
    state: int = 0
    curr: int = 0
    advertised: int = 0
    supported: int = 0
    peer: int = 0
    curr_speed: int = 0           # 1.3 only
    max_speed: int = 0            # 1.3 only
    LAYOUT = {V13: Layout("port_no:P 4x hw_addr:M 2x name:z16 config:I state:I curr:I advertised:I supported:I "
                          "peer:I curr_speed:I max_speed:I"),
              V10: Layout("port_no:p hw_addr:M name:z16 config:I state:I curr:I advertised:I supported:I peer:I")}


@dataclass
class Bucket(Record):
    actions: tuple[A.Action, ...] = ()
    weight: int = 0
    watch_port: int = A.OFPP_ANY
    watch_group: int = C.OFPG_ANY
    LAYOUT = {V13: Layout("_len:H weight:H watch_port:P watch_group:I 4x")}
    LEN_AT = 0

    def _tail(self, version):
        return encode_actions(self.actions, version)

    @classmethod
    def _untail(cls, version, tail, kw):
        kw["actions"] = decode_actions(tail, version)


@dataclass
class MeterBand(Record):
    """A meter band: OFPMBT_DROP, OFPMBT_DSCP_REMARK (prec_level) or OFPMBT_EXPERIMENTER."""
    type: int
    rate: int
    burst_size: int = 0
    prec_level: int = 0           # DSCP_REMARK only
    experimenter: int = 0         # EXPERIMENTER only
    data: bytes = b""             # EXPERIMENTER only, a multiple of 8 bytes
    LAYOUT = {V13: Layout("type:H _len:H rate:I burst_size:I")}
    LEN_AT = 2

    def _tail(self, version):
        if self.type == C.OFPMBT_DSCP_REMARK:
            return struct.pack("!B3x", self.prec_level)
        if self.type == C.OFPMBT_EXPERIMENTER:
            return struct.pack("!I", self.experimenter) + self.data
        return bytes(4)

    @classmethod
    def _untail(cls, version, tail, kw):
        t = kw["type"]
        if t not in (C.OFPMBT_DROP, C.OFPMBT_DSCP_REMARK, C.OFPMBT_EXPERIMENTER):
            raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_BAD_BAND)
        if len(tail) < 4 or len(tail) % 8 != 4 or t != C.OFPMBT_EXPERIMENTER and len(tail) != 4:
            raise OFPError(*BAD_LEN)
        if t == C.OFPMBT_DSCP_REMARK:
            kw["prec_level"] = tail[0]
        elif t == C.OFPMBT_EXPERIMENTER:
            kw["experimenter"], = struct.unpack_from("!I", tail)
            kw["data"] = tail[4:]


@dataclass
class PacketQueue(PropertiesTail, Record):
    """A queue in a queue-get-config reply; ``properties`` kept as encoded (TLVs padded to 8)."""
    queue_id: int
    port: int = 0                 # 1.3 only
    properties: bytes = b""
    LAYOUT = {V13: Layout("queue_id:I port:P _len:H 6x"), V10: Layout("queue_id:I _len:H 2x")}

    @classmethod
    def len_at(cls, version):
        return 8 if version == V13 else 4
