"""Flows in ovs-ofctl syntax: ``parse_flow`` reads what ``ovs-ofctl add-flow`` (and del-flows,
dump-flows) accepts, ``format_flow`` prints what ``ovs-ofctl dump-flows`` prints, over the fields
of fields.FIELDS and the actions and instructions of actions.py.

Syntax (see ovs-fields(7), ovs-actions(7)): comma- or space-separated ``key=value`` items, the
protocol words (ip, ipv6, tcp, udp, sctp, icmp, icmp6, arp, tcp6, udp6, sctp6), the OpenFlow
1.0 spellings (dl_vlan, dl_vlan_pcp, vlan_tci, nw_tos, tp_src/tp_dst, nw_src with arp ...),
values in decimal or 0x hex, addresses with /prefix or /mask, then ``actions=`` and the rest of
the line as actions and instructions.  Items may come in any order (``tp_dst=80,tcp``).

Representation choices:
  - nw_tos=N matches ip_dscp=N>>2 (ECN bits ignored, as ovs-ofctl does); mod_nw_tos:N and
    set_field:N->nw_tos are SetField('ip_dscp', N>>2).  fields.py's 8-bit nw_tos is not produced.
  - mod_vlan_vid:N is SetField('vlan_vid', N|0x1000) and mod_vlan_pcp:N SetField('vlan_pcp', N):
    pushing a tag when the packet has none is translation's concern (ovs-ofctl adds push_vlan
    when the match does not require a tag).  set_field to vlan_vid must carry the 0x1000 bit.
  - Prerequisites ovs-ofctl leaves implied are added: vlan_pcp/dl_vlan_pcp adds
    vlan_vid=0x1000/0x1000, nd_target/nd_sll/nd_tll add icmp_code=0.  Protocols are never
    guessed: tp_dst=80 without tcp/udp/sctp is an error (ovs-ofctl silently drops it).
  - A flow whose actions do not fit its match is refused as Open vSwitch refuses it over
    OpenFlow 1.3 (consistency.py): pop_vlan or set_field to vlan_vid/vlan_pcp without a tag,
    dec_ttl/mod_nw_ttl/mod_nw_tos without ip, a third VLAN tag, L4 ports in later fragments,
    set_field:N->icmp_type under icmp6, goto_table backwards; so are copy_ttl_in/out (OVS has
    them not) and outputs to ports from 0xff00 up that are not reserved ones.  mod_vlan_vid and
    mod_vlan_pcp push a tag when there is none, so they need none (ovs-ofctl writes them as
    push_vlan + set_field then).
  - Stricter than ovs-ofctl: a field given twice with different values, or two protocols that
    disagree (ipv6,tcp), is an error rather than "last one wins"; numeric OpenFlow 1.0 port
    numbers (65534) are taken as the 32-bit port numbers they are, not mapped to LOCAL (an
    output to one is dropped: no port has it; over the wire Open vSwitch refuses it); a value
    too wide for its field (ip_dscp=64) is an error, not truncated; vlan_tci PCP bits need the
    0x1000 bit (a tag) in the mask.  A partial PCP mask (vlan_tci=0x3000/0x3000) is kept as
    written (ovs-ofctl -O OpenFlow13 rounds it to a whole PCP or drops it).
  - actions=drop (or nothing) is no instruction at all; an empty write_actions() is dropped.
  - Open vSwitch's extensions: registers (reg0-15, xreg0-7, xxreg0-3: stored as the 32-bit
    registers, printed as reg<N> as ovs-ofctl does) and pkt_mark in matches; resubmit, load,
    move, masked set_field, push/pop (the field stack), note, exit as actions.  load/move
    name fields by any name (NXM_NX_REG0[0..3], reg0[0..3], eth_dst[]) and print them by their
    NXM/OXM names.  Not in load/move/push/pop: vlan_vid/vlan_pcp (the 12-bit VID subfields).
  - Not supported: controller's pause and meter_id, conntrack, tunnels,
    copy_ttl_in/out, rarp, igmp (the README says why).

Pure functions; any thread.
"""
from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass, field as dc_field

from .actions import (INSTRUCTION_ORDER, NOT_IN_ACTION_SET, OFPCML_NO_BUFFER, OFPP_ANY, OFPP_CONTROLLER,
                      OFPP_IN_PORT, OFPP_MAX, RESERVED_PORTS, ApplyActions, ClearActions, Clone, CopyTtlIn, CopyTtlOut, MULTIPATH_ALGORITHMS, MULTIPATH_FIELDS, Multipath,
                      LEARN_DELETE_LEARNED, LEARN_SEND_FLOW_REM, LEARN_WRITE_RESULT, PACKET_IN_REASONS, Conjunction, Controller, BUNDLE_ALGORITHMS, Bundle, DecNwTtl, Exit, FinTimeout, GotoTable, Group, Learn, LearnSpec,
                      Load, Meter, Move, Note, Output, PopVlan, PushVlan, Resubmit, Sample,
                      DecMplsTtl, PopMpls, PushMpls, SetMplsTtl, CheckPktLarger, PopQueue,
                      SetField, SetNwTtl, SetQueue, StackPop, StackPush, WriteActions, WriteMetadata)
from .fields import (BY_NAME, ETH_TYPE_ARP, ETH_TYPE_IP, ETH_TYPE_IPV6, ETH_TYPE_QINQ, ETH_TYPE_VLAN, FRAG_ANY,
                     FRAG_LATER, NOT_IN_LATER_FRAGMENTS, VIEWS, VLAN_CFI, Field)
from .consistency import ActionError, check, output_port_ok, set_field_value_error, untagged_vlan_sets
from .match import Match, MatchError

__all__ = ["FlowParseError", "FlowSpec", "FlowStats", "FLOW_FLAGS", "parse_flow", "parse_match", "parse_actions",
           "format_flow", "format_match", "format_actions"]

OFP_DEFAULT_PRIORITY = 0x8000
OFPG_ANY, OFPG_ALL = 0xFFFFFFFF, 0xFFFFFFFC
U64 = (1 << 64) - 1
# OpenFlow 1.3 OFPFF_* bits, by their ovs-ofctl names (in the order dump-flows prints them).
FLOW_FLAGS = {"send_flow_rem": 1 << 0, "check_overlap": 1 << 1, "reset_counts": 1 << 2,
              "no_packet_counts": 1 << 3, "no_byte_counts": 1 << 4}


class FlowParseError(ValueError):
    pass


class _Bad(Exception):
    """A problem with one item; the caller names the item."""


@dataclass(frozen=True)
class FlowSpec:
    match: Match = dc_field(default_factory=Match)
    instructions: tuple = ()                 # actions.py instructions, in INSTRUCTION_ORDER
    table_id: int | None = None              # None: not given (add: table 0; delete/dump: all)
    priority: int = OFP_DEFAULT_PRIORITY
    cookie: int = 0
    cookie_mask: int = 0                     # nonzero: match cookies (modify/delete/dump)
    idle_timeout: int = 0
    hard_timeout: int = 0
    importance: int = 0
    flags: int = 0                           # FLOW_FLAGS bits
    out_port: int | None = None              # delete/dump filters; None: any
    out_group: int | None = None

    def replaced(self, **changes) -> FlowSpec:
        """This spec with CHANGES (field=value), as ``dataclasses.replace`` gives it but without
        running the frozen ``__init__`` again (a third of the cost): for a hot path (compiled
        flow-mod shapes) whose values are of the fields' types already."""
        spec = object.__new__(FlowSpec)
        d = spec.__dict__
        d.update(self.__dict__)
        d.update(changes)
        return spec


@dataclass(frozen=True)
class FlowStats:
    duration: float = 0.0                    # seconds
    n_packets: int = 0
    n_bytes: int = 0
    idle_age: int | None = None
    hard_age: int | None = None


# ---- values ------------------------------------------------------------------------------------

_NUM = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+")
_MAC = re.compile(r"[0-9a-fA-F]{1,2}(?::[0-9a-fA-F]{1,2}){5}")
_PORT_NAMES = {v: k.upper() for k, v in RESERVED_PORTS.items()}


def _num(text: str, bits: int = 64, what: str = "value") -> int:
    if not _NUM.fullmatch(text):
        raise _Bad(f"'{text}' is not a number (decimal or 0x hex)")
    n = int(text, 0) if text[:2].lower() == "0x" else int(text, 10)
    if n >> bits:
        raise _Bad(f"{what} {text} does not fit in {bits} bits")
    return n


