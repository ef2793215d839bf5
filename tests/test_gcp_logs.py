"""Cloud VPN / Cloud Router entries through the local Cloud Logging API, read by the GCP exporter."""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.lab.emulators.gcp import FakeGcp
from deploy.lab.emulators.gcp_logging import CloudLogging, compile_filter, rfc3339
from exporters.gcp import GcpExporter
from watchdog.config import GcpExporterConfig
from watchdog.model import Snapshot
from watchdog.oneshot import probe_once
from watchdog.runners import ExporterRunner

GATEWAY_ID = "1111"  # ha-gw in the fake's default topology; tunnels aws-tun-i have id 2000+i


@pytest.fixture
def gcp() -> Iterator[FakeGcp]:
    with FakeGcp() as fake:
        yield fake


@pytest.fixture
def logging_api(gcp: FakeGcp) -> CloudLogging:
    return CloudLogging(gcp.project).mount(gcp)


@pytest.fixture
def make(gcp: FakeGcp, tmp_path: Path) -> Iterator[Any]:
    built: list[GcpExporter] = []
    credentials = gcp.write_credentials(tmp_path)

    def factory(**overrides: Any) -> GcpExporter:
        fields = gcp.exporter_config(credentials_file=credentials, logs=True)
        fields.update(overrides)
        exporter = GcpExporter(GcpExporterConfig(**fields), timeout=10.0)
        built.append(exporter)
        return exporter

    yield factory
    for exporter in built:
        exporter.close()


def vpn(api: CloudLogging, gcp: FakeGcp, tunnel: int, message: str, **extra: Any) -> None:
    api.vpn_entry(GATEWAY_ID, str(2000 + tunnel), message, region=gcp.region, **extra)


def events(snapshot: Snapshot) -> dict[tuple[str, str], int]:
    assert snapshot.logs is not None
    return {(t, e): n for t, e, n in snapshot.logs.events}


def entries(snapshot: Snapshot) -> dict[str, int]:
    assert snapshot.logs is not None
    return dict(snapshot.logs.entries)


def test_vpn_and_router_entries_join_to_their_tunnel_and_session(
    gcp: FakeGcp, logging_api: CloudLogging, make: Any
) -> None:
    exporter = make()
    vpn(logging_api, gcp, 0, "detected rekeying of CHILD_SA vpn_198.51.100.1{17}")
    for n in (1, 2, 3):
        vpn(logging_api, gcp, 1, f"retransmit {n} of request with message ID 12")
    vpn(logging_api, gcp, 1, "dropped IP fragment of IKE message from 198.51.100.2")
    # Another region's and another gateway's entries are not this exporter's.
    logging_api.vpn_entry(GATEWAY_ID, "2000", "detected rekeying of CHILD_SA x{1}", region="us-west1")
    logging_api.vpn_entry("9999", "2000", "detected rekeying of CHILD_SA x{1}", region=gcp.region)
    logging_api.router_entry(
        "4242", "BGP Event: BGP peering with aws-peer-2 went down with the reason HOLD_TIMER_EXPIRED", region=gcp.region
    )

    snapshot = exporter.poll()

    assert snapshot.logs is not None and snapshot.logs.error is None
    assert events(snapshot) == {
        ("aws-tun-0", "rekey"): 1,
        ("aws-tun-1", "retransmit"): 3,
        ("aws-tun-1", "fragment_dropped"): 1,
    }
    assert snapshot.logs.bgp_downs == (("cr-aws", "aws-peer-2", "HOLD_TIMER_EXPIRED", 1),)
    assert entries(snapshot) == {"classified": 6, "malformed": 0, "unclassified": 0}
    assert snapshot.logs.lag_seconds is not None and snapshot.logs.lag_seconds < 60
    (request,) = logging_api.requests
    assert request["resourceNames"] == [f"projects/{gcp.project}"] and request["orderBy"] == "timestamp asc"
    assert f'resource.labels.region="{gcp.region}"' in request["filter"]
    assert 'resource.labels.gateway_id=("1111")' in request["filter"]
    assert len(snapshot.tunnels) == 4


