from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omicsfs.sample.data import SampleFiles, make_sample
from tests.localservice import RunningService


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleFiles:
    """One small genome with every file type, made once per run."""
    return make_sample(tmp_path_factory.mktemp("sample"), pairs=3000)


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """A local service shared by the tests that only add their own resources."""
    running = RunningService(tmp_path_factory.mktemp("service"))
    yield running
    assert running.stop() == 0


@pytest.fixture
def private_service(tmp_path: Path) -> Iterator[RunningService]:
    """A service of the test's own, for tests that count requests, inject faults or restart."""
    running = RunningService(tmp_path / "data")
    yield running
    running.stop()


@pytest.fixture
def omics(service: RunningService) -> Any:
    return service.client()


@pytest.fixture
def store(omics: Any) -> dict[str, Any]:
    """A fresh sequence store per test, so tests never see each other's read sets."""
    return dict(omics.create_sequence_store(name="test-store"))
