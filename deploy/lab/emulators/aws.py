"""The one AWS fake, for the tests and the lab: moto 5.2.5's server on 127.0.0.1, its VPN gaps filled.

boto3 talks real HTTP to it (`endpoint_url`), so the code under test runs unmodified. moto 5.2.5
returns VPN connections without `VgwTelemetry` or `Options.TunnelOptions`, never produces propagated
TGW routes, crashes on `SearchTransitGatewayRoutes(MaxResults=...)` and lacks
`ModifyVpnTunnelOptions`; `MotoAws` fills these at moto's backend boundary (its model objects and
two response handlers), and puts a WSGI middleware in front of moto that records every request and
can inject faults (EC2 XML errors, garbage bodies, slow answers) at the HTTP boundary.

Typical use (a module-scoped server, state reset per test)::

    @pytest.fixture(scope="module")
    def moto_server():
        with MotoAws() as server:
            yield server

    @pytest.fixture
    def aws(moto_server, monkeypatch):
        moto_server.reset()
        moto_server.use_test_credentials(monkeypatch)
        return moto_server

    def test_x(aws):
        lab = aws.build_lab(connections=2)          # TGW + 2 CGWs + 2 BGP VPNs x 2 tunnels, all UP
        aws.set_telemetry(lab.connections[0].vpn_id, lab.connections[0].outside_ips[1], status="DOWN")
        aws.add_propagated_route(lab.route_table_id, "10.20.0.0/16", lab.connections[0].vpn_id)
        aws.fail("DescribeVpnConnections", code="RequestLimitExceeded", status=503)

API summary (every method takes `region=` and defaults to `MotoAws.region`):
- lifecycle: `start()`, `stop()`, context manager, `reset()` (moto state, faults, records), `endpoint_url`
- credentials: `use_test_credentials(monkeypatch)` (static keys, no shared files, no IMDS), `client()`
- objects: `create_transit_gateway()`, `default_route_table(tgw)`, `create_route_table(tgw)`,
  `create_customer_gateway(ip)`, `create_vpn_connection(cgw, tgw=..., outside_ips=..., inside_cidrs=...)`,
  `build_lab(connections=2)`, `set_state(vpn, state)`
- VPN gaps: `set_telemetry(vpn, outside_ip, status=, message=, accepted_routes=, last_change=)`,
  `set_tunnel_options(vpn, outside_ip, **options)`, `tunnel_options(vpn)` (current, response casing),
  `set_static_routes_only(vpn, bool)`
- TGW routes: `add_propagated_route(rt, prefix, *vpn_ids)`,
  `add_route(rt, prefix, attachments=..., type=, state=)`, `route_page_size` (the server-side page
  size of SearchTransitGatewayRoutes, to exercise NextToken)
- `enable_modify_vpn_tunnel_options()`: adds the missing action; `modify_calls` lists every call in order
- recording / faults: `requests` (every request: action, params, access key, region; JSON-protocol
  services such as CloudWatch Logs by their X-Amz-Target action), `calls(action)`,
  `fail(action, status=, code=, message=, headers=, body=, delay=, times=, where=)` (`where`: a
  predicate on the `RecordedRequest`, e.g. one account's), `clear_faults()`; several accounts:
  `tests.fakes.aws_accounts`
- `before_request`: callables run with the action name before moto answers a request (the lab
  emulator refreshes its live values there)
- an action moto does not implement answers AWS's own error at once, and is logged (WARNING): EC2
  `400 InvalidAction` (its XML error document), a JSON-protocol service `400
  UnknownOperationException`; moto alone would answer 500 with an HTML page

Addresses are lab ranges only: AWS outside IPs from 203.0.113.0/24, customer gateways from
198.51.100.0/24, inside CIDRs from 169.254.0.0/16. `TEST_PSK` is the pre-shared key every tunnel is
given, so tests can prove it never leaks; moto's own config template carries `MOTO_TEMPLATE_PSK`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto.backends import get_backend
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.responses import ActionResult
from moto.ec2.responses.transit_gateway_route_tables import TransitGatewayRouteTable
from moto.ec2.responses.vpn_connections import VPNConnections
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

log = logging.getLogger(__name__)

_AMI_SETTING = "MOTO_EC2_LOAD_DEFAULT_AMIS"
TEST_PSK = "Known.Psk_ForTests.d41d8cd98f00b204"
MOTO_TEMPLATE_PSK = "Iw2IAN9XUsQeYUrkMGP3kP59ugFDkfHg"
TEST_ACCESS_KEY = "AKIATESTWATCHDOG0001"
TEST_SECRET_KEY = "test-secret-key-not-real"

_WSGI = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def ec2_error_body(code: str, message: str) -> bytes:
    """The EC2 (query protocol) XML error document."""
    from xml.sax.saxutils import escape

    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"</Error></Errors><RequestID>{uuid.uuid4()}</RequestID></Response>"
    ).encode()


def json_error_body(code: str, message: str) -> bytes:
    """The JSON-protocol (CloudWatch Logs) error document."""
    return json.dumps({"__type": code, "message": message}).encode()


def implemented(service: str, action: str) -> bool:
    """Whether moto's handler for `service` has a method for `action` (unknown services: assume so)."""
    from moto.core.utils import camelcase_to_underscores

    handler: type | None = None
    if service == "ec2":
        from moto.ec2.responses import EC2Response

        handler = EC2Response
    elif service == "logs":
        from moto.logs.responses import LogsResponse

        handler = LogsResponse
    return handler is None or callable(getattr(handler, camelcase_to_underscores(action), None))


