"""The lab's GCP API endpoint: Compute REST, Cloud DNS zones and Cloud Monitoring over the live lab.

    <venv python> -m deploy.lab.emulators.gcp_lab --lab-dir DIR --prefix P --port N --monitoring-port M

(run from the repository root; `labctl.py up` starts it). The static shape (HA VPN gateway, external
gateway, 4 tunnels, Cloud Router with 4 interfaces and BGP peers, hub and spoke VPCs with their
peering and subnets, a forwarding and a peering DNS zone) is the lab's topology written as the
audit's `GcpProject` and served by the same `FakeGcpAudit` the tests use. Every live value is read
from the GCP side of the running lab when a request comes (cached `MAX_AGE` seconds): tunnel status
from its charon's SAs (VICI), BGP state, uptime, learned and announced routes from its FRR (vtysh),
packet and byte counts from the CHILD SAs' counters as Cloud Monitoring DELTA points, and Cloud
VPN log entries (Cloud Logging `entries:list` on the same port) from its charon log (`logship`).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.lab import labctl
from deploy.lab.emulators.gcp import PACKETS, FakeMonitoring, FakeRequest
from deploy.lab.emulators.gcp_audit import FakeGcpAudit
from deploy.lab.emulators.gcp_logging import CloudLogging
from deploy.lab.emulators.logship import GcpLogShipper
from exporters.strongswan import ViciConnection
from watchdog.audit.inventory import (
    CloudRouter,
    DnsZone,
    ExternalGateway,
    GcpProject,
    GcpTunnel,
    HaGateway,
    Network,
    Peering,
    RouterInterface,
    RouterPeer,
)

topo = labctl.topo
log = logging.getLogger("gcp_lab")

MAX_AGE = 0.5  # seconds a reading of the lab serves requests before the next one
KEEP_POINTS_SECONDS = 900.0  # Monitoring points older than this are forgotten (the exporter reads 300 s)
GATEWAY_ID = "7001"
REDUNDANCY_MET = "CONNECTION_REDUNDANCY_MET"

# compute_v1.VpnTunnel.Status values and the documented detailedStatus texts (checking-vpn-status);
# NEGOTIATION_FAILURE's text is not documented.
ESTABLISHED = ("ESTABLISHED", "Tunnel is up and running.")
NO_INCOMING = ("NO_INCOMING_PACKETS", "No incoming packets from peer.")
FIRST_HANDSHAKE = ("FIRST_HANDSHAKE", "Handshake with peer broken for unknown reason. Trying again soon.")
NEGOTIATION_FAILURE = ("NEGOTIATION_FAILURE", "Handshake with peer failed. Trying again soon.")


def lab_project() -> GcpProject:
    """The lab's GCP side as the audit's inventory record (its static shape; statuses are live)."""
    p = topo.GCP_PROJECT
    hub, spoke = f"{p}/{topo.HUB_NETWORK}", f"{p}/{topo.SPOKE_NETWORK}"
    return GcpProject(
        name="lab",
        project=p,
        region=topo.GCP_REGION,
        ha_gateways=(HaGateway(topo.HA_VPN_GATEWAY, topo.HUB_NETWORK, topo.GCP_OUTSIDE),),
        external_gateways=(
            ExternalGateway(topo.EXTERNAL_VPN_GATEWAY, "FOUR_IPS_REDUNDANCY", tuple(enumerate(topo.AWS_OUTSIDE))),
        ),
        tunnels=tuple(
            GcpTunnel(
                name=spec.name,
                gateway=topo.HA_VPN_GATEWAY,
                gateway_interface=topo.GCP_OUTSIDE.index(spec.gcp_outside),
                peer_external_gateway=topo.EXTERNAL_VPN_GATEWAY,
                peer_interface=topo.AWS_OUTSIDE.index(spec.aws_outside),
                router=topo.CLOUD_ROUTER,
                peer_ip=spec.aws_outside,
            )
            for spec in topo.TUNNELS
        ),
        routers=(
            CloudRouter(
                name=topo.CLOUD_ROUTER,
                network=topo.HUB_NETWORK,
                advertise_mode="CUSTOM",
                advertised_ranges=(topo.GCP_VPC[0],),
                interfaces=tuple(
                    RouterInterface(f"if-{spec.name}", f"{spec.gcp_inside}/30", spec.name) for spec in topo.TUNNELS
                ),
                peers=tuple(
                    RouterPeer(f"peer-{spec.name}", f"if-{spec.name}", spec.gcp_inside, spec.aws_inside)
                    for spec in topo.TUNNELS
                ),
            ),
        ),
        networks=(
            Network(hub, (topo.GCP_VPC[0],), (Peering("hub-to-spoke", spoke, export_custom_routes=True),)),
            Network(spoke, (topo.SPOKE_RANGE,), (Peering("spoke-to-hub", hub, import_custom_routes=True),)),
        ),
        dns_zones=(
            DnsZone(
                "aws-internal",
                topo.DNS_NAME.split(".", 1)[1] + ".",
                "forwarding",
                (hub,),
                forwarding_targets=(topo.DNS_ADDRESS,),
            ),
            DnsZone("aws-internal-peer", topo.DNS_NAME.split(".", 1)[1] + ".", "peering", (spoke,), target_network=hub),
        ),
    )


# --- reading the lab ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SaCounters:
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


@dataclass(frozen=True)
class TunnelState:
    status: str
    detail: str
    children: dict[str, SaCounters] = field(default_factory=dict)  # installed CHILD SA uniqueid -> counters


@dataclass(frozen=True)
class PeerState:
    established: bool
    state: str
    uptime_seconds: int | None
    learned: int


@dataclass(frozen=True)
class LabView:
    """One reading of the GCP side: by tunnel name, by AWS inside address, routes and announcements."""

    taken_at: float
    tunnels: dict[str, TunnelState]
    peers: dict[str, PeerState]
    learned: tuple[tuple[str, str], ...]  # (prefix, next hop) of every best/multipath route from a peer
    announced: tuple[str, ...]  # prefixes FRR originates itself (`network` statements that are up)


def tunnel_status(ike_state: str | None, installed: bool) -> tuple[str, str]:
    """strongSwan's view of one tunnel -> (VpnTunnel.status, detailedStatus)."""
    if installed:
        return ESTABLISHED
    if ike_state in ("ESTABLISHED", "REKEYING", "REKEYED"):
        return FIRST_HANDSHAKE  # IKE is up, the CHILD SA is not (yet) installed
    if ike_state in ("CREATED", "CONNECTING"):
        return NO_INCOMING  # we keep sending IKE requests and hear nothing back
    return NEGOTIATION_FAILURE  # no IKE SA at all (failed, deleted, waiting for the next try)


