"""Settling a Complete whose answer was lost: ask the service, never guess.

CompleteMultipartReadSetUpload makes the read set; if its answer is lost (the connection drops
after the service acted) or it fails with a 5xx, the read set may or may not exist. Reporting EIO
then could leave a read set the user does not know about, and the user's retry makes a second
one; reporting success could claim a read set that was never made. So the mount finds out:

1. If the upload is still listed (ListMultipartReadSetUploads), Complete did not take effect and
   is sent again: the service completes an upload at most once.
2. Otherwise the read set it made carries the upload's tags, among them a token unique to this
   upload (manager.py, ``UPLOAD_TAG``): the read sets with the upload's name (ListReadSets
   filtered by name) are checked with ListTagsForResource.
3. Neither: the service may not list it yet; asked again with the retry policy's backoff, then
   the upload is reported failed (and aborted, which finds nothing to abort).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from omicsfs.backend.errors import AmbiguousOutcome, BackendError, NotFound
from omicsfs.backend.interface import Backend

log = logging.getLogger(__name__)

#: Tag on every upload (and so on its read set) whose value is unique to that upload.
UPLOAD_TAG = "omicsfs:upload"


class UploadFailed(Exception):
    """The upload cannot finish; it has been (or is being) aborted. The message says why."""


@dataclass(frozen=True)
class CompleteRequest:
    store_id: str
    upload_id: str
    name: str
    token: str
    parts: list[dict[str, Any]]


class _Undetermined(BackendError):
    """Not yet known whether the read set was made: ask again after a backoff."""

    retryable = True


async def made_by(backend: Backend, store_id: str, name: str, token: str) -> str | None:
    """The ID of the read set whose upload carried ``token``, if the service lists one."""
    for candidate in await backend.find_read_sets(store_id, name):
        if not candidate.arn:
            continue
        try:
            tags = await backend.list_tags(candidate.arn)
        except NotFound:
            continue  # deleted meanwhile
        if tags.get(UPLOAD_TAG) == token:
            return candidate.id
    return None


async def reconcile_complete(backend: Backend, request: CompleteRequest) -> str:
    """The read set ID if the upload was completed (by the lost call or by sending it again);
    UploadFailed if it was not and cannot be."""

    async def attempt() -> str:
        uploads = await backend.list_uploads(request.store_id)
        if any(upload.upload_id == request.upload_id for upload in uploads):
            try:
                read_set_id = await backend.complete_upload(
                    request.store_id, request.upload_id, request.parts
                )
            except AmbiguousOutcome as error:
                raise _Undetermined("CompleteMultipartReadSetUpload", f"again ambiguous: {error}") from error
            except NotFound:
                pass  # completed between the listing and this call: look for the read set
            else:
                log.info("upload %s (%r) was still open: Complete sent again made read set %s",
                         request.upload_id, request.name, read_set_id)  # fmt: skip
                return read_set_id
        found = await made_by(backend, request.store_id, request.name, request.token)
        if found is not None:
            log.warning("Complete of upload %s (%r) had taken effect although its answer was lost: "
                        "read set %s carries the upload's token", request.upload_id, request.name,
                        found)  # fmt: skip
            return found
        raise _Undetermined("CompleteMultipartReadSetUpload", "the upload is gone and no read set "
                            "carries its token yet")  # fmt: skip

    try:
        return await backend.retrying("CompleteMultipartReadSetUpload", attempt)
    except _Undetermined as error:
        raise UploadFailed(
            f"CompleteMultipartReadSetUpload: its answer was lost and the service shows neither the "
            f"upload nor a read set made from it ({error.message})"
        ) from None
    except BackendError as error:
        raise UploadFailed(f"CompleteMultipartReadSetUpload failed: {error}") from error
