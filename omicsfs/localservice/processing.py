"""What the service does to the bytes it ingests: format checks, indexes, counts and etags.

These are pure functions of files on disk (no database), run in worker threads by ``jobs``.
htslib does the genomics through pysam; there is no hand-written BAM, CRAM or FASTA parsing.

Fidelity notes (also in README "What the local service does not emulate"):
- Like the real service, BAM and uBAM read sets gain an ``@CO`` header line naming the sequence
  store and the ingestion time, so the stored bytes differ from the uploaded ones
  (https://docs.aws.amazon.com/omics/latest/dev/etags-and-provenance.html). CRAM is stored as
  uploaded: ``samtools reheader`` on CRAM writes to the process's stdout, which a server cannot
  share.
- The etag is the store's hash family over the *stored bytes* of each source. The real service
  hashes the decompressed FASTQ, or the alignment section rendered as SAM, so values differ.
- ``sequenceInformation.alignment`` is ``ALIGNED`` for BAM/CRAM with @SQ lines and ``UNALIGNED``
  otherwise; the real service's vocabulary is undocumented.
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pysam

from omicsfs.localservice import contigs
from omicsfs.localservice.blobs import commit_file, file_digest, tmp_sibling

log = logging.getLogger(__name__)

# htslib fetches missing CRAM references from the EBI by MD5 unless told otherwise; this service
# must never touch the network, so point REF_PATH at nothing.
os.environ.setdefault("REF_PATH", "/nonexistent/%s")
os.environ.setdefault("REF_CACHE", "/nonexistent/%s")

BAM_MAGIC = b"BAM\x01"
CRAM_MAGIC = b"CRAM"
GZIP_MAGIC = b"\x1f\x8b"

_FAMILY_HASH = {"MD5up": "md5", "SHA256up": "sha256", "SHA512up": "sha512"}


class InvalidInput(Exception):
    """The bytes are not what they were declared to be; the message becomes statusMessage."""


def sniff(path: Path) -> str:
    """Names a file's format from its first bytes: BAM, CRAM, GZIP, FASTQ, FASTA or UNKNOWN."""
    with open(path, "rb") as handle:
        head = handle.read(18)
    if head.startswith(CRAM_MAGIC):
        return "CRAM"
    if head.startswith(GZIP_MAGIC):
        # BGZF is gzip with a "BC" extra subfield; its first block holds the BAM magic.
        if len(head) >= 16 and head[3] & 4 and head[12:14] == b"BC":
            try:
                with gzip.open(path, "rb") as inner:
                    if inner.read(4) == BAM_MAGIC:
                        return "BAM"
            except (OSError, EOFError, zlib.error):
                return "UNKNOWN"
        return "GZIP"
    if head.startswith(b"@"):
        return "FASTQ"
    if head.startswith(b">"):
        return "FASTA"
    return "UNKNOWN"


@dataclass
class ProcessedReadSet:
    """The outcome of ingesting a read set's sources."""

    index: Path | None = None
    sequence_information: dict[str, Any] = field(default_factory=dict)
    etag: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReferenceFiles:
    """The reference a read set names: its FASTA (with ``.fai``) and its saved contigs."""

    arn: str
    fasta: Path
    contigs: Path


ALIGNED_TYPES = frozenset({"BAM", "CRAM"})


