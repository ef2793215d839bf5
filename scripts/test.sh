#!/usr/bin/env bash
# The test command: install what the tests need (Debian packages + .venv), then run the whole suite,
# including the network-namespace tests against real strongSwan, FRR, dnsmasq, Prometheus and
# Alertmanager (they need root). Extra arguments go to pytest, e.g. `scripts/test.sh -k config`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if [ "$(id -u)" -ne 0 ]; then
  echo "test.sh: not root: the network-namespace tests will be skipped (CI runs them as root)" >&2
fi
exec .venv/bin/python -m pytest "$@"