def tunnels_from_sas(sas: list[dict[str, Any]]) -> dict[str, TunnelState]:
    """VICI `list-sas` events -> one TunnelState per lab tunnel (absent: NEGOTIATION_FAILURE)."""
    best: dict[str, TunnelState] = {}
    for event in sas:
        for name, ike in event.items():
            if not isinstance(ike, dict):
                continue
            children = {
                str(child.get("uniqueid", key)): SaCounters(
                    _int(child.get("packets-in")),
                    _int(child.get("packets-out")),
                    _int(child.get("bytes-in")),
                    _int(child.get("bytes-out")),
                )
                for key, child in (ike.get("child-sas") or {}).items()
                if isinstance(child, dict) and child.get("state") == "INSTALLED"
            }
            status, detail = tunnel_status(str(ike.get("state") or ""), bool(children))
            current = best.get(name)
            if current is None or _rank(status) < _rank(current.status):
                best[name] = TunnelState(status, detail, children)
            elif status == current.status == "ESTABLISHED":  # during a rekey both IKE SAs carry children
                best[name] = TunnelState(status, detail, {**current.children, **children})
    return {spec.name: best.get(spec.name, TunnelState(*tunnel_status(None, False))) for spec in topo.TUNNELS}


def _rank(status: str) -> int:
    order = (ESTABLISHED[0], FIRST_HANDSHAKE[0], NO_INCOMING[0], NEGOTIATION_FAILURE[0])
    return order.index(status) if status in order else len(order)


def peers_from_summary(summary: dict[str, Any]) -> dict[str, PeerState]:
    peers = (summary.get("ipv4Unicast") or {}).get("peers") or {}
    result = {}
    for address, peer in peers.items():
        state = str(peer.get("state") or "Idle")
        up = state == "Established"
        uptime = peer.get("peerUptimeMsec")
        result[address] = PeerState(
            established=up,
            state=state,
            uptime_seconds=int(uptime) // 1000 if up and isinstance(uptime, int) else None,
            learned=_int(peer.get("pfxRcd")) if up else 0,
        )
    return result


def routes_from_table(table: dict[str, Any]) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """`show ip bgp json` -> (learned (prefix, next hop) of best/multipath paths, originated prefixes)."""
    learned: list[tuple[str, str]] = []
    announced: list[str] = []
    for prefix, paths in sorted((table.get("routes") or {}).items()):
        for path in paths if isinstance(paths, list) else []:
            if not path.get("valid"):
                continue
            peer = str(path.get("peerId") or "")
            hops = [str(h.get("ip")) for h in path.get("nexthops") or [] if h.get("ip")]
            if peer in ("", "(unspec)") or not hops or hops[0] == "0.0.0.0":
                if path.get("bestpath") and prefix not in announced:
                    announced.append(prefix)
            elif path.get("bestpath") or path.get("multipath"):
                learned.append((prefix, hops[0]))
    return tuple(learned), tuple(announced)


