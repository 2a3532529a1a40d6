"""Writing through the filesystem facade in-process, as the kernel's requests do it."""

from __future__ import annotations

import gzip

from omicsfs.fs.filesystem import FileSystem
from tests.fakes.harness import PART, resolve

#: A gzipped FASTQ of a little over three 64 KiB parts (records of random-looking bases).
FASTQ_GZ = gzip.compress(
    b"".join(f"@r{i}\n{'ACGT'[i % 4] * 30}{i:08d}\n+\n{'I' * 38}\n".encode() for i in range(12000)),
    compresslevel=0,
)
assert len(FASTQ_GZ) > 3 * PART


async def create(fs: FileSystem, folder: str, name: str) -> int:
    handle, _ = await fs.create(await resolve(fs, folder), name)
    return handle


async def write_all(fs: FileSystem, handle: int, data: bytes, chunk: int = 32 << 10, start: int = 0) -> None:
    for offset in range(0, len(data), chunk):
        await fs.write(handle, start + offset, data[offset : offset + chunk])


async def copy_in(fs: FileSystem, folder: str, name: str, data: bytes = FASTQ_GZ) -> int:
    """``cp``: create, write everything, close (flush then release); returns the file's inode."""
    handle = await create(fs, folder, name)
    ino = fs.handles.get(handle).ino
    await write_all(fs, handle, data)
    try:
        await fs.flush(handle)
    finally:
        fs.release(handle)
    return ino
