"""The control socket: ``dpdkswitch ctl COMMAND ARGS`` talks to a running switch.

A unix stream socket; one request per connection: the client sends one JSON line
``{"command": NAME, "args": [...]}``, the server answers one JSON line ``{"ok": true,
"output": TEXT}`` or ``{"ok": false, "error": TEXT}`` and closes.  Commands are registered by
name (``Commands.register``), in Open vSwitch's appctl vocabulary where one exists.

Contract: the server runs on the control thread's asyncio loop, so a command handler may
call the datapath directly; handlers must be quick (no blocking I/O).  A handler may return
an awaitable (``reload``, which starts and stops OpenFlow listeners): the server awaits it.
The client is plain blocking Python, usable from any process.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import socket
from dataclasses import dataclass
from typing import Awaitable, Callable

MAX_REQUEST = 1 << 20
LOG = logging.getLogger("dpdkswitch")


class CommandError(Exception):
    """A command's clear refusal: bad arguments, unknown object."""


@dataclass
class Command:
    name: str
    usage: str
    help: str
    min_args: int
    max_args: int
    fn: Callable[[list[str]], str | Awaitable[str]]


class Commands:
    def __init__(self) -> None:
        self.table: dict[str, Command] = {}
        self.register("list-commands", "", "list the commands this switch knows", 0, 0, self._list)

    def register(self, name: str, usage: str, help: str, min_args: int, max_args: int,
                 fn: Callable[[list[str]], str | Awaitable[str]]) -> None:
        self.table[name] = Command(name, usage, help, min_args, max_args, fn)

    def _list(self, args: list[str]) -> str:
        width = max(len(c.name) + len(c.usage) + 1 for c in self.table.values())
        return "The available commands are:\n" + "".join(
            f"  {(c.name + ' ' + c.usage).strip():<{width}}  {c.help}\n" for c in sorted(self.table.values(),
                                                                                       key=lambda c: c.name))

    def run(self, name: str, args: list[str]) -> str:
        cmd = self.table.get(name)
        if cmd is None:
            raise CommandError(f"unknown command '{name}'; use list-commands to see the available commands")
        if not cmd.min_args <= len(args) <= cmd.max_args:
            raise CommandError(f"usage: {cmd.name} {cmd.usage}".rstrip())
        return cmd.fn(args)


class Server:
    """Serves COMMANDS on a unix socket at PATH (its directory is created)."""

    def __init__(self, path: str, commands: Commands):
        self.path = path
        self.commands = commands
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        if os.path.exists(self.path):
            if _alive(self.path):
                raise OSError(f"control socket {self.path} is in use by another running switch")
            os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._serve, path=self.path, limit=MAX_REQUEST)
        os.chmod(self.path, 0o600)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=10)
            try:
                req = json.loads(line)
                name, args = str(req["command"]), [str(a) for a in req.get("args", [])]
            except (ValueError, KeyError, TypeError, AttributeError):
                name, args = None, []
            try:
                if name is None:
                    raise CommandError("bad request: expected one JSON line {\"command\": ..., \"args\": [...]}")
                output = self.commands.run(name, args)
                if inspect.isawaitable(output):    # a command that awaits (reload: listeners)
                    output = await output
                reply = {"ok": True, "output": output}
            except CommandError as e:
                reply = {"ok": False, "error": str(e)}
            except Exception:  # a bug in a command: one line to the user, the traceback to the log
                LOG.exception("control command %s %s failed", name, " ".join(args))
                reply = {"ok": False, "error": f"{name}: internal error (a bug); the switch's log has the details"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.LimitOverrunError, ValueError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        try:
            os.unlink(self.path)
        except OSError:
            pass


def _alive(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def call(path: str, command: str, args: list[str] | None = None, timeout: float = 30) -> str:
    """Run COMMAND on the switch listening at PATH; its output, or CommandError."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except OSError as e:
        raise ConnectionError(f"cannot reach the switch at {path}: {e.strerror or e} (is it running? "
                              f"-s names another socket)") from None
    with s:
        data = b""
        try:
            s.sendall(json.dumps({"command": command, "args": args or []}).encode() + b"\n")
            while not data.endswith(b"\n"):
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            raise ConnectionError(f"no answer from the switch at {path} within {timeout:g} s "
                                  f"(-T sets the wait)") from None
        except OSError as e:
            raise ConnectionError(f"the connection to the switch at {path} failed: {e.strerror or e}") from None
    if not data:
        raise ConnectionError(f"the switch at {path} closed the connection without an answer")
    try:
        reply = json.loads(data)
    except ValueError:
        raise ConnectionError(f"the switch at {path} sent an answer cut short or garbled") from None
    if not reply.get("ok"):
        raise CommandError(reply.get("error", "failed"))
    return reply.get("output", "")
