"""Small helpers shared by the service conformance tests."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from omicsfs.sample.data import SampleFiles
from tests.localservice import RunningService

ROLE = "arn:aws:iam::123456789012:role/omics"


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    """(error code, HTTP status) as botocore parsed them."""
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def import_reference(service: RunningService, fasta: Path, name: str = "genome") -> str:
    """Imports a FASTA through a reference import job (as a user would); returns its ARN.

    A BAM or CRAM read set needs one: the service refuses aligned uploads without a referenceArn
    and fails those whose @SQ contigs the reference does not hold.
    """
    omics = service.client()
    stores = omics.list_reference_stores()["referenceStores"]
    store_id = stores[0]["id"] if stores else omics.create_reference_store(name="references")["id"]
    key = f"references-{uuid.uuid4().hex[:10]}/{fasta.name}"
    target = service.s3_root / "bucket" / key
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(fasta, target)
    started = omics.start_reference_import_job(
        referenceStoreId=store_id, roleArn=ROLE, sources=[{"sourceFile": f"s3://bucket/{key}", "name": name}]
    )
    service.drain()
    job = omics.get_reference_import_job(referenceStoreId=store_id, id=started["id"])
    assert job["status"] == "COMPLETED", job
    reference = omics.get_reference_metadata(referenceStoreId=store_id, id=job["sources"][0]["referenceId"])
    return str(reference["arn"])


def upload_file(
    omics: Any,
    store_id: str,
    sources: dict[str, Path | bytes],
    file_type: str,
    part_size: int = 100_000,
    **fields: Any,
) -> str:
    """Uploads one read set through the multipart API; returns its ID (still PROCESSING)."""
    fields.setdefault("name", "sample")
    fields.setdefault("subjectId", "subject-1")
    fields.setdefault("sampleId", "sample-1")
    upload = omics.create_multipart_read_set_upload(
        sequenceStoreId=store_id, sourceFileType=file_type, **fields
    )
    parts = []
    for source, content in sources.items():
        data = content if isinstance(content, bytes) else content.read_bytes()
        for number, offset in enumerate(range(0, len(data), part_size), start=1):
            reply = omics.upload_read_set_part(
                sequenceStoreId=store_id,
                uploadId=upload["uploadId"],
                partSource=source,
                partNumber=number,
                payload=data[offset : offset + part_size],
            )
            parts.append({"partNumber": number, "partSource": source, "checksum": reply["checksum"]})
    done = omics.complete_multipart_read_set_upload(
        sequenceStoreId=store_id, uploadId=upload["uploadId"], parts=parts
    )
    return str(done["readSetId"])


def fastq_in_new_store(
    service: RunningService, store_name: str, data: bytes, name: str = "r", part_size: int = 100_000
) -> tuple[str, str]:
    """A new sequence store holding one single-end FASTQ read set, ACTIVE; (store ID, read set ID)."""
    omics = service.client()
    store_id = str(omics.create_sequence_store(name=store_name)["id"])
    read_set = upload_file(omics, store_id, {"SOURCE1": data}, "FASTQ", name=name, part_size=part_size)
    service.drain()
    return store_id, read_set


def download(omics: Any, store_id: str, read_set_id: str, file: str = "SOURCE1") -> bytes:
    """Every part of a read set's file, joined, checking each part's length on the way."""
    meta = omics.get_read_set_metadata(sequenceStoreId=store_id, id=read_set_id)
    info = meta["files"][file.lower()]
    chunks = []
    for number in range(1, info["totalParts"] + 1):
        body = omics.get_read_set(sequenceStoreId=store_id, id=read_set_id, file=file, partNumber=number)[
            "payload"
        ].read()
        expected = min(info["partSize"], info["contentLength"] - (number - 1) * info["partSize"])
        assert len(body) == expected, f"part {number}"
        chunks.append(body)
    return b"".join(chunks)


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


@dataclass(frozen=True)
class StoredFile:
    read_set: str
    file: str  # source1, source2, index
    key: str
    content: bytes


@dataclass(frozen=True)
class Loaded:
    store: dict[str, Any]
    bucket: str
    prefix: str  # "<account>/sequenceStore/<id>/"
    read_sets: dict[str, str]  # BAM, CRAM, FASTQ (a pair), UBAM -> read set ID
    files: dict[str, StoredFile]  # "BAM/source1", "BAM/index", ... -> the file

    def file(self, name: str) -> StoredFile:
        return self.files[name]


def load_store(service: RunningService, sample: SampleFiles, name: str) -> Loaded:
    """A store with an uploaded read set of every type, and what GetReadSet serves for each file."""
    omics = service.client()
    store = dict(omics.create_sequence_store(name=name, propagatedSetLevelTags=["project"]))
    sid = store["id"]
    tags = {"project": "p1", "private": "kept-off-objects"}
    arn = import_reference(service, sample.reference, f"{name}-genome")
    read_sets = {
        "BAM": upload_file(
            omics, sid, {"SOURCE1": sample.bam}, "BAM", name="NA12878", tags=tags, referenceArn=arn
        ),
        "CRAM": upload_file(omics, sid, {"SOURCE1": sample.cram}, "CRAM", name="c", referenceArn=arn),
        "FASTQ": upload_file(
            omics, sid, {"SOURCE1": sample.fastq1, "SOURCE2": sample.fastq2}, "FASTQ", name="pair"
        ),
        "UBAM": upload_file(omics, sid, {"SOURCE1": sample.ubam}, "UBAM", name="u"),
    }
    service.drain()
    files = {}
    for label, read_set in read_sets.items():
        meta = omics.get_read_set_metadata(sequenceStoreId=sid, id=read_set)
        assert meta["status"] == "ACTIVE"
        for file, info in meta["files"].items():
            _, key = split_uri(info["s3Access"]["s3Uri"])
            content = download(omics, sid, read_set, file.upper())
            files[f"{label}/{file}"] = StoredFile(read_set, file, key, content)
    bucket, prefix = split_uri(store["s3Access"]["s3Uri"])
    return Loaded(store, bucket, prefix, read_sets, files)
