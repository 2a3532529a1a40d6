"""Restart persistence, a killed process mid-upload, fault injection and the serve command."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import urllib.error
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ResponseStreamingError

from omicsfs.localservice.faults import Faults, FaultSpecError
from omicsfs.localservice.pacing import Pacer
from omicsfs.sample.data import SampleFiles
from tests.localservice import RunningService
from tests.service.helpers import download, error_of, import_reference, upload_file


def test_state_survives_a_restart(tmp_path: Path, sample: SampleFiles) -> None:
    first = RunningService(tmp_path / "data")
    omics = first.client()
    store = omics.create_sequence_store(name="durable")
    reference_arn = import_reference(first, sample.reference)
    rs = upload_file(omics, store["id"], {"SOURCE1": sample.bam}, "BAM", referenceArn=reference_arn)
    first.drain()
    before = omics.get_read_set_metadata(sequenceStoreId=store["id"], id=rs)
    before.pop("ResponseMetadata")
    token = omics.list_sequence_stores(maxResults=1).get("nextToken")
    assert first.stop() == 0
    second = RunningService(tmp_path / "data")
    try:
        omics = second.client()
        after = omics.get_read_set_metadata(sequenceStoreId=store["id"], id=rs)
        after.pop("ResponseMetadata")
        assert after == before
        stored = download(omics, store["id"], rs)
        assert len(stored) == before["files"]["source1"]["contentLength"]
        if token:  # tokens are signed with a key kept in the data dir
            omics.list_sequence_stores(nextToken=token)
    finally:
        second.stop()


def test_kill_mid_upload_keeps_completed_read_sets(tmp_path: Path, sample: SampleFiles) -> None:
    first = RunningService(tmp_path / "data")
    omics = first.client()
    store = omics.create_sequence_store(name="crash")
    done = upload_file(omics, store["id"], {"SOURCE1": sample.fastq1}, "FASTQ", name="done")
    first.drain()
    upload = omics.create_multipart_read_set_upload(
        sequenceStoreId=store["id"], sourceFileType="FASTQ", subjectId="s", sampleId="x", name="open"
    )
    omics.upload_read_set_part(
        sequenceStoreId=store["id"], uploadId=upload["uploadId"], partSource="SOURCE1",
        partNumber=1, payload=sample.fastq2.read_bytes(),
    )  # fmt: skip
    first.stop(signal.SIGKILL)
    # Debris a crash can leave: a half-written part and a half-assembled read set file.
    (tmp_path / "data" / "uploads" / upload["uploadId"] / "SOURCE1" / "2.123.tmp").write_bytes(b"torn")
    orphan = tmp_path / "data" / "blobs" / "readSet" / "5555555555"
    orphan.mkdir(parents=True)
    (orphan / "source1.tmp").write_bytes(b"torn")
    second = RunningService(tmp_path / "data")
    try:
        omics = second.client()
        assert download(omics, store["id"], done) == sample.fastq1.read_bytes()
        assert not orphan.exists()
        uploads = omics.list_multipart_read_set_uploads(sequenceStoreId=store["id"])["uploads"]
        assert [u["uploadId"] for u in uploads] == [upload["uploadId"]]
        parts = omics.list_read_set_upload_parts(
            sequenceStoreId=store["id"], uploadId=upload["uploadId"], partSource="SOURCE1"
        )["parts"]
        assert [p["partNumber"] for p in parts] == [1]
        # The surviving upload can still be completed.
        rs = omics.complete_multipart_read_set_upload(
            sequenceStoreId=store["id"], uploadId=upload["uploadId"],
            parts=[{"partNumber": 1, "partSource": "SOURCE1", "checksum": parts[0]["checksum"]}],
        )["readSetId"]  # fmt: skip
        second.drain()
        assert download(omics, store["id"], rs) == sample.fastq2.read_bytes()
    finally:
        second.stop()


def test_fault_spec_parsing() -> None:
    faults = Faults.parse("seed=7;throttle=20%;error@GetReadSet=1/5;latency=5-20ms;preset=aws")
    assert faults.seed == 7
    kinds = [r.kind for r in faults.rules]
    assert kinds[:3] == ["throttle", "error", "latency"]
    assert kinds.count("rate") >= 10
    assert faults.rules[0].probability == pytest.approx(0.2)
    assert faults.rules[1].every == 5
    assert faults.rules[1].operations == frozenset({"GetReadSet"})
    assert (faults.rules[2].low, faults.rules[2].high) == pytest.approx((0.005, 0.02))
    paced = Faults.parse("bandwidth@GetReadSet=100MiB;bandwidth=1.5GB")
    assert paced.bandwidth("GetReadSet") == 100 << 20  # the first matching rule wins
    assert paced.bandwidth("GetReference") == pytest.approx(1.5e9)
    assert paced.bandwidth("ListReadSets") is None  # data operations only
    assert Faults.parse("bandwidth=4096").bandwidth("GetReference") == 4096
    s3_rules = Faults.parse(
        "error@HeadObject,PutObject=1;short@GetObject=1/2;throttle@ListObjectsV2=0.5"
    ).rules
    assert [r.kind for r in s3_rules] == ["error", "short", "throttle"]  # S3 names are operations too
    drop = Faults.parse("drop@CompleteMultipartReadSetUpload=1/1").rules[0]
    assert (drop.kind, drop.every, drop.operations) == (
        "drop",
        1,
        frozenset({"CompleteMultipartReadSetUpload"}),
    )
    for bad in ("throttle", "nonsense=1", "throttle=2", "preset=gcp", "error=1/0", "seed=x",
                "bandwidth=0", "bandwidth=10parsecs", "bandwidth=fast"):  # fmt: skip
        with pytest.raises(FaultSpecError):
            Faults.parse(bad)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("latency=1e400s", "plain decimal"),  # would hold every request forever
        ("latency=" + "9" * 400 + "ms", "too large"),  # a plain decimal whose float is inf
        ("latency=601s", "at most 600"),
        ("latency=-5ms", "not negative"),
        ("latency=50-5ms", "backwards"),
        ("rate=nan", "plain decimal"),
        ("rate=inf", "plain decimal"),
        ("rate=0", "positive"),
        ("rate=-3", "plain decimal"),
        ("throttle=nan", "plain decimal"),
        ("error=1.5", "between 0 and 1"),
        ("error=150%", "between 0 and 1"),
        ("error=-0.1", "plain decimal"),
        ("error=1/+3", "plain digits"),
        ("seed=+1", "plain digits"),
        ("seed=1e3", "plain digits"),
        ("bandwidth=nanMiB", "plain decimal"),
        ("bandwidth=1e400", "plain decimal"),
        ("error@GetReadSets=1", "no operation named GetReadSets"),
        ("short@ListReadSets=1", "applies only to"),
        ("drop@NoSuchOperation=1", "no operation named"),
        ("seed@GetReadSet=1", "whole spec"),
        ("drop@GetObject=1", "applies only to"),  # the S3 endpoint loses no answers
        ("error@GetObjects=1", "no operation named GetObjects"),
    ],
)
def test_fault_numbers_and_names_are_validated(spec: str, reason: str) -> None:
    with pytest.raises(FaultSpecError, match=reason) as excinfo:
        Faults.parse(spec)
    assert spec.split("=", 1)[0] in str(excinfo.value)  # the message names the rule


def test_the_admin_route_refuses_a_bad_fault_spec_and_keeps_the_old_one(
    private_service: RunningService,
) -> None:
    private_service.set_faults("latency@ListSequenceStores=1ms")
    for bad in (b"latency=1e400s", b"rate=nan", b"\xff\xfe"):
        with pytest.raises(urllib.error.HTTPError) as excinfo:
            private_service.admin("PUT", "faults", bad)
        assert excinfo.value.code == 400
        assert excinfo.value.headers["x-amzn-ErrorType"] == "ValidationException"
        assert json.loads(excinfo.value.read())["__type"] == "ValidationException"
    assert private_service.admin("GET", "stats")["faults"]["spec"] == "latency@ListSequenceStores=1ms"
    private_service.client().list_sequence_stores()


def _read_set_for_faults(service: RunningService, sample: SampleFiles) -> tuple[Any, str, str]:
    omics = service.client()
    store = omics.create_sequence_store(name="faults")
    reference_arn = import_reference(service, sample.reference)
    rs = upload_file(omics, store["id"], {"SOURCE1": sample.bam}, "BAM", referenceArn=reference_arn)
    service.drain()
    return omics, store["id"], rs


def test_every_nth_call_fails_deterministically(private_service: RunningService, sample: SampleFiles) -> None:
    omics, sid, rs = _read_set_for_faults(private_service, sample)
    private_service.set_faults("error@GetReadSetMetadata=1/2")
    omics.get_read_set_metadata(sequenceStoreId=sid, id=rs)
    with pytest.raises(ClientError) as excinfo:
        omics.get_read_set_metadata(sequenceStoreId=sid, id=rs)
    assert error_of(excinfo) == ("InternalServerException", 500)
    omics.get_read_set_metadata(sequenceStoreId=sid, id=rs)
    omics.list_read_sets(sequenceStoreId=sid)  # other operations are untouched
    stats = private_service.admin("GET", "stats")
    assert stats["faults"]["injected"] == {"error:GetReadSetMetadata": 1}
    assert stats["errors"]["GetReadSetMetadata"] == {"InternalServerException": 1}


def test_throttling_and_retries_still_give_exact_bytes(
    private_service: RunningService, sample: SampleFiles
) -> None:
    """A fifth of the calls throttled or failed: botocore's retries recover every part intact."""
    _omics, sid, rs = _read_set_for_faults(private_service, sample)
    private_service.set_faults("seed=3;throttle=0.1;error=0.1")
    retrying = private_service.client(retries={"max_attempts": 10, "mode": "standard"})
    stored = download(retrying, sid, rs)
    meta = retrying.get_read_set_metadata(sequenceStoreId=sid, id=rs)
    assert len(stored) == meta["files"]["source1"]["contentLength"]
    injected = private_service.admin("GET", "stats")["faults"]["injected"]
    assert sum(injected.values()) > 0


