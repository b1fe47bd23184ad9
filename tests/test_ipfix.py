"""IPFIX (RFC 7011): bridge-level sampling and the OpenFlow sample action's collector sets,
decoded by pmacct's ``nfacctd`` (Debian's pmacct): templates and records decode, per-flow
packets and bytes match the traffic sent.  (nfdump 1.7 reads Open vSwitch 3.1's records'
packetTotalCount, the exporter's running total, as the flow's packets: it cannot check these.)
A small RFC 7011 reader here checks what a collector does not print: templates before the first data and again after
600 s, sequence numbers, observation domain and point.  Deterministic: ring-backed ports, the
slow path run by hand on the manual clock."""
import os
import shutil
import socket
import struct
import subprocess
import time

import pytest

from dpdkswitch.config import ConfigError, loads
from dpdkswitch.datapath import odp
from dpdkswitch.ofproto.xlate import FLOW_SAMPLE_COOKIE
from dpdkswitch.ipfix import TEMPLATE_INTERVAL_S, TEMPLATE_SETS, TEMPLATES, Ipfix
from dpdkswitch.switch import Switch

from frames import udp_frame
from test_netflow import free_udp_port, host_port
from test_netflow import send as send_frames

CONFIG = """\
bridges:
  br0:
    datapath: {pmd_cores: []}
    ports:
      idle: {device: "net_null_ix%(tag)s,no-rx=1", ofport: 9}
    flows: [%(flows)s]
    ipfix:
%(ipfix)s
"""
BRIDGE_LEVEL = """\
      targets: ["127.0.0.1:%(port)d"]
      sampling: 1
      obs_domain_id: 7
      obs_point_id: 8
      cache_active_timeout: %(timeout)d
      cache_max_flows: %(max_flows)d"""
COLLECTOR_SET = """\
      collector_sets:
        5: {targets: ["127.0.0.1:%(port)d"]}"""
SAMPLE_FLOW = ('"in_port=1,actions=sample(probability=65535,collector_set_id=5,obs_domain_id=9,obs_point_id=10),'
               'output:2", "in_port=3,actions=sample(probability=65535,collector_set_id=6),output:2"')


def send(br, p1, frames):
    """Frames in, the slow path run until it is idle (the samples of the missed frames it
    executed come up as upcalls of their own)."""
    send_frames(br, p1, frames)
    while br.upcalls.handle():
        br.dp.poll(2)


def switch_with(ipfix: str, flows: str = '"in_port=1,actions=output:2"', **kw):
    text = CONFIG % {"tag": os.getpid() % 100000, "flows": flows, "ipfix": ipfix % kw}
    sw = Switch(loads(text, "ix.yaml"), manual_clock=True)
    sw.start()
    br = sw.bridge("br0")
    p1, p2 = host_port(br, "h1", 1), host_port(br, "h2", 2)
    return sw, br, p1, p2


class Listener:
    """A plain UDP socket: the IPFIX messages as they came."""

    def __init__(self, port: int):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", port))
        self.s.settimeout(0.5)

    def messages(self) -> list[dict]:
        out = []
        while True:
            try:
                data = self.s.recv(65535)
            except TimeoutError:
                return out
            out.append(read_message(data))


def read_message(data: bytes) -> dict:
    """RFC 7011: the header, template records (set 2; options templates, set 3, too) and data
    sets (as raw bytes by set id).  A field is its IE id, or (enterprise, id) for an
    enterprise-specific one."""
    version, length, export, seq, dom = struct.unpack_from("!HHIII", data)
    assert version == 10 and length == len(data)
    msg = {"export": export, "seq": seq, "domain": dom, "templates": {}, "data": []}
    pos = 16
    while pos < length:
        sid, slen = struct.unpack_from("!HH", data, pos)
        body = data[pos + 4:pos + slen]
        if sid in (2, 3):
            i = 0
            while i + 4 <= len(body):
                tid, n = struct.unpack_from("!HH", body, i)
                i += 6 if sid == 3 else 4                  # an options template: its scope count
                fields = []
                for _ in range(n):
                    ie, size = struct.unpack_from("!HH", body, i)
                    i += 4
                    if ie & 0x8000:
                        fields.append(((struct.unpack_from("!I", body, i)[0], ie & 0x7FFF), size))
                        i += 4
                    else:
                        fields.append((ie, size))
                msg["templates"][tid] = fields
        else:
            msg["data"].append((sid, body))
        pos += slen
    return msg


