"""The exporter registry: config class -> factory, each importing its module only when used.

Kept out of `exporters/__init__.py` so that importing one exporter module does not load pydantic and
the config models (the probes package does the same for `watchdog ike analyze`).
"""

from __future__ import annotations

from pydantic import BaseModel

from watchdog.config import AwsExporterConfig, FrrExporterConfig, GcpExporterConfig, StrongswanExporterConfig
from watchdog.interfaces import Exporter
from watchdog.plugins import Registry


def _aws(config: AwsExporterConfig, *, timeout: float) -> Exporter:
    # Every account x region of the entry, merged into one view (one target for a plain `region:`).
    from exporters.aws_accounts import build_aws

    return build_aws(config, timeout=timeout)


def _gcp(config: GcpExporterConfig, *, timeout: float) -> Exporter:
    from exporters.gcp_projects import build_gcp

    return build_gcp(config, timeout=timeout)


def _strongswan(config: StrongswanExporterConfig, *, timeout: float) -> Exporter:
    from exporters.strongswan import StrongswanExporter

    return StrongswanExporter(config, timeout=timeout)


def _frr(config: FrrExporterConfig, *, timeout: float) -> Exporter:
    from exporters.frr import FrrExporter

    return FrrExporter(config, timeout=timeout)


REGISTRY: Registry[Exporter] = Registry(
    "exporter",
    {AwsExporterConfig: _aws, GcpExporterConfig: _gcp, StrongswanExporterConfig: _strongswan, FrrExporterConfig: _frr},
)


def build_exporter(config: BaseModel, *, timeout: float) -> Exporter:
    """Instantiate the exporter for one `exporters[]` entry."""
    return REGISTRY.build(config, timeout=timeout)
