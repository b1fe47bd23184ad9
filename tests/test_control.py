"""The control socket: requests, usage errors, bad input, and serving on after each."""
import asyncio
import json
import socket
import threading

import pytest

from dpdkswitch.control import CommandError, Commands, Server, call


@pytest.fixture
def server(tmp_path):
    cmds = Commands()
    cmds.register("echo", "WORD...", "say it back", 1, 3, lambda a: " ".join(a) + "\n")

    def boom(args):
        raise RuntimeError("broken handler")
    cmds.register("boom", "", "fails", 0, 0, boom)
    path = str(tmp_path / "ctl.sock")
    loop = asyncio.new_event_loop()
    srv = Server(path, cmds)
    loop.run_until_complete(srv.start())
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    yield path
    loop.call_soon_threadsafe(loop.stop)
    t.join()
    loop.run_until_complete(asyncio.sleep(0.05))   # let connections accepted last finish (and close)
    loop.run_until_complete(srv.stop())
    loop.close()


def raw(path, data: bytes) -> bytes:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(path)
    s.sendall(data)
    out = b""
    while chunk := s.recv(4096):
        out += chunk
    s.close()
    return out


def test_command_and_usage(server):
    assert call(server, "echo", ["a", "b"]) == "a b\n"
    with pytest.raises(CommandError, match="usage: echo WORD"):
        call(server, "echo", [])
    with pytest.raises(CommandError, match="unknown command 'nope'"):
        call(server, "nope")
    assert "echo WORD..." in call(server, "list-commands")


@pytest.mark.parametrize("junk", [b"not json\n", b'{"args": []}\n', b"[1,2]\n", b"\xff\xfe\n", b"{\n"])
def test_bad_requests_get_an_error_and_the_server_keeps_serving(server, junk):
    reply = json.loads(raw(server, junk))
    assert reply["ok"] is False and "bad request" in reply["error"]
    assert call(server, "echo", ["still", "here"]) == "still here\n"


def test_a_failing_handler_is_reported_not_fatal(server):
    with pytest.raises(CommandError) as e:
        call(server, "boom")
    # one line, no Python exception text: the traceback goes to the log
    assert str(e.value) == "boom: internal error (a bug); the switch's log has the details"
    assert call(server, "echo", ["ok"]) == "ok\n"


def test_second_server_on_a_live_socket_refuses(server):
    with pytest.raises(OSError, match="in use"):
        asyncio.run(Server(server, Commands()).start())


@pytest.fixture
def streaming(tmp_path, monkeypatch):
    """A server with ``big`` (a streamed reply of 200,000 numbered lines, ~4 ms of work per
    1,000), ``bad-arg`` (a stream that refuses its argument before its first piece) and
    ``echo``; clients that do not read are dropped after 1 s."""
    import time

    import dpdkswitch.control as control
    monkeypatch.setattr(control, "DRAIN_TIMEOUT_S", 1.0, raising=False)
    cmds = Commands()
    cmds.register("echo", "WORD...", "say it back", 1, 3, lambda a: " ".join(a) + "\n")

    def big(args):
        def lines():
            for i in range(0, 200_000, 1000):
                time.sleep(0.004)
                yield "".join(f"line {j} \"quoted\"\n" for j in range(i, i + 1000))
        return lines()
    cmds.register("big", "", "a long output", 0, 0, big)
    cmds.register("huge", "", "20 MB", 0, 0, lambda a: ("x" * 100_000 for _ in range(200)))

    def bad_arg(args):
        raise CommandError("no bridge nope")
        yield ""
    cmds.register("bad-arg", "", "refuses", 0, 0, bad_arg)
    path = str(tmp_path / "ctl.sock")
    loop = asyncio.new_event_loop()
    srv = Server(path, cmds)
    loop.run_until_complete(srv.start())
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    yield path
    loop.call_soon_threadsafe(loop.stop)
    t.join()
    loop.run_until_complete(asyncio.sleep(0.05))
    loop.run_until_complete(srv.stop())
    loop.close()


def test_a_long_output_streams_and_other_clients_are_served_meanwhile(streaming):
    """A reply of 200,000 lines (about a second of work) comes whole, in one JSON line, while
    other commands are answered as it is made (before, a command's output was made in one go
    and nothing else ran meanwhile); a stream refused before its first piece is a plain error."""
    import time
    result = {}

    def long():
        result["out"] = call(streaming, "big", timeout=60)
    t = threading.Thread(target=long)
    t.start()
    time.sleep(0.1)
    waits = []
    while t.is_alive():
        t0 = time.monotonic()
        assert call(streaming, "echo", ["hi"], timeout=10) == "hi\n"
        waits.append(time.monotonic() - t0)
        time.sleep(0.02)
    t.join()
    lines = result["out"].splitlines()
    assert len(lines) == 200_000 and lines[0] == 'line 0 "quoted"' and lines[-1] == 'line 199999 "quoted"'
    assert len(waits) >= 3 and min(waits) < 0.5, waits
    with pytest.raises(CommandError, match="^no bridge nope$"):
        call(streaming, "bad-arg")


def test_clients_that_never_read_are_dropped_and_the_rest_served(streaming):
    """Twenty clients ask for 20 MB each and never read it: each is dropped once its
    reply has waited DRAIN_TIMEOUT_S (1 s here) unread, and the server answers others meanwhile."""
    import time
    stuck = []
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(streaming)
        s.sendall(b'{"command": "huge"}\n')
        stuck.append(s)
    t0 = time.monotonic()
    assert call(streaming, "echo", ["served"], timeout=10) == "served\n"
    assert time.monotonic() - t0 < 5
    time.sleep(3)
    for s in stuck:                                 # dropped: the stream ends short of its end
        s.settimeout(5)
        got = b""
        while chunk := s.recv(1 << 20):
            got += chunk
        assert got.startswith(b'{"ok": true') and not got.endswith(b'"}\n') and len(got) < 5_000_000, len(got)
        s.close()
