"""OpenFlow connections: the byte stream, version negotiation, echo and inactivity probes, and
the endpoints that make connections (passive listeners, active controllers that reconnect).

``OFConnection`` is an asyncio Protocol: it splits the stream into messages (a framing error
closes it: no boundary can be trusted after one), answers HELLO with the negotiated version
(bitmaps; OpenFlow 1.3 and 1.0), answers echo requests, probes a silent peer (an echo request
after ``probe_interval`` seconds without a message, closed after twice that), and hands every
other message of one turn to its owner's ``handle_batch`` at once, so the owner can apply a
turn's flow-mods and revalidate once (OpenFlow 1.3 flow-mods undecoded: the owner decodes them,
or builds them from a shape it compiled).  A connection has its share of the loop: at most
``MESSAGES_PER_TURN`` of its messages are handled per loop turn; the rest wait (and reading
from it pauses) until its next turn, so a flow-mod flood from one peer delays another's echo
by a turn, not by the flood.  Replies are buffered; while the peer does not read them (the
transport's write buffer is over ``WRITE_HIGH_WATER``), reading from it pauses; a peer that
leaves them unread for twice the probe interval, or more than ``WRITE_BUFFER_MAX`` bytes of
them, is dropped (Open vSwitch's rconn drops a peer whose backlog does not move).  Packet-ins are
not buffered without bound: at most ``PACKET_IN_QUEUE_MAX`` (100, as Open vSwitch) wait in a
connection's write buffer; beyond that ``send_packet_in`` drops them and counts them
(``stats["packet_ins_dropped"]``, ``packet_ins_queued()``).  Packet-ins are written in batches:
those of one loop turn are held (``PACKET_IN_BATCH`` at most) and written in one go at the
loop's next turn, or before any other message to the peer (order kept), so that a packet-in
stream costs one write system call per batch, not one per packet-in.

``Listener`` serves ``ptcp:PORT[:IP]`` (loopback by default) or ``punix:PATH``;
``ActiveController`` keeps a connection to ``tcp:HOST:PORT`` or ``unix:PATH`` up, reconnecting
with exponential backoff (1 s doubling to 8 s).  What ``ofproto/list-controllers`` shows is
kept here: per connection, messages in and out, errors sent and packet-ins dropped (``stats``),
when it was negotiated and why it closed; per controller, its attempts, its last error and when
its last connection ended.

Contract: the control thread's asyncio loop only.  Cost per read: one framing pass plus the
owner's handling; per message, one decode (none for a flow-mod: the owner's).
"""
from __future__ import annotations

import asyncio
import errno
import os
import stat
import struct
import time
from collections import deque
from typing import Protocol as TypingProtocol

from ..log import rate_limited
from . import consts as C
from .errors import FramingError, OFPError, error_reply
from .framing import split_messages
from .message import EchoReply, EchoRequest, Error, Hello, Message, decode, encode

OUR_VERSIONS = (C.OFP10_VERSION, C.OFP13_VERSION)
PROBE_INTERVAL = 5.0
BACKOFF_MIN, BACKOFF_MAX = 1.0, 8.0
WRITE_HIGH_WATER = 4 << 20          # bytes of unsent replies before reading from the peer pauses
WRITE_BUFFER_MAX = 64 << 20         # bytes a peer may leave unread at most: past it, it is dropped
MESSAGES_PER_TURN = 64              # a connection's messages handled per loop turn at most
MAX_CONNECTIONS = 1000              # OpenFlow connections open at once, all bridges and listeners
ACCEPT_BACKLOG = 100                # asyncio accepts up to this many at once (the listen backlog too,
                                    #   asyncio's default); a refused one holds its descriptor a turn or two
PROBE_XID = 0xFFFFFFF0
PACKET_IN_QUEUE_MAX = 100           # packet-ins waiting in a connection's write buffer at most
PACKET_IN_BATCH = 32                # packet-ins held for one write at most (then written at once)


_LOG = rate_limited("dpdkswitch.openflow")


