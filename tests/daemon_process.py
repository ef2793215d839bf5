"""Run `watchdog run` as a real subprocess for tests: start, wait for /metrics, signal, stop by PID."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


class DaemonProcess:
    def __init__(
        self, config: Path, port: int, *extra: str, log_format: str = "json", prometheus_flags: bool = False
    ) -> None:
        """`prometheus_flags`: start with the Prometheus-ecosystem spellings (--config.file, ...)."""
        self.config, self.port, self.url = config, port, f"http://127.0.0.1:{port}"
        self.log = config.with_suffix(".log")
        self._log_file = self.log.open("wb")
        flags = (
            ("--config.file", "--web.listen-address", "--log.format")
            if prometheus_flags
            else ("-c", "--listen", "--log-format")
        )
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "watchdog",
                "run",
                flags[0],
                str(config),
                flags[1],
                f"127.0.0.1:{port}",
                flags[2],
                log_format,
                *extra,
            ],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metrics(self) -> str:
        return self.get("/metrics")[1]

    def wait_for(self, text: str, timeout: float = 15.0) -> str:
        """Wait until /metrics contains `text`; return the page."""
        deadline, page = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                page = self.metrics()
            except OSError:
                page = ""
            if text in page:
                return page
            time.sleep(0.1)
        raise AssertionError(
            f"{text!r} never appeared in /metrics:\n{page[-3000:]}\nlog:\n{self.log.read_text()[-3000:]}"
        )

    def wait_for_log(self, text: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text():
                return
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never appeared in the log:\n{self.log.read_text()[-3000:]}")

    def log_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()
        return self.proc.returncode
