"""The filesystem facade on the fake backend: layout, attributes, refusals, TTLs, read-ahead."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import replace

import pytest
import trio
import trio.testing

from omicsfs.backend.models import FileType, JobKind, JobSummary, Status, StoredFile, StoreKind
from omicsfs.config import ReadAheadConfig
from omicsfs.fs.errors import FsError
from omicsfs.fs.filesystem import AttrChange
from omicsfs.fs.inodes import ROOT_INODE
from tests.fakes.backend import FakeBackend
from tests.fakes.harness import PART, UNIT_CONFIG, listing, make_fs, read_file, resolve, sequence_store

BAM = os.urandom(3 * PART + 17)
BAI = os.urandom(999)


def _cohort(backend: FakeBackend) -> str:
    store = sequence_store(backend)
    backend.add_read_set(store, "NA1", {StoredFile.SOURCE1: BAM, StoredFile.INDEX: BAI}, sample_id="S1")
    backend.add_read_set(
        store, "reads", {StoredFile.SOURCE1: b"a" * 10, StoredFile.SOURCE2: b"b" * 20},
        file_type=FileType.FASTQ, sample_id="S1", subject_id="P1",
    )  # fmt: skip
    return store


@pytest.mark.trio
async def test_layout_of_a_sequence_store(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    store = _cohort(backend)
    fs = make_fs(backend, nursery)
    assert await listing(fs, "") == [".omicsfs", "reference-stores", "sequence-stores"]
    assert await listing(fs, "sequence-stores") == ["by-id", "cohort"]
    assert await listing(fs, "sequence-stores/cohort") == [
        ".jobs", "NA1.bam", "NA1.bam.bai", "by-id", "by-sample", "by-subject",
        "reads_1.fastq.gz", "reads_2.fastq.gz",
    ]  # fmt: skip
    assert await listing(fs, "sequence-stores/cohort/by-sample/S1") == [
        "NA1.bam",
        "NA1.bam.bai",
        "reads_1.fastq.gz",
        "reads_2.fastq.gz",
    ]
    assert await listing(fs, "sequence-stores/cohort/.jobs") == ["activation", "export", "import"]
    assert await fs.readlink(await resolve(fs, f"sequence-stores/by-id/{store}")) == "../cohort"
    link = await resolve(fs, "sequence-stores/cohort/by-sample/S1/NA1.bam")
    assert await fs.readlink(link) == "../../NA1.bam"
    assert backend.calls["GetReadSetMetadata"] == 0  # listings alone decide the tree


@pytest.mark.trio
async def test_attributes_come_from_metadata_and_readdir_gives_placeholders(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    _cohort(backend)
    fs = make_fs(backend, nursery)
    folder = await resolve(fs, "sequence-stores/cohort")
    handle = await fs.opendir(folder)
    entries = {name: attr for _, name, attr in fs.readdir(handle, 0)}
    fs.releasedir(handle)
    assert entries["NA1.bam"].size == 0
    assert entries["NA1.bam"].attr_timeout == 0
    assert stat.S_ISDIR(entries["by-id"].mode)
    assert entries["by-id"].nlink == 2
    attr = await fs.getattr(await resolve(fs, "sequence-stores/cohort/NA1.bam"))
    assert (attr.size, attr.mode, attr.uid, attr.gid, attr.nlink) == (
        len(BAM),
        stat.S_IFREG | 0o444,
        1000,
        1000,
        1,
    )
    assert attr.attr_timeout == UNIT_CONFIG.kernel.immutable_timeout
    await trio.testing.wait_all_tasks_blocked()
    # ls -l: the first stat after the listing fetched every sibling's metadata at once.
    assert backend.calls["GetReadSetMetadata"] == 2
    await fs.getattr(await resolve(fs, "sequence-stores/cohort/reads_2.fastq.gz"))
    assert backend.calls["GetReadSetMetadata"] == 2


@pytest.mark.trio
async def test_reads_are_byte_exact_and_documents_are_read_whole(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    store = _cohort(backend)
    backend.jobs[(store, JobKind.IMPORT)] = [JobSummary("job1", store, JobKind.IMPORT, "COMPLETED", 1.0)]
    fs = make_fs(backend, nursery)
    assert await read_file(fs, "sequence-stores/cohort/NA1.bam") == BAM
    assert await read_file(fs, "sequence-stores/cohort/NA1.bam.bai") == BAI
    assert await read_file(fs, "sequence-stores/cohort/reads_2.fastq.gz") == b"b" * 20
    assert b'"status": "COMPLETED"' in await read_file(fs, "sequence-stores/cohort/.jobs/import/job1.json")
    stats = await read_file(fs, ".omicsfs/stats.json")
    assert b'"GetReadSet"' in stats


@pytest.mark.trio
async def test_archived_read_sets_are_listed_and_refuse_open_with_one_log_line(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    cold = backend.add_read_set(store, "cold", {StoredFile.SOURCE1: BAM}, file_type=FileType.UBAM,
                                status=Status.ARCHIVED)  # fmt: skip
    fs = make_fs(backend, nursery)
    ino = await resolve(fs, "sequence-stores/cohort/cold.bam")
    for _ in range(2):
        with pytest.raises(FsError) as refused:
            await fs.open(ino, os.O_RDONLY)
        assert refused.value.errno == errno.EACCES
    lines = [r.message for r in caplog.records if "refusing to open" in r.message]
    assert len(lines) == 1
    assert "start-read-set-activation-job" in lines[0]
    assert (await fs.xattrs(ino))["user.omics.status"] == "ARCHIVED"
    backend.set_status(store, cold.id, Status.ACTIVE)  # an activation job finished
    assert await read_file(fs, "sequence-stores/cohort/cold.bam") == BAM  # honoured at once
    assert (await fs.xattrs(ino))["user.omics.status"] == "ACTIVE"


@pytest.mark.trio
async def test_every_mutation_of_a_read_only_mount_is_erofs(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    _cohort(backend)
    fs = make_fs(backend, nursery)
    folder = await resolve(fs, "sequence-stores/cohort")
    bam = await resolve(fs, "sequence-stores/cohort/NA1.bam")
    for attempt in (
        fs.create(folder, "new.bam"),
        fs.mkdir(folder, "x"),
        fs.unlink(folder, "NA1.bam"),
        fs.open(bam, os.O_WRONLY),
        fs.setattr(bam, AttrChange(size=0)),
    ):
        with pytest.raises(FsError) as refused:
            await attempt
        assert refused.value.errno == errno.EROFS
    assert fs.refuse("rename").errno == errno.EROFS


@pytest.mark.trio
async def test_listings_refresh_after_the_ttl_and_the_kernel_is_told_what_went(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    first = backend.add_read_set(store, "first", {StoredFile.SOURCE1: b"1"}, file_type=FileType.FASTQ)
    invalidated: list[tuple[int, str, int]] = []
    fs = make_fs(backend, nursery, invalidated=invalidated)
    assert await listing(fs, "sequence-stores/cohort") == [".jobs", "by-id", "by-sample", "by-subject",
                                                          "first.fastq.gz"]  # fmt: skip
    backend.add_read_set(store, "second", {StoredFile.SOURCE1: b"2"}, file_type=FileType.FASTQ)
    lists = backend.calls["ListReadSets"]
    autojump_clock.jump(29)
    assert "second.fastq.gz" not in await listing(fs, "sequence-stores/cohort")  # within the TTL
    assert backend.calls["ListReadSets"] == lists
    autojump_clock.jump(2)
    assert "second.fastq.gz" in await listing(fs, "sequence-stores/cohort")
    assert backend.calls["ListReadSets"] == lists + 1
    del backend.objects[store][first.id]
    autojump_clock.jump(31)
    assert "first.fastq.gz" not in await listing(fs, "sequence-stores/cohort")
    assert "first.fastq.gz" in {name for _, name, _ in invalidated}


@pytest.mark.trio
async def test_names_that_collide_get_their_ids(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    a = backend.add_read_set(store, "same", {StoredFile.SOURCE1: b"a"}, file_type=FileType.FASTQ)
    b = backend.add_read_set(store, "same", {StoredFile.SOURCE1: b"b"}, file_type=FileType.FASTQ)
    backend.add_read_set(store, "a/b", {StoredFile.SOURCE1: b"c"}, file_type=FileType.FASTQ)
    fs = make_fs(backend, nursery)
    names = await listing(fs, "sequence-stores/cohort")
    assert {f"same.{a.id}.fastq.gz", f"same.{b.id}.fastq.gz", "a_b.fastq.gz"} <= set(names)
    by_id = await resolve(fs, f"sequence-stores/cohort/by-id/{b.id}.fastq.gz")
    assert await fs.readlink(by_id) == f"../same.{b.id}.fastq.gz"
    assert await read_file(fs, f"sequence-stores/cohort/same.{b.id}.fastq.gz") == b"b"


@pytest.mark.trio
async def test_eight_sequential_readers_stay_within_the_read_ahead_budget(nursery: trio.Nursery) -> None:
    """The read-ahead bug through the whole read path: with every part body held (nothing ever
    arrives), eight sequential readers must not have more parts prefetched than the budget."""
    backend = FakeBackend()
    store = sequence_store(backend)
    big = os.urandom(40 * PART)
    for index in range(8):
        backend.add_read_set(store, f"r{index}", {StoredFile.SOURCE1: big}, file_type=FileType.UBAM)
    budget_parts = 5
    config = replace(
        UNIT_CONFIG,
        cache=replace(UNIT_CONFIG.cache, memory_bytes=200 * PART),  # nothing is evicted
        read_ahead=ReadAheadConfig(budget_fraction=budget_parts / 200, max_streams=8),
    )
    fs = make_fs(backend, nursery, config)
    backend.data_streams = trio.Semaphore(1000)  # held fetches never give their connection back
    fs.cache._receivers.total_tokens = 1000  # nor their receiving thread
    backend.hold_bodies()
    handles = [(await fs.open(await resolve(fs, f"sequence-stores/cohort/r{i}.bam"), 0))[0] for i in range(8)]

    async def first_chunks(handle: int) -> None:
        offset = 0
        for _ in range(50):  # 16 KiB reads inside the first block of each part's first chunk
            await fs.read(handle, offset, 4096)
            offset += 4096 if offset % PART < 12 << 10 else PART - offset % PART

    async with trio.open_nursery() as readers:
        for handle in handles:
            readers.start_soon(first_chunks, handle)
    assert fs.stats.prefetch_parts <= budget_parts
    assert fs.reader.budget.in_use <= budget_parts * PART


@pytest.mark.trio
async def test_a_failed_request_is_labelled_with_the_node(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    store = _cohort(backend)
    fs = make_fs(backend, nursery)
    ino = await resolve(fs, "sequence-stores/cohort/NA1.bam")
    label = fs.node_label(ino=ino)
    assert f"sequence store {store}" in label
    assert "read set" in label
    assert "source1" in label
    assert fs.node_label(ino=ROOT_INODE) == " (Root)"
    assert fs.node_label(fh=12345) == ""
    assert StoreKind.SEQUENCE in {StoreKind(k) for k in ("sequence",)}
