"""What touching memory the process has not touched before costs on this machine, against memory
it already owns. Explains the cold-read numbers (README.md, "Measured").

Run from the repository root::

    .venv/bin/python benchmarks/fresh_memory.py [--gib 2] [--rounds 3]

Each round maps ``--gib`` GiB of anonymous memory, writes every page once (fresh: the kernel
allocates and zeroes each page; in a virtual machine that returns freed memory to its host, the
host must also back each page again), writes it all a second time (memory already owned), and
unmaps it. A cold read through the mount writes every byte into fresh memory up to three times
(the cache block it is received into, the kernel page cache of the mounted file, the page cache
of ``cp``'s target); a download writes it once (its target), reusing its receive buffers. The
ratio of the two columns is what each extra fresh copy costs here.
"""

from __future__ import annotations

import argparse
import ctypes
import mmap
import time
from pathlib import Path

GIB = 1 << 30
CHUNK = 64 << 20


def write_all(memory: mmap.mmap, size: int, value: int) -> float:
    """Seconds to write ``size`` bytes, 64 MiB at a time (memset: no Python per byte)."""
    base = ctypes.addressof((ctypes.c_char * size).from_buffer(memory))
    start = time.perf_counter()
    for offset in range(0, size, CHUNK):
        ctypes.memset(base + offset, value, min(CHUNK, size - offset))
    return time.perf_counter() - start


def reporting() -> str:
    """Whether the guest hands freed memory back to its host (virtio-balloon free page reporting)."""
    order = Path("/sys/module/page_reporting/parameters/page_reporting_order")
    if not order.exists():
        return "no free page reporting"
    return f"free page reporting on, blocks of order >= {order.read_text().strip()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    size = args.gib * GIB
    print(f"# Fresh against owned memory ({args.gib} GiB per round; {reporting()})\n")
    print("| round | fresh s/GiB | owned s/GiB | ratio |")
    print("|---:|---:|---:|---:|")
    for number in range(1, args.rounds + 1):
        memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        fresh = write_all(memory, size, 1) / args.gib
        owned = write_all(memory, size, 2) / args.gib
        memory.close()
        print(f"| {number} | {fresh:.3f} | {owned:.3f} | {fresh / owned:.0f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
