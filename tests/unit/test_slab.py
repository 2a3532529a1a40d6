"""The slab: recycled block memory, and growth that never holds up the threads freeing slots."""

from __future__ import annotations

import mmap
import threading
from typing import Any

import pytest

from omicsfs.fs.read.slab import REGION_BYTES, Slab, Slot

BLOCK = 1 << 20
PER_REGION = REGION_BYTES // BLOCK


def test_a_freed_slot_is_handed_out_again_instead_of_new_memory() -> None:
    slab = Slab(BLOCK)
    first = slab.take()
    first.memory[:4] = b"ACGT"
    slab.free(first)
    again = slab.take()
    assert again is first
    assert (again.in_use, again.length, again.pins, again.evicted) == (True, 0, 0, False)
    assert slab.mapped_bytes == REGION_BYTES


def test_growing_maps_one_region_of_slots_of_the_block_size() -> None:
    slab = Slab(BLOCK)
    slots = [slab.take() for _ in range(PER_REGION + 1)]
    assert slab.mapped_bytes == 2 * REGION_BYTES
    assert all(len(slot.memory) == BLOCK for slot in slots)
    assert len({id(slot.memory.obj) for slot in slots}) == 2  # two mappings, not one per slot


def test_a_block_size_that_does_not_divide_a_region_is_refused() -> None:
    with pytest.raises(ValueError, match="must divide"):
        Slab(3 << 20)


def test_freeing_and_taking_go_on_while_another_thread_faults_in_a_region(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Faulting in fresh memory takes milliseconds; the trio thread frees slots meanwhile and must
    not wait for it (it did, when the region was mapped under the free list's lock)."""
    slab = Slab(BLOCK)
    held = [slab.take() for _ in range(PER_REGION)]  # the first region, all in use
    entered, release = threading.Event(), threading.Event()
    real_mmap = mmap.mmap

    def slow_mmap(*args: Any, **kwargs: Any) -> mmap.mmap:
        entered.set()
        assert release.wait(30)
        return real_mmap(*args, **kwargs)

    monkeypatch.setattr(mmap, "mmap", slow_mmap)  # the slab calls mmap.mmap at growth
    grown: list[Slot] = []
    grower = threading.Thread(target=lambda: grown.append(slab.take()))
    grower.start()
    assert entered.wait(30)
    slab.free(held[0])  # would block here until the region was in
    assert slab.take() is held[0]  # a free slot is handed out without waiting for the growth
    release.set()
    grower.join(30)
    assert not grower.is_alive()
    assert grown[0] not in held
    assert slab.mapped_bytes == 2 * REGION_BYTES
    assert slab.free_slots == PER_REGION - 1
