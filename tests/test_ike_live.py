"""The live sniffer on a real veth between two network namespaces, fed by kernel-fragmented IKE.

The sender uses an ordinary UDP socket with IP_PMTUDISC_DONT, so the kernel itself fragments the
3000-byte IKE-looking datagram at MTU 1500. The sniffer runs inside the receiving namespace (a
subprocess under `ip netns exec`), exactly as the daemon would on a VPN gateway's outside interface.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from probes.ike.sniffer import IkeSniffer, bpf_filter
from tests.conftest import require_root
from watchdog.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
A_IP = "203.0.113.1"
B_IP = "198.51.100.1"

SNIFF = """
import json, sys, time
from probes.ike.sniffer import IkeSniffer
s = IkeSniffer([sys.argv[1]], [sys.argv[2]], 1460)
s.start()
print(json.dumps({"ready": s.snapshot().sniffer_up}), flush=True)
for line in sys.stdin:
    snap = s.snapshot()
    print(json.dumps({"messages": {"|".join(k): v for k, v in snap.messages.items()},
                      "fragmented": {"|".join(k): v for k, v in snap.fragmented.items()},
                      "rekeys": {"|".join(k): v for k, v in snap.rekeys.items()},
                      "up": snap.sniffer_up, "drops": snap.kernel_drops, "malformed": snap.malformed,
                      "errors": s.errors()}), flush=True)
