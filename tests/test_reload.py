"""``dpdkswitch ctl reload`` and SIGHUP: the YAML read again, the difference applied live.

The diff itself (which ports, rules, mirrors and settings change; what is refused) in
process; then applied to a switch in this process (null ports); then `dpdkswitch run` with
hosts in namespaces, its YAML edited while a host pair on untouched ports pings throughout."""
import asyncio
import os
import signal
import socket
import subprocess
import time

import pytest

from dpdkswitch.config import ConfigError, loads
from dpdkswitch.ofproto.flowstr import parse_flow
from dpdkswitch.openflow import codec as C
from dpdkswitch.reconfig import Reloader, ReloadRefused, diff
from dpdkswitch.switch import Switch
from switchproc import TAG, SwitchProc, ping, sh
from test_openflow_robust import Client

BASE = """\
dpdk: {cores: [0, 1]}
control: {socket: /tmp/never.sock}
bridges:
  br0:
    datapath: {pmd_cores: []}
    openflow: {listen: ['ptcp:0']}
    ports:
      p1: {device: net_null_rl1, ofport: 1, tag: 10}
      p2: {device: net_null_rl2, ofport: 2, tag: 10}
      p3: {device: net_null_rl3, ofport: 3, vlan_mode: trunk, trunks: [10, 20]}
    flows:
      - priority=10,icmp,actions=drop
      - priority=5,arp,actions=NORMAL
      - priority=0,actions=NORMAL
    mirrors:
      m1: {select_src_port: [p1], output_port: p3}
    mac_table:
      idle_time: 300
      static: [{mac: '02:00:00:00:00:01', vlan: 10, port: p2}]
"""


def edit(text: str, *pairs) -> str:
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    return text


def plan_of(new_text: str, old_text: str = BASE):
    return diff(loads(old_text, "old.yaml"), loads(new_text, "new.yaml")).bridges[0]


def test_nothing_changed_is_an_empty_plan():
    # the same file moved down a line: positions differ, settings do not
    p = plan_of("# a comment\n" + BASE)
    assert p.changes() == []
    assert diff(loads(BASE), loads("# x\n" + BASE)).summary() == "no change\n"


def test_port_vlan_change_is_in_place_device_change_is_remove_and_add():
    p = plan_of(edit(BASE, ("ofport: 2, tag: 10", "ofport: 2, tag: 20"),
                     ("net_null_rl3, ofport: 3", "net_null_rl9, ofport: 3")))
    assert p.ports_vlan == ["p2"]
    assert p.ports_replaced == ["p3"] and p.ports_removed == ["p3"] and p.ports_added == ["p3"]
    assert "port p2 VLANs changed" in p.changes() and "port p3 replaced" in p.changes()
    # the mirror outputs to p3, which comes back (perhaps on another datapath port): set again
    assert p.mirrors_set == ["m1"]


def test_ports_added_and_removed():
    p = plan_of(edit(BASE, ("      p2: {device: net_null_rl2, ofport: 2, tag: 10}\n",
                            "      p4: {device: net_null_rl4, ofport: 4}\n"),
                     ("port: p2}", "port: p4}")))
    assert p.ports_removed == ["p2"] and p.ports_added == ["p4"] and not p.ports_replaced
    # p2's static MAC leaves with it; p4's comes with p4 as it is added
    assert p.statics_removed == [("02:00:00:00:00:01", 10, "p2")] and p.statics_added == []


def test_flows_minimal_diff():
    p = plan_of(edit(BASE, ("priority=10,icmp,actions=drop", "priority=10,icmp,actions=output:3")))
    assert p.flows_removed == [parse_flow("priority=10,icmp,actions=drop")]
    assert p.flows_added == [parse_flow("priority=10,icmp,actions=output:3")]
    assert p.flows_kept == 2
    # the same rule written otherwise is the same rule
    assert plan_of(edit(BASE, ("priority=5,arp,actions=NORMAL", "arp,priority=5,actions=normal"))).changes() == []


