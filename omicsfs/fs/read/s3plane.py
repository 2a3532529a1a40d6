"""Which data plane reads a file: ranged GETs through the S3 access point, or parts.

``--data-plane auto`` (the default) asks S3 once per store, with one HeadObject of the first file
opened there; where that works, files are read with ranged GETs, elsewhere with parts. Any S3
failure on a file (AccessDenied, NoSuchKey, retries exhausted) switches that file to parts for
the rest of the mount, logged once and counted, and the read that met it still succeeds through
parts. ``parts`` never touches S3; ``s3`` skips the probe but falls back the same way
(docs/architecture.md, "Two data planes").
"""

from __future__ import annotations

import logging

from omicsfs.backend.errors import BackendError
from omicsfs.backend.s3 import S3Backend
from omicsfs.config import DataPlane
from omicsfs.fs.read.fetch import Plane
from omicsfs.fs.read.files import CachedFile, FileKey
from omicsfs.fs.singleflight import SingleFlight
from omicsfs.fs.stats import Stats

log = logging.getLogger(__name__)


class S3Plane:
    def __init__(self, backend: S3Backend | None, mode: DataPlane, stats: Stats) -> None:
        self.backend = backend
        self.mode = mode if backend is not None else DataPlane.PARTS
        self.stats = stats
        self._stores: dict[str, bool] = {}
        self._probes: SingleFlight[str, bool] = SingleFlight()
        self._parts_only: set[FileKey] = set()

    async def choose(self, file: CachedFile) -> Plane:
        """The plane for a file being opened (probing its store on first use)."""
        if self.mode is DataPlane.PARTS or file.s3 is None or file.key in self._parts_only:
            return Plane.PARTS
        if self.mode is DataPlane.S3:
            return Plane.S3
        store = file.source.store_id
        usable = self._stores.get(store)
        if usable is None:
            usable = await self._probes.run(store, lambda: self._probe(file))
        return Plane.S3 if usable else Plane.PARTS

    async def _probe(self, file: CachedFile) -> bool:
        if self.backend is None or file.s3 is None:
            return False
        try:
            await self.backend.head(file.s3)
        except BackendError as error:
            store = file.source.store_id
            log.info("S3 access of store %s does not answer (%s): reading it through parts", store, error)
            self._stores[file.source.store_id] = False
            return False
        log.info("store %s: reading through its S3 access point", file.source.store_id)
        self._stores[file.source.store_id] = True
        return True

    def reads_s3(self, file: CachedFile) -> bool:
        """Whether misses of this (open) file are fetched with ranged GETs right now."""
        return self.mode is not DataPlane.PARTS and file.s3 is not None and file.key not in self._parts_only

    def fall_back(self, file: CachedFile, error: BaseException) -> None:
        if file.key in self._parts_only:
            return
        self._parts_only.add(file.key)
        self.stats.s3_fallbacks += 1
        log.warning("ranged reads of %s failed (%s): reading it through parts from now on",
                    file.source.describe(), error)  # fmt: skip
