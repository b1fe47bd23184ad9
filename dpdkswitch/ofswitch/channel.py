"""The OpenFlow switch side: what a bridge answers to controllers and to ``ovs-ofctl``.

``OFSwitch`` (one per bridge) serves OpenFlow 1.3 and the OpenFlow 1.0 subset ovs-ofctl uses
over every connection of the bridge (see openflow/connection.py).  This module is its channel:
the connections, the dispatch of their messages, features, config, barrier, roles, async
config, desc, multipart replies, the async messages' delivery, the fail modes, the
revalidation after changes, and the state of its controllers and listeners (``endpoints``, which
``ofproto/list-controllers`` shows).  The rest is done by one manager per concept, each in the module
of its name: ``flows`` (flow-mod, flow and aggregate stats, flow-removed, the fail modes'
rule), ``groups``, ``meters`` (meter-mod, meter stats and features; ``Bridge.meter_mod`` programs
the datapath's meters), ``ports`` (port-mod,
port desc and stats, queues, port-status), ``packets`` (packet-in from the upcall handler,
packet-out) and ``tables`` (table-mod, table stats and features, what a table miss does).

Every malformed or refused message is answered with the OpenFlow error that fits, carrying the
message's first 64 bytes; the connection stays up.  Changes to rules, groups, meters or ports
are in the tables as soon as the message is handled (so a barrier is answered at once).  The
cached megaflows follow through a revalidator pass after each read of messages that changed
something, spaced so passes take at most a fifth of the loop (a pass costs O(rules) today, and
ovs-ofctl add-flows sends a barrier after every flow-mod); with no megaflow cached, none is
needed.  OpenFlow 1.3 flow-mods come undecoded (openflow/connection.py): ``flows`` builds
one of a known shape from its bytes (flowshapes.py).

Fail modes: ``secure`` adds nothing; ``standalone`` with controllers configured installs
``priority=0,actions=NORMAL`` (cookie ``FAIL_OPEN_COOKIE``) while none of them is connected.

Contract: the control thread's asyncio loop (it calls the datapath).  Cost: one decode and one
pipeline change per flow-mod; a multipart reply is built in one go and sent in ≤ 64 KB parts.
"""
from __future__ import annotations

import asyncio
import os
import struct
import time

from .. import __version__, udpif
from ..ofproto.match import MatchError
from ..ofproto.pipeline import N_TABLES
from ..openflow import consts as C
from ..openflow import nx
from ..openflow.connection import ActiveController, Listener, OFConnection, log
from ..openflow.errors import OFPError
from ..openflow.message import (HEADER, BarrierRequest, Experimenter, FeaturesReply,
                                FeaturesRequest, FlowMod, GetAsyncReply, GetAsyncRequest, GetConfigReply,
                                GetConfigRequest, GroupMod, Message, MeterMod, MultipartRequest, PacketOut,
                                PortMod, QueueGetConfigRequest, RoleReply, RoleRequest, SetAsync, SetConfig,
                                TableMod)
from ..openflow.multipart import DescStats
from ..openflow.records import Record
from ..switch import Bridge
from .flows import FlowManager
from .groups import GroupManager
from .meters import MeterManager
from .packets import PacketManager
from .ports import PortManager
from .tables import TableManager

