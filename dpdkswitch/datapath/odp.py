"""Datapath actions, encoded the way csrc/include/dpdkswitch.h documents (struct dps_action
lists), and decoded back for display.  Pure functions; any thread.

    encode([Output(2), PushVlan(100), Output(3)]) -> bytes for dps_flow_put / dps_execute
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from ._dpdkswitch import lib

HDR = struct.Struct("=HHI")


@dataclass(frozen=True)
class Output:
    port: int


@dataclass(frozen=True)
class PushVlan:
    tci: int                  # VID | PCP << 13 (the CFI bit is ignored)
    tpid: int = 0x8100


@dataclass(frozen=True)
class PopVlan:
    pass


@dataclass(frozen=True)
class PushMpls:
    lse: int                  # label << 12 | tc << 9 | bos << 8 | ttl
    ethertype: int = 0x8847


@dataclass(frozen=True)
class PopMpls:
    ethertype: int            # the frame's ethertype after the outer LSE is gone
    stack: bool = False       # the entries down to the bottom of the stack go, three at most


@dataclass(frozen=True)
class SetMasked:
    """Write VALUE under MASK over one header group: kind is 'eth' (dst+src, 12 bytes), 'vlan' (2),
    'ipv4' (src dst tos ttl, 10), 'ipv6' (src dst label tclass hlimit, 38), 'tcp', 'udp' or 'sctp'
    (src dst, 4), 'icmp' or 'icmpv6' (type code, 2), 'arp' (op sha spa tha tpa, 22), 'nd' (target
    sll tll, 28), 'mpls' (the outer LSE, 4).  csrc/include/dpdkswitch.h (DPS_SET_*) says what each does to a frame."""
    kind: str
    value: bytes
    mask: bytes


CONTROL_COOKIE = lib.DPS_UPCALL_CONTROL     # a Userspace cookie with this bit: a control protocol's frame
LAZY_COOKIE = lib.DPS_UPCALL_LAZY           # ... with this bit: a sample, taken in batches (dpdkswitch.h)


@dataclass(frozen=True)
class Userspace:
    cookie: int               # | CONTROL_COOKIE: on the datapath's reserved ring (dpdkswitch.h)


@dataclass(frozen=True)
class Sample:
    probability: float        # 0..1
    actions: tuple


@dataclass(frozen=True)
class Clone:
    actions: tuple


@dataclass(frozen=True)
class CheckPktLen:
    """GREATER runs on a frame longer than SIZE bytes, LESS_EQUAL on any other."""
    size: int
    greater: tuple
    less_equal: tuple


@dataclass(frozen=True)
class Hash:
    basis: int = 0


@dataclass(frozen=True)
class Recirc:
    recirc_id: int


@dataclass(frozen=True)
class Meter:
    meter_id: int


@dataclass(frozen=True)
class Truncate:
    max_len: int


SET_KINDS = {"eth": (lib.DPS_SET_ETH, 12), "vlan": (lib.DPS_SET_VLAN, 2), "ipv4": (lib.DPS_SET_IPV4, 10),
             "ipv6": (lib.DPS_SET_IPV6, 38), "tcp": (lib.DPS_SET_TCP, 4), "udp": (lib.DPS_SET_UDP, 4),
             "sctp": (lib.DPS_SET_SCTP, 4), "icmp": (lib.DPS_SET_ICMP, 2), "icmpv6": (lib.DPS_SET_ICMPV6, 2),
             "arp": (lib.DPS_SET_ARP, 22), "nd": (lib.DPS_SET_ND, 28),
             "mpls": (lib.DPS_SET_MPLS, 4)}
_KIND_NAMES = {v[0]: k for k, v in SET_KINDS.items()}


def _tlv(type_: int, arg: int, payload: bytes = b"") -> bytes:
    payload += b"\0" * (-len(payload) % 8)
    return HDR.pack(type_, HDR.size + len(payload), arg & 0xFFFFFFFF) + payload


def encode(actions) -> bytes:
    out = []
    for a in actions:
        match a:
            case Output(port):
                out.append(_tlv(lib.DPS_ACT_OUTPUT, port))
            case PushVlan(tci, tpid):
                out.append(_tlv(lib.DPS_ACT_PUSH_VLAN, tpid << 16 | (tci & 0xEFFF)))
            case PopVlan():
                out.append(_tlv(lib.DPS_ACT_POP_VLAN, 0))
            case PushMpls(lse, ethertype):
                out.append(_tlv(lib.DPS_ACT_PUSH_MPLS, lse, struct.pack("=H", ethertype)))
            case PopMpls(ethertype, stack):
                out.append(_tlv(lib.DPS_ACT_POP_MPLS, ethertype | (lib.DPS_POP_MPLS_STACK if stack else 0)))
            case SetMasked(kind, value, mask):
                code, size = SET_KINDS[kind]
                if len(value) != size or len(mask) != size:
                    raise ValueError(f"set {kind}: value and mask are {size} bytes each")
                out.append(_tlv(lib.DPS_ACT_SET_MASKED, code, value + mask))
            case Userspace(cookie):
                out.append(_tlv(lib.DPS_ACT_USERSPACE, 0, struct.pack("=Q", cookie)))
            case Sample(p, nested):
                out.append(_tlv(lib.DPS_ACT_SAMPLE, 0xFFFFFFFF if p >= 1 else int(p * 0xFFFFFFFF), encode(nested)))
            case Clone(nested):
                out.append(_tlv(lib.DPS_ACT_CLONE, 0, encode(nested)))
            case CheckPktLen(size, gt, le):
                g = encode(gt)
                out.append(_tlv(lib.DPS_ACT_CHECK_PKT_LEN, size, struct.pack("=I4x", len(g)) + g + encode(le)))
            case Hash(basis):
                out.append(_tlv(lib.DPS_ACT_HASH, basis))
            case Recirc(rid):
                out.append(_tlv(lib.DPS_ACT_RECIRC, rid))
            case Meter(mid):
                out.append(_tlv(lib.DPS_ACT_METER, mid))
            case Truncate(n):
                out.append(_tlv(lib.DPS_ACT_TRUNCATE, n))
            case _:
                raise TypeError(f"not a datapath action: {a!r}")
    return b"".join(out)


def decode(data: bytes) -> list:
    out, off = [], 0
    while off < len(data):
        type_, length, arg = HDR.unpack_from(data, off)
        payload = data[off + HDR.size:off + length]
        off += length
        if type_ == lib.DPS_ACT_OUTPUT:
            out.append(Output(arg))
        elif type_ == lib.DPS_ACT_PUSH_VLAN:
            out.append(PushVlan(arg & 0xFFFF, arg >> 16))
        elif type_ == lib.DPS_ACT_POP_VLAN:
            out.append(PopVlan())
        elif type_ == lib.DPS_ACT_PUSH_MPLS:
            out.append(PushMpls(arg, struct.unpack_from("=H", payload)[0]))
        elif type_ == lib.DPS_ACT_POP_MPLS:
            out.append(PopMpls(arg & 0xFFFF, bool(arg & lib.DPS_POP_MPLS_STACK)))
        elif type_ == lib.DPS_ACT_SET_MASKED:
            kind = _KIND_NAMES.get(arg)
            if kind is None:
                raise ValueError(f"set_masked of unknown kind {arg}")
            n = SET_KINDS[kind][1]
            out.append(SetMasked(kind, payload[:n], payload[n:2 * n]))
        elif type_ == lib.DPS_ACT_USERSPACE:
            out.append(Userspace(struct.unpack_from("=Q", payload)[0]))
        elif type_ == lib.DPS_ACT_SAMPLE:
            out.append(Sample(arg / 0xFFFFFFFF, tuple(decode(payload))))
        elif type_ == lib.DPS_ACT_CLONE:
            out.append(Clone(tuple(decode(payload))))
        elif type_ == lib.DPS_ACT_CHECK_PKT_LEN:
            n = struct.unpack_from("=I", payload)[0]
            out.append(CheckPktLen(arg, tuple(decode(payload[8:8 + n])), tuple(decode(payload[8 + n:]))))
        elif type_ == lib.DPS_ACT_HASH:
            out.append(Hash(arg))
        elif type_ == lib.DPS_ACT_RECIRC:
            out.append(Recirc(arg))
        elif type_ == lib.DPS_ACT_METER:
            out.append(Meter(arg))
        elif type_ == lib.DPS_ACT_TRUNCATE:
            out.append(Truncate(arg))
        else:
            raise ValueError(f"unknown datapath action type {type_}")
    return out


def format_actions(actions) -> str:
    """Open vSwitch's dpctl style: output:2,push_vlan(vid=10,pcp=0),..."""
    parts = []
    for a in actions:
        match a:
            case Output(p):
                parts.append(str(p))
            case PushVlan(tci, tpid):
                parts.append(f"push_vlan(vid={tci & 0xFFF},pcp={tci >> 13}"
                             + (f",tpid=0x{tpid:04x})" if tpid != 0x8100 else ")"))
            case PopVlan():
                parts.append("pop_vlan")
            case PushMpls(lse, t):
                parts.append(f"push_mpls(label={lse >> 12},tc={(lse >> 9) & 7},ttl={lse & 0xFF},"
                             f"bos={(lse >> 8) & 1},eth_type=0x{t:x})")
            case PopMpls(t, stack):
                parts.append(f"pop_mpls(eth_type=0x{t:x}{',stack' if stack else ''})")
            case SetMasked(kind, v, m):
                parts.append(f"set({kind}(value={v.hex()},mask={m.hex()}))")
            case Userspace(c):
                parts.append(f"userspace(cookie=0x{c:x})")
            case Sample(p, nested):
                parts.append(f"sample(sample={p * 100:.1f}%,actions({format_actions(nested)}))")
            case Clone(nested):
                parts.append(f"clone({format_actions(nested)})")
            case CheckPktLen(n, gt, le):
                parts.append(f"check_pkt_len(size={n},gt({format_actions(gt)}),le({format_actions(le)}))")
            case Hash(b):
                parts.append(f"hash(l4({b}))")
            case Recirc(r):
                parts.append(f"recirc(0x{r:x})")
            case Meter(m):
                parts.append(f"meter({m})")
            case Truncate(n):
                parts.append(f"trunc({n})")
    return ",".join(parts) if parts else "drop"
