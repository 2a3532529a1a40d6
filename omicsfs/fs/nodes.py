"""What each entry of the mount is: one frozen dataclass per kind of node.

A node names what an entry *is* (a store, one file of a read set, a job), never its file name,
so inode numbers stay stable while names are recomputed as listings change (the inode table maps
nodes to numbers; fs/inodes.py). Handlers dispatch on the type with ``match``; mypy checks that
every field a handler reads exists on that kind.

The folder layout (README.md, "Layout"):

  Root
    StoresFolder(SEQUENCE) "sequence-stores"        StoresFolder(REFERENCE) "reference-stores"
      StoresById "by-id"       -> StoreLink per store
      StoreFolder per store    -> ObjectFile per read set or reference file
        ById "by-id"           -> IdLink per file
        GroupsFolder "by-sample" / "by-subject" -> GroupFolder per value -> GroupLink per file
        JobsFolder ".jobs"     -> JobKindFolder per kind -> JobFile per job
      Md5Folder("") "by-md5" (reference-stores only) -> Md5Folder("4b") -> Md5Folder("4b71")
        -> ContigFile per contig MD5 (fs/refview.py)
    ControlFolder ".omicsfs"   -> StatsFile "stats.json"
  WritingFile: a file being written on a ``--read-write`` mount, listed beside the read sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from omicsfs.backend.models import JobKind, StoreKind

STORES_FOLDERS = {StoreKind.SEQUENCE: "sequence-stores", StoreKind.REFERENCE: "reference-stores"}
#: The mount's own folder: ``.omicsfs/stats.json`` is a live view of the daemon's counters.
CONTROL_FOLDER = ".omicsfs"
STATS_FILE = "stats.json"
#: The htslib reference cache view in ``reference-stores/`` (fs/refview.py).
BY_MD5 = "by-md5"
JOB_KINDS: dict[StoreKind, tuple[JobKind, ...]] = {
    StoreKind.SEQUENCE: (JobKind.IMPORT, JobKind.EXPORT, JobKind.ACTIVATION),
    StoreKind.REFERENCE: (JobKind.IMPORT,),
}


class GroupKind(StrEnum):
    """The views of a sequence store by a read set field."""

    SAMPLE = "sample"
    SUBJECT = "subject"

    @property
    def folder_name(self) -> str:
        return f"by-{self.value}"


# -- folders ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Root:
    pass


@dataclass(frozen=True, slots=True)
class ControlFolder:
    pass


@dataclass(frozen=True, slots=True)
class StoresFolder:
    kind: StoreKind


@dataclass(frozen=True, slots=True)
class StoresById:
    kind: StoreKind


@dataclass(frozen=True, slots=True)
class StoreFolder:
    kind: StoreKind
    store_id: str


@dataclass(frozen=True, slots=True)
class ById:
    kind: StoreKind
    store_id: str


@dataclass(frozen=True, slots=True)
class GroupsFolder:
    """``by-sample/`` or ``by-subject/`` of a sequence store."""

    store_id: str
    group: GroupKind


@dataclass(frozen=True, slots=True)
class GroupFolder:
    """One sample's or subject's folder. ``value`` is the sample or subject ID, which is also the
    folder name unless it is longer than NAME_MAX bytes (fs/names.py, ``group_folder_name``)."""

    store_id: str
    group: GroupKind
    value: str


@dataclass(frozen=True, slots=True)
class JobsFolder:
    kind: StoreKind
    store_id: str


@dataclass(frozen=True, slots=True)
class JobKindFolder:
    kind: StoreKind
    store_id: str
    job_kind: JobKind


@dataclass(frozen=True, slots=True)
class Md5Folder:
    """``reference-stores/by-md5/`` (prefix ""), ``by-md5/4b/`` ("4b") or ``by-md5/4b/71/``
    ("4b71"): the levels of htslib's ``%2s/%2s/%s`` layout."""

    prefix: str


# -- links --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoreLink:
    """``by-id/<store id>`` -> the store's folder."""

    kind: StoreKind
    store_id: str


@dataclass(frozen=True, slots=True)
class IdLink:
    """``<store>/by-id/<object id><suffix>`` -> the file's name in the store folder."""

    kind: StoreKind
    store_id: str
    object_id: str
    file: str


@dataclass(frozen=True, slots=True)
class GroupLink:
    """``by-sample/<value>/<name>`` -> the file's name in the store folder."""

    store_id: str
    group: GroupKind
    value: str
    object_id: str
    file: str


# -- files --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectFile:
    """One stored file (a StoredFile value) of a read set or reference."""

    kind: StoreKind
    store_id: str
    object_id: str
    file: str

    def describe(self) -> str:
        what = "read set" if self.kind is StoreKind.SEQUENCE else "reference"
        return f"{self.kind} store {self.store_id} {what} {self.object_id} {self.file}"


@dataclass(frozen=True, slots=True)
class JobFile:
    kind: StoreKind
    store_id: str
    job_kind: JobKind
    job_id: str


@dataclass(frozen=True, slots=True)
class StatsFile:
    pass


@dataclass(frozen=True, slots=True)
class ContigFile:
    """``by-md5/4b/71/<28 hex>``: the bare sequence of every contig whose M5 is ``md5``."""

    md5: str


@dataclass(frozen=True, slots=True)
class WritingFile:
    """A file being written; ``ident`` is its number in the write engine."""

    ident: int


Folder = (
    Root | ControlFolder | StoresFolder | StoresById | StoreFolder | ById | GroupsFolder | GroupFolder
    | JobsFolder | JobKindFolder | Md5Folder
)  # fmt: skip
Link = StoreLink | IdLink | GroupLink
File = ObjectFile | JobFile | StatsFile | WritingFile | ContigFile
Node = Folder | Link | File

FOLDER_TYPES = (Root, ControlFolder, StoresFolder, StoresById, StoreFolder, ById, GroupsFolder, GroupFolder,
                JobsFolder, JobKindFolder, Md5Folder)  # fmt: skip
LINK_TYPES = (StoreLink, IdLink, GroupLink)
ROOT = Root()


def is_folder(node: Node) -> bool:
    return isinstance(node, FOLDER_TYPES)


def is_link(node: Node) -> bool:
    return isinstance(node, LINK_TYPES)


def describe(node: Node) -> str:
    """What a node is, for log lines: store, read set or reference ID and file, job ID."""
    match node:
        case ObjectFile():
            return node.describe()
        case IdLink() | GroupLink():
            return f"link to {node.object_id} {node.file} in store {node.store_id}"
        case JobFile():
            return f"{node.job_kind} job {node.job_id} of {node.kind} store {node.store_id}"
        case WritingFile():
            return f"file being written #{node.ident}"
        case ContigFile():
            return f"by-md5 contig {node.md5}"
        case StoreFolder() | ById() | JobsFolder() | StoreLink():
            return f"{node.kind} store {node.store_id}"
        case GroupsFolder() | GroupFolder():
            return f"{node.group} view of store {node.store_id}"
        case _:
            return type(node).__name__
