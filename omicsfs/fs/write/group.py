"""The files that become one read set: a single file, or two FASTQ mates in one upload.

Mates share one upload (SOURCE1 + SOURCE2, each numbered from 1, one Complete: the Transfer
Manager's shape, research/healthomics-ecosystem.md §1.4). The read set is completed when every
mate that was created has been closed; a ``_1`` mate left alone is completed as single-end after
the pair timeout (or at unmount). A ``_2`` mate cannot stand alone: the service requires SOURCE1,
and its parts are already stored as SOURCE2, so its close fails with EIO and nothing is kept.
"""

from __future__ import annotations

import contextlib
import errno
import logging
from typing import TYPE_CHECKING

import trio

from omicsfs.fs.errors import FsError
from omicsfs.fs.write.formats import Header, WriteName
from omicsfs.fs.write.upload import ReadSetUpload, UploadFailed
from omicsfs.fs.write.writer import CLOSED, WRITING, FileWriter

if TYPE_CHECKING:
    from omicsfs.fs.write.manager import WriteManager

log = logging.getLogger(__name__)

OPEN, COMPLETING, DONE, FAILED = "open", "completing", "done", "failed"


class UploadGroup:
    def __init__(self, manager: WriteManager, store_id: str, name: WriteName, folder: dict[str, str]) -> None:
        self.manager = manager
        self.store_id = store_id
        self.read_set_name = name.read_set_name
        self.paired = name.mate is not None
        self.folder = folder  # sampleId/subjectId given by a by-sample/ or by-subject/ folder
        self.writers: dict[str, FileWriter] = {}
        self.upload: ReadSetUpload | None = None
        self.state = OPEN
        self.failure: str | None = None
        self.read_set_id: str | None = None
        self.done = trio.Event()
        self._header_lock = trio.Lock()
        self._pair_timer: trio.CancelScope | None = None

    def add(self, writer: FileWriter) -> None:
        self.writers[writer.source] = writer
        if self._pair_timer is not None:
            self._pair_timer.cancel()
            self._pair_timer = None

    # -- called by writers ----------------------------------------------------------------------

    async def header_found(self, writer: FileWriter, header: Header) -> None:
        """The first header of the group fixes the metadata and creates the upload object."""
        async with self._header_lock:
            if self.state == FAILED:
                raise FsError(errno.EIO, self.failure or "the upload failed")
            if self.upload is not None:
                return
            try:
                fields = await self.manager.upload_fields(self, header)
            except FsError as error:
                await self.fail(error.reason)
                raise
            self.upload = self.manager.new_upload(self.store_id, fields)

    async def put(self, writer: FileWriter, part: bytes) -> None:
        assert self.upload is not None
        try:
            await self.upload.put(writer.source, part)
        except UploadFailed as error:
            await self.fail(str(error))
            raise FsError(errno.EIO, str(error)) from None

    # -- closing --------------------------------------------------------------------------------

    async def closed(self, writer: FileWriter) -> None:
        """``writer`` has sent its last part. Completes the read set when the group is whole;
        raises FsError(EIO) if that fails (so close() reports it)."""
        if self.state == FAILED:
            raise FsError(errno.EIO, self.failure or "the upload failed")
        if self.paired:
            if "SOURCE1" not in self.writers:
                reason = (f"{writer.file_name} is mate 2 without a mate 1 (the service needs "
                          "SOURCE1): write _1 before or with _2")  # fmt: skip
                await self.fail(reason)
                raise FsError(errno.EIO, reason)
            if any(w.state == WRITING for w in self.writers.values()):
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
                await trio.sleep(self.manager.config.pair_timeout)
                log.info("no mate 2 for %r within %.0fs: completing it as single-end",
                         self.read_set_name, self.manager.config.pair_timeout)  # fmt: skip
                self._pair_timer = None
                with contextlib.suppress(FsError):  # complete() logs why
                    await self.complete()

        self.manager.spawn(wait_then_complete)

    async def complete(self) -> None:
        if self.state in (COMPLETING, DONE):
            await self.done.wait()
        if self.state == DONE:
            return
        if self.state == FAILED:
            raise FsError(errno.EIO, self.failure or "the upload failed")
        self.state = COMPLETING
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
        self.state = DONE
        self.done.set()
        self.manager.finished(self)

    def has_pending_mate(self) -> bool:
        return self.paired and self.state == OPEN and all(w.state == CLOSED for w in self.writers.values())

    async def fail(self, reason: str) -> None:
        """Nothing is left behind: the upload is aborted and the files vanish. Logged once."""
        if self.state in (FAILED, DONE):
            return
        self.state = FAILED
        self.failure = reason
        for writer in self.writers.values():
            writer.mark_failed()
        log.error("upload of %r failed, nothing was kept: %s", self.read_set_name, reason)
        if self.upload is not None:
            await self.upload.abort()
        self.done.set()
        self.manager.finished(self)
