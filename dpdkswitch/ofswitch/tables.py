"""The bridge's flow tables as OpenFlow shows them: table-mod, table stats, table features, and
what a table miss does (a drop under OpenFlow 1.3; a packet-in while an OpenFlow 1.0 controller
is connected, as Open vSwitch).

Contract: the control thread's asyncio loop (``TableManager`` runs a revalidation pass when the
table-miss behaviour changes).  Cost: table stats and features are O(tables); a change of the
table-miss behaviour is a full revalidation pass.
"""
from __future__ import annotations

import struct

from ..ofproto import fields as F
from ..ofproto.pipeline import DEFAULT_FLOW_LIMIT, N_TABLES
from ..openflow import consts as C
from ..openflow.errors import OFPError
from ..openflow.multipart import TableFeatures, TableStats
from ..openflow.oxm import oxm_maskable, oxm_width
from ..switch import Bridge
from .actions import ACTION_TYPES

V10 = C.OFP10_VERSION
INSTRUCTION_TYPES = (C.OFPIT_GOTO_TABLE, C.OFPIT_WRITE_METADATA, C.OFPIT_WRITE_ACTIONS, C.OFPIT_APPLY_ACTIONS,
                     C.OFPIT_CLEAR_ACTIONS, C.OFPIT_METER)


def _prop(type_: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return struct.pack("!HH", type_, n) + payload + bytes((8 - n % 8) % 8)


def _oxm_header(f: F.Field, masked: bool = False) -> int:
    cls, fid = f.oxm
    w = oxm_width(f)
    return cls << 16 | fid << 9 | int(masked) << 8 | (2 * w if masked else w)


def table_features(table_id: int, max_entries: int = DEFAULT_FLOW_LIMIT) -> TableFeatures:
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
                         metadata_write=(1 << 64) - 1, config=0, max_entries=max_entries, properties=props)


class TableManager:
    """One bridge's tables, for its OpenFlow switch."""

    def __init__(self, br: Bridge):
        self.br = br
        self.pipeline = br.pipeline

    def set_miss_to_controller(self, want: bool, revalidate: bool) -> None:
        """Table misses become packet-ins (WANT) or drops; the cached misses follow (a pass now
        when REVALIDATE)."""
        if self.pipeline.set_miss_to_controller(want) and revalidate:
            self.br.revalidate()

    def table_mod(self, conn, msg):
        if msg.table_id >= N_TABLES and msg.table_id != C.OFPTT_ALL:
            raise OFPError(C.OFPET_TABLE_MOD_FAILED, C.OFPTMFC_BAD_TABLE)
        if msg.config & ~3:
            raise OFPError(C.OFPET_TABLE_MOD_FAILED, C.OFPTMFC_BAD_CONFIG)

    def mp_table(self, conn, msg):
        tables = self.pipeline.tables
        if conn.version == V10:
            return [TableStats(table_id=t.table_id, active_count=t.cls.n_rules, lookup_count=t.lookups,
                               matched_count=t.matches, name=f"table{t.table_id}", wildcards=C.OFPFW10_ALL,
                               max_entries=t.flow_limit) for t in tables]
        return [TableStats(table_id=t.table_id, active_count=t.cls.n_rules, lookup_count=t.lookups,
                           matched_count=t.matches) for t in tables]

    def mp_table_features(self, conn, msg):
        if msg.body:
            raise OFPError(C.OFPET_TABLE_FEATURES_FAILED, C.OFPTFFC_EPERM)
        return [table_features(t.table_id, t.flow_limit) for t in self.pipeline.tables]
