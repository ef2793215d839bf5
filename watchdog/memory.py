"""Keep the daemon's heap from creeping: fewer glibc arenas, big blocks mapped, freed memory trimmed.

glibc keeps freed memory in its arenas (one per thread that allocated, up to eight per core) for
reuse and returns only the top of each heap. The daemon's polls free a lot from worker threads (a
region's 20 MB of REST JSON, the vtysh output read through pipes every second), so RSS creeps up
for hours though nothing leaks (bench/memgrowth.py shows it). Two measures, both glibc's own knobs:
- `configure_allocator()`, once at daemon start: at most `ARENA_MAX` arenas (the daemon's dozen
  threads each fragmenting an arena of their own was most of the creep) and blocks of
  `MMAP_THRESHOLD` or more mapped and unmapped whole (else glibc raises the threshold after the first
  big free and later megabyte pages are carved out of the arenas). The environment's
  `MALLOC_ARENA_MAX` / `MALLOC_MMAP_THRESHOLD_` / `GLIBC_TUNABLES` settings win over these.
- `release_freed_memory()` after each poll: `malloc_trim(0)` returns the free pages of every
  arena; it costs well under a millisecond at the daemon's size.
Nothing happens where the C library is not glibc (musl, macOS, Windows). No other I/O.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

MIN_INTERVAL = 1.0  # seconds between two trims, however many exporters poll
ARENA_MAX = 2  # glibc's default is 8 per core
MMAP_THRESHOLD = 64 * 1024  # bytes; glibc's starts at 128 KiB and then rises up to 32 MiB
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # <malloc.h>

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


def configure_allocator(environ: Mapping[str, str] | None = None) -> dict[str, int]:
    """Set the arena limit and the mmap threshold, unless the environment sets them; the settings
    made (empty where the C library is not glibc). Call it before the daemon starts its threads."""
    environ = os.environ if environ is None else environ
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None and _malloc_trim() is not None else None
    if mallopt is None:
        return {}
    import ctypes

    tunables = environ.get("GLIBC_TUNABLES", "")
    made: dict[str, int] = {}
    for name, option, value, env, tunable in (
        ("arena_max", _M_ARENA_MAX, ARENA_MAX, "MALLOC_ARENA_MAX", "glibc.malloc.arena_max"),
        ("mmap_threshold", _M_MMAP_THRESHOLD, MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold"),
    ):
        if env in environ or tunable in tunables:
            continue
        if mallopt(ctypes.c_int(option), ctypes.c_int(value)) == 1:
            made[name] = value
    return made


def _malloc_trim() -> Any:
    global _trim, _loaded
    if not _loaded:
        _trim, _loaded = _load(), True
    return _trim


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # not at the top: `watchdog --version` should not pay for it

    try:
        return ctypes.CDLL(None)  # the C library this process already runs on
    except OSError:
        return None


def _load() -> Any:
    libc = _libc()
    if libc is None:
        return None
    trim = getattr(libc, "malloc_trim", None)  # glibc only
    if trim is None:
        return None
    import ctypes

    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim
