"""What the mount says about its nodes: log labels (fs/nodes.py ``describe``), extended attributes
(fs/xattrs.py) and ``.omicsfs/stats.json`` (fs/statsfile.py)."""

from __future__ import annotations

import json
import os

import pytest
import trio

from omicsfs.backend.models import (
    JobKind,
    JobSummary,
    ReadSetSummary,
    ReferenceSummary,
    StoredFile,
    StoreKind,
    StoreSummary,
)
from omicsfs.fs.filesystem import FileSystem
from omicsfs.fs.nodes import (
    ById,
    ControlFolder,
    GroupFolder,
    GroupKind,
    GroupLink,
    GroupsFolder,
    IdLink,
    JobFile,
    JobsFolder,
    Node,
    ObjectFile,
    Root,
    StatsFile,
    StoreFolder,
    StoreLink,
    StoresFolder,
    WritingFile,
    describe,
    is_folder,
    is_link,
)
from omicsfs.fs.xattrs import iso, job_xattrs, object_file_xattrs, store_xattrs
from tests.fakes.backend import FakeBackend
from tests.fakes.harness import PART, make_fs, read_file, resolve, sequence_store, writable

SEQ, REF = StoreKind.SEQUENCE, StoreKind.REFERENCE


@pytest.mark.parametrize(
    ("node", "label"),
    [
        (ObjectFile(SEQ, "11", "22", "source1"), "sequence store 11 read set 22 source1"),
        (ObjectFile(REF, "11", "33", "index"), "reference store 11 reference 33 index"),
        (IdLink(SEQ, "11", "22", "index"), "link to 22 index in store 11"),
        (GroupLink("11", GroupKind.SAMPLE, "S1", "22", "source2"), "link to 22 source2 in store 11"),
        (JobFile(SEQ, "11", JobKind.EXPORT, "j9"), "export job j9 of sequence store 11"),
        (WritingFile(7), "file being written #7"),
        (StoreFolder(REF, "11"), "reference store 11"),
        (ById(SEQ, "11"), "sequence store 11"),
        (JobsFolder(SEQ, "11"), "sequence store 11"),
        (StoreLink(SEQ, "11"), "sequence store 11"),
        (GroupsFolder("11", GroupKind.SUBJECT), "subject view of store 11"),
        (GroupFolder("11", GroupKind.SAMPLE, "S1"), "sample view of store 11"),
        (Root(), "Root"),
        (StatsFile(), "StatsFile"),
    ],
    ids=lambda value: type(value).__name__ if not isinstance(value, str) else "",
)
def test_every_node_kind_names_what_it_is_for_log_lines(node: Node, label: str) -> None:
    assert describe(node) == label


def test_folders_and_links_are_told_apart() -> None:
    assert is_folder(StoresFolder(SEQ))
    assert is_folder(ControlFolder())
    assert is_folder(Root())
    assert not is_folder(ObjectFile(SEQ, "1", "2", "source1"))
    assert not is_folder(StoreLink(SEQ, "1"))
    assert is_link(GroupLink("1", GroupKind.SAMPLE, "S", "2", "source1"))
    assert not is_link(WritingFile(1))
    assert not is_link(JobsFolder(SEQ, "1"))
    assert GroupKind.SUBJECT.folder_name == "by-subject"


# -- extended attributes --------------------------------------------------------------------------

READ_SET = ReadSetSummary(
    id="1234567890", store_id="111", arn="arn:rs", name="NA12878", status="ACTIVE", file_type="FASTQ",
    sample_id="S1", subject_id="", creation_time=1714521600.5, description="", etag_algorithm="FASTQ_MD5up",
    etag_source1="e1", etag_source2="e2", sequence_information={"totalReadCount": 42},
)  # fmt: skip


def test_iso_times_have_milliseconds_and_utc() -> None:
    assert iso(1714521600.5) == "2024-05-01T00:00:00.500Z"


def test_a_read_set_file_shows_its_metadata_and_the_etag_of_that_file() -> None:
    attrs = object_file_xattrs(READ_SET, StoredFile.SOURCE2)
    assert attrs == {
        "user.omics.id": "1234567890",
        "user.omics.arn": "arn:rs",
        "user.omics.status": "ACTIVE",
        "user.omics.name": "NA12878",
        "user.omics.creationTime": "2024-05-01T00:00:00.500Z",
        "user.omics.file": "SOURCE2",
        "user.omics.sequenceStoreId": "111",
        "user.omics.sampleId": "S1",
        "user.omics.fileType": "FASTQ",
        "user.omics.etag": "e2",
        "user.omics.etagAlgorithm": "FASTQ_MD5up",
        "user.omics.totalReadCount": "42",
    }  # empty values (subjectId, description, referenceArn, statusMessage) are left out
    assert object_file_xattrs(READ_SET, StoredFile.SOURCE1)["user.omics.etag"] == "e1"
    assert "user.omics.etag" not in object_file_xattrs(READ_SET, StoredFile.INDEX)


