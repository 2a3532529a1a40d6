"""After close: the read set is there at once under its name, whatever the listing TTL; sizes
while processing are the bytes written, then the service's, with the kernel told; UPLOAD_FAILED
read sets are listed; utimens on a file just written is a no-op (SEMANTICS.md, "After close")."""

from __future__ import annotations

import errno
import logging
import os
import stat
from dataclasses import replace

import pytest
import trio
from trio.testing import MockClock

from omicsfs.backend.models import FileType, ReadSetSummary, Status, StoredFile
from omicsfs.fs.errors import FsError
from omicsfs.fs.filesystem import AttrChange, FileSystem
from omicsfs.fs.stats import Stats
from tests.fakes.backend import FakeBackend
from tests.fakes.harness import UNIT_CONFIG, listing, resolve, sequence_store, writable
from tests.unit.write_helpers import FASTQ_GZ, copy_in, create, write_all

COHORT = "sequence-stores/cohort"


def make_rw(backend: FakeBackend, nursery: trio.Nursery, inodes: list[int]) -> FileSystem:
    fs = FileSystem(writable(), backend, Stats(backend=backend.stats), mountpoint="/mnt/unit",
                    invalidate=lambda parent, name, ino: None, invalidate_inode=inodes.append)  # fmt: skip
    fs.tasks.attach(nursery)
    return fs


