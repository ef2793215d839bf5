"""Path-MTU probe: the largest packet that crosses the path to a target with DF set.

A tunnel whose inner MTU shrank (an underlay change, a missing MSS clamp; Cloud VPN drops what does
not fit) passes every ping and stalls every large transfer. Each run searches between `min_mtu` and
`max_mtu` in a few rounds of DF echo requests sent together: a reply proves a size fits; a
"fragmentation needed" / "packet too big" error or EMSGSIZE proves it does not and names the MTU to
try next; silence (a black hole, the Cloud VPN case) counts as too big unless a larger size came
back. Rounds narrow the gap until the answer is exact or the timeout is spent. Requests go out on
the shared DF socket of `probes.icmp_engine` (packet bytes from `probes.icmp_socket`); like every
probe it must not raise nor outlive its timeout.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import time
from dataclasses import dataclass, field

from probes.guard import guarded
from probes.icmp_engine import EchoEngine, SocketKey, engine
from probes.icmp_socket import NETWORK_ERRNOS, echo_request, ip_header_size
from watchdog.config import PmtuProbeConfig
from watchdog.model import ProbeResult

PROBES_PER_ROUND = 8
MAX_ROUNDS = 5
_ICMP_HEADER = 8


@dataclass
class _Round:
    """One round's requests (sequence -> packet size) and what came back; the shared socket's reader
    calls `on_reply` / `on_error` for the sequence numbers the round reserved."""

    token: bytes
    sizes: dict[int, int] = field(default_factory=dict)
    fits: set[int] = field(default_factory=set)  # sizes that came back
    too_big: dict[int, int] = field(default_factory=dict)  # size -> MTU the error named (0: none)
    errors: list[str] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def answered(self) -> set[int]:
        return self.fits | set(self.too_big)

    def check_done(self) -> None:
        if set(self.sizes.values()) <= self.answered():
            self.done.set()

    def on_reply(self, sequence: int, payload: bytes, source: str, now: float) -> None:
        size = self.sizes.get(sequence)
        if size is not None and payload[: len(self.token)] == self.token:
            self.fits.add(size)
            self.check_done()

    def on_error(self, sequence: int, error: str, mtu: int) -> None:
        size = self.sizes.get(sequence)
        if size is None:
            return
        if mtu or "fragmentation needed" in error or "too big" in error or "too long" in error.lower():
            self.too_big[size] = mtu
        else:
            self.errors.append(error)
            self.too_big.setdefault(size, 0)  # unreachable: that size did not cross either
        self.check_done()


class PmtuProbe:
    """One configured path-MTU probe (`type: pmtu`)."""

    type = "pmtu"

    def __init__(self, config: PmtuProbeConfig) -> None:
        self.config = config
        self.name = config.name
        self.timeout = config.timeout  # the work budget of one run; the scheduler enforces it from outside
        self.target = config.target
        ipv6 = ipaddress.ip_address(config.target).version == 6
        self.socket_key = SocketKey(ipv6, config.mode, config.source, config.interface, True)

    async def run(self) -> ProbeResult:
        start = time.monotonic()
        return await guarded(self, start, self._run(start), lambda _p, s, r, d: self._result(s, False, r, d))

    def _result(
        self, start: float, success: bool, reason: str, detail: str, mtu: int = 0, sent: int = 0, received: int = 0
    ) -> ProbeResult:
        floor = self.config.expect_min_mtu or 0
        return ProbeResult.of(
            self,
            start,
            success,
            reason,
            detail,
            sent=sent,
            received=received,
            path_mtu_bytes=mtu,
            expect_min_mtu_bytes=floor,
        )

    async def _run(self, start: float) -> ProbeResult:
        cfg = self.config
        echo = engine(self.socket_key)  # DF set, the cached path MTU ignored: each packet tests the path
        deadline = start + self.timeout
        good, bad = 0, cfg.max_mtu + 1  # largest size that crossed, smallest that did not
        hints: set[int] = set()
        sent = received = rounds = 0
        errors: list[str] = []
        candidates = _spread(cfg.min_mtu - 1, cfg.max_mtu + 1, PROBES_PER_ROUND, include_high=True)
        while candidates and rounds < MAX_ROUNDS and time.monotonic() < deadline:
            rounds += 1
            left = MAX_ROUNDS - rounds + 1
            wait = (deadline - time.monotonic()) / left
            done = await self._round(echo, candidates, wait)
            sent += len(candidates)
            received += len(done.fits)
            errors += done.errors
            if done.fits:
                good = max(good, *done.fits)
            for size, mtu in done.too_big.items():
                if size > good:
                    bad = min(bad, size)
                if mtu:
                    hints.add(mtu)
            # Silence is "too big" only above the largest size that came back (below it, loss).
            for size in set(candidates) - done.answered():
                if size > good:
                    bad = min(bad, size)
            if good == 0 and cfg.min_mtu in set(candidates) - done.fits:
                break  # not even the smallest size crossed: the path, not its MTU, is broken
            candidates = sorted({h for h in hints if good < h < bad})[:1]
            candidates += _spread(good or cfg.min_mtu - 1, bad, PROBES_PER_ROUND - len(candidates))
            candidates = sorted(set(candidates) - {good})
            if bad <= good + 1:
                break
        if good == 0:
            why = f": {errors[0]}" if errors else ""
            reason = "network_error" if errors else "timeout"
            detail = f"no DF packet of {cfg.min_mtu}-{cfg.max_mtu} bytes came back from {self.target}{why}"
            return self._result(start, False, reason, detail, 0, sent, received)
        exact = "" if bad == good + 1 or good == cfg.max_mtu else f" (not above {bad - 1})"
        detail = f"path MTU {good} bytes{exact}, {sent} probes in {rounds} rounds"
        if cfg.expect_min_mtu is not None and good < cfg.expect_min_mtu:
            detail += f"; below the expected {cfg.expect_min_mtu}"
        return self._result(start, True, "", detail, good, sent, received)

    async def _round(self, echo: EchoEngine, sizes: list[int], wait: float) -> _Round:
        state = _Round(token=os.urandom(8))
        first = echo.reserve(state, len(sizes))
        try:
            for i, size in enumerate(sizes):
                sequence = (first + i) & 0xFFFF
                state.sizes[sequence] = size
                pad = bytes(max(0, size - ip_header_size(echo.ipv6) - _ICMP_HEADER - len(state.token)))
                packet = echo_request(echo.ipv6, echo.identifier, sequence, state.token + pad)
                try:
                    echo.send(packet, self.target)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if exc.errno == errno.EMSGSIZE:  # bigger than a local device or cached path MTU
                        state.too_big[size] = 0
                    elif exc.errno in NETWORK_ERRNOS:
                        state.errors.append(f"cannot send to {self.target}: {exc.strerror or exc}")
                        state.too_big.setdefault(size, 0)
                    else:
                        raise
            state.check_done()
            if wait > 0:
                try:
                    await asyncio.wait_for(state.done.wait(), wait)
                except TimeoutError:
                    pass
        finally:
            echo.release(first, len(sizes))
        return state


def _spread(low: int, high: int, count: int, *, include_high: bool = False) -> list[int]:
    """Up to `count` sizes strictly between `low` and `high` (and `high - 1` when asked), evenly
    spaced, always including the top of the gap so an unchanged path is confirmed in one round."""
    top = high - 1
    if count <= 0 or top <= low:
        return []
    span = top - low
    if span <= count:
        return list(range(low + 1, top + 1))
    picks = {low + 1 + round(i * (span - 1) / (count - 1)) for i in range(count)} if count > 1 else {top}
    if include_high:
        picks.add(top)
    return sorted(picks)