def _int(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


class LabReader:
    """Reads one side of the lab (charon over VICI, FRR over vtysh), at most once per `max_age`.

    The GCP emulator reads the GCP side; the AWS emulator (aws_lab) the AWS side: `peers` are then
    keyed by the GCP inside addresses and `learned` are the routes the AWS side took from GCP.
    """

    def __init__(self, lab: labctl.Lab, *, max_age: float = MAX_AGE, side: topo.Side = topo.GCP) -> None:
        self.lab = lab
        self.max_age = max_age
        self.side = side
        self._lock = threading.Lock()
        self._view: LabView | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lab-read")

    def view(self) -> LabView:
        with self._lock:  # one reading at a time; requests arriving meanwhile share it
            if self._view is None or time.monotonic() - self._view.taken_at > self.max_age:
                self._view = self._read()
            return self._view

    def invalidate(self) -> None:
        """The next `view()` reads the lab afresh (the caller just changed it)."""
        with self._lock:
            self._view = None

    def _read(self) -> LabView:
        sas = self._pool.submit(self.list_sas)  # VICI takes ~2 ms, vtysh ~150 ms: run them side by side
        summary, table = self.lab.vtysh_jsons(self.side, "show bgp summary json", "show ip bgp json")
        learned, announced = routes_from_table(table)
        return LabView(
            taken_at=time.monotonic(),
            tunnels=tunnels_from_sas(sas.result()),
            peers=peers_from_summary(summary),
            learned=learned,
            announced=announced,
        )

    def list_sas(self) -> list[dict[str, Any]]:
        """The side's IKE SAs (VICI `list-sas` events); [] when its charon cannot be reached."""
        try:
            conn = ViciConnection(str(self.lab.layout.vici(self.side)), 5.0)
        except OSError as exc:
            log.warning("%s-side charon unreachable: %s", self.side.key, exc)
            return []
        try:
            return conn.streamed("list-sas", "list-sa", {"noblock": "yes"})
        except (OSError, ValueError) as exc:
            log.warning("%s-side charon list-sas failed: %s", self.side.key, exc)
            return []
        finally:
            conn.close()

    def close(self) -> None:
        self._pool.shutdown(wait=False)


# --- the emulated APIs ----------------------------------------------------------------------------


class LabGcp:
    """A `FakeGcpAudit` seeded with `lab_project()` and a `FakeMonitoring`, both kept live from `reader`."""

    def __init__(self, reader: LabReader, *, charon_log: Path | None = None) -> None:
        self.reader = reader
        project = lab_project()
        self.compute = FakeGcpAudit(project.project, project.region)
        self.compute.seed(project)
        self.monitoring = FakeMonitoring(project.project, project.region)
        self._shown: float | None = None  # taken_at of the view the Compute resources show
        self._sampled: dict[str, dict[str, SaCounters]] = {}  # tunnel -> CHILD SA uniqueid -> last counters
        self._sampled_at: float | None = None
        self._sampled_view: float | None = None  # taken_at of the reading last sampled
        self._sample_lock = threading.Lock()
        self._decorate()
        # Cloud VPN logs: the GCP side's charon log, shipped as vpn_gateway entries (logship).
        self.logging = CloudLogging(project.project).mount(self.compute)
        tunnels = self.compute.collections[self.compute.regional("vpnTunnels")]
        self.shipper = (
            GcpLogShipper(
                charon_log,
                self.logging,
                region=project.region,
                gateway_id=GATEWAY_ID,
                tunnel_ids={str(t["name"]): str(t["id"]) for t in tunnels},
            )
            if charon_log is not None
            else None
        )
        self.compute.before_request.append(self._refresh_compute)
        self.monitoring.before_list.append(self._sample_packets)

    def start(self, port: int = 0, monitoring_port: int = 0) -> LabGcp:
        self.compute.start(port)
        self.monitoring.start(monitoring_port)
        if self.shipper is not None:
            self.shipper.start()
        return self

    def stop(self) -> None:
        if self.shipper is not None:
            self.shipper.stop()
        self.compute.stop()
        self.monitoring.stop()
        self.reader.close()

    # static fields the audit record does not carry
    def _decorate(self) -> None:
        c = self.compute
        region = c.link("regions", c.region)
        gateways, tunnels = c.regional("vpnGateways"), c.regional("vpnTunnels")
        for i, item in enumerate(c.collections[gateways]):
            item.update(id=GATEWAY_ID if i == 0 else str(7000 + i + 1), region=region, stackType="IPV4_ONLY")
        for i, item in enumerate(c.collections[tunnels]):
            item.update(
                id=str(7100 + i),
                region=region,
                sharedSecret="*************",
                localTrafficSelector=["0.0.0.0/0"],
                remoteTrafficSelector=["0.0.0.0/0"],
            )
        for item in c.collections[c.regional("routers")]:
            item.update(id="7200", region=region)
            item["bgp"]["keepaliveInterval"] = 20
        for i, item in enumerate(c.collections[c.regional("subnetworks")]):
            item.update(id=str(7300 + i), region=region)
        for item in c.collections["global/networks"]:
            item["routingConfig"] = {"routingMode": "GLOBAL"}

    # Compute: tunnels, router, getRouterStatus, getStatus
    def _refresh_compute(self, request: FakeRequest) -> None:
        if not request.path.startswith("/compute/"):
            return
        view = self.reader.view()
        if view.taken_at == self._shown:
            return
        c = self.compute
        tunnels_path, routers_path = c.regional("vpnTunnels"), c.regional("routers")
        router = c.resource(routers_path, topo.CLOUD_ROUTER)
        new_router = {**router, "bgp": {**router["bgp"], "advertisedIpRanges": advertised_ranges(view.announced)}}
        new_tunnels = [
            {**item, "status": view.tunnels[item["name"]].status, "detailedStatus": view.tunnels[item["name"]].detail}
            if item["name"] in view.tunnels
            else item
            for item in c.collections[tunnels_path]
        ]
        router_status = self._router_status(view)
        gateway_status = self._gateway_status(view)
        with c._lock:  # swap whole objects: a response being written keeps the old ones intact
            c.collections[tunnels_path] = new_tunnels
            c.collections[routers_path] = [new_router if r is router else r for r in c.collections[routers_path]]
            c.actions[(f"{routers_path}/{topo.CLOUD_ROUTER}", "getRouterStatus")] = router_status
            c.actions[(f"{c.regional('vpnGateways')}/{topo.HA_VPN_GATEWAY}", "getStatus")] = gateway_status
            self._shown = view.taken_at

    def _router_status(self, view: LabView) -> dict[str, Any]:
        c = self.compute
        tunnels = c.regional("vpnTunnels")
        by_aws_inside = {spec.aws_inside: spec for spec in topo.TUNNELS}
        peers = []
        for spec in topo.TUNNELS:
            peer = view.peers.get(spec.aws_inside, PeerState(False, "Idle", None, 0))
            entry: dict[str, Any] = {
                "name": f"peer-{spec.name}",
                "ipAddress": spec.gcp_inside,
                "peerIpAddress": spec.aws_inside,
                "linkedVpnTunnel": c.link(tunnels, spec.name),
                "status": "UP" if peer.established else "DOWN",
                "state": peer.state,
                "numLearnedRoutes": peer.learned,
                "enableIpv4": True,
                "md5AuthEnabled": False,
            }
            if peer.uptime_seconds is not None:
                entry["uptime"] = uptime_text(peer.uptime_seconds)
                entry["uptimeSeconds"] = str(peer.uptime_seconds)
            peers.append(entry)
        routes = []
        for prefix, next_hop in view.learned:
            route: dict[str, Any] = {
                "kind": "compute#route",
                "destRange": prefix,
                "nextHopIp": next_hop,
                "network": c.network_url(f"{c.project}/{topo.HUB_NETWORK}"),
                "priority": 100,
                "routeType": "BGP",
                "routeStatus": "ACTIVE",
                "asPaths": [{"pathSegmentType": "AS_SEQUENCE", "asLists": [topo.AWS_ASN]}],
            }
            if next_hop in by_aws_inside:
                route["nextHopVpnTunnel"] = c.link(tunnels, by_aws_inside[next_hop].name)
            routes.append(route)
        # One Cloud Router in the hub VPC: the VPC's best routes are this router's.
        return {
            "network": c.network_url(f"{c.project}/{topo.HUB_NETWORK}"),
            "bgpPeerStatus": peers,
            "bestRoutes": routes,
            "bestRoutesForRouter": routes,
        }

    def _gateway_status(self, view: LabView) -> dict[str, Any]:
        """MET while every tunnel of the FOUR_IPS mapping (if0 -> peer 0, 1; if1 -> 2, 3) is up."""
        c = self.compute
        up = all(view.tunnels[spec.name].status == ESTABLISHED[0] for spec in topo.TUNNELS)
        state: dict[str, str] = (
            {"state": REDUNDANCY_MET}
            if up
            else {"state": "CONNECTION_REDUNDANCY_NOT_MET", "unsatisfiedReason": "INCOMPLETE_TUNNELS_COVERAGE"}
        )
        return {
            "vpnConnections": [
                {
                    "peerExternalGateway": c.link("global/externalVpnGateways", topo.EXTERNAL_VPN_GATEWAY),
                    "tunnels": [
                        {
                            "localGatewayInterface": topo.GCP_OUTSIDE.index(spec.gcp_outside),
                            "peerGatewayInterface": topo.AWS_OUTSIDE.index(spec.aws_outside),
                            "tunnelUrl": c.link(c.regional("vpnTunnels"), spec.name),
                        }
                        for spec in topo.TUNNELS
                    ],
                    "state": state,
                }
            ]
        }

    # Monitoring: DELTA points of the CHILD SAs' counters since the previous sample
    def _sample_packets(self, end: float) -> None:
        view = self.reader.view()
        with self._sample_lock:
            start = self._sampled_at
            if start is not None and (end <= start or view.taken_at == self._sampled_view):
                return  # nothing new: the next reading's point will cover this stretch too
            self._sampled_view = view.taken_at
            for name, tunnel in view.tunnels.items():
                before = self._sampled.get(name, {})
                delta = SaCounters(
                    *(
                        sum(
                            max(0, getattr(now, f) - getattr(before.get(uid, SaCounters()), f))
                            for uid, now in tunnel.children.items()
                        )
                        for f in ("packets_in", "packets_out", "bytes_in", "bytes_out")
                    )
                )
                self._sampled[name] = dict(tunnel.children)
                if start is None:
                    continue  # the first sample is the baseline: counts are since the emulator started
                self._add(name, delta, start, end)
            self._sampled_at = end
        self.monitoring.prune(end - KEEP_POINTS_SECONDS)

    def _add(self, tunnel: str, delta: SaCounters, start: float, end: float) -> None:
        m = self.monitoring
        seconds = end - start
        points = (
            (f"{PACKETS}sent_packets_count", delta.packets_out, {"tunnel_name": tunnel, "status": "successful"}),
            (f"{PACKETS}received_packets_count", delta.packets_in, {"tunnel_name": tunnel, "status": "successful"}),
            (
                f"{PACKETS}sent_bytes_count",
                delta.bytes_out,
                {"tunnel_name": tunnel, "gateway_name": topo.HA_VPN_GATEWAY},
            ),
            (
                f"{PACKETS}received_bytes_count",
                delta.bytes_in,
                {"tunnel_name": tunnel, "gateway_name": topo.HA_VPN_GATEWAY},
            ),
        )
        for metric, value, labels in points:
            m.add_point(metric, value, labels=labels, end=end, seconds=seconds, gateway_id=GATEWAY_ID)


def advertised_ranges(announced: Sequence[str]) -> list[dict[str, str]]:
    """The Cloud Router's custom advertisements: what FRR originates, the DNS stand-in as 35.199.192.0/19."""
    ranges = []
    for prefix in announced:
        if prefix == topo.DNS_FORWARDING_STANDIN:
            ranges.append({"range": topo.DNS_FORWARDING_RANGE, "description": "Cloud DNS forwarding"})
        else:
            ranges.append({"range": prefix})
    return ranges


def uptime_text(seconds: int) -> str:
    """Cloud Router's uptime format: "1 days, 2 hours, 3 minutes, 4 seconds" (leading zero units left out)."""
    parts: list[str] = []
    for unit, size in (("weeks", 604800), ("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1)):
        value, seconds = divmod(seconds, size)
        if value or parts or unit == "seconds":
            parts.append(f"{value} {unit}")
    return ", ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gcp_lab", description=__doc__.split("\n\n")[0])
    p.add_argument("--lab-dir", type=Path, required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--port", type=int, required=True, help="Compute / Cloud DNS REST (http://127.0.0.1:PORT)")
    p.add_argument("--monitoring-port", type=int, required=True, help="Cloud Monitoring gRPC (insecure)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    lab = labctl.Lab(args.lab_dir.resolve(), args.prefix)
    emulator = LabGcp(LabReader(lab), charon_log=lab.layout.side_dir(topo.GCP) / "charon.log")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    emulator.start(args.port, args.monitoring_port)
    log.info("Compute http://127.0.0.1:%d  Monitoring 127.0.0.1:%d (gRPC)", args.port, args.monitoring_port)
    stop.wait()
    emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
