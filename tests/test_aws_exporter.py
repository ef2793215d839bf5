"""AwsExporter against a real HTTP endpoint: moto's server (gaps filled) plus faults at the HTTP edge."""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.lab.emulators.aws import MOTO_TEMPLATE_PSK, TEST_PSK, MotoAws
from exporters.aws import AwsExporter
from exporters.registry import build_exporter
from tests.conftest import free_port
from watchdog.config import AwsExporterConfig
from watchdog.errors import ConfigError, ExporterError
from watchdog.model import BgpSession, LearnedRoute, Scope, Tunnel

REGION = "ap-northeast-1"
SECRETS = (TEST_PSK, MOTO_TEMPLATE_PSK)


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoAws]:
    with MotoAws(region=REGION) as server:
        yield server


@pytest.fixture
def aws(moto_server: MotoAws, monkeypatch: pytest.MonkeyPatch) -> MotoAws:
    moto_server.reset()
    moto_server.use_test_credentials(monkeypatch)
    return moto_server


_EXPORTERS: dict[tuple[AwsExporterConfig, float], AwsExporter] = {}


def make_config(aws: MotoAws, **overrides: Any) -> AwsExporterConfig:
    fields: dict[str, Any] = {"name": "aws-tokyo", "type": "aws", "region": REGION, "endpoint_url": aws.endpoint_url}
    return AwsExporterConfig(**{**fields, **overrides})


def make_exporter(aws: MotoAws, timeout: float = 5.0, **overrides: Any) -> AwsExporter:
    """An exporter for the fake; ones with default credentials are reused (building a client is slow).

    Reuse is what the daemon does too: one exporter polls again and again.
    """
    fields: dict[str, Any] = {"name": "aws-tokyo", "type": "aws", "region": REGION, "endpoint_url": aws.endpoint_url}
    fields.update(overrides)
    config = AwsExporterConfig(**fields)
    if config.profile is not None:
        return AwsExporter(config, timeout=timeout)
    key = (config, timeout)
    if key not in _EXPORTERS:
        _EXPORTERS[key] = AwsExporter(config, timeout=timeout)
    return _EXPORTERS[key]


@pytest.fixture(scope="module", autouse=True)
def _close_exporters() -> Iterator[None]:
    yield
    for exporter in _EXPORTERS.values():
        exporter.close()
    _EXPORTERS.clear()


def poll_error(exporter: AwsExporter) -> ExporterError:
    with pytest.raises(ExporterError) as info:
        exporter.poll()
    return info.value


# -- mapping ------------------------------------------------------------------------------------


def test_four_tunnels_over_two_connections_one_down(aws: MotoAws) -> None:
    lab = aws.build_lab(2, accepted_routes=2)
    c0, c1 = lab.connections
    went_down = dt.datetime(2026, 11, 26, 11, 30, 5, tzinfo=dt.UTC)
    aws.set_telemetry(
        c0.vpn_id,
        c0.outside_ips[1],
        status="DOWN",
        message="IPSEC IS DOWN",
        accepted_routes=0,
        last_change=went_down,
    )
    aws.reverse_telemetry(c1.vpn_id)  # telemetry and tunnel options joined by IP, not position

    snapshot = make_exporter(aws).poll()

    up_since = dt.datetime(2026, 11, 26, 9, 0, 0, tzinfo=dt.UTC).timestamp()
    expected = []
    for conn in sorted(lab.connections, key=lambda c: c.vpn_id):
        for ip, cidr in zip(conn.outside_ips, conn.inside_cidrs, strict=True):
            down = (conn, ip) == (c0, c0.outside_ips[1])
            expected.append(
                Tunnel(
                    connection=conn.vpn_id,
                    name=ip,
                    local_ip=ip,
                    peer_ip=conn.customer_gateway_ip,
                    up=not down,
                    status="DOWN" if down else "UP",
                    detail="IPSEC IS DOWN" if down else "2 BGP ROUTES",
                    status_change=went_down.timestamp() if down else up_since,
                    inside_cidr=cidr,
                    accepted_routes=0 if down else 2,
                )
            )
    assert list(snapshot.tunnels) == expected
    assert snapshot.exporter == "aws-tokyo" and snapshot.cloud == "aws"
    assert {t.peer_ip for t in snapshot.tunnels} == {"198.51.100.1", "198.51.100.2"}


