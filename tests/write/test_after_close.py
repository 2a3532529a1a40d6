"""After ``close()`` returns 0 the read set is there: stat, ls, ls -l, xattrs, EACCES until ACTIVE;
copy tools' after-close steps (cp -p, cp -a, rsync --inplace, rclone copy) succeed; uploads that
fail in processing are listed with their reason (issue 13, findings 1 and 2)."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omicsfs.sample.data import SampleFiles
from omicsfs.sample.load import LoadedSample
from tests.localservice import RunningService
from tests.mounting import Mounted, omicsfs
from tests.write.conftest import open_uploads, read_sets_named

#: Long enough that every check right after cp sees the read set still processing.
PROCESSING_SECONDS = 5.0


def md5(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "md5").hexdigest()


def xattr(path: Path, name: str) -> str:
    return os.getxattr(path, f"user.omics.{name}").decode()


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningService, str]]:
    """A service that takes PROCESSING_SECONDS to process an upload, with one empty store."""
    running = RunningService(tmp_path_factory.mktemp("slow"), processing_delay=PROCESSING_SECONDS)
    store_id = str(running.client().create_sequence_store(name="uploads")["id"])
    yield running, store_id
    running.stop()


@pytest.fixture(scope="module")
def slow_mount(
    tmp_path_factory: pytest.TempPathFactory, slow: tuple[RunningService, str]
) -> Iterator[Mounted]:
    # A listing TTL far longer than the test: nothing here may depend on the store being listed again.
    mounted = Mounted(tmp_path_factory.mktemp("slow-rw"), slow[0].url, "--read-write", "--part-size", "64K",
                      "--listing-ttl", "3600")  # fmt: skip
    yield mounted
    assert mounted.stop() == 0


def test_a_copied_file_is_there_the_moment_cp_returns(
    slow: tuple[RunningService, str], slow_mount: Mounted, sample: SampleFiles
) -> None:
    service, store_id = slow
    folder = slow_mount.path / "sequence-stores" / "uploads"
    os.listdir(folder)  # the store's listing is cached from here on (for an hour)
    target = folder / "seen.fastq.gz"
    subprocess.run(["cp", str(sample.fastq1), str(target)], check=True)
    assert os.stat(target).st_size == sample.fastq1.stat().st_size  # the bytes written
    assert "seen.fastq.gz" in os.listdir(folder)
    listed = subprocess.run(["ls", "-l", str(folder)], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert any(line.endswith(" seen.fastq.gz") and f" {sample.fastq1.stat().st_size} " in line
               for line in listed.stdout.splitlines())  # fmt: skip
    assert xattr(target, "status") == "PROCESSING_UPLOAD"
    assert xattr(target, "name") == "seen"
    with pytest.raises(PermissionError):
        target.read_bytes()  # EACCES until ACTIVE, with one log line saying why
    slow_mount.wait_for_log("the service is still processing the upload")
    linked = folder / "by-sample" / "seen" / "seen.fastq.gz"
    assert os.stat(linked).st_size == sample.fastq1.stat().st_size  # the group link resolves

    service.drain()  # processing ends: ACTIVE
    assert md5(target) == md5(sample.fastq1)
    assert xattr(target, "status") == "ACTIVE"
    assert len(read_sets_named(service.client(), store_id, "seen")) == 1


def _parts(service: RunningService, store_id: str, read_set_id: str, total: int) -> list[bytes]:
    client = service.client()
    return [
        client.get_read_set(sequenceStoreId=store_id, id=read_set_id, partNumber=n)["payload"].read()
        for n in range(1, total + 1)
    ]


def test_a_bam_shows_the_services_size_once_active_and_reads_whole(
    slow: tuple[RunningService, str], slow_mount: Mounted, sample: SampleFiles
) -> None:
    service, store_id = slow
    target = slow_mount.path / "sequence-stores" / "uploads" / "grows.bam"
    subprocess.run(["cp", str(sample.ubam), str(target)], check=True)
    assert os.stat(target).st_size == sample.ubam.stat().st_size  # written, while processing
    service.drain()
    found = read_sets_named(service.client(), store_id, "grows")
    meta = service.client().get_read_set_metadata(sequenceStoreId=store_id, id=found[0]["id"])
    stored = meta["files"]["source1"]["contentLength"]
    # Opening asks the service (ACTIVE now) and the kernel drops the size it had: samtools reads
    # every byte of the service's copy, not up to the size written.
    count = subprocess.run(
        ["samtools", "view", "-c", str(target)], capture_output=True, text=True, check=True
    )
    expected = subprocess.run(["samtools", "view", "-c", str(sample.ubam)], capture_output=True, text=True)
    assert count.stdout == expected.stdout
    assert os.stat(target).st_size == stored
    assert (
        hashlib.md5(target.read_bytes()).hexdigest()
        == hashlib.md5(
            b"".join(_parts(service, store_id, found[0]["id"], meta["files"]["source1"]["totalParts"]))
        ).hexdigest()
    )


@pytest.mark.parametrize("tool", ["cp -p", "cp -a", "rsync --inplace", "rclone copy"])
def test_copy_tools_that_set_times_after_close_exit_0_with_one_correct_read_set(
    tool: str, slow: tuple[RunningService, str], slow_mount: Mounted, sample: SampleFiles, tmp_path: Path
) -> None:
    service, store_id = slow
    folder = slow_mount.path / "sequence-stores" / "uploads"
    name = tool.replace(" ", "").replace("-", "") + ".fastq.gz"
    source = tmp_path / name
    source.write_bytes(sample.fastq1.read_bytes())
    commands = {
        "cp -p": ["cp", "-p", str(source), str(folder / name)],
        "cp -a": ["cp", "-a", str(source), str(folder / name)],
        "rsync --inplace": ["rsync", "--inplace", "-t", str(source), str(folder) + "/"],
        "rclone copy": ["rclone", "copy", "--config", "/dev/null", str(tmp_path), str(folder)],
    }
    result = subprocess.run(commands[tool], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr + slow_mount.log[-3000:]
    service.drain()
    assert md5(folder / name) == md5(sample.fastq1)
    assert len(read_sets_named(service.client(), store_id, name.split(".")[0])) == 1
    assert open_uploads(service.client(), store_id) == []


def test_rsync_without_inplace_fails_and_the_log_says_to_use_inplace(
    slow: tuple[RunningService, str], slow_mount: Mounted, sample: SampleFiles
) -> None:
    service, store_id = slow
    folder = slow_mount.path / "sequence-stores" / "uploads"
    result = subprocess.run(["rsync", str(sample.fastq1), str(folder / "tmpname.fastq.gz")],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode != 0
    assert "Invalid argument" in result.stderr  # its temporary .tmpname.fastq.gz.XXXXXX
    slow_mount.wait_for_log("use rsync --inplace")
    assert read_sets_named(service.client(), store_id, "tmpname") == []
    with pytest.raises(OSError) as refused:
        os.rename(folder / "seen.fastq.gz", folder / "renamed.fastq.gz")
    assert refused.value.errno == errno.EPERM
    slow_mount.wait_for_log("copy with --inplace")


def test_omicsfs_stats_shows_uploads_that_ended_with_their_read_set(
    slow: tuple[RunningService, str], slow_mount: Mounted, sample: SampleFiles
) -> None:
    service, store_id = slow
    target = slow_mount.path / "sequence-stores" / "uploads" / "shown.fq.gz"
    subprocess.run(["cp", str(sample.fastq2), str(target)], check=True)
    [made] = read_sets_named(service.client(), store_id, "shown")
    shown = omicsfs("stats", str(slow_mount.path))
    assert shown.returncode == 0, shown.stderr
    assert f"shown.fq.gz -> read set {made['id']} PROCESSING_UPLOAD" in shown.stdout


def test_an_upload_that_fails_processing_is_listed_with_its_reason(
    rw: Mounted, cohort: Path, sample: SampleFiles, omics: Any, write_loaded: LoadedSample,
    write_service: RunningService, tmp_path: Path,
) -> None:  # fmt: skip
    cut = tmp_path / "cut.bam"
    cut.write_bytes(sample.bam.read_bytes()[:100_000])  # a whole header, then cut mid-record
    subprocess.run(["cp", str(cut), str(cohort / "cut.bam")], check=True)  # the bytes were accepted
    write_service.drain()
    [failed] = read_sets_named(omics, write_loaded.sequence_store_id, "cut")
    assert failed["status"] == "UPLOAD_FAILED"
    target = cohort / "cut.bam"
    with pytest.raises(PermissionError):  # asks the service: failed, and says why
        target.read_bytes()
    assert xattr(target, "status") == "UPLOAD_FAILED"
    rw.wait_for_log(f"refusing to open read set {failed['id']} (cut): its upload failed in processing")
    rw.wait_for_log(failed["statusMessage"])
    assert xattr(target, "statusMessage") == failed["statusMessage"]

    fresh = Mounted(tmp_path / "again", write_service.url, "--read-write")  # the first ls -l of a mount
    try:
        store = fresh.path / "sequence-stores" / "demo-cohort"
        listed = subprocess.run(["ls", "-l", str(store)], capture_output=True, text=True)
        assert listed.returncode == 0, listed.stderr
        assert " cut.bam" in listed.stdout
        dangling = subprocess.run(["find", "-L", str(store / "by-sample"), "-type", "l"],
                                  capture_output=True, text=True)  # fmt: skip
        assert dangling.stdout == "", dangling.stdout  # every group link resolves
        assert xattr(store / "cut.bam", "statusMessage") == failed["statusMessage"]
    finally:
        assert fresh.stop() == 0
