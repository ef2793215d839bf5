"""500 ICMP probes at 1 s: CPU use and scheduling drift of `watchdog run`, beside fping on the same targets.

Targets are 500 loopback addresses (127.0.1.1 ...), so nothing leaves the machine. Both tools run
for `--seconds`; CPU is read from /proc/PID/stat (user+system) of each process, over the same measured window
after a warm-up. Drift is how many of the expected runs (seconds x targets) the daemon did not complete
(from its latency histogram counts), less one interval's worth: the probes run as one sweep a second, so
a window's edges cut at most one sweep. Prints ours, fping's and the ratio in one run.

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


def run_watchdog(addresses: list[str], seconds: float, port: int) -> tuple[float, int, int]:
    probes = "\n".join(
        f"  - {{name: p{i}, type: icmp, target: {a}, count: 1, interval: 1s, timeout: 800ms}}"
        for i, a in enumerate(addresses)
    )
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(f"listen: 127.0.0.1:{port}\nprobes:\n{probes}\n")
        proc = subprocess.Popen([WATCHDOG, "run", "-c", str(config), "--log-level", "error"])
        try:
            time.sleep(3)  # start-up and first runs
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            runs0 = completed_runs(port)
            time.sleep(seconds)
            cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
            runs1 = completed_runs(port)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
    expected = int((t1 - t0) * len(addresses))
    return (cpu1 - cpu0) / (t1 - t0), runs1 - runs0, expected


def completed_runs(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        page = response.read().decode()
    return sum(int(float(v)) for v in re.findall(r"^vpn_watchdog_probe_latency_seconds_count\{.*\} (\S+)$", page, re.M))


def run_fping(addresses: list[str], seconds: float) -> float:
    proc = subprocess.Popen(
        ["fping", "-l", "-q", "-p", "1000", "-t", "800", *addresses],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(3)
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
    return (cpu1 - cpu0) / (t1 - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--port", type=int, default=19788)
    args = parser.parse_args()
    addresses = targets(args.targets)
    wd_cpu, runs, expected = run_watchdog(addresses, args.seconds, args.port)
    fping_cpu = run_fping(addresses, args.seconds)
    missed = max(0, expected - runs - args.targets)
    per_probe = 1000 / args.targets  # ms of CPU per probe run = CPU fraction x this
    print(f"targets {args.targets}, interval 1s, {args.seconds:.0f}s measured")
    print(
        f"watchdog run: CPU {wd_cpu * 100:.2f}% of one core, {wd_cpu * per_probe:.4f} ms per probe; "
        f"{runs}/{expected} runs completed ({100 * missed / max(expected, 1):.1f}% missed = scheduling drift)"
    )
    print(f"fping -l:     CPU {fping_cpu * 100:.2f}% of one core, {fping_cpu * per_probe:.4f} ms per probe")
    print(f"ratio watchdog/fping CPU: {wd_cpu / max(fping_cpu, 1e-6):.1f}x")


if __name__ == "__main__":
    main()
