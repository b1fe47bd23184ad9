"""The slow path end to end: translation's megaflows, the upcall handler, the revalidator.

Deterministic datapaths (no PMD thread, manual clock) with test ports; the tests play the
control thread's loop by hand (inject, poll, ``UpcallHandler.handle``, poll, ``Revalidator.run``).

* Megaflow soundness (hypothesis): random pipelines (tables, metadata, goto, groups whose buckets
  are action sets, header rewrites, VLAN push/pop, dec_ttl, fragment and TCP flag matches) and
  random packets from small pools (IPv4/IPv6 first and later fragments among them, TTLs 0-2):
  whatever packet falls in the
  megaflow a translation installs gets the same datapath actions; through the real datapath,
  what cached flows do to the packets equals packet-out of each packet's own translation.
  Actions are compared as what they do: a masked set's value bits outside its mask are ignored.
* Megaflow width, revalidation of 10,000 flows, expiry (max-idle, flow-limit pressure, rule
  idle/hard timeouts on the manual clock), and smaller translation behaviours.
* Known bugs are strict xfails (they turn into failures when fixed: then drop the marker).

Note for the manual clock: a key that missed less than 20 ms (datapath clock) ago is parked
behind that miss instead of upcalled again, so a test that deletes a flow and resends its
packets advances the clock first.
"""
from __future__ import annotations

import ipaddress
import itertools
import random
import struct
from collections import Counter
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dpdkswitch.datapath import MANUAL_PMD, Datapath, odp, parse
from dpdkswitch.ofproto.actions import (DecNwTtl, Group, Output, PopVlan, PushVlan, SetField, SetNwTtl)
from dpdkswitch.ofproto.fields import BY_NAME, FIELDS, VLAN_CFI, format_key
from dpdkswitch.ofproto.flowstr import FlowParseError, FlowSpec, parse_flow
from dpdkswitch.ofproto.pipeline import Bucket, FlowModError, GroupEntry, Pipeline, PortEntry
from dpdkswitch.ofproto.xlate import Translator, megaflow_mask
from dpdkswitch import revalidator as revalidator_mod
from dpdkswitch.revalidator import Revalidator
from dpdkswitch.upcall import UpcallHandler

from frames import checksum, udp_frame

pytestmark = pytest.mark.dpdk

SECOND = 1_000_000_000
MS = 1_000_000
_names = itertools.count()


def band(a: bytes, b: bytes) -> bytes:
    return bytes(x & y for x, y in zip(a, b))


def field_mask(mask: bytes, name: str) -> int:
    return BY_NAME[name].from_key(mask)


def outputs(actions) -> list[int]:
    """The ports of the output actions, clones included, in order."""
    out = []
    for a in actions:
        if isinstance(a, odp.Output):
            out.append(a.port)
        elif isinstance(a, (odp.Clone, odp.Sample)):
            out += outputs(a.actions)
    return out


def norm(actions) -> tuple:
    """Datapath actions as what they do: a masked set's value bits outside its mask mean nothing."""
    out = []
    for a in actions:
        if isinstance(a, odp.SetMasked):
            a = odp.SetMasked(a.kind, band(a.value, a.mask), a.mask)
        elif isinstance(a, odp.Clone):
            a = odp.Clone(norm(a.actions))
        elif isinstance(a, odp.Sample):
            a = odp.Sample(a.probability, norm(a.actions))
        out.append(a)
    return tuple(out)


# ---- a switch: datapath + pipeline + translator + handler + revalidator ----------------------

class Rig:
    """OpenFlow ports 1..N on test ports OF2DP[n]; the control loop played by hand."""

    def __init__(self, dp: Datapath, ports=(1, 2, 3), dp_base: int = 0, start_ns: int = SECOND):
        self.dp = dp
        self.of2dp = {of: of + dp_base for of in ports}
        for of, d in self.of2dp.items():
            dp.add_test_port(d, f"sp{next(_names)}")
        self.clock = start_ns
        dp.set_clock(self.clock)
        self.p = Pipeline(clock=lambda: dp.now_ns / 1e9)
        for of, d in self.of2dp.items():
            self.p.set_port(PortEntry(of, f"p{of}", d))
        self.x = Translator(self.p)
        self.pins = []
        self.h = UpcallHandler(dp, self.p, self.x, on_packet_in=self.pins.append)
        self.r = Revalidator(dp, self.p, self.x, self.h)
        self.r.run()                                  # the port changes are old news

    def add(self, *flows: str):
        return [self.p.add(parse_flow(f)) for f in flows]

    def at(self, ns: int) -> None:
        self.clock = ns
        self.dp.set_clock(ns)

    def pump(self) -> None:
        """Poll and handle upcalls until the datapath is quiet."""
        for _ in range(200):
            got = self.dp.poll(4)
            n = self.h.handle()
            if not got and not n:
                self.dp.poll(2)
                if not self.h.handle():
                    return
        raise AssertionError("the datapath never went quiet")

    def send(self, of_port: int, frames: list[bytes], chunk: int = 500) -> dict[int, list[bytes]]:
        """Inject FRAMES on OF_PORT in chunks, run the loop; what came out of each port."""
        out = {of: [] for of in self.of2dp}
        for i in range(0, len(frames), chunk):
            part = frames[i:i + chunk]
            assert self.dp.inject(self.of2dp[of_port], part) == len(part)
            self.pump()
            for of, d in self.of2dp.items():
                out[of] += self.dp.drain(d)
        return out

    def misses(self) -> int:
        return int(self.dp.pmd_stats()[MANUAL_PMD]["misses"])


# ---- packets from small pools ----------------------------------------------------------------

MACS = [0x020000000001, 0x020000000002, 0x0A1B2C3D4E5F]
IP4S = ["10.0.0.1", "10.0.0.2", "10.0.1.1", "10.1.0.1", "192.168.0.1"]
IP6S = ["2001:db8::1", "2001:db8::2", "2001:db8:0:1::1"]
VIDS = [10, 20]
PCPS = [0, 5]
TTLS = [0, 1, 2, 64]
FRAGS = ["none", "none", "first", "later"]     # IPv4 MF/offset, IPv6 a fragment header
TPS = [53, 80, 443]
SPORTS = [1000, 2000]
DPORTS = TPS + [52, 81, 4000, 0x1234]       # neighbours of the rules' ports: ports tracking
TOS = [0, 0x20]
MPLS_LABELS = [16, 17, 18, 16, 17]


class Pkt(NamedTuple):
    in_port: int                      # OpenFlow port 1..3
    eth_src: int
    eth_dst: int
    vlans: tuple                      # ((tpid, vid, pcp), ...) outer first
    kind: str                         # ip4, ip6, arp, mpls (over ip4: label MPLS_LABELS[src], TC tos >> 5,
                                      # TTL ttl; TCP one entry, UDP two, the inner label 30 + dst)
    src: int                          # index into IP4S / IP6S
    dst: int
    proto: int                        # 6, 17 (ARP: op 1, 2)
    sport: int
    dport: int
    ttl: int
    tos: int
    frag: str = "none"                # none, first, later


def build(p: Pkt) -> bytes:
    eth = p.eth_dst.to_bytes(6, "big") + p.eth_src.to_bytes(6, "big")
    for tpid, vid, pcp in p.vlans:
        eth += struct.pack("!HH", tpid, vid | pcp << 13)
    if p.kind == "mpls":
        inner = build(p._replace(kind="ip4", vlans=()))[14:]
        lses = [MPLS_LABELS[p.src] << 12 | (p.tos >> 5) << 9 | (p.proto == 6) << 8 | p.ttl]
        if p.proto != 6:
            lses.append((30 + p.dst) << 12 | 1 << 8 | 64)
        return eth + b"\x88\x47" + b"".join(struct.pack("!I", x) for x in lses) + inner
    if p.kind == "arp":
        body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1 if p.proto == 6 else 2) + p.eth_src.to_bytes(6, "big") \
            + ipaddress.IPv4Address(IP4S[p.src]).packed + bytes(6) + ipaddress.IPv4Address(IP4S[p.dst]).packed
        return eth + b"\x08\x06" + body + bytes(18)
    payload = bytes(range(16))
    if p.proto == 6:
        l4 = struct.pack("!HHIIBBHHH", p.sport, p.dport, 1, 0, 5 << 4, 0x02, 8192, 0, 0) + payload
    else:
        l4 = struct.pack("!HHHH", p.sport, p.dport, 8 + len(payload), 0) + payload
    if p.kind == "ip4":
        frag = {"none": 0, "first": 0x2000, "later": 0x2003}[p.frag]       # MF, offset 3 (x 8 bytes)
        ip = struct.pack("!BBHHHBBHII", 0x45, p.tos, 20 + len(l4), 1, frag, p.ttl, p.proto, 0,
                         int(ipaddress.IPv4Address(IP4S[p.src])), int(ipaddress.IPv4Address(IP4S[p.dst])))
        ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
        return eth + b"\x08\x00" + ip + l4
    nh = p.proto
    if p.frag != "none":                      # a fragment header, M set; a later one has an offset
        l4 = struct.pack("!BBHI", p.proto, 0, 1 | (3 << 3 if p.frag == "later" else 0), 7) + l4
        nh = 44
    ip6 = struct.pack("!IHBB", 6 << 28 | p.tos << 20, len(l4), nh, p.ttl) \
        + ipaddress.IPv6Address(IP6S[p.src]).packed + ipaddress.IPv6Address(IP6S[p.dst]).packed
    return eth + b"\x86\xdd" + ip6 + l4


