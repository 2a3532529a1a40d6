"""Where the bytes live: read-set and reference files, upload parts, and the fake S3 root.

Layout under the data dir::

    blobs/readSet/<id>/{source1,source2,index}
    blobs/reference/<id>/{source,index}
    uploads/<uploadId>/<SOURCE1|SOURCE2>/<partNumber>

Every file is written to a ``.tmp`` sibling, fsynced and renamed into place, so a process killed
mid-write leaves either the old file or nothing, never a torn one; ``sweep_orphans`` removes the
leftovers the database does not know about at start-up.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from omicsfs.localservice.errors import ValidationException

log = logging.getLogger(__name__)

COPY_CHUNK = 4 * 1024 * 1024


class Blobs:
    """File-system side of the service's state."""

    def __init__(self, data_dir: Path, s3_root: Path) -> None:
        self.root = data_dir / "blobs"
        self.uploads = data_dir / "uploads"
        self.s3_root = s3_root
        for folder in (self.root, self.uploads, self.s3_root):
            folder.mkdir(parents=True, exist_ok=True)

    # -- resource files ----------------------------------------------------------------------

    def folder(self, kind: str, ident: str) -> Path:
        return self.root / kind / ident

    def file(self, kind: str, ident: str, name: str) -> Path:
        return self.root / kind / ident / name

    def remove(self, kind: str, ident: str) -> None:
        shutil.rmtree(self.folder(kind, ident), ignore_errors=True)

    # -- upload parts ------------------------------------------------------------------------

    def part_path(self, upload_id: str, source: str, number: int) -> Path:
        return self.uploads / upload_id / source / str(number)

    def remove_upload(self, upload_id: str) -> None:
        shutil.rmtree(self.uploads / upload_id, ignore_errors=True)

    # -- the fake S3 -------------------------------------------------------------------------

    def s3_path(self, uri: str) -> Path:
        """Maps ``s3://bucket/key`` to ``S3ROOT/bucket/key``, refusing anything that escapes."""
        if not uri.startswith("s3://"):
            raise ValidationException(f"Not an s3:// URI: {uri}")
        rest = uri[len("s3://") :]
        parts = [p for p in rest.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise ValidationException(f"S3 URI must not contain '.' or '..' segments: {uri}")
        if "\0" in rest:  # the model allows any character; no file name holds NUL
            raise ValidationException("S3 URI must not contain NUL characters")
        path = self.s3_root.joinpath(*parts)
        root = self.s3_root.resolve()
        try:
            resolved = path.resolve()
        except OSError as exc:  # a symlink loop, say
            raise ValidationException(f"S3 URI cannot be resolved: {exc.strerror}") from None
        if resolved != root and root not in resolved.parents:
            raise ValidationException(f"S3 URI resolves outside the S3 root: {uri}")
        return path

    def bucket_exists(self, uri: str) -> bool:
        """Whether the bucket of ``s3://bucket/...`` is a folder of the S3 root. A bucket is what
        must exist in S3 (writes into a missing one fail with NoSuchBucket); key prefixes
        ("folders") need not, so only the top level is checked and the rest is created."""
        first = self.s3_path(uri).relative_to(self.s3_root).parts[:1]
        return bool(first) and (self.s3_root / first[0]).is_dir()

    # -- start-up ----------------------------------------------------------------------------

    def sweep_orphans(self, known: Mapping[str, Iterable[str]], live_uploads: Iterable[str]) -> None:
        """Deletes blob folders and upload folders that no database row owns (a crash's debris)."""
        for kind, ids in known.items():
            wanted = set(ids)
            folder = self.root / kind
            if folder.is_dir():
                for child in folder.iterdir():
                    if child.name not in wanted:
                        log.info("removing orphaned %s files %s", kind, child.name)
                        shutil.rmtree(child, ignore_errors=True)
        live = set(live_uploads)
        for child in self.uploads.iterdir():
            if child.name not in live:
                shutil.rmtree(child, ignore_errors=True)
        for tmp in list(self.root.rglob("*.tmp")) + list(self.uploads.rglob("*.tmp")):
            tmp.unlink(missing_ok=True)


def tmp_sibling(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def commit_file(tmp: Path, final: Path) -> None:
    """fsyncs ``tmp`` and renames it over ``final``: the file appears whole or not at all."""
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)


def concatenate(parts: Iterable[Path], destination: Path) -> int:
    """Joins upload parts into one file (atomically); returns its size."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(destination)
    size = 0
    with open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                size += _copy(src.fileno(), out.fileno())
    commit_file(tmp, destination)
    return size


def copy_file(source: Path, destination: Path) -> int:
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(destination)
    with open(source, "rb") as src, open(tmp, "wb") as out:
        size = _copy(src.fileno(), out.fileno())
    commit_file(tmp, destination)
    return size


def _copy(src: int, dst: int) -> int:
    total = 0
    while True:
        # copy_file_range / sendfile keep big files out of Python memory entirely.
        try:
            n = os.copy_file_range(src, dst, COPY_CHUNK)
        except OSError:
            chunk = os.read(src, COPY_CHUNK)
            n = len(chunk)
            if n:
                os.write(dst, chunk)
        if n == 0:
            return total
        total += n


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file, streamed."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()
