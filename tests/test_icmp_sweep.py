"""ICMP probes of equal settings run as one sweep over one shared socket, with the same results and
metrics as probes run one by one; different namespaces, sources or DF settings are different sweeps.

The big cases run inside a namespace this module creates (500 addresses on its loopback, one of them
silenced by nft), through the daemon's own wiring (`build_runners`, `build_sweeps`)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_root
from tests.daemon_process import DaemonProcess
from watchdog.config import Config, parse_config
from watchdog.metrics import render_page
from watchdog.model import ProbeResult
from watchdog.runners import ProbeRunner, WatchdogState
from watchdog.wiring import build_runners, build_sweeps, job_specs, sweep_groups

DROPPED = "198.18.20.7"


def address(i: int) -> str:
    return f"198.18.{20 + i // 250}.{1 + i % 250}"


@pytest.fixture(scope="module")
def namespace() -> Iterator[str]:
    """A namespace with 500 lab addresses on its loopback; echo requests to DROPPED are dropped."""
    require_root()
    tag = os.environ.get("WATCHDOG_TEST_LAB_TAG", "")
    name = f"vw{tag}sweep-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        batch = "".join(f"addr add {address(i)}/32 dev lo\n" for i in range(500)) + "link set lo up\n"
        subprocess.run(["ip", "-n", name, "-batch", "-"], input=batch, text=True, check=True, timeout=30)
        ruleset = (
            "table ip cut {\n chain input {\n  type filter hook input priority 0;\n"
            f"  ip daddr {DROPPED} icmp type echo-request drop\n }}\n}}\n"
        )
        subprocess.run(["ip", "netns", "exec", name, "nft", "-f", "-"], input=ruleset, text=True, check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=10)


def icmp_config(targets: list[str], netns: str | None, **extra: str) -> Config:
    settings = {"count": "1", "interval": "1s", "timeout": "500ms"} | ({"netns": netns} if netns else {}) | extra
    common = "".join(f", {k}: {v}" for k, v in settings.items())
    probes = "\n".join(f"  - {{name: p{i:03d}, type: icmp, target: {t}{common}}}" for i, t in enumerate(targets))
    return parse_config(f"probes:\n{probes}\n")


def sweep_once(config: Config) -> tuple[WatchdogState, list[ProbeResult], float]:
    built = build_runners(config)
    (sweep,) = build_sweeps(config, built.probes).values()
    sweep.attach()
    started = time.monotonic()
    results = asyncio.run(sweep.run_once())
    return WatchdogState(probes=built.probes), results, time.monotonic() - started


@pytest.mark.netns
def test_500_targets_answer_in_one_sweep_on_one_socket_and_a_dropped_one_times_out(
    namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="probes.icmp_engine")
    config = icmp_config([address(i) for i in range(500)], namespace)
    assert list(sweep_groups(config)) == [s.id for s in job_specs(config) if s.id.startswith("sweep:")]
    state, results, took = sweep_once(config)

    by_target = {r.target: r for r in results}
    assert len(by_target) == 500
    dropped = by_target.pop(DROPPED)
    assert (dropped.success, dropped.reason, dropped.detail, dropped.sent) == (False, "timeout", "1/1 lost", 1)
    assert 0.49 <= dropped.duration_seconds < 0.6
    assert [(r.success, r.sent, r.received) for r in by_target.values()] == [(True, 1, 1)] * 499
    assert all(r.detail.startswith("1/1 received, rtt min/avg/max ") for r in by_target.values())
    # Each answered probe's duration is its own round trip, not the sweep's.
    assert max(r.duration_seconds for r in by_target.values()) < 0.4
    assert took < 0.5 + 0.4  # the timeout, plus sending 500 requests
    # One socket for all of them, its choice logged once.
    assert len([m for m in caplog.messages if "ICMP sockets" in m]) == 1
    page = render_page(state).decode()
    assert f'vpn_watchdog_probe_success{{probe="p006",target="{DROPPED}",type="icmp"}} 0.0' in page
    assert (
        f'vpn_watchdog_probe_failures_total{{probe="p006",reason="timeout",target="{DROPPED}",type="icmp"}} 1.0' in page
    )
    assert len(re.findall(r"^vpn_watchdog_probe_success\{.*\} 1\.0$", page, re.M)) == 499


def masked(page: str) -> list[str]:
    """The probe series of a page with the values that depend on timing blanked out."""
    timed = ("probe_duration_seconds", "probe_latency_seconds_bucket", "probe_latency_seconds_sum")
    lines = [line for line in page.splitlines() if line.startswith("vpn_watchdog_probe")]
    return [re.sub(r" \S+$", " <t>", line) if any(t in line for t in timed) else line for line in lines]


@pytest.mark.netns
def test_a_sweep_gives_the_results_and_metrics_of_probes_run_one_by_one(namespace: str) -> None:
    # Answered, silently dropped, and unroutable (no route for 192.0.2.0/24 in the namespace).
    targets = [address(0), DROPPED, "192.0.2.9", address(499)]
    config = icmp_config(targets, namespace, count="2")
    swept_state, swept, _ = sweep_once(config)

    alone = [ProbeRunner(r.probe, netns=namespace, timeout=0.5) for r in build_runners(config).probes.values()]

    async def one_by_one() -> list[ProbeResult]:
        return [await r.run_once() for r in alone]

    single = asyncio.run(one_by_one())
    timing = re.compile(r"rtt min/avg/max \S+ ms")
    for a, b in zip(swept, single, strict=True):
        assert (a.probe, a.success, a.reason, a.sent, a.received, len(a.latencies)) == (
            b.probe,
            b.success,
            b.reason,
            b.sent,
            b.received,
            len(b.latencies),
        )
        assert timing.sub("rtt", a.detail) == timing.sub("rtt", b.detail)
    assert [(r.success, r.reason) for r in swept] == [
        (True, ""),
        (False, "timeout"),
        (False, "network_error"),
        (True, ""),
    ]
    assert swept[2].detail == "cannot send to 192.0.2.9: Network is unreachable"
    single_state = WatchdogState(probes={r.name: r for r in alone})
    assert masked(render_page(swept_state).decode()) == masked(render_page(single_state).decode())


def test_probes_run_together_only_when_everything_but_name_and_target_is_equal() -> None:
    config = parse_config(
        """
