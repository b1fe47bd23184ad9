"""sFlow v5: the datapath samples 1 in N frames, the agent sends flow and counter samples;
decoded by os-ken's sFlow decoder and by pmacct's sfacctd (Debian's pmacct).  Deterministic:
ring-backed ports, the slow path run by hand on the manual clock."""
import os
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest

from dpdkswitch.config import PortConfig, loads
from dpdkswitch.ofproto.pipeline import PortEntry
from dpdkswitch.ofproto.xlate import sflow_ifindex
from dpdkswitch.sflow import Sflow
from dpdkswitch.switch import Bridge, Port, Switch

from frames import udp_frame

pytestmark = pytest.mark.dpdk

CONFIG = """\
bridges:
  br0:
    datapath: {pmd_cores: []}
    ports:
      idle: {device: "net_null_sf%(tag)s,no-rx=1", ofport: 9}
    flows: ["in_port=1,actions=output:2"]
    sflow: {targets: ["127.0.0.1:%(port)d"], sampling: %(n)d, polling: 1, header: 64, agent: 192.0.2.1}
"""


def host_port(br: Bridge, name: str, ofport: int) -> int:
    dp_port = br.backer.free_dp_port()
    br.dp.add_test_port(dp_port, f"sf{os.getpid() % 100000}{name}")
    pc = PortConfig(name=name, device="", ofport=ofport)
    br.ports[name] = Port(name, ofport, dp_port, pc, br.dp.port_info(dp_port))
    br.pipeline.set_port(PortEntry(ofport, name, dp_port, vlan=Bridge._vlan(pc)))
    return dp_port


def make(eal, port: int, n: int):
    sw = Switch(loads(CONFIG % {"tag": os.getpid() % 100000, "port": port, "n": n}, "sf.yaml"), manual_clock=True)
    sw.start()
    br = sw.bridge("br0")
    p1, p2 = host_port(br, "h1", 1), host_port(br, "h2", 2)
    return sw, br, p1, p2


def send(br, p1, p2, frames) -> int:
    out = 0
    for i in range(0, len(frames), 32):
        br.dp.inject(p1, frames[i:i + 32])
        br.dp.poll(2)
        br.upcalls.handle()
        out += len(br.dp.drain(p2))
    br.dp.poll(2)
    br.upcalls.handle()
    return out + len(br.dp.drain(p2))


def test_one_in_n_sampled_headers_byte_exact_and_counters_as_dpif_show(eal):
    from os_ken.lib.xflow import sflow as oskflow

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)           # SO_RCVBUFFORCE: every datagram kept
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2)
    sw, br, p1, p2 = make(eal, rx.getsockname()[1], 10)
    agent = Sflow(br)
    try:
        frames = [udp_frame(i % 5, size=90) for i in range(20000)]
        assert send(br, p1, p2, frames) == len(frames)       # sampling takes nothing from forwarding
        br.dp.set_clock(br.dp.now_ns + 2 * 10**9)
        br.backer.revalidator.run()                          # counters polled, datagrams flushed
        flows, counters = [], []
        while True:
            try:
                data = rx.recv(65535)
            except socket.timeout:
                break
            d = oskflow.sFlow.parser(data)
            assert d.version == 5 and d.agent_address == 0xC0000201       # 192.0.2.1
            for s in d.samples:
                (flows if s.sample_format == 1 else counters).append(s.sample)
        got = len(flows)
        assert abs(got - len(frames) / 10) <= 0.05 * len(frames) / 10, got     # 2,000 ± 5 %
        assert agent.flow_samples == got
        sent = set(frames)
        for f in flows:
            assert (f.input_if, f.output_if, f.sampling_rate) == (sflow_ifindex("h1"), sflow_ifindex("h2"), 10)
            assert (f.source_id_type, f.source_id_index) == (2, 1000)           # the bridge, as Open vSwitch's
            (hdr,) = [r.flow_data for r in f.flow_records if r.flow_data_format == 1]
            assert hdr.frame_length == 90 + 4 and hdr.stripped == 4 and hdr.header_size == 64
            h = hdr.header if isinstance(hdr.header, bytes) else b"".join(hdr.header)   # os-ken: bytes one by one
            assert h[:64] in {fr[:64] for fr in sent}                              # byte-exact
            assert [r.flow_data_format for r in f.flow_records] == [1001, 1]
        by_if = {}
        for c in counters:
            for r in c.counters_records:
                if r.counter_data_format == 1:
                    by_if[r.counter_data.ifIndex] = r.counter_data
        assert set(by_if) == {sflow_ifindex(n) for n in ("h1", "h2", "idle")}
        for name, dp_port, ofport in (("h1", p1, 1), ("h2", p2, 2)):
            st, g = br.dp.port_stats(dp_port), by_if[sflow_ifindex(name)]
            assert (g.ifInUcastPkts, g.ifOutUcastPkts, g.ifInOctets, g.ifOutOctets) == \
                   (st["rx_packets"], st["tx_packets"], st["rx_bytes"], st["tx_bytes"])
    finally:
        agent.close()
        sw.stop()
        rx.close()


