"""Compiled flow-mod shapes (dpdkswitch/ofswitch/flowshapes.py): a flow-mod recognised by the
shape of one decoded before must give what decoding and checking it would give (the same
FlowSpec, the same key and mask), and a flow-mod whose decoding or checks would differ (a
prerequisite's value, a field's width, an error) must not be recognised.  Messages are put
together by hand from the OpenFlow 1.3 layouts, so values the codec would never encode (a
vlan_vid without its present bit, ip_proto that breaks a prerequisite) are drawn too.

No network; no EAL.
"""
from __future__ import annotations

import struct
import types

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dpdkswitch.ofproto import fields as F
from dpdkswitch.ofproto.match import MatchError
from dpdkswitch.ofproto.pipeline import Pipeline
from dpdkswitch.ofswitch.flows import FlowManager
from dpdkswitch.openflow import consts as C
from dpdkswitch.openflow.errors import OFPError
from dpdkswitch.openflow.message import decode

V13 = 4
SOME = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONN = types.SimpleNamespace(version=V13, table_id_ext=False, role=C.OFPCR_ROLE_EQUAL)
# Fields drawn, with the prerequisites they need when the draw keeps them consistent.
FIELDS = ["in_port", "eth_dst", "eth_src", "eth_type", "vlan_vid", "vlan_pcp", "ip_proto", "ipv4_src", "ipv4_dst",
          "ipv6_src", "udp_src", "udp_dst", "tcp_dst", "ip_dscp", "arp_op", "metadata", "reg0", "ipv6_label"]


def _oxm(name: str, value: int, mask: int | None = None) -> bytes:
    f = F.BY_NAME[name]
    w = 4 if (f.bits + 7) // 8 == 3 else (f.bits + 7) // 8
    cls, fid = f.oxm
    body = value.to_bytes(w, "big") + (b"" if mask is None else mask.to_bytes(w, "big"))
    return struct.pack("!HBB", cls, fid << 1 | (mask is not None), len(body)) + body


def _flow_mod(tlvs: bytes, instructions: bytes, priority: int = 10, cookie: int = 0, xid: int = 1,
              table: int = 0, command: int = C.OFPFC_ADD, flags: int = 0) -> bytes:
    match = struct.pack("!HH", 1, 4 + len(tlvs)) + tlvs
    match += bytes(-len(match) % 8)
    body = struct.pack("!QQBBHHHIIIH2x", cookie, 0, table, command, 0, 0, priority, C.OFP_NO_BUFFER, A_ANY,
                       C.OFPG_ANY, flags) + match + instructions
    return struct.pack("!BBHI", V13, C.OFPT_FLOW_MOD, 8 + len(body), xid) + body


A_ANY = 0xFFFFFFFF


def _apply(*actions: bytes) -> bytes:
    acts = b"".join(actions)
    return struct.pack("!HH4x", C.OFPIT_APPLY_ACTIONS, 8 + len(acts)) + acts


def _output(port: int) -> bytes:
    return struct.pack("!HHIH6x", C.OFPAT_OUTPUT, 16, port, 0xFFFF)


def _set_field(name: str, value: int) -> bytes:
    o = _oxm(name, value)
    body = struct.pack("!HH", C.OFPAT_SET_FIELD, 0) + o
    body += bytes(-len(body) % 8)
    return body[:2] + struct.pack("!H", len(body)) + body[4:]


# Kinds of flows whose prerequisites hold: (fields with their values, fields that may join).
KINDS = [({"eth_type": 0x0800, "ip_proto": 17}, ["ipv4_src", "ipv4_dst", "udp_src", "udp_dst", "ip_dscp", "in_port",
                                                 "eth_src", "metadata"]),
         ({"eth_type": 0x86DD, "ip_proto": 6}, ["ipv6_src", "ipv6_label", "tcp_dst", "eth_dst", "reg0"]),
         ({"eth_type": 0x0806}, ["arp_op", "eth_src", "in_port"]),
         ({"vlan_vid": 0x1005}, ["vlan_pcp", "eth_dst", "eth_type", "metadata"])]
INSTRUCTIONS = [b"", _apply(_output(2)), _apply(_set_field("udp_dst", 53), _output(1)),
                _apply(struct.pack("!HH4x", C.OFPAT_DEC_NW_TTL, 8), _output(3)),
                _apply(_set_field("vlan_vid", 0x1005)), _apply(struct.pack("!HH4x", C.OFPAT_POP_VLAN, 8)),
                struct.pack("!HHB3x", C.OFPIT_GOTO_TABLE, 8, 3)]


