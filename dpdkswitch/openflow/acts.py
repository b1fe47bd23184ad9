"""Actions and instructions on the wire, to and from the value classes of ``ofproto.actions``.

OpenFlow 1.3: the standard actions those classes cover (set-field through an OXM TLV) and all six
instructions.  OpenFlow 1.0 actions map onto the same classes: output (16-bit reserved ports
onto OFPP_*), set_vlan_vid -> SetField('vlan_vid', vid | 0x1000), set_vlan_pcp, strip_vlan ->
PopVlan, set_dl_src/dst, set_nw_src/dst, set_nw_tos -> SetField('ip_dscp', tos >> 2),
set_tp_src/dst -> SetField('tcp_src'...) (udp/sctp when the flow matches that ip_proto), enqueue
-> SetQueue + Output; and Nicira's dec_ttl and set_queue vendor actions -> DecNwTtl, SetQueue.
Encoding 1.0 turns SetQueue + Output (default max_len) back into enqueue.

Decoding raises ``OFPError`` (OFPET_BAD_ACTION / OFPET_BAD_INSTRUCTION codes); encoding expects
actions the version can express (ValueError otherwise).  set_field to in_port travels as Nicira's
16-bit NXM_OF_IN_PORT, as ovs-ofctl sends it (Open vSwitch refuses OXM's IN_PORT there,
OFPBAC_BAD_SET_ARGUMENT, and so does this).  ``check_flow_mod`` is what Open vSwitch checks when a
flow-mod arrives beyond the bytes: set-field values, output ports, copy_ttl_*, and whether the
actions fit the match (ofproto.consistency), each answered with Open vSwitch's error; checks that
need the switch's state (ports, groups, meters) are left to the caller.

Pure functions; any thread; cost linear in the number of actions.
"""
from __future__ import annotations

import struct

from ..ofproto import actions as A
from ..ofproto import consistency
from ..ofproto import fields as F
from ..ofproto.match import Match as OfMatch
from . import consts as C
from .errors import OFPError
from .oxm import NXM_OF_VLAN_TCI, Match, decode_oxms, encode_oxm, oxm_width
from .wire import Layout, port_from10, port_to10, zeros_to8

_TL = struct.Struct("!HH")


def _ba(code: int) -> OFPError:
    return OFPError(C.OFPET_BAD_ACTION, code)


def _bi(code: int) -> OFPError:
    return OFPError(C.OFPET_BAD_INSTRUCTION, code)


def _tlvs(data: bytes, bad_len: OFPError):
    """(type, whole TLV) for each type/length TLV filling DATA; lengths must be >= 8, multiples of 8."""
    pos = 0
    while pos < len(data):
        if len(data) - pos < 4:
            raise bad_len
        type_, n = _TL.unpack_from(data, pos)
        if n < 8 or n % 8 or pos + n > len(data):
            raise bad_len
        yield type_, data[pos:pos + n]
        pos += n


# --- Nicira extension actions (both versions: OpenFlow 1.0 vendor, 1.3 experimenter actions) -----
# Open vSwitch's lib/ofp-actions.c layouts after the 10-byte type/len/vendor/subtype head.  A
# field in them is a 4-byte NXM/OXM header (class, field << 1 | hasmask, length in bytes).
_NX_EXT = {C.NXAST_RESUBMIT: Layout("port:H table:B 3x"), C.NXAST_RESUBMIT_TABLE: Layout("port:H table:B 3x"),
           C.NXAST_REG_MOVE: Layout("nbits:H src_ofs:H dst_ofs:H src:I dst:I"),
           C.NXAST_REG_LOAD: Layout("ofs_nbits:H dst:I value:Q"),
           C.NXAST_STACK_PUSH: Layout("ofs:H field:I nbits:H 6x"), C.NXAST_STACK_POP: Layout("ofs:H field:I nbits:H 6x"),
           C.NXAST_EXIT: Layout("6x"),
           C.NXAST_SAMPLE: Layout("probability:H collector_set_id:I obs_domain_id:I obs_point_id:I"),
           C.NXAST_CONJUNCTION: Layout("clause:B n_clauses:B id:I"),
           C.NXAST_FIN_TIMEOUT: Layout("idle:H hard:H 2x"),
           C.NXAST_CONTROLLER: Layout("max_len:H id:H reason:B 1x"),
           C.NXAST_MULTIPATH: Layout("fields:H basis:H 2x algorithm:H max_link:H arg:I 2x ofs_nbits:H dst:I"),
           C.NXAST_PUSH_MPLS: Layout("ethertype:H 4x"), C.NXAST_POP_MPLS: Layout("ethertype:H 4x"),
           C.NXAST_SET_MPLS_TTL: Layout("ttl:B 5x"), C.NXAST_DEC_MPLS_TTL: Layout("6x"),
           C.NXAST_SET_MPLS_LABEL: Layout("2x label:I"), C.NXAST_SET_MPLS_TC: Layout("tc:B 5x"),
           C.NXAST_POP_QUEUE: Layout("6x"), C.NXAST_CHECK_PKT_LARGER: Layout("pkt_len:H ofs:H dst:I 6x")}


def _nx_field(header: int) -> F.Field:
    f = F.BY_WIRE.get((header >> 16, (header >> 9) & 0x7F))
    if f is None or header & 0x100 or (header & 0xFF) != oxm_width(f):
        raise _ba(C.OFPBAC_BAD_ARGUMENT)
    return f


def _nx_header(name: str) -> int:
    f = F.field(name)
    cls, fid = f.wire
    return cls << 16 | fid << 9 | oxm_width(f)


def _bits_ok(f: F.Field, ofs: int, nbits: int) -> None:
    if nbits < 1 or ofs + nbits > f.bits:
        raise _ba(C.OFPBAC_BAD_ARGUMENT)


def _writable(f: F.Field) -> None:
    if not f.writable and f.name != "in_port":
        raise _ba(C.OFPBAC_BAD_SET_ARGUMENT)
    if f.name in ("vlan_vid", "vlan_pcp"):
        raise _ba(C.OFPBAC_BAD_SET_TYPE)


