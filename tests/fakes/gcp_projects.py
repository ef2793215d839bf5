"""Several GCP projects and regions behind one endpoint, and Cloud Resource Manager's projects.list.

`MultiProjectGcp(front)` takes a started `FakeGcp` (the endpoint the exporter is given) and adds
(project, region) topologies: `add(project, region, labels=...)` returns a `FakeGcp` (never started,
its default topology loaded) whose Compute paths the front answers from then on; mutate it like any
fake. `GET /v1/projects?filter=labels.K:V ...` answers the projects whose labels match every term
(`remove(project)` takes one away). Faults and recorded requests stay the front's.
"""

from __future__ import annotations

import re
from typing import Any

from deploy.lab.emulators.gcp import FakeGcp, FakeRequest


class MultiProjectGcp:
    def __init__(self, front: FakeGcp) -> None:
        self.front = front
        self.labels: dict[str, dict[str, str]] = {}
        self.filters: list[str] = []
        front.route("GET", r"^/v1/projects$", self._projects)

    def add(self, project: str, region: str, *, labels: dict[str, str] | None = None) -> FakeGcp:
        fake = FakeGcp(project=project, region=region)
        self.front.route(
            "GET", rf"^/compute/v1/projects/{re.escape(project)}/regions/{re.escape(region)}/", fake._dispatch
        )
        self.labels.setdefault(project, {}).update(labels or {})
        return fake

    def remove(self, project: str) -> None:
        self.labels.pop(project, None)

    def _projects(self, request: FakeRequest) -> tuple[int, Any]:
        text = (request.query.get("filter") or [""])[0]
        self.filters.append(text)
        wanted = dict(term.split(":", 1) for term in text.split() if ":" in term)
        active = wanted.pop("lifecycleState", "ACTIVE")
        labels = {k.removeprefix("labels."): v for k, v in wanted.items()}
        found = [
            {"projectId": p, "lifecycleState": active, "labels": have}
            for p, have in sorted(self.labels.items())
            if all(have.get(k) == v for k, v in labels.items())
        ]
        return 200, {"projects": found}
