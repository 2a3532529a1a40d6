"""Non-ACTIVE read sets, name collisions, fault injection and the disk tier, on private services."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.localservice import RunningService
from tests.mount.builders import fastq_gz
from tests.mounting import Mounted
from tests.service.helpers import download, fastq_in_new_store, upload_file


def test_archived_read_set_is_listed_refuses_open_and_opens_after_activation(
    private_service: RunningService, tmp_path: Path
) -> None:
    omics = private_service.client()
    store_id, read_set = fastq_in_new_store(private_service, "cold", fastq_gz(50), name="old")
    private_service.admin("POST", f"archive/{store_id}/{read_set}")
    mounted = Mounted(tmp_path / "mnt", private_service.url)
    try:
        path = mounted.path / "sequence-stores" / "cold" / "old.fastq.gz"
        assert os.listdir(path.parent).count("old.fastq.gz") == 1
        assert os.getxattr(path, "user.omics.status") == b"ARCHIVED"
        assert os.stat(path).st_size > 0
        for _ in range(2):
            with pytest.raises(PermissionError) as excinfo:
                path.read_bytes()
            assert excinfo.value.errno == errno.EACCES
        refusals = [line for line in mounted.lines if "refusing to open" in line]
        assert len(refusals) == 1  # one line, not one per attempt
        assert "ARCHIVED" in refusals[0]
        assert "start-read-set-activation-job" in refusals[0]

        omics.start_read_set_activation_job(sequenceStoreId=store_id, sources=[{"readSetId": read_set}])
        private_service.drain()
        assert path.read_bytes() == download(omics, store_id, read_set)
        assert os.getxattr(path, "user.omics.status") == b"ACTIVE"
        jobs = os.listdir(path.parent / ".jobs" / "activation")
        assert len(jobs) == 1  # first listed now, so the new job is there
    finally:
        assert mounted.stop() == 0


def test_same_names_get_their_ids_and_unique_names_stay_plain(
    private_service: RunningService, tmp_path: Path
) -> None:
    omics = private_service.client()
    store = omics.create_sequence_store(name="dups")
    first = upload_file(omics, store["id"], {"SOURCE1": fastq_gz(5, seed=1)}, "FASTQ", name="same")
    second = upload_file(omics, store["id"], {"SOURCE1": fastq_gz(5, seed=2)}, "FASTQ", name="same")
    upload_file(omics, store["id"], {"SOURCE1": fastq_gz(5, seed=3)}, "FASTQ", name="a/b")
    private_service.drain()
    omics.create_sequence_store(name="dups")  # a second store with the same name
    mounted = Mounted(tmp_path / "mnt", private_service.url)
    try:
        stores = sorted(os.listdir(mounted.path / "sequence-stores"))
        assert len(stores) == 3
        assert all(name.startswith("dups.") or name == "by-id" for name in stores)
        folder = mounted.path / "sequence-stores" / f"dups.{store['id']}"
        files = sorted(name for name in os.listdir(folder) if name.endswith(".gz"))
        assert files == sorted(["a_b.fastq.gz", f"same.{first}.fastq.gz", f"same.{second}.fastq.gz"])
        assert (folder / f"same.{second}.fastq.gz").read_bytes() == download(omics, store["id"], second)
    finally:
        assert mounted.stop() == 0


@pytest.fixture
def flaky_store(tmp_path: Path) -> Iterator[tuple[RunningService, str, dict[str, bytes]]]:
    service = RunningService(tmp_path / "data")
    omics = service.client()
    store = omics.create_sequence_store(name="flaky")
    expected = {}
    for index in range(3):
        read_set = upload_file(
            omics, store["id"], {"SOURCE1": fastq_gz(4000, seed=index)}, "FASTQ", name=f"f{index}"
        )
        expected[f"f{index}.fastq.gz"] = read_set
    service.drain()
    data = {name: download(omics, store["id"], rs) for name, rs in expected.items()}
    yield service, store["id"], data
    service.stop()


def test_reads_stay_byte_exact_under_throttling_errors_and_cut_bodies(
    flaky_store: tuple[RunningService, str, dict[str, bytes]], tmp_path: Path
) -> None:
    service, _, data = flaky_store
    service.set_faults(
        "seed=11;throttle=0.2;error=0.2;cut@GetReadSet=0.2;short@GetReadSet=0.1;reset@GetReadSet=0.1"
    )
    mounted = Mounted(tmp_path / "mnt", service.url)
    try:
        folder = mounted.path / "sequence-stores" / "flaky"
        subprocess.run(["ls", "-l", str(folder)], check=True, capture_output=True)
        for name, expected in data.items():
            digest = subprocess.run(
                ["md5sum", str(folder / name)], check=True, capture_output=True, text=True
            )
            assert digest.stdout.split()[0] == hashlib.md5(expected).hexdigest()
        injected = service.admin("GET", "stats")["faults"]["injected"]
        assert sum(injected.values()) > 5, injected  # the faults really happened
        assert " ERROR " not in mounted.log
    finally:
        assert mounted.stop() == 0


def test_exhausted_retries_fail_that_read_with_eio_and_the_daemon_keeps_serving(
    flaky_store: tuple[RunningService, str, dict[str, bytes]], tmp_path: Path
) -> None:
    service, _, data = flaky_store
    mounted = Mounted(tmp_path / "mnt", service.url, "--retries", "3")
    try:
        folder = mounted.path / "sequence-stores" / "flaky"
        os.stat(folder / "f0.fastq.gz")
        service.set_faults("error@GetReadSet=1")
        with pytest.raises(OSError) as excinfo:
            (folder / "f0.fastq.gz").read_bytes()
        assert excinfo.value.errno == errno.EIO
        assert "InternalServerException" in mounted.log
        failed = [line for line in mounted.lines if "-> EIO" in line]
        assert failed
        requests = {line.split(" -> ")[0].split("omicsfs.fuse_ops: ")[1] for line in failed}
        assert len(requests) == len(failed)  # one line per failed request, not per retry (3 here)
        assert all("(sequence store " in line and " read set " in line for line in failed)  # its IDs and file
        assert all("request " in line for line in failed)  # and the service's request ID
        service.set_faults("")
        assert {".jobs", "by-id", "by-sample", "f0.fastq.gz"} <= set(os.listdir(folder))  # still serving
        assert (folder / "f0.fastq.gz").read_bytes() == data["f0.fastq.gz"]
        assert mounted.process.poll() is None
    finally:
        assert mounted.stop() == 0


def test_a_small_read_is_answered_before_its_part_has_arrived(tmp_path: Path) -> None:
    """Every GetReadSet body is cut at half the part, so part 1 never completes; a read in its
    first half still succeeds (the part is streamed), a read in its second half fails with EIO."""
    service = RunningService(tmp_path / "data", part_size=4 << 20)
    try:
        store_id, read_set = fastq_in_new_store(service, "stream", fastq_gz(140000, length=100), name="large",
                                                part_size=4 << 20)  # fmt: skip
        expected = download(service.client(), store_id, read_set)
        assert len(expected) > 4 << 20
        service.set_faults("cut@GetReadSet=1")
        mounted = Mounted(tmp_path / "mnt", service.url, "--retries", "2")
        try:
            path = mounted.path / "sequence-stores" / "stream" / "large.fastq.gz"
            with open(path, "rb", buffering=0) as handle:
                assert os.pread(handle.fileno(), 4096, 0) == expected[:4096]
                with pytest.raises(OSError) as excinfo:
                    os.pread(handle.fileno(), 4096, (3 << 20) + 12345)
                assert excinfo.value.errno == errno.EIO
        finally:
            assert mounted.stop() == 0
    finally:
        service.stop()


def test_disk_tier_survives_remounts_and_detects_damage(
    flaky_store: tuple[RunningService, str, dict[str, bytes]], tmp_path: Path
) -> None:
    service, _, data = flaky_store
    cache = tmp_path / "cache"
    name = "f1.fastq.gz"
    mounted = Mounted(tmp_path / "mnt", service.url, "--cache-dir", str(cache))
    try:
        assert (mounted.path / "sequence-stores" / "flaky" / name).read_bytes() == data[name]
    finally:
        assert mounted.stop() == 0
    parts = sorted(p for p in (cache / "parts").rglob("*") if p.is_file())
    assert len(parts) == -(-len(data[name]) // 65536)
    assert os.stat(cache).st_mode & 0o777 == 0o700
    assert os.stat(cache / "parts").st_mode & 0o777 == 0o700

    service.reset_stats()
    mounted = Mounted(tmp_path / "mnt", service.url, "--cache-dir", str(cache))
    try:
        assert (mounted.path / "sequence-stores" / "flaky" / name).read_bytes() == data[name]
        assert service.requests().get("GetReadSet", 0) == 0
        assert service.requests().get("GetReadSetMetadata", 0) == 0
    finally:
        assert mounted.stop() == 0

    flipped = bytearray(parts[0].read_bytes())
    flipped[100] ^= 0xFF
    parts[0].write_bytes(bytes(flipped))
    with open(parts[1], "r+b") as handle:
        handle.truncate(1000)
    service.reset_stats()
    mounted = Mounted(tmp_path / "mnt", service.url, "--cache-dir", str(cache))
    try:
        assert (mounted.path / "sequence-stores" / "flaky" / name).read_bytes() == data[name]
        assert service.requests().get("GetReadSet", 0) == 2  # exactly the two damaged parts
        assert mounted.log.count("damaged or truncated") == 2
    finally:
        assert mounted.stop() == 0
