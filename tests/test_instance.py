"""One switch per control socket, and recovery after a killed run: a second `dpdkswitch run`
on the same config is refused before it touches anything, the first keeps forwarding; a
run killed with SIGKILL leaves namespaces and a runtime directory that the next start
removes; SIGTERM during start-up takes down what start-up had made."""
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from dpdkswitch.instance import AlreadyRunning, Instance, sweep_runtime_dirs

from test_run import ctl, netns_list, start_switch, wait_started

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def run_second(path, timeout=10):
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "dpdkswitch", "run", str(path), "--no-top"],
                       capture_output=True, text=True, timeout=timeout)
    return r, time.monotonic() - t0


def ping(ns, ip):
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", ip],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.netns
def test_a_second_instance_is_refused_and_the_first_keeps_forwarding(tmp_path):
    proc, sock, hosts, log = start_switch(tmp_path, [])
    (ns1, _), (ns2, ip2) = hosts["p1"], hosts["p2"]
    try:
        mgmt = os.path.join(os.path.dirname(sock), "br0.mgmt")
        before = (os.stat(sock).st_ino, os.stat(mgmt).st_ino)
        r, took = run_second(tmp_path / "switch.yaml")
        assert r.returncode == 1, r.stdout + r.stderr
        assert f"dpdkswitch: already running as pid {proc.pid} (control socket {sock})" in r.stderr
        # Refused within a second of its start, without tracebacks (the interpreter's own
        # start-up is part of that second).
        assert took < 5 and "Traceback" not in r.stderr
        assert proc.poll() is None
        assert (os.stat(sock).st_ino, os.stat(mgmt).st_ino) == before
        assert ns1 in netns_list() and ns2 in netns_list()
        p = ping(ns1, ip2)
        assert p.returncode == 0 and " 0% packet loss" in p.stdout, p.stdout + log.read_text()
        assert ctl(sock, "version").startswith("dpdkswitch ")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert not os.path.exists(sock + ".lock")


def test_another_socket_in_the_same_directory_cannot_take_a_bridges_mgmt_socket(tmp_path):
    first = Instance(str(tmp_path / "a.sock"), ["br0", "br1"])
    first.acquire()
    try:
        with pytest.raises(AlreadyRunning, match=rf"bridge br1: its OpenFlow socket {tmp_path}/br1.mgmt "
                                                 rf"belongs to the switch running as pid {os.getpid()}"):
            Instance(str(tmp_path / "b.sock"), ["br1"]).acquire()
        # Refused whole: the second took none of its locks, so its own socket is free.
        other = Instance(str(tmp_path / "b.sock"), ["br2"])
        other.acquire()
        other.release()
    finally:
        first.release()
    again = Instance(str(tmp_path / "b.sock"), ["br1"])
    again.acquire()
    again.release()
    assert sorted(os.listdir(tmp_path)) == []


def test_a_lock_left_by_a_killed_holder_is_taken_over(tmp_path):
    # A process that takes the lock and dies without releasing it (SIGKILL).
    code = ("import sys, os; from dpdkswitch.instance import Instance; "
            f"Instance({str(tmp_path / 'ctl.sock')!r}, ['br0']).acquire(); os.kill(os.getpid(), 9)")
    subprocess.run([sys.executable, "-c", code], timeout=30)
    assert os.path.exists(tmp_path / "ctl.sock.lock")
    inst = Instance(str(tmp_path / "ctl.sock"), ["br0"])
    inst.acquire()
    assert open(tmp_path / "ctl.sock.lock").read().strip() == str(os.getpid())
    inst.release()


