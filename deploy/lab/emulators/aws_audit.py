"""The AWS fake for `watchdog audit`: `MotoAws` seeded from an audit `AwsAccount`, and tunnels that
go DOWN when modified and come back UP after a number of DescribeVpnConnections calls.

`seed(account)` creates the TGW, customer gateways and VPN connections with the account's outside
IPs, inside CIDRs, tunnel options (an empty list stays empty), telemetry and TGW routes, and returns
the mapping of the account's connection/attachment ids to the fake's generated ones (`rename`).
`down_polls` sets how many DescribeVpnConnections answers see a modified tunnel DOWN;
`never_up` holds outside IPs that stay DOWN after a modify.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from moto.ec2.responses.vpn_connections import VPNConnections

from deploy.lab.emulators.aws import MotoAws, RecordedRequest, _modify_vpn_tunnel_options
from watchdog.audit.ciphers import RESPONSE_KEYS
from watchdog.audit.inventory import OPTION_KEYS, AwsAccount, AwsConnection


class AuditMotoAws(MotoAws):
    def __init__(self, region: str = "ap-northeast-1") -> None:
        super().__init__(region)
        self.down_polls = 1
        self.never_up: set[str] = set()
        self._pending: dict[tuple[str, str], int] = {}
        self._flip_lock = threading.Lock()

    def reset(self) -> None:
        super().reset()
        self.down_polls = 1
        self.never_up = set()
        self._pending.clear()

    # -- modify -> DOWN -> UP ---------------------------------------------------------------------

    def enable_modify_vpn_tunnel_options(self) -> None:
        inner = _modify_vpn_tunnel_options(self)
        owner = self

        def modify(handler: Any) -> Any:
            result = inner(handler)
            vpn_id = handler._get_param("VpnConnectionId")
            ip = handler._get_param("VpnTunnelOutsideIpAddress")
            owner.set_telemetry(vpn_id, ip, status="DOWN", message="IPSEC IS DOWN")
            with owner._flip_lock:
                owner._pending[(vpn_id, ip)] = owner.down_polls
            return result

        self._patch(VPNConnections, "modify_vpn_tunnel_options", modify)

    def _record(self, request: RecordedRequest) -> None:
        super()._record(request)
        if request.action != "DescribeVpnConnections":
            return
        with self._flip_lock:
            for (vpn_id, ip), left in list(self._pending.items()):
                if left > 0:
                    self._pending[(vpn_id, ip)] = left - 1
                    continue
                del self._pending[(vpn_id, ip)]
                if ip not in self.never_up:
                    self.set_telemetry(vpn_id, ip, status="UP", message="3 BGP ROUTES")

    # -- seeding ----------------------------------------------------------------------------------

    def seed(self, account: AwsAccount) -> tuple[AwsAccount, dict[str, str]]:
        """Build the account in moto; return it with the fake's ids, and the old -> new id mapping."""
        tgw = self.create_transit_gateway()
        table = self.default_route_table(tgw)
        client = self.client()
        rename: dict[str, str] = {"tgw-0001": tgw, account.route_tables[0].id: table} if account.route_tables else {}
        conns: list[AwsConnection] = []
        cgws: dict[str, str] = {}
        for conn in account.connections:
            if conn.customer_gateway_id not in cgws:
                cgws[conn.customer_gateway_id] = self.create_customer_gateway(conn.customer_gateway_ip)
            info = self.create_vpn_connection(
                cgws[conn.customer_gateway_id],
                transit_gateway_id=tgw,
                outside_ips=tuple(t.outside_ip for t in conn.tunnels),
                inside_cidrs=tuple(t.inside_cidr or "" for t in conn.tunnels),
            )
            assert info.attachment_id
            rename[conn.id] = info.vpn_id
            rename[conn.customer_gateway_id] = cgws[conn.customer_gateway_id]
            if conn.attachment_id:
                rename[conn.attachment_id] = info.attachment_id
            for tunnel in conn.tunnels:
                options: dict[str, Any] = {
                    RESPONSE_KEYS[k]: [{"Value": v} for v in getattr(tunnel.options, k)] for k in OPTION_KEYS
                }
                if not tunnel.inside_cidr:
                    options["TunnelInsideCidr"] = None
                self.set_tunnel_options(info.vpn_id, tunnel.outside_ip, **options)
                self.set_telemetry(
                    info.vpn_id,
                    tunnel.outside_ip,
                    status=tunnel.status,
                    accepted_routes=tunnel.accepted_routes if tunnel.accepted_routes is not None else 0,
                )
            conns.append(
                replace(
                    conn,
                    id=info.vpn_id,
                    customer_gateway_id=cgws[conn.customer_gateway_id],
                    transit_gateway_id=tgw,
                    attachment_id=info.attachment_id,
                )
            )
        tables = []
        for rt in account.route_tables[:1]:
            for att in rt.associations:
                client.associate_transit_gateway_route_table(
                    TransitGatewayRouteTableId=table, TransitGatewayAttachmentId=rename[att]
                )
            for att in rt.propagations:
                client.enable_transit_gateway_route_table_propagation(
                    TransitGatewayRouteTableId=table, TransitGatewayAttachmentId=rename[att]
                )
            for route in rt.routes:
                by_attachment = {c.attachment_id: c.id for c in conns}
                self.add_route(
                    table,
                    route.prefix,
                    type=route.type,
                    state=route.state,
                    attachments=[(rename[a], by_attachment[rename[a]], "vpn") for a in route.attachment_ids],
                )
            tables.append(
                replace(
                    rt,
                    id=table,
                    transit_gateway_id=tgw,
                    routes=tuple(
                        replace(r, attachment_ids=tuple(rename[a] for a in r.attachment_ids)) for r in rt.routes
                    ),
                    associations=tuple(rename[a] for a in rt.associations),
                    propagations=tuple(rename[a] for a in rt.propagations),
                )
            )
        seeded = replace(
            account,
            connections=tuple(conns),
            route_tables=tuple(tables),
            intended_route_tables=tuple(rename.get(t, t) for t in account.intended_route_tables),
        )
        return seeded, rename
