"""Write-path fixtures: a service of their own (uploads change the store listing other mount
tests assert exactly), with the sample loaded so the reference is there to match @SQ against."""

from __future__ import annotations

import gzip
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omicsfs.sample.data import SampleFiles
from omicsfs.sample.load import LoadedSample, load_sample
from tests.localservice import RunningService
from tests.mounting import Mounted

#: Small parts, so even the sample files are uploaded in several parts.
PART = "256K"


@pytest.fixture(scope="session")
def write_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    running = RunningService(tmp_path_factory.mktemp("write-service"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def write_loaded(write_service: RunningService, sample: SampleFiles) -> LoadedSample:
    return load_sample(write_service.client(), write_service.s3_root, sample, write_service.drain)


@pytest.fixture(scope="module")
def rw(
    tmp_path_factory: pytest.TempPathFactory, write_service: RunningService, write_loaded: LoadedSample
) -> Iterator[Mounted]:
    mounted = Mounted(
        tmp_path_factory.mktemp("rw"), write_service.url, "--read-write", "--part-size", PART,
        "--pair-timeout", "30",
    )  # fmt: skip
    yield mounted
    assert mounted.stop() == 0


@pytest.fixture(scope="session")
def service(write_service: RunningService) -> RunningService:
    """The service these tests talk to (``omics`` and ``store`` in tests/conftest.py use it)."""
    return write_service


@pytest.fixture
def cohort(rw: Mounted) -> Path:
    return rw.path / "sequence-stores" / "demo-cohort"


def read_sets_named(omics: Any, store_id: str, name: str) -> list[dict[str, Any]]:
    found = []
    for page in omics.get_paginator("list_read_sets").paginate(sequenceStoreId=store_id):
        found += [r for r in page["readSets"] if r.get("name") == name]
    return found


def open_uploads(omics: Any, store_id: str) -> list[dict[str, Any]]:
    return list(omics.list_multipart_read_set_uploads(sequenceStoreId=store_id)["uploads"])


def wait_active(omics: Any, store_id: str, name: str, timeout: float = 60.0) -> dict[str, Any]:
    """The read set named ``name`` once the service has processed it (polled, with a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        found = read_sets_named(omics, store_id, name)
        if found and found[0]["status"] not in ("PROCESSING_UPLOAD",):
            return omics.get_read_set_metadata(sequenceStoreId=store_id, id=found[0]["id"])
        if time.monotonic() > deadline:
            raise AssertionError(f"read set {name!r} did not become ACTIVE: {found}")
        time.sleep(0.05)


def fastq_gz(path: Path, megabytes: float, seed: int = 0) -> Path:
    """A gzipped FASTQ of about ``megabytes`` MiB (random bases, so it barely compresses)."""
    generator = random.Random(seed)
    to_bases = bytes.maketrans(bytes(range(256)), b"ACGT" * 64)
    reads = int(megabytes * (1 << 20) / 30)  # ~30 bytes of gzip per 100-base read
    bases = generator.randbytes(reads * 100).translate(to_bases)
    text = b"".join(
        b"@r%d\n%s\n+\n%s\n" % (index, bases[index * 100 : (index + 1) * 100], b"I" * 100)
        for index in range(reads)
    )
    path.write_bytes(gzip.compress(text, compresslevel=1))
    return path
