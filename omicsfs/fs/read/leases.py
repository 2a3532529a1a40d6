"""Leases: a part missed by several mounts of one shared cache dir at once is fetched by one.

A cohort's mounts open the same index and header parts at the same moment, and each miss costs
a whole part (100 MiB on AWS) against one account's GetReadSet quota. With ``--cache-dir-shared``
a mount about to fetch a part (or a run of S3 blocks) first creates a lease file for it with
``O_CREAT | O_EXCL``, which NFSv3 and later, EFS and Lustre perform atomically on the server. The
mount that creates it fetches, writing each block to the shared disk tier as it arrives (as
always: disktier.py); the others find the lease taken and read the blocks from the disk tier as
they appear, so a cohort fetches each part once, not once per node (README.md, "Running on a
cluster").

The holder renews its lease (its mtime) every third of the TTL while it fetches and removes it
when done. A lease not renewed for a TTL belongs to a mount that died: the next mount to look
breaks it (renames it away, then removes it) and fetches itself, resuming after the blocks that
did arrive. A holder that finishes with blocks missing (its fetch failed, or its disk writes
did) simply releases the lease, and a waiter takes it over.

A lease only saves work; correctness never depends on it. Entries are immutable and verified on
read, so a lost race (two mounts breaking one expired lease, clocks that disagree by more than
the TTL, a filesystem without atomic exclusive create) costs a second fetch of the part, never a
wrong byte. Times are the hosts' clocks (keep them in step with NTP); the TTL (30 s) is far
above the skew that allows.

The file operations are blocking (NFS round trips) and run on worker threads; the times they
compare are passed in, so the unit tests drive expiry with a fake clock.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import trio

from omicsfs.fs.read.fetch import Fetch
from omicsfs.fs.stats import Stats

log = logging.getLogger(__name__)

#: Seconds between two looks of a waiting mount at the disk tier and the lease; doubling up to
#: POLL_MAX while the holder's blocks do not come (each look is a few NFS round trips).
POLL = 0.05
POLL_MAX = 0.5


class Outcome(Enum):
    TAKEN = "taken"
    #: Taken after breaking an expired lease (its mount stopped renewing it).
    TAKEN_EXPIRED = "taken-expired"
    HELD = "held"


@dataclass(frozen=True)
class Holder:
    owner: str
    ttl: float
    renewed_at: float
    what: str = ""

    def expired(self, now: float) -> bool:
        return now - self.renewed_at > self.ttl


def lease_name(fetch: Fetch) -> str:
    """One name per part (or run of S3 blocks) of one object version on one block grid."""
    kind, object_id, file, validator = fetch.file.key
    unit = f"part{fetch.part}" if fetch.part is not None else f"blocks{fetch.first}-{fetch.end}"
    text = f"{kind}/{object_id}/{file}/{validator}/{fetch.file.block_size}/{unit}"
    return hashlib.sha256(text.encode()).hexdigest()[:40] + ".lease"


def new_owner() -> str:
    """Who holds a lease: this host and process, and a nonce for a reused PID."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class LeaseFolder:
    """The lease files of one shared cache dir (blocking: call from a worker thread)."""

    def __init__(self, root: Path, ttl: float, owner: str | None = None) -> None:
        self.root = root
        self.ttl = ttl
        self.owner = owner or new_owner()

    def path(self, name: str) -> Path:
        return self.root / name

    def acquire(self, name: str, now: float, what: str = "") -> Outcome:
        """Creates the lease (atomic exclusive create), or breaks it first if it expired."""
        path = self.path(name)
        broke = False
        for _ in range(3):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:
                self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
                continue
            except FileExistsError:
                holder = self.holder(name)
                if holder is None:
                    continue  # released just now: try again
                if not holder.expired(now):
                    return Outcome.HELD
                broke = self._break(path) or broke
                continue
            try:
                os.write(fd, json.dumps({"owner": self.owner, "ttl": self.ttl, "what": what}).encode())
                os.utime(fd, (now, now))
            finally:
                os.close(fd)
            return Outcome.TAKEN_EXPIRED if broke else Outcome.TAKEN
        return Outcome.HELD  # lost every race: someone else holds it now

    def holder(self, name: str) -> Holder | None:
        """Who holds the lease and when they last renewed it; None if nobody does."""
        path = self.path(name)
        try:
            with open(path, "rb") as handle:
                renewed_at = os.fstat(handle.fileno()).st_mtime
                raw = handle.read(4096)
        except FileNotFoundError:
            return None
        try:
            doc = json.loads(raw)
            return Holder(str(doc["owner"]), float(doc["ttl"]), renewed_at, str(doc.get("what", "")))
        except (ValueError, KeyError, TypeError):
            # Being written this instant (created, not yet filled), or damaged: judged by its
            # age with this mount's TTL.
            return Holder("", self.ttl, renewed_at)

    def renew(self, name: str, now: float) -> bool:
        """Pushes the lease's expiry on; False if it is no longer ours."""
        holder = self.holder(name)
        if holder is None or holder.owner != self.owner:
            return False
        os.utime(self.path(name), (now, now))
        return True

    def release(self, name: str) -> None:
        holder = self.holder(name)
        if holder is not None and holder.owner == self.owner:
            self.path(name).unlink(missing_ok=True)

    def _break(self, path: Path) -> bool:
        """Moves an expired lease aside (rename is atomic: of two mounts breaking it, one does)."""
        aside = path.with_name(f"{path.name}.{secrets.token_hex(4)}.expired")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return False
        aside.unlink(missing_ok=True)
        return True


