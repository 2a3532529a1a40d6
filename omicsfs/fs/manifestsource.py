"""A manifest as the source of every listing and every file layout a mount needs.

``ManifestBackend`` answers the control plane from the manifest (stores, read sets, references
and their metadata; no jobs) and hands the data plane (part bodies) to the real backend, so the
catalog, the tree and the attributes work unchanged and a ``--manifest`` mount makes no list or
metadata call at mount time or while serving (README.md, "Running on a cluster"). The catalog
still re-reads its listings after ``--listing-ttl``; here that costs nothing.
``ManifestMetadata`` answers the catalog's persisted-metadata lookups from the manifest, so even
the first ``stat`` of a file knows its size and nothing is written under ``--cache-dir``.

Whether an object was deleted or archived since the manifest was written is only learnt from
its data calls: read/confirm.py turns their answers into the errno table's ENOENT and EACCES.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

from omicsfs.backend.errors import InvalidRequest, NotFound
from omicsfs.backend.interface import Backend, PartBody, PartProgress
from omicsfs.backend.models import (
    JobKind,
    JobSummary,
    ObjectFiles,
    ObjectKind,
    PartSource,
    ReadSetSummary,
    ReferenceSummary,
    StoreKind,
    StoreSummary,
    UploadSummary,
)
from omicsfs.backend.stats import BackendStats
from omicsfs.config import MountConfig
from omicsfs.fs.fasta import ReferenceDigests
from omicsfs.fs.manifest import Manifest
from omicsfs.fs.metastore import MetadataStore, SharedMetadataStore

T = TypeVar("T")


class ManifestBackend:
    """The Backend protocol: control plane from the manifest, data plane from ``data``."""

    def __init__(self, manifest: Manifest, data: Backend) -> None:
        self.manifest = manifest
        self.data = data
        self.stats: BackendStats = data.stats
        self.data_streams: trio.Semaphore = data.data_streams
        self._stores = {kind: {s.id: s for s in manifest.stores(kind)} for kind in StoreKind}
        self._read_sets: dict[str, dict[str, tuple[ReadSetSummary, ObjectFiles]]] = {
            entry.store.id: {rs.summary.id: (rs.summary, rs.files) for rs in entry.read_sets}
            for entry in manifest.sequence_stores
        }
        self._references: dict[str, dict[str, tuple[ReferenceSummary, ObjectFiles]]] = {
            entry.store.id: {ref.summary.id: (ref.summary, ref.files) for ref in entry.references}
            for entry in manifest.reference_stores
        }

    async def retrying(self, operation: str, attempt_once: Callable[[], Awaitable[T]]) -> T:
        return await self.data.retrying(operation, attempt_once)

    # -- the control plane, from the manifest ---------------------------------------------------

    async def list_stores(self, kind: StoreKind) -> list[StoreSummary]:
        return list(self._stores[kind].values())

    async def get_store(self, kind: StoreKind, store_id: str) -> StoreSummary:
        store = self._stores[kind].get(store_id)
        if store is None:
            raise NotFound(f"Get{kind.title()}Store", f"store {store_id} is not in the manifest")
        return store

    async def list_read_sets(self, store_id: str) -> list[ReadSetSummary]:
        return [summary for summary, _ in self._read_sets.get(store_id, {}).values()]

    async def get_read_set_metadata(
        self, store_id: str, read_set_id: str
    ) -> tuple[ReadSetSummary, ObjectFiles]:
        found = self._read_sets.get(store_id, {}).get(read_set_id)
        if found is None:
            raise NotFound("GetReadSetMetadata", f"read set {read_set_id} is not in the manifest")
        return found

    async def list_references(self, store_id: str) -> list[ReferenceSummary]:
        return [summary for summary, _ in self._references.get(store_id, {}).values()]

    async def get_reference_metadata(
        self, store_id: str, reference_id: str
    ) -> tuple[ReferenceSummary, ObjectFiles]:
        found = self._references.get(store_id, {}).get(reference_id)
        if found is None:
            raise NotFound("GetReferenceMetadata", f"reference {reference_id} is not in the manifest")
        return found

    async def list_jobs(self, store_kind: StoreKind, store_id: str, kind: JobKind) -> list[JobSummary]:
        return []  # jobs are not part of a manifest: the .jobs folders are empty

    async def get_job(
        self, store_kind: StoreKind, store_id: str, kind: JobKind, job_id: str
    ) -> dict[str, Any]:
        raise NotFound("GetJob", f"job {job_id} is not in the manifest")

    # -- the data plane, from the service -------------------------------------------------------

    async def open_part(self, source: PartSource, part_number: int) -> PartBody:
        return await self.data.open_part(source, part_number)

    # -- a manifest mount is read-only ----------------------------------------------------------

    def _read_only(self, operation: str) -> InvalidRequest:
        return InvalidRequest(operation, "a --manifest mount is read-only")

    async def create_upload(self, store_id: str, fields: dict[str, Any]) -> str:
        raise self._read_only("CreateMultipartReadSetUpload")

    async def upload_part(
        self, store_id: str, upload_id: str, source: str, number: int, payload: bytes,
        progress: PartProgress | None = None,
    ) -> str:  # fmt: skip
        raise self._read_only("UploadReadSetPart")

    async def complete_upload(self, store_id: str, upload_id: str, parts: list[dict[str, Any]]) -> str:
        raise self._read_only("CompleteMultipartReadSetUpload")

    async def abort_upload(self, store_id: str, upload_id: str) -> None:
        raise self._read_only("AbortMultipartReadSetUpload")

    async def list_uploads(self, store_id: str) -> list[UploadSummary]:
        return []

    async def find_read_sets(self, store_id: str, name: str) -> list[ReadSetSummary]:
        """Only a Complete of this mount's own writes asks, and a manifest mount writes none."""
        return []

    async def list_tags(self, arn: str) -> dict[str, str]:
        raise self._read_only("ListTagsForResource")

    async def delete_read_set(self, store_id: str, read_set_id: str) -> None:
        raise self._read_only("BatchDeleteReadSet")


