"""The HTTP endpoint as a scraper, curl or a load balancer sees it: keep-alive, HEAD, gzip, OpenMetrics,
the lifecycle endpoints, listen addresses and the listen backlog. Real sockets, http.client as client."""

from __future__ import annotations

import gzip
import http.client
import shutil
import socket
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from tests.test_metrics import gcp_snapshot, make_state
from watchdog.metrics import PageRenderer, build_registry
from watchdog.runners import WatchdogState
from watchdog.webconfig import WebConfigSource
from watchdog.webserver import Endpoints, MetricsServer, NotReady, accepts_gzip, wants_openmetrics

# What Prometheus 2.x/3.x sends when scraping (protobuf left out).
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)


@contextmanager
def serving(
    state: WatchdogState,
    *,
    host: str = "127.0.0.1",
    ready: Callable[[], tuple[bool, str]] = lambda: (True, ""),
    reload: Callable[[], str | None] | None = None,
    web: WebConfigSource | None = None,
) -> Iterator[MetricsServer]:
    page = PageRenderer(state, build_registry(state))

    def count(failures: Counter[str]) -> None:
        state.web_tls_failures = failures

    endpoints = Endpoints(
        metrics=lambda om: page.parts(openmetrics=om),
        health=lambda: {"status": "ok"},
        ready=ready,
        reload=reload,
        on_tls_failure=count,
    )
    server = MetricsServer(host, 0, endpoints, web)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def get(
    conn: http.client.HTTPConnection, path: str, method: str = "GET", **headers: str
) -> tuple[http.client.HTTPResponse, bytes]:
    conn.request(method, path, headers={k.replace("_", "-"): v for k, v in headers.items()})
    response = conn.getresponse()
    return response, response.read()


@pytest.fixture
def state() -> WatchdogState:
    return make_state()


def test_keep_alive_serves_many_requests_on_one_connection(state: WatchdogState) -> None:
    with serving(state) as server:
        conn = http.client.HTTPConnection(*server.address, timeout=5)
        first, body = get(conn, "/metrics")
        sock = conn.sock
        assert first.version == 11 and first.status == 200 and first.getheader("Connection") != "close"
        for path in ("/metrics", "/-/healthy", "/nope", "/metrics"):
            get(conn, path)
            assert conn.sock is sock, f"the connection was closed after {path}"
        conn.close()
    assert b"vpn_watchdog_tunnel_up{" in body


def test_head_is_get_without_a_body(state: WatchdogState) -> None:
    with serving(state) as server:
        conn = http.client.HTTPConnection(*server.address, timeout=5)
        got, body = get(conn, "/metrics", Accept_Encoding="gzip")
        head, nothing = get(conn, "/metrics", "HEAD", Accept_Encoding="gzip")
        assert head.status == 200 and nothing == b""
        assert head.getheader("Content-Length") == got.getheader("Content-Length") == str(len(body))
        assert head.getheader("Content-Type") == got.getheader("Content-Type")
        assert head.getheader("Content-Encoding") == "gzip"
        assert get(conn, "/-/healthy", "HEAD")[0].status == 200  # and the connection still works


def test_gzip_is_the_same_page_and_follows_snapshot_changes(state: WatchdogState) -> None:
    with serving(state) as server:
        conn = http.client.HTTPConnection(*server.address, timeout=5)
        plain_response, plain = get(conn, "/metrics")
        zipped_response, zipped = get(conn, "/metrics", Accept_Encoding="gzip, deflate")
        assert plain_response.getheader("Content-Encoding") is None
        assert zipped_response.getheader("Content-Encoding") == "gzip"
        assert zipped_response.getheader("Vary") == "Accept-Encoding"
        assert gzip.decompress(zipped) == plain
        assert len(zipped) < len(plain) / 3
        assert get(conn, "/metrics", Accept_Encoding="gzip;q=0")[0].getheader("Content-Encoding") is None

        # A new snapshot without gcp-tun-1: the cached compression must not serve the old page.
        state.exporters["gcp-hub"].apply(gcp_snapshot(tunnels=1), 0.1)
        _, after = get(conn, "/metrics", Accept_Encoding="gzip")
        page = gzip.decompress(after).decode()
        assert 'tunnel="gcp-tun-0"' in page and 'tunnel="gcp-tun-1"' not in page
        assert gzip.decompress(after) == get(conn, "/metrics")[1]


