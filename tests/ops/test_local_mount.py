"""``omicsfs mount --local``: the mount owns a private service, which lives exactly as long."""

from __future__ import annotations

import gzip
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from omicsfs.daemon.mounttable import mount_table
from omicsfs.sample.data import SampleFiles
from tests.localservice import env_without_aws
from tests.mounting import omicsfs
from tests.procs import children, cmdline, pids_with, wait_gone

FASTQ = Path("sequence-stores/demo-cohort/NA12878-reads_1.fastq.gz")


def mounted(point: Path) -> bool:
    return mount_table().get(str(point)) == "fuse.omicsfs"


def service_child(daemon: int) -> int:
    (pid,) = [pid for pid in children(daemon) if "serve" in cmdline(pid)]
    return pid


def foreground(data: Path, point: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "omicsfs", "mount", "--local", str(data), str(point), "--foreground"]
    return subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)


def assert_sample_readable(mountpoint: Path, sample: SampleFiles) -> None:
    data = (mountpoint / FASTQ).read_bytes()
    assert gzip.decompress(data) == gzip.decompress(sample.fastq1.read_bytes())


@pytest.fixture
def mountpoint(tmp_path: Path) -> Iterator[Path]:
    point = tmp_path / "mnt"
    point.mkdir()
    yield point
    if mounted(point):
        subprocess.run(["fusermount3", "-u", "-z", str(point)], check=False)


def test_foreground_notifies_systemd_when_mounted_and_stops_its_service(
    local_data: Path, mountpoint: Path, sample: SampleFiles, tmp_path: Path
) -> None:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(60)
    env = {**env_without_aws(), "NOTIFY_SOCKET": str(tmp_path / "notify"), "AWS_PROFILE": "no-such"}
    daemon = foreground(local_data, mountpoint, env)
    try:
        assert notify.recv(100) == b"READY=1"
        assert mounted(mountpoint)  # READY=1 comes only once the folder is usable
        service = service_child(daemon.pid)
        assert_sample_readable(mountpoint, sample)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
        notify.close()
    assert daemon.returncode == 0, err
    assert not mounted(mountpoint)
    assert wait_gone(service)


def test_detached_mount_returns_once_mounted_and_unmount_ends_daemon_and_service(
    local_data: Path, mountpoint: Path, sample: SampleFiles
) -> None:
    result = omicsfs("mount", "--local", str(local_data), str(mountpoint), env=env_without_aws())
    assert result.returncode == 0, result.stderr
    assert mounted(mountpoint)
    (daemon,) = pids_with(str(mountpoint), "--notify-fd")
    service = service_child(daemon)
    assert_sample_readable(mountpoint, sample)
    assert omicsfs("unmount", str(mountpoint)).returncode == 0
    assert wait_gone(daemon)
    assert wait_gone(service)
    assert not mounted(mountpoint)


def test_a_dead_service_unmounts_the_mount_with_an_error(local_data: Path, mountpoint: Path) -> None:
    daemon = foreground(local_data, mountpoint, env_without_aws())
    assert daemon.stderr is not None
    for line in daemon.stderr:
        if "omicsfs is mounted at" in line:
            break
    service = service_child(daemon.pid)
    subprocess.run(["kill", "-KILL", str(service)], check=True)
    _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 1
    assert err.strip().splitlines()[-1] == "omicsfs mount: the local service exited with status -9; unmounted"
    assert not mounted(mountpoint)


def test_a_killed_daemon_takes_its_service_with_it(local_data: Path, mountpoint: Path) -> None:
    result = omicsfs("mount", "--local", str(local_data), str(mountpoint), env=env_without_aws())
    assert result.returncode == 0, result.stderr
    (daemon,) = pids_with(str(mountpoint), "--notify-fd")
    service = service_child(daemon)
    subprocess.run(["kill", "-KILL", str(daemon)], check=True)
    assert wait_gone(service)


def test_local_and_endpoint_url_are_exclusive(local_data: Path, mountpoint: Path) -> None:
    result = omicsfs("mount", "--local", str(local_data), str(mountpoint), "--endpoint-url", "http://x")
    assert result.returncode == 2
    assert result.stderr == "omicsfs mount: --local and --endpoint-url cannot be used together\n"


@pytest.mark.parametrize("foreground", [[], ["--foreground"]])
def test_a_missing_data_dir_is_one_clear_line(
    tmp_path: Path, mountpoint: Path, foreground: list[str]
) -> None:
    result = omicsfs("mount", "--local", str(tmp_path / "nope"), str(mountpoint), *foreground)
    assert result.returncode == 1
    assert result.stderr.startswith(f"omicsfs mount: local data dir {tmp_path / 'nope'} does not exist")
    assert result.stderr.count("\n") == 1
    assert not mounted(mountpoint)
