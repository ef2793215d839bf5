"""Hostile and broken config files: one message naming the file (and key or line), exit 2, no traceback.

The corpus in tests/data/config/fuzz/ holds the files; expected.json the message for each (null: the
file is valid). Property-based tests cover the loader and the duration parser beyond the corpus.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchdog.cli import main
from watchdog.config import MAX_INTERVAL, format_duration, load_config, parse_config, parse_duration, validate_config
from watchdog.errors import ConfigError
from watchdog.webconfig import load_web_config
from watchdog.yamlfile import MAX_BYTES, decode, parse_yaml

FUZZ = Path(__file__).parent / "data" / "config" / "fuzz"
EXPECTED: dict[str, str | None] = json.loads((FUZZ / "expected.json").read_text(encoding="utf-8"))
CORPUS = sorted(FUZZ.glob("*.yaml"))


def test_corpus_and_expectations_match() -> None:
    assert sorted(p.name for p in CORPUS) == sorted(EXPECTED)
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_corpus_file_gives_its_message(path: Path) -> None:
    expected = EXPECTED[path.name]
    if expected is None:
        load_config(path)
        return
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: {expected}"


@pytest.mark.parametrize("path", [p for p in CORPUS if EXPECTED[p.name]], ids=lambda p: p.stem)
def test_config_check_exits_2_with_one_line(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "-c", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"watchdog: {path}: {EXPECTED[path.name]}\n"


def test_no_password_in_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    path = FUZZ / "alertmanager-password.yaml"
    assert main(["config", "check", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    # `run` in its own process: it sets up logging for the whole interpreter before loading the config.
    run = subprocess.run(
        [sys.executable, "-m", "watchdog", "run", "-c", str(path), "--listen", "127.0.0.1:1", "--log-level", "debug"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    for text in (err, run.stdout + run.stderr):
        assert "alertmanager.urls[1]" in text and "hunter2" not in text and "admin" not in text


def test_dev_zero_is_refused_after_a_bounded_read(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    assert main(["config", "check", "-c", "/dev/zero"]) == 2
    assert time.monotonic() - started < 5
    assert capsys.readouterr().err == "watchdog: /dev/zero: config file too large: more than 1 MiB\n"


def test_a_50_mb_comment_file_is_refused_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "comments.yaml"
    path.write_text(("#" * 79 + "\n") * 655_360)
    started = time.monotonic()
    assert main(["config", "check", "-c", str(path)]) == 2
    assert time.monotonic() - started < 2
    assert capsys.readouterr().err == f"watchdog: {path}: config file too large: 52428800 bytes, at most 1 MiB\n"


def test_a_file_just_under_the_cap_loads(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    body = "interval: 30s\n"
    path.write_text(body + "#" * (MAX_BYTES - len(body) - 1) + "\n")
    assert load_config(path).interval == 30.0


def test_a_directory_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "-c", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"watchdog: {tmp_path}: cannot read config: Is a directory\n"


def test_every_line_of_a_multi_error_message_has_the_prefix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "two.yaml"
    path.write_text("exporters:\n  - {name: a, type: aws}\n  - {name: b, type: frr, regoin: x}\n")
    assert main(["config", "check", "-c", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"watchdog: {path}: exporters[0].region: required key is missing",
        f"watchdog: {path}: exporters[1].regoin: unknown key",
    ]


def test_empty_config_check_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert main(["config", "check", "-c", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == (
        f"watchdog: {path}: warning: nothing is configured to watch (no exporters, probes or ike section)\n"
    )
    assert captured.out.startswith(f"{path}: ok (0 exporters")


def test_empty_config_probe_once_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("alertmanager: {urls: ['http://127.0.0.1:9093']}\n")
    assert main(["probe", "--once", "-c", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"watchdog: {path}: nothing to check: the config has no exporters and no probes\n"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("utf16.yml", "basic_auth_users: {}\n".encode("utf-16"), "the file is UTF-16 text: save it as UTF-8"),
        ("latin1.yml", b"basic_auth_users: {j\xf6rg: x}\n", "not UTF-8 at line 1, column 21 (byte 0xf6)"),
        ("deep.yml", b"tls_server_config: " + b"[" * 2000 + b"]" * 2000, "nested deeper than 64 levels"),
        ("dup.yml", b"basic_auth_users: {a: x}\nbasic_auth_users: {}\n", "basic_auth_users: duplicate key at line 2"),
    ],
)
def test_web_config_uses_the_same_guarded_loader(tmp_path: Path, name: str, text: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(text)
    with pytest.raises(ConfigError) as info:
        load_web_config(str(path))
    assert str(info.value).startswith(f"{path}: {message}")


def test_web_config_dev_zero() -> None:
    with pytest.raises(ConfigError, match=r"^/dev/zero: web config file too large: more than 1 MiB$"):
        load_web_config("/dev/zero")


# ---- property-based: the duration parser --------------------------------------------------------

ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**1000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.from_regex(r"\A\s*[0-9]{1,30}(\.[0-9]{1,30})?\s*(ms|s|m|h)\s*\Z"),
    st.lists(st.integers(), max_size=3),
)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(ANYTHING)
def test_duration_parser_returns_a_sane_duration_or_raises_value_error(value: Any) -> None:
    try:
        seconds = parse_duration(value, MAX_INTERVAL)
    except ValueError as exc:
        assert len(str(exc)) < 200  # a short message, never the whole input
        return
    assert isinstance(seconds, float) and math.isfinite(seconds) and 0 < seconds <= MAX_INTERVAL


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(["ms", "s", "m", "h"]))
def test_duration_units(number: int, unit: str) -> None:
    factor = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    seconds = number * factor
    if seconds > MAX_INTERVAL:
        with pytest.raises(ValueError, match="is too long: at most 24h"):
            parse_duration(f"{number}{unit}", MAX_INTERVAL)
    else:
        assert parse_duration(f"{number}{unit}", MAX_INTERVAL) == seconds
        assert parse_duration(format_duration(seconds), MAX_INTERVAL) == pytest.approx(seconds)


# ---- property-based: the loader -----------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=20),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(min_size=1, max_size=8), DOCUMENTS, max_size=5))
def test_loader_reads_ordinary_documents_like_pyyaml(document: dict[str, Any]) -> None:
    text = yaml.safe_dump(document, allow_unicode=True)
    assert parse_yaml(text, "doc.yaml") == yaml.safe_load(text)


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_any_bytes_give_a_config_or_a_config_error(data: bytes) -> None:
    try:
        parse_config(decode(data, "fuzz.yaml"), "fuzz.yaml")
    except ConfigError as exc:
        assert all(line.startswith("fuzz.yaml: ") for line in str(exc).splitlines())


CONFIG_VALUES = st.one_of(
    DOCUMENTS,
    st.sampled_from(["30s", "0s", "-1s", "1e9h", "99999999999999999999h", "127.0.0.1:9687", "http://a:b@c", ""]),
    st.floats(allow_nan=True, allow_infinity=True),
)
CONFIGS = st.fixed_dictionaries(
    {},
    optional={
        "listen": CONFIG_VALUES,
        "interval": CONFIG_VALUES,
        "labels": st.dictionaries(st.text(max_size=6), CONFIG_VALUES, max_size=3) | CONFIG_VALUES,
        "exporters": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["a", "b", "a b"]), "type": st.sampled_from(["aws", "gcp", "frr", "x"])},
                optional={"region": CONFIG_VALUES, "interval": CONFIG_VALUES, "timeout": CONFIG_VALUES},
            ),
            max_size=3,
        ),
        "probes": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["p", "q"]), "type": st.sampled_from(["icmp", "dns"])},
                optional={"target": CONFIG_VALUES, "query": CONFIG_VALUES, "count": CONFIG_VALUES},
            ),
            max_size=3,
        ),
        "alertmanager": st.fixed_dictionaries(
            {"urls": st.lists(st.sampled_from(["http://127.0.0.1:9093", "http://u:p@h", "h:1"]), max_size=2)},
            optional={"resend_interval": CONFIG_VALUES, "timeout": CONFIG_VALUES, "for": CONFIG_VALUES},
        ),
    },
)


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(CONFIGS)
def test_any_config_shaped_mapping_gives_a_config_or_a_config_error(raw: dict[str, Any]) -> None:
    try:
        config = validate_config(raw, "c.yaml")
    except ConfigError as exc:
        lines = str(exc).splitlines()
        assert lines and all(line.startswith("c.yaml: ") for line in lines)
        assert not any(":p@" in line for line in lines)  # a URL's password is never echoed
        return
    durations = [config.interval, *(p.interval for p in config.probes), *(p.timeout for p in config.probes)]
    assert all(math.isfinite(d) and 0 < d <= MAX_INTERVAL for d in durations)


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ("bogus", "expected HOST:PORT"),
        ("127.0.0.1:0", "the port must be 1-65535"),
        ("127.0.0.1:65536", "the port must be 1-65535"),
        ("a b:9687", "'a b' is neither an IP address nor a host name"),
        ("::1:9687", "write an IPv6 address in brackets"),
    ],
)
def test_run_refuses_a_bad_listen_flag_before_starting(
    tmp_path: Path, listen: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("probes: []\n")
    with pytest.raises(SystemExit) as info:
        main(["run", "-c", str(config), "--listen", listen])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --listen/--web.listen-address: invalid listen address {listen!r}: {message}" in err
    assert "Traceback" not in err
