"""Tie AWS VPN connections to the GCP HA VPN gateway they land on ("landings").

A connection lands on an HA gateway when its customer gateway IP is one of the gateway's interface
IPs, or when one of its tunnel outside IPs is an interface of an external VPN gateway that the HA
gateway's tunnels use. Pure; no I/O. The rules use the landings to know which AWS tunnels face GCP,
in which order (interface i -> connection i div tunnels-per-connection) and which are unused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from watchdog.audit.inventory import (
    AwsAccount,
    AwsConnection,
    AwsTunnel,
    ExternalGateway,
    GcpProject,
    GcpTunnel,
    HaGateway,
    Inventory,
    after_apply,
)


@dataclass
class Landing:
    project: GcpProject
    gateway: HaGateway
    external: ExternalGateway | None
    gcp_tunnels: list[GcpTunnel] = field(default_factory=list)
    connections: list[tuple[AwsAccount, AwsConnection]] = field(default_factory=list)

    @property
    def interface_ips(self) -> list[str]:
        return [ip for _, ip in sorted(self.external.interfaces)] if self.external else []

    @property
    def tunnels_per_connection(self) -> int:
        if not self.connections or not self.external:
            return 2
        return max(1, len(self.external.interfaces) // len(self.connections))

    @property
    def cheap(self) -> bool:
        """1 connection, 1 external interface, 1 tunnel: the documented cheap test setup."""
        return (
            self.external is not None
            and len(self.external.interfaces) == 1
            and len(self.gcp_tunnels) == 1
            and len(self.connections) <= 1
        )

    def expected_ip(self, interface_index: int) -> str | None:
        """The AWS outside IP external interface i must carry, or None when there is no such tunnel."""
        tpc = self.tunnels_per_connection
        conn_index, tunnel_index = divmod(interface_index, tpc)
        if conn_index >= len(self.connections):
            return None
        tunnels = self.connections[conn_index][1].tunnels
        return tunnels[tunnel_index].outside_ip if tunnel_index < len(tunnels) else None

    def unused_tunnels(self) -> set[str]:
        """AWS tunnels no GCP interface points at, in cheap mode only (their DOWN is expected)."""
        if not self.cheap:
            return set()
        used = set(self.interface_ips)
        return {t.outside_ip for _, c in self.connections for t in c.tunnels if t.outside_ip not in used}


@dataclass
class Topology:
    landings: list[Landing]
    # AWS connections that face GCP (all of them when no GCP project is audited).
    gcp_facing: list[tuple[AwsAccount, AwsConnection]]

    def landing_of(self, connection_id: str) -> Landing | None:
        for landing in self.landings:
            if any(c.id == connection_id for _, c in landing.connections):
                return landing
        return None

    def audited_tunnels(self) -> list[tuple[AwsAccount, AwsConnection, AwsTunnel]]:
        """Tunnels whose options and state matter: every GCP-facing one except cheap mode's spare."""
        unused = {ip for landing in self.landings for ip in landing.unused_tunnels()}
        return [
            (account, conn, tunnel)
            for account, conn in self.gcp_facing
            for tunnel in conn.tunnels
            if tunnel.outside_ip not in unused
        ]


def build(inventory: Inventory) -> Topology:
    connections = [(a, c) for a in inventory.aws for c in a.connections]
    by_tunnel_ip = {t.outside_ip: (a, c) for a, c in connections for t in c.tunnels}
    landings: list[Landing] = []
    claimed: set[str] = set()
    for project in inventory.gcp:
        externals = {e.name: e for e in project.external_gateways}
        for gateway in project.ha_gateways:
            on_gateway = [t for t in project.tunnels if t.gateway == gateway.name]
            ext_names = sorted({t.peer_external_gateway for t in on_gateway if t.peer_external_gateway})
            gateway_landings: list[Landing] = []
            for ext_name in ext_names:
                ext = externals.get(ext_name)
                ips = {ip for _, ip in ext.interfaces} if ext else set()
                if inventory.aws and not ips & set(by_tunnel_ip) and not _undecided(ips, set(by_tunnel_ip)):
                    continue  # an external gateway toward something else (on-prem)
                landing = Landing(project, gateway, ext, [t for t in on_gateway if t.peer_external_gateway == ext_name])
                for ip in sorted(ips & set(by_tunnel_ip)):
                    account, conn = by_tunnel_ip[ip]
                    if conn.id not in claimed:
                        claimed.add(conn.id)
                        landing.connections.append((account, conn))
                gateway_landings.append(landing)
            for account, conn in connections:
                if conn.id in claimed or conn.customer_gateway_ip not in gateway.interfaces:
                    continue
                if not gateway_landings:
                    gateway_landings.append(Landing(project, gateway, None))
                claimed.add(conn.id)
                gateway_landings[0].connections.append((account, conn))
            for landing in gateway_landings:
                landing.connections.sort(key=lambda ac: (_interface_index(gateway, ac[1]), ac[1].id))
            landings.extend(gateway_landings)
    if inventory.gcp:
        # In landing order: HA interface 0's connection first, then its tunnels in API order.
        gcp_facing = [ac for landing in landings for ac in landing.connections]
    else:
        gcp_facing = connections
    return Topology(landings, gcp_facing)


def _undecided(external_ips: set[str], aws_ips: set[str]) -> bool:
    """Hard-coded external addresses against AWS addresses known only after apply (Terraform): no telling."""
    return any(after_apply(ip) for ip in aws_ips) and not any(after_apply(ip) for ip in external_ips)


def _interface_index(gateway: HaGateway, conn: AwsConnection) -> int:
    try:
        return gateway.interfaces.index(conn.customer_gateway_ip)
    except ValueError:
        return len(gateway.interfaces)
