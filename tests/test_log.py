"""The switch's messages: the text `dpdkswitch run` writes (as it always printed it), rate limits
on what a peer can cause, and the live view keeping the last messages in sight."""
import io
import logging
from types import SimpleNamespace

import pytest

from dpdkswitch import log
from dpdkswitch.openflow import connection
from dpdkswitch.top import TopView


@pytest.fixture
def streams():
    for f in logging.getLogger("dpdkswitch.openflow").filters:
        f.sites.clear()                         # each test starts with no message counted
    out, err = io.StringIO(), io.StringIO()
    log.setup(live_view=True, out=out, err=err)
    yield out, err
    log.close()


def test_messages_read_as_the_switch_always_printed_them(streams):
    out, err = streams
    logging.getLogger("dpdkswitch").info("dpdkswitch 0.1.0 on s.yaml: 1 bridge(s)\nCtrl-C stops it.")
    connection.log("br0: controller tcp:10.0.0.9:6653 disconnected")
    logging.getLogger("dpdkswitch").error("%s", "s.yaml:4: port 'p1': bad")
    assert out.getvalue() == ("dpdkswitch 0.1.0 on s.yaml: 1 bridge(s)\nCtrl-C stops it.\n"
                              "openflow: br0: controller tcp:10.0.0.9:6653 disconnected\n")
    assert err.getvalue() == "dpdkswitch: s.yaml:4: port 'p1': bad\n"


def test_the_live_view_shows_a_message_logged_after_it_started(streams):
    view = TopView(SimpleNamespace(bridges={}), {}, ["dpdkswitch on s.yaml"])
    assert "messages:" not in view.render()
    connection.log("br0: connected to controller tcp:10.0.0.9:6653, OpenFlow 1.3")
    logging.getLogger("dpdkswitch").error("%s", "something failed")
    screen = view.render().splitlines()
    assert screen[0] == "dpdkswitch on s.yaml"
    shown = screen[screen.index("messages:") + 1:]
    assert len(shown) == 2
    assert shown[0].endswith(" openflow: br0: connected to controller tcp:10.0.0.9:6653, OpenFlow 1.3")
    assert shown[1].endswith(" dpdkswitch: something failed")


def test_the_live_view_shows_only_the_last_messages(streams):
    view = TopView(SimpleNamespace(bridges={}), {}, [])
    for i in range(50):
        logging.getLogger("dpdkswitch").info("message %d", i)
    screen = view.render().splitlines()
    shown = screen[screen.index("messages:") + 1:]
    assert 0 < len(shown) < 50 and shown[-1].endswith(" message 49")


def test_a_message_a_peer_repeats_is_rate_limited_with_a_count():
    now = [100.0]
    records = []
    logger = logging.getLogger("dpdkswitch.test_rate")
    limit = log.RateLimit(burst=10, interval=60.0, clock=lambda: now[0])
    logger.addFilter(limit)
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    def garbage(i):                             # one call site, as a peer makes it log again and again
        logger.info("peer %d sent garbage; closing", i)
    try:
        for i in range(1000):
            garbage(i)
        assert [r.getMessage() for r in records] == [f"peer {i} sent garbage; closing" for i in range(10)]
        logger.info("another call site")        # limits are per call site
        assert len(records) == 11
        now[0] += 30.0
        garbage(1000)                           # the interval is not over: suppressed too
        now[0] += 30.0
        garbage(1001)
        garbage(1002)
        assert [r.getMessage() for r in records[11:]] == [
            "peer 1001 sent garbage; closing (suppressed 991 like this in the last 60 s)",
            "peer 1002 sent garbage; closing"]
    finally:
        logger.removeFilter(limit)
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


def test_openflow_messages_are_rate_limited_per_call_site(streams):
    out, _ = streams
    for _ in range(1000):
        connection.log("br0: handling FlowMod failed")
    connection.log("br0: controller tcp:10.0.0.9:6653 disconnected")
    lines = out.getvalue().splitlines()
    assert lines.count("openflow: br0: handling FlowMod failed") == log.RATE_BURST
    assert lines[-1] == "openflow: br0: controller tcp:10.0.0.9:6653 disconnected"


def test_dpdks_lines_read_dpdk_at_their_level_and_the_level_the_user_picked(streams):
    out, err = streams
    log.set_dpdk_level("warning")
    try:
        log.dpdk_line(log.from_dpdk(4), "net_pcap: Couldn't open /nope.pcap")
        log.dpdk_line(log.from_dpdk(7), "EAL: Detected CPU lcores: 2")          # info: below warning
        assert err.getvalue() == "dpdk: net_pcap: Couldn't open /nope.pcap\n" and out.getvalue() == ""
        log.set_dpdk_level("info")
        log.dpdk_line(log.from_dpdk(7), "EAL: Detected CPU lcores: 2")
        log.dpdk_line(log.from_dpdk(8), "EAL: open shared lib x.so")            # debug: below info
        assert out.getvalue() == "dpdk: EAL: Detected CPU lcores: 2\n"
    finally:
        logging.getLogger(log.DPDK).setLevel(logging.NOTSET)


def test_only_the_known_harmless_dpdk_messages_are_demoted():
    from dpdkswitch.datapath import _harmless
    harmless = [
        "EAL: No free 1048576 kB hugepages reported on node 0",
        "TELEMETRY: No legacy callbacks, legacy socket not created",
        "tap_nl_dump_ext_ack(): Specified qdisc kind is unknown",
        "qdisc_create_multiq(): Could not add multiq qdisc (2): No such file or directory",
        "eth_dev_tap_create(): dq0: failed to create multiq qdisc.",
        "eth_dev_tap_create():  Disabling rte flow support: No such file or directory(2)",
        "tap_mp_req_on_rxtx(): Failed to send start req to secondary 95",
    ]
    real = [
        "Port0 dev_configure = -1",
        "tap_dev_configure(): net_tap90: number of rx queues 1 must be equal to number of tx queues 2",
        "EAL: failed to parse device \"net_nosuch0\"",
        "eth_pcap_probe(): Couldn't open /tmp/missing.pcap: No such file or directory",
        "EAL: Cannot get hugepage information.",
    ]
    assert [t for t in harmless if not _harmless(t)] == []
    assert [t for t in real if _harmless(t)] == []
