"""The NORMAL sets of the reference test (tests/test_reference_normal.py): one bridge whose only
flow is ``actions=NORMAL``, ports in every VLAN mode, static MAC entries, and input frames on
every port, each port reading a pcap of its own.

Frames that arrive on different ports have no defined order (Open vSwitch's PMD thread polls
the ports in turn, dpdkswitch's test loop in another turn), so no expected output may depend
on which port's frames came first.  MAC learning is what could make it depend, and the sets
keep it out of the cross-port picture:

  - A destination MAC is one of: a group address (flooded, never learned), an unknown MAC that
    no frame ever sends from, a static entry (``fdb/add`` / ``mac_table.static``, in before the
    first frame) that no frame sends from, or a MAC learned on the very port that sends to it.
  - Every input port P sends from MACs of its own (02:00:00:00:PP:xx), so what P learns only
    changes where P's own later frames go: in one pcap, order is defined.  Those frames show
    learning itself: unknown (flooded) before, learned on the input port (dropped) after, and
    still unknown in every other VLAN (the table is per VLAN).
  - A learned entry changes translation, not the megaflows already installed (each switch
    revalidates them in its own time): a frame after the change never repeats the (in_port,
    VLAN, source, destination) of a frame before it, so it is translated afresh on both sides.
  - Every tagging comes from source MACs of its own.  Open vSwitch 3.1's NORMAL megaflows do
    not match all that its translation looked at: not the PCP of a priority tag (a PCP other
    than 0 keeps the tag, 0 drops it), not the second tag (an access port gets no flood copy of
    a frame that has one; a dot1q-tunnel port re-pushes both tags of a double-tagged frame but
    only pushes its own over a single tag).  Frames that differ only there would share the
    first one's megaflow in OVS, and its output with it (an OVS bug the sets step around).

Forwarding to a port learned from traffic on another port is therefore shown with static
entries, which both switches look up exactly as learned ones.  Static entries themselves are
never moved by a frame from another port: the one frame that tries comes, with the frame that
checks it, from one port.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402

from .sets import TAG  # noqa: E402

# ofport -> the port's VLAN settings: the same keys in dpdkswitch's YAML and OVS's Port table.
PORTS: dict[int, dict] = {
    1: {"vlan_mode": "trunk"},                                         # every VLAN; untagged is VLAN 0
    2: {"vlan_mode": "access", "tag": 10},
    3: {"vlan_mode": "access", "tag": 20},
    4: {"vlan_mode": "trunk", "trunks": [10, 30]},
    5: {"vlan_mode": "native-tagged", "tag": 20, "trunks": [10]},
    6: {"vlan_mode": "native-untagged", "tag": 10, "trunks": [20, 30]},
    7: {"vlan_mode": "dot1q-tunnel", "tag": 30},
    8: {"vlan_mode": "access", "tag": 30},
    9: {"vlan_mode": "native-untagged", "tag": 40},                    # no trunks: every VLAN but 0
    10: {"vlan_mode": "trunk", "trunks": [0, 20]},                     # untagged frames as VLAN 0
    11: {"vlan_mode": "native-tagged", "tag": 30},
}

# The tagging of an input frame: (vid, pcp[, tpid[, dei]]) per tag, outer first.
TAGGINGS: list[tuple] = [
    (),                                       # untagged
    ((0, 5),),                                # priority-tagged
    ((0, 0),),                                # priority-tagged, priority 0
    ((10, 3),),
    ((10, 0, 0x8100, 1),),                    # drop-eligible
    ((20, 0),),
    ((30, 6),),
    ((40, 0),),
    ((99, 1),),                               # no port but the all-VLAN trunks carries it
    ((4095, 0),),
    ((10, 2, 0x88A8),),                       # an 802.1ad tag
    ((10, 0), (20, 4)),                       # double-tagged
    ((30, 0, 0x88A8), (10, 0)),               # a service tag over a customer tag
    ((0, 2), (20, 0)),                        # priority tag over a VLAN tag
]

BCAST = "ff:ff:ff:ff:ff:ff"
# Group addresses are flooded; OVS drops its reserved ones unless forward-bpdu (the 802.1D range
# and a few Cisco and Extreme protocol addresses, one of them unicast).
MCAST = ["01:00:5e:01:02:03", "33:33:00:00:00:01"]
RESERVED = ["01:80:c2:00:00:00", "01:80:c2:00:00:0e", "01:00:0c:cc:cc:cc", "00:e0:2b:00:00:00"]
UNKNOWN = "02:ee:00:00:00:01"                 # no frame comes from it, no entry names it
K1, K2, K3 = "02:5a:00:00:00:01", "02:5a:00:00:00:02", "02:5a:00:00:00:03"

# Static entries (ofport, vlan, mac).  K1 and K2 in several VLANs, each on another port; K2 in
# VLAN 30 on an access port of VLAN 10 (neither switch checks that a port carries the VLAN of
# its static entries); K3 is the one port 1 tries to move.
STATIC: list[tuple[int, int, str]] = [
    (10, 0, K1), (2, 10, K1), (5, 20, K1), (7, 30, K1), (9, 40, K1), (1, 99, K1),
    (4, 10, K2), (3, 20, K2), (2, 30, K2),
    (2, 10, K3),
]


def mac_of(port: int, n: int) -> str:
    """Port PORT's own MACs: 0x10 + tagging sends everything, 0x30/0x50 + tagging before/after
    LRN (4) is learned, 0x70 + tagging to 0x10 + tagging."""
    return f"02:00:00:00:{port:02x}:{n:02x}"


@dataclass
class NormalSet:
    name: str
    doc: str
    ports: dict[int, dict]
    inputs: dict[int, list[int]]                     # ofport -> indexes into frames, in order
    frames: list[bytes]                              # every input frame; index = its ref# tag
    static: list[tuple[int, int, str]] = field(default_factory=list)
    forward_bpdu: bool = False
    flood_vlans: list[int] = field(default_factory=list)

    @property
    def ofports(self) -> list[int]:
        return sorted(self.ports)

    def ovs_bridge_config(self) -> list[str]:
        return ([f"other_config:forward-bpdu={str(self.forward_bpdu).lower()}"]
                + ([f"flood_vlans={','.join(map(str, self.flood_vlans))}"] if self.flood_vlans else []))

    def ours_bridge_config(self) -> dict:
        return {"forward_bpdu": self.forward_bpdu, "flood_vlans": list(self.flood_vlans),
                "mac_table": {"static": [{"mac": mac, "vlan": vlan, "port": f"p{p}"} for p, vlan, mac in self.static]}}


class _Builder:
    def __init__(self):
        self.frames: list[bytes] = []
        self.inputs: dict[int, list[int]] = {}

    def add(self, port: int, src: str, dst: str, tags: tuple = (), kind: str = "udp") -> None:
        p = Ether(src=src, dst=dst)
        for t in tags:
            vid, pcp, tpid, dei = list(t) + [0x8100, 0][len(t) - 2:]
            p = p / (Dot1AD(vlan=vid, prio=pcp, dei=dei) if tpid == 0x88A8 else Dot1Q(vlan=vid, prio=pcp, dei=dei))
        if kind == "arp":
            p = p / ARP(op=1, hwsrc=src, psrc="10.0.0.%d" % (port + 100), pdst="10.0.0.1")
        else:
            p = p / IP(src="10.0.%d.1" % port, dst="10.0.0.2" if not int(dst[:2], 16) & 1 else "224.1.2.3") \
                  / UDP(sport=1000 + port, dport=7)
        self.inputs.setdefault(port, []).append(len(self.frames))
        self.frames.append(bytes(p / Raw(b"x" * 8 + TAG % len(self.frames))))

    def add_raw(self, port: int, frame: bytes) -> None:
        """A frame too short for a tag."""
        self.inputs.setdefault(port, []).append(len(self.frames))
        self.frames.append(frame)


def _frames(ports: dict[int, dict], taggings: list[tuple] = TAGGINGS) -> _Builder:
    b = _Builder()
    for p in sorted(ports):
        lrn = mac_of(p, 4)
        # Every tagging to every kind of destination, from a source per tagging.
        for t, tags in enumerate(taggings):
            b.add(p, mac_of(p, 0x10 + t), BCAST, tags, kind="arp")
            for dst in MCAST + RESERVED + [UNKNOWN, K1, K2]:
                b.add(p, mac_of(p, 0x10 + t), dst, tags)
        # Learning, on this port only: LRN unknown everywhere, then learned in one VLAN.
        first = next((t for t in taggings if _admitted(ports[p], t)), ())
        for t, tags in enumerate(taggings):
            b.add(p, mac_of(p, 0x30 + t), lrn, tags)     # unknown: flooded (where admitted)
        b.add(p, lrn, BCAST, first)                      # learns LRN in the port's first VLAN
        for t, tags in enumerate(taggings):
            b.add(p, mac_of(p, 0x50 + t), lrn, tags)     # dropped in that VLAN, flooded in the others
        # Each tagging's source, learned in the VLAN the port put it in.
        for t, tags in enumerate(taggings):
            b.add(p, mac_of(p, 0x70 + t), mac_of(p, 0x10 + t), tags)
    # Port 1 tries to move K3 (static on port 2, VLAN 10), then sends to it.
    b.add(1, K3, BCAST, ((10, 0),))
    b.add(1, mac_of(1, 5), K3, ((10, 0),))
    b.add_raw(1, bytes.fromhex(K1.replace(":", "") + mac_of(1, 6).replace(":", "")) + b"\x81\x00\x00")   # partial tag
    return b


def _admitted(port: dict, tags: tuple) -> bool:
    """Whether PORT takes a frame with TAGS (a rough rule, only to pick a learning VLAN)."""
    vid = tags[0][0] if tags else 0
    mode = port["vlan_mode"]
    if mode in ("access", "dot1q-tunnel"):
        return mode == "dot1q-tunnel" or vid == 0
    if mode.startswith("native"):
        return vid == 0 or vid == port["tag"] or vid in port.get("trunks", [vid])
    return "trunks" not in port or vid in port["trunks"]


def normal_sets() -> list[NormalSet]:
    b = _frames(PORTS)
    plain = NormalSet(
        "vlan_modes", "every VLAN mode in and out; broadcast, multicast, reserved, unknown, static and "
        "learned destinations", PORTS, b.inputs, b.frames, STATIC)
    b2 = _frames(PORTS)
    bpdu = NormalSet(
        "forward_bpdu_flood_vlans", "the same with forward_bpdu on (reserved addresses are flooded) and "
        "VLAN 20 a flood VLAN (no learning, no lookups: static entries in it are not used)",
        PORTS, b2.inputs, b2.frames, STATIC, forward_bpdu=True, flood_vlans=[20])
    b3 = _frames(PORTS, [((0, 3, 0x8100, 1),)])
    dei = NormalSet(
        "dei_rewritten", "priority-tagged frames with the DEI bit set, whose tag NORMAL gives a VLAN",
        PORTS, b3.inputs, b3.frames, STATIC)
    return [plain, bpdu, dei]
