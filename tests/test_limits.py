"""Limits, as Open vSwitch has them: rules per table (``flow_tables: {T: {flow_limit: N}}``,
OFPFMFC_TABLE_FULL past it), actions per rule (OFPBAC_TOO_MANY past 4,096), and rules that name a
meter that does not exist (OFPMMFC_UNKNOWN_METER) — over OpenFlow, through ``ofctl/add-flow`` and
in the YAML.

One switch for the module: two ``net_null`` ports, no PMD thread, table 1 limited to 3 rules.
"""
from __future__ import annotations

import os
import re
import struct

import pytest

from dpdkswitch import config
from dpdkswitch.control import CommandError, call
from dpdkswitch.ofproto import actions as A
from dpdkswitch.openflow import codec as C
from dpdkswitch.openflow import consts as K
from dpdkswitch.switch import check

from test_openflow_ofctl import start_switch
from test_openflow_robust import Client

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


@pytest.fixture(scope="module")
def sw(tmp_path_factory):
    tag = f"l{os.getpid() % 10000}"
    s = start_switch(tmp_path_factory.mktemp("limits"), tag, {"flow_tables": {1: {"flow_limit": 3}}}, taps=0,
                     extra_ports={f"p{i}": {"device": f"net_null_{tag}_{i},no-rx=1", "ofport": i} for i in (1, 2)})
    yield s
    log = s.stop()
    assert s.proc.returncode == 0, log


def add(c: Client, table: int, port: int, actions=(A.Output(2),), version_10: bool = False):
    """A flow-mod add; the messages it got back (an error, or none) after a barrier."""
    fm = C.FlowMod(match={"in_port": (port, None)}, priority=100, table_id=table,
                   instructions=(A.ApplyActions(tuple(actions)),))
    c.send(fm)
    return [m for m in c.barrier() if isinstance(m, C.Error)]


def error_of(msgs) -> tuple[int, int] | None:
    return (msgs[0].type, msgs[0].code) if msgs else None


def test_a_table_past_its_flow_limit_refuses_adds_with_table_full(sw):
    c = Client(sw.port)
    try:
        for port in (1, 2, 3):
            assert add(c, 1, port) == []
        assert error_of(add(c, 1, 4)) == (K.OFPET_FLOW_MOD_FAILED, K.OFPFMFC_TABLE_FULL)
        assert add(c, 1, 3, actions=(A.Output(1),)) == []        # a rule replaced is no new rule
        assert add(c, 2, 4) == []                                 # other tables keep the default
        rules = [r for part in c.multipart(K.OFPMP_FLOW, C.FlowStatsRequest(table_id=1)) for r in part.body]
        assert len(rules) == 3
        features = [f for part in c.multipart(K.OFPMP_TABLE_FEATURES, []) for f in part.body]
        assert {f.table_id: f.max_entries for f in features}[1] == 3
        assert {f.table_id: f.max_entries for f in features}[0] == 1_000_000
        with pytest.raises(CommandError, match=r"^table 1 is full: 3 rules \(its flow_limit\)$"):
            call(sw.sock, "ofctl/add-flow", ["br0", "table=1,in_port=9,actions=drop"])
    finally:
        c.send(C.FlowMod(command=K.OFPFC_DELETE, table_id=1, out_port=A.OFPP_ANY))
        c.barrier()
        c.close()


def test_a_rule_with_more_than_4096_actions_is_refused_too_many(sw):
    c13 = Client(sw.port)
    c10 = Client(sw.port, versions=(1,))                # 8-byte outputs: 4,097 of them fit one message
    try:
        assert add(c13, 2, 7, actions=[A.Output(2)] * 4000) == []      # what one ovs-ofctl message carries
        assert error_of(add(c10, 0, 8, actions=[A.Output(2)] * 4097)) == (K.OFPET_BAD_ACTION, K.OFPBAC_TOO_MANY)
        assert error_of(add(c10, 0, 8, actions=[A.Output(2)] * 4096)) is None
        with pytest.raises(CommandError, match=r"^4097 actions in one rule: at most 4096$"):
            call(sw.sock, "ofctl/add-flow", ["br0", "in_port=9,actions=" + ",".join(["output:2"] * 4097)])
        call(sw.sock, "ofctl/add-flow", ["br0", "in_port=9,actions=" + ",".join(["output:2"] * 4096)])
    finally:
        c13.send(C.FlowMod(command=K.OFPFC_DELETE, table_id=K.OFPTT_ALL, match={"in_port": (7, None)}))
        c13.barrier()
        call(sw.sock, "ofctl/del-flows", ["br0", "in_port=8"])
        call(sw.sock, "ofctl/del-flows", ["br0", "in_port=9"])
        c13.close()
        c10.close()


