"""The disk tier's entries: one block each, verified by CRC, damage detected, capped (real files)."""

from __future__ import annotations

import os
from pathlib import Path

from omicsfs.fs.read.disktier import DiskTier

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