def decode(templates: dict, sid: int, body: bytes) -> dict:
    """One data record (the set holds one) by its template: integers up to 8 bytes, else bytes."""
    out, pos = {}, 0
    for ie, n in templates[sid]:
        if n == 0xFFFF:                                # variable length
            n, pos = body[pos], pos + 1
            if n == 255:
                n, pos = struct.unpack_from("!H", body, pos)[0], pos + 2
        v = body[pos:pos + n]
        out[ie] = int.from_bytes(v, "big") if n <= 8 else v
        pos += n
    assert pos == len(body)
    return out


class Nfacctd:
    """pmacct's IPFIX/NetFlow collector on a port, printing flows aggregated by 5-tuple to a
    CSV file; ``records()`` waits for its last refresh, stops it and adds the rows up per flow."""

    def __init__(self, tmp_path, port: int):
        self.csv = tmp_path / "nfacctd.csv"
        conf = tmp_path / "nfacctd.conf"
        conf.write_text(f"daemonize: false\nnfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\nplugins: print\n"
                        f"aggregate: src_host, dst_host, src_port, dst_port, proto\nprint_output: csv\n"
                        f"print_output_file: {self.csv}\nprint_output_file_append: true\nprint_refresh_time: 1\n")
        self.log = tmp_path / "nfacctd.log"
        self.proc = subprocess.Popen(["nfacctd", "-f", str(conf)], stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while "waiting for NetFlow/IPFIX data" not in self.log.read_text():
            assert self.proc.poll() is None and time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def records(self) -> dict[tuple, list[int]]:
        time.sleep(2.5)                          # two refreshes
        self.stop()
        out: dict[tuple, list[int]] = {}
        for line in self.csv.read_text().splitlines():
            f = line.split(",")
            if f[0] == "SRC_IP":
                continue
            acc = out.setdefault((f[0], f[1], int(f[2]), int(f[3]), f[4]), [0, 0])
            acc[0] += int(f[5])
            acc[1] += int(f[6])
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()                     # its refreshes wrote the file; SIGTERM makes it linger
            self.proc.wait(timeout=20)


pytestmark = [pytest.mark.dpdk]
needs_nfacctd = pytest.mark.skipif(not shutil.which("nfacctd"), reason="pmacct (Debian) not installed")


@needs_nfacctd
@pytest.mark.parametrize("timeout,max_flows", [(0, 0), (60, 100)], ids=["every-sample", "cached"])
def test_bridge_sampling_records_decode_in_nfacctd_with_the_traffic_sent(eal, tmp_path, timeout, max_flows):
    """Sampling 1/1: per flow, the packets and bytes nfacctd adds up are those sent, whether each
    sample is its own record (the defaults) or the cache aggregates them until the active timeout."""
    port = free_udp_port()
    col = Nfacctd(tmp_path, port)
    sw, br, p1, p2 = switch_with(BRIDGE_LEVEL, port=port, timeout=timeout, max_flows=max_flows)
    ix = Ipfix(br)
    try:
        counts = {0: 50, 1: 120, 2: 7}
        frames = [udp_frame(i, size=100 + 10 * i) for i, n in counts.items() for _ in range(n)]
        send(br, p1, frames)
        assert len(br.dp.drain(p2)) == len(frames)
        br.backer.revalidator.run()
        if timeout:
            assert sum(len(ex.cache) for ex in ix.exporters()) == 3 and not ix.exporter.records
            br.dp.set_clock(br.dp.now_ns + timeout * 10**9)
            br.backer.revalidator.run()
        assert not ix.exporter.cache
        assert ix.exporter.records == (3 if timeout else len(frames))
        recs = col.records()
    finally:
        ix.close()
        col.stop()
        sw.stop()
    assert {k[2] for k in recs} == {1024, 1025, 1026}, recs
    for i, n in counts.items():
        key = (f"10.0.0.{i}", f"172.16.0.{i * 7}", 1024 + i, 53, "udp")
        assert recs[key] == [n, n * (100 + 10 * i - 14)], recs     # octetDeltaCount: IP bytes


def test_templates_first_and_again_after_600_s_with_domain_point_and_sequence(eal):
    port = free_udp_port()
    lis = Listener(port)
    sw, br, p1, p2 = switch_with(BRIDGE_LEVEL, port=port, timeout=0, max_flows=0)
    ix = Ipfix(br)
    try:
        send(br, p1, [udp_frame(1, size=200)] * 3)
        br.backer.revalidator.run()
        first = lis.messages()
        br.dp.set_clock(br.dp.now_ns + 100 * 10**9)       # within the template interval: data alone
        send(br, p1, [udp_frame(1, size=200)])
        br.backer.revalidator.run()
        second = lis.messages()
        br.dp.set_clock(br.dp.now_ns + TEMPLATE_INTERVAL_S * 10**9)
        send(br, p1, [udp_frame(1, size=200)])
        br.backer.revalidator.run()
        third = lis.messages()
        shown = ix.show()
    finally:
        ix.close()
        sw.stop()
    templates = {t: f for m in first for t, f in m["templates"].items()}
    assert set(templates) == set(TEMPLATES) and len(templates) == 22
    assert first[0]["templates"] and not first[0]["data"]            # templates before the data
    assert not any(m["templates"] for m in second) and {t for m in third for t in m["templates"]} == set(TEMPLATES)
    data = [(m, sid, body) for m in first + second + third for sid, body in m["data"]]
    assert len(data) == 5 and all(m["domain"] == 7 for m, _, _ in data)
    seqs = [m["seq"] for m in first + second + third if m["data"]]
    assert seqs == sorted(seqs) and seqs[0] == 0 and seqs[-1] == 4            # data records sent before each
    for _, sid, body in data:
        r = decode(templates, sid, body)
        assert r[138] == 8 and r[61] == 0                    # observation point; ingress
        assert (r[8], r[12], r[7], r[11], r[4]) == (0x0A000001, 0xAC100007, 1025, 53, 17)
        assert (r[2], r[352], r[1], r[25], r[26], r[136]) == (1, 200, 186, 186, 186, 2)
        assert r[56] == 0x020000000001 and r[80] == 0x020000000002 and r[256] == 0x0800
    assert "samples: 5" in shown and "records sent: 5" in shown and f"template sets sent: {2 * len(TEMPLATE_SETS)}" in shown, shown


def test_sample_action_exports_to_its_collector_set_only(eal):
    """The sample action's frames go to collector set 5 with the action's domain and point; a
    sample naming a set that is not configured (6) is counted, not sent; no bridge-level
    sampling here, so the other flows sample nothing."""
    port = free_udp_port()
    lis = Listener(port)
    sw, br, p1, p2 = switch_with(COLLECTOR_SET, flows=SAMPLE_FLOW, port=port)
    p3 = host_port(br, "h3", 3)
    ix = Ipfix(br)
    try:
        send(br, p1, [udp_frame(3, size=120)] * 10)
        send(br, p3, [udp_frame(4)] * 4)
        assert len(br.dp.drain(p2)) == 14
        acts = [odp.decode(f["actions"]) for f in br.dp.flow_dump()]
        br.backer.revalidator.run()
        msgs = lis.messages()
    finally:
        ix.close()
        sw.stop()
    assert len(acts) == 2 and all(isinstance(a[0], odp.Userspace) and a[0].cookie & FLOW_SAMPLE_COOKIE
                                  and isinstance(a[1], odp.Output) for a in acts), acts    # probability 65535: every frame
    templates = {t: f for m in msgs for t, f in m["templates"].items()}
    recs = [decode(templates, sid, body) for m in msgs for sid, body in m["data"]]
    assert {m["domain"] for m in msgs} == {9}
    assert len(recs) == 10 and all(r[138] == 10 and r[7] == 1027 and r[2] == 1 and r[352] == 120 for r in recs)
    assert ix.unknown_set == 4 and ix.sets[5].samples == 10


def test_ipfix_config_errors_name_the_line():
    base = CONFIG % {"tag": 0, "flows": "", "ipfix": BRIDGE_LEVEL % {"port": 4739, "timeout": 0, "max_flows": 0}}
    for old, new, what in (("sampling: 1", "sampling: 0", "sampling"),
                           ("obs_domain_id: 7", "obs_domain_id: 4294967296", "obs_domain_id"),
                           ("cache_active_timeout: 0", "cache_active_timeout: 5000", "cache_active_timeout"),
                           ('targets: ["127.0.0.1:4739"]', 'targets: ["nowhere"]', "targets")):
        with pytest.raises(ConfigError) as e:
            loads(base.replace(old, new), "ix.yaml")
        assert str(e.value).startswith("ix.yaml:") and what in str(e.value), str(e.value)
    with pytest.raises(ConfigError) as e:
        loads(base.replace('targets: ["127.0.0.1:4739"]', "targets: []"), "ix.yaml")
    assert str(e.value).startswith("ix.yaml:7: ") and "collector_sets" in str(e.value)
    with pytest.raises(ConfigError) as e:
        loads(CONFIG % {"tag": 0, "flows": "", "ipfix": "      collector_sets: {x: {targets: []}}"}, "ix.yaml")
    assert str(e.value).startswith("ix.yaml:8: ") and "collector set id" in str(e.value), str(e.value)


@needs_nfacctd
@pytest.mark.netns
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_ovs_ofctl_sample_action_on_dpdkswitch_run_exports_pings_to_nfcapd(tmp_path):
    """`dpdkswitch run` with a collector set: ovs-ofctl adds a flow with the sample action (its
    NXAST_SAMPLE on the wire), dump-flows prints it back as ovs-ofctl writes it, the hosts' pings
    come out of pmacct's nfacctd as ICMP records, and ipfix/show counts what went."""
    from test_openflow_ofctl import flows, ofctl, ping, start_switch

    port = free_udp_port()
    col = Nfacctd(tmp_path, port)
    sample = "sample(probability=65535,collector_set_id=3,obs_domain_id=1,obs_point_id=2)"
    sw = start_switch(tmp_path, f"{os.getpid() % 10000}i",
                      {"openflow": {"fail_mode": "secure"},
                       "ipfix": {"collector_sets": {3: {"targets": [f"127.0.0.1:{port}"]}}}})
    try:
        for version in ("OpenFlow10", "OpenFlow13"):
            ofctl(version, "del-flows", sw.tcp)
            ofctl(version, "add-flow", sw.tcp, f"priority=10,icmp,actions={sample},NORMAL")
            ofctl(version, "add-flow", sw.tcp, "priority=5,actions=NORMAL")
            got = flows(version, sw.tcp, "icmp")
            assert len(got) == 1 and got[0].endswith(f"actions={sample},NORMAL"), got
        (h1, a1), (_, a2) = sw.hosts["p1"], sw.hosts["p2"]
        assert ping(h1, a2, count=5)
        time.sleep(1.5)                          # a revalidator pass or two
        shown = sw.ctl("ipfix/show")
        recs = col.records()
    finally:
        log = sw.stop()
        col.stop()
    assert sw.proc.returncode == 0, log
    assert "collector set 3 to 127.0.0.1:%d" % port in shown and "records sent: 0" not in shown, shown
    there = sum(v[0] for k, v in recs.items() if k[:2] == (a1, a2) and k[4] == "icmp")
    back = sum(v[0] for k, v in recs.items() if k[:2] == (a2, a1) and k[4] == "icmp")
    assert there == 5 and back == 5, recs
