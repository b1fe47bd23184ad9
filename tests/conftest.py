"""Shared fixtures: one EAL per test session, datapaths with test ports, frame builders.

EAL starts once per process.  It runs on hugepages when enough are free, else with
--no-huge; DPDKSWITCH_HUGEPAGES=off|on|auto forces the choice (``make test`` runs the
datapath tests both ways).  Its file prefix is unique to this process.
"""
from __future__ import annotations

import os

import pytest

from dpdkswitch.config import online_cpus


def pytest_report_header(config):
    return [f"dpdkswitch tests: hugepages={os.environ.get('DPDKSWITCH_HUGEPAGES', 'auto')}"]


@pytest.fixture(scope="session")
def eal():
    """EAL in this process: lcores 0 and 1 (main + one worker for PMD tests) when present."""
    from dpdkswitch.datapath import Eal
    cores = sorted(online_cpus())[:2]
    args, note = Eal.build_args(cores, os.environ.get("DPDKSWITCH_HUGEPAGES", "auto"),
                                file_prefix=f"dps-test-{os.getpid()}")
    Eal.start(args)
    mode = os.environ.get("DPDKSWITCH_HUGEPAGES", "auto")
    if mode != "auto":
        assert Eal.has_hugepages() == (mode == "on"), f"asked hugepages={mode}, EAL says otherwise ({note})"
    print(f"EAL: {note}")
    return Eal


@pytest.fixture(scope="session")
def worker_lcore(eal):
    lcores = eal.lcores()
    if len(lcores) < 2:
        pytest.skip("PMD-thread tests need EAL with a worker lcore (a machine with 2+ CPUs)")
    return lcores[1]


@pytest.fixture
def dp(eal):
    """A datapath in deterministic mode (no PMD thread, manual clock)."""
    from dpdkswitch.datapath import Datapath
    d = Datapath("test", n_mbufs=8192, manual_clock=True)
    yield d
    d.close()
