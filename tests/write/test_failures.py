"""Uploads under faults, a killed daemon, pacing at the real quotas, mates, and deletion."""

from __future__ import annotations

import errno
import gzip
import os
import signal
import subprocess
from pathlib import Path

import pytest

from omicsfs.sample.data import SampleFiles
from omicsfs.sample.load import ROLE_ARN, load_sample, stage
from tests.localservice import PrivateStore, RunningService
from tests.mounting import Mounted, md5
from tests.write.conftest import open_uploads, read_sets_named, wait_active


def rw_mount(tmp_path: Path, service: RunningService, *extra: str, name: str = "m") -> Mounted:
    return Mounted(tmp_path / name, service.url, "--read-write", "--part-size", "64K", *extra)


def test_uploads_come_through_throttling_500s_and_reset_connections(
    private_store: PrivateStore, sample: SampleFiles, tmp_path: Path
) -> None:
    service, store_id = private_store
    service.set_faults(
        "seed=3;throttle@UploadReadSetPart,CreateMultipartReadSetUpload,CompleteMultipartReadSetUpload=0.2;"
        "error@UploadReadSetPart=0.2;reset@UploadReadSetPart=0.2"
    )
    mounted = rw_mount(tmp_path, service)
    try:
        folder = mounted.path / "sequence-stores" / "uploads"
        names = ["f1.fastq.gz", "f2.fastq.gz", "f3.fastq.gz"]
        for name in names:
            subprocess.run(["cp", str(sample.fastq1), str(folder / name)], check=True)
        omics = service.client()
        for name in names:
            wait_active(omics, store_id, name.split(".")[0])
            assert md5(folder / name) == md5(sample.fastq1)  # each part exactly once, in order
        injected = service.admin("GET", "stats")["faults"]["injected"]
        assert injected.get("reset:UploadReadSetPart", 0) > 0
        assert injected.get("error:UploadReadSetPart", 0) > 0
        assert injected.get("throttle:UploadReadSetPart", 0) > 0
        assert open_uploads(omics, store_id) == []
    finally:
        assert mounted.stop() == 0


@pytest.mark.parametrize("failing", ["UploadReadSetPart", "CompleteMultipartReadSetUpload"])
def test_a_failed_upload_fails_close_with_eio_and_leaves_nothing(
    failing: str, private_store: PrivateStore, sample: SampleFiles, tmp_path: Path
) -> None:
    service, store_id = private_store
    service.set_faults(f"error@{failing}=1")
    mounted = rw_mount(tmp_path, service, "--retries", "2")
    try:
        target = mounted.path / "sequence-stores" / "uploads" / "doomed.fastq.gz"
        result = subprocess.run(["cp", str(sample.fastq1), str(target)], capture_output=True, text=True)
        assert result.returncode != 0
        assert "Input/output error" in result.stderr
        mounted.wait_for_log("upload of 'doomed' failed, nothing was kept: ")
        omics = service.client()
        assert open_uploads(omics, store_id) == []  # aborted
        assert read_sets_named(omics, store_id, "doomed") == []
        assert not target.exists()
    finally:
        assert mounted.stop() == 0


def test_uploads_of_a_killed_daemon_are_aborted_by_the_next_mount(
    private_store: PrivateStore, sample: SampleFiles, tmp_path: Path
) -> None:
    service, store_id = private_store
    omics = service.client()
    first = rw_mount(tmp_path, service, name="same")
    data = sample.fastq1.read_bytes()
    handle = open(first.path / "sequence-stores" / "uploads" / "cut-short.fastq.gz", "wb", buffering=0)  # noqa: SIM115
    handle.write(data[:150_000])  # two 64 KiB parts leave while the file stays open
    uploads = open_uploads(omics, store_id)
    assert [u["name"] for u in uploads] == ["cut-short"]
    first.process.kill()
    first.process.wait()
    with pytest.raises(OSError):
        handle.close()  # the daemon is gone: "Transport endpoint is not connected"

    second = rw_mount(tmp_path, service, name="same")  # clears the dead mount, then cleans up
    try:
        second.wait_for_log("left by an earlier omicsfs at this mount point")
        assert open_uploads(omics, store_id) == []
        assert read_sets_named(omics, store_id, "cut-short") == []
    finally:
        assert second.stop() == 0


def test_small_files_in_one_cp_stay_under_the_one_per_second_quota(
    private_store: PrivateStore, tmp_path: Path
) -> None:
    """The real check of upload pacing; that 50 Creates are never two within a second is shown on
    the fake clock (tests/unit/test_omics_backend.py), where it costs no wall time."""
    service, store_id = private_store
    service.set_faults("preset=aws")  # Create/Complete/Abort throttled above 1 per second
    sources = tmp_path / "many"
    sources.mkdir()
    for index in range(4):
        (sources / f"s{index:02d}.fastq.gz").write_bytes(
            gzip.compress(f"@r{index}\nACGT\n+\nIIII\n".encode())
        )
    # One attempt per call: only pacing, not retrying, can keep this from failing.
    mounted = rw_mount(tmp_path, service, "--retries", "1", "--metadata-tps", "5")
    try:
        folder = mounted.path / "sequence-stores" / "uploads"
        subprocess.run(["cp", *sorted(str(p) for p in sources.iterdir()), str(folder)], check=True)
        omics = service.client()
        listed = [r for page in omics.get_paginator("list_read_sets").paginate(sequenceStoreId=store_id)
                  for r in page["readSets"]]  # fmt: skip
        assert sorted(r["name"] for r in listed) == ["s00", "s01", "s02", "s03"]
        stats = service.admin("GET", "stats")
        assert stats["requests"]["CreateMultipartReadSetUpload"] == 4
        assert not any(key.startswith("throttle:") for key in stats["faults"]["injected"]), stats["faults"]
    finally:
        assert mounted.stop() == 0


