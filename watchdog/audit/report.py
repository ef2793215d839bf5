"""Render audit results and `--fix-ipsec` plans as readable text or the documented JSON.

Pure formatting: no I/O beyond returning strings, no decisions (exit codes live in `command`).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from watchdog.audit.inventory import OPTION_KEYS, TunnelOptions
from watchdog.audit.ipsec_fix import ApplyReport, TunnelChange
from watchdog.audit.rules import SEVERITIES, AuditResult

_TITLES = {"error": "ERRORS", "warning": "WARNINGS", "info": "INFO"}


def summary(result: AuditResult) -> dict[str, Any]:
    by_severity = Counter(f.severity for f in result.findings)
    margins = result.ike_margins
    return {
        "errors": by_severity["error"],
        "warnings": by_severity["warning"],
        "info": by_severity["info"],
        "by_rule": dict(sorted(Counter(f.rule for f in result.findings).items())),
        "mtu": result.mtu,
        "ike_message_margin_bytes": dict(sorted(margins.items())),
        "min_ike_message_margin_bytes": min(margins.values()) if margins else None,
    }


def audit_json(result: AuditResult) -> str:
    return json.dumps({"findings": [f.as_dict() for f in result.findings], "summary": summary(result)}, indent=2)


def audit_text(result: AuditResult) -> str:
    lines: list[str] = []
    for severity in SEVERITIES:
        group = [f for f in result.findings if f.severity == severity]
        if not group:
            continue
        lines.append(f"{_TITLES[severity]} ({len(group)})")
        for f in group:
            lines.append(f"  [{f.rule}] {f.object}")
            lines.append(f"      {f.message}")
            lines.append(f"      fix: {f.fix}")
        lines.append("")
    s = summary(result)
    if result.ike_margins:
        worst = min(result.ike_margins.items(), key=lambda kv: kv[1])
        lines.append(
            f"IKE message size: the largest predicted message leaves {worst[1]} bytes below the path MTU "
            f"{result.mtu} on {worst[0]}" + (" (negative = IP-fragmented)" if worst[1] < 0 else "")
        )
    if not result.findings:
        lines.append("no findings")
    lines.append(f"{s['errors']} error(s), {s['warnings']} warning(s), {s['info']} info")
    return "\n".join(lines)


def _opts(options: TunnelOptions) -> dict[str, list[Any]]:
    return {k: list(getattr(options, k)) for k in OPTION_KEYS}


def _change_dict(change: TunnelChange) -> dict[str, Any]:
    return {
        "account": change.account,
        "connection": change.connection_id,
        "tunnel": change.tunnel_number,
        "outside_ip": change.outside_ip,
        "status": change.status,
        "changes_needed": change.needed,
        "current": _opts(change.current),
        "target": _opts(change.target),
        "call": {"ModifyVpnTunnelOptions": change.request()} if change.needed else None,
        "terraform": change.terraform(),
    }


def plan_json(changes: list[TunnelChange], applied: ApplyReport | None = None) -> str:
    doc: dict[str, Any] = {
        "changes_needed": any(c.needed for c in changes),
        "tunnels": [_change_dict(c) for c in changes],
    }
    if applied is not None:
        doc["applied"] = [
            {
                "connection": o.change.connection_id,
                "outside_ip": o.change.outside_ip,
                "result": o.result,
                "detail": o.detail,
            }
            for o in applied.outcomes
        ]
        doc["ok"] = applied.ok
    return json.dumps(doc, indent=2)


def _show(values: tuple[Any, ...]) -> str:
    return ", ".join(map(str, values)) if values else "(AWS default: all)"


def plan_text(changes: list[TunnelChange], applied: ApplyReport | None = None) -> str:
    if not changes:
        return "no GCP-facing AWS tunnels found"
    lines: list[str] = []
    for c in changes:
        head = f"{c.account}:{c.connection_id} tunnel{c.tunnel_number} {c.outside_ip} ({c.status})"
        if not c.needed:
            lines.append(f"{head}: already minimal and GCP-compatible")
            continue
        lines.append(f"{head}: change needed")
        for key in c.changed_keys:
            lines.append(f"    {key:18} {_show(getattr(c.current, key))}  ->  {_show(getattr(c.target, key))}")
        lines.append("  aws ec2 API call:")
        lines.append("    ModifyVpnTunnelOptions " + json.dumps(c.request()))
        lines.append("  Terraform (aws_vpn_connection):")
        for arg, value in c.terraform().items():
            lines.append(f"    {arg} = {json.dumps(value)}")
    if applied is not None:
        lines.append("")
        for o in applied.outcomes:
            lines.append(f"{o.result:14} {o.change.connection_id} {o.change.outside_ip}: {o.detail}")
        lines.append("all changes applied" if applied.ok else "stopped: not every change landed")
    elif any(c.needed for c in changes):
        lines.append("")
        lines.append("nothing was changed; run again with --apply to make these changes one tunnel at a time")
    return "\n".join(lines)
