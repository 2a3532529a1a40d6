"""Every tunable of a mount in one place, each default with its reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omicsfs.backend.omics import BackendLimits

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class CacheConfig:
    #: Bytes of part data held in memory. Read-ahead and the hot set live inside this budget.
    memory_bytes: int = 1 * GiB
    #: Unit of the memory cache: a part (100 MiB on AWS) is streamed in and kept as blocks of this
    #: size, so a small read never waits for a whole part and eviction is fine-grained.
    block_size: int = 1 * MiB
    #: Share of the memory budget reserved for index files and the first and last blocks of
    #: BAM/CRAM files, which htslib reads on every open (fuse-anchors.md A9).
    hot_fraction: float = 0.125
    #: Optional disk tier: parts kept on disk (0700) keyed by object ID and etag.
    disk_dir: Path | None = None
    disk_bytes: int = 20 * GiB


@dataclass(frozen=True)
class ReadAheadConfig:
    #: Parts fetched ahead of a sequential reader grow 1 -> 2 -> 4 (dxfuse doubling, capped).
    max_depth: int = 4
    #: Bytes of read-ahead reserved across all open files; at most half the memory cache, so
    #: prefetched parts are not evicted before the reader gets to them (fuse-anchors.md A5).
    budget_bytes: int = 512 * MiB
    #: Streams allowed to prefetch at once (dxfuse allows 10).
    max_streams: int = 8


@dataclass(frozen=True)
class KernelCacheConfig:
    """Kernel cache timeouts. None is ever zero: a zero TTL makes the kernel re-look-up every
    entry on every access (Mountpoint fs/config.rs; fuse-anchors.md A7)."""

    #: ACTIVE read sets and references never change, so their entries and attributes are kept
    #: long; deletions are pushed to the kernel with explicit invalidations.
    immutable_timeout: float = 3600.0
    #: Attributes readdir gives before a read set's metadata (and so its size) is known. They
    #: are placeholders, so they must not be cached at all: the next stat asks omicsfs, which
    #: fetches the real size once and from then on answers with ``immutable_timeout``. This is
    #: the one zero, and it is not the storm the rule above guards against: the entry itself is
    #: cached for ``immutable_timeout`` (no re-lookups), and a fresh stat costs no API call once
    #: the metadata is known. Any positive value lets ``ls -l`` show size 0, because it stats
    #: every entry within microseconds of the readdir (pyfuse3 always answers readdir with
    #: attributes, READDIRPLUS).
    placeholder_attr_timeout: float = 0.0


@dataclass(frozen=True)
class WriteConfig:
    """``--read-write`` and its options (omicsfs/write/)."""

    enabled: bool = False
    allow_delete: bool = False
    #: The service's maximum part size (100 MiB, research/healthomics-ecosystem.md §2.4).
    part_size: int = 100 * MiB
    #: Parts uploading at once across all files (dxfuse: 4 in parallel, fuse-anchors.md D1).
    parts_in_flight: int = 4
    #: How long a closed ``_1`` mate waits for its ``_2`` before it is completed single-end.
    pair_timeout: float = 60.0
    sample_id: str | None = None
    subject_id: str | None = None
    reference_arn: str | None = None
    generated_from: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        if not 0 < self.part_size <= 100 * MiB:
            raise ValueError("the part size must be between 1 byte and 100 MiB (the service's limit)")
        if self.parts_in_flight < 1:
            raise ValueError("at least one part must be allowed in flight")
        if self.pair_timeout <= 0:
            raise ValueError("the pair timeout must be positive")


@dataclass(frozen=True)
class MountConfig:
    listing_ttl: float = 30.0
    uid: int = 0
    gid: int = 0
    sequence_store_ids: tuple[str, ...] = ()
    reference_store_ids: tuple[str, ...] = ()
    cache: CacheConfig = field(default_factory=CacheConfig)
    read_ahead: ReadAheadConfig = field(default_factory=ReadAheadConfig)
    kernel: KernelCacheConfig = field(default_factory=KernelCacheConfig)
    limits: BackendLimits = field(default_factory=BackendLimits)
    #: Where read set and reference metadata is persisted (``--cache-dir``); None keeps it in memory.
    metadata_dir: Path | None = None
    writes: WriteConfig = field(default_factory=WriteConfig)

    def __post_init__(self) -> None:
        if self.listing_ttl <= 0:
            raise ValueError("the listing TTL must be positive (a TTL of 0 would list on every access)")
