"""The command line without running anything: sizes (cli/options.py), ``omicsfs mount`` flags to a
MountConfig (cli/mount.py ``config_from_args``) and the ``omicsfs stats`` view (cli/stats.py)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
import trio

from omicsfs.cli.main import build_parser
from omicsfs.cli.mount import config_from_args
from omicsfs.cli.options import default_help, show_size, size
from omicsfs.cli.stats import BAR, render
from omicsfs.config import (
    BackendLimits,
    CacheConfig,
    GiB,
    KernelCacheConfig,
    MiB,
    MountConfig,
    ReadAheadConfig,
    RetryPolicy,
    WriteConfig,
)
from tests.fakes.backend import FakeBackend
from tests.fakes.harness import listing, make_fs, sequence_store, writable

# -- sizes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("65536", 65536), ("64K", 64 << 10), ("64k", 64 << 10), ("1M", 1 << 20), ("100MiB", 100 << 20),
        ("100MB", 100 << 20), ("2G", 2 << 30), ("1gib", 1 << 30), ("3T", 3 << 40), (" 8M ", 8 << 20),
        ("512B", 512),
    ],
)  # fmt: skip
def test_sizes_take_binary_suffixes(text: str, value: int) -> None:
    assert size(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [("0", "positive"), ("-1K", "positive"), ("1.5M", "not a size"), ("lots", "not a size"),
     ("", "not a size"), ("10X", "not a size")],
)  # fmt: skip
def test_bad_sizes_are_refused_with_a_message(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        size(text)


@pytest.mark.parametrize(
    ("count", "shown"),
    [(1 << 30, "1G"), (100 << 20, "100M"), (64 << 10, "64K"), (1 << 40, "1T"), (1000, "1000")],
)
def test_sizes_are_shown_in_the_largest_exact_unit_and_read_back(count: int, shown: str) -> None:
    assert show_size(count) == shown
    assert size(shown) == count


def test_help_ends_with_the_dataclass_default() -> None:
    assert (
        default_help("memory cache", CacheConfig, "memory_bytes", as_size=True) == "memory cache (default 1G)"
    )
    assert default_help("seconds", MountConfig, "listing_ttl") == "seconds (default 30.0)"


def test_mount_help_shows_the_config_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["mount", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "memory cache bytes (default 1G)" in text
    assert "cap of the disk cache (default 20G)" in text
    assert "upload part size (at most 100M) (default 100M)" in text
    assert "seconds listings are cached, > 0 (default 30.0)" in text
    assert "attempts on throttling/5xx before EIO (default 10)" in text


# -- omicsfs mount flags -> MountConfig -----------------------------------------------------------


def mount_args(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["mount", "/mnt/x", *flags])


def test_flags_left_out_keep_every_dataclass_default() -> None:
    config = config_from_args(mount_args())
    assert config == MountConfig(uid=os.getuid(), gid=os.getgid())
    assert config.cache == CacheConfig()
    assert config.limits == BackendLimits()
    assert config.writes == WriteConfig()
    assert config.read_ahead == ReadAheadConfig()
    assert config.kernel == KernelCacheConfig()
    assert config.metadata_dir is None


def test_flags_given_reach_their_fields(tmp_path: Path) -> None:
    config = config_from_args(mount_args(
        "--cache-size", "64M", "--cache-dir", str(tmp_path / "c"), "--cache-dir-size", "2G",
        "--uid", "1234", "--gid", "99", "--sequence-store", "111", "--sequence-store", "222",
        "--reference-store", "333", "--listing-ttl", "5", "--metadata-tps", "2.5", "--retries", "3",
        "--retry-delay", "0.5", "--read-write", "--allow-delete", "--part-size", "8M",
        "--parts-in-flight", "2", "--pair-timeout", "7", "--sample-id", "S", "--subject-id", "P",
        "--reference-arn", "arn:r", "--generated-from", "lab", "--description", "d",
    ))  # fmt: skip
    assert (config.uid, config.gid, config.listing_ttl) == (1234, 99, 5.0)
    assert (config.sequence_store_ids, config.reference_store_ids) == (("111", "222"), ("333",))
    assert config.cache == CacheConfig(
        memory_bytes=64 * MiB, disk_bytes=2 * GiB, disk_dir=tmp_path / "c" / "parts"
    )
    assert config.metadata_dir == tmp_path / "c"
    assert config.limits == BackendLimits(metadata_tps=2.5, retry=RetryPolicy(attempts=3, base_delay=0.5))
    assert config.writes == WriteConfig(
        enabled=True, allow_delete=True, part_size=8 * MiB, parts_in_flight=2, pair_timeout=7.0,
        sample_id="S", subject_id="P", reference_arn="arn:r", generated_from="lab", description="d",
    )  # fmt: skip


def test_a_relative_cache_dir_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = config_from_args(mount_args("--cache-dir", "cache"))
    assert config.metadata_dir == tmp_path / "cache"
    assert config.cache.disk_dir == tmp_path / "cache" / "parts"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--allow-delete"], "--allow-delete needs --read-write"),
        (["--listing-ttl", "0"], "--listing-ttl must be positive"),
        (["--read-write", "--part-size", "101M"], "between 1 byte and 100 MiB"),
        (["--retries", "0"], "at least one attempt"),
        (["--metadata-tps", "0"], "rate limits must be positive"),
        (["--cache-size", "1K"], "at least one 1024 KiB block"),
    ],
)
def test_impossible_flags_are_refused_in_the_users_words(flags: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config_from_args(mount_args(*flags))


def test_bad_values_are_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        mount_args("--cache-size", "huge")
    assert exited.value.code == 2
    assert "not a size: 'huge'" in capsys.readouterr().err


# -- omicsfs stats --------------------------------------------------------------------------------


def test_an_empty_document_renders_as_nothing_happened() -> None:
    assert render({}) == (
        "API calls: none\n"
        "fetched 0.0 MiB, uploaded 0.0 MiB\n"
        "cache: hits none; misses 0; memory 0.0 MiB + hot 0.0 MiB of 0.0 MiB\n"
        "throttled 0, retries 0; errors by errno none\n"
        "uploads: 0 completed, 0 aborted\n"
    )


def test_counters_and_uploads_in_flight_are_shown() -> None:
    text = render({
        "api_calls": {"ListReadSets": 2, "GetReadSet": 40},
        "bytes_fetched": 5 * MiB,
        "cache": {"hits": {"memory": 7}, "misses": 3, "memory_bytes": MiB, "hot_bytes": 0,
                  "memory_limit_bytes": 1024 * MiB},
        "planes": {"bytes": {"parts": 3 * MiB, "s3": 2 * MiB}, "calls": {"parts": 2, "s3": 38},
                   "s3_fallbacks": 1, "s3_listed_sizes": 12},
        "read_ahead": {"budget_bytes": 512 * MiB, "reserved_bytes": 100 * MiB, "streams": 2,
                       "prefetched_parts": 9, "prefetched_blocks": 30,
                       "windows": [{"file": "read set 1 source1", "plane": "s3", "sequential": True,
                                    "next_offset": 3 * MiB, "window_bytes": 8 * MiB,
                                    "reserved_bytes": 8 * MiB},
                                   {"file": "read set 2 source1", "plane": "parts", "sequential": False,
                                    "next_offset": 0, "window_bytes": 0, "reserved_bytes": 0}]},
        "throttled": 1, "retries": {"GetReadSet": 4}, "errors_by_errno": {"EIO": 1},
        "uploads": {"bytes_uploaded": 2 * MiB, "completed": 3, "aborted": 1,
                    "in_flight": {"b.fastq.gz": {"written_bytes": 4 * MiB, "uploaded_bytes": 2 * MiB},
                                  "a.bam": {"written_bytes": 0, "uploaded_bytes": 0}}},
    })  # fmt: skip
    lines = text.splitlines()
    assert lines[0] == "API calls: GetReadSet 40, ListReadSets 2"
    assert lines[1] == "fetched 5.0 MiB, uploaded 2.0 MiB"
    assert lines[2] == "cache: hits memory 7; misses 3; memory 1.0 MiB + hot 0.0 MiB of 1,024.0 MiB"
    assert lines[3] == (
        "planes: parts 3.0 MiB in 2 calls, s3 2.0 MiB in 38 calls; fallbacks to parts 1; "
        "sizes from S3 listings 12"
    )
    assert lines[4] == (
        "read-ahead: 100.0 MiB of 512.0 MiB reserved, 2 streams, 9 parts and 30 blocks prefetched"
    )
    assert lines[5] == "  read set 1 source1 (s3): sequential, window 8.0 MiB, at 3.0 MiB, 8.0 MiB reserved"
    assert lines[6] == "  read set 2 source1 (parts): random, no read-ahead, at 0.0 MiB, 0.0 MiB reserved"
    assert lines[7] == "throttled 1, retries GetReadSet 4; errors by errno EIO 1"
    assert lines[8].startswith("uploads: 3 completed, 1 aborted; 2 in flight")
    half = "#" * (BAR // 2) + "." * (BAR - BAR // 2)
    assert lines[9].startswith(f"  a.bam [{'#' * BAR}] 0.0 MiB of 0.0 MiB uploaded")  # nothing owed
    assert lines[10].startswith(f"  b.fastq.gz [{half}] 2.0 MiB of 4.0 MiB uploaded")


@pytest.mark.trio
async def test_the_filesystems_own_document_renders(nursery: trio.Nursery) -> None:
    """render() reads what stats.json really holds, not only hand-made documents."""
    backend = FakeBackend()
    sequence_store(backend)
    fs = make_fs(backend, nursery, writable())
    assert await listing(fs, "sequence-stores") == ["by-id", "cohort"]
    text = render(json.loads(fs.stats_document()))
    assert "API calls: ListSequenceStores 1" in text
    assert "read-ahead: 0.0 MiB of 0.8 MiB reserved, 0 streams, 0 parts and 0 blocks prefetched" in text
