"""Metadata of ACTIVE read sets and references, persisted under ``--cache-dir``.

They are immutable once ACTIVE, so a remount answers ``stat`` for every object it already knows
without a single GetReadSetMetadata call. Each row carries the validator (creation time plus etag
or MD5) from the listing it was fetched under; a row whose validator no longer matches the
listing is ignored and refetched. It is a cache: any damage is answered by starting it afresh.

Two layouts, one interface:

- ``MetadataStore``: one SQLite file, for a cache dir one mount uses at a time. SQLite's locking
  relies on POSIX advisory locks, which NFS implements unreliably or not at all, and a database
  shared over NFS can be corrupted (https://www.sqlite.org/faq.html#q5), so it is never used
  for a shared cache dir.
- ``SharedMetadataStore`` (``--cache-dir-shared``): one immutable JSON file per object version,
  ``metadata/<kind>/<object id>/<validator digest>.json``, written to a temporary name and
  renamed, so many mounts on many hosts read and write it at once with no lock: a file is
  whole or absent, and two mounts writing the same version write the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
from pathlib import Path

from omicsfs.backend.models import ObjectFiles, ObjectKind

log = logging.getLogger(__name__)


class MetadataStore:
    def __init__(self, folder: Path | None) -> None:
        self._db: sqlite3.Connection | None = None
        if folder is None:
            return
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / "metadata.sqlite3"
        try:
            self._db = self._open(path)
        except sqlite3.DatabaseError:
            log.warning("metadata cache %s is damaged; starting a new one", path)
            path.unlink(missing_ok=True)
            self._db = self._open(path)

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        # Private from the start (names, sample IDs and ARNs): SQLite would create it 0644, and
        # gives its -wal and -shm files the database's own mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # A cache: losing the last rows in a power cut only costs a refetch, so no fsync per row.
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        db.execute(
            "CREATE TABLE IF NOT EXISTS objects (kind TEXT, id TEXT, validator TEXT, doc TEXT,"
            " PRIMARY KEY (kind, id))"
        )
        db.execute("SELECT count(*) FROM objects").fetchone()
        return db

    def get(self, kind: ObjectKind, object_id: str, validator: str) -> ObjectFiles | None:
        if self._db is None:
            return None
        row = self._db.execute(
            "SELECT doc FROM objects WHERE kind = ? AND id = ? AND validator = ?",
            (str(kind), object_id, validator),
        ).fetchone()
        if row is None:
            return None
        try:
            return ObjectFiles.from_json(row[0])
        except (ValueError, KeyError, TypeError):
            return None

    def put(self, kind: ObjectKind, object_id: str, files: ObjectFiles) -> None:
        if self._db is None:
            return
        self._db.execute(
            "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)",
            (str(kind), object_id, files.validator, files.to_json()),
        )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class SharedMetadataStore(MetadataStore):
    """One immutable JSON file per object version under ``<folder>/metadata`` (NFS-safe)."""

    def __init__(self, folder: Path) -> None:
        super().__init__(None)
        self.root = folder / "metadata"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path(self, kind: ObjectKind, object_id: str, validator: str) -> Path:
        digest = hashlib.sha256(validator.encode()).hexdigest()[:16]
        return self.root / str(kind) / object_id / f"{digest}.json"

    def get(self, kind: ObjectKind, object_id: str, validator: str) -> ObjectFiles | None:
        path = self.path(kind, object_id, validator)
        try:
            files = ObjectFiles.from_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("metadata cache file %s is damaged (%s); fetching it again", path, exc)
            return None
        return files if files.validator == validator else None  # a digest collision: not ours

    def put(self, kind: ObjectKind, object_id: str, files: ObjectFiles) -> None:
        path = self.path(kind, object_id, files.validator)
        if path.exists():
            return  # immutable: whoever wrote it wrote these bytes
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{id(files)}.tmp")
        try:
            for folder in (path.parent.parent, path.parent):  # each level private (mkdir -p is not)
                folder.mkdir(exist_ok=True, mode=0o700)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json.dumps({"kind": str(kind), "id": object_id, **json.loads(files.to_json())}))
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.warning("could not keep the metadata of %s %s in %s (%s)", kind, object_id, path, exc)
