"""A Complete whose answer is lost after the service acted is settled with the service, never
guessed: success with the one read set it made, and no duplicate on a retry (issue 13, finding 3).
The service's ``drop`` fault runs the operation, then closes the connection without an answer."""

from __future__ import annotations

import subprocess
from pathlib import Path

from omicsfs.sample.data import SampleFiles
from tests.localservice import RunningService
from tests.mounting import Mounted
from tests.write.conftest import open_uploads, read_sets_named, wait_active


def test_a_lost_complete_answer_is_success_with_one_read_set_and_a_retry_makes_no_second(
    private_service: RunningService, sample: SampleFiles, tmp_path: Path
) -> None:
    omics = private_service.client()
    store_id = str(omics.create_sequence_store(name="uploads")["id"])
    private_service.set_faults("drop@CompleteMultipartReadSetUpload=1/1")  # every answer is lost
    mounted = Mounted(tmp_path / "m", private_service.url, "--read-write", "--part-size", "64K")
    try:
        target = mounted.path / "sequence-stores" / "uploads" / "dropped.fastq.gz"
        result = subprocess.run(["cp", str(sample.fastq1), str(target)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr + mounted.log[-3000:]
        [made] = read_sets_named(omics, store_id, "dropped")
        mounted.wait_for_log("had taken effect although its answer was lost")
        mounted.wait_for_log(f"read set {made['id']} carries the upload's token")
        assert "nothing was kept" not in mounted.log
        injected = private_service.admin("GET", "stats")["faults"]["injected"]
        assert injected.get("drop:CompleteMultipartReadSetUpload") == 1  # sent once, not retried
        assert open_uploads(omics, store_id) == []
        tags = omics.list_tags_for_resource(resourceArn=made["arn"])["tags"]
        assert len(tags["omicsfs:upload"]) == 32  # the token that found it

        again = subprocess.run(["cp", str(sample.fastq1), str(target)], capture_output=True, text=True)
        assert again.returncode != 0  # the name is a read set now: cp cannot write over it
        assert "Operation not permitted" in again.stderr
        assert len(read_sets_named(omics, store_id, "dropped")) == 1
        wait_active(omics, store_id, "dropped")
    finally:
        assert mounted.stop() == 0
