"""The lab's AWS API endpoint: EC2 and CloudWatch Logs (moto, `MotoAws`) over the live lab.

    <venv python> -m deploy.lab.emulators.aws_lab --lab-dir DIR --prefix P --port N

(run from the repository root; `labctl.py up` starts it). The static shape is seeded once into the
same `MotoAws` the tests use: in `topology.AWS_REGION` a transit gateway (ASN `AWS_ASN`), one
customer gateway per HA VPN interface (`GCP_OUTSIDE`, ASN `GCP_ASN`), one VPN connection per
customer gateway with its two tunnels (outside IPs and inside /30s of `topology.TUNNELS`), their
attachments associated with and propagating to the TGW's default route table, a VPC for the AWS
side's range attached to the TGW, and the CloudWatch Logs group `AWS_TUNNEL_LOG_GROUP` with one
stream per tunnel (`<vpn id>-<outside IP>`, as AWS names them). Every live value is read from the
AWS side of the running lab when a request comes (cached `MAX_AGE` seconds, `gcp_lab.LabReader`):
`VgwTelemetry` from the CHILD SAs (VICI) and the BGP sessions (vtysh: UP = IPsec up and BGP
Established, `AcceptedRouteCount` = prefixes received), `SearchTransitGatewayRoutes`' propagated
routes from FRR's best paths, and the tunnels' `TunnelOptions` algorithm lists from the AWS side's
own swanctl.conf. `ModifyVpnTunnelOptions` rewrites that tunnel's proposals in swanctl.conf, loads
them (`swanctl --load-conns`) and re-establishes the tunnel from the AWS side; the tunnel reads
DOWN from the call until it is back. The AWS side's charon log is shipped into the log group as
tunnel activity log JSON (`logship.AwsLogShipper`). On startup it writes `aws/api.json` into the
lab directory (endpoint, region and the generated ids) for configs and tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moto.ec2.exceptions import InvalidParameterValueError, InvalidVpnConnectionIdError
from moto.ec2.responses.vpn_connections import VPNConnections

from deploy.lab import labctl
from deploy.lab.emulators.aws import ModifyCall, MotoAws
from deploy.lab.emulators.gcp_lab import ESTABLISHED, LabReader, LabView
from deploy.lab.emulators.logship import AwsLogShipper, TunnelStream
from watchdog.audit.ciphers import AWS_DEFAULTS, AWS_ENCRYPTION, AWS_IKE_VERSIONS, AWS_INTEGRITY, AWS_PHASE2_DH

topo = labctl.topo
log = logging.getLogger("aws_lab")

MAX_AGE = 1.0  # seconds a reading of the lab serves requests before the next one
LOG_GROUP_ARN = f"arn:aws:logs:{topo.AWS_REGION}:123456789012:log-group:{topo.AWS_TUNNEL_LOG_GROUP}"
_LIVE_ACTIONS = frozenset(
    {"DescribeVpnConnections", "SearchTransitGatewayRoutes", "GetTransitGatewayRouteTablePropagations"}
)

# strongSwan proposal keywords <-> AWS tunnel option values. Keywords AWS has no value for (aes192,
# curve25519, ...) do not show in TunnelOptions: AWS could not be configured with them.
ENCRYPTION = {"aes128": "AES128", "aes256": "AES256", "aes128gcm16": "AES128-GCM-16", "aes256gcm16": "AES256-GCM-16"}
INTEGRITY = {"sha1": "SHA1", "sha256": "SHA2-256", "sha384": "SHA2-384", "sha512": "SHA2-512"}
DH_GROUPS = {
    "modp1024": 2,
    "modp1536": 5,
    "modp2048": 14,
    "modp3072": 15,
    "modp4096": 16,
    "modp6144": 17,
    "modp8192": 18,
    "ecp256": 19,
    "ecp384": 20,
    "ecp521": 21,
    "modp1024s160": 22,
    "modp2048s224": 23,
    "modp2048s256": 24,
}
_OPTION_KEYS = (
    "Phase1EncryptionAlgorithms",
    "Phase1IntegrityAlgorithms",
    "Phase1DHGroupNumbers",
    "Phase2EncryptionAlgorithms",
    "Phase2IntegrityAlgorithms",
    "Phase2DHGroupNumbers",
    "IkeVersions",
)
_REQUEST_KEYS = {
    "IKEVersions": "IkeVersions",
    "DPDTimeoutSeconds": "DpdTimeoutSeconds",
    "DPDTimeoutAction": "DpdTimeoutAction",
}
_VALID: dict[str, tuple[str | int, ...]] = {
    "Phase1EncryptionAlgorithms": AWS_ENCRYPTION,
    "Phase2EncryptionAlgorithms": AWS_ENCRYPTION,
    "Phase1IntegrityAlgorithms": AWS_INTEGRITY,
    "Phase2IntegrityAlgorithms": AWS_INTEGRITY,
    "Phase1DHGroupNumbers": tuple(DH_GROUPS.values()),
    "Phase2DHGroupNumbers": tuple(g for g in AWS_PHASE2_DH if g in DH_GROUPS.values()),
    "IkeVersions": AWS_IKE_VERSIONS,
}
_DEFAULTS = {
    "Phase1EncryptionAlgorithms": AWS_DEFAULTS["phase1_encryption"],
    "Phase1IntegrityAlgorithms": AWS_DEFAULTS["phase1_integrity"],
    "Phase1DHGroupNumbers": AWS_DEFAULTS["phase1_dh"],
    "Phase2EncryptionAlgorithms": AWS_DEFAULTS["phase2_encryption"],
    "Phase2IntegrityAlgorithms": AWS_DEFAULTS["phase2_integrity"],
    "Phase2DHGroupNumbers": AWS_DEFAULTS["phase2_dh"],
    "IkeVersions": AWS_IKE_VERSIONS,
}


def _ordered(values: Sequence[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def options_from_proposals(proposals: topo.ConnProposals) -> dict[str, list[dict[str, Any]]]:
    """A connection's swanctl proposals -> AWS TunnelOptions lists (response casing, [{"Value": v}])."""

    def parse(text: str, *, prf: bool) -> tuple[list[str], list[str], list[int]]:
        enc: list[str] = []
        integ: list[str] = []
        dh: list[int] = []
        for token in (t for proposal in text.split(",") for t in proposal.split("-")):
            if token in ENCRYPTION:
                enc.append(ENCRYPTION[token])
            elif token in INTEGRITY:
                integ.append(INTEGRITY[token])
            elif prf and token.startswith("prf") and token[3:] in INTEGRITY:
                integ.append(INTEGRITY[token[3:]])  # an AEAD IKE proposal's PRF is AWS's integrity value
            elif token in DH_GROUPS:
                dh.append(DH_GROUPS[token])
        return _ordered(enc), _ordered(integ), _ordered(dh)

    e1, i1, d1 = parse(proposals.ike, prf=True)
    e2, i2, d2 = parse(proposals.esp, prf=False)
    versions = {1: ["ikev1"], 2: ["ikev2"]}.get(proposals.version, list(AWS_IKE_VERSIONS))
    lists: dict[str, list[Any]] = {
        "Phase1EncryptionAlgorithms": e1,
        "Phase1IntegrityAlgorithms": i1,
        "Phase1DHGroupNumbers": d1,
        "Phase2EncryptionAlgorithms": e2,
        "Phase2IntegrityAlgorithms": i2,
        "Phase2DHGroupNumbers": d2,
        "IkeVersions": versions,
    }
    return {key: [{"Value": v} for v in values] for key, values in lists.items()}


