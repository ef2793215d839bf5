"""A tiny authoritative DNS server on loopback (UDP + TCP) for the DNS probe tests.

It answers a fixed zone with one behaviour per name (resolves, an alias, NXDOMAIN, SERVFAIL,
REFUSED, NOTIMP, a wrong address, an empty answer, silence, a reply too large for UDP) and counts
the queries it saw per transport, so tests can prove e.g. that the probe fell back to TCP. It runs
in daemon threads so it is independent of the event loop under test. It must never listen anywhere
but loopback.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

ZONE = "probe.test."
ADDRESS = "198.18.1.10"
WRONG_ADDRESS = "198.18.1.99"
BIG_COUNT = 60  # 60 A records ~ 1000 bytes: more than the 512 bytes a plain UDP query allows


@dataclass
class FakeDnsServer:
    """Serve the fixed zone on `host`; port 0 picks a free one (same port for UDP and TCP)."""

    host: str = "127.0.0.1"
    port: int = 0
    queries: Counter[tuple[str, str]] = field(default_factory=Counter)  # (transport, name) -> n
    clients: Counter[tuple[str, str]] = field(default_factory=Counter)  # (transport, client address) -> n

    def __post_init__(self) -> None:
        self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._tcp.bind((self.host, self.port))
        self.port = self._tcp.getsockname()[1]
        self._tcp.listen(16)
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._udp.bind((self.host, self.port))
        except OSError:
            self._tcp.close()
            self._udp.close()
            raise
        self._stopped = threading.Event()
        self._threads = [
            threading.Thread(target=self._serve_udp, daemon=True),
            threading.Thread(target=self._serve_tcp, daemon=True),
        ]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def count(self, transport: str, name: str) -> int:
        return self.queries[(transport, name.lower().rstrip(".") + ".")]

    def start(self) -> FakeDnsServer:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        for sock in (self._udp, self._tcp):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def __enter__(self) -> FakeDnsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the zone ---------------------------------------------------------------------------------

    def answer(self, wire: bytes, transport: str) -> bytes | None:
        """Build the reply for one query, or None to stay silent."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        if not query.question:
            return None
        question = query.question[0]
        name = question.name.to_text().lower()
        self.queries[(transport, name)] += 1
        label = name.removesuffix("." + ZONE) if name.endswith("." + ZONE) else ""
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        if label == "silent":
            return None
        if label == "ok":
            self._add_a(reply, question.name, [ADDRESS])
        elif label == "alias":
            target = dns.name.from_text("ok." + ZONE)
            reply.answer.append(dns.rrset.from_text_list(question.name, 60, "IN", "CNAME", [target.to_text()]))
            if question.rdtype == dns.rdatatype.A:
                self._add_a(reply, target, [ADDRESS])
        elif label == "wrong":
            self._add_a(reply, question.name, [WRONG_ADDRESS])
        elif label == "empty":
            pass
        elif label == "servfail":
            reply.set_rcode(dns.rcode.SERVFAIL)
        elif label == "refused":
            reply.set_rcode(dns.rcode.REFUSED)
        elif label == "notimp":
            reply.set_rcode(dns.rcode.NOTIMP)
        elif label == "big":
            self._add_a(reply, question.name, [f"198.18.2.{i}" for i in range(1, BIG_COUNT + 1)])
        else:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        if question.rdtype not in (dns.rdatatype.A, dns.rdatatype.CNAME):
            reply.answer = []
        out = reply.to_wire()
        if transport == "udp" and len(out) > 512:
            reply.answer = []
            reply.flags |= dns.flags.TC
            out = reply.to_wire()
        return out

    @staticmethod
    def _add_a(reply: dns.message.Message, name: dns.name.Name, addresses: list[str]) -> None:
        reply.answer.append(dns.rrset.from_text_list(name, 60, "IN", "A", addresses))

    # --- transports ---------------------------------------------------------------------------------

    def _serve_udp(self) -> None:
        while not self._stopped.is_set():
            try:
                wire, peer = self._udp.recvfrom(4096)
            except OSError:
                return
            if peer is None:  # shut down while waiting
                return
            self.clients[("udp", peer[0])] += 1
            out = self.answer(wire, "udp")
            if out is not None:
                try:
                    self._udp.sendto(out, peer)
                except OSError:
                    pass

    def _serve_tcp(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, peer = self._tcp.accept()
            except OSError:
                return
            self.clients[("tcp", peer[0])] += 1
            threading.Thread(target=self._serve_conn, args=(conn,), daemon=True).start()

    def _serve_conn(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                while True:
                    head = _recv_exact(conn, 2)
                    if head is None:
                        return
                    wire = _recv_exact(conn, struct.unpack("!H", head)[0])
                    if wire is None:
                        return
                    out = self.answer(wire, "tcp")
                    if out is None:
                        continue
                    conn.sendall(struct.pack("!H", len(out)) + out)
            except OSError:
                return


def _recv_exact(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data
