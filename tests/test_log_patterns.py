"""The classifier tables against every example message the clouds' documentation gives.

The corpus is reconstructed from the pages each table row cites: AWS's tunnel activity and BGP log
contents (monitoring-logs.html, its `details` messages verbatim with their placeholders filled in),
Google's Cloud VPN troubleshooting page (its search strings, embedded in the strongSwan lines Cloud
VPN logs) and Cloud Router's viewing-logs page (`[Event Type]: [Log Text]`). Where Google quotes only
a fragment, the full line is strongSwan's own wording of that step.
"""

from __future__ import annotations

import pytest

from exporters.log_patterns import AWS_BGP, AWS_TUNNEL, GCP_ROUTER, GCP_VPN, Pattern, classify, shape
from watchdog.model import REKEY_FAILURE_EVENTS, TUNNEL_LOG_EVENTS

AWS_TUNNEL_EXAMPLES = [
    ("AWS tunnel DPD timed out after 3 retransmits", "dpd_timeout"),
    ("AWS tunnel received DELETE for IKE_SA from CGW", "other"),
    ("AWS tunnel received DELETE for Phase 2 SA with SPI: c1f2a3b4", "other"),
    ("AWS tunnel detected a (CHILD_REKEY) collision as CHILD_DELETE", "rekey_collision"),
    ("AWS tunnel (CHILD_SA) redundant SA is being deleted due to detected collision", "rekey_collision"),
    ("AWS tunnel Phase 2 was unable to establish while keeping Phase 1", "negotiation_failed"),
    ("AWS: Traffic Selector: TS_UNACCEPTABLE: received from responder", "negotiation_failed"),
    ("AWS tunnel is sending AUTHENTICATION_FAILED as the response", "auth_failed"),
    ("AWS tunnel detected a pre-shared key mismatch with cgw: 198.51.100.1", "auth_failed"),
    ("AWS tunnel Timeout: deleting un-established Phase 1 IKE_SA with cgw: 198.51.100.1", "negotiation_timeout"),
    ('No Proposal Match Found. Notifying with "No proposal chosen"', "no_proposal_chosen"),
    ("No Proposal Match Found by AWS", "no_proposal_chosen"),
    ("AWS tunnel processed request (id=12) for CREATE_CHILD_SA", "other"),
    ("AWS tunnel is sending response (id=12) for CREATE_CHILD_SA", "rekey"),
    ("AWS tunnel is sending request (id=13) for CREATE_CHILD_SA", "other"),
    ("AWS tunnel processed response (id=13) for CREATE_CHILD_SA", "rekey"),
    # IKEv1
    ("Peer is not responsive - Declaring peer dead", "dpd_timeout"),
    ("AWS tunnel payload decryption was unsuccessful due to invalid Pre-shared Key", "auth_failed"),
]

AWS_BGP_EXAMPLES = [
    (
        "AWS-side peer BGP session state has changed from OpenConfirm to Established with neighbor 169.254.50.85",
        "bgp_up",
        "",
    ),
    (
        "AWS-side peer BGP session state has changed from Established to Idle with neighbor 169.254.50.85",
        "bgp_down",
        "",
    ),
    ("AWS-side peer BGP session state has changed from Active to Connect with neighbor 169.254.50.85", "other", ""),
    (
        "AWS-side peer is reporting a maximum prefix limit warning - received 90 prefixes from neighbor"
        " 169.254.50.85, limit is 100",
        "other",
        "",
    ),
    (
        "AWS-side peer detected the maximum prefix limit was exceeded - received 101 prefixes from neighbor"
        " 169.254.50.85, limit is 100",
        "other",
        "MAXIMUM_PREFIXES",
    ),
    (
        "AWS-side peer sent a notification 6/1 (Cease/Maximum Number of Prefixes Reached) to neighbor 169.254.50.85",
        "other",
        "MAXIMUM_PREFIXES",
    ),
    (
        "AWS-side peer received a notification 6/2 (Cease/Administrative Shutdown) from neighbor 169.254.50.85",
        "other",
        "ADMINISTRATIVE_SHUTDOWN",
    ),
    ("AWS-side peer sent a notification 6/3 (Cease/Peer Unconfigured)", "other", "PEER_UNCONFIGURED"),
    ("AWS-side peer received a notification 6/4 (Cease/Administrative Reset)", "other", "ADMINISTRATIVE_RESET"),
    ("AWS-side peer sent a notification 6/5 (Cease/Connection Rejected)", "other", "CONNECTION_REJECTED"),
    ("AWS-side peer received a notification 6/6 (Cease/Other Configuration Change)", "other", "CONFIGURATION_CHANGE"),
    ("AWS-side peer sent a notification 6/7 (Cease/Connection Collision Resolution)", "other", "CONNECTION_COLLISION"),
    ("AWS-side peer sent a Hold Timer Expired notification to neighbor 169.254.50.85", "other", "HOLD_TIMER_EXPIRED"),
    (
        "AWS-side peer detected a bad OPEN message from neighbor 169.254.50.85 - remote AS is 65000, expected 65001",
        "other",
        "BAD_OPEN",
    ),
    (
        "AWS-side peer received an OPEN message from neighbor 169.254.50.85 - version 4, AS 65000, holdtime 30,"
        " router-id 169.254.50.85",
        "other",
        "",
    ),
    ("AWS-side peer is initiating a connection (via Connect) to neighbor 169.254.50.85", "other", ""),
    ("AWS-side peer sent an End-of-RIB message to neighbor 169.254.50.85", "other", ""),
    (
        "AWS-side peer received update with attributes from neighbor 169.254.50.85 - AS path: 65000",
        "other",
        "",
    ),
    ("DENIED due to: as-path contains our own AS", "other", ""),
    ("DENIED due to: non-connected next-hop", "other", ""),
]