def test_openmetrics_when_the_scraper_prefers_it(state: WatchdogState) -> None:
    with serving(state) as server:
        conn = http.client.HTTPConnection(*server.address, timeout=5)
        om, om_body = get(conn, "/metrics", Accept=PROMETHEUS_ACCEPT)
        text, text_body = get(conn, "/metrics", Accept="text/plain;version=0.0.4")
        default, _ = get(conn, "/metrics")
    assert om.getheader("Content-Type") == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert (
        text.getheader("Content-Type")
        == default.getheader("Content-Type")
        == ("text/plain; version=0.0.4; charset=utf-8")
    )
    assert om_body.endswith(b"# EOF\n")
    families = {f.name: f for f in parse_openmetrics(om_body.decode())}  # raises on any format error
    assert families["vpn_watchdog_tunnel_packets"].type == "counter"
    assert families["vpn_watchdog_exporter_errors"].type == "counter"
    up = [s for s in families["vpn_watchdog_tunnel_up"].samples if s.labels["tunnel"] == "gcp-tun-1"]
    assert [s.value for s in up] == [0.0]
    # The text format carries the same samples.
    text_samples = {
        (s.name, tuple(sorted(s.labels.items()))) for f in parse_text(text_body.decode()) for s in f.samples
    }
    om_samples = {(s.name, tuple(sorted(s.labels.items()))) for f in families.values() for s in f.samples}
    assert om_samples == text_samples


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_page(state: WatchdogState) -> None:
    with serving(state) as server:
        _, body = get(http.client.HTTPConnection(*server.address, timeout=5), "/metrics")
    result = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        (PROMETHEUS_ACCEPT, True),
        ("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5", False),
        ("application/openmetrics-text", True),
        ("application/openmetrics-text;version=9.0.0", False),
        ("*/*", False),
        ("", False),
        ("application/openmetrics-text;q=0", False),
    ],
)
def test_accept_negotiation(accept: str, openmetrics: bool) -> None:
    assert wants_openmetrics(accept) is openmetrics


@pytest.mark.parametrize(
    ("header", "gzipped"),
    [("gzip", True), ("deflate, gzip;q=0.5", True), ("gzip;q=0", False), ("br", False), ("", False)],
)
def test_accept_encoding(header: str, gzipped: bool) -> None:
    assert accepts_gzip(header) is gzipped


def test_healthy_ready_and_reload(state: WatchdogState) -> None:
    polled = {"done": False}
    reloads: list[str] = []

    def reload() -> str | None:
        reloads.append("x")
        return None if len(reloads) == 1 else "config.yaml: probes[0].type: unknown type 'bogus'"

    with serving(state, ready=lambda: (polled["done"], "waiting for the first poll of aws"), reload=reload) as server:
        conn = http.client.HTTPConnection(*server.address, timeout=5)
        healthy, text = get(conn, "/-/healthy")
        assert (healthy.status, text) == (200, b"vpn-watchdog is Healthy.\n")
        not_ready, why = get(conn, "/-/ready")
        assert not_ready.status == 503 and b"waiting for the first poll of aws" in why
        polled["done"] = True
        assert get(conn, "/-/ready")[0].status == 200

        wrong_method, _ = get(conn, "/-/reload")
        assert wrong_method.status == 405 and wrong_method.getheader("Allow") == "POST, PUT"
        ok, text = get(conn, "/-/reload", "POST")
        assert (ok.status, text) == (200, b"configuration reloaded\n")
        bad, text = get(conn, "/-/reload", "PUT")
        assert bad.status == 400 and b"probes[0].type: unknown type 'bogus'" in text
        assert get(conn, "/metrics", "POST")[0].status == 405

    def starting() -> str | None:
        raise NotReady("the daemon is still starting; try again")

    with serving(state, reload=starting) as server:  # a sidecar's reload during start-up: retry, not "invalid"
        early, text = get(http.client.HTTPConnection(*server.address, timeout=5), "/-/reload", "POST")
        assert (early.status, text) == (503, b"the daemon is still starting; try again\n")
    with serving(state) as server:  # without --web.enable-lifecycle
        forbidden, text = get(http.client.HTTPConnection(*server.address, timeout=5), "/-/reload", "POST")
        assert (forbidden.status, text) == (403, b"Lifecycle API is not enabled.\n")


def test_a_reload_before_the_daemon_has_started_is_not_ready_rather_than_refused() -> None:
    from watchdog.config import parse_config
    from watchdog.daemon import Daemon

    daemon = Daemon(parse_config("probes: []\n"), None, enable_lifecycle=True)
    with pytest.raises(NotReady):
        daemon.reload_from_http()
    assert daemon.state.reloads.failures == 0  # nothing was read, so nothing was refused


def test_dual_stack_listen_takes_ipv4_and_ipv6(state: WatchdogState) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    with serving(state, host="") as server:
        port = server.address[1]
        assert server.address[0] == "::"
        for host in ("127.0.0.1", "::1"):
            response, _ = get(http.client.HTTPConnection(host, port, timeout=5), "/-/healthy")
            assert response.status == 200, host


@pytest.mark.skipif(shutil.which("ss") is None, reason="ss (iproute2) not installed")
def test_listen_backlog_is_at_least_128(state: WatchdogState) -> None:
    with serving(state) as server:
        port = server.address[1]
        out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    # For a listening socket, ss shows the backlog in the Send-Q column.
    (line,) = out.strip().splitlines()
    assert int(line.split()[2]) >= 128, line


def test_a_malformed_request_gets_400_and_the_server_keeps_serving(state: WatchdogState) -> None:
    with serving(state) as server:
        with socket.create_connection(server.address, timeout=5) as sock:
            sock.sendall(b"NONSENSE\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 400")
        assert get(http.client.HTTPConnection(*server.address, timeout=5), "/-/healthy")[0].status == 200
