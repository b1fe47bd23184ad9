"""Matches on the wire: OpenFlow 1.3 ``ofp_match`` (type OXM: TLVs of OpenFlow basic and Nicira
NXM_NX fields, padded to 8) and OpenFlow 1.0's fixed 40-byte ``ofp_match`` with its wildcard
bits, both to and from one form, ``Match``: ``{field name: (value, mask or None for exact)}``
with the names, widths and OXM codes of ``ofproto.fields`` (vlan_vid in 1.3 terms: 0x1000 is
OFPVID_PRESENT).

Decoding checks lengths, values, masks and prerequisites (``fields.prereqs_of``) and raises
``OFPError(OFPET_BAD_MATCH, ...)``; it returns canonical matches: an all-ones mask becomes None
(exact) and an all-zero mask drops the field.  A VLAN PCP matched in part (vlan_tci=0x3000/0x3000
in ovs-ofctl's text) has no OXM form (VLAN_PCP takes no mask): it goes, with the VID, as
Nicira's NXM_OF_VLAN_TCI, as Open vSwitch writes it; decoding reads that field too.  OpenFlow 1.0 matches ignore members whose
prerequisites fail, as 1.0 switches do.  Encoding expects a valid match (ValueError otherwise).

Pure functions; any thread; cost linear in the number of fields.
"""
from __future__ import annotations

import struct

from ..ofproto import fields as F
from ..ofproto.match import MEMO_MAX, PREREQ_FIELDS
from . import consts as C
from .errors import OFPError
from .wire import KINDS, Layout, port_from10, port_to10, zeros_to8

Match = dict[str, tuple[int, int | None]]

_OXM_HDR = struct.Struct("!HBB")
_MATCH_HDR = struct.Struct("!HH")


def _bm(code: int) -> tuple[int, int]:
    return C.OFPET_BAD_MATCH, code


NXM_OF_VLAN_TCI = (0x0000, 4)          # 16 bits: PCP, present (CFI), VID; maskable
_OXM_UNMASKABLE = {"vlan_pcp"}          # maskable in our matches, not as an OXM


def oxm_maskable(f: F.Field) -> bool:
    """Whether F's OXM TLV may carry a mask."""
    return f.maskable and f.name not in _OXM_UNMASKABLE


def oxm_width(f: F.Field) -> int:
    """Bytes of F's value in an OXM TLV (ipv6_label's 20 bits take 4)."""
    n = (f.bits + 7) // 8
    return 4 if n == 3 else n


def canonical(match: Match) -> Match:
    """MATCH keyed by canonical field names, values masked, full masks as None, zero masks dropped."""
    out: Match = {}
    for name, (value, mask) in match.items():
        f = F.field(name)
        if mask is not None and mask & f.all_ones == f.all_ones:
            mask = None
        if mask == 0:
            continue
        out[f.name] = (value if mask is None else value & mask, mask)
    return out


def encode_oxm(f: F.Field, value: int, mask: int | None = None) -> bytes:
    """One OXM TLV."""
    if f.oxm is None:
        raise ValueError(f"field {f.name} has no OXM code")
    cls, fid = f.oxm
    w = oxm_width(f)
    body = value.to_bytes(w, "big") + (b"" if mask is None else mask.to_bytes(w, "big"))
    return _OXM_HDR.pack(cls, fid << 1 | (mask is not None), len(body)) + body


def encode_oxms(match: Match) -> bytes:
    match = canonical(match)
    pcp = match.get("vlan_pcp")
    if pcp is None or pcp[1] is None:
        return b"".join(encode_oxm(F.field(n), v, m) for n, (v, m) in match.items())
    vid_v, vid_m = match.get("vlan_vid", (0, 0))
    tci = struct.pack("!HH", vid_v | pcp[0] << 13, (0x1FFF if vid_m is None else vid_m) | pcp[1] << 13)
    return (_OXM_HDR.pack(NXM_OF_VLAN_TCI[0], NXM_OF_VLAN_TCI[1] << 1 | 1, 4) + tci
            + b"".join(encode_oxm(F.field(n), v, m) for n, (v, m) in match.items() if n not in ("vlan_vid", "vlan_pcp")))


