"""Collection at scale: the GCP exporter against the local fakes with a realistic per-call latency.

Topology: 1,000 tunnels on 250 HA gateways, 250 Cloud Routers with 4 BGP peers each and 200 best
routes each (50,000 learned routes). Every Compute call waits `--latency` (default 100 ms) first.
Prints: poll cycle time, API calls per cycle (must grow with routers/gateways, not tunnels/routes),
/metrics render time and size, peak RSS. Targets: cycle < 5 s, render < 250 ms, RSS < 200 MB.

    .venv/bin/python bench/scale_gcp.py [--routers 250] [--tunnels-per-router 4] [--routes 200]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from deploy.lab.emulators.gcp import FakeGcp  # noqa: E402
from exporters.gcp import GcpExporter  # noqa: E402
from watchdog.config import GcpExporterConfig  # noqa: E402
from watchdog.metrics import render_page  # noqa: E402
from watchdog.runners import ExporterRunner, WatchdogState  # noqa: E402


def build_topology(gcp: FakeGcp, routers: int, tunnels_per_router: int, routes_per_router: int) -> None:
    gw_path, tun_path, rt_path = (gcp.regional(k) for k in ("vpnGateways", "vpnTunnels", "routers"))
    for r in range(routers):
        gateway, router = f"ha-gw-{r}", f"cr-{r}"
        gcp.add(
            gw_path,
            {
                "name": gateway,
                "vpnInterfaces": [
                    {"id": 0, "ipAddress": f"203.0.113.{r % 250}"},
                    {"id": 1, "ipAddress": f"203.0.113.{(r + 1) % 250}"},
                ],
            },
        )
        gcp.actions[(f"{gw_path}/{gateway}", "getStatus")] = {
            "vpnConnections": [{"state": {"state": "CONNECTION_REDUNDANCY_MET"}, "tunnels": []}]
        }
        peers = []
        for t in range(tunnels_per_router):
            tunnel = f"tun-{r}-{t}"
            gcp.add(
                tun_path,
                {
                    "name": tunnel,
                    "vpnGateway": gcp.link(gw_path, gateway),
                    "vpnGatewayInterface": t // 2,
                    "peerIp": f"198.51.100.{t + 1}",
                    "router": gcp.link(rt_path, router),
                    "status": "ESTABLISHED",
                    "detailedStatus": "Tunnel is up and running.",
                },
            )
            peers.append(
                {
                    "name": f"peer-{r}-{t}",
                    "ipAddress": f"169.254.{r % 250}.{4 * t + 1}",
                    "peerIpAddress": f"169.254.{r % 250}.{4 * t + 2}",
                    "status": "UP",
                    "state": "Established",
                    "uptimeSeconds": "1000",
                    "numLearnedRoutes": routes_per_router,
                    "linkedVpnTunnel": gcp.link(tun_path, tunnel),
                }
            )
        gcp.add(rt_path, {"name": router, "bgpPeers": [{"name": p["name"]} for p in peers]})
        best = [
            {
                "destRange": f"10.{r % 256}.{i // 256}.{i % 256}/32",
                "routeType": "BGP",
                "nextHopIp": peers[i % len(peers)]["peerIpAddress"],
                "nextHopVpnTunnel": peers[i % len(peers)]["linkedVpnTunnel"],
            }
            for i in range(routes_per_router)
        ]
        gcp.actions[(f"{rt_path}/{router}", "getRouterStatus")] = {
            "bgpPeerStatus": peers,
            "bestRoutes": best,
            "bestRoutesForRouter": best,
        }


def serve_fake(conn: Any, routers: int, tunnels: int, routes: int, latency: float, tmp: str) -> None:
    """Child process: the fake API gets its own interpreter, so its JSON work doesn't share our GIL."""
    with FakeGcp(empty=True) as gcp:
        build_topology(gcp, routers, tunnels, routes)
        gcp.fault(r"^/compute/", status=0, delay=latency)  # slow, then the normal answer
        conn.send((gcp.url, gcp.project, gcp.region, gcp.write_credentials(Path(tmp))))
        conn.recv()  # until the parent is done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--routers", type=int, default=250)
    parser.add_argument("--tunnels-per-router", type=int, default=4)
    parser.add_argument("--routes", type=int, default=200, help="best routes per router")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to every Compute call")
    parser.add_argument("--cycles", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        parent, child = multiprocessing.Pipe()
        fake = multiprocessing.Process(
            target=serve_fake,
            args=(child, args.routers, args.tunnels_per_router, args.routes, args.latency, tmp),
            daemon=True,
        )
        fake.start()
        url, project, region, credentials = parent.recv()
        baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        config = GcpExporterConfig(
            name="gcp-scale",
            type="gcp",
            project=project,
            region=region,
            endpoint=url,
            credentials_file=credentials,
            monitoring=False,
        )
        exporter = GcpExporter(config, timeout=60)
        state = WatchdogState()
        runner = ExporterRunner(exporter, interval=60, timeout=60, expected_prefixes=("10.0.0.0/8",))
        state.exporters[runner.name] = runner
        cycles: list[tuple[float, int]] = []
        for _ in range(args.cycles):
            started = time.perf_counter()
            snapshot = exporter.poll()
            cycles.append((time.perf_counter() - started, snapshot.api_calls))
        runner.apply(snapshot, cycles[-1][0])
        renders: list[tuple[float, int]] = []
        for _ in range(5):
            started = time.perf_counter()
            page = render_page(state)
            renders.append((time.perf_counter() - started, len(page)))
        exporter.close()
        parent.send("stop")
        fake.join(5)

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    best_cycle = min(c for c, _ in cycles)
    render = sorted(r for r, _ in renders)[len(renders) // 2]
    out: dict[str, Any] = {
        "tunnels": len(snapshot.tunnels),
        "routers": args.routers,
        "bgp_sessions": len(snapshot.bgp_sessions),
        "routes": len(snapshot.routes),
        "latency_per_call_s": args.latency,
        "cycle_s": [round(c, 2) for c, _ in cycles],
        "api_calls_per_cycle": cycles[-1][1],
        "serial_floor_s": round(cycles[-1][1] * args.latency, 1),
        "render_ms": round(render * 1000, 1),
        "metrics_bytes": renders[0][1],
        "peak_rss_mb": round(peak_mb, 1),
        "rss_before_first_poll_mb": round(baseline_mb, 1),
    }
    for key, value in out.items():
        print(f"{key:24} {value}")
    print(
        f"{'verdict':24} cycle {'OK' if best_cycle < 5 else 'OVER'} (<5 s), render "
        f"{'OK' if render < 0.25 else 'OVER'} (<250 ms), RSS {'OK' if peak_mb < 200 else 'OVER'} (<200 MB); "
        f"{out['serial_floor_s'] / best_cycle:.1f}x faster than calling serially"
    )


if __name__ == "__main__":
    main()
