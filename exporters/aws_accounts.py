"""The targets of one `type: aws` entry: every (account, region), each account's credentials.

An account is either the base credentials' own (default chain or `profile`; its id learnt once with
STS GetCallerIdentity) or one of `assume_roles`: the base credentials call STS AssumeRole and the
temporary credentials are renewed before they expire (15 minutes ahead, by the poll itself, so a
role that can no longer be assumed is that poll's clean `auth` error; botocore's own refresh is the
fallback for a poll that spans the window). Credentials are held by botocore only: never logged,
returned or put in a message. A role that cannot be assumed fails that account's targets only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import boto3
import botocore.session
from botocore.credentials import DeferredRefreshableCredentials

from exporters.aws import AwsExporter
from exporters.aws_client import AwsClient, base_session, shared_loader
from exporters.fanout import FanoutExporter, Group, Target, waves
from watchdog.config import AssumeRoleConfig, AwsExporterConfig
from watchdog.errors import ExporterError
from watchdog.model import Scope, Snapshot

log = logging.getLogger(__name__)

IDENTITY_RETRY = 300.0  # seconds between GetCallerIdentity attempts while the account id is unknown
RENEW_AHEAD = 15 * 60  # renew assumed-role credentials this long before they expire (botocore's advisory window)
SESSION_SECONDS = 3600


class _RoleCredentials(DeferredRefreshableCredentials):  # type: ignore[misc]
    """botocore's refreshable credentials, which the poll can also renew itself (`prime`)."""

    def prime(self, metadata: dict[str, Any]) -> None:
        with self._refresh_lock:
            self._set_from_data(metadata)
            self._frozen_credentials = None
            self._publish_refresh()


class Account:
    """One account's credentials and STS calls (shared by its regions' targets; thread-safe)."""

    def __init__(self, config: AwsExporterConfig, role: AssumeRoleConfig | None, *, timeout: float) -> None:
        self.role = role
        self.id = role.account if role is not None else ""
        self.key = self.id or "default"
        self.calls = 0  # STS calls, cumulative
        self._config = config
        self._lock = threading.Lock()
        self._identity_after = 0.0
        self._timeout = timeout
        self._sts_pair: tuple[AwsClient, Any] | None = None  # built on first use (clients cost ~0.1 s each)
        self.pace: Any = None
        self.build_lock = threading.Lock()  # botocore sessions must not build clients concurrently
        self._credentials: _RoleCredentials | None = None
        self._boto: Any = None
        if role is not None:
            self._credentials = _RoleCredentials(refresh_using=self._assume, method="sts-assume-role")
            core = botocore.session.Session()
            core._credentials = self._credentials  # the documented way to hand botocore refreshable credentials
            core.register_component("data_loader", shared_loader())
            self._boto = core

    @property
    def _sts(self) -> AwsClient:
        return self._sts_and_client()[0]

    def _sts_and_client(self) -> tuple[AwsClient, Any]:
        if self._sts_pair is None:
            config = self._config
            with self.build_lock:
                client = AwsClient(
                    config.name,
                    config.region,
                    profile=config.profile,
                    endpoint_url=config.sts_endpoint_url or config.endpoint_url,
                    timeout=self._timeout,  # the base credentials: they are what assumes the role
                    credentials_file=config.credentials_file,
                )
                client.pace = self.pace
                self._sts_pair = (client, client.client("sts"))
        return self._sts_pair

    def session(self, region: str) -> Any:
        """The boto3 session for clients of `region` (None: the client builds its own on the base chain)."""
        if self._boto is None:
            return None
        return boto3.session.Session(botocore_session=self._boto, region_name=region)

    def ensure(self) -> int:
        """Before a poll: assumed-role credentials present and not about to expire; the account id
        known. Returns the STS calls it made (the poll's own, for its count)."""
        with self._lock:
            before = self.calls
            if self._credentials is not None and self._credentials.refresh_needed(RENEW_AHEAD):
                self._credentials.prime(self._assume())
            elif self.role is None and not self.id and time.monotonic() >= self._identity_after:
                self._identify()
            return self.calls - before

    def _assume(self) -> dict[str, Any]:
        role = self.role
        assert role is not None
        params: dict[str, Any] = {
            "RoleArn": role.role_arn,
            "RoleSessionName": role.session_name,
            "DurationSeconds": SESSION_SECONDS,
        }
        if role.external_id:
            params["ExternalId"] = role.external_id
        self.calls += 1
        try:
            sts, client = self._sts_and_client()
            answer = sts.call("AssumeRole", client.assume_role, **params)
        except ExporterError as exc:
            raise ExporterError(
                exc.reason, f"cannot assume {role.role_arn}: {exc}", retry_after=exc.retry_after
            ) from None
        try:
            given = answer["Credentials"]
            expiry = given["Expiration"]
            return {
                "access_key": given["AccessKeyId"],
                "secret_key": given["SecretAccessKey"],
                "token": given["SessionToken"],
                "expiry_time": expiry.isoformat() if hasattr(expiry, "isoformat") else str(expiry),
            }
        except (KeyError, TypeError):
            raise ExporterError("malformed", f"AssumeRole of {role.role_arn} answered without credentials") from None

    def _identify(self) -> None:
        self.calls += 1
        try:
            sts, client = self._sts_and_client()
            answer = sts.call("GetCallerIdentity", client.get_caller_identity)
            self.id = str(answer["Account"])
        except (ExporterError, KeyError, TypeError) as exc:
            self._identity_after = time.monotonic() + IDENTITY_RETRY
            log.info("%s: the account id is unknown for now (GetCallerIdentity: %s)", self._config.name, exc)

    def close(self) -> None:
        if self._sts_pair is not None:
            self._sts_pair[0].close()


