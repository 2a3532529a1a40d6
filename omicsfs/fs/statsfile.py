"""``.omicsfs/stats.json``: the counters plus the state of the caches and uploads.

Reading a file through the mount (rather than a socket) needs no extra port or permission: who
can see the mount can see its counters. ``omicsfs stats`` renders it (omicsfs/cli/stats.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict

from omicsfs.fs.read.blockcache import BlockCache
from omicsfs.fs.read.readahead import ReadAheadBudget
from omicsfs.fs.read.reader import Window
from omicsfs.fs.stats import Stats
from omicsfs.fs.write.ops import WriteOps

#: Open files listed under ``read_ahead.windows``: the widest windows first, so a mount with
#: thousands of open files still answers with a small document.
MAX_WINDOWS = 32

#: The data calls of each plane, as backend/stats.py counts them.
PLANE_CALLS = {"parts": ("GetReadSet", "GetReference"), "s3": ("S3:GetObject",)}


def stats_document(
    stats: Stats,
    cache: BlockCache,
    budget: ReadAheadBudget,
    windows: Sequence[Window],
    writes: WriteOps | None,
) -> bytes:
    document = stats.snapshot()
    calls = document["api_calls"]
    document["planes"]["calls"] = {
        plane: sum(calls.get(operation, 0) for operation in operations)
        for plane, operations in PLANE_CALLS.items()
    }
    document["daemon"] = {"pid": os.getpid()}  # omicsfs unmount stops a busy mount's daemon by it
    document["cache"].update(cache.usage())
    document["read_ahead"] = {
        "budget_bytes": budget.total_bytes,
        "reserved_bytes": budget.in_use,
        "streams": budget.streams,
        "prefetched_parts": document.pop("prefetch_parts"),
        "prefetched_blocks": document.pop("prefetch_blocks"),
        "windows": [
            asdict(window)
            for window in sorted(windows, key=lambda w: (-w.window_bytes, w.file))[:MAX_WINDOWS]
        ],
    }
    if writes is not None:
        document["uploads"].update(writes.progress())
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
