"""The probe registry: config class -> factory, each importing its module only when used.

Kept out of `probes/__init__.py` so that importing one probe module (`probes.ike` for
`watchdog ike analyze` above all) does not load pydantic and the config models.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence

from pydantic import BaseModel

from watchdog.config import DnsProbeConfig, IcmpProbeConfig, PmtuProbeConfig
from watchdog.interfaces import Probe, Sweep
from watchdog.model import ProbeResult
from watchdog.plugins import Registry


def _dns(config: DnsProbeConfig) -> Probe:
    from probes.dns import DnsProbe

    return DnsProbe(config)


def _icmp(config: IcmpProbeConfig) -> Probe:
    from probes.icmp import IcmpProbe

    return IcmpProbe(config)


def _pmtu(config: PmtuProbeConfig) -> Probe:
    from probes.pmtu import PmtuProbe

    return PmtuProbe(config)


REGISTRY: Registry[Probe] = Registry("probe", {DnsProbeConfig: _dns, IcmpProbeConfig: _icmp, PmtuProbeConfig: _pmtu})


def build_probe(config: BaseModel) -> Probe:
    """Instantiate the probe for one `probes[]` entry."""
    return REGISTRY.build(config)


def _icmp_sweep(probes: Sequence[Probe]) -> Awaitable[list[ProbeResult]]:
    from probes.icmp import IcmpProbe, sweep

    members = [p for p in probes if isinstance(p, IcmpProbe)]
    if len(members) != len(probes):
        raise TypeError("an ICMP sweep runs ICMP probes only")
    return sweep(members)


SWEEPS: dict[type[BaseModel], Sweep] = {IcmpProbeConfig: _icmp_sweep}


def sweep_for(config: BaseModel) -> Sweep | None:
    """How probes of this config's type run many at once, or None when each runs on its own."""
    return SWEEPS.get(type(config))
