"""`watchdog probe --once` end to end: text and JSON output, all three exit codes, --only."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.dns import FakeDnsServer


@pytest.fixture
def dns_server() -> Iterator[FakeDnsServer]:
    with FakeDnsServer() as server:
        yield server


def write_config(tmp_path: Path, dns: FakeDnsServer, *names: str) -> Path:
    probes = "\n".join(
        f'  - {{name: {n}-dns, type: dns, query: {n}.probe.test, server: "{dns.address}", timeout: 1s}}' for n in names
    )
    path = tmp_path / "config.yaml"
    path.write_text(f"probes:\n{probes}\n")
    return path


def once(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watchdog", "probe", "--once", *args], capture_output=True, text=True, timeout=60
    )


def test_all_healthy_exits_0(tmp_path: Path, dns_server: FakeDnsServer) -> None:
    result = once("-c", str(write_config(tmp_path, dns_server, "ok")))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("HEALTHY")
    assert "OK    ok-dns  dns" in result.stdout


def test_failing_probe_exits_1_and_says_why(tmp_path: Path, dns_server: FakeDnsServer) -> None:
    result = once("-c", str(write_config(tmp_path, dns_server, "ok", "servfail", "silent")))
    assert result.returncode == 1
    assert result.stdout.startswith("UNHEALTHY: 2 problem(s)")
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("  FAIL")}
    assert "servfail" in lines["servfail-dns"] and "timeout" in lines["silent-dns"]


def test_json_shape(tmp_path: Path, dns_server: FakeDnsServer) -> None:
    result = once("-c", str(write_config(tmp_path, dns_server, "ok", "wrong")), "--format", "json")
    assert result.returncode == 0  # no `expect`: a wrong address still resolves
    report = json.loads(result.stdout)
    assert set(report) == {"healthy", "exporters", "tunnels", "bgp_sessions", "expected_prefixes", "probes", "pairs"}
    assert report["healthy"] is True
    probe = report["probes"][0]
    assert set(probe) >= {"name", "type", "target", "success", "reason", "duration_seconds"}
    assert [p["name"] for p in report["probes"]] == ["ok-dns", "wrong-dns"]


def test_only_narrows_and_unknown_name_is_usage_error(tmp_path: Path, dns_server: FakeDnsServer) -> None:
    config = str(write_config(tmp_path, dns_server, "ok", "servfail"))
    result = once("-c", config, "--only", "ok-dns", "--format", "json")
    assert result.returncode == 0 and [p["name"] for p in json.loads(result.stdout)["probes"]] == ["ok-dns"]
    result = once("-c", config, "--only", "nope")
    assert result.returncode == 2 and "--only: no exporter or probe named 'nope'" in result.stderr


def test_bad_config_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("probes: [{name: p, type: dns}]\n")
    result = once("-c", str(path))
    assert result.returncode == 2 and "probes[0].query: required key is missing" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_help_and_version() -> None:
    out = subprocess.run([sys.executable, "-m", "watchdog", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("vpn-watchdog ")
    for command in (["run"], ["probe"], ["audit"], ["ike", "analyze"], ["ike", "sniff"], ["config", "check"]):
        help_out = subprocess.run(
            [sys.executable, "-m", "watchdog", *command, "--help"], capture_output=True, text=True
        )
        assert help_out.returncode == 0 and "example" in help_out.stdout, command
    usage = subprocess.run(
        [sys.executable, "-m", "watchdog", "run", "--log-level", "loud"], capture_output=True, text=True
    )
    assert usage.returncode == 2 and "invalid log level 'loud'" in usage.stderr
