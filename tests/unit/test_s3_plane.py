"""The S3 data plane on the fake backend and fake access point: ranged reads, windows, fallback,
changed objects, one key space with parts, and ``ls -l`` sizes from the listing."""

from __future__ import annotations

import errno
import itertools
import json
import os
from dataclasses import replace

import pytest
import trio
import trio.testing

from omicsfs.backend.errors import Changed
from omicsfs.backend.models import FileType, S3Location, StoredFile
from omicsfs.cli.stats import render
from omicsfs.config import CacheConfig, DataPlane
from omicsfs.fs.errors import to_errno
from omicsfs.fs.filesystem import FileSystem
from omicsfs.fs.s3listing import map_sizes
from tests.fakes.backend import S3_BUCKET, FakeBackend
from tests.fakes.harness import UNIT_CONFIG, listing, make_fs, read_file, read_once, resolve, sequence_store
from tests.fakes.s3 import FakeS3

BLOCK = 16 << 10
PART = 64 << 10
DATA = os.urandom(20 * PART + 999)  # 1.25 MiB in 21 parts of 4 blocks
# Ranged GETs of up to 4 blocks, a window of up to 16 blocks.
CONFIG = replace(UNIT_CONFIG, cache=CacheConfig(memory_bytes=4 << 20, block_size=BLOCK))
CONFIG = replace(
    CONFIG, read_ahead=replace(CONFIG.read_ahead, s3_request_bytes=4 * BLOCK, s3_max_window=16 * BLOCK)
)


def _setup(
    nursery: trio.Nursery, plane: DataPlane = DataPlane.AUTO
) -> tuple[FakeBackend, FakeS3, FileSystem]:
    backend = FakeBackend(part_size=PART)
    store = sequence_store(backend)
    backend.add_read_set(store, "big", {StoredFile.SOURCE1: DATA, StoredFile.INDEX: b"i" * 3000})
    s3 = FakeS3(backend)
    return backend, s3, make_fs(backend, nursery, replace(CONFIG, data_plane=plane), s3=s3)


def _store_id(backend: FakeBackend) -> str:
    """The one sequence store ``_setup`` made."""
    return next(iter(backend.stores[next(iter(backend.stores))]))


@pytest.mark.trio
async def test_a_random_read_fetches_one_block_with_a_ranged_get(nursery: trio.Nursery) -> None:
    backend, s3, fs = _setup(nursery)
    offset = 7 * PART + 5000
    assert await read_once(fs, "sequence-stores/cohort/big.bam", offset, 100) == DATA[offset : offset + 100]
    assert backend.calls["GetReadSet"] == 0
    assert s3.calls["HeadObject"] == 1  # the store's probe, once
    start = offset // BLOCK * BLOCK
    assert s3.ranges == [(s3.ranges[0][0], start, start + BLOCK)]  # one block, not a 64 KiB part


@pytest.mark.trio
async def test_a_read_across_missing_blocks_is_one_ranged_get(nursery: trio.Nursery) -> None:
    _, s3, fs = _setup(nursery)
    offset, size = 9 * BLOCK, 3 * BLOCK
    assert await read_once(fs, "sequence-stores/cohort/big.bam", offset, size) == DATA[offset : offset + size]
    assert [(start, end) for _, start, end in s3.ranges] == [(offset, offset + 3 * BLOCK)]  # not 1 + 2


@pytest.mark.trio
async def test_sequential_reads_are_byte_exact_with_a_growing_window(nursery: trio.Nursery) -> None:
    backend, s3, fs = _setup(nursery)
    assert await read_file(fs, "sequence-stores/cohort/big.bam", chunk=8192) == DATA
    assert backend.calls["GetReadSet"] == 0
    sizes = [end - start for _, start, end in s3.ranges]
    assert max(sizes) == 4 * BLOCK  # never more than one request's worth per GET
    assert len(s3.ranges) < len(DATA) // BLOCK  # fewer GETs than blocks: the window grew
    covered = sorted((start, end) for _, start, end in s3.ranges)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(covered))  # no block twice
    assert fs.stats.bytes_by_plane["s3"] == len(DATA)


