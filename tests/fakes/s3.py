"""An in-memory S3 access point over the fake backend's read sets, for the unit tier.

It answers what omicsfs asks of S3Backend (head, ranged GETs with If-Match, listings) from the
same bytes FakeBackend serves as parts, so a file read on both planes must come out identical.
Hooks: ``deny`` (every call AccessDenied), ``change(key)`` (the object's ETag moves), ``ranges``
(every ranged GET asked for, as (key, start, end)).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from omicsfs.backend import retry
from omicsfs.backend.errors import AccessDenied, Changed, NotFound
from omicsfs.backend.models import ListedObject, RangeBody, S3Location, Status
from omicsfs.backend.stats import BackendStats
from tests.fakes.backend import S3_BUCKET, FakeBackend, FakePartBody

T = TypeVar("T")


class FakeS3:
    def __init__(self, backend: FakeBackend) -> None:
        self.backend = backend
        self.stats: BackendStats = backend.stats
        self.calls: Counter[str] = Counter()
        self.ranges: list[tuple[str, int, int]] = []
        self.bodies: list[FakePartBody] = []
        self._closes = trio.lowlevel.ParkingLot()
        self.deny = False
        self._versions: Counter[str] = Counter()

    def change(self, key: str) -> None:
        self._versions[key] += 1

    def _object(self, location: S3Location, operation: str) -> bytes:
        self.calls[operation] += 1
        self.stats.api_calls[f"S3:{operation}"] += 1
        if self.deny:
            raise AccessDenied(f"S3:{operation}", "denied by the access policy (fake)", "AccessDenied")
        if location.bucket == S3_BUCKET:
            for objects in self.backend.objects.values():
                for stored in objects.values():
                    if stored.summary.status != Status.ACTIVE:
                        continue
                    for name, data in stored.files.items():
                        if stored.s3_uri(name) == f"s3://{location.bucket}/{location.key}":
                            return data
        raise NotFound(f"S3:{operation}", f"{location.key} not found (fake)", "NoSuchKey")

    def etag(self, key: str, data: bytes) -> str:
        return '"' + hashlib.md5(data + str(self._versions[key]).encode()).hexdigest() + '"'

    async def retrying(self, operation: str, attempt_once: Callable[[], Awaitable[T]]) -> T:
        return await retry.retrying(self.backend.retry_policy, self.stats, f"S3:{operation}", attempt_once)

    async def all_closed(self) -> None:
        """Returns once every body handed out has been closed (its fetch is over)."""
        while not all(body.closed for body in self.bodies):
            await self._closes.park()

    async def head(self, location: S3Location) -> str:
        await trio.lowlevel.checkpoint()
        return self.etag(location.key, self._object(location, "HeadObject"))

    async def open_range(self, location: S3Location, start: int, end: int, if_match: str | None) -> RangeBody:
        await trio.lowlevel.checkpoint()
        data = self._object(location, "GetObject")
        etag = self.etag(location.key, data)
        if if_match is not None and if_match != etag:
            raise Changed("S3:GetObject", "the object changed (fake)", "PreconditionFailed")
        self.ranges.append((location.key, start, end))
        body = FakePartBody(self.backend, data[start:end], self.backend.chunk, None)
        body.on_close = self._closes.unpark_all  # closed on the trio thread, after its receive
        self.bodies.append(body)
        return RangeBody(body, etag)

    async def list_objects(self, prefix: S3Location) -> list[ListedObject]:
        await trio.lowlevel.checkpoint()
        self.calls["ListObjectsV2"] += 1
        if self.deny:
            raise AccessDenied("S3:ListObjectsV2", "denied (fake)", "AccessDenied")
        found = []
        for objects in self.backend.objects.values():
            for stored in objects.values():
                if stored.summary.status != Status.ACTIVE:
                    continue
                for name, data in stored.files.items():
                    uri = stored.s3_uri(name)
                    if uri and uri.startswith(f"s3://{prefix.bucket}/{prefix.key}"):
                        key = uri.split("/", 3)[3]
                        found.append(ListedObject(key, len(data), self.etag(key, data)))
        return sorted(found, key=lambda o: o.key)
