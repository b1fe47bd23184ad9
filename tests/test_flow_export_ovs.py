"""NetFlow v5 and IPFIX side by side with Open vSwitch 3.1 (its DPDK datapath, run privately by
dpdkswitch.bench.ovs): the same frames through the same table on both, the same collectors'
view of them.  Both export the same record types (NetFlow v5 records; IPFIX's template for
Ethernet/IPv4/UDP, with the same information elements in the same order) with the same
values in the fields that are comparable: per flow the packets and bytes, ports and
addresses, the interfaces, ToS, engine ids; IPFIX's observation domain and point, MACs,
TTL and the packet counts of the ingress records.  (Open
vSwitch also samples before each output, flowDirection 1, which this switch does not: those
records are left out of the comparison.)

Open vSwitch's vswitchd runs in a network namespace of its own: its collectors are a small
UDP dumper started in that namespace (nsenter), after bringing its loopback up."""
import os
import struct
from collections import Counter
import subprocess
import sys
import time

import pytest

from dpdkswitch.bench import ovs as ovsmod
from dpdkswitch.config import loads
from dpdkswitch.ipfix import Ipfix
from dpdkswitch.netflow import NetFlow
from dpdkswitch.ofproto.xlate import sflow_ifindex
from dpdkswitch.sflow import Sflow
from dpdkswitch.switch import Switch

from frames import udp_frame, write_pcap
from test_ipfix import Listener, decode, read_message, send
from test_netflow import free_udp_port, host_port

COUNTS = {0: 25, 1: 40, 2: 7}                   # three UDP flows, each its own 5-tuple and size
FRAMES = [udp_frame(i, size=100 + 10 * i) for i, n in COUNTS.items() for _ in range(n)]
NF_PORT, IX_PORT = 2055, 4739
DUMPER = r"""
import socket, struct, sys, select
socks = []
for port in (%d, %d):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    socks.append(s)
out = open(sys.argv[1], "ab", buffering=0)
while True:
    for s in select.select(socks, [], [])[0]:
        data = s.recv(65535)
        out.write(struct.pack("!HI", s.getsockname()[1], len(data)) + data)
""" % (NF_PORT, IX_PORT)