@dataclass
class Fault:
    """One injected answer. `action=None` matches every request; `times=None` means forever.

    With `code` (or `body`) the fake answers itself; with only `delay` it waits, then lets moto answer.
    """

    action: str | None
    status: int = 500
    code: str | None = None
    message: str = "injected fault"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    delay: float = 0.0
    times: int | None = None
    where: Callable[[RecordedRequest], bool] | None = None  # only requests this accepts (e.g. one account's)


@dataclass(frozen=True)
class RecordedRequest:
    action: str
    params: dict[str, Any]  # query-protocol strings, or a JSON-protocol body
    access_key: str
    region: str


@dataclass(frozen=True)
class ModifyCall:
    """One ModifyVpnTunnelOptions call as the fake received it (request casing, e.g. IKEVersions)."""

    vpn_connection_id: str
    outside_ip: str
    options: dict[str, Any]


@dataclass(frozen=True)
class VpnInfo:
    vpn_id: str
    customer_gateway_id: str
    customer_gateway_ip: str
    attachment_id: str | None
    outside_ips: tuple[str, ...]
    inside_cidrs: tuple[str, ...]


@dataclass(frozen=True)
class Lab:
    transit_gateway_id: str
    route_table_id: str
    connections: tuple[VpnInfo, ...]


class _Middleware:
    """Records requests and answers injected faults before moto sees them."""

    def __init__(self, app: _WSGI, owner: MotoAws) -> None:
        self._app = app
        self._owner = owner

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        import io

        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        params = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        # Query protocol (EC2) names the action in the body; JSON protocol (CloudWatch Logs) in X-Amz-Target.
        target = str(environ.get("HTTP_X_AMZ_TARGET") or "").rpartition(".")[2]
        action = params.get("Action") or (query.get("Action") or [""])[0] or target
        if target and body:
            try:
                decoded = json.loads(body)
            except ValueError:
                decoded = {}
            params = decoded if isinstance(decoded, dict) else {}
        if not action:
            return self._app(environ, start_response)  # moto-api, dashboard, ...
        access_key, region, service = _credential_scope(environ.get("HTTP_AUTHORIZATION", ""))
        recorded = RecordedRequest(action, params, access_key, region)
        self._owner._record(recorded)
        fault = self._owner._take_fault(action, recorded)
        if fault is not None and fault.delay:
            self._owner._stopping.wait(fault.delay)
        if fault is None or (fault.code is None and fault.body is None):
            return self._moto(environ, start_response, service, action, bool(target))
        if target:
            payload = fault.body if fault.body is not None else json_error_body(fault.code or "", fault.message)
            content_type = "application/x-amz-json-1.1"
        else:
            payload = fault.body if fault.body is not None else ec2_error_body(fault.code or "", fault.message)
            content_type = "text/xml;charset=UTF-8"
        headers = [("Content-Type", content_type), ("Content-Length", str(len(payload)))]
        headers += list(fault.headers.items())
        start_response(f"{fault.status} Injected", headers)
        return [payload]

    def _moto(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        service: str,
        action: str,
        json_protocol: bool,
    ) -> Iterable[bytes]:
        """moto's answer, after the `before_request` hooks; AWS's error for an action moto lacks."""
        if not implemented(service, action):
            log.warning("400 not implemented: %s %s", service, action)
            if json_protocol:
                code, payload = "UnknownOperationException", json_error_body("UnknownOperationException", "")
                content_type = "application/x-amz-json-1.1"
            else:
                code = "InvalidAction"
                payload = ec2_error_body(code, f"The action {action} is not valid for this web service.")
                content_type = "text/xml;charset=UTF-8"
            start_response(f"400 {code}", [("Content-Type", content_type), ("Content-Length", str(len(payload)))])
            return [payload]
        for hook in list(self._owner.before_request):
            try:
                hook(action)
            except Exception:  # a failed refresh serves the last values; it must not fail the call
                log.exception("before_request hook for %s failed", action)
        return self._app(environ, start_response)


