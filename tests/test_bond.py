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
from dpdkswitch.config import BondConfig, ConfigError, PortConfig, loads
from dpdkswitch.control import Commands
from dpdkswitch.control import bond as bond_cmds
from dpdkswitch.datapath import MANUAL_PMD, odp, parse
from dpdkswitch.ofproto.fields import BY_NAME
from dpdkswitch.switch import Switch

from frames import udp_frame
from test_patch import host_port

DP_HASH = BY_NAME["dp_hash"]

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


RELOAD_HEAD = """\
dpdk: {cores: [0, 1]}
control: {socket: /tmp/never.sock}
bridges:
  br0:
    datapath: {pmd_cores: []}
    ports:
      p1: {device: net_null_bl1, ofport: 1}
"""
RELOAD_BOND = """\
      bond0:
        interfaces:
          m1: {device: net_null_bl2, ofport: 2}
          m2: {device: net_null_bl3, ofport: 3}
        bond_mode: balance-slb
"""
LACP = "        lacp: active\n        lacp_time: fast\n"


def reload_plan(old: str, new: str):
    from dpdkswitch.reconfig import diff
    return diff(loads(old, "a.yaml"), loads(new, "a.yaml")).bridges[0]


def test_a_reload_plans_bonds_added_removed_and_changed_in_place():
    old = RELOAD_HEAD + RELOAD_BOND + LACP
    assert reload_plan(old, old).changes() == []
    p = reload_plan(old, old.replace("balance-slb", "active-backup"))
    assert p.bonds_changed == ["bond0"] and p.bonds_lacp == [] and p.ports_removed == p.ports_added == []
    assert p.changes() == ["bond bond0 changed"]
    p = reload_plan(old, old.replace("lacp_time: fast", "lacp_time: slow"))
    assert p.bonds_lacp == ["bond0"] and p.changes() == ["bond bond0 changed (LACP restarted)"]
    # a member's own LACP key: that member alone, its device stays
    p = reload_plan(old, old.replace("ofport: 3}", "ofport: 3, lacp_port_priority: 7}"))
    assert p.bonds_changed == ["bond0"] and p.bond_members_lacp == ["m2"] and p.ports_replaced == []
    # a member added and one taken out: ports added and removed, the bond changed in place
    p = reload_plan(old, old.replace("          m2: {device: net_null_bl3, ofport: 3}\n",
                                     "          m3: {device: net_null_bl4, ofport: 4}\n"))
    assert p.ports_removed == ["m2"] and p.ports_added == ["m3"] and p.bonds_changed == ["bond0"]
    # the bond's VLANs are its members': in place, as a port's
    p = reload_plan(old, old + "        tag: 10\n")
    assert p.ports_vlan == ["m1", "m2"] and p.bonds_changed == []
    p = reload_plan(old, RELOAD_HEAD)
    assert p.bonds_removed == ["bond0"] and sorted(p.ports_removed) == ["m1", "m2"]
    p = reload_plan(RELOAD_HEAD, old)
    assert p.bonds_added == ["bond0"] and sorted(p.ports_added) == ["m1", "m2"]


@pytest.fixture
def reloadable(eal, tmp_path):
    from dpdkswitch.config import load
    path = tmp_path / "bond.yaml"
    path.write_text(RELOAD_HEAD + RELOAD_BOND)
    sw = Switch(load(str(path)), manual_clock=True)
    sw.start()
    yield sw, path
    sw.stop()


def reload_file(sw, path, text):
    import asyncio
    from dpdkswitch.reconfig import Reloader
    path.write_text(text)
    return asyncio.run(Reloader(sw).reload())


def bond_trace(br) -> list[str]:
    """What NORMAL does with a broadcast from p1: the bond lines of its trace."""
    p1 = br.ports["p1"]
    t = br.xlate.translate(parse(from_mac(b"\x02\0\0\0\0\x21"), p1.dp_port), trace=True)
    return [line.strip() for line in t.trace if "bond bond0" in line]


