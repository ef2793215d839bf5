"""Read a plan in JSON (`terraform show -json plan.out`) into the same resource instances as the HCL reader.

`planned_values` gives each instance's known values; `resource_changes[].change.after_unknown`
marks what only apply will tell. An unknown argument whose configuration expression is a single
reference to another resource's attribute keeps that reference (so the customer gateway's
`ip_address` is known to be `vpn_interfaces[0].ip_address`); an unknown computed attribute is the
instance's own (`aws_vpn_connection.vpn[0].tunnel1_address`); anything else is opaque. Sensitive
arguments (pre-shared keys) are dropped on reading. A plan carries no line numbers: findings name
the plan file and the resource address.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from watchdog.audit.terraform.load import Notes
from watchdog.audit.terraform.values import AUDITED_TYPES, Resource, Unknown, is_secret
from watchdog.errors import InputError

_INDEX = re.compile(r"\[(?:\d+|\"[^\"]*\")\]$")
_SKIP_REFS = ("count.", "each.", "var.", "local.", "path.", "terraform.", "self.")


def load_plan(path: Path, notes: Notes) -> list[Resource]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    if not isinstance(doc, dict) or "format_version" not in doc or "planned_values" not in doc:
        raise InputError(
            f"{path}: not a Terraform plan in JSON (no format_version / planned_values); "
            "make it with `terraform show -json plan.out`"
        )
    changes = {str(rc.get("address")): rc for rc in doc.get("resource_changes") or [] if isinstance(rc, dict)}
    configs: dict[str, dict[str, Any]] = {}
    _index_config((doc.get("configuration") or {}).get("root_module") or {}, "", configs)
    out: list[Resource] = []
    _walk(doc["planned_values"].get("root_module") or {}, changes, configs, str(path), out)
    if doc.get("errored"):
        notes.add(
            f"{path}: the plan errored; only what it planned is audited", str(path), 0, "Fix the plan's errors first."
        )
    return out


def _index_config(module: dict[str, Any], prefix: str, configs: dict[str, dict[str, Any]]) -> None:
    for res in module.get("resources") or []:
        configs[f"{prefix}{res.get('address')}"] = res
    for name, call in (module.get("module_calls") or {}).items():
        _index_config(call.get("module") or {}, f"{prefix}module.{name}.", configs)


def _walk(
    module: dict[str, Any],
    changes: dict[str, Any],
    configs: dict[str, dict[str, Any]],
    file: str,
    out: list[Resource],
) -> None:
    for res in module.get("resources") or []:
        if res.get("mode") != "managed" or res.get("type") not in AUDITED_TYPES:
            continue
        address = str(res.get("address"))
        change = (changes.get(address) or {}).get("change") or {}
        unknown = change.get("after_unknown") or {}
        config_address = _config_address(address)
        exprs = (configs.get(config_address) or {}).get("expressions") or {}
        index = res.get("index")
        values = _merge(res.get("values") or {}, unknown, exprs, address, index, top=True)
        out.append(Resource(address, str(res.get("type")), values, file, 0, {}, ""))
    for child in module.get("child_modules") or []:
        _walk(child, changes, configs, file, out)


def _config_address(address: str) -> str:
    """`module.m[0].aws_x.y[1]` -> `module.m.aws_x.y` (the configuration's key)."""
    parts = re.split(r"\.(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", address)
    return ".".join(_INDEX.sub("", p) for p in parts)


def _merge(values: Any, unknown: Any, exprs: Any, ref: str, index: Any, top: bool = False) -> Any:
    if unknown is True:
        return _unknown(exprs, ref, index)
    if isinstance(values, dict) or isinstance(unknown, dict):
        vals = values if isinstance(values, dict) else {}
        unk = unknown if isinstance(unknown, dict) else {}
        ex = exprs if isinstance(exprs, dict) else {}
        out = {}
        for key in {*vals, *unk}:
            if is_secret(key):
                continue
            sub_expr = _COMPUTED if exprs is _COMPUTED else ex.get(key, _COMPUTED if top else None)
            out[key] = _merge(vals.get(key), unk.get(key), sub_expr, f"{ref}.{key}", index)
        return out
    if isinstance(values, list) or isinstance(unknown, list):
        vals_l = values if isinstance(values, list) else []
        unk_l = unknown if isinstance(unknown, list) else []
        ex_l = exprs if isinstance(exprs, list) else []
        n = max(len(vals_l), len(unk_l))
        return [
            _merge(
                vals_l[i] if i < len(vals_l) else None,
                unk_l[i] if i < len(unk_l) else None,
                ex_l[i] if i < len(ex_l) else (_COMPUTED if exprs is _COMPUTED else None),
                f"{ref}[{i}]",
                index,
            )
            for i in range(n)
        ]
    return values


_COMPUTED: Any = object()  # no expression in the configuration: a computed attribute


def _unknown(expr: Any, ref: str, index: Any) -> Unknown:
    if expr is _COMPUTED:
        return Unknown(ref, generated=True)  # the instance's own computed attribute
    if not isinstance(expr, dict):
        return Unknown()
    refs = [x for x in expr.get("references") or [] if not x.startswith(_SKIP_REFS)]
    if not refs:
        return Unknown()
    longest = max(refs, key=len)
    # Terraform lists a reference with its prefixes (x.y[0].a, x.y[0], x.y): one attribute only.
    if not all(longest.startswith(x) for x in refs):
        return Unknown()
    dynamic_index = any(x in ("count.index", "each.key", "each.value") for x in expr.get("references") or [])
    if dynamic_index and longest.count(".") == 1 and index is not None:
        # `aws_customer_gateway.gcp[count.index].id` is listed as [aws_customer_gateway.gcp, count.index]:
        # enough to know which instance of the same index it points at, not which attribute.
        key = f"[{index}]" if isinstance(index, int) else f'["{index}"]'
        return Unknown(f"{longest}{key}.(attribute)")
    if "[count.index]" in longest or "[each.key]" in longest:
        if index is None:
            return Unknown()
        key = f"[{index}]" if isinstance(index, int) else f'["{index}"]'
        longest = longest.replace("[count.index]", key).replace("[each.key]", key)
    if "[" in longest and not re.search(r"\[(\d+|\"[^\"]*\")\]", longest):
        return Unknown()
    if longest.count(".") < 2:
        return Unknown()  # a whole resource, not one attribute
    return Unknown(longest, generated=True)  # it is that other resource's attribute
