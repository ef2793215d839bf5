"""The AWS exporter: Site-to-Site VPN tunnels, their BGP sessions and TGW-learned prefixes via boto3.

One `poll()` reads, in this order: DescribeVpnConnections, DescribeCustomerGateways (one call for
all), DescribeTransitGatewayAttachments (vpn -> attachment ids), DescribeTransitGatewayRouteTables
(only when no route tables are configured), SearchTransitGatewayRoutes per route table and, with
`tunnel_logs`, FilterLogEvents on the tunnels' log group (`aws_logs`). The
number of calls grows with connections' gateways and route tables (and pages), never with tunnels
or routes.

The calls go through `exporters.aws_client.AwsClient` (budget, retries, pagination, error
translation, redaction of pre-shared keys and the customer gateway configuration XML). What it
must not do: keep, log, return or put in an error message a secret; let a boto3 type or exception
leave this package; run past its timeout.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterable
from typing import Any

from exporters.aws_client import AwsClient, search_routes
from exporters.aws_logs import AwsTunnelLogReader
from watchdog.config import AwsExporterConfig
from watchdog.errors import ExporterError
from watchdog.model import BgpSession, LearnedRoute, Snapshot, Tunnel

log = logging.getLogger(__name__)

_GONE_STATES = frozenset({"deleted", "deleting"})
_UNUSABLE_ROUTE_STATES = frozenset({"blackhole", "deleted", "deleting"})
_ROUTE_PAGE = 1000


def _inside_hosts(cidr: str | None) -> tuple[str, str]:
    """(AWS, customer) inside addresses: the first and second host of the /30 (or /126)."""
    if not cidr:
        return "", ""
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return "", ""
    if net.num_addresses < 4:
        return "", ""
    return str(net.network_address + 1), str(net.network_address + 2)


def _ip_key(value: str) -> tuple[int, int, str]:
    try:
        addr = ipaddress.ip_address(value)
        return addr.version, int(addr), value
    except ValueError:
        return 99, 0, value


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    timestamp = getattr(value, "timestamp", None)
    if callable(timestamp):
        return float(timestamp())
    if isinstance(value, (int, float)):
        return float(value)
    return None


class AwsExporter:
    """Polls one region's VPN connections (and their TGW routes) into a `Snapshot`."""

    cloud = "aws"

    def __init__(self, config: AwsExporterConfig, *, timeout: float, session: Any = None) -> None:
        self.name = config.name
        self._config = config
        self._timeout = float(timeout)
        self.client = AwsClient(
            config.name,
            config.region,
            profile=config.profile,
            endpoint_url=config.endpoint_url,
            timeout=self._timeout,
            credentials_file=config.credentials_file,
            session=session,
        )
        self.logs = AwsTunnelLogReader(self.client, config.tunnel_logs.log_group) if config.tunnel_logs else None

    # -- the poll ---------------------------------------------------------------------------

    def poll(self) -> Snapshot:
        with self.client.budget():
            try:
                return self._poll()
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ExporterError(
                    "malformed", f"unexpected response shape ({self.client.where}): {type(exc).__name__}"
                ) from exc

    def _poll(self) -> Snapshot:
        params: dict[str, Any] = {}
        if self._config.vpn_connections:
            params["VpnConnectionIds"] = list(self._config.vpn_connections)
        if self._config.tags:
            params["Filters"] = [{"Name": f"tag:{k}", "Values": [v]} for k, v in self._config.tags]
        described = self.client.call("DescribeVpnConnections", self.client.ec2.describe_vpn_connections, **params)
        connections = [c for c in described.get("VpnConnections") or [] if c.get("State") not in _GONE_STATES]
        connections.sort(key=lambda c: str(c["VpnConnectionId"]))
        peer_ips = self._customer_gateway_ips(connections)

        tunnels: list[Tunnel] = []
        sessions: list[BgpSession] = []
        for conn in connections:
            conn_tunnels = self._tunnels(conn, peer_ips.get(str(conn.get("CustomerGatewayId")), ""))
            tunnels.extend(conn_tunnels)
            options = conn.get("Options") or {}
            if not options.get("StaticRoutesOnly", False):
                router = str(conn.get("TransitGatewayId") or conn.get("VpnGatewayId") or "")
                sessions.extend(self._bgp_session(router, t) for t in conn_tunnels)

        routes = self._learned_routes(connections)
        logs = self.logs.read(tunnels, sessions) if self.logs is not None else None
        log.debug(
            "%s: %d connections, %d tunnels, %d routes in %d API calls",
            self.name,
            len(connections),
            len(tunnels),
            len(routes),
            self.client.calls,
        )
        return Snapshot(
            exporter=self.name,
            cloud=self.cloud,
            taken_at=time.time(),
            tunnels=tuple(tunnels),
            bgp_sessions=tuple(sessions),
            routes=tuple(routes),
            api_calls=self.client.calls,
            logs=logs,
        )

    def _customer_gateway_ips(self, connections: list[dict[str, Any]]) -> dict[str, str]:
        ids = sorted({str(c["CustomerGatewayId"]) for c in connections if c.get("CustomerGatewayId")})
        if not ids:
            return {}
        response = self.client.call(
            "DescribeCustomerGateways", self.client.ec2.describe_customer_gateways, CustomerGatewayIds=ids
        )
        return {
            str(g["CustomerGatewayId"]): str(g.get("IpAddress") or "") for g in response.get("CustomerGateways") or []
        }

    def _tunnels(self, conn: dict[str, Any], peer_ip: str) -> list[Tunnel]:
        """Telemetry joined with tunnel options on the outside IP (AWS does not promise an order)."""
        vpn_id = str(conn["VpnConnectionId"])
        telemetry = {str(t["OutsideIpAddress"]): t for t in conn.get("VgwTelemetry") or []}
        options = {
            str(o["OutsideIpAddress"]): o
            for o in (conn.get("Options") or {}).get("TunnelOptions") or []
            if o.get("OutsideIpAddress")
        }
        result: list[Tunnel] = []
        for ip in sorted(set(telemetry) | set(options), key=_ip_key):
            tele = telemetry.get(ip, {})
            opts = options.get(ip, {})
            status = str(tele.get("Status") or "UNKNOWN")
            inside = opts.get("TunnelInsideCidr") or opts.get("TunnelInsideIpv6Cidr")
            accepted = tele.get("AcceptedRouteCount")
            result.append(
                Tunnel(
                    connection=vpn_id,
                    name=ip,
                    local_ip=ip,
                    peer_ip=peer_ip,
                    up=status == "UP",
                    status=status,
                    detail=str(tele.get("StatusMessage") or ""),
                    status_change=_epoch(tele.get("LastStatusChange")),
                    inside_cidr=str(inside) if inside else None,
                    accepted_routes=int(accepted) if accepted is not None else None,
                )
            )
        return result

    @staticmethod
    def _bgp_session(router: str, tunnel: Tunnel) -> BgpSession:
        local_ip, peer_ip = _inside_hosts(tunnel.inside_cidr)
        return BgpSession(
            router=router,
            peer=tunnel.name,
            local_ip=local_ip,
            peer_ip=peer_ip,
            up=tunnel.up,
            # AWS exposes no BGP state machine; VgwTelemetry Status is UP only once BGP is
            # established on a dynamic-routing tunnel, so that is the best available proxy.
            state="Established" if tunnel.up else "Down",
            received_prefixes=tunnel.accepted_routes,
            tunnel=tunnel.name,
        )

    # -- learned prefixes -------------------------------------------------------------------

    def _learned_routes(self, connections: list[dict[str, Any]]) -> list[LearnedRoute]:
        ours = {str(c["VpnConnectionId"]) for c in connections if c.get("TransitGatewayId")}
        if not ours:
            return []
        gateways = sorted({str(c["TransitGatewayId"]) for c in connections if c.get("TransitGatewayId")})
        attachments = {
            str(a["TransitGatewayAttachmentId"]): str(a["ResourceId"])
            for a in self.client.pages(
                "DescribeTransitGatewayAttachments",
                self.client.ec2.describe_transit_gateway_attachments,
                "TransitGatewayAttachments",
                Filters=[
                    {"Name": "resource-type", "Values": ["vpn"]},
                    {"Name": "transit-gateway-id", "Values": gateways},
                    {"Name": "resource-id", "Values": sorted(ours)},
                ],
            )
            if a.get("ResourceId") in ours and a.get("State") not in _GONE_STATES
        }
        routes: list[LearnedRoute] = []
        for table in self._route_tables(gateways):
            routes.extend(self._propagated_routes(table, ours, attachments))
        return sorted(routes, key=lambda r: (r.router, r.prefix, r.next_hop))

    def _route_tables(self, gateways: list[str]) -> list[str]:
        if self._config.transit_gateway_route_tables:
            return list(self._config.transit_gateway_route_tables)
        tables = self.client.pages(
            "DescribeTransitGatewayRouteTables",
            self.client.ec2.describe_transit_gateway_route_tables,
            "TransitGatewayRouteTables",
            Filters=[{"Name": "transit-gateway-id", "Values": gateways}],
        )
        return sorted(str(t["TransitGatewayRouteTableId"]) for t in tables if t.get("State") not in _GONE_STATES)

    def _propagated_routes(self, table: str, ours: set[str], attachments: dict[str, str]) -> Iterable[LearnedRoute]:
        found = search_routes(
            self.client,
            table,
            Filters=[
                {"Name": "type", "Values": ["propagated"]},
                {"Name": "attachment.resource-type", "Values": ["vpn"]},
            ],
            MaxResults=_ROUTE_PAGE,
        )
        for route in found:
            prefix = route.get("DestinationCidrBlock")
            if route.get("Type") != "propagated" or route.get("State") in _UNUSABLE_ROUTE_STATES or not prefix:
                continue
            for att in route.get("TransitGatewayAttachments") or []:
                att_id = str(att.get("TransitGatewayAttachmentId") or "")
                vpn_id = str(att.get("ResourceId") or attachments.get(att_id, ""))
                if att.get("ResourceType", "vpn") != "vpn" or vpn_id not in ours:
                    continue
                yield LearnedRoute(router=table, prefix=str(prefix), next_hop=att_id, connection=vpn_id)

    def close(self) -> None:
        self.client.close()