def _credential_scope(authorization: str) -> tuple[str, str, str]:
    """`AWS4-HMAC-SHA256 Credential=AKID/20261126/us-east-1/ec2/aws4_request, ...` -> (AKID, region, service)."""
    _, _, rest = authorization.partition("Credential=")
    parts = rest.split(",", 1)[0].split("/")
    return (parts[0], parts[2], parts[3]) if len(parts) >= 4 else ("", "", "")


class _QuietHandler(MotoRequestHandler):
    """No access log lines on stderr for every request."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class _Server(ThreadedMotoServer):
    """moto's threaded server with our middleware in front and an OS-chosen free port."""

    def __init__(self, owner: MotoAws, port: int = 0) -> None:
        super().__init__(ip_address="127.0.0.1", port=port, verbose=False)
        self._owner = owner

    def _server_entry(self) -> None:
        app = _Middleware(DomainDispatcherApplication(create_backend_app), self._owner)
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=_QuietHandler)
        self._server_ready_event.set()
        self._server.serve_forever()


class MotoAws:
    """The fake: start it once per test module, `reset()` between tests. See the module doc."""

    def __init__(self, region: str = "us-east-1", *, port: int = 0) -> None:
        self.region = region
        self.port = port  # 0: a free port the OS picks
        self.before_request: list[Callable[[str], None]] = []
        self.route_page_size = 1000
        self.requests: list[RecordedRequest] = []
        self.modify_calls: list[ModifyCall] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._patches: list[tuple[type, str, Any]] = []
        self._ip_counter = 0
        self._clients: dict[str, Any] = {}
        self._saved_ami_setting: str | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> MotoAws:
        self._stopping.clear()
        # Every reset rebuilds the EC2 backends; loading moto's default AMI catalogue costs ~0.5 s each.
        self._saved_ami_setting = os.environ.get(_AMI_SETTING)
        os.environ[_AMI_SETTING] = "false"
        self._patch(TransitGatewayRouteTable, "search_transit_gateway_routes", _paged_search(self))
        self._server = _Server(self, self.port)
        self._server.start()
        # moto's backends are process-wide: without this a second fake in one process (the next test
        # module) would start with the last one's VPN connections and their telemetry.
        self.reset()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases requests parked in an injected delay
        if self._server is not None:
            self._server.stop()
            self._server = None
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        for cls, name, original in reversed(self._patches):
            if original is None:
                delattr(cls, name)
            else:
                setattr(cls, name, original)
        self._patches.clear()
        if self._saved_ami_setting is None:
            os.environ.pop(_AMI_SETTING, None)
        else:
            os.environ[_AMI_SETTING] = self._saved_ami_setting

    def __enter__(self) -> MotoAws:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def reset(self) -> None:
        """Forget all moto state, faults and recorded requests (the server keeps running)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
        with self._lock:
            self._faults.clear()
            self.requests.clear()
            self.modify_calls.clear()
        self.route_page_size = 1000
        self._ip_counter = 0

    @staticmethod
    def use_test_credentials(monkeypatch: Any) -> None:
        """Static env credentials; no shared config files and no instance metadata lookups."""
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        monkeypatch.delenv("AWS_DEFAULT_PROFILE", raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    def client(self, region: str | None = None) -> Any:
        """A boto3 EC2 client for setting things up (cached: creating clients is slow)."""
        region = region or self.region
        if region not in self._clients:
            self._clients[region] = boto3.session.Session().client(
                "ec2",
                region_name=region,
                endpoint_url=self.endpoint_url,
                aws_access_key_id=TEST_ACCESS_KEY,
                aws_secret_access_key=TEST_SECRET_KEY,
            )
        return self._clients[region]

    def backend(self, region: str | None = None) -> Any:
        """moto's EC2 backend object for a region (where the gaps are filled)."""
        return get_backend("ec2")[DEFAULT_ACCOUNT_ID][region or self.region]

    # -- recording and faults ---------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def clear_requests(self) -> None:
        """Forget recorded requests (e.g. the setup's) so a test sees only what the code under test sent."""
        with self._lock:
            self.requests.clear()

    def calls(self, action: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if action is None or r.action == action]

    def fail(
        self,
        action: str | None = None,
        *,
        status: int = 500,
        code: str | None = None,
        message: str = "injected fault",
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        delay: float = 0.0,
        times: int | None = None,
        where: Callable[[RecordedRequest], bool] | None = None,
    ) -> Fault:
        """Answer matching requests with an EC2 error (`code`), a raw `body`, and/or after `delay` s."""
        fault = Fault(action, status, code, message, dict(headers or {}), body, delay, times, where)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, action: str, request: RecordedRequest | None = None) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.where is not None and (request is None or not fault.where(request)):
                    continue
                if fault.action in (None, action) and (fault.times is None or fault.times > 0):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    # -- objects ----------------------------------------------------------------------------

    def create_transit_gateway(self, asn: int = 64512, region: str | None = None) -> str:
        tgw = self.client(region).create_transit_gateway(
            Description="lab", Options={"AmazonSideAsn": asn, "VpnEcmpSupport": "enable"}
        )["TransitGateway"]
        return str(tgw["TransitGatewayId"])

    def default_route_table(self, tgw_id: str, region: str | None = None) -> str:
        tables = self.client(region).describe_transit_gateway_route_tables(
            Filters=[{"Name": "transit-gateway-id", "Values": [tgw_id]}]
        )["TransitGatewayRouteTables"]
        for table in tables:
            if table.get("DefaultAssociationRouteTable"):
                return str(table["TransitGatewayRouteTableId"])
        return str(tables[0]["TransitGatewayRouteTableId"])

    def create_route_table(self, tgw_id: str, region: str | None = None) -> str:
        table = self.client(region).create_transit_gateway_route_table(TransitGatewayId=tgw_id)
        return str(table["TransitGatewayRouteTable"]["TransitGatewayRouteTableId"])

    def create_customer_gateway(self, ip: str, asn: int = 65010, region: str | None = None) -> str:
        cgw = self.client(region).create_customer_gateway(BgpAsn=asn, IpAddress=ip, Type="ipsec.1")
        return str(cgw["CustomerGateway"]["CustomerGatewayId"])

    def _next_ips(self) -> tuple[tuple[str, str], tuple[str, str]]:
        n = self._ip_counter
        self._ip_counter += 1
        outside = (f"203.0.113.{10 + 2 * n}", f"203.0.113.{11 + 2 * n}")
        inside = (f"169.254.{10 + n}.0/30", f"169.254.{10 + n}.4/30")
        return outside, inside

    def create_vpn_connection(
        self,
        customer_gateway_id: str,
        *,
        transit_gateway_id: str | None = None,
        vpn_gateway_id: str | None = None,
        outside_ips: tuple[str, ...] | None = None,
        inside_cidrs: tuple[str, ...] | None = None,
        static_routes_only: bool = False,
        status: str = "UP",
        accepted_routes: int = 0,
        region: str | None = None,
    ) -> VpnInfo:
        """A VPN connection with 2 tunnels, full TunnelOptions (PSK = TEST_PSK) and telemetry."""
        default_outside, default_inside = self._next_ips()
        outside_ips = outside_ips or default_outside
        inside_cidrs = inside_cidrs or default_inside
        kwargs: dict[str, Any] = {"TransitGatewayId": transit_gateway_id} if transit_gateway_id else {}
        if vpn_gateway_id:
            kwargs["VpnGatewayId"] = vpn_gateway_id
        client = self.client(region)
        vpn = client.create_vpn_connection(
            Type="ipsec.1",
            CustomerGatewayId=customer_gateway_id,
            Options={"StaticRoutesOnly": static_routes_only},
            **kwargs,
        )["VpnConnection"]
        vpn_id = str(vpn["VpnConnectionId"])
        cgw = client.describe_customer_gateways(CustomerGatewayIds=[customer_gateway_id])
        conn = self.backend(region).vpn_connections[vpn_id]
        conn.options = {
            "StaticRoutesOnly": static_routes_only,
            "TunnelInsideIpVersion": "ipv4",
            "OutsideIpAddressType": "PublicIpv4",
            "TunnelOptions": [
                _default_tunnel_options(ip, cidr) for ip, cidr in zip(outside_ips, inside_cidrs, strict=True)
            ],
        }
        conn.routes = []
        conn.vgw_telemetry = [
            {
                "OutsideIpAddress": ip,
                "Status": status,
                "StatusMessage": f"{accepted_routes} BGP ROUTES" if status == "UP" else "IPSEC IS DOWN",
                "AcceptedRouteCount": accepted_routes,
                "LastStatusChange": dt.datetime(2026, 11, 26, 9, 0, 0, tzinfo=dt.UTC),
            }
            for ip in outside_ips
        ]
        attachment_id = None
        if transit_gateway_id:
            attachments = client.describe_transit_gateway_attachments(
                Filters=[{"Name": "resource-id", "Values": [vpn_id]}]
            )["TransitGatewayAttachments"]
            attachment_id = str(attachments[0]["TransitGatewayAttachmentId"])
        return VpnInfo(
            vpn_id=vpn_id,
            customer_gateway_id=customer_gateway_id,
            customer_gateway_ip=str(cgw["CustomerGateways"][0]["IpAddress"]),
            attachment_id=attachment_id,
            outside_ips=tuple(outside_ips),
            inside_cidrs=tuple(inside_cidrs),
        )

    def build_lab(self, connections: int = 2, *, region: str | None = None, **vpn_kwargs: Any) -> Lab:
        """A TGW, one customer gateway per connection (198.51.100.1, .2, ...) and its VPN connection.

        Each attachment is associated with and propagates to the TGW's default route table.
        """
        tgw = self.create_transit_gateway(region=region)
        table = self.default_route_table(tgw, region=region)
        client = self.client(region)
        infos = []
        for i in range(connections):
            cgw = self.create_customer_gateway(f"198.51.100.{i + 1}", region=region)
            info = self.create_vpn_connection(cgw, transit_gateway_id=tgw, region=region, **vpn_kwargs)
            assert info.attachment_id is not None
            client.associate_transit_gateway_route_table(
                TransitGatewayRouteTableId=table, TransitGatewayAttachmentId=info.attachment_id
            )
            client.enable_transit_gateway_route_table_propagation(
                TransitGatewayRouteTableId=table, TransitGatewayAttachmentId=info.attachment_id
            )
            infos.append(info)
        return Lab(transit_gateway_id=tgw, route_table_id=table, connections=tuple(infos))

    def set_state(self, vpn_id: str, state: str, region: str | None = None) -> None:
        self.backend(region).vpn_connections[vpn_id].state = state

    # -- the VPN gaps -----------------------------------------------------------------------

    def _telemetry_entry(self, vpn_id: str, outside_ip: str, region: str | None) -> dict[str, Any]:
        conn = self.backend(region).vpn_connections[vpn_id]
        for entry in conn.vgw_telemetry or []:
            if entry["OutsideIpAddress"] == outside_ip:
                return entry  # type: ignore[no-any-return]
        entry = {"OutsideIpAddress": outside_ip}
        conn.vgw_telemetry = [*(conn.vgw_telemetry or []), entry]
        return entry

    def set_telemetry(
        self,
        vpn_id: str,
        outside_ip: str,
        *,
        status: str | None = None,
        message: str | None = None,
        accepted_routes: int | None = None,
        last_change: dt.datetime | None = None,
        region: str | None = None,
    ) -> None:
        """Change one tunnel's VgwTelemetry (only the given fields)."""
        entry = self._telemetry_entry(vpn_id, outside_ip, region)
        for key, value in (
            ("Status", status),
            ("StatusMessage", message),
            ("AcceptedRouteCount", accepted_routes),
            ("LastStatusChange", last_change),
        ):
            if value is not None:
                entry[key] = value

    def reverse_telemetry(self, vpn_id: str, region: str | None = None) -> None:
        """AWS does not promise VgwTelemetry and TunnelOptions share an order; make them differ."""
        conn = self.backend(region).vpn_connections[vpn_id]
        conn.vgw_telemetry = list(reversed(conn.vgw_telemetry or []))

    def set_tunnel_options(self, vpn_id: str, outside_ip: str, region: str | None = None, **options: Any) -> None:
        """Update one tunnel's Options.TunnelOptions entry (response casing: IkeVersions, DpdTimeoutAction)."""
        for tunnel in self.backend(region).vpn_connections[vpn_id].options["TunnelOptions"]:
            if tunnel["OutsideIpAddress"] == outside_ip:
                tunnel.update(options)
                return
        raise KeyError(f"{vpn_id} has no tunnel {outside_ip}")

    def tunnel_options(self, vpn_id: str, region: str | None = None) -> list[dict[str, Any]]:
        return list(self.backend(region).vpn_connections[vpn_id].options["TunnelOptions"])

    def set_static_routes_only(self, vpn_id: str, value: bool, region: str | None = None) -> None:
        self.backend(region).vpn_connections[vpn_id].options["StaticRoutesOnly"] = value

    def add_route(
        self,
        route_table_id: str,
        prefix: str,
        *,
        attachments: Iterable[tuple[str, str, str]] = (),
        type: str = "propagated",
        state: str = "active",
        region: str | None = None,
    ) -> None:
        """Any TGW route; `attachments` are (attachment id, resource id, resource type) triples."""
        table = self.backend(region).transit_gateways_route_tables[route_table_id]
        table.routes[prefix] = {
            "destinationCidrBlock": prefix,
            "prefixListId": None,
            "state": state,
            "type": type,
            "transitGatewayAttachments": [
                {"transitGatewayAttachmentId": a, "resourceId": r, "resourceType": t} for a, r, t in attachments
            ],
        }

    def add_propagated_route(
        self,
        route_table_id: str,
        prefix: str,
        *vpn_ids: str,
        state: str = "active",
        region: str | None = None,
    ) -> None:
        """A BGP-learned route propagated from the given VPN connections' attachments (ECMP if several)."""
        backend = self.backend(region)
        by_vpn = {a.resource_id: a.id for a in backend.transit_gateway_attachments.values()}
        self.add_route(
            route_table_id,
            prefix,
            attachments=[(by_vpn[v], v, "vpn") for v in vpn_ids],
            state=state,
            region=region,
        )

    # -- the missing action -----------------------------------------------------------------

    def enable_modify_vpn_tunnel_options(self) -> None:
        """Add ModifyVpnTunnelOptions (moto answers 500 + HTML without it); calls land in `modify_calls`."""
        self._patch(VPNConnections, "modify_vpn_tunnel_options", _modify_vpn_tunnel_options(self))

    def _patch(self, cls: type, name: str, value: Any) -> None:
        if any(c is cls and n == name for c, n, _ in self._patches):
            return
        self._patches.append((cls, name, cls.__dict__.get(name)))
        setattr(cls, name, value)


