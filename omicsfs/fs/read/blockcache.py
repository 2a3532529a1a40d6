"""The part cache: service parts streamed into an LRU of blocks, one fetch per part at a time.

GetReadSet has no byte range, so every miss costs a whole part (``partSize`` from the metadata,
100 MiB on AWS). Three rules follow (docs/architecture.md, "The read path"):

- A part is streamed: each chunk lands in the part's fetch as it arrives and wakes the readers
  waiting on it, so a 4 KiB read at the start of a cold part returns after the first chunk.
  Completed blocks go into a cachetools LRU bounded in bytes (``--cache-size``).
- Single flight: one fetch per part however many readers want it; a fetch belongs to the
  mount, not to a reader, so an interrupted reader does not cancel it for the others.
- Index files and the first and last block of BAM/CRAM files live in a separate, smaller LRU,
  so a large sequential scan cannot push out what every htslib open reads.

A failed or short body is retried, resuming at the first missing byte (the bytes before it are
immutable and already delivered); after the attempts run out the readers of that part get the
error, and only they. Every fetched part is also written to the disk tier when there is one.
"""

from __future__ import annotations

import logging

import cachetools
import trio

from omicsfs.backend.errors import BackendError, TransportFailure
from omicsfs.backend.interface import Backend, PartBody
from omicsfs.config import CacheConfig
from omicsfs.fs.read.disktier import DiskTier, PartWriter
from omicsfs.fs.read.files import CachedFile, FileKey
from omicsfs.fs.stats import Stats
from omicsfs.fs.tasks import TaskGroup

log = logging.getLogger(__name__)

BlockKey = tuple[FileKey, int, int]  # (file, part number, block index)


class PartFetch:
    """One part on its way in: completed blocks plus the block being filled."""

    def __init__(self, file: CachedFile, part: int, length: int) -> None:
        self.file = file
        self.part = part
        self.length = length
        self.filled = 0
        self.current = bytearray()
        self.interest: dict[int, int] = {}
        self.held: dict[int, bytes] = {}
        self.error: BaseException | None = None
        self.finished = False
        self.lot = trio.lowlevel.ParkingLot()


