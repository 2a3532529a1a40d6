"""The rest-json wire protocol, derived from botocore's own ``omics`` service model.

Nothing here is a hand-typed table: routes, parameter locations, types, constraints and output
shapes all come from the model botocore ships, so the service cannot drift from the client
(moto does the same in ``BaseResponse._get_action_from_method_and_request_uri``,
https://github.com/getmoto/moto/blob/master/moto/core/responses.py).

Subtleties, each handled below:
1. Paths are split on ``/`` *before* percent-decoding: ARNs arrive as ``arn%3Aaws%3A...%2F123`` and
   ``%2F`` must not become a separator (docs/architecture.md, "Wire protocol" W1).
2. botocore validates only required members, min lengths and min values (docs/architecture.md,
   "Wire protocol" W2); the server must enforce max lengths, enums, patterns, ranges and list
   counts. Patterns use Java's ``\\p{..}`` classes, hence the ``regex`` module. They are
   applied as full matches so that ``abc1234567`` is not a valid numeric ID.
3. An operation with no body members sends no body at all (ListMultipartReadSetUploads): an empty
   body is ``{}``.
4. Every timestamp shape carries ``timestampFormat: iso8601``, overriding the rest-json default of
   epoch seconds (docs/architecture.md, "Wire protocol" W3): requests may send either, responses
   are ISO-8601 UTC strings.
5. No input may make the service fail (README "What it does"): whatever the bytes, a request is
   answered with ValidationException when it is not a well-formed instance of the model. JSON is
   refused when it nests deeper than any model shape, holds ``NaN``/``Infinity`` or unpaired
   surrogates; integers must fit the model type (32-bit ``integer``, 64-bit ``long``) as the real
   service's parser requires, and query, header and label integers are plain ASCII digits (Python's
   ``int()`` would also take ``+1``, `` 1`` and ``1_0``); timestamps must be representable
   (years 1-9999, UTC).
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import botocore.session
import regex
from botocore.model import OperationModel, ServiceModel, Shape, StructureShape

from omicsfs.localservice.errors import ValidationException

#: The 41 storage operations: 38 storage operations plus the 3 tag operations.
STORAGE_OPERATIONS: tuple[str, ...] = (
    "CreateSequenceStore",
    "GetSequenceStore",
    "UpdateSequenceStore",
    "DeleteSequenceStore",
    "ListSequenceStores",
    "CreateReferenceStore",
    "GetReferenceStore",
    "DeleteReferenceStore",
    "ListReferenceStores",
    "ListReadSets",
    "GetReadSetMetadata",
    "GetReadSet",
    "BatchDeleteReadSet",
    "CreateMultipartReadSetUpload",
    "UploadReadSetPart",
    "CompleteMultipartReadSetUpload",
    "AbortMultipartReadSetUpload",
    "ListMultipartReadSetUploads",
    "ListReadSetUploadParts",
    "ListReferences",
    "GetReferenceMetadata",
    "GetReference",
    "DeleteReference",
    "StartReadSetImportJob",
    "GetReadSetImportJob",
    "ListReadSetImportJobs",
    "StartReadSetExportJob",
    "GetReadSetExportJob",
    "ListReadSetExportJobs",
    "StartReadSetActivationJob",
    "GetReadSetActivationJob",
    "ListReadSetActivationJobs",
    "StartReferenceImportJob",
    "GetReferenceImportJob",
    "ListReferenceImportJobs",
    "PutS3AccessPolicy",
    "GetS3AccessPolicy",
    "DeleteS3AccessPolicy",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
)

#: Members whose model pattern is not enforced, with the reason. GetReference's ``Range`` is
#: modeled as ``[\p{N}||\p{P}]+`` (digits and punctuation), which would refuse the RFC 7233 form
#: ``bytes=0-99`` that every HTTP client sends; the operation parses the header itself.
_PATTERN_EXEMPT: frozenset[tuple[str, str]] = frozenset({("GetReference", "range")})

#: The range of the model's integer types (Smithy: ``integer`` is 32-bit, ``long`` 64-bit).
_INTEGER_RANGE = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_PLAIN_INTEGER = regex.compile(r"-?[0-9]+")


@cache
def service_model() -> ServiceModel:
    """botocore's bundled ``omics`` model (loaded once; it is a few MB of JSON)."""
    session = botocore.session.get_session()
    model: ServiceModel = session.get_service_model("omics")
    return model


