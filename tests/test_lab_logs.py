"""Cloud VPN logs on the lab: the GCP side's charon log, shipped into the lab's Cloud Logging, read
by our real GcpExporter (`logs: true`). One lab per module (prefix `lab_prefix("l")`), torn down
and checked to leave no namespace behind (tests/lab_fixture.py)."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator

import pytest

from deploy.lab import topology as topo
from exporters.gcp import GcpExporter
from tests.lab_fixture import Lab, running_lab
from watchdog.config import GcpExporterConfig
from watchdog.model import Snapshot

pytestmark = [pytest.mark.netns, pytest.mark.slow]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running_lab("l") as lab:
        assert json.loads((lab.dir / "state.json").read_text())["gcp_api_port"] == lab.ports["gcp"]
        yield lab


@pytest.fixture(scope="module")
def exporter(lab: Lab) -> Iterator[GcpExporter]:
    config = GcpExporterConfig(
        name="gcp-lab",
        type="gcp",
        project=topo.GCP_PROJECT,
        region=topo.GCP_REGION,
        endpoint=lab.url("gcp"),
        monitoring=False,
        logs=True,
    )
    built = GcpExporter(config, timeout=10.0)
    yield built
    built.close()


def rekeys(snapshot: Snapshot) -> dict[str, int]:
    assert snapshot.logs is not None and snapshot.logs.error is None, snapshot.logs
    return {t: n for t, e, n in snapshot.logs.events if e == "rekey"}


def test_a_rekey_counts_once_for_exactly_that_tunnel(lab: Lab, exporter: GcpExporter) -> None:
    time.sleep(1.0)  # charon's log has whole seconds: past the second the reader started in
    before = rekeys(exporter.poll())
    lags = []
    for number in (2, 2, 4):
        spec = topo.tunnel(number)
        expected = {**before, spec.name: before.get(spec.name, 0) + 1}
        assert lab.labctl("rekey", str(number)).returncode == 0
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
