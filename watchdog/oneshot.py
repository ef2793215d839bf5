"""`watchdog probe --once`: poll every exporter and run every probe once, print what is broken.

The command a person runs at 3 a.m. It builds the daemon's runners the daemon's way
(`watchdog.wiring.build_runners`: same timeouts, same probe `run()`), runs everything concurrently
(bounded by the longest timeout) and prints one table or JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TextIO

from watchdog import topology_view
from watchdog.config import Config, default_config_path, load_config
from watchdog.errors import ConfigError, WatchdogError
from watchdog.join import join_tunnels
from watchdog.model import REKEY_FAILURE_EVENTS, IkeSnapshot, LogView, Scope
from watchdog.runners import ExporterRunner, ProbeRunner
from watchdog.wiring import build_runners


def select(config: Config, only: list[str] | None) -> tuple[list[Any], list[Any]]:
    """The exporters and probes named by --only (all when None); unknown names are a usage error."""
    exporters, probes = list(config.exporters), list(config.probes)
    if not only:
        return exporters, probes
    known = {e.name for e in exporters} | {p.name for p in probes}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise ConfigError(
            f"--only: no exporter or probe named {', '.join(map(repr, unknown))} (known: {', '.join(sorted(known))})"
        )
    wanted = set(only)
    return [e for e in exporters if e.name in wanted], [p for p in probes if p.name in wanted]


async def collect(config: Config, only: list[str] | None = None) -> dict[str, Any]:
    """Run everything once and return the report (the JSON shape of DESIGN.md)."""
    exporter_configs, probe_configs = select(config, only)
    executor = ThreadPoolExecutor(max_workers=max(1, len(exporter_configs)), thread_name_prefix="once")
    built = build_runners(
        config,
        executor=executor,
        exporters={e.name for e in exporter_configs},
        probes={p.name for p in probe_configs},
    )
    probe_failures = {p.name: built.errors[p.name] for p in probe_configs if p.name in built.errors}
    if probe_failures:
        executor.shutdown(wait=False)
        built.close()
        raise WatchdogError(next(iter(probe_failures.values())))
    runners = list(built.exporters.values())
    probe_runners = list(built.probes.values())
    build_errors = built.errors
    try:
        await asyncio.gather(*(r.poll_once() for r in runners), *(p.run_once() for p in probe_runners))
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        for runner in runners:
            runner.close(wait=0.5)
    return build_report(exporter_configs, runners, build_errors, probe_runners, config.expected_min_paths())


def build_report(
    exporter_configs: Sequence[Any],
    runners: Sequence[ExporterRunner],
    build_errors: Mapping[str, str],
    probe_runners: Sequence[ProbeRunner],
    expected: Mapping[str, Mapping[str, int]],
) -> dict[str, Any]:
    """The report of DESIGN.md's `probe --once --format json` (also the daemon's `/status.json`),
    from runners that have polled; probes that have not run yet are left out. `expected` is
    `Config.expected_min_paths()`."""
    by_name = {r.name: r for r in runners}
    exporters, tunnels, sessions, prefixes = [], [], [], []
    log_events: list[dict[str, Any]] = []
    for ec in exporter_configs:
        runner = by_name.get(ec.name)
        if runner is None:
            exporters.append(
                {
                    "name": ec.name,
                    "cloud": ec.type,
                    "up": False,
                    "error": build_errors.get(ec.name, ""),
                    "duration_seconds": 0.0,
                }
            )
            continue
        h = runner.health
        exporters.append(
            {
                "name": ec.name,
                "cloud": runner.cloud,
                "up": h.up,
                "error": h.last_error,
                "duration_seconds": round(h.last_poll_duration or 0.0, 3),
                "last_success": h.last_success,
                **(
                    {
                        "targets": [
                            {**dict(t.scope.labels()), "where": t.scope.key, "up": t.up, "error": t.last_error}
                            for t in h.targets
                        ]
                    }
                    if h.targets
                    else {}
                ),
            }
        )
        snap = runner.snapshot
        if snap is not None:
            for t in sorted(snap.tunnels, key=lambda t: (_where(t.scope), t.connection, t.name)):
                tunnels.append(
                    {
                        "exporter": ec.name,
                        "cloud": runner.cloud,
                        **_scope_fields(t.scope),
                        "connection": t.connection,
                        "tunnel": t.name,
                        "local_ip": t.local_ip,
                        "peer_ip": t.peer_ip,
                        "up": t.up,
                        "status": t.status,
                        "detail": t.detail,
                    }
                )
            for s in sorted(snap.bgp_sessions, key=lambda s: (_where(s.scope), s.router, s.peer)):
                sessions.append(
                    {
                        "exporter": ec.name,
                        "cloud": runner.cloud,
                        **_scope_fields(s.scope),
                        "router": s.router,
                        "peer": s.peer,
                        "local_ip": s.local_ip,
                        "peer_ip": s.peer_ip,
                        "up": s.up,
                        "state": s.state,
                        "uptime_seconds": s.uptime_seconds,
                        "received_prefixes": s.received_prefixes,
                        "tunnel": s.tunnel,
                    }
                )
        if snap is not None and snap.logs is not None:
            log_events.extend(log_event_rows(ec.name, runner.cloud, snap.logs))
        for prefix, min_paths in expected.get(ec.name, {}).items():
            paths = sorted(runner.paths.get(prefix, frozenset())) if snap is not None else None
            prefixes.append(
                {
                    "exporter": ec.name,
                    "prefix": prefix,
                    "min_paths": min_paths,
                    "paths": None if paths is None else len(paths),
                    "via": paths or [],
                    "ok": paths is not None and len(paths) >= min_paths,
                }
            )
    probes = []
    for pr in probe_runners:
        r = pr.last
        if r is None:
            continue
        result: dict[str, Any] = {
            "name": r.probe,
            "type": r.type,
            "target": r.target,
            "success": r.success,
            "reason": r.reason,
            "detail": r.detail,
            "duration_seconds": round(r.duration_seconds, 4),
        }
        if r.type == "pmtu":
            mtu_low = bool(r.path_mtu_bytes) and r.path_mtu_bytes < r.expect_min_mtu_bytes
            result |= {"path_mtu_bytes": r.path_mtu_bytes, "mtu_low": mtu_low}
            if mtu_low:
                result["reason"] = "mtu_low"
        probes.append(result)
    healthy = (
        all(e["up"] for e in exporters)
        and all(t["up"] for t in tunnels)
        and all(s["up"] for s in sessions)
        and all(p["ok"] for p in prefixes)
        and all(p["success"] and not p.get("mtu_low") for p in probes)
    )
    report: dict[str, Any] = {
        "healthy": healthy,
        "exporters": exporters,
        "tunnels": tunnels,
        "bgp_sessions": sessions,
        "expected_prefixes": prefixes,
        "probes": probes,
        "pairs": [
            {
                "aws_exporter": p.aws_exporter,
                "aws_connection": p.aws_connection,
                "aws_tunnel": p.aws_tunnel,
                "gcp_exporter": p.gcp_exporter,
                "gcp_tunnel": p.gcp_tunnel,
                **dict(p.scope_labels()),
                "aws_where": _where(p.aws_scope),
                "gcp_where": _where(p.gcp_scope),
            }
            for p in join_tunnels(r.snapshot for r in runners if r.snapshot is not None)
        ],
    }
    if any(getattr(ec, "tunnel_logs", None) or getattr(ec, "logs", False) for ec in exporter_configs):
        # Only where a cloud log is read: the managed endpoints' own IKE/BGP events, oldest first.
        report["log_events"] = sorted(log_events, key=lambda e: (e["at"], e["exporter"]))
    return report


def _where(scope: Scope | None) -> str:
    """`111111111111/us-west-2`: where a cloud object lives ("" for on-prem ones)."""
    return scope.key if scope is not None else ""


def _scope_fields(scope: Scope | None) -> dict[str, str]:
    """`account` (or `project`), `region` and `where` of a report row; nothing for on-prem objects."""
    if scope is None:
        return {}
    return {**dict(scope.labels()), "where": scope.key}


def log_event_rows(exporter: str, cloud: str, logs: LogView) -> list[dict[str, Any]]:
    """The managed endpoints' latest logged IKE/BGP events of one exporter (oldest first)."""
    return [
        {
            "exporter": exporter,
            "cloud": cloud,
            "at": e.at,
            "time": datetime.fromtimestamp(e.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "event": e.event,
            "failure": e.event in REKEY_FAILURE_EVENTS or e.event == "bgp_down",
            "connection": e.connection,
            "tunnel": e.tunnel,
            "router": e.router,
            "peer": e.peer,
            "reason": e.reason,
            "message": e.message,
        }
        for e in logs.recent
    ]


def ike_rows(snapshot: IkeSnapshot | None) -> list[dict[str, Any]]:
    """The live sniffer's counters per (interface, peer), for the status page."""
    if snapshot is None:
        return []
    rows: dict[tuple[str, str], dict[str, Any]] = {}

    def row(interface: str, peer: str) -> dict[str, Any]:
        return rows.setdefault(
            (interface, peer),
            {"interface": interface, "peer": peer, "messages": 0, "ip_fragmented": 0, "ikev2_fragmented": 0,
             "rekeys_ike": 0, "rekeys_child": 0, "largest_message_bytes": 0},
        )  # fmt: skip

    for (interface, peer, _), n in snapshot.messages.items():
        row(interface, peer)["messages"] += n
    for (interface, peer, _, kind), n in snapshot.fragmented.items():
        row(interface, peer)[f"{kind}_fragmented"] += n
    for (interface, peer, sa), n in snapshot.rekeys.items():
        row(interface, peer)[f"rekeys_{sa}"] += n
    for (interface, peer, _), n in snapshot.largest.items():
        entry = row(interface, peer)
        entry["largest_message_bytes"] = max(entry["largest_message_bytes"], n)
    return [rows[k] for k in sorted(rows)]


def _mark(ok: bool) -> str:
    return "OK  " if ok else "FAIL"


def render_text(report: dict[str, Any], out: TextIO) -> None:
    """One readable table per section; FAIL lines say what is broken and where."""

    def table(title: str, header: list[str], rows: list[list[str]]) -> None:
        out.write(f"\n{title}\n")
        if not rows:
            out.write("  (none)\n")
            return
        widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
        for row in [header, *rows]:
            out.write("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() + "\n")

    failing = sum(
        1
        for section, key in (
            ("exporters", "up"),
            ("tunnels", "up"),
            ("bgp_sessions", "up"),
            ("expected_prefixes", "ok"),
            ("probes", "success"),
        )
        for item in report[section]
        if not item[key]
    )
    out.write("HEALTHY: everything answered and is up\n" if report["healthy"] else f"UNHEALTHY: {failing} problem(s)\n")
    drawing = topology_view.render_text(topology_view.build_drawing(report))
    if drawing:
        out.write("\n" + drawing)
    table(
        "EXPORTERS",
        ["", "NAME", "CLOUD", "TIME", "ERROR"],
        [
            [_mark(e["up"]), e["name"], e["cloud"], f"{e['duration_seconds']:.2f}s", e["error"]]
            for e in report["exporters"]
        ],
    )
    table(
        "TUNNELS",
        ["", "EXPORTER", "WHERE", "CONNECTION", "TUNNEL", "LOCAL", "PEER", "STATUS", "DETAIL"],
        [
            [
                _mark(t["up"]),
                t["exporter"],
                t.get("where") or "-",
                t["connection"],
                t["tunnel"],
                t["local_ip"],
                t["peer_ip"],
                t["status"],
                t["detail"],
            ]
            for t in report["tunnels"]
        ],
    )
    table(
        "BGP SESSIONS",
        ["", "EXPORTER", "WHERE", "ROUTER", "PEER", "PEER IP", "STATE", "UPTIME", "PREFIXES"],
        [
            [
                _mark(s["up"]),
                s["exporter"],
                s.get("where") or "-",
                s["router"],
                s["peer"],
                s["peer_ip"],
                s["state"],
                "" if s["uptime_seconds"] is None else f"{s['uptime_seconds']:.0f}s",
                "" if s["received_prefixes"] is None else str(s["received_prefixes"]),
            ]
            for s in report["bgp_sessions"]
        ],
    )
    table(
        "EXPECTED PREFIXES",
        ["", "EXPORTER", "PREFIX", "PATHS", "VIA"],
        [
            [
                _mark(p["ok"]),
                p["exporter"],
                p["prefix"],
                "unknown (exporter down)" if p["paths"] is None else f"{p['paths']}/{p['min_paths']} needed",
                ", ".join(p["via"]),
            ]
            for p in report["expected_prefixes"]
        ],
    )
    table(
        "PROBES",
        ["", "NAME", "TYPE", "TARGET", "TIME", "REASON", "DETAIL"],
        [
            [
                _mark(p["success"] and not p.get("mtu_low")),
                p["name"],
                p["type"],
                p["target"],
                f"{p['duration_seconds'] * 1000:.1f}ms",
                p["reason"],
                p["detail"],
            ]
            for p in report["probes"]
        ],
    )
    _render_log_events(report, table)


def _render_log_events(report: dict[str, Any], table: Any) -> None:
    if "log_events" not in report:
        return
    table(
        "RECENT IKE/BGP EVENTS",
        ["", "TIME", "EXPORTER", "EVENT", "TUNNEL / PEER", "REASON", "MESSAGE"],
        [
            [
                "FAIL" if e["failure"] else "    ",
                e["time"],
                e["exporter"],
                e["event"],
                f"{e['router']}/{e['peer']}" if e["peer"] else e["tunnel"] or e["router"],
                e["reason"],
                e["message"][:100],
            ]
            for e in report["log_events"]
        ],
    )


def probe_once(
    config_path: str | None, *, fmt: str = "text", only: list[str] | None = None, out: TextIO | None = None
) -> int:
    """Exit 0 when everything is healthy, 1 when anything fails (2 comes from ConfigError in the CLI)."""
    out = out or sys.stdout
    config = load_config(config_path)
    if not (config.exporters or config.probes):
        path = config_path or default_config_path()
        raise ConfigError(f"{path}: nothing to check: the config has no exporters and no probes")
    report = asyncio.run(collect(config, only))
    if fmt == "json":
        out.write(json.dumps(report, indent=2, sort_keys=False) + "\n")
    else:
        render_text(report, out)
    return 0 if report["healthy"] else 1
