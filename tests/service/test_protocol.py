"""Wire-protocol conformance: routes, IDs, ARNs, timestamps, errors and validation."""

from __future__ import annotations

import http.client
import re
import urllib.parse
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from omicsfs.localservice.errors import ALL_ERRORS
from omicsfs.localservice.protocol import STORAGE_OPERATIONS, Router, service_model
from tests.localservice import RunningService
from tests.service.helpers import error_of

ID = re.compile(r"[0-9]{10,36}")
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_every_storage_operation_is_routed_and_implemented() -> None:
    import omicsfs.localservice.app  # noqa: F401  (importing the app registers every operation)
    from omicsfs.localservice.context import OPERATIONS

    assert len(STORAGE_OPERATIONS) == 41
    assert set(OPERATIONS) == set(STORAGE_OPERATIONS)
    router = Router()
    model = service_model()
    for name in STORAGE_OPERATIONS:
        op = model.operation_model(name)
        path = re.sub(r"\{[^}]+\}", "1234567890", op.http["requestUri"])
        matched = router.match(op.http["method"], path)
        assert matched is not None
        assert matched[0].name == name


def test_error_classes_match_the_model() -> None:
    model = service_model()
    for error in ALL_ERRORS:
        shape = model.shape_for(error.code)
        assert shape.metadata["error"]["httpStatusCode"] == error.status, error.code


def test_ids_arns_and_timestamps(service: RunningService) -> None:
    omics = service.client()
    created = omics.create_sequence_store(name="ids")
    assert ID.fullmatch(created["id"])
    assert created["arn"] == f"arn:aws:omics:us-west-2:123456789012:sequenceStore/{created['id']}"
    ref_store = omics.create_reference_store(name="refs")
    assert ref_store["arn"].endswith(f":referenceStore/{ref_store['id']}")
    # The raw body carries ISO-8601 strings (the model's timestampFormat), not epoch numbers.
    conn = http.client.HTTPConnection(urllib.parse.urlsplit(service.url).netloc)
    try:
        conn.request("GET", f"/sequencestore/{created['id']}")
        body = conn.getresponse().read().decode()
    finally:
        conn.close()
    assert ISO.search(body), body


def test_the_default_host_prefix_trap_is_documented_behaviour(service: RunningService) -> None:
    """With host-prefix injection off, requests reach the service; the service ignores Host."""
    omics = service.client()
    assert omics.meta.config.inject_host_prefix is False
    omics.list_sequence_stores()


@pytest.mark.parametrize(
    ("call", "kwargs"),
    [
        ("get_sequence_store", {"id": "9999999999"}),
        ("get_reference_store", {"id": "9999999999"}),
        ("list_read_sets", {"sequenceStoreId": "9999999999"}),
        ("list_references", {"referenceStoreId": "9999999999"}),
        ("get_read_set_import_job", {"sequenceStoreId": "9999999999", "id": "1111111111"}),
        (
            "list_tags_for_resource",
            {"resourceArn": "arn:aws:omics:us-west-2:123456789012:sequenceStore/9999999999"},
        ),
    ],
)
def test_unknown_ids_are_resource_not_found(omics: Any, call: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ClientError) as excinfo:
        getattr(omics, call)(**kwargs)
    assert error_of(excinfo) == ("ResourceNotFoundException", 404)
    assert excinfo.value.response["Error"]["Message"]
    assert excinfo.value.response["ResponseMetadata"]["RequestId"]


def test_unknown_ids_inside_a_known_store(omics: Any, store: dict[str, Any]) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("get_read_set_metadata", {"id": "1111111111"}),
        ("get_read_set", {"id": "1111111111", "partNumber": 1}),
        ("abort_multipart_read_set_upload", {"uploadId": "1111111111"}),
        ("get_read_set_export_job", {"id": "1111111111"}),
        ("get_read_set_activation_job", {"id": "1111111111"}),
    ]
    for call, kwargs in calls:
        with pytest.raises(ClientError) as excinfo:
            getattr(omics, call)(sequenceStoreId=store["id"], **kwargs)
        assert error_of(excinfo) == ("ResourceNotFoundException", 404), call


