"""Live IKE sniffer: one AF_PACKET socket per interface with a kernel BPF filter, fed to `Analyzer`.

Implements `watchdog.interfaces.IkeSource`. The BPF (tested filter from the IKE reference notes)
keeps IKE on UDP 500, IKE behind the non-ESP marker on UDP 4500 and non-first UDP fragments, restricted
to the configured peers: without it scapy loses almost everything at ESP line rates. scapy only moves
bytes here (the socket's decode class is swapped for Raw); parsing is `wire.decode`.

Failure is never silent: missing libpcap, a bad filter, missing CAP_NET_RAW or a missing interface
make `sniffer_up` false for that interface with one log line, and a capture thread that dies later
(interface removed) is noticed by the 1 s timer, which also expires the fragment tracker, reads the
kernel drop counter (PACKET_STATISTICS) and retries dead interfaces every 10 s.
`snapshot()` only copies counters under a lock: no I/O.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from probes.ike.analyzer import Analyzer, pair_label, peer_matcher
from probes.ike.report import problem_found, to_json
from probes.ike.wire import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_RAW
from watchdog.errors import ConfigError
from watchdog.model import IkeSnapshot

log = logging.getLogger(__name__)

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
RCVBUF = 4 << 20
RETRY_SECONDS = 10.0
_ETHERNET_ARPHRD = {1, 772}  # ARPHRD_ETHER, ARPHRD_LOOPBACK
_RAW_ARPHRD = {65534, 768, 769, 776, 778, 823}  # NONE (tun), TUNNEL, TUNNEL6, SIT, IPGRE, IP6GRE


def bpf_filter(peers: list[str]) -> str:
    """The kernel filter: IKE, NAT-T IKE (marker 0), and non-first UDP fragments, to/from the peers."""
    ike = (
        "udp port 500 or (udp port 4500 and udp[8:4] = 0)"
        " or (ip and ip[9] = 17 and ip[6:2] & 0x1fff != 0) or (ip6 and ip6[6] = 44)"
    )
    if not peers:
        return ike
    hosts = " or ".join(f"host {ipaddress.ip_address(p)}" for p in peers)
    return f"({hosts}) and ({ike})"


class _Capture:
    """One interface's socket and capture thread."""

    def __init__(self, sock: Any, sniffer: Any, linktype: int) -> None:
        self.sock = sock
        self.sniffer = sniffer
        self.linktype = linktype

    def alive(self) -> bool:
        thread = getattr(self.sniffer, "thread", None)
        return thread is not None and thread.is_alive()

    def drops(self) -> int:
        """Kernel drops since the last call (PACKET_STATISTICS resets on read)."""
        raw = self.sock.ins.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        return int(struct.unpack("II", raw)[1])

    def close(self) -> None:
        try:
            if self.sniffer.running:
                self.sniffer.stop(join=True)
        except Exception as exc:  # a dead thread re-raises its own error here; already reported
            log.debug("ike sniffer stop: %s", exc)
        try:
            self.sock.close()
        except OSError:
            pass


