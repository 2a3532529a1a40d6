"""backend/ratelimit.py: the token bucket, on the fake clock (every grant's time is exact)."""

from __future__ import annotations

import itertools

import pytest
import trio

from omicsfs.backend.ratelimit import TokenBucket


async def grants(bucket: TokenBucket, count: int) -> list[float]:
    """The clock times at which ``count`` back-to-back acquires were granted, from the start."""
    start = trio.current_time()
    times = []
    for _ in range(count):
        await bucket.acquire()
        times.append(trio.current_time() - start)
    return times


@pytest.mark.trio
async def test_a_full_bucket_grants_its_burst_at_once_then_paces_at_the_rate() -> None:
    bucket = TokenBucket(rate=5.0)
    times = await grants(bucket, 10)
    assert times[:5] == [0.0] * 5  # the burst defaults to one second's worth
    assert times[5:] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert bucket.waits == 5


@pytest.mark.trio
async def test_acquire_says_whether_it_had_to_wait() -> None:
    bucket = TokenBucket(rate=1.0, burst=2)
    assert [await bucket.acquire() for _ in range(4)] == [False, False, True, True]
    assert bucket.waits == 2


@pytest.mark.trio
async def test_burst_one_never_grants_two_within_one_period() -> None:
    bucket = TokenBucket(rate=0.9, burst=1)
    times = await grants(bucket, 6)
    assert times[0] == 0.0
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps == pytest.approx([1 / 0.9] * 5)
    assert min(gaps) > 1.0  # the upload-control quota is one per second: never two within one


@pytest.mark.trio
async def test_an_idle_bucket_refills_only_up_to_its_burst() -> None:
    bucket = TokenBucket(rate=2.0, burst=2)
    await grants(bucket, 2)
    await trio.sleep(60)  # a minute idle is worth 120 tokens, but the bucket holds 2
    times = await grants(bucket, 4)
    assert times == pytest.approx([0.0, 0.0, 0.5, 1.0])


@pytest.mark.trio
async def test_a_rate_below_one_still_holds_one_token() -> None:
    bucket = TokenBucket(rate=0.5)
    assert bucket.burst == 1.0
    assert await grants(bucket, 3) == pytest.approx([0.0, 2.0, 4.0])


@pytest.mark.trio
async def test_waiters_are_served_in_the_order_they_came() -> None:
    bucket = TokenBucket(rate=1.0, burst=1)
    served: list[int] = []

    async def caller(index: int) -> None:
        await bucket.acquire()
        served.append(index)

    async with trio.open_nursery() as nursery:
        for index in range(8):
            nursery.start_soon(caller, index)
            await trio.testing.wait_all_tasks_blocked()  # caller ``index`` is queued before the next
    assert served == list(range(8))


@pytest.mark.trio
async def test_concurrent_callers_share_one_rate() -> None:
    bucket = TokenBucket(rate=4.0, burst=1)
    times: list[float] = []
    start = trio.current_time()

    async def caller() -> None:
        await bucket.acquire()
        times.append(trio.current_time() - start)

    async with trio.open_nursery() as nursery:
        for _ in range(9):
            nursery.start_soon(caller)
    assert sorted(times) == pytest.approx([i * 0.25 for i in range(9)])


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_a_rate_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(rate)
