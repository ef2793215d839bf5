"""Daemon RSS growth on the lab: `watchdog run` beside the same daemon on glibc's default heap.

Brings the lab up and starts two daemons on its config, side by side for the same minutes:
- ours: `watchdog run` as shipped (`watchdog.memory`: two heap arenas and a fixed mmap threshold
  set at start, the heap trimmed after each poll);
- reference: the same daemon with `configure_allocator` and `release_freed_memory` replaced by
  no-ops, i.e. what glibc does by itself (an arena per thread, freed memory kept in them).
After `--warmup` minutes, RSS (VmRSS) of each is sampled every 10 s for `--minutes`; prints the
growth (median of the last 2 minutes minus median of the first 2), the least-squares slope in MB/h
and that slope over 2 h. Target (issue 17): < 2 MB over 2 h after a 10 min warm-up. Needs root.

    .venv/bin/python bench/memgrowth.py [--warmup 10] [--minutes 20] [--prefix vwsm-] [--tracemalloc]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lab_up import down, labctl, new_lab_dir, up_args  # noqa: E402

WINDOW = 120.0  # seconds at each end of the measured span whose median is taken
NO_TRIM = (
    "import sys, watchdog.daemon, watchdog.runners\n"
    "watchdog.runners.release_freed_memory = lambda **_: False\n"
    "watchdog.daemon.configure_allocator = lambda: {}\n"
    "from vpn_watchdog import main\n"
    "sys.argv[0] = 'watchdog'\n"
    "sys.exit(main())\n"
)


TRACED = (
    "import sys, threading, time, tracemalloc\n"
    "tracemalloc.start(8)\n"
    "def diff(warmup, span, out):\n"
    "    time.sleep(warmup)\n"
    "    first = tracemalloc.take_snapshot()\n"
    "    time.sleep(span)\n"
    "    grown = tracemalloc.take_snapshot().compare_to(first, 'traceback')\n"
    "    with open(out + '.part', 'w') as handle:\n"
    "        for stat in grown[:12]:\n"
    "            handle.write(f'{stat.size_diff / 1024:+.1f} KiB in {stat.count_diff:+d} blocks\\n')\n"
    "            handle.writelines(f'    {line}\\n' for line in stat.traceback.format()[-8:])\n"
    "    import os\n"
    "    os.replace(out + '.part', out)\n"
    "warmup, span, out = float(sys.argv.pop(1)), float(sys.argv.pop(1)), sys.argv.pop(1)\n"
    "threading.Thread(target=diff, args=(warmup, span, out), daemon=True).start()\n"
    "from vpn_watchdog import main\n"
    "sys.argv[0] = 'watchdog'\n"
    "sys.exit(main())\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


def slope_per_hour(samples: list[tuple[float, float]]) -> float:
    xs, ys = [t for t, _ in samples], [r for _, r in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs) or 1.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den * 3600


def growth(samples: list[tuple[float, float]]) -> float:
    first = [r for t, r in samples if t <= samples[0][0] + WINDOW]
    last = [r for t, r in samples if t >= samples[-1][0] - WINDOW]
    return statistics.median(last) - statistics.median(first)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warmup", type=float, default=10, help="minutes before sampling starts")
    parser.add_argument("--minutes", type=float, default=20, help="minutes sampled after the warm-up")
    parser.add_argument("--prefix", default="vwsm-", help="lab namespace prefix")
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="run ours under tracemalloc and print what the Python heap gained over the sampled span "
        "(slows it down; RSS then includes tracemalloc's own bookkeeping)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("memgrowth.py needs root (network namespaces)", file=sys.stderr)
        return 2
    lab_dir = new_lab_dir("vw-memgrowth-")
    ports = {name: free_port() for name in ("am", "prom", "wd", "ref", "gcp", "mon", "aws")}
    daemons: dict[str, subprocess.Popen[bytes]] = {}
    samples: dict[str, list[tuple[float, float]]] = {"ours": [], "reference": []}
    heap_growth = ""
    try:
        labctl(
            lab_dir,
            *up_args(
                args.prefix,
                prom=ports["prom"],
                am=ports["am"],
                watchdog=ports["wd"],
                gcp=ports["gcp"],
                monitoring=ports["mon"],
                aws=ports["aws"],
            ),
        )
        config = str(lab_dir / "watchdog.yaml")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        ours = [sys.executable, "-m", "watchdog"]
        traced = lab_dir / "tracemalloc.txt"
        if args.tracemalloc:
            ours = [sys.executable, "-c", TRACED, str(args.warmup * 60), str(args.minutes * 60), str(traced)]
        for name, argv in (
            ("ours", [*ours, "run", "-c", config]),
            (
                "reference",
                [sys.executable, "-c", NO_TRIM, "run", "-c", config, "--listen", f"127.0.0.1:{ports['ref']}"],
            ),
        ):
            log = (lab_dir / f"{name}.log").open("wb")
            daemons[name] = subprocess.Popen(argv, stdout=log, stderr=log, env=env, cwd=ROOT)
        started = time.monotonic()
        time.sleep(args.warmup * 60)
        end = time.monotonic() + args.minutes * 60
        while time.monotonic() < end:
            for name, daemon in daemons.items():
                if daemon.poll() is not None:
                    print(f"{name} daemon exited with {daemon.returncode}; see {lab_dir}/{name}.log", file=sys.stderr)
                    return 1
                samples[name].append((time.monotonic() - started, rss_mb(daemon.pid)))
            time.sleep(10)
        if args.tracemalloc:  # the diff of a big traced heap takes a while
            deadline = time.monotonic() + 300
            while not traced.exists() and time.monotonic() < deadline:
                time.sleep(5)
            time.sleep(2)
            heap_growth = traced.read_text() if traced.exists() else "(no tracemalloc diff written)\n"
    finally:
        for daemon in daemons.values():
            daemon.send_signal(signal.SIGTERM)
        for daemon in daemons.values():
            try:
                daemon.wait(15)
            except subprocess.TimeoutExpired:
                daemon.kill()
        down(lab_dir)

    print(f"lab daemon, {args.warmup:g} min warm-up, then {args.minutes:g} min sampled every 10 s")
    print(f"{'':10} {'RSS at start':>12} {'growth':>9} {'slope':>10} {'over 2 h':>9}   target < 2 MB over 2 h")
    for name, rows in samples.items():
        slope = slope_per_hour(rows)
        print(f"{name:10} {rows[0][1]:9.1f} MB {growth(rows):+6.2f} MB {slope:+6.2f} MB/h {2 * slope:+6.2f} MB")
    if args.tracemalloc:
        print("ours under tracemalloc: what the Python heap gained over the sampled span, largest first")
        print(heap_growth, end="")
    for name, rows in samples.items():
        trend = ", ".join(f"{t / 60:.0f}m {r:.1f}" for t, r in rows[:: max(1, len(rows) // 10)])
        print(f"{name} RSS MB: {trend}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
