"""Listing TTLs and invalidation, driven through the core (no kernel) against the local service
with a controlled clock, so "within the TTL" is tested without sleeping."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from omicsfs.backend.client import make_client, make_session
from omicsfs.backend.omics import OmicsBackend
from omicsfs.config import BackendLimits, MountConfig
from omicsfs.fs.filesystem import FileSystem
from omicsfs.fs.inodes import ROOT_INODE
from omicsfs.fs.stats import Stats
from tests.localservice import RunningService
from tests.mount.builders import fastq_gz
from tests.mounting import TEST_ENV
from tests.service.helpers import upload_file


def test_new_and_deleted_read_sets_show_up_after_the_ttl(
    private_service: RunningService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    omics = private_service.client()
    store = omics.create_sequence_store(name="live")
    first = upload_file(omics, store["id"], {"SOURCE1": fastq_gz(5)}, "FASTQ", name="first")
    private_service.drain()
    clock = trio.testing.MockClock()
    invalidated: dict[str, int | None] = {}

    async def main() -> None:
        client = make_client(make_session(region="us-west-2", profile=None), endpoint_url=private_service.url)
        stats = Stats()
        config = MountConfig(listing_ttl=30, limits=BackendLimits(metadata_tps=1000))
        backend = OmicsBackend(client, config.limits, stats.backend)
        fs = FileSystem(
            config, backend, stats, invalidate=lambda parent, name, ino: invalidated.update({name: ino})
        )

        async def names() -> list[str]:
            stores = await fs.lookup(ROOT_INODE, "sequence-stores")
            folder = await fs.lookup(stores.ino, "live")
            handle = await fs.opendir(folder.ino)
            listed = [name for _, name, _ in fs.readdir(handle, 0) if name.endswith(".gz")]
            fs.releasedir(handle)
            return listed

        assert await names() == ["first.fastq.gz"]
        lists = stats.backend.api_calls["ListReadSets"]
        second = await trio.to_thread.run_sync(
            lambda: upload_file(omics, store["id"], {"SOURCE1": fastq_gz(5, seed=2)}, "FASTQ", name="second")
        )
        await trio.to_thread.run_sync(private_service.drain)
        clock.jump(29)
        assert await names() == ["first.fastq.gz"]  # within the TTL: cached, no call
        assert stats.backend.api_calls["ListReadSets"] == lists
        clock.jump(2)
        assert await names() == ["first.fastq.gz", "second.fastq.gz"]
        assert stats.backend.api_calls["ListReadSets"] == lists + 1

        await trio.to_thread.run_sync(
            lambda: omics.batch_delete_read_set(sequenceStoreId=store["id"], ids=[first])
        )
        await trio.to_thread.run_sync(private_service.drain)
        clock.jump(31)
        assert await names() == ["second.fastq.gz"]
        # The kernel is told to drop the cached entry, and that its inode is gone (deleted, not
        # renamed: tests/mount/test_names_and_links.py has the rename).
        assert invalidated["first.fastq.gz"] is not None
        assert second

    trio.run(main, clock=clock)
