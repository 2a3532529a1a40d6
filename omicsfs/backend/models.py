"""Typed results of the HealthOmics calls omicsfs makes, decoupled from boto3's dicts.

Everything here is immutable and JSON-round-trippable (``to_json``/``from_json``), because the
metadata of ACTIVE read sets and references is persisted under ``--cache-dir`` so a remount makes
no metadata calls for objects it already knows.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ReadSetFile = Literal["source1", "source2", "index"]
ReferenceFile = Literal["source", "index"]
JobKind = Literal["import", "export", "activation"]

ACTIVE = "ACTIVE"
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
    """A sequence store or the reference store, from List{Sequence,Reference}Stores."""

    id: str
    arn: str
    name: str
    creation_time: float
    description: str = ""


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

    @property
    def validator(self) -> str:
        """Names one immutable version of the read set: cached bytes and metadata are keyed by it."""
        return f"{self.creation_time:.3f}:{self.etag_source1}:{self.etag_source2}"


@dataclass(frozen=True)
class FileLayout:
    """How one stored file is cut into parts: the only source of part boundaries."""

    content_length: int
    part_size: int
    total_parts: int

    def part_length(self, part_number: int) -> int:
        """Bytes in part ``part_number`` (1-based); the last part is the short one."""
        start = (part_number - 1) * self.part_size
        return max(0, min(self.part_size, self.content_length - start))


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

    @property
    def validator(self) -> str:
        return f"{self.creation_time:.3f}:{self.md5}"


@dataclass(frozen=True)
class JobSummary:
    """One item of a List*Jobs call; its detail (per-source results) is fetched on demand."""

    id: str
    store_id: str
    kind: JobKind
    status: str
    creation_time: float
    completion_time: float = 0.0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_JOB_STATES


def files_from_metadata(validator: str, status: str, raw_files: dict[str, Any]) -> ObjectFiles:
    """Picks partSize/totalParts/contentLength out of a metadata response's ``files``."""
    files = {
        name: FileLayout(
            content_length=int(info["contentLength"]),
            part_size=int(info["partSize"]),
            total_parts=int(info["totalParts"]),
        )
        for name, info in raw_files.items()
        if info and "contentLength" in info
    }
    return ObjectFiles(validator=validator, status=status, files=files)
