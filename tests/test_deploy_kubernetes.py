"""deploy/kubernetes: the manifests reference each other correctly and run the real CLI and config.

Every cross-reference a cluster would only reveal at apply/run time is followed here: selectors and
labels, named ports, the ConfigMap name, key and mount path against the container's `-c`, the
ServiceMonitor against the Service, the uid against the image, and the PrometheusRule against the
rule files it is generated from.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.pod_security import baseline_violations, restricted_violations
from watchdog.cli import build_parser
from watchdog.config import parse_config, parse_host_port

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "deploy" / "kubernetes"
DESIGN_ALERTS = (
    "VpnTunnelDown",
    "VpnTunnelAsymmetric",
    "VpnBgpSessionDown",
    "VpnRedundancyDegraded",
    "VpnPathFailover",
    "VpnPrefixUnreachable",
    "VpnExpectedPrefixMissing",
    "VpnProbeFailing",
    "VpnIkeFragmentation",
    "VpnWatchdogExporterStale",
    "VpnRekeyFailing",
)


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("k8s_generate", HERE / "generate_prometheusrule.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


GENERATE = load_generator()


def manifests() -> dict[str, dict[str, Any]]:
    """kind -> the one object of that kind (every file holds one object)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(HERE.glob("*.yaml")):
        if path.name == "kustomization.yaml" or (path.name == "prometheusrule.yaml" and not path.exists()):
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["kind"] not in found, f"two {doc['kind']} objects"
            found[doc["kind"]] = doc
    return found


OBJECTS = manifests()
DEPLOYMENT = OBJECTS["Deployment"]
POD = DEPLOYMENT["spec"]["template"]["spec"]
(CONTAINER,) = POD["containers"]
SERVICE = OBJECTS["Service"]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def config_text() -> str:
    """The config file the container reads: follow -c through the volume mount to the ConfigMap key."""
    args = build_parser().parse_args(CONTAINER["args"])
    config_path = Path(args.config)
    (mount,) = [m for m in CONTAINER["volumeMounts"] if Path(m["mountPath"]) == config_path.parent]
    (volume,) = [v for v in POD["volumes"] if v["name"] == mount["name"]]
    name = volume["configMap"]["name"]
    configmap = OBJECTS["ConfigMap"]
    assert configmap["metadata"]["name"] == name, f"the Deployment mounts ConfigMap {name!r}, which is not defined"
    (item,) = [i for i in volume["configMap"]["items"] if i["path"] == config_path.name]
    return str(configmap["data"][item["key"]])


def test_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((HERE / "kustomization.yaml").read_text())["resources"]
    on_disk = sorted(p.name for p in HERE.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == sorted(set(on_disk) | {"prometheusrule.yaml"})


def test_deployment_selects_its_own_pods() -> None:
    selector = DEPLOYMENT["spec"]["selector"]["matchLabels"]
    assert matches(selector, DEPLOYMENT["spec"]["template"]["metadata"]["labels"])


def test_container_runs_the_cli_with_the_configmap_config() -> None:
    args = build_parser().parse_args(CONTAINER["args"])
    assert args.command == "run"
    config = parse_config(config_text(), source="configmap.yaml config.yaml")
    assert {e.type for e in config.exporters} == {"aws", "gcp"}
    assert config.alertmanager is not None
    _, port = parse_host_port(config.listen)
    assert [p["containerPort"] for p in CONTAINER["ports"] if p["name"] == "metrics"] == [port]


def test_config_mount_is_read_only_and_tmp_is_writable() -> None:
    mounts = {m["mountPath"]: m for m in CONTAINER["volumeMounts"]}
    assert mounts["/etc/vpn-watchdog"]["readOnly"] is True
    (tmp,) = [v for v in POD["volumes"] if v["name"] == mounts["/tmp"]["name"]]
    assert "emptyDir" in tmp


def test_the_deployment_meets_pod_security_restricted() -> None:
    assert restricted_violations(POD) == []
    pod, container = POD["securityContext"], CONTAINER["securityContext"]
    assert container["readOnlyRootFilesystem"] is True and "add" not in container["capabilities"]
    # The image's uid (Dockerfile USER) is the one Kubernetes runs and the ping group it allows.
    dockerfile = (ROOT / "deploy" / "container" / "Dockerfile").read_text()
    uid = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.M)[-1]
    assert (str(pod["runAsUser"]), str(pod["runAsGroup"])) == uid
    sysctls = {s["name"]: s["value"] for s in pod["sysctls"]}
    assert sysctls["net.ipv4.ping_group_range"] == f"{uid[1]} {uid[1]}"


