"""Splitting a TCP byte stream into OpenFlow messages.

Pure function; any thread; O(number of messages) plus the copies of their bytes.
"""
from __future__ import annotations

import struct

from .errors import FramingError

_LEN = struct.Struct("!H")


def split_messages(buffer: bytes | bytearray | memoryview) -> tuple[list[bytes], bytes]:
    """(the complete messages at the start of BUFFER, the incomplete rest).  FramingError when a
    header's length is below 8: the stream is out of step and the connection must be closed."""
    out, pos, n = [], 0, len(buffer)
    while n - pos >= 8:
        length, = _LEN.unpack_from(buffer, pos + 2)
        if length < 8:
            raise FramingError(f"OpenFlow header at stream offset {pos} has length {length} < 8")
        if n - pos < length:
            break
        out.append(bytes(buffer[pos:pos + length]))
        pos += length
    return out, bytes(buffer[pos:])
