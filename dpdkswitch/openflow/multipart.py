"""Multipart (OpenFlow 1.0: stats) request and reply bodies, and ``MULTIPART``, the table that
says which body each multipart type takes.  Table-features properties and the experimenter
bodies are kept as bytes.

Pure functions; any thread; cost linear in the bytes handled.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from ..ofproto import actions as A
from . import consts as C
from .errors import OFPError
from .oxm import Match
from .records import (V10, V13, Bucket, DataTail, MatchTail, MeterBand, Port, PropertiesTail, Record, instr_tail,
                      instr_untail, pack_all)
from .wire import BAD_LEN, Layout


# --- requests -------------------------------------------------------------------------------------
@dataclass
class FlowStatsRequest(MatchTail, Record):
    """Body of flow and aggregate stats requests."""
    match: Match = field(default_factory=dict)
    table_id: int = C.OFPTT_ALL
    out_port: int = A.OFPP_ANY
    out_group: int = C.OFPG_ANY   # 1.3 only
    cookie: int = 0               # 1.3 only
    cookie_mask: int = 0          # 1.3 only
    LAYOUT = {V13: Layout("table_id:B 3x out_port:P out_group:I 4x cookie:Q cookie_mask:Q"),
              V10: Layout("match:W table_id:B 1x out_port:p")}


@dataclass
class PortStatsRequest(Record):
    port_no: int = A.OFPP_ANY
    LAYOUT = {V13: Layout("port_no:P 4x"), V10: Layout("port_no:p 6x")}


@dataclass
class QueueStatsRequest(Record):
    port_no: int = A.OFPP_ANY
    queue_id: int = 0xFFFFFFFF    # OFPQ_ALL
    LAYOUT = {V13: Layout("port_no:P queue_id:I"), V10: Layout("port_no:p 2x queue_id:I")}


@dataclass
class GroupStatsRequest(Record):
    group_id: int = C.OFPG_ALL
    LAYOUT = {V13: Layout("group_id:I 4x")}


@dataclass
class MeterStatsRequest(Record):
    """Body of meter stats and meter config requests."""
    meter_id: int = C.OFPM_ALL
    LAYOUT = {V13: Layout("meter_id:I 4x")}


@dataclass
class ExperimenterBody(DataTail, Record):
    experimenter: int = 0
    exp_type: int = 0
    data: bytes = b""
    LAYOUT = {None: Layout("experimenter:I exp_type:I")}


# --- replies --------------------------------------------------------------------------------------
@dataclass
class DescStats(Record):
    mfr_desc: str = ""
    hw_desc: str = ""
    sw_desc: str = ""
    serial_num: str = ""
    dp_desc: str = ""
    LAYOUT = {None: Layout("mfr_desc:z256 hw_desc:z256 sw_desc:z256 serial_num:z32 dp_desc:z256")}


@dataclass
class FlowStats(Record):
    table_id: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0
    priority: int = C.OFP_DEFAULT_PRIORITY
    idle_timeout: int = 0
    hard_timeout: int = 0
    flags: int = 0                # 1.3 only
    cookie: int = 0
    packet_count: int = 0
    byte_count: int = 0
    match: Match = field(default_factory=dict)
    instructions: tuple[A.Instruction, ...] = ()
    LAYOUT = {V13: Layout("_len:H table_id:B 1x duration_sec:I duration_nsec:I priority:H idle_timeout:H "
                          "hard_timeout:H flags:H 4x cookie:Q packet_count:Q byte_count:Q"),
              V10: Layout("_len:H table_id:B 1x match:W duration_sec:I duration_nsec:I priority:H idle_timeout:H "
                          "hard_timeout:H 6x cookie:Q packet_count:Q byte_count:Q")}
    LEN_AT = 0

    def _tail(self, version):
        return instr_tail(version, self.match, self.instructions)

    @classmethod
    def _untail(cls, version, tail, kw):
        instr_untail(version, tail, kw)


@dataclass
class AggregateStats(Record):
    packet_count: int = 0
    byte_count: int = 0
    flow_count: int = 0
    LAYOUT = {None: Layout("packet_count:Q byte_count:Q flow_count:I 4x")}


@dataclass
class TableStats(Record):
    table_id: int = 0
    active_count: int = 0
    lookup_count: int = 0
    matched_count: int = 0
    name: str = ""                # 1.0 only
    wildcards: int = 0            # 1.0 only
    max_entries: int = 0          # 1.0 only
    LAYOUT = {V13: Layout("table_id:B 3x active_count:I lookup_count:Q matched_count:Q"),
              V10: Layout("table_id:B 3x name:z32 wildcards:I max_entries:I active_count:I lookup_count:Q "
                          "matched_count:Q")}


_PORT_COUNTERS = ("rx_packets:Q tx_packets:Q rx_bytes:Q tx_bytes:Q rx_dropped:Q tx_dropped:Q rx_errors:Q "
                  "tx_errors:Q rx_frame_err:Q rx_over_err:Q rx_crc_err:Q collisions:Q")


@dataclass
class PortStats(Record):
    port_no: int = 0
    rx_packets: int = 0
    tx_packets: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_dropped: int = 0
    tx_dropped: int = 0
    rx_errors: int = 0
    tx_errors: int = 0
    rx_frame_err: int = 0
    rx_over_err: int = 0
    rx_crc_err: int = 0
    collisions: int = 0
    duration_sec: int = 0         # 1.3 only
    duration_nsec: int = 0        # 1.3 only
    LAYOUT = {V13: Layout(f"port_no:P 4x {_PORT_COUNTERS} duration_sec:I duration_nsec:I"),
              V10: Layout(f"port_no:p 6x {_PORT_COUNTERS}")}


@dataclass
class QueueStats(Record):
    port_no: int = 0
    queue_id: int = 0
    tx_bytes: int = 0
    tx_packets: int = 0
    tx_errors: int = 0
    duration_sec: int = 0         # 1.3 only
    duration_nsec: int = 0        # 1.3 only
    LAYOUT = {V13: Layout("port_no:P queue_id:I tx_bytes:Q tx_packets:Q tx_errors:Q duration_sec:I duration_nsec:I"),
              V10: Layout("port_no:p 2x queue_id:I tx_bytes:Q tx_packets:Q tx_errors:Q")}


def _pairs_tail(pairs) -> bytes:
    return b"".join(struct.pack("!QQ", *p) for p in pairs)


def _pairs_untail(tail: bytes) -> tuple[tuple[int, int], ...]:
    if len(tail) % 16:
        raise OFPError(*BAD_LEN)
    return tuple(struct.iter_unpack("!QQ", tail))


@dataclass
class GroupStats(Record):
    group_id: int = 0
    ref_count: int = 0
    packet_count: int = 0
    byte_count: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0
    bucket_stats: tuple[tuple[int, int], ...] = ()    # (packet_count, byte_count) per bucket
    LAYOUT = {V13: Layout("_len:H 2x group_id:I ref_count:I 4x packet_count:Q byte_count:Q duration_sec:I "
                          "duration_nsec:I")}
    LEN_AT = 0

    def _tail(self, version):
        return _pairs_tail(self.bucket_stats)

    @classmethod
    def _untail(cls, version, tail, kw):
        kw["bucket_stats"] = _pairs_untail(tail)


@dataclass
class GroupDesc(Record):
    type: int = C.OFPGT_ALL
    group_id: int = 0
    buckets: tuple[Bucket, ...] = ()
    LAYOUT = {V13: Layout("_len:H type:B 1x group_id:I")}
    LEN_AT = 0

    def _tail(self, version):
        return pack_all(self.buckets, version)

    @classmethod
    def _untail(cls, version, tail, kw):
        kw["buckets"] = Bucket.unpack_array(version, tail)


@dataclass
class GroupFeatures(Record):
    types: int = 0
    capabilities: int = 0
    max_groups: tuple[int, int, int, int] = (0, 0, 0, 0)
    actions: tuple[int, int, int, int] = (0, 0, 0, 0)
    LAYOUT = {V13: Layout("types:I capabilities:I max_groups:4I actions:4I")}


@dataclass
class MeterStats(Record):
    meter_id: int = 0
    flow_count: int = 0
    packet_in_count: int = 0
    byte_in_count: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0
    band_stats: tuple[tuple[int, int], ...] = ()      # (packet_band_count, byte_band_count)
    LAYOUT = {V13: Layout("meter_id:I _len:H 6x flow_count:I packet_in_count:Q byte_in_count:Q duration_sec:I "
                          "duration_nsec:I")}
    LEN_AT = 4

    def _tail(self, version):
        return _pairs_tail(self.band_stats)

    @classmethod
    def _untail(cls, version, tail, kw):
        kw["band_stats"] = _pairs_untail(tail)


@dataclass
class MeterConfig(Record):
    flags: int = 0
    meter_id: int = 0
    bands: tuple[MeterBand, ...] = ()
    LAYOUT = {V13: Layout("_len:H flags:H meter_id:I")}
    LEN_AT = 0

    def _tail(self, version):
        return pack_all(self.bands, version)

    @classmethod
    def _untail(cls, version, tail, kw):
        kw["bands"] = MeterBand.unpack_array(version, tail)


@dataclass
class MeterFeatures(Record):
    max_meter: int = 0
    band_types: int = 0
    capabilities: int = 0
    max_bands: int = 0
    max_color: int = 0
    LAYOUT = {V13: Layout("max_meter:I band_types:I capabilities:I max_bands:B max_color:B 2x")}


@dataclass
class TableFeatures(PropertiesTail, Record):
    """One table's features; ``properties`` kept as encoded (property TLVs, each padded to 8)."""
    table_id: int = 0
    name: str = ""
    metadata_match: int = 0
    metadata_write: int = 0
    config: int = 0
    max_entries: int = 0
    properties: bytes = b""
    LAYOUT = {V13: Layout("_len:H table_id:B 5x name:z32 metadata_match:Q metadata_write:Q config:I max_entries:I")}
    LEN_AT = 0


