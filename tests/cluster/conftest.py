"""Real mounts of a local service as a cluster uses them: manifests and one shared --cache-dir."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omicsfs.sample.data import SampleFiles
from omicsfs.sample.load import LoadedSample, load_sample
from tests.localservice import RunningService
from tests.mounting import Mounted, omicsfs

#: Everything but data calls: what a --manifest mount must never make.
DATA_OPERATIONS = frozenset({"GetReadSet", "GetReference", "GetObject"})


@pytest.fixture(scope="module")
def cohort(
    tmp_path_factory: pytest.TempPathFactory, sample: SampleFiles
) -> Iterator[tuple[RunningService, LoadedSample]]:
    """A service holding the sample data (BAM, CRAM, paired FASTQ, uBAM, a reference); 64 KiB parts."""
    running = RunningService(tmp_path_factory.mktemp("cohort-service"))
    loaded = load_sample(running.client(), running.s3_root, sample, running.drain, part_size=65536)
    yield running, loaded
    running.stop()


def write_manifest(service: RunningService, path: Path, *selection: str) -> dict[str, Any]:
    """``omicsfs manifest`` as a user runs it; returns the document it wrote."""
    done = omicsfs("manifest", "--endpoint-url", service.url, "-o", str(path), *selection)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("omicsfs manifest: "), done.stderr
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def non_data_calls(service: RunningService) -> dict[str, int]:
    return {op: n for op, n in service.requests().items() if n and op not in DATA_OPERATIONS}


def mount_stats(mounted: Mounted) -> dict[str, Any]:
    stats: dict[str, Any] = json.loads((mounted.path / ".omicsfs" / "stats.json").read_text())
    return stats


def wait_for(predicate: Any, what: str, timeout: float = 60.0) -> None:
    """Polls an observable state with a deadline (never a bare sleep as synchronisation)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
