"""Read-ahead: which parts (or, on the S3 plane, which blocks) to fetch before a reader asks.

Parts (GetReadSet) (docs/architecture.md, "Read-ahead"; dxfuse's prefetcher, Mountpoint's window
growth):
- The first read fetches only its own part. A stream is declared sequential after two in-order
  reads or once it has consumed half of its current part (dxfuse's half-chunk rule).
- Then the next part is fetched ahead, and the depth doubles each time the reader reads another
  ``growth_bytes`` (8 MiB, or a quarter part if parts are smaller) in order: 1 -> 2 -> 4 -> 8
  parts (``max_depth``), eight parts in flight 24 MiB into a read. The real service streams each part
  over one connection at a rate the client cannot raise, so a reader goes only as fast as the
  parts it keeps in flight; a window that waited for half a 100 MiB part kept a paced reader
  below a client that starts with four (benchmarks/cold_read.py).
Blocks (S3 ranged GETs), Mountpoint's prefetcher: a miss fetches only the block it needs; a
sequential stream's window starts at one block and doubles each time the reader has read as
much as the window, up to ``s3_max_window``; forward jumps within the window are served by the
data already in flight. Once the window is a request (``s3_request_bytes``) or more, it advances a
whole aligned request at a time, so a sequential reader's GETs are all full-sized.
Both: a read far from where the previous one ended resets the stream, so random readers
(samtools region queries) get no read-ahead. Small jumps are tolerated, because the kernel issues
its own readahead requests concurrently and they can arrive slightly out of order (Mountpoint
tolerates 16 MiB forward and 1 MiB back).
All streams share one byte budget and a cap on how many streams prefetch at once, so 32 open
files cannot multiply memory by 32 (https://github.com/awslabs/mountpoint-s3/issues/1326).
A stream is charged for every unit of its window, whether that unit is still arriving or
already cached and waiting for the reader, and a unit it gave up (a seek, a close) stays charged
until its fetch has finished: what the budget bounds is every prefetched byte the readers have
not reached yet, not only the fetches started by the latest read.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

from omicsfs.backend.models import FileLayout

FORWARD_TOLERANCE = 16 << 20
BACKWARD_TOLERANCE = 1 << 20


def _near(next_offset: int, offset: int) -> bool:
    return next_offset >= 0 and next_offset - BACKWARD_TOLERANCE <= offset <= next_offset + FORWARD_TOLERANCE


@dataclass
class StreamState:
    """A stream on the parts plane: its window in parts."""

    next_offset: int = -1
    in_order: int = 0
    depth: int = 0
    part: int = 0
    consumed_in_part: int = 0
    since_growth: int = 0

    def observe(self, offset: int, size: int, layout: FileLayout, max_depth: int, growth: int) -> list[int]:
        """Records a read and returns the part numbers that should be fetched ahead of it."""
        part = layout.part_of(offset)
        near = _near(self.next_offset, offset)
        if near:
            self.in_order += 1
        else:
            self.in_order = 0
            self.depth = 0
            self.consumed_in_part = 0
            self.since_growth = 0
        if part != self.part:
            self.part = part
            self.consumed_in_part = 0
        self.consumed_in_part += size
        self.since_growth += size
        halfway = self.consumed_in_part * 2 >= layout.part_length(part)
        self.next_offset = max(self.next_offset, offset + size) if near else offset + size
        if self.depth == 0 and near and (self.in_order >= 2 or halfway):
            self.depth = 1
            self.since_growth = 0
        elif self.depth and near and self.since_growth >= min(growth, layout.part_size // 4):
            self.depth = min(self.depth * 2, max_depth)
            self.since_growth = 0
        return list(self._ahead(layout))

    def _ahead(self, layout: FileLayout) -> range:
        """The parts of the window: those after the one being read, up to ``depth`` of them."""
        return range(self.part + 1, min(layout.total_parts, self.part + self.depth) + 1)

    def window_bytes(self, layout: FileLayout) -> int:
        """Bytes the window asks for beyond the part being read (stats.json)."""
        return sum(layout.part_length(part) for part in self._ahead(layout))


@dataclass
class RangeStream:
    """A stream on the S3 plane: its window in blocks beyond the one being read."""

    next_offset: int = -1
    in_order: int = 0
    window: int = 0
    since_growth: int = 0

    def observe(
        self, offset: int, size: int, block_size: int, blocks: int, max_window: int, request_blocks: int = 1
    ) -> list[int]:
        """Records a read and returns the blocks that should be fetched ahead of it.

        The window's far end stays on a multiple of the window's size, or of ``request_blocks``
        (one GET) once the window is that large, so it moves a whole aligned GET at a time.
        Sliding it a block per read started one 1 MiB GET per MiB read: 579 GETs for 634 MiB,
        each signed and sent from Python (benchmarks/data_planes.py)."""
        near = _near(self.next_offset, offset)
        if near:
            self.in_order += 1
        else:
            self.in_order = 0
            self.window = 0
            self.since_growth = 0
        self.next_offset = max(self.next_offset, offset + size) if near else offset + size
        self.since_growth += size
        if self.window == 0 and near and self.in_order >= 2:
            self.window = 1
            self.since_growth = 0
        elif self.window and near and self.since_growth >= self.window * block_size:
            self.window = min(self.window * 2, max(1, max_window // block_size))
            self.since_growth = 0
        block = (offset + size - 1) // block_size
        end = min(blocks, block + 1 + self.window)
        step = min(self.window, request_blocks)
        if step > 1 and end < blocks:
            end -= end % step
        return list(range(block + 1, end))

    def window_bytes(self, block_size: int) -> int:
        """Bytes the window asks for beyond the block being read (stats.json)."""
        return self.window * block_size


#: One unit of one file: (the file's cache key and plane, part or block number).
PartRef = tuple[Hashable, int]


class ReadAheadBudget:
    """Bytes of read-ahead charged to each stream, within one total and a stream cap.

    ``arriving`` tells whether a part's fetch is still running; parts a stream no longer wants
    stay charged (as orphans) until then.
    """

    def __init__(self, total_bytes: int, max_streams: int, arriving: Callable[[PartRef], bool]) -> None:
        self.total_bytes = total_bytes
        self.max_streams = max_streams
        self._arriving = arriving
        self._held: dict[int, dict[PartRef, int]] = {}
        self._orphans: dict[PartRef, int] = {}

    def _sweep(self) -> None:
        self._orphans = {ref: size for ref, size in self._orphans.items() if self._arriving(ref)}

    @property
    def in_use(self) -> int:
        self._sweep()
        return sum(sum(held.values()) for held in self._held.values()) + sum(self._orphans.values())

    @property
    def streams(self) -> int:
        return len(self._held)

    def _let_go(self, held: dict[PartRef, int]) -> None:
        for ref, size in held.items():
            if self._arriving(ref):
                self._orphans[ref] = size

    def grant(
        self, stream: int, file: Hashable, window: list[int], part_length: Callable[[int], int]
    ) -> list[int]:
        """The parts of ``window`` (in order) this stream may have fetched ahead: the ones it
        already holds, then as many more as the budget has room for."""
        held = self._held.pop(stream, {})
        wanted = {(file, part) for part in window}
        kept = {ref: size for ref, size in held.items() if ref in wanted}
        self._let_go({ref: size for ref, size in held.items() if ref not in wanted})
        if window and (kept or len(self._held) < self.max_streams):
            room = self.total_bytes - self.in_use - sum(kept.values())
            for part in window:
                ref = (file, part)
                if ref in kept:
                    continue
                size = part_length(part)
                if size > room:
                    break
                kept[ref] = size
                room -= size
        if kept:
            self._held[stream] = kept
        return [part for part in window if (file, part) in kept]

    def held_bytes(self, stream: int) -> int:
        """Bytes charged to one stream's window (stats.json)."""
        return sum(self._held.get(stream, {}).values())

    def release(self, stream: int) -> None:
        """The stream is closed: its parts still arriving stay charged until they have arrived."""
        self._let_go(self._held.pop(stream, {}))
