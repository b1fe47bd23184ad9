"""Table 0's rules with kept translations, compiled into C for flow setup without Python per miss.

Python keeps the one definition of OpenFlow semantics: this module copies what the classifier
(classifier.py) and the kept translations (xlate.py's ``Kept``, by shape) already decided into
a ``datapath.OfTable``: table 0's subtables in lookup order with their stage masks, highest
priorities, prefix-tracking fields and the prefixes rules have on them, each masked key's best
rule (its id here, its shape: an index of its instructions), and each shape's kept datapath
actions per input port.  The C lookup consults the same bits as ``Classifier._lookup`` and
declines where Python would do more (prefix or ports tracking's partial bits, recirculation,
fragments, a port the bridge does not own, a rule with no kept actions); the upcall handler
hands a batch to ``Datapath.upcalls_setup``, which installs the megaflows it answers and
executes their frames, and makes ukeys of the rows (upcall.py).

The table is built whole at one pipeline version and used only at that version, while nothing
but the tables decides a miss (``first_lookup_applies``) in a datapath of one bridge: any
rule, group, meter or port change moves the version and drops it.  It is built again once
``REBUILD_MISSES`` misses (or one per ``REBUILD_PER_RULES`` rules, whichever is more) went
through Python at the new version and took as long as the last build did: a storm of misses
pays for a build, a stream of flow-mods during a storm does not pay one per change.  A kept translation made after the build adds its actions
(``Translator.on_kept``).

Contract: the control thread only (the upcall handler's).  Cost: a build is one pass over
table 0's rules (a few µs each); ``usable`` is a few attribute reads.
"""
from __future__ import annotations

import time

from ..datapath import DatapathError, OfTable
from ..flowkey import KEY_SIZE
from .classifier import KEY_BITS, TRIE_ETH, TRIE_FIELDS, Wildcards
from .fields import BY_NAME
from .pipeline import Pipeline
from .xlate import Kept, Translator, first_lookup_applies

REBUILD_MISSES = 64          # misses through Python at a version before the table is built for it
REBUILD_PER_RULES = 64       # ... or one per this many rules of table 0, whichever is more
_IN_PORT, _RECIRC, _FRAG, _ETH = BY_NAME["in_port"], BY_NAME["recirc_id"], BY_NAME["ip_frag"], BY_NAME["eth_type"]


def _mask_bytes(*fields) -> bytes:
    wc = Wildcards()
    for f in fields:
        wc.unwildcard(f)
    return wc.key.to_bytes(KEY_SIZE, "big")


def _byte_ofs(f) -> int:
    return KEY_SIZE - (f.key_bit_shift + f.bits) // 8


