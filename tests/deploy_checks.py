"""Helpers for the deploy/ artifact tests: resolve metric names used in PromQL against METRICS."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from watchdog.catalogue import METRICS, PREFIX

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
_NAME = re.compile(r"\bvpn_watchdog_[a-zA-Z0-9_]+")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(text: str) -> set[str]:
    """Every `vpn_watchdog_*` series name in a PromQL expression or any text (not recorded `vpn_watchdog:` ones)."""
    return set(_NAME.findall(text))


def unknown_metrics(names: set[str]) -> set[str]:
    """Names that are not one of our exported series (counters carry `_total`, histograms their suffixes)."""
    unknown = set()
    for name in names:
        base = name.removeprefix(PREFIX)
        if base in METRICS:
            continue
        suffix = next((s for s in _HISTOGRAM_SUFFIXES if base.endswith(s)), None)
        if suffix and METRICS.get(base.removesuffix(suffix), ("",))[0] == "histogram":
            continue
        unknown.add(name)
    return unknown


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path
