"""Shared test fixtures: a fresh Prometheus registry per test, free loopback ports, root checks."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

# Network rule: no test may reach a cloud metadata service (169.254.169.254 from the host would leave
# the machine). Credential discovery in boto3 and google-auth is pointed at a closed loopback port.
# Subprocesses (the daemon under test) inherit these.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ["GCE_METADATA_HOST"] = "127.0.0.1:9"
os.environ["GCE_METADATA_IP"] = "127.0.0.1:9"
os.environ.pop("GOOGLE_APPLICATION_CREDENTIALS", None)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def port() -> int:
    return free_port()


def lab_prefix(letter: str) -> str:
    """The namespace prefix of a test module's lab: `vw<letter>-`, or `vw<tag><letter>-` with
    `$WATCHDOG_TEST_LAB_TAG` set, so several checkouts can run their lab tests side by side."""
    return f"vw{os.environ.get('WATCHDOG_TEST_LAB_TAG', '')}{letter}-"


def require_root() -> None:
    """Tests that build network namespaces need root; CI runs as root, so there they never skip."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("this test needs root (network namespaces) and CI runs as root")
        pytest.skip("needs root for network namespaces")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`watchdog.cli.main()` configures logging for a real process (root handlers, SDK levels);
    undo that after each test so pytest's log capture and other tests see a clean logging setup."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("botocore", "boto3", "urllib3", "google")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)
