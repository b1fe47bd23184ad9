"""Nicira's OpenFlow 1.0 extensions for flows: what ``ovs-ofctl`` speaks over OpenFlow 1.0 when a
flow needs more than 1.0's fixed match (registers, IPv6, masks): NXT_SET_FLOW_FORMAT (NXM),
NXT_FLOW_MOD, and the NXST_FLOW/NXST_AGGREGATE vendor stats that dump-flows and dump-aggregate read, with matches as NXM
TLVs (``nx_match``: Open vSwitch's lib/nx-match.c).

An NXM TLV names a field by the NXM code of ``ofproto.fields`` (``Field.nxm``, else its OXM code,
which Open vSwitch reads in NXM too), with three fields of their own: NXM_OF_IN_PORT (16-bit
OpenFlow 1.0 ports), NXM_OF_IP_TOS (the TOS byte: DSCP << 2) and NXM_OF_VLAN_TCI (oxm.py).
Decoding raises ``OFPError`` with OpenFlow's codes; encoding expects a valid match.

Pure functions; any thread; cost linear in the message.
"""
from __future__ import annotations

import struct

from ..ofproto import actions as A
from ..ofproto import fields as F
from . import consts as C
from .acts import decode_actions, encode_actions
from .errors import OFPError
from .message import FlowMod
from .oxm import NXM_OF_VLAN_TCI, Match, canonical, check_prereqs, decode_oxms, encode_oxm, oxm_width
from .wire import port_from10, port_to10, zeros_to8

NXT_SET_FLOW_FORMAT = 12
NXT_FLOW_MOD = 13
NXT_SET_PACKET_IN_FORMAT = 16
NXT_PACKET_IN = 17
NXT_SET_CONTROLLER_ID = 20
NXT_PACKET_IN2 = 30
NXPIF_STANDARD, NXPIF_NXT_PACKET_IN, NXPIF_NXT_PACKET_IN2 = 0, 1, 2
# NXT_PACKET_IN2's properties (NXPINT_*)
_PACKET, _FULL_LEN, _BUFFER_ID, _TABLE_ID, _COOKIE, _REASON, _METADATA, _USERDATA = range(8)
_PIN = struct.Struct("!IHBBQH6x")                  # nx_packet_in: buffer total_len reason table cookie match_len
NXST_FLOW = 0
NXST_AGGREGATE = 1
NXFF_OPENFLOW10, NXFF_NXM = 0, 2
_NXM_IN_PORT = (0x0000, 0)
_NXM_IP_TOS = (0x0000, 5)
_HDR = struct.Struct("!HBB")
_OFP_HEADER = struct.Struct("!BBHI")
_FLOW_MOD = struct.Struct("!QHHHHIHHH6x")        # cookie command idle hard priority buffer out_port flags match_len
_STATS_REQ = struct.Struct("!HHB3x")             # out_port match_len table_id
_STATS = struct.Struct("!HBxIIHHHHHHQQQ")        # nx_flow_stats up to its match
STATS_HEAD = struct.Struct("!HHII4x")            # stats type (vendor), flags, vendor, subtype


def _bm(code: int) -> OFPError:
    return OFPError(C.OFPET_BAD_MATCH, code)


