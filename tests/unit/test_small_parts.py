"""The small pure pieces the filesystem stands on: typed results (backend/models.py), inode and
handle tables (fs/inodes.py, fs/handles.py), attributes (fs/attrs.py), background tasks
(fs/tasks.py)."""

from __future__ import annotations

import datetime as dt
import errno
import logging
import stat

import pytest
import trio
import trio.testing

from omicsfs.backend.models import (
    FileLayout,
    FileType,
    JobKind,
    JobSummary,
    ObjectFiles,
    ObjectKind,
    ReadSetSummary,
    ReferenceSummary,
    StoreKind,
    epoch,
)
from omicsfs.fs.attrs import READ_BLKSIZE, Owner
from omicsfs.fs.errors import FsError
from omicsfs.fs.handles import DocumentHandle, HandleTable
from omicsfs.fs.inodes import ROOT_INODE, InodeTable
from omicsfs.fs.nodes import ROOT, ObjectFile, StoreFolder
from omicsfs.fs.tasks import TaskGroup

# -- backend/models.py ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (dt.datetime(2024, 5, 1, tzinfo=dt.UTC), 1714521600.0),
        ("2024-05-01T00:00:00.000Z", 1714521600.0),
        ("2024-05-01T02:00:00+02:00", 1714521600.0),
        (1714521600, 1714521600.0),
        (1.5, 1.5),
        (None, 0.0),
    ],
)
def test_epoch_reads_every_form_a_time_arrives_in(value: object, seconds: float) -> None:
    assert epoch(value) == seconds


def test_a_layout_cuts_a_file_into_parts_with_a_short_last_one() -> None:
    layout = FileLayout(content_length=250, part_size=100, total_parts=3)
    assert [layout.part_length(n) for n in (1, 2, 3, 4)] == [100, 100, 50, 0]
    assert [layout.part_of(offset) for offset in (0, 99, 100, 249)] == [1, 1, 2, 3]


def test_object_files_survive_json() -> None:
    files = ObjectFiles("v", "ACTIVE", {"source1": FileLayout(10, 4, 3), "index": FileLayout(1, 4, 1)})
    assert ObjectFiles.from_json(files.to_json()) == files


def test_validators_change_with_the_content() -> None:
    read_set = ReadSetSummary("1", "s", "arn", "n", "ACTIVE", "BAM", "S", "P", 10.0, etag_source1="a")
    assert read_set.validator == "10.000:a:"
    assert ReadSetSummary(
        "1", "s", "arn", "n", "ACTIVE", "BAM", "S", "P", 10.0, etag_source1="b"
    ).validator != (read_set.validator)
    reference = ReferenceSummary("2", "s", "arn", "g", "ACTIVE", "md5", 10.0)
    assert reference.validator == "10.000:md5"
    assert (read_set.kind, reference.kind) == (ObjectKind.READ_SET, ObjectKind.REFERENCE)
    assert (ObjectKind.READ_SET.data_operation, ObjectKind.REFERENCE.data_operation) == (
        "GetReadSet",
        "GetReference",
    )


@pytest.mark.parametrize(
    ("status", "terminal"),
    [("COMPLETED", True), ("COMPLETED_WITH_FAILURES", True), ("FAILED", True), ("CANCELLED", True),
     ("IN_PROGRESS", False), ("SUBMITTED", False), ("CANCELLING", False), ("", False)],
)  # fmt: skip
def test_a_job_is_final_only_in_a_terminal_state(status: str, terminal: bool) -> None:
    assert JobSummary("j", "s", JobKind.IMPORT, status, 0.0).terminal is terminal


def test_aligned_types_are_bam_and_cram() -> None:
    assert [t for t in FileType if t.aligned] == [FileType.BAM, FileType.CRAM]
    assert FileType.FASTQ == "FASTQ"  # the enums compare equal to the service's strings


# -- fs/inodes.py and fs/handles.py -----------------------------------------------------------------


def test_inode_numbers_are_stable_and_never_reused() -> None:
    table = InodeTable()
    assert table.ino(ROOT) == ROOT_INODE
    store = StoreFolder(StoreKind.SEQUENCE, "1")
    file = ObjectFile(StoreKind.SEQUENCE, "1", "2", "source1")
    assert table.known(file) is None  # asking does not allocate
    first, second = table.ino(store), table.ino(file)
    assert len({ROOT_INODE, first, second}) == 3
    assert table.ino(ObjectFile(StoreKind.SEQUENCE, "1", "2", "source1")) == second  # equal nodes, one number
    assert table.node(second) == file
    assert table.known(file) == second
    with pytest.raises(FsError) as raised:
        table.node(second + 1)
    assert raised.value.errno == errno.ESTALE


def test_handle_numbers_are_never_reused_and_unknown_ones_are_ebadf() -> None:
    table = HandleTable()
    one = table.add(DocumentHandle(5, b"x"))
    assert table.pop(one) == DocumentHandle(5, b"x")
    two = table.add(DocumentHandle(6, b"y"))
    assert two != one
    assert table.find(one) is None
    assert table.pop(one) is None
    with pytest.raises(FsError) as raised:
        table.get(one)
    assert raised.value.errno == errno.EBADF
    assert table.get(two) == DocumentHandle(6, b"y")


def test_attributes_give_folders_two_links_and_files_one() -> None:
    owner = Owner(uid=1000, gid=100)
    folder = owner.attr(7, stat.S_IFDIR | 0o555, 0, 0.0, 3600.0)
    file = owner.attr(8, stat.S_IFREG | 0o444, 42, 1.0, 3600.0, attr_timeout=0.0)
    assert (folder.nlink, file.nlink) == (2, 1)
    assert (file.uid, file.gid, file.size, file.blksize) == (1000, 100, 42, READ_BLKSIZE)
    assert (folder.attr_timeout, file.entry_timeout, file.attr_timeout) == (3600.0, 3600.0, 0.0)


# -- fs/tasks.py ------------------------------------------------------------------------------------


@pytest.mark.trio
async def test_a_failing_background_task_is_logged_and_ends_only_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    finished: list[str] = []

    async def broken() -> None:
        raise KeyError("a bug")

    async def fine(name: str) -> None:
        await trio.sleep(1)
        finished.append(name)

    tasks = TaskGroup()
    async with trio.open_nursery() as nursery:
        tasks.attach(nursery)
        tasks.start(broken)
        tasks.start(fine, "after")
    assert finished == ["after"]
    assert (
        "background task test_a_failing_background_task_is_logged_and_ends_only_itself.<locals>.broken failed"
        in (caplog.text)
    )
    assert any(record.levelno == logging.ERROR and record.exc_info for record in caplog.records)


@pytest.mark.trio
async def test_unmounting_cancels_background_work() -> None:
    tasks = TaskGroup()
    started = trio.Event()
    cancelled: list[bool] = []

    async def forever() -> None:
        started.set()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:  # not swallowed as "a bug": cancellation goes through
            cancelled.append(True)
            raise

    async with trio.open_nursery() as nursery:
        tasks.attach(nursery)
        tasks.start(forever)
        await started.wait()
        nursery.cancel_scope.cancel()
    assert cancelled == [True]


def test_background_work_needs_the_mounts_nursery() -> None:
    async def nothing() -> None:
        pass

    with pytest.raises(RuntimeError, match="attach"):
        TaskGroup().start(nothing)
