"""Compare what two switches wrote per output port, as multisets (order aside), and explain
differences readably: each differing frame traced back to the input frame that caused it
(by its ``ref#NNNN`` tag), the two sides' scapy summaries, and the fields that differ."""
from __future__ import annotations

import re
from collections import Counter

_TAG_RE = re.compile(rb"ref#(\d{4})")              # sets.TAG


def tag_of(frame: bytes) -> int | None:
    m = None
    for m in _TAG_RE.finditer(frame):
        pass
    return int(m.group(1)) if m else None


def _pkt(frame: bytes):
    from scapy.layers.l2 import Ether
    return Ether(frame)


def summary(frame: bytes) -> str:
    try:
        return _pkt(frame).summary()
    except Exception as e:                                     # noqa: BLE001
        return f"<undecodable: {e}> {frame.hex()}"


def _fields(frame: bytes) -> dict[str, object]:
    """layer.field -> value over every layer scapy decodes (checksums included)."""
    out: dict[str, object] = {}
    try:
        p = _pkt(frame)
    except Exception:                                          # noqa: BLE001
        return {"raw": frame.hex()}
    depth = 0
    while p is not None and p.__class__.__name__ not in ("NoPayload",):
        name = f"{depth}:{p.__class__.__name__}"
        for fd in p.fields_desc:
            out[f"{name}.{fd.name}"] = p.getfieldval(fd.name)
        if p.__class__.__name__ in ("Raw", "Padding"):
            out[f"{name}.load"] = bytes(p.load)
        p = p.payload if p.payload else None
        depth += 1
    return out


def field_diff(a: bytes, b: bytes) -> str:
    fa, fb = _fields(a), _fields(b)
    keys = [k for k in dict.fromkeys([*fa, *fb]) if fa.get(k) != fb.get(k)]
    if not keys:
        return "      (identical as decoded; raw bytes differ)" if a != b else "      (identical)"
    return "\n".join(f"      {k}: ovs={fa.get(k)!r} ours={fb.get(k)!r}" for k in keys[:12])


def _by_tag(frames) -> dict[int | None, list[bytes]]:
    out: dict[int | None, list[bytes]] = {}
    for f in frames:
        out.setdefault(tag_of(f), []).append(f)
    return out


def compare(ovs: dict[int, list[bytes]], ours: dict[int, list[bytes]], ports: list[int],
            combine: list[set[int]] = (), inputs: list[bytes] = (), max_shown: int = 6) -> list[str]:
    """Problems, one readable paragraph each; empty when every port (or combined port group)
    got the same multiset of frames from both switches."""
    groups: list[tuple[str, set[int]]] = []
    combined = set().union(*combine) if combine else set()
    for c in combine:
        groups.append(("ports " + "+".join(map(str, sorted(c))), c))
    for p in ports:
        if p not in combined:
            groups.append((f"port {p}", {p}))
    problems = []
    for label, ps in groups:
        a = Counter(f for p in ps for f in ovs.get(p, []))
        b = Counter(f for p in ps for f in ours.get(p, []))
        if a == b:
            continue
        only_a, only_b = a - b, b - a
        lines = [f"{label}: OVS sent {sum(a.values())} frames, dpdkswitch {sum(b.values())}; "
                 f"{sum(only_a.values())} only from OVS, {sum(only_b.values())} only from dpdkswitch"]
        ta, tb = _by_tag(only_a.elements()), _by_tag(only_b.elements())
        shown = 0
        for tag in sorted(set(ta) | set(tb), key=lambda t: (t is None, t or 0)):
            if shown >= max_shown:
                lines.append(f"  ... and more ({len(set(ta) | set(tb)) - shown} input frames differ)")
                break
            shown += 1
            src = inputs[tag] if tag is not None and tag < len(inputs) else None
            lines.append(f"  input #{tag}: {summary(src) if src else '(untagged frame)'}")
            xa, xb = ta.get(tag, []), tb.get(tag, [])
            for f in xa:
                lines.append(f"    OVS:        {summary(f)}")
            for f in xb:
                lines.append(f"    dpdkswitch: {summary(f)}")
            if not xa:
                lines.append("    OVS:        (nothing)")
            if not xb:
                lines.append("    dpdkswitch: (nothing)")
            if xa and xb:
                lines.append(field_diff(xa[0], xb[0]))
            elif src is not None:
                lines.append("    vs input:\n" + field_diff(src, (xa or xb)[0]).replace("ovs=", "input=")
                             .replace("ours=", "output="))
        problems.append("\n".join(lines))
    return problems


def show(frame: bytes) -> str:
    """scapy's full dissection, for a test's failure output."""
    return _pkt(frame).show(dump=True)
