"""The bridge's meters as OpenFlow changes and reads them: meter-mod (add, modify, delete; up to
``MAX_BANDS`` drop bands, as Open vSwitch's userspace datapath; rates in kb/s or packets/s,
bursts), meter stats, meter config and meter features.  The datapath runs one token bucket per
meter, at the lowest band's rate.  The two meters of the slow path, ``OFPM_CONTROLLER`` (the
bridge's packet-ins, to all its controllers) and ``OFPM_SLOWPATH`` (the bridge's misses), are
the pipeline's (``SlowPathMeter``: a bucket per band, as Open vSwitch's userspace datapath),
not the datapath's; their stats are its counters.

The pipeline owns the meter table and the bridge keeps the datapath's meters in step with it
(``Bridge.meter_mod``); this checks what OpenFlow forbids first (ids, flags, bands) and keeps
each meter's flags, bands and creation time for meter config and stats.

Contract: the control thread's asyncio loop (through the bridge, it programs the datapath's
meters).  Cost: a meter-mod is one datapath call; deleting a meter scans the rules for those
that use it, and meter stats scan the rules for each meter's flow count.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from ..datapath import DatapathError
from ..ofproto.pipeline import SLOW_PATH_METERS, FlowModError, MeterEntry
from ..openflow import consts as C
from ..openflow.errors import OFPError
from ..openflow.message import MeterMod
from ..openflow.multipart import MeterConfig, MeterFeatures, MeterStats
from ..openflow.records import MeterBand
from ..switch import Bridge
from .duration import split_time

MAX_METERS = 4096                             # the datapath's (DPS_MAX_METERS): ids 1..4095
MAX_BANDS = 8                                 # bands per meter, as Open vSwitch's userspace datapath


class MeterManager:
    """One bridge's meters, for its OpenFlow switch.  CHANGED() says the meters changed (the
    switch brings the cached megaflows in line)."""

    def __init__(self, br: Bridge, changed: Callable[[], None]):
        self.br = br
        self.pipeline = br.pipeline
        self.changed = changed
        self.info: dict[int, tuple[int, float, tuple[MeterBand, ...]]] = {}   # id -> (flags, created, bands)

    def meter_mod(self, conn, msg: MeterMod):
        mid = msg.meter_id
        if msg.command == C.OFPMC_DELETE:
            if mid != C.OFPM_ALL and not 0 < mid <= C.OFPM_MAX and mid not in SLOW_PATH_METERS:
                raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_INVALID_METER)
            for m in self.br.meter_mod("delete", MeterEntry(mid, False, [])):
                self.info.pop(m, None)
                self.changed()
            return
        if not 0 < mid <= C.OFPM_MAX and mid not in SLOW_PATH_METERS:
            raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_INVALID_METER)
        if MAX_METERS <= mid <= C.OFPM_MAX:
            raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_OUT_OF_METERS)
        flags = msg.flags
        if flags & ~(C.OFPMF_KBPS | C.OFPMF_PKTPS | C.OFPMF_BURST | C.OFPMF_STATS) or (
                flags & C.OFPMF_KBPS and flags & C.OFPMF_PKTPS):
            raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_BAD_FLAGS)
        if not msg.bands:
            raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_BAD_BAND)
        if len(msg.bands) > MAX_BANDS:
            raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_OUT_OF_BANDS)
        for b in msg.bands:
            if b.type != C.OFPMBT_DROP:
                raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_BAD_BAND)
            if b.rate == 0:
                raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_BAD_RATE)
            if b.burst_size and not flags & C.OFPMF_BURST:     # so without the flag every burst is 0
                raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_BAD_BURST)
        meter = MeterEntry(mid, bool(flags & C.OFPMF_PKTPS), [(b.rate, b.burst_size) for b in msg.bands])
        command = "add" if msg.command == C.OFPMC_ADD else "modify"
        try:
            if mid in SLOW_PATH_METERS:               # the slow path's: the pipeline runs it
                self.pipeline.meter_mod(command, meter)
            else:
                self.br.meter_mod(command, meter)
        except FlowModError as e:
            raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_METER_EXISTS if e.kind == "meter_exists"
                           else C.OFPMMFC_UNKNOWN_METER) from None
        except DatapathError:
            raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_OUT_OF_METERS) from None
        created = self.info.get(mid, (0, time.monotonic(), ()))[1]
        self.info[mid] = (flags, created, tuple(msg.bands))
        self.changed()

    def _wanted(self, want: int) -> list[int]:
        return sorted(m for m in self.pipeline.meters if want in (C.OFPM_ALL, m))

    def mp_meter(self, conn, msg):
        now = time.monotonic()
        out = []
        for mid in self._wanted(msg.body.meter_id):
            _, created, bands = self.info.get(mid, (0, now, ()))
            sec, nsec = split_time(now - created)
            slow = self.pipeline.slow_meters.get(mid)
            if slow is not None:
                out.append(MeterStats(meter_id=mid, flow_count=0, packet_in_count=slow.packets,
                                      byte_in_count=slow.bytes, duration_sec=sec, duration_nsec=nsec,
                                      band_stats=tuple(zip(slow.band_packets, slow.band_bytes))))
                continue
            try:
                packets, dropped = self.br.meter_stats(mid)
            except DatapathError:
                packets = dropped = 0
            flows = sum(1 for e in self.pipeline.entries() if e.uses_meter(mid))
            low = min(range(len(bands)), key=lambda i: bands[i].rate) if bands else None
            out.append(MeterStats(meter_id=mid, flow_count=flows, packet_in_count=packets, byte_in_count=0,
                                  duration_sec=sec, duration_nsec=nsec,
                                  band_stats=tuple((dropped if i == low else 0, 0) for i in range(len(bands)))))
        return out

    def mp_meter_config(self, conn, msg):
        out = []
        for mid in self._wanted(msg.body.meter_id):
            flags, _, bands = self.info.get(mid, (0, 0, ()))
            out.append(MeterConfig(flags=flags, meter_id=mid, bands=bands))
        return out

    def mp_meter_features(self, conn, msg):
        return MeterFeatures(max_meter=MAX_METERS - 1, band_types=1 << C.OFPMBT_DROP,
                             capabilities=C.OFPMF_KBPS | C.OFPMF_PKTPS | C.OFPMF_BURST | C.OFPMF_STATS,
                             max_bands=MAX_BANDS, max_color=0)
