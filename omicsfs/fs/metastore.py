"""Metadata of ACTIVE read sets and references, persisted under ``--cache-dir``.

They are immutable once ACTIVE, so a remount answers ``stat`` for every object it already knows
without a single GetReadSetMetadata call. Each row carries the validator (creation time plus etag
or MD5) from the listing it was fetched under; a row whose validator no longer matches the
listing is ignored and refetched. It is a cache: any damage is answered by starting it afresh.

Beside the file layouts it keeps each reference's contigs with their MD5s (fs/contigs.py): a
reference's whole FASTA is read to compute them, so a remount must not do it again.

Two layouts, one interface:

- ``MetadataStore``: one SQLite file, for a cache dir one mount uses at a time. SQLite's locking
  relies on POSIX advisory locks, which NFS implements unreliably or not at all, and a database
  shared over NFS can be corrupted (https://www.sqlite.org/faq.html#q5), so it is never used
  for a shared cache dir.
- ``SharedMetadataStore`` (``--cache-dir-shared``): one immutable JSON file per object version,
  ``metadata/<kind>/<object id>/<validator digest>.json``, written to a temporary name and
  renamed, so many mounts on many hosts read and write it at once with no lock: a file is
  whole or absent, and two mounts writing the same version write the same bytes. Contigs
  likewise: ``contigs/<reference id>/<validator digest>.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
from pathlib import Path

from omicsfs.backend.models import ObjectFiles, ObjectKind
from omicsfs.fs.fasta import ReferenceDigests

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
        db.execute(
            "CREATE TABLE IF NOT EXISTS contigs (reference_id TEXT PRIMARY KEY, validator TEXT, doc TEXT)"
        )
        db.execute("SELECT count(*) FROM objects").fetchone()
        db.execute("SELECT count(*) FROM contigs").fetchone()
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

    def get_contigs(self, reference_id: str, validator: str) -> ReferenceDigests | None:
        """The contigs and MD5s of one reference version, if computed before."""
        if self._db is None:
            return None
        row = self._db.execute(
            "SELECT doc FROM contigs WHERE reference_id = ? AND validator = ?", (reference_id, validator)
        ).fetchone()
        if row is None:
            return None
        try:
            return ReferenceDigests.from_json(row[0])
        except (ValueError, KeyError, TypeError):
            return None

    def put_contigs(self, reference_id: str, validator: str, digests: ReferenceDigests) -> None:
        if self._db is None:
            return
        self._db.execute(
            "INSERT OR REPLACE INTO contigs VALUES (?, ?, ?)", (reference_id, validator, digests.to_json())
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

    def path(self, kind: str, object_id: str, validator: str) -> Path:
        digest = hashlib.sha256(validator.encode()).hexdigest()[:16]
        return self.root / kind / object_id / f"{digest}.json"

    def get(self, kind: ObjectKind, object_id: str, validator: str) -> ObjectFiles | None:
        path = self.path(str(kind), object_id, validator)
        text = self._read(path)
        try:
            files = ObjectFiles.from_json(text) if text is not None else None
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("metadata cache file of %s %s is damaged (%s); fetching it again",
                        kind, object_id, exc)  # fmt: skip
            path.unlink(missing_ok=True)  # writes are whole or absent: this is damage on disk
            return None
        return files if files is not None and files.validator == validator else None  # else: not ours

    def put(self, kind: ObjectKind, object_id: str, files: ObjectFiles) -> None:
        document = {"kind": str(kind), "id": object_id, **json.loads(files.to_json())}
        self._write(self.path(str(kind), object_id, files.validator), json.dumps(document))

    def get_contigs(self, reference_id: str, validator: str) -> ReferenceDigests | None:
        path = self.path("contigs", reference_id, validator)
        text = self._read(path)
        if text is None:
            return None
        try:
            document = json.loads(text)
            if document.get("validator") != validator:
                return None
            return ReferenceDigests.from_json(document["digests"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("contig cache file of reference %s is damaged (%s); computing it again",
                        reference_id, exc)  # fmt: skip
            path.unlink(missing_ok=True)
            return None

    def put_contigs(self, reference_id: str, validator: str, digests: ReferenceDigests) -> None:
        document = {"id": reference_id, "validator": validator, "digests": digests.to_json()}
        self._write(self.path("contigs", reference_id, validator), json.dumps(document))

    @staticmethod
    def _read(path: Path) -> str | None:
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("metadata cache file %s cannot be read (%s)", path, exc)
            return None

    @staticmethod
    def _write(path: Path, text: str) -> None:
        """Temporary name, then rename: whole or absent. An existing file is never rewritten
        (immutable: whoever wrote it wrote these bytes)."""
        if path.exists():
            return
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{id(text)}.tmp")
        try:
            for folder in (path.parent.parent, path.parent):  # each level private (mkdir -p is not)
                folder.mkdir(exist_ok=True, mode=0o700)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.warning("could not keep %s in the shared metadata cache (%s)", path, exc)
