"""Background jobs (reference and read-set import, export, activation), tags and S3 access policies.

Everything goes through real boto3 over HTTP. Background work is awaited with ``service.drain()``;
the fake S3 is the folder ``service.s3_root`` (``s3://bucket/key`` is ``s3_root/bucket/key``).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import shutil
import sqlite3
import urllib.error
import uuid
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pysam
import pytest
from botocore.exceptions import ClientError

from omicsfs.sample.data import SampleFiles
from tests.localservice import RunningService

ROLE = "arn:aws:iam::123456789012:role/omics"
SMALL_FASTA = b">small\n" + b"ACGTTGCA" * 7 + b"ACGT\n" + b"GATTACA\n"


# --------------------------------------------------------------------------------------------
# Helpers


def put_s3(service: RunningService, key: str, content: Path | bytes) -> str:
    """Puts a file into the fake S3 bucket ``bucket``; returns its s3:// URI."""
    target = service.s3_root / "bucket" / key
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        shutil.copyfile(content, target)
    return f"s3://bucket/{key}"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def archive(service: RunningService, store_id: str, read_set_id: str) -> dict[str, Any]:
    return dict(service.admin("POST", f"archive/{store_id}/{read_set_id}"))


def import_references(
    service: RunningService, omics: Any, store_id: str, sources: list[dict[str, Any]]
) -> dict[str, Any]:
    """Starts a reference import job, checks it is SUBMITTED, drains; returns the finished job."""
    started = omics.start_reference_import_job(referenceStoreId=store_id, roleArn=ROLE, sources=sources)
    assert started["status"] == "SUBMITTED"
    assert started["referenceStoreId"] == store_id
    service.drain()
    return dict(omics.get_reference_import_job(referenceStoreId=store_id, id=started["id"]))


def import_read_sets(
    service: RunningService, omics: Any, store_id: str, sources: list[dict[str, Any]]
) -> dict[str, Any]:
    """Starts a read-set import job, checks it is SUBMITTED, drains; returns the finished job."""
    started = omics.start_read_set_import_job(sequenceStoreId=store_id, roleArn=ROLE, sources=sources)
    assert started["status"] == "SUBMITTED"
    assert started["sequenceStoreId"] == store_id
    service.drain()
    return dict(omics.get_read_set_import_job(sequenceStoreId=store_id, id=started["id"]))


def export_read_sets(
    service: RunningService, omics: Any, store_id: str, ids: list[str], destination: str
) -> dict[str, Any]:
    started = omics.start_read_set_export_job(
        sequenceStoreId=store_id,
        destination=destination,
        roleArn=ROLE,
        sources=[{"readSetId": i} for i in ids],
    )
    assert started["status"] == "SUBMITTED"
    service.drain()
    return dict(omics.get_read_set_export_job(sequenceStoreId=store_id, id=started["id"]))


def activate_read_sets(service: RunningService, omics: Any, store_id: str, ids: list[str]) -> dict[str, Any]:
    started = omics.start_read_set_activation_job(
        sequenceStoreId=store_id, sources=[{"readSetId": i} for i in ids]
    )
    assert started["status"] == "SUBMITTED"
    service.drain()
    return dict(omics.get_read_set_activation_job(sequenceStoreId=store_id, id=started["id"]))


def fastq_source(
    service: RunningService, sample: SampleFiles, *, paired: bool = True, **extra: Any
) -> dict[str, Any]:
    """An import source item for the sample's FASTQ (pair), copied to a fresh S3 key."""
    folder = unique("fastq")
    files = {"source1": put_s3(service, f"{folder}/r1.fastq.gz", sample.fastq1)}
    if paired:
        files["source2"] = put_s3(service, f"{folder}/r2.fastq.gz", sample.fastq2)
    return {
        "sourceFiles": files,
        "sourceFileType": "FASTQ",
        "subjectId": "subject-1",
        "sampleId": "sample-1",
        **extra,
    }


def missing_source(file_type: str = "UBAM") -> dict[str, Any]:
    return {
        "sourceFiles": {"source1": f"s3://bucket/{unique('missing')}/nothing.bam"},
        "sourceFileType": file_type,
        "subjectId": "subject-1",
        "sampleId": "sample-1",
    }


def read_set_file(omics: Any, store_id: str, read_set_id: str, file: str = "SOURCE1") -> bytes:
    """Every part of a read set's file, joined, checking each part's length."""
    info = omics.get_read_set_metadata(sequenceStoreId=store_id, id=read_set_id)["files"][file.lower()]
    return _join_parts(
        info,
        lambda n: omics.get_read_set(sequenceStoreId=store_id, id=read_set_id, file=file, partNumber=n),
    )


def reference_file(omics: Any, store_id: str, ref_id: str, file: str = "SOURCE") -> bytes:
    info = omics.get_reference_metadata(referenceStoreId=store_id, id=ref_id)["files"][file.lower()]
    return _join_parts(
        info, lambda n: omics.get_reference(referenceStoreId=store_id, id=ref_id, file=file, partNumber=n)
    )


def _join_parts(info: dict[str, Any], fetch: Any) -> bytes:
    chunks = []
    for number in range(1, info["totalParts"] + 1):
        body = fetch(number)["payload"].read()
        expected = min(info["partSize"], info["contentLength"] - (number - 1) * info["partSize"])
        assert len(body) == expected, f"part {number}"
        chunks.append(body)
    data = b"".join(chunks)
    assert len(data) == info["contentLength"]
    return data


def records_and_header(path: Path) -> tuple[list[str], dict[str, Any]]:
    with pysam.AlignmentFile(str(path), check_sq=False) as handle:
        return [r.to_string() for r in handle.fetch(until_eof=True)], handle.header.to_dict()


