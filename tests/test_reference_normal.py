"""Open vSwitch as the reference model for NORMAL: the same VLAN configuration (vlan_mode, tag,
trunks per port; forward_bpdu, flood_vlans and static MAC entries per bridge) and the same
input pcaps through Open vSwitch 3.1 and through dpdkswitch must write the same frames to
every port, order aside.  The bridge's only flow is ``actions=NORMAL`` on both.

The machinery is tests/test_reference_ovs.py's (tests/reference/ovs.py, ours.py, compare.py;
read that module's docstring first).  The sets are in tests/reference/normal.py: eleven ports in
every VLAN mode (access, trunk with and without a trunks list, native-tagged, native-untagged,
dot1q-tunnel), each sending untagged, priority-tagged, tagged (VLANs it carries and VLANs it
does not, an 802.1ad tag, VID 4095, DEI set) and double-tagged frames to broadcast, multicast,
reserved (802.1D, Cisco, Extreme), unknown, static and learned destinations, in VLANs 0, 10,
20, 30, 40 and 99.  Every port reads input of its own; that module's docstring explains how MAC
learning is kept from making the expected output depend on which port's frames come first.

Where the two legitimately differ, the sets compare only what is comparable:
  - OVS's LOCAL port gets flood copies (it is a trunk of every VLAN); the dpdkswitch bridge
    here has none.  It is set no-flood and not compared.
  - OVS runs with other_config:vlan-limit=2 (tests/reference/ovs.py), so that it parses the
    two tags dpdkswitch's flow key has; NORMAL's treatment of a second tag depends on it.  Both
    handle two tags: a double-tagged frame entering a dot1q-tunnel port loses its innermost.
  - OVS's NORMAL megaflows miss some bits its translation read (see reference/normal.py): the
    frames never rely on them.

On a difference the test prints, per port, each differing output traced back to its input
frame (``ref#NNNN``), both sides' frames and the fields that differ.  The inputs (in-pN.pcap),
both sides' pcaps, the README with the configuration and OVS's MAC table before and after
(ovs-fdb.txt) stay in the test's tmp_path.  One set: ``pytest tests/test_reference_normal.py
-k vlan_modes``.

Skips (with the reason) only when Open vSwitch is not installed; scripts/setup.sh test
installs it.
"""
from __future__ import annotations


import pytest

from frames import write_pcap
from reference import ovs as ovs_mod
from reference.compare import compare
from reference.normal import normal_sets
from reference.ours import run_ours

pytestmark = pytest.mark.dpdk

SETS = normal_sets()
FLOWS = ["priority=0,actions=NORMAL"]


@pytest.fixture(scope="module")
def ovs_available():
    why = ovs_mod.missing()
    if why:
        pytest.skip(f"Open vSwitch (DPDK) is not installed: {why}")


# Differences from Open vSwitch that are known and left as they are, each for its reason.
KNOWN: dict[str, str] = {}


@pytest.mark.parametrize("ns", [pytest.param(s, marks=pytest.mark.xfail(strict=True, reason=KNOWN[s.name]))
                                if s.name in KNOWN else s for s in SETS], ids=[s.name for s in SETS])
def test_normal_same_output_as_ovs(ns, ovs_available, eal, tmp_path):
    inputs = {}
    for p, idx in ns.inputs.items():
        path = str(tmp_path / f"in-p{p}.pcap")
        write_pcap(path, [ns.frames[i] for i in idx])
        inputs[p] = (path, len(idx))
    (tmp_path / "README").write_text(
        f"{ns.name}: {ns.doc}\n\nports:\n" + "".join(f"  p{p}: {c}\n" for p, c in sorted(ns.ports.items()))
        + "\nstatic MACs (port, vlan, mac):\n" + "".join(f"  {e}\n" for e in ns.static)
        + f"\nforward_bpdu: {ns.forward_bpdu}\nflood_vlans: {ns.flood_vlans}\n")

    ovs_out, ovs_info = ovs_mod.run_ovs(tmp_path, "", 0, ns.ofports, FLOWS, inputs=inputs, port_config=ns.ports,
                                        bridge_config=ns.ovs_bridge_config(), fdb=ns.static)
    (tmp_path / "ovs-fdb.txt").write_text(ovs_info["fdb_before"] + "\n--- after\n" + ovs_info["fdb"])
    assert ovs_mod.failed_upcalls(ovs_info["pmd_stats"]) == 0, \
        f"OVS dropped frames on failed upcalls; the comparison would be void:\n{ovs_info['pmd_stats']}"
    statics = [l.split() for l in ovs_info["fdb_before"].splitlines()[1:]]
    assert sum(1 for r in statics if r[-1] == "static") == len(ns.static), \
        f"OVS did not take every static entry:\n{ovs_info['fdb_before']}"
    quiet = [p for p in ns.ofports if not ovs_out[p]]
    assert not quiet, f"OVS sent nothing to ports {quiet}: the set does not test them\n{ovs_info['port_stats']}"

    ours_out, ours_info = run_ours(tmp_path, "", 0, ns.ofports, FLOWS, inputs=inputs, port_config=ns.ports,
                                   bridge_config=ns.ours_bridge_config())
    for p, (_, n) in inputs.items():
        assert ours_info["port_stats"][p]["rx_packets"] == n, ours_info["port_stats"]

    problems = compare(ovs_out, ours_out, ns.ofports, [], ns.frames)
    counts = {p: (len(ovs_out[p]), len(ours_out[p])) for p in ns.ofports}
    print(f"{ns.name}: {len(ns.frames)} frames in on {len(inputs)} ports; out per port (OVS, dpdkswitch): "
          f"{counts}; OVS memory: {ovs_info['memory']}")
    if problems:
        pytest.fail(f"{ns.name} ({ns.doc}): dpdkswitch's output differs from Open vSwitch's (frames per port, "
                    f"OVS vs ours: {counts}; inputs, both sides' pcaps and OVS's MAC table are in {tmp_path})\n\n"
                    + "\n\n".join(problems) + "\n\nports:\n  "
                    + "\n  ".join(f"p{p}: {c}" for p, c in sorted(ns.ports.items()))
                    + f"\nstatic MACs (port, vlan, mac): {ns.static}"
                    + f"\n\ndpdkswitch upcalls: {ours_info['upcalls']}", pytrace=False)
