"""Tests for dpdkswitch.config: good configs load with defaults, bad ones give
exactly one `file:line: message` line pointing at the `# <- error` marker."""
import os
import pickle
import re
from pathlib import Path

import pytest
import yaml

from dpdkswitch import cli, config, datapath, switch
from dpdkswitch.config import ConfigError

BAD = Path(__file__).parent / "bad_configs"
REAL_ONLINE_CPUS = config.online_cpus
MARKER = "# <- error"


@pytest.fixture(autouse=True)
def four_cpus(monkeypatch):
    monkeypatch.setattr(config, "online_cpus", lambda: {0, 1, 2, 3})


def marker_line(text: str) -> int:
    (line,) = [i for i, l in enumerate(text.splitlines(), 1) if MARKER in l]
    return line


def check_error(err: ConfigError, path: str, line: int, needles) -> None:
    msg = str(err)
    assert "\n" not in msg
    assert msg.startswith(f"{path}:{line}: "), msg
    assert (err.path, err.line, msg) == (path, line, f"{path}:{line}: {err.msg}")
    for needle in needles:
        assert needle in msg, msg


# file -> substrings the error must mention
BAD_CASES = {
    "unknown_key.yaml": ["'ofprot'", "did you mean 'ofport'?"],
    "wrong_type.yaml": ["n_rxq", "expected an integer, got string 'abc'"],
    "bool_as_int.yaml": ["ofport", "expected an integer in 1..65279 or LOCAL, got boolean 'yes'"],
    "bad_devargs.yaml": ["net_pcap0,rx_pcap", "'rx_pcap' is not key=value"],
    "sflow_too_many_targets.yaml": ["sflow: targets", "at most 8 collectors, not 9"],
    "sflow_scoped_target.yaml": ["fe80::1%eth0", "without an IPv6 zone"],
    "unknown_driver_key.yaml": ["'ifname'", "iface, mac, remote, persist"],
    "bad_device.yaml": ["bad device string 'eth0'", "PCI address", "tap, af_packet"],
    "af_packet_no_iface.yaml": ["net_af_packet0", "needs iface="],
    "missing_core.yaml": ["core 4095", "offline", "0-3"],
    "duplicate_core.yaml": ["core 1", "twice"],
    "duplicate_ofport.yaml": ["ofport 1", "'p1'"],
    "netns_non_tap.yaml": ["netns", "net_tap", "pcap"],
    "netns_no_iface.yaml": ["iface", "netns"],
    "bad_yaml_syntax.yaml": ["YAML syntax error", "flow sequence"],
    "duplicate_key.yaml": ["duplicate key 'device'", "line 5"],
    "bad_hugepages.yaml": ["hugepages", "auto, on, off", "'sometimes'"],
    "bad_log_level.yaml": ["log_level", "error, warning, notice, info, debug", "'loud'"],
    "pmd_main_core.yaml": ["pmd_cores", "core 0", "main lcore"],
    "pmd_not_in_cores.yaml": ["core 2", "dpdk.cores"],
    "pmd_overlap.yaml": ["core 2", "bridge 'br0'"],
    "no_pmd_core.yaml": ["bridge 'br0'", "PMD threads need a core besides the main", "[]"],
    "rxq_affinity_non_pmd.yaml": ["rxq_affinity[1]", "core 2", "pmd_cores [1]"],
    "rxq_affinity_bad_queue.yaml": ["queue 1", "n_rxq is 1"],
    "rxd_not_pow2.yaml": ["rxd", "power of two", "1000"],
    "duplicate_vdev.yaml": ["'net_tap0'", "already used", "duplicate_vdev.yaml:4"],
    "duplicate_netns.yaml": ["netns name 'h1'", "already used"],
    "bad_netns_address.yaml": ["address", "10.0.0.300/24"],
    "missing_ofport.yaml": ["port 'p1'", "missing required key 'ofport'"],
    "bad_port_name.yaml": ["bad port name 'this-name-is-too-long'"],
    "no_ports.yaml": ["bridge 'br0'", "at least one port"],
    "bad_listen.yaml": ["listen[0]", "'tcp:6653'", "ptcp:PORT[:IP]"],
    "bad_controller.yaml": ["controllers[0]", "tcp:HOST:PORT"],
    "bad_section_type.yaml": ["dpdk", "expected a mapping, got a list"],
    "missing_bridges.yaml": ["missing required key 'bridges'"],
    "bad_datapath_id.yaml": ["datapath_id", "'0xg1'", "hex string"],
    "datapath_id_zero.yaml": ["datapath_id", "out of range", "1..2^64-1"],
    "datapath_id_too_wide.yaml": ["datapath_id", "0x1ffffffffffffffff", "out of range"],
    "datapath_id_octal.yaml": ["datapath_id", "octal", "0x10"],
    "duplicate_datapath_id.yaml": ["datapath_id '0x000000000000002a'", "already used at", "duplicate_datapath_id.yaml:3"],
    "stp_times.yaml": ["bridge 'br0'", "stp_max_age ≥ 2 × (stp_hello_time + 1)", "hello 4, max age 6"],
    "stp_port_number.yaml": ["port 'p1'", "ofport 300 > 255", "stp_enable: false"],
    "stp_bad_priority.yaml": ["stp_port_priority", "256"],
}


