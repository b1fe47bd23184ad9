"""NetFlow v5: records of a bridge's flows, decoded by nfdump's own collector (``nfcapd`` +
``nfdump``, Debian's nfdump): per flow packets and bytes as sent, on flow expiry and every
active timeout.  Deterministic: ring-backed ports, the slow path run by hand on the manual
clock."""
import os
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest

from dpdkswitch.config import ConfigError, PortConfig, loads
from dpdkswitch.netflow import NetFlow
from dpdkswitch.ofproto.pipeline import PortEntry
from dpdkswitch.switch import Bridge, Port, Switch

from frames import udp_frame

CONFIG = """\
bridges:
  br0:
    datapath: {pmd_cores: []}
    ports:
      idle: {device: "net_null_nf%(tag)s,no-rx=1", ofport: 9}
    flows: ["in_port=1,actions=output:2"]
    netflow: {targets: ["127.0.0.1:%(port)d"], engine_type: 7, engine_id: 3, active_timeout: 60}
"""


def host_port(br: Bridge, name: str, ofport: int) -> int:
    dp_port = br.backer.free_dp_port()
    br.dp.add_test_port(dp_port, f"nf{os.getpid() % 100000}{name}")
    pc = PortConfig(name=name, device="", ofport=ofport)
    br.ports[name] = Port(name, ofport, dp_port, pc, br.dp.port_info(dp_port))
    br.pipeline.set_port(PortEntry(ofport, name, dp_port, vlan=Bridge._vlan(pc)))
    return dp_port


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def num(text: str):
    """A port as nfdump prints it: a number, or type.code for ICMP."""
    return int(text) if text.isdigit() else text


