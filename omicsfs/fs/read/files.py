"""Which bytes the block cache serves for a file of the mount, and how hot they stay.

One place decides it, for ``open`` and for the write path's .fai lookups alike: the stored file
the parts come from, its part layout, the validator that keys its cached bytes, and which blocks
belong to the hot set (docs/architecture.md, "Hot set").
"""

from __future__ import annotations

from dataclasses import dataclass

from omicsfs.backend.models import FileLayout, FileType, PartSource, ReadSetSummary, StoredFile, Summary
from omicsfs.fs.catalog import Catalog

FileKey = tuple[str, str, str, str]  # (object kind, object ID, stored file, validator)


@dataclass(frozen=True)
class CachedFile:
    """A file the cache can serve: where its parts come from and how it is cut."""

    source: PartSource
    layout: FileLayout
    validator: str
    #: Every block hot (index files) or only the first and last (BAM/CRAM).
    hot_all: bool = False
    hot_ends: bool = False

    @property
    def key(self) -> FileKey:
        return (self.source.kind, self.source.object_id, self.source.file, self.validator)


async def cached_file(catalog: Catalog, summary: Summary, name: str) -> CachedFile | None:
    """How the block cache reads one stored file of a read set or reference (None: no such
    file). Indexes stay hot whole, BAM/CRAM/uBAM data files at both ends: htslib reads them on
    every open."""
    files = await catalog.files(summary)
    layout = files.files.get(name)
    if layout is None:
        return None
    aligned = isinstance(summary, ReadSetSummary) and summary.file_type in (
        FileType.BAM,
        FileType.CRAM,
        FileType.UBAM,
    )
    return CachedFile(
        source=PartSource(summary.kind, summary.store_id, summary.id, name),
        layout=layout,
        validator=files.validator,
        hot_all=name == StoredFile.INDEX,
        hot_ends=aligned and name == StoredFile.SOURCE1,
    )
