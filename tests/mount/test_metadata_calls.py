"""How many API calls listings, stats and reads cost: asserted on the service's own counters."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.localservice import RunningService
from tests.mount.builders import fastq_gz, tiny_read_sets
from tests.mounting import Mounted
from tests.service.helpers import download, upload_file

COUNT = 120  # two ListReadSets pages of 100


@pytest.fixture
def crowded(private_service: RunningService) -> tuple[RunningService, str, list[str]]:
    omics = private_service.client()
    store = omics.create_sequence_store(name="crowded")
    ids = tiny_read_sets(omics, store["id"], COUNT)
    private_service.drain()
    return private_service, store["id"], ids


def calls(service: RunningService, operation: str) -> int:
    return service.requests().get(operation, 0)


def test_ls_makes_only_list_calls_and_ls_l_one_metadata_call_per_read_set(
    crowded: tuple[RunningService, str, list[str]], tmp_path: Path
) -> None:
    service, _, _ids = crowded
    mounted = Mounted(tmp_path / "mnt", service.url, "--cache-dir", str(tmp_path / "cache"))
    try:
        folder = mounted.path / "sequence-stores" / "crowded"
        service.reset_stats()
        names = subprocess.run(["ls", str(folder)], check=True, capture_output=True, text=True).stdout.split()
        assert len(names) == COUNT + 3  # + by-id, by-sample, by-subject (.jobs is hidden)
        assert calls(service, "ListReadSets") == 2
        assert calls(service, "GetReadSetMetadata") == 0
        assert calls(service, "GetReadSet") == 0

        listing = subprocess.run(["ls", "-l", str(folder)], check=True, capture_output=True, text=True).stdout
        sizes = {
            line.split()[-1]: int(line.split()[4])
            for line in listing.splitlines()[1:]
            if line.startswith("-")
        }
        assert len(sizes) == COUNT
        assert all(size > 0 for size in sizes.values())
        assert calls(service, "GetReadSetMetadata") == COUNT
        assert calls(service, "ListReadSets") == 2  # the listing is still within its TTL

        service.reset_stats()
        subprocess.run(["ls", "-l", str(folder)], check=True, capture_output=True)
        assert calls(service, "GetReadSetMetadata") == 0
    finally:
        assert mounted.stop() == 0

    # A remount with the same --cache-dir knows every read set's metadata already.
    mounted = Mounted(tmp_path / "mnt", service.url, "--cache-dir", str(tmp_path / "cache"))
    try:
        service.reset_stats()
        again = subprocess.run(["ls", "-l", str(folder)], check=True, capture_output=True, text=True).stdout
        assert again == listing
        assert calls(service, "GetReadSetMetadata") == 0
        assert calls(service, "ListReadSets") == 2
    finally:
        assert mounted.stop() == 0


def one_fastq_read_set(service: RunningService, store_name: str, name: str, seed: int) -> bytes:
    """A new store holding one multi-part FASTQ read set; returns its bytes as the API serves them."""
    omics = service.client()
    store = omics.create_sequence_store(name=store_name)
    read_set = upload_file(omics, store["id"], {"SOURCE1": fastq_gz(12000, seed=seed)}, "FASTQ", name=name)
    service.drain()
    return download(omics, store["id"], read_set)


def test_a_second_read_of_a_cached_file_makes_no_data_calls(
    private_service: RunningService, tmp_path: Path
) -> None:
    expected = one_fastq_read_set(private_service, "reads", "big", seed=9)
    parts = -(-len(expected) // 65536)
    assert parts > 3
    mounted = Mounted(tmp_path / "mnt", private_service.url)
    try:
        path = mounted.path / "sequence-stores" / "reads" / "big.fastq.gz"
        private_service.reset_stats()
        assert path.read_bytes() == expected
        assert calls(private_service, "GetReadSet") == parts  # each part exactly once
        private_service.reset_stats()
        assert path.read_bytes() == expected
        with open(path, "rb", buffering=0) as handle:  # a new open, reads at every offset
            for offset in range(0, len(expected), 30000):
                assert os.pread(handle.fileno(), 5000, offset) == expected[offset : offset + 5000]
        assert calls(private_service, "GetReadSet") == 0
        assert calls(private_service, "GetReadSetMetadata") == 0
    finally:
        assert mounted.stop() == 0


def test_concurrent_cold_readers_share_one_fetch_per_part(
    private_service: RunningService, tmp_path: Path
) -> None:
    expected = one_fastq_read_set(private_service, "shared", "hot", seed=5)
    mounted = Mounted(tmp_path / "mnt", private_service.url)
    try:
        path = mounted.path / "sequence-stores" / "shared" / "hot.fastq.gz"
        os.stat(path)
        private_service.reset_stats()
        readers = [
            subprocess.Popen(["md5sum", str(path)], stdout=subprocess.PIPE, text=True) for _ in range(8)
        ]
        digests = {reader.communicate()[0].split()[0] for reader in readers}
        assert digests == {hashlib.md5(expected).hexdigest()}
        assert calls(private_service, "GetReadSet") == -(-len(expected) // 65536)
    finally:
        assert mounted.stop() == 0
