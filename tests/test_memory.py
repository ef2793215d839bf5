"""After a poll the daemon hands freed heap memory back to the system (`watchdog.memory`): RSS that
glibc would keep after a burst of allocations drops, and the trim runs at most once a second."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from watchdog import memory

ROOT = Path(__file__).resolve().parent.parent
glibc = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's"
)
BURST = """
import sys
from watchdog.memory import release_freed_memory

def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024

chunks = [bytes(1024) + bytes([i % 256]) for i in range(60_000)]  # ~60 MB of malloc'd 1 KB blocks
kept = chunks[::100]  # what outlives a poll, scattered: the free holes between can't shrink the heap
del chunks
before = rss_mb()
ran = release_freed_memory(clock=lambda: 1e9) if sys.argv[1] == "trim" else False
print(ran, before - rss_mb())
"""


def burst(mode: str) -> tuple[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", BURST, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    ran, released = out.stdout.split()
    return ran, float(released)


@glibc
def test_memory_freed_by_a_burst_goes_back_to_the_system() -> None:
    assert burst("keep")[1] < 5  # glibc by itself keeps it

    ran, released = burst("trim")

    assert ran == "True" and released > 40


@glibc
def test_the_trim_runs_at_most_once_a_second() -> None:
    now = [5000.0]

    assert memory.release_freed_memory(clock=lambda: now[0]) is True
    now[0] += 0.5
    assert memory.release_freed_memory(clock=lambda: now[0]) is False
    now[0] += 0.6
    assert memory.release_freed_memory(clock=lambda: now[0]) is True


ARENAS = """
import ctypes, json, sys, tempfile, threading
from watchdog.memory import configure_allocator

made = configure_allocator()
all_allocated = threading.Barrier(12)
def allocate(kept):
    kept.extend(bytes(2000) + bytes([i % 256]) for i in range(2000))  # malloc'd, not pymalloc's
    all_allocated.wait()  # none ends (freeing its arena for the next) before all have allocated
kept = []
threads = [threading.Thread(target=allocate, args=(kept,)) for _ in range(12)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile(suffix=".xml") as out:
    handle = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(handle))
    libc.fclose(ctypes.c_void_p(handle))
    heaps = open(out.name).read().count("<heap nr=")
print(json.dumps({"made": made, "heaps": heaps}))
"""


def arenas(**env: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", ARENAS],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


@glibc
def test_the_daemons_threads_share_two_heap_arenas_unless_the_environment_says_otherwise() -> None:
    # A dozen allocating threads would each get an arena of their own (8 per core), each fragmenting.
    limited = arenas()
    assert limited == {"made": {"arena_max": memory.ARENA_MAX, "mmap_threshold": memory.MMAP_THRESHOLD}, "heaps": 2}

    chosen = arenas(MALLOC_ARENA_MAX="4", GLIBC_TUNABLES="glibc.malloc.mmap_threshold=131072")
    assert chosen["made"] == {}  # the operator's settings win
    assert chosen["heaps"] == 4
