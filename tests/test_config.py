"""Config loading: every good example loads, every bad one fails with its exact message naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from watchdog.cli import main
from watchdog.config import load_config, parse_duration
from watchdog.errors import ConfigError

DATA = Path(__file__).parent / "data" / "config"
GOOD = sorted((DATA / "good").glob("*.yaml"))
BAD = sorted((DATA / "bad").glob("*.yaml"))


def expected_error(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# error: "), f"{path.name} must start with '# error: <message>'"
    return first.removeprefix("# error: ")


def test_there_are_many_bad_examples() -> None:
    assert len(BAD) >= 30


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_good_configs_load(path: Path) -> None:
    config = load_config(path)
    assert config.listen


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_configs_fail_with_their_message(path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: {expected_error(path)}"


@pytest.mark.parametrize("path", BAD[:5], ids=lambda p: p.stem)
def test_config_check_exits_2_with_message_and_no_traceback(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected_error(path) in err
    assert "Traceback" not in err


def test_config_check_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "-c", str(DATA / "good" / "example.yaml")]) == 0
    assert "ok (4 exporters, 2 probes, 4 expected prefixes" in capsys.readouterr().out


def test_missing_file_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "-c", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read config: No such file or directory" in capsys.readouterr().err


def test_config_path_from_environment(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("WATCHDOG_CONFIG", str(DATA / "good" / "minimal.yaml"))
    assert main(["config", "check"]) == 0
    assert "minimal.yaml: ok" in capsys.readouterr().out


def test_defaults_and_effective_timing() -> None:
    config = load_config(DATA / "good" / "example.yaml")
    aws, gcp, swan = config.exporters[0], config.exporters[1], config.exporters[2]
    assert config.exporter_interval(aws) == 30.0 and config.exporter_timeout(aws) == 30.0
    assert config.exporter_interval(swan) == 5.0 and config.exporter_timeout(swan) == 5.0
    assert gcp.routers == () and config.alertmanager is not None and config.alertmanager.for_ == 10.0
    assert config.probes[0].timeout == 2.0 and config.expected_prefixes[1].min_paths == 4


def test_poll_timeout_is_capped_at_60s() -> None:
    config = load_config(DATA / "good" / "cheap-mode.yaml")
    aws = config.exporters[0]
    assert config.exporter_timeout(aws) == 5.0
    from watchdog.config import parse_config

    slow = parse_config("interval: 10m\nexporters: [{name: a, type: frr}]\n")
    assert slow.exporter_timeout(slow.exporters[0]) == 60.0


@pytest.mark.parametrize(
    ("text", "seconds"), [("500ms", 0.5), ("15s", 15.0), ("1m", 60.0), ("1h", 3600.0), ("2.5s", 2.5), (3, 3.0)]
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_config_is_frozen() -> None:
    config = load_config(DATA / "good" / "minimal.yaml")
    with pytest.raises(ValidationError):
        config.listen = "x"  # type: ignore[misc]
