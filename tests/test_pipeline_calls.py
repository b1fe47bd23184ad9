"""The pipeline's and the translator's calls the OpenFlow side makes, without a connection:
meter-mod on the meter table, the rules a flow-mod selects, a packet-out's action list.

Pure Python plus the datapath's parser (no EAL): each test builds its own pipeline.
"""
from __future__ import annotations

import pytest

from dpdkswitch.datapath import odp, parse
from dpdkswitch.ofproto.actions import OFPP_CONTROLLER, OFPP_TABLE, Output
from dpdkswitch.ofproto.flowstr import FlowSpec, parse_flow, parse_match
from dpdkswitch.ofproto.pipeline import OFPM_ALL, FlowModError, MeterEntry, Pipeline, PortEntry
from dpdkswitch.ofproto.xlate import NO_TABLE, Translator

from frames import udp_frame


def pipeline_with(*flows: str) -> Pipeline:
    p = Pipeline()
    for of, dpp in ((1, 11), (2, 12), (3, 13)):
        p.set_port(PortEntry(of, f"p{of}", dpp))
    for f in flows:
        p.add(parse_flow(f))
    return p


# -- meter-mod ---------------------------------------------------------------------------------

def test_deleting_a_meter_takes_the_rules_that_use_it():
    p = pipeline_with()
    p.meter_mod("add", MeterEntry(1, True, [(100, 10)]))
    p.meter_mod("add", MeterEntry(2, False, [(800, 0)]))
    p.add(parse_flow("priority=5,send_flow_rem,in_port=1,actions=meter:1,output:2"))
    p.add(parse_flow("priority=5,in_port=2,actions=meter:2,output:1"))
    p.add(parse_flow("priority=4,send_flow_rem,in_port=3,actions=output:1"))
    assert p.meter_mod("delete", MeterEntry(1, False, [])) == [1]
    assert set(p.meters) == {2}
    assert sorted(e.match.value("in_port") for e in p.entries()) == [2, 3]
    removed = p.take_removed()
    assert [(r.entry.match, r.reason) for r in removed] == [(parse_match("in_port=1"), "delete")]
    assert p.take_removed() == []


def test_deleting_every_meter_and_one_that_is_not_there():
    p = pipeline_with()
    for mid in (3, 4):
        p.meter_mod("add", MeterEntry(mid, True, [(10, 0)]))
    assert p.meter_mod("delete", MeterEntry(9, False, [])) == []     # not there: no error
    assert sorted(p.meter_mod("delete", MeterEntry(OFPM_ALL, False, []))) == [3, 4]
    assert p.meters == {}


@pytest.mark.parametrize("command, mid, kind", [("add", 1, "meter_exists"), ("modify", 2, "unknown_meter")])
def test_a_refused_meter_mod_changes_nothing(command, mid, kind):
    p = pipeline_with()
    p.meter_mod("add", MeterEntry(1, True, [(100, 10)]))
    version, meters = p.version, dict(p.meters)
    with pytest.raises(FlowModError) as e:
        p.meter_mod(command, MeterEntry(mid, False, [(5, 0)]))
    assert e.value.kind == kind
    assert p.meters == meters and p.version == version


def test_modifying_a_meter_replaces_its_bands_and_the_datapath_runs_the_lowest():
    p = pipeline_with()
    p.meter_mod("add", MeterEntry(1, True, [(100, 10)]))
    version = p.version
    assert p.meter_mod("modify", MeterEntry(1, False, [(500, 50), (200, 20), (200, 30)])) == [1]
    assert p.version > version                     # cached translations with the meter are looked at again
    assert p.meters[1].lowest_band() == (200, 20)


# -- select ------------------------------------------------------------------------------------

def test_select_strict_and_loose_with_cookie_and_out_port():
    p = pipeline_with("priority=5,cookie=0x1,in_port=1,udp,actions=output:2",
                      "priority=5,cookie=0x2,in_port=1,actions=output:3",
                      "priority=7,in_port=1,actions=output:2")
    loose = FlowSpec(match=parse_match("in_port=1"))
    assert len(list(p.select(loose, strict=False))) == 3
    strict = FlowSpec(match=parse_match("in_port=1"), priority=5)
    assert [e.cookie for e in p.select(strict, strict=True)] == [2]
    by_cookie = FlowSpec(match=parse_match(""), cookie=1, cookie_mask=0xFF)
    assert [e.cookie for e in p.select(by_cookie, strict=False)] == [1]
    to_port3 = FlowSpec(match=parse_match(""), out_port=3)
    assert [e.cookie for e in p.select(to_port3, strict=False)] == [2]


# -- a packet-out's action list ----------------------------------------------------------------

def test_packet_out_actions_from_the_controller():
    p = pipeline_with("priority=1,in_port=2,actions=output:3")
    x = Translator(p)
    key = parse(udp_frame(1), 0)
    t = x.translate_actions(key, OFPP_CONTROLLER, (Output(1), Output(OFPP_CONTROLLER, 64)))
    assert t.actions[0] == odp.Output(11)
    assert [(pi.table_id, pi.in_port, pi.max_len) for pi in t.packet_ins] == [(NO_TABLE, OFPP_CONTROLLER, 64)]
    assert t.entries == []                          # no table was looked up


def test_packet_out_output_table_runs_the_rules_of_its_in_port():
    p = pipeline_with("priority=1,in_port=2,actions=output:3", "priority=0,actions=drop")
    x = Translator(p)
    t = x.translate_actions(parse(udp_frame(1), 12), 2, (Output(OFPP_TABLE),))
    assert t.actions == [odp.Output(13)]
    assert [e.match for e in t.entries] == [parse_match("in_port=2")]


def test_packet_out_to_its_own_in_port_is_skipped():
    p = pipeline_with()
    t = Translator(p).translate_actions(parse(udp_frame(1), 11), 1, (Output(1), Output(2)))
    assert t.actions == [odp.Output(12)]
