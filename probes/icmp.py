"""ICMP probe: send `count` echo requests to one target, count replies and round trips.

Requests are spaced so the whole run fits in the probe's timeout. Probes are run in sweeps
(`sweep`): every probe with the same socket settings, count, size and timeout sends its requests in
one round over the shared socket of `probes.icmp_engine`, and one reader collects the replies, so a
sweep of 500 targets costs one wake-up per batch of replies, not a task, a socket and a timer per
target. A probe run alone (`run()`, `probe --once`) is a sweep of one: the same code and results.
Optional `source` and `interface` pin the probe to one tunnel path. It must not raise and must not
outlive its timeout; packet bytes live in `probes.icmp_socket`.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import time
from collections.abc import Hashable, Sequence

from probes.icmp_engine import EchoEngine, SocketKey, engine
from probes.icmp_socket import NETWORK_ERRNOS, EchoRequests, ip_header_size
from watchdog.config import IcmpProbeConfig
from watchdog.errors import ProbeFailure
from watchdog.model import ProbeResult

log = logging.getLogger(__name__)

MAX_SPACING = 0.1  # seconds between two requests of one run, at most
CHUNK = 64  # requests of a sweep sent back to back before the reader gets a turn
CHUNK_GAP = 0.002  # seconds between two chunks of one round: a big sweep is no single burst
_ICMP_HEADER = 8
_TOKEN = 8
_MAX_SEQUENCES = 0x4000  # echo requests of one sweep in flight at once, at most


class IcmpProbe:
    """One configured ICMP probe (`type: icmp`)."""

    type = "icmp"

    def __init__(self, config: IcmpProbeConfig) -> None:
        self.config = config
        self.name = config.name
        self.timeout = config.timeout  # the work budget of one run; the scheduler enforces it from outside
        self.target = config.target
        self.address = str(ipaddress.ip_address(config.target))  # as the kernel names a reply's source
        ipv6 = ipaddress.ip_address(config.target).version == 6
        self.socket_key = SocketKey(ipv6, config.mode, config.source, config.interface, config.dont_fragment)
        # Probes with equal keys share one round of requests in a sweep (plain values: hashed often).
        self.sweep_key: Hashable = (ipv6, config.mode, config.source, config.interface, config.dont_fragment)
        self.sweep_key += (config.count, config.size, config.timeout)

    @property
    def spacing(self) -> float:
        """Time between two requests: the last one still has most of the timeout to come back."""
        return min(self.timeout / self.config.count, MAX_SPACING)

    async def run(self) -> ProbeResult:
        return (await sweep([self]))[0]


async def sweep(probes: Sequence[IcmpProbe]) -> list[ProbeResult]:
    """Run each probe once, those of equal `sweep_key` together; results in the order given."""
    groups: dict[Hashable, list[int]] = {}
    for i, probe in enumerate(probes):
        groups.setdefault(probe.sweep_key, []).append(i)
    batches: list[list[int]] = []
    for indexes in groups.values():
        size = max(1, _MAX_SEQUENCES // probes[indexes[0]].config.count)
        batches += [indexes[k : k + size] for k in range(0, len(indexes), size)]
    results: list[ProbeResult | None] = [None] * len(probes)

    async def one(indexes: list[int]) -> None:
        members = [probes[i] for i in indexes]
        for i, result in zip(indexes, await _Sweep(members).run_guarded(), strict=True):
            results[i] = result

    if len(batches) == 1:
        await one(batches[0])
    else:
        await asyncio.gather(*(one(b) for b in batches))
    return [r for r in results if r is not None]


_REPLY, _ERROR = 2, 1


class _Sweep:
    """One round of requests to probes that share a socket, count, size and timeout; the engine's
    reader calls `on_reply` / `on_error` for the sequence numbers it reserved."""

    def __init__(self, probes: list[IcmpProbe]) -> None:
        first = probes[0]
        self.probes = probes
        self.count = first.config.count
        self.timeout = first.timeout
        self.spacing = first.spacing
        self.size = first.config.size
        n = len(probes)
        self.total = n * self.count
        self.token = os.urandom(_TOKEN)
        self.addresses = [p.address for p in probes]
        self.base = 0
        # Per request (probe j's i-th is index j * count + i): send time (0: not sent), round trip, state.
        self.sent_at = [0.0] * self.total
        self.rtt = [0.0] * self.total
        self.back = bytearray(self.total)  # 0 outstanding, _ERROR, _REPLY
        # Per probe.
        self.started = [0.0] * n
        self.last_attempt = [0.0] * n
        self.last_back = [0.0] * n
        self.first_error = [""] * n
        self.send_error = [""] * n
        self.failure: list[str | None] = [None] * n  # an unexpected error: reason `error`
        self.outstanding = 0
        self.sending = True
        self.done: asyncio.Future[None] | None = None

    # ---- the engine's reader -----------------------------------------------------------------

    def on_reply(self, sequence: int, payload: bytes, source: str, now: float) -> None:
        index = (sequence - self.base) & 0xFFFF
        if index >= self.total or self.back[index] == _REPLY or not self.sent_at[index]:
            return
        j = index // self.count
        if payload[:_TOKEN] != self.token or now - self.started[j] > self.timeout:
            return  # someone else's, or too late to count
        if source != self.addresses[j] and _ip(source) != self.addresses[j]:
            return
        self.rtt[index] = now - self.sent_at[index]
        self._answered(index, j, _REPLY, now)

    def on_error(self, sequence: int, error: str, mtu: int) -> None:
        index = (sequence - self.base) & 0xFFFF
        if index >= self.total or self.back[index] or not self.sent_at[index]:
            return
        j = index // self.count
        if not self.first_error[j]:
            self.first_error[j] = error
        self._answered(index, j, _ERROR, time.monotonic())

    def _answered(self, index: int, j: int, how: int, now: float) -> None:
        if not self.back[index]:
            self.outstanding -= 1
        self.back[index] = how
        self.last_back[j] = now
        if not self.outstanding and not self.sending and self.done is not None and not self.done.done():
            self.done.set_result(None)

    # ---- running -----------------------------------------------------------------------------

    async def run_guarded(self) -> list[ProbeResult]:
        start = time.monotonic()
        try:
            return await self.run()
        except ProbeFailure as exc:
            return [ProbeResult.failed(p, start, exc.reason, exc.detail) for p in self.probes]
        except Exception as exc:  # never raise: an unexpected failure is still a result
            log.warning("probes %s: unexpected error: %r", ", ".join(p.name for p in self.probes), exc)
            return [ProbeResult.failed(p, start, "error", str(exc) or type(exc).__name__) for p in self.probes]

    async def run(self) -> list[ProbeResult]:
        echo = engine(self.probes[0].socket_key)
        loop = asyncio.get_running_loop()
        self.base = echo.reserve(self, self.total)
        try:
            await self._send_all(echo)
            self.sending = False
            if self.outstanding:
                self.done = loop.create_future()
                deadline = max(self.started) + self.timeout
                timer = loop.call_at(deadline, _settle, self.done)
                try:
                    await self.done
                finally:
                    timer.cancel()
        finally:
            echo.release(self.base, self.total)
        return [self._judge(j) for j in range(len(self.probes))]

    async def _send_all(self, echo: EchoEngine) -> None:
        overhead = ip_header_size(echo.ipv6) + _ICMP_HEADER + _TOKEN
        packet = EchoRequests(echo.ipv6, echo.identifier, self.token + bytes(max(0, self.size - overhead))).packet
        sendto, monotonic = echo.sock.sendto, time.monotonic
        n, count, base = len(self.probes), self.count, self.base
        sent_at, started, last_attempt, failure = self.sent_at, self.started, self.last_attempt, self.failure
        destinations = [(address, 0) for address in self.addresses]
        start = monotonic()
        for i in range(count):
            for chunk, first in enumerate(range(0, n, CHUNK)):
                delay = start + i * self.spacing + chunk * CHUNK_GAP - monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif chunk:
                    await asyncio.sleep(0)  # let the reader drain the replies of the last chunk
                # No await below: the reader cannot run (nor count replies) until the chunk is out.
                sent = 0
                for j in range(first, min(first + CHUNK, n)):
                    if failure[j] is not None:
                        continue
                    index = j * count + i
                    now = monotonic()
                    if not i:
                        started[j] = now
                    last_attempt[j] = now
                    sent_at[index] = now
                    try:
                        sendto(packet((base + index) & 0xFFFF), destinations[j])
                    except BlockingIOError:
                        pass  # send buffer full: counts as lost
                    except OSError as exc:
                        sent_at[index] = 0.0
                        echo.send_failed(exc)
                        self._send_failed(j, exc)
                        continue
                    sent += 1
                self.outstanding += sent

    def _send_failed(self, j: int, exc: OSError) -> None:
        probe = self.probes[j]
        if exc.errno == errno.EMSGSIZE:  # DF set and larger than a local or cached path MTU
            self.send_error[j] = f"{self.size}-byte packet with DF does not fit the path MTU"
        elif exc.errno in NETWORK_ERRNOS:
            self.send_error[j] = f"cannot send to {probe.target}: {exc.strerror or exc}"
        else:
            log.warning("probe %s: unexpected error: %r", probe.name, exc)
            self.failure[j] = str(exc) or type(exc).__name__

    def _judge(self, j: int) -> ProbeResult:
        probe, count = self.probes[j], self.count
        if count == 1:  # the common case at scale, without the slicing below
            at, how = self.sent_at[j], self.back[j]
            sent = 1 if at else 0
            latencies: tuple[float, ...] = (self.rtt[j],) if how == _REPLY else ()
            if not at:
                ended = self.last_attempt[j]
            elif how:
                ended = self.last_back[j]
            else:
                ended = self.started[j] + self.timeout
        else:
            first = j * count
            sent_at = self.sent_at[first : first + count]
            back = self.back[first : first + count]
            sent = count - sent_at.count(0.0)
            latencies = tuple(
                rtt for rtt, how in zip(self.rtt[first : first + count], back, strict=True) if how == _REPLY
            )
            if not sent:
                ended = self.last_attempt[j]
            elif all(how for how, at in zip(back, sent_at, strict=True) if at):
                ended = max(self.last_back[j], self.last_attempt[j])
            else:
                ended = self.started[j] + self.timeout
        received = len(latencies)
        duration = ended - self.started[j]
        failure = self.failure[j]
        if failure is not None:
            return ProbeResult(probe.name, probe.type, probe.target, False, duration, "error", failure, (), sent)
        lost = count - received
        first_error = self.first_error[j]
        send_error = self.send_error[j]
        if received == 0 and (send_error or first_error):
            detail = send_error or f"{lost}/{count} lost: {first_error}"
            return ProbeResult(probe.name, probe.type, probe.target, False, duration, "network_error", detail, (), sent)
        why = f" ({first_error})" if first_error else ""
        if received == 0:
            detail = f"{lost}/{count} lost{why}"
            return ProbeResult(probe.name, probe.type, probe.target, False, duration, "timeout", detail, (), sent)
        if received == 1:
            one = f"{latencies[0] * 1000:.3f}"
            rtt = f"rtt min/avg/max {one}/{one}/{one} ms"
        else:
            low, mean, high = min(latencies), sum(latencies) / received, max(latencies)
            rtt = f"rtt min/avg/max {low * 1000:.3f}/{mean * 1000:.3f}/{high * 1000:.3f} ms"
        detail = f"{lost}/{count} lost{why}, {rtt}" if lost else f"{received}/{count} received, {rtt}"
        return ProbeResult(probe.name, probe.type, probe.target, True, duration, "", detail, latencies, sent, received)


def _settle(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.split("%", 1)[0]))
    except ValueError:
        return value