_key_cache: dict[tuple, tuple[bytes, bytes]] = {}


def frame_and_key(p: Pkt, of2dp: dict[int, int]) -> tuple[bytes, bytes]:
    ck = (p, of2dp[p.in_port])
    if ck not in _key_cache:
        f = build(p)
        _key_cache[ck] = f, parse(f, of2dp[p.in_port])
    return _key_cache[ck]


VLAN_STACKS = [(), ((0x8100, 10, 0),), ((0x8100, 20, 0),), ((0x8100, 10, 5),), ((0x88A8, 10, 0), (0x8100, 20, 0)),
               ((0x8100, 20, 5), (0x8100, 10, 0))]
PKT_POOLS = {"in_port": [1, 2, 3], "eth_src": MACS, "eth_dst": MACS, "vlans": VLAN_STACKS,
             "kind": ["ip4", "ip4", "ip6", "arp", "mpls"], "src": range(3), "dst": range(3), "proto": [6, 17],
             "sport": SPORTS, "dport": DPORTS, "ttl": TTLS, "tos": TOS, "frag": FRAGS}


@st.composite
def packets(draw, pools=PKT_POOLS):
    """A base packet and variations of it (1-3 fields changed), so that megaflows get shared."""
    def one():
        d = {k: draw(st.sampled_from(list(v))) for k, v in pools.items()}
        d["src"] = draw(st.integers(0, 4 if d["kind"] != "ip6" else 2))
        d["dst"] = draw(st.integers(0, 4 if d["kind"] != "ip6" else 2))
        return Pkt(**d)
    base = one()
    out = [base]
    for _ in range(draw(st.integers(1, 9))):
        if draw(st.integers(0, 4)) == 0:
            out.append(one())
            continue
        p = base if draw(st.booleans()) else draw(st.sampled_from(out))
        for k in draw(st.lists(st.sampled_from(sorted(pools)), min_size=1, max_size=3, unique=True)):
            v = draw(st.sampled_from(list(pools[k])))
            p = p._replace(**{k: v})
        limit = 2 if p.kind == "ip6" else 4
        p = p._replace(src=min(p.src, limit), dst=min(p.dst, limit))
        out.append(p)
    return out


# ---- random pipelines ---------------------------------------------------------------------------

PREFIXES4 = ["10.0.0.0/8", "10.0.0.0/16", "10.0.0.0/24", "10.0.0.1", "10.0.0.2/31", "10.0.1.0/24", "10.1.0.0/16",
             "192.168.0.0/16", "128.0.0.0/1"]
PREFIXES6 = ["2001:db8::/32", "2001:db8::/64", "2001:db8::1", "2001:db8:0:1::/64"]
MAC_STRS = ["02:00:00:00:00:01", "02:00:00:00:00:02", "0a:1b:2c:3d:4e:5f"]


class PipeSpec(NamedTuple):
    flows: list[str]
    groups: list[tuple[int, str, list[tuple[tuple, int, int]]]]   # (gid, type, [(actions, weight, watch)])
    live: tuple[bool, bool, bool]


def _bucket_actions(draw, gid: int, gids: list[int]) -> tuple:
    pool = [Output(1), Output(2), Output(3), SetField("eth_src", MACS[0]), SetField("vlan_vid", VLAN_CFI | 30),
            PushVlan(0x8100), PopVlan(), DecNwTtl(), SetField("ipv4_dst", int(ipaddress.IPv4Address("10.9.9.9"))),
            SetField("udp_dst", 4000), SetField("tcp_src", 7), SetNwTtl(1), SetField("vlan_pcp", 5)]
    pool += [Group(g) for g in gids if g > gid]       # chains go one way: no loops
    # A bucket is an action set: outputs before rewrites, two outputs, a group with an output.
    acts = draw(st.lists(st.sampled_from(pool), min_size=0, max_size=5))
    if not any(isinstance(a, (Output, Group)) for a in acts):
        acts.append(draw(st.sampled_from([Output(1), Output(2), Output(3)])))
    return tuple(acts)


MPLS_PKT_POOLS = {**PKT_POOLS, "kind": ["mpls", "mpls", "mpls", "ip4"]}


@st.composite
def pipelines(draw, mpls: bool = False):
    """Random pipelines; MPLS: groupless ones whose rules mostly match MPLS and push, set and pop
    its entries (the general ones draw MPLS too, but rarely reach a pop's recirculation)."""
    n_tables = draw(st.integers(1, 4 if not mpls else 3))
    gids = sorted(draw(st.sets(st.integers(1, 6), max_size=3))) if not mpls else []
    groups = []
    for gid in gids:
        gtype = draw(st.sampled_from(["all", "select", "indirect", "ff"]))
        buckets = []
        for _ in range(draw(st.integers(1, 3))):
            buckets.append((_bucket_actions(draw, gid, gids), draw(st.integers(0, 3)), draw(st.sampled_from(
                [0xFFFFFFFF, 1, 2, 3]))))
        groups.append((gid, gtype, buckets))
    flows = []
    for t in range(n_tables):
        for _ in range(draw(st.integers(1, 8))):
            flows.append(_rule(draw, t, n_tables, gids, mpls))
        if draw(st.booleans()):              # a table-miss rule, so that fewer packets just drop
            last = t == n_tables - 1 or draw(st.booleans())
            flows.append(f"table={t},priority=0,actions=" + (
                draw(st.sampled_from(["output:1", "output:2", "output:3", "flood"] + [f"group:{g}" for g in gids]))
                if last else f"goto_table:{n_tables - 1}"))
    live = draw(st.sampled_from([(True, True, True)] * 3 + [(True, False, True), (False, True, False)]))
    return PipeSpec(flows, groups, live)


