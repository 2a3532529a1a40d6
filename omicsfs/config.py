"""Every tunable of a mount in one place, each default with its reason.

This is the one home of every default: the command line (omicsfs/cli/) reads its defaults from
these dataclasses, the demo builds a ``MountConfig()`` directly, and the layers below take the
sections they need. It imports nothing else from omicsfs, so every layer may depend on it.
The reasons cite docs/architecture.md, where the lessons behind them are written out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff for every HealthOmics call (docs/architecture.md, "Retries").

    About ten attempts with doubling delays follows Mountpoint (10) and dxfuse (3, raised to 10).
    """

    #: Attempts on throttling, 5xx and broken bodies before a request fails with EIO.
    attempts: int = 10
    #: First backoff delay in seconds; it doubles per attempt, with full jitter.
    base_delay: float = 0.1
    #: Longest single backoff: long enough to ride out a throttling burst, short enough that a
    #: reader is not left waiting minutes for one part.
    max_delay: float = 20.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("at least one attempt is needed (--retries 1 means no retries)")
        if not 0 <= self.base_delay <= self.max_delay:
            raise ValueError("the retry delay must be between 0 and the longest backoff")


@dataclass(frozen=True)
class BackendLimits:
    """Concurrency and pacing of calls. Defaults are the real service's published quotas
    (https://docs.aws.amazon.com/omics/latest/dev/service-quotas.html)."""

    #: Metadata and list calls per second (the quota is 5 per second per account). The quotas
    #: are the account's, not a mount's: N mounts should each take 1/N of them
    #: (``--metadata-tps``, ``--get-read-set-tps``, ``--get-reference-tps``; README.md,
    #: "Running on a cluster"), or throttling and backoff pace them instead.
    metadata_tps: float = 5.0
    get_read_set_tps: float = 30.0
    get_reference_tps: float = 10.0
    #: Create, Complete and Abort of a multipart upload: the quota is 1 per second each, not
    #: adjustable; pacing 10% under it absorbs the jitter between sending and arriving, which
    #: at exactly 1.0 got 9 of 50 back-to-back creates throttled.
    upload_control_tps: float = 0.9
    upload_part_tps: float = 10.0
    #: Worker threads for control-plane calls (lists, metadata, jobs, upload control).
    control_threads: int = 8
    #: Part bodies open at once; each pins one pooled HTTP connection for its whole life.
    data_streams: int = 16
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        rates = (self.metadata_tps, self.get_read_set_tps, self.get_reference_tps,
                 self.upload_control_tps, self.upload_part_tps)  # fmt: skip
        if not all(rate > 0 for rate in rates):
            raise ValueError("rate limits must be positive")
        if self.control_threads < 1 or self.data_streams < 1:
            raise ValueError("at least one control thread and one data stream are needed")


@dataclass(frozen=True)
class CacheConfig:
    #: Bytes of part data held in memory. Read-ahead and the hot set live inside this budget.
    memory_bytes: int = 1 * GiB
    #: Unit of the memory cache: a part (100 MiB on AWS) is streamed in and kept as blocks of this
    #: size, so a small read never waits for a whole part and eviction is fine-grained.
    block_size: int = 1 * MiB
    #: Share of the memory budget reserved for index files and the first and last blocks of
    #: BAM/CRAM files, which htslib reads on every open (docs/architecture.md, "Hot set").
    hot_fraction: float = 0.125
    #: Optional disk tier: parts kept on disk (0700) keyed by object ID and version.
    disk_dir: Path | None = None
    #: Cap of the disk tier; least recently used parts go first.
    disk_bytes: int = 20 * GiB
    #: Other mounts, on this host or others, use the same ``--cache-dir`` (``--cache-dir-shared``;
    #: README.md, "Running on a cluster"): the cap is enforced cooperatively, metadata is kept as
    #: one immutable file per object version, and parts missed at once are fetched by one mount.
    shared: bool = False
    #: Shared: an entry read or written within this many seconds is never evicted, whichever
    #: mount evicts. Long enough that no mount loses an entry between two reads of a job's
    #: index and region blocks; the cap may be exceeded by what all mounts fetch within it.
    shared_grace: float = 600.0
    #: Shared: a part lease whose holder stopped renewing it (the mount died) expires after this
    #: long; the holder renews it every third of it. Far above NFS clock skew under NTP.
    lease_ttl: float = 30.0

    def __post_init__(self) -> None:
        if self.memory_bytes < self.block_size:
            raise ValueError(f"the memory cache must hold at least one {self.block_size >> 10} KiB block")
        if self.disk_bytes <= 0:
            raise ValueError("the disk cache size must be positive")
        if self.shared and self.disk_dir is None:
            raise ValueError("--cache-dir-shared needs --cache-dir")
        if not self.shared_grace >= 0 or not self.lease_ttl > 0:
            raise ValueError("the grace period must be >= 0 and the lease TTL positive")


