#!/usr/bin/env bash
# Regenerate the IKE test captures in this directory from REAL strongSwan (charon-systemd, one per
# network namespace, kernel-libipsec, PSK) with forced rekeys (`swanctl --rekey`), then write the
# tshark ground truth next to them (expected.json).
#
#   normal.pcap      MTU 1500, small proposals: nothing fragmented
#   lowmtu.pcap      MTU 576, `fragmentation = no`, big proposals: IKE_SA_INIT and rekeys IP-fragmented
#   rfc7383.pcap     MTU 1500, `fragmentation = yes`, `fragment_size = 512`, big proposals: SKF fragments
#   unanswered.pcap  as lowmtu, but after the SA is up the responder drops IP fragments (what Cloud VPN
#                    does): the fragmented CREATE_CHILD_SA request is retransmitted and never answered
#
# Needs root, strongswan + charon-systemd + libcharon-extra-plugins, tcpdump, tshark, nft.
# Lab addresses only (203.0.113.0/24, 198.51.100.0/24, 169.254.0.0/16). Everything it creates
# (namespaces, processes by PID, temp dir) is removed on exit, also on failure or Ctrl-C.
# Usage: tests/data/ike/make_captures.sh [SCENARIO...]     (default: all four)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
TAG="ikc$$"
NS_A="${TAG}a"
NS_B="${TAG}b"
WORK=$(mktemp -d "/tmp/${TAG}.XXXX")
PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  sleep 0.3
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  done
  ip netns del "$NS_A" 2>/dev/null || true
  ip netns del "$NS_B" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" -eq 0 ] || { echo "make_captures: needs root" >&2; exit 1; }

BIG_IKE="aes256gcm16-aes128gcm16-prfsha512-prfsha384-prfsha256-modp8192-modp6144-modp4096-modp3072-ecp521-ecp384-ecp256-curve25519,aes256-aes192-aes128-sha512-sha384-sha256-sha1-modp8192-modp6144-modp4096-modp3072-modp2048-ecp521-ecp384-ecp256-curve25519"
BIG_ESP="aes256gcm16-aes192gcm16-aes128gcm16-modp8192-modp6144-modp4096-ecp521-ecp384,aes256-aes192-aes128-sha512-sha384-sha256-sha1-modp8192-modp6144-modp4096-modp3072-modp2048-ecp521-ecp384-ecp256"
SMALL="aes256-sha256-modp2048"

