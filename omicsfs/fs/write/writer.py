"""One file being written: the bytes of one source of an upload, cut into parts as they arrive.

Writes must be sequential (Mountpoint and dxfuse both refuse anything else: an upload cannot
seek; docs/architecture.md, "The write path"). Until the header is known, the first bytes are also
kept in a small probe buffer so formats.inspect can confirm the type and read the @SQ/@RG lines;
once it is known the upload is created and full parts leave as soon as they fill. Plain FASTQ is
gzipped here, off the trio thread, because the store keeps FASTQ gzip-only.
"""

from __future__ import annotations

import errno
import logging
import time
import zlib
from enum import StrEnum
from typing import Protocol

import trio

from omicsfs.backend.models import FileType
from omicsfs.fs.errors import FsError
from omicsfs.fs.write.formats import FormatMismatch, Header, WriteName, inspect

log = logging.getLogger(__name__)

#: gzip level for plain FASTQ: the gzip tool's default, a good size/speed trade for reads.
GZIP_LEVEL = 6
#: Writes smaller than this are compressed inline; larger ones on a worker thread.
INLINE_COMPRESS_BYTES = 64 << 10


class WriterState(StrEnum):
    WRITING = "writing"
    CLOSED = "closed"  # the last part has left; the file takes no more writes
    FAILED = "failed"


class PartSink(Protocol):
    """Where a writer's header and parts go: its upload group (group.py)."""

    failure: str | None

    async def header_found(self, header: Header) -> None: ...
    async def put(self, source: str, part: bytes) -> None: ...
    async def fail(self, reason: str) -> None: ...


class FileWriter:
    def __init__(self, file_name: str, name: WriteName, sink: PartSink, source: str, part_size: int) -> None:
        self.file_name = file_name
        self.name = name
        self.sink = sink
        self.source = source
        self.part_size = part_size
        self.created_at = time.time()
        self.size = 0  # bytes written by the user (before compression)
        self.stored = 0  # bytes to upload (after compression): the read set's size while processing
        #: An error of this file has reached the writer (a write or close returned it).
        self.reported = False
        self.state = WriterState.WRITING
        self.header: Header | None = None
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._probe = bytearray()
        self._probe_at = 1  # probe length at which the header is next looked for
        self._compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31) if name.compress else None
        self._lock = trio.Lock()

    @property
    def failure(self) -> str:
        return self.sink.failure or "the upload failed"

    async def write(self, offset: int, data: bytes) -> int:
        """Appends ``data``. Once an error was reported for this file (or it was completed), every
        later write, on any descriptor of it, is EBADF: the file takes no more bytes
        (SEMANTICS.md, "Close and flush"). A failure not yet reported (a part that failed in the
        background) is EIO on the next write."""
        async with self._lock:
            if self.state is WriterState.FAILED:
                if self.reported:
                    raise FsError(errno.EBADF, f"{self.file_name} failed ({self.failure}); it takes no "
                                               "more writes")  # fmt: skip
                self.reported = True
                raise FsError(errno.EIO, self.failure)
            if self.state is not WriterState.WRITING:
                raise FsError(errno.EBADF, f"{self.file_name} is complete; it takes no more writes")
            try:
                return await self._append(offset, data)
            except FsError:
                self.reported = True
                raise

    async def _append(self, offset: int, data: bytes) -> int:
        log.debug("write %s @%d+%d (size %d)", self.file_name, offset, len(data), self.size)
        if offset != self.size:
            reason = (f"out-of-order write to {self.file_name} at offset {offset} (next is "
                      f"{self.size}): uploads are sequential")  # fmt: skip
            await self.sink.fail(reason)
            raise FsError(errno.EINVAL, reason)
        if self.size == 0 and self._compressor is not None and not data.startswith(b"@"):
            reason = f"{self.file_name}: expected FASTQ records starting with '@', found {data[:8]!r}"
            await self.sink.fail(reason)
            raise FsError(errno.EINVAL, reason)
        self.size += len(data)
        await self._take(await self._stored(data), final=False)
        return len(data)

    async def _stored(self, data: bytes) -> bytes:
        if self._compressor is None:
            return data
        if len(data) < INLINE_COMPRESS_BYTES:
            return self._compressor.compress(data)
        return await trio.to_thread.run_sync(self._compressor.compress, data)

    async def _take(self, stored: bytes, final: bool) -> None:
        if stored:
            self.stored += len(stored)
            self._chunks.append(stored)
            self._buffered += len(stored)
        if self.header is None:
            await self._look_for_header(stored, final)
        if self.header is None:
            return
        while self._buffered >= self.part_size or (final and self._buffered):
            await self.sink.put(self.source, self._cut())

    async def _look_for_header(self, stored: bytes, final: bool) -> None:
        if self._compressor is not None:  # our own gzip of text already checked to start with '@'
            await self.sink.header_found(Header(FileType.FASTQ))
            self.header = Header(FileType.FASTQ)
            return
        self._probe += stored
        if not final and len(self._probe) < self._probe_at:
            return
        try:
            header = inspect(self.name.file_type, bytes(self._probe), final)
        except FormatMismatch as exc:
            reason = f"{self.file_name} is not a {self.name.file_type} file: {exc}"
            await self.sink.fail(reason)
            raise FsError(errno.EINVAL, reason) from None
        if header is None:
            if self._buffered >= self.part_size:
                reason = f"{self.file_name}: no complete header in the first {self.part_size} bytes"
                await self.sink.fail(reason)
                raise FsError(errno.EINVAL, reason)
            self._probe_at = 2 * len(self._probe)  # look again once twice as much has arrived
            return
        self._probe = bytearray()
        await self.sink.header_found(header)
        self.header = header

    def _cut(self) -> bytes:
        """The next part: one join of the buffered chunks, the remainder kept for the next."""
        joined = b"".join(self._chunks)
        part, rest = joined[: self.part_size], joined[self.part_size :]
        self._chunks = [rest] if rest else []
        self._buffered = len(rest)
        return part

    async def finish(self) -> None:
        """The last part goes up; the file takes no more writes. Raises FsError on failure."""
        async with self._lock:
            if self.state is WriterState.FAILED:
                self.reported = True
                raise FsError(errno.EIO, self.failure)
            if self.state is WriterState.CLOSED:
                return
            tail = self._compressor.flush() if self._compressor is not None else b""
            try:
                await self._take(tail, final=True)
            except FsError:
                self.reported = True
                raise
            self.state = WriterState.CLOSED
            self._chunks = []

    def mark_failed(self) -> None:
        self.state = WriterState.FAILED
        self._chunks = []
        self._buffered = 0
        self._probe = bytearray()
