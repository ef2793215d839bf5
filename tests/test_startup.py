"""`watchdog --version` and `--help` start fast: they load none of the config code or the SDKs
(pydantic, yaml, dnspython, boto3, google, scapy), which cost most of a command's start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from watchdog import __version__

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pydantic", "yaml", "dns", "boto3", "botocore", "google", "scapy", "exporters", "probes", "watchdog.config")
CHECK = (
    "import sys\n"
    "from watchdog.cli import main\n"
    "sys.argv = ['watchdog', *sys.argv[1:]]\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    f"    heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
    "    print('loaded:', heavy, file=sys.stderr)\n"
)


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHECK, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        check=False,
    )


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_load_no_config_code_and_no_sdk(flag: str) -> None:
    done = run_cli(flag)

    assert done.returncode == 0
    assert "loaded: []" in done.stderr
    assert (__version__ if flag == "--version" else "usage: watchdog") in done.stdout


def test_help_names_the_default_config_from_the_environment() -> None:
    done = run_cli("run", "--help", WATCHDOG_CONFIG="/srv/vpn/site.yaml")

    assert done.returncode == 0 and "(default: /srv/vpn/site.yaml)" in " ".join(done.stdout.split())
