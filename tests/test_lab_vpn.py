"""The built-in lab with real strongSwan, FRR and dnsmasq, seen through our exporters.

One lab per module (namespace prefix `lab_prefix("t")`, so a running demo lab `vw-*` is left alone),
always torn down (tests/lab_fixture.py). Timers are the lab default (BGP 1/3, DPD 2 s), so a cut
tunnel shows within seconds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deploy.lab import topology as topo
from exporters.registry import build_exporter
from tests.conftest import lab_prefix
from tests.lab_fixture import Lab, running_lab
from watchdog.config import Config, load_config
from watchdog.interfaces import Exporter
from watchdog.model import Snapshot

pytestmark = [pytest.mark.netns, pytest.mark.slow]

PREFIX = lab_prefix("t")
AWS_PREFIXES = {"198.18.1.0/24", "198.18.3.0/24"}
GCP_PREFIXES = {"198.18.0.0/24", "198.18.2.0/24"}


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running_lab("t") as lab:
        print(f"\nlab up: {lab.up_seconds:.2f} s; {lab.up_output.splitlines()[0]}")
        yield lab


@pytest.fixture(scope="module")
def config(lab: Lab) -> Config:
    return load_config(lab.config)


@pytest.fixture(scope="module")
def exporters(config: Config) -> Iterator[dict[str, Exporter]]:
    built = {e.name: build_exporter(e, timeout=5.0) for e in config.exporters}
    yield built
    for exporter in built.values():
        exporter.close()


def seconds_until(views: dict[str, Callable[[], bool]], want: bool, timeout: float) -> dict[str, float | None]:
    """For each view, seconds from now until it first returned `want` (None: not within `timeout`)."""
    start = time.monotonic()
    seen: dict[str, float | None] = dict.fromkeys(views)
    while time.monotonic() - start < timeout and None in seen.values():
        for name, view in views.items():
            if seen[name] is None and view() == want:
                seen[name] = round(time.monotonic() - start, 2)
        time.sleep(0.1)
    return seen


def tunnel_up(snapshot: Snapshot, name: str) -> bool:
    return next(t.up for t in snapshot.tunnels if t.name == name)


def session_up(snapshot: Snapshot, peer: str) -> bool:
    return next(s.up for s in snapshot.bgp_sessions if s.peer == peer)


def test_generated_daemon_config_is_valid_and_complete(config: Config, lab: Lab) -> None:
    on_prem = {"aws-frr", "aws-strongswan", "gcp-frr", "gcp-strongswan"}
    clouds = {e.name: e.type for e in config.exporters if e.name not in on_prem}
    assert on_prem < {e.name for e in config.exporters} and set(clouds.values()) <= {"aws", "gcp"}
    assert clouds.get("gcp-hub") == "gcp"  # the lab's GCP API emulator
    assert {(e.exporter, e.prefixes, e.min_paths) for e in config.expected_prefixes} >= {
        ("gcp-frr", tuple(sorted(AWS_PREFIXES)), 4),
        ("aws-frr", tuple(sorted(GCP_PREFIXES)), 4),
        ("gcp-hub", tuple(sorted(AWS_PREFIXES)), 4),
    }
    assert config.ike is not None
    assert (config.ike.netns, config.ike.interfaces, len(config.ike.peers)) == (f"{PREFIX}aws", ("aws-wan",), 4)
    assert sorted(p.name for p in config.probes) == [
        "aws-db-dns",
        "tun-pmtu",
        "tun1-ping",
        "tun2-ping",
        "tun3-ping",
        "tun4-ping",
    ]
    assert {p.netns for p in config.probes} == {f"{PREFIX}gcp"}
    assert config.alertmanager is not None


def test_strongswan_sees_four_tunnels_up_from_both_sides(exporters: dict[str, Exporter]) -> None:
    gcp = exporters["gcp-strongswan"].poll().tunnels
    aws = exporters["aws-strongswan"].poll().tunnels
    assert [(t.name, t.up, t.local_ip, t.peer_ip) for t in gcp] == [
        ("tun1", True, "203.0.113.1", "198.51.100.1"),
        ("tun2", True, "203.0.113.1", "198.51.100.2"),
        ("tun3", True, "203.0.113.2", "198.51.100.3"),
        ("tun4", True, "203.0.113.2", "198.51.100.4"),
    ]
    assert [(t.name, t.up, t.local_ip) for t in aws] == [
        ("tun1", True, "198.51.100.1"),
        ("tun2", True, "198.51.100.2"),
        ("tun3", True, "198.51.100.3"),
        ("tun4", True, "198.51.100.4"),
    ]
    assert [t.inside_cidr for t in gcp] == ["169.254.10.2/32", "169.254.10.6/32", "169.254.11.2/32", "169.254.11.6/32"]


def test_frr_sees_four_sessions_and_each_prefix_over_four_paths(exporters: dict[str, Exporter]) -> None:
    # GCP also advertises its DNS forwarders' range (the lab's stand-in for 35.199.192.0/19).
    for side, learned in (("gcp", AWS_PREFIXES), ("aws", GCP_PREFIXES | {topo.DNS_FORWARDING_STANDIN})):
        snapshot = exporters[f"{side}-frr"].poll()
        sessions = snapshot.bgp_sessions
        assert len(sessions) == 4 and all(s.up and s.received_prefixes == len(learned) for s in sessions), sessions
        assert all(s.local_ip.startswith("169.254.") for s in sessions)
        paths = {prefix: {r.peer for r in snapshot.routes if r.prefix == prefix} for prefix in learned}
        assert paths == {prefix: {s.peer for s in sessions} for prefix in learned}
        assert {r.prefix for r in snapshot.routes} == learned  # own networks are not "learned"


def test_dns_answers_from_gcp_across_the_vpn() -> None:
    result = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            f"{PREFIX}gcp",
            "dig",
            "+short",
            "+time=2",
            "+tries=1",
            "@198.18.1.10",
            "db.aws.internal",
        ],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.stdout.split() == ["198.18.1.10"]


def test_cut_tunnel_shows_down_within_seconds_and_comes_back(lab: Lab, exporters: dict[str, Exporter]) -> None:
    views: dict[str, Callable[[], bool]] = {
        "gcp-strongswan": lambda: tunnel_up(exporters["gcp-strongswan"].poll(), "tun1"),
        "aws-strongswan": lambda: tunnel_up(exporters["aws-strongswan"].poll(), "tun1"),
        "gcp-frr": lambda: session_up(exporters["gcp-frr"].poll(), "169.254.10.1"),
        "aws-frr": lambda: session_up(exporters["aws-frr"].poll(), "169.254.10.2"),
    }
    assert lab.labctl("cut", "1").returncode == 0
    down = seconds_until(views, False, 15)
    print(f"\ncut tunnel 1 -> seen down after (s): {down}")
    assert all(seconds is not None for seconds in down.values()), down
    others = exporters["gcp-strongswan"].poll().tunnels
    assert [t.name for t in others if t.up] == ["tun2", "tun3", "tun4"]
    gcp_routes = exporters["gcp-frr"].poll().routes
    assert {r.peer for r in gcp_routes if r.prefix == "198.18.1.0/24"} == {
        "169.254.10.5",
        "169.254.11.1",
        "169.254.11.5",
    }

    assert lab.labctl("restore", "1").returncode == 0
    back = seconds_until(views, True, 20)
    print(f"restore tunnel 1 -> seen up after (s): {back}")
    assert all(seconds is not None for seconds in back.values()), back


def capture(
    tap: str, action: Callable[[], object], stop: Callable[[set[tuple[str, int, bool]]], bool], seconds: float = 8
) -> set[tuple[str, int, bool]]:
    """(destination, UDP port or 0 for a non-first fragment, IP-fragmented?) of IPv4 UDP frames
    seen on `tap` while `action` runs and until `stop(seen)` or `seconds` pass."""
    seen: set[tuple[str, int, bool]] = set()
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003)) as sniffer:
        sniffer.bind((tap, 0))
        sniffer.settimeout(0.5)
        action()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not stop(seen):
            try:
                frame = sniffer.recv(65535)
            except TimeoutError:
                continue
            if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
                continue
            header_len = (frame[14] & 0x0F) * 4
            (flags_offset,) = struct.unpack("!H", frame[20:22])
            fragmented = bool(flags_offset & 0x3FFF)  # MF set or a non-zero offset
            first = flags_offset & 0x1FFF == 0
            port = struct.unpack("!H", frame[14 + header_len + 2 : 14 + header_len + 4])[0] if first else 0
            seen.add((socket.inet_ntoa(frame[30:34]), port, fragmented))
    return seen


def test_ike_tap_mirrors_the_aws_underlay_into_the_root_namespace(lab: Lab) -> None:
    """tcpdump or `watchdog ike sniff -i <prefix>aws-tap` can watch IKE from the host."""
    seen = capture(
        f"{PREFIX}aws-tap",
        lambda: lab.labctl("rekey", "2", "--ike", check=True),
        lambda seen: ("198.51.100.2", 4500, False) in seen,
    )
    assert ("198.51.100.2", 4500, False) in seen, seen


def test_small_mtu_and_big_proposals_fragment_ike_and_tunnels_still_come_up(
    lab: Lab, exporters: dict[str, Exporter]
) -> None:
    """The field notes' failure: AWS's large default proposal set, IP-fragmented at a small MTU."""
    lab.labctl("mtu", "576", check=True)
    try:
        seen = capture(
            f"{PREFIX}aws-tap",
            lambda: lab.labctl("proposals", "big", check=True),
            lambda seen: any(fragmented for _, _, fragmented in seen),
        )
        assert any(fragmented for _, _, fragmented in seen), seen
        assert all(t.up for t in exporters["aws-strongswan"].poll().tunnels)
    finally:
        lab.labctl("mtu", "1500", check=True)
        lab.labctl("proposals", "small", check=True)
    assert all(t.up for t in exporters["gcp-strongswan"].poll().tunnels)


def test_status_reports_every_process_running(lab: Lab) -> None:
    result = lab.labctl("status", "--json")
    status = json.loads(result.stdout)
    assert result.returncode == 0 and status["up"] is True
    assert sorted(status["processes"]) == sorted(
        [
            "charon-gcp",
            "gcp-api",
            "aws-api",
            "zebra-gcp",
            "bgpd-gcp",
            "charon-aws",
            "zebra-aws",
            "bgpd-aws",
            "dnsmasq-aws",
            "alertmanager",
            "prometheus",
        ]
    )
    assert status["child_sas"] == {"gcp": 4, "aws": 4}


def test_down_after_a_crash_leaves_nothing_and_up_works_again(lab: Lab) -> None:
    """Runs last in this module: kill charon hard and delete a namespace (a crashed, half-made lab)."""
    status = json.loads(lab.labctl("status", "--json").stdout)
    pids = [info["pid"] for info in status["processes"].values()]
    os.kill(status["processes"]["charon-gcp"]["pid"], signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", f"{PREFIX}inet"], check=True)

    start = time.monotonic()
    assert lab.labctl("down").returncode == 0
    print(f"\nlab down: {time.monotonic() - start:.2f} s")
    assert lab.namespaces() == []
    assert subprocess.run(["ip", "link", "show", f"{PREFIX}aws-tap"], capture_output=True).returncode != 0
    assert not [pid for pid in pids if _running(pid)]

    lab.up()  # on fresh ports
    assert json.loads(lab.labctl("status", "--json").stdout)["up"] is True


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
