"""What build this is: version, source revision and Python version, for `--version` and
`vpn_watchdog_build_info`. The revision comes from `$VPN_WATCHDOG_REVISION` (set by the container
build), else from git when running from a checkout, else "unknown". Looked up once per process.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path

from watchdog import __version__

__all__ = ["__version__", "python_version", "revision"]


@functools.cache
def revision() -> str:
    env = os.environ.get("VPN_WATCHDOG_REVISION", "").strip()
    if env:
        return env
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return "unknown"
    try:
        found = _read_head(root)
    except (OSError, UnicodeDecodeError):
        found = None
    if found:
        return found
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def _read_head(root: Path) -> str | None:
    """HEAD's commit read from the repository's files (a checkout, a worktree): `git rev-parse`
    costs a process start, as much as the rest of `watchdog --version`. None: ask git."""
    git = root / ".git"
    if git.is_file():  # a worktree or submodule: "gitdir: <path>"
        kind, _, where = git.read_text(encoding="utf-8").partition(":")
        if kind.strip() != "gitdir":
            return None
        git = (root / where.strip()).resolve()
    head = (git / "HEAD").read_text(encoding="utf-8").strip()
    if not head.startswith("ref:"):
        return _short(head)  # detached
    ref = head.removeprefix("ref:").strip()
    common = git
    if (git / "commondir").is_file():  # a worktree's branches live in the main repository
        common = (git / (git / "commondir").read_text(encoding="utf-8").strip()).resolve()
    for base in (git, common):
        if (base / ref).is_file():
            return _short((base / ref).read_text(encoding="utf-8").strip())
    if (common / "packed-refs").is_file():
        for line in (common / "packed-refs").read_text(encoding="utf-8").splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return _short(sha)
    return None


def _short(sha: str) -> str | None:
    return sha[:12] if len(sha) == 40 and all(c in "0123456789abcdef" for c in sha) else None


def python_version() -> str:
    return platform.python_version()
