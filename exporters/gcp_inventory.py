"""Read one GCP project/region's HA VPN setup into the audit's `GcpProject`.

Reads (Compute REST): vpnGateways.list + getStatus, externalVpnGateways.get (those the tunnels use),
vpnTunnels.list, routers.list (or routers.get for configured names), networks.get for the hub and
each peered spoke, subnetworks.aggregatedList per project; (Cloud DNS REST) managedZones.list.
Holds its own `GcpClient` (credentials, clients) and uses its `PollBudget` (deadline, bounded retries,
translation to `ExporterError`). Compute types never leave this module; it reads no secrets
(a tunnel's sharedSecret is never copied).
"""

from __future__ import annotations

import functools
import re
from typing import Any

from exporters.gcp import last_segment
from exporters.gcp_client import GcpClient, list_all, page_args
from exporters.gcp_errors import PollBudget
from watchdog.audit.inventory import (
    CloudRouter,
    DnsZone,
    ExternalGateway,
    GcpProject,
    GcpTunnel,
    HaGateway,
    Network,
    Peering,
    RouterInterface,
    RouterPeer,
)
from watchdog.config import GcpExporterConfig
from watchdog.errors import ExporterError

DNS_ENDPOINT = "https://dns.googleapis.com"
_NETWORK_URL = re.compile(r"projects/(?P<project>[^/]+)/global/networks/(?P<network>[^/?]+)")
_UNREADABLE = frozenset({"not_found", "auth"})


def network_key(url: str, default_project: str) -> str:
    """A network URL (or bare name) -> "project/network", the inventory's network key."""
    match = _NETWORK_URL.search(url or "")
    if match:
        return f"{match['project']}/{match['network']}"
    return f"{default_project}/{last_segment(url) or ''}"


