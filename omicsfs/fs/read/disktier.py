"""The disk tier of the block cache: every fetched block is also kept on disk under ``--cache-dir``.

A second analysis of the same data, even after a remount, then fetches nothing. Entries live in a
0700 folder (cached genomes are as sensitive as the store; Mountpoint keeps its cache 0700) and
are keyed by object ID and validator (creation time + etag/MD5), so a re-imported read set never
reads stale bytes. One entry per cache block: the block's bytes and a trailer with its length and
CRC32, written to a temporary name and renamed, so an entry is either whole or absent, and
checked when read, so a corrupt or truncated entry is detected, dropped and fetched again
instead of served. The folder is capped in bytes; the least recently used entries go.

Reads and writes of entries run on worker threads (the block cache's receive threads write
each block as it arrives); the index of entries is kept on the trio thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import zlib
from collections import OrderedDict
from pathlib import Path

log = logging.getLogger(__name__)

_TRAILER = struct.Struct(">8sQI")  # magic, length, CRC32
_MAGIC = b"omicsfs2"


class DiskTier:
    def __init__(self, root: Path, max_bytes: int, block_size: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.block_size = block_size
        self._index: OrderedDict[Path, int] = OrderedDict()
        self.bytes = 0

    def scan(self) -> None:
        """Builds the index of entries, oldest first; sweeps half-written files (blocking)."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        found: list[tuple[float, Path, int]] = []
        for path in self.root.rglob("*"):
            if not path.is_file():
                continue
            if path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
                continue
            stat = path.stat()
            found.append((stat.st_mtime, path, stat.st_size))
        for _, path, size in sorted(found):
            self._index[path] = size
            self.bytes += size
        self._evict()
        log.info("disk cache %s: %d blocks, %d bytes", self.root, len(self._index), self.bytes)

    def path(self, key: tuple[str, str, str, str], block_size: int, block: int) -> Path:
        """The entry of block ``block`` of a file cut into ``block_size`` blocks (the grid is
        part of the name: a different grid never reads a block of another)."""
        kind, object_id, file, validator = key
        digest = hashlib.sha256(validator.encode()).hexdigest()[:16]
        return self.root / kind / object_id / digest / f"{file}.{block_size}.{block}"

    def has(self, path: Path) -> bool:
        return path in self._index

    def touch(self, path: Path) -> None:
        """A read of this entry: it becomes the most recently used."""
        if path in self._index:
            self._index.move_to_end(path)

    # -- on worker threads ----------------------------------------------------------------------

    @staticmethod
    def read_into(path: Path, memory: memoryview, length: int) -> bool:
        """Fills ``memory[:length]`` from the entry; False if it is absent, short or damaged."""
        try:
            with open(path, "rb", buffering=0) as handle:
                if os.fstat(handle.fileno()).st_size != length + _TRAILER.size:
                    return False
                got = handle.readinto(memory[:length])
                trailer = handle.read(_TRAILER.size)
        except OSError:
            return False
        if got != length or len(trailer) != _TRAILER.size:
            return False
        magic, stored_length, crc = _TRAILER.unpack(trailer)
        return bool(magic == _MAGIC and stored_length == length and zlib.crc32(memory[:length]) == crc)

    @staticmethod
    def write(path: Path, data: memoryview) -> int:
        """Writes one entry (temporary name, then rename); returns its size on disk."""
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{id(data)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except FileNotFoundError:
            _private_folders(path.parent)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            trailer = _TRAILER.pack(_MAGIC, len(data), zlib.crc32(data))
            written = os.writev(fd, [data, trailer])
            if written != len(data) + len(trailer):
                raise OSError(f"short write to {tmp}")
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, path)
        return len(data) + _TRAILER.size

    # -- on the trio thread ---------------------------------------------------------------------

    def committed(self, path: Path, size: int) -> None:
        old = self._index.pop(path, None)
        if old is not None:
            self.bytes -= old
        self._index[path] = size
        self.bytes += size
        self._evict()

    def discard(self, path: Path) -> None:
        size = self._index.pop(path, None)
        if size is not None:
            self.bytes -= size
        path.unlink(missing_ok=True)

    def _evict(self) -> None:
        while self.bytes > self.max_bytes and self._index:
            path, size = self._index.popitem(last=False)
            self.bytes -= size
            path.unlink(missing_ok=True)


def _private_folders(folder: Path) -> None:
    """``mkdir -p`` with every new level 0700: Path.mkdir gives its mode to the last one only,
    and the cache's folders name the stores and read sets it holds (README.md, ``--cache-dir``)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        made.mkdir(mode=0o700, exist_ok=True)
