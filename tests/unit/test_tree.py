"""fs/tree.py: store folders from listings alone, presumptions corrected by metadata, group views."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from omicsfs.backend.models import FileType, ObjectFiles, StoredFile, StoreKind
from omicsfs.fs.filesystem import FileSystem
from omicsfs.fs.nodes import (
    ById,
    GroupFolder,
    GroupKind,
    GroupLink,
    GroupsFolder,
    IdLink,
    ObjectFile,
    StoreFolder,
)
from omicsfs.fs.stats import Stats
from omicsfs.fs.tree import Tree
from tests.fakes.backend import FakeBackend
from tests.fakes.harness import UNIT_CONFIG, sequence_store


def tree_on(backend: FakeBackend) -> Tree:
    """The tree of a filesystem on ``backend`` (its by-md5 view is never listed here, so no
    background work runs and no nursery is needed)."""
    return FileSystem(UNIT_CONFIG, backend, Stats(backend=backend.stats)).tree


def file_names(folder: Mapping[str, object]) -> list[str]:
    return sorted(name for name, node in folder.items() if isinstance(node, ObjectFile))


@pytest.mark.trio
async def test_files_are_presumed_from_the_listing_without_metadata_calls() -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    backend.add_read_set(store, "aligned", {StoredFile.SOURCE1: b"b", StoredFile.INDEX: b"i"})
    backend.add_read_set(store, "crammed", {StoredFile.SOURCE1: b"c"}, file_type=FileType.CRAM)
    backend.add_read_set(store, "pair", {StoredFile.SOURCE1: b"1", StoredFile.SOURCE2: b"2"},
                         file_type=FileType.FASTQ)  # fmt: skip
    backend.add_read_set(store, "single", {StoredFile.SOURCE1: b"1"}, file_type=FileType.FASTQ)
    backend.add_read_set(store, "raw", {StoredFile.SOURCE1: b"u"}, file_type=FileType.UBAM)
    tree = tree_on(backend)
    children = await tree.children(StoreFolder(StoreKind.SEQUENCE, store))
    assert file_names(children) == [
        "aligned.bam", "aligned.bam.bai", "crammed.cram", "crammed.cram.crai",
        "pair_1.fastq.gz", "pair_2.fastq.gz", "raw.bam", "single.fastq.gz",
    ]  # fmt: skip
    assert {"by-id", ".jobs", "by-sample", "by-subject"} <= set(children)
    assert backend.calls["GetReadSetMetadata"] == 0


@pytest.mark.trio
async def test_metadata_that_contradicts_a_presumed_index_recomputes_the_folder() -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    unsorted = backend.add_read_set(store, "unsorted", {StoredFile.SOURCE1: b"b"})  # a BAM without index
    tree = tree_on(backend)
    folder = StoreFolder(StoreKind.SEQUENCE, store)
    assert file_names(await tree.children(folder)) == ["unsorted.bam", "unsorted.bam.bai"]
    files = await tree.catalog.files(unsorted)
    tree.note_files(unsorted, files)
    assert file_names(await tree.children(folder)) == ["unsorted.bam"]
    assert sorted(await tree.children(ById(StoreKind.SEQUENCE, store))) == [f"{unsorted.id}.bam"]
    assert backend.calls["ListReadSets"] == 1  # recomputed from the cached listing


@pytest.mark.trio
async def test_metadata_that_agrees_changes_nothing() -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    indexed = backend.add_read_set(store, "ok", {StoredFile.SOURCE1: b"b", StoredFile.INDEX: b"i"})
    tree = tree_on(backend)
    before = await tree.folder(StoreKind.SEQUENCE, store)
    tree.note_files(indexed, await tree.catalog.files(indexed))
    tree.note_files(indexed, ObjectFiles(indexed.validator, indexed.status, {}))  # no files yet: no news
    assert await tree.folder(StoreKind.SEQUENCE, store) is before


@pytest.mark.trio
async def test_a_read_set_uploaded_here_as_a_pair_is_paired_before_its_listing_says_so() -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    # Still processing: the listing has no etag for source2 yet.
    processing = backend.add_read_set(store, "fresh", {StoredFile.SOURCE1: b"1"}, file_type=FileType.FASTQ)
    tree = tree_on(backend)
    tree.paired.add(processing.id)
    assert file_names(await tree.children(StoreFolder(StoreKind.SEQUENCE, store))) == [
        "fresh_1.fastq.gz", "fresh_2.fastq.gz",
    ]  # fmt: skip


@pytest.mark.trio
async def test_references_show_fasta_and_fai_and_only_what_metadata_has_once_known() -> None:
    backend = FakeBackend()
    store = backend.add_store(StoreKind.REFERENCE, "refs").id
    genome = backend.add_reference(store, "genome", b">c\nACGT\n", b"c\t4\t3\t4\t5\n")
    tree = tree_on(backend)
    folder = StoreFolder(StoreKind.REFERENCE, store)
    assert file_names(await tree.children(folder)) == ["genome.fasta", "genome.fasta.fai"]
    assert "by-sample" not in await tree.children(folder)  # group views are for read sets
    del backend.objects[store][genome.id].files[StoredFile.INDEX]
    tree.note_files(genome, await tree.catalog.files(genome))
    assert file_names(await tree.children(folder)) == ["genome.fasta"]


@pytest.mark.trio
async def test_groups_gather_read_sets_by_sample_and_subject() -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    a = backend.add_read_set(store, "a", {StoredFile.SOURCE1: b"1"}, file_type=FileType.UBAM,
                             sample_id="S/1", subject_id="P1")  # fmt: skip
    backend.add_read_set(store, "b", {StoredFile.SOURCE1: b"1"}, file_type=FileType.UBAM,
                         sample_id="S2", subject_id="P1")  # fmt: skip
    backend.add_read_set(store, "c", {StoredFile.SOURCE1: b"1"}, file_type=FileType.UBAM,
                         sample_id="", subject_id="")  # fmt: skip
    tree = tree_on(backend)
    samples = await tree.children(GroupsFolder(store, GroupKind.SAMPLE))
    assert sorted(samples) == ["S2", "S_1"]  # "/" cannot be in a name; empty values make no folder
    assert sorted(await tree.children(GroupsFolder(store, GroupKind.SUBJECT))) == ["P1"]
    members = await tree.children(GroupFolder(store, GroupKind.SUBJECT, "P1"))
    assert sorted(members) == ["a.bam", "b.bam"]
    link = (await tree.children(GroupFolder(store, GroupKind.SAMPLE, "S_1")))["a.bam"]
    assert link == GroupLink(store, GroupKind.SAMPLE, "S_1", a.id, StoredFile.SOURCE1)
    assert await tree.link_target(link) == "../../a.bam"
    assert await tree.children(GroupFolder(store, GroupKind.SAMPLE, "nobody")) == {}


@pytest.mark.trio
async def test_links_point_at_the_current_name_and_dangle_once_the_object_is_gone() -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    first = backend.add_read_set(store, "x", {StoredFile.SOURCE1: b"1"}, file_type=FileType.UBAM)
    tree = tree_on(backend)
    link = IdLink(StoreKind.SEQUENCE, store, first.id, StoredFile.SOURCE1)
    assert await tree.link_target(link) == "../x.bam"
    second = backend.add_read_set(store, "x", {StoredFile.SOURCE1: b"2"}, file_type=FileType.UBAM)
    tree.catalog.expire_read_sets(store)
    assert await tree.link_target(link) == f"../x.{first.id}.bam"  # a collision: both take their IDs
    assert await tree.link_target(IdLink(StoreKind.SEQUENCE, store, second.id, StoredFile.SOURCE1)) == (
        f"../x.{second.id}.bam"
    )
    del backend.objects[store][first.id]
    tree.catalog.expire_read_sets(store)
    assert await tree.link_target(link) is None
    assert await tree.summary(ObjectFile(StoreKind.SEQUENCE, store, first.id, StoredFile.SOURCE1)) is None


@pytest.mark.trio
async def test_store_folders_are_named_by_store_name_with_ids_on_collision() -> None:
    backend = FakeBackend()
    one = sequence_store(backend, "same")
    two = sequence_store(backend, "same")
    tree = tree_on(backend)
    assert sorted(await tree.stores(StoreKind.SEQUENCE)) == [f"same.{one}", f"same.{two}"]
    assert await tree.store_folder_name(StoreKind.SEQUENCE, two) == f"same.{two}"
    assert await tree.store(StoreKind.SEQUENCE, "nope") is None