def floor_ms(moment: dt.datetime) -> dt.datetime:
    """The service keeps milliseconds; a client-side bound must not be finer than that."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --------------------------------------------------------------------------------------------
# A reference and a read set of every type, imported once for the tests that only read them


@dataclass(frozen=True)
class Imported:
    reference_store: dict[str, Any]
    reference_job: dict[str, Any]
    reference: dict[str, Any]  # GetReferenceMetadata of "ref-genome"
    small_reference: dict[str, Any]
    sequence_store: dict[str, Any]
    import_job: dict[str, Any]
    read_sets: dict[str, str]  # BAM, CRAM, FASTQ, UBAM -> read set ID
    fasta_s3_key: str


@pytest.fixture(scope="module")
def imported(service: RunningService, sample: SampleFiles) -> Imported:
    omics = service.client()
    ref_store = omics.create_reference_store(name="jobs-refs", tags={"scope": "jobs"})
    key = f"{unique('refs')}/ref.fasta"
    uri = put_s3(service, key, sample.reference)
    small_uri = put_s3(service, f"{unique('refs')}/small.fasta", SMALL_FASTA)
    ref_job = import_references(
        service,
        omics,
        ref_store["id"],
        [
            {"sourceFile": uri, "name": "ref-genome", "tags": {"kind": "genome"}},
            {"sourceFile": small_uri, "name": "small-ref", "description": "one short contig"},
        ],
    )
    assert ref_job["status"] == "COMPLETED", ref_job
    ref_ids = {s["name"]: s["referenceId"] for s in ref_job["sources"]}
    reference = omics.get_reference_metadata(referenceStoreId=ref_store["id"], id=ref_ids["ref-genome"])
    small = omics.get_reference_metadata(referenceStoreId=ref_store["id"], id=ref_ids["small-ref"])

    seq_store = omics.create_sequence_store(name="jobs-imports")
    folder = unique("reads")
    common = {"subjectId": "subject-1", "sampleId": "NA12878"}
    sources = [
        {
            "sourceFiles": {"source1": put_s3(service, f"{folder}/sample.bam", sample.bam)},
            "sourceFileType": "BAM",
            "referenceArn": reference["arn"],
            "name": "bam-sample",
            "tags": {"origin": "import"},
            **common,
        },
        {
            "sourceFiles": {"source1": put_s3(service, f"{folder}/sample.cram", sample.cram)},
            "sourceFileType": "CRAM",
            "referenceArn": reference["arn"],
            "name": "cram-sample",
            **common,
        },
        fastq_source(service, sample, name="fastq-sample"),
        {
            "sourceFiles": {"source1": put_s3(service, f"{folder}/sample.unaligned.bam", sample.ubam)},
            "sourceFileType": "UBAM",
            "name": "ubam-sample",
            **common,
        },
        missing_source(),
    ]
    job = import_read_sets(service, omics, seq_store["id"], sources)
    finished = [s for s in job["sources"] if s["status"] == "FINISHED"]
    read_sets = {s["sourceFileType"]: s["readSetId"] for s in finished}
    return Imported(
        reference_store=dict(ref_store),
        reference_job=ref_job,
        reference=dict(reference),
        small_reference=dict(small),
        sequence_store=dict(seq_store),
        import_job=job,
        read_sets=read_sets,
        fasta_s3_key=key,
    )


# --------------------------------------------------------------------------------------------
# Reference import


def test_reference_import_completes_with_md5_sizes_and_index(
    omics: Any, imported: Imported, sample: SampleFiles
) -> None:
    job = imported.reference_job
    assert job["status"] == "COMPLETED"
    assert isinstance(job["completionTime"], dt.datetime)
    assert job["completionTime"] >= job["creationTime"]
    assert [s["status"] for s in job["sources"]] == ["FINISHED", "FINISHED"]
    assert all(s.get("referenceId") for s in job["sources"])

    ref = imported.reference
    fasta = sample.reference.read_bytes()
    assert ref["status"] == "ACTIVE"
    assert ref["name"] == "ref-genome"
    assert ref["md5"] == hashlib.md5(fasta).hexdigest()
    assert ref["creationType"] == "IMPORT"
    assert ref["creationJobId"] == job["id"]
    assert ref["files"]["source"]["contentLength"] == len(fasta)
    assert ref["files"]["source"]["totalParts"] >= 2  # so "part by part" means something
    fai = Path(str(sample.reference) + ".fai").read_bytes()
    assert ref["files"]["index"]["contentLength"] == len(fai)

    store_id = imported.reference_store["id"]
    assert reference_file(omics, store_id, ref["id"], "INDEX") == fai
    assert reference_file(omics, store_id, ref["id"], "SOURCE") == fasta


def test_reference_range_reads_within_a_part(omics: Any, imported: Imported, sample: SampleFiles) -> None:
    store_id, ref = imported.reference_store["id"], imported.reference
    fasta = sample.reference.read_bytes()
    part_size = ref["files"]["source"]["partSize"]

    def get(part: int, byte_range: str) -> bytes:
        reply = omics.get_reference(
            referenceStoreId=store_id, id=ref["id"], partNumber=part, range=byte_range
        )
        return bytes(reply["payload"].read())

    assert get(1, "bytes=10-19") == fasta[10:20]
    assert get(2, "bytes=10-19") == fasta[part_size + 10 : part_size + 20]  # relative to the part
    last_part_length = len(fasta) - part_size
    assert get(2, f"bytes={last_part_length - 5}-") == fasta[-5:]

    for part, byte_range in ((1, f"bytes={part_size}-{part_size + 9}"), (2, f"bytes={last_part_length}-")):
        with pytest.raises(omics.exceptions.RangeNotSatisfiableException) as excinfo:
            get(part, byte_range)
        assert error_of(excinfo)[1] == 416
    with pytest.raises(omics.exceptions.RangeNotSatisfiableException):  # past the last part
        omics.get_reference(referenceStoreId=store_id, id=ref["id"], partNumber=3)


def test_list_references_filters_by_name_and_md5(omics: Any, imported: Imported) -> None:
    store_id = imported.reference_store["id"]
    ref, small = imported.reference, imported.small_reference

    def listed(**flt: Any) -> list[str]:
        return [r["id"] for r in omics.list_references(referenceStoreId=store_id, filter=flt)["references"]]

    assert sorted(listed()) == sorted([ref["id"], small["id"]])
    assert listed(name="ref-genome") == [ref["id"]]
    assert listed(name="small-ref") == [small["id"]]
    assert listed(md5=ref["md5"]) == [ref["id"]]
    assert listed(md5=small["md5"]) == [small["id"]]
    assert listed(name="small-ref", md5=ref["md5"]) == []
    assert listed(name="no-such-reference") == []


def test_reference_import_of_a_missing_source_fails_its_item(service: RunningService, omics: Any) -> None:
    store = omics.create_reference_store(name="missing-source")
    job = import_references(
        service, omics, store["id"], [{"sourceFile": f"s3://bucket/{unique('gone')}/ref.fa", "name": "gone"}]
    )
    assert job["status"] == "FAILED"
    assert "completionTime" in job
    [item] = job["sources"]
    assert item["status"] == "FAILED"
    assert "does not exist" in item["statusMessage"]
    assert "referenceId" not in item
    assert omics.list_references(referenceStoreId=store["id"])["references"] == []


def test_reference_import_of_a_non_fasta_fails_but_the_good_source_imports(
    service: RunningService, omics: Any, sample: SampleFiles
) -> None:
    store = omics.create_reference_store(name="mixed-sources")
    good = put_s3(service, f"{unique('refs')}/small.fasta", SMALL_FASTA)
    bad = put_s3(service, f"{unique('refs')}/not.fasta", b"this is not a FASTA file\n")
    job = import_references(
        service,
        omics,
        store["id"],
        [{"sourceFile": good, "name": "good"}, {"sourceFile": bad, "name": "bad"}],
    )
    assert job["status"] == "COMPLETED_WITH_FAILURES"
    assert [s["status"] for s in job["sources"]] == ["FINISHED", "FAILED"]
    assert "FASTA" in job["sources"][1]["statusMessage"]
    assert [r["name"] for r in omics.list_references(referenceStoreId=store["id"])["references"]] == ["good"]


def test_reference_import_decompresses_gzip_fasta(
    service: RunningService, omics: Any, sample: SampleFiles, imported: Imported
) -> None:
    store = omics.create_reference_store(name="gzip-source")
    uri = put_s3(service, f"{unique('refs')}/ref.fasta.gz", gzip.compress(sample.reference.read_bytes()))
    job = import_references(service, omics, store["id"], [{"sourceFile": uri, "name": "gzipped"}])
    assert job["status"] == "COMPLETED"
    ref = omics.get_reference_metadata(referenceStoreId=store["id"], id=job["sources"][0]["referenceId"])
    assert ref["md5"] == imported.reference["md5"]
    assert reference_file(omics, store["id"], ref["id"]) == sample.reference.read_bytes()


@pytest.mark.parametrize(
    "uri", ["s3://bucket/../../etc/passwd", "s3://bucket/refs/../../../outside.fa", "s3://bucket/./x.fa"]
)
def test_reference_import_refuses_dot_segments(service: RunningService, omics: Any, uri: str) -> None:
    store = omics.create_reference_store(name="dot-dot")
    before = sorted(p.name for p in service.data_dir.iterdir())
    with pytest.raises(omics.exceptions.ValidationException):
        omics.start_reference_import_job(
            referenceStoreId=store["id"], roleArn=ROLE, sources=[{"sourceFile": uri, "name": "escape"}]
        )
    service.drain()
    assert omics.list_reference_import_jobs(referenceStoreId=store["id"])["importJobs"] == []
    assert sorted(p.name for p in service.data_dir.iterdir()) == before
    assert not (service.data_dir / "etc").exists()
    assert not (service.data_dir / "outside.fa").exists()


def test_s3_uris_escaping_through_a_symlink_are_refused(
    service: RunningService, omics: Any, imported: Imported, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "ref.fasta").write_bytes(SMALL_FASTA)
    link = unique("link")
    (service.s3_root / "bucket" / link).symlink_to(outside, target_is_directory=True)
    ref_store = omics.create_reference_store(name="symlink")
    with pytest.raises(omics.exceptions.ValidationException):
        omics.start_reference_import_job(
            referenceStoreId=ref_store["id"],
            roleArn=ROLE,
            sources=[{"sourceFile": f"s3://bucket/{link}/ref.fasta", "name": "escape"}],
        )
    store_id = imported.sequence_store["id"]
    with pytest.raises(omics.exceptions.ValidationException):
        omics.start_read_set_export_job(
            sequenceStoreId=store_id,
            destination=f"s3://bucket/{link}/exports/",
            roleArn=ROLE,
            sources=[{"readSetId": imported.read_sets["FASTQ"]}],
        )
    service.drain()
    assert sorted(p.name for p in outside.iterdir()) == ["ref.fasta"]


# --------------------------------------------------------------------------------------------
# Read-set import


def test_read_set_import_job_completes_with_failures(imported: Imported) -> None:
    job = imported.import_job
    assert job["status"] == "COMPLETED_WITH_FAILURES"
    assert job["statusMessage"]
    assert job["completionTime"] >= job["creationTime"]
    statuses = [(s["sourceFileType"], s["status"]) for s in job["sources"]]
    assert statuses == [
        ("BAM", "FINISHED"),
        ("CRAM", "FINISHED"),
        ("FASTQ", "FINISHED"),
        ("UBAM", "FINISHED"),
        ("UBAM", "FAILED"),
    ]
    failed = job["sources"][-1]
    assert "does not exist" in failed["statusMessage"]
    assert "readSetId" not in failed
    assert len(set(imported.read_sets.values())) == 4


@pytest.mark.parametrize(
    ("file_type", "has_index", "reads"),
    [("BAM", True, 6000), ("CRAM", True, 6000), ("FASTQ", False, 6000), ("UBAM", False, 6000)],
)
def test_imported_read_sets_are_active_with_job_provenance(
    omics: Any, imported: Imported, file_type: str, has_index: bool, reads: int
) -> None:
    store_id = imported.sequence_store["id"]
    meta = omics.get_read_set_metadata(sequenceStoreId=store_id, id=imported.read_sets[file_type])
    assert meta["status"] == "ACTIVE"
    assert meta["creationType"] == "IMPORT"
    assert meta["creationJobId"] == imported.import_job["id"]
    assert meta["fileType"] == file_type
    assert meta["name"] == f"{file_type.lower()}-sample"
    assert meta["sequenceInformation"]["totalReadCount"] == reads
    assert ("index" in meta["files"]) == has_index
    assert ("source2" in meta["files"]) == (file_type == "FASTQ")
    if file_type in ("BAM", "CRAM"):
        assert meta["referenceArn"] == imported.reference["arn"]
    listed = omics.list_read_sets(sequenceStoreId=store_id, filter={"creationType": "IMPORT"})["readSets"]
    assert imported.read_sets[file_type] in {r["id"] for r in listed}


def test_imported_bam_keeps_records_and_gains_a_provenance_comment(
    omics: Any, imported: Imported, sample: SampleFiles, tmp_path: Path
) -> None:
    store_id = imported.sequence_store["id"]
    read_set = imported.read_sets["BAM"]
    stored = tmp_path / "stored.bam"
    stored.write_bytes(read_set_file(omics, store_id, read_set))
    (tmp_path / "stored.bam.bai").write_bytes(read_set_file(omics, store_id, read_set, "INDEX"))

    stored_records, stored_header = records_and_header(stored)
    local_records, local_header = records_and_header(sample.bam)
    assert len(stored_records) == 6000
    assert stored_records == local_records
    added = stored_header.pop("CO", [])
    assert len(added) == len(local_header.pop("CO", [])) + 1
    assert store_id in added[-1]
    assert stored_header == local_header
    # The served index is usable: a region query through it finds reads.
    with pysam.AlignmentFile(str(stored), index_filename=str(tmp_path / "stored.bam.bai")) as handle:
        assert handle.count("chr2", 0, 30_000) > 0


def test_imported_fastq_bytes_are_unchanged(omics: Any, imported: Imported, sample: SampleFiles) -> None:
    store_id, read_set = imported.sequence_store["id"], imported.read_sets["FASTQ"]
    assert read_set_file(omics, store_id, read_set, "SOURCE1") == sample.fastq1.read_bytes()
    assert read_set_file(omics, store_id, read_set, "SOURCE2") == sample.fastq2.read_bytes()


def test_read_set_import_with_unknown_reference_is_refused(
    service: RunningService, omics: Any, store: dict[str, Any], sample: SampleFiles, imported: Imported
) -> None:
    unknown = imported.reference["arn"].rsplit("/", 1)[0] + "/9999999999"
    with pytest.raises(omics.exceptions.ResourceNotFoundException):
        omics.start_read_set_import_job(
            sequenceStoreId=store["id"],
            roleArn=ROLE,
            sources=[fastq_source(service, sample, referenceArn=unknown)],
        )
    with pytest.raises(omics.exceptions.ValidationException):
        omics.start_read_set_import_job(
            sequenceStoreId=store["id"],
            roleArn=ROLE,
            sources=[{**missing_source(), "sourceFiles": {"source1": "s3://bucket/../etc/passwd"}}],
        )
    assert omics.list_read_set_import_jobs(sequenceStoreId=store["id"])["importJobs"] == []


# --------------------------------------------------------------------------------------------
# Export


def test_export_writes_the_stored_files_under_the_read_set_id(
    service: RunningService, omics: Any, imported: Imported
) -> None:
    store_id, read_set = imported.sequence_store["id"], imported.read_sets["BAM"]
    prefix = unique("exports")
    job = export_read_sets(service, omics, store_id, [read_set], f"s3://bucket/{prefix}/")
    assert job["status"] == "COMPLETED"
    assert job["destination"] == f"s3://bucket/{prefix}/"
    assert "completionTime" in job
    assert job["readSets"] == [{"id": read_set, "status": "FINISHED"}]
    folder = service.s3_root / "bucket" / prefix / read_set
    [bam] = folder.glob("*.bam")
    [bai] = folder.glob("*.bam.bai")
    assert bam.read_bytes() == read_set_file(omics, store_id, read_set)
    assert bai.read_bytes() == read_set_file(omics, store_id, read_set, "INDEX")


def test_export_of_an_archived_read_set_fails_its_item(
    service: RunningService, omics: Any, store: dict[str, Any], sample: SampleFiles
) -> None:
    job = import_read_sets(
        service,
        omics,
        store["id"],
        [fastq_source(service, sample), fastq_source(service, sample, paired=False)],
    )
    active, archived = (s["readSetId"] for s in job["sources"])
    assert archive(service, store["id"], archived) == {"id": archived, "status": "ARCHIVED"}
    prefix = unique("exports")
    export = export_read_sets(service, omics, store["id"], [active, archived], f"s3://bucket/{prefix}/")
    assert export["status"] == "COMPLETED_WITH_FAILURES"
    statuses = {item["id"]: item["status"] for item in export["readSets"]}
    assert statuses == {active: "FINISHED", archived: "FAILED"}
    assert "ARCHIVED" in export["readSets"][1]["statusMessage"]
    assert sorted(p.name for p in (service.s3_root / "bucket" / prefix / active).iterdir()) == [
        f"{active}_1.fastq.gz",
        f"{active}_2.fastq.gz",
    ]
    assert not (service.s3_root / "bucket" / prefix / archived).exists()

    only_archived = export_read_sets(service, omics, store["id"], [archived], f"s3://bucket/{prefix}/")
    assert only_archived["status"] == "FAILED"
    assert only_archived["readSets"][0]["status"] == "FAILED"


def test_export_never_writes_outside_its_destination(
    service: RunningService, omics: Any, store: dict[str, Any], sample: SampleFiles
) -> None:
    marker = unique("escaped")
    # Four levels up from s3_root/bucket/<prefix>/<readSetId>/ is the service's data dir.
    source = fastq_source(service, sample, paired=False, name=f"../../../../{marker}")
    [item] = import_read_sets(service, omics, store["id"], [source])["sources"]
    prefix = unique("exports")
    export_read_sets(service, omics, store["id"], [item["readSetId"]], f"s3://bucket/{prefix}/")
    destination = service.s3_root / "bucket" / prefix
    outside = [p for p in service.data_dir.rglob(f"{marker}*") if destination not in p.parents]
    for path in outside:  # leave the shared service's data dir as it was
        path.unlink()
    assert outside == []


def test_export_to_a_bucket_that_does_not_exist_fails_like_s3(
    service: RunningService, omics: Any, imported: Imported
) -> None:
    """S3 has buckets, not folders: a missing bucket is NoSuchBucket, a missing prefix is made."""
    store_id, read_set = imported.sequence_store["id"], imported.read_sets["FASTQ"]
    bucket = unique("no-such-bucket")
    job = export_read_sets(service, omics, store_id, [read_set], f"s3://{bucket}/exports/")
    assert job["status"] == "FAILED"
    [item] = job["readSets"]
    assert item["status"] == "FAILED"
    assert "NoSuchBucket" in item["statusMessage"]
    assert not (service.s3_root / bucket).exists()
    prefix = f"{unique('new')}/deeper/still"  # inside an existing bucket, any prefix will do
    assert (
        export_read_sets(service, omics, store_id, [read_set], f"s3://bucket/{prefix}/")["status"]
        == "COMPLETED"
    )
    assert (service.s3_root / "bucket" / prefix / read_set).is_dir()


def test_export_of_an_unknown_read_set_is_refused(omics: Any, store: dict[str, Any]) -> None:
    with pytest.raises(omics.exceptions.ResourceNotFoundException):
        omics.start_read_set_export_job(
            sequenceStoreId=store["id"],
            destination="s3://bucket/x/",
            roleArn=ROLE,
            sources=[{"readSetId": "1234567890"}],
        )
    assert omics.list_read_set_export_jobs(sequenceStoreId=store["id"])["exportJobs"] == []


# --------------------------------------------------------------------------------------------
# Activation


def test_activation_job_restores_an_archived_read_set(
    service: RunningService, omics: Any, store: dict[str, Any], sample: SampleFiles
) -> None:
    [item] = import_read_sets(service, omics, store["id"], [fastq_source(service, sample)])["sources"]
    read_set = item["readSetId"]
    original = read_set_file(omics, store["id"], read_set)

    assert archive(service, store["id"], read_set)["status"] == "ARCHIVED"
    assert omics.get_read_set_metadata(sequenceStoreId=store["id"], id=read_set)["status"] == "ARCHIVED"
    with pytest.raises(ClientError) as excinfo:
        omics.get_read_set(sequenceStoreId=store["id"], id=read_set, partNumber=1)
    assert error_of(excinfo) == ("ConflictException", 409)
    with pytest.raises(urllib.error.HTTPError) as http_error:  # only ACTIVE read sets can be archived
        archive(service, store["id"], read_set)
    assert http_error.value.code == 409

    job = activate_read_sets(service, omics, store["id"], [read_set])
    assert job["status"] == "COMPLETED"
    assert "completionTime" in job
    assert job["sources"] == [{"readSetId": read_set, "status": "FINISHED"}]
    assert omics.get_read_set_metadata(sequenceStoreId=store["id"], id=read_set)["status"] == "ACTIVE"
    assert read_set_file(omics, store["id"], read_set) == original

    again = activate_read_sets(service, omics, store["id"], [read_set])
    assert again["status"] == "FAILED"
    [failed] = again["sources"]
    assert failed["status"] == "FAILED"
    assert "ACTIVE" in failed["statusMessage"]


def test_activation_of_an_unknown_read_set_is_refused(
    service: RunningService, omics: Any, store: dict[str, Any], imported: Imported
) -> None:
    with pytest.raises(omics.exceptions.ResourceNotFoundException):
        omics.start_read_set_activation_job(
            sequenceStoreId=store["id"], sources=[{"readSetId": "1234567890"}]
        )
    # A read set of another store is unknown here too.
    with pytest.raises(omics.exceptions.ResourceNotFoundException):
        omics.start_read_set_activation_job(
            sequenceStoreId=store["id"], sources=[{"readSetId": imported.read_sets["FASTQ"]}]
        )
    assert omics.list_read_set_activation_jobs(sequenceStoreId=store["id"])["activationJobs"] == []


# --------------------------------------------------------------------------------------------
# Job listings: filters and pagination


@dataclass(frozen=True)
class JobHistory:
    sequence_store_id: str
    reference_store_id: str
    jobs: dict[str, list[dict[str, Any]]]  # listing operation -> Get*Job documents, oldest first
    before: dt.datetime
    after: dt.datetime


@pytest.fixture(scope="module")
def job_history(service: RunningService, sample: SampleFiles) -> JobHistory:
    """Several jobs of each kind in one store, with mixed outcomes, each finished before the next."""
    omics = service.client()
    store = omics.create_sequence_store(name="job-history")
    ref_store = omics.create_reference_store(name="job-history")
    sid = store["id"]
    before = floor_ms(now())
    imports = [
        import_read_sets(service, omics, sid, [fastq_source(service, sample)]),
        import_read_sets(service, omics, sid, [missing_source("FASTQ")]),
        import_read_sets(service, omics, sid, [fastq_source(service, sample, paired=False)]),
    ]
    read_set = imports[0]["sources"][0]["readSetId"]
    destination = f"s3://bucket/{unique('history')}/"
    exports = [export_read_sets(service, omics, sid, [read_set], destination)]
    archive(service, sid, read_set)
    exports.append(export_read_sets(service, omics, sid, [read_set], destination))
    activations = [activate_read_sets(service, omics, sid, [read_set])]
    activations.append(activate_read_sets(service, omics, sid, [read_set]))
    exports.append(export_read_sets(service, omics, sid, [read_set], destination))
    small = put_s3(service, f"{unique('refs')}/small.fasta", SMALL_FASTA)
    references = [
        import_references(service, omics, ref_store["id"], [{"sourceFile": small, "name": "one"}]),
        import_references(service, omics, ref_store["id"], [{"sourceFile": small + ".gone", "name": "two"}]),
        import_references(service, omics, ref_store["id"], [{"sourceFile": small, "name": "three"}]),
    ]
    after = now()
    assert [j["status"] for j in imports] == ["COMPLETED", "FAILED", "COMPLETED"]
    assert [j["status"] for j in exports] == ["COMPLETED", "FAILED", "COMPLETED"]
    assert [j["status"] for j in activations] == ["COMPLETED", "FAILED"]
    assert [j["status"] for j in references] == ["COMPLETED", "FAILED", "COMPLETED"]
    return JobHistory(
        sequence_store_id=sid,
        reference_store_id=ref_store["id"],
        jobs={
            "list_read_set_import_jobs": imports,
            "list_read_set_export_jobs": exports,
            "list_read_set_activation_jobs": activations,
            "list_reference_import_jobs": references,
        },
        before=before,
        after=after,
    )


LISTINGS = {
    "list_read_set_import_jobs": "importJobs",
    "list_read_set_export_jobs": "exportJobs",
    "list_read_set_activation_jobs": "activationJobs",
    "list_reference_import_jobs": "importJobs",
}


def _parent(history: JobHistory, operation: str) -> dict[str, str]:
    if operation == "list_reference_import_jobs":
        return {"referenceStoreId": history.reference_store_id}
    return {"sequenceStoreId": history.sequence_store_id}


@pytest.mark.parametrize("operation", list(LISTINGS))
def test_job_listing_filters(omics: Any, job_history: JobHistory, operation: str) -> None:
    jobs = job_history.jobs[operation]
    ids = [j["id"] for j in jobs]
    parent = _parent(job_history, operation)

    def listed(**flt: Any) -> list[str]:
        return [j["id"] for j in getattr(omics, operation)(**parent, filter=flt)[LISTINGS[operation]]]

    everything = getattr(omics, operation)(**parent)[LISTINGS[operation]]
    assert [j["id"] for j in everything] == ids
    assert [j["status"] for j in everything] == [j["status"] for j in jobs]
    assert all(j["completionTime"] >= j["creationTime"] for j in everything)

    assert listed(status="COMPLETED") == [j["id"] for j in jobs if j["status"] == "COMPLETED"]
    assert listed(status="FAILED") == [j["id"] for j in jobs if j["status"] == "FAILED"]
    assert listed(status="IN_PROGRESS") == []

    # Each job finished before the next started, so creation times are strictly increasing.
    times = [j["creationTime"] for j in jobs]
    assert times == sorted(times)
    assert len(set(times)) == len(times)
    second = times[1]
    assert listed(createdAfter=second) == ids[1:]  # inclusive
    assert listed(createdBefore=second) == ids[:2]  # inclusive
    assert listed(createdAfter=second, createdBefore=second) == [ids[1]]
    assert listed(createdAfter=second + dt.timedelta(milliseconds=1)) == ids[2:]
    assert listed(createdBefore=second - dt.timedelta(milliseconds=1)) == ids[:1]
    assert listed(createdAfter=job_history.before, createdBefore=job_history.after) == ids
    assert listed(createdAfter=job_history.after + dt.timedelta(seconds=1)) == []
    assert listed(createdBefore=job_history.before - dt.timedelta(seconds=1)) == []
    completed_since_second = [j["id"] for j in jobs[1:] if j["status"] == "COMPLETED"]
    assert listed(status="COMPLETED", createdAfter=second) == completed_since_second


@pytest.mark.parametrize("operation", list(LISTINGS))
def test_job_listing_paginates_one_at_a_time(omics: Any, job_history: JobHistory, operation: str) -> None:
    jobs = job_history.jobs[operation]
    pages = list(
        omics.get_paginator(operation).paginate(
            **_parent(job_history, operation), PaginationConfig={"PageSize": 1}
        )
    )
    assert len(pages) == len(jobs) > 1
    assert all(len(page[LISTINGS[operation]]) == 1 for page in pages)
    assert all("nextToken" in page for page in pages[:-1])
    assert "nextToken" not in pages[-1]
    assert [page[LISTINGS[operation]][0]["id"] for page in pages] == [j["id"] for j in jobs]

    filtered = omics.get_paginator(operation).paginate(
        **_parent(job_history, operation), filter={"status": "COMPLETED"}, PaginationConfig={"PageSize": 1}
    )
    assert [j["id"] for page in filtered for j in page[LISTINGS[operation]]] == [
        j["id"] for j in jobs if j["status"] == "COMPLETED"
    ]


# --------------------------------------------------------------------------------------------
# Tags


def _tags(omics: Any, arn: str) -> dict[str, str]:
    return dict(omics.list_tags_for_resource(resourceArn=arn)["tags"])


def _check_tag_cycle(omics: Any, arn: str, initial: dict[str, str]) -> None:
    assert _tags(omics, arn) == initial
    omics.tag_resource(resourceArn=arn, tags={"team": "genomics", "cost": "42"})
    assert _tags(omics, arn) == {**initial, "team": "genomics", "cost": "42"}
    omics.tag_resource(resourceArn=arn, tags={"cost": "43"})  # overwrites one value
    assert _tags(omics, arn) == {**initial, "team": "genomics", "cost": "43"}
    omics.untag_resource(resourceArn=arn, tagKeys=["cost", *initial, "never-set"])
    assert _tags(omics, arn) == {"team": "genomics"}
    omics.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert _tags(omics, arn) == {}


def test_tags_on_stores_read_sets_and_references(omics: Any, imported: Imported) -> None:
    store = omics.create_sequence_store(name=unique("tagged"), tags={"project": "alpha", "env": "test"})
    _check_tag_cycle(omics, store["arn"], {"project": "alpha", "env": "test"})
    _check_tag_cycle(omics, imported.reference_store["arn"], {"scope": "jobs"})
    # Tags given in an import source show up on the read set and the reference it made.
    read_set = omics.get_read_set_metadata(
        sequenceStoreId=imported.sequence_store["id"], id=imported.read_sets["BAM"]
    )
    _check_tag_cycle(omics, read_set["arn"], {"origin": "import"})
    _check_tag_cycle(omics, imported.reference["arn"], {"kind": "genome"})
    # Tags are per resource: tagging the read set did not tag its store.
    omics.tag_resource(resourceArn=read_set["arn"], tags={"only": "read-set"})
    assert _tags(omics, imported.sequence_store["arn"]) == {}
    omics.untag_resource(resourceArn=read_set["arn"], tagKeys=["only"])


def test_tags_on_unknown_resources_are_not_found(omics: Any, imported: Imported) -> None:
    store_arn = imported.sequence_store["arn"]
    read_set_arn = omics.get_read_set_metadata(
        sequenceStoreId=imported.sequence_store["id"], id=imported.read_sets["BAM"]
    )["arn"]
    other_store = omics.create_sequence_store(name=unique("other"))
    unknown = [
        store_arn.rsplit("/", 1)[0] + "/1234567890",  # no such store
        f"{store_arn}/readSet/1234567890",  # no such read set
        read_set_arn.replace(store_arn, other_store["arn"]),  # a real read set under the wrong store
        imported.reference["arn"].rsplit("/", 1)[0] + "/1234567890",
        "arn:aws:s3:::bucket",
    ]
    for arn in unknown:
        with pytest.raises(omics.exceptions.ResourceNotFoundException):
            omics.list_tags_for_resource(resourceArn=arn)
        with pytest.raises(omics.exceptions.ResourceNotFoundException):
            omics.tag_resource(resourceArn=arn, tags={"a": "b"})
        with pytest.raises(omics.exceptions.ResourceNotFoundException):
            omics.untag_resource(resourceArn=arn, tagKeys=["a"])


def stored_tag_rows(service: RunningService, arn: str) -> int:
    """Tag rows the service's database keeps for ``arn`` and anything under it.

    The API cannot show a deleted resource's tags (it answers ResourceNotFound for the ARN), so
    whether they were really dropped is read from the database, read-only.
    """
    uri = f"file:{service.data_dir / 'state.sqlite3'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        row = db.execute(
            "SELECT COUNT(*) FROM tags WHERE arn = ? OR arn LIKE ?", (arn, arn + "/%")
        ).fetchone()
    return int(row[0])


def test_deleting_a_store_removes_its_tags(service: RunningService, omics: Any, sample: SampleFiles) -> None:
    store = omics.create_sequence_store(name=unique("doomed"), tags={"doomed": "yes"})
    ref_store = omics.create_reference_store(name=unique("doomed"), tags={"doomed": "yes"})
    source = fastq_source(service, sample, paired=False, tags={"doomed": "read-set"})
    [item] = import_read_sets(service, omics, store["id"], [source])["sources"]
    read_set_arn = f"{store['arn']}/readSet/{item['readSetId']}"
    assert _tags(omics, store["arn"]) == {"doomed": "yes"}
    assert _tags(omics, read_set_arn) == {"doomed": "read-set"}
    assert _tags(omics, ref_store["arn"]) == {"doomed": "yes"}
    assert stored_tag_rows(service, store["arn"]) == 2

    assert omics.batch_delete_read_set(sequenceStoreId=store["id"], ids=[item["readSetId"]])["errors"] == []
    with pytest.raises(omics.exceptions.ResourceNotFoundException):
        omics.list_tags_for_resource(resourceArn=read_set_arn)
    assert stored_tag_rows(service, read_set_arn) == 0
    omics.delete_sequence_store(id=store["id"])
    omics.delete_reference_store(id=ref_store["id"])
    for arn in (store["arn"], ref_store["arn"]):
        with pytest.raises(omics.exceptions.ResourceNotFoundException):
            omics.list_tags_for_resource(resourceArn=arn)
        assert stored_tag_rows(service, arn) == 0


# --------------------------------------------------------------------------------------------
# S3 access policies


def test_s3_access_policy_put_get_delete(omics: Any, store: dict[str, Any]) -> None:
    arn = omics.get_sequence_store(id=store["id"])["s3Access"]["s3AccessPointArn"]
    with pytest.raises(omics.exceptions.ResourceNotFoundException):  # none yet
        omics.get_s3_access_policy(s3AccessPointArn=arn)
    policy: dict[str, Any] = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": ["s3:GetObject"],
                "Resource": f"{arn}/object/*",
            }
        ],
    }
    put = omics.put_s3_access_policy(s3AccessPointArn=arn, s3AccessPolicy=json.dumps(policy))
    assert (put["s3AccessPointArn"], put["storeId"], put["storeType"]) == (arn, store["id"], "SEQUENCE_STORE")
    got = omics.get_s3_access_policy(s3AccessPointArn=arn)
    assert json.loads(got["s3AccessPolicy"]) == policy
    assert (got["storeId"], got["storeType"]) == (store["id"], "SEQUENCE_STORE")
    assert isinstance(got["updateTime"], dt.datetime)

    policy["Statement"][0]["Action"] = ["s3:GetObject", "s3:ListBucket"]
    omics.put_s3_access_policy(s3AccessPointArn=arn, s3AccessPolicy=json.dumps(policy))
    assert json.loads(omics.get_s3_access_policy(s3AccessPointArn=arn)["s3AccessPolicy"]) == policy

    omics.delete_s3_access_policy(s3AccessPointArn=arn)
    with pytest.raises(omics.exceptions.ResourceNotFoundException):
        omics.get_s3_access_policy(s3AccessPointArn=arn)
    with pytest.raises(omics.exceptions.ResourceNotFoundException):
        omics.delete_s3_access_policy(s3AccessPointArn=arn)


def test_s3_access_policy_is_per_store_and_unknown_access_points_are_not_found(omics: Any) -> None:
    first = omics.create_sequence_store(name=unique("policy"))
    second = omics.create_sequence_store(name=unique("policy"))
    first_arn = first["s3Access"]["s3AccessPointArn"]
    second_arn = second["s3Access"]["s3AccessPointArn"]
    assert first_arn != second_arn
    omics.put_s3_access_policy(s3AccessPointArn=first_arn, s3AccessPolicy='{"Version": "2012-10-17"}')
    with pytest.raises(omics.exceptions.ResourceNotFoundException):
        omics.get_s3_access_policy(s3AccessPointArn=second_arn)

    unknown = first_arn.rsplit("/", 1)[0] + "/123456789012-1234567890"
    for call in (
        lambda: omics.get_s3_access_policy(s3AccessPointArn=unknown),
        lambda: omics.put_s3_access_policy(s3AccessPointArn=unknown, s3AccessPolicy="{}"),
        lambda: omics.delete_s3_access_policy(s3AccessPointArn=unknown),
    ):
        with pytest.raises(omics.exceptions.ResourceNotFoundException):
            call()

    # A deleted store's policy goes with it.
    omics.delete_sequence_store(id=first["id"])
    with pytest.raises(omics.exceptions.ResourceNotFoundException):
        omics.get_s3_access_policy(s3AccessPointArn=first_arn)


# --------------------------------------------------------------------------------------------
# Deletion conflicts


def test_references_in_use_cannot_be_deleted(
    service: RunningService, omics: Any, store: dict[str, Any], sample: SampleFiles
) -> None:
    ref_store = omics.create_reference_store(name=unique("in-use"))
    uri = put_s3(service, f"{unique('refs')}/ref.fasta", sample.reference)
    [ref_item] = import_references(service, omics, ref_store["id"], [{"sourceFile": uri, "name": "in-use"}])[
        "sources"
    ]
    ref = omics.get_reference_metadata(referenceStoreId=ref_store["id"], id=ref_item["referenceId"])
    bam = put_s3(service, f"{unique('reads')}/sample.bam", sample.bam)
    job = import_read_sets(
        service,
        omics,
        store["id"],
        [{
            "sourceFiles": {"source1": bam}, "sourceFileType": "BAM", "referenceArn": ref["arn"],
            "subjectId": "subject-1", "sampleId": "sample-1",
        }],
    )  # fmt: skip
    read_set = job["sources"][0]["readSetId"]

    with pytest.raises(omics.exceptions.ConflictException) as excinfo:
        omics.delete_reference_store(id=ref_store["id"])
    assert error_of(excinfo) == ("ConflictException", 409)
    with pytest.raises(omics.exceptions.ConflictException):
        omics.delete_reference(referenceStoreId=ref_store["id"], id=ref["id"])
    assert omics.get_reference_metadata(referenceStoreId=ref_store["id"], id=ref["id"])["status"] == "ACTIVE"

    # Once the read set is gone the reference can go, and then its store.
    assert omics.batch_delete_read_set(sequenceStoreId=store["id"], ids=[read_set])["errors"] == []
    omics.delete_reference(referenceStoreId=ref_store["id"], id=ref["id"])
    with pytest.raises(omics.exceptions.ResourceNotFoundException):
        omics.get_reference_metadata(referenceStoreId=ref_store["id"], id=ref["id"])
    omics.delete_reference_store(id=ref_store["id"])
    with pytest.raises(omics.exceptions.ResourceNotFoundException):
        omics.get_reference_store(id=ref_store["id"])
