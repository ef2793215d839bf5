"""What build this is: version, source revision and Python version, for `--version` and
`vpn_watchdog_build_info`. The revision comes from `$VPN_WATCHDOG_REVISION` (set by the container
build), else from git when running from a checkout, else "unknown". Looked up once per process.
"""

from __future__ import annotations

import functools
import os
import sys

from watchdog import __version__

__all__ = ["__version__", "python_version", "revision"]


@functools.cache
def revision() -> str:
    env = os.environ.get("VPN_WATCHDOG_REVISION", "").strip()
    if env:
        return env
    root = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    if not os.path.exists(os.path.join(root, ".git")):
        return "unknown"
    try:
        found = _read_head(root)
    except (OSError, UnicodeDecodeError):
        found = None
    if found:
        return found
    import subprocess

    try:
        out = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def _read_head(root: str | os.PathLike[str]) -> str | None:
    """HEAD's commit read from the repository's files (a checkout, a worktree): `git rev-parse`
    costs a process start, as much as the rest of `watchdog --version`. None: ask git."""
    git = os.path.join(root, ".git")
    if os.path.isfile(git):  # a worktree or submodule: "gitdir: <path>"
        kind, _, where = _read(git).partition(":")
        if kind.strip() != "gitdir":
            return None
        git = os.path.realpath(os.path.join(root, where.strip()))
    head = _read(os.path.join(git, "HEAD"))
    if not head.startswith("ref:"):
        return _short(head)  # detached
    ref = head.removeprefix("ref:").strip()
    common = git
    if os.path.isfile(os.path.join(git, "commondir")):  # a worktree's branches live in the main repository
        common = os.path.realpath(os.path.join(git, _read(os.path.join(git, "commondir"))))
    for base in (git, common):
        if os.path.isfile(os.path.join(base, ref)):
            return _short(_read(os.path.join(base, ref)))
    if os.path.isfile(os.path.join(common, "packed-refs")):
        for line in _read(os.path.join(common, "packed-refs")).splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return _short(sha)
    return None


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


def _short(sha: str) -> str | None:
    return sha[:12] if len(sha) == 40 and all(c in "0123456789abcdef" for c in sha) else None


def python_version() -> str:
    return sys.version.split()[0]  # as platform.python_version(), without importing platform
