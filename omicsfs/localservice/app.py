"""The ASGI application: HTTP in, modeled operation, HTTP out.

A request goes: route (from the model) → count → faults → parse and validate (from the model) →
idempotency replay → operation → serialize (from the model). Errors become the rest-json error
shape botocore parses: the HTTP status of the modeled error, ``x-amzn-ErrorType`` and a body of
``{"__type", "message"}`` (docs/architecture.md, "Wire protocol" W4). Nothing escapes as a bare
500: an unexpected exception is logged and answered as ``InternalServerException``.

Request bodies are bounded: a JSON body may be MAX_JSON_BODY bytes (well above anything the model
allows; the largest legal requests, 10,000 parts in a Complete or 100 import sources with 50 tags
each, are a few MiB), an UploadReadSetPart body the 100 MiB part size and is streamed to disk,
never held in memory. A body over its bound is answered at once, from its Content-Length or as
soon as the bytes read pass the bound, while other connections keep being served; the request
head is bounded in ``connection``.

Loopback-only admin routes live under ``/_omicsfs/`` (no model path starts with an underscore):
request counts (of both endpoints), fault control, archiving a read set, replacing the bytes of
a read set file (``PUT replace/STORE/READSET/FILE``), holding background processing (``PUT
processing`` with ``hold`` or ``run``) and waiting for background work (``drain``, which also
ends a hold).
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from botocore.model import OperationModel

from omicsfs.localservice import operations as _operations  # noqa: F401  (registers operations)
from omicsfs.localservice import workers
from omicsfs.localservice.connection import CLOSE_EXTENSION
from omicsfs.localservice.context import OPERATIONS, Call, Service, Stream
from omicsfs.localservice.errors import (
    ConflictException,
    InternalServerException,
    RequestEntityTooLargeException,
    ServiceError,
    ValidationException,
)
from omicsfs.localservice.faults import Faults, FaultSpecError
from omicsfs.localservice.protocol import Router, parse_request, serialize_output, service_model
from omicsfs.localservice.s3.app import S3AccessApp
from omicsfs.localservice.streaming import InjectedDisconnect, declared_length, send_stream

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_JSON_BODY = 32 * 1024 * 1024
MAX_ADMIN_BODY = 1024 * 1024
IDEMPOTENT_OPERATIONS = frozenset(
    {
        "CreateSequenceStore",
        "UpdateSequenceStore",
        "CreateReferenceStore",
        "CreateMultipartReadSetUpload",
        "StartReadSetImportJob",
        "StartReadSetExportJob",
        "StartReadSetActivationJob",
        "StartReferenceImportJob",
    }
)


class _HideInjectedDisconnects(logging.Filter):
    """uvicorn logs an app exception after the response started; ours are deliberate."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, InjectedDisconnect)


logging.getLogger("uvicorn.error").addFilter(_HideInjectedDisconnects())


class RequestStats:
    """Per-operation request and error counts, for tests that assert what a client did."""

    def __init__(self) -> None:
        self.requests: dict[str, int] = defaultdict(int)
        self.errors: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.bytes_sent: dict[str, int] = defaultdict(int)
        #: The client sockets (address, port) requests came from, per endpoint: how many
        #: connections a client opened, so a test can tell connection reuse from one per request.
        self.clients: dict[str, set[tuple[str, int]]] = defaultdict(set)

    def saw_client(self, endpoint: str, scope: Scope) -> None:
        client = scope.get("client")
        if client:
            self.clients[endpoint].add((str(client[0]), int(client[1])))

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "errors": {op: dict(codes) for op, codes in self.errors.items()},
            "bytesSent": dict(self.bytes_sent),
            "connections": {endpoint: len(clients) for endpoint, clients in self.clients.items()},
        }


