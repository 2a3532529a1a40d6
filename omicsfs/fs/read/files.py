"""Which bytes the block cache serves for a file of the mount, on which grid, and how hot.

One place decides it, for ``open`` and for the write path's .fai lookups alike: the stored file
the parts come from, its part layout, its S3 object where it has one, the validator that keys
its cached bytes, the block grid, and which blocks belong to the hot set (docs/architecture.md,
"Hot set").

The grid cuts a file into blocks by offset alone, so a block is the same bytes whether a part
fetch or a ranged GET brought it, and the cache and the disk tier hold both interchangeably.
Its block size divides the part size, so every part is a whole number of blocks: the configured
block size (1 MiB; AWS parts are 100 MiB), else the largest divisor of the part size below it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from omicsfs.backend.models import FileLayout, FileType, PartSource, ReadSetSummary, StoredFile, Summary
from omicsfs.backend.s3 import S3Location
from omicsfs.fs.catalog import Catalog

FileKey = tuple[str, str, str, str]  # (object kind, object ID, stored file, validator)


@lru_cache(maxsize=64)
def grid_block_size(part_size: int, preferred: int) -> int:
    """The largest block size <= ``preferred`` that divides ``part_size``."""
    if part_size <= preferred:
        return part_size
    pieces = -(-part_size // preferred)
    while part_size % pieces:
        pieces += 1
    return part_size // pieces


@dataclass(frozen=True)
class CachedFile:
    """A file the cache can serve: where its bytes come from and how it is cut."""

    source: PartSource
    layout: FileLayout
    validator: str
    block_size: int
    #: Every block hot (index files) or only the first and last (BAM/CRAM).
    hot_all: bool = False
    hot_ends: bool = False
    #: Its object behind the store's S3 access point, where ranged GETs may read it.
    s3: S3Location | None = None

    @property
    def key(self) -> FileKey:
        return (self.source.kind, self.source.object_id, self.source.file, self.validator)

    @property
    def size(self) -> int:
        return self.layout.content_length

    @property
    def blocks(self) -> int:
        return max(1, -(-self.size // self.block_size))

    def block_start(self, block: int) -> int:
        return block * self.block_size

    def block_length(self, block: int) -> int:
        return max(0, min(self.block_size, self.size - block * self.block_size))

    def blocks_per_part(self) -> int:
        return self.layout.part_size // self.block_size

    def part_blocks(self, part: int) -> range:
        """The blocks of part ``part`` (1-based)."""
        per = self.blocks_per_part()
        return range((part - 1) * per, min(part * per, self.blocks))

    def part_of_block(self, block: int) -> int:
        return block // self.blocks_per_part() + 1


async def cached_file(catalog: Catalog, summary: Summary, name: str, block_size: int) -> CachedFile | None:
    """How the block cache reads one stored file of a read set or reference (None: no such
    file). Indexes stay hot whole, BAM/CRAM/uBAM data files at both ends: htslib reads them on
    every open."""
    files = await catalog.files(summary)
    layout = files.files.get(name)
    if layout is None:
        return None
    aligned = isinstance(summary, ReadSetSummary) and summary.file_type in (
        FileType.BAM, FileType.CRAM, FileType.UBAM,
    )  # fmt: skip
    s3 = None
    if layout.s3_uri:
        try:
            s3 = S3Location.parse(layout.s3_uri)
        except ValueError:
            s3 = None
    return CachedFile(
        source=PartSource(summary.kind, summary.store_id, summary.id, name),
        layout=layout,
        validator=files.validator,
        block_size=grid_block_size(layout.part_size, block_size),
        hot_all=name == StoredFile.INDEX,
        hot_ends=aligned and name == StoredFile.SOURCE1,
        s3=s3,
    )