def test_short_cut_and_reset_bodies(private_service: RunningService, sample: SampleFiles) -> None:
    omics, sid, rs = _read_set_for_faults(private_service, sample)
    part = omics.get_read_set(sequenceStoreId=sid, id=rs, partNumber=1)["payload"].read()
    assert len(part) == 65536
    private_service.set_faults("short@GetReadSet=1/1")
    short = omics.get_read_set(sequenceStoreId=sid, id=rs, partNumber=1)["payload"].read()
    assert short == part[: len(part) // 2]  # consistent headers: only a length check notices
    for kind in ("cut", "reset"):
        private_service.set_faults(f"{kind}@GetReadSet=1/1")
        with pytest.raises((ResponseStreamingError, ClientError, ConnectionError)):
            omics.get_read_set(sequenceStoreId=sid, id=rs, partNumber=1)["payload"].read()
    private_service.set_faults("")
    assert omics.get_read_set(sequenceStoreId=sid, id=rs, partNumber=1)["payload"].read() == part


def test_a_dropped_complete_answer_leaves_the_read_set_made(
    private_service: RunningService, sample: SampleFiles
) -> None:
    """``drop``: Complete runs to the end, then the connection closes without an answer. The
    client (retries off) gets an error, yet the read set exists and becomes ACTIVE: it cannot
    tell from the call alone, and retrying it blindly finds the upload gone (issue 13)."""
    omics = private_service.client()
    sid = omics.create_sequence_store(name="drop")["id"]
    upload = omics.create_multipart_read_set_upload(
        sequenceStoreId=sid, sourceFileType="FASTQ", subjectId="s", sampleId="x", name="dropped"
    )
    checksum = omics.upload_read_set_part(
        sequenceStoreId=sid, uploadId=upload["uploadId"], partSource="SOURCE1", partNumber=1,
        payload=sample.fastq1.read_bytes(),
    )["checksum"]  # fmt: skip
    parts = [{"partNumber": 1, "partSource": "SOURCE1", "checksum": checksum}]
    private_service.set_faults("drop@CompleteMultipartReadSetUpload=1/1")
    with pytest.raises(ConnectionClosedError):
        omics.complete_multipart_read_set_upload(
            sequenceStoreId=sid, uploadId=upload["uploadId"], parts=parts
        )
    private_service.drain()
    read_sets = omics.list_read_sets(sequenceStoreId=sid)["readSets"]
    assert [(r["name"], r["status"]) for r in read_sets] == [("dropped", "ACTIVE")]
    assert download(omics, sid, read_sets[0]["id"]) == sample.fastq1.read_bytes()
    assert omics.list_multipart_read_set_uploads(sequenceStoreId=sid)["uploads"] == []
    stats = private_service.admin("GET", "stats")
    assert stats["faults"]["injected"] == {"drop:CompleteMultipartReadSetUpload": 1}
    assert stats["requests"]["CompleteMultipartReadSetUpload"] == 1
    private_service.set_faults("")
    with pytest.raises(ClientError) as excinfo:  # the blind retry
        omics.complete_multipart_read_set_upload(
            sequenceStoreId=sid, uploadId=upload["uploadId"], parts=parts
        )
    assert error_of(excinfo) == ("ResourceNotFoundException", 404)
    assert len(omics.list_read_sets(sequenceStoreId=sid)["readSets"]) == 1


def test_a_dropped_answer_is_lost_for_errors_and_data_too(private_service: RunningService) -> None:
    omics = private_service.client()
    private_service.set_faults("drop@GetSequenceStore,ListSequenceStores=1/2")
    omics.list_sequence_stores()
    with pytest.raises(ConnectionClosedError):  # the second call of each operation
        omics.list_sequence_stores()
    with pytest.raises(ClientError) as excinfo:  # an error answer that is not dropped...
        omics.get_sequence_store(id="1234567890")
    assert error_of(excinfo) == ("ResourceNotFoundException", 404)
    with pytest.raises(ConnectionClosedError):  # ...and one that is
        omics.get_sequence_store(id="1234567890")
    omics.list_sequence_stores()  # other connections and later calls are unaffected


def test_bandwidth_paces_each_body_on_the_due_time_of_its_bytes() -> None:
    """A fake clock: the pacer sleeps until the bytes sent so far are due, so a late wake-up
    is made up by the next chunk instead of adding up."""
    now = [100.0]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    async def body() -> None:
        pacer = Pacer(1000, clock=lambda: now[0], sleep=sleep)
        await pacer.sent(500)  # due at +0.5 s
        now[0] += 0.3  # the event loop woke us 0.3 s late
        await pacer.sent(500)  # due at +1.0 s, now at +0.8 s: 0.2 s more
        now[0] += 1.0  # a long stall: the next chunk is already overdue, so no sleep
        await pacer.sent(500)

    asyncio.run(body())
    assert sleeps == pytest.approx([0.5, 0.2])
    with pytest.raises(ValueError):
        Pacer(0)


def test_bandwidth_fault_serves_exact_bytes(private_service: RunningService, sample: SampleFiles) -> None:
    omics, sid, rs = _read_set_for_faults(private_service, sample)
    expected = download(omics, sid, rs)
    private_service.set_faults("bandwidth@GetReadSet=50MiB")
    assert download(omics, sid, rs) == expected
    injected = private_service.admin("GET", "stats")["faults"]["injected"]
    assert injected.get("bandwidth:GetReadSet", 0) >= 1  # the paced path really served it


def test_rate_limit_preset_throttles_bursts(private_service: RunningService) -> None:
    omics = private_service.client()
    store = omics.create_sequence_store(name="rate")
    private_service.set_faults("preset=aws")
    outcomes = []
    for _ in range(8):  # ListReadSets is limited to 5 per second
        try:
            omics.list_read_sets(sequenceStoreId=store["id"])
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])
    assert "ThrottlingException" in outcomes
    assert outcomes[0] == "ok"


