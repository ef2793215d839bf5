"""Soak: `watchdog run` on the lab for a long time with a tunnel flap every minute and reloads.

Every `--flap-every` seconds tunnel 1 (then 2, 3, 4 in turn) is cut for `--down-for` seconds and
restored; every flap must be alerted (VpnRedundancyDegraded from the daemon reaches Alertmanager) and
resolved. Every `--sighup-every` seconds the config file is rewritten, valid and invalid in turn
(an invalid one has a non-finite interval), and the daemon gets SIGHUP: the valid ones must be taken
(`config_last_reload_success_timestamp_seconds` moves), the invalid ones refused
(`config_reload_failures_total` counts them) and polls must never stop (the oldest exporter's last
success is sampled). The daemon's RSS, threads and open fds are sampled every 10 s; RSS growth is
measured from the end of the warm-up (`--warmup`, 10 min) to the last 5 minutes (target < 2 MB).
Needs root.

    .venv/bin/python bench/soak.py --minutes 120 --sighup-every 10
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lab_up import down, labctl, new_lab_dir, up_args  # noqa: E402

WATCHDOG = [str(Path(sys.executable).parent / "watchdog")]
# Another soak may run beside this one with VW_SOAK_PREFIX and VW_SOAK_PORT_BASE set.
PREFIX = os.environ.get("VW_SOAK_PREFIX", "vws-")
_BASE = int(os.environ.get("VW_SOAK_PORT_BASE", "19290"))
AM_PORT, PROM_PORT, WD_PORT = _BASE + 3, _BASE, _BASE + 597
GCP_PORT = _BASE + 1  # and +2: the lab's GCP API emulator
AWS_PORT = _BASE + 598  # the lab's AWS API emulator


def daemon_alerts() -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{AM_PORT}/api/v2/alerts?active=true", timeout=3) as r:
        return {
            str(a["labels"]["alertname"])
            for a in json.load(r)
            if str(a.get("generatorURL", "")).endswith(f":{WD_PORT}/metrics")
        }


def sample(pid: int) -> tuple[float, int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
    threads = int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss_kb / 1024, threads, fds


def reload_metrics() -> tuple[float, float, float]:
    """(reload failures, last good reload time, age of the stalest exporter's last success)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{WD_PORT}/metrics", timeout=5) as r:
        text = r.read().decode()
    failures = last_good = 0.0
    successes: list[float] = []
    for line in text.splitlines():
        if line.startswith("vpn_watchdog_config_reload_failures_total"):
            failures = float(line.rsplit(" ", 1)[1])
        elif line.startswith("vpn_watchdog_config_last_reload_success_timestamp_seconds"):
            last_good = float(line.rsplit(" ", 1)[1])
        elif line.startswith("vpn_watchdog_exporter_last_success_timestamp_seconds{"):
            successes.append(float(line.rsplit(" ", 1)[1]))
    stalest = time.time() - min(successes) if successes else float("inf")
    return failures, last_good, stalest


def wait_for(check, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--flap-every", type=float, default=60)
    parser.add_argument("--down-for", type=float, default=20)
    parser.add_argument("--sighup-every", type=float, default=10, help="0: no reloads")
    parser.add_argument("--warmup", type=float, default=10, help="minutes before RSS growth is measured")
    parser.add_argument(
        "--without",
        choices=("ike", "probes"),
        action="append",
        default=[],
        help="drop this part of the lab config (to find what grows)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("soak.py needs root (network namespaces)", file=sys.stderr)
        return 2
    lab_dir = new_lab_dir("vw-soak-")
    samples: list[tuple[float, float, int, int]] = []
    flaps = alerted = resolved = hups = 0
    failures = last_good = worst_stale = 0.0
    scrape_errors = 0
    daemon = None
    try:
        labctl(
            lab_dir,
            *up_args(
                PREFIX,
                prom=PROM_PORT,
                am=AM_PORT,
                watchdog=WD_PORT,
                gcp=GCP_PORT,
                monitoring=GCP_PORT + 1,
                aws=AWS_PORT,
            ),
        )
        log = (lab_dir / "watchdog.log").open("wb")
        config = lab_dir / "watchdog.yaml"
        if args.without:
            settings = yaml.safe_load(config.read_text())
            for part in args.without:
                settings.pop(part, None)
            config = lab_dir / "watchdog.soak.yaml"
            config.write_text(yaml.safe_dump(settings))
        valid_text = config.read_text()
        invalid_text = valid_text.replace("\ninterval: 5s", "\ninterval: .inf", 1)
        assert invalid_text != valid_text, "the lab config has no top-level interval to spoil"
        daemon = subprocess.Popen([*WATCHDOG, "run", "-c", str(config)], stdout=log, stderr=log)
        started = time.monotonic()
        time.sleep(15)  # first polls, sessions settle
        stop = threading.Event()

        def tick() -> None:
            """Samples every 10 s and reloads every --sighup-every s, whatever the flaps are doing."""
            nonlocal hups, failures, last_good, worst_stale, scrape_errors
            next_sample = next_hup = time.monotonic()
            next_progress = started + 600
            while not stop.wait(0.2):
                now = time.monotonic()
                if now >= next_progress:
                    next_progress += 600
                    elapsed, rss, threads, fds = samples[-1]
                    print(
                        f"[{elapsed / 60:.0f} min] RSS {rss:.1f} MB, threads {threads}, fds {fds}; "
                        f"flaps alerted {alerted}/{flaps}, resolved {resolved}; SIGHUPs {hups}, "
                        f"reload failures {failures:.0f}; stalest success {worst_stale:.1f} s",
                        flush=True,
                    )
                if now >= next_sample:
                    samples.append((now - started, *sample(daemon.pid)))
                    try:
                        failures, last_good, stalest = reload_metrics()
                        worst_stale = max(worst_stale, stalest)
                    except OSError as exc:
                        scrape_errors += 1
                        print(f"scrape failed: {exc}", file=sys.stderr)
                    next_sample += 10
                if args.sighup_every and now >= next_hup:
                    hups += 1
                    config.write_text(invalid_text if hups % 2 == 0 else valid_text)
                    daemon.send_signal(signal.SIGHUP)
                    next_hup += args.sighup_every

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        next_flap = time.monotonic()
        while time.monotonic() - started < args.minutes * 60:
            now = time.monotonic()
            if now >= next_flap:
                tunnel = str(flaps % 4 + 1)
                flaps += 1
                labctl(lab_dir, "cut", tunnel)
                alerted += wait_for(lambda: "VpnRedundancyDegraded" in daemon_alerts(), args.down_for)
                time.sleep(max(0.0, args.down_for - (time.monotonic() - now)))
                labctl(lab_dir, "restore", tunnel)
                resolved += wait_for(lambda: "VpnRedundancyDegraded" not in daemon_alerts(), args.flap_every - 25)
                next_flap = now + args.flap_every
            time.sleep(0.5)
        stop.set()
        ticker.join()
        config.write_text(valid_text)
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(15)
        down(lab_dir)
    window = 300
    warm = [s for s in samples if s[0] >= args.warmup * 60]
    first = [s for s in warm if s[0] <= warm[0][0] + window] if warm else samples[:30]
    last = [s for s in samples if s[0] >= samples[-1][0] - window]

    def med(rows: list[tuple[float, float, int, int]], i: int) -> float:
        return statistics.median(r[i] for r in rows)

    rss0, rss1 = med(first, 1), med(last, 1)
    print(
        f"soak {args.minutes:.0f} min, {len(samples)} samples, {flaps} flaps "
        f"(cut {args.down_for:.0f}s every {args.flap_every:.0f}s)"
    )
    print(
        f"RSS after {args.warmup:.0f} min warm-up {rss0:.1f} MB -> {rss1:.1f} MB ({rss1 - rss0:+.1f} MB, target < 2 MB)"
    )
    print(f"threads {med(first, 2):.0f} -> {med(last, 2):.0f}   fds {med(first, 3):.0f} -> {med(last, 3):.0f}")
    print(f"flaps alerted {alerted}/{flaps}, resolved {resolved}/{flaps}")
    print(
        f"SIGHUPs {hups} ({hups // 2} invalid): reload failures counted {failures:.0f}, "
        f"last good reload {time.time() - last_good:.0f} s before the end; "
        f"stalest exporter success seen {worst_stale:.1f} s old (polls never stopped if ~interval); "
        f"failed scrapes {scrape_errors}"
    )
    trend = [f"{t / 60:.0f}m {rss:.1f}" for t, rss, _, _ in samples[:: max(1, len(samples) // 12)]]
    print("RSS MB over time: " + ", ".join(trend))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