def test_mirrors_mac_table_flooding_listeners():
    p = plan_of(edit(BASE, ("      m1: {select_src_port: [p1], output_port: p3}\n",
                            "      m2: {select_all: true, output_vlan: 20}\n"),
                     ("idle_time: 300", "idle_time: 60"),
                     ("    mac_table:", "    flood_vlans: [20]\n    mac_table:"),
                     ("listen: ['ptcp:0']", "listen: ['ptcp:0', 'punix:/tmp/x.sock'], controllers: ['tcp:127.0.0.1:6653']")))
    assert p.mirrors_removed == ["m1"] and p.mirrors_set == ["m2"]
    assert p.mac_table and p.flood and not p.ports_added and not p.flows_added
    assert p.listen_added == ["punix:/tmp/x.sock"] and p.controllers_added == ["tcp:127.0.0.1:6653"]
    assert not p.listen_removed


@pytest.mark.parametrize("old, new, key", [
    ("dpdk: {cores: [0, 1]}", "dpdk: {cores: [0]}", "dpdk.cores"),
    ("control: {socket: /tmp/never.sock}", "control: {socket: /tmp/other.sock}", "control.socket"),
    ("control: {socket: /tmp/never.sock}", "control: {socket: /tmp/never.sock, busy_poll_us: 0}",
     "control.busy_poll_us"),
    ("datapath: {pmd_cores: []}", "datapath: {pmd_cores: [1]}", "bridge br0 datapath.pmd_cores"),
    ("openflow: {listen: ['ptcp:0']}", "openflow: {listen: ['ptcp:0'], fail_mode: secure}",
     "bridge br0 openflow.fail_mode"),
    ("bridges:\n", "bridges:\n  br9:\n    datapath: {pmd_cores: []}\n    ports: {q: {device: net_null_rq, ofport: 1}}\n",
     "bridges"),
])
def test_what_cannot_change_live_is_refused_naming_the_key(old, new, key):
    with pytest.raises(ReloadRefused) as e:
        diff(loads(BASE), loads(edit(BASE, (old, new))))
    msg = str(e.value)
    assert msg.startswith(f"reload refused: {key} changed") and "Nothing changed" in msg and "\n" not in msg


# ---------------------------------------------------------------- applied in process

@pytest.fixture
def running(eal, tmp_path):
    path = tmp_path / "sw.yaml"
    text = BASE.replace("listen: ['ptcp:0']", "listen: []")
    path.write_text(text)
    from dpdkswitch.config import load
    sw = Switch(load(str(path)), manual_clock=True)
    sw.start()
    yield sw, path, text
    sw.stop()


def reload(sw):
    return asyncio.run(Reloader(sw).reload())


def rule(br, text):
    spec = parse_flow(text, require_actions=False)
    return next((e for e in br.pipeline.entries(0) if e.priority == spec.priority and e.match == spec.match), None)


def test_reload_applies_the_difference_and_leaves_the_rest(running):
    sw, path, text = running
    br = sw.bridges["br0"]
    arp, default = rule(br, "priority=5,arp"), rule(br, "priority=0")
    arp.packets, default.packets = 7, 9
    br.pipeline.add(parse_flow("priority=50,tcp,actions=drop"))           # a controller's rule
    p1, p3 = br.ports["p1"], br.ports["p3"]
    path.write_text(edit(text, ("ofport: 1, tag: 10", "ofport: 1, tag: 20"),
                         ("      p2: {device: net_null_rl2, ofport: 2, tag: 10}\n",
                          "      p4: {device: net_null_rl4, ofport: 4, tag: 20}\n"),
                         ("port: p2}", "port: p4}"),
                         ("priority=10,icmp,actions=drop", "priority=10,icmp,actions=output:3"),
                         ("idle_time: 300", "idle_time: 60")))
    out = reload(sw)
    assert "port p1 VLANs changed" in out and "port p2 removed" in out and "port p4 added" in out, out
    assert "flows: 1 removed, 1 added, 2 kept" in out, out
    assert set(br.ports) == {"p1", "p3", "p4"}
    assert br.ports["p1"] is p1 and br.ports["p3"] is p3                 # not re-probed
    assert br.pipeline.ports[1].vlan.tag == 20
    assert rule(br, "priority=5,arp") is arp and arp.packets == 7         # unchanged: untouched
    assert rule(br, "priority=0").packets == 9
    assert str(rule(br, "priority=10,icmp").instructions) != str(parse_flow("priority=10,icmp,actions=drop").instructions)
    assert rule(br, "priority=50,tcp") is not None                        # controllers' rules stay
    assert br.pipeline.macs.idle_time == 60
    assert br.pipeline.macs.lookup(10, 0x020000000001) == 4               # the static entry moved to p4
    assert reload(sw) == "no change\n"                                    # the running config is the new one


