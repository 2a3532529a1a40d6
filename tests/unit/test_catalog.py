"""fs/catalog.py and fs/metastore.py on the fake backend: what is fetched, how often, and for how long.

Listings live ``listing_ttl`` seconds of the fake clock; layouts are fetched once per validator and
persisted; finished jobs are fetched once, running ones follow the TTL.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
import trio
import trio.testing

from omicsfs.backend.errors import AccessDenied, NotFound, ServiceFailure
from omicsfs.backend.models import (
    FileLayout,
    JobKind,
    JobSummary,
    ObjectFiles,
    ObjectKind,
    ReadSetSummary,
    Status,
    StoredFile,
    StoreKind,
)
from omicsfs.fs.catalog import Catalog
from omicsfs.fs.metastore import MetadataStore
from tests.fakes.backend import FakeBackend
from tests.fakes.harness import sequence_store

TTL = 30.0


def catalog_on(
    backend: FakeBackend, folder: Path | None = None, sequence_store_ids: tuple[str, ...] = ()
) -> Catalog:
    return Catalog(backend, MetadataStore(folder), listing_ttl=TTL, sequence_store_ids=sequence_store_ids)


def one_read_set(backend: FakeBackend, status: str = Status.ACTIVE) -> tuple[str, ReadSetSummary]:
    store = sequence_store(backend)
    read_set = backend.add_read_set(store, "NA1", {StoredFile.SOURCE1: b"b" * 100, StoredFile.INDEX: b"i"},
                                    status=status)  # fmt: skip
    return store, read_set


# -- listings -------------------------------------------------------------------------------------


@pytest.mark.trio
async def test_a_listing_is_fetched_once_per_ttl(autojump_clock: trio.testing.MockClock) -> None:
    backend = FakeBackend()
    store, read_set = one_read_set(backend)
    catalog = catalog_on(backend)
    version, listed = await catalog.read_sets(store)
    assert list(listed) == [read_set.id]
    autojump_clock.jump(TTL - 1)
    assert (await catalog.read_sets(store))[0] == version
    assert backend.calls["ListReadSets"] == 1
    added = backend.add_read_set(store, "NA2", {StoredFile.SOURCE1: b"x"})
    autojump_clock.jump(2)
    new_version, listed = await catalog.read_sets(store)
    assert backend.calls["ListReadSets"] == 2
    assert new_version != version
    assert set(listed) == {read_set.id, added.id}


@pytest.mark.trio
async def test_concurrent_askers_share_one_listing_call() -> None:
    backend = FakeBackend()
    store, _ = one_read_set(backend)
    catalog = catalog_on(backend)
    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(catalog.read_sets, store)
    assert backend.calls["ListReadSets"] == 1


@pytest.mark.trio
async def test_expiring_lists_again_on_the_next_access_only() -> None:
    backend = FakeBackend()
    store, _ = one_read_set(backend)
    catalog = catalog_on(backend)
    await catalog.read_sets(store)
    await catalog.stores(StoreKind.SEQUENCE)
    catalog.expire_read_sets(store)
    assert backend.calls["ListReadSets"] == 1  # nothing is fetched until asked
    await catalog.read_sets(store)
    await catalog.stores(StoreKind.SEQUENCE)
    assert (backend.calls["ListReadSets"], backend.calls["ListSequenceStores"]) == (2, 1)
    catalog.expire_listings()  # SIGHUP: everything
    await catalog.read_sets(store)
    await catalog.stores(StoreKind.SEQUENCE)
    assert (backend.calls["ListReadSets"], backend.calls["ListSequenceStores"]) == (3, 2)


@pytest.mark.trio
async def test_chosen_stores_are_fetched_by_id_instead_of_listed() -> None:
    backend = FakeBackend()
    wanted = sequence_store(backend, "wanted")
    sequence_store(backend, "other")
    catalog = catalog_on(backend, sequence_store_ids=(wanted,))
    assert [store.name for store in await catalog.stores(StoreKind.SEQUENCE)] == ["wanted"]
    assert backend.calls["ListSequenceStores"] == 0
    assert backend.calls["GetSequenceStore"] == 1


@pytest.mark.trio
async def test_a_failed_listing_is_not_cached() -> None:
    backend = FakeBackend()
    store, _ = one_read_set(backend)
    catalog = catalog_on(backend)
    backend.fail(
        "ListReadSets", lambda: ServiceFailure("ListReadSets", "down"), times=backend.retry_policy.attempts
    )
    with pytest.raises(ServiceFailure):
        await catalog.read_sets(store)
    _, listed = await catalog.read_sets(store)
    assert len(listed) == 1


# -- layouts --------------------------------------------------------------------------------------


@pytest.mark.trio
async def test_layouts_are_fetched_once_per_validator() -> None:
    backend = FakeBackend(part_size=40)
    _store, read_set = one_read_set(backend)
    catalog = catalog_on(backend)
    assert catalog.known_files(read_set) is None
    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(catalog.files, read_set)
    files = await catalog.files(read_set)
    layout = files.files[StoredFile.SOURCE1]
    assert (layout.content_length, layout.part_size, layout.total_parts) == (100, 40, 3)
    assert catalog.known_files(read_set) == files
    assert backend.calls["GetReadSetMetadata"] == 1
    # Another version of the object (same ID, new validator) is fetched again.
    replaced = replace(read_set, etag_source1="new")
    assert catalog.known_files(replaced) is None
    await catalog.files(replaced)
    assert backend.calls["GetReadSetMetadata"] == 2


@pytest.mark.trio
async def test_layouts_survive_a_remount_in_the_metadata_store(tmp_path: Path) -> None:
    backend = FakeBackend()
    _store, read_set = one_read_set(backend)
    first = catalog_on(backend, tmp_path)
    files = await first.files(read_set)
    first.metastore.close()
    second = catalog_on(backend, tmp_path)
    assert second.known_files(read_set) == files
    assert await second.files(read_set) == files
    assert backend.calls["GetReadSetMetadata"] == 1
    # A row written under another validator is ignored and the layout fetched afresh.
    assert second.known_files(replace(read_set, creation_time=read_set.creation_time + 1)) is None


@pytest.mark.trio
async def test_only_active_layouts_are_persisted(tmp_path: Path) -> None:
    backend = FakeBackend()
    _store, read_set = one_read_set(backend, status=Status.ARCHIVED)
    first = catalog_on(backend, tmp_path)
    await first.files(read_set)
    first.metastore.close()
    assert MetadataStore(tmp_path).get(ObjectKind.READ_SET, read_set.id, read_set.validator) is None


@pytest.mark.trio
async def test_current_read_set_shows_a_new_status_in_the_listing_at_once() -> None:
    backend = FakeBackend()
    store, read_set = one_read_set(backend, status=Status.ARCHIVED)
    catalog = catalog_on(backend)
    await catalog.read_sets(store)
    backend.set_status(store, read_set.id, Status.ACTIVE)  # an activation job finished
    fresh = await catalog.current_read_set(read_set)
    assert fresh.status == Status.ACTIVE
    assert (await catalog.read_sets(store))[1][read_set.id].status == Status.ACTIVE
    assert backend.calls["ListReadSets"] == 1
    del backend.objects[store][read_set.id]
    assert await catalog.current_read_set(fresh) is fresh  # gone: the caller decides


@pytest.mark.trio
async def test_prefetch_fetches_what_is_missing_and_swallows_failures() -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    summaries = [backend.add_read_set(store, f"rs{i}", {StoredFile.SOURCE1: b"x"}) for i in range(12)]
    catalog = catalog_on(backend)
    await catalog.files(summaries[0])
    backend.fail("GetReadSetMetadata", lambda: NotFound("GetReadSetMetadata", "gone"))
    await catalog.prefetch_files(list(summaries))
    assert backend.calls["GetReadSetMetadata"] == 12  # 1 before, 11 missing (one of them failed)
    assert sum(catalog.known_files(s) is not None for s in summaries) == 11
    await catalog.prefetch_files(list(summaries))
    assert backend.calls["GetReadSetMetadata"] == 13  # only the failed one again


# -- jobs -----------------------------------------------------------------------------------------


def add_job(backend: FakeBackend, store: str, status: str) -> JobSummary:
    job = JobSummary(f"job-{status.lower()}", store, JobKind.IMPORT, status, 1.7e9)
    backend.jobs.setdefault((store, JobKind.IMPORT), []).append(job)
    return job


def set_job_status(backend: FakeBackend, job: JobSummary, status: str) -> None:
    jobs = backend.jobs[(job.store_id, job.kind)]
    jobs[jobs.index(job)] = replace(job, status=status)


@pytest.mark.trio
async def test_a_finished_job_is_fetched_once_and_a_running_one_per_ttl(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    done = add_job(backend, store, "COMPLETED")
    running = add_job(backend, store, "IN_PROGRESS")
    catalog = catalog_on(backend)
    assert set(await catalog.jobs(StoreKind.SEQUENCE, store, JobKind.IMPORT)) == {done.id, running.id}
    assert not catalog.has_job_document(StoreKind.SEQUENCE, running)
    assert b'"IN_PROGRESS"' in await catalog.job_document(StoreKind.SEQUENCE, running)
    assert b'"COMPLETED"' in await catalog.job_document(StoreKind.SEQUENCE, done)
    assert catalog.has_job_document(StoreKind.SEQUENCE, running)
    assert backend.calls["GetimportJob"] == 2
    set_job_status(backend, running, "COMPLETED")
    autojump_clock.jump(TTL - 1)
    assert b'"IN_PROGRESS"' in await catalog.job_document(StoreKind.SEQUENCE, running)  # within the TTL
    autojump_clock.jump(2)
    assert b'"COMPLETED"' in await catalog.job_document(StoreKind.SEQUENCE, running)
    autojump_clock.jump(10 * TTL)
    await catalog.job_document(StoreKind.SEQUENCE, running)
    await catalog.job_document(StoreKind.SEQUENCE, done)
    assert backend.calls["GetimportJob"] == 3  # finished documents never change: never fetched again


@pytest.mark.trio
async def test_no_permission_to_list_jobs_shows_no_jobs(caplog: pytest.LogCaptureFixture) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    add_job(backend, store, "COMPLETED")
    backend.fail(
        "ListimportJobs", lambda: AccessDenied("ListReadSetImportJobs", "no", "AccessDeniedException")
    )
    catalog = catalog_on(backend)
    with caplog.at_level(logging.INFO, logger="omicsfs.fs.catalog"):
        assert await catalog.jobs(StoreKind.SEQUENCE, store, JobKind.IMPORT) == {}
    assert "no permission to list" in caplog.text
    assert backend.calls["ListimportJobs"] == 1  # the empty answer is cached like any listing


@pytest.mark.trio
async def test_other_failures_of_a_job_listing_are_raised() -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    backend.fail("ListimportJobs", lambda: NotFound("ListReadSetImportJobs", "no store"))
    with pytest.raises(NotFound):
        await catalog_on(backend).jobs(StoreKind.SEQUENCE, store, JobKind.IMPORT)


# -- the metadata store ---------------------------------------------------------------------------

FILES = ObjectFiles("1700000000.000:e:", Status.ACTIVE, {"source1": FileLayout(10, 4, 3)})


def test_rows_are_keyed_by_kind_id_and_validator(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path / "meta")
    store.put(ObjectKind.READ_SET, "1", FILES)
    assert store.get(ObjectKind.READ_SET, "1", FILES.validator) == FILES
    assert store.get(ObjectKind.READ_SET, "1", "another version") is None
    assert store.get(ObjectKind.REFERENCE, "1", FILES.validator) is None
    assert store.get(ObjectKind.READ_SET, "2", FILES.validator) is None
    newer = replace(FILES, validator="v2")
    store.put(ObjectKind.READ_SET, "1", newer)  # one row per object: the new version replaces it
    assert store.get(ObjectKind.READ_SET, "1", FILES.validator) is None
    assert store.get(ObjectKind.READ_SET, "1", "v2") == newer
    assert (tmp_path / "meta").stat().st_mode & 0o777 == 0o700


def test_a_damaged_database_is_replaced_by_a_fresh_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "metadata.sqlite3").write_bytes(b"this is not a database" * 100)
    store = MetadataStore(tmp_path)
    assert "is damaged; starting a new one" in caplog.text
    assert store.get(ObjectKind.READ_SET, "1", FILES.validator) is None
    store.put(ObjectKind.READ_SET, "1", FILES)
    assert store.get(ObjectKind.READ_SET, "1", FILES.validator) == FILES


def test_a_damaged_row_reads_as_missing(tmp_path: Path) -> None:
    MetadataStore(tmp_path).put(ObjectKind.READ_SET, "1", FILES)
    with sqlite3.connect(tmp_path / "metadata.sqlite3") as db:
        db.execute("UPDATE objects SET doc = '{\"validator\": 1}'")
    assert MetadataStore(tmp_path).get(ObjectKind.READ_SET, "1", FILES.validator) is None


def test_without_a_folder_nothing_is_kept(tmp_path: Path) -> None:
    store = MetadataStore(None)
    store.put(ObjectKind.READ_SET, "1", FILES)
    assert store.get(ObjectKind.READ_SET, "1", FILES.validator) is None
    store.close()
