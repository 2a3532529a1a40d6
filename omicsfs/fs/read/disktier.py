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

A shared cache dir (``--cache-dir-shared``: many mounts, on this host or on many hosts of a
cluster's NFS, EFS or Lustre; README.md, "Running on a cluster") needs nothing more for its
entries, which are immutable, keyed by object ID and version, whole or absent and verified on
read. What changes is what no mount can know alone:

- **Presence.** Another mount's entries appear at any time, so a block this mount has not seen
  is looked up on disk (one ``stat``) before it is fetched.
- **The cap, cooperatively.** No lock (NFS does not honour them reliably): each mount measures
  the whole folder by scanning it when its own estimate passes the cap, and removes only
  entries idle for longer than the grace period, oldest first, down to 90% of the cap. Every
  read refreshes its entry's mtime (at most once per quarter grace period), so an entry any
  mount is reading is never removed by another; an entry is checked again just before it is
  removed. The cap is exceeded rather than a live entry lost.
- **Debris.** Temporary files are another mount's writes in progress; only ones older than an
  hour are swept.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_TRAILER = struct.Struct(">8sQI")  # magic, length, CRC32
_MAGIC = b"omicsfs2"
#: Shared: a temporary file this old is debris of a mount that died mid-write (a live write
#: renames its file within milliseconds).
DEBRIS_AGE = 3600.0
#: Shared: an eviction scan brings the folder down to this share of the cap, so the next one
#: is not due at the next block.
LOW_WATER = 0.9
#: Shared: seconds between two eviction scans of one mount, however much it writes meanwhile.
SCAN_SPACING = 5.0


@dataclass(frozen=True)
class Entry:
    path: Path
    size: int
    mtime: float


def plan_eviction(entries: Sequence[Entry], total: int, target: int, now: float, grace: float) -> list[Entry]:
    """The entries to remove so a shared folder of ``total`` bytes comes down to ``target``:
    only entries idle (not read or written) for longer than ``grace`` seconds, oldest first.
    Fewer (or none) when the idle ones do not suffice: the cap yields, live entries stay."""
    plan = []
    for entry in sorted((e for e in entries if now - e.mtime > grace), key=lambda e: e.mtime):
        if total <= target:
            break
        plan.append(entry)
        total -= entry.size
    return plan


class DiskTier:
    def __init__(
        self, root: Path, max_bytes: int, block_size: int, *, shared_grace: float | None = None
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.block_size = block_size
        self._index: OrderedDict[Path, int] = OrderedDict()
        self.bytes = 0
        #: Shared with other mounts (module docstring): the grace period, else None.
        self.shared_grace = shared_grace
        self._lock = threading.Lock()  # shared: the eviction thread and the trio thread
        self._evicting = False
        self._evictor: threading.Thread | None = None
        #: Shared: entries committed while a scan walks the folder, which its snapshot may miss.
        self._committed_during_scan: dict[Path, int] = {}
        self._last_scan = -SCAN_SPACING
        #: Shared: entries this mount removed to keep the cap (stats.json).
        self.evicted = 0

    @property
    def shared(self) -> bool:
        return self.shared_grace is not None

    def scan(self, *, wait: bool = False) -> None:
        """Builds the index of entries, oldest first; sweeps half-written files (blocking).
        Shared: measuring the folder walks every mount's entries (on NFS, a round trip each), so
        it runs in the background unless ``wait``; the mount does not wait for it."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        if self.shared:
            if wait:
                self._evicting = True
                self._evict_shared()
            else:
                self._start_eviction()
            return
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
        if path in self._index:
            return True
        if not self.shared:
            return False
        try:  # another mount may have written it
            size = os.stat(path).st_size
        except OSError:
            return False
        with self._lock:
            if path not in self._index:
                self._index[path] = size
                self.bytes += size
        return True

    def touch(self, path: Path) -> None:
        """A read of this entry: it becomes the most recently used (shared: read_into
        refreshes its mtime, which every mount sees)."""
        if path in self._index and not self.shared:
            self._index.move_to_end(path)

    # -- on worker threads ----------------------------------------------------------------------

    def read_into(self, path: Path, memory: memoryview, length: int) -> bool:
        """Fills ``memory[:length]`` from the entry; False if it is absent, short or damaged.
        Shared: refreshes the entry's mtime, so no other mount evicts it while it is in use."""
        try:
            with open(path, "rb", buffering=0) as handle:
                info = os.fstat(handle.fileno())
                if info.st_size != length + _TRAILER.size:
                    return False
                got = handle.readinto(memory[:length])
                trailer = handle.read(_TRAILER.size)
                if self.shared_grace is not None and time.time() - info.st_mtime > self.shared_grace / 4:
                    os.utime(handle.fileno())
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
        with self._lock:
            old = self._index.pop(path, None)
            if old is not None:
                self.bytes -= old
            self._index[path] = size
            self.bytes += size
            if self._evicting:
                self._committed_during_scan[path] = size
        if not self.shared:
            self._evict()
        elif self._eviction_due():
            self._start_eviction()

    def _start_eviction(self) -> None:
        self._evicting = True
        self._evictor = threading.Thread(target=self._evict_shared, name="omicsfs-evict", daemon=True)
        self._evictor.start()

    def join_eviction(self) -> None:
        """Waits for a background scan of the shared folder to end (tests; shutdown)."""
        if self._evictor is not None:
            self._evictor.join()

    def _eviction_due(self) -> bool:
        """Shared: past the cap by this mount's estimate, no scan running, none just now."""
        spaced = time.monotonic() - self._last_scan >= SCAN_SPACING
        return self.bytes > self.max_bytes and not self._evicting and spaced

    def discard(self, path: Path) -> None:
        with self._lock:
            size = self._index.pop(path, None)
            if size is not None:
                self.bytes -= size
        path.unlink(missing_ok=True)

    def _evict(self) -> None:
        while self.bytes > self.max_bytes and self._index:
            path, size = self._index.popitem(last=False)
            self.bytes -= size
            path.unlink(missing_ok=True)


    # -- shared: the cooperative cap (on a thread of its own, or in scan) ------------------------

    def _entries(self, now: float) -> list[Entry]:
        """Every entry of the shared folder; sweeps temporary files older than DEBRIS_AGE."""
        found = []
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                path = Path(folder, name)
                try:
                    info = os.stat(path)
                except OSError:
                    continue  # removed meanwhile
                if name.endswith(".tmp"):
                    if now - info.st_mtime > DEBRIS_AGE:
                        path.unlink(missing_ok=True)
                    continue
                found.append(Entry(path, info.st_size, info.st_mtime))
        return found

    def _evict_shared(self) -> None:
        """Measures the whole shared folder and removes idle entries past the cap."""
        try:
            assert self.shared_grace is not None
            with self._lock:
                self._committed_during_scan.clear()  # on disk already: the walk finds them
            now = time.time()
            entries = self._entries(now)
            total = sum(entry.size for entry in entries)
            removed: set[Path] = set()
            mine = 0
            if total > self.max_bytes:
                target = int(self.max_bytes * LOW_WATER)
                for entry in plan_eviction(entries, total, target, now, self.shared_grace):
                    try:
                        if now - os.stat(entry.path).st_mtime <= self.shared_grace:
                            continue  # read by some mount since the scan: live
                        entry.path.unlink()
                        mine += 1
                    except FileNotFoundError:
                        pass  # another mount removed it
                    except OSError as exc:
                        log.debug("could not remove %s: %s", entry.path, exc)
                        continue
                    removed.add(entry.path)
                left = sum(e.size for e in entries if e.path not in removed)
                if mine:
                    log.info("shared disk cache %s: evicted %d idle entries; %d bytes left (cap %d)",
                             self.root, mine, left, self.max_bytes)  # fmt: skip
                if left > self.max_bytes:
                    log.info("shared disk cache %s is over its cap, but every other entry is in use"
                             " (read within %.0f s)", self.root, self.shared_grace)  # fmt: skip
            with self._lock:
                self._index = OrderedDict((e.path, e.size) for e in entries if e.path not in removed)
                self._index.update(self._committed_during_scan)  # written after the walk passed
                self._committed_during_scan.clear()
                self.bytes = sum(self._index.values())
                self.evicted += mine
            log.debug("shared disk cache %s: %d blocks, %d bytes", self.root, len(self._index), self.bytes)
        except Exception:  # a thread of its own: nothing else would report it
            log.exception("evicting from the shared disk cache %s failed", self.root)
        finally:
            self._last_scan = time.monotonic()
            self._evicting = False


def _private_folders(folder: Path) -> None:
    """``mkdir -p`` with every new level 0700: Path.mkdir gives its mode to the last one only,
    and the cache's folders name the stores and read sets it holds (README.md, ``--cache-dir``)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        made.mkdir(mode=0o700, exist_ok=True)
