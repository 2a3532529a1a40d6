"""The kernel's mount table, and unmounting: what ``omicsfs unmount`` and the checks use."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FSTYPE = "fuse.omicsfs"


class UnmountError(Exception):
    """The folder cannot be unmounted; the message is the tool's own."""


@dataclass(frozen=True, slots=True)
class MountEntry:
    """One line of /proc/self/mountinfo (proc(5)): what the checks and the daemon need of it."""

    point: str
    fstype: str
    #: The mount's device, ``major:minor`` (its backing device info is /sys/class/bdi/<device>).
    device: str


_OCTAL_ESCAPE = re.compile(rb"\\([0-7]{3})")


def _unescape(field: bytes) -> str:
    """Mount points are written with space, tab, newline and backslash as octal escapes; the rest
    is the path's own bytes (UTF-8 or not), decoded as the os module decodes paths."""
    return os.fsdecode(_OCTAL_ESCAPE.sub(lambda match: bytes([int(match.group(1), 8)]), field))


def parse_mountinfo(raw: bytes) -> list[MountEntry]:
    entries = []
    for line in raw.splitlines():
        left, _, right = line.partition(b" - ")
        fields = left.split()
        if len(fields) >= 5 and right:
            entries.append(
                MountEntry(_unescape(fields[4]), os.fsdecode(right.split()[0]), fields[2].decode())
            )
    return entries


def mounts() -> list[MountEntry]:
    """The mounts this process sees. Reading the table never touches a mount (unlike stat, which
    would wait on a FUSE daemon, even on this one)."""
    try:
        return parse_mountinfo(Path("/proc/self/mountinfo").read_bytes())
    except OSError:
        return []


def mount_table() -> dict[str, str]:
    """Mount point -> filesystem type."""
    return {entry.point: entry.fstype for entry in mounts()}


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
