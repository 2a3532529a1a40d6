"""``reference-stores/by-md5/``: every contig of the mounted references where htslib looks for it.

A CRAM names each contig's sequence by its ``M5`` (the MD5 of the upper-case bases, SAM spec
§1.3, https://samtools.github.io/hts-specs/SAMv1.pdf), and htslib finds the sequence through
``REF_PATH``/``REF_CACHE`` patterns such as ``DIR/%2s/%2s/%s``: the first two hex digits, the
next two, the other 28 (cram/cram_io.c ``cram_populate_ref``, cram/open_trace_file.c
``expand_path``, https://github.com/samtools/htslib). So the view is

    by-md5/<md5[0:2]>/<md5[2:4]>/<md5[4:32]>

one file per distinct contig of every ACTIVE reference in the mounted reference stores, holding
the bare sequence htslib expects there: upper case, no header, no newlines (size = the contig's
length). ``omicsfs env`` prints the settings that point htslib at it (README.md, "CRAM").

Nothing is copied: a read of bases [a, b) reads the FASTA bytes that hold them (the ``.fai``
locates them, fs/fasta.py) through the block cache and read-ahead like any other file, and drops
the newlines. The MD5s come from one scan per reference (fs/contigs.py), made at the first lookup
or listing under ``by-md5/`` for every reference not scanned before, and kept under
``--cache-dir``. A file's bytes never change (its name is their MD5), so its attributes are kept
by the kernel like any ACTIVE object's; the set of files follows the reference listings.
"""

from __future__ import annotations

import contextlib
import errno
import stat
from dataclasses import dataclass

import trio

from omicsfs.backend.models import ReferenceSummary, Status, StoredFile, StoreKind
from omicsfs.config import KernelCacheConfig
from omicsfs.fs.attrs import Attr, Owner
from omicsfs.fs.catalog import Catalog
from omicsfs.fs.contigs import ReferenceContigs, ReferenceKey
from omicsfs.fs.errors import FsError
from omicsfs.fs.fasta import Contig, Layout, ReferenceDigests, to_sequence
from omicsfs.fs.handles import ContigHandle
from omicsfs.fs.nodes import ContigFile, Md5Folder, Node
from omicsfs.fs.read.reader import Reader
from omicsfs.fs.singleflight import SingleFlight
from omicsfs.fs.xattrs import XATTR_PREFIX


@dataclass(frozen=True)
class ContigSource:
    """Where the bytes of one by-md5 file come from."""

    reference: ReferenceSummary
    contig: Contig


@dataclass(frozen=True)
class Md5Index:
    """Every listed contig by MD5, and each folder's entries, for one set of reference versions."""

    key: tuple[ReferenceKey, ...]
    sources: dict[str, ContigSource]
    folders: dict[str, dict[str, Node]]
    #: References whose contigs could not be computed this time (retried after the listing TTL).
    unreadable: tuple[str, ...]
    built_at: float


def build_index(
    key: tuple[ReferenceKey, ...], references: list[ReferenceSummary],
    digests: dict[str, ReferenceDigests], built_at: float,
) -> Md5Index:  # fmt: skip
    """The view for these references (in ID order). A contig held by several references is
    served from the first whose layout is even; truncated contigs are left out."""
    sources: dict[str, ContigSource] = {}
    unreadable = []
    for reference in references:
        known = digests.get(reference.id)
        if known is None:
            unreadable.append(f"{reference.id} ({reference.name})")
            continue
        for contig in known.contigs:
            if contig.layout is Layout.TRUNCATED:
                continue
            held = sources.get(contig.md5)
            if held is None or (held.contig.layout is not Layout.EVEN and contig.layout is Layout.EVEN):
                sources[contig.md5] = ContigSource(reference, contig)
    folders: dict[str, dict[str, Node]] = {"": {}}
    for md5 in sorted(sources):
        folders[""][md5[:2]] = Md5Folder(md5[:2])
        folders.setdefault(md5[:2], {})[md5[2:4]] = Md5Folder(md5[:4])
        folders.setdefault(md5[:4], {})[md5[4:]] = ContigFile(md5)
    return Md5Index(key, sources, folders, tuple(unreadable), built_at)


