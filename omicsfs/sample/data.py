"""Real genomic sample data, generated (never downloaded): a reference genome and reads from it.

Reads are sampled from the reference with a few mismatches and written, with htslib through
pysam, as a coordinate-sorted indexed BAM, a CRAM against the reference, paired gzip FASTQ and an
unaligned BAM. Tests, benchmarks and the demo use the same generator, so every file type is
exercised with data that samtools accepts. A seed makes every byte reproducible.
"""

from __future__ import annotations

import gzip
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pysam

BASES = "ACGT"


@dataclass(frozen=True)
class SampleFiles:
    reference: Path
    bam: Path
    cram: Path
    fastq1: Path
    fastq2: Path
    ubam: Path


def make_reference(path: Path, contigs: dict[str, int], seed: int = 1) -> dict[str, str]:
    """Writes a FASTA (60 columns, as samtools faidx expects) and its .fai; returns the sequences."""
    rng = random.Random(seed)
    sequences = {name: "".join(rng.choices(BASES, k=length)) for name, length in contigs.items()}
    with open(path, "w") as handle:
        for name, seq in sequences.items():
            handle.write(f">{name}\n")
            for i in range(0, len(seq), 60):
                handle.write(seq[i : i + 60] + "\n")
    pysam.faidx(str(path))
    return sequences


@dataclass(frozen=True)
class Read:
    name: str
    contig: str
    start: int
    sequence: str
    quality: str
    reverse: bool
    mate: int  # 1 or 2


def simulate_pairs(
    sequences: dict[str, str], pairs: int, read_length: int = 100, insert: int = 300, seed: int = 2
) -> Iterator[tuple[Read, Read]]:
    """Read pairs from random positions, with about 1% substitutions and plausible qualities."""
    rng = random.Random(seed)
    contigs = list(sequences)
    for i in range(pairs):
        contig = rng.choice(contigs)
        seq = sequences[contig]
        start = rng.randrange(0, len(seq) - insert)
        name = f"read{i:07d}"
        mates = []
        for mate, offset, reverse in ((1, start, False), (2, start + insert - read_length, True)):
            bases = list(seq[offset : offset + read_length])
            for j in range(read_length):
                if rng.random() < 0.01:
                    bases[j] = rng.choice(BASES)
            quality = "".join(chr(33 + rng.randint(20, 40)) for _ in range(read_length))
            mates.append(Read(name, contig, offset, "".join(bases), quality, reverse, mate))
        yield mates[0], mates[1]


def _reverse_complement(seq: str) -> str:
    return seq[::-1].translate(str.maketrans("ACGT", "TGCA"))


def _header(sequences: dict[str, str], sample: str, aligned: bool) -> pysam.AlignmentHeader:
    header: dict[str, object] = {
        "HD": {"VN": "1.6", "SO": "coordinate" if aligned else "unsorted"},
        "RG": [{"ID": "rg1", "SM": sample, "PL": "ILLUMINA", "LB": "lib1"}],
    }
    if aligned:
        header["SQ"] = [{"SN": name, "LN": len(seq)} for name, seq in sequences.items()]
    return pysam.AlignmentHeader.from_dict(header)


def write_bam(path: Path, sequences: dict[str, str], pairs: list[tuple[Read, Read]], sample: str) -> None:
    """A coordinate-sorted BAM with a BAI index (reads placed where they were sampled)."""
    header = _header(sequences, sample, aligned=True)
    unsorted = path.with_suffix(".unsorted.bam")
    contig_ids = {name: i for i, name in enumerate(sequences)}
    with pysam.AlignmentFile(str(unsorted), "wb", header=header) as out:
        for first, second in pairs:
            for read, mate in ((first, second), (second, first)):
                seg = pysam.AlignedSegment(header)
                seg.query_name = read.name
                seg.reference_id = contig_ids[read.contig]
                seg.reference_start = read.start
                seg.mapping_quality = 60
                seg.cigarstring = f"{len(read.sequence)}M"
                seg.query_sequence = read.sequence
                seg.query_qualities = pysam.qualitystring_to_array(read.quality)
                seg.next_reference_id = contig_ids[mate.contig]
                seg.next_reference_start = mate.start
                seg.template_length = (
                    (mate.start + len(mate.sequence) - read.start) if read.mate == 1
                    else -(read.start + len(read.sequence) - mate.start)
                )  # fmt: skip
                flag = 0x1 | 0x2 | (0x40 if read.mate == 1 else 0x80)
                flag |= (0x10 if read.reverse else 0) | (0x20 if mate.reverse else 0)
                seg.flag = flag
                seg.set_tag("RG", "rg1")
                out.write(seg)
    pysam.sort("-o", str(path), str(unsorted))
    unsorted.unlink()
    pysam.index(str(path))


