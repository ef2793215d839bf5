"""The VPN as a picture: both clouds' gateways and the tunnels between them, from one status report.

The status page's SVG and `probe --once`'s text drawing are two renderings of this one model, so they
never disagree. The input is the `probe --once --format json` report (also `/status.json`): tunnels,
BGP sessions and the AWS <-> GCP pairs the join found. Pure: no I/O, no clock.

Each tunnel gets one state per side: `up`, `down`, `stale` (its exporter's last poll failed: the
value is the last known one, shown grey, never red) or `unseen` (that side's exporter does not see
it). The tunnel's overall state is `up`, `down` (both sides agree), `asymmetric` (they disagree) or
`stale`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

UP, DOWN, STALE, UNSEEN = "up", "down", "stale", "unseen"


@dataclass(frozen=True)
class Endpoint:
    """One gateway address: an AWS tunnel's outside IP, or a GCP HA VPN interface."""

    exporter: str
    group: str  # AWS VPN connection id, or GCP HA VPN gateway name
    address: str


@dataclass(frozen=True)
class TunnelLine:
    """One IPsec tunnel drawn between its two endpoints (either may be missing)."""

    key: str  # stable id: the GCP tunnel name, else the AWS outside IP
    label: str
    aws: Endpoint | None
    gcp: Endpoint | None
    aws_state: str
    gcp_state: str
    bgp: str  # BGP state of the session over this tunnel ("" when none is known)
    bgp_up: bool
    prefixes: int | None
    detail: str

    @property
    def state(self) -> str:
        sides = {s for s in (self.aws_state, self.gcp_state) if s != UNSEEN}
        if STALE in sides:
            return STALE
        if sides == {UP}:
            return UP
        if sides == {DOWN} or not sides:
            return DOWN
        return "asymmetric"


@dataclass(frozen=True)
class SelfManaged:
    """A strongSwan or FRR view (on-prem / the lab's own endpoints): its tunnels and sessions."""

    exporter: str
    cloud: str
    stale: bool
    tunnels: tuple[tuple[str, bool], ...]  # (name, up)
    sessions: tuple[tuple[str, bool, int | None], ...]  # (peer, up, prefixes)


@dataclass(frozen=True)
class Drawing:
    aws_groups: tuple[tuple[str, tuple[Endpoint, ...]], ...]  # connection -> its outside IPs
    gcp_groups: tuple[tuple[str, tuple[Endpoint, ...]], ...]  # gateway -> its interfaces
    transit_gateways: tuple[str, ...]
    routers: tuple[str, ...]
    tunnels: tuple[TunnelLine, ...]
    self_managed: tuple[SelfManaged, ...]


def build_drawing(report: Mapping[str, Any]) -> Drawing:
    """The drawing of one report (see the module docstring for the states)."""
    stale = {e["name"] for e in report.get("exporters", ()) if not e.get("up", False)}
    # One account's or project's target down: its objects are stale, the exporter's others are not.
    stale |= {
        f"{e['name']}@{t['where']}" for e in report.get("exporters", ()) for t in e.get("targets", ()) if not t["up"]
    }
    tunnels: Sequence[Mapping[str, Any]] = report.get("tunnels", ())
    sessions: Sequence[Mapping[str, Any]] = report.get("bgp_sessions", ())
    pairs: Sequence[Mapping[str, Any]] = report.get("pairs", ())

    def side_state(t: Mapping[str, Any] | None) -> str:
        if t is None:
            return UNSEEN
        if t["exporter"] in stale or f"{t['exporter']}@{t.get('where', '')}" in stale:
            return STALE
        return UP if t["up"] else DOWN

    # Keyed by exporter, where (account|project/region: names repeat across them) and tunnel.
    aws = {_key(t, "tunnel"): t for t in tunnels if t["cloud"] == "aws"}
    gcp = {_key(t, "tunnel"): t for t in tunnels if t["cloud"] == "gcp"}
    gcp_session = {_key(s, "tunnel"): s for s in sessions if s["cloud"] == "gcp" and s.get("tunnel")}
    aws_session = {_key(s, "tunnel"): s for s in sessions if s["cloud"] == "aws" and s.get("tunnel")}

    wheres = {c: {t.get("where", "") for t in tunnels if t["cloud"] == c} for c in ("aws", "gcp")}
    many = any(len(w) > 1 for w in wheres.values())  # several accounts/projects or regions: say which
    lines: list[TunnelLine] = []
    paired_aws, paired_gcp = set(), set()
    for pair in pairs:
        aws_key = (pair["aws_exporter"], pair.get("aws_where", ""), pair["aws_tunnel"])
        gcp_key = (pair["gcp_exporter"], pair.get("gcp_where", ""), pair["gcp_tunnel"])
        a, g = aws.get(aws_key), gcp.get(gcp_key)
        paired_aws.add(aws_key)
        paired_gcp.add(gcp_key)
        lines.append(_line(pair["gcp_tunnel"], a, g, side_state, gcp_session, aws_session, many))
    for key, a in sorted(aws.items()):
        if key not in paired_aws:
            lines.append(_line(a["tunnel"], a, None, side_state, gcp_session, aws_session, many))
    for key, g in sorted(gcp.items()):
        if key not in paired_gcp:
            lines.append(_line(g["tunnel"], None, g, side_state, gcp_session, aws_session, many))

    def groups(cloud: str) -> tuple[tuple[str, tuple[Endpoint, ...]], ...]:
        found: dict[str, dict[str, Endpoint]] = {}
        for t in tunnels:
            if t["cloud"] == cloud:
                group = (
                    f"{t['connection']} ({t['where']})"
                    if t.get("where") and len(wheres[cloud]) > 1
                    else t["connection"]
                )
                found.setdefault(group, {})[t["local_ip"]] = _endpoint(t)
        return tuple(
            (name, tuple(sorted(eps.values(), key=lambda e: e.address))) for name, eps in sorted(found.items())
        )

    routers = sorted({s["router"] for s in sessions if s["cloud"] == "gcp"})
    transit = sorted({s["router"] for s in sessions if s["cloud"] == "aws"})
    managed = []
    for e in report.get("exporters", ()):
        if e["cloud"] not in ("strongswan", "frr"):
            continue
        managed.append(
            SelfManaged(
                e["name"],
                e["cloud"],
                e["name"] in stale,
                tuple((t["tunnel"], bool(t["up"])) for t in tunnels if t["exporter"] == e["name"]),
                tuple(
                    (s["peer"], bool(s["up"]), s.get("received_prefixes"))
                    for s in sessions
                    if s["exporter"] == e["name"]
                ),
            )
        )
    return Drawing(groups("aws"), groups("gcp"), tuple(transit), tuple(routers), tuple(lines), tuple(managed))


