"""One in-flight call per key, however many tasks ask for it at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import trio

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Flight(Generic[V]):
    def __init__(self) -> None:
        self.done = trio.Event()
        self.result: V | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[K, V]):
    """The first caller for a key runs the call; the others wait and share its outcome.

    If the first caller is cancelled (a FUSE interrupt), a waiter takes over instead of failing:
    one impatient reader must not fail every other reader of the same key.
    """

    def __init__(self) -> None:
        self._flights: dict[K, _Flight[V]] = {}

    async def run(self, key: K, call: Callable[[], Awaitable[V]]) -> V:
        while True:
            flight = self._flights.get(key)
            if flight is None:
                flight = _Flight()
                self._flights[key] = flight
                try:
                    flight.result = await call()
                    return flight.result
                except BaseException as exc:
                    flight.error = exc
                    raise
                finally:
                    del self._flights[key]
                    flight.done.set()
            await flight.done.wait()
            if flight.error is None:
                return flight.result  # type: ignore[return-value]
            if not isinstance(flight.error, trio.Cancelled):
                raise flight.error