def decode_nx(tlv: bytes, version: int = C.OFP13_VERSION) -> tuple[A.Action, ...]:
    """A Nicira vendor/experimenter action (the whole TLV); VERSION's actions nest in clone."""
    v = _NX.unpack(tlv, 4, err=(C.OFPET_BAD_ACTION, C.OFPBAC_BAD_LEN))
    if v["vendor"] != C.NX_VENDOR_ID:
        raise _ba(C.OFPBAC_BAD_EXPERIMENTER)
    sub = v["subtype"]
    if sub == C.NXAST_CLONE:                   # 6 pad bytes, then the nested actions
        if len(tlv) < 16:
            raise _ba(C.OFPBAC_BAD_LEN)
        return (A.Clone(decode_actions(tlv[16:], version)),)
    if sub == C.NXAST_NOTE:
        return (A.Note(tlv[10:]),)
    if sub in (C.NXAST_LEARN, C.NXAST_LEARN2):
        return (_decode_learn(tlv, sub == C.NXAST_LEARN2),)
    if sub == C.NXAST_CONTROLLER2:
        return (_decode_controller2(tlv),)
    if sub == C.NXAST_DEC_TTL_CNT_IDS:
        return (_decode_cnt_ids(tlv),)
    if sub in (C.NXAST_BUNDLE, C.NXAST_BUNDLE_LOAD):
        return (_decode_bundle(tlv, sub == C.NXAST_BUNDLE_LOAD),)
    lay = _NX_BODY.get(sub) or _NX_EXT.get(sub)
    if lay is None:
        raise _ba(C.OFPBAC_BAD_EXP_TYPE)
    if len(tlv) != 10 + lay.size:
        raise _ba(C.OFPBAC_BAD_LEN)
    d = lay.unpack(tlv, 10)
    if sub == C.NXAST_DEC_TTL:
        return (A.DecNwTtl(),)
    if sub == C.NXAST_MULTIPATH:
        f = _nx_field(d["dst"])
        ofs, nbits = d["ofs_nbits"] >> 6, (d["ofs_nbits"] & 0x3F) + 1
        _bits_ok(f, ofs, nbits)
        _writable(f)
        if d["fields"] >= len(A.MULTIPATH_FIELDS) or d["algorithm"] >= len(A.MULTIPATH_ALGORITHMS) \
                or (1 << nbits) < d["max_link"] + 1:
            raise _ba(C.OFPBAC_BAD_ARGUMENT)
        return (A.Multipath(A.MULTIPATH_FIELDS[d["fields"]], d["basis"], A.MULTIPATH_ALGORITHMS[d["algorithm"]],
                            d["max_link"] + 1, d["arg"], f.name, ofs, nbits),)
    if sub == C.NXAST_FIN_TIMEOUT:
        return (A.FinTimeout(d["idle"], d["hard"]),)
    if sub == C.NXAST_POP_QUEUE:
        return (A.PopQueue(),)
    if sub == C.NXAST_CHECK_PKT_LARGER:
        f = _nx_field(d["dst"])
        _bits_ok(f, d["ofs"], 1)
        _writable(f)
        return (A.CheckPktLarger(d["pkt_len"], f.name, d["ofs"]),)
    if sub == C.NXAST_PUSH_MPLS:
        if d["ethertype"] not in (F.ETH_TYPE_MPLS, F.ETH_TYPE_MPLS_MCAST):
            raise _ba(C.OFPBAC_BAD_ARGUMENT)
        return (A.PushMpls(d["ethertype"]),)
    if sub == C.NXAST_POP_MPLS:
        return (A.PopMpls(d["ethertype"]),)
    if sub == C.NXAST_SET_MPLS_TTL:
        return (A.SetMplsTtl(d["ttl"]),)
    if sub == C.NXAST_DEC_MPLS_TTL:
        return (A.DecMplsTtl(),)
    if sub == C.NXAST_SET_MPLS_LABEL:
        if d["label"] >> 20:
            raise _ba(C.OFPBAC_BAD_ARGUMENT)
        return (A.SetField("mpls_label", d["label"]),)
    if sub == C.NXAST_SET_MPLS_TC:
        if d["tc"] >> 3:
            raise _ba(C.OFPBAC_BAD_ARGUMENT)
        return (A.SetField("mpls_tc", d["tc"]),)
    if sub == C.NXAST_CONTROLLER:
        return (_controller(d["max_len"], d["id"], d["reason"], b""),)
    if sub == C.NXAST_CONJUNCTION:             # clause 0-based on the wire, as lib/ofp-actions.c
        if not 2 <= d["n_clauses"] <= 64 or d["clause"] >= d["n_clauses"]:
            raise _ba(C.OFPBAC_BAD_ARGUMENT)
        return (A.Conjunction(d["id"], d["clause"] + 1, d["n_clauses"]),)
    if sub == C.NXAST_SET_QUEUE:
        return (A.SetQueue(d["queue_id"]),)
    if sub in (C.NXAST_RESUBMIT, C.NXAST_RESUBMIT_TABLE):
        table = 0xFF if sub == C.NXAST_RESUBMIT else d["table"]
        return (A.Resubmit(port_from10(d["port"]), table),)
    if sub == C.NXAST_REG_LOAD:
        f = _nx_field(d["dst"])
        ofs, nbits = d["ofs_nbits"] >> 6, (d["ofs_nbits"] & 0x3F) + 1
        _bits_ok(f, ofs, nbits)
        _writable(f)
        if d["value"] >> nbits:
            raise _ba(C.OFPBAC_BAD_ARGUMENT)
        return (A.Load(f.name, ofs, nbits, d["value"]),)
    if sub == C.NXAST_REG_MOVE:
        src, dst = _nx_field(d["src"]), _nx_field(d["dst"])
        _bits_ok(src, d["src_ofs"], d["nbits"])
        _bits_ok(dst, d["dst_ofs"], d["nbits"])
        _writable(dst)
        return (A.Move(src.name, d["src_ofs"], dst.name, d["dst_ofs"], d["nbits"]),)
    if sub == C.NXAST_SAMPLE:
        if not d["probability"]:
            raise _ba(C.OFPBAC_BAD_ARGUMENT)
        return (A.Sample(d["probability"], d["collector_set_id"], d["obs_domain_id"], d["obs_point_id"]),)
    if sub in (C.NXAST_STACK_PUSH, C.NXAST_STACK_POP):
        f = _nx_field(d["field"])
        _bits_ok(f, d["ofs"], d["nbits"])
        if sub == C.NXAST_STACK_POP:
            _writable(f)
            return (A.StackPop(f.name, d["ofs"], d["nbits"]),)
        return (A.StackPush(f.name, d["ofs"], d["nbits"]),)
    return (A.Exit(),)