def test_every_bad_config_is_covered():
    assert set(BAD_CASES) == {p.name for p in BAD.glob("*.yaml")}


@pytest.mark.parametrize("name", sorted(BAD_CASES))
def test_bad_config(name):
    path = BAD / name
    with pytest.raises(ConfigError) as ei:
        config.load(str(path))
    check_error(ei.value, str(path), marker_line(path.read_text()), BAD_CASES[name])


@pytest.mark.parametrize("text, needles", [
    ("dpdk: {cores: []}  # <- error\nbridges: {}", ["at least one core"]),
    ("bridges: {}  # <- error", ["at least one bridge"]),
    ("bridges:\n  br0:\n    ports:\n      p1: {device: net_tap0, ofport: 1}\n"
     "  br1:\n    ports:\n      p1: {device: net_tap1, ofport: 1}\n"
     "    extra: 1  # <- error", ["unknown key 'extra'", "allowed: datapath"]),
    ("bridges:\n  br0:\n    ports:\n      p1: {device: 'net_tap0,iface=a', ofport: 1}\n"
     "      p2: {device: 'net_tap1,iface=a', ofport: 2}  # <- error", ["tap iface 'a'"]),
    ("bridges:\n  br0:\n    ports:\n      p1: {device: net_tap0, ofport: 1, mtu: 9711}  # <- error",
     ["mtu", "68..9710"]),
    ("bridges:\n  br0:\n    flows: [1]  # <- error\n", ["flows[0]", "expected a string", "quote"]),
    ("x: 'unterminated  # <- error\n", ["YAML syntax error"]),
    ("<<: {a: 1}  # <- error\n", ["merge keys"]),
    ("control:\n  busy_poll_us: -1  # <- error\nbridges: {}", ["busy_poll_us", "0..10000", "-1"]),
    ("control:\n  busy_poll_us: 20000  # <- error\nbridges: {}", ["busy_poll_us", "0..10000", "20000"]),
    ("control: {busy_poll_us: 0.5}  # <- error\nbridges: {}", ["busy_poll_us", "expected an integer"]),
])
def test_bad_inline(text, needles):
    with pytest.raises(ConfigError) as ei:
        config.loads(text, "inline.yaml")
    check_error(ei.value, "inline.yaml", marker_line(text), needles)


def test_empty_and_unreadable(tmp_path):
    with pytest.raises(ConfigError, match=r"^<string>:1: config is empty"):
        config.loads("")
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=rf"^{missing}:0: cannot read config"):
        config.load(str(missing))


GOOD = """\
dpdk:
  cores: [0, 1, 2]
  hugepages: off
  memory_mb: 256
  extra_args: ["--no-pci"]
control:
  socket: /tmp/ctl.sock
bridges:
  br0:
    datapath: {pmd_cores: [1], flow_limit: 1000}
    openflow:
      listen: ["ptcp:6653:127.0.0.1", "punix:/tmp/br0.mgmt"]
      controllers: ["tcp:10.0.0.9:6653", "unix:/tmp/c.sock"]
      fail_mode: secure
    ports:
      p1:
        device: "net_tap0,iface=dtap0,persist"
        ofport: 1
        n_rxq: 2
        rxq_affinity: {0: 1, 1: 1}
        netns: {name: h1, address: 10.0.0.1/24}
      p2:
        device: "net_pcap0,rx_pcap=in.pcap,infinite_rx=1"
        ofport: 2
        n_txq: 4
        rxd: 512
        mtu: 9000
      p3: {device: "0000:01:00.0,foo=bar", ofport: 3}
    flows:
      - priority=10,in_port=1,actions=output:2
      - "priority=0,actions=drop"
  br1:
    datapath: {pmd_cores: [2]}
    ports:
      p1: {device: 01:00.1, ofport: 7}
"""