def flow_samples_in(data: bytes) -> int:
    """Flow samples (format 1) in an sFlow v5 datagram with an IPv4 agent."""
    n, off, flows = int.from_bytes(data[24:28], "big"), 28, 0
    for _ in range(n):
        fmt, length = struct.unpack_from("!II", data, off)
        flows += fmt == 1
        off += 8 + length
    assert off == len(data)
    return flows


def test_a_million_frames_at_1_in_100_give_10000_samples(eal):
    """The issue's figure: 1,000,000 frames through the datapath at 1/100 yield 10,000 flow
    samples ± 5 % at the collector, and every frame is forwarded (to a null port, 1,024 a
    burst through a ring port)."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(1)
    sw = Switch(loads((CONFIG % {"tag": os.getpid() % 100000, "port": rx.getsockname()[1], "n": 100}).replace(
        "in_port=1,actions=output:2", "in_port=1,actions=output:9"), "sf.yaml"), manual_clock=True)
    sw.start()
    br = sw.bridge("br0")
    p1 = host_port(br, "h1", 1)
    agent = Sflow(br)
    try:
        burst = [udp_frame(i % 7, size=64) for i in range(1024)]
        total = 1_000_000
        for start in range(0, total, len(burst)):
            br.dp.inject(p1, burst[:total - start])
            br.dp.poll(40)
            br.upcalls.handle()
        br.dp.poll(4)
        br.upcalls.handle()
        br.backer.revalidator.run()                              # the last datagram flushed
        assert br.dp.port_stats(br.ports["idle"].dp_port)["tx_packets"] == total
        got = 0
        while True:
            try:
                got += flow_samples_in(rx.recv(65535))
            except socket.timeout:
                break
        assert agent.flow_samples == got == br.upcalls.stats.sflow_samples
        assert abs(got - 10_000) <= 500, got
        print(f"1,000,000 frames at 1/100: {got} flow samples")
    finally:
        agent.close()
        sw.stop()
        rx.close()


@pytest.mark.skipif(not shutil.which("sfacctd"), reason="pmacct (Debian) not installed")
def test_sfacctd_decodes_the_flow_samples(eal, tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "flows.csv"
    conf = tmp_path / "sfacctd.conf"
    conf.write_text(f"daemonize: false\nsfacctd_ip: 127.0.0.1\nsfacctd_port: {port}\nplugins: print\n"
                    "aggregate: src_host, dst_host, proto, src_port, dst_port, in_iface, out_iface\n"
                    f"print_output: csv\nprint_output_file: {out}\nprint_refresh_time: 1\n")
    col = subprocess.Popen(["sfacctd", "-f", str(conf)], stdout=open(tmp_path / "sfacctd.log", "w"),
                           stderr=subprocess.STDOUT)
    time.sleep(1.5)
    sw, br, p1, p2 = make(eal, port, 4)
    agent = Sflow(br)
    try:
        send(br, p1, p2, [udp_frame(3, size=100)] * 4000)
        br.backer.revalidator.run()
        time.sleep(3)                                 # the print plugin writes every second
        col.send_signal(signal.SIGINT)
        col.wait(timeout=20)
        text = out.read_text() if out.exists() else ""
        rows = [line.split(",") for line in text.splitlines()]
        assert rows and rows[0][0].upper().startswith("IN_IFACE") or "SRC_IP" in text.upper(), \
            text + (tmp_path / "sfacctd.log").read_text()
        head = [h.strip().upper() for h in rows[0]]
        data = [dict(zip(head, r)) for r in rows[1:]]
        ours = [d for d in data if d.get("SRC_IP") == "10.0.0.3"]
        assert ours, data
        total = sum(int(d["PACKETS"]) for d in ours)
        assert total == agent.flow_samples and abs(total - 1000) <= 50, (total, agent.flow_samples)
        ifs = (str(sflow_ifindex("h1")), str(sflow_ifindex("h2")), "53")
        assert all((d["IN_IFACE"], d["OUT_IFACE"], d["DST_PORT"]) == ifs for d in ours), ours
    finally:
        if col.poll() is None:
            col.kill()
            col.wait()
        agent.close()
        sw.stop()


@pytest.mark.netns
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_dpdkswitch_run_samples_a_hosts_traffic_on_its_pmd(tmp_path):
    """`dpdkswitch run` on the default config (a PMD thread) with sFlow 1/2: a host's 400
    datagrams give about 200 flow samples, with the input and output ports; counter samples
    come every second; sflow/show says what was sent."""
    import sys

    import yaml

    from os_ken.lib.xflow import sflow as oskflow

    from dpdkswitch.control import call
    from test_run import default_config, wait_started

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.5)
    path, sock, hosts = default_config(tmp_path, None)
    cfg = yaml.safe_load(path.read_text())
    cfg["bridges"]["br0"]["sflow"] = {"targets": [f"127.0.0.1:{rx.getsockname()[1]}"], "sampling": 2, "polling": 1}
    path.write_text(yaml.safe_dump(cfg))
    log = open(tmp_path / "switch.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "dpdkswitch", "run", str(path), "--no-top"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wait_started(proc, sock, tmp_path / "switch.log")
        (h1, a1), (_, a2) = hosts["p1"], hosts["p2"]
        send = ("import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                "s.bind(('0.0.0.0',4444))\n"
                "for i in range(400):\n    s.sendto(b'q'*60,(%r,5555)); time.sleep(0.002)\n" % a2)
        subprocess.run(["ip", "netns", "exec", h1, sys.executable, "-c", send], check=True, timeout=60)
        time.sleep(2)
        shown = call(sock, "sflow/show", [])
        flows, counters = [], 0
        deadline = time.monotonic() + 10         # counter samples keep coming: read what is there
        while time.monotonic() < deadline:
            try:
                d = oskflow.sFlow.parser(rx.recv(65535))
            except socket.timeout:
                break
            for s in d.samples:
                if s.sample_format == 1:
                    flows.append(s.sample)
                else:
                    counters += 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        rx.close()
    ours = []
    for f in flows:
        (hdr,) = [r.flow_data for r in f.flow_records if r.flow_data_format == 1]
        h = hdr.header if isinstance(hdr.header, bytes) else b"".join(hdr.header)
        if (h[12:14] == b"\x08\x00" and h[23] == 17 and h[26:30] == socket.inet_aton(a1)
                and h[34:38] == (4444).to_bytes(2, "big") + (5555).to_bytes(2, "big")):
            ours.append(f)
    assert 140 <= len(ours) <= 260, (len(ours), shown)          # 400 at 1/2: 200, binomial spread
    assert all((f.input_if, f.output_if, f.sampling_rate) == (sflow_ifindex("p1"), sflow_ifindex("p2"), 2) for f in ours)
    assert counters >= 2 * 2                                      # two ports, every second
    assert "flow samples: 0" not in shown and "sampling 1/2" in shown, shown


# ---- the PMDs' sample rings (csrc/sflow.c): records, not upcalls ----

def make_ring(eal, port: int, n: int, header: int):
    cfg = (CONFIG % {"tag": os.getpid() % 100000, "port": port, "n": n}).replace("header: 64", f"header: {header}")
    sw = Switch(loads(cfg, "sf.yaml"), manual_clock=True)
    sw.start()
    br = sw.bridge("br0")
    p1, p2 = host_port(br, "h1", 1), host_port(br, "h2", 2)
    return sw, br, p1, p2


def collector():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(1)
    return rx


def flow_samples_of(rx) -> list[bytes]:
    """Every flow sample (format 1) received, as its XDR bytes (record header included)."""
    out = []
    while True:
        try:
            data = rx.recv(65535)
        except socket.timeout:
            return out
        n, off = int.from_bytes(data[24:28], "big"), 28
        for _ in range(n):
            fmt, length = struct.unpack_from("!II", data, off)
            if fmt == 1:
                out.append(data[off:off + 8 + length])
            off += 8 + length


def expected_sample(frame: bytes, seq: int, rate: int, pool: int, drops: int, in_if: int, out_if: int,
                    header: int) -> bytes:
    """sFlow v5's flow sample of FRAME as Open vSwitch 3.1 sends it (and as sflow.py sent it
    before the datapath encoded it): extended switch, then the raw header."""
    vlan = prio = 0
    if frame[12:14] in (b"\x81\x00", b"\x88\xa8"):
        tci = int.from_bytes(frame[14:16], "big")
        vlan, prio = tci & 0xFFF, tci >> 13
    h = frame[:header]
    raw = struct.pack("!IIII", 1, len(frame) + 4, 4, len(h)) + h + b"\0" * (-len(h) % 4)
    switch = struct.pack("!IIII", vlan, prio, vlan, prio)
    records = struct.pack("!II", 1001, 16) + switch + struct.pack("!II", 1, len(raw)) + raw
    body = struct.pack("!IIIIIIII", seq, PHYSICAL_SOURCE, rate, pool, drops, in_if, out_if, 2) + records
    return struct.pack("!II", 1, len(body)) + body


PHYSICAL_SOURCE = (2 << 24) | 1000


def tagged(frame: bytes, vid: int, pcp: int) -> bytes:
    return frame[:12] + b"\x81\x00" + ((pcp << 13) | vid).to_bytes(2, "big") + frame[12:]


def test_ring_samples_are_byte_exact_flow_samples(eal):
    """Every frame sampled (1/1), any size and tagged or not: each flow sample at the collector
    is byte for byte the one Open vSwitch's encoding gives (header bytes, lengths, VLAN,
    sequence numbers, pool), in the order the frames came."""
    rx = collector()
    sw, br, p1, p2 = make_ring(eal, rx.getsockname()[1], 1, 256)
    agent = Sflow(br)
    try:
        frames = []
        for i in range(300):
            f = udp_frame(i, size=60 + (i * 37) % 1400)
            frames.append(tagged(f, i % 4095 + 1, i % 8) if i % 3 == 0 else f)
        assert send(br, p1, p2, frames) == len(frames)
        br.backer.revalidator.run()
        got = flow_samples_of(rx)
        assert len(got) == len(frames) == agent.flow_samples
        for i, (fr, s) in enumerate(zip(frames, got)):
            assert s == expected_sample(fr, i + 1, 1, i + 1, 0, sflow_ifindex("h1"), sflow_ifindex("h2"), 256), i
    finally:
        agent.close()
        sw.stop()
        rx.close()


def test_a_full_sample_ring_counts_what_it_drops_and_forwards_everything(eal):
    """Nobody drains the rings: past DPS_SFLOW_RING records the PMD drops samples and counts
    them (sflow_lost), forwards every frame still; the records kept are taken whole, the samples
    sent from then on carry the drops, and Prometheus's counters say the same."""
    from dpdkswitch.datapath import MANUAL_PMD, lib
    from dpdkswitch.metrics import Metrics
    rx = collector()
    sw, br, p1, p2 = make_ring(eal, rx.getsockname()[1], 1, 64)
    agent = Sflow(br)
    ring = lib.DPS_SFLOW_RING
    try:
        total = ring + 3000
        frames = [udp_frame(i, size=64) for i in range(total + 1)]
        assert send(br, p1, p2, frames[:1]) == 1                # the flow in the datapath (its miss sampled too)
        assert agent.flow_samples == 1
        frames = frames[1:]
        out = 0
        for i in range(0, total, 32):
            br.dp.inject(p1, frames[i:i + 32])
            br.dp.poll(2)
            out += len(br.dp.drain(p2))
        assert out == total                                     # sampling takes nothing from forwarding
        st = br.dp.pmd_stats()[MANUAL_PMD]
        assert (int(st["sflow_samples"]), int(st["sflow_lost"])) == (1 + ring, total - ring)
        assert br.dp.sflow_waiting() == ring and br.dp.upcall_count() >= ring
        assert br.upcalls.handle() >= ring
        assert agent.flow_samples == 1 + ring and br.dp.sflow_waiting() == 0
        assert send(br, p1, p2, frames[:5]) == 5                # room again
        br.backer.revalidator.run()
        got = flow_samples_of(rx)[1:]
        assert len(got) == ring + 5
        lost = total - ring                                     # the drops field: what was lost by the drain
        for i, s in enumerate(got[:ring]):                      # the first RING frames, whole
            assert s == expected_sample(frames[i], i + 2, 1, i + 2, lost, sflow_ifindex("h1"), sflow_ifindex("h2"), 64)
        assert [struct.unpack_from("!I", s, 24)[0] for s in got[ring:]] == [lost] * 5
        snap = Metrics(sw, "127.0.0.1:0").refresh()
        (figures,) = [f for name, f, *_ in snap.datapaths if name == br.dp.name]
        assert (figures["sflow_samples"], figures["sflow_lost"]) == (1 + ring + 5, total - ring)
    finally:
        agent.close()
        sw.stop()
        rx.close()


