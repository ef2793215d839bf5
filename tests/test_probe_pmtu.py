"""Path-MTU probe (`type: pmtu`) and DF ICMP probes over a real three-namespace path.

`probe` (198.51.100.1) -- `router` (198.51.100.2 | 203.0.113.1) -- `target` (203.0.113.2); the router's
link to the target gets a small MTU, so the router answers DF packets that do not fit with ICMP
"fragmentation needed", or (with that ICMP dropped by nft) swallows them: the black hole Cloud VPN is.
The probe runs in a child under `ip netns exec`, so nothing changes on the host.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from probes.icmp_socket import parse
from probes.pmtu import PROBES_PER_ROUND, _spread
from probes.registry import build_probe
from tests.conftest import require_root
from tests.test_probe_icmp import ALL_GROUPS, netns, nft, set_ping_groups, sh
from watchdog.config import PmtuProbeConfig, ProbeConfig
from watchdog.health import ProbeView
from watchdog.model import ProbeResult

REPO = Path(__file__).resolve().parent.parent
TARGET = "203.0.113.2"

_CHILD = r"""
import asyncio, dataclasses, json, sys
from pydantic import TypeAdapter
from probes.registry import build_probe
from watchdog.config import ProbeConfig
configs = [TypeAdapter(ProbeConfig).validate_python(c) for c in json.loads(sys.argv[1])]
async def main():
    return [dataclasses.asdict(await build_probe(c).run()) for c in configs]
