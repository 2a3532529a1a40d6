"""What ``omicsfs stats --watch`` shows of the write path: bytes as they move, and how uploads ended.

Per file being written: bytes written by the user, bytes to upload (after gzip for plain FASTQ),
bytes uploaded as botocore reads each part body (backend/omics.py, CountingPayload), parts done,
the upload's rate since its first part and the time left for what has been written; a total
across uploads; and the uploads that ended in the last few minutes with their outcome (the read
set and its status, or the error), the way ``rclone copy -P`` keeps finished transfers on screen.
The document is plain JSON in ``.omicsfs/stats.json``; omicsfs/cli/stats.py renders it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

#: Ended uploads stay in the view this long, and at most this many.
RECENT_SECONDS = 300.0
RECENT_MAX = 20


@dataclass(frozen=True)
class UploadOutcome:
    """How one upload ended: a read set (``read_set_id``) or an error (nothing was kept)."""

    files: tuple[str, ...]
    store_id: str
    read_set_id: str | None
    error: str | None
    uploaded_bytes: int
    seconds: float
    ended_at: float  # trio time
    ended_wall: float  # seconds since the epoch, for the document


@dataclass(frozen=True)
class FileProgress:
    name: str
    store_id: str
    state: str
    written_bytes: int
    stored_bytes: int
    uploaded_bytes: int
    parts_done: int
    started_at: float | None  # trio time of the upload's first part

    def rate(self, now: float) -> float | None:
        if self.started_at is None or now <= self.started_at:
            return None
        return self.uploaded_bytes / (now - self.started_at)


def _eta(pending: int, rate: float | None) -> float | None:
    if pending <= 0:
        return 0.0
    return pending / rate if rate else None


class RecentOutcomes:
    def __init__(self) -> None:
        self._items: deque[UploadOutcome] = deque(maxlen=RECENT_MAX)

    def add(self, outcome: UploadOutcome) -> None:
        self._items.appendleft(outcome)

    def current(self, now: float) -> list[UploadOutcome]:
        return [item for item in self._items if now - item.ended_at <= RECENT_SECONDS]


def document(
    files: Iterable[FileProgress], recent: list[UploadOutcome], now: float,
    status_of: Callable[[str, str], str | None],
) -> dict[str, Any]:  # fmt: skip
    """``uploads.in_flight``, ``uploads.total`` and ``uploads.recent`` of stats.json."""
    in_flight: dict[str, Any] = {}
    written = stored = uploaded = parts = 0
    total_rate = 0.0
    for item in files:
        rate = item.rate(now)
        in_flight[item.name] = {
            "store_id": item.store_id,
            "state": item.state,
            "written_bytes": item.written_bytes,
            "stored_bytes": item.stored_bytes,
            "uploaded_bytes": item.uploaded_bytes,
            "parts_done": item.parts_done,
            "rate_bytes_per_second": round(rate) if rate is not None else None,
            "eta_seconds": _round(_eta(item.stored_bytes - item.uploaded_bytes, rate)),
        }
        written += item.written_bytes
        stored += item.stored_bytes
        uploaded += item.uploaded_bytes
        parts += item.parts_done
        total_rate += rate or 0.0
    total = {
        "files": len(in_flight),
        "written_bytes": written,
        "stored_bytes": stored,
        "uploaded_bytes": uploaded,
        "parts_done": parts,
        "rate_bytes_per_second": round(total_rate),
        "eta_seconds": _round(_eta(stored - uploaded, total_rate)),
    }
    ended = [
        {
            "files": list(item.files),
            "store_id": item.store_id,
            "read_set_id": item.read_set_id,
            "status": (status_of(item.store_id, item.read_set_id) if item.read_set_id else None)
            or ("PROCESSING_UPLOAD" if item.read_set_id else "FAILED"),
            "error": item.error,
            "uploaded_bytes": item.uploaded_bytes,
            "seconds": round(item.seconds, 1),
            "ended": time.strftime("%H:%M:%S", time.localtime(item.ended_wall)),
            "ended_seconds_ago": round(now - item.ended_at, 1),
        }
        for item in recent
    ]
    return {"in_flight": in_flight, "total": total, "recent": ended}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
