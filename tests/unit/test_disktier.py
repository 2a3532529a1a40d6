"""The disk tier's entries: one block each, verified by CRC, damage detected, capped (real files);
shared by several mounts: the cooperative cap and entries other mounts wrote."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from omicsfs.fs.read import disktier
from omicsfs.fs.read.disktier import DEBRIS_AGE, DiskTier, Entry, plan_eviction

KEY = ("readSet", "123", "source1", "v1")


def _entry(tier: DiskTier, part: int, block: int, data: bytes) -> Path:
    path = tier.path(KEY, part, block)
    tier.committed(path, tier.write(path, memoryview(data)))
    return path


def _read(path: Path, length: int) -> bytes | None:
    memory = memoryview(bytearray(length))
    return bytes(memory) if DiskTier(path.parent, 1, 1).read_into(path, memory, length) else None


def test_round_trip_and_permissions(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path / "blocks", max_bytes=1 << 20, block_size=1000)
    tier.scan()
    data = os.urandom(1000)
    path = _entry(tier, 3, 7, data)
    assert tier.has(path)
    assert _read(path, 1000) == data
    assert _read(path, 999) is None  # a different length than stored is not this block
    assert oct((tmp_path / "blocks").stat().st_mode & 0o777) == "0o700"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert not list(path.parent.glob("*.tmp"))  # written under a temporary name, then renamed


def test_damage_is_detected_per_block(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path / "blocks", max_bytes=1 << 20, block_size=1000)
    tier.scan()
    good = _entry(tier, 1, 0, os.urandom(1000))
    bad = _entry(tier, 1, 1, os.urandom(1000))
    raw = bytearray(bad.read_bytes())
    raw[500] ^= 1
    bad.write_bytes(bytes(raw))
    assert _read(bad, 1000) is None
    assert _read(good, 1000) is not None
    short = _entry(tier, 1, 2, os.urandom(1000))
    short.write_bytes(short.read_bytes()[:-1])  # a truncated entry
    assert _read(short, 1000) is None


def test_the_cap_evicts_the_least_recently_used(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path / "blocks", max_bytes=5000, block_size=1000)
    tier.scan()
    paths = [_entry(tier, 1, block, os.urandom(1000)) for block in range(4)]
    tier.touch(paths[0])  # read recently: survives
    more = [_entry(tier, 2, block, os.urandom(1000)) for block in range(3)]
    assert tier.bytes <= 5000
    assert tier.has(paths[0])
    assert not tier.has(paths[1])
    assert not paths[1].exists()
    assert all(tier.has(path) for path in more)


def test_a_rescan_finds_entries_and_sweeps_half_written_files(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path / "blocks", max_bytes=1 << 20, block_size=1000)
    tier.scan()
    path = _entry(tier, 1, 0, b"x" * 1000)
    debris = path.with_name(path.name + ".999.1.tmp")
    debris.write_bytes(b"half")
    again = DiskTier(tmp_path / "blocks", max_bytes=1 << 20, block_size=1000)
    again.scan()
    assert again.has(path)
    assert not debris.exists()


# -- a shared cache dir (--cache-dir-shared) -------------------------------------------------------


def test_plan_eviction_takes_only_idle_entries_oldest_first_down_to_the_target() -> None:
    now = 10_000.0
    entries = [
        Entry(Path("live"), 100, now - 10),  # read 10 s ago: in use
        Entry(Path("old"), 100, now - 5000),
        Entry(Path("older"), 100, now - 9000),
        Entry(Path("idle"), 100, now - 700),
    ]
    plan = plan_eviction(entries, total=400, target=250, now=now, grace=600)
    assert [e.path.name for e in plan] == ["older", "old"]  # 400 -> 200 <= 250
    everything = plan_eviction(entries, total=400, target=0, now=now, grace=600)
    assert [e.path.name for e in everything] == ["older", "old", "idle"]  # never "live"
    assert plan_eviction(entries, total=400, target=0, now=now, grace=10_000) == []


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_shared_tier_evicts_only_idle_entries_and_reads_keep_entries_alive(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path / "blocks", max_bytes=5000, block_size=1000, shared_grace=600)
    tier.scan(wait=True)
    paths = [_entry(tier, 1, block, os.urandom(1000)) for block in range(8)]  # 8 KB, over the cap
    for path in paths:
        _age(path, 3600)
    _age(paths[0], 7200)  # the oldest
    memory = memoryview(bytearray(1000))
    assert tier.read_into(paths[3], memory, 1000)  # a read of an hour-old entry: alive again
    assert time.time() - paths[3].stat().st_mtime < 60
    other_mounts_temp = paths[5].with_name(paths[5].name + ".4242.1.tmp")
    other_mounts_temp.write_bytes(b"being written")
    debris = paths[6].with_name(paths[6].name + ".4243.1.tmp")
    debris.write_bytes(b"left by a dead mount")
    _age(debris, DEBRIS_AGE + 1)
    tier._evict_shared()  # what the eviction thread runs
    kept = [path for path in paths if path.exists()]
    assert paths[3] in kept
    assert not paths[0].exists()
    assert sum(path.stat().st_size for path in kept) <= 5000 * 0.9 + 1000 + 100
    assert other_mounts_temp.exists()
    assert not debris.exists()
    assert tier.evicted == len(paths) - len(kept)
    # Every entry in use: the cap yields.
    for path in kept:
        os.utime(path)
    fresh = [_entry(tier, 2, block, os.urandom(1000)) for block in range(4)]
    tier._evict_shared()
    assert all(path.exists() for path in kept + fresh)


def test_a_shared_tier_sees_entries_other_mounts_wrote_after_its_scan(tmp_path: Path) -> None:
    mine = DiskTier(tmp_path / "blocks", max_bytes=1 << 20, block_size=1000, shared_grace=600)
    mine.scan(wait=True)
    theirs = DiskTier(tmp_path / "blocks", max_bytes=1 << 20, block_size=1000, shared_grace=600)
    path = _entry(theirs, 1, 0, b"y" * 1000)
    assert mine.has(path)
    private = DiskTier(tmp_path / "blocks", max_bytes=1 << 20, block_size=1000)
    assert not private.has(path)  # a private tier trusts its own index alone


def test_a_commit_past_the_cap_starts_one_eviction_scan_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(disktier, "SCAN_SPACING", 0.0)
    tier = DiskTier(tmp_path / "blocks", max_bytes=5000, block_size=1000, shared_grace=600)
    tier.scan(wait=True)
    idle = [_entry(tier, 1, block, os.urandom(1000)) for block in range(4)]
    for path in idle:
        _age(path, 3600)
    new = [tier.path(KEY, 2, block) for block in range(3)]
    sizes = [tier.write(path, memoryview(os.urandom(1000))) for path in new]  # 7 KB: past the cap
    for path, size in zip(new, sizes, strict=True):
        tier.committed(path, size)  # the first starts the scan; it runs on a thread of its own
    tier.join_eviction()
    assert tier.evicted == 3
    assert tier.bytes == sum(sizes) + 1 * sizes[0]  # the index agrees with what is left on disk
    assert all(path.exists() for path in new)
    assert sum(path.exists() for path in idle) <= 1  # down to 90% of the cap, oldest first


def test_an_entry_committed_while_the_scan_walks_stays_in_the_index(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path / "blocks", max_bytes=1 << 20, block_size=1000, shared_grace=600)
    first = _entry(tier, 1, 0, os.urandom(1000))
    late = tier.path(KEY, 1, 1)
    walk = tier._entries

    def walk_then_commit(now: float) -> list[Entry]:
        entries = walk(now)  # the walk has passed: the next entry is not in its snapshot
        tier.committed(late, tier.write(late, memoryview(os.urandom(1000))))
        return entries

    tier._entries = walk_then_commit  # type: ignore[method-assign]
    tier.scan(wait=True)
    assert tier.bytes == first.stat().st_size + late.stat().st_size