GCP_VPN_EXAMPLES = [
    ("initiating IKE_SA vpn_198.51.100.1[1] to 198.51.100.1", "other"),
    ("generating IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) N(FRAG_SUP) ]", "other"),
    ("establishing IKE_SA failed, peer not responding", "negotiation_timeout"),
    ("generating IKE_AUTH request 1 [ IDi AUTH SA TSi TSr N(EAP_ONLY) ]", "other"),
    ("parsed IKE_AUTH response 1 [ IDr AUTH SA TSi TSr ]", "other"),
    ("authentication of '198.51.100.1' with pre-shared key successful", "other"),
    (
        "IKE_SA vpn_198.51.100.1[1] established between 203.0.113.10[203.0.113.10]...198.51.100.1[198.51.100.1]",
        "other",
    ),
    (
        "CHILD_SA vpn_198.51.100.1{1} established with SPIs c1a2b3c4_i d4e5f6a7_o and TS 0.0.0.0/0 === 0.0.0.0/0",
        "other",
    ),
    ("detected rekeying of CHILD_SA vpn_198.51.100.1{1}", "rekey"),
    ("received DELETE for ESP CHILD_SA with SPI c1a2b3c4", "other"),
    ("sending DELETE for ESP CHILD_SA with SPI d4e5f6a7", "other"),
    ("closing CHILD_SA vpn_198.51.100.1{1} with SPIs c1a2b3c4_i (0 bytes) d4e5f6a7_o (0 bytes)", "other"),
    ("CHILD_SA closed", "other"),
    ("Remote traffic selectors narrowed", "negotiation_failed"),
    ("Local traffic selectors narrowed", "negotiation_failed"),
    ("Received SA_DELETE", "other"),
    ("Peer proposal: DOES NOT HAVE DIFFIE_HELLMAN_GROUP", "no_proposal_chosen"),
    ("received NO_PROPOSAL_CHOSEN notify error", "no_proposal_chosen"),
    ("no-proposal-chosen", "no_proposal_chosen"),
    # strongSwan's own wording where Google quotes a fragment
    ("retransmit 2 of request with message ID 5", "retransmit"),
    ("giving up after 5 retransmits", "negotiation_timeout"),
    ("no acceptable proposal found", "no_proposal_chosen"),
    ("generating CREATE_CHILD_SA request 7 [ N(REKEY_SA) SA No KE TSi TSr ]", "rekey"),
    ("parsed CREATE_CHILD_SA request 4 [ N(REKEY_SA) SA No KE TSi TSr ]", "rekey"),
    ("generating CREATE_CHILD_SA request 3 [ SA No KE ]", "other"),
    ("parsed INFORMATIONAL response 8 [ ]", "other"),
    ("rekeying IKE_SA failed, peer not responding", "negotiation_timeout"),
    ("IKE_SA vpn_198.51.100.1[2] rekeyed between 203.0.113.10[203.0.113.10]...198.51.100.1[198.51.100.1]", "rekey"),
    ("CHILD_SA rekey collision won, deleting old child vpn_198.51.100.1{3}", "rekey_collision"),
    ("received AUTHENTICATION_FAILED notify error", "auth_failed"),
    ("authentication of '198.51.100.1' with pre-shared key failed", "auth_failed"),
    ("dropped IP fragment of IKE message from 198.51.100.1", "fragment_dropped"),
]

