"""Manifest mounts: an object deleted or archived since its manifest was written is refused on open.

A ``--manifest`` mount makes no metadata call, so it learns that a read set or reference is gone
or no longer ACTIVE only from a data call. ``open`` therefore waits for the first block of the
file, which every reader of BAM, CRAM, FASTQ or FASTA needs first anyway: from the cache, or from
the fetch the open starts, whose answer is the check. ResourceNotFound becomes ENOENT and a
ConflictException (archived, activating) EACCES, as in the errno table (SEMANTICS.md), with one
log line per object saying what to do; for ``--listing-ttl`` seconds later opens are refused
without a call, then asked again (an activation may have finished).

Bytes already in the cache are served without a call: they are keyed by the object's version
(ID, creation time and etags, as the manifest gives them), so they are exactly the bytes the
manifest names, never another version's (README.md, "Running on a cluster").
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass

import trio

from omicsfs.backend.errors import NotActive, NotFound
from omicsfs.backend.models import ReadSetSummary, Summary
from omicsfs.fs.errors import FsError
from omicsfs.fs.read.blockcache import BlockCache
from omicsfs.fs.read.files import CachedFile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Refusal:
    code: int
    reason: str
    at: float


class OpenConfirmation:
    def __init__(self, cache: BlockCache, retry_after: float) -> None:
        self.cache = cache
        self.retry_after = retry_after
        self._refused: dict[str, _Refusal] = {}
        self._logged: set[tuple[str, int]] = set()

    async def check(self, summary: Summary, file: CachedFile) -> None:
        """Returns once the file's first block is in; FsError if the service refuses it."""
        refused = self._refused.get(summary.id)
        if refused is not None and trio.current_time() - refused.at < self.retry_after:
            raise FsError(refused.code, refused.reason)
        try:
            await self.cache.read_buffer(file, 0, 1)
        except NotFound as error:
            raise self._refuse(summary, errno.ENOENT, "was deleted since the manifest was written",
                               "write the manifest again", error) from None  # fmt: skip
        except NotActive as error:
            hint = "only ACTIVE objects can be read"
            if isinstance(summary, ReadSetSummary):
                hint = (
                    "if it was archived, start an activation job (aws omics start-read-set-activation-job"
                    f" --sequence-store-id {summary.store_id} --sources readSetId={summary.id})"
                )
            raise self._refuse(summary, errno.EACCES, "is no longer ACTIVE", hint, error) from None
        self._refused.pop(summary.id, None)

    def _refuse(self, summary: Summary, code: int, what: str, hint: str, error: Exception) -> FsError:
        kind = "read set" if isinstance(summary, ReadSetSummary) else "reference"
        reason = f"{kind} {summary.id} {what}"
        self._refused[summary.id] = _Refusal(code, reason, trio.current_time())
        if (summary.id, code) not in self._logged:
            self._logged.add((summary.id, code))
            log.warning("refusing to open %s %s (%s) from the manifest: it %s (%s); %s", kind, summary.id,
                        summary.name, what, error, hint)  # fmt: skip
        return FsError(code, reason)
