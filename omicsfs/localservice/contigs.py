"""A reference's contigs, and whether an alignment header's ``@SQ`` lines are among them.

The real service requires a reference for aligned read sets ("Aligned read sets require a
reference genome", https://docs.aws.amazon.com/omics/latest/dev/manage-sequence-store.html) and
the reference is what a CRAM decodes against, so a BAM or CRAM whose contigs are not in its
reference cannot be a read set of it. The match is the one htslib uses to identify a contig
(SAM spec §1.3, https://samtools.github.io/hts-specs/SAMv1.pdf): where an ``@SQ`` line carries an
``M5`` it decides (the name may differ, ``chr1`` and ``1`` with the same sequence are the same
contig; the same name with another MD5 is not); without one, the name and the length must both
match. A header may list a subset of the reference's contigs.

The per-contig MD5s are computed once per reference, streaming each sequence through its ``.fai``
entry (4 MiB at a time, never a whole chromosome in memory), and kept beside the FASTA as JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from omicsfs.localservice.blobs import commit_file, tmp_sibling

_CHUNK = 4 * 1024 * 1024
#: The SAM spec's M5: the MD5 of the sequence upper-cased, without the bytes outside 33-126.
_UPPER = bytes.maketrans(bytes(range(97, 123)), bytes(range(65, 91)))
_NOT_SEQUENCE = bytes(c for c in range(256) if not 33 <= c <= 126)


@dataclass(frozen=True)
class Contig:
    name: str
    length: int
    md5: str


def compute_contigs(fasta: Path) -> list[Contig]:
    """Every sequence of an indexed FASTA (``fasta.fai`` beside it), with its M5 value."""
    contigs = []
    with open(f"{fasta}.fai") as index, open(fasta, "rb") as source:
        for line in index:
            fields = line.rstrip("\n").split("\t")
            name, length, offset, line_bases, line_width = fields[0], *map(int, fields[1:5])
            full_lines, rest = divmod(length, line_bases) if line_bases else (0, 0)
            span = full_lines * line_width + rest
            digest = hashlib.md5()
            source.seek(offset)
            while span > 0:
                chunk = source.read(min(_CHUNK, span))
                if not chunk:
                    break
                span -= len(chunk)
                digest.update(chunk.translate(_UPPER, _NOT_SEQUENCE))
            contigs.append(Contig(name, length, digest.hexdigest()))
    return contigs


def write_contigs(contigs: Iterable[Contig], path: Path) -> None:
    tmp = tmp_sibling(path)
    tmp.write_text(json.dumps([asdict(c) for c in contigs]))
    commit_file(tmp, path)


def load_contigs(fasta: Path, path: Path) -> list[Contig]:
    """The saved contigs of a reference; computed and saved first for a reference imported before
    the service kept them."""
    if not os.path.exists(path):
        write_contigs(compute_contigs(fasta), path)
    return [Contig(**item) for item in json.loads(path.read_text())]


def missing_contigs(sq_lines: Iterable[Mapping[str, Any]], contigs: Iterable[Contig]) -> list[str]:
    """The ``@SQ`` lines (as ``NAME (LN length)``) that name no contig of the reference."""
    by_md5 = {(c.md5, c.length) for c in contigs}
    by_name = {(c.name, c.length): c.md5 for c in contigs}
    missing = []
    for sq in sq_lines:
        name, length, md5 = str(sq.get("SN")), int(sq.get("LN", -1)), sq.get("M5")
        found = (str(md5).lower(), length) in by_md5 if md5 else (name, length) in by_name
        if not found:
            missing.append(f"{name} (LN {length}{f', M5 {str(md5)[:8]}...' if md5 else ''})")
    return missing
