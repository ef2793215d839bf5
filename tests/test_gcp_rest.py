"""The GCP poll's own Compute REST reads (`exporters.gcp_rest`): the JSON fields it reads are
compute_v1's, connections are kept alive and replaced when the server drops them, a rejected token
is refreshed, a value of the wrong type is a malformed response, and compute_v1 is never imported."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from google.cloud import compute_v1
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from deploy.lab.emulators.gcp import FakeGcp
from exporters.gcp import PEER_FIELDS, ROUTE_FIELDS, ROUTER_STATUS_FIELDS, GcpExporter
from watchdog.config import GcpExporterConfig
from watchdog.errors import ExporterError

ROOT = Path(__file__).resolve().parent.parent
TUNNELS_URL = r"/regions/asia-northeast1/vpnTunnels$"

# The responses the poll reads, as compute_v1 types; every field it reads must be one of theirs.
READ_TYPES = (
    compute_v1.VpnGatewayList,
    compute_v1.VpnTunnelList,
    compute_v1.RouterList,
    compute_v1.VpnGatewaysGetStatusResponse,
    compute_v1.RouterStatusResponse,
)
# How the converters read a field -> the field types that reading accepts.
_STRING = {FieldDescriptor.TYPE_STRING}
_INT32 = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_UINT32}
_MESSAGE = {FieldDescriptor.TYPE_MESSAGE}
ACCESSORS = {"_text": _STRING, "_number": _INT32, "_object": _MESSAGE, "_objects": _MESSAGE}


@pytest.fixture
def gcp() -> Iterator[FakeGcp]:
    with FakeGcp() as fake:
        yield fake


@pytest.fixture
def make(gcp: FakeGcp, tmp_path: Path) -> Iterator[Any]:
    built: list[GcpExporter] = []
    credentials = gcp.write_credentials(tmp_path)

    def factory(fake: FakeGcp = gcp, **overrides: Any) -> GcpExporter:
        fields: dict[str, Any] = {
            "name": "gcp-hub",
            "type": "gcp",
            "project": fake.project,
            "region": fake.region,
            "endpoint": fake.url,
            "credentials_file": credentials,
            "monitoring": False,
        }
        exporter = GcpExporter(GcpExporterConfig(**{**fields, **overrides}), timeout=5.0)
        built.append(exporter)
        return exporter

    yield factory
    for exporter in built:
        exporter.close()


def poll_error(exporter: GcpExporter) -> ExporterError:
    with pytest.raises(ExporterError) as info:
        exporter.poll()
    return info.value


# -- the fields read are compute_v1's ------------------------------------------------------------


def fields_of(roots: tuple[Any, ...]) -> dict[str, set[int]]:
    """json name -> field types, over every message reachable from `roots`."""
    found: dict[str, set[int]] = {}
    todo: list[Descriptor] = [root.pb().DESCRIPTOR for root in roots]
    seen: set[str] = set()
    while todo:
        descriptor = todo.pop()
        if descriptor.full_name in seen:
            continue
        seen.add(descriptor.full_name)
        for field in descriptor.fields:
            found.setdefault(field.json_name, set()).add(field.type)
            if field.message_type is not None:
                todo.append(field.message_type)
    return found


def keys_read(module: Path, only: str | None = None) -> list[tuple[str, str, int]]:
    """(how, key, line) of every JSON key the module (or its function `only`) reads: `_text(x, "k")`
    and the other typed accessors, `x.get("k")`, `x["k"]`, `"k" in x`."""
    tree: ast.AST = ast.parse(module.read_text())
    if only is not None:
        tree = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == only)
    reads: list[tuple[str, str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
            if isinstance(node.func, ast.Name) and node.func.id in ACCESSORS:
                reads.append((node.func.id, str(node.args[1].value), node.lineno))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                reads.append(("get", node.args[0].value, node.lineno))
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            if isinstance(node.slice.value, str):
                reads.append(("[]", node.slice.value, node.lineno))
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) and isinstance(node.ops[0], ast.In):
            if isinstance(node.left.value, str):
                reads.append(("in", node.left.value, node.lineno))
    return reads


def test_every_field_the_poll_reads_is_a_compute_v1_field_of_that_type() -> None:
    fields = fields_of(READ_TYPES)
    reads = keys_read(ROOT / "exporters" / "gcp.py") + keys_read(ROOT / "exporters" / "gcp_rest.py", "list_all")
    # The walk finds the reads that matter (so this test cannot pass by finding none).
    assert {"bestRoutesForRouter", "bgpPeerStatus", "vpnConnections", "nextHopVpnTunnel", "items"} <= {
        key for _, key, _ in reads
    }

    wrong = [
        f"line {line}: {how}({key!r})"
        for how, key, line in reads
        if key not in fields or (how in ACCESSORS and not fields[key] & ACCESSORS[how])
    ]
    assert wrong == []


def test_a_field_compute_v1_does_not_have_would_be_caught() -> None:
    fields = fields_of(READ_TYPES)

    assert "nextHopTunnel" not in fields and "destRange" in fields
    assert FieldDescriptor.TYPE_STRING in fields["uptimeSeconds"]  # a string in the API, parsed by us


def test_router_status_asks_for_exactly_the_fields_the_poll_reads(gcp: FakeGcp, make: Any) -> None:
    module = ROOT / "exporters" / "gcp.py"
    peer = fields_of((compute_v1.RouterStatusBgpPeerStatus,))
    route = fields_of((compute_v1.Route,))

    assert {key for _, key, _ in keys_read(module, "_session")} == set(PEER_FIELDS) and set(PEER_FIELDS) <= set(peer)
    assert {key for _, key, _ in keys_read(module, "_routes")} == set(ROUTE_FIELDS) and set(ROUTE_FIELDS) <= set(route)

    make().poll()

    asked = [r.query.get("fields") for r in gcp.requests if r.path.endswith("/getRouterStatus")]
    assert asked == [[ROUTER_STATUS_FIELDS], [ROUTER_STATUS_FIELDS]]


def test_a_partial_router_status_leaves_out_the_vpc_wide_routes(gcp: FakeGcp) -> None:
    url = f"{gcp.url}/compute/v1/projects/{gcp.project}/{gcp.regional('routers')}/cr-aws/getRouterStatus"
    with urllib.request.urlopen(f"{url}?{urlencode({'fields': ROUTER_STATUS_FIELDS})}", timeout=5) as answer:
        result = json.loads(answer.read())["result"]

    assert set(result) == {"bgpPeerStatus", "bestRoutesForRouter"}  # no bestRoutes, network, kind
    assert set(result["bestRoutesForRouter"][0]) == set(ROUTE_FIELDS)  # no priority, asPaths, routeStatus
    assert len(result["bgpPeerStatus"]) == 4 and "enableIpv4" not in result["bgpPeerStatus"][0]


@pytest.mark.parametrize("selector", ["result(", "result)", "a,,b", "(a)"])
def test_a_selector_that_does_not_parse_is_a_bad_request(gcp: FakeGcp, selector: str) -> None:
    url = f"{gcp.url}/compute/v1/projects/{gcp.project}/{gcp.regional('routers')}?{urlencode({'fields': selector})}"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url, timeout=5)  # loopback only

    assert info.value.code == 400 and "Invalid field selection" in json.loads(info.value.read())["error"]["message"]


# -- connections ---------------------------------------------------------------------------------


def test_polls_reuse_their_connections(gcp: FakeGcp, make: Any) -> None:
    exporter = make()

    for _ in range(3):
        exporter.poll()

    # 18 calls over at most as many connections as calls ran at once (the statuses of the gateway
    # and the two routers).
    assert gcp.calls("^/compute/") == 18 and 1 <= gcp.connections <= 3


def test_connections_the_server_dropped_are_replaced_without_a_failed_poll(tmp_path: Path) -> None:
    first = FakeGcp().start()
    port = int(first.url.rsplit(":", 1)[1])
    config = GcpExporterConfig(
        name="gcp-hub",
        type="gcp",
        project=first.project,
        region=first.region,
        endpoint=first.url,
        credentials_file=first.write_credentials(tmp_path),
        monitoring=False,
    )
    exporter = GcpExporter(config, timeout=5.0)
    try:
        assert len(exporter.poll().tunnels) == 4
        first.stop()  # closes the kept-alive connections too, as a server restart or idle timeout does
        with FakeGcp().start(port) as second:
            snapshot = exporter.poll()

            assert len(snapshot.tunnels) == 4 and snapshot.api_calls == 6
            assert second.calls("^/compute/") == 6
    finally:
        exporter.close()


def test_a_rejected_token_is_refreshed_and_the_call_retried_once(gcp: FakeGcp, make: Any) -> None:
    gcp.fault(TUNNELS_URL, status=401, times=1)

    snapshot = make().poll()

    assert len(snapshot.tunnels) == 4 and gcp.calls(TUNNELS_URL) == 2
    assert all(r.headers["authorization"].startswith("Bearer ") for r in gcp.requests)


class _ForwardProxy(ThreadingHTTPServer):
    """A plain HTTP forward proxy (absolute-URI request lines), recording what it forwarded."""

    def __init__(self) -> None:
        self.forwarded: list[str] = []
        proxy = self
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # not through itself

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.forwarded.append(self.path)
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "accept")}
                request = urllib.request.Request(self.path, headers=headers)
                with direct.open(request, timeout=5) as answer:  # loopback only
                    body = answer.read()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def test_the_environments_http_proxy_is_used(gcp: FakeGcp, make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = _ForwardProxy()
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.server_port}")
        for name in ("no_proxy", "NO_PROXY", "HTTP_PROXY"):
            monkeypatch.delenv(name, raising=False)

        snapshot = make().poll()

        assert len(snapshot.tunnels) == 4
        assert len(proxy.forwarded) == 6 and all(p.startswith(gcp.url + "/compute/v1/") for p in proxy.forwarded)
    finally:
        proxy.shutdown()
        proxy.server_close()


# -- values of the wrong type ----------------------------------------------------------------------


def _set_tunnel_interface(gcp: FakeGcp) -> None:
    gcp.resource(gcp.regional("vpnTunnels"), "aws-tun-1")["vpnGatewayInterface"] = "zero"


def _set_route_prefix(gcp: FakeGcp) -> None:
    gcp.router_status("cr-aws")["bestRoutesForRouter"][0]["destRange"] = 10


def _set_peers(gcp: FakeGcp) -> None:
    gcp.router_status("cr-lab")["bgpPeerStatus"] = {"name": "lab-peer"}


def _set_items(gcp: FakeGcp) -> None:
    gcp.route("GET", TUNNELS_URL, lambda request: (200, {"items": {"aws-tun-0": {}}}))


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (_set_tunnel_interface, "vpnGatewayInterface is 'zero', not an integer"),
        (_set_route_prefix, "destRange, nextHopIp, nextHopVpnTunnel must be strings"),
        (_set_peers, "bgpPeerStatus is not a list of objects"),
        (_set_items, "vpnTunnels.list region asia-northeast1: items is dict, not a list"),
    ],
)
def test_a_value_of_the_wrong_type_is_a_malformed_response(gcp: FakeGcp, make: Any, damage: Any, named: str) -> None:
    damage(gcp)

    error = poll_error(make())

    assert error.reason == "malformed" and named in str(error)


def test_integers_sent_as_strings_are_read_as_the_client_reads_them(gcp: FakeGcp, make: Any) -> None:
    gcp.resource(gcp.regional("vpnTunnels"), "aws-tun-1")["vpnGatewayInterface"] = "1"
    gcp.router_status("cr-aws")["bgpPeerStatus"][0]["numLearnedRoutes"] = "7"

    snapshot = make().poll()

    assert snapshot.tunnels[1].gateway_interface == 1 and snapshot.tunnels[1].local_ip == "203.0.113.11"
    assert {s.peer: s.received_prefixes for s in snapshot.bgp_sessions}["aws-peer-0"] == 7


def test_the_poll_never_imports_the_compute_client(tmp_path: Path) -> None:
    code = (
        "import sys, pathlib\n"
        "from deploy.lab.emulators.gcp import FakeGcp\n"
        "from exporters.gcp import GcpExporter\n"
        "from watchdog.config import GcpExporterConfig\n"
        "with FakeGcp() as gcp:\n"
        "    key = gcp.write_credentials(pathlib.Path(sys.argv[1]))\n"
        "    cfg = GcpExporterConfig(name='g', type='gcp', project=gcp.project, region=gcp.region,\n"
        "        endpoint=gcp.url, monitoring=False, credentials_file=key)\n"
        "    exporter = GcpExporter(cfg, timeout=5.0)\n"
        "    print(len(exporter.poll().tunnels), 'google.cloud.compute_v1' in sys.modules)\n"
        "    exporter.close()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60, env=env, check=True
    )

    assert out.stdout.split() == ["4", "False"]


def test_routes_are_reported_as_they_are_now_whatever_the_last_poll_saw(gcp: FakeGcp, make: Any) -> None:
    exporter = make()
    first = exporter.poll().routes
    via_tunnel_0 = ("cr-aws", "10.20.0.0/16", "169.254.10.2")

    def route(routes: tuple[Any, ...]) -> Any:
        return next(r for r in routes if (r.router, r.prefix, r.next_hop) == via_tunnel_0)

    assert (route(first).peer, route(first).tunnel) == ("aws-peer-0", "aws-tun-0")
    second = exporter.poll().routes
    assert second == first and route(second) is route(first)  # unchanged: the same record, not a copy

    best = gcp.router_status("cr-aws")["bestRoutesForRouter"]
    best[0]["nextHopVpnTunnel"] = gcp.link(gcp.regional("vpnTunnels"), "aws-tun-3")
    assert (route(exporter.poll().routes).peer, route(exporter.poll().routes).tunnel) == ("aws-peer-0", "aws-tun-3")

    peers = gcp.router_status("cr-aws")["bgpPeerStatus"]
    peers[:] = [p for p in peers if p["name"] != "aws-peer-0"]
    now = route(exporter.poll().routes)
    assert (now.peer, now.tunnel) == (None, "aws-tun-3")
