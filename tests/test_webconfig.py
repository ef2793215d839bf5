"""TLS and basic auth on /metrics (exporter-toolkit web config), tested with a real HTTPS client."""

from __future__ import annotations

import base64
import http.client
import json
import re
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest

from tests.daemon_process import DaemonProcess
from tests.test_http import get, serving
from tests.test_metrics import make_state
from tests.tls_certs import Pki, make_pki
from watchdog.errors import ConfigError
from watchdog.webconfig import WebConfig, WebConfigSource, load_web_config
from watchdog.webserver import MetricsServer


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


# ---- exporter-toolkit meanings, through real TLS handshakes against the in-process server ----------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def web_file(tmp_path: Path, pki: Pki, tls: str = "", rest: str = "") -> Path:
    path = tmp_path / "web.yml"
    path.write_text(f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n{tls}{rest}")
    return path


def https_status(
    server: MetricsServer,
    pki: Pki,
    client: tuple[Path, Path] | None = None,
    *,
    path: str = "/-/healthy",
    auth: tuple[str, str] | None = None,
    max_version: ssl.TLSVersion | None = None,
) -> tuple[int, dict[str, str]]:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if client is not None:
        context.load_cert_chain(str(client[0]), str(client[1]))
    if max_version is not None:
        context.maximum_version = max_version
    conn = http.client.HTTPSConnection(*server.address, context=context, timeout=5)
    headers = {}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, dict(response.getheaders())
    finally:
        conn.close()


HANDSHAKE_REFUSED = (ssl.SSLError, ConnectionError)


def test_require_and_verify_client_cert(tmp_path: Path, pki: Pki) -> None:
    tls = f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki.ca}\n"
    state = make_state()
    with serving(state, web=WebConfigSource(str(web_file(tmp_path, pki, tls)))) as server:
        assert https_status(server, pki, (pki.client_cert, pki.client_key))[0] == 200
        with pytest.raises(HANDSHAKE_REFUSED):
            https_status(server, pki)  # no certificate
        with pytest.raises(HANDSHAKE_REFUSED):
            https_status(server, pki, (pki.stranger_cert, pki.stranger_key))  # untrusted CA
    assert sum(state.web_tls_failures.values()) == 2


def test_verify_client_cert_if_given(tmp_path: Path, pki: Pki) -> None:
    tls = f"  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {pki.ca}\n"
    with serving(make_state(), web=WebConfigSource(str(web_file(tmp_path, pki, tls)))) as server:
        assert https_status(server, pki)[0] == 200
        assert https_status(server, pki, (pki.client_cert, pki.client_key))[0] == 200
        with pytest.raises(HANDSHAKE_REFUSED):
            https_status(server, pki, (pki.stranger_cert, pki.stranger_key))


def test_client_allowed_sans(tmp_path: Path, pki: Pki) -> None:
    tls = f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki.ca}\n"
    allowed = web_file(tmp_path, pki, tls + "  client_allowed_sans: [scraper.test]\n")
    with serving(make_state(), web=WebConfigSource(str(allowed))) as server:
        assert https_status(server, pki, (pki.client_cert, pki.client_key))[0] == 200
    other = web_file(tmp_path, pki, tls + "  client_allowed_sans: [someone-else.test]\n")
    with serving(make_state(), web=WebConfigSource(str(other))) as server:
        with pytest.raises((*HANDSHAKE_REFUSED, http.client.RemoteDisconnected)):
            https_status(server, pki, (pki.client_cert, pki.client_key))


def test_min_version_refuses_older_clients(tmp_path: Path, pki: Pki) -> None:
    with serving(make_state(), web=WebConfigSource(str(web_file(tmp_path, pki, "  min_version: TLS13\n")))) as server:
        assert https_status(server, pki)[0] == 200
        with pytest.raises(HANDSHAKE_REFUSED):
            https_status(server, pki, max_version=ssl.TLSVersion.TLSv1_2)


def test_http_server_config_headers_are_sent(tmp_path: Path, pki: Pki) -> None:
    rest = "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=3600\n"
    with serving(make_state(), web=WebConfigSource(str(web_file(tmp_path, pki, rest=rest)))) as server:
        status, headers = https_status(server, pki, path="/metrics")
    assert status == 200
    assert headers["X-Frame-Options"] == "deny" and headers["Strict-Transport-Security"] == "max-age=3600"


def test_a_changed_password_applies_without_restart(tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    def users(password: bytes) -> str:
        return f"basic_auth_users:\n  prom: '{bcrypt.hashpw(password, bcrypt.gensalt(rounds=4)).decode()}'\n"

    path = web_file(tmp_path, pki, rest=users(b"first"))
    with serving(make_state(), web=WebConfigSource(str(path))) as server:
        assert https_status(server, pki, path="/metrics", auth=("prom", "first"))[0] == 200
        path.write_text(path.read_text().split("basic_auth_users")[0] + users(b"second"))
        assert https_status(server, pki, path="/metrics", auth=("prom", "first"))[0] == 401
        assert https_status(server, pki, path="/metrics", auth=("prom", "second"))[0] == 200
        # A broken edit is logged once and the last good web config stays in force.
        path.write_text(path.read_text() + "bogus_key: 1\n")
        with caplog.at_level("ERROR", logger="watchdog.webconfig"):
            assert https_status(server, pki, path="/metrics", auth=("prom", "second"))[0] == 200
            assert https_status(server, pki, path="/metrics", auth=("prom", "second"))[0] == 200
    rejected = [r for r in caplog.records if "web config rejected" in r.getMessage()]
    assert len(rejected) == 1 and "bogus_key: unknown key" in rejected[0].getMessage()


def test_plain_http_to_the_tls_port_is_counted_and_logged_on_one_line(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    state = make_state()
    with serving(state, web=WebConfigSource(str(web_file(tmp_path, pki)))) as server:
        with caplog.at_level("WARNING", logger="watchdog.webserver"):
            plain, text = get(http.client.HTTPConnection(*server.address, timeout=5), "/metrics")
            assert (plain.status, text) == (400, b"Client sent an HTTP request to an HTTPS server.\n")
            _, page = get(
                http.client.HTTPSConnection(
                    *server.address, context=ssl.create_default_context(cafile=str(pki.ca)), timeout=5
                ),
                "/metrics",
            )
    assert state.web_tls_failures == {"http_request": 1}
    assert b'vpn_watchdog_web_tls_handshake_failures_total{reason="http_request"} 1.0' in page
    (record,) = [r for r in caplog.records if r.getMessage() == "TLS handshake failed"]
    assert record.fields["reason"] == "http_request"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        ("  min_version: TLSFOO\n", "tls_server_config.min_version: unknown TLS version 'TLSFOO'"),
        ("  max_version: TLS14\n", "tls_server_config.max_version: unknown TLS version 'TLS14'"),
        ("  min_version: TLS13\n  max_version: TLS12\n", "max_version: lower than min_version"),
        ("  client_auth_type: Bogus\n", "tls_server_config.client_auth_type: invalid value 'Bogus'"),
        ("  client_ca_file: ca.crt\n", "client CAs are configured without a client auth policy"),
        ("  client_auth_type: RequireAndVerifyClientCert\n", "client_ca_file: required with client_auth_type"),
        ("  client_auth_type: RequireAnyClientCert\n", "RequireAnyClientCert (a client certificate accepted"),
        ("  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", "cipher_suites: Go cipher suite names are not supported"),
        ("  client_allowed_sans: [a]\n", "client_allowed_sans: needs a client_auth_type that verifies"),
    ],
)
def test_toolkit_meanings_rejected_with_a_clear_error(tmp_path: Path, pki: Pki, tls: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_web_config(str(web_file(tmp_path, pki, tls)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("http_server_config: {http2: true}\n", "http_server_config.http2: HTTP/2 is not served"),
        ("http_server_config: {headers: {Server: x}}\n", "headers.Server: this header can not be configured"),
        ("http_server_config: {headers: {X-Frame-Options: allow}}\n", "X-Frame-Options: invalid value 'allow'"),
        ("http_server_config: {gzip: true}\n", "http_server_config.gzip: unknown key"),
    ],
)
def test_http_server_config_rejected_with_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
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
