"""An in-memory HealthOmics for the unit tier: the Backend protocol with state, counters and hooks.

The filesystem runs on it in-process under trio's MockClock, so every pure-logic module is
tested in milliseconds: listings and metadata, part bodies (chunked, held, cut mid-body), uploads
and deletion. It is not a second implementation of the service: it knows only what the
filesystem asks (omicsfs/backend/interface.py), and the real tier (tests/service, tests/mount)
remains the proof against the real protocol.

Hooks:
- ``fail(operation, error, times=1)``: the next ``times`` calls of an operation raise ``error``;
- ``cut_bodies(times, after)``: part bodies end with a TransportFailure after ``after`` bytes;
- ``hold_bodies()``: every part body stops after its first chunk until the gate is released;
- ``drop(operation, times=1)``: the next ``times`` calls take effect, then their answer is lost
  (AmbiguousOutcome for Complete, TransportFailure otherwise), like the service's ``drop`` fault;
- ``hold_parts()``: UploadReadSetPart waits at a gate (its body half read) until it is released;
  ``part_seconds`` / ``create_seconds`` make every part / Create take that long (mock clock);
- ``calls``: how often each operation was called (successful or not).
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import trio

from omicsfs.backend import retry
from omicsfs.backend.errors import AmbiguousOutcome, BackendError, NotActive, NotFound, TransportFailure
from omicsfs.backend.interface import PartProgress
from omicsfs.backend.models import (
    FileLayout,
    FileType,
    JobKind,
    JobSummary,
    ObjectFiles,
    PartSource,
    ReadSetSummary,
    ReferenceSummary,
    Status,
    StoredFile,
    StoreKind,
    StoreSummary,
    Summary,
    UploadSummary,
)
from omicsfs.backend.stats import BackendStats
from omicsfs.config import RetryPolicy

T = TypeVar("T")

#: The fake access point alias every store's objects live under.
S3_BUCKET = "fake-alias-s3alias"
#: Retries in the unit tier: few and short (the clock is fake anyway).
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.1)


def _md5(data: bytes | None) -> str:
    return "" if data is None else hashlib.md5(data).hexdigest()


@dataclass
class StoredObject:
    summary: Summary
    files: dict[str, bytes]
    part_size: int

    def layout(self, name: str) -> FileLayout:
        size = len(self.files[name])
        return FileLayout(size, self.part_size, max(1, -(-size // self.part_size)), self.s3_uri(name))

    def s3_uri(self, name: str) -> str:
        """The object behind the store's access point (read sets only, as on AWS)."""
        summary = self.summary
        if not isinstance(summary, ReadSetSummary):
            return ""
        if summary.file_type == FileType.FASTQ:
            object_name = f"{summary.name}_{name}.fastq.gz"
        else:
            extension = ".cram" if summary.file_type == FileType.CRAM else ".bam"
            object_name = summary.name + extension + (".crai" if extension == ".cram" else ".bai") * (
                name == StoredFile.INDEX
            )
        return f"s3://{S3_BUCKET}/{summary.store_id}/readSet/{summary.id}/{object_name}"

    def object_files(self) -> ObjectFiles:
        # A read set whose upload is still processing (or failed) has no files yet.
        unprocessed = self.summary.status in (Status.PROCESSING_UPLOAD, Status.UPLOAD_FAILED)
        layouts = {} if unprocessed else {name: self.layout(name) for name in self.files}
        return ObjectFiles(self.summary.validator, self.summary.status, layouts)


@dataclass
class Upload:
    store_id: str
    fields: dict[str, Any]
    parts: dict[tuple[str, int], bytes] = field(default_factory=dict)


class Gate:
    """Held part bodies wait here after their first chunk until ``release``. Bodies are read on
    the block cache's worker threads, so the gate is a thread-safe event."""

    def __init__(self) -> None:
        self.released = threading.Event()
        #: Set once a body is waiting at the gate (tests wait for it with trio.to_thread).
        self.reached = threading.Event()
        self._lock = threading.Lock()
        self.waiting = 0

    def wait(self) -> None:
        with self._lock:
            self.waiting += 1
        self.reached.set()
        self.released.wait()

    def release(self) -> None:
        self.released.set()


class PartGate:
    """Held part uploads wait here (on the trio thread, like the backend's calls) until ``release``."""

    def __init__(self) -> None:
        self.released = trio.Event()
        self.waiting = 0

    def release(self) -> None:
        self.released.set()


