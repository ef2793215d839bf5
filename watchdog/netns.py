"""Run work inside a Linux network namespace (as `ip netns exec` would), from a threaded daemon.

A namespace switch (setns) applies to the calling thread only, so work that must happen "inside"
(probe sockets in a lab namespace, a sniffer on an interface that lives there) runs on a thread of
its own that switched once and never switches back. Sockets keep the namespace they were created in.
A missing namespace is an error, never a silent fallback to the host's network (which could send
probe traffic somewhere it must not go).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from watchdog.errors import ProbeFailure

CLONE_NEWNET = 0x40000000
T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


def netns_path(name: str) -> str:
    """`vw-gcp` -> /run/netns/vw-gcp (what `ip netns add` creates); absolute paths pass through."""
    return name if name.startswith("/") else f"/run/netns/{name}"


def enter_netns(name: str) -> None:
    """Switch the CALLING THREAD into the namespace (needs CAP_SYS_ADMIN)."""
    path = netns_path(name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ProbeFailure("network_error", f"network namespace {name!r} not found ({path})") from None
    except PermissionError:
        raise ProbeFailure("network_error", f"network namespace {name!r}: permission denied opening {path}") from None
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise ProbeFailure(
                "network_error", f"cannot enter network namespace {name!r}: {os.strerror(errno)} (needs CAP_SYS_ADMIN)"
            )
    finally:
        os.close(fd)


def call_in_netns(name: str, fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args)` on a fresh thread inside the namespace and return its result (or raise)."""
    box: Future[T] = Future()

    def target() -> None:
        try:
            enter_netns(name)
            box.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            box.set_exception(exc)

    thread = threading.Thread(target=target, name=f"netns-{name}", daemon=True)
    thread.start()
    return box.result()


class NetnsLoop:
    """An event loop on a thread that lives inside one namespace; run coroutines there."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self._ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._main, name=f"netns-loop-{name}", daemon=True)
        self._thread.start()
        self._ready.result()  # raises ProbeFailure when the namespace cannot be entered

    def _main(self) -> None:
        try:
            enter_netns(self.name)
        except BaseException as exc:  # noqa: BLE001
            self._ready.set_exception(exc)
            return
        asyncio.set_event_loop(self.loop)
        self._ready.set_result(None)
        self.loop.run_forever()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=2)


_shared: dict[str, NetnsLoop] = {}
_shared_lock = threading.Lock()


def shared_loop(name: str) -> NetnsLoop:
    """One loop thread per namespace for the whole process (probes in the same namespace share it)."""
    with _shared_lock:
        loop = _shared.get(name)
        if loop is None or not loop.loop.is_running():
            loop = _shared[name] = NetnsLoop(name)
        return loop
