"""The audit rules: pure functions from an Inventory to findings, each with its one-sentence fix.

Rule ids are stable (they label `vpn_watchdog_audit_findings{rule}`); see RULES for the list.
No I/O, no clock, no cloud SDK; messages never carry secrets (the inventory holds none).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from watchdog.audit import sizes
from watchdog.audit.ciphers import GCP_FIRST_DH, GCP_SUPPORTED
from watchdog.audit.inventory import (
    OPTION_KEYS,
    AwsAccount,
    AwsConnection,
    AwsTunnel,
    CloudRouter,
    GcpProject,
    Inventory,
    Network,
)
from watchdog.audit.topology import Landing, Topology, build

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITIES = (ERROR, WARNING, INFO)

HA_TUNNEL_COUNT = "ha.tunnel-count"
HA_CHEAP_MODE = "ha.cheap-mode"
HA_CHEAP_CGW = "ha.cheap-mode-customer-gateway"
HA_REDUNDANCY_TYPE = "ha.redundancy-type"
HA_REDUNDANCY_MET = "ha.redundancy-not-met"
HA_TUNNEL_DOWN = "ha.tunnel-down"
WIRING_EXTERNAL_IP = "wiring.external-interface-ip"
WIRING_CGW_IP = "wiring.customer-gateway-ip"
WIRING_CGW_SHARED = "wiring.customer-gateway-shared"
WIRING_GATEWAY_INTERFACE = "wiring.tunnel-gateway-interface"
WIRING_PEER_SHARED = "wiring.peer-interface-shared"
INSIDE_CIDR = "inside.cidr-invalid"
INSIDE_DUPLICATE = "inside.cidr-duplicate"
INSIDE_ROUTER = "inside.router-mismatch"
INSIDE_ROUTER_RANGE = "inside.router-interface-no-range"
IPSEC_IKE_VERSION = "ipsec.ike-version"
IPSEC_SINGLE = "ipsec.single-transform"
IPSEC_UNSUPPORTED = "ipsec.unsupported-algorithm"
IPSEC_DH_FIRST = "ipsec.dh-gcp-first"
IPSEC_SIZE = "ipsec.message-size"
ROUTING_ADVERTISED = "routing.spoke-not-advertised"
ROUTING_PEERING = "routing.peering-custom-routes"
ROUTING_LEARNED = "routing.aws-not-learned"
ROUTING_LIMIT = "routing.route-limit"
ROUTING_TGW = "routing.tgw-association"
DNS_RETURN = "dns.return-route"
DNS_FORWARDING = "dns.forwarding-multiple-vpcs"
DNS_PEERING = "dns.peering-zone"

AWS_RESERVED = tuple(
    ipaddress.ip_network(c)
    for c in (
        "169.254.0.0/30",
        "169.254.1.0/30",
        "169.254.2.0/30",
        "169.254.3.0/30",
        "169.254.4.0/30",
        "169.254.5.0/30",
        "169.254.169.252/30",
    )
)
LINK_LOCAL = ipaddress.ip_network("169.254.0.0/16")
CLOUD_DNS_SOURCES = ipaddress.ip_network("35.199.192.0/19")
MAX_VPN_ROUTES = 100  # AWS: dynamic routes from a customer gateway per VPN connection; not raisable
ROUTE_LIMIT_WARN = 90
EXPECTED_REDUNDANCY = {4: "FOUR_IPS_REDUNDANCY", 2: "TWO_IPS_REDUNDANCY", 1: "SINGLE_IP_INTERNALLY_REDUNDANT"}
_SEVERITY_ORDER = {ERROR: 0, WARNING: 1, INFO: 2}


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    object: str
    message: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "object": self.object,
            "message": self.message,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class AuditResult:
    findings: tuple[Finding, ...]
    # Bytes left below the path MTU for the largest predicted IKE message, per AWS tunnel.
    ike_margins: dict[str, int]
    mtu: int

    def counts(self) -> Counter[tuple[str, str]]:
        return Counter((f.rule, f.severity) for f in self.findings)

    @property
    def has_errors(self) -> bool:
        return any(f.severity == ERROR for f in self.findings)


def audit(inventory: Inventory) -> AuditResult:
    topo = build(inventory)
    findings: list[Finding] = []
    for check in CHECKS:
        findings.extend(check(inventory, topo))
    margins = {
        _tunnel_name(a, c, t): sizes.largest(t.options).margin(inventory.mtu) for a, c, t in topo.audited_tunnels()
    }
    unique = sorted(set(findings), key=lambda f: (_SEVERITY_ORDER[f.severity], f.rule, f.object, f.message))
    return AuditResult(tuple(unique), margins, inventory.mtu)


# -- names ----------------------------------------------------------------------------------


def _tunnel_name(account: AwsAccount, conn: AwsConnection, tunnel: AwsTunnel) -> str:
    return f"{account.name}:{conn.id} tunnel {tunnel.outside_ip}"


def _conn_name(account: AwsAccount, conn: AwsConnection) -> str:
    return f"{account.name}:{conn.id}"


def _gcp(project: GcpProject, kind: str, name: str) -> str:
    return f"{project.name}:{kind} {name}"


# -- HA shape -------------------------------------------------------------------------------


def check_ha_shape(inv: Inventory, topo: Topology) -> Iterator[Finding]:
    for project in inv.gcp:
        for ext in project.external_gateways:
            expected = EXPECTED_REDUNDANCY.get(len(ext.interfaces))
            if expected and ext.redundancy_type != expected:
                yield Finding(
                    HA_REDUNDANCY_TYPE,
                    ERROR,
                    _gcp(project, "external VPN gateway", ext.name),
                    f"redundancyType is {ext.redundancy_type or 'unset'} but the gateway has "
                    f"{len(ext.interfaces)} interface(s), which needs {expected}",
                    f"Recreate the external VPN gateway with redundancy_type = {expected} "
                    "(one interface per AWS tunnel).",
                )
    for landing in topo.landings:
        project, gateway = landing.project, landing.gateway
        gw_name = _gcp(project, "HA VPN gateway", gateway.name)
        n_tunnels, n_conns = len(landing.gcp_tunnels), len(landing.connections)
        if landing.cheap:
            yield Finding(
                HA_CHEAP_MODE,
                INFO,
                gw_name,
                "cheap mode: 1 AWS connection, 1 external interface, 1 tunnel; no HA SLA, and the unused "
                "AWS tunnel shows DOWN by design",
                "Nothing to do for a test environment; for production build 4 tunnels over 2 AWS connections.",
            )
            for account, conn in landing.connections:
                first = gateway.interfaces[0] if gateway.interfaces else ""
                if conn.customer_gateway_ip in gateway.interfaces and conn.customer_gateway_ip != first:
                    yield Finding(
                        HA_CHEAP_CGW,
                        ERROR,
                        _conn_name(account, conn),
                        f"customer gateway {conn.customer_gateway_id} is {conn.customer_gateway_ip}, HA VPN "
                        f"interface {gateway.interfaces.index(conn.customer_gateway_ip)}; the single tunnel "
                        f"uses interface 0 ({first})",
                        f"Point the customer gateway at the HA VPN gateway's first interface IP {first}.",
                    )
            continue
        full = (
            n_conns == 2
            and n_tunnels == 4
            and all(len(c.tunnels) == 2 for _, c in landing.connections)
            and landing.external is not None
            and len(landing.external.interfaces) == 4
        )
        if not full:
            yield Finding(
                HA_TUNNEL_COUNT,
                WARNING,
                gw_name,
                f"{n_tunnels} GCP tunnel(s) over {n_conns} AWS connection(s); GCP's HA SLA needs 4 tunnels "
                "over 2 AWS connections",
                "Add a second AWS VPN connection and terminate all 4 AWS tunnels on one FOUR_IPS_REDUNDANCY "
                "external gateway (HA interfaces 0 and 1, two tunnels each).",
            )
        peer = landing.external.name if landing.external else None
        for peer_name, state in gateway.redundancy:
            if peer is not None and peer_name == peer and state != "CONNECTION_REDUNDANCY_MET":
                yield Finding(
                    HA_REDUNDANCY_MET,
                    ERROR,
                    gw_name,
                    f"vpnGateways.getStatus reports {state} toward {peer_name}",
                    "Create one tunnel per external interface, spread over both HA VPN interfaces "
                    "(if0 -> peer 0 and 1, if1 -> peer 2 and 3).",
                )


def check_tunnel_state(inv: Inventory, topo: Topology) -> Iterator[Finding]:
    for account, conn, tunnel in topo.audited_tunnels():
        if tunnel.status != "UP":
            yield Finding(
                HA_TUNNEL_DOWN,
                WARNING,
                _tunnel_name(account, conn, tunnel),
                f"AWS reports the tunnel {tunnel.status}",
                "Check the GCP tunnel's status and the IKE logs on both sides (options, PSK, addresses).",
            )
    for landing in topo.landings:
        for gcp_tunnel in landing.gcp_tunnels:
            if gcp_tunnel.status != "ESTABLISHED":
                yield Finding(
                    HA_TUNNEL_DOWN,
                    WARNING,
                    _gcp(landing.project, "VPN tunnel", gcp_tunnel.name),
                    f"GCP reports the tunnel {gcp_tunnel.status}",
                    "Check the tunnel's detailedStatus and the AWS tunnel options and outside IP it points at.",
                )


# -- address wiring -------------------------------------------------------------------------


def check_wiring(inv: Inventory, topo: Topology) -> Iterator[Finding]:
    for landing in topo.landings:
        project, gateway, ext = landing.project, landing.gateway, landing.external
        if ext is not None and landing.connections:
            tpc = landing.tunnels_per_connection
            for index, (iface_id, ip) in enumerate(sorted(ext.interfaces)):
                expected = landing.expected_ip(index)
                if expected is not None and ip != expected:
                    conn_index, tunnel_index = divmod(index, tpc)
                    conn = landing.connections[conn_index][1]
                    yield Finding(
                        WIRING_EXTERNAL_IP,
                        ERROR,
                        _gcp(project, "external VPN gateway", f"{ext.name} interface {iface_id}"),
                        f"interface {iface_id} is {ip} but should be {conn.id} tunnel{tunnel_index + 1} outside "
                        f"address {expected}",
                        f"Set interface {iface_id} to {expected} (take it from the connection's "
                        f"tunnel{tunnel_index + 1}_address instead of hard-coding it).",
                    )
        seen: dict[str, str] = {}
        for account, conn in landing.connections:
            if conn.customer_gateway_ip not in gateway.interfaces:
                yield Finding(
                    WIRING_CGW_IP,
                    ERROR,
                    _conn_name(account, conn),
                    f"customer gateway {conn.customer_gateway_id} is {conn.customer_gateway_ip}, not an interface "
                    f"IP of HA VPN gateway {gateway.name} ({', '.join(gateway.interfaces)})",
                    "Recreate the customer gateway with the HA VPN gateway's interface IP "
                    "(vpn_interfaces[i].ip_address) and attach the connection to it.",
                )
            other = seen.get(conn.customer_gateway_id)
            if other is not None:
                yield Finding(
                    WIRING_CGW_SHARED,
                    ERROR,
                    _conn_name(account, conn),
                    f"shares customer gateway {conn.customer_gateway_id} with {other}",
                    "Give each AWS VPN connection its own customer gateway, one per HA VPN interface IP.",
                )
            seen[conn.customer_gateway_id] = conn.id
        yield from _tunnel_interfaces(landing)


def _tunnel_interfaces(landing: Landing) -> Iterator[Finding]:
    """Each GCP tunnel leaves from the HA interface AWS expects, toward an external interface of its own."""
    project, gateway = landing.project, landing.gateway
    ext_ips = dict(landing.external.interfaces) if landing.external else {}
    by_ip = {t.outside_ip: (c, t) for _, c in landing.connections for t in c.tunnels}
    cgw_uses = Counter(c.customer_gateway_id for _, c in landing.connections)
    first_on: dict[int, str] = {}
    for gcp_tunnel in landing.gcp_tunnels:
        name = _gcp(project, "VPN tunnel", gcp_tunnel.name)
        peer_if = gcp_tunnel.peer_interface
        if peer_if is not None and gcp_tunnel.peer_external_gateway:
            other = first_on.setdefault(peer_if, gcp_tunnel.name)
            if other != gcp_tunnel.name:
                free = sorted(set(ext_ips) - {t.peer_interface for t in landing.gcp_tunnels})
                yield Finding(
                    WIRING_PEER_SHARED,
                    ERROR,
                    name,
                    f"uses external gateway interface {peer_if}, like tunnel {other}: two tunnels toward one AWS "
                    "tunnel address, and the AWS tunnel of another interface gets none",
                    f"Point the tunnel at an external interface of its own"
                    f"{f' (interface {free[0]} has no tunnel)' if free else ''}: tunnel i -> interface i.",
                )
        peer_ip = ext_ips.get(peer_if or 0, gcp_tunnel.peer_ip)
        found = by_ip.get(peer_ip)
        if found is None or gcp_tunnel.gateway_interface is None:
            continue
        expected_ip = landing.expected_ip(_position(landing, peer_if or 0))
        if expected_ip is not None and expected_ip != peer_ip:
            continue  # wiring.external-interface-ip is the cause; fix that first
        conn, aws_tunnel = found
        if conn.customer_gateway_ip not in gateway.interfaces or cgw_uses[conn.customer_gateway_id] > 1:
            continue  # wiring.customer-gateway-ip / -shared say so
        expected = gateway.interfaces.index(conn.customer_gateway_ip)
        if landing.cheap and expected != 0:
            continue  # ha.cheap-mode-customer-gateway says so
        if gcp_tunnel.gateway_interface != expected:
            yield Finding(
                WIRING_GATEWAY_INTERFACE,
                ERROR,
                name,
                f"leaves from HA VPN interface {gcp_tunnel.gateway_interface}, but its peer, AWS tunnel "
                f"{aws_tunnel.outside_ip} of {conn.id}, expects IKE from its customer gateway "
                f"{conn.customer_gateway_ip}, HA VPN interface {expected}",
                f"Set the tunnel's vpnGatewayInterface to {expected} (the interface whose IP is the connection's "
                "customer gateway); the tunnel must be recreated.",
            )


# -- inside CIDRs ---------------------------------------------------------------------------


def inside_cidr_problem(cidr: str | None) -> str | None:
    """Why an AWS TunnelInsideCidr is unusable, or None when it is fine."""
    if not cidr:
        return "no inside CIDR is set (AWS picks a random one, which can collide)"
    try:
        net = ipaddress.ip_network(cidr, strict=True)
    except ValueError:
        return f"{cidr} is not a valid network address"
    if net.version != 4 or net.prefixlen != 30:
        return f"{cidr} is not an IPv4 /30"
    if not net.subnet_of(LINK_LOCAL):  # type: ignore[arg-type]
        return f"{cidr} is outside 169.254.0.0/16"
    if net in AWS_RESERVED:
        return f"{cidr} is one of the ranges AWS reserves"
    return None


def check_inside(inv: Inventory, topo: Topology) -> Iterator[Finding]:
    for account, conn, tunnel in topo.audited_tunnels():
        problem = inside_cidr_problem(tunnel.inside_cidr)
        if problem:
            yield Finding(
                INSIDE_CIDR,
                ERROR,
                _tunnel_name(account, conn, tunnel),
                problem,
                "Set an explicit /30 from 169.254.0.0/16 outside 169.254.0.0-169.254.5.3 and 169.254.169.252/30, "
                "unique per GCP gateway.",
            )
    # Uniqueness: per GCP gateway when landings are known, else per transit gateway.
    groups: dict[str, list[tuple[AwsAccount, AwsConnection, AwsTunnel]]] = {}
    if topo.landings:
        for landing in topo.landings:
            key = f"{landing.project.name}/{landing.gateway.name}"
            groups.setdefault(key, []).extend((a, c, t) for a, c in landing.connections for t in c.tunnels)
    else:
        for account, conn in topo.gcp_facing:
            key = f"{account.name}/{conn.transit_gateway_id or conn.id}"
            groups.setdefault(key, []).extend((account, conn, t) for t in conn.tunnels)
    for members in groups.values():
        by_cidr: dict[str, list[str]] = {}
        for account, conn, tunnel in members:
            if tunnel.inside_cidr:
                by_cidr.setdefault(tunnel.inside_cidr, []).append(_tunnel_name(account, conn, tunnel))
        for cidr, names in by_cidr.items():
            for name in names[1:]:
                yield Finding(
                    INSIDE_DUPLICATE,
                    ERROR,
                    name,
                    f"inside CIDR {cidr} is also used by {names[0]}",
                    "Give every tunnel that lands on the same GCP gateway its own /30 inside CIDR.",
                )
    yield from _router_inside(topo)


def _router_inside(topo: Topology) -> Iterator[Finding]:
    for landing in topo.landings:
        project = landing.project
        aws_by_ip = {t.outside_ip: t for _, c in landing.connections for t in c.tunnels}
        cidr_uses = Counter(t.inside_cidr for t in aws_by_ip.values())
        ext_ips = dict(landing.external.interfaces) if landing.external else {}
        routers = {r.name: r for r in project.routers}
        seen_peers: set[int | None] = set()
        for gcp_tunnel in landing.gcp_tunnels:
            peer_ip = ext_ips.get(gcp_tunnel.peer_interface or 0, gcp_tunnel.peer_ip)
            yield from _interface_without_range(landing, routers.get(gcp_tunnel.router or ""), gcp_tunnel.name)
            if gcp_tunnel.peer_interface in seen_peers and gcp_tunnel.peer_interface is not None:
                continue  # wiring.peer-interface-shared is the cause; fix that first
            seen_peers.add(gcp_tunnel.peer_interface)
            expected = landing.expected_ip(_position(landing, gcp_tunnel.peer_interface or 0))
            if expected is not None and expected != peer_ip:
                continue  # wiring.external-interface-ip is the cause; fix that first
            aws_tunnel = aws_by_ip.get(peer_ip)
            if aws_tunnel is None or inside_cidr_problem(aws_tunnel.inside_cidr):
                continue
            if cidr_uses[aws_tunnel.inside_cidr or ""] > 1:
                continue  # inside.cidr-duplicate comes first; the router cannot match both
            hosts = aws_tunnel.inside_hosts()
            router = routers.get(gcp_tunnel.router or "")
            if hosts is None or router is None:
                continue
            aws_ip, customer_ip = hosts
            problems = _router_problems(router, gcp_tunnel.name, aws_ip, customer_ip)
            if problems:
                yield Finding(
                    INSIDE_ROUTER,
                    ERROR,
                    _gcp(project, "Cloud Router", f"{router.name} tunnel {gcp_tunnel.name}"),
                    f"AWS tunnel {aws_tunnel.outside_ip} uses {aws_tunnel.inside_cidr} (AWS {aws_ip}, GCP "
                    f"{customer_ip}) but " + "; ".join(problems),
                    f"Set the router interface ip_range to {customer_ip}/30 and the BGP peer's "
                    f"peer_ip_address to {aws_ip}.",
                )


def _interface_without_range(landing: Landing, router: CloudRouter | None, tunnel: str) -> Iterator[Finding]:
    """A BGP interface with no inside address is wrong whatever inside CIDR AWS uses (or picks at apply)."""
    iface = next((i for i in router.interfaces if i.linked_tunnel == tunnel), None) if router else None
    if router is None or iface is None or iface.ip_range:
        return
    yield Finding(
        INSIDE_ROUTER_RANGE,
        ERROR,
        _gcp(landing.project, "Cloud Router", f"{router.name} tunnel {tunnel}"),
        f"interface {iface.name} (tunnel {tunnel}) has no ipRange: its BGP session has no inside address, "
        "whatever inside CIDR the AWS tunnel uses",
        "Set the router interface's ipRange to the GCP side of the AWS tunnel's inside CIDR (its second host, "
        "as a /30).",
    )


def _position(landing: Landing, interface_id: int) -> int:
    ids = sorted(i for i, _ in landing.external.interfaces) if landing.external else []
    return ids.index(interface_id) if interface_id in ids else interface_id


def _router_problems(router: CloudRouter, tunnel: str, aws_ip: str, customer_ip: str) -> list[str]:
    iface = next((i for i in router.interfaces if i.linked_tunnel == tunnel), None)
    if iface is None:
        return [f"no router interface is linked to tunnel {tunnel}"]
    problems = []
    if iface.ip_range and iface.ip_range != f"{customer_ip}/30":  # unset: inside.router-interface-no-range
        problems.append(f"interface {iface.name} ipRange is {iface.ip_range or 'unset'}")
    peer = next((p for p in router.peers if p.interface == iface.name), None)
    if peer is None:
        problems.append(f"no BGP peer uses interface {iface.name}")
        return problems
    if peer.peer_ip_address != aws_ip:
        problems.append(f"BGP peer {peer.name} peerIpAddress is {peer.peer_ip_address or 'unset'}")
    if peer.ip_address and peer.ip_address != customer_ip:
        problems.append(f"BGP peer {peer.name} ipAddress is {peer.ip_address}")
    return problems


# -- IPsec options --------------------------------------------------------------------------


def _label(key: str) -> str:
    return key.replace("_", " ").replace("phase", "phase ").replace("dh", "DH groups")


def check_ipsec(inv: Inventory, topo: Topology) -> Iterator[Finding]:
    for account, conn, tunnel in topo.audited_tunnels():
        name, opts = _tunnel_name(account, conn, tunnel), tunnel.options
        if opts.ike_versions != ("ikev2",):
            offered = ", ".join(opts.ike_versions) or "ikev1, ikev2 (AWS default)"
            # IKEv2 among others: Cloud VPN negotiates IKEv2 and the tunnel comes up, IKEv1 just stays allowed.
            with_v2 = not opts.ike_versions or "ikev2" in opts.ike_versions
            yield Finding(
                IPSEC_IKE_VERSION,
                WARNING if with_v2 else ERROR,
                name,
                f"IKE versions offered: {offered}"
                + (
                    "; Cloud VPN negotiates IKEv2, but IKEv1 stays allowed (Google recommends IKEv2 only)"
                    if with_v2
                    else "; Cloud VPN's HA tunnels speak IKEv2"
                ),
                "Allow IKEv2 only (IKEVersions [ikev2]); run `watchdog audit --fix-ipsec` for the exact call.",
            )
        several = []
        for key in OPTION_KEYS[1:]:
            values = getattr(opts, key)
            if len(values) != 1:
                several.append(f"{_label(key)}: {len(values) or 'all (AWS default)'}")
        biggest = sizes.largest(opts)
        margin = biggest.margin(inv.mtu)
        predicted = (
            f"predicted {biggest.exchange} of {biggest.ip_bytes} bytes on the wire ({biggest.proposals} "
            f"proposal(s), assuming one per combination) exceeds the path MTU {inv.mtu} by {-margin} bytes"
        )
        if several:
            # The lists are the cause of an oversized message too: one finding says both, not two.
            yield Finding(
                IPSEC_SINGLE,
                ERROR,
                name,
                "more than one value per list makes AWS's rekey proposals large enough to be IP-fragmented, "
                "which Cloud VPN drops (" + "; ".join(several) + ")" + (f"; {predicted}" if margin < 0 else ""),
                "Narrow every phase 1/phase 2 encryption, integrity and DH list to one GCP-supported value; "
                "run `watchdog audit --fix-ipsec`.",
            )
        unsupported = []
        for key in OPTION_KEYS[1:]:
            bad = [str(v) for v in getattr(opts, key) if v not in GCP_SUPPORTED[key]]
            if bad:
                unsupported.append(f"{_label(key)} {', '.join(bad)}")
        if unsupported:
            yield Finding(
                IPSEC_UNSUPPORTED,
                ERROR,
                name,
                "not in Cloud VPN's supported cipher table: " + "; ".join(unsupported),
                "Remove them (GCP has no phase 2 SHA2-384 and no DH 17, 35, 36, 37); run `watchdog audit --fix-ipsec`.",
            )
        missing = [
            _label(k) for k in ("phase1_dh", "phase2_dh") if getattr(opts, k) and GCP_FIRST_DH not in getattr(opts, k)
        ]
        if missing:
            yield Finding(
                IPSEC_DH_FIRST,
                ERROR,
                name,
                f"{' and '.join(missing)} do not include group {GCP_FIRST_DH}, the group Cloud VPN proposes "
                "first; the handshake can fail",
                f"Set Phase1DHGroupNumbers and Phase2DHGroupNumbers to [{GCP_FIRST_DH}].",
            )
        if margin < 0 and not several:  # one value per list and still too big (a small path MTU)
            yield Finding(
                IPSEC_SIZE,
                ERROR,
                name,
                f"{predicted}: it would be IP-fragmented and Cloud VPN would drop it",
                "Narrow the tunnel options to one value each (and a smaller DH group) so every IKE message "
                "fits in one packet.",
            )


# -- routing --------------------------------------------------------------------------------


def _covered(prefix: str, ranges: Iterable[str]) -> bool:
    try:
        net = ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        return False
    for candidate in ranges:
        try:
            other = ipaddress.ip_network(candidate, strict=False)
        except ValueError:
            continue
        if net.version == other.version and net.subnet_of(other):  # type: ignore[arg-type]
            return True
    return False


def _aws_routers(topo: Topology) -> Iterator[tuple[Landing, CloudRouter]]:
    seen: set[tuple[str, str]] = set()
    for landing in topo.landings:
        routers = {r.name: r for r in landing.project.routers}
        for gcp_tunnel in landing.gcp_tunnels:
            router = routers.get(gcp_tunnel.router or "")
            if router is not None and (landing.project.name, router.name) not in seen:
                seen.add((landing.project.name, router.name))
                yield landing, router


def _networks(inv: Inventory) -> dict[str, Network]:
    return {n.key: n for p in inv.gcp for n in p.networks}


def _advertised(router: CloudRouter, hub: Network | None) -> list[str]:
    """What the router sends AWS: custom ranges, plus the hub's own subnets in DEFAULT/ALL_SUBNETS."""
    ranges = list(router.advertised_ranges) if router.advertise_mode == "CUSTOM" else []
    if hub is not None and (router.advertise_mode != "CUSTOM" or "ALL_SUBNETS" in router.advertised_groups):
        ranges.extend(hub.subnet_ranges)
    return ranges