def test_good_config_round_trips():
    cfg = config.loads(GOOD, "good.yaml")
    assert cfg.path == "good.yaml" and cfg.control_socket == "/tmp/ctl.sock"
    assert cfg.dpdk == config.DpdkConfig([0, 1, 2], "off", 256, ["--no-pci"], None)
    br0 = cfg.bridges["br0"]
    assert (br0.name, br0.pmd_cores, br0.emc_insert_inv_prob, br0.flow_limit, br0.where) == \
        ("br0", [1], 100, 1000, "good.yaml:9")
    assert br0.openflow.fail_mode == "secure" and len(br0.openflow.controllers) == 2
    assert br0.flows == [config.FlowConfig("priority=10,in_port=1,actions=output:2", "good.yaml:30"),
                         config.FlowConfig("priority=0,actions=drop", "good.yaml:31")]
    p1, p2, p3 = br0.ports.values()
    assert p1 == config.PortConfig("p1", "net_tap0,iface=dtap0,persist", 1, n_rxq=2,
                                   rxq_affinity={0: 1, 1: 1},
                                   netns=config.NetnsConfig("h1", "10.0.0.1/24"),
                                   where="good.yaml:16", vlan_mode="trunk")
    assert (p1.driver, p1.vdev_name, p1.devargs_dict) == \
        ("tap", "net_tap0", {"iface": "dtap0", "persist": ""})
    assert (p2.n_txq, p2.rxd, p2.txd, p2.mtu, p2.driver) == (4, 512, 1024, 9000, "pcap")
    assert p2.devargs_dict == {"rx_pcap": "in.pcap", "infinite_rx": "1"}
    assert (p3.driver, p3.vdev_name, p3.devargs_dict) == ("pci", None, {"foo": "bar"})
    assert cfg.bridges["br1"].ports["p1"].device == "01:00.1"  # unquoted, still a string


def test_dpdk_log_level_reaches_eal_for_every_log_type():
    text = "bridges:\n  br0:\n    ports:\n      p1: {device: net_ring0, ofport: 1}\n"
    assert config.loads(text).dpdk.log_level == "warning"
    cfg = config.loads("dpdk: {log_level: debug}\n" + text)
    assert cfg.dpdk.log_level == "debug"
    args, _ = switch.eal_args(cfg)
    assert ["--log-level", "*:debug"] == args[args.index("*:debug") - 1:args.index("*:debug") + 1]
    assert datapath.Eal.log_level_of(args) == "debug"


def test_minimal_config_gets_defaults():
    cfg = config.loads("bridges:\n  br0:\n    ports:\n      p1: {device: net_ring0, ofport: 1}\n")
    assert cfg.dpdk == config.DpdkConfig([0, 1], "auto", None, [], None)
    assert cfg.control_socket == "/run/dpdkswitch/ctl.sock" and cfg.control_busy_poll_us == 500
    br = cfg.bridges["br0"]
    assert (br.pmd_cores, br.emc_insert_inv_prob, br.flow_limit, br.flows) == ([1], 100, 200000, [])
    assert br.openflow == config.OpenflowConfig([], [], "standalone")
    assert br.ports["p1"] == config.PortConfig("p1", "net_ring0", 1, where="<string>:4", vlan_mode="trunk")


def test_single_core_with_explicit_no_pmd():
    cfg = config.loads("dpdk: {cores: [3]}\nbridges:\n  br0:\n    datapath: {pmd_cores: []}\n"
                       "    ports: {p1: {device: net_null0, ofport: 1}}\n")
    assert cfg.dpdk.cores == [3] and cfg.bridges["br0"].pmd_cores == []


