"""Durations as OpenFlow states them (flow, group, meter and port stats, flow-removed): whole
seconds and the nanoseconds beyond them.  Pure; any thread."""
from __future__ import annotations


def split_time(seconds: float) -> tuple[int, int]:
    """(sec, nsec) of SECONDS; a negative duration (a clock that moved back) is zero."""
    seconds = max(0.0, seconds)
    s = int(seconds)
    return s, min(999_999_999, int((seconds - s) * 1e9))
