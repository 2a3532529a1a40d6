"""The second data plane: ranged GETs and listings through the stores' S3 access points.

HealthOmics exposes every ACTIVE read set file as an object behind its store's S3 access point
(``files.<f>.s3Access.s3Uri`` in the metadata, ``s3Access.s3Uri`` on the store). Unlike
GetReadSet it takes byte ranges, so a cache miss costs a block instead of a 100 MiB part, and
ListObjectsV2 lists a whole store with every file's size in pages of 1,000 keys
(docs/architecture.md, "Two data planes"). Keys are never built here: they come from the
metadata's URIs or from a listing.

The client is boto3's ``s3`` client with botocore's retries off (backend/retry.py owns them) and
the access point alias as the bucket name; against the local service, path-style addressing
on its S3 endpoint. Every body is received with ``readinto`` like a part (omics.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import boto3
import trio
from botocore.config import Config

from omicsfs.backend import retry
from omicsfs.backend.errors import TransportFailure, classify
from omicsfs.backend.omics import BotoPartBody
from omicsfs.backend.stats import BackendStats
from omicsfs.config import BackendLimits

log = logging.getLogger(__name__)

T = TypeVar("T")
Raw = Mapping[str, Any]


@dataclass(frozen=True)
class S3Location:
    """``s3://bucket/key``: the bucket is the access point alias."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        if not uri.startswith("s3://") or "/" not in uri[5:]:
            raise ValueError(f"not an s3:// URI with a key: {uri!r}")
        bucket, key = uri[5:].split("/", 1)
        return cls(bucket, key)


@dataclass(frozen=True)
class ListedObject:
    key: str
    size: int
    etag: str


@dataclass
class RangeBody:
    """An open ranged GET: the body, and the object's ETag it came from."""

    body: BotoPartBody
    etag: str


def make_s3_client(session: boto3.session.Session, *, endpoint_url: str | None, pool_connections: int) -> Any:
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=pool_connections,
        connect_timeout=10,
        read_timeout=90,
        s3={"addressing_style": "path" if endpoint_url else "auto"},
        user_agent_extra="omicsfs",
    )
    region = session.region_name or ("us-east-1" if endpoint_url else None)
    return session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


class S3Backend:
    """Ranged reads and listings of access-point objects, on worker threads, retried."""

    def __init__(self, client: Any, limits: BackendLimits, stats: BackendStats) -> None:
        self.client = client
        self.limits = limits
        self.stats = stats
        self._control = trio.CapacityLimiter(limits.control_threads)
        self._data = trio.CapacityLimiter(limits.data_streams)

    async def _once(self, operation: str, call: Callable[[], T], limiter: trio.CapacityLimiter) -> T:
        self.stats.api_calls[f"S3:{operation}"] += 1
        try:
            return await trio.to_thread.run_sync(call, limiter=limiter)
        except Exception as exc:
            error = classify(f"S3:{operation}", exc)
            self.stats.api_errors[f"S3:{operation}:{error.code or type(error).__name__}"] += 1
            raise error from exc

    async def retrying(self, operation: str, attempt_once: Callable[[], Awaitable[T]]) -> T:
        return await retry.retrying(self.limits.retry, self.stats, f"S3:{operation}", attempt_once)

    async def probe(self, prefix: S3Location) -> None:
        """One cheap call that proves the caller may list (and so read) under the prefix."""
        call = partial(self.client.list_objects_v2, Bucket=prefix.bucket, Prefix=prefix.key, MaxKeys=1)

        async def once() -> None:
            await self._once("ListObjectsV2", call, self._control)

        await self.retrying("ListObjectsV2", once)

    async def head(self, location: S3Location) -> str:
        """The object's ETag: proves it is readable (HeadObject needs s3:GetObject)."""
        call = partial(self.client.head_object, Bucket=location.bucket, Key=location.key)

        async def once() -> str:
            response: Raw = await self._once("HeadObject", call, self._control)
            return str(response.get("ETag", ""))

        return await self.retrying("HeadObject", once)

    async def open_range(self, location: S3Location, start: int, end: int, if_match: str | None) -> RangeBody:
        """One attempt at bytes [start, end) of an object (the caller retries and resumes)."""
        extra = {"IfMatch": if_match} if if_match else {}
        byte_range = f"bytes={start}-{end - 1}"
        call = partial(
            self.client.get_object, Bucket=location.bucket, Key=location.key, Range=byte_range, **extra
        )
        response: Raw = await self._once("GetObject", call, self._data)
        body = response.get("Body")
        if body is None:
            raise TransportFailure("S3:GetObject", "response without a body")
        length = int(response.get("ContentLength", -1))
        if length != end - start:
            body.close()
            raise TransportFailure("S3:GetObject", f"asked for {end - start} bytes, the answer has {length}")
        return RangeBody(BotoPartBody(body, "S3:GetObject"), str(response.get("ETag", "")))

    async def list_objects(self, prefix: S3Location) -> list[ListedObject]:
        """Every object under the prefix, 1,000 per page."""
        found: list[ListedObject] = []
        token: str | None = None
        while True:
            args: dict[str, Any] = {"Bucket": prefix.bucket, "Prefix": prefix.key, "MaxKeys": 1000}
            if token:
                args["ContinuationToken"] = token
            call = partial(self.client.list_objects_v2, **args)

            async def once(call: Callable[[], Raw] = call) -> Raw:
                page: Raw = await self._once("ListObjectsV2", call, self._control)
                return page

            page = await self.retrying("ListObjectsV2", once)
            found.extend(
                ListedObject(item["Key"], int(item["Size"]), str(item.get("ETag", "")))
                for item in page.get("Contents", [])
            )
            token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
            if not token:
                return found
