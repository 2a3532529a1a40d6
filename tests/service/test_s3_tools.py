"""Real S3 tools on the service's S3 endpoint: rclone mount and s3fs-fuse (Debian packages).

Each mounts one store's prefix read-only, as a user would mount a HealthOmics access point, and
the files it shows must be the store's files, byte for byte what GetReadSet serves. The tools run
as foreground children without the caller's AWS_* variables (rclone 1.60 refuses a plain-http
endpoint while AWS_CA_BUNDLE is set); the test waits for the mount table (polled with a
deadline), and unmounts with fusermount3 in teardown.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from omicsfs.sample.data import SampleFiles
from tests.localservice import RunningService, env_without_aws
from tests.mounting import mount_table
from tests.service.helpers import Loaded, load_store

MOUNT_DEADLINE = 60.0


class ToolMount:
    """One FUSE mount made by an S3 tool running in the foreground; ``stop`` unmounts it."""

    def __init__(self, args: list[str], mountpoint: Path, fstype: str, log: Path) -> None:
        mountpoint.mkdir(parents=True, exist_ok=True)
        self.mountpoint, self.log = mountpoint, log
        with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env_without_aws())
        deadline = time.monotonic() + MOUNT_DEADLINE
        while mount_table().get(str(mountpoint)) != fstype:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"{args[0]} did not mount {mountpoint}:\n{log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if str(self.mountpoint) in mount_table():
            subprocess.run(["fusermount3", "-u", str(self.mountpoint)], check=False, capture_output=True)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if str(self.mountpoint) in mount_table():  # the tool died without unmounting
            subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], check=False)


def rclone(service: RunningService, loaded: Loaded, mountpoint: Path, log: Path) -> ToolMount:
    """rclone's S3 backend, provider Other, path-style, on the store's prefix, read-only."""
    remote = (
        f":s3,provider=Other,endpoint='{service.s3_url}',access_key_id=testing,"
        f"secret_access_key=testing,force_path_style=true,region=us-west-2:{loaded.bucket}/{loaded.prefix}"
    )
    args = ["rclone", "mount", "--config", "/dev/null", "--read-only", remote, str(mountpoint)]
    return ToolMount(args, mountpoint, "fuse.rclone", log)


def s3fs(service: RunningService, loaded: Loaded, mountpoint: Path, log: Path) -> ToolMount:
    """s3fs-fuse on the store's prefix, path-style requests, read-only."""
    passwd = log.with_suffix(".passwd")
    passwd.write_text("testing:testing\n")
    passwd.chmod(0o600)  # s3fs refuses a password file others can read
    options = f"url={service.s3_url},use_path_request_style,passwd_file={passwd},ro,endpoint=us-west-2"
    args = ["s3fs", f"{loaded.bucket}:/{loaded.prefix.rstrip('/')}", str(mountpoint), "-f", "-o", options]
    return ToolMount(args, mountpoint, "fuse.s3fs", log)


TOOLS = {"rclone": rclone, "s3fs": s3fs}


@pytest.fixture(params=sorted(TOOLS))
def mounted(
    request: pytest.FixtureRequest, private_service: RunningService, sample: SampleFiles, tmp_path: Path
) -> Iterator[tuple[RunningService, Loaded, Path]]:
    loaded = load_store(private_service, sample, f"s3-{request.param}")
    private_service.reset_stats()
    mount = TOOLS[request.param](private_service, loaded, tmp_path / "mnt", tmp_path / f"{request.param}.log")
    try:
        yield private_service, loaded, mount.mountpoint
    finally:
        mount.stop()
        assert str(mount.mountpoint) not in mount_table()


def test_a_mounted_store_lists_its_files_and_reads_them_byte_exact(
    mounted: tuple[RunningService, Loaded, Path],
) -> None:
    service, loaded, root = mounted
    shown = {
        str(path.relative_to(root)): path for path in root.rglob("*") if path.is_file()
    }  # the tools show keys below the mounted prefix as paths
    expected = {stored.key.removeprefix(loaded.prefix): stored for stored in loaded.files.values()}
    assert set(shown) == set(expected)
    for relative, stored in expected.items():
        path = shown[relative]
        assert path.stat().st_size == len(stored.content), relative
        with open(path, "rb") as handle:
            assert hashlib.md5(handle.read()).hexdigest() == hashlib.md5(stored.content).hexdigest(), relative
    bam = expected[loaded.file("BAM/source1").key.removeprefix(loaded.prefix)]
    middle = len(bam.content) // 2
    with open(shown[loaded.file("BAM/source1").key.removeprefix(loaded.prefix)], "rb") as handle:
        handle.seek(middle)
        assert handle.read(70_000) == bam.content[middle : middle + 70_000]
    with pytest.raises(OSError) as refused:
        (root / "readSet" / "new.bam").write_bytes(b"x")
    assert refused.value.errno == errno.EROFS
    stats = service.admin("GET", "stats")
    assert stats["requests"].get("ListObjects", 0) + stats["requests"].get("ListObjectsV2", 0) > 0
    assert stats["requests"]["GetObject"] >= len(expected)
    assert stats["bytesSent"]["GetObject"] >= sum(len(f.content) for f in loaded.files.values())
    refused_or_failed = {
        op: codes for op, codes in stats["errors"].items() if set(codes) - {"NoSuchKey"}
    }  # s3fs probes for folder marker objects; those are NoSuchKey
    assert refused_or_failed == {}
    assert not [op for op in stats["requests"] if op.startswith(("Put", "Delete", "Create", "Copy"))]
    assert os.listdir(root) == ["readSet"]
