"""Ship the lab's charon log into the emulated cloud's log API, in that cloud's documented format.

GCP: each new line of the GCP side's `charon.log` (strongSwan's filelog, `time_format = %T`,
`ike_name = yes`: `12:42:45 15[IKE] <tun1|2> message`) becomes a Cloud VPN entry: resource
`vpn_gateway` (labels project_id, region, gateway_id), log label `tunnel_id`, `textPayload` the
daemon's message (Cloud VPN logs strongSwan's own messages), written to the `CloudLogging` the GCP
emulator mounts. It runs inside the GCP emulator's process, not as a process of its own: that
process already knows the ids its Compute API gives the gateway and tunnels, and serves the HTTP
endpoint the Logging API is mounted on, so labctl has nothing more to start or stop.

AWS: the AWS side's `charon.log` becomes Site-to-Site VPN tunnel activity log records (the JSON
of LogOutputFormat `json`: event_timestamp, timestamp, dpd_enabled, nat_t_detected,
ike_phase1_state, ike_phase2_state, details) put with PutLogEvents into the AWS emulator's
CloudWatch Logs, one stream per tunnel named `<vpn id>-<outside IP>` as AWS names them. `details`
is AWS's documented wording of what charon did (`AwsTunnelPhases.line`: "AWS tunnel is sending
response (id=2) for CREATE_CHILD_SA", "AWS tunnel DPD timed out after 2 retransmits", ...); a charon
line AWS has no message for is not shipped. The phase states follow the SAs the log creates and
deletes, starting from the SAs charon lists (VICI) when shipping starts. It runs inside the AWS
emulator's process (aws_lab), which knows the ids its EC2 API generated.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from deploy.lab.emulators.gcp_logging import CloudLogging

log = logging.getLogger(__name__)

_LINE = re.compile(
    r"^(?P<time>\d\d:\d\d:\d\d) +\d+\[(?P<group>\w+)\] <(?P<name>[^|>]+)\|(?P<uid>\d+)> (?P<message>.*)$"
)
_SHIPPED_GROUPS = frozenset({"IKE", "ENC", "CHD", "CFG"})  # not NET: packet traces are not Cloud VPN's


def parse_line(line: str, *, now: float) -> tuple[float, str, str] | None:
    """(epoch seconds, IKE SA name, message) of one filelog line with an IKE name; None otherwise.

    `%T` carries no date: the line is today's, or yesterday's when that would put it in the future.
    """
    parsed = parse_line_uid(line, now=now)
    return None if parsed is None else (parsed[0], parsed[1], parsed[3])


def parse_line_uid(line: str, *, now: float) -> tuple[float, str, str, str] | None:
    """`parse_line` plus the IKE SA's unique id: (epoch seconds, name, unique id, message)."""
    found = _LINE.match(line.rstrip("\n"))
    if found is None or found["group"] not in _SHIPPED_GROUPS:
        return None
    today = dt.datetime.fromtimestamp(now).date()
    clock = dt.time.fromisoformat(found["time"])
    at = dt.datetime.combine(today, clock).timestamp()
    if at > now + 60:
        at -= 86400
    return at, found["name"], found["uid"], found["message"]


class CharonTail:
    """New complete lines of a growing file (a truncated or replaced file is read from its start)."""

    def __init__(self, path: Path, *, from_end: bool = True) -> None:
        self.path = path
        self._offset = path.stat().st_size if from_end and path.exists() else 0
        self._partial = ""

    def lines(self) -> list[str]:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self._offset:
            self._offset, self._partial = 0, ""
        with self.path.open("r", encoding="utf-8", errors="replace") as handle:
            handle.seek(self._offset)
            text = handle.read()
            self._offset = handle.tell()
        text, self._partial = self._partial + text, ""
        lines = text.split("\n")
        self._partial = lines.pop()  # the last piece has no newline yet
        return lines


class _Shipper:
    """What both clouds' shippers share: a charon log tail and a thread that ships what it added every
    `interval` seconds. Subclasses write `ship_once`."""

    thread_name = "logship"

    def __init__(self, path: Path, *, interval: float, from_end: bool) -> None:
        self.tail = CharonTail(path, from_end=from_end)
        self.interval = interval
        self.shipped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def ship_once(self, now: float | None = None) -> int:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.ship_once()
            except Exception:  # a bad line, a refused write or a full disk must not end the emulator
                log.exception("shipping %s failed", self.tail.path)


