"""Composition root of `watchdog audit` and of the daemon's periodic audit.

Reads the config, builds one inventory reader per `type: aws` / `type: gcp` exporter entry (the
adapters in `exporters/`), runs the pure rules and prints. Exit codes: 0 no error finding (or, with
--fix-ipsec, nothing to change / every change landed), 1 otherwise; API and config failures raise
`WatchdogError`, which the CLI maps to 2. It must not print secrets (the inventory holds none).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from watchdog.audit import report
from watchdog.audit.inventory import AwsAccount, GcpProject, Inventory
from watchdog.audit.ipsec_fix import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_SETTLE,
    DEFAULT_WAIT_TIMEOUT,
    TunnelEditor,
    apply_plan,
    plan,
)
from watchdog.audit.rules import audit
from watchdog.config import AwsExporterConfig, Config, GcpExporterConfig, load_config
from watchdog.errors import ConfigError

DEFAULT_MTU = 1500
MIN_AUDIT_TIMEOUT = 30.0
MAX_AUDIT_TIMEOUT = 120.0


def audit_timeout(config: Config, exporter: Any) -> float:
    """An audit reads more than a poll does: give it a few poll timeouts, bounded."""
    return max(MIN_AUDIT_TIMEOUT, min(4 * config.exporter_timeout(exporter), MAX_AUDIT_TIMEOUT))


@contextmanager
def readers(config: Config) -> Iterator[tuple[list[Any], list[Any]]]:
    """The AWS and GCP inventory readers of the config's exporters, closed on exit."""
    from exporters.gcp_inventory import GcpInventoryReader

    aws_configs = [e for e in config.exporters if isinstance(e, AwsExporterConfig)]
    gcp_configs = [e for e in config.exporters if isinstance(e, GcpExporterConfig)]
    if not aws_configs and not gcp_configs:
        raise ConfigError("audit: the config has no exporters of type aws or gcp to audit")
    aws: list[Any] = []
    gcp: list[Any] = []
    try:
        for a in aws_configs:
            aws.extend(aws_target_readers(a, timeout=audit_timeout(config, a)))
        for g in gcp_configs:
            gcp.extend(GcpInventoryReader(c, timeout=audit_timeout(config, g)) for c in gcp_target_configs(g))
        yield aws, gcp
    finally:
        for reader in aws + gcp:
            reader.close()


def aws_target_readers(config: AwsExporterConfig, *, timeout: float) -> list[Any]:
    """One reader per (account, region) of an entry, on that account's (assumed-role) credentials.
    With several targets each is named `name/account/region`, which every finding's object starts with."""
    from exporters.aws_accounts import Account
    from exporters.aws_inventory import AwsInventoryReader

    roles = config.assume_roles or (None,)
    many = len(roles) * len(config.all_regions) > 1
    readers: list[Any] = []
    for role in roles:
        account = Account(config, role, timeout=timeout)
        for region in config.all_regions:
            name = f"{config.name}/{account.key}/{region}" if many else config.name
            child = config.model_copy(update={"name": name, "region": region, "regions": (), "assume_roles": ()})
            readers.append(AwsInventoryReader(child, timeout=timeout, session=account.session(region), account=account))
    return readers


def gcp_target_configs(config: GcpExporterConfig) -> list[GcpExporterConfig]:
    """The entry's (project, region) targets as single-target configs; projects found by labels are
    looked up once. With several targets each is named `name/project/region`."""
    from exporters.gcp_projects import GcpTargets

    source = GcpTargets(config, timeout=MIN_AUDIT_TIMEOUT)
    try:
        targets, error = source.targets()
        if error is not None and not targets:
            raise error
        found = [(t.scope.id, t.scope.region) for t in targets]
    finally:
        source.close()
    many = len(found) > 1
    return [
        config.model_copy(
            update={
                "name": f"{config.name}/{project}/{region}" if many else config.name,
                "project": project,
                "projects": (),
                "project_labels": (),
                "region": region,
                "regions": (),
            }
        )
        for project, region in found
    ]


def read_inventory(config: Config, aws: list[Any], gcp: list[Any]) -> Inventory:
    accounts: list[AwsAccount] = [r.read() for r in aws]
    projects: list[GcpProject] = [r.read() for r in gcp]
    mtu = config.ike.mtu if config.ike is not None else DEFAULT_MTU
    return Inventory(aws=tuple(accounts), gcp=tuple(projects), mtu=mtu)


def periodic_audit(config: Config) -> Counter[tuple[str, str]]:
    """One audit for the daemon: findings counted by (rule, severity) for `audit_findings`.

    Blocking (run it in a worker thread); raises WatchdogError when an API read fails.
    """
    with readers(config) as (aws, gcp):
        return audit(read_inventory(config, aws, gcp)).counts()


def audit_main(
    config_path: str | None,
    *,
    fmt: str,
    fix_ipsec: bool,
    apply: bool,
    out: TextIO | None = None,
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    settle: float = DEFAULT_SETTLE,
) -> int:
    out = out or sys.stdout
    config = load_config(config_path)
    with readers(config) as (aws, gcp):
        inventory = read_inventory(config, aws, gcp)
        if not fix_ipsec:
            result = audit(inventory)
            print(report.audit_json(result) if fmt == "json" else report.audit_text(result), file=out)
            return 1 if result.has_errors else 0
        changes = plan(inventory)
        if not apply:
            print(report.plan_json(changes) if fmt == "json" else report.plan_text(changes), file=out)
            return 1 if any(c.needed for c in changes) else 0
        editors: dict[str, TunnelEditor] = {r.name: r for r in aws}
        # A tunnel's status is worth reading as often as its exporter would poll it (the lab: 2 s).
        intervals = [e.interval or config.interval for e in config.exporters if e.type == "aws"]
        poll_interval = min([poll_interval, *intervals])
        outcome = apply_plan(changes, editors, wait_timeout=wait_timeout, poll_interval=poll_interval, settle=settle)
        print(report.plan_json(changes, outcome) if fmt == "json" else report.plan_text(changes, outcome), file=out)
        return 0 if outcome.ok else 1
