"""The one place where the shared rules' findings get their Terraform wording.

The rules run unchanged on the Inventory built from the files; here each finding gets its resource
address as `object`, the file and line that hold the argument, and a `fix` that names the argument
to set on that address. A finding that rests on a value unknown before apply becomes an `info`
"not checked" finding (same rule id) instead of a false error. Pure; no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from watchdog.audit import rules as r
from watchdog.audit.ciphers import GCP_SUPPORTED
from watchdog.audit.inventory import AFTER_APPLY, OPTION_KEYS, TunnelOptions, after_apply
from watchdog.audit.ipsec_fix import target_options
from watchdog.audit.rules import AuditResult, Finding
from watchdog.audit.terraform.build import AWS_PICKS, OPTION_ARGS, Built, Subject, tunnel_options
from watchdog.audit.terraform.values import Resource

UNEVALUATED = "terraform.unevaluated"


@dataclass(frozen=True)
class Located:
    """A finding with the file and line of the argument it is about."""

    finding: Finding
    file: str
    line: int

    def as_dict(self) -> dict[str, object]:
        return {**self.finding.as_dict(), "file": self.file, "line": self.line}


# Which unknown input of a subject makes a rule undecidable.
_INPUTS: dict[str, tuple[str, ...]] = {
    r.HA_REDUNDANCY_TYPE: ("redundancy_type",),
    r.HA_TUNNEL_COUNT: ("connections",),
    r.WIRING_EXTERNAL_IP: ("ip", "ip_literal"),
    r.WIRING_CGW_IP: ("customer_gateway_ip",),
    r.HA_CHEAP_CGW: ("customer_gateway_ip",),
    r.INSIDE_CIDR: ("inside_cidr",),
    r.INSIDE_DUPLICATE: ("inside_cidr",),
    r.IPSEC_IKE_VERSION: ("options",),
    r.IPSEC_SINGLE: ("options",),
    r.IPSEC_UNSUPPORTED: ("options",),
    r.IPSEC_DH_FIRST: ("options",),
    r.IPSEC_SIZE: ("options",),
    r.INSIDE_ROUTER: ("router_addresses",),
    r.ROUTING_TGW: ("tgw",),
    r.DNS_RETURN: ("propagations",),
    r.ROUTING_ADVERTISED: ("advertised",),
    r.ROUTING_LIMIT: ("advertised",),
}


def translate(result: AuditResult, built: Built) -> list[Located]:
    out = []
    for f in result.findings:
        subject = _subject(f, built)
        message = _names(f.message, built)
        if subject is None:
            out.append(Located(Finding(f.rule, f.severity, _names(f.object, built), message, f.fix), "", 0))
            continue
        owner = _owner(f, subject)
        address = owner.address if owner is not None else subject.address
        reason = _undecidable(f, subject)
        picked = reason is not None and reason.endswith(AWS_PICKS)
        fixed = _fixed_gcp_inside(f, subject, built) if picked else None
        if fixed is not None:
            # AWS's pick is unknown, but the GCP side is written down: it cannot match a random pick.
            located = Finding(
                f.rule,
                f.severity,
                address,
                f"tunnel{subject.tunnel}: {reason}, but {fixed[0]}: AWS's pick will not match it",
                fixed[1],
            )
        elif picked and f.rule == r.INSIDE_CIDR:
            located = Finding(
                f.rule,
                r.INFO,
                address,
                f"not checked before apply: tunnel{subject.tunnel}: {reason} (the GCP side must read it from "
                f"tunnel{subject.tunnel}_cgw_inside_address; a random pick can collide with another tunnel's on "
                "the same GCP gateway)",
                _fix(f, subject, built),
            )
        elif reason:
            located = Finding(
                f.rule,
                r.INFO,
                address,
                f"not checked before apply: {reason} ({_tunnel_prefix(subject)}{message})",
                _fix(f, subject, built),
            )
        else:
            located = Finding(f.rule, f.severity, address, _tunnel_prefix(subject) + message, _fix(f, subject, built))
        out.append(Located(located, *_where(f, subject)))
    return out


def _fixed_gcp_inside(f: Finding, s: Subject, built: Built) -> tuple[str, str] | None:
    """For an AWS tunnel with no inside CIDR: the GCP router interface that hard-codes one, and the fix."""
    if f.rule != r.INSIDE_CIDR or s.kind != "tunnel" or " tunnel " not in f.object:
        return None
    outside = f.object.split(" tunnel ", 1)[1]
    for project in built.inventory.gcp:
        routers = {x.name: x for x in project.routers}
        for gcp_tunnel in project.tunnels:
            router = routers.get(gcp_tunnel.router or "")
            if gcp_tunnel.peer_ip != outside or router is None:
                continue
            for iface in router.interfaces:
                if iface.linked_tunnel != gcp_tunnel.name or not iface.ip_range or after_apply(iface.ip_range):
                    continue
                try:
                    cidr = str(ipaddress.ip_network(iface.ip_range, strict=False))
                except ValueError:
                    continue
                arg = f"tunnel{s.tunnel}_inside_cidr"
                fix = (
                    f'Set {arg} = "{cidr}" on {s.address} (the /30 {iface.name} already uses).'
                    if r.inside_cidr_problem(cidr) is None
                    else _fix(f, s, built)
                )
                return f"{iface.name} has ip_range = {iface.ip_range} written down", fix
    return None


def _subject(f: Finding, built: Built) -> Subject | None:
    if f.object in built.subjects:
        return built.subjects[f.object]
    if f.object.startswith("DNS forwarding zones "):
        first = f.object.removeprefix("DNS forwarding zones ").split(", ")[0]
        return built.subjects.get(first)
    return None


def _undecidable(f: Finding, s: Subject) -> str | None:
    for key in _INPUTS.get(f.rule, ()):
        reason = s.unknown.get(key)
        if reason and (not key.endswith("_literal") or AFTER_APPLY in f.message):
            if key == "ip_literal":
                return reason + "; AWS assigns tunnel outside addresses at apply"
            return reason
    return None


def _tunnel_prefix(s: Subject) -> str:
    return f"tunnel{s.tunnel}: " if s.kind == "tunnel" else ""


def _names(text: str, built: Built) -> str:
    for raw in sorted(built.names, key=len, reverse=True):
        if raw in text:
            text = text.replace(raw, built.names[raw])
    # Opaque unknowns (no single attribute) read as such.
    return re.sub(re.escape(AFTER_APPLY) + r"\)#\d+", "(known after apply)", text)


_GCP_TUNNEL_ARGS = {
    r.WIRING_GATEWAY_INTERFACE: "vpn_gateway_interface",
    r.WIRING_PEER_SHARED: "peer_external_gateway_interface",
}


def _where(f: Finding, s: Subject) -> tuple[str, int]:
    """The file and line of the argument a finding is about: both from the one resource that holds it."""
    res = s.resource
    if res is None:
        return s.file, s.line
    if s.kind == "tunnel":
        if f.rule.startswith("ipsec."):
            keys, _ = _ipsec_keys(f, s)
            for key in keys:
                arg = f"tunnel{s.tunnel}_{OPTION_ARGS[key]}"
                if arg in res.lines:
                    return res.file, res.lines[arg]
            return res.file, res.line  # the argument is absent (AWS's default): the resource block itself
        return res.file, res.line_of(f"tunnel{s.tunnel}_inside_cidr")
    if s.kind == "connection" and f.rule in (r.WIRING_CGW_IP, r.HA_CHEAP_CGW):
        cgw = s.related.get("customer_gateway")
        return (cgw.file, cgw.line_of("ip_address")) if cgw else (s.file, s.line)
    if s.kind == "peering":
        return res.file, res.line_of("import_custom_routes" if "import" in f.fix else "export_custom_routes")
    if s.kind == "gcp_tunnel" and f.rule in _GCP_TUNNEL_ARGS:
        return res.file, res.line_of(_GCP_TUNNEL_ARGS[f.rule])
    if s.kind == "router_tunnel" and f.rule == r.INSIDE_ROUTER:
        wrong = _router_args(f, s)
        if wrong:
            return wrong[0][0].file, wrong[0][0].line_of(wrong[0][1])  # the block itself when it is absent
    owner = _owner(f, s)
    if owner is not None:
        return owner.file, owner.line
    return s.file, s.line


def _owner(f: Finding, s: Subject) -> Resource | None:
    """The resource that holds the wrong argument when it is not the subject's own (a Cloud Router's interface)."""
    if s.kind != "router_tunnel":
        return None
    if f.rule == r.INSIDE_ROUTER:
        wrong = _router_args(f, s)
        return wrong[0][0] if wrong else None
    if f.rule == r.INSIDE_ROUTER_RANGE:
        return s.related.get("interface")
    return None


def _router_args(f: Finding, s: Subject) -> list[tuple[Resource, str, str]]:
    """The router interface / BGP peer arguments an inside.router-mismatch finding says are wrong, with their values."""
    hosts = re.search(r"\(AWS (\S+), GCP (\S+)\)", f.message)
    iface, peer = s.related.get("interface"), s.related.get("peer")
    if hosts is None:
        return []
    aws_ip, gcp_ip = hosts[1], hosts[2]
    wrong: list[tuple[Resource, str, str]] = []
    if iface is not None and re.search(r"\bipRange is ", f.message):
        wrong.append((iface, "ip_range", f"{gcp_ip}/30"))
    if peer is not None and re.search(r"\bpeerIpAddress is ", f.message):
        wrong.append((peer, "peer_ip_address", aws_ip))
    if peer is not None and re.search(r"\bipAddress is ", f.message):
        wrong.append((peer, "ip_address", gcp_ip))
    return wrong


def _gcp_inside_range(s: Subject, built: Built) -> str:
    """The ip_range a router interface needs: the GCP side of its AWS tunnel's inside CIDR, as HCL."""
    tunnel = s.related.get("tunnel")
    gcp_tunnel = next((t for p in built.inventory.gcp for t in p.tunnels if tunnel and t.name == tunnel.address), None)
    for account in built.inventory.aws:
        for conn in account.connections:
            for n, aws_tunnel in enumerate(conn.tunnels, 1):
                if gcp_tunnel is None or aws_tunnel.outside_ip != gcp_tunnel.peer_ip:
                    continue
                hosts = aws_tunnel.inside_hosts() if not r.inside_cidr_problem(aws_tunnel.inside_cidr) else None
                if hosts is not None:
                    return f'"{hosts[1]}/30"'
                return f'"${{{conn.id}.tunnel{n}_cgw_inside_address}}/30"'
    return '"<the AWS tunnel\'s cgw inside address>/30"'


