"""Packaging: `import watchdog` must be ours, not the PyPI filesystem-events package of the same name."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import watchdog
from watchdog.assets import ASSETS


def test_import_watchdog_is_vpn_watchdog() -> None:
    assert watchdog.__doc__ is not None and "vpn-watchdog" in watchdog.__doc__
    assert importlib.metadata.version("vpn-watchdog") == watchdog.__version__


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).parent / "watchdog"  # installed next to the interpreter of the venv
    assert exe.exists()
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith(f"vpn-watchdog {watchdog.__version__} (revision ")


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip install .` would build, from a copy of the tree (no venv, tests or lab)."""
    tree = tmp_path_factory.mktemp("src") / "vpn-watchdog"
    skip = shutil.ignore_patterns(".venv", ".git", "__pycache__", "tests", "bench", "lab", "container")
    shutil.copytree(ROOT, tree, ignore=skip)
    script = "from setuptools import build_meta as b; print(b.build_wheel('dist'))"
    built = subprocess.run([sys.executable, "-c", script], cwd=tree, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr[-2000:]
    return tree / "dist" / built.stdout.strip().splitlines()[-1]


def test_the_wheel_carries_the_license_the_entry_module_and_its_metadata(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert "vpn_watchdog.py" in names and f"{info}/licenses/LICENSE" in names
    assert archive.read(f"{info}/licenses/LICENSE").decode().startswith("MIT License")
    metadata = archive.read(f"{info}/METADATA").decode()
    assert "License-Expression: MIT" in metadata and "Classifier: Topic :: System :: Monitoring" in metadata
    assert "watchdog = vpn_watchdog:main" in archive.read(f"{info}/entry_points.txt").decode()
    data = info.replace(".dist-info", ".data") + "/data/share/vpn-watchdog/"
    assert {data + name for name in ASSETS} <= set(names)


def test_pyproject_installs_exactly_the_assets_deploy_assets_copies() -> None:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        data_files = tomllib.load(handle)["tool"]["setuptools"]["data-files"]
    installed = {
        f"{directory.removeprefix('share/vpn-watchdog').strip('/')}/{Path(f).name}".lstrip("/")
        for directory, files in data_files.items()
        for f in files
    }
    assert installed == set(ASSETS)
    for directory, files in data_files.items():
        for f in files:
            assert f.removeprefix("deploy/").rsplit("/", 1)[0] in directory or "/" not in f.removeprefix("deploy/")


def test_deploy_assets_from_an_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    """Installed into a fresh environment (dependencies borrowed from this one): the rules and the
    dashboard come out byte for byte, and a second run refuses to overwrite them."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    target = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--ignore-installed",  # this environment has vpn-watchdog already (editable)
            "--prefix",
            str(venv),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    deps = next(p for p in sys.path if p.endswith("site-packages"))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": deps}  # .pth files there (our editable install) do not apply
    out = tmp_path / "assets"
    # (the installed script's #! names the interpreter pip ran under, so run the module instead)
    run = [str(python), "-m", "vpn_watchdog", "deploy-assets", str(out)]
    first = subprocess.run(run, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert first.returncode == 0, first.stderr
    where = subprocess.run([str(python), "-c", "import watchdog; print(watchdog.__file__)"], capture_output=True,
                           text=True, env=env, cwd=tmp_path, check=True).stdout  # fmt: skip
    assert where.startswith(target), where  # really the installed copy, not the checkout
    for name in ("prometheus/vpn-watchdog.rules.yml", "grafana/vpn-watchdog.json", "kubernetes/deployment.yaml"):
        assert (out / name).read_bytes() == (ROOT / "deploy" / name).read_bytes(), name
    again = subprocess.run(run, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert again.returncode == 2 and "would overwrite" in again.stderr and "--force" in again.stderr