def test_a_reference_file_shows_its_store_and_md5() -> None:
    reference = ReferenceSummary("9", "222", "arn:ref", "genome", "ACTIVE", "abc", 0.0, "GRCh38")
    attrs = object_file_xattrs(reference, StoredFile.SOURCE)
    assert attrs["user.omics.referenceStoreId"] == "222"
    assert attrs["user.omics.md5"] == "abc"
    assert attrs["user.omics.description"] == "GRCh38"
    assert attrs["user.omics.file"] == "SOURCE"
    assert "user.omics.sequenceStoreId" not in attrs


def test_stores_and_jobs_show_their_ids_status_and_times() -> None:
    assert store_xattrs(StoreSummary("111", "arn:s", "cohort", 0.0)) == {
        "user.omics.id": "111", "user.omics.arn": "arn:s", "user.omics.name": "cohort",
        "user.omics.creationTime": "1970-01-01T00:00:00.000Z",
    }  # fmt: skip
    assert job_xattrs(JobSummary("j1", "111", JobKind.IMPORT, "RUNNING", 60.0)) == {
        "user.omics.id": "j1", "user.omics.status": "RUNNING",
        "user.omics.creationTime": "1970-01-01T00:01:00.000Z",
    }  # fmt: skip


# -- stats.json -----------------------------------------------------------------------------------


def _one_bam(nursery: trio.Nursery, parts: int) -> tuple[FileSystem, bytes]:
    """A filesystem whose one store holds NA1.bam of ``parts`` random parts, and that data."""
    backend = FakeBackend()
    data = os.urandom(parts * PART)
    backend.add_read_set(sequence_store(backend), "NA1", {StoredFile.SOURCE1: data, StoredFile.INDEX: b"i"})
    return make_fs(backend, nursery), data


@pytest.mark.trio
async def test_stats_json_counts_calls_and_shows_the_caches(nursery: trio.Nursery) -> None:
    fs, data = _one_bam(nursery, parts=2)
    assert await read_file(fs, "sequence-stores/cohort/NA1.bam") == data
    stats = json.loads(await read_file(fs, ".omicsfs/stats.json"))
    assert stats["api_calls"]["GetReadSet"] == 2
    assert stats["api_calls"]["GetReadSetMetadata"] == 1
    assert stats["bytes_fetched"] == 2 * PART
    assert stats["cache"]["memory_limit_bytes"] == 1 << 20
    assert stats["cache"]["memory_bytes"] + stats["cache"]["hot_bytes"] == 2 * PART
    assert set(stats["read_ahead"]) == {
        "budget_bytes", "reserved_bytes", "streams", "prefetched_parts", "prefetched_blocks", "windows"
    }  # fmt: skip
    assert stats["read_ahead"]["windows"] == []  # read_file closed its handle
    assert stats["planes"]["calls"] == {"parts": 2, "s3": 0}
    assert stats["read_ahead"]["budget_bytes"] == fs.config.read_ahead_budget == (1 << 20) * 3 // 4
    assert "prefetch_parts" not in stats
    assert "prefetch_blocks" not in stats
    assert stats["uploads"] == {"bytes_uploaded": 0, "completed": 0, "aborted": 0, "in_flight": {}}


@pytest.mark.trio
async def test_stats_json_shows_a_sequential_readers_window_in_parts(nursery: trio.Nursery) -> None:
    fs, data = _one_bam(nursery, parts=6)
    handle, _ = await fs.open(await resolve(fs, "sequence-stores/cohort/NA1.bam"), 0)
    step = PART // 4
    for offset in range(0, PART, step):
        assert await fs.read(handle, offset, step) == data[offset : offset + step]
    (window,) = json.loads(fs.stats_document())["read_ahead"]["windows"]
    assert window["plane"] == "parts"
    assert window["sequential"] is True
    assert window["next_offset"] == PART
    assert window["window_bytes"] % PART == 0
    assert window["window_bytes"] >= PART
    assert 0 < window["reserved_bytes"] <= window["window_bytes"]
    fs.release(handle)
    assert json.loads(fs.stats_document())["read_ahead"]["windows"] == []


@pytest.mark.trio
async def test_stats_json_shows_each_file_being_written(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    sequence_store(backend)
    fs = make_fs(backend, nursery, writable())
    folder = await fs.lookup(1, "sequence-stores")
    cohort = await fs.lookup(folder.ino, "cohort")
    handle, _ = await fs.create(cohort.ino, "reads.fastq")
    await fs.write(handle, 0, b"@r1\nACGT\n+\nIIII\n")
    stats = json.loads(fs.stats_document())
    in_flight = stats["uploads"]["in_flight"]
    assert set(in_flight) == {"reads.fastq"}
    assert {k: in_flight["reads.fastq"][k] for k in ("written_bytes", "uploaded_bytes", "state")} == {
        "written_bytes": 16, "uploaded_bytes": 0, "state": "writing",
    }  # fmt: skip
    assert backend.uploads == {}  # nothing is sent before a whole part (or the close)
