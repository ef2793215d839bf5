"""Aggregate decoded IKE traffic per peer pair: messages, fragmentation, rekeys, unanswered requests.

Fed one frame at a time (offline from `pcapfile`, live from `sniffer`), on the caller's clock. Each IKE
message counts once: an IP-fragmented datagram on its first fragment, an RFC 7383 message on the first
SKF fragment seen of its set. A retransmission is another transmission and counts again (like tshark),
so a rekey that keeps failing shows up as a growing count. Rekeys are inferred from cleartext only
(everything inside SK is encrypted), and every inference says how it was made:
- CREATE_CHILD_SA request whose SK first inner payload is Notify (N(REKEY_SA) comes first) -> child rekey;
- a request starting with SA (33) is an IKE rekey or a new Child SA: it stays "unconfirmed" until a
  new IKE SPI pair whose first message has message ID 0 and is not IKE_SA_INIT/IKE_SESSION_RESUME
  confirms it as an IKE rekey (only a rekey creates an SA without IKE_SA_INIT). A new SPI pair alone
  is no rekey: a sniffer started mid-life meets established SAs too, the responder's first own
  request at message ID 0.
A fragmented CREATE_CHILD_SA request with no response (same SPIs + message ID, R flag) within 30 s is
the Cloud VPN failure and is flagged. All tables are bounded. This module does no I/O.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from probes.ike import wire
from probes.ike.fragments import Entry, FragmentTracker, Limits

PeerLabel = Callable[[bytes, bytes], "str | None"]

REQUEST_TIMEOUT = 30.0
_ZERO_SPI = b"\x00" * 8
_TABLE_CAP = 16384
# Per-pair counters cost ~3 kB each: a capture of a scan (300,000 pairs) would need ~1 GB. The first
# MAX_PEER_PAIRS pairs are tracked one by one; later ones are summed in the OTHERS bucket, and their
# number is counted exactly up to MAX_FOLDED_COUNTED (a lower bound past that).
MAX_PEER_PAIRS = 1000
MAX_FOLDED_COUNTED = 1 << 16
OTHERS = "others"


@dataclass
class PeerStats:
    """Counters for one peer pair (offline) or one configured peer (live)."""

    messages: Counter[str] = field(default_factory=Counter)
    ip_fragmented: Counter[str] = field(default_factory=Counter)
    ikev2_fragmented: Counter[str] = field(default_factory=Counter)
    largest: dict[str, int] = field(default_factory=dict)
    over_mtu: Counter[str] = field(default_factory=Counter)
    rekeys: Counter[str] = field(default_factory=Counter)
    rekeys_unconfirmed: int = 0
    incomplete_datagrams: int = 0
    unanswered_fragmented_requests: int = 0


def ip_text(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def pair_label(src: bytes, dst: bytes) -> str:
    """Offline label: both addresses, in a stable order, so both directions land together."""
    a, b = sorted((ip_text(src), ip_text(dst)))
    return f"{a} <-> {b}"


def peer_matcher(peers: list[str]) -> PeerLabel:
    """Live label: the configured peer the packet is to or from (None: not a watched peer)."""
    packed = {ipaddress.ip_address(p).packed: str(ipaddress.ip_address(p)) for p in peers}

    def label(src: bytes, dst: bytes) -> str | None:
        return packed.get(dst) or packed.get(src)

    return label


class Analyzer:
    """See the module docstring. Not thread-safe: the caller serialises feed/tick/read."""

    def __init__(
        self,
        mtu: int,
        label: PeerLabel = pair_label,
        *,
        limits: Limits | None = None,
        max_events: int = 1000,
        request_timeout: float = REQUEST_TIMEOUT,
        wall_offset: float = 0.0,
        max_peers: int = MAX_PEER_PAIRS,
    ) -> None:
        self.mtu = mtu
        self.max_peers = max_peers
        self.tracked_peers = 0
        self._folded: set[int] = set()  # hashes of the labels summed in OTHERS
        self.folded_exact = True
        self._label_fn = label
        self._labels: dict[tuple[bytes, bytes], str | None] = {}
        self.max_events = max_events
        self.request_timeout = request_timeout
        self.wall_offset = wall_offset
        self.tracker = FragmentTracker(self._fragments_done, limits)
        self.peers: dict[str, PeerStats] = {}
        # The latest events; older ones fall off (counted) so a long-running sniffer stays bounded.
        self.events: deque[dict[str, Any]] = deque(maxlen=max_events)
        self.events_dropped = 0
        self.packets = 0
        self.ike_datagrams = 0
        self.esp_in_udp = 0
        self.keepalives = 0
        self.not_peer = 0
        self.malformed: Counter[str] = Counter()
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self._skf: OrderedDict[tuple[bytes, bytes, int, int], tuple[int, set[int]]] = OrderedDict()
        self._known_sas: OrderedDict[tuple[bytes, bytes], str] = OrderedDict()
        self._classified: OrderedDict[tuple[bytes, bytes, int, int], bool] = OrderedDict()
        self._unconfirmed: dict[str, deque[tuple[float, str]]] = {}
        # (spi_i, spi_r, msgid, I flag of the requester) -> [first ts, label, kind, datagrams, header]
        self._pending: OrderedDict[tuple[bytes, bytes, int, int], list[Any]] = OrderedDict()

    # -- input -------------------------------------------------------------------------------
    def feed(self, ts: float, linktype: int, data: bytes) -> None:
        """Account one captured frame with timestamp ts (seconds, on this analyzer's clock)."""
        self.packets += 1
        r = wire.decode(data, linktype)
        if r is None:
            return
        if isinstance(r, int):
            if r == wire.ESP_IN_UDP:
                self.esp_in_udp += 1
            else:
                self.keepalives += 1
            return
        self._note_time(ts)
        if r[0] == wire.WHOLE:
            self.tracker.expire(ts)
            self._expire_requests(ts)
            self._message(ts, r[1], False)
        elif r[0] == wire.NEXT:
            self.tracker.piece(ts, r[1], r[2], r[3], r[4])
            self._expire_requests(ts)
        elif r[0] == wire.FIRST:
            hdr = r[4]
            self.tracker.first(ts, r[1], r[2], hdr)
            self._expire_requests(ts)
            if hdr is not None:
                self._message(ts, hdr, True)
        else:
            self.malformed[r[1]] += 1

    def tick(self, now: float) -> None:
        """Expire fragment sets and overdue requests when no packets arrive (live timer)."""
        self.tracker.expire(now)
        self._expire_requests(now)

    def finish(self, end: float | None = None) -> None:
        """End of capture at time `end` (default: the last IKE-related packet).

        Overdue requests become unanswered, the others "pending at end"; open fragment sets incomplete.
        """
        if end is None or (self.last_ts is not None and self.last_ts > end):
            end = self.last_ts if self.last_ts is not None else 0.0
        self._expire_requests(end)
        self.tracker.flush("capture_end")
        for ts, label, kind, count, h in self._pending.values():
            self._event(
                ts,
                "fragmented_request_pending_at_end",
                label,
                h,
                fragmentation=kind,
                datagrams=count,
                note=f"capture ended {end - ts:.1f} s after the request, before the {self.request_timeout:.0f} s"
                " deadline",
            )
        self._pending.clear()

    # -- totals --------------------------------------------------------------------------------
    @property
    def messages(self) -> int:
        return sum(sum(p.messages.values()) for p in self.peers.values())

    @property
    def ip_fragmented_total(self) -> int:
        return sum(sum(p.ip_fragmented.values()) for p in self.peers.values())

    # -- internals -----------------------------------------------------------------------------
    def _note_time(self, ts: float) -> None:
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts

    def _label(self, h: wire.IkeHeader) -> str | None:
        k = (h.src, h.dst)
        try:
            return self._labels[k]
        except KeyError:
            pass
        label = self._label_fn(h.src, h.dst)
        if label is not None and label not in self.peers:
            label = self._admit(label)
        if len(self._labels) > 4096:
            self._labels.clear()
        self._labels[k] = label
        return label

    def _admit(self, label: str) -> str:
        """A label seen for the first time: tracked on its own while there is room, else OTHERS."""
        if self.tracked_peers < self.max_peers:
            self.tracked_peers += 1
            self.peers[label] = PeerStats()
            return label
        if len(self._folded) < MAX_FOLDED_COUNTED:
            self._folded.add(hash(label))
        else:
            self.folded_exact = False
        if OTHERS not in self.peers:
            self.peers[OTHERS] = PeerStats()
        return OTHERS

    @property
    def peers_folded(self) -> int:
        """Distinct peer pairs summed in OTHERS (at least this many when not `folded_exact`)."""
        return len(self._folded)

    def _stats(self, label: str) -> PeerStats:
        ps = self.peers.get(label)
        if ps is None:
            ps = self.peers[label] = PeerStats()
        return ps

    def _message(self, ts: float, h: wire.IkeHeader, ip_fragmented: bool) -> None:
        label = self._label(h)
        if label is None:
            self.not_peer += 1
            return
        self.ike_datagrams += 1
        ps = self._stats(label)
        name = h.exchange_name
        skf = h.version != 0x10 and h.next_payload == wire.PAYLOAD_SKF
        new = True
        if skf:
            key = (h.spi_i, h.spi_r, h.msgid, h.flags & wire.FLAG_RESPONSE)
            seen = self._skf.get(key)
            if seen is None or seen[0] != h.frag_total or h.frag_num in seen[1]:
                self._skf[key] = (h.frag_total, {h.frag_num})
                self._skf.move_to_end(key)
                _cap(self._skf)
            else:
                seen[1].add(h.frag_num)
                new = False
        if new:
            ps.messages[name] += 1
            if skf:
                ps.ikev2_fragmented[name] += 1
                self._event(ts, "ikev2_fragmented", label, h, fragments=h.frag_total)
        if ip_fragmented:
            ps.ip_fragmented[name] += 1
        if h.length > ps.largest.get(name, 0):
            ps.largest[name] = h.length
        if not ip_fragmented and h.datagram_bytes > self.mtu:
            ps.over_mtu[name] += 1
            self._event(ts, "fragmentation_risk", label, h, mtu=self.mtu)
        if h.version != 0x10:
            self._track_sa(ts, h, label, ps)
            self._track_request(ts, h, label, ip_fragmented, skf)

    def _track_sa(self, ts: float, h: wire.IkeHeader, label: str, ps: PeerStats) -> None:
        if h.spi_r != _ZERO_SPI:
            pair = (h.spi_i, h.spi_r)
            if pair in self._known_sas:
                self._known_sas.move_to_end(pair)
            else:
                self._known_sas[pair] = label
                _cap(self._known_sas)
                if h.msgid == 0 and h.exchange not in (34, 38):
                    # A new SA at message ID 0 is a rekey only if the rekey request was seen: a live
                    # sniffer also meets established SAs at message ID 0 (the responder's first own
                    # request, e.g. a DPD INFORMATIONAL after a cut), which no rekey created.
                    pending = self._unconfirmed.get(label)
                    if pending and ts - pending[-1][0] <= 120.0:
                        pending.pop()
                        ps.rekeys_unconfirmed -= 1
                        ps.rekeys["ike"] += 1
                        self._event(
                            ts,
                            "rekey",
                            label,
                            h,
                            sa="ike",
                            inferred_from="create_child_sa_starting_with_sa_then_new_spi_pair",
                        )
        if h.exchange == 36 and not h.flags & wire.FLAG_RESPONSE and h.inner in (41, 33):
            # Each side numbers its own requests: the I flag tells whose message ID this is.
            rkey = (h.spi_i, h.spi_r, h.msgid, h.flags & wire.FLAG_INITIATOR)
            if rkey in self._classified:
                return  # a retransmission or a later fragment of the same request
            self._classified[rkey] = True
            _cap(self._classified)
            if h.inner == wire.PAYLOAD_NOTIFY:
                ps.rekeys["child"] += 1
                self._event(ts, "rekey", label, h, sa="child", inferred_from="create_child_sa_starting_with_notify")
            else:
                ps.rekeys_unconfirmed += 1
                self._unconfirmed.setdefault(label, deque(maxlen=64)).append((ts, label))
                self._event(
                    ts, "rekey", label, h, sa="ike_or_new_child", inferred_from="create_child_sa_starting_with_sa"
                )

    def _track_request(self, ts: float, h: wire.IkeHeader, label: str, ip_frag: bool, skf: bool) -> None:
        if h.exchange != 36:
            return
        if h.flags & wire.FLAG_RESPONSE:
            # A response carries the I flag of its sender, the opposite of the request's.
            self._pending.pop((h.spi_i, h.spi_r, h.msgid, (h.flags & wire.FLAG_INITIATOR) ^ wire.FLAG_INITIATOR), None)
            return
        key = (h.spi_i, h.spi_r, h.msgid, h.flags & wire.FLAG_INITIATOR)
        if not (ip_frag or skf):
            return
        p = self._pending.get(key)
        if p is None:
            self._pending[key] = [ts, label, "ip" if ip_frag else "ikev2", 1, h]
            _cap(self._pending)
        else:
            p[3] += 1
            if ip_frag:
                p[2] = "ip"

    def _expire_requests(self, now: float) -> None:
        pending = self._pending
        limit = now - self.request_timeout
        while pending:
            key = next(iter(pending))
            ts, label, kind, count, h = pending[key]
            if ts >= limit:
                break
            del pending[key]
            if kind == "ip":
                self._stats(label).unanswered_fragmented_requests += 1
            self._event(
                ts,
                "unanswered_fragmented_request",
                label,
                h,
                fragmentation=kind,
                datagrams=count,
                note=f"no response within {self.request_timeout:.0f} s",
            )

    def _fragments_done(self, entry: Entry, outcome: str) -> None:
        h = entry.ike
        if h is None:
            return
        label = self._label(h)
        if label is None:
            return
        if outcome != "complete":
            self._stats(label).incomplete_datagrams += 1
        self._event(
            entry.first_ts,
            "ip_fragmented",
            label,
            h,
            fragments=entry.fragments,
            complete=outcome == "complete",
            outcome=outcome,
        )

    def _event(self, ts: float, kind: str, label: str, h: wire.IkeHeader, **extra: Any) -> None:
        if len(self.events) == self.max_events:
            self.events_dropped += 1
        ev: dict[str, Any] = {
            "time": round(ts + self.wall_offset, 6),
            "type": kind,
            "peer": label,
            "src": ip_text(h.src),
            "dst": ip_text(h.dst),
            "exchange": h.exchange_name,
            "response": h.is_response,
            "spi_i": h.spi_i.hex(),
            "spi_r": h.spi_r.hex(),
            "message_id": h.msgid,
            "ike_length": h.length,
            "datagram_bytes": h.datagram_bytes,
        }
        if h.family == 4 and kind == "ip_fragmented":
            ev["ip_id"] = h.ip_id
        elif kind == "ip_fragmented":
            ev["fragment_id"] = h.ip_id
        ev.update(extra)
        self.events.append(ev)


def _cap(table: OrderedDict[Any, Any]) -> None:
    while len(table) > _TABLE_CAP:
        table.popitem(last=False)