class DataPlane(StrEnum):
    """Where file bytes come from (``--data-plane``; docs/architecture.md, "Two data planes")."""

    #: Ranged GETs through the store's S3 access point where it answers, parts elsewhere.
    AUTO = "auto"
    #: GetReadSet/GetReference parts only; S3 is never touched.
    PARTS = "parts"
    #: Ranged GETs wherever a file has an S3 URI (still falling back to parts when they fail).
    S3 = "s3"


@dataclass(frozen=True)
class ReadAheadConfig:
    #: Parts fetched ahead of a sequential reader grow 1 -> 2 -> 4 -> 8 (dxfuse doubling, capped).
    #: Each part is one connection whose rate the client cannot raise, so depth is speed: with
    #: 100 MiB/s per connection a cold ``dd`` went from 333 to 489-515 MB/s and ``cp`` from
    #: 209-218 to 256-360 MB/s going from 4 to 8 (benchmarks/cold_read.py, README "Measured");
    #: the Transfer Manager keeps all of a read set's parts in flight.
    max_depth: int = 8
    #: Share of the memory cache that read-ahead may reserve across all open files: three
    #: quarters, so a 1 GiB cache lets one stream have 7 parts of 100 MiB ahead. The rest (the hot
    #: set's eighth and an eighth of blocks already read) is what the LRU evicts first, so
    #: prefetched parts are not evicted before their readers get to them (docs/architecture.md,
    #: "Read-ahead").
    budget_fraction: float = 0.75
    #: Streams allowed to prefetch at once (dxfuse allows 10).
    max_streams: int = 8
    #: A sequential reader's depth doubles each time it reads this much more in order (or a
    #: quarter part, if parts are smaller): four parts are in flight after 16 MiB, where a real
    #: region's 100 MiB parts, one connection each, are what sets a reader's speed.
    growth_bytes: int = 8 * MiB
    #: S3 plane: the largest read-ahead window of one stream (Mountpoint grows to 2 GiB per file
    #: handle, which is how it runs out of memory with many files; one memory budget caps it here).
    s3_max_window: int = 64 * MiB
    #: S3 plane: bytes per ranged GET. Mountpoint found 8 MiB the largest that still reaches
    #: full throughput; a wider window is several GETs in flight.
    s3_request_bytes: int = 8 * MiB


@dataclass(frozen=True)
class KernelCacheConfig:
    """Kernel cache timeouts. None is ever zero where it could cause a storm: a zero TTL makes
    the kernel re-look-up every entry on every access (docs/architecture.md, "Kernel caching")."""

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
    #: Attributes of a file being written change with every write: the kernel keeps them briefly.
    writing_timeout: float = 1.0


@dataclass(frozen=True)
class WriteConfig:
    """``--read-write`` and its options (omicsfs/fs/write/)."""

    enabled: bool = False
    allow_delete: bool = False
    #: The service's maximum part size (100 MiB), so a file needs the fewest calls.
    part_size: int = 100 * MiB
    #: Parts uploading at once across all files (dxfuse: 4 in parallel).
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
    """What the filesystem serves and how; the daemon's own settings are in DaemonConfig."""

    #: Seconds a listing is cached: new and deleted read sets appear within it. Never 0: a TTL
    #: of 0 would list the store on every access (docs/architecture.md, "Listings").
    listing_ttl: float = 30.0
    #: Owner of every file; the command line fills in the mounting user.
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
    data_plane: DataPlane = DataPlane.AUTO
    #: ``--manifest``: serve exactly the objects of this manifest file (fs/manifest.py), with no
    #: list or metadata call at mount time or while serving; only data calls.
    manifest: Path | None = None

    def __post_init__(self) -> None:
        if not self.listing_ttl > 0:
            raise ValueError(
                "--listing-ttl must be positive (a TTL of 0 would list the store on every access)"
            )
        if self.manifest is not None and self.writes.enabled:
            raise ValueError("--manifest mounts are read-only (--read-write cannot be used with it)")
        if self.manifest is not None and (self.sequence_store_ids or self.reference_store_ids):
            raise ValueError("--manifest chooses the stores: no --sequence-store/--reference-store with it")

    @property
    def read_ahead_budget(self) -> int:
        """Bytes of read-ahead shared by all streams: a fixed share of the memory cache."""
        return int(self.cache.memory_bytes * self.read_ahead.budget_fraction)


@dataclass(frozen=True)
class DaemonConfig:
    """How the daemon runs, logs and mounts: options of the process, not of the filesystem."""

    #: INFO shows the explanations users need (archived read sets, refused names, uploads).
    log_level: str = "INFO"
    #: Where a detached daemon logs; None: syslog, or a file under the XDG state dir without it.
    log_file: Path | None = None
    allow_other: bool = False
    foreground: bool = False


def default_of(cls: type[Any], name: str) -> Any:
    """The default of dataclass field ``name``: how the command line learns each default."""
    for item in dataclasses.fields(cls):
        if item.name == name:
            if item.default is not dataclasses.MISSING:
                return item.default
            if item.default_factory is not dataclasses.MISSING:
                return item.default_factory()
    raise KeyError(f"{cls.__name__} has no default for {name}")
