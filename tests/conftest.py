"""Fixtures every folder shares, and the ``fuse`` marker.

Each fixture has one definition here. A folder whose tests talk to a service of their own
(tests/mount, tests/write) overrides ``service`` in its conftest; ``omics`` and ``store`` then
use that service.

Tests that mount a FUSE filesystem (everything under tests/mount, tests/write and tests/ops, and
the S3 tools' mounts) are marked ``fuse`` here, by where they live, and skipped with one reason
where /dev/fuse is missing (a container without it); ``-m "not fuse"`` deselects them anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omicsfs.sample.data import SampleFiles, make_sample
from tests.localservice import PrivateStore, RunningService

TESTS = Path(__file__).parent
#: Folders and modules whose tests mount a FUSE filesystem.
FUSE_TESTS = (
    TESTS / "mount",
    TESTS / "write",
    TESTS / "ops",
    TESTS / "service" / "test_s3_tools.py",
)
FUSE_DEVICE = Path("/dev/fuse")


def fuse_missing() -> str | None:
    """Why FUSE tests cannot run here, or None if they can."""
    if not FUSE_DEVICE.exists():
        return f"{FUSE_DEVICE} is missing (FUSE tests need it: load the fuse module or pass the device in)"
    if not os.access(FUSE_DEVICE, os.R_OK | os.W_OK):
        return f"{FUSE_DEVICE} is not readable and writable by this user"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = fuse_missing()
    for item in items:
        if any(item.path == where or item.path.is_relative_to(where) for where in FUSE_TESTS):
            item.add_marker(pytest.mark.fuse)
        if missing is not None and item.get_closest_marker("fuse") is not None:
            item.add_marker(pytest.mark.skip(reason=missing))


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
def omics(service: RunningService) -> Iterator[Any]:
    """A real boto3 omics client of the folder's ``service``; its connections close after the test."""
    client = service.client()
    yield client
    client.close()


@pytest.fixture
def store(omics: Any) -> dict[str, Any]:
    """A fresh sequence store per test, so tests never see each other's read sets."""
    return dict(omics.create_sequence_store(name="test-store"))


@pytest.fixture
def private_store(private_service: RunningService) -> PrivateStore:
    """A service of the test's own with one empty sequence store ("uploads")."""
    created = private_service.client().create_sequence_store(name="uploads")
    return PrivateStore(private_service, str(created["id"]))