def _rule(draw, t: int, n_tables: int, gids: list[int], mpls: bool = False) -> str:
    pick = lambda pool: draw(st.sampled_from(pool))   # noqa: E731
    maybe = lambda: draw(st.integers(0, 2)) == 0     # noqa: E731
    proto = pick([None, None, "ip", "ip", "arp", "ipv6", "tcp", "udp", "udp", "tcp6", "udp6", "mpls", "mpls"]
                 if not mpls else [None, "mpls", "mpls", "mpls", "ip", "udp"])
    m = [f"table={t}", f"priority={pick([0, 1, 5, 10, 10, 20, 30])}"]
    if proto:
        m.append(proto)
    if maybe():
        m.append(f"in_port={pick([1, 2, 3])}")
    if maybe() and not mpls:
        m.append(pick(["dl_vlan=10", "dl_vlan=20", "dl_vlan=0xffff", "vlan_tci=0x1000/0x1000", "dl_vlan=30",
                       "dl_vlan_pcp=5"]))
    if maybe() and not mpls:
        m.append(f"dl_dst={pick(MAC_STRS)}")
    if proto in ("ip", "tcp", "udp"):
        if draw(st.booleans()):
            m.append(f"nw_src={pick(PREFIXES4)}")
        if maybe():
            m.append(f"nw_dst={pick(PREFIXES4)}")
        if maybe():
            m.append(f"nw_ttl={pick(TTLS)}")
    if proto in ("ipv6", "tcp6", "udp6") and draw(st.booleans()):
        m.append(f"ipv6_{pick(['src', 'dst'])}={pick(PREFIXES6)}")
    if proto == "mpls":
        for f, pool in (("mpls_label", [16, 17]), ("mpls_bos", [0, 1]), ("mpls_tc", [0, 1]), ("mpls_ttl", [1, 64])):
            if maybe():
                m.append(f"{f}={pick(pool)}")
    if proto == "arp" and maybe():
        m.append(f"arp_spa={pick(PREFIXES4)}")
    frag = pick(["no", "first", "later", "yes", "not_later"]) if proto not in (None, "arp", "mpls") and maybe() else None
    if frag:
        m.append(f"nw_frag={frag}")
    l4 = proto in ("tcp", "udp", "tcp6", "udp6") and frag != "later"     # a later fragment has no L4 header
    if l4 and draw(st.booleans()):
        m.append(f"tp_dst={pick(TPS + [0, 4000, '0x1000/0xf000', '0x0/0xffc0', '0x50/0xfffe'])}")
    if l4 and maybe():
        m.append(f"tp_src={pick(SPORTS + ['0x400/0xfc00'])}")
    if l4 and proto in ("tcp", "tcp6") and maybe():
        m.append(f"tcp_flags={pick(['+syn', '-syn', '+syn-ack', '+ack'])}")
    if t > 0 and maybe():
        m.append(f"metadata={pick(['0x1/0x1', '0x2/0x3', '0x0/0x1', '0x3'])}")
    if maybe():
        m.append(f"reg0={pick(['0x1/0x1', '0x2/0x3', '0', '0x5/0xf5', '0x3'])}")
    # Conjunctive matches: id 1 in two dimensions, id 2 in three; a clause is a soft match, and
    # the rule on its conj_id decides (the megaflow must match every clause's fields consulted).
    if maybe() and maybe():
        cid = pick([1, 2])
        return ",".join(m) + f",actions=conjunction({cid},{pick(list(range(1, cid + 2)))}/{cid + 1})"
    if maybe() and maybe():
        m.append(f"conj_id={pick([1, 2])}")

    acts = ["mod_dl_src:02:00:00:00:00:01", "mod_dl_dst:0a:1b:2c:3d:4e:5f", "mod_vlan_vid:10", "mod_vlan_vid:30",
            "mod_vlan_pcp:5", "push_vlan:0x8100", "push_vlan:0x88a8", "strip_vlan", "dec_ttl", "mod_nw_ttl:64",
            "mod_nw_ttl:1"]
    if proto in ("ip", "tcp", "udp"):
        acts += ["mod_nw_src:10.0.0.1", "mod_nw_dst:10.0.0.2", "mod_nw_tos:32"]
    if proto in ("ipv6", "tcp6", "udp6"):
        acts += ["set_field:2001:db8::2->ipv6_src"]
    if proto in ("tcp", "udp", "tcp6", "udp6"):
        acts += ["mod_tp_dst:53", "mod_tp_src:1000"]
    if proto in ("tcp", "tcp6"):
        acts += ["fin_timeout(idle_timeout=5)"]
    # Open vSwitch's extensions: registers written from constants and from the packet, read back
    # into it, resubmits anywhere (loops end at the depth limit, dropping the packet), and learn
    # (whose sources the megaflow must match: every packet of a megaflow learns the same flow;
    # into a table no rule visits, so that the packet-out property's tables stay as drawn).
    acts += ["load:1->reg0[0]", "load:0x2->NXM_NX_REG0[0..1]", "set_field:0x4/0x4->reg0",
             "move:NXM_OF_ETH_DST[0..3]->NXM_NX_REG0[0..3]", "move:NXM_NX_REG0[0..7]->NXM_OF_ETH_SRC[8..15]",
             "push:NXM_NX_REG0[0..7]", "pop:NXM_NX_REG0[4..11]", "exit",
             "learn(table=200,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],"
             "load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15])",
             *(f"resubmit(,{draw(st.integers(0, n_tables - 1))})" for _ in range(2)), "resubmit(2)",
             "clone(mod_dl_src:02:00:00:00:00:05,load:3->reg0[],output:2)", "clone(output:3,exit)",
             "multipath(symmetric_l4,3,modulo_n,3,0,reg0[0..1])", "multipath(nw_dst,0,hrw,2,0,reg0[2])",
             # bundle over the drawn port liveness, dec_ttl(ids), controller's options
             "bundle(symmetric_l4,3,hrw,ofport,members:1,2,3)", "bundle(eth_src,0,active_backup,ofport,members:3,2)",
             "bundle_load(nw_dst,0,hrw,ofport,reg0[0..15],members:1,2)", "dec_ttl(0,4)",
             "controller(reason=no_match,id=0,userdata=01.02)", "controller(id=4,max_len=64)",
             "learn(table=201,limit=1,result_dst=reg0[5],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[])",
             # decided per frame in the datapath: frames of one megaflow differ in length
             "check_pkt_larger(80)->reg0[1]", "check_pkt_larger(90)->reg0[0]", "pop_queue"]
    if proto in ("ip", "tcp", "udp"):
        acts += ["move:NXM_OF_IP_SRC[0..3]->NXM_NX_REG0[4..7]", "load:0x5->NXM_OF_IP_DST[4..7]"]
    # MPLS: push onto anything, the label stack entry set, and pop (after which an action that
    # needs the headers under it recirculates the frame: the second pass's megaflow too).
    acts += ["push_mpls:0x8847", "push_mpls:0x8848", "set_mpls_label(20)", "set_mpls_ttl(9)"]
    if proto == "mpls":
        acts += ["pop_mpls:0x0800"] * 6 + ["pop_mpls:0x8847"] * 2 + [ "set_mpls_tc(3)", "dec_mpls_ttl",
                 "set_field:21->mpls_label", "move:OXM_OF_MPLS_LABEL[0..3]->NXM_NX_REG0[0..3]"]
    if mpls:
        acts = [a for a in acts if "mpls" in a] * 3 + [
            "mod_nw_dst:10.0.0.2", "dec_ttl", "mod_nw_ttl:9", "mod_tp_dst:53", "load:1->reg0[0]",
            "mod_dl_src:02:00:00:00:00:01", "push_vlan:0x8100", "clone(output:3,exit)", "controller(id=4,max_len=64)",
            "move:NXM_OF_IP_SRC[0..3]->NXM_NX_REG0[4..7]", *(f"resubmit(,{draw(st.integers(0, n_tables - 1))})"
                                                         for _ in range(2))]
    outs = ["output:1", "output:2", "output:3", "in_port", "flood", "controller"] + [f"group:{g}" for g in gids]
    apply = _fits(",".join(m), draw(st.lists(st.sampled_from(acts + outs + outs), max_size=4)))
    ins = list(apply)
    if maybe():
        ins.append(f"write_actions({pick(['', 'dec_ttl,', 'mod_nw_ttl:1,', 'strip_vlan,'])}{pick(outs)})")
    if t < n_tables - 1 and maybe():
        ins.append(f"write_metadata:{pick(['0x1/0x1', '0x2/0x2', '0x3', '0x0/0x1'])}")
    if t < n_tables - 1 and draw(st.integers(0, 3)):
        ins.append(f"goto_table:{draw(st.integers(t + 1, n_tables - 1))}")
    return ",".join(m) + ",actions=" + (",".join(ins) or "drop")


def _fits(head: str, acts: list[str]) -> list[str]:
    """ACTS without those Open vSwitch would refuse after match HEAD (pop_vlan without a tag,
    dec_ttl without ip, a third tag...): the pipelines are made of flows it would take."""
    kept: list[str] = []
    for a in acts:
        try:
            parse_flow(f"{head},actions={','.join([*kept, a])}")
        except FlowParseError:
            continue
        kept.append(a)
    return kept


def make_pipeline(spec: PipeSpec, of2dp: dict[int, int], clock=lambda: 0.0) -> Pipeline:
    p = Pipeline(clock=clock)
    for of, d in of2dp.items():
        p.set_port(PortEntry(of, f"p{of}", d, live=spec.live[of - 1]))
    for gid, gtype, buckets in spec.groups:
        p.group_mod("add", GroupEntry(gid, gtype, [Bucket(a, weight=w, watch_port=wp) for a, w, wp in buckets]))
    for f in spec.flows:
        p.add(parse_flow(f))
    return p


def learned(t) -> list:
    """The flows a translation's learn actions add, bridge by bridge."""
    return [v.learned for v in t.visits]


def _flat_odp(actions):
    for a in actions:
        yield a
        if isinstance(a, (odp.Clone, odp.Sample)):
            yield from _flat_odp(a.actions)


def check_megaflows(x: Translator, keys: list[bytes]) -> int:
    """The soundness property over KEYS; returns how many (P, Q) pairs, Q's key distinct from
    P's, fell in P's megaflow."""
    ts = [x.translate(k) for k in keys]
    shared = 0
    for i, (k, t) in enumerate(zip(keys, ts)):
        mask = t.megaflow_mask()
        again = x.translate(k)
        assert again.actions == t.actions and again.megaflow_mask() == mask, "translation is not deterministic"
        mk = band(k, mask)
        for j, (k2, t2) in enumerate(zip(keys, ts)):
            if j == i or k2 == k or band(k2, mask) != mk:
                continue
            shared += 1
            assert learned(t2) == learned(t), f"packet {j} falls in packet {i}'s megaflow but learns other flows"
            assert norm(t2.actions) == norm(t.actions), (
                f"packet {j} falls in packet {i}'s megaflow ({format_key(k, mask)}) but translates to "
                f"{odp.format_actions(t2.actions)} instead of {odp.format_actions(t.actions)}")
        # What the revalidator does with an unchanged pipeline: translate the masked key.
        r = x.translate(mk)
        assert norm(r.actions) == norm(t.actions), (
            f"the megaflow's own (masked) key {format_key(k, mask)} translates to "
            f"{odp.format_actions(r.actions)}, not {odp.format_actions(t.actions)}")
        if int.from_bytes(r.megaflow_mask(), "big") & ~int.from_bytes(mask, "big"):
            event("re-translating the masked key needs other bits (the revalidator would delete it)")
    return shared


# ---- 1. megaflow soundness ---------------------------------------------------------------------

PROP_OF2DP = {1: 5, 2: 6, 3: 7}          # OpenFlow ports are not datapath ports


@settings(max_examples=2000, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=pipelines(), pkts=packets())
def test_megaflows_are_sound(eal, spec, pkts):
    p = make_pipeline(spec, PROP_OF2DP)
    x = Translator(p)
    keys = [frame_and_key(q, PROP_OF2DP)[1] for q in pkts]
    shared = check_megaflows(x, keys)
    event(f"distinct packets sharing a megaflow: {'0' if not shared else '1-3' if shared < 4 else '4+'}")
    mpls = {type(a) for k in keys for a in _flat_odp(x.translate(k).actions)} & {odp.PushMpls, odp.PopMpls, odp.Recirc}
    event(f"MPLS datapath actions: {', '.join(sorted(t.__name__ for t in mpls)) or 'none'}")


