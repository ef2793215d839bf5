"""A bounded IP fragment tracker: which fragmented IKE datagrams completed, which never did.

It records only offsets and lengths, never payload bytes: the first fragment already carries the UDP
and IKE headers, so attributing a datagram to an exchange needs no reassembly. Keys are IPv4
(src, dst, ip id) for UDP and IPv6 (src, dst, fragment id). A set is complete when its pieces cover
[0, total) in any order; total comes from the UDP length of the first fragment or from the end of the
last (MF=0) fragment. Non-first fragments arriving before their first are kept as orphans and adopted
when it arrives.

Everything is bounded (keys, accounted bytes, keys per source, pieces per key) with LRU eviction and an
idle timeout (30 s IPv4 like Linux `ipfrag_time`, 60 s IPv6 per RFC 8200) on the caller's clock, so
a fragment flood cannot grow it. scapy's defrag has no such bounds and fails on reversed order, so it
must not be used here. This module must not parse packets; `wire.decode` feeds it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from probes.ike.wire import IkeHeader

FragKey = tuple[int, bytes, bytes, int]


@dataclass(frozen=True)
class Limits:
    """Caps; the defaults mirror Linux (ipfrag_high_thresh 4 MiB) and RFC 791/8200 timeouts."""

    max_keys: int = 4096
    max_bytes: int = 4 << 20
    max_keys_per_source: int = 256
    max_pieces: int = 64
    timeout_v4: float = 30.0
    timeout_v6: float = 60.0


@dataclass
class FragmentCounters:
    """Bookkeeping that the report and the tests read; all monotonic except `keys`/`bytes`."""

    completed: int = 0
    incomplete: int = 0
    orphans_expired: int = 0
    evicted: int = 0
    overlaps: int = 0
    duplicates: int = 0
    rejected_per_source: int = 0
    too_many_pieces: int = 0
    inconsistent: int = 0
    non_ike_fragments: int = 0
    peak_keys: int = 0
    peak_bytes: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class Entry:
    """One datagram being tracked."""

    __slots__ = ("key", "last", "first_ts", "pieces", "bytes", "last_end", "ike")

    def __init__(self, key: FragKey, now: float) -> None:
        self.key = key
        self.last = now
        self.first_ts = now
        self.pieces: dict[int, int] = {}
        self.bytes = 0
        self.last_end: int | None = None
        self.ike: IkeHeader | None = None

    @property
    def fragments(self) -> int:
        return len(self.pieces)


# Called with (entry, outcome) for every datagram whose first fragment was IKE: outcome is
# "complete", or why it never completed ("timeout", "evicted", "too_many_pieces", "inconsistent",
# "capture_end").
DoneCallback = Callable[[Entry, str], None]


class FragmentTracker:
    """See the module docstring. Not thread-safe: the caller serialises access."""

    def __init__(self, on_done: DoneCallback, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.on_done = on_done
        self.counters = FragmentCounters()
        self._tables: dict[int, OrderedDict[FragKey, Entry]] = {4: OrderedDict(), 6: OrderedDict()}
        self._ignored: OrderedDict[FragKey, float] = OrderedDict()
        self._per_source: dict[bytes, int] = {}
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._tables[4]) + len(self._tables[6])

    # -- input -------------------------------------------------------------------------------
    def first(self, now: float, key: FragKey, piece_len: int, ike: IkeHeader | None) -> None:
        """The offset-0 fragment; ike is None when it is UDP but not IKE (ESP-in-UDP, DNS...)."""
        self.expire(now)
        table = self._tables[key[0]]
        if ike is None:
            self.counters.non_ike_fragments += 1
            entry = table.pop(key, None)
            if entry is not None:
                self._forget(entry)
            self._ignored[key] = now
            self._ignored.move_to_end(key)
            if len(self._ignored) > self.limits.max_keys:
                self._ignored.popitem(last=False)
            return
        self._ignored.pop(key, None)
        entry = self._get_or_create(now, key)
        if entry is None:
            return
        entry.ike = ike
        entry.first_ts = now
        self._add_piece(entry, 0, piece_len, True)

    def piece(self, now: float, key: FragKey, offset: int, piece_len: int, more: bool) -> None:
        """A non-first fragment (offset > 0)."""
        self.expire(now)
        ignored_at = self._ignored.get(key)
        if ignored_at is not None:
            if now - ignored_at <= self._timeout(key[0]):
                self.counters.non_ike_fragments += 1
                return
            del self._ignored[key]
        entry = self._get_or_create(now, key)
        if entry is not None:
            self._add_piece(entry, offset, piece_len, more)

    # -- time ----------------------------------------------------------------------------------
    def expire(self, now: float) -> None:
        """Drop sets idle longer than their family's timeout (oldest first; tables are in LRU order)."""
        for family, table in self._tables.items():
            if not table:
                continue
            limit = now - self._timeout(family)
            while table:
                entry = next(iter(table.values()))
                if entry.last >= limit:
                    break
                table.popitem(last=False)
                self._finish(entry, "timeout")
        while self._ignored:
            key, ts = next(iter(self._ignored.items()))
            if ts >= now - self._timeout(key[0]):
                break
            self._ignored.popitem(last=False)

    def flush(self, reason: str = "capture_end") -> None:
        """Give up on everything still pending (end of a capture, or sniffer stop)."""
        for table in self._tables.values():
            while table:
                _, entry = table.popitem(last=False)
                self._finish(entry, reason)
        self._ignored.clear()

    # -- internals -----------------------------------------------------------------------------
    def _timeout(self, family: int) -> float:
        return self.limits.timeout_v4 if family == 4 else self.limits.timeout_v6

    def _get_or_create(self, now: float, key: FragKey) -> Entry | None:
        table = self._tables[key[0]]
        entry = table.get(key)
        if entry is not None:
            table.move_to_end(key)
            entry.last = now
            return entry
        src = key[1]
        if self._per_source.get(src, 0) >= self.limits.max_keys_per_source:
            self.counters.rejected_per_source += 1
            return None
        while len(self) >= self.limits.max_keys:
            self._evict_oldest()
        entry = Entry(key, now)
        table[key] = entry
        self._per_source[src] = self._per_source.get(src, 0) + 1
        if len(self) > self.counters.peak_keys:
            self.counters.peak_keys = len(self)
        return entry

    def _add_piece(self, entry: Entry, offset: int, length: int, more: bool) -> None:
        end = offset + length
        old = entry.pieces.get(offset)
        if old is not None and old == end:
            self.counters.duplicates += 1
            return
        for o, e in entry.pieces.items():
            if o < end and offset < e:
                self.counters.overlaps += 1
                break
        if old is None and len(entry.pieces) >= self.limits.max_pieces:
            self._drop(entry, "too_many_pieces")
            self.counters.too_many_pieces += 1
            return
        if old is None or end > old:
            entry.pieces[offset] = end
            grow = end - offset if old is None else end - old
            entry.bytes += grow
            self.bytes += grow
        if not more:
            if entry.last_end is not None and entry.last_end != end:
                self.counters.inconsistent += 1
                self._drop(entry, "inconsistent")
                return
            entry.last_end = end
        total = self._total(entry)
        if total is not None:
            if entry.last_end is not None and entry.ike is not None and entry.last_end != entry.ike.udp_len:
                self.counters.inconsistent += 1
                self._drop(entry, "inconsistent")
                return
            if entry.bytes >= total and _covered(entry.pieces) >= total:
                self._drop(entry, "complete")
                return
        if self.bytes > self.counters.peak_bytes:
            self.counters.peak_bytes = self.bytes
        while self.bytes > self.limits.max_bytes and len(self):
            self._evict_oldest()

    @staticmethod
    def _total(entry: Entry) -> int | None:
        if entry.last_end is not None:
            return entry.last_end
        if entry.ike is not None:
            return int(entry.ike.udp_len)
        return None

    def _evict_oldest(self) -> None:
        heads = [(t[next(iter(t))].last, fam) for fam, t in self._tables.items() if t]
        if not heads:
            return
        _, fam = min(heads)
        _, entry = self._tables[fam].popitem(last=False)
        self.counters.evicted += 1
        self._finish(entry, "evicted")

    def _drop(self, entry: Entry, outcome: str) -> None:
        self._tables[entry.key[0]].pop(entry.key, None)
        self._finish(entry, outcome)

    def _forget(self, entry: Entry) -> None:
        self.bytes -= entry.bytes
        src = entry.key[1]
        left = self._per_source.get(src, 1) - 1
        if left:
            self._per_source[src] = left
        else:
            self._per_source.pop(src, None)

    def _finish(self, entry: Entry, outcome: str) -> None:
        self._forget(entry)
        if entry.ike is None:
            if outcome != "complete":
                self.counters.orphans_expired += 1
            return
        if outcome == "complete":
            self.counters.completed += 1
        else:
            self.counters.incomplete += 1
            self.counters.reasons[outcome] = self.counters.reasons.get(outcome, 0) + 1
        self.on_done(entry, outcome)


def _covered(pieces: dict[int, int]) -> int:
    """Length of the contiguous coverage starting at offset 0."""
    covered = 0
    for o in sorted(pieces):
        if o > covered:
            break
        e = pieces[o]
        if e > covered:
            covered = e
    return covered