def test_latency_rule_is_applied(private_service: RunningService) -> None:
    private_service.set_faults("latency@ListSequenceStores=1ms")
    private_service.client().list_sequence_stores()
    assert private_service.admin("GET", "stats")["faults"]["spec"] == "latency@ListSequenceStores=1ms"


@pytest.mark.parametrize("spec", ["bogus=1", "latency=1e400s", "rate=nan"])
def test_serve_rejects_a_bad_fault_spec(tmp_path: Path, spec: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "omicsfs", "serve", "--data-dir", str(tmp_path), "--faults", spec],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert spec.split("=")[0] in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_binds_loopback_by_default(private_service: RunningService) -> None:
    assert private_service.url.startswith("http://127.0.0.1:")


def test_admin_archive_command_and_conflict(private_service: RunningService, sample: SampleFiles) -> None:
    omics, sid, rs = _read_set_for_faults(private_service, sample)
    result = subprocess.run(
        [sys.executable, "-m", "omicsfs", "admin", "--endpoint-url", private_service.url, "archive", sid, rs],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert omics.get_read_set_metadata(sequenceStoreId=sid, id=rs)["status"] == "ARCHIVED"
    with pytest.raises(ClientError) as excinfo:
        omics.get_read_set(sequenceStoreId=sid, id=rs, partNumber=1)
    assert error_of(excinfo) == ("ConflictException", 409)
    assert "activation" in excinfo.value.response["Error"]["Message"]
    again = subprocess.run(
        [sys.executable, "-m", "omicsfs", "admin", "--endpoint-url", private_service.url, "archive", sid, rs],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 1
    assert "409" in again.stderr


def test_botocore_default_config_fails_without_disabling_host_prefix(private_service: RunningService) -> None:
    """Why README insists on inject_host_prefix=False: botocore would prepend control-storage-."""
    import boto3

    omics = boto3.client(
        "omics", endpoint_url=private_service.url, region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2),
    )  # fmt: skip
    with pytest.raises(Exception, match=r"control-storage-127\.0\.0\.1"):
        omics.list_sequence_stores()
