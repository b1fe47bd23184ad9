"""A real controller: an os-ken application programs the switch over OpenFlow 1.3.

The switch is configured with ``controllers: [tcp:127.0.0.1:PORT]`` and fail mode
``standalone``.  Before os-ken runs, the bridge is a learning switch (the fail-open
``priority=0,actions=NORMAL`` rule).  When os-ken connects, that rule goes; the app installs a
table-miss rule to the controller and relays every packet-in with a packet-out to the other
port, so a ping between the two namespaces crosses the controller both ways.  When os-ken
stops, the fail-open rule is back.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from test_openflow_ofctl import flows, free_port, ping, start_switch

pytestmark = [pytest.mark.netns, pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not os.path.exists("/usr/bin/ovs-ofctl"), reason="needs ovs-ofctl")]
os_ken = pytest.importorskip("os_ken")

RUNNER = """
import sys
from os_ken.lib import hub
hub.patch(thread=False)
from os_ken import cfg
from os_ken.base.app_manager import AppManager
cfg.CONF(args=["--ofp-tcp-listen-port", sys.argv[1], "--ofp-listen-host", "127.0.0.1"], project="os_ken")
AppManager.run_apps([sys.argv[2]])
"""

RELAY_APP = """
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3


class Relay(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def features(self, ev):
        dp = ev.msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        actions = [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
        inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]
        dp.send_msg(parser.OFPFlowMod(datapath=dp, priority=0, cookie=0x1234, match=parser.OFPMatch(),
                                      instructions=inst))
        print(f"FEATURES dpid={dp.id:x} n_tables={ev.msg.n_tables}", flush=True)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev):
        msg = ev.msg
        dp = msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        in_port = msg.match["in_port"]
        out = 2 if in_port == 1 else 1
        print(f"PACKET_IN in_port={in_port} reason={msg.reason} table={msg.table_id} cookie={msg.cookie:#x} "
              f"len={len(msg.data)} total_len={msg.total_len}", flush=True)
        dp.send_msg(parser.OFPPacketOut(datapath=dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port,
                                        actions=[parser.OFPActionOutput(out)], data=msg.data))
"""


def wait_for(what, fn, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_os_ken_relays_packets_and_fail_open_comes_and_goes(tmp_path):
    ctl_port = free_port()
    sw = start_switch(tmp_path, f"{os.getpid() % 10000}k",
                      {"openflow": {"controllers": [f"tcp:127.0.0.1:{ctl_port}"], "fail_mode": "standalone"}})
    (h1, _), (h2, ip2) = sw.hosts["p1"], sw.hosts["p2"]
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "runner.py").write_text(RUNNER)
    (app_dir / "relay.py").write_text(RELAY_APP)
    app_log = tmp_path / "osken.log"
    app = None
    try:
        # No controller yet: standalone fail mode makes the bridge a learning switch.
        got = flows("OpenFlow13", sw.tcp)
        assert len(got) == 1 and got[0].startswith("cookie=0xfa110be400000000,") \
            and got[0].endswith("priority=0 actions=NORMAL"), got
        assert ping(h1, ip2, count=2, wait=2), "NORMAL (fail-open) should forward:\n" + sw.log.read_text()

        app = subprocess.Popen([sys.executable, "runner.py", str(ctl_port), "relay"], cwd=app_dir,
                               stdout=open(app_log, "w"), stderr=subprocess.STDOUT)
        # The switch retries with backoff (1, 2, 4, 8 s): it finds os-ken within ~8 s.
        wait_for("os-ken to install its table-miss rule",
                 lambda: [f for f in flows("OpenFlow13", sw.tcp) if f.startswith("cookie=0x1234,")], timeout=25)
        got = flows("OpenFlow13", sw.tcp)
        assert len(got) == 1 and got[0].endswith("priority=0 actions=CONTROLLER:65535"), got
        assert re.search(r"FEATURES dpid=[0-9a-f]+ n_tables=255", app_log.read_text())
        assert "connected to controller" in sw.log.read_text()

        # Every frame now crosses the controller: packet-in, then packet-out to the other port.
        for ns in (h1, h2):
            subprocess.run(["ip", "-n", ns, "neigh", "flush", "all"], capture_output=True)
        assert ping(h1, ip2, count=3, wait=2), app_log.read_text() + sw.log.read_text()
        log = app_log.read_text()
        ins = re.findall(r"PACKET_IN in_port=(\d) reason=(\d) table=0 cookie=0x1234 len=(\d+) total_len=(\d+)", log)
        assert {p for p, *_ in ins} == {"1", "2"}, log
        assert all(r == "0" for _, r, _, _ in ins), log           # a table-miss rule's packet-ins: no_match
        assert all(n == t for *_, n, t in ins), log               # whole frames (max_len NO_BUFFER)
        assert sum(1 for p, *_ in ins if p == "1") >= 4, log       # ARP + 3 echo requests, at least
        n_pkts = int(re.search(r"n_packets=(\d+)", flows("OpenFlow13", sw.tcp)[0]).group(1))
        assert n_pkts >= 8, flows("OpenFlow13", sw.tcp)

        # The controller goes away: the fail-open rule is back, the table-miss rule stays (and is
        # replaced by the fail-open one, which has the same match and priority).
        app.terminate()
        app.wait(timeout=10)
        app = None
        got = wait_for("the fail-open rule", lambda: [f for f in flows("OpenFlow13", sw.tcp)
                                                       if f.startswith("cookie=0xfa110be400000000,")])
        assert got[0].endswith("priority=0 actions=NORMAL"), got
        assert "disconnected" in sw.log.read_text()
        assert ping(h1, ip2, count=2, wait=2)
    finally:
        if app is not None:
            app.kill()
            app.wait()
        log = sw.stop()
    assert sw.proc.returncode == 0, log


STATUS_APP = """
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3


