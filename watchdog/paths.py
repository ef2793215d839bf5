"""Usable paths to a prefix, computed from one exporter's snapshot. Pure: no I/O, no clock.

DESIGN.md: an expected prefix is matched by a learned route equal to it or containing it. Its usable
paths are: GCP, one per best route whose BGP session and tunnel are up; AWS, one per UP tunnel of each
VPN connection whose attachment carries such a propagated route; strongswan/frr, one per Established
BGP neighbor whose route it is.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from watchdog.model import BgpSession, LearnedRoute, Scope, Snapshot, Tunnel


def path_qualifier(snapshot: Snapshot, scope: Scope | None) -> str:
    """What a path id starts with: `111111111111/us-west-2:` in a snapshot of several targets (their
    tunnel and peer names may repeat: two projects built from one template), else nothing."""
    return f"{scope.key}:" if scope is not None and len(snapshot.parts) > 1 else ""


def _parse(prefix: str) -> tuple[int, int, int] | None:
    """'10.1.0.0/16' -> (bits, network as int, prefix length); None when unparseable. Fast path for
    the 50,000-route case (ipaddress objects cost ~10x more)."""
    address, _, length = prefix.partition("/")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    bits = 128 if family == socket.AF_INET6 else 32
    try:
        value = int.from_bytes(socket.inet_pton(family, address), "big")
        plen = int(length) if length else bits
    except (OSError, ValueError):
        return None
    if not 0 <= plen <= bits:
        return None
    return bits, value >> (bits - plen) << (bits - plen) if plen else 0, plen


def covers(route_prefix: str, wanted: str) -> bool:
    """True when the learned route equals or contains the wanted prefix."""
    route, target = _parse(route_prefix), _parse(wanted)
    if route is None or target is None or route[0] != target[0] or route[2] > target[2]:
        return False
    bits, _, plen = route
    shift = bits - plen
    return route[1] >> shift == target[1] >> shift if plen else True


@dataclass(frozen=True)
class PathIndex:
    """Lookups over one snapshot, built once per snapshot and reused for every prefix."""

    snapshot: Snapshot
    _tunnels: dict[str, Tunnel] = field(init=False, repr=False, compare=False)
    _sessions: dict[str, BgpSession] = field(init=False, repr=False, compare=False)
    _up_by_connection: dict[str, set[str]] = field(init=False, repr=False, compare=False)
    _by_length: dict[tuple[int, int], dict[int, list[LearnedRoute]]] = field(init=False, repr=False, compare=False)
    _parts: tuple[tuple[str, PathIndex], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = self.snapshot.parts
        # Several targets: one index each, their path ids qualified by the target.
        indexes = tuple((path_qualifier(self.snapshot, p.scope), PathIndex(p)) for p in parts) if len(parts) > 1 else ()
        object.__setattr__(self, "_parts", indexes)
        if indexes:
            for name in ("_tunnels", "_sessions", "_up_by_connection", "_by_length"):
                object.__setattr__(self, name, {})
            return
        tunnels = {t.name: t for t in self.snapshot.tunnels}
        sessions = {s.peer: s for s in self.snapshot.bgp_sessions}
        up_by_connection: dict[str, set[str]] = {}
        for tunnel in self.snapshot.tunnels:
            if tunnel.up:
                up_by_connection.setdefault(tunnel.connection, set()).add(f"{tunnel.connection}/{tunnel.name}")
        # (bits, prefix length) -> network -> routes: a lookup per possible covering length instead of
        # a scan of every route for every expected prefix.
        by_length: dict[tuple[int, int], dict[int, list[LearnedRoute]]] = {}
        for route in self.snapshot.routes:
            parsed = _parse(route.prefix)
            if parsed is not None:
                bits, network, plen = parsed
                by_length.setdefault((bits, plen), {}).setdefault(network, []).append(route)
        object.__setattr__(self, "_tunnels", tunnels)
        object.__setattr__(self, "_sessions", sessions)
        object.__setattr__(self, "_up_by_connection", up_by_connection)
        object.__setattr__(self, "_by_length", by_length)

    def covering_routes(self, prefix: str) -> list[LearnedRoute]:
        """Learned routes equal to or containing `prefix`."""
        if self._parts:
            return [r for _, index in self._parts for r in index.covering_routes(prefix)]
        target = _parse(prefix)
        if target is None:
            return []
        bits, network, target_len = target
        found: list[LearnedRoute] = []
        for (route_bits, plen), networks in self._by_length.items():
            if route_bits == bits and plen <= target_len:
                shift = bits - plen
                found.extend(networks.get(network >> shift << shift if plen else 0, ()))
        return found

    def route_paths(self, route: LearnedRoute) -> set[str]:
        """The usable path ids this one route offers (empty when its session or tunnel is down)."""
        tunnels = self._tunnels
        sessions = self._sessions
        if route.connection is not None and route.tunnel is None and route.peer is None:
            return set(self._up_by_connection.get(route.connection, ()))
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
        if self._parts:
            return frozenset(q + path for q, index in self._parts for path in index.paths_to(prefix))
        paths: set[str] = set()
        for route in self.covering_routes(prefix):
            paths |= self.route_paths(route)
        return frozenset(paths)


def expected_paths(snapshot: Snapshot, prefixes: Iterable[str]) -> dict[str, frozenset[str]]:
    """Usable paths for each expected prefix (an empty set means unreachable)."""
    index = PathIndex(snapshot)
    return {prefix: index.paths_to(prefix) for prefix in prefixes}
