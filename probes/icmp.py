"""ICMP probe: send `count` echo requests to one target, count replies and round trips.

Requests are spaced so the whole run fits in the probe's timeout; replies are read with
`loop.add_reader` on a non-blocking socket (no thread per packet). Optional `source` and
`interface` pin the probe to one tunnel path. It must not raise and must not outlive its timeout;
socket kinds and packet bytes live in `probes.icmp_socket`.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import random
import time
from dataclasses import dataclass, field

from probes.guard import guarded
from probes.icmp_socket import (
    NETWORK_ERRNOS,
    EchoSocket,
    echo_request,
    ip_header_size,
    open_echo_socket,
    parse,
    read_error_queue,
    set_dont_fragment,
)
from watchdog.config import IcmpProbeConfig
from watchdog.errors import ProbeFailure
from watchdog.model import ProbeResult

log = logging.getLogger(__name__)

MAX_SPACING = 0.1  # seconds between two requests of one run, at most
_ICMP_HEADER = 8


@dataclass
class _Run:
    """State of one run, shared between the sender and the socket's reader callback."""

    echo: EchoSocket
    target: str
    token: bytes
    first_sequence: int
    count: int
    sent_at: dict[int, float] = field(default_factory=dict)  # sequence -> monotonic send time
    rtts: dict[int, float] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)  # sequence -> ICMP error quoting it
    send_error: str = ""
    sending_done: bool = False
    # Set once every request sent got its answer (a reply or an ICMP error): no need to wait longer.
    all_back: asyncio.Event = field(default_factory=asyncio.Event)

    def sequence(self, i: int) -> int:
        return (self.first_sequence + i) & 0xFFFF

    def on_readable(self) -> None:
        if self.echo.mode == "unprivileged":
            # A queued ICMP error keeps the socket signalled until it is read from the error queue.
            for reply in read_error_queue(self.echo.sock, self.echo.ipv6):
                if reply.sequence in self.sent_at and reply.sequence not in self.rtts:
                    self.errors.setdefault(reply.sequence, reply.error)
            self.check_done()
        for _ in range(4 * self.count + 16):  # bounded: a busy host must not starve the loop
            try:
                data, address = self.echo.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # the pending socket error, reported once; its details came from the queue
            self._handle(data, str(address[0]))

    def _handle(self, data: bytes, source: str) -> None:
        raw = self.echo.mode == "raw"
        reply = parse(data, source, self.echo.ipv6, raw)
        if reply is None or reply.sequence not in self.sent_at or reply.sequence in self.rtts:
            return
        # Raw sockets see every ICMP message of the host; datagram sockets only their own, with the
        # identifier chosen by the kernel, so there the payload token is the proof.
        if raw and reply.identifier != self.echo.identifier:
            return
        if reply.error:
            self.errors.setdefault(reply.sequence, reply.error)
            self.check_done()
            return
        if reply.payload[: len(self.token)] != self.token or (raw and _ip(reply.source) != _ip(self.target)):
            return
        self.rtts[reply.sequence] = time.monotonic() - self.sent_at[reply.sequence]
        self.check_done()

    def check_done(self) -> None:
        if self.sending_done and set(self.sent_at) <= set(self.rtts) | set(self.errors):
            self.all_back.set()


class IcmpProbe:
    """One configured ICMP probe (`type: icmp`)."""

    type = "icmp"

    def __init__(self, config: IcmpProbeConfig) -> None:
        self.config = config
        self.name = config.name
        self.timeout = config.timeout  # the work budget of one run; the scheduler enforces it from outside
        self.target = config.target
        self._ipv6 = ipaddress.ip_address(config.target).version == 6
        self._logged_mode = ""

    @property
    def spacing(self) -> float:
        """Time between two requests: the last one still has most of the timeout to come back."""
        return min(self.timeout / self.config.count, MAX_SPACING)

    async def run(self) -> ProbeResult:
        start = time.monotonic()
        return await guarded(self, start, self._run(start), ProbeResult.failed)

    async def _run(self, start: float) -> ProbeResult:
        source = self.config.source
        if source is not None and (ipaddress.ip_address(source).version == 6) != self._ipv6:
            raise ProbeFailure(
                "network_error", f"source {source} and target {self.target} are of different IP versions"
            )
        echo = open_echo_socket(self._ipv6, self.config.mode, source, self.config.interface)
        if echo.mode != self._logged_mode:  # once per probe, and again only if it changes
            self._logged_mode = echo.mode
            log.info("probe %s: using %s ICMP sockets (%s)", self.name, echo.mode, echo.why)
        if self.config.dont_fragment:
            try:
                set_dont_fragment(echo)
            except BaseException:
                echo.close()
                raise
        loop = asyncio.get_running_loop()
        run = _Run(
            echo=echo,
            target=self.target,
            token=os.urandom(8),
            first_sequence=random.randrange(0x10000),
            count=self.config.count,
        )
        deadline = start + self.timeout
        loop.add_reader(echo.sock.fileno(), run.on_readable)
        try:
            await self._send_all(run, start)
            run.sending_done = True
            run.check_done()
            remaining = deadline - time.monotonic()
            if remaining > 0 and run.sent_at:
                try:
                    await asyncio.wait_for(run.all_back.wait(), remaining)
                except TimeoutError:
                    pass
        finally:
            loop.remove_reader(echo.sock.fileno())
            echo.close()
        return self._judge(run, start)

    async def _send_all(self, run: _Run, start: float) -> None:
        overhead = ip_header_size(run.echo.ipv6) + _ICMP_HEADER + len(run.token)
        payload_pad = bytes(max(0, self.config.size - overhead))
        for i in range(run.count):
            delay = start + i * self.spacing - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sequence = run.sequence(i)
            packet = echo_request(run.echo.ipv6, run.echo.identifier, sequence, run.token + payload_pad)
            run.sent_at[sequence] = time.monotonic()
            try:
                run.echo.sock.sendto(packet, (self.target, 0))
            except BlockingIOError:
                continue  # send buffer full: counts as lost
            except OSError as exc:
                del run.sent_at[sequence]
                if exc.errno == errno.EMSGSIZE:  # DF set and larger than a local or cached path MTU
                    run.send_error = f"{self.config.size}-byte packet with DF does not fit the path MTU"
                    continue
                if exc.errno not in NETWORK_ERRNOS:
                    raise
                run.send_error = f"cannot send to {self.target}: {exc.strerror or exc}"

    def _judge(self, run: _Run, start: float) -> ProbeResult:
        sent, received = len(run.sent_at), len(run.rtts)
        latencies = tuple(run.rtts[s] for s in sorted(run.rtts, key=lambda s: run.sent_at[s]))
        lost = self.config.count - received
        first_error = next(iter(run.errors.values()), "")
        if received == 0 and (run.send_error or first_error):
            detail = run.send_error or f"{lost}/{self.config.count} lost: {first_error}"
            return ProbeResult.of(self, start, False, "network_error", detail, sent=sent)
        why = f" ({first_error})" if first_error else ""
        if received == 0:
            return ProbeResult.of(self, start, False, "timeout", f"{lost}/{self.config.count} lost{why}", sent=sent)
        rtt = f"rtt min/avg/max {_ms(min(latencies))}/{_ms(sum(latencies) / received)}/{_ms(max(latencies))} ms"
        if lost:
            detail = f"{lost}/{self.config.count} lost{why}, {rtt}"
        else:
            detail = f"{received}/{self.config.count} received, {rtt}"
        return ProbeResult.of(self, start, True, "", detail, latencies=latencies, sent=sent, received=received)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.split("%", 1)[0]))
    except ValueError:
        return value