class Status(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def features(self, ev):
        dp = ev.msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        print(f"FEATURES dpid={ev.msg.datapath_id:#x}", flush=True)
        dp.send_msg(parser.OFPRoleRequest(dp, ofp.OFPCR_ROLE_MASTER, 1))
        inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [parser.OFPActionGroup(99)])]
        dp.send_msg(parser.OFPFlowMod(datapath=dp, priority=5, match=parser.OFPMatch(in_port=1), instructions=inst))

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def error(self, ev):
        print(f"ERROR type={ev.msg.type} code={ev.msg.code}", flush=True)
"""


def controller_rows(sw) -> dict[str, str]:
    """target -> its row in ofproto/list-controllers br0."""
    out = sw.ctl("ofproto/list-controllers", "br0")
    return {m.group(1): m.group(2) for m in re.finditer(r"^  controller (\S+): (.*)$", out, re.M)}


def test_datapath_id_reaches_os_ken_and_list_controllers_shows_each_controller(tmp_path):
    """openflow.datapath_id is the features reply's (a value above 2^63, so all 64 bits count);
    ofproto/list-controllers shows the os-ken controller connected, with the role it asked for
    and its counters, and a controller nobody serves as not connected, and then os-ken as not
    connected once it is gone."""
    ctl_port, nobody = free_port(), free_port()
    dpid = 0xfedcba9876543210
    sw = start_switch(tmp_path, f"{os.getpid() % 10000}s",
                      {"openflow": {"controllers": [f"tcp:127.0.0.1:{ctl_port}", f"tcp:127.0.0.1:{nobody}"],
                                    "fail_mode": "secure", "datapath_id": dpid}})
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "runner.py").write_text(RUNNER)
    (app_dir / "status.py").write_text(STATUS_APP)
    app_log = tmp_path / "osken.log"
    app = None
    osken, dead = f"tcp:127.0.0.1:{ctl_port}", f"tcp:127.0.0.1:{nobody}"
    try:
        rows = controller_rows(sw)
        assert set(rows) == {osken, dead}, rows
        assert all(r.startswith("is_connected=false state=") for r in rows.values()), rows
        app = subprocess.Popen([sys.executable, "runner.py", str(ctl_port), "status"], cwd=app_dir,
                               stdout=open(app_log, "w"), stderr=subprocess.STDOUT)
        wait_for("os-ken to get its error back", lambda: "ERROR type=" in app_log.read_text(), timeout=25)
        log = app_log.read_text()
        assert f"FEATURES dpid={dpid:#x}" in log, log
        assert "ERROR type=2 code=9" in log, log                 # OFPET_BAD_ACTION, OFPBAC_BAD_OUT_GROUP
        rows = controller_rows(sw)
        m = re.fullmatch(r"is_connected=true state=ACTIVE peer=127\.0\.0\.1:\d+ version=OpenFlow13 role=master "
                         r"sec_since_connect=(\d+) messages_in=(\d+) messages_out=(\d+) errors_sent=1 "
                         r"packet_ins_dropped=0", rows[osken])
        assert m, rows
        # in: hello, features request, role request, flow-mod at least; out: hello, features reply,
        # role reply, the error at least
        assert int(m.group(2)) >= 4 and int(m.group(3)) >= 4, rows
        assert re.match(r'is_connected=false state=(BACKOFF|CONNECTING) attempts=[1-9]\d* '
                        r'last_error="Connection refused"$', rows[dead]), rows
        show = sw.ctl("ofproto/show", "br0")
        assert show.startswith(f"br0: dpid:{dpid:016x} (openflow.datapath_id)\n"), show
        assert "controllers: 2 configured, 1 connected;" in show, show

        app.terminate()
        app.wait(timeout=10)
        app = None
        rows = wait_for("os-ken to show as disconnected",
                        lambda: (r := controller_rows(sw)) and r[osken].startswith("is_connected=false") and r)
        assert re.match(r"is_connected=false state=(BACKOFF|CONNECTING) attempts=\d+ sec_since_disconnect=\d+ "
                        r'last_error="', rows[osken]), rows
        assert "messages_in" not in rows[osken] and "role=" not in rows[osken], rows
    finally:
        if app is not None:
            app.kill()
            app.wait()
        log = sw.stop()
    assert sw.proc.returncode == 0, log
