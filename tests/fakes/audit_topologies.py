"""Known-good AWS <-> GCP topologies as in-memory Inventories (lab addresses only).

`four_tunnels()` is the production shape (2 AWS connections x 2 tunnels, one FOUR_IPS external
gateway, hub + spoke VPC, DNS forwarding in the hub, peering zone in the spoke); `cheap()` is the
1 connection / 1 tunnel test shape. Tests break one thing with `dataclasses.replace`; the end-to-end
fakes are seeded from the same objects.
"""

from __future__ import annotations

from dataclasses import replace

from watchdog.audit.inventory import (
    AwsAccount,
    AwsConnection,
    AwsTunnel,
    CloudRouter,
    DnsZone,
    ExternalGateway,
    GcpProject,
    GcpTunnel,
    HaGateway,
    Inventory,
    Network,
    Peering,
    RouterInterface,
    RouterPeer,
    TgwRoute,
    TgwRouteTable,
    TunnelOptions,
)

PROJECT = "proj-hub"
REGION = "asia-northeast1"
AWS_REGION = "ap-northeast-1"
HA_IPS = ("203.0.113.10", "203.0.113.11")
AWS_IPS = ("198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4")
INSIDE = ("169.254.10.0/30", "169.254.10.4/30", "169.254.10.8/30", "169.254.10.12/30")
HUB = f"{PROJECT}/hub-vpc"
SPOKE = f"{PROJECT}/spoke-vpc"
HUB_SUBNETS = ("10.10.0.0/16",)
SPOKE_SUBNETS = ("10.30.0.0/16",)
DNS_RANGE = "35.199.192.0/19"
# A recognisable pre-shared key: the fakes serve it, no output may ever contain it.
KNOWN_PSK = "Known.Psk.Never.Printed_123"

GOOD_OPTIONS = TunnelOptions(
    ike_versions=("ikev2",),
    phase1_encryption=("AES256",),
    phase1_integrity=("SHA2-256",),
    phase1_dh=(14,),
    phase2_encryption=("AES256",),
    phase2_integrity=("SHA2-256",),
    phase2_dh=(14,),
)


def _tunnel(i: int, status: str = "UP") -> AwsTunnel:
    return AwsTunnel(AWS_IPS[i], INSIDE[i], status=status, accepted_routes=3, options=GOOD_OPTIONS)


def _hosts(cidr: str) -> tuple[str, str]:
    base = cidr.split("/")[0].rsplit(".", 1)
    return f"{base[0]}.{int(base[1]) + 1}", f"{base[0]}.{int(base[1]) + 2}"


def _router(n_tunnels: int) -> CloudRouter:
    interfaces, peers = [], []
    for i in range(n_tunnels):
        aws_ip, gcp_ip = _hosts(INSIDE[i])
        interfaces.append(RouterInterface(f"if-tunnel-{i}", f"{gcp_ip}/30", f"tunnel-{i}"))
        peers.append(RouterPeer(f"peer-{i}", f"if-tunnel-{i}", gcp_ip, aws_ip))
    return CloudRouter(
        name="cr-hub",
        network=HUB,
        advertise_mode="CUSTOM",
        advertised_groups=("ALL_SUBNETS",),
        advertised_ranges=(*SPOKE_SUBNETS, DNS_RANGE),
        interfaces=tuple(interfaces),
        peers=tuple(peers),
    )


def _gcp(n_tunnels: int, redundancy: str, ext_ips: tuple[str, ...], met: str) -> GcpProject:
    tunnels = tuple(
        GcpTunnel(
            name=f"tunnel-{i}",
            gateway="ha-gw",
            gateway_interface=i // 2 if n_tunnels == 4 else 0,
            peer_external_gateway="aws-peer",
            peer_interface=i,
            router="cr-hub",
            peer_ip=ext_ips[i],
        )
        for i in range(n_tunnels)
    )
    return GcpProject(
        name="gcp-hub",
        project=PROJECT,
        region=REGION,
        ha_gateways=(HaGateway("ha-gw", HUB, HA_IPS, (("aws-peer", met),)),),
        external_gateways=(ExternalGateway("aws-peer", redundancy, tuple(enumerate(ext_ips))),),
        tunnels=tunnels,
        routers=(_router(n_tunnels),),
        networks=(
            Network(HUB, HUB_SUBNETS, (Peering("hub-to-spoke", SPOKE, "ACTIVE", True, False),)),
            Network(SPOKE, SPOKE_SUBNETS, (Peering("spoke-to-hub", HUB, "ACTIVE", False, True),)),
        ),
        dns_zones=(
            DnsZone("aws-internal", "aws.internal.", "forwarding", (HUB,), forwarding_targets=("10.0.0.2",)),
            DnsZone("aws-internal-peer", "aws.internal.", "peering", (SPOKE,), target_network=HUB),
        ),
    )


