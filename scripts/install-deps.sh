#!/usr/bin/env bash
# Install everything vpn-watchdog's tests, lab and demo need on a fresh Debian 12 machine (as root):
# Debian packages for the real VPN/BGP/DNS/monitoring software, and a virtual environment in .venv.
# Idempotent: a second run only checks. Fails loudly if anything is missing afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  strongswan strongswan-swanctl charon-systemd libcharon-extra-plugins
  libstrongswan-extra-plugins libstrongswan-standard-plugins
  frr dnsmasq tcpdump tshark libpcap0.8 prometheus prometheus-alertmanager
  fping iputils-ping bind9-dnsutils nftables iproute2 procps systemd chromium
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing Debian packages (${missing[*]}); run as root" >&2
    exit 1
  fi
  echo "install-deps: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "install-deps: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
echo "install-deps: pip install -e .[test]"
.venv/bin/python -m pip install -q -e ".[test]" 2>&1 | grep -v '^WARNING: Location' || true

# Fail loudly rather than let tests skip silently.
for tool in swanctl charon-systemd /usr/lib/frr/bgpd /usr/lib/frr/zebra vtysh dnsmasq tshark tcpdump \
            prometheus promtool prometheus-alertmanager amtool fping nft ip chromium; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "$tool" ] || { echo "install-deps: $tool not found" >&2; exit 1; }
done
.venv/bin/python -c "import watchdog, exporters, probes, boto3, moto, google.cloud.compute_v1, \
google.cloud.monitoring_v3, scapy, dns, apscheduler, prometheus_client, pydantic, grpc, hypothesis, \
playwright.sync_api, kubernetes_validate" \
  || { echo "install-deps: Python dependencies are incomplete" >&2; exit 1; }
echo "install-deps: ok"
