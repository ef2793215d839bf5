"""Cloud VPN packet counts from Cloud Monitoring, accumulated into counters since the exporter started.

The `vpn.googleapis.com/network/*packets_count` metrics are DELTA series: each point covers one
interval. `PacketCounter` asks once per metric type per poll for the region's `vpn_gateway` series,
adds each point whose interval ends after the last end it already consumed for that series (so no
point is counted twice across polls, even when the query windows overlap to catch late points), and
commits the new totals only when the whole poll succeeded. It must not return Monitoring types.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf import timestamp_pb2

from exporters.gcp_errors import PollBudget
from watchdog.model import PacketCount

PREFIX = "vpn.googleapis.com/network/"


@dataclass(frozen=True)
class _Metric:
    type: str
    direction: str
    fixed_status: str | None  # dropped_* series have no status label


METRICS = (
    _Metric(PREFIX + "sent_packets_count", "sent", None),
    _Metric(PREFIX + "received_packets_count", "received", None),
    _Metric(PREFIX + "dropped_sent_packets_count", "sent", "dropped"),
    _Metric(PREFIX + "dropped_received_packets_count", "received", "dropped"),
)

# Points show up to ~180 s late; re-reading that much of the past lets a late point still count once.
LATE_POINTS_SECONDS = 300.0

_SeriesKey = tuple[str, str, str, str]  # metric type, gateway id, tunnel, status
_CountKey = tuple[str, str, str]  # tunnel, direction, status


def time_series_filter(metric_type: str, region: str) -> str:
    return f'metric.type = "{metric_type}" AND resource.type = "vpn_gateway" AND resource.labels.region = "{region}"'


class PacketCounter:
    """Cumulative per-tunnel packet counts; `poll` is called from one poll at a time."""

    def __init__(self, project: str, region: str, *, clock: Callable[[], float] = time.time) -> None:
        self._project = project
        self._region = region
        self._clock = clock
        self.started_at = clock()
        self._lock = threading.Lock()
        self._since = {m.type: self.started_at for m in METRICS}
        self._consumed: dict[_SeriesKey, float] = {}
        self._totals: dict[_CountKey, float] = {}

    def poll(self, client: Any, budget: PollBudget, tunnels: Iterable[str]) -> tuple[PacketCount, ...]:
        """Query every metric once (following pages), then commit and return the known tunnels' counts."""
        with self._lock:
            now = self._clock()
            since = dict(self._since)
            consumed = dict(self._consumed)
            totals = dict(self._totals)
            for metric in METRICS:
                for series in self._list(client, budget, metric, since[metric.type], now):
                    self._add(series, metric, self._consumed, consumed, totals)
                since[metric.type] = max(since[metric.type], now - LATE_POINTS_SECONDS)
            self._since, self._consumed, self._totals = since, consumed, totals
            wanted = set(tunnels)
            return tuple(
                PacketCount(tunnel=t, direction=d, status=s, count=c)
                for (t, d, s), c in sorted(totals.items())
                if t in wanted
            )

    def _list(self, client: Any, budget: PollBudget, metric: _Metric, start: float, end: float) -> list[Any]:
        from google.cloud import monitoring_v3  # ~19 MB: only for an exporter with `monitoring: true`

        request = monitoring_v3.ListTimeSeriesRequest(
            name=f"projects/{self._project}",
            filter=time_series_filter(metric.type, self._region),
            interval=monitoring_v3.TimeInterval(start_time=_timestamp(start), end_time=_timestamp(end)),
            view=monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
        )
        series: list[Any] = []
        operation = f"monitoring.timeSeries.list {metric.type.removeprefix(PREFIX)} region {self._region}"
        while True:
            page = budget.call(
                operation,
                lambda left: _first_page(client.list_time_series(request=request, timeout=left, retry=None)),
            )
            pb = monitoring_v3.ListTimeSeriesResponse.pb(page)
            series.extend(pb.time_series)
            if not pb.next_page_token:
                return series
            request.page_token = pb.next_page_token

    def _add(
        self,
        series: Any,
        metric: _Metric,
        before: dict[_SeriesKey, float],
        consumed: dict[_SeriesKey, float],
        totals: dict[_CountKey, float],
    ) -> None:
        """Add the points of one series (chunk) that end after what the previous polls consumed.

        With view FULL the API pages by points, so one series can come back as several chunks
        (newest first) across pages: each chunk is compared with the cursor as it stood when the
        poll began (`before`), not with what an earlier chunk of this poll just moved it to.
        """
        tunnel = series.metric.labels.get("tunnel_name", "")
        if not tunnel:
            return
        status = metric.fixed_status or series.metric.labels.get("status", "") or "unknown"
        key = (metric.type, series.resource.labels.get("gateway_id", ""), tunnel, status)
        # Points that ended before the exporter started belong to nobody's counter.
        last = before.get(key, self.started_at)
        newest = consumed.get(key, last)
        added = 0.0
        for point in series.points:
            end = point.interval.end_time.seconds + point.interval.end_time.nanos / 1e9
            if end <= last:
                continue
            kind = point.value.WhichOneof("value")
            if kind == "int64_value":
                added += point.value.int64_value
            elif kind == "double_value":
                added += point.value.double_value
            else:
                continue
            newest = max(newest, end)
        consumed[key] = newest
        count_key = (tunnel, metric.direction, status)
        totals[count_key] = totals.get(count_key, 0.0) + added


def _first_page(pager: Any) -> Any:
    """The page the call already fetched; later pages are our own calls (own timeout and count)."""
    return next(iter(pager.pages))


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts
