"""One retry policy for every HealthOmics call: capped exponential backoff with full jitter.

botocore's own retries are switched off (``total_max_attempts=1``, backend/client.py) for two
reasons: its backoff sleeps inside the worker thread, holding a slot of the data or control
limiter while it waits, and a part fetch must resume mid-body, which botocore cannot do
(docs/architecture.md, "Retries"). The loop sleeps with ``trio.sleep``, so a fake clock drives it
in the unit tests.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from omicsfs.backend.errors import BackendError, Throttled
from omicsfs.backend.stats import BackendStats
from omicsfs.config import RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")


def backoff_delay(policy: RetryPolicy, attempt: int) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): half to all of the ceiling."""
    ceiling = min(policy.max_delay, policy.base_delay * (2 ** (attempt - 1)))
    return random.uniform(ceiling / 2, ceiling)


async def retrying(
    policy: RetryPolicy, stats: BackendStats, operation: str, attempt_once: Callable[[], Awaitable[T]]
) -> T:
    """Runs ``attempt_once`` until it succeeds, fails for good, or the attempts run out."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return await attempt_once()
        except BackendError as error:
            if not error.retryable or attempt == policy.attempts:
                raise
            if isinstance(error, Throttled):
                stats.throttled += 1
            stats.retries[operation] += 1
            delay = backoff_delay(policy, attempt)
            log.debug("%s failed (%s); retry %d in %.2fs", operation, error, attempt, delay)
            await trio.sleep(delay)
    raise AssertionError("unreachable")