class KeptTable:
    """The C table of TRANSLATOR's bridge (its first pipeline), built and dropped as above.
    ``entries[id]``: the rule a row's id names."""

    def __init__(self, translator: Translator):
        self.xlate = translator
        self.table: OfTable | None = None
        self.p: Pipeline | None = None
        self.version = -1                  # the pipeline version it was built at
        self.entries: list = []            # rule id -> FlowEntry
        self.rule_shapes: list[int] = []   # rule id -> its shape id
        self.shapes: dict = {}             # instructions -> shape id
        self.likes: dict[tuple[int, int], Kept] = {}   # (shape id, dp port) -> a kept translation of it
        self.builds = 0
        self.build_failures = 0          # builds the datapath refused (no memory): Python answered
        self._misses = 0                   # misses through Python at _seen
        self._spent = 0.0                  # ... and the seconds they took
        self.build_s = 0.0                 # the last build's
        self._seen = -1
        translator.on_kept = self._kept

    def usable(self) -> OfTable | None:
        """The table, if it holds for the bridge now."""
        t = self.table
        if t is None:
            return None
        p = self.p
        if p.version != self.version or len(self.xlate.pipelines) != 1 or not first_lookup_applies(p):
            self.drop()
            return None
        return t

    def drop(self) -> None:
        if self.table is not None:
            self.table.close()
        self.table, self.entries, self.likes = None, [], {}

    def note_misses(self, n: int, seconds: float) -> None:
        """N misses went through Python's translation in SECONDS: build the table once enough did
        at one version, and (after a first build) once they took as long as the last build did,
        so that flow-mods arriving during a storm cost at most twice what the best choice of
        building or not would have (each change drops the table)."""
        p = self.xlate.p
        if p.version != self._seen:
            self._seen, self._misses, self._spent = p.version, 0, 0.0
        self._misses += n
        self._spent += seconds
        if (self.table is None and len(self.xlate.pipelines) == 1 and first_lookup_applies(p)
                and self._misses >= max(REBUILD_MISSES, p.tables[0].cls.n_rules // REBUILD_PER_RULES)
                and self._spent >= self.build_s):
            t = time.perf_counter()
            try:
                self.build(p)
            except DatapathError:       # no memory for it: the misses go on through Python
                self.drop()
                self.build_failures += 1
            self.build_s = time.perf_counter() - t

    def build(self, p: Pipeline) -> None:
        """Compile table 0 of P at its current version."""
        self.drop()
        t = OfTable(_mask_bytes(_IN_PORT), _mask_bytes(_RECIRC, _FRAG), _mask_bytes(BY_NAME["tcp_src"], BY_NAME["tcp_dst"]),
                    _mask_bytes(_FRAG), _byte_ofs(_ETH))
        seen = set()
        for port in p.ports.values():
            if 0 <= port.dp_port < 256 and port.dp_port not in seen:     # as port_by_dp: the first
                seen.add(port.dp_port)
                t.port(port.dp_port, port.ofport)
        cls = p.tables[0].cls
        cls.flush()                        # its tries and prefix counts, with every rule in them
        for i, f in enumerate(TRIE_FIELDS):
            t.trie(i, _byte_ofs(f), f.bits // 8, TRIE_ETH[f.name])
            n, shift = f.bits // 8, f.bits
            for plen, prefixes in cls.tries[f.name].count.items():
                t.prefixes(i, plen, [(pre << (shift - plen)).to_bytes(n, "big") for pre in prefixes])
        trie_of = {id(cls.tries[f.name]): i for i, f in enumerate(TRIE_FIELDS)}
        entries, rshapes, shapes, likes, by_id = [], [], self.shapes, {}, {}
        shapes.clear()
        version = p.version
        for st in cls.order:
            sid = t.subtable(st.mask.to_bytes(KEY_SIZE, "big"), [m.to_bytes(KEY_SIZE, "big") for m in st.stage_masks],
                             st.max_priority, [(trie_of[id(ps)], plen) for (ps, plen), n in zip(st.prefixes, st.prefix_rules) if n], st.ports is not None)
            keys, pris, ids, shs = [], [], [], []
            for k, lst in st.rules.items():
                if k >> KEY_BITS or not lst:            # the first table's lookup is at metadata 0
                    continue
                r = lst[0]
                e = r.data
                ins = e.instructions
                sh = by_id.get(id(ins))          # rules from one flow-mod shape share their instructions
                if sh is None:
                    sh = shapes.get(ins)
                    if sh is None:
                        sh = shapes[ins] = len(shapes)
                    by_id[id(ins)] = sh          # (the entries hold INS for the build's length)
                kept = e.kept
                if kept is not None and kept.version == version and (sh, kept.dp_in_port) not in likes:
                    likes[(sh, kept.dp_in_port)] = kept
                keys.append((k & st.mask).to_bytes(KEY_SIZE, "big"))
                pris.append(r.priority)
                ids.append(len(entries))
                shs.append(sh)
                entries.append(e)
                rshapes.append(sh)
            t.rules(sid, keys, pris, ids, shs)
        for instructions, dp_in, kept in self.xlate.shape_kepts(p):
            sh = shapes.get(instructions)
            if sh is not None:
                likes.setdefault((sh, dp_in), kept)
        for (sh, dp_in), kept in likes.items():
            t.kept(sh, dp_in, kept.encode())
        self.table, self.p, self.version, self.entries, self.likes = t, p, version, entries, likes
        self.rule_shapes = rshapes
        self.builds += 1

    def _kept(self, p: Pipeline, instructions, dp_in: int, kept: Kept) -> None:
        """Translator.on_kept: a shape's kept translation made after the build."""
        if self.table is None or p is not self.p or kept.version != self.version:
            return
        sh = self.shapes.get(instructions)
        if sh is not None and (sh, dp_in) not in self.likes:
            self.likes[(sh, dp_in)] = kept
            try:
                self.table.kept(sh, dp_in, kept.encode())
            except DatapathError:       # as a failed build: the table goes, Python answers
                self.drop()
                self.build_failures += 1

    def kept_of(self, rule_id: int, dp_in: int) -> Kept:
        """The kept translation of the rule a row names, from DP_IN (its own, or made from its shape's)."""
        return self.xlate.kept_for(self.p, self.entries[rule_id], dp_in,
                                   self.likes.get((self.rule_shapes[rule_id], dp_in)))