def test_a_lone_mate_1_is_completed_single_end_after_the_pair_timeout(
    private_store: PrivateStore, sample: SampleFiles, tmp_path: Path
) -> None:
    service, store_id = private_store
    mounted = rw_mount(tmp_path, service, "--pair-timeout", "0.2")
    try:
        (mounted.path / "sequence-stores" / "uploads" / "solo_1.fastq.gz").write_bytes(
            sample.fastq1.read_bytes()
        )
        meta = wait_active(service.client(), store_id, "solo")
        assert set(meta["files"]) == {"source1"}
        mounted.wait_for_log("no mate 2 for 'solo'")
    finally:
        assert mounted.stop() == 0


def test_a_lone_mate_1_is_completed_at_unmount(
    private_store: PrivateStore, sample: SampleFiles, tmp_path: Path
) -> None:
    service, store_id = private_store
    mounted = rw_mount(tmp_path, service, "--pair-timeout", "3600")
    (mounted.path / "sequence-stores" / "uploads" / "late_1.fastq.gz").write_bytes(sample.fastq1.read_bytes())
    omics = service.client()
    assert read_sets_named(omics, store_id, "late") == []  # still waiting for its mate
    assert mounted.stop(signal.SIGTERM) == 0
    assert set(wait_active(omics, store_id, "late")["files"]) == {"source1"}
    assert open_uploads(omics, store_id) == []


def test_allow_delete_removes_the_read_set_and_its_sibling_files(
    private_store: PrivateStore, sample: SampleFiles, tmp_path: Path
) -> None:
    service, store_id = private_store
    mounted = rw_mount(tmp_path, service, "--allow-delete")
    try:
        folder = mounted.path / "sequence-stores" / "uploads"
        subprocess.run(["cp", str(sample.fastq1), str(folder / "gone_1.fastq.gz")], check=True)
        subprocess.run(["cp", str(sample.fastq2), str(folder / "gone_2.fastq.gz")], check=True)
        omics = service.client()
        read_set = wait_active(omics, store_id, "gone")
        assert {"gone_1.fastq.gz", "gone_2.fastq.gz"} <= set(os.listdir(folder))
        os.unlink(folder / "gone_1.fastq.gz")
        assert not {"gone_1.fastq.gz", "gone_2.fastq.gz"} & set(os.listdir(folder))
        assert not (folder / "gone_2.fastq.gz").exists()
        remaining = omics.list_read_sets(sequenceStoreId=store_id)["readSets"]
        assert read_set["id"] not in {r["id"] for r in remaining if r["status"] != "DELETING"}
        with pytest.raises(OSError) as raised:
            os.unlink(folder / "by-id")
        assert raised.value.errno in (errno.EPERM, errno.EISDIR)
    finally:
        assert mounted.stop() == 0


def test_two_matching_references_fail_unless_one_is_named(
    private_service: RunningService, sample: SampleFiles, tmp_path: Path
) -> None:
    omics = private_service.client()
    loaded = load_sample(omics, private_service.s3_root, sample, private_service.drain)
    uris = stage(private_service.s3_root, [sample.reference], "copy")
    omics.start_reference_import_job(
        referenceStoreId=loaded.reference_store_id, roleArn=ROLE_ARN,
        sources=[{"sourceFile": uris[sample.reference], "name": "same-genome-again"}],
    )  # fmt: skip
    private_service.drain()
    mounted = Mounted(tmp_path / "a", private_service.url, "--read-write")
    try:
        with pytest.raises(OSError) as raised:
            (mounted.path / "sequence-stores" / "demo-cohort" / "ambiguous.bam").write_bytes(
                sample.bam.read_bytes()
            )
        assert raised.value.errno == errno.EINVAL
        mounted.wait_for_log("2 references match the header's")
        mounted.wait_for_log("same-genome-again")
        mounted.wait_for_log("demo-genome")
    finally:
        assert mounted.stop() == 0
    named = Mounted(
        tmp_path / "b", private_service.url, "--read-write", "--reference-arn", loaded.reference_arn
    )
    try:
        (named.path / "sequence-stores" / "demo-cohort" / "chosen.bam").write_bytes(sample.bam.read_bytes())
        assert wait_active(omics, loaded.sequence_store_id, "chosen")["referenceArn"] == loaded.reference_arn
    finally:
        assert named.stop() == 0