def test_the_pod_security_rules_catch_what_they_forbid() -> None:
    bad = copy.deepcopy(POD)
    bad["hostNetwork"] = True
    bad["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    bad["securityContext"]["sysctls"].append({"name": "net.ipv4.ip_forward", "value": "1"})
    (container,) = bad["containers"]
    container["securityContext"] = {"privileged": True, "capabilities": {"add": ["NET_ADMIN"]}}
    assert baseline_violations(bad) == [
        "watchdog: privileged",
        "watchdog: adds capabilities ['NET_ADMIN']",
        "pod: hostNetwork",
        "volume host: hostPath",
        "pod: sysctl net.ipv4.ip_forward is not on the safe list",
    ]
    assert {
        "watchdog: allowPrivilegeEscalation must be false",
        "watchdog: capabilities must drop ALL",
        "volume host: type ['hostPath']",
    } <= set(restricted_violations(bad))


def sniffer_deployment() -> dict[str, Any]:
    """deploy/kubernetes/sniffer applied the way kustomize's strategic merge does for these fields."""
    overlay = yaml.safe_load((HERE / "sniffer" / "kustomization.yaml").read_text())
    assert overlay["resources"] == ["../"]
    ((patch_ref,),) = [[p["path"] for p in overlay["patches"]]]
    patch = yaml.safe_load((HERE / "sniffer" / patch_ref).read_text())
    assert (patch["kind"], patch["metadata"]["name"]) == ("Deployment", DEPLOYMENT["metadata"]["name"])
    merged = copy.deepcopy(DEPLOYMENT)
    containers = {c["name"]: c for c in merged["spec"]["template"]["spec"]["containers"]}
    for change in patch["spec"]["template"]["spec"]["containers"]:
        target = containers[change["name"]]  # containers merge by name
        for key, value in change.items():
            if isinstance(value, dict):
                target.setdefault(key, {}).update(value)
            else:
                target[key] = value
    return merged


def test_the_sniffer_variant_adds_net_raw_and_nothing_else() -> None:
    pod = sniffer_deployment()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW"]}
    # The opt-in interpreter with the file capability, running the same entry module and arguments.
    assert container["command"] == ["/opt/vpn-watchdog/bin/python-netraw", "-m", "vpn_watchdog"]
    assert "python-netraw" in (ROOT / "deploy" / "container" / "Dockerfile").read_text()
    assert build_parser().parse_args(container["args"]).command == "run"
    # NET_RAW is beyond baseline: the overlay's namespace must be "privileged", as its comment says.
    assert baseline_violations(pod) == ["watchdog: adds capabilities ['NET_RAW']"]
    assert set(restricted_violations(pod)) == {
        "watchdog: adds capabilities ['NET_RAW']",
        "watchdog: allowPrivilegeEscalation must be false",
        "watchdog: may add only NET_BIND_SERVICE",
    }
    assert "pod-security.kubernetes.io/enforce: privileged" in (HERE / "sniffer" / "kustomization.yaml").read_text()


@pytest.mark.parametrize("kind", ["Deployment", "Service", "ConfigMap", "ServiceAccount"])
def test_manifests_validate_against_the_kubernetes_api_schema(kind: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    kubernetes_validate.validate(OBJECTS[kind], "1.30.0", strict=True)
    if kind == "Deployment":
        kubernetes_validate.validate(sniffer_deployment(), "1.30.0", strict=True)


def test_the_schema_validation_catches_a_misspelt_field() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    broken = copy.deepcopy(DEPLOYMENT)
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesytem"] = True
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFilesytem"):
        kubernetes_validate.validate(broken, "1.30.0", strict=True)


def test_probes_hit_the_health_endpoints_on_the_metrics_port() -> None:
    port_names = {p["name"] for p in CONTAINER["ports"]}
    assert CONTAINER["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert CONTAINER["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    for probe in ("livenessProbe", "readinessProbe"):
        assert CONTAINER[probe]["httpGet"]["port"] in port_names


def test_service_selects_the_pods_and_targets_the_metrics_port() -> None:
    assert matches(SERVICE["spec"]["selector"], DEPLOYMENT["spec"]["template"]["metadata"]["labels"])
    names = {p["name"]: p["containerPort"] for p in CONTAINER["ports"]}
    for port in SERVICE["spec"]["ports"]:
        assert port["targetPort"] in names or port["targetPort"] in names.values()


def test_servicemonitor_selects_the_service_and_scrapes_metrics() -> None:
    monitor = OBJECTS["ServiceMonitor"]
    assert matches(monitor["spec"]["selector"]["matchLabels"], SERVICE["metadata"]["labels"])
    service_ports = {p["name"] for p in SERVICE["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in service_ports and endpoint["path"] == "/metrics"


def test_service_account_exists_and_mounts_no_token() -> None:
    account = OBJECTS["ServiceAccount"]
    assert POD["serviceAccountName"] == account["metadata"]["name"]
    assert POD["automountServiceAccountToken"] is False


# -- the generated PrometheusRule -----------------------------------------------------------------


def write_rules(directory: Path, name: str, groups: list[dict[str, Any]]) -> None:
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(yaml.safe_dump({"groups": groups}))


def test_generator_copies_every_group_unchanged_in_file_order(tmp_path: Path) -> None:
    rules = tmp_path / "deploy" / "prometheus"
    tmp_path.joinpath("deploy").mkdir()
    expr = "vpn_watchdog_tunnel_up == 0\nand on (exporter) vpn_watchdog_exporter_up == 1"
    write_rules(rules, "b.rules.yml", [{"name": "b", "rules": [{"alert": "B", "expr": expr, "for": "1m"}]}])
    write_rules(rules, "a.rules.yml", [{"name": "a", "rules": [{"record": "x:y", "expr": "1"}]}])
    (rules / "ignored.yml").write_text("not: rules")
    text = GENERATE.render(rules)
    document = yaml.safe_load(text)
    assert document["kind"] == "PrometheusRule"
    assert [g["name"] for g in document["spec"]["groups"]] == ["a", "b"]
    assert document["spec"]["groups"][1]["rules"][0]["expr"] == expr
    assert text.startswith(
        "# GENERATED by deploy/kubernetes/generate_prometheusrule.py from deploy/prometheus/a.rules.yml, "
    )


def test_generator_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"no \*\.rules\.yml in .*: nothing to generate"):
        GENERATE.render(tmp_path)
    (tmp_path / "x.rules.yml").write_text("- just a list\n")
    with pytest.raises(SystemExit, match=r"x\.rules\.yml: not a Prometheus rule file"):
        GENERATE.render(tmp_path)


def test_prometheusrule_is_generated_from_the_current_rule_files() -> None:
    rules_dir = ROOT / "deploy" / "prometheus"
    assert list(rules_dir.glob("*.rules.yml")), "deploy/prometheus/*.rules.yml does not exist yet"
    output = HERE / "prometheusrule.yaml"
    assert output.exists() and output.read_text() == GENERATE.render(), (
        "deploy/kubernetes/prometheusrule.yaml is stale: run python deploy/kubernetes/generate_prometheusrule.py"
    )
    groups = [g for p in sorted(rules_dir.glob("*.rules.yml")) for g in yaml.safe_load(p.read_text())["groups"]]
    assert yaml.safe_load(output.read_text())["spec"]["groups"] == groups


def test_prometheusrule_carries_every_alert_of_the_design() -> None:
    output = HERE / "prometheusrule.yaml"
    assert output.exists(), (
        "deploy/kubernetes/prometheusrule.yaml is missing: run python deploy/kubernetes/generate_prometheusrule.py"
    )
    document = yaml.safe_load(output.read_text())
    alerts = {r["alert"] for g in document["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert set(DESIGN_ALERTS) <= alerts, f"missing: {sorted(set(DESIGN_ALERTS) - alerts)}"
    assert matches(document["metadata"]["labels"], OBJECTS["ServiceMonitor"]["metadata"]["labels"])
