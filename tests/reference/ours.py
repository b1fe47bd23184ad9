"""dpdkswitch on the same tables and input: in this process, on the test session's EAL.

One bridge from a YAML config (``dpdkswitch.config.loads``), its ports net_pcap vdevs like
Open vSwitch's (port 1 reads the input pcap, every port writes a tx pcap), no PMD thread: the
test polls the datapath and runs the upcall handler itself until port 1 has received every
frame and a few more rounds find nothing.  Stopping the switch closes the ports, which flushes
the tx pcaps.

Groups: dpdkswitch has no group-mod path from text yet (no OpenFlow connection, no YAML key),
so ``parse_group`` reads ovs-ofctl's group syntax into ``pipeline.GroupEntry`` and the groups
go in through ``Pipeline.group_mod`` before the flows that use them (``Pipeline.add``).

NORMAL (tests/test_reference_normal.py): INPUTS gives several input ports, each reading a pcap
of its own; PORT_CONFIG adds YAML port keys (vlan_mode, tag, trunks) and BRIDGE_CONFIG bridge
keys (forward_bpdu, flood_vlans, mac_table with static entries).
"""
from __future__ import annotations

import itertools
import json
import os
import re
import time
from pathlib import Path

_seq = itertools.count()

GROUP_TYPES = {"all": "all", "select": "select", "indirect": "indirect", "ff": "ff", "fast_failover": "ff"}


def parse_group(text: str):
    """ovs-ofctl add-group syntax -> GroupEntry: ``group_id=N,type=T,bucket=...,bucket=...``;
    a bucket is ``[weight:W,][watch_port:P,][watch_group:G,]actions=A`` or just ``A``."""
    from dpdkswitch.ofproto.actions import ApplyActions
    from dpdkswitch.ofproto.flowstr import _port
    from dpdkswitch.ofproto.pipeline import Bucket, GroupEntry

    head, *buckets = re.split(r",?\s*bucket=", text.strip())
    props = dict(kv.split("=", 1) for kv in filter(None, (x.strip() for x in head.split(","))))
    out = []
    for b in buckets:
        kw = {}
        while True:
            m = re.match(r"\s*(weight|watch_port|watch_group|bucket_id)[:=]([^,]+),", b)
            if not m:
                break
            if m.group(1) == "watch_port":
                kw["watch_port"] = _port(m.group(2))
            elif m.group(1) != "bucket_id":
                kw[m.group(1)] = int(m.group(2), 0)
            b = b[m.end():]
        b = re.sub(r"^\s*actions=", "", b)
        inst = _parse_bucket_actions(b)
        actions = inst[0].actions if inst else ()
        assert all(isinstance(i, ApplyActions) for i in inst), f"bucket {b!r}: only actions belong in a bucket"
        out.append(Bucket(actions=tuple(actions), **kw))
    return GroupEntry(int(props["group_id"], 0), GROUP_TYPES[props["type"]], out)


def _parse_bucket_actions(text: str) -> tuple:
    """parse_actions checks set-field prerequisites against a flow's match, and a bucket has
    none (OVS checks them when translating): try the catch-all match, then matches that
    satisfy the usual prerequisites.  The SetField actions do not keep the match."""
    from dpdkswitch.ofproto.flowstr import FlowParseError, parse_actions, parse_match

    err = None
    for m in ("", "ip", "ipv6", "arp"):
        try:
            return parse_actions(text, parse_match(m))
        except FlowParseError as e:
            err = err or e
    raise err


def _config_yaml(name: str, ports: dict[int, str], flows: list[str], port_config: dict[int, dict] | None = None,
                 bridge_config: dict | None = None) -> str:
    lines = ["bridges:", f"  {name}:", "    datapath: {pmd_cores: []}"]
    lines += [f"    {k}: {json.dumps(v)}" for k, v in (bridge_config or {}).items()]    # JSON is YAML
    lines.append("    ports:")
    for ofport, dev in sorted(ports.items()):
        extra = "".join(f", {k}: {json.dumps(v)}" for k, v in (port_config or {}).get(ofport, {}).items())
        lines.append(f"      p{ofport}: {{device: {dev!r}, ofport: {ofport}{extra}}}")
    if flows:
        lines.append("    flows:")
        lines += [f"      - {f!r}" for f in flows]
    return "\n".join(lines) + "\n"


