"""The AWS lab emulator's parts that need no lab: proposals <-> TunnelOptions, charon's log rendered
as tunnel activity records that our reader classifies, and AWS's error for an action moto lacks."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import boto3
import botocore.exceptions
import pytest

from deploy.lab import labctl
from deploy.lab.emulators.aws import TEST_ACCESS_KEY, TEST_SECRET_KEY, MotoAws
from deploy.lab.emulators.aws_lab import options_from_proposals, proposals_from_options
from deploy.lab.emulators.logship import AwsLogShipper, AwsTunnelPhases, TunnelStream
from exporters.log_patterns import AWS_TUNNEL, classify
from watchdog.audit.ciphers import AWS_DEFAULTS

topo = labctl.topo  # the topology module the emulators use (labctl imports it as a sibling)


def values(options: dict[str, list[dict[str, object]]]) -> dict[str, list[object]]:
    return {key: [item["Value"] for item in items] for key, items in options.items()}


def test_the_small_proposals_are_one_gcp_supported_transform_per_phase_and_round_trip() -> None:
    small = topo.ConnProposals(*topo.SMALL_PROPOSALS, 2)
    options = options_from_proposals(small)
    assert values(options) == {
        "Phase1EncryptionAlgorithms": ["AES256"],
        "Phase1IntegrityAlgorithms": ["SHA2-256"],
        "Phase1DHGroupNumbers": [14],
        "Phase2EncryptionAlgorithms": ["AES256"],
        "Phase2IntegrityAlgorithms": ["SHA2-256"],
        "Phase2DHGroupNumbers": [14],
        "IkeVersions": ["ikev2"],
    }
    assert proposals_from_options(options) == small


def test_big_proposals_show_what_aws_can_say_of_them() -> None:
    big = values(options_from_proposals(topo.ConnProposals(*topo.BIG_PROPOSALS, 2)))
    # aes192 and curve25519 have no AWS value; an AEAD IKE proposal's PRFs are AWS's integrity values.
    assert big["Phase1EncryptionAlgorithms"] == ["AES256-GCM-16", "AES128-GCM-16", "AES256", "AES128"]
    assert big["Phase1IntegrityAlgorithms"] == ["SHA2-512", "SHA2-384", "SHA2-256", "SHA1"]
    assert big["Phase1DHGroupNumbers"] == [18, 17, 16, 15, 21, 20, 19, 14]
    assert big["Phase2EncryptionAlgorithms"] == ["AES256-GCM-16", "AES128-GCM-16", "AES256", "AES128"]


def test_options_become_cbc_and_gcm_proposals_and_empty_lists_mean_aws_defaults() -> None:
    mixed = proposals_from_options(
        {
            "Phase1EncryptionAlgorithms": [{"Value": "AES128"}, {"Value": "AES256-GCM-16"}],
            "Phase1IntegrityAlgorithms": [{"Value": "SHA2-384"}],
            "Phase1DHGroupNumbers": [{"Value": 20}],
            "Phase2EncryptionAlgorithms": [{"Value": "AES128-GCM-16"}],
            "Phase2IntegrityAlgorithms": [{"Value": "SHA1"}],
            "Phase2DHGroupNumbers": [{"Value": 19}],
            "IkeVersions": [{"Value": "ikev1"}, {"Value": "ikev2"}],
        }
    )
    assert mixed == topo.ConnProposals("aes128-sha384-ecp384,aes256gcm16-prfsha384-ecp384", "aes128gcm16-ecp256", 0)
    defaults = values(options_from_proposals(proposals_from_options({})))
    assert defaults["Phase1DHGroupNumbers"] == list(AWS_DEFAULTS["phase1_dh"])
    assert sorted(defaults["Phase2EncryptionAlgorithms"]) == sorted(AWS_DEFAULTS["phase2_encryption"])


def test_a_connections_proposals_are_replaced_in_place() -> None:
    text = topo.swanctl_conf(topo.AWS, fast=True, big_proposals=True)
    narrow = topo.ConnProposals("aes256-sha256-modp2048", "aes256-sha256-modp2048", 2)
    changed = topo.conn_proposals(topo.with_conn_proposals(text, "tun3", narrow))
    assert changed["tun3"] == narrow
    assert changed["tun2"] == topo.ConnProposals(*topo.BIG_PROPOSALS, 2)
    with pytest.raises(ValueError, match="no connection 'tun9'"):
        topo.with_conn_proposals(text, "tun9", narrow)


# The AWS side's charon log (responder) as the lab wrote it: a CHILD rekey the GCP side asked for,
# then `cut 2` (DPD gives up), then the GCP side's new IKE SA after `restore 2`.
CHARON = """\
15:57:48 05[ENC] <tun2|2> parsed CREATE_CHILD_SA request 2 [ N(REKEY_SA) SA No KE TSi TSr ]
15:57:48 05[IKE] <tun2|2> inbound CHILD_SA tun2{5} established with SPIs 6843ed05_i 97a01b16_o and TS x === y
15:57:48 05[ENC] <tun2|2> generating CREATE_CHILD_SA response 2 [ SA No KE TSi TSr ]
15:57:48 02[ENC] <tun2|2> parsed INFORMATIONAL request 3 [ D ]
15:57:48 02[IKE] <tun2|2> received DELETE for ESP CHILD_SA with SPI b3ccff43
15:57:48 02[IKE] <tun2|2> closing CHILD_SA tun2{1} with SPIs e6222e26_i (1296 bytes) b3ccff43_o (1036 bytes)
15:57:48 02[ENC] <tun2|2> generating INFORMATIONAL response 3 [ D ]
15:58:20 15[IKE] <tun2|2> sending DPD request
15:58:20 15[ENC] <tun2|2> generating INFORMATIONAL request 0 [ ]
15:58:21 04[IKE] <tun2|2> retransmit 1 of request with message ID 0
15:58:23 04[IKE] <tun2|2> giving up after 2 retransmits
15:58:27 16[ENC] <6> parsed IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) N(FRAG_SUP) ]
15:58:27 15[IKE] <tun2|6> IKE_SA tun2[6] established between 198.51.100.2[198.51.100.2]...203.0.113.1[203.0.113.1]
15:58:27 15[IKE] <tun2|6> CHILD_SA tun2{7} established with SPIs 9e6744f4_i af4d3611_o and TS x === y
15:58:27 15[ENC] <tun2|6> generating IKE_AUTH response 1 [ IDr AUTH SA TSi TSr ]
"""
# tun2's SAs as VICI listed them when shipping started.
LISTED = [
    {
        "tun2": {
            "uniqueid": "2",
            "state": "ESTABLISHED",
            "child-sas": {"tun2-1": {"uniqueid": "1", "state": "INSTALLED"}},
        }
    }
]


class RecordingLogs:
    """Stands in for the boto3 CloudWatch Logs client: keeps what PutLogEvents was given."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, object]]] = []

    def put_log_events(self, *, logGroupName: str, logStreamName: str, logEvents: list[dict[str, object]]) -> None:
        for event in logEvents:
            self.events.append((logGroupName, logStreamName, json.loads(str(event["message"]))))