V10, V13 = C.OFP10_VERSION, C.OFP13_VERSION
PART = 60000                                  # bytes of records per multipart reply message
# Async defaults (master/equal, slave), OpenFlow 1.3 §7.3.10.
# As Open vSwitch 3.1's: no invalid_ttl packet-ins unless asked (set-async, or OpenFlow 1.0's
# OFPC_INVALID_TTL_TO_CONTROLLER in set-config, as ovs-ofctl monitor's invalid_ttl sends)
OFPC_INVALID_TTL_TO_CONTROLLER = 1 << 2
ASYNC_DEFAULTS = {"packet_in": (0b011, 0), "port_status": (0b111, 0b111), "flow_removed": (0b1111, 0)}
NXT_FLOW_MOD_TABLE_ID = 15
MODIFYING = (FlowMod, GroupMod, PortMod, TableMod, MeterMod, PacketOut)
# What features replies announce (ofproto/show prints the same).
CAPABILITIES_V10 = C.OFPC_FLOW_STATS | C.OFPC_TABLE_STATS | C.OFPC_PORT_STATS | C.OFPC_ARP_MATCH_IP
CAPABILITIES_V13 = C.OFPC_FLOW_STATS | C.OFPC_TABLE_STATS | C.OFPC_PORT_STATS | C.OFPC_GROUP_STATS
# Roles as Open vSwitch's Controller table names them (OpenFlow's EQUAL is "other").
ROLE_NAMES = {C.OFPCR_ROLE_EQUAL: "other", C.OFPCR_ROLE_MASTER: "master", C.OFPCR_ROLE_SLAVE: "slave"}
MULTIPART_V10 = (C.OFPMP_DESC, C.OFPMP_FLOW, C.OFPMP_AGGREGATE, C.OFPMP_TABLE, C.OFPMP_PORT_STATS, C.OFPMP_QUEUE)


SLICED_PASS_S = 0.02        # a revalidation pass that took longer runs in steps the next time

