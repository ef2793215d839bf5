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


def test_the_wheel_carries_the_license_the_entry_module_and_its_metadata(tmp_path: Path) -> None:
    import shutil
    import zipfile

    root = Path(__file__).resolve().parents[1]
    tree = tmp_path / "src"
    shutil.copytree(
        root, tree, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "tests", "deploy", "bench")
    )
    script = "from setuptools import build_meta as b; print(b.build_wheel('dist'))"
    built = subprocess.run([sys.executable, "-c", script], cwd=tree, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = zipfile.ZipFile(tree / "dist" / built.stdout.strip().splitlines()[-1])
    names = wheel.namelist()
    info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert "vpn_watchdog.py" in names and f"{info}/licenses/LICENSE" in names
    assert wheel.read(f"{info}/licenses/LICENSE").decode().startswith("MIT License")
    metadata = wheel.read(f"{info}/METADATA").decode()
    assert "License-Expression: MIT" in metadata and "Classifier: Topic :: System :: Monitoring" in metadata
    assert "watchdog = vpn_watchdog:main" in wheel.read(f"{info}/entry_points.txt").decode()
