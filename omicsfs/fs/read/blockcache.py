"""The block cache: parts streamed into an LRU of blocks, one fetch per part at a time.

GetReadSet has no byte range, so every miss costs a whole part (``partSize`` from the metadata,
100 MiB on AWS). Three rules follow (docs/architecture.md, "The read path"):

- A part is streamed: each block lands in the cache as it arrives and wakes the readers waiting
  on it, so a 4 KiB read at the start of a cold part returns after the first block, not after
  the whole part. Blocks go into an LRU bounded in bytes (``--cache-size``).
- Single flight: one fetch per part however many readers want it; a fetch belongs to the
  mount, not to a reader, so an interrupted reader does not cancel it for the others.
- Index files and the first and last block of BAM/CRAM files live in a separate, smaller LRU,
  so a large sequential scan cannot push out what every htslib open reads.

The receive path is built for bytes per CPU second (docs/architecture.md, "Memory"): one worker
thread receives a whole part, straight into recycled slab slots (``readinto``, no allocation per
chunk), writes each block to the disk tier while it is still on that thread, and hands finished
blocks to the trio thread without waiting for it (``run_sync_soon``), at most a few blocks ahead.
A failed or short body is retried, resuming at the first block not yet received (the bytes
before it are immutable and already delivered); after the attempts run out the readers of that
part get the error, and only they. Blocks are keyed by their place in the file (part, block),
the grid any way of fetching them shares.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import cachetools
import trio

from omicsfs.backend.errors import BackendError, TransportFailure
from omicsfs.backend.interface import Backend, PartBody
from omicsfs.config import CacheConfig
from omicsfs.fs.read.disktier import DiskTier
from omicsfs.fs.read.files import CachedFile, FileKey
from omicsfs.fs.read.slab import Slab, Slot
from omicsfs.fs.stats import Stats
from omicsfs.fs.tasks import TaskGroup

log = logging.getLogger(__name__)

BlockKey = tuple[FileKey, int, int]  # (file, part number, block index in the part)

#: Blocks a receiving thread may hand over before the trio thread has taken them: bounds the
#: memory a busy trio thread lets pile up, without making the receiver wait on every block.
POSTED_AHEAD = 4
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


class PartFetch:
    """One part on its way in."""

    def __init__(self, file: CachedFile, part: int, length: int) -> None:
        self.file = file
        self.part = part
        self.length = length
        #: Bytes received in whole blocks, from the part's start (blocks arrive in order).
        self.filled = 0
        #: Waiting readers per block, and the blocks kept (pinned) for them until they wake.
        self.interest: dict[int, int] = {}
        self.held: dict[int, Slot] = {}
        self.error: BaseException | None = None
        self.finished = False
        self.abandoned = False
        self.lot = trio.lowlevel.ParkingLot()
        self.posted = threading.Semaphore(POSTED_AHEAD)


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
        self.slab = Slab(self.block_size)
        hot_bytes = max(self.block_size, int(config.memory_bytes * config.hot_fraction))
        main_bytes = max(self.block_size, config.memory_bytes - hot_bytes)
        self.main = BlockLRU(main_bytes, self._give_back)
        self.hot = BlockLRU(hot_bytes, self._give_back)
        self.inflight: dict[tuple[FileKey, int], PartFetch] = {}
        #: Fetches run in the mount's nursery: they outlive the request that started them.
        self.tasks = tasks
        #: Receiving threads; the backend's data_streams semaphore is what bounds part fetches.
        self._receivers = trio.CapacityLimiter(64)
        self._disk_readers = trio.CapacityLimiter(DISK_READERS)
        self._token: trio.lowlevel.TrioToken | None = None

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

    def _pin(self, slot: Slot) -> None:
        slot.pins += 1

    def _unpin(self, slot: Slot) -> None:
        slot.pins -= 1
        if slot.pins == 0 and slot.evicted:
            self._give_back(slot)

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

    def _cached(self, key: BlockKey) -> Slot | None:
        slot = self.hot.get(key)
        if slot is None:
            slot = self.main.get(key)
        return slot

    def _store(self, file: CachedFile, key: BlockKey, slot: Slot) -> None:
        """Keeps a filled slot in its LRU (or gives it back if that block is already there)."""
        cache = self.hot if self._is_hot(file, key[1], key[2]) else self.main
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
            "parts_fetching": len(self.inflight),
        }

    def part_arriving(self, ref: tuple[object, int]) -> bool:
        """Whether the part (file key, part number) is being fetched right now."""
        return ref in self.inflight

    def _disk_path(self, file: CachedFile, part: int, block: int) -> Path | None:
        if self.disk is None:
            return None
        path = self.disk.path(file.key, part, block)
        return path if self.disk.has(path) else None

    def part_present(self, file: CachedFile, part: int) -> bool:
        """Whether a part needs no network fetch: in flight, or its ends on disk or in memory."""
        key = file.key
        if (key, part) in self.inflight:
            return True
        last = self._blocks_in_part(file.layout.part_length(part)) - 1
        return all(
            self._cached((key, part, block)) is not None or self._disk_path(file, part, block) is not None
            for block in {0, last}
        )

    # -- reading --------------------------------------------------------------------------------

    async def read(self, file: CachedFile, offset: int, size: int) -> bytes:
        """Bytes [offset, offset+size) of the file, clamped to its length."""
        return bytes(await self.read_buffer(file, offset, size))

    async def read_buffer(self, file: CachedFile, offset: int, size: int) -> bytes | bytearray | memoryview:
        """``read`` without a copy where it can: a request inside one block is a view of the
        cached block, handed to pyfuse3 before the next scheduling point (it replies from any
        buffer). A request across blocks is copied piece by piece as each arrives, because a
        block seen before an ``await`` may be evicted and reused during it."""
        layout = file.layout
        end = min(offset + size, layout.content_length)
        if offset >= end:
            return b""
        first_part = offset // layout.part_size + 1
        last_part = (end - 1) // layout.part_size + 1
        for part in range(first_part + 1, last_part + 1):
            if not self.part_present(file, part):
                self.ensure_fetch(file, part, prefetch=False)  # start now, while we wait for the first
        out: bytearray | None = None
        position = offset
        while position < end:
            part = position // layout.part_size + 1
            part_start = (part - 1) * layout.part_size
            in_part = position - part_start
            block = in_part // self.block_size
            block_start = block * self.block_size
            want_end = min(end - part_start, block_start + self.block_size, layout.part_length(part))
            slot = await self._block(file, part, block, want_end - block_start)
            piece = slot.memory[in_part - block_start : want_end - block_start]
            next_position = part_start + want_end
            if out is None and next_position >= end:
                return piece  # one block: no copy
            if out is None:
                out = bytearray(end - offset)
            out[position - offset : next_position - offset] = piece
            position = next_position
        assert out is not None
        return out

    async def _block(self, file: CachedFile, part: int, block: int, need: int) -> Slot:
        """A slot holding at least ``need`` bytes of the block."""
        key: BlockKey = (file.key, part, block)
        while True:
            slot = self._cached(key)
            if slot is not None:
                self.stats.cache_hits["memory"] += 1
                return slot
            fetch = self.inflight.get((file.key, part))
            if fetch is None:
                path = self._disk_path(file, part, block)
                if path is not None:
                    slot = await self._read_disk(file, key, path)
                    if slot is not None:
                        self.stats.cache_hits["disk"] += 1
                        return slot
                    self.stats.disk_corrupt += 1
                    continue
                self.stats.cache_misses += 1
                fetch = self.ensure_fetch(file, part, prefetch=False)
                assert fetch is not None
            else:
                self.stats.cache_hits["inflight"] += 1
            slot = await self._wait(fetch, block, need)
            if slot is not None:
                return slot
            while not fetch.finished:  # our block came and went before we asked: fetch it again
                await fetch.lot.park()

    async def _read_disk(self, file: CachedFile, key: BlockKey, path: Path) -> Slot | None:
        assert self.disk is not None
        disk = self.disk
        part, block = key[1], key[2]
        length = min(self.block_size, file.layout.part_length(part) - block * self.block_size)
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

    async def _wait(self, fetch: PartFetch, block: int, need: int) -> Slot | None:
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
            return self._cached((fetch.file.key, fetch.part, block))  # None: evicted, go round again
        finally:
            fetch.interest[block] -= 1
            if fetch.interest[block] == 0:
                del fetch.interest[block]
                held = fetch.held.pop(block, None)
                if held is not None:
                    self._unpin(held)

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
        started = trio.current_time()
        log.debug("part %d of %s: fetch started", fetch.part, fetch.file.source.describe())
        try:
            async with self.backend.data_streams:
                await self.backend.retrying(fetch.file.source.operation, lambda: self._attempt(fetch))
            log.debug(
                "part %d of %s: %d bytes in %.2f s",
                fetch.part, fetch.file.source.describe(), fetch.filled, trio.current_time() - started,
            )  # fmt: skip
        except BaseException as exc:
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
            for held in fetch.held.values():
                self._unpin(held)
            fetch.held.clear()
            fetch.lot.unpark_all()

    async def _attempt(self, fetch: PartFetch) -> None:
        """One GetReadSet/GetReference request, resuming at the first block not yet received."""
        body = await self.backend.open_part(fetch.file.source, fetch.part)
        start_block = fetch.filled // self.block_size
        try:
            await trio.to_thread.run_sync(
                self._receive, fetch, body, start_block, self._token_now(), limiter=self._receivers,
                abandon_on_cancel=True,
            )  # fmt: skip
        except BaseException:
            fetch.abandoned = True
            raise
        finally:
            body.close()
        if fetch.filled < fetch.length:
            raise TransportFailure(
                fetch.file.source.operation,
                f"part {fetch.part} body ended at {fetch.filled} of {fetch.length} bytes",
            )

    # -- on the receiving worker thread ---------------------------------------------------------

    def _receive(
        self, fetch: PartFetch, body: PartBody, start_block: int, token: trio.lowlevel.TrioToken
    ) -> None:
        """Receives the part from ``start_block`` on (the body starts at the part's first byte)
        into slab slots, writing each to the disk tier, and posts each to the trio thread."""
        operation = fetch.file.source.operation
        self._skip(body, start_block * self.block_size, operation)
        blocks = self._blocks_in_part(fetch.length)
        for block in range(start_block, blocks):
            length = min(self.block_size, fetch.length - block * self.block_size)
            slot = self.slab.take()
            try:
                _fill(body, slot.memory[:length], operation, fetch.part)
                slot.length = length
                disk_size = self._write_disk(fetch, block, slot)
            except BaseException:
                self.slab.free(slot)  # nobody else has seen it
                raise
            while not fetch.posted.acquire(timeout=1.0):
                if fetch.abandoned:
                    self.slab.free(slot)
                    return
            try:
                token.run_sync_soon(self._arrived, fetch, block, slot, disk_size)
            except trio.RunFinishedError:
                return
        tail = memoryview(bytearray(1))
        if body.readinto(tail):
            raise TransportFailure(operation, f"part {fetch.part} is longer than its metadata says")

    def _skip(self, body: PartBody, count: int, operation: str) -> None:
        if not count:
            return
        scratch = self.slab.take()
        try:
            while count:
                got = body.readinto(scratch.memory[: min(count, self.block_size)])
                if not got:
                    raise TransportFailure(operation, "the body ended before the bytes already received")
                count -= got
        finally:
            self.slab.free(scratch)

    def _write_disk(self, fetch: PartFetch, block: int, slot: Slot) -> int:
        """Writes the block to the disk tier (on this worker thread); its size there, 0 if none."""
        if self.disk is None:
            return 0
        path = self.disk.path(fetch.file.key, fetch.part, block)
        try:
            return self.disk.write(path, slot.view)
        except OSError as exc:
            log.warning("disk cache write of %s failed (%s); the block is kept in memory only", path, exc)
            return 0

    # -- back on the trio thread ----------------------------------------------------------------

    def _arrived(self, fetch: PartFetch, block: int, slot: Slot, disk_size: int) -> None:
        """A received block, posted by the worker thread (run_sync_soon: must never raise)."""
        try:
            fetch.posted.release()
            fetch.filled = block * self.block_size + slot.length
            self.stats.backend.bytes_fetched += slot.length
            if disk_size and self.disk is not None:
                self.disk.committed(self.disk.path(fetch.file.key, fetch.part, block), disk_size)
            if fetch.interest.get(block):
                self._pin(slot)
                fetch.held[block] = slot
            self._store(fetch.file, (fetch.file.key, fetch.part, block), slot)
            fetch.lot.unpark_all()
        except Exception:
            log.exception("taking in block %d of part %d failed (a bug)", block, fetch.part)


def _fill(body: PartBody, memory: memoryview, operation: str, part: int) -> None:
    got = 0
    while got < len(memory):
        count = body.readinto(memory[got:])
        if not count:
            raise TransportFailure(operation, f"part {part} body ended early")
        got += count
