"""The lab's AWS API emulator (EC2 + CloudWatch Logs), read by boto3 and our real AwsExporter: every
value comes from the live lab's AWS side.

One lab per module (namespace prefix from `lab_prefix("w")`), always torn down; BGP 1/3 and DPD 2 s,
so a cut shows within seconds. The emulator is the one `labctl up` starts (--aws-port).
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import botocore.session
import pytest

from deploy.lab import topology as topo
from exporters.aws import AwsExporter
from tests.conftest import lab_prefix
from tests.lab_fixture import Lab, poll_until, running_lab
from watchdog.config import AwsExporterConfig
from watchdog.exposition import render_snapshot
from watchdog.model import Snapshot

pytestmark = [pytest.mark.netns, pytest.mark.slow]

PREFIX = lab_prefix("w")
KEYS = {"AWS_ACCESS_KEY_ID": "AKIATESTWATCHDOG0001", "AWS_SECRET_ACCESS_KEY": "test-secret-key-not-real"}


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with pytest.MonkeyPatch.context() as env:
        for key, value in KEYS.items():
            env.setenv(key, value)
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        with running_lab("w") as lab:
            assert f"AWS API {lab.url('aws')}" in lab.up_output
            yield lab


@pytest.fixture(scope="module")
def aws_api(lab: Lab) -> dict[str, Any]:
    """What `labctl up` wrote about the AWS emulator: its endpoint, VPN connections and tunnels."""
    written: dict[str, Any] = json.loads((lab.dir / "aws" / "api.json").read_text())
    assert written["endpoint_url"] == lab.url("aws")
    return written


@pytest.fixture(scope="module")
def ec2(lab: Lab) -> Any:
    return boto3.session.Session().client("ec2", region_name=topo.AWS_REGION, endpoint_url=lab.url("aws"))


@pytest.fixture(scope="module")
def exporter(lab: Lab) -> Iterator[AwsExporter]:
    config = AwsExporterConfig(
        name="aws-lab",
        type="aws",
        region=topo.AWS_REGION,
        endpoint_url=lab.url("aws"),
        tunnel_logs={"log_group": topo.AWS_TUNNEL_LOG_GROUP},
    )
    built = AwsExporter(config, timeout=10.0)
    yield built
    built.close()


def unknown_members(value: Any, shape: Any, path: str = "") -> list[str]:
    """Keys of a parsed response that botocore's service model does not define."""
    if shape.type_name == "structure" and isinstance(value, dict):
        wrong = []
        for key, item in value.items():
            if key == "ResponseMetadata":
                continue
            if key not in shape.members:
                wrong.append(f"{path}.{key}")
            else:
                wrong += unknown_members(item, shape.members[key], f"{path}.{key}")
        return wrong
    if shape.type_name == "list" and isinstance(value, list):
        return [w for i, item in enumerate(value) for w in unknown_members(item, shape.member, f"{path}[{i}]")]
    return []


def telemetry(ec2: Any) -> dict[str, dict[str, Any]]:
    return {
        t["OutsideIpAddress"]: t
        for conn in ec2.describe_vpn_connections()["VpnConnections"]
        for t in conn.get("VgwTelemetry") or []
    }


def swan_conn(lab: Lab, name: str) -> topo.ConnProposals:
    return topo.conn_proposals((lab.dir / "aws" / "strongswan" / "swanctl.conf").read_text())[name]


