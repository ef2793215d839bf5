"""Splitting the exporters of one config among replicas: `--shard i/n` or `shard: i/n`.

Replica i of n owns the exporters whose stable hash of name (or `shard_key`), modulo n, is i: entries
that share a `shard_key` stay together (the two clouds of one VPN, whose tunnels join). The hash is Prometheus's
`hashmod` relabel action (the last 8 bytes of the name's MD5, big-endian, modulo n), so the same
split can be reproduced in relabel rules and never depends on Python's per-process string hashing.
Every replica keeps the probes, the IKE sniffer and the alerting (Alertmanager deduplicates alerts
with equal labels). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from watchdog.config import Config

_SHARD_RE = re.compile(r"^\s*(\d{1,4})\s*/\s*(\d{1,4})\s*$")


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    total: int

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"

    def owns(self, key: str) -> bool:
        return hashmod(key, self.total) == self.index


WHOLE = Shard(0, 1)


def parse_shard(text: str) -> Shard:
    """`i/n` with 0 <= i < n (ValueError with a readable message otherwise)."""
    match = _SHARD_RE.match(str(text))
    if match is None:
        raise ValueError(f"invalid shard {text!r}: expected INDEX/TOTAL, e.g. 0/3")
    index, total = int(match.group(1)), int(match.group(2))
    if total < 1 or not 0 <= index < total:
        raise ValueError(f"invalid shard {text!r}: INDEX must be 0..TOTAL-1 and TOTAL at least 1")
    return Shard(index, total)


def hashmod(value: str, modulus: int) -> int:
    """Prometheus relabel `hashmod`: uint64 of the MD5 digest's second half, modulo `modulus`."""
    digest = hashlib.md5(value.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[8:], "big") % modulus


def config_shard(config: Config, override: str | None = None) -> Shard:
    """The shard this replica runs: the command line's, else the config's, else the whole."""
    text = override if override is not None else config.shard
    return parse_shard(text) if text is not None else WHOLE


def owned(config: Config, shard: Shard) -> Config:
    """`config` with only the exporters (and their expected prefixes) that `shard` owns."""
    if shard.total == 1:
        return config
    exporters = tuple(e for e in config.exporters if shard.owns(e.shard_key or e.name))
    names = {e.name for e in exporters}
    expected = tuple(x for x in config.expected_prefixes if x.exporter in names)
    return config.model_copy(update={"exporters": exporters, "expected_prefixes": expected})
