"""`--fix-ipsec`: the minimal GCP-compatible option set per AWS tunnel, as a plan and (optionally) applied.

The plan is pure: for each GCP-facing AWS tunnel it keeps what is already right and narrows each
list to one value Cloud VPN supports (IKEv2 only, DH group 14 = the group GCP proposes first),
giving the exact `ModifyVpnTunnelOptions` request and the Terraform `aws_vpn_connection` arguments.
`apply_plan` changes one tunnel at a time through a `TunnelEditor` and waits for it to come back UP
(bounded; it first waits briefly to see it go down), so the two tunnels of a connection are never
down for a change together; it stops at the first failure. It must not print or keep pre-shared
keys (the inventory has none).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from watchdog.audit.ciphers import GCP_SUPPORTED, PREFERENCE, REQUEST_KEYS
from watchdog.audit.inventory import OPTION_KEYS, Inventory, TunnelOptions
from watchdog.audit.topology import build
from watchdog.errors import WatchdogError

DEFAULT_WAIT_TIMEOUT = 900.0  # AWS: a modified tunnel can be down "for several minutes"
DEFAULT_POLL_INTERVAL = 15.0
# A modified tunnel may still read UP for a moment before AWS takes it down for the change.
DEFAULT_SETTLE = 60.0


class TunnelEditor(Protocol):
    """What `apply_plan` needs from AWS (the adapter implements it; errors are WatchdogError)."""

    def modify_tunnel(self, connection_id: str, outside_ip: str, options: dict[str, Any]) -> None: ...

    def tunnel_status(self, connection_id: str, outside_ip: str) -> str: ...


@dataclass(frozen=True)
class TunnelChange:
    account: str
    connection_id: str
    tunnel_number: int  # 1 or 2: AWS's tunnel1/tunnel2 (API order)
    outside_ip: str
    status: str
    current: TunnelOptions
    target: TunnelOptions

    @property
    def changed_keys(self) -> tuple[str, ...]:
        return tuple(k for k in OPTION_KEYS if getattr(self.current, k) != getattr(self.target, k))

    @property
    def needed(self) -> bool:
        return bool(self.changed_keys)

    def request(self) -> dict[str, Any]:
        """The ModifyVpnTunnelOptions parameters (request casing: IKEVersions, ...), changed lists only."""
        options = {REQUEST_KEYS[k][0]: [{"Value": v} for v in getattr(self.target, k)] for k in self.changed_keys}
        return {
            "VpnConnectionId": self.connection_id,
            "VpnTunnelOutsideIpAddress": self.outside_ip,
            "TunnelOptions": options,
        }

    def terraform(self) -> dict[str, list[str | int]]:
        """The equivalent `aws_vpn_connection` arguments (all seven, Terraform is declarative)."""
        return {f"tunnel{self.tunnel_number}_{REQUEST_KEYS[k][1]}": list(getattr(self.target, k)) for k in OPTION_KEYS}


def target_options(current: TunnelOptions) -> TunnelOptions:
    """One supported value per list, preferring one the tunnel already offers (minimal change)."""
    chosen: dict[str, tuple[Any, ...]] = {}
    for key in OPTION_KEYS:
        values = tuple(getattr(current, key))
        supported = [v for v in values if v in GCP_SUPPORTED[key]]
        preference = PREFERENCE[key]
        if key in ("ike_versions", "phase1_dh", "phase2_dh"):
            chosen[key] = (preference[0],)
        elif len(values) == 1 and supported:
            chosen[key] = values
        else:
            pick = next((p for p in preference if p in supported), preference[0])
            chosen[key] = (pick,)
    return TunnelOptions(**chosen)


def plan(inventory: Inventory) -> list[TunnelChange]:
    """One entry per GCP-facing AWS tunnel (cheap mode's unused tunnel is left alone)."""
    changes = []
    for account, conn, tunnel in build(inventory).audited_tunnels():
        number = next(i for i, t in enumerate(conn.tunnels, start=1) if t.outside_ip == tunnel.outside_ip)
        changes.append(
            TunnelChange(
                account.name,
                conn.id,
                number,
                tunnel.outside_ip,
                tunnel.status,
                tunnel.options,
                target_options(tunnel.options),
            )
        )
    return changes


@dataclass
class ApplyOutcome:
    change: TunnelChange
    result: str  # applied | failed | not-attempted
    detail: str = ""


@dataclass
class ApplyReport:
    outcomes: list[ApplyOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.result == "applied" for o in self.outcomes)


def apply_plan(
    changes: list[TunnelChange],
    editors: dict[str, TunnelEditor],
    *,
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    settle: float = DEFAULT_SETTLE,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ApplyReport:
    """Apply the needed changes in order, one tunnel at a time; stop at the first failure.

    `editors` maps an account (exporter) name to its AWS editor.
    """
    report = ApplyReport()
    # Tunnels that are down carry no traffic: fix them first, so an UP tunnel is only taken down
    # for its change once its sibling is back UP (or the run has stopped).
    pending = sorted((c for c in changes if c.needed), key=lambda c: c.status == "UP")
    for index, change in enumerate(pending):
        editor = editors[change.account]
        try:
            editor.modify_tunnel(change.connection_id, change.outside_ip, change.request()["TunnelOptions"])
            status = _wait_up(editor, change, wait_timeout, poll_interval, settle, clock, sleep)
        except WatchdogError as exc:
            report.outcomes.append(ApplyOutcome(change, "failed", str(exc)))
            status = None
        else:
            if status == "UP":
                report.outcomes.append(ApplyOutcome(change, "applied", "tunnel is UP again"))
            else:
                report.outcomes.append(
                    ApplyOutcome(
                        change, "failed", f"tunnel did not come back UP within {wait_timeout:g}s (last status {status})"
                    )
                )
        if report.outcomes[-1].result != "applied":
            report.outcomes.extend(
                ApplyOutcome(c, "not-attempted", "stopped after the previous failure") for c in pending[index + 1 :]
            )
            break
    return report


def _wait_up(
    editor: TunnelEditor,
    change: TunnelChange,
    timeout: float,
    interval: float,
    settle: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> str:
    """Wait for the tunnel to go down for the change (at most `settle` s), then to be UP again."""
    start = clock()
    deadline = start + timeout
    went_down = False
    while True:
        status = editor.tunnel_status(change.connection_id, change.outside_ip)
        went_down = went_down or status != "UP"
        if status == "UP" and (went_down or clock() - start >= settle):
            return status
        if clock() >= deadline:
            return status
        sleep(min(interval, max(0.0, deadline - clock())))