def aws_prefixes_received(lab: Lab) -> dict[str, int]:
    out = subprocess.run(
        ["vtysh", "--vty_socket", str(lab.dir / "aws" / "frr"), "-c", "show bgp summary json"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    peers = json.loads(out.stdout)["ipv4Unicast"]["peers"]
    return {address: int(peer["pfxRcd"]) for address, peer in peers.items()}


def aws_sa(lab: Lab, name: str) -> str:
    """The AWS side's `swanctl --list-sas` lines of one connection."""
    out = subprocess.run(
        ["swanctl", "--list-sas", "--ike", name, "--uri", f"unix://{lab.dir / 'aws' / 'charon.vici'}"],
        capture_output=True,
        text=True,
        timeout=10,
        env={**os.environ, "STRONGSWAN_CONF": str(lab.dir / "aws" / "strongswan" / "strongswan.conf")},
    )
    return out.stdout


def test_healthy_lab_seen_through_the_aws_api(
    lab: Lab, aws_api: dict[str, Any], ec2: Any, exporter: AwsExporter
) -> None:
    described = ec2.describe_vpn_connections()
    model = botocore.session.get_session().get_service_model("ec2")
    assert unknown_members(described, model.operation_model("DescribeVpnConnections").output_shape) == []
    conns = sorted(described["VpnConnections"], key=lambda c: c["Options"]["TunnelOptions"][0]["OutsideIpAddress"])
    gateways = {
        g["CustomerGatewayId"]: (g["IpAddress"], g["BgpAsn"])
        for g in ec2.describe_customer_gateways()["CustomerGateways"]
    }
    assert [gateways[c["CustomerGatewayId"]] for c in conns] == [(ip, str(topo.GCP_ASN)) for ip in topo.GCP_OUTSIDE]
    options = [o for c in conns for o in c["Options"]["TunnelOptions"]]
    assert [(o["OutsideIpAddress"], o["TunnelInsideCidr"]) for o in options] == [
        (spec.aws_outside, spec.inside_net) for spec in topo.TUNNELS
    ]
    # The lab's small proposals, one transform per phase, as TunnelOptions lists.
    assert {
        k: [v["Value"] for v in options[0][k]]
        for k in ("Phase1EncryptionAlgorithms", "Phase1IntegrityAlgorithms", "Phase1DHGroupNumbers", "IkeVersions")
    } == {
        "Phase1EncryptionAlgorithms": ["AES256"],
        "Phase1IntegrityAlgorithms": ["SHA2-256"],
        "Phase1DHGroupNumbers": [14],
        "IkeVersions": ["ikev2"],
    }
    received = aws_prefixes_received(lab)  # what the AWS side's FRR took from each GCP peer
    assert set(received.values()) == {len(topo.GCP.routed)}  # GCP's VPC ranges and its DNS forwarders' range
    tele = telemetry(ec2)
    assert {ip: (t["Status"], t["StatusMessage"], t["AcceptedRouteCount"]) for ip, t in tele.items()} == {
        spec.aws_outside: ("UP", f"{received[spec.gcp_inside]} BGP ROUTES", received[spec.gcp_inside])
        for spec in topo.TUNNELS
    }

    snapshot = exporter.poll()
    assert sorted((t.name, t.up, t.peer_ip, t.accepted_routes) for t in snapshot.tunnels) == [
        (spec.aws_outside, True, spec.gcp_outside, received[spec.gcp_inside]) for spec in topo.TUNNELS
    ]
    assert sorted((s.peer, s.up, s.local_ip, s.peer_ip) for s in snapshot.bgp_sessions) == [
        (spec.aws_outside, True, spec.aws_inside, spec.gcp_inside) for spec in topo.TUNNELS
    ]
    paths = {prefix: {r.connection for r in snapshot.routes if r.prefix == prefix} for prefix in topo.GCP_VPC}
    assert paths == {prefix: set(aws_api["vpn_connections"]) for prefix in topo.GCP_VPC}


def test_an_action_the_emulator_lacks_answers_invalid_action_at_once(
    lab: Lab, aws_api: dict[str, Any], ec2: Any
) -> None:
    vpn = aws_api["tunnels"]["tun1"]
    start = time.monotonic()
    with pytest.raises(botocore.exceptions.ClientError) as info:
        ec2.get_vpn_tunnel_replacement_status(VpnConnectionId=vpn["vpn_connection_id"], VpnTunnelOutsideIpAddress="x")
    assert time.monotonic() - start < 5
    error = info.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("InvalidAction", 400)
    assert "400 not implemented: ec2 GetVpnTunnelReplacementStatus" in (lab.dir / "aws" / "api.log").read_text()


def rekeys(snapshot: Snapshot) -> dict[str, int]:
    assert snapshot.logs is not None and snapshot.logs.error is None, snapshot.logs
    return {t: n for t, e, n in snapshot.logs.events if e == "rekey"}


def test_a_rekey_counts_once_for_exactly_that_tunnel(lab: Lab, exporter: AwsExporter) -> None:
    time.sleep(1.0)  # charon's log has whole seconds: past the second the reader started in
    before = rekeys(exporter.poll())
    lags = []
    for number, side in ((2, "gcp"), (4, "aws")):  # AWS responds to one rekey and initiates the other
        spec = topo.tunnel(number)
        expected = {**before, spec.aws_outside: before.get(spec.aws_outside, 0) + 1}
        assert lab.labctl("rekey", str(number), "--from", side).returncode == 0
        asked = time.monotonic()
        while (now := rekeys(exporter.poll())) == before and time.monotonic() < asked + 30:
            time.sleep(0.2)
        lags.append(time.monotonic() - asked)
        assert now == expected
        before = now
    time.sleep(2.0)  # nothing else arrives late
    assert rekeys(exporter.poll()) == before
    print(f"\nrekey -> tunnel_log_events_total{{event=rekey}}: median {statistics.median(lags):.2f} s ({lags})")


def test_a_cut_shows_within_a_poll_and_its_phases_go_down_in_the_logs(
    lab: Lab, aws_api: dict[str, Any], ec2: Any, exporter: AwsExporter
) -> None:
    spec = topo.tunnel(2)
    exporter.poll()
    assert lab.labctl("cut", "2").returncode == 0
    try:
        snapshot, took = poll_until(
            exporter, lambda s: not next(t for t in s.tunnels if t.name == spec.aws_outside).up, 15
        )
        print(f"\ncut 2 -> tunnel DOWN in DescribeVpnConnections after {took:.2f} s")
        assert sorted(t.name for t in snapshot.tunnels if t.up) == [
            s.aws_outside for s in topo.TUNNELS if s is not spec
        ]
        assert telemetry(ec2)[spec.aws_outside]["StatusMessage"] in ("IPSEC IS DOWN", "IPSEC IS UP")

        def phases_down(s: Snapshot) -> bool:
            assert s.logs is not None
            return any(
                state.tunnel == spec.aws_outside and (state.phase1, state.phase2) == ("Down", "Down")
                for state in s.logs.ike_states
            )

        snapshot, took = poll_until(exporter, phases_down, 20)
        print(f"cut 2 -> phase 1/2 Down in the tunnel log after {took:.2f} s")
        assert snapshot.logs is not None
        assert [(t, e) for t, e, _ in snapshot.logs.events if e == "dpd_timeout"] == [(spec.aws_outside, "dpd_timeout")]
        text = "".join(line for lines in render_snapshot("aws-lab", "aws", snapshot, {}).values() for line in lines)
        vpn = aws_api["tunnels"][spec.name]["vpn_connection_id"]
        for phase in ("1", "2"):
            assert (
                f'vpn_watchdog_tunnel_ike_state{{cloud="aws",connection="{vpn}",exporter="aws-lab",'
                f'phase="{phase}",state="Down",tunnel="{spec.aws_outside}"}} 1.0' in text
            )
    finally:
        assert lab.labctl("restore", "2").returncode == 0
    _, took = poll_until(exporter, lambda s: all(t.up for t in s.tunnels), 60)
    print(f"restore 2 -> all UP again after {took:.2f} s")


def test_modify_vpn_tunnel_options_changes_the_tunnels_strongswan_proposals(
    lab: Lab, aws_api: dict[str, Any], ec2: Any, exporter: AwsExporter
) -> None:
    spec = topo.tunnel(1)
    vpn = aws_api["tunnels"][spec.name]["vpn_connection_id"]

    def modify(encryption: str) -> None:
        ec2.modify_vpn_tunnel_options(
            VpnConnectionId=vpn,
            VpnTunnelOutsideIpAddress=spec.aws_outside,
            TunnelOptions={"Phase1EncryptionAlgorithms": [{"Value": encryption}]},
        )

    def tun1_up(s: Snapshot) -> bool:
        return next(t for t in s.tunnels if t.name == spec.aws_outside).up

    exporter.poll()
    with pytest.raises(botocore.exceptions.ClientError) as info:
        modify("AES512")
    assert info.value.response["Error"]["Code"] == "InvalidParameterValue"

    # AES128 is not in the GCP side's (narrowed) proposals: the re-established tunnel cannot come up.
    modify("AES128")
    assert telemetry(ec2)[spec.aws_outside]["Status"] == "DOWN"  # down for the change from the call on
    assert swan_conn(lab, spec.name) == topo.ConnProposals("aes128-sha256-modp2048", topo.SMALL_PROPOSALS[1], 2)
    shown = next(c for c in ec2.describe_vpn_connections(VpnConnectionIds=[vpn])["VpnConnections"])
    option = next(o for o in shown["Options"]["TunnelOptions"] if o["OutsideIpAddress"] == spec.aws_outside)
    assert option["Phase1EncryptionAlgorithms"] == [{"Value": "AES128"}]

    def refused(s: Snapshot) -> bool:
        assert s.logs is not None
        return (spec.aws_outside, "no_proposal_chosen") in {(t, e) for t, e, _ in s.logs.events}

    snapshot, took = poll_until(exporter, refused, 30)
    print(f"\nmodify to AES128 -> no_proposal_chosen in the tunnel log after {took:.2f} s")
    assert not tun1_up(snapshot)

    modify("AES256")
    snapshot, took = poll_until(exporter, tun1_up, 30)
    print(f"modify back to AES256 -> UP after {took:.2f} s")
    assert swan_conn(lab, spec.name) == topo.ConnProposals(*topo.SMALL_PROPOSALS, 2)
    assert "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048" in aws_sa(lab, spec.name)
    assert json.loads((lab.dir / "state.json").read_text())["proposals"] == "small"


def ip_fragments_on_rekeys(lab: Lab) -> int:
    """IP fragments on the aws underlay (the root-namespace tap) while every tunnel rekeys from AWS."""
    capture = lab.dir / "fragments.pcap"
    sniffer = subprocess.Popen(
        ["tcpdump", "-ni", f"{PREFIX}aws-tap", "-U", "-w", str(capture), "ip[6:2] & 0x3fff != 0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)  # tcpdump attached
        for spec in topo.TUNNELS:
            # AWS's CHILD rekey request carries its ESP proposals and a KE of the first DH group
            assert lab.labctl("rekey", str(spec.number), "--from", "aws").returncode == 0
        time.sleep(0.5)
    finally:
        sniffer.terminate()
        sniffer.wait(5)
    read = subprocess.run(["tcpdump", "-nr", str(capture)], capture_output=True, text=True, timeout=10)
    return len(read.stdout.splitlines())


def test_fix_ipsec_apply_ends_the_fragmentation_that_big_proposals_caused(lab: Lab, tmp_path: Path) -> None:
    from watchdog.audit.command import audit_main

    config = tmp_path / "watchdog.yaml"
    config.write_text(
        f"""exporters:
  - name: aws-lab
    type: aws
    region: {topo.AWS_REGION}
    endpoint_url: {lab.url("aws")}
  - name: gcp-lab
    type: gcp
    project: {topo.GCP_PROJECT}
    region: {topo.GCP_REGION}
    endpoint: {lab.url("gcp")}
    monitoring: false
"""
    )

    def ipsec_findings() -> list[tuple[str, str]]:
        out = io.StringIO()
        audit_main(str(config), fmt="json", fix_ipsec=False, apply=False, out=out)
        found = json.loads(out.getvalue())["findings"]
        return sorted((f["rule"], f["object"]) for f in found if f["rule"].startswith("ipsec."))

    assert ipsec_findings() == []  # the healthy lab's narrowed proposals audit clean
    assert lab.labctl("mtu", "1000").returncode == 0
    try:
        assert lab.labctl("proposals", "big").returncode == 0
        assert ip_fragments_on_rekeys(lab) > 0
        assert {rule for rule, _ in ipsec_findings()} >= {"ipsec.single-transform"}
        started = time.monotonic()
        out = io.StringIO()
        code = audit_main(str(config), fmt="text", fix_ipsec=True, apply=True, out=out, poll_interval=0.5, settle=5)
        assert code == 0, out.getvalue()
        print(f"\n--fix-ipsec --apply on 4 tunnels: {time.monotonic() - started:.1f} s (poll interval 0.5 s)")
        assert ipsec_findings() == []
        assert ip_fragments_on_rekeys(lab) == 0
        assert json.loads((lab.dir / "state.json").read_text())["proposals"] == "small"
    finally:
        lab.labctl("mtu", "1500")
        lab.labctl("proposals", "small")
