"""Two AWS accounts joined to two GCP projects built from one template (same tunnel names): pairs, alerts
and a target's outage are told apart by account/project. Pure: snapshots in, pairs and alerts out."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace

from exporters.fanout import FanoutExporter, Group
from tests.health_lab import AWS, GCP, GCP_PREFIX, aws_snapshot, gcp_snapshot
from watchdog.config import TargetBudget
from watchdog.errors import ExporterError
from watchdog.health import Alert, ExporterView, HealthState, Observation, step
from watchdog.join import join_tunnels
from watchdog.model import Scope, Snapshot, TargetStatus

A, B = Scope("account", "111111111111", "us-west-2"), Scope("account", "222222222222", "us-west-2")
HUB, STG = Scope("project", "net-hub-prod", "us-west1"), Scope("project", "net-hub-stg", "us-west1")
START = 1_800_000_000.0


def _shift(snapshot: Snapshot, by: int) -> Snapshot:
    """The same template with other addresses (the second account's and project's)."""

    def ip(value: str) -> str:
        head, _, last = value.rpartition(".")
        return f"{head}.{int(last) + by}" if head in ("198.51.100", "203.0.113") else value

    tunnels = tuple(
        replace(t, name=ip(t.name), local_ip=ip(t.local_ip), peer_ip=ip(t.peer_ip)) for t in snapshot.tunnels
    )
    sessions = tuple(replace(s, peer=ip(s.peer), tunnel=ip(s.tunnel or "") or None) for s in snapshot.bgp_sessions)
    return replace(snapshot, tunnels=tunnels, bgp_sessions=sessions)


class _Fixed:
    """A target answering a given snapshot (or error): the parts of a merged view, without a cloud."""

    def __init__(self, scope: Scope, answer: Snapshot | ExporterError) -> None:
        self.scope, self.group, self.calls, self.answer = scope, scope.id, 1, answer

    def poll(self) -> Snapshot:
        if isinstance(self.answer, ExporterError):
            raise self.answer
        return self.answer

    def close(self) -> None:
        pass


class _Source:
    def __init__(self, targets: Sequence[_Fixed]) -> None:
        self.list = list(targets)

    def targets(self) -> tuple[Sequence[_Fixed], None]:
        return self.list, None

    def close(self) -> None:
        pass


def merged(name: str, cloud: str, parts: dict[Scope, Snapshot]) -> tuple[FanoutExporter, _Source]:
    source = _Source([_Fixed(scope, snap) for scope, snap in parts.items()])
    return FanoutExporter(name, cloud, source, lambda _: Group.of(TargetBudget()), clock=lambda: START), source


def aws_parts(down: Collection[int] = ()) -> dict[Scope, Snapshot]:
    return {A: aws_snapshot(down), B: _shift(aws_snapshot(down), 10)}


def gcp_parts(down: Collection[int] = ()) -> dict[Scope, Snapshot]:
    return {HUB: gcp_snapshot(down), STG: _shift(gcp_snapshot(down), 10)}


def test_each_account_joins_its_project_and_the_pairs_say_which() -> None:
    aws, _ = merged(AWS, "aws", aws_parts())
    gcp, _ = merged(GCP, "gcp", gcp_parts())
    pairs = join_tunnels([aws.poll(), gcp.poll()])
    assert len(pairs) == 8
    ends = {(p.aws_scope, p.gcp_scope, p.gcp_tunnel) for p in pairs}
    assert ends == {(A, HUB, f"tun{n}") for n in range(1, 5)} | {(B, STG, f"tun{n}") for n in range(1, 5)}
    labels = dict(next(p for p in pairs if p.gcp_scope == STG and p.gcp_tunnel == "tun3").labels())
    assert labels == {
        "aws_exporter": AWS,
        "aws_connection": "vpn-2",
        "aws_tunnel": "198.51.100.13",
        "aws_account": "222222222222",
        "aws_region": "us-west-2",
        "gcp_exporter": GCP,
        "gcp_tunnel": "tun3",
        "gcp_project": "net-hub-stg",
        "gcp_region": "us-west1",
    }


def observe(aws: Snapshot, gcp: Snapshot, gcp_targets: Sequence[TargetStatus] = (), now: float = START) -> Observation:
    down = frozenset(t.scope.key for t in gcp_targets if not t.up)
    stale = tuple(t for t in gcp_targets if not t.up and now - (t.last_success or START) > 90)
    views = (
        ExporterView.build(AWS, "aws", aws, {}),
        replace(ExporterView.build(GCP, "gcp", gcp, {GCP_PREFIX: 2}), down_targets=down, stale_targets=stale),
    )
    return Observation(views, (), join_tunnels([aws, gcp]), hold=0.0)


def firing(state: HealthState, name: str) -> list[dict[str, str]]:
    alerts: list[Alert] = state.firing()
    return [dict(a.labels) for a in alerts if a.name == name]


def test_same_tunnel_name_in_two_projects_is_two_alerts_and_one_projects_outage_freezes_only_it() -> None:
    aws, _ = merged(AWS, "aws", aws_parts(down={3}))
    gcp, gcp_source = merged(GCP, "gcp", gcp_parts(down={3}))
    aws_snap, gcp_snap = aws.poll(), gcp.poll()
    state, _ = step(HealthState(), observe(aws_snap, gcp_snap), START)
    down = firing(state, "VpnTunnelDown")
    assert sorted((a["gcp_project"], a["gcp_tunnel"], a["aws_account"]) for a in down) == [
        ("net-hub-prod", "tun3", "111111111111"),
        ("net-hub-stg", "tun3", "222222222222"),
    ]
    # The staging project's API starts failing while both tunnels recover: its alert stays as last
    # seen (frozen, not resolved by a stale view), the prod project's resolves.
    gcp_source.list[0].answer = gcp_snapshot()
    gcp_source.list[1].answer = ExporterError("auth", "denied")
    aws_up, _ = merged(AWS, "aws", aws_parts())
    aws_snap, gcp_snap = aws_up.poll(), gcp.poll()
    assert [(t.scope.id, t.up) for t in gcp_snap.targets] == [("net-hub-prod", True), ("net-hub-stg", False)]
    later = START + 30
    state, events = step(state, observe(aws_snap, gcp_snap, gcp_snap.targets, later), later)
    resolved = [dict(e.alert.labels)["gcp_project"] for e in events if e.kind == "resolved" and e.alert]
    assert resolved == ["net-hub-prod"]
    assert [a["gcp_project"] for a in firing(state, "VpnTunnelDown")] == ["net-hub-stg"]
    assert firing(state, "VpnWatchdogExporterStale") == []
    # Three intervals later that project alone is stale; the exporter as a whole is not.
    much_later = START + 200
    state, _ = step(state, observe(aws_snap, gcp_snap, gcp_snap.targets, much_later), much_later)
    (stale,) = firing(state, "VpnWatchdogExporterStale")
    assert (stale["exporter"], stale["project"], stale["region"]) == (GCP, "net-hub-stg", "us-west1")
