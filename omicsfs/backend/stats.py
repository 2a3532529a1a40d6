"""Counters of the calls the backend makes, so pacing and retries can be observed and asserted.

Plain ints, mutated on the trio thread only. The filesystem's own counters (omicsfs/fs/stats.py)
hold one of these; ``.omicsfs/stats.json`` shows both.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class BackendStats:
    api_calls: Counter[str] = field(default_factory=Counter)
    #: ``Operation:ErrorCode`` -> count, for every failed attempt (retried or not).
    api_errors: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    throttled: int = 0
    #: Calls that waited for a token of the client-side rate limiter.
    rate_limit_waits: int = 0
    bytes_fetched: int = 0
    bytes_uploaded: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "api_calls": dict(self.api_calls),
            "api_errors": dict(self.api_errors),
            "retries": dict(self.retries),
            "throttled": self.throttled,
            "rate_limit_waits": self.rate_limit_waits,
            "bytes_fetched": self.bytes_fetched,
            "bytes_uploaded": self.bytes_uploaded,
        }