class GcpInventoryReader:
    """One `type: gcp` exporter entry, read for the audit (build once, `read()` any number of times)."""

    def __init__(self, config: GcpExporterConfig, *, timeout: float) -> None:
        self.name = config.name
        self.config = config
        self.timeout = timeout
        self.client = GcpClient(config)

    def close(self) -> None:
        self.client.close()

    def read(self) -> GcpProject:
        budget = PollBudget(self.timeout)
        try:
            return self._read(self.client, budget)
        except ExporterError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ExporterError(
                "malformed", f"audit of project {self.config.project}: unexpected response: {type(exc).__name__}"
            ) from exc

    # -- the reads ------------------------------------------------------------------------------

    def _read(self, c: GcpClient, budget: PollBudget) -> GcpProject:
        from google.cloud import compute_v1

        cfg = self.config
        p, r = cfg.project, cfg.region
        where = f"project {p} region {r}"
        gateways_raw = list_all(
            budget,
            f"vpnGateways.list {where}",
            lambda token, left: c.compute("gateways").list(
                request=compute_v1.ListVpnGatewaysRequest(project=p, region=r, **page_args(token)),
                timeout=left,
                retry=None,
            ),
        )
        tunnels_raw = list_all(
            budget,
            f"vpnTunnels.list {where}",
            lambda token, left: c.compute("tunnels").list(
                request=compute_v1.ListVpnTunnelsRequest(project=p, region=r, **page_args(token)),
                timeout=left,
                retry=None,
            ),
        )

        gateways = []
        for g in sorted(gateways_raw, key=lambda g: g.name):

            def get_status(left: float, name: str = g.name) -> Any:
                return c.compute("gateways").get_status(project=p, region=r, vpn_gateway=name, timeout=left, retry=None)

            status = budget.call(f"vpnGateways.getStatus {g.name} {where}", get_status)
            interfaces = [i.ip_address for i in sorted(g.vpn_interfaces, key=lambda i: i.id)]
            redundancy = tuple(
                (last_segment(v.peer_external_gateway) or last_segment(v.peer_gcp_gateway) or "", v.state.state)
                for v in status.result.vpn_connections
            )
            gateways.append(HaGateway(g.name, network_key(g.network, p), tuple(interfaces), redundancy))

        tunnels = tuple(sorted((_tunnel(t) for t in tunnels_raw), key=lambda t: t.name))
        externals = []
        for name in sorted({t.peer_external_gateway for t in tunnels if t.peer_external_gateway}):

            def get_external(left: float, name: str = name) -> Any:
                return c.compute("externals").get(project=p, external_vpn_gateway=name, timeout=left, retry=None)

            ext = budget.call(f"externalVpnGateways.get {name} project {p}", get_external)
            externals.append(
                ExternalGateway(
                    ext.name, ext.redundancy_type, tuple(sorted((int(i.id), i.ip_address) for i in ext.interfaces))
                )
            )

        routers = self._routers(c, budget)
        networks = self._networks(
            c, budget, {network_key(rt.network, p) for rt in routers} | {g.network for g in gateways}
        )
        return GcpProject(
            name=self.name,
            project=p,
            region=r,
            ha_gateways=tuple(gateways),
            external_gateways=tuple(externals),
            tunnels=tunnels,
            routers=routers,
            networks=networks,
            dns_zones=self._zones(budget),
        )

    def _routers(self, c: GcpClient, budget: PollBudget) -> tuple[CloudRouter, ...]:
        from google.cloud import compute_v1

        p, r = self.config.project, self.config.region
        if self.config.routers:

            def get_router(name: str, left: float) -> Any:
                return c.compute("routers").get(project=p, region=r, router=name, timeout=left, retry=None)

            raw = [
                budget.call(f"routers.get {name} project {p} region {r}", functools.partial(get_router, name))
                for name in self.config.routers
            ]
        else:
            raw = list_all(
                budget,
                f"routers.list project {p} region {r}",
                lambda token, left: c.compute("routers").list(
                    request=compute_v1.ListRoutersRequest(project=p, region=r, **page_args(token)),
                    timeout=left,
                    retry=None,
                ),
            )
        return tuple(sorted((_router(x, p) for x in raw if x.bgp_peers or x.interfaces), key=lambda x: x.name))

    def _networks(self, c: GcpClient, budget: PollBudget, hubs: set[str]) -> tuple[Network, ...]:
        """The hub networks, their peered spokes (one level), with subnet ranges and peerings."""
        raw: dict[str, Any] = {}
        for key in sorted(hubs):
            raw[key] = self._network(c, budget, key)
        spokes = {
            network_key(peering.network, key.split("/")[0])
            for key, net in raw.items()
            if net is not None
            for peering in net.peerings
        }
        for key in sorted(spokes - set(raw)):
            raw[key] = self._network(c, budget, key)
        subnets = self._subnets(c, budget, {k.split("/")[0] for k, v in raw.items() if v is not None})
        result = []
        for key, net in sorted(raw.items()):
            if net is None:
                continue  # another project we may not read: its checks are skipped
            project = key.split("/")[0]
            result.append(
                Network(
                    key=key,
                    subnet_ranges=tuple(sorted(subnets.get(key, ()))),
                    peerings=tuple(
                        Peering(
                            name=pe.name,
                            peer_network=network_key(pe.network, project),
                            state=pe.state,
                            export_custom_routes=bool(pe.export_custom_routes),
                            import_custom_routes=bool(pe.import_custom_routes),
                        )
                        for pe in net.peerings
                    ),
                )
            )
        return tuple(result)

    def _network(self, c: GcpClient, budget: PollBudget, key: str) -> Any:
        project, _, name = key.partition("/")
        try:
            return budget.call(
                f"networks.get {name} project {project}",
                lambda left: c.compute("networks").get(project=project, network=name, timeout=left, retry=None),
            )
        except ExporterError as exc:
            if project != self.config.project and exc.reason in _UNREADABLE:
                return None
            raise

    def _subnets(self, c: GcpClient, budget: PollBudget, projects: set[str]) -> dict[str, list[str]]:
        from google.cloud import compute_v1

        ranges: dict[str, list[str]] = {}
        for project in sorted(projects):
            token = ""
            while True:

                def fetch(left: float, token: str = token, project: str = project) -> Any:
                    request = compute_v1.AggregatedListSubnetworksRequest(project=project, **page_args(token))
                    return next(
                        iter(c.compute("subnetworks").aggregated_list(request=request, timeout=left, retry=None).pages)
                    )

                page = budget.call(f"subnetworks.aggregatedList project {project}", fetch)
                for _, scoped in page.items.items():
                    for subnet in scoped.subnetworks:
                        key = network_key(subnet.network, project)
                        ranges.setdefault(key, []).append(subnet.ip_cidr_range)
                        ranges[key].extend(s.ip_cidr_range for s in subnet.secondary_ip_ranges)
                token = page.next_page_token
                if not token:
                    break
        return ranges

    def _zones(self, budget: PollBudget) -> tuple[DnsZone, ...]:
        """Cloud DNS managed zones (REST: the typed client library has no forwarding/peering fields)."""
        p = self.config.project
        base = (self.config.endpoint or DNS_ENDPOINT).rstrip("/")
        zones: list[DnsZone] = []
        token = ""
        while True:
            page = self.client.rest(
                budget,
                f"managedZones.list project {p}",
                f"{base}/dns/v1/projects/{p}/managedZones",
                params={"pageToken": token} if token else None,
            )
            zones.extend(_zone(z, p) for z in page.get("managedZones") or [])
            token = page.get("nextPageToken") or ""
            if not token:
                return tuple(sorted(zones, key=lambda z: z.name))


