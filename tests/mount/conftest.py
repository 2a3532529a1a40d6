from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from omicsfs.sample.data import SampleFiles
from omicsfs.sample.load import LoadedSample, load_sample
from tests.localservice import RunningService
from tests.mounting import Mounted


@pytest.fixture(scope="session")
def loaded_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """A service holding only the sample data, so the mount's tree is known exactly."""
    running = RunningService(tmp_path_factory.mktemp("mount-service"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def loaded(loaded_service: RunningService, sample: SampleFiles) -> LoadedSample:
    """The sample loaded through import jobs and uploads; 64 KiB parts, so files span many parts."""
    return load_sample(
        loaded_service.client(), loaded_service.s3_root, sample, loaded_service.drain, part_size=65536
    )


@pytest.fixture(scope="module")
def mnt(
    tmp_path_factory: pytest.TempPathFactory, loaded_service: RunningService, loaded: LoadedSample
) -> Iterator[Mounted]:
    mounted = Mounted(tmp_path_factory.mktemp("mnt"), loaded_service.url)
    yield mounted
    assert mounted.stop() == 0
    assert " ERROR " not in mounted.log, mounted.log  # every test of the module ran on this mount


@pytest.fixture(scope="session")
def service(loaded_service: RunningService) -> RunningService:
    """The service these tests talk to (``omics`` and ``store`` in tests/conftest.py use it)."""
    return loaded_service


@pytest.fixture
def store_dir(mnt: Mounted) -> Path:
    return mnt.path / "sequence-stores" / "demo-cohort"


@pytest.fixture
def reference_dir(mnt: Mounted) -> Path:
    return mnt.path / "reference-stores" / "references"
