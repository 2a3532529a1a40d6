"""The folder tree of DESIGN.md §1, computed from the catalog's listings.

Every node has a permanent key (a tuple naming what it is, never its file name), so inode numbers
stay stable while names are recomputed as listings change. Folders are derived from listings alone:
``ls`` of a store makes only ListReadSets calls. Which files a read set has is decided without a
metadata call where possible: paired FASTQ from the listing's ``etag.source2``, an index presumed
for BAM/CRAM. When metadata fetched later contradicts a presumption (an unsorted BAM without an
index), the folder is recomputed.

Node keys:
  ("root",)                       ("stores", S)                  ("stores-by-id", S)
  ("store-link", S, store)        ("store", S, store)            ("by-id", S, store)
  ("file", S, store, obj, file)   ("id-link", S, store, obj, file)
  ("groups", store, G)  ("group", store, G, value)  ("group-link", store, G, value, obj, file)
  ("jobs", S, store)              ("job-kind", S, store, kind)   ("job", S, store, kind, job)
with S = "sequence" | "reference" and G = "sample" | "subject".
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import cast

from omicsfs.backend.models import JobKind, ObjectFiles, ReadSetSummary, ReferenceSummary, StoreSummary
from omicsfs.fs.catalog import Catalog, Summary
from omicsfs.fs.names import (
    REFERENCE_SUFFIXES,
    assign_folder_names,
    assign_names,
    read_set_suffixes,
    safe_component,
)

Key = tuple[str, ...]

ROOT: Key = ("root",)
#: The mount's own folder: ``.omicsfs/stats.json`` is a live view of the daemon's counters.
CONTROL_FOLDER = ".omicsfs"
STATS_FILE = "stats.json"
STORE_KINDS = {"sequence": "sequence-stores", "reference": "reference-stores"}
GROUP_FOLDERS = {"sample": "by-sample", "subject": "by-subject"}
JOB_KINDS: dict[str, tuple[JobKind, ...]] = {
    "sequence": ("import", "export", "activation"),
    "reference": ("import",),
}


@dataclass
class StoreFolder:
    """One store folder's file names, computed once per listing version."""

    version: tuple[int, int]
    files: dict[str, tuple[Summary, str]]
    names: dict[tuple[str, str], str] = field(default_factory=dict)  # (object, file) -> name
    suffixes: dict[tuple[str, str], str] = field(default_factory=dict)  # (object, file) -> suffix
    objects: dict[str, Summary] = field(default_factory=dict)
    groups: dict[str, dict[str, set[str]]] = field(default_factory=dict)  # G -> folder -> object IDs


