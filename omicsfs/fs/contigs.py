"""Each reference's contigs: names and layouts from its ``.fai``, MD5s from one scan of its FASTA.

The by-md5 view (fs/refview.py) and the upload matching (fs/write/references.py) both need the
SAM ``M5`` of every contig, which HealthOmics does not provide (a reference's ``md5`` covers the
whole file). So it is computed here, once per reference version:

- from the FASTA read through the block cache with read-ahead (the mount's one read path, so a
  scan is paced and retried like any reader and shares the disk tier), streaming: one MD5 state
  per contig, never a chromosome in memory; the hashing runs on a worker thread, so the mount
  keeps answering while it runs;
- in the mount's task group, not in the request that asked: an interrupted ``ls`` does not throw
  away a scan half done, and every concurrent asker waits for the same one (single flight);
- persisted with the metadata under ``--cache-dir`` (fs/metastore.py), keyed by reference ID and
  validator, so a remount never scans it again.
"""

from __future__ import annotations

import errno
import itertools
import logging
from dataclasses import dataclass, field
from functools import partial

import trio

from omicsfs.backend.models import ReferenceSummary, StoredFile
from omicsfs.fs.catalog import Catalog
from omicsfs.fs.errors import FsError
from omicsfs.fs.fasta import FaiEntry, FaiError, FastaScan, Layout, ReferenceDigests, parse_fai
from omicsfs.fs.metastore import MetadataStore
from omicsfs.fs.read.blockcache import BlockCache
from omicsfs.fs.read.files import cached_file
from omicsfs.fs.read.readahead import RangeStream, StreamState
from omicsfs.fs.read.reader import Reader
from omicsfs.fs.singleflight import SingleFlight
from omicsfs.fs.tasks import TaskGroup

log = logging.getLogger(__name__)

#: Bytes of FASTA hashed per worker-thread call: large enough that the hand-off costs nothing,
#: small enough that the mount's other requests interleave.
SCAN_CHUNK = 4 << 20
#: References scanned at once. Hashing is CPU-bound (one core per scan), and each scan has its
#: own read-ahead stream.
SCAN_CONCURRENCY = 2

ReferenceKey = tuple[str, str]  # (reference ID, validator)


@dataclass
class _Scan:
    """A scan running in the mount's task group; askers wait for ``done``."""

    done: trio.Event = field(default_factory=trio.Event)
    result: ReferenceDigests | None = None
    error: BaseException | None = None