@settings(max_examples=500, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=pipelines(mpls=True), pkts=packets(MPLS_PKT_POOLS))
def test_mpls_megaflows_are_sound(eal, spec, pkts):
    """The property on pipelines that push, set and pop MPLS entries over MPLS frames."""
    test_megaflows_are_sound.hypothesis.inner_test(eal, spec, pkts)


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=pipelines(), pkts=packets())
def test_kept_translations_are_the_translation(eal, spec, pkts):
    """A rule's kept translation (xlate.Kept), taken by later packets that match it, gives the
    actions and the megaflow that translating the rule's instructions gives (a traced
    translation never takes one)."""
    p = make_pipeline(spec, PROP_OF2DP)
    x = Translator(p)
    keys = [frame_and_key(q, PROP_OF2DP)[1] for q in pkts]
    for k in keys + keys:
        t, full = x.translate(k), x.translate(k, trace=True)
        if t.kept is not None:
            event("a kept translation taken or made")
        assert full.kept is None
        assert (t.actions, t.megaflow_mask()) == (full.actions, full.megaflow_mask()), (
            f"{format_key(k)}: {odp.format_actions(t.actions)} (kept: {t.kept is not None}) but translating "
            f"gives {odp.format_actions(full.actions)}")


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=pipelines(), pkts=packets())
def test_a_miss_translates_as_translate_does(eal, spec, pkts):
    """translate_miss, the upcall handler's way in, gives what translate gives: a kept
    translation it returns as (Kept, wildcards) has the actions, the megaflow and the rule of
    translating the rule's instructions; anything else is translate's Translation."""
    p = make_pipeline(spec, PROP_OF2DP)
    x = Translator(p)
    keys = [frame_and_key(q, PROP_OF2DP)[1] for q in pkts]
    for k in keys + keys:
        got, full = x.translate_miss(k, int.from_bytes(k, "big")), x.translate(k, trace=True)
        if isinstance(got, tuple):
            event("a kept translation returned bare")
            kept, wc = got
            actions, mask, entries = list(kept.actions), megaflow_mask(wc.key), list(kept.visits[0].entries)
        else:
            actions, mask, entries = got.actions, got.megaflow_mask(), got.entries
        assert (actions, mask, entries) == (full.actions, full.megaflow_mask(), full.entries), (
            f"{format_key(k)}: {odp.format_actions(actions)} but translating gives {odp.format_actions(full.actions)}")


def test_a_kept_translation_follows_the_rule_and_its_ports(eal):
    """The second packet of a rule takes its kept translation; a flow-mod or a port change since
    makes the next packet translate the rule again."""
    p = make_pipeline(PipeSpec(["priority=10,udp,actions=output:2", "priority=0,actions=drop"], [], (True,) * 3),
                      PROP_OF2DP)
    x = Translator(p)
    k1, k2 = (frame_and_key(Pkt(1, MACS[0], MACS[1], (), "ip4", i, 1, 17, 1000, 53, 64, 0, "none"), PROP_OF2DP)[1]
              for i in (1, 2))
    first = x.translate(k1)
    assert first.kept is not None and first.actions == [odp.Output(6)]
    again = x.translate(k2)
    assert again.kept is first.kept and again.actions == [odp.Output(6)]
    p.modify(parse_flow("priority=10,udp,actions=output:3"), strict=True)
    after = x.translate(k2)
    assert after.kept is not first.kept and after.actions == [odp.Output(7)]
    p.set_port(PortEntry(3, "p3", 9))                  # port 3 is datapath port 9 now
    assert x.translate(k1).actions == [odp.Output(9)]
    p.add(parse_flow("priority=20,udp,actions=controller,output:2"))   # reads nothing, but a packet-in
    t = x.translate(k1)
    assert t.kept is None and x.translate(k1).kept is None


def test_rules_with_the_same_instructions_share_a_kept_translation(eal):
    """A rule translated for the first time takes the kept actions of another rule with the same
    instructions (same bridge, input port and version), with an xlate cache of its own: it
    counts its own packets.  Another input port, or a change to the bridge since, translates
    the rule's instructions again."""
    p = make_pipeline(PipeSpec([f"priority=10,udp,nw_src=10.0.0.{i},actions=output:2" for i in (1, 2, 3)]
                               + ["priority=0,actions=drop"], [], (True,) * 3), PROP_OF2DP)
    x = Translator(p)

    def key(i: int, in_port: int = 1) -> bytes:       # from 10.0.0.I
        return parse(udp_frame(i), PROP_OF2DP[in_port])

    first = x.translate(key(1))
    assert first.kept is not None and first.actions == [odp.Output(6)]
    second = x.translate(key(2))
    full = x.translate(key(2), trace=True)
    assert second.kept is not None and second.kept is not first.kept
    assert second.kept.encode() is first.kept.encode(), "the kept actions are shared, encoded once"
    assert (second.actions, second.megaflow_mask()) == (full.actions, full.megaflow_mask())
    assert second.entries == full.entries and second.entries != first.entries
    second.commit(1.0, 3, 300)
    assert (second.entries[0].packets, first.entries[0].packets) == (3, 0)
    other_port = x.translate(key(3, in_port=3))
    assert other_port.actions == [odp.Output(6)] and other_port.kept.dp_in_port == PROP_OF2DP[3]
    p.set_port(PortEntry(2, "p2", 9))                  # a change: the shape is stale
    assert x.translate(key(3)).actions == [odp.Output(9)]


def test_megaflow_sharing_is_not_vacuous(eal):
    """On a fixed pipeline, distinct packets do share megaflows, and the property holds for them."""
    spec = PipeSpec(flows=[
        "table=0,priority=10,udp,nw_src=10.0.0.0/16,actions=write_metadata:0x1/0x1,goto_table:1",
        "table=0,priority=5,ip,actions=dec_ttl,goto_table:1",
        "table=0,priority=1,arp,actions=flood",
        "table=0,priority=0,actions=drop",
        "table=1,priority=10,metadata=0x1/0x1,udp,tp_dst=53,actions=mod_nw_dst:10.9.9.9,group:1",
        "table=1,priority=5,tcp,actions=mod_vlan_vid:30,output:3",
        "table=1,priority=0,actions=controller",
    ], groups=[(1, "select", [((Output(2),), 1, 0xFFFFFFFF), ((Output(3),), 2, 0xFFFFFFFF)])], live=(True,) * 3)
    x = Translator(make_pipeline(spec, PROP_OF2DP))
    base = Pkt(1, MACS[0], MACS[1], (), "ip4", 0, 1, 17, 1000, 53, 64, 0)
    pkts = [base, base._replace(eth_src=MACS[2]), base._replace(tos=0x20), base._replace(src=1),
            base._replace(sport=2000), base._replace(proto=6), base._replace(proto=6, dport=80),
            base._replace(kind="arp"), base._replace(kind="arp", src=2), base._replace(vlans=VLAN_STACKS[1]),
            base._replace(vlans=VLAN_STACKS[1], proto=6), base._replace(vlans=VLAN_STACKS[2], proto=6),
            base._replace(kind="ip6"), base._replace(kind="ip6", src=1), base._replace(ttl=1),
            base._replace(ttl=1, src=1)]
    keys = [frame_and_key(q, PROP_OF2DP)[1] for q in pkts]
    assert check_megaflows(x, keys) >= 10



def test_fragments_get_their_own_megaflow_only_where_ports_decide(eal):
    """A fragment's lookup sees no L4 ports, so where a rule on ports decided a whole packet's
    fate, its megaflow must not catch that packet's first fragment (which the ports rule does
    not match): the fragment bits are in the mask.  Where no port decided anything, fragments
    and whole packets share one megaflow, as wide as before: an in_port rule's megaflow stays
    in_port only, which the fast path's cheap path takes."""
    spec = PipeSpec(flows=["priority=10,udp,tp_dst=53,actions=output:2", "priority=5,ip,actions=output:3"],
                    groups=[], live=(True,) * 3)
    x = Translator(make_pipeline(spec, PROP_OF2DP))
    base = Pkt(1, MACS[0], MACS[1], (), "ip4", 0, 1, 17, 1000, 53, 64, 0)
    pkts = [base, base._replace(frag="first"), base._replace(frag="later"),
            base._replace(kind="ip6"), base._replace(kind="ip6", frag="first")]
    keys = [frame_and_key(q, PROP_OF2DP)[1] for q in pkts]
    check_megaflows(x, keys)
    whole, first = x.translate(keys[0]), x.translate(keys[1])
    assert outputs(whole.actions) != outputs(first.actions)
    assert field_mask(whole.megaflow_mask(), "ip_frag")

    x = Translator(make_pipeline(PipeSpec(flows=["in_port=1,actions=output:2"], groups=[], live=(True,) * 3),
                                 PROP_OF2DP))
    assert check_megaflows(x, keys) > 0
    for k in keys:
        mask = x.translate(k).megaflow_mask()
        assert [f.name for f in FIELDS if f.member and field_mask(mask, f.name)] == ["in_port", "recirc_id"], (
            format_key(k, mask))                 # (recirc_id: always exact, as in_port)


# -- through the real datapath

@pytest.fixture(scope="module")
def prop_rig(eal):
    d = Datapath("sprop", n_mbufs=8192, manual_clock=True)
    for of, dpp in PROP_OF2DP.items():
        d.add_test_port(dpp, f"spp{next(_names)}")
    d.set_clock(SECOND)
    yield d
    d.close()