def _mac(text: str) -> int:
    if not _MAC.fullmatch(text):
        raise _Bad(f"'{text}' is not a MAC address (xx:xx:xx:xx:xx:xx)")
    return int("".join(f"{int(b, 16):02x}" for b in text.split(":")), 16)


def _ip(cls):
    def parse(text: str) -> int:
        try:
            return int(cls(text))
        except ValueError:
            raise _Bad(f"'{text}' is not an {cls.__name__[:4]} address") from None
    return parse


def _port(text: str) -> int:
    if text.lower() in RESERVED_PORTS:
        return RESERVED_PORTS[text.lower()]
    n = _num(text, 32, "port") if _NUM.fullmatch(text) else None
    if n is None or OFPP_MAX < n < min(RESERVED_PORTS.values()):
        raise _Bad(f"'{text}' is not a port (a number up to {OFPP_MAX:#x}, or one of "
                   f"{', '.join(RESERVED_PORTS)})")
    return n


def _fmt_port(port: int) -> str:
    return _PORT_NAMES.get(port, str(port))


_PARSE = {"int": _num, "hex": _num, "mac": _mac, "ipv4": _ip(ipaddress.IPv4Address),
          "ipv6": _ip(ipaddress.IPv6Address), "port": _port}


def _fmt_mac(v: int) -> str:
    return ":".join(f"{b:02x}" for b in v.to_bytes(6, "big"))


def _fmt_ip(cls, bits):
    def fmt(v: int, mask: int | None) -> str:
        s = str(cls(v))
        if mask is None:
            return s
        prefix = bin(mask).count("1")
        return f"{s}/{prefix}" if mask == ((1 << bits) - 1) ^ ((1 << bits - prefix) - 1) else f"{s}/{cls(mask)}"
    return fmt


_FORMAT = {"int": lambda v, m: str(v) if m is None else f"{v:#x}/{m:#x}",
           "hex": lambda v, m: f"{v:#x}" if m is None else f"{v:#x}/{m:#x}",
           "mac": lambda v, m: _fmt_mac(v) if m is None else f"{_fmt_mac(v)}/{_fmt_mac(m)}",
           "ipv4": _fmt_ip(ipaddress.IPv4Address, 32), "ipv6": _fmt_ip(ipaddress.IPv6Address, 128),
           "port": lambda v, m: _fmt_port(v)}


def _value(f: Field, text: str) -> tuple[int, int | None]:
    """TEXT (VALUE or VALUE/MASK, addresses also /PREFIX) as F's value and mask."""
    v, slash, m = text.partition("/")
    parse = (lambda t: _num(t, max(64, f.bits))) if f.kind in ("int", "hex") else _PARSE[f.kind]
    value = parse(v)
    if not slash:
        return value, None
    if f.kind in ("ipv4", "ipv6") and m.isdigit():
        if int(m) > f.bits:
            raise _Bad(f"prefix /{m} is longer than {f.bits} bits")
        return value, f.all_ones ^ ((1 << f.bits - int(m)) - 1)
    return value, parse(m)


# ip_frag words (ovs-fields(7)): value/mask over bit 0 (FRAG_ANY) and bit 1 (FRAG_LATER).
_FRAG = {"no": (0, FRAG_ANY), "yes": (FRAG_ANY, FRAG_ANY), "first": (FRAG_ANY, FRAG_ANY | FRAG_LATER),
         "later": (FRAG_ANY | FRAG_LATER, FRAG_ANY | FRAG_LATER), "not_later": (0, FRAG_LATER)}
_FRAG_NAME = {vm: w for w, vm in _FRAG.items()}
_TCP_FLAGS = ["fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns"]


def _tcp_flags(text: str) -> tuple[int, int]:
    """+syn-ack style (as ovs-fields(7)) or VALUE[/MASK]."""
    if text[:1] not in "+-":
        v, m = _value(BY_NAME["tcp_flags"], text)
        return v, 0xFFF if m is None else m
    value = mask = 0
    for sign, name in re.findall(r"([+-])(\w+|\[[0-9a-fA-F]+\])", text):
        bit = (1 << _TCP_FLAGS.index(name)) if name in _TCP_FLAGS else int(name[1:-1], 16) if name[0] == "[" else 0
        if not bit or bit > 0x800 or bit & (bit - 1):
            raise _Bad(f"unknown TCP flag '{name}' (expected one of {', '.join(_TCP_FLAGS)}, or [200], [400], [800])")
        value, mask = value | (bit if sign == "+" else 0), mask | bit
    if re.sub(r"([+-])(\w+|\[[0-9a-fA-F]+\])", "", text):
        raise _Bad(f"'{text}' is not +flag-flag... or VALUE/MASK")
    return value, mask


def _fmt_tcp_flags(v: int, m: int) -> str:
    return "".join(("+" if v >> i & 1 else "-") + (_TCP_FLAGS[i] if i < 9 else f"[{1 << i:x}]")
                   for i in range(12) if m >> i & 1)


# ---- tokens ------------------------------------------------------------------------------------

def _items(text: str):
    """(key, value, item text) of each item, as ovs-ofctl's ofputil_parse_key_value splits them:
    key=value or key:value up to a comma or blank, key(value) up to the matching parenthesis."""
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in ", \t\r\n":
            i += 1
        if i >= n:
            return
        j = i
        while j < n and text[j] not in ":=(, \t\r\n":
            j += 1
        key, delim = text[i:j], text[j] if j < n else ""
        if delim not in ":=(":
            yield key, "", key
            i = j
            continue
        k, depth = j + 1, 0
        while k < n and (depth or (text[k] != ")" if delim == "(" else text[k] not in ", \t\r\n")):
            depth += {"(": 1, ")": -1}.get(text[k], 0)
            k += 1
        if delim == "(" and k >= n:
            raise FlowParseError(f"'{text[i:]}': missing ')'")
        if delim == "(" and text[k + 1:k + 3] == "->":     # check_pkt_larger(N)->DST: the value is "N)->DST"
            e = k + 3
            while e < n and text[e] not in ", \t\r\n":
                e += 1
            yield key, text[j + 1:e], text[i:e]
            i = e
            continue
        yield key, text[j + 1:k], text[i:k + (delim == "(")]
        i = k + (delim == "(")