def check_routing(inv: Inventory, topo: Topology) -> Iterator[Finding]:
    networks = _networks(inv)
    for landing, router in _aws_routers(topo):
        project = landing.project
        hub_key = project.network_key(router.network)
        hub = networks.get(hub_key)
        advertised = _advertised(router, hub)
        router_name = _gcp(project, "Cloud Router", router.name)
        for peering in hub.peerings if hub else ():
            if peering.state != "ACTIVE":
                continue
            spoke = networks.get(peering.peer_network)
            if spoke is not None:
                missing = [r for r in spoke.subnet_ranges if not _covered(r, advertised)]
                if missing:
                    yield Finding(
                        ROUTING_ADVERTISED,
                        ERROR,
                        router_name,
                        f"spoke VPC {spoke.key} (peered to {hub_key}) has subnet ranges the router does not "
                        f"advertise to AWS: {', '.join(missing)}; AWS/on-prem cannot reach them",
                        "Set advertise_mode CUSTOM (keep ALL_SUBNETS) and add the spoke ranges to "
                        "advertised_ip_ranges on the Cloud Router.",
                    )
            if not peering.export_custom_routes:
                yield Finding(
                    ROUTING_PEERING,
                    ERROR,
                    _gcp(project, "network peering", f"{hub_key} -> {peering.peer_network}"),
                    "the hub does not export custom routes, so BGP-learned AWS routes never reach the spoke",
                    "Set export_custom_routes = true on the hub side of the peering.",
                )
            back = next((p for p in spoke.peerings if p.peer_network == hub_key), None) if spoke else None
            if back is not None and not back.import_custom_routes:
                yield Finding(
                    ROUTING_PEERING,
                    ERROR,
                    _gcp(project, "network peering", f"{spoke.key} -> {hub_key}"),  # type: ignore[union-attr]
                    "the spoke does not import custom routes, so BGP-learned AWS routes never reach it",
                    "Set import_custom_routes = true on the spoke side of the peering.",
                )
        if len(advertised) > MAX_VPN_ROUTES:
            yield Finding(
                ROUTING_LIMIT,
                ERROR,
                router_name,
                f"advertises {len(advertised)} prefixes; AWS accepts at most {MAX_VPN_ROUTES} per VPN "
                "connection and drops the BGP session beyond that",
                "Summarise the advertised ranges below 100 prefixes (the AWS quota cannot be raised).",
            )
        yield from _learned(landing, router, advertised)


