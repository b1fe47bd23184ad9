"""The bridge's rules as OpenFlow changes and reads them: flow-mod (add, modify,
modify-strict, delete, delete-strict; OpenFlow 1.0's modify that adds), flow and aggregate
stats, flow-removed messages, and the fail modes' rule (standalone: ``priority=0,
actions=NORMAL`` while no controller is connected; secure: not even the bridge's default).

Contract: the control thread's asyncio loop.  Cost: a flow-mod is one pipeline change (a
classifier insert, or a scan of the tables for loose matches); flow and aggregate stats run a
revalidation pass first (fresh counters), then scan the tables.
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import replace

from ..ofproto import actions as A
from ..ofproto.flowstr import FlowSpec
from ..ofproto.match import Match, MatchError
from ..ofproto.pipeline import N_TABLES, FlowModError
from ..openflow import consts as C
from ..openflow import nx
from ..openflow.acts import check_flow_mod
from ..openflow.connection import log
from ..openflow.errors import OFPError
from ..openflow.message import FlowMod, FlowRemoved, decode, encode
from ..openflow.multipart import AggregateStats, FlowStats, FlowStatsRequest
from ..switch import Bridge
from .actions import check_actions
from .duration import split_time
from .flowshapes import FlowModShapes

V10, V13 = C.OFP10_VERSION, C.OFP13_VERSION
FAIL_OPEN_COOKIE = 0xFA11_0BE4_0000_0000      # marks the standalone fail mode's NORMAL rule
REMOVED_REASON = {"idle_timeout": C.OFPRR_IDLE_TIMEOUT, "hard_timeout": C.OFPRR_HARD_TIMEOUT,
                  "delete": C.OFPRR_DELETE, "group_delete": C.OFPRR_GROUP_DELETE}
FLOW_MOD_ERRORS = {"overlap": (C.OFPET_FLOW_MOD_FAILED, C.OFPFMFC_OVERLAP),
                   "bad_table": (C.OFPET_FLOW_MOD_FAILED, C.OFPFMFC_BAD_TABLE_ID),
                   "unknown_group": (C.OFPET_BAD_ACTION, C.OFPBAC_BAD_OUT_GROUP),
                   "table_full": (C.OFPET_FLOW_MOD_FAILED, C.OFPFMFC_TABLE_FULL),
                   "too_many_actions": (C.OFPET_BAD_ACTION, C.OFPBAC_TOO_MANY),
                   "bad_conjunction": (C.OFPET_BAD_ACTION, C.OFPBAC_BAD_ARGUMENT),
                   "unknown_meter": (C.OFPET_METER_MOD_FAILED, C.OFPMMFC_UNKNOWN_METER)}


class FlowManager:
    """One bridge's rules, for its OpenFlow switch.  BROADCAST(kind, reason, make) sends an
    async message to the connections that want it; CHANGED() says the rules changed (the
    switch brings the cached megaflows in line)."""

    def __init__(self, br: Bridge, broadcast: Callable[..., None], changed: Callable[[], None]):
        self.br = br
        self.pipeline = br.pipeline
        self.broadcast = broadcast
        self.changed = changed
        self.fail_open = False
        self.n_flow_mods = 0
        self.shapes = FlowModShapes()             # compiled flow-mod shapes (flowshapes.py)

    # -- fail modes
    @staticmethod
    def _fail_open_spec() -> FlowSpec:
        return FlowSpec(match=Match(), instructions=(A.ApplyActions((A.Output(A.OFPP_NORMAL),)),), table_id=0,
                        priority=0, cookie=FAIL_OPEN_COOKIE, cookie_mask=(1 << 64) - 1)

    def set_fail_open(self, on: bool) -> None:
        """The standalone fail mode's NORMAL rule, in (ON) or out."""
        p = self.pipeline
        if on:
            log(f"{self.br.config.name}: no controller connected: standalone fail mode, priority=0,actions=NORMAL")
            try:
                p.add(self._fail_open_spec())
            except FlowModError as e:             # table 0 at its flow_limit
                log(f"{self.br.config.name}: the fail-open rule is not added: {e}")
        else:
            log(f"{self.br.config.name}: a controller is connected: the fail-open rule is removed")
            p.delete(self._fail_open_spec(), strict=True)
        self.fail_open = on
        self.br.revalidate()

    def remove_default_rule(self) -> None:
        """Secure mode adds no rule: take out the bridge's default NORMAL rule."""
        spec = FlowSpec(match=Match(), table_id=0, priority=0, cookie=0, cookie_mask=(1 << 64) - 1)
        for e in list(self.pipeline.select(spec, strict=True)):
            if e.instructions == (A.ApplyActions((A.Output(A.OFPP_NORMAL),)),):
                self.pipeline.delete(spec, strict=True)
                self.br.revalidate()

    # -- flow-mod
    def _flow_spec(self, conn, msg: FlowMod) -> FlowSpec:
        v13 = conn.version == V13
        cmd = msg.command
        if v13 or conn.table_id_ext:
            table = msg.table_id
        else:
            table = 0 if cmd == C.OFPFC_ADD else C.OFPTT_ALL
        if cmd == C.OFPFC_ADD and table >= N_TABLES:
            raise OFPError(C.OFPET_FLOW_MOD_FAILED, C.OFPFMFC_BAD_TABLE_ID)
        flags = msg.flags
        if flags & ~(0x1F if v13 else 0x3) or not v13 and flags & C.OFPFF10_EMERG:
            raise OFPError(C.OFPET_FLOW_MOD_FAILED, C.OFPFMFC_BAD_FLAGS)
        instructions = tuple(sorted(msg.instructions, key=lambda i: A.INSTRUCTION_ORDER.index(type(i))))
        adds = cmd in (C.OFPFC_ADD, C.OFPFC_MODIFY, C.OFPFC_MODIFY_STRICT)
        match = Match(msg.match)                  # prerequisites: the pipeline checks (MatchError)
        check_flow_mod(match, instructions if adds else (), table, conn.version)   # Open vSwitch's verdict
        if adds:
            self._check_instructions(table, instructions)
        out_port = msg.out_port if cmd in (C.OFPFC_DELETE, C.OFPFC_DELETE_STRICT) else A.OFPP_ANY
        out_group = msg.out_group if v13 and cmd in (C.OFPFC_DELETE, C.OFPFC_DELETE_STRICT) else C.OFPG_ANY
        return FlowSpec(match=match, instructions=instructions, table_id=table, priority=msg.priority,
                        cookie=msg.cookie, cookie_mask=msg.cookie_mask if v13 else 0,
                        idle_timeout=msg.idle_timeout, hard_timeout=msg.hard_timeout, flags=flags,
                        out_port=None if out_port == A.OFPP_ANY else out_port,
                        out_group=None if out_group == C.OFPG_ANY else out_group)

    def _check_instructions(self, table: int, instructions) -> None:
        """What an add's INSTRUCTIONS into TABLE must pass, the tables' state included (the
        groups and meters they name exist)."""
        for ins in instructions:
            if isinstance(ins, A.GotoTable) and (table >= N_TABLES or ins.table_id <= table
                                                 or ins.table_id >= N_TABLES):
                raise OFPError(C.OFPET_BAD_INSTRUCTION, C.OFPBIC_BAD_TABLE_ID)
            if isinstance(ins, A.Meter) and not 0 < ins.meter_id <= C.OFPM_MAX:
                raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_INVALID_METER)   # the slow path's: no rule's
            if isinstance(ins, A.Meter) and ins.meter_id not in self.pipeline.meters:
                raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_UNKNOWN_METER)
            if isinstance(ins, (A.ApplyActions, A.WriteActions)):
                check_actions(self.pipeline.groups, ins.actions)

    def flow_mod_raw(self, conn, raw: bytes, may_modify: Callable[[], None]) -> None:
        """The flow-mod RAW (whole, in CONN's version) from its compiled shape (flowshapes.py)
        when it has a known one, else decoded (OFPError if malformed) and handled as
        ``flow_mod``.  MAY_MODIFY() raises if CONN may not change the tables (a slave),
        after decoding, as for any other message."""
        spec = self.shapes.spec(raw) if raw[0] == V13 else None
        if spec is None:
            msg = decode(raw)
            may_modify()
            self.flow_mod(conn, msg, raw)
            return
        may_modify()
        self.n_flow_mods += 1
        self._check_instructions(spec.table_id, spec.instructions)
        self._apply(conn, C.OFPFC_ADD, spec, C.OFP_NO_BUFFER)

    def flow_mod_run(self, conn, raws: list[bytes], may_modify: Callable[[], None]) -> list[tuple[bytes, Exception]]:
        """A run of OpenFlow 1.3 flow-mods from CONN (RAWS, whole, in the order received, with no
        other message between them), each handled as ``flow_mod_raw`` handles it and applied in
        turn, so a later one sees an earlier one's rule; the failures, (raw, exception) in order
        (the caller answers each with its error and xid).  What a run shares is done once: the
        clock read (its rules are created at one time), the check of an instruction list's
        groups and meters (no group-mod or meter-mod can come between), the change note."""
        errors: list[tuple[bytes, Exception]] = []
        if not raws:
            return errors
        p = self.pipeline
        shapes = self.shapes
        now = p.clock()
        checked: dict[tuple[int, int], tuple] = {}    # (id(instructions), table) -> instructions checked
        try:
            for raw in raws:
                try:
                    shape = shapes.find(raw) if raw[0] == V13 else None
                    if shape is None:
                        msg = decode(raw)
                        may_modify()
                        self.flow_mod(conn, msg, raw)
                        continue
                    may_modify()
                    self.n_flow_mods += 1
                    t = shape.template
                    ins, tid = t.instructions, t.table_id
                    ck = (id(ins), tid)
                    if checked.get(ck) is not ins:
                        self._check_instructions(tid, ins)
                        checked[ck] = ins
                    match, priority, cookie, idle, hard = shape.values(raw)
                    try:
                        p.add_rule(tid, match, priority, ins, cookie, idle, hard, t.flags, now)
                    except FlowModError as e:
                        raise OFPError(*FLOW_MOD_ERRORS.get(e.kind, (C.OFPET_FLOW_MOD_FAILED, C.OFPFMFC_UNKNOWN))) \
                            from None
                except Exception as e:          # answered by the caller, as for a lone flow-mod
                    errors.append((raw, e))
        finally:
            self.changed()
        return errors

    def flow_mod(self, conn, msg: FlowMod, raw: bytes | None = None):
        """MSG from CONN; RAW: its bytes, whose shape (flowshapes.py) is kept if it is applied."""
        self.n_flow_mods += 1
        spec = self._flow_spec(conn, msg)
        self._apply(conn, msg.command, spec, msg.buffer_id)
        if raw is not None and msg.command == C.OFPFC_ADD and conn.version == V13:
            self.shapes.learn(raw, msg, spec)

    def _apply(self, conn, cmd: int, spec: FlowSpec, buffer_id: int) -> None:
        p = self.pipeline
        try:
            if cmd == C.OFPFC_ADD:
                p.add(spec)
            elif cmd in (C.OFPFC_MODIFY, C.OFPFC_MODIFY_STRICT):
                strict = cmd == C.OFPFC_MODIFY_STRICT
                if not p.modify(spec, strict=strict) and conn.version == V10:
                    if spec.table_id is not None and spec.table_id < N_TABLES:   # 1.0: modify adds when nothing matches
                        p.add(spec)
                    elif not conn.table_id_ext:
                        p.add(replace(spec, table_id=0))
            else:
                p.delete(spec, strict=cmd == C.OFPFC_DELETE_STRICT)
        except FlowModError as e:
            raise OFPError(*FLOW_MOD_ERRORS.get(e.kind, (C.OFPET_FLOW_MOD_FAILED, C.OFPFMFC_UNKNOWN))) from None
        finally:
            self.changed()
        if buffer_id != C.OFP_NO_BUFFER:          # applied; but there are no buffers to send from
            raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BUFFER_UNKNOWN)

    # -- flow and aggregate stats
    def _requested(self, req: FlowStatsRequest):
        if req.table_id != C.OFPTT_ALL and req.table_id >= N_TABLES:
            raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_TABLE_ID)
        try:
            match = Match(req.match)
        except MatchError:
            raise OFPError(C.OFPET_BAD_MATCH, C.OFPBMC_BAD_PREREQ) from None
        spec = FlowSpec(match=match, table_id=req.table_id, cookie=req.cookie, cookie_mask=req.cookie_mask,
                        out_port=None if req.out_port == A.OFPP_ANY else req.out_port,
                        out_group=None if req.out_group == C.OFPG_ANY else req.out_group)
        self.br.revalidate()                    # fresh counters from the datapath
        return list(self.pipeline.select(spec, strict=False))

    def mp_flow(self, conn, msg):
        now = self.pipeline.clock()
        out = []
        for e in sorted(self._requested(msg.body), key=lambda e: (e.table_id, -e.priority, e.seq)):
            sec, nsec = split_time(now - e.created)
            instructions = e.instructions
            if conn.version == V10:
                instructions = tuple(i for i in instructions if isinstance(i, A.ApplyActions) and i.actions)
            out.append(FlowStats(table_id=e.table_id, duration_sec=sec, duration_nsec=nsec, priority=e.priority,
                                 idle_timeout=e.idle_timeout, hard_timeout=e.hard_timeout, flags=e.flags,
                                 cookie=e.cookie, packet_count=e.packets, byte_count=e.bytes,
                                 match=dict(e.match.items()), instructions=instructions))
        return out

    def nx_flow_stats(self, match, table_id: int, out_port: int) -> list[bytes]:
        """NXST_FLOW's entries for MATCH in TABLE_ID (OFPTT_ALL: every table) with OUT_PORT (or
        any): OpenFlow 1.0 actions, NXM matches (openflow/nx.py); a flow whose actions 1.0
        cannot carry (write_actions, goto_table ...) shows its apply-actions only."""
        now = self.pipeline.clock()
        out = []
        req = FlowStatsRequest(match=match, table_id=table_id, out_port=out_port)
        for e in sorted(self._requested(req), key=lambda e: (e.table_id, -e.priority, e.seq)):
            acts = next((i.actions for i in e.instructions if isinstance(i, A.ApplyActions)), ())
            try:
                out.append(nx.encode_flow_stats(e.table_id, split_time(now - e.created), e.priority, e.idle_timeout,
                                                e.hard_timeout, e.cookie, e.packets, e.bytes, dict(e.match.items()),
                                                acts))
            except (ValueError, struct.error):
                continue                          # not expressible in OpenFlow 1.0 actions
        return out

    def nx_aggregate(self, match, table_id: int, out_port: int) -> bytes:
        """NXST_AGGREGATE's reply body for MATCH in TABLE_ID with OUT_PORT."""
        es = self._requested(FlowStatsRequest(match=match, table_id=table_id, out_port=out_port))
        return struct.pack("!QQI4x", sum(e.packets for e in es), sum(e.bytes for e in es), len(es))

    def mp_aggregate(self, conn, msg):
        es = self._requested(msg.body)
        return AggregateStats(packet_count=sum(e.packets for e in es), byte_count=sum(e.bytes for e in es),
                              flow_count=len(es))

    # -- flow-removed
    def poll_removed(self) -> None:
        """Flow-removed messages for the rules that left since the last look."""
        removed = self.pipeline.take_removed()
        if removed:
            now = self.pipeline.clock()
            for rm in removed:
                e = rm.entry
                reason = REMOVED_REASON.get(rm.reason, C.OFPRR_DELETE)
                sec, nsec = split_time(now - e.created)

                def make(conn, e=e, reason=reason, sec=sec, nsec=nsec):
                    r = reason if conn.version == V13 or reason <= C.OFPRR_DELETE else C.OFPRR_DELETE
                    return encode(FlowRemoved(cookie=e.cookie, priority=e.priority, reason=r, table_id=e.table_id,
                                              duration_sec=sec, duration_nsec=nsec, idle_timeout=e.idle_timeout,
                                              hard_timeout=e.hard_timeout, packet_count=e.packets,
                                              byte_count=e.bytes, match=dict(e.match.items()),
                                              version=conn.version))
                self.broadcast("flow_removed", reason, make)
