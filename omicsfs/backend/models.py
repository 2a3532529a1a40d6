"""Typed results of the HealthOmics calls omicsfs makes, decoupled from boto3's dicts.

Everything here is immutable and JSON-round-trippable (``to_json``/``from_json``), because the
metadata of ACTIVE read sets and references is persisted under ``--cache-dir`` so a remount makes
no metadata calls for objects it already knows. Values the service defines (statuses, file
types) stay strings in the summaries, because the service may add values a mount must still list;
the enums below name the ones omicsfs acts on, and compare equal to those strings.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class StoreKind(StrEnum):
    """The two kinds of store the mount shows; the value is the node and API vocabulary."""

    SEQUENCE = "sequence"
    REFERENCE = "reference"


class ObjectKind(StrEnum):
    """What a stored file belongs to. The values name disk-cache folders, so they never change."""

    READ_SET = "readSet"
    REFERENCE = "reference"

    @property
    def data_operation(self) -> str:
        return "GetReadSet" if self is ObjectKind.READ_SET else "GetReference"


class Status(StrEnum):
    """Read set and reference statuses omicsfs treats specially (only ACTIVE ones are readable)."""

    ACTIVE = "ACTIVE"
    ARCHIVED = "ARCHIVED"
    ACTIVATING = "ACTIVATING"
    PROCESSING_UPLOAD = "PROCESSING_UPLOAD"
    UPLOAD_FAILED = "UPLOAD_FAILED"
    DELETING = "DELETING"
    DELETED = "DELETED"


class FileType(StrEnum):
    """A read set's ``fileType`` (and an upload's ``sourceFileType``)."""

    BAM = "BAM"
    CRAM = "CRAM"
    UBAM = "UBAM"
    FASTQ = "FASTQ"

    @property
    def aligned(self) -> bool:
        """Aligned formats: they name a reference, and the service builds them an index."""
        return self in (FileType.BAM, FileType.CRAM)


class StoredFile(StrEnum):
    """Keys of a metadata response's ``files``: which stored file of an object a part belongs to."""

    SOURCE1 = "source1"
    SOURCE2 = "source2"
    INDEX = "index"
    SOURCE = "source"  # a reference's FASTA


class JobKind(StrEnum):
    IMPORT = "import"
    EXPORT = "export"
    ACTIVATION = "activation"


TERMINAL_JOB_STATES = frozenset({"COMPLETED", "COMPLETED_WITH_FAILURES", "FAILED", "CANCELLED"})


def epoch(value: Any) -> float:
    """Seconds since the epoch from botocore's datetimes (or ISO strings from the disk cache)."""
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    if isinstance(value, int | float):
        return float(value)
    return 0.0


@dataclass(frozen=True)
class StoreSummary:
    """A sequence store or a reference store, from List{Sequence,Reference}Stores."""

    id: str
    arn: str
    name: str
    creation_time: float
    description: str = ""
    #: ``s3Access.s3Uri`` (GetSequenceStore only: list items carry none): the store's prefix
    #: behind its S3 access point.
    s3_uri: str = ""


@dataclass(frozen=True)
class ReadSetSummary:
    """One ListReadSets item: everything a directory listing needs, and no file sizes."""

    id: str
    store_id: str
    arn: str
    name: str
    status: str
    file_type: str
    sample_id: str
    subject_id: str
    creation_time: float
    reference_arn: str = ""
    description: str = ""
    status_message: str = ""
    etag_algorithm: str = ""
    etag_source1: str = ""
    etag_source2: str = ""
    sequence_information: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    kind = ObjectKind.READ_SET

    @property
    def validator(self) -> str:
        """Names one immutable version of the read set: cached bytes and metadata are keyed by it."""
        return f"{self.creation_time:.3f}:{self.etag_source1}:{self.etag_source2}"


@dataclass(frozen=True)
class ReferenceSummary:
    """One ListReferences item."""

    id: str
    store_id: str
    arn: str
    name: str
    status: str
    md5: str
    creation_time: float
    description: str = ""

    kind = ObjectKind.REFERENCE

    @property
    def validator(self) -> str:
        return f"{self.creation_time:.3f}:{self.md5}"


#: A read set or a reference: what a data file of the mount belongs to.
Summary = ReadSetSummary | ReferenceSummary


@dataclass(frozen=True)
class FileLayout:
    """How one stored file is cut into parts: the only source of part boundaries."""

    content_length: int
    part_size: int
    total_parts: int
    #: ``s3Access.s3Uri`` of this file: its object behind the store's S3 access point ("" if none).
    s3_uri: str = ""

    def part_length(self, part_number: int) -> int:
        """Bytes in part ``part_number`` (1-based); the last part is the short one."""
        start = (part_number - 1) * self.part_size
        return max(0, min(self.part_size, self.content_length - start))

    def part_of(self, offset: int) -> int:
        """The 1-based part holding byte ``offset``."""
        return offset // self.part_size + 1


@dataclass(frozen=True)
class ObjectFiles:
    """The files of a read set or reference, from Get{ReadSet,Reference}Metadata."""

    validator: str
    status: str
    files: dict[str, FileLayout]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ObjectFiles:
        raw = json.loads(text)
        return cls(
            validator=raw["validator"],
            status=raw["status"],
            files={name: FileLayout(**layout) for name, layout in raw["files"].items()},
        )


@dataclass(frozen=True)
class PartSource:
    """Which stored file a part fetch reads: a read set's source1/source2/index or a reference's."""

    kind: ObjectKind
    store_id: str
    object_id: str
    file: str  # a StoredFile value, as in the metadata's ``files``

    @property
    def operation(self) -> str:
        return self.kind.data_operation

    def describe(self) -> str:
        return f"{self.kind} {self.object_id} {self.file}"


@dataclass(frozen=True)
class JobSummary:
    """One item of a List*Jobs call; its detail (per-source results) is fetched on demand."""

    id: str
    store_id: str
    kind: JobKind
    status: str
    creation_time: float

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_JOB_STATES


@dataclass(frozen=True)
class UploadSummary:
    """One ListMultipartReadSetUploads item, as far as recovery needs it."""

    upload_id: str
    name: str
    tags: dict[str, str]
