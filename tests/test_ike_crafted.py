"""`watchdog ike analyze` on crafted edge cases: fragment order, overlaps, loss, IKEv1, NAT-T, IPv6,
link types, rekey inference, unanswered rekeys, RFC 7383 counting."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import CookedLinux, Dot1Q
from scapy.packet import Packet, Raw

from tests.data.ike.craft import R_FLAG, SPI_I, SPI_R, eth, frag4, frag6, ike, ike_skf, sk, udp4, udp6, write
from watchdog.ike_command import analyze_main

A = "203.0.113.1"
B = "198.51.100.1"
PAIR = f"{B} <-> {A}"
T0 = 1_700_000_000.0


def analyze(tmp_path: Path, packets: list[Any], mtu: int = 1460, linktype: int = 1) -> tuple[int, dict[str, Any]]:
    path = write(str(tmp_path / "c.pcap"), packets, linktype=linktype)
    out = io.StringIO()
    code = analyze_main([path], "json", mtu, out=out)
    return code, json.loads(out.getvalue())


def ccsa_request(size: int = 3000, msgid: int = 2, inner: int = 41, ip_id: int = 7, natt: bool = False) -> Packet:
    return udp4(A, B, ike(36, msgid=msgid, body=sk(inner, size - 28)), ip_id=ip_id, natt=natt)


def test_reversed_fragments_count_one_complete_fragmented_message(tmp_path: Path) -> None:
    pieces = frag4(ccsa_request(), 600)
    assert len(pieces) == 6
    code, doc = analyze(tmp_path, list(reversed(pieces)))
    assert code == 1
    assert doc["messages"] == 1
    assert doc["by_exchange"] == {"CREATE_CHILD_SA": 1}
    assert doc["ip_fragmented"] == {"CREATE_CHILD_SA": 1}
    assert doc["incomplete_datagrams"] == 0
    assert doc["fragment_tracker"]["completed"] == 1
    ev = [e for e in doc["events"] if e["type"] == "ip_fragmented"]
    assert ev[0]["fragments"] == 6 and ev[0]["complete"] is True and ev[0]["ip_id"] == 7


def test_shuffled_fragments_with_first_in_the_middle(tmp_path: Path) -> None:
    p = frag4(ccsa_request(), 600)
    code, doc = analyze(tmp_path, [p[3], p[5], p[0], p[1], p[4], p[2]])
    assert doc["fragment_tracker"]["completed"] == 1
    assert doc["incomplete_datagrams"] == 0
    assert doc["fragment_tracker"]["orphans_expired"] == 0


def test_overlapping_and_duplicate_fragments_are_counted_not_double_counted(tmp_path: Path) -> None:
    p = frag4(ccsa_request(), 600)
    raw_ip = bytes(p[2][IP])
    shifted = IP(raw_ip)
    shifted.frag -= 10  # starts 80 bytes inside the previous piece
    overlap = eth() / IP(bytes(shifted))
    code, doc = analyze(tmp_path, [p[0], p[1], overlap, p[1], p[2], p[3], p[4], p[5]])
    assert doc["messages"] == 1
    assert doc["fragment_tracker"]["overlaps"] >= 1
    assert doc["fragment_tracker"]["duplicates"] == 1
    assert doc["fragment_tracker"]["completed"] == 1


def test_missing_last_fragment_is_an_incomplete_datagram(tmp_path: Path) -> None:
    p = frag4(ccsa_request(), 600)
    code, doc = analyze(tmp_path, p[:-1])
    assert code == 1
    assert doc["ip_fragmented"] == {"CREATE_CHILD_SA": 1}
    assert doc["incomplete_datagrams"] == 1
    ev = [e for e in doc["events"] if e["type"] == "ip_fragmented"][0]
    assert ev["complete"] is False and ev["outcome"] == "capture_end"


def test_incomplete_set_times_out_after_30_seconds_of_capture_time(tmp_path: Path) -> None:
    p = frag4(ccsa_request(), 600)
    later = udp4(A, B, ike(37, msgid=9, size=80))
    pkts: list[Any] = [(T0 + i * 0.01, x) for i, x in enumerate(p[:-1])] + [(T0 + 31, later)]
    code, doc = analyze(tmp_path, pkts)
    ev = [e for e in doc["events"] if e["type"] == "ip_fragmented"][0]
    assert ev["outcome"] == "timeout"
    assert doc["fragment_tracker"]["reasons"] == {"timeout": 1}


def test_ikev1_exchanges_are_named_and_fragmented_quick_mode_is_seen(tmp_path: Path) -> None:
    main = udp4(A, B, ike(2, version=0x10, flags=0, msgid=0, first_payload=1, body=b"\x00" * 100))
    aggr = udp4(A, B, ike(4, version=0x10, flags=0, msgid=0, first_payload=1, body=b"\x00" * 100))
    info = udp4(A, B, ike(5, version=0x10, flags=1, msgid=77, first_payload=8, body=b"\x00" * 60))
    quick = udp4(A, B, ike(32, version=0x10, flags=1, msgid=99, first_payload=8, body=b"\x00" * 2500), ip_id=3)
    code, doc = analyze(tmp_path, [main, aggr, info, *frag4(quick, 800)])
    assert doc["by_exchange"] == {"AGGRESSIVE": 1, "INFORMATIONAL_V1": 1, "MAIN_MODE": 1, "QUICK_MODE": 1}
    assert doc["ip_fragmented"] == {"QUICK_MODE": 1}
    assert doc["rekeys"] == {"ike": 0, "child": 0}
    assert code == 1


def test_nat_t_marker_esp_in_udp_and_keepalive(tmp_path: Path) -> None:
    natt_ike = udp4(A, B, ike(37, msgid=3, size=80), natt=True)
    natt_ike_highport = udp4(A, B, ike(37, msgid=4, size=80), sport=61234, dport=4500, natt=True)
    esp = eth() / IP(src=A, dst=B) / UDP(sport=4500, dport=4500) / Raw(b"\x00\x00\x10\x01" + b"\x00" * 80)
    keepalive = eth() / IP(src=A, dst=B) / UDP(sport=4500, dport=4500) / Raw(b"\xff")
    code, doc = analyze(tmp_path, [natt_ike, natt_ike_highport, esp, esp, keepalive])
    assert code == 0
    assert doc["messages"] == 2
    assert doc["esp_in_udp"] == 2
    assert doc["nat_keepalives"] == 1
    assert doc["malformed"] == {}


def test_fragmented_esp_in_udp_is_not_ike(tmp_path: Path) -> None:
    esp = eth() / IP(src=A, dst=B, id=5) / UDP(sport=4500, dport=4500) / Raw(b"\x00\x00\x10\x01" + b"\x00" * 3000)
    pieces = frag4(esp, 600)
    code, doc = analyze(tmp_path, pieces)
    assert code == 0
    assert doc["messages"] == 0
    assert doc["fragment_tracker"]["non_ike_fragments"] == len(pieces)
    assert doc["fragment_tracker"]["orphans_expired"] == 0


def test_truncated_and_invalid_headers_are_counted_and_skipped(tmp_path: Path) -> None:
    good = udp4(A, B, ike(37, msgid=3, size=80))
    short_ike = eth() / IP(src=A, dst=B) / UDP(sport=500, dport=500) / Raw(b"\x01" * 10)
    bad_version = udp4(A, B, ike(37, version=0x30, size=80))
    bad_length = eth() / IP(src=A, dst=B) / UDP(sport=500, dport=500) / Raw(ike(37, size=80)[:60] + b"\x00" * 40)
    cut_ip = Raw(bytes(eth() / IP(src=A, dst=B) / UDP(sport=500, dport=500))[:24])
    cut_eth = Raw(b"\x00" * 6)
    code, doc = analyze(tmp_path, [good, short_ike, bad_version, bad_length, cut_ip, cut_eth])
    assert doc["messages"] == 1
    assert doc["malformed"] == {
        "bad_ike_length": 1,
        "bad_ike_version": 1,
        "truncated_ike": 1,
        "truncated_ip": 1,
        "truncated_link": 1,
    }


def test_ipv6_fragments_and_unfragmented_ipv6(tmp_path: Path) -> None:
    big = udp6("2001:db8:a::1", "2001:db8:b::1", ike(36, msgid=2, size=3000))
    small = udp6("2001:db8:a::1", "2001:db8:b::1", ike(37, msgid=3, size=80))
    pieces = frag6(big, ident=4242, size=1000)
    assert len(pieces) >= 3
    code, doc = analyze(tmp_path, [small, *reversed(pieces)])
    assert doc["by_exchange"] == {"CREATE_CHILD_SA": 1, "INFORMATIONAL": 1}
    assert doc["ip_fragmented"] == {"CREATE_CHILD_SA": 1}
    assert doc["incomplete_datagrams"] == 0
    ev = [e for e in doc["events"] if e["type"] == "ip_fragmented"][0]
    assert ev["fragment_id"] == 4242 and ev["complete"] is True
    assert doc["peers"] == {"2001:db8:a::1 <-> 2001:db8:b::1": doc["peers"]["2001:db8:a::1 <-> 2001:db8:b::1"]}


def test_ipv6_missing_fragment_is_incomplete(tmp_path: Path) -> None:
    big = udp6("2001:db8:a::1", "2001:db8:b::1", ike(36, msgid=2, size=3000))
    pieces = frag6(big, size=1000)
    code, doc = analyze(tmp_path, [pieces[0], pieces[-1]])
    assert doc["incomplete_datagrams"] == 1


def test_vlan_cooked_and_raw_ip_link_types(tmp_path: Path) -> None:
    payload = ike(37, msgid=3, size=80)
    vlan = eth() / Dot1Q(vlan=10) / Dot1Q(vlan=20) / IP(src=A, dst=B) / UDP(sport=500, dport=500) / Raw(payload)
    assert analyze(tmp_path, [vlan])[1]["messages"] == 1
    cooked = CookedLinux(proto=0x0800) / IP(src=A, dst=B) / UDP(sport=500, dport=500) / Raw(payload)
    assert analyze(tmp_path, [cooked], linktype=113)[1]["messages"] == 1
    raw = IP(src=A, dst=B) / UDP(sport=500, dport=500) / Raw(payload)
    assert analyze(tmp_path, [raw], linktype=101)[1]["messages"] == 1


def test_child_rekey_inferred_from_notify_first(tmp_path: Path) -> None:
    req = udp4(A, B, ike(36, msgid=2, body=sk(41, 400)))
    code, doc = analyze(tmp_path, [req, req])  # a retransmission is still one rekey
    assert doc["rekeys"] == {"ike": 0, "child": 1}
    ev = [e for e in doc["events"] if e["type"] == "rekey"]
    assert [e["inferred_from"] for e in ev] == ["create_child_sa_starting_with_notify"]


def test_ike_rekey_confirmed_by_new_spi_pair_at_message_id_zero(tmp_path: Path) -> None:
    req = udp4(A, B, ike(36, msgid=2, body=sk(33, 400)))
    resp = udp4(B, A, ike(36, msgid=2, flags=R_FLAG, body=sk(33, 400)))
    new_sa = udp4(A, B, ike(37, spi_i=b"N" * 8, spi_r=b"M" * 8, msgid=0, size=80))
    code, doc = analyze(tmp_path, [req, resp, new_sa])
    assert doc["rekeys"] == {"ike": 1, "child": 0}
    assert doc["rekeys_unconfirmed"] == 0
    ike_ev = [e for e in doc["events"] if e["type"] == "rekey" and e["sa"] == "ike"][0]
    assert ike_ev["inferred_from"] == "create_child_sa_starting_with_sa_then_new_spi_pair"


def test_sa_first_request_without_new_sa_stays_unconfirmed(tmp_path: Path) -> None:
    req = udp4(A, B, ike(36, msgid=2, body=sk(33, 400)))
    code, doc = analyze(tmp_path, [req])
    assert doc["rekeys"] == {"ike": 0, "child": 0}
    assert doc["rekeys_unconfirmed"] == 1


def test_new_sa_after_ike_sa_init_is_not_a_rekey(tmp_path: Path) -> None:
    init_req = udp4(A, B, ike(34, spi_r=b"\x00" * 8, msgid=0, first_payload=33, body=b"\x00" * 300))
    init_resp = udp4(B, A, ike(34, msgid=0, flags=R_FLAG, first_payload=33, body=b"\x00" * 300))
    auth = udp4(A, B, ike(35, msgid=1, size=300))
    code, doc = analyze(tmp_path, [init_req, init_resp, auth])
    assert doc["rekeys"] == {"ike": 0, "child": 0}


def test_fragmented_rekey_request_without_response_is_flagged(tmp_path: Path) -> None:
    p = frag4(ccsa_request(), 600)
    retransmit = frag4(ccsa_request(ip_id=8), 600)
    other = udp4(A, B, ike(37, spi_i=b"x" * 8, msgid=1, size=80))
    pkts: list[Any] = [(T0 + i * 0.001, x) for i, x in enumerate(p)]
    pkts += [(T0 + 4 + i * 0.001, x) for i, x in enumerate(retransmit)]
    pkts.append((T0 + 31, other))
    code, doc = analyze(tmp_path, pkts)
    assert code == 1
    assert doc["unanswered_fragmented_requests"] == 1
    ev = [e for e in doc["events"] if e["type"] == "unanswered_fragmented_request"][0]
    assert ev["datagrams"] == 2 and ev["fragmentation"] == "ip" and ev["message_id"] == 2


def test_answered_fragmented_request_is_not_flagged(tmp_path: Path) -> None:
    p = frag4(ccsa_request(), 600)
    resp = udp4(B, A, ike(36, msgid=2, flags=R_FLAG, body=sk(33, 300)))
    other = udp4(A, B, ike(37, msgid=3, size=80))
    pkts: list[Any] = [(T0 + i * 0.001, x) for i, x in enumerate(p)] + [(T0 + 1, resp), (T0 + 40, other)]
    code, doc = analyze(tmp_path, pkts)
    assert doc["unanswered_fragmented_requests"] == 0
    assert not [e for e in doc["events"] if "unanswered" in e["type"] or "pending" in e["type"]]


def test_response_from_the_other_side_does_not_answer_its_own_request(tmp_path: Path) -> None:
    # Both sides use message ID 2 for their own requests; only the I flag tells them apart.
    mine = frag4(ccsa_request(), 600)
    theirs_resp = udp4(A, B, ike(36, msgid=2, flags=R_FLAG | 0x08, body=sk(33, 300)))
    other = udp4(A, B, ike(37, msgid=3, size=80))
    pkts: list[Any] = [(T0 + i * 0.001, x) for i, x in enumerate(mine)] + [(T0 + 1, theirs_resp), (T0 + 40, other)]
    assert analyze(tmp_path, pkts)[1]["unanswered_fragmented_requests"] == 1


def test_request_pending_when_the_capture_ends_too_early(tmp_path: Path) -> None:
    code, doc = analyze(tmp_path, frag4(ccsa_request(), 600))
    assert doc["unanswered_fragmented_requests"] == 0
    assert [e["type"] for e in doc["events"]].count("fragmented_request_pending_at_end") == 1


def test_rfc7383_fragments_count_as_one_message(tmp_path: Path) -> None:
    frags = [udp4(A, B, ike_skf(36, n, 3, msgid=5), natt=True) for n in (1, 2, 3)]
    resp = udp4(B, A, ike(36, msgid=5, flags=R_FLAG, body=sk(33, 300)), natt=True)
    code, doc = analyze(tmp_path, [frags[1], frags[0], frags[2], resp])
    assert code == 0  # RFC 7383 is the cure, not the disease
    assert doc["by_exchange"] == {"CREATE_CHILD_SA": 2}
    assert doc["ikev2_fragmented"] == {"CREATE_CHILD_SA": 1}
    assert doc["ip_fragmented"] == {}
    assert doc["rekeys"]["child"] == 1


def test_rfc7383_retransmission_is_a_second_message(tmp_path: Path) -> None:
    frags = [udp4(A, B, ike_skf(36, n, 2, msgid=5)) for n in (1, 2)]
    code, doc = analyze(tmp_path, frags + frags)
    assert doc["by_exchange"] == {"CREATE_CHILD_SA": 2}
    assert doc["rekeys"]["child"] == 1


def test_message_over_mtu_is_a_risk_not_a_failure(tmp_path: Path) -> None:
    big = udp4(A, B, ike(36, msgid=2, size=1450))  # 1478 B datagram
    code, doc = analyze(tmp_path, [big], mtu=1400)
    assert code == 0
    assert doc["over_mtu"] == {"CREATE_CHILD_SA": 1}
    assert doc["largest_message_bytes"] == 1450
    assert analyze(tmp_path, [big], mtu=1500)[1]["over_mtu"] == {}


def test_json_has_the_design_contract_keys(tmp_path: Path) -> None:
    code, doc = analyze(tmp_path, [udp4(A, B, ike(37, size=80))])
    for key in (
        "messages",
        "by_exchange",
        "ip_fragmented",
        "ikev2_fragmented",
        "rekeys",
        "largest_message_bytes",
        "incomplete_datagrams",
        "events",
    ):
        assert key in doc
    assert set(doc["rekeys"]) == {"ike", "child"}
    assert list(doc["peers"]) == [PAIR]


def test_text_report_leads_with_the_verdict(tmp_path: Path) -> None:
    path = write(str(tmp_path / "c.pcap"), frag4(ccsa_request(), 600))
    out = io.StringIO()
    assert analyze_main([path], "text", 1460, out=out) == 1
    text = out.getvalue()
    assert text.splitlines()[1].startswith("PROBLEM: 1 IKE message(s) were IP-fragmented (CREATE_CHILD_SA 1)")
    assert "IP-fragmented CREATE_CHILD_SA request 203.0.113.1 -> 198.51.100.1" in text
    path = write(str(tmp_path / "d.pcap"), [udp4(A, B, ike(37, size=80))])
    out = io.StringIO()
    assert analyze_main([path], "text", 1460, out=out) == 0
    assert out.getvalue().splitlines()[1] == "OK: no IP-fragmented IKE messages among 1 IKE message(s)."


def test_spis_are_reported_in_hex(tmp_path: Path) -> None:
    code, doc = analyze(tmp_path, frag4(ccsa_request(), 600))
    ev = doc["events"][0]
    assert ev["spi_i"] == SPI_I.hex() and ev["spi_r"] == SPI_R.hex()


def test_an_established_sa_first_seen_at_message_id_zero_is_not_a_rekey(tmp_path: Path) -> None:
    """A capture (or a live sniffer) that starts mid-life meets the responder's first own request."""
    dpd = udp4(B, A, ike(37, spi_i=b"N" * 8, spi_r=b"M" * 8, msgid=0, size=80))
    answer = udp4(A, B, ike(37, spi_i=b"N" * 8, spi_r=b"M" * 8, msgid=0, flags=R_FLAG, size=80))
    code, doc = analyze(tmp_path, [dpd, answer])
    assert doc["rekeys"] == {"ike": 0, "child": 0} and doc["rekeys_unconfirmed"] == 0
