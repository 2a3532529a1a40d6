"""``.omicsfs/stats.json``: the counters plus the state of the caches and uploads.

Reading a file through the mount (rather than a socket) needs no extra port or permission: who
can see the mount can see its counters. ``omicsfs stats`` renders it (omicsfs/cli/stats.py).
"""

from __future__ import annotations

import json
import os

from omicsfs.fs.read.blockcache import BlockCache
from omicsfs.fs.read.readahead import ReadAheadBudget
from omicsfs.fs.stats import Stats
from omicsfs.fs.write.ops import WriteOps


def stats_document(
    stats: Stats, cache: BlockCache, budget: ReadAheadBudget, writes: WriteOps | None
) -> bytes:
    document = stats.snapshot()
    document["daemon"] = {"pid": os.getpid()}  # omicsfs unmount stops a busy mount's daemon by it
    document["cache"].update(cache.usage())
    document["read_ahead"] = {
        "budget_bytes": budget.total_bytes,
        "reserved_bytes": budget.in_use,
        "streams": budget.streams,
        "prefetched_parts": document.pop("prefetch_parts"),
    }
    if writes is not None:
        document["uploads"].update(writes.progress())
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