#: Fetches the blocks of a fetch not received yet (the block cache's own fetch).
FetchBody = Callable[[Fetch], Awaitable[None]]
#: Takes the fetch's next block from the disk tier if it is there; False if not.
Adopt = Callable[[Fetch], Awaitable[bool]]


class SharedFetches:
    """The block cache's hook: runs each fetch under its lease, or waits for the holder's blocks."""

    def __init__(
        self, folder: LeaseFolder, stats: Stats, *, clock: Callable[[], float] = time.time, poll: float = POLL
    ) -> None:
        self.folder = folder
        self.stats = stats
        self.clock = clock
        self.poll = poll

    async def run(self, fetch: Fetch, fetch_body: FetchBody, adopt: Adopt) -> None:
        name = lease_name(fetch)
        waited = False
        delay = self.poll
        while True:
            before = fetch.next
            await _adopt_all(fetch, adopt)
            delay = self.poll if fetch.next > before else min(2 * delay, max(self.poll, POLL_MAX))
            if fetch.next >= fetch.end:
                if waited:
                    self.stats.shared["fetches_from_peers"] += 1
                return
            outcome = await trio.to_thread.run_sync(self.folder.acquire, name, self.clock(), fetch.describe())
            if outcome is Outcome.HELD:
                if not waited:
                    self.stats.shared["lease_waits"] += 1
                    log.debug("%s: another mount is fetching it; waiting for its blocks", fetch.describe())
                waited = True
                await trio.sleep(delay)
                continue
            if outcome is Outcome.TAKEN_EXPIRED:
                self.stats.shared["leases_expired"] += 1
                log.info("%s: the mount fetching it stopped renewing its lease; fetching it here",
                         fetch.describe())  # fmt: skip
            try:
                await _adopt_all(fetch, adopt)  # the holder may have finished just before we took it
                if fetch.next < fetch.end:
                    self.stats.shared["leases_taken"] += 1
                    await self._hold(name, fetch, fetch_body)
            finally:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(self.folder.release, name)
            return

    async def _hold(self, name: str, fetch: Fetch, fetch_body: FetchBody) -> None:
        """Fetches while renewing the lease every third of its TTL."""

        async def renew() -> None:
            while True:
                await trio.sleep(self.folder.ttl / 3)
                if not await trio.to_thread.run_sync(self.folder.renew, name, self.clock()):
                    log.debug("%s: lease lost to another mount; both fetch", fetch.describe())
                    return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(renew)
            try:
                await fetch_body(fetch)
            finally:
                nursery.cancel_scope.cancel()


async def _adopt_all(fetch: Fetch, adopt: Adopt) -> None:
    while fetch.next < fetch.end and await adopt(fetch):
        pass
