"""Loading sample data into a HealthOmics service through its public API only.

The reference goes in through a reference import job, the BAM and CRAM through a read-set import
job, the paired FASTQ and the uBAM through multipart uploads: the same calls a user makes, so the
demo and the mount tests exercise the service's real paths. Works against the local service (its
S3 stand-in is a folder) and is how ``omicsfs demo`` fills a fresh data dir.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omicsfs.sample.data import SampleFiles

ROLE_ARN = "arn:aws:iam::123456789012:role/omicsfs-sample-import"
BUCKET = "omicsfs-sample"


@dataclass(frozen=True)
class LoadedSample:
    sequence_store_id: str
    reference_store_id: str
    reference_id: str
    reference_arn: str
    read_sets: dict[str, str]  # "bam" | "cram" | "fastq" | "ubam" -> read set ID


def stage(s3_root: Path, files: list[Path], prefix: str) -> dict[Path, str]:
    """Copies files into the local service's S3 folder; returns their s3:// URIs."""
    uris = {}
    for path in files:
        target = s3_root / BUCKET / prefix / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        uris[path] = f"s3://{BUCKET}/{prefix}/{path.name}"
    return uris


def upload(
    omics: Any, store_id: str, file_type: str, sources: dict[str, Path], part_size: int, **fields: Any
) -> str:
    """One read set through Create/UploadPart/Complete; returns its ID."""
    created = omics.create_multipart_read_set_upload(
        sequenceStoreId=store_id, sourceFileType=file_type, **fields
    )
    parts = []
    for source, path in sources.items():
        with open(path, "rb") as handle:
            number = 1
            while chunk := handle.read(part_size):
                reply = omics.upload_read_set_part(
                    sequenceStoreId=store_id, uploadId=created["uploadId"], partSource=source,
                    partNumber=number, payload=chunk,
                )  # fmt: skip
                parts.append({"partNumber": number, "partSource": source, "checksum": reply["checksum"]})
                number += 1
    done = omics.complete_multipart_read_set_upload(
        sequenceStoreId=store_id, uploadId=created["uploadId"], parts=parts
    )
    return str(done["readSetId"])


def load_sample(
    omics: Any,
    s3_root: Path,
    sample: SampleFiles,
    wait: Callable[[], None],
    *,
    store_name: str = "demo-cohort",
    sample_id: str = "NA12878",
    subject_id: str = "subject-1",
    part_size: int = 100 * 1024 * 1024,
) -> LoadedSample:
    stores = omics.list_reference_stores()["referenceStores"]
    reference_store = stores[0] if stores else omics.create_reference_store(name="references")
    uris = stage(s3_root, [sample.reference, sample.bam, sample.cram], store_name)
    job = omics.start_reference_import_job(
        referenceStoreId=reference_store["id"], roleArn=ROLE_ARN,
        sources=[{"sourceFile": uris[sample.reference], "name": "demo-genome"}],
    )  # fmt: skip
    wait()
    reference_id = _finished(
        omics.get_reference_import_job(referenceStoreId=reference_store["id"], id=job["id"])
    )
    reference_arn = omics.get_reference_metadata(referenceStoreId=reference_store["id"], id=reference_id)[
        "arn"
    ]

    store = omics.create_sequence_store(name=store_name, description="omicsfs sample data")
    common = {"subjectId": subject_id, "sampleId": sample_id}
    job = omics.start_read_set_import_job(
        sequenceStoreId=store["id"], roleArn=ROLE_ARN,
        sources=[
            {"sourceFiles": {"source1": uris[sample.bam]}, "sourceFileType": "BAM",
             "name": f"{sample_id}-aligned", "referenceArn": reference_arn, **common},
            {"sourceFiles": {"source1": uris[sample.cram]}, "sourceFileType": "CRAM",
             "name": f"{sample_id}-aligned", "referenceArn": reference_arn, **common},
        ],
    )  # fmt: skip
    fastq = upload(omics, store["id"], "FASTQ", {"SOURCE1": sample.fastq1, "SOURCE2": sample.fastq2},
                   part_size, name=f"{sample_id}-reads", **common)  # fmt: skip
    ubam = upload(omics, store["id"], "UBAM", {"SOURCE1": sample.ubam}, part_size,
                  name=f"{sample_id}-unaligned", **common)  # fmt: skip
    wait()
    imported = omics.get_read_set_import_job(sequenceStoreId=store["id"], id=job["id"])
    ids = [source["readSetId"] for source in imported["sources"]]
    return LoadedSample(
        sequence_store_id=store["id"],
        reference_store_id=reference_store["id"],
        reference_id=reference_id,
        reference_arn=reference_arn,
        read_sets={"bam": ids[0], "cram": ids[1], "fastq": fastq, "ubam": ubam},
    )


def _finished(job: dict[str, Any]) -> str:
    if job["status"] != "COMPLETED":
        raise RuntimeError(f"reference import job ended {job['status']}: {job.get('statusMessage', '')}")
    return str(job["sources"][0]["referenceId"])
