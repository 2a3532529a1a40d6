"""Which reference an aligned file was made against: its @SQ set matched against each .fai.

A BAM or CRAM read set must name its reference (CreateMultipartReadSetUpload ``referenceArn``).
Unless ``--reference-arn`` names it, the header's (name, length) pairs are compared as a set with
each ACTIVE reference's .fai in the mounted reference stores; exactly one match is accepted.
Guessing between two candidates would silently link data to the wrong genome, so that fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from omicsfs.backend.models import Status, StoredFile, StoreKind
from omicsfs.fs.catalog import Catalog
from omicsfs.fs.read.blockcache import BlockCache
from omicsfs.fs.read.files import cached_file


class ReferenceMatchError(ValueError):
    """No reference, or more than one, matches the header; the message names the @SQ set and
    the candidates."""


@dataclass(frozen=True)
class Candidate:
    arn: str
    name: str
    contigs: frozenset[tuple[str, int]]


def parse_fai(text: str) -> frozenset[tuple[str, int]]:
    contigs = set()
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[1].isdigit():
            contigs.add((fields[0], int(fields[1])))
    return frozenset(contigs)


def describe(contigs: Sequence[tuple[str, int]], limit: int = 5) -> str:
    shown = ", ".join(f"{name}:{length}" for name, length in contigs[:limit])
    more = f" and {len(contigs) - limit} more" if len(contigs) > limit else ""
    return f"{len(contigs)} @SQ ({shown}{more})"


def match_reference(sq: Sequence[tuple[str, int]], candidates: Sequence[Candidate]) -> str:
    wanted = frozenset(sq)
    matches = [c for c in candidates if c.contigs == wanted]
    if len(matches) == 1:
        return matches[0].arn
    if not matches:
        names = ", ".join(f"{c.name} ({len(c.contigs)} contigs)" for c in candidates) or "none"
        raise ReferenceMatchError(
            f"no reference matches the header's {describe(sq)}; references seen: {names}; "
            "import the reference or pass --reference-arn"
        )
    listed = ", ".join(f"{c.name} {c.arn}" for c in matches)
    raise ReferenceMatchError(
        f"{len(matches)} references match the header's {describe(sq)}: {listed}; "
        "pass --reference-arn to choose"
    )


class ReferenceIndex:
    """Every ACTIVE reference's contigs in the mounted reference stores, from its .fai read
    through the block cache once per reference."""

    def __init__(self, catalog: Catalog, cache: BlockCache) -> None:
        self.catalog = catalog
        self.cache = cache
        self._contigs: dict[str, frozenset[tuple[str, int]]] = {}

    async def candidates(self) -> list[Candidate]:
        found = []
        for store in await self.catalog.stores(StoreKind.REFERENCE):
            _, references = await self.catalog.references(store.id)
            for reference in references.values():
                if reference.status != Status.ACTIVE:
                    continue
                contigs = self._contigs.get(reference.id)
                if contigs is None:
                    index = await cached_file(
                        self.catalog, reference, StoredFile.INDEX, self.cache.block_size
                    )
                    if index is None:
                        continue
                    data = await self.cache.read(index, 0, index.layout.content_length)
                    contigs = self._contigs[reference.id] = parse_fai(data.decode("utf-8", "replace"))
                found.append(Candidate(reference.arn, reference.name, contigs))
        return found
