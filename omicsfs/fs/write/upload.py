"""One multipart read-set upload: parts go up while the file is still being written.

The HealthOmics Transfer Manager uploads 100 MiB parts concurrently and echoes each part's
checksum in Complete (https://github.com/awslabs/aws-healthomics-tools); dxfuse caps parts in
flight across all files at 4 (docs/architecture.md, "The write path"). Here every upload shares
one semaphore of part slots: a writer
whose part cannot get a slot waits in its write() call, which is the back-pressure that keeps
memory at (parts in flight + one filling buffer per writer) × part size, whatever the file size.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from omicsfs.backend.errors import BackendError
from omicsfs.backend.interface import Backend
from omicsfs.fs.tasks import TaskGroup

log = logging.getLogger(__name__)


class UploadFailed(Exception):
    """The upload cannot finish; it has been (or is being) aborted. The message says why."""


class ReadSetUpload:
    """Create at the first part, parts as they fill, Complete or Abort exactly once."""

    def __init__(
        self,
        backend: Backend,
        store_id: str,
        fields: dict[str, Any],
        slots: trio.Semaphore,
        tasks: TaskGroup,
    ) -> None:
        self.backend = backend
        self.store_id = store_id
        self.fields = fields
        #: Parts in flight across every upload of the mount.
        self.slots = slots
        self.tasks = tasks
        self.upload_id: str | None = None
        self.read_set_id: str | None = None
        self.failure: str | None = None
        self._create_lock = trio.Lock()
        self._next_part: dict[str, int] = {}
        self._parts: list[dict[str, Any]] = []
        self._in_flight = 0
        self._idle = trio.Event()
        self._idle.set()
        self._finished = False
        self.uploaded_bytes = 0

    @property
    def name(self) -> str:
        return str(self.fields.get("name", ""))

    async def _ensure_created(self) -> str:
        async with self._create_lock:
            if self.upload_id is None:
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
        await self.slots.acquire()
        try:
            self._check()
        except BaseException:
            self.slots.release()
            raise
        number = self._next_part.get(source, 0) + 1
        self._next_part[source] = number
        self._in_flight += 1
        self._idle = trio.Event() if self._in_flight == 1 else self._idle
        self.tasks.start(self._send, upload_id, source, number, payload)

    async def _send(self, upload_id: str, source: str, number: int, payload: bytes) -> None:
        try:
            checksum = await self.backend.upload_part(self.store_id, upload_id, source, number, payload)
            self._parts.append({"partSource": source, "partNumber": number, "checksum": checksum})
            self.uploaded_bytes += len(payload)
        except BackendError as error:
            self.fail(f"part {number} of {source} failed: {error}")
        except Exception as error:  # a bug must fail this upload, never the whole mount
            log.exception("uploading part %d of %s failed unexpectedly", number, source)
            self.fail(f"part {number} of {source} failed: {error!r}")
        finally:
            del payload
            self.slots.release()
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    def fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason

    @property
    def sources(self) -> set[str]:
        return set(self._next_part)

    async def complete(self) -> str:
        """Waits for every part, then Complete; returns the new read set's ID."""
        await self._idle.wait()
        self._check()
        if self.upload_id is None:
            raise UploadFailed("nothing was uploaded")
        self._finished = True
        parts = sorted(self._parts, key=lambda p: (p["partSource"], p["partNumber"]))
        try:
            self.read_set_id = await self.backend.complete_upload(self.store_id, self.upload_id, parts)
        except BackendError as error:
            self.failure = f"CompleteMultipartReadSetUpload failed: {error}"
            raise UploadFailed(self.failure) from error
        return self.read_set_id

    async def abort(self) -> None:
        """Stops the upload for good: parts still in flight finish first, then Abort (which the
        service paces like Create). Nothing stays listed; failures to abort are logged."""
        self.fail("aborted")
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
