"""The /metrics exposition: golden text for a known state, vanishing series, no I/O at scrape time."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

from watchdog.catalogue import METRICS, PREFIX
from watchdog.metrics import render_page
from watchdog.model import BgpSession, HaGateway, LearnedRoute, PacketCount, ProbeResult, Scope, Snapshot, Tunnel
from watchdog.runners import ExporterRunner, ProbeRunner, WatchdogState

GOLDEN = Path(__file__).parent / "data" / "golden" / "metrics.prom"


class StaticExporter:
    """An exporter whose source is a list of snapshots (the test's 'API')."""

    def __init__(self, name: str, cloud: str, snapshots: list[Snapshot]) -> None:
        self.name, self.cloud, self._snapshots = name, cloud, snapshots

    def poll(self) -> Snapshot:
        return self._snapshots.pop(0)

    def close(self) -> None:
        pass


class StaticProbe:
    def __init__(self, result: ProbeResult) -> None:
        self.name, self.type, self.target = result.probe, result.type, result.target
        self.interval, self.timeout, self._result = 5.0, 2.0, result

    async def run(self) -> ProbeResult:
        return self._result


def gcp_snapshot(tunnels: int = 2) -> Snapshot:
    names = [f"gcp-tun-{i}" for i in range(tunnels)]
    return Snapshot(
        exporter="gcp-hub",
        cloud="gcp",
        taken_at=1_700_000_000.0,
        tunnels=tuple(
            Tunnel(
                "ha-gw",
                n,
                f"203.0.113.{1 + i // 2}",
                f"198.51.100.{i + 1}",
                up=i != 1,
                status="ESTABLISHED" if i != 1 else "NO_INCOMING_PACKETS",
                detail="Tunnel is up and running." if i != 1 else "No incoming packets from peer.",
                router="cr-aws",
                gateway_interface=i // 2,
                peer_interface=i,
            )
            for i, n in enumerate(names)
        ),
        bgp_sessions=(
            BgpSession("cr-aws", "peer-0", "169.254.10.2", "169.254.10.1", True, "Established", 145.0, 2, "gcp-tun-0"),
        ),
        routes=(
            LearnedRoute("cr-aws", "198.18.1.0/24", "169.254.10.1", peer="peer-0", tunnel="gcp-tun-0"),
            LearnedRoute("cr-aws", "198.18.3.0/24", "169.254.10.1", peer="peer-0", tunnel="gcp-tun-0"),
        ),
        gateways=(HaGateway("ha-gw", False, "INCOMPLETE_TUNNELS_COVERAGE"),),
        packet_counts=(PacketCount("gcp-tun-0", "received", "fragment_received", 3.0),),
        api_calls=4,
    )


def make_state() -> WatchdogState:
    state = WatchdogState()
    runner = ExporterRunner(
        StaticExporter("gcp-hub", "gcp", []),
        interval=30,
        timeout=10,
        expected_prefixes=("198.18.1.0/24", "198.18.9.0/24"),
        clock=lambda: 1_700_000_100.0,
    )
    runner.apply(gcp_snapshot(), 0.25)
    state.exporters[runner.name] = runner
    probe = ProbeRunner(
        StaticProbe(
            ProbeResult(
                "aws-db-ping",
                "icmp",
                "198.18.1.10",
                False,
                2.0,
                "loss",
                "1/3 lost",
                latencies=(0.004, 0.012),
                sent=3,
                received=2,
            )
        )
    )
    probe.record(probe.probe._result)  # type: ignore[attr-defined]
    state.probes[probe.name] = probe
    state.failovers[("gcp-hub", "198.18.1.0/24")] = 1
    state.expected_min_paths[("gcp-hub", "198.18.1.0/24")] = 2
    state.alerts_sent["success"] = 2
    return state


def render(state: WatchdogState) -> str:
    return render_page(state).decode()


def test_golden_exposition() -> None:
    # build_info's values change with every commit and interpreter; its own test checks them.
    text = re.sub(r"^(vpn_watchdog_build_info)\{.*$", r"\1{...} 1.0", render(make_state()), flags=re.M)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_values_a_user_reads() -> None:
    text = render(make_state())
    assert (
        'vpn_watchdog_tunnel_up{cloud="gcp",connection="ha-gw",exporter="gcp-hub",local_ip="203.0.113.1",'
        'peer_ip="198.51.100.2",tunnel="gcp-tun-1"} 0.0'
    ) in text
    assert 'vpn_watchdog_expected_prefix_paths{cloud="gcp",exporter="gcp-hub",prefix="198.18.1.0/24"} 1.0' in text
    assert 'vpn_watchdog_expected_prefix_paths{cloud="gcp",exporter="gcp-hub",prefix="198.18.9.0/24"} 0.0' in text
    assert 'vpn_watchdog_ha_redundancy_met{cloud="gcp",exporter="gcp-hub",gateway="ha-gw"} 0.0' in text
    assert 'vpn_watchdog_probe_icmp_loss_ratio{probe="aws-db-ping",target="198.18.1.10"} 0.3333333333333333' in text
    assert 'vpn_watchdog_exporter_api_calls_total{cloud="gcp",exporter="gcp-hub"} 4.0' in text


def test_deleted_tunnel_disappears_between_polls() -> None:
    state = make_state()
    runner = state.exporters["gcp-hub"]
    assert 'tunnel="gcp-tun-1"' in render(state)
    runner.apply(gcp_snapshot(tunnels=1), 0.1)
    text = render(state)
    assert 'tunnel="gcp-tun-1"' not in text
    assert 'tunnel="gcp-tun-0"' in text


def test_routes_across_polls_read_as_if_each_page_were_rendered_afresh() -> None:
    """Route lines are reused from the last render (for speed at 50,000 routes): a withdrawn route
    must vanish, a new next hop or scope must show, and a duplicate stays one series."""
    hub, tokyo = Scope("project", "net-hub", "asia-northeast1"), Scope("project", "net-hub", "us-east4")
    a = LearnedRoute("cr-aws", "198.18.1.0/24", "169.254.10.1", peer="peer-0", scope=hub)
    b = LearnedRoute("cr-aws", "198.18.3.0/24", "169.254.10.1", peer="peer-0", scope=hub)
    polls = [
        (a, b),
        (a, b),  # the same records again
        (a, replace(a, peer="peer-1"), replace(b, scope=tokyo)),  # a twice (one series); b now in another region
        (a, replace(b, scope=tokyo, next_hop="169.254.10.5")),  # b moved to another path
        (replace(b, scope=tokyo, next_hop="169.254.10.5"),),  # a withdrawn
    ]
    runner = ExporterRunner(StaticExporter("gcp-hub", "gcp", []), interval=30, timeout=10)
    for routes in polls:
        snapshot = replace(gcp_snapshot(), routes=routes)
        runner.apply(snapshot, 0.1)
        state = WatchdogState()
        state.exporters[runner.name] = runner
        fresh = WatchdogState()
        fresh.exporters[runner.name] = ExporterRunner(StaticExporter("gcp-hub", "gcp", []), interval=30, timeout=10)
        fresh.exporters[runner.name].apply(snapshot, 0.1)
        page = [line for line in render(state).splitlines() if "learned_prefix{" in line]
        assert page == [line for line in render(fresh).splitlines() if "learned_prefix{" in line]
        assert len(page) == len({(r.scope, r.router, r.prefix, r.next_hop) for r in routes})
    assert page == [
        'vpn_watchdog_learned_prefix{cloud="gcp",exporter="gcp-hub",next_hop="169.254.10.5",prefix="198.18.3.0/24",'
        'project="net-hub",region="us-east4",router="cr-aws"} 1.0'
    ]


def test_failed_poll_keeps_last_values_and_marks_exporter_down() -> None:
    from watchdog.errors import ExporterError

    state = make_state()
    runner = state.exporters["gcp-hub"]
    runner._record_failure(ExporterError("throttled", "429 from compute"), started=0.0)
    text = render(state)
    assert 'vpn_watchdog_exporter_up{cloud="gcp",exporter="gcp-hub"} 0.0' in text
    assert 'vpn_watchdog_exporter_errors_total{cloud="gcp",exporter="gcp-hub",reason="throttled"} 1.0' in text
    # the tunnels keep their last known state: an API outage is not a VPN outage
    assert 'tunnel="gcp-tun-0"} 1.0' in text


def test_every_declared_metric_is_documented_and_prefixed() -> None:
    for name, (kind, help_text) in METRICS.items():
        assert kind in {"gauge", "counter", "histogram"} and help_text.endswith(".")
        assert not name.startswith(PREFIX)
        assert (kind == "counter") == name.endswith("_total"), name


def test_tunnel_info_detail_does_not_churn_with_the_route_count() -> None:
    """AWS reports StatusMessage "N BGP ROUTES"; the count is bgp_received_prefixes already, so a
    changing count must not start a new tunnel_info series."""

    def page(message: str) -> list[str]:
        snapshot = Snapshot(
            exporter="aws",
            cloud="aws",
            taken_at=1_700_000_000.0,
            tunnels=(Tunnel("vpn-1", "198.51.100.1", "198.51.100.1", "203.0.113.1", True, "UP", message),),
        )
        state = WatchdogState()
        runner = ExporterRunner(StaticExporter("aws", "aws", [snapshot]), interval=30, timeout=10)
        runner.apply(snapshot, 0.1)
        state.exporters["aws"] = runner
        return [line for line in render(state).splitlines() if line.startswith("vpn_watchdog_tunnel_info{")]

    assert (
        page("2 BGP ROUTES")
        == page("117 BGP ROUTES")
        == [
            'vpn_watchdog_tunnel_info{cloud="aws",connection="vpn-1",detail="BGP ROUTES",exporter="aws",'
            'status="UP",tunnel="198.51.100.1"} 1.0'
        ]
    )
    assert 'detail="IPSEC IS DOWN"' in page("IPSEC IS DOWN")[0]