probes:
  - {name: a, type: icmp, target: 198.18.0.1, interval: 1s}
  - {name: b, type: icmp, target: 198.18.0.2, interval: 1s}
  - {name: other-netns, type: icmp, target: 198.18.0.3, interval: 1s, netns: elsewhere}
  - {name: other-source, type: icmp, target: 198.18.0.4, interval: 1s, source: 198.18.1.1}
  - {name: df, type: icmp, target: 198.18.0.5, interval: 1s, dont_fragment: true}
  - {name: slower, type: icmp, target: 198.18.0.6, interval: 5s}
  - {name: v6, type: icmp, target: "2001:db8::1", interval: 1s}
  - {name: c, type: icmp, target: 198.18.0.7, interval: 1s}
  - {name: dns, type: dns, query: example.test, interval: 1s}
"""
    )
    groups = sorted([p.name for p in members] for members in sweep_groups(config).values())
    assert groups == [["a", "b", "c"], ["df"], ["other-netns"], ["other-source"], ["slower"], ["v6"]]
    # Every ICMP probe runs through its sweep's job; the DNS probe keeps its own.
    probe_jobs = sorted(s.id.split(":")[0] for s in job_specs(config) if not s.id.startswith(("alerts", "exporter")))
    assert probe_jobs == ["probe"] + ["sweep"] * 6


def test_a_sweep_publishes_all_members_at_once_and_a_moved_member_keeps_its_counts() -> None:
    config = icmp_config(["127.0.0.1", "127.0.0.2"], None)
    built = build_runners(config)
    runners = list(built.probes.values())
    first = build_sweeps(config, built.probes)
    (sweep,) = first.values()
    sweep.attach()
    failed = [ProbeResult(r.name, "icmp", r.probe.target, False, 0.5, "timeout", "1/1 lost", sent=1) for r in runners]
    before, copy = sweep.view, dict(sweep.view)
    sweep.publish(failed)
    assert sweep.view is not before and before == copy  # swapped whole, the old view untouched
    assert [r.status.failures["timeout"] for r in runners] == [1, 1]
    assert sweep.changed  # first results are edges: alerting is told once for the sweep
    sweep.publish(failed)
    assert not sweep.changed
    # A reload builds a new sweep over the same runners; a result of the old one still counts.
    (moved,) = build_sweeps(config, built.probes).values()
    moved.attach()
    sweep.publish(failed)
    assert [r.status.failures["timeout"] for r in runners] == [3, 3]
    assert set(moved.view) == {r.name for r in runners}
    runners[0].leave_sweep()
    assert runners[0].status.failures["timeout"] == 3 and runners[0].sweep is None


def runs(page: str, probe: str) -> int:
    match = re.search(rf'^vpn_watchdog_probe_latency_seconds_count{{probe="{probe}",.*}} (\S+)$', page, re.M)
    return int(float(match.group(1))) if match else 0


def test_daemon_reload_keeps_the_counts_of_probes_that_stay_in_a_changed_sweep(tmp_path: Path, port: int) -> None:
    config = tmp_path / "config.yaml"
    probe = "{{name: {}, type: icmp, target: {}, count: 1, interval: 300ms, timeout: 200ms}}"
    config.write_text(f"probes:\n  - {probe.format('a', '127.0.0.1')}\n  - {probe.format('b', '127.0.0.2')}\n")
    daemon = DaemonProcess(config, port, "--log-level", "info")
    try:
        daemon.wait_for('vpn_watchdog_probe_success{probe="a"')
        deadline = time.monotonic() + 15
        while runs(daemon.metrics(), "a") < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        if 'reason="permission"' in daemon.metrics():
            pytest.skip("no ICMP socket allowed here")
        before = runs(daemon.metrics(), "a")
        assert before >= 3
        config.write_text(f"probes:\n  - {probe.format('a', '127.0.0.1')}\n  - {probe.format('c', '127.0.0.3')}\n")
        daemon.signal(signal.SIGHUP)
        page = daemon.wait_for('vpn_watchdog_probe_success{probe="c",target="127.0.0.3",type="icmp"} 1.0')
        assert runs(page, "a") >= before  # carried on, not reset
        assert 'probe="b"' not in page
        # One socket served both sweeps.
        assert sum("ICMP sockets" in str(line["msg"]) for line in daemon.log_lines()) == 1
    finally:
        daemon.stop()


@pytest.mark.netns
def test_a_probe_pinned_to_an_interface_that_is_recreated_recovers_on_a_new_socket() -> None:
    require_root()
    tag = os.environ.get("WATCHDOG_TEST_LAB_TAG", "")
    name = f"vw{tag}iface-{os.getpid()}"

    def ip(*argv: str) -> None:
        subprocess.run(["ip", "-n", name, *argv], check=True, timeout=10)

    def make_link() -> None:
        ip("link", "add", "vx0", "type", "veth", "peer", "name", "vx1")
        ip("addr", "add", "198.18.30.1/24", "dev", "vx0")
        ip("link", "set", "vx0", "up")
        ip("link", "set", "vx1", "up")

    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        ip("link", "set", "lo", "up")
        make_link()
        config = parse_config(
            f"probes: [{{name: pinned, type: icmp, target: 198.18.30.1, interface: vx0, count: 1, "
            f"timeout: 300ms, netns: {name}}}]"
        )
        (runner,) = build_runners(config).probes.values()

        async def runs(n: int) -> list[ProbeResult]:
            return [await runner.run_once() for _ in range(n)]

        assert [r.success for r in asyncio.run(runs(1))] == [True]
        ip("link", "del", "vx0")
        gone = asyncio.run(runs(2))
        assert [(r.success, r.reason) for r in gone] == [(False, "network_error")] * 2
        assert gone[0].detail == "cannot send to 198.18.30.1: No such device"  # the old socket's last send
        assert gone[1].detail == "cannot bind to interface 'vx0': No such device"  # a new socket, not yet usable
        make_link()  # same name, new interface index
        assert [r.success for r in asyncio.run(runs(2))] == [True, True]
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=10)
