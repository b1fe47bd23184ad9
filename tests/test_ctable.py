"""Table 0's kept rules in C (ofproto/ctable.py, csrc/oftable.c): its lookup is Python's, its
setups are the upcall handler's, and a flow-mod takes it out of the way.

* the lookup property: over the soundness test's random pipelines and packets, wherever the C
  table answers it finds the rule Python's first lookup finds and consults exactly the bits it
  consults (the megaflow soundness oracle of DESIGN.md then covers C's megaflows too);
* setups in C forward every missed frame, install one megaflow per miss with the mask and
  actions Python's translation gives, and count each frame for its rule once;
* after a flow-mod (modify, add) the next miss takes the new rule.
"""
from __future__ import annotations

from hypothesis import HealthCheck, event, given, settings

from dpdkswitch.datapath import odp
from dpdkswitch.flowkey import KEY_SIZE
from dpdkswitch.ofproto import ctable
from dpdkswitch.ofproto.ctable import KeptTable
from dpdkswitch.ofproto.xlate import Kept, Translator, first_lookup_applies, megaflow_mask
from dpdkswitch.ukey import megaflow_ufid

from frames import udp_frame
from test_slowpath import PROP_OF2DP, Rig, frame_and_key, make_pipeline, packets, pipelines


@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=pipelines(), pkts=packets())
def test_c_lookup_is_python_lookup(eal, spec, pkts):
    """Where the C table answers a key, its rule and its wildcards are those of Python's table-0
    lookup (``Translator._first_lookup``); it declines rather than answer otherwise."""
    p = make_pipeline(spec, PROP_OF2DP)
    x = Translator(p)
    keys = [frame_and_key(q, PROP_OF2DP)[1] for q in pkts]
    for k in keys:                                     # kept translations, as misses would make them
        x.translate_miss(k, int.from_bytes(k, "big"))
    if not first_lookup_applies(p):
        event("table 0 has conjunctions: no C table")
        return
    kt = KeptTable(x)
    kt.build(p)
    for k in keys:
        ret, rid, wc = kt.table.lookup(k)
        if ret < 0:
            event("C declined")
            continue
        got, pwc = x._first_lookup(p, int.from_bytes(k, "big"), int.from_bytes(k[0:4], "little"))
        rule = got.visits[0].entries[0] if isinstance(got, Kept) else (got.data if got is not None else None)
        event("C found a rule" if ret else "C found none")
        assert (kt.entries[rid] if ret else None) is rule, "C's rule is not Python's"
        assert int.from_bytes(wc, "big") == pwc.key, (
            f"C consulted {int.from_bytes(wc, 'big') ^ pwc.key:#x} differently from Python's lookup")


def test_megaflow_ufid_names_the_megaflow():
    """One megaflow, one UFID; another key or another mask, another UFID."""
    a, m = bytes(range(KEY_SIZE)), b"\xff" * KEY_SIZE
    assert megaflow_ufid(a, m) == megaflow_ufid(bytes(a), bytes(m))
    b = a[:-1] + b"\x00"
    m2 = m[:-1] + b"\x00"
    assert len({megaflow_ufid(a, m), megaflow_ufid(b, m), megaflow_ufid(b, m2)}) == 3


def _rig(dp, n: int) -> Rig:
    rig = Rig(dp)
    rig.add(*(f"priority=10,udp,in_port=1,nw_src=10.0.{i >> 8}.{i & 255},actions=output:2" for i in range(n)),
            "priority=0,actions=drop")
    return rig


def test_setups_in_c_forward_install_and_count(dp, monkeypatch):
    """Once table 0 is compiled (after REBUILD_MISSES misses through Python), misses are set up
    in C: every frame is forwarded, each miss gets one megaflow with the mask and actions
    Python's translation gives it, and each rule counts its one frame."""
    monkeypatch.setattr(ctable, "REBUILD_MISSES", 16)
    n = 300
    rig = _rig(dp, n)
    frames = [udp_frame(i) for i in range(n)]
    out = rig.send(1, frames, chunk=50)
    assert len(out[2]) == n and not out[3]
    st = rig.h.stats
    assert rig.h.kept_table.builds == 1 and st.c_setups >= n - 100, (st, rig.h.kept_table.builds)
    assert st.installed == n == len(rig.h.ukeys) and not st.put_errors and not st.errors
    rules = [r.data for r in rig.p.tables[0].cls.rules()]
    assert sum(e.packets for e in rules) == n
    assert all(e.packets == 1 for e in rules if e.priority == 10)
    assert rig.p.tables[0].lookups == rig.p.tables[0].matches == n and rig.p.n_missed == n
    for uk in rig.h.ukeys.values():
        t = rig.x.translate(uk.orig_key, trace=True)
        assert uk.mask == t.megaflow_mask() and uk.actions == odp.encode(t.actions)
        assert uk.ufid == megaflow_ufid(uk.key, uk.mask)
        assert uk.entries == t.entries
    flows = {f["ufid"]: f for f in rig.dp.flow_dump()}
    assert set(rig.h.ukeys) <= set(flows)
    assert all(flows[u]["mask"] == uk.mask and flows[u]["actions"] == uk.actions for u, uk in rig.h.ukeys.items())
    # the frames again: the megaflows forward them, no miss
    misses = rig.misses()
    out = rig.send(1, frames, chunk=50)
    assert len(out[2]) == n and rig.misses() == misses