print(json.dumps(asyncio.run(main())))
"""


def pmtu(**extra: Any) -> dict[str, Any]:
    return {"name": "pmtu", "type": "pmtu", "target": TARGET, "timeout": "2s", **extra}


def run_in(ns: str, *configs: dict[str, Any]) -> list[ProbeResult]:
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", _CHILD, json.dumps(configs)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    return [ProbeResult(**(r | {"latencies": tuple(r["latencies"])})) for r in json.loads(proc.stdout)]


@pytest.fixture
def path() -> Iterator[dict[str, str]]:
    require_root()
    with ExitStack() as stack:
        probe, router, target = (stack.enter_context(netns(tag)) for tag in ("pm-a", "pm-r", "pm-t"))
        sh("ip", "-n", probe, "link", "add", "vA", "type", "veth", "peer", "name", "vB", "netns", router)
        sh("ip", "-n", router, "link", "add", "vC", "type", "veth", "peer", "name", "vD", "netns", target)
        for ns, dev, address in (
            (probe, "vA", "198.51.100.1/24"),
            (router, "vB", "198.51.100.2/24"),
            (router, "vC", "203.0.113.1/24"),
            (target, "vD", f"{TARGET}/24"),
        ):
            sh("ip", "-n", ns, "addr", "add", address, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", probe, "route", "add", "203.0.113.0/24", "via", "198.51.100.2")
        sh("ip", "-n", probe, "route", "add", "198.18.0.0/15", "via", "198.51.100.2")
        sh("ip", "-n", target, "route", "add", "default", "via", "203.0.113.1")
        sh("ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.icmp_ratelimit=0")
        set_ping_groups(probe, ALL_GROUPS)
        yield {"probe": probe, "router": router, "target": target}


def shrink(path: dict[str, str], mtu: int) -> None:
    sh("ip", "-n", path["router"], "link", "set", "vC", "mtu", str(mtu))
    sh("ip", "-n", path["target"], "link", "set", "vD", "mtu", str(mtu))


@pytest.mark.netns
def test_full_path_is_confirmed_in_one_round(path: dict[str, str]) -> None:
    (result,) = run_in(path["probe"], pmtu())
    assert (result.success, result.path_mtu_bytes) == (True, 1500)
    assert result.detail == f"path MTU 1500 bytes, {PROBES_PER_ROUND} probes in 1 rounds"


@pytest.mark.netns
@pytest.mark.parametrize("mode", ["unprivileged", "raw"])
def test_router_fragmentation_needed_gives_the_exact_mtu(path: dict[str, str], mode: str) -> None:
    shrink(path, 1280)
    (result,) = run_in(path["probe"], pmtu(mode=mode, expect_min_mtu=1300))
    assert (result.success, result.path_mtu_bytes, result.expect_min_mtu_bytes) == (True, 1280, 1300)
    assert result.detail.startswith("path MTU 1280 bytes, ") and result.detail.endswith("below the expected 1300")
    assert result.duration_seconds < 1.0  # errors answer at once: no round waits for a timeout


@pytest.mark.netns
def test_black_hole_without_icmp_is_still_measured_exactly(path: dict[str, str]) -> None:
    shrink(path, 1200)
    nft(path["router"], "chain out { type filter hook output priority 0; icmp type destination-unreachable drop }")
    (result,) = run_in(path["probe"], pmtu(timeout="3s"))
    assert (result.success, result.path_mtu_bytes) == (True, 1200)
    assert "path MTU 1200 bytes" in result.detail


@pytest.mark.netns
def test_local_device_mtu_is_found_without_a_round_trip(path: dict[str, str]) -> None:
    sh("ip", "-n", path["probe"], "link", "set", "vA", "mtu", "1400")
    (result,) = run_in(path["probe"], pmtu(), pmtu(mode="raw"))[:1]
    assert (result.success, result.path_mtu_bytes) == (True, 1400)


@pytest.mark.netns
def test_a_path_that_answers_nothing_fails_and_exports_no_mtu(path: dict[str, str]) -> None:
    nft(path["router"], "chain blackhole { type filter hook forward priority 0; ip daddr 203.0.113.0/24 drop }")
    nft(path["router"], "chain out { type filter hook output priority 0; icmp type destination-unreachable drop }")
    unreachable = {"name": "net", "type": "pmtu", "target": "198.18.5.1", "timeout": "1s"}
    silent, net = run_in(path["probe"], pmtu(timeout="1s"), unreachable)
    assert (silent.success, silent.reason, silent.path_mtu_bytes) == (False, "timeout", 0)
    assert silent.detail == f"no DF packet of 576-1500 bytes came back from {TARGET}"
    assert (net.success, net.path_mtu_bytes) == (False, 0)


@pytest.mark.netns
def test_icmp_probe_with_dont_fragment_fails_where_a_fragmented_one_passes(path: dict[str, str]) -> None:
    shrink(path, 1280)
    icmp = {"name": "big", "type": "icmp", "target": TARGET, "count": 2, "timeout": "500ms", "size": 1400}
    df, fragmented, fits = run_in(
        path["probe"], icmp | {"dont_fragment": True}, icmp, icmp | {"size": 1280, "dont_fragment": True}
    )
    assert (df.success, df.reason) == (False, "network_error")
    assert "fragmentation needed from 198.51.100.2" in df.detail
    assert (fragmented.success, fits.success) == (True, True)


# --- pure parts ------------------------------------------------------------------------------------


def test_spread_covers_the_gap_evenly_and_always_tries_its_top() -> None:
    first = _spread(575, 1501, 8, include_high=True)
    assert first[0] == 576 and first[-1] == 1500 and len(first) == 8
    ten = _spread(1280, 1290, 8)
    assert len(ten) == 8 and ten[0] == 1281 and ten[-1] == 1289
    assert _spread(1280, 1284, 8) == [1281, 1282, 1283]
    assert _spread(1280, 1281, 8) == [] and _spread(5, 9, 0) == []
    for low, high in ((0, 100), (575, 1501), (1000, 1009)):
        picks = _spread(low, high, 8)
        assert all(low < p < high for p in picks) and len(picks) <= 8 and picks == sorted(set(picks))


def test_fragmentation_needed_and_packet_too_big_carry_the_mtu() -> None:
    quoted = bytes([0x45]) + bytes(19) + bytes([8, 0, 0, 0, 0x12, 0x34, 0x00, 0x07])
    v4 = bytes([3, 4, 0, 0, 0, 0, 0x05, 0x00]) + quoted  # next-hop MTU 1280
    reply = parse(v4, "198.51.100.2", ipv6=False, raw=False)
    assert reply is not None and (reply.mtu, reply.identifier, reply.sequence) == (1280, 0x1234, 7)
    assert reply.error == "fragmentation needed from 198.51.100.2"
    v6 = bytes([2, 0, 0, 0, 0, 0, 0x05, 0x00]) + bytes(40) + bytes([128, 0, 0, 0, 0x12, 0x34, 0x00, 0x09])
    reply6 = parse(v6, "2001:db8::1", ipv6=True, raw=False)
    assert reply6 is not None and (reply6.mtu, reply6.sequence) == (1280, 9)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"min_mtu": 1400, "max_mtu": 1300}, "min_mtu 1400 is above max_mtu 1300"),
        ({"expect_min_mtu": 1600}, "expect_min_mtu 1600 must lie between min_mtu 576 and max_mtu 1500"),
        ({"target": "2001:db8::1"}, "min_mtu 576 is below the IPv6 minimum MTU of 1280"),
        ({"min_mtu": 20}, "greater than or equal to 68"),
        ({"source": "2001:db8::2"}, "not the same IP version"),
    ],
)
def test_bad_pmtu_config_names_the_problem(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TypeAdapter(ProbeConfig).validate_python(pmtu(**extra))


def test_unusable_source_is_a_failed_run_not_an_exception() -> None:
    config = PmtuProbeConfig.model_validate(pmtu(target="127.0.0.1", source="198.51.100.77"))
    result = asyncio.run(build_probe(config).run())
    if result.reason == "permission":
        pytest.skip(f"no ICMP socket allowed here: {result.detail}")
    assert (result.success, result.reason, result.path_mtu_bytes) == (False, "network_error", 0)
    assert "cannot use source address 198.51.100.77" in result.detail


def test_loopback_path_mtu_is_max_mtu() -> None:
    result = asyncio.run(build_probe(PmtuProbeConfig.model_validate(pmtu(target="127.0.0.1"))).run())
    if result.reason == "permission":
        pytest.skip(f"no ICMP socket allowed here: {result.detail}")
    assert (result.success, result.path_mtu_bytes) == (True, 1500)


def test_path_mtu_low_alert_fires_after_hold_and_resolves() -> None:
    from tests.test_health import HEALTHY, Phase, labels, play

    low = ProbeView("tun-pmtu", "pmtu", "198.18.1.10", True, "", "path MTU 1100 bytes", 1100, 1300)
    fine = ProbeView("tun-pmtu", "pmtu", "198.18.1.10", True, "", "path MTU 1400 bytes", 1400, 1300)
    run = play([HEALTHY, Phase(11, probes=(low,))])
    (alert,) = run.firing()
    assert labels(alert) == {
        "alertname": "VpnPathMtuLow",
        "severity": "warning",
        "probe": "tun-pmtu",
        "target": "198.18.1.10",
    }
    assert "1100 bytes, below 1300" in alert.summary
    run = play([HEALTHY, Phase(11, probes=(low,)), Phase(12, probes=(fine,))])
    assert run.firing() == [] and len(run.resolved("VpnPathMtuLow")) == 1