def test_charons_log_becomes_aws_tunnel_activity_records_with_their_phases(tmp_path: Path) -> None:
    log = tmp_path / "charon.log"
    log.write_text("")
    logs = RecordingLogs()
    stream = TunnelStream("vpn-0a1b2c3d", "198.51.100.2", "203.0.113.1")
    shipper = AwsLogShipper(log, logs, "/vpn/lab-tunnels", {"tun2": stream}, initial=LISTED)
    log.write_text(CHARON)
    assert shipper.ship_once() == 8
    assert {(group, name) for group, name, _ in logs.events} == {("/vpn/lab-tunnels", "vpn-0a1b2c3d-198.51.100.2")}
    shipped = [(r["details"], r["ike_phase1_state"], r["ike_phase2_state"]) for _, _, r in logs.events]
    assert shipped == [
        ("AWS tunnel processed request (id=2) for CREATE_CHILD_SA", "Established", "Rekeying"),
        ("AWS tunnel is sending response (id=2) for CREATE_CHILD_SA", "Established", "Established"),
        ("AWS tunnel processed request (id=3) for INFORMATIONAL", "Established", "Established"),
        ("AWS tunnel received DELETE for Phase 2 SA with SPI: b3ccff43", "Established", "Established"),
        ("AWS tunnel is sending response (id=3) for INFORMATIONAL", "Established", "Established"),
        ("AWS tunnel is sending request (id=0) for INFORMATIONAL", "Established", "Established"),
        ("AWS tunnel DPD timed out after 2 retransmits", "Down", "Down"),
        ("AWS tunnel is sending response (id=1) for IKE_AUTH", "Established", "Established"),
    ]
    # Every record is one our reader classifies; the rekey counts once, the cut as a DPD timeout.
    events = [match.event for d, _, _ in shipped if (match := classify(AWS_TUNNEL, d)) is not None]
    assert len(events) == len(shipped)
    assert events.count("rekey") == 1 and events.count("dpd_timeout") == 1
    first = logs.events[0][2]
    assert set(first) == {
        "event_timestamp",
        "timestamp",
        "dpd_enabled",
        "nat_t_detected",
        "ike_phase1_state",
        "ike_phase2_state",
        "details",
    }
    assert shipper.ship_once() == 0  # each line once