def process_read_set(
    sources: dict[str, Path],
    file_type: str,
    etag_family: str,
    index_path: Path,
    provenance: str,
    reference: ReferenceFiles | None = None,
) -> ProcessedReadSet:
    """Checks, stamps, indexes, counts and hashes a read set's files in place.

    ``sources`` maps ``source1``/``source2`` to their stored files. Raises InvalidInput when the
    bytes are not the declared ``file_type``: BAM and CRAM must name a reference that holds every
    ``@SQ`` contig (``contigs``) and a CRAM must decode against it; a uBAM must have no ``@SQ``
    lines and no aligned records (README "What it does", "References").
    """
    result = ProcessedReadSet()
    if file_type in ("BAM", "UBAM", "CRAM"):
        source = sources["source1"]
        expected = "CRAM" if file_type == "CRAM" else "BAM"
        found = sniff(source)
        if found != expected:
            raise InvalidInput(
                f"SOURCE1 is not a {file_type} file (expected {_describe(expected)}, found "
                f"{_describe(found)})"
            )
        fasta = reference.fasta if reference is not None else None
        sq_lines = _header(source, fasta).get("SQ", [])
        if file_type in ALIGNED_TYPES:
            _check_reference(sq_lines, reference)
        elif sq_lines:
            raise InvalidInput(
                f"SOURCE1 has {len(sq_lines)} @SQ lines, so it is an aligned BAM, not a uBAM: "
                "declare it BAM, with its referenceArn"
            )
        if expected == "BAM":
            _add_provenance(source, provenance, fasta)
        if file_type != "UBAM" and _build_index(source, index_path, file_type):
            result.index = index_path
        reads, bases = _count_alignments(source, fasta, file_type)
        result.sequence_information = {
            "totalReadCount": reads,
            "totalBaseCount": bases,
            "alignment": "ALIGNED" if sq_lines else "UNALIGNED",
        }
    elif file_type == "FASTQ":
        reads = bases = 0
        for name, path in sources.items():
            if sniff(path) != "GZIP":
                raise InvalidInput(
                    f"{name.upper()} is not gzip-compressed FASTQ (sequence stores keep FASTQ gzip-only)"
                )
            n, b = _count_fastq(path, name)
            reads += n
            bases += b
        result.sequence_information = {
            "totalReadCount": reads,
            "totalBaseCount": bases,
            "alignment": "UNALIGNED",
        }
    else:
        raise InvalidInput(f"unknown file type {file_type}")
    algorithm = "BAM" if file_type == "UBAM" else file_type
    result.etag = {"algorithm": f"{algorithm}_{etag_family}"}
    for name, path in sources.items():
        result.etag[name] = file_digest(path, _FAMILY_HASH[etag_family])
    return result


def _check_reference(sq_lines: list[dict[str, Any]], reference: ReferenceFiles | None) -> None:
    if reference is None:
        raise InvalidInput("an aligned read set needs a reference, and its referenceArn names none")
    missing = contigs.missing_contigs(sq_lines, contigs.load_contigs(reference.fasta, reference.contigs))
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise InvalidInput(f"{len(missing)} @SQ contigs are not in the reference: {shown}")


def _describe(kind: str) -> str:
    return {
        "BAM": "BGZF with BAM magic",
        "CRAM": "CRAM magic",
        "GZIP": "plain gzip",
        "FASTQ": "uncompressed FASTQ",
        "FASTA": "FASTA text",
    }.get(kind, "unrecognised bytes")


def _open_alignments(path: Path, reference_fasta: Path | None) -> Any:
    kwargs: dict[str, Any] = {"check_sq": False}
    if reference_fasta is not None:
        kwargs["reference_filename"] = str(reference_fasta)
    return pysam.AlignmentFile(str(path), **kwargs)


def _header(path: Path, reference_fasta: Path | None) -> dict[str, Any]:
    try:
        with _open_alignments(path, reference_fasta) as handle:
            header: dict[str, Any] = handle.header.to_dict()
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read the header: {exc}") from None
    return header


def _add_provenance(path: Path, provenance: str, reference_fasta: Path | None) -> None:
    """Adds the ``@CO`` line the real service stamps into BAM/uBAM/CRAM headers on ingestion."""
    try:
        with _open_alignments(path, reference_fasta) as handle:
            header = handle.header.to_dict()
        header.setdefault("CO", []).append(provenance)
        new_header = tmp_sibling(path).with_suffix(".header.sam")
        new_header.write_text(str(pysam.AlignmentHeader.from_dict(header)))
        tmp = tmp_sibling(path)
        # `samtools reheader` rewrites only the header and copies the rest block for block.
        pysam.samtools.reheader("-P", str(new_header), str(path), save_stdout=str(tmp))
        new_header.unlink()
        commit_file(tmp, path)
    except (OSError, ValueError, pysam.utils.SamtoolsError) as exc:
        raise InvalidInput(f"cannot read the header: {exc}") from None


