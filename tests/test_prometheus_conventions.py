"""`watchdog run` as an SRE used to blackbox_exporter or YACE drives it: the Prometheus flag spellings,
promslog log lines, the lifecycle reload, a dual-stack listen address, TLS with bad clients."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.daemon_process import DaemonProcess
from tests.tls_certs import make_pki

LOGFMT = re.compile(r"^time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(DEBUG|INFO|WARN|ERROR) source=\S+:\d+ ")


def request(port: int, method: str, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_lifecycle_reload_and_logfmt_lines(tmp_path: Path, port: int) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("interval: 30s\n")
    daemon = DaemonProcess(config, port, "--web.enable-lifecycle", "--log.level", "info", log_format="logfmt",
                           prometheus_flags=True)  # fmt: skip
    try:
        daemon.wait_for("vpn_watchdog_build_info{")
        assert request(port, "GET", "/-/ready")[0] == 200  # nothing to poll: ready once started
        config.write_text("probes: [{name: x, type: bogus}]\n")
        status, text = request(port, "POST", "/-/reload")
        assert status == 400 and "probes[0].type: unknown type 'bogus'" in text
        assert "vpn_watchdog_config_reload_failures_total 1.0" in daemon.metrics()
        config.write_text("interval: 10s\n")
        assert request(port, "POST", "/-/reload") == (200, "configuration reloaded\n")
        assert request(port, "GET", "/-/reload")[0] == 405
        assert daemon.stop() == 0
    finally:
        daemon.stop()
    lines = daemon.log.read_text().splitlines()
    assert lines and all(LOGFMT.match(line) for line in lines), lines
    assert any('msg="reload rejected, keeping the running configuration:' in line for line in lines)


def test_self_metrics_and_log_level_warn(tmp_path: Path, port: int) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("{}\n")
    daemon = DaemonProcess(config, port, "--log.level", "warn", prometheus_flags=True)
    try:
        page = daemon.wait_for("process_resident_memory_bytes ")
        assert re.search(
            r'^vpn_watchdog_build_info\{python_version="3\.\d+\.\d+",revision="[^"]+",version="\d[^"]*"\} 1\.0$',
            page,
            re.M,
        ), page[-2000:]
        assert "process_cpu_seconds_total " in page and "process_open_fds " in page
        assert 'vpn_watchdog_alerts_sent_total{outcome="error"} 0.0' in page
        assert request(port, "POST", "/-/reload")[0] == 403  # no --web.enable-lifecycle
        assert daemon.stop() == 0
    finally:
        daemon.stop()
    assert not [line for line in daemon.log_lines() if line["level"] in ("INFO", "DEBUG")]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--log.level", "loud"], "invalid log level 'loud' (choose from debug, info, warn, error)"),
        (["--log.format", "xml"], "invalid log format 'xml' (choose from logfmt, json)"),
        (["--web.listen-address", "::1:80"], "write an IPv6 address in brackets"),
    ],
)
def test_bad_flags_exit_2_with_the_problem(tmp_path: Path, flags: list[str], message: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("{}\n")
    result = subprocess.run(
        [sys.executable, "-m", "watchdog", "run", "--config.file", str(config), *flags],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_debug_is_accepted_after_the_subcommand(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("{}\n")
    for argv in (["--debug", "config", "check", "-c", str(config)], ["config", "check", "--config.file", str(config),
                                                                         "--debug"]):  # fmt: skip
        result = subprocess.run([sys.executable, "-m", "watchdog", *argv], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0 and ": ok (" in result.stdout, result.stderr


def test_ipv6_any_listen_serves_both_families(tmp_path: Path, port: int) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    config = tmp_path / "config.yaml"
    config.write_text(f'listen: "[::]:{port}"\n')
    check = subprocess.run([sys.executable, "-m", "watchdog", "config", "check", "-c", str(config)],
                           capture_output=True, text=True, timeout=30)  # fmt: skip
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([sys.executable, "-m", "watchdog", "run", "-c", str(config)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://[::1]:{port}/-/healthy", timeout=2) as response:
                    assert response.status == 200
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "the daemon did not serve on [::1]"
                time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthy", timeout=2) as response:
            assert response.status == 200
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_json_logs_stay_one_object_per_line_while_bad_clients_connect(tmp_path: Path, port: int) -> None:
    pki = make_pki(tmp_path)
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config: {{cert_file: {pki.server_cert}, key_file: {pki.server_key}}}\n")
    config = tmp_path / "config.yaml"
    config.write_text("{}\n")
    daemon = DaemonProcess(config, port, "--web.config.file", str(web), prometheus_flags=True)
    context = ssl.create_default_context(cafile=str(pki.ca))
    try:
        daemon.wait_for_log("serving /metrics and /healthz on https://")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP to the TLS port
            assert sock.recv(100).startswith(b"HTTP/1.0 400 Bad Request")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"\x16\x03\x01\x00\x05hello")  # a broken ClientHello
            with contextlib.suppress(ConnectionResetError):
                sock.recv(100)
        with context.wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="127.0.0.1"
        ) as tls:
            tls.sendall(b"BREW /pot HTCPCP/1.0\r\n\r\n")  # garbage inside a good TLS connection
            assert tls.recv(100).startswith(b"HTTP/1.1 400")
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
        conn.request("GET", "/metrics")
        page = conn.getresponse().read().decode()
        assert daemon.stop() == 0
    finally:
        daemon.stop()
    assert 'vpn_watchdog_web_tls_handshake_failures_total{reason="http_request"} 1.0' in page
    raw = daemon.log.read_text().splitlines()
    entries = [json.loads(line) for line in raw]  # every line is one JSON object
    handshakes = [e for e in entries if e["msg"] == "TLS handshake failed"]
    assert len(handshakes) == 2 and {e["remote"].rsplit(":", 1)[0] for e in handshakes} == {"127.0.0.1"}
    assert any(e["msg"] == "http request error" and e["request"] == "BREW /pot HTCPCP/1.0" for e in entries), entries
    assert all(e["level"] in ("INFO", "WARN", "ERROR") and "Traceback" not in json.dumps(e) for e in entries)
