"""Values of a Terraform configuration before apply: plain Python values, or `Unknown`.

`Unknown` is a value Terraform only learns at apply time (a generated address, an id). When it is
one resource attribute, it keeps that attribute's address (`aws_vpn_connection.vpn[0].tunnel1_address`)
so that two references to the same attribute are known to be equal, and references to two different
generated addresses are known to differ (the clouds never hand out one address twice). Anything
computed from an unknown is opaque. `Resource` is one resource instance as both readers (HCL and
plan JSON) produce it: its address, where it is written, and its argument values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# How an unknown value shows in the inventory's string fields (and so in rule messages).
AFTER_APPLY = "(known after apply"
# The resource types the audit reads (others are not evaluated, nor noted when their count is unknown).
AUDITED_TYPES = frozenset(
    {
        "aws_customer_gateway",
        "aws_vpn_connection",
        "aws_ec2_transit_gateway",
        "aws_ec2_transit_gateway_route",
        "aws_ec2_transit_gateway_route_table",
        "aws_ec2_transit_gateway_route_table_association",
        "aws_ec2_transit_gateway_route_table_propagation",
        "google_compute_external_vpn_gateway",
        "google_compute_ha_vpn_gateway",
        "google_compute_network",
        "google_compute_network_peering",
        "google_compute_router",
        "google_compute_router_interface",
        "google_compute_router_peer",
        "google_compute_subnetwork",
        "google_compute_vpn_tunnel",
        "google_dns_managed_zone",
    }
)
# Arguments whose values are secrets: never read, never kept.
SECRET_ARGS = ("preshared_key", "shared_secret", "pre_shared_key", "psk")


@dataclass(frozen=True)
class Unknown:
    ref: str | None = None  # the attribute it is, when it is exactly one attribute
    # True when `ref` is an attribute the provider generates at apply (an address, an id): two such
    # attributes are different values. False for a variable without a value or an argument we could
    # not evaluate: `ref` then only tells which object it belongs to, never what it equals.
    generated: bool = False

    def attr(self, name: str) -> Unknown:
        return Unknown(f"{self.ref}.{name}" if self.ref else None, self.generated)

    def index(self, key: Any) -> Unknown:
        if self.ref is None or isinstance(key, Unknown):
            return Unknown()
        return Unknown(f"{self.ref}[{key}]" if isinstance(key, int) else f'{self.ref}["{key}"]', self.generated)

    @property
    def opaque(self) -> bool:
        """Its value cannot be compared with anything but itself."""
        return not (self.ref and self.generated)

    def text(self) -> str:
        """The inventory spelling: equal for the same attribute, never equal to a real value."""
        return f"{AFTER_APPLY}: {self.ref})" if self.ref else f"{AFTER_APPLY})#{id(self)}"


def is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(s in lowered for s in SECRET_ARGS)


def known(value: Any) -> bool:
    """True when the value holds no Unknown anywhere."""
    if isinstance(value, Unknown):
        return False
    if isinstance(value, list | tuple):
        return all(known(v) for v in value)
    if isinstance(value, dict):
        return all(known(v) for v in value.values())
    return True


def as_text(value: Any) -> str | None:
    """A scalar as the inventory's string (None for null)."""
    if value is None:
        return None
    if isinstance(value, Unknown):
        return value.text()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass
class Resource:
    """One resource instance: `aws_vpn_connection.vpn[1]` with its evaluated arguments."""

    address: str
    type: str
    values: dict[str, Any]
    file: str = ""
    line: int = 0
    # Line of each argument (and of the first block of each nested block type) inside the block.
    lines: dict[str, int] = field(default_factory=dict)
    module: str = ""  # "module.x." prefix, or ""

    def get(self, name: str, default: Any = None) -> Any:
        value = self.values.get(name, default)
        return default if value is None else value

    def blocks(self, name: str) -> list[dict[str, Any]]:
        """A nested block type as a list of dicts (Terraform's JSON shape); unknown = none."""
        value = self.values.get(name)
        if isinstance(value, dict):
            return [value]
        if isinstance(value, list):
            return [v for v in value if isinstance(v, dict)]
        return []

    def line_of(self, name: str) -> int:
        return self.lines.get(name, self.line)
