"""Long-lived shared ICMP echo sockets: one per (event loop, IP version, mode, source, interface, DF).

Every ICMP and path-MTU probe with the same settings sends through one socket; its one reader hands
each reply or quoted ICMP error to whoever reserved that echo sequence number (on raw sockets, which
see every ICMP message of the host, only messages carrying the socket's identifier count). The socket
choice is logged once per socket, `net.ipv4.ping_group_range` is read once per socket, and sockets
unused for a while are closed. Payload tokens and target addresses are the callers' to check
(`probes.icmp`, `probes.pmtu`); packet bytes live in `probes.icmp_socket`. Nothing here blocks: the
sockets are non-blocking and the reader is bounded per wake-up.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
import struct
import time
import weakref
from dataclasses import dataclass
from typing import Protocol

from probes.icmp_socket import (
    ICMP6_ECHO_REPLY,
    ICMP_ECHO_REPLY,
    EchoSocket,
    open_echo_socket,
    parse,
    read_error_queue,
    set_dont_fragment,
)
from watchdog.errors import ProbeFailure

log = logging.getLogger(__name__)

IDLE_CLOSE = 120.0  # seconds a socket may go unused before it is closed
_REAP_EVERY = 30.0
_RECEIVE_BUFFER = 1 << 20  # room for a sweep's replies between two reads (capped by net.core.rmem_max)
_READS_PER_WAKEUP = 4096  # bounded: a flood of ICMP must not starve the event loop
_ID_SEQ = struct.Struct("!HH")
# A bound device that went away (or was recreated with a new index) fails every later send on that
# socket: open a new one next time.
_STALE_ERRNOS = {errno.ENODEV, errno.ENXIO}


class Listener(Protocol):
    """What reserved some sequence numbers: told about each reply or ICMP error quoting them."""

    def on_reply(self, sequence: int, payload: bytes, source: str, now: float) -> None: ...

    def on_error(self, sequence: int, error: str, mtu: int) -> None: ...


@dataclass(frozen=True, slots=True)
class SocketKey:
    """What decides which socket a request goes out on."""

    ipv6: bool
    mode: str  # as configured: auto | unprivileged | raw
    source: str | None
    interface: str | None
    dont_fragment: bool

    def describe(self) -> str:
        parts = ["IPv6" if self.ipv6 else "IPv4"]
        if self.source is not None:
            parts.append(f"source {self.source}")
        if self.interface is not None:
            parts.append(f"interface {self.interface}")
        if self.dont_fragment:
            parts.append("DF")
        return ", ".join(parts)


class EchoEngine:
    """One open echo socket, its reader, and the sequence numbers in flight on it."""

    def __init__(self, key: SocketKey, echo: EchoSocket, loop: asyncio.AbstractEventLoop) -> None:
        self.key = key
        self.echo = echo
        self.sock = echo.sock
        self.ipv6 = echo.ipv6
        self.raw = echo.mode == "raw"
        self.identifier = echo.identifier
        self.loop = loop
        self.pending: dict[int, Listener] = {}
        self.last_used = time.monotonic()
        self.stale = False
        self.closed = False
        self._next = random.randrange(0x10000)
        self._reply_type = ICMP6_ECHO_REPLY if echo.ipv6 else ICMP_ECHO_REPLY
        self._strip_ip = self.raw and not echo.ipv6  # raw IPv4 sockets deliver the IP header too
        loop.add_reader(self.sock.fileno(), self._on_readable)

    @property
    def mode(self) -> str:
        return self.echo.mode

    def reserve(self, listener: Listener, count: int) -> int:
        """`count` consecutive free sequence numbers (mod 2^16) for `listener`; the first is returned."""
        if not 0 < count <= 0x8000:
            raise ProbeFailure("error", f"cannot put {count} echo requests in flight on one socket")
        pending = self.pending
        base = self._next
        for _ in range(0x10000 // count + 1):
            if all(((base + i) & 0xFFFF) not in pending for i in range(count)):
                for i in range(count):
                    pending[(base + i) & 0xFFFF] = listener
                self._next = (base + count) & 0xFFFF
                self.last_used = time.monotonic()
                return base
            base = (base + count) & 0xFFFF
        raise ProbeFailure("error", f"no {count} free echo sequence numbers on the {self.key.describe()} socket")

    def release(self, base: int, count: int) -> None:
        pending = self.pending
        for i in range(count):
            pending.pop((base + i) & 0xFFFF, None)
        self.last_used = time.monotonic()
        if self.stale and not pending:
            self.close()

    def send(self, packet: bytes, target: str) -> None:
        """Send one request; OSError as the kernel reports it (a stale socket is replaced later)."""
        try:
            self.sock.sendto(packet, (target, 0))
        except OSError as exc:
            self.send_failed(exc)
            raise

    def send_failed(self, exc: OSError) -> None:
        """A send on this socket failed: after some errors the next run gets a new socket."""
        if exc.errno in _STALE_ERRNOS:
            self.stale = True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if not self.loop.is_closed():
                self.loop.remove_reader(self.sock.fileno())
        finally:
            self.sock.close()

    def _on_readable(self) -> None:
        pending = self.pending
        if self.echo.mode == "unprivileged":
            # Datagram sockets report ICMP errors only through the error queue, which keeps the
            # socket readable until it is drained.
            for queued in read_error_queue(self.sock, self.ipv6):
                owner = pending.get(queued.sequence)
                if owner is not None:
                    owner.on_error(queued.sequence, queued.error, queued.mtu)
        recvfrom = self.sock.recvfrom
        raw, strip, reply_type, identifier = self.raw, self._strip_ip, self._reply_type, self.identifier
        now = time.monotonic()
        for _ in range(_READS_PER_WAKEUP):
            try:
                data, address = recvfrom(2048)  # only the headers and the token are read
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # the pending socket error, reported once; its details came from the queue
            offset = (data[0] & 0x0F) * 4 if strip and data else 0
            if len(data) >= offset + 8 and data[offset] == reply_type:
                ident, sequence = _ID_SEQ.unpack_from(data, offset + 4)
                owner = pending.get(sequence)
                if owner is not None and (not raw or ident == identifier):
                    owner.on_reply(sequence, data[offset + 8 :], address[0], now)
                continue
            reply = parse(data, str(address[0]), self.ipv6, raw)
            if reply is None or not reply.error or (raw and reply.identifier != identifier):
                continue
            owner = pending.get(reply.sequence)
            if owner is not None:
                owner.on_error(reply.sequence, reply.error, reply.mtu)


_engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[SocketKey, EchoEngine]] = (
    weakref.WeakKeyDictionary()
)


def engine(key: SocketKey) -> EchoEngine:
    """The running loop's socket for `key`, opened (and its choice logged) on first use.

    Raises ProbeFailure when no socket can be opened (permission, a bad source or interface); that
    is not remembered, so a fixed setup works on the next run."""
    loop = asyncio.get_running_loop()
    engines = _engines.get(loop)
    if engines is None:
        engines = _engines[loop] = {}
        loop.create_task(_keeper(loop, engines), name="icmp-sockets")
    found = engines.get(key)
    if found is not None and not found.stale and not found.closed:
        return found
    if found is not None:
        del engines[key]
        if not found.pending:
            found.close()
    echo = open_echo_socket(key.ipv6, key.mode, key.source, key.interface)
    try:
        if key.dont_fragment:
            set_dont_fragment(echo)
        try:
            echo.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
        except OSError:
            pass
        opened = EchoEngine(key, echo, loop)
    except BaseException:
        echo.close()
        raise
    log.info("using %s ICMP sockets (%s) for %s", echo.mode, echo.why, key.describe())
    engines[key] = opened
    return opened


async def _keeper(loop: asyncio.AbstractEventLoop, engines: dict[SocketKey, EchoEngine]) -> None:
    """Close idle sockets now and then, and every socket when the loop's tasks are cancelled at its
    end (asyncio.run and the daemon both cancel what is left)."""
    try:
        while True:
            await asyncio.sleep(_REAP_EVERY)
            cutoff = time.monotonic() - IDLE_CLOSE
            for key, found in list(engines.items()):
                if not found.pending and found.last_used < cutoff:
                    del engines[key]
                    found.close()
    finally:
        for found in engines.values():
            found.close()
        engines.clear()
        _engines.pop(loop, None)
