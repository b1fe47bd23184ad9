"""The action lists a message may carry (a flow-mod's instructions, a group-mod's buckets, a
packet-out), as the switch checks them before the pipeline sees them: a group action names a
group that exists and, from a bucket, none that leads back to the bucket's own group; no output
to ANY.  And the action types the switch executes (table and group features).

Contract: the control thread; pure Python.  Cost: O(actions), plus the groups a group action
reaches when the list is a bucket's.
"""
from __future__ import annotations

from collections.abc import Mapping

from ..ofproto import actions as A
from ..ofproto.pipeline import GroupEntry
from ..openflow import consts as C
from ..openflow.errors import OFPError

# Action types (OFPAT_*) the switch executes, for group and table features.
ACTION_TYPES = (C.OFPAT_OUTPUT, C.OFPAT_COPY_TTL_OUT, C.OFPAT_COPY_TTL_IN, C.OFPAT_PUSH_VLAN, C.OFPAT_POP_VLAN,
                C.OFPAT_SET_QUEUE, C.OFPAT_GROUP, C.OFPAT_SET_NW_TTL, C.OFPAT_DEC_NW_TTL, C.OFPAT_SET_FIELD)


def check_actions(groups: Mapping[int, GroupEntry], actions, in_group: int | None = None) -> None:
    """OFPError unless ACTIONS may run: every group they name is in GROUPS, none reaches
    IN_GROUP (the group whose bucket they are, if any), and no output is to ANY."""
    for a in actions:
        if isinstance(a, A.Group):
            if a.group_id not in groups:
                raise OFPError(C.OFPET_BAD_ACTION, C.OFPBAC_BAD_OUT_GROUP)
            if in_group is not None and reaches(groups, a.group_id, in_group):
                raise OFPError(C.OFPET_GROUP_MOD_FAILED, C.OFPGMFC_LOOP)
        elif isinstance(a, A.Output) and a.port == A.OFPP_ANY:
            raise OFPError(C.OFPET_BAD_ACTION, C.OFPBAC_BAD_OUT_PORT)


def reaches(groups: Mapping[int, GroupEntry], gid: int, target: int, seen: set[int] | None = None) -> bool:
    """Does group GID (through its buckets' group actions) lead to group TARGET?"""
    if gid == target:
        return True
    seen = seen if seen is not None else set()
    if gid in seen:
        return False
    seen.add(gid)
    g = groups.get(gid)
    return g is not None and any(isinstance(a, A.Group) and reaches(groups, a.group_id, target, seen)
                                 for b in g.buckets for a in b.actions)
