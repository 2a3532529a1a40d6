"""The backend's error taxonomy: what any HealthOmics client can hit, in domain terms.

botocore raises ClientError with a code string, plus a zoo of transport exceptions. The rest of
omicsfs only ever sees the classes below, so the errno table (omicsfs/errors.py) and the retry
policy (backend/retry.py) each decide from one small set of types. Keeping service-side and
client-side failures apart follows mountpoint-s3-client's ServiceError/ClientError split
(docs/architecture.md, "Errors").
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions


class BackendError(Exception):
    """A HealthOmics call failed. ``retryable`` says whether the same call may succeed later."""

    retryable = False

    def __init__(self, operation: str, message: str, code: str = "", request_id: str = "") -> None:
        super().__init__(f"{operation}: {code + ': ' if code else ''}{message}")
        self.operation = operation
        self.code = code
        self.request_id = request_id
        self.message = message


class NotFound(BackendError):
    """ResourceNotFoundException: the store, read set, reference or job is gone."""


class AccessDenied(BackendError):
    """403s and missing or expired credentials: the caller may not do this."""


class NotActive(BackendError):
    """ConflictException on a data call: the read set is archived, activating or processing."""


class InvalidRequest(BackendError):
    """ValidationException and other 4xx the caller caused: retrying cannot help."""


class Changed(BackendError):
    """PreconditionFailed (412): the object is no longer the version read before (its ETag
    changed), so its bytes must not be stitched to those already read."""


class Throttled(BackendError):
    """ThrottlingException / 429: back off and retry."""

    retryable = True


class ServiceFailure(BackendError):
    """5xx: the service failed this request; it may succeed on retry."""

    retryable = True


class TransportFailure(BackendError):
    """The connection failed, timed out or reset, or a body arrived short or long."""

    retryable = True


class AmbiguousOutcome(BackendError):
    """A call that changes state failed in a way that leaves unknown whether it took effect (the
    connection dropped, or a 5xx, after the request was sent). Never retried blindly: the caller
    must ask the service what happened (fs/write/reconcile.py does for Complete)."""


_CODE_CLASSES: dict[str, type[BackendError]] = {
    "ResourceNotFoundException": NotFound,
    "NoSuchKey": NotFound,
    "NoSuchBucket": NotFound,
    "AccessDenied": AccessDenied,
    "PreconditionFailed": Changed,
    "SlowDown": Throttled,
    "InternalError": ServiceFailure,
    "ServiceUnavailable": ServiceFailure,
    "InvalidRange": InvalidRequest,
    "AccessDeniedException": AccessDenied,
    "UnrecognizedClientException": AccessDenied,
    "InvalidSignatureException": AccessDenied,
    "ExpiredTokenException": AccessDenied,
    "ConflictException": NotActive,
    "ThrottlingException": Throttled,
    "TooManyRequestsException": Throttled,
    "RequestLimitExceeded": Throttled,
    "ServiceQuotaExceededException": InvalidRequest,
    "ValidationException": InvalidRequest,
    "RangeNotSatisfiableException": InvalidRequest,
    "InternalServerException": ServiceFailure,
    "ServiceUnavailableException": ServiceFailure,
    "RequestTimeoutException": ServiceFailure,
}

_TRANSPORT = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.HTTPClientError,
    ConnectionError,
    TimeoutError,
)


def classify(operation: str, exc: BaseException) -> BackendError:
    """Turns whatever boto3 raised into one of the domain errors above."""
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, botocore.exceptions.ClientError):
        response: Any = exc.response
        error = response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", "")) or str(exc)
        meta = response.get("ResponseMetadata", {})
        request_id = str(meta.get("RequestId", ""))
        status = int(meta.get("HTTPStatusCode", 0) or 0)
        cls = _CODE_CLASSES.get(code)
        if cls is None:
            if status in (401, 403):
                cls = AccessDenied
            elif status == 412:
                cls = Changed
            elif status == 404:
                cls = NotFound
            elif status == 429:
                cls = Throttled
            elif status >= 500:
                cls = ServiceFailure
            else:
                cls = InvalidRequest
        return cls(operation, message, code, request_id)
    if isinstance(exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError):
        return AccessDenied(operation, "no AWS credentials found", "NoCredentials")
    if isinstance(exc, _TRANSPORT):
        return TransportFailure(operation, str(exc) or type(exc).__name__, type(exc).__name__)
    # urllib3 errors that botocore does not wrap while a streaming body is read.
    if type(exc).__module__.startswith(("urllib3", "http.client")):
        return TransportFailure(operation, str(exc) or type(exc).__name__, type(exc).__name__)
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return BackendError(operation, str(exc), type(exc).__name__)
    raise exc


def classify_item(operation: str, item: dict[str, Any]) -> BackendError:
    """One entry of a batch call's ``errors`` list ({id, code, message}) as a domain error."""
    code = str(item.get("code", ""))
    message = f"{item.get('id', '')}: {item.get('message', '')}"
    return _CODE_CLASSES.get(code, InvalidRequest)(operation, message, code)
