"""OpenFlow over TLS, as Open vSwitch does it: certificates signed by a CA both sides trust.
ovs-ofctl reaches a pssl: listener with its own certificate; a peer with a certificate from
another CA is refused; an ssl: controller gets the switch's Hello over TLS."""
import os
import shutil
import socket
import ssl
import subprocess
import threading

import pytest

from switchproc import TAG, SwitchProc

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not shutil.which("openssl") or not shutil.which("ovs-ofctl"),
                                 reason="needs openssl and ovs-ofctl")]


def make_pki(d, name="ca"):
    """A CA and two certificates it signs (switch, client), with openssl."""
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, cwd=d)   # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
        "-keyout", f"{name}-key.pem", "-out", f"{name}.pem")
    for who in ("switch", "client"):
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={who}", "-keyout",
            f"{name}-{who}-key.pem", "-out", f"{name}-{who}.csr")
        run("openssl", "x509", "-req", "-in", f"{name}-{who}.csr", "-CA", f"{name}.pem", "-CAkey", f"{name}-key.pem",
            "-CAcreateserial", "-days", "2", "-out", f"{name}-{who}.pem")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(tmp_path, openflow: str) -> str:
    return ("dpdk: {cores: [0, 1]}\ncontrol: {socket: @SOCK@}\nbridges:\n"
            f"  br0:\n    datapath: {{pmd_cores: []}}\n    openflow:\n{openflow}"
            "      ssl: {private_key: ca-switch-key.pem, certificate: ca-switch.pem, ca_cert: ca.pem}\n"
            "      fail_mode: secure\n"
            f"    ports:\n      p1: {{device: 'net_null_t{TAG}a,no-rx=1', ofport: 1}}\n")


def ofctl(tmp_path, prefix, *args):
    return subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", f"--private-key={tmp_path}/{prefix}-client-key.pem",
                           f"--certificate={tmp_path}/{prefix}-client.pem", f"--ca-cert={tmp_path}/ca.pem", *args],
                          capture_output=True, text=True, timeout=20)


def test_ovs_ofctl_over_tls_and_a_stranger_refused(tmp_path):
    make_pki(tmp_path)
    make_pki(tmp_path, "other")
    port = free_port()
    sw = SwitchProc(tmp_path, config(tmp_path, f"      listen: ['pssl:{port}:127.0.0.1']\n"))
    try:
        target = f"ssl:127.0.0.1:{port}"
        r = ofctl(tmp_path, "ca", "add-flow", target, "priority=10,in_port=1,actions=drop")
        assert r.returncode == 0, r.stderr
        r = ofctl(tmp_path, "ca", "dump-flows", target)
        assert r.returncode == 0 and "priority=10,in_port=1 actions=drop" in r.stdout, r.stdout + r.stderr
        r = ofctl(tmp_path, "other", "dump-flows", target)          # signed by a CA the switch does not trust
        assert r.returncode != 0
        assert "priority=10" in ofctl(tmp_path, "ca", "dump-flows", target).stdout   # still serving
    finally:
        assert sw.stop() == 0, sw.log.read_text()


def test_tls_controller_gets_the_hello(tmp_path):
    make_pki(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "ca-client.pem", tmp_path / "ca-client-key.pem")
    ctx.load_verify_locations(tmp_path / "ca.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(30)
    port = srv.getsockname()[1]
    got = {}

    def controller():
        conn, _ = srv.accept()
        with ctx.wrap_socket(conn, server_side=True) as tls:
            got["peer"] = tls.getpeercert()["subject"]
            got["hello"] = tls.recv(8)

    t = threading.Thread(target=controller)
    t.start()
    sw = SwitchProc(tmp_path, config(tmp_path, f"      controllers: ['ssl:127.0.0.1:{port}']\n"))
    try:
        t.join(timeout=30)
        assert got["hello"][1] == 0 and got["hello"][0] in (1, 4), got   # OFPT_HELLO, OpenFlow 1.0..1.3
        assert ((("commonName", "switch"),),) == got["peer"]
    finally:
        srv.close()
        assert sw.stop() == 0, sw.log.read_text()
