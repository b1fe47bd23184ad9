"""The cyclic collector's policy of `dpdkswitch run` (app.FreezeSurvivors): what survives a full
collection is frozen, so later full collections do not walk it again; a cycle among frozen
objects that becomes garbage is still reclaimed, after the next thaw.  Driven by explicit
gc.collect() calls and a manual clock.  No EAL."""
from __future__ import annotations

import gc
import weakref

from dpdkswitch.app import FreezeSurvivors


class Node:
    def __init__(self):
        self.me = self                      # a cycle: only the cyclic collector frees it


def test_survivors_of_a_full_collection_leave_the_collectors_sight():
    now = [0.0]
    policy = FreezeSurvivors(clock=lambda: now[0]).install()
    try:
        rules = [Node() for _ in range(10_000)]
        gc.collect()
        assert gc.get_freeze_count() >= 10_000
        assert len(gc.get_objects(generation=2)) < 10_000      # not walked by the next full collection
        assert all(r.me is r for r in rules)
    finally:
        policy.remove()
    assert gc.get_freeze_count() == 0 and policy not in gc.callbacks


def test_a_frozen_cycle_that_becomes_garbage_is_freed_after_the_next_thaw():
    now = [0.0]
    policy = FreezeSurvivors(clock=lambda: now[0]).install()
    try:
        node = Node()
        ref = weakref.ref(node)
        gc.collect()                        # survives: frozen
        del node
        gc.collect()
        assert ref() is not None            # held while frozen
        now[0] = FreezeSurvivors.UNFREEZE_AFTER
        gc.collect()                        # at its end everything is thawed
        assert policy.thaws == 1 and gc.get_freeze_count() == 0
        gc.collect()
        assert ref() is None
    finally:
        policy.remove()


def test_young_garbage_is_collected_every_young_threshold_allocations_and_the_threshold_is_restored():
    before = gc.get_threshold()
    policy = FreezeSurvivors().install()
    try:
        assert gc.get_threshold() == (FreezeSurvivors.YOUNG_THRESHOLD, *before[1:])
        gc.collect()
        young = gc.get_stats()[0]["collections"]
        ref = weakref.ref(Node())           # cyclic garbage at once
        keep = [[] for _ in range(FreezeSurvivors.YOUNG_THRESHOLD // 2)]   # Python's 700 would collect
        assert ref() is not None and gc.get_stats()[0]["collections"] == young
        keep += [[] for _ in range(FreezeSurvivors.YOUNG_THRESHOLD // 2 + 10)]   # past the threshold
        assert ref() is None and gc.get_stats()[0]["collections"] > young
        del keep
    finally:
        policy.remove()
    assert gc.get_threshold() == before and policy not in gc.callbacks
