"""ICMP probe against loopback and hosts inside network namespaces this module creates.

Namespace tests run the probe in a child `ip netns exec <ns> python` so ping_group_range, routes
and nft rules change only inside namespaces that are deleted afterwards, never on the host.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from probes.registry import build_probe
from tests.conftest import require_root
from watchdog.config import IcmpProbeConfig
from watchdog.model import ProbeResult

REPO = Path(__file__).resolve().parent.parent
ALL_GROUPS = "0 2147483647"
NO_GROUPS = "1 0"
PROBE_IP, PEER_IP = "198.51.100.1", "198.51.100.2"

# Runs in the namespace: each item is {"config": {...}, "runs": n}; prints one list of results per
# item, logs go to stderr. "drop" as argv[2] turns the child into nobody:nogroup first.
_CHILD = r"""
import asyncio, dataclasses, json, logging, os, sys
import probes.icmp
from probes.registry import build_probe
from watchdog.config import IcmpProbeConfig
items, drop = json.loads(sys.argv[1]), sys.argv[2] == "drop"
if drop:
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
async def main():
    out = []
    for item in items:
        probe = build_probe(IcmpProbeConfig.model_validate(item["config"]))
        out.append([dataclasses.asdict(await probe.run()) for _ in range(item.get("runs", 1))])
    return out