def _default_tunnel_options(outside_ip: str, inside_cidr: str) -> dict[str, Any]:
    """What AWS reports for a tunnel created with default options."""
    return {
        "OutsideIpAddress": outside_ip,
        "TunnelInsideCidr": inside_cidr,
        "PreSharedKey": TEST_PSK,
        "Phase1LifetimeSeconds": 28800,
        "Phase2LifetimeSeconds": 3600,
        "RekeyMarginTimeSeconds": 270,
        "RekeyFuzzPercentage": 100,
        "ReplayWindowSize": 1024,
        "DpdTimeoutSeconds": 30,
        "DpdTimeoutAction": "clear",
        "StartupAction": "add",
        "Phase1EncryptionAlgorithms": [{"Value": v} for v in ("AES128", "AES256", "AES128-GCM-16", "AES256-GCM-16")],
        "Phase2EncryptionAlgorithms": [{"Value": v} for v in ("AES128", "AES256", "AES128-GCM-16", "AES256-GCM-16")],
        "Phase1IntegrityAlgorithms": [{"Value": v} for v in ("SHA1", "SHA2-256", "SHA2-384", "SHA2-512")],
        "Phase2IntegrityAlgorithms": [{"Value": v} for v in ("SHA1", "SHA2-256", "SHA2-384", "SHA2-512")],
        "Phase1DHGroupNumbers": [{"Value": v} for v in (2, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24)],
        "Phase2DHGroupNumbers": [{"Value": v} for v in (2, 5, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24)],
        "IkeVersions": [{"Value": "ikev1"}, {"Value": "ikev2"}],
        "LogOptions": {"CloudWatchLogOptions": {"LogEnabled": False, "BgpLogEnabled": False}},
        "EnableTunnelLifecycleControl": False,
    }


