"""The pyfuse3 adapter: each handler calls the core and converts; nothing else lives here.

Every handler goes through ``_guard``, which maps any exception through the one errno table and
logs it once with the operation, inode and cause, and counts it by errno in stats.json. A handler
that raised anything but FUSEError would end ``pyfuse3.main`` and leave users with "Transport
endpoint is not connected" (README.md, "Tenets"), so nothing escapes; refusals of operations
omicsfs never supports (rename, link, ...) take the same path.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import cast

import pyfuse3
import trio

from omicsfs.backend.errors import BackendError
from omicsfs.fs.attrs import Attr
from omicsfs.fs.errors import FsError, to_errno
from omicsfs.fs.filesystem import AttrChange, FileSystem
from omicsfs.fs.stats import Stats

log = logging.getLogger(__name__)

#: errnos that are part of normal operation (htslib probing for index names, tools testing for
#: xattrs): answered without a log line.
_QUIET = {errno.ENOENT, pyfuse3.ENOATTR, errno.ENOTSUP}


def _entry(attr: Attr) -> pyfuse3.EntryAttributes:
    entry = pyfuse3.EntryAttributes()
    entry.st_ino = pyfuse3.InodeT(attr.ino)
    entry.generation = 0
    entry.entry_timeout = attr.entry_timeout
    entry.attr_timeout = attr.attr_timeout
    entry.st_mode = pyfuse3.ModeT(attr.mode)
    entry.st_nlink = attr.nlink
    entry.st_uid = attr.uid
    entry.st_gid = attr.gid
    entry.st_size = attr.size
    entry.st_blksize = attr.blksize
    entry.st_blocks = -(-attr.size // 512)
    # Whole microseconds first: mtime * 1e9 is past 2**53 and lands on a multiple of 256 ns, so
    # a millisecond creation time would come back as ...123000000 +- 128 ns.
    ns = round(attr.mtime * 1e6) * 1000
    entry.st_atime_ns = entry.st_mtime_ns = entry.st_ctime_ns = ns
    return entry


class OmicsOperations(pyfuse3.Operations):
    supports_dot_lookup = False
    enable_writeback_cache = False
    enable_acl = False

    def __init__(
        self, fs: FileSystem, stats: Stats, *, after_init: Callable[[], None] | None = None
    ) -> None:
        super().__init__()
        self.fs = fs
        self.stats = stats
        self._after_init = after_init

    def init(self) -> None:
        """Called inside the kernel's INIT request, before pyfuse3 replies: ``after_init`` runs
        on the trio thread once this request is answered (what the kernel sets up at INIT, such
        as the mount's readahead, is in place by then)."""
        if self._after_init is not None:
            trio.lowlevel.current_trio_token().run_sync_soon(self._after_init)

    def _failure(
        self, op: str, exc: BaseException, *, ino: int | None = None, fh: int | None = None,
        name: bytes | None = None, what: str = "",
    ) -> pyfuse3.FUSEError:  # fmt: skip
        """Maps ``exc`` through the one errno table and logs the failed request once (not per
        retry): the operation, its target, the node it is about, the service error and request
        ID, and the errno. The target text is only built here, on the failure path."""
        code = to_errno(exc)
        code_name = errno.errorcode.get(code, str(code))
        self.stats.errors_by_errno[code_name] += 1
        if code not in _QUIET:
            if not what:
                what = f"fh {fh}" if fh is not None else f"inode {ino}"
                what += f"/{name!r}" if name is not None else ""
            node = self.fs.node_label(ino=ino, fh=fh)
            if isinstance(exc, FsError | BackendError):
                detail = ""
                if isinstance(exc, BackendError):
                    detail = f" [{exc.operation} {exc.code} request {exc.request_id or '-'}]"
                log.warning("%s %s%s -> %s: %s%s", op, what, node, code_name, exc, detail)
            else:
                log.error("%s %s%s -> %s: unexpected error (a bug)", op, what, node, code_name, exc_info=exc)
        return pyfuse3.FUSEError(code)

    @asynccontextmanager
    async def _guard(
        self, op: str, *, ino: int | None = None, fh: int | None = None, name: bytes | None = None
    ) -> AsyncIterator[None]:
        try:
            yield
        except (pyfuse3.FUSEError, trio.Cancelled):
            raise
        except BaseException as exc:
            raise self._failure(op, exc, ino=ino, fh=fh, name=name) from None

    async def lookup(
        self, parent_inode: pyfuse3.InodeT, name: pyfuse3.FileNameT, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        async with self._guard("lookup", ino=parent_inode, name=name):
            return _entry(await self.fs.lookup(parent_inode, os.fsdecode(name)))
        raise AssertionError("unreachable")

    async def forget(self, inode_list: Sequence[tuple[pyfuse3.InodeT, int]]) -> None:
        return  # inode numbers are permanent for the mount (fs/inodes.py)

    async def getattr(self, inode: pyfuse3.InodeT, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        async with self._guard("getattr", ino=inode):
            return _entry(await self.fs.getattr(inode))
        raise AssertionError("unreachable")

    async def readlink(self, inode: pyfuse3.InodeT, ctx: pyfuse3.RequestContext) -> pyfuse3.FileNameT:
        async with self._guard("readlink", ino=inode):
            return pyfuse3.FileNameT(os.fsencode(await self.fs.readlink(inode)))
        raise AssertionError("unreachable")

    async def opendir(self, inode: pyfuse3.InodeT, ctx: pyfuse3.RequestContext) -> pyfuse3.FileHandleT:
        async with self._guard("opendir", ino=inode):
            return pyfuse3.FileHandleT(await self.fs.opendir(inode))
        raise AssertionError("unreachable")

    async def readdir(self, fh: pyfuse3.FileHandleT, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        async with self._guard("readdir", fh=fh):
            for next_id, name, attr in self.fs.readdir(fh, start_id):
                if not pyfuse3.readdir_reply(
                    token, pyfuse3.FileNameT(os.fsencode(name)), _entry(attr), next_id
                ):
                    return

    async def releasedir(self, fh: pyfuse3.FileHandleT) -> None:
        self.fs.releasedir(fh)

    async def open(self, inode: pyfuse3.InodeT, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        async with self._guard("open", ino=inode):
            handle, keep_cache = await self.fs.open(inode, flags)
            # Documents made at open (job JSON, stats.json) bypass the page cache: their size
            # may change between the stat and the open.
            return pyfuse3.FileInfo(
                fh=pyfuse3.FileHandleT(handle), keep_cache=keep_cache, direct_io=not keep_cache
            )
        raise AssertionError("unreachable")

    async def read(self, fh: pyfuse3.FileHandleT, off: int, size: int) -> bytes:
        # The hottest handler: a plain try instead of _guard's context manager (one generator
        # and two awaits fewer per 128 KiB-1 MiB request), the same failure path. The answer may
        # be a memoryview of a cached block: pyfuse3 replies from any contiguous buffer
        # (PyObject_GetBuffer in handlers.pxi), though its stub says bytes.
        try:
            return cast(bytes, await self.fs.read(fh, off, size))
        except (pyfuse3.FUSEError, trio.Cancelled):
            raise
        except BaseException as exc:
            raise self._failure("read", exc, fh=fh, what=f"fh {fh} @{off}+{size}") from None

    async def release(self, fh: pyfuse3.FileHandleT) -> None:
        self.fs.release(fh)

    async def getxattr(
        self, inode: pyfuse3.InodeT, name: pyfuse3.XAttrNameT, ctx: pyfuse3.RequestContext
    ) -> bytes:
        async with self._guard("getxattr", ino=inode):
            value = (await self.fs.xattrs(inode)).get(os.fsdecode(name))
            if value is None:
                raise FsError(pyfuse3.ENOATTR)
            return value.encode()
        raise AssertionError("unreachable")

    async def listxattr(
        self, inode: pyfuse3.InodeT, ctx: pyfuse3.RequestContext
    ) -> Sequence[pyfuse3.XAttrNameT]:
        async with self._guard("listxattr", ino=inode):
            return [pyfuse3.XAttrNameT(name.encode()) for name in await self.fs.xattrs(inode)]
        raise AssertionError("unreachable")

    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        data = pyfuse3.StatvfsData()
        data.f_bsize = data.f_frsize = 1 << 17
        # Read-only: honest zero free space. Read-write: the store has no size limit to report,
        # and tools that check free space before writing must not refuse (Mountpoint does the same).
        data.f_blocks = data.f_bfree = data.f_bavail = 0 if self.fs.read_only else (1 << 40)
        data.f_files = data.f_ffree = data.f_favail = 0
        data.f_namemax = 255
        return data

    # -- writing (fs/write/ops.py); on a read-only mount every mutation is EROFS ---------------

    async def create(
        self, parent_inode: pyfuse3.InodeT, name: pyfuse3.FileNameT, mode: int, flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:  # fmt: skip
        async with self._guard("create", ino=parent_inode, name=name):
            handle, attr = await self.fs.create(parent_inode, os.fsdecode(name))
            return pyfuse3.FileInfo(fh=pyfuse3.FileHandleT(handle), direct_io=True), _entry(attr)
        raise AssertionError("unreachable")

    async def write(self, fh: pyfuse3.FileHandleT, off: int, buf: bytes) -> int:
        try:
            return await self.fs.write(fh, off, buf)
        except (pyfuse3.FUSEError, trio.Cancelled):
            raise
        except BaseException as exc:
            raise self._failure("write", exc, fh=fh, what=f"fh {fh} @{off}+{len(buf)}") from None

    async def flush(self, fh: pyfuse3.FileHandleT) -> None:
        async with self._guard("flush", fh=fh):
            await self.fs.flush(fh)

    async def fsync(self, fh: pyfuse3.FileHandleT, datasync: bool) -> None:
        async with self._guard("fsync", fh=fh):
            await self.fs.flush(fh)  # Mountpoint: fsync completes the upload

    async def mkdir(
        self, parent_inode: pyfuse3.InodeT, name: pyfuse3.FileNameT, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        async with self._guard("mkdir", ino=parent_inode, name=name):
            return _entry(await self.fs.mkdir(parent_inode, os.fsdecode(name)))
        raise AssertionError("unreachable")

    async def rmdir(
        self, parent_inode: pyfuse3.InodeT, name: pyfuse3.FileNameT, ctx: pyfuse3.RequestContext
    ) -> None:
        async with self._guard("rmdir", ino=parent_inode, name=name):
            await self.fs.rmdir(parent_inode, os.fsdecode(name))

    async def unlink(
        self, parent_inode: pyfuse3.InodeT, name: pyfuse3.FileNameT, ctx: pyfuse3.RequestContext
    ) -> None:
        async with self._guard("unlink", ino=parent_inode, name=name):
            await self.fs.unlink(parent_inode, os.fsdecode(name))

    async def setattr(
        self, inode: pyfuse3.InodeT, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields,
        fh: pyfuse3.FileHandleT | None, ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:  # fmt: skip
        async with self._guard("setattr", ino=inode):
            change = AttrChange(
                size=attr.st_size if fields.update_size else None,
                mode=bool(fields.update_mode),
                owner=bool(fields.update_uid or fields.update_gid),
                times=bool(fields.update_atime or fields.update_mtime or fields.update_ctime),
            )
            return _entry(await self.fs.setattr(inode, change))
        raise AssertionError("unreachable")

    async def _refuse(self, op: str, ino: int, name: bytes | None = None) -> None:
        async with self._guard(op, ino=ino, name=name):
            raise self.fs.refuse(op)

    async def rename(
        self, parent_inode_old: pyfuse3.InodeT, name_old: pyfuse3.FileNameT, parent_inode_new: pyfuse3.InodeT,
        name_new: pyfuse3.FileNameT, flags: int, ctx: pyfuse3.RequestContext,
    ) -> None:  # fmt: skip
        await self._refuse("rename", parent_inode_old, name_old)

    async def link(
        self, inode: pyfuse3.InodeT, new_parent_inode: pyfuse3.InodeT, new_name: pyfuse3.FileNameT,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:  # fmt: skip
        await self._refuse("link", new_parent_inode, new_name)
        raise AssertionError("unreachable")

    async def symlink(
        self, parent_inode: pyfuse3.InodeT, name: pyfuse3.FileNameT, target: pyfuse3.FileNameT,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:  # fmt: skip
        await self._refuse("symlink", parent_inode, name)
        raise AssertionError("unreachable")

    async def mknod(
        self, parent_inode: pyfuse3.InodeT, name: pyfuse3.FileNameT, mode: int, rdev: int,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:  # fmt: skip
        await self._refuse("mknod", parent_inode, name)
        raise AssertionError("unreachable")

    async def setxattr(
        self, inode: pyfuse3.InodeT, name: pyfuse3.XAttrNameT, value: bytes, ctx: pyfuse3.RequestContext
    ) -> None:
        if name.startswith(b"system.posix_acl_"):
            # No ACLs here: ENOTSUP makes cp -p / cp -a fall back to chmod, a no-op on a file
            # this mount wrote (FileSystem.setattr); EPERM would fail them.
            raise pyfuse3.FUSEError(errno.ENOTSUP)
        await self._refuse("setxattr", inode)

    async def removexattr(
        self, inode: pyfuse3.InodeT, name: pyfuse3.XAttrNameT, ctx: pyfuse3.RequestContext
    ) -> None:
        await self._refuse("removexattr", inode)
