"""Secrets never reach any output channel during a full run.

Known secrets are planted at the edges: the AWS fake gives every tunnel a known pre-shared key (and
moto's CustomerGatewayConfiguration XML carries another), the AWS secret access key is in the
environment, the GCP service-account private key is in a credentials file, and a scrape password is
in the web config. Then the daemon runs at DEBUG with both cloud exporters, the periodic audit and an
Alertmanager (a recording HTTP server), and `probe --once` and `audit` run too. Every channel is
grepped: daemon log, /metrics, /healthz, Alertmanager pushes, CLI stdout/stderr.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import bcrypt
import pytest

from deploy.lab.emulators.aws import MOTO_TEMPLATE_PSK, TEST_PSK, TEST_SECRET_KEY, MotoAws
from deploy.lab.emulators.gcp import FakeGcp
from tests.daemon_process import DaemonProcess

SCRAPE_PASSWORD = "scrape-Password-0xC0FFEE"


class RecordingAlertmanager:
    """Accepts POST /api/v2/alerts and keeps every body."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                owner.bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, list[str], RecordingAlertmanager]]:
    with MotoAws(region="ap-northeast-1") as aws, FakeGcp(region="ap-northeast-1") as gcp:
        aws.use_test_credentials(monkeypatch)  # the subprocesses inherit the environment
        lab = aws.build_lab(2, accepted_routes=2)
        # one tunnel down, so alerts (with their descriptions) are pushed too
        first = lab.connections[0]
        aws.set_telemetry(first.vpn_id, first.outside_ips[0], status="DOWN", message="IPSEC IS DOWN", accepted_routes=0)
        credentials = gcp.write_credentials(tmp_path)
        private_key = json.loads(Path(credentials).read_text())["private_key"]
        key_line = private_key.splitlines()[5]  # a line of the key body
        web = tmp_path / "web.yml"
        hashed = bcrypt.hashpw(SCRAPE_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        web.write_text(f"basic_auth_users:\n  prom: '{hashed}'\n")
        am = RecordingAlertmanager()
        config = tmp_path / "config.yaml"
        config.write_text(
            f"""
interval: 1s
web_config_file: {web}
exporters:
  - {{name: aws-tokyo, type: aws, region: ap-northeast-1, endpoint_url: "{aws.endpoint_url}", timeout: 5s}}
  - {{name: gcp-hub, type: gcp, project: {gcp.project}, region: {gcp.region}, endpoint: {gcp.url},
      credentials_file: {credentials}, monitoring: false}}
alertmanager: {{urls: ["{am.url}"], for: 1s}}
audit: {{interval: 1h}}
"""
        )
        try:
            yield config, [TEST_PSK, MOTO_TEMPLATE_PSK, TEST_SECRET_KEY, key_line, SCRAPE_PASSWORD], am
        finally:
            am.close()


def test_no_secret_in_any_output_channel(world: tuple[Path, list[str], RecordingAlertmanager], port: int) -> None:
    config, secrets, am = world
    daemon = DaemonProcess(config, port, "--log-level", "debug")
    channels: dict[str, str] = {}
    try:
        import base64
        import urllib.request

        token = base64.b64encode(f"prom:{SCRAPE_PASSWORD}".encode()).decode()

        def scrape() -> str:
            request = urllib.request.Request(daemon.url + "/metrics", headers={"Authorization": f"Basic {token}"})
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.read().decode()

        deadline = time.monotonic() + 60
        page = ""
        while time.monotonic() < deadline:
            try:
                page = scrape()
            except OSError:
                page = ""
            if 'vpn_watchdog_exporter_up{cloud="aws",exporter="aws-tokyo"} 1.0' in page and am.bodies:
                if "periodic audit" in daemon.log.read_text():
                    break
            time.sleep(0.3)
        aws_up = 'vpn_watchdog_tunnel_up{account="123456789012",cloud="aws"'
        assert aws_up in page and am.bodies, daemon.log.read_text()[-2000:]
        channels["metrics"] = page
        channels["healthz"] = daemon.get("/healthz")[1]
    finally:
        assert daemon.stop() == 0
    channels["daemon log"] = daemon.log.read_text()
    channels["alertmanager pushes"] = "\n".join(body.decode() for body in am.bodies)
    for args in (
        ["probe", "--once", "--format", "json"],
        ["probe", "--once"],
        ["audit", "--format", "json"],
        ["audit", "--fix-ipsec"],
        ["--debug", "probe", "--once"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "watchdog", *args, "-c", str(config)], capture_output=True, text=True, timeout=120
        )
        channels[" ".join(args)] = result.stdout + result.stderr
    assert '"level": "DEBUG"' in channels["daemon log"]  # the most talkative level really ran
    for channel, text in channels.items():
        assert text, f"{channel} is empty"
        for secret in secrets:
            assert secret not in text, f"a secret leaked into {channel}"
