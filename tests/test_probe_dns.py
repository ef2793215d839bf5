"""DNS probe against real resolvers on loopback: the fake authoritative server and dnsmasq."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from probes.dns import DnsProbe
from probes.registry import build_probe
from tests.conftest import free_port, require_root
from tests.fakes.dns import ADDRESS, BIG_COUNT, WRONG_ADDRESS, FakeDnsServer
from watchdog.config import DnsProbeConfig
from watchdog.model import ProbeResult


def config(query: str, server: str | None, **extra: Any) -> DnsProbeConfig:
    raw: dict[str, Any] = {
        "name": "dns-test",
        "type": "dns",
        "query": query,
        "server": server,
        "timeout": "1s",
    }
    raw.update(extra)
    return DnsProbeConfig.model_validate(raw)


def run(probe: Any) -> ProbeResult:
    result: ProbeResult = asyncio.run(probe.run())
    return result


@pytest.fixture
def server() -> Iterator[FakeDnsServer]:
    with FakeDnsServer() as fake:
        yield fake


def test_resolving_name_succeeds_with_answer_and_latency(server: FakeDnsServer) -> None:
    probe = build_probe(config("ok.probe.test", server.address, expect=[ADDRESS]))
    result = run(probe)
    assert probe.target == f"ok.probe.test@{server.address}"
    assert (result.success, result.reason) == (True, "")
    assert result.detail == f"answers {ADDRESS}"
    assert len(result.latencies) == 1 and 0 < result.latencies[0] < 1
    assert result.duration_seconds >= result.latencies[0]
    assert (result.probe, result.type, result.target) == ("dns-test", "dns", probe.target)


@pytest.mark.parametrize(
    ("query", "expect", "reason", "detail"),
    [
        ("nx.probe.test", [], "nxdomain", "says NXDOMAIN"),
        ("servfail.probe.test", [], "servfail", "says SERVFAIL"),
        ("refused.probe.test", [], "refused", "says REFUSED"),
        ("notimp.probe.test", [], "rcode_notimp", "says NOTIMP"),
        ("wrong.probe.test", [ADDRESS], "wrong_answer", f"expected {ADDRESS}, got {WRONG_ADDRESS}"),
        ("empty.probe.test", [], "wrong_answer", "no A records in the answer"),
    ],
)
def test_failures_have_distinct_reasons(
    server: FakeDnsServer, query: str, expect: list[str], reason: str, detail: str
) -> None:
    result = run(build_probe(config(query, server.address, expect=expect)))
    assert (result.success, result.reason) == (False, reason)
    assert detail in result.detail
    assert len(result.latencies) == 1  # the server did answer


def test_answer_without_expectation_succeeds_whatever_it_says(server: FakeDnsServer) -> None:
    result = run(build_probe(config("wrong.probe.test", server.address)))
    assert result.success and result.detail == f"answers {WRONG_ADDRESS}"


def test_truncated_udp_reply_falls_back_to_tcp(server: FakeDnsServer) -> None:
    result = run(build_probe(config("big.probe.test", server.address, expect=["198.18.2.1", "198.18.2.60"])))
    assert result.success, result
    assert server.count("udp", "big.probe.test") == 1
    assert server.count("tcp", "big.probe.test") == 1
    assert len(result.latencies) == 2  # the truncated UDP round trip and the TCP one
    assert "over TCP" in result.detail and f"+{BIG_COUNT - 4} more" in result.detail


def test_query_leaves_from_the_configured_source_over_udp_and_tcp(server: FakeDnsServer) -> None:
    # Cloud DNS forwards from its own range; the probe's `source` plays it (any 127/8 address is local).
    result = run(build_probe(config("big.probe.test", server.address, source="127.0.0.7")))
    assert result.success, result
    assert set(server.clients) == {("udp", "127.0.0.7"), ("tcp", "127.0.0.7")}


def test_source_that_is_no_local_address_is_a_network_error_at_once(server: FakeDnsServer) -> None:
    result = run(build_probe(config("ok.probe.test", server.address, source="198.51.100.77")))
    assert (result.success, result.reason) == (False, "network_error")
    assert "Cannot assign requested address" in result.detail
    assert result.duration_seconds < 0.5 and not server.clients


def test_source_of_another_ip_version_than_the_server_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="source ::1 and server 127.0.0.1:53 are of different IP versions"):
        config("ok.probe.test", "127.0.0.1:53", source="::1")


def test_silent_server_times_out_within_timeout(server: FakeDnsServer) -> None:
    result = run(build_probe(config("silent.probe.test", server.address, timeout="300ms")))
    assert (result.success, result.reason) == (False, "timeout")
    assert 0.29 <= result.duration_seconds < 0.45
    assert result.detail == f"no reply from {server.address} within 0.3s"
    assert result.latencies == ()


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
def test_closed_port_is_network_error_without_waiting_for_timeout(host: str) -> None:
    result = run(build_probe(config("ok.probe.test", f"{host}:{free_port()}", timeout="2s")))
    assert (result.success, result.reason) == (False, "network_error")
    assert "Connection refused" in result.detail
    assert result.duration_seconds < 0.5


def test_alias_is_followed_to_the_address(server: FakeDnsServer) -> None:
    result = run(build_probe(config("alias.probe.test", server.address, expect=[ADDRESS])))
    assert result.success and result.detail == f"answers {ADDRESS}"


def test_cname_expectation_ignores_case_and_trailing_dot(server: FakeDnsServer) -> None:
    probe = build_probe(config("alias.probe.test", server.address, record_type="CNAME", expect=["OK.probe.test"]))
    result = run(probe)
    assert result.success and result.detail == "answers ok.probe.test"


def test_other_record_types_compare_by_text(server: FakeDnsServer) -> None:
    # The fake only has A records: a TXT question gets NOERROR with no answer.
    result = run(build_probe(config("ok.probe.test", server.address, record_type="TXT", expect=["x"])))
    assert (result.success, result.reason) == (False, "wrong_answer")
    assert "no TXT records" in result.detail


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"query": "a..b.test"}, "invalid query name 'a..b.test'"),
        ({"query": "x" * 64 + ".test"}, "invalid query name"),
        ({"expect": ["db.example"]}, "expect: 'db.example' is not an IPv4 address"),
        ({"record_type": "AAAA", "expect": ["198.18.1.10"]}, "is not an IPv6 address"),
    ],
)
def test_impossible_probe_is_rejected_at_config_load(extra: dict[str, Any], message: str) -> None:
    import json

    from watchdog.config import parse_config
    from watchdog.errors import ConfigError

    probe = {"name": "p", "type": "dns", "query": "ok.probe.test", "server": "127.0.0.1"} | extra
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config(json.dumps({"probes": [probe]}))


# --- the system resolver (/etc/resolv.conf syntax, port 53 only) -------------------------------------


@pytest.fixture
def port53_server() -> Iterator[FakeDnsServer]:
    if os.geteuid() != 0:
        pytest.skip("binding port 53 needs root")
    try:
        fake = FakeDnsServer(host="127.88.0.53", port=53)
    except OSError as exc:
        pytest.skip(f"cannot bind 127.88.0.53:53: {exc}")
    with fake:
        yield fake


def test_system_resolver_tries_nameservers_in_order(port53_server: FakeDnsServer, tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    # The first nameserver has nothing on port 53 (refused at once), the second answers.
    resolv.write_text("search example.invalid\nnameserver 127.88.0.54\nnameserver 127.88.0.53\n")
    probe = DnsProbe(config("ok.probe.test", None, expect=[ADDRESS]), resolv_conf=str(resolv))
    result = run(probe)
    assert probe.target == "ok.probe.test@system"
    assert result.success, result
    assert port53_server.count("udp", "ok.probe.test") == 1  # absolute name: no search suffix


def test_system_resolver_without_nameservers_is_network_error(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# nothing here\n")
    result = run(DnsProbe(config("ok.probe.test", None), resolv_conf=str(resolv)))
    assert (result.success, result.reason) == (False, "network_error")
    assert str(resolv) in result.detail


# --- dnsmasq ---------------------------------------------------------------------------------------


@pytest.fixture
def dnsmasq(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else None)
    if binary is None:
        pytest.skip("dnsmasq is not installed")
    port = free_port()
    argv = [
        binary,
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--listen-address=127.0.0.1",
        f"--port={port}",
        "--host-record=db.aws.internal,198.18.1.10",
        "--local=/aws.internal/",
        f"--pid-file={tmp_path / 'dnsmasq.pid'}",
    ]
    if os.geteuid() == 0:
        argv.append("--user=root")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 5
        while not run(build_probe(config("db.aws.internal", address, timeout="200ms"))).success:
            if proc.poll() is not None or time.monotonic() > deadline:
                stderr = proc.stderr.read().decode() if proc.stderr and proc.poll() is not None else ""
                pytest.fail(f"dnsmasq did not come up: {stderr}")
        yield address
    finally:
        proc.terminate()  # our own child, by PID
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_dnsmasq_answers_and_denies(dnsmasq: str) -> None:
    ok = run(build_probe(config("db.aws.internal", dnsmasq, expect=["198.18.1.10"])))
    assert ok.success and ok.detail == "answers 198.18.1.10"
    missing = run(build_probe(config("nope.aws.internal", dnsmasq)))
    assert (missing.success, missing.reason) == (False, "nxdomain")
    wrong = run(build_probe(config("db.aws.internal", dnsmasq, expect=["198.18.1.11"])))
    assert (wrong.success, wrong.reason) == (False, "wrong_answer")


# --- inside a network namespace: the real /etc/resolv.conf path and an unroutable server -----------

_CHILD = r"""
import asyncio, dataclasses, json, sys
from probes.registry import build_probe
from tests.fakes.dns import FakeDnsServer
from watchdog.config import DnsProbeConfig
configs = json.loads(sys.argv[1])
with FakeDnsServer(host="127.0.0.1", port=53):
    probes = [build_probe(DnsProbeConfig.model_validate(c)) for c in configs]
    print(json.dumps([dataclasses.asdict(asyncio.run(p.run())) | {"target": p.target} for p in probes]))
