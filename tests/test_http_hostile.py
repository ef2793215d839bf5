"""Rude clients on the metrics port: plaintext to the TLS port, a TLS connection closed before its
handshake, a client that resets mid-request, a burst of connections. The daemon keeps serving and
its log stays one JSON object per line: no traceback, nothing raw on stderr."""

from __future__ import annotations

import socket
import ssl
import struct
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.daemon_process import DaemonProcess


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def reset_after(port: int, data: bytes) -> None:
    """Send `data`, then close with RST (SO_LINGER 0) instead of FIN."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def https_status(port: int, cert: Path, path: str = "/-/healthy", auth: str | None = None) -> int:
    context = ssl.create_default_context(cafile=str(cert))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            header = f"Authorization: Basic {auth}\r\n" if auth else ""
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{header}Connection: close\r\n\r\n".encode())
            return int(sock.recv(4096).split(b" ", 2)[1])


def leave_before_the_body(port: int, cert: Path) -> None:
    """Ask for /metrics over TLS and hang up (RST) without reading the answer."""
    context = ssl.create_default_context(cafile=str(cert))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def assert_log_is_json_lines(daemon: DaemonProcess) -> None:
    text = daemon.log.read_text()
    assert "Traceback" not in text, text[-3000:]
    odd = [line for line in text.splitlines() if line.strip() and not line.startswith("{")]
    assert not odd, f"non-JSON lines in a --log-format json run: {odd[:5]}"


def test_rude_tls_clients_get_one_line_each_and_the_daemon_keeps_serving(
    tmp_path: Path, port: int, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"web_config_file: {web}\nprobes: []\n")
    daemon = DaemonProcess(config, port)
    try:
        daemon.wait_for_log("https://")
        for _ in range(3):
            reset_after(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")  # plaintext to the TLS port
            socket.create_connection(("127.0.0.1", port), timeout=5).close()  # EOF before the handshake
            reset_after(port, b"\x16\x03\x01\x00\x05\x01\x00")  # a truncated ClientHello, then RST
        for _ in range(60):  # racy by nature: one in a few dozen meets the daemon mid-write
            leave_before_the_body(port, cert)  # the daemon's write meets a closed TLS socket
        assert https_status(port, cert, "/metrics") == 200
        assert daemon.proc.poll() is None
    finally:
        assert daemon.stop() == 0
    assert_log_is_json_lines(daemon)


def test_a_client_that_resets_mid_request_and_a_burst_of_64(tmp_path: Path, port: int) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("probes: []\n")
    daemon = DaemonProcess(config, port)
    try:
        daemon.wait_for("vpn_watchdog_")
        for _ in range(5):
            reset_after(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            reset_after(port, b"GET /metr")  # half a request line

        def one(_: int) -> int:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return int(sock.recv(64).split(b" ", 2)[1])

        with ThreadPoolExecutor(64) as pool:
            codes = list(pool.map(one, range(64)))
        assert codes == [200] * 64  # no SYN dropped by a short listen backlog, no reset
        assert daemon.proc.poll() is None
    finally:
        assert daemon.stop() == 0
    assert_log_is_json_lines(daemon)
