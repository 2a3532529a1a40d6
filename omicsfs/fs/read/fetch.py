"""One fetch of a run of blocks, and the worker-thread loop that receives it.

A fetch is either a whole part (GetReadSet/GetReference, whose body always starts at the part's
first byte) or a ranged GET of a run of blocks (the S3 plane, whose body starts where asked).
Either way one worker thread receives the body straight into slab slots (``readinto``, no
allocation per chunk), writes each block to the disk tier while it is still on that thread, and
posts it to the trio thread without waiting for it (``run_sync_soon``), at most a few blocks
ahead (docs/architecture.md, "Memory").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from enum import StrEnum

import trio

from omicsfs.backend.errors import TransportFailure
from omicsfs.backend.interface import PartBody
from omicsfs.fs.read.disktier import DiskTier
from omicsfs.fs.read.files import CachedFile
from omicsfs.fs.read.slab import Slab, Slot

log = logging.getLogger(__name__)

#: Blocks a receiving thread may hand over before the trio thread has taken them: bounds the
#: memory a busy trio thread lets pile up, without making the receiver wait on every block.
POSTED_AHEAD = 4


class Plane(StrEnum):
    PARTS = "parts"
    S3 = "s3"


class Fetch:
    """Blocks [first, end) of a file on their way in; ``part`` is set for a part fetch."""

    def __init__(self, file: CachedFile, plane: Plane, first: int, end: int, part: int | None) -> None:
        self.file = file
        self.plane = plane
        self.first = first
        self.end = end
        self.part = part
        #: The first block not received yet (blocks arrive in order).
        self.next = first
        #: Waiting readers per block, and the blocks kept (pinned) for them until they wake.
        self.interest: dict[int, int] = {}
        self.held: dict[int, Slot] = {}
        self.error: BaseException | None = None
        self.finished = False
        self.abandoned = False
        self.lot = trio.lowlevel.ParkingLot()
        self.posted = threading.Semaphore(POSTED_AHEAD)

    @property
    def operation(self) -> str:
        return "S3:GetObject" if self.plane is Plane.S3 else self.file.source.operation

    def describe(self) -> str:
        what = f"part {self.part}" if self.part is not None else f"blocks {self.first}-{self.end - 1}"
        return f"{what} of {self.file.source.describe()} ({self.plane})"

    def received(self, block: int) -> bool:
        return block < self.next


#: Called on the trio thread with each received block: (fetch, block, slot, bytes on disk).
OnBlock = Callable[[Fetch, int, Slot, int], None]


class Receiver:
    def __init__(self, slab: Slab, disk: DiskTier | None, on_block: OnBlock) -> None:
        self.slab = slab
        self.disk = disk
        self.on_block = on_block

    def receive(self, fetch: Fetch, body: PartBody, origin: int, token: trio.lowlevel.TrioToken) -> None:
        """On a worker thread: receives blocks [fetch.next, fetch.end) of a body that starts at
        block ``origin`` (blocks before ``fetch.next`` are skipped) and posts each one."""
        file = fetch.file
        start = fetch.next
        self._skip(body, file.block_start(start) - file.block_start(origin), fetch.operation)
        for block in range(start, fetch.end):
            length = file.block_length(block)
            slot = self.slab.take()
            try:
                _fill(body, slot.memory[:length], fetch.operation, fetch)
                slot.length = length
                disk_size = self._write_disk(file, block, slot)
            except BaseException:
                self.slab.free(slot)  # nobody else has seen it
                raise
            while not fetch.posted.acquire(timeout=1.0):
                if fetch.abandoned:
                    self.slab.free(slot)
                    return
            try:
                token.run_sync_soon(self.on_block, fetch, block, slot, disk_size)
            except trio.RunFinishedError:
                return
        if body.readinto(memoryview(bytearray(1))):
            raise TransportFailure(fetch.operation, f"{fetch.describe()} sent more bytes than it should")
        # The read that returns 0 is also what lets the body give its connection back to the
        # pool (omics.py); without it every ranged GET opened a new connection.

    def _skip(self, body: PartBody, count: int, operation: str) -> None:
        if not count:
            return
        scratch = self.slab.take()
        try:
            while count:
                got = body.readinto(scratch.memory[: min(count, len(scratch.memory))])
                if not got:
                    raise TransportFailure(operation, "the body ended before the bytes already received")
                count -= got
        finally:
            self.slab.free(scratch)

    def _write_disk(self, file: CachedFile, block: int, slot: Slot) -> int:
        """Writes the block to the disk tier (on this worker thread); its size there, 0 if none."""
        if self.disk is None:
            return 0
        path = self.disk.path(file.key, file.block_size, block)
        try:
            return self.disk.write(path, slot.view)
        except OSError as exc:
            log.warning("disk cache write of %s failed (%s); the block is kept in memory only", path, exc)
            return 0


def _fill(body: PartBody, memory: memoryview, operation: str, fetch: Fetch) -> None:
    got = 0
    while got < len(memory):
        count = body.readinto(memory[got:])
        if not count:
            raise TransportFailure(operation, f"the body of {fetch.describe()} ended early")
        got += count
