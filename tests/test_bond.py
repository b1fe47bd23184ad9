"""Bonds (bond.py) in a bridge's NORMAL, deterministic: no PMD thread, the manual clock,
ring-backed test ports as members and a host port; the tests play the control thread by hand.

active-backup: one copy out of the active member, nothing in from a backup, failover on the
member's liveness with RARP learning frames for the MACs learned elsewhere, the primary back
when it returns; balance-slb: source MACs spread over both members, Open vSwitch's loop
prevention (a MAC learned on another port arriving on the bond is a reflection; multicast only
on the active member); balance-tcp: nothing without LACP negotiated, L4 flows spread when it is;
rebalancing moves buckets off an overloaded member; bond/* commands.
"""
import pytest
from scapy.layers.l2 import ARP, Ether

from dpdkswitch.bond import N_BUCKETS, Bond
from dpdkswitch.config import BondConfig, PortConfig, loads
from dpdkswitch.control import Commands
from dpdkswitch.control import bond as bond_cmds
from dpdkswitch.datapath import odp, parse
from dpdkswitch.switch import Switch

from frames import udp_frame
from test_patch import host_port

pytestmark = pytest.mark.dpdk

SECOND = 1_000_000_000
BRIDGE = """\
bridges:
  br0:
    datapath: {pmd_cores: []}
    ports:
      patch0: {peer: patch1, ofport: 10}
  br1:
    datapath: {pmd_cores: []}
    ports:
      patch1: {peer: patch0, ofport: 20}
"""
HOST_MAC = bytes.fromhex("020000000003")


def make_bond(br, mode, **kw):
    """Bond bond0 of members m1 (ofport 1) and m2 (ofport 2), and a host port h (ofport 3)."""
    bc = BondConfig("bond0", ["m1", "m2"], bond_mode=mode, **kw)
    br.config.bonds["bond0"] = bc
    ports = {}
    for name, o in (("m1", 1), ("m2", 2)):
        br.config.ports[name] = PortConfig(name=name, device="", ofport=o, vlan_mode="trunk", bond="bond0")
    for name, o in (("m1", 1), ("m2", 2)):
        ports[o] = host_port(br, name, o)
        br.ports[name].config = br.config.ports[name]
        br.join_lacp(br.ports[name])
        br.join_bond(br.ports[name])
    ports[3] = host_port(br, "h", 3)
    br.pipeline.ports_changed()
    return br.bonds["bond0"], ports


@pytest.fixture
def bridge(eal):
    sw = Switch(loads(BRIDGE, "bond.yaml"), manual_clock=True)
    sw.start()
    yield sw, sw.bridges["br0"]
    sw.stop()


class Clock:
    def __init__(self, br):
        self.br, self.ns = br, br.dp.now_ns

    def run(self, seconds, step=0.1):
        for _ in range(round(seconds / step)):
            self.ns += int(step * SECOND)
            self.br.dp.set_clock(self.ns)
            self.br.run_protocols()


def cycle(br, port, frames):
    if frames:
        br.dp.inject(port, frames)
    for _ in range(2):
        br.dp.poll(4)
        br.upcalls.handle()
    br.revalidator.run()


def drain(br, ports):
    return {o: br.dp.drain(p) for o, p in ports.items()}


def from_mac(mac: bytes, i=0, dst=b"\xff" * 6) -> bytes:
    return udp_frame(i, src_mac=mac, dst_mac=dst)