class LocalServiceApp:
    """ASGI callable serving the 41 storage operations of one Service, and its S3 access subset
    to connections that arrive on one of ``s3_ports`` (the S3 endpoint's own socket)."""

    def __init__(
        self, service: Service, faults: Faults | None = None, s3_ports: frozenset[int] = frozenset()
    ) -> None:
        self.service = service
        self.faults = faults or Faults()
        self.router = Router()
        self.stats = RequestStats()
        self.model = service_model()
        self.s3_ports = s3_ports
        self.s3 = S3AccessApp(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            server = scope.get("server") or ("", None)
            if server[1] in self.s3_ports:
                self.stats.saw_client("s3", scope)
                await self.s3(scope, receive, send)
            else:
                self.stats.saw_client("omics", scope)
                await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                workers.resume(self.service)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.service.cancel_background()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- the AWS API ---------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = str(uuid.uuid4())
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if path.startswith("/_omicsfs/"):
            await self._admin(scope, receive, send, path, headers)
            return
        match = self.router.match(scope["method"], path)
        if match is None:
            await _send_json(
                send,
                404,
                {
                    "__type": "UnknownOperationException",
                    "message": f"No operation at {scope['method']} {path}",
                },
                request_id,
                error="UnknownOperationException",
            )
            return
        op, labels = match
        self.stats.requests[op.name] += 1
        answer_fault: str | None = None
        try:
            answer_fault = await self.faults.before(op.name)
            query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            streaming = op.name == "UploadReadSetPart"
            body = b"" if streaming else await _read_body(receive, headers, MAX_JSON_BODY)
            params = parse_request(op, labels, query, headers, body)
            if streaming:
                params["_payload"] = _body_chunks(receive)
                params["_contentLength"] = _content_length(headers)
            call = Call(op.name, _region(headers, self.service.config.default_region), request_id)
            result = await self._invoke(op, call, params)
            if answer_fault == "drop":
                await _drop_connection(scope, receive, send, op.name)
            elif isinstance(result, Stream):
                await self._send_stream(send, op.name, result, answer_fault, request_id)
            elif answer_fault == "reset":  # headers go out, then the connection drops
                body = serialize_output(op, result or {})
                length = [(b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 200, "headers": length})
                raise InjectedDisconnect(op.name)
            else:
                status = op.http.get("responseCode", 200)
                await _send_raw(send, status, serialize_output(op, result or {}), request_id)
        except ServiceError as exc:
            self.stats.errors[op.name][exc.code] += 1
            if answer_fault == "drop":  # the answer is lost whatever it was
                await _drop_connection(scope, receive, send, op.name)
            else:
                await _send_error(send, exc, request_id)
        except InjectedDisconnect:
            raise
        except Exception:
            log.exception("%s failed (request %s)", op.name, request_id)
            self.stats.errors[op.name]["InternalServerException"] += 1
            await _send_error(
                send, InternalServerException(f"Internal error; request ID {request_id}"), request_id
            )

    async def _invoke(self, op: OperationModel, call: Call, params: dict[str, Any]) -> Any:
        name = op.name
        token = params.get("clientToken")
        if token is None or name not in IDEMPOTENT_OPERATIONS:
            return await OPERATIONS[name](self.service, call, params)
        request_hash = hashlib.sha256(
            json.dumps(
                {k: v for k, v in params.items() if k != "clientToken"}, sort_keys=True, default=str
            ).encode()
        ).hexdigest()
        seen = self.service.state.idempotent_response(name, token)
        if seen is not None:
            if seen[0] != request_hash:
                raise _token_reused(op, token)
            return json.loads(seen[1])
        result = await OPERATIONS[name](self.service, call, params)
        self.service.state.remember_response(name, token, request_hash, json.dumps(result))
        return result

    async def _send_stream(
        self, send: Send, name: str, stream: Stream, fault: str | None, request_id: str
    ) -> None:
        headers = [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(declared_length(stream, fault)).encode()),
            (b"x-amzn-requestid", request_id.encode()),
            *((k.lower().encode(), v.encode()) for k, v in stream.headers.items()),
        ]

        def count(sent: int) -> None:
            self.stats.bytes_sent[name] += sent

        await send_stream(send, name, stream, headers, fault, self.faults.bandwidth(name), count)

    # -- admin ---------------------------------------------------------------------------------

    async def _admin(
        self, scope: Scope, receive: Receive, send: Send, path: str, headers: dict[str, str]
    ) -> None:
        client = (scope.get("client") or ("",))[0]
        request_id = str(uuid.uuid4())
        if not (client.startswith("127.") or client == "::1"):
            await _send_json(send, 403, {"message": "admin routes answer loopback clients only"}, request_id)
            return
        method = scope["method"]
        try:
            body = await _read_body(receive, headers, MAX_ADMIN_BODY)
            parts = path.strip("/").split("/")[1:]
            await self._admin_route(send, method, parts, body, request_id)
        except ServiceError as exc:
            await _send_error(send, exc, request_id)
        except Exception:
            log.exception("admin %s %s failed (request %s)", method, path, request_id)
            await _send_error(
                send, InternalServerException(f"Internal error; request ID {request_id}"), request_id
            )

    async def _admin_route(
        self, send: Send, method: str, parts: list[str], body: bytes, request_id: str
    ) -> None:
        if parts == ["stats"] and method == "GET":
            snapshot = self.stats.snapshot()
            snapshot["faults"] = {"spec": self.faults.spec, "injected": dict(self.faults.injected)}
            await _send_json(send, 200, snapshot, request_id)
        elif parts == ["stats", "reset"] and method == "POST":
            self.stats = RequestStats()
            await _send_json(send, 200, {}, request_id)
        elif parts == ["faults"] and method == "PUT":
            try:
                self.faults = Faults.parse(body.decode("utf-8"))
            except (FaultSpecError, UnicodeDecodeError) as exc:
                raise ValidationException(f"fault spec: {exc}") from None
            await _send_json(send, 200, {"spec": self.faults.spec}, request_id)
        elif parts == ["processing"] and method == "PUT" and body in (b"hold", b"run"):
            self.service.hold_processing(body == b"hold")
            await _send_json(send, 200, {"processing": body.decode()}, request_id)
        elif parts == ["drain"] and method == "POST":
            await self.service.drain()
            await _send_json(send, 200, {}, request_id)
        elif len(parts) == 4 and parts[0] == "replace" and method == "PUT":
            try:
                doc = await workers.replace_read_set_file(self.service, parts[1], parts[2], parts[3], body)
            except ServiceError as exc:
                await _send_error(send, exc, request_id)
                return
            await _send_json(send, 200, {"id": doc["id"], "files": doc["files"]}, request_id)
        elif len(parts) == 3 and parts[0] == "archive" and method == "POST":
            doc = archive_read_set(self.service, parts[1], parts[2])
            await _send_json(send, 200, {"id": doc["id"], "status": doc["status"]}, request_id)
        else:
            await _send_json(
                send, 404, {"message": f"no admin route {method} /_omicsfs/{'/'.join(parts)}"}, request_id
            )


