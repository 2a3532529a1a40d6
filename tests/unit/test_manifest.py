"""Manifests: the schema round trip and its errors, selection, and a manifest mount in-process."""

from __future__ import annotations

import errno
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from omicsfs.backend.models import FileType, Status, StoredFile, StoreKind
from omicsfs.cli.manifest import Selection, build_manifest, reference_of
from omicsfs.fs.errors import FsError
from omicsfs.fs.filesystem import FileSystem
from omicsfs.fs.manifest import Manifest, ManifestError
from omicsfs.fs.manifestsource import ManifestBackend, ManifestMetadata
from omicsfs.fs.stats import Stats
from tests.fakes.backend import FakeBackend
from tests.fakes.harness import PART, UNIT_CONFIG, listing, read_file, resolve, sequence_store

BAM = bytes(range(256)) * (3 * PART // 256) + b"tail"
BAI = b"index" * 100


def _cohort(backend: FakeBackend) -> tuple[str, dict[str, str]]:
    store = sequence_store(backend)
    reference_store = backend.add_store(StoreKind.REFERENCE, "refs").id
    genome = backend.add_reference(reference_store, "genome", b">c\nACGT\n", b"c\t4\t3\t4\t5\n")
    ids = {}
    for name, sample in (("NA1", "S1"), ("NA2", "S2")):
        summary = backend.add_read_set(store, name, {StoredFile.SOURCE1: BAM, StoredFile.INDEX: BAI},
                                       sample_id=sample)  # fmt: skip
        stored = backend.objects[store][summary.id]
        stored.summary = replace(summary, reference_arn=genome.arn)
        ids[name] = summary.id
    ids["reads"] = backend.add_read_set(
        store, "reads", {StoredFile.SOURCE1: b"@r\nA\n+\nI\n"}, file_type=FileType.FASTQ, sample_id="S1"
    ).id
    ids["cold"] = backend.add_read_set(
        store, "cold", {StoredFile.SOURCE1: b"@r\nA\n+\nI\n"}, file_type=FileType.FASTQ,
        status=Status.ARCHIVED,
    ).id  # fmt: skip
    return store, ids


@pytest.mark.trio
async def test_a_manifest_survives_json_unchanged() -> None:
    backend = FakeBackend()
    _cohort(backend)
    manifest = await build_manifest(backend, Selection(), "omicsfs test")
    again = Manifest.from_document(json.loads(manifest.to_json()))
    assert again == manifest
    assert all(rs.files.validator == rs.summary.validator for rs in again.read_sets())
    # Creation times are kept exactly: they are part of the version that keys the cache.
    odd = replace(manifest.sequence_stores[0].read_sets[0].summary, creation_time=1700000000.1234995)
    entry = replace(manifest.sequence_stores[0].read_sets[0], summary=odd)
    store = replace(manifest.sequence_stores[0], read_sets=(entry,))
    kept = Manifest.from_document(json.loads(replace(manifest, sequence_stores=(store,)).to_json()))
    assert next(kept.read_sets()).summary.creation_time == odd.creation_time


@pytest.mark.trio
async def test_selection_by_sample_status_type_and_id_brings_linked_references() -> None:
    backend = FakeBackend()
    _, ids = _cohort(backend)
    chosen = await build_manifest(backend, Selection(sample_ids=("S1",)))
    assert sorted(rs.summary.name for rs in chosen.read_sets()) == ["NA1", "reads"]  # ACTIVE only
    assert [ref.summary.name for ref in chosen.references()] == ["genome"]  # NA1 names it
    archived = await build_manifest(backend, Selection(statuses=("ARCHIVED",)))
    assert [rs.summary.name for rs in archived.read_sets()] == ["cold"]
    by_id = await build_manifest(backend, Selection(read_set_ids=(ids["NA2"],), linked_references=False))
    assert [rs.summary.id for rs in by_id.read_sets()] == [ids["NA2"]]
    assert list(by_id.references()) == []
    fastq = await build_manifest(backend, Selection(file_types=("FASTQ",)))
    assert [rs.summary.name for rs in fastq.read_sets()] == ["reads"]
    assert reference_of("arn:aws:omics:us-east-1:1:referenceStore/123/reference/456") == ("123", "456")
    assert reference_of("") is None


def _document(manifest: Manifest) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(manifest.to_json())
    return document


@pytest.mark.trio
async def test_invalid_manifests_name_the_json_path_at_fault(tmp_path: Path) -> None:
    backend = FakeBackend()
    _cohort(backend)
    good = _document(await build_manifest(backend, Selection()))
    read_set = good["sequenceStores"][0]["readSets"][0]

    def with_read_set(**changes: Any) -> dict[str, Any]:
        changed = json.loads(json.dumps(good))
        changed["sequenceStores"][0]["readSets"][0].update(changes)
        return changed

    cases: list[tuple[Any, str]] = [
        ([], "the document: [] is not of type 'object'"),
        ({**good, "format": "other"}, "format: 'omicsfs-manifest' was expected"),
        ({**good, "version": 2}, "version 2 is not supported (this omicsfs reads version 1"),
        ({k: v for k, v in good.items() if k != "referenceStores"},
         "'referenceStores' is a required property"),
        ({**good, "extra": 1}, "Additional properties are not allowed ('extra' was unexpected)"),
        (with_read_set(id="12"), "sequenceStores[0].readSets[0].id: '12' does not match"),
        (with_read_set(creationTime="yesterday"),
         "sequenceStores[0].readSets[0].creationTime: 'yesterday' is not of type 'number'"),
        (with_read_set(files={"source1": {**read_set["files"]["source1"], "partSize": 0}}),
         "sequenceStores[0].readSets[0].files.source1.partSize: 0 is less than the minimum of 1"),
        (with_read_set(files={"data": read_set["files"]["source1"]}), "'data' is not one of"),
        (with_read_set(files={"source1": {**read_set["files"]["source1"], "totalParts": 1}}),
         "sequenceStores[0].readSets[0].files.source1.totalParts: 1 parts cannot hold"),
    ]  # fmt: skip
    for document, message in cases:
        with pytest.raises(ManifestError) as caught:
            Manifest.from_document(document)
        assert message in str(caught.value), (message, str(caught.value))
    twice = json.loads(json.dumps(good))
    twice["sequenceStores"][0]["readSets"].append(read_set)
    with pytest.raises(ManifestError, match=r"readSets\[3\]\.id: \d+ is listed twice"):
        Manifest.from_document(twice)
    path = tmp_path / "m.json"
    path.write_text("{")
    with pytest.raises(ManifestError, match=f"manifest {path} is not JSON"):
        Manifest.load(path)
    with pytest.raises(ManifestError, match="No such file"):
        Manifest.load(tmp_path / "missing.json")


def _manifest_fs(backend: FakeBackend, manifest: Manifest, nursery: trio.Nursery) -> FileSystem:
    config = replace(UNIT_CONFIG, manifest=Path("/manifest.json"))
    fs = FileSystem(config, ManifestBackend(manifest, backend), Stats(backend=backend.stats),
                    metastore=ManifestMetadata(manifest))  # fmt: skip
    fs.tasks.attach(nursery)
    return fs


@pytest.mark.trio
async def test_a_manifest_mount_makes_only_data_calls_and_refuses_what_went_away(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    backend = FakeBackend()
    store, ids = _cohort(backend)
    manifest = await build_manifest(backend, Selection(statuses=("ACTIVE", "ARCHIVED")))
    backend.calls.clear()
    fs = _manifest_fs(backend, manifest, nursery)
    assert await listing(fs, "sequence-stores/cohort") == [
        ".jobs", "NA1.bam", "NA1.bam.bai", "NA2.bam", "NA2.bam.bai", "by-id", "by-sample", "by-subject",
        "cold.fastq.gz", "reads.fastq.gz",
    ]  # fmt: skip
    assert (await fs.getattr(await resolve(fs, "sequence-stores/cohort/NA1.bam"))).size == len(BAM)
    assert await read_file(fs, "sequence-stores/cohort/NA1.bam") == BAM
    references = await listing(fs, "reference-stores/refs")
    assert references == [".jobs", "by-id", "genome.fasta", "genome.fasta.fai"]
    assert await listing(fs, "sequence-stores/cohort/.jobs/import") == []
    assert set(backend.calls) == {"GetReadSet"}

    # Deleted since the manifest: ENOENT on open; archived since: EACCES; known cold: EACCES.
    del backend.objects[store][ids["NA2"]]
    backend.set_status(store, ids["reads"], Status.ARCHIVED)
    refusals = (("NA2.bam", errno.ENOENT), ("reads.fastq.gz", errno.EACCES), ("cold.fastq.gz", errno.EACCES))
    for path, code in refusals:
        ino = await resolve(fs, f"sequence-stores/cohort/{path}")
        for _ in range(2):
            with pytest.raises(FsError) as refused:
                await fs.open(ino, 0)
            assert refused.value.errno == code, path
    # NA1's four parts, then one refused GetReadSet each for NA2 and reads: the second opens
    # were refused without a call, and cold was refused from the manifest's own status.
    assert backend.calls["GetReadSet"] == 4 + 1 + 1
    assert set(backend.calls) == {"GetReadSet"}
    # After --listing-ttl the service is asked again (an activation may have finished).
    backend.set_status(store, ids["reads"], Status.ACTIVE)
    await trio.sleep(UNIT_CONFIG.listing_ttl + 1)
    assert await read_file(fs, "sequence-stores/cohort/reads.fastq.gz") == b"@r\nA\n+\nI\n"
