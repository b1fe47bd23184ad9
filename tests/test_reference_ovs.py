"""Open vSwitch as the reference model: the same OpenFlow tables and the same input pcap through
Open vSwitch 3.1 (Debian's openvswitch-switch-dpdk, DPDK datapath, net_pcap ports) and through
dpdkswitch (in this process, net_pcap ports, polled by hand) must write the same frames to every
output port, order aside.  One OVS per table set (its own run directory, DPDK file prefix and
network namespace); the sets are in tests/reference/sets.py.

Where the two legitimately differ, the sets compare only what is comparable:
  - select groups: each switch hashes flows onto buckets its own way, so the outputs of the
    buckets' ports are compared as one multiset (``RefSet.combine``).
  - mod_vlan_vid / mod_vlan_pcp: ovs-ofctl encodes them for OpenFlow 1.3 as push_vlan +
    set_field whenever the match does not require a tag, so OVS would push a second tag on a
    tagged frame where dpdkswitch (and OVS's own OpenFlow 1.0 semantics) modifies the tag.  The
    OpenFlow 1.3 sets say in the match whether a tag is there; ``vlan_of10`` programs OVS in
    OpenFlow 1.0 to cover frames with and without a tag under one rule.  The same holds for
    mod_vlan_vid in group buckets (OVS checks them against an empty match): only untagged
    frames reach those.
  - push_vlan onto a tagged frame: OVS 3.1 gives the new tag VID 0 and PCP 0, where OpenFlow
    (and dpdkswitch) copy them from the tag below; the sets push onto tags only with both
    VID and PCP set afterwards.
  - output to all: OVS also sends to the bridge's LOCAL port, which dpdkswitch does not have;
    LOCAL is not compared (it is a tap in OVS's private namespace).  It is also set no-flood.
  - an ICMPv4 type/code set-field that leaves the message all zeros (an echo request with id,
    sequence and data zero made a reply): OVS's incremental update writes checksum 0x0000, the
    zero receivers reject; dpdkswitch writes 0xffff.  The sets have no such frame.
  - frames OVS drops with "miss with failed upcall" would make the comparison meaningless:
    OVS's PMD thread starts only once every port and flow is in (see reference/ovs.py) and
    the test checks that no upcall failed.

On a difference the test prints, per port, each differing output traced back to its input
frame (``ref#NNNN`` tags), both sides' frames and the fields that differ, and a diagnosis: the
dpdkswitch run is repeated with exact-match datapath flows only, so a difference that goes away
then is a megaflow-mask bug (a bit read or written but not unwildcarded), one that stays is
translation's.  The inputs, flows, both sides' pcaps and OVS's logs stay in the test's tmp_path.
One set: ``pytest tests/test_reference_ovs.py -k action_set``.

Skips (with the reason) only when Open vSwitch is not installed; scripts/setup.sh test
installs it.
"""
from __future__ import annotations

import pytest

from frames import write_pcap
from reference import ovs as ovs_mod
from reference.compare import compare
from reference.ours import run_ours
from reference.sets import all_sets

pytestmark = pytest.mark.dpdk

SETS = all_sets()


@pytest.fixture(scope="module")
def ovs_available():
    why = ovs_mod.missing()
    if why:
        pytest.skip(f"Open vSwitch (DPDK) is not installed: {why}")


# Differences from Open vSwitch that are known and left as they are, each for its reason.
KNOWN = {
    "ipv6_ext_headers": "a TCP/UDP checksum after rewriting an IPv6 destination behind a routing header: OVS keeps "
                        "the final destination's checksum, dpdkswitch updates it for the rewritten address",
    "l2_misc": "LLC/SNAP frames keep eth_type 0x05ff (OVS reads the SNAP type), and an IPv4 header whose total "
               "length runs past the frame is still parsed (the valid prefix of a truncated frame is parsed, as "
               "the parser's contract says; OVS drops its L3 fields)",
}


@pytest.mark.parametrize("rs", [pytest.param(s, marks=pytest.mark.xfail(strict=True, reason=KNOWN[s.name]))
                                if s.name in KNOWN else s for s in SETS], ids=[s.name for s in SETS])
def test_same_output_as_ovs(rs, ovs_available, eal, tmp_path):
    in_pcap = str(tmp_path / "in.pcap")
    write_pcap(in_pcap, rs.frames)
    (tmp_path / "README").write_text(f"{rs.name}: {rs.doc}\n\nflows:\n" + "\n".join(rs.flows)
                                     + "\n\ngroups:\n" + "\n".join(rs.groups) + "\n")

    ovs_out, ovs_info = ovs_mod.run_ovs(tmp_path, in_pcap, len(rs.frames), rs.ports, rs.flows, rs.groups,
                                        protocol=rs.protocol)
    assert ovs_mod.failed_upcalls(ovs_info["pmd_stats"]) == 0, \
        f"OVS dropped frames on failed upcalls; the comparison would be void:\n{ovs_info['pmd_stats']}"
    assert sum(map(len, ovs_out.values())) > 0, f"OVS forwarded nothing: the set tests nothing\n{ovs_info}"

    ours_out, ours_info = run_ours(tmp_path, in_pcap, len(rs.frames), rs.ports, rs.flows, rs.groups)
    assert ours_info["port_stats"][1]["rx_packets"] == len(rs.frames), ours_info["port_stats"]

    problems = compare(ovs_out, ours_out, rs.ports, rs.combine, rs.frames)
    counts = {p: (len(ovs_out[p]), len(ours_out[p])) for p in rs.ports}
    print(f"{rs.name}: {len(rs.frames)} frames in; out per port (OVS, dpdkswitch): {counts}; "
          f"OVS memory: {ovs_info['memory']}")
    if problems:
        # Diagnosis: the same run with exact-match datapath flows only.
        exact_out, _ = run_ours(tmp_path, in_pcap, len(rs.frames), rs.ports, rs.flows, rs.groups, megaflows=False)
        exact = compare(ovs_out, exact_out, rs.ports, rs.combine, rs.frames)
        hint = ("with exact-match datapath flows (megaflows off) dpdkswitch matches OVS: a megaflow "
                "mask is too wide (a translation read or wrote bits it did not unwildcard)" if not exact else
                f"with megaflows off {len(exact)} of the {len(problems)} port differences remain: translation "
                "itself differs" + ("" if len(exact) == len(problems) else " (the others are megaflow-mask bugs)"))
        pytest.fail(f"{rs.name} ({rs.doc}): dpdkswitch's output differs from Open vSwitch's "
                    f"(frames per port, OVS vs ours: {counts}; inputs, flows and both sides' pcaps are in "
                    f"{tmp_path})\nDiagnosis: {hint}\n\n" + "\n\n".join(problems) +
                    "\n\nflows:\n  " + "\n  ".join(rs.flows) +
                    ("\ngroups:\n  " + "\n  ".join(rs.groups) if rs.groups else "") +
                    f"\n\ndpdkswitch upcalls: {ours_info['upcalls']}", pytrace=False)
