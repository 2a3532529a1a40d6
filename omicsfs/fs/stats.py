"""Counters every layer adds to, so caching and retry behaviour can be observed and asserted.

Counters are plain ints mutated on the trio thread only (research/codebase-models.md, "What to
absorb" 13: keep hit/miss/bytes counters from day one).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    api_calls: Counter[str] = field(default_factory=Counter)
    api_errors: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    throttled: int = 0
    rate_limit_waits: int = 0
    bytes_fetched: int = 0
    cache_hits: Counter[str] = field(default_factory=Counter)
    cache_misses: int = 0
    disk_corrupt: int = 0
    errors_by_errno: Counter[str] = field(default_factory=Counter)
    prefetch_parts: int = 0
    bytes_uploaded: int = 0
    uploads_completed: int = 0
    uploads_aborted: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "api_calls": dict(self.api_calls),
            "api_errors": dict(self.api_errors),
            "retries": dict(self.retries),
            "throttled": self.throttled,
            "rate_limit_waits": self.rate_limit_waits,
            "bytes_fetched": self.bytes_fetched,
            "cache": {"hits": dict(self.cache_hits), "misses": self.cache_misses,
                      "disk_corrupt": self.disk_corrupt},
            "prefetch_parts": self.prefetch_parts,
            "errors_by_errno": dict(self.errors_by_errno),
            "uploads": {"bytes_uploaded": self.bytes_uploaded, "completed": self.uploads_completed,
                        "aborted": self.uploads_aborted, "in_flight": {}},
        }  # fmt: skip
