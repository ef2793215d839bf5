"""Hand the heap memory a poll freed back to the system (glibc's `malloc_trim`), after each poll.

glibc keeps freed memory in its arenas (one per thread that allocated, up to eight per core) for
reuse and returns only the top of each heap. The daemon's polls free a lot from worker threads (a
region's 20 MB of REST JSON, the vtysh output read through pipes every second), so without a trim
RSS creeps up for hours though nothing leaks (bench/memgrowth.py shows both). `malloc_trim(0)`
returns the free pages of every arena; it costs well under a millisecond at the daemon's size.
Nothing happens where the C library has no `malloc_trim` (musl, macOS, Windows). No other I/O.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

MIN_INTERVAL = 1.0  # seconds between two trims, however many exporters poll

_lock = threading.Lock()
_last = -MIN_INTERVAL
_trim: Any = None
_loaded = False


def release_freed_memory(*, clock: Callable[[], float] = time.monotonic) -> bool:
    """Trim the heap unless that was done less than `MIN_INTERVAL` ago; True if it ran."""
    global _last
    trim = _malloc_trim()
    if trim is None:
        return False
    now = clock()
    with _lock:
        if 0 <= now - _last < MIN_INTERVAL:  # (a clock behind the last run, as in tests, runs)
            return False
        _last = now
    trim(0)
    return True


def _malloc_trim() -> Any:
    global _trim, _loaded
    if not _loaded:
        _trim, _loaded = _load(), True
    return _trim


def _load() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs on
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)  # glibc only
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim
