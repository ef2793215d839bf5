"""Reload as a transaction, end to end on a real `watchdog run`: a rejected reload changes nothing and
is counted, an interval-only change applies, and a SIGHUP during start-up does not kill the daemon."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_process import DaemonProcess
from tests.fakes.dns import FakeDnsServer

FAILURES = "vpn_watchdog_config_reload_failures_total"
LAST_OK = "vpn_watchdog_config_last_reload_success_timestamp_seconds"


@pytest.fixture
def dns_server() -> Iterator[FakeDnsServer]:
    with FakeDnsServer() as server:
        yield server


def value(page: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", page, re.M)
    assert match, f"{series} not in the page:\n{page[-2000:]}"
    return float(match.group(1))


def wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def probe_config(dns: FakeDnsServer, interval: str = "500ms") -> str:
    return f"""
listen: 127.0.0.1:1
probes:
  - {{name: gone-dns, type: dns, query: missing.probe.test, server: "{dns.address}", interval: {interval}}}
"""


@pytest.mark.parametrize(
    "bad",
    [
        "probes: [{{name: x, type: bogus}}]\n",  # rejected by the loader
        # accepted by the loader of this version, unusable by the scheduler: rejected before anything stops
        "probes: [{{name: gone-dns, type: dns, query: missing.probe.test, server: '{dns}', interval: .inf}}]\n",
    ],
)
def test_rejected_reload_changes_nothing_and_is_counted(
    tmp_path: Path, port: int, dns_server: FakeDnsServer, bad: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(probe_config(dns_server))
    daemon = DaemonProcess(config, port)
    nxdomain = 'vpn_watchdog_probe_failures_total{probe="gone-dns",reason="nxdomain",target='
    try:
        page = daemon.wait_for(nxdomain)
        assert value(page, FAILURES) == 0.0
        loaded_at = value(page, LAST_OK)
        config.write_text(bad.format(dns=dns_server.address))
        daemon.signal(signal.SIGHUP)
        daemon.wait_for(f"{FAILURES} 1.0")
        assert daemon.proc.poll() is None
        page = daemon.metrics()
        assert value(page, LAST_OK) == loaded_at
        series = next(line.rsplit(" ", 1)[0] for line in page.splitlines() if line.startswith(nxdomain))
        before = value(page, series)
        # the running probe is still scheduled: its failures keep being counted
        wait_until(lambda: value(daemon.metrics(), series) >= before + 2, 15, "the probe to keep running")
        messages = [str(line["msg"]) for line in daemon.log_lines()]
        assert sum("reload rejected, keeping the running configuration" in m for m in messages) == 1
        config.write_text(probe_config(dns_server))
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: value(daemon.metrics(), LAST_OK) > loaded_at, 15, "a successful reload")
        assert value(daemon.metrics(), FAILURES) == 1.0
        assert daemon.stop() == 0
    finally:
        daemon.stop()


def test_interval_only_reload_applies_to_exporters_without_their_own(tmp_path: Path, port: int) -> None:
    config = tmp_path / "config.yaml"
    # A strongSwan exporter at a socket that does not exist: every poll is one counted error.
    body = f"exporters: [{{name: onprem, type: strongswan, vici_socket: {tmp_path / 'no-such.vici'}}}]\n"
    config.write_text(f"listen: 127.0.0.1:1\ninterval: 1h\n{body}")
    daemon = DaemonProcess(config, port)
    errors = 'vpn_watchdog_exporter_errors_total{cloud="strongswan",exporter="onprem",reason='

    def polls() -> float:
        page = daemon.metrics()
        return sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines() if line.startswith(errors))

    try:
        daemon.wait_for(errors)  # at 0 from the start, before the first poll
        wait_until(lambda: polls() >= 1, 15, "the first poll")
        assert polls() == 1.0
        config.write_text(f"listen: 127.0.0.1:1\ninterval: 500ms\n{body}")
        daemon.signal(signal.SIGHUP)
        daemon.wait_for_log("reloading configuration")
        wait_until(lambda: polls() >= 4, 20, "polls at the new top-level interval")
        assert daemon.stop() == 0
    finally:
        daemon.stop()


def wait_until_catching(pid: int, sig: signal.Signals, timeout: float = 20.0) -> bool:
    """True once /proc says the process has a handler for `sig` (SigCgt bit)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False
        caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
        if caught & (1 << (sig - 1)):
            return True
        time.sleep(0.001)
    return False


def test_sighup_during_start_up_does_not_kill_the_daemon(tmp_path: Path, port: int, dns_server: FakeDnsServer) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(probe_config(dns_server))
    daemon = DaemonProcess(config, port)
    try:
        # Before the interpreter runs our first line nothing can catch SIGHUP (on a loaded machine that
        # is over 0.2 s); from the moment the process catches it, no start-up phase may die of it.
        assert wait_until_catching(daemon.proc.pid, signal.SIGHUP), daemon.log.read_text()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and daemon.proc.poll() is None:
            daemon.signal(signal.SIGHUP)  # again and again until the daemon serves: every start-up phase
            try:
                if daemon.get("/-/healthy")[0] == 200 or "vpn_watchdog_" in daemon.metrics():
                    break
            except OSError:
                pass
            time.sleep(0.05)
        assert daemon.proc.poll() is None, daemon.log.read_text()
        daemon.wait_for('vpn_watchdog_probe_success{probe="gone-dns"')
        daemon.wait_for_log("reloading configuration")
        assert daemon.stop() == 0
    finally:
        daemon.stop()
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(5)
        assert isinstance(daemon.proc, subprocess.Popen)


def test_an_exporter_that_cannot_start_blocks_only_reloads_that_change_it(
    tmp_path: Path, port: int, dns_server: FakeDnsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "aws-config").write_text("")  # no profiles at all: `profile: absent` cannot be built
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-config"))
    broken = "exporters: [{name: aws-x, type: aws, region: ap-northeast-1, profile: absent}]\n"
    config = tmp_path / "config.yaml"
    config.write_text(probe_config(dns_server) + broken)
    daemon = DaemonProcess(config, port)
    try:
        daemon.wait_for('vpn_watchdog_probe_success{probe="gone-dns"')
        daemon.wait_for_log("aws-x cannot start")  # left out at start, the rest runs
        # the broken exporter unchanged, a probe changed: applied
        config.write_text(probe_config(dns_server, interval="700ms") + broken)
        daemon.signal(signal.SIGHUP)
        daemon.wait_for_log("reloading configuration")
        assert value(daemon.metrics(), FAILURES) == 0.0
        # the broken exporter changed (still broken): rejected, counted, the running config kept
        config.write_text(probe_config(dns_server) + broken.replace("ap-northeast-1", "us-west-2"))
        daemon.signal(signal.SIGHUP)
        daemon.wait_for(f"{FAILURES} 1.0")
        assert daemon.proc.poll() is None
        assert daemon.stop() == 0
    finally:
        daemon.stop()
