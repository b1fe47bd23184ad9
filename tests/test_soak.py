"""The soak of issue 20, 3 minutes (``tests/soak.py``; ``scripts/soak.sh`` runs it for as long
as asked).  Mixed load — packet-in floods, miss storms with port churn, flow-mod floods,
controller flaps, control commands — and then: every ``ctl`` and echo answered, the datapath
flows and mbufs back to their level before the load, RSS bounded, SIGTERM obeyed.  The bounds
are generous (a loaded 2-core machine); the figures are printed (``-s``)."""
from __future__ import annotations

import pytest

from soak import Soak, pct, summary

pytestmark = pytest.mark.soak

MBUF_SLACK = 1024       # two lcores' mempool caches (256 each, up to 1.5x before a flush), and then some


def test_soak_three_minutes(tmp_path):
    r = Soak(tmp_path, 180).run()
    print("\n" + summary(r))
    assert r["exit"] == 0 and r["tracebacks"] == 0
    assert r["sigterm_s"] < 10
    assert not r["failures"], r["failures"][:5]                  # every ctl and echo answered within 15 s
    assert pct(r["ctl"], .99) < 5 and pct(r["echo"], .99) < 5
    assert r["packet_ins"] > 0 and r["controller_connections"] >= 2   # flooded, and flapped
    assert r["end"]["flows"] <= r["base"]["flows"]
    assert r["end"]["mbufs"] <= r["base"]["mbufs"] + MBUF_SLACK, (r["base"], r["end"], r["mbufs_max"])
    assert r["end"]["rss"] <= r["rss_after_first_cycle"] + (64 << 20)
    assert r["rss_max"] <= r["base"]["rss"] + (256 << 20)
