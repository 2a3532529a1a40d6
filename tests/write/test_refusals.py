"""Every write the mount refuses: the errno, one log line, and nothing left half-made."""

from __future__ import annotations

import errno
import gzip
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from omicsfs.sample.data import SampleFiles
from omicsfs.sample.load import LoadedSample
from tests.mounting import Mounted
from tests.write.conftest import open_uploads, read_sets_named


def nothing_left(omics: Any, loaded: LoadedSample, name: str) -> None:
    assert open_uploads(omics, loaded.sequence_store_id) == []
    assert read_sets_named(omics, loaded.sequence_store_id, name) == []


def write_raw(path: Path, *chunks: bytes, offsets: list[int] | None = None) -> None:
    """os.write/pwrite on one descriptor: each call's errno reaches the test unbuffered."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for index, chunk in enumerate(chunks):
            if offsets is None:
                os.write(fd, chunk)
            else:
                os.pwrite(fd, chunk, offsets[index])
    finally:
        os.close(fd)


def test_bytes_that_contradict_the_name_fail_the_first_write(
    rw: Mounted, cohort: Path, sample: SampleFiles, omics: Any, write_loaded: LoadedSample
) -> None:
    with pytest.raises(OSError) as raised:
        write_raw(cohort / "not-a-bam.bam", sample.fastq1.read_bytes())
    assert raised.value.errno == errno.EINVAL
    assert "not-a-bam.bam is not a BAM file" in rw.log
    nothing_left(omics, write_loaded, "not-a-bam")
    assert "not-a-bam.bam" not in os.listdir(cohort)


def test_plain_fastq_that_is_not_fastq_fails_at_once(
    cohort: Path, omics: Any, write_loaded: LoadedSample
) -> None:
    with pytest.raises(OSError) as raised:
        write_raw(cohort / "notes.fastq", b">a FASTA record\nACGT\n")
    assert raised.value.errno == errno.EINVAL
    nothing_left(omics, write_loaded, "notes")


def test_out_of_order_write_is_einval_and_aborts_the_upload(
    rw: Mounted, cohort: Path, sample: SampleFiles, omics: Any, write_loaded: LoadedSample
) -> None:
    data = sample.fastq1.read_bytes()
    with pytest.raises(OSError) as raised:  # the first write created the upload; the second seeks
        write_raw(cohort / "seeky.fastq.gz", data[:100_000], data[150_000:200_000], offsets=[0, 150_000])
    assert raised.value.errno == errno.EINVAL
    assert "out-of-order write" in rw.log
    nothing_left(omics, write_loaded, "seeky")


def test_dd_seek_is_refused(
    cohort: Path, sample: SampleFiles, omics: Any, write_loaded: LoadedSample
) -> None:
    result = subprocess.run(
        ["dd", f"if={sample.fastq1}", f"of={cohort / 'dd-seek.fastq.gz'}", "bs=64K", "seek=3",
         "conv=notrunc", "status=none"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Invalid argument" in result.stderr
    nothing_left(omics, write_loaded, "dd-seek")


def test_a_header_no_reference_matches_fails_the_first_write(
    rw: Mounted, cohort: Path, tmp_path: Path, omics: Any, write_loaded: LoadedSample
) -> None:
    sam = tmp_path / "other.sam"
    sam.write_text("@HD\tVN:1.6\tSO:coordinate\n@SQ\tSN:chrZ\tLN:4242\n"
                   "r1\t0\tchrZ\t1\t60\t4M\t*\t0\t0\tACGT\tIIII\n")  # fmt: skip
    bam = tmp_path / "other.bam"
    subprocess.run(["samtools", "view", "-b", "-o", str(bam), str(sam)], check=True)
    with pytest.raises(OSError) as raised:
        write_raw(cohort / "unknown-genome.bam", bam.read_bytes())
    assert raised.value.errno == errno.EINVAL
    rw.wait_for_log("no reference matches the header's 1 @SQ (chrZ:4242)")  # stderr is read by a thread
    nothing_left(omics, write_loaded, "unknown-genome")


@pytest.mark.parametrize("name", ["notes.txt", "sample.bam.bai", "reads.fastq.bz2", ".bam"])
def test_names_that_are_no_read_set_file_are_einval(name: str, cohort: Path) -> None:
    with pytest.raises(OSError) as raised:
        (cohort / name).write_bytes(b"x")
    assert raised.value.errno == errno.EINVAL
    assert name not in os.listdir(cohort)


def test_files_go_only_into_sequence_store_folders(rw: Mounted) -> None:
    for folder in (rw.path, rw.path / "sequence-stores", rw.path / "reference-stores" / "references"):
        with pytest.raises(PermissionError):
            (folder / "x.bam").write_bytes(b"x")


def test_read_sets_are_immutable(rw: Mounted, cohort: Path) -> None:
    existing = cohort / "NA12878-aligned.bam"
    refusals = {
        "write into": lambda: open(existing, "r+b"),  # noqa: SIM115
        "append to": lambda: open(existing, "ab"),  # noqa: SIM115
        "truncate": lambda: os.truncate(existing, 0),
        "chmod": lambda: os.chmod(existing, 0o600),
        "utimes": lambda: os.utime(existing, (0, 0)),
        "rename": lambda: os.rename(existing, cohort / "renamed.bam"),
        "link": lambda: os.link(existing, cohort / "linked.bam"),
        "symlink": lambda: os.symlink("NA12878-aligned.bam", cohort / "alias.bam"),
        "rm (no --allow-delete)": lambda: os.unlink(existing),
        "mkdir in a store": lambda: os.mkdir(cohort / "new-folder"),
        "setxattr": lambda: os.setxattr(existing, "user.omics.note", b"x"),
    }
    for what, action in refusals.items():
        with pytest.raises(OSError) as raised:
            action()
        assert raised.value.errno == errno.EPERM, what
    assert existing.stat().st_size > 0


def test_a_file_being_written_cannot_be_renamed_truncated_or_removed(
    cohort: Path, sample: SampleFiles, omics: Any, write_loaded: LoadedSample
) -> None:
    target = cohort / "busy.fastq.gz"
    with open(target, "wb", buffering=0) as handle:
        handle.write(sample.fastq1.read_bytes()[:50_000])
        refused = (
            lambda: os.truncate(target, 10),
            lambda: os.unlink(target),
            lambda: os.rename(target, cohort / "b.fastq.gz"),
            lambda: os.chmod(target, 0),
        )
        for action in refused:
            with pytest.raises(PermissionError):
                action()
        handle.write(sample.fastq1.read_bytes()[50_000:])
    assert read_sets_named(omics, write_loaded.sequence_store_id, "busy")


def test_mate_2_without_mate_1_fails_its_close(
    rw: Mounted, cohort: Path, sample: SampleFiles, omics: Any, write_loaded: LoadedSample
) -> None:
    handle = open(cohort / "lonely_2.fastq.gz", "wb")  # noqa: SIM115
    handle.write(sample.fastq2.read_bytes())
    with pytest.raises(OSError) as raised:
        handle.close()
    assert raised.value.errno == errno.EIO
    assert "mate 2 without a mate 1" in rw.log
    nothing_left(omics, write_loaded, "lonely")


def test_read_only_mount_refuses_every_write_with_erofs(
    tmp_path: Path, write_service: Any, write_loaded: LoadedSample, sample: SampleFiles
) -> None:
    ro = Mounted(tmp_path / "ro", write_service.url)
    try:
        cohort = ro.path / "sequence-stores" / "demo-cohort"
        with pytest.raises(OSError) as raised:
            (cohort / "x.fastq.gz").write_bytes(gzip.compress(b"@r\nA\n+\nI\n"))
        assert raised.value.errno == errno.EROFS
        with pytest.raises(OSError) as raised:
            os.unlink(cohort / "NA12878-aligned.bam")
        assert raised.value.errno == errno.EROFS
    finally:
        assert ro.stop() == 0
