"""Read one AWS region's VPN/TGW setup into the audit's `AwsAccount`, and change tunnel options.

Holds its own `AwsClient` (session, profile, endpoint, retry budget, deadline hook, botocore log
redaction, error translation to `ExporterError`, pre-shared keys and the customer gateway
configuration XML stripped from every response). Reads:
DescribeVpnConnections, DescribeCustomerGateways, DescribeTransitGatewayAttachments,
DescribeTransitGatewayRouteTables (unless configured), per route table SearchTransitGatewayRoutes,
GetTransitGatewayRouteTableAssociations and ...Propagations, and DescribeRouteTables for the DNS
resolvers' VPC route tables when the config names them (`dns_resolver_route_tables`).
boto3 types never leave this module; it must not keep, log or return a pre-shared key.
"""

from __future__ import annotations

from typing import Any

from exporters.aws_client import AwsClient, search_routes
from watchdog.audit.ciphers import RESPONSE_KEYS
from watchdog.audit.inventory import (
    OPTION_KEYS,
    AwsAccount,
    AwsConnection,
    AwsTunnel,
    TgwRoute,
    TgwRouteTable,
    TunnelOptions,
    VpcRouteTable,
)
from watchdog.config import AwsExporterConfig
from watchdog.errors import ExporterError

_GONE = frozenset({"deleted", "deleting"})


class AwsInventoryReader:
    """One `type: aws` exporter entry, read for the audit; also the `--fix-ipsec --apply` editor."""

    def __init__(self, config: AwsExporterConfig, *, timeout: float, session: Any = None, account: Any = None) -> None:
        self.name = config.name
        self.config = config
        self.client = AwsClient(
            config.name,
            config.region,
            profile=config.profile,
            endpoint_url=config.endpoint_url,
            timeout=timeout,
            credentials_file=config.credentials_file,
            session=session,
        )
        self._account = account  # exporters.aws_accounts.Account: assumes its role before a read

    def close(self) -> None:
        self.client.close()
        if self._account is not None:
            self._account.close()

    def read(self) -> AwsAccount:
        if self._account is not None:
            self._account.ensure()
        with self.client.budget():
            try:
                return self._read()
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ExporterError(
                    "malformed", f"unexpected response shape ({self.client.where}): {type(exc).__name__}"
                ) from None

    def _read(self) -> AwsAccount:
        cfg = self.config
        params: dict[str, Any] = {"VpnConnectionIds": list(cfg.vpn_connections)} if cfg.vpn_connections else {}
        described = self.client.call("DescribeVpnConnections", self.client.ec2.describe_vpn_connections, **params)
        raw = sorted(
            (c for c in described.get("VpnConnections") or [] if c.get("State") not in _GONE),
            key=lambda c: str(c["VpnConnectionId"]),
        )
        cgw_ids = sorted({str(c["CustomerGatewayId"]) for c in raw if c.get("CustomerGatewayId")})
        cgw_ips: dict[str, str] = {}
        if cgw_ids:
            gateways = self.client.call(
                "DescribeCustomerGateways", self.client.ec2.describe_customer_gateways, CustomerGatewayIds=cgw_ids
            )
            cgw_ips = {str(g["CustomerGatewayId"]): str(g.get("IpAddress") or "") for g in gateways["CustomerGateways"]}
        tgws = sorted({str(c["TransitGatewayId"]) for c in raw if c.get("TransitGatewayId")})
        attachments = self._attachments(tgws, {str(c["VpnConnectionId"]) for c in raw})
        connections = tuple(
            AwsConnection(
                id=str(c["VpnConnectionId"]),
                customer_gateway_id=str(c.get("CustomerGatewayId") or ""),
                customer_gateway_ip=cgw_ips.get(str(c.get("CustomerGatewayId")), ""),
                transit_gateway_id=str(c["TransitGatewayId"]) if c.get("TransitGatewayId") else None,
                attachment_id=attachments.get(str(c["VpnConnectionId"])),
                tunnels=_tunnels(c),
                state=str(c.get("State") or ""),
            )
            for c in raw
        )
        tables = tuple(self._route_table(t, tgw) for t, tgw in self._tables(tgws))
        return AwsAccount(
            name=self.name,
            region=cfg.region,
            connections=connections,
            route_tables=tables,
            intended_route_tables=tuple(cfg.transit_gateway_route_tables),
            resolver_route_tables=self._resolver_tables(),
        )

    def _resolver_tables(self) -> tuple[VpcRouteTable, ...]:
        # Read only where the config names them (a key the config model may not have yet).
        ids = list(getattr(self.config, "dns_resolver_route_tables", None) or ())
        if not ids:
            return ()
        found = self.client.pages(
            "DescribeRouteTables", self.client.ec2.describe_route_tables, "RouteTables", RouteTableIds=ids
        )
        tables = []
        for table in found:
            routes = tuple(
                (str(r.get("DestinationCidrBlock") or ""), str(_target(r)))
                for r in table.get("Routes") or []
                if r.get("DestinationCidrBlock") and r.get("State", "active") == "active"
            )
            tables.append(VpcRouteTable(str(table["RouteTableId"]), routes))
        return tuple(sorted(tables, key=lambda t: t.id))

    def _attachments(self, tgws: list[str], vpn_ids: set[str]) -> dict[str, str]:
        if not tgws:
            return {}
        found = self.client.pages(
            "DescribeTransitGatewayAttachments",
            self.client.ec2.describe_transit_gateway_attachments,
            "TransitGatewayAttachments",
            Filters=[{"Name": "resource-type", "Values": ["vpn"]}, {"Name": "transit-gateway-id", "Values": tgws}],
        )
        return {
            str(a["ResourceId"]): str(a["TransitGatewayAttachmentId"])
            for a in found
            if a.get("ResourceId") in vpn_ids and a.get("State") not in _GONE
        }

    def _tables(self, tgws: list[str]) -> list[tuple[str, str]]:
        if not tgws:
            return []
        found = self.client.pages(
            "DescribeTransitGatewayRouteTables",
            self.client.ec2.describe_transit_gateway_route_tables,
            "TransitGatewayRouteTables",
            Filters=[{"Name": "transit-gateway-id", "Values": tgws}],
        )
        tables = {
            str(t["TransitGatewayRouteTableId"]): str(t.get("TransitGatewayId") or "")
            for t in found
            if t.get("State") not in _GONE
        }
        wanted = self.config.transit_gateway_route_tables
        # Configured tables are read even when the TGW lists them elsewhere (a typo shows as a finding).
        ids = sorted(set(wanted) | set(tables)) if wanted else sorted(tables)
        return [(i, tables.get(i, "")) for i in ids]

    def _route_table(self, table: str, tgw: str) -> TgwRouteTable:
        routes = search_routes(
            self.client, table, Filters=[{"Name": "type", "Values": ["propagated", "static"]}], MaxResults=1000
        )
        associations = self.client.pages(
            "GetTransitGatewayRouteTableAssociations",
            self.client.ec2.get_transit_gateway_route_table_associations,
            "Associations",
            TransitGatewayRouteTableId=table,
        )
        propagations = self.client.pages(
            "GetTransitGatewayRouteTablePropagations",
            self.client.ec2.get_transit_gateway_route_table_propagations,
            "TransitGatewayRouteTablePropagations",
            TransitGatewayRouteTableId=table,
        )
        return TgwRouteTable(
            id=table,
            transit_gateway_id=tgw,
            routes=tuple(
                TgwRoute(
                    prefix=str(r.get("DestinationCidrBlock") or r.get("PrefixListId") or ""),
                    type=str(r.get("Type") or ""),
                    state=str(r.get("State") or ""),
                    attachment_ids=tuple(
                        str(a["TransitGatewayAttachmentId"])
                        for a in r.get("TransitGatewayAttachments") or []
                        if a.get("TransitGatewayAttachmentId")
                    ),
                )
                for r in routes
            ),
            associations=tuple(
                str(a["TransitGatewayAttachmentId"]) for a in associations if a.get("State") == "associated"
            ),
            propagations=tuple(
                str(p["TransitGatewayAttachmentId"]) for p in propagations if p.get("State") == "enabled"
            ),
        )

    # -- TunnelEditor (for --fix-ipsec --apply) -------------------------------------------------

    def modify_tunnel(self, connection_id: str, outside_ip: str, options: dict[str, Any]) -> None:
        with self.client.budget():
            self.client.call(
                "ModifyVpnTunnelOptions",
                self.client.ec2.modify_vpn_tunnel_options,
                VpnConnectionId=connection_id,
                VpnTunnelOutsideIpAddress=outside_ip,
                TunnelOptions=options,
            )

    def tunnel_status(self, connection_id: str, outside_ip: str) -> str:
        with self.client.budget():
            described = self.client.call(
                "DescribeVpnConnections", self.client.ec2.describe_vpn_connections, VpnConnectionIds=[connection_id]
            )
        for conn in described.get("VpnConnections") or []:
            for entry in conn.get("VgwTelemetry") or []:
                if entry.get("OutsideIpAddress") == outside_ip:
                    return str(entry.get("Status") or "UNKNOWN")
        return "UNKNOWN"


