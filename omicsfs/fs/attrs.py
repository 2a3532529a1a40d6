"""File attributes as the filesystem answers them, before pyfuse3 turns them into a struct."""

from __future__ import annotations

import stat
from dataclasses import dataclass

#: Preferred I/O size for reading: cp and cat then issue 128 KiB reads.
READ_BLKSIZE = 1 << 17
#: For files being written: cp writes 1 MiB at a time, a FUSE request per MiB rather than per
#: 128 KiB (163 against 121 MiB/s in benchmarks/mount_write.py).
WRITE_BLKSIZE = 1 << 20


@dataclass(frozen=True)
class Attr:
    ino: int
    mode: int
    size: int
    mtime: float
    nlink: int
    entry_timeout: float
    attr_timeout: float
    uid: int
    gid: int
    blksize: int = READ_BLKSIZE


@dataclass(frozen=True)
class Owner:
    """Who owns every entry (``--uid``/``--gid``, default the mounting user)."""

    uid: int
    gid: int

    def attr(
        self, ino: int, mode: int, size: int, mtime: float, timeout: float, *,
        attr_timeout: float | None = None, blksize: int = READ_BLKSIZE,
    ) -> Attr:  # fmt: skip
        """Attributes of one entry; folders have two links, everything else one."""
        return Attr(
            ino=ino,
            mode=mode,
            size=size,
            mtime=mtime,
            nlink=2 if stat.S_ISDIR(mode) else 1,
            entry_timeout=timeout,
            attr_timeout=timeout if attr_timeout is None else attr_timeout,
            uid=self.uid,
            gid=self.gid,
            blksize=blksize,
        )
