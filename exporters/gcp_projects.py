"""The targets of one `type: gcp` entry: every (project, region), with one credential for all.

Projects are the listed ones (`project` / `projects`) plus, with `project_labels`, the ACTIVE
projects whose labels match, asked of Cloud Resource Manager (`projects.list`, one call a page) at
every poll: a project that appears gets its targets, one that goes away loses them. A failed lookup
keeps the projects last found and counts an exporter error; the listed projects poll regardless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from exporters.fanout import FanoutExporter, Group, Target, waves
from exporters.gcp import GcpExporter
from exporters.gcp_client import GcpClient
from exporters.gcp_errors import PollBudget
from watchdog.config import GcpExporterConfig
from watchdog.errors import ExporterError
from watchdog.model import Scope, Snapshot

log = logging.getLogger(__name__)

RESOURCE_MANAGER = "https://cloudresourcemanager.googleapis.com"
DISCOVERY_TIMEOUT = 10.0


def label_filter(labels: tuple[tuple[str, str], ...]) -> str:
    """Resource Manager v1 `filter`: every label must match, and only ACTIVE projects."""
    terms = [f"labels.{key}:{value}" for key, value in labels]
    return " ".join([*terms, "lifecycleState:ACTIVE"])


class GcpTarget:
    """One (project, region): its own `GcpExporter`."""

    def __init__(self, exporter: GcpExporter) -> None:
        self.exporter = exporter
        self._scope = Scope("project", exporter.config.project, exporter.config.region)
        self._calls = 0

    @property
    def scope(self) -> Scope:
        return self._scope

    @property
    def group(self) -> str:
        return self._scope.id

    @property
    def calls(self) -> int:
        return self._calls

    def poll(self) -> Snapshot:
        self.exporter.last_budget = None
        try:
            return self.exporter.poll()
        finally:
            budget = self.exporter.last_budget
            self._calls = budget.calls if budget is not None else 0

    def close(self) -> None:
        self.exporter.close()


class GcpTargets:
    def __init__(self, config: GcpExporterConfig, *, timeout: float) -> None:
        self.config = config
        self.timeout = timeout
        self._share = timeout / waves([len(config.all_regions)] * max(1, len(config.listed_projects)), config.budget)
        self._targets: dict[tuple[str, str], GcpTarget] = {}
        self._found: tuple[str, ...] = ()
        self._groups: dict[str, Group] = {}
        # Finds the projects by labels, and holds the one credential every target uses.
        self._client = GcpClient(config)
        self.discovery_calls = 0
        # The listed projects' exporters are built now, not in the first poll: building one imports
        # the Compute client library (seconds), which would count against that poll's timeout.
        for project in config.listed_projects:
            for region in config.all_regions:
                self._targets[(project, region)] = self._build(project, region)

    def group(self, project: str) -> Group:
        if project not in self._groups:
            self._groups[project] = Group.of(self.config.budget)
        return self._groups[project]

    def targets(self) -> tuple[Sequence[Target], ExporterError | None]:
        error: ExporterError | None = None
        if self.config.project_labels:
            try:
                self._found = self._discover()
            except ExporterError as exc:
                error = ExporterError(exc.reason, f"finding projects by labels: {exc}", retry_after=exc.retry_after)
                log.warning("%s: %s (keeping %d projects found before)", self.config.name, error, len(self._found))
        projects = sorted(set(self.config.listed_projects) | set(self._found))
        wanted = [(p, r) for p in projects for r in self.config.all_regions]
        for key in [k for k in self._targets if k not in wanted]:
            self._targets.pop(key).close()
        for project, region in wanted:
            if (project, region) not in self._targets:
                self._targets[(project, region)] = self._build(project, region)
        return [self._targets[k] for k in wanted], error

    def _build(self, project: str, region: str) -> GcpTarget:
        child = self.config.model_copy(
            update={"project": project, "projects": (), "project_labels": (), "region": region, "regions": ()}
        )
        exporter = GcpExporter(child, timeout=self._share)
        exporter.client.share_credentials(self._client)
        rate = self.group(project).rate
        if rate is not None:
            exporter.pace = rate.wait
        return GcpTarget(exporter)

    def _discover(self) -> tuple[str, ...]:
        budget = PollBudget(min(self.timeout, DISCOVERY_TIMEOUT))
        base = (self.config.endpoint or RESOURCE_MANAGER).rstrip("/")
        found: list[str] = []
        token = ""
        try:
            while True:
                params: dict[str, Any] = {"filter": label_filter(self.config.project_labels)}
                if token:
                    params["pageToken"] = token
                page = self._client.rest(budget, "projects.list", f"{base}/v1/projects", params=params)
                for project in page.get("projects") or []:
                    if project.get("lifecycleState", "ACTIVE") == "ACTIVE" and project.get("projectId"):
                        found.append(str(project["projectId"]))
                token = str(page.get("nextPageToken") or "")
                if not token:
                    return tuple(sorted(set(found)))
        except (AttributeError, TypeError) as exc:
            raise ExporterError("malformed", f"projects.list: unexpected answer ({type(exc).__name__})") from None
        finally:
            self.discovery_calls += budget.calls

    def close(self) -> None:
        for target in self._targets.values():
            target.close()
        self._targets.clear()
        self._client.close()


class GcpFanout(FanoutExporter):
    """Counts the project lookups among the entry's API calls."""

    source: GcpTargets

    def poll(self) -> Snapshot:
        before = self.source.discovery_calls
        started = time.monotonic()
        snapshot = super().poll()
        log.debug("%s: %d targets in %.2fs", self.name, len(snapshot.targets), time.monotonic() - started)
        extra = self.source.discovery_calls - before
        if not extra:
            return snapshot
        from dataclasses import replace

        return replace(snapshot, api_calls=snapshot.api_calls + extra)


def build_gcp(config: GcpExporterConfig, *, timeout: float) -> FanoutExporter:
    source = GcpTargets(config, timeout=timeout)
    return GcpFanout(config.name, "gcp", source, source.group)
