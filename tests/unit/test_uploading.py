"""The write path in-process: create/write/flush/release on a ``--read-write`` FileSystem over the
fake backend (fs/write/: ops, manager, group, writer, upload), on the fake clock.

These tests use only the filesystem's public calls and what the fake service ends up holding, so
they describe behaviour (SEMANTICS.md, "Writing"), not the engine's internals. The real proof,
with real tools through the kernel against the local service, is tests/write/.
"""

from __future__ import annotations

import errno
import gzip
import os
import random
from pathlib import Path
from typing import Any

import pysam
import pytest
import trio
import trio.testing

from omicsfs.backend.errors import InvalidRequest, ServiceFailure
from omicsfs.backend.interface import PartProgress
from omicsfs.backend.models import FileType, Status, StoredFile
from omicsfs.fs.errors import FsError
from omicsfs.fs.filesystem import FileSystem
from tests.fakes.backend import FakeBackend
from tests.fakes.harness import PART, UNIT_CONFIG, listing, make_fs, resolve, sequence_store, writable

COHORT = "sequence-stores/cohort"


def fastq_gz(records: int, seed: int = 0) -> bytes:
    """Gzipped FASTQ of about 50 bytes per record before compression; random bases compress
    poorly, so the stored size stays close to the record count times 30."""
    rng = random.Random(seed)
    text = "".join(
        f"@r{index}\n{''.join(rng.choices('ACGT', k=40))}\n+\n{'I' * 40}\n" for index in range(records)
    )
    return gzip.compress(text.encode(), compresslevel=1)


async def create(fs: FileSystem, folder: str, name: str) -> int:
    handle, _ = await fs.create(await resolve(fs, folder), name)
    return handle


async def write_all(fs: FileSystem, handle: int, data: bytes, chunk: int = 20000) -> None:
    for offset in range(0, len(data), chunk):
        assert await fs.write(handle, offset, data[offset : offset + chunk]) == len(
            data[offset : offset + chunk]
        )


async def close(fs: FileSystem, handle: int) -> None:
    """close(2): flush, then release."""
    try:
        await fs.flush(handle)
    finally:
        fs.release(handle)


async def copy_in(fs: FileSystem, folder: str, name: str, data: bytes) -> None:
    handle = await create(fs, folder, name)
    await write_all(fs, handle, data)
    await close(fs, handle)


def read_sets(backend: FakeBackend, store: str) -> dict[str, Any]:
    return {stored.summary.name: stored for stored in backend.objects[store].values()}


def fs_on(backend: FakeBackend, nursery: trio.Nursery, **write: object) -> FileSystem:
    return make_fs(backend, nursery, writable(UNIT_CONFIG, **write))


# -- what arrives ---------------------------------------------------------------------------------


