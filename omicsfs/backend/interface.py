"""What the filesystem needs from HealthOmics, as a protocol.

``OmicsBackend`` (backend/omics.py) implements it with boto3 against the real service or the
local one; the unit tests implement it in memory (tests/fakes/backend.py), so the filesystem's
logic runs in-process, in seconds, with a fake clock. Nothing above backend/ names a boto3 type.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import trio

from omicsfs.backend.models import (
    JobKind,
    JobSummary,
    ListedObject,
    ObjectFiles,
    PartSource,
    RangeBody,
    ReadSetSummary,
    ReferenceSummary,
    S3Location,
    StoreKind,
    StoreSummary,
    UploadSummary,
)
from omicsfs.backend.stats import BackendStats

T = TypeVar("T")


class PartBody(Protocol):
    """An open part body. ``readinto`` blocks: the block cache calls it on a worker thread, with
    memory it owns, so bytes go from the socket to the cache without an allocation per chunk."""

    def readinto(self, memory: memoryview) -> int:
        """Fills a prefix of ``memory``; returns how many bytes (0 at the end of the body).
        Raises BackendError (TransportFailure) when the connection breaks."""
        ...

    def close(self) -> None: ...


class PartProgress:
    """Bytes of one part request sent so far. ``sent`` is set from the HTTP client's worker
    thread (a plain attribute store, atomic under the GIL) and read on the trio thread."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = 0


class Backend(Protocol):
    stats: BackendStats
    #: Held for a part fetch's whole life: each open body pins one pooled connection.
    data_streams: trio.Semaphore

    async def retrying(self, operation: str, attempt_once: Callable[[], Awaitable[T]]) -> T: ...

    # -- listings and metadata (the control plane) --
    async def list_stores(self, kind: StoreKind) -> list[StoreSummary]: ...
    async def get_store(self, kind: StoreKind, store_id: str) -> StoreSummary: ...
    async def list_read_sets(self, store_id: str) -> list[ReadSetSummary]: ...
    async def get_read_set_metadata(
        self, store_id: str, read_set_id: str
    ) -> tuple[ReadSetSummary, ObjectFiles]: ...
    async def list_references(self, store_id: str) -> list[ReferenceSummary]: ...
    async def get_reference_metadata(
        self, store_id: str, reference_id: str
    ) -> tuple[ReferenceSummary, ObjectFiles]: ...
    async def list_jobs(self, store_kind: StoreKind, store_id: str, kind: JobKind) -> list[JobSummary]: ...
    async def get_job(
        self, store_kind: StoreKind, store_id: str, kind: JobKind, job_id: str
    ) -> dict[str, Any]: ...

    # -- data --
    async def open_part(self, source: PartSource, part_number: int) -> PartBody:
        """One attempt at opening a part body (the caller retries: it resumes mid-part)."""
        ...

    # -- uploads and deletion --
    async def create_upload(self, store_id: str, fields: dict[str, Any]) -> str: ...
    async def upload_part(
        self, store_id: str, upload_id: str, source: str, number: int, payload: bytes,
        progress: PartProgress | None = None,
    ) -> str:  # fmt: skip
        """Uploads one part (retried); ``progress.sent`` follows the bytes of the current attempt
        as the HTTP client reads them, so progress views move smoothly, not part by part."""
        ...

    async def complete_upload(self, store_id: str, upload_id: str, parts: list[dict[str, Any]]) -> str:
        """One Complete; only throttling is retried (the service did nothing). A failure that
        leaves unknown whether the read set was made raises AmbiguousOutcome."""
        ...

    async def find_read_sets(self, store_id: str, name: str) -> list[ReadSetSummary]:
        """ListReadSets filtered by name (finding the read set an ambiguous Complete made)."""
        ...

    async def list_tags(self, arn: str) -> dict[str, str]:
        """ListTagsForResource of a read set (or any resource) ARN."""
        ...

    async def abort_upload(self, store_id: str, upload_id: str) -> None: ...
    async def list_uploads(self, store_id: str) -> list[UploadSummary]: ...
    async def delete_read_set(self, store_id: str, read_set_id: str) -> None: ...


class ObjectStore(Protocol):
    """The S3 access points of the stores (backend/s3.py S3Backend; tests/fakes/s3.py)."""

    stats: BackendStats

    async def retrying(self, operation: str, attempt_once: Callable[[], Awaitable[T]]) -> T: ...
    async def head(self, location: S3Location) -> str: ...
    async def open_range(
        self, location: S3Location, start: int, end: int, if_match: str | None
    ) -> RangeBody: ...
    async def list_objects(self, prefix: S3Location) -> list[ListedObject]: ...
