"""Which reference an upload names (fs/write/references.py) and the @SQ lines it is decided from
(fs/write/formats.py): pure logic, plus the index on the fake backend."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pysam
import pytest
import trio

from omicsfs.backend.models import FileType, StoreKind
from omicsfs.fs.write.formats import SqLine, inspect
from omicsfs.fs.write.references import (
    Candidate,
    CandidateContig,
    ReferenceMatchError,
    match_reference,
    might_match,
)
from tests.fakes.backend import FakeBackend
from tests.fakes.harness import make_fs, writable

A, B, C = "a" * 32, "b" * 32, "c" * 32

GENOME = Candidate("arn:genome", "genome", (CandidateContig("chr1", 100, A), CandidateContig("chr2", 50, B),
                                            CandidateContig("chrUn_decoy", 7, C)))  # fmt: skip
RENAMED = Candidate("arn:renamed", "renamed", (CandidateContig("1", 100, A), CandidateContig("2", 50, B)))
OTHER = Candidate(
    "arn:other", "other", (CandidateContig("chr1", 100, "d" * 32), CandidateContig("chr2", 50, "e" * 32))
)


def test_a_header_listing_a_subset_of_the_contigs_matches() -> None:
    assert match_reference([SqLine("chr1", 100), SqLine("chr2", 50)], [GENOME]) == "arn:genome"


def test_names_and_lengths_must_both_match_without_m5() -> None:
    with pytest.raises(ReferenceMatchError, match="no reference matches the header's 1 @SQ \\(chr1:101\\)"):
        match_reference([SqLine("chr1", 101)], [GENOME])


def test_m5_decides_whatever_the_name() -> None:
    header = [SqLine("chr1", 100, A), SqLine("chr2", 50, B)]
    assert match_reference(header, [RENAMED, OTHER]) == "arn:renamed"  # chr1 is 1 by its M5
    assert match_reference([SqLine("1", 100, A)], [GENOME, OTHER]) == "arn:genome"


def test_a_name_match_with_another_m5_is_not_a_match() -> None:
    with pytest.raises(ReferenceMatchError, match="1 with M5"):
        match_reference([SqLine("chr1", 100, "f" * 32)], [GENOME, OTHER])


def test_of_several_matches_the_one_whose_every_contig_the_header_lists_wins() -> None:
    header = [SqLine("chr1", 100, A), SqLine("chr2", 50, B)]
    assert match_reference(header, [GENOME, RENAMED]) == "arn:renamed"  # GENOME also has a decoy


def test_several_equal_matches_are_ambiguous_and_named() -> None:
    twin = Candidate("arn:twin", "twin", RENAMED.contigs)
    with pytest.raises(ReferenceMatchError) as raised:
        match_reference([SqLine("chr1", 100, A)], [GENOME, RENAMED, twin])
    message = str(raised.value)
    assert message.startswith("3 references match the header's 1 @SQ (chr1:100, 1 with M5)")
    for arn in ("arn:genome", "arn:renamed", "arn:twin"):
        assert arn in message
    assert "--reference-arn" in message


def test_no_match_lists_the_references_seen() -> None:
    with pytest.raises(ReferenceMatchError) as raised:
        match_reference([SqLine("chrZ", 4242)], [GENOME, RENAMED])
    assert "references seen: genome (3 contigs), renamed (2 contigs)" in str(raised.value)


def test_md5s_are_wanted_only_where_lengths_could_match() -> None:
    names_only = Candidate("arn:x", "x", tuple(CandidateContig(c.name, c.length) for c in GENOME.contigs))
    assert might_match([SqLine("1", 100, A), SqLine("chr2", 50)], names_only)
    assert not might_match([SqLine("1", 99, A)], names_only)
    assert not might_match([SqLine("chr3", 50)], names_only)


def _m5(sequence: str) -> str:
    return hashlib.md5(sequence.encode()).hexdigest()


def _bam_and_cram(tmp_path: Path) -> tuple[bytes, bytes, dict[str, str]]:
    """A BAM whose @SQ lines carry M5 tags (one without), and a CRAM htslib made from it."""
    sequences = {"chr1": "ACGT" * 30, "chr2": "GGCA" * 20}
    fasta = tmp_path / "ref.fa"
    fasta.write_text("".join(f">{name}\n{seq}\n" for name, seq in sequences.items()))
    pysam.faidx(str(fasta))
    header = {"HD": {"VN": "1.6"}, "SQ": [{"SN": "chr1", "LN": 120, "M5": _m5(sequences["chr1"]).upper()},
                                          {"SN": "chr2", "LN": 80}]}  # fmt: skip
    bam = tmp_path / "x.bam"
    with pysam.AlignmentFile(str(bam), "wb", header=header):
        pass
    cram = tmp_path / "x.cram"
    pysam.view("-C", "-T", str(fasta), "-o", str(cram), str(bam), catch_stdout=False)
    return bam.read_bytes(), cram.read_bytes(), sequences


def test_bam_and_cram_headers_give_their_m5_tags(tmp_path: Path) -> None:
    bam, cram, sequences = _bam_and_cram(tmp_path)
    from_bam = inspect(FileType.BAM, bam, complete=True)
    assert from_bam is not None
    assert from_bam.references == (SqLine("chr1", 120, _m5(sequences["chr1"])), SqLine("chr2", 80))
    from_cram = inspect(FileType.CRAM, cram, complete=True)
    assert from_cram is not None
    # htslib adds the M5 of every contig it encoded against.
    assert from_cram.references == (
        SqLine("chr1", 120, _m5(sequences["chr1"])),
        SqLine("chr2", 80, _m5(sequences["chr2"])),
    )


@pytest.mark.trio
async def test_the_index_scans_only_references_that_could_match(nursery: trio.Nursery) -> None:
    backend = FakeBackend()
    store = backend.add_store(StoreKind.REFERENCE, "references").id
    backend.add_reference(store, "small", b">chr1\nACGT\n", b"chr1\t4\t6\t4\t5\n")
    big = backend.add_reference(store, "big", b">1\nACGTACGT\n", b"1\t8\t3\t8\t9\n")
    fs = make_fs(backend, nursery, writable())
    assert fs.writes is not None
    index = fs.writes.references
    without_m5 = await index.candidates([SqLine("chr1", 4)])
    assert all(c.md5 is None for cand in without_m5 for c in cand.contigs)
    assert fs.contigs.scans == 0  # no M5 in the header: no scan at all
    tagged = await index.candidates([SqLine("chr1", 8, _m5("ACGTACGT"))])
    assert fs.contigs.scans == 1  # only "big" has an 8-base contig
    assert match_reference([SqLine("chr1", 8, _m5("ACGTACGT"))], tagged) == big.arn  # renamed: 1
