"""Cloud VPN logs on the lab: the GCP side's charon log, shipped into the lab's Cloud Logging, read
by our real GcpExporter (`logs: true`). One lab per module (prefix `lab_prefix("l")`), torn down."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.lab import topology as topo
from exporters.gcp import GcpExporter
from tests.conftest import free_port, lab_prefix, require_root
from watchdog.config import GcpExporterConfig
from watchdog.model import Snapshot

pytestmark = [pytest.mark.netns, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
LABCTL = REPO / "deploy" / "lab" / "labctl.py"
PREFIX = lab_prefix("l")


def labctl(lab_dir: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    python = shutil.which("python3") or sys.executable
    return subprocess.run(
        [python, str(LABCTL), "--dir", str(lab_dir), *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def lab() -> Iterator[dict[str, Any]]:
    require_root()
    directory = Path(tempfile.mkdtemp(prefix=f"{PREFIX}lab-"))
    directory.chmod(0o755)
    port = free_port()
    try:
        result = labctl(
            directory,
            "up",
            "--prefix",
            PREFIX,
            "--prom-port",
            str(free_port()),
            "--am-port",
            str(free_port()),
            "--gcp-port",
            str(port),
            "--gcp-monitoring-port",
            str(free_port()),
            "--aws-port",
            str(free_port()),
        )
        assert result.returncode == 0, f"lab up failed:\n{result.stdout}\n{result.stderr}"
        assert json.loads((directory / "state.json").read_text())["gcp_api_port"] == port
        yield {"dir": directory, "url": f"http://127.0.0.1:{port}"}
    finally:
        labctl(directory, "down")
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def exporter(lab: dict[str, Any]) -> Iterator[GcpExporter]:
    config = GcpExporterConfig(
        name="gcp-lab",
        type="gcp",
        project=topo.GCP_PROJECT,
        region=topo.GCP_REGION,
        endpoint=lab["url"],
        monitoring=False,
        logs=True,
    )
    built = GcpExporter(config, timeout=10.0)
    yield built
    built.close()


def rekeys(snapshot: Snapshot) -> dict[str, int]:
    assert snapshot.logs is not None and snapshot.logs.error is None, snapshot.logs
    return {t: n for t, e, n in snapshot.logs.events if e == "rekey"}


def test_a_rekey_counts_once_for_exactly_that_tunnel(lab: dict[str, Any], exporter: GcpExporter) -> None:
    time.sleep(1.0)  # charon's log has whole seconds: past the second the reader started in
    before = rekeys(exporter.poll())
    lags = []
    for number in (2, 2, 4):
        spec = topo.tunnel(number)
        expected = {**before, spec.name: before.get(spec.name, 0) + 1}
        assert labctl(lab["dir"], "rekey", str(number)).returncode == 0
        asked = time.monotonic()
        deadline = asked + 30
        while True:
            now = rekeys(exporter.poll())
            if now != before or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        lags.append(time.monotonic() - asked)
        assert now == expected
        before = now
    time.sleep(2.0)  # nothing else arrives late
    assert rekeys(exporter.poll()) == before
    print(f"\nrekey -> tunnel_log_events_total{{event=rekey}}: median {statistics.median(lags):.2f} s ({lags})")
