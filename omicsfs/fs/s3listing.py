"""File sizes of a whole store from its S3 listing, so ``ls -l`` needs no metadata call per file.

ListReadSets carries no sizes, and GetReadSetMetadata is paced at 5 calls per second: ``ls -l``
of 1,000 read sets costs over 3 minutes that way. One ListObjectsV2 walk of the store's S3
prefix lists every file of every ACTIVE read set with its size, 1,000 per page
(docs/architecture.md, "Two data planes"). A size is taken from the listing only where the object
maps to its stored file without guessing: keys are ``<store prefix>readSet/<id>/<name>``, and
for a BAM or CRAM the index is the object ending in ``.bai``/``.crai`` and the data file the one
ending in ``.bam``/``.cram``; a uBAM or a single-end FASTQ has exactly one object. Anything else
(which of two FASTQ objects is SOURCE1?) gets its size from the metadata as before. The listing
follows the listing TTL, like ListReadSets.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping

import trio

from omicsfs.backend.errors import BackendError
from omicsfs.backend.interface import ObjectStore
from omicsfs.backend.models import (
    FileType,
    ListedObject,
    ReadSetSummary,
    S3Location,
    Status,
    StoredFile,
    StoreKind,
    Summary,
)
from omicsfs.fs.catalog import Catalog
from omicsfs.fs.singleflight import SingleFlight
from omicsfs.fs.stats import Stats

log = logging.getLogger(__name__)

Sizes = dict[tuple[str, str], int]  # (read set ID, stored file) -> bytes

_SUFFIXES: dict[str, tuple[str, str]] = {FileType.BAM: (".bam", ".bai"), FileType.CRAM: (".cram", ".crai")}


def map_sizes(objects: list[ListedObject], prefix: str, read_sets: Mapping[str, ReadSetSummary]) -> Sizes:
    """The sizes the listing gives unambiguously (the rules in the module docstring)."""
    by_read_set: dict[str, list[ListedObject]] = defaultdict(list)
    for item in objects:
        rest = item.key[len(prefix) :] if item.key.startswith(prefix) else ""
        kind, _, tail = rest.partition("/")
        read_set_id, _, name = tail.partition("/")
        if kind == "readSet" and read_set_id and name and "/" not in name:
            by_read_set[read_set_id].append(item)
    sizes: Sizes = {}
    for read_set_id, found in by_read_set.items():
        summary = read_sets.get(read_set_id)
        if summary is None or summary.status != Status.ACTIVE:
            continue
        suffixes = _SUFFIXES.get(summary.file_type)
        if suffixes is not None:
            data = [o for o in found if o.key.endswith(suffixes[0])]
            index = [o for o in found if o.key.endswith(suffixes[1])]
            if len(data) == 1 and len(data) + len(index) == len(found) and len(index) <= 1:
                sizes[(read_set_id, StoredFile.SOURCE1)] = data[0].size
                if index:
                    sizes[(read_set_id, StoredFile.INDEX)] = index[0].size
        elif len(found) == 1 and (summary.file_type == FileType.UBAM or not summary.etag_source2):
            sizes[(read_set_id, StoredFile.SOURCE1)] = found[0].size
    return sizes


class S3Listing:
    def __init__(self, catalog: Catalog, s3: ObjectStore | None, stats: Stats, listing_ttl: float) -> None:
        self.catalog = catalog
        self.s3 = s3
        self.stats = stats
        self.listing_ttl = listing_ttl
        self._sizes: dict[str, tuple[float, Sizes | None]] = {}
        self._flights: SingleFlight[str, Sizes | None] = SingleFlight()

    def _fresh(self, store_id: str) -> tuple[bool, Sizes | None]:
        """Whether a listing of the store younger than the listing TTL is at hand, and its sizes."""
        cached = self._sizes.get(store_id)
        if cached is not None and trio.current_time() - cached[0] < self.listing_ttl:
            return True, cached[1]
        return False, None

    def listed(self, store_id: str) -> bool:
        """A fresh listing of the store is at hand (asking it for sizes costs no call)."""
        return self._fresh(store_id)[0]

    def maps(self, summary: Summary) -> bool:
        """The fresh listing gave this read set's sizes: its metadata is not needed for ``ls -l``.
        ``map_sizes`` maps all of a read set's files or none, so one entry is enough."""
        _, sizes = self._fresh(summary.store_id)
        return sizes is not None and any((summary.id, file) in sizes for file in StoredFile)

    async def size(self, summary: ReadSetSummary, file: str) -> int | None:
        """The file's size from the store's S3 listing, or None (then metadata decides)."""
        if self.s3 is None or summary.status != Status.ACTIVE:
            return None
        fresh, sizes = self._fresh(summary.store_id)
        if not fresh:
            sizes = await self._flights.run(summary.store_id, lambda: self._walk(summary.store_id))
        return None if sizes is None else sizes.get((summary.id, file))

    async def _walk(self, store_id: str) -> Sizes | None:
        assert self.s3 is not None
        sizes: Sizes | None = None
        try:
            store = await self.catalog.store_detail(StoreKind.SEQUENCE, store_id)
            if store.s3_uri:
                prefix = S3Location.parse(store.s3_uri)
                objects = await self.s3.list_objects(prefix)
                _, read_sets = await self.catalog.read_sets(store_id)
                sizes = map_sizes(objects, prefix.key, read_sets)
                self.stats.s3_listed_sizes += len(sizes)
        except (BackendError, ValueError) as error:
            log.info(
                "S3 listing of store %s is not available (%s): sizes come from metadata", store_id, error
            )
        self._sizes[store_id] = (trio.current_time(), sizes)
        return sizes
