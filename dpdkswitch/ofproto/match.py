"""The match of a flow: an immutable, hashable mapping from a field name (``Field.name`` of
fields.FIELDS) to ``(value, mask)``, mask None meaning exact; values are stored already masked,
a mask of all ones is stored as None and a mask of 0 drops the field.

What it can do with a datapath flow key (bytes of fields.KEY_SIZE): test one (``matches``), turn
itself into the key/mask pair the datapath classifies with (``key_and_mask``), and compare with
another match (``overlaps``, ``is_subset_of``: for check_overlap and loose/strict flow-mods).
Both key operations include the prerequisites the match implies (``implied``: tcp_dst with
eth_type=0x0800 implies ip_proto=6) so that a bare tcp_dst never matches a UDP packet's ports.
Pipeline-only fields (metadata, pkt_mark, registers: ``member`` None) are kept but are not part
of the key: ``pipeline_ints`` gives them as the pipeline vector (fields.PIPELINE_BITS) the
classifier matches beside the key.  xreg/xxreg are stored as the 32-bit registers they cover
(as Open vSwitch stores and prints them), so one register has one name here.

Pure data; any thread.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from ..flowkey import KEY_SIZE
from .fields import BY_NAME, FIELDS, FRAG_LATER, NOT_IN_LATER_FRAGMENTS, Field, prereqs_of

_ORDER = {f.name: i for i, f in enumerate(FIELDS)}

Cond = tuple[Field, int, int]          # (field, value, mask) with the mask spelled out


class MatchError(ValueError):
    """A bad field, value or mask, or a prerequisite the match lacks (then ``field`` names the
    field and ``alternatives`` lists the matches, one of which it would need to include)."""

    def __init__(self, message: str, field: str | None = None, alternatives: tuple[Match, ...] = ()):
        super().__init__(message)
        self.field, self.alternatives = field, alternatives


def _field(name: str) -> Field:
    f = BY_NAME.get(name)
    if f is None or f.name not in _ORDER:          # fields.VIEWS: for actions, not matches
        raise MatchError(f"unknown field '{name}'")
    return f


def _full(f: Field, mask: int | None) -> int:
    return f.all_ones if mask is None else mask


def _key_limit(f: Field) -> int:
    """The largest value the flow key can hold for F (arp_op is 16 bits wide but the key keeps
    its low byte only, in nw_proto)."""
    limit = _KEY_LIMIT.get(f.name)
    if limit is None:
        limit = _KEY_LIMIT[f.name] = min(f.all_ones, ((1 << 8 * f.key_nbytes) - 1) >> f.shift)
    return limit


_KEY_LIMIT: dict[str, int] = {}


def _alts(f: Field) -> list[list[Cond]]:
    """F's prerequisite alternatives with the masks spelled out (shared: do not change them)."""
    alts = _ALTS.get(f.name)
    if alts is None:
        alts = _ALTS[f.name] = [[(g, v, _full(g, m)) for g, v, m in alt] for alt in prereqs_of(f)]
    return alts


_ALTS: dict[str, list[list[Cond]]] = {}
# The fields whose values prerequisites read (and ip_frag, for the later-fragments rule); the
# memos of passed prerequisite checks and of implied conditions, by Match._prereq_key, each
# emptied when it reaches MEMO_MAX shapes.
PREREQ_FIELDS = frozenset({g.name for f in BY_NAME.values() for alt in prereqs_of(f) for g, _, _ in alt}
                          | {"ip_frag"})
MEMO_MAX = 4096
_PREREQS_OK: set[tuple] = set()
_IMPLIED: dict[tuple, dict] = {}


