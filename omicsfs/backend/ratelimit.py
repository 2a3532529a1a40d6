"""A token bucket per API class, so the mount stays under HealthOmics' published TPS quotas.

The real service allows 5 metadata/list calls, 30 GetReadSet and 10 GetReference calls per second
(https://docs.aws.amazon.com/omics/latest/dev/service-quotas.html). Staying under them on the
client is cheaper than being throttled and retrying: a throttled call costs a round trip and a
backoff sleep. Time is trio's clock, so tests drive the bucket with ``trio.testing.MockClock``.
"""

from __future__ import annotations

import trio


class TokenBucket:
    """``rate`` calls per second on average, bursts of up to ``burst``; waiters queue in order."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if not rate > 0:
            raise ValueError("a rate limit must be positive")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._tokens = self.burst
        self._stamp: float | None = None  # trio's clock exists only inside trio.run
        self._lock = trio.Lock()  # FIFO: the first caller to wait is the first served
        self.waits = 0

    def _refill(self) -> None:
        now = trio.current_time()
        if self._stamp is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self) -> bool:
        """Takes one token, waiting for it if need be; True if this call had to wait."""
        async with self._lock:
            self._refill()
            waited = self._tokens < 1
            if waited:
                self.waits += 1
                await trio.sleep((1 - self._tokens) / self.rate)
                self._refill()
            self._tokens -= 1
            return waited