def log(msg: str, exc_info: bool | tuple = False) -> None:
    """A message about a connection or what a peer sent: ``openflow: MSG``, rate limited per call
    site (a peer can cause any number of them); EXC_INFO: with the exception being handled
    (True), or with the one given as an exc_info tuple."""
    _LOG.info(msg, stacklevel=2, exc_info=exc_info)


class Owner(TypingProtocol):
    """What a connection reports to (the bridge's OpenFlow switch)."""

    def connected(self, conn: "OFConnection") -> None: ...
    def disconnected(self, conn: "OFConnection") -> None: ...
    def handle_batch(self, conn: "OFConnection", batch: list[tuple[bytes, Message | OFPError | None]]) -> None:
        """BATCH: each message's bytes with what it decoded to, or None for an OpenFlow 1.3
        FLOW_MOD of the connection's version, left to the owner to decode (``message.decode``,
        or faster when it knows the flow-mod's shape: ofswitch/flowshapes.py)."""


def set_connection_limit(open_files: int, in_use: int) -> int:
    """Admit as many OpenFlow connections as OPEN_FILES (the process's limit of open files)
    leaves room for beside the IN_USE files the switch has open (EAL's memory, ports, sockets),
    a reserve for what it opens later (half as many again, 64 at least) and an accept batch of
    connections being refused (ACCEPT_BACKLOG): at most MAX_CONNECTIONS.  A flood can still
    run the descriptors out for a moment (refused connections close a turn or two after their
    accept): asyncio then pauses that listener for a second, and `out_of_files` makes that one
    rate-limited line.  The limit set.  Control thread, once started, before the listeners."""
    room = open_files - in_use - max(64, in_use // 2) - ACCEPT_BACKLOG
    OFConnection.limit = max(1, min(MAX_CONNECTIONS, room))
    return OFConnection.limit


def out_of_files(context: dict) -> bool:
    """Whether an asyncio error CONTEXT is an accept that found no file descriptor or memory
    left (asyncio pauses that listener for a second and tries again): a condition, logged as one
    rate-limited line without a traceback, not a bug."""
    exc = context.get("exception")
    return isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def negotiate(hello: Hello) -> int | None:
    """The version both sides speak, from the peer's HELLO; None when there is none."""
    if hello.versions:
        common = set(OUR_VERSIONS) & set(hello.versions)
        return max(common) if common else None
    v = min(hello.version, max(OUR_VERSIONS))
    return v if v in OUR_VERSIONS else None


class OFConnection(asyncio.Protocol):
    """One OpenFlow channel.  ``kind`` is "primary" (a controller we connected to) or "service"
    (a peer that connected to one of our listeners, as ovs-ofctl does).

    At most ``limit`` (``MAX_CONNECTIONS``, or fewer: `set_connection_limit`) are open at once
    in the process: a peer that connects beyond that is closed at once (and counted in
    ``refused``), so that a connection flood cannot take the file descriptors the switch needs
    for its own ports and sockets."""

    open_count = 0
    refused = 0
    limit = MAX_CONNECTIONS
    last_message = 0.0                  # monotonic time any connection last read a message (app.py's slices)

    def __init__(self, owner: Owner, kind: str, name: str, probe_interval: float = PROBE_INTERVAL):
        self.owner, self.kind, self.name = owner, kind, name
        self.probe_interval = probe_interval
        self.transport: asyncio.Transport | None = None
        self.version: int | None = None           # negotiated; None until the peer's HELLO
        self.buf = bytearray()
        self._loop = asyncio.get_running_loop()
        self.closed = self._loop.create_future()
        self.last_rx = time.monotonic()
        self.probe_sent = False
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._counted = False
        # Per-connection OpenFlow state the owner keeps here.
        self.miss_send_len = 128 if kind == "primary" else 0
        self.role = C.OFPCR_ROLE_EQUAL
        self.async_masks: dict[str, tuple[int, int]] = {}
        self.table_id_ext = False                 # OpenFlow 1.0 + Nicira flow_mod_table_id
        self.nxm = False                          # OpenFlow 1.0 + Nicira's NXM flow format (openflow/nx.py)
        self.controller_id = 0                    # NXT_SET_CONTROLLER_ID: the packet-ins of this id only
        self.packet_in_format = 0                 # NXT_SET_PACKET_IN_FORMAT: nx.NXPIF_*
        self.invalid_ttl = False                  # OpenFlow 1.0's OFPC_INVALID_TTL_TO_CONTROLLER
        self.stats = {"rx": 0, "tx": 0, "errors": 0, "packet_ins_dropped": 0}
        self.connected_at: float | None = None    # monotonic time of the HELLO exchange
        self.error: str | None = None             # why it closed, when it did (shown by the owner)
        self._tx_bytes = 0                        # bytes given to the transport, ever
        self._pending: deque[bytes] = deque()     # messages read, not handled yet (next turns)
        self._turn: asyncio.Handle | None = None  # the next turn's handling, when scheduled
        self._write_paused_at: float | None = None   # monotonic time the write buffer went over high water
        self._read_paused = False
        self._pin_ends: deque[int] = deque()      # _tx_bytes at the end of each packet-in not yet flushed
        self._held: list[bytes] = []              # packet-ins held for the next batched write
        self._held_bytes = 0
        self._flush_handle: asyncio.Handle | None = None

    # -- asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport
        if OFConnection.open_count >= OFConnection.limit:
            OFConnection.refused += 1
            log(f"{self.name}: {OFConnection.open_count} connections open (at most {OFConnection.limit}); "
                f"refused {OFConnection.refused} so far")
            self._closing = True
            transport.abort()
            return
        OFConnection.open_count += 1
        self._counted = True
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.send(encode(Hello(versions=OUR_VERSIONS, version=max(OUR_VERSIONS))))
        self._arm()

    def connection_lost(self, exc) -> None:
        if self._counted:
            OFConnection.open_count -= 1
            self._counted = False
        if self._timer:
            self._timer.cancel()
        if self._turn is not None:
            self._turn.cancel()
            self._turn = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._pending.clear()
        if self.error is None and not self._closing:
            self.error = _reason(exc) if isinstance(exc, OSError) else str(exc) if exc else "closed by the peer"
        was_up = self.version is not None
        self._closing = True
        if not self.closed.done():
            self.closed.set_result(was_up)
        if was_up:
            self.owner.disconnected(self)

    def pause_writing(self) -> None:
        self._write_paused_at = time.monotonic()
        self._reading()

    def resume_writing(self) -> None:
        self._write_paused_at = None
        self._reading()

    def _reading(self) -> None:
        """Read from the peer unless its replies wait unread or its messages wait unhandled."""
        if self.transport is None or self.transport.is_closing():
            return
        pause = self._write_paused_at is not None or bool(self._pending)
        if pause != self._read_paused:
            self._read_paused = pause
            if pause:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self.last_rx = OFConnection.last_message = time.monotonic()
        self.probe_sent = False
        self.buf += data
        try:
            raws, rest = split_messages(self.buf)
        except FramingError as e:
            log(f"{self.name}: {e}; closing")
            self.error = str(e)
            self.close()
            return
        self.buf = bytearray(rest)
        self._pending.extend(raws)
        if self._turn is None:
            self._handle_turn()

    def _handle_turn(self) -> None:
        """This connection's share of a loop turn: its next MESSAGES_PER_TURN messages."""
        self._turn = None
        if self._closing:
            self._pending.clear()
            return
        q = self._pending
        raws = [q.popleft() for _ in range(min(len(q), MESSAGES_PER_TURN))]
        if q:                                         # the rest at its next turn
            self._turn = asyncio.get_running_loop().call_soon(self._handle_turn)
        self._reading()
        self._handle(raws)

    def _handle(self, raws: list[bytes]) -> None:
        batch: list[tuple[bytes, Message | OFPError]] = []
        for raw in raws:
            if self._closing:
                return
            self.stats["rx"] += 1
            if raw[1] == C.OFPT_FLOW_MOD and raw[0] == C.OFP13_VERSION == self.version:
                batch.append((raw, None))             # the owner decodes it (or knows its shape)
                continue
            table_id = None
            if self.table_id_ext and raw[0] == C.OFP10_VERSION and raw[1] == C.OFPT_FLOW_MOD and len(raw) >= 58:
                table_id = raw[56]                    # Nicira's flow_mod_table_id: the command's high byte
                raw = raw[:56] + b"\0" + raw[57:]
            try:
                msg = decode(raw)
            except OFPError as e:
                if self.version is None:
                    self._hello_failed(C.OFPHFC_EPERM, raw, b"expected a HELLO")
                    return
                batch.append((raw, e))
                continue
            if self.version is None:
                if not isinstance(msg, Hello):
                    self._hello_failed(C.OFPHFC_EPERM, raw, b"expected a HELLO")
                    return
                v = negotiate(msg)
                if v is None:
                    self._hello_failed(C.OFPHFC_INCOMPATIBLE, raw,
                                       b"this switch speaks OpenFlow 1.0 and 1.3 (versions 1 and 4)")
                    return
                self.version = v
                self.connected_at = time.monotonic()
                self.owner.connected(self)
                continue
            if raw[0] != self.version:
                if isinstance(msg, Hello):
                    continue                          # a second HELLO: nothing to do
                batch.append((raw, OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_VERSION, raw[:64], msg.xid,
                                            self.version)))
                continue
            if isinstance(msg, EchoRequest) and not isinstance(msg, EchoReply):
                if batch:                             # replies stay in the order of the requests
                    self.owner.handle_batch(self, batch)
                    batch = []
                self.send(encode(EchoReply(data=msg.data, version=self.version, xid=msg.xid)))
            elif isinstance(msg, (EchoReply, Hello)):
                pass                                  # liveness is any message at all
            elif isinstance(msg, Error):
                # A peer's ERROR is never answered (two switches would answer each other for
                # ever); counted and shown, as Open vSwitch logs it.
                self.stats["errors_received"] = self.stats.get("errors_received", 0) + 1
                log(f"{self.name}: peer sent an error (type {msg.type}, code {msg.code})")
            else:
                if table_id is not None:
                    msg.table_id = table_id
                batch.append((raw, msg))
        if batch:
            self.owner.handle_batch(self, batch)

    # -- sending
    def send(self, data: bytes) -> bool:
        """Queue DATA (one or more messages), after the packet-ins held; False when the connection
        is closing, so it is not sent."""
        if self.transport is not None and not self.transport.is_closing():
            if self._held:
                self._write_held()
                if self.transport.is_closing():
                    return False
            self.transport.write(data)
            self._tx_bytes += len(data)
            self.stats["tx"] += 1
            self._check_backlog()
            return True
        return False

    def _check_backlog(self) -> None:
        if self.transport.get_write_buffer_size() > WRITE_BUFFER_MAX:
            self._drop(f"more than {WRITE_BUFFER_MAX >> 20} MB of replies unread")

    def _write_held(self) -> None:
        """The packet-ins held, in one write (their bytes are counted in _tx_bytes already)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        held, self._held, self._held_bytes = self._held, [], 0
        if held and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(held))
            self._check_backlog()

    def _flush_held(self) -> None:
        self._flush_handle = None
        self._write_held()

    def _drop(self, why: str) -> None:
        """Close at once, what is buffered discarded: the peer does not read."""
        log(f"{self.name}: {why}; dropping the connection")
        self.error = why
        self._closing = True
        self.transport.abort()

    def packet_ins_queued(self) -> int:
        """Packet-ins sent but still in the transport's write buffer (not yet taken by the
        kernel), as far as its buffered byte count tells."""
        if self.transport is None:
            return 0
        flushed = self._tx_bytes - self._held_bytes - self.transport.get_write_buffer_size()
        q = self._pin_ends
        while q and q[0] <= flushed:
            q.popleft()
        return len(q)

    def send_packet_in(self, data: bytes) -> bool:
        """Send a packet-in unless ``PACKET_IN_QUEUE_MAX`` wait already (then it is dropped and
        counted, as Open vSwitch's rconn drops beyond its queue limit).  Whether it was sent."""
        if self.transport is None or self.transport.is_closing():
            self.stats["packet_ins_dropped"] += 1     # the connection is closing
            return False
        if self.packet_ins_queued() >= PACKET_IN_QUEUE_MAX:
            self.stats["packet_ins_dropped"] += 1
            return False
        self._tx_bytes += len(data)
        self.stats["tx"] += 1
        self._pin_ends.append(self._tx_bytes)
        if not self._loop.is_running():               # no next turn to wait for (a test's driver)
            self.transport.write(data)
            self._check_backlog()
            return True
        self._held.append(data)
        self._held_bytes += len(data)
        if len(self._held) >= PACKET_IN_BATCH:
            self._write_held()
        elif self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush_held)
        return True

    def send_msg(self, msg: Message) -> None:
        msg.version = self.version
        self.send(encode(msg))

    def send_error(self, exc: OFPError, xid: int | None = None) -> None:
        self.stats["errors"] += 1
        self.send(error_reply(exc, xid=xid, version=self.version))

    def _hello_failed(self, code: int, raw: bytes, why: bytes) -> None:
        xid = struct.unpack_from("!I", raw, 4)[0] if len(raw) >= 8 else 0
        version = raw[0] if raw and raw[0] in OUR_VERSIONS else max(OUR_VERSIONS)
        self.send(encode(Error(type=C.OFPET_HELLO_FAILED, code=code, data=why, version=version, xid=xid)))
        log(f"{self.name}: version negotiation failed ({why.decode()}); closing")
        self.error = f"version negotiation failed ({why.decode()})"
        self.close()

    def close(self) -> None:
        """Close after the buffered replies are sent."""
        self._closing = True
        if self.transport is not None and not self.transport.is_closing():
            self._write_held()
            self.transport.close()

    # -- inactivity probe
    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(min(1.0, self.probe_interval / 4), self._check_idle)

    def _check_idle(self) -> None:
        if self._closing:
            return
        now = time.monotonic()
        idle = now - self.last_rx
        if self._write_paused_at is not None and now - self._write_paused_at >= 2 * self.probe_interval:
            self._drop(f"replies unread for {2 * self.probe_interval:g} s")
            return
        if self._read_paused:                         # we are not reading it: its silence is ours
            self.last_rx = max(self.last_rx, now - self.probe_interval / 2)
            self._arm()
            return
        if idle >= 2 * self.probe_interval and self.probe_sent:
            log(f"{self.name}: no reply to an echo request in {self.probe_interval:g} s; closing")
            self.error = f"no reply to an echo request in {self.probe_interval:g} s"
            self.transport.abort()
            return
        if idle >= self.probe_interval and not self.probe_sent:
            self.probe_sent = True
            self.send(encode(EchoRequest(version=self.version or max(OUR_VERSIONS), xid=PROBE_XID)))
        self._arm()


