"""Predict IKEv2 message sizes from an AWS tunnel's offered transforms, and compare with the path MTU.

Pure arithmetic (RFC 7296 payload layouts; the building blocks were checked by building the
messages). How AWS encodes its proposals is not documented, so the prediction is the worst case
that GCP's known issue points at: one proposal per combination of encryption x integrity x DH
("cross-product"). With one value per list both encodings are the same single proposal.
Assumes IPv4 on UDP 500 (add 4 bytes on UDP 4500).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from watchdog.audit.ciphers import AWS_DEFAULTS, KE_BYTES, is_aead
from watchdog.audit.inventory import TunnelOptions

ENCR_TRANSFORM = 12  # with its Key Length attribute
OTHER_TRANSFORM = 8  # PRF, INTEG, DH, ESN
PROPOSAL_HEADER = 8
SA_HEADER = 4
IKE_HEADER = 28
SK_HEADER = 4
NONCE = 4 + 32
NAT_DETECTION = 28
FRAGMENTATION_SUPPORTED = 8
REKEY_SA_NOTIFY = 12
TS_ONE_IPV4_RANGE = 24
IPV4_UDP = 28
ICV_BYTES = {"SHA1": 12, "SHA2-256": 16, "SHA2-384": 24, "SHA2-512": 32}


@dataclass(frozen=True)
class SizePrediction:
    exchange: str  # IKE_SA_INIT | CREATE_CHILD_SA (child rekey) | CREATE_CHILD_SA (IKE rekey)
    ike_bytes: int
    proposals: int

    @property
    def ip_bytes(self) -> int:
        return self.ike_bytes + IPV4_UDP

    def margin(self, mtu: int) -> int:
        """Bytes left below the MTU; negative means the datagram is IP-fragmented."""
        return mtu - self.ip_bytes


def effective(options: TunnelOptions) -> dict[str, tuple[str | int, ...]]:
    """The values a tunnel really offers: an empty list means every AWS default."""
    return {key: tuple(getattr(options, key)) or AWS_DEFAULTS[key] for key in AWS_DEFAULTS}


def sa_payload(
    encryptions: tuple[str, ...],
    integrities: tuple[str, ...],
    groups: tuple[int, ...],
    *,
    ike: bool,
    spi: int,
    esn: bool,
) -> tuple[int, int]:
    """(SA payload bytes, proposal count), one proposal per encryption x integrity x DH combination.

    An AEAD cipher carries no INTEG transform (an IKE SA still gets one PRF).
    """
    size, count = SA_HEADER, 0
    dh_list: tuple[int | None, ...] = groups or (None,)
    for enc in encryptions:
        integ_list: tuple[str | None, ...] = (None,) if is_aead(enc) else (integrities or (None,))
        for integ in integ_list:
            for group in dh_list:
                proposal = PROPOSAL_HEADER + spi + ENCR_TRANSFORM
                if ike:
                    proposal += OTHER_TRANSFORM  # PRF
                if integ is not None:
                    proposal += OTHER_TRANSFORM
                if group is not None:
                    proposal += OTHER_TRANSFORM
                if esn:
                    proposal += OTHER_TRANSFORM
                size += proposal
                count += 1
    return size, count


def _encrypted(inner: int, encryptions: tuple[str, ...], integrities: tuple[str, ...]) -> int:
    """An SK-protected message; worst case over the ciphers the IKE SA may have negotiated."""
    sizes = []
    for enc in encryptions:
        if is_aead(enc):
            sizes.append(IKE_HEADER + SK_HEADER + 8 + 4 * math.ceil((inner + 1) / 4) + 16)
        else:
            icv = max((ICV_BYTES.get(i, 32) for i in integrities), default=32)
            sizes.append(IKE_HEADER + SK_HEADER + 16 + 16 * math.ceil((inner + 1) / 16) + icv)
    return max(sizes)


def _ke(groups: tuple[int, ...]) -> int:
    """KE payload for the largest offered group: the initiator may pick any of them."""
    return 8 + max(KE_BYTES.get(g, 1024) for g in groups)


def predict(options: TunnelOptions) -> tuple[SizePrediction, ...]:
    """The three messages that carry an SA payload: IKE_SA_INIT, Child SA rekey, IKE SA rekey."""
    eff = effective(options)
    enc1 = tuple(str(v) for v in eff["phase1_encryption"])
    int1 = tuple(str(v) for v in eff["phase1_integrity"])
    dh1 = tuple(int(v) for v in eff["phase1_dh"])
    enc2 = tuple(str(v) for v in eff["phase2_encryption"])
    int2 = tuple(str(v) for v in eff["phase2_integrity"])
    dh2 = tuple(int(v) for v in eff["phase2_dh"])

    sa_init, n_init = sa_payload(enc1, int1, dh1, ike=True, spi=0, esn=False)
    init = IKE_HEADER + sa_init + _ke(dh1) + NONCE + 2 * NAT_DETECTION + FRAGMENTATION_SUPPORTED

    sa_esp, n_esp = sa_payload(enc2, int2, dh2, ike=False, spi=4, esn=True)
    child_inner = REKEY_SA_NOTIFY + sa_esp + NONCE + _ke(dh2) + 2 * TS_ONE_IPV4_RANGE
    child = _encrypted(child_inner, enc1, int1)

    sa_rekey, n_rekey = sa_payload(enc1, int1, dh1, ike=True, spi=8, esn=False)
    ike_rekey = _encrypted(sa_rekey + NONCE + _ke(dh1), enc1, int1)
    return (
        SizePrediction("IKE_SA_INIT", init, n_init),
        SizePrediction("CREATE_CHILD_SA (Child SA rekey)", child, n_esp),
        SizePrediction("CREATE_CHILD_SA (IKE SA rekey)", ike_rekey, n_rekey),
    )


def largest(options: TunnelOptions) -> SizePrediction:
    return max(predict(options), key=lambda p: p.ike_bytes)
