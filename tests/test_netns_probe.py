"""Probes with `netns:` really run inside that namespace, and a missing namespace never falls back to the host."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator

import pytest

from probes.registry import build_probe
from tests.conftest import require_root
from watchdog.config import IcmpProbeConfig
from watchdog.runners import ProbeRunner

pytestmark = pytest.mark.netns


@pytest.fixture
def namespace() -> Iterator[str]:
    require_root()
    name = f"vwt-probe-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "addr", "add", "198.18.5.1/32", "dev", "lo"], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def ping(target: str, netns: str) -> tuple[bool, str, str]:
    config = IcmpProbeConfig(name="p", type="icmp", target=target, count=2, timeout=1.0, netns=netns)
    result = asyncio.run(ProbeRunner(build_probe(config), netns=netns).run_once())
    return result.success, result.reason, result.detail


def test_probe_runs_inside_the_namespace(namespace: str) -> None:
    # 198.18.5.1 exists only inside the namespace.
    assert ping("198.18.5.1", namespace)[0] is True
    # With the namespace's loopback down, even 127.0.0.1 fails: proof the socket lives there.
    subprocess.run(["ip", "-n", namespace, "link", "set", "lo", "down"], check=True)
    assert ping("127.0.0.1", namespace)[0] is False


def test_missing_namespace_is_a_probe_failure_not_a_fallback() -> None:
    require_root()
    success, reason, detail = ping("127.0.0.1", "vwt-does-not-exist")
    assert (success, reason) == (False, "network_error")
    assert "network namespace 'vwt-does-not-exist' not found" in detail
