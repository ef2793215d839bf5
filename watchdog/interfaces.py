"""The narrow interfaces between the core and its plug-ins (exporters, probes, sniffer).

The core depends only on these protocols; `exporters/` and `probes/` implement them, and the
composition root (`watchdog.wiring`) builds them through the registries in `exporters/registry.py`
and `probes/registry.py` (`watchdog.plugins.Registry`, keyed by config class).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from watchdog.model import IkeSnapshot, ProbeResult, Snapshot


class Exporter(Protocol):
    """Reads tunnel/BGP/route state from one source.

    `poll()` is blocking (cloud SDKs are), runs in a worker thread, must finish within `timeout`
    seconds (bounding the SDK's own retries), and raises only `ExporterError`. It must not log or
    return secrets (pre-shared keys, CustomerGatewayConfiguration XML, credentials).
    """

    name: str
    cloud: str

    def poll(self) -> Snapshot: ...

    def close(self) -> None: ...


@runtime_checkable
class EventSource(Protocol):
    """An exporter that can push "something changed" (e.g. strongSwan VICI events).

    `subscribe(notify)` starts delivering events in the background; each event calls `notify()`,
    which asks the daemon for an immediate poll (coalesced with a running one).
    """

    def subscribe(self, notify: Callable[[], None]) -> None: ...


class Probe(Protocol):
    """Probes one target once. Failures are a ProbeResult with a reason; a `ProbeFailure` raised
    (e.g. by the network-namespace helper) becomes one in the runner. When it runs and how long it
    may take are the scheduler's business, not the probe's."""

    name: str
    type: str
    target: str

    async def run(self) -> ProbeResult: ...


# Runs many probes of one type at once (one round of packets for all of them, e.g. every ICMP target
# sharing a socket); the results come back in the order of the probes given, one each, never raising.
Sweep = Callable[[Sequence[Probe]], Awaitable[list[ProbeResult]]]


class IkeSource(Protocol):
    """A live IKE sniffer: started once, read at every scrape via `snapshot()` (no I/O there)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def snapshot(self) -> IkeSnapshot: ...