def test_invalid_or_refused_file_changes_nothing(running):
    sw, path, text = running
    br = sw.bridges["br0"]
    before = (set(br.ports), sorted(str(e.spec()) for e in br.pipeline.entries()), sw.config)
    bad = edit(text, ("ofport: 1, tag: 10", "ofport: 1, tag: 20"),
               ("priority=5,arp,actions=NORMAL", "priority=5,arp,actions=group:7"))
    path.write_text(bad)
    with pytest.raises(ConfigError) as e:
        reload(sw)
    line = next(i for i, l in enumerate(bad.splitlines(), 1) if "group:7" in l)
    assert e.value.path == str(path) and e.value.line == line and "group 7 does not exist" in str(e.value)
    path.write_text(edit(text, ("ofport: 1, tag: 10", "ofport: 1, tag: 20"), ("dpdk: {cores: [0, 1]}", "dpdk: {cores: [0]}")))
    with pytest.raises(ReloadRefused, match="dpdk.cores"):
        reload(sw)
    assert before == (set(br.ports), sorted(str(e.spec()) for e in br.pipeline.entries()), sw.config)
    assert br.pipeline.ports[1].vlan.tag == 10


# ---------------------------------------------------------------- `dpdkswitch run` with hosts

def host_port(name, i, ns, addr, tag):
    return (f"      {name}: {{device: 'net_tap_r{TAG}{i},iface=r{TAG}{i}', ofport: {i}, "
            f"netns: {{name: {ns}, address: {addr}}}, tag: {tag}}}\n")