def write_cram(path: Path, bam: Path, reference: Path) -> None:
    pysam.view("-C", "-T", str(reference), "-o", str(path), str(bam), catch_stdout=False)
    pysam.index(str(path))


def write_fastq_pair(path1: Path, path2: Path, pairs: list[tuple[Read, Read]]) -> None:
    with gzip.open(path1, "wt", compresslevel=6) as one, gzip.open(path2, "wt", compresslevel=6) as two:
        for first, second in pairs:
            one.write(f"@{first.name}/1\n{first.sequence}\n+\n{first.quality}\n")
            seq2 = _reverse_complement(second.sequence) if second.reverse else second.sequence
            qual2 = second.quality[::-1] if second.reverse else second.quality
            two.write(f"@{second.name}/2\n{seq2}\n+\n{qual2}\n")


def write_ubam(path: Path, sequences: dict[str, str], pairs: list[tuple[Read, Read]], sample: str) -> None:
    header = _header(sequences, sample, aligned=False)
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        for first, second in pairs:
            for read in (first, second):
                seg = pysam.AlignedSegment(header)
                seg.query_name = read.name
                seg.flag = 0x1 | 0x4 | 0x8 | (0x40 if read.mate == 1 else 0x80)
                seg.query_sequence = read.sequence
                seg.query_qualities = pysam.qualitystring_to_array(read.quality)
                seg.set_tag("RG", "rg1")
                out.write(seg)


def make_sample(folder: Path, pairs: int = 2000, sample: str = "NA12878", seed: int = 1) -> SampleFiles:
    """Every file type from one small genome (two contigs) and one set of reads."""
    folder.mkdir(parents=True, exist_ok=True)
    reference = folder / "reference.fasta"
    sequences = make_reference(reference, {"chr1": 50_000, "chr2": 30_000}, seed=seed)
    reads = list(simulate_pairs(sequences, pairs, seed=seed + 1))
    files = SampleFiles(
        reference=reference,
        bam=folder / "sample.bam",
        cram=folder / "sample.cram",
        fastq1=folder / "sample_1.fastq.gz",
        fastq2=folder / "sample_2.fastq.gz",
        ubam=folder / "sample.unaligned.bam",
    )
    write_bam(files.bam, sequences, reads, sample)
    write_cram(files.cram, files.bam, reference)
    write_fastq_pair(files.fastq1, files.fastq2, reads)
    write_ubam(files.ubam, sequences, reads, sample)
    return files


def fastq_gzip_member(target: int, seed: int, read_length: int = 150, batch: int = 4096) -> bytes:
    """One gzip member (level 1) of pseudo-random FASTQ records, about ``target`` bytes long.

    For benchmarks that need hundreds of MiB fast: members can be concatenated into a valid
    multi-member gzip file. Not aligned to any reference; ``make_sample`` is for realistic data.
    """
    rng = random.Random(seed)
    bases = bytes(b"ACGT"[i % 4] for i in range(256))
    quals = bytes(33 + i % 41 for i in range(256))
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: gzip framing
    out: list[bytes] = []
    size = serial = 0
    while size < target:
        seq = rng.randbytes(batch * read_length).translate(bases)
        qual = rng.randbytes(batch * read_length).translate(quals)
        records = b"".join(
            b"@read%d\n%s\n+\n%s\n" % (serial + i, seq[o : o + read_length], qual[o : o + read_length])
            for i, o in enumerate(range(0, batch * read_length, read_length))
        )
        serial += batch
        piece = compressor.compress(records)
        out.append(piece)
        size += len(piece)
    out.append(compressor.flush())
    return b"".join(out)
