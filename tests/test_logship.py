"""The lab's log shipper: charon's own log lines become Cloud VPN entries the GCP exporter reads."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.lab.emulators.gcp import FakeGcp
from deploy.lab.emulators.gcp_lab import LabGcp
from deploy.lab.emulators.gcp_logging import CloudLogging
from deploy.lab.emulators.logship import GcpLogShipper, parse_line
from exporters.gcp import GcpExporter
from watchdog.config import GcpExporterConfig

# Lines as the lab's charon writes them (filelog, time_format %T, ike_name yes).
REKEY = [
    "{t} 16[ENC] <aws-tun-0|5> generating CREATE_CHILD_SA request 2 [ N(REKEY_SA) SA No KE TSi TSr ]",
    "{t} 16[NET] <aws-tun-0|5> sending packet: from 203.0.113.10[500] to 198.51.100.1[500] (1024 bytes)",
    "{t} 09[ENC] <aws-tun-0|5> parsed CREATE_CHILD_SA response 2 [ SA No KE TSi TSr ]",
    "{t} 09[IKE] <aws-tun-0|5> CHILD_SA aws-tun-0{7} established with SPIs c1a2b3c4_i d4e5f6a7_o and TS 0.0.0.0/0",
    "{t} 11[CFG] vici rekey CHILD_SA 'aws-tun-0'",
]


@pytest.fixture
def gcp() -> Iterator[FakeGcp]:
    with FakeGcp() as fake:
        yield fake


def test_a_line_without_a_date_is_today_or_yesterday() -> None:
    now = time.mktime((2026, 12, 3, 0, 0, 30, 0, 0, -1))
    at, name, message = parse_line("23:59:50 16[IKE] <tun1|3> IKE_SA tun1[3] rekeyed between a...b", now=now) or (
        0,
        "",
        "",
    )
    assert now - at == 40 and name == "tun1" and message.startswith("IKE_SA tun1[3] rekeyed")
    assert parse_line("12:00:00 11[CFG] vici rekey CHILD_SA 'tun1'", now=now) is None  # no IKE SA named


def test_a_rekey_in_charons_log_is_one_rekey_of_that_tunnel(gcp: FakeGcp, tmp_path: Path) -> None:
    charon = tmp_path / "charon.log"
    charon.write_text("00:00:01 01[IKE] <aws-tun-1|1> an old line before the shipper started\n")
    api = CloudLogging(gcp.project).mount(gcp)
    ids = {f"aws-tun-{i}": str(2000 + i) for i in range(4)}
    shipper = GcpLogShipper(charon, api, region=gcp.region, gateway_id="1111", tunnel_ids=ids)
    fields: dict[str, Any] = gcp.exporter_config(credentials_file=gcp.write_credentials(tmp_path), logs=True)
    exporter = GcpExporter(GcpExporterConfig(**fields), timeout=10.0)
    try:
        exporter.poll()
        time.sleep(1.0)  # charon's %T has whole seconds: be past the second the reader started in
        stamp = time.strftime("%H:%M:%S")
        with charon.open("a") as log:
            log.write("\n".join(line.replace("{t}", stamp) for line in REKEY) + "\n")
            log.write(f"{stamp} 16[IKE] <aws-tun-0|5> half a li")  # not complete yet: not shipped
        assert shipper.ship_once() == 3  # the packet trace ([NET]) is not shipped
        assert {e["labels"]["tunnel_id"] for e in api.entries} == {"2000"}
        assert all(e["resource"]["type"] == "vpn_gateway" for e in api.entries)

        snapshot = exporter.poll()
    finally:
        exporter.close()
    assert snapshot.logs is not None
    assert {(t, e): n for t, e, n in snapshot.logs.events} == {("aws-tun-0", "rekey"): 1, ("aws-tun-0", "other"): 2}


def test_the_lab_emulator_serves_the_shipped_entries_on_its_compute_port(tmp_path: Path) -> None:
    charon = tmp_path / "charon.log"
    charon.write_text("")

    class NoLab:
        def close(self) -> None:
            pass

    emulator = LabGcp(NoLab(), charon_log=charon)  # type: ignore[arg-type]
    assert emulator.shipper is not None
    with charon.open("a") as log:
        log.write(f"{time.strftime('%H:%M:%S')} 16[IKE] <tun2|4> retransmit 1 of request with message ID 3\n")
    assert emulator.shipper.ship_once() == 1
    (entry,) = emulator.logging.entries
    tunnels = emulator.compute.collections[emulator.compute.regional("vpnTunnels")]
    assert entry["labels"]["tunnel_id"] == next(t["id"] for t in tunnels if t["name"] == "tun2")
    assert entry["textPayload"] == "retransmit 1 of request with message ID 3"
