"""The bridge's meters as OpenFlow changes and reads them: meter-mod (add, modify, delete; drop
bands, rates in kb/s or packets/s, bursts), meter stats, meter config and meter features.
The datapath runs one token bucket per meter, at the lowest band's rate.

Contract: the control thread's asyncio loop (it programs the datapath's meters).  Cost: a
meter-mod is one datapath call; deleting a meter scans the rules for those that use it, and
meter stats scan the rules for each meter's flow count.
"""
from __future__ import annotations

import time

from ..datapath import DatapathError
from ..ofproto import actions as A
from ..ofproto.flowstr import FlowSpec
from ..ofproto.pipeline import MeterEntry
from ..openflow import consts as C
from ..openflow.errors import OFPError
from ..openflow.message import MeterMod
from ..openflow.multipart import MeterConfig, MeterFeatures, MeterStats
from ..openflow.records import MeterBand
from .duration import split_time

MAX_METERS = 4096                             # the datapath's (DPS_MAX_METERS): ids 1..4095


class MeterManager:
    """One bridge's meters, for its OpenFlow switch.  CHANGED() says the meters changed (the
    switch brings the cached megaflows in line)."""

    def __init__(self, br, changed):
        self.br = br
        self.changed = changed
        self.info: dict[int, tuple[int, float, tuple[MeterBand, ...]]] = {}   # id -> (flags, created, bands)

    def meter_mod(self, conn, msg: MeterMod):
        mid, p, dp = msg.meter_id, self.br.pipeline, self.br.dp
        if msg.command == C.OFPMC_DELETE:
            ids = list(p.meters) if mid == C.OFPM_ALL else [mid]
            if mid != C.OFPM_ALL and not 0 < mid <= C.OFPM_MAX:
                raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_INVALID_METER)
            for m in ids:
                if p.meters.pop(m, None) is None:
                    continue
                self.info.pop(m, None)
                for e in [e for e in p.entries() if any(isinstance(i, A.Meter) and i.meter_id == m
                                                        for i in e.instructions)]:
                    p.delete(FlowSpec(match=e.match, table_id=e.table_id, priority=e.priority), strict=True)
                try:
                    dp.meter_del(m)
                except DatapathError:
                    pass
                self.changed()
            return
        if not 0 < mid <= C.OFPM_MAX:
            raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_INVALID_METER)
        if mid >= MAX_METERS:
            raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_OUT_OF_METERS)
        flags = msg.flags
        if flags & ~(C.OFPMF_KBPS | C.OFPMF_PKTPS | C.OFPMF_BURST | C.OFPMF_STATS) or (
                flags & C.OFPMF_KBPS and flags & C.OFPMF_PKTPS):
            raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_BAD_FLAGS)
        if not msg.bands:
            raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_BAD_BAND)
        for b in msg.bands:
            if b.type != C.OFPMBT_DROP:
                raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_BAD_BAND)
            if b.rate == 0:
                raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_BAD_RATE)
            if b.burst_size and not flags & C.OFPMF_BURST:
                raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_BAD_BURST)
        if msg.command == C.OFPMC_ADD and mid in p.meters:
            raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_METER_EXISTS)
        if msg.command == C.OFPMC_MODIFY and mid not in p.meters:
            raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_UNKNOWN_METER)
        pktps = bool(flags & C.OFPMF_PKTPS)
        band = min(msg.bands, key=lambda b: b.rate)
        burst = band.burst_size if flags & C.OFPMF_BURST else 0
        try:
            dp.meter_set(mid, band.rate, burst, pktps)
        except DatapathError:
            raise OFPError(C.OFPET_METER_MOD_FAILED, C.OFPMMFC_OUT_OF_METERS) from None
        p.meters[mid] = MeterEntry(mid, pktps, [(b.rate, b.burst_size) for b in msg.bands])
        created = self.info.get(mid, (0, time.monotonic(), ()))[1]
        self.info[mid] = (flags, created, tuple(msg.bands))
        p.version += 1
        self.changed()

    def _wanted(self, want: int) -> list[int]:
        return sorted(m for m in self.br.pipeline.meters if want in (C.OFPM_ALL, m))

    def mp_meter(self, conn, msg):
        now = time.monotonic()
        out = []
        for mid in self._wanted(msg.body.meter_id):
            try:
                packets, dropped = self.br.dp.meter_stats(mid)
            except DatapathError:
                packets = dropped = 0
            flags, created, bands = self.info.get(mid, (0, now, ()))
            sec, nsec = split_time(now - created)
            flows = sum(1 for e in self.br.pipeline.entries()
                        if any(isinstance(i, A.Meter) and i.meter_id == mid for i in e.instructions))
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
                             max_bands=1, max_color=0)
