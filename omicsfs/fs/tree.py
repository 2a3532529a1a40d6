"""The folder tree (README.md, "Layout"), computed from the catalog's listings.

Folders are derived from listings alone: ``ls`` of a store makes only ListReadSets calls. Which
files a read set has is decided without a metadata call where possible: paired FASTQ from the
listing's ``etag.source2``, an index presumed for BAM/CRAM. When metadata fetched later
contradicts a presumption (an unsorted BAM without an index), the folder is recomputed.
``reference-stores/by-md5/`` is the by-md5 view's (fs/refview.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from omicsfs.backend.models import (
    FileType,
    ObjectFiles,
    ReadSetSummary,
    StoredFile,
    StoreKind,
    StoreSummary,
    Summary,
)
from omicsfs.fs.catalog import Catalog
from omicsfs.fs.names import (
    REFERENCE_SUFFIXES,
    assign_folder_names,
    assign_names,
    group_folder_names,
    read_set_suffixes,
    safe_component,
)
from omicsfs.fs.nodes import (
    BY_MD5,
    CONTROL_FOLDER,
    JOB_KINDS,
    STATS_FILE,
    STORES_FOLDERS,
    ById,
    ControlFolder,
    Folder,
    GroupFolder,
    GroupKind,
    GroupLink,
    GroupsFolder,
    IdLink,
    JobFile,
    JobKindFolder,
    JobsFolder,
    Link,
    Md5Folder,
    Node,
    ObjectFile,
    Root,
    StatsFile,
    StoreFolder,
    StoreLink,
    StoresById,
    StoresFolder,
)

if TYPE_CHECKING:  # the view reads through handles, which import the write path, which imports this
    from omicsfs.fs.refview import Md5View

_READ_SET_FILES = {StoredFile.SOURCE1, StoredFile.SOURCE2, StoredFile.INDEX}
_REFERENCE_FILES = {StoredFile.SOURCE, StoredFile.INDEX}


@dataclass
class FolderListing:
    """One store folder's file names, computed once per listing version."""

    version: tuple[int, int]
    files: dict[str, tuple[Summary, str]]
    names: dict[tuple[str, str], str] = field(default_factory=dict)  # (object, file) -> name
    suffixes: dict[tuple[str, str], str] = field(default_factory=dict)  # (object, file) -> suffix
    objects: Mapping[str, Summary] = field(default_factory=dict)
    groups: dict[GroupKind, dict[str, set[str]]] = field(default_factory=dict)  # value -> object IDs
    #: Folder name -> sample or subject ID: the same unless the ID is longer than NAME_MAX bytes.
    group_names: dict[GroupKind, dict[str, str]] = field(default_factory=dict)


