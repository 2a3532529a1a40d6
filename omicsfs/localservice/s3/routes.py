"""Which S3 operation a path-style request is: ``/<bucket>``, ``/<bucket>/<key>``, and the query.

S3 tells operations apart by method, by whether a key is present and by "subresource" query
parameters (``?tagging``, ``?uploads``, ``?list-type=2``...), as botocore's own ``s3`` model
writes them (``requestUri`` of each operation). Every request gets an operation name, also the
ones this service refuses, so the request counters and fault rules can name them.
"""

from __future__ import annotations

import enum
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass


class Kind(enum.Enum):
    READ = "read"  # in the emulated subset
    REFUSED = "refused"  # a real S3 operation the access point does not allow: AccessDenied
    UNKNOWN_METHOD = "unknown method"  # not an S3 method at all: MethodNotAllowed


#: The operations the access point serves; every other operation is refused.
READ_OPERATIONS = frozenset(
    {"ListObjectsV2", "ListObjects", "HeadBucket", "GetObject", "HeadObject", "GetObjectTagging"}
)


@dataclass(frozen=True)
class S3Route:
    operation: str
    bucket: str
    key: str  # "" for bucket operations

    @property
    def kind(self) -> Kind:
        if self.operation in READ_OPERATIONS:
            return Kind.READ
        return Kind.UNKNOWN_METHOD if self.operation == "UnknownMethod" else Kind.REFUSED

    @property
    def resource(self) -> str:
        return f"/{self.bucket}/{self.key}" if self.key else f"/{self.bucket}"


def route(method: str, raw_path: str, query: Mapping[str, str], headers: Mapping[str, str]) -> S3Route:
    bucket, _, raw_key = raw_path.lstrip("/").partition("/")
    bucket = urllib.parse.unquote(bucket)
    key = urllib.parse.unquote(raw_key)
    if not bucket:
        return S3Route("ListBuckets" if method == "GET" else "UnknownMethod", "", "")
    name = _object_operation(method, query, headers) if key else _bucket_operation(method, query)
    return S3Route(name, bucket, key)


def _bucket_operation(method: str, query: Mapping[str, str]) -> str:
    sub = _subresource(query, _BUCKET_SUBRESOURCES)
    if method == "GET":
        if query.get("list-type") == "2":
            return "ListObjectsV2"
        if sub is None:
            return "ListObjects"
        listings = {"uploads": "ListMultipartUploads", "versions": "ListObjectVersions"}
        return listings.get(sub, f"GetBucket{_camel(sub)}")
    if method == "HEAD":
        return "HeadBucket"
    if method == "PUT":
        return "CreateBucket" if sub is None else f"PutBucket{_camel(sub)}"
    if method == "DELETE":
        return "DeleteBucket" if sub is None else f"DeleteBucket{_camel(sub)}"
    if method == "POST":
        return "DeleteObjects" if "delete" in query else "PostObject"
    return "UnknownMethod"


def _object_operation(method: str, query: Mapping[str, str], headers: Mapping[str, str]) -> str:
    sub = _subresource(query, _OBJECT_SUBRESOURCES)
    if method in ("GET", "HEAD"):
        if method == "GET" and "uploadId" in query:
            return "ListParts"
        if sub is None:
            return "GetObject" if method == "GET" else "HeadObject"
        return f"GetObject{_camel(sub)}"
    if method == "PUT":
        if "uploadId" in query:
            return "UploadPartCopy" if "x-amz-copy-source" in headers else "UploadPart"
        if "x-amz-copy-source" in headers:
            return "CopyObject"
        return "PutObject" if sub is None else f"PutObject{_camel(sub)}"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        return {"restore": "RestoreObject", "select": "SelectObjectContent"}.get(sub or "", "PostObject")
    if method == "DELETE":
        if "uploadId" in query:
            return "AbortMultipartUpload"
        return "DeleteObject" if sub is None else f"DeleteObject{_camel(sub)}"
    return "UnknownMethod"


_BUCKET_SUBRESOURCES = (
    "accelerate", "acl", "analytics", "cors", "encryption", "intelligent-tiering", "inventory",
    "lifecycle", "location", "logging", "metrics", "notification", "object-lock", "ownershipControls",
    "policy", "policyStatus", "publicAccessBlock", "replication", "requestPayment", "tagging",
    "uploads", "versioning", "versions", "website",
)  # fmt: skip
_OBJECT_SUBRESOURCES = (
    "acl", "attributes", "legal-hold", "restore", "retention", "select", "tagging", "torrent",
)  # fmt: skip


def _subresource(query: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    return next((name for name in names if name in query), None)


def _camel(sub: str) -> str:
    """``legal-hold`` -> ``LegalHold``, ``publicAccessBlock`` -> ``PublicAccessBlock``."""
    return "".join(part[:1].upper() + part[1:] for part in sub.split("-"))