def proposals_from_options(options: dict[str, Any]) -> topo.ConnProposals:
    """AWS TunnelOptions lists (response casing; an empty or missing list means AWS's defaults) ->
    swanctl proposals: the CBC algorithms with every integrity value in one proposal, the GCM ones
    (integrity used as PRF in IKE, none in ESP) in another, each with every DH group."""

    def values(key: str) -> list[Any]:
        given = [item["Value"] for item in options.get(key) or []]
        return given or list(_DEFAULTS[key])

    keyword = {v: k for k, v in ENCRYPTION.items()}
    integ_kw = {v: k for k, v in INTEGRITY.items()}
    dh_kw = {v: k for k, v in DH_GROUPS.items()}

    def build(phase: str, *, ike: bool) -> str:
        enc = values(f"{phase}EncryptionAlgorithms")
        integ = [integ_kw[i] for i in values(f"{phase}IntegrityAlgorithms")]
        dh = [dh_kw[g] for g in values(f"{phase}DHGroupNumbers") if g in dh_kw]
        cbc = [keyword[e] for e in enc if not e.endswith("-GCM-16")]
        gcm = [keyword[e] for e in enc if e.endswith("-GCM-16")]
        found = []
        if cbc:
            found.append("-".join(cbc + integ + dh))
        if gcm:
            found.append("-".join(gcm + ([f"prf{i}" for i in integ] if ike else []) + dh))
        return ",".join(found)

    versions = set(values("IkeVersions"))
    version = 2 if versions == {"ikev2"} else 1 if versions == {"ikev1"} else 0
    return topo.ConnProposals(build("Phase1", ike=True), build("Phase2", ike=False), version)


