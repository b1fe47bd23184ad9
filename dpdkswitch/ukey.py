"""Ukeys: the megaflows the slow path installed in the datapath, each with the translation it
came from (Open vSwitch's udpif_key).  The upcall handler adds them; the revalidator pushes
their datapath counters through their translation's xlate cache, translates them again after a
change, and deletes them.

Contract: the control thread only (the upcall handler and the revalidator run on its loop).
Pure Python; a lookup by UFID is a dict operation, finding the megaflow that covers a key one
dict operation per mask installed.
"""
from __future__ import annotations

from .datapath import megaflow_ufid as datapath_ufid
from .flowkey import KEY_SIZE
from .ofproto.classifier import key_int
from .ofproto.pipeline import FlowEntry
from .ofproto.xlate import XlateCache


def megaflow_ufid(masked: bytes, mask: bytes) -> int:
    """A UFID that names the megaflow (MASKED, a key already masked, + MASK): the same
    megaflow, the same UFID, whether Python or C (ofproto/ctable.py's setups) installed it."""
    return datapath_ufid(masked, mask)


class Ukey:
    """A megaflow the slow path installed, and what its translation used and did.  Slotted and
    lean (``bench --memory`` measures it): the megaflows of one rule share its mask, actions
    and, when they took the rule's kept translation, its xlate cache."""

    __slots__ = ("ufid", "key", "mask", "actions", "visits", "created_ns", "_orig", "packets", "bytes", "used_ns",
                 "missed_packets", "missed_bytes", "tcp_flags")

    def __init__(self, ufid: int, key: bytes, mask: bytes, actions: bytes, visits: XlateCache, created_ns: int,
                 orig_key: bytes = b"", missed_packets: int = 0, missed_bytes: int = 0):
        self.ufid = ufid
        self.key = key                   # datapath key (in_port = datapath port), masked
        self.mask = mask
        self.actions = actions
        self.visits = visits             # rules, tables, groups, MACs, mirrors it used, bridge by bridge
                                         # (each with the pipeline version it was translated at)
        self.created_ns = created_ns
        self._orig = None if orig_key == key else orig_key
        self.packets = 0                 # counters already pushed to the rules
        self.bytes = 0
        self.used_ns = 0
        self.tcp_flags = 0               # the TCP flags its frames carried, ORed (NetFlow's)
        self.missed_packets = missed_packets   # frames it covers that came up as misses (forwarded by
        self.missed_bytes = missed_bytes       # packet-out, not in its datapath counters): NetFlow's totals

    @property
    def orig_key(self) -> bytes:
        """The missed packet's whole key: what the revalidator translates again."""
        return self.key if self._orig is None else self._orig

    @property
    def entries(self) -> list[FlowEntry]:
        return [e for v in self.visits for e in v.entries]


class Ukeys(dict[int, Ukey]):
    """The installed megaflows by UFID, at most LIMIT of them; those the datapath accepted are
    also indexed by mask and masked key, to find the one that covers a key (``covering``).  An
    indexed ukey is the one its UFID names here, until ``forget`` or ``clear`` takes both."""

    def __init__(self, limit: int = 200000):
        super().__init__()
        self.limit = limit
        self.index: dict[int, dict[bytes, Ukey]] = {}  # mask (a big-endian int) -> masked key (uk.key) -> ukey
        self.masks: dict[bytes, bytes] = {}            # one bytes object per mask, shared by its ukeys

    def mask_of(self, mask: bytes) -> bytes:
        """MASK, as the one object every ukey with this mask shares."""
        return self.masks.setdefault(mask, mask)

    def indexed(self, uk: Ukey, mask: int | None = None) -> None:
        """UK's megaflow is in the datapath.  MASK: its mask as a big-endian int, when the
        caller has it already (else converted here)."""
        self.index.setdefault(key_int(uk.mask) if mask is None else mask, {})[uk.key] = uk

    def covering(self, k: int) -> Ukey | None:
        """The indexed megaflow that covers key K (a big-endian int), if any."""
        for m, by in self.index.items():
            uk = by.get((k & m).to_bytes(KEY_SIZE, "big"))
            if uk is not None:
                return uk
        return None

    def forget(self, uk: Ukey) -> None:
        """UK's megaflow left the datapath."""
        self.pop(uk.ufid, None)
        m = key_int(uk.mask)
        by = self.index.get(m)
        if by is not None and by.get(uk.key) is uk:
            del by[uk.key]
            if not by:
                del self.index[m]

    def clear(self) -> None:
        """Every megaflow left the datapath (a flush)."""
        super().clear()
        self.index.clear()