def test_bgp_sessions_one_per_tunnel_with_inside_addresses(aws: MotoAws) -> None:
    lab = aws.build_lab(1, accepted_routes=3)
    (conn,) = lab.connections
    aws.set_telemetry(conn.vpn_id, conn.outside_ips[1], status="DOWN", accepted_routes=0)

    snapshot = make_exporter(aws).poll()

    base = int(conn.inside_cidrs[0].split(".")[2])
    assert list(snapshot.bgp_sessions) == [
        BgpSession(
            router=lab.transit_gateway_id,
            peer=conn.outside_ips[0],
            local_ip=f"169.254.{base}.1",
            peer_ip=f"169.254.{base}.2",
            up=True,
            state="Established",
            received_prefixes=3,
            tunnel=conn.outside_ips[0],
        ),
        BgpSession(
            router=lab.transit_gateway_id,
            peer=conn.outside_ips[1],
            local_ip=f"169.254.{base}.5",
            peer_ip=f"169.254.{base}.6",
            up=False,
            state="Down",
            received_prefixes=0,
            tunnel=conn.outside_ips[1],
        ),
    ]


def test_static_routes_only_connection_has_tunnels_but_no_bgp_sessions(aws: MotoAws) -> None:
    tgw = aws.create_transit_gateway()
    bgp = aws.create_vpn_connection(aws.create_customer_gateway("198.51.100.1"), transit_gateway_id=tgw)
    static = aws.create_vpn_connection(
        aws.create_customer_gateway("198.51.100.2"), transit_gateway_id=tgw, static_routes_only=True
    )

    snapshot = make_exporter(aws).poll()

    assert {t.connection for t in snapshot.tunnels} == {bgp.vpn_id, static.vpn_id}
    assert sorted(s.peer for s in snapshot.bgp_sessions) == sorted(bgp.outside_ips)


def test_vpn_gateway_connection_uses_the_vgw_as_bgp_router_and_learns_no_tgw_routes(aws: MotoAws) -> None:
    vgw = aws.client().create_vpn_gateway(Type="ipsec.1")["VpnGateway"]["VpnGatewayId"]
    aws.create_vpn_connection(aws.create_customer_gateway("198.51.100.7"), vpn_gateway_id=vgw)
    aws.clear_requests()

    snapshot = make_exporter(aws).poll()

    assert {s.router for s in snapshot.bgp_sessions} == {vgw}
    assert snapshot.routes == ()
    assert [r.action for r in aws.calls()] == ["DescribeVpnConnections", "DescribeCustomerGateways"]


def test_deleted_and_deleting_connections_are_skipped(aws: MotoAws) -> None:
    lab = aws.build_lab(3)
    aws.set_state(lab.connections[0].vpn_id, "deleted")
    aws.set_state(lab.connections[1].vpn_id, "deleting")

    snapshot = make_exporter(aws).poll()

    assert {t.connection for t in snapshot.tunnels} == {lab.connections[2].vpn_id}


def test_no_connections_gives_an_empty_snapshot(aws: MotoAws) -> None:
    snapshot = make_exporter(aws).poll()
    assert (snapshot.tunnels, snapshot.bgp_sessions, snapshot.routes, snapshot.api_calls) == ((), (), (), 1)


