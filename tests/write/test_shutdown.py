"""Stopping the daemon with writers in flight (issue 13, finding 4): SIGTERM, SIGINT and
``omicsfs unmount`` while ``cp`` writers wait for upload slots, are mid-part or mid-Complete.
Every writer gets an error (or finished before the stop), every upload is completed or aborted,
none stays listed, and the daemon exits 0 within its bound (SEMANTICS.md, "Unmounting with
writers"). Parts are slowed with the service's latency fault so the stop lands mid-upload."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.localservice import RunningService
from tests.mounting import Mounted, omicsfs
from tests.write.conftest import fastq_gz, open_uploads, read_sets_named

#: The daemon's bound (daemon/run.py SHUTDOWN_SECONDS) plus room for a loaded machine.
EXIT_DEADLINE = 120


@pytest.mark.parametrize(
    ("how", "writers"), [("SIGTERM", 6), ("SIGTERM", 1), ("SIGINT", 6), ("unmount", 6), ("unmount", 1)]
)
def test_stopping_with_writers_in_flight_ends_every_writer_and_leaves_no_upload(
    how: str, writers: int, private_service: RunningService, tmp_path: Path
) -> None:
    omics = private_service.client()
    store_id = str(omics.create_sequence_store(name="uploads")["id"])
    private_service.set_faults("latency@UploadReadSetPart=1s")
    source = fastq_gz(tmp_path / "big.fastq.gz", 8)  # five 2 MiB parts and a bit
    mounted = Mounted(tmp_path / "m", private_service.url, "--read-write", "--part-size", "2M",
                      "--parts-in-flight", "2")  # fmt: skip
    folder = mounted.path / "sequence-stores" / "uploads"
    names = [f"w{index}.fastq.gz" for index in range(writers)]
    copies = [
        subprocess.Popen(["cp", str(source), str(folder / name)], stderr=subprocess.PIPE, text=True)
        for name in names
    ]
    try:
        mounted.wait_for_log("started upload")  # parts are on their way; the others queue for slots
        if how == "unmount":
            result = omicsfs("unmount", str(mounted.path))
            assert result.returncode == 0, result.stderr
        else:
            mounted.process.send_signal(getattr(signal, how))
        assert mounted.process.wait(timeout=EXIT_DEADLINE) == 0
        assert mounted.stop() == 0  # exited already: this reads the rest of its log
        outcomes = []
        for name, copy in zip(names, copies, strict=True):
            _, errors = copy.communicate(timeout=EXIT_DEADLINE)
            made = read_sets_named(omics, store_id, name.split(".")[0])
            if copy.returncode == 0:
                assert len(made) == 1, name  # finished before the stop: completed, kept
            else:
                assert made == [], name  # stopped: aborted, nothing kept
                assert "Input/output error" in errors or "Transport endpoint is not connected" in errors
            outcomes.append(copy.returncode)
        assert any(code != 0 for code in outcomes)  # the stop did land mid-upload
        assert open_uploads(omics, store_id) == []
        assert "Traceback" not in mounted.log
        assert "Failed to submit invalidate_entry" not in mounted.log
        assert "unmounted" in mounted.log
    finally:
        for copy in copies:
            if copy.poll() is None:
                copy.kill()
        mounted.stop()
