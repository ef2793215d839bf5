"""The managed VPN endpoints' documented log messages, as data: one table per cloud and log.

Each row is a pattern of a message a cloud's documentation shows, the event it means (the `event`
label of `tunnel_log_events_total`, or a BGP session going down) and the page it comes from. The
readers classify with `classify()`; a message no row matches is `unclassified`, counted, never
dropped. Pure data and regular expressions: no I/O.

Events: `rekey`, `rekey_collision`, `dpd_timeout`, `no_proposal_chosen`, `auth_failed`,
`negotiation_timeout`, `negotiation_failed`, `retransmit`, `fragment_dropped`, `other` (a known
message that is none of these), and for BGP logs `bgp_down` (the row's `reason` group or name
says why) and `bgp_up`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from watchdog.model import REKEY_FAILURE_EVENTS, TUNNEL_LOG_EVENTS

AWS_TUNNEL_DOC = "https://docs.aws.amazon.com/vpn/latest/s2svpn/monitoring-logs.html#tunnel-activity-log-contents"
AWS_BGP_DOC = "https://docs.aws.amazon.com/vpn/latest/s2svpn/monitoring-logs.html#bgp-log-contents"
GCP_VPN_DOC = "https://cloud.google.com/network-connectivity/docs/vpn/support/troubleshooting"
GCP_VPN_KNOWN_ISSUE = "https://cloud.google.com/network-connectivity/docs/vpn/how-to/connect-ha-vpn-aws-peer-gateway"
GCP_ROUTER_DOC = "https://cloud.google.com/network-connectivity/docs/router/how-to/viewing-logs-metrics"

# The vocabulary and the failure set live with the model (the alert logic reads them too).
FAILURE_EVENTS = REKEY_FAILURE_EVENTS
TUNNEL_EVENTS = TUNNEL_LOG_EVENTS


@dataclass(frozen=True)
class Pattern:
    """One documented message. `reason` names a BGP down reason when the text has no `reason` group."""

    regex: re.Pattern[str]
    event: str
    doc: str
    reason: str = ""


@dataclass(frozen=True)
class Match:
    event: str
    doc: str
    groups: dict[str, str]

    @property
    def reason(self) -> str:
        return self.groups.get("reason", "")


def _p(regex: str, event: str, doc: str, reason: str = "") -> Pattern:
    return Pattern(re.compile(regex, re.IGNORECASE), event, doc, reason)


_ID = r"\(id=[^)]*\)"

# AWS Site-to-Site VPN tunnel activity logs, `details` (VpnLogDetail); IKEv2 and IKEv1.
AWS_TUNNEL: tuple[Pattern, ...] = (
    _p(r"AWS tunnel DPD timed out after \d+ retransmits", "dpd_timeout", AWS_TUNNEL_DOC),
    _p(r"Peer is not responsive - Declaring peer dead", "dpd_timeout", AWS_TUNNEL_DOC),
    _p(r"AWS tunnel detected a \(CHILD_REKEY\) collision as CHILD_DELETE", "rekey_collision", AWS_TUNNEL_DOC),
    _p(
        r"AWS tunnel \(CHILD_SA\) redundant SA is being deleted due to detected collision",
        "rekey_collision",
        AWS_TUNNEL_DOC,
    ),
    _p(r"AWS tunnel Phase 2 was unable to establish while keeping Phase 1", "negotiation_failed", AWS_TUNNEL_DOC),
    _p(r"Traffic Selector: TS_UNACCEPTABLE: received from responder", "negotiation_failed", AWS_TUNNEL_DOC),
    _p(r"AWS tunnel is sending AUTHENTICATION_FAILED as the response", "auth_failed", AWS_TUNNEL_DOC),
    _p(r"AWS tunnel detected a pre-shared key mismatch with cgw", "auth_failed", AWS_TUNNEL_DOC),
    _p(r"AWS tunnel payload decryption was unsuccessful due to invalid Pre-shared Key", "auth_failed", AWS_TUNNEL_DOC),
    _p(r"AWS tunnel Timeout: deleting un-established Phase 1 IKE_SA", "negotiation_timeout", AWS_TUNNEL_DOC),
    _p(r"No Proposal Match Found", "no_proposal_chosen", AWS_TUNNEL_DOC),
    # A CREATE_CHILD_SA exchange is a rekey; it counts once, when it completes on AWS's side.
    _p(rf"AWS tunnel processed response {_ID} for CREATE_CHILD_SA", "rekey", AWS_TUNNEL_DOC),
    _p(rf"AWS tunnel is sending response {_ID} for CREATE_CHILD_SA", "rekey", AWS_TUNNEL_DOC),
    _p(rf"AWS tunnel (?:processed|is sending) (?:request|response) {_ID} for \w+", "other", AWS_TUNNEL_DOC),
    _p(r"AWS tunnel received DELETE for (?:IKE_SA|Phase 2 SA)", "other", AWS_TUNNEL_DOC),
)

# AWS Site-to-Site VPN BGP logs, `message.details` of BGPStatus / RouteStatus records.
AWS_BGP: tuple[Pattern, ...] = (
    _p(
        r"AWS-side peer BGP session state has changed from Established to (?P<to>\w+) with neighbor (?P<neighbor>\S+)",
        "bgp_down",
        AWS_BGP_DOC,
    ),
    _p(r"AWS-side peer BGP session state has changed from \w+ to Established", "bgp_up", AWS_BGP_DOC),
    _p(r"AWS-side peer BGP session state has changed from \w+ to \w+", "other", AWS_BGP_DOC),
    _p(r"AWS-side peer sent a Hold Timer Expired notification", "other", AWS_BGP_DOC, "HOLD_TIMER_EXPIRED"),
    _p(r"AWS-side peer detected the maximum prefix limit was exceeded", "other", AWS_BGP_DOC, "MAXIMUM_PREFIXES"),
    _p(r"AWS-side peer (?:sent|received) a notification 6/1\b", "other", AWS_BGP_DOC, "MAXIMUM_PREFIXES"),
    _p(r"AWS-side peer (?:sent|received) a notification 6/2\b", "other", AWS_BGP_DOC, "ADMINISTRATIVE_SHUTDOWN"),
    _p(r"AWS-side peer (?:sent|received) a notification 6/3\b", "other", AWS_BGP_DOC, "PEER_UNCONFIGURED"),
    _p(r"AWS-side peer (?:sent|received) a notification 6/4\b", "other", AWS_BGP_DOC, "ADMINISTRATIVE_RESET"),
    _p(r"AWS-side peer (?:sent|received) a notification 6/5\b", "other", AWS_BGP_DOC, "CONNECTION_REJECTED"),
    _p(r"AWS-side peer (?:sent|received) a notification 6/6\b", "other", AWS_BGP_DOC, "CONFIGURATION_CHANGE"),
    _p(r"AWS-side peer (?:sent|received) a notification 6/7\b", "other", AWS_BGP_DOC, "CONNECTION_COLLISION"),
    _p(r"AWS-side peer detected a bad OPEN message", "other", AWS_BGP_DOC, "BAD_OPEN"),
    _p(r"AWS-side peer is reporting a maximum prefix limit warning", "other", AWS_BGP_DOC),
    _p(r"AWS-side peer (?:received|sent) an OPEN message", "other", AWS_BGP_DOC),
    _p(r"AWS-side peer is initiating a connection", "other", AWS_BGP_DOC),
    _p(r"AWS-side peer sent an End-of-RIB message", "other", AWS_BGP_DOC),
    _p(r"AWS-side peer received update with attributes", "other", AWS_BGP_DOC),
    _p(r"DENIED due to: ", "other", AWS_BGP_DOC),
)

# Cloud VPN (`vpn_gateway`) entries: Cloud VPN's IKE daemon speaks strongSwan's messages; Google's
# troubleshooting page gives them as search strings. Lines marked "(strongSwan)" are the daemon's
# own wording of the same step where Google quotes only a fragment.
GCP_VPN: tuple[Pattern, ...] = (
    _p(r"establishing IKE_SA failed, peer not responding", "negotiation_timeout", GCP_VPN_DOC),
    _p(r"rekeying IKE_SA failed, peer not responding", "negotiation_timeout", GCP_VPN_DOC),  # (strongSwan)
    _p(r"giving up after \d+ retransmits", "negotiation_timeout", GCP_VPN_DOC),  # (strongSwan)
    _p(r"retransmit \d+ of request with message ID \d+", "retransmit", GCP_VPN_DOC),  # (strongSwan)
    _p(r"Peer proposal: DOES NOT HAVE DIFFIE_HELLMAN_GROUP", "no_proposal_chosen", GCP_VPN_DOC),
    _p(r"no[- _]proposal[- _]chosen", "no_proposal_chosen", GCP_VPN_DOC),
    _p(r"no (?:acceptable|matching) proposal found", "no_proposal_chosen", GCP_VPN_DOC),  # (strongSwan)
    _p(r"received AUTHENTICATION_FAILED notify error", "auth_failed", GCP_VPN_DOC),  # (strongSwan)
    _p(r"authentication of '[^']*' (?:\(myself\) )?(?:with [\w -]+ )?failed", "auth_failed", GCP_VPN_DOC),
    _p(r"(?:Remote|Local) traffic selectors narrowed", "negotiation_failed", GCP_VPN_DOC),
    _p(r"(?:dropp|discard)(?:ed|ing) (?:an? )?(?:IP[- ])?fragment", "fragment_dropped", GCP_VPN_KNOWN_ISSUE),
    _p(r"(?:CHILD_SA|IKE_SA) rekey(?:/delete)? collision", "rekey_collision", GCP_VPN_DOC),  # (strongSwan)
    _p(r"detected rekeying of CHILD_SA", "rekey", GCP_VPN_DOC),
    # (strongSwan) a CHILD_SA rekey as each end logs its one request: initiator generates, responder parses.
    _p(r"(?:generating|parsed) CREATE_CHILD_SA request \d+ \[ N\(REKEY_SA\)", "rekey", GCP_VPN_DOC),
    _p(r"IKE_SA \S+ rekeyed between", "rekey", GCP_VPN_DOC),  # (strongSwan)
    _p(r"initiating IKE_SA|generating IKE_SA_INIT request", "other", GCP_VPN_DOC),
    _p(r"generating IKE_AUTH request|parsed IKE_AUTH response", "other", GCP_VPN_DOC),
    _p(r"authentication of '[^']*' (?:\(myself\) )?with pre-shared key successful", "other", GCP_VPN_DOC),
    _p(r"IKE_SA \S+ established between", "other", GCP_VPN_DOC),
    _p(r"(?:received|sending) DELETE for (?:ESP CHILD_SA|IKE_SA)", "other", GCP_VPN_DOC),
    _p(r"closing CHILD_SA|CHILD_SA closed", "other", GCP_VPN_DOC),
    _p(r"Received SA_DELETE", "other", GCP_VPN_DOC),
    _p(r"CHILD_SA \S+ established with SPIs", "other", GCP_VPN_DOC),
    _p(r"(?:generating|parsed) (?:CREATE_CHILD_SA|INFORMATIONAL) (?:request|response)", "other", GCP_VPN_DOC),
)

# Cloud Router (`gce_router`) entries: `[Event Type]: [Log Text]`.
GCP_ROUTER: tuple[Pattern, ...] = (
    _p(r"BGP peering with (?P<peer>\S+) went down with the reason (?P<reason>\w+)", "bgp_down", GCP_ROUTER_DOC),
    _p(r"BGP peering with (?P<peer>\S+) came up", "bgp_up", GCP_ROUTER_DOC),
    _p(r"NOTIFICATION 6/1\b", "other", GCP_ROUTER_DOC),
    _p(r"Router task (?:activated|de-activated)", "other", GCP_ROUTER_DOC),
    _p(r"Successfully added configuration for peers", "other", GCP_ROUTER_DOC),
    _p(r"BGP Router ID set to", "other", GCP_ROUTER_DOC),
    _p(r"(?:Advertising|Withdrawing) prefix (?:to|from) peers", "other", GCP_ROUTER_DOC),
    _p(r"Prefix \S+ Nexthops .* received by Cloud Router", "other", GCP_ROUTER_DOC),
    _p(r"deleted from Cloud Router", "other", GCP_ROUTER_DOC),
    _p(r"bfd (?:enabled|disabled)|to \[(?:Up|Down|Init), \w+\]", "other", GCP_ROUTER_DOC),
    _p(r"Maintenance of router task: BGP sessions will restart", "other", GCP_ROUTER_DOC),
)


def classify(table: tuple[Pattern, ...], message: str) -> Match | None:
    """The first row of `table` whose pattern occurs in `message` (None: unclassified)."""
    for pattern in table:
        found = pattern.regex.search(message)
        if found is not None:
            groups = {k: v for k, v in found.groupdict().items() if v}
            if pattern.reason and "reason" not in groups:
                groups["reason"] = pattern.reason
            return Match(pattern.event, pattern.doc, groups)
    return None


_VARIABLE = re.compile(
    r"\b\d{1,3}(?:\.\d{1,3}){3}\b|[0-9a-f]*:[0-9a-f:]+:[0-9a-f]*|\b0x[0-9a-f]+\b|\b[0-9a-f]{8,}\b|\d+", re.IGNORECASE
)


def shape(message: str) -> str:
    """A message with its numbers, addresses and ids blanked: one debug line per distinct shape."""
    return _VARIABLE.sub("#", " ".join(message.split()))[:200]
