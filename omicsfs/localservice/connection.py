"""The HTTP connection: a bounded request head, errors in the modeled shape, closing on purpose.

uvicorn's httptools protocol buffers a request head without limit (its ``h11`` setting
``h11_max_incomplete_event_size`` does not apply to httptools), and re-joins a header value at
every packet, so one client streaming a 150 MiB header took a gigabyte and stalled every other
client for seconds. Here the head (request line and headers) is cut off at MAX_REQUEST_HEAD,
well above any request the model allows (the longest is UntagResource's 50 tag keys of 128
characters, percent-encoded: about 20 KiB), and answered 400 in the rest-json error shape
botocore parses (``x-amzn-ErrorType``, ``{"__type", "message"}``, a request ID) before the
connection closes; on the S3 endpoint's port in S3's XML (``RequestHeaderSectionTooLarge``).
Bodies are bounded by the app, which reads them (README "Request limits").

The ``drop`` fault needs to close a connection without answering, which ASGI cannot express (an
app that returns without a response gets a 500 from uvicorn). The protocol therefore hands the
app a ``close`` callable in ``scope["extensions"][CLOSE_EXTENSION]``; after calling it the app waits for the
``http.disconnect`` that follows, and returns having sent nothing.
"""

from __future__ import annotations

import json
import logging
import uuid

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from omicsfs.localservice.s3 import documents
from omicsfs.localservice.s3.errors import InvalidRequest, RequestHeaderSectionTooLarge, S3Error

log = logging.getLogger(__name__)

#: Request line plus headers; a longer head is refused (400) and the connection closed.
MAX_REQUEST_HEAD = 64 * 1024
#: The scope extension holding the callable that closes the connection without an answer.
CLOSE_EXTENSION = "omicsfs.close_connection"


def error_response(status: int, reason: str, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 response carrying a rest-json error, closing the connection."""
    body = json.dumps({"__type": code, "message": message}).encode()
    headers = [("x-amzn-errortype", code), ("x-amzn-requestid", str(uuid.uuid4()))]
    return _response(status, reason, "application/json", body, headers)


def s3_error_response(error: S3Error) -> bytes:
    """The same in S3's XML error document, for connections to the S3 endpoint."""
    request_id = uuid.uuid4().hex[:16].upper()
    body = documents.error(error, "", request_id)
    return _response(error.status, "Bad Request", "application/xml", body, [("x-amz-request-id", request_id)])


def _response(
    status: int, reason: str, content_type: str, body: bytes, extra: list[tuple[str, str]]
) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {reason}",
        f"content-type: {content_type}",
        f"content-length: {len(body)}",
        *(f"{name}: {value}" for name, value in extra),
        "connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


class ServiceHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounded head, modeled 400s and the close extension.

    ``serving`` makes the class for one server: connections to one of its ``s3_ports`` are the
    S3 endpoint's and get their 400s in S3's XML."""

    s3_ports: frozenset[int] = frozenset()
    _head_bytes: int | None = 0  # bytes of the request head read so far; None inside a body

    @classmethod
    def serving(cls, s3_ports: frozenset[int]) -> type[ServiceHttpProtocol]:
        return type(cls.__name__, (cls,), {"s3_ports": s3_ports})

    def data_received(self, data: bytes) -> None:
        while data and not self.transport.is_closing():
            if self._head_bytes is None:
                super().data_received(data)
                return
            piece, data = (
                data[: MAX_REQUEST_HEAD - self._head_bytes],
                data[MAX_REQUEST_HEAD - self._head_bytes :],
            )
            self._head_bytes += len(piece)
            super().data_received(piece)
            over = self._head_bytes is not None and self._head_bytes >= MAX_REQUEST_HEAD
            if over and not self.transport.is_closing():
                self._refuse_head()
                return

    def _refuse_head(self) -> None:
        log.warning("refused a request head over %d bytes from %s", MAX_REQUEST_HEAD, self.client)
        message = f"The request line and headers exceed {MAX_REQUEST_HEAD} bytes."
        if self._is_s3():
            response = s3_error_response(
                RequestHeaderSectionTooLarge(message, MaxSizeAllowed=str(MAX_REQUEST_HEAD))
            )
        else:
            response = error_response(400, "Bad Request", "ValidationException", message)
        self.transport.write(response)
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """A request httptools cannot parse, answered in the endpoint's error shape."""
        if self._is_s3():
            response = s3_error_response(InvalidRequest(msg))
        else:
            response = error_response(400, "Bad Request", "ValidationException", msg)
        self.transport.write(response)
        self.transport.close()

    def _is_s3(self) -> bool:
        return self.server is not None and self.server[1] in self.s3_ports

    # httptools parser callbacks: where a head ends and the next begins.

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {CLOSE_EXTENSION: {"close": self.transport.close}}

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._head_bytes = 0
        super().on_message_complete()
