"""A FASTA read through its ``.fai``: where each base of a contig lies, and the contig's M5.

The ``.fai`` (https://www.htslib.org/doc/faidx.html) gives each contig's length, the byte offset
of its first base, and its line layout: ``line_bases`` bases per line, ``line_width`` bytes per
line with the newline. Base ``i`` of a contig is then at byte
``offset + (i // line_bases) * line_width + i % line_bases``, which is how the by-md5 view
(fs/refview.py) turns a byte range of a contig into a byte range of the FASTA without holding
either in memory.

The M5 of a contig (SAM spec §1.3, https://samtools.github.io/hts-specs/SAMv1.pdf) is the MD5 of
its sequence with every byte outside 33-126 removed and lower case turned to upper case: exactly
the bytes htslib keeps in a ``REF_PATH``/``REF_CACHE`` file (cram/cram_io.c, ``cram_populate_ref``
writes the sequence it verified against the M5). ``FastaScan`` computes it from consecutive
chunks of the FASTA, and checks on the way that the contig really has the layout its ``.fai``
claims: only then can its bytes be located by arithmetic. htslib's faidx accepts some FASTAs
that break it (a tab inside a line is not counted as a base, yet takes a column), so this is
checked, not assumed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from enum import StrEnum

#: Lower case to upper case, every other byte unchanged.
UPPER = bytes.maketrans(b"abcdefghijklmnopqrstuvwxyz", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")
#: The bytes the SAM spec leaves out of a sequence before hashing it: newlines, spaces, controls.
NOT_SEQUENCE = bytes(c for c in range(256) if not 33 <= c <= 126)


class FaiError(ValueError):
    """The .fai cannot describe a FASTA: a line without five fields, or an impossible layout."""


@dataclass(frozen=True)
class FaiEntry:
    """One line of a ``.fai``: a contig and where its bases lie in the FASTA."""

    name: str
    length: int
    offset: int
    line_bases: int
    line_width: int

    def position(self, base: int) -> int:
        """The FASTA byte offset of base ``base`` (0-based), if the layout holds."""
        line, column = divmod(base, self.line_bases)
        return self.offset + line * self.line_width + column

    @property
    def end(self) -> int:
        """One past the FASTA byte of the last base: the layout's extent of the contig."""
        return self.position(self.length - 1) + 1 if self.length else self.offset

    def fasta_range(self, start: int, stop: int) -> tuple[int, int]:
        """The FASTA bytes [first, last) that hold bases [start, stop) of the contig, newlines
        between them included; ``stop`` must be past ``start``."""
        return self.position(start), self.position(stop - 1) + 1


def parse_fai(text: str) -> list[FaiEntry]:
    """Every contig of a ``.fai``, in file order. Raises FaiError on a line that is not five
    (or six, for FASTQ) tab-separated fields with a possible layout."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) not in (5, 6) or not all(f.isdigit() for f in fields[1:5]):
            raise FaiError(f"line {number} of the .fai is not NAME LENGTH OFFSET LINEBASES LINEWIDTH")
        entry = FaiEntry(fields[0], *(int(f) for f in fields[1:5]))
        if entry.length and not 0 < entry.line_bases < entry.line_width:
            raise FaiError(f"line {number} of the .fai gives {entry.line_bases} bases in lines of "
                           f"{entry.line_width} bytes")  # fmt: skip
        entries.append(entry)
    return entries


def to_sequence(raw: bytes) -> bytes:
    """FASTA bytes as the M5 and a REF_PATH file have them: upper case, no newlines or spaces."""
    return raw.translate(UPPER, NOT_SEQUENCE)


class Layout(StrEnum):
    """How a contig's bases lie in its FASTA, as far as the by-md5 view is concerned."""

    #: Every line but the last holds ``line_bases`` bases and then only newline bytes: the
    #: .fai locates every base, so the view can serve any range.
    EVEN = "even"
    #: The lines do not fit the .fai (a tab or space inside a line, a short line in the middle).
    #: The M5 is still right (it is taken over the bases themselves), but a base cannot be
    #: located by arithmetic, so the view refuses to serve it.
    UNEVEN = "uneven"
    #: The FASTA ends before the contig's length: no M5, not listed.
    TRUNCATED = "truncated"


@dataclass(frozen=True)
class Contig:
    """A contig with its M5 and layout: what the by-md5 view lists and the upload matching uses."""

    fai: FaiEntry
    md5: str
    layout: Layout