class ReferenceContigs:
    def __init__(
        self, catalog: Catalog, cache: BlockCache, reader: Reader, metastore: MetadataStore, tasks: TaskGroup
    ) -> None:
        self.catalog = catalog
        self.cache = cache
        self.reader = reader
        self.metastore = metastore
        self.tasks = tasks
        self._fai: dict[ReferenceKey, list[FaiEntry]] = {}
        self._fai_flights: SingleFlight[ReferenceKey, list[FaiEntry]] = SingleFlight()
        self._digests: dict[ReferenceKey, ReferenceDigests] = {}
        self._flights: SingleFlight[ReferenceKey, ReferenceDigests] = SingleFlight()
        self._scans: dict[ReferenceKey, _Scan] = {}
        self._limiter = trio.CapacityLimiter(SCAN_CONCURRENCY)
        #: Read-ahead stream numbers of scans: negative, so they never meet a handle number.
        self._stream_ids = itertools.count(-1, -1)
        #: How many scans were started (tests and stats).
        self.scans = 0

    # -- the .fai: names, lengths, layouts ------------------------------------------------------

    async def fai(self, reference: ReferenceSummary) -> list[FaiEntry]:
        """The reference's .fai entries, read through the block cache once per version."""
        key = (reference.id, reference.validator)
        known = self._fai.get(key)
        if known is not None:
            return known
        digests = self.known(reference)
        if digests is not None and not digests.refused:
            return [contig.fai for contig in digests.contigs]

        async def fetch() -> list[FaiEntry]:
            index = await cached_file(self.catalog, reference, StoredFile.INDEX, self.cache.block_size)
            if index is None:
                raise FsError(errno.EIO, f"reference {reference.id} ({reference.name}) has no .fai")
            data = await self.cache.read(index, 0, index.layout.content_length)
            try:
                entries = parse_fai(data.decode("utf-8", "replace"))
            except FaiError as error:
                raise FsError(errno.EIO, f"reference {reference.id} ({reference.name}): {error}") from None
            self._fai[key] = entries
            return entries

        return await self._fai_flights.run(key, fetch)

    # -- the MD5s -------------------------------------------------------------------------------

    def known(self, reference: ReferenceSummary) -> ReferenceDigests | None:
        """The reference's contigs with MD5s if they were computed before (memory or disk)."""
        key = (reference.id, reference.validator)
        digests = self._digests.get(key)
        if digests is None:
            digests = self.metastore.get_contigs(reference.id, reference.validator)
            if digests is not None:
                self._digests[key] = digests
        return digests

    async def digests(self, reference: ReferenceSummary) -> ReferenceDigests:
        """The reference's contigs with their MD5s: known, or computed now by one scan however
        many ask at once. Raises the backend's error if the FASTA cannot be read."""
        known = self.known(reference)
        if known is not None:
            return known
        key = (reference.id, reference.validator)

        async def wait_for_scan() -> ReferenceDigests:
            scan = self._scans.get(key)
            if scan is None:
                scan = self._scans[key] = _Scan()
                self.tasks.start(self._run_scan, reference, scan)
            await scan.done.wait()
            if scan.error is not None:
                raise scan.error
            assert scan.result is not None
            return scan.result

        return await self._flights.run(key, wait_for_scan)

    async def _run_scan(self, reference: ReferenceSummary, scan: _Scan) -> None:
        key = (reference.id, reference.validator)
        try:
            async with self._limiter:
                digests = await self._scan(reference)
            self._digests[key] = digests
            self.metastore.put_contigs(reference.id, reference.validator, digests)
            scan.result = digests
        except BaseException as error:
            scan.error = error
            if isinstance(error, Exception):
                log.warning("could not compute the contig MD5s of reference %s (%s): %s",
                            reference.id, reference.name, error)  # fmt: skip
            else:
                raise  # cancelled: the mount is going away
        finally:
            del self._scans[key]
            scan.done.set()

    async def _scan(self, reference: ReferenceSummary) -> ReferenceDigests:
        self.scans += 1
        entries = await self.fai(reference)
        fasta = await self.reader.open(reference, StoredFile.SOURCE)
        size = fasta.layout.content_length
        log.info("computing the MD5 of the %d contigs of reference %s (%s, %d bytes of FASTA)",
                 len(entries), reference.id, reference.name, size)  # fmt: skip
        started = trio.current_time()
        scan = FastaScan(entries)
        stream_id = next(self._stream_ids)
        stream, ranges = StreamState(), RangeStream()

        async def chunk(at: int) -> bytes:
            if at >= size:
                return b""
            return bytes(await self.reader.read(stream_id, stream, ranges, fasta, at, SCAN_CHUNK))

        position = 0
        try:
            data = await chunk(0)
            if not data.startswith(b">"):
                reason = f"its FASTA does not start with '>' (found {data[:4]!r}): not plain-text FASTA"
                log.warning("reference %s (%s) is left out of by-md5: %s", reference.id, reference.name,
                            reason)  # fmt: skip
                return ReferenceDigests((), refused=reason)
            while data and not scan.done:
                # Hash this chunk on a worker thread while the next one is read: the MD5 runs
                # without the GIL, so reading and hashing overlap.
                async with trio.open_nursery() as both:
                    both.start_soon(partial(trio.to_thread.run_sync, scan.feed, position, data))
                    upcoming = await chunk(position + len(data))
                position += len(data)
                data = upcoming
        finally:
            self.reader.closed(stream_id)
        contigs = scan.result()
        elapsed = trio.current_time() - started
        log.info("contig MD5s of reference %s: %d bytes in %.1f s (%.0f MiB/s)", reference.id, position,
                 elapsed, position / (1 << 20) / elapsed if elapsed > 0 else 0.0)  # fmt: skip
        for contig in contigs:
            if contig.layout is Layout.UNEVEN:
                log.warning("contig %s of reference %s (%s): its FASTA lines do not all hold %d bases "
                            "as its .fai says; by-md5/%s refuses reads (EIO)", contig.fai.name,
                            reference.id, reference.name, contig.fai.line_bases, contig.md5)  # fmt: skip
            elif contig.layout is Layout.TRUNCATED:
                log.warning("contig %s of reference %s (%s): the FASTA ends before its %d bases; it is "
                            "left out of by-md5", contig.fai.name, reference.id, reference.name,
                            contig.fai.length)  # fmt: skip
        return ReferenceDigests(contigs)