def _build_index(path: Path, index_path: Path, file_type: str) -> bool:
    """Builds the BAI/CRAI; an unsorted BAM has none (reads then stay whole-file only)."""
    tmp = tmp_sibling(index_path)
    try:
        pysam.index(str(path), str(tmp), *(["-b"] if file_type == "BAM" else []))
    except pysam.utils.SamtoolsError as exc:
        log.info("no index for %s: %s", path.parent.name, str(exc).strip()[:200])
        tmp.unlink(missing_ok=True)
        return False
    commit_file(tmp, index_path)
    return True


def _count_alignments(path: Path, reference_fasta: Path | None, file_type: str) -> tuple[int, int]:
    """Primary reads and their bases; reading every record is also what proves that a CRAM
    decodes against its reference (htslib checks each slice's reference MD5)."""
    reads = bases = 0
    try:
        with _open_alignments(path, reference_fasta) as handle:
            for record in handle.fetch(until_eof=True):
                if file_type == "UBAM" and not record.is_unmapped:
                    raise InvalidInput(
                        f"record {record.query_name} is aligned; a uBAM holds unaligned reads only"
                    )
                if record.is_secondary or record.is_supplementary:
                    continue
                reads += 1
                bases += record.query_length or record.infer_read_length() or 0
    except (OSError, ValueError) as exc:
        what = "does not decode against its reference" if file_type == "CRAM" else "cannot be read"
        raise InvalidInput(f"SOURCE1 {what}: {exc}") from None
    return reads, bases


def _count_fastq(path: Path, name: str) -> tuple[int, int]:
    reads = bases = 0
    try:
        with pysam.FastxFile(str(path)) as handle:
            for record in handle:
                if record.quality is None:
                    raise InvalidInput(f"{name.upper()} holds FASTA records, not FASTQ")
                reads += 1
                bases += len(record.sequence or "")
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{name.upper()} is not valid gzip FASTQ: {exc}") from None
    if reads == 0:
        raise InvalidInput(f"{name.upper()} holds no FASTQ records")
    return reads, bases


# --------------------------------------------------------------------------------------------
# References


@dataclass
class ProcessedReference:
    md5: str
    source_size: int
    index_size: int


def process_reference(source: Path, stored: Path, index: Path, contigs_path: Path) -> ProcessedReference:
    """Stores a FASTA (decompressed if gzip/bgzip) with its FAI index, whole-file MD5 and the
    name, length and MD5 of every contig (what uploads are checked against)."""
    kind = sniff(source)
    stored.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(stored)
    if kind == "GZIP" or kind == "BAM":
        with gzip.open(source, "rb") as src, open(tmp, "wb") as out:
            while chunk := src.read(4 * 1024 * 1024):
                out.write(chunk)
    else:
        with open(source, "rb") as src, open(tmp, "wb") as out:
            while chunk := src.read(4 * 1024 * 1024):
                out.write(chunk)
    with open(tmp, "rb") as handle:
        if handle.read(1) != b">":
            tmp.unlink()
            raise InvalidInput("the source is not a FASTA file (it must start with '>')")
    commit_file(tmp, stored)
    try:
        pysam.faidx(str(stored))
    except pysam.utils.SamtoolsError as exc:
        raise InvalidInput(f"cannot index the FASTA: {str(exc).strip()[:200]}") from None
    # Keep the FAI beside the FASTA as well: htslib looks for `source.fai` when it decodes a CRAM
    # against this reference and would otherwise write one on the fly, non-atomically.
    os.link(str(stored) + ".fai", index)
    contigs.write_contigs(contigs.compute_contigs(stored), contigs_path)
    return ProcessedReference(
        md5=file_digest(stored, "md5"),
        source_size=stored.stat().st_size,
        index_size=index.stat().st_size,
    )
