"""`labctl` for the benches: a lab up under the bench's own prefix with every listener on a port of
the bench's own (none left on the demo lab's defaults), and down again whatever state it is in."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABCTL = [sys.executable, str(ROOT / "deploy" / "lab" / "labctl.py")]  # stdlib-only: any python3 runs it


def new_lab_dir(name: str) -> Path:
    """A fresh temporary lab directory named after `name`, one the frr user can reach."""
    lab_dir = Path(tempfile.mkdtemp(prefix=name))
    lab_dir.chmod(0o755)
    return lab_dir


def labctl(lab_dir: Path, *args: str, timeout: float | None = None) -> str:
    """`labctl --dir LAB_DIR ARGS`; its stdout (a failure raises CalledProcessError)."""
    return subprocess.run(
        [*LABCTL, "--dir", str(lab_dir), *args], check=True, capture_output=True, text=True, timeout=timeout
    ).stdout


def up_args(
    prefix: str, *extra: str, prom: int, am: int, watchdog: int, gcp: int, monitoring: int, aws: int
) -> list[str]:
    """`up` arguments for a lab under `prefix` with each listener on the given port (`watchdog`: where the
    daemon listens and the lab's Prometheus scrapes it); `extra` (say `--bgp-timers 60/180`) goes last."""
    return [
        *("up", "--prefix", prefix, "--prom-port", str(prom), "--am-port", str(am)),
        *("--watchdog-addr", f"127.0.0.1:{watchdog}", "--gcp-port", str(gcp)),
        *("--gcp-monitoring-port", str(monitoring), "--aws-port", str(aws)),
        *extra,
    ]


def down(lab_dir: Path, timeout: float | None = None) -> None:
    """`labctl down` (its failure ignored: it tears down what it finds) and the lab directory removed."""
    subprocess.run([*LABCTL, "--dir", str(lab_dir), "down"], capture_output=True, check=False, timeout=timeout)
    shutil.rmtree(lab_dir, ignore_errors=True)
