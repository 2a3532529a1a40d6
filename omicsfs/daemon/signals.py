"""The daemon's signals: SIGINT/SIGTERM unmount, SIGHUP refreshes listings, SIGUSR2 toggles DEBUG.

SIGUSR2 cycling verbosity at run time is Mountpoint's convention; SIGHUP re-reading state is the
Unix one. Handlers are in place before the daemon reports ready, so a stop sent right after
``omicsfs mount`` returns is never lost.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable

import pyfuse3
import trio

from omicsfs.fs.catalog import Catalog

log = logging.getLogger(__name__)


async def handle_signals(
    catalog: Catalog, stop: Callable[[], None] = pyfuse3.terminate,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:  # fmt: skip
    """``stop`` is called on SIGINT/SIGTERM: the daemon's orderly stop (run.py)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR2) as signals:
        task_status.started()
        configured = logging.getLogger().level
        async for signum in signals:
            if signum == signal.SIGUSR2:
                root = logging.getLogger()
                root.setLevel(configured if root.level == logging.DEBUG else logging.DEBUG)
                log.warning("SIGUSR2: log level is now %s", logging.getLevelName(root.level))
                continue
            if signum == signal.SIGHUP:
                log.info("SIGHUP: listings will be fetched again on next access")
                catalog.expire_listings()
                continue
            log.info("signal %d: unmounting", signum)
            stop()
            return
