from __future__ import annotations

from pathlib import Path

import pytest

from omicsfs.sample.data import SampleFiles
from omicsfs.sample.load import load_sample
from tests.localservice import RunningService


@pytest.fixture(scope="session")
def local_data(tmp_path_factory: pytest.TempPathFactory, sample: SampleFiles) -> Path:
    """A local service's data dir holding the sample, with no service running on it (the
    ``--local`` mounts start their own)."""
    data = tmp_path_factory.mktemp("local-data")
    running = RunningService(data)
    load_sample(running.client(), running.s3_root, sample, running.drain, part_size=65536)
    assert running.stop() == 0
    return data
