"""Network namespaces for tap ports: a host on the far side of a switch port.

A port with ``netns: {name: h1, address: 10.0.0.1/24}`` has its tap interface moved into
namespace h1 (created if missing) and addressed there, so ``ip netns exec h1 ping ...``
crosses the switch.  Namespaces this module created are removed again by ``cleanup``, or by
``release`` when the last port in one leaves while the switch runs (a reload's).  With a
record file, each one created is written there as it is made, so that a run killed before its
cleanup leaves a list: the next ``Namespaces`` on that file (the same instance's next start,
see instance.py) removes what is listed and still there.

Called from the control thread when ports are added or removed.  Cost: a few ``ip``
commands (milliseconds each).
"""
from __future__ import annotations

import os
import subprocess
import time


class NetnsError(RuntimeError):
    pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {r.stderr.strip() or 'failed'}")
    return r


def exists(name: str) -> bool:
    return name in _ip("netns", "list", check=False).stdout.split()


def link_exists(iface: str, netns: str | None = None) -> bool:
    args = (["-n", netns] if netns else []) + ["link", "show", "dev", iface]
    return _ip(*args, check=False).returncode == 0


def link_up(iface: str, netns: str) -> bool:
    """Whether IFACE in NETNS has carrier.  DPDK's tap driver asks in its own namespace, so
    for a tap moved into a host namespace its own answer is always 'down'."""
    r = _ip("-n", netns, "-o", "link", "show", "dev", iface, check=False)
    return r.returncode == 0 and "LOWER_UP" in r.stdout


def kernel_carrier(iface: str) -> bool | None:
    """Whether the kernel interface IFACE (in this process's namespace) is up with carrier
    (/sys/class/net/IFACE/carrier, as Open vSwitch reads a system port's); None when there is no
    such interface.  DPDK's af_packet driver reports its link up whatever the interface says."""
    try:
        with open(f"/sys/class/net/{iface}/carrier") as f:
            return f.read().strip() == "1"
    except OSError as e:
        return False if e.errno == 22 else None        # EINVAL: the interface is down


class Namespaces:
    """The namespaces one switch uses; remembers which it created."""

    def __init__(self, record: str | None = None) -> None:
        self.created: list[str] = []
        self.users: dict[str, int] = {}        # ports attached to each namespace now
        self.record = record
        self.recovered: list[str] = []
        if record:
            try:
                with open(record) as f:
                    leftovers = f.read().split()
            except FileNotFoundError:
                leftovers = []
            for name in leftovers:
                if exists(name):
                    _ip("netns", "delete", name, check=False)
                    self.recovered.append(name)
            self._write()

    def _write(self) -> None:
        if not self.record:
            return
        if not self.created:
            try:
                os.unlink(self.record)
            except FileNotFoundError:
                pass
            return
        tmp = self.record + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(self.created) + "\n")
        os.replace(tmp, self.record)

    def attach(self, iface: str, name: str, address: str | None, timeout: float = 5.0) -> None:
        """Move IFACE into namespace NAME (creating it), address it, bring it up."""
        if not exists(name):
            self.created.append(name)          # recorded first: a kill between the two leaves no orphan
            self._write()
            _ip("netns", "add", name)
        # DPDK's tap PMD creates the interface as the port is probed; wait until the kernel has it.
        deadline = time.monotonic() + timeout
        while not link_exists(iface):
            if link_exists(iface, name):
                break
            if time.monotonic() > deadline:
                raise NetnsError(f"tap interface {iface} did not appear")
            time.sleep(0.02)
        if link_exists(iface):
            _ip("link", "set", "dev", iface, "netns", name)
        _ip("-n", name, "link", "set", "dev", "lo", "up")
        # No IPv6 duplicate-address detection delay: hosts are usable at once.
        subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw", f"net.ipv6.conf.{iface}.accept_dad=0"],
                       capture_output=True)
        if address:
            _ip("-n", name, "addr", "replace", address, "dev", iface)
        _ip("-n", name, "link", "set", "dev", iface, "up")
        self.users[name] = self.users.get(name, 0) + 1

    def release(self, name: str) -> bool:
        """A port attached to NAME has left: when it was the last and this switch created NAME,
        NAME is deleted now, as ``cleanup`` would at stop.  Whether it was deleted."""
        left = self.users.get(name, 0) - 1
        if left > 0:
            self.users[name] = left
            return False
        self.users.pop(name, None)
        if name not in self.created:
            return False                       # the user's own namespace: theirs to keep
        _ip("netns", "delete", name, check=False)
        self.created.remove(name)
        self._write()
        return True

    def cleanup(self) -> None:
        for name in reversed(self.created):
            _ip("netns", "delete", name, check=False)
        self.created.clear()
        self.users.clear()
        self._write()
