"""backend/omics.py on a hand-made boto3 stand-in: pacing, pagination, retries and ``_require``.

The stand-in answers from queued responses and records the fake-clock time of every call. Its
methods run on the trio thread (``inline_threads``): with real worker threads the MockClock could
jump while a call is in flight and the recorded times would no longer be when the call was made.
The pacing under test is decided before the thread starts, so nothing it checks is bypassed. The
real boto3 client against the local service is tested in tests/service and tests/write.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import botocore.exceptions
import pytest
import trio

from omicsfs.backend.errors import AccessDenied, AmbiguousOutcome, NotFound, TransportFailure
from omicsfs.backend.models import JobKind, ObjectKind, PartSource, StoredFile, StoreKind
from omicsfs.backend.omics import UPLOAD_CONTROL_OPERATIONS, OmicsBackend
from omicsfs.backend.stats import BackendStats
from omicsfs.config import BackendLimits, RetryPolicy

FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.1)


@dataclass
class Call:
    method: str
    kwargs: dict[str, Any]
    at: float


class FakeOmicsClient:
    """Any method: records the call, then pops its next queued answer (an exception is raised);
    with nothing queued it answers ``default(method, kwargs)``."""

    def __init__(self, default: Callable[[str, dict[str, Any]], Any] | None = None) -> None:
        self.calls: list[Call] = []
        self.queued: dict[str, list[Any]] = {}
        self.default = default or (lambda method, kwargs: {})

    def queue(self, method: str, *answers: Any) -> None:
        self.queued.setdefault(method, []).extend(answers)

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(**kwargs: Any) -> Any:
            self.calls.append(Call(method, kwargs, _now()))
            answers = self.queued.get(method)
            answer = answers.pop(0) if answers else self.default(method, kwargs)
            if isinstance(answer, BaseException):
                raise answer
            return answer

        return call

    def of(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]


def _now() -> float:
    try:
        return trio.current_time()
    except RuntimeError:  # on a worker thread
        return trio.from_thread.run_sync(trio.current_time)


@pytest.fixture
def inline_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    async def run_inline(function: Callable[..., Any], *args: Any, **_: Any) -> Any:
        await trio.lowlevel.checkpoint()
        return function(*args)

    monkeypatch.setattr(trio.to_thread, "run_sync", run_inline)


def backend_on(client: FakeOmicsClient, limits: BackendLimits | None = None) -> OmicsBackend:
    return OmicsBackend(client, limits or BackendLimits(retry=FAST_RETRY), BackendStats())  # type: ignore[arg-type]


def client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    response: Any = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return botocore.exceptions.ClientError(response, "op")


def gaps(calls: list[Call]) -> list[float]:
    return [later.at - earlier.at for earlier, later in itertools.pairwise(calls)]


# -- pacing ---------------------------------------------------------------------------------------


@pytest.mark.trio
@pytest.mark.usefixtures("inline_threads")
async def test_fifty_creates_are_never_two_within_one_second() -> None:
    """The upload-control quota is 1 per second and not adjustable; at the default 0.9/s with a
    burst of 1, fifty files written at once still make their Creates more than a second apart."""
    client = FakeOmicsClient(lambda method, kwargs: {"uploadId": f"u{len(client.calls)}"})
    backend = backend_on(client)  # the default limits: upload control at 0.9 per second
    assert backend.limits.upload_control_tps == 0.9

    async with trio.open_nursery() as nursery:
        for index in range(50):
            nursery.start_soon(backend.create_upload, "1234567890", {"name": f"s{index}"})

    creates = client.of("create_multipart_read_set_upload")
    assert len(creates) == 50
    assert min(gaps(creates)) >= 1 / 0.9 - 1e-9
    assert backend.stats.rate_limit_waits == 49
    assert backend.stats.api_calls["CreateMultipartReadSetUpload"] == 50


@pytest.mark.trio
@pytest.mark.usefixtures("inline_threads")
async def test_create_complete_and_abort_each_have_their_own_one_per_second_bucket() -> None:
    answers = {
        "create_multipart_read_set_upload": {"uploadId": "u"},
        "complete_multipart_read_set_upload": {"readSetId": "r"},
        "abort_multipart_read_set_upload": {},
    }
    client = FakeOmicsClient(lambda method, kwargs: answers[method])
    backend = backend_on(client)
    for _ in range(4):
        await backend.create_upload("1", {"name": "n"})
        await backend.complete_upload("1", "u", [])
        await backend.abort_upload("1", "u")
    for method in answers:
        assert min(gaps(client.of(method))) >= 1 / 0.9 - 1e-9
    # One call of each operation in the same instant: the quota is per operation.
    first = {method: client.of(method)[0].at for method in answers}
    assert len(set(first.values())) == 1
    assert len(UPLOAD_CONTROL_OPERATIONS) == 3


@pytest.mark.trio
@pytest.mark.usefixtures("inline_threads")
async def test_metadata_calls_burst_to_the_quota_then_pace_at_it() -> None:
    client = FakeOmicsClient(lambda method, kwargs: {"id": kwargs.get("id", "x"), "files": {}})
    backend = backend_on(client, BackendLimits(metadata_tps=5.0, retry=FAST_RETRY))
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for index in range(15):
            nursery.start_soon(backend.get_read_set_metadata, "1", str(index))
    times = sorted(call.at - start for call in client.calls)
    assert times[:5] == [0.0] * 5
    assert times[5:] == pytest.approx([0.2 * i for i in range(1, 11)])
    # Listing and metadata share one bucket (one quota); part fetches have their own.
    await backend.list_read_sets("1")
    assert client.calls[-1].at - start == pytest.approx(2.2)


@pytest.mark.trio
@pytest.mark.usefixtures("inline_threads")
async def test_part_fetches_are_paced_apart_from_metadata() -> None:
    client = FakeOmicsClient(lambda method, kwargs: {"payload": FakeBody(b"x")})
    backend = backend_on(client, BackendLimits(metadata_tps=5.0, get_read_set_tps=30.0, retry=FAST_RETRY))
    source = PartSource(ObjectKind.READ_SET, "1", "2", StoredFile.SOURCE1)
    start = trio.current_time()
    for number in range(1, 31):
        await backend.open_part(source, number)
    assert all(call.at == start for call in client.calls)  # 30 at once: the GetReadSet burst
    await backend.open_part(source, 31)
    assert client.calls[-1].at - start == pytest.approx(1 / 30)
    assert client.calls[0].kwargs == {
        "sequenceStoreId": "1", "id": "2", "file": "SOURCE1", "partNumber": 1,
    }  # fmt: skip


# -- pagination and conversion ----------------------------------------------------------------------


@pytest.mark.trio
@pytest.mark.usefixtures("inline_threads")
async def test_listings_follow_next_tokens_to_the_last_page() -> None:
    client = FakeOmicsClient()
    created = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    page = [{"id": f"{n}", "name": f"rs{n}", "status": "ACTIVE", "fileType": "BAM", "creationTime": created,
             "etag": {"algorithm": "BAM_MD5up", "source1": "e"}} for n in range(3)]  # fmt: skip
    client.queue(
        "list_read_sets",
        {"readSets": page[:1], "nextToken": "t1"},
        {"readSets": page[1:2], "nextToken": "t2"},
        {"readSets": page[2:]},
    )
    backend = backend_on(client)
    read_sets = await backend.list_read_sets("4242")
    assert [rs.name for rs in read_sets] == ["rs0", "rs1", "rs2"]
    assert {rs.store_id for rs in read_sets} == {"4242"}
    assert read_sets[0].creation_time == created.timestamp()
    assert read_sets[0].etag_source1 == "e"
    assert [call.kwargs for call in client.calls] == [
        {"maxResults": 100, "sequenceStoreId": "4242"},
        {"maxResults": 100, "sequenceStoreId": "4242", "nextToken": "t1"},
        {"maxResults": 100, "sequenceStoreId": "4242", "nextToken": "t2"},
    ]
    assert backend.stats.api_calls["ListReadSets"] == 3


@pytest.mark.trio
@pytest.mark.usefixtures("inline_threads")
@pytest.mark.parametrize(
    ("store_kind", "job_kind", "method", "key", "store_arg"),
    [
        (StoreKind.SEQUENCE, JobKind.IMPORT, "list_read_set_import_jobs", "importJobs", "sequenceStoreId"),
        (StoreKind.SEQUENCE, JobKind.EXPORT, "list_read_set_export_jobs", "exportJobs", "sequenceStoreId"),
        (StoreKind.SEQUENCE, JobKind.ACTIVATION, "list_read_set_activation_jobs", "activationJobs",
         "sequenceStoreId"),
        (StoreKind.REFERENCE, JobKind.IMPORT, "list_reference_import_jobs", "importJobs", "referenceStoreId"),
    ],
)  # fmt: skip
async def test_each_job_kind_is_listed_by_its_own_call(
    store_kind: StoreKind, job_kind: JobKind, method: str, key: str, store_arg: str
) -> None:
    client = FakeOmicsClient()
    client.queue(method, {key: [{"id": "j1", "status": "COMPLETED"}, {"id": "j2"}]})
    jobs = await backend_on(client).list_jobs(store_kind, "77", job_kind)
    assert [(job.id, job.status, job.kind, job.store_id) for job in jobs] == [
        ("j1", "COMPLETED", job_kind, "77"), ("j2", "", job_kind, "77"),
    ]  # fmt: skip
    assert client.calls[0].method == method
    assert client.calls[0].kwargs[store_arg] == "77"


@pytest.mark.trio
@pytest.mark.usefixtures("inline_threads")
async def test_metadata_gives_the_layout_of_each_file_that_has_one() -> None:
    client = FakeOmicsClient()
    client.queue("get_read_set_metadata", {
        "id": "9", "name": "", "status": "ACTIVE", "fileType": "FASTQ",
        "etag": {"source1": "a", "source2": "b"}, "ResponseMetadata": {"HTTPStatusCode": 200},
        "files": {
            "source1": {"contentLength": 300, "partSize": 100, "totalParts": 3},
            "source2": {"contentLength": 50, "partSize": 100, "totalParts": 1},
            "index": None,
        },
    })  # fmt: skip
    summary, files = await backend_on(client).get_read_set_metadata("1", "9")
    assert summary.name == "9"  # an empty name falls back to the ID
    assert files.validator == summary.validator
    assert {name: (f.content_length, f.total_parts) for name, f in files.files.items()} == {
        "source1": (300, 3), "source2": (50, 1),
    }  # fmt: skip


@pytest.mark.trio
@pytest.mark.usefixtures("inline_threads")
async def test_get_job_returns_the_document_without_response_metadata() -> None:
    client = FakeOmicsClient()
    client.queue("get_read_set_export_job", {"id": "j", "status": "RUNNING", "ResponseMetadata": {"x": 1}})
    document = await backend_on(client).get_job(StoreKind.SEQUENCE, "1", JobKind.EXPORT, "j")
    assert document == {"id": "j", "status": "RUNNING"}


# -- retries and _require ---------------------------------------------------------------------------


@pytest.mark.trio
@pytest.mark.usefixtures("inline_threads")
async def test_a_part_answered_200_without_its_checksum_is_a_lost_connection_and_sent_again() -> None:
    """botocore parses a 200 whose body was cut off as an empty answer: re-sending a part number
    replaces the part, so the part is simply sent again."""
    client = FakeOmicsClient()
    client.queue("upload_read_set_part", {"ResponseMetadata": {"HTTPStatusCode": 200}}, {"checksum": "c1"})
    backend = backend_on(client)
    assert await backend.upload_part("1", "u", "SOURCE1", 1, b"part") == "c1"
    assert len(client.of("upload_read_set_part")) == 2
    assert backend.stats.retries["UploadReadSetPart"] == 1


@pytest.mark.trio
@pytest.mark.usefixtures("inline_threads")
@pytest.mark.parametrize(
    ("call", "method", "key"),
    [
        (lambda b: b.create_upload("1", {"name": "n"}), "create_multipart_read_set_upload", "uploadId"),
        (lambda b: b.complete_upload("1", "u", []), "complete_multipart_read_set_upload", "readSetId"),
        (lambda b: b.upload_part("1", "u", "SOURCE1", 1, b"p"), "upload_read_set_part", "checksum"),
    ],
    ids=["create", "complete", "part"],
)
async def test_an_answer_without_its_key_is_never_read_as_a_reply(
    call: Callable[[OmicsBackend], Any], method: str, key: str
) -> None:
    """Create and Complete are not blindly re-sent (a second Create or Complete is not the same
    request): a missing answer is never read as an empty ID. Create's is a retryable
    TransportFailure; Complete's leaves unknown whether the read set was made, which the write
    engine settles by asking the service (fs/write/reconcile.py)."""
    client = FakeOmicsClient()
    expected = AmbiguousOutcome if method == "complete_multipart_read_set_upload" else TransportFailure
    with pytest.raises(expected, match=f"no {key}|{key}") as raised:
        await call(backend_on(client))
    assert isinstance(raised.value, AmbiguousOutcome) or raised.value.retryable
    assert client.of(method)


@pytest.mark.trio
@pytest.mark.usefixtures("inline_threads")
async def test_bytes_uploaded_count_each_part_once_however_often_it_was_sent() -> None:
    client = FakeOmicsClient()
    client.queue("upload_read_set_part", TransportFailure("UploadReadSetPart", "reset"), {"checksum": "c"})
    backend = backend_on(client)
    assert await backend.upload_part("1", "u", "SOURCE1", 1, b"12345") == "c"
    assert backend.stats.bytes_uploaded == 5


@pytest.mark.trio
@pytest.mark.usefixtures("inline_threads")
async def test_throttling_is_retried_and_counted_per_attempt() -> None:
    client = FakeOmicsClient(lambda method, kwargs: {"sequenceStores": []})
    client.queue("list_sequence_stores", client_error("ThrottlingException", 400),
                 client_error("ServiceUnavailableException", 503))  # fmt: skip
    backend = backend_on(client)
    assert await backend.list_stores(StoreKind.SEQUENCE) == []
    stats = backend.stats
    assert stats.api_calls["ListSequenceStores"] == 3
    assert stats.api_errors == {
        "ListSequenceStores:ThrottlingException": 1, "ListSequenceStores:ServiceUnavailableException": 1,
    }  # fmt: skip
    assert stats.throttled == 1
    assert stats.retries["ListSequenceStores"] == 2


@pytest.mark.trio
@pytest.mark.usefixtures("inline_threads")
async def test_an_error_that_cannot_succeed_is_raised_after_one_call() -> None:
    client = FakeOmicsClient()
    client.queue("get_reference_metadata", client_error("AccessDeniedException", 403))
    with pytest.raises(AccessDenied):
        await backend_on(client).get_reference_metadata("1", "2")
    assert len(client.calls) == 1


@pytest.mark.trio
@pytest.mark.usefixtures("inline_threads")
async def test_a_part_answer_without_a_body_is_a_transport_failure_for_the_caller_to_retry() -> None:
    client = FakeOmicsClient()
    source = PartSource(ObjectKind.REFERENCE, "1", "2", StoredFile.SOURCE)
    with pytest.raises(TransportFailure, match="without a body"):
        await backend_on(client).open_part(source, 1)
    assert len(client.calls) == 1  # one attempt: the block cache retries and resumes mid-part
    assert client.calls[0].method == "get_reference"


@pytest.mark.trio
@pytest.mark.usefixtures("inline_threads")
async def test_a_failed_item_of_a_batch_delete_is_raised() -> None:
    client = FakeOmicsClient()
    client.queue("batch_delete_read_set", {"errors": [{"id": "9", "code": "ResourceNotFoundException",
                                                       "message": "gone"}]})  # fmt: skip
    backend = backend_on(client)
    with pytest.raises(NotFound, match="9: gone"):
        await backend.delete_read_set("1", "9")
    client.queue("batch_delete_read_set", {"errors": []})
    await backend.delete_read_set("1", "9")
    assert client.calls[-1].kwargs == {"sequenceStoreId": "1", "ids": ["9"]}


@pytest.mark.trio
async def test_a_part_body_fills_the_callers_memory_and_its_errors_are_classified() -> None:
    body = FakeBody(b"a" * 10, fail_after=1)
    client = FakeOmicsClient(lambda method, kwargs: {"payload": body})
    backend = backend_on(client)
    part = await backend.open_part(PartSource(ObjectKind.READ_SET, "1", "2", StoredFile.SOURCE1), 1)
    memory = bytearray(16)
    assert part.readinto(memoryview(memory)) == 10
    assert bytes(memory[:10]) == b"a" * 10
    with pytest.raises(TransportFailure):
        part.readinto(memoryview(memory))
    part.close()
    assert body.closed  # a body left mid-way is closed, not returned to the pool


class FakeBody:
    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        self.data = data
        self.reads = 0
        self.fail_after = fail_after
        self.closed = False

    def read(self, amount: int) -> bytes:
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise botocore.exceptions.ResponseStreamingError(error="reset")
        chunk, self.data = self.data[:amount], self.data[amount:]
        return chunk

    def close(self) -> None:
        self.closed = True
