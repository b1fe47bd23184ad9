"""The OpenFlow switch side: what a bridge answers to controllers and to ``ovs-ofctl``.

``OFSwitch`` (one per bridge) serves OpenFlow 1.3 and the OpenFlow 1.0 subset ovs-ofctl uses
over every connection of the bridge (see connection.py): features, config, flow-mod (add,
modify, modify-strict, delete, delete-strict), group-mod, meter-mod (programming the datapath's
meters too), port-mod, packet-out, barrier, roles, async config, and the multipart requests
(desc, flow, aggregate, table, table-features, port stats, port desc, queue, group, group
desc, group features, meter, meter config, meter features).  It sends packet-ins (from the
upcall handler), flow-removed (from the pipeline's ``removed``) and port-status (ports that
came, went or changed) to the connections that want them.

Every malformed or refused message is answered with the OpenFlow error that fits, carrying the
message's first 64 bytes; the connection stays up.  Changes to rules, groups, meters or ports
are in the tables as soon as the message is handled (so a barrier is answered at once).  The
cached megaflows follow through a revalidator pass after each read of messages that changed
something, spaced so passes take at most a fifth of the loop (a pass costs O(rules) today, and
ovs-ofctl add-flows sends a barrier after every flow-mod); with no megaflow cached, none is
needed.  100,000 flow-mods from ``ovs-ofctl add-flows`` take about 14 s.

Fail modes: ``secure`` adds nothing; ``standalone`` with controllers configured installs
``priority=0,actions=NORMAL`` (cookie ``FAIL_OPEN_COOKIE``) while none of them is connected.

``OpenFlowService`` starts one OFSwitch per bridge with its listeners (``openflow.listen``
plus ``<control socket dir>/<bridge>.mgmt`` for local tools) and active controllers
(``openflow.controllers``).

Contract: the control thread's asyncio loop (it calls the datapath).  Cost: one decode and one
pipeline change per flow-mod; a multipart reply is built in one go and sent in ≤ 64 KB parts.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import struct
import time
import traceback
from dataclasses import replace

from .. import __version__
from ..datapath import DatapathError, odp, parse
from ..ofproto import actions as A
from ..ofproto import fields as F
from ..ofproto.classifier import key_int
from ..ofproto.flowstr import FlowSpec
from ..ofproto.match import Match, MatchError
from ..ofproto.pipeline import Bucket as PBucket
from ..ofproto.pipeline import FlowModError, GroupEntry, MeterEntry, N_TABLES
from . import consts as C
from .connection import ActiveController, Listener, OFConnection, log
from .errors import OFPError
from .message import (HEADER, BarrierReply, BarrierRequest, Experimenter, FeaturesReply,
                      FeaturesRequest, FlowMod, FlowRemoved, GetAsyncReply, GetAsyncRequest, GetConfigReply,
                      GetConfigRequest, GroupMod, Message, MeterMod, MultipartRequest, PacketIn,
                      PacketOut, PortMod, PortStatus, QueueGetConfigReply, QueueGetConfigRequest, RoleReply,
                      RoleRequest, SetAsync, SetConfig, TableMod, encode)
from .multipart import (AggregateStats, DescStats, FlowStats, FlowStatsRequest, GroupDesc, GroupFeatures,
                        GroupStats, MeterConfig, MeterFeatures, MeterStats, PortStats, TableFeatures, TableStats)
from .acts import check_flow_mod
from .oxm import oxm_maskable, oxm_width
from .records import Bucket, MeterBand, Port, Record

V10, V13 = C.OFP10_VERSION, C.OFP13_VERSION
FAIL_OPEN_COOKIE = 0xFA11_0BE4_0000_0000      # marks the standalone fail mode's NORMAL rule
MAX_METERS = 4096                             # the datapath's (DPS_MAX_METERS): ids 1..4095
MAX_GROUPS = 65535
PART = 60000                                  # bytes of records per multipart reply message
GROUP_TYPES = {C.OFPGT_ALL: "all", C.OFPGT_SELECT: "select", C.OFPGT_INDIRECT: "indirect", C.OFPGT_FF: "ff"}
GROUP_TYPE_NUM = {v: k for k, v in GROUP_TYPES.items()}
REMOVED_REASON = {"idle_timeout": C.OFPRR_IDLE_TIMEOUT, "hard_timeout": C.OFPRR_HARD_TIMEOUT,
                  "delete": C.OFPRR_DELETE, "group_delete": C.OFPRR_GROUP_DELETE}
PI_REASON = {"no_match": C.OFPR_NO_MATCH, "action": C.OFPR_ACTION, "invalid_ttl": C.OFPR_INVALID_TTL}
# Async defaults (master/equal, slave), OpenFlow 1.3 §7.3.10.
ASYNC_DEFAULTS = {"packet_in": (0b111, 0), "port_status": (0b111, 0b111), "flow_removed": (0b1111, 0)}
NXT_FLOW_MOD_TABLE_ID = 15
MODIFYING = (FlowMod, GroupMod, PortMod, TableMod, MeterMod, PacketOut)
IN_PORT = F.BY_NAME["in_port"]
SPEEDS = [(10, C.OFPPF_10MB_FD), (100, C.OFPPF_100MB_FD), (1000, C.OFPPF_1GB_FD), (10000, C.OFPPF_10GB_FD),
          (40000, C.OFPPF_40GB_FD), (100000, C.OFPPF_100GB_FD), (1000000, C.OFPPF_1TB_FD)]
# Action types (OFPAT_*) the switch executes, for group and table features.
ACTION_TYPES = (C.OFPAT_OUTPUT, C.OFPAT_COPY_TTL_OUT, C.OFPAT_COPY_TTL_IN, C.OFPAT_PUSH_VLAN, C.OFPAT_POP_VLAN,
                C.OFPAT_SET_QUEUE, C.OFPAT_GROUP, C.OFPAT_SET_NW_TTL, C.OFPAT_DEC_NW_TTL, C.OFPAT_SET_FIELD)
INSTRUCTION_TYPES = (C.OFPIT_GOTO_TABLE, C.OFPIT_WRITE_METADATA, C.OFPIT_WRITE_ACTIONS, C.OFPIT_APPLY_ACTIONS,
                     C.OFPIT_CLEAR_ACTIONS, C.OFPIT_METER)


def err(type_: int, code: int) -> OFPError:
    return OFPError(type_, code)


def datapath_id(name: str) -> int:
    """A stable 48-bit datapath id from the bridge name (the low bits, as a MAC would be)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=6).digest(), "big") & 0xFEFFFFFFFFFF | (
        0x020000000000)


def _mac(text: str) -> int:
    try:
        return int(text.replace(":", ""), 16)
    except ValueError:
        return 0


def _split_time(seconds: float) -> tuple[int, int]:
    seconds = max(0.0, seconds)
    s = int(seconds)
    return s, min(999_999_999, int((seconds - s) * 1e9))


