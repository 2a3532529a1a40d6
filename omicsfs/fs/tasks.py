"""Background work that outlives the request that started it, in the mount's one nursery.

Part fetches, metadata prefetches and upload steps belong to the mount, not to the FUSE request
that asked for them: an interrupted reader must not cancel a fetch others wait on. A bug in such
work is logged and ends only that task, never the mount (README.md, "Tenets": the daemon never
dies from a request). Cancellation still propagates, so unmounting stops everything.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

log = logging.getLogger(__name__)


class TaskGroup:
    def __init__(self) -> None:
        self._nursery: trio.Nursery | None = None

    def attach(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery

    def start(self, function: Callable[..., Awaitable[object]], *args: object) -> None:
        if self._nursery is None:
            raise RuntimeError("TaskGroup.attach() was not called before background work")

        async def guarded() -> None:
            try:
                await function(*args)
            except Exception:
                log.exception(
                    "background task %s failed (a bug)", getattr(function, "__qualname__", function)
                )

        self._nursery.start_soon(guarded)