def _target(route: dict[str, Any]) -> str:
    for key in ("TransitGatewayId", "GatewayId", "NatGatewayId", "NetworkInterfaceId", "VpcPeeringConnectionId"):
        if route.get(key):
            return str(route[key])
    return ""


def _inside_cidr(option: dict[str, Any]) -> str | None:
    """The tunnel's inside range: IPv4 (`TunnelInsideCidr`) or, on an IPv6 VPN, `TunnelInsideIpv6Cidr`."""
    inside = option.get("TunnelInsideCidr") or option.get("TunnelInsideIpv6Cidr")
    return str(inside) if inside else None


def _values(option: dict[str, Any], key: str) -> tuple[Any, ...]:
    return tuple(item["Value"] for item in option.get(RESPONSE_KEYS[key]) or [] if "Value" in item)


def _tunnels(conn: dict[str, Any]) -> tuple[AwsTunnel, ...]:
    """TunnelOptions in API order (tunnel1, tunnel2) joined with VgwTelemetry on the outside IP."""
    telemetry = {str(t.get("OutsideIpAddress")): t for t in conn.get("VgwTelemetry") or []}
    tunnels = []
    for option in (conn.get("Options") or {}).get("TunnelOptions") or []:
        ip = str(option.get("OutsideIpAddress") or "")
        if not ip:
            continue
        tele = telemetry.get(ip, {})
        accepted = tele.get("AcceptedRouteCount")
        values = {key: _values(option, key) for key in OPTION_KEYS}
        values["phase1_dh"] = tuple(int(v) for v in values["phase1_dh"])
        values["phase2_dh"] = tuple(int(v) for v in values["phase2_dh"])
        tunnels.append(
            AwsTunnel(
                outside_ip=ip,
                inside_cidr=_inside_cidr(option),
                status=str(tele.get("Status") or "UNKNOWN"),
                accepted_routes=int(accepted) if accepted is not None else None,
                options=TunnelOptions(**values),
            )
        )
    return tuple(tunnels)
