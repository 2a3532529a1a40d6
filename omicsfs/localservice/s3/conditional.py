"""``Range`` and the conditional headers of GetObject/HeadObject, as Amazon S3 applies them.

- Range (RFC 9110 §14): ``bytes=FIRST-LAST``, ``bytes=FIRST-`` and ``bytes=-SUFFIX``. A LAST past
  the end is cut to the end, a SUFFIX longer than the object gives the whole object; a FIRST at
  or past the end (or ``-0``) is ``InvalidRange`` (416). S3 serves one range only: a header it
  cannot use (several ranges, bad syntax, LAST before FIRST) is ignored and the whole object is
  sent with 200, as RFC 9110 lets a server do.
- Preconditions are evaluated before the range (RFC 9110 §13.2.2), with S3's documented
  combinations (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html): a true
  If-Match overrides a false If-Unmodified-Since, a false If-None-Match overrides a true
  If-Modified-Since. Failing If-Match / If-Unmodified-Since is 412; matching If-None-Match or
  not-modified-since is 304.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass

from omicsfs.localservice.s3.errors import InvalidRange, NotModified, PreconditionFailed

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_FAILED = "At least one of the pre-conditions you specified did not hold"


@dataclass(frozen=True)
class ByteRange:
    first: int
    last: int  # inclusive

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.first}-{self.last}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single range to serve, or None for the whole object; raises InvalidRange (416)."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    start, end = match.group(1), match.group(2)
    if start == "":
        suffix = int(end)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(header, size)
        return ByteRange(max(0, size - suffix), size - 1)
    first = int(start)
    if end and int(end) < first:
        return None
    if first >= size:
        raise _unsatisfiable(header, size)
    return ByteRange(first, min(int(end), size - 1) if end else size - 1)


def _unsatisfiable(header: str, size: int) -> InvalidRange:
    return InvalidRange(
        "The requested range is not satisfiable", RangeRequested=header, ActualObjectSize=str(size)
    )


def check_preconditions(headers: Mapping[str, str], etag: str, last_modified: dt.datetime) -> None:
    """Raises PreconditionFailed (412) or NotModified (304) as S3 would; ``etag`` is quoted."""
    if_match = headers.get("if-match")
    if_none_match = headers.get("if-none-match")
    modified = last_modified.replace(microsecond=0)  # HTTP dates have whole seconds
    if if_match is not None:
        if not _etag_in(if_match, etag):
            raise PreconditionFailed(_FAILED, Condition="If-Match")
    else:
        since = _http_date(headers.get("if-unmodified-since"))
        if since is not None and modified > since:
            raise PreconditionFailed(_FAILED, Condition="If-Unmodified-Since")
    if if_none_match is not None:
        if _etag_in(if_none_match, etag):
            raise NotModified("Not Modified")
    else:
        since = _http_date(headers.get("if-modified-since"))
        if since is not None and modified <= since:
            raise NotModified("Not Modified")


def _etag_in(header: str, etag: str) -> bool:
    """Whether ``etag`` is one of the header's entity tags (weak or strong, quoted or not)."""
    wanted = etag.strip('"')
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag.strip('"') == wanted:
            return True
    return False


def _http_date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # an unreadable date is ignored, as RFC 9110 §13.1.3 says
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def http_date(value: dt.datetime) -> str:
    return email.utils.format_datetime(value.astimezone(dt.UTC), usegmt=True)