def decode_nxm(data: bytes) -> Match:
    """An nx_match (DATA without its padding) as a canonical match, prerequisites checked."""
    plain, special = bytearray(), []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 4:
            raise _bm(C.OFPBMC_BAD_LEN)
        cls, fh, n = _HDR.unpack_from(data, pos)
        tlv = data[pos:pos + 4 + n]
        if len(tlv) != 4 + n:
            raise _bm(C.OFPBMC_BAD_LEN)
        pos += 4 + n
        code = (cls, fh >> 1)
        if code in (_NXM_IN_PORT, _NXM_IP_TOS):
            special.append((code, fh & 1, tlv[4:]))
            continue
        f = F.BY_WIRE.get(code)
        if f is not None and f.nxm == code and f.oxm is not None and f.oxm != code:
            tlv = _HDR.pack(f.oxm[0], f.oxm[1] << 1 | (fh & 1), n) + tlv[4:]     # as its OXM, for decode_oxms
        elif f is None and code != NXM_OF_VLAN_TCI:
            raise _bm(C.OFPBMC_BAD_FIELD)
        plain += tlv
    match, _ = decode_oxms(bytes(plain))
    for code, hasmask, body in special:
        if hasmask or len(body) != (2 if code == _NXM_IN_PORT else 1):
            raise _bm(C.OFPBMC_BAD_LEN if not hasmask else C.OFPBMC_BAD_MASK)
        name = "in_port" if code == _NXM_IN_PORT else "ip_dscp"
        if name in match:
            raise _bm(C.OFPBMC_DUP_FIELD)
        v = int.from_bytes(body, "big")
        if name == "ip_dscp" and v & 3:
            raise _bm(C.OFPBMC_BAD_VALUE)
        match[name] = (port_from10(v) if name == "in_port" else v >> 2, None)
    check_prereqs(match)
    return match


def encode_nxm(match: Match) -> bytes:
    """MATCH as an nx_match (unpadded): Nicira codes where fields have them."""
    out = []
    match = canonical(match)
    pcp = match.get("vlan_pcp")
    vid = match.get("vlan_vid")
    if pcp is not None or vid is not None:
        vv, vm = vid if vid is not None else (0, 0)
        pv, pm = pcp if pcp is not None else (0, 0)
        vm = 0x1FFF if vm is None else vm
        pm = 7 if pm is None and pcp is not None else pm or 0
        out.append(_HDR.pack(NXM_OF_VLAN_TCI[0], NXM_OF_VLAN_TCI[1] << 1 | 1, 4)
                   + struct.pack("!HH", vv | pv << 13, vm | pm << 13))
    for name, (v, m) in match.items():
        f = F.field(name)
        if name in ("vlan_vid", "vlan_pcp"):
            continue
        if name == "in_port":
            out.append(_HDR.pack(_NXM_IN_PORT[0], _NXM_IN_PORT[1] << 1, 2) + struct.pack("!H", port_to10(v)))
        elif name == "ip_dscp":
            out.append(_HDR.pack(_NXM_IP_TOS[0], _NXM_IP_TOS[1] << 1, 1) + bytes([v << 2]))
        else:
            cls, fid = f.wire
            w = oxm_width(f)
            out.append(_HDR.pack(cls, fid << 1 | (m is not None), w * (1 + (m is not None)))
                       + v.to_bytes(w, "big") + (b"" if m is None else m.to_bytes(w, "big")))
    return b"".join(out)


def _prop(t: int, value: bytes, align8: bool = False) -> bytes:
    """An ofpprop: type, length (head included, padding not), VALUE, padded to 8 bytes; ALIGN8:
    4 zero bytes first, so that a 64-bit VALUE is 8-aligned (Open vSwitch's ofpprop_put_be64)."""
    if align8:
        value = bytes(4) + value
    return struct.pack("!HH", t, 4 + len(value)) + value + zeros_to8(4 + len(value))


def packet_in_metadata(in_port: int, metadata: int, regs: dict[str, int], pkt_mark: int) -> Match:
    """The pipeline state a packet-in reports, as Open vSwitch's flow_get_metadata: in_port, and
    metadata, each register and pkt_mark that is not zero."""
    m: Match = {}
    if metadata:
        m["metadata"] = (metadata, None)
    for name, v in regs.items():
        if v:
            m[name] = (v, None)
    if pkt_mark:
        m["pkt_mark"] = (pkt_mark, None)
    m["in_port"] = (in_port, None)
    return m


