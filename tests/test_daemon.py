"""`watchdog run` end to end: real HTTP scrape, real DNS server, SIGHUP reload, SIGTERM shutdown."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_process import DaemonProcess
from tests.fakes.dns import FakeDnsServer


@pytest.fixture
def dns_server() -> Iterator[FakeDnsServer]:
    with FakeDnsServer() as server:
        yield server


def config_text(dns: FakeDnsServer, extra_probe: str = "") -> str:
    return f"""
listen: 127.0.0.1:1
labels: {{env: test}}
probes:
  - {{name: db-dns, type: dns, query: ok.probe.test, server: "{dns.address}", expect: [198.18.1.10], interval: 500ms}}
  - {{name: gone-dns, type: dns, query: missing.probe.test, server: "{dns.address}", interval: 500ms}}
{extra_probe}
"""


def test_run_serves_metrics_reloads_and_stops(tmp_path: Path, port: int, dns_server: FakeDnsServer) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(config_text(dns_server))
    daemon = DaemonProcess(config, port)
    try:
        page = daemon.wait_for('vpn_watchdog_probe_success{probe="gone-dns"')
        page = daemon.wait_for('vpn_watchdog_probe_success{probe="db-dns"')
        assert (
            f'vpn_watchdog_probe_success{{probe="db-dns",target="ok.probe.test@{dns_server.address}",type="dns"}} 1.0'
            in page
        )
        daemon.wait_for('vpn_watchdog_probe_failures_total{probe="gone-dns",reason="nxdomain"')
        status, body = daemon.get("/healthz")
        assert status == 200 and '"status": "ok"' in body
        assert daemon.get("/nope")[0] == 404

        # An invalid new config is rejected and the running one kept.
        config.write_text("probes: [{name: x, type: bogus}]\n")
        daemon.signal(signal.SIGHUP)
        daemon.wait_for_log("reload rejected, keeping the running configuration")
        assert daemon.proc.poll() is None
        assert "probes[0].type: unknown type 'bogus'" in daemon.log.read_text()
        daemon.wait_for('probe="db-dns"')

        # A valid one is applied: the new probe appears, the removed one's series vanish.
        config.write_text(config_text(dns_server).replace("gone-dns", "refused-dns").replace("missing.", "refused."))
        daemon.signal(signal.SIGHUP)
        daemon.wait_for('vpn_watchdog_probe_failures_total{probe="refused-dns",reason="refused"')
        assert 'probe="gone-dns"' not in daemon.metrics()

        started = time.monotonic()
        assert daemon.stop() == 0
        assert time.monotonic() - started < 5
        messages = [line["msg"] for line in daemon.log_lines()]
        assert any(str(m).startswith("stopped in") for m in messages)
        assert all({"time", "level", "source", "msg"} <= set(line) for line in daemon.log_lines())
    finally:
        daemon.stop()


def test_run_with_bad_config_exits_2(tmp_path: Path, port: int) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("exporters: [{name: a, type: aws}]\n")
    daemon = DaemonProcess(config, port, log_format="text")
    assert daemon.proc.wait(20) == 2
    daemon.stop()
    log = daemon.log.read_text()
    assert "exporters[0].region: required key is missing" in log and "Traceback" not in log


def test_run_with_busy_port_exits_2(tmp_path: Path, port: int) -> None:
    import socket

    config = tmp_path / "config.yaml"
    config.write_text("{}\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        daemon = DaemonProcess(config, port, log_format="text")
        assert daemon.proc.wait(20) == 2
        daemon.stop()
    assert f"cannot listen on 127.0.0.1:{port}" in daemon.log.read_text()
