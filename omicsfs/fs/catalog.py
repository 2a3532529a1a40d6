"""What the mount knows about the service: listings on a short TTL, metadata kept for good.

- Listings (stores, read sets, references, jobs) change, so each is cached for ``listing_ttl``
  seconds and fetched again on the first access after that: never per ``readdir``, never with a
  TTL of 0 (Mountpoint never caches LIST and its users' top complaints are about exactly that;
  docs/architecture.md, "Listings").
- Read sets and references are immutable once ACTIVE, so their file layouts (sizes, part sizes)
  are fetched at most once per validator and persisted (metastore.py). Layouts of objects that
  are not ACTIVE (a read set still processing has no ``files`` yet) follow the listing TTL, so
  the real sizes are picked up once it is ACTIVE; when a layout changes, ``on_change`` tells the
  filesystem, which tells the kernel (SEMANTICS.md, "After close").
- A read set this mount just made is known at once (``note_read_set``): it is added to the
  store's listing, with the bytes written as its sizes until the service has its own, whatever
  the listing TTL, and merged into later listings until the service lists it too.
- Job details of finished jobs never change either; running jobs follow the listing TTL.
Every fetch is single-flight: a hundred ``stat`` calls on one read set make one metadata call.
Time is trio's clock, so the unit tests move it with ``trio.testing.MockClock``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import trio

from omicsfs.backend.errors import AccessDenied, NotFound
from omicsfs.backend.interface import Backend
from omicsfs.backend.models import (
    FileLayout,
    JobKind,
    JobSummary,
    ObjectFiles,
    ObjectKind,
    ReadSetSummary,
    ReferenceSummary,
    Status,
    StoreKind,
    StoreSummary,
    Summary,
)
from omicsfs.fs.metastore import MetadataStore
from omicsfs.fs.singleflight import SingleFlight

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Concurrent metadata fetches started for the siblings of a listed folder (``ls -l``); the
#: token bucket in the backend keeps them under the service's quota.
SIBLING_FETCH_CONCURRENCY = 8
#: A read set this mount made is merged into listings that do not show it yet for this long
#: (at least two listing TTLs): the service may list a new read set a moment after Complete.
RECENT_GRACE = 120.0
#: Called with the object and its new layout when a known layout changed (sizes, files).
LayoutChanged = Callable[[Summary, ObjectFiles], None]


@dataclass(frozen=True)
class ListingKey:
    """Which listing: the stores of a kind, a store's objects, or a store's jobs of a kind."""

    what: str  # "stores" | "objects" | "jobs"
    kind: StoreKind
    store_id: str = ""
    job_kind: JobKind | None = None


@dataclass(frozen=True)
class JobKey:
    kind: StoreKind
    store_id: str
    job_kind: JobKind
    job_id: str


@dataclass
class _Timed(Generic[T]):
    value: T
    fetched_at: float
    version: int


@dataclass
class _KnownFiles:
    files: ObjectFiles
    fetched_at: float


@dataclass
class _JobDocument:
    fetched_at: float
    final: bool
    document: bytes


class Catalog:
    def __init__(
        self,
        backend: Backend,
        metastore: MetadataStore,
        *,
        listing_ttl: float,
        sequence_store_ids: tuple[str, ...] = (),
        reference_store_ids: tuple[str, ...] = (),
        clock: Callable[[], float] = trio.current_time,
        on_change: LayoutChanged | None = None,
    ) -> None:
        self.backend = backend
        self.metastore = metastore
        self.listing_ttl = listing_ttl
        self.store_ids = {StoreKind.SEQUENCE: sequence_store_ids, StoreKind.REFERENCE: reference_store_ids}
        self.clock = clock
        self._listings: dict[ListingKey, _Timed[Any]] = {}
        self._listing_flights: SingleFlight[ListingKey, _Timed[Any]] = SingleFlight()
        self.on_change = on_change
        self._files: dict[tuple[ObjectKind, str], _KnownFiles] = {}
        #: Read sets made by this mount (store ID -> read set ID -> (summary, noted at)).
        self._recent: dict[str, dict[str, tuple[ReadSetSummary, float]]] = {}
        #: Sizes of what this mount wrote, per read set and file, until the service has its own.
        self._written: dict[str, dict[str, FileLayout]] = {}
        self._file_flights: SingleFlight[tuple[ObjectKind, str], ObjectFiles] = SingleFlight()
        self._jobs: dict[JobKey, _JobDocument] = {}
        self._job_flights: SingleFlight[JobKey, bytes] = SingleFlight()
        self._versions = 0
        self._store_details: dict[tuple[StoreKind, str], StoreSummary] = {}
        self._detail_flights: SingleFlight[tuple[StoreKind, str], StoreSummary] = SingleFlight()
        self._sibling_limiter = trio.CapacityLimiter(SIBLING_FETCH_CONCURRENCY)

    # -- listings -------------------------------------------------------------------------------

    async def _listing(self, key: ListingKey, fetch: Callable[[], Awaitable[T]]) -> _Timed[T]:
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
        timed = self._listings.get(ListingKey("objects", StoreKind.SEQUENCE, store_id))
        if timed is not None:
            timed.fetched_at = -float("inf")

    def _with_recent(self, store_id: str, listed: dict[str, ReadSetSummary]) -> dict[str, ReadSetSummary]:
        """A fresh listing plus the read sets this mount made that it does not show yet."""
        recent = self._recent.get(store_id, {})
        now = self.clock()
        for read_set_id, (summary, noted_at) in list(recent.items()):
            if read_set_id in listed or now - noted_at > max(RECENT_GRACE, 2 * self.listing_ttl):
                del recent[read_set_id]
            else:
                listed[read_set_id] = summary
        return listed

    def note_read_set(self, summary: ReadSetSummary, written: dict[str, FileLayout]) -> None:
        """The write engine made ``summary`` (status PROCESSING_UPLOAD) from ``written``: it is
        listed from now on, with those sizes until the service reports its own."""
        self._recent.setdefault(summary.store_id, {})[summary.id] = (summary, self.clock())
        self._written[summary.id] = dict(written)
        files = ObjectFiles(summary.validator, summary.status, dict(written))
        self._files[(summary.kind, summary.id)] = _KnownFiles(files, self.clock())
        timed = self._listings.get(ListingKey("objects", StoreKind.SEQUENCE, summary.store_id))
        if timed is not None and summary.id not in timed.value:
            timed.value[summary.id] = summary
            self._versions += 1
            timed.version = self._versions  # the folder's names are computed again

    def written_layout(self, read_set_id: str, file: str) -> FileLayout | None:
        """What this mount wrote as ``file`` of a read set the service has no layout for yet."""
        return self._written.get(read_set_id, {}).get(file)

    def known_store(self, kind: StoreKind, store_id: str) -> StoreSummary | None:
        """The store as last listed, without a call."""
        timed = self._listings.get(ListingKey("stores", kind))
        for store in timed.value if timed is not None else []:
            if store.id == store_id:
                return store  # type: ignore[no-any-return]
        return None

    def known_read_set(self, store_id: str, read_set_id: str) -> ReadSetSummary | None:
        """The read set as last listed or fetched, without a call."""
        timed = self._listings.get(ListingKey("objects", StoreKind.SEQUENCE, store_id))
        summary = timed.value.get(read_set_id) if timed is not None else None
        return summary if isinstance(summary, ReadSetSummary) else None

    async def stores(self, kind: StoreKind) -> list[StoreSummary]:
        async def fetch() -> list[StoreSummary]:
            chosen = self.store_ids[kind]
            if chosen:
                return [await self.backend.get_store(kind, store_id) for store_id in chosen]
            return await self.backend.list_stores(kind)

        return (await self._listing(ListingKey("stores", kind), fetch)).value

    async def store_detail(self, kind: StoreKind, store_id: str) -> StoreSummary:
        """The store as Get*Store describes it (with its S3 prefix, which list items lack);
        fetched once: nothing in it that omicsfs uses changes."""
        cached = self._store_details.get((kind, store_id))
        if cached is not None:
            return cached

        async def fetch() -> StoreSummary:
            detail = await self.backend.get_store(kind, store_id)
            self._store_details[(kind, store_id)] = detail
            return detail

        return await self._detail_flights.run((kind, store_id), fetch)

    async def read_sets(self, store_id: str) -> tuple[int, dict[str, ReadSetSummary]]:
        """(listing version, read sets by ID). The version changes whenever the listing is refetched."""

        async def fetch() -> dict[str, ReadSetSummary]:
            listed = {rs.id: rs for rs in await self.backend.list_read_sets(store_id)}
            return self._with_recent(store_id, listed)

        timed = await self._listing(ListingKey("objects", StoreKind.SEQUENCE, store_id), fetch)
        return timed.version, timed.value

    async def references(self, store_id: str) -> tuple[int, dict[str, ReferenceSummary]]:
        async def fetch() -> dict[str, ReferenceSummary]:
            return {ref.id: ref for ref in await self.backend.list_references(store_id)}

        timed = await self._listing(ListingKey("objects", StoreKind.REFERENCE, store_id), fetch)
        return timed.version, timed.value

    async def objects(self, kind: StoreKind, store_id: str) -> tuple[int, Mapping[str, Summary]]:
        """A store's read sets or references: (listing version, summaries by ID). The mapping is
        the listing itself, so a status refreshed by ``current_read_set`` shows everywhere."""
        if kind is StoreKind.SEQUENCE:
            return await self.read_sets(store_id)
        return await self.references(store_id)

    async def jobs(self, kind: StoreKind, store_id: str, job_kind: JobKind) -> dict[str, JobSummary]:
        async def fetch() -> dict[str, JobSummary]:
            try:
                return {job.id: job for job in await self.backend.list_jobs(kind, store_id, job_kind)}
            except AccessDenied:
                log.info("no permission to list %s %s jobs of %s; showing none", kind, job_kind, store_id)
                return {}

        return (await self._listing(ListingKey("jobs", kind, store_id, job_kind), fetch)).value

    def has_job_document(self, kind: StoreKind, job: JobSummary) -> bool:
        """Whether the job's document is known without a call (readdir uses placeholders if not)."""
        return JobKey(kind, job.store_id, job.kind, job.id) in self._jobs

    async def job_document(self, kind: StoreKind, job: JobSummary) -> bytes:
        """The job as the Get*Job call returns it (status, times, per-source results), as JSON."""
        key = JobKey(kind, job.store_id, job.kind, job.id)
        cached = self._jobs.get(key)
        if cached is not None and (cached.final or self.clock() - cached.fetched_at < self.listing_ttl):
            return cached.document

        async def fetch() -> bytes:
            raw = await self.backend.get_job(kind, job.store_id, job.kind, job.id)
            document = (json.dumps(raw, indent=2, sort_keys=True, default=_json_default) + "\n").encode()
            final = JobSummary(job.id, job.store_id, job.kind, str(raw.get("status", "")), 0).terminal
            self._jobs[key] = _JobDocument(self.clock(), final, document)
            return document

        return await self._job_flights.run(key, fetch)

    # -- file layouts (immutable metadata) ------------------------------------------------------

    def known_files(self, summary: Summary) -> ObjectFiles | None:
        """The object's file layout if it is known without a call (memory or the disk cache).
        A layout of an object that is not ACTIVE is known for the listing TTL only."""
        key = (summary.kind, summary.id)
        known = self._files.get(key)
        fresh = known is not None and (
            known.files.status == Status.ACTIVE or self.clock() - known.fetched_at < self.listing_ttl
        )
        if known is not None and fresh and known.files.validator == summary.validator:
            return known.files
        if summary.status == Status.ACTIVE:
            files = self.metastore.get(summary.kind, summary.id, summary.validator)
            if files is not None:
                self._files[key] = _KnownFiles(files, self.clock())
                return files
        return None

    async def files(self, summary: Summary) -> ObjectFiles:
        """The object's file layout; at most one metadata call per validator, ever."""
        known = self.known_files(summary)
        if known is not None:
            return known
        key = (summary.kind, summary.id)

        async def fetch() -> ObjectFiles:
            if isinstance(summary, ReadSetSummary):
                _, files = await self.backend.get_read_set_metadata(summary.store_id, summary.id)
            else:
                _, files = await self.backend.get_reference_metadata(summary.store_id, summary.id)
            self._remember(summary, files)
            return files

        return await self._file_flights.run(key, fetch)

    def _remember(self, summary: Summary, files: ObjectFiles) -> None:
        key = (summary.kind, summary.id)
        previous = self._files.get(key)
        self._files[key] = _KnownFiles(files, self.clock())
        if files.status == Status.ACTIVE:
            self.metastore.put(summary.kind, summary.id, files)
            self._written.pop(summary.id, None)
        if previous is not None and self.on_change is not None and _sizes(previous.files) != _sizes(files):
            self.on_change(summary, files)

    async def current_read_set(self, summary: ReadSetSummary) -> ReadSetSummary:
        """The read set as the service sees it now: used before refusing to open a non-ACTIVE one,
        so a finished activation job is honoured at once rather than after the listing TTL."""
        try:
            fresh, files = await self.backend.get_read_set_metadata(summary.store_id, summary.id)
        except NotFound:
            self.forget_read_set(summary.store_id, summary.id)
            return summary
        self._remember(fresh, files)
        listing = self._listings.get(ListingKey("objects", StoreKind.SEQUENCE, summary.store_id))
        if listing is not None and summary.id in listing.value and listing.value[summary.id] != fresh:
            listing.value[summary.id] = fresh  # xattrs and later opens see the new status at once
            self._versions += 1
            listing.version = self._versions  # its files may differ now (an index once ACTIVE)
        return fresh

    def forget_read_set(self, store_id: str, read_set_id: str) -> None:
        """The read set is gone (deleted): no longer merged into listings as one this mount made."""
        self._recent.get(store_id, {}).pop(read_set_id, None)
        self._written.pop(read_set_id, None)

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


def _sizes(files: ObjectFiles) -> dict[str, int]:
    return {name: layout.content_length for name, layout in files.files.items()}


def _json_default(value: Any) -> str:
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)