def test_a_reload_changes_a_bonds_mode_members_and_lacp_live(reloadable):
    sw, path = reloadable
    br = sw.bridges["br0"]
    text = RELOAD_HEAD + RELOAD_BOND
    m1, m2 = br.ports["m1"], br.ports["m2"]
    old = br.bonds["bond0"]
    (line,) = bond_trace(br)
    assert "(hash bucket" in line                      # balance-slb: by the source MAC's bucket
    # the mode: the same member ports (no device probed again), the members' state carried
    # over, NORMAL choosing by the new mode at once
    assert reload_file(sw, path, text.replace("balance-slb", "active-backup")) == "br0: bond bond0 changed\n"
    bond = br.bonds["bond0"]
    assert bond is not old and bond.mode == "active-backup" and "bond_mode: active-backup" in bond.show()
    assert br.ports["m1"] is m1 and br.ports["m2"] is m2
    assert br.pipeline.bonds[2] is bond and br.pipeline.bonds[3] is bond
    assert [(m.name, m.may_enable, m.enabled) for m in bond.members.values()] == \
        [(m.name, m.may_enable, m.enabled) for m in old.members.values()] == [("m1", True, True), ("m2", True, True)]
    (line,) = bond_trace(br)
    assert line.endswith("(active member)") and bond.active == old.active
    # LACP on: it starts negotiating (no partner here: nothing may carry traffic, and it says so)
    text = text.replace("balance-slb", "active-backup") + LACP
    assert reload_file(sw, path, text) == "br0: bond bond0 changed (LACP restarted)\n"
    lacp = br.lacp.bonds["bond0"]
    assert br.bonds["bond0"].lacp is lacp and lacp.fast and br.bonds["bond0"].lacp_status == "configured"
    assert bond_trace(br) == ["NORMAL: bond bond0: no member may carry it, dropped"]
    # a key LACP does not read: the negotiation carries on
    reload_file(sw, path, text.replace("bond_mode: active-backup", "bond_mode: active-backup\n        bond_updelay: 100"))
    assert br.lacp.bonds["bond0"] is lacp and br.bonds["bond0"].updelay == 0.1
    text = text.replace("bond_mode: active-backup", "bond_mode: active-backup\n        bond_updelay: 100")
    # LACP's timing: the negotiation starts again, fast -> slow
    text2 = text.replace("lacp_time: fast", "lacp_time: slow")
    assert "bond bond0 changed (LACP restarted)" in reload_file(sw, path, text2)
    assert br.lacp.bonds["bond0"] is not lacp and not br.lacp.bonds["bond0"].fast
    assert br.bonds["bond0"].lacp is br.lacp.bonds["bond0"]
    # one member's own LACP key: that member alone
    lacp = br.lacp.bonds["bond0"]
    first = lacp.members[2]
    text3 = text2.replace("ofport: 3}", "ofport: 3, lacp_port_priority: 7}")
    reload_file(sw, path, text3)
    assert br.lacp.bonds["bond0"] is lacp and lacp.members[2] is first and lacp.members[3].port_priority == 7
    # a third member: a port added into the bond, the others untouched
    text4 = text3.replace("        bond_mode:", "          m3: {device: net_null_bl4, ofport: 4}\n        bond_mode:")
    out = reload_file(sw, path, text4)
    assert "port m3 added" in out and "bond bond0 changed" in out
    assert sorted(br.bonds["bond0"].members) == [2, 3, 4] and br.pipeline.bonds[4] is br.bonds["bond0"]
    assert br.ports["m1"] is m1 and 4 in br.lacp.bonds["bond0"].members
    # the bond goes: its members with it, nothing of it left in NORMAL or LACP
    out = reload_file(sw, path, RELOAD_HEAD)
    assert "bond bond0 removed" in out and set(br.ports) == {"p1"}
    assert br.bonds == {} and br.pipeline.bonds == {} and "bond0" not in br.lacp.bonds
    assert bond_trace(br) == []
    # and comes back: built from the file as at start
    text = RELOAD_HEAD + RELOAD_BOND
    out = reload_file(sw, path, text)
    assert "bond bond0 added" in out and br.bonds["bond0"].mode == "balance-slb"
    assert br.pipeline.bonds[2] is br.bonds["bond0"] is br.pipeline.bonds[3]
    assert "(hash bucket" in bond_trace(br)[0]
    assert reload_file(sw, path, text) == "no change\n"


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
    # each matches the bucket, dp_hash's low byte (a host-order member): not its high byte, which
    # would let frames of another bucket take this one's member
    assert {f["mask"][8:12] for f in post} == {DP_HASH.key_mask_bytes(0xFF)[1]} == {b"\xff\0\0\0"}
    # a member goes: its buckets move to the other, the frames follow
    br.pipeline.liveness.set_carrier(1, False)
    Clock(br).run(0.2)
    br.revalidator.run()
    cycle(br, ports[3], frames)
    out = drain(br, ports)
    assert out[1] == [] and len(out[2]) == 64
    assert sum(m.tx_bytes for m in bond.members.values()) >= 0 and any(bond.loads)