class Md5View:
    def __init__(
        self, catalog: Catalog, contigs: ReferenceContigs, reader: Reader, owner: Owner,
        kernel: KernelCacheConfig, listing_ttl: float,
    ) -> None:  # fmt: skip
        self.catalog = catalog
        self.contigs = contigs
        self.reader = reader
        self.owner = owner
        self.kernel = kernel
        self.listing_ttl = listing_ttl
        self._index: Md5Index | None = None
        self._flights: SingleFlight[tuple[ReferenceKey, ...], Md5Index] = SingleFlight()

    # -- the index ------------------------------------------------------------------------------

    async def references(self) -> list[ReferenceSummary]:
        """Every ACTIVE reference in the mounted reference stores, in ID order."""
        found = []
        for store in await self.catalog.stores(StoreKind.REFERENCE):
            _, listed = await self.catalog.references(store.id)
            found += [ref for ref in listed.values() if ref.status == Status.ACTIVE]
        return sorted(found, key=lambda ref: ref.id)

    async def index(self) -> Md5Index:
        """The view as of the current reference listings; the first call scans every
        reference not known yet (concurrent callers share it)."""
        references = await self.references()
        key = tuple((ref.id, ref.validator) for ref in references)
        current = self._index
        fresh = current is not None and (
            not current.unreadable or trio.current_time() - current.built_at < self.listing_ttl
        )
        if current is not None and current.key == key and fresh:
            return current

        async def build() -> Md5Index:
            digests: dict[str, ReferenceDigests] = {}

            async def one(reference: ReferenceSummary) -> None:
                # A failure is logged by the scan; its contigs are missing until a retry.
                with contextlib.suppress(Exception):
                    digests[reference.id] = await self.contigs.digests(reference)

            async with trio.open_nursery() as nursery:
                for reference in references:
                    nursery.start_soon(one, reference)
            index = build_index(key, references, digests, trio.current_time())
            self._index = index
            return index

        return await self._flights.run(key, build)

    async def source(self, node: ContigFile) -> ContigSource:
        source = (await self.index()).sources.get(node.md5)
        if source is None:
            raise FsError(errno.ENOENT, f"no mounted reference has a contig with MD5 {node.md5}")
        return source

    # -- the filesystem's requests --------------------------------------------------------------

    async def children(self, folder: Md5Folder) -> dict[str, Node]:
        return (await self.index()).folders.get(folder.prefix, {})

    async def attr(self, node: ContigFile, ino: int) -> Attr:
        source = await self.source(node)
        return self.owner.attr(
            ino, stat.S_IFREG | 0o444, source.contig.fai.length, source.reference.creation_time,
            self.kernel.immutable_timeout,
        )  # fmt: skip

    async def open(self, node: ContigFile, ino: int) -> ContigHandle:
        source = await self.source(node)
        contig, reference = source.contig, source.reference
        if contig.layout is not Layout.EVEN:
            raise FsError(
                errno.EIO,
                f"by-md5 {node.md5} is contig {contig.fai.name} of reference {reference.id} "
                f"({reference.name}), whose FASTA lines do not all hold {contig.fai.line_bases} bases as "
                "its .fai says, so its bases cannot be located; re-wrap the FASTA and import it again",
            )
        fasta = await self.reader.open(reference, StoredFile.SOURCE)
        return ContigHandle(ino, fasta, contig.fai, reference)

    async def read(self, number: int, handle: ContigHandle, offset: int, size: int) -> bytes:
        """Bases [offset, offset+size) of the contig: the FASTA bytes holding them, newlines
        dropped, upper-cased."""
        fai = handle.contig
        stop = min(offset + size, fai.length)
        if offset >= stop:
            return b""
        first, last = fai.fasta_range(offset, stop)
        raw = await self.reader.read(
            number, handle.stream, handle.range_stream, handle.fasta, first, last - first
        )
        sequence = to_sequence(bytes(raw))
        if len(sequence) != stop - offset:
            raise FsError(errno.EIO, f"FASTA bytes {first}-{last} of reference {handle.reference.id} "
                                     f"hold {len(sequence)} bases, not {stop - offset}")  # fmt: skip
        return sequence

    async def xattrs(self, node: ContigFile) -> dict[str, str]:
        source = await self.source(node)
        reference = source.reference
        values = {
            "md5": node.md5,
            "contig": source.contig.fai.name,
            "referenceArn": reference.arn,
            "referenceId": reference.id,
            "referenceStoreId": reference.store_id,
            "referenceName": reference.name,
        }
        return {XATTR_PREFIX + name: value for name, value in values.items() if value}
