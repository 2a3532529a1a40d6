"""The disk tier of the part cache: every fetched part is also kept on disk under ``--cache-dir``.

A second analysis of the same data, even after a remount, then fetches nothing. Files live in a
0700 folder (cached genomes are as sensitive as the store; Mountpoint keeps its cache 0700) and
are keyed by object ID and validator (creation time + etag/MD5), so a re-imported read set never
reads stale bytes. Each file is the part's bytes, a CRC32 per cache block and a trailer; a block
is checked against its CRC when read, so a corrupt or truncated file is detected, dropped and
refetched instead of served. The folder is capped in bytes; the least recently used parts go.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import zlib
from collections import OrderedDict
from pathlib import Path

import trio

log = logging.getLogger(__name__)

_TRAILER = struct.Struct(">8sQII")
_MAGIC = b"omicsfs1"


class DiskTier:
    def __init__(self, root: Path, max_bytes: int, block_size: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.block_size = block_size
        self._index: OrderedDict[Path, int] = OrderedDict()
        self.bytes = 0
        self._limiter = trio.CapacityLimiter(4)

    def scan(self) -> None:
        """Builds the index of cached parts, oldest first; sweeps half-written files."""
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
        log.info("disk cache %s: %d parts, %d bytes", self.root, len(self._index), self.bytes)

    def path(self, key: tuple[str, str, str, str], part: int) -> Path:
        kind, object_id, file, validator = key
        digest = hashlib.sha256(validator.encode()).hexdigest()[:16]
        return self.root / kind / object_id / digest / f"{file}.{part}"

    def has(self, path: Path) -> bool:
        return path in self._index

    async def read_block(self, path: Path, part_length: int, block: int) -> bytes | None:
        """Block ``block`` of a cached part, or None if absent or damaged (then it is dropped)."""
        if path not in self._index:
            return None
        self._index.move_to_end(path)
        data = await trio.to_thread.run_sync(
            self._read_block, path, part_length, block, limiter=self._limiter
        )
        if data is None:
            log.warning("disk cache file %s is damaged or truncated; refetching the part", path)
            self.discard(path)
        return data

    def _read_block(self, path: Path, part_length: int, block: int) -> bytes | None:
        blocks = -(-part_length // self.block_size)
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size != part_length + 4 * blocks + _TRAILER.size:
                    return None
                magic, length, block_size, count = _TRAILER.unpack(
                    os.pread(handle.fileno(), _TRAILER.size, size - _TRAILER.size)
                )
                if (magic, length, block_size, count) != (_MAGIC, part_length, self.block_size, blocks):
                    return None
                start = block * self.block_size
                want = min(self.block_size, part_length - start)
                data = os.pread(handle.fileno(), want, start)
                (crc,) = struct.unpack(">I", os.pread(handle.fileno(), 4, part_length + 4 * block))
        except OSError:
            return None
        if len(data) != want or zlib.crc32(data) != crc:
            return None
        return data

    def discard(self, path: Path) -> None:
        size = self._index.pop(path, None)
        if size is not None:
            self.bytes -= size
        path.unlink(missing_ok=True)

    def begin(self, path: Path) -> PartWriter:
        return PartWriter(self, path)

    def _committed(self, path: Path, size: int) -> None:
        old = self._index.pop(path, None)
        if old is not None:
            self.bytes -= old
        self._index[path] = size
        self.bytes += size
        self._evict()

    def _evict(self) -> None:
        while self.bytes > self.max_bytes and self._index:
            path, size = self._index.popitem(last=False)
            self.bytes -= size
            path.unlink(missing_ok=True)


class PartWriter:
    """Writes a part as it streams in; it becomes visible only once complete (rename)."""

    def __init__(self, tier: DiskTier, path: Path) -> None:
        self.tier = tier
        self.path = path
        self.tmp = path.with_name(path.name + f".{os.getpid()}.{id(self)}.tmp")
        self._crcs: list[int] = []
        self._length = 0
        self._handle: int | None = None
        self.failed = False

    async def write_block(self, data: bytes) -> None:
        if self.failed:
            return
        try:
            await trio.to_thread.run_sync(self._write, data, limiter=self.tier._limiter)
        except OSError as exc:
            log.warning("disk cache write to %s failed (%s); part kept in memory only", self.tmp, exc)
            self.abort()

    def _write(self, data: bytes) -> None:
        if self._handle is None:
            _private_folders(self.tmp.parent)
            self._handle = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(self._handle, data)
        self._crcs.append(zlib.crc32(data))
        self._length += len(data)

    async def commit(self) -> None:
        if self.failed or self._handle is None:
            return
        try:
            size = await trio.to_thread.run_sync(self._finish, limiter=self.tier._limiter)
        except OSError as exc:
            log.warning("disk cache commit of %s failed (%s)", self.path, exc)
            self.abort()
            return
        self.tier._committed(self.path, size)

    def _finish(self) -> int:
        assert self._handle is not None
        tail = b"".join(struct.pack(">I", crc) for crc in self._crcs)
        tail += _TRAILER.pack(_MAGIC, self._length, self.tier.block_size, len(self._crcs))
        os.write(self._handle, tail)
        os.close(self._handle)
        self._handle = None
        os.replace(self.tmp, self.path)
        return self._length + len(tail)

    def abort(self) -> None:
        self.failed = True
        if self._handle is not None:
            os.close(self._handle)
            self._handle = None
        self.tmp.unlink(missing_ok=True)


def _private_folders(folder: Path) -> None:
    """``mkdir -p`` with every new level 0700: Path.mkdir gives its mode to the last one only,
    and the cache's folders name the stores and read sets it holds (README.md, ``--cache-dir``)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        made.mkdir(mode=0o700, exist_ok=True)
