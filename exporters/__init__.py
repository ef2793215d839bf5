"""Exporters: one module per source of tunnel/BGP/route state (aws, gcp, strongswan, frr).

Each module turns its SDK's objects into `watchdog.model` records; SDK types never leave it.
`build_exporter` is the registry the composition root uses: the config already rejected unknown
types, so a missing entry here is a programming error, not a user one.
"""

from __future__ import annotations

import importlib
from typing import Any

from watchdog.interfaces import Exporter

_REGISTRY = {
    "aws": "exporters.aws:AwsExporter",
    "gcp": "exporters.gcp:GcpExporter",
    "strongswan": "exporters.strongswan:StrongswanExporter",
    "frr": "exporters.frr:FrrExporter",
}


def build_exporter(config: Any, *, timeout: float) -> Exporter:
    """Instantiate the exporter for one `exporters[]` entry (lazy import: SDKs load only if used)."""
    module_name, _, class_name = _REGISTRY[config.type].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    exporter: Exporter = cls(config, timeout=timeout)
    return exporter