def _controller(max_len: int, cid: int, reason: int, userdata: bytes) -> A.Action:
    if reason >= len(A.PACKET_IN_REASONS):
        raise _ba(C.OFPBAC_BAD_ARGUMENT)
    c = A.Controller(max_len, cid, A.PACKET_IN_REASONS[reason], userdata)
    if c.reason == "action" and not cid and not userdata:
        return A.Output(A.OFPP_CONTROLLER, max_len)         # as ovs-ofctl prints it: CONTROLLER:N
    return c


# NXAST_CONTROLLER2's properties (NXAC2PT_*): type -> the length of its value (None: any)
_NXAC2PT_MAX_LEN, _NXAC2PT_CONTROLLER_ID, _NXAC2PT_REASON, _NXAC2PT_USERDATA, _NXAC2PT_PAUSE = range(5)


def _props(data: bytes, bad: OFPError):
    """(type, value) of each ofpprop (type, length with the 4-byte head, value, padded to 8)."""
    pos = 0
    while pos < len(data):
        if len(data) - pos < 4:
            raise bad
        t, n = _TL.unpack_from(data, pos)
        if n < 4 or pos + n > len(data):
            raise bad
        yield t, data[pos + 4:pos + n]
        pos += (n + 7) & ~7


def _prop(t: int, value: bytes) -> bytes:
    return _TL.pack(t, 4 + len(value)) + value + zeros_to8(4 + len(value))


def _decode_controller2(tlv: bytes) -> A.Action:
    """NXAST_CONTROLLER2: 6 zero bytes, then properties (lib/ofp-actions.c)."""
    if len(tlv) < 16:
        raise _ba(C.OFPBAC_BAD_LEN)
    kw = {"max_len": A.OFPCML_NO_BUFFER, "cid": 0, "reason": C.OFPR_ACTION, "userdata": b""}
    sizes = {_NXAC2PT_MAX_LEN: ("max_len", 2), _NXAC2PT_CONTROLLER_ID: ("cid", 2), _NXAC2PT_REASON: ("reason", 1)}
    for t, v in _props(tlv[16:], _ba(C.OFPBAC_BAD_LEN)):
        if t in sizes:
            name, n = sizes[t]
            if len(v) != n and not (n == 2 and len(v) == 4):     # a u16 may carry its 2 pad bytes
                raise _ba(C.OFPBAC_BAD_LEN)
            kw[name] = int.from_bytes(v[:n], "big")
        elif t == _NXAC2PT_USERDATA:
            kw["userdata"] = bytes(v)
        elif t == _NXAC2PT_PAUSE:
            raise _ba(C.OFPBAC_BAD_ARGUMENT)          # not supported (README): no continuations
        else:
            raise _ba(C.OFPBAC_BAD_ARGUMENT)     # Open vSwitch: OFPBPC_BAD_TYPE (OpenFlow 1.4's)
    c = _controller(kw["max_len"], kw["cid"], kw["reason"], kw["userdata"])
    return c if isinstance(c, A.Controller) else A.Controller(max_len=c.max_len)


def _encode_controller(a: A.Controller) -> bytes:
    """As Open vSwitch's encode_CONTROLLER: NXAST_CONTROLLER2 with userdata, else NXAST_CONTROLLER."""
    reason = A.PACKET_IN_REASONS.index(a.reason)
    if not a.userdata:
        return _nx(C.NXAST_CONTROLLER, _NX_EXT[C.NXAST_CONTROLLER].pack(
            {"max_len": a.max_len, "id": a.id, "reason": reason}))
    props = b"".join([_prop(_NXAC2PT_MAX_LEN, struct.pack("!H2x", a.max_len)) if a.max_len != A.OFPCML_NO_BUFFER
                      else b"",          # (Open vSwitch's ofpprop_put_u16 counts 2 pad bytes in)
                      _prop(_NXAC2PT_CONTROLLER_ID, struct.pack("!H2x", a.id)) if a.id else b"",
                      _prop(_NXAC2PT_REASON, bytes([reason])) if reason != C.OFPR_ACTION else b"",
                      _prop(_NXAC2PT_USERDATA, a.userdata)])
    return _nx(C.NXAST_CONTROLLER2, bytes(6) + props)


_BUNDLE = Layout("algorithm:H fields:H basis:H member_type:I n_members:H ofs_nbits:H dst:I 4x")
_NXM_OF_IN_PORT_HEADER = 0x00000002          # bundle's member type: OpenFlow ports (16 bits)
BUNDLE_MAX_MEMBERS = 2048


def _decode_bundle(tlv: bytes, load: bool) -> A.Bundle:
    """NXAST_BUNDLE(_LOAD): its head, then the members (16-bit ports), padded to 8 (lib/bundle.c)."""
    if len(tlv) < 10 + _BUNDLE.size:
        raise _ba(C.OFPBAC_BAD_LEN)
    d = _BUNDLE.unpack(tlv, 10)
    n = d["n_members"]
    if (d["fields"] >= len(A.MULTIPATH_FIELDS) or d["algorithm"] >= len(A.BUNDLE_ALGORITHMS)
            or d["member_type"] != _NXM_OF_IN_PORT_HEADER or n > BUNDLE_MAX_MEMBERS or any(tlv[28:32])):
        raise _ba(C.OFPBAC_BAD_ARGUMENT)
    if 32 + 2 * n > len(tlv):
        raise _ba(C.OFPBAC_BAD_LEN)
    members = tuple(port_from10(p) for p in struct.unpack_from(f"!{n}H", tlv, 32))
    for p in members:
        _check_output(p)
    dst, ofs, nbits = None, 0, 0
    if load:
        f = _nx_field(d["dst"])
        ofs, nbits = d["ofs_nbits"] >> 6, (d["ofs_nbits"] & 0x3F) + 1
        _bits_ok(f, ofs, nbits)
        _writable(f)
        if nbits < 16:
            raise _ba(C.OFPBAC_BAD_ARGUMENT)
        dst = f.name
    elif d["ofs_nbits"] or d["dst"]:
        raise _ba(C.OFPBAC_BAD_ARGUMENT)
    return A.Bundle(A.MULTIPATH_FIELDS[d["fields"]], d["basis"], d["algorithm"] and A.BUNDLE_ALGORITHMS[1]
                    or A.BUNDLE_ALGORITHMS[0], members, dst, ofs, nbits)


