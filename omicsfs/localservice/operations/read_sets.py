"""Read sets: listing, metadata, part downloads and deletion."""

from __future__ import annotations

from typing import Any

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
)

_LIST_ITEM = (
    "id", "arn", "sequenceStoreId", "subjectId", "sampleId", "status", "name", "description",
    "referenceArn", "fileType", "sequenceInformation", "creationTime", "statusMessage",
    "creationType", "etag",
)  # fmt: skip

_READ_SET_FILTER = {
    "name": equals("name"),
    "status": equals("status"),
    "referenceArn": equals("referenceArn"),
    "sampleId": equals("sampleId"),
    "subjectId": equals("subjectId"),
    "generatedFrom": equals("_generatedFrom"),
    "creationType": equals("creationType"),
    **CREATED_BOUNDS,
}


@operation("ListReadSets")
async def list_read_sets(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    store = svc.require("sequenceStore", params["sequenceStoreId"])
    wanted = dict(params.get("filter") or {})
    if wanted.get("referenceArn") == "":
        # The pattern admits "": it selects read sets with no reference (docs/architecture.md,
        # "Wire protocol" W6).
        wanted.pop("referenceArn")
        items = [d for d in svc.state.docs("readSet", store["id"]) if not d.get("referenceArn")]
    else:
        items = svc.state.docs("readSet", store["id"])
    items = apply_filter(items, wanted, _READ_SET_FILTER)
    page, token = svc.paginate(items, params, f"ListReadSets/{store['id']}")
    return {"readSets": [pick(d, *_LIST_ITEM) for d in page], "nextToken": token}


@operation("GetReadSetMetadata")
async def get_read_set_metadata(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    svc.require("sequenceStore", params["sequenceStoreId"])
    return svc.require("readSet", params["id"], parent=params["sequenceStoreId"])


@operation("GetReadSet")
async def get_read_set(svc: Service, call: Call, params: dict[str, Any]) -> Stream:
    svc.require("sequenceStore", params["sequenceStoreId"])
    doc = svc.require("readSet", params["id"], parent=params["sequenceStoreId"])
    if doc["status"] != "ACTIVE":
        hint = " Start a read set activation job first." if doc["status"] == "ARCHIVED" else ""
        raise ConflictException(
            f"Read set {doc['id']} is {doc['status']}; only ACTIVE read sets can be read.{hint}"
        )
    file_key = params.get("file", "SOURCE1").lower()
    info = (doc.get("files") or {}).get(file_key)
    if info is None:
        raise ResourceNotFoundException(f"Read set {doc['id']} has no {file_key.upper()} file.")
    return part_stream(svc.blobs.file("readSet", doc["id"], file_key), info, params["partNumber"])


def part_stream(path: Any, info: dict[str, Any], part_number: int) -> Stream:
    """Part N of a file is bytes [(N-1)*partSize, min(N*partSize, size))."""
    if part_number > info["totalParts"]:
        raise RangeNotSatisfiableException(
            f"Part {part_number} is past the last part ({info['totalParts']}) of this file."
        )
    offset = (part_number - 1) * info["partSize"]
    length = min(info["partSize"], info["contentLength"] - offset)
    return Stream(path, offset, length)


@operation("BatchDeleteReadSet")
async def batch_delete_read_set(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    store = svc.require("sequenceStore", params["sequenceStoreId"])
    errors = []
    with svc.state.transaction():
        for ident in params["ids"]:
            doc = svc.state.get("readSet", ident)
            if doc is None or doc["sequenceStoreId"] != store["id"]:
                errors.append(
                    {
                        "id": ident,
                        "code": "ResourceNotFoundException",
                        "message": f"The specified read set {ident} does not exist.",
                    }
                )
                continue
            svc.state.delete("readSet", ident)
            svc.state.delete_tags_under(doc["arn"])
    for ident in params["ids"]:
        if not any(e["id"] == ident for e in errors):
            svc.blobs.remove("readSet", ident)
    return {"errors": errors}