def test_active_backup_one_copy_by_the_active_member_failover_learning_frames_primary_back(bridge):
    sw, br = bridge
    bond, ports = make_bond(br, "active-backup", bond_primary="m1")
    Clock(br).run(0.2)
    assert bond.active == 1 and all(m.enabled for m in bond.members.values())
    cycle(br, ports[3], [from_mac(HOST_MAC)])                 # a broadcast from the host
    out = drain(br, ports)
    assert len(out[1]) == 1 and out[2] == []                  # once, by the active member
    cycle(br, ports[2], [from_mac(b"\x02\0\0\0\0\x22", dst=HOST_MAC)])
    assert drain(br, ports)[3] == []                          # nothing in from the backup
    t = br.xlate.translate(parse(from_mac(b"\x02\0\0\0\0\x22", dst=HOST_MAC), ports[2]), trace=True)
    assert any("not the active member" in ln for ln in t.trace)
    cycle(br, ports[1], [from_mac(b"\x02\0\0\0\0\x11", dst=HOST_MAC)])
    assert len(drain(br, ports)[3]) == 1                      # in from the active member
    assert br.pipeline.macs.lookup(0, 0x020000000011) == bond.id
    # m1 loses its carrier: m2 takes over, and says so for the host's MAC (RARP)
    br.pipeline.liveness.set_carrier(1, False)
    Clock(br).run(0.2)
    assert bond.active == 2
    out = drain(br, ports)
    rarps = [Ether(f) for f in out[2] if f[12:14] == b"\x80\x35"]
    assert [r.src for r in rarps] == ["02:00:00:00:00:03"] and out[1] == []
    cycle(br, ports[3], [from_mac(HOST_MAC, dst=bytes.fromhex("020000000011"))])
    out = drain(br, ports)
    assert len(out[2]) == 1 and out[1] == []                  # the megaflow follows the failover
    t = br.xlate.translate(parse(from_mac(HOST_MAC, dst=bytes.fromhex("020000000011")), ports[3]), trace=True)
    assert any("bond bond0: member m2 (active member)" in ln for ln in t.trace)
    br.pipeline.liveness.set_carrier(1, True)                 # the primary returns
    Clock(br).run(0.2)
    assert bond.active == 1


def test_updelay_and_downdelay(bridge):
    sw, br = bridge
    bond, ports = make_bond(br, "active-backup", bond_updelay=1000, bond_downdelay=500)
    clock = Clock(br)
    clock.run(0.5)
    assert not any(m.enabled for m in bond.members.values())     # coming up: 1 s
    assert bond.active is not None                                # one waiting still leads
    clock.run(0.7)
    assert all(m.enabled for m in bond.members.values())
    br.pipeline.liveness.set_carrier(2, False)
    clock.run(0.3)
    assert bond.members[2].enabled and "downdelay expires in" in bond.show()
    clock.run(0.3)
    assert not bond.members[2].enabled