@pytest.mark.netns
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_reload_while_hosts_ping(tmp_path):
    ns = {h: f"rl{TAG}{h}" for h in "abcde"}
    head = ("dpdk: {cores: [0, 1]}\ncontrol: {socket: @SOCK@}\nbridges:\n  br0:\n    datapath: {pmd_cores: [1]}\n"
            "    ports:\n")
    a, b = host_port("pa", 1, ns["a"], "10.7.0.1/24", 10), host_port("pb", 2, ns["b"], "10.7.0.2/24", 10)
    c20, c10 = host_port("pc", 3, ns["c"], "10.7.0.3/24", 20), host_port("pc", 3, ns["c"], "10.7.0.3/24", 10)
    d, e = host_port("pd", 4, ns["d"], "10.7.0.4/24", 20), host_port("pe", 5, ns["e"], "10.7.0.5/24", 10)
    flows = "    flows: ['priority=100,icmp,nw_dst={},actions=drop', 'priority=0,actions=NORMAL']\n"
    old = head + a + b + c20 + d + flows.format("10.7.0.5")
    new = head + a + b + c10 + e + flows.format("10.7.0.4")
    sw = SwitchProc(tmp_path, old)
    try:
        assert ping(ns["a"], "10.7.0.2") and ping(ns["c"], "10.7.0.4")
        assert not ping(ns["a"], "10.7.0.3", count=1, wait=1)          # VLAN 10 and 20: apart
        # The untouched pair pings throughout everything below.
        steady = subprocess.Popen(["ip", "netns", "exec", ns["a"], "ping", "-c", "300", "-i", "0.05", "-W", "1",
                                   "10.7.0.2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.5)

        sw.path.write_text(new.replace("@SOCK@", sw.sock))
        out = sw.ctl("reload")
        assert "port pc VLANs changed" in out and "port pd removed" in out and "port pe added" in out, out
        assert "flows: 1 removed, 1 added, 1 kept" in out, out
        assert ping(ns["a"], "10.7.0.3")                                 # pc is on VLAN 10 now
        assert ping(ns["a"], "10.7.0.5")                                 # the new port, no longer dropped
        assert " pd " not in sw.ctl("dpif/show")
        assert "nw_dst=10.7.0.4" in sw.ctl("ofctl/dump-flows", "br0")

        # An invalid edit: refused with its file and line; the switch runs on as it was.
        bad = new.replace("nw_dst=10.7.0.4,actions=drop", "nw_dst=10.7.0.4,actions=frobnicate")
        sw.path.write_text(bad.replace("@SOCK@", sw.sock))
        line = next(i for i, l in enumerate(bad.splitlines(), 1) if "frobnicate" in l)
        with pytest.raises(Exception, match=f"reload refused: {sw.path}:{line}: "):
            sw.ctl("reload")
        assert ping(ns["a"], "10.7.0.3") and "frobnicate" not in sw.ctl("ofctl/dump-flows", "br0")

        # SIGHUP does what reload does: pc back on VLAN 20.
        sw.path.write_text(new.replace(c10, c20).replace("@SOCK@", sw.sock))
        sw.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while sw.log.read_text().count("port pc VLANs changed") < 2:     # the reload's log line
            assert time.monotonic() < deadline and sw.proc.poll() is None, sw.log.read_text()
            time.sleep(0.1)
        assert not ping(ns["a"], "10.7.0.3", count=1, wait=1)
        assert ping(ns["a"], "10.7.0.5")

        stats = steady.communicate(timeout=60)[0]
        assert " 0% packet loss" in stats, stats
    finally:
        assert sw.stop() == 0, sw.log.read_text()


def test_reload_sets_mirrors_flooding_listeners_and_controllers(running, tmp_path):
    from dpdkswitch.ofswitch import OpenFlowService
    sw, path, text = running
    br = sw.bridges["br0"]
    lsock = tmp_path / "of.sock"

    async def go():
        service = OpenFlowService(sw, str(tmp_path / "ctl.sock"))
        await service.start()
        ofs = service.switches["br0"]
        try:
            r = Reloader(sw, service)
            path.write_text(edit(text, ("listen: []", f"listen: ['punix:{lsock}'], controllers: ['tcp:127.0.0.1:1']"),
                                 ("      m1: {select_src_port: [p1], output_port: p3}\n",
                                  "      m2: {select_dst_port: [p2], output_vlan: 20}\n"),
                                 ("    mac_table:", "    flood_vlans: [20]\n    mac_table:")))
            out = await r.reload()
            assert f"listener punix:{lsock} added" in out and "mirror m1 removed" in out, out
            assert [m.name for m in br.pipeline.mirrors] == ["m2"] and br.pipeline.mirrors[0].dst == {2}
            assert br.pipeline.flood_vlans == {20}
            assert lsock.exists() and [c.target for c in ofs.controllers] == ["tcp:127.0.0.1:1"]
            assert ofs.flows.fail_open                       # standalone, a controller configured, none up
            path.write_text(text)
            out = await r.reload()
            assert f"listener punix:{lsock} removed" in out and "controller tcp:127.0.0.1:1 removed" in out, out
            assert not lsock.exists() and ofs.controllers == [] and not ofs.flows.fail_open
            assert [m.name for m in br.pipeline.mirrors] == ["m1"] and br.pipeline.flood_vlans == set()
        finally:
            await service.stop()
    asyncio.run(go())


def test_a_port_that_does_not_come_up_is_reported_and_tried_again(running, tmp_path):
    from dpdkswitch.reconfig import ReloadFailed
    sw, path, text = running
    br = sw.bridges["br0"]
    broken = f"      p4: {{device: 'net_pcap_rl4,rx_pcap={tmp_path}/missing.pcap', ofport: 4}}\n"
    bad = edit(text, ("ofport: 1, tag: 10", "ofport: 1, tag: 20"), ("    flows:", broken + "    flows:"))
    path.write_text(bad)
    line = next(i for i, l in enumerate(bad.splitlines(), 1) if "net_pcap_rl4" in l)
    with pytest.raises(ReloadFailed, match=f"{path}:{line}: port p4: "):
        reload(sw)
    assert "p4" not in br.ports and br.pipeline.ports[1].vlan.tag == 20      # the rest is applied
    path.write_text(edit(bad, (f"net_pcap_rl4,rx_pcap={tmp_path}/missing.pcap", "net_null_rl4")))
    assert "port p4 added" in reload(sw) and "p4" in br.ports


async def of_peer(path: str):
    """A peer on the unix socket PATH that has exchanged HELLOs (OpenFlow 1.3): (reader, writer)."""
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(C.encode(C.Hello(versions=(4,), version=4)))
    head = await asyncio.wait_for(reader.readexactly(8), 5)
    await reader.readexactly(int.from_bytes(head[2:4], "big") - 8)
    assert head[1] == 0                                   # OFPT_HELLO
    return reader, writer


async def closed(reader, timeout: float = 5.0) -> bool:
    """Whether the switch closes the peer's connection (EOF) within TIMEOUT, whatever it sends first."""
    try:
        while await asyncio.wait_for(reader.read(65536), timeout):
            pass
        return True
    except asyncio.TimeoutError:
        return False


def test_reload_ends_what_it_removes_and_reconnects_on_a_new_datapath_id(running, tmp_path):
    """A listener removed takes the connections made to it (the others stay); a new datapath id
    closes every OpenFlow connection, .mgmt's too, as Open vSwitch does; a new
    controller_rate_limit is in force at once."""
    from dpdkswitch.ofswitch import OpenFlowService
    sw, path, text = running
    lsock = tmp_path / "of.sock"
    with_listener = edit(text, ("listen: []", f"listen: ['punix:{lsock}']"))
    path.write_text(with_listener)

    async def go():
        service = OpenFlowService(sw, str(tmp_path / "ctl.sock"))
        await service.start()
        ofs = service.switches["br0"]
        try:
            r = Reloader(sw, service)
            await r.reload()
            lr, lw = await of_peer(str(lsock))
            mr, mw = await of_peer(str(tmp_path / "br0.mgmt"))
            await asyncio.sleep(0.05)
            assert len(ofs.conns) == 2
            path.write_text(text)                                        # the listener goes
            out = await r.reload()
            assert f"listener punix:{lsock} removed" in out, out
            assert await closed(lr) and not lsock.exists()
            assert not await closed(mr, timeout=0.3) and len(ofs.conns) == 1   # .mgmt's stays

            old = sw.config.bridges["br0"].datapath_id
            path.write_text(edit(text, ("listen: []", "listen: [], datapath_id: 0x2a, controller_rate_limit: 200")))
            out = await r.reload()
            assert f"datapath_id {old:#018x} -> 0x000000000000002a (its OpenFlow connections reconnect)" in out, out
            assert "controller_rate_limit/controller_burst_limit changed" in out, out
            assert await closed(mr) and ofs.conns == set()
            assert ofs.dpid == 0x2a and (ofs.packets.rate_limit, ofs.packets.burst_limit) == (200, 50)
            mr, mw = await of_peer(str(tmp_path / "br0.mgmt"))          # a new connection, the new id
            mw.write(C.encode(C.FeaturesRequest(version=4, xid=9)))
            head = await asyncio.wait_for(mr.readexactly(8), 5)
            body = await mr.readexactly(int.from_bytes(head[2:4], "big") - 8)
            assert head[1] == 6 and int.from_bytes(body[:8], "big") == 0x2a     # OFPT_FEATURES_REPLY
            assert await r.reload() == "no change\n"
            for w in (lw, mw):
                w.close()
        finally:
            await service.stop()
    asyncio.run(go())


@pytest.mark.netns
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
@pytest.mark.skipif(not os.path.exists("/usr/bin/ovs-ofctl"), reason="needs ovs-ofctl")
def test_reload_removes_a_ports_namespace_and_a_new_datapath_id_reaches_the_controller(tmp_path):
    """`dpdkswitch run`: a reload that removes a port removes the namespace the switch made for
    it (as a stop would), not the others'; one that sets openflow.datapath_id disconnects the
    controller, which reconnects and reads the new id in its features reply, as ovs-ofctl show does."""
    ns = {h: f"rn{TAG}{h}" for h in "abd"}
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.settimeout(30)
    head = ("dpdk: {cores: [0, 1]}\ncontrol: {socket: @SOCK@}\nbridges:\n  br0:\n    datapath: {pmd_cores: []}\n"
            f"    openflow: {{controllers: ['tcp:127.0.0.1:{lsock.getsockname()[1]}'], fail_mode: secure}}\n"
            "    flows: ['priority=0,actions=NORMAL']\n    ports:\n")
    a, b = host_port("pa", 1, ns["a"], "10.8.0.1/24", 10), host_port("pb", 2, ns["b"], "10.8.0.2/24", 10)
    d = host_port("pd", 4, ns["d"], "10.8.0.4/24", 10)
    old = head + a + b + d
    sw = SwitchProc(tmp_path, old)

    def controller() -> tuple[Client, int]:
        conn, _ = lsock.accept()
        conn.settimeout(5)
        c = Client(sock=conn)
        xid = c.send(C.FeaturesRequest())
        (feat,) = [m for m in c.until(xid, C.FeaturesReply) if isinstance(m, C.FeaturesReply)]
        return c, feat.datapath_id

    c = None
    try:
        c, dpid = controller()
        assert ns["d"] in sh("ip", "netns", "list").stdout and ping(ns["a"], "10.8.0.4")
        sw.path.write_text((head.replace("fail_mode: secure", "fail_mode: secure, datapath_id: 0xabc") + a + b)
                           .replace("@SOCK@", sw.sock))
        out = sw.ctl("reload")
        assert "port pd removed" in out and f"datapath_id {dpid:#018x} -> 0x0000000000000abc" in out, out
        names = sh("ip", "netns", "list").stdout.split()
        assert ns["d"] not in names and ns["a"] in names and ns["b"] in names, names
        assert ping(ns["a"], "10.8.0.2")
        while (m := c.recv(timeout=5)) is not None:                   # the switch closes it
            assert not isinstance(m, C.FeaturesReply), m
        c.close()
        c, dpid = controller()                                         # it reconnects (1 s backoff)
        assert dpid == 0xABC
        show = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "show", f"unix:{tmp_path / 'br0.mgmt'}"],
                              capture_output=True, text=True, timeout=30).stdout
        assert "dpid:0000000000000abc" in show.splitlines()[0], show
    finally:
        if c is not None:
            c.close()
        lsock.close()
        assert sw.stop() == 0, sw.log.read_text()
    assert ns["a"] not in sh("ip", "netns", "list").stdout.split()


def test_reload_sets_and_resets_a_tables_flow_limit(running):
    sw, path, text = running
    br = sw.bridges["br0"]
    path.write_text(edit(text, ("    mirrors:", "    flow_tables: {0: {flow_limit: 3}, 5: {flow_limit: 7}}\n    mirrors:")))
    out = reload(sw)
    assert "table 0 flow_limit 3" in out and "table 5 flow_limit 7" in out, out
    assert (br.pipeline.tables[0].flow_limit, br.pipeline.tables[5].flow_limit) == (3, 7)
    from dpdkswitch.ofproto.pipeline import FlowModError
    with pytest.raises(FlowModError, match="table 0 is full"):             # it holds 3 rules
        br.pipeline.add(parse_flow("priority=50,tcp,actions=drop"))
    path.write_text(edit(text, ("    mirrors:", "    flow_tables: {5: {flow_limit: 7}}\n    mirrors:")))
    assert "table 0 flow_limit 1000000" in reload(sw)
    assert br.pipeline.tables[0].flow_limit == 1_000_000
    br.pipeline.add(parse_flow("priority=50,tcp,actions=drop"))