"""


@pytest.fixture
def dns_ns() -> Iterator[str]:
    """A namespace with only loopback, whose /etc/resolv.conf (via `ip netns exec`) names 127.0.0.1."""
    require_root()
    name = f"wdprobe-{os.getpid()}-dns"
    etc = Path("/etc/netns") / name
    created_parent = not etc.parent.exists()
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=10)
        etc.mkdir(parents=True)
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        yield name
    finally:
        shutil.rmtree(etc, ignore_errors=True)
        if created_parent:
            try:
                etc.parent.rmdir()
            except OSError:
                pass  # someone else put something there meanwhile
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


@pytest.mark.netns
def test_system_resolver_and_unroutable_server_in_namespace(dns_ns: str) -> None:
    configs = [
        {"name": "sys", "type": "dns", "query": "ok.probe.test", "expect": [ADDRESS]},
        {"name": "noroute", "type": "dns", "query": "ok.probe.test", "server": "192.0.2.53", "timeout": "1s"},
    ]
    proc = subprocess.run(
        ["ip", "netns", "exec", dns_ns, sys.executable, "-c", _CHILD, json.dumps(configs)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert proc.returncode == 0, proc.stderr
    system, noroute = json.loads(proc.stdout)
    assert (system["target"], system["success"], system["detail"]) == (
        "ok.probe.test@system",
        True,
        f"answers {ADDRESS}",
    )
    assert (noroute["success"], noroute["reason"]) == (False, "network_error")
    assert noroute["detail"] == "192.0.2.53: Network is unreachable"
    assert noroute["duration_seconds"] < 0.5
