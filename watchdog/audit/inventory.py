"""What one audit observed: our own frozen records of a live AWS + GCP VPN setup.

The adapters (`exporters/aws_inventory.py`, `exporters/gcp_inventory.py`) fill these from the cloud
APIs; the rules read only these. Records never hold secrets: no pre-shared keys, no customer
gateway configuration XML, no credentials.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

# A string field may hold a value only known after apply (the Terraform reader's spelling of an
# unknown: "(known after apply: aws_vpn_connection.vpn[0].tunnel1_address)"); equal strings are the
# same attribute, a known address never equals one.
AFTER_APPLY = "(known after apply"


def after_apply(value: str | None) -> bool:
    return bool(value) and value.startswith(AFTER_APPLY)  # type: ignore[union-attr]


# AWS tunnel option lists (response casing in AWS is `Phase1EncryptionAlgorithms` etc.).
OPTION_KEYS = (
    "ike_versions",
    "phase1_encryption",
    "phase1_integrity",
    "phase1_dh",
    "phase2_encryption",
    "phase2_integrity",
    "phase2_dh",
)


@dataclass(frozen=True)
class TunnelOptions:
    """The negotiable IPsec options of one AWS tunnel; an empty tuple means "AWS default: all values"."""

    ike_versions: tuple[str, ...] = ()
    phase1_encryption: tuple[str, ...] = ()
    phase1_integrity: tuple[str, ...] = ()
    phase1_dh: tuple[int, ...] = ()
    phase2_encryption: tuple[str, ...] = ()
    phase2_integrity: tuple[str, ...] = ()
    phase2_dh: tuple[int, ...] = ()


@dataclass(frozen=True)
class AwsTunnel:
    """One tunnel of an AWS VPN connection (AWS calls them tunnel1/tunnel2, in API order)."""

    outside_ip: str
    inside_cidr: str | None
    status: str = "UP"  # VgwTelemetry Status: UP | DOWN | UNKNOWN
    accepted_routes: int | None = None
    options: TunnelOptions = field(default_factory=TunnelOptions)

    def inside_hosts(self) -> tuple[str, str] | None:
        """(AWS side, customer side): the first and second host of the /30, as AWS assigns them."""
        if not self.inside_cidr:
            return None
        try:
            net = ipaddress.ip_network(self.inside_cidr, strict=False)
        except ValueError:
            return None
        if net.num_addresses < 4:
            return None
        return str(net.network_address + 1), str(net.network_address + 2)


@dataclass(frozen=True)
class AwsConnection:
    id: str
    customer_gateway_id: str
    customer_gateway_ip: str
    transit_gateway_id: str | None
    attachment_id: str | None = None
    tunnels: tuple[AwsTunnel, ...] = ()
    state: str = "available"


@dataclass(frozen=True)
class TgwRoute:
    prefix: str
    type: str  # static | propagated
    state: str  # active | blackhole
    attachment_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class TgwRouteTable:
    id: str
    transit_gateway_id: str
    routes: tuple[TgwRoute, ...] = ()
    associations: tuple[str, ...] = ()  # attachment ids associated with this table
    propagations: tuple[str, ...] = ()  # attachment ids propagating (enabled) into this table


@dataclass(frozen=True)
class VpcRouteTable:
    """A VPC route table of the DNS resolvers' subnets: (destination, target id) per route."""

    id: str
    routes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AwsAccount:
    """One `type: aws` exporter entry: a region's VPN connections and the TGW route tables around them."""

    name: str
    region: str
    connections: tuple[AwsConnection, ...] = ()
    route_tables: tuple[TgwRouteTable, ...] = ()
    # Route tables that must receive the VPN routes (config `transit_gateway_route_tables`); empty = any.
    intended_route_tables: tuple[str, ...] = ()
    # VPC route tables of the resolvers Cloud DNS forwards to (config `dns_resolver_route_tables`).
    resolver_route_tables: tuple[VpcRouteTable, ...] = ()


@dataclass(frozen=True)
class HaGateway:
    name: str
    network: str  # network name
    interfaces: tuple[str, ...]  # IP by interface id (0, 1)
    redundancy: tuple[tuple[str, str], ...] = ()  # (peer gateway, CONNECTION_REDUNDANCY_MET|..._NOT_MET)


@dataclass(frozen=True)
class ExternalGateway:
    name: str
    redundancy_type: str
    interfaces: tuple[tuple[int, str], ...]  # (id, ip)


@dataclass(frozen=True)
class GcpTunnel:
    name: str
    gateway: str
    gateway_interface: int | None
    peer_external_gateway: str | None
    peer_interface: int | None
    router: str | None
    peer_ip: str
    status: str = "ESTABLISHED"
    ike_version: int = 2


@dataclass(frozen=True)
class RouterInterface:
    name: str
    ip_range: str
    linked_tunnel: str | None


@dataclass(frozen=True)
class RouterPeer:
    name: str
    interface: str
    ip_address: str
    peer_ip_address: str


@dataclass(frozen=True)
class CloudRouter:
    name: str
    network: str
    advertise_mode: str = "DEFAULT"
    advertised_groups: tuple[str, ...] = ()
    advertised_ranges: tuple[str, ...] = ()
    interfaces: tuple[RouterInterface, ...] = ()
    peers: tuple[RouterPeer, ...] = ()


@dataclass(frozen=True)
class Peering:
    name: str
    peer_network: str  # "project/network"
    state: str = "ACTIVE"
    export_custom_routes: bool = False
    import_custom_routes: bool = False


@dataclass(frozen=True)
class Network:
    """A VPC network, named "project/network" so spokes in other projects stay distinct."""

    key: str
    subnet_ranges: tuple[str, ...] = ()
    peerings: tuple[Peering, ...] = ()


@dataclass(frozen=True)
class DnsZone:
    name: str
    dns_name: str
    kind: str  # forwarding | peering | private | public
    networks: tuple[str, ...] = ()  # "project/network" keys of its private visibility
    target_network: str | None = None  # peering zones
    forwarding_targets: tuple[str, ...] = ()


@dataclass(frozen=True)
class GcpProject:
    """One `type: gcp` exporter entry: a project/region's HA VPN, Cloud Routers, networks and DNS."""

    name: str
    project: str
    region: str
    ha_gateways: tuple[HaGateway, ...] = ()
    external_gateways: tuple[ExternalGateway, ...] = ()
    tunnels: tuple[GcpTunnel, ...] = ()
    routers: tuple[CloudRouter, ...] = ()
    networks: tuple[Network, ...] = ()
    dns_zones: tuple[DnsZone, ...] = ()

    def network_key(self, name: str) -> str:
        return name if "/" in name else f"{self.project}/{name}"


@dataclass(frozen=True)
class Inventory:
    aws: tuple[AwsAccount, ...] = ()
    gcp: tuple[GcpProject, ...] = ()
    mtu: int = 1500
