"""The mutating half of the filesystem on a ``--read-write`` mount: create, write, close, mkdir,
unlink, and the errno of every mutation that is refused.

Where writes may happen: a sequence store folder and its ``by-sample/<id>/`` and
``by-subject/<id>/`` folders (which set sampleId and subjectId). Read sets are immutable, so
writing into one, truncating, renaming, linking and changing modes are refused with EPERM, the
errno Mountpoint uses for what its backend cannot do (fuse-anchors.md 1.2); on a read-only mount
every mutation is EROFS. Close semantics are Mountpoint's and dxfuse's (fuse-anchors.md D2) with
one difference forced by pyfuse3, whose flush handler gets no PID: the first flush after data was
written completes the upload, whichever process sends it (SEMANTICS.md "Close and flush").
"""

from __future__ import annotations

import errno
import logging
import stat
from typing import TYPE_CHECKING

from omicsfs.backend.models import ACTIVE
from omicsfs.fs.errors import FsError
from omicsfs.fs.tree import Key
from omicsfs.fs.write.group import UploadGroup
from omicsfs.fs.write.manager import FolderKey, WriteManager
from omicsfs.fs.write.references import Candidate, parse_fai
from omicsfs.fs.write.writer import WRITING, FileWriter

if TYPE_CHECKING:
    from omicsfs.fs.filesystem import Attr, FileSystem

log = logging.getLogger(__name__)

#: Attributes of a file being written change with every write: the kernel keeps them briefly.
WRITING_TIMEOUT = 1.0


def writing_key(ident: int) -> Key:
    return ("writing", str(ident))