def test_sampling_countdown_gaps_are_geometric(eal):
    """1 in 10 over 60,000 distinct frames: the sampled frames (told by their source address)
    are 1/10 of them ± 5 %, and the gaps between two are geometric: mean 10 ± 5 %, a gap of 1
    (two frames in a row) a tenth of the time, gaps over 30 about (9/10)^30 of them."""
    rx = collector()
    sw, br, p1, p2 = make_ring(eal, rx.getsockname()[1], 10, 64)
    agent = Sflow(br)
    try:
        total = 60_000
        frames = [udp_frame(i, size=64) for i in range(total)]
        assert send(br, p1, p2, frames) == total
        br.backer.revalidator.run()
        got = flow_samples_of(rx)
        idx = [int.from_bytes(s[8 + 32 + 8 + 16 + 8 + 16 + 26:][:4], "big") & 0xFFFFFF for s in got]
        assert idx == sorted(idx) and len(set(idx)) == len(idx)
        assert abs(len(idx) - total / 10) <= 0.05 * total / 10, len(idx)
        gaps = [b - a for a, b in zip(idx, idx[1:])]
        mean = sum(gaps) / len(gaps)
        assert abs(mean - 10) <= 0.5, mean
        ones = gaps.count(1) / len(gaps)
        assert abs(ones - 0.1) <= 0.02, ones
        tail = sum(g > 30 for g in gaps) / len(gaps)
        assert abs(tail - 0.9 ** 30) <= 0.015, tail
    finally:
        agent.close()
        sw.stop()
        rx.close()