def _token_reused(op: OperationModel, token: str) -> ServiceError:
    """A clientToken seen before with other parameters. The API reference does not say which
    error the real service answers; this one is an error the operation declares in the model
    (ConflictException where declared, else ValidationException), so botocore raises the class a
    caller can expect."""
    declared = {shape.name for shape in op.error_shapes}
    error = ConflictException if ConflictException.code in declared else ValidationException
    return error(f"clientToken {token} was already used with different parameters.")


def archive_read_set(service: Service, store_id: str, read_set_id: str) -> dict[str, Any]:
    """Moves an ACTIVE read set to ARCHIVED, standing in for the real service's 30-day timer."""
    service.require("sequenceStore", store_id)
    doc = service.require("readSet", read_set_id, parent=store_id)
    if doc["status"] != "ACTIVE":
        raise ConflictException(f"Read set {read_set_id} is {doc['status']}, not ACTIVE.")
    doc["status"] = "ARCHIVED"
    service.state.put("readSet", read_set_id, doc, parent=store_id)
    return doc


def _region(headers: dict[str, str], default: str) -> str:
    """The region the client signed for (``Credential=AKID/DATE/REGION/omics/aws4_request``)."""
    auth = headers.get("authorization", "")
    _, _, credential = auth.partition("Credential=")
    fields = credential.split(",", 1)[0].split("/")
    return fields[2] if len(fields) >= 5 and fields[2] else default


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    """The whole request body, refused (413) once it is known to be longer than ``limit``: from
    its Content-Length before reading any of it, or when a chunked body passes the limit."""
    declared = _content_length(headers)
    if declared is not None and declared > limit:
        raise _too_large(declared, limit)
    chunks = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _too_large(size: int, limit: int) -> RequestEntityTooLargeException:
    return RequestEntityTooLargeException(
        f"The request body is {size} bytes or more; this service accepts at most {limit} bytes here."
    )


def _content_length(headers: dict[str, str]) -> int | None:
    value = headers.get("content-length")
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


async def _drop_connection(scope: Scope, receive: Receive, send: Send, name: str) -> None:
    """Loses the answer of a call that ran (the ``drop`` fault): the connection closes with
    nothing sent, and the app returns once the server has seen it close."""
    log.info("dropping the answer to %s (injected fault)", name)
    close = scope.get("extensions", {}).get(CLOSE_EXTENSION, {}).get("close")
    if close is None:  # a server without omicsfs's protocol: headers, then the cut
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]})
        raise InjectedDisconnect(name)
    close()
    while (await receive())["type"] != "http.disconnect":
        pass


async def _body_chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InternalServerException("The client disconnected during the upload.")
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body"):
            return


async def _send_raw(send: Send, status: int, body: bytes, request_id: str) -> None:
    headers = [(b"x-amzn-requestid", request_id.encode()), (b"content-length", str(len(body)).encode())]
    if body:
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_json(
    send: Send, status: int, document: Any, request_id: str, error: str | None = None
) -> None:
    body = json.dumps(document).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-amzn-requestid", request_id.encode()),
    ]
    if error:
        headers.append((b"x-amzn-errortype", error.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Send, exc: ServiceError, request_id: str) -> None:
    await _send_json(
        send, exc.status, {"__type": exc.code, "message": exc.message}, request_id, error=exc.code
    )
