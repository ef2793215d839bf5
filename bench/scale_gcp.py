"""Collection at scale: the GCP exporter against the local Compute fake, beside the raw floor.

Topology: 1,000 tunnels on 250 HA gateways, 250 Cloud Routers with 4 BGP peers each and 200 best
routes each (50,000 learned routes). Every Compute call waits `--latency` (default 100 ms) first.
The fake, ours and the reference each run in their own fresh interpreter (spawned, so no process
counts another's pages):

- ours: `GcpExporter.poll()` (wall and CPU per cycle after one warm-up poll), each followed by what
  the daemon does with a snapshot (`ExporterRunner.apply`, not counted in the cycle), then one
  `/metrics` render; peak RSS of that process.
- reference: the same URLs (the three lists and their pages, then every getStatus and
  getRouterStatus, with ours' `fields` selection, over 32 threads) with `urllib.request` +
  `json.loads`, nothing else.

Prints both, and the ratios. Targets (issue 17): cycle <= 1.3x the reference, CPU <= 2x, RSS < 150 MB.

    .venv/bin/python bench/scale_gcp.py [--routers 250] [--tunnels-per-router 4] [--routes 200] [--cycles 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

THREADS = 32  # the exporter's MAX_CONCURRENT_CALLS


def build_topology(gcp: Any, routers: int, tunnels_per_router: int, routes_per_router: int) -> None:
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
    """The fake API in its own interpreter, so its JSON work shares no GIL with the measured side."""
    from deploy.lab.emulators.gcp import FakeGcp

    with FakeGcp(empty=True) as gcp:
        build_topology(gcp, routers, tunnels, routes)
        gcp.fault(r"^/compute/", status=0, delay=latency)  # slow, then the normal answer
        gcp.requests = _Discard()  # a bench makes thousands of requests: don't keep them
        conn.send((gcp.url, gcp.project, gcp.region, gcp.write_credentials(Path(tmp))))
        conn.recv()  # until the parent is done


class _Discard(list):  # type: ignore[type-arg]
    def append(self, item: Any) -> None:
        pass


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


def run_ours(conn: Any, url: str, project: str, region: str, credentials: str, cycles: int) -> None:
    from exporters.gcp import GcpExporter
    from watchdog.config import GcpExporterConfig
    from watchdog.memory import configure_allocator, release_freed_memory
    from watchdog.metrics import render_page
    from watchdog.runners import ExporterRunner, WatchdogState

    if os.environ.get("VW_BENCH_GLIBC_DEFAULT_HEAP") != "1":
        configure_allocator()  # as `watchdog run` does at start
    before = peak_rss_mb()
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
    snapshot = exporter.poll()  # warm-up: connections, token, first-use imports
    runner.apply(snapshot, 1.0)
    walls, cpus, apply_cpus = [], [], []
    for _ in range(cycles):
        wall, cpu = time.perf_counter(), time.process_time()
        snapshot = exporter.poll()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
        cpu = time.process_time()
        runner.apply(snapshot, walls[-1])  # as the daemon does after every poll (renders the series)
        apply_cpus.append(time.process_time() - cpu)
        release_freed_memory()  # as the daemon's runner does after every poll
    steady = current_rss_mb()
    started = time.perf_counter()
    page = render_page(state)
    render = time.perf_counter() - started
    exporter.close()
    conn.send(
        {
            "wall": walls,
            "cpu": cpus,
            "api_calls": snapshot.api_calls,
            "counts": (len(snapshot.tunnels), len(snapshot.bgp_sessions), len(snapshot.routes), len(snapshot.gateways)),
            "apply_cpu": statistics.median(apply_cpus),
            "rss_steady": steady,
            "render": render,
            "page_bytes": len(page),
            "rss_before": before,
            "rss_peak": peak_rss_mb(),
        }
    )


def run_reference(conn: Any, url: str, project: str, region: str, cycles: int) -> None:
    from exporters.gcp import ROUTER_STATUS_FIELDS  # the same partial response as ours

    base = f"{url}/compute/v1/projects/{project}/regions/{region}"
    fields = urllib.parse.urlencode({"fields": ROUTER_STATUS_FIELDS})

    def get(address: str) -> Any:
        with urllib.request.urlopen(address, timeout=60) as response:  # loopback only
            return json.loads(response.read())

    def list_all(address: str) -> list[Any]:
        items: list[Any] = []
        token = ""
        while True:
            page = get(address + (f"?pageToken={token}" if token else ""))
            items.extend(page.get("items", []))
            token = page.get("nextPageToken", "")
            if not token:
                return items

    def cycle(pool: ThreadPoolExecutor) -> tuple[int, int]:
        gateways = list_all(f"{base}/vpnGateways")
        tunnels = list_all(f"{base}/vpnTunnels")
        routers = list_all(f"{base}/routers")
        urls = [f"{base}/vpnGateways/{g['name']}/getStatus" for g in gateways]
        urls += [f"{base}/routers/{r['name']}/getRouterStatus?{fields}" for r in routers]
        answers = list(pool.map(get, urls))
        routes = sum(len(a["result"].get("bestRoutesForRouter", ())) for a in answers)
        return len(tunnels), routes

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        cycle(pool)  # warm-up, as ours
        walls, cpus = [], []
        for _ in range(cycles):
            wall, cpu = time.perf_counter(), time.process_time()
            counts = cycle(pool)
            cpus.append(time.process_time() - cpu)
            walls.append(time.perf_counter() - wall)
    conn.send({"wall": walls, "cpu": cpus, "counts": counts, "rss_peak": peak_rss_mb()})


def in_process(ctx: Any, target: Any, *args: Any) -> dict[str, Any]:
    parent, child = ctx.Pipe()
    process = ctx.Process(target=target, args=(child, *args))
    process.start()
    result: dict[str, Any] = parent.recv()
    process.join(30)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--routers", type=int, default=250)
    parser.add_argument("--tunnels-per-router", type=int, default=4)
    parser.add_argument("--routes", type=int, default=200, help="best routes per router")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to every Compute call")
    parser.add_argument("--cycles", type=int, default=3, help="measured cycles (after one warm-up) per side")
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")

    with tempfile.TemporaryDirectory() as tmp:
        parent, child = ctx.Pipe()
        fake = ctx.Process(
            target=serve_fake,
            args=(child, args.routers, args.tunnels_per_router, args.routes, args.latency, tmp),
            daemon=True,
        )
        fake.start()
        url, project, region, credentials = parent.recv()
        ours = in_process(ctx, run_ours, url, project, region, credentials, args.cycles)
        ref = in_process(ctx, run_reference, url, project, region, args.cycles)
        parent.send("stop")
        fake.join(5)

    tunnels, sessions, routes, gateways = ours["counts"]
    if (tunnels, routes) != ref["counts"]:
        sys.exit(f"ours and the reference disagree: tunnels/routes {(tunnels, routes)} vs {ref['counts']}")
    ours_wall, ref_wall = statistics.median(ours["wall"]), statistics.median(ref["wall"])
    ours_cpu, ref_cpu = statistics.median(ours["cpu"]), statistics.median(ref["cpu"])
    print(f"topology      {tunnels} tunnels, {gateways} gateways, {args.routers} routers, {sessions} BGP sessions,")
    print(f"              {routes} routes; {ours['api_calls']} API calls per cycle, {args.latency * 1000:g} ms each")
    print(f"{'':13} {'ours':>8} {'reference':>10} {'ratio':>7}  target   (median of {args.cycles} cycles)")
    print(f"{'cycle s':13} {ours_wall:8.2f} {ref_wall:10.2f} {ours_wall / ref_wall:6.2f}x  <= 1.3x")
    print(f"{'CPU s/cycle':13} {ours_cpu:8.2f} {ref_cpu:10.2f} {ours_cpu / ref_cpu:6.2f}x  <= 2x")
    print(f"{'peak RSS MB':13} {ours['rss_peak']:8.1f} {ref['rss_peak']:10.1f} {'':7}  < 150 MB (ours)")
    print(
        f"ours also: RSS {ours['rss_before']:.1f} MB before the first poll, {ours['rss_steady']:.1f} MB between "
        f"polls; runner.apply (renders the snapshot's series) {ours['apply_cpu'] * 1000:.0f} ms CPU; one "
        f"/metrics page {ours['render'] * 1000:.1f} ms for {ours['page_bytes'] / 1e6:.1f} MB"
    )
    print(f"cycles s: ours {[round(w, 2) for w in ours['wall']]} reference {[round(w, 2) for w in ref['wall']]}")
    print(f"CPU s:    ours {[round(c, 2) for c in ours['cpu']]} reference {[round(c, 2) for c in ref['cpu']]}")


if __name__ == "__main__":
    main()
