"""The match fields: one table that the flow-string parser, the OpenFlow codec, the classifier's
wildcard tracker and the display of datapath flows all read.

Each ``Field`` says where its bits live in the datapath flow key (``struct dps_flow_key`` in
csrc/include/dpdkswitch.h, whose layout is ``flowkey.KEY_DTYPE``, checked against the compiled
DWARF by tests/test_abi.py), how wide it is, whether it can be masked, what it requires (prerequisites,
as in OpenFlow: tp_dst needs tcp, udp or sctp), and its names: the ovs-ofctl name, its
aliases, and its OXM (class, field) for the wire.  Pipeline-only fields (metadata, registers)
have no place in the key (``member`` is None).

Pure data plus small conversions; any thread.
"""
from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass, replace
from functools import cached_property

from ..flowkey import KEY_DTYPE, KEY_SIZE

# The classifier's lookup stages (as Open vSwitch's staged lookup): metadata, L2, L3, L4.  A
# lookup that fails at a stage consults only the bits of the stages up to it.
STAGE_OF_MEMBER = {
    "in_port": 0, "recirc_id": 0, "dp_hash": 0, "pad0": 0,
    "eth_dst": 1, "eth_src": 1, "eth_type": 1, "vlan_tci": 1, "vlan_tpid": 1, "pad1": 1, "mpls_lse": 1,
    "nw_src": 2, "nw_dst": 2, "ipv6_label": 2, "nw_proto": 2, "nw_tos": 2, "nw_ttl": 2, "nw_frag": 2,
    "arp_sha": 2, "arp_tha": 2,
    "tp_src": 3, "tp_dst": 3, "tcp_flags": 3, "pad2": 3, "nd_target": 3,
}


def stage_masks() -> list[int]:
    """The key bits (as a big-endian int of KEY_SIZE bytes) of each stage."""
    masks = [0, 0, 0, 0]
    for name in KEY_DTYPE.names:
        off, size = KEY_DTYPE.fields[name][1], KEY_DTYPE.fields[name][0].itemsize
        bits = ((1 << (8 * size)) - 1) << (8 * (KEY_SIZE - off - size))
        masks[STAGE_OF_MEMBER[name]] |= bits
    return masks

OXM_OF_BASIC = 0x8000      # OpenFlow basic class
NXM_NX = 0x0001            # Nicira extensions (ovs-ofctl's nw_ttl, ip_frag, ...)
OXM_ONF = 0xFFFF           # experimenter (unused so far)
OXM_PACKET_REGS = 0x8001   # OpenFlow 1.5's packet registers (xreg0..7), as Open vSwitch uses them in 1.3 too
NXM_OF = 0x0000            # Nicira's OpenFlow 1.0 fields (NXM_OF_ETH_DST ...): names and action headers

# Pipeline-only state (registers, pkt_mark, metadata) is one int, the "pipeline vector", that the
# classifier matches like the key and translation carries: metadata in bits 0..63, pkt_mark in
# 64..95, reg<i> in 96 + 32 * (15 - i), so that xreg<j> (reg<2j> high, reg<2j+1> low) and
# xxreg<k> (reg<4k> .. reg<4k+3>) are contiguous slices of it, as Open vSwitch lays them out.
# Translation starts it at zero: the datapath carries none of it (Open vSwitch's userspace
# datapath starts pkt_mark at 0 too), so a match on it only decides after an action set it.
N_REGS = 16
REG_SHIFT = 96
CONJ_ID_SHIFT = REG_SHIFT + 32 * N_REGS      # conj_id: set only while a conjunctive match is looked up
PIPELINE_BITS = CONJ_ID_SHIFT + 32

ETH_TYPE_IP, ETH_TYPE_ARP, ETH_TYPE_IPV6 = 0x0800, 0x0806, 0x86DD
ETH_TYPE_VLAN, ETH_TYPE_QINQ = 0x8100, 0x88A8
ETH_TYPE_MPLS, ETH_TYPE_MPLS_MCAST = 0x8847, 0x8848
VLAN_CFI = 0x1000          # OFPVID_PRESENT, and the key's "tag present" bit
FRAG_ANY, FRAG_LATER = 1, 2
# What a later fragment does not have (no L4 header): a match on them there matches nothing, a
# set-field of them does nothing; Open vSwitch refuses both (its prerequisites say "not later").
NOT_IN_LATER_FRAGMENTS = frozenset({"tcp_src", "tcp_dst", "udp_src", "udp_dst", "sctp_src", "sctp_dst",
                                    "tcp_flags"})

