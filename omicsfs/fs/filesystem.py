"""The filesystem without pyfuse3: the one object fuse_ops.py calls, and the unit tests too.

It dispatches each request by node kind to the part that owns it: names and inodes
(namespace.py), attributes (attributes.py), reads (read/reader.py), the by-md5 view of the
references (refview.py), writes (write/ops.py), extended attributes (xattrs.py) and the stats
document (statsfile.py). It raises FsError or
backend errors, which fuse_ops maps through the one errno table (fs/errors.py).
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass

from omicsfs.backend.interface import Backend, ObjectStore
from omicsfs.backend.models import ObjectFiles, ObjectKind, ReadSetSummary, Status, StoreKind, Summary
from omicsfs.config import DataPlane, MountConfig
from omicsfs.fs.attributes import Attributes
from omicsfs.fs.attrs import Attr, Owner
from omicsfs.fs.catalog import Catalog
from omicsfs.fs.contigs import ReferenceContigs
from omicsfs.fs.errors import FsError
from omicsfs.fs.handles import DirHandle, DocumentHandle, HandleTable, ReadHandle
from omicsfs.fs.metastore import MetadataStore
from omicsfs.fs.namespace import InodeInvalidator, Invalidator, Namespace
from omicsfs.fs.nodes import (
    FOLDER_TYPES,
    LINK_TYPES,
    ContigFile,
    JobFile,
    Node,
    ObjectFile,
    StatsFile,
    StoreFolder,
    WritingFile,
    describe,
)
from omicsfs.fs.read.blockcache import BlockCache
from omicsfs.fs.read.disktier import DiskTier
from omicsfs.fs.read.reader import Reader
from omicsfs.fs.read.s3plane import S3Plane
from omicsfs.fs.refview import ContigHandle, Md5View
from omicsfs.fs.s3listing import S3Listing
from omicsfs.fs.stats import Stats
from omicsfs.fs.statsfile import stats_document
from omicsfs.fs.tasks import TaskGroup
from omicsfs.fs.tree import Tree
from omicsfs.fs.write.ops import WriteHandle, WriteOps
from omicsfs.fs.write.references import ReferenceIndex
from omicsfs.fs.xattrs import job_xattrs, object_file_xattrs, store_xattrs

log = logging.getLogger(__name__)

#: Statuses of a read set just uploaded: opening one asks the service whether processing failed.
_UPLOADED = (Status.PROCESSING_UPLOAD, Status.UPLOAD_FAILED)


@dataclass(frozen=True)
class AttrChange:
    """What a setattr request asks to change (only what the kernel flagged)."""

    size: int | None = None
    mode: bool = False
    owner: bool = False
    times: bool = False


class FileSystem:
    def __init__(
        self, config: MountConfig, backend: Backend, stats: Stats, *, mountpoint: str = "",
        invalidate: Invalidator | None = None, disk: DiskTier | None = None,
        metastore: MetadataStore | None = None, s3: ObjectStore | None = None,
        invalidate_inode: InodeInvalidator | None = None,
    ) -> None:  # fmt: skip
        self.config = config
        self.backend = backend
        self.stats = stats
        self.tasks = TaskGroup()
        self.metastore = metastore or MetadataStore(None)
        self.catalog = Catalog(
            backend, self.metastore, listing_ttl=config.listing_ttl,
            sequence_store_ids=config.sequence_store_ids, reference_store_ids=config.reference_store_ids,
            on_change=self._layout_changed,
        )  # fmt: skip
        planes = S3Plane(s3, config.data_plane, stats)
        self.cache = BlockCache(
            backend, config.cache, stats, self.tasks,
            disk=disk, s3=s3, planes=planes, read_ahead=config.read_ahead,
        )  # fmt: skip
        self.reader = Reader(self.catalog, self.cache, config)
        owner = Owner(config.uid, config.gid)
        self.contigs = ReferenceContigs(self.catalog, self.cache, self.reader, self.metastore, self.tasks)
        self.by_md5 = Md5View(
            self.catalog, self.contigs, self.reader, owner, config.kernel, config.listing_ttl
        )
        self.tree = Tree(self.catalog, self.by_md5)
        self.namespace = Namespace(self.tree, invalidate, invalidate_inode)
        self.writes: WriteOps | None = None
        if config.writes.enabled:
            references = ReferenceIndex(self.catalog, self.contigs)
            self.writes = WriteOps(
                self.namespace, self.catalog, references, backend, config.writes, config.kernel, owner, stats,
                self.tasks, mountpoint,
            )  # fmt: skip
        s3_listing = None
        if planes.mode is not DataPlane.PARTS:
            s3_listing = S3Listing(self.catalog, s3, stats, config.listing_ttl)
        self.attributes = Attributes(
            self.tree,
            self.catalog,
            config,
            owner,
            self.tasks,
            self.writes,
            lambda: len(self.stats_document()),
            s3_listing,
        )
        self.handles = HandleTable()
        self._failed_refusals: set[str] = set()

    @property
    def read_only(self) -> bool:
        return self.writes is None

    def _writes(self) -> WriteOps:
        if self.writes is None:
            raise FsError(errno.EROFS, "the mount is read-only (mount with --read-write to upload)")
        return self.writes

    def refuse(self, what: str) -> FsError:
        """The errno for a mutation the mount never allows: EROFS read-only, EPERM read-write."""
        if self.writes is None:
            return FsError(errno.EROFS, f"{what}: the mount is read-only")
        if what == "rename":
            hint = "rsync: copy with --inplace, which writes the file under its own name"
            return FsError(errno.EPERM, f"rename: read sets are immutable and cannot be renamed ({hint})")
        return FsError(errno.EPERM, f"{what}: read sets are immutable")

    def _layout_changed(self, summary: Summary, files: ObjectFiles) -> None:
        """The sizes of an object changed (a new read set is ACTIVE): the kernel drops what it
        cached of its files' attributes, under every inode that shows them."""
        kind = StoreKind.SEQUENCE if summary.kind is ObjectKind.READ_SET else StoreKind.REFERENCE
        nodes: list[Node] = [ObjectFile(kind, summary.store_id, summary.id, name) for name in files.files]
        if self.writes is not None:
            nodes += self.writes.writing_nodes(summary.id)
        for node in nodes:
            ino = self.namespace.inodes.known(node)
            if ino is not None:
                self.namespace.changed(ino)

    # -- names and attributes -------------------------------------------------------------------

    async def getattr(self, ino: int) -> Attr:
        return await self.attributes.of(self.namespace.node(ino), ino)

    async def lookup(self, parent: int, name: str) -> Attr:
        children = await self.namespace.children(self.namespace.folder(parent))
        child = children.get(name)
        if child is None:
            raise FsError(errno.ENOENT)
        return await self.attributes.of(child, self.namespace.inodes.ino(child))

    async def setattr(self, ino: int, change: AttrChange) -> Attr:
        current = await self.getattr(ino)
        node = self.namespace.node(ino)
        # Truncating a file being written to the size it already has (O_TRUNC on create) is the
        # one size change that changes nothing.
        if change.size is not None and not (change.size == current.size and isinstance(node, WritingFile)):
            raise self.refuse("changing attributes (truncate, chmod, chown, utimes)")
        if (change.mode or change.owner or change.times) and not self._wrote(node):
            raise self.refuse("changing attributes (truncate, chmod, chown, utimes)")
        # Setting the times, mode or owner of a file this mount wrote (cp -p, cp -a, rsync -t,
        # rclone after copying) is a no-op that succeeds, as utimes is on Mountpoint and rclone
        # mount: a read set keeps its creation time, mode 0444 and the mount's owner
        # (SEMANTICS.md, "After close").
        return current

    def _wrote(self, node: Node) -> bool:
        if self.writes is None:
            return False
        if isinstance(node, WritingFile):
            return True
        return isinstance(node, ObjectFile) and self.writes.made_here(node)

    async def readlink(self, ino: int) -> str:
        node = self.namespace.node(ino)
        if not isinstance(node, LINK_TYPES):
            raise FsError(errno.EINVAL)
        target = await self.tree.link_target(node)
        if target is None:
            raise FsError(errno.ENOENT, "symlink target gone")
        return target

    # -- folders --------------------------------------------------------------------------------

    async def opendir(self, ino: int) -> int:
        """Takes a snapshot of the folder, so readdir offsets stay valid while listings change."""
        folder = self.namespace.folder(ino)
        children = await self.namespace.children(folder)
        if isinstance(folder, StoreFolder):
            self.attributes.listed(folder)
        entries: list[tuple[str, Attr]] = []
        for name in sorted(children):
            child = children[name]
            try:
                attr = await self.attributes.of(child, self.namespace.inodes.ino(child), placeholder=True)
            except FsError:
                continue  # gone between the listing and now (a dangling symlink)
            entries.append((name, attr))
        return self.handles.add(DirHandle(ino, entries))

    def readdir(self, handle: int, start: int) -> list[tuple[int, str, Attr]]:
        opened = self.handles.find(handle)
        entries = opened.entries if isinstance(opened, DirHandle) else []
        return [(index + 1, name, attr) for index, (name, attr) in enumerate(entries) if index >= start]

    def releasedir(self, handle: int) -> None:
        self.handles.pop(handle)

    async def mkdir(self, parent: int, name: str) -> Attr:
        made = await self._writes().mkdir(parent, name)
        return await self.attributes.of(made, self.namespace.inodes.ino(made))

    async def rmdir(self, parent: int, name: str) -> None:
        await self._writes().rmdir(parent, name)

    # -- files ----------------------------------------------------------------------------------

    async def open(self, ino: int, flags: int) -> tuple[int, bool]:
        """Returns (handle, keep_cache); keep_cache False means direct I/O for live documents."""
        node = self.namespace.node(ino)
        if isinstance(node, WritingFile):
            made = self.writes.made(node) if self.writes is not None else None
            if made is None:
                raise FsError(errno.EPERM, "the file is being written; it opens once it is a read set")
            node = made  # closed: opens as the read set it became
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
            raise self.refuse("opening a read set for writing")
        match node:
            case JobFile():
                job = await self.attributes.job(node)
                document = await self.catalog.job_document(node.kind, job)
                return self.handles.add(DocumentHandle(ino, document)), False
            case StatsFile():
                return self.handles.add(DocumentHandle(ino, self.stats_document())), False
            case ObjectFile():
                summary = await self.attributes.summary(node)
                if isinstance(summary, ReadSetSummary) and summary.status in _UPLOADED:
                    summary = await self.catalog.current_read_set(summary)  # failed since listed?
                if summary.status == Status.UPLOAD_FAILED:
                    raise self._upload_failed(summary)
                cached = await self.reader.open(summary, node.file)
                return self.handles.add(ReadHandle(ino, cached)), True
            case ContigFile():
                return self.handles.add(await self.by_md5.open(node, ino)), True
        raise FsError(errno.EISDIR if isinstance(node, FOLDER_TYPES) else errno.EINVAL)

    def _upload_failed(self, summary: Summary) -> FsError:
        """A read set whose upload failed in processing has no data: EACCES, and one log line
        per read set saying why (the service's statusMessage)."""
        message = summary.status_message if isinstance(summary, ReadSetSummary) else ""
        if summary.id not in self._failed_refusals:
            self._failed_refusals.add(summary.id)
            log.warning("refusing to open read set %s (%s): its upload failed in processing, so it has "
                        "no data: %s", summary.id, summary.name, message or "no reason given")  # fmt: skip
        return FsError(errno.EACCES, f"read set {summary.id} is UPLOAD_FAILED: {message}")

    async def read(self, handle: int, offset: int, size: int) -> bytes | bytearray | memoryview:
        match self.handles.get(handle):
            case ReadHandle(file=file, stream=stream, range_stream=ranges):
                data = await self.reader.read(handle, stream, ranges, file, offset, size)
                self.stats.read_requests += 1
                self.stats.read_bytes += len(data)
                return data
            case ContigHandle() as opened:
                return await self.by_md5.read(handle, opened, offset, size)
            case DocumentHandle(document=document):
                return document[offset : offset + size]
            case WriteHandle():
                raise FsError(errno.EPERM, "a file being written cannot be read")
        raise FsError(errno.EBADF)

    def release(self, handle: int) -> None:
        match self.handles.pop(handle):
            case ReadHandle() | ContigHandle():
                self.reader.closed(handle)
            case WriteHandle() as opened if self.writes is not None:
                self.writes.release(opened)

    async def create(self, parent: int, name: str) -> tuple[int, Attr]:
        opened = await self._writes().create(parent, name)
        return self.handles.add(opened), await self.getattr(opened.ino)

    def _write_handle(self, handle: int) -> WriteHandle:
        opened = self.handles.get(handle)
        if not isinstance(opened, WriteHandle):
            raise FsError(errno.EBADF, "not open for writing")
        return opened

    async def write(self, handle: int, offset: int, data: bytes) -> int:
        return await self._writes().write(self._write_handle(handle), offset, data)

    async def flush(self, handle: int) -> None:
        opened = self.handles.find(handle)
        if isinstance(opened, WriteHandle):
            await self._writes().flush(opened)

    async def unlink(self, parent: int, name: str) -> None:
        await self._writes().unlink(parent, name)

    # -- everything else ------------------------------------------------------------------------

    def stats_document(self) -> bytes:
        windows = [
            self.reader.window(
                number, opened.stream, opened.range_stream, opened.file, self.describe_node(opened.ino)
            )
            for number, opened in self.handles.reads()
        ]
        return stats_document(self.stats, self.cache, self.reader.budget, windows, self.writes)

    async def xattrs(self, ino: int) -> dict[str, str]:
        node = self.namespace.node(ino)
        if isinstance(node, WritingFile) and self.writes is not None:
            node = self.writes.made(node) or node
        match node:
            case ObjectFile() as node:
                return object_file_xattrs(await self.attributes.summary(node), node.file)
            case StoreFolder() as node:
                store = await self.tree.store(node.kind, node.store_id)
                if store is None:
                    raise FsError(errno.ENOENT)
                return store_xattrs(store)
            case JobFile() as node:
                return job_xattrs(await self.attributes.job(node))
            case ContigFile() as node:
                return await self.by_md5.xattrs(node)
        return {}

    def describe_node(self, ino: int) -> str:
        """The node's store, read set or reference ID and file; "" for an inode no longer known."""
        try:
            return describe(self.namespace.node(ino))
        except FsError:
            return ""

    def node_label(self, *, ino: int | None = None, fh: int | None = None) -> str:
        """What a failed request was about, for its log line: the node names the store, read
        set or reference ID and file. Never raises: it runs on the failure path."""
        try:
            if fh is not None:
                opened = self.handles.find(fh)
                ino = opened.ino if opened is not None else None
            if ino is None:
                return ""
            return f" ({self.describe_node(ino)})"
        except Exception:
            return ""
