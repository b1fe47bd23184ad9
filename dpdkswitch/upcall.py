"""Miss handling: the datapath's upcalls, in batches, turned into megaflows and packet-outs.

A batch is taken from the upcall ring and grouped by flow key.  Each group is translated once
(ofproto.xlate) and the translation's side effects are committed through their owners
(``Translation.commit``: NORMAL's MAC learning, the bridge's missed lookups, the packets' stats
to rules, tables, groups, mirrors and patch ports); the new megaflows are installed as one batch
of datapath flow puts, and the missed packets are then sent by packet-out with the same actions,
so the first packet of every new flow is forwarded.  A miss that a megaflow installed already
covers (queued before it went in) is not translated again: its translation's cache replays the
stats.  Userspace upcalls (the controller action, an expired TTL) become packet-in events;
those of control protocols' frames (STP's BPDUs: their cookie has ``odp.CONTROL_COOKIE``,
and the datapath queues them on a reserved ring it drains first) go to their protocol through
the bridge's ``Specials.deliver`` (ofproto/special.py).
A miss over its bridge's ``OFPM_SLOWPATH`` meter (when a controller set one) is dropped
before translation and counted (``metered``).
Every installed megaflow is remembered as a ``Ukey`` (ukey.py; for the revalidator).
While table 0's rules with kept translations are compiled into C (ofproto/ctable.py), a batch
is first offered to it (``Datapath.upcalls_setup``): the misses it answers are looked up, put
and executed there, and come back as rows that become ukeys here, each frame credited to its
rule; the other upcalls go the way above.

Contract: runs on the control thread's loop (woken by the datapath's eventfd); one handle()
call takes at most ``max_batch`` upcalls so the loop stays responsive.  Cost: one translation
per distinct flow in the batch, one flow_put_many (one C call), one packet-out per packet; a
miss set up in C costs its share of one C call and a ukey.
"""
from __future__ import annotations

import errno
from collections import defaultdict
from dataclasses import dataclass
from time import perf_counter

from .datapath import UPCALL_BATCH, Datapath, Upcall, odp
from .flowkey import KEY_SIZE
from .ofproto.fields import BY_NAME
from .ofproto.ctable import KeptTable
from .ofproto.pipeline import OFPM_SLOWPATH, Pipeline
from .ofproto.special import SpecialIn
from .ofproto.xlate import (FLOW_SAMPLE_COOKIE, IPFIX_COOKIE, SFLOW_COOKIE, FlowSampleIn, PacketIn, Translator,
                            megaflow_mask)
from .ukey import Ukey, Ukeys, megaflow_ufid

EXACT = b"\xff" * KEY_SIZE          # the mask of every megaflow while megaflows are off
TCP_FLAGS = BY_NAME["tcp_flags"]
EXACT_INT = int.from_bytes(EXACT, "big")
FLAGS_BYTE = KEY_SIZE - 1 - TCP_FLAGS.key_bit_shift // 8    # the key byte of the TCP flags' low 8 bits
assert TCP_FLAGS.key_bit_shift % 8 == 0 and TCP_FLAGS.byteorder == "big"
MAX_MASKS = 4096                     # megaflow masks remembered by their wildcards (UpcallHandler._masks)


@dataclass
class UpcallStats:
    upcalls: int = 0
    translations: int = 0
    covered: int = 0                 # misses an installed megaflow already covered (queued before it)
    installed: int = 0
    flow_limit_hits: int = 0         # forwarded, but no flow installed: the limit was reached
    put_errors: int = 0
    packet_ins: int = 0
    errors: int = 0
    metered: int = 0                 # misses the bridge's OFPM_SLOWPATH meter dropped
    sflow_samples: int = 0           # sFlow samples taken from the PMDs' sample rings
    ipfix_samples: int = 0           # frames sampled for IPFIX (bridge-level and sample actions)
    special: int = 0                 # control protocols' frames delivered (BPDUs, ...)
    c_setups: int = 0                # misses set up in C from table 0's kept rules (ofproto/ctable.py)


@dataclass
class PacketInEvent:
    pi: PacketIn
    data: bytes
    in_port: int                     # OpenFlow port, in the bridge that sent it (pi.bridge)
    key: bytes