def test_balance_tcp_second_pass_under_lacp_matches_its_bucket_alone(bridge):
    # With a control protocol before the tables (LACP's place) that leaves every port
    # forwarding and sending BPDUs (no spanning tree), the second pass reads nothing of the
    # frame: its megaflow is in_port, recirc_id and dp_hash & 0xff, the shape the datapath's
    # recirculation buckets take (bucket_pass counts the frames they carried).
    sw, br = bridge

    class Open:                                         # LACP's gates: all open
        name = "open"

        def claims(self, ofport, flow):
            return False

        def forwarding(self, ofport):
            return True

        learning = sends_bpdu = forwarding

        def exempt(self, ofport, flow):
            return False
    bond, ports = make_bond(br, "balance-tcp")
    bond.lacp = FakeLacp("negotiated")
    br.pipeline.special.register(Open())
    Clock(br).run(0.2)
    assert br.pipeline.special and bond.recirculates()
    cycle(br, ports[1], [from_mac(b"\x02\0\0\0\0\x11", dst=HOST_MAC)])
    drain(br, ports)
    frames = [udp_frame(i, src_mac=HOST_MAC, dst_mac=b"\x02\0\0\0\0\x11") for i in range(64)]
    cycle(br, ports[3], frames)
    post = [f for f in br.dp.flow_dump() if f["key"][4:8] != bytes(4)]
    assert post
    for f in post:
        assert f["mask"][:12] == b"\xff" * 8 + b"\xff\0\0\0" and not any(f["mask"][12:]), f["mask"].hex()
    before = int(br.dp.pmd_stats()[MANUAL_PMD]["bucket_pass"])
    cycle(br, ports[3], frames)
    out = drain(br, ports)
    assert sorted(out[1] + out[2]) == sorted(frames * 2) and out[1] and out[2]
    assert int(br.dp.pmd_stats()[MANUAL_PMD]["bucket_pass"]) - before == 64


def test_bond_hash_basis_seeds_both_hashes(bridge):
    # Open vSwitch's bond-hash-basis: another seed moves source MACs to other buckets (balance-slb)
    # and is the datapath hash action's basis (balance-tcp).
    sw, br = bridge
    assert loads(RELOAD_HEAD + RELOAD_BOND + "        bond_hash_basis: 7\n", "b.yaml").bridges["br0"] \
        .bonds["bond0"].bond_hash_basis == 7
    with pytest.raises(ConfigError, match=r"b.yaml:\d+: .*bond_hash_basis"):
        loads(RELOAD_HEAD + RELOAD_BOND + "        bond_hash_basis: -1\n", "b.yaml")
    bond, ports = make_bond(br, "balance-tcp", lacp="active", bond_hash_basis=7)
    bond.lacp = FakeLacp("negotiated")
    Clock(br).run(0.2)
    assert bond.basis == 7 and "bond-hash-basis: 7" in bond.show()
    frame = udp_frame(1, src_mac=HOST_MAC, dst_mac=b"\x02\0\0\0\0\x11")
    t = br.xlate.translate(parse(frame, ports[3]), trace=True)
    assert t.actions[-2:] == [odp.Hash(7), odp.Recirc(t.actions[-1].recirc_id)]
    macs = [0x020000000100 + i for i in range(64)]
    buckets = {}
    for basis in (0, 7):
        slb = Bond("a", [("m1", 1), ("m2", 2)], "balance-slb", basis=basis)
        for o in (1, 2):
            slb.set_may_enable(o, True)
        slb.run(0.0)
        buckets[basis] = [slb.choose(_Mac(m), 0)[1] for m in macs]
    assert None not in buckets[0] + buckets[7]
    assert sum(a != b for a, b in zip(buckets[0], buckets[7])) > 48


class _Mac:
    def __init__(self, mac):
        self.mac = mac

    def get(self, name):
        return self.mac if name == "eth_src" else 0


def test_the_bench_bond_scenarios_make_port_2_a_bond_of_null_members():
    from pathlib import Path
    from dpdkswitch.bench.forwarding import bench_config_text
    for mode, lacp in (("balance-slb", "off"), ("balance-tcp", "active")):
        cfg = loads(bench_config_text(Path("/tmp/x.pcap"), 0, 1, {"members": 2, "bond_mode": mode}), "<bench>")
        br = cfg.bridges["br0"]
        assert br.bonds["bond0"].members == ["m1", "m2"] and br.bonds["bond0"].lacp == lacp
        assert [br.ports[m].ofport for m in ("m1", "m2")] == [2, 3] and br.ports["p1"].ofport == 1