def _manager() -> FlowManager:
    br = types.SimpleNamespace(pipeline=Pipeline(), config=types.SimpleNamespace(name="br0"), revalidate=lambda: None)
    return FlowManager(br, lambda *a: None, lambda: None)


def _full(raw: bytes):
    """RAW decoded and checked the whole way, on a manager that never saw a shape: its
    FlowSpec, or the error."""
    try:
        return _manager()._flow_spec(CONN, decode(raw))
    except (OFPError, MatchError) as e:
        return e


@st.composite
def pairs(draw):
    """Two flow-mods with the same TLV headers (values redrawn in some) and instructions."""
    if draw(st.booleans()):                       # any fields: prerequisites often missing
        names = draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=5, unique=True))
        fixed = {}
    else:                                         # a consistent kind of flow, more fields of it
        fixed, more = draw(st.sampled_from(KINDS))
        extra = draw(st.lists(st.sampled_from(more), min_size=1, max_size=4, unique=True))
        names = draw(st.permutations([*fixed, *extra]))
    values = [fixed[n] if n in fixed else draw(st.integers(0, F.BY_NAME[n].all_ones)) for n in names]
    for i, n in enumerate(names):
        if n == "eth_type" and draw(st.booleans()):
            values[i] = draw(st.sampled_from([0x0800, 0x86DD, 0x0806]))
        if n == "ip_proto" and draw(st.booleans()):
            values[i] = draw(st.sampled_from([6, 17]))
    masks = [draw(st.one_of(st.none(), st.integers(1, F.BY_NAME[n].all_ones))) if F.BY_NAME[n].maskable
             and n != "vlan_pcp" else None for n in names]
    values = [v & m if m is not None else v for v, m in zip(values, masks)]
    again = [draw(st.integers(0, F.BY_NAME[n].all_ones)) if draw(st.booleans()) else v
             for n, v in zip(names, values)]
    again = [v & m if m is not None else v for v, m in zip(again, masks)]
    ins = draw(st.sampled_from(INSTRUCTIONS))
    one = _flow_mod(b"".join(_oxm(n, v, m) for n, v, m in zip(names, values, masks)), ins)
    two = _flow_mod(b"".join(_oxm(n, v, m) for n, v, m in zip(names, again, masks)), ins,
                    priority=draw(st.integers(0, 0xFFFF)), cookie=draw(st.integers(0, (1 << 64) - 1)),
                    xid=draw(st.integers(0, 0xFFFFFFFF)))
    return one, two


@SOME
@given(pairs())
def test_a_recognised_flow_mod_is_what_decoding_and_checking_it_gives(pair):
    one, two = pair
    fm = _manager()
    try:
        fm.flow_mod_raw(CONN, one, lambda: None)
    except (OFPError, MatchError) as e:
        event(f"refused: {type(e).__name__} {getattr(e, 'code', e)}")
        assert fm.shapes.n_shapes == 0            # refused: no shape kept
        return
    spec = fm.shapes.spec(two)                    # by the dict of shapes (none found before)
    assert fm.shapes.find(one) is not None        # one's shape is the last found now:
    assert fm.shapes.spec(two) == spec            # the same answer by it
    full = _full(two)
    event("recognised" if spec is not None else "not recognised")
    if spec is None:
        return
    assert not isinstance(full, Exception), f"the shape took a flow-mod that the whole way refuses: {full!r}"
    assert spec == full
    assert spec.match.key_and_mask_ints() == full.match.key_and_mask_ints()
    assert spec.match.pipeline_ints() == full.match.pipeline_ints()
    assert spec.match.implied() == full.match.implied()


def test_the_benchs_flow_mods_are_one_shape_and_go_in_as_decoded():
    """The bench's 1,000 flow-mods: the first decoded, the rest recognised; the table then holds
    what decoding each would have put there."""
    from dpdkswitch.bench.flowmods import flow_mods
    msgs = flow_mods(1000)
    fm, ref = _manager(), _manager()
    for raw in msgs:
        fm.flow_mod_raw(CONN, raw, lambda: None)
        ref.flow_mod(CONN, decode(raw))
    assert fm.shapes.n_shapes == 1 and fm.shapes.hits == 999
    got = {(e.priority, e.match): (e.instructions, e.cookie) for e in fm.pipeline.entries()}
    want = {(e.priority, e.match): (e.instructions, e.cookie) for e in ref.pipeline.entries()}
    assert len(got) == 1000 and got == want
    assert {e.rule.key for e in fm.pipeline.entries()} == {e.rule.key for e in ref.pipeline.entries()}


