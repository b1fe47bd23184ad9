"""Errors of the OpenFlow codec, and the ERROR message that answers one.

``OFPError`` is what decoding malformed input raises (always that, never IndexError or
struct.error): the OpenFlow error type and code (1.3 numbering) and ``data``, the first 64 bytes of
the offending message.  ``FramingError`` is a byte stream that cannot be split into messages
(a header length below 8): the caller closes the connection, there is nothing to answer.

Pure functions; any thread; O(len(data)).
"""
from __future__ import annotations

import struct

from . import consts as C


class OFPError(Exception):
    """An OpenFlow error: ``type``/``code`` in OpenFlow 1.3 numbering, ``data`` the first 64 bytes
    of the offending message; ``xid``/``version`` of that message when its header was readable."""

    def __init__(self, type: int, code: int, data: bytes = b"", xid: int | None = None,
                 version: int | None = None):
        super().__init__(type, code, data)
        self.type, self.code, self.data, self.xid, self.version = type, code, bytes(data), xid, version

    def __str__(self) -> str:
        return f"{C.error_name(self.type, self.code)} ({len(self.data)} bytes of data)"


class FramingError(Exception):
    """The stream carries a header with length < 8: no message boundary can be trusted."""


# 1.3 (type -> (1.0 type, {1.3 code: 1.0 code}, 1.0 code for the rest)).  Codes absent from 1.0
# fall back to the closest generic one.
_SAME = {i: i for i in range(9)}
_TO_OF10 = {
    C.OFPET_HELLO_FAILED: (C.OFPET10_HELLO_FAILED, {0: 0, 1: 1}, C.OFPHFC_EPERM),
    C.OFPET_BAD_REQUEST: (C.OFPET10_BAD_REQUEST, _SAME, C.OFPBRC_EPERM),
    C.OFPET_BAD_ACTION: (C.OFPET10_BAD_ACTION, {**_SAME, C.OFPBAC_BAD_SET_TYPE: C.OFPBAC_BAD_TYPE,
                                                C.OFPBAC_BAD_SET_LEN: C.OFPBAC_BAD_LEN}, C.OFPBAC_BAD_ARGUMENT),
    C.OFPET_FLOW_MOD_FAILED: (C.OFPET10_FLOW_MOD_FAILED, {
        C.OFPFMFC_TABLE_FULL: C.OFPFMFC10_ALL_TABLES_FULL, C.OFPFMFC_OVERLAP: C.OFPFMFC10_OVERLAP,
        C.OFPFMFC_EPERM: C.OFPFMFC10_EPERM, C.OFPFMFC_BAD_TIMEOUT: C.OFPFMFC10_BAD_EMERG_TIMEOUT,
        C.OFPFMFC_BAD_COMMAND: C.OFPFMFC10_BAD_COMMAND}, C.OFPFMFC10_UNSUPPORTED),
    C.OFPET_PORT_MOD_FAILED: (C.OFPET10_PORT_MOD_FAILED, {0: 0, 1: 1}, C.OFPPMFC_BAD_PORT),
    C.OFPET_QUEUE_OP_FAILED: (C.OFPET10_QUEUE_OP_FAILED, {0: 0, 1: 1, 2: 2}, C.OFPQOFC_EPERM),
}


def to_of10(type_: int, code: int) -> tuple[int, int]:
    """The OpenFlow 1.0 (type, code) closest to a 1.3 one (1.0 has no match/instruction/group/meter
    errors: those become BAD_REQUEST/EPERM)."""
    t10, codes, other = _TO_OF10.get(type_, (C.OFPET10_BAD_REQUEST, {}, C.OFPBRC_EPERM))
    return t10, codes.get(code, other)


def error_reply(exc: OFPError, xid: int | None = None, version: int | None = None) -> bytes:
    """The OFPT_ERROR message answering EXC, for a peer speaking VERSION (default: the offending
    message's own, else 1.3), echoing XID (default: the offending message's, else 0)."""
    version = version if version is not None else exc.version if exc.version in C.VERSIONS else C.OFP13_VERSION
    xid = xid if xid is not None else exc.xid or 0
    type_, code = to_of10(exc.type, exc.code) if version == C.OFP10_VERSION else (exc.type, exc.code)
    data = exc.data[:C.OFP_MAX_MSG_LEN - 12]
    return struct.pack("!BBHIHH", version, C.OFPT_ERROR, 12 + len(data), xid, type_, code) + data
