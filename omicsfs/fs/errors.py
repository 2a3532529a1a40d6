"""The one errno table: every failure a filesystem request can meet, mapped in one place.

SEMANTICS.md documents this table; tests/unit/test_errno_table.py checks every row and
tests/mount/test_errors.py checks it through the kernel. The choices follow gcsfuse's mapping
with Mountpoint's write errors (docs/architecture.md, "Errors"); where they differ from
Mountpoint (which returns EIO for AccessDenied) the comment says why.
"""

from __future__ import annotations

import errno

import trio

from omicsfs.backend.errors import (
    AccessDenied,
    BackendError,
    Changed,
    InvalidRequest,
    NotActive,
    NotFound,
    ServiceFailure,
    Throttled,
    TransportFailure,
)


class FsError(Exception):
    """A request the filesystem refuses, with the errno it answers."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(reason or errno.errorcode.get(code, str(code)))
        self.errno = code
        self.reason = reason


def to_errno(exc: BaseException) -> int:
    if isinstance(exc, FsError):
        return exc.errno
    if isinstance(exc, NotFound):
        return errno.ENOENT
    if isinstance(exc, AccessDenied):
        # EACCES, not Mountpoint's EIO: "permission denied" tells the user to look at IAM.
        return errno.EACCES
    if isinstance(exc, NotActive):
        # Archived, activating or still processing: the data exists but may not be read now.
        return errno.EACCES
    if isinstance(exc, Changed):
        # The object changed under an open file (Mountpoint's answer to a mutated object).
        return errno.ESTALE
    if isinstance(exc, Throttled | ServiceFailure | TransportFailure):
        # Only after the retries ran out (backend/retry.py).
        return errno.EIO
    if isinstance(exc, InvalidRequest):
        # The service rejected a request omicsfs built: a bug or a limit, never the user's input.
        return errno.EIO
    if isinstance(exc, BackendError):
        return errno.EIO
    if isinstance(exc, trio.Cancelled):
        return errno.EINTR
    if isinstance(exc, PermissionError):
        return errno.EACCES
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    # Anything else is a bug in omicsfs: the request fails, the daemon keeps serving.
    return errno.EIO
