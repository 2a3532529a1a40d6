"""The mount table read from /proc/self/mountinfo, and the daemon never asking its own mount."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from omicsfs.daemon import run
from omicsfs.daemon.mounttable import MountEntry, parse_mountinfo

MOUNTINFO = (
    b"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    b"43 22 0:40 / /mnt/my\\040cohort ro,nosuid,nodev - fuse.omicsfs omicsfs ro,user_id=0\n"
    + "44 22 0:41 / /mnt/données\\011x rw - fuse.omicsfs omicsfs rw\n".encode()
    + b"45 22 0:42 / /mnt/back\\134slash rw shared:7 master:3 - tmpfs none rw\n"
)


def test_mount_points_are_unescaped_and_keep_non_ascii_names() -> None:
    assert parse_mountinfo(MOUNTINFO) == [
        MountEntry("/", "ext4", "8:1"),
        MountEntry("/mnt/my cohort", "fuse.omicsfs", "0:40"),
        MountEntry("/mnt/données\tx", "fuse.omicsfs", "0:41"),
        MountEntry("/mnt/back\\slash", "tmpfs", "0:42"),
    ]


def test_kernel_readahead_is_raised_without_a_stat_of_the_mount(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A stat of the mount point is a FUSE request to this very daemon: killed while it waits, the
    daemon could never exit (a real-tier hang). The device comes from the mount table instead."""
    point = tmp_path / "my cohort"
    written: dict[str, str] = {}

    def no_stat(*args: object, **kwargs: object) -> os.stat_result:
        raise AssertionError("the daemon statted its own mount point")

    def write_text(self: Path, text: str, *args: object, **kwargs: object) -> int:
        written[str(self)] = text
        return len(text)

    monkeypatch.setattr(run, "mounts", lambda: [MountEntry(str(point), "fuse.omicsfs", "0:40")])
    monkeypatch.setattr(os, "stat", no_stat)
    monkeypatch.setattr(os, "lstat", no_stat)
    monkeypatch.setattr(Path, "write_text", write_text)
    run._raise_readahead(str(point))
    assert written == {"/sys/class/bdi/0:40/read_ahead_kb": "1024"}
