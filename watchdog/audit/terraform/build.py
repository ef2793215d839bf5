"""Resource instances (from `.tf` files or a plan) -> the audit's Inventory, plus where each object is written.

The Inventory is the very one the live readers build, so every rule runs unchanged. Names in it
are Terraform addresses; `Subjects` maps each object name the rules print back to its resource
address, file and argument line, and records which of its inputs are unknown before apply (so a
finding that rests on one becomes "could not check", never a false error). No secrets: the
resources carry no pre-shared key arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from watchdog.audit.inventory import (
    OPTION_KEYS,
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
from watchdog.audit.terraform.values import Resource, Unknown, as_text

AWS_ACCOUNT = "aws"
AWS_PICKS = "AWS picks a /30 at apply"  # the end of the reason an unset tunnelN_inside_cidr is not checked
GCP_PROJECT = "gcp"
_NETWORK_PATH = re.compile(r"projects/(?P<project>[^/]+)/global/networks/(?P<network>[^/?]+)")
# aws_vpn_connection argument suffix per inventory option key.
OPTION_ARGS = {
    "ike_versions": "ike_versions",
    "phase1_encryption": "phase1_encryption_algorithms",
    "phase1_integrity": "phase1_integrity_algorithms",
    "phase1_dh": "phase1_dh_group_numbers",
    "phase2_encryption": "phase2_encryption_algorithms",
    "phase2_integrity": "phase2_integrity_algorithms",
    "phase2_dh": "phase2_dh_group_numbers",
}


@dataclass
class Subject:
    """Where one audited object is written, and what of it is unknown before apply."""

    address: str
    file: str
    line: int
    kind: str  # tunnel | connection | customer_gateway | external | external_interface | ha | gcp_tunnel | ...
    resource: Resource | None = None
    tunnel: int = 0  # AWS tunnel number (1, 2) for tunnel subjects; interface id for external interfaces
    unknown: dict[str, str] = field(default_factory=dict)  # input -> why it cannot be checked
    related: dict[str, Resource] = field(default_factory=dict)


@dataclass
class Built:
    inventory: Inventory
    subjects: dict[str, Subject]  # object name as the rules print it -> subject
    names: dict[str, str]  # object names and unknown spellings -> how the report writes them


class _Index:
    """Resources by type, and what a reference or a name points at (memoised: configurations repeat)."""

    def __init__(self, resources: list[Resource]) -> None:
        self.by_type: dict[str, list[Resource]] = {}
        self.by_address = {r.address: r for r in resources}
        self._names: dict[tuple[str, str, str], Resource] = {}
        self._ids: dict[tuple[str, str], Resource] = {}
        for r in resources:
            self.by_type.setdefault(r.type, []).append(r)
        for r in reversed(resources):
            name, rid = r.get("name"), r.get("id")
            if isinstance(name, str):
                self._names[(r.type, r.module, name)] = r
                self._names.setdefault((r.type, "*", name), r)
            if isinstance(rid, str):
                self._ids[(r.type, rid)] = r

    def of(self, rtype: str) -> list[Resource]:
        return self.by_type.get(rtype, [])

    def find(self, value: Any, rtype: str, near: Resource | None = None) -> Resource | None:
        """The resource a reference, a name or a URL points at; a name in the same module first."""
        if isinstance(value, Unknown):
            ref = value.ref or ""
            cuts = [i for i, ch in enumerate(ref) if ch in ".["] + [len(ref)]
            for cut in reversed(cuts):
                found = self.by_address.get(ref[:cut])
                if found is not None and found.type == rtype:
                    return found
            return None
        if isinstance(value, str) and value:
            if (rtype, value) in self._ids:
                return self._ids[(rtype, value)]
            tail = value.rstrip("/").rsplit("/", 1)[-1]
            module = near.module if near is not None else ""
            return self._names.get((rtype, module, tail)) or self._names.get((rtype, "*", tail))
        return None


def _text(value: Any) -> str:
    return as_text(value) or ""


def _strs(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(_text(v) for v in value if v is not None)
    return ()


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _iface_id(block: dict[str, Any], position: int) -> int:
    found = _int(block.get("id"))
    return position if found is None else found


def build(resources: list[Resource], mtu: int = 1500) -> Built:
    index = _Index(resources)
    subjects: dict[str, Subject] = {}
    names: dict[str, str] = {}
    gcp = _gcp(index, subjects, names)
    aws = _aws(index, subjects, names, gcp)
    for r in resources:
        for value in _unknowns(r.values):
            if value.ref:
                names[value.text()] = f"{value.ref} (known after apply)"
    inventory = Inventory(aws=(aws,) if aws else (), gcp=(gcp,) if gcp else (), mtu=mtu)
    return Built(inventory, subjects, names)


def _unknowns(value: Any) -> list[Unknown]:
    if isinstance(value, Unknown):
        return [value]
    if isinstance(value, dict):
        return [u for v in value.values() for u in _unknowns(v)]
    if isinstance(value, list):
        return [u for v in value for u in _unknowns(v)]
    return []


# -- GCP ------------------------------------------------------------------------------------


def _project(index: _Index) -> str:
    for rtype in ("google_compute_ha_vpn_gateway", "google_compute_network", "google_compute_router"):
        for r in index.of(rtype):
            project = r.get("project")
            if isinstance(project, str):
                return project
    return "provider-project"


def network_key(index: _Index, value: Any, project: str) -> str:
    """A network reference, URL or name -> "project/network", the inventory's network key."""
    if isinstance(value, Unknown):
        r = index.find(value, "google_compute_network")
        if r is not None:
            return _own_network_key(r, project)
        return value.text()
    text = _text(value)
    match = _NETWORK_PATH.search(text)
    if match:
        return f"{match['project']}/{match['network']}"
    return f"{project}/{text}" if text else ""


