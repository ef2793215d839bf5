"""DNS probe: ask one resolver one question and judge the reply.

Queries `query`/`record_type` at the configured server (or the first reachable nameserver of
/etc/resolv.conf) over UDP, retrying over TCP when the reply is truncated, and turns the outcome
into a `ProbeResult` with a stable, low-cardinality `reason`. It must not raise, must not retry
past its timeout, and must not cache: every run asks the wire.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import time
from dataclasses import dataclass, field

import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.flags
import dns.inet
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.resolver

from watchdog.config import DnsProbeConfig, split_server
from watchdog.errors import ProbeFailure
from watchdog.model import ProbeResult

log = logging.getLogger(__name__)

SYSTEM_RESOLV_CONF = "/etc/resolv.conf"
# run() gives its own work `timeout` seconds, then this much to tidy up before it gives up too.
_MARGIN = 0.05
_NETWORK_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ENETUNREACH,
    errno.EHOSTUNREACH,
    errno.EHOSTDOWN,
    errno.ENETDOWN,
    errno.EADDRNOTAVAIL,
    errno.ECONNRESET,
    errno.EPERM,  # a local firewall rejecting the packet on output
    errno.EACCES,
}
_MAX_SHOWN = 4  # answers listed in `detail`


@dataclass
class _Attempt:
    """What one run observed, filled in as it goes (so a timeout still reports what happened)."""

    latencies: list[float] = field(default_factory=list)
    used_tcp: bool = False
    server: str = ""


class DnsProbe:
    """One configured DNS probe (`type: dns`). Impossible query names and expected values are
    rejected by the config loader (`watchdog.config.DnsProbeConfig`), before a probe exists."""

    type = "dns"

    def __init__(self, config: DnsProbeConfig, *, resolv_conf: str = SYSTEM_RESOLV_CONF) -> None:
        self.config = config
        self.name = config.name
        self.timeout = config.timeout  # the work budget of one run; the scheduler enforces it from outside
        self.target = f"{config.query}@{config.server or 'system'}"
        self._resolv_conf = resolv_conf
        self._rdtype = dns.rdatatype.from_text(config.record_type)
        # The config loader already rejected impossible query names and expected values.
        self._qname = dns.name.from_text(config.query)

    async def run(self) -> ProbeResult:
        start = time.monotonic()
        attempt = _Attempt()
        try:
            detail = await asyncio.wait_for(self._run(attempt, start + self.timeout), self.timeout + _MARGIN)
            return self._result(start, attempt, True, "", detail)
        except ProbeFailure as failure:
            return self._result(start, attempt, False, failure.reason, failure.detail)
        except (TimeoutError, dns.exception.Timeout):
            where = f" from {attempt.server}" if attempt.server else ""
            return self._result(start, attempt, False, "timeout", f"no reply{where} within {self.timeout:g}s")
        except Exception as exc:  # never raise: an unexpected failure is still a result
            log.warning("probe %s: unexpected error: %r", self.name, exc)
            return self._result(start, attempt, False, "error", _short(exc))

    def _result(self, start: float, attempt: _Attempt, success: bool, reason: str, detail: str) -> ProbeResult:
        return ProbeResult.of(self, start, success, reason, detail, latencies=tuple(attempt.latencies))

    async def _run(self, attempt: _Attempt, deadline: float) -> str:
        servers = self._servers()
        failure: ProbeFailure | None = None
        for i, (host, port) in enumerate(servers):
            # Share what is left between the servers still to try, like a stub resolver would.
            budget = (deadline - time.monotonic()) / (len(servers) - i)
            attempt.server = _display(host, port)
            try:
                reply = await self._ask(attempt, host, port, budget)
            except (TimeoutError, dns.exception.Timeout):
                failure = ProbeFailure("timeout", f"no reply from {attempt.server} within {self.timeout:g}s")
                continue
            except ProbeFailure as exc:
                if exc.reason != "network_error":
                    raise
                failure = exc
                continue
            return self._judge(reply, attempt)
        assert failure is not None
        raise failure

    def _servers(self) -> list[tuple[str, int]]:
        if self.config.server is not None:
            return [split_server(self.config.server)]
        try:
            resolver = dns.resolver.Resolver(filename=self._resolv_conf, configure=True)
        except (OSError, dns.exception.DNSException) as exc:
            detail = f"system resolver: cannot read {self._resolv_conf}: {_short(exc)}"
            raise ProbeFailure("network_error", detail) from exc
        servers = [(str(ns), 53) for ns in resolver.nameservers if _is_ip(str(ns))]
        if not servers:
            raise ProbeFailure("network_error", f"system resolver: no nameserver in {self._resolv_conf}")
        return servers

    async def _ask(self, attempt: _Attempt, host: str, port: int, budget: float) -> dns.message.Message:
        """UDP first; TCP when the reply has the TC bit set."""
        query = dns.message.make_query(self._qname, self._rdtype)
        deadline = time.monotonic() + budget
        try:
            backend = dns.asyncbackend.get_backend("asyncio")
            family = dns.inet.af_for_address(host)
            # A connected socket, so an ICMP port/host unreachable surfaces as an error at once
            # instead of waiting out the whole timeout.
            source = (self.config.source, 0) if self.config.source else None
            sock = await backend.make_socket(family, socket.SOCK_DGRAM, 0, source, (host, port))
            async with sock:
                sent = time.monotonic()
                try:
                    reply = await dns.asyncquery.udp(
                        query, host, timeout=budget, port=port, sock=sock, raise_on_truncation=True
                    )
                    attempt.latencies.append(time.monotonic() - sent)
                    return reply
                except dns.message.Truncated:
                    attempt.latencies.append(time.monotonic() - sent)
            attempt.used_tcp = True
            sent = time.monotonic()
            reply = await dns.asyncquery.tcp(
                query, host, timeout=max(deadline - sent, 0.001), port=port, source=self.config.source
            )
            attempt.latencies.append(time.monotonic() - sent)
            return reply
        except OSError as exc:
            if exc.errno in _NETWORK_ERRNOS or isinstance(exc, ConnectionError):
                raise ProbeFailure("network_error", f"{attempt.server}: {_short(exc)}") from exc
            raise
        except EOFError as exc:
            raise ProbeFailure("network_error", f"{attempt.server}: connection closed") from exc
        except dns.exception.FormError as exc:
            raise ProbeFailure("bad_response", f"{attempt.server}: malformed reply: {_short(exc)}") from exc

    def _judge(self, reply: dns.message.Message, attempt: _Attempt) -> str:
        via = " (over TCP after a truncated UDP reply)" if attempt.used_tcp else ""
        rcode = reply.rcode()
        if rcode != dns.rcode.NOERROR:
            text = dns.rcode.to_text(rcode)
            reason = text.lower() if rcode in _NAMED_RCODES else f"rcode_{text.lower()}"
            raise ProbeFailure(reason, f"{attempt.server} says {text}{via}")
        answers = self._answers(reply)
        if not answers:
            raise ProbeFailure("wrong_answer", f"no {self.config.record_type} records in the answer{via}")
        missing = [value for value in self.config.expect if _normalize(value, self._rdtype) not in answers]
        shown = _show(sorted(answers, key=_sort_key))
        if missing:
            raise ProbeFailure("wrong_answer", f"expected {', '.join(missing)}, got {shown}{via}")
        return f"answers {shown}{via}"

    def _answers(self, reply: dns.message.Message) -> set[str]:
        values: set[str] = set()
        for rrset in reply.answer:
            if rrset.rdtype == self._rdtype:
                values.update(_normalize(rdata.to_text(), self._rdtype) for rdata in rrset)
        return values


_NAMED_RCODES = {dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL, dns.rcode.REFUSED}


def _normalize(value: str, rdtype: dns.rdatatype.RdataType) -> str:
    """Compare answers the way a person means them: `10.0.0.01`-free addresses, names without the dot."""
    value = value.strip()
    if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            return value
    if rdtype == dns.rdatatype.TXT:
        return value.replace('" "', "").strip('"')
    return value.lower().rstrip(".")


def _show(values: list[str]) -> str:
    if len(values) <= _MAX_SHOWN:
        return ", ".join(values)
    return f"{', '.join(values[:_MAX_SHOWN])} (+{len(values) - _MAX_SHOWN} more)"


def _display(host: str, port: int) -> str:
    if port == 53:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _sort_key(value: str) -> tuple[int, int, str]:
    """Addresses in numeric order, anything else after them alphabetically."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return (1, 0, value)
    return (0, int(address), value)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _short(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
