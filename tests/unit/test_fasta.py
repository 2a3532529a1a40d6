"""fs/fasta.py: contig bytes located through the .fai, the SAM M5, and the layout check."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pysam
import pytest

from omicsfs.fs.fasta import FaiEntry, FaiError, FastaScan, Layout, ReferenceDigests, parse_fai, to_sequence


def indexed(tmp_path: Path, text: bytes) -> tuple[bytes, list[FaiEntry]]:
    """The FASTA and the .fai htslib's faidx builds for it (as the service and samtools do)."""
    fasta = tmp_path / "ref.fa"
    fasta.write_bytes(text)
    pysam.faidx(str(fasta))
    return text, parse_fai((tmp_path / "ref.fa.fai").read_text())


def m5(sequence: str) -> str:
    """The SAM spec's M5 (§1.3): MD5 of the upper-case bases without anything outside 33-126."""
    return hashlib.md5("".join(c for c in sequence if 33 <= ord(c) <= 126).upper().encode()).hexdigest()


def scan(fasta: bytes, entries: list[FaiEntry], chunk: int) -> dict[str, tuple[str, Layout]]:
    scanner = FastaScan(entries)
    for position in range(0, len(fasta), chunk):
        scanner.feed(position, fasta[position : position + chunk])
    return {c.fai.name: (c.md5, c.layout) for c in scanner.result()}


def wrapped(name: str, sequence: str, width: int, newline: str = "\n") -> str:
    lines = [sequence[i : i + width] for i in range(0, len(sequence), width)]
    return f">{name} description\n" + "".join(line + newline for line in lines)


RNG = random.Random(7)
SOFT_MASKED = "".join(RNG.choice("ACGTacgtNn") for _ in range(10_007))
PLAIN = "".join(RNG.choice("ACGT") for _ in range(3_000))


@pytest.mark.parametrize("chunk", [1, 7, 61, 4096, 1 << 20])
def test_every_chunking_gives_the_sam_m5_of_every_contig(tmp_path: Path, chunk: int) -> None:
    text = (
        wrapped("chr1", SOFT_MASKED, 60)
        + wrapped("chrM", PLAIN, 70, "\r\n")  # CRLF lines
        + wrapped("exact", PLAIN[:120], 60)  # the last line is full
        + wrapped("tail", PLAIN[:95], 50)
    )
    fasta, entries = indexed(tmp_path, text.encode())
    results = scan(fasta, entries, chunk)
    assert results["chr1"] == (m5(SOFT_MASKED), Layout.EVEN)
    assert results["chrM"] == (m5(PLAIN), Layout.EVEN)
    assert results["exact"] == (m5(PLAIN[:120]), Layout.EVEN)
    assert results["tail"] == (m5(PLAIN[:95]), Layout.EVEN)


def test_an_empty_contig_has_the_md5_of_nothing() -> None:
    """faidx leaves empty sequences out of the .fai, but another tool's .fai may list one."""
    fasta = b">empty\n>c\nACGT\n"
    assert scan(fasta, [FaiEntry("empty", 0, 7, 60, 61), FaiEntry("c", 4, 10, 4, 5)], 3) == {
        "empty": (hashlib.md5(b"").hexdigest(), Layout.EVEN),
        "c": (m5("ACGT"), Layout.EVEN),
    }


def test_a_file_without_a_final_newline_is_even(tmp_path: Path) -> None:
    fasta, entries = indexed(tmp_path, wrapped("c", PLAIN[:130], 60).rstrip("\n").encode())
    assert scan(fasta, entries, 13) == {"c": (m5(PLAIN[:130]), Layout.EVEN)}


def test_any_range_of_an_even_contig_is_its_bases_upper_cased(tmp_path: Path) -> None:
    fasta, entries = indexed(
        tmp_path, (wrapped("x", PLAIN[:50], 60) + wrapped("chr1", SOFT_MASKED, 60)).encode()
    )
    entry = entries[1]
    assert entry.length == len(SOFT_MASKED)
    rng = random.Random(3)
    ranges = [(0, 1), (0, entry.length), (59, 61), (60, 120), (entry.length - 1, entry.length)]
    ranges += [tuple(sorted(rng.sample(range(entry.length + 1), 2))) for _ in range(200)]  # type: ignore[misc]
    for start, stop in ranges:
        first, last = entry.fasta_range(start, stop)
        assert to_sequence(fasta[first:last]) == SOFT_MASKED[start:stop].upper().encode()


def test_a_tab_inside_a_line_makes_the_layout_uneven_but_the_m5_stays_right(tmp_path: Path) -> None:
    """htslib's faidx indexes this (the tab is not a base but takes a column), so its .fai
    misplaces every base after it: the scan must notice, and still hash the real bases."""
    body = "ACGTACGTAC\nACG\tTACGTA\nACGTACGTAC\nACG\n"
    fasta, entries = indexed(tmp_path, f">bad\n{body}>good\nACGT\n".encode())
    assert entries[0].length == len(body.replace("\n", "").replace("\t", ""))
    results = scan(fasta, entries, 5)
    assert results["bad"] == (m5(body), Layout.UNEVEN)
    assert results["good"] == (m5("ACGT"), Layout.EVEN)


def test_a_fasta_shorter_than_its_fai_truncates_the_contig(tmp_path: Path) -> None:
    fasta, entries = indexed(tmp_path, wrapped("c", PLAIN[:200], 60).encode())
    results = scan(fasta[:100], entries, 64)
    assert results["c"] == ("", Layout.TRUNCATED)


def test_malformed_fai_lines_are_refused() -> None:
    assert parse_fai("chr1\t10\t6\t60\t61\n\n") == [FaiEntry("chr1", 10, 6, 60, 61)]
    for bad in (
        "chr1\t10\t6\t60\n",
        "chr1\tten\t6\t60\t61\n",
        "chr1\t10\t6\t61\t61\n",
        "chr1\t10\t6\t0\t1\n",
    ):
        with pytest.raises(FaiError):
            parse_fai(bad)


def test_digests_round_trip_through_json(tmp_path: Path) -> None:
    fasta, entries = indexed(tmp_path, wrapped("c", PLAIN[:200], 60).encode())
    scanner = FastaScan(entries)
    scanner.feed(0, fasta)
    digests = ReferenceDigests(scanner.result())
    assert ReferenceDigests.from_json(digests.to_json()) == digests
    assert ReferenceDigests.from_json(ReferenceDigests((), refused="gzip").to_json()).refused == "gzip"
