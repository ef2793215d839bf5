"""The failover/alert state machine, table-driven with an injected clock (no I/O, no sleeping)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import pytest

from tests.health_lab import AWS, AWS_PREFIX, GCP, GCP_PREFIX, aws_snapshot, gcp_snapshot
from watchdog.health import (
    ALERT_NAMES,
    SEVERITY,
    Alert,
    Event,
    ExporterView,
    HealthState,
    Observation,
    ProbeView,
    step,
)
from watchdog.join import join_tunnels
from watchdog.model import IkeSnapshot, LogView, PacketCount, Scope, Snapshot

START = 1_800_000_000.0


@dataclass(frozen=True)
class Phase:
    """`seconds` of one-second steps with this world."""

    seconds: int
    aws_down: Collection[int] = ()
    gcp_down: Collection[int] = ()
    aws_live: bool = True  # False: the AWS API is failing (stale after 3 intervals)
    gcp_live: bool = True
    gcp_bgp_down: Collection[int] = ()
    probes: tuple[ProbeView, ...] = ()


@dataclass
class Run:
    state: HealthState = field(default_factory=HealthState)
    events: list[Event] = field(default_factory=list)
    now: float = START
    aws_last: Snapshot | None = None
    gcp_last: Snapshot | None = None

    def firing(self) -> list[Alert]:
        return self.state.firing()

    def names(self) -> Counter[str]:
        return Counter(a.name for a in self.firing())

    def fired(self, name: str) -> list[Alert]:
        return [e.alert for e in self.events if e.kind == "firing" and e.alert and e.alert.name == name]

    def resolved(self, name: str) -> list[Alert]:
        return [e.alert for e in self.events if e.kind == "resolved" and e.alert and e.alert.name == name]

    def failovers(self) -> Counter[tuple[str, str]]:
        return Counter((e.exporter, e.prefix) for e in self.events if e.kind == "failover")


def view(snapshot: Snapshot | None, name: str, cloud: str, prefix: str, live: bool, stale: bool) -> ExporterView:
    return ExporterView.build(name, cloud, snapshot, {prefix: 2}, up=live, stale=stale, last_success=START)


def play(phases: Sequence[Phase], hold: float = 10.0, run: Run | None = None) -> Run:
    run = run or Run()
    for phase in phases:
        for _ in range(phase.seconds):
            # A failing API keeps the last good snapshot (the runner never zeroes it).
            if phase.aws_live:
                run.aws_last = aws_snapshot(phase.aws_down, at=run.now)
            if phase.gcp_live:
                run.gcp_last = gcp_snapshot(phase.gcp_down, bgp_down=phase.gcp_bgp_down, at=run.now)
            views = (
                view(run.aws_last, AWS, "aws", AWS_PREFIX, phase.aws_live, not phase.aws_live),
                view(run.gcp_last, GCP, "gcp", GCP_PREFIX, phase.gcp_live, not phase.gcp_live),
            )
            snaps = [s for s in (run.aws_last, run.gcp_last) if s is not None]
            obs = Observation(views, phase.probes, join_tunnels(snaps), hold=hold)
            run.state, events = step(run.state, obs, run.now)
            run.events.extend(events)
            run.now += 1.0
    return run


def labels(alert: Alert) -> dict[str, str]:
    return dict(alert.labels)


HEALTHY = Phase(5)


@pytest.mark.parametrize(
    ("phases", "firing", "failovers"),
    [
        pytest.param([HEALTHY, Phase(30)], {}, {}, id="healthy"),
        pytest.param(
            [HEALTHY, Phase(30, aws_down={1}, gcp_down={1})],
            {"VpnTunnelDown": 1, "VpnPathFailover": 2},
            {(AWS, AWS_PREFIX): 1, (GCP, GCP_PREFIX): 1},
            id="one-of-four-down",
        ),
        pytest.param(
            [HEALTHY, Phase(30, aws_down={1, 2}, gcp_down={1, 2})],
            {"VpnTunnelDown": 2, "VpnPathFailover": 2},
            {(AWS, AWS_PREFIX): 1, (GCP, GCP_PREFIX): 1},
            id="two-down-same-connection",
        ),
        pytest.param(
            [HEALTHY, Phase(30, aws_down={1, 2, 3}, gcp_down={1, 2, 3})],
            {"VpnTunnelDown": 3, "VpnPathFailover": 2, "VpnRedundancyDegraded": 2},
            {(AWS, AWS_PREFIX): 1, (GCP, GCP_PREFIX): 1},
            id="three-down-below-min-paths",
        ),
        pytest.param(
            [HEALTHY, Phase(30, aws_down={1, 2, 3, 4}, gcp_down={1, 2, 3, 4})],
            {"VpnTunnelDown": 4, "VpnPrefixUnreachable": 2},
            {},
            id="all-down",
        ),
        pytest.param(
            [HEALTHY, Phase(30, aws_down={1}, gcp_down={1}), Phase(30)],
            {},
            {(AWS, AWS_PREFIX): 1, (GCP, GCP_PREFIX): 1},
            id="recovery",
        ),
        pytest.param(
            [HEALTHY, Phase(30, gcp_down={3})],
            {"VpnTunnelAsymmetric": 1, "VpnPathFailover": 1},
            {(GCP, GCP_PREFIX): 1},
            id="asymmetric-pair",
        ),
        pytest.param(
            [HEALTHY, Phase(60, aws_live=False, gcp_live=False)],
            {"VpnWatchdogExporterStale": 2},
            {},
            id="api-outage-only-stale",
        ),
        pytest.param(
            [HEALTHY, Phase(30, gcp_bgp_down={2})],
            {"VpnBgpSessionDown": 1, "VpnPathFailover": 1},
            {(GCP, GCP_PREFIX): 1},
            id="bgp-down-tunnel-up",
        ),
    ],
)
def test_scenarios(phases: list[Phase], firing: dict[str, int], failovers: dict[tuple[str, str], int]) -> None:
    run = play(phases)
    assert dict(run.names()) == firing
    assert dict(run.failovers()) == failovers
    for alert in run.firing():
        assert alert.name in ALERT_NAMES
        assert labels(alert)["severity"] == SEVERITY[alert.name]


def test_one_tunnel_down_seen_from_both_clouds_is_one_alert_naming_both_ends() -> None:
    run = play([HEALTHY, Phase(30, aws_down={1}, gcp_down={1})])
    (down,) = run.fired("VpnTunnelDown")
    assert labels(down) == {
        "alertname": "VpnTunnelDown",
        "severity": "warning",
        "exporter": f"{AWS}+{GCP}",
        "aws_exporter": AWS,
        "aws_connection": "vpn-1",
        "aws_tunnel": "198.51.100.1",
        "gcp_exporter": GCP,
        "gcp_tunnel": "tun1",
        "tunnel": "tun1",
    }
    # What failed and what still carries traffic.
    assert "198.51.100.1" in down.description and "3 of 4 tunnels up" in down.description
    failover = next(a for a in run.firing() if a.name == "VpnPathFailover" and labels(a)["exporter"] == GCP)
    assert failover.description.startswith(f"{GCP_PREFIX} now on 3 of 4 paths: still carried by ha-gw/tun2")
    assert "lost: ha-gw/tun1" in failover.description
    assert labels(failover)["severity"] == "info"


def test_alert_waits_for_hold_and_keeps_starts_at() -> None:
    run = play([HEALTHY, Phase(9, aws_down={1}, gcp_down={1})])
    assert run.fired("VpnTunnelDown") == []  # held 9 s < for 10 s
    play([Phase(20, aws_down={1}, gcp_down={1})], run=run)
    (fired,) = run.fired("VpnTunnelDown")
    assert fired.starts_at == START + 5 + 10
    (still,) = [a for a in run.firing() if a.name == "VpnTunnelDown"]
    assert still.starts_at == fired.starts_at and still.labels == fired.labels


def test_flapping_tunnel_gives_one_alert_and_a_blip_none() -> None:
    bounce = [Phase(3, aws_down={2}, gcp_down={2}), Phase(3)] * 20  # 2 minutes of bouncing
    run = play([HEALTHY, *bounce, Phase(30)])
    assert len(run.fired("VpnTunnelDown")) == 1
    assert len(run.resolved("VpnTunnelDown")) == 1
    assert run.names() == Counter()
    blip = play([HEALTHY, Phase(3, aws_down={2}, gcp_down={2}), Phase(30)])
    assert blip.fired("VpnTunnelDown") == [] and blip.resolved("VpnTunnelDown") == []


def test_recovery_resolves_after_hold_with_ends_at() -> None:
    run = play([HEALTHY, Phase(30, aws_down={1}, gcp_down={1}), Phase(9)])
    assert run.resolved("VpnTunnelDown") == []  # damped both ways
    play([Phase(5)], run=run)
    (resolved,) = run.resolved("VpnTunnelDown")
    assert resolved.ends_at is not None and resolved.ends_at > resolved.starts_at
    assert any(e.kind == "path_restored" and e.prefix == GCP_PREFIX for e in run.events)


def test_api_outage_keeps_last_state_and_never_raises_vpn_alerts() -> None:
    run = play([HEALTHY, Phase(30, aws_down={1}, gcp_down={1})])
    assert run.names()["VpnTunnelDown"] == 1
    # Both APIs fail: the firing tunnel alert stays (last known), nothing new, nothing resolved.
    play([Phase(120, aws_live=False, gcp_live=False)], run=run)
    assert run.names() == Counter({"VpnTunnelDown": 1, "VpnPathFailover": 2, "VpnWatchdogExporterStale": 2})
    assert run.resolved("VpnTunnelDown") == []
    stale = run.fired("VpnWatchdogExporterStale")
    # Not delayed by `for`: fires at the first step the exporter is stale.
    assert {a.starts_at for a in stale} == {START + 35}
    play([Phase(3)], run=run)  # APIs back, tunnels healthy again: stale resolves at once
    assert len(run.resolved("VpnWatchdogExporterStale")) == 2


def test_exporter_that_never_polled_gives_only_stale() -> None:
    obs = Observation((ExporterView.build(AWS, "aws", None, {AWS_PREFIX: 2}, up=False, stale=True),))
    state, events = step(HealthState(), obs, START)
    assert [e.alert.name for e in events if e.alert] == ["VpnWatchdogExporterStale"]
    assert "no successful poll since the watchdog started" in state.firing()[0].description


def test_expected_prefix_missing_pages() -> None:
    views = (ExporterView.build(AWS, "aws", aws_snapshot(routes=False), {AWS_PREFIX: 2}),)
    state = HealthState()
    for t in range(12):
        state, _ = step(state, Observation(views), START + t)
    (alert,) = state.firing()
    assert alert.name == "VpnExpectedPrefixMissing" and labels(alert)["severity"] == "page"
    assert labels(alert)["prefix"] == AWS_PREFIX


@pytest.mark.parametrize(
    ("cloud", "snapshot", "withdrawn"),
    [
        ("aws", aws_snapshot, lambda: aws_snapshot(routes=False)),
        ("gcp", gcp_snapshot, lambda: gcp_snapshot(routes=False)),
        ("gcp", gcp_snapshot, lambda: gcp_snapshot(bgp_down={1, 2, 3, 4})),
    ],
    ids=["aws-withdrawn", "gcp-withdrawn", "gcp-sessions-down"],
)
def test_prefix_withdrawn_over_up_paths_is_missing_but_lost_paths_are_unreachable(
    cloud: str, snapshot: Callable[[], Snapshot], withdrawn: Callable[[], Snapshot]
) -> None:
    # The far side stops advertising it (e.g. a custom advertisement removed) while every tunnel and
    # session stays up: "not learned at all", not "no usable path" (that is for paths that died).
    name, prefix = (AWS, AWS_PREFIX) if cloud == "aws" else (GCP, GCP_PREFIX)
    state = HealthState()
    for t in range(3):
        state, _ = step(state, Observation((ExporterView.build(name, cloud, snapshot(), {prefix: 2}),)), START + t)
    for t in range(3, 15):
        state, _ = step(state, Observation((ExporterView.build(name, cloud, withdrawn(), {prefix: 2}),)), START + t)
    firing = {a.name for a in state.firing()}
    sessions_died = not all(s.up for s in withdrawn().bgp_sessions)
    if sessions_died:
        expected, other = "VpnPrefixUnreachable", "VpnExpectedPrefixMissing"
    else:
        expected, other = "VpnExpectedPrefixMissing", "VpnPrefixUnreachable"
    assert expected in firing and other not in firing, firing


def test_probe_failing_after_hold() -> None:
    bad = ProbeView("aws-db-dns", "dns", "db.aws.internal", False, "nxdomain", "no such name")
    run = play([HEALTHY, Phase(11, probes=(bad,))])
    (alert,) = run.firing()
    assert labels(alert) == {
        "alertname": "VpnProbeFailing",
        "severity": "warning",
        "probe": "aws-db-dns",
        "type": "dns",
        "target": "db.aws.internal",
    }
    assert "nxdomain" in alert.summary


def test_ike_and_gcp_fragmentation_fire_at_once_on_increase() -> None:
    ike0 = IkeSnapshot(fragmented={("eth0", "203.0.113.10", "CREATE_CHILD_SA", "ip"): 0})
    ike1 = IkeSnapshot(
        fragmented={("eth0", "203.0.113.10", "CREATE_CHILD_SA", "ip"): 2},
        unanswered_fragmented_requests={("eth0", "203.0.113.10"): 1},
    )
    gcp = gcp_snapshot()
    frag = Snapshot(
        GCP,
        "gcp",
        0,
        gcp.tunnels,
        gcp.bgp_sessions,
        gcp.routes,
        packet_counts=(PacketCount("tun1", "received", "fragment_received", 7),),
    )
    state, events = step(HealthState(), Observation(ike=ike0), START)
    assert events == []
    views = (ExporterView.build(GCP, "gcp", frag),)
    state, events = step(state, Observation(views, ike=ike1), START + 1)
    fired = sorted(labels(e.alert)["peer" if "peer" in labels(e.alert) else "tunnel"] for e in events if e.alert)
    assert fired == ["203.0.113.10", "tun1"]
    ike_alert = next(a for a in state.firing() if "peer" in labels(a))
    assert "CREATE_CHILD_SA ip x2" in ike_alert.description
    assert "1 fragmented rekey request(s) were never answered" in ike_alert.description
    # No further increase: resolves once the window passes.
    state, events = step(state, Observation(views, ike=ike1, fragment_window=60), START + 62)
    assert sorted(e.kind for e in events) == ["resolved", "resolved"]


def test_config_labels_are_added_but_ours_win() -> None:
    run = play([HEALTHY, Phase(30, aws_down={1}, gcp_down={1})])
    for alert in run.state.firing({"env": "prod", "severity": "bogus"}):
        assert labels(alert)["env"] == "prod" and labels(alert)["severity"] != "bogus"


def test_no_single_ended_tunnel_alert_while_the_other_cloud_has_not_polled_yet() -> None:
    hold = Observation().hold
    waiting = (
        ExporterView.build(AWS, "aws", aws_snapshot({1}), {AWS_PREFIX: 2}),
        ExporterView.build(GCP, "gcp", None, up=False, stale=False),
    )
    state, events = HealthState(), []
    for t in range(int(hold) + 2):
        state, new = step(state, Observation(waiting, pairs=join_tunnels([aws_snapshot({1})])), START + t)
        events += new
    assert [e for e in events if e.alert and e.alert.name == "VpnTunnelDown"] == []
    # Once GCP is stale (never polled in 3 intervals), AWS's view stands alone.
    stale = (waiting[0], ExporterView.build(GCP, "gcp", None, up=False, stale=True))
    for t in range(int(hold) + 2):
        state, new = step(state, Observation(stale), START + 100 + t)
        events += new
    assert [labels(e.alert)["tunnel"] for e in events if e.alert and e.alert.name == "VpnTunnelDown"] == [
        "198.51.100.1"
    ]


def _logged(events: tuple[tuple[str, str, int], ...]) -> ExporterView:
    gcp = gcp_snapshot()
    snapshot = Snapshot(GCP, "gcp", 0, gcp.tunnels, gcp.bgp_sessions, gcp.routes, logs=LogView(events=events))
    return ExporterView.build(GCP, "gcp", snapshot)


def test_logged_rekey_failures_and_repeated_retransmits_fire_vpn_rekey_failing() -> None:
    state, events = step(HealthState(), Observation((_logged(()),)), START)
    assert events == []
    # One retransmit is a lost packet; a failure is a failure.
    once = (("tun1", "retransmit", 1), ("tun2", "no_proposal_chosen", 1), ("tun3", "rekey", 5))
    state, events = step(state, Observation((_logged(once),)), START + 1)
    assert [labels(e.alert)["tunnel"] for e in events if e.alert] == ["tun2"]
    assert all(labels(e.alert)["alertname"] == "VpnRekeyFailing" for e in events if e.alert)
    # Two more retransmits of tun1 within the window: repeated.
    more = (("tun1", "retransmit", 3), ("tun2", "no_proposal_chosen", 1), ("tun3", "rekey", 5))
    state, events = step(state, Observation((_logged(more),)), START + 30)
    (alert,) = [e.alert for e in events if e.alert]
    assert labels(alert)["tunnel"] == "tun1" and "3 retransmit(s)" in alert.description
    # Nothing new for longer than the window: both resolve.
    state, events = step(state, Observation((_logged(more),), fragment_window=60), START + 100)
    assert sorted(labels(e.alert)["tunnel"] for e in events if e.kind == "resolved" and e.alert) == ["tun1", "tun2"]


def test_a_logged_fragment_drop_fires_vpn_ike_fragmentation() -> None:
    state, _ = step(HealthState(), Observation((_logged(()),)), START)
    state, events = step(state, Observation((_logged((("tun1", "fragment_dropped", 1),)),)), START + 1)
    names = sorted(labels(e.alert)["alertname"] for e in events if e.alert)
    assert names == ["VpnIkeFragmentation", "VpnRekeyFailing"]
    fragmentation = next(a for a in state.firing() if labels(a)["alertname"] == "VpnIkeFragmentation")
    assert labels(fragmentation)["tunnel"] == "tun1" and "dropped fragments" in fragmentation.description


def test_two_projects_same_named_tunnels_keep_their_log_and_fragment_alerts_apart() -> None:
    # One gcp exporter over two projects whose tunnels are both called tun1: each alert names its project.
    a, b = Scope("project", "net-a", "asia-northeast1"), Scope("project", "net-b", "asia-northeast1")

    def fanned(b_events: tuple[tuple[str, str, int], ...], b_fragments: float) -> ExporterView:
        parts = (
            Snapshot(GCP, "gcp", 0, scope=a, logs=LogView(events=(("tun1", "rekey", 3),))),
            Snapshot(
                GCP,
                "gcp",
                0,
                scope=b,
                logs=LogView(events=b_events),
                packet_counts=(PacketCount("tun1", "received", "fragment_received", b_fragments, b),),
            ),
        )
        merged = Snapshot(GCP, "gcp", 0, packet_counts=parts[1].packet_counts, parts=parts)
        return ExporterView.build(GCP, "gcp", merged)

    state, events = step(HealthState(), Observation((fanned((), 0),)), START)
    assert events == []
    failing = (("tun1", "no_proposal_chosen", 1), ("tun1", "fragment_dropped", 1))
    state, events = step(state, Observation((fanned(failing, 4),)), START + 1)

    fired = sorted((labels(e.alert)["alertname"], labels(e.alert)["project"]) for e in events if e.alert)
    assert fired == [("VpnIkeFragmentation", "net-b"), ("VpnRekeyFailing", "net-b")]  # the log and the counter: one
    rekey = next(a for a in state.firing() if labels(a)["alertname"] == "VpnRekeyFailing")
    assert labels(rekey)["region"] == "asia-northeast1" and "in project net-b/asia-northeast1" in rekey.summary
