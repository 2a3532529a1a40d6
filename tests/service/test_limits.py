"""Request limits and hostile input: bounded heads and bodies, and no input that makes a 500.

Raw sockets send what botocore never would (a header that never ends, a body that lies about its
length, JSON nested 100,000 deep); every answer must be a 4xx in the rest-json error shape while
other clients keep being served.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from typing import Any
from xml.etree import ElementTree

import pytest
from botocore.exceptions import ClientError
from botocore.model import Shape

from omicsfs.localservice.app import MAX_JSON_BODY
from omicsfs.localservice.connection import MAX_REQUEST_HEAD
from omicsfs.localservice.protocol import STORAGE_OPERATIONS, serialize_output, service_model
from tests.localservice import RunningService
from tests.service.helpers import ROLE, error_of

LABEL = "1234567890"  # fills every {label} of a URI: a well-formed ID nothing has


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Message
    document: dict[str, Any]  # a JSON body
    body: bytes

    def assert_error(self, status: int, code: str) -> None:
        """The rest-json error shape botocore parses."""
        assert self.status == status, self
        assert self.headers["x-amzn-ErrorType"] == code
        assert self.headers["x-amzn-RequestId"]
        assert self.document["__type"] == code
        assert self.document["message"]


class Connection:
    """A raw TCP connection with one buffered reader, so pipelined answers are read one by one."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=60)  # a deadline, never a wait
        self.reader = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self) -> Answer:
        status_line = self.reader.readline()
        assert status_line, "the connection closed without an answer"
        headers = http.client.parse_headers(self.reader)
        body = self.reader.read(int(headers["content-length"]))
        document = json.loads(body) if body and headers["content-type"] == "application/json" else {}
        return Answer(int(status_line.split()[1]), headers, document, body)

    def closed(self) -> bool:
        return self.reader.read(1) == b""

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


@pytest.fixture
def connect(service: RunningService) -> Iterator[Callable[..., Connection]]:
    """Opens raw connections to the service (its S3 endpoint with ``s3=True``); closes them."""
    opened: list[Connection] = []

    def open_one(s3: bool = False) -> Connection:
        address = urllib.parse.urlsplit(service.s3_url if s3 else service.url)
        opened.append(Connection((str(address.hostname), int(address.port or 80))))
        return opened[-1]

    yield open_one
    for connection in opened:
        connection.close()


def request(service: RunningService, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, Any]]:
    """One raw request (no botocore validation or serialization on the way)."""
    address = urllib.parse.urlsplit(service.url)
    assert address.hostname is not None
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers={"content-type": "application/json"})
        response = conn.getresponse()
        raw = response.read()
        document = json.loads(raw) if raw else {}
        if response.status >= 400:
            assert response.getheader("x-amzn-ErrorType") == document.get("__type"), raw
        return response.status, document
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# Bounded heads and bodies, while other clients are served


def test_a_slow_oversized_header_is_refused_while_others_are_served(
    service: RunningService, connect: Callable[[], Connection]
) -> None:
    omics = service.client()
    slow = connect()
    slow.send(b"POST /sequencestores HTTP/1.1\r\nHost: local\r\nX-Padding: ")
    sent = 0
    while sent <= MAX_REQUEST_HEAD:  # the header grows 4 KiB at a time and never ends
        slow.send(b"a" * 4096)
        sent += 4096
        assert "sequenceStores" in omics.list_sequence_stores()  # answered meanwhile
    answer = slow.answer()
    answer.assert_error(400, "ValidationException")
    assert str(MAX_REQUEST_HEAD) in answer.document["message"]
    assert slow.closed()
    omics.list_sequence_stores()