_REQUEST_TO_RESPONSE_KEYS = {
    "IKEVersions": "IkeVersions",
    "DPDTimeoutSeconds": "DpdTimeoutSeconds",
    "DPDTimeoutAction": "DpdTimeoutAction",
}


def _modify_vpn_tunnel_options(owner: MotoAws) -> Callable[[Any], ActionResult]:
    def modify_vpn_tunnel_options(self: Any) -> ActionResult:
        vpn_id = self._get_param("VpnConnectionId")
        outside_ip = self._get_param("VpnTunnelOutsideIpAddress")
        options = self._get_param("TunnelOptions", {}) or {}
        with owner._lock:
            owner.modify_calls.append(ModifyCall(vpn_id, outside_ip, dict(options)))
        conn = self.ec2_backend.vpn_connections[vpn_id]
        for tunnel in conn.options["TunnelOptions"]:
            if tunnel["OutsideIpAddress"] == outside_ip:
                tunnel.update({_REQUEST_TO_RESPONSE_KEYS.get(k, k): v for k, v in options.items()})
        return ActionResult({"VpnConnection": conn})

    return modify_vpn_tunnel_options


def _paged_search(owner: MotoAws) -> Callable[[Any], ActionResult]:
    """SearchTransitGatewayRoutes with working MaxResults/NextToken (moto slices a dict and fails)."""

    def search_transit_gateway_routes(self: Any) -> ActionResult:
        routes = self.ec2_backend.search_transit_gateway_routes(
            transit_gateway_route_table_id=self._get_param("TransitGatewayRouteTableId"),
            filters=self._filters_from_querystring(),
            max_results=None,
        )
        size = min(int(self._get_param("MaxResults") or 1000), owner.route_page_size)
        start = int(self._get_param("NextToken") or 0)
        page = routes[start : start + size]
        more = start + size < len(routes)
        result: dict[str, Any] = {"routeSet": page, "additionalRoutesAvailable": more}
        if more:
            result["NextToken"] = str(start + size)
        return ActionResult(result)

    return search_transit_gateway_routes


def iter_values(items: Iterable[dict[str, Any]]) -> Iterator[Any]:
    """[{"Value": x}, ...] -> x, ... (the shape of every AWS tunnel option list)."""
    for item in items:
        yield item["Value"]