def _own_network_key(r: Resource, project: str) -> str:
    own = r.get("project")
    return f"{own if isinstance(own, str) else project}/{_text(r.get('name')) or r.address}"


def _gcp(index: _Index, subjects: dict[str, Subject], names: dict[str, str]) -> GcpProject | None:
    wanted = (
        "google_compute_ha_vpn_gateway",
        "google_compute_external_vpn_gateway",
        "google_compute_vpn_tunnel",
        "google_compute_router",
        "google_compute_network",
        "google_dns_managed_zone",
    )
    if not any(index.of(t) for t in wanted):
        return None
    project = _project(index)

    def subject(obj: str, r: Resource, kind: str, line_arg: str = "", **extra: Any) -> Subject:
        s = Subject(r.address, r.file, r.line_of(line_arg) if line_arg else r.line, kind, r, **extra)
        subjects[f"{GCP_PROJECT}:{obj}"] = s
        names[f"{GCP_PROJECT}:{obj}"] = r.address
        return s

    gateways = []
    for r in index.of("google_compute_ha_vpn_gateway"):
        vpn_interfaces = sorted(r.blocks("vpn_interfaces"), key=lambda b: _int(b.get("id")) or 0)
        if not vpn_interfaces:  # always two, their addresses generated at apply
            vpn_interfaces = [
                {"id": i, "ip_address": Unknown(f"{r.address}.vpn_interfaces[{i}].ip_address")} for i in (0, 1)
            ]
        ips = tuple(_text(b.get("ip_address")) for b in vpn_interfaces)
        gateways.append(HaGateway(r.address, network_key(index, r.get("network"), project), ips))
        ha = subject(f"HA VPN gateway {r.address}", r, "ha")
        if not index.of("aws_vpn_connection"):
            ha.unknown["connections"] = (
                "the AWS VPN connections are not in these files (give both configurations: --terraform AWS_DIR GCP_DIR)"
            )

    externals = []
    for r in index.of("google_compute_external_vpn_gateway"):
        blocks = r.blocks("interface")
        ext_interfaces = tuple((_iface_id(b, i), _text(b.get("ip_address"))) for i, b in enumerate(blocks))
        externals.append(ExternalGateway(r.address, _text(r.get("redundancy_type")), ext_interfaces))
        ext = subject(f"external VPN gateway {r.address}", r, "external", "redundancy_type")
        if isinstance(r.values.get("redundancy_type"), Unknown):
            ext.unknown["redundancy_type"] = "redundancy_type is unknown before apply"
        for iface_id, _ip in ext_interfaces:
            s = subject(f"external VPN gateway {r.address} interface {iface_id}", r, "external_interface", "interface")
            s.tunnel = iface_id
            raw = next((b.get("ip_address") for b in blocks if _int(b.get("id")) == iface_id), None)
            if isinstance(raw, Unknown) and raw.opaque:
                s.unknown["ip"] = f"interface {iface_id}'s ip_address cannot be known before apply"
            elif isinstance(raw, str):
                s.unknown["ip_literal"] = f"interface {iface_id}'s ip_address is hard-coded as {raw}"

    routers_by_addr: dict[str, Resource] = {r.address: r for r in index.of("google_compute_router")}
    tunnels = []
    for r in index.of("google_compute_vpn_tunnel"):
        gw = index.find(r.values.get("vpn_gateway"), "google_compute_ha_vpn_gateway", r)
        ext_r = index.find(r.values.get("peer_external_gateway"), "google_compute_external_vpn_gateway", r)
        router = index.find(r.values.get("router"), "google_compute_router", r)
        peer_if = _int(r.get("peer_external_gateway_interface"))
        peer_ip = _text(r.get("peer_ip"))
        if ext_r is not None:
            for i, b in enumerate(ext_r.blocks("interface")):
                if _iface_id(b, i) == (peer_if or 0):
                    peer_ip = _text(b.get("ip_address"))
        tunnels.append(
            GcpTunnel(
                name=r.address,
                gateway=gw.address if gw else _text(r.get("vpn_gateway")),
                gateway_interface=_int(r.get("vpn_gateway_interface")),
                peer_external_gateway=ext_r.address if ext_r else (_text(r.get("peer_external_gateway")) or None),
                peer_interface=peer_if,
                router=router.address if router else (_text(r.get("router")) or None),
                peer_ip=peer_ip,
                ike_version=_int(r.get("ike_version")) or 2,
            )
        )
        subject(f"VPN tunnel {r.address}", r, "gcp_tunnel")

    # Who links to whom, resolved once: interface -> (router, tunnel), peer -> (router, interface).
    iface_links = {
        i.address: (
            index.find(i.values.get("router"), "google_compute_router", i),
            index.find(i.values.get("vpn_tunnel"), "google_compute_vpn_tunnel", i),
        )
        for i in index.of("google_compute_router_interface")
    }
    peer_links = {
        p.address: (
            index.find(p.values.get("router"), "google_compute_router", p),
            index.find(p.values.get("interface"), "google_compute_router_interface", p),
        )
        for p in index.of("google_compute_router_peer")
    }
    iface_of_tunnel = {t.address: index.by_address[i] for i, (_, t) in iface_links.items() if t is not None}
    peer_of_iface = {i.address: index.by_address[p] for p, (_, i) in peer_links.items() if i is not None}
    routers = []
    for r in routers_by_addr.values():
        bgp = (r.blocks("bgp") or [{}])[0]
        ranges = tuple(_text(b.get("range")) for b in bgp.get("advertised_ip_ranges") or [] if isinstance(b, dict))
        interfaces: list[RouterInterface] = []
        peers: list[RouterPeer] = []
        for iface in index.of("google_compute_router_interface"):
            router_r, tunnel = iface_links[iface.address]
            if router_r is not r:
                continue
            linked = tunnel.address if tunnel else _text(iface.get("vpn_tunnel"))
            interfaces.append(RouterInterface(iface.address, _text(iface.get("ip_range")), linked))
        for peer in index.of("google_compute_router_peer"):
            router_r, iface_r = peer_links[peer.address]
            if router_r is not r:
                continue
            iface_addr = iface_r.address if iface_r else _text(peer.get("interface"))
            peers.append(
                RouterPeer(peer.address, iface_addr, _text(peer.get("ip_address")), _text(peer.get("peer_ip_address")))
            )
        routers.append(
            CloudRouter(
                name=r.address,
                network=network_key(index, r.get("network"), project),
                advertise_mode=_text(bgp.get("advertise_mode")) or "DEFAULT",
                advertised_groups=_strs(bgp.get("advertised_groups")),
                advertised_ranges=ranges,
                interfaces=tuple(interfaces),
                peers=tuple(peers),
            )
        )
        s = subject(f"Cloud Router {r.address}", r, "router", "bgp")
        if isinstance(bgp.get("advertised_ip_ranges"), Unknown) or any(not isinstance(x, str) for x in ranges):
            s.unknown["advertised"] = "the advertised ranges are unknown before apply"
        for t in index.of("google_compute_vpn_tunnel"):
            rs = subject(f"Cloud Router {r.address} tunnel {t.address}", r, "router_tunnel", "bgp")
            rs.related["tunnel"] = t
            linked_iface = iface_of_tunnel.get(t.address)
            if linked_iface is not None:
                rs.related["interface"] = linked_iface
                if linked_iface.address in peer_of_iface:
                    rs.related["peer"] = peer_of_iface[linked_iface.address]
            for res, arg in (
                (rs.related.get("interface"), "ip_range"),
                (rs.related.get("peer"), "peer_ip_address"),
                (rs.related.get("peer"), "ip_address"),
            ):
                value = res.values.get(arg) if res is not None else None
                if isinstance(value, Unknown) and res is not None:
                    rs.unknown["router_addresses"] = f"{res.address} {arg} is unknown before apply"

    networks = _networks(index, project, subject)
    for network in networks:  # dns.peering-zone names a network without the project prefix
        subjects[f"network {network.key}"] = subjects[f"{GCP_PROJECT}:network {network.key}"]
    zones = []
    for r in index.of("google_dns_managed_zone"):
        visibility = (r.blocks("private_visibility_config") or [{}])[0]
        nets = tuple(
            network_key(index, n.get("network_url"), project)
            for n in visibility.get("networks") or []
            if isinstance(n, dict)
        )
        forwarding = r.blocks("forwarding_config")
        peering = r.blocks("peering_config")
        target = None
        if peering:
            target_blocks = peering[0].get("target_network") or []
            if target_blocks and isinstance(target_blocks[0], dict):
                target = network_key(index, target_blocks[0].get("network_url"), project)
        kind = (
            "forwarding"
            if forwarding
            else "peering"
            if peering
            else ("private" if r.get("visibility") == "private" else "public")
        )
        servers = tuple(
            _text(s.get("ipv4_address"))
            for f in forwarding
            for s in f.get("target_name_servers") or []
            if isinstance(s, dict)
        )
        zones.append(DnsZone(r.address, _text(r.get("dns_name")), kind, nets, target, servers))
        subject(r.address, r, "zone")
        names[f"{GCP_PROJECT}:{r.address}"] = r.address
    return GcpProject(
        name=GCP_PROJECT,
        project=project,
        region="",
        ha_gateways=tuple(gateways),
        external_gateways=tuple(externals),
        tunnels=tuple(tunnels),
        routers=tuple(routers),
        networks=networks,
        dns_zones=tuple(zones),
    )


