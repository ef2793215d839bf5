"""DESIGN.md "Import names": when a foreign package takes one of our import names, every entry point
exits 2 with one line naming where the foreign package is and how to fix it, never an ImportError."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The first lines of PyPI watchdog's own watchdog/__init__.py (a filesystem-events library).
FOREIGN_INIT = """# Copyright 2011 Yesudeep Mangalapilly <yesudeep@gmail.com>
# Copyright 2012 Google, Inc & contributors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
"""


def run(argv: list[str], pythonpath: list[Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in pythonpath)}
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, cwd=cwd, timeout=60)


def assert_one_line_exit_2(result: subprocess.CompletedProcess[str], location: Path, name: str = "watchdog") -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"vpn-watchdog: the '{name}' package at {location} is not vpn-watchdog's")
    assert "own virtual environment" in lines[0] and "pipx" in lines[0]


@pytest.mark.parametrize("name", ["watchdog", "exporters", "probes"])
def test_a_shadowing_package_is_named_with_the_fix(tmp_path: Path, name: str) -> None:
    foreign = tmp_path / "site" / name
    foreign.mkdir(parents=True)
    (foreign / "__init__.py").write_text(FOREIGN_INIT)
    # The foreign folder comes first on the path, as a later `pip install watchdog` would win.
    result = run(["-m", "vpn_watchdog", "--version"], [tmp_path / "site", ROOT], tmp_path)
    assert_one_line_exit_2(result, foreign, name)
    if name == "watchdog":
        assert "PyPI's 'watchdog'" in result.stderr


def test_our_packages_pass_the_check(tmp_path: Path) -> None:
    result = run(["-m", "vpn_watchdog", "--version"], [ROOT], tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("vpn-watchdog "), result.stderr


@pytest.mark.slow
def test_the_real_pypi_watchdog_package(tmp_path: Path) -> None:
    """Installs PyPI's `watchdog` (the first package that collides) beside ours, from the registry."""
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), "watchdog"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if install.returncode != 0:
        if "Could not find a version" in install.stderr or "NewConnectionError" in install.stderr:
            pytest.skip(f"the package registry cannot be reached: {install.stderr.strip()[-200:]}")
        pytest.fail(install.stderr)
    assert (target / "watchdog" / "observers").is_dir()  # really the filesystem-events library
    for argv in (["-m", "vpn_watchdog", "run"], ["-m", "vpn_watchdog", "config", "check"]):
        assert_one_line_exit_2(run(argv, [target, ROOT], tmp_path), target / "watchdog")
