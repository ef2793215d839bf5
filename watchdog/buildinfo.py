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


def python_version() -> str:
    return platform.python_version()
