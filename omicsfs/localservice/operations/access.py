"""S3 access policies (keyed by a store's access point ARN) and resource tags."""

from __future__ import annotations

from typing import Any

from omicsfs.localservice.context import Call, Service, operation
from omicsfs.localservice.errors import ResourceNotFoundException, ServiceQuotaExceededException

MAX_TAGS = 50


def _store_for_access_point(svc: Service, access_point_arn: str) -> dict[str, Any]:
    for store in svc.state.docs("sequenceStore"):
        if store["s3Access"]["s3AccessPointArn"] == access_point_arn:
            return store
    raise ResourceNotFoundException(f"No store has the S3 access point {access_point_arn}.")


@operation("PutS3AccessPolicy")
async def put_policy(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    arn = params["s3AccessPointArn"]
    store = _store_for_access_point(svc, arn)
    doc = {
        "s3AccessPointArn": arn,
        "storeId": store["id"],
        "storeType": "SEQUENCE_STORE",
        "s3AccessPolicy": params["s3AccessPolicy"],
        "updateTime": svc.now(),
    }
    svc.state.set_policy(arn, doc)
    return {k: doc[k] for k in ("s3AccessPointArn", "storeId", "storeType")}


@operation("GetS3AccessPolicy")
async def get_policy(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    arn = params["s3AccessPointArn"]
    _store_for_access_point(svc, arn)
    doc = svc.state.policy(arn)
    if doc is None:
        raise ResourceNotFoundException(f"The access point {arn} has no S3 access policy.")
    return doc


@operation("DeleteS3AccessPolicy")
async def delete_policy(svc: Service, call: Call, params: dict[str, Any]) -> None:
    arn = params["s3AccessPointArn"]
    _store_for_access_point(svc, arn)
    if svc.state.policy(arn) is None:
        raise ResourceNotFoundException(f"The access point {arn} has no S3 access policy.")
    svc.state.set_policy(arn, None)


def _require_taggable(svc: Service, arn: str) -> None:
    """Stores, read sets and references carry tags; anything else is ResourceNotFound."""
    _, _, resource = arn.partition(f":{svc.config.account}:")
    parts = resource.split("/")
    kinds = {
        ("sequenceStore",): "sequenceStore",
        ("referenceStore",): "referenceStore",
        ("sequenceStore", "readSet"): "readSet",
        ("referenceStore", "reference"): "reference",
    }
    kind = kinds.get(tuple(parts[0::2])) if len(parts) in (2, 4) else None
    doc = svc.state.get(kind, parts[-1]) if kind else None
    if doc is None or doc["arn"] != arn:
        raise ResourceNotFoundException(f"The resource {arn} does not exist.")


@operation("TagResource")
async def tag_resource(svc: Service, call: Call, params: dict[str, Any]) -> None:
    arn = params["resourceArn"]
    _require_taggable(svc, arn)
    tags = {**svc.state.tags(arn), **params["tags"]}
    if len(tags) > MAX_TAGS:
        raise ServiceQuotaExceededException(f"A resource can carry at most {MAX_TAGS} tags.")
    svc.state.set_tags(arn, tags)


@operation("UntagResource")
async def untag_resource(svc: Service, call: Call, params: dict[str, Any]) -> None:
    arn = params["resourceArn"]
    _require_taggable(svc, arn)
    tags = svc.state.tags(arn)
    for key in params.get("tagKeys", []):
        tags.pop(key, None)
    svc.state.set_tags(arn, tags)


@operation("ListTagsForResource")
async def list_tags(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    arn = params["resourceArn"]
    _require_taggable(svc, arn)
    return {"tags": svc.state.tags(arn)}
