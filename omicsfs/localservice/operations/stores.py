"""Sequence stores and reference stores."""

from __future__ import annotations

import secrets
from typing import Any

from omicsfs.localservice.context import (
    CREATED_BOUNDS,
    Call,
    Service,
    apply_filter,
    at_or_after,
    at_or_before,
    equals,
    operation,
    pick,
)
from omicsfs.localservice.errors import ConflictException
from omicsfs.localservice.operations.jobs import running_jobs

_SEQUENCE_STORE_DETAIL = (
    "arn", "id", "name", "description", "sseConfig", "creationTime", "fallbackLocation",
    "eTagAlgorithmFamily", "status", "statusMessage", "updateTime",
)  # fmt: skip
_REFERENCE_STORE_DETAIL = ("arn", "id", "name", "description", "sseConfig", "creationTime")


@operation("CreateSequenceStore")
async def create_sequence_store(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    ident = svc.state.new_id("sequenceStore")
    account = svc.config.account
    alias = f"{account}-{ident[:7]}-{secrets.token_hex(12)}-s3alias"
    now = svc.now()
    doc: dict[str, Any] = {
        "id": ident,
        "arn": svc.arn(call.region, f"sequenceStore/{ident}"),
        "name": params["name"],
        "description": params.get("description"),
        "sseConfig": params.get("sseConfig"),
        "creationTime": now,
        "updateTime": now,
        "fallbackLocation": params.get("fallbackLocation"),
        "eTagAlgorithmFamily": params.get("eTagAlgorithmFamily", "MD5up"),
        # Provisioning is instant here; the real service passes through CREATING.
        "status": "ACTIVE",
        "propagatedSetLevelTags": params.get("propagatedSetLevelTags"),
        "s3Access": {
            "s3Uri": f"s3://{alias}/{account}/sequenceStore/{ident}/",
            "s3AccessPointArn": f"arn:aws:s3:{call.region}:{account}:accesspoint/{account}-{ident}",
            "accessLogLocation": (params.get("s3AccessConfig") or {}).get("accessLogLocation"),
        },
    }
    with svc.state.transaction():
        svc.state.put("sequenceStore", ident, doc)
        svc.state.set_tags(doc["arn"], params.get("tags") or {})
    return {k: v for k, v in doc.items() if k != "updateTime"}


@operation("GetSequenceStore")
async def get_sequence_store(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return svc.require("sequenceStore", params["id"])


@operation("UpdateSequenceStore")
async def update_sequence_store(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    with svc.state.transaction():
        doc = svc.require("sequenceStore", params["id"])
        for name in ("name", "description", "fallbackLocation", "propagatedSetLevelTags"):
            if name in params:
                doc[name] = params[name] or None
        if "s3AccessConfig" in params:
            doc["s3Access"]["accessLogLocation"] = params["s3AccessConfig"].get("accessLogLocation")
        doc["updateTime"] = svc.now()
        svc.state.put("sequenceStore", doc["id"], doc)
    return doc


@operation("DeleteSequenceStore")
async def delete_sequence_store(svc: Service, call: Call, params: dict[str, Any]) -> None:
    with svc.state.transaction():
        doc = svc.require("sequenceStore", params["id"])
        held = svc.state.count("readSet", doc["id"]) + svc.state.count("upload", doc["id"])
        held += running_jobs(svc, ("importJob", "exportJob", "activationJob"), doc["id"])
        if held:
            raise ConflictException(
                f"Sequence store {doc['id']} still holds {held} read sets, uploads or running "
                "jobs; delete them first (BatchDeleteReadSet, AbortMultipartReadSetUpload)."
            )
        svc.state.delete("sequenceStore", doc["id"])
        svc.state.delete_tags_under(doc["arn"])
        svc.state.set_policy(doc["s3Access"]["s3AccessPointArn"], None)
        for kind in ("importJob", "exportJob", "activationJob"):
            for job in svc.state.docs(kind, doc["id"]):
                svc.state.delete(kind, job["id"])


@operation("ListSequenceStores")
async def list_sequence_stores(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    rules = {
        "name": equals("name"),
        "status": equals("status"),
        "updatedAfter": at_or_after("updateTime"),
        "updatedBefore": at_or_before("updateTime"),
        **CREATED_BOUNDS,
    }
    items = apply_filter(svc.state.docs("sequenceStore"), params.get("filter"), rules)
    page, token = svc.paginate(items, params, "ListSequenceStores")
    return {"sequenceStores": [pick(d, *_SEQUENCE_STORE_DETAIL) for d in page], "nextToken": token}


@operation("CreateReferenceStore")
async def create_reference_store(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    ident = svc.state.new_id("referenceStore")
    doc = {
        "id": ident,
        "arn": svc.arn(call.region, f"referenceStore/{ident}"),
        "name": params["name"],
        "description": params.get("description"),
        "sseConfig": params.get("sseConfig"),
        "creationTime": svc.now(),
    }
    with svc.state.transaction():
        svc.state.put("referenceStore", ident, doc)
        svc.state.set_tags(doc["arn"], params.get("tags") or {})
    return doc


@operation("GetReferenceStore")
async def get_reference_store(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return svc.require("referenceStore", params["id"])


@operation("DeleteReferenceStore")
async def delete_reference_store(svc: Service, call: Call, params: dict[str, Any]) -> None:
    with svc.state.transaction():
        doc = svc.require("referenceStore", params["id"])
        held = svc.state.count("reference", doc["id"])
        held += running_jobs(svc, ("referenceImportJob",), doc["id"])
        if held:
            raise ConflictException(
                f"Reference store {doc['id']} still holds {held} references or running import "
                "jobs; delete them first."
            )
        svc.state.delete("referenceStore", doc["id"])
        svc.state.delete_tags_under(doc["arn"])
        for job in svc.state.docs("referenceImportJob", doc["id"]):
            svc.state.delete("referenceImportJob", job["id"])


@operation("ListReferenceStores")
async def list_reference_stores(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    rules = {"name": equals("name"), **CREATED_BOUNDS}
    items = apply_filter(svc.state.docs("referenceStore"), params.get("filter"), rules)
    page, token = svc.paginate(items, params, "ListReferenceStores")
    return {"referenceStores": [pick(d, *_REFERENCE_STORE_DETAIL) for d in page], "nextToken": token}
