"""Entry point of the `watchdog` console script and of `python -m vpn_watchdog`.

vpn-watchdog's import packages are `watchdog`, `exporters` and `probes`, and PyPI has other packages
with those names (`watchdog`, the filesystem-events library, above all). Installed into one
environment, one silently replaces the other and the daemon would die with an obscure ImportError.
So before importing any of them, this module checks that each is ours (its `__init__.py` names
vpn-watchdog); if not, it exits 2 with one line naming the foreign package's location and the fix.
It imports nothing of the project until the check passed, and reads those files only.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence

PACKAGES = ("watchdog", "exporters", "probes")
MARKER = "vpn-watchdog"  # each of our packages' docstrings names the distribution
FIX = "install vpn-watchdog in its own virtual environment (python -m venv) or with pipx"


def foreign_package() -> str | None:
    """The problem with the first of our import names that is not ours, or None when all are."""
    for name in PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError) as exc:
            return f"the '{name}' package cannot be found ({exc}); reinstall vpn-watchdog"
        if spec is None or spec.origin is None:
            return f"the '{name}' package of vpn-watchdog is missing; reinstall vpn-watchdog"
        origin = spec.origin  # os.path, not pathlib: this runs before every command (start-up time)
        location = os.path.dirname(origin) if os.path.basename(origin) == "__init__.py" else origin
        try:
            with open(origin, encoding="utf-8", errors="replace") as handle:
                head = handle.read(4096)
        except OSError:
            head = ""
        if MARKER not in head:
            hint = " (probably PyPI's 'watchdog', the filesystem-events library)" if name == "watchdog" else ""
            return f"the '{name}' package at {location} is not vpn-watchdog's{hint}: {FIX}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    problem = foreign_package()
    if problem is not None:
        print(f"vpn-watchdog: {problem}", file=sys.stderr)
        return 2
    from watchdog.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
