"""Start-up time of the command line beside bare Python.

Runs, alternating, `--runs` times each (fresh processes, wall clock): the reference `python -c pass`
with the same interpreter and environment, `watchdog --version`, `watchdog --help` and
`watchdog config check -c <a small config>`. Prints the median and the fastest run of each and
both ratios to the reference (medians, fastest runs: on a busy machine the fastest runs are the
steadier measure). Target (issue 17): --version and --help <= 3x bare Python.

    .venv/bin/python bench/startup.py [--runs 21]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """\
exporters:
  - name: onprem-frr
    type: frr
    vtysh: [vtysh]
probes:
  - name: db-dns
    type: dns
    query: db.example.internal
    server: 192.0.2.53
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # The console script's own code (vpn_watchdog:main), so the checkout's packages are the ones measured.
    script = "import sys; from vpn_watchdog import main; sys.argv[0] = 'watchdog'; sys.exit(main())"
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(CONFIG)
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "watchdog --version": [sys.executable, "-c", script, "--version"],
            "watchdog --help": [sys.executable, "-c", script, "--help"],
            "watchdog config check": [sys.executable, "-c", script, "config", "check", "-c", str(config)],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                started = time.perf_counter()
                done = subprocess.run(argv, env=env, cwd=tmp, capture_output=True, check=False)
                times[name].append(time.perf_counter() - started)
                if done.returncode != 0:
                    print(f"{name} exited {done.returncode}: {done.stderr.decode()[-500:]}", file=sys.stderr)
                    return 1
    reference = statistics.median(times["python -c pass"])
    fastest = min(times["python -c pass"])
    print(f"{'':24} {'median':>8} {'fastest':>8} {'ratios':>15}   ({args.runs} runs each, alternating)")
    for name, values in times.items():
        median = statistics.median(values)
        target = "  target <= 3x" if name in ("watchdog --version", "watchdog --help") else ""
        ratios = f"{median / reference:5.2f}x {min(values) / fastest:5.2f}x"
        print(f"{name:24} {median * 1000:6.0f}ms {min(values) * 1000:6.0f}ms {ratios:>15}{target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
