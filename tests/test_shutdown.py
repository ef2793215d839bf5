"""SIGTERM while a poll hangs in a cloud API and an Alertmanager push hangs: a graceful stop, in time."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.lab.emulators.gcp import FakeGcp
from tests.daemon_process import DaemonProcess
from tests.fakes.dns import FakeDnsServer
from watchdog.daemon import SHUTDOWN_GRACE_SECONDS


@pytest.fixture
def hanging_alertmanager() -> Iterator[tuple[str, list[float]]]:
    """Accepts connections, reads nothing, answers never."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[float] = []
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            accepted.append(time.monotonic())
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_sigterm_mid_poll_and_mid_push(
    tmp_path: Path, port: int, hanging_alertmanager: tuple[str, list[float]]
) -> None:
    am_url, accepted = hanging_alertmanager
    with FakeGcp() as gcp, FakeDnsServer() as dns:
        gcp.fault(r"/vpnTunnels$", status=0, delay=60)  # the API hangs (the fake answers after 60 s)
        config = tmp_path / "config.yaml"
        config.write_text(
            f"""
exporters:
  - {{name: gcp-hub, type: gcp, project: {gcp.project}, region: {gcp.region}, endpoint: {gcp.url},
      credentials_file: {gcp.write_credentials(tmp_path)}, monitoring: false, timeout: 50s, interval: 55s}}
probes:
  - {{name: dead-dns, type: dns, query: silent.probe.test, server: "{dns.address}", interval: 500ms, timeout: 300ms}}
alertmanager: {{urls: ["{am_url}"], for: 500ms, timeout: 30s}}
"""
        )
        daemon = DaemonProcess(config, port, "--log-level", "debug")
        try:
            daemon.wait_for_log("polling exporter gcp-hub", timeout=20)
            deadline = time.monotonic() + 30
            # Wait until a push hangs in Alertmanager and the poll hangs in the API (the first poll
            # spends a few seconds importing the Compute client before its first call).
            while not (accepted and gcp.calls(r"/vpnTunnels$")) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert accepted, "the alert push never started"
            assert gcp.calls(r"/vpnTunnels$") >= 1, "the poll never reached the hanging API"
            started = time.monotonic()
            code = daemon.stop(timeout=SHUTDOWN_GRACE_SECONDS + 10)
            took = time.monotonic() - started
        finally:
            daemon.stop()
    assert code == 0
    assert took < SHUTDOWN_GRACE_SECONDS + 1, f"shutdown took {took:.1f}s"
    log = daemon.log.read_text()
    assert "stopped in" in log
    assert "Traceback" not in log and "CancelledError" not in log  # a stop is not a crash