class GcpLogShipper(_Shipper):
    """Tails one charon log into Cloud VPN entries of the lab's HA gateway, every `interval` seconds."""

    thread_name = "logship-gcp"

    def __init__(
        self,
        path: Path,
        logging_api: CloudLogging,
        *,
        region: str,
        gateway_id: str,
        tunnel_ids: Mapping[str, str],
        interval: float = 0.5,
        from_end: bool = True,
    ) -> None:
        super().__init__(path, interval=interval, from_end=from_end)
        self.api = logging_api
        self.region = region
        self.gateway_id = gateway_id
        self.tunnel_ids = dict(tunnel_ids)

    def ship_once(self, now: float | None = None) -> int:
        """Write the entries of the lines added since the last call; how many were written."""
        moment = time.time() if now is None else now
        written = 0
        for line in self.tail.lines():
            parsed = parse_line(line, now=moment)
            if parsed is None:
                continue
            at, name, message = parsed
            tunnel_id = self.tunnel_ids.get(name)
            if tunnel_id is None:
                continue  # an SA of no emulated tunnel
            self.api.vpn_entry(self.gateway_id, tunnel_id, message, region=self.region, at=at)
            written += 1
        self.shipped += written
        return written


# --- AWS --------------------------------------------------------------------------------------------

_EXCHANGE = re.compile(
    r"^(?P<verb>parsed|generating) (?P<exchange>\w+) (?P<kind>request|response) (?P<id>\d+) \[(?P<payloads>.*)\]$"
)
_IKE_UP = re.compile(r"^IKE_SA \S+\[(?P<uid>\d+)\] (?P<how>established|rekeyed) between")
_CHILD_UP = re.compile(r"^(?:inbound |outbound )?CHILD_SA \S+\{(?P<uid>\d+)\} established")
_CHILD_CLOSED = re.compile(r"^closing CHILD_SA \S+\{(?P<uid>\d+)\}")
_IKE_DELETE = re.compile(r"^received DELETE for IKE_SA \S+\[(?P<uid>\d+)\]")
_IKE_DELETING = re.compile(r"^deleting IKE_SA \S+\[(?P<uid>\d+)\]")
_CHILD_DELETE = re.compile(r"^received DELETE for ESP CHILD_SA with SPI (?P<spi>[0-9a-f]+)")
_GIVING_UP = re.compile(r"^giving up after (?P<n>\d+) retransmits")
_NO_PROPOSAL = re.compile(r"no acceptable proposal found|received NO_PROPOSAL_CHOSEN notify")
_PSK = re.compile(r"MAC mismatched|with pre-shared key failed|received AUTHENTICATION_FAILED notify")
_COLLISION_DELETE = re.compile(r"detected CHILD_REKEY collision with CHILD_DELETE")
_COLLISION = re.compile(r"detected CHILD_REKEY collision with CHILD_REKEY|CHILD_SA rekey collision (?:won|lost)")
_NEGOTIATING = re.compile(r"^(?:initiating IKE_SA|establishing CHILD_SA) ")


@dataclass(frozen=True)
class TunnelStream:
    """Where one tunnel's records go and what they name: its VPN connection and outside IPs."""

    vpn_connection_id: str
    outside_ip: str
    customer_gateway_ip: str

    @property
    def stream(self) -> str:
        return f"{self.vpn_connection_id}-{self.outside_ip}"


