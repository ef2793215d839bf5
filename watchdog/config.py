"""Load and validate the YAML configuration into one frozen `Config`.

Strict parse (unknown keys are errors naming their key path) -> defaults -> cross-checks -> frozen
model. Nothing past this module sees a raw dict. Error messages look like
`config.yaml: exporters[1].regoin: unknown key` so a person can find the line at once.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import dns.exception
import dns.name
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from watchdog.configpath import DEFAULT_CONFIG_PATH as DEFAULT_CONFIG_PATH  # re-exported
from watchdog.configpath import default_config_path as default_config_path
from watchdog.errors import ConfigError
from watchdog.plugins import type_names
from watchdog.yamlfile import parse_yaml, read_yaml_file

MAX_POLL_TIMEOUT = 60.0

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


# Upper bounds keep every duration far inside what timers accept (timedelta, threading and socket
# timeouts overflow past ~1e9 s) and catch typos such as `interval: 5000h`.
HOUR = 3600.0
MAX_DURATION = 7 * 24 * HOUR
MAX_INTERVAL = 24 * HOUR
MAX_TIMEOUT = 10 * 60.0


def parse_duration(value: Any, maximum: float = MAX_DURATION) -> float:
    """`500ms`, `15s`, `1m`, `1h` (or a bare number of seconds) -> finite seconds in (0, maximum].

    Raises ValueError only (pydantic turns it into a message naming the key), whatever `value` is.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float is too long a duration
            seconds = math.inf
    elif isinstance(value, str) and (match := _DURATION_RE.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"invalid duration {_show(value)}: use e.g. 500ms, 15s, 1m, 1h")
    if math.isnan(seconds):
        raise ValueError(f"invalid duration {_show(value)}: use e.g. 500ms, 15s, 1m, 1h")
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {_show(value)}")
    if seconds > maximum:
        raise ValueError(f"duration {_show(value)} is too long: at most {format_duration(maximum)}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of `seconds` in the units parse_duration reads."""
    for unit, size in (("h", HOUR), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds * 1000:g}ms"


def _show(value: Any) -> str:
    """repr() short enough for an error line (a 1 MiB string or a 4,000-digit number is not)."""
    try:
        text = repr(value)
    except ValueError:  # an int past sys.get_int_max_str_digits()
        return "<a number too long to show>"
    return text if len(text) <= 40 else text[:37] + "..."


def _interval(value: Any) -> float:
    return parse_duration(value, MAX_INTERVAL)


def _timeout(value: Any) -> float:
    return parse_duration(value, MAX_TIMEOUT)


Duration = Annotated[float, BeforeValidator(parse_duration)]
Interval = Annotated[float, BeforeValidator(_interval)]
Timeout = Annotated[float, BeforeValidator(_timeout)]


def _ip_address(value: Any) -> str:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise ValueError(f"invalid IP address {value!r}") from None


def _ip_network(value: Any) -> str:
    try:
        return str(ipaddress.ip_network(str(value), strict=True))
    except ValueError as exc:
        raise ValueError(f"invalid CIDR {value!r}: {exc}") from None


IpAddress = Annotated[str, BeforeValidator(_ip_address)]
IpNetwork = Annotated[str, BeforeValidator(_ip_network)]
Name = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


def parse_host_port(value: str) -> tuple[str, int]:
    """`HOST:PORT`, `[V6]:PORT` or `:PORT` -> (host, port); HOST is an IP address or a host name, PORT
    1-65535. Host "" (from `:PORT`) and "::" mean every address, IPv6 included; "0.0.0.0" every IPv4
    address. Checked here so that `config check` and `--listen` refuse what `bind()` would later choke on."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit():
        raise ValueError(f"invalid listen address {value!r}: expected HOST:PORT, e.g. 0.0.0.0:9687 or [::]:9687")
    if not 0 < int(port) < 65536:
        raise ValueError(f"invalid listen address {value!r}: the port must be 1-65535")
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    if not host:
        return "", int(port)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if bracketed or not _HOSTNAME.match(host):
            raise ValueError(
                f"invalid listen address {value!r}: {host!r} is neither an IP address nor a host name"
            ) from None
        return host, int(port)
    if address.version == 6 and not bracketed:
        raise ValueError(f"invalid listen address {value!r}: write an IPv6 address in brackets, e.g. [{host}]:{port}")
    return host, int(port)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _ExporterBase(_Strict):
    name: Name
    interval: Interval | None = None
    timeout: Timeout | None = None


class TunnelLogsConfig(_Strict):
    """The CloudWatch Logs group the tunnels' LogOptions deliver their activity (and BGP) logs to."""

    log_group: str = Field(min_length=1, max_length=512, pattern=r"^[\w\-./#]+$")


class AssumeRoleConfig(_Strict):
    """One role to assume with STS (one AWS account): its credentials refresh before they expire."""

    role_arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
    external_id: str | None = Field(default=None, min_length=2, max_length=1224)
    session_name: str = Field(default="vpn-watchdog", pattern=r"^[\w+=,.@-]{2,64}$")

    @property
    def account(self) -> str:
        """The 12-digit account id the ARN names."""
        return self.role_arn.split(":")[4]


class TargetBudget(_Strict):
    """Per account (AWS) or project (GCP): how many of its regions poll at once, and its call rate."""

    concurrency: int = Field(default=4, ge=1, le=64)
    calls_per_second: float | None = Field(default=None, gt=0, le=10_000)


RegionName = Annotated[str, Field(min_length=1, pattern=r"^[a-z0-9-]+$")]


def _string_mapping(value: Any) -> Any:
    """A YAML mapping of strings, kept as sorted (key, value) pairs (exporter settings are hashable)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key or not isinstance(item, str):
                raise ValueError(f"expected a mapping of non-empty names to strings, got {_show(key)}: {_show(item)}")
        return tuple(sorted(value.items()))
    return value


StringPairs = Annotated[tuple[tuple[str, str], ...], BeforeValidator(_string_mapping)]


def _plural_key(raw: Any, one: str, many: str) -> Any:
    """`one: x` and `many: [x, y]` are two spellings of one list; `one` then means the first."""
    if isinstance(raw, dict) and many in raw and one not in raw:
        values = raw[many]
        if isinstance(values, (list, tuple)) and values and isinstance(values[0], str):
            raw = {**raw, one: values[0]}
    elif isinstance(raw, dict) and many in raw and one in raw:
        raise ValueError(f"set {one} or {many}, not both")
    return raw


def _unique_items(key: str, values: tuple[str, ...]) -> None:
    if len(set(values)) != len(values):
        raise ValueError(f"{key}: listed twice: {', '.join(sorted({v for v in values if values.count(v) > 1}))}")


class AwsExporterConfig(_ExporterBase):
    type: Literal["aws"]
    region: str = Field(min_length=1)
    # Several regions and accounts: one child poll per (account, region), merged into one view.
    regions: tuple[RegionName, ...] = ()
    assume_roles: tuple[AssumeRoleConfig, ...] = ()
    # VPN connections selected by tag (all must match), as well as (or instead of) by id.
    tags: StringPairs = ()
    budget: TargetBudget = Field(default_factory=TargetBudget)
    # STS (AssumeRole, GetCallerIdentity) goes to this endpoint; defaults to `endpoint_url`.
    sts_endpoint_url: str | None = None
    vpn_connections: tuple[str, ...] = ()
    transit_gateway_route_tables: tuple[str, ...] = ()
    endpoint_url: str | None = None
    profile: str | None = None
    # A shared credentials file (INI, as ~/.aws/credentials) for this exporter instead of the default
    # chain's; `profile` picks the section (default `default`). The lab writes one with test keys.
    credentials_file: str | None = None
    # VPC route tables of the DNS resolvers (audit: the 35.199.192.0/19 return route must be there too).
    dns_resolver_route_tables: tuple[str, ...] = ()
    tunnel_logs: TunnelLogsConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _regions(cls, raw: Any) -> Any:
        return _plural_key(raw, "region", "regions")

    @model_validator(mode="after")
    def _targets_unique(self) -> AwsExporterConfig:
        _unique_items("regions", self.regions)
        _unique_items("assume_roles", tuple(r.account for r in self.assume_roles))
        return self

    @property
    def all_regions(self) -> tuple[str, ...]:
        return self.regions or (self.region,)


class GcpExporterConfig(_ExporterBase):
    type: Literal["gcp"]
    # `project`, `projects: [...]`, and/or `project_labels` (projects found by their labels).
    project: str
    projects: tuple[str, ...] = ()
    project_labels: StringPairs = ()
    region: str = Field(min_length=1)
    regions: tuple[RegionName, ...] = ()
    budget: TargetBudget = Field(default_factory=TargetBudget)
    routers: tuple[str, ...] = ()
    endpoint: str | None = None
    credentials_file: str | None = None
    monitoring: bool = True
    # Cloud Monitoring speaks gRPC only; a local fake or proxy may serve it on another port than the
    # REST endpoint. Defaults to `endpoint`.
    monitoring_endpoint: str | None = None
    # Cloud VPN (vpn_gateway) and Cloud Router (gce_router) entries from Cloud Logging.
    logs: bool = False

    @field_validator("endpoint", "monitoring_endpoint")
    @classmethod
    def _endpoint_has_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"endpoint {value!r} must start with http:// or https://")
        return value

    @model_validator(mode="before")
    @classmethod
    def _plurals(cls, raw: Any) -> Any:
        raw = _plural_key(_plural_key(raw, "region", "regions"), "project", "projects")
        if isinstance(raw, dict) and raw.get("project_labels") and "project" not in raw:
            raw = {**raw, "project": ""}  # only found by labels: no first project to name
        return raw

    @model_validator(mode="after")
    def _some_project(self) -> GcpExporterConfig:
        if not (self.project or self.project_labels):
            raise ValueError("project must not be empty (or find projects with project_labels)")
        _unique_items("regions", self.regions)
        _unique_items("projects", self.projects)
        return self

    @property
    def all_regions(self) -> tuple[str, ...]:
        return self.regions or (self.region,)

    @property
    def listed_projects(self) -> tuple[str, ...]:
        """The projects named in the config (those found by `project_labels` come on top)."""
        return self.projects or ((self.project,) if self.project else ())


class StrongswanExporterConfig(_ExporterBase):
    type: Literal["strongswan"]
    vici_socket: str = "/var/run/charon.vici"


class FrrExporterConfig(_ExporterBase):
    type: Literal["frr"]
    vtysh: tuple[str, ...] = ("vtysh",)

    @field_validator("vtysh")
    @classmethod
    def _non_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("vtysh must name a command, e.g. [vtysh]")
        return value


ExporterConfig = Annotated[
    Union[AwsExporterConfig, GcpExporterConfig, StrongswanExporterConfig, FrrExporterConfig],
    Field(discriminator="type"),
]
EXPORTER_TYPES = type_names(ExporterConfig)  # derived: the union is the one list


class ExpectedPrefixesConfig(_Strict):
    exporter: str
    prefixes: tuple[IpNetwork, ...] = Field(min_length=1)
    min_paths: int = Field(default=1, ge=1)


NetnsName = Annotated[str, Field(min_length=1, pattern=r"^(/\S+|[A-Za-z0-9][A-Za-z0-9_.-]*)$")]


class _ProbeBase(_Strict):
    name: Name
    interval: Interval = 15.0
    timeout: Timeout = 2.0
    # Run the probe inside this network namespace (`ip netns` name or a path), e.g. from a host
    # that reaches the VPN only through a namespace. Missing namespace = probe failure, no fallback.
    netns: NetnsName | None = None


class DnsProbeConfig(_ProbeBase):
    type: Literal["dns"]
    query: str = Field(min_length=1)
    server: str | None = None
    record_type: Literal["A", "AAAA", "CNAME", "TXT", "MX", "NS", "SOA", "PTR", "SRV"] = "A"
    expect: tuple[str, ...] = ()
    # Send the query from this local address, e.g. one inside the range a forwarder really uses
    # (Cloud DNS forwards from 35.199.192.0/19), so the probe proves the reply finds its way back.
    source: IpAddress | None = None

    @field_validator("query")
    @classmethod
    def _query_is_name(cls, value: str) -> str:
        try:
            dns.name.from_text(value)
        except dns.exception.DNSException as exc:
            raise ValueError(f"invalid query name {value!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _expect_matches_type(self) -> DnsProbeConfig:
        version = {"A": 4, "AAAA": 6}.get(self.record_type)
        for value in self.expect if version else ():
            try:
                ok = ipaddress.ip_address(value).version == version
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"expect: {value!r} is not an IPv{version} address (record_type {self.record_type})")
        return self

    @model_validator(mode="after")
    def _source_matches_server(self) -> DnsProbeConfig:
        if self.source is not None and self.server is not None:
            host, _ = split_server(self.server)
            if ipaddress.ip_address(host).version != ipaddress.ip_address(self.source).version:
                raise ValueError(f"source {self.source} and server {self.server} are of different IP versions")
        return self

    @field_validator("server")
    @classmethod
    def _server_is_address(cls, value: str | None) -> str | None:
        if value is None:
            return value
        host, port = split_server(value)
        _ip_address(host)
        if not 0 < port < 65536:
            raise ValueError(f"invalid port in server {value!r}")
        return value


def split_server(value: str, default_port: int = 53) -> tuple[str, int]:
    """`10.0.0.2`, `10.0.0.2:5353`, `[::1]:53` or `::1` -> (host, port)."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else default_port
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        if not port.isdigit():
            raise ValueError(f"invalid port in server {value!r}")
        return host, int(port)
    return value, default_port


class IcmpProbeConfig(_ProbeBase):
    type: Literal["icmp"]
    target: IpAddress
    count: int = Field(default=3, ge=1, le=100)
    interval: Interval = 5.0
    source: IpAddress | None = None
    interface: str | None = None
    mode: Literal["auto", "unprivileged", "raw"] = "auto"
    # Bytes of the IP packet (84 = ping's default 56 data bytes); with `dont_fragment` a packet too
    # big for the path fails instead of being fragmented on the way.
    size: int = Field(default=84, ge=48, le=65507)
    dont_fragment: bool = False

    @model_validator(mode="after")
    def _source_matches_target(self) -> IcmpProbeConfig:
        _check_same_version(self.source, self.target)
        return self


def _check_same_version(source: str | None, target: str) -> None:
    if source is not None:
        if ipaddress.ip_address(source).version != ipaddress.ip_address(target).version:
            raise ValueError(f"source {source} and target {target} are not the same IP version")


class PmtuProbeConfig(_ProbeBase):
    """The largest packet that crosses the path with DF set (a shrunken tunnel MTU passes every ping
    and stalls every large transfer)."""

    type: Literal["pmtu"]
    target: IpAddress
    interval: Duration = 60.0
    source: IpAddress | None = None
    interface: str | None = None
    mode: Literal["auto", "unprivileged", "raw"] = "auto"
    min_mtu: int = Field(default=576, ge=68, le=65535)
    max_mtu: int = Field(default=1500, ge=68, le=65535)
    expect_min_mtu: int | None = Field(default=None, ge=68, le=65535)

    @model_validator(mode="after")
    def _bounds(self) -> PmtuProbeConfig:
        _check_same_version(self.source, self.target)
        floor = 1280 if ipaddress.ip_address(self.target).version == 6 else 68
        if self.min_mtu < floor:
            raise ValueError(f"min_mtu {self.min_mtu} is below the IPv6 minimum MTU of {floor}")
        if self.min_mtu > self.max_mtu:
            raise ValueError(f"min_mtu {self.min_mtu} is above max_mtu {self.max_mtu}")
        if self.expect_min_mtu is not None and not self.min_mtu <= self.expect_min_mtu <= self.max_mtu:
            raise ValueError(
                f"expect_min_mtu {self.expect_min_mtu} must lie between min_mtu {self.min_mtu} "
                f"and max_mtu {self.max_mtu}"
            )
        return self


ProbeConfig = Annotated[Union[DnsProbeConfig, IcmpProbeConfig, PmtuProbeConfig], Field(discriminator="type")]
PROBE_TYPES = type_names(ProbeConfig)


class IkeConfig(_Strict):
    interfaces: tuple[str, ...] = Field(min_length=1)
    peers: tuple[IpAddress, ...] = Field(min_length=1)
    mtu: int = Field(default=1460, ge=576, le=65535)
    netns: NetnsName | None = None  # capture on interfaces that live in this network namespace


def _redact(url: str) -> str:
    """The URL with anything that could be a user or password (before the last `@`) replaced."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"


def _alertmanager_url(url: str) -> str:
    """http(s)://HOST[:PORT][/PATH], without credentials: urllib cannot send them and every log line
    that names the URL would show the password."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"Alertmanager URL {_redact(url)!r} must start with http:// or https://")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as exc:
        raise ValueError(f"Alertmanager URL {_redact(url)!r} is invalid: {exc}") from None
    if "@" in url.partition("://")[2].partition("/")[0] or parts.username is not None:
        raise ValueError(
            f"Alertmanager URL {_redact(url)!r} contains credentials (user:password@), which are not"
            " supported: remove them (basic auth to Alertmanager is not implemented)"
        )
    if not parts.hostname:
        raise ValueError(f"Alertmanager URL {_redact(url)!r} has no host")
    return url


class AlertmanagerConfig(_Strict):
    urls: tuple[Annotated[str, AfterValidator(_alertmanager_url)], ...] = Field(min_length=1)
    resend_interval: Interval = 60.0
    for_: Interval = Field(default=10.0, alias="for")
    timeout: Timeout = 5.0


class AuditConfig(_Strict):
    interval: Duration = 3600.0


class Config(_Strict):
    listen: str = "0.0.0.0:9687"
    interval: Interval = 30.0
    labels: dict[str, str] = Field(default_factory=dict)
    exporters: tuple[ExporterConfig, ...] = ()
    expected_prefixes: tuple[ExpectedPrefixesConfig, ...] = ()
    probes: tuple[ProbeConfig, ...] = ()
    ike: IkeConfig | None = None
    alertmanager: AlertmanagerConfig | None = None
    audit: AuditConfig | None = None
    web_config_file: str | None = None
    # `i/n`: this replica owns the exporters whose stable hash of name mod n is i (watchdog.sharding).
    shard: str | None = None

    @field_validator("shard")
    @classmethod
    def _shard(cls, value: str | None) -> str | None:
        if value is not None:
            from watchdog.sharding import parse_shard  # sharding imports this module

            parse_shard(value)
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_host_port(value)
        return value

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", key):
                raise ValueError(f"invalid label name {key!r}")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        _unique("exporters", [e.name for e in self.exporters])
        _unique("probes", [p.name for p in self.probes])
        names = {e.name for e in self.exporters}
        for i, expected in enumerate(self.expected_prefixes):
            if expected.exporter not in names:
                raise ValueError(
                    f"expected_prefixes[{i}].exporter: no exporter named {expected.exporter!r}"
                    f" (known: {', '.join(sorted(names)) or 'none'})"
                )
        return self

    # Effective per-exporter timing: the exporter's own keys, else the global interval.
    def exporter_interval(self, exporter: _ExporterBase) -> float:
        return exporter.interval or self.interval

    def exporter_timeout(self, exporter: _ExporterBase) -> float:
        return min(exporter.timeout or self.exporter_interval(exporter), MAX_POLL_TIMEOUT)

    def expected_min_paths(self) -> dict[str, dict[str, int]]:
        """exporter -> expected prefix -> min_paths (config order): the one place this map is made."""
        expected: dict[str, dict[str, int]] = {}
        for entry in self.expected_prefixes:
            for prefix in entry.prefixes:
                expected.setdefault(entry.exporter, {})[prefix] = entry.min_paths
        return expected

    def exporter(self, name: str) -> ExporterConfig:
        for exporter in self.exporters:
            if exporter.name == name:
                return exporter
        raise KeyError(name)


def _unique(section: str, names: list[str]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ValueError(f"{section}[{i}].name: duplicate name {name!r}")
        seen.add(name)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read, parse and validate a config file; raise ConfigError with a readable message."""
    path = Path(path or default_config_path())
    return validate_config(read_yaml_file(path, "config"), source=str(path))


def parse_config(text: str, source: str = "<config>") -> Config:
    return validate_config(parse_yaml(text, source), source)


def validate_config(raw: dict[str, Any], source: str) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError("\n".join(f"{source}: {line}" for line in _describe(exc))) from None


_TAGGED_LISTS = {"exporters": EXPORTER_TYPES, "probes": PROBE_TYPES}


def printable_key(key: object) -> str:
    """A key as it can appear in a one-line message (a key may hold a newline or a control character)."""
    text = str(key)
    return text if text.isprintable() else repr(text)


def _path(loc: tuple[int | str, ...]) -> str:
    """('exporters', 0, 'aws', 'region') -> 'exporters[0].region' (drops union tags)."""
    parts: list[str] = []
    for i, item in enumerate(loc):
        if isinstance(item, int):
            parts.append(f"[{item}]")
            continue
        if i >= 2 and isinstance(loc[i - 1], int) and loc[i - 2] in _TAGGED_LISTS:
            if item in _TAGGED_LISTS[str(loc[i - 2])]:
                continue
        if item == "for_":
            item = "for"
        parts.append(("." if parts else "") + printable_key(item))
    return "".join(parts) or "(top level)"


def _describe(exc: ValidationError) -> list[str]:
    lines: list[str] = []
    errors = exc.errors(include_url=False)
    item_failed = {tuple(e["loc"][:-1]) for e in errors if e["loc"] and isinstance(e["loc"][-1], int)}
    for error in errors:
        loc = tuple(error["loc"])
        kind = error["type"]
        if kind == "too_short" and loc in item_failed:
            continue  # "at least 1 item" only because an item was invalid: that item's error says it all
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required key is missing"
        elif kind == "union_tag_invalid":
            section = str(loc[0]) if loc else ""
            known = ", ".join(_TAGGED_LISTS.get(section, ()))
            tag = error.get("ctx", {}).get("tag", "?")
            message = f"unknown type {tag!r} (expected one of: {known})"
            loc = loc + ("type",)
        elif kind == "union_tag_not_found":
            message = "required key is missing"
            loc = loc + ("type",)
        else:
            message = error["msg"]
            for prefix in ("Value error, ", "Assertion failed, "):
                message = message.removeprefix(prefix)
        if kind == "value_error" and not loc and ": " in message and message.split(": ", 1)[0]:
            lines.append(message)  # cross-check errors already name their key path
        else:
            lines.append(f"{_path(loc)}: {message}")
    return lines