def test_balance_slb_spreads_source_macs_and_drops_reflections(bridge):
    sw, br = bridge
    bond, ports = make_bond(br, "balance-slb")
    Clock(br).run(0.2)
    macs = [bytes([2, 0, 0, 1, i // 256, i % 256]) for i in range(64)]
    cycle(br, ports[3], [from_mac(m, i) for i, m in enumerate(macs)])
    out = drain(br, ports)
    assert len(out[1]) + len(out[2]) == 64 and out[1] and out[2]      # each once, both members used
    # a frame from a MAC learned on the host port, back in on the bond: a reflection, dropped
    cycle(br, ports[2], [from_mac(macs[0], dst=bytes.fromhex("020000000099"))])
    assert drain(br, ports)[3] == []
    t = br.xlate.translate(parse(from_mac(macs[0], dst=bytes.fromhex("020000000099")), ports[2]), trace=True)
    assert any("SLB bond thinks this packet looped back" in ln for ln in t.trace), t.trace
    # ... but a gratuitous ARP from it is the host having moved
    garp = bytes(Ether(src="02:00:00:01:00:00", dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc="02:00:00:01:00:00", psrc="10.0.0.5", pdst="10.0.0.5"))
    Clock(br).run(6)                                                  # past the GARP lock
    assert "SLB bond thinks" not in "".join(br.xlate.translate(parse(garp, ports[bond.active]), trace=True).trace)
    # multicast only on the active member; unicast from a new MAC on either
    other = 1 if bond.active == 2 else 2
    cycle(br, ports[other], [from_mac(b"\x02\0\0\0\0\x55")])
    assert drain(br, ports)[3] == []
    cycle(br, ports[other], [from_mac(b"\x02\0\0\0\0\x56", dst=macs[1])])
    assert len(drain(br, ports)[3]) == 1
    assert br.pipeline.macs.lookup(0, 0x020000000056) == bond.id


class FakeLacp:
    def __init__(self, status):
        self.status = status


def test_balance_tcp_needs_lacp_and_spreads_l4_flows_symmetrically():
    bond = Bond("b", [("m1", 1), ("m2", 2)], "balance-tcp", lacp=FakeLacp("configured"))
    for o in (1, 2):
        bond.set_may_enable(o, True)
    bond.run(0.0)

    class Flow(dict):
        def get(self, name):
            return dict.get(self, name, 0)
    flows = [Flow(eth_type=0x0800, ipv4_src=0x0A000001, ipv4_dst=0x0A000002 + i, ip_proto=6,
                  tcp_src=1000 + i, tcp_dst=80) for i in range(64)]
    assert bond.choose(flows[0], 0) == (None, None)
    assert bond.admissible(1, False).startswith("drop")
    bond.lacp.status = "negotiated"
    chosen = {bond.choose(f, 0)[0] for f in flows}
    assert chosen == {1, 2}
    for f in flows:                                    # the reply of each flow hashes alike
        back = Flow(eth_type=0x0800, ipv4_src=f["ipv4_dst"], ipv4_dst=f["ipv4_src"], ip_proto=6,
                    tcp_src=f["tcp_dst"], tcp_dst=f["tcp_src"])
        assert bond.choose(back, 0) == bond.choose(f, 0)
    assert bond.admissible(2, True) == "accept"


def test_rebalancing_moves_buckets_off_an_overloaded_member_with_open_vswitchs_thresholds():
    bond = Bond("b", [("m1", 1), ("m2", 2)], "balance-slb")
    for o in (1, 2):
        bond.set_may_enable(o, True)
    bond.run(0.0)
    bond.buckets = [1] * N_BUCKETS                      # everything on m1
    for b in range(8):
        bond.account(b, 1_000_000)
    assert bond.rebalance()
    load = {o: sum(bond.loads[b] * 2 for b in range(N_BUCKETS) if bond.buckets[b] == o) for o in (1, 2)}
    assert load == {1: 4_000_000, 2: 4_000_000}          # halved after (the moving average)
    # below 100 kB of imbalance, nothing moves
    bond2 = Bond("c", [("m1", 1), ("m2", 2)], "balance-slb")
    for o in (1, 2):
        bond2.set_may_enable(o, True)
    bond2.run(0.0)
    bond2.buckets = [1] * N_BUCKETS
    bond2.account(0, 60_000)
    bond2.account(1, 30_000)
    assert not bond2.rebalance() and bond2.buckets[0] == bond2.buckets[1] == 1


def test_bond_commands(bridge):
    sw, br = bridge
    bond, ports = make_bond(br, "balance-slb")
    Clock(br).run(0.2)
    cmds = Commands()
    bond_cmds.register(cmds, sw)
    run = lambda *a: cmds.run(a[0], list(a[1:]))
    assert "bond0\tbalance-slb\t0\tm1, m2" in run("bond/list")
    show = run("bond/show", "bond0")
    assert "bond_mode: balance-slb" in show and "member m1: enabled" in show and "lacp_status: off" in show
    h = int(run("bond/hash", "02:00:00:00:00:03"))
    assert 0 <= h < 256
    assert run("bond/migrate", "bond0", str(h), "m2") == "migrated" and bond.buckets[h] == 2
    assert run("bond/disable-member", "bond0", "m2") == "disabled" and not bond.members[2].enabled
    assert run("bond/enable-member", "bond0", "m2") == "enabled" and bond.members[2].enabled
    assert run("bond/set-active-member", "bond0", "m2") in ("done", "m2 is already the active member")
    assert bond.active == 2


def test_a_reload_that_changes_a_bond_is_refused_with_one_line():
    from dpdkswitch.reconfig import ReloadRefused, diff
    head = "dpdk: {cores: [0, 1]}\nbridges:\n  br0:\n    ports:\n      p1: {device: net_null0, ofport: 1}\n"
    bond = ("      bond0:\n        interfaces:\n          m1: {device: net_null1, ofport: 2}\n"
            "          m2: {device: net_null2, ofport: 3}\n        bond_mode: %s\n")
    old = loads(head + bond % "balance-slb", "a.yaml")
    assert diff(old, loads(head + bond % "balance-slb", "a.yaml")).bridges[0].ports_added == []
    with pytest.raises(ReloadRefused, match=r"^reload refused: bridge br0: bond bond0 added, removed or changed"):
        diff(old, loads(head + bond % "active-backup", "a.yaml"))
    with pytest.raises(ReloadRefused, match="bond bond0"):
        diff(old, loads(head, "a.yaml"))


def test_mirrors_and_static_macs_name_a_bond(bridge):
    sw, br = bridge
    from dpdkswitch.config import MirrorConfig, StaticMac
    br.config.mac_table.static.append(StaticMac("02:00:00:00:00:77", 0, "bond0"))
    bond, ports = make_bond(br, "active-backup")
    Clock(br).run(0.2)
    assert br.pipeline.macs.lookup(0, 0x020000000077) == bond.id
    m = br.mirror(MirrorConfig("span", select_src_port=["bond0"], output_port="h"))
    assert m.src == {1, 2} and m.out_port == 3
    to_bond = br.mirror(MirrorConfig("tobond", select_src_port=["h"], output_port="bond0"))
    assert to_bond.out_port == bond.id
    br.pipeline.set_mirror(to_bond)
    br.pipeline.ports_changed()
    frame = from_mac(HOST_MAC, dst=b"\x02\0\0\0\0\x77")
    cycle(br, ports[3], [frame])
    out = drain(br, ports)
    # a mirror's output takes only the mirror's copies (as Open vSwitch's): one, by the active member
    assert out[bond.active] == [frame] and out[3 - bond.active] == []
    cycle(br, ports[bond.active], [from_mac(b"\x02\0\0\0\0\x31", dst=HOST_MAC)])
    assert drain(br, ports)[3] == []                        # nothing in from a mirror output


def test_balance_tcp_hashes_and_recirculates_in_the_datapath_buckets_by_dp_hash(bridge):
    sw, br = bridge
    bond, ports = make_bond(br, "balance-tcp")
    bond.lacp = FakeLacp("negotiated")                  # (LACP itself: test_lacp*.py)
    Clock(br).run(0.2)
    assert bond.recirculates() and "bond may use recirculation: yes" in bond.show()
    cycle(br, ports[1], [from_mac(b"\x02\0\0\0\0\x11", dst=HOST_MAC)])   # the far host, learned on the bond
    drain(br, ports)
    frames = [udp_frame(i, src_mac=HOST_MAC, dst_mac=b"\x02\0\0\0\0\x11") for i in range(64)]
    cycle(br, ports[3], frames)
    cycle(br, ports[3], frames)                         # again: now by the installed megaflows
    out = drain(br, ports)
    assert len(out[1]) + len(out[2]) == 128 and out[1] and out[2] and out[3] == []
    assert sorted(out[1] + out[2]) == sorted(frames * 2)             # each frame once, unchanged
    # the first pass: hash + recirc; the second: by dp_hash & 0xff, one megaflow per bucket used
    acts = [odp.decode(f["actions"]) for f in br.dp.flow_dump()]
    assert any(any(isinstance(a, odp.Recirc) for a in act) for act in acts)
    t = br.xlate.translate(parse(frames[0], ports[3]), trace=True)
    assert [type(a) for a in t.actions][-2:] == [odp.Hash, odp.Recirc]
    post = [f for f in br.dp.flow_dump() if f["key"][4:8] != bytes(4)]
    assert post and len(post) <= 64
    # a member goes: its buckets move to the other, the frames follow
    br.pipeline.liveness.set_carrier(1, False)
    Clock(br).run(0.2)
    br.revalidator.run()
    cycle(br, ports[3], frames)
    out = drain(br, ports)
    assert out[1] == [] and len(out[2]) == 64
    assert sum(m.tx_bytes for m in bond.members.values()) >= 0 and any(bond.loads)


def test_the_bench_bond_scenarios_make_port_2_a_bond_of_null_members():
    from pathlib import Path
    from dpdkswitch.bench.forwarding import bench_config_text
    for mode, lacp in (("balance-slb", "off"), ("balance-tcp", "active")):
        cfg = loads(bench_config_text(Path("/tmp/x.pcap"), 0, 1, {"members": 2, "bond_mode": mode}), "<bench>")
        br = cfg.bridges["br0"]
        assert br.bonds["bond0"].members == ["m1", "m2"] and br.bonds["bond0"].lacp == lacp
        assert [br.ports[m].ofport for m in ("m1", "m2")] == [2, 3] and br.ports["p1"].ofport == 1