GCP_ROUTER_EXAMPLES = [
    ("Router Event: Router task activated", "other", "", ""),
    ("Router Event: Router task de-activated", "other", "", ""),
    ("BGP Event: Successfully added configuration for peers: aws-peer-0, aws-peer-1", "other", "", ""),
    ("BGP Event: BGP peering with aws-peer-0 came up 10 seconds ago", "bgp_up", "aws-peer-0", ""),
    (
        "BGP Event: BGP peering with aws-peer-0 went down with the reason HOLD_TIMER_EXPIRED",
        "bgp_down",
        "aws-peer-0",
        "HOLD_TIMER_EXPIRED",
    ),
    (
        "BGP Event: BGP peering with aws-peer-1 went down with the reason LINK_DOWN",
        "bgp_down",
        "aws-peer-1",
        "LINK_DOWN",
    ),
    ("BGP Event: BGP Router ID set to 169.254.10.1", "other", "", ""),
    ("Route Event: Advertising prefix to peers: 10.10.0.0/16", "other", "", ""),
    ("Route Event: Withdrawing prefix from peers: 10.10.0.0/16", "other", "", ""),
    ("Route Event: Prefix 10.20.0.0/16 Nexthops 169.254.10.2 received by Cloud Router", "other", "", ""),
    ("Route Event: Prefix 10.20.0.0/16 Nexthops 169.254.10.2 deleted from Cloud Router", "other", "", ""),
    ("BGP Event: NOTIFICATION 6/1 sent to peer aws-peer-0", "other", "", ""),
    ("BFD Event: bfd enabled, state [Init, NoDiagnostic]", "other", "", ""),
    ("BFD Event: state changed to [Down, ControlDetectionTimeExpired]", "other", "", ""),
    ("Router Event: Maintenance of router task: BGP sessions will restart.", "other", "", ""),
]


@pytest.mark.parametrize(("message", "event"), AWS_TUNNEL_EXAMPLES)
def test_aws_tunnel_activity_examples(message: str, event: str) -> None:
    match = classify(AWS_TUNNEL, message)
    assert match is not None and match.event == event, message
    assert match.doc.startswith("https://docs.aws.amazon.com/vpn/")


@pytest.mark.parametrize(("message", "event", "reason"), AWS_BGP_EXAMPLES)
def test_aws_bgp_log_examples(message: str, event: str, reason: str) -> None:
    match = classify(AWS_BGP, message)
    assert match is not None and (match.event, match.reason) == (event, reason), message


@pytest.mark.parametrize(("message", "event"), GCP_VPN_EXAMPLES)
def test_cloud_vpn_examples(message: str, event: str) -> None:
    match = classify(GCP_VPN, message)
    assert match is not None and match.event == event, message


@pytest.mark.parametrize(("message", "event", "peer", "reason"), GCP_ROUTER_EXAMPLES)
def test_cloud_router_examples(message: str, event: str, peer: str, reason: str) -> None:
    match = classify(GCP_ROUTER, message)
    assert match is not None and match.event == event, message
    assert (match.groups.get("peer", ""), match.reason) == (peer, reason)


@pytest.mark.parametrize("table", [AWS_TUNNEL, AWS_BGP, GCP_VPN, GCP_ROUTER])
def test_every_row_cites_its_page_and_uses_the_event_vocabulary(table: tuple[Pattern, ...]) -> None:
    known = {*TUNNEL_LOG_EVENTS, "bgp_up", "bgp_down"}
    for row in table:
        assert row.doc.startswith("https://") and row.event in known, row
    assert REKEY_FAILURE_EVENTS <= set(TUNNEL_LOG_EVENTS)


def test_every_row_is_reached_by_an_example() -> None:
    """No dead row: each pattern is the first match of at least one documented example."""
    corpora = {
        id(AWS_TUNNEL): [m for m, _ in AWS_TUNNEL_EXAMPLES],
        id(AWS_BGP): [m for m, _, _ in AWS_BGP_EXAMPLES],
        id(GCP_VPN): [m for m, _ in GCP_VPN_EXAMPLES],
        id(GCP_ROUTER): [m for m, *_ in GCP_ROUTER_EXAMPLES],
    }
    for table in (AWS_TUNNEL, AWS_BGP, GCP_VPN, GCP_ROUTER):
        hit = {next(i for i, row in enumerate(table) if row.regex.search(m)) for m in corpora[id(table)]}
        assert hit == set(range(len(table))), [table[i].regex.pattern for i in set(range(len(table))) - hit]


def test_unknown_messages_are_unclassified_and_shapes_blank_the_variables() -> None:
    assert classify(AWS_TUNNEL, "AWS tunnel did something new") is None
    assert classify(GCP_VPN, "") is None
    assert shape("retransmit 2 of request with message ID 5 to 198.51.100.1") == shape(
        "retransmit 3 of request with message ID 9 to 198.51.100.2"
    )
