"""fs/write/recovery.py: uploads a killed daemon left at this mount point are aborted, no others."""

from __future__ import annotations

import pytest

from omicsfs.backend.errors import AccessDenied, NotFound
from omicsfs.fs.write.manager import MOUNT_TAG, SESSION_TAG
from omicsfs.fs.write.recovery import abort_orphans
from tests.fakes.backend import FakeBackend
from tests.fakes.harness import sequence_store

HERE = "host:/mnt/data"


async def left(backend: FakeBackend, store: str, name: str, mount: str | None, session: str) -> str:
    """An upload as a mount at ``mount`` in daemon session ``session`` would have created it."""
    tags = {SESSION_TAG: session, **({MOUNT_TAG: mount} if mount is not None else {})}
    return await backend.create_upload(store, {"name": name, "tags": tags})


@pytest.mark.trio
async def test_only_this_mount_points_uploads_from_earlier_sessions_are_aborted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = FakeBackend()
    one, two = sequence_store(backend, "one"), sequence_store(backend, "two")
    orphans = [
        await left(backend, one, "killed", HERE, "old"),
        await left(backend, two, "also", HERE, "older"),
    ]
    kept = {
        await left(backend, one, "mine", HERE, "now"),  # this session's own, still being written
        await left(backend, one, "theirs", "host:/mnt/other", "old"),  # another mount point's
        await left(backend, one, "untagged", None, "old"),  # not made by omicsfs
    }
    assert await abort_orphans(backend, [one, two], HERE, "now") == 2
    assert set(backend.uploads) == kept
    assert all(orphan not in backend.uploads for orphan in orphans)
    assert "aborted upload" in caplog.text
    assert "'killed' left by an earlier omicsfs" in caplog.text


@pytest.mark.trio
async def test_the_tag_is_compared_as_it_was_stored_at_most_256_characters() -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    long_owner = "host:/" + "d" * 300
    await left(backend, store, "x", long_owner[:256], "old")
    assert await abort_orphans(backend, [store], long_owner, "now") == 1


@pytest.mark.trio
async def test_failures_are_logged_and_the_rest_still_cleaned(caplog: pytest.LogCaptureFixture) -> None:
    backend = FakeBackend()
    denied, open_store = sequence_store(backend, "denied"), sequence_store(backend, "open")
    await left(backend, open_store, "a", HERE, "old")
    await left(backend, open_store, "b", HERE, "old")
    backend.fail("ListMultipartReadSetUploads", lambda: AccessDenied("ListMultipartReadSetUploads", "no"))
    backend.fail("AbortMultipartReadSetUpload", lambda: NotFound("AbortMultipartReadSetUpload", "gone"))
    assert await abort_orphans(backend, [denied, open_store], HERE, "now") == 1
    assert "could not list uploads of store" in caplog.text
    assert "could not abort orphaned upload" in caplog.text
    assert len(backend.uploads) == 1  # the one whose abort failed; the next mount tries again
