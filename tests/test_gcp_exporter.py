"""The GCP exporter with the real google-cloud-compute / -monitoring clients against local fakes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions

from deploy.lab.emulators.gcp import FakeGcp, FakeMonitoring
from exporters.gcp import GcpExporter
from exporters.gcp_errors import parse_retry_after, translate
from exporters.registry import build_exporter
from watchdog.config import GcpExporterConfig, parse_config
from watchdog.errors import ExporterError
from watchdog.model import BgpSession, HaGateway, LearnedRoute, PacketCount, Scope, Tunnel

TUNNELS_URL = r"/regions/asia-northeast1/vpnTunnels$"


@pytest.fixture
def gcp() -> Iterator[FakeGcp]:
    with FakeGcp() as fake:
        yield fake


@pytest.fixture
def mon() -> Iterator[FakeMonitoring]:
    with FakeMonitoring() as fake:
        yield fake


@pytest.fixture
def make(gcp: FakeGcp, mon: FakeMonitoring, tmp_path: Path) -> Iterator[Any]:
    """Build exporters pointed at the fakes with a service-account key file; close them afterwards."""
    built: list[GcpExporter] = []
    credentials = gcp.write_credentials(tmp_path)

    def factory(timeout: float = 5.0, **overrides: Any) -> GcpExporter:
        fields: dict[str, Any] = {
            "name": "gcp-hub",
            "type": "gcp",
            "project": gcp.project,
            "region": gcp.region,
            "endpoint": gcp.url,
            "monitoring_endpoint": mon.url,
            "credentials_file": credentials,
        }
        fields.update(overrides)
        exporter = GcpExporter(GcpExporterConfig(**fields), timeout=timeout)
        built.append(exporter)
        return exporter

    yield factory
    for exporter in built:
        exporter.close()


def poll_error(exporter: GcpExporter) -> ExporterError:
    with pytest.raises(ExporterError) as info:
        exporter.poll()
    return info.value


# -- the snapshot ---------------------------------------------------------------------------------


def test_four_tunnels_with_every_field(make: Any) -> None:
    snapshot = make().poll()

    assert snapshot.exporter == "gcp-hub" and snapshot.cloud == "gcp"
    assert snapshot.tunnels == (
        Tunnel(
            "ha-gw",
            "aws-tun-0",
            "203.0.113.10",
            "198.51.100.1",
            True,
            "ESTABLISHED",
            "Tunnel is up and running.",
            router="cr-aws",
            gateway_interface=0,
            peer_interface=0,
        ),
        Tunnel(
            "ha-gw",
            "aws-tun-1",
            "203.0.113.10",
            "198.51.100.2",
            True,
            "ESTABLISHED",
            "Tunnel is up and running.",
            router="cr-aws",
            gateway_interface=0,
            peer_interface=1,
        ),
        Tunnel(
            "ha-gw",
            "aws-tun-2",
            "203.0.113.11",
            "198.51.100.3",
            False,
            "NO_INCOMING_PACKETS",
            "No incoming packets from peer.",
            router="cr-aws",
            gateway_interface=1,
            peer_interface=2,
        ),
        Tunnel(
            "ha-gw",
            "aws-tun-3",
            "203.0.113.11",
            "198.51.100.4",
            True,
            "ESTABLISHED",
            "Tunnel is up and running.",
            router="cr-aws",
            gateway_interface=1,
            peer_interface=3,
        ),
    )


def test_unknown_tunnel_status_passes_through_as_down(gcp: FakeGcp, make: Any) -> None:
    gcp.set_tunnel_status("aws-tun-0", "PEER_IDENTITY_MISMATCH", "Peer identity does not match peer IP")

    tunnel = make().poll().tunnels[0]

    assert (tunnel.up, tunnel.status, tunnel.detail) == (
        False,
        "PEER_IDENTITY_MISMATCH",
        "Peer identity does not match peer IP",
    )


def test_bgp_sessions_up_and_down(gcp: FakeGcp, make: Any) -> None:
    exporter = make()
    sessions = {s.peer: s for s in exporter.poll().bgp_sessions}

    assert sessions["aws-peer-0"] == BgpSession(
        "cr-aws",
        "aws-peer-0",
        "169.254.10.1",
        "169.254.10.2",
        True,
        "Established",
        uptime_seconds=7384.0,
        received_prefixes=1,
        tunnel="aws-tun-0",
    )
    assert sessions["aws-peer-2"] == BgpSession(
        "cr-aws",
        "aws-peer-2",
        "169.254.12.1",
        "169.254.12.2",
        False,
        "Idle",
        uptime_seconds=None,
        received_prefixes=0,
        tunnel="aws-tun-2",
    )
    assert sessions["lab-peer"].router == "cr-lab" and sessions["lab-peer"].tunnel is None
    assert [s.up for s in sessions.values()] == [True, True, False, True, True]

    gcp.set_peer_status("cr-aws", "aws-peer-0", "DOWN", "Active", uptimeSeconds="", numLearnedRoutes=0)
    down = {s.peer: s for s in exporter.poll().bgp_sessions}["aws-peer-0"]
    assert (down.up, down.state, down.uptime_seconds, down.received_prefixes) == (False, "Active", None, 0)


def test_best_bgp_routes_name_their_peer_and_tunnel(make: Any) -> None:
    routes = make().poll().routes

    # The TRANSIT best route is not learned over BGP and is left out.
    assert routes == (
        LearnedRoute("cr-aws", "10.20.0.0/16", "169.254.10.2", peer="aws-peer-0", tunnel="aws-tun-0"),
        LearnedRoute("cr-aws", "10.20.0.0/16", "169.254.11.2", peer="aws-peer-1", tunnel="aws-tun-1"),
        LearnedRoute("cr-aws", "10.30.0.0/16", "169.254.13.2", peer="aws-peer-3", tunnel="aws-tun-3"),
        LearnedRoute("cr-lab", "192.0.2.0/24", "169.254.20.2", peer="lab-peer", tunnel=None),
    )


def test_two_routers_in_one_vpc_are_credited_only_with_their_own_routes(gcp: FakeGcp, make: Any) -> None:
    # Both routers sit in the hub VPC: each getRouterStatus lists the other's routes in bestRoutes
    # (the VPC's programmed routes); bestRoutesForRouter holds what this router itself learned.
    statuses = [gcp.router_status(r) for r in ("cr-aws", "cr-lab")]
    assert statuses[0]["bestRoutes"] == statuses[1]["bestRoutes"]

    routes = make().poll().routes

    by_router = {r: {x.prefix for x in routes if x.router == r} for r in ("cr-aws", "cr-lab")}
    assert by_router == {"cr-aws": {"10.20.0.0/16", "10.30.0.0/16"}, "cr-lab": {"192.0.2.0/24"}}


def test_route_without_next_hop_tunnel_takes_its_sessions_tunnel(gcp: FakeGcp, make: Any) -> None:
    del gcp.router_status("cr-aws")["bestRoutesForRouter"][0]["nextHopVpnTunnel"]

    assert make().poll().routes[0].tunnel == "aws-tun-0"


def test_ha_redundancy_met_and_not_met(gcp: FakeGcp, make: Any) -> None:
    exporter = make()
    assert exporter.poll().gateways == (HaGateway("ha-gw", True, ""),)

    gcp.set_redundancy("ha-gw", met=False)
    assert exporter.poll().gateways == (HaGateway("ha-gw", False, "INCOMPLETE_TUNNELS_COVERAGE"),)


def test_gateway_without_connections_does_not_meet_redundancy(gcp: FakeGcp, make: Any) -> None:
    gcp.actions[(gcp.regional("vpnGateways") + "/ha-gw", "getStatus")] = {}

    assert make().poll().gateways == (HaGateway("ha-gw", False, "NO_VPN_CONNECTIONS"),)


def test_snapshot_carries_no_shared_secret(gcp: FakeGcp, make: Any) -> None:
    gcp.resource(gcp.regional("vpnTunnels"), "aws-tun-0")["sharedSecret"] = "psk-do-not-leak"

    assert "psk-do-not-leak" not in repr(make().poll())


def test_requests_are_authenticated_with_the_credentials_file(gcp: FakeGcp, make: Any) -> None:
    make(monitoring=False).poll()

    assert gcp.requests and all(r.headers.get("authorization", "").startswith("Bearer ") for r in gcp.requests)


# -- pagination and API call budget ---------------------------------------------------------------


def test_paginated_lists_give_the_same_snapshot(gcp: FakeGcp, mon: FakeMonitoring, make: Any) -> None:
    unpaged_exporter, paged_exporter = make(), make()
    for tunnel in ("aws-tun-0", "aws-tun-1", "aws-tun-3"):
        mon.add_packets(tunnel, "sent", "successful", 5)
    whole = unpaged_exporter.poll()
    gcp.page_size = 1
    mon.page_size = 1

    paged = paged_exporter.poll()

    assert (paged.tunnels, paged.bgp_sessions, paged.routes, paged.gateways) == (
        whole.tunnels,
        whole.bgp_sessions,
        whole.routes,
        whole.gateways,
    )
    assert paged.packet_counts == whole.packet_counts and len(paged.packet_counts) == 3
    # 1 gateway page + 4 tunnel pages + 1 getStatus + 2 router pages + 2 getRouterStatus
    # + sent_packets 3 pages + 3 other metrics (empty: one page each)
    assert paged.api_calls == 1 + 4 + 1 + 2 + 2 + 3 + 3
    assert [r.query.get("pageToken") for r in gcp.requests if r.path.endswith("/vpnTunnels")][-4:] == [
        None,
        ["1"],
        ["2"],
        ["3"],
    ]


def test_api_calls_grow_with_routers_and_gateways_not_tunnels(gcp: FakeGcp, make: Any) -> None:
    exporter = make()
    base = exporter.poll().api_calls
    assert base == 6 + 4  # gw list, tunnel list, getStatus, router list, 2 getRouterStatus; 4 metrics

    tunnels = gcp.collections[gcp.regional("vpnTunnels")]
    for i in range(4, 40):
        tunnels.append({**tunnels[0], "name": f"aws-tun-{i}", "selfLink": gcp.link(gcp.regional("vpnTunnels"), str(i))})
    gcp.router_status("cr-aws")["bestRoutesForRouter"] *= 25
    more = exporter.poll()
    assert len(more.tunnels) == 40 and len(more.routes) == 76
    assert more.api_calls == base

    gcp.add(gcp.regional("routers"), {"name": "cr-extra", "bgpPeers": [{"name": "p"}]})
    gcp.actions[(gcp.regional("routers") + "/cr-extra", "getRouterStatus")] = {"bgpPeerStatus": []}
    assert exporter.poll().api_calls == base + 1


def test_router_filter_reads_only_the_named_routers(gcp: FakeGcp, make: Any) -> None:
    snapshot = make(routers=("cr-lab",)).poll()

    assert {s.router for s in snapshot.bgp_sessions} == {"cr-lab"}
    assert {r.router for r in snapshot.routes} == {"cr-lab"}
    assert not any(p.endswith("/routers") for p in gcp.paths())  # no routers.list
    assert gcp.calls("cr-aws") == 0


def test_routers_without_bgp_peers_cost_no_status_call(gcp: FakeGcp, make: Any) -> None:
    gcp.add(gcp.regional("routers"), {"name": "cr-nat", "nats": [{"name": "nat-1"}]})

    snapshot = make().poll()

    assert gcp.calls("cr-nat") == 0 and {s.router for s in snapshot.bgp_sessions} == {"cr-aws", "cr-lab"}


def test_named_router_that_vanished_is_not_found(make: Any) -> None:
    error = poll_error(make(routers=("cr-gone",)))

    assert error.reason == "not_found"
    assert "routers.getRouterStatus cr-gone" in str(error)


def test_unknown_project_is_not_found(make: Any) -> None:
    error = poll_error(make(project="proj-other"))

    assert error.reason == "not_found" and "vpnGateways.list" in str(error)


# -- packet counts from Cloud Monitoring ---------------------------------------------------------


def test_packet_counts_accumulate_across_polls_without_double_counting(mon: FakeMonitoring, make: Any) -> None:
    # A point that ended before the exporter started belongs to no counter.
    mon.add_packets("aws-tun-0", "sent", "successful", 99, end=time.time() - 30)
    exporter = make()
    mon.add_packets("aws-tun-0", "sent", "successful", 100)
    mon.add_packets("aws-tun-0", "sent", "exceeds_mtu", 3)
    mon.add_packets("aws-tun-2", "received", "fragment_received", 7)
    mon.add_packets("aws-tun-2", "received", "dropped", 2)
    mon.add_packets("aws-tun-2", "sent", "dropped", 1)

    first = exporter.poll()

    assert first.packet_counts == (
        PacketCount("aws-tun-0", "sent", "exceeds_mtu", 3),
        PacketCount("aws-tun-0", "sent", "successful", 100),
        PacketCount("aws-tun-2", "received", "dropped", 2),
        PacketCount("aws-tun-2", "received", "fragment_received", 7),
        PacketCount("aws-tun-2", "sent", "dropped", 1),
    )
    first_end = mon.requests[-1]["end"]
    mon.add_packets("aws-tun-0", "sent", "successful", 50)
    mon.add_packets("aws-tun-2", "received", "fragment_received", 1)

    second = exporter.poll()

    # The second window re-reads the first one's points (to catch late points) and counts them once.
    assert mon.requests[-1]["start"] < first_end
    counts = {(p.tunnel, p.direction, p.status): p.count for p in second.packet_counts}
    assert counts == {
        ("aws-tun-0", "sent", "exceeds_mtu"): 3,
        ("aws-tun-0", "sent", "successful"): 150,
        ("aws-tun-2", "received", "dropped"): 2,
        ("aws-tun-2", "received", "fragment_received"): 8,
        ("aws-tun-2", "sent", "dropped"): 1,
    }


def test_one_list_time_series_call_per_metric_for_the_region(mon: FakeMonitoring, make: Any) -> None:
    for i in range(4):
        mon.add_packets(f"aws-tun-{i}", "received", "successful", 1)

    make().poll()

    assert len(mon.requests) == 4
    assert {r["name"] for r in mon.requests} == {"projects/proj-1"}
    for request in mon.requests:
        assert 'resource.type = "vpn_gateway"' in request["filter"]
        assert 'resource.labels.region = "asia-northeast1"' in request["filter"]
    assert sorted(r["filter"].split('"')[1].rsplit("/", 1)[1] for r in mon.requests) == [
        "dropped_received_packets_count",
        "dropped_sent_packets_count",
        "received_packets_count",
        "sent_packets_count",
    ]


def test_failed_monitoring_poll_loses_and_doubles_nothing(mon: FakeMonitoring, make: Any) -> None:
    exporter = make()
    mon.add_packets("aws-tun-1", "sent", "successful", 10)
    mon.add_packets("aws-tun-1", "sent", "dropped", 4)
    # sent_packets_count is read, then received_packets_count fails: the poll fails as a whole.
    mon.fault(None, times=1)  # a fault without a code lets its call through
    mon.fault(grpc.StatusCode.PERMISSION_DENIED, "denied", times=1)

    assert poll_error(exporter).reason == "auth"

    counts = {(p.direction, p.status): p.count for p in exporter.poll().packet_counts}
    assert counts == {("sent", "successful"): 10, ("sent", "dropped"): 4}


def test_monitoring_off_makes_no_monitoring_calls(mon: FakeMonitoring, make: Any) -> None:
    mon.add_packets("aws-tun-0", "sent", "successful", 1)

    snapshot = make(monitoring=False, monitoring_endpoint="http://127.0.0.1:1").poll()

    assert snapshot.packet_counts == () and mon.requests == [] and snapshot.api_calls == 6


def test_packet_counts_of_deleted_tunnels_are_not_reported(gcp: FakeGcp, mon: FakeMonitoring, make: Any) -> None:
    exporter = make()
    mon.add_packets("aws-tun-3", "sent", "successful", 5)
    assert len(exporter.poll().packet_counts) == 1

    gcp.collections[gcp.regional("vpnTunnels")].pop()
    assert exporter.poll().packet_counts == ()


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "headers", "reason", "retry_after"),
    [
        (403, None, {}, "auth", None),
        (401, None, {}, "auth", None),
        (429, None, {"Retry-After": "7"}, "throttled", 7.0),
        (500, None, {}, "server_error", None),
        (503, None, {}, "server_error", None),
        (200, '{"items": [', {}, "malformed", None),
        (200, "<html>oops</html>", {}, "malformed", None),
        (400, None, {}, "api_error", None),
    ],
)
def test_compute_errors_map_to_reasons(
    gcp: FakeGcp,
    make: Any,
    status: int,
    body: str | None,
    headers: dict[str, str],
    reason: str,
    retry_after: float | None,
) -> None:
    gcp.fault(TUNNELS_URL, status=status, body=body, headers=headers)

    error = poll_error(make(timeout=2.0))

    assert (error.reason, error.retry_after) == (reason, retry_after)
    assert str(error).startswith("vpnTunnels.list region asia-northeast1: ")
    assert "Bearer" not in str(error) and "PRIVATE KEY" not in str(error)


def test_compute_quota_403_is_throttling(gcp: FakeGcp, make: Any) -> None:
    body = json.dumps(
        {
            "error": {
                "code": 403,
                "message": "Quota exceeded for quota metric 'Queries'",
                "errors": [{"reason": "rateLimitExceeded", "message": "Quota exceeded"}],
            }
        }
    )
    gcp.fault("getStatus", status=403, body=body)

    error = poll_error(make())

    assert error.reason == "throttled" and "vpnGateways.getStatus ha-gw" in str(error)


def test_http_date_retry_after_is_seconds_from_now(gcp: FakeGcp, make: Any) -> None:
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 120))
    gcp.fault(TUNNELS_URL, status=429, headers={"Retry-After": when})

    error = poll_error(make())

    assert error.reason == "throttled" and error.retry_after is not None and 100 < error.retry_after <= 121


def test_transient_server_error_is_retried_within_the_poll(gcp: FakeGcp, make: Any) -> None:
    gcp.fault(TUNNELS_URL, status=503, times=1)

    snapshot = make().poll()

    assert len(snapshot.tunnels) == 4
    assert gcp.calls(TUNNELS_URL) == 2 and snapshot.api_calls == 6 + 4 + 1


def test_persistent_server_error_gives_up_after_bounded_retries(gcp: FakeGcp, make: Any) -> None:
    gcp.fault(TUNNELS_URL, status=500)
    started = time.monotonic()

    error = poll_error(make(timeout=10.0))

    assert error.reason == "server_error"
    assert gcp.calls(TUNNELS_URL) == 3 and time.monotonic() - started < 2.0


def test_slow_compute_response_times_out_near_the_poll_timeout(gcp: FakeGcp, make: Any) -> None:
    gcp.fault("getRouterStatus", status=0, delay=30)
    started = time.monotonic()

    error = poll_error(make(timeout=1.0))

    elapsed = time.monotonic() - started
    assert error.reason == "timeout" and "routers.getRouterStatus cr-aws" in str(error)
    assert 0.9 < elapsed < 1.6


def test_slow_monitoring_response_times_out_near_the_poll_timeout(mon: FakeMonitoring, make: Any) -> None:
    mon.fault(None, delay=30)
    started = time.monotonic()

    error = poll_error(make(timeout=1.0))

    elapsed = time.monotonic() - started
    assert error.reason == "timeout" and "monitoring.timeSeries.list sent_packets_count" in str(error)
    assert 0.9 < elapsed < 1.6


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (grpc.StatusCode.PERMISSION_DENIED, "auth"),
        (grpc.StatusCode.UNAUTHENTICATED, "auth"),
        (grpc.StatusCode.UNAVAILABLE, "server_error"),
        (grpc.StatusCode.INTERNAL, "server_error"),
        (grpc.StatusCode.INVALID_ARGUMENT, "api_error"),
    ],
)
def test_monitoring_errors_map_to_reasons(mon: FakeMonitoring, make: Any, code: grpc.StatusCode, reason: str) -> None:
    mon.fault(code, "injected")

    error = poll_error(make(timeout=2.0))

    assert error.reason == reason and str(error).startswith("monitoring.timeSeries.list sent_packets_count")


def test_monitoring_quota_is_throttled_with_retry_info(mon: FakeMonitoring, make: Any) -> None:
    mon.fault(grpc.StatusCode.RESOURCE_EXHAUSTED, "Quota exceeded", retry_delay=12.5)

    error = poll_error(make())

    assert (error.reason, error.retry_after) == ("throttled", 12.5)


@pytest.mark.parametrize("which", ["endpoint", "monitoring_endpoint"])
def test_refused_connection_is_network(make: Any, which: str) -> None:
    error = poll_error(make(timeout=2.0, **{which: "http://127.0.0.1:1"}))

    assert error.reason == "network"


# -- credentials ----------------------------------------------------------------------------------


@pytest.fixture
def no_adc(gcp: FakeGcp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment without Application Default Credentials (the metadata check hits the fake)."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    for key, value in gcp.hermetic_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    if (
        Path("/sys/class/dmi/id/product_name").is_file()
        and "Google" in Path("/sys/class/dmi/id/product_name").read_text()
    ):
        pytest.skip("running on GCE: Application Default Credentials always exist")


@pytest.mark.usefixtures("no_adc")
def test_plaintext_endpoint_without_credentials_is_anonymous(gcp: FakeGcp, make: Any) -> None:
    snapshot = make(credentials_file=None).poll()

    assert len(snapshot.tunnels) == 4
    compute = [r for r in gcp.requests if r.path.startswith("/compute/")]
    assert compute and not any("authorization" in r.headers for r in compute)
    assert gcp.calls("^/$") == 0  # a plaintext endpoint never triggers a metadata-server lookup


@pytest.mark.usefixtures("no_adc")
def test_real_endpoint_without_credentials_is_an_auth_error(make: Any) -> None:
    error = poll_error(make(credentials_file=None, endpoint="https://127.0.0.1:1", monitoring_endpoint=None))

    assert error.reason == "auth" and "credentials" in str(error)


def test_missing_credentials_file_is_an_auth_error(make: Any, tmp_path: Path) -> None:
    path = tmp_path / "nope.json"

    error = poll_error(make(credentials_file=str(path)))

    assert error.reason == "auth" and str(path) in str(error) and "not found" in str(error)


def test_garbage_credentials_file_is_an_auth_error_without_its_content(make: Any, tmp_path: Path) -> None:
    path = tmp_path / "creds.json"
    path.write_text('{"type": "service_account", "private_key": "s3cr3t-material"}')

    error = poll_error(make(credentials_file=str(path)))

    assert error.reason == "auth" and "s3cr3t-material" not in str(error)


# -- malformed payloads and wiring --------------------------------------------------------------


def test_non_numeric_uptime_is_malformed(gcp: FakeGcp, make: Any) -> None:
    gcp.set_peer_status("cr-aws", "aws-peer-0", "UP", "Established", uptimeSeconds="a while")

    error = poll_error(make())

    assert error.reason == "malformed" and "a while" in str(error)


def test_config_file_entry_builds_a_working_exporter(gcp: FakeGcp, mon: FakeMonitoring, tmp_path: Path) -> None:
    entry = gcp.exporter_config("g", monitoring=mon, credentials_file=gcp.write_credentials(tmp_path))
    config = parse_config(yaml.safe_dump({"exporters": [entry]}))

    exporter = build_exporter(config.exporters[0], timeout=3.0)
    try:
        assert (exporter.name, exporter.cloud) == ("g", "gcp")
        snapshot = exporter.poll()
        assert len(snapshot.tunnels) == 4
        # One entry, one target: its objects say which project and region they are in.
        assert {t.scope for t in snapshot.tunnels} == {Scope("project", gcp.project, gcp.region)}
    finally:
        exporter.close()


def test_server_message_that_may_carry_a_secret_is_withheld(gcp: FakeGcp, make: Any) -> None:
    body = json.dumps({"error": {"code": 400, "message": "bad sharedSecret 'psk-do-not-leak'"}})
    gcp.fault(TUNNELS_URL, status=400, body=body)

    error = poll_error(make())

    assert error.reason == "api_error" and "psk-do-not-leak" not in str(error)
    assert "withheld" in str(error)


# -- translation of exceptions that a local fake cannot easily provoke -------------------------


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (auth_exceptions.RefreshError("invalid_grant: Token has been expired or revoked."), "auth"),
        (auth_exceptions.DefaultCredentialsError("Could not automatically determine credentials"), "auth"),
        (auth_exceptions.TransportError("metadata server unreachable"), "network"),
        (api_exceptions.DeadlineExceeded("Deadline Exceeded"), "timeout"),
        (api_exceptions.GatewayTimeout("upstream timed out"), "server_error"),
        (api_exceptions.Unauthenticated("expired token"), "auth"),
        (api_exceptions.RetryError("gave up", cause=api_exceptions.ServiceUnavailable("down")), "server_error"),
        (api_exceptions.ServiceUnavailable("failed to connect to all addresses"), "network"),
        (ConnectionResetError("reset by peer"), "network"),
        (RuntimeError("surprise"), "api_error"),
    ],
)
def test_foreign_exceptions_translate_to_reasons(exc: Exception, reason: str) -> None:
    error = translate(exc, "routers.getRouterStatus cr-aws region r")

    assert error.reason == reason and str(error).startswith("routers.getRouterStatus cr-aws region r: ")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7", 7.0), ("0.5", 0.5), ("Thu, 26 Nov 2026 12:02:00 GMT", 120.0), ("soon", None), ("-3", 0.0)],
)
def test_retry_after_header_values(value: str, seconds: float | None) -> None:
    now = 1795694400.0  # Thu, 26 Nov 2026 12:00:00 GMT

    assert parse_retry_after(value, now=now) == seconds


def test_a_series_split_across_point_pages_counts_its_older_chunk(mon: FakeMonitoring, make: Any) -> None:
    # View FULL pages by points: the newest points of a series come first, its older ones on the next page.
    exporter = make()
    started = time.time()
    time.sleep(0.6)
    for i in range(5):
        mon.add_packets("aws-tun-0", "sent", "successful", 10, end=started + 0.1 * (i + 1))
    mon.points_per_page = 2

    counts = {(p.tunnel, p.direction, p.status): p.count for p in exporter.poll().packet_counts}

    assert counts[("aws-tun-0", "sent", "successful")] == 50
    assert len([r for r in mon.requests if "sent_packets" in r["filter"] and "dropped" not in r["filter"]]) == 3
    mon.add_packets("aws-tun-0", "sent", "successful", 1)
    counts = {(p.tunnel, p.direction, p.status): p.count for p in exporter.poll().packet_counts}
    assert counts[("aws-tun-0", "sent", "successful")] == 51
