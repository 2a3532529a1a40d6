"""``stat`` of every kind of node: sizes, modes, times and how long the kernel may keep them.

Sizes of read set and reference files come from their metadata, which ListReadSets does not
carry. ``readdir`` therefore answers with placeholders the kernel must not cache
(KernelCacheConfig.placeholder_attr_timeout) and the first real ``stat`` in a folder that was
just listed fetches every sibling's metadata at once, paced by the backend, so ``ls -l`` costs
one concurrent sweep rather than one call per file in sequence (docs/architecture.md, "Listings").

A read set that is not ACTIVE may have no layout yet (still processing, or failed in processing):
its files are listed all the same, with the bytes this mount wrote (or 0), and the kernel does
not keep their attributes, since the size changes once the service has processed them
(SEMANTICS.md, "After close"). A file this mount just wrote answers, under the inode the kernel
has for it, as the read set file it became.
"""

from __future__ import annotations

import errno
import stat
import time
from collections.abc import Callable

import trio

from omicsfs.backend.models import JobSummary, ReadSetSummary, Status, Summary
from omicsfs.config import MountConfig
from omicsfs.fs.attrs import Attr, Owner
from omicsfs.fs.catalog import Catalog
from omicsfs.fs.errors import FsError
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
)
from omicsfs.fs.s3listing import S3Listing
from omicsfs.fs.tasks import TaskGroup
from omicsfs.fs.tree import Tree
from omicsfs.fs.write.ops import WriteOps


