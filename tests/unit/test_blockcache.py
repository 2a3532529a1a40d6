"""The block cache on the fake backend: streaming, single flight, takeover, resume, hot set."""

from __future__ import annotations

import os

import pytest
import trio
import trio.testing

from omicsfs.backend.errors import ServiceFailure
from omicsfs.backend.models import FileType, StoredFile
from tests.fakes.backend import FakeBackend
from tests.fakes.harness import BLOCK, PART, make_fs, read_file, read_once, resolve, sequence_store

DATA = os.urandom(5 * PART + 1234)  # six parts, the last short


def _store(backend: FakeBackend, data: bytes = DATA) -> str:
    store = sequence_store(backend)
    backend.add_read_set(store, "big", {StoredFile.SOURCE1: data, StoredFile.INDEX: b"i" * 100})
    return store


@pytest.mark.trio
async def test_whole_file_is_byte_exact_across_parts_and_blocks(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    _store(backend)
    fs = make_fs(backend, nursery)
    assert await read_file(fs, "sequence-stores/cohort/big.bam", chunk=10_000) == DATA
    assert backend.calls["GetReadSet"] == 6


@pytest.mark.trio
async def test_a_small_read_returns_before_its_part_has_arrived(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    _store(backend)
    fs = make_fs(backend, nursery)
    handle, _ = await fs.open(await resolve(fs, "sequence-stores/cohort/big.bam"), 0)
    gate = backend.hold_bodies()  # every body stops after its first 16 KiB chunk
    assert await fs.read(handle, 0, 4096) == DATA[:4096]
    await trio.to_thread.run_sync(gate.reached.wait)
    assert gate.waiting == 1  # the rest of the part is still held back
    gate.release()
    assert await fs.read(handle, PART - 10, 20) == DATA[PART - 10 : PART + 10]


@pytest.mark.trio
async def test_concurrent_readers_share_one_fetch_per_part(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    _store(backend)
    fs = make_fs(backend, nursery)
    results: list[bytes] = []

    async def reader() -> None:
        results.append(await read_file(fs, "sequence-stores/cohort/big.bam", chunk=BLOCK))

    async with trio.open_nursery() as readers:
        for _ in range(16):
            readers.start_soon(reader)
    assert results == [DATA] * 16
    assert backend.calls["GetReadSet"] == 6  # one per part, not one per reader


@pytest.mark.trio
async def test_a_cancelled_reader_does_not_cancel_the_fetch_for_the_others(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    _store(backend)
    fs = make_fs(backend, nursery)
    ino = await resolve(fs, "sequence-stores/cohort/big.bam")
    impatient, _ = await fs.open(ino, 0)
    patient, _ = await fs.open(ino, 0)
    gate = backend.hold_bodies()
    got: list[bytes | bytearray | memoryview] = []
    with trio.move_on_after(1):  # the first reader gives up (a FUSE interrupt)
        await fs.read(impatient, 2 * BLOCK, 100)

    async def wait_patiently() -> None:
        got.append(await fs.read(patient, 2 * BLOCK, 100))

    async with trio.open_nursery() as inner:
        inner.start_soon(wait_patiently)
        await trio.testing.wait_all_tasks_blocked()
        gate.release()
    assert bytes(got[0]) == DATA[2 * BLOCK : 2 * BLOCK + 100]
    assert backend.calls["GetReadSet"] == 1  # the same fetch, taken over, not started again


@pytest.mark.trio
async def test_a_body_cut_mid_part_resumes_at_the_first_missing_byte(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    _store(backend)
    fs = make_fs(backend, nursery)
    backend.cut_bodies(times=2, after=BLOCK + 100)  # two attempts die past the first block
    assert await read_file(fs, "sequence-stores/cohort/big.bam") == DATA
    assert fs.stats.backend.retries["GetReadSet"] == 2
    # The first attempt's bytes were kept: the retries re-sent the part but nothing was lost.
    assert backend.calls["GetReadSet"] == 6 + 2


@pytest.mark.trio
async def test_exhausted_retries_fail_only_the_readers_of_that_part(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    _store(backend)
    fs = make_fs(backend, nursery)
    handle, _ = await fs.open(await resolve(fs, "sequence-stores/cohort/big.bam"), 0)
    backend.fail(
        "GetReadSet", lambda: ServiceFailure("GetReadSet", "boom", "InternalServerException"), times=3
    )
    with pytest.raises(ServiceFailure):
        await fs.read(handle, 0, 100)
    assert await fs.read(handle, 0, 100) == DATA[:100]  # a later read fetches again and succeeds
    assert await fs.read(handle, 3 * PART, 100) == DATA[3 * PART : 3 * PART + 100]


@pytest.mark.trio
async def test_indexes_and_bam_ends_stay_hot_through_a_large_scan(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    backend.add_read_set(store, "hot", {StoredFile.SOURCE1: DATA, StoredFile.INDEX: b"x" * 5000})
    big = os.urandom(40 * PART)  # 2.5 MiB: more than the whole 1 MiB memory cache
    backend.add_read_set(store, "scan", {StoredFile.SOURCE1: big}, file_type=FileType.UBAM)
    fs = make_fs(backend, nursery)
    bam = "sequence-stores/cohort/hot.bam"

    async def probe() -> None:
        assert await read_file(fs, bam + ".bai") == b"x" * 5000
        assert await read_once(fs, bam, 0, 100) == DATA[:100]  # the header block
        assert await read_once(fs, bam, len(DATA) - 100, 100) == DATA[-100:]  # the EOF block

    await probe()
    assert await read_file(fs, "sequence-stores/cohort/scan.bam") == big
    before = backend.calls["GetReadSet"]
    await probe()
    assert backend.calls["GetReadSet"] == before  # all three from the hot set
    assert await read_once(fs, bam, 2 * PART, 100) == DATA[2 * PART : 2 * PART + 100]
    assert backend.calls["GetReadSet"] == before + 1  # the middle was evicted by the scan
