"""Several AWS accounts on one moto server, reached the way the watchdog reaches them: STS AssumeRole.

moto's AssumeRole accepts any role ARN and hands out credentials that moto itself maps to the
ARN's account, so each account has its own EC2 state behind the same endpoint. `account(aws, id)`
is a `MotoAws` view of one account: every builder of the fake (`build_lab`, `set_telemetry`, ...)
then acts in that account; `account_of(request)` tells which account a recorded request spoke as
(for `aws.fail(..., where=...)`). `role_arn(id)` is the ARN the exporter config names.
"""

from __future__ import annotations

import copy
from typing import Any

import boto3
from moto.backends import get_backend
from moto.iam.models import get_account_id_from

from deploy.lab.emulators.aws import TEST_ACCESS_KEY, TEST_SECRET_KEY, MotoAws, RecordedRequest

ROLE_NAME = "vpn-watchdog-read"


def role_arn(account_id: str) -> str:
    return f"arn:aws:iam::{account_id}:role/{ROLE_NAME}"


def account_of(request: RecordedRequest) -> str:
    return get_account_id_from(request.access_key)


def in_account(account_id: str) -> Any:
    """A `where=` predicate for `MotoAws.fail`: only requests signed with that account's credentials."""
    return lambda request: account_of(request) == account_id


def account(aws: MotoAws, account_id: str) -> MotoAws:
    """`aws` acting in `account_id` (shares the server, its faults, records and address counter)."""
    sts = boto3.session.Session().client(
        "sts",
        region_name=aws.region,
        endpoint_url=aws.endpoint_url,
        aws_access_key_id=TEST_ACCESS_KEY,
        aws_secret_access_key=TEST_SECRET_KEY,
    )
    given = sts.assume_role(RoleArn=role_arn(account_id), RoleSessionName="test-setup")["Credentials"]
    sts.close()
    view = copy.copy(aws)  # same server and state; only how it signs and where it looks differ
    clients: dict[str, Any] = {}

    def client(region: str | None = None) -> Any:
        region = region or aws.region
        if region not in clients:
            clients[region] = boto3.session.Session().client(
                "ec2",
                region_name=region,
                endpoint_url=aws.endpoint_url,
                aws_access_key_id=given["AccessKeyId"],
                aws_secret_access_key=given["SecretAccessKey"],
                aws_session_token=given["SessionToken"],
            )
        return clients[region]

    def backend(region: str | None = None) -> Any:
        return get_backend("ec2")[account_id][region or aws.region]

    view.client = client  # type: ignore[method-assign]
    view.backend = backend  # type: ignore[method-assign]
    view._next_ips = aws._next_ips  # type: ignore[method-assign]  # addresses stay unique across accounts
    return view