def test_a_flow_mod_drops_the_c_table(dp, monkeypatch):
    """After a modify and after an add, the next miss takes the new rule (the C table built
    before the change is not consulted)."""
    monkeypatch.setattr(ctable, "REBUILD_MISSES", 16)
    rig = _rig(dp, 300)
    rig.send(1, [udp_frame(i) for i in range(100)], chunk=50)
    assert rig.h.kept_table.builds == 1 and rig.h.stats.c_setups
    rig.add("priority=10,udp,in_port=1,nw_src=10.0.0.150,actions=output:3")       # a modify, by OpenFlow's add
    out = rig.send(1, [udp_frame(150)])
    assert len(out[3]) == 1 and not out[2]
    rig.add("priority=20,udp,in_port=1,nw_src=10.0.0.160,actions=output:3")       # a new rule above
    out = rig.send(1, [udp_frame(160)])
    assert len(out[3]) == 1 and not out[2]
    # a storm at the new version builds the table again, with the new rules in it (once its
    # misses took as long as the last build: that one is forgotten here, the storm is short)
    rig.h.kept_table.build_s = 0.0
    c = rig.h.stats.c_setups
    out = rig.send(1, [udp_frame(i) for i in range(170, 300)] + [udp_frame(161)], chunk=40)
    assert rig.h.kept_table.builds == 2 and rig.h.stats.c_setups > c
    assert len(out[2]) == 131 and not out[3]
    out = rig.send(1, [udp_frame(160)])                 # installed already: the megaflow's output 3
    assert len(out[3]) == 1


def test_c_setup_declines_what_it_cannot_answer(dp, monkeypatch):
    """A miss no kept rule answers (here: table 0's miss rule sends to the controller) goes to
    Python: its packet-in is made as before."""
    monkeypatch.setattr(ctable, "REBUILD_MISSES", 16)
    rig = Rig(dp)
    rig.add(*(f"priority=10,udp,in_port=1,nw_src=10.0.0.{i},actions=output:2" for i in range(100)),
            "priority=0,actions=controller")
    rig.send(1, [udp_frame(i) for i in range(60)], chunk=30)
    assert rig.h.kept_table.builds == 1
    rig.send(1, [udp_frame(i) for i in range(200, 210)])
    assert len(rig.pins) == 10
    assert megaflow_mask(0)[0:8] == b"\xff" * 8


def test_c_setups_keep_the_flow_limit(dp, monkeypatch):
    """Setups in C stop at the handler's flow limit: the frames beyond it are forwarded without
    a megaflow (counted as flow limit hits), as the Python path does."""
    monkeypatch.setattr(ctable, "REBUILD_MISSES", 16)
    rig = _rig(dp, 300)
    rig.h.flow_limit = 150
    out = rig.send(1, [udp_frame(i) for i in range(300)], chunk=50)
    st = rig.h.stats
    assert len(out[2]) == 300 and st.c_setups
    assert len(rig.h.ukeys) == st.installed == 150 == rig.dp.flow_count()
    assert st.flow_limit_hits == 150 and not st.put_errors


def test_no_rebuild_until_python_misses_cost_a_build(dp, monkeypatch):
    """After a change, the table is built again only once the misses through Python at the new
    version took as long as the last build: flow-mods during a storm do not each cost a build."""
    monkeypatch.setattr(ctable, "REBUILD_MISSES", 16)
    rig = _rig(dp, 300)
    rig.send(1, [udp_frame(i) for i in range(100)], chunk=50)
    kt = rig.h.kept_table
    assert kt.builds == 1
    rig.add("priority=20,udp,in_port=1,nw_src=10.0.0.250,actions=output:3")
    kt.build_s = 3600.0                                  # as if the last build had taken an hour
    out = rig.send(1, [udp_frame(i) for i in range(100, 200)], chunk=50)
    assert kt.builds == 1 and kt.table is None and len(out[2]) == 100
    kt.build_s = 0.0
    rig.send(1, [udp_frame(i) for i in range(200, 240)], chunk=40)
    assert kt.builds == 2


def test_a_refused_build_leaves_the_misses_to_python(dp, monkeypatch):
    """The datapath refusing the table (no memory: DatapathError from the build) is not the
    upcall handler's failure: the table is dropped, counted, and every miss still set up by
    Python's translation."""
    from dpdkswitch.datapath import DatapathError, OfTable

    def refuse(*_args, **_kw):
        raise DatapathError("dps_oftable_rules: -12 (ENOMEM)")

    monkeypatch.setattr(ctable, "REBUILD_MISSES", 16)
    monkeypatch.setattr(OfTable, "rules", refuse)
    n = 200
    rig = _rig(dp, n)
    out = rig.send(1, [udp_frame(i) for i in range(n)], chunk=50)
    kt = rig.h.kept_table
    assert len(out[2]) == n and not out[3]
    assert kt.build_failures >= 1 and kt.builds == 0 and kt.table is None
    assert rig.h.stats.c_setups == 0 and rig.h.stats.installed == n and not rig.h.stats.errors