def test_the_last_shape_found_takes_only_its_own_flow_mods():
    """The shape last found is tried first: a flow-mod that differs from it in its head (table,
    command, flags, length) or in a fixed byte of its match is not taken for it."""
    fm = _manager()
    tlvs = lambda a: _oxm("eth_type", 0x0800) + _oxm("ipv4_src", a)   # noqa: E731
    fm.flow_mod_raw(CONN, _flow_mod(tlvs(1), _apply(_output(2))), lambda: None)
    last = fm.shapes.find(_flow_mod(tlvs(2), _apply(_output(2)), priority=9, cookie=5, xid=3))
    assert last is not None and fm.shapes.last is last
    for other in (_flow_mod(tlvs(3), _apply(_output(2)), table=1),
                  _flow_mod(tlvs(3), _apply(_output(2)), command=C.OFPFC_MODIFY),
                  _flow_mod(tlvs(3), _apply(_output(2)), flags=1),
                  _flow_mod(tlvs(3), _apply(_output(3))),
                  _flow_mod(tlvs(3), _apply(_output(2), _output(3))),
                  _flow_mod(_oxm("eth_type", 0x0800) + _oxm("ipv4_dst", 3), _apply(_output(2)))):
        assert fm.shapes.find(other) is None
        assert fm.shapes.last is last
    assert fm.shapes.find(_flow_mod(tlvs(4), _apply(_output(2)))) is last


def test_a_prerequisite_value_is_part_of_the_shape():
    """udp_dst with ip_proto=17 is one shape; the same bytes with ip_proto=6 are not it (the
    udp_dst prerequisite fails the whole way), nor with eth_type IPv6."""
    fm = _manager()
    tlvs = lambda et, proto: _oxm("eth_type", et) + _oxm("ip_proto", proto) + _oxm("udp_dst", 53)   # noqa: E731
    fm.flow_mod_raw(CONN, _flow_mod(tlvs(0x0800, 17), _apply(_output(2))), lambda: None)
    assert fm.shapes.spec(_flow_mod(tlvs(0x0800, 17), _apply(_output(2)), priority=7)) is not None
    assert fm.shapes.spec(_flow_mod(tlvs(0x0800, 6), _apply(_output(2)))) is None
    assert fm.shapes.spec(_flow_mod(tlvs(0x86DD, 17), _apply(_output(2)))) is None
    assert isinstance(_full(_flow_mod(tlvs(0x0800, 6), _apply(_output(2)))), OFPError)


def test_state_is_checked_per_flow_mod():
    """A recognised flow-mod's group must exist when it comes, not only when its shape was
    learned: the group deleted, the next one of the shape is refused (OFPBAC_BAD_OUT_GROUP)."""
    import pytest

    from dpdkswitch.ofproto.pipeline import GroupEntry
    fm = _manager()
    fm.pipeline.group_mod("add", GroupEntry(1, "all", []))
    group = _apply(struct.pack("!HHI", C.OFPAT_GROUP, 8, 1))
    tlvs = lambda a: _oxm("eth_type", 0x0800) + _oxm("ipv4_src", a)   # noqa: E731
    fm.flow_mod_raw(CONN, _flow_mod(tlvs(1), group), lambda: None)
    fm.flow_mod_raw(CONN, _flow_mod(tlvs(2), group), lambda: None)
    assert fm.shapes.hits == 1
    fm.pipeline.group_mod("delete", GroupEntry(1, "all", []))
    with pytest.raises(OFPError) as e:
        fm.flow_mod_raw(CONN, _flow_mod(tlvs(3), group), lambda: None)
    assert (e.value.type, e.value.code) == (C.OFPET_BAD_ACTION, C.OFPBAC_BAD_OUT_GROUP)
    assert fm.shapes.hits == 2


# --- runs of flow-mods (FlowManager.flow_mod_run) -------------------------------------------
GROUP_9 = _apply(struct.pack("!HHI", C.OFPAT_GROUP, 8, 9))      # group 9: never added