class BlockCache:
    def __init__(
        self,
        backend: Backend,
        config: CacheConfig,
        stats: Stats,
        tasks: TaskGroup,
        disk: DiskTier | None = None,
    ) -> None:
        self.backend = backend
        self.config = config
        self.stats = stats
        self.disk = disk
        self.block_size = config.block_size
        hot_bytes = max(self.block_size, int(config.memory_bytes * config.hot_fraction))
        main_bytes = max(self.block_size, config.memory_bytes - hot_bytes)
        self.main: cachetools.LRUCache[BlockKey, bytes] = cachetools.LRUCache(main_bytes, getsizeof=len)
        self.hot: cachetools.LRUCache[BlockKey, bytes] = cachetools.LRUCache(hot_bytes, getsizeof=len)
        self.inflight: dict[tuple[FileKey, int], PartFetch] = {}
        #: Fetches run in the mount's nursery: they outlive the request that started them.
        self.tasks = tasks

    # -- lookups --------------------------------------------------------------------------------

    def _blocks_in_part(self, length: int) -> int:
        return max(1, -(-length // self.block_size))

    def _is_hot(self, file: CachedFile, part: int, block: int) -> bool:
        if file.hot_all:
            return True
        if not file.hot_ends:
            return False
        if part == 1 and block == 0:
            return True
        last_part = file.layout.total_parts
        return part == last_part and block == self._blocks_in_part(file.layout.part_length(last_part)) - 1

    def _cached(self, key: BlockKey) -> bytes | None:
        data = self.hot.get(key)
        if data is None:
            data = self.main.get(key)
        return data

    def _store(self, file: CachedFile, key: BlockKey, data: bytes) -> None:
        cache = self.hot if self._is_hot(file, key[1], key[2]) else self.main
        if len(data) <= cache.maxsize:
            cache[key] = data

    def usage(self) -> dict[str, int]:
        """Bytes held per tier, for ``.omicsfs/stats.json``."""
        return {
            "memory_bytes": int(self.main.currsize),
            "hot_bytes": int(self.hot.currsize),
            "memory_limit_bytes": int(self.main.maxsize + self.hot.maxsize),
            "parts_fetching": len(self.inflight),
        }

    def part_arriving(self, ref: tuple[object, int]) -> bool:
        """Whether the part (file key, part number) is being fetched right now."""
        return ref in self.inflight

    def part_present(self, file: CachedFile, part: int) -> bool:
        """Whether a part needs no network fetch: in flight, on disk, or (ends) in memory."""
        key = file.key
        if (key, part) in self.inflight:
            return True
        if self.disk is not None and self.disk.has(self.disk.path(key, part)):
            return True
        last = self._blocks_in_part(file.layout.part_length(part)) - 1
        return self._cached((key, part, 0)) is not None and self._cached((key, part, last)) is not None

    # -- reading --------------------------------------------------------------------------------

    async def read(self, file: CachedFile, offset: int, size: int) -> bytes:
        """Bytes [offset, offset+size) of the file, clamped to its length."""
        return bytes(await self.read_buffer(file, offset, size))

    async def read_buffer(self, file: CachedFile, offset: int, size: int) -> bytes | memoryview:
        """``read`` without a copy where it can: a request inside one block is a view of the
        cached block, which pyfuse3 hands to the kernel as it is (it takes any buffer)."""
        layout = file.layout
        end = min(offset + size, layout.content_length)
        if offset >= end:
            return b""
        first_part = offset // layout.part_size + 1
        last_part = (end - 1) // layout.part_size + 1
        for part in range(first_part + 1, last_part + 1):
            if not self.part_present(file, part):
                self.ensure_fetch(file, part, prefetch=False)  # start now, while we wait for the first
        pieces: list[memoryview] = []
        position = offset
        while position < end:
            part = position // layout.part_size + 1
            part_start = (part - 1) * layout.part_size
            in_part = position - part_start
            block = in_part // self.block_size
            block_start = block * self.block_size
            want_end = min(end - part_start, block_start + self.block_size, layout.part_length(part))
            data = await self._block(file, part, block, want_end - block_start)
            pieces.append(memoryview(data)[in_part - block_start : want_end - block_start])
            position = part_start + want_end
        return b"".join(pieces) if len(pieces) > 1 else pieces[0]

    async def _block(self, file: CachedFile, part: int, block: int, need: int) -> bytes:
        """At least ``need`` bytes of a block (a partial block while its part is streaming in)."""
        key: BlockKey = (file.key, part, block)
        while True:
            data = self._cached(key)
            if data is not None:
                self.stats.cache_hits["memory"] += 1
                return data
            fetch = self.inflight.get((file.key, part))
            if fetch is None and self.disk is not None:
                path = self.disk.path(file.key, part)
                if self.disk.has(path):
                    data = await self.disk.read_block(path, file.layout.part_length(part), block)
                    if data is not None:
                        self.stats.cache_hits["disk"] += 1
                        self._store(file, key, data)
                        return data
                    self.stats.disk_corrupt += 1
                    continue
            if fetch is None:
                self.stats.cache_misses += 1
                fetch = self.ensure_fetch(file, part, prefetch=False)
                assert fetch is not None
            else:
                self.stats.cache_hits["inflight"] += 1
            data = await self._wait(fetch, block, need)
            if data is not None:
                return data
            while not fetch.finished:  # our block came and went before we asked: fetch it again
                await fetch.lot.park()

    async def _wait(self, fetch: PartFetch, block: int, need: int) -> bytes | None:
        block_start = block * self.block_size
        fetch.interest[block] = fetch.interest.get(block, 0) + 1
        try:
            while fetch.filled < block_start + need and fetch.error is None and not fetch.finished:
                await fetch.lot.park()
            if fetch.error is not None and fetch.filled < block_start + need:
                raise fetch.error
            held = fetch.held.get(block)
            if held is not None:
                return held
            if fetch.current and fetch.filled - len(fetch.current) == block_start:
                return bytes(fetch.current)  # our block is the one being filled: its prefix is enough
            return self._cached((fetch.file.key, fetch.part, block))  # None: evicted, go round again
        finally:
            fetch.interest[block] -= 1
            if fetch.interest[block] == 0:
                del fetch.interest[block]
                fetch.held.pop(block, None)

    # -- fetching -------------------------------------------------------------------------------

    def ensure_fetch(self, file: CachedFile, part: int, *, prefetch: bool) -> PartFetch | None:
        """Starts fetching a part unless it is already coming; returns the fetch if one runs."""
        existing = self.inflight.get((file.key, part))
        if existing is not None:
            return existing
        if prefetch and self.part_present(file, part):
            return None
        fetch = PartFetch(file, part, file.layout.part_length(part))
        self.inflight[(file.key, part)] = fetch
        if prefetch:
            self.stats.prefetch_parts += 1
        self.tasks.start(self._run_fetch, fetch)
        return fetch

    async def _run_fetch(self, fetch: PartFetch) -> None:
        writer: PartWriter | None = None
        if self.disk is not None:
            writer = self.disk.begin(self.disk.path(fetch.file.key, fetch.part))
        started = trio.current_time()
        log.debug("part %d of %s: fetch started", fetch.part, fetch.file.source.describe())
        try:
            async with self.backend.data_streams:
                await self.backend.retrying(fetch.file.source.operation, lambda: self._attempt(fetch, writer))
            log.debug(
                "part %d of %s: %d bytes in %.2f s",
                fetch.part, fetch.file.source.describe(), fetch.filled, trio.current_time() - started,
            )  # fmt: skip
            if writer is not None:
                with trio.CancelScope(shield=True):  # an unmount must not lose a fetched part
                    await writer.commit()
        except BaseException as exc:
            if writer is not None:
                writer.abort()
            if isinstance(exc, BackendError):
                fetch.error = exc
                log.warning(
                    "fetching part %d of %s failed: %s", fetch.part, fetch.file.source.describe(), exc
                )
            else:
                fetch.error = TransportFailure(fetch.file.source.operation, f"fetch aborted: {exc!r}")
                if not isinstance(exc, Exception):
                    raise  # cancelled (unmount): the waiting readers get the error above
                log.exception(
                    "fetching part %d of %s crashed (a bug)", fetch.part, fetch.file.source.describe()
                )
        finally:
            fetch.finished = True
            del self.inflight[(fetch.file.key, fetch.part)]
            fetch.lot.unpark_all()

    async def _attempt(self, fetch: PartFetch, writer: PartWriter | None) -> None:
        """One GetReadSet/GetReference request, resuming at ``fetch.filled``."""
        source = fetch.file.source
        stream: PartBody = await self.backend.open_part(source, fetch.part)
        skip = fetch.filled  # the body starts at the part's first byte; we have these already
        received = 0
        try:
            while True:
                chunk = await stream.read()
                if not chunk:
                    break
                received += len(chunk)
                if received <= skip:
                    continue
                if received - len(chunk) < skip:
                    chunk = chunk[skip - (received - len(chunk)) :]
                if fetch.filled + len(chunk) > fetch.length:
                    raise TransportFailure(
                        source.operation, f"part {fetch.part} is longer than its metadata says"
                    )
                await self._append(fetch, chunk, writer)
                if fetch.filled == fetch.length:
                    break  # complete: no need to wait for the end of the body
        finally:
            stream.close()
        if fetch.filled < fetch.length:
            raise TransportFailure(
                source.operation, f"part {fetch.part} body ended at {fetch.filled} of {fetch.length} bytes"
            )

    async def _append(self, fetch: PartFetch, chunk: bytes, writer: PartWriter | None) -> None:
        view = memoryview(chunk)
        while view:
            block = fetch.filled // self.block_size
            block_length = min(self.block_size, fetch.length - block * self.block_size)
            take = min(len(view), block_length - len(fetch.current))
            if not fetch.current and take == block_length:
                # A whole block in one piece (chunks are block-sized and aligned): no copies.
                data = chunk if take == len(chunk) else bytes(view[:take])
                fetch.filled += take
                view = view[take:]
            else:
                fetch.current += view[:take]
                fetch.filled += take
                view = view[take:]
                if len(fetch.current) != block_length:
                    continue
                data = bytes(fetch.current)
                fetch.current = bytearray()
            self._store(fetch.file, (fetch.file.key, fetch.part, block), data)
            if fetch.interest.get(block):
                fetch.held[block] = data
            if writer is not None:
                await writer.write_block(data)
        fetch.lot.unpark_all()