def encode_match(match: Match) -> bytes:
    """An OpenFlow 1.3 ``ofp_match`` (type OXM), padded to 8 bytes."""
    tlvs = encode_oxms(match)
    return _MATCH_HDR.pack(C.OFPMT_OXM, 4 + len(tlvs)) + tlvs + zeros_to8(4 + len(tlvs))


def decode_oxms(data: bytes) -> tuple[Match, list[bool]]:
    """The TLVs filling DATA: (canonical match, per TLV in order whether its hasmask bit was set)."""
    match: Match = {}
    seen: set[str] = set()
    hasmasks: list[bool] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 4:
            raise OFPError(*_bm(C.OFPBMC_BAD_LEN))
        cls, fh, n = _OXM_HDR.unpack_from(data, pos)
        fid, hasmask = fh >> 1, fh & 1
        body = data[pos + 4:pos + 4 + n]
        if len(body) != n:
            raise OFPError(*_bm(C.OFPBMC_BAD_LEN))
        pos += 4 + n
        if (cls, fid) == NXM_OF_VLAN_TCI:
            _decode_tci(body, hasmask, match, seen)
            hasmasks.append(bool(hasmask))
            continue
        f = F.BY_OXM.get((cls, fid))
        if f is None:
            raise OFPError(*_bm(C.OFPBMC_BAD_FIELD))
        w = oxm_width(f)
        if n != w * (1 + hasmask):
            raise OFPError(*_bm(C.OFPBMC_BAD_LEN))
        if hasmask and not oxm_maskable(f):
            raise OFPError(*_bm(C.OFPBMC_BAD_MASK))
        if f.name in seen:
            raise OFPError(*_bm(C.OFPBMC_DUP_FIELD))
        seen.add(f.name)
        hasmasks.append(bool(hasmask))
        value = int.from_bytes(body[:w], "big")
        mask = int.from_bytes(body[w:], "big") if hasmask else None
        if value > f.all_ones:
            raise OFPError(*_bm(C.OFPBMC_BAD_VALUE))
        if mask is not None:
            if mask > f.all_ones:
                raise OFPError(*_bm(C.OFPBMC_BAD_MASK))
            if value & ~mask:
                raise OFPError(*_bm(C.OFPBMC_BAD_WILDCARDS))
            if mask == 0:
                continue
            if mask == f.all_ones:
                mask = None
        match[f.name] = (value, mask)
    return match, hasmasks


def _decode_tci(body: bytes, hasmask: int, match: Match, seen: set[str]) -> None:
    """NXM_OF_VLAN_TCI into MATCH as vlan_vid (present bit + VID) and vlan_pcp."""
    if len(body) != 2 * (1 + hasmask):
        raise OFPError(*_bm(C.OFPBMC_BAD_LEN))
    value, mask = struct.unpack("!H", body[:2])[0], struct.unpack("!H", body[2:])[0] if hasmask else 0xFFFF
    if value & ~mask:
        raise OFPError(*_bm(C.OFPBMC_BAD_WILDCARDS))
    if seen & {"vlan_vid", "vlan_pcp"}:
        raise OFPError(*_bm(C.OFPBMC_DUP_FIELD))
    seen.update(("vlan_vid", "vlan_pcp"))
    for name, v, m in (("vlan_vid", value & 0x1FFF, mask & 0x1FFF), ("vlan_pcp", value >> 13, mask >> 13)):
        if m:
            match[name] = (v, None if m == F.field(name).all_ones else m)


def _holds(match: Match, f: F.Field, value: int, mask: int | None) -> bool:
    """Does MATCH pin F to VALUE under MASK (None: all bits)?"""
    got = match.get(f.name)
    if got is None:
        return False
    want = f.all_ones if mask is None else mask
    have = f.all_ones if got[1] is None else got[1]
    return have & want == want and got[0] & want == value & want


def prereqs_met(match: Match, f: F.Field) -> bool:
    return any(all(_holds(match, *cond) for cond in alt) for alt in F.prereqs_of(f))


