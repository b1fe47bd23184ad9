"""Wire helpers shared by the codec modules: bounds-checked reads that raise ``OFPError`` (never
struct.error), OpenFlow 1.0 <-> 1.3 port numbers, padding, and ``Layout``, a fixed struct
described by a one-line spec that packs from and unpacks to named attributes.

Pure functions; any thread; cost linear in the bytes handled.
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from ..ofproto.actions import OFPP_MAX
from . import consts as C
from .errors import OFPError

BAD_LEN = (C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_LEN)
_OFPP11_OFFSET = 0xFFFF0000      # 1.0 reserved port p (>= 0xff00) is 1.3's p + this


def fail(err: tuple[int, int]) -> None:
    raise OFPError(*err)


def need(data: bytes, n: int, err: tuple[int, int] = BAD_LEN) -> None:
    """Raise ERR unless DATA holds at least N bytes."""
    if len(data) < n:
        raise OFPError(*err)


def pad8(n: int) -> int:
    return (n + 7) & ~7


def zeros_to8(n: int) -> bytes:
    """The zero padding that brings N bytes to a multiple of 8."""
    return bytes(pad8(n) - n)


def port_from10(p: int) -> int:
    """An OpenFlow 1.0 16-bit port as 1.3's 32-bit number (OFPP_* reserved ports included)."""
    return p if p < C.OFPP10_MAX else p + _OFPP11_OFFSET


def port_to10(p: int) -> int:
    """A 1.3 port number as OpenFlow 1.0's 16-bit one; ValueError when 1.0 has none."""
    if p < C.OFPP10_MAX:
        return p
    if p >= OFPP_MAX:
        return p - _OFPP11_OFFSET
    raise ValueError(f"port {p:#x} has no OpenFlow 1.0 number")


def _cstr_dec(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _mac_dec(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


# Layout value kinds beyond struct's own: code -> (struct code, decode, encode).  ``zN`` is a
# NUL-padded string of N bytes; W (the OpenFlow 1.0 ofp_match) is registered by oxm.py.
KINDS: dict[str, tuple[str, Callable[[Any], Any], Callable[[Any], Any]]] = {
    "P": ("I", int, int),                                      # 1.3 port
    "p": ("H", port_from10, port_to10),                       # 1.0 port, held as the 1.3 number
    "M": ("6s", _mac_dec, lambda v: v.to_bytes(6, "big")),   # MAC, held as an int
}


class Layout:
    """A fixed big-endian struct from a spec such as ``"port_no:P 4x hw_addr:M name:z16 n:2I"``:
    ``name:code`` tokens (a struct code, a ``KINDS`` code, ``zN`` for a string, a count prefix for
    a tuple) and ``Nx`` pads.  Names starting with ``_`` (lengths the caller fills in) are packed
    from keyword arguments, else 0, and are left out of what ``unpack`` returns."""

    def __init__(self, spec: str = ""):
        fmt, self.items = "!", []
        for tok in spec.split():
            if ":" not in tok:
                fmt += tok
                continue
            name, code = tok.split(":")
            if code.startswith("z"):
                n = int(code[1:])
                fmt += f"{n}s"
                self.items.append((name, 1, _cstr_dec, lambda s, n=n: s.encode()[:n - 1]))
                continue
            count = int(code[:-1]) if code[:-1].isdigit() else 1
            base, dec, enc = KINDS.get(code[-1], (code[-1], None, None))
            fmt += base * count
            self.items.append((name, count, dec, enc))
        self.st = struct.Struct(fmt)
        self.size = self.st.size
        # One value per name and nothing to convert (int is no conversion): unpack zips.
        self._names = tuple(name for name, _, _, _ in self.items)
        self._plain = all(count == 1 and dec in (None, int) for _, count, dec, _ in self.items)

    def pack(self, obj: Any, **given: int) -> bytes:
        """OBJ's attributes (or items, for a dict) packed; struct.error/ValueError if they don't fit."""
        vals: list[Any] = []
        for name, count, _, enc in self.items:
            v = given.get(name, 0) if name.startswith("_") else obj[name] if isinstance(obj, dict) else getattr(obj, name)
            v = [enc(x) for x in v] if count > 1 and enc else list(v) if count > 1 else [enc(v) if enc else v]
            vals += v
        return self.st.pack(*vals)

    def unpack(self, data: bytes, off: int = 0, err: tuple[int, int] = BAD_LEN) -> dict[str, Any]:
        """The named values at DATA[OFF:], including ``_`` ones; ERR if DATA is too short."""
        need(data, off + self.size, err)
        if self._plain:
            return dict(zip(self._names, self.st.unpack_from(data, off)))
        raw, out, i = self.st.unpack_from(data, off), {}, 0
        for name, count, dec, _ in self.items:
            vs = raw[i:i + count]
            i += count
            vs = tuple(dec(x) for x in vs) if dec else vs
            out[name] = vs if count > 1 else vs[0]
        return out