# Prerequisites: a name -> list of alternatives, each a list of (field, value, mask) that must
# all hold.  Resolved by ``prereqs_of``.
PREREQS: dict[str, list[list[tuple[str, int, int | None]]]] = {
    "": [[]],
    "ip4": [[("eth_type", ETH_TYPE_IP, None)]],
    "ip6": [[("eth_type", ETH_TYPE_IPV6, None)]],
    "ip": [[("eth_type", ETH_TYPE_IP, None)], [("eth_type", ETH_TYPE_IPV6, None)]],
    "arp": [[("eth_type", ETH_TYPE_ARP, None)]],
    "vlan": [[("vlan_vid", VLAN_CFI, VLAN_CFI)]],
    "mpls": [[("eth_type", ETH_TYPE_MPLS, None)], [("eth_type", ETH_TYPE_MPLS_MCAST, None)]],
    "tcp": [[("eth_type", t, None), ("ip_proto", 6, None)] for t in (ETH_TYPE_IP, ETH_TYPE_IPV6)],
    "udp": [[("eth_type", t, None), ("ip_proto", 17, None)] for t in (ETH_TYPE_IP, ETH_TYPE_IPV6)],
    "sctp": [[("eth_type", t, None), ("ip_proto", 132, None)] for t in (ETH_TYPE_IP, ETH_TYPE_IPV6)],
    "icmp4": [[("eth_type", ETH_TYPE_IP, None), ("ip_proto", 1, None)]],
    "icmp6": [[("eth_type", ETH_TYPE_IPV6, None), ("ip_proto", 58, None)]],
    # As Open vSwitch: ND fields need type 135/136 and code 0 (the parser reads ND only then).
    "nd": [[("eth_type", ETH_TYPE_IPV6, None), ("ip_proto", 58, None), ("icmpv6_type", t, None),
            ("icmpv6_code", 0, None)] for t in (135, 136)],
    "nd_sll": [[("eth_type", ETH_TYPE_IPV6, None), ("ip_proto", 58, None), ("icmpv6_type", 135, None),
                ("icmpv6_code", 0, None)]],
    "nd_tll": [[("eth_type", ETH_TYPE_IPV6, None), ("ip_proto", 58, None), ("icmpv6_type", 136, None),
                ("icmpv6_code", 0, None)]],
}


