"""Sending a stored file range as a response body, with the body faults applied on the way.

Shared by the HealthOmics data operations (GetReadSet, GetReference) and the S3 access subset
(GetObject), so a ``cut``, ``short``, ``reset`` or ``bandwidth`` rule means the same thing on
both planes. The range is read from disk in 1 MiB chunks: a 100 MiB part is never in memory.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from omicsfs.localservice.context import Stream
from omicsfs.localservice.pacing import Pacer

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
Headers = Sequence[tuple[bytes, bytes]]

STREAM_CHUNK = 1024 * 1024


class InjectedDisconnect(Exception):
    """Raised mid-response to drop the connection for a ``cut``/``reset`` fault."""


def declared_length(stream: Stream, fault: str | None) -> int:
    """The Content-Length to announce: a ``short`` body announces what it really sends."""
    return stream.length // 2 if fault == "short" else stream.length


async def send_stream(
    send: Send,
    operation: str,
    stream: Stream,
    headers: Headers,
    fault: str | None,
    bandwidth: float | None,
    count: Callable[[int], None],
    status: int = 200,
) -> None:
    """Sends ``headers`` (which must carry the Content-Length from ``declared_length``) and the
    range, reporting the body bytes sent to ``count``. ``cut`` sends half the body and drops the
    connection, ``reset`` drops it after the headers, ``short`` sends half with a matching
    length."""
    to_send = stream.length // 2 if fault in ("short", "cut") else stream.length
    fd = os.open(stream.path, os.O_RDONLY)
    try:
        await send({"type": "http.response.start", "status": status, "headers": list(headers)})
        if fault == "reset":
            raise InjectedDisconnect(operation)
        pacer = Pacer(bandwidth) if bandwidth else None
        offset, remaining = stream.offset, to_send
        while remaining > 0:
            chunk = os.pread(fd, min(STREAM_CHUNK, remaining), offset)
            if not chunk:
                break
            offset += len(chunk)
            remaining -= len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if pacer is not None:
                await pacer.sent(len(chunk))
        count(to_send - remaining)
        if fault == "cut":
            raise InjectedDisconnect(operation)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        os.close(fd)
