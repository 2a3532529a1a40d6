"""backend/errors.py: what boto3 raises becomes one of a few domain errors, each retryable or not.

The rest of omicsfs (the retry loop, the errno table) decides from these classes alone, so a code
or exception sorted into the wrong one would retry what cannot succeed or fail what would.
"""

from __future__ import annotations

import http.client
from typing import Any

import botocore.exceptions
import pytest
import urllib3.exceptions

from omicsfs.backend.errors import (
    AccessDenied,
    BackendError,
    InvalidRequest,
    NotActive,
    NotFound,
    ServiceFailure,
    Throttled,
    TransportFailure,
    classify,
    classify_item,
)


def client_error(code: str, status: int, message: str = "it failed", request_id: str = "req-1") -> Exception:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"RequestId": request_id, "HTTPStatusCode": status},
    }
    return botocore.exceptions.ClientError(response, "GetReadSet")


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ResourceNotFoundException", 404, NotFound),
        ("NoSuchKey", 404, NotFound),
        ("AccessDeniedException", 403, AccessDenied),
        ("UnrecognizedClientException", 403, AccessDenied),
        ("InvalidSignatureException", 403, AccessDenied),
        ("ExpiredTokenException", 400, AccessDenied),
        ("ConflictException", 409, NotActive),
        ("ThrottlingException", 400, Throttled),
        ("TooManyRequestsException", 429, Throttled),
        ("RequestLimitExceeded", 400, Throttled),
        ("ServiceQuotaExceededException", 402, InvalidRequest),
        ("ValidationException", 400, InvalidRequest),
        ("RangeNotSatisfiableException", 416, InvalidRequest),
        ("InternalServerException", 500, ServiceFailure),
        ("ServiceUnavailableException", 503, ServiceFailure),
        ("RequestTimeoutException", 408, ServiceFailure),
    ],
)
def test_service_error_codes_map_to_their_class(code: str, status: int, expected: type[BackendError]) -> None:
    error = classify("GetReadSet", client_error(code, status, "details", "abc-123"))
    assert type(error) is expected
    assert (error.operation, error.code, error.request_id, error.message) == (
        "GetReadSet", code, "abc-123", "details",
    )  # fmt: skip
    assert str(error) == f"GetReadSet: {code}: details"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, AccessDenied),
        (403, AccessDenied),
        (404, NotFound),
        (429, Throttled),
        (500, ServiceFailure),
        (502, ServiceFailure),
        (504, ServiceFailure),
        (400, InvalidRequest),
        (413, InvalidRequest),
    ],
)
def test_unknown_codes_are_sorted_by_http_status(status: int, expected: type[BackendError]) -> None:
    assert type(classify("ListReadSets", client_error("SomethingNew", status))) is expected


def test_a_client_error_without_metadata_is_an_invalid_request() -> None:
    error = classify("GetReadSet", botocore.exceptions.ClientError({}, "GetReadSet"))
    assert type(error) is InvalidRequest
    assert error.message  # botocore's own text stands in for the missing message


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (Throttled, True), (ServiceFailure, True), (TransportFailure, True),
        (NotFound, False), (AccessDenied, False), (NotActive, False), (InvalidRequest, False),
        (BackendError, False),
    ],
)  # fmt: skip
def test_only_throttling_5xx_and_transport_failures_are_retryable(
    cls: type[BackendError], expected: bool
) -> None:
    assert cls("op", "m").retryable is expected


@pytest.mark.parametrize(
    "exc",
    [
        botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"),
        botocore.exceptions.ConnectionClosedError(endpoint_url="http://x"),
        botocore.exceptions.ReadTimeoutError(endpoint_url="http://x"),
        botocore.exceptions.ConnectTimeoutError(endpoint_url="http://x"),
        botocore.exceptions.ResponseStreamingError(error="reset"),
        botocore.exceptions.IncompleteReadError(actual_bytes=1, expected_bytes=2),
        botocore.exceptions.HTTPClientError(error="boom"),
        ConnectionResetError(104, "Connection reset by peer"),
        BrokenPipeError(32, "Broken pipe"),
        TimeoutError("timed out"),
        # Raised while a streaming body is read, where botocore does not wrap them.
        urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead"),
        urllib3.exceptions.ReadTimeoutError(None, "/x", "Read timed out."),  # type: ignore[arg-type]
        http.client.IncompleteRead(b"abc", 10),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_transport_exceptions_are_retryable_transport_failures(exc: BaseException) -> None:
    error = classify("GetReadSet", exc)
    assert type(error) is TransportFailure
    assert error.retryable
    assert error.code == type(exc).__name__


@pytest.mark.parametrize(
    "exc",
    [
        botocore.exceptions.NoCredentialsError(),
        botocore.exceptions.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
    ],
)
def test_missing_credentials_are_access_denied(exc: BaseException) -> None:
    error = classify("ListSequenceStores", exc)
    assert type(error) is AccessDenied
    assert error.code == "NoCredentials"
    assert not error.retryable


def test_other_botocore_errors_fail_without_retry() -> None:
    error = classify("GetReadSet", botocore.exceptions.ParamValidationError(report="bad partNumber"))
    assert type(error) is BackendError
    assert not error.retryable
    assert error.code == "ParamValidationError"


def test_a_domain_error_passes_through_unchanged() -> None:
    original = NotFound("GetReadSet", "gone", "ResourceNotFoundException")
    assert classify("other", original) is original


def test_anything_else_is_a_bug_and_raised_as_it_is() -> None:
    bug = KeyError("payload")
    with pytest.raises(KeyError) as raised:
        classify("GetReadSet", bug)
    assert raised.value is bug


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ResourceNotFoundException", NotFound),
        ("AccessDeniedException", AccessDenied),
        ("ConflictException", NotActive),
        ("ValidationException", InvalidRequest),
        ("", InvalidRequest),
        ("SomethingNew", InvalidRequest),
    ],
)
def test_batch_items_are_classified_by_code(code: str, expected: type[BackendError]) -> None:
    error = classify_item("BatchDeleteReadSet", {"id": "1234567890", "code": code, "message": "no such"})
    assert type(error) is expected
    assert error.code == code
    assert error.message == "1234567890: no such"
