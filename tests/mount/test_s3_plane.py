"""The S3 data plane through a real mount: ranged GETs on the local service's S3 endpoint.

Every file type byte-exact against the parts plane, boundaries and concurrency, samtools region
queries with request counts (GetObject, no GetReadSet), a denied store and an archived read set,
an object that changes between two reads, faults on the S3 endpoint, and ``ls -l`` sizes from
ListObjectsV2 that equal the metadata's.
"""

from __future__ import annotations

import errno
import hashlib
import json
import mmap
import os
import random
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from omicsfs.sample.data import SampleFiles
from omicsfs.sample.load import LoadedSample
from tests.localservice import RunningService
from tests.mount.builders import fastq_gz, noisy_fastq_gz
from tests.mount.expected import READ_SET_FILES, read_set_bytes
from tests.mounting import Mounted, omicsfs
from tests.service.helpers import fastq_in_new_store, upload_file


@pytest.fixture(scope="module")
def s3mnt(tmp_path_factory: pytest.TempPathFactory, loaded_service: RunningService, loaded: LoadedSample
          ) -> Iterator[Mounted]:  # fmt: skip
    mounted = Mounted(tmp_path_factory.mktemp("s3mnt"), loaded_service.url, "--s3-endpoint-url",
                      loaded_service.s3_url)  # fmt: skip
    yield mounted
    assert mounted.stop() == 0


def _stats(mounted: Mounted) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((mounted.path / ".omicsfs" / "stats.json").read_text())
    return document


def _store(mounted: Mounted) -> Path:
    return mounted.path / "sequence-stores" / "demo-cohort"


@pytest.mark.parametrize("name", sorted(READ_SET_FILES))
def test_every_file_type_is_byte_exact_through_ranged_gets(
    s3mnt: Mounted, loaded_service: RunningService, omics: Any, loaded: LoadedSample, name: str
) -> None:
    expected = read_set_bytes(omics, loaded, name)
    loaded_service.reset_stats()
    assert (_store(s3mnt) / name).read_bytes() == expected
    requests = loaded_service.requests()
    assert requests.get("GetReadSet", 0) == 0
    assert requests.get("GetObject", 0) >= 1


def test_random_offsets_boundaries_and_sixteen_readers(
    s3mnt: Mounted, omics: Any, loaded: LoadedSample
) -> None:
    expected = read_set_bytes(omics, loaded, "NA12878-aligned.cram")
    path = _store(s3mnt) / "NA12878-aligned.cram"
    rng = random.Random(5)
    with open(path, "rb", buffering=0) as handle:
        for _ in range(200):
            offset = rng.randrange(len(expected))
            length = rng.choice([1, 17, 4096, 65535, 65536, 65537, 300_000])
            assert os.pread(handle.fileno(), length, offset) == expected[offset : offset + length]
        for boundary in range(65536, len(expected), 65536):  # the grid's block and part edges
            assert os.pread(handle.fileno(), 200, boundary - 100) == expected[boundary - 100 : boundary + 100]

    def whole(_: int) -> str:
        return hashlib.md5((_store(s3mnt) / "NA12878-reads_1.fastq.gz").read_bytes()).hexdigest()

    with ThreadPoolExecutor(16) as pool:
        digests = set(pool.map(whole, range(16)))
    assert digests == {hashlib.md5(read_set_bytes(omics, loaded, "NA12878-reads_1.fastq.gz")).hexdigest()}


def test_samtools_region_queries_use_ranged_gets_only(
    s3mnt: Mounted, loaded_service: RunningService, sample: SampleFiles, tmp_path: Path
) -> None:
    # A fresh mount: nothing cached, so every byte of the queries is fetched now.
    fresh = Mounted(tmp_path / "fresh", loaded_service.url, "--s3-endpoint-url", loaded_service.s3_url)
    try:
        store = _store(fresh)
        loaded_service.reset_stats()
        with_reference = ["-T", str(sample.reference)]
        cases: tuple[tuple[Path, Path, list[str]], ...] = ((sample.bam, store / "NA12878-aligned.bam", []),
                 (sample.cram, store / "NA12878-aligned.cram", with_reference))  # fmt: skip
        for local, mounted, extra in cases:
            for region in ("chr1:1000-2000", "chr1:20000-20500", "chr2:100-30000"):
                local_count = subprocess.run(["samtools", "view", "-c", *extra, str(local), region],
                                             check=True, capture_output=True, text=True).stdout  # fmt: skip
                count = subprocess.run(["samtools", "view", "-c", *extra, str(mounted), region],
                                       check=True, capture_output=True, text=True).stdout  # fmt: skip
                assert count == local_count
        requests = loaded_service.requests()
        assert requests.get("GetReadSet", 0) == 0
        assert requests["GetObject"] >= 2
        planes = _stats(fresh)["planes"]
        assert planes["bytes"].get("s3", 0) > 0
        assert planes["bytes"].get("parts", 0) == 0
    finally:
        assert fresh.stop() == 0


