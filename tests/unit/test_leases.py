"""Part leases of a shared cache dir: exclusive, renewed, expiring on the clock passed in; and two
block caches on one disk tier fetching a part once (real files, fake backend, fake clock)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import trio
import trio.testing

from omicsfs.backend.models import StoredFile
from omicsfs.config import CacheConfig
from omicsfs.fs.filesystem import FileSystem
from omicsfs.fs.read.disktier import DiskTier
from omicsfs.fs.read.fetch import Fetch, Plane
from omicsfs.fs.read.files import CachedFile, cached_file
from omicsfs.fs.read.leases import LeaseFolder, Outcome, lease_name
from omicsfs.fs.stats import Stats
from tests.fakes.backend import FakeBackend
from tests.fakes.harness import BLOCK, PART, UNIT_CONFIG, read_file, sequence_store

DATA = bytes(range(256)) * (2 * PART // 256) + b"end"  # three parts


def test_a_lease_is_exclusive_renewed_and_expires_a_ttl_after_its_last_renewal(tmp_path: Path) -> None:
    mine = LeaseFolder(tmp_path / "leases", ttl=30, owner="host-a:1:aa")
    theirs = LeaseFolder(tmp_path / "leases", ttl=30, owner="host-b:2:bb")
    assert mine.acquire("part.lease", now=1000.0, what="part 1 of x") is Outcome.TAKEN
    assert theirs.acquire("part.lease", now=1010.0) is Outcome.HELD
    holder = theirs.holder("part.lease")
    assert holder is not None
    assert (holder.owner, holder.ttl, holder.renewed_at) == ("host-a:1:aa", 30, 1000.0)
    assert holder.what == "part 1 of x"
    assert mine.renew("part.lease", now=1025.0)
    assert theirs.acquire("part.lease", now=1050.0) is Outcome.HELD  # 25 s after the renewal
    assert not theirs.renew("part.lease", now=1050.0)  # not theirs to renew
    theirs.release("part.lease")  # nor to release
    assert mine.holder("part.lease") is not None
    # Its holder died: no renewal for more than the TTL, and the next mount breaks it.
    assert theirs.acquire("part.lease", now=1056.0) is Outcome.TAKEN_EXPIRED
    assert json.loads((tmp_path / "leases" / "part.lease").read_text())["owner"] == "host-b:2:bb"
    assert not mine.renew("part.lease", now=1057.0)  # the dead holder lost it
    assert sorted(p.name for p in (tmp_path / "leases").iterdir()) == ["part.lease"]  # no debris
    theirs.release("part.lease")
    assert theirs.holder("part.lease") is None
    assert mine.acquire("part.lease", now=1058.0) is Outcome.TAKEN


def test_a_lease_being_written_or_damaged_is_judged_by_its_age(tmp_path: Path) -> None:
    folder = LeaseFolder(tmp_path, ttl=30, owner="me")
    (tmp_path / "half.lease").write_bytes(b"")  # created by another mount, not yet filled
    os.utime(tmp_path / "half.lease", (1000.0, 1000.0))
    assert folder.acquire("half.lease", now=1020.0) is Outcome.HELD
    assert folder.acquire("half.lease", now=1031.0) is Outcome.TAKEN_EXPIRED


async def until(condition: Callable[[], bool]) -> None:
    """Polls on the fake clock, a bounded number of times."""
    for _ in range(10_000):
        if condition():
            return
        await trio.sleep(0.01)
    raise AssertionError("the condition never held")


def _shared_fs(backend: FakeBackend, root: Path, nursery: trio.Nursery) -> FileSystem:
    cache = CacheConfig(
        memory_bytes=1 << 20, block_size=BLOCK, disk_dir=root / "parts", shared=True, lease_ttl=30
    )
    config = replace(UNIT_CONFIG, cache=cache, metadata_dir=root)
    disk = DiskTier(root / "parts", 1 << 30, BLOCK, shared_grace=600)
    disk.scan(wait=True)
    fs = FileSystem(config, backend, Stats(backend=backend.stats), disk=disk)
    fs.tasks.attach(nursery)
    assert fs.cache.leases is not None
    fs.cache.leases.clock = trio.current_time  # lease times on the fake clock
    return fs


@pytest.mark.trio
async def test_two_mounts_on_one_disk_tier_fetch_a_held_part_once(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    backend.add_read_set(store, "x", {StoredFile.SOURCE1: DATA, StoredFile.INDEX: b"i"})
    first, second = _shared_fs(backend, tmp_path, nursery), _shared_fs(backend, tmp_path, nursery)
    gate = backend.hold_bodies()
    results: dict[str, bytes] = {}

    async def read(name: str, fs: FileSystem) -> None:
        results[name] = await read_file(fs, "sequence-stores/cohort/x.bam")

    nursery.start_soon(read, "first", first)
    await trio.to_thread.run_sync(gate.reached.wait)  # the first mount's body is held mid-part
    assert list((tmp_path / "leases").glob("*.lease"))
    nursery.start_soon(read, "second", second)
    await until(lambda: second.stats.shared["lease_waits"] >= 1)
    gate.release()
    await until(lambda: len(results) == 2)
    assert results == {"first": DATA, "second": DATA}
    assert backend.calls["GetReadSet"] == 3  # each part once, for both mounts
    assert second.stats.shared["fetches_from_peers"] >= 1


@pytest.mark.trio
async def test_a_lease_its_holder_stopped_renewing_is_taken_over_after_the_ttl(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    backend.add_read_set(store, "x", {StoredFile.SOURCE1: DATA, StoredFile.INDEX: b"i"})
    fs = _shared_fs(backend, tmp_path, nursery)
    # A mount that died holding the lease of every part of x (leases named as the cache names them).
    dead = LeaseFolder(tmp_path / "leases", ttl=30, owner="dead-host:1:00")
    started = trio.current_time()
    _, objects = await fs.catalog.read_sets(store)
    cached = await cached_file(fs.catalog, next(iter(objects.values())), StoredFile.SOURCE1, BLOCK)
    assert cached is not None
    for part in (1, 2, 3):
        blocks = cached.part_blocks(part)
        name = lease_name(Fetch(cached, Plane.PARTS, blocks.start, blocks.stop, part))
        assert dead.acquire(name, started) is Outcome.TAKEN
    assert await read_file(fs, "sequence-stores/cohort/x.bam") == DATA
    assert trio.current_time() - started > 30  # it waited out the TTL, then fetched
    assert backend.calls["GetReadSet"] == 3
    assert fs.stats.shared["leases_expired"] == 3
    # The last fetch releases its lease just after its reader got the bytes.
    await until(lambda: not list((tmp_path / "leases").glob("*.lease")))


@pytest.mark.trio
async def test_a_block_a_peer_commits_between_two_looks_is_read_from_disk(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """Found in CI: a block another mount committed after this one found it absent on disk but
    before it started a fetch (so none was started) failed an assertion instead of being read."""
    backend = FakeBackend()
    store = sequence_store(backend)
    backend.add_read_set(store, "x", {StoredFile.SOURCE1: DATA, StoredFile.INDEX: b"i"})
    first, second = _shared_fs(backend, tmp_path, nursery), _shared_fs(backend, tmp_path, nursery)
    assert await read_file(first, "sequence-stores/cohort/x.bam") == DATA
    fetched = backend.calls["GetReadSet"]
    cache = second.cache
    real_disk_path = cache._disk_path
    looked: set[int] = set()

    def disk_path(file: CachedFile, block: int) -> Path | None:
        # The read's own first look at each block finds nothing; the peer's commit lands just
        # after it, so every later look (the one deciding whether to fetch) finds the entry.
        if sys._getframe(1).f_code.co_name == "_block" and block not in looked:
            looked.add(block)
            return None
        return real_disk_path(file, block)

    cache._disk_path = disk_path  # type: ignore[method-assign]
    assert await read_file(second, "sequence-stores/cohort/x.bam") == DATA
    assert looked  # the race was staged: the read's first looks found nothing
    assert backend.calls["GetReadSet"] == fetched  # nothing fetched again: it was on disk
    assert second.stats.cache_hits["disk"] >= 1
