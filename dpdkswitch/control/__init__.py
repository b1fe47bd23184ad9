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
that does not read is dropped, not buffered for.  A request answered by a plain string is
answered in the loop turn that accepts its connection when the request is in by then (as
``ctl`` sends it at once) and the socket takes the reply whole: one loop turn, where asyncio's
streams server took six, each as long as an upcall slice under a miss storm; otherwise the
connection gets a transport (``_Client``) and is answered in the turn that reads its request.
A client has REQUEST_TIMEOUT_S to send its request line.
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
REQUEST_TIMEOUT_S = 10.0    # a client that has not sent its request line by then is dropped
ACCEPT_BACKLOG = 100        # connections waiting to be accepted at most, and accepted per loop turn
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


class _Client(asyncio.Protocol):
    """One client of the control socket: its request line, then its reply.  A request answered
    by a plain string is answered in the loop turn that reads it (a command run, one write);
    one whose command awaits or streams goes on in a task (``Server._answer_later``)."""

    def __init__(self, server: "Server"):
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.asked = False                         # the request line is in
        self.gone = False
        self._timer: asyncio.TimerHandle | None = None
        self._drained: asyncio.Future | None = None   # set when the client has taken its reply

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.server.clients.add(self)
        self._timer = asyncio.get_running_loop().call_later(REQUEST_TIMEOUT_S, self.abort)

    def data_received(self, data: bytes) -> None:
        if self.asked:
            return
        self.buf += data
        end = self.buf.find(b"\n")
        if end < 0:
            if len(self.buf) > MAX_REQUEST:        # no line in a megabyte: not a client of ours
                self.abort()
            return
        self._request(bytes(self.buf[:end + 1]))

    def eof_received(self) -> bool:
        if not self.asked:                         # the request without its newline
            self._request(bytes(self.buf))
        return True                                # the reply is still to be written

    def _request(self, line: bytes) -> None:
        self.asked = True
        self.buf = bytearray()
        self.stop_waiting()
        self.server.answer(self, line)

    def stop_waiting(self) -> None:
        """The request is in: no more reading, no request timeout."""
        self._timer.cancel()
        self.transport.pause_reading()

    def pause_writing(self) -> None:
        self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    def connection_lost(self, exc) -> None:
        self.gone = True
        self.server.clients.discard(self)
        if self._timer is not None:
            self._timer.cancel()
        if self._drained is not None and not self._drained.done():
            self._drained.set_exception(ConnectionError("the client went away"))

    # -- for the server
    def write(self, data: bytes) -> None:
        if not self.gone:
            self.transport.write(data)

    async def drain(self) -> None:
        """Until the client has taken enough of its reply (asyncio.TimeoutError after
        DRAIN_TIMEOUT_S; ConnectionError when it went away)."""
        if self.gone:
            raise ConnectionError("the client went away")
        if self._drained is not None:
            await asyncio.wait_for(asyncio.shield(self._drained), DRAIN_TIMEOUT_S)

    def buffered(self) -> int:
        return self.transport.get_write_buffer_size() if not self.gone else 0

    def finish(self) -> None:
        """The reply is whole: close once the client has it, drop it if it takes none of it
        for DRAIN_TIMEOUT_S."""
        if self.gone:
            return
        self.transport.close()
        if self.transport.get_write_buffer_size():
            self._timer = asyncio.get_running_loop().call_later(DRAIN_TIMEOUT_S, self.abort)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class Server:
    """Serves COMMANDS on a unix socket at PATH (its directory is created)."""

    last_request = 0.0                             # monotonic time a client last connected (app.py's slices)

    def __init__(self, path: str, commands: Commands):
        self.path = path
        self.commands = commands
        self.clients: set[_Client] = set()         # connected, not yet closed
        self._tasks: set[asyncio.Task] = set()     # replies that await or stream
        self._lsock: socket.socket | None = None

    async def start(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        if os.path.exists(self.path):
            if _alive(self.path):
                raise OSError(f"control socket {self.path} is in use by another running switch")
            os.unlink(self.path)
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            lsock.bind(self.path)
            os.chmod(self.path, 0o600)
            lsock.listen(ACCEPT_BACKLOG)
            lsock.setblocking(False)
        except OSError:
            lsock.close()
            raise
        self._lsock = lsock
        asyncio.get_running_loop().add_reader(lsock.fileno(), self._accept)

    def _accept(self) -> None:
        """The listening socket is readable: accept, and answer at once what can be (the
        request is in, its reply is a string that the socket takes whole); hand the rest to a
        transport (_Client)."""
        loop = asyncio.get_running_loop()
        Server.last_request = time.monotonic()
        for _ in range(ACCEPT_BACKLOG):
            try:
                conn, _ = self._lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:                   # out of descriptors: the next turn tries again
                LOG.warning("control socket: accept failed: %s", e.strerror or e)
                return
            conn.setblocking(False)
            try:
                data = conn.recv(MAX_REQUEST + 1)
                if not data:                       # gone already
                    conn.close()
                    continue
            except (BlockingIOError, InterruptedError):
                data = b""                         # not sent yet: the transport waits for it
            except OSError:
                conn.close()
                continue
            reply, later = None, None
            end = data.find(b"\n")
            if end >= 0:
                reply, later = self._execute(data[:end + 1])
                if reply is not None:
                    try:
                        sent = conn.send(reply)
                    except (BlockingIOError, InterruptedError):
                        sent = 0
                    except OSError:
                        conn.close()
                        continue
                    if sent == len(reply):
                        conn.close()
                        continue
                    reply = reply[sent:]
            task = loop.create_task(self._adopt(conn, data, reply, later))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _adopt(self, conn: socket.socket, data: bytes, reply: bytes | None, later: tuple | None) -> None:
        """An accepted connection _accept could not finish: a transport of its own, then the
        rest of REPLY, or the command that awaits or streams (LATER), or the request (DATA so far)."""
        try:
            _, client = await asyncio.get_running_loop().connect_accepted_socket(lambda: _Client(self), sock=conn)
        except OSError:
            conn.close()
            return
        if reply is not None or later is not None:
            client.asked = True
            client.stop_waiting()
            if reply is not None:
                client.write(reply)
                client.finish()
            else:
                await self._answer_later(client, *later)
        elif data:
            client.data_received(data)

    def answer(self, client: _Client, line: bytes) -> None:
        """CLIENT's request LINE: run its command; a string is the reply at once, an awaitable
        or a stream goes on in a task."""
        reply, later = self._execute(line)
        if reply is not None:
            client.write(reply)
            client.finish()
            return
        task = asyncio.get_running_loop().create_task(self._answer_later(client, *later))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _execute(self, line: bytes) -> tuple[bytes | None, tuple | None]:
        """The request LINE run: (the reply's bytes, None), or (None, (name, args, output)) for a
        command whose output awaits or streams."""
        try:
            req = json.loads(line)
            name, args = str(req["command"]), [str(a) for a in req.get("args", [])]
        except (ValueError, KeyError, TypeError, AttributeError):
            name, args = None, []
        try:
            if name is None:
                raise CommandError("bad request: expected one JSON line {\"command\": ..., \"args\": [...]}")
            output = self.commands.run(name, args)
            if not isinstance(output, str):            # awaits (reload: listeners) or streams
                return None, (name, args, output)
            reply = {"ok": True, "output": output}
        except CommandError as e:
            reply = {"ok": False, "error": str(e)}
        except Exception:  # a bug in a command: one line to the user, the traceback to the log
            reply = self._bug(name, args)
        return json.dumps(reply).encode() + b"\n", None

    @staticmethod
    def _bug(name, args) -> dict:
        LOG.exception("control command %s %s failed", name, " ".join(args))
        return {"ok": False, "error": f"{name}: internal error (a bug); the switch's log has the details"}

    async def _answer_later(self, client: _Client, name: str, args: list[str], output) -> None:
        try:
            stream = None
            try:
                if inspect.isawaitable(output):        # a command that awaits (reload: listeners)
                    output = await output
                if not isinstance(output, str):        # a Stream: its first piece says whether it fails
                    stream = iter(output)
                    output = next(stream, "")
                reply = {"ok": True, "output": output}
            except CommandError as e:
                reply = {"ok": False, "error": str(e)}
            except Exception:  # a bug in a command: one line to the user, the traceback to the log
                reply, stream = self._bug(name, args), None
            if stream is None or not reply["ok"]:
                client.write(json.dumps(reply).encode() + b"\n")
            else:
                await self._stream(client, name, args, output, stream)
            client.finish()
        except asyncio.TimeoutError:
            client.abort()                         # a client that does not read: nothing more for it
        except ConnectionError:
            pass

    @staticmethod
    async def _stream(client: _Client, name: str, args: list[str], first: str, rest: Stream) -> None:
        """The reply {"ok": true, "output": FIRST + REST...} written as REST's pieces come, a
        loop turn after every SLICE_S of work; waits for the client past STREAM_HIGH_WATER
        buffered bytes (asyncio.TimeoutError after DRAIN_TIMEOUT_S).  A command failing midway
        ends the output with a line that says so (the reply has begun: it cannot become an error)."""
        client.write(b'{"ok": true, "output": "' + json.dumps(first)[1:-1].encode())
        t0 = time.perf_counter()
        try:
            for piece in rest:
                client.write(json.dumps(piece)[1:-1].encode())
                if time.perf_counter() - t0 >= SLICE_S:
                    if client.buffered() > STREAM_HIGH_WATER:
                        await client.drain()
                    if client.gone:
                        raise ConnectionError("the client went away")
                    await asyncio.sleep(0)
                    t0 = time.perf_counter()
        except (asyncio.TimeoutError, ConnectionError):
            raise
        except Exception:  # a bug in a command: one line to the user, the traceback to the log
            LOG.exception("control command %s %s failed", name, " ".join(args))
            client.write(json.dumps(f"\n{name}: internal error (a bug); the output is cut short; "
                                    f"the switch's log has the details\n")[1:-1].encode())
        client.write(b'"}\n')

    async def stop(self) -> None:
        if self._lsock is not None:
            asyncio.get_running_loop().remove_reader(self._lsock.fileno())
            self._lsock.close()
            self._lsock = None
        for task in list(self._tasks):
            task.cancel()
        for client in list(self.clients):
            client.abort()
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