class WriteOps:
    def __init__(self, fs: FileSystem, manager: WriteManager | None) -> None:
        self.fs = fs
        self.manager = manager
        self._fai: dict[str, frozenset[tuple[str, int]]] = {}

    @property
    def enabled(self) -> bool:
        return self.manager is not None

    def _require(self) -> WriteManager:
        if self.manager is None:
            raise FsError(errno.EROFS, "the mount is read-only (mount with --read-write to upload)")
        return self.manager

    def refuse(self, what: str) -> FsError:
        """The errno for a mutation the mount never allows: EROFS read-only, EPERM read-write."""
        if self.manager is None:
            return FsError(errno.EROFS, f"{what}: the mount is read-only")
        return FsError(errno.EPERM, f"{what}: read sets are immutable")

    # -- listing --------------------------------------------------------------------------------

    @staticmethod
    def writable_folder(key: Key) -> bool:
        return (key[0] == "store" and key[1] == "sequence") or key[0] in ("group", "groups")

    def extra_children(self, key: Key) -> dict[str, Key]:
        """Files being written and folders made with mkdir, listed beside what the service has."""
        if self.manager is None:
            return {}
        entries: dict[str, Key] = {
            name: writing_key(ident) for name, ident in self.manager.names_in(key).items()
        }
        if key[0] == "groups":
            for folder in self.manager.new_folders:
                if folder[:3] == ("group", key[1], key[2]):
                    entries[folder[3]] = folder
        return entries

    def attr(self, key: Key, ino: int) -> Attr:
        writer = self._writer(key)
        return self.fs.make_attr(
            ino, stat.S_IFREG | 0o644, writer.size, writer.created_at, WRITING_TIMEOUT, blksize=1 << 20
        )

    def _writer(self, key: Key) -> FileWriter:
        return self._require().writer(int(key[1]))

    # -- creating -------------------------------------------------------------------------------

    async def create(self, parent: int, name: str) -> tuple[int, int]:
        """A new file in a writable folder; returns (its inode, its writer id)."""
        manager = self._require()
        folder = self.fs.inodes.key(parent)
        if folder[0] == "store" and folder[1] == "sequence":
            store_id, context = folder[2], {}
        elif folder[0] == "group":
            store_id, context = folder[1], {folder[2]: folder[3]}
        else:
            raise FsError(errno.EPERM, "new read sets go into a sequence store folder or its "
                                       "by-sample/<id> or by-subject/<id> folders")  # fmt: skip
        if name in await self.fs.children(folder, parent):
            raise FsError(errno.EEXIST, f"{name} exists")
        ident = manager.create(folder, store_id, name, context)
        return self.fs.inodes.ino(writing_key(ident), parent), ident

    async def mkdir(self, parent: int, name: str) -> Key:
        manager = self._require()
        key = self.fs.inodes.key(parent)
        if key[0] != "groups":
            raise FsError(errno.EPERM, "folders can only be made in by-sample/ and by-subject/")
        if name in await self.fs.children(key, parent):
            raise FsError(errno.EEXIST, f"{name} exists")
        folder: Key = ("group", key[1], key[2], name)
        manager.new_folders.add(folder)
        return folder

    async def rmdir(self, parent: int, name: str) -> None:
        manager = self._require()
        key = self.fs.inodes.key(parent)
        folder: Key = ("group", key[1], key[2], name) if key[0] == "groups" else ()
        if folder not in manager.new_folders:
            raise FsError(errno.EPERM, "only empty folders made with mkdir can be removed")
        if manager.names_in(folder):
            raise FsError(errno.ENOTEMPTY, f"{name} has files being written")
        manager.new_folders.discard(folder)

    # -- writing and closing --------------------------------------------------------------------

    async def write(self, ident: int, offset: int, data: bytes) -> int:
        return await self._require().writer(ident).write(offset, data)

    async def flush(self, ident: int) -> None:
        """close(2): completes the upload (or, for a mate, sends its last part) and reports."""
        manager = self._require()
        entry = manager.files.get(ident)
        if entry is None:
            return  # already completed (a later flush of a dup'd descriptor)
        writer = entry[2]
        if writer.size == 0:
            return  # shell redirection and dup2 flush before any data: nothing to complete
        await writer.finish()
        await writer.group.closed(writer)

    def release(self, ident: int) -> None:
        manager = self._require()
        entry = manager.files.get(ident)
        if entry is None:
            return
        writer = entry[2]
        if writer.size == 0:
            manager.discard_if_empty(ident)
        elif writer.state == WRITING:  # no flush carried the data (not expected): finish anyway

            async def finish() -> None:
                try:
                    await self.flush(ident)
                except FsError as error:
                    log.error("completing %s on release failed: %s", writer.file_name, error.reason)

            manager.spawn(finish)

    def finished(self, group: UploadGroup, gone: list[tuple[FolderKey, str, int]]) -> None:
        """A read set was completed (or an upload failed): list the store again, drop the files."""
        if group.read_set_id is not None and group.upload is not None and "SOURCE2" in group.upload.sources:
            # The listing of a read set still processing has no etag to tell it is paired.
            self.fs.tree.paired.add(group.read_set_id)
        self.fs.catalog.expire_read_sets(group.store_id)
        for folder, name, ident in gone:
            parent = self.fs.inodes.known(folder)
            child = self.fs.inodes.known(writing_key(ident))
            if parent is not None and child is not None and self.fs.invalidate is not None:
                self.fs.invalidate(parent, name, child)

    # -- deleting -------------------------------------------------------------------------------

    async def unlink(self, parent: int, name: str) -> None:
        manager = self._require()
        folder = self.fs.inodes.key(parent)
        child = (await self.fs.children(folder, parent)).get(name)
        if child is None:
            raise FsError(errno.ENOENT)
        if child[0] == "writing":
            raise FsError(errno.EPERM, f"{name} is being written")
        if not manager.config.allow_delete:
            raise FsError(errno.EPERM, "deleting read sets needs --allow-delete")
        if child[0] != "file" or child[1] != "sequence" or child[4] == "index":
            raise FsError(errno.EPERM, "only a read set's data files (not indexes, views or "
                                       "references) can be removed")  # fmt: skip
        store_id, read_set_id = child[2], child[3]
        await self.fs.catalog.backend.delete_read_set(store_id, read_set_id)
        log.info("deleted read set %s from store %s (rm %s)", read_set_id, store_id, name)
        self.fs.catalog.expire_read_sets(store_id)
        await self.fs.children(folder, parent)  # relist now: the siblings vanish from the kernel too

    # -- references for @SQ matching ------------------------------------------------------------

    async def reference_candidates(self) -> list[Candidate]:
        """Every ACTIVE reference's contigs, from its .fai read through the block cache."""
        catalog = self.fs.catalog
        candidates = []
        for store in await catalog.reference_stores():
            _, references = await catalog.references(store.id)
            for reference in references.values():
                if reference.status != ACTIVE:
                    continue
                contigs = self._fai.get(reference.id)
                if contigs is None:
                    index = await self.fs.cached_file(reference, "index")
                    if index is None:
                        continue
                    data = await self.fs.cache.read(index, 0, index.layout.content_length)
                    contigs = self._fai[reference.id] = parse_fai(data.decode("utf-8", "replace"))
                candidates.append(Candidate(reference.arn, reference.name, contigs))
        return candidates
