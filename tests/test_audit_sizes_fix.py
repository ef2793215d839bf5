"""IKE message-size prediction against the measured reference sizes, and the --fix-ipsec target choice."""

from __future__ import annotations

import pytest

from tests.fakes import audit_topologies as topo
from watchdog.audit import sizes
from watchdog.audit.ciphers import AWS_ENCRYPTION, AWS_INTEGRITY
from watchdog.audit.inventory import TunnelOptions
from watchdog.audit.ipsec_fix import plan, target_options
from watchdog.audit.report import plan_text

IKE_DH = (2, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24)


def test_sa_payload_matches_the_measured_cross_product_encoding() -> None:
    # 96 CBC proposals (2 ENCR x 4 INTEG x 12 DH, one PRF each) + 24 GCM ones: 5092 bytes measured.
    assert sizes.sa_payload(AWS_ENCRYPTION, AWS_INTEGRITY, IKE_DH, ike=True, spi=0, esn=False) == (5092, 120)


@pytest.mark.parametrize(
    ("group", "exchange", "ike_bytes"),
    [
        (14, "IKE_SA_INIT", 440),
        (14, "CREATE_CHILD_SA (Child SA rekey)", 480),
        (14, "CREATE_CHILD_SA (IKE SA rekey)", 432),
        (18, "CREATE_CHILD_SA (Child SA rekey)", 1248),
    ],
)
def test_single_transform_sizes(group: int, exchange: str, ike_bytes: int) -> None:
    options = TunnelOptions(("ikev2",), ("AES128",), ("SHA2-256",), (group,), ("AES128",), ("SHA2-256",), (group,))
    predicted = {p.exchange: p for p in sizes.predict(options)}
    assert predicted[exchange].ike_bytes == ike_bytes
    assert predicted[exchange].proposals == 1
    assert predicted[exchange].ip_bytes == ike_bytes + 28


def test_aws_defaults_predict_ip_fragmentation_at_1500() -> None:
    biggest = sizes.largest(TunnelOptions())
    assert biggest.exchange.startswith("CREATE_CHILD_SA")
    assert biggest.margin(1500) < -4000


def test_target_keeps_a_supported_single_choice_and_narrows_the_rest() -> None:
    current = TunnelOptions(
        ike_versions=("ikev1", "ikev2"),
        phase1_encryption=("AES256-GCM-16",),
        phase1_integrity=("SHA1", "SHA2-512"),
        phase1_dh=(19, 20),
        phase2_encryption=("AES128", "AES128-GCM-16"),
        phase2_integrity=("SHA2-384",),
        phase2_dh=(),
    )
    assert target_options(current) == TunnelOptions(
        ike_versions=("ikev2",),
        phase1_encryption=("AES256-GCM-16",),  # already one supported value: kept
        phase1_integrity=("SHA2-512",),  # preferred among what the tunnel offers
        phase1_dh=(14,),  # GCP's first DH group, accepted by AWS in both phases
        phase2_encryption=("AES128",),
        phase2_integrity=("SHA2-256",),  # SHA2-384 is not supported in phase 2
        phase2_dh=(14,),
    )


def test_plan_for_a_good_topology_changes_nothing_and_skips_the_cheap_spare() -> None:
    assert not any(c.needed for c in plan(topo.four_tunnels()))
    changes = plan(topo.cheap())
    assert [c.outside_ip for c in changes] == [topo.AWS_IPS[0]]
    assert "already minimal" in plan_text(changes)


def test_plan_text_shows_before_after_call_and_terraform() -> None:
    changes = plan(topo.with_options(topo.four_tunnels(), 1, phase1_dh=(2, 14)))
    text = plan_text(changes)
    assert "aws-tokyo:vpn-000a tunnel2 198.51.100.2 (UP): change needed" in text
    assert "phase1_dh          2, 14  ->  14" in text
    assert '"Phase1DHGroupNumbers": [{"Value": 14}]' in text
    assert "tunnel2_phase1_dh_group_numbers = [14]" in text
    assert "nothing was changed" in text
