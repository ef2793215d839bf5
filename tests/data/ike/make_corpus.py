#!/usr/bin/env python3
"""Regenerate the fuzz corpus in tests/data/ike/corpus/ (run from the repo root with .venv/bin/python).

Broken frames, one per file, named <linktype>-<what>.bin; tests/test_ike_fuzz.py feeds each one.
"""

import sys

sys.path.insert(0, ".")
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.packet import Raw

from tests.data.ike.craft import eth, ike, ike_skf, udp4

out = "tests/data/ike/corpus/"
A, B = "203.0.113.1", "198.51.100.1"
good = bytes(udp4(A, B, ike(36, msgid=2, size=300)))


def w(name, data, lt=1):
    open(out + f"{lt}-{name}.bin", "wb").write(data)


for cut in (13, 14, 20, 33, 34, 41, 42, 45, 60, 69):
    w(f"ike-cut-at-{cut}", good[:cut])
w("ike-length-huge", good[: 14 + 28 + 24] + b"\xff\xff\xff\xff" + good[14 + 28 + 28 :])
w("ike-length-zero", good[: 14 + 28 + 24] + b"\x00\x00\x00\x00" + good[14 + 28 + 28 :])
w("udp-length-zero", good[: 14 + 20 + 4] + b"\x00\x00" + good[14 + 20 + 6 :])
w("udp-length-huge", good[: 14 + 20 + 4] + b"\xff\xff" + good[14 + 20 + 6 :])
w("ip-ihl-3", good[:14] + b"\x43" + good[15:])
w("ip-ihl-15", good[:14] + b"\x4f" + good[15:])
w("ip-total-short", good[:16] + b"\x00\x10" + good[18:])
w("ip-version-6-in-v4", good[:14] + b"\x65" + good[15:])
w("vlan-stack-cut", b"\x02" * 12 + b"\x81\x00\x00\x0a" * 5 + b"\x81\x00")
w("natt-marker-cut", bytes(eth() / IP(src=A, dst=B) / UDP(sport=4500, dport=4500) / Raw(b"\x00\x00")))
w("natt-empty", bytes(eth() / IP(src=A, dst=B) / UDP(sport=4500, dport=4500)))
skf = bytes(udp4(A, B, ike_skf(36, 1, 3, msgid=3)))
w("skf-number-zero", skf[: 14 + 28 + 32] + b"\x00\x00\x00\x03" + skf[14 + 28 + 36 :])
w("skf-number-above-total", skf[: 14 + 28 + 32] + b"\x00\x09\x00\x03" + skf[14 + 28 + 36 :])
v6 = bytes(
    eth()
    / IPv6(src="2001:db8::1", dst="2001:db8::2")
    / IPv6ExtHdrHopByHop()
    / UDP(sport=500, dport=500)
    / Raw(ike(37, size=80))
)
w("ipv6-ext-cut", v6[: 14 + 40 + 4])
w("ipv6-ext-len-huge", v6[: 14 + 40 + 1] + b"\xff" + v6[14 + 40 + 2 :])
fr6 = bytes(
    eth()
    / IPv6(src="2001:db8::1", dst="2001:db8::2")
    / IPv6ExtHdrFragment(m=1, id=5)
    / UDP(sport=500, dport=500, len=3000)
    / Raw(ike(36, size=100))
)
w("ipv6-first-frag-ike-length-mismatch", fr6)
w("ipv6-frag-header-cut", fr6[: 14 + 40 + 5])
w(
    "ipv4-first-frag-udp-shorter-than-piece",
    bytes(eth() / IP(src=A, dst=B, flags="MF") / UDP(sport=500, dport=500, len=20) / Raw(ike(36, size=100))),
)
w("sll-cut", b"\x00" * 10, 113)
w("sll2-cut", b"\x00" * 10, 276)
w("raw-empty", b"", 101)
w("raw-version-0", b"\x00" * 40, 101)
w("unknown-linktype", good, 147)
print("ok")
