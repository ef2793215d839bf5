"""The status page (`/`, `/status`): the VPN drawn as an inline SVG, then what is broken, in HTML.

The page a person opens at 3 a.m. before Grafana. It renders one status report (the `probe --once
--format json` shape, also served as `/status.json`) through `topology_view.build_drawing`, so the
picture and the text drawing of `probe --once` agree. Nothing is fetched from elsewhere (CSS and SVG
inline, no script); state is told by colour, by line style (solid up, dashed down, dotted stale) and
in words, so it reads without colour. Pure: no I/O, no clock (the caller passes `now`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from watchdog.topology_view import DOWN, STALE, UNSEEN, UP, Drawing, Endpoint, TunnelLine, build_drawing

COLOURS = {UP: "#2e7d32", DOWN: "#c62828", STALE: "#9e9e9e", UNSEEN: "#d0d0d0"}
DASHES = {UP: "", DOWN: "10 6", STALE: "2 5", UNSEEN: "2 5", "asymmetric": "14 4 2 4"}
_WIDTH, _AWS_X, _GCP_X = 980, 330, 700
_BEND_X = 600  # tunnels run level from the AWS end (label above) and bend toward GCP here
_ROW = 46

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.2em;color:#212121;background:#fff}
h1{font-size:1.3em;margin:0 0 .2em}h2{font-size:1.05em;margin:1.4em 0 .4em}
.sub{color:#616161;margin:0 0 1em}
table{border-collapse:collapse;margin:.2em 0}td,th{border-bottom:1px solid #e0e0e0;padding:.25em .7em;text-align:left}
th{background:#f5f5f5;font-weight:600}.ok{color:#2e7d32}.bad{color:#c62828;font-weight:600}.stale{color:#757575}
.state{font-weight:600;letter-spacing:.02em}
.verdict{display:inline-block;padding:.2em .7em;border-radius:3px;color:#fff;font-weight:700}
.verdict.ok{background:#2e7d32;color:#fff}.verdict.bad{background:#c62828;color:#fff}
svg text{font:12px system-ui,sans-serif}svg .box{fill:#fafafa;stroke:#9e9e9e}
svg .title{font-weight:700}svg .lbl{paint-order:stroke;stroke:#fff;stroke-width:4px}
"""


def render(report: Mapping[str, Any], *, now: float | None = None, refresh_seconds: int = 10, version: str = "") -> str:
    """The whole page for one report."""
    now = time.time() if now is None else now
    drawing = build_drawing(report)
    healthy = bool(report.get("healthy"))
    verdict = '<span class="verdict ok">HEALTHY</span>' if healthy else '<span class="verdict bad">UNHEALTHY</span>'
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="refresh" content="{int(refresh_seconds)}">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request
        f"<title>vpn-watchdog: {'healthy' if healthy else 'UNHEALTHY'}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>vpn-watchdog {verdict}</h1>",
        f'<p class="sub">{escape(version)} as of {_clock(now)} (refreshes every {int(refresh_seconds)} s) '
        '&middot; <a href="/metrics">/metrics</a> &middot; <a href="/status.json">/status.json</a> '
        '&middot; <a href="/healthz">/healthz</a> &middot; <a href="/-/healthy">/-/healthy</a> '
        '&middot; <a href="/-/ready">/-/ready</a></p>',
        svg(drawing),
        _alerts(report.get("alerts", ()), now),
        _prefixes(report.get("expected_prefixes", ())),
        _probes(report.get("probes", ())),
        _ike(report.get("ike", ())),
        _events(report.get("log_events", ()), now),
        _exporters(report.get("exporters", ()), now),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


