"""Counters every layer adds to, so caching and retry behaviour can be observed and asserted.

Counters are plain ints mutated on the trio thread only; keeping hit, miss and byte counters
from day one is what lets tests assert that a second read made no call (docs/architecture.md,
"Testing"). The backend keeps its own (backend/stats.py); this object holds them too, so one
snapshot shows everything.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from omicsfs.backend.stats import BackendStats


@dataclass
class Stats:
    backend: BackendStats = field(default_factory=BackendStats)
    cache_hits: Counter[str] = field(default_factory=Counter)
    cache_misses: int = 0
    disk_corrupt: int = 0
    errors_by_errno: Counter[str] = field(default_factory=Counter)
    #: FUSE read requests answered and their bytes: the mean request size says how well kernel
    #: readahead batches a reader's small reads (docs/architecture.md, "Kernel caching").
    read_requests: int = 0
    read_bytes: int = 0
    prefetch_parts: int = 0
    prefetch_blocks: int = 0
    #: Bytes received per data plane ("parts", "s3"), and files switched from S3 to parts.
    bytes_by_plane: Counter[str] = field(default_factory=Counter)
    s3_fallbacks: int = 0
    #: File sizes taken from S3 listings instead of metadata calls.
    s3_listed_sizes: int = 0
    uploads_completed: int = 0
    uploads_aborted: int = 0
    #: A shared cache dir (read/leases.py): fetches that waited for another mount's lease, were
    #: served whole by its blocks, ran under a lease, or broke an expired one.
    shared: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> dict[str, Any]:
        backend = self.backend.snapshot()
        return {
            **{k: v for k, v in backend.items() if k != "bytes_uploaded"},
            "cache": {"hits": dict(self.cache_hits), "misses": self.cache_misses,
                      "disk_corrupt": self.disk_corrupt},
            "prefetch_parts": self.prefetch_parts,
            "prefetch_blocks": self.prefetch_blocks,
            "planes": {"bytes": dict(self.bytes_by_plane), "s3_fallbacks": self.s3_fallbacks,
                       "s3_listed_sizes": self.s3_listed_sizes},
            "errors_by_errno": dict(self.errors_by_errno),
            "shared_cache": dict(self.shared),
            "reads": {"requests": self.read_requests, "bytes": self.read_bytes},
            "uploads": {"bytes_uploaded": backend["bytes_uploaded"], "completed": self.uploads_completed,
                        "aborted": self.uploads_aborted, "in_flight": {}},
        }  # fmt: skip