@dataclass(frozen=True)
class Route:
    """One operation's (method, URI template) compiled for matching a raw request path."""

    operation: OperationModel
    method: str
    segments: tuple[str, ...]  # literal text, or "{name}" / "{name+}" for labels

    @property
    def literal_count(self) -> int:
        return sum(1 for s in self.segments if not s.startswith("{"))

    def match(self, method: str, raw_segments: Sequence[str]) -> dict[str, str] | None:
        if method != self.method:
            return None
        labels: dict[str, str] = {}
        for i, template in enumerate(self.segments):
            if template.startswith("{") and template.endswith("+}"):
                rest = raw_segments[i:]
                if not rest or not all(rest):
                    return None
                labels[template[1:-2]] = urllib.parse.unquote("/".join(rest))
                return labels
            if i >= len(raw_segments):
                return None
            segment = raw_segments[i]
            if template.startswith("{"):
                if not segment:
                    return None
                labels[template[1:-1]] = urllib.parse.unquote(segment)
            elif segment != template:
                return None
        if len(raw_segments) != len(self.segments):
            return None
        return labels


class Router:
    """Maps (method, raw path) to an operation of the model, most specific template first."""

    def __init__(self, operation_names: Sequence[str] = STORAGE_OPERATIONS) -> None:
        model = service_model()
        routes = []
        for name in operation_names:
            op = model.operation_model(name)
            uri = op.http["requestUri"].split("?", 1)[0]
            routes.append(Route(op, op.http["method"], tuple(uri.strip("/").split("/"))))
        # A literal segment beats a label at the same depth: `readset/batch/delete` before
        # `readset/{id}/...` (docs/architecture.md, "Wire protocol" W1).
        self.routes = sorted(routes, key=lambda r: (-r.literal_count, -len(r.segments)))

    def match(self, method: str, raw_path: str) -> tuple[OperationModel, dict[str, str]] | None:
        raw_segments = raw_path.strip("/").split("/")
        for route in self.routes:
            labels = route.match(method, raw_segments)
            if labels is not None:
                return route.operation, labels
        return None

    def path_exists(self, raw_path: str) -> bool:
        raw_segments = raw_path.strip("/").split("/")
        return any(route.match(route.method, raw_segments) is not None for route in self.routes)


# --------------------------------------------------------------------------------------------
# Request parsing


