"""AWS tunnel activity / BGP logs through moto's CloudWatch Logs (server mode), read by the exporter."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from deploy.lab.emulators.aws import MotoAws
from exporters.aws import AwsExporter
from watchdog.config import AwsExporterConfig
from watchdog.exposition import render_snapshot
from watchdog.model import Snapshot
from watchdog.runners import ExporterRunner

REGION = "ap-northeast-1"
GROUP = "/vpn/tunnels"


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoAws]:
    with MotoAws(region=REGION) as server:
        yield server


@pytest.fixture
def aws(moto_server: MotoAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoAws]:
    moto_server.reset()
    moto_server.use_test_credentials(monkeypatch)
    yield moto_server
    moto_server.reset()  # moto's backends are per process: leave no log group to the next module


class Group:
    """A log group in moto with one stream per tunnel, named as AWS names them."""

    def __init__(self, aws: MotoAws, name: str = GROUP) -> None:
        self.client: Any = boto3.client("logs", endpoint_url=aws.endpoint_url, region_name=REGION)
        self.name = name
        self.client.create_log_group(logGroupName=name)
        self.streams: set[str] = set()

    def put(self, vpn_id: str, ip: str, message: str | dict[str, Any], *, at: float | None = None) -> None:
        stream = f"{vpn_id}-{ip}"
        if stream not in self.streams:
            self.client.create_log_stream(logGroupName=self.name, logStreamName=stream)
            self.streams.add(stream)
        text = message if isinstance(message, str) else json.dumps(message)
        stamp = int((time.time() if at is None else at) * 1000)
        self.client.put_log_events(
            logGroupName=self.name, logStreamName=stream, logEvents=[{"timestamp": stamp, "message": text}]
        )

    def activity(self, vpn_id: str, ip: str, details: str, p1: str = "established", p2: str = "established") -> None:
        now = time.time()
        record = {
            "event_timestamp": int(now),
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)),
            "dpd_enabled": True,
            "nat_t_detected": False,
            "ike_phase1_state": p1,
            "ike_phase2_state": p2,
            "details": details,
        }
        self.put(vpn_id, ip, record)


def exporter(aws: MotoAws, **overrides: Any) -> AwsExporter:
    fields: dict[str, Any] = {
        "name": "aws-tokyo",
        "type": "aws",
        "region": REGION,
        "endpoint_url": aws.endpoint_url,
        "tunnel_logs": {"log_group": GROUP},
    }
    fields.update(overrides)
    return AwsExporter(AwsExporterConfig(**fields), timeout=10.0)


def events(snapshot: Snapshot) -> dict[tuple[str, str], int]:
    assert snapshot.logs is not None
    return {(t, e): n for t, e, n in snapshot.logs.events}


def entries(snapshot: Snapshot) -> dict[str, int]:
    assert snapshot.logs is not None
    return dict(snapshot.logs.entries)


def test_states_and_a_rekey_join_to_exactly_their_tunnel(aws: MotoAws) -> None:
    lab = aws.build_lab(1)
    (conn,) = lab.connections
    ip0, ip1 = conn.outside_ips
    group = Group(aws)
    exp = exporter(aws)
    group.activity(conn.vpn_id, ip0, "AWS tunnel is sending request (id=7) for CREATE_CHILD_SA", p2="rekeying")
    group.activity(conn.vpn_id, ip0, "AWS tunnel processed response (id=7) for CREATE_CHILD_SA")
    group.activity(conn.vpn_id, ip1, "AWS tunnel DPD timed out after 3 retransmits", p1="down", p2="down")

    snapshot = exp.poll()

    assert snapshot.logs is not None and snapshot.logs.error is None
    assert events(snapshot) == {(ip0, "other"): 1, (ip0, "rekey"): 1, (ip1, "dpd_timeout"): 1}
    states = {(s.tunnel, s.phase1, s.phase2) for s in snapshot.logs.ike_states}
    assert states == {(ip0, "Established", "Established"), (ip1, "Down", "Down")}
    assert entries(snapshot) == {"classified": 3, "malformed": 0, "unclassified": 0}
    assert snapshot.logs.lag_seconds is not None and 0 <= snapshot.logs.lag_seconds < 60
    assert [e.event for e in snapshot.logs.recent] == ["rekey", "dpd_timeout"]
    text = "".join(line for lines in render_snapshot("aws-tokyo", "aws", snapshot, {}).values() for line in lines)
    assert (
        f'vpn_watchdog_tunnel_ike_state{{cloud="aws",connection="{conn.vpn_id}",exporter="aws-tokyo",'
        f'phase="2",state="Down",tunnel="{ip1}"}} 1.0' in text
    )
    assert (
        f'vpn_watchdog_tunnel_log_events_total{{cloud="aws",event="rekey",exporter="aws-tokyo",tunnel="{ip0}"}} 1.0'
        in text
    )
    assert "vpn_watchdog_log_lag_seconds{" in text
    # The tunnel metrics are there as ever.
    assert len(snapshot.tunnels) == 2


def test_no_entry_counts_twice_across_overlapping_polls(aws: MotoAws) -> None:
    lab = aws.build_lab(1)
    (conn,) = lab.connections
    ip0 = conn.outside_ips[0]
    group = Group(aws)
    exp = exporter(aws)
    group.activity(conn.vpn_id, ip0, "AWS tunnel processed response (id=1) for CREATE_CHILD_SA")
    assert events(exp.poll()) == {(ip0, "rekey"): 1}
    assert events(exp.poll()) == {(ip0, "rekey"): 1}  # the window re-reads the same entry: counted once
    group.activity(conn.vpn_id, ip0, "AWS tunnel is sending response (id=2) for CREATE_CHILD_SA")

    third = exp.poll()

    assert events(third) == {(ip0, "rekey"): 2}
    assert entries(third)["classified"] == 2
    starts = [int(r.params.get("startTime", 0)) for r in aws.calls("FilterLogEvents")]
    assert len(starts) == 3 and starts[1] == starts[2] < int(time.time() * 1000)


def test_entries_before_the_reader_started_set_states_but_count_no_events(aws: MotoAws) -> None:
    lab = aws.build_lab(1)
    (conn,) = lab.connections
    ip0 = conn.outside_ips[0]
    group = Group(aws)
    group.put(
        conn.vpn_id,
        ip0,
        {"ike_phase1_state": "Down", "ike_phase2_state": "Down", "details": "No Proposal Match Found by AWS"},
        at=time.time() - 120,
    )
    snapshot = exporter(aws).poll()
    assert snapshot.logs is not None
    assert events(snapshot) == {}
    assert [(s.phase1, s.phase2) for s in snapshot.logs.ike_states] == [("Down", "Down")]
    assert [e.event for e in snapshot.logs.recent] == ["no_proposal_chosen"]


def test_pages_are_followed_and_a_cut_off_read_resumes_at_its_token(aws: MotoAws) -> None:
    lab = aws.build_lab(1)
    (conn,) = lab.connections
    ip0 = conn.outside_ips[0]
    group = Group(aws)
    exp = exporter(aws)
    assert exp.logs is not None
    exp.logs._page_limit, exp.logs._max_pages = 2, 2  # 4 entries per poll at most
    for i in range(7):
        group.activity(conn.vpn_id, ip0, f"AWS tunnel processed response (id={i}) for CREATE_CHILD_SA")

    first = exp.poll()
    calls = aws.calls("FilterLogEvents")
    assert events(first) == {(ip0, "rekey"): 4}
    assert len(calls) == 2 and "nextToken" not in calls[0].params and calls[1].params.get("nextToken")

    second = exp.poll()

    assert events(second) == {(ip0, "rekey"): 7}
    assert entries(second)["classified"] == 7
    resumed = aws.calls("FilterLogEvents")[2]
    assert resumed.params.get("nextToken") and resumed.params["startTime"] == calls[0].params["startTime"]


def test_a_throttled_read_is_an_error_and_the_next_poll_reads_the_gap(aws: MotoAws) -> None:
    lab = aws.build_lab(1)
    (conn,) = lab.connections
    ip0 = conn.outside_ips[0]
    group = Group(aws)
    exp = exporter(aws)
    group.activity(conn.vpn_id, ip0, "AWS tunnel processed response (id=1) for CREATE_CHILD_SA")
    aws.fail("FilterLogEvents", status=400, code="ThrottlingException", message="Rate exceeded", times=3)

    failed = exp.poll()

    assert failed.logs is not None and failed.logs.error is not None
    assert failed.logs.error[0] == "throttled" and failed.logs.lag_seconds is None
    assert len(failed.tunnels) == 2 and len(failed.bgp_sessions) == 2
    group.activity(conn.vpn_id, ip0, "AWS tunnel is sending response (id=2) for CREATE_CHILD_SA")

    recovered = exp.poll()

    assert recovered.logs is not None and recovered.logs.error is None
    assert events(recovered) == {(ip0, "rekey"): 2}


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"status": 400, "code": "AccessDeniedException", "message": "not authorized"}, "auth"),
        (None, "not_found"),
    ],
)
def test_a_denied_or_missing_group_counts_an_error_and_keeps_the_tunnels(
    aws: MotoAws, fault: dict[str, Any] | None, reason: str
) -> None:
    aws.build_lab(1)
    if fault is not None:
        Group(aws)
        aws.fail("FilterLogEvents", **fault)
    exp = exporter(aws)
    runner = ExporterRunner(exp, interval=30.0, timeout=10.0)

    snapshot = exp.poll()
    runner.apply(snapshot, 0.1)

    assert snapshot.logs is not None and snapshot.logs.error is not None
    assert snapshot.logs.error[0] == reason and GROUP in snapshot.logs.error[1]
    assert runner.health.up and runner.health.errors[reason] == 1
    text = "".join(line for lines in runner.rendered.values() for line in lines)
    assert "vpn_watchdog_log_lag_seconds" not in text
    assert text.count("vpn_watchdog_tunnel_up{") == 2


def test_malformed_and_unclassified_entries_are_counted_and_logged_once_per_shape(
    aws: MotoAws, caplog: pytest.LogCaptureFixture
) -> None:
    lab = aws.build_lab(1)
    (conn,) = lab.connections
    ip0 = conn.outside_ips[0]
    group = Group(aws)
    exp = exporter(aws)
    group.put(conn.vpn_id, ip0, "{not json")
    group.put(conn.vpn_id, ip0, {"event_timestamp": 1})
    group.put(conn.vpn_id, ip0, {"type": "BGPStatus", "status": "UP"})
    group.activity(conn.vpn_id, ip0, "AWS tunnel frobnicated SA 0x1234abcd")
    group.activity(conn.vpn_id, ip0, "AWS tunnel frobnicated SA 0x99990000")

    with caplog.at_level(logging.DEBUG, logger="exporters.log_book"):
        snapshot = exp.poll()

    assert entries(snapshot) == {"classified": 0, "malformed": 3, "unclassified": 2}
    assert events(snapshot) == {}
    assert caplog.text.count("unclassified log message") == 1


def test_bgp_down_after_a_hold_timer_notification_names_the_reason(aws: MotoAws) -> None:
    lab = aws.build_lab(1)
    (conn,) = lab.connections
    ip1 = conn.outside_ips[1]
    group = Group(aws)
    exp = exporter(aws)
    resource = f"{conn.vpn_id}_{ip1}"
    group.put(
        conn.vpn_id,
        ip1,
        {
            "resource_id": resource,
            "type": "BGPStatus",
            "status": "DOWN",
            "message": {"details": "AWS-side peer sent a Hold Timer Expired notification to neighbor 169.254.11.2"},
        },
    )
    group.put(
        conn.vpn_id,
        ip1,
        {
            "resource_id": resource,
            "type": "BGPStatus",
            "status": "DOWN",
            "message": {
                "details": "AWS-side peer BGP session state has changed from Established to Idle with neighbor"
                " 169.254.11.2"
            },
        },
        at=time.time() + 0.01,
    )

    snapshot = exp.poll()

    assert snapshot.logs is not None
    (session,) = [s for s in snapshot.bgp_sessions if s.tunnel == ip1]
    assert snapshot.logs.bgp_downs == ((session.router, ip1, "HOLD_TIMER_EXPIRED", 1),)
    assert entries(snapshot)["classified"] == 2
