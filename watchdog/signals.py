"""Stop and reload signals that arrive before the daemon's event loop can handle them.

`watchdog run` holds SIGHUP and SIGTERM from its first lines (importing the config code alone takes
~0.2 s, and an unhandled SIGHUP would kill the process); the daemon installs its real handlers first
thing and replays what was held. Nothing else lives here: no I/O, no config.
"""

from __future__ import annotations

import signal
from types import FrameType

HELD = (signal.SIGHUP, signal.SIGTERM)
_pending: list[int] = []


def _hold(signum: int, _frame: FrameType | None) -> None:
    if signum not in _pending:
        _pending.append(signum)


def hold() -> None:
    """Record SIGHUP/SIGTERM instead of dying of them, until the daemon takes over."""
    for sig in HELD:
        signal.signal(sig, _hold)


def take() -> list[int]:
    """The signals held so far, in arrival order (each once), and forget them."""
    held = list(_pending)
    _pending.clear()
    return held