def check_prereqs(match: Match) -> None:
    """OFPBMC_BAD_PREREQ unless every field of MATCH has its prerequisites in MATCH.  A shape
    that passed once (its field names, and the values of the fields prerequisites read:
    ``PREREQ_FIELDS``) passes at the cost of a set probe."""
    shape = tuple((n, vm) if n in PREREQ_FIELDS else n for n, vm in match.items())
    if shape in _PREREQS_OK:
        return
    for name in match:
        if not prereqs_met(match, F.field(name)):
            raise OFPError(*_bm(C.OFPBMC_BAD_PREREQ))
    if len(_PREREQS_OK) >= MEMO_MAX:
        _PREREQS_OK.clear()
    _PREREQS_OK.add(shape)


_PREREQS_OK: set[tuple] = set()


def decode_match(data: bytes, off: int = 0) -> tuple[Match, int]:
    """The OpenFlow 1.3 ``ofp_match`` at DATA[OFF:]: (match, bytes it takes with its padding)."""
    if len(data) - off < 4:
        raise OFPError(*_bm(C.OFPBMC_BAD_LEN))
    type_, length = _MATCH_HDR.unpack_from(data, off)
    if type_ != C.OFPMT_OXM:
        raise OFPError(*_bm(C.OFPBMC_BAD_TYPE))
    padded = (length + 7) & ~7
    if length < 4 or off + padded > len(data):
        raise OFPError(*_bm(C.OFPBMC_BAD_LEN))
    match, _ = decode_oxms(data[off + 4:off + length])
    check_prereqs(match)
    return match, padded


def match_tlvs(data: bytes, off: int = 0) -> list[tuple[int, int, F.Field | None, bool]]:
    """Where the TLVs of the OpenFlow 1.3 ``ofp_match`` at DATA[OFF:] (one ``decode_match``
    took) keep their values: (value's first byte, end of the value, its field (None for
    NXM_OF_VLAN_TCI), whether it carries a mask), offsets in DATA, in order."""
    _, length = _MATCH_HDR.unpack_from(data, off)
    out, pos, end = [], off + 4, off + length
    while pos < end:
        cls, fh, n = _OXM_HDR.unpack_from(data, pos)
        f = None if (cls, fh >> 1) == NXM_OF_VLAN_TCI else F.BY_OXM.get((cls, fh >> 1))
        w = n // 2 if fh & 1 else n
        out.append((pos + 4, pos + 4 + w, f, bool(fh & 1)))
        pos += 4 + n
    return out


# --- OpenFlow 1.0 ofp_match -----------------------------------------------------------------------
_OF10 = Layout("wildcards:I in_port:H dl_src:M dl_dst:M dl_vlan:H dl_vlan_pcp:B 1x dl_type:H nw_tos:B "
               "nw_proto:B 2x nw_src:I nw_dst:I tp_src:H tp_dst:H")
assert _OF10.size == 40

# The ofp_match members that map onto fields.FIELDS: (member, wildcard bits, candidate field names).
# Decoding uses the first candidate whose prerequisites the match built so far meets and ignores
# the member when none does; encoding takes whichever candidate the match holds.  dl_vlan and
# dl_vlan_pcp (vlan_vid/vlan_pcp) are converted apart.
OF10_MEMBERS: list[tuple[str, int, tuple[str, ...]]] = [
    ("in_port", C.OFPFW10_IN_PORT, ("in_port",)),
    ("dl_src", C.OFPFW10_DL_SRC, ("eth_src",)),
    ("dl_dst", C.OFPFW10_DL_DST, ("eth_dst",)),
    ("dl_type", C.OFPFW10_DL_TYPE, ("eth_type",)),
    ("nw_proto", C.OFPFW10_NW_PROTO, ("ip_proto", "arp_op")),
    ("nw_tos", C.OFPFW10_NW_TOS, ("ip_dscp",)),
    ("nw_src", C.OFPFW10_NW_SRC_MASK, ("ipv4_src", "arp_spa")),
    ("nw_dst", C.OFPFW10_NW_DST_MASK, ("ipv4_dst", "arp_tpa")),
    ("tp_src", C.OFPFW10_TP_SRC, ("tcp_src", "udp_src", "sctp_src", "icmp_type", "icmpv6_type")),
    ("tp_dst", C.OFPFW10_TP_DST, ("tcp_dst", "udp_dst", "sctp_dst", "icmp_code", "icmpv6_code")),
]
_PREFIX_SHIFT = {"nw_src": C.OFPFW10_NW_SRC_SHIFT, "nw_dst": C.OFPFW10_NW_DST_SHIFT}


