"""Sequence and reference stores: lifecycle, filters and pagination."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.localservice import RunningService
from tests.service.helpers import error_of


def _all_pages(omics: Any, operation: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in omics.get_paginator(operation).paginate(**kwargs):
        items.extend(page[key])
    return items


def test_sequence_store_lifecycle(omics: Any) -> None:
    created = omics.create_sequence_store(
        name="cohort", description="first", eTagAlgorithmFamily="SHA256up", tags={"team": "a"}
    )
    assert created["status"] == "ACTIVE"
    assert created["eTagAlgorithmFamily"] == "SHA256up"
    got = omics.get_sequence_store(id=created["id"])
    assert got["s3Access"]["s3Uri"].startswith("s3://")
    assert got["s3Access"]["s3AccessPointArn"].startswith("arn:aws:s3:us-west-2:")
    updated = omics.update_sequence_store(id=created["id"], name="cohort-2", description="second")
    assert (updated["name"], updated["description"]) == ("cohort-2", "second")
    assert updated["updateTime"] >= got["updateTime"]
    assert omics.get_sequence_store(id=created["id"])["name"] == "cohort-2"
    omics.delete_sequence_store(id=created["id"])
    with pytest.raises(ClientError) as excinfo:
        omics.get_sequence_store(id=created["id"])
    assert error_of(excinfo) == ("ResourceNotFoundException", 404)


def test_default_etag_family_is_md5up(store: dict[str, Any]) -> None:
    assert store["eTagAlgorithmFamily"] == "MD5up"


def test_reference_store_lifecycle(omics: Any) -> None:
    created = omics.create_reference_store(name="refs", description="hg")
    assert omics.get_reference_store(id=created["id"])["name"] == "refs"
    omics.delete_reference_store(id=created["id"])
    with pytest.raises(ClientError) as excinfo:
        omics.delete_reference_store(id=created["id"])
    assert error_of(excinfo) == ("ResourceNotFoundException", 404)


def test_sequence_store_pagination_and_filters(private_service: RunningService) -> None:
    omics = private_service.client()
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    ids = [omics.create_sequence_store(name=f"s{i % 3}")["id"] for i in range(7)]
    listed = _all_pages(omics, "list_sequence_stores", "sequenceStores", PaginationConfig={"PageSize": 2})
    assert [s["id"] for s in listed] == ids  # oldest first, every store exactly once
    first = omics.list_sequence_stores(maxResults=2)
    assert len(first["sequenceStores"]) == 2
    assert "nextToken" in first
    named = omics.list_sequence_stores(filter={"name": "s1"})["sequenceStores"]
    assert [s["id"] for s in named] == [ids[1], ids[4]]
    assert omics.list_sequence_stores(filter={"status": "ACTIVE"})["sequenceStores"]
    assert omics.list_sequence_stores(filter={"status": "DELETING"})["sequenceStores"] == []
    created_after = omics.list_sequence_stores(filter={"createdAfter": before})["sequenceStores"]
    assert len(created_after) == 7
    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert omics.list_sequence_stores(filter={"createdAfter": future})["sequenceStores"] == []
    assert len(omics.list_sequence_stores(filter={"createdBefore": future})["sequenceStores"]) == 7
    omics.update_sequence_store(id=ids[0], description="touched")
    touched = omics.get_sequence_store(id=ids[0])["updateTime"]
    updated_after = omics.list_sequence_stores(filter={"updatedAfter": touched})["sequenceStores"]
    assert [s["id"] for s in updated_after] == [ids[0]]
    assert ids[0] not in [
        s["id"] for s in omics.list_sequence_stores(filter={"updatedBefore": before})["sequenceStores"]
    ]


def test_pages_stay_consistent_while_items_are_added(private_service: RunningService) -> None:
    omics = private_service.client()
    ids = [omics.create_reference_store(name=f"r{i}")["id"] for i in range(4)]
    first = omics.list_reference_stores(maxResults=2)
    ids.append(omics.create_reference_store(name="late")["id"])
    second = omics.list_reference_stores(maxResults=2, nextToken=first["nextToken"])
    third = omics.list_reference_stores(maxResults=2, nextToken=second["nextToken"])
    seen = [s["id"] for page in (first, second, third) for s in page["referenceStores"]]
    assert seen == ids
    assert "nextToken" not in third


def test_reference_store_filters(private_service: RunningService) -> None:
    omics = private_service.client()
    a = omics.create_reference_store(name="grch38")
    omics.create_reference_store(name="t2t")
    listed = omics.list_reference_stores(filter={"name": "grch38"})["referenceStores"]
    assert [s["id"] for s in listed] == [a["id"]]
    created = a["creationTime"]
    assert (
        omics.list_reference_stores(filter={"createdBefore": created})["referenceStores"][0]["id"] == a["id"]
    )


def test_store_list_items_have_the_modeled_shape(omics: Any, store: dict[str, Any]) -> None:
    item = next(s for s in omics.list_sequence_stores()["sequenceStores"] if s["id"] == store["id"])
    assert "s3Access" not in item  # SequenceStoreDetail has none (docs/architecture.md, "Wire protocol" W6)
    assert {"arn", "id", "creationTime", "status"} <= set(item)