class UpcallHandler:
    """The upcalls of one datapath, for every bridge on it (TRANSLATOR knows their pipelines)."""

    def __init__(self, dp: Datapath, pipeline: Pipeline, translator: Translator, flow_limit: int = 200000,
                 on_packet_in=None, max_batch: int = 1024):
        self.dp = dp
        self.p = pipeline
        self.xlate = translator
        self.ukeys = Ukeys(flow_limit)                 # the megaflows it installed
        self.stats = UpcallStats()
        self.on_packet_in = on_packet_in or (lambda ev: None)
        self.packet_in_hooks: dict[str, object] = {}   # bridge name -> its packet-in consumer
        self.max_batch = max_batch
        self.megaflows = True
        self.sflow_drain = None                         # sFlow's agents: takes the sample rings' records, returns how many (sflow.py)
        self.cost_s = 20e-6                             # seconds an upcall takes, smoothed (udpif sizes batches by it)
        self.ipfix_hooks: dict[str, object] = {}        # bridge name -> its IPFIX exporter's sampled (ipfix.py)
        self._masks: dict[int, tuple[bytes, int]] = {}  # a translation's wildcards -> its megaflow mask (bytes, int)
        self.kept_table = KeptTable(translator)         # table 0's kept rules in C (misses set up without Python)
        self._c_masks: dict[bytes, tuple[bytes, int]] = {}  # a C setup's mask -> the shared mask (bytes, int)

    @property
    def flow_limit(self) -> int:
        """Megaflows installed at most; misses beyond it are forwarded, not cached."""
        return self.ukeys.limit

    @flow_limit.setter
    def flow_limit(self, n: int) -> None:
        self.ukeys.limit = n

    def clear(self) -> None:
        """Every megaflow left the datapath (a flush)."""
        self.ukeys.clear()

    def handle(self, limit: int | None = None) -> int:
        """Take up to LIMIT upcalls (max_batch at most), after sFlow's samples (the PMDs' sample
        rings, to the agents in one C call); returns how many were handled, samples included."""
        sampled = 0
        if self.sflow_drain is not None:
            sampled = self.sflow_drain()
            self.stats.sflow_samples += sampled
        want = min(limit or self.max_batch, self.max_batch)
        metering = any(p.slow_meters for p in self.xlate.pipelines)
        table = self.kept_table.usable() if self.megaflows and not metering else None
        n_c = 0
        if table is not None:
            rows, ups = self.dp.upcalls_setup(table, want, self.ukeys.limit - len(self.ukeys))
            n_c = len(rows)
            if rows:
                self._c_setups(rows)
        else:
            ups = self._take(want)
        if not ups:
            self.stats.upcalls += n_c
            return sampled + n_c
        self.stats.upcalls += len(ups) + n_c
        misses: dict[bytes, list[Upcall]] = defaultdict(list)
        now_ns = self.dp.now_ns
        for u in ups:
            if u.type == "action":
                if u.cookie & SFLOW_COOKIE:                # not sent up (the sample rings): dropped
                    u.free()
                elif u.cookie & (IPFIX_COOKIE | FLOW_SAMPLE_COOKIE):
                    self._ipfix(u)
                else:
                    self._packet_in(u)
                continue
            if metering and not self.xlate.pipeline_of(u.in_port).meter_admit(OFPM_SLOWPATH, u.len, now_ns):
                self.stats.metered += 1
                u.free()
                continue
            misses[u.key].append(u)
        translations, t = self.stats.translations, perf_counter()
        planned, puts = self._translate(misses, now_ns)
        self._install(puts)
        for members, actions in planned:             # the missed packets themselves
            for u in members:
                u.execute(actions)
        if self.megaflows and not metering:
            self.kept_table.note_misses(self.stats.translations - translations, perf_counter() - t)
        return sampled + len(ups) + n_c

    def _c_setups(self, rows: list[tuple]) -> None:
        """The rows of misses C set up (``Datapath.upcalls_setup``): each one's ukey, its frame
        counted for its rule (``XlateCache.push_stats``, as a translated miss's commit); a put
        that found its megaflow in already counts for that megaflow's ukey, as a covered miss."""
        kt, ukeys, st, masks = self.kept_table, self.ukeys, self.stats, self._c_masks
        now_ns = self.dp.now_ns
        now = now_ns / 1e9
        if len(masks) > MAX_MASKS:
            masks.clear()
        p, version, entries, likes, shapes = kt.p, kt.version, kt.entries, kt.likes, kt.rule_shapes
        indexed, current, kept_like = ukeys.indexed, self._current, Translator.kept_like
        counted = 0
        for lo, hi, rid, res, n, dp_in, key, masked, mask in rows:
            ufid = lo | hi << 64
            flags = key[FLAGS_BYTE]                        # the TCP flags' low byte, as _translate's
            if res == 0:
                # the rule's kept translation (its own, or one made from its shape's:
                # Translator.kept_like, without hashing its instructions again)
                e = entries[rid]
                kept = e.kept
                if kept is None or kept.version != version or kept.dp_in_port != dp_in:
                    kept = kept_like(p, e, likes[(shapes[rid], dp_in)])
                e.credit(1, n, now)                    # its commit: the stats of one missed frame
                counted += 1
                got = masks.get(mask)
                if got is None:
                    got = masks[mask] = (ukeys.mask_of(mask), int.from_bytes(mask, "big"))
                uk = ukeys[ufid] = Ukey(ufid, masked, got[0], kept.encoded, kept.visits, now_ns, key, 1, n)
                uk.tcp_flags = flags
                indexed(uk, got[1])
                continue
            uk = ukeys.get(ufid) if res == -errno.EEXIST else None
            if uk is not None and current(uk):       # its megaflow went in before (this batch, or queued before it)
                uk.visits.push_stats(1, n, now, missed=True)
                uk.missed_packets += 1
                uk.missed_bytes += n
                uk.tcp_flags |= flags
                st.c_setups += 1
                continue
            kt.kept_of(rid, dp_in).visits.push_stats(1, n, now, missed=True)
            st.c_setups += 1
            if res == -errno.ENOSPC:
                st.flow_limit_hits += 1
            elif res != -errno.EEXIST:
                st.put_errors += 1
        if counted:       # the rest of the installed rows' commits, in one go (XlateCache.push_stats)
            p.count_lookups(missed=counted)
            p.tables[0].count(counted, counted)
            st.installed += counted
            st.c_setups += counted

    def handle_control(self) -> int:
        """The control protocols' frames waiting on the reserved ring, to their protocols (before
        the protocols' timers run: a frame that came in time is not taken for a silent peer);
        returns how many."""
        n = 0
        while True:
            ups = self.dp.control_upcalls(256)
            if not ups:
                return n
            self.stats.upcalls += len(ups)
            for u in ups:
                self._packet_in(u)
            n += len(ups)

    def _take(self, limit: int) -> list[Upcall]:
        ups: list[Upcall] = []
        while len(ups) < limit:
            want = min(UPCALL_BATCH, limit - len(ups))
            got = self.dp.upcalls(want)
            ups += got
            if len(got) < want:                          # the rings are empty
                break
        return ups

    def _translate(self, misses: dict[bytes, list[Upcall]], now_ns: int):
        """Each key's actions, its side effects committed, and the new megaflows to install:
        ([(upcalls, actions)], [ukey])."""
        now = now_ns / 1e9
        planned: list[tuple[list[Upcall], bytes]] = []
        puts: list[tuple[Ukey, int]] = []            # (ukey, its mask as an int)
        fresh = Ukeys()                               # this batch's megaflows, indexed as made
        masks = self._masks
        if len(masks) > MAX_MASKS:
            masks.clear()
        for key, members in misses.items():
            n = len(members)
            nbytes = members[0].len if n == 1 else sum(u.len for u in members)
            k = int.from_bytes(key, "big")
            covered = fresh.covering(k)
            if covered is None and self.ukeys.index:
                covered = self._installed_covering(k)
                self.stats.covered += covered is not None
            flags = k >> TCP_FLAGS.key_bit_shift & 0xFF   # the missed frames' (a TCP flow's SYN comes up so)
            if covered is not None:           # a megaflow installed (maybe by this batch) covers it
                covered.visits.push_stats(n, nbytes, now, missed=True)
                covered.missed_packets += n
                covered.missed_bytes += nbytes
                covered.tcp_flags |= flags
                planned.append((members, covered.actions))
                continue
            t = self.xlate.translate_miss(key, k)
            self.stats.translations += 1
            if t.__class__ is tuple:          # table 0's rule's kept translation: (Kept, wildcards)
                kept, wc = t
                visits = kept.visits
                visits.push_stats(n, nbytes, now, missed=True)     # its commit: stats alone
                actions = kept.encoded if kept.encoded is not None else kept.encode()
                wck = wc.key
            else:
                t.commit(now, n, nbytes)
                actions = t.encoded()
                if t.error or t.peer_errors:
                    self.stats.errors += 1
                if t.error:
                    planned.append((members, actions))
                    continue
                visits, wck = t.visits, t.wc.key
            planned.append((members, actions))
            if self.megaflows:
                got = masks.get(wck)
                if got is None:
                    mask = self.ukeys.mask_of(megaflow_mask(wck))
                    got = masks[wck] = (mask, int.from_bytes(mask, "big"))
                mask, m = got
                masked = (k & m).to_bytes(KEY_SIZE, "big")
            else:
                mask, m, masked = EXACT, EXACT_INT, key
            ufid = megaflow_ufid(masked, mask)
            if ufid in self.ukeys:
                continue
            if len(self.ukeys) >= self.ukeys.limit:
                self.stats.flow_limit_hits += 1
                continue
            uk = self.ukeys[ufid] = Ukey(ufid, masked, mask, actions, visits, now_ns, key,
                                         missed_packets=n, missed_bytes=nbytes)
            uk.tcp_flags = flags
            fresh.indexed(uk, m)
            puts.append((uk, m))
        return planned, puts

    def _installed_covering(self, k: int) -> Ukey | None:
        """An installed megaflow that covers key K and whose translation still holds as far as
        can be told without translating again: one bridge, no MAC table in it, and no rule,
        group or port change since (its pipeline's version).  Frames queued before their
        megaflow went in come up as misses all the same; they need no translation of their own."""
        uk = self.ukeys.covering(k)
        return uk if uk is not None and self._current(uk) else None

    @staticmethod
    def _current(uk: Ukey) -> bool:
        """Whether UK's translation still holds as far as can be told without translating
        again: one bridge, no MAC table in it, no rule, group or port change since.  A frame
        C set up whose megaflow was in already counts for UK only then (``_c_setups``): else a
        rule that came in since would have forwarded it and the old one be credited."""
        v = uk.visits
        return len(v) == 1 and not v[0].macs and v[0].version == v[0].pipeline.version

    def _install(self, puts: list[tuple[Ukey, int]]) -> None:
        if not puts:
            return
        uks = [p[0] for p in puts]
        results = self.dp.flow_put_many([u.ufid for u in uks], [u.key for u in uks], [u.mask for u in uks],
                                        [u.actions for u in uks])
        for (uk, m), res in zip(puts, results):
            if res is None:
                self.stats.installed += 1
                self.ukeys.indexed(uk, m)
                continue
            del self.ukeys[uk.ufid]
            if res[0] == errno.ENOSPC:                # the datapath's own limit
                self.stats.flow_limit_hits += 1
            elif res[0] != errno.EEXIST:              # not the same megaflow there already
                self.stats.put_errors += 1

    def _ipfix(self, u: Upcall) -> None:
        """An IPFIX sample: to the exporter of the bridge that sampled it (its input port's for a
        bridge-level sample; the sample action's pipeline's for a flow sample), if it has one."""
        self.stats.ipfix_samples += 1
        fs = None
        if u.cookie & FLOW_SAMPLE_COOKIE:
            fs = self.xlate.registry.get(u.cookie & 0xFFFFFFFF)
            bridge = fs.bridge if isinstance(fs, FlowSampleIn) else None
        else:
            bridge = self.xlate.pipeline_of(u.in_port).name
        hook = self.ipfix_hooks.get(bridge)
        if hook is not None:
            hook(u, fs)
        u.free()

    def _packet_in(self, u: Upcall) -> None:
        if u.cookie & odp.CONTROL_COOKIE:
            self._special(u)
            return
        pi = self.xlate.registry.get(u.cookie)
        if pi is not None:
            self.stats.packet_ins += 1
            hook = self.packet_in_hooks.get(pi.bridge, self.on_packet_in)
            hook(PacketInEvent(pi, u.data, pi.in_port, u.key))
        u.free()

    def _special(self, u: Upcall) -> None:
        """A control protocol's frame: to that protocol of the bridge it was claimed in."""
        ctx = self.xlate.registry.get(u.cookie & ~odp.CONTROL_COOKIE)
        data = u.data
        u.free()
        if not isinstance(ctx, SpecialIn):
            self.stats.errors += 1
            return
        for p in self.xlate.pipelines:
            if p.name == ctx.bridge:
                if p.special.deliver(ctx.protocol, ctx.in_port, data, self.dp.now_ns / 1e9):
                    self.stats.special += 1
                return