def test_no_entry_counts_twice_across_polls_and_the_window_overlaps(
    gcp: FakeGcp, logging_api: CloudLogging, make: Any
) -> None:
    exporter = make()
    vpn(logging_api, gcp, 0, "IKE_SA vpn_198.51.100.1[3] rekeyed between 203.0.113.10[..]...198.51.100.1[..]")
    assert events(exporter.poll()) == {("aws-tun-0", "rekey"): 1}
    assert events(exporter.poll()) == {("aws-tun-0", "rekey"): 1}
    vpn(logging_api, gcp, 0, "detected rekeying of CHILD_SA vpn_198.51.100.1{9}")

    third = exporter.poll()

    assert events(third) == {("aws-tun-0", "rekey"): 2}
    assert entries(third)["classified"] == 2
    first, second, _ = (r["filter"] for r in logging_api.requests)
    assert first != second  # the second window starts near the newest entry, not at the lookback


def test_pages_are_followed_and_a_cut_off_read_resumes(gcp: FakeGcp, logging_api: CloudLogging, make: Any) -> None:
    exporter = make()
    assert exporter.logs is not None
    exporter.logs._page_size, exporter.logs._max_pages = 2, 2
    for n in range(7):
        vpn(logging_api, gcp, 3, f"retransmit {n} of request with message ID 4")

    assert events(exporter.poll()) == {("aws-tun-3", "retransmit"): 4}
    second = exporter.poll()

    assert events(second) == {("aws-tun-3", "retransmit"): 7}
    tokens = [r.get("pageToken") for r in logging_api.requests]
    assert tokens == [None, "2", "4", "6"]
    assert len({r["filter"] for r in logging_api.requests}) == 1  # resumed with the same filter


def test_a_throttled_read_is_an_error_and_the_next_poll_reads_the_gap(
    gcp: FakeGcp, logging_api: CloudLogging, make: Any
) -> None:
    exporter = make()
    vpn(logging_api, gcp, 0, "detected rekeying of CHILD_SA a{1}")
    logging_api.fail(429, "Quota exceeded for quota metric 'Read requests'", times=3)

    failed = exporter.poll()

    assert failed.logs is not None and failed.logs.error is not None
    assert failed.logs.error[0] == "throttled" and failed.logs.lag_seconds is None
    assert len(failed.tunnels) == 4 and len(failed.bgp_sessions) > 0
    vpn(logging_api, gcp, 0, "detected rekeying of CHILD_SA a{2}")
    assert events(exporter.poll()) == {("aws-tun-0", "rekey"): 2}


def test_a_denied_read_counts_an_auth_error_and_keeps_the_tunnels(
    gcp: FakeGcp, logging_api: CloudLogging, make: Any
) -> None:
    exporter = make()
    logging_api.fail(403, "Permission 'logging.logEntries.list' denied on resource")
    runner = ExporterRunner(exporter, interval=30.0, timeout=10.0)

    snapshot = exporter.poll()
    runner.apply(snapshot, 0.1)

    assert snapshot.logs is not None and snapshot.logs.error is not None
    assert snapshot.logs.error[0] == "auth"
    assert runner.health.up and runner.health.errors["auth"] == 1
    text = "".join(line for lines in runner.rendered.values() for line in lines)
    assert "vpn_watchdog_log_lag_seconds" not in text and text.count("vpn_watchdog_tunnel_up{") == 4
    assert 'vpn_watchdog_log_entries_total{cloud="gcp",exporter="gcp-hub",outcome="malformed"} 0.0' in text


def test_malformed_and_unclassified_entries_are_counted(gcp: FakeGcp, logging_api: CloudLogging, make: Any) -> None:
    exporter = make()
    vpn(logging_api, gcp, 0, "peer said something new and strange 12345")
    logging_api.write(
        [
            {
                "logName": f"projects/{gcp.project}/logs/x",
                "resource": {"type": "vpn_gateway", "labels": {"region": gcp.region, "gateway_id": GATEWAY_ID}},
                "protoPayload": {"not": "a message"},
            }
        ]
    )

    snapshot = exporter.poll()

    assert entries(snapshot) == {"classified": 0, "malformed": 1, "unclassified": 1}
    assert events(snapshot) == {}


def test_logs_off_makes_no_logging_calls(gcp: FakeGcp, logging_api: CloudLogging, make: Any) -> None:
    snapshot = make(logs=False).poll()
    assert snapshot.logs is None and logging_api.requests == []


