#!/usr/bin/env bash
# The demo on a fresh Debian/Ubuntu machine, as root: install what is needed, build the built-in
# 4-tunnel AWS <-> GCP lab (network namespaces, real strongSwan/FRR/dnsmasq, Prometheus, Alertmanager)
# and run the watchdog daemon on it. `scripts/demo.sh down` stops it all. Safe to run again: a second
# run only checks the installation and rebuilds the lab.
#   scripts/demo.sh [up [LABCTL-UP-OPTIONS...]]   e.g. up --prefix vwx- --prom-port 29090 (see labctl.py up -h)
#   scripts/demo.sh down
# WATCHDOG_DEMO_NO_INSTALL=1 skips scripts/install-deps.sh on a machine already set up.
set -euo pipefail
cd "$(dirname "$0")/.."

LAB_DIR=${WATCHDOG_LAB_DIR:-$PWD/.lab}
export WATCHDOG_LAB_DIR=$LAB_DIR
LISTEN=${WATCHDOG_DEMO_LISTEN:-127.0.0.1:9687}
PIDFILE=$LAB_DIR/watchdog.pid
CONFIG=$LAB_DIR/watchdog.yaml

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: needs root (network namespaces); try: sudo $0 $*" >&2
  exit 2
fi

# Stop the daemon this script started before, by its recorded PID, only if it still is that daemon.
stop_daemon() {
  [ -f "$PIDFILE" ] || return 0
  local pid
  pid=$(cat "$PIDFILE")
  if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "watchdog run -c $CONFIG"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo gone)
      [ "$state" = gone ] || [ "$state" = Z ] && break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}

case "${1:-up}" in
  down)
    stop_daemon
    python3 deploy/lab/labctl.py down
    exit 0
    ;;
  up) [ $# -gt 0 ] && shift ;;
  *)
    echo "usage: $0 [up [labctl up options]|down]" >&2
    exit 2
    ;;
esac

[ -n "${WATCHDOG_DEMO_NO_INSTALL:-}" ] || scripts/install-deps.sh
stop_daemon
python3 deploy/lab/labctl.py up --watchdog-addr "$LISTEN" "$@"   # tears down any previous (half-made) lab first
.venv/bin/watchdog config check -c "$CONFIG"

# setsid: the daemon outlives this shell; without job control `$!` is the daemon itself.
setsid .venv/bin/watchdog run -c "$CONFIG" >"$LAB_DIR/watchdog.log" 2>&1 </dev/null &
echo $! >"$PIDFILE"
for _ in $(seq 100); do
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
    "http://$LISTEN/healthz" >/dev/null 2>&1 && break
  if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "demo: the daemon exited; see $LAB_DIR/watchdog.log" >&2
    tail -n 20 "$LAB_DIR/watchdog.log" >&2
    exit 1
  fi
  sleep 0.1
done

PROM_PORT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["prom_port"])' "$LAB_DIR/state.json")
AM_PORT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["am_port"])' "$LAB_DIR/state.json")
W=".venv/bin/watchdog"
cat <<TXT

vpn-watchdog is running on the lab (pid $(cat "$PIDFILE"), log $LAB_DIR/watchdog.log), watching it
through the clouds' APIs (the lab's EC2/CloudWatch Logs and Compute/Monitoring/Logging endpoints)
and the on-prem view (strongSwan, FRR). Config: $CONFIG

  status page    http://$LISTEN/
  metrics        http://$LISTEN/metrics
  Alertmanager   http://127.0.0.1:$AM_PORT/#/alerts      (the daemon's alerts, each sent once: one per view that sees it)
  Prometheus     http://127.0.0.1:$PROM_PORT/classic/alerts  (the shipped rules, evaluated; they send nothing)
                 http://127.0.0.1:$PROM_PORT/classic/graph?g0.expr=vpn_watchdog_tunnel_up
  one-shot check $W probe --once -c $CONFIG

Try this (each lab verb prints what it changed and what to look at):
  scripts/lab cut 2                   # tunnel 2 down on both clouds: VpnTunnelDown + VpnRedundancyDegraded
  scripts/lab restore 2               # resolved within seconds
  $W audit -c $CONFIG       # both clouds audited: clean
  scripts/lab mtu 1000 && scripts/lab proposals big && scripts/lab rekey 1 --from aws
                                      # AWS-side proposals fragment: VpnIkeFragmentation
  $W audit -c $CONFIG       # ipsec.single-transform on every AWS tunnel
  $W audit --fix-ipsec --apply -c $CONFIG   # ModifyVpnTunnelOptions narrows them; rekeys fit again
  scripts/lab advertise no-spoke      # VpnExpectedPrefixMissing on AWS + routing.spoke-not-advertised
  scripts/lab advertise spoke
  scripts/lab dns-return off          # the DNS probe times out + dns.return-route
  scripts/lab dns-return on
  scripts/lab aws-view 3 down         # only the EC2 API says tunnel 3 is down: VpnTunnelAsymmetric
  scripts/lab aws-view 3 up
  scripts/lab status

Stop everything:  scripts/demo.sh down
TXT