def _unknown(kind: str, name: str, known) -> FlowParseError:
    close = difflib.get_close_matches(name, list(known), n=1)
    return FlowParseError(f"unknown {kind} '{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))


# ---- matches -----------------------------------------------------------------------------------

PROTOCOLS = {"ip": (ETH_TYPE_IP, None), "ipv6": (ETH_TYPE_IPV6, None), "arp": (ETH_TYPE_ARP, None),
             "icmp": (ETH_TYPE_IP, 1), "tcp": (ETH_TYPE_IP, 6), "udp": (ETH_TYPE_IP, 17), "sctp": (ETH_TYPE_IP, 132),
             "icmp6": (ETH_TYPE_IPV6, 58), "tcp6": (ETH_TYPE_IPV6, 6), "udp6": (ETH_TYPE_IPV6, 17),
             "sctp6": (ETH_TYPE_IPV6, 132), "mpls": (0x8847, None), "mplsm": (0x8848, None)}
_PROTOCOL_NAME = {v: k for k, v in PROTOCOLS.items()}
_L4 = {6: "tcp", 17: "udp", 132: "sctp"}
_SETTABLE = frozenset({"in_port"})      # set_field may write it though the datapath key holds no set for it
_PUSH_TAG = ("mod_vlan_vid", "mod_vlan_pcp")      # they push a tag when there is none
_HEADER = {"table", "priority", "cookie", "idle_timeout", "hard_timeout", "importance", "out_port", "out_group"}
_IGNORED = {"duration", "n_packets", "n_bytes", "idle_age", "hard_age"}
_SPECIAL = {"nw_tos", "dl_vlan", "vlan_tci", "tp_src", "tp_dst"}
# Names whose meaning depends on eth_type (stage 1) or ip_proto (stage 2): read after the others.
_STAGE = {"nw_src": 1, "nw_dst": 1, "nw_proto": 1, "icmp_type": 1, "icmp_code": 1, "tp_src": 2, "tp_dst": 2}
_IMPLIED_OK = ("vlan_vid", "icmpv6_code")     # prerequisites added when left implied


class _MatchBuilder:
    def __init__(self):
        self.m, self.src = Match(), {}

    def put(self, name: str, value: int, mask: int | None, item: str) -> None:
        try:
            new = self.m.with_field(name, value, mask)
        except MatchError as e:
            raise _Bad(str(e)) from None
        f = BY_NAME[name].name
        if f in self.m and self.m[f] != new.get(f):
            raise _Bad(f"conflicts with '{self.src[f]}'")
        self.m = new
        self.src.setdefault(f, item)

    def add(self, key: str, value: str, item: str) -> None:
        if key in PROTOCOLS:
            if value:
                raise _Bad(f"'{key}' takes no value")
            eth, proto = PROTOCOLS[key]
            self.put("eth_type", eth, None, item)
            if proto is not None:
                self.put("ip_proto", proto, None, item)
            return
        if not value:
            raise _Bad(f"{key} needs a value ({key}=VALUE)")
        eth, proto = self.m.value("eth_type"), self.m.value("ip_proto")
        if key in ("tp_src", "tp_dst"):
            if eth not in (ETH_TYPE_IP, ETH_TYPE_IPV6) or proto not in _L4:
                raise _Bad(f"{key} requires tcp, udp or sctp")
            key = f"{_L4[proto]}_{key[3:]}"
        elif key in ("icmp_type", "icmp_code") and eth == ETH_TYPE_IPV6:
            key = "icmpv6_" + key[5:]
        elif eth == ETH_TYPE_ARP and key in ("nw_src", "nw_dst", "nw_proto"):
            key = {"nw_src": "arp_spa", "nw_dst": "arp_tpa", "nw_proto": "arp_op"}[key]
        if key == "nw_tos":                     # the DSCP bits of the TOS byte; ECN ignored
            self.put("ip_dscp", _num(value, 8, "nw_tos") >> 2, None, item)
        elif key == "dl_vlan":
            vid = _num(value, 16, "dl_vlan")
            if vid > 0xFFF and vid != 0xFFFF:
                raise _Bad("dl_vlan must be 0..4095, or 0xffff for no VLAN tag")
            self.put("vlan_vid", 0 if vid == 0xFFFF else vid | VLAN_CFI, None, item)
        elif key == "vlan_tci":
            v, slash, m = value.partition("/")
            self._vlan_tci(_num(v, 16, "vlan_tci"), _num(m, 16, "vlan_tci mask") if slash else None, item)
        elif BY_NAME.get(key) is BY_NAME["ip_frag"] and not value[:1].isdigit():
            if value not in _FRAG:
                raise _Bad(f"'{value}' is not a fragment type (expected {', '.join(_FRAG)})")
            self.put("ip_frag", *_FRAG[value], item)
        elif BY_NAME.get(key) is BY_NAME["tcp_flags"]:
            self.put("tcp_flags", *_tcp_flags(value), item)
        elif key in BY_NAME and BY_NAME[key].name in VIEWS:
            raise _Bad(f"{key} is for load, move and learn; match vlan_tci or in_port")
        elif key in BY_NAME:
            self.put(key, *_value(BY_NAME[key], value), item)
        else:
            raise _unknown("field", key, [*BY_NAME, *PROTOCOLS, *_SPECIAL, *_HEADER, *FLOW_FLAGS])

    def _vlan_tci(self, v: int, m: int | None, item: str) -> None:
        """vlan_tci=V/M (PCP:3, present:1, VID:12) onto vlan_vid (present+VID) and vlan_pcp."""
        m = 0xFFFF if m is None else m
        pcp_mask, present = m & 0xE000, m & v & VLAN_CFI
        if pcp_mask and not m & VLAN_CFI:
            raise _Bad("a vlan_tci match on PCP must also match the 0x1000 (tag present) bit")
        if pcp_mask and not present and v & 0xE000:
            raise _Bad("vlan_tci with PCP bits but without the 0x1000 (tag present) bit matches nothing")
        self.put("vlan_vid", v & 0x1FFF, m & 0x1FFF, item)
        if pcp_mask and present:
            self.put("vlan_pcp", v >> 13, pcp_mask >> 13, item)

    def done(self) -> Match:
        m = self.m.implied(only=_IMPLIED_OK)
        try:
            m.check_prereqs()
        except MatchError as e:
            item = self.src.get(e.field, e.field)
            if not e.alternatives:
                raise FlowParseError(f"'{item}': {e}") from None
            need = " or ".join(format_match(a) for a in e.alternatives)
            said = re.split(r"[=:(]", item)[0]           # the name as given (nw_src, dl_vlan_pcp ...)
            name = said if BY_NAME.get(said) is BY_NAME[e.field] else e.field
            raise FlowParseError(f"'{item}': {name} requires {need}") from None
        return m


def _build_match(pairs) -> Match:
    b = _MatchBuilder()
    for key, value, item in sorted(pairs, key=lambda p: _STAGE.get(p[0], 0)):
        try:
            b.add(key, value, item)
        except _Bad as e:
            raise FlowParseError(f"'{item}': {e}") from None
    return b.done()


def parse_match(text: str) -> Match:
    """A match alone (del-flows/dump-flows filters without the other keywords)."""
    pairs = list(_items(text))
    for key, _, item in pairs:
        if key in _HEADER or key in FLOW_FLAGS or key.startswith("action"):
            raise FlowParseError(f"'{item}': not a match field")
    return _build_match(pairs)


# ---- actions and instructions --------------------------------------------------------------------

def _set_field(name: str, text: str, match: Match) -> SetField:
    """SetField of NAME (any name or alias; tp_src/tp_dst/icmp_type by the match) to TEXT."""
    proto = match.value("ip_proto")
    if name in ("tp_src", "tp_dst"):
        if proto not in _L4:
            raise _Bad(f"{name} requires tcp, udp or sctp in the match")
        name = f"{_L4[proto]}_{name[3:]}"
    if name == "nw_tos":
        return _set_tos(text)
    if name not in BY_NAME:
        raise _unknown("field", name, [n for n, f in BY_NAME.items() if f.writable or n in _SETTABLE])
    f = BY_NAME[name]
    if not f.writable and f.name not in _SETTABLE:
        raise _Bad(f"{f.name} is not writable by set_field")
    value, mask = _value(f, text)
    if value > f.all_ones or mask is not None and mask > f.all_ones:
        raise _Bad(f"value {text} does not fit {f.name} ({f.bits} bits)")
    if mask is not None:
        if f.name in _NO_SUBFIELDS or f.name == "in_port" or not f.maskable:
            raise _Bad(f"{f.name} cannot be set under a mask")
        if mask == f.all_ones:
            mask = None
        else:
            return SetField(f.name, value & mask, mask)
    why = set_field_value_error(f.name, value)
    if why:
        raise _Bad(why + (f"; or use mod_vlan_vid:{value & 0xFFF}" if f.name == "vlan_vid" else ""))
    return SetField(f.name, value)      # its prerequisites: consistency.check, in the order of the actions


# ---- Open vSwitch's extension actions (ovs-actions(7)) ---------------------------------------------

_SUBFIELD = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[(?:(\d+)(?:\.\.(\d+))?)?\])?")
_NO_SUBFIELDS = frozenset({"vlan_vid", "vlan_pcp"})      # the 13-bit OXM VID: not as OVS's 12-bit field


def _subfield(text: str) -> tuple[str, int, int]:
    """FIELD[], FIELD[N], FIELD[A..B] or FIELD (ovs-fields(7)'s subfields) as (field, ofs, nbits)."""
    m = _SUBFIELD.fullmatch(text.strip())
    if not m:
        raise _Bad(f"'{text}' is not a field or subfield (FIELD[], FIELD[BIT] or FIELD[FIRST..LAST])")
    name = m.group(1)
    f = BY_NAME.get(name)
    if f is None:
        raise _Bad(str(_unknown("field", name, BY_NAME)))
    if f.name in _NO_SUBFIELDS:
        raise _Bad(f"{name} is not supported in load, move, push or pop yet (use set_field or mod_vlan_vid)")
    if m.group(2) is None:
        return f.name, 0, f.bits
    lo = int(m.group(2))
    hi = int(m.group(3)) if m.group(3) is not None else lo
    if hi < lo or hi >= f.bits:
        raise _Bad(f"{text}: bits {lo}..{hi} are not within {f.name}'s {f.bits} bits")
    return f.name, lo, hi - lo + 1


def _writable(sub: tuple[str, int, int]) -> tuple[str, int, int]:
    f = BY_NAME[sub[0]]
    if not f.writable and f.name not in _SETTABLE:
        raise _Bad(f"{f.name} is not writable")
    return sub


