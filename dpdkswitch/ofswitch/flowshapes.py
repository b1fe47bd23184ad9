"""Compiled flow-mod shapes: an OpenFlow 1.3 flow-mod ADD that differs from one already
decoded and checked only in values that no check reads becomes its FlowSpec without being
decoded or checked again.

A controller pushing a pipeline sends thousands of flow-mods that differ only in a few
values (an address, a port, the priority, the cookie).  The first of a shape goes the whole
way (``openflow.message.decode``, then ``FlowManager``'s checks: one definition of what a
flow-mod means); ``learn`` then keeps what the rest of that shape share: every byte of the
message but the xid, cookie, idle and hard timeouts, priority, and the values of the exactly
matched fields that the match may substitute (``Match.substitutable``: plain key fields that
no prerequisite, consistency check or other field reads, at their full width, so every value
decodes and checks as the first did).  ``find`` recognises a message of a known shape (one
comparison of its fixed bytes with the last shape found's, else one dict probe and one such
comparison) and ``Shape.values`` builds its match from the values (``Match.substituter``: the key
by substitution).  A shape is kept only if building the first message's FlowSpec from it
gives what the whole way gave.  What depends on the tables' state (groups and meters that
exist, the table's flow limit, overlaps) is checked per flow-mod by the caller as for any other.

Contract: the control thread (the OpenFlow switch's FlowManager).  Cost: ``find`` is a join of
a few slices and a comparison (and a dict probe when the shape is not the last one's),
``Shape.values`` a few slices and the Match, ``spec`` those and the FlowSpec; ``learn`` one
pass over the match's TLVs.  At most MAX_SHAPES shapes are kept (all forgotten when full).
"""
from __future__ import annotations

import struct

from ..ofproto.flowstr import FlowSpec
from ..openflow import consts as C
from ..openflow.message import HEADER, FlowMod, encode
from ..openflow.oxm import match_tlvs, oxm_width

MAX_SHAPES = 1024
# What varies within a shape in the flow-mod's head: xid, cookie, idle_timeout, hard_timeout,
# priority; the rest of it is fixed (_FIXED_HEAD: version, type, length; cookie_mask, table_id,
# command; buffer_id, out_port, out_group, flags, pad; the ofp_match's type and length).
_VARY = struct.Struct("!4xIQ10xHHH")
_MATCH_AT = HEADER.size + FlowMod.LAYOUT[C.OFP13_VERSION].size


def _check_offsets() -> None:
    probe = encode(FlowMod(xid=0x01020304, cookie=0x05060708090A0B0C, idle_timeout=0x0D0E, hard_timeout=0x0F10,
                           priority=0x1112, version=C.OFP13_VERSION))
    assert _VARY.unpack_from(probe) == (0x01020304, 0x05060708090A0B0C, 0x0D0E, 0x0F10, 0x1112)
    assert probe[_MATCH_AT:_MATCH_AT + 2] == b"\0\x01"        # OFPMT_OXM


_check_offsets()


def _head(raw: bytes) -> bytes:
    return raw[:4] + raw[16:26] + raw[32:_MATCH_AT + 4]


class Shape:
    """What the flow-mods of one shape share; ``segs`` are the fixed ranges of the message: the
    head's (``_head``) and those of the match and instructions around the free fields."""
    __slots__ = ("segs", "fixed", "free", "template", "fixed_of", "match_of")

    def __init__(self, raw: bytes, free: list[tuple[int, int]], fields: tuple, template: FlowSpec):
        segs, pos = [(0, 4), (16, 26)], 32         # (the head's last range runs on into the match)
        for a, b in free:
            segs.append((pos, a))
            pos = b
        segs.append((pos, len(raw)))
        self.segs = tuple(segs)
        # fixed_of(raw): the bytes of RAW in the fixed ranges, joined
        if len(segs) == 4:                        # one free field (the common shape): four slices
            _, _, (a2, b2), (a3, b3) = segs
            self.fixed_of = lambda raw: raw[:4] + raw[16:26] + raw[a2:b2] + raw[a3:b3]
        else:
            self.fixed_of = lambda raw: b"".join([raw[a:b] for a, b in segs])
        self.fixed = self.fixed_of(raw)
        self.free, self.template = tuple(free), template
        self.match_of = template.match.substituter(fields)     # (the free fields' values)

    def values(self, raw: bytes) -> tuple:
        """What RAW (of this shape) has of its own: (match, priority, cookie, idle_timeout,
        hard_timeout); the rest is the template's."""
        _, cookie, idle, hard, priority = _VARY.unpack_from(raw)
        free = self.free
        if len(free) == 1:
            (a, b), = free
            match = self.match_of(int.from_bytes(raw[a:b], "big"))
        else:
            match = self.match_of(*[int.from_bytes(raw[a:b], "big") for a, b in free])
        return match, priority, cookie, idle, hard

    def spec(self, raw: bytes) -> FlowSpec:
        match, priority, cookie, idle, hard = self.values(raw)
        return self.template.replaced(match=match, priority=priority, cookie=cookie, idle_timeout=idle,
                                      hard_timeout=hard)


class FlowModShapes:
    """The shapes of the flow-mods one bridge was sent (see the module's docstring)."""

    def __init__(self) -> None:
        self.shapes: dict[bytes, list[Shape]] = {}
        self.n_shapes = 0
        self.hits = 0
        self.last: Shape | None = None            # the last one found: a run's flow-mods share theirs

    def find(self, raw: bytes) -> Shape | None:
        """The shape of RAW (an OpenFlow 1.3 FLOW_MOD, whole) if it has a known one, else None."""
        s = self.last
        if s is not None and s.fixed_of(raw) == s.fixed:     # (its fixed bytes include the head's)
            self.hits += 1
            return s
        cands = self.shapes.get(raw[:4] + raw[16:26] + raw[32:_MATCH_AT + 4])    # _head(raw)
        if cands is not None:
            for s in cands:
                if s.fixed_of(raw) == s.fixed:
                    self.hits += 1
                    self.last = s
                    return s
        return None

    def spec(self, raw: bytes) -> FlowSpec | None:
        """The FlowSpec of RAW (an OpenFlow 1.3 FLOW_MOD, whole) if it has a known shape, else None."""
        s = self.find(raw)
        return s.spec(raw) if s is not None else None

    def learn(self, raw: bytes, msg: FlowMod, spec: FlowSpec) -> None:
        """RAW, decoded as MSG (an OpenFlow 1.3 ADD), passed the checks that do not depend on
        the tables' state as SPEC: keep its shape."""
        if msg.command != C.OFPFC_ADD or msg.version != C.OFP13_VERSION or msg.buffer_id != C.OFP_NO_BUFFER:
            return
        match = spec.match
        free, fields = [], []
        for a, b, f, masked in match_tlvs(raw, _MATCH_AT):
            if f is None or masked or b - a != oxm_width(f) or oxm_width(f) * 8 != f.bits:
                continue
            if match.substitutable(f):
                free.append((a, b))
                fields.append(f)
        shape = Shape(raw, free, tuple(fields), spec)
        if shape.spec(raw) != spec or shape.spec(raw).match.key_and_mask_ints() != match.key_and_mask_ints():
            return                                # (not expected: then this shape takes the whole way)
        if self.n_shapes >= MAX_SHAPES:
            self.shapes.clear()
            self.n_shapes = 0
            self.last = None
        self.shapes.setdefault(_head(raw), []).append(shape)
        self.n_shapes += 1
