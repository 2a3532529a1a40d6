"""Manifests: exactly the read sets and references a job needs, and all a mount needs to serve them.

A cohort job scattered over a cluster mounts the same stores on every node. Listing them and
fetching every file's metadata on each node costs the account's quota once per node (metadata
and list calls are 5 per second for the whole account), so ``omicsfs manifest`` pays it once and
writes the answers down, and ``omicsfs mount --manifest FILE`` serves exactly those files with
no list or metadata call: only data calls (dxfuse's manifests for batch jobs are the model;
docs/architecture.md, "Lessons from other filesystems").

The file is JSON, versioned (``"format": "omicsfs-manifest", "version": 1``) and described by
``manifest.schema.json`` beside this module (JSON Schema 2020-12; docs/manifest.md documents
every field). A manifest is checked against the schema, then for what a schema cannot say (IDs
unique, part counts that match the sizes), and every failure names the JSON path at fault.

Creation times are kept as the service's epoch seconds, not ISO strings: they are part of each
object's version (``ReadSetSummary.validator``), which keys the cache, and a float survives JSON
unchanged while a rounded ISO string could name another version.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from omicsfs.backend.models import (
    FileLayout,
    ObjectFiles,
    ReadSetSummary,
    ReferenceSummary,
    StoreKind,
    StoreSummary,
)

FORMAT = "omicsfs-manifest"
VERSION = 1


class ManifestError(ValueError):
    """A manifest that cannot be served; the message names the file and the JSON path."""


@dataclass(frozen=True)
class ReadSetEntry:
    summary: ReadSetSummary
    files: ObjectFiles


@dataclass(frozen=True)
class ReferenceEntry:
    summary: ReferenceSummary
    files: ObjectFiles


@dataclass(frozen=True)
class SequenceStoreEntry:
    store: StoreSummary
    read_sets: tuple[ReadSetEntry, ...]


@dataclass(frozen=True)
class ReferenceStoreEntry:
    store: StoreSummary
    references: tuple[ReferenceEntry, ...]


@dataclass(frozen=True)
class Manifest:
    sequence_stores: tuple[SequenceStoreEntry, ...] = ()
    reference_stores: tuple[ReferenceStoreEntry, ...] = ()
    created_at: str = ""
    created_by: str = ""
    #: How the objects were chosen (the ``omicsfs manifest`` flags), for the people reading it.
    selection: dict[str, Any] = field(default_factory=dict, compare=False)

    def stores(self, kind: StoreKind) -> list[StoreSummary]:
        entries = self.sequence_stores if kind is StoreKind.SEQUENCE else self.reference_stores
        return [entry.store for entry in entries]

    def read_sets(self) -> Iterator[ReadSetEntry]:
        for store in self.sequence_stores:
            yield from store.read_sets

    def references(self) -> Iterator[ReferenceEntry]:
        for store in self.reference_stores:
            yield from store.references

    # -- JSON -----------------------------------------------------------------------------------

    def to_document(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "createdAt": self.created_at or now_iso(),
            "createdBy": self.created_by,
            "selection": self.selection,
            "sequenceStores": [
                {**_store_document(entry.store),
                 "readSets": [_read_set_document(rs) for rs in entry.read_sets]}
                for entry in self.sequence_stores
            ],
            "referenceStores": [
                {**_store_document(entry.store),
                 "references": [_reference_document(ref) for ref in entry.references]}
                for entry in self.reference_stores
            ],
        }  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(self.to_document(), indent=2) + "\n"

    @classmethod
    def from_document(cls, document: Any) -> Manifest:
        """The manifest a parsed JSON document describes; ManifestError naming the first problem."""
        ours = isinstance(document, dict) and document.get("format") == FORMAT
        if ours and document.get("version") != VERSION:
            raise ManifestError(
                f"version {document.get('version')!r} is not supported (this omicsfs reads version"
                f" {VERSION}; write the manifest again with this omicsfs)"
            )
        error = jsonschema.exceptions.best_match(_validator().iter_errors(document))
        if error is not None:
            raise ManifestError(f"{_path(error.absolute_path)}: {error.message}")
        manifest = cls(
            sequence_stores=tuple(
                SequenceStoreEntry(
                    _store(raw), tuple(_read_set(item, raw["id"]) for item in raw["readSets"])
                )
                for raw in document["sequenceStores"]
            ),
            reference_stores=tuple(
                ReferenceStoreEntry(
                    _store(raw), tuple(_reference(item, raw["id"]) for item in raw["references"])
                )
                for raw in document["referenceStores"]
            ),
            created_at=document["createdAt"],
            created_by=document.get("createdBy", ""),
            selection=dict(document.get("selection", {})),
        )
        _check_consistency(document)
        return manifest

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(f"manifest {path}: {getattr(exc, 'strerror', None) or exc}") from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"manifest {path} is not JSON: {exc}") from None
        try:
            return cls.from_document(document)
        except ManifestError as exc:
            raise ManifestError(f"manifest {path}: {exc}") from None


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@cache
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(resources.files("omicsfs.fs").joinpath("manifest.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def _path(parts: Any) -> str:
    """``sequenceStores[0].readSets[2].files`` from jsonschema's path deque."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the document"


