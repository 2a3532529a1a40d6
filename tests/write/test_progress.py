"""Upload progress counts bytes as botocore reads each part body, not a whole part at its end:
the real client against the local service, with a progress counter that records every move."""

from __future__ import annotations

import os

import pytest
import trio

from omicsfs.backend.client import make_client, make_session
from omicsfs.backend.interface import PartProgress
from omicsfs.backend.omics import OmicsBackend
from omicsfs.backend.stats import BackendStats
from omicsfs.config import BackendLimits
from tests.localservice import TEST_ENV, RunningService


class RecordingProgress(PartProgress):
    """Every value ``sent`` takes, in order (assigned from botocore's worker thread)."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        super().__init__()

    def __setattr__(self, name: str, value: object) -> None:
        if name == "sent":
            self.seen.append(int(value))  # type: ignore[call-overload]
        object.__setattr__(self, name, value)


def test_a_part_body_is_counted_as_botocore_reads_it(
    private_service: RunningService, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    omics = private_service.client()
    store_id = str(omics.create_sequence_store(name="progress")["id"])
    payload = b"@r\n" + os.urandom(4 << 20)
    progress = RecordingProgress()

    async def main() -> None:
        client = make_client(make_session(region="us-west-2", profile=None), endpoint_url=private_service.url)
        backend = OmicsBackend(client, BackendLimits(), BackendStats())
        upload_id = await backend.create_upload(
            store_id, {"sourceFileType": "FASTQ", "name": "p", "sampleId": "s", "subjectId": "s"}
        )
        await backend.upload_part(store_id, upload_id, "SOURCE1", 1, payload, progress)
        await backend.abort_upload(store_id, upload_id)

    trio.run(main)
    moving = [value for value in progress.seen if 0 < value < len(payload)]
    assert len(moving) >= 4  # read in chunks while it is sent
    assert moving == sorted(moving)
    assert progress.seen[-1] == len(payload)
