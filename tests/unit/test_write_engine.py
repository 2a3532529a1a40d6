"""The write engine on the fake backend: Complete reconciled, shutdown with writers in flight,
errnos after close and errors, early format checks, and progress as bytes move."""

from __future__ import annotations

import errno
import json

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from omicsfs.backend.errors import AmbiguousOutcome, InvalidRequest
from omicsfs.backend.models import Status
from omicsfs.fs.errors import FsError
from omicsfs.fs.filesystem import FileSystem
from tests.fakes.backend import FakeBackend
from tests.fakes.harness import PART, UNIT_CONFIG, listing, make_fs, resolve, sequence_store, writable
from tests.unit.write_helpers import FASTQ_GZ, copy_in, create, write_all

COHORT = "sequence-stores/cohort"
COMPLETE = "CompleteMultipartReadSetUpload"


def read_sets(backend: FakeBackend, store: str, name: str) -> list[str]:
    return [o.summary.id for o in backend.objects[store].values() if o.summary.name == name]


def rw(backend: FakeBackend, nursery: trio.Nursery, **write: object) -> FileSystem:
    return make_fs(backend, nursery, writable(UNIT_CONFIG, **write))


# -- Complete, reconciled ---------------------------------------------------------------------


@pytest.mark.trio
async def test_a_lost_complete_answer_is_found_by_the_upload_token_and_reported_as_success(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    backend.drop(COMPLETE)  # the service completes, then the answer is lost
    fs = rw(backend, nursery)
    await copy_in(fs, COHORT, "lost.fastq.gz")  # close() returns 0
    made = read_sets(backend, store, "lost")
    assert len(made) == 1
    assert backend.calls[COMPLETE] == 1  # never sent again: it had taken effect
    assert backend.calls["ListTagsForResource"] >= 1
    assert backend.uploads == {}
    ino = await resolve(fs, f"{COHORT}/lost.fastq.gz")
    assert (await fs.xattrs(ino))["user.omics.id"] == made[0]


@pytest.mark.trio
async def test_a_complete_that_failed_before_acting_is_sent_again_once_the_upload_is_seen_open(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    backend.fail(COMPLETE, lambda: AmbiguousOutcome(COMPLETE, "503 before acting", "ServiceUnavailable"))
    fs = rw(backend, nursery)
    await copy_in(fs, COHORT, "again.fastq.gz")
    assert len(read_sets(backend, store, "again")) == 1
    assert backend.calls[COMPLETE] == 2
    assert backend.calls["ListMultipartReadSetUploads"] >= 1


@pytest.mark.trio
async def test_a_complete_that_never_settles_fails_close_with_eio_and_leaves_nothing(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    backend.fail(COMPLETE, lambda: AmbiguousOutcome(COMPLETE, "reset", "ConnectionClosedError"), times=99)
    fs = rw(backend, nursery)
    with pytest.raises(FsError) as failed:
        await copy_in(fs, COHORT, "never.fastq.gz")
    assert failed.value.errno == errno.EIO
    assert read_sets(backend, store, "never") == []
    assert backend.uploads == {}  # aborted
    assert "never.fastq.gz" not in await listing(fs, COHORT)


# -- shutdown with writers in flight -------------------------------------------------------------


@pytest.mark.trio
@pytest.mark.parametrize("writers", [1, 6])
async def test_shutdown_ends_writers_waiting_for_slots_and_mid_part_with_eio_and_aborts_all(
    writers: int, nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    gate = backend.hold_parts()  # parts never finish: every writer ends up waiting on a slot
    fs = rw(backend, nursery, parts_in_flight=2)
    errors: dict[str, int] = {}

    async def writer(name: str) -> None:
        handle = await create(fs, COHORT, name)
        try:
            await write_all(fs, handle, FASTQ_GZ)
            await fs.flush(handle)
        except FsError as error:
            errors[name] = error.errno
        finally:
            fs.release(handle)

    async with trio.open_nursery() as writing:
        for index in range(writers):
            writing.start_soon(writer, f"w{index}.fastq.gz")
        await trio.testing.wait_all_tasks_blocked()
        assert gate.waiting == 2  # two parts on the wire, every writer queued for a slot
        with trio.fail_after(5):  # bounded even though no part ever finishes
            assert fs.writes is not None
            await fs.writes.shutdown()
    assert errors == {f"w{index}.fastq.gz": errno.EIO for index in range(writers)}
    assert backend.uploads == {}
    assert backend.objects[store] == {}
    with pytest.raises(FsError) as refused:
        await create(fs, COHORT, "late.fastq.gz")
    assert refused.value.errno == errno.EIO


@pytest.mark.trio
async def test_shutdown_waits_for_a_complete_on_its_way(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    fs = rw(backend, nursery)
    handle = await create(fs, COHORT, "done.fastq.gz")
    await write_all(fs, handle, FASTQ_GZ)
    backend.part_seconds = 2.0  # the last part is still on its way when the stop comes
    async with trio.open_nursery() as closing:
        closing.start_soon(fs.flush, handle)
        await trio.testing.wait_all_tasks_blocked()
        assert fs.writes is not None
        closing.start_soon(fs.writes.shutdown)
    fs.release(handle)
    assert len(read_sets(backend, store, "done")) == 1
    assert backend.uploads == {}


@pytest.mark.trio
async def test_an_upload_created_while_the_stop_aborts_it_is_aborted_too(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    backend.create_seconds = 3.0  # Create is on its way when the stop comes
    fs = rw(backend, nursery)
    handle = await create(fs, COHORT, "late.fastq.gz")
    failed: list[int] = []

    async def write() -> None:
        try:
            await write_all(fs, handle, FASTQ_GZ[:PART])
        except FsError as error:
            failed.append(error.errno)

    async with trio.open_nursery() as writing:
        writing.start_soon(write)
        await trio.testing.wait_all_tasks_blocked()
        assert fs.writes is not None
        writing.start_soon(fs.writes.shutdown)
    fs.release(handle)
    assert failed == [errno.EIO]
    assert backend.calls["CreateMultipartReadSetUpload"] == 1
    assert backend.uploads == {}  # what the Create made was aborted, not left listed
    assert backend.objects[store] == {}


# -- errnos after close and errors -------------------------------------------------------------


@pytest.mark.trio
async def test_writes_after_close_fsync_or_a_refused_write_are_ebadf(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    backend = FakeBackend()
    sequence_store(backend)
    fs = rw(backend, nursery)
    for name, end in (("closed.fastq.gz", "flush"), ("seeky.fastq.gz", "seek")):
        handle = await create(fs, COHORT, name)
        await write_all(fs, handle, FASTQ_GZ[:PART])
        if end == "flush":
            await fs.flush(handle)  # close of one descriptor (or fsync) completes the upload
        else:
            with pytest.raises(FsError) as refused:
                await fs.write(handle, PART + 10, b"x")
            assert refused.value.errno == errno.EINVAL
        with pytest.raises(FsError) as late:  # a dup'd descriptor writes on
            await fs.write(handle, PART, FASTQ_GZ[PART : 2 * PART])
        assert late.value.errno == errno.EBADF, name
        ino = fs.handles.get(handle).ino
        await fs.getattr(ino)  # its inode still answers (the kernel stats before writing)
        fs.release(handle)


@pytest.mark.trio
async def test_a_part_failure_is_eio_on_the_next_write_then_ebadf(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    backend = FakeBackend()
    sequence_store(backend)
    fs = rw(backend, nursery)
    backend.fail("UploadReadSetPart", lambda: InvalidRequest("UploadReadSetPart", "bad", "Validation"))
    handle = await create(fs, COHORT, "broken.fastq.gz")
    await write_all(fs, handle, FASTQ_GZ[:PART])  # the part leaves and fails in the background
    await trio.testing.wait_all_tasks_blocked()
    codes = []
    for offset in (PART, PART):
        try:
            await fs.write(handle, offset, FASTQ_GZ[offset : offset + PART])
        except FsError as error:
            codes.append(error.errno)
    await fs.flush(handle)  # the error was reported already
    fs.release(handle)
    assert codes == [errno.EIO, errno.EBADF]


@pytest.mark.trio
@pytest.mark.parametrize(("name", "data"), [("notes.bam", b"hello world\n"), ("x.cram", b"CRAX"),
                                            ("t.fastq.gz", b"@r")])  # fmt: skip
async def test_a_short_first_write_that_cannot_be_the_type_fails_at_once(
    name: str, data: bytes, nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    backend = FakeBackend()
    sequence_store(backend)
    fs = rw(backend, nursery)
    handle = await create(fs, COHORT, name)
    with pytest.raises(FsError) as refused:
        await fs.write(handle, 0, data)
    assert refused.value.errno == errno.EINVAL
    fs.release(handle)
    assert backend.calls["CreateMultipartReadSetUpload"] == 0


# -- progress ---------------------------------------------------------------------------------


@pytest.mark.trio
async def test_progress_counts_bytes_as_they_leave_and_keeps_outcomes(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    fs = rw(backend, nursery)
    gate = backend.hold_parts()
    handle = await create(fs, COHORT, "moving.fastq.gz")
    await write_all(fs, handle, FASTQ_GZ[:PART])  # one full part leaves, half of it is read
    await trio.sleep(4)
    await trio.testing.wait_all_tasks_blocked()
    uploads = json.loads(fs.stats_document())["uploads"]
    moving = uploads["in_flight"]["moving.fastq.gz"]
    assert moving["written_bytes"] == PART
    assert moving["uploaded_bytes"] == PART // 2  # mid-part, not 0 and not the whole part
    assert moving["rate_bytes_per_second"] == pytest.approx(PART // 2 / 4, rel=0.05)
    assert moving["eta_seconds"] == pytest.approx(4, rel=0.05)
    assert uploads["total"]["uploaded_bytes"] == PART // 2
    assert uploads["total"]["files"] == 1
    gate.release()
    await write_all(fs, handle, FASTQ_GZ[PART:], start=PART)
    await fs.flush(handle)
    fs.release(handle)
    uploads = json.loads(fs.stats_document())["uploads"]
    assert uploads["in_flight"] == {}
    [ended] = uploads["recent"]
    assert ended["files"] == ["moving.fastq.gz"]
    assert ended["read_set_id"] == read_sets(backend, store, "moving")[0]
    assert ended["status"] == Status.PROCESSING_UPLOAD
    assert ended["uploaded_bytes"] == len(FASTQ_GZ)
    await trio.sleep(301)
    assert json.loads(fs.stats_document())["uploads"]["recent"] == []
