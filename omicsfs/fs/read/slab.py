"""Memory for cache blocks: fixed-size slots carved from large anonymous mappings, recycled.

Receiving a part into freshly allocated memory was the largest cost of a cold read: a new 1 MiB
``bytes`` per chunk is a new mapping (glibc maps allocations this large individually), zeroed,
faulted in page by page and unmapped again on eviction. Here the cache owns its memory: slots
of ``block_size`` bytes are slices of 16 MiB mappings, bodies are received straight into them
(``readinto``), and a slot the LRU evicts goes back to a free list instead of to the kernel, so
a warm daemon receives into pages that are already mapped (docs/architecture.md, "Memory").

A slot is reused only when nothing can still read it. The rules that make that true:
- readers consume a slot's view before their next ``await`` (copy it, or hand it to pyfuse3,
  which replies synchronously), so no view outlives a scheduling point;
- whoever must hold a slot across awaits (waiters being woken) pins it; a pinned slot the LRU
  evicts is freed only when its last pin goes;
- a slot leaving the cache is freed after the current trio task step, never during it, because
  a reader may have just taken a view of it and replies before the step ends.
The pins and those rules are the block cache's (blockcache.py); the slab only hands slots out and
takes them back. Its free list is shared with worker threads, which take slots to receive into,
so it is locked.
"""

from __future__ import annotations

import mmap
import threading
from dataclasses import dataclass, field

#: Mapping size: many blocks per mapping keeps the number of mappings (and syscalls) small.
REGION_BYTES = 16 << 20


@dataclass(eq=False)
class Slot:
    """One block of memory. ``length`` is how many bytes of it hold data."""

    memory: memoryview
    length: int = 0
    pins: int = 0
    #: In a cache (or being filled): a slot leaves the free list only through ``take``.
    in_use: bool = False
    #: The LRU let it go while it was pinned: it is freed when the last pin goes.
    evicted: bool = field(default=False)

    @property
    def view(self) -> memoryview:
        return self.memory[: self.length]


class Slab:
    def __init__(self, block_size: int) -> None:
        if REGION_BYTES % block_size:
            raise ValueError(f"the block size must divide {REGION_BYTES >> 20} MiB")
        self.block_size = block_size
        self._free: list[Slot] = []
        self._regions: list[mmap.mmap] = []
        self._lock = threading.Lock()
        self._growing = threading.Lock()

    @property
    def mapped_bytes(self) -> int:
        return len(self._regions) * REGION_BYTES

    @property
    def free_slots(self) -> int:
        return len(self._free)

    def take(self) -> Slot:
        """A slot to fill; safe to call from worker threads."""
        slot = self._pop()
        if slot is None:
            with self._growing:  # one region at a time, or racing takers would each map one
                slot = self._pop() or self._grow()
        slot.in_use, slot.evicted, slot.length, slot.pins = True, False, 0, 0
        return slot

    def _pop(self) -> Slot | None:
        with self._lock:
            return self._free.pop() if self._free else None

    def _grow(self) -> Slot:
        """Maps and faults in one more region outside the free list's lock: populating 16 MiB of
        memory the machine has not used lately takes milliseconds (benchmarks/fresh_memory.py),
        and the trio thread frees slots under that lock, so holding it here stalled every
        request."""
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE
        region = mmap.mmap(-1, REGION_BYTES, flags=flags)
        whole = memoryview(region)
        size = self.block_size
        slots = [Slot(whole[start : start + size]) for start in range(0, REGION_BYTES, size)]
        with self._lock:
            self._regions.append(region)
            self._free.extend(slots[1:])
        return slots[0]

    def free(self, slot: Slot) -> None:
        """The slot goes back to the free list at once; safe from any thread. The block cache
        calls it only when nothing can still read the slot (see the rules above)."""
        slot.in_use = False
        with self._lock:
            self._free.append(slot)
