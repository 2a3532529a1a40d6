"""The errno table through the kernel, and the mount command's failures (one line, exit != 0)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from pathlib import Path

import pytest

from omicsfs.daemon.mounttable import mount_table
from omicsfs.sample.load import LoadedSample
from tests.localservice import RunningService
from tests.mounting import Mounted, aws_env, omicsfs


def _errno_of(call: object, *args: object) -> int:
    with pytest.raises(OSError) as excinfo:
        call(*args)  # type: ignore[operator]
    return excinfo.value.errno or 0


def test_every_mutation_is_erofs(store_dir: Path) -> None:
    bam = store_dir / "NA12878-aligned.bam"
    assert _errno_of(os.open, store_dir / "new.bam", os.O_WRONLY | os.O_CREAT, 0o644) == errno.EROFS
    assert _errno_of(os.open, bam, os.O_WRONLY) == errno.EROFS
    assert _errno_of(os.open, bam, os.O_RDWR) == errno.EROFS
    assert _errno_of(os.truncate, bam, 0) == errno.EROFS
    assert _errno_of(os.unlink, bam) == errno.EROFS
    assert _errno_of(os.rename, bam, store_dir / "renamed.bam") == errno.EROFS
    assert _errno_of(os.mkdir, store_dir / "folder") == errno.EROFS
    assert _errno_of(os.rmdir, store_dir / "by-id") == errno.EROFS
    assert _errno_of(os.chmod, bam, 0o644) == errno.EROFS
    assert _errno_of(os.symlink, "x", store_dir / "link") == errno.EROFS
    assert _errno_of(os.link, bam, store_dir / "hard.bam") == errno.EROFS
    assert _errno_of(os.setxattr, bam, "user.omics.name", b"x") == errno.EROFS
    assert _errno_of(os.utime, bam, (1, 1)) == errno.EROFS
    result = subprocess.run(["cp", "/etc/hostname", str(store_dir)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "Read-only file system" in result.stderr
    assert "new.bam" not in os.listdir(store_dir)


def test_missing_names_are_enoent(store_dir: Path, mnt: Mounted) -> None:
    assert _errno_of(os.stat, store_dir / "NA12878-aligned.bam.csi") == errno.ENOENT
    assert _errno_of(os.stat, mnt.path / "sequence-stores" / "no-such-store") == errno.ENOENT
    assert _errno_of(os.stat, store_dir / ".jobs" / "import" / "1234567890.json") == errno.ENOENT
    assert _errno_of(os.getxattr, store_dir / "NA12878-aligned.bam", "user.omics.nothing") == errno.ENODATA
    assert _errno_of(os.listdir, store_dir / "NA12878-aligned.bam") == errno.ENOTDIR


def test_mount_command_failures_are_one_clear_line(tmp_path: Path, loaded_service: RunningService) -> None:
    url = loaded_service.url
    cases = {
        "does not exist": (["mount", str(tmp_path / "missing"), "--endpoint-url", url], aws_env()),
    }
    empty_home = tmp_path / "home"
    empty_home.mkdir()
    no_credentials = {k: v for k, v in aws_env(HOME=str(empty_home)).items() if k not in
                      ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}  # fmt: skip
    no_credentials["AWS_EC2_METADATA_DISABLED"] = "true"
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    cases["cannot reach http://127.0.0.1:9"] = (
        ["mount", str(mountpoint), "--endpoint-url", "http://127.0.0.1:9"],
        aws_env(),
    )
    cases["no AWS credentials"] = (["mount", str(mountpoint), "--endpoint-url", url], no_credentials)
    full = tmp_path / "full"
    full.mkdir()
    (full / "file").write_text("x")
    cases["not empty"] = (["mount", str(full), "--endpoint-url", url], aws_env())
    cases["must be positive"] = (
        ["mount", str(mountpoint), "--endpoint-url", url, "--listing-ttl", "0"],
        aws_env(),
    )
    for expected, (args, env) in cases.items():
        result = omicsfs(*args, env=env)
        assert result.returncode == 1, (expected, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.startswith("omicsfs mount:")]
        assert len(lines) == 1, (expected, result.stderr)
        assert expected in lines[0], (expected, result.stderr)
        assert "Traceback" not in result.stderr
    assert str(mountpoint) not in mount_table()


def test_detached_mount_returns_when_ready_and_unmount_clears_it(
    tmp_path: Path, loaded_service: RunningService, loaded: LoadedSample
) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    log = tmp_path / "omicsfs.log"
    result = omicsfs("mount", str(mountpoint), "--endpoint-url", loaded_service.url, "--log-file", str(log))
    assert result.returncode == 0, result.stderr
    try:
        assert mount_table()[str(mountpoint)] == "fuse.omicsfs"
        assert "demo-cohort" in os.listdir(mountpoint / "sequence-stores")
        again = omicsfs("mount", str(mountpoint), "--endpoint-url", loaded_service.url)
        assert again.returncode == 1
        assert "already an omicsfs mount" in again.stderr
    finally:
        assert omicsfs("unmount", str(mountpoint)).returncode == 0
    assert str(mountpoint) not in mount_table()
    assert "omicsfs is mounted at" in log.read_text()
    assert omicsfs("unmount", str(mountpoint)).returncode == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_unmount_cleanly(
    tmp_path: Path, loaded_service: RunningService, loaded: LoadedSample, sig: int
) -> None:
    mounted = Mounted(tmp_path / "mnt", loaded_service.url)
    assert mounted.mounted
    assert mounted.stop(sig) == 0
    assert str(mounted.path) not in mount_table()
    assert os.listdir(mounted.path) == []


def test_a_dead_daemon_leaves_a_mount_point_the_next_mount_can_use(
    tmp_path: Path, loaded_service: RunningService, loaded: LoadedSample
) -> None:
    first = Mounted(tmp_path / "mnt", loaded_service.url)
    first.process.kill()
    first.process.wait()
    with pytest.raises(OSError) as excinfo:
        os.listdir(first.path)
    assert excinfo.value.errno == errno.ENOTCONN  # what users see after a daemon dies
    second = Mounted(tmp_path / "mnt", loaded_service.url)
    try:
        assert "stale omicsfs mount" in second.log
        assert "demo-cohort" in os.listdir(second.path / "sequence-stores")
    finally:
        assert second.stop() == 0


def test_allow_other_without_user_allow_other_is_explained(tmp_path: Path) -> None:
    from omicsfs.daemon.checks import user_allow_other
    from omicsfs.daemon.errors import MountError

    conf = tmp_path / "fuse.conf"
    conf.write_text("# user_allow_other\nmount_max = 1000\n")
    assert not user_allow_other(conf)
    conf.write_text("user_allow_other\n")
    assert user_allow_other(conf)
    from omicsfs.daemon.checks import check_fuse

    with pytest.raises(MountError, match="user_allow_other"):
        check_fuse(True, tmp_path / "missing.conf", uid=1000)  # as a user; root needs no line
    check_fuse(True, tmp_path / "missing.conf", uid=0)


def test_allow_other_mount_as_root(tmp_path: Path, loaded_service: RunningService) -> None:
    mounted = Mounted(tmp_path / "mnt", loaded_service.url, "--allow-other")
    try:
        options = subprocess.run(
            ["findmnt", "-no", "OPTIONS", str(mounted.path)], capture_output=True, text=True
        )
        assert "allow_other" in options.stdout
        assert "ro" in options.stdout.strip().split(",")
    finally:
        assert mounted.stop() == 0
