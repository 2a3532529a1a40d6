"""fs/write/references.py, lightly: reading a .fai, and that one exact match is the one chosen.

The matching rules themselves are being extended elsewhere (issue work on renamed contigs), so
only what any rule keeps is checked here: a .fai's (name, length) pairs, and a header whose @SQ
set equals exactly one reference's picks that reference.
"""

from __future__ import annotations

from pathlib import Path

import pysam

from omicsfs.fs.write.references import Candidate, match_reference, parse_fai
from omicsfs.sample.data import make_reference


def test_a_fai_gives_each_contig_name_and_length(tmp_path: Path) -> None:
    fasta = tmp_path / "genome.fasta"
    make_reference(fasta, {"chr1": 1234, "chrM": 99, "HLA-A*01:01": 61})  # samtools faidx writes the .fai
    fai = parse_fai((tmp_path / "genome.fasta.fai").read_text())
    assert fai == {("chr1", 1234), ("chrM", 99), ("HLA-A*01:01", 61)}
    with pysam.FastaFile(str(fasta)) as indexed:  # the same index htslib reads
        assert set(zip(indexed.references, indexed.lengths, strict=True)) == fai


def test_lines_that_are_not_index_lines_are_skipped() -> None:
    assert parse_fai("chr1\t10\t6\t60\t61\n\nbroken line\nchr2\tlong\t1\t1\t1\nchr3\t5\n") == {
        ("chr1", 10),
        ("chr3", 5),
    }


def test_the_one_reference_whose_contigs_equal_the_header_is_chosen() -> None:
    grch38 = Candidate("arn:38", "GRCh38", frozenset({("chr1", 100), ("chr2", 50)}))
    other = Candidate("arn:x", "other", frozenset({("chr1", 100), ("chr2", 51)}))
    assert match_reference([("chr2", 50), ("chr1", 100)], [other, grch38]) == "arn:38"
