"""Usable paths to a prefix, computed from one exporter's snapshot. Pure: no I/O, no clock.

DESIGN.md: an expected prefix is matched by a learned route equal to it or containing it. Its usable
paths are: GCP, one per best route whose BGP session and tunnel are up; AWS, one per UP tunnel of each
VPN connection whose attachment carries such a propagated route; strongswan/frr, one per Established
BGP neighbor whose route it is.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from watchdog.model import LearnedRoute, Snapshot

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=65536)
def _network(prefix: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        return None


def covers(route_prefix: str, wanted: str) -> bool:
    """True when the learned route equals or contains the wanted prefix."""
    route, target = _network(route_prefix), _network(wanted)
    if route is None or target is None or route.version != target.version:
        return False
    return target.subnet_of(route)  # type: ignore[arg-type]


@dataclass(frozen=True)
class PathIndex:
    """Lookups over one snapshot, built once per snapshot and reused for every prefix."""

    snapshot: Snapshot

    def __post_init__(self) -> None:
        tunnels = {t.name: t for t in self.snapshot.tunnels}
        sessions = {s.peer: s for s in self.snapshot.bgp_sessions}
        up_by_connection: dict[str, set[str]] = {}
        for tunnel in self.snapshot.tunnels:
            if tunnel.up:
                up_by_connection.setdefault(tunnel.connection, set()).add(f"{tunnel.connection}/{tunnel.name}")
        object.__setattr__(self, "_tunnels", tunnels)
        object.__setattr__(self, "_sessions", sessions)
        object.__setattr__(self, "_up_by_connection", up_by_connection)

    def route_paths(self, route: LearnedRoute) -> set[str]:
        """The usable path ids this one route offers (empty when its session or tunnel is down)."""
        tunnels = self._tunnels  # type: ignore[attr-defined]
        sessions = self._sessions  # type: ignore[attr-defined]
        if route.connection is not None and route.tunnel is None and route.peer is None:
            return set(self._up_by_connection.get(route.connection, ()))  # type: ignore[attr-defined]
        tunnel_name = route.tunnel
        if route.peer is not None:
            session = sessions.get(route.peer)
            if session is None or not session.up:
                return set()
            tunnel_name = tunnel_name or session.tunnel
        if tunnel_name is not None and tunnel_name in tunnels:
            tunnel = tunnels[tunnel_name]
            if not tunnel.up:
                return set()
            return {f"{tunnel.connection}/{tunnel.name}"}
        return {route.peer or route.next_hop}

    def paths_to(self, prefix: str) -> frozenset[str]:
        paths: set[str] = set()
        for route in self.snapshot.routes:
            if covers(route.prefix, prefix):
                paths |= self.route_paths(route)
        return frozenset(paths)


def expected_paths(snapshot: Snapshot, prefixes: Iterable[str]) -> dict[str, frozenset[str]]:
    """Usable paths for each expected prefix (an empty set means unreachable)."""
    index = PathIndex(snapshot)
    return {prefix: index.paths_to(prefix) for prefix in prefixes}