# -- the fake itself: the documented request shape, errors for what it cannot answer -----------


def _post(gcp: FakeGcp, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        gcp.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - the local fake
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_the_fake_writes_and_lists_in_order_with_filters(gcp: FakeGcp, logging_api: CloudLogging) -> None:
    now = time.time()
    resource = {"type": "gce_router", "labels": {"region": gcp.region, "router_id": "1"}}
    status, _ = _post(
        gcp,
        "/v2/entries:write",
        {
            "logName": f"projects/{gcp.project}/logs/router",
            "resource": resource,
            "entries": [
                {"textPayload": "b", "timestamp": rfc3339(now - 1)},
                {"textPayload": "a", "timestamp": rfc3339(now - 2)},
            ],
        },
    )
    assert status == 200
    names = [f"projects/{gcp.project}"]
    status, page = _post(gcp, "/v2/entries:list", {"resourceNames": names, "orderBy": "timestamp desc"})
    assert status == 200 and [e["textPayload"] for e in page["entries"]] == ["b", "a"]
    query = f'timestamp>"{rfc3339(now - 1.5)}" AND resource.type="gce_router"'
    status, page = _post(gcp, "/v2/entries:list", {"resourceNames": names, "filter": query})
    assert [e["textPayload"] for e in page["entries"]] == ["b"]
    assert _post(gcp, "/v2/entries:list", {"resourceNames": names, "filter": "timestamp >"})[0] == 400
    assert _post(gcp, "/v2/entries:list", {"resourceNames": names, "pageSize": 1001})[0] == 400
    assert _post(gcp, "/v2/entries:list", {"filter": ""})[0] == 400


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        ('resource.labels.gateway_id=("1" OR "2")', True),
        ('resource.labels.gateway_id=("3" OR "4")', False),
        ('NOT resource.type="vpn_gateway"', False),
        ('resource.type="gce_router" OR labels.tunnel_id="7"', True),
        ('textPayload:"REKEYING"', True),
        ('(resource.type="vpn_gateway" AND labels.tunnel_id!="7")', False),
    ],
)
def test_the_fake_filter_language(query: str, matches: bool) -> None:
    entry = {
        "resource": {"type": "vpn_gateway", "labels": {"gateway_id": "2"}},
        "labels": {"tunnel_id": "7"},
        "textPayload": "detected rekeying of CHILD_SA",
    }
    assert compile_filter(query)(entry) is matches


def test_probe_once_lists_recent_ike_and_bgp_events(gcp: FakeGcp, logging_api: CloudLogging, tmp_path: Path) -> None:
    vpn(logging_api, gcp, 1, "retransmit 1 of request with message ID 12", at=time.time() - 60)
    vpn(logging_api, gcp, 1, "giving up after 5 retransmits", at=time.time() - 30)
    logging_api.router_entry(
        "4242", "BGP Event: BGP peering with aws-peer-1 went down with the reason HOLD_TIMER_EXPIRED", region=gcp.region
    )
    entry = gcp.exporter_config(credentials_file=gcp.write_credentials(tmp_path), logs=True)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"exporters": [entry]}))

    text, raw = io.StringIO(), io.StringIO()
    probe_once(str(config), fmt="text", out=text)
    probe_once(str(config), fmt="json", out=raw)

    section = text.getvalue().split("RECENT IKE/BGP EVENTS", 1)[1]
    lines = [line for line in section.splitlines() if "gcp-hub" in line]
    names = ("retransmit", "negotiation_timeout", "bgp_down")
    assert [next(w for w in line.split() if w in names) for line in lines] == list(names)
    assert lines[1].lstrip().startswith("FAIL") and "aws-tun-1" in lines[1]
    assert "cr-aws/aws-peer-1" in lines[2] and "HOLD_TIMER_EXPIRED" in lines[2]
    events = json.loads(raw.getvalue())["log_events"]
    assert [(e["event"], e["tunnel"], e["failure"]) for e in events] == [
        ("retransmit", "aws-tun-1", False),
        ("negotiation_timeout", "aws-tun-1", True),
        ("bgp_down", "aws-tun-1", True),
    ]
