"""Scrape latency of /metrics on the 1,000-tunnel page (250 routers, 4 peers each, 50,000 routes: ~7 MB).

Sequential and 8-concurrent scrapes, gzip off and on, against:
- ours: the daemon's web server (`watchdog.webserver`) over the real collector and pre-rendered page;
- minimal: a few lines of asyncio serving the very same response bytes, pre-built (the floor: no
  rendering, no compression, nothing but sockets), so `ours / minimal` says what our server costs;
- optionally `--before DIR`: the web server of another source tree (e.g. an export of an older commit:
  `git archive OLD | tar -x -C /tmp/old`), same state, for before/after numbers.

Servers and clients run in separate processes (one process per concurrent client), so the GIL of the
client never slows the server it measures. Each client keeps its connection alive when the server
allows it. Bounded: `--requests` per client, loopback only. Target: 8-concurrent p99 < 100 ms and no
request over 250 ms (gzip on).

    .venv/bin/python bench/scrape.py [--runs 3] [--requests 40] [--before /tmp/old]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import http.client
import inspect
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


# ---- the state: built the same way in every server process ------------------------------------


def build_state(routers: int, peers: int, routes: int) -> Any:
    from watchdog.model import BgpSession, HaGateway, LearnedRoute, Snapshot, Tunnel
    from watchdog.runners import ExporterRunner, WatchdogState

    tunnels, sessions, learned, gateways = [], [], [], []
    for r in range(routers):
        router, gateway = f"cr-{r}", f"ha-gw-{r}"
        gateways.append(HaGateway(gateway, True))
        for p in range(peers):
            name = f"tun-{r}-{p}"
            tunnels.append(
                Tunnel(
                    gateway,
                    name,
                    f"203.0.113.{r % 250}",
                    f"198.51.100.{p + 1}",
                    True,
                    "ESTABLISHED",
                    "Tunnel is up and running.",
                    router=router,
                )  # fmt: skip
            )
            sessions.append(
                BgpSession(
                    router,
                    f"peer-{p}",
                    f"169.254.{r % 250}.{4 * p + 1}",
                    f"169.254.{r % 250}.{4 * p + 2}",
                    True,
                    "Established",
                    3600.0,
                    routes // peers,
                    tunnel=name,
                )  # fmt: skip
            )
        for i in range(routes):
            learned.append(LearnedRoute(router, f"10.{r % 250}.{i // 250}.{i % 250}/32", f"169.254.{r % 250}.2"))
    snapshot = Snapshot(
        exporter="gcp-scale",
        cloud="gcp",
        taken_at=time.time(),
        tunnels=tuple(tunnels),
        bgp_sessions=tuple(sessions),
        routes=tuple(learned),
        gateways=tuple(gateways),
    )

    class Source:
        name, cloud = "gcp-scale", "gcp"

        def poll(self) -> Any:
            return snapshot

        def close(self) -> None:
            pass

    state = WatchdogState()
    runner = ExporterRunner(Source(), interval=60, timeout=60)  # type: ignore[arg-type]
    runner.apply(snapshot, 1.0)
    state.exporters[runner.name] = runner
    return state


def serve_watchdog(args: argparse.Namespace) -> None:
    """A server process: the web server of whatever `watchdog` is on sys.path, over the state."""
    from watchdog import memory, webserver
    from watchdog.metrics import build_registry

    if hasattr(memory, "configure_allocator"):  # as `watchdog run` does at start (older trees: no-op)
        memory.configure_allocator()
    state = build_state(args.routers, args.peers, args.routes)
    registry = build_registry(state)
    params = inspect.signature(webserver.MetricsServer).parameters
    if "endpoints" in params:
        from watchdog.metrics import PageRenderer

        page = PageRenderer(state, registry)
        endpoints = webserver.Endpoints(metrics=lambda om: page.parts(openmetrics=om), health=lambda: {"status": "ok"})
        server = webserver.MetricsServer("127.0.0.1", 0, endpoints)
    else:  # an older tree: MetricsServer(host, port, render, health)
        from watchdog.metrics import render_page

        server = webserver.MetricsServer("127.0.0.1", 0, lambda: render_page(state, registry), lambda: {"status": "ok"})
    server.start()
    print(server.address[1], flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.stop()


def serve_minimal(port_out: Any, plain: bytes, zipped: bytes) -> None:
    """The floor: HTTP/1.1 keep-alive over asyncio, answering every request with pre-built bytes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                body = zipped if b"gzip" in head.lower() else plain
                enc = b"Content-Encoding: gzip\r\n" if body is zipped else b""
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n" + enc
                             + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")  # fmt: skip
                writer.write(body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=128)
        port_out.send(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


# ---- clients ----------------------------------------------------------------------------------


def client(port: int, requests: int, gzipped: bool, start_at: float) -> list[float]:
    headers = {"Accept-Encoding": "gzip"} if gzipped else {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times: list[float] = []
    while time.time() < start_at:  # all clients begin together
        time.sleep(0.001)
    for _ in range(requests):
        started = time.perf_counter()
        conn.request("GET", "/metrics", headers=headers)
        response = conn.getresponse()
        body = response.read()
        times.append(time.perf_counter() - started)
        assert response.status == 200 and body
        if response.getheader("Connection", "").lower() == "close" or response.version == 10:
            conn.close()
    conn.close()
    return times


def measure(port: int, concurrency: int, requests: int, gzipped: bool) -> dict[str, float]:
    start_at = time.time() + 0.3
    with multiprocessing.Pool(concurrency) as pool:
        results = pool.starmap(client, [(port, requests, gzipped, start_at)] * concurrency)
    times = sorted(t for r in results for t in r)
    return {
        "p50": statistics.median(times) * 1000,
        "p99": times[min(len(times) - 1, int(len(times) * 0.99))] * 1000,
        "max": times[-1] * 1000,
    }


def fetch(port: int, gzipped: bool) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"} if gzipped else {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return body


def start_watchdog_server(tree: Path, args: argparse.Namespace) -> tuple[subprocess.Popen[str], int]:
    argv = [sys.executable, __file__, "--serve", "--routers", str(args.routers), "--peers", str(args.peers),
            "--routes", str(args.routes)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=str(tree))
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--routers", type=int, default=250)
    parser.add_argument("--peers", type=int, default=4)
    parser.add_argument("--routes", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=40, help="scrapes per client per case")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--before", type=Path, help="a source tree whose web server to measure too")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_watchdog(args)
        return

    servers: dict[str, tuple[Any, int]] = {}
    proc, port = start_watchdog_server(ROOT, args)
    servers["ours"] = (proc, port)
    plain, zipped = fetch(port, False), fetch(port, True)
    assert gzip.decompress(zipped)[:1000] == plain[:1000]
    print(f"page: {len(plain) / 1e6:.1f} MB plain, {len(zipped) / 1e6:.2f} MB gzip; "
          f"{args.concurrency} clients x {args.requests} scrapes per case")  # fmt: skip
    receive, send = multiprocessing.Pipe(duplex=False)
    minimal = multiprocessing.Process(target=serve_minimal, args=(send, plain, zipped), daemon=True)
    minimal.start()
    servers["minimal"] = (minimal, receive.recv())
    if args.before:
        servers["before"] = start_watchdog_server(args.before, args)
    try:
        cases = [(c, g) for c in (1, args.concurrency) for g in (False, True)]
        for run in range(1, args.runs + 1):
            print(f"\nrun {run}")
            print(
                f"{'case':22}"
                + "".join(f"{name + ' p50/p99/max ms':>30}" for name in servers)
                + f"{'p99 ours/min':>14}"
            )
            for concurrency, gzipped in cases:
                requests = args.requests if concurrency > 1 else args.requests * 2
                row = {name: measure(p, concurrency, requests, gzipped) for name, (_, p) in servers.items()}
                label = f"{concurrency} client{'s' if concurrency > 1 else ''}, gzip {'on' if gzipped else 'off'}"
                cells = "".join(f"{r['p50']:10.1f}{r['p99']:10.1f}{r['max']:10.1f}" for r in row.values())
                print(f"{label:22}{cells}{row['ours']['p99'] / row['minimal']['p99']:14.2f}")
    finally:
        # The minimal server first: its forked process holds a copy of the other servers' stdin pipes.
        for name, (server, _) in sorted(servers.items(), key=lambda item: item[0] != "minimal"):
            if name == "minimal":
                server.terminate()
                server.join(5)
            else:
                server.stdin.close()
                try:
                    server.wait(10)
                except subprocess.TimeoutExpired:
                    print(f"{name}: server did not stop in 10 s; terminating it", file=sys.stderr)
                    server.terminate()
                    server.wait(10)


if __name__ == "__main__":
    main()
