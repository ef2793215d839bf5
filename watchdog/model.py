"""The exporters' own types: what one poll of one source observed.

Cloud SDK objects never leave the adapter modules; each exporter turns them into these frozen
records, and everything downstream (metrics, path counting, alerts, `probe --once`) reads only these.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    """Where a cloud object lives: its AWS account (`kind` "account") or GCP project ("project"), and
    its region. Label values of every series taken from it; `id` is "" when it cannot be known."""

    kind: str
    id: str
    region: str

    @property
    def key(self) -> str:
        """Unique within one exporter: `111111111111/us-west-2`, `net-hub-prod/asia-northeast1`."""
        return f"{self.id}/{self.region}"

    def labels(self) -> tuple[tuple[str, str], ...]:
        """`(("account", id), ("region", region))`; an unknown id is left out (an empty label is none)."""
        return ((self.kind, self.id), ("region", self.region)) if self.id else (("region", self.region),)


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """One (account|project, region) target of a fanned-out exporter: its health since it started."""

    scope: Scope
    up: bool
    last_success: float | None = None
    api_calls: int = 0  # cumulative
    errors: tuple[tuple[str, int], ...] = ()  # reason -> cumulative count
    last_error: str = ""
    polled: bool = True  # False: left out of this poll (waiting out the API's Retry-After)


@dataclass(frozen=True, slots=True)
class Tunnel:
    """One IPsec tunnel as one side sees it.

    Label conventions (DESIGN.md): AWS `connection` is the VPN connection id and `name` the AWS
    outside IP; GCP `connection` is the HA VPN gateway name and `name` the tunnel name.
    """

    connection: str
    name: str
    local_ip: str
    peer_ip: str
    up: bool
    status: str
    detail: str = ""
    status_change: float | None = None
    inside_cidr: str | None = None
    router: str | None = None
    gateway_interface: int | None = None
    peer_interface: int | None = None
    accepted_routes: int | None = None
    scope: Scope | None = None


@dataclass(frozen=True, slots=True)
class BgpSession:
    """One BGP session (Cloud Router peer, TGW tunnel session, FRR neighbor)."""

    router: str
    peer: str
    local_ip: str
    peer_ip: str
    up: bool
    state: str
    uptime_seconds: float | None = None
    received_prefixes: int | None = None
    tunnel: str | None = None
    scope: Scope | None = None


@dataclass(frozen=True, slots=True)
class LearnedRoute:
    """One route learned over the VPN.

    The path it offers is usable when its `peer` session (if named) is up and its `tunnel`
    (if named) is up; an AWS route names only its VPN `connection`, whose UP tunnels are its paths.
    """

    router: str
    prefix: str
    next_hop: str
    peer: str | None = None
    tunnel: str | None = None
    connection: str | None = None
    scope: Scope | None = None


@dataclass(frozen=True, slots=True)
class HaGateway:
    """GCP HA VPN gateway redundancy state (vpnGateways.getStatus)."""

    name: str
    redundancy_met: bool
    reason: str = ""
    scope: Scope | None = None


@dataclass(frozen=True, slots=True)
class PacketCount:
    """Cumulative packet count of one tunnel, direction and delivery status (Cloud Monitoring)."""

    tunnel: str
    direction: str
    status: str
    count: float
    scope: Scope | None = None


# The `event` vocabulary of tunnel_log_events_total, and the events that mean a rekey or a
# negotiation failed (VpnRekeyFailing; `retransmit` counts only when repeated).
TUNNEL_LOG_EVENTS = (
    "rekey",
    "rekey_collision",
    "dpd_timeout",
    "no_proposal_chosen",
    "auth_failed",
    "negotiation_timeout",
    "negotiation_failed",
    "retransmit",
    "fragment_dropped",
    "other",
)
REKEY_FAILURE_EVENTS = frozenset(
    {"no_proposal_chosen", "auth_failed", "negotiation_timeout", "negotiation_failed", "fragment_dropped"}
)


@dataclass(frozen=True, slots=True)
class IkeState:
    """The IKE phase states the latest log entry of a tunnel reports (AWS tunnel activity logs)."""

    connection: str
    tunnel: str
    phase1: str
    phase2: str
    at: float


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One classified entry of a managed endpoint's log, joined to its tunnel or BGP session."""

    at: float
    event: str
    message: str
    connection: str = ""
    tunnel: str = ""
    router: str = ""
    peer: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class LogView:
    """What an exporter's log reader has read since it started (cumulative counts, latest states).

    `lag_seconds` is None when this poll's read failed or no entry was ever read; `error` is that
    read's `(reason, message)`: counted as an exporter error while the poll itself succeeds.
    """

    lag_seconds: float | None = None
    entries: tuple[tuple[str, int], ...] = ()  # outcome -> count
    events: tuple[tuple[str, str, int], ...] = ()  # (tunnel, event) -> count
    bgp_downs: tuple[tuple[str, str, str, int], ...] = ()  # (router, peer, reason) -> count
    ike_states: tuple[IkeState, ...] = ()
    recent: tuple[LogEvent, ...] = ()
    error: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one successful poll of one exporter observed."""

    exporter: str
    cloud: str
    taken_at: float
    tunnels: tuple[Tunnel, ...] = ()
    bgp_sessions: tuple[BgpSession, ...] = ()
    routes: tuple[LearnedRoute, ...] = ()
    gateways: tuple[HaGateway, ...] = ()
    packet_counts: tuple[PacketCount, ...] = ()
    api_calls: int = 0
    logs: LogView | None = None
    # A fanned-out exporter (several accounts/projects or regions): each target's own snapshot (their
    # objects, stamped with their scope, are the tuples above) and its health.
    scope: Scope | None = None
    parts: tuple[Snapshot, ...] = ()
    targets: tuple[TargetStatus, ...] = ()

    def scoped_parts(self) -> tuple[Snapshot, ...]:
        """The per-target snapshots, or this one alone."""
        return self.parts or (self,)


class ProbeIdentity(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def target(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The outcome of one probe run. `reason` is empty on success."""

    probe: str
    type: str
    target: str
    success: bool
    duration_seconds: float
    reason: str = ""
    detail: str = ""
    latencies: tuple[float, ...] = field(default=())
    sent: int = 0
    received: int = 0
    path_mtu_bytes: int = 0  # pmtu probes: the largest DF packet that crossed (0: none did)
    expect_min_mtu_bytes: int = 0  # pmtu probes: the configured floor (0: none)

    @classmethod
    def of(
        cls,
        probe: ProbeIdentity,
        started: float,
        success: bool,
        reason: str = "",
        detail: str = "",
        *,
        latencies: tuple[float, ...] = (),
        sent: int = 0,
        received: int = 0,
        path_mtu_bytes: int = 0,
        expect_min_mtu_bytes: int = 0,
    ) -> ProbeResult:
        """The result of a run of `probe` that began at `started` (time.monotonic()), ending now."""
        duration = time.monotonic() - started
        return cls(
            probe.name,
            probe.type,
            probe.target,
            success,
            duration,
            reason,
            detail,
            latencies,
            sent,
            received,
            path_mtu_bytes,
            expect_min_mtu_bytes,
        )

    @classmethod
    def failed(cls, probe: ProbeIdentity, started: float, reason: str, detail: str) -> ProbeResult:
        """A failed run of `probe` that began at `started` (time.monotonic())."""
        return cls.of(probe, started, False, reason, detail)


@dataclass(frozen=True, slots=True)
class IkeSnapshot:
    """Cumulative IKE observations of the live sniffer(s), rendered as `ike_*` metrics.

    Keys are label tuples: messages/largest `(interface, peer, exchange)`, fragmented
    `(interface, peer, exchange, kind)` with kind `ip` or `ikev2`, rekeys `(interface, peer, sa)`.
    `unanswered_fragmented_requests` counts fragmented CREATE_CHILD_SA requests that never got a
    response (the rekey failure Cloud VPN shows).
    """

    messages: dict[tuple[str, str, str], int] = field(default_factory=dict)
    fragmented: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    rekeys: dict[tuple[str, str, str], int] = field(default_factory=dict)
    largest: dict[tuple[str, str, str], int] = field(default_factory=dict)
    sniffer_up: dict[str, bool] = field(default_factory=dict)
    kernel_drops: dict[str, int] = field(default_factory=dict)
    malformed: dict[str, int] = field(default_factory=dict)
    unanswered_fragmented_requests: dict[tuple[str, str], int] = field(default_factory=dict)