def _q(values: tuple[object, ...]) -> str:
    return "[" + ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in values) + "]"


def _ipsec_keys(f: Finding, s: Subject) -> tuple[tuple[str, ...], TunnelOptions]:
    """The option lists a finding is about, and the minimal GCP-compatible target (from --fix-ipsec)."""
    assert s.resource is not None
    current, _ = tunnel_options(s.resource, s.tunnel)
    target = target_options(current)
    if f.rule == r.IPSEC_IKE_VERSION:
        keys: tuple[str, ...] = ("ike_versions",)
    elif f.rule == r.IPSEC_DH_FIRST:
        keys = ("phase1_dh", "phase2_dh")
    elif f.rule == r.IPSEC_UNSUPPORTED:
        keys = tuple(k for k in OPTION_KEYS if any(v not in GCP_SUPPORTED[k] for v in getattr(current, k)))
    else:
        keys = tuple(k for k in OPTION_KEYS[1:] if getattr(current, k) != getattr(target, k))
    keys = keys or tuple(k for k in OPTION_KEYS if getattr(current, k) != getattr(target, k))
    return keys, target


def _ipsec_fix(f: Finding, s: Subject) -> str:
    keys, target = _ipsec_keys(f, s)
    args = "; ".join(f"tunnel{s.tunnel}_{OPTION_ARGS[k]} = {_q(getattr(target, k))}" for k in keys)
    if keys == ("ike_versions",):
        return f"Set {args} on {s.address} (Cloud VPN speaks IKEv2)."
    return f"Set {args} on {s.address} (one GCP-supported value each, DH group 14 first)."


