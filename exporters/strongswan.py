"""strongSwan exporter: IKE/CHILD SA state over charon's VICI unix socket.

A small VICI client (the wire format is a length-prefixed packet of typed key/value/section/list
elements) turns `list-conns` + `list-sas` into `Tunnel` records, and a background thread subscribed
to up/down and rekey events asks the daemon for an immediate poll. Nothing here logs or returns
secrets: VICI never sends pre-shared keys in these commands, and only SA state is kept.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from watchdog.config import StrongswanExporterConfig
from watchdog.errors import ExporterError
from watchdog.model import Snapshot, Tunnel

log = logging.getLogger(__name__)

# Packet types
CMD_REQUEST, CMD_RESPONSE, CMD_UNKNOWN = 0, 1, 2
EVENT_REGISTER, EVENT_UNREGISTER, EVENT_CONFIRM, EVENT_UNKNOWN, EVENT = 3, 4, 5, 6, 7
# Message element types
SECTION_START, SECTION_END, KEY_VALUE, LIST_START, LIST_ITEM, LIST_END = 1, 2, 3, 4, 5, 6

MAX_PACKET = 4 * 1024 * 1024
EVENTS = ("ike-updown", "child-updown", "ike-rekey", "child-rekey")
_NAMED = {CMD_REQUEST, EVENT_REGISTER, EVENT_UNREGISTER, EVENT}

Message = dict[str, Any]


class ViciProtocolError(Exception):
    """The peer sent something that is not VICI (or not what the command promises)."""


def encode_message(message: Mapping[str, Any]) -> bytes:
    """dict (str values, nested dicts = sections, lists = lists) -> VICI message bytes."""
    out = bytearray()
    for key, value in message.items():
        name = _name_bytes(key)
        if isinstance(value, Mapping):
            out += bytes([SECTION_START]) + name + encode_message(value) + bytes([SECTION_END])
        elif isinstance(value, (list, tuple)):
            out += bytes([LIST_START]) + name
            for item in value:
                out += bytes([LIST_ITEM]) + _value_bytes(item)
            out += bytes([LIST_END])
        else:
            out += bytes([KEY_VALUE]) + name + _value_bytes(value)
    return bytes(out)


def _name_bytes(name: str) -> bytes:
    raw = name.encode()
    if len(raw) > 255:
        raise ValueError(f"VICI name too long: {name[:40]!r}...")
    return bytes([len(raw)]) + raw


def _value_bytes(value: Any) -> bytes:
    raw = value if isinstance(value, bytes) else str(value).encode()
    if len(raw) > 0xFFFF:
        raise ValueError("VICI value too long")
    return struct.pack("!H", len(raw)) + raw


def decode_message(data: bytes) -> Message:
    """VICI message bytes -> nested dict of str / dict / list[str]."""
    root: Message = {}
    stack: list[Message] = [root]
    pos = 0
    current_list: list[str] | None = None
    while pos < len(data):
        kind = data[pos]
        pos += 1
        if current_list is not None and kind not in (LIST_ITEM, LIST_END):
            raise ViciProtocolError(f"element type {kind} inside a list")
        if kind == SECTION_START:
            name, pos = _read_name(data, pos)
            section: Message = {}
            stack[-1][name] = section
            stack.append(section)
        elif kind == SECTION_END:
            if len(stack) == 1:
                raise ViciProtocolError("section end without a section")
            stack.pop()
        elif kind == KEY_VALUE:
            name, pos = _read_name(data, pos)
            stack[-1][name], pos = _read_value(data, pos)
        elif kind == LIST_START:
            name, pos = _read_name(data, pos)
            current_list = []
            stack[-1][name] = current_list
        elif kind == LIST_ITEM and current_list is not None:
            item, pos = _read_value(data, pos)
            current_list.append(item)
        elif kind == LIST_END and current_list is not None:
            current_list = None
        else:
            raise ViciProtocolError(f"unexpected element type {kind}")
    if len(stack) != 1 or current_list is not None:
        raise ViciProtocolError("message ends inside a section or list")
    return root


def _read_name(data: bytes, pos: int) -> tuple[str, int]:
    if pos >= len(data):
        raise ViciProtocolError("truncated name")
    end = pos + 1 + data[pos]
    if end > len(data):
        raise ViciProtocolError("truncated name")
    return data[pos + 1 : end].decode(errors="replace"), end


def _read_value(data: bytes, pos: int) -> tuple[str, int]:
    if pos + 2 > len(data):
        raise ViciProtocolError("truncated value length")
    (length,) = struct.unpack_from("!H", data, pos)
    end = pos + 2 + length
    if end > len(data):
        raise ViciProtocolError("truncated value")
    return data[pos + 2 : end].decode(errors="replace"), end


@dataclass(frozen=True)
class Packet:
    kind: int
    name: str
    message: Message


class ViciConnection:
    """One VICI session over a unix socket. Raises OSError / socket.timeout / ViciProtocolError."""

    def __init__(self, path: str, timeout: float | None) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(path)
        except BaseException:
            self._sock.close()
            raise

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    def settimeout(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)

    def send(self, kind: int, name: str = "", message: Mapping[str, Any] | None = None) -> None:
        body = bytes([kind]) + (_name_bytes(name) if kind in _NAMED else b"")
        body += encode_message(message or {})
        self._sock.sendall(struct.pack("!I", len(body)) + body)

    def receive(self) -> Packet:
        (length,) = struct.unpack("!I", self._read_exactly(4))
        if not 1 <= length <= MAX_PACKET:
            raise ViciProtocolError(f"invalid packet length {length}")
        body = self._read_exactly(length)
        kind, pos, name = body[0], 1, ""
        if kind in _NAMED:
            name, pos = _read_name(body, pos)
        elif kind > EVENT:
            raise ViciProtocolError(f"unknown packet type {kind}")
        return Packet(kind, name, decode_message(body[pos:]))

    def _read_exactly(self, count: int) -> bytes:
        chunks, remaining = [], count
        while remaining:
            chunk = self._sock.recv(remaining)
            if not chunk:
                raise ConnectionResetError("VICI socket closed by charon")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def register(self, event: str) -> None:
        self.send(EVENT_REGISTER, event)
        reply = self._next_non_event()
        if reply.kind != EVENT_CONFIRM:
            raise ViciProtocolError(f"charon refused event {event!r} (packet type {reply.kind})")

    def streamed(self, command: str, event: str, request: Mapping[str, Any] | None = None) -> list[Message]:
        """Run a command whose results arrive as `event` packets before the final response."""
        self.register(event)
        self.send(CMD_REQUEST, command, request)
        items: list[Message] = []
        while True:
            packet = self.receive()
            if packet.kind == EVENT and packet.name == event:
                items.append(packet.message)
            elif packet.kind == CMD_RESPONSE:
                break
            elif packet.kind == CMD_UNKNOWN:
                raise ViciProtocolError(f"charon does not know the command {command!r}")
            elif packet.kind != EVENT:
                raise ViciProtocolError(f"unexpected packet type {packet.kind} during {command}")
        self.send(EVENT_UNREGISTER, event)
        self._next_non_event()
        return items

    def _next_non_event(self) -> Packet:
        while True:
            packet = self.receive()
            if packet.kind != EVENT:
                return packet


class StrongswanExporter:
    """Tunnels of one charon: every configured connection/child, up when IKE is ESTABLISHED and
    its CHILD SA INSTALLED. Implements `Exporter` and `EventSource`."""

    cloud = "strongswan"

    def __init__(self, config: StrongswanExporterConfig, *, timeout: float) -> None:
        self.name = config.name
        self.socket_path = config.vici_socket
        self.timeout = timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._event_conn: ViciConnection | None = None
        self._lock = threading.Lock()

    # --- Exporter ----------------------------------------------------------------------------------

    def poll(self) -> Snapshot:
        deadline = time.monotonic() + self.timeout
        with _vici_errors(self.socket_path, self.timeout):
            conn = ViciConnection(self.socket_path, self.timeout)
            try:
                conns = conn.streamed("list-conns", "list-conn")
                conn.settimeout(max(0.01, deadline - time.monotonic()))
                sas = conn.streamed("list-sas", "list-sa", {"noblock": "yes"})
            finally:
                conn.close()
            tunnels = tunnels_from(conns, sas, now=time.time())
        return Snapshot(exporter=self.name, cloud=self.cloud, taken_at=time.time(), tunnels=tunnels, api_calls=2)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if self._event_conn is not None:
                self._event_conn.close()
        if self._thread is not None:
            self._thread.join(timeout=2)

    # --- EventSource -------------------------------------------------------------------------------

    def subscribe(self, notify: Callable[[], None]) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._event_loop, args=(notify,), name=f"vici-events-{self.name}", daemon=True
        )
        self._thread.start()

    def _event_loop(self, notify: Callable[[], None]) -> None:
        """Stay subscribed for as long as we run; reconnect with backoff when charon restarts."""
        backoff, failed = 0.5, False
        while not self._stop.is_set():
            try:
                conn = ViciConnection(self.socket_path, self.timeout)
                with self._lock:
                    self._event_conn = conn
                try:
                    for event in EVENTS:
                        conn.register(event)
                    if failed:
                        log.info("strongswan %s: VICI events reconnected", self.name)
                        _safe_notify(notify)  # charon may have restarted: its SAs are new
                    backoff, failed = 0.5, False
                    conn.settimeout(None)
                    for _ in _events(conn, self._stop):
                        _safe_notify(notify)
                finally:
                    with self._lock:
                        self._event_conn = None
                    conn.close()
            except (OSError, ViciProtocolError) as exc:
                if self._stop.is_set():
                    return
                if not failed:
                    log.warning("strongswan %s: VICI events unavailable (%s); retrying", self.name, exc)
                failed = True
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)


def _events(conn: ViciConnection, stop: threading.Event) -> Iterator[Packet]:
    while not stop.is_set():
        packet = conn.receive()
        if packet.kind == EVENT:
            yield packet


def _safe_notify(notify: Callable[[], None]) -> None:
    try:
        notify()
    except Exception:  # the daemon's callback must never kill the event thread
        log.exception("strongswan event callback failed")


@contextmanager
def _vici_errors(path: str, timeout: float) -> Iterator[None]:
    """Socket/protocol errors -> ExporterError with a stable reason."""
    try:
        yield
    except TimeoutError as exc:  # socket.timeout is TimeoutError
        raise ExporterError("timeout", f"VICI {path}: no answer within {timeout:g} s") from exc
    except ViciProtocolError as exc:
        raise ExporterError("malformed", f"VICI {path}: {exc}") from exc
    except OSError as exc:
        raise ExporterError("network", f"VICI {path}: cannot talk to charon: {exc.strerror or exc}") from exc


# --- VICI results -> Tunnel ----------------------------------------------------------------------

_IKE_ORDER = {"ESTABLISHED": 0, "REKEYING": 1, "REKEYED": 2, "CONNECTING": 3, "PASSIVE": 4}


def tunnels_from(conns: list[Message], sas: list[Message], *, now: float) -> tuple[Tunnel, ...]:
    """One Tunnel per (connection, child) configured or seen; the best SA of each wins.

    Configured children without an SA are reported down ("DOWN"), so a tunnel that never came up
    is visible, not missing.
    """
    configured: dict[tuple[str, str], _Configured] = {}
    for event in conns:
        for conn_name, conn in event.items():
            if not isinstance(conn, dict):
                continue
            local, remote = _first(conn.get("local_addrs")), _first(conn.get("remote_addrs"))
            children = conn.get("children")
            for child_name, child in (children if isinstance(children, dict) else {}).items():
                inside = _link_local(child.get("local-ts")) if isinstance(child, dict) else None
                configured[(conn_name, child_name)] = _Configured(local, remote, inside)
    best: dict[tuple[str, str], tuple[tuple[int, int], Tunnel]] = {}
    for event in sas:
        for conn_name, ike in event.items():
            if not isinstance(ike, dict):
                continue
            for key, tunnel in _tunnels_of_ike(conn_name, ike, configured, now):
                if key not in best or tunnel[0] < best[key][0]:
                    best[key] = tunnel
    result = [entry[1] for entry in best.values()]
    for (conn_name, child_name), conf in configured.items():
        if (conn_name, child_name) not in best:
            result.append(
                Tunnel(
                    connection=conn_name,
                    name=child_name,
                    local_ip=conf.local_ip,
                    peer_ip=conf.peer_ip,
                    up=False,
                    status="DOWN",
                    detail="no IKE SA",
                    inside_cidr=conf.inside_cidr,
                )
            )
    return tuple(sorted(result, key=lambda t: (t.connection, t.name)))


@dataclass(frozen=True)
class _Configured:
    local_ip: str
    peer_ip: str
    inside_cidr: str | None


def _tunnels_of_ike(
    conn_name: str, ike: Message, configured: dict[tuple[str, str], _Configured], now: float
) -> Iterator[tuple[tuple[str, str], tuple[tuple[int, int], Tunnel]]]:
    ike_state = str(ike.get("state", "UNKNOWN"))
    local, remote = str(ike.get("local-host", "")), str(ike.get("remote-host", ""))
    established = _int(ike.get("established"))
    changed = float(int(now) - established) if established is not None else None
    ike_algs = _algorithms(ike, ("encr-alg", "encr-keysize", "integ-alg", "prf-alg", "dh-group"))
    children = ike.get("child-sas")
    child_list = [c for c in children.values() if isinstance(c, dict)] if isinstance(children, dict) else []
    names = {str(c.get("name", "")) for c in child_list}
    # Configured children of this connection that have no CHILD SA (yet) under this IKE SA.
    names |= {child for (conn, child) in configured if conn == conn_name}
    for child_name in sorted(names):
        states = [c for c in child_list if str(c.get("name", "")) == child_name]
        installed = [c for c in states if c.get("state") == "INSTALLED"]
        child = installed[0] if installed else (states[0] if states else None)
        child_state = str(child.get("state", "UNKNOWN")) if child else "NONE"
        up = ike_state == "ESTABLISHED" and child_state == "INSTALLED"
        if up:
            status = "ESTABLISHED"
            # No DH group here: a CHILD SA shows one only after its first rekey (PFS), and the
            # detail label must not change with every rekey.
            esp = _algorithms(child or {}, ("encr-alg", "encr-keysize", "integ-alg"))
            detail = f"ike {ike_algs}; esp {esp}"
        else:
            status = ike_state if ike_state != "ESTABLISHED" else f"CHILD_{child_state}"
            detail = f"IKE {ike_state}, CHILD {child_state}"
        rank = (0 if up else 1, _IKE_ORDER.get(ike_state, 9))
        conf = configured.get((conn_name, child_name))
        inside = _link_local(child.get("local-ts")) if child else None
        yield (
            (conn_name, child_name),
            (
                rank,
                Tunnel(
                    connection=conn_name,
                    name=child_name,
                    local_ip=local,
                    peer_ip=remote,
                    up=up,
                    status=status,
                    detail=detail,
                    status_change=changed if up else None,
                    inside_cidr=inside or (conf.inside_cidr if conf else None),
                ),
            ),
        )


def _algorithms(sa: Message, keys: tuple[str, ...]) -> str:
    """swanctl's notation, e.g. AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048."""
    parts = [str(sa[k]) for k in keys if k in sa and k != "encr-keysize"]
    if parts and "encr-alg" in sa and "encr-keysize" in sa:
        parts[0] += f"-{sa['encr-keysize']}"
    return "/".join(parts) or "-"


def _link_local(selectors: Any) -> str | None:
    """The tunnel's own inside address: the traffic selector in 169.254.0.0/16 (BGP runs on it).

    Lets the daemon tie a BGP session (its local_ip) to the CHILD SA that carries it.
    """
    for selector in selectors if isinstance(selectors, list) else []:
        if str(selector).startswith("169.254."):
            return str(selector)
    return None


def _first(value: Any) -> str:
    if isinstance(value, list) and value:
        return str(value[0])
    return ""


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None
