"""Test helpers: find and wait for processes the tests did not start directly (a detached mount
daemon, the service child it owns), through /proc and pidfds; never by sleeping."""

from __future__ import annotations

import contextlib
import os
import select
from pathlib import Path


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def pids_with(*needles: str) -> list[int]:
    """Processes whose command line has every needle as one of its arguments."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and all(needle in cmdline(int(entry)) for needle in needles):
            found.append(int(entry))
    return found


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry))
    return found


def wait_gone(pid: int, timeout: float = 60) -> bool:
    """True once the process has exited (a pidfd becomes readable then), False on timeout."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(fd)
