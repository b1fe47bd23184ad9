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