def test_datagrams_built_in_c_are_full_in_sequence_and_a_refusing_collector_is_counted(eal):
    """The datagrams the datapath builds and sends in batches: each one is sFlow v5 with the
    agent's address and sub-agent id, its sequence number one past the last, its sample count
    the samples it holds, at most 1,400 bytes and full (its successor's first sample would not
    have fit), its uptime the manual clock's; the counter samples of a pass ride in the same
    datagrams after the flow samples.  A second collector that refuses every datagram (the
    broadcast address, without SO_BROADCAST) costs nothing to the first: each datagram is
    counted once as sent and once as a send error."""
    rx = collector()
    cfg = (CONFIG % {"tag": os.getpid() % 100000, "port": rx.getsockname()[1], "n": 1})
    cfg = cfg.replace('targets: ["127.0.0.1:', 'targets: ["255.255.255.255:6343", "127.0.0.1:')
    sw = Switch(loads(cfg, "sf.yaml"), manual_clock=True)
    sw.start()
    br = sw.bridge("br0")
    p1, p2 = host_port(br, "h1", 1), host_port(br, "h2", 2)
    agent = Sflow(br)
    try:
        frames = [udp_frame(i, size=60 + (i * 53) % 900) for i in range(2000)]
        assert send(br, p1, p2, frames) == len(frames)
        br.dp.set_clock(br.dp.now_ns + 3_500 * 10**6)
        br.backer.revalidator.run()                       # counters polled, the last datagram sent
        dgs = []
        while True:
            try:
                dgs.append(rx.recv(65535))
            except socket.timeout:
                break
        assert len(dgs) == agent.datagrams == agent.send_errors > 100
        flows = counters = 0
        uptimes = []
        for i, d in enumerate(dgs):
            version, atype, addr, sub, seq, uptime, n = struct.unpack_from("!II4sIIII", d)
            assert (version, atype, addr, sub, seq) == (5, 1, bytes([192, 0, 2, 1]), 0, i + 1)
            assert len(d) <= 1400
            off, sizes = 28, []
            for _ in range(n):
                fmt, length = struct.unpack_from("!II", d, off)
                flows += fmt == 1
                counters += fmt == 2
                sizes.append(8 + length)
                off += 8 + length
            assert off == len(d)                          # N samples, nothing else
            if i + 1 < len(dgs):                          # full: the next one's first sample did not fit
                nfmt, nlen = struct.unpack_from("!II", dgs[i + 1], 28)
                assert 28 + 4 + (len(d) - 28) + 8 + nlen > 1400, i
            uptimes.append(uptime)
        assert flows == agent.flow_samples == len(frames)
        assert counters == 3 == agent.counter_samples            # h1, h2, idle: one poll
        assert uptimes[0] == 0 and uptimes[-1] == 3500
        last = dgs[-1]
        n = struct.unpack_from("!I", last, 24)[0]
        fmts, off = [], 28
        for _ in range(n):
            fmt, length = struct.unpack_from("!II", last, off)
            fmts.append(fmt)
            off += 8 + length
        assert fmts[-3:] == [2, 2, 2] and fmts[0] == 1           # the pass's counters after the last flow samples
    finally:
        agent.close()
        sw.stop()
        rx.close()