def telemetry(view: LabView, spec: topo.TunnelSpec) -> tuple[str, str, int]:
    """(Status, StatusMessage, AcceptedRouteCount) of one tunnel: UP once IPsec and BGP are both up."""
    tunnel = view.tunnels.get(spec.name)
    peer = view.peers.get(spec.gcp_inside)
    if tunnel is None or tunnel.status != ESTABLISHED[0]:
        return "DOWN", "IPSEC IS DOWN", 0
    if peer is None or not peer.established:
        return "DOWN", "IPSEC IS UP", 0
    return "UP", f"{peer.learned} BGP ROUTES", peer.learned


@dataclass(frozen=True)
class Seeded:
    """The ids moto generated for the lab's objects."""

    transit_gateway_id: str
    route_table_id: str
    vpc_id: str
    vpc_route_table_id: str
    connections: dict[str, str]  # tunnel name -> VPN connection id
    attachments: dict[str, str]  # VPN connection id -> TGW attachment id

    def as_json(self, endpoint: str) -> dict[str, Any]:
        return {
            "endpoint_url": endpoint,
            "region": topo.AWS_REGION,
            "transit_gateway_id": self.transit_gateway_id,
            "transit_gateway_route_table_id": self.route_table_id,
            "vpc_id": self.vpc_id,
            "vpc_route_table_id": self.vpc_route_table_id,
            "vpn_connections": sorted(set(self.connections.values())),
            "tunnels": {
                spec.name: {"vpn_connection_id": self.connections[spec.name], "outside_ip": spec.aws_outside}
                for spec in topo.TUNNELS
            },
            "log_group": topo.AWS_TUNNEL_LOG_GROUP,
        }