@st.composite
def runs(draw):
    """A run of flow-mods as a pipelined controller sends them: adds of a few shapes (often
    repeated, so recognised), some refused (an unknown group, an overlap under check_overlap,
    a prerequisite missing), deletes and modifies between them."""
    out = []
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["add", "add", "add", "group", "overlap", "noprereq", "delete", "modify"]))
        src = draw(st.integers(0, 7))
        tl = _oxm("eth_type", 0x0800) + _oxm("ip_proto", 17) + _oxm("ipv4_src", 0x0A000000 | src)
        pri = draw(st.sampled_from([10, 20]))
        if kind == "add":
            out.append(_flow_mod(tl, draw(st.sampled_from(INSTRUCTIONS[:3])), priority=pri, xid=len(out)))
        elif kind == "group":
            out.append(_flow_mod(tl, GROUP_9, priority=pri, xid=len(out)))
        elif kind == "overlap":                   # a wider match: overlaps every add of its priority
            out.append(_flow_mod(_oxm("eth_type", 0x0800), INSTRUCTIONS[1], priority=pri, xid=len(out), flags=2))
        elif kind == "noprereq":                  # ipv4_src without eth_type
            out.append(_flow_mod(_oxm("ipv4_src", src), INSTRUCTIONS[1], priority=pri, xid=len(out)))
        elif kind == "delete":
            out.append(_flow_mod(tl, b"", priority=pri, xid=len(out), command=C.OFPFC_DELETE_STRICT))
        else:
            out.append(_flow_mod(tl, INSTRUCTIONS[2], priority=pri, xid=len(out), command=C.OFPFC_MODIFY))
    return out


def _table(fm: FlowManager) -> list:
    return sorted((e.priority, e.match.key_and_mask_ints(), e.instructions, e.cookie, e.flags)
                  for e in fm.pipeline.tables[0].entries())


def _error(e: Exception):
    return (type(e).__name__, e.type, e.code) if isinstance(e, OFPError) else (type(e).__name__, str(e))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs(), st.integers(1, 40))
def test_a_run_of_flow_mods_does_what_each_in_turn_does(raws, cut):
    """A run applied together (flow_mod_run, as the channel hands it a read's flow-mods) leaves
    the table each flow-mod applied in turn leaves, and fails the same flow-mods with the same
    errors in the same order: a later flow-mod sees an earlier one's rule (check_overlap,
    delete, modify), a failing one fails alone.  Runs are cut where a turn would cut them."""
    one = _manager()
    want = []
    for raw in raws:
        try:
            one.flow_mod_raw(CONN, raw, lambda: None)
        except (OFPError, MatchError) as e:
            want.append((raw, _error(e)))
    batched = _manager()
    got = []
    for i in range(0, len(raws), cut):
        got += [(raw, _error(e)) for raw, e in batched.flow_mod_run(CONN, raws[i:i + cut], lambda: None)]
    assert got == want
    assert _table(batched) == _table(one)
    assert batched.n_flow_mods == one.n_flow_mods


def test_a_run_refused_to_a_slave_fails_every_flow_mod_and_applies_none():
    fm = _manager()
    raws = [_flow_mod(_oxm("eth_type", 0x0800) + _oxm("ipv4_src", i), _apply(_output(2)), xid=i) for i in range(1, 6)]

    def slave():
        raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_IS_SLAVE)
    fm.flow_mod_run(CONN, raws[:1], lambda: None)     # its shape is known now
    errs = fm.flow_mod_run(CONN, raws[1:], slave)
    assert [(r, e.code) for r, e in errs] == [(r, C.OFPBRC_IS_SLAVE) for r in raws[1:]]
    assert len(_table(fm)) == 1


def test_a_runs_groups_are_checked_again_in_the_next_run():
    """A run checks an instruction list's groups once; the next run checks them again: the
    group deleted in between, the same shape is refused there (OFPBAC_BAD_OUT_GROUP)."""
    from dpdkswitch.ofproto.pipeline import GroupEntry
    fm = _manager()
    fm.pipeline.group_mod("add", GroupEntry(1, "all", []))
    group = _apply(struct.pack("!HHI", C.OFPAT_GROUP, 8, 1))
    raws = [_flow_mod(_oxm("eth_type", 0x0800) + _oxm("ipv4_src", i), group, xid=i) for i in range(8)]
    assert fm.flow_mod_run(CONN, raws[:4], lambda: None) == []
    fm.pipeline.group_mod("delete", GroupEntry(1, "all", []))
    errs = fm.flow_mod_run(CONN, raws[4:], lambda: None)
    assert [(r, e.type, e.code) for r, e in errs] == [(r, C.OFPET_BAD_ACTION, C.OFPBAC_BAD_OUT_GROUP)
                                                      for r in raws[4:]]
    assert fm.shapes.hits == 7 and len(_table(fm)) == 0       # the group's delete took the first four