def _tunnel(raw: Any) -> GcpTunnel:
    return GcpTunnel(
        name=raw.name,
        gateway=last_segment(raw.vpn_gateway) or "",
        gateway_interface=raw.vpn_gateway_interface if "vpn_gateway_interface" in raw else None,
        peer_external_gateway=last_segment(raw.peer_external_gateway),
        peer_interface=raw.peer_external_gateway_interface if "peer_external_gateway_interface" in raw else None,
        router=last_segment(raw.router),
        peer_ip=raw.peer_ip,
        status=raw.status,
        ike_version=raw.ike_version if "ike_version" in raw else 2,
    )


def _router(raw: Any, project: str) -> CloudRouter:
    bgp = raw.bgp
    return CloudRouter(
        name=raw.name,
        network=network_key(raw.network, project),
        advertise_mode=bgp.advertise_mode or "DEFAULT",
        advertised_groups=tuple(bgp.advertised_groups),
        advertised_ranges=tuple(a.range_ for a in bgp.advertised_ip_ranges),
        interfaces=tuple(
            RouterInterface(i.name, i.ip_range, last_segment(i.linked_vpn_tunnel)) for i in raw.interfaces
        ),
        peers=tuple(RouterPeer(x.name, x.interface_name, x.ip_address, x.peer_ip_address) for x in raw.bgp_peers),
    )


def _zone(raw: dict[str, Any], project: str) -> DnsZone:
    networks = tuple(
        network_key(str(n.get("networkUrl") or ""), project)
        for n in (raw.get("privateVisibilityConfig") or {}).get("networks") or []
    )
    if raw.get("forwardingConfig"):
        kind = "forwarding"
    elif raw.get("peeringConfig"):
        kind = "peering"
    else:
        kind = str(raw.get("visibility") or "public")
    target = ((raw.get("peeringConfig") or {}).get("targetNetwork") or {}).get("networkUrl")
    return DnsZone(
        name=str(raw.get("name") or ""),
        dns_name=str(raw.get("dnsName") or ""),
        kind=kind,
        networks=networks,
        target_network=network_key(str(target), project) if target else None,
        forwarding_targets=tuple(
            str(t.get("ipv4Address") or t.get("ipv6Address") or "")
            for t in (raw.get("forwardingConfig") or {}).get("targetNameServers") or []
        ),
    )