# side_conf DIR LOCAL REMOTE LOCAL_IN REMOTE_IN START FRAG FRAGSIZE IKEPROP ESPPROP
side_conf() {
  local d=$1 local=$2 remote=$3 lin=$4 rin=$5 start=$6 frag=$7 fsize=$8 ikep=$9 espp=${10}
  mkdir -p "$d"/{x509,x509ca,x509aa,x509ocsp,x509crl,x509ac,pubkey,private,rsa,ecdsa,bliss,pkcs8,pkcs12}
  cat >"$d/strongswan.conf" <<EOF
charon-systemd {
  journal { default = -1 }
  filelog { cap { path = $d/charon.log
                  time_format = %T
                  default = 1
                  flush_line = yes } }
}
charon {
  load = random nonce openssl aes sha1 sha2 hmac gcm gmp curve25519 pem pkcs1 x509 pubkey kdf kernel-libipsec kernel-netlink socket-default vici updown
  retransmit_tries = 3
  retransmit_timeout = 2.0
  retransmit_base = 1.4
  fragment_size = $fsize
  plugins { vici { socket = unix://$d/charon.vici } }
}
EOF
  cat >"$d/swanctl.conf" <<EOF
connections {
  tun1 {
    version = 2
    local_addrs = $local
    remote_addrs = $remote
    proposals = $ikep
    fragmentation = $frag
    mobike = no
    keyingtries = 1
    rekey_time = 28800s
    dpd_delay = 0s
    local { auth = psk
            id = $local }
    remote { auth = psk
             id = $remote }
    children {
      tun1 {
        local_ts = $lin/32
        remote_ts = $rin/32
        esp_proposals = $espp
        rekey_time = 3600s
        start_action = $start
      }
    }
  }
}
secrets {
  ike-tun1 { id-1 = 203.0.113.1
             id-2 = 198.51.100.1
             secret = "lab-psk-capture-0123456789abcdef" }
}
EOF
}

start_charon() {  # NS DIR INSIDE_ADDR
  local ns=$1 d=$2 inside=$3
  STRONGSWAN_CONF=$d/strongswan.conf setsid ip netns exec "$ns" /usr/sbin/charon-systemd \
    >"$d/charon.stdout" 2>&1 </dev/null &
  PIDS+=($!)
  for _ in $(seq 100); do
    [ -S "$d/charon.vici" ] && ip -n "$ns" link show ipsec0 >/dev/null 2>&1 && break
    sleep 0.1
  done
  ip -n "$ns" addr add "$inside/30" dev ipsec0
  ip -n "$ns" link set ipsec0 up || true
}

swan() {  # DIR ARGS...
  local d=$1; shift
  STRONGSWAN_CONF=$d/strongswan.conf swanctl "$@" --uri "unix://$d/charon.vici"
}

wait_established() {  # DIR
  for _ in $(seq 100); do
    swan "$1" --list-sas 2>/dev/null | grep -q "INSTALLED" && return 0
    sleep 0.1
  done
  echo "make_captures: tunnel did not come up; charon log:" >&2
  tail -30 "$1/charon.log" >&2 || true
  return 1
}

scenario() {  # NAME MTU FRAG FRAGSIZE IKEPROP ESPPROP DROP_FRAGMENTS
  local name=$1 mtu=$2 frag=$3 fsize=$4 ikep=$5 espp=$6 drop=$7
  echo "make_captures: $name (mtu $mtu, fragmentation $frag, fragment_size $fsize)"
  ip netns add "$NS_A"
  ip netns add "$NS_B"
  ip link add "${TAG}x" netns "$NS_A" type veth peer name "${TAG}y" netns "$NS_B"
  ip -n "$NS_A" addr add 203.0.113.1/24 dev "${TAG}x"
  ip -n "$NS_B" addr add 198.51.100.1/24 dev "${TAG}y"
  for ns in "$NS_A" "$NS_B"; do
    ip -n "$ns" link set lo up
  done
  ip -n "$NS_A" link set "${TAG}x" mtu "$mtu" up
  ip -n "$NS_B" link set "${TAG}y" mtu "$mtu" up
  ip -n "$NS_A" route add 198.51.100.0/24 dev "${TAG}x"
  ip -n "$NS_B" route add 203.0.113.0/24 dev "${TAG}y"

  local a=$WORK/$name/a b=$WORK/$name/b
  side_conf "$a" 203.0.113.1 198.51.100.1 169.254.10.2 169.254.10.1 start "$frag" "$fsize" "$ikep" "$espp"
  side_conf "$b" 198.51.100.1 203.0.113.1 169.254.10.1 169.254.10.2 none "$frag" "$fsize" "$ikep" "$espp"
  start_charon "$NS_B" "$b" 169.254.10.1
  start_charon "$NS_A" "$a" 169.254.10.2

  # Capture on the initiator's side: the fragments it sends are visible even when B drops them.
  local pcap=$WORK/$name.pcap
  ip netns exec "$NS_A" tcpdump -Z root -i "${TAG}x" -s 0 -U -w "$pcap" \
    'udp or (ip[6:2] & 0x1fff != 0)' >"$WORK/$name.tcpdump.log" 2>&1 &
  PIDS+=($!)
  local tcpdump_pid=$!
  for _ in $(seq 50); do grep -qs "listening on" "$WORK/$name.tcpdump.log" && break; sleep 0.1; done

  swan "$b" --load-all --noprompt --file "$b/swanctl.conf" >/dev/null
  swan "$a" --load-all --noprompt --file "$a/swanctl.conf" >/dev/null
  wait_established "$a"
  ip netns exec "$NS_A" ping -c 3 -i 0.2 -W 1 169.254.10.1 >/dev/null || true

  if [ "$drop" = yes ]; then
    # The responder now drops every IP fragment, as Cloud VPN does.
    ip netns exec "$NS_B" nft -f - <<'EOF'
table ip capdrop {
  chain pre {
    type filter hook prerouting priority -500; policy accept;
    ip frag-off & 0x3fff != 0 drop
  }
}
EOF
    swan "$a" --rekey --child tun1 >/dev/null || true
    # Keep some traffic going past the 30 s "no response" deadline (charon gives up after ~14 s),
    # then one plain UDP datagram so the capture provably extends beyond it.
    for _ in $(seq 32); do
      ip netns exec "$NS_A" ping -c 1 -W 1 169.254.10.1 >/dev/null 2>&1 || true
      sleep 1
    done
    ip netns exec "$NS_A" bash -c 'echo end-of-capture >/dev/udp/198.51.100.1/9' || true
    sleep 0.5
  else
    swan "$a" --rekey --child tun1 >/dev/null; sleep 1
    swan "$a" --rekey --ike tun1 >/dev/null; sleep 1
    swan "$a" --rekey --child tun1 >/dev/null; sleep 1
    swan "$b" --rekey --child tun1 >/dev/null; sleep 1
    ip netns exec "$NS_A" ping -c 3 -i 0.2 -W 1 169.254.10.1 >/dev/null || true
    sleep 0.5
  fi

  kill -INT "$tcpdump_pid" 2>/dev/null || true
  wait "$tcpdump_pid" 2>/dev/null || true
  cp "$pcap" "$HERE/$name.pcap"
  chmod 644 "$HERE/$name.pcap"

  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 0.3
  PIDS=()
  ip netns del "$NS_A"
  ip netns del "$NS_B"
  echo "make_captures: wrote $HERE/$name.pcap ($(stat -c %s "$HERE/$name.pcap") bytes)"
}

want=("$@")
[ ${#want[@]} -eq 0 ] && want=(normal lowmtu rfc7383 unanswered)
for s in "${want[@]}"; do
  case "$s" in
    normal)     scenario normal 1500 yes 1280 "$SMALL" "$SMALL" no ;;
    lowmtu)     scenario lowmtu 576 no 1280 "$BIG_IKE" "$BIG_ESP" no ;;
    rfc7383)    scenario rfc7383 1500 yes 512 "$BIG_IKE" "$BIG_ESP" no ;;
    unanswered) scenario unanswered 576 no 1280 "$BIG_IKE" "$BIG_ESP" yes ;;
    *) echo "make_captures: unknown scenario $s" >&2; exit 2 ;;
  esac
done

# Ground truth from tshark (IP reassembly off), written next to the captures.
cd "$ROOT"
"$PY" -m tests.data.ike.tshark_truth "$HERE"/*.pcap >"$HERE/expected.json"
echo "make_captures: wrote $HERE/expected.json"