def _resubmit(text: str) -> Resubmit:
    """resubmit:PORT, resubmit(PORT), resubmit(,TABLE), resubmit(PORT,TABLE)."""
    port_text, comma, table_text = text.partition(",")
    port = _port(port_text.strip()) if port_text.strip() else OFPP_IN_PORT
    table = 0xFF
    if comma and table_text.strip():
        table = _num(table_text.strip(), 8, "table")
        if table == 0xFF:
            raise _Bad("table must be 0..254")
    if port == OFPP_IN_PORT and table == 0xFF and not comma:
        if not port_text.strip():
            raise _Bad("resubmit needs a port or a table: resubmit:PORT or resubmit(,TABLE)")
    return Resubmit(port, table)


def _load(text: str) -> Load:
    value, arrow, dst = text.partition("->")
    if not arrow:
        raise _Bad("load needs VALUE->FIELD[BITS]")
    name, ofs, nbits = _writable(_subfield(dst))
    v = _num(value.strip(), 128, "value")
    if v >> nbits:
        raise _Bad(f"value {value} does not fit {nbits} bits")
    return Load(name, ofs, nbits, v)


def _move(text: str) -> Move:
    src, arrow, dst = text.partition("->")
    if not arrow:
        raise _Bad("move needs SRC[BITS]->DST[BITS]")
    s, d = _subfield(src), _writable(_subfield(dst))
    if s[2] != d[2]:
        raise _Bad(f"source and destination widths differ ({s[2]} and {d[2]} bits)")
    return Move(s[0], s[1], d[0], d[1], d[2])


def _sample(text: str) -> Sample:
    """sample(probability=N,collector_set_id=N,obs_domain_id=N,obs_point_id=N), as ovs-ofctl."""
    vals = {"probability": 0, "collector_set_id": 0, "obs_domain_id": 0, "obs_point_id": 0}
    for key, value, _ in _items(text):
        if key not in vals:
            raise _Bad(f"sample: unknown argument '{key}' (probability, collector_set_id, obs_domain_id, "
                       f"obs_point_id)")
        vals[key] = _num(value, 16 if key == "probability" else 32, key)
    if not vals["probability"]:
        raise _Bad('non-zero "probability" must be specified on sample')
    return Sample(**vals)


def _multipath(text: str) -> Multipath:
    """multipath(fields,basis,algorithm,n_links,arg,dst), as ovs-ofctl."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 6:
        raise _Bad("multipath takes fields,basis,algorithm,n_links,arg,dst")
    fields, basis, alg, n, arg, dst = parts
    if fields not in MULTIPATH_FIELDS:
        raise _Bad(f"unknown fields '{fields}' (one of {', '.join(MULTIPATH_FIELDS)})")
    if alg not in MULTIPATH_ALGORITHMS:
        raise _Bad(f"unknown algorithm '{alg}' (one of {', '.join(MULTIPATH_ALGORITHMS)})")
    n_links = _num(n, 32, "n_links")
    if not 1 <= n_links <= 65536:
        raise _Bad(f"n_links {n_links} is not in 1..65536")
    name, ofs, nbits = _writable(_subfield(dst))
    if (1 << nbits) < n_links:
        raise _Bad(f"{nbits}-bit destination field has {1 << nbits} possible values, less than n_links {n_links}")
    return Multipath(fields, _num(basis, 16, "basis"), alg, n_links, _num(arg, 32, "arg"), name, ofs, nbits)


def _bundle(text: str, load: bool) -> Bundle:
    """bundle(fields,basis,algorithm,ofport,members:P,...) and bundle_load(fields,basis,
    algorithm,ofport,dst,members:P,...), as ovs-ofctl (which takes slaves: for members: too)."""
    what = "bundle_load" if load else "bundle"
    parts = [p.strip() for p in text.split(",")]
    n = 5 if load else 4
    if len(parts) < n + 1 or not re.match(r"(members|slaves):", parts[n]):
        raise _Bad(f"{what} takes fields,basis,algorithm,ofport,{'dst,' if load else ''}members:PORT[,PORT...]")
    fields, basis, alg, kind = parts[:4]
    if fields not in MULTIPATH_FIELDS:
        raise _Bad(f"unknown fields '{fields}' (one of {', '.join(MULTIPATH_FIELDS)})")
    if alg not in BUNDLE_ALGORITHMS:
        raise _Bad(f"unknown algorithm '{alg}' (one of {', '.join(BUNDLE_ALGORITHMS)})")
    if kind != "ofport":
        raise _Bad(f"unknown member type '{kind}' (only ofport)")
    first = parts[n].split(":", 1)[1]
    members = tuple(_output(_port(p)).port for p in [first, *parts[n + 1:]] if p)
    if not members:
        raise _Bad(f"{what}: no members")
    dst, ofs, nbits = None, 0, 0
    if load:
        dst, ofs, nbits = _writable(_subfield(parts[4]))
        if nbits < 16:
            raise _Bad(f"bundle_load: the destination holds {nbits} bits, a port number needs 16")
    return Bundle(fields, _num(basis, 16, "basis"), alg, members, dst, ofs, nbits)


def _fin_timeout(text: str) -> FinTimeout:
    """fin_timeout(idle_timeout=N,hard_timeout=M), either or both (seconds, 16 bits)."""
    kw = {}
    for key, value, item in _items(text):
        if key not in ("idle_timeout", "hard_timeout") or not value:
            raise _Bad(f"fin_timeout '{item}': takes idle_timeout=N and hard_timeout=N")
        kw[key] = _num(value, 16, key)
    return FinTimeout(**kw)


def _conjunction(text: str) -> Conjunction:
    """conjunction(ID,K/N), as ovs-ofctl: 2 <= N <= 64, 1 <= K <= N."""
    m = re.fullmatch(r"\s*(\w+)\s*,\s*(\w+)\s*/\s*(\w+)\s*", text)
    if not m:
        raise _Bad("conjunction takes ID,K/N (conjunction(1,2/3): clause 2 of 3 of conjunctive match 1)")
    cid, k, n = _num(m.group(1), 32, "conjunction id"), _num(m.group(2), 8, "clause"), _num(m.group(3), 8, "clauses")
    if not 2 <= n <= 64:
        raise _Bad("a conjunction has 2 to 64 clauses")
    if not 1 <= k <= n:
        raise _Bad(f"clause {k} of {n}: a clause number is 1 to N")
    return Conjunction(cid, k, n)


def _note(text: str) -> Note:
    hexes = text.replace(".", "")
    if len(hexes) % 2 or not re.fullmatch(r"[0-9a-fA-F]*", hexes):
        raise _Bad("note takes hex bytes, optionally separated by '.' (note:ab.cd)")
    return Note(bytes.fromhex(hexes))


_LEARN_NUMS = {"table": 8, "idle_timeout": 16, "hard_timeout": 16, "priority": 16, "fin_idle_timeout": 16,
               "fin_hard_timeout": 16, "cookie": 64}
_LEARN_FLAGS = {"send_flow_rem": LEARN_SEND_FLOW_REM, "delete_learned": LEARN_DELETE_LEARNED}


def _learn_src(text: str, nbits: int, dst: str | None) -> tuple[tuple[str, int] | None, int]:
    """A learn spec's source: a subfield of NBITS bits, or a value (in DST's syntax when whole)."""
    if text[:1].isalpha() and not _NUM.fullmatch(text):
        name, ofs, n = _subfield(text)
        if n != nbits:
            raise _Bad(f"{text}: {n} bits where {nbits} are needed")
        return (name, ofs), 0
    f = BY_NAME.get(dst) if dst else None
    v = _value(f, text)[0] if f is not None and f.bits == nbits and f.kind not in ("port",) else _num(text, 128)
    if v >> nbits:
        raise _Bad(f"value {text} does not fit {nbits} bits")
    return None, v


def _learn(text: str) -> Learn:
    """learn(key=value..., specs): ovs-actions(7)'s syntax (the fin timeouts not yet)."""
    kw: dict = {}
    flags = 0
    specs: list[LearnSpec] = []
    for key, value, item in _items(text):
        try:
            if key in ("fin_idle_timeout", "fin_hard_timeout"):
                raise _Bad(f"learn's {key} is not supported yet")
            if key == "limit":
                kw["limit"] = _num(value, 32, key)
            elif key == "result_dst":
                name, ofs, n = _writable(_subfield(value))
                if n != 1:
                    raise _Bad("result_dst in 'learn' action must be a single bit")
                kw["result_dst"] = (name, ofs)
                flags |= LEARN_WRITE_RESULT
            elif key in _LEARN_NUMS:
                kw[key] = _num(value, _LEARN_NUMS[key], key)
            elif key in _LEARN_FLAGS and not value:
                flags |= _LEARN_FLAGS[key]
            elif key == "load":
                src, arrow, dst = value.partition("->")
                if not arrow:
                    raise _Bad("load needs SRC->DST[BITS]")
                name, ofs, n = _writable(_subfield(dst))
                s_, v = _learn_src(src.strip(), n, None)
                specs.append(LearnSpec("load", n, s_, v, (name, ofs)))
            elif key == "output":
                name, ofs, n = _subfield(value)
                specs.append(LearnSpec("output", n, (name, ofs)))
            else:
                name, ofs, n = _subfield(key)
                if value:
                    s_, v = _learn_src(value, n, name)
                else:
                    s_, v = (name, ofs), 0
                specs.append(LearnSpec("match", n, s_, v, (name, ofs)))
        except _Bad as e:
            raise _Bad(f"learn '{item}': {e}") from None
    return Learn(table=kw.pop("table", 0), specs=tuple(specs), flags=flags, **kw)


