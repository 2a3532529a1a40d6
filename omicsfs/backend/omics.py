"""The only code that talks to HealthOmics: boto3 calls on worker threads, paced and retried.

Every call goes through ``trio.to_thread.run_sync`` with a capacity limiter, so blocking boto3 code
never runs on the trio thread. Control-plane calls (lists, metadata, jobs) and data-plane part
fetches have separate limiters and separate connection budgets, so an ``ls -l`` never waits behind
a queue of 100 MiB part downloads (research/codebase-models.md, "What to absorb" 9). Each API
class has a token bucket at the service's published quota, and every call shares one retry policy.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import trio

from omicsfs.backend.errors import BackendError, TransportFailure, classify, classify_item
from omicsfs.backend.models import (
    JobKind,
    JobSummary,
    ObjectFiles,
    ReadSetSummary,
    ReferenceSummary,
    StoreSummary,
    epoch,
    files_from_metadata,
)
from omicsfs.backend.ratelimit import TokenBucket
from omicsfs.backend.retry import RetryPolicy
from omicsfs.fs.stats import Stats

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Bytes read from a part body per worker-thread hop: a 4 KiB read at the start of a cold part is
#: answered after the first chunk, not after the whole 100 MiB part.
CHUNK_SIZE = 1 << 20

UPLOAD_CONTROL_OPERATIONS = (
    "CreateMultipartReadSetUpload", "CompleteMultipartReadSetUpload", "AbortMultipartReadSetUpload",
)  # fmt: skip


@dataclass(frozen=True)
class BackendLimits:
    """Concurrency and pacing. Defaults are the real service's published quotas (api-quotas)."""

    metadata_tps: float = 5.0
    get_read_set_tps: float = 30.0
    get_reference_tps: float = 10.0
    #: Create, Complete and Abort of a multipart upload: the quota is 1 per second each, not
    #: adjustable; pacing 10% under it absorbs the jitter between sending and arriving, which
    #: at exactly 1.0 got 9 of 50 back-to-back creates throttled (tests/write/test_failures.py).
    upload_control_tps: float = 0.9
    upload_part_tps: float = 10.0
    control_threads: int = 8
    data_streams: int = 16
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True)
class PartSource:
    """Which stored file a part fetch reads: a read set's source1/source2/index or a reference's."""

    kind: str  # "readSet" | "reference"
    store_id: str
    object_id: str
    file: str  # lower-case file key as in the metadata's ``files``

    @property
    def operation(self) -> str:
        return "GetReadSet" if self.kind == "readSet" else "GetReference"

    def describe(self) -> str:
        return f"{self.kind} {self.object_id} {self.file}"


class PartStream:
    """An open part body, read chunk by chunk on a worker thread."""

    def __init__(self, body: Any, backend: OmicsBackend, operation: str) -> None:
        self._body = body
        self._backend = backend
        self._operation = operation

    async def read(self, size: int = CHUNK_SIZE) -> bytes:
        try:
            chunk: bytes = await trio.to_thread.run_sync(self._body.read, size)
        except Exception as exc:
            raise classify(self._operation, exc) from exc
        self._backend.stats.bytes_fetched += len(chunk)
        return chunk

    def close(self) -> None:
        try:
            self._body.close()
        except Exception:  # closing a broken connection may raise; the pool drops it either way
            log.debug("closing a part body failed", exc_info=True)


