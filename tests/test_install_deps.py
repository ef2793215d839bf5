"""scripts/install-deps.sh decides what to (re)install: pip only when pyproject.toml changed since the
last good install, apt only for missing packages and waiting for the dpkg lock.

The script runs on a copy of itself and pyproject.toml, with fakes of dpkg-query, apt-get, id and the
virtualenv's python first on PATH that record how they were called: nothing is installed, nothing
leaves the machine, no root needed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "install-deps.sh"

FAKE_PYTHON = """#!/bin/sh
echo "python $*" >>"$FAKE_CALLS"
case "$*" in
  *"pip install"*" -e "*) exit "${FAKE_PIP_RC:-0}" ;;
esac
exit 0
"""
FAKE_DPKG_QUERY = """#!/bin/sh
for pkg in $FAKE_MISSING; do [ "$pkg" = "$3" ] && exit 1; done
printf 'install ok installed'
"""
FAKE_RECORDER = """#!/bin/sh
echo "$(basename "$0") $*" >>"$FAKE_CALLS"
"""


def checked_tools() -> list[str]:
    """The tools the script insists on at the end (its `for tool in ...` list)."""
    text = SCRIPT.read_text()
    block = re.search(r"for tool in (.*?); do", text, re.S)
    assert block is not None
    return block.group(1).replace("\\\n", " ").split()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for tool in checked_tools():
        if tool.startswith("/") and not os.access(tool, os.X_OK):
            pytest.skip(f"{tool} is not installed (scripts/install-deps.sh installs it)")
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, root / "scripts" / "install-deps.sh")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    venv_bin = root / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    fakes = tmp_path / "bin"
    fakes.mkdir()
    scripts = {"dpkg-query": FAKE_DPKG_QUERY, "id": "#!/bin/sh\necho 0\n"}
    for name in ("apt-get", "debconf-set-selections", *(t for t in checked_tools() if not t.startswith("/"))):
        scripts.setdefault(name, FAKE_RECORDER)
    for name, text in scripts.items():
        (fakes / name).write_text(text)
        (fakes / name).chmod(0o755)
    (venv_bin / "python").write_text(FAKE_PYTHON)
    (venv_bin / "python").chmod(0o755)
    return root


def install(root: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    calls = root.parent / "calls.log"
    calls.write_text("")
    result = subprocess.run(
        ["bash", str(root / "scripts" / "install-deps.sh")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": f"{root.parent / 'bin'}:{os.environ['PATH']}", "FAKE_CALLS": str(calls), **env},
    )
    return result, calls.read_text().splitlines()


def pip_installs(calls: list[str]) -> list[str]:
    return [c for c in calls if "pip install" in c and " -e " in c]


def test_second_run_checks_instead_of_reinstalling(tree: Path) -> None:
    first, calls = install(tree)
    assert first.returncode == 0, first.stderr
    assert pip_installs(calls) == ["python -m pip install -q -e .[test]"]
    assert "install-deps: ok" in first.stdout

    second, calls = install(tree)
    assert second.returncode == 0, second.stderr
    assert pip_installs(calls) == []
    assert "install-deps: .venv up to date (pyproject.toml unchanged)" in second.stdout
    assert len(second.stdout.splitlines()) <= 4  # a check, not a reinstall's worth of noise


def test_changed_pyproject_reinstalls(tree: Path) -> None:
    assert install(tree)[0].returncode == 0
    with (tree / "pyproject.toml").open("a") as f:
        f.write("\n# a new dependency\n")
    result, calls = install(tree)
    assert result.returncode == 0, result.stderr
    assert len(pip_installs(calls)) == 1


def test_failed_pip_install_fails_loudly_and_is_retried_next_run(tree: Path) -> None:
    failed, _ = install(tree, FAKE_PIP_RC="1")
    assert failed.returncode == 1
    assert "install-deps: pip install failed (full log: .venv/pip.log)" in failed.stderr
    assert not (tree / ".venv" / ".install-deps-stamp").exists()
    retried, calls = install(tree)
    assert retried.returncode == 0 and len(pip_installs(calls)) == 1


def test_missing_package_is_installed_waiting_for_the_dpkg_lock(tree: Path) -> None:
    result, calls = install(tree, FAKE_MISSING="fping nftables")
    assert result.returncode == 0, result.stderr
    apt = [c for c in calls if c.startswith("apt-get ")]
    assert apt == [
        "apt-get -o DPkg::Lock::Timeout=300 update -qq",
        "apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends fping nftables",
    ]
    again, calls = install(tree)
    assert "install-deps: Debian packages present" in again.stdout
    assert not [c for c in calls if c.startswith("apt-get")]
