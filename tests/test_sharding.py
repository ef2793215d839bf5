"""Replicas split the exporters of one config by a stable hash of their names (Prometheus hashmod)."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from watchdog.config import parse_config
from watchdog.daemon import Daemon
from watchdog.metrics import render_page
from watchdog.sharding import hashmod, owned, parse_shard


def _config(n: int = 30, shard: str | None = None) -> str:
    lines = [f"shard: {shard}"] if shard else []
    lines.append("exporters:")
    for i in range(n):
        lines += [f"  - name: onprem-{i}", "    type: strongswan", f"    vici_socket: /nonexistent/{i}.vici"]
    lines += ["expected_prefixes:"]
    lines += [f"  - {{exporter: onprem-{i}, prefixes: [10.{i}.0.0/16]}}" for i in range(n)]
    return "\n".join(lines) + "\n"


def test_three_replicas_own_disjoint_sets_whose_union_is_the_whole() -> None:
    config = parse_config(_config())
    owners = [{e.name for e in owned(config, parse_shard(f"{i}/3")).exporters} for i in range(3)]
    assert all(owners), owners  # 30 names: every replica gets some
    assert owners[0].isdisjoint(owners[1]) and owners[1].isdisjoint(owners[2]) and owners[0].isdisjoint(owners[2])
    assert set().union(*owners) == {e.name for e in config.exporters}
    # Each replica keeps only the expected prefixes of the exporters it owns.
    for i, names in enumerate(owners):
        kept = owned(config, parse_shard(f"{i}/3")).expected_prefixes
        assert {x.exporter for x in kept} == names


def test_the_split_is_stable_across_processes_and_matches_prometheus_hashmod() -> None:
    code = "from watchdog.sharding import hashmod; print([hashmod(f'aws-{i}', 3) for i in range(20)])"
    runs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    }
    assert len(runs) == 1  # PYTHONHASHSEED differs per process; the split does not
    # Prometheus: binary.BigEndian.Uint64(md5(value)[8:]) % modulus
    digest = hashlib.md5(b"aws-prod").digest()
    assert hashmod("aws-prod", 7) == int.from_bytes(digest[8:], "big") % 7


def test_replica_exports_its_shard_and_only_its_exporters() -> None:
    config = parse_config(_config(shard="1/3"))
    daemon = Daemon(config, None)
    try:
        mine = {e.name for e in daemon.config.exporters}
        assert mine == {e.name for e in owned(config, parse_shard("1/3")).exporters}
        page = render_page(daemon.state).decode()
        assert 'vpn_watchdog_shard_info{shard="1",shards="3"} 1.0' in page
        # The command line wins over the file.
        other = Daemon(config, None, shard="2/3")
        assert {e.name for e in other.config.exporters} == {e.name for e in owned(config, parse_shard("2/3")).exporters}
        other.executor.shutdown()
    finally:
        daemon.executor.shutdown()


def test_unsharded_replica_says_it_is_shard_0_of_1() -> None:
    daemon = Daemon(parse_config(_config(3)), None)
    try:
        assert 'vpn_watchdog_shard_info{shard="0",shards="1"} 1.0' in render_page(daemon.state).decode()
        assert len(daemon.config.exporters) == 3
    finally:
        daemon.executor.shutdown()


@pytest.mark.parametrize("bad", ["3/3", "1", "a/b", "0/0", "-1/2"])
def test_bad_shard_is_a_config_error_naming_the_key(bad: str) -> None:
    from watchdog.errors import ConfigError

    with pytest.raises(ConfigError, match=r"shard: invalid shard"):
        parse_config(f"shard: '{bad}'\n")


def test_bad_shard_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from watchdog.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["run", "--shard", "4/3", "-c", "/nonexistent.yaml"])
    assert exited.value.code == 2
    assert "invalid shard '4/3'" in capsys.readouterr().err


def test_entries_sharing_a_shard_key_land_on_one_replica() -> None:
    lines = ["exporters:"]
    for i in range(12):
        lines += [
            f"  - {{name: aws-{i}, type: frr, shard_key: vpn-{i}}}",
            f"  - {{name: gcp-{i}, type: frr, shard_key: vpn-{i}}}",
        ]
    config = parse_config("\n".join(lines) + "\n")
    owners = [{e.name for e in owned(config, parse_shard(f"{i}/3")).exporters} for i in range(3)]
    assert set().union(*owners) == {e.name for e in config.exporters} and sum(map(len, owners)) == 24
    for i in range(12):
        (replica,) = [n for n, names in enumerate(owners) if f"aws-{i}" in names]
        assert f"gcp-{i}" in owners[replica]  # both clouds of vpn-i together
    assert len({n for n, names in enumerate(owners) if names}) > 1  # and still spread
