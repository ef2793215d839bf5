"""Composition: the runners and the job specs one config asks for, shared by `watchdog run` (at start
and at every reload) and `watchdog probe --once`, so both build the same things the same way.

Beside the CLI entry points this is the core module that imports `exporters` and `probes` (through
their registries). It builds; it never schedules, starts or closes anything.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field

from exporters.registry import build_exporter
from probes.registry import build_probe, sweep_for
from watchdog.config import Config, ExporterConfig, IkeConfig, ProbeConfig
from watchdog.errors import WatchdogError
from watchdog.interfaces import IkeSource
from watchdog.runners import ExporterRunner, ProbeRunner, ProbeSweep
from watchdog.scheduler import JobSpec, spread

log = logging.getLogger(__name__)

AUDIT_DELAY = 5.0  # let the exporters' first polls go before the periodic audit's first read
ALERT_TICK = 1.0


@dataclass
class Built:
    """What `build_runners` made, and what it could not make (name -> why)."""

    exporters: dict[str, ExporterRunner] = field(default_factory=dict)
    probes: dict[str, ProbeRunner] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        for runner in self.exporters.values():
            runner.close(wait=0.5)


def exporter_key(config: Config, exporter: ExporterConfig) -> object:
    """What an exporter runner is built from: equal keys mean the running one can carry on."""
    prefixes = tuple(config.expected_min_paths().get(exporter.name, {}))
    return (exporter, prefixes, config.exporter_timeout(exporter))


def job_specs(config: Config) -> list[JobSpec]:
    """Every recurring job `config` asks for, with its timing (the scheduler's input)."""
    specs = [
        JobSpec(
            f"exporter:{e.name}",
            interval=config.exporter_interval(e),
            timeout=config.exporter_timeout(e),
            key=exporter_key(config, e),
        )
        for e in config.exporters
    ]
    groups = sweep_groups(config)
    swept = {p.name for members in groups.values() for p in members}
    probe_specs = [
        JobSpec(f"probe:{p.name}", interval=p.interval, timeout=p.timeout, key=p)
        for p in config.probes
        if p.name not in swept
    ]
    probe_specs += [
        JobSpec(job_id, interval=members[0].interval, timeout=members[0].timeout, key=members)
        for job_id, members in groups.items()
    ]
    specs += spread(probe_specs)
    if config.audit is not None:
        interval = config.audit.interval
        specs.append(JobSpec("audit", interval=interval, timeout=interval, key=config.audit, delay=AUDIT_DELAY))
    specs.append(JobSpec("alerts:tick", interval=ALERT_TICK, timeout=ALERT_TICK, key="tick", delay=ALERT_TICK))
    return specs


def sweep_groups(config: Config) -> dict[str, tuple[ProbeConfig, ...]]:
    """Job id -> the probes that run as one sweep: those of a type that can sweep (`probes.SWEEPS`)
    whose settings are equal in everything but name and target (netns, interval, timeout, source,
    DF, ... and IP version), in config order. The id names the settings, not the members, so a
    reload that adds a target restarts that one job under the same id."""
    groups: dict[str, list[ProbeConfig]] = {}
    for pc in config.probes:
        if sweep_for(pc) is None:
            continue
        settings = sorted(pc.model_dump(exclude={"name", "target"}).items())
        version = ipaddress.ip_address(getattr(pc, "target", "0.0.0.0")).version
        digest = hashlib.sha1(repr((version, settings)).encode(), usedforsecurity=False).hexdigest()[:12]
        groups.setdefault(f"sweep:{pc.type}:{digest}", []).append(pc)
    return {job_id: tuple(members) for job_id, members in groups.items()}


def build_sweeps(
    config: Config,
    runners: Mapping[str, ProbeRunner],
    on_sweep: Callable[[ProbeSweep], None] | None = None,
    only: Collection[str] | None = None,
) -> dict[str, ProbeSweep]:
    """The sweeps of `config` (only the job ids in `only` when given) over the given runners; built,
    not attached (`ProbeSweep.attach` makes them publish their members' statuses)."""
    sweeps: dict[str, ProbeSweep] = {}
    for job_id, members in sweep_groups(config).items():
        if only is not None and job_id not in only:
            continue
        sweep = sweep_for(members[0])
        group = [runners[p.name] for p in members if p.name in runners]
        if sweep is None or not group:
            continue
        first = members[0]
        sweeps[job_id] = ProbeSweep(group, sweep, netns=first.netns, timeout=first.timeout, on_sweep=on_sweep)
    return sweeps


def build_runners(
    config: Config,
    *,
    executor: Executor | None = None,
    exporters: Collection[str] | None = None,
    probes: Collection[str] | None = None,
    on_exporter_update: Callable[[ExporterRunner], None] | None = None,
    on_probe_result: Callable[[ProbeRunner], None] | None = None,
) -> Built:
    """Build the runners of `config` (only the named exporters / probes when given). A plug-in that
    cannot be built is left out and named in `errors`; callers decide what that means."""
    built = Built()
    expected = config.expected_min_paths()
    for ec in config.exporters:
        if exporters is not None and ec.name not in exporters:
            continue
        timeout = config.exporter_timeout(ec)
        try:
            exporter = build_exporter(ec, timeout=timeout)
        except WatchdogError as exc:
            built.errors[ec.name] = str(exc)
            continue
        built.exporters[ec.name] = ExporterRunner(
            exporter,
            interval=config.exporter_interval(ec),
            timeout=timeout,
            expected_prefixes=tuple(expected.get(ec.name, {})),
            executor=executor,
            on_update=on_exporter_update,
        )
    for pc in config.probes:
        if probes is not None and pc.name not in probes:
            continue
        try:
            built.probes[pc.name] = probe_runner(pc, on_probe_result)
        except WatchdogError as exc:
            built.errors[pc.name] = str(exc)
    return built


def probe_runner(pc: ProbeConfig, on_result: Callable[[ProbeRunner], None] | None = None) -> ProbeRunner:
    return ProbeRunner(build_probe(pc), on_result=on_result, netns=pc.netns, timeout=pc.timeout)


def build_sniffer(ike: IkeConfig | None) -> IkeSource | None:
    """The live IKE sniffer of an `ike:` section (built, not started), or None without one."""
    if ike is None:
        return None
    from probes.ike.sniffer import IkeSniffer  # lazy: capture code loads only when configured

    return IkeSniffer(list(ike.interfaces), list(ike.peers), ike.mtu, netns=ike.netns)
