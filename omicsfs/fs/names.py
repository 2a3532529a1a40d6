"""File names: how service names become path components, and how collisions are resolved.

The rules (SEMANTICS.md, "Names"):
- ``/`` and NUL become ``_``; an empty name, ``.`` and ``..`` become the object's ID.
- A read set's files are ``STEM.bam`` (+ ``.bam.bai``), ``STEM.cram`` (+ ``.cram.crai``),
  ``STEM.fastq.gz`` or ``STEM_1.fastq.gz`` + ``STEM_2.fastq.gz``; a uBAM is ``STEM.bam``. These are
  the names htslib probes for indexes and the names the HealthOmics Transfer Manager writes
  (https://github.com/awslabs/aws-healthomics-tools).
- STEM is the name, unless two objects in the same folder would produce the same file name: then
  every member of the group uses ``NAME.ID`` (dxfuse and the Transfer Manager also keep the ID in
  the name to disambiguate; docs/architecture.md, "Names"). ``by-id/`` names never change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TypeVar

from omicsfs.backend.models import FileType, StoredFile

#: Folder names the mount itself uses (inside a store folder; ``by-md5`` beside the reference
#: stores); no store or read set file may take them.
RESERVED = frozenset({"by-id", "by-sample", "by-subject", "by-md5", ".jobs", ".", ".."})

K = TypeVar("K")


def safe_component(name: str, fallback: str) -> str:
    cleaned = name.replace("/", "_").replace("\0", "_")
    if cleaned in ("", ".", ".."):
        return fallback
    return cleaned


def read_set_suffixes(file_type: str, paired: bool, indexed: bool) -> list[tuple[str, str]]:
    """(suffix, stored file) for each file of a read set, in listing order."""
    if file_type == FileType.FASTQ:
        if paired:
            return [("_1.fastq.gz", StoredFile.SOURCE1), ("_2.fastq.gz", StoredFile.SOURCE2)]
        return [(".fastq.gz", StoredFile.SOURCE1)]
    if file_type == FileType.CRAM:
        return [(".cram", StoredFile.SOURCE1), *([(".cram.crai", StoredFile.INDEX)] if indexed else [])]
    if file_type == FileType.BAM:
        return [(".bam", StoredFile.SOURCE1), *([(".bam.bai", StoredFile.INDEX)] if indexed else [])]
    return [(".bam", StoredFile.SOURCE1)]  # UBAM: unaligned BAM is still BAM, and has no index


REFERENCE_SUFFIXES: list[tuple[str, str]] = [(".fasta", StoredFile.SOURCE), (".fasta.fai", StoredFile.INDEX)]


def assign_names(
    objects: Iterable[K],
    object_id: Callable[[K], str],
    name: Callable[[K], str],
    suffixes: Callable[[K], list[tuple[str, str]]],
) -> dict[str, tuple[K, str]]:
    """Maps each file name in a folder to (object, file key), resolving collisions by ID.

    Objects that share any file name all switch to ``NAME.ID`` stems; a name that still collides
    after that (an object literally named like another's disambiguated stem) goes to the object
    with the smaller ID, deterministically; the other stays reachable through ``by-id/``.
    """
    items = list(objects)
    stems = {object_id(item): safe_component(name(item), object_id(item)) for item in items}
    owners: dict[str, set[str]] = defaultdict(set)
    for item in items:
        for suffix, _ in suffixes(item):
            owners[stems[object_id(item)] + suffix].add(object_id(item))
    clashing = {
        oid for file_name, ids in owners.items() if len(ids) > 1 or file_name in RESERVED for oid in ids
    }
    result: dict[str, tuple[K, str]] = {}
    for item in sorted(items, key=object_id):
        oid = object_id(item)
        stem = f"{stems[oid]}.{oid}" if oid in clashing else stems[oid]
        for suffix, file_key in suffixes(item):
            file_name = stem + suffix
            if file_name not in result and file_name not in RESERVED:
                result[file_name] = (item, file_key)
    return result


def assign_folder_names(
    objects: Iterable[K], object_id: Callable[[K], str], name: Callable[[K], str]
) -> dict[str, K]:
    """Folder names for stores (and sample/subject groups): same rules, no suffixes."""
    named = assign_names(objects, object_id, name, lambda _item: [("", "")])
    return {folder: item for folder, (item, _) in named.items()}
