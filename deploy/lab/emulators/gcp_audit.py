"""The GCP fake for `watchdog audit`: `FakeGcp` (Compute REST) plus Cloud DNS managed zones.

`FakeGcpAudit.seed(project)` replaces the fake's topology with the REST JSON of an audit
`GcpProject` (HA gateways + getStatus, external gateways, tunnels, routers, networks with
peerings, subnetworks, managed zones), so a test can break one field in the Inventory, seed it, and
watch the real clients read it back. Zones are served at `GET /dns/v1/projects/{p}/managedZones`
(paginated by `zone_page_size`, token = offset). Every tunnel carries `shared_secret` as its
sharedSecret (the real API masks it; a test passes a known key to check that nothing the audit
prints contains it).
"""

from __future__ import annotations

from typing import Any

from deploy.lab.emulators.gcp import MASKED_SECRET, FakeGcp, FakeRequest
from watchdog.audit.inventory import DnsZone, GcpProject


class FakeGcpAudit(FakeGcp):
    def __init__(
        self,
        project: str = "proj-hub",
        region: str = "asia-northeast1",
        *,
        shared_secret: str = MASKED_SECRET,
        **kwargs: Any,
    ) -> None:
        super().__init__(project, region, empty=True, **kwargs)
        self.shared_secret = shared_secret
        self.zones: list[dict[str, Any]] = []
        self.zone_page_size = 0
        self.route("GET", rf"^/dns/v1/projects/{project}/managedZones$", self._managed_zones)

    def network_url(self, key: str) -> str:
        project, _, name = key.partition("/")
        return f"https://www.googleapis.com/compute/v1/projects/{project}/global/networks/{name}"

    def _managed_zones(self, request: FakeRequest) -> tuple[int, Any]:
        start = int(request.query.get("pageToken", ["0"])[0] or 0)
        size = self.zone_page_size or len(self.zones) or 1
        page: dict[str, Any] = {"kind": "dns#managedZonesListResponse"}
        page["managedZones"] = self.zones[start : start + size]
        if start + size < len(self.zones):
            page["nextPageToken"] = str(start + size)
        return 200, page

    def seed(self, project: GcpProject) -> None:
        assert project.project == self.project and project.region == self.region
        self.collections.clear()
        self.actions.clear()
        gateways, tunnels, routers = (self.regional(k) for k in ("vpnGateways", "vpnTunnels", "routers"))
        for gw in project.ha_gateways:
            self.add(
                gateways,
                {
                    "kind": "compute#vpnGateway",
                    "name": gw.name,
                    "network": self.network_url(project.network_key(gw.network)),
                    "vpnInterfaces": [{"id": i, "ipAddress": ip} for i, ip in enumerate(gw.interfaces)],
                },
            )
            self.actions[(f"{gateways}/{gw.name}", "getStatus")] = {
                "vpnConnections": [
                    {
                        "peerExternalGateway": self.link("global/externalVpnGateways", peer),
                        "state": {"state": state}
                        if state.endswith("_MET") and "NOT" not in state
                        else {"state": state, "unsatisfiedReason": "INCOMPLETE_TUNNELS_COVERAGE"},
                    }
                    for peer, state in gw.redundancy
                ]
            }
        for ext in project.external_gateways:
            self.add(
                "global/externalVpnGateways",
                {
                    "kind": "compute#externalVpnGateway",
                    "name": ext.name,
                    "redundancyType": ext.redundancy_type,
                    "interfaces": [{"id": i, "ipAddress": ip} for i, ip in ext.interfaces],
                },
            )
        for t in project.tunnels:
            item: dict[str, Any] = {
                "kind": "compute#vpnTunnel",
                "name": t.name,
                "vpnGateway": self.link(gateways, t.gateway),
                "peerIp": t.peer_ip,
                "status": t.status,
                "ikeVersion": t.ike_version,
                "sharedSecret": self.shared_secret,
                "detailedStatus": "",
            }
            if t.gateway_interface is not None:
                item["vpnGatewayInterface"] = t.gateway_interface
            if t.peer_external_gateway:
                item["peerExternalGateway"] = self.link("global/externalVpnGateways", t.peer_external_gateway)
            if t.peer_interface is not None:
                item["peerExternalGatewayInterface"] = t.peer_interface
            if t.router:
                item["router"] = self.link(routers, t.router)
            self.add(tunnels, item)
        for r in project.routers:
            self.add(
                routers,
                {
                    "kind": "compute#router",
                    "name": r.name,
                    "network": self.network_url(project.network_key(r.network)),
                    "bgp": {
                        "asn": 64514,
                        "advertiseMode": r.advertise_mode,
                        "advertisedGroups": list(r.advertised_groups),
                        "advertisedIpRanges": [{"range": x} for x in r.advertised_ranges],
                    },
                    "interfaces": [
                        {
                            "name": i.name,
                            "ipRange": i.ip_range,
                            **({"linkedVpnTunnel": self.link(tunnels, i.linked_tunnel)} if i.linked_tunnel else {}),
                        }
                        for i in r.interfaces
                    ],
                    "bgpPeers": [
                        {
                            "name": p.name,
                            "interfaceName": p.interface,
                            "ipAddress": p.ip_address,
                            "peerIpAddress": p.peer_ip_address,
                            "peerAsn": 64512,
                        }
                        for p in r.peers
                    ],
                },
            )
        for n in project.networks:
            owner, _, name = n.key.partition("/")
            assert owner == self.project, "the fake serves one project"
            self.add(
                "global/networks",
                {
                    "kind": "compute#network",
                    "name": name,
                    "selfLink": self.network_url(n.key),
                    "peerings": [
                        {
                            "name": p.name,
                            "network": self.network_url(p.peer_network),
                            "state": p.state,
                            "exportCustomRoutes": p.export_custom_routes,
                            "importCustomRoutes": p.import_custom_routes,
                        }
                        for p in n.peerings
                    ],
                },
            )
            for i, cidr in enumerate(n.subnet_ranges):
                self.add(
                    self.regional("subnetworks"),
                    {
                        "kind": "compute#subnetwork",
                        "name": f"{name}-subnet-{i}",
                        "ipCidrRange": cidr,
                        "network": self.network_url(n.key),
                    },
                )
        self.zones = [self.zone_json(z) for z in project.dns_zones]

    def zone_json(self, zone: DnsZone) -> dict[str, Any]:
        item: dict[str, Any] = {
            "kind": "dns#managedZone",
            "name": zone.name,
            "dnsName": zone.dns_name,
            "visibility": "private" if zone.networks else "public",
        }
        if zone.networks:
            item["privateVisibilityConfig"] = {"networks": [{"networkUrl": self.network_url(k)} for k in zone.networks]}
        if zone.kind == "forwarding":
            item["forwardingConfig"] = {
                "targetNameServers": [
                    {"ipv4Address": ip, "forwardingPath": "private"} for ip in zone.forwarding_targets
                ]
            }
        if zone.kind == "peering" and zone.target_network:
            item["peeringConfig"] = {"targetNetwork": {"networkUrl": self.network_url(zone.target_network)}}
        return item
