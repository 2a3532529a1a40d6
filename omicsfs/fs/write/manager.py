"""Every upload of a read-write mount: creating files, their metadata, pacing, and shutdown.

The filesystem asks this class to create a file in a folder, and lists the files still being
written next to the store's read sets. Metadata rules (SEMANTICS.md "Writing"):
- name: the file name without extension and mate suffix;
- sampleId: the header's first @RG SM, else the by-sample/ folder, else --sample-id, else the name;
- subjectId: the by-subject/ folder, else --subject-id, else the sampleId;
- referenceArn (BAM/CRAM): --reference-arn, else the one reference whose .fai matches the @SQ set.
Uploads carry two tags so a later mount can recognise the ones a killed daemon left behind
(write/recovery.py).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from omicsfs.backend.omics import OmicsBackend
from omicsfs.config import WriteConfig
from omicsfs.fs.errors import FsError
from omicsfs.fs.stats import Stats
from omicsfs.fs.write.formats import Header, WriteName, parse_name
from omicsfs.fs.write.group import FAILED, OPEN, UploadGroup
from omicsfs.fs.write.references import Candidate, ReferenceMatchError, match_reference
from omicsfs.fs.write.upload import PartSlots, ReadSetUpload
from omicsfs.fs.write.writer import WRITING, FileWriter

log = logging.getLogger(__name__)

#: Tag keys on every upload (and so on the read sets it makes).
MOUNT_TAG = "omicsfs:mount"
SESSION_TAG = "omicsfs:session"
#: CreateMultipartReadSetUpload's name limit.
MAX_NAME = 127


#: Where a new file was created: the store, plus sampleId/subjectId from a group folder.
FolderKey = tuple[str, ...]


class WriteManager:
    def __init__(
        self,
        backend: OmicsBackend,
        config: WriteConfig,
        stats: Stats,
        mountpoint: str,
        load_candidates: Callable[[], Awaitable[list[Candidate]]],
        on_finished: Callable[[UploadGroup, list[tuple[FolderKey, str, int]]], None],
    ) -> None:
        self.backend = backend
        self.config = config
        self.stats = stats
        self.owner = f"{socket.gethostname()}:{mountpoint}"
        self.session = uuid.uuid4().hex
        self.slots = PartSlots(config.parts_in_flight)
        self._load_candidates = load_candidates
        self._on_finished = on_finished
        self._nursery: trio.Nursery | None = None
        self._groups: dict[tuple[str, str, str], UploadGroup] = {}
        self._ids = itertools.count(1)
        #: Files being written: id -> (folder, name, writer).
        self.files: dict[int, tuple[FolderKey, str, FileWriter]] = {}
        #: Group folders made with mkdir that hold no read set yet.
        self.new_folders: set[FolderKey] = set()

    def attach(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery

    def spawn(self, function: Callable[[], Awaitable[None]]) -> None:
        """Background work of the write path; a bug in it is logged, never fatal to the mount."""
        assert self._nursery is not None, "attach() before writing"

        async def guarded() -> None:
            try:
                await function()
            except Exception:
                log.exception("background upload work failed (a bug)")

        self._nursery.start_soon(guarded)

    def new_upload(self, store_id: str, fields: dict[str, Any]) -> ReadSetUpload:
        assert self._nursery is not None, "attach() before writing"
        return ReadSetUpload(self.backend, store_id, fields, self.slots, self._nursery)

    # -- files ----------------------------------------------------------------------------------

    def names_in(self, folder: FolderKey) -> dict[str, int]:
        return {name: ident for ident, (where, name, _) in self.files.items() if where == folder}

    def create(self, folder: FolderKey, store_id: str, file_name: str, context: dict[str, str]) -> int:
        """Registers a new file; returns its id. EINVAL for a name that is no read set file."""
        name = parse_name(file_name)
        if name is None:
            raise FsError(
                errno.EINVAL,
                f"{file_name!r} is not a read set file name: use NAME.bam, NAME.cram, NAME.fastq.gz, "
                "NAME.fastq or NAME_1/_2.fastq.gz (indexes are built by the service)",
            )
        if not name.read_set_name or len(name.read_set_name) > MAX_NAME:
            raise FsError(errno.EINVAL, f"read set names have 1 to {MAX_NAME} characters: {file_name!r}")
        group = self._group_for(store_id, name, context)
        source = "SOURCE2" if name.mate == 2 else "SOURCE1"
        if source in group.writers:
            raise FsError(errno.EEXIST, f"mate {name.mate} of {name.read_set_name!r} is already written")
        writer = FileWriter(file_name, name, group, source, self.config.part_size)
        group.add(writer)
        ident = next(self._ids)
        self.files[ident] = (folder, file_name, writer)
        return ident

    def _group_for(self, store_id: str, name: WriteName, context: dict[str, str]) -> UploadGroup:
        if name.mate is not None:
            key = (store_id, name.read_set_name, repr(sorted(context.items())))
            group = self._groups.get(key)
            if group is not None and group.state == OPEN:
                return group
            group = UploadGroup(self, store_id, name, context)
            self._groups[key] = group
            return group
        return UploadGroup(self, store_id, name, context)

    def writer(self, ident: int) -> FileWriter:
        entry = self.files.get(ident)
        if entry is None:
            raise FsError(errno.ENOENT, "the file is no longer being written")
        return entry[2]

    def discard_if_empty(self, ident: int) -> None:
        """An empty file creates nothing (Mountpoint: no object for an empty close)."""
        entry = self.files.get(ident)
        if entry is None:
            return
        folder, name, writer = entry
        if writer.size or writer.state != WRITING:
            return
        del self.files[ident]
        group = writer.group
        group.writers.pop(writer.source, None)
        if not group.writers:
            group.state = FAILED  # quietly: nothing was created, so nothing to abort or report
            group.done.set()
        self._on_finished(group, [(folder, name, ident)])

    def progress(self) -> dict[str, dict[str, int | str]]:
        """Per file being written: bytes written, bytes uploaded and parts sent, for stats views."""
        result: dict[str, dict[str, int | str]] = {}
        for _, name, writer in self.files.values():
            upload = writer.group.upload
            result[name] = {
                "written_bytes": writer.size,
                "uploaded_bytes": upload.uploaded_bytes if upload is not None else 0,
                "state": writer.state,
            }
        return result

    # -- metadata -------------------------------------------------------------------------------

    async def upload_fields(self, group: UploadGroup, header: Header) -> dict[str, Any]:
        config = self.config
        sample = header.sample or group.folder.get("sample") or config.sample_id or group.read_set_name
        subject = group.folder.get("subject") or config.subject_id or sample
        fields: dict[str, Any] = {
            "sourceFileType": header.file_type,
            "name": group.read_set_name,
            "sampleId": sample[:MAX_NAME],
            "subjectId": subject[:MAX_NAME],
            "tags": {MOUNT_TAG: self.owner[:256], SESSION_TAG: self.session},
        }
        if header.file_type in ("BAM", "CRAM"):
            fields["referenceArn"] = config.reference_arn or await self._find_reference(header)
        if config.generated_from:
            fields["generatedFrom"] = config.generated_from
        if config.description:
            fields["description"] = config.description
        log.info("read set %r: %s, sampleId %s, subjectId %s%s", group.read_set_name, header.file_type,
                 fields["sampleId"], fields["subjectId"],
                 f", reference {fields['referenceArn']}" if "referenceArn" in fields else "")  # fmt: skip
        return fields

    async def _find_reference(self, header: Header) -> str:
        candidates = await self._load_candidates()
        try:
            return match_reference(header.references, candidates)
        except ReferenceMatchError as error:
            raise FsError(errno.EINVAL, str(error)) from None

    # -- completion -----------------------------------------------------------------------------

    def finished(self, group: UploadGroup) -> None:
        """A group completed or failed: its files leave the folder listings."""
        gone: list[tuple[FolderKey, str, int]] = []
        for ident, (folder, name, writer) in list(self.files.items()):
            if writer.group is group:
                del self.files[ident]
                gone.append((folder, name, ident))
        if group.state == FAILED:
            if group.upload is not None:
                self.stats.uploads_aborted += 1
        else:
            self.stats.uploads_completed += 1
            log.info("uploaded %s as read set %s in store %s", ", ".join(n for _, n, _ in gone),
                     group.read_set_id, group.store_id)  # fmt: skip
        self._on_finished(group, gone)

    async def shutdown(self) -> None:
        """At unmount: lone ``_1`` mates are completed single-end; files still being written are
        aborted (their bytes are incomplete), so no upload is left behind."""
        groups = {id(w.group): w.group for _, _, w in self.files.values()}
        for group in groups.values():
            if group.has_pending_mate():
                with contextlib.suppress(FsError):
                    await group.complete()
            elif group.state == OPEN:
                await group.fail("unmounted while the file was still being written")