# (multipart type, is reply) -> body: None (empty), a Record class (one), or [Record class] (array).
MULTIPART: dict[tuple[int, bool], Any] = {
    (C.OFPMP_DESC, False): None, (C.OFPMP_DESC, True): DescStats,
    (C.OFPMP_FLOW, False): FlowStatsRequest, (C.OFPMP_FLOW, True): [FlowStats],
    (C.OFPMP_AGGREGATE, False): FlowStatsRequest, (C.OFPMP_AGGREGATE, True): AggregateStats,
    (C.OFPMP_TABLE, False): None, (C.OFPMP_TABLE, True): [TableStats],
    (C.OFPMP_PORT_STATS, False): PortStatsRequest, (C.OFPMP_PORT_STATS, True): [PortStats],
    (C.OFPMP_QUEUE, False): QueueStatsRequest, (C.OFPMP_QUEUE, True): [QueueStats],
    (C.OFPMP_GROUP, False): GroupStatsRequest, (C.OFPMP_GROUP, True): [GroupStats],
    (C.OFPMP_GROUP_DESC, False): None, (C.OFPMP_GROUP_DESC, True): [GroupDesc],
    (C.OFPMP_GROUP_FEATURES, False): None, (C.OFPMP_GROUP_FEATURES, True): GroupFeatures,
    (C.OFPMP_METER, False): MeterStatsRequest, (C.OFPMP_METER, True): [MeterStats],
    (C.OFPMP_METER_CONFIG, False): MeterStatsRequest, (C.OFPMP_METER_CONFIG, True): [MeterConfig],
    (C.OFPMP_METER_FEATURES, False): None, (C.OFPMP_METER_FEATURES, True): MeterFeatures,
    (C.OFPMP_TABLE_FEATURES, False): [TableFeatures], (C.OFPMP_TABLE_FEATURES, True): [TableFeatures],
    (C.OFPMP_PORT_DESC, False): None, (C.OFPMP_PORT_DESC, True): [Port],
    (C.OFPMP_EXPERIMENTER, False): ExperimenterBody, (C.OFPMP_EXPERIMENTER, True): ExperimenterBody,
}
MULTIPART10 = {C.OFPMP_DESC, C.OFPMP_FLOW, C.OFPMP_AGGREGATE, C.OFPMP_TABLE, C.OFPMP_PORT_STATS, C.OFPMP_QUEUE,
               C.OFPMP_EXPERIMENTER}   # the OFPST_* of OpenFlow 1.0