def svg(drawing: Drawing) -> str:
    """Both clouds side by side, one `<path class="tunnel">` per tunnel between its exact endpoints."""
    aws_y = _place(drawing.aws_groups, top=70)
    gcp_y = _place(drawing.gcp_groups, top=70)
    rows = max([*aws_y.values(), *gcp_y.values(), 70]) + _ROW
    managed_top = rows + 10
    height = managed_top + (30 + 22 * len(drawing.self_managed) if drawing.self_managed else 0)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="VPN topology" width="{_WIDTH}" '
        f'height="{height}" viewBox="0 0 {_WIDTH} {height}"><defs>'
    ]
    for i, t in enumerate(drawing.tunnels):
        out.append(
            f'<linearGradient id="g{i}" gradientUnits="userSpaceOnUse" x1="{_AWS_X}" y1="0" x2="{_GCP_X}" y2="0">'
            f'<stop offset="50%" stop-color="{COLOURS[t.aws_state]}"/>'
            f'<stop offset="50%" stop-color="{COLOURS[t.gcp_state]}"/></linearGradient>'
        )
    out.append("</defs>")
    aws_title = "AWS" + (
        f" \u00b7 transit gateway {', '.join(drawing.transit_gateways)}" if drawing.transit_gateways else ""
    )
    gcp_title = "GCP" + (f" \u00b7 Cloud Router {', '.join(drawing.routers)}" if drawing.routers else "")
    out.append(f'<text class="title" x="20" y="24">{escape(aws_title)}</text>')
    out.append(f'<text class="title" x="{_WIDTH - 20}" y="24" text-anchor="end">{escape(gcp_title)}</text>')
    out.append(
        f'<text x="{_WIDTH // 2}" y="48" text-anchor="middle" fill="#616161">each line is one tunnel: its left half '
        "is AWS's view, its right half GCP's; solid up, dashed down, dotted stale (last known)</text>"
    )
    out += _groups(drawing.aws_groups, aws_y, "aws")
    out += _groups(drawing.gcp_groups, gcp_y, "gcp")
    for i, t in enumerate(drawing.tunnels):
        out.append(_tunnel(i, t, aws_y, gcp_y))
    y = managed_top
    if drawing.self_managed:
        out.append(f'<text class="title" x="20" y="{y + 16}">Self-managed endpoints (strongSwan / FRR)</text>')
        for m in drawing.self_managed:
            y += 22
            up_t, up_s = sum(1 for _, up in m.tunnels if up), sum(1 for _, up, _ in m.sessions if up)
            bits = [f"{up_t}/{len(m.tunnels)} tunnels up"] if m.tunnels else []
            bits += [f"{up_s}/{len(m.sessions)} BGP sessions up"] if m.sessions else []
            state = STALE if m.stale else (UP if (up_t, up_s) == (len(m.tunnels), len(m.sessions)) else DOWN)
            text = f"{m.exporter} ({m.cloud}): {', '.join(bits) or 'nothing seen'}" + (
                " \u2014 stale" if m.stale else ""
            )
            out.append(
                f'<g class="managed" data-exporter="{escape(m.exporter)}" data-state="{state}">'
                f'<rect x="20" y="{y + 4}" width="12" height="12" fill="{COLOURS[state]}"/>'
                f'<text x="40" y="{y + 15}">{escape(text)}</text></g>'
            )
    out.append("</svg>")
    return "\n".join(out)


def _place(groups: Sequence[tuple[str, Sequence[Endpoint]]], top: int) -> dict[Endpoint, int]:
    """The y of each endpoint: groups stacked, one row per endpoint, a gap between groups."""
    y, placed = top, {}
    for _, endpoints in groups:
        y += 30
        for endpoint in endpoints:
            placed[endpoint] = y
            y += _ROW
        y += 10
    return placed


