"""fs/write/formats.py: a new file's type from its name, confirmed by its first bytes.

The headers are real: BAM, uBAM and CRAM written by htslib through pysam, gzip FASTQ by gzip. Each
is fed in growing prefixes, as writes arrive: ``inspect`` must wait (None) until the header is
whole, then give the @SQ set and sample, and must refuse bytes of another type at once.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import pysam
import pytest

from omicsfs.backend.models import FileType
from omicsfs.fs.write.formats import FormatMismatch, Header, SqLine, WriteName, inspect, parse_name
from omicsfs.sample.data import make_reference, make_sample

# -- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("NA12878.bam", WriteName("NA12878", FileType.BAM, False, None)),
        ("run.1.BAM", WriteName("run.1", FileType.BAM, False, None)),
        ("x_1.bam", WriteName("x_1", FileType.BAM, False, None)),  # mates are a FASTQ thing
        ("NA12878.cram", WriteName("NA12878", FileType.CRAM, False, None)),
        ("s.fastq.gz", WriteName("s", FileType.FASTQ, False, None)),
        ("s.fq.gz", WriteName("s", FileType.FASTQ, False, None)),
        ("s.FASTQ.GZ", WriteName("s", FileType.FASTQ, False, None)),
        ("s.fastq", WriteName("s", FileType.FASTQ, True, None)),  # plain: gzipped on the way
        ("s.fq", WriteName("s", FileType.FASTQ, True, None)),
        ("s_1.fastq.gz", WriteName("s", FileType.FASTQ, False, 1)),
        ("s_2.fastq", WriteName("s", FileType.FASTQ, True, 2)),
        ("s_R1.fq.gz", WriteName("s", FileType.FASTQ, False, 1)),
        ("s_r2.fastq.gz", WriteName("s", FileType.FASTQ, False, 2)),
        ("s_3.fastq.gz", WriteName("s_3", FileType.FASTQ, False, None)),
        ("a_b_1.fastq.gz", WriteName("a_b", FileType.FASTQ, False, 1)),
    ],
)
def test_names_that_ask_for_a_read_set(name: str, expected: WriteName) -> None:
    assert parse_name(name) == expected


@pytest.mark.parametrize(
    "name",
    ["notes.txt", "x.bam.bai", "x.cram.crai", "x.fasta", "x.sam", ".bam", ".fastq.gz", "x.fastq.bz2", "bam"],
)
def test_names_that_are_no_read_set_file(name: str) -> None:
    assert parse_name(name) is None


# -- real headers ---------------------------------------------------------------------------------

#: Enough contigs that the BAM header spans several BGZF blocks.
CONTIGS = {f"contig_{index:05d}": 1000 + index for index in range(3000)}


@dataclass(frozen=True)
class Headers:
    bam: bytes
    ubam: bytes
    cram: dict[str, bytes]  # CRAM version -> file
    bgzf_text: bytes  # BGZF of something that is not BAM


@pytest.fixture(scope="module")
def headers(tmp_path_factory: pytest.TempPathFactory) -> Headers:
    folder = tmp_path_factory.mktemp("headers")
    reference = folder / "genome.fasta"
    make_reference(reference, {"chr1": 2000, "chr2": 1000})
    rg = [{"ID": "rg1", "SM": "NA12878"}, {"ID": "rg2", "SM": "other"}]
    big = pysam.AlignmentHeader.from_dict(
        {"HD": {"VN": "1.6"}, "SQ": [{"SN": n, "LN": length} for n, length in CONTIGS.items()], "RG": rg}
    )
    unaligned = pysam.AlignmentHeader.from_dict({"HD": {"VN": "1.6"}, "RG": rg})
    small = pysam.AlignmentHeader.from_dict(
        {"HD": {"VN": "1.6"}, "SQ": [{"SN": "chr1", "LN": 2000}, {"SN": "chr2", "LN": 1000}], "RG": rg}
    )

    def written(name: str, mode: str, header: pysam.AlignmentHeader, **options: object) -> bytes:
        path = folder / name
        with pysam.AlignmentFile(str(path), mode, header=header, **options):  # type: ignore[arg-type]
            pass
        return path.read_bytes()

    crams = {
        version: written(f"v{version}.cram", "wc", small, reference_filename=str(reference),
                         format_options=[f"version={version}".encode()])
        for version in ("2.1", "3.0", "3.1")
    }  # fmt: skip
    pysam.tabix_compress(str(reference), str(folder / "genome.fasta.gz"))
    return Headers(
        bam=written("big.bam", "wb", big),
        ubam=written("u.bam", "wb", unaligned),
        cram=crams,
        bgzf_text=(folder / "genome.fasta.gz").read_bytes(),
    )


def first_complete_prefix(file_type: FileType, data: bytes, step: int) -> tuple[int, Header]:
    """Feeds growing prefixes as writes would; returns the first length that gives a header."""
    for length in range(1, len(data) + step, step):
        found = inspect(file_type, data[:length], complete=False)
        if found is not None:
            return length, found
    raise AssertionError("no header in the whole file")


def header_end(file_type: FileType, data: bytes) -> int:
    """The shortest prefix that gives the header (a bisection: shorter prefixes give None)."""
    low, high = 0, len(data)  # inspect(data[:low]) is None, inspect(data[:high]) is a header
    while high - low > 1:
        middle = (low + high) // 2
        if inspect(file_type, data[:middle], complete=False) is None:
            low = middle
        else:
            high = middle
    return high


def test_a_bam_header_over_several_blocks_is_read_once_it_is_whole(headers: Headers) -> None:
    length, header = first_complete_prefix(FileType.BAM, headers.bam, step=97)
    assert headers.bam[:length].count(b"BC\x02\x00") > 1  # the header spans several BGZF blocks
    contigs = tuple(SqLine(name, length) for name, length in CONTIGS.items())
    assert header == Header(FileType.BAM, contigs, "NA12878")  # the first @RG's SM
    assert inspect(FileType.BAM, headers.bam, complete=True) == header


def test_a_bam_cut_inside_its_header_is_refused_only_once_it_is_known_to_end(headers: Headers) -> None:
    whole = header_end(FileType.BAM, headers.bam)
    for length in (10, 17, 18, 100, whole // 2, whole - 1):
        assert inspect(FileType.BAM, headers.bam[:length], complete=False) is None
        with pytest.raises(FormatMismatch, match=r"ends inside|expected BAM"):
            inspect(FileType.BAM, headers.bam[:length], complete=True)


def test_a_bam_without_sq_lines_is_unaligned(headers: Headers) -> None:
    assert inspect(FileType.BAM, headers.ubam, complete=True) == Header(FileType.UBAM, (), "NA12878")


@pytest.mark.parametrize("version", ["2.1", "3.0", "3.1"])
def test_cram_headers_of_each_version(headers: Headers, version: str) -> None:
    data = headers.cram[version]
    assert data[:4] == b"CRAM"
    assert data[4] == int(version[0])
    length, header = first_complete_prefix(FileType.CRAM, data, step=5)
    length = header_end(FileType.CRAM, data)
    assert header is not None
    assert (header.file_type, header.sample) == (FileType.CRAM, "NA12878")
    assert [(sq.name, sq.length) for sq in header.references] == [("chr1", 2000), ("chr2", 1000)]
    assert all(sq.m5 and len(sq.m5) == 32 for sq in header.references)  # samtools writes M5 tags
    assert length < len(data)
    for cut in (3, 10, length - 1):
        assert inspect(FileType.CRAM, data[:cut], complete=False) is None
    with pytest.raises(FormatMismatch, match=r"ends inside its CRAM header|expected CRAM"):
        inspect(FileType.CRAM, data[: length - 1], complete=True)


def test_fastq_gz_is_confirmed_by_its_first_record() -> None:
    data = gzip.compress(b"@r1\nACGT\n+\nIIII\n" * 100)
    assert inspect(FileType.FASTQ, data[:1], complete=False) is None
    assert first_complete_prefix(FileType.FASTQ, data, step=1)[1] == Header(FileType.FASTQ)
    # A second gzip member, as concatenated .fastq.gz files have, is read on from the first.
    empty_first = gzip.compress(b"") + gzip.compress(b"@r1\nA\n+\nI\n")
    assert inspect(FileType.FASTQ, empty_first, complete=True) == Header(FileType.FASTQ)


@pytest.mark.parametrize(
    ("file_type", "data", "message"),
    [
        (FileType.FASTQ, b"@r1\nACGT\n+\nIIII\n", "expected gzip-compressed FASTQ, found plain text"),
        (FileType.FASTQ, gzip.compress(b">chr1\nACGT\n"), "expected FASTQ records starting with '@'"),
        (FileType.FASTQ, b"\x1f\x8b" + b"\x00" * 30, "damaged"),
        (FileType.FASTQ, b"", "expected gzip-compressed FASTQ, found no data"),
        (FileType.BAM, gzip.compress(b"@r1\nACGT\n+\nIIII\n" * 10), "BGZF with the BAM magic"),
        (FileType.BAM, b">chr1\nACGTACGTACGTACGTACGT\n", "found FASTA text"),
        (FileType.BAM, b"CRAM\x03\x00" + b"\x00" * 30, "found CRAM"),
        (FileType.CRAM, b"\x1f\x8b\x08\x04" + b"\x00" * 30, "expected CRAM, found gzip/BGZF data"),
        (FileType.CRAM, b"@HD\tVN:1.6\n", "expected CRAM, found plain text"),
        (FileType.UBAM, b"BAM\x01", "unsupported file type"),
    ],
    ids=["plain-fastq-as-gz", "gzip-fasta", "broken-gzip", "empty", "gzip-not-bgzf", "fasta-as-bam",
         "cram-as-bam", "bam-as-cram", "sam-as-cram", "ubam-name"],
)  # fmt: skip
def test_bytes_of_another_type_are_refused(file_type: FileType, data: bytes, message: str) -> None:
    with pytest.raises(FormatMismatch, match=message):
        inspect(file_type, data, complete=True)


def test_bgzf_that_is_not_bam_is_refused_as_soon_as_the_magic_is_seen(headers: Headers) -> None:
    with pytest.raises(FormatMismatch, match="without the BAM magic"):
        inspect(FileType.BAM, headers.bgzf_text[:200], complete=False)


def test_the_wrong_type_is_refused_from_the_first_bytes_not_at_the_end(headers: Headers) -> None:
    with pytest.raises(FormatMismatch):
        inspect(FileType.CRAM, headers.bam[:4], complete=False)
    with pytest.raises(FormatMismatch):
        inspect(FileType.BAM, headers.cram["3.0"][:18], complete=False)


def test_the_sample_datas_files_are_what_their_names_say(tmp_path: Path) -> None:
    """The sample data's own files (samtools sort and view output) pass too."""
    sample = make_sample(tmp_path, pairs=20)
    found = inspect(FileType.BAM, sample.bam.read_bytes(), complete=True)
    assert found is not None
    assert [(sq.name, sq.length) for sq in found.references] == [("chr1", 50_000), ("chr2", 30_000)]
    assert inspect(FileType.BAM, sample.ubam.read_bytes(), complete=True) == Header(
        FileType.UBAM, (), "NA12878"
    )
    cram = inspect(FileType.CRAM, sample.cram.read_bytes(), complete=True)
    assert cram is not None
    # The same contigs; the CRAM's @SQ lines also carry M5 tags, the BAM's do not.
    names = [(sq.name, sq.length) for sq in found.references]
    assert [(sq.name, sq.length) for sq in cram.references] == names
    assert all(sq.m5 for sq in cram.references)
