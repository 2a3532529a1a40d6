from __future__ import annotations

import pytest

from omicsfs.sample.data import SampleFiles
from tests.localservice import RunningService
from tests.service.helpers import import_reference


@pytest.fixture(scope="session")
def reference_arn(service: RunningService, sample: SampleFiles) -> str:
    """The sample genome imported into the shared service: what its BAM and CRAM align to."""
    return import_reference(service, sample.reference, "sample-genome")
