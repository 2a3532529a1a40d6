"""The mutating half of the filesystem on a ``--read-write`` mount: create, write, close, mkdir,
unlink. This is the write engine's one entry point; the facade (fs/filesystem.py) calls only it.

Where writes may happen: a sequence store folder and its ``by-sample/<id>/`` and
``by-subject/<id>/`` folders (which set sampleId and subjectId). Read sets are immutable, so
writing into one, truncating, renaming, linking and changing modes are refused with EPERM, the
errno Mountpoint uses for what its backend cannot do (docs/architecture.md, "Errors"); on a
read-only mount every mutation is EROFS. Close semantics are Mountpoint's and dxfuse's with one
difference forced by pyfuse3, whose flush handler gets no PID: the first flush after data was
written completes the upload, whichever process sends it (SEMANTICS.md, "Close and flush").
"""

from __future__ import annotations

import errno
import logging
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from omicsfs.backend.errors import BackendError
from omicsfs.backend.interface import Backend
from omicsfs.backend.models import StoredFile, StoreKind
from omicsfs.config import KernelCacheConfig, WriteConfig
from omicsfs.fs.attrs import WRITE_BLKSIZE, Attr, Owner
from omicsfs.fs.catalog import Catalog
from omicsfs.fs.errors import FsError
from omicsfs.fs.namespace import Namespace
from omicsfs.fs.nodes import Folder, GroupFolder, GroupsFolder, Node, ObjectFile, StoreFolder, WritingFile
from omicsfs.fs.stats import Stats
from omicsfs.fs.tasks import TaskGroup
from omicsfs.fs.write.formats import SqLine
from omicsfs.fs.write.group import UploadGroup
from omicsfs.fs.write.manager import MAX_NAME, OpenFile, WritableFolder, WriteManager
from omicsfs.fs.write.recovery import abort_orphans
from omicsfs.fs.write.references import Candidate, ReferenceIndex
from omicsfs.fs.write.writer import WriterState

log = logging.getLogger(__name__)


@dataclass
class WriteHandle:
    """A file opened by ``create``: the one upload its writes feed."""

    ino: int
    entry: OpenFile


