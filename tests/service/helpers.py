"""Small helpers shared by the service conformance tests."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

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