pytestmark = [pytest.mark.dpdk, pytest.mark.skipif(ovsmod.missing() is not None, reason=str(ovsmod.missing())),
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (Open vSwitch in a namespace)")]


def read_dump(path) -> dict[int, list[bytes]]:
    data, out, pos = open(path, "rb").read(), {NF_PORT: [], IX_PORT: []}, 0
    while pos + 6 <= len(data):
        port, n = struct.unpack_from("!HI", data, pos)
        out[port].append(data[pos + 6:pos + 6 + n])
        pos += 6 + n
    return out


def netflow_records(datagrams: list[bytes]) -> tuple[set, list[dict]]:
    heads, recs = set(), []
    for d in datagrams:
        version, count, _, _, _, _, etype, eid, _ = struct.unpack_from("!HHIIIIBBH", d)
        heads.add((version, etype, eid))
        for i in range(count):
            f = struct.unpack_from("!IIIHHIIIIHHBBBBHHBBH", d, 24 + 48 * i)
            recs.append({"src": f[0], "dst": f[1], "in": f[3], "out": f[4], "packets": f[5], "bytes": f[6],
                         "sport": f[9], "dport": f[10], "proto": f[13], "tos": f[14]})
    return heads, recs


def ipfix_records(datagrams: list[bytes]) -> tuple[dict, list[tuple[int, int, dict]]]:
    msgs = [read_message(d) for d in datagrams]
    templates = {t: f for m in msgs for t, f in m["templates"].items()}
    recs = [(m["domain"], sid, decode(templates, sid, body)) for m in msgs for sid, body in m["data"]]
    return templates, recs


def run_ovs(tmp_path) -> dict[int, list[bytes]]:
    pcap, empty, dump = tmp_path / "in.pcap", tmp_path / "empty.pcap", tmp_path / "ovs-export.bin"
    write_pcap(str(pcap), FRAMES)
    write_pcap(str(empty), [])
    with ovsmod.Ovs(tmp_path / "ovs") as ovs:
        ns = ["nsenter", "-t", str(ovs.vswitchd.pid), "-n"]
        subprocess.run([*ns, "ip", "link", "set", "lo", "up"], check=True, timeout=30)
        dumper = subprocess.Popen([*ns, sys.executable, "-c", DUMPER, str(dump)])
        try:
            time.sleep(0.5)
            ovs.vsctl("--", "--id=@n", "create", "NetFlow", f'targets="127.0.0.1:{NF_PORT}"', "active_timeout=1",
                      "engine_type=7", "engine_id=3",
                      "--", "--id=@i", "create", "IPFIX", f'targets="127.0.0.1:{IX_PORT}"', "sampling=1",
                      "obs_domain_id=7", "obs_point_id=8",
                      "--", "set", "Bridge", ovs.bridge, "netflow=@n", "ipfix=@i")
            tag = ovs.file_prefix.replace("-", "_")
            ovs.add_port("p2", 2, f"net_pcap_{tag}_2,rx_pcap={empty},tx_pcap={tmp_path / 'ovs-out2.pcap'}")
            ovs.add_flows(["in_port=1,actions=output:2"])
            ovs.add_port("p1", 1, f"net_pcap_{tag}_1,rx_pcap={pcap},tx_pcap={tmp_path / 'ovs-out1.pcap'}")
            ovs.start_pmd()
            ovs.wait_rx(1, len(FRAMES))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:             # NetFlow's active timeouts and IPFIX's records in
                got = read_dump(dump) if dump.exists() else {NF_PORT: [], IX_PORT: []}
                nf = sum(r["packets"] for r in netflow_records(got[NF_PORT])[1])
                ix = sum(r[2] for _, _, r in ipfix_records(got[IX_PORT])[1] if r.get(61) == 0)
                if nf >= len(FRAMES) and ix >= len(FRAMES):
                    break
                time.sleep(0.5)
            time.sleep(1)
        finally:
            dumper.kill()
            dumper.wait()
    return read_dump(dump)


def run_ours() -> dict[int, list[bytes]]:
    nf_port, ix_port = free_udp_port(), free_udp_port()
    nf_lis, ix_lis = Listener(nf_port), Listener(ix_port)
    text = f"""\
bridges:
  br0:
    datapath: {{pmd_cores: []}}
    ports:
      idle: {{device: "net_null_fx{os.getpid() % 100000},no-rx=1", ofport: 9}}
    flows: ["in_port=1,actions=output:2"]
    netflow: {{targets: ["127.0.0.1:{nf_port}"], engine_type: 7, engine_id: 3, active_timeout: 1}}
    ipfix: {{targets: ["127.0.0.1:{ix_port}"], sampling: 1, obs_domain_id: 7, obs_point_id: 8}}
"""
    sw = Switch(loads(text, "fx.yaml"), manual_clock=True)
    sw.start()
    br = sw.bridge("br0")
    p1, p2 = host_port(br, "p1", 1), host_port(br, "p2", 2)      # named as Open vSwitch's ports
    nf, ix = NetFlow(br), Ipfix(br)
    try:
        send(br, p1, FRAMES)
        assert len(br.dp.drain(p2)) == len(FRAMES)
        br.backer.revalidator.run()
        br.dp.set_clock(br.dp.now_ns + 11 * 10**9)        # idle: the megaflows expire, NetFlow's records go
        br.backer.revalidator.run()
        got = {NF_PORT: [raw for raw in _raw(nf_lis)], IX_PORT: [raw for raw in _raw(ix_lis)]}
    finally:
        nf.close()
        ix.close()
        sw.stop()
    return got


def _raw(lis: Listener) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(lis.s.recv(65535))
        except TimeoutError:
            return out


def by_flow(recs, key, fields) -> dict:
    out: dict = {}
    for r in recs:
        k = key(r)
        acc = out.setdefault(k, dict.fromkeys(fields, 0))
        for f in fields:
            acc[f] += r[f]
    return out


def ipfix_by_key(recs: list[dict], keys: list[int]) -> dict:
    """Per flow key: packets, layer-2 bytes, IP bytes, their sum of squares added up; minimum
    and maximum IP length."""
    out: dict = {}
    for r in recs:
        k = tuple(r[i] for i in keys)
        acc = out.setdefault(k, {2: 0, 352: 0, 1: 0, 198: 0, 25: r[25], 26: r[26]})
        for i in (2, 352, 1, 198):
            acc[i] += r[i]
        acc[25], acc[26] = min(acc[25], r[25]), max(acc[26], r[26])
    return out


def test_netflow_and_ipfix_export_what_open_vswitch_exports(eal, tmp_path):
    theirs = run_ovs(tmp_path)
    ours = run_ours()

    # NetFlow v5: version and engine ids; per flow the packets, bytes, interfaces, protocol and ToS.
    (th, tr), (oh, orr) = netflow_records(theirs[NF_PORT]), netflow_records(ours[NF_PORT])
    assert th == oh == {(5, 7, 3)}
    five = lambda r: (r["src"], r["dst"], r["sport"], r["dport"], r["proto"], r["tos"], r["in"], r["out"])  # noqa: E731
    assert by_flow(orr, five, ("packets", "bytes")) == by_flow(tr, five, ("packets", "bytes"))
    assert len(by_flow(orr, five, ("packets",))) == 3

    # IPFIX: the same templates for what was sent, and the same ingress records' values.
    (tt, trecs), (ot, orecs) = ipfix_records(theirs[IX_PORT]), ipfix_records(ours[IX_PORT])
    trecs = [t for t in trecs if t[2].get(61) == 0]                  # ingress records (not the exporter stats)
    used = {sid for _, sid, r in trecs}
    assert used == {sid for _, sid, _ in orecs} and len(used) == 1, (used, orecs[:1])
    (sid,) = used
    assert ot[sid] == tt[sid], (ot[sid], tt[sid])
    assert {d for d, _, _ in trecs} == {d for d, _, _ in orecs} == {7}
    # Values per flow: Open vSwitch 3.1 leaves out the sample of each frame its upcall executes
    # (the flow's first, and those its pcap port hands over in the same burst before the
    # megaflow is in: up to all but one of a short flow); this switch counts every frame.
    ours_pk, theirs_pk = {}, {}
    for recs, acc in (([r for _, _, r in orecs], ours_pk), ([r for _, _, r in trecs], theirs_pk)):
        for r in recs:
            k = (r[8], r[12], r[7], r[11], r[4], r[138], r[56], r[80], r[192], r[10])    # 10: ingress ifIndex
            acc[k] = acc.get(k, 0) + r[2]
    assert sorted(ours_pk.values()) == sorted(COUNTS.values())
    assert set(ours_pk) == set(theirs_pk)
    assert all(1 <= theirs_pk[k] <= n for k, n in ours_pk.items()), (ours_pk, theirs_pk)


# -- sFlow v5 ----------------------------------------------------------------------------------

SF_PORT = 6343
SF_DUMPER = r"""
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", %d))
out = open(sys.argv[1], "ab", buffering=0)
while True:
    data = s.recv(65535)
    out.write(struct.pack("!I", len(data)) + data)
""" % SF_PORT


def sflow_decode(dg: bytes) -> dict:
    """An sFlow v5 datagram, down to its records' bodies (bytes): {agent, samples: [{format,
    ..., records: [(format, body)]}]}."""
    version, addr_type = struct.unpack_from("!II", dg, 0)
    off = 8 + (4 if addr_type == 1 else 16)
    sub, seq, uptime, n = struct.unpack_from("!IIII", dg, off)
    out = {"version": version, "agent": dg[8:off], "sub": sub, "samples": []}
    off += 16
    for _ in range(n):
        fmt, length = struct.unpack_from("!II", dg, off)
        body = dg[off + 8:off + 8 + length]
        off += 8 + length
        if fmt == 1:
            seqn, src, rate, pool, drops, inp, outp, nr = struct.unpack_from("!8I", body)
            s = dict(format=1, seq=seqn, src=src, rate=rate, pool=pool, drops=drops, input=inp, output=outp)
            o = 32
        elif fmt == 2:
            seqn, src, nr = struct.unpack_from("!3I", body)
            s, o = dict(format=2, seq=seqn, src=src), 12
        else:
            s, nr = dict(format=fmt), 0
        s["records"] = []
        for _ in range(nr):
            rf, rl = struct.unpack_from("!II", body, o)
            s["records"].append((rf, body[o + 8:o + 8 + rl]))
            o += 8 + rl
        out["samples"].append(s)
    assert off == len(dg)
    return out


def sflow_run_ovs(tmp_path) -> list[bytes]:
    pcap, empty, dump = tmp_path / "in.pcap", tmp_path / "empty.pcap", tmp_path / "ovs-sflow.bin"
    write_pcap(str(pcap), FRAMES)
    write_pcap(str(empty), [])
    with ovsmod.Ovs(tmp_path / "ovs") as ovs:
        ns = ["nsenter", "-t", str(ovs.vswitchd.pid), "-n"]
        subprocess.run([*ns, "ip", "link", "set", "lo", "up"], check=True, timeout=30)
        dumper = subprocess.Popen([*ns, sys.executable, "-c", SF_DUMPER, str(dump)])
        try:
            time.sleep(0.5)
            ovs.vsctl("--", "--id=@s", "create", "sFlow", f'targets="127.0.0.1:{SF_PORT}"', "agent=127.0.0.1",
                      "sampling=1", "polling=1", "header=128", "--", "set", "Bridge", ovs.bridge, "sflow=@s")
            tag = ovs.file_prefix.replace("-", "_")
            ovs.add_port("p2", 2, f"net_pcap_{tag}_2,rx_pcap={empty},tx_pcap={tmp_path / 'ovs-out2.pcap'}")
            ovs.add_flows(["in_port=1,actions=output:2"])
            ovs.add_port("p1", 1, f"net_pcap_{tag}_1,rx_pcap={pcap},tx_pcap={tmp_path / 'ovs-out1.pcap'}")
            ovs.start_pmd()
            ovs.wait_rx(1, len(FRAMES))
            deadline = time.monotonic() + 30       # the flow samples, then counters with every frame counted
            while time.monotonic() < deadline:
                got = [sflow_decode(d) for d in _dump_datagrams(dump)] if dump.exists() else []
                flows = [s for d in got for s in d["samples"] if s["format"] == 1]
                tx = [s for d in got for s in d["samples"] if s["format"] == 2 and s["src"] == sflow_ifindex("p2")
                      and struct.unpack_from("!I", dict(s["records"])[1], 48)[0] == len(FRAMES)]
                if len(flows) >= len(FRAMES) - 3 and tx:
                    break
                time.sleep(0.5)
        finally:
            dumper.kill()
            dumper.wait()
    return _dump_datagrams(dump)


def _dump_datagrams(path) -> list[bytes]:
    data, out, pos = open(path, "rb").read(), [], 0
    while pos + 4 <= len(data):
        (n,) = struct.unpack_from("!I", data, pos)
        out.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    return out


def sflow_run_ours(tmp_path) -> list[bytes]:
    """The same pcap into port p1 (a pcap port, as Open vSwitch's), out of p2 (a pcap port)."""
    port = free_udp_port()
    lis = Listener(port)
    pcap, empty, tag = tmp_path / "ours-in.pcap", tmp_path / "ours-empty.pcap", os.getpid() % 100000
    write_pcap(str(pcap), FRAMES)
    write_pcap(str(empty), [])
    text = f"""\
bridges:
  br0:
    datapath: {{pmd_cores: []}}
    ports:
      p1: {{device: "net_pcap_sfa{tag},rx_pcap={pcap},tx_pcap={tmp_path / 'ours-out1.pcap'}", ofport: 1}}
      p2: {{device: "net_pcap_sfb{tag},rx_pcap={empty},tx_pcap={tmp_path / 'ours-out2.pcap'}", ofport: 2}}
    flows: ["in_port=1,actions=output:2"]
    sflow: {{targets: ["127.0.0.1:{port}"], sampling: 1, polling: 1, header: 128, agent: 127.0.0.1}}
"""
    sw = Switch(loads(text, "sfx.yaml"), manual_clock=True)
    sw.start()
    br = sw.bridge("br0")
    agent = Sflow(br)
    try:
        deadline = time.monotonic() + 30
        while br.port_stats(br.ports["p2"])["tx_packets"] < len(FRAMES) and time.monotonic() < deadline:
            br.dp.poll(4)
            while br.upcalls.handle():
                br.dp.poll(1)
        assert br.port_stats(br.ports["p2"])["tx_packets"] == len(FRAMES)
        br.dp.set_clock(br.dp.now_ns + 2 * 10**9)
        br.backer.revalidator.run()                       # counters polled, the datagrams sent
        return _raw(lis)
    finally:
        agent.close()
        sw.stop()


def test_sflow_exports_what_open_vswitch_exports(eal, tmp_path):
    """sFlow v5 at 1/1 side by side with Open vSwitch 3.1: the same datagram header, flow
    samples with the same records ([1001, 1]) and the same values (source, rate, pool,
    interfaces, VLANs, the raw headers byte for byte), and per port counter samples with the
    same records ([2, 1004, 1005, 1]) and values: ifIndex (Open vSwitch's hash of the port
    name), the Ethernet counters, the OpenFlow port number, the name, the generic counters
    once every frame is counted (pcap ports on both).  Not comparable: the datapath id, and
    Open vSwitch's own samples (its bridge's LOCAL port, its process's app-resources counters
    2203/2207)."""
    theirs = [sflow_decode(d) for d in sflow_run_ovs(tmp_path)]
    ours = [sflow_decode(d) for d in sflow_run_ours(tmp_path)]
    assert {(d["version"], d["agent"]) for d in theirs} == {(d["version"], d["agent"]) for d in ours} \
        == {(5, b"\x7f\0\0\1")}

    def flow_view(s):
        # the raw header record without its XDR padding (Open vSwitch leaves those bytes as
        # they were in its buffer)
        recs = tuple((f, b[:16 + struct.unpack_from("!I", b, 12)[0]] if f == 1 else b) for f, b in s["records"])
        return (s["src"], s["rate"], s["drops"], s["input"], s["output"], recs)
    tf = [s for d in theirs for s in d["samples"] if s["format"] == 1]
    of = [s for d in ours for s in d["samples"] if s["format"] == 1]
    assert len(of) == len(FRAMES) and len(tf) >= len(FRAMES) - 3, (len(tf), len(of))
    assert [s["pool"] for s in of] == [s["seq"] for s in of] == list(range(1, len(FRAMES) + 1))
    assert [s["pool"] for s in tf] == [s["seq"] for s in tf]
    assert [r[0] for r in of[0]["records"]] == [r[0] for r in tf[0]["records"]] == [1001, 1]
    assert (of[0]["input"], of[0]["output"]) == (sflow_ifindex("p1"), sflow_ifindex("p2"))
    theirs_flows, ours_flows = Counter(map(flow_view, tf)), Counter(map(flow_view, of))
    assert set(theirs_flows) == set(ours_flows) and all(ours_flows[k] - theirs_flows[k] in (0, 1) for k in ours_flows)

    def last_counters(dgs, port):
        cs = [s for d in dgs for s in d["samples"] if s["format"] == 2 and s["src"] == sflow_ifindex(port)]
        assert cs, port
        return cs[-1]
    for port in ("p1", "p2"):
        t, o = last_counters(theirs, port), last_counters(ours, port)
        assert [f for f, _ in t["records"]] == [f for f, _ in o["records"]] == [2, 1004, 1005, 1]
        tr, orr = dict(t["records"]), dict(o["records"])
        assert tr[2] == orr[2]                                      # Ethernet counters
        assert tr[1004][8:] == orr[1004][8:]                        # the OpenFlow port number
        assert tr[1005] == orr[1005]                                # the port name
        assert tr[1] == orr[1], (port, tr[1].hex(), orr[1].hex())   # generic: every frame and byte counted
