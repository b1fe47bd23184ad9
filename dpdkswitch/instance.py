"""One running switch per control socket, and what a killed run left behind.

``dpdkswitch run`` takes an ``Instance`` lock on the main thread before it touches anything
else — EAL, a namespace, a socket.  The lock is ``flock(2)`` on ``<socket>.lock`` (holding our
pid), and one more on ``<dir>/<bridge>.mgmt.lock`` for each bridge's OpenFlow management
socket, since two switches with different control sockets in one directory would otherwise
take each other's ``br0.mgmt``.  The kernel drops a lock when its holder dies, so a lock from
a killed run is no obstacle: the next start takes it and says nothing.

What else a killed run leaves, the next start recovers while it holds the lock:
- namespaces it created (netns.Namespaces records them in ``<socket>.netns``; see there);
- EAL's runtime directory ``/var/run/dpdk/dpdkswitch-<pid>``, empty but for its telemetry
  socket (removed at stop too).

Cost: a few system calls at start and stop; nothing while running.
"""
from __future__ import annotations

import errno
import fcntl
import os
import re

DPDK_RUNTIME_DIR = "/var/run/dpdk"
_DEFAULT_PREFIX = re.compile(r"dpdkswitch-(\d+)$")


class AlreadyRunning(RuntimeError):
    pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Lock:
    """An exclusive flock on PATH, which holds the holder's pid while held."""

    def __init__(self, path: str):
        self.path = path
        self.fd: int | None = None

    def holder(self) -> int | None:
        try:
            with open(self.path) as f:
                text = f.read().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def try_take(self) -> bool:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    return False
                raise
            # The holder before us unlinks the file before it lets go: if the name now points
            # at another file, our lock is on a file nobody else will look at.  Try again.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None


class Instance:
    """The locks of one ``dpdkswitch run``: its control socket and its bridges' .mgmt sockets."""

    def __init__(self, socket_path: str, bridges: list[str]):
        self.socket_path = socket_path
        self.dir = os.path.dirname(os.path.abspath(socket_path))
        self.netns_record = socket_path + ".netns"
        self._locks = [(None, _Lock(socket_path + ".lock"))]
        self._locks += [(b, _Lock(os.path.join(self.dir, f"{b}.mgmt.lock"))) for b in bridges]

    def acquire(self) -> None:
        """Take every lock or none; AlreadyRunning names the other instance."""
        os.makedirs(self.dir, exist_ok=True)
        taken = []
        for bridge, lock in self._locks:
            if lock.try_take():
                taken.append(lock)
                continue
            for t in taken:
                t.release()
            pid = lock.holder()
            who = f"pid {pid}" if pid else "another process"
            if bridge is None:
                raise AlreadyRunning(f"already running as {who} (control socket {self.socket_path})")
            raise AlreadyRunning(f"bridge {bridge}: its OpenFlow socket {os.path.join(self.dir, bridge + '.mgmt')} "
                                 f"belongs to the switch running as {who}")

    def release(self) -> None:
        for _, lock in reversed(self._locks):
            lock.release()


def eal_runtime_dir(prefix: str) -> str:
    return os.path.join(DPDK_RUNTIME_DIR, prefix)


def remove_runtime_dir(prefix: str) -> bool:
    """EAL's runtime directory for PREFIX, if it holds nothing but telemetry sockets (with
    --in-memory and --no-shconf, EAL keeps nothing else there); whether it was removed.
    Called at stop, when no one will ask that switch's telemetry any more, and for runs
    that are gone."""
    path = eal_runtime_dir(prefix)
    try:
        names = os.listdir(path)
        if any(not n.startswith("dpdk_telemetry") for n in names):
            return False
        for n in names:
            os.unlink(os.path.join(path, n))
        os.rmdir(path)
        return True
    except OSError:
        return False


def sweep_runtime_dirs() -> list[str]:
    """Empty ``dpdkswitch-<pid>`` runtime directories of runs that are gone; the ones removed."""
    try:
        names = os.listdir(DPDK_RUNTIME_DIR)
    except OSError:
        return []
    gone = []
    for name in names:
        m = _DEFAULT_PREFIX.match(name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))) and remove_runtime_dir(name):
            gone.append(name)
    return gone
