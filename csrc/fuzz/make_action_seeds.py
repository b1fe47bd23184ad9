#!/usr/bin/env python3
"""Write the seed corpus of the action executor's fuzz target (csrc/fuzz/fuzz_actions.c).

usage: make_action_seeds.py DIR

One file per input: the target's knobs (struct knobs), an action list, a frame.  The frames are
the parser's seeds (make_seeds.py, scapy) plus a few the executor has mishandled; the lists
cover every action type: outputs before and after rewrites, every set_masked kind with whole
and partial masks, VLAN push and pop, clone and sample (nested), userspace, hash and
recirculation, meters, truncation, MPLS push and pop (one entry and the stack), check_pkt_len.
The action layout (struct dps_action and the DPS_ACT_* and
DPS_SET_* numbers of csrc/include/dpdkswitch.h) is written out here with struct, so the script
needs scapy but not the dpdkswitch package.  Deterministic: the same files every run.
"""
from __future__ import annotations

import hashlib
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_seeds import DST, SRC, frames  # noqa: E402
from scapy.layers.inet import IP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402

(OUTPUT, PUSH_VLAN, POP_VLAN, SET_MASKED, USERSPACE, SAMPLE, CLONE, HASH, RECIRC, METER, TRUNCATE, PUSH_MPLS,
 POP_MPLS, CHECK_PKT_LEN) = range(1, 15)
POP_MPLS_STACK = 1 << 16
SET_SIZE = {1: 12, 2: 2, 3: 10, 4: 38, 5: 4, 6: 4, 7: 4, 8: 2, 9: 2, 10: 22, 11: 28, 12: 4}   # DPS_SET_* -> bytes


def act(type_: int, arg: int = 0, payload: bytes = b"") -> bytes:
    payload += b"\0" * (-len(payload) % 8)
    return struct.pack("<HHI", type_, 8 + len(payload), arg) + payload


def out(port: int) -> bytes:
    return act(OUTPUT, port)


def set_masked(kind: int, value: bytes, mask: bytes) -> bytes:
    n = SET_SIZE[kind]
    return act(SET_MASKED, kind, value[:n].ljust(n, b"\0") + mask[:n].ljust(n, b"\0"))


def sets() -> list[bytes]:
    """Every kind with a whole mask and a partial one."""
    lists = []
    for kind, n in SET_SIZE.items():
        value = bytes((0x5A + 37 * i) & 0xFF for i in range(n))
        lists.append(set_masked(kind, value, b"\xff" * n))
        lists.append(set_masked(kind, value, bytes(0x0F if i % 2 else 0xF0 for i in range(n))))
    return lists


def lists() -> list[bytes]:
    s = sets()
    eth = set_masked(1, bytes(6) + bytes.fromhex("0200000000ee"), bytes(6) + b"\xff" * 6)
    ipv4 = set_masked(3, bytes.fromhex("0a000001"), b"\xff" * 4)
    generic = [
        out(2),
        out(2) + out(3) + out(2),
        act(PUSH_VLAN, 0x8100 << 16 | 100) + out(2),
        act(PUSH_VLAN, 0x88A8 << 16 | 7) + act(PUSH_VLAN, 0x8100 << 16 | 9) + out(2) + act(POP_VLAN) + out(3),
        act(POP_VLAN) + out(2) + act(POP_VLAN) + out(3),
        out(2) + eth + out(3),
        act(CLONE, 0, eth + out(3)) + out(2),
        act(CLONE, 0, act(CLONE, 0, ipv4 + out(4)) + out(3)) + ipv4 + out(2),
        act(SAMPLE, 0x7FFFFFFF, eth + out(4)) + out(2),
        act(SAMPLE, 0xFFFFFFFF, out(4)) + act(SAMPLE, 0, out(5)),
        act(USERSPACE, 0, struct.pack("<Q", 0x1234)) + eth + out(2),
        out(2) + act(USERSPACE, 0, struct.pack("<Q", 7)),
        act(HASH, 5) + act(RECIRC, 3) + out(2),
        act(RECIRC, 1),
        act(METER, 1) + out(2) + act(METER, 4095) + out(3),
        act(TRUNCATE, 20) + out(2) + out(3),
        out(2) + act(TRUNCATE, 60) + eth + out(3),
        act(PUSH_MPLS, 100 << 12 | 1 << 8 | 64, struct.pack("<H", 0x8847)) + out(2) + act(POP_MPLS, 0x0800) + out(3),
        act(PUSH_MPLS, 7 << 12 | 64, struct.pack("<H", 0x8848)) + set_masked(12, b"\x00\x01\x01\x09", b"\xff" * 4)
        + act(POP_MPLS, 0x8847 | POP_MPLS_STACK) + out(2),
        act(POP_MPLS, 0x0800 | POP_MPLS_STACK) + ipv4 + out(2) + act(RECIRC, 2),
        check_pkt_len(80, eth + out(2), act(PUSH_MPLS, 5 << 12 | 1 << 8 | 9, struct.pack("<H", 0x8847)) + out(3)),
        out(4) + check_pkt_len(60, act(CLONE, 0, out(2)) + out(3), b""),
        b"",
    ]
    mixed = [x + out(2) for x in s] + [out(3) + x + out(2) for x in s[::2]]
    return generic + mixed


def check_pkt_len(size: int, greater: bytes, less_equal: bytes) -> bytes:
    return act(CHECK_PKT_LEN, size, struct.pack("<I4x", len(greater)) + greater + less_equal)


def extra_frames() -> list[bytes]:
    """Frames the executor has got wrong once."""
    return [bytes(Ether(dst=DST, src=SRC) / IP(src="10.9.9.9", dst="10.0.0.2", proto=58) / Raw(bytes(8)))]


def knobs(flags: int, split: int, fail_every: int, meter_bits: int, seed: int, list_len: int) -> bytes:
    return struct.pack("<BBBBIH", flags, split, fail_every, meter_bits, seed, list_len)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    d = argv[1]
    os.makedirs(d, exist_ok=True)
    all_frames = frames() + extra_frames()
    all_lists = lists()
    seen = set()
    for i, fr in enumerate(all_frames):
        for j, acts in enumerate(all_lists):
            if (i + j) % 3 and j >= 18:      # every frame gets the generic lists, a third of the rest
                continue
            flags = (i * 7 + j) % 8 if j % 5 == 0 else 0     # now and then two segments, odd headroom
            inp = knobs(flags, (i + j) & 0xFF, 3 if j % 11 == 0 else 0, 0x55 if j % 13 == 0 else 0,
                        i * 131 + j, len(acts)) + acts + fr
            h = hashlib.sha1(inp).hexdigest()
            if h in seen:
                continue
            seen.add(h)
            with open(os.path.join(d, "seed-" + h), "wb") as f:
                f.write(inp)
    print(f"make_action_seeds: {len(seen)} seed inputs in {d}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