def decode_match10(raw: bytes) -> Match:
    """A 40-byte OpenFlow 1.0 ``ofp_match`` as a canonical Match."""
    m = _OF10.unpack(raw)
    wc = m["wildcards"]
    m["in_port"] = port_from10(m["in_port"])
    m["nw_tos"] >>= 2                                   # the DSCP bits
    match: Match = {}
    vlan, pcp = m["dl_vlan"], m["dl_vlan_pcp"]
    if not wc & C.OFPFW10_DL_VLAN:
        match["vlan_vid"] = (0, None) if vlan == C.OFP10_VLAN_NONE else (C.OFPVID_PRESENT | (vlan & 0xFFF), None)
    if not wc & C.OFPFW10_DL_VLAN_PCP and match.get("vlan_vid", (1,))[0]:
        match.setdefault("vlan_vid", (C.OFPVID_PRESENT, C.OFPVID_PRESENT))
        match["vlan_pcp"] = (pcp & 7, None)
    for member, bits, names in OF10_MEMBERS:
        value, mask = m[member], None
        if member in _PREFIX_SHIFT:
            n = (wc & bits) >> _PREFIX_SHIFT[member]
            if n >= 32:
                continue
            mask = (0xFFFFFFFF << n) & 0xFFFFFFFF if n else None
            value &= 0xFFFFFFFF if mask is None else mask
        elif wc & bits:
            continue
        for name in names:
            f = F.BY_NAME[name]
            if prereqs_met(match, f):
                match[name] = (value & f.all_ones, mask)
                break
    return match


def encode_match10(match: Match) -> bytes:
    """A Match as OpenFlow 1.0's ``ofp_match``; ValueError for what 1.0 cannot express."""
    match = canonical(match)
    m = dict.fromkeys(("in_port", "dl_src", "dl_dst", "dl_vlan", "dl_vlan_pcp", "dl_type", "nw_tos", "nw_proto",
                       "nw_src", "nw_dst", "tp_src", "tp_dst"), 0)
    wc = C.OFPFW10_ALL
    done = set()
    vid, pcp = match.get("vlan_vid"), match.get("vlan_pcp")
    if pcp is not None:
        m["dl_vlan_pcp"], wc = pcp[0], wc & ~C.OFPFW10_DL_VLAN_PCP
        done.add("vlan_pcp")
    if vid is not None:
        done.add("vlan_vid")
        if vid == (C.OFPVID_PRESENT, C.OFPVID_PRESENT) and pcp is not None:
            pass                                        # "any tag" is implied by dl_vlan_pcp
        elif vid[1] is None:
            m["dl_vlan"] = vid[0] & 0xFFF if vid[0] & C.OFPVID_PRESENT else C.OFP10_VLAN_NONE
            wc &= ~C.OFPFW10_DL_VLAN
        else:
            raise ValueError(f"OpenFlow 1.0 cannot match vlan_vid {vid}")
    for member, bits, names in OF10_MEMBERS:
        name = next((n for n in names if n in match), None)
        if name is None:
            continue
        value, mask = match[name]
        done.add(name)
        if member in _PREFIX_SHIFT:
            plen = 32 if mask is None else 32 - (~mask & 0xFFFFFFFF).bit_length()
            if mask is not None and mask != (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF:
                raise ValueError(f"OpenFlow 1.0 needs a prefix mask for {name}")
            wc = (wc & ~bits) | ((32 - plen) << _PREFIX_SHIFT[member])
        elif mask is not None:
            raise ValueError(f"OpenFlow 1.0 cannot mask {name}")
        else:
            wc &= ~bits
        m[member] = value << 2 if member == "nw_tos" else port_to10(value) if member == "in_port" else value
    if set(match) - done:
        raise ValueError(f"OpenFlow 1.0 cannot match {sorted(set(match) - done)}")
    m["wildcards"] = wc
    return _OF10.pack(m)


KINDS["W"] = ("40s", decode_match10, encode_match10)