def _networks(index: _Index, project: str, subject: Any) -> tuple[Network, ...]:
    out = []
    for r in index.of("google_compute_network"):
        key = _own_network_key(r, project)
        ranges: list[str] = []
        for sub in index.of("google_compute_subnetwork"):
            if network_key(index, sub.values.get("network"), project) != key:
                continue
            if isinstance(sub.get("ip_cidr_range"), str):
                ranges.append(sub.get("ip_cidr_range"))
            for sec in sub.blocks("secondary_ip_range"):
                if isinstance(sec.get("ip_cidr_range"), str):
                    ranges.append(sec["ip_cidr_range"])
        peerings = []
        for p in index.of("google_compute_network_peering"):
            if network_key(index, p.values.get("network"), project) != key:
                continue
            peer_key = network_key(index, p.values.get("peer_network"), project)
            peerings.append(
                Peering(
                    p.address,
                    peer_key,
                    "ACTIVE",
                    p.get("export_custom_routes") is True,
                    p.get("import_custom_routes") is True,
                )
            )
            subject(f"network peering {key} -> {peer_key}", p, "peering")
        out.append(Network(key, tuple(sorted(ranges)), tuple(peerings)))
        subject(f"network {key}", r, "network")
    return tuple(out)


# -- AWS ------------------------------------------------------------------------------------


