"""Local emulators of the GCP APIs the watchdog reads (lab and tests): Compute REST and Cloud Monitoring gRPC.

`FakeGcp` is a stdlib `ThreadingHTTPServer` (HTTP/1.1 keep-alive, listen backlog 256, so 32 concurrent
clients measure themselves, not the fake) answering the documented Compute v1 JSON shapes from a
mutable, plain-dict topology; `FakeMonitoring` is a gRPC server answering
`google.monitoring.v3.MetricService/ListTimeSeries`. Point the real clients at them:

    with FakeGcp() as gcp, FakeMonitoring() as mon:
        cfg = GcpExporterConfig(name="gcp", type="gcp", project=gcp.project, region=gcp.region,
                                endpoint=gcp.url, monitoring_endpoint=mon.url,
                                credentials_file=gcp.write_credentials(tmp_path))

FakeGcp API (mutate between polls, not during one):
- `collections[path]`: lists of resource dicts in the REST JSON shape, keyed by the path after
  `/compute/v1/projects/{project}/`, e.g. `regions/{region}/vpnTunnels`, `global/externalVpnGateways`.
  Each serves `GET path` (list; pages of the request's `maxResults`, else `page_size`, else 500,
  the real API's default and maximum (more is HTTP 400); the page token is an offset) and
  `GET path/{name}` (get; 404 when missing). `aggregated/{kind}` groups the `regions/*/{kind}`
  collections, paginated the same way. So adding `global/networks` items with `peerings[]`
  makes `networks.get` work, and the `routers` items already carry `bgp`, `bgpPeers`, `interfaces`.
- `add(path, item)` appends an item (filling `selfLink`); `resource(path, name)` returns the live
  dict to mutate; `regional(kind)` -> `regions/{region}/{kind}`; `link(path, name)` -> the URL the
  real API puts in reference fields (`https://www.googleapis.com/compute/v1/projects/...`).
- `actions[(item_path, action)]`: the `result` object of a custom method (the response adds the
  `kind` of ACTION_KINDS: `compute#routerStatusResponse`, none for getStatus), e.g.
  `(regional("routers") + "/cr-aws", "getRouterStatus")`, `(regional("vpnGateways") + "/ha-gw",
  "getStatus")`. Helpers: `router_status(router)`, `set_peer_status(router, peer, status, state,
  **fields)`, `set_tunnel_status(tunnel, status, detail)`, `set_redundancy(gateway, met)`.
- `route(method, regex, handler)`: anything else, checked first; `handler(FakeRequest) -> (status,
  json_obj)`. `before_request`: callables run with each request before it is answered (the lab's
  emulator refreshes its live values there). Anything not served answers Google's JSON error
  (HTTP 404 `notFound`) and logs one line; `start(port)` listens on a fixed loopback port.
- Default topology (unless `empty=True`): HA gateway `ha-gw` (interfaces 203.0.113.10/.11), external
  gateway `aws-peer` (FOUR_IPS_REDUNDANCY, 198.51.100.1-4), tunnels `aws-tun-0..3` (interface i//2,
  peer interface i; `aws-tun-2` NO_INCOMING_PACKETS), router `cr-aws` (peer `aws-peer-i` over
  `aws-tun-i`, 169.254.1i.1 <-> .2; the one over aws-tun-2 DOWN/Idle; bestRoutesForRouter
  10.20.0.0/16 via tunnels 0 and 1, 10.30.0.0/16 via tunnel 3), router `cr-lab` in the same hub
  VPC (one UP peer, no tunnel, bestRoutesForRouter 192.0.2.0/24); both routers' `bestRoutes` are
  the VPC-wide set (all four BGP routes plus a TRANSIT one), as the real API reports them;
  `ha-gw` getStatus CONNECTION_REDUNDANCY_MET.
- Faults: `fault(regex, status=500, body=None, headers={}, delay=0, times=None)` answers requests
  whose path matches `regex` with a Google-style JSON error (or `body` verbatim, e.g. `"{"` for
  malformed JSON with `status=200`); `delay` waits first (interrupted by `stop()`); `status=0` with a
  delay means "slow, then the normal answer"; `times=N` expires after N hits, so a transient error
  is `times=1`. The first live matching fault wins; `clear_faults()` removes all.
- Every Compute GET honours the standard `fields` parameter (partial responses, e.g.
  `items(name,status),nextPageToken`; a selector that does not parse is HTTP 400).
- `requests` records every request as `FakeRequest(method, path, query, headers, body)`;
  `calls(regex)` counts them, `paths()` lists them; `connections` counts the TCP connections
  accepted. `stop()` also closes the connections clients keep alive.
- `exporter_config(name, monitoring=, credentials_file=, **extra)` -> an `exporters[]` YAML dict;
  `hermetic_env(dir)` -> env overrides that keep credential discovery on this machine.
- `write_credentials(dir)` writes a service-account key file (the clients sign their own JWTs, so
  no token request is made; `POST /token` answers one anyway). `GET /` answers as "not a metadata
  server": point `GCE_METADATA_IP` here to make Application Default Credentials discovery hermetic.

FakeMonitoring API: `add_packets(tunnel, direction, status, value, end=None)` adds one 60 s DELTA
point ending at `end` (default now) to `{direction}_packets_count{status}`, or with status `dropped`
to `dropped_{direction}_packets_count`; `add_point(metric_type, value, labels=...)` for any metric.
ListTimeSeries honours `metric.type` and `resource.labels.region` equality terms of the filter and
returns points whose end lies in (start, end], newest first; `page_size` paginates by series.
`before_list`: callables run with the query's interval end before a ListTimeSeries is answered;
`prune(before)` forgets points that ended before then. Other gRPC methods answer UNIMPLEMENTED.
`fault(code, message, retry_delay=None, delay=0, times=None)`: abort with `code` (and a RetryInfo
detail when `retry_delay` is set) after `delay`; `code=None` lets the call through (useful with
`times=1` to fail the second call only). `requests` holds name, filter, start, end, page_token.
Gotcha: the exporter counts only points that END after it was created (counts are "since the
exporter started"), so add points after building the exporter / starting the daemon, or give a
point a future `end` (e.g. `end=time.time() + 2`): it shows up once a poll's window reaches it.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc

log = logging.getLogger(__name__)

COMPUTE = "https://www.googleapis.com/compute/v1"
MAX_RESULTS = 500  # the real API's default and largest page (maxResults)
# The `kind` of custom methods' responses (compute_v1 types); vpnGateways.getStatus has none.
ACTION_KINDS = {"getRouterStatus": "compute#routerStatusResponse"}
MASKED_SECRET = "*************"  # what the real API returns for a tunnel's sharedSecret
_PREFIX = re.compile(r"^/compute/v1/projects/(?P<project>[^/]+)/(?P<rest>.*)$")
_ERROR_REASONS = {
    400: "invalid",
    401: "authError",
    403: "forbidden",
    404: "notFound",
    429: "rateLimitExceeded",
    500: "backendError",
    502: "backendError",
    503: "backendError",
}


@dataclass(frozen=True)
class FakeRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class HttpFault:
    pattern: re.Pattern[str]
    status: int = 500
    body: str | None = None  # None: a Google-style JSON error for `status`
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    times: int | None = None


Handler = Callable[[FakeRequest], tuple[int, Any]]


class FakeGcp:
    """A Compute Engine v1 REST API with a mutable topology (see the module docstring)."""

    def __init__(
        self,
        project: str = "proj-1",
        region: str = "asia-northeast1",
        *,
        page_size: int | None = None,
        empty: bool = False,
    ) -> None:
        self.project = project
        self.region = region
        self.page_size = page_size
        self.collections: dict[str, list[dict[str, Any]]] = {}
        self.actions: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[FakeRequest] = []
        self.token = "fake-access-token"
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        # Called before every request is answered (outside the lock): a live emulator refreshes here.
        self.before_request: list[Callable[[FakeRequest], None]] = []
        self._faults: list[HttpFault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.connections = 0  # TCP connections accepted (keep-alive clients reuse theirs)
        self._open: set[Any] = set()
        if not empty:
            self.load_default_topology()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, port: int = 0) -> FakeGcp:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            # Keep-alive, as the real API: a client's pooled connections are what gets measured,
            # not a TCP handshake per call. An idle connection is dropped after `timeout` seconds.
            protocol_version = "HTTP/1.1"
            timeout = 60
            # Headers and body go out in two writes; with Nagle on, the body of every answer on a
            # kept-alive connection waited for the client's delayed ACK (~40 ms a call), which the
            # bench then counted against the exporter. Google's front ends answer without that stall.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_PUT(self) -> None:
                fake._handle(self, "PUT")

            def do_PATCH(self) -> None:
                fake._handle(self, "PATCH")

            def do_DELETE(self) -> None:
                fake._handle(self, "DELETE")

            def setup(self) -> None:
                super().setup()
                with fake._lock:
                    fake.connections += 1
                    fake._open.add(self.connection)

            def finish(self) -> None:
                with fake._lock:
                    fake._open.discard(self.connection)
                super().finish()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = _Server(("127.0.0.1", port), _Handler)
        server.daemon_threads = True
        server.block_on_close = False  # a slow-response fault must not hold up stop()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            with self._lock:
                still_open, self._open = list(self._open), set()
            for connection in still_open:  # a stopped server answers no kept-alive connection either
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeGcp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_port}"

    # -- topology helpers ------------------------------------------------------------------------
    def regional(self, kind: str) -> str:
        return f"regions/{self.region}/{kind}"

    def link(self, collection: str, name: str) -> str:
        """The selfLink-style URL the real API puts in reference fields."""
        return f"{COMPUTE}/projects/{self.project}/{collection}/{name}"

    def resource(self, collection: str, name: str) -> dict[str, Any]:
        for item in self.collections.get(collection, []):
            if item.get("name") == name:
                return item
        raise KeyError(f"{collection}/{name}")

    def add(self, collection: str, item: dict[str, Any]) -> dict[str, Any]:
        item.setdefault("selfLink", self.link(collection, item["name"]))
        self.collections.setdefault(collection, []).append(item)
        return item

    def router_status(self, router: str) -> dict[str, Any]:
        return self.actions[(f"{self.regional('routers')}/{router}", "getRouterStatus")]

    def set_tunnel_status(self, tunnel: str, status: str, detail: str = "") -> None:
        item = self.resource(self.regional("vpnTunnels"), tunnel)
        item["status"] = status
        item["detailedStatus"] = detail

    def set_peer_status(self, router: str, peer: str, status: str, state: str, **fields: Any) -> None:
        for item in self.router_status(router)["bgpPeerStatus"]:
            if item["name"] == peer:
                item.update(status=status, state=state, **fields)
                return
        raise KeyError(f"{router}/{peer}")

    def set_redundancy(self, gateway: str, met: bool) -> None:
        result = self.actions[(f"{self.regional('vpnGateways')}/{gateway}", "getStatus")]
        for connection in result["vpnConnections"]:
            connection["state"] = (
                {"state": "CONNECTION_REDUNDANCY_MET"}
                if met
                else {
                    "state": "CONNECTION_REDUNDANCY_NOT_MET",
                    "unsatisfiedReason": "INCOMPLETE_TUNNELS_COVERAGE",
                }
            )

    def load_default_topology(self) -> None:
        """The production shape: 1 HA gateway, 4 tunnels to 2 AWS connections, 1 BGP peer per tunnel."""
        gateways, tunnels, routers = (self.regional(k) for k in ("vpnGateways", "vpnTunnels", "routers"))
        self.add(
            gateways,
            {
                "kind": "compute#vpnGateway",
                "name": "ha-gw",
                "id": "1111",
                "network": self.link("global/networks", "hub"),
                "region": self.link("regions", self.region),
                "stackType": "IPV4_ONLY",
                "vpnInterfaces": [
                    {"id": 0, "ipAddress": "203.0.113.10"},
                    {"id": 1, "ipAddress": "203.0.113.11"},
                ],
            },
        )
        self.add(
            "global/externalVpnGateways",
            {
                "kind": "compute#externalVpnGateway",
                "name": "aws-peer",
                "redundancyType": "FOUR_IPS_REDUNDANCY",
                "interfaces": [{"id": i, "ipAddress": f"198.51.100.{i + 1}"} for i in range(4)],
            },
        )
        statuses = [
            ("ESTABLISHED", "Tunnel is up and running."),
            ("ESTABLISHED", "Tunnel is up and running."),
            ("NO_INCOMING_PACKETS", "No incoming packets from peer."),
            ("ESTABLISHED", "Tunnel is up and running."),
        ]
        peers = []
        for i, (status, detail) in enumerate(statuses):
            name = f"aws-tun-{i}"
            self.add(
                tunnels,
                {
                    "kind": "compute#vpnTunnel",
                    "name": name,
                    "id": str(2000 + i),
                    "region": self.link("regions", self.region),
                    "vpnGateway": self.link(gateways, "ha-gw"),
                    "vpnGatewayInterface": i // 2,
                    "peerExternalGateway": self.link("global/externalVpnGateways", "aws-peer"),
                    "peerExternalGatewayInterface": i,
                    "peerIp": f"198.51.100.{i + 1}",
                    "router": self.link(routers, "cr-aws"),
                    "sharedSecret": MASKED_SECRET,
                    "sharedSecretHash": "AJnQj5Lz1Hl4uqQ0xqb6PLPWIe4i",
                    "ikeVersion": 2,
                    "status": status,
                    "detailedStatus": detail,
                    "localTrafficSelector": ["0.0.0.0/0"],
                    "remoteTrafficSelector": ["0.0.0.0/0"],
                },
            )
            up = status == "ESTABLISHED"
            peers.append(
                {
                    "name": f"aws-peer-{i}",
                    "ipAddress": f"169.254.1{i}.1",
                    "peerIpAddress": f"169.254.1{i}.2",
                    "linkedVpnTunnel": self.link(tunnels, name),
                    "status": "UP" if up else "DOWN",
                    "state": "Established" if up else "Idle",
                    "numLearnedRoutes": 1 if up else 0,
                    "uptime": "2 hours, 3 minutes, 4 seconds" if up else "",
                    "uptimeSeconds": str(7384 + i) if up else "",
                    "enableIpv4": True,
                    "md5AuthEnabled": False,
                }
            )
        self.add(
            routers,
            {
                "kind": "compute#router",
                "name": "cr-aws",
                "network": self.link("global/networks", "hub"),
                "bgp": {
                    "asn": 64514,
                    "advertiseMode": "CUSTOM",
                    "advertisedIpRanges": [{"range": "10.0.0.0/16"}],
                },
                "interfaces": [
                    {
                        "name": f"if-aws-{i}",
                        "ipRange": f"169.254.1{i}.1/30",
                        "linkedVpnTunnel": p["linkedVpnTunnel"],
                    }
                    for i, p in enumerate(peers)
                ],
                "bgpPeers": [
                    {
                        "name": p["name"],
                        "interfaceName": f"if-aws-{i}",
                        "ipAddress": p["ipAddress"],
                        "peerIpAddress": p["peerIpAddress"],
                        "peerAsn": 64512 + i // 2,
                    }
                    for i, p in enumerate(peers)
                ],
            },
        )

        def best(prefix: str, i: int, route_type: str = "BGP") -> dict[str, Any]:
            return {
                "destRange": prefix,
                "nextHopIp": f"169.254.1{i}.2",
                "nextHopVpnTunnel": self.link(tunnels, f"aws-tun-{i}"),
                "priority": 100,
                "routeType": route_type,
                "routeStatus": "ACTIVE",
                "asPaths": [{"pathSegmentType": "AS_SEQUENCE", "asLists": [64512 + i // 2]}],
            }

        # Two Cloud Routers in the hub VPC: `bestRoutes` is the region's VPC-wide best routes (both
        # routers' and a TRANSIT one), `bestRoutesForRouter` only what this router learned itself.
        aws_routes = [best("10.20.0.0/16", 0), best("10.20.0.0/16", 1), best("10.30.0.0/16", 3)]
        lab_route = {
            "destRange": "192.0.2.0/24",
            "nextHopIp": "169.254.20.2",
            "priority": 100,
            "routeType": "BGP",
            "routeStatus": "ACTIVE",
        }
        vpc_routes = [*aws_routes, best("10.99.0.0/16", 3, "TRANSIT"), lab_route]
        self.actions[(f"{routers}/cr-aws", "getRouterStatus")] = {
            "network": self.link("global/networks", "hub"),
            "bgpPeerStatus": peers,
            "bestRoutes": vpc_routes,
            "bestRoutesForRouter": aws_routes,
        }
        self.add(
            routers,
            {
                "kind": "compute#router",
                "name": "cr-lab",
                "network": self.link("global/networks", "hub"),
                "bgp": {"asn": 64600},
                "bgpPeers": [
                    {
                        "name": "lab-peer",
                        "ipAddress": "169.254.20.1",
                        "peerIpAddress": "169.254.20.2",
                        "peerAsn": 64601,
                    }
                ],
            },
        )
        self.actions[(f"{routers}/cr-lab", "getRouterStatus")] = {
            "network": self.link("global/networks", "hub"),
            "bgpPeerStatus": [
                {
                    "name": "lab-peer",
                    "ipAddress": "169.254.20.1",
                    "peerIpAddress": "169.254.20.2",
                    "status": "UP",
                    "state": "Established",
                    "numLearnedRoutes": 1,
                    "uptimeSeconds": "60",
                }
            ],
            "bestRoutes": vpc_routes,
            "bestRoutesForRouter": [lab_route],
        }
        self.actions[(f"{gateways}/ha-gw", "getStatus")] = {
            "vpnConnections": [
                {
                    "peerExternalGateway": self.link("global/externalVpnGateways", "aws-peer"),
                    "tunnels": [
                        {
                            "localGatewayInterface": i // 2,
                            "peerGatewayInterface": i,
                            "tunnelUrl": self.link(tunnels, f"aws-tun-{i}"),
                        }
                        for i in range(4)
                    ],
                    "state": {"state": "CONNECTION_REDUNDANCY_MET"},
                }
            ]
        }

    # -- faults, routes and records ----------------------------------------------------------------
    def fault(
        self,
        path: str,
        *,
        status: int = 500,
        body: str | None = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        times: int | None = None,
    ) -> HttpFault:
        """Answer requests whose path matches the regex `path` with this error (status=0: delay only)."""
        fault = HttpFault(re.compile(path), status, body, dict(headers or {}), delay, times)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def route(self, method: str, path: str, handler: Handler) -> None:
        """Serve `path` (regex, full request path) with `handler(request) -> (status, json_obj)`."""
        self._routes.append((method, re.compile(path), handler))

    def calls(self, path: str = "") -> int:
        pattern = re.compile(path)
        with self._lock:
            return sum(1 for r in self.requests if pattern.search(r.path))

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]

    def write_credentials(self, directory: Path) -> str:
        """A service-account key file (freshly generated key; token_uri is this fake).

        The Google clients sign their own JWTs with a service-account key, so no token request
        leaves the machine; requests carry `Authorization: Bearer <jwt>`.
        """
        path = Path(directory) / "gcp-credentials.json"
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": self.project,
                    "private_key_id": "fake-key-1",
                    "private_key": _private_key_pem(),
                    "client_email": f"watchdog@{self.project}.iam.gserviceaccount.com",
                    "client_id": "1234567890",
                    "token_uri": f"{self.url}/token",
                }
            )
        )
        return str(path)

    def exporter_config(
        self,
        name: str = "gcp-hub",
        *,
        monitoring: FakeMonitoring | None = None,
        credentials_file: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """An `exporters[]` entry (YAML-ready dict) pointing at this fake (and `monitoring`, if given).

        Without `monitoring` the entry sets `monitoring: false`. Without `credentials_file` the
        exporter falls back to anonymous credentials only where ADC finds nothing: run it with
        `hermetic_env()` in its environment.
        """
        entry: dict[str, Any] = {
            "name": name,
            "type": "gcp",
            "project": self.project,
            "region": self.region,
            "endpoint": self.url,
        }
        if monitoring is not None:
            entry["monitoring_endpoint"] = monitoring.url
        else:
            entry["monitoring"] = False
        if credentials_file is not None:
            entry["credentials_file"] = credentials_file
        entry.update(extra)
        return entry

    def hermetic_env(self, directory: Path) -> dict[str, str]:
        """Environment overrides under which Application Default Credentials find nothing and ask
        no one but this fake (for a daemon subprocess; in-process tests use monkeypatch with these).
        Remove GOOGLE_APPLICATION_CREDENTIALS from the environment as well."""
        return {
            "CLOUDSDK_CONFIG": str(Path(directory) / "gcloud"),
            "GCE_METADATA_IP": self.url.removeprefix("http://"),
            "GCE_METADATA_HOST": self.url.removeprefix("http://"),
        }

    # -- the server --------------------------------------------------------------------------------
    def _handle(self, http: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(http.path)
        length = int(http.headers.get("Content-Length") or 0)
        request = FakeRequest(
            method=method,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in http.headers.items()},
            body=http.rfile.read(length) if length else b"",
        )
        with self._lock:
            self.requests.append(request)
            fault = self._take_fault(request.path)
        if fault is not None and fault.delay:
            if self._stopping.wait(fault.delay):
                http.close_connection = True
                return
        if fault is not None and fault.status:
            body = fault.body if fault.body is not None else json.dumps(_error(fault.status, "injected fault"))
            self._send(http, fault.status, body.encode(), fault.headers)
            return
        for refresh in self.before_request:
            refresh(request)
        status, payload = self._dispatch(request)
        if status == 200 and "fields" in request.query and request.path.startswith("/compute/"):
            try:
                payload = partial_response(payload, request.query["fields"][0])
            except ValueError as exc:
                status, payload = 400, _error(400, f"Invalid field selection {exc}")
        if status == 404:
            log.warning("404 notFound: %s %s", method, request.path)
        self._send(http, status, json.dumps(payload).encode(), {})

    def _take_fault(self, path: str) -> HttpFault | None:
        for fault in self._faults:
            if fault.pattern.search(path) and (fault.times is None or fault.times > 0):
                if fault.times is not None:
                    fault.times -= 1
                return fault
        return None

    def _dispatch(self, request: FakeRequest) -> tuple[int, Any]:
        for method, pattern, handler in self._routes:
            if method == request.method and pattern.search(request.path):
                return handler(request)
        if request.method == "POST" and request.path == "/token":
            return 200, {"access_token": self.token, "expires_in": 3600, "token_type": "Bearer"}
        if request.method == "GET" and request.path == "/":
            return 200, {}  # no Metadata-Flavor header: "this is not a GCE metadata server"
        match = _PREFIX.match(request.path)
        if request.method != "GET" or match is None:
            return 404, _error(404, f"no such API: {request.method} {request.path}")
        if match["project"] != self.project:
            return 404, _error(404, f"The resource 'projects/{match['project']}' was not found")
        return self._compute(match["rest"], request)

    def _compute(self, rest: str, request: FakeRequest) -> tuple[int, Any]:
        with self._lock:
            size = self._page_size(request)
            if size is None:
                message = f"Invalid value for field 'maxResults': must be less than or equal to {MAX_RESULTS}"
                return 400, _error(400, message)
            if rest in self.collections:
                return 200, self._page(rest, self.collections[rest], request, size)
            if rest.startswith("aggregated/"):
                return 200, self._aggregated(rest.removeprefix("aggregated/"), request, size)
            collection, _, name = rest.rpartition("/")
            if collection in self.collections:
                for item in self.collections[collection]:
                    if item.get("name") == name:
                        return 200, item
            item_path, _, action = rest.rpartition("/")
            if (item_path, action) in self.actions:
                response: dict[str, Any] = {"result": self.actions[(item_path, action)]}
                if action in ACTION_KINDS:  # vpnGateways.getStatus has no `kind`
                    response["kind"] = ACTION_KINDS[action]
                return 200, response
        return 404, _error(404, f"The resource 'projects/{self.project}/{rest}' was not found")

    def _page_size(self, request: FakeRequest) -> int | None:
        """`maxResults` (default and maximum 500, as the real API); None when it is out of range."""
        asked = int(request.query.get("maxResults", [0])[0] or 0)
        if asked > MAX_RESULTS or asked < 0:
            return None
        return asked or self.page_size or MAX_RESULTS

    def _page(self, collection: str, items: list[dict[str, Any]], request: FakeRequest, size: int) -> dict[str, Any]:
        start = int(request.query.get("pageToken", ["0"])[0] or 0)
        kind = collection.rsplit("/", 1)[-1]
        page: dict[str, Any] = {
            "kind": f"compute#{kind[:-1]}List",
            "id": f"projects/{self.project}/{collection}",
            "items": items[start : start + size],
            "selfLink": self.link(collection, "").rstrip("/"),
        }
        if start + size < len(items):
            page["nextPageToken"] = str(start + size)
        return page

    def _aggregated(self, kind: str, request: FakeRequest, size: int) -> dict[str, Any]:
        """Pages of `size` items across the `regions/*/{kind}` scopes (token = offset); a scope
        without items appears, with its NO_RESULTS_ON_PAGE warning, on the first page only."""
        start = int(request.query.get("pageToken", ["0"])[0] or 0)
        entries: list[tuple[str, dict[str, Any]]] = []
        empty: list[str] = []
        for collection, items in sorted(self.collections.items()):
            scope, _, collection_kind = collection.rpartition("/")
            if collection_kind == kind and scope.startswith("regions/"):
                entries += [(scope, item) for item in items]
                if not items:
                    empty.append(scope)
        scoped: dict[str, Any] = {}
        for scope, item in entries[start : start + size]:
            scoped.setdefault(scope, {kind: []})[kind].append(item)
        if start == 0:
            for scope in empty:
                scoped[scope] = {"warning": {"code": "NO_RESULTS_ON_PAGE", "message": "There are no results."}}
        page: dict[str, Any] = {
            "kind": f"compute#{kind[:-1]}AggregatedList",
            "id": f"projects/{self.project}/aggregated/{kind}",
            "items": scoped,
            "selfLink": f"{COMPUTE}/projects/{self.project}/aggregated/{kind}",
        }
        if start + size < len(entries):
            page["nextPageToken"] = str(start + size)
        return page

    @staticmethod
    def _send(http: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]) -> None:
        try:
            http.send_response(status)
            http.send_header("Content-Type", "application/json; charset=UTF-8")
            http.send_header("Content-Length", str(len(body)))
            for key, value in headers.items():
                http.send_header(key, value)
            http.end_headers()
            http.wfile.write(body)
        except OSError:
            http.close_connection = True  # the client gave up (timeout) before we answered


class _Server(ThreadingHTTPServer):
    # socketserver's listen backlog of 5 drops SYNs when 32 clients connect at once (each drop
    # costs the client a 1 s retransmit), which would make every concurrent caller look slow.
    request_queue_size = 256


_KEY_PEM: str | None = None


def _private_key_pem() -> str:
    """One RSA key per test session (generating one costs tens of milliseconds)."""
    global _KEY_PEM
    if _KEY_PEM is None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _KEY_PEM = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
    return _KEY_PEM


def partial_response(document: Any, selector: str) -> Any:
    """`document` cut down to the standard `fields` parameter's selection, e.g.
    `items(name,status),nextPageToken` or `result/bgpPeerStatus/name`; a list applies the
    selection to each element. ValueError names a selector that does not parse."""
    return _select(document, _parse_selection(selector))


Selection = dict[str, "Selection | None"]  # field -> what to keep of it (None: all of it)


def _parse_selection(text: str) -> Selection:
    tokens = re.findall(r"[A-Za-z_][A-Za-z0-9_]*|[(),/]|\S", text)
    selection, rest = _parse_list(tokens)
    if rest or not selection:
        raise ValueError(repr(text))
    return selection


def _parse_list(tokens: list[str]) -> tuple[Selection, list[str]]:
    selection: Selection = {}
    while True:
        if not tokens or not (tokens[0][0].isalpha() or tokens[0][0] == "_"):
            raise ValueError("".join(tokens) or "(empty)")
        path, tokens = [tokens[0]], tokens[1:]
        while tokens[:1] == ["/"] and len(tokens) > 1:
            path.append(tokens[1])
            tokens = tokens[2:]
        inner: Selection | None = None
        if tokens[:1] == ["("]:
            inner, tokens = _parse_list(tokens[1:])
            if tokens[:1] != [")"]:
                raise ValueError("unbalanced parentheses")
            tokens = tokens[1:]
        for name in reversed(path[1:]):
            inner = {name: inner}
        _merge(selection, path[0], inner)
        if tokens[:1] != [","]:
            return selection, tokens
        tokens = tokens[1:]


def _merge(selection: Selection, name: str, inner: Selection | None) -> None:
    if name in selection:
        current = selection[name]
        if current is None or inner is None:
            selection[name] = None
        else:
            for key, value in inner.items():
                _merge(current, key, value)
    else:
        selection[name] = inner


def _select(value: Any, selection: Selection | None) -> Any:
    if selection is None:
        return value
    if isinstance(value, list):
        return [_select(item, selection) for item in value]
    if not isinstance(value, dict):
        return value
    return {key: _select(value[key], inner) for key, inner in selection.items() if key in value}


def _error(status: int, message: str) -> dict[str, Any]:
    reason = _ERROR_REASONS.get(status, "error")
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
        }
    }


# ------------------------------------------------------------------------------------------------
# Cloud Monitoring (gRPC only)

PACKETS = "vpn.googleapis.com/network/"


@dataclass
class FakePoint:
    start: float
    end: float
    value: int


@dataclass
class FakeSeries:
    metric_type: str
    labels: dict[str, str]
    resource_labels: dict[str, str]
    points: list[FakePoint] = field(default_factory=list)


@dataclass
class GrpcFault:
    code: grpc.StatusCode | None
    message: str = "injected fault"
    retry_delay: float | None = None
    delay: float = 0.0
    times: int | None = None


class FakeMonitoring:
    """`google.monitoring.v3.MetricService/ListTimeSeries` over an insecure local gRPC port."""

    def __init__(
        self, project: str = "proj-1", region: str = "asia-northeast1", *, page_size: int | None = None
    ) -> None:
        self.project = project
        self.region = region
        self.page_size = page_size
        self.points_per_page = 0  # > 0: page by points, as view FULL does
        self.series: list[FakeSeries] = []
        self.requests: list[dict[str, Any]] = []
        self._faults: list[GrpcFault] = []
        # Called with a ListTimeSeries request's interval end before it is answered (a live emulator
        # adds the points up to then here).
        self.before_list: list[Callable[[float], None]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: grpc.Server | None = None
        self._port = 0

    def start(self, port: int = 0) -> FakeMonitoring:
        from google.cloud import monitoring_v3

        handler = grpc.method_handlers_generic_handler(
            "google.monitoring.v3.MetricService",
            {
                "ListTimeSeries": grpc.unary_unary_rpc_method_handler(
                    self._list_time_series,
                    request_deserializer=monitoring_v3.ListTimeSeriesRequest.pb().FromString,
                    response_serializer=lambda m: m.SerializeToString(),
                )
            },
        )
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers((handler, _Unimplemented()))
        self._port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        self._server.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.stop(grace=0).wait(5)

    def __enter__(self) -> FakeMonitoring:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def add_point(
        self,
        metric_type: str,
        value: int,
        *,
        labels: dict[str, str],
        end: float | None = None,
        seconds: float = 60.0,
        gateway_id: str = "1111",
    ) -> FakePoint:
        """One DELTA point ending at `end` (default now) on the series with these labels."""
        end = time.time() if end is None else end
        resource = {"project_id": self.project, "region": self.region, "gateway_id": gateway_id}
        point = FakePoint(end - seconds, end, value)
        with self._lock:
            for series in self.series:
                if (series.metric_type, series.labels, series.resource_labels) == (
                    metric_type,
                    labels,
                    resource,
                ):
                    series.points.append(point)
                    return point
            self.series.append(FakeSeries(metric_type, dict(labels), resource, [point]))
        return point

    def add_packets(
        self,
        tunnel: str,
        direction: str,
        status: str,
        value: int,
        *,
        end: float | None = None,
        gateway: str = "ha-gw",
    ) -> FakePoint:
        """A point of `{direction}_packets_count{status}`, or of `dropped_{direction}_packets_count`."""
        if status == "dropped":
            return self.add_point(
                f"{PACKETS}dropped_{direction}_packets_count",
                value,
                end=end,
                labels={"tunnel_name": tunnel, "gateway_name": gateway},
            )
        return self.add_point(
            f"{PACKETS}{direction}_packets_count",
            value,
            end=end,
            labels={"tunnel_name": tunnel, "status": status},
        )

    def prune(self, before: float) -> None:
        """Forget points that ended before `before` (a long-running emulator keeps memory flat)."""
        with self._lock:
            for series in self.series:
                series.points = [p for p in series.points if p.end >= before]

    def fault(
        self,
        code: grpc.StatusCode | None = grpc.StatusCode.UNAVAILABLE,
        message: str = "injected fault",
        *,
        retry_delay: float | None = None,
        delay: float = 0.0,
        times: int | None = None,
    ) -> GrpcFault:
        fault = GrpcFault(code, message, retry_delay, delay, times)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _list_time_series(self, request: Any, context: grpc.ServicerContext) -> Any:
        from google.cloud import monitoring_v3

        start = request.interval.start_time.ToNanoseconds() / 1e9
        end = request.interval.end_time.ToNanoseconds() / 1e9
        with self._lock:
            self.requests.append(
                {
                    "name": request.name,
                    "filter": request.filter,
                    "start": start,
                    "end": end,
                    "page_token": request.page_token,
                }
            )
            fault = next((f for f in self._faults if f.times is None or f.times > 0), None)
            if fault is not None and fault.times is not None:
                fault.times -= 1
        if fault is not None:
            if fault.delay and self._stopping.wait(fault.delay):
                context.abort(grpc.StatusCode.UNAVAILABLE, "shutting down")
            if fault.code is not None:
                _abort(context, fault)
        for refresh in self.before_list:
            refresh(end)
        wanted = _filter_terms(request.filter)
        with self._lock:
            matching = []
            for series in self.series:
                if wanted.get("metric.type", series.metric_type) != series.metric_type:
                    continue
                if (
                    wanted.get("resource.labels.region", series.resource_labels["region"])
                    != series.resource_labels["region"]
                ):
                    continue
                points = sorted((p for p in series.points if start < p.end <= end), key=lambda p: -p.end)
                if points:
                    matching.append((series, points))
        response = monitoring_v3.ListTimeSeriesResponse.pb()()
        if self.points_per_page:
            # The real API with view FULL pages by points: one series may span pages (newest first).
            flat = [(series, p) for series, points in matching for p in points]
            offset = int(request.page_token or 0)
            chunk = flat[offset : offset + self.points_per_page]
            matching = []
            for series, p in chunk:
                if matching and matching[-1][0] is series:
                    matching[-1][1].append(p)
                else:
                    matching.append((series, [p]))
            if offset + self.points_per_page < len(flat):
                response.next_page_token = str(offset + self.points_per_page)
            size, offset = len(matching), 0
        else:
            size = request.page_size or self.page_size or len(matching) or 1
            offset = int(request.page_token or 0)
        for series, points in matching[offset : offset + size]:
            ts = response.time_series.add()
            ts.metric.type = series.metric_type
            ts.metric.labels.update(series.labels)
            ts.resource.type = "vpn_gateway"
            ts.resource.labels.update(series.resource_labels)
            ts.metric_kind = 2  # DELTA
            ts.value_type = 2  # INT64
            for p in points:
                point = ts.points.add()
                point.interval.start_time.FromNanoseconds(int(p.start * 1e9))
                point.interval.end_time.FromNanoseconds(int(p.end * 1e9))
                point.value.int64_value = p.value
        if not self.points_per_page and offset + size < len(matching):
            response.next_page_token = str(offset + size)
        return response


class _Unimplemented(grpc.GenericRpcHandler):
    """Every other method: UNIMPLEMENTED at once (and one log line), as Google answers unknown RPCs."""

    def service(self, handler_call_details: Any) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        log.warning("UNIMPLEMENTED: gRPC %s", method)

        def abort(request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented by this emulator")

        return grpc.unary_unary_rpc_method_handler(abort)


def _filter_terms(text: str) -> dict[str, str]:
    """The `key = "value"` terms of a Monitoring filter (enough for the equality filters we send)."""
    return {m[1]: m[2] for m in re.finditer(r'([\w.]+)\s*=\s*"([^"]*)"', text)}


def _abort(context: grpc.ServicerContext, fault: GrpcFault) -> None:
    assert fault.code is not None
    delay = fault.retry_delay
    if delay is None:
        context.abort(fault.code, fault.message)
        return
    from google.protobuf import any_pb2, duration_pb2
    from google.rpc import error_details_pb2, status_pb2
    from grpc_status import rpc_status

    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=int(delay), nanos=int(delay % 1 * 1e9)))
    )
    status = status_pb2.Status(code=fault.code.value[0], message=fault.message, details=[detail])
    context.abort_with_status(rpc_status.to_status(status))
