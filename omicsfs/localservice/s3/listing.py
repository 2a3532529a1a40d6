"""ListObjectsV2 and ListObjects (V1) paging over a bucket's keys.

Both versions walk the same key-ordered list; they differ only in how a client says where to go
on: V2 with ``start-after`` or an opaque ``continuation-token``, V1 with ``marker``. With a
delimiter, the keys that share a prefix up to the delimiter fold into one ``CommonPrefixes``
entry, which counts once against ``max-keys`` (at most 1,000), as in Amazon S3
(https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html). The continuation point
is the last key or common prefix returned, so a page never repeats what an earlier one gave.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from omicsfs.localservice.s3.errors import InvalidArgument
from omicsfs.localservice.s3.objects import S3Object

MAX_KEYS = 1000


@dataclass
class Page:
    contents: list[S3Object] = field(default_factory=list)
    common_prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    last: str | None = None  # the last key or common prefix on the page

    @property
    def key_count(self) -> int:
        return len(self.contents) + len(self.common_prefixes)


def parse_max_keys(value: str | None) -> int:
    if value is None:
        return MAX_KEYS
    try:
        wanted = int(value)
    except ValueError:
        raise InvalidArgument("Provided max-keys not an integer or within integer range",
                              ArgumentName="max-keys", ArgumentValue=value) from None  # fmt: skip
    if wanted < 0:
        raise InvalidArgument("Argument maxKeys must be an integer between 0 and 2147483647",
                              ArgumentName="max-keys", ArgumentValue=value)  # fmt: skip
    return min(wanted, MAX_KEYS)


def page(objects: Sequence[S3Object], prefix: str, delimiter: str, after: str, max_keys: int) -> Page:
    """The next ``max_keys`` entries past ``after`` among the keys that start with ``prefix``."""
    result = Page()
    for obj in objects:
        if not obj.key.startswith(prefix) or obj.key.encode() <= after.encode():
            continue
        common = _common_prefix(obj.key, prefix, delimiter)
        if common is not None and (common == after or common in result.common_prefixes[-1:]):
            continue  # this group was returned already
        if result.key_count >= max_keys:
            result.truncated = max_keys > 0
            break
        if common is None:
            result.contents.append(obj)
        else:
            result.common_prefixes.append(common)
        result.last = common or obj.key
    return result


def _common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
    if not delimiter:
        return None
    at = key.find(delimiter, len(prefix))
    return None if at < 0 else key[: at + len(delimiter)]


def continuation_token(bucket: str, last: str) -> str:
    """An opaque token naming where the next page starts, bound to its bucket."""
    return base64.urlsafe_b64encode(json.dumps([bucket, last]).encode()).decode()


def open_continuation_token(bucket: str, token: str) -> str:
    invalid = InvalidArgument("The continuation token provided is incorrect",
                              ArgumentName="continuation-token", ArgumentValue=token)  # fmt: skip
    try:
        token_bucket, last = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError, binascii.Error):
        raise invalid from None
    if token_bucket != bucket or not isinstance(last, str):
        raise invalid
    return last