def tunnel_options(r: Resource, n: int) -> tuple[TunnelOptions, list[str]]:
    values: dict[str, tuple[Any, ...]] = {}
    unknown = []
    for key in OPTION_KEYS:
        arg = f"tunnel{n}_{OPTION_ARGS[key]}"
        raw = r.values.get(arg)
        if raw is None:
            values[key] = ()
        elif isinstance(raw, list) and all(not isinstance(v, Unknown) for v in raw):
            values[key] = tuple(int(v) if key.endswith("_dh") else str(v) for v in raw)
        else:
            values[key] = ()
            unknown.append(arg)
    return TunnelOptions(**values), unknown


def _aws(
    index: _Index, subjects: dict[str, Subject], names: dict[str, str], gcp: GcpProject | None
) -> AwsAccount | None:
    conns_r = index.of("aws_vpn_connection")
    if not conns_r:
        return None
    ha_known = gcp is not None and all(not ip.startswith("(") for g in gcp.ha_gateways for ip in g.interfaces)
    connections = []
    for r in conns_r:
        cgw = index.find(r.values.get("customer_gateway_id"), "aws_customer_gateway", r)
        cgw_ip = cgw.values.get("ip_address") if cgw else None
        tgw_value = r.values.get("transit_gateway_id")
        tunnels = []
        for n in (1, 2):
            options, unknown_opts = tunnel_options(r, n)
            cidr = r.values.get(f"tunnel{n}_inside_cidr")
            outside = (
                _text(r.values.get(f"tunnel{n}_address")) or Unknown(f"{r.address}.tunnel{n}_address", True).text()
            )
            tunnel = AwsTunnel(outside, cidr if isinstance(cidr, str) else None, options=options)
            tunnels.append(tunnel)
            s = Subject(r.address, r.file, r.line_of(f"tunnel{n}_inside_cidr"), "tunnel", r, tunnel=n)
            if isinstance(cidr, Unknown):
                s.unknown["inside_cidr"] = f"tunnel{n}_inside_cidr is unknown before apply"
            elif cidr is None:
                s.unknown["inside_cidr"] = f"tunnel{n}_inside_cidr is unset, {AWS_PICKS}"
            if unknown_opts:
                s.unknown["options"] = f"{', '.join(unknown_opts)} unknown before apply"
            key = f"{AWS_ACCOUNT}:{r.address} tunnel {outside}"
            subjects[key] = s
            names[key] = f"{r.address} tunnel{n}"
        attachment = None
        if tgw_value is not None:
            attachment = (
                _text(r.values.get("transit_gateway_attachment_id"))
                or Unknown(f"{r.address}.transit_gateway_attachment_id").text()
            )
        conn = AwsConnection(
            id=r.address,
            customer_gateway_id=cgw.address if cgw else _text(r.values.get("customer_gateway_id")),
            customer_gateway_ip=_text(cgw_ip) if cgw else Unknown().text(),
            transit_gateway_id=_text(tgw_value) or None,
            attachment_id=attachment,
            tunnels=tuple(tunnels),
        )
        connections.append(conn)
        s = Subject(r.address, r.file, r.line_of("customer_gateway_id"), "connection", r)
        if cgw is not None:
            s.related["customer_gateway"] = cgw
        if cgw is None:
            s.unknown["customer_gateway_ip"] = "its customer gateway is not in these files"
        elif isinstance(cgw_ip, Unknown) and cgw_ip.opaque:
            s.unknown["customer_gateway_ip"] = f"{cgw.address} ip_address cannot be known before apply"
        elif isinstance(cgw_ip, str) and not ha_known:
            s.unknown["customer_gateway_ip"] = (
                f"{cgw.address} ip_address is hard-coded as {cgw_ip}; the HA VPN gateway's addresses are only "
                "known after apply"
            )
        if tgw_value is not None and index.find(tgw_value, "aws_ec2_transit_gateway") is None:
            s.unknown["tgw"] = "its transit gateway is not in these files (its default route table is unknown)"
        subjects[f"{AWS_ACCOUNT}:{r.address}"] = s
        names[f"{AWS_ACCOUNT}:{r.address}"] = r.address
    tables = _route_tables(index, connections, gcp, subjects, names)
    region = ""
    return AwsAccount(AWS_ACCOUNT, region, tuple(connections), tables)