def _set_field_action(text: str, match: Match) -> SetField:
    value, arrow, name = text.rpartition("->")
    if not arrow:
        raise _Bad("set_field needs VALUE->FIELD")
    return _set_field(name, value, match)


def _set_tos(text: str) -> SetField:
    tos = _num(text, 8, "TOS")
    if tos & 3:
        raise _Bad(f"{text} is not a valid TOS (the low 2 bits, ECN, must be 0)")
    return SetField("ip_dscp", tos >> 2)


def _controller(text: str, match: Match):
    """controller, controller:MAX_LEN, controller(key=value,...) with ovs-actions(7)'s keys
    max_len, reason, id, userdata (hex bytes, '.' between them allowed); the plain form is an
    output to CONTROLLER, as ovs-ofctl encodes it.  pause and meter_id are refused (README)."""
    if not text:
        return Output(OFPP_CONTROLLER)
    if "=" not in text and _NUM.fullmatch(text.strip()):
        return Output(OFPP_CONTROLLER, _num(text, 16, "max_len"))
    kw: dict = {}
    for key, value, item in _items(text):
        if key == "max_len":
            kw["max_len"] = _num(value, 16, "max_len")
        elif key == "id":
            kw["id"] = _num(value, 16, "controller id")
        elif key == "reason":
            if value not in PACKET_IN_REASONS:
                raise _Bad(f"controller reason '{value}': one of {', '.join(PACKET_IN_REASONS)}")
            kw["reason"] = value
        elif key == "userdata":
            hexes = value.replace(".", "")
            if len(hexes) % 2 or not re.fullmatch(r"[0-9a-fA-F]*", hexes):
                raise _Bad("controller userdata takes hex bytes, optionally separated by '.' (userdata=01.02)")
            kw["userdata"] = bytes.fromhex(hexes)
        elif key in ("pause", "meter_id"):
            raise _Bad(f"controller option '{key}' is not supported (pause needs NXT_RESUME's continuations, "
                       "meter_id a per-action controller meter; see the README)")
        else:
            raise _Bad(f"unknown controller option '{key}' (max_len, reason, id, userdata)")
    c = Controller(**kw)
    if c.reason == "action" and not c.id and not c.userdata:
        return Output(OFPP_CONTROLLER, c.max_len)
    return c


def _dec_ttl(text: str, match: Match) -> DecNwTtl:
    """dec_ttl, or dec_ttl(ID,...): the controller ids an expired TTL's packet-in goes to."""
    if not text:
        return DecNwTtl()
    ids = tuple(_num(x.strip(), 16, "controller id") for x in text.split(","))
    return DecNwTtl(ids)


def _output(port: int) -> Output:
    if port == OFPP_ANY:
        raise _Bad("cannot output to port ANY")
    if port > 0xFFFF and not output_port_ok(port):     # 0xff00-0xffff: see "Stricter" above
        raise _Bad(f"cannot output to port {port:#x} (ports go up to 0xfeff; above, only the reserved ones)")
    return Output(port)


def _push_vlan(text: str, match: Match) -> PushVlan:
    ethertype = _num(text, 16, "ethertype")
    if ethertype not in (ETH_TYPE_VLAN, ETH_TYPE_QINQ):
        raise _Bad(f"push_vlan ethertype must be {ETH_TYPE_VLAN:#x} or {ETH_TYPE_QINQ:#x}")
    return PushVlan(ethertype)


def _check_pkt_larger(text: str) -> CheckPktLarger:
    """check_pkt_larger(LEN)->DST[BIT] (``_items`` gives "LEN)->DST[BIT]")."""
    n, sep, dst = text.partition(")->")
    if not sep:
        raise _Bad("check_pkt_larger takes (LENGTH)->FIELD[BIT]")
    name, ofs, nbits = _writable(_subfield(dst))
    if nbits != 1:
        raise _Bad(f"check_pkt_larger writes one bit, not {nbits} ({dst})")
    return CheckPktLarger(_num(n.strip(), 16, "packet length"), name, ofs)


def _enqueue(text: str) -> tuple:
    """enqueue:PORT:QUEUE or enqueue(PORT,QUEUE): as Open vSwitch sends it over OpenFlow 1.1+,
    set_queue, output, pop_queue (OpenFlow 1.0's ENQUEUE carries the first two)."""
    port, sep, queue = text.replace(",", ":").partition(":")
    if not sep:
        raise _Bad("enqueue takes PORT:QUEUE")
    return SetQueue(_num(queue.strip(), 32, "queue")), _output(_port(port.strip())), PopQueue()


def _push_mpls(text: str, match: Match) -> PushMpls:
    ethertype = _num(text, 16, "ethertype")
    if ethertype not in (0x8847, 0x8848):
        raise _Bad("push_mpls ethertype must be 0x8847 or 0x8848")
    return PushMpls(ethertype)


def _unsupported(why: str):
    def parse(text, match):
        raise _Bad(why)
    return parse


def _noarg(cls):
    def parse(text, match):
        if text:
            raise _Bad(f"takes no argument (arguments of {cls.__name__} are not supported)")
        return cls()
    return parse


_ACTIONS = {
    "output": lambda t, m: _output(_port(t)),
    "controller": _controller,
    "group": lambda t, m: Group(_num(t, 32, "group")),
    "mod_vlan_vid": lambda t, m: SetField("vlan_vid", _num(t, 12, "VLAN id") | VLAN_CFI),
    "mod_vlan_pcp": lambda t, m: SetField("vlan_pcp", _num(t, 3, "VLAN priority")),
    "strip_vlan": _noarg(PopVlan), "pop_vlan": _noarg(PopVlan),
    "push_vlan": _push_vlan,
    "push_mpls": _push_mpls,
    "pop_mpls": lambda t, m: PopMpls(_num(t, 16, "ethertype")),
    "set_mpls_label": lambda t, m: SetField("mpls_label", _num(t.strip("()"), 20, "MPLS label")),
    "set_mpls_tc": lambda t, m: SetField("mpls_tc", _num(t.strip("()"), 3, "MPLS TC")),
    "set_mpls_ttl": lambda t, m: SetMplsTtl(_num(t.strip("()"), 8, "MPLS TTL")),
    "dec_mpls_ttl": _noarg(DecMplsTtl),
    "check_pkt_larger": lambda t, m: _check_pkt_larger(t),
    "pop_queue": _noarg(PopQueue),
    "mod_dl_src": lambda t, m: _set_field("eth_src", t, m), "mod_dl_dst": lambda t, m: _set_field("eth_dst", t, m),
    "mod_nw_src": lambda t, m: _set_field("ipv4_src", t, m), "mod_nw_dst": lambda t, m: _set_field("ipv4_dst", t, m),
    "mod_nw_tos": lambda t, m: _set_tos(t),
    "mod_nw_ecn": lambda t, m: _set_field("ip_ecn", t, m),
    "mod_nw_ttl": lambda t, m: SetNwTtl(_num(t, 8, "TTL")),
    "mod_tp_src": lambda t, m: _set_field("tp_src", t, m), "mod_tp_dst": lambda t, m: _set_field("tp_dst", t, m),
    "dec_ttl": _dec_ttl,
    "set_field": _set_field_action,
    "set_queue": lambda t, m: SetQueue(_num(t, 32, "queue")),
    "copy_ttl_out": _unsupported("copy_ttl_out is not supported (it is for MPLS; Open vSwitch refuses it too)"),
    "copy_ttl_in": _unsupported("copy_ttl_in is not supported (it is for MPLS; Open vSwitch refuses it too)"),
    "resubmit": lambda t, m: _resubmit(t),
    "load": lambda t, m: _load(t),
    "move": lambda t, m: _move(t),
    "push": lambda t, m: StackPush(*_subfield(t)),
    "pop": lambda t, m: StackPop(*_writable(_subfield(t))),
    "note": lambda t, m: _note(t),
    "exit": _noarg(Exit),
    "conjunction": lambda t, m: _conjunction(t),
    "fin_timeout": lambda t, m: _fin_timeout(t),
    "clone": lambda t, m: Clone(_action_list(t, m)),
    "multipath": lambda t, m: _multipath(t),
    "bundle": lambda t, m: _bundle(t, False),
    "bundle_load": lambda t, m: _bundle(t, True),
    "learn": lambda t, m: _learn(t),
    "sample": lambda t, m: _sample(t),
    "enqueue": lambda t, m: _enqueue(t),
}
_INSTRUCTION_NAMES = {Meter: "meter", ApplyActions: "apply_actions", ClearActions: "clear_actions",
                      WriteActions: "write_actions", WriteMetadata: "write_metadata", GotoTable: "goto_table"}


