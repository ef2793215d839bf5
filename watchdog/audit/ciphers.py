"""The AWS tunnel-option vocabulary and what GCP Cloud VPN accepts of it (its documented cipher table).

Pure data, no I/O. Values use AWS's spelling (`AES256-GCM-16`, `SHA2-256`, DH group numbers).
Sources: botocore's ModifyVpnTunnelOptionsSpecification valid values; GCP "Supported IKE ciphers"
(IKEv2 tables, in documented proposal order).
"""

from __future__ import annotations

# AWS: every allowed value is also a default (an empty list on the tunnel means all of these).
AWS_ENCRYPTION = ("AES128", "AES256", "AES128-GCM-16", "AES256-GCM-16")
AWS_INTEGRITY = ("SHA1", "SHA2-256", "SHA2-384", "SHA2-512")
AWS_PHASE1_DH = (2, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 35)
AWS_PHASE2_DH = (2, 5, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 35, 36, 37)
AWS_DEFAULT_PHASE1_DH = (2, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24)
AWS_DEFAULT_PHASE2_DH = (2, 5, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24)
AWS_IKE_VERSIONS = ("ikev1", "ikev2")

AWS_DEFAULTS: dict[str, tuple[str | int, ...]] = {
    "ike_versions": AWS_IKE_VERSIONS,
    "phase1_encryption": AWS_ENCRYPTION,
    "phase1_integrity": AWS_INTEGRITY,
    "phase1_dh": AWS_DEFAULT_PHASE1_DH,
    "phase2_encryption": AWS_ENCRYPTION,
    "phase2_integrity": AWS_INTEGRITY,
    "phase2_dh": AWS_DEFAULT_PHASE2_DH,
}

# GCP's DH order (same for both phases): modp2048, modp2048s224, modp2048s256, modp1536, modp3072,
# modp4096, modp8192, modp1024, modp1024s160, ecp256, ecp384, ecp521, curve25519.
GCP_DH_ORDER = (14, 23, 24, 5, 15, 16, 18, 2, 22, 19, 20, 21, 31)
GCP_FIRST_DH = GCP_DH_ORDER[0]

# The AWS x GCP intersection per option (GCP has no SHA2-384 in phase 2, no DH 17 / 35-37).
GCP_SUPPORTED: dict[str, frozenset[str | int]] = {
    "ike_versions": frozenset({"ikev2"}),
    "phase1_encryption": frozenset(AWS_ENCRYPTION),
    "phase1_integrity": frozenset(AWS_INTEGRITY),
    "phase1_dh": frozenset(set(AWS_PHASE1_DH) & set(GCP_DH_ORDER)),
    "phase2_encryption": frozenset(AWS_ENCRYPTION),
    "phase2_integrity": frozenset({"SHA1", "SHA2-256", "SHA2-512"}),
    "phase2_dh": frozenset(set(AWS_PHASE2_DH) & set(GCP_DH_ORDER)),
}

# What `--fix-ipsec` picks when a tunnel offers several supported values: the first of these that the
# tunnel already offers (so the change stays minimal), else the first. AES-CBC-256 with
# HMAC-SHA2-256-128 is in GCP's non-AEAD tables for both phases; it avoids depending on whether GCP
# proposes its AEAD suites before the CBC ones (undocumented) and on how AWS pairs an integrity
# value with GCM. DH is always GCP's first group (14), which AWS accepts in both phases.
PREFERENCE: dict[str, tuple[str | int, ...]] = {
    "ike_versions": ("ikev2",),
    "phase1_encryption": ("AES256", "AES128", "AES256-GCM-16", "AES128-GCM-16"),
    "phase1_integrity": ("SHA2-256", "SHA2-512", "SHA2-384", "SHA1"),
    "phase1_dh": (GCP_FIRST_DH,),
    "phase2_encryption": ("AES256", "AES128", "AES256-GCM-16", "AES128-GCM-16"),
    "phase2_integrity": ("SHA2-256", "SHA2-512", "SHA1"),
    "phase2_dh": (GCP_FIRST_DH,),
}

# Key-exchange data size K per DH group, octets (RFC 2409/3526/5114/5903/8031; ML-KEM: public key).
KE_BYTES = {
    2: 128,
    5: 192,
    14: 256,
    15: 384,
    16: 512,
    17: 768,
    18: 1024,
    19: 64,
    20: 96,
    21: 132,
    22: 128,
    23: 256,
    24: 256,
    31: 32,
    32: 56,
    35: 800,
    36: 1184,
    37: 1568,
}

# AWS option key -> (ModifyVpnTunnelOptions request key, Terraform aws_vpn_connection suffix).
REQUEST_KEYS = {
    "ike_versions": ("IKEVersions", "ike_versions"),
    "phase1_encryption": ("Phase1EncryptionAlgorithms", "phase1_encryption_algorithms"),
    "phase1_integrity": ("Phase1IntegrityAlgorithms", "phase1_integrity_algorithms"),
    "phase1_dh": ("Phase1DHGroupNumbers", "phase1_dh_group_numbers"),
    "phase2_encryption": ("Phase2EncryptionAlgorithms", "phase2_encryption_algorithms"),
    "phase2_integrity": ("Phase2IntegrityAlgorithms", "phase2_integrity_algorithms"),
    "phase2_dh": ("Phase2DHGroupNumbers", "phase2_dh_group_numbers"),
}
# The same lists in DescribeVpnConnections' TunnelOptions (response casing).
RESPONSE_KEYS = {
    "ike_versions": "IkeVersions",
    "phase1_encryption": "Phase1EncryptionAlgorithms",
    "phase1_integrity": "Phase1IntegrityAlgorithms",
    "phase1_dh": "Phase1DHGroupNumbers",
    "phase2_encryption": "Phase2EncryptionAlgorithms",
    "phase2_integrity": "Phase2IntegrityAlgorithms",
    "phase2_dh": "Phase2DHGroupNumbers",
}


def is_aead(encryption: str) -> bool:
    return encryption.endswith("-GCM-16")
