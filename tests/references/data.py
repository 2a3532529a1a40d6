"""References and alignments for the by-md5 and matching tests, made with htslib or taken from
Debian's htslib-test package (its CRAMs were written by htslib and by cramtools, the Java
implementation, against its own small references)."""

from __future__ import annotations

import hashlib
import random
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pysam

from omicsfs.sample.data import simulate_pairs, write_bam, write_cram

HTSLIB_TEST = Path("/usr/share/htslib-test/test")


@dataclass(frozen=True)
class Cram:
    """A CRAM, its index, and the local FASTA it decodes against with ``-T``."""

    path: Path
    reference: Path


@dataclass(frozen=True)
class Made:
    fasta_folder: Path  # every FASTA made here; the CRAMs are elsewhere, so it can be hidden
    masked: Path  # three contigs with soft-masked (lower-case) runs and N
    masked_sequences: dict[str, str]
    masked_bam: Path  # reads from it; header without M5 tags
    masked_cram: Cram
    crlf: Path  # one contig, CRLF line ends, 70 columns
    crlf_cram: Cram
    tabbed: Path  # contig "bad" has a tab inside a line; htslib's faidx still indexes it
    tabbed_bad_sequence: str
    superset: Path  # the sample genome's chr1 and chr2, plus chr3
    htslib_crams: list[Cram]


def m5(sequence: str) -> str:
    """The SAM spec's M5: the MD5 of the bases upper-cased, without anything outside 33-126."""
    return hashlib.md5("".join(c for c in sequence if 33 <= ord(c) <= 126).upper().encode()).hexdigest()


def write_fasta(path: Path, sequences: dict[str, str], width: int = 60, newline: str = "\n") -> None:
    with open(path, "w", newline="") as out:
        for name, sequence in sequences.items():
            out.write(f">{name} made for omicsfs tests{newline}")
            for start in range(0, len(sequence), width):
                out.write(sequence[start : start + width] + newline)
    pysam.faidx(str(path))


def soft_masked(length: int, rng: random.Random) -> str:
    """Random bases with lower-case runs (repeats, as RepeatMasker marks them) and N gaps."""
    out = []
    while sum(map(len, out)) < length:
        run = "".join(rng.choices("ACGT", k=rng.randint(50, 400)))
        roll = rng.random()
        out.append(run.lower() if roll < 0.3 else "N" * rng.randint(10, 50) if roll < 0.35 else run)
    return "".join(out)[:length]


def _cram_against(folder: Path, stem: str, reference: Path, sequences: dict[str, str], pairs: int) -> Cram:
    """Reads from ``sequences`` as a BAM and a CRAM (whose @SQ lines htslib gives M5 and a UR
    naming ``reference``)."""
    upper = {name: seq.upper() for name, seq in sequences.items()}
    reads = [
        (first, second)
        for first, second in simulate_pairs(upper, pairs, seed=len(stem))
        if "N" not in upper[first.contig][first.start : second.start + 100]
    ]
    bam = folder / f"{stem}.bam"
    write_bam(bam, upper, reads, "S1")
    cram = folder / f"{stem}.cram"
    write_cram(cram, bam, reference)
    return Cram(cram, reference)


def _htslib_crams(folder: Path) -> list[Cram]:
    """Every CRAM of htslib-test, copied and indexed (region queries need the index)."""
    crams = []
    for source in sorted(HTSLIB_TEST.glob("*.cram")):
        header = subprocess.run(["samtools", "view", "-H", str(source)], check=True, capture_output=True,
                                text=True).stdout  # fmt: skip
        reference = HTSLIB_TEST / (
            "auxf.fa" if "SN:Sheila" in header else "xx.fa" if "SN:xx" in header else "ce.fa"
        )
        copy = folder / re.sub(r"[^A-Za-z0-9_.]", "_", source.name)
        shutil.copyfile(source, copy)
        pysam.index(str(copy))
        crams.append(Cram(copy, reference))
    return crams


