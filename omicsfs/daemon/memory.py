"""Keeping the daemon's RSS at what the block cache holds.

Part bodies are read on worker threads in 1 MiB chunks, so glibc serves each block from that
thread's malloc arena and, once the dynamic mmap threshold has risen past 1 MiB (it does after
the first large free), from the arena's heap. A block evicted on the trio thread goes back to its
arena's free lists, where only that arena can reuse it; with a dozen arenas and blocks freed in
LRU order the heaps fragment and RSS drifts above the cache. Measured with 32 files read at once
and a 256 MiB cache: VmHWM 410-461 MiB, over the 406 MiB bound (cache + 150 MiB). A fixed mmap
threshold below the block size gives every block its own mapping, returned to the kernel the
moment it is evicted: VmHWM 303-305 MiB in the same run (benchmarks/mount_read.py --only rss).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3
#: Allocations from this size up get their own mapping: cache blocks (1 MiB) and part chunks.
MMAP_THRESHOLD = 256 * 1024


def map_large_blocks_individually() -> bool:
    """Fixes glibc's mmap threshold (which also stops its dynamic growth); False where the C
    library has no ``mallopt`` (musl) or refuses, and the daemon runs on without it."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        done = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        done = False
    if not done:
        log.debug("mallopt(M_MMAP_THRESHOLD) is not available; RSS may exceed the cache size more")
    return done