def test_a_sequential_read_sends_whole_ranged_gets_over_reused_connections(tmp_path: Path) -> None:
    """A cold dd of a 48 MiB file cut into 1 MiB blocks (as 100 MiB parts are): after the
    window's first steps (1, 2, 4 blocks) every GET is a whole 8 MiB request, and the GETs
    share a few connections instead of opening one each."""
    service = RunningService(tmp_path / "data", part_size=1 << 20)
    try:
        data = noisy_fastq_gz(48 << 20, seed=8)
        fastq_in_new_store(service, "long", data, part_size=8 << 20)
        mounted = Mounted(tmp_path / "mnt", service.url, "--s3-endpoint-url", service.s3_url)
        try:
            path = mounted.path / "sequence-stores" / "long" / "r.fastq.gz"
            path.stat()
            service.reset_stats()
            done = subprocess.run(["dd", f"if={path}", "of=/dev/stdout", "bs=1M"], capture_output=True,
                                  check=True)  # fmt: skip
            assert done.stdout == data
            requests = service.requests()
            assert requests.get("GetReadSet", 0) == 0
            whole = -(-len(data) // (8 << 20))
            assert requests["GetObject"] <= whole + 6  # was one GET per 1 MiB block once sequential
            connections = service.connections()["s3"]
            assert connections < requests["GetObject"]  # was one connection per GET
            assert connections <= 9  # at most the GETs in flight at once (a 64 MiB window)
            _window_is_shown_while_reading(mounted, path, data)
        finally:
            assert mounted.stop() == 0
    finally:
        service.stop()


def _window_is_shown_while_reading(mounted: Mounted, path: Path, data: bytes) -> None:
    """``omicsfs stats`` shows the open file's window on the S3 plane, and bytes and GETs per plane."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)  # past the page cache: every read reaches omicsfs
    try:
        buffer = mmap.mmap(-1, 1 << 20)  # O_DIRECT wants aligned memory
        for offset in range(0, 24 << 20, 1 << 20):
            assert os.preadv(fd, [buffer], offset) == 1 << 20
            assert buffer[:] == data[offset : offset + (1 << 20)]
        document = json.loads(omicsfs("stats", str(mounted.path), "--json").stdout)
        (window,) = document["read_ahead"]["windows"]
        assert window["plane"] == "s3"
        assert window["sequential"] is True
        assert window["next_offset"] == 24 << 20
        assert window["window_bytes"] >= 8 << 20
        assert window["reserved_bytes"] > 0
        planes = document["planes"]
        assert planes["calls"] == {"parts": 0, "s3": document["api_calls"]["S3:GetObject"]}
        assert planes["bytes"] == {"s3": len(data)}  # the second pass came from the cache
        text = omicsfs("stats", str(mounted.path)).stdout
        shown = f"{len(data) / (1 << 20):,.1f} MiB"
        assert f"planes: s3 {shown} in {planes['calls']['s3']} calls; fallbacks to parts 0;" in text
        assert f"{window['file']} (s3): sequential, window " in text
    finally:
        os.close(fd)
    assert json.loads(omicsfs("stats", str(mounted.path), "--json").stdout)["read_ahead"]["windows"] == []


def test_a_store_whose_policy_denies_s3_reads_through_parts(
    private_service: RunningService, tmp_path: Path
) -> None:
    omics = private_service.client()
    data = fastq_gz(400, seed=3)
    store_id, _ = fastq_in_new_store(private_service, "denied", data)
    access_point = omics.get_sequence_store(id=store_id)["s3Access"]["s3AccessPointArn"]
    deny = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*"}]}  # fmt: skip
    omics.put_s3_access_policy(s3AccessPointArn=access_point, s3AccessPolicy=json.dumps(deny))
    mounted = Mounted(tmp_path / "mnt", private_service.url, "--s3-endpoint-url", private_service.s3_url)
    try:
        private_service.reset_stats()
        assert (mounted.path / "sequence-stores" / "denied" / "r.fastq.gz").read_bytes() == data
        requests = private_service.requests()
        assert requests.get("GetObject", 0) == 0  # the probe was refused: parts from the start
        assert requests["GetReadSet"] >= 1
        assert "reading it through parts" in mounted.log
    finally:
        assert mounted.stop() == 0


def test_an_archived_read_set_is_refused_after_falling_back(
    private_service: RunningService, tmp_path: Path
) -> None:
    data = fastq_gz(20_000, seed=4)  # several 64 KiB blocks
    store_id, read_set = fastq_in_new_store(private_service, "cold", data)
    mounted = Mounted(tmp_path / "mnt", private_service.url, "--s3-endpoint-url", private_service.s3_url)
    try:
        path = mounted.path / "sequence-stores" / "cold" / "r.fastq.gz"
        with open(path, "rb", buffering=0) as handle:
            assert os.pread(handle.fileno(), 100, 0) == data[:100]
            private_service.admin("POST", f"archive/{store_id}/{read_set}")
            with pytest.raises(OSError) as refused:
                os.pread(handle.fileno(), 100, len(data) - 100)  # not cached: S3 refuses, parts refuse
            assert refused.value.errno == errno.EACCES
        assert "reading it through parts from now on" in mounted.log
    finally:
        assert mounted.stop() == 0


def test_an_object_changed_between_two_reads_is_never_stitched(
    private_service: RunningService, tmp_path: Path
) -> None:
    first = fastq_gz(5000, seed=5)
    store_id, read_set = fastq_in_new_store(private_service, "moving", first)
    mounted = Mounted(tmp_path / "mnt", private_service.url, "--s3-endpoint-url", private_service.s3_url)
    try:
        path = mounted.path / "sequence-stores" / "moving" / "r.fastq.gz"
        with open(path, "rb", buffering=0) as handle:
            assert os.pread(handle.fileno(), 100, 0) == first[:100]
            second = fastq_gz(5000, seed=6)
            private_service.admin("PUT", f"replace/{store_id}/{read_set}/source1", second)
            with pytest.raises(OSError) as stale:
                os.pread(handle.fileno(), 100, len(first) - 100)
            assert stale.value.errno == errno.ESTALE
    finally:
        assert mounted.stop() == 0


def test_faults_on_the_s3_endpoint_still_give_exact_bytes(
    private_service: RunningService, tmp_path: Path
) -> None:
    data = noisy_fastq_gz(16 << 20, seed=7)  # enough ranged GETs (about 20) for every fault to hit
    fastq_in_new_store(private_service, "flaky-s3", data)
    mounted = Mounted(tmp_path / "mnt", private_service.url, "--s3-endpoint-url", private_service.s3_url)
    try:
        private_service.set_faults("seed=3;throttle@GetObject=1/4;error@GetObject=1/5;cut@GetObject=1/6;"
                                   "reset@GetObject=1/7")  # fmt: skip
        path = mounted.path / "sequence-stores" / "flaky-s3" / "r.fastq.gz"
        digest = subprocess.run(["md5sum", str(path)], check=True, capture_output=True, text=True).stdout
        assert digest.split()[0] == hashlib.md5(data).hexdigest()
        injected = private_service.admin("GET", "stats")["faults"]["injected"]
        assert sum(injected.values()) >= 3
        assert _stats(mounted)["planes"]["bytes"].get("parts", 0) == 0  # retried on S3, no fallback
    finally:
        private_service.set_faults("")
        assert mounted.stop() == 0


def test_ls_l_sizes_come_from_the_listing_and_equal_the_metadata(
    private_service: RunningService, tmp_path: Path
) -> None:
    omics = private_service.client()
    store = omics.create_sequence_store(name="listed")
    contents = {f"r{index}": fastq_gz(5 + index, seed=index) for index in range(12)}
    for name, content in contents.items():
        upload_file(omics, store["id"], {"SOURCE1": content}, "FASTQ", name=name)
    pair: dict[str, Path | bytes] = {"SOURCE1": fastq_gz(7, seed=40), "SOURCE2": fastq_gz(9, seed=41)}
    upload_file(omics, store["id"], pair, "FASTQ", name="pair")  # which object is SOURCE1? not guessed
    private_service.drain()
    mounted = Mounted(tmp_path / "mnt", private_service.url, "--s3-endpoint-url", private_service.s3_url)
    try:
        private_service.reset_stats()
        # A lone stat and read of one path (samtools view PATH) asks its metadata, not the listing.
        lone = mounted.path / "sequence-stores" / "listed" / "r3.fastq.gz"
        assert lone.read_bytes() == contents["r3"]
        requests = private_service.requests()
        assert requests.get("ListObjectsV2", 0) == 0
        assert requests.get("GetSequenceStore", 0) == 0
        assert requests["GetReadSetMetadata"] == 1
        private_service.reset_stats()
        listing = subprocess.run(["ls", "-l", str(mounted.path / "sequence-stores" / "listed")],
                                 check=True, capture_output=True, text=True).stdout  # fmt: skip
        requests = private_service.requests()
        assert requests.get("GetReadSetMetadata", 0) == 1  # the pair's only
        assert requests["ListObjectsV2"] >= 1
        sizes = {
            line.split()[-1]: int(line.split()[4]) for line in listing.splitlines() if ".fastq.gz" in line
        }
        assert len(sizes) == 14
        for page in omics.get_paginator("list_read_sets").paginate(sequenceStoreId=store["id"]):
            for item in page["readSets"]:
                meta = omics.get_read_set_metadata(sequenceStoreId=store["id"], id=item["id"])
                if item["name"] == "pair":
                    assert sizes["pair_1.fastq.gz"] == meta["files"]["source1"]["contentLength"]
                    assert sizes["pair_2.fastq.gz"] == meta["files"]["source2"]["contentLength"]
                else:
                    assert sizes[f"{item['name']}.fastq.gz"] == meta["files"]["source1"]["contentLength"]
        # The daemon's own counters (since the mount): r3's lone read and the pair, none for the
        # other eleven mapped read sets, in the background either.
        daemon_calls = json.loads(omicsfs("stats", str(mounted.path), "--json").stdout)["api_calls"]
        assert daemon_calls["GetReadSetMetadata"] == 2
    finally:
        assert mounted.stop() == 0
