"""`watchdog ike analyze` on captures of REAL strongSwan rekeys, checked against tshark on the same files.

The captures and expected.json come from tests/data/ike/make_captures.sh (charon in two network
namespaces, forced `swanctl --rekey`). tshark runs here again on every capture so the comparison is
with ground truth, not with a stored copy of our own output.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.data.ike.tshark_truth import truth
from watchdog.ike_command import analyze_main

DATA = Path(__file__).parent / "data" / "ike"
CAPTURES = ["normal.pcap", "lowmtu.pcap", "rfc7383.pcap", "unanswered.pcap"]
COMPARED = [
    "messages",
    "by_exchange",
    "ip_fragmented",
    "ikev2_fragmented",
    "largest_message_bytes",
    "incomplete_datagrams",
]


def analyze(name: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    code = analyze_main([str(DATA / name)], "json", 1460, out=out)
    return code, json.loads(out.getvalue())


def need_tshark() -> None:
    if shutil.which("tshark") is None:
        if os.environ.get("CI"):
            pytest.fail("tshark is part of the CI install and must be present")
        pytest.skip("tshark not installed")


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_is_small_and_committed(name: str) -> None:
    assert (DATA / name).stat().st_size < 100_000


@pytest.mark.parametrize("name", CAPTURES)
def test_analyzer_agrees_with_tshark(name: str) -> None:
    need_tshark()
    expected = truth(str(DATA / name))
    _, doc = analyze(name)
    assert {k: doc[k] for k in COMPARED} == {k: expected[k] for k in COMPARED}
    assert doc["fragment_tracker"]["completed"] == expected["complete_datagrams"]
    assert doc["malformed"] == {}


@pytest.mark.parametrize("name", CAPTURES)
def test_analyzer_agrees_with_the_recorded_ground_truth(name: str) -> None:
    recorded = json.loads((DATA / "expected.json").read_text())[name]
    _, doc = analyze(name)
    assert {k: doc[k] for k in COMPARED} == {k: recorded[k] for k in COMPARED}


def test_normal_mtu_nothing_fragmented_and_rekeys_inferred() -> None:
    code, doc = analyze("normal.pcap")
    assert code == 0
    assert doc["ip_fragmented"] == {} and doc["ikev2_fragmented"] == {}
    # recipe: child rekey, IKE rekey, child rekey on the new IKE SA (from A), child rekey from B
    assert doc["rekeys"] == {"ike": 1, "child": 3}
    assert doc["rekeys_unconfirmed"] == 0
    assert doc["esp_in_udp"] > 0  # kernel-libipsec encapsulates ESP in UDP 4500: seen, not counted as IKE


def test_low_mtu_rekeys_are_ip_fragmented() -> None:
    code, doc = analyze("lowmtu.pcap")
    assert code == 1
    assert doc["ip_fragmented"]["CREATE_CHILD_SA"] == doc["by_exchange"]["CREATE_CHILD_SA"] == 8
    assert doc["incomplete_datagrams"] == 0
    assert doc["rekeys"] == {"ike": 1, "child": 3}
    requests = [
        e
        for e in doc["events"]
        if e["type"] == "ip_fragmented" and e["exchange"] == "CREATE_CHILD_SA" and not e["response"]
    ]
    assert len(requests) == 4 and all(e["complete"] and e["fragments"] == 3 for e in requests)


def test_rfc7383_moves_rekeys_to_ike_fragments() -> None:
    code, doc = analyze("rfc7383.pcap")
    assert doc["ikev2_fragmented"] == {"CREATE_CHILD_SA": 8}
    assert "CREATE_CHILD_SA" not in doc["ip_fragmented"]
    # RFC 7383 cannot fragment IKE_SA_INIT: with big proposals it is still IP-fragmented
    assert doc["ip_fragmented"] == {"IKE_SA_INIT": 1}
    assert code == 1
    assert doc["rekeys"] == {"ike": 1, "child": 3}


def test_rekey_dropped_by_the_peer_is_flagged_unanswered() -> None:
    code, doc = analyze("unanswered.pcap")
    assert code == 1
    assert doc["unanswered_fragmented_requests"] == 1
    ev = [e for e in doc["events"] if e["type"] == "unanswered_fragmented_request"]
    assert len(ev) == 1
    assert ev[0]["exchange"] == "CREATE_CHILD_SA" and ev[0]["fragmentation"] == "ip"
    assert ev[0]["datagrams"] >= 2  # strongSwan retransmitted it


def test_several_files_are_one_report() -> None:
    out = io.StringIO()
    code = analyze_main([str(DATA / "normal.pcap"), str(DATA / "lowmtu.pcap")], "json", 1460, out=out)
    doc = json.loads(out.getvalue())
    assert code == 1
    assert doc["messages"] == analyze("normal.pcap")[1]["messages"] + analyze("lowmtu.pcap")[1]["messages"]
    assert doc["capture"]["files"] == [str(DATA / "normal.pcap"), str(DATA / "lowmtu.pcap")]