def _action(key: str, text: str, match: Match):
    k = key.lower()
    if k in _ACTIONS:
        return _ACTIONS[k](text, match)
    if k in RESERVED_PORTS or _NUM.fullmatch(k):
        if text:
            raise _Bad(f"'{key}' takes no argument")
        return _output(_port(k))
    raise _Bad(str(_unknown("action", key, [*_ACTIONS, *RESERVED_PORTS, "drop", *_INSTRUCTION_NAMES.values()])))


def _action_list(text: str, match: Match, in_set: bool = False) -> tuple:
    out = []
    for key, value, item in _items(text):
        if key.lower() == "drop" and not value:
            continue
        try:
            a = _action(key, value, match)
            if isinstance(a, tuple):         # enqueue: set_queue, output, pop_queue (an action set's: the two)
                out.extend(x for x in a if not (in_set and isinstance(x, PopQueue)))
            else:
                out.append(a)
        except _Bad as e:
            raise FlowParseError(f"'{item}': {e}") from None
    return tuple(out)


def _action_set(text: str, match: Match) -> tuple:
    acts = _action_list(text, match, in_set=True)
    for a in acts:
        if isinstance(a, NOT_IN_ACTION_SET):
            raise FlowParseError(f"write_actions({text}): {_fmt_action(a)} may not be in an action set")
    return acts


def _metadata(text: str) -> WriteMetadata:
    v, slash, m = text.partition("/")
    mask = _num(m, 64, "mask") if slash else U64
    return WriteMetadata(_num(v, 64, "metadata") & mask, mask)


_INSTRUCTIONS = {
    "meter": lambda t, m: Meter(_num(t, 32, "meter")),
    "apply_actions": lambda t, m: ApplyActions(_action_list(t, m)),
    "clear_actions": _noarg(ClearActions),
    "write_actions": lambda t, m: WriteActions(_action_set(t, m)),
    "write_metadata": lambda t, m: _metadata(t),
    "goto_table": lambda t, m: GotoTable(_num(t, 8, "table")),
}


def parse_actions(text: str, match: Match = Match()) -> tuple:
    """The instructions of an ``actions=`` value (MATCH: what mod_tp_dst/mod_tp_src name their
    field by).  Whether they fit the match is parse_flow's check (a group bucket has none)."""
    return _parse_actions(text, match)[0]


def _push_tag_positions(text: str) -> list[int]:
    """Where mod_vlan_vid/mod_vlan_pcp are in an action list's text (as _action_list counts)."""
    items = [k.lower() for k, v, _ in _items(text) if not (k.lower() == "drop" and not v)]
    return [i for i, k in enumerate(items) if k in _PUSH_TAG]


def _parse_actions(text: str, match: Match) -> tuple[tuple, list[tuple[type, int]]]:
    """parse_actions, and the positions (ApplyActions or WriteActions, index) of the actions
    that push a tag when there is none (consistency.check's PUSH_TAG)."""
    got: dict[type, object] = {}
    apply: list = []
    push_tag: list[tuple[type, int]] = []
    items = list(_items(text))
    if any(k.lower() == "drop" and not v for k, v, _ in items) and len(items) > 1:
        raise FlowParseError('"drop" must not be accompanied by any other action or instruction')
    last = 0
    for key, value, item in items:
        if key.lower() == "drop" and not value:
            continue
        try:
            if key.lower() in _INSTRUCTIONS:
                inst = _INSTRUCTIONS[key.lower()](value, match)
            else:
                a = _action(key, value, match)
                inst = ApplyActions(a if isinstance(a, tuple) else (a,))     # enqueue: three actions
        except _Bad as e:
            raise FlowParseError(f"'{item}': {e}") from None
        kind = type(inst)
        if key.lower() in _PUSH_TAG:
            push_tag.append((ApplyActions, len(apply)))
        elif kind is WriteActions:
            push_tag += [(WriteActions, i) for i in _push_tag_positions(value)]
        elif kind is ApplyActions:
            push_tag += [(ApplyActions, len(apply) + i) for i in _push_tag_positions(value)]
        rank = INSTRUCTION_ORDER.index(kind)
        if rank < last:
            later = _INSTRUCTION_NAMES[INSTRUCTION_ORDER[last]]
            raise FlowParseError(f"'{item}': {_INSTRUCTION_NAMES[kind]} must come before {later} "
                                 f"(instructions go in the order {', '.join(_INSTRUCTION_NAMES.values())})")
        last = rank
        if kind is ApplyActions:
            apply.extend(inst.actions)
        elif kind in got:
            raise FlowParseError(f"'{item}': {_INSTRUCTION_NAMES[kind]} given twice")
        else:
            got[kind] = inst
    if apply:
        got[ApplyActions] = ApplyActions(tuple(apply))
    return (tuple(got[k] for k in INSTRUCTION_ORDER if k in got and not (k is WriteActions and not got[k].actions)),
            push_tag)


# ---- flows -------------------------------------------------------------------------------------

_ACTIONS_RE = re.compile(r"\bactions?\s*=")


def parse_flow(text: str, require_actions: bool = True, of10: bool = False) -> FlowSpec:
    """A flow as ``ovs-ofctl -O OpenFlow13 add-flow`` takes it (with REQUIRE_ACTIONS false: also
    without ``actions=``, as del-flows takes it).  Also reads dump-flows output back (its
    duration, n_packets, n_bytes, idle_age, hard_age are ignored).  OF10: its actions as
    OpenFlow 1.0's (``-O OpenFlow10``): pop_vlan, dec_ttl, the mod_* need nothing in the match
    (a packet without that header is left alone)."""
    found = _ACTIONS_RE.search(text)
    if found is None and require_actions:
        raise FlowParseError("must specify actions (actions=...; actions=drop to drop)")
    flow_text, act_text = (text[:found.start()], text[found.end():]) if found else (text, None)
    spec: dict = {}
    pairs = []
    for key, value, item in _items(flow_text):
        try:
            if key in FLOW_FLAGS:
                if value:
                    raise _Bad("a flag takes no value")
                spec["flags"] = spec.get("flags", 0) | FLOW_FLAGS[key]
            elif key in _IGNORED:
                pass
            elif key in _HEADER:
                if not value:
                    raise _Bad(f"{key} needs a value")
                _header(spec, key, value)
            else:
                pairs.append((key, value, item))
        except _Bad as e:
            raise FlowParseError(f"'{item}': {e}") from None
    match = _build_match(pairs)
    instructions = ()
    if act_text is not None:
        instructions, push_tag = _parse_actions(act_text, match)
        try:
            check(match, instructions, spec.get("table_id") or 0, of10=of10, push_tag=push_tag)
        except ActionError as e:
            if e.alternatives:                  # a set-field's prerequisites, as people write them
                need = " or ".join(format_match(a) for a in e.alternatives)
                raise FlowParseError(f"setting {e.field} requires {need} in the match"
                                     + (" (not ip_frag=later)" if e.field in NOT_IN_LATER_FRAGMENTS else "")) from None
            raise FlowParseError(str(e)) from None
    return FlowSpec(match=match, instructions=instructions, **spec)