def _aws(connections: tuple[AwsConnection, ...]) -> AwsAccount:
    attachments = tuple(c.attachment_id for c in connections if c.attachment_id)
    routes = tuple(
        TgwRoute(prefix, "propagated", "active", attachments) for prefix in (*HUB_SUBNETS, *SPOKE_SUBNETS, DNS_RANGE)
    )
    table = TgwRouteTable("tgw-rtb-0001", "tgw-0001", routes, associations=attachments, propagations=attachments)
    return AwsAccount("aws-tokyo", AWS_REGION, connections, (table,))


def four_tunnels() -> Inventory:
    conns = (
        AwsConnection("vpn-000a", "cgw-000a", HA_IPS[0], "tgw-0001", "tgw-attach-000a", (_tunnel(0), _tunnel(1))),
        AwsConnection("vpn-000b", "cgw-000b", HA_IPS[1], "tgw-0001", "tgw-attach-000b", (_tunnel(2), _tunnel(3))),
    )
    gcp = _gcp(4, "FOUR_IPS_REDUNDANCY", AWS_IPS, "CONNECTION_REDUNDANCY_MET")
    return Inventory(aws=(_aws(conns),), gcp=(gcp,))


def cheap() -> Inventory:
    conn = AwsConnection(
        "vpn-000a",
        "cgw-000a",
        HA_IPS[0],
        "tgw-0001",
        "tgw-attach-000a",
        # The second AWS tunnel has nowhere to go: DOWN and left at AWS defaults, by design.
        (_tunnel(0), AwsTunnel(AWS_IPS[1], INSIDE[1], status="DOWN")),
    )
    gcp = _gcp(1, "SINGLE_IP_INTERNALLY_REDUNDANT", AWS_IPS[:1], "CONNECTION_REDUNDANCY_NOT_MET")
    return Inventory(aws=(_aws((conn,)),), gcp=(gcp,))


def with_tunnel(inv: Inventory, index: int, **changes: object) -> Inventory:
    """Replace fields of AWS tunnel `index` (0..3 across both connections)."""
    account = inv.aws[0]
    conns = list(account.connections)
    ci, ti = divmod(index, 2)
    tunnels = list(conns[ci].tunnels)
    tunnels[ti] = replace(tunnels[ti], **changes)  # type: ignore[arg-type]
    conns[ci] = replace(conns[ci], tunnels=tuple(tunnels))
    return replace(inv, aws=(replace(account, connections=tuple(conns)),))


def with_options(inv: Inventory, index: int, **changes: object) -> Inventory:
    tunnel = inv.aws[0].connections[index // 2].tunnels[index % 2]
    return with_tunnel(inv, index, options=replace(tunnel.options, **changes))  # type: ignore[arg-type]


def with_connection(inv: Inventory, index: int, **changes: object) -> Inventory:
    account = inv.aws[0]
    conns = list(account.connections)
    conns[index] = replace(conns[index], **changes)  # type: ignore[arg-type]
    return replace(inv, aws=(replace(account, connections=tuple(conns)),))


def with_aws(inv: Inventory, **changes: object) -> Inventory:
    return replace(inv, aws=(replace(inv.aws[0], **changes),))  # type: ignore[arg-type]


def with_gcp(inv: Inventory, **changes: object) -> Inventory:
    return replace(inv, gcp=(replace(inv.gcp[0], **changes),))  # type: ignore[arg-type]
