"""The AWS exporter: Site-to-Site VPN tunnels, their BGP sessions and TGW-learned prefixes via boto3.

One `poll()` reads, in this order: DescribeVpnConnections, DescribeCustomerGateways (one call for
all), DescribeTransitGatewayAttachments (vpn -> attachment ids), DescribeTransitGatewayRouteTables
(only when no route tables are configured) and SearchTransitGatewayRoutes per route table. The
number of calls grows with connections' gateways and route tables (and pages), never with tunnels
or routes.

What it must not do: keep, log, return or put in an error message a `PreSharedKey` or the
`CustomerGatewayConfiguration` XML (both are dropped right after parsing, and botocore's own debug
log of response bodies is redacted); let a boto3 type or exception leave this module; run past its
timeout: botocore's connect/read timeouts and standard-mode attempts are sized from it, and the
deadline is checked before every call and every HTTP attempt (retries included). An attempt already
in flight when the deadline passes may still finish, so the worst case is the timeout plus one read
timeout (timeout / attempts); a server's Retry-After can stretch botocore's backoff the same way.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound
from botocore.parsers import ResponseParserError

from exporters.aws_errors import DeadlineExceeded, translate
from watchdog.config import AwsExporterConfig
from watchdog.errors import ConfigError, ExporterError
from watchdog.model import BgpSession, LearnedRoute, Snapshot, Tunnel

log = logging.getLogger(__name__)

_GONE_STATES = frozenset({"deleted", "deleting"})
_UNUSABLE_ROUTE_STATES = frozenset({"blackhole", "deleted", "deleting"})
_SECRET_KEYS = frozenset({"PreSharedKey", "CustomerGatewayConfiguration"})
_ROUTE_PAGE = 1000


def _retry_budget(timeout: float) -> tuple[int, float, float]:
    """(total attempts, connect timeout, read timeout) so that one call's retries fit in `timeout`.

    Each attempt gets an equal share of the poll; botocore's standard-mode backoff between them is
    short for non-throttling errors, and the before-send deadline check stops any attempt that
    would start after the poll ran out.
    """
    attempts = 3 if timeout >= 10 else 2 if timeout >= 2 else 1
    read = max(0.2, timeout / attempts)
    return attempts, min(read, 10.0), read


class _SecretRedactingFilter(logging.Filter):
    """botocore logs raw response bodies at DEBUG; EC2 VPN responses carry pre-shared keys."""

    _MARKERS = ("PreSharedKey", "preSharedKey", "pre_shared_key", "customerGatewayConfiguration")

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a broken record is not ours to fix; drop its arguments
            text = str(record.msg)
        if any(marker in text for marker in self._MARKERS):
            record.msg = "(botocore log record withheld: it contains VPN secrets)"
            record.args = None
        return True


_REDACTOR = _SecretRedactingFilter()
_REDACT_LOCK = threading.Lock()


def _install_redactor() -> None:
    # Logger filters only see records created on that very logger, so each body-logging one.
    with _REDACT_LOCK:
        for name in ("botocore.parsers", "botocore.endpoint", "botocore.hooks", "botocore.retries.standard"):
            logger = logging.getLogger(name)
            if _REDACTOR not in logger.filters:
                logger.addFilter(_REDACTOR)


def _strip_secrets(value: Any) -> Any:
    """A copy of a parsed response without any secret-bearing key, at any depth."""
    if isinstance(value, dict):
        return {k: _strip_secrets(v) for k, v in value.items() if k not in _SECRET_KEYS}
    if isinstance(value, list):
        return [_strip_secrets(v) for v in value]
    return value


def _inside_hosts(cidr: str | None) -> tuple[str, str]:
    """(AWS, customer) inside addresses: the first and second host of the /30 (or /126)."""
    if not cidr:
        return "", ""
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return "", ""
    if net.num_addresses < 4:
        return "", ""
    return str(net.network_address + 1), str(net.network_address + 2)


def _ip_key(value: str) -> tuple[int, int, str]:
    try:
        addr = ipaddress.ip_address(value)
        return addr.version, int(addr), value
    except ValueError:
        return 99, 0, value


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    timestamp = getattr(value, "timestamp", None)
    if callable(timestamp):
        return float(timestamp())
    if isinstance(value, (int, float)):
        return float(value)
    return None


class AwsExporter:
    """Polls one region's VPN connections (and their TGW routes) into a `Snapshot`."""

    cloud = "aws"

    def __init__(self, config: AwsExporterConfig, *, timeout: float) -> None:
        self.name = config.name
        self._config = config
        self._timeout = float(timeout)
        self._deadline = float("inf")
        self._calls = 0
        attempts, connect, read = _retry_budget(self._timeout)
        _install_redactor()
        try:
            session = boto3.session.Session(profile_name=config.profile, region_name=config.region)
        except ProfileNotFound:
            raise ConfigError(
                f"exporter {config.name!r}: AWS profile {config.profile!r} is not in the shared config"
            ) from None
        self._ec2 = session.client(
            "ec2",
            endpoint_url=config.endpoint_url,
            config=BotoConfig(
                region_name=config.region,
                connect_timeout=connect,
                read_timeout=read,
                retries={"mode": "standard", "total_max_attempts": attempts},
                user_agent_extra="vpn-watchdog",
            ),
        )
        self._last_attempt: dict[str, Any] | None = None
        self._ec2.meta.events.register("before-send.ec2", self._check_deadline)
        self._ec2.meta.events.register("needs-retry.ec2", self._note_attempt)
        self._where = f"region {config.region} at {self._ec2.meta.endpoint_url}"

    # -- plumbing ---------------------------------------------------------------------------

    def _check_deadline(self, **_: Any) -> None:
        """Runs before every HTTP attempt, retries included."""
        if time.monotonic() >= self._deadline:
            raise DeadlineExceeded(f"the poll ran past its {self._timeout:g}s timeout")

    def _note_attempt(self, response: Any = None, **_: Any) -> None:
        """Remembers the last failed attempt, so a deadline hit while backing off says why."""
        # Only error documents are kept: a successful parsed response may carry pre-shared keys.
        if isinstance(response, tuple) and len(response) == 2 and isinstance(response[1], dict):
            if response[1].get("Error"):
                self._last_attempt = {k: response[1].get(k) for k in ("Error", "ResponseMetadata")}
        return None

    def _call(self, operation: str, method: Callable[..., dict[str, Any]], **params: Any) -> dict[str, Any]:
        if time.monotonic() >= self._deadline:
            raise ExporterError(
                "timeout",
                f"poll of {self.name} ran past its {self._timeout:g}s timeout before {operation} ({self._where})",
            )
        self._calls += 1
        self._last_attempt = None
        unparseable: ExporterError | None = None
        try:
            response = method(**params)
        except ResponseParserError as exc:
            unparseable = translate(exc, operation=operation, where=self._where)
        except DeadlineExceeded as exc:
            raise self._deadline_error(operation, exc) from exc
        except (ClientError, BotoCoreError, OSError) as exc:
            raise translate(exc, operation=operation, where=self._where) from exc
        if unparseable is not None:
            # Raised outside the handler so neither __cause__ nor __context__ keeps botocore's
            # exception: its message embeds the raw body, which may hold a pre-shared key.
            raise unparseable
        return _strip_secrets(response)  # type: ignore[no-any-return]

    def _deadline_error(self, operation: str, exc: DeadlineExceeded) -> ExporterError:
        """Out of time while retrying: a still-throttled API is `throttled`, anything else `timeout`."""
        last = self._last_attempt or {}
        if last.get("Error"):
            previous = ClientError(last, operation)
            error = translate(previous, operation=operation, where=self._where)
            if error.reason == "throttled":
                return ExporterError(
                    "throttled",
                    f"{error} (still throttled when the poll ran out of time)",
                    retry_after=error.retry_after,
                )
        return translate(exc, operation=operation, where=self._where)

    def _pages(
        self, operation: str, method: Callable[..., dict[str, Any]], key: str, **params: Any
    ) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            page = self._call(operation, method, **params, **({"NextToken": token} if token else {}))
            yield from page.get(key) or []
            token = page.get("NextToken")
            if not token:
                return

    # -- the poll ---------------------------------------------------------------------------

    def poll(self) -> Snapshot:
        self._calls = 0
        self._deadline = time.monotonic() + self._timeout
        try:
            return self._poll()
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ExporterError(
                "malformed", f"unexpected response shape ({self._where}): {type(exc).__name__}"
            ) from exc
        finally:
            self._deadline = float("inf")

    def _poll(self) -> Snapshot:
        params: dict[str, Any] = {}
        if self._config.vpn_connections:
            params["VpnConnectionIds"] = list(self._config.vpn_connections)
        described = self._call("DescribeVpnConnections", self._ec2.describe_vpn_connections, **params)
        connections = [c for c in described.get("VpnConnections") or [] if c.get("State") not in _GONE_STATES]
        connections.sort(key=lambda c: str(c["VpnConnectionId"]))
        peer_ips = self._customer_gateway_ips(connections)

        tunnels: list[Tunnel] = []
        sessions: list[BgpSession] = []
        for conn in connections:
            conn_tunnels = self._tunnels(conn, peer_ips.get(str(conn.get("CustomerGatewayId")), ""))
            tunnels.extend(conn_tunnels)
            options = conn.get("Options") or {}
            if not options.get("StaticRoutesOnly", False):
                router = str(conn.get("TransitGatewayId") or conn.get("VpnGatewayId") or "")
                sessions.extend(self._bgp_session(router, t) for t in conn_tunnels)

        routes = self._learned_routes(connections)
        log.debug(
            "%s: %d connections, %d tunnels, %d routes in %d API calls",
            self.name,
            len(connections),
            len(tunnels),
            len(routes),
            self._calls,
        )
        return Snapshot(
            exporter=self.name,
            cloud=self.cloud,
            taken_at=time.time(),
            tunnels=tuple(tunnels),
            bgp_sessions=tuple(sessions),
            routes=tuple(routes),
            api_calls=self._calls,
        )

    def _customer_gateway_ips(self, connections: list[dict[str, Any]]) -> dict[str, str]:
        ids = sorted({str(c["CustomerGatewayId"]) for c in connections if c.get("CustomerGatewayId")})
        if not ids:
            return {}
        response = self._call("DescribeCustomerGateways", self._ec2.describe_customer_gateways, CustomerGatewayIds=ids)
        return {
            str(g["CustomerGatewayId"]): str(g.get("IpAddress") or "") for g in response.get("CustomerGateways") or []
        }

    def _tunnels(self, conn: dict[str, Any], peer_ip: str) -> list[Tunnel]:
        """Telemetry joined with tunnel options on the outside IP (AWS does not promise an order)."""
        vpn_id = str(conn["VpnConnectionId"])
        telemetry = {str(t["OutsideIpAddress"]): t for t in conn.get("VgwTelemetry") or []}
        options = {
            str(o["OutsideIpAddress"]): o
            for o in (conn.get("Options") or {}).get("TunnelOptions") or []
            if o.get("OutsideIpAddress")
        }
        result: list[Tunnel] = []
        for ip in sorted(set(telemetry) | set(options), key=_ip_key):
            tele = telemetry.get(ip, {})
            opts = options.get(ip, {})
            status = str(tele.get("Status") or "UNKNOWN")
            inside = opts.get("TunnelInsideCidr") or opts.get("TunnelInsideIpv6Cidr")
            accepted = tele.get("AcceptedRouteCount")
            result.append(
                Tunnel(
                    connection=vpn_id,
                    name=ip,
                    local_ip=ip,
                    peer_ip=peer_ip,
                    up=status == "UP",
                    status=status,
                    detail=str(tele.get("StatusMessage") or ""),
                    status_change=_epoch(tele.get("LastStatusChange")),
                    inside_cidr=str(inside) if inside else None,
                    accepted_routes=int(accepted) if accepted is not None else None,
                )
            )
        return result

    @staticmethod
    def _bgp_session(router: str, tunnel: Tunnel) -> BgpSession:
        local_ip, peer_ip = _inside_hosts(tunnel.inside_cidr)
        return BgpSession(
            router=router,
            peer=tunnel.name,
            local_ip=local_ip,
            peer_ip=peer_ip,
            up=tunnel.up,
            # AWS exposes no BGP state machine; VgwTelemetry Status is UP only once BGP is
            # established on a dynamic-routing tunnel, so that is the best available proxy.
            state="Established" if tunnel.up else "Down",
            received_prefixes=tunnel.accepted_routes,
            tunnel=tunnel.name,
        )

    # -- learned prefixes -------------------------------------------------------------------

    def _learned_routes(self, connections: list[dict[str, Any]]) -> list[LearnedRoute]:
        ours = {str(c["VpnConnectionId"]) for c in connections if c.get("TransitGatewayId")}
        if not ours:
            return []
        gateways = sorted({str(c["TransitGatewayId"]) for c in connections if c.get("TransitGatewayId")})
        attachments = {
            str(a["TransitGatewayAttachmentId"]): str(a["ResourceId"])
            for a in self._pages(
                "DescribeTransitGatewayAttachments",
                self._ec2.describe_transit_gateway_attachments,
                "TransitGatewayAttachments",
                Filters=[
                    {"Name": "resource-type", "Values": ["vpn"]},
                    {"Name": "transit-gateway-id", "Values": gateways},
                    {"Name": "resource-id", "Values": sorted(ours)},
                ],
            )
            if a.get("ResourceId") in ours and a.get("State") not in _GONE_STATES
        }
        routes: list[LearnedRoute] = []
        for table in self._route_tables(gateways):
            routes.extend(self._propagated_routes(table, ours, attachments))
        return sorted(routes, key=lambda r: (r.router, r.prefix, r.next_hop))

    def _route_tables(self, gateways: list[str]) -> list[str]:
        if self._config.transit_gateway_route_tables:
            return list(self._config.transit_gateway_route_tables)
        tables = self._pages(
            "DescribeTransitGatewayRouteTables",
            self._ec2.describe_transit_gateway_route_tables,
            "TransitGatewayRouteTables",
            Filters=[{"Name": "transit-gateway-id", "Values": gateways}],
        )
        return sorted(str(t["TransitGatewayRouteTableId"]) for t in tables if t.get("State") not in _GONE_STATES)

    def _propagated_routes(self, table: str, ours: set[str], attachments: dict[str, str]) -> Iterable[LearnedRoute]:
        found = self._pages(
            "SearchTransitGatewayRoutes",
            self._ec2.search_transit_gateway_routes,
            "Routes",
            TransitGatewayRouteTableId=table,
            Filters=[
                {"Name": "type", "Values": ["propagated"]},
                {"Name": "attachment.resource-type", "Values": ["vpn"]},
            ],
            MaxResults=_ROUTE_PAGE,
        )
        for route in found:
            prefix = route.get("DestinationCidrBlock")
            if route.get("Type") != "propagated" or route.get("State") in _UNUSABLE_ROUTE_STATES or not prefix:
                continue
            for att in route.get("TransitGatewayAttachments") or []:
                att_id = str(att.get("TransitGatewayAttachmentId") or "")
                vpn_id = str(att.get("ResourceId") or attachments.get(att_id, ""))
                if att.get("ResourceType", "vpn") != "vpn" or vpn_id not in ours:
                    continue
                yield LearnedRoute(router=table, prefix=str(prefix), next_hop=att_id, connection=vpn_id)

    def close(self) -> None:
        self._ec2.close()