class OFSwitch:
    """One bridge's OpenFlow side."""

    def __init__(self, br: Bridge, ctl_dir: str, probe_interval: float = 5.0):
        self.br = br
        self.name = br.config.name
        self.cfg = br.config.openflow
        self.probe_interval = probe_interval
        self.conns: set[OFConnection] = set()
        self.listeners = [Listener(t, self, probe_interval, self.cfg.ssl) for t in self.cfg.listen]
        self.mgmt = Listener(f"punix:{os.path.join(ctl_dir, self.name + '.mgmt')}", self, probe_interval)
        self.controllers = [ActiveController(t, self, probe_interval, self.cfg.ssl) for t in self.cfg.controllers]
        self.generation_id: int | None = None
        self.frag_flags = C.OFPC_FRAG_NORMAL
        self.stopping = False
        self.changed = False
        self._pass_timer: asyncio.TimerHandle | None = None
        self.last_pass_end = 0.0
        self.last_pass_cost = 0.0
        self._sliced: asyncio.Task | None = None  # a long pass in steps (_sliced_pass)
        self.n_errors = 0
        self.tables = TableManager(br)
        self.flows = FlowManager(br, self._broadcast, self._note_change)
        self.groups = GroupManager(br, self._note_change)
        self.meters = MeterManager(br, self._note_change)
        self.ports = PortManager(br, self._broadcast, self._note_change)
        self.packets = PacketManager(br, self.ports, self._broadcast, unlimited=self.is_mgmt)
        self.handlers = {
            FeaturesRequest: self._features, GetConfigRequest: self._get_config, SetConfig: self._set_config,
            BarrierRequest: self._barrier, RoleRequest: self._role, GetAsyncRequest: self._get_async,
            SetAsync: self._set_async, FlowMod: self.flows.flow_mod, GroupMod: self.groups.group_mod,
            MeterMod: self.meters.meter_mod, PortMod: self.ports.port_mod, PacketOut: self.packets.packet_out,
            MultipartRequest: self._multipart, TableMod: self.tables.table_mod,
            QueueGetConfigRequest: self.ports.queue_config,
        }
        self.multipart_handlers = {
            C.OFPMP_DESC: self._mp_desc, C.OFPMP_FLOW: self.flows.mp_flow, C.OFPMP_AGGREGATE: self.flows.mp_aggregate,
            C.OFPMP_TABLE: self.tables.mp_table, C.OFPMP_TABLE_FEATURES: self.tables.mp_table_features,
            C.OFPMP_PORT_STATS: self.ports.mp_port_stats, C.OFPMP_PORT_DESC: self.ports.mp_port_desc,
            C.OFPMP_QUEUE: self.ports.mp_queue, C.OFPMP_GROUP: self.groups.mp_group,
            C.OFPMP_GROUP_DESC: self.groups.mp_group_desc, C.OFPMP_GROUP_FEATURES: self.groups.mp_group_features,
            C.OFPMP_METER: self.meters.mp_meter, C.OFPMP_METER_CONFIG: self.meters.mp_meter_config,
            C.OFPMP_METER_FEATURES: self.meters.mp_meter_features,
        }

    @property
    def dpid(self) -> int:
        """The datapath id features replies carry: the config's ``openflow.datapath_id``, or the
        hash of the bridge name (config.default_datapath_id)."""
        return self.br.config.datapath_id

    @property
    def stats(self) -> dict[str, int]:
        return {"flow_mods": self.flows.n_flow_mods, "packet_ins": self.packets.n_packet_ins,
                "errors": self.n_errors}

    # -- lifetime
    async def start(self) -> None:
        self.ports.start()
        self.br.set_packet_in_hook(self.on_packet_in)
        self.br.pipeline.take_removed()               # rules that left before: nobody to tell
        if self.cfg.fail_mode == "secure" and not self.br.config.flows:
            self.flows.remove_default_rule()
        if self.cfg.fail_mode == "standalone" and self.cfg.controllers:
            self.flows.set_fail_open(True)
        for lst in [self.mgmt, *self.listeners]:
            await lst.start()
        for c in self.controllers:
            c.start()

    async def stop(self) -> None:
        self.stopping = True
        if self._pass_timer is not None:
            self._pass_timer.cancel()
        if self._sliced is not None:
            self._sliced.cancel()
        for c in self.controllers:
            await c.stop()
        for lst in [self.mgmt, *self.listeners]:
            await lst.stop()
        for conn in list(self.conns):
            conn.close()
        self.br.set_packet_in_hook(None)

    def primaries(self) -> list[OFConnection]:
        return [c for c in self.conns if c.kind == "primary"]

    def is_mgmt(self, conn: OFConnection) -> bool:
        """Is CONN made to the bridge's .mgmt socket?  As Open vSwitch's management connections,
        those take no ``controller_rate_limit`` (the packet-in queue cap holds for them too)."""
        return conn.kind == "service" and conn.name == self.mgmt.target

    # -- changes by reload (reconfig.py)
    async def stop_listener(self, target: str) -> None:
        """The listener TARGET stops, and the connections made to it close (as Open vSwitch
        closes an ofservice's connections with it)."""
        for lst in [x for x in self.listeners if x.target == target]:
            self.listeners.remove(lst)
            await lst.stop()
        for conn in [c for c in self.conns if c.kind == "service" and c.name == target]:
            conn.error = "its listener was removed"
            conn.close()

    def reconnect(self, why: str) -> int:
        """Close every connection, controllers' and listeners' (the .mgmt's too), as Open
        vSwitch does when the datapath id changes: OpenFlow has no message that tells a
        controller, so it learns the new id from the features reply of its next connection.
        Controllers reconnect after their backoff; how many connections were closed."""
        conns = list(self.conns)
        for conn in conns:
            log(f"{self.name}: {why}: disconnecting {conn.name}")
            conn.error = why
            conn.close()
        return len(conns)

    # -- connection events
    def connected(self, conn: OFConnection) -> None:
        self.conns.add(conn)
        if conn.kind == "primary":
            log(f"{self.name}: connected to controller {conn.name}, OpenFlow {'1.3' if conn.version == V13 else '1.0'}")
        if conn.kind == "primary" and self.flows.fail_open:
            self.flows.set_fail_open(False)
        self._update_table_miss()

    def disconnected(self, conn: OFConnection) -> None:
        self.conns.discard(conn)
        if conn.kind == "primary" and not self.stopping:
            log(f"{self.name}: controller {conn.name} disconnected")
            if not self.primaries() and self.cfg.fail_mode == "standalone":
                self.flows.set_fail_open(True)
            self._update_table_miss()

    def _update_table_miss(self) -> None:
        """A table miss is a packet-in under OpenFlow 1.0 and a drop under 1.3: as Open vSwitch,
        misses go to the controllers while any controller connection speaks 1.0."""
        want = any(c.version == V10 for c in self.primaries())
        self.tables.set_miss_to_controller(want, revalidate=not self.stopping)

    # -- messages
    def handle_batch(self, conn: OFConnection, batch) -> None:
        i, n = 0, len(batch)
        while i < n:
            raw, msg = batch[i]
            if msg is None:                           # 1.3 flow-mods the connection left undecoded:
                j = i + 1                             # the run of them, applied in order
                while j < n and batch[j][1] is None:
                    j += 1
                for bad, exc in self.flows.flow_mod_run(conn, [r for r, _ in batch[i:j]],
                                                        lambda: self._may_modify(conn)):
                    self._failed(conn, bad, None, exc)
                i = j
                continue
            i += 1
            try:
                if isinstance(msg, OFPError):
                    if conn.version == V10 and raw[1] == C.OFPT10_STATS_REQUEST and raw[8:10] == b"\0\x0d":
                        # Open vSwitch's OpenFlow 1.0 port-desc stats (type 13), which the codec
                        # does not know as 1.0: ovs-ofctl dump-ports-desc sends it.
                        req = MultipartRequest(type=C.OFPMP_PORT_DESC, version=V10,
                                               xid=struct.unpack_from("!I", raw, 4)[0])
                        self._send_multipart(conn, req, self.ports.desc(V10))
                        continue
                    raise msg
                self._dispatch(conn, msg, raw)
            except Exception as e:
                self._failed(conn, raw, msg, e)
        # A barrier last: its async messages were polled before its reply, and nothing came since.
        self.sync(poll=not (n and isinstance(batch[-1][1], BarrierRequest)))

    def _failed(self, conn: OFConnection, raw: bytes, msg, e: Exception) -> None:
        """Handling RAW (decoded as MSG, None when it was not) raised E: its error to CONN, with
        its xid and first 64 bytes."""
        xid = struct.unpack_from("!I", raw, 4)[0]
        self.n_errors += 1
        if isinstance(e, OFPError):
            e.data = e.data or raw[:64]
            conn.send_error(e, xid=xid)
        elif isinstance(e, MatchError):               # a match the codec let through that the pipeline refuses
            code = C.OFPBMC_BAD_PREREQ if e.alternatives else C.OFPBMC_BAD_VALUE
            conn.send_error(OFPError(C.OFPET_BAD_MATCH, code, raw[:64]), xid=xid)
        else:                                         # our bug: say so, answer EPERM, keep serving
            what = type(msg).__name__ if msg is not None else "FlowMod"
            log(f"{self.name}: handling {what} failed: {type(e).__name__}: {e}", exc_info=(type(e), e, e.__traceback__))
            conn.send_error(OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_EPERM, raw[:64]), xid=xid)

    def sync(self, poll: bool = True) -> None:
        """After a batch: the async messages it caused (unless POLL is false: polled already),
        and a revalidation if rules changed."""
        if poll:
            self.poll_events()
        self._kick()

    def _note_change(self) -> None:
        """Rules, groups, meters or ports changed: the cached megaflows must follow (``_kick``)."""
        self.changed = True

    def _kick(self, now_if_due: bool = False) -> None:
        """Bring the cached megaflows in line with changed rules: at once when the last pass
        was long enough ago, else soon.  Passes cost O(rules) (expiry) plus O(megaflows), so
        they are spaced to take at most a fifth of the loop's time while flow-mods stream in
        (ovs-ofctl add-flows sends a barrier after every flow-mod).  With no megaflow cached
        there is nothing to correct: the periodic pass takes the change records."""
        if not self.changed:
            return
        if not self.br.caches_megaflows():
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
        """The pass: at once when the last one was short; in steps of ``udpif.PASS_STEP_S``, a
        loop turn between two, when it took over SLICED_PASS_S (thousands of exact-match flows under a miss
        storm: 120 ms, which a barrier after every flow-mod made a stall of the whole loop
        every half second)."""
        self._pass_timer = None
        if self._sliced is not None:              # one runs: it kicks again at its end
            return
        self.changed = False
        if self.last_pass_cost > SLICED_PASS_S:
            self._sliced = asyncio.get_running_loop().create_task(self._sliced_pass())
            return
        t0 = time.monotonic()
        self.br.revalidate()
        self.last_pass_end = time.monotonic()
        self.last_pass_cost = self.last_pass_end - t0
        self.poll_events()

    async def _sliced_pass(self) -> None:
        spent = 0.0
        try:
            steps = udpif.pass_slices(self.br.backer, fresh=True)
            done = object()
            while True:
                t0 = time.monotonic()
                step = next(steps, done)
                spent += time.monotonic() - t0
                if step is done:
                    break
                await asyncio.sleep(0)
        finally:
            self._sliced = None
        self.last_pass_end = time.monotonic()
        self.last_pass_cost = spent
        self.poll_events()
        self._kick()

    @staticmethod
    def _may_modify(conn: OFConnection) -> None:
        """OFPBRC_IS_SLAVE if CONN may not change the switch (its role is slave)."""
        if conn.role == C.OFPCR_ROLE_SLAVE:
            raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_IS_SLAVE)

    def _dispatch(self, conn: OFConnection, msg: Message, raw: bytes) -> None:
        if isinstance(msg, MODIFYING):
            self._may_modify(conn)
        handler = self.handlers.get(type(msg))
        if handler is None:
            if isinstance(msg, Experimenter):
                if (conn.version == V10 and msg.experimenter == C.NX_VENDOR_ID and msg.exp_type == NXT_FLOW_MOD_TABLE_ID
                        and len(msg.data) == 8):
                    conn.table_id_ext = bool(msg.data[0])   # ovs-ofctl's "OpenFlow10+table_id"
                    return
                if msg.experimenter == C.NX_VENDOR_ID:
                    self._nicira(conn, msg)
                    return
                raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_EXPERIMENTER)
            raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_TYPE)
        handler(conn, msg)

    def _nicira(self, conn: OFConnection, msg: Experimenter) -> None:
        """Nicira's extension messages (openflow/nx.py): in OpenFlow 1.0 the NXM flow format and
        NXT_FLOW_MOD; in any version the packet-in format and the controller id."""
        if msg.exp_type == nx.NXT_SET_PACKET_IN_FORMAT:
            if len(msg.data) != 4:
                raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_LEN)
            fmt = struct.unpack("!I", msg.data)[0]
            if fmt not in (nx.NXPIF_STANDARD, nx.NXPIF_NXT_PACKET_IN, nx.NXPIF_NXT_PACKET_IN2):
                raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_EPERM)
            conn.packet_in_format = fmt
        elif msg.exp_type == nx.NXT_SET_CONTROLLER_ID:
            if len(msg.data) != 8:
                raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_LEN)
            conn.controller_id = struct.unpack_from("!H", msg.data, 6)[0]
        elif conn.version != V10:
            raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_EXP_TYPE)
        elif msg.exp_type == nx.NXT_SET_FLOW_FORMAT and len(msg.data) == 4:
            fmt = struct.unpack("!I", msg.data)[0]
            if fmt not in (nx.NXFF_OPENFLOW10, nx.NXFF_NXM):
                raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_EPERM)
            conn.nxm = fmt == nx.NXFF_NXM
        elif msg.exp_type == nx.NXT_FLOW_MOD:
            self.flows.flow_mod(conn, nx.decode_flow_mod(msg.data))
            self.poll_events()
        else:
            raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_EXP_TYPE)

    def _reply(self, conn: OFConnection, req: Message, reply: Message) -> None:
        reply.xid = req.xid
        conn.send_msg(reply)

    # features, config, barrier, roles, async
    def _features(self, conn, msg):
        if conn.version == V10:
            ports = tuple(self.ports.desc(V10))
            reply = FeaturesReply(datapath_id=self.dpid, n_buffers=0, n_tables=N_TABLES,
                                  capabilities=CAPABILITIES_V10, actions=(1 << 12) - 1, ports=ports)
        else:
            reply = FeaturesReply(datapath_id=self.dpid, n_buffers=0, n_tables=N_TABLES,
                                  capabilities=CAPABILITIES_V13)
        self._reply(conn, msg, reply)

    def _get_config(self, conn, msg):
        flags = self.frag_flags | (OFPC_INVALID_TTL_TO_CONTROLLER if conn.version == V10 and conn.invalid_ttl else 0)
        self._reply(conn, msg, GetConfigReply(flags=flags, miss_send_len=conn.miss_send_len))

    def _set_config(self, conn, msg):
        if msg.flags & C.OFPC_FRAG_MASK == C.OFPC_FRAG_REASM:
            raise OFPError(C.OFPET_SWITCH_CONFIG_FAILED, C.OFPSCFC_BAD_FLAGS)
        self.frag_flags = msg.flags & C.OFPC_FRAG_MASK
        conn.miss_send_len = msg.miss_send_len
        if conn.version == V10:
            conn.invalid_ttl = bool(msg.flags & OFPC_INVALID_TTL_TO_CONTROLLER)

    def _barrier(self, conn, msg):
        self.poll_events()                     # rules changed before it are in the tables already
        self._kick(now_if_due=True)            # and in the datapath's cache, unless a pass just ran
        v = conn.version                       # the reply: a header alone (encode(BarrierReply()) packed directly)
        conn.send(HEADER.pack(v, C.OFPT_BARRIER_REPLY if v == V13 else C.OFPT10_BARRIER_REPLY, HEADER.size, msg.xid))

    def _role(self, conn, msg):
        role = msg.role
        if role not in (C.OFPCR_ROLE_NOCHANGE, C.OFPCR_ROLE_EQUAL, C.OFPCR_ROLE_MASTER, C.OFPCR_ROLE_SLAVE):
            raise OFPError(C.OFPET_ROLE_REQUEST_FAILED, C.OFPRRFC_BAD_ROLE)
        if role in (C.OFPCR_ROLE_MASTER, C.OFPCR_ROLE_SLAVE):
            gen = msg.generation_id
            if self.generation_id is not None:
                diff = (gen - self.generation_id) & ((1 << 64) - 1)
                if diff >= 1 << 63:
                    raise OFPError(C.OFPET_ROLE_REQUEST_FAILED, C.OFPRRFC_STALE)
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

    # multipart
    def _multipart(self, conn, msg: MultipartRequest):
        t = msg.type
        if conn.version == V10 and t == C.OFPMP_EXPERIMENTER:
            self._nicira_stats(conn, msg)
            return
        fn = self.multipart_handlers.get(t)
        if fn is None or conn.version == V10 and t not in MULTIPART_V10:
            raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_MULTIPART)
        body = fn(conn, msg)
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

    def _nicira_stats(self, conn, msg: MultipartRequest) -> None:
        """NXST_FLOW, NXST_AGGREGATE: flows with NXM matches (ovs-ofctl dump-flows and
        dump-aggregate over OpenFlow 1.0)."""
        vendor, subtype, body = msg.body.experimenter, msg.body.exp_type, msg.body.data[4:]   # 4 pad bytes
        if vendor != C.NX_VENDOR_ID:
            raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_EXPERIMENTER)
        if subtype not in (nx.NXST_FLOW, nx.NXST_AGGREGATE):
            raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_EXP_TYPE)
        if subtype == nx.NXST_AGGREGATE:
            entries = [self.flows.nx_aggregate(*nx.decode_flow_stats_request(body))]
        else:
            entries = self.flows.nx_flow_stats(*nx.decode_flow_stats_request(body))
        parts, cur, size = [], [], 0
        for e in entries:
            if cur and size + len(e) > PART:
                parts.append(cur)
                cur, size = [], 0
            cur.append(e)
            size += len(e)
        parts.append(cur)
        for i, part in enumerate(parts):
            data = b"".join(part)
            more = C.OFPMPF_REPLY_MORE if i < len(parts) - 1 else 0
            head = nx.STATS_HEAD.pack(C.OFPMP_EXPERIMENTER, more, C.NX_VENDOR_ID, subtype)
            conn.send(HEADER.pack(V10, C.OFPT10_STATS_REPLY, HEADER.size + len(head) + len(data), msg.xid)
                      + head + data)

    def _mp_desc(self, conn, msg):
        return DescStats(mfr_desc="dpdkswitch", hw_desc="DPDK userspace datapath",
                         sw_desc=f"dpdkswitch {__version__}", serial_num="None", dp_desc=self.name)

    # -- async messages
    def _wants(self, conn: OFConnection, kind: str, reason: int) -> bool:
        if conn.kind == "service" and not conn.miss_send_len:
            return False                          # as Open vSwitch: ovs-ofctl monitor asks for them
        if conn.version == V10:
            return kind != "packet_in" or reason != C.OFPR_INVALID_TTL or conn.invalid_ttl
        mask = self._async_of(conn)[kind][1 if conn.role == C.OFPCR_ROLE_SLAVE else 0]
        return bool(mask >> reason & 1)

    def _broadcast(self, kind: str, reason: int, make) -> None:
        """MAKE(conn)'s message to every connection that wants KIND messages for REASON."""
        for conn in list(self.conns):
            if self._wants(conn, kind, reason):
                try:
                    data = make(conn)
                except (ValueError, struct.error, KeyError):
                    continue                      # not expressible in this connection's version
                if data is None:
                    continue
                if kind == "packet_in":
                    conn.send_packet_in(data)     # dropped and counted there when PACKET_IN_QUEUE_MAX wait or it is closing
                else:
                    conn.send(data)

    # -- state, for ofproto/list-controllers
    def endpoints(self) -> list[dict]:
        """Each controller and listener of the bridge with its state, as Open vSwitch's Controller
        table shows it (target, is_connected, role, status: state, sec_since_connect,
        sec_since_disconnect, last_error) plus each connection's counters; a listener lists the
        connections made to it.  Rows are dicts in display order."""
        now = time.monotonic()
        rows = []
        for c in self.controllers:
            conn = c.conn if c.conn is not None and c.conn.version is not None else None
            row: dict = {"kind": "controller", "target": c.target, "is_connected": conn is not None}
            if conn is not None:
                row["state"] = "IDLE" if conn.probe_sent else "ACTIVE"
                row.update(connection_status(conn, now))
            else:
                row["state"] = ("VOID" if c.task is None else "CONNECTING" if c.connecting or c.conn is not None
                                else "BACKOFF")
                row["attempts"] = c.attempts
                if c.disconnected_at is not None:
                    row["sec_since_disconnect"] = int(now - c.disconnected_at)
                if c.last_error:
                    row["last_error"] = c.last_error
            rows.append(row)
        for lst in [*self.listeners, self.mgmt]:
            conns = sorted((c for c in self.conns if c.kind == "service" and c.name == lst.target),
                           key=lambda c: c.connected_at or 0.0)
            row = {"kind": "listener", "target": lst.target, "listening": lst.server is not None}
            if lst.port is not None:
                row["port"] = lst.port
            row["connections"] = [connection_status(c, now) for c in conns]
            rows.append(row)
        return rows

    def on_packet_in(self, ev) -> None:
        """The upcall handler's packet-in (PacketInEvent: pi, data, in_port, key)."""
        if self.conns:
            self.packets.packet_in(ev)

    def poll_events(self) -> None:
        """Flow-removed and port-status messages for what changed since the last look."""
        self.flows.poll_removed()
        self.ports.poll_status()

    def poll_links(self) -> None:
        """Link changes (a few ``ip`` calls for ports in namespaces): each port's carrier, for
        its liveness (fast-failover groups read it whether or not a controller is connected),
        and port-status MODIFY to the connections that want it."""
        self.ports.poll_links()


def connection_status(conn: OFConnection, now: float) -> dict:
    """One negotiated connection's peer, version, role, age and counters: packet-ins dropped at
    the queue cap or to a closing connection, and (once there are any) those over
    controller_rate_limit."""
    row: dict = {}
    peer = conn.transport.get_extra_info("peername") if conn.transport is not None else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        row["peer"] = f"[{peer[0]}]:{peer[1]}" if ":" in str(peer[0]) else f"{peer[0]}:{peer[1]}"
    row.update({"version": "OpenFlow13" if conn.version == V13 else "OpenFlow10",
                "role": ROLE_NAMES.get(conn.role, str(conn.role)),
                "sec_since_connect": int(now - conn.connected_at) if conn.connected_at is not None else 0,
                "messages_in": conn.stats["rx"], "messages_out": conn.stats["tx"],
                "errors_sent": conn.stats["errors"], "packet_ins_dropped": conn.stats["packet_ins_dropped"]})
    if "packet_ins_limited" in conn.stats:      # once controller_rate_limit has dropped one
        row["packet_ins_limited"] = conn.stats["packet_ins_limited"]
    return row
