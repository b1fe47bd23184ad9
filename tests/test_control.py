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
