"""What a new file is: its type from its name, confirmed and described by its first bytes.

The name decides the read set type (``.bam``, ``.cram``, ``.fastq[.gz]``/``.fq[.gz]``, with
``_1``/``_2``/``_R1``/``_R2`` mates for FASTQ). The first bytes must agree (BGZF with the BAM magic,
the CRAM magic, gzip, or a FASTQ ``@``), and for BAM and CRAM the header gives the metadata the
upload needs before it can be created: the @SQ set with any M5 tags (to find the reference,
write/references.py) and the first @RG SM (the sample). Checking this on the first writes is
Mountpoint's tenet "fail early and explicitly" (README.md, "Tenets"): a wrong file fails at its
first write, not after a 10 GB copy.
"""

from __future__ import annotations

import bz2
import lzma
import re
import struct
import zlib
from dataclasses import dataclass

from omicsfs.backend.models import FileType

BAM_MAGIC = b"BAM\x01"
CRAM_MAGIC = b"CRAM"
GZIP_MAGIC = b"\x1f\x8b"

_FASTQ_NAME = re.compile(
    r"^(?P<base>.+?)(?:_(?P<mate>R?[12]))?\.(?P<ext>fastq|fq)(?P<gz>\.gz)?$", re.IGNORECASE
)
_ALIGNED_NAME = re.compile(r"^(?P<base>.+)\.(?P<ext>bam|cram)$", re.IGNORECASE)


class FormatMismatch(ValueError):
    """The bytes are not what the file name says; the message says what was found."""


@dataclass(frozen=True)
class WriteName:
    """What a created file name asks for."""

    read_set_name: str  # the name without extension and mate suffix
    file_type: FileType  # BAM, CRAM or FASTQ (a BAM becomes UBAM once its header shows no @SQ)
    compress: bool  # plain FASTQ: gzipped on the fly, the store keeps FASTQ gzip-only
    mate: int | None  # 1 or 2 for paired FASTQ mates


def parse_name(name: str) -> WriteName | None:
    """The upload a file name asks for, or None if the name is not a writable read set file."""
    fastq = _FASTQ_NAME.match(name)
    if fastq:
        mate = fastq.group("mate")
        return WriteName(
            read_set_name=fastq.group("base"),
            file_type=FileType.FASTQ,
            compress=fastq.group("gz") is None,
            mate=int(mate[-1]) if mate else None,
        )
    aligned = _ALIGNED_NAME.match(name)
    if aligned:
        return WriteName(aligned.group("base"), FileType(aligned.group("ext").upper()), False, None)
    return None


@dataclass(frozen=True)
class SqLine:
    """One @SQ line: the contig's name and length, and its M5 (lower case) where one is given."""

    name: str
    length: int
    m5: str | None = None


@dataclass(frozen=True)
class Header:
    """What the first bytes say: the confirmed type and the metadata the upload takes from them."""

    file_type: FileType
    references: tuple[SqLine, ...] = ()  # @SQ lines, in header order
    sample: str | None = None  # SM of the first @RG line


def inspect(file_type: FileType, head: bytes, complete: bool) -> Header | None:
    """Reads the header from the stored bytes written so far.

    Returns None while more bytes are needed; raises FormatMismatch as soon as the bytes seen
    contradict ``file_type``. ``complete`` says the file has no more bytes (a short file).
    """
    if file_type is FileType.FASTQ:
        return _inspect_fastq(head, complete)
    if file_type is FileType.BAM:
        return _inspect_bam(head, complete)
    if file_type is FileType.CRAM:
        return _inspect_cram(head, complete)
    raise FormatMismatch(f"unsupported file type {file_type}")


def _describe(head: bytes) -> str:
    if head.startswith(CRAM_MAGIC):
        return "CRAM"
    if head.startswith(GZIP_MAGIC):
        return "gzip/BGZF data"
    if head.startswith(b"@"):
        return "plain text starting with '@' (FASTQ or SAM)"
    if head.startswith(b">"):
        return "FASTA text"
    return f"bytes {head[:8].hex()}"


def _inspect_fastq(head: bytes, complete: bool) -> Header | None:
    """``head`` is gzip (what is stored: .fastq.gz as written, .fastq after compression)."""
    if len(head) < 2:
        return None if not complete else _mismatch("FASTQ", head)
    if not head.startswith(GZIP_MAGIC):
        _mismatch("gzip-compressed FASTQ", head)
    text = _gunzip_prefix(head, 1)
    if text is None:
        if complete:
            raise FormatMismatch("the gzip stream is damaged")
        return None
    if not text:
        return None if not complete else _mismatch("FASTQ", head)
    if not text.startswith(b"@"):
        raise FormatMismatch(f"expected FASTQ records starting with '@', found {text[:8]!r}")
    return Header(FileType.FASTQ)


def _mismatch(expected: str, head: bytes) -> Header:
    raise FormatMismatch(f"expected {expected}, found {_describe(head) if head else 'no data'}")


def _gunzip_prefix(data: bytes, wanted: int) -> bytes | None:
    """Up to ``wanted`` decompressed bytes from the start of a (multi-member) gzip stream; None if
    the stream is damaged. Short input gives what it can."""
    out = bytearray()
    rest = data
    try:
        while rest and len(out) < wanted:
            member = zlib.decompressobj(31)
            out += member.decompress(rest, wanted - len(out))
            if not member.eof:
                break
            rest = member.unused_data
    except zlib.error:
        return None
    return bytes(out)


