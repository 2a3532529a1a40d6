"""The kernel's mount table, and unmounting: what ``omicsfs unmount`` and the checks use."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

FSTYPE = "fuse.omicsfs"


class UnmountError(Exception):
    """The folder cannot be unmounted; the message is the tool's own."""


def mount_table() -> dict[str, str]:
    """Mount point -> filesystem type, from /proc/self/mountinfo."""
    table: dict[str, str] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return table
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) >= 5 and right:
            point = fields[4].encode().decode("unicode_escape")
            table[point] = right.split()[0]
    return table


def lazy_unmount(point: str) -> None:
    """Detaches a dead mount (its daemon is gone) so the folder can be mounted again."""
    for command in (["fusermount3", "-u", "-z", point], ["umount", "-l", point]):
        if shutil.which(command[0]) is None:
            continue
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode == 0 and mount_table().get(point) is None:
            return
        log.warning("%s: %s", " ".join(command[:-1]), result.stderr.strip() or "still mounted")


def unmount(point: str) -> None:
    """Unmounts cleanly; raises UnmountError with the tool's own message when it cannot."""
    if mount_table().get(os.path.abspath(point)) is None:
        raise UnmountError(f"{point} is not mounted")
    last = ""
    for command in (["fusermount3", "-u", point], ["umount", point]):
        if shutil.which(command[0]) is None:
            continue
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode == 0:
            return
        last = result.stderr.strip()
    raise UnmountError(f"cannot unmount {point}: {last or 'no fusermount3 or umount'}")
