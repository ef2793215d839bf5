"""One `type: aws` entry over several accounts (moto's STS AssumeRole) and regions: labels, budgets, denials."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from moto.sts.models import sts_backends

from deploy.lab.emulators.aws import MotoAws
from exporters import aws_accounts
from exporters.registry import build_exporter
from tests.fakes.aws_accounts import account, account_of, in_account, role_arn
from watchdog.config import AwsExporterConfig
from watchdog.errors import ExporterError
from watchdog.interfaces import Exporter
from watchdog.metrics import render_page
from watchdog.model import Scope
from watchdog.runners import ExporterRunner, WatchdogState

PROD, STAGING = "111111111111", "222222222222"
REGIONS = ("us-east-1", "us-west-2")


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoAws]:
    with MotoAws(region=REGIONS[0]) as server:
        yield server


@pytest.fixture(scope="module")
def four(moto_server: MotoAws) -> dict[tuple[str, str], list[str]]:
    """One VPN connection (2 tunnels) in each account x region, built once for the module (moto
    builds a new account's backends slowly); tests that change it put it back."""
    with pytest.MonkeyPatch.context() as patch:
        moto_server.reset()
        moto_server.use_test_credentials(patch)
        made = {}
        for acct in (PROD, STAGING):
            view = account(moto_server, acct)
            for region in REGIONS:
                lab = view.build_lab(1, region=region)
                made[(acct, region)] = list(lab.connections[0].outside_ips)
    return made


@pytest.fixture
def aws(moto_server: MotoAws, four: dict[tuple[str, str], list[str]], monkeypatch: pytest.MonkeyPatch) -> MotoAws:
    moto_server.clear_faults()
    moto_server.clear_requests()
    moto_server.use_test_credentials(monkeypatch)
    return moto_server


def entry(aws: MotoAws, **extra: Any) -> AwsExporterConfig:
    fields: dict[str, Any] = {
        "name": "aws-prod",
        "type": "aws",
        "regions": list(REGIONS),
        "assume_roles": [{"role_arn": role_arn(PROD)}, {"role_arn": role_arn(STAGING), "external_id": "ops-7f3a"}],
        "endpoint_url": aws.endpoint_url,
    }
    fields.update(extra)
    return AwsExporterConfig.model_validate(fields)


OTHER_REGION = "eu-west-1"  # for tests that build more: the four above stay as they are


def poll(exporter: Exporter) -> Any:
    return exporter.poll()


def test_every_object_says_its_account_and_region(aws: MotoAws, four: dict[tuple[str, str], list[str]]) -> None:
    made = four
    exporter = build_exporter(entry(aws), timeout=10.0)
    try:
        snapshot = poll(exporter)
    finally:
        exporter.close()
    seen = {
        (t.scope.id, t.scope.region): sorted(t.name for t in snapshot.tunnels if t.scope == t.scope)
        for t in snapshot.tunnels
        if t.scope
    }
    by_scope: dict[tuple[str, str], list[str]] = {}
    for t in snapshot.tunnels:
        assert t.scope is not None and t.scope.kind == "account"
        by_scope.setdefault((t.scope.id, t.scope.region), []).append(t.name)
    assert {k: sorted(v) for k, v in by_scope.items()} == {k: sorted(v) for k, v in made.items()}
    assert seen.keys() == made.keys()
    assert all(s.scope is not None for s in snapshot.bgp_sessions)
    assert [(t.scope.id, t.scope.region, t.up) for t in snapshot.targets] == [
        (a, r, True) for a in (PROD, STAGING) for r in REGIONS
    ]
    # Each account assumed once, with its external id, and its EC2 calls signed as that account.
    assumed = aws.calls("AssumeRole")
    assert sorted(r.params["RoleArn"] for r in assumed) == [role_arn(PROD), role_arn(STAGING)]
    assert {r.params.get("ExternalId") for r in assumed} == {None, "ops-7f3a"}
    assert {r.params["RoleSessionName"] for r in assumed} == {"vpn-watchdog"}
    describes = aws.calls("DescribeVpnConnections")
    assert sorted((account_of(r), r.region) for r in describes) == sorted(made)
    # API cost: one single-target poll's calls per (account, region), plus one AssumeRole per account.
    assert snapshot.api_calls == len(aws.calls()) == 4 * 5 + 2


def test_series_carry_account_and_region_labels(aws: MotoAws, four: dict[tuple[str, str], list[str]]) -> None:
    made = four
    runner = ExporterRunner(build_exporter(entry(aws), timeout=10.0), interval=30, timeout=10)
    try:
        asyncio.run(runner.poll_once())
    finally:
        runner.close()
    page = render_page(WatchdogState(exporters={"aws-prod": runner})).decode()
    ip = made[(STAGING, "us-west-2")][1]
    assert f'account="{STAGING}",cloud="aws",connection=' in page
    line = next(x for x in page.splitlines() if x.startswith("vpn_watchdog_tunnel_up{") and f'tunnel="{ip}"' in x)
    assert f'account="{STAGING}"' in line and 'region="us-west-2"' in line and line.endswith(" 1.0")
    for acct in (PROD, STAGING):
        for region in REGIONS:
            labels = f'account="{acct}",cloud="aws",exporter="aws-prod",region="{region}"'
            assert f"vpn_watchdog_exporter_target_up{{{labels}}} 1.0" in page
            assert (
                f'vpn_watchdog_exporter_target_api_calls_total{{account="{acct}",cloud="aws",exporter="aws-prod",region="{region}"}}'
                in page
            )
    assert 'vpn_watchdog_exporter_up{cloud="aws",exporter="aws-prod"} 1.0' in page


def test_a_role_that_cannot_be_assumed_downs_only_that_account(
    aws: MotoAws, four: dict[tuple[str, str], list[str]]
) -> None:
    made = four
    aws.fail(
        "AssumeRole",
        status=403,
        code="AccessDenied",
        message="not authorized to assume",
        where=lambda r: r.params.get("RoleArn") == role_arn(STAGING),
    )
    runner = ExporterRunner(build_exporter(entry(aws), timeout=10.0), interval=30, timeout=10)
    try:
        asyncio.run(runner.poll_once())
    finally:
        runner.close()
    health = runner.health
    assert health.up  # the entry is up: the other account polled
    down = {(t.scope.id, t.scope.region): t for t in health.targets if not t.up}
    assert set(down) == {(STAGING, r) for r in REGIONS}
    assert all(t.last_error.startswith("auth: cannot assume " + role_arn(STAGING)) for t in down.values())
    assert health.errors["auth"] == 2
    tunnels = {t.name for t in runner.snapshot.tunnels} if runner.snapshot else set()
    assert tunnels == set(made[(PROD, REGIONS[0])] + made[(PROD, REGIONS[1])])
    page = render_page(WatchdogState(exporters={"aws-prod": runner})).decode()
    staging = f'account="{STAGING}",cloud="aws",exporter="aws-prod"'
    assert f'vpn_watchdog_exporter_target_errors_total{{{staging},reason="auth",region="us-east-1"}} 1.0' in page
    assert f'vpn_watchdog_exporter_target_up{{{staging},region="us-east-1"}} 0.0' in page
    prod = f'account="{PROD}",cloud="aws",exporter="aws-prod"'
    assert f'vpn_watchdog_exporter_target_up{{{prod},region="us-east-1"}} 1.0' in page


def test_one_accounts_throttling_keeps_its_last_values_and_spares_the_others(
    aws: MotoAws, four: dict[tuple[str, str], list[str]]
) -> None:
    made = four
    exporter = build_exporter(entry(aws), timeout=10.0)
    try:
        first = poll(exporter)
        prod = account(aws, PROD)
        staging = account(aws, STAGING)
        conn_prod = prod.backend(REGIONS[0]).vpn_connections
        vpn_prod = next(iter(conn_prod))
        vpn_staging = next(iter(staging.backend(REGIONS[0]).vpn_connections))
        prod.set_telemetry(vpn_prod, made[(PROD, REGIONS[0])][0], status="DOWN", region=REGIONS[0])
        staging.set_telemetry(vpn_staging, made[(STAGING, REGIONS[0])][0], status="DOWN", region=REGIONS[0])
        aws.fail("DescribeVpnConnections", status=503, code="RequestLimitExceeded", where=in_account(STAGING))
        second = poll(exporter)
    finally:
        exporter.close()
        prod.set_telemetry(vpn_prod, made[(PROD, REGIONS[0])][0], status="UP", region=REGIONS[0])
        staging.set_telemetry(vpn_staging, made[(STAGING, REGIONS[0])][0], status="UP", region=REGIONS[0])
    status = {(t.scope.id, t.scope.region): t for t in second.targets}
    assert [k for k, t in status.items() if not t.up] == [(STAGING, r) for r in REGIONS]
    assert all(t.last_error.startswith("throttled") for t in status.values() if not t.up)
    up = {t.name: t.up for t in second.tunnels}
    assert up[made[(PROD, REGIONS[0])][0]] is False  # the fresh account shows the change
    assert up[made[(STAGING, REGIONS[0])][0]] is True  # the throttled one keeps its last known value
    assert len(second.tunnels) == len(first.tunnels) == 8


def test_every_account_failing_fails_the_poll_with_the_reason(aws: MotoAws) -> None:
    aws.fail("AssumeRole", status=403, code="AccessDenied")
    exporter = build_exporter(entry(aws), timeout=10.0)
    try:
        with pytest.raises(ExporterError) as raised:
            poll(exporter)
    finally:
        exporter.close()
    assert raised.value.reason == "auth" and "every target failed" in str(raised.value)
    assert len(raised.value.targets) == 4 and not any(t.up for t in raised.value.targets)  # type: ignore[attr-defined]


def test_credentials_renew_before_they_expire_and_are_never_logged(
    aws: MotoAws, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(aws_accounts, "RENEW_AHEAD", 2 * aws_accounts.SESSION_SECONDS)  # always "about to expire"
    caplog.set_level(logging.DEBUG)
    exporter = build_exporter(entry(aws, regions=[REGIONS[0]]), timeout=10.0)
    try:
        poll(exporter)
        keys_first = {r.access_key for r in aws.calls("DescribeVpnConnections")}
        aws.clear_requests()
        poll(exporter)
        keys_second = {r.access_key for r in aws.calls("DescribeVpnConnections")}
    finally:
        exporter.close()
    assert len(aws.calls("AssumeRole")) == 2  # renewed, once per account
    assert keys_first.isdisjoint(keys_second)  # and the new credentials are the ones used
    secrets = [role.secret_access_key for acct in (PROD, STAGING) for role in sts_backends[acct]["aws"].assumed_roles]
    secrets += [role.session_token for acct in (PROD, STAGING) for role in sts_backends[acct]["aws"].assumed_roles]
    assert secrets and caplog.records
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert not [s for s in secrets if s in text]


def test_tags_select_connections(aws: MotoAws) -> None:
    view = account(aws, PROD)
    lab = view.build_lab(2, region=OTHER_REGION)
    client = view.client(OTHER_REGION)
    client.create_tags(Resources=[lab.connections[0].vpn_id], Tags=[{"Key": "env", "Value": "prod"}])
    client.create_tags(Resources=[lab.connections[1].vpn_id], Tags=[{"Key": "env", "Value": "dev"}])
    config = entry(aws, regions=[OTHER_REGION], assume_roles=[{"role_arn": role_arn(PROD)}], tags={"env": "prod"})
    exporter = build_exporter(config, timeout=10.0)
    try:
        snapshot = poll(exporter)
    finally:
        exporter.close()
    assert {t.connection for t in snapshot.tunnels} == {lab.connections[0].vpn_id}
    (describe,) = aws.calls("DescribeVpnConnections")
    assert describe.params["Filter.1.Name"] == "tag:env" and describe.params["Filter.1.Value.1"] == "prod"


def test_calls_per_second_budget_paces_an_account(aws: MotoAws) -> None:
    import time

    config = entry(aws, assume_roles=[{"role_arn": role_arn(PROD)}], budget={"calls_per_second": 5})
    exporter = build_exporter(config, timeout=20.0)
    started = time.monotonic()
    try:
        snapshot = poll(exporter)
    finally:
        exporter.close()
    elapsed = time.monotonic() - started
    calls = snapshot.api_calls  # 2 regions x 5 + 1 AssumeRole = 11: a burst of 5, then 5 a second
    assert calls == 11 and elapsed >= (calls - 5) / 5 - 0.2
    assert all(t.up for t in snapshot.targets)


def test_default_credentials_account_is_learnt_once(aws: MotoAws) -> None:
    aws.build_lab(1, region=REGIONS[0])
    aws.clear_requests()
    exporter = build_exporter(
        AwsExporterConfig(name="a", type="aws", region=REGIONS[0], endpoint_url=aws.endpoint_url), timeout=5.0
    )
    try:
        first, second = poll(exporter), poll(exporter)
    finally:
        exporter.close()
    assert {t.scope for t in second.tunnels} == {Scope("account", "123456789012", REGIONS[0])}
    assert len(aws.calls("GetCallerIdentity")) == 1 and first.api_calls == second.api_calls + 1


def test_audit_reads_every_account_and_region_and_findings_say_which(
    aws: MotoAws, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from watchdog.cli import main

    config = tmp_path / "config.yaml"
    config.write_text(
        "exporters:\n"
        "  - name: aws-prod\n    type: aws\n"
        f"    regions: [{', '.join(REGIONS)}]\n"
        f"    assume_roles: [{{role_arn: '{role_arn(PROD)}'}}, {{role_arn: '{role_arn(STAGING)}'}}]\n"
        f"    endpoint_url: {aws.endpoint_url}\n"
    )
    assert main(["audit", "-c", str(config), "--format", "json"]) == 1  # moto's default tunnel options
    findings = json.loads(capsys.readouterr().out)["findings"]
    where = {f["object"].split(":", 1)[0] for f in findings}
    assert where == {f"aws-prod/{a}/{r}" for a in (PROD, STAGING) for r in REGIONS}
    assert sorted(r.params["RoleArn"] for r in aws.calls("AssumeRole")) == [role_arn(PROD), role_arn(STAGING)]


def test_an_unknown_profile_is_a_config_error_when_the_entry_is_built(aws: MotoAws) -> None:
    from watchdog.errors import ConfigError

    with pytest.raises(ConfigError, match="'nosuch' is not in the shared config"):
        build_exporter(entry(aws, profile="nosuch"), timeout=5.0)


def test_a_throttled_account_is_left_alone_for_as_long_as_its_retry_after_says(
    aws: MotoAws, four: dict[tuple[str, str], list[str]]
) -> None:
    aws.fail(
        "DescribeVpnConnections",
        status=503,
        code="RequestLimitExceeded",
        headers={"Retry-After": "120"},
        where=in_account(STAGING),
    )
    runner = ExporterRunner(build_exporter(entry(aws), timeout=10.0), interval=30, timeout=10)
    try:
        asyncio.run(runner.poll_once())
        assert runner.health.errors["throttled"] == 2  # staging's two regions
        aws.clear_requests()
        asyncio.run(runner.poll_once())
    finally:
        runner.close()
    # The second poll asked staging nothing, counted nothing new, and still shows it down.
    assert {account_of(r) for r in aws.calls("DescribeVpnConnections")} == {PROD}
    assert runner.health.errors["throttled"] == 2 and runner.health.up
    down = [(t.scope.id, t.polled) for t in runner.health.targets if not t.up]
    assert down == [(STAGING, False), (STAGING, False)]
    assert all(t.last_error.startswith("throttled") for t in runner.health.targets if not t.up)