print(json.dumps(asyncio.run(main())))
"""


def cfg(target: str, **extra: Any) -> dict[str, Any]:
    return {"name": "ping", "type": "icmp", "target": target, "count": 3, "timeout": "500ms", **extra}


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=10)


def in_netns(
    ns: str, *configs: dict[str, Any], runs: int = 1, drop: bool = False
) -> tuple[list[list[ProbeResult]], str]:
    items = [{"config": c, "runs": runs} for c in configs]
    proc = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            sys.executable,
            "-c",
            _CHILD,
            json.dumps(items),
            "drop" if drop else "keep",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    results = [
        [ProbeResult(**(r | {"latencies": tuple(r["latencies"])})) for r in per_config]
        for per_config in json.loads(proc.stdout)
    ]
    return results, proc.stderr


def set_ping_groups(ns: str, value: str) -> None:
    sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv4.ping_group_range={value}")


@contextmanager
def netns(tag: str) -> Iterator[str]:
    name = f"wdprobe-{os.getpid()}-{tag}"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


@pytest.fixture
def lone_ns() -> Iterator[str]:
    require_root()
    with netns("lo") as ns:
        yield ns


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    """Namespace `probe` (198.51.100.1, veth vA) linked to `peer` (198.51.100.2, veth vB).

    The probe side routes 203.0.113.0/24 via the peer, which rejects it with ICMP host unreachable
    (its ICMP rate limit off, so every request gets its error).
    """
    require_root()
    with netns("probe") as probe, netns("peer") as peer:
        sh("ip", "-n", probe, "link", "add", "vA", "type", "veth", "peer", "name", "vB", "netns", peer)
        sh("ip", "-n", probe, "addr", "add", f"{PROBE_IP}/24", "dev", "vA")
        sh("ip", "-n", peer, "addr", "add", f"{PEER_IP}/24", "dev", "vB")
        sh("ip", "-n", probe, "link", "set", "vA", "up")
        sh("ip", "-n", peer, "link", "set", "vB", "up")
        sh("ip", "-n", probe, "route", "add", "203.0.113.0/24", "via", PEER_IP)
        sh("ip", "netns", "exec", peer, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.icmp_ratelimit=0")
        nft(
            peer,
            "chain pre { type filter hook prerouting priority 0;"
            " ip daddr 203.0.113.0/24 reject with icmp type host-unreachable }",
        )
        set_ping_groups(probe, ALL_GROUPS)
        yield probe, peer


def nft(ns: str, chain: str) -> None:
    """Add one chain (`chain NAME { hook; rule; ... }`) in its own table of namespace `ns`."""
    name = chain.split()[1]
    body = chain.split("{", 1)[1].rsplit("}", 1)[0]
    lines = "\n  ".join(part.strip() for part in body.split(";") if part.strip())
    ruleset = f"table ip {name} {{\n chain {name} {{\n  {lines}\n }}\n}}\n"
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=ruleset, text=True, check=True, timeout=10)


def only(results: list[list[ProbeResult]]) -> list[ProbeResult]:
    return [per_config[0] for per_config in results]


# --- host namespace: loopback and bad input (no packet leaves the host) ------------------------------


def run_here(**config: Any) -> ProbeResult:
    result: ProbeResult = asyncio.run(build_probe(IcmpProbeConfig.model_validate(cfg(**config))).run())
    if result.reason == "permission":
        pytest.skip(f"no ICMP socket allowed here: {result.detail}")
    return result


def test_loopback_echo_succeeds_with_round_trips() -> None:
    result = run_here(target="127.0.0.1")
    assert (result.success, result.reason) == (True, "")
    assert (result.sent, result.received, len(result.latencies)) == (3, 3, 3)
    assert all(0 < rtt < 0.5 for rtt in result.latencies)
    assert result.detail.startswith("3/3 received, rtt min/avg/max ")
    # Three requests 100 ms apart, then done as soon as the last reply is in.
    assert 0.19 < result.duration_seconds < 0.45


@pytest.mark.parametrize(
    ("extra", "detail"),
    [
        (
            {"source": "198.51.100.77"},
            "cannot use source address 198.51.100.77: Cannot assign requested address",
        ),
        ({"interface": "nosuch0"}, "cannot bind to interface 'nosuch0': No such device"),
    ],
)
def test_unusable_source_or_interface_is_network_error(extra: dict[str, str], detail: str) -> None:
    result = run_here(target="127.0.0.1", **extra)
    assert (result.success, result.reason, result.detail) == (False, "network_error", detail)
    assert (result.sent, result.received) == (0, 0)


# --- namespaces: socket modes ------------------------------------------------------------------------


@pytest.mark.netns
def test_modes_follow_ping_group_range(lone_ns: str) -> None:
    set_ping_groups(lone_ns, NO_GROUPS)
    results, log = in_netns(
        lone_ns,
        cfg("127.0.0.1"),
        cfg("127.0.0.1", mode="raw"),
        cfg("127.0.0.1", mode="unprivileged"),
        cfg("::1"),
        runs=2,
    )
    auto, raw, unprivileged, ipv6 = results
    assert [r.success for r in auto + raw + ipv6] == [True] * 6
    assert unprivileged[0].reason == "permission"
    assert "net.ipv4.ping_group_range 1 0" in unprivileged[0].detail
    # Logged once per probe (each ran twice), saying why.
    assert log.count("using raw ICMP sockets (gid 0 is outside net.ipv4.ping_group_range 1 0)") == 2
    assert log.count("using raw ICMP sockets (configured)") == 1

    set_ping_groups(lone_ns, ALL_GROUPS)
    results, log = in_netns(lone_ns, cfg("127.0.0.1"), cfg("::1"), cfg("127.0.0.1", mode="unprivileged"))
    assert [(r.success, r.received) for r in only(results)] == [(True, 3)] * 3
    assert log.count(f"using unprivileged ICMP sockets (gid 0 is inside net.ipv4.ping_group_range {ALL_GROUPS})") == 2


@pytest.mark.netns
def test_unprivileged_user_needs_ping_group_range(lone_ns: str) -> None:
    set_ping_groups(lone_ns, NO_GROUPS)
    (denied,), _ = in_netns(lone_ns, cfg("127.0.0.1"), drop=True)
    assert (denied[0].success, denied[0].reason) == (False, "permission")
    assert "gid 65534 is outside net.ipv4.ping_group_range 1 0" in denied[0].detail
    assert "CAP_NET_RAW" in denied[0].detail

    set_ping_groups(lone_ns, ALL_GROUPS)
    (allowed,), log = in_netns(lone_ns, cfg("127.0.0.1"), drop=True)
    assert allowed[0].success and "using unprivileged ICMP sockets (gid 65534 is inside" in log


# --- namespaces: a remote host, loss and unreachability ----------------------------------------------


@pytest.mark.netns
def test_remote_host_pinned_to_source_and_interface(pair: tuple[str, str]) -> None:
    probe_ns, _ = pair
    pinned = {"source": PROBE_IP, "interface": "vA"}
    results, _ = in_netns(probe_ns, cfg(PEER_IP, mode="raw", **pinned), cfg(PEER_IP, mode="unprivileged", **pinned))
    assert [(r.success, r.sent, r.received) for r in only(results)] == [(True, 3, 3)] * 2
    # Pinned to the wrong interface, the peer is not reachable from there.
    (wrong,), _ = in_netns(probe_ns, cfg(PEER_IP, interface="lo"))
    assert not wrong[0].success and wrong[0].reason in ("network_error", "timeout")


@pytest.mark.netns
def test_all_requests_dropped_is_timeout_within_the_timeout(pair: tuple[str, str]) -> None:
    probe_ns, peer_ns = pair
    nft(peer_ns, "chain cut { type filter hook input priority 0; icmp type echo-request drop }")
    results, _ = in_netns(
        probe_ns,
        cfg(PEER_IP, mode="raw"),
        cfg(PEER_IP, mode="unprivileged"),
        cfg(PEER_IP, count=20, timeout="400ms"),  # 20 requests 20 ms apart still fit
    )
    raw, unprivileged, many = only(results)
    for result, count, timeout in ((raw, 3, 0.5), (unprivileged, 3, 0.5), (many, 20, 0.4)):
        assert (result.success, result.reason) == (False, "timeout")
        assert (result.sent, result.received, result.latencies) == (count, 0, ())
        assert result.detail == f"{count}/{count} lost"
        assert timeout - 0.01 <= result.duration_seconds < timeout + 0.1


@pytest.mark.netns
def test_every_other_request_dropped_is_partial_loss(pair: tuple[str, str]) -> None:
    probe_ns, peer_ns = pair
    # numgen counts only the echo requests reaching it, so exactly every second one is dropped.
    nft(
        peer_ns,
        "chain cut { type filter hook input priority 0; icmp type echo-request numgen inc mod 2 == 1 drop }",
    )
    results, _ = in_netns(probe_ns, cfg(PEER_IP, count=4, mode="raw"), cfg(PEER_IP, count=4, mode="unprivileged"))
    for result in only(results):
        assert (result.success, result.reason) == (True, "")
        assert (result.sent, result.received, len(result.latencies)) == (4, 2, 2)
        assert result.detail.startswith("2/4 lost, rtt min/avg/max ")
        # The lost replies are waited for until the timeout.
        assert 0.49 <= result.duration_seconds < 0.6


@pytest.mark.netns
def test_unreachable_targets_are_network_errors(pair: tuple[str, str]) -> None:
    probe_ns, _ = pair
    results, _ = in_netns(
        probe_ns,
        cfg("192.0.2.50", mode="raw"),  # no route at all in the probe namespace
        cfg("192.0.2.50", mode="unprivileged"),
        cfg("203.0.113.50", mode="raw"),  # routed via the peer, which rejects it
        cfg("203.0.113.50", mode="unprivileged"),
    )
    no_route_raw, no_route_dgram, router_raw, router_dgram = only(results)
    for result in (no_route_raw, no_route_dgram):
        assert (result.success, result.reason) == (False, "network_error")
        assert result.detail == "cannot send to 192.0.2.50: Network is unreachable"
        assert result.duration_seconds < 0.3
    for result in (router_raw, router_dgram):
        assert (result.success, result.reason) == (False, "network_error")
        assert result.detail == f"3/3 lost: host unreachable from {PEER_IP}"
        # Every request got its error back: no need to wait out the 500 ms timeout.
        assert 0.19 < result.duration_seconds < 0.4