class Nfcapd:
    """nfdump's collector on a port; ``records()`` stops it and reads what it stored."""

    def __init__(self, tmp_path, port: int):
        self.dir = tmp_path / "nf"
        self.dir.mkdir()
        self.proc = subprocess.Popen(["nfcapd", "-b", "127.0.0.1", "-p", str(port), "-w", str(self.dir)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(1.0)                          # bound

    def records(self) -> list[dict]:
        time.sleep(0.5)
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=20)
        files = [f for f in os.listdir(self.dir) if f.startswith("nfcapd.")]
        assert files, os.listdir(self.dir)
        out = []
        for f in sorted(files):
            r = subprocess.run(["nfdump", "-r", str(self.dir / f), "-q", "-o",
                                "fmt:%sa|%da|%sp|%dp|%pr|%in|%out|%pkt|%byt|%flg"],
                               capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, r.stderr
            for line in r.stdout.splitlines():
                sa, da, sp, dp, pr, inp, outp, pkt, byt, flg = [x.strip() for x in line.split("|")]
                out.append({"src": sa, "dst": da, "sport": num(sp), "dport": num(dp), "proto": pr,
                            "in": int(inp), "out": int(outp), "packets": int(pkt), "bytes": int(byt),
                            "flags": flg})
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def exporting(eal, tmp_path):
    port = free_udp_port()
    sw = Switch(loads(CONFIG % {"tag": os.getpid() % 100000, "port": port}, "nf.yaml"), manual_clock=True)
    sw.start()
    br = sw.bridge("br0")
    p1, p2 = host_port(br, "h1", 1), host_port(br, "h2", 2)
    col = Nfcapd(tmp_path, port)
    nf = NetFlow(br)
    try:
        yield br, nf, col, p1, p2
    finally:
        nf.close()
        col.stop()
        sw.stop()


def send(br, p1, frames):
    for i in range(0, len(frames), 32):
        br.dp.inject(p1, frames[i:i + 32])
        br.dp.poll(2)
        br.upcalls.handle()
    br.dp.poll(2)


pytestmark = [pytest.mark.dpdk,
              pytest.mark.skipif(not shutil.which("nfcapd"), reason="nfdump (Debian) not installed")]


def test_records_on_expiry_match_the_traffic_and_megaflows_split_per_flow(exporting):
    br, nf, col, p1, p2 = exporting
    counts = {0: 50, 1: 120, 2: 7}               # three UDP flows, each its own 5-tuple
    frames = [udp_frame(i, size=100 + 10 * i) for i, n in counts.items() for _ in range(n)]
    send(br, p1, frames)
    assert len(br.dp.drain(p2)) == len(frames)
    assert br.dp.flow_count() == 3               # in_port=1 alone would be one megaflow: split per 5-tuple
    br.backer.revalidator.run()
    br.dp.set_clock(br.dp.now_ns + 11 * 10**9)   # past the 10 s max idle: the megaflows expire
    br.backer.revalidator.run()
    assert br.dp.flow_count() == 0
    recs = col.records()
    assert len(recs) == 3, recs
    by_sport = {r["sport"]: r for r in recs}
    for i, n in counts.items():
        r = by_sport[1024 + i]
        assert (r["packets"], r["bytes"]) == (n, n * (100 + 10 * i)), r   # frame bytes, as Open vSwitch's dOctets
        assert (r["in"], r["out"], r["dport"], r["proto"]) == (1, 2, 53, "UDP")
        assert r["src"] == f"10.0.0.{i}" and r["dst"] == f"172.16.0.{i * 7}"


def tcp_frame(flags: int, size: int = 80) -> bytes:
    payload = bytes(size - 14 - 20 - 20)
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 5 << 4, flags, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, 0x0A000063, 0xAC100063)
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip + tcp


def test_tcp_flags_of_a_connection_are_in_its_record(exporting):
    """A TCP flow's record carries the flags its frames had, ORed, as Open vSwitch's: the SYN
    (the frame that missed and went up), the ACKs and PSHs the datapath forwarded, the FIN."""
    br, nf, col, p1, p2 = exporting
    SYN, FIN, PSH, ACK = 0x02, 0x01, 0x08, 0x10
    frames = [tcp_frame(SYN)] + [tcp_frame(ACK)] * 5 + [tcp_frame(PSH | ACK)] * 3 + [tcp_frame(FIN | ACK)]
    send(br, p1, frames[:1])
    br.backer.revalidator.run()
    send(br, p1, frames[1:])
    assert len(br.dp.drain(p2)) == len(frames)
    br.backer.revalidator.run()
    br.dp.set_clock(br.dp.now_ns + 11 * 10**9)
    br.backer.revalidator.run()
    (r,) = col.records()
    assert (r["packets"], r["proto"], r["sport"], r["dport"]) == (len(frames), "TCP", 40000, 80), r
    assert set(r["flags"].replace(".", "")) == set("APSF"), r          # nfdump prints e.g. "...AP.SF"


def test_active_timeout_sends_a_record_of_what_a_lasting_flow_counted_since(exporting):
    br, nf, col, p1, p2 = exporting
    t = br.dp.now_ns
    sent = 0
    for step in range(20):                       # 5 s apart: 100 s of one flow, timeout 60 s
        send(br, p1, [udp_frame(5, size=200)] * 10)
        sent += 10
        br.dp.set_clock(t + (step + 1) * 5 * 10**9)
        br.backer.revalidator.run()
    assert br.dp.flow_count() == 1               # never idle for 10 s: still there
    recs = col.records()
    assert len(recs) == 1, recs                  # at 60 s: the first active timeout; the next is due at 120 s
    assert recs[0]["packets"] == 120 and recs[0]["bytes"] == 120 * 200   # the 12 sends before it
    assert nf.flows and sum(f.packets for f in nf.flows.values()) == sent - 120


def test_netflow_config_errors_name_the_line():
    bad = CONFIG.replace('targets: ["127.0.0.1:%(port)d"]', "targets: []")
    with pytest.raises(ConfigError) as e:
        loads(bad % {"tag": 0}, "nf.yaml")
    assert str(e.value).startswith("nf.yaml:7: ") and "targets" in str(e.value)
    for k, old, new in (("engine_id", "3", "256"), ("active_timeout", "60", "0")):
        with pytest.raises(ConfigError) as e:
            loads(CONFIG.replace(f"{k}: {old}", f"{k}: {new}") % {"tag": 0, "port": 2055}, "nf.yaml")
        assert str(e.value).startswith("nf.yaml:7: ") and k in str(e.value)


@pytest.mark.netns
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_dpdkswitch_run_exports_a_hosts_flows_to_nfcapd(tmp_path):
    """`dpdkswitch run` on the default config with NetFlow on: a host's UDP datagrams to the
    other host come out of nfdump with their count, and netflow/show says what was sent."""
    import sys

    import yaml

    from test_run import default_config, wait_started
    from dpdkswitch.control import call

    port = free_udp_port()
    path, sock, hosts = default_config(tmp_path, None)
    cfg = yaml.safe_load(path.read_text())
    cfg["bridges"]["br0"]["netflow"] = {"targets": [f"127.0.0.1:{port}"], "active_timeout": 3}
    path.write_text(yaml.safe_dump(cfg))
    col = Nfcapd(tmp_path, port)
    log = open(tmp_path / "switch.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "dpdkswitch", "run", str(path), "--no-top"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wait_started(proc, sock, tmp_path / "switch.log")
        (h1, a1), (_, a2) = hosts["p1"], hosts["p2"]
        send = ("import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                "s.bind(('0.0.0.0',4444))\n"
                "for i in range(200):\n    s.sendto(b'z'*100,(%r,5555)); time.sleep(0.005)\n" % a2)
        subprocess.run(["ip", "netns", "exec", h1, sys.executable, "-c", send], check=True, timeout=60)
        time.sleep(5)                            # past the 3 s active timeout, a pass or two after
        shown = call(sock, "netflow/show", [])
        assert "NetFlow v5 to 127.0.0.1:%d" % port in shown and "records sent: 0" not in shown, shown
        recs = col.records()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        col.stop()
    udp = [r for r in recs if r["proto"] == "UDP" and r["sport"] == 4444 and r["dport"] == 5555]
    assert udp and all(r["src"] == a1 and r["dst"] == a2 and (r["in"], r["out"]) == (1, 2) for r in udp), recs
    assert sum(r["packets"] for r in udp) == 200
    assert sum(r["bytes"] for r in udp) == 200 * (14 + 20 + 8 + 100)


def test_a_flush_ends_the_flows_with_a_record_of_what_the_pass_before_counted(exporting):
    br, nf, col, p1, p2 = exporting
    send(br, p1, [udp_frame(1)] * 40)
    br.backer.revalidator.run()                  # counted: 40
    br.upcalls.clear()                           # as dpif/del-flows: the ukeys go, no revalidator
    br.dp.flow_flush()
    br.backer.revalidator.run()
    assert not nf.flows and not nf.of
    (r,) = col.records()
    assert r["packets"] == 40