def _key(row: Mapping[str, Any], name: str) -> tuple[str, str, Any]:
    return (row["exporter"], row.get("where", ""), row.get(name))


def _endpoint(t: Mapping[str, Any]) -> Endpoint:
    return Endpoint(t["exporter"], t["connection"], t["local_ip"] or t["tunnel"])


def _line(
    key: str,
    a: Mapping[str, Any] | None,
    g: Mapping[str, Any] | None,
    side_state: Any,
    gcp_session: Mapping[tuple[str, str, Any], Mapping[str, Any]],
    aws_session: Mapping[tuple[str, str, Any], Mapping[str, Any]],
    many: bool = False,
) -> TunnelLine:
    session = None
    if g is not None:
        session = gcp_session.get(_key(g, "tunnel"))
    if session is None and a is not None:
        session = aws_session.get(_key(a, "tunnel"))
    label = key if a is None or g is None else f"{g['tunnel']} ({a['tunnel']})"
    where = (g or a or {}).get("where")
    if where and many:
        label = f"{label} [{where}]"
    details = [t["detail"] for t in (a, g) if t is not None and t.get("detail") and not t["up"]]
    return TunnelLine(
        key=key,
        label=label,
        aws=_endpoint(a) if a is not None else None,
        gcp=_endpoint(g) if g is not None else None,
        aws_state=side_state(a),
        gcp_state=side_state(g),
        bgp=str(session["state"]) if session else "",
        bgp_up=bool(session["up"]) if session else False,
        prefixes=session.get("received_prefixes") if session else None,
        detail="; ".join(details),
    )


def render_text(drawing: Drawing) -> str:
    """A compact drawing for a terminal: one row per tunnel, AWS on the left, GCP on the right."""
    if not drawing.tunnels and not drawing.self_managed:
        return ""
    mark = {UP: "==", DOWN: "xx", STALE: "..", UNSEEN: "  "}
    rows = []
    for t in drawing.tunnels:
        left = f"{t.aws.group} {t.aws.address}" if t.aws else "(not seen from AWS)"
        right = f"{t.gcp.address} {t.gcp.group}" if t.gcp else "(not seen from GCP)"
        bgp = f"BGP {t.bgp}" + (f" {t.prefixes} prefixes" if t.prefixes is not None else "") if t.bgp else "no BGP"
        wire = f"{mark[t.aws_state]}{mark[t.aws_state]}[ {t.key} ]{mark[t.gcp_state]}{mark[t.gcp_state]}"
        rows.append((left, wire, right, f"{t.state.upper()}, {bgp}"))
    out = ["TOPOLOGY  (== up, xx down, .. stale: last known)"]
    if rows:
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        aws_title = "AWS" + (f" (TGW {', '.join(drawing.transit_gateways)})" if drawing.transit_gateways else "")
        gcp_title = "GCP" + (f" (Cloud Router {', '.join(drawing.routers)})" if drawing.routers else "")
        out.append(f"  {aws_title.ljust(widths[0])}  {''.ljust(widths[1])}  {gcp_title}")
        for left, wire, right, state in rows:
            out.append(f"  {left.rjust(widths[0])}  {wire.ljust(widths[1])}  {right.ljust(widths[2])}  {state}")
    for m in drawing.self_managed:
        up_t = sum(1 for _, up in m.tunnels if up)
        up_s = sum(1 for _, up, _ in m.sessions if up)
        parts = []
        if m.tunnels:
            parts.append(f"{up_t}/{len(m.tunnels)} tunnels up")
        if m.sessions:
            parts.append(f"{up_s}/{len(m.sessions)} BGP sessions up")
        stale = " (stale)" if m.stale else ""
        out.append(f"  self-managed {m.exporter} ({m.cloud}){stale}: {', '.join(parts) or 'nothing seen'}")
    return "\n".join(out) + "\n"
