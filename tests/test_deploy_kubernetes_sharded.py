"""deploy/kubernetes-sharded: the StatefulSet whose pod ordinal is the shard, built on the base manifests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from watchdog.cli import build_parser
from watchdog.config import parse_config
from watchdog.sharding import owned, parse_shard

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "deploy" / "kubernetes-sharded"
BASE = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text())
SET = yaml.safe_load((HERE / "statefulset.yaml").read_text())
(CONTAINER,) = SET["spec"]["template"]["spec"]["containers"]


def expand(args: list[str], env: dict[str, str]) -> list[str]:
    """Kubernetes' $(VAR) expansion of container args."""
    out = []
    for arg in args:
        for name, value in env.items():
            arg = arg.replace(f"$({name})", value)
        out.append(arg)
    return out


def test_the_ordinal_is_the_shard_and_n_is_the_replica_count() -> None:
    (env,) = CONTAINER["env"]
    assert env["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['apps.kubernetes.io/pod-index']"
    replicas = SET["spec"]["replicas"]
    assert replicas >= 2
    shards = []
    for ordinal in range(replicas):
        args = build_parser().parse_args(expand(CONTAINER["args"], {env["name"]: str(ordinal)}))
        shards.append(parse_shard(args.shard))
    assert [(s.index, s.total) for s in shards] == [(i, replicas) for i in range(replicas)]
    # Same config in every pod: the replicas own disjoint exporter sets covering them all.
    config = parse_config("exporters:\n" + "".join(f"  - {{name: site-{i}, type: frr}}\n" for i in range(20)))
    owners = [{e.name for e in owned(config, s).exporters} for s in shards]
    assert sum(len(o) for o in owners) == 20 and set().union(*owners) == {e.name for e in config.exporters}


def test_pods_are_the_base_deployments_pods_but_for_the_shard() -> None:
    base = BASE["spec"]["template"]
    mine = SET["spec"]["template"]
    assert mine["metadata"] == base["metadata"]
    assert SET["spec"]["selector"] == BASE["spec"]["selector"]
    pod_base: dict[str, Any] = dict(base["spec"])
    pod_mine: dict[str, Any] = dict(mine["spec"])
    (base_container,) = pod_base.pop("containers")
    (my_container,) = pod_mine.pop("containers")
    assert pod_mine == pod_base  # security context, service account, volumes: unchanged
    differs = {k for k in set(base_container) | set(my_container) if base_container.get(k) != my_container.get(k)}
    assert differs == {"args", "env"}
    assert my_container["args"][: len(base_container["args"])] == base_container["args"]


def test_kustomization_replaces_the_deployment_and_governs_the_pods() -> None:
    kustomization = yaml.safe_load((HERE / "kustomization.yaml").read_text())
    assert "../kubernetes" in kustomization["resources"]
    on_disk = sorted(p.name for p in HERE.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(r for r in kustomization["resources"] if r.endswith(".yaml")) == on_disk
    service = yaml.safe_load((HERE / "service-shards.yaml").read_text())
    assert service["spec"]["clusterIP"] == "None" and service["metadata"]["name"] == SET["spec"]["serviceName"]
    assert service["spec"]["selector"].items() <= SET["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_builds_it_without_the_deployment() -> None:
    built = subprocess.run(
        ["kubectl", "kustomize", str(HERE)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    kinds = [doc["kind"] for doc in yaml.safe_load_all(built) if doc]
    assert "StatefulSet" in kinds and "Deployment" not in kinds
    assert {"ServiceAccount", "ConfigMap", "ServiceMonitor", "PrometheusRule"} <= set(kinds)


def test_the_statefulset_meets_pod_security_restricted_too() -> None:
    from tests.pod_security import restricted_violations

    assert restricted_violations(SET["spec"]["template"]["spec"]) == []