@dataclass(frozen=True)
class Field:
    name: str                  # canonical (OXM-style) name; ovs-ofctl's spellings are aliases
    bits: int                  # width of the OpenFlow value
    maskable: bool
    prereq: str                # key of PREREQS
    oxm: tuple[int, int] | None        # (class, field) on the wire; None: no OXM
    member: str | None         # KEY_DTYPE member holding it; None: pipeline-only
    offset: int = 0            # first byte within the member
    nbytes: int = 0            # bytes of the member it spans (0: the whole member)
    shift: int = 0             # value = (member bytes as big-endian int >> shift) & (2**bits - 1)
    aliases: tuple[str, ...] = ()
    writable: bool = True      # set-field may write it (the datapath has a masked set for it)
    kind: str = "int"          # how strings show it: int, hex, mac, ipv4, ipv6, port
    meta_shift: int = -1       # pipeline-only fields: where its value starts in the pipeline vector
    nxm: tuple[int, int] | None = None   # (class, field) actions name it by in NXM (load, move), if not oxm

    @cached_property
    def key_offset(self) -> int:
        """Byte offset of this field's bytes in the flow key."""
        return KEY_DTYPE.fields[self.member][1] + self.offset

    @cached_property
    def key_nbytes(self) -> int:
        return self.nbytes or KEY_DTYPE.fields[self.member][0].itemsize

    @cached_property
    def byteorder(self) -> str:
        """Metadata members (in_port, recirc_id, dp_hash) are host order; frame fields big-endian."""
        order = KEY_DTYPE.fields[self.member][0].base.byteorder
        return {"<": "little", ">": "big", "|": "big", "=": sys.byteorder}[order]

    @cached_property
    def all_ones(self) -> int:
        return (1 << self.bits) - 1

    @cached_property
    def key_bit_shift(self) -> int:
        """Where this field's value starts in the key as a big-endian int (big-endian members)."""
        return 8 * (KEY_SIZE - self.key_offset - self.key_nbytes) + self.shift

    def key_mask_bytes(self, mask: int | None = None) -> tuple[int, bytes]:
        """(offset, mask bytes) this field (with MASK, default exact) covers in the key."""
        m = ((self.all_ones if mask is None else mask) << self.shift) & ((1 << 8 * self.key_nbytes) - 1)
        return self.key_offset, m.to_bytes(self.key_nbytes, self.byteorder)

    def key_ints(self, value: int, mask: int) -> tuple[int, int]:
        """VALUE under MASK as (value bits, mask bits) of the whole key read as one big-endian
        int (the classifier's view of a key)."""
        n = self.key_nbytes
        mv = (mask << self.shift) & ((1 << 8 * n) - 1)
        vv = (value << self.shift) & mv
        if self.byteorder == "little":
            mv = int.from_bytes(mv.to_bytes(n, "little"), "big")
            vv = int.from_bytes(vv.to_bytes(n, "little"), "big")
        pos = 8 * (KEY_SIZE - self.key_offset - n)
        return vv << pos, mv << pos

    def from_key(self, key: bytes) -> int:
        """The field's value in a flow key (bytes of KEY_SIZE)."""
        raw = int.from_bytes(key[self.key_offset:self.key_offset + self.key_nbytes], self.byteorder)
        return (raw >> self.shift) & self.all_ones

    def to_key(self, key: bytearray, value: int, mask: int | None = None) -> None:
        """Write VALUE (under MASK) into a flow key in place."""
        off, n = self.key_offset, self.key_nbytes
        m = (((self.all_ones if mask is None else mask) & self.all_ones) << self.shift) & ((1 << 8 * n) - 1)
        raw = int.from_bytes(key[off:off + n], self.byteorder)
        raw = (raw & ~m) | ((value << self.shift) & m)
        key[off:off + n] = raw.to_bytes(n, self.byteorder)


    @cached_property
    def regs(self) -> tuple[str, ...]:
        """The 32-bit registers an xreg/xxreg covers (high first); () for any other field."""
        if self.meta_shift < REG_SHIFT or self.bits == 32:
            return ()
        first = N_REGS - 1 - (self.meta_shift - REG_SHIFT) // 32 - (self.bits // 32 - 1)
        return tuple(f"reg{i}" for i in range(first, first + self.bits // 32))

    @cached_property
    def wire(self) -> tuple[int, int]:
        """(class, field) that NX actions (load, move, push, pop) name this field by."""
        return self.nxm or self.oxm


def _f(name, bits, maskable, prereq, oxm, member, offset=0, nbytes=0, shift=0, aliases=(), writable=True,
       kind="int", meta_shift=-1, nxm=None):
    return Field(name, bits, maskable, prereq, oxm, member, offset, nbytes, shift, tuple(aliases), writable, kind,
                 meta_shift, nxm)


B = OXM_OF_BASIC
FIELDS: list[Field] = [
    _f("in_port", 32, False, "", (B, 0), "in_port", kind="port", writable=False),
    _f("metadata", 64, True, "", (B, 2), None, kind="hex", meta_shift=0, aliases=["OXM_OF_METADATA"]),
    _f("eth_dst", 48, True, "", (B, 3), "eth_dst", aliases=["dl_dst"], kind="mac"),
    _f("eth_src", 48, True, "", (B, 4), "eth_src", aliases=["dl_src"], kind="mac"),
    _f("eth_type", 16, False, "", (B, 5), "eth_type", aliases=["dl_type"], kind="hex", writable=False),
    _f("vlan_vid", 13, True, "", (B, 6), "vlan_tci", nbytes=2, kind="int"),
    # Maskable here (vlan_tci=0x3000/0x3000, as Open vSwitch's NXM); OpenFlow 1.3's OXM is not (oxm.py).
    _f("vlan_pcp", 3, True, "vlan", (B, 7), "vlan_tci", nbytes=2, shift=13, aliases=["dl_vlan_pcp"]),
    _f("ip_dscp", 6, False, "ip", (B, 8), "nw_tos", shift=2),
    _f("ip_ecn", 2, False, "ip", (B, 9), "nw_tos", aliases=["nw_ecn"]),
    _f("ip_proto", 8, False, "ip", (B, 10), "nw_proto", aliases=["nw_proto"], writable=False),
    _f("ipv4_src", 32, True, "ip4", (B, 11), "nw_src", nbytes=4, aliases=["nw_src", "ip_src"], kind="ipv4"),
    _f("ipv4_dst", 32, True, "ip4", (B, 12), "nw_dst", nbytes=4, aliases=["nw_dst", "ip_dst"], kind="ipv4"),
    _f("tcp_src", 16, True, "tcp", (B, 13), "tp_src"),
    _f("tcp_dst", 16, True, "tcp", (B, 14), "tp_dst"),
    _f("udp_src", 16, True, "udp", (B, 15), "tp_src"),
    _f("udp_dst", 16, True, "udp", (B, 16), "tp_dst"),
    _f("sctp_src", 16, True, "sctp", (B, 17), "tp_src"),
    _f("sctp_dst", 16, True, "sctp", (B, 18), "tp_dst"),
    _f("icmp_type", 8, False, "icmp4", (B, 19), "tp_src", offset=1, nbytes=1, aliases=["icmpv4_type"]),
    _f("icmp_code", 8, False, "icmp4", (B, 20), "tp_dst", offset=1, nbytes=1, aliases=["icmpv4_code"]),
    _f("arp_op", 16, False, "arp", (B, 21), "nw_proto"),
    _f("arp_spa", 32, True, "arp", (B, 22), "nw_src", nbytes=4, kind="ipv4"),
    _f("arp_tpa", 32, True, "arp", (B, 23), "nw_dst", nbytes=4, kind="ipv4"),
    _f("arp_sha", 48, True, "arp", (B, 24), "arp_sha", kind="mac"),
    _f("arp_tha", 48, True, "arp", (B, 25), "arp_tha", kind="mac"),
    _f("ipv6_src", 128, True, "ip6", (B, 26), "nw_src", kind="ipv6"),
    _f("ipv6_dst", 128, True, "ip6", (B, 27), "nw_dst", kind="ipv6"),
    _f("ipv6_label", 20, True, "ip6", (B, 28), "ipv6_label", kind="hex"),
    _f("icmpv6_type", 8, False, "icmp6", (B, 29), "tp_src", offset=1, nbytes=1),
    _f("icmpv6_code", 8, False, "icmp6", (B, 30), "tp_dst", offset=1, nbytes=1),
    _f("nd_target", 128, True, "nd", (B, 31), "nd_target", aliases=["ipv6_nd_target"], kind="ipv6"),
    _f("nd_sll", 48, True, "nd_sll", (B, 32), "arp_sha", aliases=["ipv6_nd_sll"], kind="mac"),
    _f("nd_tll", 48, True, "nd_tll", (B, 33), "arp_tha", aliases=["ipv6_nd_tll"], kind="mac"),
    # The outer MPLS label stack entry (the key holds one, as the brief of issue 16 asks; Open
    # vSwitch's flow holds three).  mpls_bos is read-only, as in Open vSwitch.
    _f("mpls_label", 20, False, "mpls", (B, 34), "mpls_lse", shift=12, aliases=["OXM_OF_MPLS_LABEL"]),
    _f("mpls_tc", 3, False, "mpls", (B, 35), "mpls_lse", shift=9, aliases=["OXM_OF_MPLS_TC"]),
    _f("mpls_bos", 1, False, "mpls", (B, 36), "mpls_lse", shift=8, writable=False, aliases=["OXM_OF_MPLS_BOS"]),
    _f("mpls_ttl", 8, False, "mpls", (NXM_NX, 30), "mpls_lse", aliases=["NXM_NX_MPLS_TTL"]),
    # Nicira extensions ovs-ofctl uses.
    _f("nw_ttl", 8, False, "ip", (NXM_NX, 29), "nw_ttl"),
    _f("ip_frag", 2, True, "ip", (NXM_NX, 26), "nw_frag", aliases=["nw_frag"], writable=False),
    _f("tcp_flags", 12, True, "tcp", (NXM_NX, 34), "tcp_flags", kind="hex", writable=False),
    # Pipeline-only Open vSwitch extensions: the pipeline vector (see PIPELINE_BITS above).
    _f("pkt_mark", 32, True, "", (NXM_NX, 33), None, kind="hex", meta_shift=64, aliases=["NXM_NX_PKT_MARK"]),
    # The conjunctive match's id, while the classifier looks it up (classifier.py); 0 otherwise.
    _f("conj_id", 32, False, "", (NXM_NX, 37), None, kind="int", meta_shift=CONJ_ID_SHIFT, writable=False,
       aliases=["NXM_NX_CONJ_ID"]),
    *(_f(f"reg{i}", 32, True, "", (NXM_NX, i), None, kind="hex", meta_shift=REG_SHIFT + 32 * (N_REGS - 1 - i),
         aliases=[f"NXM_NX_REG{i}"]) for i in range(N_REGS)),
    *(_f(f"xreg{i}", 64, True, "", (OXM_PACKET_REGS, i), None, kind="hex",
         meta_shift=REG_SHIFT + 32 * (N_REGS - 2 - 2 * i), aliases=[f"OXM_OF_PKT_REG{i}"]) for i in range(N_REGS // 2)),
    *(_f(f"xxreg{i}", 128, True, "", (NXM_NX, 111 + i), None, kind="hex",
         meta_shift=REG_SHIFT + 32 * (N_REGS - 4 - 4 * i), aliases=[f"NXM_NX_XXREG{i}"]) for i in range(N_REGS // 4)),
    # The datapath's recirculation metadata (balance-tcp bonds: xlate's post-recirculation); no
    # OpenFlow match field.
    _f("recirc_id", 32, False, "", None, "recirc_id", kind="hex", writable=False),
    _f("dp_hash", 32, True, "", None, "dp_hash", kind="hex", writable=False),
]

# Nicira's 16-bit views that load/move/learn name (not matched by these names: a match says
# vlan_tci, dl_vlan, in_port): the outer tag's TCI as the key holds it (0x1000: a tag), and the
# OpenFlow 1.0 port number (the low 16 bits of in_port; reserved ports map as 1.0's do).
# They are not in FIELDS (nothing matches them), only in BY_NAME and BY_WIRE.
VIEW_FIELDS = [
    _f("NXM_OF_VLAN_TCI", 16, True, "", None, "vlan_tci", nbytes=2, kind="hex", nxm=(NXM_OF, 4)),
    _f("NXM_OF_IN_PORT", 16, False, "", None, "in_port", kind="port", writable=False, nxm=(NXM_OF, 0)),
]
VIEWS = frozenset(f.name for f in VIEW_FIELDS)

# Nicira's names of the packet fields (ovs-fields(7)), as load/move/push/pop write them and as
# dump-flows prints them there: name -> (field, NXM code).  Fields named here are written with
# their NXM header in actions, as Open vSwitch does; the others with their OXM one.
NXM_NAMES: dict[str, tuple[str, tuple[int, int]]] = {
    "NXM_OF_ETH_DST": ("eth_dst", (NXM_OF, 1)),
    "NXM_OF_ETH_SRC": ("eth_src", (NXM_OF, 2)), "NXM_OF_ETH_TYPE": ("eth_type", (NXM_OF, 3)),
    "NXM_OF_IP_PROTO": ("ip_proto", (NXM_OF, 6)), "NXM_OF_IP_SRC": ("ipv4_src", (NXM_OF, 7)),
    "NXM_OF_IP_DST": ("ipv4_dst", (NXM_OF, 8)), "NXM_OF_TCP_SRC": ("tcp_src", (NXM_OF, 9)),
    "NXM_OF_TCP_DST": ("tcp_dst", (NXM_OF, 10)), "NXM_OF_UDP_SRC": ("udp_src", (NXM_OF, 11)),
    "NXM_OF_UDP_DST": ("udp_dst", (NXM_OF, 12)), "NXM_OF_ICMP_TYPE": ("icmp_type", (NXM_OF, 13)),
    "NXM_OF_ICMP_CODE": ("icmp_code", (NXM_OF, 14)), "NXM_OF_ARP_OP": ("arp_op", (NXM_OF, 15)),
    "NXM_OF_ARP_SPA": ("arp_spa", (NXM_OF, 16)), "NXM_OF_ARP_TPA": ("arp_tpa", (NXM_OF, 17)),
    "NXM_NX_ARP_SHA": ("arp_sha", (NXM_NX, 17)), "NXM_NX_ARP_THA": ("arp_tha", (NXM_NX, 18)),
    "NXM_NX_IPV6_SRC": ("ipv6_src", (NXM_NX, 19)), "NXM_NX_IPV6_DST": ("ipv6_dst", (NXM_NX, 20)),
    "NXM_NX_ICMPV6_TYPE": ("icmpv6_type", (NXM_NX, 21)), "NXM_NX_ICMPV6_CODE": ("icmpv6_code", (NXM_NX, 22)),
    "NXM_NX_ND_TARGET": ("nd_target", (NXM_NX, 23)), "NXM_NX_ND_SLL": ("nd_sll", (NXM_NX, 24)),
    "NXM_NX_ND_TLL": ("nd_tll", (NXM_NX, 25)), "NXM_NX_IP_FRAG": ("ip_frag", (NXM_NX, 26)),
    "NXM_NX_IPV6_LABEL": ("ipv6_label", (NXM_NX, 27)), "NXM_NX_IP_ECN": ("ip_ecn", (NXM_NX, 28)),
    "NXM_NX_IP_TTL": ("nw_ttl", (NXM_NX, 29)), "NXM_NX_TCP_FLAGS": ("tcp_flags", (NXM_NX, 34)),
}
for _nxname, (_fname, _code) in NXM_NAMES.items():
    _i = next(i for i, f in enumerate(FIELDS) if f.name == _fname)
    FIELDS[_i] = replace(FIELDS[_i], aliases=(*FIELDS[_i].aliases, _nxname), nxm=_code)

BY_NAME: dict[str, Field] = {}
for _fld in FIELDS + VIEW_FIELDS:
    for _n in (_fld.name, *_fld.aliases):
        BY_NAME[_n] = _fld
BY_OXM: dict[tuple[int, int], Field] = {f.oxm: f for f in FIELDS if f.oxm}
# The field an NX action's header names (an NXM code, or an OXM one: Open vSwitch reads both).
BY_WIRE: dict[tuple[int, int], Field] = {**BY_OXM, **{f.nxm: f for f in FIELDS + VIEW_FIELDS if f.nxm}}


def field(name: str) -> Field:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown field '{name}'") from None


def prereqs_of(f: Field) -> list[list[tuple[Field, int, int | None]]]:
    """The alternatives of (field, value, mask) conditions a match on F needs (shared: do not
    change the lists)."""
    alts = _PREREQS_OF.get(f.prereq)
    if alts is None:
        alts = _PREREQS_OF[f.prereq] = [[(BY_NAME[n], v, m) for n, v, m in alt] for alt in PREREQS[f.prereq]]
    return alts


_PREREQS_OF: dict[str, list] = {}


def _fmt_value(f: Field, v: int) -> str:
    if f.kind == "mac":
        return ":".join(f"{b:02x}" for b in v.to_bytes(6, "big"))
    if f.kind == "ipv4":
        return str(ipaddress.IPv4Address(v))
    if f.kind == "ipv6":
        return str(ipaddress.IPv6Address(v))
    if f.kind == "hex":
        return f"0x{v:x}"
    return str(v)


def format_key(key: bytes, mask: bytes, verbose: bool = False) -> str:
    """A datapath flow's match, field by field from the one field table: name=value[/mask] for
    each field the mask covers (all fields with -m style VERBOSE, wildcarded ones as name=*)."""
    out, seen = [], set()

    def applies(f: Field) -> bool:   # the field means something for this key (tcp_src only for TCP, ...)
        return any(all(p.from_key(key) & (p.all_ones if pm is None else pm) == pv for p, pv, pm in alt)
                   for alt in prereqs_of(f))
    recirc = int.from_bytes(mask[4:8], "little")
    if recirc or verbose:
        out.append(f"recirc_id={int.from_bytes(key[4:8], 'little')}" + ("" if recirc == 0xFFFFFFFF else
                                                                           f"/0x{recirc:x}"))
    for f in FIELDS:
        if f.member is None or f.oxm is None or (f.member, f.offset, f.shift, f.bits) in seen or not applies(f):
            continue
        seen.add((f.member, f.offset, f.shift, f.bits))
        m = f.from_key(mask)
        if not m:
            if verbose:
                out.append(f"{f.name}=*")
            continue
        v = f.from_key(key)
        out.append(f"{f.name}={_fmt_value(f, v)}" + ("" if m == f.all_ones else f"/{_fmt_value(f, m)}"))
    return ",".join(out) or "(any)"
