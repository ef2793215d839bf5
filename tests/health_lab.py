"""A 4-tunnel AWS <-> GCP topology as exporter snapshots, for the health and alerting tests.

Mirrors the lab: AWS connections vpn-1 (outside IPs 198.51.100.1/.2) and vpn-2 (.3/.4), GCP HA gateway
ha-gw with interfaces 203.0.113.1/.2 and tunnels tun1..tun4 (tunN <-> 198.51.100.N). GCP learns
198.18.1.0/24 over each tunnel's BGP session; AWS learns 198.18.0.0/24 propagated from both
connections.
"""

from __future__ import annotations

from collections.abc import Collection

from watchdog.model import BgpSession, LearnedRoute, Snapshot, Tunnel

AWS, GCP = "aws-tokyo", "gcp-hub"
AWS_PREFIX, GCP_PREFIX = "198.18.0.0/24", "198.18.1.0/24"
CONNECTION_OF = {1: "vpn-1", 2: "vpn-1", 3: "vpn-2", 4: "vpn-2"}
GCP_IP_OF = {1: "203.0.113.1", 2: "203.0.113.1", 3: "203.0.113.2", 4: "203.0.113.2"}


def aws_ip(n: int) -> str:
    return f"198.51.100.{n}"


def aws_snapshot(down: Collection[int] = (), *, routes: bool = True, at: float = 0.0) -> Snapshot:
    tunnels = tuple(
        Tunnel(
            connection=CONNECTION_OF[n],
            name=aws_ip(n),
            local_ip=aws_ip(n),
            peer_ip=GCP_IP_OF[n],
            up=n not in down,
            status="DOWN" if n in down else "UP",
            detail="IPSEC IS DOWN" if n in down else "",
        )
        for n in range(1, 5)
    )
    sessions = tuple(
        BgpSession(
            "tgw-rtb-1", t.name, "169.254.10.1", "169.254.10.2", t.up, "Established" if t.up else "Down", tunnel=t.name
        )
        for t in tunnels
    )
    learned = (
        tuple(LearnedRoute("tgw-rtb-1", AWS_PREFIX, f"tgw-attach-{c}", connection=c) for c in ("vpn-1", "vpn-2"))
        if routes
        else ()
    )
    return Snapshot(AWS, "aws", at, tunnels, sessions, learned)


def gcp_snapshot(
    down: Collection[int] = (), *, bgp_down: Collection[int] = (), routes: bool = True, at: float = 0.0
) -> Snapshot:
    tunnels = tuple(
        Tunnel(
            connection="ha-gw",
            name=f"tun{n}",
            local_ip=GCP_IP_OF[n],
            peer_ip=aws_ip(n),
            up=n not in down,
            status="NO_INCOMING_PACKETS" if n in down else "ESTABLISHED",
            router="cr-hub",
            gateway_interface=0 if n < 3 else 1,
            peer_interface=n - 1,
        )
        for n in range(1, 5)
    )
    sessions = tuple(
        BgpSession(
            "cr-hub",
            f"bgp-tun{n}",
            f"169.254.{10 + n}.2",
            f"169.254.{10 + n}.1",
            up=n not in down and n not in bgp_down,
            state="Established" if n not in down and n not in bgp_down else "Idle",
            tunnel=f"tun{n}",
        )
        for n in range(1, 5)
    )
    learned = (
        tuple(
            LearnedRoute("cr-hub", GCP_PREFIX, f"169.254.{10 + n}.1", peer=f"bgp-tun{n}", tunnel=f"tun{n}")
            for n in range(1, 5)
            if n not in down and n not in bgp_down
        )
        if routes
        else ()
    )
    return Snapshot(GCP, "gcp", at, tunnels, sessions, learned)
