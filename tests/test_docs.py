"""docs/: the operator docs cannot drift from the code they describe.

The metric reference is generated and must be fresh; every alert (DESIGN.md, the engine, the rule
file) has a runbook; every CLI option that `watchdog <cmd> --help` prints is documented, and every
`watchdog ...` example parses with the real CLI; every config key of the model is explained and the
full example config validates; every relative link and deploy/ path the docs name exists.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from pydantic import BaseModel

from watchdog import cli, config
from watchdog.catalogue import METRICS
from watchdog.health import ALERT_NAMES, SEVERITY

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
COMMANDS = (
    ["run"],
    ["probe"],
    ["audit"],
    ["ike", "analyze"],
    ["ike", "sniff"],
    ["config", "check"],
    ["deploy-assets"],
)


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


GENERATE = load_generator()


def text(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def code_blocks(markdown: str, language: str = "") -> list[str]:
    return [
        m.group(2) for m in re.finditer(r"```(\w*)\n(.*?)```", markdown, re.S) if not language or m.group(1) == language
    ]


# -- metrics.md -----------------------------------------------------------------------------------


def test_metrics_reference_is_generated_from_the_current_metrics() -> None:
    assert text("metrics.md") == GENERATE.render(), "docs/metrics.md is stale: run python docs/generate.py"
    for key in METRICS:
        assert f"`vpn_watchdog_{key}" in text("metrics.md")


def test_a_metric_added_without_a_note_fails_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(METRICS, "tunnel_mtu_bytes", ("gauge", "A new metric nobody documented."))
    with pytest.raises(SystemExit) as info:
        GENERATE.render()
    message = str(info.value)
    assert "tunnel_mtu_bytes: in METRICS but in no group of docs/generate.py" in message
    assert "tunnel_mtu_bytes: in METRICS but has no note" in message
    assert "tunnel_mtu_bytes: in METRICS but the collector never renders it" in message


def test_metric_labels_come_from_the_collector() -> None:
    labels = GENERATE.label_names()
    assert labels["tunnel_up"] == ("exporter", "cloud", "connection", "tunnel", "local_ip", "peer_ip")
    assert labels["ike_fragmented_messages_total"] == ("interface", "peer", "exchange", "kind")
    row = next(line for line in text("metrics.md").splitlines() if line.startswith("| `vpn_watchdog_probe_latency"))
    assert "histogram" in row and "`probe`, `type`, `target`" in row


# -- alerts.md ------------------------------------------------------------------------------------


def design_alerts() -> set[str]:
    design = (ROOT.parent / "shared" / "DESIGN.md") if (ROOT.parent / "shared" / "DESIGN.md").exists() else None
    if design is None:
        return set(ALERT_NAMES)
    section = design.read_text().split("## Alerts", 1)[1]
    return set(re.findall(r"`(Vpn[A-Za-z]+)`", section))


def rule_file_alerts() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "deploy" / "prometheus").glob("*.rules.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {rule["alert"] for rule in group["rules"] if "alert" in rule}
    return names


def runbooks() -> dict[str, str]:
    sections = re.split(r"^## `(Vpn[A-Za-z]+)`\n", text("alerts.md"), flags=re.M)
    return dict(zip(sections[1::2], sections[2::2], strict=True))


def test_every_alert_has_a_runbook() -> None:
    documented = set(runbooks())
    for source, names in (
        ("DESIGN.md", design_alerts()),
        ("watchdog.health", set(ALERT_NAMES)),
        ("deploy/prometheus rules", rule_file_alerts()),
    ):
        assert names - documented == set(), f"alerts of {source} without a runbook in docs/alerts.md"
    assert documented <= set(ALERT_NAMES), "docs/alerts.md documents an alert the daemon does not raise"


def test_runbooks_say_what_it_means_and_what_to_run() -> None:
    for name, body in runbooks().items():
        assert "**Means:**" in body and "**Check:**" in body, name
        assert re.search(r"`watchdog (probe --once|audit|ike (analyze|sniff))", body), f"{name}: no command to run"


def test_severity_table_matches_the_engine() -> None:
    rows = re.findall(r"^\| `(Vpn[A-Za-z]+)` \| (page|warning|info) \|", text("alerts.md"), re.M)
    assert dict(rows) == SEVERITY


# -- cli.md ---------------------------------------------------------------------------------------


def help_text(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """`watchdog ARGV --help`, run through the real entry point."""
    with pytest.raises(SystemExit) as info:
        cli.main([*argv, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("argv", [[], *COMMANDS], ids=lambda a: " ".join(a) or "watchdog")
def test_every_option_of_every_command_is_documented(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    usage = help_text(argv, capsys)
    options = set(re.findall(r"(?<![\w-])(--?[a-z](?:[a-z.-]*[a-z])?)", usage.split("options:", 1)[1]))
    assert options, usage
    page = text("cli.md")
    if argv:
        assert f"## `watchdog {' '.join(argv)}" in page, f"no section for watchdog {' '.join(argv)}"
    missing = sorted(o for o in options if not re.search(rf"`{re.escape(o)}[` ,]", page))
    assert not missing, f"watchdog {' '.join(argv)}: options missing from docs/cli.md: {missing}"


def doc_commands() -> list[tuple[str, list[str]]]:
    """Every concrete `watchdog ...` command line in the docs' code blocks (synopses with [..] skipped)."""
    found = []
    for page in PAGES:
        for block in code_blocks(page.read_text()):
            for line in block.splitlines():
                line = line.split(" #", 1)[0].split("|", 1)[0].split("&&", 1)[0]
                match = re.search(r"(?:^|[\s$])watchdog ((?:run|probe|audit|ike|config)\b.*)$", line.strip())
                if match and "[" not in line and "--help" not in line:
                    found.append((page.name, shlex.split(match.group(1).rstrip("\\ "))))
    return found