@dataclass
class AwsTunnelPhases:
    """One tunnel's IKE phase 1/2 states as the AWS endpoint would log them, driven by charon's lines."""

    cgw: str = ""
    ike_uid: str | None = None  # the IKE SA carrying the tunnel
    children: set[str] = field(default_factory=set)  # its installed CHILD SAs
    rekeying: set[int] = field(default_factory=set)  # phases being rekeyed
    negotiating: bool = False
    dpd_pending: bool = False

    def states(self) -> tuple[str, str]:
        p1 = (
            "Rekeying"
            if 1 in self.rekeying
            else "Established"
            if self.ike_uid
            else "Negotiating"
            if self.negotiating
            else "Down"
        )
        p2 = "Rekeying" if 2 in self.rekeying else "Established" if self.children and self.ike_uid else "Down"
        return p1, p2

    def _down(self) -> None:
        self.ike_uid, self.negotiating, self.dpd_pending = None, False, False
        self.children.clear()
        self.rekeying.clear()

    def line(self, uid: str, message: str) -> str | None:
        """Apply one charon message of this tunnel; AWS's `details` for it, or None (not logged)."""
        if found := _EXCHANGE.match(message):
            exchange, kind = found["exchange"], found["kind"]
            payloads = found["payloads"].split()
            if exchange == "CREATE_CHILD_SA" and kind == "request":
                if "TSi" not in payloads:
                    self.rekeying.add(1)
                elif self.children:
                    self.rekeying.add(2)
            elif exchange == "CREATE_CHILD_SA":
                self.rekeying.clear()
            if exchange == "INFORMATIONAL" and kind == "request" and found["verb"] == "generating" and not payloads:
                self.dpd_pending = True
            elif exchange == "INFORMATIONAL" and kind == "response" and found["verb"] == "parsed":
                self.dpd_pending = False
            verb = "processed" if found["verb"] == "parsed" else "is sending"
            return f"AWS tunnel {verb} {kind} (id={found['id']}) for {exchange}"
        if found := _IKE_UP.match(message):
            self.ike_uid, self.negotiating = found["uid"], False
            self.rekeying.discard(1)
            return None
        if found := _CHILD_UP.match(message):
            self.children.add(found["uid"])
            self.rekeying.discard(2)
            self.negotiating = False
            return None
        if found := _CHILD_CLOSED.match(message):
            self.children.discard(found["uid"])
            return None
        if found := _IKE_DELETE.match(message):
            if found["uid"] == self.ike_uid:
                self._down()
            return "AWS tunnel received DELETE for IKE_SA from CGW"
        if found := _IKE_DELETING.match(message):
            if found["uid"] == self.ike_uid:
                self._down()
            return None
        if found := _CHILD_DELETE.match(message):
            return f"AWS tunnel received DELETE for Phase 2 SA with SPI: {found['spi']}"
        if found := _GIVING_UP.match(message):
            established = self.ike_uid is not None and uid == self.ike_uid
            self._down()
            if established:
                return f"AWS tunnel DPD timed out after {found['n']} retransmits"
            return f"AWS tunnel Timeout: deleting un-established Phase 1 IKE_SA with cgw: {self.cgw}"
        if _NO_PROPOSAL.search(message):
            self.rekeying.clear()
            return 'No Proposal Match Found. Notifying with "No proposal chosen"'
        if _PSK.search(message):
            return f"AWS tunnel detected a pre-shared key mismatch with cgw: {self.cgw}"
        if _COLLISION_DELETE.search(message):
            return "AWS tunnel detected a (CHILD_REKEY) collision as CHILD_DELETE"
        if _COLLISION.search(message):
            return "AWS tunnel (CHILD_SA) redundant SA is being deleted due to detected collision"
        if _NEGOTIATING.match(message) and self.ike_uid is None:
            self.negotiating = True
        return None

    @classmethod
    def from_sas(cls, name: str, sas: Iterable[Mapping[str, Any]], cgw: str) -> AwsTunnelPhases:
        """The tunnel's phases as charon lists its SAs (VICI `list-sas` events) right now."""
        phases = cls(cgw=cgw)
        for event in sas:
            ike = event.get(name)
            if not isinstance(ike, Mapping):
                continue
            if ike.get("state") == "ESTABLISHED":
                phases.ike_uid = str(ike.get("uniqueid"))
                for key, child in (ike.get("child-sas") or {}).items():
                    if isinstance(child, Mapping) and child.get("state") == "INSTALLED":
                        phases.children.add(str(child.get("uniqueid", key)))
            elif phases.ike_uid is None and ike.get("state") in ("CREATED", "CONNECTING"):
                phases.negotiating = True
        return phases


def aws_record(details: str, phases: AwsTunnelPhases, at: float) -> dict[str, Any]:
    """One tunnel activity log record (LogOutputFormat json) as AWS documents its fields."""
    phase1, phase2 = phases.states()
    return {
        "event_timestamp": int(at),
        "timestamp": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at)),
        "dpd_enabled": True,  # every lab tunnel runs DPD (swanctl dpd_delay)
        "nat_t_detected": False,
        "ike_phase1_state": phase1,
        "ike_phase2_state": phase2,
        "details": details,
    }


class AwsLogShipper(_Shipper):
    """Tails the AWS side's charon log into tunnel activity records, every `interval` seconds.

    `logs` is a boto3 CloudWatch Logs client of the AWS emulator; the group and streams exist.
    """

    thread_name = "logship-aws"

    def __init__(
        self,
        path: Path,
        logs: Any,
        log_group: str,
        streams: Mapping[str, TunnelStream],
        *,
        initial: Iterable[Mapping[str, Any]] = (),
        interval: float = 0.5,
        from_end: bool = True,
    ) -> None:
        super().__init__(path, interval=interval, from_end=from_end)
        self.logs = logs
        self.log_group = log_group
        self.streams = dict(streams)
        sas = list(initial)
        self.phases = {name: AwsTunnelPhases.from_sas(name, sas, s.customer_gateway_ip) for name, s in streams.items()}

    def records(self, lines: Iterable[str], now: float) -> dict[str, list[dict[str, Any]]]:
        """stream name -> the PutLogEvents events of these lines, in order."""
        batches: dict[str, list[dict[str, Any]]] = {}
        for line in lines:
            parsed = parse_line_uid(line, now=now)
            if parsed is None or parsed[1] not in self.streams:
                continue
            at, name, uid, message = parsed
            details = self.phases[name].line(uid, message)
            if details is None:
                continue
            record = aws_record(details, self.phases[name], at)
            batches.setdefault(self.streams[name].stream, []).append(
                {"timestamp": int(at * 1000), "message": json.dumps(record)}
            )
        return batches

    def ship_once(self, now: float | None = None) -> int:
        moment = time.time() if now is None else now
        written = 0
        for stream, events in self.records(self.tail.lines(), moment).items():
            self.logs.put_log_events(logGroupName=self.log_group, logStreamName=stream, logEvents=events)
            written += len(events)
        self.shipped += written
        return written
