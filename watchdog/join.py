"""Join both ends of each AWS <-> GCP tunnel: the same IPsec tunnel seen from each cloud. Pure.

A GCP tunnel's `peer_ip` is the AWS outside IP of its tunnel (the AWS Tunnel's `name`/`local_ip`),
and the AWS tunnel's `peer_ip` (its customer gateway) is the GCP HA VPN interface IP the GCP tunnel
uses (its `local_ip`). The first must match; the second must match wherever both sides know it
(it is what pins the GCP external-gateway interface to that AWS tunnel). An AWS outside IP claimed by
two GCP tunnels, or seen by two AWS exporters, is ambiguous and left unpaired rather than guessed.
This module must not do I/O or read the clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from watchdog.model import Scope, Snapshot, Tunnel

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, order=True)
class TunnelPair:
    """One tunnel seen from both clouds; the scopes say which AWS account / GCP project and regions
    (an AWS account's tunnels join a GCP project's, whatever the entries they come from)."""

    aws_exporter: str
    aws_connection: str
    aws_tunnel: str
    gcp_exporter: str
    gcp_tunnel: str
    gcp_connection: str = ""
    aws_scope: Scope | None = field(default=None, compare=False)
    gcp_scope: Scope | None = field(default=None, compare=False)

    def info_labels(self) -> tuple[str, str, str, str, str]:
        """The five identifying label values of `vpn_watchdog_tunnel_pair_info`."""
        return (self.aws_exporter, self.aws_connection, self.aws_tunnel, self.gcp_exporter, self.gcp_tunnel)

    def scope_labels(self) -> Labels:
        """`aws_account`, `aws_region`, `gcp_project`, `gcp_region`, where known."""
        out: list[tuple[str, str]] = []
        for side, scope in (("aws", self.aws_scope), ("gcp", self.gcp_scope)):
            if scope is not None:
                out += [(f"{side}_{name}", value) for name, value in scope.labels()]
        return tuple(out)

    def labels(self) -> Labels:
        """Every label of its `vpn_watchdog_tunnel_pair_info` series (`WatchdogState.tunnel_pairs`)."""
        names = ("aws_exporter", "aws_connection", "aws_tunnel", "gcp_exporter", "gcp_tunnel")
        return tuple(sorted((*zip(names, self.info_labels(), strict=True), *self.scope_labels())))


def join_tunnels(snapshots: Iterable[Snapshot]) -> tuple[TunnelPair, ...]:
    """Every unambiguous AWS/GCP tunnel pair among the snapshots, sorted."""
    aws: dict[str, list[tuple[str, Tunnel]]] = {}
    gcp: list[tuple[str, Tunnel]] = []
    for snapshot in snapshots:
        for tunnel in snapshot.tunnels:
            if snapshot.cloud == "aws":
                aws.setdefault(tunnel.local_ip or tunnel.name, []).append((snapshot.exporter, tunnel))
            elif snapshot.cloud == "gcp" and tunnel.peer_ip:
                gcp.append((snapshot.exporter, tunnel))

    matches: dict[tuple[str, str], list[tuple[str, Tunnel]]] = {}
    for gcp_exporter, gcp_tunnel in gcp:
        candidates = [
            (aws_exporter, aws_tunnel)
            for aws_exporter, aws_tunnel in aws.get(gcp_tunnel.peer_ip, ())
            if _interfaces_agree(aws_tunnel, gcp_tunnel)
        ]
        if len(candidates) != 1:
            continue
        aws_exporter, aws_tunnel = candidates[0]
        matches.setdefault((aws_exporter, aws_tunnel.name), []).append((gcp_exporter, gcp_tunnel))

    pairs: list[TunnelPair] = []
    for (aws_exporter, aws_name), ends in matches.items():
        if len(ends) != 1:  # two GCP tunnels claim one AWS outside IP: a config error, not a pair
            continue
        gcp_exporter, gcp_tunnel = ends[0]
        aws_tunnel = next(t for e, t in aws[gcp_tunnel.peer_ip] if e == aws_exporter and t.name == aws_name)
        aws_scope, gcp_scope = aws_tunnel.scope, gcp_tunnel.scope
        pairs.append(
            TunnelPair(
                aws_exporter=aws_exporter,
                aws_connection=aws_tunnel.connection,
                aws_tunnel=aws_tunnel.name,
                gcp_exporter=gcp_exporter,
                gcp_tunnel=gcp_tunnel.name,
                gcp_connection=gcp_tunnel.connection,
                aws_scope=aws_scope,
                gcp_scope=gcp_scope,
            )
        )
    return tuple(sorted(pairs))


def _interfaces_agree(aws_tunnel: Tunnel, gcp_tunnel: Tunnel) -> bool:
    """The AWS customer gateway IP is the GCP interface IP, where both are known."""
    if not aws_tunnel.peer_ip or not gcp_tunnel.local_ip:
        return True
    return aws_tunnel.peer_ip == gcp_tunnel.local_ip