@dataclass(frozen=True)
class ReferenceDigests:
    """The contigs of one reference version; ``refused`` says why none could be read."""

    contigs: tuple[Contig, ...]
    refused: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ReferenceDigests:
        raw = json.loads(text)
        contigs = tuple(
            Contig(FaiEntry(**item["fai"]), str(item["md5"]), Layout(item["layout"]))
            for item in raw["contigs"]
        )
        return cls(contigs, str(raw.get("refused", "")))


class _ContigState:
    """One contig while its bytes go by."""

    def __init__(self, fai: FaiEntry) -> None:
        self.fai = fai
        self.next = fai.offset  # the next FASTA byte this contig wants
        self.hashed = 0
        self.in_span = 0  # sequence bytes seen in [offset, end)
        self.lines_fit = True
        self.md5 = hashlib.md5()

    @property
    def complete(self) -> bool:
        return self.next >= self.fai.end and self.hashed == self.fai.length

    def _hash(self, sequence: bytes) -> None:
        need = self.fai.length - self.hashed
        if need > 0:
            piece = sequence[:need]
            self.md5.update(piece)
            self.hashed += len(piece)

    def feed(self, position: int, data: bytes) -> None:
        fai = self.fai
        chunk_end = position + len(data)
        if self.next < fai.end:  # the layout's extent: checked as it is hashed
            stop = min(chunk_end, fai.end)
            raw = data[self.next - position : stop - position]
            if self.lines_fit:
                self.lines_fit = _only_newlines_between_lines(fai, self.next, raw)
            sequence = to_sequence(raw)
            self.in_span += len(sequence)
            self._hash(sequence)
            self.next = stop
        # Past the extent, only a contig whose lines did not fit still lacks bases.
        while self.next >= fai.end and self.hashed < fai.length and self.next < chunk_end:
            stop = min(chunk_end, self.next + fai.length - self.hashed)
            self._hash(to_sequence(data[self.next - position : stop - position]))
            self.next = stop

    def result(self) -> Contig:
        if self.hashed < self.fai.length:
            return Contig(self.fai, "", Layout.TRUNCATED)
        even = self.lines_fit and self.in_span == self.fai.length
        return Contig(self.fai, self.md5.hexdigest(), Layout.EVEN if even else Layout.UNEVEN)


def _only_newlines_between_lines(fai: FaiEntry, start: int, raw: bytes) -> bool:
    """Whether every byte of ``raw`` (FASTA bytes from ``start``) in a column past
    ``line_bases`` is a newline-like byte. With the count of sequence bytes in the extent equal
    to the length, this proves every base sits where the .fai says. Strided slices keep it in C."""
    relative = start - fai.offset
    for column in range(fai.line_bases, fai.line_width):
        first = (column - relative) % fai.line_width
        if raw[first :: fai.line_width].translate(None, NOT_SEQUENCE):
            return False
    return True


class FastaScan:
    """Computes the M5 and layout of every contig from consecutive chunks of its FASTA.

    ``feed`` takes the chunks in order (any sizes, from byte 0 or any point before the first
    contig); memory stays at one MD5 state per contig, whatever the genome size.
    """

    def __init__(self, entries: list[FaiEntry]) -> None:
        self._states = [_ContigState(e) for e in sorted(entries, key=lambda e: e.offset)]
        self._first_open = 0
        self._position = 0

    @property
    def done(self) -> bool:
        return self._first_open >= len(self._states)

    def feed(self, position: int, data: bytes) -> None:
        """The FASTA bytes [position, position + len(data)); called with consecutive chunks."""
        if position != self._position and self._position:
            raise ValueError(f"chunk at {position}, expected {self._position}")
        self._position = position + len(data)
        chunk_end = position + len(data)
        index = self._first_open
        while index < len(self._states) and self._states[index].fai.offset < chunk_end:
            state = self._states[index]
            if not state.complete and state.next >= position:
                state.feed(position, data)
            index += 1
        while self._first_open < len(self._states) and (
            self._states[self._first_open].complete or self._states[self._first_open].next < position
        ):
            self._first_open += 1

    def result(self) -> tuple[Contig, ...]:
        """Every contig in .fai offset order; those the FASTA ended inside are TRUNCATED."""
        return tuple(state.result() for state in self._states)