class WriteOps:
    def __init__(
        self, namespace: Namespace, catalog: Catalog, references: ReferenceIndex, backend: Backend,
        config: WriteConfig, kernel: KernelCacheConfig, owner: Owner, stats: Stats, tasks: TaskGroup,
        mountpoint: str,
    ) -> None:  # fmt: skip
        self.namespace = namespace
        self.catalog = catalog
        self.backend = backend
        self.config = config
        self.kernel = kernel
        self.owner = owner
        self.references = references
        self.manager = WriteManager(backend, config, stats, tasks, mountpoint, events=self)
        namespace.add_entries(self._entries)

    # -- listing --------------------------------------------------------------------------------

    @staticmethod
    def writable_folder(node: Folder) -> bool:
        return (isinstance(node, StoreFolder) and node.kind is StoreKind.SEQUENCE) or isinstance(
            node, GroupFolder | GroupsFolder
        )

    def _entries(self, folder: Folder) -> dict[str, Node]:
        """Files being written and folders made with mkdir, listed beside what the service has."""
        entries: dict[str, Node] = {}
        if isinstance(folder, StoreFolder | GroupFolder):
            entries.update(
                {name: WritingFile(ident) for name, ident in self.manager.names_in(folder).items()}
            )
        if isinstance(folder, GroupsFolder):
            for made in self.manager.new_folders:
                if (made.store_id, made.group) == (folder.store_id, folder.group):
                    entries[made.value] = made
        return entries

    def attr(self, node: WritingFile, ino: int) -> Attr:
        entry = self.manager.files.get(node.ident)
        if entry is None:
            raise FsError(errno.ENOENT, "the file is no longer being written")
        writer = entry.writer
        mode = stat.S_IFREG | 0o644
        return self.owner.attr(
            ino, mode, writer.size, writer.created_at, self.kernel.writing_timeout, blksize=WRITE_BLKSIZE
        )

    # -- creating -------------------------------------------------------------------------------

    async def create(self, parent: int, name: str) -> WriteHandle:
        """A new file in a writable folder."""
        folder = self.namespace.folder(parent)
        if not (
            isinstance(folder, GroupFolder)
            or (isinstance(folder, StoreFolder) and folder.kind is StoreKind.SEQUENCE)
        ):
            raise FsError(errno.EPERM, "new read sets go into a sequence store folder or its "
                                       "by-sample/<id> or by-subject/<id> folders")  # fmt: skip
        if name in await self.namespace.children(folder):
            raise FsError(errno.EEXIST, f"{name} exists")
        writable: WritableFolder = folder
        entry = self.manager.create(writable, name)
        return WriteHandle(self.namespace.inodes.ino(WritingFile(entry.ident)), entry)

    async def mkdir(self, parent: int, name: str) -> GroupFolder:
        folder = self.namespace.folder(parent)
        if not isinstance(folder, GroupsFolder):
            raise FsError(errno.EPERM, "folders can only be made in by-sample/ and by-subject/")
        if len(name) > MAX_NAME:  # the folder names the sampleId or subjectId: never cut it
            raise FsError(
                errno.ENAMETOOLONG, f"{folder.group} IDs have at most {MAX_NAME} characters: {name!r}"
            )
        if name in await self.namespace.children(folder):
            raise FsError(errno.EEXIST, f"{name} exists")
        made = GroupFolder(folder.store_id, folder.group, name)
        self.manager.new_folders.add(made)
        return made

    async def rmdir(self, parent: int, name: str) -> None:
        folder = self.namespace.folder(parent)
        made = GroupFolder(folder.store_id, folder.group, name) if isinstance(folder, GroupsFolder) else None
        if made is None or made not in self.manager.new_folders:
            raise FsError(errno.EPERM, "only empty folders made with mkdir can be removed")
        if self.manager.names_in(made):
            raise FsError(errno.ENOTEMPTY, f"{name} has files being written")
        self.manager.new_folders.discard(made)

    # -- writing and closing --------------------------------------------------------------------

    async def write(self, handle: WriteHandle, offset: int, data: bytes) -> int:
        return await handle.entry.writer.write(offset, data)

    async def flush(self, handle: WriteHandle) -> None:
        """close(2): completes the upload (or, for a mate, sends its last part) and reports."""
        entry = handle.entry
        if entry.ident not in self.manager.files:
            return  # already completed (a later flush of a dup'd descriptor)
        if entry.writer.size == 0:
            return  # shell redirection and dup2 flush before any data: nothing to complete
        await entry.writer.finish()
        await entry.group.closed(entry.writer)

    def release(self, handle: WriteHandle) -> None:
        entry = handle.entry
        if entry.ident not in self.manager.files:
            return
        if entry.writer.size == 0:
            self.manager.discard_if_empty(entry)
        elif entry.writer.state is WriterState.WRITING:  # no flush carried the data: finish anyway

            async def finish() -> None:
                try:
                    await self.flush(handle)
                except FsError as error:
                    log.error("completing %s on release failed: %s", entry.name, error.reason)

            self.manager.spawn(finish)

    # -- UploadEvents (manager.py) ---------------------------------------------------------------

    def uploads_finished(self, group: UploadGroup, gone: list[OpenFile]) -> None:
        """A read set was completed (or an upload failed): list the store again, drop the files."""
        if group.read_set_id is not None and group.upload is not None and "SOURCE2" in group.upload.sources:
            # The listing of a read set still processing has no etag to tell it is paired.
            self.namespace.tree.paired.add(group.read_set_id)
        self.catalog.expire_read_sets(group.store_id)
        for entry in gone:
            parent = self.namespace.inodes.known(entry.folder)
            if parent is not None:
                self.namespace.forget(parent, entry.name, WritingFile(entry.ident))

    async def reference_candidates(self, sq: Sequence[SqLine]) -> list[Candidate]:
        return await self.references.candidates(sq)

    # -- deleting -------------------------------------------------------------------------------

    async def unlink(self, parent: int, name: str) -> None:
        folder = self.namespace.folder(parent)
        child = (await self.namespace.children(folder)).get(name)
        if child is None:
            raise FsError(errno.ENOENT)
        if isinstance(child, WritingFile):
            raise FsError(errno.EPERM, f"{name} is being written")
        if not self.config.allow_delete:
            raise FsError(errno.EPERM, "deleting read sets needs --allow-delete")
        if (
            not isinstance(child, ObjectFile)
            or child.kind is not StoreKind.SEQUENCE
            or child.file == StoredFile.INDEX
        ):
            raise FsError(errno.EPERM, "only a read set's data files (not indexes, views or "
                                       "references) can be removed")  # fmt: skip
        await self.backend.delete_read_set(child.store_id, child.object_id)
        log.info("deleted read set %s from store %s (rm %s)", child.object_id, child.store_id, name)
        self.catalog.expire_read_sets(child.store_id)
        await self.namespace.children(folder)  # relist now: the siblings vanish from the kernel too

    # -- the mount's life -----------------------------------------------------------------------

    def progress(self) -> dict[str, dict[str, int | str]]:
        return self.manager.progress()

    async def clean_up_orphans(self) -> None:
        """Aborts uploads a killed daemon left at this mount point (recovery.py)."""
        try:
            stores = [store.id for store in await self.catalog.stores(StoreKind.SEQUENCE)]
        except BackendError as error:
            log.warning("could not list sequence stores to clean up old uploads: %s", error)
            return
        await abort_orphans(self.backend, stores, self.manager.owner, self.manager.session)

    async def shutdown(self) -> None:
        await self.manager.shutdown()
