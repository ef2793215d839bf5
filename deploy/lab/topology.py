"""The lab's fixed shape and the config files it renders (pure: no processes, no I/O but `write_*`).

Two "clouds" in network namespaces, joined by a router namespace over documentation-range underlays:

    vw-gcp  gcp-wan 203.0.113.1,.2/24  <->  vw-inet (router)  <->  aws-wan 198.51.100.1-4/24  vw-aws

Four IKEv2 PSK tunnels (2 GCP HA VPN interfaces x 2 AWS connections x 2 tunnels), eBGP over each
(GCP AS 64514, AWS AS 64512), "VPC" prefixes in 198.18.0.0/15 on each side's loopback.
This module must not start or stop anything; `labctl.py` does that.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

GCP_ASN = 64514
AWS_ASN = 64512
ROUTER_GCP_IP = "203.0.113.254"
ROUTER_AWS_IP = "198.51.100.254"
GCP_OUTSIDE = ("203.0.113.1", "203.0.113.2")
AWS_OUTSIDE = ("198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4")
GCP_VPC = ("198.18.0.0/24", "198.18.2.0/24")
AWS_VPC = ("198.18.1.0/24", "198.18.3.0/24")
# ESP in UDP (outer IP + UDP + ESP header, IV, padding, ICV) rounded up: the tunnels' inner MTU is
# the underlay's minus this, so the lab's 1500-byte underlay gives libipsec's default 1400.
TUNNEL_OVERHEAD = 100
DNS_NAME = "db.aws.internal"
DNS_ADDRESS = "198.18.1.10"  # the aws "VPC" host address dnsmasq listens on

# What the emulated cloud APIs call the lab's objects (the seed's production shape).
AWS_REGION = "ap-northeast-1"
GCP_PROJECT = "vw-lab"
GCP_REGION = "asia-northeast1"
HA_VPN_GATEWAY = "ha-vpn-gw"  # GCP HA VPN gateway: interface 0 = GCP_OUTSIDE[0], 1 = GCP_OUTSIDE[1]
EXTERNAL_VPN_GATEWAY = "aws-vpn-gw"  # FOUR_IPS_REDUNDANCY, interface i = AWS_OUTSIDE[i]
CLOUD_ROUTER = "cr-hub"
HUB_NETWORK, SPOKE_NETWORK = "hub-vpc", "spoke-vpc"  # GCP_VPC[0] is the hub's range, GCP_VPC[1] the spoke's
AWS_TUNNEL_LOG_GROUP = "/vpn/lab-tunnels"  # CloudWatch Logs group in every tunnel's LogOptions
SPOKE_RANGE = GCP_VPC[1]  # a custom advertisement of the Cloud Router (`scripts/lab advertise`)
# Cloud DNS forwards from 35.199.192.0/19. The lab may use only its own ranges on the wire, so a
# stand-in inside 198.18.0.0/15 plays that range in the namespaces, and the emulated APIs report the
# real range wherever the stand-in is routed or advertised.
DNS_FORWARDING_RANGE = "35.199.192.0/19"
DNS_FORWARDING_STANDIN = "198.19.192.0/19"
# The GCP namespace holds one address of the stand-in (on its loopback) and the Cloud Router (its FRR)
# advertises the range: the DNS probe sends from it as Cloud DNS does, and the AWS side's route back to
# it is the "DNS return route" (`scripts/lab dns-return off` takes it away on the AWS side).
DNS_FORWARDER_ADDRESS = "198.19.192.10"
# `dns-return off`: the AWS side's FRR filters the range from GCP, and replies to it leave by the
# underlay router, the lab's "internet gateway", which has no route to it.
NO_DNS_RETURN_LIST = "NO-DNS-RETURN"

# Small, GCP-compatible proposals (what the write-up narrows AWS to: exactly one transform of each
# kind per phase, the set `watchdog audit --fix-ipsec` picks, so the healthy lab audits clean) and a
# large default-like set that makes IKE messages big enough to be IP-fragmented at a small underlay MTU.
_NARROW = "aes256-sha256-modp2048"
SMALL_PROPOSALS = (_NARROW, _NARROW)
BIG_PROPOSALS = (
    "aes256gcm16-aes128gcm16-prfsha512-prfsha384-prfsha256-modp8192-modp6144-modp4096-modp3072-ecp521"
    "-ecp384-ecp256-curve25519,aes256-aes192-aes128-sha512-sha384-sha256-sha1-modp8192-modp6144-modp4096"
    "-modp3072-modp2048-ecp521-ecp384-ecp256-curve25519",
    "aes256gcm16-aes192gcm16-aes128gcm16-modp8192-modp6144-modp4096-ecp521-ecp384,aes256-aes192-aes128"
    "-sha512-sha384-sha256-sha1-modp8192-modp6144-modp4096-modp3072-modp2048-ecp521-ecp384-ecp256",
)
_CHARON_PLUGINS = (
    "random nonce openssl aes sha1 sha2 hmac gcm gmp curve25519 pem pkcs1 x509 pubkey kdf"
    " kernel-libipsec kernel-netlink socket-default vici updown"
)
_SWANCTL_DIRS = (
    "x509",
    "x509ca",
    "x509aa",
    "x509ocsp",
    "x509crl",
    "x509ac",
    "pubkey",
    "private",
    "rsa",
    "ecdsa",
    "bliss",
    "pkcs8",
    "pkcs12",
)


@dataclass(frozen=True)
class TunnelSpec:
    """One IPsec tunnel: outside IPs, inside /30 (AWS takes .1, GCP .2 as AWS does)."""

    number: int
    gcp_outside: str
    aws_outside: str
    inside_net: str  # e.g. 169.254.10.0/30

    @property
    def name(self) -> str:
        return f"tun{self.number}"

    def _inside(self, host: int) -> str:
        base, _ = self.inside_net.split("/")
        a, b, c, d = (int(x) for x in base.split("."))
        return f"{a}.{b}.{c}.{d + host}"

    @property
    def aws_inside(self) -> str:
        return self._inside(1)

    @property
    def gcp_inside(self) -> str:
        return self._inside(2)


# 169.254.10.x/169.254.11.x: inside 169.254.0.0/16 but outside the /30s AWS reserves (169.254.0-5.x).
TUNNELS = (
    TunnelSpec(1, GCP_OUTSIDE[0], AWS_OUTSIDE[0], "169.254.10.0/30"),
    TunnelSpec(2, GCP_OUTSIDE[0], AWS_OUTSIDE[1], "169.254.10.4/30"),
    TunnelSpec(3, GCP_OUTSIDE[1], AWS_OUTSIDE[2], "169.254.11.0/30"),
    TunnelSpec(4, GCP_OUTSIDE[1], AWS_OUTSIDE[3], "169.254.11.4/30"),
)


def tunnel(number: int) -> TunnelSpec:
    for spec in TUNNELS:
        if spec.number == number:
            return spec
    raise ValueError(f"no tunnel {number} (the lab has tunnels 1-{len(TUNNELS)})")


@dataclass(frozen=True)
class Side:
    """One end of the VPN ("gcp" initiates, "aws" responds, as in the write-up's setup)."""

    key: str  # "gcp" | "aws"
    asn: int
    vpc: tuple[str, ...]
    wan_iface: str
    router_iface: str
    router_ip: str

    def outside(self, spec: TunnelSpec) -> str:
        return spec.gcp_outside if self.key == "gcp" else spec.aws_outside

    def inside(self, spec: TunnelSpec) -> str:
        return spec.gcp_inside if self.key == "gcp" else spec.aws_inside

    @property
    def addresses(self) -> tuple[str, ...]:
        return GCP_OUTSIDE if self.key == "gcp" else AWS_OUTSIDE

    @property
    def vpc_hosts(self) -> tuple[str, ...]:
        """The .10 host of each VPC prefix, on the namespace's loopback (GCP: and the DNS forwarder)."""
        hosts = tuple(p.split("/")[0].rsplit(".", 1)[0] + ".10/24" for p in self.vpc)
        if self.key == "gcp":
            hosts += (f"{DNS_FORWARDER_ADDRESS}/{DNS_FORWARDING_STANDIN.split('/')[1]}",)
        return hosts

    @property
    def routed(self) -> tuple[str, ...]:
        """Prefixes this side announces over BGP and carries in its traffic selectors."""
        return (*self.vpc, DNS_FORWARDING_STANDIN) if self.key == "gcp" else self.vpc


GCP = Side("gcp", GCP_ASN, GCP_VPC, "gcp-wan", "inet-gcp", ROUTER_GCP_IP)
AWS = Side("aws", AWS_ASN, AWS_VPC, "aws-wan", "inet-aws", ROUTER_AWS_IP)
SIDES = (GCP, AWS)


def other(side: Side) -> Side:
    return AWS if side is GCP else GCP


def psk(spec: TunnelSpec) -> str:
    return f"lab-psk-{spec.name}-0123456789abcdef"


@dataclass(frozen=True)
class Layout:
    """Where everything of one lab lives under its state directory."""

    root: Path

    def side_dir(self, side: Side) -> Path:
        return self.root / side.key

    def swan_dir(self, side: Side) -> Path:
        return self.side_dir(side) / "strongswan"

    def vici(self, side: Side) -> Path:
        return self.side_dir(side) / "charon.vici"

    def frr_dir(self, side: Side) -> Path:
        return self.side_dir(side) / "frr"

    @property
    def prom_dir(self) -> Path:
        return self.root / "prom"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def watchdog_yaml(self) -> Path:
        return self.root / "watchdog.yaml"

    @property
    def aws_credentials(self) -> Path:
        """The shared credentials file of the daemon's aws exporter (`LAB_AWS_CREDENTIALS`)."""
        return self.root / "aws" / "api-credentials"


def strongswan_conf(layout: Layout, side: Side, *, fast: bool) -> str:
    """`fast` (the lab default): DPD fails within ~5 s of a cut, like BGP with 1/3 timers."""
    d = layout.side_dir(side)
    tries, timeout = (2, 0.5) if fast else (3, 2.0)
    return f"""charon-systemd {{
  journal {{ default = -1 }}
  filelog {{ lab {{ path = {d}/charon.log
                  time_format = %T
                  ike_name = yes
                  default = 1
                  flush_line = yes
                  append = yes }} }}
}}
charon {{
  load = {_CHARON_PLUGINS}
  retransmit_tries = {tries}
  retransmit_timeout = {timeout}
  fragment_size = 1280
  plugins {{ vici {{ socket = unix://{layout.vici(side)} }} }}
}}
"""


def swanctl_conf(side: Side, *, fast: bool, big_proposals: bool = False) -> str:
    """One connection per tunnel; GCP initiates and restarts on DPD, AWS waits (AWS default)."""
    ike, esp = BIG_PROPOSALS if big_proposals else SMALL_PROPOSALS
    peer = other(side)
    initiator = side is GCP
    rekey_ike, rekey_child = ("28800s", "3600s") if initiator else ("86400s", "10800s")
    conns, secrets = [], []
    for spec in TUNNELS:
        local_ts = ",".join((f"{side.inside(spec)}/32", *side.routed))
        remote_ts = ",".join((f"{peer.inside(spec)}/32", *peer.routed))
        conns.append(f"""  {spec.name} {{
    version = 2
    local_addrs = {side.outside(spec)}
    remote_addrs = {peer.outside(spec)}
    proposals = {ike}
    fragmentation = yes
    mobike = no
    keyingtries = 0
    rekey_time = {rekey_ike}
    dpd_delay = {"2s" if fast else "10s"}
    local {{ auth = psk
            id = {side.outside(spec)} }}
    remote {{ auth = psk
             id = {peer.outside(spec)} }}
    children {{
      {spec.name} {{
        local_ts = {local_ts}
        remote_ts = {remote_ts}
        esp_proposals = {esp}
        rekey_time = {rekey_child}
        start_action = {"start" if initiator else "none"}
        dpd_action = {"restart" if initiator else "clear"}
      }}
    }}
  }}""")
        secrets.append(f"""  ike-{spec.name} {{ id-1 = {side.outside(spec)}
             id-2 = {peer.outside(spec)}
             secret = "{psk(spec)}" }}""")
    return "connections {\n" + "\n".join(conns) + "\n}\nsecrets {\n" + "\n".join(secrets) + "\n}\n"


@dataclass(frozen=True)
class ConnProposals:
    """What one swanctl connection offers: IKE `proposals`, `esp_proposals`, IKE `version` (0 = any)."""

    ike: str
    esp: str
    version: int


_CONN_BLOCK = re.compile(r"^  (?P<name>\w+) \{\n(?P<body>.*?)^  \}$", re.M | re.S)


def conn_proposals(swanctl: str) -> dict[str, ConnProposals]:
    """The proposals of every connection in a swanctl.conf written by `swanctl_conf`."""
    found = {}
    for block in _CONN_BLOCK.finditer(swanctl):
        body = block["body"]
        ike = re.search(r"^    proposals = (\S+)$", body, re.M)
        esp = re.search(r"^\s+esp_proposals = (\S+)$", body, re.M)
        version = re.search(r"^    version = (\d)$", body, re.M)
        if ike and esp:
            found[block["name"]] = ConnProposals(ike[1], esp[1], int(version[1]) if version else 0)
    return found


def with_conn_proposals(swanctl: str, name: str, proposals: ConnProposals) -> str:
    """`swanctl` with connection `name`'s proposals (and its CHILD's) replaced; ValueError if it has none."""
    for block in _CONN_BLOCK.finditer(swanctl):
        if block["name"] != name:
            continue
        body = re.sub(r"^    proposals = \S+$", f"    proposals = {proposals.ike}", block["body"], count=1, flags=re.M)
        body = re.sub(r"^(\s+)esp_proposals = \S+$", rf"\g<1>esp_proposals = {proposals.esp}", body, flags=re.M)
        body = re.sub(r"^    version = \d$", f"    version = {proposals.version}", body, count=1, flags=re.M)
        return swanctl[: block.start("body")] + body + swanctl[block.end("body") :]
    raise ValueError(f"no connection {name!r} in the swanctl config")


def swanctl_dirs() -> tuple[str, ...]:
    """Credential dirs swanctl scans next to its config (it complains when they are missing)."""
    return _SWANCTL_DIRS


def zebra_conf(layout: Layout, side: Side) -> str:
    return f"hostname {side.key}-zebra\nlog file {layout.frr_dir(side)}/zebra.log informational\n"


def bgpd_conf(layout: Layout, side: Side, *, keepalive: int, hold: int) -> str:
    """eBGP to the peer's inside address of every tunnel; `network` for each VPC prefix."""
    peer = other(side)
    connect = "\n neighbor TUN timers connect 2" if hold <= 10 else ""
    neighbors = "\n".join(f" neighbor {peer.inside(spec)} peer-group TUN" for spec in TUNNELS)
    networks = "\n".join(f"  network {prefix}" for prefix in side.routed)
    return f"""hostname {side.key}-bgpd
log file {layout.frr_dir(side)}/bgpd.log informational
log timestamp precision 3
router bgp {side.asn}
 bgp router-id {side.inside(TUNNELS[0])}
 no bgp ebgp-requires-policy
 bgp log-neighbor-changes
 neighbor TUN peer-group
 neighbor TUN remote-as {peer.asn}
 neighbor TUN timers {keepalive} {hold}{connect}
{neighbors}
 address-family ipv4 unicast
{networks}
  maximum-paths 4
 exit-address-family
"""


def prometheus_yml(*, am_port: int, watchdog_addr: str, rules_glob: str) -> str:
    """JSON is valid YAML; it keeps this module free of a YAML dependency.

    No `alerting` block: in the lab the daemon is the one alert source. Prometheus still evaluates
    the shipped rule copies (its /classic/alerts page shows them, so they stay exercised), but sending
    them to the same Alertmanager would page every problem twice over (one cut made 22 alerts)."""
    config = {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "rule_files": [rules_glob],
        "scrape_configs": [
            {"job_name": "vpn-watchdog", "static_configs": [{"targets": [watchdog_addr]}]},
            {"job_name": "alertmanager", "static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]},
        ],
    }
    return json.dumps(config, indent=2) + "\n"


def alertmanager_yml() -> str:
    config = {
        "route": {"receiver": "lab", "group_wait": "5s", "group_interval": "10s", "repeat_interval": "1h"},
        "receivers": [{"name": "lab"}],
    }
    return json.dumps(config, indent=2) + "\n"


AWS_EXPORTER, GCP_EXPORTER = "aws-tokyo", "gcp-hub"  # the daemon's names of the two clouds' views
# Test keys for the lab's EC2/CloudWatch Logs endpoint (it checks none): the daemon signs with these,
# never with whatever AWS keys the machine's environment holds.
LAB_AWS_CREDENTIALS = "[default]\naws_access_key_id = AKIAVPNWATCHDOGLAB01\naws_secret_access_key = lab-test-only\n"
CLOUD_INTERVAL = "2s"  # the lab's poll interval of the cloud exporters
CLOUD_TIMEOUT = "5s"  # a first poll (SDK clients, gRPC channel) on a busy machine can take longer than 2 s


def watchdog_yaml(
    layout: Layout,
    *,
    watchdog_addr: str,
    am_port: int,
    netns: dict[str, str],
    gcp_endpoint: str | None = None,
    gcp_monitoring_endpoint: str | None = None,
    aws_endpoint: str | None = None,
) -> str:
    """The daemon's config for this lab. The daemon runs in the root namespace: the clouds' APIs are
    the lab's emulators on loopback, VICI and vty sockets are unix paths reachable from there; probes
    run inside the gcp namespace and the IKE sniffer inside the aws one (`netns:`)."""
    exporters = []
    if aws_endpoint is not None:
        # Static test credentials: boto3 signs, the emulator does not check.
        exporters.append(f"""  - name: {AWS_EXPORTER}
    type: aws
    region: {AWS_REGION}
    endpoint_url: {aws_endpoint}
    credentials_file: {layout.aws_credentials}
    interval: {CLOUD_INTERVAL}
    timeout: {CLOUD_TIMEOUT}
    tunnel_logs: {{log_group: {AWS_TUNNEL_LOG_GROUP}}}""")
    if gcp_endpoint is not None:
        exporters.append(f"""  - name: {GCP_EXPORTER}
    type: gcp
    project: {GCP_PROJECT}
    region: {GCP_REGION}
    endpoint: {gcp_endpoint}
    monitoring_endpoint: {gcp_monitoring_endpoint or gcp_endpoint}
    interval: {CLOUD_INTERVAL}
    timeout: {CLOUD_TIMEOUT}
    logs: true""")
    for side in SIDES:
        exporters.append(f"""  - name: {side.key}-strongswan
    type: strongswan
    vici_socket: {layout.vici(side)}
  - name: {side.key}-frr
    type: frr
    interval: 1s
    vtysh: [vtysh, --vty_socket, {layout.frr_dir(side)}]""")
    views = [(f"{side.key}-frr", other(side).vpc) for side in SIDES]
    if aws_endpoint is not None:
        views.append((AWS_EXPORTER, GCP_VPC))
    if gcp_endpoint is not None:
        views.append((GCP_EXPORTER, AWS_VPC))
    expected = "\n".join(
        f"""  - exporter: {name}
    prefixes: [{", ".join(prefixes)}]
    min_paths: {len(TUNNELS)}"""
        for name, prefixes in views
    )
    # Asked as Cloud DNS forwards it: from (the stand-in of) 35.199.192.0/19, so the reply needs the AWS
    # side's return route (`scripts/lab dns-return off` takes it away and this times out).
    probes = [
        f"""  - name: aws-db-dns
    type: dns
    query: {DNS_NAME}
    server: {DNS_ADDRESS}
    source: {DNS_FORWARDER_ADDRESS}
    expect: [{DNS_ADDRESS}]
    interval: 2s
    timeout: 1s
    netns: {netns["gcp"]}"""
    ]
    # One ping per tunnel path (its inside /30), every second: the fastest signal of a dead path.
    probes += [
        f"""  - name: {spec.name}-ping
    type: icmp
    target: {spec.aws_inside}
    count: 2
    interval: 1s
    timeout: 800ms
    netns: {netns["gcp"]}"""
        for spec in TUNNELS
    ]
    # The inner path MTU across the VPN: `scripts/lab mtu 1200` shrinks it to 1100 and this fires.
    probes.append(f"""  - name: tun-pmtu
    type: pmtu
    target: {DNS_ADDRESS}
    source: {GCP.vpc_hosts[0].split("/")[0]}
    min_mtu: 400
    expect_min_mtu: {1500 - TUNNEL_OVERHEAD - 100}
    interval: 5s
    timeout: 2s
    netns: {netns["gcp"]}""")
    return f"""# Written by deploy/lab/labctl.py for the lab in {layout.root}; rewritten at every `up`.
listen: "{watchdog_addr}"
interval: 5s
labels: {{env: lab}}
exporters:
{chr(10).join(exporters)}
expected_prefixes:
{expected}
probes:
{chr(10).join(probes)}
ike:
  interfaces: [{AWS.wan_iface}]
  netns: {netns["aws"]}
  peers: [{", ".join(AWS_OUTSIDE)}]
  mtu: 1400
alertmanager:
  urls: ["http://127.0.0.1:{am_port}"]
  for: 1s             # lab: show detection latency; production keeps the 10s default
  resend_interval: 30s
"""
