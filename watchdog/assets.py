"""`watchdog deploy-assets DIR`: the Prometheus rules, Grafana dashboard, Alertmanager, systemd and
Kubernetes files of deploy/, from wherever this vpn-watchdog runs: a source checkout (its deploy/) or
an installed wheel (the same files, installed as data under `<prefix>/share/vpn-watchdog`). The list
here is the one pyproject.toml's `[tool.setuptools.data-files]` installs (a test keeps them equal).
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path

from watchdog.errors import ConfigError, InputError

# Paths relative to deploy/ in the checkout and to share/vpn-watchdog/ when installed.
ASSETS = (
    "config.example.yaml",
    "prometheus/vpn-watchdog.rules.yml",
    "prometheus/prometheus.yml",
    "prometheus/federation.yml",
    "grafana/vpn-watchdog.json",
    "alertmanager/alertmanager.yml",
    "systemd/vpn-watchdog.service",
    "systemd/credentials.conf",
    "kubernetes/kustomization.yaml",
    "kubernetes/serviceaccount.yaml",
    "kubernetes/configmap.yaml",
    "kubernetes/deployment.yaml",
    "kubernetes/service.yaml",
    "kubernetes/servicemonitor.yaml",
    "kubernetes/prometheusrule.yaml",
    "kubernetes/sniffer/kustomization.yaml",
    "kubernetes/sniffer/deployment-netraw.yaml",
)


def source() -> Path:
    """Where the files are: the checkout's deploy/, else the installed data directory."""
    checkout = Path(__file__).resolve().parent.parent / "deploy"
    candidates = [checkout]
    candidates += [
        Path(sysconfig.get_path("data")) / "share" / "vpn-watchdog",
        Path(sys.prefix) / "share" / "vpn-watchdog",
    ]
    for candidate in candidates:
        if all((candidate / name).is_file() for name in ASSETS):
            return candidate
    raise InputError(
        "the deploy assets are not installed here (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); reinstall vpn-watchdog from its wheel or sdist"
    )


def copy_assets(destination: str, *, force: bool = False) -> list[Path]:
    """Copy every asset under `destination`, keeping the deploy/ layout. Existing files are left
    alone (ConfigError naming them) unless `force`."""
    root = source()
    target = Path(destination)
    clashes = [name for name in ASSETS if (target / name).exists()]
    if clashes and not force:
        shown = ", ".join(clashes[:3]) + (f" and {len(clashes) - 3} more" if len(clashes) > 3 else "")
        raise ConfigError(f"{destination}: would overwrite {shown} (use --force)")
    written = []
    for name in ASSETS:
        out = target / name
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / name, out)
        except OSError as exc:
            raise InputError(f"{out}: cannot write: {exc.strerror or exc}") from None
        written.append(out)
    return written