s.stop()
"""

SEND = """
import socket, struct, sys
def ike(exch, msgid, size, inner=41):
    body = struct.pack("!BBH", inner, 0, size - 28) + b"\\x5a" * (size - 32)
    return struct.pack("!8s8sBBBBII", b"\\x11" * 8, b"\\x22" * 8, 46, 0x20, exch, 0x08, msgid, size) + body
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER = IP_PMTUDISC_DONT: let the kernel fragment
s.bind((sys.argv[1], 500))
s.sendto(ike(36, 2, 3000), (sys.argv[2], 500))       # a CREATE_CHILD_SA rekey request, 3 fragments
s.sendto(ike(37, 3, 80), (sys.argv[2], 500))         # a small INFORMATIONAL
n = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n.bind((sys.argv[1], 4500))
n.sendto(b"\\xc0\\x01\\x02\\x03" + b"\\x00" * 100, (sys.argv[2], 4500))   # ESP-in-UDP: filtered out
n.sendto(b"\\x00\\x00\\x00\\x00" + ike(37, 4, 80), (sys.argv[2], 4500))  # NAT-T IKE behind the marker
"""


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@pytest.fixture
def veth_pair() -> Iterator[tuple[str, str, str]]:
    """Namespaces A (203.0.113.1) and B (198.51.100.1) joined by a veth; removed even on failure."""
    require_root()
    tag = f"ikl{os.getpid() % 100000}"
    ns_a, ns_b, dev_a, dev_b = f"{tag}a", f"{tag}b", f"{tag}x", f"{tag}y"
    try:
        sh("ip", "netns", "add", ns_a)
        sh("ip", "netns", "add", ns_b)
        sh("ip", "link", "add", dev_a, "netns", ns_a, "type", "veth", "peer", "name", dev_b, "netns", ns_b)
        sh("ip", "-n", ns_a, "addr", "add", f"{A_IP}/24", "dev", dev_a)
        sh("ip", "-n", ns_b, "addr", "add", f"{B_IP}/24", "dev", dev_b)
        for ns, dev in ((ns_a, dev_a), (ns_b, dev_b)):
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns_a, "route", "add", "198.51.100.0/24", "dev", dev_a)
        sh("ip", "-n", ns_b, "route", "add", "203.0.113.0/24", "dev", dev_b)
        yield ns_a, ns_b, dev_b
    finally:
        subprocess.run(["ip", "netns", "del", ns_a], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns_b], capture_output=True)


def ask(proc: subprocess.Popen[str]) -> dict[str, object]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("snapshot\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())  # type: ignore[no-any-return]


@pytest.mark.netns
def test_sniffer_counts_kernel_fragmented_ike_and_notices_the_interface_vanish(
    veth_pair: tuple[str, str, str],
) -> None:
    ns_a, ns_b, dev_b = veth_pair
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns_b, PY, "-c", SNIFF, dev_b, A_IP],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        assert ready == {"ready": {dev_b: True}}
        before = ask(proc)
        assert before["messages"] == {}
        subprocess.run(["ip", "netns", "exec", ns_a, PY, "-c", SEND, A_IP, B_IP], check=True, timeout=20)
        deadline = time.monotonic() + 10
        snap = ask(proc)
        while time.monotonic() < deadline and len(snap["messages"]) < 2:  # type: ignore[arg-type]
            time.sleep(0.2)
            snap = ask(proc)
        assert snap["messages"] == {f"{dev_b}|{A_IP}|CREATE_CHILD_SA": 1, f"{dev_b}|{A_IP}|INFORMATIONAL": 2}
        assert snap["fragmented"] == {f"{dev_b}|{A_IP}|CREATE_CHILD_SA|ip": 1}
        assert snap["rekeys"] == {f"{dev_b}|{A_IP}|ike": 0, f"{dev_b}|{A_IP}|child": 1}
        assert snap["up"] == {dev_b: True}
        assert snap["drops"] == {dev_b: 0}
        assert snap["malformed"] == {dev_b: 0}

        sh("ip", "-n", ns_a, "link", "del", f"{dev_b[:-1]}x")  # removes both ends of the veth
        deadline = time.monotonic() + 5
        snap = ask(proc)
        while time.monotonic() < deadline and snap["up"] == {dev_b: True}:
            time.sleep(0.2)
            snap = ask(proc)
        assert snap["up"] == {dev_b: False}
        assert dev_b in snap["errors"]  # type: ignore[operator]
        # the counters keep their values: the interface is gone, not the history
        assert snap["fragmented"] == {f"{dev_b}|{A_IP}|CREATE_CHILD_SA|ip": 1}
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert proc.stderr is not None
    assert "is DOWN" in proc.stderr.read()


@pytest.mark.netns
def test_sniff_command_prints_a_summary_and_exits_1(veth_pair: tuple[str, str, str]) -> None:
    ns_a, ns_b, dev_b = veth_pair
    code = "from probes.ike.commands import sniff_main; import sys; " \
           "raise SystemExit(sniff_main([sys.argv[1]], [sys.argv[2]], 3.0, 1460))"
    proc = subprocess.Popen(["ip", "netns", "exec", ns_b, PY, "-c", code, dev_b, A_IP], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    assert proc.stderr.readline() == f"ike sniff: capturing on {dev_b} for 3 s\n"
    subprocess.run(["ip", "netns", "exec", ns_a, PY, "-c", SEND, A_IP, B_IP], check=True, timeout=20)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert out.startswith(f"== interface {dev_b}: capturing; kernel drops 0\n")
    assert "PROBLEM: 1 IKE message(s) were IP-fragmented (CREATE_CHILD_SA 1)" in out


def test_missing_interface_means_sniffer_down_not_a_dead_thread() -> None:
    s = IkeSniffer(["no-such-if0"], [A_IP], 1460)
    s.start()
    try:
        snap = s.snapshot()
        assert snap.sniffer_up == {"no-such-if0": False}
        assert "interface not available" in s.errors()["no-such-if0"]
    finally:
        s.stop()


def test_rejected_filter_is_reported_at_start() -> None:
    require_root()
    s = IkeSniffer(["lo"], ["127.0.0.1"], 1460)
    s.filter = "udp port 500 and and"  # what a typo in a hand-edited filter would look like
    s.start()
    try:
        assert s.snapshot().sniffer_up == {"lo": False}
        assert "the capture filter was rejected" in s.errors()["lo"]
    finally:
        s.stop()


def test_filter_is_restricted_to_the_peers() -> None:
    f = bpf_filter(["203.0.113.10", "2001:db8::1"])
    assert f.startswith("(host 203.0.113.10 or host 2001:db8::1) and (udp port 500 or (udp port 4500 and udp[8:4] = 0)")
    assert "ip[6:2] & 0x1fff != 0" in f and "ip6[6] = 44" in f
    assert not bpf_filter([]).startswith("(host")


def test_a_peer_that_is_not_an_ip_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="ike peer 'aws-tunnel-1' is not an IP address"):
        IkeSniffer(["lo"], ["aws-tunnel-1"], 1460)