def test_a_tunnel_that_never_came_up_times_out_as_an_un_established_phase_1() -> None:
    phases = AwsTunnelPhases(cgw="203.0.113.2")
    assert phases.line("9", "initiating IKE_SA tun3[9] to 203.0.113.2") is None
    assert phases.states() == ("Negotiating", "Down")
    details = phases.line("9", "giving up after 2 retransmits")
    assert details == "AWS tunnel Timeout: deleting un-established Phase 1 IKE_SA with cgw: 203.0.113.2"
    assert phases.states() == ("Down", "Down")
    match = classify(AWS_TUNNEL, details)
    assert match is not None and match.event == "negotiation_timeout"
    no_proposal = phases.line("10", "received NO_PROPOSAL_CHOSEN notify error")
    match = classify(AWS_TUNNEL, no_proposal or "")
    assert match is not None and match.event == "no_proposal_chosen"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoAws]:
    with MotoAws(region=topo.AWS_REGION) as server:
        yield server


def test_an_action_moto_lacks_answers_invalid_action_and_is_logged(
    moto: MotoAws, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="deploy.lab.emulators.aws")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        moto.client().get_vpn_tunnel_replacement_status(VpnConnectionId="vpn-1", VpnTunnelOutsideIpAddress="x")
    response = info.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["Error"] == {
        "Code": "InvalidAction",
        "Message": "The action GetVpnTunnelReplacementStatus is not valid for this web service.",
    }
    assert "400 not implemented: ec2 GetVpnTunnelReplacementStatus" in caplog.text
    logs = boto3.session.Session().client(
        "logs",
        region_name=topo.AWS_REGION,
        endpoint_url=moto.endpoint_url,
        aws_access_key_id=TEST_ACCESS_KEY,
        aws_secret_access_key=TEST_SECRET_KEY,
    )
    assert logs.describe_log_groups()["logGroups"] == []  # what moto implements still answers


def test_a_new_fake_starts_empty_even_after_another_in_the_same_process() -> None:
    """moto keeps its backends per process: the next test module's fake must not see this one's VPNs."""
    with MotoAws() as first:
        tgw = first.create_transit_gateway()
        first.create_vpn_connection(first.create_customer_gateway("192.0.2.10"), transit_gateway_id=tgw)
        assert len(first.client().describe_vpn_connections()["VpnConnections"]) == 1
    with MotoAws() as second:
        assert second.client().describe_vpn_connections()["VpnConnections"] == []
        assert second.client().describe_transit_gateways()["TransitGateways"] == []
