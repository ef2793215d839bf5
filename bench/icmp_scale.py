"""500 ICMP probes at 1 s: CPU use and scheduling drift of `watchdog run`, beside fping on the same targets.

Targets are 500 loopback addresses (127.0.1.1 ...), so nothing leaves the machine. Both tools run
for `--seconds`; CPU is read from /proc/PID/stat (user+system) of each process, over the same measured window
after a warm-up. Drift is how many of the expected runs (seconds x targets) the daemon did not complete
(from its latency histogram counts), less one interval's worth: the probes run as one sweep a second, so
a window's edges cut at most one sweep. fping runs with `-i 1` (its default 10 ms between packets
caps it at 100 probes a second: 500 targets would each be probed every 5 s); the probes per second
both really sent are printed beside the CPU. Prints ours, fping's and the ratio in one run.

    .venv/bin/python bench/icmp_scale.py [--targets 500] [--seconds 30]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

WATCHDOG = str(Path(sys.executable).parent / "watchdog")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def targets(n: int) -> list[str]:
    return [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(n)]


def run_watchdog(addresses: list[str], seconds: float, port: int) -> tuple[float, int, int, float]:
    probes = "\n".join(
        f"  - {{name: p{i}, type: icmp, target: {a}, count: 1, interval: 1s, timeout: 800ms}}"
        for i, a in enumerate(addresses)
    )
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(f"listen: 127.0.0.1:{port}\nprobes:\n{probes}\n")
        proc = subprocess.Popen([WATCHDOG, "run", "-c", str(config), "--log-level", "error"])
        try:
            deadline = time.monotonic() + 30
            while True:  # start-up, then a few runs before the window opens
                if proc.poll() is not None:
                    raise SystemExit(f"watchdog run exited with {proc.returncode}")
                try:
                    if completed_runs(port) >= len(addresses):
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("watchdog run did not serve probe results within 30 s")
                time.sleep(0.2)
            time.sleep(2)
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            runs0 = completed_runs(port)
            time.sleep(seconds)
            cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
            runs1 = completed_runs(port)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
    expected = int((t1 - t0) * len(addresses))
    return (cpu1 - cpu0) / (t1 - t0), runs1 - runs0, expected, t1 - t0


def completed_runs(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        page = response.read().decode()
    return sum(int(float(v)) for v in re.findall(r"^vpn_watchdog_probe_latency_seconds_count\{.*\} (\S+)$", page, re.M))


def run_fping(addresses: list[str], seconds: float, gap_ms: int) -> tuple[float, float]:
    """fping's CPU fraction and the echo requests it sent per second (from its summary). `-i` is the
    gap between two of its packets: at fping's default of 10 ms it sends at most 100 a second, so 500
    targets would get one probe every 5 s instead of every second."""
    with tempfile.TemporaryFile("w+") as summary:
        started = time.monotonic()
        proc = subprocess.Popen(
            ["fping", "-l", "-q", "-p", "1000", "-t", "800", "-i", str(gap_ms), *addresses],
            stdout=subprocess.DEVNULL,
            stderr=summary,
        )
        try:
            time.sleep(3)
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(seconds)
            cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(10)
        lifetime = time.monotonic() - started
        summary.seek(0)
        sent = sum(int(n) for n in re.findall(r"xmt/rcv/%loss = (\d+)/", summary.read()))
    return (cpu1 - cpu0) / (t1 - t0), sent / lifetime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--port", type=int, default=19788)
    parser.add_argument(
        "--fping-gap-ms", type=int, default=1, help="fping -i (default 1: fast enough for every target every second)"
    )
    args = parser.parse_args()
    addresses = targets(args.targets)
    wd_cpu, runs, expected, elapsed = run_watchdog(addresses, args.seconds, args.port)
    fping_cpu, fping_rate = run_fping(addresses, args.seconds, args.fping_gap_ms)
    missed = max(0, expected - runs - args.targets)
    rate = runs / elapsed
    print(f"targets {args.targets}, interval 1s, {args.seconds:.0f}s measured")
    print(
        f"watchdog run: CPU {wd_cpu * 100:.2f}% of one core, {rate:.0f} probes/s, "
        f"{1000 * wd_cpu / max(rate, 1e-6):.4f} ms CPU per probe; "
        f"{runs}/{expected} runs completed ({100 * missed / max(expected, 1):.1f}% missed = scheduling drift)"
    )
    print(
        f"fping -l -i {args.fping_gap_ms}: CPU {fping_cpu * 100:.2f}% of one core, {fping_rate:.0f} probes/s, "
        f"{1000 * fping_cpu / max(fping_rate, 1e-6):.4f} ms CPU per probe"
    )
    if fping_rate < 0.9 * args.targets:
        print(f"  (fping did not keep up: {fping_rate:.0f} of {args.targets} probes/s; compare per probe)")
    print(
        f"ratio watchdog/fping: CPU {wd_cpu / max(fping_cpu, 1e-6):.1f}x, "
        f"per probe {(wd_cpu / max(rate, 1e-6)) / max(fping_cpu / max(fping_rate, 1e-6), 1e-9):.1f}x"
    )


if __name__ == "__main__":
    main()