@pytest.mark.trio
async def test_a_sequential_reader_moves_its_window_a_whole_aligned_request_at_a_time(
    nursery: trio.Nursery,
) -> None:
    _, s3, fs = _setup(nursery)
    assert await read_file(fs, "sequence-stores/cohort/big.bam", chunk=8192) == DATA
    request = 4 * BLOCK
    small = [(start, end) for _, start, end in s3.ranges if end - start < request and end < len(DATA)]
    assert len(small) <= 6  # the window's first steps (1, 2 blocks) only, not one GET per block
    assert all(start % request == 0 for _, start, end in s3.ranges if end - start == request)
    assert len(s3.ranges) <= len(DATA) // request + 6


@pytest.mark.trio
async def test_every_ranged_body_is_read_to_its_end_so_its_connection_is_reused(
    nursery: trio.Nursery,
) -> None:
    _, s3, fs = _setup(nursery)
    assert await read_file(fs, "sequence-stores/cohort/big.bam", chunk=8192) == DATA
    await s3.all_closed()
    assert s3.bodies
    assert all(body.drained_before_close for body in s3.bodies)


@pytest.mark.trio
async def test_parts_plane_never_touches_s3(nursery: trio.Nursery) -> None:
    backend, s3, fs = _setup(nursery, DataPlane.PARTS)
    assert await read_file(fs, "sequence-stores/cohort/big.bam") == DATA
    assert sum(s3.calls.values()) == 0
    assert backend.calls["GetReadSet"] == 21


@pytest.mark.trio
async def test_a_denied_store_reads_through_parts(nursery: trio.Nursery) -> None:
    backend, s3, fs = _setup(nursery)
    s3.deny = True
    assert await read_file(fs, "sequence-stores/cohort/big.bam") == DATA
    assert s3.calls["GetObject"] == 0  # the probe said no
    assert backend.calls["GetReadSet"] == 21


@pytest.mark.trio
async def test_a_failure_mid_file_falls_back_to_parts_and_keeps_what_s3_brought(
    nursery: trio.Nursery,
) -> None:
    backend, s3, fs = _setup(nursery)
    path = "sequence-stores/cohort/big.bam"
    assert await read_once(fs, path, 0, 100) == DATA[:100]  # block 0 through S3
    s3.deny = True  # the access policy changes
    assert await read_file(fs, path) == DATA  # still exact, now through parts
    assert fs.stats.s3_fallbacks == 1
    parts_before = backend.calls["GetReadSet"]
    assert await read_once(fs, path, 50, 100) == DATA[50:150]  # block 0: still cached, no fetch
    assert backend.calls["GetReadSet"] == parts_before


@pytest.mark.trio
async def test_an_object_that_changes_is_never_stitched(nursery: trio.Nursery) -> None:
    _, s3, fs = _setup(nursery)
    path = "sequence-stores/cohort/big.bam"
    handle, _ = await fs.open(await resolve(fs, path), 0)
    assert bytes(await fs.read(handle, 0, 100)) == DATA[:100]
    s3.change(s3.ranges[0][0])  # the object's ETag moves between two ranged reads
    with pytest.raises(Changed) as stale:
        await fs.read(handle, 10 * PART, 100)
    assert to_errno(stale.value) == errno.ESTALE


@pytest.mark.trio
async def test_ls_l_sizes_come_from_the_s3_listing(nursery: trio.Nursery) -> None:
    backend, s3, fs = _setup(nursery)
    store = _store_id(backend)
    backend.add_read_set(store, "reads", {StoredFile.SOURCE1: b"@r\nA\n+\nI\n"}, file_type=FileType.FASTQ)
    backend.add_read_set(
        store,
        "pair",
        {StoredFile.SOURCE1: b"1" * 10, StoredFile.SOURCE2: b"2" * 20},
        file_type=FileType.FASTQ,
    )
    names = await listing(fs, "sequence-stores/cohort")
    sizes = {name: (await fs.getattr(await resolve(fs, f"sequence-stores/cohort/{name}"))).size
             for name in names if "." in name and not name.startswith(".")}  # fmt: skip
    assert sizes["big.bam"] == len(DATA)
    assert sizes["big.bam.bai"] == 3000
    assert sizes["reads.fastq.gz"] == 9
    assert sizes["pair_1.fastq.gz"] == 10  # a pair's files are not guessed: from the metadata
    assert sizes["pair_2.fastq.gz"] == 20
    assert s3.calls["ListObjectsV2"] == 1
    await trio.testing.wait_all_tasks_blocked()  # whatever the stats started in the background too
    assert backend.calls["GetReadSetMetadata"] == 1  # only the pair's, not its mapped siblings'


