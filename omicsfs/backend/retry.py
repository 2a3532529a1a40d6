"""One retry policy for every HealthOmics call: capped exponential backoff with full jitter.

botocore's own retries are switched off (``total_max_attempts=1``) for two reasons: its backoff
sleeps inside the worker thread, holding a slot of the data or control limiter while it waits,
and a part fetch must resume mid-body, which botocore cannot do. About ten attempts with
doubling delays follows Mountpoint (10) and dxfuse (3 raised to 10); research/fuse-anchors.md C2.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 10
    base_delay: float = 0.1
    max_delay: float = 20.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)