class IkeSniffer:
    """See the module docstring."""

    def __init__(
        self,
        interfaces: list[str],
        peers: list[str],
        mtu: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        netns: str | None = None,
    ) -> None:
        self.interfaces = list(dict.fromkeys(interfaces))
        self.netns = netns
        self.peers = _parse_peers(peers)
        self.mtu = mtu
        self.filter = bpf_filter(self.peers)
        self._clock = clock
        self._lock = threading.Lock()
        label = peer_matcher(self.peers) if self.peers else pair_label
        offset = time.time() - clock()
        self._analyzers = {i: Analyzer(mtu, label, max_events=200, wall_offset=offset) for i in self.interfaces}
        self._captures: dict[str, _Capture] = {}
        self._up = dict.fromkeys(self.interfaces, False)
        self._errors: dict[str, str] = {}
        self._drops = dict.fromkeys(self.interfaces, 0)
        self._internal_errors = 0
        self._last_try: dict[str, float] = {}
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None

    # -- IkeSource ---------------------------------------------------------------------------
    def start(self) -> None:
        for iface in self.interfaces:
            self._open(iface)
        self._stop.clear()
        self._timer = threading.Thread(target=self._timer_loop, name="ike-sniffer-timer", daemon=True)
        self._timer.start()

    def stop(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join(timeout=5)
            self._timer = None
        for iface, cap in list(self._captures.items()):
            self._collect_drops(iface, cap)
            cap.close()
        self._captures.clear()
        now = self._clock()
        with self._lock:
            for iface in self.interfaces:
                self._up[iface] = False
                self._analyzers[iface].finish(now)

    def snapshot(self) -> IkeSnapshot:
        snap = IkeSnapshot()
        with self._lock:
            for iface, a in self._analyzers.items():
                for peer, ps in a.peers.items():
                    for exch, n in ps.messages.items():
                        snap.messages[(iface, peer, exch)] = n
                    for exch, n in ps.ip_fragmented.items():
                        snap.fragmented[(iface, peer, exch, "ip")] = n
                    for exch, n in ps.ikev2_fragmented.items():
                        snap.fragmented[(iface, peer, exch, "ikev2")] = n
                    for sa in ("ike", "child"):
                        snap.rekeys[(iface, peer, sa)] = ps.rekeys[sa]
                    for exch, n in ps.largest.items():
                        snap.largest[(iface, peer, exch)] = n
                    snap.unanswered_fragmented_requests[(iface, peer)] = ps.unanswered_fragmented_requests
                snap.malformed[iface] = sum(a.malformed.values())
                snap.sniffer_up[iface] = self._up[iface]
                snap.kernel_drops[iface] = self._drops[iface]
        return snap

    # -- extras for `watchdog ike sniff` -------------------------------------------------------
    def errors(self) -> dict[str, str]:
        with self._lock:
            return dict(self._errors)

    def reports(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {i: to_json(a) for i, a in self._analyzers.items()}

    def problem_found(self) -> bool:
        with self._lock:
            return any(problem_found(a) for a in self._analyzers.values())

    # -- internals -----------------------------------------------------------------------------
    def _open(self, iface: str) -> None:
        self._last_try[iface] = self._clock()
        try:
            cap = self._open_capture(iface)
        except Exception as exc:
            reason = _explain(exc)
            with self._lock:
                first = self._errors.get(iface) != reason
                self._up[iface] = False
                self._errors[iface] = reason
            if first:
                log.error("ike sniffer on %s is DOWN: %s", iface, reason)
            return
        self._captures[iface] = cap
        with self._lock:
            self._up[iface] = True
            was_down = self._errors.pop(iface, None)
        log.info("ike sniffer on %s: capturing (%s)%s", iface, self.filter, " again" if was_down else "")

    def _open_capture(self, iface: str) -> _Capture:
        import scapy.layers.l2  # noqa: F401  (registers link types; without it scapy warns per socket)
        from scapy.config import conf
        from scapy.sendrecv import AsyncSniffer

        # Opening the socket compiles and attaches the filter now: a bad filter or a missing libpcap
        # fails here, not silently inside the capture thread.
        sock: Any
        if self.netns is None:
            sock = conf.L2listen(iface=iface, filter=self.filter)
        else:
            from watchdog.netns import call_in_netns

            sock = _wrap_packet_socket(call_in_netns(self.netns, _open_packet_socket, iface, self.filter))
        try:
            try:
                sock.ins.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            except OSError:
                pass
            arphrd = sock.ins.getsockname()[3]
            if arphrd in _ETHERNET_ARPHRD:
                linktype = LINKTYPE_ETHERNET
            elif arphrd in _RAW_ARPHRD:
                linktype = LINKTYPE_RAW
            else:
                linktype = LINKTYPE_LINUX_SLL if sock.LL.__name__ == "CookedLinux" else LINKTYPE_ETHERNET
            sock.LL = conf.raw_layer  # hand us bytes; no scapy dissection per packet
            cap = _Capture(sock, None, linktype)
            analyzer = self._analyzers[iface]

            def on_packet(pkt: Any) -> None:
                self._on_packet(analyzer, linktype, pkt)

            cap.sniffer = AsyncSniffer(opened_socket=sock, store=False, prn=on_packet)
            cap.sniffer.start()
            cap.drops()  # reset the counter: drops before we started reading are not ours
        except Exception:
            sock.close()
            raise
        return cap

    def _on_packet(self, analyzer: Analyzer, linktype: int, pkt: Any) -> None:
        data = getattr(pkt, "load", None)
        if data is None:
            data = bytes(pkt)
        now = self._clock()
        try:
            with self._lock:
                analyzer.feed(now, linktype, data)
        except Exception:  # a parser bug must not kill the capture thread
            self._internal_errors += 1
            if self._internal_errors == 1:
                log.exception("ike sniffer: error while parsing a packet (counted as malformed)")
            with self._lock:
                analyzer.malformed["internal_error"] += 1

    def _collect_drops(self, iface: str, cap: _Capture) -> None:
        try:
            n = cap.drops()
        except OSError:
            return
        if n:
            with self._lock:
                self._drops[iface] += n

    def _timer_loop(self) -> None:
        while not self._stop.wait(1.0):
            now = self._clock()
            with self._lock:
                for a in self._analyzers.values():
                    a.tick(now)
            for iface in self.interfaces:
                cap = self._captures.get(iface)
                if cap is not None:
                    self._collect_drops(iface, cap)
                    if cap.alive():
                        continue
                    exc = getattr(cap.sniffer, "exception", None)
                    reason = _explain(exc) if exc is not None else "capture thread stopped"
                    del self._captures[iface]
                    cap.close()
                    with self._lock:
                        self._up[iface] = False
                        self._errors[iface] = reason
                    log.error("ike sniffer on %s is DOWN: %s", iface, reason)
                    self._last_try[iface] = now
                elif now - self._last_try.get(iface, 0.0) >= RETRY_SECONDS and not self._stop.is_set():
                    self._open(iface)


def _open_packet_socket(iface: str, flt: str) -> socket.socket:
    """An AF_PACKET socket on `iface` with the BPF attached, in the CALLING THREAD's namespace.

    For `netns:`: scapy's interface table describes the host's namespace (and may even hold another
    interface of the same name), so the interface is described to scapy's filter compiler by hand.
    """
    from scapy.arch.linux import attach_filter
    from scapy.interfaces import NetworkInterface

    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as probe:  # protocol 0: receives nothing
        probe.bind((iface, 0))
        arphrd = probe.getsockname()[3]
    ins = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        dev = NetworkInterface(cast(Any, None), {"name": iface, "network_name": iface, "type": arphrd})
        attach_filter(ins, flt, dev)  # compiles for dev's link type; no lookup in the host's table
        ins.bind((iface, ETH_P_ALL))
        ins.setblocking(False)
        try:
            while True:  # drop what arrived between socket() and the filter: it was not filtered
                ins.recv(65536)
        except BlockingIOError:
            pass
        ins.setblocking(True)
    except BaseException:
        ins.close()
        raise
    return ins


@functools.cache
def _packet_socket_class() -> type:
    from scapy.config import conf
    from scapy.supersocket import SuperSocket

    class PacketSocket(SuperSocket):
        """scapy's view of a socket we opened ourselves: hands every frame over as raw bytes."""

        desc = "AF_PACKET listener opened inside a network namespace"

        def __init__(self, ins: socket.socket) -> None:
            self.ins = ins
            self.outs = None
            self.LL = conf.raw_layer

        def recv_raw(self, x: int = 65535) -> tuple[Any, bytes, None]:
            return conf.raw_layer, self.ins.recv(x), None

    return PacketSocket


def _wrap_packet_socket(ins: socket.socket) -> Any:
    """The class is built on first use: importing scapy costs most of a second."""
    return _packet_socket_class()(ins)


def _parse_peers(peers: list[str]) -> list[str]:
    out = []
    for p in peers:
        try:
            out.append(str(ipaddress.ip_address(p)))
        except ValueError:
            raise ConfigError(f"ike peer {p!r} is not an IP address") from None
    return out


def _explain(exc: BaseException) -> str:
    """One clear sentence per known failure cause."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, PermissionError):
        return f"permission denied opening a packet socket (needs root or CAP_NET_RAW): {text}"
    if "libpcap" in text:
        return f"libpcap is missing (install libpcap0.8): {text}"
    if "filter" in text.lower():
        return f"the capture filter was rejected: {text}"
    if (isinstance(exc, OSError) and exc.errno in (19, 6, 100)) or "not found" in text:  # ENODEV/ENXIO/ENETDOWN
        return f"interface not available: {text}"
    return f"{type(exc).__name__}: {text}"