def _inspect_bam(head: bytes, complete: bool) -> Header | None:
    if len(head) < 18:
        return None if not complete else _mismatch("BAM (BGZF)", head)
    if not (head.startswith(GZIP_MAGIC) and head[3] & 4 and head[12:14] == b"BC"):
        _mismatch("BAM (BGZF with the BAM magic)", head)
    text = _gunzip_prefix(head, 1 << 30)
    if text is None:
        raise FormatMismatch("the BGZF stream is damaged")
    if len(text) >= 4 and text[:4] != BAM_MAGIC:
        raise FormatMismatch(f"BGZF data without the BAM magic (found {text[:4]!r}): not a BAM file")
    parsed = _parse_bam_header(text)
    if parsed is None and complete:
        raise FormatMismatch("the file ends inside its BAM header")
    return parsed


def _parse_bam_header(data: bytes) -> Header | None:
    if len(data) < 8:
        return None
    (text_length,) = struct.unpack_from("<i", data, 4)
    offset = 8 + text_length
    if len(data) < offset + 4:
        return None
    text = data[8:offset].decode("utf-8", "replace")
    (count,) = struct.unpack_from("<i", data, offset)
    offset += 4
    # The binary list is what BAM records index into; the M5 tags are only in the text.
    text_lines = _sq_lines(text)
    m5s = {line.name: line.m5 for line in text_lines}
    references: list[SqLine] = []
    for _ in range(count):
        if len(data) < offset + 4:
            return None
        (name_length,) = struct.unpack_from("<i", data, offset)
        end = offset + 4 + name_length + 4
        if len(data) < end:
            return None
        name = data[offset + 4 : offset + 4 + name_length].rstrip(b"\0").decode("utf-8", "replace")
        (length,) = struct.unpack_from("<i", data, end - 4)
        references.append(SqLine(name, length, m5s.get(name)))
        offset = end
    if not references:
        references = text_lines
    return Header(FileType.BAM if references else FileType.UBAM, tuple(references), _first_sample(text))


def _inspect_cram(head: bytes, complete: bool) -> Header | None:
    if len(head) < 4:
        return None if not complete else _mismatch("CRAM", head)
    if not head.startswith(CRAM_MAGIC):
        _mismatch("CRAM", head)
    try:
        text = _cram_header_text(head)
    except _Short:
        if complete:
            raise FormatMismatch("the file ends inside its CRAM header") from None
        return None
    references = tuple(_sq_lines(text))
    return Header(FileType.CRAM, references, _first_sample(text))


class _Short(Exception):
    """More bytes are needed."""


class _Reader:
    def __init__(self, data: bytes, offset: int) -> None:
        self.data = data
        self.offset = offset

    def take(self, count: int) -> bytes:
        if self.offset + count > len(self.data):
            raise _Short
        chunk = self.data[self.offset : self.offset + count]
        self.offset += count
        return chunk

    def itf8(self) -> int:
        """CRAM's 1-5 byte integer: leading 1 bits count the extra bytes; the fifth byte gives
        only its low 4 bits."""
        first = self.take(1)[0]
        extra = 0
        while extra < 4 and first & (0x80 >> extra):
            extra += 1
        rest = self.take(extra)
        if extra == 4:
            return (
                ((first & 0x0F) << 28) | (rest[0] << 20) | (rest[1] << 12) | (rest[2] << 4) | (rest[3] & 0x0F)
            )
        value = first & (0xFF >> (extra + 1))
        for byte in rest:
            value = (value << 8) | byte
        return value

    def ltf8(self) -> int:
        first = self.take(1)[0]
        extra = 0
        mask = 0x80
        while extra < 8 and first & mask:
            extra += 1
            mask >>= 1
        value = first & (0xFF >> (extra + 1)) if extra < 7 else 0
        for byte in self.take(extra):
            value = (value << 8) | byte
        return value


def _cram_header_text(data: bytes) -> str:
    """The SAM header text of a CRAM file: file definition, then the first container's first
    block (CRAM 2.1/3.x specification §6-8)."""
    reader = _Reader(data, 0)
    reader.take(4)
    major = reader.take(2)[0]
    reader.take(20)  # file id
    reader.take(4)  # container length
    for _ in range(4):  # reference id, start, span, record count
        reader.itf8()
    if major >= 3:
        reader.ltf8()
        reader.ltf8()
    else:
        reader.itf8()
        reader.itf8()
    reader.itf8()  # block count
    for _ in range(reader.itf8()):  # landmarks
        reader.itf8()
    if major >= 3:
        reader.take(4)  # CRC32
    method = reader.take(1)[0]
    reader.take(1)  # content type
    reader.itf8()  # content id
    compressed = reader.itf8()
    raw_size = reader.itf8()
    payload = reader.take(compressed)
    if method == 1:
        payload = zlib.decompress(payload, 31)
    elif method == 2:
        payload = bz2.decompress(payload)
    elif method == 3:
        payload = lzma.decompress(payload)
    elif method != 0:
        raise FormatMismatch(f"the CRAM header block uses compression method {method}, unsupported")
    if len(payload) < 4 or len(payload) != raw_size:
        raise FormatMismatch("the CRAM header block is damaged")
    (length,) = struct.unpack_from("<i", payload, 0)
    return payload[4 : 4 + length].decode("utf-8", "replace")


def _fields(line: str) -> dict[str, str]:
    return dict(item.split(":", 1) for item in line.split("\t")[1:] if ":" in item)


def _sq_lines(text: str) -> list[SqLine]:
    found = []
    for line in text.splitlines():
        if line.startswith("@SQ\t"):
            tags = _fields(line)
            if "SN" in tags and tags.get("LN", "").isdigit():
                m5 = tags.get("M5", "").strip().lower()
                found.append(SqLine(tags["SN"], int(tags["LN"]), m5 or None))
    return found


def _first_sample(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith("@RG\t"):
            sample = _fields(line).get("SM")
            if sample:
                return sample
    return None
