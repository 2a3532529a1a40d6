"""S3's error codes, each with the HTTP status Amazon S3 answers it with.

botocore's s3 client takes the code from the ``<Error><Code>`` element of the body (and, for a
HEAD, which has no body, from the status alone), so the codes are exactly S3's
(https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList).
"""

from __future__ import annotations


class S3Error(Exception):
    """An error answered in S3's XML shape; ``fields`` become extra elements of ``<Error>``."""

    code = "InternalError"
    status = 500

    def __init__(self, message: str, **fields: str) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields


class RequestHeaderSectionTooLarge(S3Error):
    """The request line and headers are over the service's bound (connection.py)."""

    code = "RequestHeaderSectionTooLarge"
    status = 400


class InvalidRequest(S3Error):
    code = "InvalidRequest"
    status = 400


class AccessDenied(S3Error):
    code = "AccessDenied"
    status = 403


class NoSuchBucket(S3Error):
    code = "NoSuchBucket"
    status = 404


class NoSuchKey(S3Error):
    code = "NoSuchKey"
    status = 404


class InvalidArgument(S3Error):
    code = "InvalidArgument"
    status = 400


class InvalidRange(S3Error):
    code = "InvalidRange"
    status = 416


class PreconditionFailed(S3Error):
    code = "PreconditionFailed"
    status = 412


class NotModified(S3Error):
    """Not an error to HTTP, but botocore raises a ClientError with code ``304`` for it."""

    code = "NotModified"
    status = 304


class MethodNotAllowed(S3Error):
    code = "MethodNotAllowed"
    status = 405


class NotImplementedByEmulator(S3Error):
    code = "NotImplemented"
    status = 501


class SlowDown(S3Error):
    code = "SlowDown"
    status = 503


class InternalError(S3Error):
    code = "InternalError"
    status = 500
