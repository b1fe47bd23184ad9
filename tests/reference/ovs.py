"""Open vSwitch 3.1 with its DPDK datapath as a reference: the same tables and frames through it.

``Ovs`` (started and stopped by dpdkswitch/bench/ovs.py, the one Open vSwitch runner, which
the flow-mod benchmark uses too) is a private ovsdb-server and ovs-vswitchd-dpdk with one
netdev bridge; see that module for how it runs.

``run_ovs`` is the whole exchange for one table set: ports (OpenFlow port 1 reads the input
pcap, every port writes a tx pcap), groups, flows, LOCAL set no-flood, then the input port last
so no frame arrives before the tables are in; wait until port 1 has received every frame; stop;
read the tx pcaps back.  For NORMAL (tests/test_reference_normal.py) it also takes several input
ports (each its own pcap; all are added after the flows, and nothing is polled before
``start_pmd``), per-port VLAN settings (the Port table's vlan_mode, tag, trunks), Bridge columns
(flood_vlans, other_config:forward-bpdu) and static MAC entries (``ovs-appctl fdb/add``, after
every port is in: a port's VLAN change flushes the MACs on it, static ones too).
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

from dpdkswitch.bench.ovs import (OFCTL_VERSION, PROTOCOLS, SCHEMA, TOOLS, VSWITCHD,  # noqa: F401 (this module's API)
                                  Ovs, OvsError, ensure_hugepages, missing)


def failed_upcalls(pmd_stats: str) -> int:
    """Frames OVS dropped as 'miss with failed upcall' (dpif-netdev/pmd-stats-show)."""
    return sum(int(n) for n in re.findall(r"miss with failed upcall:\s+(\d+)", pmd_stats))


STP_TIMERS = ("stp_enable=true", "other_config:stp-hello-time=1", "other_config:stp-max-age=6",
              "other_config:stp-forward-delay=4")


def wait_stp_forwarding(ovs, names: list[str], timeout: float = 30.0) -> str:
    """Until every port of NAMES is forwarding in OVS's stp/show (2 x forward delay alone);
    returns that output."""
    deadline = time.monotonic() + timeout
    while True:
        out = ovs.appctl("stp/show", ovs.bridge)
        states = {m.group(1): m.group(2) for m in re.finditer(r"^\s+(\S+)\s+\S+\s+(\S+)\s+\d+\s+\d+\.\d+", out, re.M)}
        if all(states.get(n) == "forwarding" for n in names):
            return out
        if time.monotonic() > deadline:
            raise OvsError(f"the spanning tree did not make every port forward in {timeout:.0f} s:\n{out}")
        time.sleep(0.2)


def _port_settings(cfg: dict) -> list[str]:
    """{"vlan_mode": "trunk", "tag": 10, "trunks": [10, 20]} -> Port column=value pairs."""
    return [f"{k}={','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}" for k, v in cfg.items()]


def run_ovs(workdir: str | os.PathLike, in_pcap: str, n_frames: int, ports: list[int], flows: list[str],
            groups: list[str] = (), protocol: str = OFCTL_VERSION, settle: float = 0.1, *,
            inputs: dict[int, tuple[str, int]] | None = None, port_config: dict[int, dict] | None = None,
            bridge_config: list[str] = (), fdb: list[tuple[int, int, str]] = (),
            stp: bool = False) -> tuple[dict[int, list[bytes]], dict]:
    """Through Open vSwitch: every port of PORTS writes WORKDIR/ovs-out<N>.pcap, port 1 also
    reads IN_PCAP.  Returns ({ofport: frames written}, info with the memory mode, port stats
    and the datapath flows).  INPUTS: {ofport: (pcap, frames in it)} when other ports than 1
    read input (IN_PCAP and N_FRAMES are then not used); PORT_CONFIG: {ofport: {Port column:
    value}}; BRIDGE_CONFIG: Bridge column=value pairs; FDB: static MACs (ofport, vlan, mac).
    STP: the bridge runs the spanning tree (hello 1 s, max age 6 s, forward delay 4 s) and the
    frames flow once every port forwards (``STP_TIMERS``; the tx pcaps hold its BPDUs too)."""
    from frames import read_pcap, write_pcap

    workdir = Path(workdir)
    empty = workdir / "empty.pcap"
    write_pcap(str(empty), [])
    outs = {p: workdir / f"ovs-out{p}.pcap" for p in ports}
    inputs = inputs if inputs is not None else {1: (in_pcap, n_frames)}
    port_config = port_config or {}
    info: dict = {}
    with Ovs(workdir) as ovs:
        tag = ovs.file_prefix.replace("-", "_")
        if bridge_config or stp:
            ovs.vsctl("set", "Bridge", ovs.bridge, *bridge_config, *(STP_TIMERS if stp else ()))
        for p in sorted(ports):
            if p in inputs:
                continue
            ovs.add_port(f"p{p}", p, f"net_pcap_{tag}_{p},rx_pcap={empty},tx_pcap={outs[p]}",
                         _port_settings(port_config.get(p, {})))
        ovs.add_groups(list(groups))
        ovs.add_flows(list(flows), protocol=protocol)
        for p, (pcap, _) in sorted(inputs.items()):
            ovs.add_port(f"p{p}", p, f"net_pcap_{tag}_{p},rx_pcap={pcap},tx_pcap={outs[p]}",
                         _port_settings(port_config.get(p, {})))
        for p, vlan, mac in fdb:
            ovs.appctl("fdb/add", ovs.bridge, f"p{p}", str(vlan), mac)
        if fdb:
            info["fdb_before"] = ovs.appctl("fdb/show", ovs.bridge)
        if stp:
            info["stp"] = wait_stp_forwarding(ovs, [f"p{p}" for p in ports])
        ovs.start_pmd()
        for p, (_, n) in sorted(inputs.items()):
            ovs.wait_rx(p, n)
        ovs.wait_quiet(settle)          # the last burst: received and counted, maybe not yet sent
        if fdb:
            info["fdb"] = ovs.appctl("fdb/show", ovs.bridge)
        info["memory"] = ovs.memory_note
        info["port_stats"] = ovs.port_stats()
        info["dp_flows"] = ovs.appctl("dpctl/dump-flows", check=False)
        info["pmd_stats"] = ovs.appctl("dpif-netdev/pmd-stats-show", check=False)
    return {p: read_pcap(str(outs[p])) for p in ports}, info