def make_all(root: Path, sample_reference: Path) -> Made:
    fastas, folder = root / "fasta", root / "alignments"
    fastas.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(41)
    masked_sequences = {"chrA": soft_masked(40_000, rng), "chrB": soft_masked(25_000, rng),
                        "chrC_random": soft_masked(6_000, rng)}  # fmt: skip
    masked = fastas / "masked.fa"
    write_fasta(masked, masked_sequences)
    crlf_sequences = {"mito": "".join(rng.choices("ACGTacgt", k=16_569))}
    crlf = fastas / "crlf.fa"
    write_fasta(crlf, crlf_sequences, width=70, newline="\r\n")
    body = "ACGTACGTAC\nACG\tTACGTA\nACGTACGTAC\nACG\n"
    tabbed = fastas / "tabbed.fa"
    tabbed.write_text(f">bad\n{body}>good\n{'GATTACA' * 20}\n")
    pysam.faidx(str(tabbed))
    sample = {name: str(seq) for name, seq in _read_fasta(sample_reference).items()}
    superset = fastas / "superset.fa"
    write_fasta(superset, {**sample, "chr3": "".join(rng.choices("ACGT", k=3_000))})
    return Made(
        fasta_folder=fastas,
        masked=masked,
        masked_sequences=masked_sequences,
        masked_bam=folder / "masked.bam",
        masked_cram=_cram_against(folder, "masked", masked, masked_sequences, 1500),
        crlf=crlf,
        crlf_cram=_cram_against(folder, "crlf", crlf, crlf_sequences, 300),
        tabbed=tabbed,
        tabbed_bad_sequence=body.replace("\n", "").replace("\t", ""),
        superset=superset,
        htslib_crams=_htslib_crams(folder),
    )


def _read_fasta(path: Path) -> dict[str, str]:
    with pysam.FastaFile(str(path)) as fasta:
        return {name: fasta.fetch(name) for name in fasta.references}


def renamed_bam(source: Path, target: Path, names: dict[str, str], sequences: dict[str, str] | None,
                folder: Path) -> Path:  # fmt: skip
    """``source`` with its @SQ names replaced by ``names``, carrying the M5 of ``sequences`` (by
    the old name) or no M5 at all (None)."""
    header = subprocess.run(["samtools", "view", "-H", str(source)], check=True, capture_output=True,
                            text=True).stdout  # fmt: skip
    lines = []
    for line in header.splitlines():
        if line.startswith("@SQ"):
            fields = dict(item.split(":", 1) for item in line.split("\t")[1:])
            old = fields["SN"]
            line = f"@SQ\tSN:{names.get(old, old)}\tLN:{fields['LN']}"
            if sequences is not None:
                line += f"\tM5:{m5(sequences[old])}"
        lines.append(line)
    sam = folder / f"{target.stem}.header.sam"
    sam.write_text("\n".join(lines) + "\n")
    reheadered = subprocess.run(
        ["samtools", "reheader", str(sam), str(source)], check=True, capture_output=True
    )
    target.write_bytes(reheadered.stdout)
    return target


def subset_bam(source: Path, target: Path, keep: list[str]) -> Path:
    """A BAM of ``source``'s reads on ``keep`` with a header listing only those contigs (as
    filtering decoys or alts leaves it), without M5 tags."""
    with pysam.AlignmentFile(str(source)) as inp:
        header = inp.header.to_dict()
        header["SQ"] = [{"SN": sq["SN"], "LN": sq["LN"]} for sq in header["SQ"] if sq["SN"] in keep]
        ids = {sq["SN"]: index for index, sq in enumerate(header["SQ"])}
        with pysam.AlignmentFile(str(target), "wb", header=header) as out:
            for record in inp.fetch(until_eof=True):
                if record.reference_name in keep and record.next_reference_name in keep:
                    copy = pysam.AlignedSegment.from_dict(record.to_dict(), out.header)
                    copy.reference_id = ids[record.reference_name]
                    copy.next_reference_id = ids[record.next_reference_name]
                    out.write(copy)
    return target
