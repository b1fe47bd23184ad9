"""Run `dpdkswitch run` on a YAML config in a subprocess, as a user would, for tests that need
real hosts (tap ports in network namespaces).  Names are made unique per test process."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from dpdkswitch.control import call

TAG = f"{os.getpid() % 100000}"


def sh(*args, check=True, timeout=30) -> subprocess.CompletedProcess:
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode:
        raise AssertionError(f"{' '.join(args)}: {r.stderr or r.stdout}")
    return r


def ns_sh(ns: str, *args, check=True, timeout=30) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", ns, *args, check=check, timeout=timeout)


def ping(ns: str, addr: str, count: int = 2, wait: int = 2) -> bool:
    return ns_sh(ns, "ping", "-c", str(count), "-i", "0.2", "-W", str(wait), addr, check=False).returncode == 0


class SwitchProc:
    def __init__(self, tmp_path, yaml_text: str):
        self.sock = str(tmp_path / "ctl.sock")
        self.path = tmp_path / "switch.yaml"
        self.path.write_text(yaml_text.replace("@SOCK@", self.sock))
        self.log = tmp_path / "switch.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "dpdkswitch", "run", str(self.path), "--no-top"],
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT, cwd=tmp_path)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.ctl("version")
                return
            except (ConnectionError, OSError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.proc.kill()
                    raise AssertionError("switch did not start:\n" + self.log.read_text())
                time.sleep(0.2)

    def ctl(self, *args) -> str:
        return call(self.sock, args[0], list(args[1:]))

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def tx_packets(self, port: str) -> int:
        lines = self.ctl("dpif/show").splitlines()
        i = next(i for i, l in enumerate(lines) if l.strip().startswith(f"{port} "))
        return int(lines[i + 2].split("TX packets:")[1].split()[0])