@pytest.mark.trio
async def test_a_file_written_in_order_becomes_one_read_set_byte_for_byte(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    fs = fs_on(backend, nursery)
    data = fastq_gz(12000)
    assert len(data) > 3 * PART
    await copy_in(fs, COHORT, "NA1.fastq.gz", data)
    stored = read_sets(backend, store)["NA1"]
    assert stored.files == {StoredFile.SOURCE1: data}
    assert stored.summary.file_type == FileType.FASTQ
    assert stored.summary.status == Status.PROCESSING_UPLOAD
    assert (stored.summary.sample_id, stored.summary.subject_id) == ("NA1", "NA1")  # from the name
    assert backend.calls["UploadReadSetPart"] == -(-len(data) // PART)
    assert backend.calls["CreateMultipartReadSetUpload"] == 1
    assert backend.calls["CompleteMultipartReadSetUpload"] == 1
    assert backend.uploads == {}
    assert fs.stats.uploads_completed == 1


@pytest.mark.trio
async def test_plain_fastq_is_stored_gzipped(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    fs = fs_on(backend, nursery)
    text = gzip.decompress(fastq_gz(5000))
    await copy_in(fs, COHORT, "plain.fastq", text)
    stored = read_sets(backend, store)["plain"].files[StoredFile.SOURCE1]
    assert stored[:2] == b"\x1f\x8b"
    assert gzip.decompress(stored) == text


@pytest.mark.trio
async def test_group_folders_set_sample_and_subject(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    fs = fs_on(backend, nursery)
    await fs.mkdir(await resolve(fs, f"{COHORT}/by-sample"), "S9")
    assert "S9" in await listing(fs, f"{COHORT}/by-sample")
    await copy_in(fs, f"{COHORT}/by-sample/S9", "r.fastq.gz", fastq_gz(10))
    await fs.mkdir(await resolve(fs, f"{COHORT}/by-subject"), "P3")
    await copy_in(fs, f"{COHORT}/by-subject/P3", "q.fastq.gz", fastq_gz(10))
    made = read_sets(backend, store)
    assert (made["r"].summary.sample_id, made["r"].summary.subject_id) == ("S9", "S9")
    assert (made["q"].summary.sample_id, made["q"].summary.subject_id) == ("q", "P3")


@pytest.mark.trio
async def test_a_bam_takes_the_reference_given_and_a_ubam_none(nursery: trio.Nursery, tmp_path: Path) -> None:
    """BAM and uBAM headers made with pysam; the reference is named (--reference-arn), so no
    @SQ matching is involved (fs/write/references.py)."""

    def bam(sq: list[dict[str, Any]]) -> bytes:
        path = tmp_path / f"{len(sq)}.bam"
        header = {"HD": {"VN": "1.6"}, "SQ": sq, "RG": [{"ID": "a", "SM": "HG002"}]}
        with pysam.AlignmentFile(str(path), "wb", header=header):
            pass
        return path.read_bytes()

    backend = RecordingCreates()
    store = sequence_store(backend)
    fs = fs_on(
        backend, nursery, reference_arn="arn:aws:omics:us-east-1:123456789012:referenceStore/1/reference/2"
    )
    await copy_in(fs, COHORT, "aligned.bam", bam([{"SN": "chr1", "LN": 1000}]))
    await copy_in(fs, COHORT, "raw.bam", bam([]))
    made = read_sets(backend, store)
    assert made["aligned"].summary.file_type == FileType.BAM
    assert made["aligned"].summary.sample_id == "HG002"  # the header's SM wins over the name
    assert made["raw"].summary.file_type == FileType.UBAM
    assert [fields.get("referenceArn", "") for fields in backend.created] == [
        fs.config.writes.reference_arn,
        "",
    ]
    assert all(fields["tags"]["omicsfs:mount"].endswith(":/mnt/unit") for fields in backend.created)


class RecordingCreates(FakeBackend):
    """Keeps the fields of every CreateMultipartReadSetUpload."""

    def __init__(self) -> None:
        super().__init__()
        self.created: list[dict[str, Any]] = []

    async def create_upload(self, store_id: str, fields: dict[str, Any]) -> str:
        self.created.append(dict(fields))
        return await super().create_upload(store_id, fields)


@pytest.mark.trio
async def test_mates_written_together_become_one_paired_read_set(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    fs = fs_on(backend, nursery)
    one, two = fastq_gz(5000, seed=1), fastq_gz(5000, seed=2)
    first = await create(fs, COHORT, "pair_1.fastq.gz")
    second = await create(fs, COHORT, "pair_2.fastq.gz")
    for offset in range(
        0, max(len(one), len(two)), 30000
    ):  # interleaved, as `cp a b DIR` does not, but tools may
        if offset < len(one):
            await fs.write(first, offset, one[offset : offset + 30000])
        if offset < len(two):
            await fs.write(second, offset, two[offset : offset + 30000])
    await close(fs, first)
    assert read_sets(backend, store) == {}  # waits for its mate
    await close(fs, second)
    stored = read_sets(backend, store)["pair"]
    assert stored.files == {StoredFile.SOURCE1: one, StoredFile.SOURCE2: two}
    assert backend.calls["CreateMultipartReadSetUpload"] == 1
    assert backend.calls["CompleteMultipartReadSetUpload"] == 1


@pytest.mark.trio
async def test_a_lone_mate_1_is_completed_single_end_after_the_pair_timeout(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    fs = fs_on(backend, nursery, pair_timeout=60.0)
    await copy_in(fs, COHORT, "solo_1.fastq.gz", fastq_gz(100))
    await trio.sleep(59)
    assert read_sets(backend, store) == {}
    await trio.sleep(2)
    assert set(read_sets(backend, store)["solo"].files) == {StoredFile.SOURCE1}


@pytest.mark.trio
async def test_mate_2_arriving_within_the_timeout_joins_mate_1(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    fs = fs_on(backend, nursery, pair_timeout=60.0)
    await copy_in(fs, COHORT, "late_1.fastq.gz", fastq_gz(100, seed=1))
    await trio.sleep(50)
    await copy_in(fs, COHORT, "late_2.fastq.gz", fastq_gz(100, seed=2))
    await trio.sleep(100)  # the timer was stopped: nothing is completed twice
    assert set(read_sets(backend, store)["late"].files) == {StoredFile.SOURCE1, StoredFile.SOURCE2}
    assert backend.calls["CompleteMultipartReadSetUpload"] == 1


@pytest.mark.trio
async def test_a_file_being_written_is_listed_with_its_size_and_cannot_be_read(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    sequence_store(backend)
    fs = fs_on(backend, nursery)
    handle = await create(fs, COHORT, "busy.fastq.gz")
    data = fastq_gz(100)
    await write_all(fs, handle, data)
    assert "busy.fastq.gz" in await listing(fs, COHORT)
    ino = await resolve(fs, f"{COHORT}/busy.fastq.gz")
    assert (await fs.getattr(ino)).size == len(data)
    with pytest.raises(FsError) as raised:
        await fs.open(ino, os.O_RDONLY)
    assert raised.value.errno == errno.EPERM
    with pytest.raises(FsError) as raised:
        await fs.read(handle, 0, 10)
    assert raised.value.errno == errno.EPERM
    with pytest.raises(FsError) as raised:
        await fs.create(await resolve(fs, COHORT), "busy.fastq.gz")
    assert raised.value.errno == errno.EEXIST
    await close(fs, handle)


@pytest.mark.trio
async def test_an_empty_file_creates_nothing(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    fs = fs_on(backend, nursery)
    await close(fs, await create(fs, COHORT, "empty.fastq.gz"))
    assert "empty.fastq.gz" not in await listing(fs, COHORT)
    assert read_sets(backend, store) == {}
    assert backend.calls["CreateMultipartReadSetUpload"] == 0


# -- refusals -------------------------------------------------------------------------------------


async def refused(call: Any) -> int:
    with pytest.raises(FsError) as raised:
        await call
    return raised.value.errno


@pytest.mark.trio
async def test_an_out_of_order_write_is_einval_and_aborts_the_upload(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    fs = fs_on(backend, nursery)
    data = fastq_gz(6000)
    handle = await create(fs, COHORT, "seek.fastq.gz")
    await write_all(fs, handle, data[: 2 * PART])  # a part is already up: the upload exists
    assert len(backend.uploads) == 1
    assert await refused(fs.write(handle, 2 * PART + 100, data[2 * PART + 100 :])) == errno.EINVAL
    assert await refused(fs.write(handle, 2 * PART, data[2 * PART :])) == errno.EBADF  # failed for good
    fs.release(handle)
    await trio.testing.wait_all_tasks_blocked()
    assert backend.uploads == {}
    assert backend.calls["AbortMultipartReadSetUpload"] == 1
    assert read_sets(backend, store) == {}
    assert "seek.fastq.gz" not in await listing(fs, COHORT)
    assert fs.stats.uploads_aborted == 1


@pytest.mark.trio
async def test_mate_2_without_mate_1_fails_its_close_with_eio(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    fs = fs_on(backend, nursery)
    handle = await create(fs, COHORT, "alone_2.fastq.gz")
    await write_all(fs, handle, fastq_gz(6000))
    assert await refused(fs.flush(handle)) == errno.EIO
    fs.release(handle)
    assert backend.uploads == {}
    assert read_sets(backend, store) == {}


@pytest.mark.trio
@pytest.mark.parametrize(
    ("operation", "error"),
    [
        ("UploadReadSetPart", lambda: ServiceFailure("UploadReadSetPart", "down", "InternalServerException")),
        ("CompleteMultipartReadSetUpload",
         lambda: InvalidRequest("CompleteMultipartReadSetUpload", "bad parts", "ValidationException")),
    ],
    ids=["part", "complete"],
)  # fmt: skip
async def test_a_failed_upload_fails_close_with_eio_and_leaves_nothing(
    nursery: trio.Nursery, operation: str, error: Any
) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    fs = fs_on(backend, nursery)
    backend.fail(operation, error, times=1000)  # every attempt of every part fails
    handle = await create(fs, COHORT, "doomed.fastq.gz")

    async def write_and_close() -> None:  # the failure shows in a later write or at close
        await write_all(fs, handle, fastq_gz(6000))
        await fs.flush(handle)

    assert await refused(write_and_close()) == errno.EIO
    fs.release(handle)
    await trio.testing.wait_all_tasks_blocked()
    assert backend.uploads == {}  # aborted
    assert read_sets(backend, store) == {}
    assert "doomed.fastq.gz" not in await listing(fs, COHORT)


@pytest.mark.trio
async def test_bytes_that_contradict_the_name_fail_the_first_write(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    fs = fs_on(backend, nursery)
    bam = await create(fs, COHORT, "wrong.bam")
    assert await refused(fs.write(bam, 0, fastq_gz(100))) == errno.EINVAL
    plain = await create(fs, COHORT, "wrong.fastq")
    assert await refused(fs.write(plain, 0, b">chr1\nACGT\n")) == errno.EINVAL
    for handle in (bam, plain):
        fs.release(handle)
    assert backend.calls["CreateMultipartReadSetUpload"] == 0
    assert read_sets(backend, store) == {}


@pytest.mark.trio
@pytest.mark.parametrize("name", ["notes.txt", "x.bam.bai", "x.fasta", ".bam"])
async def test_names_that_are_no_read_set_file_are_einval_at_create(nursery: trio.Nursery, name: str) -> None:
    backend = FakeBackend()
    sequence_store(backend)
    fs = fs_on(backend, nursery)
    assert await refused(fs.create(await resolve(fs, COHORT), name)) == errno.EINVAL


@pytest.mark.trio
async def test_a_read_set_name_over_127_characters_is_refused_never_cut(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    sequence_store(backend)
    fs = fs_on(backend, nursery)
    folder = await resolve(fs, COHORT)
    assert await refused(fs.create(folder, f"{'n' * 128}.bam")) == errno.ENAMETOOLONG
    handle, _ = await fs.create(folder, f"{'n' * 127}.fastq.gz")
    fs.release(handle)


@pytest.mark.trio
async def test_files_go_only_into_sequence_store_folders(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    sequence_store(backend)
    fs = fs_on(backend, nursery)
    for folder in ("", "sequence-stores", f"{COHORT}/by-id", f"{COHORT}/.jobs"):
        assert await refused(fs.create(await resolve(fs, folder), "x.fastq.gz")) == errno.EPERM
    assert await refused(fs.mkdir(await resolve(fs, COHORT), "new")) == errno.EPERM


@pytest.mark.trio
async def test_a_write_after_the_upload_completed_is_ebadf(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    sequence_store(backend)
    fs = fs_on(backend, nursery)
    data = fastq_gz(100)
    handle = await create(fs, COHORT, "done.fastq.gz")
    await write_all(fs, handle, data)
    await fs.flush(handle)  # a dup'd descriptor is still open after this close
    assert await refused(fs.write(handle, len(data), b"@more\n")) == errno.EBADF
    fs.release(handle)


@pytest.mark.trio
async def test_a_read_only_mount_refuses_create_with_erofs(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    sequence_store(backend)
    fs = make_fs(backend, nursery)
    assert await refused(fs.create(await resolve(fs, COHORT), "x.fastq.gz")) == errno.EROFS


# -- pacing of parts ------------------------------------------------------------------------------


class SlowParts(FakeBackend):
    """Each part takes a second of the fake clock; counts how many are in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.most_in_flight = 0

    async def upload_part(
        self, store_id: str, upload_id: str, source: str, number: int, payload: bytes,
        progress: PartProgress | None = None,
    ) -> str:  # fmt: skip
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await trio.sleep(1)
            return await super().upload_part(store_id, upload_id, source, number, payload, progress)
        finally:
            self.in_flight -= 1


@pytest.mark.trio
async def test_parts_in_flight_across_all_files_are_bounded(nursery: trio.Nursery) -> None:
    backend = SlowParts()
    store = sequence_store(backend)
    fs = fs_on(backend, nursery, parts_in_flight=3)
    contents = {f"f{index}.fastq.gz": fastq_gz(6000, seed=index) for index in range(4)}

    async def copy(name: str) -> None:
        await copy_in(fs, COHORT, name, contents[name])

    async with trio.open_nursery() as writers:
        for name in contents:
            writers.start_soon(copy, name)
    assert backend.most_in_flight == 3
    made = read_sets(backend, store)
    assert {name: stored.files[StoredFile.SOURCE1] for name, stored in made.items()} == {
        name.removesuffix(".fastq.gz"): data for name, data in contents.items()
    }