def _free_inside(built: Built, s: Subject) -> str:
    """A distinct unused /30 per tunnel that needs one (so applying every fix gives no new duplicate)."""
    tunnels = [(c, n, t) for a in built.inventory.aws for c in a.connections for n, t in enumerate(c.tunnels, 1)]
    counts: dict[str, int] = {}
    for _, _, t in tunnels:
        if t.inside_cidr:
            counts[t.inside_cidr] = counts.get(t.inside_cidr, 0) + 1
    seen: set[str] = set()
    needing = []
    for c, n, t in tunnels:
        cidr = t.inside_cidr
        if not cidr or r.inside_cidr_problem(cidr) or cidr in seen:
            needing.append((c.id, n))
        if cidr:
            seen.add(cidr)
    rank = needing.index((s.address, s.tunnel)) if (s.address, s.tunnel) in needing else 0
    net = ipaddress.ip_network("169.254.10.0/30")
    free: list[str] = []
    while len(free) <= rank:
        if str(net) not in counts and not r.inside_cidr_problem(str(net)):
            free.append(str(net))
        net = ipaddress.ip_network((int(net.network_address) + 4, 30))
    return free[rank]


def _ha_address(built: Built) -> str:
    for p in built.inventory.gcp:
        for g in p.ha_gateways:
            return g.name
    return "google_compute_ha_vpn_gateway.NAME"