class LabAws:
    """`MotoAws` seeded with the lab's AWS side and kept live from `reader` (the AWS side's LabReader)."""

    def __init__(
        self,
        lab: labctl.Lab,
        reader: LabReader,
        *,
        charon_log: Path | None = None,
        port: int = 0,
        reconfigure: bool = True,
    ) -> None:
        self.lab = lab
        self.reader = reader
        self.moto = MotoAws(region=topo.AWS_REGION, port=port)
        self.charon_log = charon_log
        self.reconfigure = reconfigure  # False: ModifyVpnTunnelOptions edits the config file only
        self.seeded: Seeded | None = None
        self.shipper: AwsLogShipper | None = None
        self._by_ip = {spec.aws_outside: spec for spec in topo.TUNNELS}
        self._lock = threading.Lock()
        self._shown: float | None = None  # taken_at of the view the telemetry shows
        self._changed: dict[str, tuple[str, dt.datetime]] = {}  # tunnel -> (Status, LastStatusChange)
        self._modifying: set[str] = set()  # tunnels DOWN for a ModifyVpnTunnelOptions until it is applied
        self._options_read: tuple[float, int] | None = None  # (mtime, size) of the swanctl.conf shown
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aws-modify")
        self._logs: Any = None

    @property
    def swanctl_conf(self) -> Path:
        return self.lab.layout.swan_dir(topo.AWS) / "swanctl.conf"

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> LabAws:
        self.moto.start()
        self.moto._patch(VPNConnections, "modify_vpn_tunnel_options", self._modify_handler())
        self.seeded = self._seed()
        self.moto.before_request.append(self._refresh)
        if self.charon_log is not None:
            streams = {
                spec.name: TunnelStream(self.seeded.connections[spec.name], spec.aws_outside, spec.gcp_outside)
                for spec in topo.TUNNELS
            }
            self.shipper = AwsLogShipper(
                self.charon_log,
                self._logs,
                topo.AWS_TUNNEL_LOG_GROUP,
                streams,
                # Started with the lab, before its charon: then the log itself tells how the SAs came up.
                initial=self.reader.list_sas() if self.lab.layout.vici(topo.AWS).exists() else (),
            ).start()
        return self

    def stop(self) -> None:
        if self.shipper is not None:
            self.shipper.stop()
        self._worker.shutdown(wait=True, cancel_futures=True)
        self.moto.stop()
        self.reader.close()

    # -- the static shape -------------------------------------------------------------------

    def _seed(self) -> Seeded:
        m = self.moto
        ec2 = m.client()
        tgw = m.create_transit_gateway(asn=topo.AWS_ASN)
        table = m.default_route_table(tgw)
        connections: dict[str, str] = {}
        attachments: dict[str, str] = {}
        for gcp_ip in topo.GCP_OUTSIDE:
            specs = [spec for spec in topo.TUNNELS if spec.gcp_outside == gcp_ip]
            cgw = m.create_customer_gateway(gcp_ip, asn=topo.GCP_ASN)
            info = m.create_vpn_connection(
                cgw,
                transit_gateway_id=tgw,
                outside_ips=tuple(spec.aws_outside for spec in specs),
                inside_cidrs=tuple(spec.inside_net for spec in specs),
                status="DOWN",
            )
            assert info.attachment_id is not None
            ec2.associate_transit_gateway_route_table(
                TransitGatewayRouteTableId=table, TransitGatewayAttachmentId=info.attachment_id
            )
            ec2.enable_transit_gateway_route_table_propagation(
                TransitGatewayRouteTableId=table, TransitGatewayAttachmentId=info.attachment_id
            )
            attachments[info.vpn_id] = info.attachment_id
            for spec in specs:
                connections[spec.name] = info.vpn_id
                m.set_tunnel_options(
                    info.vpn_id,
                    spec.aws_outside,
                    PreSharedKey=topo.psk(spec),
                    LogOptions={
                        "CloudWatchLogOptions": {
                            "LogEnabled": True,
                            "LogGroupArn": LOG_GROUP_ARN,
                            "LogOutputFormat": "json",
                            "BgpLogEnabled": False,
                        }
                    },
                )
        # The AWS side's "VPC": its range, attached to the TGW; its route table sends GCP's ranges
        # and Cloud DNS's forwarding range (the DNS return route) to the TGW.
        vpc = ec2.create_vpc(CidrBlock=topo.AWS_VPC[0])["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=topo.AWS_VPC[0])["Subnet"]["SubnetId"]
        vpc_attachment = ec2.create_transit_gateway_vpc_attachment(TransitGatewayId=tgw, VpcId=vpc, SubnetIds=[subnet])[
            "TransitGatewayVpcAttachment"
        ]["TransitGatewayAttachmentId"]
        ec2.associate_transit_gateway_route_table(
            TransitGatewayRouteTableId=table, TransitGatewayAttachmentId=vpc_attachment
        )
        ec2.enable_transit_gateway_route_table_propagation(
            TransitGatewayRouteTableId=table, TransitGatewayAttachmentId=vpc_attachment
        )
        m.add_route(table, topo.AWS_VPC[0], attachments=[(vpc_attachment, vpc, "vpc")])
        vpc_table = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"][0]
        vpc_table_id = str(vpc_table["RouteTableId"])
        for prefix in (*topo.GCP_VPC, topo.DNS_FORWARDING_RANGE):
            ec2.create_route(RouteTableId=vpc_table_id, DestinationCidrBlock=prefix, TransitGatewayId=tgw)
        # The tunnel activity log group, one stream per tunnel as AWS names them.
        self._logs = self._logs_client()
        self._logs.create_log_group(logGroupName=topo.AWS_TUNNEL_LOG_GROUP)
        for spec in topo.TUNNELS:
            self._logs.create_log_stream(
                logGroupName=topo.AWS_TUNNEL_LOG_GROUP, logStreamName=f"{connections[spec.name]}-{spec.aws_outside}"
            )
        m.clear_requests()
        return Seeded(str(tgw), table, str(vpc), vpc_table_id, connections, attachments)

    def _logs_client(self) -> Any:
        import boto3

        from deploy.lab.emulators.aws import TEST_ACCESS_KEY, TEST_SECRET_KEY

        return boto3.session.Session().client(
            "logs",
            region_name=topo.AWS_REGION,
            endpoint_url=self.moto.endpoint_url,
            aws_access_key_id=TEST_ACCESS_KEY,
            aws_secret_access_key=TEST_SECRET_KEY,
        )

    # -- live values ------------------------------------------------------------------------

    def _refresh(self, action: str) -> None:
        if action not in _LIVE_ACTIONS or self.seeded is None:
            return
        view = self.reader.view()
        with self._lock:
            self._refresh_options()
            if view.taken_at == self._shown:
                return
            self._show(view)
            self._shown = view.taken_at

    def _show(self, view: LabView) -> None:
        assert self.seeded is not None
        backend = self.moto.backend()
        now = dt.datetime.now(dt.UTC)
        by_connection: dict[str, list[dict[str, Any]]] = {}
        for spec in topo.TUNNELS:
            status, message, accepted = telemetry(view, spec)
            if spec.name in self._modifying:
                status, message, accepted = "DOWN", "IPSEC IS DOWN", 0
            before = self._changed.get(spec.name)
            if before is None or before[0] != status:
                self._changed[spec.name] = (status, now)
            by_connection.setdefault(self.seeded.connections[spec.name], []).append(
                {
                    "OutsideIpAddress": spec.aws_outside,
                    "Status": status,
                    "StatusMessage": message,
                    "AcceptedRouteCount": accepted,
                    "LastStatusChange": self._changed[spec.name][1],
                }
            )
        for vpn_id, entries in by_connection.items():
            backend.vpn_connections[vpn_id].vgw_telemetry = entries  # a new list: answers being written keep theirs
        # BGP best paths from GCP -> the TGW's propagated routes, one entry per prefix (ECMP: every
        # attachment with a path). GCP's DNS stand-in is reported as the range it stands for.
        by_next_hop = {spec.gcp_inside: spec for spec in topo.TUNNELS}
        paths: dict[str, list[str]] = {}
        for prefix, next_hop in view.learned:
            spec = by_next_hop.get(next_hop)
            if spec is None:
                continue
            vpn_id = self.seeded.connections[spec.name]
            shown = topo.DNS_FORWARDING_RANGE if prefix == topo.DNS_FORWARDING_STANDIN else prefix
            if vpn_id not in paths.setdefault(shown, []):
                paths[shown].append(vpn_id)
        table = backend.transit_gateways_route_tables[self.seeded.route_table_id]
        routes = {
            prefix: route
            for prefix, route in table.routes.items()
            if not (route.get("type") == "propagated" and _vpn_route(route))
        }
        for prefix, vpn_ids in sorted(paths.items()):
            routes[prefix] = {
                "destinationCidrBlock": prefix,
                "prefixListId": None,
                "state": "active",
                "type": "propagated",
                "transitGatewayAttachments": [
                    {"transitGatewayAttachmentId": self.seeded.attachments[v], "resourceId": v, "resourceType": "vpn"}
                    for v in vpn_ids
                ],
            }
        table.routes = routes

    def _refresh_options(self) -> None:
        """TunnelOptions' algorithm lists from the AWS side's swanctl.conf (read again when it changes)."""
        assert self.seeded is not None
        try:
            stat = self.swanctl_conf.stat()
            stamp = (stat.st_mtime, stat.st_size)
            if stamp == self._options_read:
                return
            found = topo.conn_proposals(self.swanctl_conf.read_text())
        except OSError as exc:
            log.warning("cannot read %s: %s", self.swanctl_conf, exc)
            return
        backend = self.moto.backend()
        for vpn_id in set(self.seeded.connections.values()):
            conn = backend.vpn_connections[vpn_id]
            tunnels = []
            for tunnel in conn.options["TunnelOptions"]:
                spec = self._by_ip.get(tunnel["OutsideIpAddress"])
                proposals = found.get(spec.name) if spec else None
                tunnels.append({**tunnel, **options_from_proposals(proposals)} if proposals else tunnel)
            conn.options = {**conn.options, "TunnelOptions": tunnels}
        self._options_read = stamp

    # -- ModifyVpnTunnelOptions -------------------------------------------------------------

    def _modify_handler(self) -> Callable[[Any], Any]:
        from moto.core.responses import ActionResult

        owner = self

        def modify_vpn_tunnel_options(handler: Any) -> ActionResult:
            vpn_id = handler._get_param("VpnConnectionId")
            outside_ip = handler._get_param("VpnTunnelOutsideIpAddress")
            options = handler._get_param("TunnelOptions", {}) or {}
            conn = handler.ec2_backend.vpn_connections.get(vpn_id)
            if conn is None:
                raise InvalidVpnConnectionIdError(str(vpn_id))
            spec = owner._by_ip.get(str(outside_ip))
            if spec is None or owner.seeded is None or owner.seeded.connections.get(spec.name) != vpn_id:
                raise InvalidParameterValueError(f"{outside_ip} (VpnTunnelOutsideIpAddress)")
            renamed = {_REQUEST_KEYS.get(k, k): v for k, v in options.items()}
            for key, items in renamed.items():
                for item in items if key in _VALID and isinstance(items, list) else []:
                    value = item.get("Value") if isinstance(item, dict) else None
                    if key.endswith("DHGroupNumbers"):
                        value = int(value) if str(value).isdigit() else value
                        item["Value"] = value
                    if value not in _VALID[key]:
                        raise InvalidParameterValueError(f"{value} ({key})")
            with owner.moto._lock:
                owner.moto.modify_calls.append(ModifyCall(vpn_id, outside_ip, dict(options)))
            with owner._lock:
                tunnels = []
                for tunnel in conn.options["TunnelOptions"]:
                    tunnels.append({**tunnel, **renamed} if tunnel["OutsideIpAddress"] == outside_ip else tunnel)
                conn.options = {**conn.options, "TunnelOptions": tunnels}
                if any(k in renamed for k in _OPTION_KEYS):
                    current = next(t for t in tunnels if t["OutsideIpAddress"] == outside_ip)
                    owner._write_proposals(spec, proposals_from_options(current))
                owner._modifying.add(spec.name)
                owner._shown = None  # the next answer shows the tunnel DOWN
            log.info("ModifyVpnTunnelOptions %s %s (%s): %s", vpn_id, outside_ip, spec.name, sorted(renamed))
            owner._worker.submit(owner._apply, spec)
            return ActionResult({"VpnConnection": conn})

        return modify_vpn_tunnel_options

    def _write_proposals(self, spec: topo.TunnelSpec, proposals: topo.ConnProposals) -> None:
        path = self.swanctl_conf
        path.write_text(topo.with_conn_proposals(path.read_text(), spec.name, proposals))
        self._options_read = None

    def _apply(self, spec: topo.TunnelSpec) -> None:
        """Load the new proposals and re-establish the tunnel from the AWS side, which then uses them."""
        try:
            if self.reconfigure:
                aws = topo.AWS
                self.lab.swanctl(aws, "--load-conns", "--file", str(self.swanctl_conf))
                self.lab.swanctl(aws, "--terminate", "--ike", spec.name, "--timeout", "5", check=False)
                result = self.lab.swanctl(aws, "--initiate", "--child", spec.name, "--timeout", "15", check=False)
                if result.returncode != 0:
                    log.warning("%s did not come back with its new proposals: %s", spec.name, result.stdout[-300:])
                else:
                    log.info("%s re-established with its new proposals", spec.name)
                self._record_proposals()
        except labctl.LabError as exc:
            log.warning("applying the change to %s failed: %s", spec.name, exc)
        finally:
            self.reader.invalidate()  # a reading from before the change must not show after it
            with self._lock:
                self._modifying.discard(spec.name)
                self._shown = None

    def _record_proposals(self) -> None:
        """`labctl status` says which proposal set the AWS side runs now: small, big or mixed."""
        conns = topo.conn_proposals(self.swanctl_conf.read_text())
        sets = {"small": topo.SMALL_PROPOSALS, "big": topo.BIG_PROPOSALS}
        named = {
            next((n for n, (ike, esp) in sets.items() if (c.ike, c.esp) == (ike, esp)), "mixed") for c in conns.values()
        }
        self.lab.save_state(proposals=named.pop() if len(named) == 1 else "mixed")


def _vpn_route(route: dict[str, Any]) -> bool:
    return any(a.get("resourceType") == "vpn" for a in route.get("transitGatewayAttachments") or [])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="aws_lab", description=__doc__.split("\n\n")[0])
    p.add_argument("--lab-dir", type=Path, required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--port", type=int, required=True, help="EC2 + CloudWatch Logs (http://127.0.0.1:PORT)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    lab = labctl.Lab(args.lab_dir.resolve(), args.prefix)
    reader = LabReader(lab, max_age=MAX_AGE, side=topo.AWS)
    emulator = LabAws(lab, reader, charon_log=lab.layout.side_dir(topo.AWS) / "charon.log", port=args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    started = time.monotonic()
    emulator.start()
    assert emulator.seeded is not None
    info = lab.layout.side_dir(topo.AWS) / "api.json"
    info.write_text(json.dumps(emulator.seeded.as_json(emulator.moto.endpoint_url), indent=2) + "\n")
    log.info(
        "EC2 + CloudWatch Logs %s (region %s), seeded in %.2f s; ids in %s",
        emulator.moto.endpoint_url,
        topo.AWS_REGION,
        time.monotonic() - started,
        info,
    )
    stop.wait()
    emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