class ManifestMetadata(MetadataStore):
    """The catalog's persisted metadata: file layouts from the manifest (nothing is stored);
    what a manifest does not hold (a reference's contig MD5s, computed from its FASTA) is kept
    in ``inner``, the cache dir's own store."""

    def __init__(self, manifest: Manifest, inner: MetadataStore | None = None) -> None:
        super().__init__(None)
        self.inner = inner or MetadataStore(None)
        self._files: dict[tuple[ObjectKind, str], ObjectFiles] = {}
        for rs in manifest.read_sets():
            self._files[(ObjectKind.READ_SET, rs.summary.id)] = rs.files
        for ref in manifest.references():
            self._files[(ObjectKind.REFERENCE, ref.summary.id)] = ref.files

    def get(self, kind: ObjectKind, object_id: str, validator: str) -> ObjectFiles | None:
        files = self._files.get((kind, object_id))
        return files if files is not None and files.validator == validator else None

    def put(self, kind: ObjectKind, object_id: str, files: ObjectFiles) -> None:
        return  # the manifest already holds it

    def get_contigs(self, reference_id: str, validator: str) -> ReferenceDigests | None:
        return self.inner.get_contigs(reference_id, validator)

    def put_contigs(self, reference_id: str, validator: str, digests: ReferenceDigests) -> None:
        self.inner.put_contigs(reference_id, validator, digests)

    def close(self) -> None:
        self.inner.close()


def control_sources(config: MountConfig, backend: Backend) -> tuple[Backend, MetadataStore]:
    """Where the mount's listings and metadata come from: the manifest (``--manifest``), else
    the service, with metadata persisted per host (SQLite) or for a shared cache dir as files."""
    if config.cache.shared and config.metadata_dir is not None:
        store: MetadataStore = SharedMetadataStore(config.metadata_dir)
    else:
        store = MetadataStore(config.metadata_dir)
    if config.manifest is not None:
        manifest = Manifest.load(config.manifest)
        return ManifestBackend(manifest, backend), ManifestMetadata(manifest, store)
    return backend, store
