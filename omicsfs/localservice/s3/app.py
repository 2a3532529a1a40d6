"""The ASGI handler of the S3 endpoint: route, count, inject faults, authorize, answer in S3's XML.

It shares the service's state, request counters and fault rules with the HealthOmics endpoint
(``LocalServiceApp`` hands each request of the S3 socket to it), so ``/_omicsfs/stats`` counts
both planes and one ``--faults`` line drives both. A throttle rule answers ``SlowDown`` (503) and
an error rule ``InternalError`` (500) here, as S3 does; body faults and bandwidth pacing apply to
GetObject bodies exactly as to GetReadSet parts (``streaming.py``).
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl

from omicsfs.localservice.context import Service, Stream
from omicsfs.localservice.errors import InternalServerException, ThrottlingException
from omicsfs.localservice.s3 import documents, listing
from omicsfs.localservice.s3.conditional import check_preconditions, http_date, parse_range
from omicsfs.localservice.s3.errors import (
    AccessDenied,
    InternalError,
    InvalidArgument,
    MethodNotAllowed,
    NoSuchKey,
    NotImplementedByEmulator,
    NotModified,
    S3Error,
    SlowDown,
)
from omicsfs.localservice.s3.objects import (
    Bucket,
    S3Object,
    find_bucket,
    find_object,
    list_objects,
    object_tags,
)
from omicsfs.localservice.s3.policy import (
    GET_OBJECT,
    GET_OBJECT_TAGGING,
    LIST_BUCKET,
    AccessRequest,
    Decision,
    default_policy,
    evaluate,
    parse_policy,
)
from omicsfs.localservice.s3.routes import Kind, S3Route, route
from omicsfs.localservice.streaming import InjectedDisconnect, declared_length, send_stream

if TYPE_CHECKING:
    from omicsfs.localservice.app import RequestStats
    from omicsfs.localservice.faults import Faults

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]


class Host(Protocol):
    """What the S3 handler shares with the HealthOmics app (both may be replaced at run time)."""

    service: Service
    stats: RequestStats
    faults: Faults


class S3AccessApp:
    """Serves the read-only S3 access subset of every sequence store, path-style."""

    def __init__(self, host: Host) -> None:
        self.host = host

    @property
    def service(self) -> Service:
        return self.host.service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = secrets.token_hex(8).upper()
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").split("?", 1)[0]
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request = route(scope["method"], raw_path, query, headers)
        stats = self.host.stats
        stats.requests[request.operation] += 1
        head = scope["method"] == "HEAD"
        try:
            body_fault = await self._faults_before(request.operation)
            await self._dispatch(send, request, query, headers, body_fault, request_id)
        except NotModified as exc:  # not an error to HTTP: no body
            stats.errors[request.operation][exc.code] += 1
            await _send_empty(send, exc.status, request_id, [])
        except S3Error as exc:
            stats.errors[request.operation][exc.code] += 1
            # A refused upload's body is never read; the client may still send it (or, after
            # "Expect: 100-continue", may not), so the connection cannot be reused.
            unread = request.kind is not Kind.READ and _has_body(headers)
            await _send_error(send, exc, request, request_id, head, close=unread)
        except InjectedDisconnect:
            raise
        except Exception:
            log.exception("%s failed (request %s)", request.operation, request_id)
            stats.errors[request.operation]["InternalError"] += 1
            failure = InternalError("We encountered an internal error. Please try again.")
            await _send_error(send, failure, request, request_id, head)

    async def _faults_before(self, operation: str) -> str | None:
        """The shared fault rules, their HealthOmics errors turned into S3's."""
        try:
            return await self.host.faults.before(operation)
        except ThrottlingException:
            raise SlowDown("Please reduce your request rate.") from None
        except InternalServerException:
            raise InternalError("We encountered an internal error. Please try again.") from None

    async def _dispatch(
        self,
        send: Send,
        request: S3Route,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body_fault: str | None,
        request_id: str,
    ) -> None:
        if request.kind is Kind.UNKNOWN_METHOD:
            raise MethodNotAllowed("The specified method is not allowed against this resource.")
        if request.kind is Kind.REFUSED:
            # The access point is read-only whatever the policy says ("HealthOmics supports copying
            # to an Amazon S3 access point, but not writing to an access point", s3-access.html).
            raise AccessDenied("Access Denied")
        bucket = find_bucket(self.service, request.bucket)
        if request.operation in ("ListObjectsV2", "ListObjects"):
            body = await self._list(bucket, query, version2=request.operation == "ListObjectsV2")
            await _send_xml(send, body, request_id)
        elif request.operation == "HeadBucket":
            self._authorize(bucket, LIST_BUCKET, bucket.access_point_arn, {})
            region = str(bucket.store["arn"]).split(":")[3]
            await _send_empty(send, 200, request_id, [(b"x-amz-bucket-region", region.encode())])
        elif request.operation == "GetObjectTagging":
            obj = await self._readable(bucket, request.key, GET_OBJECT_TAGGING)
            await _send_xml(send, documents.tagging(object_tags(self.service, bucket, obj)), request_id)
        else:
            obj = await self._readable(bucket, request.key, GET_OBJECT)
            if "partNumber" in query:
                raise NotImplementedByEmulator("GetObject by partNumber is not emulated; use Range.")
            await self._send_object(send, request, bucket, obj, headers, body_fault, request_id)

    # -- authorization ---------------------------------------------------------------------

    def _decision(self, bucket: Bucket, action: str, resource: str, context: Mapping[str, str]) -> Decision:
        account = self.service.config.account
        stored = self.service.state.policy(bucket.access_point_arn)
        policy: dict[str, Any] | None = (
            default_policy(bucket.access_point_arn, account, bucket.store["id"])
            if stored is None
            else parse_policy(str(stored["s3AccessPolicy"]))
        )
        request = AccessRequest(action, resource, account, dict(context))
        return evaluate(policy, request)

    def _authorize(self, bucket: Bucket, action: str, resource: str, context: Mapping[str, str]) -> None:
        full = {"aws:principalarn": f"arn:aws:iam::{self.service.config.account}:root", **context}
        decision = self._decision(bucket, action, resource, full)
        if decision is not Decision.ALLOW:
            log.debug("%s on %s: %s", action, resource, decision.value)
            raise AccessDenied("Access Denied")

    async def _readable(self, bucket: Bucket, key: str, action: str) -> S3Object:
        """The object if the policy allows ``action`` on it and its read set is ACTIVE."""
        obj = await find_object(self.service, bucket, key)
        context = {}
        if obj is not None:
            tags = object_tags(self.service, bucket, obj)
            context = {f"s3:existingobjecttag/{k.lower()}": v for k, v in tags.items()}
        self._authorize(bucket, action, f"{bucket.access_point_arn}/object/{key}", context)
        if obj is None:
            # S3 says NoSuchKey only to a caller who may list the bucket; others get AccessDenied
            # (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html). The listing
            # permission is judged for the key as the prefix.
            self._authorize(bucket, LIST_BUCKET, bucket.access_point_arn, {"s3:prefix": key})
            raise NoSuchKey("The specified key does not exist.", Key=key)
        if not obj.reachable:
            log.debug("%s: read set %s is %s", key, obj.read_set["id"], obj.read_set["status"])
            raise AccessDenied("Access Denied")
        return obj

    # -- answers -----------------------------------------------------------------------------

    async def _list(self, bucket: Bucket, query: Mapping[str, str], version2: bool) -> bytes:
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        max_keys = listing.parse_max_keys(query.get("max-keys"))
        encoding = query.get("encoding-type")
        if encoding not in (None, "url"):
            raise InvalidArgument("Invalid Encoding Method specified in Request",
                                  ArgumentName="encoding-type", ArgumentValue=encoding)  # fmt: skip
        self._authorize(bucket, LIST_BUCKET, bucket.access_point_arn, {"s3:prefix": prefix})
        echo = documents.Listing(
            bucket=bucket.name,
            prefix=prefix,
            delimiter=delimiter,
            max_keys=max_keys,
            url_encoded=encoding == "url",
            owner=self.service.config.account,
        )
        objects = await list_objects(self.service, bucket)
        if not version2:
            marker = query.get("marker", "")
            page = listing.page(objects, prefix, delimiter, marker, max_keys)
            return documents.list_objects_v1(replace(echo, marker=marker), page)
        token, start_after = query.get("continuation-token"), query.get("start-after")
        if token is not None:  # a token wins over start-after, as in S3
            after = listing.open_continuation_token(bucket.name, token)
        else:
            after = start_after or ""
        page = listing.page(objects, prefix, delimiter, after, max_keys)
        next_token = None
        if page.truncated and page.last is not None:
            next_token = listing.continuation_token(bucket.name, page.last)
        echo = replace(echo, start_after=start_after, continuation_token=token)
        return documents.list_objects_v2(echo, page, next_token)

    async def _send_object(
        self,
        send: Send,
        request: S3Route,
        bucket: Bucket,
        obj: S3Object,
        headers: Mapping[str, str],
        body_fault: str | None,
        request_id: str,
    ) -> None:
        check_preconditions(headers, obj.etag, obj.last_modified)
        wanted = parse_range(headers.get("range"), obj.size)
        stream = Stream(obj.path, wanted.first, wanted.length) if wanted else Stream(obj.path, 0, obj.size)
        answer = [
            (b"content-type", b"binary/octet-stream"),
            (b"accept-ranges", b"bytes"),
            (b"etag", obj.etag.encode()),
            (b"last-modified", http_date(obj.last_modified).encode()),
            (b"x-amz-server-side-encryption", b"aws:kms"),
            *_ids(request_id),
        ]
        if wanted is not None:
            answer.append((b"content-range", wanted.content_range(obj.size).encode()))
        status = 206 if wanted else 200
        if request.operation == "HeadObject":
            answer.append((b"content-length", str(stream.length).encode()))
            await send({"type": "http.response.start", "status": status, "headers": answer})
            await send({"type": "http.response.body", "body": b""})
            return
        tags = object_tags(self.service, bucket, obj)
        answer.append((b"x-amz-tagging-count", str(len(tags)).encode()))
        answer.append((b"content-length", str(declared_length(stream, body_fault)).encode()))
        stats = self.host.stats

        def count(sent: int) -> None:
            stats.bytes_sent[request.operation] += sent

        bandwidth = self.host.faults.bandwidth(request.operation)
        await send_stream(send, request.operation, stream, answer, body_fault, bandwidth, count, status)


def _ids(request_id: str) -> Headers:
    host_id = base64.b64encode(secrets.token_bytes(24))
    return [(b"x-amz-request-id", request_id.encode()), (b"x-amz-id-2", host_id)]


def _has_body(headers: Mapping[str, str]) -> bool:
    return headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers


async def _send_xml(
    send: Send, body: bytes, request_id: str, status: int = 200, extra: Headers | None = None
) -> None:
    headers = [
        (b"content-type", b"application/xml"),
        (b"content-length", str(len(body)).encode()),
        *_ids(request_id),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_empty(send: Send, status: int, request_id: str, extra: Headers) -> None:
    headers = [(b"content-length", b"0"), *_ids(request_id), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _send_error(
    send: Send, exc: S3Error, request: S3Route, request_id: str, head: bool, close: bool = False
) -> None:
    """S3's error document; a HEAD answer has no body, so botocore names it by its status."""
    body = b"" if head else documents.error(exc, request.resource, request_id)
    extra = [(b"connection", b"close")] if close else []
    await _send_xml(send, body, request_id, status=exc.status, extra=extra)
