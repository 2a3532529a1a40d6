"""The only code that talks to HealthOmics: boto3 calls on worker threads, paced and retried.

Every call goes through ``trio.to_thread.run_sync`` with a capacity limiter, so blocking boto3 code
never runs on the trio thread. Control-plane calls (lists, metadata, jobs) and data-plane part
fetches have separate limiters and separate connection budgets, so an ``ls -l`` never waits behind
a queue of 100 MiB part downloads (docs/architecture.md, "Talking to HealthOmics"). Each API class
has a token bucket at the service's published quota, and every call shares one retry policy.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from omicsfs.backend import retry
from omicsfs.backend.errors import (
    AmbiguousOutcome,
    ServiceFailure,
    TransportFailure,
    classify,
    classify_item,
)
from omicsfs.backend.interface import PartProgress
from omicsfs.backend.models import (
    FileLayout,
    JobKind,
    JobSummary,
    ObjectFiles,
    ObjectKind,
    PartSource,
    ReadSetSummary,
    ReferenceSummary,
    StoreKind,
    StoreSummary,
    UploadSummary,
    epoch,
)
from omicsfs.backend.ratelimit import TokenBucket
from omicsfs.backend.stats import BackendStats
from omicsfs.config import BackendLimits

if TYPE_CHECKING:
    from botocore.response import StreamingBody
    from types_boto3_omics.client import OmicsClient

log = logging.getLogger(__name__)

T = TypeVar("T")

UPLOAD_CONTROL_OPERATIONS = (
    "CreateMultipartReadSetUpload", "CompleteMultipartReadSetUpload", "AbortMultipartReadSetUpload",
)  # fmt: skip

#: Raw answers are read through this view: botocore's TypedDicts are exact about keys that the
#: service may omit, so conversions read with ``.get`` and defaults.
Raw = Mapping[str, Any]


class BotoPartBody:
    """An open part body, received straight into the caller's memory.

    botocore's StreamingBody wraps urllib3's response, whose ``readinto`` reads into a fresh
    ``bytes`` and copies it. The http.client response underneath (``_fp``) reads into the
    caller's buffer directly (socket ``recv_into``), which is what the receive path is built on
    (docs/architecture.md, "Memory"); where that internal is missing, ``read`` and a copy are used.
    Either way the connection goes back to botocore's pool once the body is fully read.
    """

    def __init__(self, body: StreamingBody, operation: str) -> None:
        self._body = body
        self._operation = operation
        raw = getattr(body, "_raw_stream", None)
        fp = getattr(raw, "_fp", None)
        self._raw = raw
        self._direct: Callable[[memoryview], int] | None = getattr(fp, "readinto", None)
        self._done = False

    def readinto(self, memory: memoryview) -> int:
        try:
            if self._direct is not None:
                count = self._direct(memory) or 0
            else:
                chunk = self._body.read(len(memory))
                count = len(chunk)
                memory[:count] = chunk
        except Exception as exc:
            raise classify(self._operation, exc) from exc
        if count == 0:
            self._done = True
        return count

    def close(self) -> None:
        try:
            if self._done and self._raw is not None and hasattr(self._raw, "release_conn"):
                self._raw.release_conn()  # fully read: the connection can serve the next part
            else:
                self._body.close()  # a body left mid-way: its connection cannot be reused
        except Exception:  # closing a broken connection may raise; the pool drops it either way
            log.debug("closing a part body failed", exc_info=True)


class CountingPayload(io.BytesIO):
    """A part body botocore reads in chunks as it sends them; each read moves ``progress.sent``,
    so a progress view counts bytes as they leave rather than a whole part at its end. Retries
    make a fresh one: ``sent`` starts again at 0 with the attempt."""

    def __init__(self, data: bytes, progress: PartProgress) -> None:
        super().__init__(data)
        self._progress = progress
        progress.sent = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self._progress.sent = self.tell()
        return chunk


class OmicsBackend:
    """Typed, paced, retried access to the HealthOmics storage API through one boto3 client."""

    def __init__(self, client: OmicsClient, limits: BackendLimits, stats: BackendStats) -> None:
        self.client = client
        self.limits = limits
        self.stats = stats
        self._control_limiter = trio.CapacityLimiter(limits.control_threads)
        self._data_limiter = trio.CapacityLimiter(limits.data_streams)
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
        if await bucket.acquire():
            self.stats.rate_limit_waits += 1
        self.stats.api_calls[operation] += 1
        try:
            return await trio.to_thread.run_sync(call, limiter=limiter)
        except Exception as exc:
            error = classify(operation, exc)
            self.stats.api_errors[f"{operation}:{error.code or type(error).__name__}"] += 1
            raise error from exc

    async def retrying(self, operation: str, attempt_once: Callable[[], Awaitable[T]]) -> T:
        return await retry.retrying(self.limits.retry, self.stats, operation, attempt_once)

    async def _control(self, operation: str, call: Callable[[], Any]) -> Raw:
        """One control-plane call, paced and retried; the answer as a plain mapping."""

        async def once() -> Raw:
            response: Raw = await self._once(operation, call, self._control_limiter)
            return response

        return await self.retrying(operation, once)

    async def _paginate(
        self, operation: str, method: Callable[..., Any], key: str, **kwargs: Any
    ) -> list[Raw]:
        items: list[Raw] = []
        token: str | None = None
        while True:
            page_args = {"maxResults": 100, **kwargs, **({"nextToken": token} if token else {})}
            page = await self._control(operation, partial(method, **page_args))
            items.extend(page.get(key, []))
            token = page.get("nextToken")
            if not token:
                return items

    # -- stores ---------------------------------------------------------------------------------

    async def list_stores(self, kind: StoreKind) -> list[StoreSummary]:
        if kind is StoreKind.SEQUENCE:
            raw = await self._paginate(
                "ListSequenceStores", self.client.list_sequence_stores, "sequenceStores"
            )
        else:
            raw = await self._paginate(
                "ListReferenceStores", self.client.list_reference_stores, "referenceStores"
            )
        return [_store(item) for item in raw]

    async def get_store(self, kind: StoreKind, store_id: str) -> StoreSummary:
        if kind is StoreKind.SEQUENCE:
            raw = await self._control(
                "GetSequenceStore", partial(self.client.get_sequence_store, id=store_id)
            )
        else:
            raw = await self._control(
                "GetReferenceStore", partial(self.client.get_reference_store, id=store_id)
            )
        return _store(raw)

    async def probe(self) -> None:
        """One cheap, retried call that proves the endpoint answers and the credentials work."""
        await self._control("ListSequenceStores", partial(self.client.list_sequence_stores, maxResults=1))

    # -- read sets and references -----------------------------------------------------------------

    async def list_read_sets(self, store_id: str) -> list[ReadSetSummary]:
        raw = await self._paginate(
            "ListReadSets", self.client.list_read_sets, "readSets", sequenceStoreId=store_id
        )
        return [_read_set(item, store_id) for item in raw]

    async def get_read_set_metadata(
        self, store_id: str, read_set_id: str
    ) -> tuple[ReadSetSummary, ObjectFiles]:
        raw = await self._control(
            "GetReadSetMetadata",
            partial(self.client.get_read_set_metadata, sequenceStoreId=store_id, id=read_set_id),
        )
        summary = _read_set(raw, store_id)
        return summary, _files(summary.validator, summary.status, raw.get("files") or {})

    async def list_references(self, store_id: str) -> list[ReferenceSummary]:
        raw = await self._paginate(
            "ListReferences", self.client.list_references, "references", referenceStoreId=store_id
        )
        return [_reference(item, store_id) for item in raw]

    async def get_reference_metadata(
        self, store_id: str, reference_id: str
    ) -> tuple[ReferenceSummary, ObjectFiles]:
        raw = await self._control(
            "GetReferenceMetadata",
            partial(self.client.get_reference_metadata, referenceStoreId=store_id, id=reference_id),
        )
        summary = _reference(raw, store_id)
        return summary, _files(summary.validator, summary.status, raw.get("files") or {})

    # -- jobs -----------------------------------------------------------------------------------

    async def list_jobs(self, store_kind: StoreKind, store_id: str, kind: JobKind) -> list[JobSummary]:
        client = self.client
        if store_kind is StoreKind.REFERENCE:
            raw = await self._paginate(
                "ListReferenceImportJobs", client.list_reference_import_jobs, "importJobs",
                referenceStoreId=store_id,
            )  # fmt: skip
        elif kind is JobKind.IMPORT:
            raw = await self._paginate(
                "ListReadSetImportJobs",
                client.list_read_set_import_jobs,
                "importJobs",
                sequenceStoreId=store_id,
            )
        elif kind is JobKind.EXPORT:
            raw = await self._paginate(
                "ListReadSetExportJobs",
                client.list_read_set_export_jobs,
                "exportJobs",
                sequenceStoreId=store_id,
            )
        else:
            raw = await self._paginate(
                "ListReadSetActivationJobs", client.list_read_set_activation_jobs, "activationJobs",
                sequenceStoreId=store_id,
            )  # fmt: skip
        return [
            JobSummary(
                id=item["id"],
                store_id=store_id,
                kind=kind,
                status=item.get("status", ""),
                creation_time=epoch(item.get("creationTime")),
            )
            for item in raw
        ]

    async def get_job(
        self, store_kind: StoreKind, store_id: str, kind: JobKind, job_id: str
    ) -> dict[str, Any]:
        client = self.client
        call: Callable[[], Any]
        if store_kind is StoreKind.REFERENCE:
            operation = "GetReferenceImportJob"
            call = partial(client.get_reference_import_job, referenceStoreId=store_id, id=job_id)
        elif kind is JobKind.IMPORT:
            operation = "GetReadSetImportJob"
            call = partial(client.get_read_set_import_job, sequenceStoreId=store_id, id=job_id)
        elif kind is JobKind.EXPORT:
            operation = "GetReadSetExportJob"
            call = partial(client.get_read_set_export_job, sequenceStoreId=store_id, id=job_id)
        else:
            operation = "GetReadSetActivationJob"
            call = partial(client.get_read_set_activation_job, sequenceStoreId=store_id, id=job_id)
        raw = dict(await self._control(operation, call))
        raw.pop("ResponseMetadata", None)
        return raw

    # -- data -----------------------------------------------------------------------------------

    async def open_part(self, source: PartSource, part_number: int) -> BotoPartBody:
        """One attempt at opening a part body (the caller retries: it resumes mid-part)."""
        call: Callable[[], Any]
        if source.kind is ObjectKind.READ_SET:
            call = partial(
                self.client.get_read_set, sequenceStoreId=source.store_id, id=source.object_id,
                file=source.file.upper(), partNumber=part_number,  # type: ignore[arg-type]
            )  # fmt: skip
        else:
            call = partial(
                self.client.get_reference, referenceStoreId=source.store_id, id=source.object_id,
                file=source.file.upper(), partNumber=part_number,  # type: ignore[arg-type]
            )  # fmt: skip
        response: Raw = await self._once(source.operation, call, self._data_limiter)
        body = response.get("payload")
        if body is None:
            raise TransportFailure(source.operation, "response without a body")
        return BotoPartBody(body, source.operation)

    # -- uploads --------------------------------------------------------------------------------

    async def create_upload(self, store_id: str, fields: dict[str, Any]) -> str:
        operation = "CreateMultipartReadSetUpload"
        call = partial(self.client.create_multipart_read_set_upload, sequenceStoreId=store_id, **fields)
        return str(_require(await self._control(operation, call), "uploadId", operation))

    async def upload_part(
        self, store_id: str, upload_id: str, source: str, number: int, payload: bytes,
        progress: PartProgress | None = None,
    ) -> str:  # fmt: skip
        """Uploads one part (retried: re-uploading a part number replaces it); returns its checksum."""
        operation = "UploadReadSetPart"
        counter = progress if progress is not None else PartProgress()

        async def once() -> str:
            call = partial(
                self.client.upload_read_set_part, sequenceStoreId=store_id, uploadId=upload_id,
                partSource=source, partNumber=number,  # type: ignore[arg-type]
                payload=CountingPayload(payload, counter),
            )  # fmt: skip
            response: Raw = await self._once(operation, call, self._data_limiter)
            return str(_require(response, "checksum", operation))

        checksum = await self.retrying(operation, once)
        counter.sent = len(payload)
        self.stats.bytes_uploaded += len(payload)
        return checksum

    async def complete_upload(self, store_id: str, upload_id: str, parts: list[dict[str, Any]]) -> str:
        """One Complete: a lost answer or a 5xx may hide a read set that was made, so those are
        AmbiguousOutcome (not retried here); throttling is retried, the service did nothing."""
        operation = "CompleteMultipartReadSetUpload"
        call = partial(
            self.client.complete_multipart_read_set_upload, sequenceStoreId=store_id, uploadId=upload_id,
            parts=parts,  # type: ignore[arg-type]
        )  # fmt: skip

        async def once() -> str:
            try:
                response: Raw = await self._once(operation, call, self._control_limiter)
                return str(_require(response, "readSetId", operation))
            except (TransportFailure, ServiceFailure) as error:
                raise AmbiguousOutcome(operation, error.message, error.code, error.request_id) from error

        return await self.retrying(operation, once)

    async def find_read_sets(self, store_id: str, name: str) -> list[ReadSetSummary]:
        raw = await self._paginate(
            "ListReadSets", self.client.list_read_sets, "readSets", sequenceStoreId=store_id,
            filter={"name": name},
        )  # fmt: skip
        return [_read_set(item, store_id) for item in raw]

    async def list_tags(self, arn: str) -> dict[str, str]:
        raw = await self._control(
            "ListTagsForResource", partial(self.client.list_tags_for_resource, resourceArn=arn)
        )
        return {str(key): str(value) for key, value in (raw.get("tags") or {}).items()}

    async def abort_upload(self, store_id: str, upload_id: str) -> None:
        call = partial(
            self.client.abort_multipart_read_set_upload, sequenceStoreId=store_id, uploadId=upload_id
        )
        await self._control("AbortMultipartReadSetUpload", call)

    async def list_uploads(self, store_id: str) -> list[UploadSummary]:
        raw = await self._paginate(
            "ListMultipartReadSetUploads", self.client.list_multipart_read_set_uploads, "uploads",
            sequenceStoreId=store_id,
        )  # fmt: skip
        return [
            UploadSummary(
                upload_id=item["uploadId"], name=item.get("name", ""), tags=dict(item.get("tags") or {})
            )
            for item in raw
        ]

    async def delete_read_set(self, store_id: str, read_set_id: str) -> None:
        """BatchDeleteReadSet of one read set; its per-item error (if any) is raised."""
        operation = "BatchDeleteReadSet"
        call = partial(self.client.batch_delete_read_set, sequenceStoreId=store_id, ids=[read_set_id])
        response = await self._control(operation, call)
        for item in response.get("errors") or []:
            raise classify_item(operation, item)


def _require(response: Raw, key: str, operation: str) -> Any:
    """botocore parses a 200 whose body was cut off as an empty answer, not as an error: a
    connection lost after the headers must be retried, not read as a reply without its field."""
    if key not in response:
        raise TransportFailure(operation, f"the answer has no {key} (connection lost mid-body?)")
    return response[key]


def _store(item: Raw) -> StoreSummary:
    return StoreSummary(
        id=item["id"],
        arn=item.get("arn", ""),
        name=item.get("name", "") or item["id"],
        creation_time=epoch(item.get("creationTime")),
        description=item.get("description", ""),
        s3_uri=(item.get("s3Access") or {}).get("s3Uri", ""),
    )


def _read_set(item: Raw, store_id: str) -> ReadSetSummary:
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


def _reference(item: Raw, store_id: str) -> ReferenceSummary:
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


def _files(validator: str, status: str, raw_files: Raw) -> ObjectFiles:
    """Picks partSize/totalParts/contentLength out of a metadata response's ``files``."""
    files = {
        name: FileLayout(
            content_length=int(info["contentLength"]),
            part_size=int(info["partSize"]),
            total_parts=int(info["totalParts"]),
            s3_uri=(info.get("s3Access") or {}).get("s3Uri", ""),
        )
        for name, info in raw_files.items()
        if info and "contentLength" in info
    }
    return ObjectFiles(validator=validator, status=status, files=files)