def run_ours(workdir: str | os.PathLike, in_pcap: str, n_frames: int, ports: list[int], flows: list[str],
             groups: list[str] = (), megaflows: bool = True, max_rounds: int = 20000, *,
             inputs: dict[int, tuple[str, int]] | None = None, port_config: dict[int, dict] | None = None,
             bridge_config: dict | None = None, protocol: str = "OpenFlow13",
             stp: bool = False) -> tuple[dict[int, list[bytes]], dict]:
    """Through dpdkswitch (the session's EAL must be up): returns ({ofport: frames written to
    WORKDIR/ours-out<N>.pcap}, info with port counters and upcall stats).  MEGAFLOWS false:
    every installed flow is exact-match (a diagnostic: a difference that goes away then is a
    megaflow-mask bug, not a translation one).  INPUTS: {ofport: (pcap, frames in it)} when
    other ports than 1 read input (IN_PCAP and N_FRAMES are then not used).  PROTOCOL: the
    OpenFlow version the flows are read in (OpenFlow10: pop_vlan or dec_ttl need nothing in the
    match, as Open vSwitch takes them over 1.0; such flows go in as the groups' do).  STP: the
    bridge runs the spanning tree with Open vSwitch's side's timers (reference/ovs.py's
    STP_TIMERS) and no frame is read before every port forwards (the tx pcaps hold its BPDUs)."""
    from dpdkswitch.config import loads
    from dpdkswitch.ofproto.flowstr import FlowSpec, parse_flow
    from dpdkswitch.switch import Switch
    from frames import read_pcap

    workdir = Path(workdir)
    n = next(_seq)
    tag = f"r{os.getpid() % 100000}x{n}"
    outs = {p: workdir / f"ours{'' if megaflows else '-exact'}-out{p}.pcap" for p in ports}
    inputs = inputs if inputs is not None else {1: (in_pcap, n_frames)}
    devs = {p: (f"net_pcap_{tag}p{p},rx_pcap={inputs[p][0]},tx_pcap={outs[p]}" if p in inputs else
                f"net_pcap_{tag}p{p},tx_pcap={outs[p]}") for p in ports}
    direct = bool(groups) or protocol == "OpenFlow10"         # not through the config: see the docstring
    if stp:
        bridge_config = {**(bridge_config or {}), "stp_enable": True, "stp_hello_time": 1, "stp_max_age": 6,
                         "stp_forward_delay": 4}
    text = _config_yaml(f"ref{n}", devs, [] if direct else list(flows), port_config, bridge_config)
    (workdir / "ours.yaml").write_text(text)
    config = loads(text, str(workdir / "ours.yaml"))
    sw = Switch(config)
    info: dict = {}
    sw.start()
    try:
        (br,) = sw.bridges.values()
        if direct:
            br.pipeline.delete(FlowSpec(priority=0), strict=True)    # the default flood rule
            for g in groups:
                br.pipeline.group_mod("add", parse_group(g))
            for f in flows:
                br.pipeline.add(parse_flow(f, of10=protocol == "OpenFlow10"))
            br.revalidator.run()
        br.upcalls.megaflows = megaflows
        if stp:                     # the tree's timers on the real clock, the input not read meanwhile
            deadline = time.monotonic() + 30
            while not all(br.stp.state(p) == "forwarding" for p in ports):
                assert time.monotonic() < deadline, br.stp.show()
                br.run_protocols()
                time.sleep(0.05)
            info["stp"] = br.stp.show()
        dp_in = {br.by_ofport(p).dp_port: count for p, (_, count) in inputs.items()}
        idle = 0
        for _ in range(max_rounds):
            got = br.dp.poll(8)
            handled = br.upcalls.handle()
            done = all(br.dp.port_stats(d)["rx_packets"] >= count for d, count in dp_in.items())
            idle = idle + 1 if done and not got and not handled else 0
            if idle >= 5:
                break
        info["port_stats"] = {p.ofport: br.dp.port_stats(p.dp_port) for p in br.ports.values()}
        info["upcalls"] = br.upcalls.stats
        info["flows"] = br.dp.flow_dump()
    finally:
        sw.stop()
    return {p: read_pcap(str(outs[p])) for p in ports}, info