# --- packet-out translation -----------------------------------------------------------------------
def translate_actions(xlate, frame: bytes, in_ofport: int, dp_in_port: int, actions):
    """The datapath actions that run ACTIONS (an OpenFlow action list) on FRAME received on
    IN_OFPORT (a port, or OFPP_CONTROLLER/LOCAL/ANY), through the translator's own machinery;
    the ``Translation``.  (ofproto.xlate has no public "translate this action list" yet.)"""
    from ..ofproto import xlate as X
    key = parse(frame, dp_in_port)
    c = X._Ctx(xlate.p, key, xlate.registry, False)
    if in_ofport not in xlate.p.ports or xlate.p.ports[in_ofport].dp_port < 0:    # or a patch port
        c.in_ofport = in_ofport
        IN_PORT.to_key(c.flow, in_ofport & IN_PORT.all_ones)
        c.base = bytearray(c.flow)
    c.out.wc.unwildcard(IN_PORT)
    c.table_id = C.OFPTT_ALL                  # packet-ins of these actions come from no table
    try:
        xlate._actions(c, actions)
    except X._Stop:
        pass
    if c.out.error:
        c.odp.clear()
    return c.out


# --- table features -------------------------------------------------------------------------------
def _prop(type_: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return struct.pack("!HH", type_, n) + payload + bytes((8 - n % 8) % 8)


def _oxm_header(f: F.Field, masked: bool = False) -> int:
    cls, fid = f.oxm
    w = oxm_width(f)
    return cls << 16 | fid << 9 | int(masked) << 8 | (2 * w if masked else w)


def table_features(table_id: int) -> TableFeatures:
    fields = [f for f in F.FIELDS if f.oxm is not None]
    instr = b"".join(struct.pack("!HH", t, 4) for t in INSTRUCTION_TYPES
                     if not (t == C.OFPIT_GOTO_TABLE and table_id >= N_TABLES - 1))
    acts = b"".join(struct.pack("!HH", t, 4) for t in ACTION_TYPES)
    match = b"".join(struct.pack("!I", _oxm_header(f, oxm_maskable(f))) for f in fields)
    wild = b"".join(struct.pack("!I", _oxm_header(f)) for f in fields)
    setf = b"".join(struct.pack("!I", _oxm_header(f)) for f in fields if f.writable)
    nxt = bytes(range(table_id + 1, N_TABLES))
    props = b"".join([
        _prop(0, instr), _prop(1, instr), _prop(2, nxt), _prop(3, nxt), _prop(4, acts), _prop(5, acts),
        _prop(6, acts), _prop(7, acts), _prop(8, match), _prop(10, wild), _prop(12, setf), _prop(13, setf),
        _prop(14, setf), _prop(15, setf)])
    return TableFeatures(table_id=table_id, name=f"table{table_id}", metadata_match=(1 << 64) - 1,
                         metadata_write=(1 << 64) - 1, config=0, max_entries=1_000_000, properties=props)


# --- the switch -----------------------------------------------------------------------------------
class OFSwitch:
    """One bridge's OpenFlow side."""

    def __init__(self, br, ctl_dir: str, probe_interval: float = 5.0):
        self.br = br
        self.name = br.config.name
        self.cfg = br.config.openflow
        self.dpid = datapath_id(self.name)
        self.probe_interval = probe_interval
        self.conns: set[OFConnection] = set()
        self.listeners = [Listener(t, self, probe_interval, self.cfg.ssl) for t in self.cfg.listen]
        self.mgmt = Listener(f"punix:{os.path.join(ctl_dir, self.name + '.mgmt')}", self, probe_interval)
        self.controllers = [ActiveController(t, self, probe_interval, self.cfg.ssl) for t in self.cfg.controllers]
        self.generation_id: int | None = None
        self.frag_flags = C.OFPC_FRAG_NORMAL
        self.port_config: dict[int, int] = {}          # ofport -> OFPPC_* bits set by port-mod
        self.port_snapshot: dict[int, tuple] = {}      # ofport -> (name, dp_port, config bits)
        self.port_since: dict[int, float] = {}
        self.port_link: dict[int, bool] = {}
        self.link_checked = 0.0
        self.group_created: dict[int, float] = {}
        self.meter_info: dict[int, tuple[int, float, tuple[MeterBand, ...]]] = {}   # id -> (flags, created, bands)
        self.fail_open = False
        self.stopping = False
        self.changed = False
        self._pass_timer: asyncio.TimerHandle | None = None
        self.last_pass_end = 0.0
        self.last_pass_cost = 0.0
        self.stats = {"flow_mods": 0, "packet_ins": 0, "errors": 0}

    # -- lifetime
    async def start(self) -> None:
        self.port_snapshot = self._port_state()
        self.br.upcalls.packet_in_hooks[self.br.config.name] = self.on_packet_in
        self.br.pipeline.removed.clear()
        if self.cfg.fail_mode == "secure" and not self.br.config.flows:
            self._remove_default_rule()
        if self.cfg.fail_mode == "standalone" and self.cfg.controllers:
            self._set_fail_open(True)
        for lst in [self.mgmt, *self.listeners]:
            await lst.start()
        for c in self.controllers:
            c.start()

    async def stop(self) -> None:
        self.stopping = True
        if self._pass_timer is not None:
            self._pass_timer.cancel()
        for c in self.controllers:
            await c.stop()
        for lst in [self.mgmt, *self.listeners]:
            await lst.stop()
        for conn in list(self.conns):
            conn.close()
        self.br.upcalls.packet_in_hooks.pop(self.br.config.name, None)

    def primaries(self) -> list[OFConnection]:
        return [c for c in self.conns if c.kind == "primary"]

    # -- connection events
    def connected(self, conn: OFConnection) -> None:
        self.conns.add(conn)
        if conn.kind == "primary":
            log(f"{self.name}: connected to controller {conn.name}, OpenFlow {'1.3' if conn.version == V13 else '1.0'}")
        if conn.kind == "primary" and self.fail_open:
            self._set_fail_open(False)
        self._update_table_miss()

    def disconnected(self, conn: OFConnection) -> None:
        self.conns.discard(conn)
        if conn.kind == "primary" and not self.stopping:
            log(f"{self.name}: controller {conn.name} disconnected")
            if not self.primaries() and self.cfg.fail_mode == "standalone":
                self._set_fail_open(True)
            self._update_table_miss()

    def _update_table_miss(self) -> None:
        """A table miss is a packet-in under OpenFlow 1.0 and a drop under 1.3: as Open vSwitch,
        misses go to the controllers while any controller connection speaks 1.0."""
        want = any(c.version == V10 for c in self.primaries())
        p = self.br.pipeline
        if p.miss_to_controller != want:
            p.miss_to_controller = want
            p.full_revalidation = True           # cached misses: drops become packet-ins, or back
            p.version += 1
            if not self.stopping:
                self.br.revalidator.run()

    # -- fail modes
    def _fail_open_spec(self) -> FlowSpec:
        return FlowSpec(match=Match(), instructions=(A.ApplyActions((A.Output(A.OFPP_NORMAL),)),), table_id=0,
                        priority=0, cookie=FAIL_OPEN_COOKIE, cookie_mask=(1 << 64) - 1)

    def _set_fail_open(self, on: bool) -> None:
        p = self.br.pipeline
        if on:
            log(f"{self.name}: no controller connected: standalone fail mode, priority=0,actions=NORMAL")
            p.add(self._fail_open_spec())
        else:
            log(f"{self.name}: a controller is connected: the fail-open rule is removed")
            p.delete(self._fail_open_spec(), strict=True)
        self.fail_open = on
        self.br.revalidator.run()

    def _remove_default_rule(self) -> None:
        """Secure mode adds no rule: take out the bridge's default NORMAL rule."""
        spec = FlowSpec(match=Match(), table_id=0, priority=0, cookie=0, cookie_mask=(1 << 64) - 1)
        for e in list(self.br.pipeline._selected(spec, strict=True)):
            if e.instructions == (A.ApplyActions((A.Output(A.OFPP_NORMAL),)),):
                self.br.pipeline.delete(spec, strict=True)
                self.br.revalidator.run()

    # -- messages
    def handle_batch(self, conn: OFConnection, batch) -> None:
        for raw, msg in batch:
            try:
                if isinstance(msg, OFPError):
                    if conn.version == V10 and raw[1] == C.OFPT10_STATS_REQUEST and raw[8:10] == b"\0\x0d":
                        # Open vSwitch's OpenFlow 1.0 port-desc stats (type 13), which the codec
                        # does not know as 1.0: ovs-ofctl dump-ports-desc sends it.
                        req = MultipartRequest(type=C.OFPMP_PORT_DESC, version=V10,
                                               xid=struct.unpack_from("!I", raw, 4)[0])
                        self._send_multipart(conn, req, self._port_desc(V10))
                        continue
                    raise msg
                self._dispatch(conn, msg, raw)
            except OFPError as e:
                e.data = e.data or raw[:64]
                xid = struct.unpack_from("!I", raw, 4)[0]
                self.stats["errors"] += 1
                conn.send_error(e, xid=xid)
            except MatchError as e:                   # a match the codec let through that the pipeline refuses
                self.stats["errors"] += 1
                code = C.OFPBMC_BAD_PREREQ if e.alternatives else C.OFPBMC_BAD_VALUE
                conn.send_error(OFPError(C.OFPET_BAD_MATCH, code, raw[:64]),
                                xid=struct.unpack_from("!I", raw, 4)[0])
            except Exception as e:                    # our bug: say so, answer EPERM, keep serving
                self.stats["errors"] += 1
                log(f"{self.name}: handling {type(msg).__name__} failed: {type(e).__name__}: {e}")
                traceback.print_exc()
                conn.send_error(OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_EPERM, raw[:64]),
                                xid=struct.unpack_from("!I", raw, 4)[0])
        self.sync()

    def sync(self) -> None:
        """After a batch: the async messages it caused, and a revalidation if rules changed."""
        self.poll_events()
        self._kick()

    def _kick(self, now_if_due: bool = False) -> None:
        """Bring the cached megaflows in line with changed rules: at once when the last pass
        was long enough ago, else soon.  Passes cost O(rules) (expiry) plus O(megaflows), so
        they are spaced to take at most a fifth of the loop's time while flow-mods stream in
        (ovs-ofctl add-flows sends a barrier after every flow-mod).  With no megaflow cached
        there is nothing to correct: the periodic pass takes the change records."""
        if not self.changed:
            return
        if not self.br.upcalls.ukeys:
            self.changed = False
            return
        wait = self.last_pass_end + 4 * self.last_pass_cost - time.monotonic()
        if wait <= 0 and (now_if_due or self._pass_timer is None):
            if self._pass_timer is not None:
                self._pass_timer.cancel()
            self._revalidate()
        elif self._pass_timer is None:
            self._pass_timer = asyncio.get_running_loop().call_later(max(0.0, wait), self._revalidate)

    def _revalidate(self) -> None:
        self._pass_timer = None
        self.changed = False
        t0 = time.monotonic()
        self.br.revalidator.run()
        self.last_pass_end = time.monotonic()
        self.last_pass_cost = self.last_pass_end - t0
        self.poll_events()

    def _dispatch(self, conn: OFConnection, msg: Message, raw: bytes) -> None:
        if conn.role == C.OFPCR_ROLE_SLAVE and isinstance(msg, MODIFYING):
            raise err(C.OFPET_BAD_REQUEST, C.OFPBRC_IS_SLAVE)
        handler = self.HANDLERS.get(type(msg))
        if handler is None:
            if isinstance(msg, Experimenter):
                if (conn.version == V10 and msg.experimenter == C.NX_VENDOR_ID and msg.exp_type == NXT_FLOW_MOD_TABLE_ID
                        and len(msg.data) == 8):
                    conn.table_id_ext = bool(msg.data[0])   # ovs-ofctl's "OpenFlow10+table_id"
                    return
                raise err(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_EXPERIMENTER)
            raise err(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_TYPE)
        handler(self, conn, msg)

    def _reply(self, conn: OFConnection, req: Message, reply: Message) -> None:
        reply.xid = req.xid
        conn.send_msg(reply)

    # features, config, barrier, roles, async
    def _features(self, conn, msg):
        if conn.version == V10:
            caps = C.OFPC_FLOW_STATS | C.OFPC_TABLE_STATS | C.OFPC_PORT_STATS | C.OFPC_ARP_MATCH_IP
            ports = tuple(self._port_desc(V10))
            reply = FeaturesReply(datapath_id=self.dpid, n_buffers=0, n_tables=N_TABLES, capabilities=caps,
                                  actions=(1 << 12) - 1, ports=ports)
        else:
            caps = C.OFPC_FLOW_STATS | C.OFPC_TABLE_STATS | C.OFPC_PORT_STATS | C.OFPC_GROUP_STATS
            reply = FeaturesReply(datapath_id=self.dpid, n_buffers=0, n_tables=N_TABLES, capabilities=caps)
        self._reply(conn, msg, reply)

    def _get_config(self, conn, msg):
        self._reply(conn, msg, GetConfigReply(flags=self.frag_flags, miss_send_len=conn.miss_send_len))

    def _set_config(self, conn, msg):
        if msg.flags & C.OFPC_FRAG_MASK == C.OFPC_FRAG_REASM:
            raise err(C.OFPET_SWITCH_CONFIG_FAILED, C.OFPSCFC_BAD_FLAGS)
        self.frag_flags = msg.flags & C.OFPC_FRAG_MASK
        conn.miss_send_len = msg.miss_send_len

    def _barrier(self, conn, msg):
        self.poll_events()                     # rules changed before it are in the tables already
        self._kick(now_if_due=True)            # and in the datapath's cache, unless a pass just ran
        self._reply(conn, msg, BarrierReply())

    def _role(self, conn, msg):
        role = msg.role
        if role not in (C.OFPCR_ROLE_NOCHANGE, C.OFPCR_ROLE_EQUAL, C.OFPCR_ROLE_MASTER, C.OFPCR_ROLE_SLAVE):
            raise err(C.OFPET_ROLE_REQUEST_FAILED, C.OFPRRFC_BAD_ROLE)
        if role in (C.OFPCR_ROLE_MASTER, C.OFPCR_ROLE_SLAVE):
            gen = msg.generation_id
            if self.generation_id is not None:
                diff = (gen - self.generation_id) & ((1 << 64) - 1)
                if diff >= 1 << 63:
                    raise err(C.OFPET_ROLE_REQUEST_FAILED, C.OFPRRFC_STALE)
            self.generation_id = gen
        if role == C.OFPCR_ROLE_MASTER:
            for other in self.conns:
                if other is not conn and other.role == C.OFPCR_ROLE_MASTER:
                    other.role = C.OFPCR_ROLE_SLAVE
        if role != C.OFPCR_ROLE_NOCHANGE:
            conn.role = role
        self._reply(conn, msg, RoleReply(role=conn.role, generation_id=self.generation_id or 0))

    def _async_of(self, conn) -> dict[str, tuple[int, int]]:
        return {k: conn.async_masks.get(k, v) for k, v in ASYNC_DEFAULTS.items()}

    def _get_async(self, conn, msg):
        a = self._async_of(conn)
        self._reply(conn, msg, GetAsyncReply(packet_in_mask=a["packet_in"], port_status_mask=a["port_status"],
                                             flow_removed_mask=a["flow_removed"]))

    def _set_async(self, conn, msg):
        conn.async_masks = {"packet_in": tuple(msg.packet_in_mask), "port_status": tuple(msg.port_status_mask),
                            "flow_removed": tuple(msg.flow_removed_mask)}

    def _table_mod(self, conn, msg):
        if msg.table_id >= N_TABLES and msg.table_id != C.OFPTT_ALL:
            raise err(C.OFPET_TABLE_MOD_FAILED, C.OFPTMFC_BAD_TABLE)
        if msg.config & ~3:
            raise err(C.OFPET_TABLE_MOD_FAILED, C.OFPTMFC_BAD_CONFIG)

    def _queue_config(self, conn, msg):
        if msg.port not in self.br.pipeline.ports and msg.port != A.OFPP_ANY:
            raise err(C.OFPET_QUEUE_OP_FAILED, C.OFPQOFC_BAD_PORT)
        self._reply(conn, msg, QueueGetConfigReply(port=msg.port))

    # flow-mod
    def _check_actions(self, actions, in_group: int | None = None) -> None:
        p = self.br.pipeline
        for a in actions:
            if isinstance(a, A.Group):
                if a.group_id not in p.groups:
                    raise err(C.OFPET_BAD_ACTION, C.OFPBAC_BAD_OUT_GROUP)
                if in_group is not None and self._reaches(a.group_id, in_group):
                    raise err(C.OFPET_GROUP_MOD_FAILED, C.OFPGMFC_LOOP)
            elif isinstance(a, A.Output) and a.port == A.OFPP_ANY:
                raise err(C.OFPET_BAD_ACTION, C.OFPBAC_BAD_OUT_PORT)

    def _reaches(self, gid: int, target: int, seen=None) -> bool:
        """Does group GID (through its buckets' group actions) lead to group TARGET?"""
        if gid == target:
            return True
        seen = seen if seen is not None else set()
        if gid in seen:
            return False
        seen.add(gid)
        g = self.br.pipeline.groups.get(gid)
        return g is not None and any(isinstance(a, A.Group) and self._reaches(a.group_id, target, seen)
                                     for b in g.buckets for a in b.actions)

    def _flow_spec(self, conn, msg: FlowMod) -> FlowSpec:
        v13 = conn.version == V13
        cmd = msg.command
        if v13 or conn.table_id_ext:
            table = msg.table_id
        else:
            table = 0 if cmd == C.OFPFC_ADD else C.OFPTT_ALL
        if cmd == C.OFPFC_ADD and table >= N_TABLES:
            raise err(C.OFPET_FLOW_MOD_FAILED, C.OFPFMFC_BAD_TABLE_ID)
        flags = msg.flags
        if flags & ~(0x1F if v13 else 0x3) or not v13 and flags & C.OFPFF10_EMERG:
            raise err(C.OFPET_FLOW_MOD_FAILED, C.OFPFMFC_BAD_FLAGS)
        instructions = tuple(sorted(msg.instructions, key=lambda i: A.INSTRUCTION_ORDER.index(type(i))))
        adds = cmd in (C.OFPFC_ADD, C.OFPFC_MODIFY, C.OFPFC_MODIFY_STRICT)
        check_flow_mod(msg.match, instructions if adds else (), table, conn.version)   # Open vSwitch's verdict
        if adds:
            for ins in instructions:
                if isinstance(ins, A.GotoTable) and (table >= N_TABLES or ins.table_id <= table
                                                     or ins.table_id >= N_TABLES):
                    raise err(C.OFPET_BAD_INSTRUCTION, C.OFPBIC_BAD_TABLE_ID)
                if isinstance(ins, A.Meter) and ins.meter_id not in self.br.pipeline.meters:
                    raise err(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_UNKNOWN_METER)
                if isinstance(ins, (A.ApplyActions, A.WriteActions)):
                    self._check_actions(ins.actions)
        match = Match(msg.match)                  # prerequisites: the pipeline checks (MatchError)
        out_port = msg.out_port if cmd in (C.OFPFC_DELETE, C.OFPFC_DELETE_STRICT) else A.OFPP_ANY
        out_group = msg.out_group if v13 and cmd in (C.OFPFC_DELETE, C.OFPFC_DELETE_STRICT) else C.OFPG_ANY
        return FlowSpec(match=match, instructions=instructions, table_id=table, priority=msg.priority,
                        cookie=msg.cookie, cookie_mask=msg.cookie_mask if v13 else 0,
                        idle_timeout=msg.idle_timeout, hard_timeout=msg.hard_timeout, flags=flags,
                        out_port=None if out_port == A.OFPP_ANY else out_port,
                        out_group=None if out_group == C.OFPG_ANY else out_group)

    def _flow_mod(self, conn, msg: FlowMod):
        self.stats["flow_mods"] += 1
        spec = self._flow_spec(conn, msg)
        p = self.br.pipeline
        cmd = msg.command
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
            raise err(*{"overlap": (C.OFPET_FLOW_MOD_FAILED, C.OFPFMFC_OVERLAP),
                        "bad_table": (C.OFPET_FLOW_MOD_FAILED, C.OFPFMFC_BAD_TABLE_ID),
                        "unknown_group": (C.OFPET_BAD_ACTION, C.OFPBAC_BAD_OUT_GROUP),
                        "table_full": (C.OFPET_FLOW_MOD_FAILED, C.OFPFMFC_TABLE_FULL),
                        }.get(e.kind, (C.OFPET_FLOW_MOD_FAILED, C.OFPFMFC_UNKNOWN))) from None
        finally:
            self.changed = True
        if msg.buffer_id != C.OFP_NO_BUFFER:      # applied; but there are no buffers to send from
            raise err(C.OFPET_BAD_REQUEST, C.OFPBRC_BUFFER_UNKNOWN)

    # group-mod
    def _group_mod(self, conn, msg: GroupMod):
        gid, p = msg.group_id, self.br.pipeline
        if msg.command == C.OFPGC_DELETE:
            if gid > C.OFPG_MAX and gid not in (C.OFPG_ALL, C.OFPG_ANY):
                raise err(C.OFPET_GROUP_MOD_FAILED, C.OFPGMFC_INVALID_GROUP)
            if gid == C.OFPG_ANY:
                return
            p.group_mod("delete", GroupEntry(gid, "all", []))
            for g in ([gid] if gid != C.OFPG_ALL else list(self.group_created)):
                self.group_created.pop(g, None)
            self.changed = True
            return
        if gid > C.OFPG_MAX:
            raise err(C.OFPET_GROUP_MOD_FAILED, C.OFPGMFC_INVALID_GROUP)
        gtype = GROUP_TYPES[msg.type]
        if gtype == "indirect" and len(msg.buckets) != 1:
            raise err(C.OFPET_GROUP_MOD_FAILED, C.OFPGMFC_INVALID_GROUP)
        buckets = []
        for b in msg.buckets:
            if gtype != "select" and b.weight:
                raise err(C.OFPET_GROUP_MOD_FAILED, C.OFPGMFC_WEIGHT_UNSUPPORTED)
            if gtype == "ff" and b.watch_port == A.OFPP_ANY and b.watch_group == C.OFPG_ANY:
                raise err(C.OFPET_GROUP_MOD_FAILED, C.OFPGMFC_BAD_WATCH)
            if b.watch_group != C.OFPG_ANY and (b.watch_group not in p.groups or b.watch_group == gid):
                raise err(C.OFPET_GROUP_MOD_FAILED, C.OFPGMFC_BAD_WATCH)
            self._check_actions(b.actions, in_group=gid)
            buckets.append(PBucket(tuple(b.actions), b.weight if gtype == "select" else 1, b.watch_port,
                                   b.watch_group))
        if msg.command == C.OFPGC_ADD and len(p.groups) >= MAX_GROUPS and gid not in p.groups:
            raise err(C.OFPET_GROUP_MOD_FAILED, C.OFPGMFC_OUT_OF_GROUPS)
        try:
            p.group_mod("add" if msg.command == C.OFPGC_ADD else "modify", GroupEntry(gid, gtype, buckets))
        except FlowModError as e:
            raise err(C.OFPET_GROUP_MOD_FAILED, C.OFPGMFC_GROUP_EXISTS if e.kind == "group_exists"
                      else C.OFPGMFC_UNKNOWN_GROUP) from None
        self.group_created[gid] = time.monotonic()
        self.changed = True

    # meter-mod
    def _meter_mod(self, conn, msg: MeterMod):
        mid, p, dp = msg.meter_id, self.br.pipeline, self.br.dp
        if msg.command == C.OFPMC_DELETE:
            ids = list(p.meters) if mid == C.OFPM_ALL else [mid]
            if mid != C.OFPM_ALL and not 0 < mid <= C.OFPM_MAX:
                raise err(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_INVALID_METER)
            for m in ids:
                if p.meters.pop(m, None) is None:
                    continue
                self.meter_info.pop(m, None)
                for e in [e for e in p.entries() if any(isinstance(i, A.Meter) and i.meter_id == m
                                                        for i in e.instructions)]:
                    p.delete(FlowSpec(match=e.match, table_id=e.table_id, priority=e.priority), strict=True)
                try:
                    dp.meter_del(m)
                except DatapathError:
                    pass
                self.changed = True
            return
        if not 0 < mid <= C.OFPM_MAX:
            raise err(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_INVALID_METER)
        if mid >= MAX_METERS:
            raise err(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_OUT_OF_METERS)
        flags = msg.flags
        if flags & ~(C.OFPMF_KBPS | C.OFPMF_PKTPS | C.OFPMF_BURST | C.OFPMF_STATS) or (
                flags & C.OFPMF_KBPS and flags & C.OFPMF_PKTPS):
            raise err(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_BAD_FLAGS)
        if not msg.bands:
            raise err(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_BAD_BAND)
        for b in msg.bands:
            if b.type != C.OFPMBT_DROP:
                raise err(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_BAD_BAND)
            if b.rate == 0:
                raise err(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_BAD_RATE)
            if b.burst_size and not flags & C.OFPMF_BURST:
                raise err(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_BAD_BURST)
        if msg.command == C.OFPMC_ADD and mid in p.meters:
            raise err(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_METER_EXISTS)
        if msg.command == C.OFPMC_MODIFY and mid not in p.meters:
            raise err(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_UNKNOWN_METER)
        pktps = bool(flags & C.OFPMF_PKTPS)
        band = min(msg.bands, key=lambda b: b.rate)
        burst = band.burst_size if flags & C.OFPMF_BURST else 0
        try:
            dp.meter_set(mid, band.rate, burst, pktps)
        except DatapathError:
            raise err(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_OUT_OF_METERS) from None
        p.meters[mid] = MeterEntry(mid, pktps, [(b.rate, b.burst_size) for b in msg.bands])
        created = self.meter_info.get(mid, (0, time.monotonic(), ()))[1]
        self.meter_info[mid] = (flags, created, tuple(msg.bands))
        p.version += 1
        self.changed = True

    # port-mod
    def _port_mod(self, conn, msg: PortMod):
        p = self.br.pipeline
        entry = p.ports.get(msg.port_no)
        port = self.br.by_ofport(msg.port_no)
        if entry is None or port is None:
            raise err(C.OFPET_PORT_MOD_FAILED, C.OFPPMFC_BAD_PORT)
        if msg.hw_addr != _mac(port.info.mac):
            raise err(C.OFPET_PORT_MOD_FAILED, C.OFPPMFC_BAD_HW_ADDR)
        allowed = C.OFPPC_PORT_DOWN | C.OFPPC_NO_RECV | C.OFPPC_NO_FWD | C.OFPPC_NO_PACKET_IN | C.OFPPC_NO_FLOOD
        if conn.version == V10:
            allowed |= C.OFPPC_NO_STP | C.OFPPC_NO_RECV_STP
        if msg.mask & ~allowed:
            raise err(C.OFPET_PORT_MOD_FAILED, C.OFPPMFC_BAD_CONFIG)
        cfg = self.port_config.get(msg.port_no, 0)
        cfg = (cfg & ~msg.mask) | (msg.config & msg.mask)
        self.port_config[msg.port_no] = cfg
        entry.no_fwd = bool(cfg & (C.OFPPC_NO_FWD | C.OFPPC_PORT_DOWN))
        entry.no_flood = bool(cfg & C.OFPPC_NO_FLOOD)
        entry.live = not cfg & C.OFPPC_PORT_DOWN and self.port_link.get(msg.port_no, True)
        p.set_port(entry)                       # bumps the version: every megaflow is looked at again
        self.changed = True

    # packet-out
    def _packet_out(self, conn, msg: PacketOut):
        if msg.buffer_id != C.OFP_NO_BUFFER:
            raise err(C.OFPET_BAD_REQUEST, C.OFPBRC_BUFFER_UNKNOWN)
        p = self.br.pipeline
        in_port = msg.in_port
        if in_port in p.ports:
            dp_in = max(p.ports[in_port].dp_port, 0)          # a patch port has no datapath port
        elif in_port in (A.OFPP_CONTROLLER, A.OFPP_LOCAL, A.OFPP_ANY):
            dp_in = 0
        else:
            raise err(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_PORT)
        if len(msg.data) < 14:
            raise err(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_PACKET)
        self._check_actions(msg.actions)
        t = translate_actions(self.br.xlate, msg.data, in_port, dp_in, msg.actions)
        for e in t.entries:
            e.packets += 1
            e.bytes += len(msg.data)
        if t.actions:
            try:
                self.br.dp.execute(msg.data, dp_in, odp.encode(t.actions))
            except DatapathError:
                raise err(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_PACKET) from None

    # multipart
    def _multipart(self, conn, msg: MultipartRequest):
        t = msg.type
        fn = self.MULTIPART_HANDLERS.get(t)
        if fn is None or conn.version == V10 and t not in (C.OFPMP_DESC, C.OFPMP_FLOW, C.OFPMP_AGGREGATE,
                                                             C.OFPMP_TABLE, C.OFPMP_PORT_STATS, C.OFPMP_QUEUE):
            raise err(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_MULTIPART)
        body = fn(self, conn, msg)
        self._send_multipart(conn, msg, body)

    def _send_multipart(self, conn, req, body) -> None:
        """BODY: a Record (one-record reply) or a list of them, sent in parts of ≤ PART bytes."""
        v = conn.version
        mtype = C.OFPT_MULTIPART_REPLY if v == V13 else C.OFPT10_STATS_REPLY
        mp_head = struct.Struct("!HH4x" if v == V13 else "!HH")
        if isinstance(body, Record):
            chunks = [body.pack(v)]
        else:
            chunks = []
            for r in body:
                try:
                    chunks.append(r.pack(v))
                except (ValueError, struct.error):
                    continue                      # not expressible in this version (1.0)
        parts, cur, size = [], [], 0
        for c in chunks:
            if cur and size + len(c) > PART:
                parts.append(cur)
                cur, size = [], 0
            cur.append(c)
            size += len(c)
        parts.append(cur)
        for i, part in enumerate(parts):
            data = b"".join(part)
            more = C.OFPMPF_REPLY_MORE if i < len(parts) - 1 else 0
            n = HEADER.size + mp_head.size + len(data)
            conn.send(HEADER.pack(v, mtype, n, req.xid) + mp_head.pack(req.type, more) + data)

    def _mp_desc(self, conn, msg):
        return DescStats(mfr_desc="dpdkswitch", hw_desc="DPDK userspace datapath",
                         sw_desc=f"dpdkswitch {__version__}", serial_num="None", dp_desc=self.name)

    def _selected(self, req: FlowStatsRequest):
        if req.table_id != C.OFPTT_ALL and req.table_id >= N_TABLES:
            raise err(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_TABLE_ID)
        try:
            match = Match(req.match)
        except MatchError:
            raise err(C.OFPET_BAD_MATCH, C.OFPBMC_BAD_PREREQ) from None
        spec = FlowSpec(match=match, table_id=req.table_id, cookie=req.cookie, cookie_mask=req.cookie_mask,
                        out_port=None if req.out_port == A.OFPP_ANY else req.out_port,
                        out_group=None if req.out_group == C.OFPG_ANY else req.out_group)
        self.br.revalidator.run()               # fresh counters from the datapath
        return list(self.br.pipeline._selected(spec, strict=False))

    def _mp_flow(self, conn, msg):
        now = self.br.pipeline.clock()
        out = []
        for e in sorted(self._selected(msg.body), key=lambda e: (e.table_id, -e.priority, e.seq)):
            sec, nsec = _split_time(now - e.created)
            instructions = e.instructions
            if conn.version == V10:
                instructions = tuple(i for i in instructions if isinstance(i, A.ApplyActions) and i.actions)
            out.append(FlowStats(table_id=e.table_id, duration_sec=sec, duration_nsec=nsec, priority=e.priority,
                                 idle_timeout=e.idle_timeout, hard_timeout=e.hard_timeout, flags=e.flags,
                                 cookie=e.cookie, packet_count=e.packets, byte_count=e.bytes,
                                 match=dict(e.match.items()), instructions=instructions))
        return out

    def _mp_aggregate(self, conn, msg):
        es = self._selected(msg.body)
        return AggregateStats(packet_count=sum(e.packets for e in es), byte_count=sum(e.bytes for e in es),
                              flow_count=len(es))

    def _mp_table(self, conn, msg):
        tables = self.br.pipeline.tables
        if conn.version == V10:
            return [TableStats(table_id=t.table_id, active_count=t.cls.n_rules, lookup_count=t.lookups,
                               matched_count=t.matches, name=f"table{t.table_id}", wildcards=C.OFPFW10_ALL,
                               max_entries=1_000_000) for t in tables]
        return [TableStats(table_id=t.table_id, active_count=t.cls.n_rules, lookup_count=t.lookups,
                           matched_count=t.matches) for t in tables]

    def _mp_table_features(self, conn, msg):
        if msg.body:
            raise err(C.OFPET_TABLE_FEATURES_FAILED, C.OFPTFFC_EPERM)
        return [table_features(i) for i in range(N_TABLES)]

    def _mp_port_stats(self, conn, msg):
        want = msg.body.port_no
        out = []
        for port in sorted(self.br.ports.values(), key=lambda p: p.ofport):
            if want not in (A.OFPP_ANY, port.ofport):
                continue
            try:
                s = self.br.port_stats(port)
            except DatapathError:
                continue
            sec, nsec = _split_time(time.monotonic() - self.port_since.get(port.ofport, time.monotonic()))
            out.append(PortStats(port_no=port.ofport, rx_packets=s["rx_packets"], tx_packets=s["tx_packets"],
                                 rx_bytes=s["rx_bytes"], tx_bytes=s["tx_bytes"],
                                 rx_dropped=s["rx_missed"] + s["rx_nombuf"], tx_dropped=s["tx_dropped"],
                                 rx_errors=s["rx_errors"], tx_errors=s["tx_errors"], duration_sec=sec,
                                 duration_nsec=nsec))
        return out

    def _mp_port_desc(self, conn, msg):
        return self._port_desc(conn.version)

    def _mp_queue(self, conn, msg):
        want = msg.body.port_no
        if want != A.OFPP_ANY and want not in self.br.pipeline.ports:
            raise err(C.OFPET_QUEUE_OP_FAILED, C.OFPQOFC_BAD_PORT)
        return []

    def _group_refs(self, gid: int) -> int:
        return sum(1 for e in self.br.pipeline.entries() if e.uses_group(gid))

    def _mp_group(self, conn, msg):
        want = msg.body.group_id
        now = time.monotonic()
        out = []
        for gid, g in sorted(self.br.pipeline.groups.items()):
            if want not in (C.OFPG_ALL, gid):
                continue
            sec, nsec = _split_time(now - self.group_created.get(gid, now))
            out.append(GroupStats(group_id=gid, ref_count=self._group_refs(gid), packet_count=g.packets,
                                  byte_count=g.bytes, duration_sec=sec, duration_nsec=nsec,
                                  bucket_stats=tuple((b.packets, b.bytes) for b in g.buckets)))
        return out

    def _mp_group_desc(self, conn, msg):
        return [GroupDesc(type=GROUP_TYPE_NUM[g.type], group_id=gid,
                          buckets=tuple(Bucket(actions=tuple(b.actions), weight=b.weight if g.type == "select" else 0,
                                               watch_port=b.watch_port if b.watch_port is not None else A.OFPP_ANY,
                                               watch_group=b.watch_group if b.watch_group is not None
                                               else C.OFPG_ANY) for b in g.buckets))
                for gid, g in sorted(self.br.pipeline.groups.items())]

    def _mp_group_features(self, conn, msg):
        acts = sum(1 << t for t in ACTION_TYPES)
        return GroupFeatures(types=sum(1 << t for t in GROUP_TYPES), capabilities=1 | 2 | 4,
                             max_groups=(MAX_GROUPS,) * 4, actions=(acts,) * 4)

    def _meters_wanted(self, want: int) -> list[int]:
        return sorted(m for m in self.br.pipeline.meters if want in (C.OFPM_ALL, m))

    def _mp_meter(self, conn, msg):
        now = time.monotonic()
        out = []
        for mid in self._meters_wanted(msg.body.meter_id):
            try:
                packets, dropped = self.br.dp.meter_stats(mid)
            except DatapathError:
                packets = dropped = 0
            flags, created, bands = self.meter_info.get(mid, (0, now, ()))
            sec, nsec = _split_time(now - created)
            flows = sum(1 for e in self.br.pipeline.entries()
                        if any(isinstance(i, A.Meter) and i.meter_id == mid for i in e.instructions))
            low = min(range(len(bands)), key=lambda i: bands[i].rate) if bands else None
            out.append(MeterStats(meter_id=mid, flow_count=flows, packet_in_count=packets, byte_in_count=0,
                                  duration_sec=sec, duration_nsec=nsec,
                                  band_stats=tuple((dropped if i == low else 0, 0) for i in range(len(bands)))))
        return out

    def _mp_meter_config(self, conn, msg):
        out = []
        for mid in self._meters_wanted(msg.body.meter_id):
            flags, _, bands = self.meter_info.get(mid, (0, 0, ()))
            out.append(MeterConfig(flags=flags, meter_id=mid, bands=bands))
        return out

    def _mp_meter_features(self, conn, msg):
        return MeterFeatures(max_meter=MAX_METERS - 1, band_types=1 << C.OFPMBT_DROP,
                             capabilities=C.OFPMF_KBPS | C.OFPMF_PKTPS | C.OFPMF_BURST | C.OFPMF_STATS,
                             max_bands=1, max_color=0)

    # -- ports
    def _port_record(self, port, version: int, link_up: bool) -> Port:
        cfg = self.port_config.get(port.ofport, 0)
        entry = self.br.pipeline.ports.get(port.ofport)
        state = 0 if link_up else C.OFPPS_LINK_DOWN
        if version == V13:
            cfg &= ~(C.OFPPC_NO_FLOOD | C.OFPPC_NO_STP | C.OFPPC_NO_RECV_STP)
            if link_up and not (cfg & C.OFPPC_PORT_DOWN) and (entry is None or entry.live):
                state |= C.OFPPS_LIVE
        speed = port.info.link_speed or 0
        curr = next((bit for mbps, bit in SPEEDS if mbps == speed), C.OFPPF_OTHER if speed else 0)
        if version == V10:
            curr &= (1 << 7) - 1
        return Port(port_no=port.ofport, hw_addr=_mac(port.info.mac), name=port.name[:15], config=cfg,
                    state=state, curr=curr, advertised=0, supported=curr, peer=0,
                    curr_speed=speed * 1000, max_speed=speed * 1000)

    def _port_desc(self, version: int) -> list[Port]:
        out = []
        for port in sorted(self.br.ports.values(), key=lambda p: p.ofport):
            out.append(self._port_record(port, version, self.port_link.get(port.ofport, port.info.link_up)))
        return out

    def _port_state(self) -> dict[int, tuple]:
        """ofport -> (name, dp_port, config bits) of the bridge's ports now."""
        now = time.monotonic()
        out = {}
        for e in self.br.pipeline.ports.values():
            out[e.ofport] = (e.name, e.dp_port, self.port_config.get(e.ofport, 0))
            if self.port_snapshot.get(e.ofport, (None, None))[:2] != out[e.ofport][:2]:
                self.port_since[e.ofport] = now
        return out

    # -- async messages
    def _wants(self, conn: OFConnection, kind: str, reason: int) -> bool:
        if conn.kind == "service" and not conn.miss_send_len:
            return False                          # as Open vSwitch: ovs-ofctl monitor asks for them
        if conn.version == V10:
            return True
        mask = self._async_of(conn)[kind][1 if conn.role == C.OFPCR_ROLE_SLAVE else 0]
        return bool(mask >> reason & 1)

    def _broadcast(self, kind: str, reason: int, make) -> None:
        for conn in list(self.conns):
            if self._wants(conn, kind, reason):
                try:
                    data = make(conn)
                except (ValueError, struct.error, KeyError):
                    continue                      # not expressible in this connection's version
                if data is not None:
                    conn.send(data)

    def on_packet_in(self, ev) -> None:
        """The upcall handler's packet-in (PacketInEvent: pi, data, in_port, key)."""
        if not self.conns:
            return
        if self.port_config.get(ev.in_port, 0) & (C.OFPPC_NO_PACKET_IN | C.OFPPC_NO_RECV | C.OFPPC_PORT_DOWN):
            return
        pi = ev.pi
        reason = PI_REASON.get(pi.reason, C.OFPR_ACTION)
        if reason == C.OFPR_ACTION and self._is_table_miss(ev):
            reason = C.OFPR_NO_MATCH              # a table-miss rule's controller action
        self.stats["packet_ins"] += 1
        data = bytes(ev.data)

        def make(conn):
            max_len = pi.max_len if pi.reason == "action" else conn.miss_send_len
            body = data if max_len == C.OFPCML_NO_BUFFER else data[:max_len]
            match = {"in_port": (ev.in_port, None)}
            if pi.metadata and conn.version == V13:
                match["metadata"] = (pi.metadata, None)
            return encode(PacketIn(buffer_id=C.OFP_NO_BUFFER, total_len=len(data), reason=reason,
                                   table_id=pi.table_id, cookie=pi.cookie, match=match, data=body,
                                   version=conn.version, xid=0))
        self._broadcast("packet_in", reason, make)

    def _is_table_miss(self, ev) -> bool:
        """Did the packet hit its table's table-miss rule (priority 0, matching everything), and
        was it that rule's controller action that sent it?"""
        if ev.pi.table_id >= N_TABLES:
            return False                          # from a packet-out's own actions
        t = self.br.pipeline.tables[ev.pi.table_id]
        k = bytearray(ev.key)
        IN_PORT.to_key(k, ev.in_port)
        r = t.cls.lookup(key_int(bytes(k)), ev.pi.metadata)
        return (r is not None and r.priority == 0 and not len(r.match) and r.data.cookie == ev.pi.cookie
                and r.data.outputs_to(A.OFPP_CONTROLLER))

    def poll_events(self) -> None:
        """Flow-removed and port-status messages for what changed since the last look."""
        p = self.br.pipeline
        if p.removed:
            removed, p.removed[:] = list(p.removed), []
            now = p.clock()
            for rm in removed:
                e = rm.entry
                reason = REMOVED_REASON.get(rm.reason, C.OFPRR_DELETE)
                sec, nsec = _split_time(now - e.created)

                def make(conn, e=e, reason=reason, sec=sec, nsec=nsec):
                    r = reason if conn.version == V13 or reason <= C.OFPRR_DELETE else C.OFPRR_DELETE
                    return encode(FlowRemoved(cookie=e.cookie, priority=e.priority, reason=r, table_id=e.table_id,
                                              duration_sec=sec, duration_nsec=nsec, idle_timeout=e.idle_timeout,
                                              hard_timeout=e.hard_timeout, packet_count=e.packets,
                                              byte_count=e.bytes, match=dict(e.match.items()),
                                              version=conn.version))
                self._broadcast("flow_removed", reason, make)
        state = self._port_state()
        if state != self.port_snapshot:
            old, self.port_snapshot = self.port_snapshot, state
            for ofport in sorted(set(old) | set(state)):
                if ofport in old and ofport not in state:
                    rec = Port(port_no=ofport, name=old[ofport][0], config=C.OFPPC_PORT_DOWN,
                               state=C.OFPPS_LINK_DOWN)
                    self.port_link.pop(ofport, None)
                    self.port_config.pop(ofport, None)
                    self.port_since.pop(ofport, None)
                    self._port_status(C.OFPPR_DELETE, lambda v, rec=rec: rec)
                elif old.get(ofport) != state[ofport]:
                    port = self.br.by_ofport(ofport)
                    if port is not None:
                        reason = C.OFPPR_ADD if ofport not in old or old[ofport][1] != state[ofport][1] \
                            else C.OFPPR_MODIFY
                        self._port_status(reason, lambda v, port=port: self._port_record(
                            port, v, self.port_link.get(port.ofport, port.info.link_up)))

    def poll_links(self) -> None:
        """Link changes (a few ``ip`` calls for ports in namespaces): port-status MODIFY."""
        if not any(self._wants(c, "port_status", C.OFPPR_MODIFY) for c in self.conns):
            return
        for port in list(self.br.ports.values()):
            try:
                up = self.br.port_info(port).link_up
            except DatapathError:
                continue
            if self.port_link.get(port.ofport, port.info.link_up) != up:
                self.port_link[port.ofport] = up
                self._port_status(C.OFPPR_MODIFY, lambda v, port=port, up=up: self._port_record(port, v, up))

    def _port_status(self, reason: int, record) -> None:
        self._broadcast("port_status", reason, lambda conn: encode(PortStatus(
            reason=reason, desc=record(conn.version), version=conn.version)))

    HANDLERS = {
        FeaturesRequest: _features, GetConfigRequest: _get_config, SetConfig: _set_config,
        BarrierRequest: _barrier, RoleRequest: _role, GetAsyncRequest: _get_async, SetAsync: _set_async,
        FlowMod: _flow_mod, GroupMod: _group_mod, MeterMod: _meter_mod, PortMod: _port_mod,
        PacketOut: _packet_out, MultipartRequest: _multipart, TableMod: _table_mod,
        QueueGetConfigRequest: _queue_config,
    }
    MULTIPART_HANDLERS = {
        C.OFPMP_DESC: _mp_desc, C.OFPMP_FLOW: _mp_flow, C.OFPMP_AGGREGATE: _mp_aggregate,
        C.OFPMP_TABLE: _mp_table, C.OFPMP_TABLE_FEATURES: _mp_table_features, C.OFPMP_PORT_STATS: _mp_port_stats,
        C.OFPMP_PORT_DESC: _mp_port_desc, C.OFPMP_QUEUE: _mp_queue, C.OFPMP_GROUP: _mp_group,
        C.OFPMP_GROUP_DESC: _mp_group_desc, C.OFPMP_GROUP_FEATURES: _mp_group_features,
        C.OFPMP_METER: _mp_meter, C.OFPMP_METER_CONFIG: _mp_meter_config,
        C.OFPMP_METER_FEATURES: _mp_meter_features,
    }


class OpenFlowService:
    """Every bridge's OpenFlow side, for ``dpdkswitch run``."""

    def __init__(self, switch, control_socket: str, probe_interval: float = 5.0):
        ctl_dir = os.path.dirname(os.path.abspath(control_socket))
        self.switches = {name: OFSwitch(br, ctl_dir, probe_interval) for name, br in switch.bridges.items()}
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        for s in self.switches.values():
            await s.start()
        self._task = asyncio.get_running_loop().create_task(self._events())

    async def _events(self) -> None:
        """Flow-removed (timeouts expire in the revalidator) and port-status, a few times a second."""
        n = 0
        while True:
            await asyncio.sleep(0.2)
            n += 1
            for s in self.switches.values():
                try:
                    s.poll_events()
                    if n % 10 == 0:
                        s.poll_links()
                except Exception as e:             # never let one bad event stop the others
                    log(f"{s.name}: event polling failed: {type(e).__name__}: {e}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for s in self.switches.values():
            await s.stop()
