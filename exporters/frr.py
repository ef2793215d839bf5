"""FRR exporter: BGP sessions and learned routes from `vtysh ... json` commands.

Runs the configured vtysh argv prefix (e.g. `[vtysh, --vty_socket, DIR]` or `[ip, netns, exec, NS,
vtysh]`) with `-c '<show command> json'`, each bounded by the poll timeout, and turns FRR's JSON into
`BgpSession` and `LearnedRoute` records. It must not change FRR's configuration (show commands only).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from typing import Any

from watchdog.config import FrrExporterConfig
from watchdog.errors import ExporterError
from watchdog.model import BgpSession, LearnedRoute, Snapshot

SUMMARY = "show bgp summary json"
NEIGHBORS = "show bgp neighbors json"
ROUTES = "show ip bgp json"


class FrrExporter:
    """BGP state of one FRR instance. `router` is the BGP router-id."""

    cloud = "frr"

    def __init__(self, config: FrrExporterConfig, *, timeout: float) -> None:
        self.name = config.name
        self.vtysh = tuple(config.vtysh)
        self.timeout = timeout

    def poll(self) -> Snapshot:
        deadline = time.monotonic() + self.timeout
        summary = self._show(SUMMARY, deadline)
        neighbors = self._show(NEIGHBORS, deadline)
        routes = self._show(ROUTES, deadline)
        try:
            sessions = sessions_from(summary, neighbors)
            learned = routes_from(routes, router=_router_id(summary, routes))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ExporterError("malformed", f"vtysh: unexpected JSON shape: {exc!r}") from exc
        return Snapshot(
            exporter=self.name,
            cloud=self.cloud,
            taken_at=time.time(),
            bgp_sessions=sessions,
            routes=learned,
            api_calls=3,
        )

    def close(self) -> None:
        return None

    def _show(self, command: str, deadline: float) -> dict[str, Any]:
        argv = [*self.vtysh, "-c", command]
        remaining = max(0.01, deadline - time.monotonic())
        try:
            result = subprocess.run(
                argv, capture_output=True, text=True, timeout=remaining, check=False, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired as exc:
            raise ExporterError("timeout", f"{argv[0]} -c {command!r}: no answer within {self.timeout:g} s") from exc
        except OSError as exc:  # missing binary, not executable
            raise ExporterError("network", f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
        if result.returncode != 0:
            message = (result.stderr.strip() or result.stdout.strip() or "no output")[-300:]
            # vtysh exits 1 with this when bgpd/zebra are not running (their sockets are gone).
            reason = "network" if "failed to connect" in message else "api_error"
            raise ExporterError(reason, f"{argv[0]} -c {command!r} exited {result.returncode}: {message}")
        try:
            data = json.loads(result.stdout)
        except json.JSONDecodeError as exc:
            raise ExporterError("malformed", f"{argv[0]} -c {command!r}: output is not JSON ({exc.msg})") from exc
        if not isinstance(data, dict):
            raise ExporterError("malformed", f"{argv[0]} -c {command!r}: expected a JSON object")
        return data


def _router_id(summary: dict[str, Any], routes: dict[str, Any]) -> str:
    unicast = summary.get("ipv4Unicast") or {}
    return str(unicast.get("routerId") or routes.get("routerId") or "")


def sessions_from(summary: dict[str, Any], neighbors: dict[str, Any]) -> tuple[BgpSession, ...]:
    """`show bgp summary json` peers, with the local address from `show bgp neighbors json`."""
    unicast = summary.get("ipv4Unicast") or {}
    router = str(unicast.get("routerId", ""))
    sessions = []
    for peer_ip, peer in sorted((unicast.get("peers") or {}).items()):
        state = str(peer.get("state", "Unknown"))
        up = state == "Established"
        detail = neighbors.get(peer_ip)
        if not isinstance(detail, dict):
            detail = {}
        uptime = peer.get("peerUptimeMsec")
        received = peer.get("pfxRcd")
        sessions.append(
            BgpSession(
                router=router,
                peer=peer_ip,
                local_ip=_address(detail.get("hostLocal")),
                peer_ip=peer_ip,
                up=up,
                state=state,
                uptime_seconds=float(uptime) / 1000.0 if up and uptime is not None else None,
                received_prefixes=int(received) if isinstance(received, int) else (0 if not up else None),
            )
        )
    return tuple(sessions)


def _address(value: Any) -> str:
    """FRR says "Unknown" for the local address of a session that is not up."""
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        return ""


def routes_from(routes: dict[str, Any], *, router: str) -> tuple[LearnedRoute, ...]:
    """Every valid path learned from a neighbor; locally originated networks are not "learned"."""
    learned = []
    for prefix, paths in sorted((routes.get("routes") or {}).items()):
        for path in paths:
            if not path.get("valid"):
                continue
            peer = str(path.get("peerId", ""))
            next_hops = [str(h.get("ip")) for h in path.get("nexthops") or [] if h.get("ip")]
            if not peer or peer == "(unspec)" or not next_hops or next_hops[0] == "0.0.0.0":
                continue
            learned.append(LearnedRoute(router=router, prefix=prefix, next_hop=next_hops[0], peer=peer))
    return tuple(learned)