def _route_tables(
    index: _Index,
    connections: list[AwsConnection],
    gcp: GcpProject | None,
    subjects: dict[str, Subject],
    names: dict[str, str],
) -> tuple[TgwRouteTable, ...]:
    """TGW route tables: declared ones and each declared TGW's default table, with predicted routes.

    Propagated routes are predicted from what the Cloud Routers advertise (BGP carries them once the
    attachment propagates into the table); static routes come from aws_ec2_transit_gateway_route.
    """
    advertised: list[str] = []
    if gcp is not None:
        hub_subnets = {n.key: n.subnet_ranges for n in gcp.networks}
        for router in gcp.routers:
            if router.advertise_mode == "CUSTOM":
                advertised.extend(router.advertised_ranges)
            if router.advertise_mode != "CUSTOM" or "ALL_SUBNETS" in router.advertised_groups:
                advertised.extend(hub_subnets.get(router.network, ()))
    vpn_attachments = {c.attachment_id for c in connections if c.attachment_id}
    tables: list[TgwRouteTable] = []

    def routes_for(table_match: Any, propagations: tuple[str, ...]) -> tuple[TgwRoute, ...]:
        routes = [
            TgwRoute(p, "propagated", "active", (a,)) for a in propagations if a in vpn_attachments for p in advertised
        ]
        for route in index.of("aws_ec2_transit_gateway_route"):
            if table_match(route.values.get("transit_gateway_route_table_id")):
                state = "blackhole" if route.get("blackhole") is True else "active"
                attachment = _text(route.values.get("transit_gateway_attachment_id"))
                routes.append(TgwRoute(_text(route.get("destination_cidr_block")), "static", state, (attachment,)))
        return tuple(routes)

    for r in index.of("aws_ec2_transit_gateway_route_table"):

        def match(value: Any, r: Resource = r) -> bool:
            return index.find(value, "aws_ec2_transit_gateway_route_table") is r

        assoc = tuple(
            _text(a.values.get("transit_gateway_attachment_id"))
            for a in index.of("aws_ec2_transit_gateway_route_table_association")
            if match(a.values.get("transit_gateway_route_table_id"))
        )
        prop = tuple(
            _text(a.values.get("transit_gateway_attachment_id"))
            for a in index.of("aws_ec2_transit_gateway_route_table_propagation")
            if match(a.values.get("transit_gateway_route_table_id"))
        )
        tgw = _text(r.values.get("transit_gateway_id"))
        tables.append(TgwRouteTable(r.address, tgw, routes_for(match, prop), assoc, prop))
        table_subject = Subject(r.address, r.file, r.line, "route_table", r)
        subjects[f"{AWS_ACCOUNT}:{r.address}"] = table_subject
        links = [
            a.values.get("transit_gateway_attachment_id")
            for kind in ("association", "propagation")
            for a in index.of(f"aws_ec2_transit_gateway_route_table_{kind}")
            if match(a.values.get("transit_gateway_route_table_id"))
        ]
        if any(isinstance(v, Unknown) and v.opaque for v in links):
            # e.g. a plan lists `aws_vpn_connection.vpn[count.index].transit_gateway_attachment_id` only as
            # "aws_vpn_connection.vpn": which attachment each one is cannot be told.
            reason = f"which VPN attachments {r.address}'s associations/propagations name is unknown before apply"
            table_subject.unknown["propagations"] = reason
            for key, subject in subjects.items():
                if subject.kind == "connection" and key.startswith(f"{AWS_ACCOUNT}:"):
                    subject.unknown.setdefault("tgw", reason)
        names[f"{AWS_ACCOUNT}:{r.address}"] = r.address
    for tgw_r in index.of("aws_ec2_transit_gateway"):
        tgw_id = _text(tgw_r.values.get("id"))
        on_tgw = tuple(c.attachment_id for c in connections if c.attachment_id and c.transit_gateway_id == tgw_id)
        assoc_on = tgw_r.get("default_route_table_association", "enable") != "disable"
        prop_on = tgw_r.get("default_route_table_propagation", "enable") != "disable"
        if not (assoc_on or prop_on):
            continue
        table_id = f"{tgw_r.address}.association_default_route_table_id"
        default_ref = Unknown(table_id).text()

        def default_match(value: Any, table_id: str = table_id) -> bool:
            return isinstance(value, Unknown) and value.ref in (
                table_id,
                table_id.replace("association", "propagation"),
            )

        props = on_tgw if prop_on else ()
        tables.append(
            TgwRouteTable(default_ref, tgw_id, routes_for(default_match, props), on_tgw if assoc_on else (), props)
        )
        subjects[f"{AWS_ACCOUNT}:{default_ref}"] = Subject(tgw_r.address, tgw_r.file, tgw_r.line, "route_table", tgw_r)
        names[f"{AWS_ACCOUNT}:{default_ref}"] = f"{tgw_r.address} default route table"
    return tuple(tables)
