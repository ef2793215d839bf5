"""Per-path ICMP probes make path loss visible before BGP's hold timer: a probe aimed at a BGP peer's
inside address that fails removes that path from the alerting view at once."""

from __future__ import annotations

from watchdog.alerting import AlertEngine, AlertOptions, probed_dead_paths
from watchdog.config import parse_config
from watchdog.model import BgpSession, LearnedRoute, ProbeResult, Snapshot, Tunnel
from watchdog.runners import ExporterRunner, ProbeRunner, WatchdogState

PEERS = ("169.254.10.1", "169.254.10.5", "169.254.11.1", "169.254.11.5")


class Unpolled:
    """The exporter behind a runner whose snapshots the test applies directly."""

    name, cloud = "gcp-frr", "frr"

    def poll(self) -> Snapshot:
        raise AssertionError("not polled in this test")

    def close(self) -> None:
        pass


class FixedProbe:
    def __init__(self, target: str) -> None:
        self.name, self.type, self.target, self.interval, self.timeout = f"ping-{target}", "icmp", target, 1.0, 0.8

    async def run(self) -> ProbeResult:
        raise AssertionError("not run in this test")


def frr_snapshot() -> Snapshot:
    sessions = tuple(BgpSession("gcp-bgpd", p, p.replace(".1", ".2", 1), p, True, "Established") for p in PEERS)
    routes = tuple(LearnedRoute("gcp-bgpd", "198.18.1.0/24", p, peer=p) for p in PEERS)
    return Snapshot("gcp-frr", "frr", 1.0, bgp_sessions=sessions, routes=routes)


def test_failing_path_probe_degrades_redundancy_before_bgp_notices() -> None:
    now = [1000.0]
    config = parse_config(
        """
alertmanager: {urls: ["http://127.0.0.1:9"], for: 1s}
exporters: [{name: gcp-frr, type: frr}]
expected_prefixes: [{exporter: gcp-frr, prefixes: [198.18.1.0/24], min_paths: 4}]
"""
    )
    state = WatchdogState()
    runner = ExporterRunner(
        Unpolled(), interval=1, timeout=1, expected_prefixes=("198.18.1.0/24",), clock=lambda: now[0]
    )
    runner.apply(frr_snapshot(), 0.01)  # BGP still says 4 paths: the hold timer has not expired
    state.exporters[runner.name] = runner
    probes = {p: ProbeRunner(FixedProbe(p)) for p in PEERS}
    state.probes = {r.name: r for r in probes.values()}
    for peer, probe in probes.items():
        probe.record(
            ProbeResult(probe.name, "icmp", peer, peer != PEERS[0], 0.8, "" if peer != PEERS[0] else "timeout")
        )
    engine = AlertEngine(AlertOptions.from_config(config), state, clock=lambda: now[0])
    engine.client = None
    for _ in range(3):
        engine.observe()
        now[0] += 1
    firing = {a.name: a for a in engine.health.firing()}
    assert "VpnRedundancyDegraded" in firing
    assert "3 of min 4" in firing["VpnRedundancyDegraded"].summary
    assert runner.paths["198.18.1.0/24"] == frozenset(PEERS)  # the metric stays BGP's own view

    probes[PEERS[0]].record(ProbeResult(probes[PEERS[0]].name, "icmp", PEERS[0], True, 0.01))
    for _ in range(3):
        engine.observe()
        now[0] += 1
    assert "VpnRedundancyDegraded" not in {a.name for a in engine.health.firing()}


def test_dead_path_ids_follow_the_session_and_its_tunnel() -> None:
    tunnels = (Tunnel("ha-gw", "aws-tun-0", "203.0.113.1", "198.51.100.1", True, "ESTABLISHED"),)
    sessions = (
        BgpSession("cr", "aws-peer-0", "169.254.10.2", "169.254.10.1", True, "Established", tunnel="aws-tun-0"),
    )
    snapshot = Snapshot("gcp", "gcp", 0.0, tunnels=tunnels, bgp_sessions=sessions)
    assert probed_dead_paths(snapshot, frozenset({"169.254.10.1"})) == {"aws-peer-0", "ha-gw/aws-tun-0"}
    assert probed_dead_paths(snapshot, frozenset({"198.18.1.10"})) == frozenset()  # not a path probe
    assert probed_dead_paths(None, frozenset({"169.254.10.1"})) == frozenset()
