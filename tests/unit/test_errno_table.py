"""fs/errors.py: every row of SEMANTICS.md's errno table, mapped by the one ``to_errno``.

The ids name the table's rows. Rows the filesystem raises itself (FsError) are checked here for
the mapping and, where the unit tier reaches them, through the filesystem in test_filesystem.py
and test_uploading.py; tests/mount/test_errors.py checks them through the kernel.
"""

from __future__ import annotations

import errno

import pytest
import trio

from omicsfs.backend.errors import (
    AccessDenied,
    BackendError,
    InvalidRequest,
    NotActive,
    NotFound,
    ServiceFailure,
    Throttled,
    TransportFailure,
)
from omicsfs.fs.errors import FsError, to_errno
from omicsfs.fs.inodes import InodeTable

ROWS = [
    ("object, job or store gone", NotFound("GetReadSet", "gone", "ResourceNotFoundException"), errno.ENOENT),
    ("name not in the folder", FsError(errno.ENOENT), errno.ENOENT),
    ("unknown xattr", FsError(errno.ENODATA), errno.ENODATA),
    ("directory operation on a file", FsError(errno.ENOTDIR), errno.ENOTDIR),
    ("access denied", AccessDenied("GetReadSet", "no", "AccessDeniedException"), errno.EACCES),
    ("missing credentials", AccessDenied("ListSequenceStores", "none", "NoCredentials"), errno.EACCES),
    ("read set not ACTIVE", NotActive("GetReadSet", "ARCHIVED", "ConflictException"), errno.EACCES),
    ("throttled after the retries", Throttled("GetReadSet", "slow down", "ThrottlingException"), errno.EIO),
    ("5xx after the retries", ServiceFailure("GetReadSet", "oops", "InternalServerException"), errno.EIO),
    ("reset or short body after the retries", TransportFailure("GetReadSet", "reset"), errno.EIO),
    ("request the service rejects (a bug)", InvalidRequest("GetReadSet", "bad", "ValidationException"),
     errno.EIO),
    ("other backend failure", BackendError("GetReadSet", "odd", "ParamValidationError"), errno.EIO),
    ("unknown inode", FsError(errno.ESTALE), errno.ESTALE),
    ("mutation on a read-only mount", FsError(errno.EROFS), errno.EROFS),
    ("bad name, contradicting bytes, no reference, out of order", FsError(errno.EINVAL), errno.EINVAL),
    ("failed upload, mate 2 alone", FsError(errno.EIO), errno.EIO),
    ("immutable read set, file being written", FsError(errno.EPERM), errno.EPERM),
    ("write after completion", FsError(errno.EBADF), errno.EBADF),
    ("a local permission error", PermissionError(errno.EPERM, "not allowed"), errno.EACCES),
    ("a local OS error keeps its errno", OSError(errno.ENOSPC, "disk full"), errno.ENOSPC),
    ("an OS error without errno (a bug)", OSError("odd"), errno.EIO),
    ("anything unexpected (a bug)", RuntimeError("bug"), errno.EIO),
    ("anything unexpected (a bug)", KeyError("inode"), errno.EIO),
]  # fmt: skip


@pytest.mark.parametrize(("exc", "code"), [(exc, code) for _, exc, code in ROWS],
                         ids=[row for row, _, _ in ROWS])  # fmt: skip
def test_every_row_of_the_table(exc: BaseException, code: int) -> None:
    assert to_errno(exc) == code


def test_an_fs_error_keeps_its_reason_and_names_its_errno_without_one() -> None:
    assert str(FsError(errno.EPERM, "read sets are immutable")) == "read sets are immutable"
    assert str(FsError(errno.EPERM)) == "EPERM"
    assert FsError(errno.EPERM).reason == ""


@pytest.mark.trio
async def test_an_interrupted_request_is_eintr() -> None:
    seen: list[int] = []
    with trio.CancelScope() as scope:
        scope.cancel()
        try:
            await trio.sleep(1)
        except trio.Cancelled as cancelled:
            seen.append(to_errno(cancelled))
            raise
    assert seen == [errno.EINTR]


def test_an_unknown_inode_is_estale() -> None:
    with pytest.raises(FsError) as raised:
        InodeTable().node(4242)
    assert to_errno(raised.value) == errno.ESTALE
