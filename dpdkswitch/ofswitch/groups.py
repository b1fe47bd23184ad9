"""The bridge's groups as OpenFlow changes and reads them: group-mod (add, modify, delete; all,
select, indirect and fast-failover groups), group stats, group desc and group features.  The
pipeline owns the group table (``Pipeline.group_mod``); this checks what OpenFlow forbids
first (ids, weights, watches, loops) and keeps when each group was made.

Contract: the control thread's asyncio loop.  Cost: a group-mod checks its buckets' group
actions (O(groups reached)) and, on delete, scans the rules for those that use the group;
group stats scan the rules for each group's reference count.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from ..ofproto import actions as A
from ..ofproto.pipeline import Bucket as PBucket
from ..ofproto.pipeline import FlowModError, GroupEntry
from ..openflow import consts as C
from ..openflow.errors import OFPError
from ..openflow.message import GroupMod
from ..openflow.multipart import GroupDesc, GroupFeatures, GroupStats
from ..openflow.records import Bucket
from ..switch import Bridge
from .actions import ACTION_TYPES, check_actions
from .duration import split_time

MAX_GROUPS = 65535
GROUP_TYPES = {C.OFPGT_ALL: "all", C.OFPGT_SELECT: "select", C.OFPGT_INDIRECT: "indirect", C.OFPGT_FF: "ff"}
GROUP_TYPE_NUM = {v: k for k, v in GROUP_TYPES.items()}


class GroupManager:
    """One bridge's groups, for its OpenFlow switch.  CHANGED() says the groups changed (the
    switch brings the cached megaflows in line)."""

    def __init__(self, br: Bridge, changed: Callable[[], None]):
        self.pipeline = br.pipeline
        self.changed = changed
        self.created: dict[int, float] = {}       # group id -> when added or last modified (monotonic)

    def group_mod(self, conn, msg: GroupMod):
        gid, p = msg.group_id, self.pipeline
        if msg.command == C.OFPGC_DELETE:
            if gid > C.OFPG_MAX and gid not in (C.OFPG_ALL, C.OFPG_ANY):
                raise OFPError(C.OFPET_GROUP_MOD_FAILED, C.OFPGMFC_INVALID_GROUP)
            if gid == C.OFPG_ANY:
                return
            p.group_mod("delete", GroupEntry(gid, "all", []))
            for g in ([gid] if gid != C.OFPG_ALL else list(self.created)):
                self.created.pop(g, None)
            self.changed()
            return
        if gid > C.OFPG_MAX:
            raise OFPError(C.OFPET_GROUP_MOD_FAILED, C.OFPGMFC_INVALID_GROUP)
        gtype = GROUP_TYPES[msg.type]
        if gtype == "indirect" and len(msg.buckets) != 1:
            raise OFPError(C.OFPET_GROUP_MOD_FAILED, C.OFPGMFC_INVALID_GROUP)
        buckets = []
        for b in msg.buckets:
            if gtype != "select" and b.weight:
                raise OFPError(C.OFPET_GROUP_MOD_FAILED, C.OFPGMFC_WEIGHT_UNSUPPORTED)
            if gtype == "ff" and b.watch_port == A.OFPP_ANY and b.watch_group == C.OFPG_ANY:
                raise OFPError(C.OFPET_GROUP_MOD_FAILED, C.OFPGMFC_BAD_WATCH)
            if b.watch_group != C.OFPG_ANY and (b.watch_group not in p.groups or b.watch_group == gid):
                raise OFPError(C.OFPET_GROUP_MOD_FAILED, C.OFPGMFC_BAD_WATCH)
            check_actions(p.groups, b.actions, in_group=gid)
            buckets.append(PBucket(tuple(b.actions), b.weight if gtype == "select" else 1, b.watch_port,
                                   b.watch_group))
        if msg.command == C.OFPGC_ADD and len(p.groups) >= MAX_GROUPS and gid not in p.groups:
            raise OFPError(C.OFPET_GROUP_MOD_FAILED, C.OFPGMFC_OUT_OF_GROUPS)
        try:
            p.group_mod("add" if msg.command == C.OFPGC_ADD else "modify", GroupEntry(gid, gtype, buckets))
        except FlowModError as e:
            raise OFPError(C.OFPET_GROUP_MOD_FAILED, C.OFPGMFC_GROUP_EXISTS if e.kind == "group_exists"
                           else C.OFPGMFC_UNKNOWN_GROUP) from None
        self.created[gid] = time.monotonic()
        self.changed()

    def _refs(self, gid: int) -> int:
        return sum(1 for e in self.pipeline.entries() if e.uses_group(gid))

    def mp_group(self, conn, msg):
        want = msg.body.group_id
        now = time.monotonic()
        out = []
        for gid, g in sorted(self.pipeline.groups.items()):
            if want not in (C.OFPG_ALL, gid):
                continue
            sec, nsec = split_time(now - self.created.get(gid, now))
            out.append(GroupStats(group_id=gid, ref_count=self._refs(gid), packet_count=g.packets,
                                  byte_count=g.bytes, duration_sec=sec, duration_nsec=nsec,
                                  bucket_stats=tuple((b.packets, b.bytes) for b in g.buckets)))
        return out

    def mp_group_desc(self, conn, msg):
        return [GroupDesc(type=GROUP_TYPE_NUM[g.type], group_id=gid,
                          buckets=tuple(Bucket(actions=tuple(b.actions), weight=b.weight if g.type == "select" else 0,
                                               watch_port=b.watch_port if b.watch_port is not None else A.OFPP_ANY,
                                               watch_group=b.watch_group if b.watch_group is not None
                                               else C.OFPG_ANY) for b in g.buckets))
                for gid, g in sorted(self.pipeline.groups.items())]

    def mp_group_features(self, conn, msg):
        acts = sum(1 << t for t in ACTION_TYPES)
        return GroupFeatures(types=sum(1 << t for t in GROUP_TYPES), capabilities=1 | 2 | 4,
                             max_groups=(MAX_GROUPS,) * 4, actions=(acts,) * 4)