class Tree:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._folders: dict[tuple[str, str], StoreFolder] = {}
        #: Bumped when fetched metadata contradicts what a folder presumed from its listing.
        self._epoch = 0
        self._contradicted: set[str] = set()
        #: Read sets known to be paired before their listing says so (uploaded by this mount).
        self.paired: set[str] = set()

    # -- stores ---------------------------------------------------------------------------------

    async def stores(self, kind: str) -> dict[str, StoreSummary]:
        listed = (
            await self.catalog.sequence_stores()
            if kind == "sequence"
            else await self.catalog.reference_stores()
        )
        return assign_folder_names(listed, lambda s: s.id, lambda s: s.name)

    async def store(self, kind: str, store_id: str) -> StoreSummary | None:
        for store in (await self.stores(kind)).values():
            if store.id == store_id:
                return store
        return None

    async def store_folder_name(self, kind: str, store_id: str) -> str | None:
        for name, store in (await self.stores(kind)).items():
            if store.id == store_id:
                return name
        return None

    # -- store folders --------------------------------------------------------------------------

    def _suffixes(self, summary: Summary) -> list[tuple[str, str]]:
        if isinstance(summary, ReferenceSummary):
            files = self.catalog.known_files(summary)
            return [(s, f) for s, f in REFERENCE_SUFFIXES if files is None or f in files.files]
        files = self.catalog.known_files(summary)
        if files is not None and files.files:
            paired = "source2" in files.files
            indexed = "index" in files.files
        else:
            paired = bool(summary.etag_source2) or summary.id in self.paired
            indexed = summary.file_type in ("BAM", "CRAM")
        return read_set_suffixes(summary.file_type, paired, indexed)

    def note_files(self, summary: Summary, files: ObjectFiles) -> None:
        """Called with freshly fetched metadata: recompute the folder if a presumption was wrong."""
        if summary.id in self._contradicted or not files.files:
            return
        if isinstance(summary, ReadSetSummary):
            presumed_suffixes = read_set_suffixes(
                summary.file_type, bool(summary.etag_source2), summary.file_type in ("BAM", "CRAM")
            )
            possible = {"source1", "source2", "index"}
        else:
            presumed_suffixes = REFERENCE_SUFFIXES
            possible = {"source", "index"}
        if {f for _, f in presumed_suffixes} != set(files.files) & possible:
            self._contradicted.add(summary.id)
            self._epoch += 1

    async def folder(self, kind: str, store_id: str) -> StoreFolder:
        objects: dict[str, Summary]
        if kind == "sequence":
            version, read_sets = await self.catalog.read_sets(store_id)
            objects = cast("dict[str, Summary]", read_sets)
        else:
            version, references = await self.catalog.references(store_id)
            objects = cast("dict[str, Summary]", references)
        cached = self._folders.get((kind, store_id))
        if cached is not None and cached.version == (version, self._epoch):
            return cached
        suffixes = {obj.id: self._suffixes(obj) for obj in objects.values()}
        files = assign_names(
            cast("list[Summary]", list(objects.values())),
            lambda o: o.id,
            lambda o: o.name,
            lambda o: suffixes[o.id],
        )
        folder = StoreFolder(version=(version, self._epoch), files=files, objects=objects)
        for name, (summary, file_key) in files.items():
            folder.names[(summary.id, file_key)] = name
        for object_id, pairs in suffixes.items():
            for suffix, file_key in pairs:
                folder.suffixes[(object_id, file_key)] = suffix
        if kind == "sequence":
            for group in GROUP_FOLDERS:
                members: dict[str, set[str]] = defaultdict(set)
                for summary in objects.values():
                    assert isinstance(summary, ReadSetSummary)
                    value = summary.sample_id if group == "sample" else summary.subject_id
                    if value:
                        members[safe_component(value, "_")].add(summary.id)
                folder.groups[group] = dict(members)
        self._folders[(kind, store_id)] = folder
        return folder

    # -- children -------------------------------------------------------------------------------

    async def children(self, key: Key) -> dict[str, Key]:
        """Name -> key of each entry of a folder; KeyError if ``key`` is not a folder."""
        kind = key[0]
        if kind == "root":
            top: dict[str, Key] = {name: ("stores", s) for s, name in STORE_KINDS.items()}
            top[CONTROL_FOLDER] = ("control",)
            return top
        if kind == "control":
            return {STATS_FILE: ("stats",)}
        if kind == "stores":
            s = key[1]
            entries: dict[str, Key] = {"by-id": ("stores-by-id", s)}
            for name, store in (await self.stores(s)).items():
                entries[name] = ("store", s, store.id)
            return entries
        if kind == "stores-by-id":
            s = key[1]
            return {store.id: ("store-link", s, store.id) for store in (await self.stores(s)).values()}
        if kind == "store":
            s, store_id = key[1], key[2]
            folder = await self.folder(s, store_id)
            entries = {name: ("file", s, store_id, obj.id, f) for name, (obj, f) in folder.files.items()}
            entries["by-id"] = ("by-id", s, store_id)
            entries[".jobs"] = ("jobs", s, store_id)
            if s == "sequence":
                for group, folder_name in GROUP_FOLDERS.items():
                    entries[folder_name] = ("groups", store_id, group)
            return entries
        if kind == "by-id":
            s, store_id = key[1], key[2]
            folder = await self.folder(s, store_id)
            entries = {}
            for object_id, file_key in folder.names:
                suffix = folder.suffixes[(object_id, file_key)]
                entries[object_id + suffix] = ("id-link", s, store_id, object_id, file_key)
            return entries
        if kind == "groups":
            store_id, group = key[1], key[2]
            folder = await self.folder("sequence", store_id)
            return {value: ("group", store_id, group, value) for value in folder.groups.get(group, {})}
        if kind == "group":
            store_id, group, value = key[1], key[2], key[3]
            folder = await self.folder("sequence", store_id)
            members = folder.groups.get(group, {}).get(value, set())
            return {
                name: ("group-link", store_id, group, value, object_id, file_key)
                for (object_id, file_key), name in folder.names.items()
                if object_id in members
            }
        if kind == "jobs":
            s, store_id = key[1], key[2]
            return {job_kind: ("job-kind", s, store_id, job_kind) for job_kind in JOB_KINDS[s]}
        if kind == "job-kind":
            s, store_id, job_kind = key[1], key[2], cast(JobKind, key[3])
            jobs = await self.catalog.jobs(s, store_id, job_kind)
            return {f"{job_id}.json": ("job", s, store_id, job_kind, job_id) for job_id in jobs}
        raise KeyError(key)

    async def link_target(self, key: Key) -> str | None:
        """The relative target of a symlink node, or None if what it pointed at is gone."""
        if key[0] == "store-link":
            name = await self.store_folder_name(key[1], key[2])
            return None if name is None else f"../{name}"
        if key[0] == "id-link":
            s, store_id, object_id, file_key = key[1:5]
            name = (await self.folder(s, store_id)).names.get((object_id, file_key))
            return None if name is None else f"../{name}"
        if key[0] == "group-link":
            store_id, object_id, file_key = key[1], key[4], key[5]
            name = (await self.folder("sequence", store_id)).names.get((object_id, file_key))
            return None if name is None else f"../../{name}"
        raise KeyError(key)

    async def summary(self, key: Key) -> Summary | None:
        """The read set or reference behind a ``file`` node (None once it is no longer listed)."""
        s, store_id, object_id = key[1], key[2], key[3]
        folder = await self.folder(s, store_id)
        return folder.objects.get(object_id)


def is_folder(key: Key) -> bool:
    return key[0] in (
        "root",
        "control",
        "stores",
        "stores-by-id",
        "store",
        "by-id",
        "groups",
        "group",
        "jobs",
        "job-kind",
    )


def is_link(key: Key) -> bool:
    return key[0] in ("store-link", "id-link", "group-link")
