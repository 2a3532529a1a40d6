"""What the mount knows about the service: listings on a short TTL, metadata kept for good.

- Listings (stores, read sets, references, jobs) change, so each is cached for ``listing_ttl``
  seconds and fetched again on the first access after that: never per ``readdir``, never with a
  TTL of 0 (Mountpoint never caches LIST and its users' top complaints are about exactly that;
  fuse-anchors.md B1).
- Read sets and references are immutable once ACTIVE, so their file layouts (sizes, part sizes)
  are fetched at most once per validator and persisted (metastore.py).
- Job details of finished jobs never change either; running jobs follow the listing TTL.
Every fetch is single-flight: a hundred ``stat`` calls on one read set make one metadata call.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import trio

from omicsfs.backend.errors import AccessDenied, NotFound
from omicsfs.backend.models import (
    ACTIVE,
    JobKind,
    JobSummary,
    ObjectFiles,
    ReadSetSummary,
    ReferenceSummary,
    StoreSummary,
)
from omicsfs.backend.omics import OmicsBackend
from omicsfs.fs.metastore import MetadataStore
from omicsfs.fs.singleflight import SingleFlight

log = logging.getLogger(__name__)

T = TypeVar("T")
Summary = ReadSetSummary | ReferenceSummary

#: Concurrent metadata fetches started for the siblings of a listed folder (``ls -l``); the
#: token bucket in the backend keeps them under the service's quota.
SIBLING_FETCH_CONCURRENCY = 8


@dataclass
class _Timed(Generic[T]):
    value: T
    fetched_at: float
    version: int


class Catalog:
    def __init__(
        self,
        backend: OmicsBackend,
        metastore: MetadataStore,
        *,
        listing_ttl: float,
        sequence_store_ids: tuple[str, ...] = (),
        reference_store_ids: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.metastore = metastore
        self.listing_ttl = listing_ttl
        self.sequence_store_ids = sequence_store_ids
        self.reference_store_ids = reference_store_ids
        self.clock = clock
        self._listings: dict[tuple[str, ...], _Timed[Any]] = {}
        self._listing_flights: SingleFlight[tuple[str, ...], _Timed[Any]] = SingleFlight()
        self._files: dict[tuple[str, str], ObjectFiles] = {}
        self._file_flights: SingleFlight[tuple[str, str], ObjectFiles] = SingleFlight()
        self._jobs: dict[tuple[str, ...], tuple[float, bool, bytes]] = {}
        self._job_flights: SingleFlight[tuple[str, ...], bytes] = SingleFlight()
        self._versions = 0
        self._sibling_limiter = trio.CapacityLimiter(SIBLING_FETCH_CONCURRENCY)

    # -- listings -------------------------------------------------------------------------------

    async def _listing(self, key: tuple[str, ...], fetch: Callable[[], Awaitable[T]]) -> _Timed[T]:
        cached = self._listings.get(key)
        if cached is not None and self.clock() - cached.fetched_at < self.listing_ttl:
            return cached

        async def refresh() -> _Timed[Any]:
            value = await fetch()
            self._versions += 1
            timed = _Timed(value, self.clock(), self._versions)
            self._listings[key] = timed
            return timed

        return await self._listing_flights.run(key, refresh)

    def expire_listings(self) -> None:
        """Makes the next access of every listing fetch it again (SIGHUP)."""
        for timed in self._listings.values():
            timed.fetched_at = -float("inf")

    def expire_read_sets(self, store_id: str) -> None:
        """Lists the store again on next access: a read set was just uploaded or deleted here."""
        timed = self._listings.get(("read-sets", store_id))
        if timed is not None:
            timed.fetched_at = -float("inf")

    async def sequence_stores(self) -> list[StoreSummary]:
        async def fetch() -> list[StoreSummary]:
            if self.sequence_store_ids:
                return [await self.backend.get_sequence_store(sid) for sid in self.sequence_store_ids]
            return await self.backend.list_sequence_stores()

        return (await self._listing(("sequence-stores",), fetch)).value

    async def reference_stores(self) -> list[StoreSummary]:
        async def fetch() -> list[StoreSummary]:
            if self.reference_store_ids:
                return [await self.backend.get_reference_store(sid) for sid in self.reference_store_ids]
            return await self.backend.list_reference_stores()

        return (await self._listing(("reference-stores",), fetch)).value

    async def read_sets(self, store_id: str) -> tuple[int, dict[str, ReadSetSummary]]:
        """(listing version, read sets by ID). The version changes whenever the listing is refetched."""

        async def fetch() -> dict[str, ReadSetSummary]:
            return {rs.id: rs for rs in await self.backend.list_read_sets(store_id)}

        timed = await self._listing(("read-sets", store_id), fetch)
        return timed.version, timed.value

    async def references(self, store_id: str) -> tuple[int, dict[str, ReferenceSummary]]:
        async def fetch() -> dict[str, ReferenceSummary]:
            return {ref.id: ref for ref in await self.backend.list_references(store_id)}

        timed = await self._listing(("references", store_id), fetch)
        return timed.version, timed.value

    async def jobs(self, store_kind: str, store_id: str, kind: JobKind) -> dict[str, JobSummary]:
        async def fetch() -> dict[str, JobSummary]:
            try:
                return {job.id: job for job in await self.backend.list_jobs(store_kind, store_id, kind)}
            except AccessDenied:
                log.info("no permission to list %s %s jobs of %s; showing none", store_kind, kind, store_id)
                return {}

        return (await self._listing(("jobs", store_kind, store_id, kind), fetch)).value

    def has_job_document(self, job: JobSummary, store_kind: str) -> bool:
        """Whether the job's document is known without a call (readdir uses placeholders if not)."""
        return (store_kind, job.store_id, job.kind, job.id) in self._jobs

    async def job_document(self, job: JobSummary, store_kind: str) -> bytes:
        """The job as the Get*Job call returns it (status, times, per-source results), as JSON."""
        key = (store_kind, job.store_id, job.kind, job.id)
        cached = self._jobs.get(key)
        if cached is not None:
            fetched_at, final, document = cached
            if final or self.clock() - fetched_at < self.listing_ttl:
                return document

        async def fetch() -> bytes:
            raw = await self.backend.get_job(store_kind, job.store_id, job.kind, job.id)
            document = (json.dumps(raw, indent=2, sort_keys=True, default=_json_default) + "\n").encode()
            final = raw.get("status") in ("COMPLETED", "COMPLETED_WITH_FAILURES", "FAILED", "CANCELLED")
            self._jobs[key] = (self.clock(), final, document)
            return document

        return await self._job_flights.run(key, fetch)

    # -- file layouts (immutable metadata) ------------------------------------------------------

    @staticmethod
    def _kind(summary: Summary) -> str:
        return "readSet" if isinstance(summary, ReadSetSummary) else "reference"

    def known_files(self, summary: Summary) -> ObjectFiles | None:
        """The object's file layout if it is known without a call (memory or the disk cache)."""
        key = (self._kind(summary), summary.id)
        files = self._files.get(key)
        if files is not None and files.validator == summary.validator:
            return files
        if summary.status == ACTIVE:
            files = self.metastore.get(key[0], summary.id, summary.validator)
            if files is not None:
                self._files[key] = files
                return files
        return None

    async def files(self, summary: Summary) -> ObjectFiles:
        """The object's file layout; at most one metadata call per validator, ever."""
        known = self.known_files(summary)
        if known is not None:
            return known
        key = (self._kind(summary), summary.id)

        async def fetch() -> ObjectFiles:
            if isinstance(summary, ReadSetSummary):
                _, files = await self.backend.get_read_set_metadata(summary.store_id, summary.id)
            else:
                _, files = await self.backend.get_reference_metadata(summary.store_id, summary.id)
            self._files[key] = files
            if files.status == ACTIVE:
                self.metastore.put(key[0], summary.id, files)
            return files

        return await self._file_flights.run(key, fetch)

    async def current_read_set(self, summary: ReadSetSummary) -> ReadSetSummary:
        """The read set as the service sees it now: used before refusing to open a non-ACTIVE one,
        so a finished activation job is honoured at once rather than after the listing TTL."""
        try:
            fresh, files = await self.backend.get_read_set_metadata(summary.store_id, summary.id)
        except NotFound:
            return summary
        self._files[("readSet", summary.id)] = files
        if files.status == ACTIVE:
            self.metastore.put("readSet", summary.id, files)
        listing = self._listings.get(("read-sets", summary.store_id))
        if listing is not None and summary.id in listing.value:
            listing.value[summary.id] = fresh  # xattrs and later opens see the new status at once
        return fresh

    async def prefetch_files(self, summaries: list[Summary]) -> None:
        """Fetches the layouts of many objects concurrently (``ls -l`` of a folder)."""
        missing = [s for s in summaries if self.known_files(s) is None]
        if not missing:
            return

        async def one(summary: Summary) -> None:
            async with self._sibling_limiter:
                try:
                    await self.files(summary)
                except Exception as exc:  # reported by the stat that needs it, not here
                    log.debug("metadata prefetch of %s failed: %s", summary.id, exc)

        async with trio.open_nursery() as nursery:
            for summary in missing:
                nursery.start_soon(one, summary)


def _json_default(value: Any) -> str:
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)
