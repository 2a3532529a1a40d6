"""Alignment files and references that differ from the sample in one way each, made with htslib.

For the service's reference rules: a reference holding more contigs than the sample's header, one
with the same names and lengths but other bases, one with the sample's bases under other names;
a BAM whose @SQ lines carry M5 tags (right or wrong), a CRAM without M5 tags, and a uBAM whose
record claims to be aligned.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pysam

from omicsfs.sample.data import SampleFiles, make_reference

SAMPLE_CONTIGS = {"chr1": 50_000, "chr2": 30_000}  # make_sample's genome (seed 1)


@dataclass(frozen=True)
class Variants:
    superset_reference: Path  # chr1, chr2 as the sample's, plus chr3
    other_reference: Path  # chr1, chr2 with the sample's lengths and other bases
    renamed_reference: Path  # the sample's bases, named 1 and 2
    bam_with_m5: Path  # the sample BAM, its @SQ lines carrying the right M5
    bam_with_wrong_m5: Path  # ... carrying the other reference's M5
    cram_without_m5: Path  # the sample CRAM with M5 and UR removed from its @SQ lines
    ubam_with_aligned_record: Path  # no @SQ lines, one record without the unmapped flag


def _m5(sequence: str) -> str:
    return hashlib.md5(sequence.upper().encode()).hexdigest()


def _write_fasta(path: Path, sequences: dict[str, str]) -> None:
    with open(path, "w") as out:
        for name, sequence in sequences.items():
            out.write(f">{name}\n")
            for start in range(0, len(sequence), 60):
                out.write(sequence[start : start + 60] + "\n")


def _with_m5(source: Path, target: Path, sequences: dict[str, str]) -> None:
    with pysam.AlignmentFile(str(source)) as inp:
        header = inp.header.to_dict()
        for sq in header["SQ"]:
            sq["M5"] = _m5(sequences[sq["SN"]])
        with pysam.AlignmentFile(str(target), "wb", header=header) as out:
            for record in inp.fetch(until_eof=True):
                out.write(record)


def _without_m5(cram: Path, target: Path, folder: Path) -> None:
    text = subprocess.run(["samtools", "view", "-H", str(cram)], check=True, capture_output=True, text=True)
    header = folder / "no-m5.sam"
    header.write_text(re.sub(r"\t(M5|UR):\S+", "", text.stdout))
    reheadered = subprocess.run(
        ["samtools", "reheader", str(header), str(cram)], check=True, capture_output=True
    )
    target.write_bytes(reheadered.stdout)


def _ubam_with_aligned_record(target: Path) -> None:
    header = pysam.AlignmentHeader.from_dict({"HD": {"VN": "1.6"}, "RG": [{"ID": "rg1", "SM": "x"}]})
    with pysam.AlignmentFile(str(target), "wb", header=header) as out:
        record = pysam.AlignedSegment(header)
        record.query_name = "claims-aligned"
        record.flag = 0  # no 0x4: "mapped", though there is nothing to be mapped to
        record.query_sequence = "ACGTACGTAC"
        record.query_qualities = pysam.qualitystring_to_array("IIIIIIIIII")
        out.write(record)


def make_variants(folder: Path, sample: SampleFiles) -> Variants:
    folder.mkdir(parents=True, exist_ok=True)
    superset = folder / "superset.fasta"
    # The same seed draws the same bases in the same order: chr1 and chr2 equal the sample's.
    sequences = make_reference(superset, {**SAMPLE_CONTIGS, "chr3": 2_000}, seed=1)
    sample_sequences = {name: sequences[name] for name in SAMPLE_CONTIGS}
    assert (
        _m5(sample_sequences["chr1"])
        in subprocess.run(
            ["samtools", "view", "-H", str(sample.cram)], check=True, capture_output=True, text=True
        ).stdout
    )
    other = folder / "other.fasta"
    other_sequences = make_reference(other, SAMPLE_CONTIGS, seed=99)
    renamed = folder / "renamed.fasta"
    _write_fasta(renamed, {"1": sample_sequences["chr1"], "2": sample_sequences["chr2"]})
    variants = Variants(
        superset_reference=superset,
        other_reference=other,
        renamed_reference=renamed,
        bam_with_m5=folder / "m5.bam",
        bam_with_wrong_m5=folder / "wrong-m5.bam",
        cram_without_m5=folder / "no-m5.cram",
        ubam_with_aligned_record=folder / "aligned-record.unaligned.bam",
    )
    _with_m5(sample.bam, variants.bam_with_m5, sample_sequences)
    _with_m5(sample.bam, variants.bam_with_wrong_m5, other_sequences)
    _without_m5(sample.cram, variants.cram_without_m5, folder)
    _ubam_with_aligned_record(variants.ubam_with_aligned_record)
    return variants