class Match(Mapping[str, tuple[int, int | None]]):
    """``Match({"eth_type": 0x0800, "ipv4_src": (0x0A000000, 0xFF000000)})``; aliases (nw_src,
    dl_type ...) are accepted wherever a name is, and stored as the canonical name."""

    __slots__ = ("_d", "_hash", "_implied", "_km", "_kmi", "_pl", "_ok")

    def __init__(self, fields: Mapping[str, int | tuple[int, int | None]]
                 | Iterable[tuple[str, int | tuple[int, int | None]]] = ()):
        d: dict[str, tuple[int, int | None]] = {}
        for name, v in fields.items() if isinstance(fields, Mapping) else fields:
            value, mask = v if isinstance(v, tuple) else (v, None)
            _put(d, name, value, mask)
        self._set(d)

    def _set(self, d: dict, kmi: tuple[int, int] | None = None, pl: tuple[int, int] | None = None,
             ok: bool = False) -> None:
        """D (in field order already when KMI is given: then KMI and PL are its key and
        pipeline ints, known; OK: its prerequisites are known to pass)."""
        self._d = d if kmi is not None else dict(sorted(d.items(), key=lambda kv: _ORDER[kv[0]]))
        self._hash = self._implied = self._km = None
        self._kmi, self._pl, self._ok = kmi, pl, ok

    @classmethod
    def _new(cls, d: dict, kmi: tuple[int, int] | None = None, pl: tuple[int, int] | None = None,
             ok: bool = False) -> Match:
        m = cls.__new__(cls)
        cls._set(m, d, kmi, pl, ok)
        return m

    # -- mapping ----------------------------------------------------------------------------
    def __getitem__(self, name: str) -> tuple[int, int | None]:
        return self._d[BY_NAME[name].name if name in BY_NAME else name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    # The Mapping mixins' get, items and __contains__ go through __getitem__ per key: these
    # read the dict directly (a flow-mod reads a match a dozen times).
    def get(self, name: str, default=None):
        return self._d.get(BY_NAME[name].name if name in BY_NAME else name, default)

    def __contains__(self, name) -> bool:
        return (BY_NAME[name].name if name in BY_NAME else name) in self._d

    def items(self):
        return self._d.items()

    def __eq__(self, other) -> bool:
        return self._d == other._d if isinstance(other, Match) else NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self._d.items()))
        return self._hash

    def __repr__(self) -> str:
        return "Match({%s})" % ", ".join(f"{n!r}: {hex(v) if m is None else (hex(v), hex(m))}"
                                         for n, (v, m) in self._d.items())

    def value(self, name: str) -> int | None:
        """The value of an exact-matched field, else None."""
        vm = self.get(name)
        return vm[0] if vm is not None and vm[1] is None else None

    # -- building -----------------------------------------------------------------------------
    def with_field(self, name: str, value: int, mask: int | None = None) -> Match:
        """A copy with NAME matched on VALUE under MASK (None: exact; 0: NAME wildcarded)."""
        d = dict(self._d)
        _put(d, name, value, mask)
        return Match._new(d)

    def without(self, *names: str) -> Match:
        drop = {_field(x).name for x in names}
        return Match._new({n: vm for n, vm in self._d.items() if n not in drop})

    def conditions(self) -> list[Cond]:
        return [(BY_NAME[n], v, _full(BY_NAME[n], m)) for n, (v, m) in self._d.items()]

    # -- prerequisites ------------------------------------------------------------------------
    def _satisfied(self, c: Cond) -> bool:
        f, v, m = c
        vm = self._d.get(f.name)
        return vm is not None and _full(f, vm[1]) & m == m and vm[0] & m == v & m

    def _compatible(self, c: Cond) -> bool:
        f, v, m = c
        vm = self._d.get(f.name)
        return vm is None or not (vm[0] ^ v) & _full(f, vm[1]) & m

    def prereqs_ok(self, f: Field | str) -> bool:
        """Whether this match states (explicitly) one alternative of F's prerequisites."""
        f = _field(f) if isinstance(f, str) else f
        return any(all(self._satisfied(c) for c in alt) for alt in _alts(f))

    def _prereq_key(self) -> tuple:
        """What prerequisites read of this match: the names of its fields, with their values
        and masks for those some prerequisite (or the fragment rule) looks at (PREREQ_FIELDS).
        Two matches with one key pass or fail the same checks and imply the same conditions."""
        return tuple((n, vm) if n in PREREQ_FIELDS else n for n, vm in self._d.items())

    def check_prereqs(self) -> None:
        """Raise MatchError naming the first field whose prerequisites are not all present, or
        an L4 field matched in later fragments only (they have none; no ``alternatives`` then).
        A shape that passed once (``_prereq_key``) passes at the cost of a set probe; a match
        that passed, or was made from one by ``substituter``, at none."""
        if self._ok:
            return
        pk = self._prereq_key()
        if pk not in _PREREQS_OK:
            self._check_prereqs()
            if len(_PREREQS_OK) >= MEMO_MAX:
                _PREREQS_OK.clear()
            _PREREQS_OK.add(pk)
        self._ok = True

    def _check_prereqs(self) -> None:
        frag = self._d.get("ip_frag")
        if frag is not None and frag[0] & FRAG_LATER:
            for name in self._d:
                if name in NOT_IN_LATER_FRAGMENTS:
                    raise MatchError(f"{name} cannot be matched in later fragments (ip_frag=later): they have "
                                     "no L4 header", name)
        for name in self._d:
            f = BY_NAME[name]
            if not self.prereqs_ok(f):
                alts = tuple(Match({g.name: (v, m) for g, v, m in alt}) for alt in _alts(f))
                need = " or ".join(",".join(f"{g}={v:#x}" if m is None else f"{g}={v:#x}/{m:#x}"
                                            for g, (v, m) in a.items()) for a in alts)
                raise MatchError(f"{name} requires {need}", name, alts)

    def implied(self, only: Iterable[str] | None = None) -> Match:
        """This match plus the prerequisites it implies: for a field whose prerequisites are not
        stated, the conditions of the one alternative its other fields leave possible.  ONLY:
        add conditions on these fields only (an alternative needing others is left alone)."""
        if only is None:
            if self._implied is None:
                pk = self._prereq_key()
                added = _IMPLIED.get(pk)
                if added is None:
                    m = self._implied_slow(None)
                    added = {n: vm for n, vm in m.items() if self._d.get(n) != vm}
                    if len(_IMPLIED) >= MEMO_MAX:
                        _IMPLIED.clear()
                    _IMPLIED[pk] = added
                self._implied = Match._new({**self._d, **added}) if added else self
            return self._implied
        return self._implied_slow(only)

    def _implied_slow(self, only: Iterable[str] | None) -> Match:
        allowed = None if only is None else {_field(n).name for n in only}
        m, changed = self, True
        while changed:
            changed = False
            for name in list(m._d):
                alts = _alts(BY_NAME[name])
                if any(all(m._satisfied(c) for c in alt) for alt in alts):
                    continue
                possible = [alt for alt in alts if all(m._compatible(c) for c in alt)]
                if len(possible) != 1:
                    continue
                missing = [c for c in possible[0] if not m._satisfied(c)]
                if allowed is not None and any(f.name not in allowed for f, _, _ in missing):
                    continue
                d = dict(m._d)
                for f, v, mask in missing:
                    ov, om = d.get(f.name, (0, 0))
                    _put(d, f.name, ov | v & mask, _full(f, om) | mask)
                m, changed = Match._new(d), True
        return m

    # -- the datapath key ---------------------------------------------------------------------
    def key_and_mask(self) -> tuple[bytes, bytes]:
        """The flow key and mask (KEY_SIZE bytes each) of this match and its implied
        prerequisites.  MatchError if two fields want different values of the same bits."""
        if self._km is None:
            key, mask = self.key_and_mask_ints()
            self._km = key.to_bytes(KEY_SIZE, "big"), mask.to_bytes(KEY_SIZE, "big")
        return self._km

    def key_and_mask_ints(self) -> tuple[int, int]:
        """key_and_mask() as big-endian ints (the classifier's view); computed once."""
        if self._kmi is None:
            self._kmi = self._key_and_mask_ints()
        return self._kmi

    def _key_and_mask_ints(self) -> tuple[int, int]:
        key = mask = 0
        for f, v, m in self.implied().conditions():
            if f.member is None:
                continue
            kv, km = f.key_ints(v, m & _key_limit(f))
            if (key ^ kv) & mask & km:
                raise MatchError(f"{f.name} contradicts another field of the match")
            key |= kv
            mask |= km
        return key, mask

    def matches(self, key: bytes, pipeline: Mapping[str, int] | int | None = None) -> bool:
        """Whether a packet with flow KEY matches (in_port compared as the key holds it).
        Pipeline-only fields are checked against PIPELINE (the pipeline vector, or {name: value},
        absent = 0) if given, else ignored."""
        if isinstance(pipeline, Mapping):
            vec = 0
            for name, value in pipeline.items():
                f = _field(name)
                vec |= (value & f.all_ones) << f.meta_shift
            pipeline = vec
        for f, v, m in self.implied().conditions():
            if f.member is None:
                if pipeline is not None and (pipeline >> f.meta_shift) & m != v:
                    return False
            elif f.from_key(key) & m != v:
                return False
        return True

    def pipeline_ints(self) -> tuple[int, int]:
        """(value, mask) of this match over the pipeline vector (fields.PIPELINE_BITS)."""
        if self._pl is None:
            value = mask = 0
            for f, v, m in self.conditions():
                if f.member is None:
                    value |= v << f.meta_shift
                    mask |= m << f.meta_shift
            self._pl = value, mask
        return self._pl

    # -- substituting values (compiled flow-mod shapes: ofswitch/flowshapes.py) ----------------
    def substitutable(self, f: Field) -> bool:
        """Whether F, matched exactly here, may take any other value of its width with only its
        own key bits changing (``substituter``): a field the flow key holds big-endian and whole,
        that no prerequisite or consistency check reads (not in PREREQ_FIELDS, not vlan_vid),
        whose key bits no other condition of this match (implied prerequisites included)
        shares, so that no value can contradict another field."""
        vm = self._d.get(f.name)
        if (vm is None or vm[1] is not None or f.member is None or f.regs or f.name in PREREQ_FIELDS
                or f.name == "vlan_vid" or f.byteorder != "big" or _key_limit(f) != f.all_ones):
            return False
        own = f.all_ones << f.key_bit_shift
        if f.key_ints(f.all_ones, f.all_ones) != (own, own):
            return False
        others = 0
        for g, v, m in self.implied().conditions():
            if g is not f and g.member is not None:
                others |= g.key_ints(v, m & _key_limit(g))[1]
        return not others & own

    def substituter(self, fields: Sequence[Field]) -> Callable[..., Match]:
        """A function of values, one per field of FIELDS (each ``substitutable`` here, each
        value within its field's width), giving a copy of this match with those fields matched
        exactly on them instead.  Its key and mask come from this match's by substituting
        those bits; its prerequisites are this match's (they read none of them).  What the
        copies share is worked out here, once (a compiled flow-mod shape keeps one)."""
        key, mask = self.key_and_mask_ints()
        for f in fields:
            key &= ~(f.all_ones << f.key_bit_shift)
        subs = tuple((f.name, f.key_bit_shift) for f in fields)
        d0, pl, ok, new = self._d, self._pl, self._ok, Match._new

        def with_values(*values: int) -> Match:
            d, k = d0.copy(), key
            for (name, shift), v in zip(subs, values):
                d[name] = (v, None)
                k |= v << shift
            return new(d, (k, mask), pl, ok)
        return with_values

    def _key_ints(self) -> tuple[int, int] | None:
        try:
            return self.key_and_mask_ints()
        except MatchError:
            return None            # contradictory: matches no packet

    def overlaps(self, other: Match) -> bool:
        """Whether some packet (flow key and pipeline fields) matches both."""
        a, b = self._key_ints(), other._key_ints()
        if a is None or b is None or (a[0] ^ b[0]) & a[1] & b[1]:
            return False
        (va, ma), (vb, mb) = self.pipeline_ints(), other.pipeline_ints()
        return not (va ^ vb) & ma & mb

    def is_subset_of(self, other: Match) -> bool:
        """Whether every packet matching this matches OTHER too (other is no narrower)."""
        a, b = self._key_ints(), other._key_ints()
        if a is None:
            return True
        if b is None or b[1] & ~a[1] or (a[0] ^ b[0]) & b[1]:
            return False
        (va, ma), (vb, mb) = self.pipeline_ints(), other.pipeline_ints()
        return not (mb & ~ma or (va ^ vb) & mb)


def _put(d: dict, name: str, value: int, mask: int | None) -> None:
    """Validate and store NAME=VALUE/MASK into D (canonical name, masked value)."""
    f = _field(name)
    for what, x in (("value", value), ("mask", mask)):
        if x is not None and not 0 <= x <= f.all_ones:
            raise MatchError(f"{what} {x if 0 <= x <= 0xFFFF else hex(x)} does not fit {f.name} ({f.bits} bits)")
    if mask == f.all_ones:
        mask = None
    if mask is not None and not f.maskable:
        raise MatchError(f"{f.name} is not maskable")
    if f.regs:                       # xreg/xxreg: as the registers they cover, high first
        full = _full(f, mask)
        for i, reg in enumerate(reversed(f.regs)):
            _put(d, reg, (value >> 32 * i) & 0xFFFFFFFF, (full >> 32 * i) & 0xFFFFFFFF)
        return
    if mask == 0:
        d.pop(f.name, None)
        return
    value &= _full(f, mask)
    if f.member is not None and value > _key_limit(f):
        raise MatchError(f"{f.name} value {value} does not fit the datapath flow key (at most {_key_limit(f)})")
    d[f.name] = (value, mask)