def test_sampled_normal_flows_forward_to_the_learned_port_and_sample_every_frame(eal):
    """NORMAL with sFlow 1/1: the megaflows (matched on the MACs, past the cheap in_port path)
    lead with the sample and then output to the learned port: every frame reaches that port
    and no other, and each is a flow sample with that port as its output, in order."""
    rx = collector()
    cfg = (CONFIG % {"tag": os.getpid() % 100000, "port": rx.getsockname()[1], "n": 1})
    cfg = cfg.replace('flows: ["in_port=1,actions=output:2"]', 'flows: ["actions=NORMAL"]')
    sw = Switch(loads(cfg, "sf.yaml"), manual_clock=True)
    sw.start()
    br = sw.bridge("br0")
    p1, p2, p3 = host_port(br, "h1", 1), host_port(br, "h2", 2), host_port(br, "h3", 3)
    agent = Sflow(br)
    try:
        a, b = b"\x02\0\0\0\0\x01", b"\x02\0\0\0\0\x02"
        br.dp.inject(p2, [udp_frame(0, src_mac=b, dst_mac=a)])     # h2's MAC learned (flooded)
        br.dp.poll(2)
        br.upcalls.handle()
        br.dp.drain(p1), br.dp.drain(p3)
        frames = [udp_frame(i, size=64 + i % 300, src_mac=a, dst_mac=b) for i in range(1, 3001)]
        at2 = at3 = 0
        for i in range(0, len(frames), 32):
            br.dp.inject(p1, frames[i:i + 32])
            br.dp.poll(2)
            br.upcalls.handle()
            at2 += len(br.dp.drain(p2))
            at3 += len(br.dp.drain(p3))
        br.dp.poll(2)
        br.upcalls.handle()
        at2 += len(br.dp.drain(p2))
        assert (at2, at3) == (len(frames), 0)
        from dpdkswitch.datapath import MANUAL_PMD
        st = br.dp.pmd_stats()[MANUAL_PMD]
        assert int(st["emc_hits"] + st["megaflow_hits"]) >= len(frames) - 64 and int(st["simple_hits"]) == 0
        br.backer.revalidator.run()
        got = flow_samples_of(rx)
        ours = [s for s in got if struct.unpack_from("!I", s, 28)[0] == sflow_ifindex("h1")]
        assert len(ours) == len(frames) == agent.flow_samples - 1
        for fr, s in zip(frames, ours):
            assert struct.unpack_from("!I", s, 32)[0] == sflow_ifindex("h2")        # the output
            assert s[88:88 + 64] == fr[:64]                                           # the header
    finally:
        agent.close()
        sw.stop()
        rx.close()
