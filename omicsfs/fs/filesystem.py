"""The filesystem without pyfuse3: lookups, attributes, listings, reads and xattrs.

fuse_ops.py is a thin adapter over this class; tests can drive it directly. It answers from the
catalog (listings and metadata) and the block cache (bytes), and raises FsError or backend
errors, which fuse_ops maps through the one errno table (omicsfs/errors.py).
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from omicsfs.backend.models import ACTIVE, JobKind, JobSummary, ReadSetSummary, ReferenceSummary
from omicsfs.backend.omics import PartSource
from omicsfs.config import MountConfig
from omicsfs.fs.catalog import Catalog, Summary
from omicsfs.fs.errors import FsError
from omicsfs.fs.read.blockcache import BlockCache, CachedFile
from omicsfs.fs.read.readahead import ReadAheadBudget, StreamState
from omicsfs.fs.stats import Stats
from omicsfs.fs.tree import ROOT, Key, Tree, is_folder, is_link
from omicsfs.fs.write.manager import WriteManager
from omicsfs.fs.write.ops import WriteOps

log = logging.getLogger(__name__)

ROOT_INODE = 1
XATTR_PREFIX = "user.omics."

#: Called with (parent inode, name, inode) when a name the kernel may have cached has gone.
Invalidator = Callable[[int, str, int], None]


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
    #: Preferred I/O size: 128 KiB for reading (cp and cat then issue 128 KiB reads), 1 MiB for
    #: files being written, so cp writes 1 MiB at a time (a FUSE request per MiB, not per 128 KiB:
    #: 163 against 121 MiB/s in benchmarks/mount_write.py).
    blksize: int = 1 << 17


@dataclass
class FileHandle:
    ino: int
    file: CachedFile | None = None
    document: bytes | None = None
    writer: int | None = None  # a file being written (core/writefs.py)
    stream: StreamState = field(default_factory=StreamState)


class InodeTable:
    """Permanent key <-> inode mapping: numbers are never reused during a mount.

    Entries are never dropped on ``forget``: a key is a few short strings, and keeping them makes
    inode numbers stable for the life of the mount (DESIGN.md §1) at a cost of about 200 bytes per
    object ever seen.
    """

    def __init__(self) -> None:
        self._by_key: dict[Key, int] = {ROOT: ROOT_INODE}
        self._by_ino: dict[int, Key] = {ROOT_INODE: ROOT}
        self._parents: dict[int, int] = {ROOT_INODE: ROOT_INODE}

    def ino(self, key: Key, parent: int) -> int:
        number = self._by_key.get(key)
        if number is None:
            number = len(self._by_ino) + 1
            self._by_key[key] = number
            self._by_ino[number] = key
        self._parents.setdefault(number, parent)
        return number

    def known(self, key: Key) -> int | None:
        return self._by_key.get(key)

    def key(self, ino: int) -> Key:
        try:
            return self._by_ino[ino]
        except KeyError:
            raise FsError(errno.ESTALE, f"unknown inode {ino}") from None

    def parent(self, ino: int) -> int:
        return self._parents.get(ino, ROOT_INODE)


class FileSystem:
    def __init__(
        self,
        catalog: Catalog,
        cache: BlockCache,
        config: MountConfig,
        stats: Stats,
        invalidate: Invalidator | None = None,
        writes: WriteManager | None = None,
    ) -> None:
        self.catalog = catalog
        self.cache = cache
        self.config = config
        self.stats = stats
        self.tree = Tree(catalog)
        self.inodes = InodeTable()
        self.invalidate = invalidate
        self.mounted_at = time.time()
        self.budget = ReadAheadBudget(
            min(config.read_ahead.budget_bytes, config.cache.memory_bytes // 2), config.read_ahead.max_streams
        )
        self._handles: dict[int, FileHandle] = {}
        self._dir_handles: dict[int, list[tuple[str, Attr]]] = {}
        self._next_handle = 1
        self._listed_folders: dict[Key, float] = {}
        self._last_names: dict[Key, dict[str, Key]] = {}
        self._refusals: set[tuple[str, str]] = set()
        self.writes = WriteOps(self, writes)

    # -- attributes -----------------------------------------------------------------------------

    def make_attr(
        self,
        ino: int,
        mode: int,
        size: int,
        mtime: float,
        timeout: float,
        attr_timeout: float | None = None,
        blksize: int = 1 << 17,
    ) -> Attr:
        folder = stat.S_ISDIR(mode)
        return Attr(
            ino=ino,
            mode=mode,
            size=size,
            mtime=mtime,
            nlink=2 if folder else 1,
            entry_timeout=timeout,
            attr_timeout=timeout if attr_timeout is None else attr_timeout,
            uid=self.config.uid,
            gid=self.config.gid,
            blksize=blksize,
        )

    async def _summary(self, key: Key) -> Summary:
        summary = await self.tree.summary(key)
        if summary is None:
            raise FsError(errno.ENOENT, f"{key[3]} is no longer listed")
        return summary

    async def attr_of(self, key: Key, ino: int, *, placeholder: bool = False) -> Attr:
        """Attributes of a node. With ``placeholder`` (readdir), never makes a metadata call."""
        ttl = self.config.listing_ttl
        immutable = self.config.kernel.immutable_timeout
        if key[0] == "writing":
            return self.writes.attr(key, ino)
        if key[0] == "stats":
            # Changes all the time: never cached; opened with direct I/O, so reads are not cut
            # to this size (fuse_ops.open).
            size = len(self.stats_document())
            return self.make_attr(ino, stat.S_IFREG | 0o444, size, time.time(), ttl, attr_timeout=0.0)
        if is_folder(key):
            mtime = self.mounted_at
            if key[0] == "store":
                store = await self.tree.store(key[1], key[2])
                if store is not None:
                    mtime = store.creation_time
            writable = self.writes.enabled and self.writes.writable_folder(key)
            return self.make_attr(ino, stat.S_IFDIR | (0o755 if writable else 0o555), 0, mtime, ttl)
        if is_link(key):
            target = await self.tree.link_target(key)
            if target is None:
                raise FsError(errno.ENOENT, "symlink target gone")
            return self.make_attr(ino, stat.S_IFLNK | 0o777, len(target.encode()), self.mounted_at, ttl)
        if key[0] == "job":
            job = await self._job(key)
            timeout = immutable if job.terminal else ttl
            if placeholder and not self.catalog.has_job_document(job, key[1]):
                return self.make_attr(ino, stat.S_IFREG | 0o444, 0, job.creation_time, timeout,
                                  self.config.kernel.placeholder_attr_timeout)  # fmt: skip
            document = await self.catalog.job_document(job, key[1])
            return self.make_attr(ino, stat.S_IFREG | 0o444, len(document), job.creation_time, timeout)
        if key[0] == "file":
            summary = await self._summary(key)
            files = self.catalog.known_files(summary)
            if files is None:
                if placeholder:
                    return self.make_attr(ino, stat.S_IFREG | 0o444, 0, summary.creation_time, ttl,
                                      self.config.kernel.placeholder_attr_timeout)  # fmt: skip
                await self._prefetch_siblings(key)
                files = await self.catalog.files(summary)
                self.tree.note_files(summary, files)
            layout = files.files.get(key[4])
            if layout is None:
                raise FsError(errno.ENOENT, f"{summary.id} has no {key[4]} file")
            timeout = immutable if summary.status == ACTIVE else ttl
            return self.make_attr(
                ino, stat.S_IFREG | 0o444, layout.content_length, summary.creation_time, timeout
            )
        raise FsError(errno.ENOENT, f"unknown node {key}")

    async def _prefetch_siblings(self, key: Key) -> None:
        """``ls -l`` support: the first stat in a just-listed folder fetches every sibling's
        metadata concurrently (paced by the backend's token bucket), not one per stat call."""
        folder_key: Key = ("store", key[1], key[2])
        listed_at = self._listed_folders.pop(folder_key, None)
        if listed_at is None or time.monotonic() - listed_at > self.config.listing_ttl:
            return
        folder = await self.tree.folder(key[1], key[2])
        summaries = [s for s in folder.objects.values() if s.id != key[3]]
        if summaries:
            self.cache.spawn(self.catalog.prefetch_files, summaries)

    async def _job(self, key: Key) -> JobSummary:
        jobs = await self.catalog.jobs(key[1], key[2], cast(JobKind, key[3]))
        job = jobs.get(key[4])
        if job is None:
            raise FsError(errno.ENOENT, f"job {key[4]} is no longer listed")
        return job

    async def getattr(self, ino: int) -> Attr:
        return await self.attr_of(self.inodes.key(ino), ino)

    async def lookup(self, parent: int, name: str) -> Attr:
        key = self.inodes.key(parent)
        if not is_folder(key):
            raise FsError(errno.ENOTDIR)
        children = await self.children(key, parent)
        child = children.get(name)
        if child is None:
            raise FsError(errno.ENOENT)
        return await self.attr_of(child, self.inodes.ino(child, parent))

    async def children(self, key: Key, ino: int) -> dict[str, Key]:
        """A folder's entries, telling the kernel about names that have gone since last time."""
        children = await self.tree.children(key)
        extra = self.writes.extra_children(key)
        if extra:
            children = {**extra, **children}
        previous = self._last_names.get(key)
        if previous is not None and previous is not children and self.invalidate is not None:
            for name, old_key in previous.items():
                if children.get(name) != old_key:
                    old_ino = self.inodes.known(old_key)
                    if old_ino is not None:
                        self.invalidate(ino, name, old_ino)
        self._last_names[key] = children
        return children

    # -- folders --------------------------------------------------------------------------------

    async def opendir(self, ino: int) -> int:
        """Takes a snapshot of the folder, so readdir offsets stay valid while listings change."""
        key = self.inodes.key(ino)
        if not is_folder(key):
            raise FsError(errno.ENOTDIR)
        children = await self.children(key, ino)
        if key[0] == "store":
            self._listed_folders[key] = time.monotonic()
        entries: list[tuple[str, Attr]] = []
        for name in sorted(children):
            child = children[name]
            try:
                attr = await self.attr_of(child, self.inodes.ino(child, ino), placeholder=True)
            except FsError:
                continue  # gone between the listing and now (a dangling symlink)
            entries.append((name, attr))
        handle = self._new_handle()
        self._dir_handles[handle] = entries
        return handle

    def readdir(self, handle: int, start: int) -> list[tuple[int, str, Attr]]:
        entries = self._dir_handles.get(handle, [])
        return [(index + 1, name, attr) for index, (name, attr) in enumerate(entries) if index >= start]

    def releasedir(self, handle: int) -> None:
        self._dir_handles.pop(handle, None)

    async def readlink(self, ino: int) -> str:
        key = self.inodes.key(ino)
        if not is_link(key):
            raise FsError(errno.EINVAL)
        target = await self.tree.link_target(key)
        if target is None:
            raise FsError(errno.ENOENT, "symlink target gone")
        return target

    # -- files ----------------------------------------------------------------------------------

    def _new_handle(self) -> int:
        handle = self._next_handle
        self._next_handle += 1
        return handle

    async def open(self, ino: int, flags: int) -> tuple[int, bool]:
        """Returns (handle, keep_cache); keep_cache False means direct I/O for live documents."""
        key = self.inodes.key(ino)
        if key[0] == "writing":
            raise FsError(errno.EPERM, "the file is being written; it opens once it is a read set")
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
            raise self.writes.refuse("opening a read set for writing")
        if key[0] == "job":
            job = await self._job(key)
            document = await self.catalog.job_document(job, key[1])
            handle = self._new_handle()
            self._handles[handle] = FileHandle(ino, document=document)
            return handle, False
        if key[0] == "stats":
            handle = self._new_handle()
            self._handles[handle] = FileHandle(ino, document=self.stats_document())
            return handle, False
        if key[0] != "file":
            raise FsError(errno.EISDIR if is_folder(key) else errno.EINVAL)
        summary = await self._summary(key)
        if summary.status != ACTIVE and isinstance(summary, ReadSetSummary):
            summary = await self.catalog.current_read_set(summary)
        if summary.status != ACTIVE:
            self._refuse(summary)
        cached = await self.cached_file(summary, key[4])
        if cached is None:
            raise FsError(errno.ENOENT, f"{summary.id} has no {key[4]} file")
        handle = self._new_handle()
        self._handles[handle] = FileHandle(ino, file=cached)
        return handle, True

    async def cached_file(self, summary: Summary, name: str) -> CachedFile | None:
        """How the block cache reads one file of a read set or reference (None: no such file).
        Indexes stay hot whole, BAM/CRAM/uBAM data files at both ends: htslib reads them on
        every open."""
        files = await self.catalog.files(summary)
        layout = files.files.get(name)
        if layout is None:
            return None
        kind = "readSet" if isinstance(summary, ReadSetSummary) else "reference"
        aligned = isinstance(summary, ReadSetSummary) and summary.file_type in ("BAM", "CRAM", "UBAM")
        return CachedFile(
            source=PartSource(kind, summary.store_id, summary.id, name),
            layout=layout,
            validator=files.validator,
            hot_all=name == "index",
            hot_ends=aligned and name == "source1",
        )

    def _refuse(self, summary: Summary) -> None:
        what = "read set" if isinstance(summary, ReadSetSummary) else "reference"
        if (summary.id, summary.status) not in self._refusals:
            self._refusals.add((summary.id, summary.status))
            hint = {
                "ARCHIVED": "start an activation job (aws omics start-read-set-activation-job"
                f" --sequence-store-id {summary.store_id} --sources readSetId={summary.id})",
                "ACTIVATING": "an activation job is running; it opens once the read set is ACTIVE",
                "PROCESSING_UPLOAD": "the service is still processing the upload",
                "UPLOAD_FAILED": "the upload failed and the read set has no data",
            }.get(summary.status, "only ACTIVE objects can be read")
            log.warning("refusing to open %s %s (%s): it is %s; %s", what, summary.id, summary.name,
                        summary.status, hint)  # fmt: skip
        raise FsError(errno.EACCES, f"{what} {summary.id} is {summary.status}")

    async def read(self, handle: int, offset: int, size: int) -> bytes | memoryview:
        opened = self._handles.get(handle)
        if opened is None:
            raise FsError(errno.EBADF)
        if opened.document is not None:
            return opened.document[offset : offset + size]
        if opened.writer is not None:
            raise FsError(errno.EPERM, "a file being written cannot be read")
        assert opened.file is not None
        file = opened.file
        if offset < file.layout.content_length:
            wanted = opened.stream.observe(offset, size, file.layout, self.config.read_ahead.max_depth)
            wanted = [p for p in wanted if not self.cache.part_present(file, p)]
            for part in self.budget.grant(handle, wanted, file.layout.part_size):
                self.cache.ensure_fetch(file, part, prefetch=True)
        return await self.cache.read_buffer(file, offset, size)

    def release(self, handle: int) -> None:
        opened = self._handles.pop(handle, None)
        self.budget.release(handle)
        if opened is not None and opened.writer is not None:
            self.writes.release(opened.writer)

    # -- writing (core/writefs.py does the work) ------------------------------------------------

    async def create(self, parent: int, name: str) -> tuple[int, Attr]:
        ino, writer = await self.writes.create(parent, name)
        handle = self._new_handle()
        self._handles[handle] = FileHandle(ino, writer=writer)
        return handle, await self.getattr(ino)

    def _writer_of(self, handle: int) -> int:
        opened = self._handles.get(handle)
        if opened is None or opened.writer is None:
            raise FsError(errno.EBADF, "not open for writing")
        return opened.writer

    async def write(self, handle: int, offset: int, data: bytes) -> int:
        return await self.writes.write(self._writer_of(handle), offset, data)

    async def flush(self, handle: int) -> None:
        opened = self._handles.get(handle)
        if opened is not None and opened.writer is not None:
            await self.writes.flush(opened.writer)

    async def mkdir(self, parent: int, name: str) -> Attr:
        key = await self.writes.mkdir(parent, name)
        return await self.attr_of(key, self.inodes.ino(key, parent))

    def node_label(self, *, ino: int | None = None, fh: int | None = None) -> str:
        """What a failed request was about, for its log line: the node's key names the store,
        read set or reference ID and file. Never raises: it runs on the failure path."""
        try:
            if fh is not None:
                opened = self._handles.get(fh)
                ino = opened.ino if opened is not None else None
            if ino is None:
                return ""
            return f" ({'/'.join(self.inodes.key(ino))})"
        except Exception:
            return ""

    def stats_document(self) -> bytes:
        """``.omicsfs/stats.json``: the counters plus the state of the caches and uploads."""
        document = self.stats.snapshot()
        document["cache"].update(self.cache.usage())
        document["read_ahead"] = {
            "budget_bytes": self.budget.total_bytes,
            "reserved_bytes": self.budget.in_use,
            "streams": self.budget.streams,
            "prefetched_parts": document.pop("prefetch_parts"),
        }
        if self.writes.manager is not None:
            document["uploads"]["in_flight"] = self.writes.manager.progress()
        return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()

    # -- xattrs ---------------------------------------------------------------------------------

    async def xattrs(self, ino: int) -> dict[str, str]:
        key = self.inodes.key(ino)
        values: dict[str, str] = {}
        if key[0] == "file":
            summary = await self._summary(key)
            values = _object_xattrs(summary)
            values["file"] = key[4].upper()
            if isinstance(summary, ReadSetSummary):
                values["etag"] = {"source1": summary.etag_source1, "source2": summary.etag_source2}.get(
                    key[4], ""
                )
                values["etagAlgorithm"] = summary.etag_algorithm
        elif key[0] == "store":
            store = await self.tree.store(key[1], key[2])
            if store is None:
                raise FsError(errno.ENOENT)
            values = {
                "id": store.id,
                "arn": store.arn,
                "name": store.name,
                "creationTime": _iso(store.creation_time),
                "description": store.description,
            }
        elif key[0] == "job":
            job = await self._job(key)
            values = {"id": job.id, "status": job.status, "creationTime": _iso(job.creation_time)}
        return {XATTR_PREFIX + name: value for name, value in values.items() if value}


def _iso(epoch_seconds: float) -> str:
    return (
        dt.datetime.fromtimestamp(epoch_seconds, dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _object_xattrs(summary: Summary) -> dict[str, str]:
    values = {
        "id": summary.id,
        "arn": summary.arn,
        "status": summary.status,
        "name": summary.name,
        "creationTime": _iso(summary.creation_time),
        "description": summary.description,
    }
    if isinstance(summary, ReadSetSummary):
        values.update(
            sequenceStoreId=summary.store_id,
            sampleId=summary.sample_id,
            subjectId=summary.subject_id,
            referenceArn=summary.reference_arn,
            fileType=summary.file_type,
            statusMessage=summary.status_message,
        )
        for name, value in summary.sequence_information.items():
            values[name] = str(value)
    elif isinstance(summary, ReferenceSummary):
        values.update(referenceStoreId=summary.store_id, md5=summary.md5)
    return values