def test_the_s3_endpoint_refuses_an_oversized_header_in_s3s_xml(connect: Callable[..., Connection]) -> None:
    connection = connect(s3=True)
    connection.send(b"GET /bucket/key HTTP/1.1\r\nHost: l\r\nX-Padding: " + b"a" * MAX_REQUEST_HEAD)
    answer = connection.answer()
    assert answer.status == 400
    error = ElementTree.fromstring(answer.body)
    assert (error.tag, error.findtext("Code")) == ("Error", "RequestHeaderSectionTooLarge")
    assert error.findtext("MaxSizeAllowed") == str(MAX_REQUEST_HEAD)
    assert connection.closed()
    again = connect(s3=True)  # the endpoint still answers a request of normal size
    again.send(b"GET /no-such-access-point/key HTTP/1.1\r\nHost: l\r\n\r\n")
    answered = again.answer()
    assert answered.status in (403, 404)
    assert ElementTree.fromstring(answered.body).tag == "Error"


HEAD = b"GET /sequencestore/" + LABEL.encode() + b" HTTP/1.1\r\nHost: l\r\nX-Padding: %s\r\n\r\n"


def test_a_header_within_the_bound_is_served(connect: Callable[[], Connection]) -> None:
    connection = connect()
    connection.send(HEAD % (b"a" * (MAX_REQUEST_HEAD // 2)))
    connection.answer().assert_error(404, "ResourceNotFoundException")  # routed: no such store


def test_the_bound_is_per_request_on_a_kept_alive_connection(connect: Callable[[], Connection]) -> None:
    """Heads add up to far more than the bound over one connection, and pipelined ones arrive
    together in one packet: each is measured on its own."""
    connection = connect()
    head = HEAD % (b"p" * 2000)
    for _ in range(2 * MAX_REQUEST_HEAD // len(head)):
        connection.send(head)
        connection.answer().assert_error(404, "ResourceNotFoundException")
    connection.send(head * 3)
    for _ in range(3):
        connection.answer().assert_error(404, "ResourceNotFoundException")


def test_a_body_declared_too_large_is_refused_before_it_is_sent(connect: Callable[[], Connection]) -> None:
    connection = connect()
    connection.send(
        b"POST /sequencestores HTTP/1.1\r\nHost: l\r\ncontent-type: application/json\r\n"
        b"content-length: 400000000\r\n\r\n"
    )
    answer = connection.answer()  # not one byte of the 400 MB was sent
    answer.assert_error(413, "RequestEntityTooLargeException")
    assert str(MAX_JSON_BODY) in answer.document["message"]


def test_a_slow_chunked_body_is_refused_once_past_the_bound_while_others_are_served(
    service: RunningService, connect: Callable[[], Connection]
) -> None:
    omics = service.client()
    slow = connect()
    slow.send(
        b"POST /sequencestores HTTP/1.1\r\nHost: l\r\ncontent-type: application/json\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
    )
    chunk = b" " * (1024 * 1024)
    sent = 0
    while sent <= MAX_JSON_BODY:
        slow.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        sent += len(chunk)
        omics.list_sequence_stores()
    slow.answer().assert_error(413, "RequestEntityTooLargeException")


def test_botocore_sees_an_oversized_json_body_as_413(omics: Any) -> None:
    """The model caps an access policy at 100,000 characters but botocore does not check it."""
    with pytest.raises(ClientError) as excinfo:
        omics.put_s3_access_policy(
            s3AccessPointArn="arn:aws:s3:us-west-2:123456789012:accesspoint/none",
            s3AccessPolicy="x" * (MAX_JSON_BODY + 1),
        )
    assert error_of(excinfo) == ("RequestEntityTooLargeException", 413)
    omics.list_sequence_stores()  # the connection pool is still usable


# --------------------------------------------------------------------------------------------
# No input makes a 500: every integer and timestamp the model has, out of range


BAD_JSON_TIMESTAMPS = ["1e30", "-1e30", "1e400", "NaN", "-Infinity", str(10**30), '"1e30"',
                       '"+275760-09-13T00:00:00Z"', '"9999-12-31T23:59:59-23:59"', '"yesterday"']  # fmt: skip
BAD_JSON_INTEGERS = [str(10**30), str(-(10**30)), str(2**63), "1e3", "1.5", "NaN", "Infinity", '"1"', "true"]
BAD_QUERY_INTEGERS = ["+1", " 1", "1_0", "\u0661", "1e3", "9" * 30, "", "0x10", "-" + "9" * 5000]


def _members(shape: Shape, trail: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Shape]]:
    """Every integer and timestamp member reachable in a body, as its path of member names."""
    if shape.type_name == "structure":
        for name, member in shape.members.items():  # type: ignore[attr-defined]
            yield from _members(member, (*trail, name))
    elif shape.type_name == "list":
        yield from _members(shape.member, (*trail, "[]"))  # type: ignore[attr-defined]
    elif shape.type_name in ("integer", "long", "timestamp"):
        yield trail, shape


def _json_at(trail: tuple[str, ...], raw: str) -> str:
    """A JSON document with ``raw`` (JSON text) at the member path ``trail``."""
    text = raw
    for step in reversed(trail):
        text = f"[{text}]" if step == "[]" else f'{{"{step}": {text}}}'
    return text


def _route(operation: str) -> tuple[str, str]:
    """The method and path of an operation, its labels filled with LABEL."""
    http = service_model().operation_model(operation).http
    uri = http["requestUri"].split("?", 1)[0]
    return http["method"], "/".join(LABEL if part.startswith("{") else part for part in uri.split("/"))


def _cases() -> Iterator[tuple[str, str, str, str]]:
    """(operation, method, path, body) for every bad value in every numeric input member."""
    model = service_model()
    for name in STORAGE_OPERATIONS:
        op = model.operation_model(name)
        if op.input_shape is None:
            continue
        method, path = _route(name)
        for member_name, member in op.input_shape.members.items():
            location = member.serialization.get("location")
            wire = member.serialization.get("name", member_name)
            if location == "querystring" and member.type_name in ("integer", "long"):
                for bad in BAD_QUERY_INTEGERS:
                    yield name, method, f"{path}?{urllib.parse.urlencode({wire: bad})}", ""
            elif location is None:
                for trail, shape in _members(member, (member_name,)):
                    values = BAD_JSON_TIMESTAMPS if shape.type_name == "timestamp" else BAD_JSON_INTEGERS
                    for bad in values:
                        yield name, method, path, _json_at(trail, bad)


def test_out_of_range_numbers_and_timestamps_anywhere_in_the_model_are_400(service: RunningService) -> None:
    cases = list(_cases())
    covered = {case[0] for case in cases}
    assert {"ListReadSets", "ListSequenceStores", "GetReadSet", "CompleteMultipartReadSetUpload",
            "ListReadSetUploadParts", "ListReferenceImportJobs"} <= covered  # fmt: skip
    failures = []
    for operation, method, path, body in cases:
        status, document = request(service, method, path, body.encode())
        if status != 400 or document.get("__type") != "ValidationException":
            failures.append((operation, path, body, status, document))
    assert failures == []


@pytest.mark.parametrize(
    "operation",
    ["ListReadSets", "CreateSequenceStore", "StartReadSetImportJob", "CompleteMultipartReadSetUpload"],
)
@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"filter": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"name": ' + '{"a": ' * 100_000 + "1" + "}" * 100_000 + "}",
        '{"name": "x", "name": NaN}',
        "\xff\xfe not utf-8",
        '"a string, not an object"',
    ],
    ids=["array", "nested-filter", "nested-object", "nan", "not-utf8", "not-object"],
)
def test_hostile_json_bodies_are_400(service: RunningService, operation: str, body: str) -> None:
    method, path = _route(operation)
    status, document = request(service, method, path, body.encode("latin-1" if "\xff" in body else "utf-8"))
    assert (status, document["__type"]) == (400, "ValidationException"), document


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        ("CreateSequenceStore", '{"name": "ok", "description": "\\ud800"}'),
        ("ListReadSets", '{"filter": {"sampleId": "a\\udfffb"}}'),
        ("CreateReferenceStore", '{"name": "ok", "tags": {"\\ud800": "v"}}'),
    ],
)
def test_unpaired_surrogates_are_400(service: RunningService, operation: str, body: str) -> None:
    """JSON can spell a lone surrogate (``"\\ud800"``); no UTF-8 store or response can hold one."""
    method, path = _route(operation)
    status, document = request(service, method, path, body.encode())
    assert (status, document["__type"]) == (400, "ValidationException"), document
    assert "Unicode" in document["message"]


