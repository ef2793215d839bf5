"""The alerting engine the daemon drives: turns state changes into Alertmanager alerts.

Placeholder contract (the full engine replaces this module's body, keeping the interface):
`observe()` is called on the event loop after every exporter poll and probe run; `tick()` every
second; `close()` once at shutdown; `reconfigure(config)` on reload.
"""

from __future__ import annotations

from watchdog.config import Config
from watchdog.state import WatchdogState


class AlertEngine:
    def __init__(self, config: Config, state: WatchdogState) -> None:
        self.config = config
        self.state = state

    def reconfigure(self, config: Config) -> None:
        self.config = config

    def observe(self) -> None:
        return None

    async def tick(self) -> None:
        return None

    async def close(self) -> None:
        return None