@pytest.mark.netns
def test_a_killed_run_leaves_nothing_the_next_start_does_not_recover(tmp_path):
    proc, sock, hosts, log = start_switch(tmp_path, [])
    names = [ns for ns, _ in hosts.values()]
    runtime = f"/var/run/dpdk/dpdkswitch-{proc.pid}"
    assert os.path.isdir(runtime)
    proc.kill()
    proc.wait(timeout=30)
    assert all(ns in netns_list() for ns in names)          # what SIGKILL leaves
    assert os.path.isdir(runtime)

    proc2 = subprocess.Popen([sys.executable, "-m", "dpdkswitch", "run", str(tmp_path / "switch.yaml"), "--no-top"],
                             stdout=open(tmp_path / "second.log", "w"), stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wait_started(proc2, sock, tmp_path / "second.log")
        assert not os.path.exists(runtime)                  # the dead run's EAL directory
        p = ping(hosts["p1"][0], hosts["p2"][1])
        assert p.returncode == 0, p.stdout + (tmp_path / "second.log").read_text()
    finally:
        proc2.send_signal(signal.SIGTERM)
        assert proc2.wait(timeout=30) == 0
    # The namespaces the killed run made are gone with the second run's stop: not reused
    # and left behind.
    assert not any(ns in netns_list() for ns in names)
    assert not os.path.exists(f"/var/run/dpdk/dpdkswitch-{proc2.pid}")
    assert not os.path.exists(sock + ".netns")


@pytest.mark.netns
def test_sigterm_during_start_up_takes_down_what_it_made(tmp_path):
    """A port whose device fails to probe after the namespace of the port before it was
    made would be the slow way; here SIGTERM arrives while the ports are being set up."""
    cfg = yaml.safe_load(open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs/default.yaml")))
    tag = f"{os.getpid() % 100000}s"
    br = cfg["bridges"]["br0"]
    br["datapath"]["pmd_cores"] = []
    names = []
    # Many tap ports, each in its own namespace: start-up takes long enough to be interrupted.
    br["ports"] = {}
    for i in range(12):
        ns = f"dpss-{tag}-{i}"
        names.append(ns)
        br["ports"][f"p{i}"] = {"device": f"net_tap_{tag}{i},iface=ds{tag}{i}", "ofport": i + 1,
                                "netns": {"name": ns, "address": f"10.9.0.{i + 1}/24"}}
    cfg["control"]["socket"] = str(tmp_path / "ctl.sock")
    path = tmp_path / "switch.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "dpdkswitch", "run", str(path), "--no-top"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not any(ns in netns_list() for ns in names):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    assert not any(ns in netns_list() for ns in names), out
    assert not os.path.exists(tmp_path / "ctl.sock.lock")
    assert not os.path.exists(tmp_path / "ctl.sock.netns")


def test_sweep_removes_only_empty_directories_of_dead_runs(tmp_path, monkeypatch):
    from dpdkswitch import instance
    monkeypatch.setattr(instance, "DPDK_RUNTIME_DIR", str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / f"dpdkswitch-{dead.pid}").mkdir()                 # a dead run's: removed
    (tmp_path / f"dpdkswitch-{os.getpid()}").mkdir()              # ours: kept
    (tmp_path / "dpdkswitch-1").mkdir()                           # pid 1 lives: kept
    busy = tmp_path / "dpdkswitch-999999999"
    busy.mkdir()
    (busy / "config").write_text("")                             # more than telemetry: kept
    (tmp_path / f"dpdkswitch-{dead.pid}" / "dpdk_telemetry.v2").write_text("")
    (tmp_path / "someone-else").mkdir()                           # not ours: kept
    assert sweep_runtime_dirs() == [f"dpdkswitch-{dead.pid}"]
    assert sorted(os.listdir(tmp_path)) == sorted([f"dpdkswitch-{os.getpid()}", "dpdkswitch-1",
                                                   "dpdkswitch-999999999", "someone-else"])


def test_a_punix_listener_never_deletes_a_file_that_is_not_a_socket(tmp_path):
    """punix:PATH replaces a stale socket, but a regular file at PATH is the user's: refused."""
    import asyncio
    from dpdkswitch.openflow.connection import Listener
    keep = tmp_path / "precious.txt"
    keep.write_text("data")

    async def start():
        await Listener(f"punix:{keep}", owner=None).start()
    with pytest.raises(OSError, match="exists and is not a socket; not removing it"):
        asyncio.run(start())
    assert keep.read_text() == "data"