# --- endpoints --------------------------------------------------------------------------------
def parse_listen(target: str) -> tuple[str, str | int, str | None]:
    """('tcp', port, ip) for ptcp:PORT[:IP] (IP defaults to 127.0.0.1), ('ssl', port, ip) for
    pssl:, ('unix', path, None) for punix:PATH."""
    kind, _, rest = target.partition(":")
    if kind == "punix":
        return "unix", rest, None
    port, _, ip = rest.partition(":")
    return "ssl" if kind == "pssl" else "tcp", int(port), (ip.strip("[]") or "127.0.0.1")


def tls_context(cfg, server: bool):
    """TLS as Open vSwitch does it: our certificate and key, and the peer's certificate must be
    signed by the CA (no host name check: controllers are named by address)."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cfg.certificate, cfg.private_key)
    ctx.load_verify_locations(cfg.ca_cert)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def parse_active(target: str) -> tuple[str, str, int | None]:
    """('tcp', host, port), ('ssl', host, port) or ('unix', path, None)."""
    kind, _, rest = target.partition(":")
    if kind == "unix":
        return "unix", rest, None
    host, _, port = rest.rpartition(":")
    return kind, host.strip("[]"), int(port)


def _reason(e: OSError) -> str:
    """Why a connection attempt failed, as Open vSwitch says it ("Connection refused", not
    asyncio's "Connect call failed (addr)"); TLS and name errors in their own words."""
    if (type(e) is OSError or isinstance(e, ConnectionError)) and e.errno and e.errno > 0:
        return os.strerror(e.errno)
    return str(e)


class Listener:
    """A passive endpoint: every peer that connects gets its own (service) connection."""

    def __init__(self, target: str, owner: Owner, probe_interval: float = PROBE_INTERVAL, ssl_cfg=None):
        self.target, self.owner, self.probe_interval = target, owner, probe_interval
        self.server: asyncio.AbstractServer | None = None
        self.path: str | None = None
        self.ssl_cfg = ssl_cfg

    def _factory(self):
        return OFConnection(self.owner, "service", self.target, self.probe_interval)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        kind, where, ip = parse_listen(self.target)
        if kind == "unix":
            self.path = str(where)
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            if os.path.lexists(self.path):
                if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
                    raise OSError(f"{self.target}: {self.path} exists and is not a socket; not removing it")
                os.unlink(self.path)
            self.server = await loop.create_unix_server(self._factory, path=self.path, backlog=ACCEPT_BACKLOG)
            os.chmod(self.path, 0o600)
        else:
            tls = tls_context(self.ssl_cfg, server=True) if kind == "ssl" else None
            self.server = await loop.create_server(self._factory, host=ip, port=int(where), reuse_address=True,
                                                   backlog=ACCEPT_BACKLOG,
                                                   ssl=tls)

    @property
    def port(self) -> int | None:
        """The TCP port actually bound (for ptcp:0)."""
        if self.server is None or self.path is not None:
            return None
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            try:
                await asyncio.wait_for(self.server.wait_closed(), 1.0)
            except asyncio.TimeoutError:
                pass
            self.server = None
        if self.path:
            try:
                os.unlink(self.path)
            except OSError:
                pass


class ActiveController:
    """An active endpoint: connect, and reconnect with backoff whenever the connection is lost."""

    def __init__(self, target: str, owner: Owner, probe_interval: float = PROBE_INTERVAL, ssl_cfg=None):
        self.target, self.owner, self.probe_interval = target, owner, probe_interval
        self.ssl_cfg = ssl_cfg
        self.conn: OFConnection | None = None
        self.task: asyncio.Task | None = None
        self.attempts = 0
        self.connecting = False                  # a connection attempt is in flight
        self.last_error: str | None = None       # why the last attempt or connection ended
        self.disconnected_at: float | None = None   # monotonic; when the last negotiated one ended

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        kind, where, port = parse_active(self.target)
        tls = tls_context(self.ssl_cfg, server=False) if kind == "ssl" else None
        backoff = BACKOFF_MIN
        factory = lambda: OFConnection(self.owner, "primary", self.target, self.probe_interval)  # noqa: E731
        while True:
            self.attempts += 1
            self.connecting = True
            try:
                if kind == "unix":
                    _, conn = await asyncio.wait_for(loop.create_unix_connection(factory, path=where), 5)
                else:
                    _, conn = await asyncio.wait_for(loop.create_connection(factory, host=where, port=port, ssl=tls),
                                                     5)
            except asyncio.TimeoutError:
                conn, self.last_error = None, "connection timed out"
            except OSError as e:                     # ssl.SSLError is an OSError: a refused peer
                conn, self.last_error = None, _reason(e)
            finally:
                self.connecting = False
            if conn is not None:
                self.conn = conn
                negotiated = await conn.closed
                self.conn = None
                self.last_error = conn.error or "closed"
                if negotiated:
                    self.disconnected_at = time.monotonic()
                    backoff = BACKOFF_MIN            # it worked: start over from the shortest wait
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass
            self.task = None
        if self.conn is not None:
            self.conn.close()