def test_extreme_but_valid_time_bounds_are_answered(
    service: RunningService, omics: Any, store: dict[str, Any]
) -> None:
    path = f"/sequencestore/{store['id']}/readsets"
    for bound in ('"0001-01-01T00:00:00Z"', '"9999-12-31T23:59:59.999Z"', "0", "253402300799"):
        for member in ("createdAfter", "createdBefore"):
            status, document = request(service, "POST", path, _json_at(("filter", member), bound).encode())
            assert status == 200, (member, bound, document)
            assert document["readSets"] == []


def test_a_result_missing_a_required_member_is_a_bug_not_an_answer() -> None:
    """Pure logic: the serializer refuses what the model marks required but the result lacks."""
    op = service_model().operation_model("CompleteMultipartReadSetUpload")
    assert serialize_output(op, {"readSetId": "1234567890"}) == b'{"readSetId":"1234567890"}'
    with pytest.raises(KeyError, match="readSetId"):
        serialize_output(op, {})


@pytest.mark.parametrize(
    "byte_range",
    [
        "bytes=" + "9" * 120 + "-",
        "bytes=" + "9" * 60 + "-" + "9" * 60,
        "bytes=\u0661-\u0662",  # Arabic-Indic digits: int() would take them
        "bytes=+1-2",
        "bytes=1-2-3",
        "9" * 128,  # past the model's 127 characters
    ],
)
def test_hostile_range_headers_are_4xx(omics: Any, reference_arn: str, byte_range: str) -> None:
    store_id, ref_id = reference_arn.split("referenceStore/")[1].split("/reference/")
    with pytest.raises(ClientError) as excinfo:
        omics.get_reference(referenceStoreId=store_id, id=ref_id, partNumber=1, range=byte_range)
    assert error_of(excinfo) in (("ValidationException", 400), ("RangeNotSatisfiableException", 416))


