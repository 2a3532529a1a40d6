"""Which reference an aligned file was made against: its @SQ lines matched the way htslib
identifies a contig.

A BAM or CRAM read set must name its reference (CreateMultipartReadSetUpload ``referenceArn``).
Unless ``--reference-arn`` names it, the header's @SQ lines are matched against every ACTIVE
reference in the mounted reference stores (SEMANTICS.md, "Which reference an upload names"):

- an @SQ with an ``M5`` matches the contig with that MD5 and length, whatever its name: the
  SAM spec makes M5 the contig's identity (§1.3, https://samtools.github.io/hts-specs/SAMv1.pdf)
  and htslib finds a CRAM's reference by it, so ``chr1`` and ``1`` with one sequence are one
  contig, and a ``chr1`` with another MD5 is another contig;
- an @SQ without one matches the contig with its name and length;
- a reference matches when every @SQ matches one of its contigs: a header may list a subset
  (filtered of decoys or alts, as in htslib's own test data);
- exactly one match is taken; of several, the one whose every contig the header lists; anything
  else fails. Guessing would silently link data to the wrong genome.

This is the rule the local service checks uploads with (omicsfs/localservice/contigs.py), so a
match here is not refused there. Contig MD5s cost a scan of the reference's FASTA (fs/contigs.py,
once per reference, persisted), so they are computed only for a header that carries M5 tags, and
only for references whose contig lengths could match it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from omicsfs.backend.models import ReferenceSummary, Status, StoreKind
from omicsfs.fs.catalog import Catalog
from omicsfs.fs.contigs import ReferenceContigs
from omicsfs.fs.errors import FsError
from omicsfs.fs.fasta import Layout
from omicsfs.fs.write.formats import SqLine


class ReferenceMatchError(ValueError):
    """No reference, or more than one, matches the header; the message names the @SQ set and
    the candidates."""


@dataclass(frozen=True)
class CandidateContig:
    name: str
    length: int
    md5: str | None = None  # None: not computed (the header has no M5 tags, or lengths rule it out)


@dataclass(frozen=True)
class Candidate:
    arn: str
    name: str
    contigs: tuple[CandidateContig, ...]


def describe(sq: Sequence[SqLine], limit: int = 5) -> str:
    shown = ", ".join(f"{line.name}:{line.length}" for line in sq[:limit])
    more = f" and {len(sq) - limit} more" if len(sq) > limit else ""
    tagged = sum(1 for line in sq if line.m5)
    tags = f", {tagged} with M5" if tagged else ""
    return f"{len(sq)} @SQ ({shown}{more}{tags})"


def matched_contigs(sq: Sequence[SqLine], candidate: Candidate) -> frozenset[int] | None:
    """The indexes of the candidate's contigs the @SQ lines match, or None if one matches none."""
    by_name = {(c.name, c.length): i for i, c in enumerate(candidate.contigs)}
    by_md5 = {(c.md5, c.length): i for i, c in enumerate(candidate.contigs) if c.md5}
    hits = set()
    for line in sq:
        hit = by_md5.get((line.m5, line.length)) if line.m5 else by_name.get((line.name, line.length))
        if hit is None:
            return None
        hits.add(hit)
    return frozenset(hits)


def might_match(sq: Sequence[SqLine], candidate: Candidate) -> bool:
    """Whether the candidate could match once its MD5s are known: every M5-tagged @SQ's length
    is among its contigs', every other @SQ's name and length are. Spares a scan otherwise."""
    lengths = {c.length for c in candidate.contigs}
    names = {(c.name, c.length) for c in candidate.contigs}
    return all(line.length in lengths if line.m5 else (line.name, line.length) in names for line in sq)


def match_reference(sq: Sequence[SqLine], candidates: Sequence[Candidate]) -> str:
    """The ARN of the one reference the header was made against (rules in the module docstring)."""
    found = [(c, hits) for c in candidates if (hits := matched_contigs(sq, c)) is not None]
    if len(found) == 1:
        return found[0][0].arn
    if not found:
        names = ", ".join(f"{c.name} ({len(c.contigs)} contigs)" for c in candidates) or "none"
        raise ReferenceMatchError(
            f"no reference matches the header's {describe(sq)}; references seen: {names}; "
            "import the reference or pass --reference-arn"
        )
    whole = [c for c, hits in found if len(hits) == len(c.contigs)]
    if len(whole) == 1:
        return whole[0].arn
    listed = ", ".join(f"{c.name} {c.arn} ({len(c.contigs)} contigs)" for c, _ in found)
    raise ReferenceMatchError(
        f"{len(found)} references match the header's {describe(sq)}: {listed}; pass --reference-arn to choose"
    )


class ReferenceIndex:
    """The candidates an upload's header is matched against: every ACTIVE reference in the
    mounted reference stores, with names and lengths from its .fai and, where the header needs
    them, MD5s from fs/contigs.py."""

    def __init__(self, catalog: Catalog, contigs: ReferenceContigs) -> None:
        self.catalog = catalog
        self.contigs = contigs

    async def candidates(self, sq: Sequence[SqLine]) -> list[Candidate]:
        wants_md5 = any(line.m5 for line in sq)
        found = []
        for store in await self.catalog.stores(StoreKind.REFERENCE):
            _, references = await self.catalog.references(store.id)
            for reference in sorted(references.values(), key=lambda ref: ref.id):
                if reference.status != Status.ACTIVE:
                    continue
                candidate = await self._candidate(reference, sq if wants_md5 else ())
                if candidate is not None:
                    found.append(candidate)
        return found

    async def _candidate(self, reference: ReferenceSummary, tagged: Sequence[SqLine]) -> Candidate | None:
        try:
            fai = await self.contigs.fai(reference)
        except FsError:
            return None  # no usable .fai: nothing to match against (the reason is in the log)
        names = tuple(CandidateContig(entry.name, entry.length) for entry in fai)
        plain = Candidate(reference.arn, reference.name, names)
        digests = self.contigs.known(reference)
        if digests is None and tagged and might_match(tagged, plain):
            # A backend failure here fails the write with its errno (EIO, EACCES): without the
            # MD5s the header cannot be matched, and EINVAL would blame the file.
            digests = await self.contigs.digests(reference)
        if digests is None:
            return plain
        return Candidate(
            reference.arn,
            reference.name,
            tuple(
                CandidateContig(c.fai.name, c.fai.length, c.md5 if c.layout is not Layout.TRUNCATED else None)
                for c in digests.contigs
            ),
        )
