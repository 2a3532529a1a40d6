"""A FileSystem on the fake backend, for tests that drive the filesystem in-process.

Small sizes make every boundary cheap to reach: 64 KiB parts of 16 KiB blocks (four blocks per
part), bodies in 16 KiB chunks, a 1 MiB memory cache.
"""

from __future__ import annotations

from dataclasses import replace

import trio

from omicsfs.backend.models import StoreKind
from omicsfs.config import CacheConfig, MountConfig, WriteConfig
from omicsfs.fs.filesystem import FileSystem
from omicsfs.fs.inodes import ROOT_INODE
from omicsfs.fs.stats import Stats
from tests.fakes.backend import FakeBackend
from tests.fakes.s3 import FakeS3

BLOCK = 16 << 10
PART = 64 << 10
UNIT_CONFIG = MountConfig(
    uid=1000, gid=1000, listing_ttl=30.0, cache=CacheConfig(memory_bytes=1 << 20, block_size=BLOCK)
)


def writable(config: MountConfig = UNIT_CONFIG, **write: object) -> MountConfig:
    return replace(config, writes=WriteConfig(enabled=True, part_size=PART, **write))  # type: ignore[arg-type]


def make_fs(
    backend: FakeBackend, nursery: trio.Nursery, config: MountConfig = UNIT_CONFIG,
    invalidated: list[tuple[int, str, int | None]] | None = None, s3: FakeS3 | None = None,
) -> FileSystem:  # fmt: skip
    sink = invalidated if invalidated is not None else []
    fs = FileSystem(config, backend, Stats(backend=backend.stats), mountpoint="/mnt/unit",
                    invalidate=lambda parent, name, ino: sink.append((parent, name, ino)), s3=s3)  # fmt: skip
    fs.tasks.attach(nursery)
    return fs


async def resolve(fs: FileSystem, path: str) -> int:
    """The inode of ``path`` (relative to the mount root), by lookups as the kernel does them."""
    ino = ROOT_INODE
    for name in [part for part in path.split("/") if part]:
        ino = (await fs.lookup(ino, name)).ino
    return ino


async def listing(fs: FileSystem, path: str) -> list[str]:
    handle = await fs.opendir(await resolve(fs, path))
    try:
        return [name for _, name, _ in fs.readdir(handle, 0)]
    finally:
        fs.releasedir(handle)


async def read_file(fs: FileSystem, path: str, chunk: int = 128 << 10) -> bytes:
    handle, _ = await fs.open(await resolve(fs, path), 0)
    try:
        out = bytearray()
        while True:
            data = await fs.read(handle, len(out), chunk)
            if not data:
                return bytes(out)
            out += data
    finally:
        fs.release(handle)


async def read_once(fs: FileSystem, path: str, offset: int, size: int) -> bytes:
    """One read on a fresh handle: a stream's first read never reads ahead."""
    handle, _ = await fs.open(await resolve(fs, path), 0)
    try:
        return bytes(await fs.read(handle, offset, size))
    finally:
        fs.release(handle)


def sequence_store(backend: FakeBackend, name: str = "cohort") -> str:
    return backend.add_store(StoreKind.SEQUENCE, name).id
