"""The service's shared context and the helpers every operation uses.

Operations are plain async functions ``op(svc, call, params) -> result`` registered by name; the
app parses and validates ``params`` from the model before calling them and serializes the result
through the model afterwards, so an operation holds only behaviour.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omicsfs.localservice.blobs import Blobs
from omicsfs.localservice.errors import ResourceNotFoundException, ValidationException
from omicsfs.localservice.protocol import format_timestamp, parse_timestamp
from omicsfs.localservice.state import State

log = logging.getLogger(__name__)

DEFAULT_PART_SIZE = 104_857_600  # the real service's partSize (100 MiB)
MAX_UPLOAD_PART_SIZE = 104_857_600  # "Each part cannot be larger than 100 MB" (API reference)
DEFAULT_PAGE_SIZE = 100
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class ServiceConfig:
    data_dir: Path
    s3_root: Path
    part_size: int = DEFAULT_PART_SIZE
    processing_delay: float = 0.2
    account: str = DEFAULT_ACCOUNT
    default_region: str = DEFAULT_REGION


@dataclass
class Call:
    """What an operation may know about the request besides its parameters."""

    operation: str
    region: str
    request_id: str


@dataclass(frozen=True)
class Stream:
    """A file range to send as the raw response body (GetReadSet / GetReference)."""

    path: Path
    offset: int
    length: int
    headers: Mapping[str, str] = field(default_factory=dict)


Result = dict[str, Any] | Stream | None
Operation = Callable[["Service", Call, dict[str, Any]], Awaitable[Result]]
OPERATIONS: dict[str, Operation] = {}


def operation(name: str) -> Callable[[Operation], Operation]:
    """Registers the implementation of one modeled operation."""

    def register(func: Operation) -> Operation:
        OPERATIONS[name] = func
        return func

    return register


class Service:
    """State, files, configuration and background work of one running service."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.state = State(config.data_dir / "state.sqlite3")
        self.blobs = Blobs(config.data_dir, config.s3_root)
        self._token_key = bytes.fromhex(self.state.setting("pagination_key", secrets.token_hex(32)))
        self._tasks: set[asyncio.Task[Any]] = set()
        self._processing_open = asyncio.Event()
        self._processing_open.set()

    # -- time, ARNs --------------------------------------------------------------------------

    @staticmethod
    def now() -> str:
        return format_timestamp(dt.datetime.now(dt.UTC))

    def arn(self, region: str, resource: str) -> str:
        return f"arn:aws:omics:{region}:{self.config.account}:{resource}"

    # -- lookups that raise the modeled errors -------------------------------------------------

    def require(self, kind: str, ident: str, parent: str | None = None) -> dict[str, Any]:
        doc = self.state.get(kind, ident)
        if doc is None or (parent is not None and _parent_of(kind, doc) != parent):
            raise ResourceNotFoundException(f"The specified {_LABELS[kind]} {ident} does not exist.")
        return doc

    # -- background work ---------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Runs ``coro`` in the background, logging (never raising) its failure."""

        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task failed: %s", what)

        task = asyncio.get_running_loop().create_task(guarded(), name=what)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def processing_step(self) -> None:
        """Where background work waits before it changes state: ``--processing-delay``, then
        the hold. A delay alone made tests that look at PROCESSING_UPLOAD race the timer on a
        loaded machine; a hold keeps work pending until a test says so."""
        await asyncio.sleep(self.config.processing_delay)
        await self._processing_open.wait()

    def hold_processing(self, held: bool) -> None:
        """Holds (or lets go of) every processing step: uploads stay PROCESSING_UPLOAD, jobs
        SUBMITTED, activations ACTIVATING."""
        if held:
            self._processing_open.clear()
        else:
            self._processing_open.set()

    async def drain(self) -> None:
        """Waits for background work to finish (tests and clean shutdown); lets go of a hold."""
        self.hold_processing(False)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel_background(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- pagination ----------------------------------------------------------------------------

    def paginate(
        self,
        items: list[dict[str, Any]],
        params: Mapping[str, Any],
        scope: str,
        key: Callable[[Mapping[str, Any]], tuple[str, str]] | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of ``items`` (already in listing order) and the token for the next.

        Tokens are opaque, bound to the listing they came from and signed, so a token the service
        did not issue is a ValidationException. The listing is the operation and its container
        (``scope``) and every other parameter of the request (filter, maxResults): a token
        presented with a different filter or page size is refused, as the request it continues
        is not the one it came from. Tokens name the last item's sort key rather than an offset,
        so pages stay consistent while items are added or removed (moto's paginator does the
        same with ``unique_attribute``).
        """
        limit = params.get("maxResults", DEFAULT_PAGE_SIZE)
        key = key or _sort_key
        request = json.dumps(
            {k: v for k, v in params.items() if k != "nextToken"}, sort_keys=True, default=str
        )
        scope = f"{scope}/{hashlib.sha256(request.encode()).hexdigest()[:16]}"
        start = 0
        token = params.get("nextToken")
        if token is not None:
            after = self._open_token(token, scope)
            start = next((i for i, item in enumerate(items) if key(item) > after), len(items))
        page = items[start : start + limit]
        more = start + limit < len(items)
        return page, (self._make_token(scope, key(page[-1])) if more and page else None)

    def _make_token(self, scope: str, key: tuple[str, str]) -> str:
        body = base64.urlsafe_b64encode(json.dumps([scope, *key]).encode()).decode().rstrip("=")
        mac = hmac.new(self._token_key, body.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{body}.{mac}"

    def _open_token(self, token: str, scope: str) -> tuple[str, str]:
        invalid = ValidationException(
            "The nextToken is invalid: it was not issued for this listing (the same operation, "
            "store, filter and maxResults)."
        )
        body, _, mac = token.partition(".")
        expected = hmac.new(self._token_key, body.encode(), hashlib.sha256).hexdigest()[:32]
        if not hmac.compare_digest(mac, expected):
            raise invalid
        try:
            token_scope, created, ident = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            raise invalid from None
        if token_scope != scope:
            raise invalid
        return str(created), str(ident)


def _sort_key(item: Mapping[str, Any]) -> tuple[str, str]:
    ident = item.get("id") or item.get("uploadId") or ""
    return str(item.get("creationTime", "")), str(ident)


_LABELS = {
    "sequenceStore": "sequence store",
    "referenceStore": "reference store",
    "readSet": "read set",
    "reference": "reference",
    "upload": "upload",
    "importJob": "import job",
    "exportJob": "export job",
    "activationJob": "activation job",
    "referenceImportJob": "reference import job",
}

_PARENT_FIELD = {
    "readSet": "sequenceStoreId",
    "upload": "sequenceStoreId",
    "importJob": "sequenceStoreId",
    "exportJob": "sequenceStoreId",
    "activationJob": "sequenceStoreId",
    "reference": "referenceStoreId",
    "referenceImportJob": "referenceStoreId",
}


def _parent_of(kind: str, doc: Mapping[str, Any]) -> str | None:
    field_name = _PARENT_FIELD.get(kind)
    return None if field_name is None else doc.get(field_name)


# Filters: each listing names, per filter field, how it applies to a document.
FilterRule = Callable[[Mapping[str, Any], Any], bool]


def equals(doc_field: str) -> FilterRule:
    return lambda doc, wanted: doc.get(doc_field) == wanted


def at_or_after(doc_field: str) -> FilterRule:
    return lambda doc, bound: _time(doc.get(doc_field)) >= bound


def at_or_before(doc_field: str) -> FilterRule:
    return lambda doc, bound: _time(doc.get(doc_field)) <= bound


CREATED_BOUNDS: dict[str, FilterRule] = {
    "createdAfter": at_or_after("creationTime"),
    "createdBefore": at_or_before("creationTime"),
}
JOB_FILTER: dict[str, FilterRule] = {"status": equals("status"), **CREATED_BOUNDS}


def apply_filter(
    items: Iterable[dict[str, Any]], wanted: Mapping[str, Any] | None, rules: Mapping[str, FilterRule]
) -> list[dict[str, Any]]:
    """Exact matches and inclusive time bounds (docs/architecture.md, "Wire protocol" W6)."""
    active = [(rules[k], v) for k, v in (wanted or {}).items() if k in rules]
    return [item for item in items if all(rule(item, value) for rule, value in active)]


def _time(value: Any) -> dt.datetime:
    if value is None:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return parse_timestamp(value, "stored timestamp")


def pick(doc: Mapping[str, Any], *names: str) -> dict[str, Any]:
    """The named members of a document (the shapes of list items are subsets of the records)."""
    return {name: doc[name] for name in names if doc.get(name) is not None}
