"""Packaging: `import watchdog` must be ours, not the PyPI filesystem-events package of the same name."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import watchdog


def test_import_watchdog_is_vpn_watchdog() -> None:
    assert watchdog.__doc__ is not None and "vpn-watchdog" in watchdog.__doc__
    assert importlib.metadata.version("vpn-watchdog") == watchdog.__version__


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).parent / "watchdog"  # installed next to the interpreter of the venv
    assert exe.exists()
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith(f"vpn-watchdog {watchdog.__version__} (revision ")