class OmicsBackend:
    """Typed, paced, retried access to the HealthOmics storage API through one boto3 client."""

    def __init__(self, client: Any, limits: BackendLimits, stats: Stats) -> None:
        self.client = client
        self.limits = limits
        self.stats = stats
        self._control = trio.CapacityLimiter(limits.control_threads)
        self._data = trio.CapacityLimiter(limits.data_streams)
        #: Held for a part fetch's whole life: each open body pins one pooled connection.
        self.data_streams = trio.Semaphore(limits.data_streams)
        self._metadata_bucket = TokenBucket(limits.metadata_tps)
        self._buckets = {
            "GetReadSet": TokenBucket(limits.get_read_set_tps),
            "GetReference": TokenBucket(limits.get_reference_tps),
            "UploadReadSetPart": TokenBucket(limits.upload_part_tps),
        }
        # burst 1: the quota is per second, so two calls within one second would be throttled.
        for operation in UPLOAD_CONTROL_OPERATIONS:
            self._buckets[operation] = TokenBucket(limits.upload_control_tps, burst=1)

    # -- plumbing -------------------------------------------------------------------------------

    async def _once(self, operation: str, call: Callable[[], T], limiter: trio.CapacityLimiter) -> T:
        bucket = self._buckets.get(operation, self._metadata_bucket)
        before = bucket.waits
        await bucket.acquire()
        self.stats.rate_limit_waits += bucket.waits - before
        self.stats.api_calls[operation] += 1
        try:
            return await trio.to_thread.run_sync(call, limiter=limiter)
        except Exception as exc:
            error = classify(operation, exc)
            self.stats.api_errors[f"{operation}:{error.code or type(error).__name__}"] += 1
            raise error from exc

    async def retrying(self, operation: str, attempt_once: Callable[[], Awaitable[T]]) -> T:
        """Runs ``attempt_once`` until it succeeds, fails for good, or the attempts run out."""
        policy = self.limits.retry
        for attempt in range(1, policy.attempts + 1):
            try:
                return await attempt_once()
            except BackendError as error:
                if not error.retryable or attempt == policy.attempts:
                    raise
                if error.code == "ThrottlingException" or "Throttl" in error.code:
                    self.stats.throttled += 1
                self.stats.retries[operation] += 1
                delay = policy.delay(attempt)
                log.debug("%s failed (%s); retry %d in %.2fs", operation, error, attempt, delay)
                await trio.sleep(delay)
        raise AssertionError("unreachable")

    async def _control_call(self, operation: str, method: str, **kwargs: Any) -> dict[str, Any]:
        function = getattr(self.client, method)

        async def once() -> dict[str, Any]:
            response: dict[str, Any] = await self._once(operation, partial(function, **kwargs), self._control)
            return response

        return await self.retrying(operation, once)

    async def _paginate(self, operation: str, method: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = await self._control_call(
                operation, method, maxResults=100, **kwargs, **({"nextToken": token} if token else {})
            )
            items.extend(page.get(key, []))
            token = page.get("nextToken")
            if not token:
                return items

    # -- stores ---------------------------------------------------------------------------------

    async def list_sequence_stores(self) -> list[StoreSummary]:
        raw = await self._paginate("ListSequenceStores", "list_sequence_stores", "sequenceStores")
        return [_store(item) for item in raw]

    async def list_reference_stores(self) -> list[StoreSummary]:
        raw = await self._paginate("ListReferenceStores", "list_reference_stores", "referenceStores")
        return [_store(item) for item in raw]

    async def get_sequence_store(self, store_id: str) -> StoreSummary:
        return _store(await self._control_call("GetSequenceStore", "get_sequence_store", id=store_id))

    async def get_reference_store(self, store_id: str) -> StoreSummary:
        return _store(await self._control_call("GetReferenceStore", "get_reference_store", id=store_id))

    # -- read sets and references -----------------------------------------------------------------

    async def list_read_sets(self, store_id: str) -> list[ReadSetSummary]:
        raw = await self._paginate("ListReadSets", "list_read_sets", "readSets", sequenceStoreId=store_id)
        return [_read_set(item, store_id) for item in raw]

    async def get_read_set_metadata(
        self, store_id: str, read_set_id: str
    ) -> tuple[ReadSetSummary, ObjectFiles]:
        raw = await self._control_call(
            "GetReadSetMetadata", "get_read_set_metadata", sequenceStoreId=store_id, id=read_set_id
        )
        summary = _read_set(raw, store_id)
        return summary, files_from_metadata(summary.validator, summary.status, raw.get("files", {}))

    async def list_references(self, store_id: str) -> list[ReferenceSummary]:
        raw = await self._paginate(
            "ListReferences", "list_references", "references", referenceStoreId=store_id
        )
        return [_reference(item, store_id) for item in raw]

    async def get_reference_metadata(
        self, store_id: str, reference_id: str
    ) -> tuple[ReferenceSummary, ObjectFiles]:
        raw = await self._control_call(
            "GetReferenceMetadata", "get_reference_metadata", referenceStoreId=store_id, id=reference_id
        )
        summary = _reference(raw, store_id)
        return summary, files_from_metadata(summary.validator, summary.status, raw.get("files", {}))

    # -- jobs -----------------------------------------------------------------------------------

    async def list_jobs(self, store_kind: str, store_id: str, kind: JobKind) -> list[JobSummary]:
        operation, method, key, id_arg = _JOB_LISTS[(store_kind, kind)]
        raw = await self._paginate(operation, method, key, **{id_arg: store_id})
        return [
            JobSummary(
                id=item["id"],
                store_id=store_id,
                kind=kind,
                status=item.get("status", ""),
                creation_time=epoch(item.get("creationTime")),
                completion_time=epoch(item.get("completionTime")),
            )
            for item in raw
        ]

    async def get_job(self, store_kind: str, store_id: str, kind: JobKind, job_id: str) -> dict[str, Any]:
        operation, method, id_arg = _JOB_GETS[(store_kind, kind)]
        raw = await self._control_call(operation, method, **{id_arg: store_id, "id": job_id})
        raw.pop("ResponseMetadata", None)
        return raw

    # -- data -----------------------------------------------------------------------------------

    async def open_part(self, source: PartSource, part_number: int) -> PartStream:
        """One attempt at opening a part body (the caller retries: it resumes mid-part)."""
        if source.kind == "readSet":
            call = partial(
                self.client.get_read_set,
                sequenceStoreId=source.store_id,
                id=source.object_id,
                file=source.file.upper(),
                partNumber=part_number,
            )
        else:
            call = partial(
                self.client.get_reference,
                referenceStoreId=source.store_id,
                id=source.object_id,
                file=source.file.upper(),
                partNumber=part_number,
            )
        response: dict[str, Any] = await self._once(source.operation, call, self._data)
        body = response.get("payload")
        if body is None:
            raise TransportFailure(source.operation, "response without a body")
        return PartStream(body, self, source.operation)

    # -- uploads --------------------------------------------------------------------------------

    async def create_upload(self, store_id: str, fields: dict[str, Any]) -> str:
        response = await self._control_call(
            "CreateMultipartReadSetUpload", "create_multipart_read_set_upload",
            sequenceStoreId=store_id, **fields,
        )  # fmt: skip
        return str(_require(response, "uploadId", "CreateMultipartReadSetUpload")["uploadId"])

    async def upload_part(
        self, store_id: str, upload_id: str, source: str, number: int, payload: bytes
    ) -> str:
        """Uploads one part (retried: re-uploading a part number replaces it); returns its checksum."""
        call = partial(
            self.client.upload_read_set_part, sequenceStoreId=store_id, uploadId=upload_id,
            partSource=source, partNumber=number, payload=payload,
        )  # fmt: skip

        async def once() -> dict[str, Any]:
            response: dict[str, Any] = await self._once("UploadReadSetPart", call, self._data)
            return _require(response, "checksum", "UploadReadSetPart")

        response = await self.retrying("UploadReadSetPart", once)
        self.stats.bytes_uploaded += len(payload)
        return str(response["checksum"])

    async def complete_upload(self, store_id: str, upload_id: str, parts: list[dict[str, Any]]) -> str:
        response = await self._control_call(
            "CompleteMultipartReadSetUpload", "complete_multipart_read_set_upload",
            sequenceStoreId=store_id, uploadId=upload_id, parts=parts,
        )  # fmt: skip
        return str(_require(response, "readSetId", "CompleteMultipartReadSetUpload")["readSetId"])

    async def abort_upload(self, store_id: str, upload_id: str) -> None:
        await self._control_call(
            "AbortMultipartReadSetUpload", "abort_multipart_read_set_upload",
            sequenceStoreId=store_id, uploadId=upload_id,
        )  # fmt: skip

    async def list_uploads(self, store_id: str) -> list[dict[str, Any]]:
        return await self._paginate(
            "ListMultipartReadSetUploads", "list_multipart_read_set_uploads", "uploads",
            sequenceStoreId=store_id,
        )  # fmt: skip

    async def delete_read_set(self, store_id: str, read_set_id: str) -> None:
        """BatchDeleteReadSet of one read set; its per-item error (if any) is raised."""
        response = await self._control_call(
            "BatchDeleteReadSet", "batch_delete_read_set", sequenceStoreId=store_id, ids=[read_set_id]
        )
        for item in response.get("errors") or []:
            raise classify_item("BatchDeleteReadSet", item)

    async def probe(self) -> None:
        """One cheap call that proves the endpoint answers and the credentials are accepted."""
        await self._once(
            "ListSequenceStores", partial(self.client.list_sequence_stores, maxResults=1), self._control
        )


_JOB_LISTS: dict[tuple[str, str], tuple[str, str, str, str]] = {
    ("sequence", "import"): (
        "ListReadSetImportJobs", "list_read_set_import_jobs", "importJobs", "sequenceStoreId"),
    ("sequence", "export"): (
        "ListReadSetExportJobs", "list_read_set_export_jobs", "exportJobs", "sequenceStoreId"),
    ("sequence", "activation"): (
        "ListReadSetActivationJobs", "list_read_set_activation_jobs", "activationJobs", "sequenceStoreId"),
    ("reference", "import"): (
        "ListReferenceImportJobs", "list_reference_import_jobs", "importJobs", "referenceStoreId"),
}  # fmt: skip

_JOB_GETS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("sequence", "import"): ("GetReadSetImportJob", "get_read_set_import_job", "sequenceStoreId"),
    ("sequence", "export"): ("GetReadSetExportJob", "get_read_set_export_job", "sequenceStoreId"),
    ("sequence", "activation"): (
        "GetReadSetActivationJob", "get_read_set_activation_job", "sequenceStoreId"),
    ("reference", "import"): ("GetReferenceImportJob", "get_reference_import_job", "referenceStoreId"),
}  # fmt: skip


