"""The daemon gives evicted cache blocks back to the kernel (omicsfs/memory.py)."""

from __future__ import annotations

import subprocess
import sys

# Blocks made on worker threads (as part bodies are) and dropped on another thread in a shuffled
# order (as the LRU evicts them); the child prints its RSS in MiB before, at the peak and after.
_CHILD = """
import random, sys, threading
from omicsfs.daemon.memory import map_large_blocks_individually
if sys.argv[1] == "fixed":
    assert map_large_blocks_individually()
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
blocks = []
def fill():
    for _ in range(50):
        blocks.append(bytes(bytearray(b"x" * (1 << 20))))
base = rss()
threads = [threading.Thread(target=fill) for _ in range(4)]
for thread in threads: thread.start()
for thread in threads: thread.join()
peak = rss()
random.Random(1).shuffle(blocks)
del blocks[25:]
print(base, peak, rss())
"""


def _rss_after_eviction(mode: str) -> tuple[int, int, int]:
    out = subprocess.run([sys.executable, "-c", _CHILD, mode], check=True, capture_output=True, text=True)
    base, peak, after = map(int, out.stdout.split())
    return base, peak, after


def test_evicted_blocks_leave_the_process() -> None:
    base, peak, after = _rss_after_eviction("fixed")
    assert peak - base >= 190  # the 200 blocks were really resident
    assert after - base <= 25 + 20  # the 25 live blocks, and not much more


def test_without_the_fixed_threshold_glibc_keeps_them() -> None:
    """Why memory.py exists: the same pattern under glibc's defaults keeps most of the memory."""
    base, _, after = _rss_after_eviction("default")
    assert after - base >= 100
