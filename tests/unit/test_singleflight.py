"""fs/singleflight.py: one call per key in flight; waiters share its result or error, and take over
when the first caller is cancelled (a FUSE interrupt must not fail the other readers)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from omicsfs.fs.singleflight import SingleFlight


class Slow:
    """A call that takes ten (fake) seconds and counts how often it started."""

    def __init__(self, result: str = "value", error: Exception | None = None) -> None:
        self.result = result
        self.error = error
        self.started = 0

    async def __call__(self) -> str:
        self.started += 1
        await trio.sleep(10)
        if self.error is not None:
            raise self.error
        return f"{self.result}#{self.started}"


@pytest.mark.trio
async def test_concurrent_callers_of_one_key_share_one_call() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    call = Slow()
    results: list[str] = []

    async def ask() -> None:
        results.append(await flight.run("k", call))

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(ask)
    assert call.started == 1
    assert results == ["value#1"] * 20


@pytest.mark.trio
async def test_different_keys_run_concurrently() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    calls = {key: Slow(key) for key in "abc"}
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for key, call in calls.items():
            nursery.start_soon(flight.run, key, call)
    assert [call.started for call in calls.values()] == [1, 1, 1]
    assert trio.current_time() - start == 10  # side by side, not one after another


@pytest.mark.trio
async def test_a_finished_call_is_not_remembered() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    call = Slow()
    assert await flight.run("k", call) == "value#1"
    assert await flight.run("k", call) == "value#2"  # caching is the caller's business


@pytest.mark.trio
async def test_an_error_is_shared_by_every_waiter_and_the_next_call_starts_afresh() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    failing = Slow(error=OSError("the service is down"))
    errors: list[BaseException] = []

    async def ask() -> None:
        try:
            await flight.run("k", failing)
        except OSError as error:
            errors.append(error)

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(ask)
    assert failing.started == 1
    assert len(errors) == 5
    assert all(error is errors[0] for error in errors)
    assert await flight.run("k", Slow("recovered")) == "recovered#1"


@pytest.mark.trio
async def test_a_waiter_takes_over_when_the_first_caller_is_cancelled() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    call = Slow()
    results: list[str] = []

    async def patient() -> None:
        results.append(await flight.run("k", call))

    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as impatient:
            nursery.start_soon(patient)
            await trio.testing.wait_all_tasks_blocked()
            impatient.deadline = trio.current_time() + 5  # gives up half way through
            results.append(await flight.run("k", call))
    # ``patient`` started first, so its call was the one in flight: the impatient caller only
    # waited, and its cancellation changed nothing for anyone else.
    assert results == ["value#1"]
    assert call.started == 1


@pytest.mark.trio
async def test_when_the_caller_running_the_call_is_cancelled_a_waiter_runs_it_again() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    call = Slow()
    results: list[str] = []

    async def waiter() -> None:
        results.append(await flight.run("k", call))

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        with trio.move_on_after(5):
            async with trio.open_nursery() as inner:
                inner.start_soon(flight.run, "k", call)  # runs the call
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(waiter)
                await trio.testing.wait_all_tasks_blocked()
    assert results == ["value#2"]  # the waiter ran it again instead of failing
    assert call.started == 2
    assert trio.current_time() - start == 15
