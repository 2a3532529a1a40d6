"""References: listing, metadata, part downloads (with Range) and deletion."""

from __future__ import annotations

from typing import Any

import regex

from omicsfs.localservice.context import (
    CREATED_BOUNDS,
    Call,
    Service,
    Stream,
    apply_filter,
    equals,
    operation,
    pick,
)
from omicsfs.localservice.errors import (
    ConflictException,
    RangeNotSatisfiableException,
    ResourceNotFoundException,
    ValidationException,
)
from omicsfs.localservice.operations.read_sets import part_stream

_LIST_ITEM = (
    "id", "arn", "referenceStoreId", "md5", "status", "name", "description", "creationTime",
    "updateTime",
)  # fmt: skip

_RANGE = regex.compile(r"(?:bytes=)?([0-9]*)-([0-9]*)")  # ASCII digits only, as every integer


@operation("ListReferences")
async def list_references(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    store = svc.require("referenceStore", params["referenceStoreId"])
    rules = {"name": equals("name"), "md5": equals("md5"), **CREATED_BOUNDS}
    items = apply_filter(svc.state.docs("reference", store["id"]), params.get("filter"), rules)
    page, token = svc.paginate(items, params, f"ListReferences/{store['id']}")
    return {"references": [pick(d, *_LIST_ITEM) for d in page], "nextToken": token}


@operation("GetReferenceMetadata")
async def get_reference_metadata(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    svc.require("referenceStore", params["referenceStoreId"])
    return svc.require("reference", params["id"], parent=params["referenceStoreId"])


@operation("GetReference")
async def get_reference(svc: Service, call: Call, params: dict[str, Any]) -> Stream:
    """One part of the FASTA or its FAI; an optional Range applies within that part.

    Neither the API reference nor the model says what the Range is relative to; this service
    reads it as RFC 7233 bytes within the part (``bytes=a-b``, ``a-``, ``-n``; the ``bytes=``
    prefix may be left out, as the model's pattern suggests).
    """
    svc.require("referenceStore", params["referenceStoreId"])
    doc = svc.require("reference", params["id"], parent=params["referenceStoreId"])
    if doc.get("status", "ACTIVE") != "ACTIVE":
        raise ConflictException(f"Reference {doc['id']} is {doc['status']}.")
    file_key = params.get("file", "SOURCE").lower()
    info = (doc.get("files") or {}).get(file_key)
    if info is None:
        raise ResourceNotFoundException(f"Reference {doc['id']} has no {file_key.upper()} file.")
    stream = part_stream(svc.blobs.file("reference", doc["id"], file_key), info, params["partNumber"])
    if "range" not in params:
        return stream
    first, last = _parse_range(params["range"], stream.length)
    return Stream(
        stream.path,
        stream.offset + first,
        last - first + 1,
        {"Content-Range": f"bytes {first}-{last}/{stream.length}"},
    )


def _parse_range(header: str, length: int) -> tuple[int, int]:
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        raise ValidationException(f"Range '{header}' is not of the form bytes=FIRST-LAST.")
    start, end = match.group(1), match.group(2)
    if start == "":
        first, last = max(0, length - int(end)), length - 1
    else:
        first = int(start)
        last = min(int(end), length - 1) if end else length - 1
    if first >= length or first > last:
        raise RangeNotSatisfiableException(f"Range '{header}' is outside the part's {length} bytes.")
    return first, last


@operation("DeleteReference")
async def delete_reference(svc: Service, call: Call, params: dict[str, Any]) -> None:
    svc.require("referenceStore", params["referenceStoreId"])
    doc = svc.require("reference", params["id"], parent=params["referenceStoreId"])
    users = [rs["id"] for rs in svc.state.docs("readSet") if rs.get("referenceArn") == doc["arn"]]
    if users:
        raise ConflictException(f"Reference {doc['id']} is used by read sets {users[:5]}; delete them first.")
    with svc.state.transaction():
        svc.state.delete("reference", doc["id"])
        svc.state.delete_tags_under(doc["arn"])
    svc.blobs.remove("reference", doc["id"])