def encode_packet_in2(version: int, data: bytes, total_len: int, reason: int, table_id: int, cookie: int,
                      metadata: Match, userdata: bytes = b"") -> bytes:
    """NXT_PACKET_IN2 (the whole message, xid 0), as Open vSwitch's ofputil_encode_nx_packet_in2:
    the packet (FULL_LEN when truncated), table, cookie, reason, the pipeline state as OXMs
    (in_port as OpenFlow 1.1+'s 32-bit OXM), and the controller action's userdata."""
    props = [_prop(_PACKET, data)]
    if total_len != len(data):
        props.append(_prop(_FULL_LEN, struct.pack("!I", total_len)))
    props += [_prop(_TABLE_ID, bytes([table_id])), _prop(_COOKIE, struct.pack("!Q", cookie), align8=True),
              _prop(_REASON, bytes([reason])),
              _prop(_METADATA, b"".join(encode_oxm(F.field(n), v) for n, (v, _) in metadata.items()))]
    if userdata:
        props.append(_prop(_USERDATA, userdata))
    body = struct.pack("!II", C.NX_VENDOR_ID, NXT_PACKET_IN2) + b"".join(props)
    return _OFP_HEADER.pack(version, C.OFPT_EXPERIMENTER, 8 + len(body), 0) + body


def encode_nx_packet_in(version: int, data: bytes, total_len: int, reason: int, table_id: int, cookie: int,
                        metadata: Match) -> bytes:
    """NXT_PACKET_IN (the whole message, xid 0): nx_packet_in, the pipeline state as an
    nx_match, 2 zero bytes, the packet."""
    m = encode_nxm(metadata)
    body = (struct.pack("!II", C.NX_VENDOR_ID, NXT_PACKET_IN)
            + _PIN.pack(C.OFP_NO_BUFFER, total_len, reason, table_id, cookie, len(m)) + m + zeros_to8(len(m))
            + bytes(2) + data)
    return _OFP_HEADER.pack(version, C.OFPT_EXPERIMENTER, 8 + len(body), 0) + body


def decode_flow_mod(data: bytes) -> FlowMod:
    """The body of an NXT_FLOW_MOD (after its subtype) as a FlowMod; the command's high byte is
    the table (ovs-ofctl sends NXT_FLOW_MOD_TABLE_ID first)."""
    if len(data) < _FLOW_MOD.size:
        raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_LEN)
    cookie, command, idle, hard, prio, buf, out_port, flags, mlen = _FLOW_MOD.unpack_from(data)
    padded = (mlen + 7) & ~7
    if _FLOW_MOD.size + padded > len(data):
        raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_LEN)
    match = decode_nxm(data[_FLOW_MOD.size:_FLOW_MOD.size + mlen])
    if command & 0xFF > C.OFPFC_DELETE_STRICT:
        raise OFPError(C.OFPET_FLOW_MOD_FAILED, C.OFPFMFC_BAD_COMMAND)
    actions = decode_actions(data[_FLOW_MOD.size + padded:], C.OFP10_VERSION, match)
    return FlowMod(match=match, instructions=(A.ApplyActions(actions),) if actions else (), cookie=cookie,
                   table_id=command >> 8, command=command & 0xFF, idle_timeout=idle, hard_timeout=hard,
                   priority=prio, buffer_id=buf, out_port=port_from10(out_port), flags=flags)


def decode_flow_stats_request(body: bytes) -> tuple[Match, int, int]:
    """An NXST_FLOW request's body (after the vendor stats head): (match, table_id, out_port)."""
    if len(body) < _STATS_REQ.size:
        raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_LEN)
    out_port, mlen, table_id = _STATS_REQ.unpack_from(body)
    if _STATS_REQ.size + mlen > len(body):
        raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_LEN)
    return decode_nxm(body[_STATS_REQ.size:_STATS_REQ.size + mlen]), table_id, port_from10(out_port)


def encode_flow_stats(table_id: int, duration: tuple[int, int], priority: int, idle_timeout: int,
                      hard_timeout: int, cookie: int, packets: int, nbytes: int, match: Match, actions) -> bytes:
    """One nx_flow_stats entry, ages unknown (ValueError if the actions have no OpenFlow 1.0 form)."""
    m = encode_nxm(match)
    acts = encode_actions(tuple(actions), C.OFP10_VERSION)
    n = _STATS.size + len(m) + len(zeros_to8(len(m))) + len(acts)
    return (_STATS.pack(n, table_id, duration[0], duration[1], priority, idle_timeout, hard_timeout, len(m),
                        0, 0, cookie, packets, nbytes) + m + zeros_to8(len(m)) + acts)

