"""The files that become one read set: a single file, or two FASTQ mates in one upload.

Mates share one upload (SOURCE1 + SOURCE2, each numbered from 1, one Complete: the Transfer
Manager's shape, https://github.com/awslabs/aws-healthomics-tools). The read set is completed
when every mate that was created has been closed; a ``_1`` mate left alone is completed as
single-end after the pair timeout (or at unmount). A ``_2`` mate cannot stand alone: the service
requires SOURCE1, and its parts are already stored as SOURCE2, so its close fails with EIO and
nothing is kept.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import uuid
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any, Protocol

import trio

from omicsfs.fs.errors import FsError
from omicsfs.fs.write.formats import Header, WriteName
from omicsfs.fs.write.upload import ReadSetUpload, UploadFailed
from omicsfs.fs.write.writer import FileWriter, WriterState

log = logging.getLogger(__name__)


class UploadState(StrEnum):
    OPEN = "open"  # files are being written
    COMPLETING = "completing"  # Complete is on its way
    DONE = "done"  # the read set exists
    FAILED = "failed"  # aborted; nothing was kept


class GroupHost(Protocol):
    """What a group needs from the write manager (manager.py)."""

    pair_timeout: float

    async def upload_fields(self, group: UploadGroup, header: Header) -> dict[str, Any]: ...
    def new_upload(self, store_id: str, fields: dict[str, Any], token: str) -> ReadSetUpload: ...
    def finished(self, group: UploadGroup) -> None: ...
    def spawn(self, function: Callable[[], Awaitable[None]]) -> None: ...


class UploadGroup:
    def __init__(self, host: GroupHost, store_id: str, name: WriteName, folder: dict[str, str]) -> None:
        self.host = host
        self.store_id = store_id
        self.read_set_name = name.read_set_name
        self.paired = name.mate is not None
        self.folder = folder  # sampleId/subjectId given by a by-sample/ or by-subject/ folder
        self.writers: dict[str, FileWriter] = {}
        self.upload: ReadSetUpload | None = None
        self.state = UploadState.OPEN
        self.failure: str | None = None
        self.read_set_id: str | None = None
        self.done = trio.Event()
        #: Unique to this upload and tagged on it (reconcile.py finds its read set by it).
        self.token = uuid.uuid4().hex
        self._header_lock = trio.Lock()
        self._pair_timer: trio.CancelScope | None = None

    def add(self, writer: FileWriter) -> None:
        self.writers[writer.source] = writer
        if self._pair_timer is not None:
            self._pair_timer.cancel()
            self._pair_timer = None

    # -- called by writers (the PartSink protocol of writer.py) ---------------------------------

    async def header_found(self, header: Header) -> None:
        """The first header of the group fixes the metadata and creates the upload object."""
        async with self._header_lock:
            if self.state is UploadState.FAILED:
                raise FsError(errno.EIO, self.failure or "the upload failed")
            if self.upload is not None:
                return
            try:
                fields = await self.host.upload_fields(self, header)
            except FsError as error:
                await self.fail(error.reason)
                raise
            self.upload = self.host.new_upload(self.store_id, fields, self.token)

    async def put(self, source: str, part: bytes) -> None:
        assert self.upload is not None
        try:
            await self.upload.put(source, part)
        except UploadFailed as error:
            await self.fail(str(error))
            raise FsError(errno.EIO, str(error)) from None

    # -- closing --------------------------------------------------------------------------------

    async def closed(self, writer: FileWriter) -> None:
        """``writer`` has sent its last part. Completes the read set when the group is whole;
        raises FsError(EIO) if that fails (so close() reports it)."""
        if self.state is UploadState.FAILED:
            raise FsError(errno.EIO, self.failure or "the upload failed")
        if self.paired:
            if "SOURCE1" not in self.writers:
                reason = (f"{writer.file_name} is mate 2 without a mate 1 (the service needs "
                          "SOURCE1): write _1 before or with _2")  # fmt: skip
                await self.fail(reason)
                raise FsError(errno.EIO, reason)
            if any(w.state is WriterState.WRITING for w in self.writers.values()):
                return  # the other mate's close completes the read set
            if len(self.writers) == 1:
                self._start_pair_timer()
                return
        await self.complete()

    def _start_pair_timer(self) -> None:
        scope = trio.CancelScope()
        self._pair_timer = scope

        async def wait_then_complete() -> None:
            with scope:
                await trio.sleep(self.host.pair_timeout)
                log.info("no mate 2 for %r within %.0fs: completing it as single-end",
                         self.read_set_name, self.host.pair_timeout)  # fmt: skip
                self._pair_timer = None
                with contextlib.suppress(FsError):  # complete() logs why
                    await self.complete()

        self.host.spawn(wait_then_complete)

    async def complete(self) -> None:
        if self.state in (UploadState.COMPLETING, UploadState.DONE):
            await self.done.wait()
        if self.state is UploadState.DONE:
            return
        if self.state is UploadState.FAILED:
            raise FsError(errno.EIO, self.failure or "the upload failed")
        self.state = UploadState.COMPLETING
        if self._pair_timer is not None:
            self._pair_timer.cancel()
            self._pair_timer = None
        assert self.upload is not None
        try:
            with trio.CancelScope(shield=True):
                self.read_set_id = await self.upload.complete()
        except UploadFailed as error:
            await self.fail(str(error))
            raise FsError(errno.EIO, str(error)) from None
        self.state = UploadState.DONE
        self.done.set()
        self.host.finished(self)

    def has_pending_mate(self) -> bool:
        """A ``_1`` mate closed and waiting for its ``_2``: completed single-end at unmount."""
        return (
            self.paired
            and self.state is UploadState.OPEN
            and all(w.state is WriterState.CLOSED for w in self.writers.values())
        )

    def discard_empty(self, writer: FileWriter) -> None:
        """``writer`` was closed without a byte: it leaves the group, and a group left without
        files ends quietly (nothing was created, so there is nothing to abort or report)."""
        self.writers.pop(writer.source, None)
        if not self.writers:
            self.state = UploadState.FAILED
            self.done.set()

    async def fail(self, reason: str) -> None:
        """Nothing is left behind: the upload is aborted and the files vanish. Logged once."""
        if self.state in (UploadState.FAILED, UploadState.DONE):
            return
        self.state = UploadState.FAILED
        self.failure = reason
        for writer in self.writers.values():
            writer.mark_failed()
        log.error("upload of %r failed, nothing was kept: %s", self.read_set_name, reason)
        if self.upload is not None:
            self.upload.fail(reason)  # writers waiting for a part slot get this reason at once
            await self.upload.abort()
        self.done.set()
        self.host.finished(self)