def _groups(groups: Sequence[tuple[str, Sequence[Endpoint]]], ys: Mapping[Endpoint, int], cloud: str) -> list[str]:
    out = []
    for name, endpoints in groups:
        if not endpoints:
            continue
        first, last = ys[endpoints[0]], ys[endpoints[-1]]
        x, anchor_x = (20, _AWS_X) if cloud == "aws" else (_GCP_X, _GCP_X)
        width = _AWS_X - 20 if cloud == "aws" else _WIDTH - 20 - _GCP_X
        kind = "VPN connection" if cloud == "aws" else "HA VPN gateway"
        exporter = endpoints[0].exporter
        out.append(
            f'<g class="{cloud}-group" data-name="{escape(name)}">'
            f'<rect class="box" x="{x}" y="{first - 40}" width="{width}" height="{last - first + 56}" rx="4"/>'
            f'<text x="{x + 8 if cloud == "aws" else x + width - 8}" y="{first - 24}" '
            f'text-anchor="{"start" if cloud == "aws" else "end"}">{escape(kind)} {escape(name)} '
            f'<tspan fill="#757575">({escape(exporter)})</tspan></text>'
        )
        for endpoint in endpoints:
            y = ys[endpoint]
            tx, anchor = (anchor_x - 10, "end") if cloud == "aws" else (anchor_x + 10, "start")
            out.append(
                f'<circle class="endpoint" cx="{anchor_x}" cy="{y}" r="5" fill="#616161" '
                f'data-address="{escape(endpoint.address)}"/>'
                f'<text x="{tx}" y="{y + 4}" text-anchor="{anchor}">{escape(endpoint.address)}</text>'
            )
        out.append("</g>")
    return out


def _tunnel(i: int, t: TunnelLine, aws_y: Mapping[Endpoint, int], gcp_y: Mapping[Endpoint, int]) -> str:
    ya = aws_y.get(t.aws) if t.aws else None
    yg = gcp_y.get(t.gcp) if t.gcp else None
    row = ya if ya is not None else (yg if yg is not None else 70)
    x1 = _AWS_X if ya is not None else _AWS_X + 90  # a missing end is a stub, not a node
    x2 = _GCP_X if yg is not None else _BEND_X + 20
    end_y = yg if yg is not None else row
    d = f"M{x1},{row} L{_BEND_X},{row} C{_BEND_X + 50},{row} {_GCP_X - 50},{end_y} {x2},{end_y}"
    dash = DASHES.get(t.state, "")
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    words = {UP: "UP", DOWN: "DOWN", STALE: "STALE", "asymmetric": "ASYMMETRIC"}[t.state]
    sides = f"AWS {t.aws_state}, GCP {t.gcp_state}"
    title = f"{t.label}: {words} ({sides}); {_bgp(t)}" + (f"; {t.detail}" if t.detail else "")
    label_x = (_AWS_X + _BEND_X) // 2
    return (
        f'<g class="tunnel-group"><title>{escape(title)}</title>'
        f'<path class="tunnel" d="{d}" fill="none" stroke="url(#g{i})" stroke-width="4"{dash_attr} '
        f'data-tunnel="{escape(t.key)}" data-state="{t.state}" data-aws-state="{t.aws_state}" '
        f'data-gcp-state="{t.gcp_state}" data-bgp="{escape(t.bgp)}"/>'
        f'<text class="lbl" x="{label_x}" y="{row - 8}" text-anchor="middle">'
        f'<tspan class="state">{escape(t.key)} {words}</tspan> \u00b7 {escape(_bgp(t))}</text></g>'
    )


def _bgp(t: TunnelLine) -> str:
    if not t.bgp:
        return "no BGP session"
    if t.prefixes is None:
        return f"BGP {t.bgp}"
    return f"BGP {t.bgp}, {t.prefixes} prefix{'' if t.prefixes == 1 else 'es'}"