def _header(spec: dict, key: str, value: str) -> None:
    if key == "table":
        spec["table_id"] = _num(value, 8, "table")
        if spec["table_id"] == 0xFF:
            raise _Bad("table must be 0..254")
    elif key == "cookie":
        v, slash, m = value.partition("/")
        spec["cookie_mask"] = _num(m, 64, "cookie mask") if slash else 0
        spec["cookie"] = _num(v, 64, "cookie") & (spec["cookie_mask"] if slash else U64)
    elif key == "out_port":
        spec["out_port"] = _port(value)
    elif key == "out_group":
        spec["out_group"] = {"any": OFPG_ANY, "all": OFPG_ALL}.get(value.lower()) or _num(value, 32, "group")
    else:                                   # priority, idle_timeout, hard_timeout, importance
        spec[key] = _num(value, 16, key)


# ---- printing ----------------------------------------------------------------------------------

# The order ovs-ofctl's match_format prints fields in, and the names it prints them under.
_PRINT_ORDER = ["pkt_mark", *(f"reg{i}" for i in range(16)), "metadata", "in_port", "vlan", "eth_src", "eth_dst", "eth_type", "ipv6_src", "ipv6_dst",
                "ipv6_label", "arp_spa", "arp_tpa", "ipv4_src", "ipv4_dst", "ip_proto", "arp_op", "arp_sha", "arp_tha",
                "ip_dscp", "ip_ecn", "nw_ttl", "ip_frag", "icmp_type", "icmp_code", "icmpv6_type", "icmpv6_code",
                "nd_target", "nd_sll", "nd_tll", "tcp_src", "udp_src", "sctp_src", "tcp_dst", "udp_dst", "sctp_dst",
                "tcp_flags"]
_PRINT_NAME = {"eth_src": "dl_src", "eth_dst": "dl_dst", "eth_type": "dl_type", "ipv4_src": "nw_src",
               "ipv4_dst": "nw_dst", "ip_proto": "nw_proto", "ip_ecn": "nw_ecn", "ip_frag": "nw_frag"}
_TP = {f"{l4}_{d}": (l4, f"tp_{d}") for l4 in _L4.values() for d in ("src", "dst")}
_SET_FIELD_NAME = {"ipv4_src": "ip_src", "ipv4_dst": "ip_dst", "ip_ecn": "nw_ecn"}


def _fmt_field(m: Match, name: str, word: str | None) -> str | None:
    """NAME=VALUE as ovs-ofctl prints it, or None where protocol WORD already says it."""
    f = BY_NAME[name]
    v, mask = m[name]
    eth, proto = m.value("eth_type"), m.value("ip_proto")
    if name == "eth_type":
        return None if word else f"dl_type=0x{v:04x}"
    if name == "ip_proto" and word and PROTOCOLS[word][1] is not None:
        return None
    if name == "ip_dscp":
        return f"nw_tos={v << 2}"
    if f.member is None and name != "metadata":          # pkt_mark, registers: as C's %#x
        return f"{name}={_hexz(v)}" + ("" if mask is None else f"/{_hexz(mask)}")
    if name == "ipv6_label":
        return f"ipv6_label=0x{v:05x}" + ("" if mask is None else f"/0x{mask:05x}")
    if name == "ip_frag" and (v, mask or 3) in _FRAG_NAME:
        return f"nw_frag={_FRAG_NAME[v, mask or 3]}"
    if name == "tcp_flags":
        return f"tcp_flags={_fmt_tcp_flags(v, f.all_ones if mask is None else mask)}"
    shown = _PRINT_NAME.get(name, name)
    if name in _TP and _L4.get(proto) == _TP[name][0] and eth in (ETH_TYPE_IP, ETH_TYPE_IPV6):
        shown = _TP[name][1]                 # tcp_src -> tp_src where the match says tcp
    elif name.startswith("icmpv6_") and eth == ETH_TYPE_IPV6:
        shown = "icmp_" + name[7:]
    return f"{shown}={_FORMAT[f.kind](v, mask)}"


def _fmt_vlan(m: Match) -> str | None:
    vid, pcp = m.get("vlan_vid"), m.get("vlan_pcp")
    if vid is None and pcp is None:
        return None
    v = (vid[0] if vid else 0) | (pcp[0] << 13 if pcp else 0)
    mask = (0x1FFF if vid and vid[1] is None else vid[1] if vid else 0) | ((7 if pcp[1] is None else pcp[1]) << 13
                                                                            if pcp else 0)
    vid_mask, pcp_mask = mask & 0x0FFF, mask & 0xE000
    if mask & v & VLAN_CFI and vid_mask in (0, 0xFFF) and pcp_mask in (0, 0xE000) and vid_mask | pcp_mask:
        return ",".join([f"dl_vlan={v & 0xFFF}"] * bool(vid_mask) + [f"dl_vlan_pcp={v >> 13}"] * bool(pcp_mask))
    return f"vlan_tci=0x{v:04x}" + ("" if mask == 0xFFFF else f"/0x{mask:04x}")


def format_match(match: Match) -> str:
    """The match as ovs-ofctl prints it: protocol word first, then its fields in its order."""
    out = []
    if "conj_id" in match:                    # before the protocol word, in decimal (as match_format)
        out.append(f"conj_id={match.value('conj_id')}")
    eth, proto = match.value("eth_type"), match.value("ip_proto")
    word = _PROTOCOL_NAME.get((eth, proto)) or _PROTOCOL_NAME.get((eth, None))
    if word:
        out.append(word)
    names = [n for n in _PRINT_ORDER if n == "vlan" or n in match]
    names += [n for n in match if n not in _PRINT_ORDER and n not in ("vlan_vid", "vlan_pcp", "conj_id")]
    for name in names:
        s = _fmt_vlan(match) if name == "vlan" else _fmt_field(match, name, word)
        if s:
            out.append(s)
    return ",".join(out)


def _hexz(v: int) -> str:
    """V as C's printf("%#x") prints it, as ovs-ofctl does: 0x5, but 0."""
    return f"{v:#x}" if v else "0"


def _wire_name(name: str) -> str:
    """The NXM or OXM name of a field, as load/move print it (NXM_NX_REG0, OXM_OF_PKT_REG1 ...)."""
    f = BY_NAME[name]
    if f.name.startswith(("NXM_", "OXM_")):
        return f.name
    return next((a for a in f.aliases if a.startswith(("NXM_", "OXM_"))), "OXM_OF_" + f.name.upper())


def _fmt_subfield(name: str, ofs: int, nbits: int) -> str:
    f = BY_NAME[name]
    bits = "" if ofs == 0 and nbits == f.bits else str(ofs) if nbits == 1 else f"{ofs}..{ofs + nbits - 1}"
    return f"{_wire_name(name)}[{bits}]"


def _fmt_learn(a: Learn) -> str:
    """As Open vSwitch's learn_format."""
    out = [f"table={a.table}"]
    for key in ("idle_timeout", "hard_timeout", "fin_idle_timeout", "fin_hard_timeout"):
        if getattr(a, key):
            out.append(f"{key}={getattr(a, key)}")
    if a.priority != OFP_DEFAULT_PRIORITY:
        out.append(f"priority={a.priority}")
    out += [k for k, bit in _LEARN_FLAGS.items() if a.flags & bit]
    if a.cookie:
        out.append(f"cookie={a.cookie:#x}")
    if a.limit:
        out.append(f"limit={a.limit}")
    if a.result_dst:
        out.append(f"result_dst={_fmt_subfield(a.result_dst[0], a.result_dst[1], 1)}")
    for sp in a.specs:
        src = _fmt_subfield(sp.src[0], sp.src[1], sp.nbits) if sp.src else _hexz(sp.value)
        f = BY_NAME[sp.dst[0]] if sp.dst else None
        if sp.kind == "match" and not sp.src and f.member and f.name not in VIEWS and sp.nbits == f.bits:
            out.append(f"{_SET_FIELD_NAME.get(f.name, f.name)}={_FORMAT[f.kind](sp.value, None)}")
        elif sp.kind == "match":
            dst = _fmt_subfield(sp.dst[0], sp.dst[1], sp.nbits)
            out.append(dst if sp.src == sp.dst else f"{dst}={src}")
        elif sp.kind == "load":
            out.append(f"load:{src}->{_fmt_subfield(sp.dst[0], sp.dst[1], sp.nbits)}")
        else:
            out.append(f"output:{src}")
    return f"learn({','.join(out)})"


