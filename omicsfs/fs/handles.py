"""Open files and folders: one handle type per kind, in one numbered table.

A handle is what ``open``/``opendir``/``create`` returned to the kernel; later requests name it by
number. Each kind carries exactly what its requests need, so ``read`` on a document never looks
for a block cache file and ``write`` finds its upload with one lookup.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeAlias

from omicsfs.fs.attrs import Attr
from omicsfs.fs.errors import FsError
from omicsfs.fs.read.files import CachedFile
from omicsfs.fs.read.readahead import RangeStream, StreamState
from omicsfs.fs.refview import ContigHandle
from omicsfs.fs.write.ops import WriteHandle


@dataclass
class DocumentHandle:
    """A document made at open (a job's JSON, stats.json): read from memory, never cached."""

    ino: int
    document: bytes


@dataclass
class ReadHandle:
    """A read set or reference file, read through the block cache with its own read-ahead."""

    ino: int
    file: CachedFile
    stream: StreamState = field(default_factory=StreamState)
    range_stream: RangeStream = field(default_factory=RangeStream)


@dataclass
class DirHandle:
    """A folder listing, snapshotted at opendir so readdir offsets stay valid while it changes."""

    ino: int
    entries: list[tuple[str, Attr]]


Handle: TypeAlias = DocumentHandle | ReadHandle | ContigHandle | WriteHandle | DirHandle


class HandleTable:
    def __init__(self) -> None:
        self._handles: dict[int, Handle] = {}
        self._next = 1

    def add(self, handle: Handle) -> int:
        number = self._next
        self._next += 1
        self._handles[number] = handle
        return number

    def get(self, number: int) -> Handle:
        handle = self._handles.get(number)
        if handle is None:
            raise FsError(errno.EBADF, f"no open handle {number}")
        return handle

    def find(self, number: int) -> Handle | None:
        return self._handles.get(number)

    def reads(self) -> Iterator[tuple[int, ReadHandle]]:
        """The open read set and reference files, by handle number."""
        for number, handle in self._handles.items():
            if isinstance(handle, ReadHandle):
                yield number, handle

    def pop(self, number: int) -> Handle | None:
        return self._handles.pop(number, None)
