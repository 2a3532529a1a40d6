"""backend/retry.py: capped exponential backoff with full jitter, on the fake clock.

The loop sleeps with trio.sleep, so the MockClock (tests/unit/conftest.py) shows exactly how long
it waited: each wait lies between half and all of its ceiling, the ceiling doubles from
``base_delay`` and stops at ``max_delay``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
import trio

from omicsfs.backend.errors import (
    AccessDenied,
    BackendError,
    InvalidRequest,
    NotActive,
    NotFound,
    ServiceFailure,
    Throttled,
    TransportFailure,
)
from omicsfs.backend.retry import backoff_delay, retrying
from omicsfs.backend.stats import BackendStats
from omicsfs.config import RetryPolicy

POLICY = RetryPolicy(attempts=5, base_delay=1.0, max_delay=5.0)


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)])
def test_each_delay_lies_between_half_and_all_of_its_capped_ceiling(attempt: int, ceiling: float) -> None:
    random.seed(attempt)
    delays = [backoff_delay(POLICY, attempt) for _ in range(500)]
    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert max(delays) - min(delays) > ceiling / 4  # jittered, not one fixed value


class Flaky:
    """Fails ``failures`` times with errors from ``error``, then answers "ok"."""

    def __init__(self, failures: int, error: Callable[[], BackendError]) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0
        self.times: list[float] = []

    async def __call__(self) -> str:
        self.calls += 1
        self.times.append(trio.current_time())
        if self.calls <= self.failures:
            raise self.error()
        return "ok"


@pytest.mark.trio
@pytest.mark.parametrize(
    "error",
    [
        lambda: Throttled("GetReadSet", "slow down", "ThrottlingException"),
        lambda: ServiceFailure("GetReadSet", "oops", "InternalServerException"),
        lambda: TransportFailure("GetReadSet", "reset"),
    ],
    ids=["throttled", "5xx", "transport"],
)
async def test_retryable_errors_are_retried_until_the_call_succeeds(
    error: Callable[[], BackendError],
) -> None:
    stats = BackendStats()
    flaky = Flaky(3, error)
    assert await retrying(POLICY, stats, "GetReadSet", flaky) == "ok"
    assert flaky.calls == 4
    assert stats.retries["GetReadSet"] == 3
    waits = [later - earlier for earlier, later in zip(flaky.times, flaky.times[1:], strict=False)]
    for attempt, wait in enumerate(waits, start=1):
        ceiling = min(POLICY.max_delay, POLICY.base_delay * 2 ** (attempt - 1))
        assert ceiling / 2 <= wait <= ceiling


@pytest.mark.trio
async def test_only_throttling_is_counted_as_throttled() -> None:
    stats = BackendStats()
    await retrying(POLICY, stats, "ListReadSets", Flaky(2, lambda: Throttled("ListReadSets", "slow")))
    await retrying(POLICY, stats, "ListReadSets", Flaky(1, lambda: ServiceFailure("ListReadSets", "x")))
    assert stats.throttled == 2
    assert stats.retries["ListReadSets"] == 3


@pytest.mark.trio
async def test_the_last_attempt_raises_its_error_after_attempts_minus_one_waits() -> None:
    stats = BackendStats()
    flaky = Flaky(100, lambda: TransportFailure("GetReadSet", "reset"))
    start = trio.current_time()
    with pytest.raises(TransportFailure):
        await retrying(POLICY, stats, "GetReadSet", flaky)
    assert flaky.calls == POLICY.attempts
    assert stats.retries["GetReadSet"] == POLICY.attempts - 1
    # Four waits with ceilings 1, 2, 4, 5 (capped): at least half of their sum, at most all of it.
    assert 6.0 <= trio.current_time() - start <= 12.0


@pytest.mark.trio
@pytest.mark.parametrize(
    "error",
    [
        lambda: NotFound("GetReadSet", "gone", "ResourceNotFoundException"),
        lambda: AccessDenied("GetReadSet", "no", "AccessDeniedException"),
        lambda: NotActive("GetReadSet", "archived", "ConflictException"),
        lambda: InvalidRequest("GetReadSet", "bad", "ValidationException"),
        lambda: BackendError("GetReadSet", "odd"),
    ],
    ids=["not-found", "denied", "not-active", "invalid", "other"],
)
async def test_errors_that_cannot_succeed_later_raise_at_once(error: Callable[[], BackendError]) -> None:
    stats = BackendStats()
    flaky = Flaky(1, error)
    start = trio.current_time()
    with pytest.raises(BackendError) as raised:
        await retrying(POLICY, stats, "GetReadSet", flaky)
    assert type(raised.value) is type(error())
    assert flaky.calls == 1
    assert trio.current_time() == start  # no backoff sleep
    assert stats.retries == {}
    assert stats.throttled == 0


@pytest.mark.trio
async def test_one_attempt_means_no_retries() -> None:
    flaky = Flaky(1, lambda: Throttled("GetReadSet", "slow"))
    with pytest.raises(Throttled):
        await retrying(RetryPolicy(attempts=1), BackendStats(), "GetReadSet", flaky)
    assert flaky.calls == 1


@pytest.mark.trio
async def test_exceptions_that_are_not_backend_errors_are_not_retried() -> None:
    calls = 0

    async def bug() -> None:
        nonlocal calls
        calls += 1
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await retrying(POLICY, BackendStats(), "GetReadSet", bug)
    assert calls == 1