class Tree:
    def __init__(self, catalog: Catalog, by_md5: Md5View) -> None:
        self.catalog = catalog
        self.by_md5 = by_md5
        self._folders: dict[tuple[StoreKind, str], FolderListing] = {}
        #: Bumped when fetched metadata contradicts what a folder presumed from its listing.
        self._epoch = 0
        self._contradicted: set[str] = set()
        #: Read sets known to be paired before their listing says so (uploaded by this mount).
        self.paired: set[str] = set()

    # -- stores ---------------------------------------------------------------------------------

    async def stores(self, kind: StoreKind) -> dict[str, StoreSummary]:
        listed = await self.catalog.stores(kind)
        return assign_folder_names(listed, lambda s: s.id, lambda s: s.name)

    async def store(self, kind: StoreKind, store_id: str) -> StoreSummary | None:
        for store in (await self.stores(kind)).values():
            if store.id == store_id:
                return store
        return None

    async def store_folder_name(self, kind: StoreKind, store_id: str) -> str | None:
        for name, store in (await self.stores(kind)).items():
            if store.id == store_id:
                return name
        return None

    # -- store folders --------------------------------------------------------------------------

    def _suffixes(self, summary: Summary) -> list[tuple[str, str]]:
        files = self.catalog.known_files(summary)
        if not isinstance(summary, ReadSetSummary):
            return [(s, f) for s, f in REFERENCE_SUFFIXES if files is None or f in files.files]
        if files is not None and files.files:
            paired = StoredFile.SOURCE2 in files.files
            indexed = StoredFile.INDEX in files.files
        else:
            paired = bool(summary.etag_source2) or summary.id in self.paired
            indexed = summary.file_type in (FileType.BAM, FileType.CRAM)
        return read_set_suffixes(summary.file_type, paired, indexed)

    def note_files(self, summary: Summary, files: ObjectFiles) -> None:
        """Called with freshly fetched metadata: recompute the folder if a presumption was wrong."""
        if summary.id in self._contradicted or not files.files:
            return
        if isinstance(summary, ReadSetSummary):
            presumed = read_set_suffixes(
                summary.file_type,
                bool(summary.etag_source2),
                summary.file_type in (FileType.BAM, FileType.CRAM),
            )
            possible = _READ_SET_FILES
        else:
            presumed = REFERENCE_SUFFIXES
            possible = _REFERENCE_FILES
        if {f for _, f in presumed} != set(files.files) & possible:
            self._contradicted.add(summary.id)
            self._epoch += 1

    async def folder(self, kind: StoreKind, store_id: str) -> FolderListing:
        version, objects = await self.catalog.objects(kind, store_id)
        cached = self._folders.get((kind, store_id))
        if cached is not None and cached.version == (version, self._epoch):
            return cached
        suffixes = {obj.id: self._suffixes(obj) for obj in objects.values()}
        files = assign_names(
            list(objects.values()), lambda o: o.id, lambda o: o.name, lambda o: suffixes[o.id]
        )
        folder = FolderListing(version=(version, self._epoch), files=files, objects=objects)
        for name, (summary, file_key) in files.items():
            folder.names[(summary.id, file_key)] = name
        for object_id, pairs in suffixes.items():
            for suffix, file_key in pairs:
                folder.suffixes[(object_id, file_key)] = suffix
        if kind is StoreKind.SEQUENCE:
            for group in GroupKind:
                members: dict[str, set[str]] = defaultdict(set)
                for summary in objects.values():
                    assert isinstance(summary, ReadSetSummary)
                    value = summary.sample_id if group is GroupKind.SAMPLE else summary.subject_id
                    if value:
                        members[safe_component(value, "_")].add(summary.id)
                folder.groups[group] = dict(members)
                folder.group_names[group] = group_folder_names(members)
        self._folders[(kind, store_id)] = folder
        return folder

    # -- children -------------------------------------------------------------------------------

    async def children(self, node: Folder) -> dict[str, Node]:
        """Name -> node of each entry of a folder."""
        match node:
            case Root():
                top: dict[str, Node] = {name: StoresFolder(kind) for kind, name in STORES_FOLDERS.items()}
                top[CONTROL_FOLDER] = ControlFolder()
                return top
            case ControlFolder():
                return {STATS_FILE: StatsFile()}
            case StoresFolder(kind=kind):
                entries: dict[str, Node] = {"by-id": StoresById(kind)}
                for name, store in (await self.stores(kind)).items():
                    entries[name] = StoreFolder(kind, store.id)
                if kind is StoreKind.REFERENCE:
                    entries[BY_MD5] = Md5Folder("")
                return entries
            case StoresById(kind=kind):
                return {store.id: StoreLink(kind, store.id) for store in (await self.stores(kind)).values()}
            case StoreFolder(kind=kind, store_id=store_id):
                listing = await self.folder(kind, store_id)
                entries = {
                    name: ObjectFile(kind, store_id, obj.id, f) for name, (obj, f) in listing.files.items()
                }
                entries["by-id"] = ById(kind, store_id)
                entries[".jobs"] = JobsFolder(kind, store_id)
                if kind is StoreKind.SEQUENCE:
                    for group in GroupKind:
                        entries[group.folder_name] = GroupsFolder(store_id, group)
                return entries
            case ById(kind=kind, store_id=store_id):
                listing = await self.folder(kind, store_id)
                return {
                    object_id + listing.suffixes[(object_id, file)]: IdLink(kind, store_id, object_id, file)
                    for object_id, file in listing.names
                }
            case GroupsFolder(store_id=store_id, group=group):
                listing = await self.folder(StoreKind.SEQUENCE, store_id)
                return {
                    name: GroupFolder(store_id, group, value)
                    for name, value in listing.group_names.get(group, {}).items()
                }
            case GroupFolder(store_id=store_id, group=group, value=value):
                listing = await self.folder(StoreKind.SEQUENCE, store_id)
                members = listing.groups.get(group, {}).get(value, set())
                return {
                    name: GroupLink(store_id, group, value, object_id, file)
                    for (object_id, file), name in listing.names.items()
                    if object_id in members
                }
            case JobsFolder(kind=kind, store_id=store_id):
                return {job_kind: JobKindFolder(kind, store_id, job_kind) for job_kind in JOB_KINDS[kind]}
            case JobKindFolder(kind=kind, store_id=store_id, job_kind=job_kind):
                jobs = await self.catalog.jobs(kind, store_id, job_kind)
                return {f"{job_id}.json": JobFile(kind, store_id, job_kind, job_id) for job_id in jobs}
            case Md5Folder():
                return await self.by_md5.children(node)
        raise AssertionError(f"not a folder: {node}")

    async def link_target(self, node: Link) -> str | None:
        """The relative target of a symlink node, or None if what it pointed at is gone."""
        match node:
            case StoreLink(kind=kind, store_id=store_id):
                name = await self.store_folder_name(kind, store_id)
                return None if name is None else f"../{name}"
            case IdLink(kind=kind, store_id=store_id, object_id=object_id, file=file):
                name = (await self.folder(kind, store_id)).names.get((object_id, file))
                return None if name is None else f"../{name}"
            case GroupLink(store_id=store_id, object_id=object_id, file=file):
                name = (await self.folder(StoreKind.SEQUENCE, store_id)).names.get((object_id, file))
                return None if name is None else f"../../{name}"
        raise AssertionError(f"not a link: {node}")

    async def summary(self, node: ObjectFile) -> Summary | None:
        """The read set or reference behind a file (None once it is no longer listed)."""
        folder = await self.folder(node.kind, node.store_id)
        return folder.objects.get(node.object_id)
