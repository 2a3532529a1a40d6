"""The block cache: files cut into blocks on one grid, fetched by parts or by ranged GETs.

GetReadSet has no byte range, so on the parts plane every miss costs a whole part (``partSize``
from the metadata, 100 MiB on AWS); on the S3 plane a miss costs the blocks it needs. Blocks are
keyed by their place in the file, so both planes fill the same cache (files.py). The rules
(docs/architecture.md, "The read path"):

- A fetch is streamed: each block lands in the cache as it arrives and wakes the readers
  waiting on it, so a 4 KiB read at the start of a cold part returns after the first block, not
  after the whole part. Blocks go into an LRU bounded in bytes (``--cache-size``).
- Single flight: one fetch per block however many readers want it; a fetch belongs to the
  mount, not to a reader, so an interrupted reader does not cancel it for the others.
- Index files and the first and last block of BAM/CRAM files live in a separate, smaller LRU,
  so a large sequential scan cannot push out what every htslib open reads.

A failed or short body is retried, resuming at the first block not received yet (the bytes before
it are immutable and already delivered); after the attempts run out the readers of those blocks
get the error, and only they. An S3 failure instead switches the file to parts and the readers
carry on (s3plane.py), except a changed object (its ETag moved), which is never stitched to what
was read before: its readers get ESTALE.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import cast

import cachetools
import trio

from omicsfs.backend.errors import BackendError, Changed, TransportFailure
from omicsfs.backend.interface import Backend, ObjectStore, PartBody
from omicsfs.config import CacheConfig, DataPlane, ReadAheadConfig
from omicsfs.fs.read.disktier import DiskTier
from omicsfs.fs.read.fetch import Fetch, Plane, Receiver
from omicsfs.fs.read.files import CachedFile, FileKey
from omicsfs.fs.read.leases import LeaseFolder, SharedFetches
from omicsfs.fs.read.s3plane import S3Plane
from omicsfs.fs.read.slab import Slab, Slot
from omicsfs.fs.stats import Stats
from omicsfs.fs.tasks import TaskGroup

log = logging.getLogger(__name__)

BlockKey = tuple[FileKey, int]  # (file, block index in the file)

#: Threads reading from the disk tier at once.
DISK_READERS = 4


class BlockLRU(cachetools.LRUCache[BlockKey, Slot]):
    """An LRU of slots that hands every slot it evicts to the block cache to free."""

    def __init__(self, maxsize: int, give_back: Callable[[Slot], None]) -> None:
        super().__init__(maxsize, getsizeof=lambda slot: slot.length)
        self._give_back = give_back

    def popitem(self) -> tuple[BlockKey, Slot]:  # cachetools' eviction hook
        key, slot = super().popitem()
        self._give_back(slot)
        return key, slot


class BlockCache:
    def __init__(
        self, backend: Backend, config: CacheConfig, stats: Stats, tasks: TaskGroup, *,
        disk: DiskTier | None = None, s3: ObjectStore | None = None, planes: S3Plane | None = None,
        read_ahead: ReadAheadConfig | None = None,
    ) -> None:  # fmt: skip
        self.backend = backend
        self.s3 = s3
        self.planes = planes or S3Plane(None, DataPlane.PARTS, stats)
        self.config = config
        self.stats = stats
        self.disk = disk
        self.block_size = config.block_size
        self.request_bytes = (read_ahead or ReadAheadConfig()).s3_request_bytes
        self.slab = Slab(self.block_size)
        hot_bytes = max(self.block_size, int(config.memory_bytes * config.hot_fraction))
        main_bytes = max(self.block_size, config.memory_bytes - hot_bytes)
        self.main = BlockLRU(main_bytes, self._give_back)
        self.hot = BlockLRU(hot_bytes, self._give_back)
        #: Every block on its way in, and every part fetch (one per part: single flight).
        self.fetching: dict[BlockKey, Fetch] = {}
        self.part_fetches: dict[tuple[FileKey, int], Fetch] = {}
        #: ETag of each file's S3 object, from its first ranged GET: later GETs must match it.
        self.etags: dict[FileKey, str] = {}
        #: Fetches run in the mount's nursery: they outlive the request that started them.
        self.tasks = tasks
        self.receiver = Receiver(self.slab, disk, self._arrived)
        #: Receiving threads; the data_streams semaphores are what bound fetches.
        self._receivers = trio.CapacityLimiter(64)
        self._disk_readers = trio.CapacityLimiter(DISK_READERS)
        self._s3_streams = trio.Semaphore(64)
        self._token: trio.lowlevel.TrioToken | None = None
        #: A shared cache dir: what several mounts miss at once is fetched by one (leases.py).
        self.leases: SharedFetches | None = None
        if disk is not None and config.shared:
            self.leases = SharedFetches(LeaseFolder(disk.root.parent / "leases", config.lease_ttl), stats)

    # -- slots ----------------------------------------------------------------------------------

    def _token_now(self) -> trio.lowlevel.TrioToken:
        if self._token is None:
            self._token = trio.lowlevel.current_trio_token()
        return self._token

    def _give_back(self, slot: Slot) -> None:
        """A slot leaves the cache. It is freed after the current task step, never during it:
        a reader that just got a view of it replies to the kernel before the step ends; and
        never while pinned (the last unpin frees it)."""
        if slot.pins:
            slot.evicted = True
            return
        self._token_now().run_sync_soon(self.slab.free, slot)

    def _unpin(self, slot: Slot) -> None:
        slot.pins -= 1
        if slot.pins == 0 and slot.evicted:
            self._give_back(slot)

    # -- lookups --------------------------------------------------------------------------------

    def _is_hot(self, file: CachedFile, block: int) -> bool:
        return file.hot_all or (file.hot_ends and block in (0, file.blocks - 1))

    def _cached(self, key: BlockKey) -> Slot | None:
        slot = self.hot.get(key)
        if slot is None:
            slot = self.main.get(key)
        return slot

    def _store(self, file: CachedFile, key: BlockKey, slot: Slot) -> None:
        """Keeps a filled slot in its LRU (or gives it back if that block is already there)."""
        cache = self.hot if self._is_hot(file, key[1]) else self.main
        if key in cache or slot.length > cache.maxsize:
            self._give_back(slot)
            return
        cache[key] = slot

    def usage(self) -> dict[str, int]:
        """Bytes held per tier, for ``.omicsfs/stats.json``."""
        return {
            "memory_bytes": int(self.main.currsize),
            "hot_bytes": int(self.hot.currsize),
            "memory_limit_bytes": int(self.main.maxsize + self.hot.maxsize),
            "mapped_bytes": self.slab.mapped_bytes,
            "parts_fetching": len(self.part_fetches),
            "blocks_fetching": len(self.fetching),
        }

    def _disk_path(self, file: CachedFile, block: int) -> Path | None:
        if self.disk is None:
            return None
        path = self.disk.path(file.key, file.block_size, block)
        return path if self.disk.has(path) else None

    def block_present(self, file: CachedFile, block: int) -> bool:
        """Whether a block needs no new fetch: on its way in, in memory or on disk."""
        key = (file.key, block)
        return (
            key in self.fetching or self._cached(key) is not None or self._disk_path(file, block) is not None
        )

    def part_present(self, file: CachedFile, part: int) -> bool:
        """Whether a part needs no fetch: being fetched, or its ends cached or on disk."""
        if (file.key, part) in self.part_fetches:
            return True
        blocks = file.part_blocks(part)
        return all(self.block_present(file, block) for block in {blocks[0], blocks[-1]})

    def arriving(self, ref: tuple[Hashable, int]) -> bool:
        """Read-ahead budget hook: whether a unit ((plane, file key), part or block) is coming."""
        owner, unit = ref
        plane, key = cast("tuple[Plane, FileKey]", owner)
        if plane is Plane.PARTS:
            return (key, unit) in self.part_fetches
        return (key, unit) in self.fetching

    # -- reading --------------------------------------------------------------------------------

    async def read(self, file: CachedFile, offset: int, size: int) -> bytes:
        """Bytes [offset, offset+size) of the file, clamped to its length."""
        return bytes(await self.read_buffer(file, offset, size))

    async def read_buffer(self, file: CachedFile, offset: int, size: int) -> bytes | bytearray | memoryview:
        """``read`` without a copy where it can: a request inside one block is a view of the
        cached block, handed to pyfuse3 before the next scheduling point (it replies from any
        buffer). A request across blocks is copied piece by piece as each arrives, because a
        block seen before an ``await`` may be evicted and reused during it."""
        end = min(offset + size, file.size)
        if offset >= end:
            return b""
        first, last = offset // file.block_size, (end - 1) // file.block_size
        if last > first and self.block_present(file, first):
            self.ensure_blocks(file, first + 1, last + 1)  # start now, while we wait for the first
        out: bytearray | None = None
        position = offset
        while position < end:
            block = position // file.block_size
            block_start = file.block_start(block)
            stop = min(end, block_start + file.block_length(block))
            slot = await self._block(file, block, stop - block_start, last + 1)
            piece = slot.memory[position - block_start : stop - block_start]
            if out is None and stop >= end:
                return piece  # one block: no copy
            if out is None:
                out = bytearray(end - offset)
            out[position - offset : stop - offset] = piece
            position = stop
        assert out is not None
        return out

    async def _block(self, file: CachedFile, block: int, need: int, upto: int) -> Slot:
        """A slot holding at least ``need`` bytes of the block. A miss fetches it together with
        the blocks after it up to ``upto`` that the same read wants (one GET, not two)."""
        key: BlockKey = (file.key, block)
        while True:
            slot = self._cached(key)
            if slot is not None:
                self.stats.cache_hits["memory"] += 1
                return slot
            fetch = self.fetching.get(key)
            if fetch is None:
                path = self._disk_path(file, block)
                if path is not None:
                    slot = await self._read_disk(file, key, path)
                    if slot is not None:
                        self.stats.cache_hits["disk"] += 1
                        return slot
                    self.stats.disk_corrupt += 1
                    continue
                self.ensure_blocks(file, block, max(upto, block + 1))
                fetch = self.fetching.get(key)
                if fetch is None:
                    # It became present after we looked: another mount sharing the disk tier
                    # committed it (or a fetch thread of ours did). Go round and read it there.
                    continue
                self.stats.cache_misses += 1
            else:
                self.stats.cache_hits["inflight"] += 1
            slot = await self._wait(fetch, block)
            if slot is not None:
                return slot
            while not fetch.finished:  # our block came and went before we asked: fetch it again
                await fetch.lot.park()

    async def _read_disk(self, file: CachedFile, key: BlockKey, path: Path) -> Slot | None:
        assert self.disk is not None
        disk = self.disk
        length = file.block_length(key[1])
        slot = self.slab.take()
        disk.touch(path)
        good = await trio.to_thread.run_sync(
            disk.read_into, path, slot.memory, length, limiter=self._disk_readers
        )
        if not good:
            log.warning("disk cache entry %s is damaged or truncated; fetching it again", path)
            disk.discard(path)
            self._give_back(slot)
            return None
        slot.length = length
        already = self._cached(key)
        if already is not None:  # another reader got there first
            self._give_back(slot)
            return already
        self._store(file, key, slot)
        return slot

    async def _wait(self, fetch: Fetch, block: int) -> Slot | None:
        fetch.interest[block] = fetch.interest.get(block, 0) + 1
        try:
            while not fetch.received(block) and fetch.error is None and not fetch.finished:
                await fetch.lot.park()
            if not fetch.received(block) and fetch.error is not None:
                if fetch.plane is Plane.S3 and not isinstance(fetch.error, Changed):
                    return None  # the file now reads through parts: go round again
                raise fetch.error
            held = fetch.held.get(block)
            if held is not None:
                return held
            return self._cached((fetch.file.key, block))  # None: evicted, go round again
        finally:
            fetch.interest[block] -= 1
            if fetch.interest[block] == 0:
                del fetch.interest[block]
                held = fetch.held.pop(block, None)
                if held is not None:
                    self._unpin(held)

    # -- starting fetches -----------------------------------------------------------------------

    def request_blocks(self, file: CachedFile) -> int:
        """Blocks of this file in one ranged GET (``s3_request_bytes``)."""
        return max(1, self.request_bytes // file.block_size)

    def ensure_blocks(self, file: CachedFile, first: int, end: int, *, prefetch: bool = False) -> None:
        """Starts fetching whatever of blocks [first, end) is not present, on the file's plane:
        the parts that hold them, or ranged GETs of up to ``s3_request_bytes`` each, split on
        multiples of that size so a sliding window's GETs line up with the ones before them."""
        if not self.planes.reads_s3(file):
            missing = (block for block in range(first, end) if not self.block_present(file, block))
            for part in sorted({file.part_of_block(block) for block in missing}):
                self.ensure_part(file, part, prefetch=prefetch)
            return
        per_request = self.request_blocks(file)
        run: list[int] = []
        for block in range(first, end):
            if self.block_present(file, block):
                if run:
                    self._start(file, Plane.S3, run[0], run[-1] + 1, None, prefetch)
                    run = []
                continue
            run.append(block)
            if (block + 1) % per_request == 0:  # requests end on aligned boundaries
                self._start(file, Plane.S3, run[0], run[-1] + 1, None, prefetch)
                run = []
        if run:
            self._start(file, Plane.S3, run[0], run[-1] + 1, None, prefetch)

    def ensure_part(self, file: CachedFile, part: int, *, prefetch: bool) -> Fetch | None:
        """Starts fetching a part unless it is already coming; returns the fetch if one runs."""
        existing = self.part_fetches.get((file.key, part))
        if existing is not None:
            return existing
        if prefetch and self.part_present(file, part):
            return None
        blocks = file.part_blocks(part)
        fetch = self._start(file, Plane.PARTS, blocks.start, blocks.stop, part, prefetch)
        self.part_fetches[(file.key, part)] = fetch
        return fetch

    def _start(
        self, file: CachedFile, plane: Plane, first: int, end: int, part: int | None, prefetch: bool
    ) -> Fetch:
        fetch = Fetch(file, plane, first, end, part)
        for block in range(first, end):
            self.fetching.setdefault((file.key, block), fetch)
        if prefetch and part is not None:
            self.stats.prefetch_parts += 1
        elif prefetch:
            self.stats.prefetch_blocks += end - first
        self.tasks.start(self._run_fetch, fetch)
        return fetch

    # -- running fetches ------------------------------------------------------------------------

    async def _run_fetch(self, fetch: Fetch) -> None:
        started = trio.current_time()
        log.debug("%s: fetch started", fetch.describe())
        try:
            if self.leases is not None:
                await self.leases.run(fetch, self._fetch_body, self._adopt_from_disk)
            else:
                await self._fetch_body(fetch)
            log.debug("%s: %d blocks in %.2f s", fetch.describe(), fetch.next - fetch.first,
                      trio.current_time() - started)  # fmt: skip
        except BaseException as exc:
            if isinstance(exc, BackendError):
                fetch.error = exc
                if fetch.plane is Plane.S3 and not isinstance(exc, Changed):
                    self.planes.fall_back(fetch.file, exc)
                else:
                    log.warning("fetching %s failed: %s", fetch.describe(), exc)
            else:
                fetch.error = TransportFailure(fetch.operation, f"fetch aborted: {exc!r}")
                if not isinstance(exc, Exception):
                    raise  # cancelled (unmount): the waiting readers get the error above
                log.exception("fetching %s crashed (a bug)", fetch.describe())
        finally:
            fetch.finished = True
            for block in range(fetch.first, fetch.end):
                if self.fetching.get((fetch.file.key, block)) is fetch:
                    del self.fetching[(fetch.file.key, block)]
            if fetch.part is not None:
                self.part_fetches.pop((fetch.file.key, fetch.part), None)
            for held in fetch.held.values():
                self._unpin(held)
            fetch.held.clear()
            fetch.lot.unpark_all()

    async def _fetch_body(self, fetch: Fetch) -> None:
        if fetch.plane is Plane.S3:
            async with self._s3_streams:
                assert self.s3 is not None
                await self.s3.retrying("GetObject", lambda: self._attempt_range(fetch))
        else:
            async with self.backend.data_streams:
                await self.backend.retrying(fetch.operation, lambda: self._attempt_part(fetch))

    async def _adopt_from_disk(self, fetch: Fetch) -> bool:
        """Leases: the fetch's next block, taken from the disk tier where another mount wrote
        it, as if it had arrived; False if it is not there (yet)."""
        block = fetch.next
        path = self._disk_path(fetch.file, block)
        if path is None:
            return False
        key: BlockKey = (fetch.file.key, block)
        slot = await self._read_disk(fetch.file, key, path)
        if slot is None or fetch.next != block:
            return False
        fetch.next = block + 1
        self.stats.cache_hits["shared"] += 1
        if self.fetching.get(key) is fetch:
            del self.fetching[key]
        if fetch.interest.get(block):
            slot.pins += 1
            fetch.held[block] = slot
        fetch.lot.unpark_all()
        return True

    async def _attempt_part(self, fetch: Fetch) -> None:
        """One GetReadSet/GetReference request, resuming at the first block not yet received
        (the body starts at the part's first byte)."""
        assert fetch.part is not None
        body = await self.backend.open_part(fetch.file.source, fetch.part)
        await self._receive(fetch, body, fetch.first)

    async def _attempt_range(self, fetch: Fetch) -> None:
        """One ranged GET of the blocks not yet received, bound to the object's first ETag."""
        file = fetch.file
        if self.s3 is None or file.s3 is None:
            raise TransportFailure("S3:GetObject", f"{file.source.describe()} has no S3 object")
        start = file.block_start(fetch.next)
        stop = file.block_start(fetch.end - 1) + file.block_length(fetch.end - 1)
        opened = await self.s3.open_range(file.s3, start, stop, self.etags.get(file.key))
        self.etags.setdefault(file.key, opened.etag)
        await self._receive(fetch, opened.body, fetch.next)

    async def _receive(self, fetch: Fetch, body: PartBody, origin: int) -> None:
        try:
            await trio.to_thread.run_sync(
                self.receiver.receive, fetch, body, origin, self._token_now(), limiter=self._receivers,
                abandon_on_cancel=True,
            )  # fmt: skip
        except BaseException:
            fetch.abandoned = True
            raise
        finally:
            body.close()
        if fetch.next < fetch.end:
            raise TransportFailure(fetch.operation, f"{fetch.describe()} ended at block {fetch.next}")

    def _arrived(self, fetch: Fetch, block: int, slot: Slot, disk_size: int) -> None:
        """A received block, posted by the worker thread (run_sync_soon: must never raise)."""
        try:
            fetch.posted.release()
            fetch.next = block + 1
            self.stats.backend.bytes_fetched += slot.length
            self.stats.bytes_by_plane[fetch.plane] += slot.length
            key = (fetch.file.key, block)
            if self.fetching.get(key) is fetch:
                del self.fetching[key]
            if disk_size and self.disk is not None:
                self.disk.committed(self.disk.path(fetch.file.key, fetch.file.block_size, block), disk_size)
            if fetch.interest.get(block):
                slot.pins += 1
                fetch.held[block] = slot
            self._store(fetch.file, key, slot)
            fetch.lot.unpark_all()
        except Exception:
            log.exception("taking in block %d of %s failed (a bug)", block, fetch.describe())
