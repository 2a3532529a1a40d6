"""The S3 view of the sequence stores: buckets are access point aliases, objects are read set files.

A store's ``s3Access.s3Uri`` is ``s3://<alias>/<account>/sequenceStore/<id>/``; each file of an
ACTIVE read set is the object its own ``files.<f>.s3Access.s3Uri`` names. Keys are never derived
from IDs here: an object exists exactly when some read set's metadata carries its URI, so the S3
plane and GetReadSetMetadata cannot disagree. Files of read sets that are not ACTIVE are not
listed and not readable ("HealthOmics doesn't support Amazon S3 URI access to archived read
sets", https://docs.aws.amazon.com/omics/latest/dev/s3-access.html).

Each object's ETag and Last-Modified are fixed when the read set is ingested (``object_version``)
and kept in the read set's private ``_s3Objects`` member, so they change only when the stored
bytes do.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omicsfs.localservice.context import Service
from omicsfs.localservice.protocol import parse_timestamp
from omicsfs.localservice.s3.errors import NoSuchBucket

READ_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class Bucket:
    """One store's access point, addressed by its alias."""

    name: str
    store: dict[str, Any]
    prefix: str  # "<account>/sequenceStore/<id>/"
    access_point_arn: str


@dataclass(frozen=True)
class S3Object:
    key: str
    read_set: dict[str, Any]
    file: str  # source1, source2 or index
    path: Path
    size: int
    etag: str  # quoted, as on the wire
    last_modified: dt.datetime

    @property
    def reachable(self) -> bool:
        return self.read_set.get("status") == "ACTIVE"


def object_etag(path: Path, part_size: int) -> str:
    """S3's ETag for an object written in ``part_size`` parts: the MD5 of a one-part object, else
    the MD5 of the parts' MD5s followed by ``-<parts>``, which is what the real access point
    shows ("…-3" for a 225 MB file, i.e. 100 MiB parts). Quoted, as S3 sends it."""
    digests: list[bytes] = []
    with open(path, "rb") as handle:
        while True:
            part, got = hashlib.md5(), 0
            while got < part_size:
                chunk = handle.read(min(READ_CHUNK, part_size - got))
                if not chunk:
                    break
                part.update(chunk)
                got += len(chunk)
            if got == 0 and digests:
                break
            digests.append(part.digest())
            if got < part_size:
                break
    if len(digests) == 1:
        return f'"{digests[0].hex()}"'
    return f'"{hashlib.md5(b"".join(digests)).hexdigest()}-{len(digests)}"'


def object_version(path: Path, part_size: int, when: str) -> dict[str, str]:
    """What ``_s3Objects.<file>`` records for a stored file: its ETag and when it was written."""
    return {"etag": object_etag(path, part_size), "lastModified": when}


def alias_of(store: dict[str, Any]) -> str:
    return str(store["s3Access"]["s3Uri"]).removeprefix("s3://").split("/", 1)[0]


def find_bucket(svc: Service, name: str) -> Bucket:
    for store in svc.state.docs("sequenceStore"):
        if alias_of(store) == name:
            access = store["s3Access"]
            prefix = str(access["s3Uri"]).removeprefix(f"s3://{name}/")
            return Bucket(name, store, prefix, access["s3AccessPointArn"])
    raise NoSuchBucket("The specified bucket does not exist", BucketName=name)


async def find_object(svc: Service, bucket: Bucket, key: str) -> S3Object | None:
    """The object at ``key`` whatever its read set's status, or None if no read set has it."""
    rest = key.removeprefix(bucket.prefix)
    if rest == key or not rest.startswith("readSet/"):
        return None
    read_set_id = rest.split("/", 2)[1]
    doc = svc.state.get("readSet", read_set_id)
    if doc is None or doc.get("sequenceStoreId") != bucket.store["id"]:
        return None
    return next((obj for obj in await _objects_of(svc, bucket, doc) if obj.key == key), None)


async def list_objects(svc: Service, bucket: Bucket) -> list[S3Object]:
    """Every reachable object of the bucket, in key order (S3 lists in UTF-8 binary order)."""
    found = []
    for doc in svc.state.docs("readSet", bucket.store["id"]):
        if doc.get("status") == "ACTIVE":
            found += await _objects_of(svc, bucket, doc)
    return sorted(found, key=lambda obj: obj.key.encode())


def object_tags(svc: Service, bucket: Bucket, obj: S3Object) -> dict[str, str]:
    """The system tags every object carries plus the read set tags the store propagates
    (``propagatedSetLevelTags``; https://docs.aws.amazon.com/omics/latest/dev/tagging.html)."""
    tags = {"omics:subjectId": obj.read_set["subjectId"], "omics:sampleId": obj.read_set["sampleId"]}
    propagated = set(bucket.store.get("propagatedSetLevelTags") or [])
    tags.update({k: v for k, v in svc.state.tags(obj.read_set["arn"]).items() if k in propagated})
    return tags


async def _objects_of(svc: Service, bucket: Bucket, doc: dict[str, Any]) -> list[S3Object]:
    base = f"s3://{bucket.name}/"
    versions: dict[str, dict[str, str]] = doc.get("_s3Objects") or {}
    found = []
    for name, info in (doc.get("files") or {}).items():
        uri = str((info.get("s3Access") or {}).get("s3Uri", ""))
        if not uri.startswith(base):
            continue
        path = svc.blobs.file("readSet", doc["id"], name)
        version: dict[str, str] | None = versions.get(name)
        if version is None:  # ingested before objects carried a version: fix it once
            part_size = svc.config.part_size
            version = await asyncio.to_thread(object_version, path, part_size, doc["creationTime"])
            _remember_version(svc, doc["id"], name, version)
        found.append(
            S3Object(
                key=uri.removeprefix(base),
                read_set=doc,
                file=name,
                path=path,
                size=int(info["contentLength"]),
                etag=version["etag"],
                last_modified=parse_timestamp(version["lastModified"], "lastModified"),
            )
        )
    return found


def _remember_version(svc: Service, read_set_id: str, name: str, version: dict[str, str]) -> None:
    with svc.state.transaction():
        current = svc.state.get("readSet", read_set_id)
        if current is None:
            return
        current.setdefault("_s3Objects", {})[name] = version
        svc.state.put("readSet", read_set_id, current, parent=current["sequenceStoreId"])