def _encode_bundle(a: A.Bundle) -> bytes:
    head = _BUNDLE.pack({"algorithm": A.BUNDLE_ALGORITHMS.index(a.algorithm),
                         "fields": A.MULTIPATH_FIELDS.index(a.fields), "basis": a.basis,
                         "member_type": _NXM_OF_IN_PORT_HEADER, "n_members": len(a.members),
                         "ofs_nbits": a.ofs << 6 | (a.nbits - 1) if a.dst else 0,
                         "dst": _nx_header(a.dst) if a.dst else 0})
    return _nx(C.NXAST_BUNDLE_LOAD if a.dst else C.NXAST_BUNDLE,
               head + struct.pack(f"!{len(a.members)}H", *(port_to10(p) for p in a.members)))


def _decode_cnt_ids(tlv: bytes) -> A.DecNwTtl:
    """NXAST_DEC_TTL_CNT_IDS: n_controllers, 4 zero bytes, the ids (16 bits each), padding."""
    if len(tlv) < 16:
        raise _ba(C.OFPBAC_BAD_LEN)
    n = struct.unpack_from("!H", tlv, 10)[0]
    if 16 + 2 * n > len(tlv):
        raise _ba(C.OFPBAC_BAD_LEN)
    if any(tlv[16 + 2 * n:]):
        raise _ba(C.OFPBAC_BAD_ARGUMENT)
    return A.DecNwTtl(struct.unpack_from(f"!{n}H", tlv, 16))


_LEARN = Layout("idle_timeout:H hard_timeout:H priority:H cookie:Q flags:H table:B 1x fin_idle_timeout:H "
                "fin_hard_timeout:H")
_LEARN2 = Layout("limit:I result_dst_ofs:H 2x")
_LEARN_KIND = {0: "match", 1: "load", 2: "output"}
_LEARN_CODE = {v: k for k, v in _LEARN_KIND.items()}


