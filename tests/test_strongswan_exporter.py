"""strongSwan exporter against a fake charon: a VICI server on a unix socket (the transport edge).

The canned messages are trimmed from what the lab's charon 5.9.8 sends (`list-conns`, `list-sas`).
The fake encodes VICI on its own, so it does not share the exporter's codec.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from exporters.strongswan import StrongswanExporter
from watchdog.config import StrongswanExporterConfig
from watchdog.errors import ExporterError
from watchdog.interfaces import EventSource
from watchdog.model import Tunnel


def conn(name: str, local: str, remote: str, inside: str) -> dict[str, Any]:
    return {
        name: {
            "local_addrs": [local],
            "remote_addrs": [remote],
            "version": "IKEv2",
            "dpd_delay": "2",
            "local-1": {"id": local, "class": "pre-shared key", "groups": []},
            "remote-1": {"id": remote, "class": "pre-shared key", "groups": []},
            "children": {
                name: {
                    "mode": "TUNNEL",
                    "rekey_time": "3600",
                    "dpd_action": "start",
                    "local-ts": [inside, "198.18.0.0/24"],
                    "remote-ts": ["198.18.1.0/24"],
                }
            },
        }
    }


def child(name: str, uid: str, state: str, inside: str) -> dict[str, Any]:
    return {
        "name": name,
        "uniqueid": uid,
        "reqid": uid,
        "state": state,
        "mode": "TUNNEL",
        "protocol": "ESP",
        "encap": "yes",
        "spi-in": "fad3e6d6",
        "spi-out": "e8d5685b",
        "encr-alg": "AES_CBC",
        "encr-keysize": "256",
        "integ-alg": "HMAC_SHA2_256_128",
        "bytes-in": "1107",
        "install-time": "8",
        "local-ts": [inside, "198.18.0.0/24"],
        "remote-ts": ["198.18.1.0/24"],
    }


def ike_sa(
    name: str, local: str, remote: str, state: str, children: dict[str, Any], established: str = "8"
) -> dict[str, Any]:
    sa: dict[str, Any] = {
        "uniqueid": "1",
        "version": "2",
        "state": state,
        "local-host": local,
        "local-port": "4500",
        "local-id": local,
        "remote-host": remote,
        "remote-port": "4500",
        "remote-id": remote,
        "initiator": "yes",
        "nat-remote": "yes",
        "encr-alg": "AES_CBC",
        "encr-keysize": "256",
        "integ-alg": "HMAC_SHA2_256_128",
        "prf-alg": "PRF_HMAC_SHA2_256",
        "dh-group": "MODP_2048",
        "child-sas": children,
    }
    if state == "ESTABLISHED":
        sa["established"] = established
    return {name: sa}


CONNS = [
    conn("tun1", "203.0.113.1", "198.51.100.1", "169.254.10.2/32"),
    conn("tun2", "203.0.113.1", "198.51.100.2", "169.254.10.6/32"),
]


# --- the fake charon -----------------------------------------------------------------------------


def encode(message: dict[str, Any]) -> bytes:
    out = b""
    for key, value in message.items():
        name = bytes([len(key.encode())]) + key.encode()
        if isinstance(value, dict):
            out += b"\x01" + name + encode(value) + b"\x02"
        elif isinstance(value, list):
            items = b"".join(b"\x05" + struct.pack(">H", len(i.encode())) + i.encode() for i in value)
            out += b"\x04" + name + items + b"\x06"
        else:
            raw = str(value).encode()
            out += b"\x03" + name + struct.pack(">H", len(raw)) + raw
    return out


def packet(kind: int, name: str | None = None, message: dict[str, Any] | None = None) -> bytes:
    body = bytes([kind]) + (bytes([len(name)]) + name.encode() if name is not None else b"")
    body += encode(message or {})
    return struct.pack(">I", len(body)) + body


class FakeCharon:
    """Serves list-conns/list-sas from canned messages, confirms event registrations and pushes
    events to subscribers. `mode`: "ok", "silent" (never answers) or "garbage"."""

    def __init__(self, path: Path, conns: list[dict[str, Any]], sas: list[dict[str, Any]], mode: str = "ok") -> None:
        self.path, self.conns, self.sas, self.mode = path, conns, sas, mode
        self.subscribers: dict[socket.socket, set[str]] = {}
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(8)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.subscribers[client] = set()
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            for kind, name in self._requests(client):
                if self.mode == "silent":
                    continue
                if self.mode == "garbage":
                    client.sendall(struct.pack(">I", 3) + b"\x01\x09\x00")
                    continue
                if kind == 3:  # EVENT_REGISTER
                    with self.lock:
                        self.subscribers[client].add(name)
                    client.sendall(packet(5))
                elif kind == 4:  # EVENT_UNREGISTER
                    with self.lock:
                        self.subscribers[client].discard(name)
                    client.sendall(packet(5))
                elif kind == 0 and name in ("list-conns", "list-sas"):
                    event, items = ("list-conn", self.conns) if name == "list-conns" else ("list-sa", self.sas)
                    for item in items:
                        client.sendall(packet(7, event, item))
                    client.sendall(packet(1))
                else:
                    client.sendall(packet(2))  # CMD_UNKNOWN
        except OSError:
            pass
        finally:
            with self.lock:
                self.subscribers.pop(client, None)
            client.close()

    @staticmethod
    def _requests(client: socket.socket) -> Iterator[tuple[int, str]]:
        while True:
            header = client.recv(4, socket.MSG_WAITALL)
            if len(header) < 4:
                return
            body = client.recv(struct.unpack(">I", header)[0], socket.MSG_WAITALL)
            kind = body[0]
            name = body[2 : 2 + body[1]].decode() if kind in (0, 3, 4) else ""
            yield kind, name

    def registered(self, event: str) -> bool:
        with self.lock:
            return any(event in events for events in self.subscribers.values())

    def push(self, event: str, message: dict[str, Any]) -> None:
        with self.lock:
            targets = [c for c, events in self.subscribers.items() if event in events]
        for client in targets:
            client.sendall(packet(7, event, message))

    def stop(self) -> None:
        self.listener.close()
        self.path.unlink(missing_ok=True)
        with self.lock:
            clients = list(self.subscribers)
        for client in clients:
            client.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def vici_path(tmp_path: Path) -> Path:
    return tmp_path / "charon.vici"


def exporter(path: Path, timeout: float = 5.0) -> StrongswanExporter:
    config = StrongswanExporterConfig(name="onprem", type="strongswan", vici_socket=str(path))
    return StrongswanExporter(config, timeout=timeout)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# --- poll ----------------------------------------------------------------------------------------


def test_established_tunnel_is_up_and_a_configured_one_without_sa_is_down(vici_path: Path) -> None:
    sas = [
        ike_sa(
            "tun1",
            "203.0.113.1",
            "198.51.100.1",
            "ESTABLISHED",
            {"tun1-1": child("tun1", "1", "INSTALLED", "169.254.10.2/32")},
        )
    ]
    charon = FakeCharon(vici_path, CONNS, sas)
    try:
        before = time.time()
        snapshot = exporter(vici_path).poll()
    finally:
        charon.stop()
    assert snapshot.cloud == "strongswan" and snapshot.exporter == "onprem"
    tun1, tun2 = snapshot.tunnels
    assert tun1 == Tunnel(
        connection="tun1",
        name="tun1",
        local_ip="203.0.113.1",
        peer_ip="198.51.100.1",
        up=True,
        status="ESTABLISHED",
        detail="ike AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048; esp AES_CBC-256/HMAC_SHA2_256_128",
        status_change=tun1.status_change,
        inside_cidr="169.254.10.2/32",
    )
    assert tun1.status_change is not None and abs(tun1.status_change - (before - 8)) <= 2
    assert tun2 == Tunnel(
        connection="tun2",
        name="tun2",
        local_ip="203.0.113.1",
        peer_ip="198.51.100.2",
        up=False,
        status="DOWN",
        detail="no IKE SA",
        inside_cidr="169.254.10.6/32",
    )


def test_ike_up_without_installed_child_and_connecting_ike_are_down(vici_path: Path) -> None:
    sas = [
        ike_sa("tun1", "203.0.113.1", "198.51.100.1", "ESTABLISHED", {}),
        ike_sa("tun2", "203.0.113.1", "198.51.100.2", "CONNECTING", {}),
    ]
    charon = FakeCharon(vici_path, CONNS, sas)
    try:
        tun1, tun2 = exporter(vici_path).poll().tunnels
    finally:
        charon.stop()
    assert (tun1.up, tun1.status, tun1.detail) == (False, "CHILD_NONE", "IKE ESTABLISHED, CHILD NONE")
    assert (tun2.up, tun2.status, tun2.detail) == (False, "CONNECTING", "IKE CONNECTING, CHILD NONE")


def test_a_rekey_in_progress_is_still_one_up_tunnel(vici_path: Path) -> None:
    """During a CHILD rekey charon lists the old (REKEYED) and the new (INSTALLED) SA."""
    sas = [
        ike_sa(
            "tun1",
            "203.0.113.1",
            "198.51.100.1",
            "ESTABLISHED",
            {
                "tun1-1": child("tun1", "1", "REKEYED", "169.254.10.2/32"),
                "tun1-5": child("tun1", "5", "INSTALLED", "169.254.10.2/32"),
            },
        )
    ]
    charon = FakeCharon(vici_path, CONNS[:1], sas)
    try:
        tunnels = exporter(vici_path).poll().tunnels
    finally:
        charon.stop()
    assert [(t.name, t.up) for t in tunnels] == [("tun1", True)]


def test_missing_socket_is_a_network_error(vici_path: Path) -> None:
    with pytest.raises(ExporterError) as caught:
        exporter(vici_path).poll()
    assert caught.value.reason == "network"
    assert str(vici_path) in str(caught.value)


def test_a_charon_that_never_answers_times_out(vici_path: Path) -> None:
    charon = FakeCharon(vici_path, CONNS, [], mode="silent")
    start = time.monotonic()
    try:
        with pytest.raises(ExporterError) as caught:
            exporter(vici_path, timeout=0.3).poll()
    finally:
        charon.stop()
    assert caught.value.reason == "timeout"
    assert time.monotonic() - start < 2


def test_garbage_from_the_socket_is_malformed(vici_path: Path) -> None:
    charon = FakeCharon(vici_path, CONNS, [], mode="garbage")
    try:
        with pytest.raises(ExporterError) as caught:
            exporter(vici_path).poll()
    finally:
        charon.stop()
    assert caught.value.reason == "malformed"


# --- events --------------------------------------------------------------------------------------


def test_events_ask_for_a_poll_and_survive_a_charon_restart(vici_path: Path) -> None:
    notified = []
    exp = exporter(vici_path)
    assert isinstance(exp, EventSource)
    charon = FakeCharon(vici_path, CONNS, [])
    try:
        exp.subscribe(lambda: notified.append(time.monotonic()))
        assert wait_until(
            lambda: all(charon.registered(e) for e in ("ike-updown", "child-updown", "ike-rekey", "child-rekey"))
        )
        charon.push("child-updown", {"up": "yes", "tun1": {"state": "ESTABLISHED"}})
        assert wait_until(lambda: len(notified) == 1)

        charon.stop()  # charon restarts: the exporter reconnects and asks for a poll at once
        charon = FakeCharon(vici_path, CONNS, [])
        assert wait_until(lambda: charon.registered("ike-rekey"), timeout=8)
        assert wait_until(lambda: len(notified) == 2)
        charon.push("ike-rekey", {"tun1": {"state": "ESTABLISHED"}})
        assert wait_until(lambda: len(notified) == 3)
    finally:
        exp.close()
        charon.stop()
    assert exp._thread is not None and not exp._thread.is_alive()
