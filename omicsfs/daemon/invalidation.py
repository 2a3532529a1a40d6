"""Telling the kernel what changed: names that have gone and attributes that changed.

Both calls can block inside the kernel: invalidating a name takes the folder's lock and, when
the name's inode is given, that inode's lock, which a pending write to the file holds until the
daemon answers it (pyfuse3's ``invalidate_entry`` documentation says as much). So they run on one
worker thread of their own, never on the trio thread, and only while the FUSE loop answers
requests: a notification sent after it stopped waits for a lock that nothing will ever release,
and the daemon cannot exit (issue 13's SIGTERM hang). The daemon's shutdown (run.py) therefore
drains the queue while requests are still answered, then ``close()``s it; anything asked after
that is dropped, because the mount is going away with everything the kernel cached of it.
pyfuse3's own ``invalidate_entry_async`` thread cannot be drained or closed, and after
``pyfuse3.close`` it logs "Failed to submit invalidate_entry ... EINVAL" for what was still
queued; this worker replaces it.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import threading
from dataclasses import dataclass

import pyfuse3
import trio

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Entry:
    parent: int
    name: str
    ino: int | None  # the inode is gone too (the kernel clears its link count); None: only the name


@dataclass(frozen=True)
class _Inode:
    ino: int


_Item = _Entry | _Inode | threading.Event | None


class KernelNotifier:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        #: Held around each kernel call: ``close`` waits for the one in progress.
        self._calling = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None

    def entry(self, parent: int, name: str, ino: int | None) -> None:
        """``name`` in folder ``parent`` no longer names inode ``ino`` (an Invalidator); with
        ``ino`` None the node lives on under another name and only the name is dropped."""
        self._put(_Entry(parent, name, ino))

    def inode(self, ino: int) -> None:
        """What the kernel caches of ``ino`` (attributes, pages) is stale (an InodeInvalidator)."""
        self._put(_Inode(ino))

    def _put(self, item: _Item) -> None:
        if self._closed:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kernel-notify", daemon=True)
            self._thread.start()
        self._queue.put(item)

    async def drain(self, within: float) -> bool:
        """Waits until everything queued so far was sent; False if that took over ``within`` s."""
        if self._thread is None or self._closed:
            return True
        done = threading.Event()
        self._queue.put(done)
        sent = await trio.to_thread.run_sync(done.wait, within, abandon_on_cancel=True)
        if not sent:
            log.warning("the kernel did not take the cache invalidations within %.0fs", within)
        return bool(sent)

    def close(self, timeout: float = 5.0) -> None:
        """No more notifications: the FUSE loop stops answering (run.py). Waits for a call in
        progress (up to ``timeout``), so none runs while the session is closed."""
        if self._closed:
            return
        self._closed = True
        if self._calling.acquire(timeout=timeout):
            self._calling.release()
        else:
            log.error("a kernel cache invalidation is still blocked after %.0fs", timeout)
        self._queue.put(None)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            with self._calling:
                if self._closed:
                    continue
                self._send(item)

    @staticmethod
    def _send(item: _Entry | _Inode) -> None:
        try:
            if isinstance(item, _Entry):
                pyfuse3.invalidate_entry(
                    pyfuse3.InodeT(item.parent), pyfuse3.FileNameT(os.fsencode(item.name)),
                    deleted=pyfuse3.InodeT(item.ino or 0),
                )  # fmt: skip
            else:
                pyfuse3.invalidate_inode(pyfuse3.InodeT(item.ino), attr_only=True)
        except OSError as exc:  # the kernel had already dropped it (ENOENT), or never had it
            if exc.errno != errno.ENOENT:
                log.debug("invalidating %s failed: %s", item, exc)