def test_a_rule_naming_a_meter_that_does_not_exist_is_refused(sw):
    with pytest.raises(CommandError, match=r"^meter 5 does not exist$"):
        call(sw.sock, "ofctl/add-flow", ["br0", "in_port=1,actions=meter:5,output:2"])
    c = Client(sw.port)
    try:
        fm = C.FlowMod(match={"in_port": (1, None)}, priority=100,
                       instructions=(A.Meter(5), A.ApplyActions((A.Output(2),))))
        c.send(fm)
        assert error_of([m for m in c.barrier() if isinstance(m, C.Error)]) == (K.OFPET_METER_MOD_FAILED,
                                                                                K.OFPMMFC_UNKNOWN_METER)
    finally:
        c.close()


BASE = """
dpdk: {cores: [0]}
bridges:
  br0:
    datapath: {pmd_cores: []}
    ports: {p1: {device: "net_null0", ofport: 1}}
"""


@pytest.mark.parametrize("extra,where,msg", [
    ("    flows: ['actions=meter:5,output:1']\n", 7, "flow 'actions=meter:5,output:1': meter 5 does not exist"),
    ("    flow_tables: {0: {flow_limit: 1}}\n    flows: ['priority=1,actions=drop', 'priority=2,actions=drop']\n",
     8, "flow 'priority=2,actions=drop': table 0 is full: 1 rules (its flow_limit)"),
    ("    flow_tables: {255: {flow_limit: 1}}\n", 7, "flow_tables table id: expected an integer in 0..254, got 255"),
    ("    flow_tables: {0: {flow_limit: 4294967296}}\n", 7,
     "flow_limit: expected an integer in 0..4294967295, got 4294967296"),
    ("    flow_tables: {0: {flow_limt: 5}}\n", 7, "unknown key 'flow_limt'"),
])
def test_config_limits_are_errors_at_their_line(tmp_path, extra, where, msg):
    path = tmp_path / "s.yaml"
    path.write_text(BASE + extra)
    with pytest.raises(config.ConfigError) as e:
        check(config.load(str(path)), eal=False)
    assert str(e.value).startswith(f"{path}:{where}: ") and msg in str(e.value), str(e.value)


# --- input checked where it enters ------------------------------------------------------------
@pytest.mark.parametrize("ofport,opts,msg", [
    ("0", [], "ofport: expected an integer in 1..65279, got 0"),
    ("-1", [], "ofport: expected an integer in 1..65279, got -1"),
    ("70000", [], "ofport: expected an integer in 1..65279, got 70000"),
    ("0xfffffffe", [], "ofport: expected an integer in 1..65279, got 4294967294"),   # not LOCAL
    ("x1", [], "ofport: expected an integer in 1..65279 or LOCAL, got string 'x1'"),
    ("5", ["rxd=3"], "rxd: expected a power of two in 64..16384, got 3"),
    ("5", ["n_rxq=0"], "n_rxq: expected an integer in 1..64, got 0"),
    ("5", ["n_rxq=two"], "n_rxq: expected an integer, got string 'two'"),
    ("5", ["tag=3"], "unknown option 'tag': n_rxq, n_txq, rxd, txd, mtu are known"),
])
def test_add_port_arguments_take_the_configs_checks(sw, ofport, opts, msg):
    tag = f"l{os.getpid() % 10000}"
    with pytest.raises(CommandError) as e:
        call(sw.sock, "dpif/add-port", ["br0", "p5", f"net_null_{tag}_5,no-rx=1", ofport, *opts])
    assert str(e.value) == f"dpif/add-port: {msg}"
    assert "p5" not in call(sw.sock, "dpif/show", ["br0"])


