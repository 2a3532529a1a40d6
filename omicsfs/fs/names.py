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
- Every name fits NAME_MAX, 255 bytes of UTF-8, the limit of ext4, XFS and tmpfs (and the one the
  mount reports in statfs): a copy out of the mount must never fail with ENAMETOOLONG. A stem that
  does not fit with its longest suffix is cut on a character boundary and ends in ``.ID``, so two
  shortened names never collide and all files of one object keep one stem. A sample or subject
  folder, which has no ID, ends in ``.`` and 12 hex digits of the SHA-256 of its full value.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TypeVar

from omicsfs.backend.models import FileType, StoredFile

#: Folder names the mount itself uses (inside a store folder; ``by-md5`` beside the reference
#: stores); no store or read set file may take them.
RESERVED = frozenset({"by-id", "by-sample", "by-subject", "by-md5", ".jobs", ".", ".."})

#: Longest path component, in bytes (Linux NAME_MAX).
NAME_MAX = 255
#: Hex digits of the value's SHA-256 that end a shortened sample or subject folder name.
GROUP_HASH_DIGITS = 12

K = TypeVar("K")


def safe_component(name: str, fallback: str) -> str:
    cleaned = name.replace("/", "_").replace("\0", "_")
    if cleaned in ("", ".", ".."):
        return fallback
    return cleaned


def encoded_length(text: str) -> int:
    """Bytes of ``text`` as a path component (the kernel sees UTF-8; os.fsencode's encoding)."""
    return len(text.encode("utf-8", "surrogateescape"))


def cut_to_bytes(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 form has at most ``limit`` bytes: never half a
    character."""
    total = 0
    for index, char in enumerate(text):
        total += encoded_length(char)
        if total > limit:
            return text[:index]
    return text


def stem_with_id(name: str, object_id: str, suffix_bytes: int = 0) -> str:
    """``NAME.ID``, with NAME cut so that the stem plus a suffix of ``suffix_bytes`` fits NAME_MAX."""
    tail = f".{object_id}"
    return cut_to_bytes(name, NAME_MAX - suffix_bytes - encoded_length(tail)) + tail


def fitting_stem(name: str, object_id: str, suffix_bytes: int = 0) -> str:
    """``name`` itself when it fits NAME_MAX with its longest suffix, else ``stem_with_id``."""
    if encoded_length(name) + suffix_bytes <= NAME_MAX:
        return name
    return stem_with_id(name, object_id, suffix_bytes)


def group_folder_name(value: str, digits: int = GROUP_HASH_DIGITS) -> str:
    """The folder of a sample or subject ID (already made safe): the value when it fits, else its
    start, ``.`` and the first ``digits`` hex digits of the SHA-256 of the whole value."""
    if encoded_length(value) <= NAME_MAX:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:digits]
    return stem_with_id(value, digest)


def group_folder_names(values: Iterable[str]) -> dict[str, str]:
    """Folder name -> value for the sample or subject IDs of one store. A shortened name that a
    literal value already spells (which only a value made to match can) takes the full hash."""
    ordered = sorted(set(values), key=lambda value: (encoded_length(value) > NAME_MAX, value))
    names: dict[str, str] = {}
    for value in ordered:
        name = group_folder_name(value)
        if name in names:
            name = group_folder_name(value, digits=64)
        names[name] = value
    return names


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
    with the smaller ID, deterministically; the other stays reachable through ``by-id/``. Every
    stem leaves room for the object's longest suffix within NAME_MAX.
    """
    items = list(objects)
    names = {object_id(item): safe_component(name(item), object_id(item)) for item in items}
    room = {
        object_id(item): max((encoded_length(suffix) for suffix, _ in suffixes(item)), default=0)
        for item in items
    }
    stems = {oid: fitting_stem(names[oid], oid, room[oid]) for oid in names}
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
        stem = stem_with_id(names[oid], oid, room[oid]) if oid in clashing else stems[oid]
        for suffix, file_key in suffixes(item):
            file_name = stem + suffix
            if file_name not in result and file_name not in RESERVED:
                result[file_name] = (item, file_key)
    return result


def assign_folder_names(
    objects: Iterable[K], object_id: Callable[[K], str], name: Callable[[K], str]
) -> dict[str, K]:
    """Folder names for stores: same rules, no suffixes."""
    named = assign_names(objects, object_id, name, lambda _item: [("", "")])
    return {folder: item for folder, (item, _) in named.items()}
