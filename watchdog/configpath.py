"""Where the config file is by default: `$WATCHDOG_CONFIG`, else /etc/vpn-watchdog/config.yaml.

Its own module so the command line can name the default in `--help` without importing the config
code (pydantic, yaml: most of the CLI's start-up time). Only the standard library.
"""

from __future__ import annotations

import os

DEFAULT_CONFIG_PATH = "/etc/vpn-watchdog/config.yaml"
ENV_VAR = "WATCHDOG_CONFIG"


def default_config_path() -> str:
    return os.environ.get(ENV_VAR) or DEFAULT_CONFIG_PATH