def test_tunnel_without_telemetry_is_reported_down_as_unknown(aws: MotoAws) -> None:
    tgw = aws.create_transit_gateway()
    conn = aws.create_vpn_connection(aws.create_customer_gateway("198.51.100.3"), transit_gateway_id=tgw)
    aws.backend().vpn_connections[conn.vpn_id].vgw_telemetry = []  # e.g. a connection still pending
    aws.set_state(conn.vpn_id, "pending")

    snapshot = make_exporter(aws).poll()

    assert [(t.name, t.up, t.status, t.inside_cidr) for t in snapshot.tunnels] == [
        (ip, False, "UNKNOWN", cidr) for ip, cidr in zip(conn.outside_ips, conn.inside_cidrs, strict=True)
    ]
    assert {s.state for s in snapshot.bgp_sessions} == {"Down"}


def test_response_missing_required_fields_is_malformed(aws: MotoAws) -> None:
    body = (
        b'<DescribeVpnConnectionsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
        b"<requestId>r-1</requestId><vpnConnectionSet><item><state>available</state></item>"
        b"</vpnConnectionSet></DescribeVpnConnectionsResponse>"
    )
    aws.fail("DescribeVpnConnections", status=200, body=body)
    error = poll_error(make_exporter(aws))
    assert error.reason == "malformed"


# -- learned prefixes ---------------------------------------------------------------------------


def test_routes_learned_over_several_attachments_only_vpn_propagated(aws: MotoAws) -> None:
    lab = aws.build_lab(2)
    c0, c1 = lab.connections
    assert c0.attachment_id and c1.attachment_id
    table = lab.route_table_id
    aws.add_propagated_route(table, "10.20.0.0/16", c0.vpn_id, c1.vpn_id)  # ECMP over both connections
    aws.add_propagated_route(table, "10.21.0.0/16", c1.vpn_id)
    aws.add_propagated_route(table, "10.22.0.0/16", c0.vpn_id, state="blackhole")
    aws.add_route(table, "10.30.0.0/16", attachments=[("tgw-attach-0vpc", "vpc-0abc", "vpc")])
    aws.add_route(table, "10.31.0.0/16", attachments=[(c0.attachment_id, c0.vpn_id, "vpn")], type="static")
    other = aws.create_route_table(lab.transit_gateway_id)
    aws.add_propagated_route(other, "10.40.0.0/16", c0.vpn_id)

    snapshot = make_exporter(aws).poll()

    assert sorted(snapshot.routes, key=lambda r: (r.router, r.prefix, r.next_hop)) == sorted(
        [
            LearnedRoute(router=table, prefix="10.20.0.0/16", next_hop=c0.attachment_id, connection=c0.vpn_id),
            LearnedRoute(router=table, prefix="10.20.0.0/16", next_hop=c1.attachment_id, connection=c1.vpn_id),
            LearnedRoute(router=table, prefix="10.21.0.0/16", next_hop=c1.attachment_id, connection=c1.vpn_id),
            LearnedRoute(router=other, prefix="10.40.0.0/16", next_hop=c0.attachment_id, connection=c0.vpn_id),
        ],
        key=lambda r: (r.router, r.prefix, r.next_hop),
    )


def test_configured_route_tables_are_the_only_ones_searched(aws: MotoAws) -> None:
    lab = aws.build_lab(1)
    (conn,) = lab.connections
    other = aws.create_route_table(lab.transit_gateway_id)
    aws.add_propagated_route(lab.route_table_id, "10.20.0.0/16", conn.vpn_id)
    aws.add_propagated_route(other, "10.40.0.0/16", conn.vpn_id)
    aws.clear_requests()

    snapshot = make_exporter(aws, transit_gateway_route_tables=[other]).poll()

    assert [(r.router, r.prefix) for r in snapshot.routes] == [(other, "10.40.0.0/16")]
    assert not aws.calls("DescribeTransitGatewayRouteTables")
    assert [c.params["TransitGatewayRouteTableId"] for c in aws.calls("SearchTransitGatewayRoutes")] == [other]