def _check_consistency(document: dict[str, Any]) -> None:
    """What the schema cannot say: IDs unique, and part counts that match the sizes."""
    for stores_key, objects_key in (("sequenceStores", "readSets"), ("referenceStores", "references")):
        store_ids: set[str] = set()
        object_ids: set[str] = set()
        for s, store in enumerate(document[stores_key]):
            where = f"{stores_key}[{s}]"
            if store["id"] in store_ids:
                raise ManifestError(f"{where}.id: store {store['id']} is listed twice")
            store_ids.add(store["id"])
            for o, item in enumerate(store[objects_key]):
                if item["id"] in object_ids:
                    raise ManifestError(f"{where}.{objects_key}[{o}].id: {item['id']} is listed twice")
                object_ids.add(item["id"])
                for name, layout in item["files"].items():
                    expected = -(-layout["contentLength"] // layout["partSize"])
                    if layout["totalParts"] != expected and not (expected == 0 and layout["totalParts"] == 1):
                        raise ManifestError(
                            f"{where}.{objects_key}[{o}].files.{name}.totalParts: {layout['totalParts']}"
                            f" parts cannot hold {layout['contentLength']} bytes in parts of"
                            f" {layout['partSize']} (expected {expected})"
                        )


# -- to and from the document's shapes (camelCase, as the API names them) -------------------------


def _store_document(store: StoreSummary) -> dict[str, Any]:
    return {"id": store.id, "arn": store.arn, "name": store.name, "creationTime": store.creation_time,
            "description": store.description, "s3Uri": store.s3_uri}  # fmt: skip


def _store(raw: dict[str, Any]) -> StoreSummary:
    return StoreSummary(
        id=raw["id"], arn=raw.get("arn", ""), name=raw["name"], creation_time=float(raw["creationTime"]),
        description=raw.get("description", ""), s3_uri=raw.get("s3Uri", ""),
    )  # fmt: skip


def _files_document(files: ObjectFiles) -> dict[str, Any]:
    return {
        name: {"contentLength": layout.content_length, "partSize": layout.part_size,
               "totalParts": layout.total_parts, "s3Uri": layout.s3_uri}
        for name, layout in sorted(files.files.items())
    }  # fmt: skip


def _files(raw: dict[str, Any], validator: str, status: str) -> ObjectFiles:
    return ObjectFiles(
        validator=validator,
        status=status,
        files={
            name: FileLayout(
                content_length=layout["contentLength"], part_size=layout["partSize"],
                total_parts=layout["totalParts"], s3_uri=layout.get("s3Uri", ""),
            )
            for name, layout in raw.items()
        },
    )


def _read_set_document(entry: ReadSetEntry) -> dict[str, Any]:
    rs = entry.summary
    return {
        "id": rs.id, "arn": rs.arn, "name": rs.name, "status": rs.status, "fileType": rs.file_type,
        "sampleId": rs.sample_id, "subjectId": rs.subject_id, "referenceArn": rs.reference_arn,
        "creationTime": rs.creation_time, "description": rs.description,
        "statusMessage": rs.status_message,
        "etag": {"algorithm": rs.etag_algorithm, "source1": rs.etag_source1, "source2": rs.etag_source2},
        "sequenceInformation": rs.sequence_information,
        "files": _files_document(entry.files),
    }  # fmt: skip


def _read_set(raw: dict[str, Any], store_id: str) -> ReadSetEntry:
    etag = raw.get("etag", {})
    summary = ReadSetSummary(
        id=raw["id"], store_id=store_id, arn=raw.get("arn", ""), name=raw["name"], status=raw["status"],
        file_type=raw["fileType"], sample_id=raw.get("sampleId", ""), subject_id=raw.get("subjectId", ""),
        creation_time=float(raw["creationTime"]), reference_arn=raw.get("referenceArn", ""),
        description=raw.get("description", ""), status_message=raw.get("statusMessage", ""),
        etag_algorithm=etag.get("algorithm", ""), etag_source1=etag.get("source1", ""),
        etag_source2=etag.get("source2", ""),
        sequence_information=dict(raw.get("sequenceInformation", {})),
    )  # fmt: skip
    return ReadSetEntry(summary, _files(raw["files"], summary.validator, summary.status))


def _reference_document(entry: ReferenceEntry) -> dict[str, Any]:
    ref = entry.summary
    return {"id": ref.id, "arn": ref.arn, "name": ref.name, "status": ref.status, "md5": ref.md5,
            "creationTime": ref.creation_time, "description": ref.description,
            "files": _files_document(entry.files)}  # fmt: skip


def _reference(raw: dict[str, Any], store_id: str) -> ReferenceEntry:
    summary = ReferenceSummary(
        id=raw["id"], store_id=store_id, arn=raw.get("arn", ""), name=raw["name"], status=raw["status"],
        md5=raw.get("md5", ""), creation_time=float(raw["creationTime"]),
        description=raw.get("description", ""),
    )  # fmt: skip
    return ReferenceEntry(summary, _files(raw["files"], summary.validator, summary.status))