class Attributes:
    def __init__(
        self, tree: Tree, catalog: Catalog, config: MountConfig, owner: Owner, tasks: TaskGroup,
        writes: WriteOps | None, stats_size: Callable[[], int], s3_listing: S3Listing | None = None,
    ) -> None:  # fmt: skip
        self.tree = tree
        self.catalog = catalog
        self.config = config
        self.owner = owner
        self.tasks = tasks
        self.writes = writes
        self.stats_size = stats_size
        self.s3_listing = s3_listing
        self.mounted_at = time.time()
        self._listed_folders: dict[StoreFolder, float] = {}

    def listed(self, folder: StoreFolder) -> None:
        """``opendir`` of a store folder: the next stat in it may prefetch its siblings."""
        self._listed_folders[folder] = trio.current_time()

    async def of(self, node: Node, ino: int, *, placeholder: bool = False) -> Attr:
        """Attributes of a node. With ``placeholder`` (readdir), never makes a metadata call."""
        ttl = self.config.listing_ttl
        kernel = self.config.kernel
        owner = self.owner
        match node:
            case WritingFile():
                if self.writes is None:
                    raise FsError(errno.ENOENT)
                made = self.writes.made(node)
                if made is not None:  # closed: the inode answers as the read set file it became
                    return await self._object_file(made, ino, placeholder)
                return self.writes.attr(node, ino)
            case StatsFile():
                # Changes all the time: never cached; opened with direct I/O, so reads are not
                # cut to this size (fuse_ops.open).
                return owner.attr(
                    ino, stat.S_IFREG | 0o444, self.stats_size(), time.time(), ttl, attr_timeout=0.0
                )
            case JobFile():
                job = await self.job(node)
                timeout = kernel.immutable_timeout if job.terminal else ttl
                if placeholder and not self.catalog.has_job_document(node.kind, job):
                    return owner.attr(ino, stat.S_IFREG | 0o444, 0, job.creation_time, timeout,
                                      attr_timeout=kernel.placeholder_attr_timeout)  # fmt: skip
                document = await self.catalog.job_document(node.kind, job)
                return owner.attr(ino, stat.S_IFREG | 0o444, len(document), job.creation_time, timeout)
            case ObjectFile():
                return await self._object_file(node, ino, placeholder)
            case ContigFile():
                return await self.tree.by_md5.attr(node, ino)
            case _ if isinstance(node, LINK_TYPES):
                target = await self.tree.link_target(node)
                if target is None:
                    raise FsError(errno.ENOENT, "symlink target gone")
                return owner.attr(ino, stat.S_IFLNK | 0o777, len(target.encode()), self.mounted_at, ttl)
            case _ if isinstance(node, FOLDER_TYPES):
                mtime = self.mounted_at
                if isinstance(node, StoreFolder):
                    store = await self.tree.store(node.kind, node.store_id)
                    if store is not None:
                        mtime = store.creation_time
                writable = self.writes is not None and self.writes.writable_folder(node)
                return owner.attr(ino, stat.S_IFDIR | (0o755 if writable else 0o555), 0, mtime, ttl)
        raise FsError(errno.ENOENT, f"unknown node {node}")

    async def _object_file(self, node: ObjectFile, ino: int, placeholder: bool) -> Attr:
        kernel = self.config.kernel
        summary = await self.summary(node)
        files = self.catalog.known_files(summary)
        s3_listing = self.s3_listing if self._lists(node) else None
        if files is None and not placeholder and isinstance(summary, ReadSetSummary) and s3_listing:
            size = await s3_listing.size(summary, node.file)
            if size is not None:  # from the store's S3 listing: no metadata call
                timeout = kernel.immutable_timeout
                return self.owner.attr(ino, stat.S_IFREG | 0o444, size, summary.creation_time, timeout)
        if files is None:
            if placeholder:
                mode, ttl = stat.S_IFREG | 0o444, self.config.listing_ttl
                return self.owner.attr(
                    ino, mode, 0, summary.creation_time, ttl, attr_timeout=kernel.placeholder_attr_timeout
                )
            await self._prefetch_siblings(node)
            files = await self.catalog.files(summary)
            self.tree.note_files(summary, files)
        layout = files.files.get(node.file)
        readable = summary.status == Status.ACTIVE
        if layout is None and isinstance(summary, ReadSetSummary) and not readable:
            # Still processing, or failed in processing: the service has no ``files`` yet (or
            # ever). The file is there all the same, with the bytes this mount wrote, else 0.
            layout = self.catalog.written_layout(summary.id, node.file)
            size = layout.content_length if layout is not None else 0
            return self.owner.attr(
                ino, stat.S_IFREG | 0o444, size, summary.creation_time, self.config.listing_ttl,
                attr_timeout=kernel.placeholder_attr_timeout,
            )
        if layout is None:
            raise FsError(errno.ENOENT, f"{summary.id} has no {node.file} file")
        if readable:
            return self.owner.attr(
                ino, stat.S_IFREG | 0o444, layout.content_length, summary.creation_time,
                kernel.immutable_timeout,
            )
        # Not ACTIVE: the size may still change (a BAM gains the service's @CO line), so the
        # kernel asks each time; answering costs no call within the listing TTL.
        return self.owner.attr(
            ino, stat.S_IFREG | 0o444, layout.content_length, summary.creation_time,
            self.config.listing_ttl, attr_timeout=kernel.placeholder_attr_timeout,
        )

    def _lists(self, node: ObjectFile) -> bool:
        """Whether this stat takes its size from the store's S3 listing: when one is at hand, or
        when the folder was just listed (``ls -l``, ``du``, ``find``: every sibling's stat is
        coming). A lone stat or open of one path asks the metadata instead, which the open needs
        anyway: walking a cohort store's listing first (thousands of keys, pages in series)
        delayed the first byte of ``samtools view PATH`` by a call per page."""
        if self.s3_listing is None:
            return False
        if self.s3_listing.listed(node.store_id):
            return True
        return self._just_listed(self._listed_folders.get(StoreFolder(node.kind, node.store_id)))

    def _just_listed(self, listed_at: float | None) -> bool:
        """The folder's opendir (at ``listed_at``) is within the listing TTL."""
        return listed_at is not None and trio.current_time() - listed_at <= self.config.listing_ttl

    async def _prefetch_siblings(self, node: ObjectFile) -> None:
        """``ls -l``: the first stat in a just-listed folder fetches every sibling's metadata
        concurrently (paced by the backend's token bucket), not one per stat call."""
        folder = StoreFolder(node.kind, node.store_id)
        if not self._just_listed(self._listed_folders.pop(folder, None)):
            return
        listing = await self.tree.folder(node.kind, node.store_id)
        # Siblings whose sizes the S3 listing gave need no metadata: one paired FASTQ among a
        # thousand BAMs made ``ls -l`` fetch the metadata of all thousand.
        s3_listing = self.s3_listing
        siblings = [
            s for s in listing.objects.values()
            if s.id != node.object_id and not (s3_listing is not None and s3_listing.maps(s))
        ]  # fmt: skip
        if siblings:
            self.tasks.start(self.catalog.prefetch_files, siblings)

    async def summary(self, node: ObjectFile) -> Summary:
        summary = await self.tree.summary(node)
        if summary is None:
            raise FsError(errno.ENOENT, f"{node.object_id} is no longer listed")
        return summary

    async def job(self, node: JobFile) -> JobSummary:
        jobs = await self.catalog.jobs(node.kind, node.store_id, node.job_kind)
        job = jobs.get(node.job_id)
        if job is None:
            raise FsError(errno.ENOENT, f"job {node.job_id} is no longer listed")
        return job
