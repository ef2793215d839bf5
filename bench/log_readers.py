"""CPU cost of reading the managed endpoints' logs, per 1,000 entries.

1. Parsing, classifying and counting (no I/O): the AWS reader's per-event work (JSON tunnel activity
   and BGP records) and the GCP reader's per-entry work (Cloud VPN / Cloud Router LogEntry dicts), side
   by side with a reference that only decodes the same entries (`json.loads` + reading the fields).
2. End to end on GCP: one poll of the real exporter with `logs: true` against the local Compute +
   Cloud Logging fake running in its own process (so its CPU is not ours), minus a poll of the same
   exporter with `logs: false`: the CPU one poll spends per 1,000 entries read over HTTP.

    .venv/bin/python bench/log_readers.py [--entries 20000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy.lab.emulators.gcp import FakeGcp  # noqa: E402
from deploy.lab.emulators.gcp_logging import CloudLogging, rfc3339  # noqa: E402
from exporters.aws_client import AwsClient  # noqa: E402
from exporters.aws_logs import AwsTunnelLogReader  # noqa: E402
from exporters.gcp import GcpExporter  # noqa: E402
from exporters.gcp_client import GcpClient  # noqa: E402
from exporters.gcp_logs import GcpLogReader  # noqa: E402
from watchdog.config import GcpExporterConfig  # noqa: E402
from watchdog.model import Tunnel  # noqa: E402

AWS_DETAILS = [
    "AWS tunnel is sending request (id=7) for CREATE_CHILD_SA",
    "AWS tunnel processed response (id=7) for CREATE_CHILD_SA",
    "AWS tunnel DPD timed out after 3 retransmits",
    "No Proposal Match Found by AWS",
    "AWS tunnel received DELETE for Phase 2 SA with SPI: c1f2a3b4",
]
GCP_MESSAGES = [
    "retransmit 2 of request with message ID 5",
    "detected rekeying of CHILD_SA vpn_198.51.100.1{1}",
    "CHILD_SA vpn_198.51.100.1{1} established with SPIs c1a2b3c4_i d4e5f6a7_o and TS 0.0.0.0/0 === 0.0.0.0/0",
    "parsed INFORMATIONAL response 8 [ ]",
    "peer said something the docs never mention 17",
]


def aws_events(n: int, now: float) -> list[dict[str, Any]]:
    events = []
    for i in range(n):
        ip = f"203.0.113.{10 + i % 4}"
        record = {
            "event_timestamp": int(now),
            "details": AWS_DETAILS[i % len(AWS_DETAILS)],
            "dpd_enabled": True,
            "nat_t_detected": False,
            "ike_phase1_state": "established",
            "ike_phase2_state": "established",
        }
        events.append(
            {
                "logStreamName": f"vpn-0abc-{ip}",
                "timestamp": int((now + i / 1000) * 1000),
                "message": json.dumps(record),
                "eventId": str(i),
            }
        )
    return events


def gcp_entries(n: int, now: float) -> list[dict[str, Any]]:
    return [
        {
            "insertId": f"id{i}",
            "timestamp": rfc3339(now + i / 1000),
            "logName": "projects/proj-1/logs/cloud.googleapis.com%2Fipsec_events",
            "resource": {"type": "vpn_gateway", "labels": {"region": "asia-northeast1", "gateway_id": "1111"}},
            "labels": {"tunnel_id": str(2000 + i % 4)},
            "textPayload": GCP_MESSAGES[i % len(GCP_MESSAGES)],
        }
        for i in range(n)
    ]


def cpu(fn: Any) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def in_process(n: int) -> None:
    now = time.time()
    events = aws_events(n, now)
    aws = AwsTunnelLogReader(
        AwsClient("bench", "ap-northeast-1", profile=None, endpoint_url="http://127.0.0.1:9", timeout=5), "/g"
    )
    tunnels = {("vpn-0abc", f"203.0.113.{10 + i}") for i in range(4)}

    def aws_ours() -> None:
        for event in events:
            aws.book.add(aws._entry(event, tunnels, {}))

    def aws_reference() -> None:
        for event in events:
            record = json.loads(event["message"])
            (record.get("details"), record.get("ike_phase1_state"), event["eventId"], event["timestamp"])

    entries = gcp_entries(n, now)
    config = GcpExporterConfig(name="bench", type="gcp", project="proj-1", region="asia-northeast1")
    gcp = GcpLogReader(GcpClient(config))
    by_name = {f"aws-tun-{i}": Tunnel("ha-gw", f"aws-tun-{i}", "", "", True, "ESTABLISHED") for i in range(4)}
    tunnel_ids = {str(2000 + i): f"aws-tun-{i}" for i in range(4)}
    raw_json = json.dumps({"entries": entries})

    def gcp_ours() -> None:
        for entry in entries:
            gcp.book.add(gcp._entry(entry, by_name, {}, {"1111": "ha-gw"}, tunnel_ids, {}))

    def gcp_reference() -> None:
        for entry in json.loads(raw_json)["entries"]:
            (entry["timestamp"], entry["insertId"], entry["resource"]["labels"], entry.get("textPayload"))

    print(f"1. parse + classify + count, {n} entries each (CPU per 1,000 entries)")
    for name, ours, ref in (("AWS", aws_ours, aws_reference), ("GCP", gcp_ours, gcp_reference)):
        ours_s, ref_s = cpu(ours), cpu(ref)
        print(
            f"   {name}: ours {ours_s / n * 1e6:.1f} ms   reference (decode only) {ref_s / n * 1e6:.1f} ms"
            f"   ratio {ours_s / ref_s:.1f}x"
        )


def _serve(n: int, ready: Any, stop: Any) -> None:
    with FakeGcp() as fake:
        api = CloudLogging(fake.project).mount(fake)
        now = time.time()
        api.write(
            [
                {**e, "resource": {**e["resource"], "labels": {**e["resource"]["labels"], "region": fake.region}}}
                for e in gcp_entries(n, now - 5)
            ]
        )
        ready.send((fake.url, fake.project, fake.region))
        stop.wait()


def end_to_end(n: int) -> None:
    ready_recv, ready_send = multiprocessing.Pipe(duplex=False)
    stop = multiprocessing.Event()
    server = multiprocessing.Process(target=_serve, args=(n, ready_send, stop), daemon=True)
    server.start()
    try:
        url, project, region = ready_recv.recv()
        base = {"name": "gcp-hub", "type": "gcp", "project": project, "region": region, "endpoint": url}
        base["monitoring"] = False
        results = {}
        with tempfile.TemporaryDirectory():
            for logs in (False, True, False, True):
                exporter = GcpExporter(GcpExporterConfig(**base, logs=logs), timeout=60.0)
                exporter.poll()  # connect, import, warm up; the logs poll reads everything once
                if logs:
                    assert exporter.logs is not None
                    exporter.logs = GcpLogReader(exporter.client, max_pages=1000)  # fresh cursor: read all
                start_wall, start = time.monotonic(), time.process_time()
                snapshot = exporter.poll()
                results.setdefault(logs, []).append((time.process_time() - start, time.monotonic() - start_wall))
                if logs:
                    read = sum(c for _, c in snapshot.logs.entries) if snapshot.logs else 0
                    assert read == n, read
                exporter.close()
        off = min(c for c, _ in results[False])
        on = min(c for c, _ in results[True])
        wall = min(w for _, w in results[True])
        print(f"2. end to end, GCP exporter poll against the fake in its own process, {n} entries")
        print(
            f"   poll CPU: logs off {off * 1000:.0f} ms, logs on {on * 1000:.0f} ms (wall {wall:.2f} s)"
            f" -> {(on - off) / n * 1000 * 1000:.1f} ms CPU per 1,000 entries read"
        )
    finally:
        stop.set()
        server.join(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--entries", type=int, default=20000)
    args = parser.parse_args()
    random.seed(1)
    in_process(args.entries)
    end_to_end(args.entries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