@pytest.mark.parametrize(
    ("call", "kwargs", "fragment"),
    [
        ("list_sequence_stores", {"maxResults": 101}, "maxResults"),
        ("list_sequence_stores", {"filter": {"status": "BOGUS"}}, "status"),
        ("get_sequence_store", {"id": "12345abcde"}, "id"),
        ("get_sequence_store", {"id": "1" * 37}, "id"),
        ("create_sequence_store", {"name": "x", "eTagAlgorithmFamily": "BOGUS"}, "eTagAlgorithmFamily"),
        ("create_sequence_store", {"name": "x" * 128}, "name"),
        ("create_sequence_store", {"name": "bad\nname"}, "name"),
        ("list_sequence_stores", {"nextToken": "not-a-token-we-issued"}, "nextToken"),
    ],
)
def test_what_botocore_does_not_validate_the_service_does(
    omics: Any, call: str, kwargs: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        getattr(omics, call)(**kwargs)
    assert error_of(excinfo) == ("ValidationException", 400)
    assert fragment in excinfo.value.response["Error"]["Message"]


def test_part_number_range_is_validated(omics: Any, store: dict[str, Any]) -> None:
    with pytest.raises(ClientError) as excinfo:
        omics.get_read_set(sequenceStoreId=store["id"], id="1111111111", partNumber=10001)
    assert error_of(excinfo) == ("ValidationException", 400)
    with pytest.raises(ParamValidationError):  # below the minimum: botocore's own check
        omics.get_read_set(sequenceStoreId=store["id"], id="1111111111", partNumber=0)


def test_unknown_filter_status_on_read_sets(omics: Any, store: dict[str, Any]) -> None:
    with pytest.raises(ClientError) as excinfo:
        omics.list_read_sets(sequenceStoreId=store["id"], filter={"status": "SLEEPING"})
    assert error_of(excinfo) == ("ValidationException", 400)


def test_next_token_from_another_listing_is_refused(omics: Any) -> None:
    for i in range(3):
        omics.create_reference_store(name=f"token-scope-{i}")
    token = omics.list_reference_stores(maxResults=1)["nextToken"]
    with pytest.raises(ClientError) as excinfo:
        omics.list_sequence_stores(nextToken=token)
    assert error_of(excinfo) == ("ValidationException", 400)


def test_next_token_with_another_filter_or_page_size_is_refused(
    omics: Any, store: dict[str, Any], service: RunningService
) -> None:
    """A token continues the request it came from: same store, filter and maxResults."""
    for i in range(3):
        omics.create_multipart_read_set_upload(
            sequenceStoreId=store["id"], sourceFileType="FASTQ", subjectId="s", sampleId="x", name=f"u{i}"
        )
    first = omics.list_multipart_read_set_uploads(sequenceStoreId=store["id"], maxResults=1)
    token = first["nextToken"]
    again = omics.list_multipart_read_set_uploads(sequenceStoreId=store["id"], maxResults=1, nextToken=token)
    assert again["uploads"][0]["uploadId"] != first["uploads"][0]["uploadId"]
    with pytest.raises(ClientError) as excinfo:
        omics.list_multipart_read_set_uploads(sequenceStoreId=store["id"], maxResults=2, nextToken=token)
    assert error_of(excinfo) == ("ValidationException", 400)
    assert "maxResults" in excinfo.value.response["Error"]["Message"]
    other_store = omics.create_sequence_store(name="token-other-store")
    with pytest.raises(ClientError) as excinfo:
        omics.list_multipart_read_set_uploads(
            sequenceStoreId=other_store["id"], maxResults=1, nextToken=token
        )
    assert error_of(excinfo) == ("ValidationException", 400)

    for name in ("a", "b", "c"):
        omics.create_reference_store(name=f"token-filter-{name}")
    everything = omics.list_reference_stores(maxResults=1)
    with pytest.raises(ClientError) as excinfo:
        omics.list_reference_stores(
            maxResults=1, filter={"name": "token-filter-b"}, nextToken=everything["nextToken"]
        )
    assert error_of(excinfo) == ("ValidationException", 400)


def test_required_outputs_are_always_present(
    omics: Any, store: dict[str, Any], service: RunningService
) -> None:
    """The model marks referenceArn (and, in list items, generatedFrom) required in upload outputs
    although both are optional inputs: an upload without them answers "" (botocore passes what the
    service sends, so this checks the raw answer)."""
    created = omics.create_multipart_read_set_upload(
        sequenceStoreId=store["id"], sourceFileType="FASTQ", subjectId="s", sampleId="x", name="bare"
    )
    assert created["referenceArn"] == ""
    [item] = omics.list_multipart_read_set_uploads(sequenceStoreId=store["id"])["uploads"]
    assert (item["referenceArn"], item["generatedFrom"]) == ("", "")
    model = service_model()
    for name, document in (
        ("CreateMultipartReadSetUpload", created),
        ("ListMultipartReadSetUploads", {"uploads": [item]}),
    ):
        shape: Any = model.operation_model(name).output_shape  # a StructureShape, as the model says
        if name == "ListMultipartReadSetUploads":
            shape, document = shape.members["uploads"].member, item
        assert set(shape.required_members) <= set(document), name


def test_unknown_path_is_a_modeled_looking_404(service: RunningService) -> None:
    conn = http.client.HTTPConnection(urllib.parse.urlsplit(service.url).netloc)
    try:
        conn.request("GET", "/no/such/route")
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 404
    assert response.getheader("x-amzn-ErrorType") == "UnknownOperationException"


def test_idempotent_create_replays_the_first_result(omics: Any) -> None:
    first = omics.create_reference_store(name="idem", clientToken="token-1")
    again = omics.create_reference_store(name="idem", clientToken="token-1")
    assert again["id"] == first["id"]
    with pytest.raises(ClientError) as excinfo:
        omics.create_reference_store(name="other", clientToken="token-1")
    # CreateReferenceStore declares no ConflictException: the error must be one it declares.
    assert error_of(excinfo) == ("ValidationException", 400)
    declared = {shape.name for shape in service_model().operation_model("CreateReferenceStore").error_shapes}
    assert "ValidationException" in declared
    names = [s["id"] for s in omics.list_reference_stores(filter={"name": "idem"})["referenceStores"]]
    assert names == [first["id"]]


def test_admin_routes_answer_and_count(private_service: RunningService) -> None:
    omics = private_service.client()
    omics.list_sequence_stores()
    omics.list_sequence_stores()
    assert private_service.requests() == {"ListSequenceStores": 2}
    private_service.reset_stats()
    assert private_service.requests() == {}