@pytest.mark.parametrize(
    ("key", "refused_at_start"),
    [("a\u0000b", True), ("a/\u0000/b", True), ("x" * 1024, False), ("/".join(["y" * 255] * 4), False)],
    ids=["nul", "nul-component", "long-component", "long-path"],
)
def test_hostile_s3_keys_never_fail_the_service(
    service: RunningService, store: dict[str, Any], key: str, refused_at_start: bool
) -> None:
    """The model lets an S3 key hold any 1-1024 characters; a file system does not (NUL, names
    over 255 bytes). Such a key is refused at once (NUL) or fails its item, never a 500."""
    omics = service.client()
    source = {
        "sourceFiles": {"source1": f"s3://bucket/{key}"},
        "sourceFileType": "FASTQ",
        "subjectId": "s",
        "sampleId": "x",
    }
    if refused_at_start:
        with pytest.raises(ClientError) as excinfo:
            omics.start_read_set_import_job(sequenceStoreId=store["id"], roleArn=ROLE, sources=[source])
        assert error_of(excinfo) == ("ValidationException", 400)
    else:
        started = omics.start_read_set_import_job(sequenceStoreId=store["id"], roleArn=ROLE, sources=[source])
        service.drain()
        job = omics.get_read_set_import_job(sequenceStoreId=store["id"], id=started["id"])
        assert job["sources"][0]["status"] == "FAILED"
        assert job["sources"][0]["statusMessage"]
    with pytest.raises(ClientError) as excinfo:
        omics.start_read_set_export_job(
            sequenceStoreId=store["id"], destination=f"s3://bucket/{key}/", roleArn=ROLE,
            sources=[{"readSetId": "1234567890"}],
        )  # fmt: skip
    assert error_of(excinfo) == (
        ("ValidationException", 400) if refused_at_start else ("ResourceNotFoundException", 404)
    )