def _fix(f: Finding, s: Subject, built: Built) -> str:  # noqa: C901 - one wording per rule
    addr = s.address
    if f.rule.startswith("ipsec.") and s.kind == "tunnel":
        return _ipsec_fix(f, s)
    if f.rule == r.HA_REDUNDANCY_TYPE:
        ext = next((e for p in built.inventory.gcp for e in p.external_gateways if e.name == addr), None)
        expected = r.EXPECTED_REDUNDANCY.get(len(ext.interfaces)) if ext else None
        return f'Set redundancy_type = "{expected}" on {addr} (it must match the number of interface blocks).'
    if f.rule == r.HA_TUNNEL_COUNT:
        return (
            "Build 2 aws_vpn_connection (count = 2, each with its own aws_customer_gateway on "
            f"{_ha_address(built)}.vpn_interfaces[count.index].ip_address), one google_compute_external_vpn_gateway "
            'with 4 interface blocks and redundancy_type = "FOUR_IPS_REDUNDANCY", and 4 google_compute_vpn_tunnel '
            "(vpn_gateway_interface = floor(count.index / 2))."
        )
    if f.rule == r.WIRING_EXTERNAL_IP:
        m = re.search(r"should be (\S+) tunnel(\d) outside", f.message)
        if m:
            return (
                f"Set ip_address = {m[1]}.tunnel{m[2]}_address in the interface block with id = {s.tunnel} on {addr} "
                "(a reference, never a hard-coded address)."
            )
    if f.rule in (r.WIRING_CGW_IP, r.HA_CHEAP_CGW):
        cgw = s.related.get("customer_gateway")
        conns = [c.id for a in built.inventory.aws for c in a.connections]
        position = 0 if f.rule == r.HA_CHEAP_CGW else (conns.index(addr) % 2 if addr in conns else 0)
        target = cgw.address if cgw else f"the customer gateway of {addr}"
        return f"Set ip_address = {_ha_address(built)}.vpn_interfaces[{position}].ip_address on {target}."
    if f.rule == r.WIRING_GATEWAY_INTERFACE:
        m = re.search(r"vpnGatewayInterface to (\d+)", f.fix)
        if m:
            return (
                f"Set vpn_gateway_interface = {m[1]} on {addr} (the HA VPN interface whose ip_address its "
                "connection's customer gateway has; the tunnel is recreated)."
            )
    if f.rule == r.WIRING_PEER_SHARED:
        m = re.search(r"interface (\d+) has no tunnel", f.fix)
        target = m[1] if m else "N"
        return f"Set peer_external_gateway_interface = {target} on {addr} (one tunnel per external interface)."
    if f.rule == r.WIRING_CGW_SHARED:
        return (
            f"Give {addr} its own aws_customer_gateway (count = 2 with ip_address = "
            f"{_ha_address(built)}.vpn_interfaces[count.index].ip_address) and set customer_gateway_id = "
            "aws_customer_gateway.NAME[count.index].id."
        )
    if f.rule in (r.INSIDE_CIDR, r.INSIDE_DUPLICATE) and s.kind == "tunnel":
        return (
            f'Set tunnel{s.tunnel}_inside_cidr = "{_free_inside(built, s)}" on {addr} (an unused /30 of 169.254.0.0/16 '
            "outside AWS's reserved ranges, unique per GCP gateway) and match the router interface and peer to it."
        )
    if f.rule == r.INSIDE_ROUTER:
        wrong = _router_args(f, s)
        if wrong:
            return "Set " + " and ".join(f'{arg} = "{value}" on {res.address}' for res, arg, value in wrong) + "."
    if f.rule == r.INSIDE_ROUTER_RANGE and s.kind == "router_tunnel" and "interface" in s.related:
        return f"Set ip_range = {_gcp_inside_range(s, built)} on {s.related['interface'].address}."
    if f.rule == r.ROUTING_ADVERTISED:
        m = re.search(r"advertise to AWS: (.+); AWS", f.message)
        ranges = m[1].split(", ") if m else []
        blocks = " ".join(f'advertised_ip_ranges {{ range = "{x}" }}' for x in ranges)
        return (
            f'In the bgp block of {addr} set advertise_mode = "CUSTOM", advertised_groups = ["ALL_SUBNETS"] '
            f"and add {blocks}."
        )
    if f.rule == r.ROUTING_PEERING:
        arg = "import_custom_routes" if "import" in f.fix else "export_custom_routes"
        return f"Set {arg} = true on {addr}."
    if f.rule == r.ROUTING_LIMIT:
        return f"Summarise the advertised_ip_ranges of {addr} below 100 prefixes (the AWS quota cannot be raised)."
    if f.rule == r.ROUTING_TGW:
        return (
            "Add an aws_ec2_transit_gateway_route_table_association and an "
            "aws_ec2_transit_gateway_route_table_propagation with"
            f" transit_gateway_attachment_id = {addr}.transit_gateway_attachment_id."
        )
    if f.rule == r.DNS_RETURN:
        routers = [x.name for p in built.inventory.gcp for x in p.routers]
        router = routers[0] if routers else "the Cloud Router"
        return (
            f'Add advertised_ip_ranges {{ range = "35.199.192.0/19" }} to the bgp block of {router}, or an '
            f"aws_ec2_transit_gateway_route for 35.199.192.0/19 to the VPN attachment in {_names(addr, built)}."
        )
    if f.rule == r.DNS_FORWARDING:
        return (
            "Keep forwarding_config zones visible to the hub network only (private_visibility_config) and give the "
            "other VPCs a google_dns_managed_zone with peering_config targeting the hub."
        )
    if f.rule == r.DNS_PEERING:
        m = re.search(r"for (\S+) toward the hub (\S+);", f.message)
        if m:
            return (
                f'Add a google_dns_managed_zone with dns_name = "{m[1]}", private_visibility_config naming {addr} '
                f"and peering_config {{ target_network {{ network_url = <{m[2]}> }} }}."
            )
    return f.fix