class AwsTarget:
    """One (account, region): its own `AwsExporter` on the account's credentials, built at its first
    poll (in the poll's worker thread: 60 targets' clients would hold up start-up for seconds)."""

    def __init__(self, account: Account, config: AwsExporterConfig, region: str, timeout: float) -> None:
        self.account = account
        self.region = region
        self._config = config
        self._timeout = timeout
        self._exporter: AwsExporter | None = None
        self._calls = 0

    @property
    def exporter(self) -> AwsExporter:
        if self._exporter is None:
            with self.account.build_lock:
                exporter = AwsExporter(self._config, timeout=self._timeout, session=self.account.session(self.region))
            exporter.client.pace = self.account.pace
            self._exporter = exporter
        return self._exporter

    @property
    def scope(self) -> Scope:
        return Scope("account", self.account.id, self.region)

    @property
    def group(self) -> str:
        return self.account.key

    @property
    def calls(self) -> int:
        return self._calls

    def poll(self) -> Snapshot:
        exporter = self.exporter
        exporter.client.calls = 0
        try:
            sts = self.account.ensure()
        except ExporterError:
            self._calls = 1  # the AssumeRole that failed
            raise
        try:
            return exporter.poll()
        finally:
            self._calls = exporter.client.calls + sts

    def close(self) -> None:
        if self._exporter is not None:
            self._exporter.close()


class AwsTargets:
    """The fixed targets of one entry: every account x every region."""

    def __init__(self, config: AwsExporterConfig, *, timeout: float) -> None:
        # an unknown profile or credentials file: a config error now
        base_session(config.name, config.profile, config.region, config.credentials_file)
        roles: Sequence[AssumeRoleConfig | None] = config.assume_roles or (None,)
        self.accounts = [Account(config, role, timeout=timeout) for role in roles]
        regions = config.all_regions
        share = timeout / waves([len(regions)] * len(self.accounts), config.budget)
        self.groups = {account.key: Group.of(config.budget) for account in self.accounts}
        self._targets: list[Target] = []
        for account in self.accounts:
            rate = self.groups[account.key].rate
            account.pace = rate.wait if rate is not None else None
            for region in regions:
                child = config.model_copy(update={"region": region, "regions": (), "assume_roles": ()})
                self._targets.append(AwsTarget(account, child, region, share))

    def targets(self) -> tuple[Sequence[Target], ExporterError | None]:
        return self._targets, None

    def close(self) -> None:
        for target in self._targets:
            target.close()
        for account in self.accounts:
            account.close()


def build_aws(config: AwsExporterConfig, *, timeout: float) -> FanoutExporter:
    source = AwsTargets(config, timeout=timeout)
    return FanoutExporter(config.name, "aws", source, source.groups.__getitem__)
