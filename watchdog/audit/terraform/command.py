"""`watchdog audit --terraform PATH ...`: the live audit's rules on Terraform, before anything is applied.

Each PATH is a root module directory (or one `.tf` file) or a plan in JSON (`terraform show -json`).
All paths feed one inventory (AWS and GCP may live in separate configurations). Output: text grouped
by file and resource address, or the audit JSON with `file` and `line` per finding. Exit 0 no error
finding, 1 some, 2 when a file cannot be read or parsed (InputError, mapped by the CLI).
Never prints secrets: pre-shared keys are not read from the files or kept from a plan.
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, TextIO

from watchdog.audit import report
from watchdog.audit.rules import INFO, SEVERITIES, Finding, audit
from watchdog.audit.terraform.build import build
from watchdog.audit.terraform.load import Notes, load_root
from watchdog.audit.terraform.plan import load_plan
from watchdog.audit.terraform.values import Resource
from watchdog.audit.terraform.wording import UNEVALUATED, Located, translate
from watchdog.errors import InputError

_SEVERITY_ORDER = {s: i for i, s in enumerate(SEVERITIES)}


def read(paths: list[str], var_files: list[str]) -> tuple[list[Resource], Notes]:
    notes = Notes()
    resources: list[Resource] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(f"{raw}: no such file or directory")
        if path.is_file() and path.suffix == ".json":
            resources.extend(load_plan(path, notes))
        elif path.is_dir() or path.suffix == ".tf":
            resources.extend(load_root(path, [Path(v) for v in var_files], notes))
        else:
            raise InputError(f"{raw}: expected a directory of .tf files, a .tf file or a plan .json")
    return resources, notes


def run(paths: list[str], var_files: list[str], mtu: int = 1500) -> tuple[list[Located], dict[str, Any]]:
    """Findings (located, sorted) and the summary, for the CLI and the tests alike."""
    resources, notes = read(paths, var_files)
    built = build(resources, mtu)
    result = audit(built.inventory)
    located = translate(result, built)
    for obj, message, file, line, fix in notes.items.values():
        located.append(Located(Finding(UNEVALUATED, INFO, obj, message, fix), file, line))
    located.sort(key=lambda x: (_SEVERITY_ORDER[x.finding.severity], x.file, x.line, x.finding.rule, x.finding.object))
    summary = report.summary(result)
    counts = {s: sum(1 for x in located if x.finding.severity == s) for s in SEVERITIES}
    by_rule: dict[str, int] = defaultdict(int)
    for x in located:
        by_rule[x.finding.rule] += 1
    summary.update(
        errors=counts["error"],
        warnings=counts["warning"],
        info=counts["info"],
        by_rule=dict(sorted(by_rule.items())),
        ike_message_margin_bytes={
            _rename(k, built.names): v for k, v in sorted(summary["ike_message_margin_bytes"].items())
        },
        resources=len(resources),
    )
    return located, summary


def _rename(name: str, names: dict[str, str]) -> str:
    for raw in sorted(names, key=len, reverse=True):
        if raw in name:
            name = name.replace(raw, names[raw])
    return name


def _rel(file: str) -> str:
    if not file:
        return "(not in a file)"
    try:
        rel = os.path.relpath(file)
    except ValueError:
        return file
    return file if rel.startswith("..") else rel


def render_text(located: list[Located], summary: dict[str, Any]) -> str:
    by_file: dict[str, dict[str, list[Located]]] = defaultdict(lambda: defaultdict(list))
    for x in located:
        by_file[_rel(x.file)][x.finding.object].append(x)
    lines: list[str] = []
    for file in sorted(by_file):
        lines.append(file)
        for address, items in sorted(by_file[file].items(), key=lambda kv: min(i.line for i in kv[1])):
            lines.append(f"  {address}")
            for x in sorted(items, key=lambda i: (_SEVERITY_ORDER[i.finding.severity], i.line)):
                f = x.finding
                where = f"line {x.line}" if x.line else "-"
                lines.append(f"    {f.severity.upper():7} {where:>9}  [{f.rule}] {f.message}")
                lines.append(f"                       fix: {f.fix}")
        lines.append("")
    if not located:
        lines.append("no findings")
    lines.append(
        f"{summary['errors']} error(s), {summary['warnings']} warning(s), {summary['info']} info "
        f"({summary['resources']} resources)"
    )
    return "\n".join(lines)


def render_json(located: list[Located], summary: dict[str, Any]) -> str:
    return json.dumps({"findings": [x.as_dict() for x in located], "summary": summary}, indent=2)


def terraform_main(paths: list[str], var_files: list[str], *, fmt: str, out: TextIO | None = None) -> int:
    located, summary = run(paths, var_files)
    out = out or sys.stdout
    print(render_json(located, summary) if fmt == "json" else render_text(located, summary), file=out)
    return 1 if summary["errors"] else 0
