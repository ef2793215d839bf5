"""`watchdog --version` and `--help` start fast: they load none of the config code or the SDKs
(pydantic, yaml, dnspython, boto3, google, scapy), which cost most of a command's start-up, and
the revision `--version` names is read from the checkout's git files without starting git."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from watchdog import __version__, buildinfo

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pydantic", "yaml", "dns", "boto3", "botocore", "google", "scapy", "exporters", "probes", "watchdog.config")
CHECK = (
    "import sys\n"
    "from vpn_watchdog import main\n"
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


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, env=env, timeout=30)
    return done.stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_revision_is_read_without_starting_git(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "commit", "-q", "--allow-empty", "-m", "one")
    first = git(repo, "rev-parse", "--short=12", "HEAD")
    assert buildinfo._read_head(repo) == first  # loose ref

    git(repo, "commit", "-q", "--allow-empty", "-m", "two")
    git(repo, "pack-refs", "--all")
    second = git(repo, "rev-parse", "--short=12", "HEAD")
    assert buildinfo._read_head(repo) == second  # packed ref

    git(repo, "worktree", "add", "-q", "-b", "side", str(tmp_path / "side"), first)
    assert buildinfo._read_head(tmp_path / "side") == first  # a worktree's own branch

    git(repo, "checkout", "-q", "--detach", first)
    assert buildinfo._read_head(repo) == first  # detached HEAD