def _learned(landing: Landing, router: CloudRouter, advertised: list[str]) -> Iterator[Finding]:
    if not router.advertise_mode == "CUSTOM" or not landing.connections:
        return
    if not any(t.status == "UP" for _, c in landing.connections for t in c.tunnels):
        return  # nothing can be learned with every tunnel down; ha.tunnel-down says so
    attachments = {c.attachment_id for _, c in landing.connections if c.attachment_id}
    accounts = {a.name: a for a, _ in landing.connections}
    for account in accounts.values():
        if not account.route_tables:
            continue
        learned = [
            r.prefix
            for rt in account.route_tables
            for r in rt.routes
            if r.type == "propagated" and r.state == "active" and attachments & set(r.attachment_ids)
        ]
        missing = [p for p in router.advertised_ranges if not any(_same(p, q) for q in learned)]
        if missing:
            yield Finding(
                ROUTING_LEARNED,
                ERROR,
                _gcp(landing.project, "Cloud Router", router.name),
                f"advertised range(s) {', '.join(missing)} are not propagated routes from the VPN in "
                f"{account.name}'s transit gateway route tables",
                "Check the BGP sessions and that the VPN attachment propagates into the route table; a "
                "range AWS rejects shows in the tunnel's BGP log.",
            )


def _same(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_network(a, strict=False) == ipaddress.ip_network(b, strict=False)
    except ValueError:
        return False


def check_tgw(inv: Inventory, topo: Topology) -> Iterator[Finding]:
    for account, conn in topo.gcp_facing:
        name = _conn_name(account, conn)
        for tunnel in conn.tunnels:
            if tunnel.accepted_routes is not None and tunnel.accepted_routes >= ROUTE_LIMIT_WARN:
                yield Finding(
                    ROUTING_LIMIT,
                    ERROR if tunnel.accepted_routes >= MAX_VPN_ROUTES else WARNING,
                    _tunnel_name(account, conn, tunnel),
                    f"AWS accepted {tunnel.accepted_routes} routes; the limit is {MAX_VPN_ROUTES} per VPN connection",
                    "Summarise the ranges the Cloud Router advertises (the AWS quota cannot be raised).",
                )
        if not conn.transit_gateway_id or not account.route_tables:
            continue
        if not conn.attachment_id:
            yield Finding(
                ROUTING_TGW,
                ERROR,
                name,
                f"no transit gateway attachment found on {conn.transit_gateway_id}",
                "Check the VPN connection's transit gateway attachment state.",
            )
            continue
        intended = set(account.intended_route_tables)
        associated = [rt.id for rt in account.route_tables if conn.attachment_id in rt.associations]
        propagating = {rt.id for rt in account.route_tables if conn.attachment_id in rt.propagations}
        problems = []
        if not associated:
            problems.append("is not associated with any route table")
        elif intended and not set(associated) & intended:
            problems.append(f"is associated with {', '.join(associated)}, not {', '.join(sorted(intended))}")
        if intended and intended - propagating:
            problems.append(f"does not propagate to {', '.join(sorted(intended - propagating))}")
        elif not propagating:
            problems.append("does not propagate to any route table")
        if problems:
            target = ", ".join(sorted(intended)) or "the intended route table"
            yield Finding(
                ROUTING_TGW,
                ERROR,
                name,
                f"attachment {conn.attachment_id} " + " and ".join(problems),
                f"Associate the VPN attachment with {target} and enable its propagation there.",
            )


# -- DNS ------------------------------------------------------------------------------------


def check_dns(inv: Inventory, topo: Topology) -> Iterator[Finding]:
    forwarding = [(p, z) for p in inv.gcp for z in p.dns_zones if z.kind == "forwarding"]
    if not forwarding:
        return
    networks = sorted({n for _, z in forwarding for n in z.networks})
    if len(networks) > 1:
        zones = ", ".join(f"{p.name}:{z.name}" for p, z in forwarding)
        yield Finding(
            DNS_FORWARDING,
            ERROR,
            f"DNS forwarding zones {zones}",
            f"forwarding zones are visible to {len(networks)} VPCs ({', '.join(networks)}); Cloud DNS sends "
            "every forwarded query from 35.199.192.0/19, so replies can only route back into one of them",
            "Keep the forwarding zones in the hub VPC only and give the other VPCs DNS peering zones to it.",
        )
    hubs = set(networks[:1]) if len(networks) == 1 else set()
    nets = _networks(inv)
    for hub_key in hubs:
        hub = nets.get(hub_key)
        peering_zones = [(p, z) for p in inv.gcp for z in p.dns_zones if z.kind == "peering"]
        for spoke_peering in hub.peerings if hub else ():
            spoke = spoke_peering.peer_network
            for _, fz in forwarding:
                ok = any(
                    spoke in z.networks and z.target_network == hub_key and _domain_covers(z.dns_name, fz.dns_name)
                    for _, z in peering_zones
                )
                if not ok:
                    yield Finding(
                        DNS_PEERING,
                        WARNING,
                        f"network {spoke}",
                        f"no DNS peering zone for {fz.dns_name} toward the hub {hub_key}; this VPC cannot "
                        "resolve the forwarded names",
                        f"Create a private peering zone {fz.dns_name} visible to {spoke} with target network "
                        f"{hub_key}.",
                    )
    yield from _dns_return(topo)


def _domain_covers(zone: str, name: str) -> bool:
    zone, name = zone.rstrip(".").lower(), name.rstrip(".").lower()
    return zone == "" or name == zone or name.endswith("." + zone)


def _dns_return(topo: Topology) -> Iterator[Finding]:
    by_account: dict[str, tuple[AwsAccount, set[str]]] = {}
    for account, conn in topo.gcp_facing:
        if conn.attachment_id:
            by_account.setdefault(account.name, (account, set()))[1].add(conn.attachment_id)
    for account, attachments in by_account.values():
        gateways = {c.transit_gateway_id for _, c in topo.gcp_facing if c.transit_gateway_id}
        for vpc_table in account.resolver_route_tables:
            if not any(
                target in gateways and _covered(str(CLOUD_DNS_SOURCES), [dest]) for dest, target in vpc_table.routes
            ):
                yield Finding(
                    DNS_RETURN,
                    ERROR,
                    f"{account.name}:{vpc_table.id}",
                    "the DNS resolvers' VPC route table has no route for 35.199.192.0/19 to the transit "
                    "gateway: replies to Cloud DNS forwarded queries leave through the internet gateway",
                    f"Add a route 35.199.192.0/19 -> {', '.join(sorted(gateways)) or 'the transit gateway'} "
                    "to the resolvers' route table.",
                )
        intended = set(account.intended_route_tables)
        for rt in account.route_tables:
            if intended and rt.id not in intended:
                continue
            ok = any(
                r.state == "active"
                and attachments & set(r.attachment_ids)
                and _covered(str(CLOUD_DNS_SOURCES), [r.prefix])
                for r in rt.routes
            )
            if not ok:
                yield Finding(
                    DNS_RETURN,
                    ERROR,
                    f"{account.name}:{rt.id}",
                    "no route for 35.199.192.0/19 toward the GCP VPN attachment: replies to Cloud DNS "
                    "forwarded queries are routed elsewhere (the range is public)",
                    "Advertise 35.199.192.0/19 from the Cloud Router (custom range) or add a static TGW route "
                    "for it to the VPN attachment.",
                )


CHECKS: tuple[Callable[[Inventory, Topology], Iterable[Finding]], ...] = (
    check_ha_shape,
    check_tunnel_state,
    check_wiring,
    check_inside,
    check_ipsec,
    check_routing,
    check_tgw,
    check_dns,
)

RULES = (
    HA_TUNNEL_COUNT,
    HA_CHEAP_MODE,
    HA_CHEAP_CGW,
    HA_REDUNDANCY_TYPE,
    HA_REDUNDANCY_MET,
    HA_TUNNEL_DOWN,
    WIRING_EXTERNAL_IP,
    WIRING_CGW_IP,
    WIRING_CGW_SHARED,
    WIRING_GATEWAY_INTERFACE,
    WIRING_PEER_SHARED,
    INSIDE_CIDR,
    INSIDE_DUPLICATE,
    INSIDE_ROUTER,
    INSIDE_ROUTER_RANGE,
    IPSEC_IKE_VERSION,
    IPSEC_SINGLE,
    IPSEC_UNSUPPORTED,
    IPSEC_DH_FIRST,
    IPSEC_SIZE,
    ROUTING_ADVERTISED,
    ROUTING_PEERING,
    ROUTING_LEARNED,
    ROUTING_LIMIT,
    ROUTING_TGW,
    DNS_RETURN,
    DNS_FORWARDING,
    DNS_PEERING,
)
