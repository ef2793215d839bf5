"""Ship the lab's charon log into the emulated cloud's log API, in that cloud's documented format.

GCP: each new line of the GCP side's `charon.log` (strongSwan's filelog, `time_format = %T`,
`ike_name = yes`: `12:42:45 15[IKE] <tun1|2> message`) becomes a Cloud VPN entry: resource
`vpn_gateway` (labels project_id, region, gateway_id), log label `tunnel_id`, `textPayload` the
daemon's message (Cloud VPN logs strongSwan's own messages), written to the `CloudLogging` the GCP
emulator mounts. It runs inside the GCP emulator's process, not as a process of its own: that
process already knows the ids its Compute API gives the gateway and tunnels, and serves the HTTP
endpoint the Logging API is mounted on, so labctl has nothing more to start or stop.

The AWS half (tunnel activity JSON into `topology.AWS_TUNNEL_LOG_GROUP` with PutLogEvents) belongs
in the AWS emulator's process the same way; it is not written yet.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from deploy.lab.emulators.gcp_logging import CloudLogging

log = logging.getLogger(__name__)

_LINE = re.compile(r"^(?P<time>\d\d:\d\d:\d\d) +\d+\[(?P<group>\w+)\] <(?P<name>[^|>]+)\|\d+> (?P<message>.*)$")
_SHIPPED_GROUPS = frozenset({"IKE", "ENC", "CHD", "CFG"})  # not NET: packet traces are not Cloud VPN's


def parse_line(line: str, *, now: float) -> tuple[float, str, str] | None:
    """(epoch seconds, IKE SA name, message) of one filelog line with an IKE name; None otherwise.

    `%T` carries no date: the line is today's, or yesterday's when that would put it in the future.
    """
    found = _LINE.match(line.rstrip("\n"))
    if found is None or found["group"] not in _SHIPPED_GROUPS:
        return None
    today = dt.datetime.fromtimestamp(now).date()
    clock = dt.time.fromisoformat(found["time"])
    at = dt.datetime.combine(today, clock).timestamp()
    if at > now + 60:
        at -= 86400
    return at, found["name"], found["message"]


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


class GcpLogShipper:
    """Tails one charon log into Cloud VPN entries of the lab's HA gateway, every `interval` seconds."""

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
        self.tail = CharonTail(path, from_end=from_end)
        self.api = logging_api
        self.region = region
        self.gateway_id = gateway_id
        self.tunnel_ids = dict(tunnel_ids)
        self.interval = interval
        self.shipped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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

    def start(self) -> GcpLogShipper:
        self._thread = threading.Thread(target=self._run, name="logship-gcp", daemon=True)
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
            except Exception:  # a bad line or a full disk must not end the emulator
                log.exception("shipping %s failed", self.tail.path)
