"""Extended attributes: the service's metadata of each entry, read-only, under ``user.omics.``.

``getfattr -d -m user.omics FILE`` shows a read set's IDs, status, sample, subject, reference and
sequence counts without a line of code (README.md, "Attributes"). Empty values are left out.
"""

from __future__ import annotations

import datetime as dt

from omicsfs.backend.models import (
    JobSummary,
    ReadSetSummary,
    ReferenceSummary,
    StoredFile,
    StoreSummary,
    Summary,
)

XATTR_PREFIX = "user.omics."


def iso(epoch_seconds: float) -> str:
    """ISO-8601 UTC with milliseconds, as the service writes its timestamps."""
    return (
        dt.datetime.fromtimestamp(epoch_seconds, dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _prefixed(values: dict[str, str]) -> dict[str, str]:
    return {XATTR_PREFIX + name: value for name, value in values.items() if value}


def object_file_xattrs(summary: Summary, file: str) -> dict[str, str]:
    values = {
        "id": summary.id,
        "arn": summary.arn,
        "status": summary.status,
        "name": summary.name,
        "creationTime": iso(summary.creation_time),
        "description": summary.description,
        "file": file.upper(),
    }
    if isinstance(summary, ReadSetSummary):
        values.update(
            sequenceStoreId=summary.store_id,
            sampleId=summary.sample_id,
            subjectId=summary.subject_id,
            referenceArn=summary.reference_arn,
            fileType=summary.file_type,
            statusMessage=summary.status_message,
            etag=_etag(summary, file),
            etagAlgorithm=summary.etag_algorithm,
        )
        for name, value in summary.sequence_information.items():
            values[name] = str(value)
    elif isinstance(summary, ReferenceSummary):
        values.update(referenceStoreId=summary.store_id, md5=summary.md5)
    return _prefixed(values)


def _etag(summary: ReadSetSummary, file: str) -> str:
    if file == StoredFile.SOURCE1:
        return summary.etag_source1
    if file == StoredFile.SOURCE2:
        return summary.etag_source2
    return ""


def store_xattrs(store: StoreSummary) -> dict[str, str]:
    return _prefixed({
        "id": store.id, "arn": store.arn, "name": store.name,
        "creationTime": iso(store.creation_time), "description": store.description,
    })  # fmt: skip


def job_xattrs(job: JobSummary) -> dict[str, str]:
    return _prefixed({"id": job.id, "status": job.status, "creationTime": iso(job.creation_time)})
