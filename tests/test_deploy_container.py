"""deploy/container: the Dockerfile builds from what it copies, and the compose stack's wiring holds.

No container engine runs here, so the image is checked the way a build would fail: every COPY source
exists and survives the .dockerignore, the copied tree alone builds the distribution, ENTRYPOINT is
the console script pyproject.toml defines and CMD parses with the real CLI. The compose stack is
checked by following every reference: mounted files exist, ports and service names agree between
compose, the daemon config, prometheus.yml and Grafana's datasource, and promtool accepts the config.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from watchdog.cli import build_parser
from watchdog.config import DEFAULT_CONFIG_PATH, parse_config, parse_host_port

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "deploy" / "container"
DOCKERFILE = HERE / "Dockerfile"
COMPOSE = yaml.safe_load((HERE / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


# -- the Dockerfile -------------------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or (line.startswith("#") and not pending):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


DOCKER = instructions(DOCKERFILE.read_text())


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, args in DOCKER:
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, args))
    return found


def final(keyword: str) -> str:
    values = [args for kw, args in stages()[-1] if kw == keyword]
    assert values, f"the final stage has no {keyword}"
    return values[-1]


def copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY from the build context (not --from another stage)."""
    found = []
    for keyword, args in DOCKER:
        if keyword != "COPY":
            continue
        words = shlex.split(args)
        if any(w.startswith("--from") for w in words):
            continue
        words = [w for w in words if not w.startswith("--")]
        found.append((words[:-1], words[-1]))
    assert found, "the Dockerfile copies nothing from the build context"
    return found


def ignored(path: str) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; `!` re-includes."""
    result = False
    for line in (HERE / "Dockerfile.dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        parts = PurePosixPath(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern == "**" or any(fnmatch.fnmatch(p, pattern) for p in prefixes):
            result = not negate
    return result


def test_every_copy_source_exists_and_is_not_dockerignored() -> None:
    for sources, _ in copies():
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the build context"
            assert not ignored(source.rstrip("/")), f"COPY {source}: excluded by Dockerfile.dockerignore"


def test_dockerignore_keeps_bytecode_out() -> None:
    assert ignored("watchdog/__pycache__/cli.cpython-311.pyc")
    assert ignored(".venv/bin/python") and ignored("tests/test_config.py")
    assert not ignored("watchdog/cli.py")


def test_the_copied_tree_alone_builds_the_distribution(tmp_path: Path) -> None:
    """What the build stage's `pip install .` sees: only the COPYed files."""
    context = tmp_path / "src"
    context.mkdir()
    for sources, dest in copies():
        for source in sources:
            src = ROOT / source
            target = context / dest if dest.endswith("/") and dest != "./" else context
            if src.is_dir():
                shutil.copytree(src, context / dest, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, target / src.name)
    # The image's `pip install .` builds a wheel: it must find every data file pyproject.toml names.
    wheel = subprocess.run(
        [sys.executable, "-c", "from setuptools import build_meta as b; print(b.build_wheel('wheel'))"],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert wheel.returncode == 0, wheel.stderr[-2000:] + wheel.stdout[-2000:]
    script = "from setuptools import build_meta as b; print(b.build_sdist('dist'))"
    built = subprocess.run(
        [sys.executable, "-c", script], cwd=context, capture_output=True, text=True, timeout=60, check=False
    )
    assert built.returncode == 0, built.stderr[-2000:]
    sdist = context / "dist" / built.stdout.strip().splitlines()[-1]
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
        entry_points = next(n for n in names if n.endswith("egg-info/entry_points.txt"))
        handle = tar.extractfile(entry_points)
        assert handle is not None
        assert "watchdog = vpn_watchdog:main" in handle.read().decode()
    top = {n.split("/", 1)[1] for n in names if "/" in n}
    assert {"vpn_watchdog.py", "LICENSE"} <= top, "the entry module and the license must be in the sdist"
    packaged = {n.split("/", 1)[1] for n in names if n.endswith("/__init__.py") and "/" in n}
    for package in ("watchdog", "exporters", "probes"):
        for init in (ROOT / package).rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                assert str(init.relative_to(ROOT)) in packaged, f"{init.relative_to(ROOT)} missing from the build"


def test_entrypoint_is_the_console_script_from_pyproject() -> None:
    entrypoint = json.loads(final("ENTRYPOINT"))
    assert entrypoint == ["watchdog"]
    # vpn_watchdog:main checks that the `watchdog` package is ours before importing it (Import names).
    assert PYPROJECT["project"]["scripts"]["watchdog"] == "vpn_watchdog:main"
    # The venv's bin directory (where pip puts the script) is first on PATH.
    env = final("ENV")
    assert re.search(r"PATH=/opt/vpn-watchdog/bin:", env), env
    assert "python -m venv /opt/vpn-watchdog" in " ".join(args for _, args in stages()[0])


def test_cmd_is_a_valid_run_command_line() -> None:
    cmd = json.loads(final("CMD"))
    args = build_parser().parse_args(cmd)
    assert args.command == "run" and args.config == DEFAULT_CONFIG_PATH


def test_base_image_is_python_311_slim_in_both_stages() -> None:
    arg = next(args for kw, args in DOCKER if kw == "ARG" and args.startswith("PYTHON_IMAGE="))
    assert arg == "PYTHON_IMAGE=python:3.11-slim"
    assert [args.split()[0] for kw, args in DOCKER if kw == "FROM"] == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]