def _run_cached(d: Datapath, p: Pipeline, x: Translator, items):
    """Frames through upcalls and installed megaflows, one by one (so that later ones hit the
    megaflows of earlier ones), then all at once: per port, the frames out; the packet-ins."""
    pins = Counter()
    h = UpcallHandler(d, p, x, on_packet_in=lambda ev: pins.update([(ev.pi, ev.data, ev.in_port)]))

    def pump():
        for _ in range(3):                   # a miss parked behind one that installed nothing waits 20 ms
            for _ in range(50):
                got = d.poll(4)
                if not got and not h.handle():
                    break
            d.set_clock(d.now_ns + 25 * MS)
        d.poll(4)
        h.handle()

    for of, frame, _ in items:
        assert d.inject(PROP_OF2DP[of], [frame]) == 1
        pump()
    for of in PROP_OF2DP:
        frames = [f for o, f, _ in items if o == of]
        assert d.inject(PROP_OF2DP[of], frames) == len(frames)
    pump()
    return {dpp: Counter(d.drain(dpp)) for dpp in PROP_OF2DP.values()}, pins, h


def _run_packet_out(d: Datapath, p: Pipeline, x: Translator, items):
    pins = Counter()
    for of, frame, key in items + items:
        d.execute(frame, PROP_OF2DP[of], odp.encode(x.translate(key).actions))
        for _ in range(64):
            ups = d.upcalls(256)
            if not ups:                          # a second pass parked behind the same one's miss
                d.set_clock(d.now_ns + 25 * MS)
                d.poll(2)
                ups = d.upcalls(256)
                if not ups:
                    break
            for u in ups:
                if u.type == "miss":             # a recirculation's second pass (after pop_mpls): translated
                    u.execute(odp.encode(x.translate(u.key).actions))
                    continue
                pi = x.registry.get(u.cookie)    # its in_port is translation's (a resubmit(P) makes it P), as the handler's
                pins.update([(pi, u.data, pi.in_port)])
                u.free()
    return {dpp: Counter(d.drain(dpp)) for dpp in PROP_OF2DP.values()}, pins


