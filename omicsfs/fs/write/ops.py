"""The mutating half of the filesystem on a ``--read-write`` mount: create, write, close, mkdir,
unlink. This is the write engine's one entry point; the facade (fs/filesystem.py) calls only it.

Where writes may happen: a sequence store folder and its ``by-sample/<id>/`` and
``by-subject/<id>/`` folders (which set sampleId and subjectId). Read sets are immutable, so
writing into one, truncating, renaming, linking and changing modes are refused with EPERM, the
errno Mountpoint uses for what its backend cannot do (docs/architecture.md, "Errors"); on a
read-only mount every mutation is EROFS. Close semantics are Mountpoint's and dxfuse's with one
difference forced by pyfuse3, whose flush handler gets no PID: the first flush after data was
written completes the upload, whichever process sends it (SEMANTICS.md, "Close and flush").

After close the read set is known at once: the catalog is told what was made (summary and the
bytes written), so it is listed under the file's name whatever the listing TTL, and the service
is asked about it with backoff until processing ends (SEMANTICS.md, "After close").
"""

from __future__ import annotations

import errno
import logging
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass

import trio

from omicsfs.backend.errors import BackendError
from omicsfs.backend.interface import Backend
from omicsfs.backend.models import FileLayout, FileType, ReadSetSummary, Status, StoredFile, StoreKind
from omicsfs.config import KernelCacheConfig, WriteConfig
from omicsfs.fs.attrs import WRITE_BLKSIZE, Attr, Owner
from omicsfs.fs.catalog import Catalog
from omicsfs.fs.errors import FsError
from omicsfs.fs.namespace import Namespace
from omicsfs.fs.nodes import Folder, GroupFolder, GroupsFolder, Node, ObjectFile, StoreFolder, WritingFile
from omicsfs.fs.stats import Stats
from omicsfs.fs.tasks import TaskGroup
from omicsfs.fs.write import progress
from omicsfs.fs.write.formats import SqLine
from omicsfs.fs.write.group import UploadGroup, UploadState
from omicsfs.fs.write.manager import MAX_NAME, OpenFile, WritableFolder, WriteManager
from omicsfs.fs.write.recovery import abort_orphans
from omicsfs.fs.write.references import Candidate, ReferenceIndex
from omicsfs.fs.write.writer import WriterState

log = logging.getLogger(__name__)

