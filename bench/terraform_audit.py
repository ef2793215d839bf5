#!/usr/bin/env python3
"""Benchmark `watchdog audit --terraform` on a 200+ resource configuration against python-hcl2's bare parse.

Generates bench/out/terraform-sites/: a root module calling the corpus's production shape
(tests/data/terraform/production, 33 resources: 2 AWS connections, 4 tunnels, hub + spoke, DNS) as a
local module once per site, so count, dynamic blocks, lookups and module variables are all exercised.
Then times, in this process, best of --repeat runs each:
  ours:      the whole audit: parse every file, evaluate, build the inventory, run the rules, word them;
  reference: `hcl2.loads` of the same files (python-hcl2's own parse into its dict, nothing evaluated);
and the CLI end to end (`watchdog audit --terraform DIR --format json`, a fresh process: imports included).
Prints both times and the ratio; exits 1 if the audit took 1 s or more or found something unexpected
(the seven hubs all forwarding DNS to AWS rightly give dns.forwarding-multiple-vpcs).

Usage: .venv/bin/python bench/terraform_audit.py [--sites N] [--repeat N]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OUT = ROOT / "bench" / "out" / "terraform-sites"
SHAPE = ROOT / "tests" / "data" / "terraform" / "production"


def generate(sites: int) -> Path:
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "modules").mkdir(parents=True)
    shutil.copytree(SHAPE, OUT / "modules" / "vpn")
    calls = []
    for i in range(sites):
        calls.append(
            f'module "site_{i}" {{\n  source      = "./modules/vpn"\n  project     = "net-hub-{i}"\n'
            "  num_tunnels = 4\n}\n"
        )
    (OUT / "main.tf").write_text("\n".join(calls))
    return OUT


def best(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sites", type=int, default=7, help="copies of the 33-resource shape (default 7 = 231)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import hcl2

    from watchdog.audit.terraform.command import run

    root = generate(args.sites)
    files = sorted(root.rglob("*.tf"))
    texts = [f.read_text() for f in files]
    located, summary = run([str(root)], [])  # warm: the grammar is loaded once per process
    ours = best(lambda: run([str(root)], []), args.repeat)
    reference = best(lambda: [hcl2.loads(t) for t in texts], args.repeat)
    start = time.perf_counter()
    cli = subprocess.run(
        [sys.executable, "-m", "watchdog", "audit", "--terraform", str(root), "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    cli_wall = time.perf_counter() - start
    print(f"configuration: {summary['resources']} resources in {len(files)} files ({args.sites} sites)")
    print(f"ours (parse + evaluate + audit): {ours * 1000:.0f} ms")
    print(f"reference (hcl2.loads, parse only): {reference * 1000:.0f} ms")
    print(f"ratio: ours / reference = {ours / reference:.2f}")
    print(f"CLI end to end (fresh process, imports included): {cli_wall * 1000:.0f} ms, exit {cli.returncode}")
    # Seven hubs that all forward DNS to AWS: the one finding expected is dns.forwarding-multiple-vpcs.
    rules = sorted({x.finding.rule for x in located})
    print(f"findings: {len(located)} ({', '.join(rules) or 'none'})")
    if cli.returncode not in (0, 1) or rules not in ([], ["dns.forwarding-multiple-vpcs"]):
        print(f"unexpected: {cli.stderr[-300:]}")
        return 1
    if ours >= 1.0:
        print("FAIL: the audit took 1 s or more")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