def test_add_port_with_good_arguments_still_adds(sw):
    tag = f"l{os.getpid() % 10000}"
    out = call(sw.sock, "dpif/add-port", ["br0", "p6", f"net_null_{tag}_6,no-rx=1", "6", "rxd=512", "n_rxq=1"])
    assert out.startswith("added p6 as ofport 6 ")
    call(sw.sock, "dpif/del-port", ["br0", "p6"])


def test_duplicate_match_fields_on_the_wire_are_refused_dup_field(sw):
    from test_openflow_codec import IN_PORT_1, fm13
    c = Client(sw.port)
    try:
        c.send(fm13(IN_PORT_1 + IN_PORT_1, struct.pack("!HHIH6x", 0, 16, 2, 0xffff)))
        assert error_of([m for m in c.barrier() if isinstance(m, C.Error)]) == (K.OFPET_BAD_MATCH,
                                                                                K.OFPBMC_DUP_FIELD)
        assert "in_port=1" not in call(sw.sock, "ofctl/dump-flows", ["br0"])
    finally:
        c.close()


def test_a_chain_of_big_rules_is_bounded_per_frame(sw):
    """Five tables of 4,096 outputs each, chained by goto_table: 20,480 datapath actions per
    frame, past the translation's bound (16,384): dropped, with the reason in the trace."""
    outs = ",".join(["output:2"] * 4096)
    try:
        for t in range(3, 8):
            goto = f",goto_table:{t + 1}" if t < 7 else ""
            call(sw.sock, "ofctl/add-flow", ["br0", f"table={t},priority=9,in_port=1,actions={outs}{goto}"])
        call(sw.sock, "ofctl/add-flow", ["br0", "table=0,priority=9,in_port=1,actions=goto_table:3"])
        out = call(sw.sock, "ofproto/trace", ["br0", "in_port=1"])
        assert "Translation failed: more than 16384 datapath actions" in out
        assert out.split("Datapath actions: ")[1].startswith("drop")
        call(sw.sock, "ofctl/del-flows", ["br0", "table=7"])        # four tables: 16,384 fit
        out = call(sw.sock, "ofproto/trace", ["br0", "in_port=1"])
        assert "Translation failed" not in out and out.split("Datapath actions: ")[1].count("2") == 4 * 4096
    finally:
        for t in (0, 3, 4, 5, 6, 7):
            call(sw.sock, "ofctl/del-flows", ["br0", f"table={t},in_port=1"])


def test_a_connection_flood_under_a_low_open_files_limit_is_refused_cleanly(tmp_path):
    """With 256 open files at most (ulimit -n), the switch admits what leaves room for its own
    files and refuses the rest at accept: no file descriptor runs out, no traceback, and the
    control socket and the admitted peers keep working."""
    import resource
    import socket
    import subprocess
    import sys
    import time

    import yaml

    from test_openflow_ofctl import free_port
    port, tag = free_port(), f"f{os.getpid() % 10000}"
    sock = str(tmp_path / "ctl.sock")
    cfg = {"dpdk": {"cores": sorted(os.sched_getaffinity(0))[:2]}, "control": {"socket": sock},
           "bridges": {"br0": {"datapath": {"pmd_cores": []}, "openflow": {"listen": [f"ptcp:{port}:127.0.0.1"]},
                               "ports": {"p1": {"device": f"net_null_{tag},no-rx=1", "ofport": 1}}}}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(cfg))
    log = tmp_path / "log"
    proc = subprocess.Popen([sys.executable, "-m", "dpdkswitch", "run", str(tmp_path / "s.yaml"), "--no-top"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)))
    held = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                call(sock, "version")
                break
            except (ConnectionError, OSError):
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        first = Client(port)
        for _ in range(300):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(2)
        assert all(isinstance(m, C.EchoRequest) for m in first.echo())
        assert call(sock, "version").startswith("dpdkswitch ")
        first.close()
    finally:
        for s in held:
            s.close()
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    assert proc.returncode == 0, text
    assert re.search(r"at most 256 open files \(ulimit -n\), \d+ in use: OpenFlow connections limited to \d+",
                     text), text
    assert "connections open (at most " in text, text                   # some were refused
    # Past the limit, or should the descriptors run out all the same: one line a time, rate
    # limited, never asyncio's traceback per failed accept.
    assert "Traceback" not in text, text
    assert text.count("Too many open files") <= 12, text
