"""config.py: every impossible setting is refused with a message, and ``default_of`` reads the one
home of every default (the command line's help and parser take theirs from it)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from omicsfs.config import (
    BackendLimits,
    CacheConfig,
    DaemonConfig,
    KernelCacheConfig,
    MiB,
    MountConfig,
    ReadAheadConfig,
    RetryPolicy,
    WriteConfig,
    default_of,
)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: RetryPolicy(attempts=0), "at least one attempt"),
        (lambda: RetryPolicy(base_delay=-0.1), "between 0 and the longest backoff"),
        (lambda: RetryPolicy(base_delay=30, max_delay=20), "between 0 and the longest backoff"),
        (lambda: BackendLimits(metadata_tps=0), "rate limits must be positive"),
        (lambda: BackendLimits(get_read_set_tps=-1), "rate limits must be positive"),
        (lambda: BackendLimits(upload_control_tps=0), "rate limits must be positive"),
        (lambda: BackendLimits(control_threads=0), "at least one control thread"),
        (lambda: BackendLimits(data_streams=0), "at least one control thread and one data stream"),
        (lambda: CacheConfig(memory_bytes=1000, block_size=4096), "at least one 4 KiB block"),
        (lambda: CacheConfig(disk_bytes=0), "disk cache size must be positive"),
        (lambda: WriteConfig(part_size=0), "between 1 byte and 100 MiB"),
        (lambda: WriteConfig(part_size=100 * MiB + 1), "between 1 byte and 100 MiB"),
        (lambda: WriteConfig(parts_in_flight=0), "at least one part"),
        (lambda: WriteConfig(pair_timeout=0), "pair timeout must be positive"),
        (lambda: MountConfig(listing_ttl=0), "--listing-ttl must be positive"),
        (lambda: MountConfig(listing_ttl=-5), "--listing-ttl must be positive"),
    ],
    ids=lambda value: "" if callable(value) else value,
)
def test_impossible_settings_are_refused(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_the_limits_at_their_edges_are_accepted() -> None:
    assert RetryPolicy(attempts=1, base_delay=0, max_delay=0).attempts == 1
    assert WriteConfig(part_size=100 * MiB).part_size == 100 * MiB
    assert WriteConfig(part_size=1).part_size == 1
    assert CacheConfig(memory_bytes=4096, block_size=4096).memory_bytes == 4096


def test_the_defaults_are_the_services_quotas_and_the_documented_values() -> None:
    limits = BackendLimits()
    assert (limits.metadata_tps, limits.get_read_set_tps, limits.get_reference_tps) == (5.0, 30.0, 10.0)
    assert limits.upload_control_tps < 1.0  # under the not adjustable 1 per second
    assert limits.retry == RetryPolicy(attempts=10, base_delay=0.1, max_delay=20.0)
    assert MountConfig().listing_ttl == 30.0
    assert KernelCacheConfig().placeholder_attr_timeout == 0.0
    assert WriteConfig().enabled is False  # read-only unless asked


def test_the_read_ahead_budget_is_a_share_of_the_memory_cache() -> None:
    config = MountConfig(
        cache=CacheConfig(memory_bytes=400 * MiB), read_ahead=ReadAheadConfig(budget_fraction=0.25)
    )
    assert config.read_ahead_budget == 100 * MiB


@pytest.mark.parametrize(
    ("cls", "name", "expected"),
    [
        (CacheConfig, "memory_bytes", 1 << 30),
        (CacheConfig, "disk_dir", None),
        (RetryPolicy, "attempts", 10),
        (WriteConfig, "pair_timeout", 60.0),
        (DaemonConfig, "log_level", "INFO"),
        (MountConfig, "sequence_store_ids", ()),
    ],
)
def test_default_of_reads_a_fields_default(cls: type[Any], name: str, expected: object) -> None:
    assert default_of(cls, name) == expected


def test_default_of_builds_factory_defaults_afresh() -> None:
    first, second = default_of(MountConfig, "cache"), default_of(MountConfig, "cache")
    assert first == CacheConfig()
    assert first is not second
    assert default_of(BackendLimits, "retry") == RetryPolicy()


def test_default_of_refuses_what_has_no_default() -> None:
    @dataclasses.dataclass
    class Required:
        value: int

    with pytest.raises(KeyError, match="Required has no default for value"):
        default_of(Required, "value")
    with pytest.raises(KeyError, match="no default for no_such_field"):
        default_of(MountConfig, "no_such_field")


def test_config_is_frozen() -> None:
    config = MountConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.listing_ttl = 1.0  # type: ignore[misc]