def test_runs_as_a_non_root_user_and_only_the_opt_in_interpreter_has_net_raw() -> None:
    user = final("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, f"USER {user} must be a numeric non-root uid (runAsNonRoot)"
    runs = " ".join(args for kw, args in stages()[-1] if kw == "RUN")
    assert f"--uid {uid}" in runs
    assert "libpcap0.8" in runs
    # The capability sits on a copy inside the venv; the default interpreter (the console script's) has
    # none, so the default entry point starts with no capability in the bounding set at all.
    assert "setcap cap_net_raw+ep /opt/vpn-watchdog/bin/python-netraw" in runs
    assert not re.search(r"setcap \S+ \S*(/usr/local/bin/python|readlink)", runs)
    text = DOCKERFILE.read_text()
    assert "--cap-add NET_RAW" in text and "allowPrivilegeEscalation: true" in text
    assert "--entrypoint /opt/vpn-watchdog/bin/python-netraw" in text


def test_exposed_port_and_healthcheck_match_the_default_listen_address() -> None:
    _, default_port = parse_host_port(parse_config("").listen)
    assert final("EXPOSE") == str(default_port)
    health = final("HEALTHCHECK")
    assert f"http://127.0.0.1:{default_port}/healthz" in health


# -- the compose stack ----------------------------------------------------------------------------


def mounts(service: str) -> dict[str, Path]:
    """container path -> host path of the service's bind mounts (relative to the compose file)."""
    found = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            found[target] = (HERE / source).resolve()
    return found


def host_path(service: str, container_path: str) -> Path:
    """Where a path inside a service's container comes from on the host (longest mount wins)."""
    best = ""
    for target in mounts(service):
        if (container_path == target or container_path.startswith(target.rstrip("/") + "/")) and len(target) > len(
            best
        ):
            best = target
    assert best, f"{service}: nothing is mounted at {container_path}"
    return mounts(service)[best] / container_path[len(best) :].lstrip("/")


def published(service: str) -> dict[int, int]:
    """container port -> host port."""
    result = {}
    for port in SERVICES[service].get("ports", []):
        host, container = str(port).rsplit(":", 1)[-2:] if str(port).count(":") else (port, port)
        result[int(container)] = int(str(host).rsplit(":", 1)[-1])
    return result


def flag(service: str, name: str) -> str:
    for arg in SERVICES[service]["command"]:
        if arg.startswith(f"--{name}="):
            return str(arg.split("=", 1)[1])
    raise AssertionError(f"{service}: no --{name} flag")


PROMETHEUS_YML = yaml.safe_load((HERE / "prometheus.yml").read_text())
WATCHDOG_CONFIG = parse_config(
    host_path("watchdog", DEFAULT_CONFIG_PATH).read_text(), source=str(host_path("watchdog", DEFAULT_CONFIG_PATH))
)


def test_the_four_services() -> None:
    assert set(SERVICES) == {"watchdog", "prometheus", "alertmanager", "grafana"}


def test_every_bind_mount_exists() -> None:
    missing = [
        f"{service}: {target} <- {source}"
        for service in SERVICES
        for target, source in mounts(service).items()
        if not source.exists()
    ]
    assert not missing, "bind mounts whose source does not exist:\n" + "\n".join(missing)


def test_watchdog_builds_this_dockerfile_with_no_capability() -> None:
    service = SERVICES["watchdog"]
    build = service["build"]
    assert (HERE / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert service["cap_drop"] == ["ALL"] and "cap_add" not in service
    assert service["read_only"] is True and "/tmp" in service["tmpfs"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["sysctls"]["net.ipv4.ping_group_range"] == "{0} {0}".format(final("USER").split(":")[1])
    args = build_parser().parse_args(service["command"])
    assert args.command == "run" and args.config == DEFAULT_CONFIG_PATH


def test_watchdog_port_matches_its_config_and_the_scrape_target() -> None:
    _, port = parse_host_port(WATCHDOG_CONFIG.listen)
    assert port in published("watchdog")
    jobs = {job["job_name"]: job for job in PROMETHEUS_YML["scrape_configs"]}
    targets = [t for sc in jobs["vpn-watchdog"]["static_configs"] for t in sc["targets"]]
    assert targets == [f"watchdog:{port}"]


def test_alertmanager_is_reached_by_service_name_and_port_from_both_senders() -> None:
    port = int(flag("alertmanager", "web.listen-address").rsplit(":", 1)[1])
    assert port in published("alertmanager")
    assert WATCHDOG_CONFIG.alertmanager is not None
    assert WATCHDOG_CONFIG.alertmanager.urls == (f"http://alertmanager:{port}",)
    targets = [
        t for am in PROMETHEUS_YML["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]
    ]
    assert targets == [f"alertmanager:{port}"]


def test_alertmanager_config_file_is_mounted() -> None:
    path = host_path("alertmanager", flag("alertmanager", "config.file"))
    assert path.is_file(), f"alertmanager --config.file comes from {path}, which does not exist"


def test_prometheus_loads_the_rules_of_deploy_prometheus() -> None:
    assert host_path("prometheus", flag("prometheus", "config.file")) == HERE / "prometheus.yml"
    (pattern,) = PROMETHEUS_YML["rule_files"]
    on_host = host_path("prometheus", pattern)
    assert on_host.parent == ROOT / "deploy" / "prometheus"
    assert glob.glob(str(on_host)), f"rule_files {pattern} matches nothing in deploy/prometheus/"


def test_promtool_accepts_the_prometheus_config(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing (Debian package `prometheus`)")
        pytest.skip("promtool is not installed")
    config = dict(PROMETHEUS_YML)
    config["rule_files"] = [str(host_path("prometheus", p)) for p in PROMETHEUS_YML["rule_files"]]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_grafana_reads_prometheus_and_the_dashboards_of_deploy_grafana() -> None:
    provisioning = host_path("grafana", "/etc/grafana/provisioning")
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    port = int(flag("prometheus", "web.listen-address").rsplit(":", 1)[1])
    assert datasource["url"] == f"http://prometheus:{port}" and port in published("prometheus")
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "vpn-watchdog.yml").read_text())["providers"]
    dashboards = host_path("grafana", provider["options"]["path"])
    assert dashboards == ROOT / "deploy" / "grafana"
    assert list(dashboards.glob("*.json")), "deploy/grafana/ holds no dashboard JSON yet"


def test_the_compose_watchdog_config_is_valid() -> None:
    assert {e.type for e in WATCHDOG_CONFIG.exporters} == {"aws", "gcp"}


# -- the capability model, run for real -------------------------------------------------------------

_CAP_BITS = {"cap_net_raw": 13}


def file_capability(spec: str) -> bytes:
    """`cap_net_raw+ep` as the `security.capability` xattr setcap writes (VFS_CAP_REVISION_2)."""
    name, _, flags = spec.partition("+")
    assert set(flags) <= {"e", "p"} and "p" in flags, f"unexpected capability flags in {spec}"
    magic = 0x02000000 | (0x1 if "e" in flags else 0)
    return struct.pack("<5I", magic, 1 << _CAP_BITS[name], 0, 0, 0)


def run_as_image_user(interpreter: Path, bounding: str) -> subprocess.CompletedProcess[str]:
    uid = final("USER").split(":")[0]
    script = "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); print('raw ok')"
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is missing"
    argv = [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all"]
    argv += [f"--bounding-set={bounding}", str(interpreter), "-c", script]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def test_the_file_capability_gives_the_image_user_raw_sockets_only_with_net_raw_in_the_runtime() -> None:
    """The Dockerfile's setcap on a copy of a Python interpreter, run as the image's uid: raw sockets
    work with NET_RAW in the bounding set (cap_add), the same copy without it cannot even start, and an
    interpreter without the file capability gets EPERM (the control)."""
    from tests.conftest import require_root

    require_root()
    (spec,) = re.findall(r"setcap (\S+) ", " ".join(args for kw, args in stages()[-1] if kw == "RUN"))
    source = Path("/usr/bin/python3").resolve() if Path("/usr/bin/python3").exists() else Path(sys.executable).resolve()
    directory = Path(tempfile.mkdtemp(prefix="vpn-watchdog-image-"))
    try:
        directory.chmod(0o755)
        with_cap, plain = directory / "python-netraw", directory / "python-plain"
        shutil.copy(source, with_cap)
        shutil.copy(source, plain)
        os.setxattr(with_cap, "security.capability", file_capability(spec))

        granted = run_as_image_user(with_cap, "-all,+net_raw")
        assert granted.returncode == 0 and "raw ok" in granted.stdout, granted.stderr
        refused = run_as_image_user(with_cap, "-all")
        assert refused.returncode != 0 and "Operation not permitted" in refused.stderr
        control = run_as_image_user(plain, "-all,+net_raw")
        assert control.returncode != 0 and "PermissionError" in control.stderr
    finally:
        shutil.rmtree(directory, ignore_errors=True)