def _table(title: str, header: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    if not body:
        return f"<h2>{escape(title)}</h2><p>{escape(empty)}</p>"
    return f"<h2>{escape(title)}</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _ok(ok: bool, yes: str = "OK", no: str = "FAIL") -> str:
    return f'<span class="ok">{yes}</span>' if ok else f'<span class="bad">{no}</span>'


def _alerts(alerts: Sequence[Mapping[str, Any]], now: float) -> str:
    rows = [
        [
            f'<span class="bad">{escape(a["name"])}</span>',
            escape(a.get("severity", "")),
            escape(a.get("summary", "")),
            f"{_ago(now, a['since'])} ({_clock(a['since'])})" if a.get("since") else "",
        ]
        for a in alerts
    ]
    return _table("Firing alerts", ["alert", "severity", "summary", "since"], rows, "No alert is firing.")


def _prefixes(prefixes: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [
            _ok(bool(p["ok"])),
            escape(p["exporter"]),
            escape(p["prefix"]),
            "never learned" if p["paths"] is None else f"{p['paths']} / {p['min_paths']} needed",
            escape(", ".join(p.get("via", ()))),
        ]
        for p in prefixes
    ]
    return _table("Expected prefixes", ["", "exporter", "prefix", "usable paths", "via"], rows, "None configured.")


def _probes(probes: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [
            _ok(bool(p["success"]) and not p.get("mtu_low")),
            escape(p["name"]),
            escape(p["type"]),
            escape(p["target"]),
            f"{p['duration_seconds'] * 1000:.1f} ms",
            escape(p.get("reason", "")),
            escape(p.get("detail", "")),
        ]
        for p in probes
    ]
    return _table("Probes", ["", "probe", "type", "target", "time", "reason", "detail"], rows, "No probe has run yet.")


def _ike(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    cells = [
        [
            _ok(not r["ip_fragmented"], "none", f"{r['ip_fragmented']} IP-fragmented"),
            escape(r["interface"]),
            escape(r["peer"]),
            str(r["messages"]),
            str(r["ikev2_fragmented"]),
            f"{r['rekeys_ike']} IKE / {r['rekeys_child']} CHILD",
            f"{r['largest_message_bytes']} B",
        ]
        for r in rows
    ]
    return _table(
        "IKE on the wire (sniffer)",
        ["fragmentation", "interface", "peer", "messages", "RFC 7383 fragmented", "rekeys", "largest message"],
        cells,
        "",
    )


def _events(events: Sequence[Mapping[str, Any]], now: float) -> str:
    """The managed endpoints' own logged IKE/BGP events (newest first), failures marked."""
    rows = []
    for e in sorted(events, key=lambda e: -float(e["at"]))[:20]:
        where = e.get("tunnel") or (f"{e.get('router', '')} {e.get('peer', '')}".strip())
        what = escape(str(e.get("event", "")))
        rows.append(
            [
                f"{_ago(now, float(e['at']))} ({escape(_clock(float(e['at'])))})",
                f"{escape(str(e.get('exporter', '')))} ({escape(str(e.get('cloud', '')))})",
                escape(str(where)),
                f'<span class="bad">{what}</span>' if e.get("failure") else what,
                escape(str(e.get("reason") or e.get("message") or "")),
            ]
        )
    return _table(
        "Latest IKE/BGP events (the clouds' own VPN logs)",
        ["when", "exporter", "tunnel / peer", "event", "detail"],
        rows,
        "No event logged (or no exporter reads the cloud logs: `tunnel_logs` / `logs: true`).",
    )


def _exporters(exporters: Sequence[Mapping[str, Any]], now: float) -> str:
    rows = []
    for e in exporters:
        last = e.get("last_success")
        fresh = (
            _ok(True, "fresh")
            if e["up"]
            else ('<span class="stale">STALE</span>' if last else '<span class="bad">NEVER POLLED OK</span>')
        )
        rows.append(
            [
                fresh,
                escape(e["name"]),
                escape(e["cloud"]),
                f"{_ago(now, last)}" if last else "never",
                escape(e.get("error", "")),
            ]
        )
    return _table("Exporters", ["", "exporter", "source", "last success", "last error"], rows, "None configured.")


def _clock(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _ago(now: float, ts: float) -> str:
    seconds = max(0, int(now - ts))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"
