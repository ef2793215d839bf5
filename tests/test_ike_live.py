"""The live sniffer on a real veth between two network namespaces, fed by kernel-fragmented IKE
and by a real strongSwan (charon-systemd per namespace, kernel-libipsec, PSK) rekeying over MTU 576.

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
speed = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0  # >1: the sniffer's clock runs fast
s = IkeSniffer([sys.argv[1]], [sys.argv[2]], 1460, clock=lambda: time.monotonic() * speed)
s.start()
print(json.dumps({"ready": s.snapshot().sniffer_up}), flush=True)
for line in sys.stdin:
    snap = s.snapshot()
    print(json.dumps({"messages": {"|".join(k): v for k, v in snap.messages.items()},
                      "fragmented": {"|".join(k): v for k, v in snap.fragmented.items()},
                      "rekeys": {"|".join(k): v for k, v in snap.rekeys.items()},
                      "up": snap.sniffer_up, "drops": snap.kernel_drops, "malformed": snap.malformed,
                      "unanswered": {"|".join(k): v for k, v in snap.unanswered_fragmented_requests.items()},
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
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
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
def test_the_timer_flags_an_unanswered_fragmented_rekey_when_traffic_stops(veth_pair: tuple[str, str, str]) -> None:
    ns_a, ns_b, dev_b = veth_pair
    # The sniffer's clock runs 60x fast, so its 30 s "no response" deadline passes in 0.5 s; no packet
    # arrives after the request, so only the 1 s timer can notice.
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns_b, PY, "-c", SNIFF, dev_b, A_IP, "60"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline()) == {"ready": {dev_b: True}}
        subprocess.run(["ip", "netns", "exec", ns_a, PY, "-c", SEND, A_IP, B_IP], check=True, timeout=20)
        deadline = time.monotonic() + 6
        snap = ask(proc)
        while time.monotonic() < deadline and not any(snap["unanswered"].values()):  # type: ignore[attr-defined]
            time.sleep(0.2)
            snap = ask(proc)
        assert snap["unanswered"] == {f"{dev_b}|{A_IP}": 1}
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.netns
def test_sniff_command_prints_a_summary_and_exits_1(veth_pair: tuple[str, str, str]) -> None:
    ns_a, ns_b, dev_b = veth_pair
    code = (
        "from watchdog.ike_command import sniff_main; import sys; "
        "raise SystemExit(sniff_main([sys.argv[1]], [sys.argv[2]], 3.0, 1460))"
    )
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns_b, PY, "-c", code, dev_b, A_IP],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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


# -- a real strongSwan rekey over a low-MTU link --------------------------------------------------

BIG_IKE = (
    "aes256gcm16-aes128gcm16-prfsha512-prfsha384-prfsha256-modp8192-modp6144-modp4096-modp3072-ecp521-ecp384-"
    "ecp256-curve25519,aes256-aes192-aes128-sha512-sha384-sha256-sha1-modp8192-modp6144-modp4096-modp3072-"
    "modp2048-ecp521-ecp384-ecp256-curve25519"
)
BIG_ESP = (
    "aes256gcm16-aes192gcm16-aes128gcm16-modp8192-modp6144-modp4096-ecp521-ecp384,aes256-aes192-aes128-sha512-"
    "sha384-sha256-sha1-modp8192-modp6144-modp4096-modp3072-modp2048-ecp521-ecp384-ecp256"
)

PLUGINS = (
    "random nonce openssl aes sha1 sha2 hmac gcm gmp curve25519 pem pkcs1 x509 pubkey kdf kernel-libipsec "
    "kernel-netlink socket-default vici updown"
)
STRONGSWAN_CONF = """
charon-systemd {{
  journal {{ default = -1 }}
  filelog {{ t {{ path = {d}/charon.log
                default = 1
                flush_line = yes }} }}
}}
charon {{
  load = {plugins}
  plugins {{ vici {{ socket = unix://{d}/charon.vici }} }}
}}
"""

SWANCTL_CONF = """
connections {{
  tun1 {{
    version = 2
    local_addrs = {local}
    remote_addrs = {remote}
    proposals = {ike}
    fragmentation = no
    mobike = no
    dpd_delay = 0s
    local {{ auth = psk
            id = {local} }}
    remote {{ auth = psk
             id = {remote} }}
    children {{
      tun1 {{
        local_ts = {lin}/32
        remote_ts = {rin}/32
        esp_proposals = {esp}
        start_action = {start}
      }}
    }}
  }}
}}
secrets {{
  ike-tun1 {{ id-1 = {A}
             id-2 = {B}
             secret = "lab-psk-live-test-0123456789" }}
}}
"""


def swanctl(d: Path, *args: str) -> str:
    env = dict(os.environ, STRONGSWAN_CONF=str(d / "strongswan.conf"))
    return subprocess.run(
        ["swanctl", *args, "--uri", f"unix://{d}/charon.vici"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout


@pytest.mark.netns
@pytest.mark.slow
def test_sniffer_sees_a_real_strongswan_rekey_ip_fragmented(veth_pair: tuple[str, str, str], tmp_path: Path) -> None:
    import shutil

    if shutil.which("swanctl") is None or not Path("/usr/sbin/charon-systemd").exists():
        if os.environ.get("CI"):
            pytest.fail("strongSwan (charon-systemd, swanctl) is part of the CI install")
        pytest.skip("strongSwan not installed")
    ns_a, ns_b, dev_b = veth_pair
    dev_a = f"{dev_b[:-1]}x"
    sh("ip", "-n", ns_a, "link", "set", dev_a, "mtu", "576")
    sh("ip", "-n", ns_b, "link", "set", dev_b, "mtu", "576")
    charons: list[subprocess.Popen[bytes]] = []
    sniffer = subprocess.Popen(
        ["ip", "netns", "exec", ns_b, PY, "-c", SNIFF, dev_b, A_IP],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sniffer.stdout is not None
        assert json.loads(sniffer.stdout.readline()) == {"ready": {dev_b: True}}
        sides = {
            "a": (ns_a, A_IP, B_IP, "169.254.10.2", "169.254.10.1", "start"),
            "b": (ns_b, B_IP, A_IP, "169.254.10.1", "169.254.10.2", "none"),
        }
        for name, (ns, local, remote, lin, rin, start) in sides.items():
            d = tmp_path / name
            d.mkdir()
            (d / "strongswan.conf").write_text(STRONGSWAN_CONF.format(d=d, plugins=PLUGINS))
            (d / "swanctl.conf").write_text(
                SWANCTL_CONF.format(
                    local=local, remote=remote, lin=lin, rin=rin, start=start, ike=BIG_IKE, esp=BIG_ESP, A=A_IP, B=B_IP
                )
            )
            env = dict(os.environ, STRONGSWAN_CONF=str(d / "strongswan.conf"))
            charons.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", ns, "/usr/sbin/charon-systemd"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            deadline = time.monotonic() + 10
            while not (d / "charon.vici").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            sh("ip", "-n", ns, "addr", "add", f"{lin}/30", "dev", "ipsec0")
        for name in ("b", "a"):
            swanctl(tmp_path / name, "--load-all", "--noprompt", "--file", str(tmp_path / name / "swanctl.conf"))
        deadline = time.monotonic() + 15
        while "INSTALLED" not in swanctl(tmp_path / "a", "--list-sas") and time.monotonic() < deadline:
            time.sleep(0.2)
        swanctl(tmp_path / "a", "--rekey", "--child", "tun1")
        key = f"{dev_b}|{A_IP}|CREATE_CHILD_SA|ip"
        deadline = time.monotonic() + 15
        snap = ask(sniffer)
        while snap["fragmented"].get(key, 0) < 2 and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.3)
            snap = ask(sniffer)
        # the rekey request and its response, both IP-fragmented at MTU 576
        assert snap["fragmented"][key] == 2  # type: ignore[index]
        assert snap["fragmented"][f"{dev_b}|{A_IP}|IKE_SA_INIT|ip"] == 2  # type: ignore[index]
        assert snap["rekeys"][f"{dev_b}|{A_IP}|child"] == 1  # type: ignore[index]
        assert snap["messages"][f"{dev_b}|{A_IP}|IKE_AUTH"] == 2  # type: ignore[index]
    finally:
        for proc in charons:
            proc.terminate()
        for proc in charons:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if sniffer.stdin is not None:
            sniffer.stdin.close()
        try:
            sniffer.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sniffer.kill()
            sniffer.wait()


@pytest.mark.netns
def test_sniffer_in_the_daemon_captures_inside_a_named_namespace(veth_pair: tuple[str, str, str]) -> None:
    """`ike.netns`: the daemon stays in the host namespace, the socket lives in the VPN gateway's."""
    ns_a, ns_b, dev_b = veth_pair
    s = IkeSniffer([dev_b, "no-such-if0"], [A_IP], 1460, netns=ns_b)
    s.start()
    try:
        assert s.snapshot().sniffer_up == {dev_b: True, "no-such-if0": False}
        assert "interface not available" in s.errors()["no-such-if0"]
        subprocess.run(["ip", "netns", "exec", ns_a, PY, "-c", SEND, A_IP, B_IP], check=True, timeout=20)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(s.snapshot().messages) < 2:
            time.sleep(0.2)
        snap = s.snapshot()
        assert snap.messages == {(dev_b, A_IP, "CREATE_CHILD_SA"): 1, (dev_b, A_IP, "INFORMATIONAL"): 2}
        assert snap.fragmented == {(dev_b, A_IP, "CREATE_CHILD_SA", "ip"): 1}
        # the kernel filter let through only the 3 fragments and the 2 IKE datagrams, not the ESP-in-UDP
        report = s.reports()[dev_b]
        assert (report["packets"], report["esp_in_udp"]) == (5, 0)
    finally:
        s.stop()


def test_missing_namespace_means_sniffer_down() -> None:
    require_root()
    s = IkeSniffer(["eth0"], [A_IP], 1460, netns="no-such-netns-ike")
    s.start()
    try:
        assert s.snapshot().sniffer_up == {"eth0": False}
        assert "network namespace 'no-such-netns-ike' not found" in s.errors()["eth0"]
    finally:
        s.stop()


@pytest.mark.netns
def test_sniff_command_json_inside_a_namespace(veth_pair: tuple[str, str, str]) -> None:
    import io
    import threading

    from watchdog.ike_command import sniff_main

    ns_a, ns_b, dev_b = veth_pair

    def send_later() -> None:
        time.sleep(1.0)
        subprocess.run(["ip", "netns", "exec", ns_a, PY, "-c", SEND, A_IP, B_IP], check=True, timeout=20)

    sender = threading.Thread(target=send_later)
    sender.start()
    out = io.StringIO()
    code = sniff_main([dev_b], [A_IP], 3.5, 1460, out=out, fmt="json", netns=ns_b)
    sender.join()
    doc = json.loads(out.getvalue())
    assert code == 1
    assert doc["fragmentation_found"] is True
    iface = doc["interfaces"][dev_b]
    assert (iface["sniffer_up"], iface["error"], iface["kernel_drops"]) == (True, None, 0)
    assert iface["ip_fragmented"] == {"CREATE_CHILD_SA": 1}
    assert iface["peers"][A_IP]["by_exchange"] == {"CREATE_CHILD_SA": 1, "INFORMATIONAL": 2}


# The responder's first own request on an IKE SA the sniffer never saw established (e.g. its DPD
# INFORMATIONAL after a cut) carries message ID 0 on a "new" SPI pair: no rekey happened on the wire.
SEND_DPD = """
import socket, struct, sys
def ike(exch, msgid, size, flags):
    body = struct.pack("!BBH", 0, 0, size - 28) + b"\\x5a" * (size - 32)
    return struct.pack("!8s8sBBBBII", b"\\x33" * 8, b"\\x44" * 8, 46, 0x20, exch, flags, msgid, size) + body
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 500))
s.sendto(ike(37, 0, 80, 0x00), (sys.argv[2], 500))   # INFORMATIONAL request from the SA's responder
s.sendto(ike(37, 1, 80, 0x00), (sys.argv[2], 500))   # and its next DPD
"""


@pytest.mark.netns
def test_an_sa_first_seen_at_message_id_0_is_not_a_rekey(veth_pair: tuple[str, str, str]) -> None:
    ns_a, ns_b, dev_b = veth_pair
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns_b, PY, "-c", SNIFF, dev_b, A_IP],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline()) == {"ready": {dev_b: True}}
        subprocess.run(["ip", "netns", "exec", ns_a, PY, "-c", SEND_DPD, A_IP, B_IP], check=True, timeout=20)
        deadline = time.monotonic() + 10
        snap = ask(proc)
        while time.monotonic() < deadline and sum(snap["messages"].values()) < 2:  # type: ignore[attr-defined]
            time.sleep(0.2)
            snap = ask(proc)
        assert snap["messages"] == {f"{dev_b}|{A_IP}|INFORMATIONAL": 2}
        assert snap["rekeys"] == {f"{dev_b}|{A_IP}|ike": 0, f"{dev_b}|{A_IP}|child": 0}
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
