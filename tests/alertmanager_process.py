"""A real prometheus-alertmanager on 127.0.0.1 for tests: own storage, no gossip, stopped by PID."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port

BINARY = "prometheus-alertmanager"
MINIMAL_CONFIG = 'route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n'


def require_alertmanager() -> str:
    path = shutil.which(BINARY) or shutil.which("alertmanager")
    if path is None:
        pytest.skip("prometheus-alertmanager is not installed")
    return path


class AlertmanagerProcess:
    def __init__(self, workdir: Path, port: int | None = None, config: str = MINIMAL_CONFIG) -> None:
        self.binary = require_alertmanager()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "alertmanager.yml"
        self.config.write_text(config)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> AlertmanagerProcess:
        log = (self.workdir / "alertmanager.log").open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"alertmanager exited: {(self.workdir / 'alertmanager.log').read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("alertmanager did not become ready")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (resolved ones are not listed by Alertmanager)."""
        with urllib.request.urlopen(self.url + "/api/v2/alerts", timeout=5) as response:
            result: list[dict[str, Any]] = json.loads(response.read())
        return result
