"""Config input checked where it enters, each problem one line naming file:line (never a Python
traceback): the file's size, YAML nesting depth, integer literal length, value ranges
(datapath.flow_limit), socket path lengths (control socket, .mgmt, punix:/unix:; also ``run -s``,
before EAL starts), ``file_prefix`` kept under /run/dpdk.  And ``ctl``'s own wait (``-T``)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from dpdkswitch import config

BASE = """dpdk: {cores: [0]}
bridges:
  br0:
    datapath: {pmd_cores: []}
    ports: {p1: {device: "net_null0", ofport: 1}}
"""


def load_text(tmp_path, text: str):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return str(path), lambda: config.load(str(path))


def error(tmp_path, text: str) -> tuple[str, str]:
    path, load = load_text(tmp_path, text)
    with pytest.raises(config.ConfigError) as e:
        load()
    where, _, msg = str(e.value).partition(": ")
    assert "\n" not in str(e.value)
    return where.removeprefix(path + ":"), msg


def test_yaml_nested_deeper_than_32_levels(tmp_path):
    assert error(tmp_path, BASE + "x: " + "[" * 600 + "]" * 600 + "\n") == (
        "6", "the YAML nests deeper than 32 levels")
    deep = "bridges:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 40)) + "  " * 40 + "v: 1\n"
    assert error(tmp_path, deep) == ("33", "the YAML nests deeper than 32 levels")


def test_a_config_over_16_mb(tmp_path):
    assert error(tmp_path, BASE + "#" * (16 << 20) + "\n") == ("1", "config is larger than 16 MB")


def test_an_integer_literal_of_5000_digits(tmp_path):
    where, msg = error(tmp_path, BASE.replace("ofport: 1", "ofport: " + "9" * 5000))
    assert (where, msg) == ("5", "ofport: an integer of 5000 characters (at most 40)")


@pytest.mark.parametrize("key,value", [("flow_limit", 1 << 32), ("emc_insert_inv_prob", 1 << 32)])
def test_datapath_values_past_32_bits(tmp_path, key, value):
    text = BASE.replace("pmd_cores: []", f"pmd_cores: [], {key}: {value}")
    assert error(tmp_path, text) == ("4", f"{key}: expected an integer in {0 if key.startswith('emc') else 1}.."
                                          f"4294967295, got {value}")


def test_socket_paths_longer_than_a_unix_socket_holds(tmp_path):
    long_dir = "/tmp/" + "d" * 100
    where, msg = error(tmp_path, BASE + f"control: {{socket: {long_dir}/ctl.sock}}\n")
    assert where == "6" and msg.startswith(f"control socket '{long_dir}/ctl.sock' is 114 bytes long")
    # the control socket fits, br0.mgmt beside it does not
    d = "/tmp/" + "d" * (108 - len("/tmp//br0.mgmt"))
    assert error(tmp_path, BASE + f"control: {{socket: {d}/c.sock}}\n")[1].startswith(
        f"bridge br0's OpenFlow socket '{d}/br0.mgmt' is 108 bytes long")
    where, msg = error(tmp_path, BASE.replace("    ports:", f"    openflow: {{listen: ['punix:{long_dir}/xy']}}\n"
                                                           "    ports:"))
    assert (where, msg) == ("5", f"bridge 'br0' openflow listen: punix:{long_dir}/xy '{long_dir}/xy' is 108 bytes "
                                 f"long: a unix socket's path holds at most 107")


@pytest.mark.parametrize("prefix", ["../..", "..", "a/b", "/etc", ".hidden"])
def test_file_prefix_stays_under_run_dpdk(tmp_path, prefix):
    where, msg = error(tmp_path, BASE.replace("dpdk: {cores: [0]}", f"dpdk: {{cores: [0], file_prefix: '{prefix}'}}"))
    assert where == "1" and msg.startswith(f"file_prefix: bad value {prefix!r}: expected a name under /run/dpdk")


@pytest.mark.parametrize("args", ["['--file-prefix', '../..']", "['--file-prefix=../..']"])
def test_extra_args_do_not_set_the_file_prefix(tmp_path, args):
    where, msg = error(tmp_path, BASE.replace("dpdk: {cores: [0]}", f"dpdk: {{cores: [0], extra_args: {args}}}"))
    assert (where, msg) == ("1", "dpdk.extra_args: --file-prefix is dpdk.file_prefix's (set it there)")


def dpdkswitch(*args, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dpdkswitch", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_run_with_a_too_long_socket_fails_before_eal(tmp_path):
    path, _ = load_text(tmp_path, BASE)
    r = dpdkswitch("run", path, "--no-top", "-s", "/tmp/" + "s" * 110)
    assert r.returncode == 2, r.stderr
    out = r.stdout + r.stderr
    assert "is 115 bytes long: a unix socket's path holds at most 107" in out
    assert "EAL" not in out and "Traceback" not in out


def test_ctl_timeout_is_one_line_not_a_traceback(tmp_path):
    path = str(tmp_path / "mute.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(4)                    # accepts (the kernel's backlog), never answers
    try:
        r = dpdkswitch("ctl", "-s", path, "-T", "0.5", "version", timeout=20)
    finally:
        s.close()
        os.unlink(path)
    assert r.returncode == 1
    assert r.stderr == f"dpdkswitch ctl: no answer from the switch at {path} within 0.5 s (-T sets the wait)\n"
    assert dpdkswitch("ctl", "-T", "0", "version").returncode == 2      # argparse: more than 0
