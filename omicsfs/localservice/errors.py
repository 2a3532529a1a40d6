"""The modeled HealthOmics error shapes, raised by operations and serialized by the app.

botocore picks the exception class from the error code alone (``x-amzn-ErrorType`` / ``__type``)
and never from the HTTP status, so the code must be exactly the model's shape name: the API
reference's ``InternalServerError`` would surface as a generic ClientError
(docs/architecture.md, "Wire protocol" W4).
The HTTP statuses are checked against the model by ``tests/service/test_protocol.py``.
"""

from __future__ import annotations


class ServiceError(Exception):
    """An error the service returns to the client as a modeled exception."""

    code = "InternalServerException"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationException(ServiceError):
    code = "ValidationException"
    status = 400


class ServiceQuotaExceededException(ServiceError):
    code = "ServiceQuotaExceededException"
    status = 402


class AccessDeniedException(ServiceError):
    code = "AccessDeniedException"
    status = 403


class ResourceNotFoundException(ServiceError):
    code = "ResourceNotFoundException"
    status = 404


class NotSupportedOperationException(ServiceError):
    code = "NotSupportedOperationException"
    status = 405


class RequestTimeoutException(ServiceError):
    code = "RequestTimeoutException"
    status = 408


class ConflictException(ServiceError):
    code = "ConflictException"
    status = 409


class RangeNotSatisfiableException(ServiceError):
    code = "RangeNotSatisfiableException"
    status = 416


class ThrottlingException(ServiceError):
    code = "ThrottlingException"
    status = 429


class InternalServerException(ServiceError):
    code = "InternalServerException"
    status = 500


class RequestEntityTooLargeException(ServiceError):
    """A request body over the service's bound (app.py). Not a shape of the model: like a real
    AWS front end it answers HTTP 413, in the same rest-json error shape, and botocore raises it
    as a ClientError with this code (it is not retried)."""

    code = "RequestEntityTooLargeException"
    status = 413


#: The modeled errors (RequestEntityTooLargeException is not one).
ALL_ERRORS: tuple[type[ServiceError], ...] = (
    ValidationException,
    ServiceQuotaExceededException,
    AccessDeniedException,
    ResourceNotFoundException,
    NotSupportedOperationException,
    RequestTimeoutException,
    ConflictException,
    RangeNotSatisfiableException,
    ThrottlingException,
    InternalServerException,
)