def parse_request(
    op: OperationModel,
    labels: Mapping[str, str],
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> dict[str, Any]:
    """Builds the operation's input dict from the HTTP request and validates it against the model.

    Streaming payload members (UploadReadSetPart's body) are left out: the app streams them.
    """
    shape = op.input_shape
    if shape is None:
        return {}
    params: dict[str, Any] = {}
    body_members: dict[str, Shape] = {}
    streamed: list[str] = []
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire_name = member.serialization.get("name", name)
        if location == "uri":
            if wire_name in labels:
                params[name] = labels[wire_name]
        elif location == "querystring":
            values = [v for k, v in query if k == wire_name]
            if not values:
                continue
            if member.type_name == "list":
                params[name] = [_parse_scalar(member.member, v, name) for v in values]  # type: ignore[attr-defined]
            else:
                params[name] = _parse_scalar(member, values[-1], name)
        elif location == "header":
            value = headers.get(wire_name.lower())
            if value is not None:
                params[name] = _parse_scalar(member, value, name)
        elif member.serialization.get("streaming") or name == shape.serialization.get("payload"):
            streamed.append(name)
        else:
            body_members[name] = member
    if body_members:
        document = _parse_json_body(body)
        for name, member in body_members.items():
            if name in document and document[name] is not None:
                params[name] = _from_json(member, document[name], name)
    # The app streams the payload itself; it is present by construction (requiresLength).
    validate(shape, {**params, **dict.fromkeys(streamed, b"")}, op.name, path="")
    return params


def _parse_json_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        # json.loads recurses per nesting level and stops at the interpreter's recursion limit
        # with RecursionError, which is how a document nested 100,000 deep is refused.
        document = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValidationException(f"Request body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(document, dict):
        raise ValidationException("Request body must be a JSON object")
    return document


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_scalar(shape: Shape, text: str, name: str) -> Any:
    """A query, header or label value as the model's type."""
    if shape.type_name in ("integer", "long"):
        if not _PLAIN_INTEGER.fullmatch(text):
            raise ValidationException(f"Value '{text[:40]}' at '{name}' is not an integer (plain digits)")
        if len(text.lstrip("-")) > 20:  # past any 64-bit value; int() would take 4300 digits
            raise ValidationException(f"Value at '{name}' is out of range for a {shape.type_name}")
        return int(text)
    if shape.type_name == "boolean":
        if text not in ("true", "false"):
            raise ValidationException(f"Value '{text[:40]}' at '{name}' is not 'true' or 'false'")
        return text == "true"
    if shape.type_name == "timestamp":
        return parse_timestamp(text, name)
    return _text(text, name)


def _from_json(shape: Shape, value: Any, path: str) -> Any:
    """Converts a decoded JSON value to Python, checking the JSON type against the shape."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise ValidationException(f"Value at '{path}' must be an object")
        assert isinstance(shape, StructureShape)
        out = {}
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                out[name] = _from_json(member, value[name], f"{path}.{name}")
        return out
    if kind == "list":
        if not isinstance(value, list):
            raise ValidationException(f"Value at '{path}' must be a list")
        return [_from_json(shape.member, v, f"{path}[{i}]") for i, v in enumerate(value)]  # type: ignore[attr-defined]
    if kind == "map":
        if not isinstance(value, dict):
            raise ValidationException(f"Value at '{path}' must be a map")
        return {
            _text(k, f"{path}.<key>"): _from_json(shape.value, v, f"{path}.{k}")  # type: ignore[attr-defined]
            for k, v in value.items()
        }
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationException(f"Value at '{path}' must be an integer")
        return value
    if kind == "timestamp":
        return parse_timestamp(value, path)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValidationException(f"Value at '{path}' must be a boolean")
        return value
    if not isinstance(value, str):
        raise ValidationException(f"Value at '{path}' must be a string")
    return _text(value, path)


def _text(value: str, path: str) -> str:
    """Refuses unpaired surrogates (JSON's ``"\\ud800"``): no UTF-8 store or response can hold them."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationException(f"Value at '{path}' is not valid Unicode") from None
    return value


def parse_timestamp(value: Any, path: str) -> dt.datetime:
    """A timestamp in UTC, from an ISO-8601 string or epoch seconds (botocore may send either).

    Out-of-range values (``1e30``, ``-1e30``, year 10000, an offset that leaves years 1-9999)
    are a ValidationException, never an OverflowError.
    """
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return dt.datetime.fromtimestamp(value, tz=dt.UTC)
        if isinstance(value, str):
            try:
                parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
            return parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    except (ValueError, OverflowError, OSError):
        raise ValidationException(f"Value at '{path}' is not a representable timestamp") from None
    raise ValidationException(f"Value at '{path}' is not a timestamp")


# --------------------------------------------------------------------------------------------
# Validation


@cache
def _compiled(pattern: str) -> Any:
    return regex.compile(pattern)


def validate(shape: Shape, value: Any, operation: str, path: str) -> None:
    """Enforces the model's constraints; raises ValidationException naming the first violation."""
    kind = shape.type_name
    meta = shape.metadata
    label = path.lstrip(".") or shape.name
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        for required in shape.required_members:
            if required not in value:
                raise ValidationException(f"Missing required parameter '{_join(path, required)}'")
        for name, member in shape.members.items():
            if name in value:
                # Constraints live on the member's target shape (botocore merges them).
                if (operation, name) in _PATTERN_EXEMPT and not path:
                    _check_length(member, value[name], _join(path, name))
                    continue
                validate(member, value[name], operation, _join(path, name))
        return
    if kind == "list":
        _check_count(meta, len(value), label)
        for i, item in enumerate(value):
            validate(shape.member, item, operation, f"{path}[{i}]")  # type: ignore[attr-defined]
        return
    if kind == "map":
        _check_count(meta, len(value), label)
        for key, item in value.items():
            validate(shape.key, key, operation, f"{path}.<key>")  # type: ignore[attr-defined]
            validate(shape.value, item, operation, f"{path}.{key}")  # type: ignore[attr-defined]
        return
    if kind in ("integer", "long"):
        low, high = _INTEGER_RANGE[kind]
        if not low <= value <= high:
            raise ValidationException(f"Value at '{label}' is out of range for a {kind}")
        if "min" in meta and value < meta["min"]:
            raise ValidationException(f"Value {value} at '{label}' must be at least {meta['min']}")
        if "max" in meta and value > meta["max"]:
            raise ValidationException(f"Value {value} at '{label}' must be at most {meta['max']}")
        return
    if kind == "string":
        enum = meta.get("enum")
        if enum and value not in enum:
            raise ValidationException(f"Value '{value}' at '{label}' must be one of: {', '.join(enum)}")
        _check_length(shape, value, label)
        pattern = meta.get("pattern")
        if pattern and not _compiled(pattern).fullmatch(value):
            raise ValidationException(f"Value at '{label}' does not match pattern {pattern}")


def _check_length(shape: Shape, value: str, label: str) -> None:
    meta = shape.metadata
    if "min" in meta and len(value) < meta["min"]:
        raise ValidationException(f"Value at '{label}' must have length at least {meta['min']}")
    if "max" in meta and len(value) > meta["max"]:
        raise ValidationException(f"Value at '{label}' must have length at most {meta['max']}")


def _check_count(meta: Mapping[str, Any], count: int, label: str) -> None:
    if "min" in meta and count < meta["min"]:
        raise ValidationException(f"'{label}' must have at least {meta['min']} entries")
    if "max" in meta and count > meta["max"]:
        raise ValidationException(f"'{label}' must have at most {meta['max']} entries")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# --------------------------------------------------------------------------------------------
# Response serialization


def format_timestamp(value: dt.datetime) -> str:
    """ISO-8601 UTC with milliseconds, as the service prints them: 2022-07-01T20:58:42.878Z."""
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def serialize_output(op: OperationModel, result: Mapping[str, Any]) -> bytes:
    """Renders an operation's result as its JSON body, keeping only modeled members.

    A key the model does not know, or a member the model marks required that is missing, is a bug
    in the operation, not something to send: it raises so the conformance suite catches it.
    """
    shape = op.output_shape
    if shape is None or not shape.members:
        return b""
    document = _to_json(shape, result, op.name)
    return json.dumps(document, separators=(",", ":")).encode()


def _to_json(shape: Shape, value: Any, path: str) -> Any:
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        # Keys starting with "_" are the service's private bookkeeping, never sent.
        unknown = {k for k in value if not k.startswith("_")} - set(shape.members)
        if unknown:
            raise KeyError(f"{path}: not in the model's {shape.name}: {sorted(unknown)}")
        missing = [name for name in shape.required_members if value.get(name) is None]
        if missing:
            raise KeyError(f"{path}: the model's {shape.name} requires {missing}")
        return {
            name: _to_json(member, value[name], f"{path}.{name}")
            for name, member in shape.members.items()
            if value.get(name) is not None
        }
    if kind == "list":
        return [_to_json(shape.member, v, path) for v in value]  # type: ignore[attr-defined]
    if kind == "map":
        return {k: _to_json(shape.value, v, path) for k, v in value.items()}  # type: ignore[attr-defined]
    if kind == "timestamp":
        if isinstance(value, str):
            value = parse_timestamp(value, path)
        return format_timestamp(value)
    return value
