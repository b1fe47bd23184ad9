"""Whether a flow's instructions fit its match: the verdict Open vSwitch's ofpacts_check gives
when a flow-mod arrives (and ovs-ofctl gives before sending one), so that a flow Open vSwitch
refuses is refused here too, for the same reason.

The match is read as Open vSwitch reads it there: a field's value in the match, 0 where the
match leaves it out (so ``icmp6,icmp_type=135`` says code 0, as ``nd_target`` needs).  The
actions are walked in order, apply-actions first, then write-actions, keeping the number of
VLAN tags the packet has at that point (a match with the 0x1000 bit: one; push_vlan adds one,
pop_vlan takes one away):

  - a set-field whose prerequisites do not hold (``set_field:...->vlan_vid`` without a tag,
    ``tcp_dst`` without tcp, L4 ports in a later fragment, ``icmp_type`` under icmp6):
    ``match_inconsistent``;
  - pop_vlan without a tag, dec_ttl or mod_nw_ttl without ip/ipv6: ``match_inconsistent``
    in apply-actions; allowed in write-actions and in OpenFlow 1.0 (where Open vSwitch takes
    them as its own extensions: a packet without the header is left alone);
  - pop_mpls, set_mpls_ttl, dec_mpls_ttl where the packet is not MPLS (the match's eth_type,
    as push_mpls and pop_mpls change it on the way): ``match_inconsistent`` as the line above;
    after push_mpls the packet's L3 is opaque (a set-field of an IP field is inconsistent);
  - a third VLAN tag (push_vlan onto two): ``bad_tag`` (the flow key holds two);
  - goto_table to this table or an earlier one: ``bad_table``;
  - load, move, push, pop of a packet field the match does not admit (``tcp_dst`` without
    tcp): ``match_inconsistent``, in any version, as Open vSwitch's mf_check_src/dst.

``output_port_ok`` says which ports an output may name (``bad_out_port``), apart: the text
parser keeps its own reading of 16-bit numbers (flowstr.py).

OpenFlow 1.0's actions (``of10``) are its own set_vlan_vid/set_nw_tos/set_tp_dst...: Open vSwitch
accepts them on any match and leaves a packet without that header alone; so does translation.
mod_vlan_vid/mod_vlan_pcp in ovs-ofctl text (``push_tag``: their positions) push a tag when
there is none, so they need none.

``set_field_value_error`` is the value check of a set-field (``bad_set_argument``), apart
because Open vSwitch makes it while decoding, before this walk (openflow/acts.check_flow_mod
keeps that order; the text parser makes it per action).

Pure functions; any thread; linear in the actions.
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from .actions import (OFPP_ALL, OFPP_CONTROLLER, OFPP_FLOOD, OFPP_IN_PORT, OFPP_LOCAL, OFPP_NORMAL, OFPP_TABLE,
                      ApplyActions, DecMplsTtl, DecNwTtl, GotoTable, Load, Move, PopMpls, PopVlan, PushMpls,
                      PushVlan, SetField, SetMplsTtl, SetNwTtl,
                      StackPop, StackPush, WriteActions)
from .fields import BY_NAME, FRAG_LATER, NOT_IN_LATER_FRAGMENTS, VLAN_CFI, Field, prereqs_of
from .match import Match

MAX_VLANS = 2                     # tags in the flow key (Open vSwitch's with vlan-limit 2)
PORT_LIMIT = 0xFF00               # output ports below this, as Open vSwitch's OFPP_MAX (16-bit ports)
VALID_RESERVED_OUT = frozenset({OFPP_IN_PORT, OFPP_TABLE, OFPP_NORMAL, OFPP_FLOOD, OFPP_ALL, OFPP_CONTROLLER,
                                OFPP_LOCAL})


class ActionError(ValueError):
    """``kind``: match_inconsistent, bad_tag or bad_table (OpenFlow's OFPBAC_MATCH_INCONSISTENT,
    OFPBAC_BAD_TAG, OFPBIC_BAD_TABLE_ID).  A
    set-field whose prerequisites fail names its ``field`` and the ``alternatives`` (matches)
    one of which would do."""

    def __init__(self, kind: str, message: str, field: str | None = None, alternatives: tuple[Match, ...] = ()):
        super().__init__(message)
        self.kind, self.field, self.alternatives = kind, field, alternatives


def output_port_ok(port: int) -> bool:
    """Whether an output action may name PORT (Open vSwitch: a 16-bit port below 0xff00, or a
    reserved port one can output to; not ANY)."""
    return port < PORT_LIMIT or port in VALID_RESERVED_OUT


def set_field_value_error(name: str, value: int) -> str | None:
    """Why set-field may not write VALUE to field NAME (Open vSwitch's OFPBAC_BAD_SET_ARGUMENT),
    or None."""
    f = BY_NAME[name]
    if f.name == "vlan_vid" and not value & VLAN_CFI:
        return f"vlan_vid value must include the 0x1000 (present) bit ({value | VLAN_CFI:#x})"
    if f.name == "arp_op" and value > 0xFF:
        return f"arp_op {value}: Open vSwitch writes 0..255 only"
    return None


@dataclass
class _Flow:
    values: dict[str, int]        # the match's values, by canonical field name
    vlans: int                    # tags the packet has at this point

    def get(self, f: Field) -> int:
        return self.values.get(f.name, 0)

    def is_ip(self) -> bool:
        return self.values.get("eth_type") in (0x0800, 0x86DD)

    def prereqs_hold(self, f: Field) -> bool:
        if f.prereq == "vlan" or f.name == "vlan_vid":
            return self.vlans > 0
        if f.name in NOT_IN_LATER_FRAGMENTS and self.values.get("ip_frag", 0) & FRAG_LATER:
            return False
        return any(all(self.get(g) & (g.all_ones if m is None else m) == v for g, v, m in alt)
                   for alt in prereqs_of(f))


def _prereq_error(f: Field) -> ActionError:
    if f.prereq == "vlan" or f.name == "vlan_vid":
        return ActionError("match_inconsistent", f"setting {f.name} requires a VLAN tag in the match (dl_vlan=N "
                                                 "or vlan_tci=0x1000/0x1000), or a push_vlan before it", f.name)
    alts = tuple(Match({g.name: (v, m) for g, v, m in alt}) for alt in prereqs_of(f))
    need = " or ".join(",".join(f"{g}={v:#x}" for g, (v, _) in a.items()) for a in alts)
    later = " (and not a later fragment: it has no L4 header)" if f.name in NOT_IN_LATER_FRAGMENTS else ""
    return ActionError("match_inconsistent", f"setting {f.name} requires {need}{later} in the match", f.name, alts)


def check(match: Match, instructions, table_id: int = 0, of10: bool = False,
          push_tag: Collection[tuple[type, int]] = ()) -> None:
    """Raise ActionError if INSTRUCTIONS (of a flow in table TABLE_ID) do not fit MATCH.
    PUSH_TAG: (ApplyActions or WriteActions, index) of the vlan_vid/vlan_pcp set-fields that
    push a tag when there is none (ovs-ofctl's mod_vlan_vid/mod_vlan_pcp)."""
    vid = match.get("vlan_vid")
    flow = _Flow({n: v for n, (v, m) in match.items()}, 1 if vid and vid[0] & VLAN_CFI else 0)
    soft: str | None = None                       # the first inconsistency an apply-action has
    for ins in instructions:
        if isinstance(ins, GotoTable) and ins.table_id <= table_id:
            raise ActionError("bad_table", f"goto_table:{ins.table_id} must go forward from table {table_id}")
        if not isinstance(ins, (ApplyActions, WriteActions)):
            continue
        for i, a in enumerate(ins.actions):
            why = _step(flow, a, of10 or (type(ins), i) in push_tag)
            if why and soft is None and isinstance(ins, ApplyActions):
                soft = why
    if soft and not of10:
        raise ActionError("match_inconsistent", soft)


def untagged_vlan_sets(match: Match, instructions) -> frozenset[tuple[type, int]]:
    """The (ApplyActions or WriteActions, index) of the vlan_vid/vlan_pcp set-fields that meet
    no tag, walking INSTRUCTIONS from MATCH as check does: those push one (mod_vlan_vid)."""
    vid = match.get("vlan_vid")
    vlans, out = (1 if vid and vid[0] & VLAN_CFI else 0), set()
    for ins in instructions:
        if not isinstance(ins, (ApplyActions, WriteActions)):
            continue
        for i, a in enumerate(ins.actions):
            if isinstance(a, PushVlan):
                vlans = min(vlans + 1, MAX_VLANS)
            elif isinstance(a, PopVlan):
                vlans = max(vlans - 1, 0)
            elif isinstance(a, SetField) and a.field in ("vlan_vid", "vlan_pcp") and not vlans:
                out.add((type(ins), i))
                vlans = 1
    return frozenset(out)


def _step(flow: _Flow, a, legacy: bool) -> str | None:
    """Apply action A to FLOW; raise for what Open vSwitch refuses in any case, return why A is
    inconsistent with the match where only OpenFlow 1.1+ apply-actions refuse that."""
    if isinstance(a, PushVlan):
        if flow.vlans >= MAX_VLANS:
            raise ActionError("bad_tag", f"push_vlan: a third VLAN tag (a packet has {MAX_VLANS} at most here)")
        flow.vlans += 1
    elif isinstance(a, PopVlan):
        if not flow.vlans:
            return "pop_vlan needs a VLAN tag in the match (dl_vlan=N or vlan_tci=0x1000/0x1000)"
        flow.vlans -= 1
    elif isinstance(a, PushMpls):
        flow.values["eth_type"] = a.ethertype
        flow.values.pop("ip_proto", None)
    elif isinstance(a, PopMpls):
        mpls = flow.values.get("eth_type") in (0x8847, 0x8848)
        flow.values["eth_type"] = a.ethertype
        if not mpls:
            return "pop_mpls needs an MPLS packet (eth_type=0x8847 or 0x8848, or a push_mpls before it)"
    elif isinstance(a, (SetMplsTtl, DecMplsTtl)):
        if flow.values.get("eth_type") not in (0x8847, 0x8848):
            name = "set_mpls_ttl" if isinstance(a, SetMplsTtl) else "dec_mpls_ttl"
            return f"{name} needs an MPLS packet (eth_type=0x8847 or 0x8848, or a push_mpls before it)"
    elif isinstance(a, (DecNwTtl, SetNwTtl)):
        if not flow.is_ip():
            return f"{'dec_ttl' if isinstance(a, DecNwTtl) else 'mod_nw_ttl'} needs ip or ipv6 in the match"
    elif isinstance(a, (Load, Move, StackPush, StackPop)):
        # Open vSwitch's mf_check_src/mf_check_dst: the fields read and written must exist
        # in the packets the match admits, in any version.
        names = (a.src, a.dst) if isinstance(a, Move) else (a.field,)
        for name in names:
            f = BY_NAME[name]
            if f.member is not None and not flow.prereqs_hold(f):
                raise _prereq_error(f)
    elif isinstance(a, SetField):
        f = BY_NAME[a.field]
        if f.name in ("vlan_vid", "vlan_pcp") and legacy:
            flow.vlans = max(flow.vlans, 1)      # pushes a tag when there is none
        elif not legacy and not flow.prereqs_hold(f):
            raise _prereq_error(f)
    return None