#: How long a new read set's processing is followed (longer ones show up at the listing TTL).
FOLLOW_SECONDS = 600.0


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
        self._made_read_sets: set[str] = set()
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
        """A file being written, or one whose upload failed (its descriptors still answer fstat)."""
        entry = self.manager.find(node.ident)
        if entry is None:
            raise FsError(errno.ENOENT, "the file is no longer being written")
        writer = entry.writer
        mode = stat.S_IFREG | 0o644
        return self.owner.attr(
            ino, mode, writer.size, writer.created_at, self.kernel.writing_timeout, blksize=WRITE_BLKSIZE
        )

    def made(self, node: WritingFile) -> ObjectFile | None:
        """The read set file a closed file became (None while writing, or if nothing was kept)."""
        return self.manager.made.get(node.ident)

    def writing_nodes(self, read_set_id: str) -> list[Node]:
        """The inodes of the closed files that became ``read_set_id`` (they show its sizes)."""
        return [WritingFile(i) for i, made in self.manager.made.items() if made.object_id == read_set_id]

    def made_here(self, node: ObjectFile) -> bool:
        """Whether this mount wrote the read set behind ``node`` (its times may be "set")."""
        return node.object_id in self._made_read_sets

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
        """close(2): completes the upload (or, for a mate, sends its last part) and reports. A
        failure not yet reported to the writer (a part that failed after its last write) is EIO."""
        entry = handle.entry
        writer = entry.writer
        if writer.state is WriterState.FAILED:
            if not writer.reported:
                writer.reported = True
                raise FsError(errno.EIO, writer.failure)
            return
        if entry.ident not in self.manager.files:
            return  # already completed (a later flush of a dup'd descriptor)
        if writer.size == 0:
            return  # shell redirection and dup2 flush before any data: nothing to complete
        try:
            await writer.finish()
            await entry.group.closed(writer)
        except FsError:
            writer.reported = True
            raise

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
        """A read set was completed (or an upload failed): the read set is listed at once under
        the files' names, the files being written leave, and the kernel is told both."""
        if group.state is UploadState.DONE and group.read_set_id is not None and group.upload is not None:
            if "SOURCE2" in group.upload.sources:
                # The listing of a read set still processing has no etag to tell it is paired.
                self.namespace.tree.paired.add(group.read_set_id)
            self._made_read_sets.add(group.read_set_id)
            summary = self._new_summary(group)
            self.catalog.note_read_set(summary, _written(summary, gone, self.config.part_size))
            self.manager.spawn(lambda: self._follow(summary))
        for entry in gone:
            parent = self.namespace.inodes.known(entry.folder)
            if parent is not None:
                self.namespace.forget(parent, entry.name, WritingFile(entry.ident))
            ino = self.namespace.inodes.known(WritingFile(entry.ident))
            if ino is not None:
                self.namespace.changed(ino)  # its attributes are now the read set's

    async def _follow(self, summary: ReadSetSummary) -> None:
        """Asks the service about a read set this mount made until it is no longer processing,
        backing off from 1 s to the listing TTL: its status and sizes then change within seconds
        (the catalog tells the kernel), not only when the listing is next fetched."""
        delay, waited = 1.0, 0.0
        while waited < FOLLOW_SECONDS:
            await trio.sleep(delay)
            waited += delay
            try:
                summary = await self.catalog.current_read_set(summary)
            except BackendError as error:
                log.debug("following read set %s: %s", summary.id, error)
            if summary.status != Status.PROCESSING_UPLOAD:
                return
            delay = min(2 * delay, self.catalog.listing_ttl)

    def _new_summary(self, group: UploadGroup) -> ReadSetSummary:
        """The read set as Complete made it, from what the upload carried (no call)."""
        assert group.upload is not None
        assert group.read_set_id is not None
        fields = group.upload.fields
        store = self.catalog.known_store(StoreKind.SEQUENCE, group.store_id)
        return ReadSetSummary(
            id=group.read_set_id,
            store_id=group.store_id,
            arn=f"{store.arn}/readSet/{group.read_set_id}" if store is not None and store.arn else "",
            name=str(fields.get("name", group.read_set_name)),
            status=Status.PROCESSING_UPLOAD,
            file_type=str(fields.get("sourceFileType", "")),
            sample_id=str(fields.get("sampleId", "")),
            subject_id=str(fields.get("subjectId", "")),
            creation_time=time.time(),
            reference_arn=str(fields.get("referenceArn", "")),
            description=str(fields.get("description", "")),
        )

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
        self.catalog.forget_read_set(child.store_id, child.object_id)
        self.catalog.expire_read_sets(child.store_id)
        await self.namespace.children(folder)  # relist now: the siblings vanish from the kernel too

    # -- the mount's life -----------------------------------------------------------------------

    def progress(self) -> dict[str, object]:
        """``uploads.in_flight``, ``.total`` and ``.recent`` of stats.json (progress.py)."""
        def status_of(store_id: str, read_set_id: str) -> str | None:
            known = self.catalog.known_read_set(store_id, read_set_id)
            return known.status if known is not None else None

        return progress.document(
            self.manager.progress(), self.manager.recent.current(trio.current_time()), trio.current_time(),
            status_of,
        )  # fmt: skip

    async def clean_up_orphans(self) -> None:
        """Aborts uploads a killed daemon left at this mount point (recovery.py)."""
        try:
            stores = [store.id for store in await self.catalog.stores(StoreKind.SEQUENCE)]
        except BackendError as error:
            log.warning("could not list sequence stores to clean up old uploads: %s", error)
            return
        await abort_orphans(self.backend, stores, self.manager.owner, self.manager.session)

    async def shutdown(self) -> None:
        """Unmounting: every upload is completed or aborted; writers get EIO (manager.py)."""
        await self.manager.shutdown()


def _written(summary: ReadSetSummary, entries: list[OpenFile], part_size: int) -> dict[str, FileLayout]:
    """The read set's files as written: the bytes uploaded per source (after gzip for FASTQ).
    BAM and CRAM get the index the service builds, empty until it has (the name is there at once,
    as for any aligned read set the mount lists)."""
    layouts: dict[str, FileLayout] = {}
    if summary.file_type in (FileType.BAM, FileType.CRAM):
        layouts[StoredFile.INDEX] = FileLayout(0, part_size, 1)
    for entry in entries:
        size = entry.writer.stored
        stored = StoredFile.SOURCE2 if entry.writer.source == "SOURCE2" else StoredFile.SOURCE1
        layouts[stored] = FileLayout(size, part_size, max(1, -(-size // part_size)))
    return layouts
