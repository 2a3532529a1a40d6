"""One --cache-dir shared by several real mounts (--cache-dir-shared), as on a cluster's NFS."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cluster.conftest import mount_stats, wait_for
from tests.localservice import RunningService
from tests.mount.builders import fastq_gz, tiny_read_sets
from tests.mounting import Mounted
from tests.service.helpers import download, upload_file

PART = 65536


@pytest.fixture
def reads(private_service: RunningService) -> tuple[RunningService, dict[str, str], dict[str, bytes]]:
    """Three FASTQ read sets of five or more 64 KiB parts each, in store "shared"."""
    omics = private_service.client()
    store = omics.create_sequence_store(name="shared")
    ids = {
        name: upload_file(omics, store["id"], {"SOURCE1": fastq_gz(16000, seed=seed)}, "FASTQ", name=name)
        for seed, name in enumerate(("x", "y", "z"))
    }
    private_service.drain()
    expected = {name: download(omics, store["id"], read_set) for name, read_set in ids.items()}
    assert all(len(data) > 4 * PART for data in expected.values())
    return private_service, ids, expected


def shared(cache: Path, *extra: str) -> tuple[str, ...]:
    return ("--cache-dir", str(cache), "--cache-dir-shared", *extra)


def parts(data: bytes) -> int:
    return -(-len(data) // PART)


def leases(cache: Path) -> list[Path]:
    return sorted((cache / "leases").glob("*.lease")) if (cache / "leases").exists() else []


def entries(cache: Path, read_set_id: str) -> list[Path]:
    return sorted(path for path in (cache / "parts" / "readSet" / read_set_id).rglob("*") if path.is_file())


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_two_mounts_sharing_a_cache_dir_fetch_each_part_once(
    reads: tuple[RunningService, dict[str, str], dict[str, bytes]], tmp_path: Path
) -> None:
    service, _, expected = reads
    cache = tmp_path / "cache"
    first = Mounted(tmp_path / "a", service.url, *shared(cache))
    second = Mounted(tmp_path / "b", service.url, *shared(cache))
    try:
        for mounted in (first, second):
            os.stat(mounted.path / "sequence-stores" / "shared" / "x.fastq.gz")
        service.set_faults("latency@GetReadSet=3s")  # the first mount's fetch is slow to answer
        service.reset_stats()
        readers = [
            subprocess.Popen(["md5sum", str(first.path / "sequence-stores" / "shared" / "x.fastq.gz")],
                             stdout=subprocess.PIPE, text=True)
        ]
        wait_for(lambda: leases(cache), "the first mount's lease")
        readers.append(
            subprocess.Popen(["md5sum", str(second.path / "sequence-stores" / "shared" / "x.fastq.gz")],
                             stdout=subprocess.PIPE, text=True)
        )
        wait_for(lambda: mount_stats(second)["shared_cache"].get("lease_waits", 0) >= 1,
                 "the second mount to wait for the first one's lease")  # fmt: skip
        service.set_faults("")
        digests = {reader.communicate(timeout=120)[0].split()[0] for reader in readers}
        assert digests == {md5(expected["x"])}
        assert service.requests().get("GetReadSet", 0) == parts(expected["x"])  # each part once
        assert mount_stats(second)["shared_cache"].get("fetches_from_peers", 0) >= 1
        assert leases(cache) == []  # every lease was released
    finally:
        assert first.stop() == 0
        assert second.stop() == 0


def test_a_lease_left_by_a_killed_mount_expires_and_another_mount_fetches(
    reads: tuple[RunningService, dict[str, str], dict[str, bytes]], tmp_path: Path
) -> None:
    service, _, expected = reads
    cache = tmp_path / "cache"
    doomed = Mounted(tmp_path / "a", service.url, *shared(cache, "--lease-ttl", "2"))
    reader = None
    try:
        path = doomed.path / "sequence-stores" / "shared" / "y.fastq.gz"
        os.stat(path)
        service.set_faults("latency@GetReadSet=5s")
        reader = subprocess.Popen(["cat", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: leases(cache), "the lease of the mount about to be killed")
        os.kill(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait(timeout=60)
        service.set_faults("")
        service.reset_stats()
        left = leases(cache)
        assert left  # nobody released them (one per part the reader had asked for)

        survivor = Mounted(tmp_path / "b", service.url, *shared(cache))
        try:
            assert (survivor.path / "sequence-stores" / "shared" / "y.fastq.gz").read_bytes() == expected["y"]
            assert service.requests().get("GetReadSet", 0) == parts(expected["y"])
            assert mount_stats(survivor)["shared_cache"].get("leases_expired", 0) == len(left)
            assert "stopped renewing its lease; fetching it here" in survivor.log
            assert leases(cache) == []
        finally:
            assert survivor.stop() == 0
    finally:
        if reader is not None:
            reader.wait(timeout=60)  # its read failed when the daemon died
        doomed.stop()


def test_the_cooperative_cap_never_removes_entries_another_mount_is_reading(
    reads: tuple[RunningService, dict[str, str], dict[str, bytes]], tmp_path: Path
) -> None:
    service, ids, expected = reads
    cache = tmp_path / "cache"
    cap = ("--cache-dir-size", "200K")  # less than one read set: the cap must yield, not live entries
    filler = Mounted(tmp_path / "c", service.url, *shared(cache, *cap))
    try:
        for name in ("x", "y"):
            path = filler.path / "sequence-stores" / "shared" / f"{name}.fastq.gz"
            assert path.read_bytes() == expected[name]
    finally:
        assert filler.stop() == 0
    assert len(entries(cache, ids["x"])) == parts(expected["x"])  # over the cap, but all in use
    assert len(entries(cache, ids["y"])) == parts(expected["y"])

    # Another mount reads x from the disk tier, after it (and y) sat idle for an hour.
    reader = Mounted(tmp_path / "a", service.url, *shared(cache, *cap))
    try:
        # Its own first scan runs in the background; had it measured the folder after the
        # entries were aged below, the reader would evict y before the evictor could.
        reader.wait_for_log("every other entry is in use")
        hour_ago = time.time() - 3600
        for path in entries(cache, ids["x"]) + entries(cache, ids["y"]):
            os.utime(path, (hour_ago, hour_ago))
        service.reset_stats()
        with open(reader.path / "sequence-stores" / "shared" / "x.fastq.gz", "rb") as handle:
            assert handle.read() == expected["x"]
            assert service.requests().get("GetReadSet", 0) == 0  # every block from the disk tier
            # Another mount starts, scans the shared folder and enforces the cap.
            evictor = Mounted(tmp_path / "d", service.url, *shared(cache, *cap))
            try:
                evictor.wait_for_log("evicted")
                assert entries(cache, ids["y"]) == []  # idle for an hour: gone
                assert len(entries(cache, ids["x"])) == parts(expected["x"])  # being read: kept
                handle.seek(0)
                assert handle.read() == expected["x"]
                assert service.requests().get("GetReadSet", 0) == 0
                again = evictor.path / "sequence-stores" / "shared" / "y.fastq.gz"
                assert again.read_bytes() == expected["y"]  # fetched again, whole and exact
                assert service.requests().get("GetReadSet", 0) == parts(expected["y"])
            finally:
                assert evictor.stop() == 0
    finally:
        assert reader.stop() == 0


def test_metadata_in_a_shared_cache_dir_is_fetched_once_for_every_mount(
    private_service: RunningService, tmp_path: Path
) -> None:
    omics = private_service.client()
    store = omics.create_sequence_store(name="many")
    ids = tiny_read_sets(omics, store["id"], 12)
    private_service.drain()
    cache = tmp_path / "cache"
    first = Mounted(tmp_path / "a", private_service.url, *shared(cache))
    second = Mounted(tmp_path / "b", private_service.url, *shared(cache))
    try:
        private_service.reset_stats()
        listing = subprocess.run(["ls", "-l", str(first.path / "sequence-stores" / "many")],
                                 check=True, capture_output=True, text=True).stdout  # fmt: skip
        assert private_service.requests().get("GetReadSetMetadata", 0) == len(ids)
        files = sorted((cache / "metadata" / "readSet").rglob("*.json"))
        assert len(files) == len(ids)
        assert all(oct(path.stat().st_mode & 0o777) == "0o600" for path in files)
        assert not (cache / "metadata.sqlite3").exists()  # SQLite is never used on a shared dir
        private_service.reset_stats()
        again = subprocess.run(["ls", "-l", str(second.path / "sequence-stores" / "many")],
                               check=True, capture_output=True, text=True).stdout  # fmt: skip
        assert again == listing
        assert private_service.requests().get("GetReadSetMetadata", 0) == 0
    finally:
        assert first.stop() == 0
        assert second.stop() == 0