@settings(max_examples=600, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(spec=pipelines(), pkts=packets())
def test_cached_flows_do_what_packet_out_does(prop_rig, spec, pkts):
    d = prop_rig
    d.set_clock(d.now_ns + SECOND)              # misses of earlier examples are long forgotten
    p = make_pipeline(spec, PROP_OF2DP, clock=lambda: d.now_ns / 1e9)
    x = Translator(p)
    items = [(q.in_port, *frame_and_key(q, PROP_OF2DP)) for q in pkts]
    d.flow_flush()
    recirc0 = int(d.pmd_stats()[MANUAL_PMD]["recirculations"])
    cached, pins_cached, h = _run_cached(d, p, x, items)
    event("fewer megaflows than distinct packets" if d.flow_count() < len(set(items)) else "a megaflow per packet")
    n_out = sum(sum(c.values()) for c in cached.values())
    event("frames out: " + ("none" if not n_out else "fewer than packets" if n_out < 2 * len(items) else "one or more each"))
    event(f"packet-ins: {'some' if pins_cached else 'none'}")
    event(f"recirculations (MPLS): {'some' if d.pmd_stats()[MANUAL_PMD]['recirculations'] > recirc0 else 'none'}")
    assert_same_as_packet_out(d, p, x, items, cached, pins_cached, h)


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(spec=pipelines(mpls=True), pkts=packets(MPLS_PKT_POOLS))
def test_mpls_cached_flows_do_what_packet_out_does(prop_rig, spec, pkts):
    """The same over MPLS pipelines and frames: recirculated second passes through their own
    megaflows send what packet-out of each frame (its second pass translated) sends."""
    test_cached_flows_do_what_packet_out_does.hypothesis.inner_test(prop_rig, spec, pkts)


def assert_same_as_packet_out(d, p, x, items, cached, pins_cached, h) -> None:
    """What the cached flows sent (CACHED, PINS_CACHED) is what packet-out of each packet
    through the same translation sends."""
    d.flow_flush()
    direct, pins_direct = _run_packet_out(d, p, x, items)
    for dpp in PROP_OF2DP.values():
        assert cached[dpp] == direct[dpp], f"datapath port {dpp}: cached flows and packet-out differ"
    assert pins_cached == pins_direct
    assert h.stats.put_errors == 0


# ---- 2. megaflow width -------------------------------------------------------------------------

def test_one_megaflow_for_ten_thousand_sources(dp):
    rig = Rig(dp)
    rule, _ = rig.add("priority=10,udp,tp_dst=53,actions=output:2", "priority=0,actions=drop")
    frames = [udp_frame(i) for i in range(10000)]
    assert len({f[26:30] for f in frames}) == 10000          # 10.0.0.0/8, all distinct
    out = rig.send(1, frames)
    assert dp.flow_count() <= 2
    assert len(rig.h.ukeys) <= 2
    assert Counter(out[2]) == Counter(frames)
    assert out[1] == out[3] == []
    rig.r.run()
    assert rule.packets == 10000
    (uk,) = [u for u in rig.h.ukeys.values() if rule in u.entries]
    for name in ("ipv4_src", "ipv4_dst", "udp_src", "eth_src", "eth_dst"):
        assert field_mask(uk.mask, name) == 0, name
    assert field_mask(uk.mask, "udp_dst") == 0xFFFF


def test_rules_on_other_fields_do_not_narrow_udp_megaflows(dp):
    rig = Rig(dp)
    rig.add("priority=10,udp,tp_dst=53,actions=output:2", "priority=0,actions=drop",
            "priority=20,tcp,tp_dst=80,actions=output:3",                  # staged lookup: stops at L3
            "priority=30,ip,nw_src=192.168.0.0/16,actions=output:3")       # prefix tracking: one bit
    t = rig.x.translate(parse(udp_frame(5), 1))
    mask = t.megaflow_mask()
    assert field_mask(mask, "ipv4_dst") == 0
    assert field_mask(mask, "ipv4_src") == 0x80000000        # 10.x vs 192.168/16 differ in bit 0
    assert field_mask(mask, "udp_src") == 0
    frames = [udp_frame(i) for i in range(2000)]
    out = rig.send(1, frames)
    assert len(out[2]) == 2000 and dp.flow_count() == 1
    rig2_key = parse(udp_frame(5), 1)
    rig.p.delete(parse_flow("priority=30,ip,nw_src=192.168.0.0/16", require_actions=False), strict=True)
    t = rig.x.translate(rig2_key)
    assert field_mask(t.megaflow_mask(), "ipv4_src") == 0
    assert field_mask(t.megaflow_mask(), "ipv4_dst") == 0


def _udp6_frame(src: str, dst: str = "2001:db8:ffff::1", dport: int = 53) -> bytes:
    udp = struct.pack("!HHHH", 1024, dport, 8, 0)
    ip6 = struct.pack("!IHBB", 6 << 28, len(udp), 17, 64) \
        + ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x86\xdd" + ip6 + udp


def _udp4_frame(src: int) -> bytes:
    f = udp_frame(5)
    ip = f[14:24] + b"\0\0" + struct.pack("!I", src) + f[30:34]
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return f[:14] + ip + f[34:]


def test_ipv4_and_ipv6_prefixes_do_not_narrow_each_others_megaflows(dp):
    """An IPv4 address shares its key bits with the leading ones of an IPv6 address, but an IPv4
    rule's prefix says nothing of IPv6 packets (its eth_type rules them out), nor an IPv6 rule's
    of IPv4 packets: as Open vSwitch's, whose IPv4 and IPv6 tries never meet."""
    rig = Rig(dp)
    rig.add("priority=10,udp,tp_dst=53,actions=output:2", "priority=10,udp6,tp_dst=53,actions=output:2",
            "priority=0,actions=drop",
            "priority=30,ip,nw_src=192.168.0.0/16,actions=output:3",
            "priority=30,ipv6,ipv6_src=fd00::/16,actions=output:3")
    # IPv6 packets: the bits that tell the source from fd00::/16 (2001: one, c0a8: three), never
    # all 16 of the subtable because 192.168/16 would be c0a8 here.
    for src, bits in (("2001:db8::1", 1), ("c0a8::1", 3)):
        mask = rig.x.translate(parse(_udp6_frame(src), 1)).megaflow_mask()
        want = ((1 << bits) - 1) << (128 - bits)
        assert field_mask(mask, "ipv6_src") == want, (src, hex(field_mask(mask, "ipv6_src")))
    # IPv4 packets: the bits that tell the source from 192.168/16 (10.x: one, 253.x: three), though
    # fd00::/16's leading bits are 253.0 there.
    for src, bits in ((0x0A000005, 1), (0xFD000001, 3)):
        mask = rig.x.translate(parse(_udp4_frame(src), 1)).megaflow_mask()
        want = ((1 << bits) - 1) << (32 - bits)
        assert field_mask(mask, "ipv4_src") == want, (hex(src), hex(field_mask(mask, "ipv4_src")))
    # The tries still decide: from fd00::/16 and 192.168/16 the rules match.
    out = rig.send(1, [_udp6_frame("fd00::7"), _udp6_frame("2001:db8::9"), udp_frame(5), _udp4_frame(0xC0A80101)])
    assert out[3] == [_udp6_frame("fd00::7"), _udp4_frame(0xC0A80101)]
    assert out[2] == [_udp6_frame("2001:db8::9"), udp_frame(5)]
    # Without the IPv6 rule, an IPv6 packet consults no address bit at all.
    rig.p.delete(parse_flow("priority=30,ipv6,ipv6_src=fd00::/16", require_actions=False), strict=True)
    mask = rig.x.translate(parse(_udp6_frame("2001:db8::1"), 1)).megaflow_mask()
    assert field_mask(mask, "ipv6_src") == 0


def test_a_rule_on_one_port_costs_other_ports_a_few_bits(dp):
    """Ports tracking: a miss on tp_dst=2048 consults only the leading dst-port bits that tell
    the packet apart from 2048, so 5,000 different ports share at most 16 megaflows."""
    rig = Rig(dp)
    rig.add("priority=10,udp,tp_dst=2048,actions=output:2", "priority=0,actions=drop")
    rnd = random.Random(7)
    ports = [p for p in rnd.sample(range(1, 65536), 5001) if p != 2048][:5000]
    frames = [f[:36] + struct.pack("!H", p) + f[38:] for f, p in
              zip((udp_frame(i) for i in range(5000)), ports)]
    hit = udp_frame(9)
    hit = hit[:36] + struct.pack("!H", 2048) + hit[38:]
    out = rig.send(1, frames + [hit])
    assert out[2] == [hit] and out[1] == out[3] == []
    assert dp.flow_count() <= 17, dp.flow_count()
    t = rig.x.translate(parse(frames[0], 1))
    m = field_mask(t.megaflow_mask(), "udp_dst")
    assert m and m != 0xFFFF and m == (0xFFFF << (16 - bin(m).count("1"))) & 0xFFFF, hex(m)
    assert (ports[0] ^ 2048) & m, "the consulted bits must tell the port from 2048"
    assert field_mask(t.megaflow_mask(), "udp_src") == 0
    assert field_mask(t.megaflow_mask(), "ipv4_src") == 0
    # The hit itself still matches the port exactly.
    assert field_mask(rig.x.translate(parse(hit, 1)).megaflow_mask(), "udp_dst") == 0xFFFF


# ---- 3. revalidation ---------------------------------------------------------------------------

def test_revalidating_ten_thousand_megaflows(dp):
    rig = Rig(dp)
    rig.h.megaflows = False
    dp.set_megaflows(False)
    rule, _ = rig.add("priority=10,udp,actions=output:2", "priority=0,actions=drop")
    frames = [udp_frame(i) for i in range(10000)]
    out = rig.send(1, frames)
    assert dp.flow_count() == 10000 and len(rig.h.ukeys) == 10000
    assert len(out[2]) == 10000
    rig.r.run()
    assert rule.packets == 10000
    upcalls, misses = rig.h.stats.upcalls, rig.misses()

    changed = rig.p.modify(parse_flow("priority=10,udp,actions=output:3"), strict=True)
    assert changed == [rule]
    rep = rig.r.run()
    print(f"revalidation of 10000 megaflows: {rep.seconds:.3f}s")
    assert rep.revalidated == 10000 and rep.modified == 10000 and rep.deleted == 0
    assert dp.flow_count() == 10000

    out = rig.send(1, frames)
    assert out[2] == []
    assert Counter(out[3]) == Counter(frames)
    assert rig.h.stats.upcalls == upcalls and rig.misses() == misses, "the modified flows should take them all"
    rig.r.run()
    assert rule.packets == 20000


@pytest.mark.parametrize("sliced", [False, True])
def test_a_rules_megaflows_from_two_ports_take_each_ports_translation(dp, sliced):
    """The megaflows of one rule share its kept translation per input port: after a flow-mod to
    output:1 those from port 1 drop (output to the input port) and those from port 2 go to port
    1, whichever port's megaflow the pass meets first; a pass stepped in slices (left after
    every step) gives the same."""
    rig = Rig(dp)
    rig.h.megaflows = False
    dp.set_megaflows(False)
    rig.add("priority=10,udp,actions=output:2", "priority=0,actions=drop")
    f1 = [udp_frame(i) for i in range(200)]
    f2 = [udp_frame(1000 + i) for i in range(200)]
    rig.send(2, f2[:100])
    rig.send(1, f1)
    rig.send(2, f2[100:])
    assert len(rig.h.ukeys) == 400
    rig.r.run()
    upcalls = rig.h.stats.upcalls
    rig.p.modify(parse_flow("priority=10,udp,actions=output:1"), strict=True)
    if not sliced:
        rep = rig.r.run()
    else:
        rep, steps = None, 0
        while rep is None:
            rep = rig.r.step(0.0)
            steps += 1
        assert steps > 2
    assert rep.deleted == 0 and rep.modified == 400
    out = rig.send(1, f1)
    assert out[1] == [] and out[2] == [] and out[3] == []
    out = rig.send(2, f2)
    assert Counter(out[1]) == Counter(f2) and out[2] == []
    assert rig.h.stats.upcalls == upcalls, "the modified megaflows took every frame"


def test_full_revalidation_keeps_unchanged_megaflows(dp):
    rig = Rig(dp)
    rig.add("priority=10,ip,in_port=1,dl_vlan=10,nw_dst=10.0.0.0/8,actions=output:2", "priority=0,actions=output:3")
    f = build(Pkt(1, MACS[0], MACS[1], (), "ip4", 0, 1, 17, 1000, 53, 64, 0))     # untagged, to 10.0.0.2
    rig.send(1, [f])
    assert dp.flow_count() == 1
    rig.p.set_port(PortEntry(3, "p3", 3))          # nothing changes, but every megaflow is looked at again
    rep = rig.r.run()
    assert rep.revalidated == 1
    assert rep.deleted == 0 and dp.flow_count() == 1


def test_full_revalidation_modifies_nothing_when_nothing_changed(dp):
    rig = Rig(dp)
    rig.add("priority=10,ip,actions=dec_ttl,output:2")
    rig.send(1, [udp_frame(1)])
    rig.p.set_port(PortEntry(3, "p3", 3))
    rep = rig.r.run()
    assert rep.revalidated == 1 and rep.deleted == 0
    assert rep.modified == 0


def test_megaflows_translated_after_the_changes_are_not_translated_again(dp):
    """Rules added, then a burst of new flows translated against them: the revalidator's next
    pass (which still sees those rule changes) pushes the flows' counters but translates none
    again; a later flow-mod re-translates only the flows of the rule it touched."""
    rig = Rig(dp)
    n = 200
    rules = rig.add(*[f"priority=10,ip,nw_src=10.0.0.{i},actions=output:2" for i in range(n)],
                    "priority=0,actions=drop")
    frames = [udp_frame(i) for i in range(n)]
    out = rig.send(1, frames)
    assert len(out[2]) == n and dp.flow_count() == n
    out = rig.send(1, frames)                                   # datapath hits, counted below
    rep = rig.r.run()
    assert rep.revalidated == 0 and rep.modified == 0 and dp.flow_count() == n
    assert [r.packets for r in rules[:n]] == [2] * n
    rig.p.modify(parse_flow("priority=10,ip,nw_src=10.0.0.7,actions=output:3"), strict=True)
    rep = rig.r.run()
    assert (rep.revalidated, rep.modified) == (1, 1)
    assert rig.send(1, [frames[7]])[3] == [frames[7]]


def test_a_new_rule_over_one_megaflow_of_a_kept_translation(dp):
    """Megaflows of one rule share its kept translation's xlate cache; a new rule that overlaps
    one of them gets that one translated again, whatever the order the pass looks at them in
    (the others' still being valid must not mark the shared cache checked)."""
    rig = Rig(dp)
    rig.h.megaflows = False
    dp.set_megaflows(False)
    rig.add("priority=10,udp,actions=output:2", "priority=0,actions=drop")
    frames = [udp_frame(i) for i in range(4)]
    rig.send(1, frames)
    uks = list(rig.h.ukeys.values())
    assert len(uks) == 4 and all(u.visits is uks[0].visits for u in uks), "they share the kept xlate cache"
    rig.r.run()
    rig.add("priority=20,udp,nw_src=10.0.0.3,actions=output:3")      # frame 3's source only
    rep = rig.r.run()
    assert rep.revalidated == 1 and rep.modified == 1 and rep.deleted == 0
    out = rig.send(1, frames)
    assert out[2] == frames[:3] and out[3] == [frames[3]]


def sliced(r, monkeypatch) -> list:
    """Step R's pass one megaflow at a time (STEP_UKEYS 1, no time budget); the steps taken."""
    monkeypatch.setattr(revalidator_mod, "STEP_UKEYS", 1)
    steps = []
    while (rep := r.step(0)) is None:
        steps.append(None)
    return steps + [rep]


def test_a_sliced_pass_carries_its_unaffected_megaflows_to_its_end(dp, monkeypatch):
    """The same change as above, with the pass cut into one step per megaflow (as ``run``'s
    loop slices it): the megaflows found unaffected are marked checked only at the pass's end,
    so the shared cache of the one the new rule affects is not taken for checked meanwhile."""
    rig = Rig(dp)
    rig.h.megaflows = False
    dp.set_megaflows(False)
    rig.add("priority=10,udp,actions=output:2", "priority=0,actions=drop")
    frames = [udp_frame(i) for i in range(4)]
    rig.send(1, frames)
    rig.r.run()
    rig.add("priority=20,udp,nw_src=10.0.0.3,actions=output:3")
    steps = sliced(rig.r, monkeypatch)
    rep = steps[-1]
    assert len(steps) > 4 and not rig.r.in_pass
    assert rep.revalidated == 1 and rep.modified == 1 and rep.deleted == 0
    out = rig.send(1, frames)
    assert out[2] == frames[:3] and out[3] == [frames[3]]


def test_a_rule_added_between_two_steps_is_the_next_passs(dp, monkeypatch):
    """A flow-mod between two steps of a pass: the pass checks against the records it took at
    its beginning, and marks what it found unaffected as true at that version only, so the
    next pass still translates the megaflow the new rule overlaps.  A flush between two steps
    (dpif/del-flows) leaves the pass nothing to put back."""
    rig = Rig(dp)
    rig.h.megaflows = False
    dp.set_megaflows(False)
    rig.add("priority=10,udp,actions=output:2", "priority=0,actions=drop")
    frames = [udp_frame(i) for i in range(4)]
    rig.send(1, frames)
    rig.r.run()
    monkeypatch.setattr(revalidator_mod, "STEP_UKEYS", 1)
    rig.add("priority=5,tcp,actions=output:3")                        # a change: every megaflow is checked
    assert rig.r.step(0) is None and rig.r.in_pass
    rig.add("priority=20,udp,nw_src=10.0.0.2,actions=output:3")       # mid-pass: frame 2's source
    while rig.r.step(0) is None:
        pass
    rep = rig.r.run()                                                 # the next pass sees it
    assert rep.revalidated >= 1 and rep.modified == 1
    out = rig.send(1, frames)
    assert out[2] == [frames[0], frames[1], frames[3]] and out[3] == [frames[2]]

    rig.add("priority=30,udp,nw_src=10.0.0.1,actions=output:3")
    assert rig.r.step(0) is None
    dp.flow_flush()
    rig.h.clear()
    while rig.r.step(0) is None:
        pass
    assert dp.flow_count() == 0 and not rig.h.ukeys


# ---- 4. expiry on the manual clock -------------------------------------------------------------

def udp(dport: int, i: int = 0) -> bytes:
    f = bytearray(udp_frame(i))
    f[36:38] = dport.to_bytes(2, "big")
    return bytes(f)


def test_idle_megaflows_go_after_max_idle_with_their_last_counters(dp):
    rig = Rig(dp)
    a, b, _ = rig.add("priority=10,udp,tp_dst=53,actions=output:2", "priority=10,udp,tp_dst=54,actions=output:3",
                      "priority=0,actions=drop")
    rig.at(1 * SECOND)
    rig.send(1, [udp(53, 0), udp(54, 0)])
    assert dp.flow_count() == 2
    rig.at(2 * SECOND)
    out = rig.send(1, [udp(53, i) for i in range(1, 6)])       # cached: datapath hits
    assert len(out[2]) == 5
    rig.at(7 * SECOND)
    rig.send(1, [udp(54, i) for i in range(1, 4)])
    assert rig.h.stats.upcalls == 2
    assert a.packets == 1 and b.packets == 1                    # only the upcalls so far

    rig.at(11 * SECOND + 900 * MS)                              # a: idle 9.9 s
    rep = rig.r.run()
    assert rep.idle_deleted == 0 and dp.flow_count() == 2
    assert a.packets == 6 and b.packets == 4
    rig.at(12 * SECOND + 100 * MS)                              # a: idle 10.1 s; b: 5.1 s
    rep = rig.r.run()
    assert rep.idle_deleted == 1 and dp.flow_count() == 1
    assert [uk.entries[0] for uk in rig.h.ukeys.values()] == [b]


def test_final_counters_are_pushed_when_an_idle_megaflow_goes(dp):
    rig = Rig(dp)
    a, _ = rig.add("priority=10,udp,tp_dst=53,actions=output:2", "priority=0,actions=drop")
    rig.at(1 * SECOND)
    rig.send(1, [udp(53, 0)])
    rig.at(2 * SECOND)
    rig.send(1, [udp(53, i) for i in range(1, 8)])
    assert a.packets == 1                                       # no pass since: not pushed yet
    rig.at(12 * SECOND + 1)
    rep = rig.r.run()
    assert rep.idle_deleted == 1 and dp.flow_count() == 0 and not rig.h.ukeys
    assert a.packets == 8 and a.bytes == 8 * len(udp(53, 0))


def test_max_idle_shrinks_to_100ms_over_the_flow_limit(dp):
    rig = Rig(dp)
    rig.h.megaflows = False
    dp.set_megaflows(False)
    rig.add("priority=10,udp,actions=output:2")
    frames = [udp_frame(i) for i in range(10)]
    rig.at(1 * SECOND)
    rig.send(1, frames)
    assert dp.flow_count() == 10
    rig.at(1 * SECOND + 50 * MS)
    rig.send(1, frames[:3])
    assert rig.h.stats.upcalls == 10
    rig.at(1 * SECOND + 120 * MS)
    rep = rig.r.run()                                           # 10 flows, limit 200000: max-idle 10 s
    assert rep.idle_deleted == 0 and dp.flow_count() == 10
    rig.h.flow_limit = 5                                        # more flows than the limit
    rep = rig.r.run()
    assert rep.idle_deleted == 7 and dp.flow_count() == 3      # idle 120 ms go, idle 70 ms stay
    rig.at(1 * SECOND + 140 * MS)
    rep = rig.r.run()                                           # 3 flows, limit 5: back to 10 s
    assert rep.idle_deleted == 0 and dp.flow_count() == 3


def test_rule_timeouts_with_cached_traffic(dp):
    rig = Rig(dp)
    idle, hard, quiet, _ = rig.add(
        "priority=10,udp,tp_dst=53,idle_timeout=5,send_flow_rem,actions=output:2",
        "priority=10,udp,tp_dst=54,hard_timeout=3,send_flow_rem,actions=output:3",
        "priority=10,udp,tp_dst=55,hard_timeout=3,actions=output:3",     # no send_flow_rem
        "priority=0,actions=drop")
    rig.at(1 * SECOND)
    rig.send(1, [udp(53), udp(54), udp(55)])
    assert rig.h.stats.upcalls == 3
    present = lambda e: e in list(rig.p.entries())   # noqa: E731
    for sec in range(2, 10):                         # traffic every second until t=9
        rig.at(sec * SECOND)
        out = rig.send(1, [udp(53, sec), udp(54, sec), udp(55, sec)])
        rig.r.run()
        assert rig.h.stats.upcalls == 3, "cached traffic makes no upcalls"
        assert len(out[2]) == 1
        assert present(idle), f"t={sec}: traffic keeps the idle_timeout=5 rule"
        assert present(hard) == (sec < 4), f"t={sec}: hard_timeout=3 from t=1"
        assert present(quiet) == (sec < 4)
        assert len(out[3]) == (2 if sec <= 4 else 0)       # the pass at t=4 removes them
    assert [(r.entry, r.reason) for r in rig.p.removed] == [(hard, "hard_timeout")]
    assert idle.packets == 9
    for sec in range(10, 16):                        # no traffic
        rig.at(sec * SECOND)
        rig.r.run()
        assert present(idle) == (sec < 14), f"t={sec}: the last packet was at t=9"
    assert [(r.entry, r.reason) for r in rig.p.removed] == [(hard, "hard_timeout"), (idle, "idle_timeout")]
    out = rig.send(1, [udp(53, 99)])
    assert out[2] == []


# ---- 5. translation behaviours -----------------------------------------------------------------

def xlate_rig(*flows: str, groups=(), ports=None):
    p = Pipeline()
    for port in ports or [PortEntry(of, f"p{of}", of + 10) for of in (1, 2, 3)]:
        p.set_port(port)
    for g in groups:
        p.group_mod("add", g)
    for f in flows:
        p.add(parse_flow(f))
    return p, Translator(p)


def key_from(of_port: int, frame: bytes | None = None, **kw) -> bytes:
    return parse(frame if frame is not None else udp_frame(kw.get("i", 0)), of_port + 10)


def test_output_to_the_input_port_needs_in_port(eal):
    _, x = xlate_rig("priority=10,in_port=1,actions=output:1,output:2", "priority=10,in_port=2,actions=in_port",
                     "priority=10,in_port=3,actions=output:3,in_port,output:1")
    assert x.translate(key_from(1)).actions == [odp.Output(12)]
    assert x.translate(key_from(2)).actions == [odp.Output(12)]
    assert x.translate(key_from(3)).actions == [odp.Output(13), odp.Output(11)]


def test_flood_excludes_the_input_port_and_no_flood_ports(eal):
    ports = [PortEntry(1, "p1", 11), PortEntry(2, "p2", 12), PortEntry(3, "p3", 13, no_flood=True),
             PortEntry(4, "p4", 14)]
    _, x = xlate_rig("priority=10,in_port=1,actions=flood", "priority=10,in_port=2,actions=all",
                     "priority=10,in_port=4,actions=flood", ports=ports)
    assert x.translate(key_from(1)).actions == [odp.Output(12), odp.Output(14)]
    assert x.translate(key_from(2)).actions == [odp.Output(11), odp.Output(13), odp.Output(14)]
    assert x.translate(key_from(4)).actions == [odp.Output(11), odp.Output(12)]


def test_translation_depth_limit_output_table_loop(dp):
    """goto_table only goes forward; output:table re-enters table 0, so a rule can loop."""
    rig = Rig(dp)
    rig.add("priority=0,actions=output:2,output:table")
    t = rig.x.translate(parse(udp_frame(1), 1))
    assert t.error and "depth" in t.error
    assert t.actions == []
    out = rig.send(1, [udp_frame(1)])
    assert out == {1: [], 2: [], 3: []}
    assert rig.h.stats.errors == 1 and dp.flow_count() == 0


def test_group_loop_is_refused_or_depth_limited(eal):
    p, x = xlate_rig()
    try:
        p.group_mod("add", GroupEntry(1, "indirect", [Bucket((Output(2), Group(2)))]))
        p.group_mod("add", GroupEntry(2, "indirect", [Bucket((Group(1),))]))
        p.group_mod("modify", GroupEntry(1, "indirect", [Bucket((Output(2), Group(2)))]))
    except FlowModError:
        return                                      # refused: fine (OpenFlow's OFPGMFC_LOOP)
    p.add(parse_flow("actions=group:1"))
    t = x.translate(key_from(1))
    assert t.error and t.actions == []


def test_dec_ttl_of_ttl_1_goes_to_the_controller_only(dp):
    rig = Rig(dp)
    rig.add("table=0,priority=10,ip,actions=dec_ttl,output:2,controller,goto_table:1",
            "table=1,priority=0,actions=output:3")
    one = build(Pkt(1, MACS[0], MACS[1], (), "ip4", 0, 1, 17, 1000, 53, 1, 0))
    two = build(Pkt(1, MACS[0], MACS[1], (), "ip4", 0, 1, 17, 1000, 53, 2, 0))
    t = rig.x.translate(parse(one, 1))
    assert len(t.actions) == 1 and isinstance(t.actions[0], odp.Userspace)
    assert [pi.reason for pi in t.packet_ins] == ["invalid_ttl"]
    assert rig.x.registry.get(t.actions[0].cookie).reason == "invalid_ttl"
    t2 = rig.x.translate(parse(two, 1))
    assert [type(a) for a in t2.actions] == [odp.SetMasked, odp.Output, odp.Userspace, odp.Output]

    out = rig.send(1, [one])
    assert out == {1: [], 2: [], 3: []}
    assert [(ev.pi.reason, ev.data, ev.in_port) for ev in rig.pins] == [("invalid_ttl", one, 1)]
    n = rig.h.stats.translations
    out = rig.send(1, [one])                         # cached: the datapath flow's userspace action
    assert out == {1: [], 2: [], 3: []} and rig.h.stats.translations == n
    assert [ev.pi.reason for ev in rig.pins] == ["invalid_ttl"] * 2
    out = rig.send(1, [two])
    assert len(out[2]) == len(out[3]) == 1 and out[2][0][22] == 1           # TTL 1 after dec_ttl
    assert rig.pins[-1].pi.reason == "action" and rig.pins[-1].data[22] == 1


def test_controller_action_makes_a_packet_in(dp):
    rig = Rig(dp)
    rig.add("table=0,priority=10,udp,actions=write_metadata:0x5,goto_table:3",
            "table=3,priority=7,cookie=0xabc,udp,tp_dst=53,actions=output:2,controller:128")
    f = udp_frame(3)
    out = rig.send(1, [f])
    assert out[2] == [f]
    (ev,) = rig.pins
    assert (ev.pi.reason, ev.pi.table_id, ev.pi.cookie, ev.pi.max_len, ev.pi.metadata) == ("action", 3, 0xABC, 128, 5)
    assert ev.data == f and ev.in_port == 1
    n = rig.h.stats.translations
    g = udp_frame(4)
    out = rig.send(1, [g])                           # same megaflow: straight from the datapath flow
    assert out[2] == [g] and rig.h.stats.translations == n
    assert rig.pins[-1].pi == ev.pi and rig.pins[-1].data == g


def test_select_group_is_sticky_per_flow_and_spreads_by_weight(eal):
    g = GroupEntry(1, "select", [Bucket((Output(2),), weight=1), Bucket((Output(3),), weight=3)])
    _, x = xlate_rig("actions=group:1", groups=[g])
    picks = []
    for i in range(2000):
        f = udp_frame(i)
        a = x.translate(key_from(1, f)).actions
        assert outputs(a) in ([12], [13])
        ttl = bytearray(f)
        ttl[22] = 9                                  # same 5-tuple, other TTL and payload
        ttl[-1] ^= 0xFF
        assert x.translate(key_from(1, bytes(ttl))).actions == a
        assert x.translate(key_from(1, f)).actions == a
        picks.append(outputs(a)[0])
    share = picks.count(13) / len(picks)
    assert 0.70 < share < 0.80, share


def test_fast_failover_moves_cached_flows_to_the_next_live_bucket(dp):
    rig = Rig(dp)
    rig.p.group_mod("add", GroupEntry(2, "ff", [Bucket((Output(2),), watch_port=2),
                                               Bucket((Output(3),), watch_port=3)]))
    rig.add("priority=10,udp,actions=group:2")
    frames = [udp_frame(i) for i in range(10)]
    out = rig.send(1, frames)
    assert len(out[2]) == 10 and out[3] == []
    assert dp.flow_count() == 1
    upcalls = rig.h.stats.upcalls
    rig.p.set_port(PortEntry(2, "p2", 2, live=False))
    rep = rig.r.run()
    assert rep.revalidated == 1 and rep.modified == 1
    (uk,) = rig.h.ukeys.values()
    assert outputs(odp.decode(dp.flow_get(uk.ufid)["actions"])) == [3]
    out = rig.send(1, frames)
    assert out[2] == [] and len(out[3]) == 10
    assert rig.h.stats.upcalls == upcalls
    rig.p.set_port(PortEntry(2, "p2", 2, live=True))
    rig.r.run()
    out = rig.send(1, frames)
    assert len(out[2]) == 10 and out[3] == []


def test_no_packet_and_no_byte_counts_flags(dp):
    rig = Rig(dp)
    rig.add("priority=10,udp,actions=output:2")
    rule = next(iter(rig.p.entries()))
    rule.flags |= 8 | 16                       # OFPFF_NO_PKT_COUNTS | OFPFF_NO_BYT_COUNTS
    rig.send(1, [udp_frame(1), udp_frame(2)])
    rig.send(1, [udp_frame(1), udp_frame(2)])
    rig.r.run()
    assert (rule.packets, rule.bytes) == (0, 0)


def test_bundle_moves_cached_flows_when_a_member_goes_down(dp):
    """bundle(active_backup) reads the ports' liveness in translation: the member's port going
    down (liveness.py, here port-mod's admin down) revalidates the cached megaflow to the next
    live member, with no new upcall, and back when it comes up."""
    rig = Rig(dp)
    rig.add("priority=10,udp,actions=bundle(eth_src,0,active_backup,ofport,members:2,3)")
    frames = [udp_frame(i) for i in range(10)]
    out = rig.send(1, frames)
    assert len(out[2]) == 10 and out[3] == []
    upcalls = rig.h.stats.upcalls
    assert rig.p.liveness.set_admin_down(2, True)
    rep = rig.r.run()
    assert rep.modified == 1
    out = rig.send(1, frames)
    assert out[2] == [] and len(out[3]) == 10
    assert rig.h.stats.upcalls == upcalls
    rig.p.liveness.set_admin_down(2, False)
    rig.r.run()
    out = rig.send(1, frames)
    assert len(out[2]) == 10 and out[3] == []


def test_learn_limit_and_result_dst_follow_the_learned_flows(dp):
    """learn(limit=2,result_dst=): the third source MAC learns nothing and its result bit sends
    it to port 3; its cached megaflow is revalidated when a flow of the learn's table and cookie
    goes (Visit.limits), and then it learns and goes to port 2, with no new upcall."""
    rig = Rig(dp)
    rig.add("priority=10,udp,actions=learn(table=10,limit=2,cookie=0x7,result_dst=reg1[0],"
            "NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[]),resubmit(,1)",
            "table=1,priority=10,reg1=1,actions=output:2", "table=1,priority=5,actions=output:3")
    macs = [bytes([2, 0, 0, 0, 0, 0x10 + i]) for i in range(3)]
    for i, mac in enumerate(macs):
        out = rig.send(1, [udp_frame(0, src_mac=mac)])
        assert (len(out[2]), len(out[3])) == ((1, 0) if i < 2 else (0, 1)), i
    assert len(list(rig.p.entries(10))) == 2
    out = rig.send(1, [udp_frame(0, src_mac=macs[0])])       # its flow is there: the learn succeeds
    assert len(out[2]) == 1
    rig.r.run()                  # its counters pushed (which refreshes, or learns again, its flow)
    upcalls = rig.h.stats.upcalls
    (first,) = [e for e in rig.p.entries(10) if e.match.get("eth_dst")[0] == int.from_bytes(macs[0], "big")]
    rig.p.delete(FlowSpec(table_id=10, match=first.match, priority=first.priority), strict=True)
    rig.r.run()
    out = rig.send(1, [udp_frame(0, src_mac=macs[2])])
    assert len(out[2]) == 1 and rig.h.stats.upcalls == upcalls
    rig.r.run()                  # the cached traffic's learning (XC_LEARN): its flow is added now
    assert len(list(rig.p.entries(10))) == 2
