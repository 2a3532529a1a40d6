"""Read-ahead on a real mount: how many parts a sequential reader has fetched ahead of it."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.localservice import RunningService
from tests.mount.builders import fastq_gz
from tests.mounting import Mounted
from tests.service.helpers import download, fastq_in_new_store

PART = 256 << 10
READS = 16  # dd reads of one part each


def _fetches_settled(mounted: Mounted, timeout: float = 60.0) -> None:
    """Until no part fetch is running (polled with a deadline): every GetReadSet has been sent."""
    deadline = time.monotonic() + timeout
    while json.loads((mounted.path / ".omicsfs" / "stats.json").read_text())["cache"]["parts_fetching"]:
        if time.monotonic() > deadline:
            raise AssertionError("part fetches never finished")
        time.sleep(0.02)


def test_a_sequential_reader_gets_eight_parts_fetched_ahead(tmp_path: Path) -> None:
    """dd with O_DIRECT reads exactly 16 parts in order (no kernel readahead in between): the
    window grows 1 -> 2 -> 4 -> 8 parts and the mount has fetched 8 parts beyond the last read,
    each part once."""
    service = RunningService(tmp_path / "data", part_size=PART)
    try:
        omics = service.client()
        store_id, read_set = fastq_in_new_store(service, "ahead", fastq_gz(250000, length=100), name="long",
                                                part_size=4 << 20)  # fmt: skip
        expected = download(omics, store_id, read_set)
        parts = omics.get_read_set_metadata(sequenceStoreId=store_id, id=read_set)["files"]["source1"][
            "totalParts"
        ]
        assert parts > READS + 8  # the window is not cut short by the end of the file
        mounted = Mounted(tmp_path / "mnt", service.url)
        try:
            path = mounted.path / "sequence-stores" / "ahead" / "long.fastq.gz"
            path.stat()
            service.reset_stats()
            done = subprocess.run(
                ["dd", f"if={path}", "of=/dev/stdout", "iflag=direct", f"bs={PART}", f"count={READS}"],
                capture_output=True, check=True,
            )  # fmt: skip
            assert done.stdout == expected[: READS * PART]
            _fetches_settled(mounted)
            assert service.requests().get("GetReadSet", 0) == READS + 8
        finally:
            assert mounted.stop() == 0
    finally:
        service.stop()
