"""``mount -t fuse.omicsfs`` through the installed helper, and ``umount``, as root."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from omicsfs.daemon.mounttable import mount_table
from omicsfs.sample.load import LoadedSample
from tests.localservice import RunningService
from tests.mount.expected import read_set_bytes
from tests.mounthelper import helper_installed
from tests.mounting import aws_env
from tests.procs import pids_with, wait_gone


def mount_options(point: Path) -> set[str]:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(point):
            return set(fields[5].split(","))
    raise AssertionError(f"{point} is not mounted")


def test_mount_t_fuse_omicsfs_mounts_and_umount_ends_the_daemon(
    loaded_service: RunningService, loaded: LoadedSample, omics: Any, tmp_path: Path
) -> None:
    point = tmp_path / "mnt"
    point.mkdir()
    options = f"endpoint_url={loaded_service.url},ro,nosuid,nodev,_netdev,nofail,x-systemd.automount"
    with helper_installed():
        result = subprocess.run(
            ["mount", "-t", "fuse.omicsfs", "-o", options, "omicsfs", str(point)],
            capture_output=True, text=True, env=aws_env(), cwd=tmp_path, timeout=120,
        )  # fmt: skip
    try:
        assert result.returncode == 0, result.stderr
        assert mount_table()[str(point)] == "fuse.omicsfs"
        assert {"ro", "nosuid", "nodev"} <= mount_options(point)
        (daemon,) = pids_with(str(point), "--notify-fd")
        name = "NA12878-aligned.bam"
        assert (point / "sequence-stores/demo-cohort" / name).read_bytes() == read_set_bytes(
            omics, loaded, name
        )
        assert subprocess.run(["umount", str(point)], capture_output=True).returncode == 0
        assert str(point) not in mount_table()
        assert wait_gone(daemon)
    finally:
        if str(point) in mount_table():
            subprocess.run(["fusermount3", "-u", "-z", str(point)], check=False)


def test_mount_t_with_an_unknown_option_fails_with_one_line(tmp_path: Path) -> None:
    point = tmp_path / "mnt"
    point.mkdir()
    with helper_installed():
        result = subprocess.run(
            ["mount", "-t", "fuse.omicsfs", "-o", "ro,colour=blue", "omicsfs", str(point)],
            capture_output=True, text=True, env=aws_env(), cwd=tmp_path, timeout=120,
        )  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.splitlines()[0] == (
        "mount.fuse.omicsfs: unknown option 'colour=blue' (see 'fstab' in omicsfs's README)"
    )
    assert str(point) not in mount_table()
