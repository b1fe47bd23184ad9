"""Ukeys: the megaflows the slow path installed in the datapath, each with the translation it
came from (Open vSwitch's udpif_key).  The upcall handler adds them; the revalidator pushes
their datapath counters through their translation's xlate cache, translates them again after a
change, and deletes them.

Contract: the control thread only (the upcall handler and the revalidator run on its loop).
Pure Python; a lookup by UFID is a dict operation, finding the megaflow that covers a key one
dict operation per mask installed.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .ofproto.classifier import key_int
from .ofproto.pipeline import FlowEntry
from .ofproto.xlate import XlateCache


def megaflow_ufid(masked: bytes, mask: bytes) -> int:
    """A UFID that names the megaflow (MASKED, a key already masked, + MASK): the same
    megaflow, the same UFID."""
    return int.from_bytes(hashlib.blake2b(masked + mask, digest_size=16).digest(), "little")


@dataclass(eq=False)
class Ukey:
    """A megaflow the slow path installed, and what its translation used and did."""
    ufid: int
    key: bytes                       # datapath key (in_port = datapath port), masked
    mask: bytes
    actions: bytes
    visits: XlateCache               # rules, tables, groups, MACs, mirrors it used, bridge by bridge
                                     # (each with the pipeline version it was translated at)
    created_ns: int
    orig_key: bytes = b""            # the missed packet's whole key: re-translated
    packets: int = 0                 # counters already pushed to the rules
    bytes: int = 0
    used_ns: int = 0
    missed_packets: int = 0          # frames it covers that came up as misses (forwarded by packet-out,
    missed_bytes: int = 0            # not in its datapath counters): for NetFlow's totals

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
        self.index: dict[int, dict[int, Ukey]] = {}    # mask -> masked key -> ukey, as big-endian ints

    def indexed(self, uk: Ukey, mask: int | None = None, masked: int | None = None) -> None:
        """UK's megaflow is in the datapath.  MASK and MASKED: its mask and (masked) key as
        big-endian ints, when the caller has them already (else converted here)."""
        m = key_int(uk.mask) if mask is None else mask
        self.index.setdefault(m, {})[key_int(uk.key) if masked is None else masked] = uk

    def covering(self, k: int) -> Ukey | None:
        """The indexed megaflow that covers key K (a big-endian int), if any."""
        for m, by in self.index.items():
            uk = by.get(k & m)
            if uk is not None:
                return uk
        return None

    def forget(self, uk: Ukey) -> None:
        """UK's megaflow left the datapath."""
        self.pop(uk.ufid, None)
        by = self.index.get(key_int(uk.mask))
        if by is not None and by.get(key_int(uk.key)) is uk:
            del by[key_int(uk.key)]
            if not by:
                del self.index[key_int(uk.mask)]

    def clear(self) -> None:
        """Every megaflow left the datapath (a flush)."""
        super().clear()
        self.index.clear()
