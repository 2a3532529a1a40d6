"""Per-connection bandwidth: what makes loopback benchmarks say something about the real service.

On loopback a GetReadSet part arrives at memory speed, so a benchmark measures the two CPUs, not
the design: an API client and a mount that fetch the same parts in parallel differ only in how
much Python they run per byte. The real service streams each part over its own HTTPS connection
at a rate the client cannot raise, and a client goes faster only by keeping more parts in flight
(dxfuse reports 80-350 MB/s for one file depending on the instance, https://github.com/dnanexus/dxfuse). A
``bandwidth`` fault paces each response body to such a rate, so read-ahead depth and parallelism
are what the numbers show.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class Pacer:
    """Holds one response body to ``bytes_per_second`` from its first byte.

    It sleeps until the bytes sent so far are due, instead of after every chunk, so scheduling
    delays are made up later and the average stays on target.
    """

    def __init__(
        self,
        bytes_per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if bytes_per_second <= 0:
            raise ValueError("bandwidth must be positive")
        self.bytes_per_second = bytes_per_second
        self._clock = clock
        self._sleep = sleep
        self._start = clock()
        self._sent = 0

    async def sent(self, count: int) -> None:
        """Records ``count`` more bytes and waits until they are due."""
        self._sent += count
        due = self._start + self._sent / self.bytes_per_second
        delay = due - self._clock()
        if delay > 0:
            await self._sleep(delay)