def test_route_pages_are_followed(aws: MotoAws) -> None:
    lab = aws.build_lab(1)
    (conn,) = lab.connections
    for i in range(7):
        aws.add_propagated_route(lab.route_table_id, f"10.{i}.0.0/16", conn.vpn_id)
    aws.route_page_size = 3
    aws.clear_requests()

    snapshot = make_exporter(aws).poll()

    assert sorted(r.prefix for r in snapshot.routes) == sorted(f"10.{i}.0.0/16" for i in range(7))
    searches = aws.calls("SearchTransitGatewayRoutes")
    assert len(searches) == 3
    assert [s.params.get("NextToken") for s in searches] == [None, "3", "6"]
    assert searches[0].params["Filter.1.Name"] == "type" and searches[0].params["Filter.1.Value.1"] == "propagated"


def test_api_calls_grow_with_route_tables_not_with_tunnels_or_routes(aws: MotoAws) -> None:
    lab = aws.build_lab(2)
    exporter = make_exporter(aws)
    aws.clear_requests()
    small = exporter.poll()
    assert small.api_calls == len(aws.calls()) == 5  # vpn, cgw, attachments, route tables, 1 search

    for i in range(40):
        aws.add_propagated_route(lab.route_table_id, f"10.{i}.0.0/16", *(c.vpn_id for c in lab.connections))
    for _ in range(3):
        aws.create_vpn_connection(
            aws.create_customer_gateway("198.51.100.9"), transit_gateway_id=lab.transit_gateway_id
        )
    assert exporter.poll().api_calls == 5

    aws.create_route_table(lab.transit_gateway_id)
    assert exporter.poll().api_calls == 6


def test_vpn_connections_filter(aws: MotoAws) -> None:
    lab = aws.build_lab(3)
    c0, c1, c2 = lab.connections
    aws.add_propagated_route(lab.route_table_id, "10.20.0.0/16", c0.vpn_id, c2.vpn_id)
    aws.add_propagated_route(lab.route_table_id, "10.21.0.0/16", c1.vpn_id)

    aws.clear_requests()
    snapshot = make_exporter(aws, vpn_connections=[c0.vpn_id, c1.vpn_id]).poll()

    assert {t.connection for t in snapshot.tunnels} == {c0.vpn_id, c1.vpn_id}
    assert {(r.prefix, r.connection) for r in snapshot.routes} == {
        ("10.20.0.0/16", c0.vpn_id),
        ("10.21.0.0/16", c1.vpn_id),
    }
    (describe,) = aws.calls("DescribeVpnConnections")
    assert {describe.params["VpnConnectionId.1"], describe.params["VpnConnectionId.2"]} == {
        c0.vpn_id,
        c1.vpn_id,
    }


def test_configured_connection_that_vanished_is_not_found(aws: MotoAws) -> None:
    aws.build_lab(1)
    error = poll_error(make_exporter(aws, vpn_connections=["vpn-0123456789abcdef0"]))
    assert error.reason == "not_found"
    assert "DescribeVpnConnections" in str(error) and "InvalidVpnConnectionID.NotFound" in str(error)


# -- secrets ------------------------------------------------------------------------------------


