"""One multipart read-set upload: parts go up while the file is still being written.

The HealthOmics Transfer Manager uploads 100 MiB parts concurrently and echoes each part's
checksum in Complete (https://github.com/awslabs/aws-healthomics-tools); dxfuse caps parts in
flight across all files at 4 (docs/architecture.md, "The write path"). Here every upload shares
one semaphore of part slots: a writer whose part cannot get a slot waits in its write() call,
which is the back-pressure that keeps memory at (parts in flight + one filling buffer per writer)
× part size, whatever the file size.

A failure (or unmounting) cancels what waits: writers queued for a slot and parts between
retries end at once, so an abort never waits behind a queue (SEMANTICS.md, "Unmounting with
writers"). Complete is never retried blindly: when its answer is lost, reconcile.py asks the
service whether the read set was made.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import trio

from omicsfs.backend.errors import AmbiguousOutcome, BackendError
from omicsfs.backend.interface import Backend, PartProgress
from omicsfs.fs.tasks import TaskGroup
from omicsfs.fs.write.reconcile import CompleteRequest, UploadFailed, reconcile_complete

log = logging.getLogger(__name__)

__all__ = ["ReadSetUpload", "UploadFailed"]


@dataclass
class Transfer:
    """Bytes of one upload: what has left and when it started, for progress views."""

    started_at: float | None = None  # trio time of the first part request
    done_bytes: dict[str, int] = field(default_factory=dict)  # per source, parts acknowledged
    sending: dict[tuple[str, int], tuple[int, PartProgress]] = field(default_factory=dict)
    parts_done: int = 0
    parts_queued: int = 0

    def uploaded(self, source: str | None = None) -> int:
        """Bytes sent: acknowledged parts plus what botocore has read of parts on their way."""
        done = sum(v for s, v in self.done_bytes.items() if source is None or s == source)
        moving = sum(
            min(p.sent, size) for (s, _), (size, p) in self.sending.items() if source is None or s == source
        )
        return done + moving


class ReadSetUpload:
    """Create at the first part, parts as they fill, Complete or Abort exactly once."""

    def __init__(
        self, backend: Backend, store_id: str, fields: dict[str, Any], slots: trio.Semaphore,
        tasks: TaskGroup, token: str,
    ) -> None:  # fmt: skip
        self.backend = backend
        self.store_id = store_id
        self.fields = fields
        #: Parts in flight across every upload of the mount.
        self.slots = slots
        self.tasks = tasks
        #: The upload's own tag value: how reconcile.py recognises the read set it made.
        self.token = token
        self.upload_id: str | None = None
        self.read_set_id: str | None = None
        self.failure: str | None = None
        self.transfer = Transfer()
        self._create_lock = trio.Lock()
        self._next_part: dict[str, int] = {}
        self._parts: list[dict[str, Any]] = []
        self._in_flight = 0
        self._idle = trio.Event()
        self._idle.set()
        self._finished = False
        #: Waits and sends a failure ends at once (a slot wait, a part's retry loop).
        self._cancellable: set[trio.CancelScope] = set()

    @property
    def name(self) -> str:
        return str(self.fields.get("name", ""))

    @property
    def uploaded_bytes(self) -> int:
        return self.transfer.uploaded()

    async def _ensure_created(self) -> str:
        async with self._create_lock:
            if self.upload_id is None:
                self._check()
                self.upload_id = await self.backend.create_upload(self.store_id, self.fields)
                log.info("started upload %s for read set %r in store %s", self.upload_id, self.name,
                         self.store_id)  # fmt: skip
            return self.upload_id

    def _check(self) -> None:
        if self.failure is not None:
            raise UploadFailed(self.failure)
        if self._finished:
            raise UploadFailed("the upload is already complete")

    async def put(self, source: str, payload: bytes) -> None:
        """Queues the next part of ``source``; returns once it is on its way (or failed)."""
        self._check()
        upload_id = await self._ensure_created()
        scope = trio.CancelScope()
        self._cancellable.add(scope)
        try:
            with scope:
                await self.slots.acquire()
        finally:
            self._cancellable.discard(scope)
        if scope.cancelled_caught:
            self._check()  # cancelled by fail(): raises with its reason
            raise UploadFailed("the upload was stopped")
        try:
            self._check()
        except BaseException:
            self.slots.release()
            raise
        number = self._next_part.get(source, 0) + 1
        self._next_part[source] = number
        self._in_flight += 1
        self.transfer.parts_queued += 1
        if self.transfer.started_at is None:
            self.transfer.started_at = trio.current_time()
        self._idle = trio.Event() if self._in_flight == 1 else self._idle
        progress = PartProgress()
        self.transfer.sending[(source, number)] = (len(payload), progress)
        self.tasks.start(self._send, upload_id, source, number, payload, progress)

    async def _send(
        self, upload_id: str, source: str, number: int, payload: bytes, progress: PartProgress
    ) -> None:
        scope = trio.CancelScope()
        self._cancellable.add(scope)
        size = len(payload)
        try:
            with scope:
                checksum = await self.backend.upload_part(
                    self.store_id, upload_id, source, number, payload, progress
                )
                self._parts.append({"partSource": source, "partNumber": number, "checksum": checksum})
                self.transfer.done_bytes[source] = self.transfer.done_bytes.get(source, 0) + size
                self.transfer.parts_done += 1
            if scope.cancelled_caught:
                self.fail("the upload was stopped")
        except BackendError as error:
            self.fail(f"part {number} of {source} failed: {error}")
        except Exception as error:  # a bug must fail this upload, never the whole mount
            log.exception("uploading part %d of %s failed unexpectedly", number, source)
            self.fail(f"part {number} of {source} failed: {error!r}")
        finally:
            del payload
            self._cancellable.discard(scope)
            self.transfer.sending.pop((source, number), None)
            self.slots.release()
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    def fail(self, reason: str) -> None:
        """Marks the upload failed and ends every wait and send of it now."""
        if self.failure is None:
            self.failure = reason
        for scope in list(self._cancellable):
            scope.cancel()

    @property
    def sources(self) -> set[str]:
        return set(self._next_part)

    async def complete(self) -> str:
        """Waits for every part, then Complete; returns the new read set's ID. A lost or
        ambiguous answer is settled with the service (reconcile.py), never guessed."""
        await self._idle.wait()
        self._check()
        if self.upload_id is None:
            raise UploadFailed("nothing was uploaded")
        self._finished = True
        parts = sorted(self._parts, key=lambda p: (p["partSource"], p["partNumber"]))
        request = CompleteRequest(self.store_id, self.upload_id, self.name, self.token, parts)
        try:
            self.read_set_id = await self.backend.complete_upload(self.store_id, self.upload_id, parts)
        except AmbiguousOutcome as error:
            log.warning("the answer to Complete of upload %s (%r) was lost or failed ambiguously (%s): "
                        "asking the service whether the read set was made", self.upload_id, self.name,
                        error)  # fmt: skip
            try:
                self.read_set_id = await reconcile_complete(self.backend, request)
            except UploadFailed as failed:
                self.failure = str(failed)
                raise
        except BackendError as error:
            self.failure = f"CompleteMultipartReadSetUpload failed: {error}"
            raise UploadFailed(self.failure) from error
        return self.read_set_id

    async def abort(self) -> None:
        """Stops the upload for good: waits and retries of its parts end at once (a request on
        the wire finishes first), then Abort (which the service paces like Create). Nothing stays
        listed; failures to abort are logged."""
        self.fail("aborted")
        async with self._create_lock:  # a Create on its way: abort what it makes
            pass
        await self._idle.wait()
        if self.upload_id is None or self.read_set_id is not None:
            return
        upload_id, self.upload_id = self.upload_id, None
        try:
            with trio.CancelScope(shield=True):
                await self.backend.abort_upload(self.store_id, upload_id)
            log.info("aborted upload %s of %r", upload_id, self.name)
        except BackendError as error:
            log.error("could not abort upload %s of %r (the next mount retries): %s", upload_id,
                      self.name, error)  # fmt: skip