def test_every_documented_command_line_parses() -> None:
    commands = doc_commands()
    assert len(commands) >= 15
    parser = cli.build_parser()
    for page, argv in commands:
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{page}: `watchdog {shlex.join(argv)}` is not a valid command line")


# -- configuration.md -----------------------------------------------------------------------------


def model_keys(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> set[str]:
    """Every config key of a model and its nested models (aliases as written in YAML)."""
    seen = seen if seen is not None else set()
    seen.add(model)
    keys = set()
    for name, field in model.model_fields.items():
        keys.add(field.alias or name)
        annotation = field.annotation
        for candidate in getattr(annotation, "__args__", ()) + (annotation,):
            for inner in getattr(candidate, "__args__", ()) + (candidate,):
                if isinstance(inner, type) and issubclass(inner, BaseModel) and inner not in seen:
                    keys |= model_keys(inner, seen)
    return keys


def test_every_config_key_is_explained() -> None:
    models: list[type[BaseModel]] = [
        config.Config,
        config.AwsExporterConfig,
        config.GcpExporterConfig,
        config.StrongswanExporterConfig,
        config.FrrExporterConfig,
        config.DnsProbeConfig,
        config.IcmpProbeConfig,
    ]
    keys: set[str] = set().union(*(model_keys(m) for m in models))
    assert {"listen", "vpn_connections", "credentials_file", "min_paths", "for", "mtu"} <= keys
    page = text("configuration.md")
    missing = sorted(k for k in keys if f"`{k}`" not in page)
    assert not missing, f"config keys not explained in docs/configuration.md: {missing}"


def test_the_walkthrough_config_is_valid() -> None:
    full = [b for b in code_blocks(text("configuration.md"), "yaml") if b.startswith("# config.yaml")]
    assert len(full) == 1
    parsed = config.parse_config(full[0], source="docs/configuration.md")
    assert {e.type for e in parsed.exporters} == {"aws", "gcp"}
    assert sum(len(e.prefixes) for e in parsed.expected_prefixes) == 4


# -- links ------------------------------------------------------------------------------------------


def anchors(markdown: str) -> set[str]:
    """GitHub-style heading anchors."""
    result = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        result.add(slug)
    return result


def test_relative_links_and_anchors_resolve() -> None:
    for page in PAGES:
        for target in re.findall(r"\]\(([^)]+)\)", page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path) if path else page
            assert linked.exists(), f"{page.name}: broken link {target}"
            if anchor:
                assert anchor in anchors(linked.read_text()), f"{page.name}: no anchor #{anchor} in {linked.name}"


def test_deploy_paths_named_in_the_docs_exist() -> None:
    for page in PAGES:
        for path in set(re.findall(r"\bdeploy/[\w./*-]+[\w*]", page.read_text())):
            assert list(ROOT.glob(path)), f"{page.name} names {path}, which does not exist"


def test_the_audit_rule_table_lists_every_rule_once() -> None:
    from watchdog.audit.rules import RULES

    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z]+\.[a-z0-9-]+)` \|", text, flags=re.MULTILINE)
    assert sorted(rows) == sorted(RULES)