def _decode_learn(tlv: bytes, learn2: bool = False) -> A.Learn:
    """NXAST_LEARN: its head, then flow_mod_specs up to a zero header (lib/learn.c's format).
    NXAST_LEARN2: the same head, then limit, result_dst's bit offset and 2 zero bytes, its
    field's NXM header when the flags say write result, then the specs."""
    if len(tlv) < 10 + _LEARN.size + (_LEARN2.size if learn2 else 0):
        raise _ba(C.OFPBAC_BAD_LEN)
    d = _LEARN.unpack(tlv, 10)
    allowed = A.LEARN_SEND_FLOW_REM | A.LEARN_DELETE_LEARNED | (A.LEARN_WRITE_RESULT if learn2 else 0)
    if d["flags"] & ~allowed or d["table"] == 0xFF:
        raise _ba(C.OFPBAC_BAD_ARGUMENT)
    if d["fin_idle_timeout"] or d["fin_hard_timeout"]:
        raise _ba(C.OFPBAC_BAD_ARGUMENT)          # not supported yet (README)
    pos, specs = 10 + _LEARN.size, []
    limit, result_dst = 0, None
    if learn2:
        d2 = _LEARN2.unpack(tlv, pos)
        pos += _LEARN2.size
        limit = d2["limit"]
        if any(tlv[pos - 2:pos]):
            raise _ba(C.OFPBAC_BAD_ARGUMENT)
        if d["flags"] & A.LEARN_WRITE_RESULT:
            if pos + 4 > len(tlv):
                raise _ba(C.OFPBAC_BAD_LEN)
            f = _nx_field(struct.unpack_from("!I", tlv, pos)[0])
            pos += 4
            _bits_ok(f, d2["result_dst_ofs"], 1)
            if not f.writable:
                raise _ba(C.OFPBAC_BAD_SET_ARGUMENT)
            result_dst = (f.name, d2["result_dst_ofs"])
        elif d2["result_dst_ofs"]:
            raise _ba(C.OFPBAC_BAD_ARGUMENT)

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(tlv):
            raise _ba(C.OFPBAC_BAD_LEN)
        pos += n
        return tlv[pos - n:pos]

    while pos + 2 <= len(tlv):
        head = struct.unpack("!H", take(2))[0]
        if not head:
            break
        nbits, kind = head & 0x7FF, _LEARN_KIND.get((head >> 11) & 3)
        if kind is None or head & 0xC000 or not nbits:
            raise _ba(C.OFPBAC_BAD_ARGUMENT)
        src, value = None, 0
        if head & 0x2000:
            value = int.from_bytes(take(2 * ((nbits + 15) // 16)), "big")
            if value >> nbits:
                raise _ba(C.OFPBAC_BAD_ARGUMENT)
        else:
            f = _nx_field(struct.unpack("!I", take(4))[0])
            ofs = struct.unpack("!H", take(2))[0]
            _bits_ok(f, ofs, nbits)
            src = (f.name, ofs)
        dst = None
        if kind != "output":
            f = _nx_field(struct.unpack("!I", take(4))[0])
            ofs = struct.unpack("!H", take(2))[0]
            _bits_ok(f, ofs, nbits)
            if kind == "load":
                _writable(f)
            dst = (f.name, ofs)
        elif src is None:
            raise _ba(C.OFPBAC_BAD_ARGUMENT)
        specs.append(A.LearnSpec(kind, nbits, src, value, dst))
    if any(tlv[pos:]):
        raise _ba(C.OFPBAC_BAD_ARGUMENT)
    return A.Learn(table=d["table"], specs=tuple(specs), idle_timeout=d["idle_timeout"],
                   hard_timeout=d["hard_timeout"], priority=d["priority"], cookie=d["cookie"], flags=d["flags"],
                   limit=limit, result_dst=result_dst)


def _encode_learn(a: A.Learn) -> bytes:
    body = bytearray(_LEARN.pack({"idle_timeout": a.idle_timeout, "hard_timeout": a.hard_timeout,
                                  "priority": a.priority, "cookie": a.cookie, "flags": a.flags, "table": a.table,
                                  "fin_idle_timeout": a.fin_idle_timeout, "fin_hard_timeout": a.fin_hard_timeout}))
    learn2 = bool(a.limit or a.result_dst)          # as ovs-ofctl: NXAST_LEARN2 only when needed
    if learn2:
        body += _LEARN2.pack({"limit": a.limit, "result_dst_ofs": a.result_dst[1] if a.result_dst else 0})
        if a.result_dst:
            body += struct.pack("!I", _nx_header(a.result_dst[0]))
    for sp in a.specs:
        body += struct.pack("!H", (0x2000 if sp.src is None else 0) | _LEARN_CODE[sp.kind] << 11 | sp.nbits)
        if sp.src is None:
            body += sp.value.to_bytes(2 * ((sp.nbits + 15) // 16), "big")
        else:
            body += struct.pack("!IH", _nx_header(sp.src[0]), sp.src[1])
        if sp.dst is not None:
            body += struct.pack("!IH", _nx_header(sp.dst[0]), sp.dst[1])
    return _nx(C.NXAST_LEARN2 if learn2 else C.NXAST_LEARN, bytes(body))


def _nx(sub: int, body: bytes) -> bytes:
    head = _NX.pack({"vendor": C.NX_VENDOR_ID, "subtype": sub})
    n = 4 + len(head) + len(body)
    return _TL.pack(C.OFPAT_EXPERIMENTER, (n + 7) & ~7) + head + body + zeros_to8(n)


def _runs(mask: int):
    """(ofs, nbits) of each run of one bits in MASK, lowest first."""
    ofs = 0
    while mask:
        while not mask & 1:
            mask >>= 1
            ofs += 1
        n = 0
        while mask & 1:
            mask >>= 1
            n += 1
        yield ofs, n
        ofs += n


def _loads(name: str, ofs: int, nbits: int, value: int) -> list[bytes]:
    """REG_LOADs writing VALUE into NAME[OFS..]: 64 bits at most each, as Open vSwitch splits them."""
    out = []
    for lo in range(0, nbits, 64):
        n = min(64, nbits - lo)
        out.append(_nx(C.NXAST_REG_LOAD, _NX_EXT[C.NXAST_REG_LOAD].pack(
            {"ofs_nbits": (ofs + lo) << 6 | (n - 1), "dst": _nx_header(name), "value": (value >> lo) & ((1 << n) - 1)})))
    return out


def _mpls10(a: A.Action) -> tuple[int, dict] | None:
    """The Nicira MPLS action (subtype, fields) ovs-ofctl sends for A over OpenFlow 1.0, if A is one."""
    if isinstance(a, A.PushMpls):
        return C.NXAST_PUSH_MPLS, {"ethertype": a.ethertype}
    if isinstance(a, A.PopMpls):
        return C.NXAST_POP_MPLS, {"ethertype": a.ethertype}
    if isinstance(a, A.SetMplsTtl):
        return C.NXAST_SET_MPLS_TTL, {"ttl": a.ttl}
    if isinstance(a, A.DecMplsTtl):
        return C.NXAST_DEC_MPLS_TTL, {}
    if isinstance(a, A.SetField) and a.mask is None and F.field(a.field).name == "mpls_label":
        return C.NXAST_SET_MPLS_LABEL, {"label": a.value}
    if isinstance(a, A.SetField) and a.mask is None and F.field(a.field).name == "mpls_tc":
        return C.NXAST_SET_MPLS_TC, {"tc": a.value}
    return None


def encode_nx(a: A.Action, version: int = C.OFP13_VERSION) -> bytes | None:
    """A as Nicira extension action(s), or None if it is not one of them."""
    if isinstance(a, A.Clone):
        return _nx(C.NXAST_CLONE, bytes(6) + encode_actions(a.actions, version))
    if version == C.OFP10_VERSION:         # MPLS: OpenFlow 1.0 has no actions of its own for it
        mpls = _mpls10(a)
        if mpls is not None:
            return _nx(mpls[0], _NX_EXT[mpls[0]].pack(mpls[1]))
    if isinstance(a, A.Resubmit):
        return _nx(C.NXAST_RESUBMIT_TABLE, _NX_EXT[C.NXAST_RESUBMIT_TABLE].pack(
            {"port": port_to10(a.port), "table": a.table}))
    if isinstance(a, A.Load):
        return b"".join(_loads(a.field, a.ofs, a.nbits, a.value))
    if isinstance(a, A.SetField) and a.mask is not None:         # a masked set_field: a load per run
        return b"".join(b for ofs, n in _runs(a.mask) for b in _loads(a.field, ofs, n, a.value >> ofs))
    if isinstance(a, A.Move):
        return _nx(C.NXAST_REG_MOVE, _NX_EXT[C.NXAST_REG_MOVE].pack(
            {"nbits": a.nbits, "src_ofs": a.src_ofs, "dst_ofs": a.dst_ofs, "src": _nx_header(a.src),
             "dst": _nx_header(a.dst)}))
    if isinstance(a, (A.StackPush, A.StackPop)):
        sub = C.NXAST_STACK_PUSH if isinstance(a, A.StackPush) else C.NXAST_STACK_POP
        return _nx(sub, _NX_EXT[sub].pack({"ofs": a.ofs, "field": _nx_header(a.field), "nbits": a.nbits}))
    if isinstance(a, A.Note):
        return _nx(C.NXAST_NOTE, a.data + bytes(max(0, 6 - len(a.data))))
    if isinstance(a, A.Exit):
        return _nx(C.NXAST_EXIT, bytes(6))
    if isinstance(a, A.PopQueue):
        return _nx(C.NXAST_POP_QUEUE, bytes(6))
    if isinstance(a, A.CheckPktLarger):
        return _nx(C.NXAST_CHECK_PKT_LARGER, _NX_EXT[C.NXAST_CHECK_PKT_LARGER].pack(
            {"pkt_len": a.pkt_len, "ofs": a.ofs, "dst": _nx_header(a.dst)}))
    if isinstance(a, A.Multipath):
        return _nx(C.NXAST_MULTIPATH, _NX_EXT[C.NXAST_MULTIPATH].pack(
            {"fields": A.MULTIPATH_FIELDS.index(a.fields), "basis": a.basis,
             "algorithm": A.MULTIPATH_ALGORITHMS.index(a.algorithm), "max_link": a.n_links - 1, "arg": a.arg,
             "ofs_nbits": a.ofs << 6 | (a.nbits - 1), "dst": _nx_header(a.dst)}))
    if isinstance(a, A.FinTimeout):
        return _nx(C.NXAST_FIN_TIMEOUT, _NX_EXT[C.NXAST_FIN_TIMEOUT].pack({"idle": a.idle_timeout,
                                                                           "hard": a.hard_timeout}))
    if isinstance(a, A.Conjunction):
        return _nx(C.NXAST_CONJUNCTION, _NX_EXT[C.NXAST_CONJUNCTION].pack(
            {"clause": a.clause - 1, "n_clauses": a.n_clauses, "id": a.id}))
    if isinstance(a, A.Learn):
        return _encode_learn(a)
    if isinstance(a, A.Controller):
        return _encode_controller(a)
    if isinstance(a, A.Bundle):
        return _encode_bundle(a)
    if isinstance(a, A.DecNwTtl) and a.ids is not None:
        return _nx(C.NXAST_DEC_TTL_CNT_IDS, struct.pack("!H4x", len(a.ids)) + struct.pack(f"!{len(a.ids)}H", *a.ids))
    if isinstance(a, A.Sample):
        return _nx(C.NXAST_SAMPLE, _NX_EXT[C.NXAST_SAMPLE].pack(
            {"probability": a.probability, "collector_set_id": a.collector_set_id,
             "obs_domain_id": a.obs_domain_id, "obs_point_id": a.obs_point_id}))
    return None


# --- OpenFlow 1.3 actions -------------------------------------------------------------------------
_ACT13: dict[int, tuple[type, Layout]] = {
    C.OFPAT_OUTPUT: (A.Output, Layout("port:P max_len:H 6x")),
    C.OFPAT_COPY_TTL_OUT: (A.CopyTtlOut, Layout("4x")),
    C.OFPAT_COPY_TTL_IN: (A.CopyTtlIn, Layout("4x")),
    C.OFPAT_PUSH_VLAN: (A.PushVlan, Layout("ethertype:H 2x")),
    C.OFPAT_POP_VLAN: (A.PopVlan, Layout("4x")),
    C.OFPAT_SET_QUEUE: (A.SetQueue, Layout("queue_id:I")),
    C.OFPAT_GROUP: (A.Group, Layout("group_id:I")),
    C.OFPAT_SET_NW_TTL: (A.SetNwTtl, Layout("ttl:B 3x")),
    C.OFPAT_DEC_NW_TTL: (A.DecNwTtl, Layout("4x")),
    C.OFPAT_PUSH_MPLS: (A.PushMpls, Layout("ethertype:H 2x")),
    C.OFPAT_POP_MPLS: (A.PopMpls, Layout("ethertype:H 2x")),
    C.OFPAT_SET_MPLS_TTL: (A.SetMplsTtl, Layout("ttl:B 3x")),
    C.OFPAT_DEC_MPLS_TTL: (A.DecMplsTtl, Layout("4x")),
}
_ACT13_TYPE = {cls: (t, lay) for t, (cls, lay) in _ACT13.items()}


def _check_output(port: int) -> None:
    """A decoded output's port: a physical one (any 32-bit port below OFPP_MAX, not 0) or a
    reserved one outputs may name; ``check_flow_mod`` narrows a flow-mod's further
    (``consistency.output_port_ok``)."""
    if not (0 < port < A.OFPP_MAX or port in consistency.VALID_RESERVED_OUT):
        raise _ba(C.OFPBAC_BAD_OUT_PORT)


_NXM_OF_IN_PORT = (0x0000, 0)          # 16 bits, OpenFlow 1.0 port numbers
_OXM_IN_PORT = F.field("in_port").oxm


def _decode_set_field(tlv: bytes) -> A.SetField:
    if len(tlv) < 8:
        raise _ba(C.OFPBAC_BAD_SET_LEN)
    cls, fh, n = struct.unpack_from("!HBB", tlv, 4)
    if len(tlv) != (8 + n + 7) & ~7:
        raise _ba(C.OFPBAC_BAD_SET_LEN)
    if fh & 1:
        raise _ba(C.OFPBAC_BAD_SET_ARGUMENT)      # set-field takes no mask
    if (cls, fh >> 1) == _NXM_OF_IN_PORT:
        if n != 2:
            raise _ba(C.OFPBAC_BAD_SET_LEN)
        return A.SetField("in_port", port_from10(struct.unpack_from("!H", tlv, 8)[0]))
    if (cls, fh >> 1) == _OXM_IN_PORT:
        raise _ba(C.OFPBAC_BAD_SET_ARGUMENT)      # as Open vSwitch (ovs-ofctl sends NXM_OF_IN_PORT)
    if (cls, fh >> 1) == NXM_OF_VLAN_TCI:
        raise _ba(C.OFPBAC_BAD_SET_TYPE)
    try:
        (name, (value, _)), = decode_oxms(tlv[4:8 + n])[0].items()
    except OFPError as e:
        raise _ba({C.OFPBMC_BAD_FIELD: C.OFPBAC_BAD_SET_TYPE, C.OFPBMC_BAD_LEN: C.OFPBAC_BAD_SET_LEN}
                  .get(e.code, C.OFPBAC_BAD_SET_ARGUMENT)) from None
    if not F.field(name).writable:
        raise _ba(C.OFPBAC_BAD_SET_TYPE)
    return A.SetField(name, value)


def encode_action13(a: A.Action) -> bytes:
    nx = encode_nx(a, C.OFP13_VERSION)
    if nx is not None:
        return nx
    if isinstance(a, A.SetField):
        if F.field(a.field).name == "in_port":
            oxm = struct.pack("!HBBH", _NXM_OF_IN_PORT[0], _NXM_OF_IN_PORT[1] << 1, 2, port_to10(a.value))
        else:
            oxm = encode_oxm(F.field(a.field), a.value)
        return _TL.pack(C.OFPAT_SET_FIELD, (4 + len(oxm) + 7) & ~7) + oxm + zeros_to8(4 + len(oxm))
    t, lay = _ACT13_TYPE[type(a)]
    return _TL.pack(t, 4 + lay.size) + lay.pack(a)


def decode_action13(type_: int, tlv: bytes) -> A.Action:
    if type_ == C.OFPAT_EXPERIMENTER:
        acts = decode_nx(tlv)
        if isinstance(acts[0], A.SetQueue):        # 1.3 has its own set_queue
            raise _ba(C.OFPBAC_BAD_EXP_TYPE)
        return acts[0]
    if type_ == C.OFPAT_SET_FIELD:
        return _decode_set_field(tlv)
    if type_ not in _ACT13:
        raise _ba(C.OFPBAC_BAD_TYPE)
    cls, lay = _ACT13[type_]
    if len(tlv) != 4 + lay.size:
        raise _ba(C.OFPBAC_BAD_LEN)
    a = cls(**lay.unpack(tlv, 4))
    if cls is A.Output:
        _check_output(a.port)
    elif cls is A.PushVlan and a.ethertype not in (F.ETH_TYPE_VLAN, F.ETH_TYPE_QINQ):
        raise _ba(C.OFPBAC_BAD_ARGUMENT)
    elif cls is A.PushMpls and a.ethertype not in (F.ETH_TYPE_MPLS, F.ETH_TYPE_MPLS_MCAST):
        raise _ba(C.OFPBAC_BAD_ARGUMENT)
    return a


# --- OpenFlow 1.0 actions -------------------------------------------------------------------------
_L10 = {
    C.OFPAT10_OUTPUT: Layout("port:p max_len:H"),
    C.OFPAT10_SET_VLAN_VID: Layout("v:H 2x"),
    C.OFPAT10_SET_VLAN_PCP: Layout("v:B 3x"),
    C.OFPAT10_STRIP_VLAN: Layout("4x"),
    C.OFPAT10_SET_DL_SRC: Layout("v:M 6x"),
    C.OFPAT10_SET_DL_DST: Layout("v:M 6x"),
    C.OFPAT10_SET_NW_SRC: Layout("v:I"),
    C.OFPAT10_SET_NW_DST: Layout("v:I"),
    C.OFPAT10_SET_NW_TOS: Layout("v:B 3x"),
    C.OFPAT10_SET_TP_SRC: Layout("v:H 2x"),
    C.OFPAT10_SET_TP_DST: Layout("v:H 2x"),
    C.OFPAT10_ENQUEUE: Layout("port:p 6x queue_id:I"),
}
_NX = Layout("vendor:I subtype:H")
_NX_BODY = {C.NXAST_DEC_TTL: Layout("6x"), C.NXAST_SET_QUEUE: Layout("2x queue_id:I")}
# The field each set_* action writes; set_tp_* picks by the flow's ip_proto (tcp by default).
_SET10 = {C.OFPAT10_SET_VLAN_PCP: "vlan_pcp", C.OFPAT10_SET_DL_SRC: "eth_src", C.OFPAT10_SET_DL_DST: "eth_dst",
          C.OFPAT10_SET_NW_SRC: "ipv4_src", C.OFPAT10_SET_NW_DST: "ipv4_dst"}
_SET10_TYPE = {v: k for k, v in _SET10.items()}
_TP10 = {17: "udp", 132: "sctp"}
_TP10_TYPE = {f"{p}_{d}": t for p in ("tcp", "udp", "sctp")
              for d, t in (("src", C.OFPAT10_SET_TP_SRC), ("dst", C.OFPAT10_SET_TP_DST))}


def decode_action10(type_: int, tlv: bytes, ip_proto: int | None = None) -> tuple[A.Action, ...]:
    if type_ == C.OFPAT10_VENDOR:
        return decode_nx(tlv, C.OFP10_VERSION)
    lay = _L10.get(type_)
    if lay is None:
        raise _ba(C.OFPBAC_BAD_TYPE)
    if len(tlv) != 4 + lay.size:
        raise _ba(C.OFPBAC_BAD_LEN)
    d = lay.unpack(tlv, 4)
    v = d.get("v")
    if type_ == C.OFPAT10_OUTPUT:
        _check_output(d["port"])
        return (A.Output(d["port"], d["max_len"]),)
    if type_ == C.OFPAT10_ENQUEUE:
        _check_output(d["port"])
        return A.SetQueue(d["queue_id"]), A.Output(d["port"])
    if type_ == C.OFPAT10_STRIP_VLAN:
        return (A.PopVlan(),)
    if (type_ == C.OFPAT10_SET_VLAN_VID and v > 0xFFF or type_ == C.OFPAT10_SET_VLAN_PCP and v > 7
            or type_ == C.OFPAT10_SET_NW_TOS and v & 3):
        raise _ba(C.OFPBAC_BAD_ARGUMENT)
    if type_ == C.OFPAT10_SET_VLAN_VID:
        return (A.SetField("vlan_vid", v | C.OFPVID_PRESENT),)
    if type_ == C.OFPAT10_SET_NW_TOS:
        return (A.SetField("ip_dscp", v >> 2),)
    if type_ in (C.OFPAT10_SET_TP_SRC, C.OFPAT10_SET_TP_DST):
        d = "src" if type_ == C.OFPAT10_SET_TP_SRC else "dst"
        return (A.SetField(f"{_TP10.get(ip_proto, 'tcp')}_{d}", v),)
    return (A.SetField(_SET10[type_], v),)


def encode_actions10(actions: tuple[A.Action, ...] | list[A.Action]) -> bytes:
    out, i = [], 0
    while i < len(actions):
        a = actions[i]
        nxt = actions[i + 1] if i + 1 < len(actions) else None
        i += 1
        if isinstance(a, A.SetQueue) and isinstance(nxt, A.Output) and nxt.max_len == A.OFPCML_NO_BUFFER:
            t, vals, i = C.OFPAT10_ENQUEUE, {"port": nxt.port, "queue_id": a.queue_id}, i + 1
        elif isinstance(a, A.Output):
            t, vals = C.OFPAT10_OUTPUT, {"port": a.port, "max_len": a.max_len}
        elif isinstance(a, A.PopVlan):
            t, vals = C.OFPAT10_STRIP_VLAN, {}
        elif (nx := encode_nx(a, C.OFP10_VERSION)) is not None:
            out.append(nx)
            continue
        elif isinstance(a, A.SetField) and F.field(a.field).member is None:     # registers: loads
            out += _loads(a.field, 0, F.field(a.field).bits, a.value)
            continue
        elif isinstance(a, (A.DecNwTtl, A.SetQueue)):
            sub = C.NXAST_DEC_TTL if isinstance(a, A.DecNwTtl) else C.NXAST_SET_QUEUE
            body = _NX.pack({"vendor": C.NX_VENDOR_ID, "subtype": sub}) + _NX_BODY[sub].pack(a)
            out.append(_TL.pack(C.OFPAT10_VENDOR, 4 + len(body)) + body)
            continue
        elif isinstance(a, A.SetField):
            name, v = F.field(a.field).name, a.value
            if name == "vlan_vid" and v & C.OFPVID_PRESENT:
                t, v = C.OFPAT10_SET_VLAN_VID, v & 0xFFF
            elif name == "ip_dscp":
                t, v = C.OFPAT10_SET_NW_TOS, v << 2
            else:
                t = _SET10_TYPE.get(name) or _TP10_TYPE.get(name)
                if t is None:
                    raise ValueError(f"OpenFlow 1.0 cannot express {a}")
            vals = {"v": v}
        else:
            raise ValueError(f"OpenFlow 1.0 cannot express {a}")
        lay = _L10[t]
        out.append(_TL.pack(t, 4 + lay.size) + lay.pack(vals))
    return b"".join(out)


# --- both versions --------------------------------------------------------------------------------
def encode_actions(actions, version: int) -> bytes:
    """An action list in VERSION's encoding."""
    if version == C.OFP10_VERSION:
        return encode_actions10(actions)
    return b"".join(encode_action13(a) for a in actions)


def decode_actions(data: bytes, version: int, match: Match | None = None) -> tuple[A.Action, ...]:
    """The actions filling DATA.  MATCH (1.0 only) tells set_tp_src/dst which field they write."""
    bad_len = _ba(C.OFPBAC_BAD_LEN)
    if version == C.OFP10_VERSION:
        proto = (match or {}).get("ip_proto", (None,))[0]
        return tuple(a for t, tlv in _tlvs(data, bad_len) for a in decode_action10(t, tlv, proto))
    return tuple(decode_action13(t, tlv) for t, tlv in _tlvs(data, bad_len))


# --- instructions (OpenFlow 1.3) ------------------------------------------------------------------
_INSTR: dict[int, tuple[type, Layout]] = {
    C.OFPIT_GOTO_TABLE: (A.GotoTable, Layout("table_id:B 3x")),
    C.OFPIT_WRITE_METADATA: (A.WriteMetadata, Layout("4x value:Q mask:Q")),
    C.OFPIT_WRITE_ACTIONS: (A.WriteActions, Layout("4x")),
    C.OFPIT_APPLY_ACTIONS: (A.ApplyActions, Layout("4x")),
    C.OFPIT_CLEAR_ACTIONS: (A.ClearActions, Layout("4x")),
    C.OFPIT_METER: (A.Meter, Layout("meter_id:I")),
}
_INSTR_TYPE = {cls: (t, lay) for t, (cls, lay) in _INSTR.items()}
_WITH_ACTIONS = (A.WriteActions, A.ApplyActions)


def encode_instructions(instructions) -> bytes:
    out = []
    for ins in instructions:
        t, lay = _INSTR_TYPE[type(ins)]
        acts = encode_actions(ins.actions, C.OFP13_VERSION) if isinstance(ins, _WITH_ACTIONS) else b""
        out.append(_TL.pack(t, 4 + lay.size + len(acts)) + lay.pack(ins) + acts)
    return b"".join(out)


def decode_instructions(data: bytes) -> tuple[A.Instruction, ...]:
    """OpenFlow 1.3 instructions DATA holds (OFPError if malformed).  The instructions are
    immutable: the same bytes decode to the same tuple, kept (``_INSTRUCTIONS``, up to
    ``MEMO_MAX`` distinct lists) so that a controller's run of flow-mods with one action list
    decodes it once."""
    data = bytes(data)
    out = _INSTRUCTIONS.get(data)
    if out is None:
        out = _decode_instructions(data)
        if len(_INSTRUCTIONS) >= MEMO_MAX:
            _INSTRUCTIONS.clear()
        _INSTRUCTIONS[data] = out
    return out


MEMO_MAX = 4096
_INSTRUCTIONS: dict[bytes, tuple[A.Instruction, ...]] = {}


def _decode_instructions(data: bytes) -> tuple[A.Instruction, ...]:
    out, seen = [], set()
    for t, tlv in _tlvs(data, _bi(C.OFPBIC_BAD_LEN)):
        if t == C.OFPIT_EXPERIMENTER:
            raise _bi(C.OFPBIC_BAD_EXPERIMENTER)
        if t not in _INSTR:
            raise _bi(C.OFPBIC_UNKNOWN_INST)
        if t in seen:
            raise _bi(C.OFPBIC_UNSUP_INST)        # 1.3 has no "duplicate instruction" code
        seen.add(t)
        cls, lay = _INSTR[t]
        if cls in _WITH_ACTIONS:
            out.append(cls(decode_actions(tlv[8:], C.OFP13_VERSION)))
            continue
        if len(tlv) != 4 + lay.size:
            raise _bi(C.OFPBIC_BAD_LEN)
        ins = cls(**lay.unpack(tlv, 4))
        if cls is A.GotoTable and ins.table_id > C.OFPTT_MAX:
            raise _bi(C.OFPBIC_BAD_TABLE_ID)
        out.append(ins)
    return tuple(out)


# --- what Open vSwitch checks when a flow-mod arrives ---------------------------------------------
_KIND = {"match_inconsistent": _ba(C.OFPBAC_MATCH_INCONSISTENT), "bad_tag": _ba(C.OFPBAC_BAD_TAG),
         "bad_table": _bi(C.OFPBIC_BAD_TABLE_ID)}


def check_flow_mod(match: Match, instructions, table_id: int, version: int) -> None:
    """Raise OFPError where Open vSwitch 3.1 refuses a flow-mod adding these INSTRUCTIONS with
    MATCH to table TABLE_ID over VERSION, with its type and code: an L4 field matched in later
    fragments only (OFPBMC_BAD_PREREQ), a set-field value it does not write (vlan_vid without
    the present bit, arp_op above 255: OFPBAC_BAD_SET_ARGUMENT), copy_ttl_in/out
    (OFPBAC_BAD_TYPE), an output to a port from 0xff00 up that is not a reserved one
    (OFPBAC_BAD_OUT_PORT), then actions that do not fit the match (consistency.check)."""
    m = match if isinstance(match, OfMatch) else OfMatch(match)
    try:
        m.check_prereqs()
    except ValueError as e:              # MatchError: the decoder checked the rest; this is fragments'
        raise OFPError(C.OFPET_BAD_MATCH, C.OFPBMC_BAD_PREREQ) from e
    for ins in instructions:
        for a in getattr(ins, "actions", ()):
            if isinstance(a, (A.CopyTtlIn, A.CopyTtlOut)):
                raise _ba(C.OFPBAC_BAD_TYPE)
            if isinstance(a, A.Output) and not consistency.output_port_ok(a.port):
                raise _ba(C.OFPBAC_BAD_OUT_PORT)
            if isinstance(a, A.SetField) and consistency.set_field_value_error(a.field, a.value):
                raise _ba(C.OFPBAC_BAD_SET_ARGUMENT)
    try:
        consistency.check(m, instructions, table_id, of10=version == C.OFP10_VERSION)
    except consistency.ActionError as e:
        err = _KIND[e.kind]
        raise OFPError(err.type, err.code) from e
