"""Plug-in registration is complete: every `type:` the config accepts has a factory, and no factory
serves a type the config does not know. A mismatch fails here, never at a user's start-up."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import BaseModel

import exporters.registry
import probes.registry
from watchdog import config
from watchdog.errors import WatchdogError
from watchdog.plugins import members, type_names


@pytest.mark.parametrize(
    ("registry", "union", "names"),
    [
        (exporters.registry.REGISTRY, config.ExporterConfig, config.EXPORTER_TYPES),
        (probes.registry.REGISTRY, config.ProbeConfig, config.PROBE_TYPES),
    ],
)
def test_every_config_type_has_exactly_one_factory(registry: object, union: object, names: tuple[str, ...]) -> None:
    assert registry.missing(union) == []  # type: ignore[attr-defined]
    assert set(registry.factories) == set(members(union))  # type: ignore[attr-defined]
    assert names == type_names(union)  # the names the loader reports come from the same union


def test_type_names_are_the_documented_ones() -> None:
    assert config.EXPORTER_TYPES == ("aws", "gcp", "strongswan", "frr")
    assert set(config.PROBE_TYPES) >= {"dns", "icmp", "pmtu"}


def loaded_after(imports: str, modules: tuple[str, ...]) -> str:
    """Which of `modules` a fresh interpreter has loaded after `import <imports>` (printed list)."""
    code = f"import sys, {imports}; print([m for m in {modules!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.strip()


def test_registries_import_no_plugin_module_until_used() -> None:
    """Importing the registries loads no SDK: `watchdog probe --once` on a DNS probe never pays for boto3."""
    heavy = ("exporters.aws", "exporters.gcp", "boto3", "google.cloud", "probes.dns")
    assert loaded_after("exporters.registry, probes.registry", heavy) == "[]"


def test_an_unregistered_config_class_is_a_clear_error() -> None:
    class Unknown(BaseModel):
        type: str = "nope"

    with pytest.raises(WatchdogError, match="no probe plug-in registered for Unknown"):
        probes.registry.build_probe(Unknown())


def test_the_ike_analyzer_loads_without_the_config_models() -> None:
    """`watchdog ike analyze` reads captures only: importing it must not pay for pydantic, YAML or DNS
    (that was 190 ms and 30 MiB of its start, through the probe registry in `probes/__init__.py`)."""
    heavy = ("pydantic", "yaml", "dns", "scapy", "watchdog.config", "probes.registry")
    assert loaded_after("watchdog.ike_command", heavy) == "[]"