def test_pre_shared_keys_never_leave_the_exporter(aws: MotoAws, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    lab = aws.build_lab(2)
    aws.add_propagated_route(lab.route_table_id, "10.20.0.0/16", lab.connections[0].vpn_id)

    snapshot = make_exporter(aws).poll()

    assert any("DescribeVpnConnections" in r.getMessage() or "Response" in r.getMessage() for r in caplog.records)
    for secret in SECRETS:
        assert secret not in repr(snapshot)
        assert secret not in caplog.text
    assert "CustomerGatewayConfiguration" not in repr(snapshot)


def test_pre_shared_key_in_a_broken_response_stays_out_of_the_error(
    aws: MotoAws, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    truncated = f"<DescribeVpnConnectionsResponse><vpnConnectionSet><item><preSharedKey>{TEST_PSK}".encode()
    aws.fail("DescribeVpnConnections", status=200, body=truncated)

    error = poll_error(make_exporter(aws))

    assert error.reason == "malformed"
    chain: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for secret in SECRETS:
        assert all(secret not in repr(e) for e in chain)
        assert secret not in caplog.text


# -- errors -------------------------------------------------------------------------------------


def test_throttling_is_throttled_with_retry_after(aws: MotoAws) -> None:
    aws.fail(
        "DescribeVpnConnections",
        status=503,
        code="RequestLimitExceeded",
        message="Request limit exceeded.",
        headers={"Retry-After": "7"},
    )
    error = poll_error(make_exporter(aws, timeout=3.0))
    assert error.reason == "throttled"
    assert error.retry_after == 7.0
    assert "DescribeVpnConnections" in str(error) and REGION in str(error) and aws.endpoint_url in str(error)
    assert len(aws.calls("DescribeVpnConnections")) == 2  # the SDK's bounded retry


def test_a_single_throttle_is_retried_within_the_poll(aws: MotoAws) -> None:
    aws.build_lab(1)
    aws.clear_requests()
    aws.fail("DescribeCustomerGateways", status=400, code="Throttling", times=1)
    snapshot = make_exporter(aws).poll()
    assert len(snapshot.tunnels) == 2
    assert len(aws.calls("DescribeCustomerGateways")) == 2


def test_deadline_hit_while_backing_off_from_throttling_is_throttled(aws: MotoAws) -> None:
    # The answer comes inside the read timeout, then the SDK honours x-amz-retry-after (2 s) and the
    # 2 s poll deadline passes before the retry: the user should see "throttled", not "timeout".
    aws.fail(
        "DescribeVpnConnections",
        status=503,
        code="RequestLimitExceeded",
        delay=0.5,
        headers={"x-amz-retry-after": "2000"},
    )
    error = poll_error(make_exporter(aws, timeout=2.0))
    assert error.reason == "throttled"
    assert error.retry_after == 2.0
    assert "still throttled" in str(error)
    assert len(aws.calls("DescribeVpnConnections")) == 1


def test_throttled_later_in_the_poll_names_that_operation(aws: MotoAws) -> None:
    aws.build_lab(1)
    aws.fail("SearchTransitGatewayRoutes", status=429, code="TooManyRequests")
    error = poll_error(make_exporter(aws, timeout=3.0))
    assert error.reason == "throttled"
    assert "SearchTransitGatewayRoutes" in str(error)


@pytest.mark.parametrize(
    ("code", "status"),
    [("ExpiredToken", 400), ("AuthFailure", 401), ("UnauthorizedOperation", 403), ("SomethingNew", 403)],
)
def test_credential_failures_are_auth(aws: MotoAws, code: str, status: int) -> None:
    aws.fail(code=code, status=status, message="The security token included in the request is expired")
    error = poll_error(make_exporter(aws))
    assert error.reason == "auth"
    assert code in str(error)


def test_missing_credentials_are_auth(aws: MotoAws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    config = AwsExporterConfig(name="aws-nocreds", type="aws", region=REGION, endpoint_url=aws.endpoint_url)
    error = poll_error(AwsExporter(config, timeout=5.0))
    assert error.reason == "auth"
    assert "credentials" in str(error)
    assert aws.calls() == []


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_server_error(aws: MotoAws, status: int) -> None:
    aws.fail("DescribeVpnConnections", status=status, code="InternalError" if status == 500 else "Unavailable")
    error = poll_error(make_exporter(aws))
    assert error.reason == "server_error"
    assert f"HTTP {status}" in str(error)


def test_other_api_errors_are_api_error(aws: MotoAws) -> None:
    aws.fail("DescribeVpnConnections", status=400, code="InvalidParameterValue", message="bad filter")
    error = poll_error(make_exporter(aws))
    assert (error.reason, error.retry_after) == ("api_error", None)
    assert "InvalidParameterValue" in str(error) and "bad filter" in str(error)


@pytest.mark.parametrize(
    "body",
    [b"this is not xml", b"<html><body>502 Bad Gateway</body>", b"<DescribeVpnConnectionsResponse><vpnConn"],
)
def test_unparseable_responses_are_malformed(aws: MotoAws, body: bytes) -> None:
    aws.fail("DescribeVpnConnections", status=200, body=body)
    error = poll_error(make_exporter(aws))
    assert error.reason == "malformed"
    assert "DescribeVpnConnections" in str(error)


def test_unparseable_error_page_is_malformed_or_server_error(aws: MotoAws) -> None:
    # moto's own answer to an unimplemented action: HTTP 500 with an HTML page.
    aws.fail("DescribeVpnConnections", status=500, body=b"<!doctype html><title>500</title><p>boom")
    assert poll_error(make_exporter(aws)).reason in ("server_error", "malformed")


@pytest.mark.parametrize("timeout", [1.0, 2.0])
def test_slow_endpoint_times_out_within_the_poll_timeout(aws: MotoAws, timeout: float) -> None:
    aws.fail("DescribeVpnConnections", delay=10.0)
    exporter = make_exporter(aws, timeout=timeout)
    started = time.monotonic()
    error = poll_error(exporter)
    elapsed = time.monotonic() - started
    assert error.reason == "timeout"
    assert timeout - 0.1 <= elapsed < timeout + 0.5, elapsed
    assert "DescribeVpnConnections" in str(error)


def test_poll_deadline_stops_later_calls(aws: MotoAws) -> None:
    aws.build_lab(1)
    exporter = make_exporter(aws, timeout=2.0)
    aws.clear_requests()
    # Every call answers inside its read timeout (1 s), so only the poll deadline can stop the poll;
    # a call already in flight finishes, so the poll may overrun by at most one read timeout.
    aws.fail(delay=0.8)
    started = time.monotonic()
    error = poll_error(exporter)
    elapsed = time.monotonic() - started
    assert error.reason == "timeout"
    assert "ran past its 2s timeout" in str(error)
    assert 2.0 <= elapsed < 3.3, elapsed
    assert 2 <= len(aws.calls()) <= 3


def test_unreachable_endpoint_is_network(aws: MotoAws) -> None:
    error = poll_error(make_exporter(aws, endpoint_url=f"http://127.0.0.1:{free_port()}"))
    assert error.reason == "network"
    assert "127.0.0.1" in str(error)


# -- construction -------------------------------------------------------------------------------


def test_named_profile_selects_its_credentials(aws: MotoAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text("[lab]\naws_access_key_id = AKIAPROFILELAB000001\naws_secret_access_key = x\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    make_exporter(aws, profile="lab").poll()

    assert {(r.access_key, r.region) for r in aws.calls()} == {("AKIAPROFILELAB000001", REGION)}


def test_credentials_file_is_used_instead_of_the_environment(aws: MotoAws, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[default]\naws_access_key_id = AKIAFILEDEFAULT00001\naws_secret_access_key = x\n"
        "[lab]\naws_access_key_id = AKIAFILELAB000000001\naws_secret_access_key = y\n"
    )
    # The environment keeps its own keys (the fixture's); the file wins for this exporter only.
    AwsExporter(make_config(aws, credentials_file=str(credentials)), timeout=5.0).poll()
    AwsExporter(make_config(aws, credentials_file=str(credentials), profile="lab"), timeout=5.0).poll()
    assert {r.access_key for r in aws.calls()} == {"AKIAFILEDEFAULT00001", "AKIAFILELAB000000001"}


@pytest.mark.parametrize(
    ("text", "profile", "message"),
    [
        (None, None, "No such file or directory"),
        ("[other]\naws_access_key_id = A\naws_secret_access_key = b\n", None, "has no keys in section [default]"),
        ("[default]\naws_access_key_id = A\naws_secret_access_key = b\n", "lab", "has no keys in section [lab]"),
    ],
)
def test_unusable_credentials_file_is_a_config_error(
    aws: MotoAws, tmp_path: Path, text: str | None, profile: str | None, message: str
) -> None:
    path = tmp_path / "credentials"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        AwsExporter(make_config(aws, credentials_file=str(path), profile=profile), timeout=5.0)


def test_unknown_profile_is_a_config_error(aws: MotoAws) -> None:
    with pytest.raises(ConfigError, match="nosuch"):
        make_exporter(aws, profile="nosuch")


def test_registry_builds_the_exporter(aws: MotoAws) -> None:
    config = AwsExporterConfig(name="aws-x", type="aws", region=REGION, endpoint_url=aws.endpoint_url)
    aws.build_lab(1)
    exporter = build_exporter(config, timeout=5.0)
    assert (exporter.name, exporter.cloud) == ("aws-x", "aws")
    snapshot = exporter.poll()
    exporter.close()
    # One entry, one target: the base credentials' account (STS GetCallerIdentity) and the region.
    assert {t.scope for t in snapshot.tunnels} == {Scope("account", "123456789012", REGION)}
    assert snapshot.api_calls == 1 + 5  # GetCallerIdentity once, then the poll's own calls


# -- the fake itself (others build on it) -------------------------------------------------------


def test_fake_modify_vpn_tunnel_options_applies_and_records_in_order(aws: MotoAws) -> None:
    aws.enable_modify_vpn_tunnel_options()
    (conn,) = aws.build_lab(1).connections
    client = aws.client()
    for ip in reversed(conn.outside_ips):
        client.modify_vpn_tunnel_options(
            VpnConnectionId=conn.vpn_id,
            VpnTunnelOutsideIpAddress=ip,
            TunnelOptions={"IKEVersions": [{"Value": "ikev2"}], "Phase2DHGroupNumbers": [{"Value": 20}]},
        )

    assert [(c.vpn_connection_id, c.outside_ip) for c in aws.modify_calls] == [
        (conn.vpn_id, ip) for ip in reversed(conn.outside_ips)
    ]
    assert aws.modify_calls[0].options["IKEVersions"] == [{"Value": "ikev2"}]
    described = client.describe_vpn_connections(VpnConnectionIds=[conn.vpn_id])["VpnConnections"][0]
    for tunnel in described["Options"]["TunnelOptions"]:
        assert tunnel["IkeVersions"] == [{"Value": "ikev2"}]
        assert tunnel["Phase2DHGroupNumbers"] == [{"Value": 20}]
        assert tunnel["PreSharedKey"] == TEST_PSK  # the fake serves it, so leak tests mean something


def test_ec2_throttled_exception_is_throttled(aws: MotoAws) -> None:
    # botocore's retry table lists EC2ThrottledException with the throttling codes.
    aws.fail("DescribeVpnConnections", status=503, code="EC2ThrottledException", message="Request throttled.")
    error = poll_error(make_exporter(aws, timeout=3.0))
    assert error.reason == "throttled"


def test_routes_cut_off_without_a_page_token_are_said(aws: MotoAws, caplog: pytest.LogCaptureFixture) -> None:
    lab = aws.build_lab(1)
    (conn,) = lab.connections
    attachment = conn.attachment_id
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<SearchTransitGatewayRoutesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
        "<requestId>r-1</requestId><routeSet><item><destinationCidrBlock>10.20.0.0/16</destinationCidrBlock>"
        "<type>propagated</type><state>active</state><transitGatewayAttachments><item>"
        f"<resourceId>{conn.vpn_id}</resourceId><transitGatewayAttachmentId>{attachment}</transitGatewayAttachmentId>"
        "<resourceType>vpn</resourceType></item></transitGatewayAttachments></item></routeSet>"
        "<additionalRoutesAvailable>true</additionalRoutesAvailable></SearchTransitGatewayRoutesResponse>"
    )
    aws.fail("SearchTransitGatewayRoutes", status=200, body=body.encode())

    with caplog.at_level(logging.WARNING, logger="exporters.aws_client"):
        snapshot = make_exporter(aws).poll()

    assert [r.prefix for r in snapshot.routes] == ["10.20.0.0/16"]
    assert "more are available" in caplog.text and lab.route_table_id in caplog.text