@pytest.mark.trio
async def test_a_lone_stat_and_open_ask_the_metadata_not_the_whole_store_listing(
    nursery: trio.Nursery,
) -> None:
    """``samtools view PATH`` stats and opens one file: the open needs its metadata anyway, so
    walking the store's S3 listing first only added calls before the first byte."""
    backend, s3, fs = _setup(nursery)
    store = _store_id(backend)
    backend.add_read_set(store, "other", {StoredFile.SOURCE1: b"x" * 5, StoredFile.INDEX: b"i"})
    path = "sequence-stores/cohort/big.bam"
    assert (await fs.getattr(await resolve(fs, path))).size == len(DATA)
    assert await read_once(fs, path, 0, 100) == DATA[:100]
    assert s3.calls["ListObjectsV2"] == 0
    assert backend.calls["GetReadSetMetadata"] == 1
    assert backend.calls["GetSequenceStore"] == 0  # only the listing needs the store's S3 prefix
    await listing(fs, "sequence-stores/cohort")  # now ls -l: the listing is worth its calls
    other = await fs.getattr(await resolve(fs, "sequence-stores/cohort/other.bam"))
    assert other.size == 5
    assert s3.calls["ListObjectsV2"] == 1
    assert backend.calls["GetReadSetMetadata"] == 1  # other.bam's size came from the listing


def test_listing_keys_map_only_without_guessing() -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    bam = backend.add_read_set(store, "a", {StoredFile.SOURCE1: b"x" * 5, StoredFile.INDEX: b"y" * 2})
    pair = backend.add_read_set(store, "p", {StoredFile.SOURCE1: b"1", StoredFile.SOURCE2: b"2"},
                                file_type=FileType.FASTQ)  # fmt: skip
    objects = trio.run(FakeS3(backend).list_objects, _prefix(store))
    sizes = map_sizes(objects, f"{store}/", {bam.id: bam, pair.id: pair})
    assert sizes == {(bam.id, StoredFile.SOURCE1): 5, (bam.id, StoredFile.INDEX): 2}


def _prefix(store: str) -> S3Location:
    return S3Location(S3_BUCKET, f"{store}/")


@pytest.mark.trio
async def test_stats_show_each_open_files_window_and_each_planes_calls(nursery: trio.Nursery) -> None:
    """stats.json (and ``omicsfs stats``) say, per open file, which plane it reads from, whether it
    is sequential and how far ahead it fetches; per plane, bytes and data calls."""
    backend, s3, fs = _setup(nursery)
    handle, _ = await fs.open(await resolve(fs, "sequence-stores/cohort/big.bam"), 0)
    for offset in range(0, 8 * BLOCK, 8192):  # in order: the window grows
        assert await fs.read(handle, offset, 8192) == DATA[offset : offset + 8192]
    windows = json.loads(fs.stats_document())["read_ahead"]["windows"]
    assert len(windows) == 1
    (window,) = windows
    assert window["plane"] == "s3"
    assert window["sequential"] is True
    assert window["file"].endswith("read set 1000000002 source1")
    assert window["next_offset"] == 8 * BLOCK
    assert BLOCK <= window["window_bytes"] <= 16 * BLOCK
    assert window["reserved_bytes"] > 0
    other, _ = await fs.open(await resolve(fs, "sequence-stores/cohort/big.bam"), 0)
    await fs.read(other, 18 * PART, 100)  # one read: no sign of order yet
    first, second = json.loads(fs.stats_document())["read_ahead"]["windows"]
    assert first == window  # the widest first
    assert second["sequential"] is False
    assert second["window_bytes"] == second["reserved_bytes"] == 0
    assert second["next_offset"] == 18 * PART + 100
    document = json.loads(fs.stats_document())
    planes = document["planes"]
    assert planes["calls"] == {"parts": 0, "s3": s3.calls["GetObject"]}
    assert planes["calls"]["s3"] > 1
    assert planes["bytes"]["s3"] == document["bytes_fetched"]
    text = render(document)
    assert f"planes: s3 {planes['bytes']['s3'] / (1 << 20):,.1f} MiB in {planes['calls']['s3']} calls" in text
    assert f"  {window['file']} (s3): random, no read-ahead, at 1.1 MiB, 0.0 MiB reserved" in text
    assert f"  {window['file']} (s3): sequential, window " in text
    fs.release(handle)
    fs.release(other)
    assert json.loads(fs.stats_document())["read_ahead"]["windows"] == []
    assert backend.calls["GetReadSet"] == 0