def _require(response: dict[str, Any], key: str, operation: str) -> dict[str, Any]:
    """botocore parses a 200 whose body was cut off as an empty answer, not as an error: a
    connection lost after the headers must be retried, not read as a reply without its field."""
    if key not in response:
        raise TransportFailure(operation, f"the answer has no {key} (connection lost mid-body?)")
    return response


def _store(item: dict[str, Any]) -> StoreSummary:
    return StoreSummary(
        id=item["id"],
        arn=item.get("arn", ""),
        name=item.get("name", "") or item["id"],
        creation_time=epoch(item.get("creationTime")),
        description=item.get("description", ""),
    )


def _read_set(item: dict[str, Any], store_id: str) -> ReadSetSummary:
    etag = item.get("etag") or {}
    return ReadSetSummary(
        id=item["id"],
        store_id=store_id,
        arn=item.get("arn", ""),
        name=item.get("name", "") or item["id"],
        status=item.get("status", ""),
        file_type=item.get("fileType", ""),
        sample_id=item.get("sampleId", ""),
        subject_id=item.get("subjectId", ""),
        creation_time=epoch(item.get("creationTime")),
        reference_arn=item.get("referenceArn", ""),
        description=item.get("description", ""),
        status_message=item.get("statusMessage", ""),
        etag_algorithm=etag.get("algorithm", ""),
        etag_source1=etag.get("source1", ""),
        etag_source2=etag.get("source2", ""),
        sequence_information=dict(item.get("sequenceInformation") or {}),
    )


def _reference(item: dict[str, Any], store_id: str) -> ReferenceSummary:
    return ReferenceSummary(
        id=item["id"],
        store_id=store_id,
        arn=item.get("arn", ""),
        name=item.get("name", "") or item["id"],
        status=item.get("status", ""),
        md5=item.get("md5", ""),
        creation_time=epoch(item.get("creationTime")),
        description=item.get("description", ""),
    )
