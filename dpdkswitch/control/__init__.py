"""The control socket: ``dpdkswitch ctl COMMAND ARGS`` talks to a running switch.

A unix stream socket; one request per connection: the client sends one JSON line
``{"command": NAME, "args": [...]}``, the server answers one JSON line ``{"ok": true,
"output": TEXT}`` or ``{"ok": false, "error": TEXT}`` and closes.  Commands are registered by
name (``Commands.register``), in Open vSwitch's appctl vocabulary where one exists.

Contract: the server runs on the control thread's asyncio loop, so a command handler may
call the datapath directly; handlers must be quick (no blocking I/O).  A handler may return
an awaitable (``reload``, which starts and stops OpenFlow listeners): the server awaits it.
A handler whose output is large (``ofctl/dump-flows`` over 150,000 rules) returns an iterator
of pieces of text instead (``Stream``): the server writes them as they come, a loop turn
after every ``SLICE_S`` of work, so the loop goes on meanwhile; the reply is the same one JSON
line.  Every write waits for the client to take it for ``DRAIN_TIMEOUT_S`` at most: a client
that does not read is dropped, not buffered for.
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
import time
from typing import Awaitable, Callable, Iterator

MAX_REQUEST = 1 << 20
SLICE_S = 0.005             # a streamed reply's work between two loop turns, at most
DRAIN_TIMEOUT_S = 10.0      # a client that takes no byte of its reply for this long is dropped
STREAM_HIGH_WATER = 1 << 20 # bytes of a streamed reply buffered before it waits for the client
Stream = Iterator[str]
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
    fn: Callable[[list[str]], str | Awaitable[str] | Stream]


class Commands:
    def __init__(self) -> None:
        self.table: dict[str, Command] = {}
        self.register("list-commands", "", "list the commands this switch knows", 0, 0, self._list)

    def register(self, name: str, usage: str, help: str, min_args: int, max_args: int,
                 fn: Callable[[list[str]], str | Awaitable[str] | Stream]) -> None:
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
            stream = None
            try:
                if name is None:
                    raise CommandError("bad request: expected one JSON line {\"command\": ..., \"args\": [...]}")
                output = self.commands.run(name, args)
                if inspect.isawaitable(output):    # a command that awaits (reload: listeners)
                    output = await output
                if not isinstance(output, str):    # a Stream: its first piece says whether it fails
                    stream = iter(output)
                    output = next(stream, "")
                reply = {"ok": True, "output": output}
            except CommandError as e:
                reply = {"ok": False, "error": str(e)}
            except Exception:  # a bug in a command: one line to the user, the traceback to the log
                LOG.exception("control command %s %s failed", name, " ".join(args))
                reply = {"ok": False, "error": f"{name}: internal error (a bug); the switch's log has the details"}
                stream = None
            if stream is None or not reply["ok"]:
                writer.write(json.dumps(reply).encode() + b"\n")
            else:
                await self._stream(writer, name, args, output, stream)
            await asyncio.wait_for(writer.drain(), DRAIN_TIMEOUT_S)
        except asyncio.TimeoutError:
            writer.transport.abort()           # a client that does not read: nothing more for it
        except (asyncio.LimitOverrunError, ValueError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _stream(writer: asyncio.StreamWriter, name: str, args: list[str], first: str, rest: Stream) -> None:
        """The reply {"ok": true, "output": FIRST + REST...} written as REST's pieces come, a
        loop turn after every SLICE_S of work; waits for the client past STREAM_HIGH_WATER
        buffered bytes (asyncio.TimeoutError after DRAIN_TIMEOUT_S).  A command failing midway
        ends the output with a line that says so (the reply has begun: it cannot become an error)."""
        writer.write(b'{"ok": true, "output": "' + json.dumps(first)[1:-1].encode())
        t0 = time.perf_counter()
        try:
            for piece in rest:
                writer.write(json.dumps(piece)[1:-1].encode())
                if time.perf_counter() - t0 >= SLICE_S:
                    if writer.transport.get_write_buffer_size() > STREAM_HIGH_WATER:
                        await asyncio.wait_for(writer.drain(), DRAIN_TIMEOUT_S)
                    await asyncio.sleep(0)
                    t0 = time.perf_counter()
        except Exception:  # a bug in a command: one line to the user, the traceback to the log
            LOG.exception("control command %s %s failed", name, " ".join(args))
            writer.write(json.dumps(f"\n{name}: internal error (a bug); the output is cut short; "
                                    f"the switch's log has the details\n")[1:-1].encode())
        writer.write(b'"}\n')

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
        chunks: list[bytes] = []
        try:
            s.sendall(json.dumps({"command": command, "args": args or []}).encode() + b"\n")
            while not chunks or not chunks[-1].endswith(b"\n"):
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        except TimeoutError:
            raise ConnectionError(f"no answer from the switch at {path} within {timeout:g} s "
                                  f"(-T sets the wait)") from None
        except OSError as e:
            raise ConnectionError(f"the connection to the switch at {path} failed: {e.strerror or e}") from None
    data = b"".join(chunks)
    if not data:
        raise ConnectionError(f"the switch at {path} closed the connection without an answer")
    try:
        reply = json.loads(data)
    except ValueError:
        raise ConnectionError(f"the switch at {path} sent an answer cut short or garbled") from None
    if not reply.get("ok"):
        raise CommandError(reply.get("error", "failed"))
    return reply.get("output", "")
