"""Durable state of the local service: one SQLite database in the data dir.

Each resource is a row holding its API document as JSON plus the few columns the service looks
rows up by. The documents are the service's own response shapes, so an operation is mostly
"load, filter, return".

Only the event-loop thread touches the connection (background work runs pure functions in
threads and hands results back), so every operation's reads and writes are atomic with respect
to other requests without locks. WAL mode with ``synchronous=NORMAL`` keeps committed rows across
a killed process; a crash can lose at most the last transaction, never corrupt an earlier one.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL,           -- sequenceStore, referenceStore, readSet, reference, upload,
                                  -- importJob, exportJob, activationJob, referenceImportJob
    id TEXT NOT NULL,
    parent TEXT,                  -- the store the resource belongs to
    created TEXT NOT NULL,        -- ISO-8601, the sort key of every listing
    doc TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS resources_by_parent ON resources (kind, parent, created, id);
CREATE TABLE IF NOT EXISTS upload_parts (
    upload_id TEXT NOT NULL,
    source TEXT NOT NULL,
    number INTEGER NOT NULL,
    size INTEGER NOT NULL,
    checksum TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    PRIMARY KEY (upload_id, source, number)
);
CREATE TABLE IF NOT EXISTS tags (arn TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS s3_policies (access_point_arn TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (
    operation TEXT NOT NULL,
    token TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response TEXT NOT NULL,
    PRIMARY KEY (operation, token)
);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class State:
    """Typed access to the service's SQLite database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self._depth = 0

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Groups writes; nested uses join the outermost transaction."""
        if self._depth == 0:
            self.db.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self.db.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self.db.execute("COMMIT")

    # -- resources -------------------------------------------------------------------------

    def get(self, kind: str, ident: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT doc FROM resources WHERE kind = ? AND id = ?", (kind, ident)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def exists(self, kind: str, ident: str) -> bool:
        row = self.db.execute("SELECT 1 FROM resources WHERE kind = ? AND id = ?", (kind, ident)).fetchone()
        return row is not None

    def put(self, kind: str, ident: str, doc: dict[str, Any], parent: str | None = None) -> None:
        """Inserts or replaces a resource; ``doc['creationTime']`` is its listing order."""
        created = str(doc.get("creationTime", ""))
        self.db.execute(
            "INSERT INTO resources (kind, id, parent, created, doc) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (kind, id) DO UPDATE SET doc = excluded.doc, parent = excluded.parent",
            (kind, ident, parent, created, json.dumps(doc)),
        )

    def delete(self, kind: str, ident: str) -> None:
        self.db.execute("DELETE FROM resources WHERE kind = ? AND id = ?", (kind, ident))

    def docs(self, kind: str, parent: str | None = None) -> list[dict[str, Any]]:
        """All resources of a kind (in one store), oldest first, ties broken by ID."""
        if parent is None:
            rows = self.db.execute("SELECT doc FROM resources WHERE kind = ? ORDER BY created, id", (kind,))
        else:
            rows = self.db.execute(
                "SELECT doc FROM resources WHERE kind = ? AND parent = ? ORDER BY created, id",
                (kind, parent),
            )
        return [dict(json.loads(doc)) for (doc,) in rows]

    def count(self, kind: str, parent: str) -> int:
        row = self.db.execute(
            "SELECT COUNT(*) FROM resources WHERE kind = ? AND parent = ?", (kind, parent)
        ).fetchone()
        return int(row[0])

    def new_id(self, kind: str) -> str:
        """A fresh 10-digit numeric ID, unique for its kind (the real service's format)."""
        while True:
            ident = str(1_000_000_000 + secrets.randbelow(9_000_000_000))
            if not self.exists(kind, ident):
                return ident

    # -- upload parts ----------------------------------------------------------------------

    def put_part(self, upload_id: str, source: str, number: int, size: int, checksum: str, now: str) -> None:
        self.db.execute(
            "INSERT INTO upload_parts VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (upload_id, source, number) DO UPDATE SET "
            "size = excluded.size, checksum = excluded.checksum, updated = excluded.updated",
            (upload_id, source, number, size, checksum, now, now),
        )

    def parts(self, upload_id: str, source: str | None = None) -> list[dict[str, Any]]:
        query = (
            "SELECT source, number, size, checksum, created, updated FROM upload_parts WHERE upload_id = ?"
        )
        args: tuple[Any, ...] = (upload_id,)
        if source is not None:
            query += " AND source = ?"
            args += (source,)
        rows = self.db.execute(query + " ORDER BY source, number", args)
        return [
            {
                "partSource": s,
                "partNumber": n,
                "partSize": size,
                "checksum": c,
                "creationTime": created,
                "lastUpdatedTime": updated,
            }
            for s, n, size, c, created, updated in rows
        ]

    def delete_parts(self, upload_id: str) -> None:
        self.db.execute("DELETE FROM upload_parts WHERE upload_id = ?", (upload_id,))

    # -- tags, policies, idempotency, settings ----------------------------------------------

    def tags(self, arn: str) -> dict[str, str]:
        row = self.db.execute("SELECT doc FROM tags WHERE arn = ?", (arn,)).fetchone()
        return {} if row is None else dict(json.loads(row[0]))

    def set_tags(self, arn: str, tags: dict[str, str]) -> None:
        if tags:
            self.db.execute(
                "INSERT INTO tags VALUES (?, ?) ON CONFLICT (arn) DO UPDATE SET doc = excluded.doc",
                (arn, json.dumps(tags)),
            )
        else:
            self.db.execute("DELETE FROM tags WHERE arn = ?", (arn,))

    def delete_tags_under(self, arn: str) -> None:
        """Drops the tags of a resource and of everything inside it (a store's read sets)."""
        self.db.execute("DELETE FROM tags WHERE arn = ? OR arn LIKE ?", (arn, arn + "/%"))

    def policy(self, access_point_arn: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT doc FROM s3_policies WHERE access_point_arn = ?", (access_point_arn,)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def set_policy(self, access_point_arn: str, doc: dict[str, Any] | None) -> None:
        if doc is None:
            self.db.execute("DELETE FROM s3_policies WHERE access_point_arn = ?", (access_point_arn,))
        else:
            self.db.execute(
                "INSERT INTO s3_policies VALUES (?, ?) "
                "ON CONFLICT (access_point_arn) DO UPDATE SET doc = excluded.doc",
                (access_point_arn, json.dumps(doc)),
            )

    def idempotent_response(self, operation: str, token: str) -> tuple[str, str] | None:
        row = self.db.execute(
            "SELECT request_hash, response FROM idempotency WHERE operation = ? AND token = ?",
            (operation, token),
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def remember_response(self, operation: str, token: str, request_hash: str, response: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?)",
            (operation, token, request_hash, response),
        )

    def setting(self, key: str, default: str) -> str:
        """A persistent setting, created with ``default`` the first time it is asked for."""
        row = self.db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        if row is not None:
            return str(row[0])
        self.db.execute("INSERT INTO settings VALUES (?, ?)", (key, default))
        return default