def test_default_pmd_cores_overlap_between_bridges():
    text = ("bridges:\n  br0: {ports: {p1: {device: net_tap0, ofport: 1}}}\n"
            "  br1: {ports: {p1: {device: net_tap1, ofport: 1}}}  # <- error\n")
    with pytest.raises(ConfigError) as ei:
        config.loads(text)
    check_error(ei.value, "<string>", 3, ["already used by bridge 'br0'", "set it explicitly"])


def test_cpulist_and_online_cpus():
    assert config.parse_cpulist("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}
    assert config._cpulist({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    assert os.sched_getaffinity(0) <= REAL_ONLINE_CPUS()


def test_error_pickles():
    err = pickle.loads(pickle.dumps(ConfigError("f.yaml", 3, "boom")))
    assert (str(err), err.path, err.line, err.msg) == ("f.yaml:3: boom", "f.yaml", 3, "boom")


def test_tls_targets_need_certificates(tmp_path):
    text = ("bridges:\n  br0:\n    datapath: {pmd_cores: []}\n    openflow:\n      listen: ['pssl:6653']\n"
            "    ports:\n      p1: {device: net_null0, ofport: 1}\n")
    with pytest.raises(config.ConfigError, match=r"t.yaml:4: .*pssl:6653 needs ssl"):
        config.loads(text, str(tmp_path / "t.yaml"))
    with_ssl = text.replace("listen: ['pssl:6653']\n", "listen: ['pssl:6653']\n      ssl: {private_key: k.pem, "
                            "certificate: c.pem, ca_cert: ca.pem}\n")
    with pytest.raises(config.ConfigError, match=r"t.yaml:6: openflow ssl private_key: no file 'k.pem'"):
        config.loads(with_ssl, str(tmp_path / "t.yaml"))
    for f in ("k.pem", "c.pem", "ca.pem"):
        (tmp_path / f).write_text("x")
    ssl = config.loads(with_ssl, str(tmp_path / "t.yaml")).bridges["br0"].openflow.ssl
    assert ssl.ca_cert == str(tmp_path / "ca.pem")


def test_ofport_local_names_the_bridges_local_port():
    c = config.loads("bridges:\n  br0:\n    datapath: {pmd_cores: []}\n    ports:\n"
              "      l: {device: 'net_tap_lc0,iface=lc0', ofport: LOCAL}\n")
    assert c.bridges["br0"].ports["l"].ofport == 0xFFFFFFFE
    with pytest.raises(ConfigError, match=r"x.yaml:5: ofport: expected an integer in 1..65279 or LOCAL"):
        config.loads("bridges:\n  br0:\n    datapath: {pmd_cores: []}\n    ports:\n"
              "      l: {device: 'net_tap_lc0,iface=lc0', ofport: LOKAL}\n", "x.yaml")


# --- what `run` checks before it starts EAL: `dpdkswitch check` runs the same checks --------------
DPID_BRIDGES = ("bridges:\n  br0:\n    openflow: {datapath_id: %s}\n    datapath: {pmd_cores: []}\n"
                "    ports: {p1: {device: net_ring0, ofport: 1}}\n")


@pytest.mark.parametrize("text, want", [("0x2a", 42), ("42", 42), ("'0x2A'", 42), ("'000000000000002a'", 42),
                                        ("0xffffffffffffffff", 2**64 - 1), ("'0xfedcba9876543210'", 0xfedcba9876543210)])
def test_datapath_id_is_hex_or_an_integer(text, want):
    br = config.loads(DPID_BRIDGES % text).bridges["br0"]
    assert br.openflow.datapath_id == want and br.datapath_id == want


def test_datapath_id_defaults_to_the_hash_of_the_bridge_name():
    """The default is what every release before the key gave, so a controller keyed on it keeps
    finding the bridge."""
    cfg = config.loads("bridges:\n  br0: {datapath: {pmd_cores: []}, ports: {p1: {device: net_ring0, ofport: 1}}}\n"
                       "  br1: {datapath: {pmd_cores: []}, ports: {p1: {device: net_ring1, ofport: 1}}}\n")
    assert cfg.bridges["br0"].openflow.datapath_id is None
    assert cfg.bridges["br0"].datapath_id == 0xa6483c7b87c4
    assert cfg.bridges["br1"].datapath_id not in (None, 0xa6483c7b87c4)


def test_datapath_id_may_not_be_another_bridges_default():
    text = ("bridges:\n  br0: {datapath: {pmd_cores: []}, ports: {p1: {device: net_ring0, ofport: 1}}}\n"
            "  br1:\n    openflow: {datapath_id: 0xa6483c7b87c4}  # <- error\n    datapath: {pmd_cores: []}\n"
            "    ports: {p1: {device: net_ring1, ofport: 1}}\n")
    with pytest.raises(ConfigError) as ei:
        config.loads(text, "x.yaml")
    check_error(ei.value, "x.yaml", marker_line(text), ["0x0000a6483c7b87c4", "default of bridge 'br0'"])


# file (in bad_configs/pipeline/) -> substrings the error must mention.  The schema accepts each
# of these files; the bridge's pipeline refuses it, as `run` builds it.
PIPELINE = BAD / "pipeline"
PIPELINE_CASES = {
    "missing_group.yaml": ["'priority=10,udp,actions=group:7'", "group 7 does not exist"],
    "missing_group_in_write_actions.yaml": ["group 3 does not exist"],
    "backward_goto.yaml": ["goto_table:1 must go forward from table 3"],
    "goto_same_table.yaml": ["goto_table:0 must go forward from table 0"],
    "goto_past_last_table.yaml": ["no table 255"],
    "check_overlap.yaml": ["check_overlap,priority=5,ip", "overlaps an existing rule"],
    "second_bridge.yaml": ["'table=1,actions=group:1'", "group 1 does not exist"],
}


def test_every_pipeline_case_is_covered():
    assert set(PIPELINE_CASES) == {p.name for p in PIPELINE.glob("*.yaml")}


def dpdkswitch_check(capsys, path) -> tuple[int, str, str]:
    rc = cli.main(["check", str(path)])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("name", sorted(PIPELINE_CASES))
def test_check_refuses_what_the_pipeline_refuses(name, capsys):
    path = PIPELINE / name
    config.load(str(path))                      # the file's schema is fine ...
    rc, out, err = dpdkswitch_check(capsys, path)   # ... the bridge's pipeline is not
    assert (rc, out) == (2, ""), err
    (line,) = err.splitlines()
    assert line.startswith("dpdkswitch: ")
    with pytest.raises(ConfigError) as ei:
        switch.check(config.load(str(path)))
    assert line == f"dpdkswitch: {ei.value}"
    check_error(ei.value, str(path), marker_line(path.read_text()), PIPELINE_CASES[name])


def test_check_accepts_the_default_config_and_flows_the_pipeline_takes(capsys, tmp_path):
    rc, out, err = dpdkswitch_check(capsys, Path(__file__).parent.parent / "configs" / "default.yaml")
    assert (rc, err) == (0, "") and out.endswith(": OK (1 bridge(s), 2 port(s))\n")
    ok = tmp_path / "ok.yaml"
    ok.write_text("dpdk: {cores: [0, 1]}\nbridges:\n  br0:\n    ports:\n      p1: {device: net_tap0, ofport: 1}\n"
                  "    flows:\n      - table=0,priority=0,actions=goto_table:3\n"
                  "      - table=3,priority=5,in_port=1,actions=NORMAL\n"
                  "      - check_overlap,table=3,priority=5,in_port=2,actions=drop\n")
    assert dpdkswitch_check(capsys, ok) == (0, f"{ok}: OK (1 bridge(s), 1 port(s))\n", "")


def test_check_refuses_hugepages_on_when_too_few_are_free(monkeypatch):
    text = "dpdk:\n  cores: [0, 1]\n  hugepages: on  # <- error\nbridges: {br0: {ports: {p1: {device: net_null0, ofport: 1}}}}\n"
    cfg = config.loads(text, "huge.yaml")
    monkeypatch.setattr(datapath, "hugepages_free_mb", lambda: 0)
    with pytest.raises(ConfigError) as ei:
        switch.check(cfg)
    check_error(ei.value, "huge.yaml", 3, ["dpdk.hugepages: on, but only 0 MB of hugepages are free"])
    monkeypatch.setattr(datapath, "hugepages_free_mb", lambda: 4096)
    switch.check(cfg)


def test_check_loads_the_tls_files(tmp_path):
    text = ("bridges:\n  br0:\n    datapath: {pmd_cores: []}\n    openflow:\n      listen: ['pssl:6653']\n"
            "      ssl: {private_key: k.pem, certificate: c.pem, ca_cert: ca.pem}  # <- error\n"
            "    ports:\n      p1: {device: net_null0, ofport: 1}\n")
    for f in ("k.pem", "c.pem", "ca.pem"):
        (tmp_path / f).write_text("not a PEM file")
    path = str(tmp_path / "t.yaml")
    cfg = config.loads(text, path)              # the files exist: the schema is satisfied
    with pytest.raises(ConfigError) as ei:
        switch.check(cfg)
    check_error(ei.value, path, 6, ["bridge 'br0' openflow ssl", "do not load"])


# --- the README's config reference names exactly the keys the schema accepts ---------------------
README = Path(__file__).parent.parent / "README.md"


def readme_section(title: str) -> str:
    return README.read_text().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def schema_keys(table: dict, prefix: str = "") -> set[str]:
    """Every key path the tables accept: 'bridges.*.ports.*.netns.name' ('*': a name the user
    picks; '[]': an item of a list)."""
    out = set()
    for key, (check, _) in table.items():
        out.add(prefix + key)
        if isinstance(check, config.Section):
            out |= schema_keys(check.table, prefix + key + {"one": ".", "named": ".*.", "list": "[]."}[check.kind])
    return out


def document_keys(data: dict, table: dict, prefix: str = "") -> set[str]:
    """The key paths of a YAML document, read with the tables for where names and lists are."""
    out = set()
    for key, value in data.items():
        out.add(prefix + str(key))
        check = table.get(key, (None, None))[0]
        if not isinstance(check, config.Section):
            continue
        if check.kind == "one":
            out |= document_keys(value or {}, check.table, f"{prefix}{key}.")
        elif check.kind == "named":
            for item in (value or {}).values():
                out |= document_keys(item or {}, check.table, f"{prefix}{key}.*.")
        else:
            for item in value or []:
                out |= document_keys(item, check.table, f"{prefix}{key}[].")
    return out


def test_readme_config_reference_names_exactly_the_schemas_keys():
    (block,) = re.findall(r"```yaml\n(.*?)```", readme_section("Config reference"), re.S)
    documented = document_keys(yaml.safe_load(block), config.TOP)
    accepted = schema_keys(config.TOP)
    assert "bridges.*.ports.*.netns.name" in accepted and "bridges.*.mac_table.static[].mac" in accepted
    assert sorted(accepted - documented) == [], "keys the README's config reference does not show"
    assert sorted(documented - accepted) == [], "keys in the README's config reference the schema refuses"


def test_readme_names_each_vdev_drivers_keys():
    text = " ".join(readme_section("Config reference").split())
    documented = {d: tuple(k.strip().removesuffix(" — required") for k in keys.split(","))
                  for d, keys in re.findall(r"`net_(\w+)` \(([^)]*)\)", text)}
    assert documented == config.VDEV_KEYS


# --- bonds: a port with interfaces (Open vSwitch's bonded Port) --------------------------------
BOND_HEAD = "dpdk: {cores: [0, 1]}\nbridges:\n  br0:\n    ports:\n      p1: {device: net_null0, ofport: 1}\n"


def test_a_bond_is_its_members_as_ports_with_the_bonds_vlan_and_lacp_settings():
    cfg = config.loads(BOND_HEAD + (
        "      bond0:\n        interfaces:\n"
        "          m1: {device: net_null1, ofport: 2, lacp_port_priority: 10}\n"
        "          m2: {device: net_null2, ofport: 3, lacp_port_id: 7}\n"
        "        bond_mode: balance-tcp\n        lacp: active\n        lacp_time: fast\n"
        "        vlan_mode: native-untagged\n        tag: 10\n        trunks: [10, 20]\n"
        "        bond_primary: m2\n"))
    br = cfg.bridges["br0"]
    bond = br.bonds["bond0"]
    assert bond.members == ["m1", "m2"] and bond.bond_mode == "balance-tcp" and bond.lacp == "active"
    assert bond.lacp_time == "fast" and bond.lacp_system_priority == 65534 and bond.bond_rebalance_interval == 10000
    m1, m2 = br.ports["m1"], br.ports["m2"]
    assert (m1.bond, m1.ofport, m1.lacp_port_priority, m1.lacp_port_id) == ("bond0", 2, 10, None)
    assert (m2.ofport, m2.lacp_port_id, m2.lacp_port_priority) == (3, 7, 65535)
    assert all((m.vlan_mode, m.tag, m.trunks, m.stp_enable) == ("native-untagged", 10, [10, 20], False)
               for m in (m1, m2))
    assert "bond0" not in br.ports and br.ports["p1"].bond is None


@pytest.mark.parametrize("body, needles", [
    ("      bond0:\n        interfaces:  # <- error\n          m1: {device: net_null1, ofport: 2}\n",
     ["bond 'bond0'", "at least two interfaces"]),
    ("      bond0:\n        interfaces:\n          m1: {device: net_null1, ofport: 2}\n"
     "          m2: {device: net_null2, ofport: 1}  # <- error\n", ["ofport 1", "'p1'"]),
    ("      bond0:\n        interfaces:\n          m1: {device: net_null1, ofport: 2}\n"
     "          m2: {ofport: 3}  # <- error\n", ["interface 'm2' of bond 'bond0'", "missing required key 'device'"]),
    ("      bond0:\n        interfaces:\n          m1: {device: net_null1, ofport: 2}\n"
     "          m2: {device: net_null2, ofport: 3}\n        bond_mode: balance-tcp  # <- error\n",
     ["balance-tcp needs LACP"]),
    ("      bond0:\n        interfaces:\n          m1: {device: net_null1, ofport: 2}\n"
     "          m2: {device: net_null2, ofport: 3}\n        lacp: sometimes  # <- error\n",
     ["lacp", "active, passive, off", "'sometimes'"]),
    ("      bond0:\n        interfaces:\n          m1: {device: net_null1, ofport: 2}\n"
     "          m2: {device: net_null2, ofport: 3}\n        bond_primary: m3  # <- error\n",
     ["bond_primary 'm3'", "m1, m2"]),
    ("      bond0:\n        interfaces:\n          m1: {device: net_null1, ofport: 2}\n"
     "          m2: {device: net_null2, ofport: 3}\n        ofport: 4  # <- error\n",
     ["'ofport' belongs to each of its interfaces"]),
    ("      bond0:\n        interfaces:\n          m1: {device: net_null1, ofport: 2}\n"
     "          m2: {device: net_null0, ofport: 3}  # <- error\n", ["vdev name 'net_null0'", "already used"]),
    ("      bond0:\n        interfaces:\n          m1: {device: net_null1, ofport: 2}\n"
     "          p1: {device: net_null2, ofport: 3}  # <- error\n", ["'p1'", "already used"]),
    ("      bond0:\n        interfaces:\n          m1: {device: net_null1, ofport: 2}\n"
     "          m2: {device: net_null2, ofport: 3}\n        vlan_mode: access  # <- error\n",
     ["bond 'bond0'", "vlan_mode access needs a tag"]),
    ("      bond0:\n        interfaces:\n          m1: {device: net_null1, ofport: 2}\n"
     "          m2: {device: net_null2, ofport: 3}\n        bond_rebalance_interval: 500  # <- error\n",
     ["at least 1000 ms"]),
    ("      p2: {device: net_null1, ofport: 2, lacp: active}  # <- error\n",
     ["port 'p2'", "'lacp' applies to a bond"]),
])
def test_bond_errors_at_their_line(body, needles):
    text = BOND_HEAD + body
    with pytest.raises(ConfigError) as ei:
        config.loads(text, "inline.yaml")
    check_error(ei.value, "inline.yaml", marker_line(text), needles)


def test_mirrors_and_static_macs_may_name_a_bond():
    cfg = config.loads(BOND_HEAD + (
        "      bond0:\n        interfaces:\n"
        "          m1: {device: net_null1, ofport: 2}\n          m2: {device: net_null2, ofport: 3}\n"
        "    mirrors:\n      span: {select_src_port: [bond0], output_port: p1}\n"
        "    mac_table: {static: [{mac: '02:00:00:00:00:01', port: bond0}]}\n"))
    assert cfg.bridges["br0"].mirrors[0].select_src_port == ["bond0"]
