"""TLS and basic auth on /metrics (exporter-toolkit web config), tested with a real HTTPS client."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest

from tests.daemon_process import DaemonProcess
from watchdog.errors import ConfigError
from watchdog.webconfig import WebConfig, load_web_config


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def fetch(url: str, cafile: Path, user: str | None = None, password: str | None = None) -> int:
    request = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    context = ssl.create_default_context(cafile=str(cafile))
    try:
        with urllib.request.urlopen(request, context=context, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_https_with_basic_auth(tmp_path: Path, port: int, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    hashed = bcrypt.hashpw(b"s3cret-scrape", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\nbasic_auth_users:\n  prom: '{hashed}'\n"
    )
    config = tmp_path / "config.yaml"
    config.write_text(f"web_config_file: {web}\n")
    daemon = DaemonProcess(config, port)
    try:
        daemon.wait_for_log("serving /metrics and /healthz on https://")
        url = f"https://127.0.0.1:{port}/metrics"
        assert fetch(url, cert) == 401
        assert fetch(url, cert, "prom", "wrong") == 401
        assert fetch(url, cert, "nobody", "s3cret-scrape") == 401
        assert fetch(url, cert, "prom", "s3cret-scrape") == 200
        assert fetch(url, cert, "prom", "s3cret-scrape") == 200  # cached verification path
        with pytest.raises(OSError):  # plain HTTP is not served
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
    finally:
        assert daemon.stop() == 0
    assert "s3cret-scrape" not in daemon.log.read_text()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("basic_auth_users: {prom: plain}\n", "basic_auth_users.prom: not a bcrypt hash"),
        ("basic_auth_users: {prom: $2b$10$short}\n", "basic_auth_users.prom: not a bcrypt hash"),
        (f"basic_auth_users: {{prom: '$2b$31${'a' * 53}'}}\n", "basic_auth_users.prom: bcrypt cost 31 is outside 4-14"),
        (f"basic_auth_users: {{prom: '$2b$03${'a' * 53}'}}\n", "basic_auth_users.prom: bcrypt cost 3 is outside 4-14"),
        ("tls_server_config: {cert_file: a.crt}\n", "tls_server_config.key_file: required key is missing"),
        (
            "tls_server_config: {cert_file: a.crt, key_file: b.key, ciphers: x}\n",
            "tls_server_config.ciphers: unknown key",
        ),
        ("tls_server_config: {cert_file: /nope.crt, key_file: /nope.key}\n", "cannot load certificate or key"),
        ("users: {}\n", "users: unknown key"),
    ],
)
def test_bad_web_config(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_web_config(str(path))


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_overlong_password_or_unusable_hash_is_a_plain_refusal() -> None:
    """bcrypt raises on passwords over 72 bytes and on hashes it cannot read; any client could send
    one for a known user, so it must be a 401, never an exception in the request thread."""
    good = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4))
    web = WebConfig(users={"prom": good, "broken": b"$2b$10$garbage"})
    assert web.check_authorization(basic("prom", "s3cret")) is True
    assert web.check_authorization(basic("prom", "s" * 73)) is False
    assert web.check_authorization(basic("prom", "\u00e9" * 40)) is False  # 80 bytes of UTF-8
    assert web.check_authorization(basic("broken", "anything")) is False


def test_healthz_is_open_but_error_texts_need_credentials(tmp_path: Path, port: int) -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prom: '{hashed}'\n")
    config = tmp_path / "config.yaml"
    # an AWS exporter pointed at a closed port: its poll fails with an error text naming the endpoint
    config.write_text(
        f"web_config_file: {web}\nexporters:\n  - name: aws-x\n    type: aws\n    region: ap-northeast-1\n"
        f"    endpoint_url: http://127.0.0.1:1\n    timeout: 2s\n"
    )
    daemon = DaemonProcess(config, port)
    try:
        daemon.wait_for_log("aws-x")
        url = f"http://127.0.0.1:{port}/healthz"
        deadline = time.monotonic() + 20
        while True:
            request = urllib.request.Request(url, headers={"Authorization": basic("prom", "s3cret")})
            with urllib.request.urlopen(request, timeout=5) as response:
                authorized = json.loads(response.read())
            if authorized["exporters"]["aws-x"]["last_error"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert "127.0.0.1:1" in authorized["exporters"]["aws-x"]["last_error"]
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                anonymous = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 503 while the exporter is down: still a JSON body
            anonymous = json.loads(exc.read())
        assert anonymous["exporters"]["aws-x"].keys() == {"up", "stale"}
        assert fetch_plain(f"http://127.0.0.1:{port}/metrics") == 401
    finally:
        assert daemon.stop() == 0


def fetch_plain(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