class FakePartBody:
    """A part body, read with ``readinto`` on a worker thread, in chunks of ``chunk`` bytes."""

    def __init__(self, backend: FakeBackend, data: bytes, chunk: int, cut_after: int | None) -> None:
        self._backend = backend
        self._data = data
        self._chunk = chunk
        self._cut_after = cut_after
        self._offset = 0
        self.closed = False
        #: Whether a read saw the end (returned 0): what lets a real body reuse its connection.
        self.drained_before_close = False
        self.on_close: Callable[[], object] | None = None

    def readinto(self, memory: memoryview) -> int:
        gate = self._backend.gate
        if gate is not None and self._offset > 0 and not gate.released.is_set():
            gate.wait()
        if self._cut_after is not None and self._offset >= self._cut_after:
            raise TransportFailure("GetReadSet", "connection reset mid-body (fake)")
        end = min(self._offset + self._chunk, self._offset + len(memory), len(self._data))
        if self._cut_after is not None:
            end = min(end, self._cut_after)
        count = end - self._offset
        memory[:count] = self._data[self._offset : end]
        self._offset = end
        if not count and len(memory) and not self.closed:
            self.drained_before_close = True
        return count

    def close(self) -> None:
        self.closed = True
        if self.on_close is not None:
            self.on_close()


