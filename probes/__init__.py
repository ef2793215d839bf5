"""Probes: DNS, ICMP and path-MTU data-plane checks, and the IKE fragmentation sniffer (`probes.ike`).

A probe only knows "probe one target once"; the daemon's scheduler owns interval and timeout, and
`watchdog probe --once` calls the very same `run()`.
"""

from __future__ import annotations

import importlib
from typing import Any

from watchdog.interfaces import Probe

_REGISTRY = {
    "dns": "probes.dns:DnsProbe",
    "icmp": "probes.icmp:IcmpProbe",
    "pmtu": "probes.pmtu:PmtuProbe",
}


def build_probe(config: Any) -> Probe:
    """Instantiate the probe for one `probes[]` entry."""
    module_name, _, class_name = _REGISTRY[config.type].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    probe: Probe = cls(config)
    return probe
