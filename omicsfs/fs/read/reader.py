"""THE READ PATH, from ``open`` to bytes: which files may be opened, and each read through the
block cache with read-ahead on the file's data plane (parts, or S3 ranged GETs).

Only ACTIVE read sets and references can be read. Before refusing a read set that the listing
shows otherwise, the reader asks the service once more (an activation may just have finished);
a refusal is EACCES with one log line per object and status saying what to do (README.md,
"Archived read sets"). Each open file has its own read-ahead stream; every stream draws on one
shared budget (readahead.py).
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass

from omicsfs.backend.models import ReadSetSummary, Status, Summary
from omicsfs.config import MountConfig
from omicsfs.fs.catalog import Catalog
from omicsfs.fs.errors import FsError
from omicsfs.fs.read.blockcache import BlockCache
from omicsfs.fs.read.confirm import OpenConfirmation
from omicsfs.fs.read.fetch import Plane
from omicsfs.fs.read.files import CachedFile, cached_file
from omicsfs.fs.read.readahead import RangeStream, ReadAheadBudget, StreamState

log = logging.getLogger(__name__)

_HINTS: dict[str, str] = {
    Status.ACTIVATING: "an activation job is running; it opens once the read set is ACTIVE",
    Status.PROCESSING_UPLOAD: "the service is still processing the upload",
    Status.UPLOAD_FAILED: "the upload failed and the read set has no data",
}


@dataclass(frozen=True)
class Window:
    """One open file's read-ahead as ``stats.json`` shows it: which plane its misses go to,
    whether it is being read in order, how far ahead it fetches and what the budget holds for it."""

    file: str
    plane: Plane
    sequential: bool
    next_offset: int
    window_bytes: int
    reserved_bytes: int


class Reader:
    def __init__(self, catalog: Catalog, cache: BlockCache, config: MountConfig) -> None:
        self.catalog = catalog
        self.cache = cache
        self.read_ahead = config.read_ahead
        self.block_size = config.cache.block_size
        self.budget = ReadAheadBudget(
            config.read_ahead_budget, config.read_ahead.max_streams, arriving=cache.arriving
        )
        self._refusals: set[tuple[str, str]] = set()
        #: --manifest: an object deleted or archived since is refused on open (confirm.py).
        self.confirm = OpenConfirmation(cache, config.listing_ttl) if config.manifest is not None else None

    async def open(self, summary: Summary, file: str) -> CachedFile:
        """The cached file behind one stored file, or FsError (EACCES if not ACTIVE)."""
        if summary.status != Status.ACTIVE and isinstance(summary, ReadSetSummary):
            summary = await self.catalog.current_read_set(summary)
        if summary.status != Status.ACTIVE:
            raise self._refusal(summary)
        cached = await cached_file(self.catalog, summary, file, self.block_size)
        if cached is None:
            raise FsError(errno.ENOENT, f"{summary.id} has no {file} file")
        await self.cache.planes.choose(cached)
        if self.confirm is not None:
            await self.confirm.check(summary, cached)
        return cached

    def _refusal(self, summary: Summary) -> FsError:
        what = "read set" if isinstance(summary, ReadSetSummary) else "reference"
        if (summary.id, summary.status) not in self._refusals:
            self._refusals.add((summary.id, summary.status))
            if summary.status == Status.ARCHIVED:
                hint = (
                    "start an activation job (aws omics start-read-set-activation-job"
                    f" --sequence-store-id {summary.store_id} --sources readSetId={summary.id})"
                )
            else:
                hint = _HINTS.get(summary.status, "only ACTIVE objects can be read")
            log.warning("refusing to open %s %s (%s): it is %s; %s", what, summary.id, summary.name,
                        summary.status, hint)  # fmt: skip
        return FsError(errno.EACCES, f"{what} {summary.id} is {summary.status}")

    async def read(
        self,
        stream_id: int,
        stream: StreamState,
        ranges: RangeStream,
        file: CachedFile,
        offset: int,
        size: int,
    ) -> bytes | bytearray | memoryview:
        if offset < file.size:
            self._read_ahead(stream_id, stream, ranges, file, offset, size)
        return await self.cache.read_buffer(file, offset, size)

    def _read_ahead(
        self,
        stream_id: int,
        stream: StreamState,
        ranges: RangeStream,
        file: CachedFile,
        offset: int,
        size: int,
    ) -> None:
        config = self.read_ahead
        if self.cache.planes.reads_s3(file):
            per_request = self.cache.request_blocks(file)
            window = ranges.observe(
                offset, size, file.block_size, file.blocks, config.s3_max_window, per_request
            )
            granted = self.budget.grant(stream_id, (Plane.S3, file.key), window, file.block_length)
            if granted:
                self.cache.ensure_blocks(file, granted[0], granted[-1] + 1, prefetch=True)
            return
        parts = stream.observe(offset, size, file.layout, config.max_depth, config.growth_bytes)
        for part in self.budget.grant(stream_id, (Plane.PARTS, file.key), parts, file.layout.part_length):
            self.cache.ensure_part(file, part, prefetch=True)

    def window(
        self, stream_id: int, stream: StreamState, ranges: RangeStream, file: CachedFile, label: str
    ) -> Window:
        if self.cache.planes.reads_s3(file):
            plane, sequential = Plane.S3, ranges.window > 0
            next_offset, window = ranges.next_offset, ranges.window_bytes(file.block_size)
        else:
            plane, sequential = Plane.PARTS, stream.depth > 0
            next_offset, window = stream.next_offset, stream.window_bytes(file.layout)
        return Window(
            label, plane, sequential, max(next_offset, 0), window,
            self.budget.held_bytes(stream_id),
        )  # fmt: skip

    def closed(self, stream_id: int) -> None:
        self.budget.release(stream_id)