def _fmt_resubmit(a: Resubmit) -> str:
    if a.table == 0xFF and a.port != OFPP_IN_PORT:
        return f"resubmit:{_fmt_port(a.port)}"
    port = "" if a.port == OFPP_IN_PORT else _fmt_port(a.port)
    return f"resubmit({port},{'' if a.table == 0xFF else a.table})"


def _fmt_action(a) -> str:
    match a:
        case Resubmit():
            return _fmt_resubmit(a)
        case Load(field=name, ofs=o, nbits=n, value=v):
            return f"load:{_hexz(v)}->{_fmt_subfield(name, o, n)}"
        case Move(src=s, src_ofs=so, dst=d, dst_ofs=do, nbits=n):
            return f"move:{_fmt_subfield(s, so, n)}->{_fmt_subfield(d, do, n)}"
        case StackPush(field=name, ofs=o, nbits=n):
            return f"push:{_fmt_subfield(name, o, n)}"
        case StackPop(field=name, ofs=o, nbits=n):
            return f"pop:{_fmt_subfield(name, o, n)}"
        case Note(data=d):
            return "note:" + ".".join(f"{b:02x}" for b in d)
        case Exit():
            return "exit"
        case Sample():
            return (f"sample(probability={a.probability},collector_set_id={a.collector_set_id},"
                    f"obs_domain_id={a.obs_domain_id},obs_point_id={a.obs_point_id})")
        case Multipath():
            return (f"multipath({a.fields},{a.basis},{a.algorithm},{a.n_links},{a.arg},"
                    f"{_fmt_subfield(a.dst, a.ofs, a.nbits)})")
        case Bundle():
            dst = f"{_fmt_subfield(a.dst, a.ofs, a.nbits)}," if a.dst else ""
            return (f"bundle{'_load' if a.dst else ''}({a.fields},{a.basis},{a.algorithm},ofport,{dst}members:"
                    + ",".join(_fmt_port(p) for p in a.members) + ")")
        case Clone(actions=inner):
            return f"clone({format_actions([ApplyActions(inner)]) if inner else ''})"
        case FinTimeout(idle_timeout=idle, hard_timeout=hard):
            args = [f"{k}={v}" for k, v in (("idle_timeout", idle), ("hard_timeout", hard)) if v]
            return f"fin_timeout({','.join(args)})"
        case Conjunction(id=i, clause=k, n_clauses=n):
            return f"conjunction({i},{k}/{n})"
        case Learn():
            return _fmt_learn(a)
        case SetField(field=name, value=v, mask=m) if m is not None:
            f = BY_NAME[name]
            return (f"set_field:{_FORMAT[f.kind](v, None)}/{_FORMAT[f.kind](m, None)}"
                    f"->{_SET_FIELD_NAME.get(f.name, f.name)}")
        case Output(port=p, max_len=n) if p == OFPP_CONTROLLER:
            return f"CONTROLLER:{n}"
        case Controller():
            args = ([f"reason={a.reason}"] if a.reason != "action" else []) + \
                   ([f"max_len={a.max_len}"] if a.max_len != OFPCML_NO_BUFFER else []) + \
                   ([f"id={a.id}"] if a.id else []) + \
                   (["userdata=" + ".".join(f"{b:02x}" for b in a.userdata)] if a.userdata else [])
            return f"controller({','.join(args)})"
        case DecNwTtl(ids=ids) if ids is not None:
            return f"dec_ttl({','.join(map(str, ids))})"
        case Output(port=p):
            return _PORT_NAMES[p] if p in _PORT_NAMES else f"output:{p}"
        case Group(group_id=g):
            return f"group:{g}"
        case SetField(field=name, value=v):
            f = BY_NAME[name]
            return f"set_field:{_FORMAT[f.kind](v, None)}->{_SET_FIELD_NAME.get(f.name, f.name)}"
        case PushVlan(ethertype=t):
            return f"push_vlan:0x{t:04x}"
        case PushMpls(ethertype=t):
            return f"push_mpls:0x{t:04x}"
        case PopMpls(ethertype=t):
            return f"pop_mpls:0x{t:04x}"
        case SetMplsTtl(ttl=t):
            return f"set_mpls_ttl({t})"
        case CheckPktLarger(pkt_len=n, dst=d, ofs=o):
            return f"check_pkt_larger({n})->{_fmt_subfield(d, o, 1)}"
        case SetQueue(queue_id=q):
            return f"set_queue:{q}"
        case SetNwTtl(ttl=t):
            return f"mod_nw_ttl:{t}"
    return {PopVlan: "pop_vlan", DecNwTtl: "dec_ttl", DecMplsTtl: "dec_mpls_ttl", PopQueue: "pop_queue", CopyTtlOut: "copy_ttl_out", CopyTtlIn: "copy_ttl_in"}[type(a)]


def _fmt_vlan_push(a) -> str:
    """A vlan_vid/vlan_pcp set-field where the packet has no tag: it pushes one (mod_vlan_*)."""
    return f"mod_vlan_vid:{a.value & 0xFFF}" if a.field == "vlan_vid" else f"mod_vlan_pcp:{a.value}"


def _fmt_instruction(i, push_tag=frozenset()) -> str:
    def acts_text(kind, acts):
        return ",".join(_fmt_vlan_push(a) if (kind, n) in push_tag else _fmt_action(a) for n, a in enumerate(acts))
    match i:
        case ApplyActions(actions=acts):
            return acts_text(ApplyActions, acts)
        case WriteActions(actions=acts):
            return f"write_actions({acts_text(WriteActions, acts) or 'drop'})"
        case WriteMetadata(value=v, mask=m):
            return f"write_metadata:{v:#x}" + ("" if m == U64 else f"/{m:#x}")
        case GotoTable(table_id=t):
            return f"goto_table:{t}"
        case Meter(meter_id=n):
            return f"meter:{n}"
    return "clear_actions"


def format_actions(instructions, match: Match | None = None) -> str:
    """The ``actions=`` value as ovs-ofctl prints it (OpenFlow 1.3 spellings); "drop" if none.
    With the flow's MATCH, a vlan_vid/vlan_pcp set-field where the packet has no tag is printed
    as the mod_vlan_vid/mod_vlan_pcp that pushes one (set_field would need the tag)."""
    ordered = sorted(instructions, key=lambda i: INSTRUCTION_ORDER.index(type(i)))
    push_tag = untagged_vlan_sets(match, ordered) if match is not None else frozenset()
    return ",".join(s for s in (_fmt_instruction(i, push_tag) for i in ordered) if s) or "drop"


def _fmt_duration(seconds: float) -> str:
    """As ovs-ofctl: whole seconds bare, milliseconds with 3 decimals, else up to 9."""
    sec, ns = divmod(round(seconds * 1e9), 10**9)
    frac = "" if not ns else f".{ns // 10**6:03d}" if not ns % 10**6 else f".{ns:09d}".rstrip("0")
    return f"{sec}{frac}s"


def format_flow(spec: FlowSpec, stats: FlowStats | None = None) -> str:
    """One line of ``ovs-ofctl dump-flows`` (without its leading blank); without STATS as
    ``--no-stats`` prints it, except that a given table_id (even 0) is printed."""
    s = ""
    if stats or spec.cookie or spec.cookie_mask:
        s += f"cookie={spec.cookie:#x}" + (f"/{spec.cookie_mask:#x}" if spec.cookie_mask else "") + ", "
    if stats:
        s += f"duration={_fmt_duration(stats.duration)}, "
    if stats or spec.table_id is not None:
        s += f"table={spec.table_id or 0}, "
    if stats:
        s += f"n_packets={stats.n_packets}, n_bytes={stats.n_bytes}, "
    for key in ("idle_timeout", "hard_timeout"):
        if getattr(spec, key):
            s += f"{key}={getattr(spec, key)}, "
    s += "".join(f"{name} " for name, bit in FLOW_FLAGS.items() if spec.flags & bit)
    if spec.importance:
        s += f"importance={spec.importance}, "
    if stats and stats.idle_age is not None:
        s += f"idle_age={stats.idle_age}, "
    if stats and stats.hard_age is not None:
        s += f"hard_age={stats.hard_age}, "
    if spec.out_port is not None:
        s += f"out_port={_fmt_port(spec.out_port)}, "
    if spec.out_group is not None:
        s += f"out_group={spec.out_group}, "
    priority = f"priority={spec.priority}" if spec.priority != OFP_DEFAULT_PRIORITY else ""
    match = ",".join(filter(None, [priority, format_match(spec.match)]))
    return s + (match + " " if match else "") + "actions=" + format_actions(spec.instructions, spec.match)
