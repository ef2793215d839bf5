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
MAX_CONCURRENT_CALLS = 32  # per poll; well under Compute's per-project read quota


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

    def poll(self) -> Snapshot:
        budget = self.last_budget = PollBudget(self.timeout, pace=self.pace)
        with self._lock:
            try:
                return self._poll(self.client, budget)
            except ExporterError:
                raise
            except Exception as exc:  # noqa: BLE001 - anything left is an unexpected response shape
                raise _as_malformed(exc, self._where()) from exc

    def _fan_out(self, call: Callable[[str], Any], names: list[str]) -> list[Any]:
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
        from google.cloud import compute_v1

        cfg = self.config
        where = f"region {cfg.region}"

        gateways = list_all(
            budget,
            f"vpnGateways.list {where}",
            lambda token, left: client.compute("gateways").list(
                request=compute_v1.ListVpnGatewaysRequest(project=cfg.project, region=cfg.region, **page_args(token)),
                timeout=left,
                retry=None,
            ),
        )
        tunnels_raw = list_all(
            budget,
            f"vpnTunnels.list {where}",
            lambda token, left: client.compute("tunnels").list(
                request=compute_v1.ListVpnTunnelsRequest(project=cfg.project, region=cfg.region, **page_args(token)),
                timeout=left,
                retry=None,
            ),
        )
        interface_ips: dict[tuple[str, int], str] = {}
        for gateway in gateways:
            for interface in gateway.vpn_interfaces:
                interface_ips[(gateway.name, interface.id)] = interface.ip_address
        tunnels = tuple(sorted((_tunnel(t, interface_ips) for t in tunnels_raw), key=lambda t: (t.connection, t.name)))

        def gateway_status(name: str) -> Any:
            return budget.call(
                f"vpnGateways.getStatus {name} {where}",
                lambda left: client.compute("gateways").get_status(
                    project=cfg.project, region=cfg.region, vpn_gateway=name, timeout=left, retry=None
                ),
            )

        def router_status(name: str) -> Any:
            return budget.call(
                f"routers.getRouterStatus {name} {where}",
                lambda left: client.compute("routers").get_router_status(
                    project=cfg.project, region=cfg.region, router=name, timeout=left, retry=None
                ),
            )

        gateway_names = sorted(g.name for g in gateways)
        ha_gateways = tuple(
            _ha_gateway(name, status)
            for name, status in zip(gateway_names, self._fan_out(gateway_status, gateway_names), strict=True)
        )

        router_ids: dict[str, str] = {}
        if cfg.routers:
            router_names = list(cfg.routers)
        else:
            routers = list_all(
                budget,
                f"routers.list {where}",
                lambda token, left: client.compute("routers").list(
                    request=compute_v1.ListRoutersRequest(project=cfg.project, region=cfg.region, **page_args(token)),
                    timeout=left,
                    retry=None,
                ),
            )
            # A router without BGP peers (NAT only) has no sessions to report: don't spend a call on it.
            router_names = sorted(r.name for r in routers if r.bgp_peers or r.interfaces)
            router_ids = {str(r.id): r.name for r in routers if "id" in r}
        sessions: list[BgpSession] = []
        routes: list[LearnedRoute] = []

        def router_records(name: str) -> tuple[list[BgpSession], list[LearnedRoute]]:
            # Convert in the worker so the large protobuf response is freed at once (50k routes).
            result = router_status(name).result
            router_sessions = [_session(name, peer) for peer in result.bgp_peer_status]
            # bestRoutesForRouter: what this router learned. bestRoutes is the whole VPC's programmed
            # routes in the region (other routers' too), so two routers in one VPC would share them.
            learned = type(result).pb(result).best_routes_for_router
            return router_sessions, _routes(name, learned, router_sessions)

        for router_sessions, router_routes in self._fan_out(router_records, router_names):
            sessions.extend(router_sessions)
            routes.extend(router_routes)

        packet_counts: tuple[PacketCount, ...] = ()
        if self._packets is not None:
            packet_counts = self._packets.poll(client.monitoring(), budget, (t.name for t in tunnels))

        logs = None
        if self.logs is not None:
            logs = self.logs.read(
                budget,
                tunnels,
                sessions,
                gateway_ids={str(g.id): g.name for g in gateways if "id" in g},
                tunnel_ids={str(t.id): t.name for t in tunnels_raw if "id" in t},
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
    gateway = last_segment(raw.vpn_gateway) or last_segment(raw.target_vpn_gateway) or ""
    interface = raw.vpn_gateway_interface if "vpn_gateway_interface" in raw else None
    return Tunnel(
        connection=gateway,
        name=raw.name,
        local_ip=interface_ips.get((gateway, interface), "") if interface is not None else "",
        peer_ip=raw.peer_ip,
        up=raw.status == "ESTABLISHED",
        status=raw.status,
        detail=raw.detailed_status,
        router=last_segment(raw.router),
        gateway_interface=interface,
        peer_interface=raw.peer_external_gateway_interface if "peer_external_gateway_interface" in raw else None,
    )


def _ha_gateway(name: str, response: Any) -> HaGateway:
    connections = list(response.result.vpn_connections)
    if not connections:
        # No peer connection at all cannot meet the HA SLA either.
        return HaGateway(name=name, redundancy_met=False, reason="NO_VPN_CONNECTIONS")
    met = all(c.state.state == REDUNDANCY_MET for c in connections)
    reasons = sorted({c.state.unsatisfied_reason for c in connections if c.state.unsatisfied_reason})
    return HaGateway(name=name, redundancy_met=met, reason="" if met else ",".join(reasons))


def _session(router: str, peer: Any) -> BgpSession:
    uptime = peer.uptime_seconds.strip() if "uptime_seconds" in peer else ""
    return BgpSession(
        router=router,
        peer=peer.name,
        local_ip=peer.ip_address,
        peer_ip=peer.peer_ip_address,
        up=peer.status == "UP",
        state=peer.state,
        uptime_seconds=float(uptime) if uptime else None,
        received_prefixes=peer.num_learned_routes if "num_learned_routes" in peer else None,
        tunnel=last_segment(peer.linked_vpn_tunnel),
    )


def _routes(router: str, best_routes: Any, sessions: list[BgpSession]) -> list[LearnedRoute]:
    """`best_routes` is the raw protobuf repeated field `bestRoutesForRouter` (see the comment below)."""
    by_peer_ip = {s.peer_ip: s for s in sessions if s.peer_ip}
    routes = []
    tunnels: dict[str, str | None] = {}
    # Read the raw protobuf messages: proto-plus attribute access costs ~40x more, which matters
    # at 50,000 routes per region.
    for route in best_routes:
        if route.route_type != "BGP":
            continue
        session = by_peer_ip.get(route.next_hop_ip)
        url = route.next_hop_vpn_tunnel
        if url not in tunnels:
            tunnels[url] = last_segment(url)
        routes.append(
            LearnedRoute(
                router=router,
                prefix=route.dest_range,
                next_hop=route.next_hop_ip,
                peer=session.peer if session else None,
                # nextHopVpnTunnel names the path; the session's linked tunnel is the same one when absent.
                tunnel=tunnels[url] or (session.tunnel if session else None),
            )
        )
    return routes


def _as_malformed(exc: Exception, where: str) -> ExporterError:
    if isinstance(exc, ValueError | TypeError | KeyError | AttributeError):
        return ExporterError(
            "malformed", f"GCP poll of {where}: unexpected response: {type(exc).__name__}: {scrub(str(exc))}"
        )
    return translate(exc, f"GCP poll of {where}")
