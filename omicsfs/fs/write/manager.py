"""Every upload of a read-write mount: creating files, their metadata, pacing, and shutdown.

The write operations (ops.py) ask this class to create a file in a folder, and list the files
still being written next to the store's read sets. Metadata rules (SEMANTICS.md, "Writing"):
- name: the file name without extension and mate suffix;
- sampleId: the header's first @RG SM, else the by-sample/ folder, else --sample-id, else the name;
- subjectId: the by-subject/ folder, else --subject-id, else the sampleId;
- referenceArn (BAM/CRAM): --reference-arn, else the one reference whose .fai matches the @SQ set.
Uploads carry two tags so a later mount can recognise the ones a killed daemon left behind
(recovery.py).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from omicsfs.backend.interface import Backend
from omicsfs.backend.models import FileType
from omicsfs.config import WriteConfig
from omicsfs.fs.errors import FsError
from omicsfs.fs.nodes import GroupFolder, GroupKind, StoreFolder
from omicsfs.fs.stats import Stats
from omicsfs.fs.tasks import TaskGroup
from omicsfs.fs.write.formats import Header, SqLine, WriteName, parse_name
from omicsfs.fs.write.group import UploadGroup, UploadState
from omicsfs.fs.write.references import Candidate, ReferenceMatchError, match_reference
from omicsfs.fs.write.upload import ReadSetUpload
from omicsfs.fs.write.writer import FileWriter, WriterState

log = logging.getLogger(__name__)

#: Tag keys on every upload (and so on the read sets it makes).
MOUNT_TAG = "omicsfs:mount"
SESSION_TAG = "omicsfs:session"
#: CreateMultipartReadSetUpload's name limit.
MAX_NAME = 127

#: Where files can be created: a sequence store folder or one of its sample/subject folders.
WritableFolder = StoreFolder | GroupFolder


@dataclass
class OpenFile:
    """One file being written: where it was created and which upload it feeds."""

    ident: int
    folder: WritableFolder
    name: str
    writer: FileWriter
    group: UploadGroup


class UploadEvents(Protocol):
    """What the write manager tells the filesystem, and asks of it (ops.py implements it)."""

    def uploads_finished(self, group: UploadGroup, gone: list[OpenFile]) -> None: ...
    async def reference_candidates(self, sq: Sequence[SqLine]) -> list[Candidate]: ...


class WriteManager:
    def __init__(
        self, backend: Backend, config: WriteConfig, stats: Stats, tasks: TaskGroup, mountpoint: str,
        events: UploadEvents,
    ) -> None:  # fmt: skip
        self.backend = backend
        self.config = config
        self.stats = stats
        self.tasks = tasks
        self.events = events
        self.owner = f"{socket.gethostname()}:{mountpoint}"
        self.session = uuid.uuid4().hex
        self.pair_timeout = config.pair_timeout
        #: Parts in flight across every upload of the mount.
        self.slots = trio.Semaphore(config.parts_in_flight)
        self._groups: dict[tuple[str, str, tuple[tuple[GroupKind, str], ...]], UploadGroup] = {}
        self._ids = itertools.count(1)
        self.files: dict[int, OpenFile] = {}
        #: Group folders made with mkdir that hold no read set yet.
        self.new_folders: set[GroupFolder] = set()

    def spawn(self, function: Callable[[], Awaitable[None]]) -> None:
        """Background work of the write path; a bug in it is logged, never fatal to the mount."""
        self.tasks.start(function)

    def new_upload(self, store_id: str, fields: dict[str, Any]) -> ReadSetUpload:
        return ReadSetUpload(self.backend, store_id, fields, self.slots, self.tasks)

    # -- files ----------------------------------------------------------------------------------

    def names_in(self, folder: WritableFolder) -> dict[str, int]:
        return {entry.name: entry.ident for entry in self.files.values() if entry.folder == folder}

    def create(self, folder: WritableFolder, file_name: str) -> OpenFile:
        """Registers a new file. EINVAL for a name that is no read set file."""
        name = parse_name(file_name)
        if name is None:
            raise FsError(
                errno.EINVAL,
                f"{file_name!r} is not a read set file name: use NAME.bam, NAME.cram, NAME.fastq.gz, "
                "NAME.fastq or NAME_1/_2.fastq.gz (indexes are built by the service)",
            )
        if not name.read_set_name:
            raise FsError(errno.EINVAL, f"read set names have 1 to {MAX_NAME} characters: {file_name!r}")
        if len(name.read_set_name) > MAX_NAME:  # refused, never cut (SEMANTICS.md, "Names")
            raise FsError(
                errno.ENAMETOOLONG, f"read set names have at most {MAX_NAME} characters: {file_name!r}"
            )
        context = {folder.group: folder.value} if isinstance(folder, GroupFolder) else {}
        group = self._group_for(folder.store_id, name, context)
        source = "SOURCE2" if name.mate == 2 else "SOURCE1"
        if source in group.writers:
            raise FsError(errno.EEXIST, f"mate {name.mate} of {name.read_set_name!r} is already written")
        writer = FileWriter(file_name, name, group, source, self.config.part_size)
        group.add(writer)
        entry = OpenFile(next(self._ids), folder, file_name, writer, group)
        self.files[entry.ident] = entry
        return entry

    def _group_for(self, store_id: str, name: WriteName, context: dict[GroupKind, str]) -> UploadGroup:
        folder = {str(kind): value for kind, value in context.items()}
        if name.mate is not None:
            key = (store_id, name.read_set_name, tuple(sorted(context.items())))
            group = self._groups.get(key)
            if group is not None and group.state is UploadState.OPEN:
                return group
            group = UploadGroup(self, store_id, name, folder)
            self._groups[key] = group
            return group
        return UploadGroup(self, store_id, name, folder)

    def discard_if_empty(self, entry: OpenFile) -> None:
        """An empty file creates nothing (Mountpoint: no object for an empty close)."""
        if (
            entry.writer.size
            or entry.writer.state is not WriterState.WRITING
            or entry.ident not in self.files
        ):
            return
        del self.files[entry.ident]
        entry.group.discard_empty(entry.writer)
        self.events.uploads_finished(entry.group, [entry])

    def progress(self) -> dict[str, dict[str, int | str]]:
        """Per file being written: bytes written, bytes uploaded and parts sent, for stats views."""
        result: dict[str, dict[str, int | str]] = {}
        for entry in self.files.values():
            upload = entry.group.upload
            result[entry.name] = {
                "written_bytes": entry.writer.size,
                "uploaded_bytes": upload.uploaded_bytes if upload is not None else 0,
                "state": str(entry.writer.state),
            }
        return result

    # -- metadata -------------------------------------------------------------------------------

    async def upload_fields(self, group: UploadGroup, header: Header) -> dict[str, Any]:
        config = self.config
        sample = header.sample or group.folder.get("sample") or config.sample_id or group.read_set_name
        subject = group.folder.get("subject") or config.subject_id or sample
        for field_name, value in (("sampleId", sample), ("subjectId", subject)):
            if len(value) > MAX_NAME:  # a header's @RG SM: refused, never cut
                raise FsError(
                    errno.EINVAL,
                    f"{field_name} {value[:40]!r}... has {len(value)} characters (at most {MAX_NAME})",
                )
        fields: dict[str, Any] = {
            "sourceFileType": str(header.file_type),
            "name": group.read_set_name,
            "sampleId": sample,
            "subjectId": subject,
            "tags": {MOUNT_TAG: self.owner[:256], SESSION_TAG: self.session},
        }
        if header.file_type in (FileType.BAM, FileType.CRAM):
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
        candidates = await self.events.reference_candidates(header.references)
        try:
            return match_reference(header.references, candidates)
        except ReferenceMatchError as error:
            raise FsError(errno.EINVAL, str(error)) from None

    # -- completion -----------------------------------------------------------------------------

    def finished(self, group: UploadGroup) -> None:
        """A group completed or failed: its files leave the folder listings."""
        gone = [entry for entry in self.files.values() if entry.group is group]
        for entry in gone:
            del self.files[entry.ident]
        if group.state is UploadState.FAILED:
            if group.upload is not None:
                self.stats.uploads_aborted += 1
        else:
            self.stats.uploads_completed += 1
            log.info("uploaded %s as read set %s in store %s", ", ".join(e.name for e in gone),
                     group.read_set_id, group.store_id)  # fmt: skip
        self.events.uploads_finished(group, gone)

    async def shutdown(self) -> None:
        """At unmount: lone ``_1`` mates are completed single-end; files still being written are
        aborted (their bytes are incomplete), so no upload is left behind."""
        groups = {id(entry.group): entry.group for entry in self.files.values()}
        for group in groups.values():
            if group.has_pending_mate():
                with contextlib.suppress(FsError):
                    await group.complete()
            elif group.state is UploadState.OPEN:
                await group.fail("unmounted while the file was still being written")