@pytest.mark.trio
async def test_a_closed_file_is_listed_with_its_written_size_and_status_at_once(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    backend = FakeBackend()
    sequence_store(backend)
    inodes: list[int] = []
    fs = make_rw(backend, nursery, inodes)
    assert "new.fastq.gz" not in await listing(fs, COHORT)  # the listing is cached from here on
    written_ino = await copy_in(fs, COHORT, "new.fastq.gz")
    metadata_calls = backend.calls["GetReadSetMetadata"]

    assert "new.fastq.gz" in await listing(fs, COHORT)  # within the TTL, without a new listing
    assert backend.calls["ListReadSets"] == 1
    ino = await resolve(fs, f"{COHORT}/new.fastq.gz")
    attr = await fs.getattr(ino)
    assert attr.size == len(FASTQ_GZ)
    assert attr.attr_timeout == 0  # the size may change once the service has processed it
    assert (await fs.getattr(written_ino)).size == len(FASTQ_GZ)  # the inode the kernel still holds
    xattrs = await fs.xattrs(ino)
    assert xattrs["user.omics.status"] == "PROCESSING_UPLOAD"
    assert xattrs["user.omics.name"] == "new"
    assert backend.calls["GetReadSetMetadata"] == metadata_calls  # all known without a call
    with pytest.raises(FsError) as refused:
        await fs.open(ino, os.O_RDONLY)
    assert refused.value.errno == errno.EACCES
    with pytest.raises(FsError) as refused:
        await fs.open(written_ino, os.O_RDONLY)
    assert refused.value.errno == errno.EACCES


@pytest.mark.trio
async def test_sizes_follow_the_service_once_active_and_the_kernel_is_told(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    inodes: list[int] = []
    fs = make_rw(backend, nursery, inodes)
    written_ino = await copy_in(fs, COHORT, "grow.fastq.gz")
    ino = await resolve(fs, f"{COHORT}/grow.fastq.gz")
    read_set = next(iter(backend.objects[store].values()))

    await trio.sleep(UNIT_CONFIG.listing_ttl + 1)  # listed again: the service's summary, no files yet
    assert (await fs.getattr(ino)).size == len(FASTQ_GZ)  # still the bytes written, not ENOENT

    stored = read_set.files[StoredFile.SOURCE1] + b"\n"  # the service's copy differs in size
    read_set.files[StoredFile.SOURCE1] = stored
    backend.set_status(store, read_set.summary.id, Status.ACTIVE)
    inodes.clear()
    handle, _ = await fs.open(ino, os.O_RDONLY)  # asks the service before refusing: ACTIVE now
    fs.release(handle)
    assert {ino, written_ino} <= set(inodes)  # both inodes showing the old size are invalidated
    attr = await fs.getattr(ino)
    assert attr.size == len(stored)
    assert attr.attr_timeout == UNIT_CONFIG.kernel.immutable_timeout
    assert (await fs.getattr(written_ino)).size == len(stored)


@pytest.mark.trio
async def test_upload_failed_read_sets_are_listed_linked_and_refuse_open_with_one_log_line(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    failed = backend.add_read_set(store, "cut", {StoredFile.SOURCE1: b"x" * 100}, status=Status.UPLOAD_FAILED,
                                  file_type=FileType.BAM, sample_id="S9")  # fmt: skip
    stored = backend.objects[store][failed.id]
    assert isinstance(stored.summary, ReadSetSummary)
    stored.summary = replace(stored.summary, status_message="BAM file is truncated")
    fs = make_rw(backend, nursery, [])
    names = await listing(fs, COHORT)
    assert {"cut.bam", "cut.bam.bai"} <= set(names)
    for name in ("cut.bam", "cut.bam.bai", "by-sample/S9/cut.bam"):  # ls -l: every stat answers
        attr = await fs.getattr(await resolve(fs, f"{COHORT}/{name}"))
        assert stat.S_ISREG(attr.mode) or stat.S_ISLNK(attr.mode)
    link = await resolve(fs, f"{COHORT}/by-sample/S9/cut.bam")
    assert await fs.readlink(link) == "../../cut.bam"
    ino = await resolve(fs, f"{COHORT}/cut.bam")
    assert (await fs.getattr(ino)).size == 0
    xattrs = await fs.xattrs(ino)
    assert xattrs["user.omics.status"] == "UPLOAD_FAILED"
    assert xattrs["user.omics.statusMessage"] == "BAM file is truncated"
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            with pytest.raises(FsError) as refused:
                await fs.open(ino, os.O_RDONLY)
            assert refused.value.errno == errno.EACCES
    lines = [r.message for r in caplog.records if "refusing to open" in r.message]
    assert len(lines) == 1
    assert "BAM file is truncated" in lines[0]


@pytest.mark.trio
async def test_setting_times_on_a_file_just_written_succeeds_and_changes_nothing(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    other = backend.add_read_set(store, "old", {StoredFile.SOURCE1: FASTQ_GZ}, file_type=FileType.FASTQ)
    fs = make_rw(backend, nursery, [])
    handle = await create(fs, COHORT, "touched.fastq.gz")
    writing_ino = fs.handles.get(handle).ino
    await write_all(fs, handle, FASTQ_GZ)
    before = await fs.setattr(writing_ino, AttrChange(times=True))  # cp -p: before close
    await fs.flush(handle)
    fs.release(handle)
    ino = await resolve(fs, f"{COHORT}/touched.fastq.gz")
    after = await fs.setattr(ino, AttrChange(times=True))  # rclone, rsync: by name after close
    assert after.mtime == (await fs.getattr(ino)).mtime
    assert before.size == after.size == len(FASTQ_GZ)
    await fs.setattr(writing_ino, AttrChange(times=True, mode=True, owner=True))  # cp -a
    assert (await fs.getattr(ino)).mode == stat.S_IFREG | 0o444  # nothing changed
    with pytest.raises(FsError) as refused:
        await fs.setattr(ino, AttrChange(size=1))
    assert refused.value.errno == errno.EPERM
    old = await resolve(fs, f"{COHORT}/{other.name}.fastq.gz")
    for change in (AttrChange(times=True), AttrChange(mode=True)):
        with pytest.raises(FsError) as refused:
            await fs.setattr(old, change)  # a read set this mount did not write
        assert refused.value.errno == errno.EPERM


@pytest.mark.trio
async def test_renaming_and_rsync_temp_names_say_to_use_inplace(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    backend = FakeBackend()
    sequence_store(backend)
    fs = make_rw(backend, nursery, [])
    with pytest.raises(FsError) as refused:
        await create(fs, COHORT, ".reads.fastq.gz.Ab3xYz")
    assert refused.value.errno == errno.EINVAL
    assert "rsync --inplace" in refused.value.reason
    assert "--inplace" in fs.refuse("rename").reason
