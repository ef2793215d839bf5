"""GCP exporter: HA VPN tunnels, gateway redundancy, Cloud Router BGP and routes, tunnel packet counts.

One poll reads, for one project and region: vpnTunnels.list, vpnGateways.list (interface IPs),
vpnGateways.getStatus per HA gateway, routers.list (unless `routers` names them) and
routers.getRouterStatus per router (Compute REST; the routes are its bestRoutesForRouter), plus four
Cloud Monitoring ListTimeSeries calls (gRPC), and with `logs: true` Cloud Logging entries:list
(`gcp_logs`). API calls grow with gateways and routers, never with tunnels or routes. Compute and
Monitoring types never leave this package; every failure leaves as an `ExporterError`.
It must not log or return secrets (tunnel shared secrets, credentials).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from exporters.gcp_client import GcpClient, list_all, load_credentials, monitoring_client, page_args
from exporters.gcp_errors import PollBudget, scrub, translate
from exporters.gcp_logs import GcpLogReader
from exporters.gcp_monitoring import PacketCounter
from watchdog.config import GcpExporterConfig
from watchdog.errors import ExporterError
from watchdog.model import BgpSession, HaGateway, LearnedRoute, PacketCount, Snapshot, Tunnel

# Re-exported: the audit's reader and tests import these from here.
__all__ = ["GcpExporter", "last_segment", "list_all", "load_credentials", "monitoring_client", "page_args"]

REDUNDANCY_MET = "CONNECTION_REDUNDANCY_MET"
# One router's routes by next hop, then prefix (keyed by the records' own strings: no new key objects).
KnownRoutes = dict[str, dict[str, LearnedRoute]]
MAX_CONCURRENT_CALLS = 32  # per poll; well under Compute's per-project read quota
# getRouterStatus asks for a partial response (the API's standard `fields` parameter) of what
# `_session` and `_routes` read: the whole answer also carries the VPC-wide bestRoutes (in a hub VPC
# every router's routes, once per router polled) and each peer's advertisedRoutes.
PEER_FIELDS = (
    "name",
    "ipAddress",
    "peerIpAddress",
    "status",
    "state",
    "uptimeSeconds",
    "numLearnedRoutes",
    "linkedVpnTunnel",
)
ROUTE_FIELDS = ("destRange", "routeType", "nextHopIp", "nextHopVpnTunnel")
ROUTER_STATUS_FIELDS = f"result(bgpPeerStatus({','.join(PEER_FIELDS)}),bestRoutesForRouter({','.join(ROUTE_FIELDS)}))"


def last_segment(url: str | None) -> str | None:
    """`https://.../regions/r/vpnTunnels/t1` -> `t1`; empty -> None."""
    if not url:
        return None
    return url.rstrip("/").rsplit("/", 1)[-1] or None


class GcpExporter:
    """Polls one project/region; build it once, call `poll()` from one worker thread at a time.

    SDK clients and credentials are set up on the first poll (discovery may do I/O), so a
    credential problem is that poll's `auth` error, retried at the next poll. `clock` is the wall
    clock for `taken_at` and the Monitoring query windows.
    """

    cloud = "gcp"

    def __init__(self, config: GcpExporterConfig, *, timeout: float, clock: Callable[[], float] = time.time) -> None:
        self.name = config.name
        self.config = config
        self.timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self.client = GcpClient(config)
        self._packets = PacketCounter(config.project, config.region, clock=clock) if config.monitoring else None
        self.logs = GcpLogReader(self.client, clock=clock) if config.logs else None
        self.pace: Callable[[float], None] | None = None  # a project's shared rate limit (exporters.fanout)
        self.last_budget: PollBudget | None = None  # the last poll's, failed or not (its API calls)
        # Each router's routes of the last poll: an unchanged route is the same (immutable) record
        # again, not a new one; at 50,000 routes creating them was most of a poll's CPU.
        self._known_routes: dict[str, KnownRoutes] = {}

    def poll(self) -> Snapshot:
        budget = self.last_budget = PollBudget(self.timeout, pace=self.pace)
        with self._lock:
            try:
                return self._poll(self.client, budget)
            except ExporterError:
                raise
            except Exception as exc:  # noqa: BLE001 - anything left is an unexpected response shape
                raise _as_malformed(exc, self._where()) from exc

    def _fan_out(self, call: Callable[[Any], Any], names: list[Any]) -> list[Any]:
        """Per-router / per-gateway calls run concurrently: a region with 250 routers must poll in
        seconds, not 250 round trips. Results keep the order of `names`; the first error wins."""
        if len(names) <= 1:
            return [call(name) for name in names]
        workers = min(MAX_CONCURRENT_CALLS, len(names))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"gcp-{self.name}") as pool:
            return list(pool.map(call, names))

    def close(self) -> None:
        with self._lock:
            self.client.close()

    def _where(self) -> str:
        return f"project {self.config.project} region {self.config.region}"

    def _poll(self, client: GcpClient, budget: PollBudget) -> Snapshot:
        cfg = self.config
        where = f"region {cfg.region}"
        rest = client.compute_rest()
        regional = f"projects/{cfg.project}/regions/{cfg.region}"

        gateways = rest.list_all(budget, f"vpnGateways.list {where}", f"{regional}/vpnGateways")
        tunnels_raw = rest.list_all(budget, f"vpnTunnels.list {where}", f"{regional}/vpnTunnels")
        interface_ips: dict[tuple[str, int], str] = {}
        for gateway in gateways:
            for interface in _objects(gateway, "vpnInterfaces"):
                interface_ips[(_text(gateway, "name"), _number(interface, "id") or 0)] = _text(interface, "ipAddress")
        tunnels = tuple(sorted((_tunnel(t, interface_ips) for t in tunnels_raw), key=lambda t: (t.connection, t.name)))

        def gateway_status(name: str) -> Any:
            return budget.call(
                f"vpnGateways.getStatus {name} {where}",
                lambda left: rest.get(f"{regional}/vpnGateways/{name}/getStatus", timeout=left),
            )

        def router_status(name: str) -> Any:
            return budget.call(
                f"routers.getRouterStatus {name} {where}",
                lambda left: rest.get(
                    f"{regional}/routers/{name}/getRouterStatus", {"fields": ROUTER_STATUS_FIELDS}, timeout=left
                ),
            )

        router_ids: dict[str, str] = {}
        if cfg.routers:
            router_names = list(cfg.routers)
        else:
            routers = rest.list_all(budget, f"routers.list {where}", f"{regional}/routers")
            # A router without BGP peers (NAT only) has no sessions to report: don't spend a call on it.
            router_names = sorted(_text(r, "name") for r in routers if r.get("bgpPeers") or r.get("interfaces"))
            router_ids = {str(r["id"]): _text(r, "name") for r in routers if "id" in r}
        known: dict[str, KnownRoutes] = {}

        def router_records(name: str) -> tuple[list[BgpSession], list[LearnedRoute]]:
            # Convert in the worker so the large response is freed at once (50k routes).
            result = _object(router_status(name), "result")
            router_sessions = [_session(name, peer) for peer in _objects(result, "bgpPeerStatus")]
            # bestRoutesForRouter: what this router learned. bestRoutes is the whole VPC's programmed
            # routes in the region (other routers' too), so two routers in one VPC would share them.
            learned = _objects(result, "bestRoutesForRouter")
            router_routes, known[name] = _routes(name, learned, router_sessions, self._known_routes.get(name, {}))
            return router_sessions, router_routes

        # Every gateway's and router's status in one fan-out: no wait for the slowest gateway call
        # before the first router call.
        gateway_names = sorted(_text(g, "name") for g in gateways)
        statuses = self._fan_out(
            lambda call: gateway_status(call[1]) if call[0] == "gateway" else router_records(call[1]),
            [("gateway", name) for name in gateway_names] + [("router", name) for name in router_names],
        )
        ha_gateways = tuple(
            _ha_gateway(name, status)
            for name, status in zip(gateway_names, statuses[: len(gateway_names)], strict=True)
        )
        sessions: list[BgpSession] = []
        routes: list[LearnedRoute] = []
        for router_sessions, router_routes in statuses[len(gateway_names) :]:
            sessions.extend(router_sessions)
            routes.extend(router_routes)
        self._known_routes = known

        packet_counts: tuple[PacketCount, ...] = ()
        if self._packets is not None:
            packet_counts = self._packets.poll(client.monitoring(), budget, (t.name for t in tunnels))

        logs = None
        if self.logs is not None:
            logs = self.logs.read(
                budget,
                tunnels,
                sessions,
                gateway_ids={str(g["id"]): _text(g, "name") for g in gateways if "id" in g},
                tunnel_ids={str(t["id"]): _text(t, "name") for t in tunnels_raw if "id" in t},
                router_ids=router_ids,
            )

        return Snapshot(
            exporter=self.name,
            cloud=self.cloud,
            taken_at=self._clock(),
            tunnels=tunnels,
            bgp_sessions=tuple(sorted(sessions, key=lambda s: (s.router, s.peer))),
            routes=tuple(sorted(routes, key=lambda r: (r.router, r.prefix, r.next_hop))),
            gateways=ha_gateways,
            packet_counts=packet_counts,
            api_calls=budget.calls,
            logs=logs,
        )


def _tunnel(raw: Any, interface_ips: dict[tuple[str, int], str]) -> Tunnel:
    gateway = last_segment(_text(raw, "vpnGateway")) or last_segment(_text(raw, "targetVpnGateway")) or ""
    interface = _number(raw, "vpnGatewayInterface")
    status = _text(raw, "status")
    return Tunnel(
        connection=gateway,
        name=_text(raw, "name"),
        local_ip=interface_ips.get((gateway, interface), "") if interface is not None else "",
        peer_ip=_text(raw, "peerIp"),
        up=status == "ESTABLISHED",
        status=status,
        detail=_text(raw, "detailedStatus"),
        router=last_segment(_text(raw, "router")),
        gateway_interface=interface,
        peer_interface=_number(raw, "peerExternalGatewayInterface"),
    )


def _ha_gateway(name: str, response: Any) -> HaGateway:
    connections = _objects(_object(response, "result"), "vpnConnections")
    if not connections:
        # No peer connection at all cannot meet the HA SLA either.
        return HaGateway(name=name, redundancy_met=False, reason="NO_VPN_CONNECTIONS")
    states = [_object(c, "state") for c in connections]
    met = all(_text(s, "state") == REDUNDANCY_MET for s in states)
    reasons = sorted({_text(s, "unsatisfiedReason") for s in states} - {""})
    return HaGateway(name=name, redundancy_met=met, reason="" if met else ",".join(reasons))


def _session(router: str, peer: Any) -> BgpSession:
    uptime = _text(peer, "uptimeSeconds").strip()
    status = _text(peer, "status")
    return BgpSession(
        router=router,
        peer=_text(peer, "name"),
        local_ip=_text(peer, "ipAddress"),
        peer_ip=_text(peer, "peerIpAddress"),
        up=status == "UP",
        state=_text(peer, "state"),
        uptime_seconds=float(uptime) if uptime else None,
        received_prefixes=_number(peer, "numLearnedRoutes"),
        tunnel=last_segment(_text(peer, "linkedVpnTunnel")),
    )


def _routes(
    router: str, best_routes: list[dict[str, Any]], sessions: list[BgpSession], previous: KnownRoutes
) -> tuple[list[LearnedRoute], KnownRoutes]:
    """The BGP routes of `best_routes` (the router status's `bestRoutesForRouter`, see `_poll`), and
    them as `KnownRoutes` for the next poll; a route equal to one in `previous` is that record."""
    by_peer_ip = {s.peer_ip: s for s in sessions if s.peer_ip}
    routes = []
    known: KnownRoutes = {}
    tunnels: dict[str, str | None] = {}
    # The inner loop of 50,000 routes a region: plain dict reads, one type check per value used.
    for route in best_routes:
        if route.get("routeType") != "BGP":
            continue
        prefix, next_hop, url = (
            route.get("destRange", ""),
            route.get("nextHopIp", ""),
            route.get("nextHopVpnTunnel", ""),
        )
        if type(prefix) is not str or type(next_hop) is not str or type(url) is not str:
            raise TypeError(
                f"route {prefix!r} via {next_hop!r}: destRange, nextHopIp, nextHopVpnTunnel must be strings"
            )
        session = by_peer_ip.get(next_hop)
        if url not in tunnels:
            tunnels[url] = last_segment(url)
        peer = session.peer if session else None
        # nextHopVpnTunnel names the path; the session's linked tunnel is the same one when absent.
        tunnel = tunnels[url] or (session.tunnel if session else None)
        route_record = previous.get(next_hop, {}).get(prefix)
        if route_record is None or route_record.peer != peer or route_record.tunnel != tunnel:
            # A known session's peer address is one string for all its routes, not one per route.
            hop = session.peer_ip if session else next_hop
            route_record = LearnedRoute(router=router, prefix=prefix, next_hop=hop, peer=peer, tunnel=tunnel)
        bucket = known.get(route_record.next_hop)
        if bucket is None:
            bucket = known[route_record.next_hop] = {}
        bucket[route_record.prefix] = route_record
        routes.append(route_record)
    return routes, known


# Typed reads of the REST JSON: a value of the wrong type is a malformed response (`_as_malformed`),
# never a wrong value in a metric. An absent field reads as the client's default ("", [], {}, None).
def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key, "")
    if type(value) is not str:
        raise TypeError(f"{key} is {type(value).__name__}, not a string")
    return value


def _number(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if value is None or type(value) is int:
        return value
    if type(value) is str and value.isdigit():  # proto3 JSON allows integers as strings too
        return int(value)
    raise TypeError(f"{key} is {value!r}, not an integer")


def _object(obj: Any, key: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise TypeError(f"{type(obj).__name__} where an object with {key} was expected")
    value = obj.get(key, {})
    if not isinstance(value, dict):
        raise TypeError(f"{key} is {type(value).__name__}, not an object")
    return value


def _objects(obj: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = obj.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise TypeError(f"{key} is not a list of objects")
    return value


def _as_malformed(exc: Exception, where: str) -> ExporterError:
    if isinstance(exc, ValueError | TypeError | KeyError | AttributeError):
        return ExporterError(
            "malformed", f"GCP poll of {where}: unexpected response: {type(exc).__name__}: {scrub(str(exc))}"
        )
    return translate(exc, f"GCP poll of {where}")
