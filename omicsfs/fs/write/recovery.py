"""Uploads a killed daemon left behind are found and aborted by the next mount of the same path.

Every upload is tagged with the mount it came from (host and mount point) and the daemon session
(manager.py). An upload listed with this mount's tag but another session's can only belong to a
daemon that died: two live mounts cannot share a mount point on one host. Aborting them keeps the
store free of half-made uploads; the Abort calls are paced like every other (1 per second).
"""

from __future__ import annotations

import logging

from omicsfs.backend.errors import BackendError
from omicsfs.backend.interface import Backend
from omicsfs.fs.write.manager import MOUNT_TAG, SESSION_TAG

log = logging.getLogger(__name__)


async def abort_orphans(backend: Backend, store_ids: list[str], owner: str, session: str) -> int:
    """Aborts this mount point's uploads from earlier sessions; returns how many."""
    aborted = 0
    for store_id in store_ids:
        try:
            uploads = await backend.list_uploads(store_id)
        except BackendError as error:
            log.warning("could not list uploads of store %s to clean up: %s", store_id, error)
            continue
        for upload in uploads:
            if upload.tags.get(MOUNT_TAG) != owner[:256] or upload.tags.get(SESSION_TAG) == session:
                continue
            try:
                await backend.abort_upload(store_id, upload.upload_id)
            except BackendError as error:
                log.warning("could not abort orphaned upload %s: %s", upload.upload_id, error)
                continue
            aborted += 1
            log.warning("aborted upload %s of %r left by an earlier omicsfs at this mount point",
                        upload.upload_id, upload.name)  # fmt: skip
    return aborted