class FakeBackend:
    def __init__(
        self, *, part_size: int = 64 << 10, chunk: int = 16 << 10, retry_policy: RetryPolicy = FAST_RETRY
    ):
        self.part_size = part_size
        self.chunk = chunk
        self.retry_policy = retry_policy
        self.stats = BackendStats()
        self.data_streams = trio.Semaphore(16)
        self.calls: Counter[str] = Counter()
        self.stores: dict[StoreKind, dict[str, StoreSummary]] = {
            StoreKind.SEQUENCE: {},
            StoreKind.REFERENCE: {},
        }
        self.objects: dict[str, dict[str, StoredObject]] = {}  # store ID -> object ID -> object
        self.jobs: dict[tuple[str, JobKind], list[JobSummary]] = {}
        self.uploads: dict[str, Upload] = {}
        self.gate: Gate | None = None
        self.part_gate: PartGate | None = None
        self.part_seconds = 0.0
        self.create_seconds = 0.0
        self.tags: dict[str, dict[str, str]] = {}  # ARN -> tags
        self._drops: Counter[str] = Counter()
        self._failures: list[tuple[str, Callable[[], BackendError], int]] = []
        self._cuts = 0
        self._cut_after = 0
        self._ids = itertools.count(1000000001)
        self._clock = itertools.count(1_700_000_000)

    # -- building state -------------------------------------------------------------------------

    def _id(self) -> str:
        return str(next(self._ids))

    def add_store(self, kind: StoreKind, name: str) -> StoreSummary:
        store_id = self._id()
        store = StoreSummary(
            store_id,
            f"arn:aws:omics:us-east-1:123456789012:{kind}Store/{store_id}",
            name,
            float(next(self._clock)),
            s3_uri=f"s3://{S3_BUCKET}/{store_id}/" if kind is StoreKind.SEQUENCE else "",
        )
        self.stores[kind][store_id] = store
        self.objects[store_id] = {}
        return store

    def add_read_set(
        self,
        store_id: str,
        name: str,
        files: dict[str, bytes],
        *,
        file_type: FileType = FileType.BAM,
        status: str = Status.ACTIVE,
        sample_id: str = "sample",
        subject_id: str = "subject",
    ) -> ReadSetSummary:
        read_set_id = self._id()
        summary = ReadSetSummary(
            id=read_set_id,
            store_id=store_id,
            arn=f"arn:aws:omics:us-east-1:123456789012:sequenceStore/{store_id}/readSet/{read_set_id}",
            name=name,
            status=status,
            file_type=file_type,
            sample_id=sample_id,
            subject_id=subject_id,
            creation_time=float(next(self._clock)),
            etag_source1=hashlib.md5(files.get(StoredFile.SOURCE1, b"")).hexdigest(),
            etag_source2=hashlib.md5(files[StoredFile.SOURCE2]).hexdigest()
            if StoredFile.SOURCE2 in files
            else "",
        )
        self.objects[store_id][read_set_id] = StoredObject(summary, dict(files), self.part_size)
        return summary

    def add_reference(self, store_id: str, name: str, fasta: bytes, fai: bytes) -> ReferenceSummary:
        reference_id = self._id()
        summary = ReferenceSummary(
            id=reference_id,
            store_id=store_id,
            arn=f"arn:aws:omics:us-east-1:123456789012:referenceStore/{store_id}/reference/{reference_id}",
            name=name,
            status=Status.ACTIVE,
            md5=hashlib.md5(fasta).hexdigest(),
            creation_time=float(next(self._clock)),
        )
        files: dict[str, bytes] = {StoredFile.SOURCE: fasta, StoredFile.INDEX: fai}
        self.objects[store_id][reference_id] = StoredObject(summary, files, self.part_size)
        return summary

    def set_status(self, store_id: str, object_id: str, status: str) -> None:
        stored = self.objects[store_id][object_id]
        stored.summary = replace(stored.summary, status=status)

    # -- hooks ----------------------------------------------------------------------------------

    def fail(self, operation: str, error: Callable[[], BackendError], times: int = 1) -> None:
        self._failures.append((operation, error, times))

    def cut_bodies(self, times: int, after: int) -> None:
        self._cuts, self._cut_after = times, after

    def hold_bodies(self) -> Gate:
        self.gate = Gate()
        return self.gate

    def hold_parts(self) -> PartGate:
        self.part_gate = PartGate()
        return self.part_gate

    def drop(self, operation: str, times: int = 1) -> None:
        self._drops[operation] += times

    def _dropped(self, operation: str) -> bool:
        if self._drops[operation] > 0:
            self._drops[operation] -= 1
            return True
        return False

    async def _call(self, operation: str) -> None:
        await trio.lowlevel.checkpoint()
        self.calls[operation] += 1
        self.stats.api_calls[operation] += 1
        for index, (name, error, times) in enumerate(self._failures):
            if name == operation and times > 0:
                self._failures[index] = (name, error, times - 1)
                raised = error()
                self.stats.api_errors[f"{operation}:{raised.code or type(raised).__name__}"] += 1
                raise raised

    def _object(self, store_id: str, object_id: str, operation: str) -> StoredObject:
        stored = self.objects.get(store_id, {}).get(object_id)
        if stored is None:
            raise NotFound(operation, f"{object_id} not found", "ResourceNotFoundException")
        return stored

    # -- the Backend protocol -------------------------------------------------------------------

    async def retrying(self, operation: str, attempt_once: Callable[[], Awaitable[T]]) -> T:
        return await retry.retrying(self.retry_policy, self.stats, operation, attempt_once)

    async def _retried(self, operation: str, body: Callable[[], T]) -> T:
        async def once() -> T:
            await self._call(operation)
            return body()

        return await self.retrying(operation, once)

    async def list_stores(self, kind: StoreKind) -> list[StoreSummary]:
        name = "ListSequenceStores" if kind is StoreKind.SEQUENCE else "ListReferenceStores"
        return await self._retried(name, lambda: list(self.stores[kind].values()))

    async def get_store(self, kind: StoreKind, store_id: str) -> StoreSummary:
        def get() -> StoreSummary:
            if store_id not in self.stores[kind]:
                raise NotFound("GetStore", f"store {store_id} not found", "ResourceNotFoundException")
            return self.stores[kind][store_id]

        return await self._retried(
            "GetSequenceStore" if kind is StoreKind.SEQUENCE else "GetReferenceStore", get
        )

    def _summaries(self, store_id: str, cls: type[T]) -> list[T]:
        return [o.summary for o in self.objects.get(store_id, {}).values() if isinstance(o.summary, cls)]

    async def list_read_sets(self, store_id: str) -> list[ReadSetSummary]:
        return await self._retried("ListReadSets", lambda: self._summaries(store_id, ReadSetSummary))

    async def list_references(self, store_id: str) -> list[ReferenceSummary]:
        return await self._retried("ListReferences", lambda: self._summaries(store_id, ReferenceSummary))

    async def get_read_set_metadata(
        self, store_id: str, read_set_id: str
    ) -> tuple[ReadSetSummary, ObjectFiles]:
        def get() -> tuple[ReadSetSummary, ObjectFiles]:
            stored = self._object(store_id, read_set_id, "GetReadSetMetadata")
            assert isinstance(stored.summary, ReadSetSummary)
            return stored.summary, stored.object_files()

        return await self._retried("GetReadSetMetadata", get)

    async def get_reference_metadata(
        self, store_id: str, reference_id: str
    ) -> tuple[ReferenceSummary, ObjectFiles]:
        def get() -> tuple[ReferenceSummary, ObjectFiles]:
            stored = self._object(store_id, reference_id, "GetReferenceMetadata")
            assert isinstance(stored.summary, ReferenceSummary)
            return stored.summary, stored.object_files()

        return await self._retried("GetReferenceMetadata", get)

    async def list_jobs(self, store_kind: StoreKind, store_id: str, kind: JobKind) -> list[JobSummary]:
        return await self._retried(f"List{kind}Jobs", lambda: list(self.jobs.get((store_id, kind), [])))

    async def get_job(
        self, store_kind: StoreKind, store_id: str, kind: JobKind, job_id: str
    ) -> dict[str, Any]:
        def get() -> dict[str, Any]:
            for job in self.jobs.get((store_id, kind), []):
                if job.id == job_id:
                    return {"id": job.id, "status": job.status, "sequenceStoreId": store_id}
            raise NotFound("GetJob", f"job {job_id} not found", "ResourceNotFoundException")

        return await self._retried(f"Get{kind}Job", get)

    async def open_part(self, source: PartSource, part_number: int) -> FakePartBody:
        await self._call(source.operation)
        stored = self._object(source.store_id, source.object_id, source.operation)
        if stored.summary.status != Status.ACTIVE:
            raise NotActive(
                source.operation, f"{source.object_id} is {stored.summary.status}", "ConflictException"
            )
        data = stored.files[source.file]
        start = (part_number - 1) * stored.part_size
        body = data[start : start + stored.part_size]
        cut: int | None = None
        if self._cuts > 0:
            self._cuts -= 1
            cut = self._cut_after
        return FakePartBody(self, body, self.chunk, cut)

    async def create_upload(self, store_id: str, fields: dict[str, Any]) -> str:
        upload_id = self._id()
        if self.create_seconds:
            await trio.sleep(self.create_seconds)  # the service's pacing of Create, say
        return await self._retried(
            "CreateMultipartReadSetUpload", lambda: self._create(upload_id, store_id, fields)
        )

    def _create(self, upload_id: str, store_id: str, fields: dict[str, Any]) -> str:
        self.uploads[upload_id] = Upload(store_id, dict(fields))
        return upload_id

    async def upload_part(
        self, store_id: str, upload_id: str, source: str, number: int, payload: bytes,
        progress: PartProgress | None = None,
    ) -> str:  # fmt: skip
        counter = progress if progress is not None else PartProgress()

        async def once() -> str:
            await self._call("UploadReadSetPart")
            counter.sent = len(payload) // 2  # the HTTP client has read half the body
            if self.part_seconds:
                await trio.sleep(self.part_seconds)
            if self.part_gate is not None and not self.part_gate.released.is_set():
                self.part_gate.waiting += 1
                await self.part_gate.released.wait()
            upload = self.uploads.get(upload_id)
            if upload is None:
                raise NotFound("UploadReadSetPart", f"upload {upload_id} not found", "NotFoundException")
            upload.parts[(source, number)] = bytes(payload)
            counter.sent = len(payload)
            self.stats.bytes_uploaded += len(payload)
            return hashlib.sha256(payload).hexdigest()

        return await self.retrying("UploadReadSetPart", once)

    async def complete_upload(self, store_id: str, upload_id: str, parts: list[dict[str, Any]]) -> str:
        operation = "CompleteMultipartReadSetUpload"

        async def once() -> str:
            await self._call(operation)
            upload = self.uploads.pop(upload_id, None)
            if upload is None:
                raise NotFound(operation, f"upload {upload_id} not found", "NotFoundException")
            files: dict[str, bytes] = {}
            for source, key in (("SOURCE1", StoredFile.SOURCE1), ("SOURCE2", StoredFile.SOURCE2)):
                numbers = sorted(n for s, n in upload.parts if s == source)
                if numbers:
                    files[key] = b"".join(upload.parts[(source, n)] for n in numbers)
            fields = upload.fields
            summary = self.add_read_set(
                store_id,
                fields["name"],
                files,
                file_type=FileType(fields["sourceFileType"]),
                status=Status.PROCESSING_UPLOAD,
                sample_id=fields["sampleId"],
                subject_id=fields["subjectId"],
            )
            self.tags[summary.arn] = dict(fields.get("tags", {}))
            if self._dropped(operation):
                raise AmbiguousOutcome(operation, "connection closed without an answer (fake drop)")
            return summary.id

        return await self.retrying(operation, once)

    async def find_read_sets(self, store_id: str, name: str) -> list[ReadSetSummary]:
        return await self._retried(
            "ListReadSets", lambda: [s for s in self._summaries(store_id, ReadSetSummary) if s.name == name]
        )

    async def list_tags(self, arn: str) -> dict[str, str]:
        return await self._retried("ListTagsForResource", lambda: dict(self.tags.get(arn, {})))

    async def abort_upload(self, store_id: str, upload_id: str) -> None:
        await self._retried("AbortMultipartReadSetUpload", lambda: self.uploads.pop(upload_id, None))

    async def list_uploads(self, store_id: str) -> list[UploadSummary]:
        def listed() -> list[UploadSummary]:
            return [
                UploadSummary(upload_id, str(u.fields.get("name", "")), dict(u.fields.get("tags", {})))
                for upload_id, u in self.uploads.items()
                if u.store_id == store_id
            ]

        return await self._retried("ListMultipartReadSetUploads", listed)

    async def delete_read_set(self, store_id: str, read_set_id: str) -> None:
        def delete() -> None:
            self._object(store_id, read_set_id, "BatchDeleteReadSet")
            del self.objects[store_id][read_set_id]

        await self._retried("BatchDeleteReadSet", delete)
