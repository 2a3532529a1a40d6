"""The S3 access subset: boto3's s3 client against the service's S3 endpoint, path-style.

Every object is found through the URI GetReadSetMetadata reports (``files.<f>.s3Access.s3Uri``),
never built from IDs, and its bytes are compared with what GetReadSet serves for the same file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    IncompleteReadError,
    ResponseStreamingError,
)

from omicsfs.sample.data import SampleFiles
from tests.localservice import RunningService
from tests.service.helpers import (
    ROLE,
    Loaded,
    StoredFile,
    download,
    error_of,
    import_reference,
    load_store,
    split_uri,
    upload_file,
)

PART = 65536  # the test service's partSize


@pytest.fixture(scope="module")
def loaded(service: RunningService, sample: SampleFiles) -> Loaded:
    return load_store(service, sample, "s3-access")


@pytest.fixture
def s3(service: RunningService) -> Iterator[Any]:
    client = service.s3_client()
    yield client
    client.close()


def expected_etag(content: bytes) -> str:
    """S3's ETag of an object stored in PART-sized parts."""
    parts = [content[i : i + PART] for i in range(0, max(len(content), 1), PART)]
    if len(parts) == 1:
        return f'"{hashlib.md5(content).hexdigest()}"'
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(joined).hexdigest()}-{len(parts)}"'


def s3_error(call: Callable[[], Any]) -> tuple[str, int]:
    with pytest.raises(ClientError) as excinfo:
        call()
    return error_of(excinfo)


# --------------------------------------------------------------------------------------------
# Objects: names, HeadObject, GetObject


def test_object_names_follow_the_real_services_rules(loaded: Loaded) -> None:
    def name(file: str) -> str:
        stored = loaded.file(file)
        assert stored.key == f"{loaded.prefix}readSet/{stored.read_set}/{stored.key.rsplit('/', 1)[1]}"
        return stored.key.rsplit("/", 1)[1]

    assert name("BAM/source1") == "NA12878.bam"
    assert name("BAM/index") == "NA12878.bam.bai"
    assert name("CRAM/source1") == "c.cram"
    assert name("CRAM/index") == "c.cram.crai"
    assert name("FASTQ/source1") == "pair_source1.fastq.gz"
    assert name("FASTQ/source2") == "pair_source2.fastq.gz"
    assert name("UBAM/source1") == "u.bam"
    assert set(loaded.files) == {
        "BAM/source1", "BAM/index", "CRAM/source1", "CRAM/index", "FASTQ/source1", "FASTQ/source2",
        "UBAM/source1",
    }  # fmt: skip


def test_imported_files_keep_their_source_names(
    service: RunningService, sample: SampleFiles, s3: Any, reference_arn: str
) -> None:
    omics = service.client()
    store = omics.create_sequence_store(name="s3-imports")
    folder = service.s3_root / "bucket" / f"s3-imports-{store['id']}"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    (folder / "HG00405.final.bam").write_bytes(sample.bam.read_bytes())
    (folder / "a" / "reads.fastq.gz").write_bytes(sample.fastq1.read_bytes())
    (folder / "b" / "reads.fastq.gz").write_bytes(sample.fastq2.read_bytes())
    uri = f"s3://bucket/{folder.name}"
    common = {"subjectId": "s", "sampleId": "x"}
    job = omics.start_read_set_import_job(
        sequenceStoreId=store["id"],
        roleArn=ROLE,
        sources=[
            {
                "sourceFiles": {"source1": f"{uri}/HG00405.final.bam"},
                "sourceFileType": "BAM",
                "referenceArn": reference_arn,
                **common,
            },
            {
                "sourceFiles": {"source1": f"{uri}/a/reads.fastq.gz", "source2": f"{uri}/b/reads.fastq.gz"},
                "sourceFileType": "FASTQ",
                **common,
            },
        ],
    )
    service.drain()
    items = omics.get_read_set_import_job(sequenceStoreId=store["id"], id=job["id"])["sources"]
    names = {}
    for item in items:
        assert item["status"] == "FINISHED"
        meta = omics.get_read_set_metadata(sequenceStoreId=store["id"], id=item["readSetId"])
        for file, info in meta["files"].items():
            bucket, key = split_uri(info["s3Access"]["s3Uri"])
            names[f"{meta['fileType']}/{file}"] = key.rsplit("/", 1)[1]
            assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == info["contentLength"]
    assert names == {
        "BAM/source1": "HG00405.final.bam",
        "BAM/index": "HG00405.final.bam.bai",
        # the same name twice: the real service inserts the source before the extension
        "FASTQ/source1": "reads_source1.fastq.gz",
        "FASTQ/source2": "reads_source2.fastq.gz",
    }


def test_every_file_of_every_type_reads_whole_and_byte_exact(loaded: Loaded, s3: Any) -> None:
    for name, stored in loaded.files.items():
        head = s3.head_object(Bucket=loaded.bucket, Key=stored.key)
        assert head["ContentLength"] == len(stored.content), name
        assert head["AcceptRanges"] == "bytes"
        assert head["ContentType"] == "binary/octet-stream"
        assert head["ETag"] == expected_etag(stored.content), name
        assert head["LastModified"].tzinfo is not None
        got = s3.get_object(Bucket=loaded.bucket, Key=stored.key)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert "ContentRange" not in got
        assert got["ETag"] == head["ETag"]
        assert got["Body"].read() == stored.content, name
    # Files bigger than a part carry a multipart ETag ("...-N"), as on the real access point.
    bam = loaded.file("BAM/source1")
    parts = -(-len(bam.content) // PART)
    assert parts > 1
    assert s3.head_object(Bucket=loaded.bucket, Key=bam.key)["ETag"].endswith(f'-{parts}"')
    index = loaded.file("BAM/index")
    assert (
        s3.head_object(Bucket=loaded.bucket, Key=index.key)["ETag"]
        == f'"{hashlib.md5(index.content).hexdigest()}"'
    )


@pytest.mark.parametrize("name", ["BAM/source1", "BAM/index", "CRAM/source1", "CRAM/index",
                                  "FASTQ/source1", "FASTQ/source2", "UBAM/source1"])  # fmt: skip
def test_ranged_gets_are_byte_exact(loaded: Loaded, s3: Any, name: str) -> None:
    stored = loaded.file(name)
    size = len(stored.content)
    rng = random.Random(name)
    ranges = [(0, 0), (size - 1, size - 1), (0, size - 1)]
    ranges += [(b - 1, b) for b in range(PART, size, PART)]  # across each part boundary
    for _ in range(12):
        first = rng.randrange(size)
        ranges.append((first, min(size - 1, first + rng.randrange(1, 200_000))))
    for first, last in ranges:
        got = s3.get_object(Bucket=loaded.bucket, Key=stored.key, Range=f"bytes={first}-{last}")
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["ContentRange"] == f"bytes {first}-{last}/{size}"
        assert got["ContentLength"] == last - first + 1
        assert got["Body"].read() == stored.content[first : last + 1], (first, last)


def test_suffix_open_and_overlong_ranges(loaded: Loaded, s3: Any) -> None:
    stored = loaded.file("BAM/source1")
    size = len(stored.content)

    def get(header: str) -> tuple[str, bytes]:
        got = s3.get_object(Bucket=loaded.bucket, Key=stored.key, Range=header)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        return got["ContentRange"], got["Body"].read()

    assert get("bytes=-100") == (f"bytes {size - 100}-{size - 1}/{size}", stored.content[-100:])
    assert get(f"bytes=-{size + 10}") == (f"bytes 0-{size - 1}/{size}", stored.content)
    assert get("bytes=1000-") == (f"bytes 1000-{size - 1}/{size}", stored.content[1000:])
    assert get(f"bytes=10-{size + 1000}") == (f"bytes 10-{size - 1}/{size}", stored.content[10:])
    head = s3.head_object(Bucket=loaded.bucket, Key=stored.key, Range="bytes=5-9")
    assert (head["ContentLength"], head["ContentRange"]) == (5, f"bytes 5-9/{size}")


def test_unsatisfiable_ranges_are_invalid_range_416(loaded: Loaded, s3: Any) -> None:
    stored = loaded.file("FASTQ/source2")
    size = len(stored.content)
    for header in (f"bytes={size}-", f"bytes={size + 5}-{size + 10}", "bytes=-0"):
        with pytest.raises(ClientError) as excinfo:
            s3.get_object(Bucket=loaded.bucket, Key=stored.key, Range=header)
        assert error_of(excinfo) == ("InvalidRange", 416)
        fields: dict[str, Any] = dict(excinfo.value.response["Error"])  # S3's own extra fields
        assert fields["ActualObjectSize"] == str(size)
        assert fields["RangeRequested"] == header


@pytest.mark.parametrize("header", ["bytes=5-2", "bytes=0-1,5-6", "items=0-1", "bytes=-"])
def test_unusable_range_headers_are_ignored_and_the_whole_object_sent(
    loaded: Loaded, s3: Any, header: str
) -> None:
    stored = loaded.file("CRAM/index")
    got = s3.get_object(Bucket=loaded.bucket, Key=stored.key, Range=header)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "ContentRange" not in got
    assert got["Body"].read() == stored.content


def test_if_match_and_if_none_match(loaded: Loaded, s3: Any) -> None:
    stored = loaded.file("UBAM/source1")
    bucket, key = loaded.bucket, stored.key
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    assert s3.get_object(Bucket=bucket, Key=key, IfMatch=etag)["Body"].read() == stored.content
    ranged = s3.get_object(Bucket=bucket, Key=key, IfMatch=etag, Range="bytes=0-9")
    assert ranged["Body"].read() == stored.content[:10]
    assert s3_error(lambda: s3.get_object(Bucket=bucket, Key=key, IfMatch='"0123"')) == (
        "PreconditionFailed",
        412,
    )
    # A failed precondition is judged before the range: 412, not 416.
    assert s3_error(
        lambda: s3.get_object(Bucket=bucket, Key=key, IfMatch='"0123"', Range="bytes=999999999-")
    ) == ("PreconditionFailed", 412)
    assert s3_error(lambda: s3.get_object(Bucket=bucket, Key=key, IfNoneMatch=etag)) == ("304", 304)
    assert s3_error(lambda: s3.head_object(Bucket=bucket, Key=key, IfNoneMatch=etag)) == ("304", 304)
    assert s3_error(lambda: s3.head_object(Bucket=bucket, Key=key, IfMatch='"0123"')) == ("412", 412)
    other = s3.get_object(Bucket=bucket, Key=key, IfNoneMatch='"0123", W/"4567"')
    assert other["Body"].read() == stored.content
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    earlier = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    assert s3_error(lambda: s3.get_object(Bucket=bucket, Key=key, IfModifiedSince=later)) == ("304", 304)
    assert s3_error(lambda: s3.get_object(Bucket=bucket, Key=key, IfUnmodifiedSince=earlier)) == (
        "PreconditionFailed",
        412,
    )
    # S3's combinations: a true If-Match overrides a false If-Unmodified-Since.
    both = s3.get_object(Bucket=bucket, Key=key, IfMatch=etag, IfUnmodifiedSince=earlier)
    assert both["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_missing_keys_and_buckets(loaded: Loaded, s3: Any) -> None:
    missing = f"{loaded.prefix}readSet/{loaded.read_sets['BAM']}/NA12878.cram"
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=loaded.bucket, Key=missing)
    assert error_of(excinfo) == ("NoSuchKey", 404)
    assert dict(excinfo.value.response["Error"])["Key"] == missing
    # The default policy covers the store's prefix only.
    outside = "elsewhere/x.bam"
    assert s3_error(lambda: s3.get_object(Bucket=loaded.bucket, Key=outside)) == ("AccessDenied", 403)
    assert s3_error(lambda: s3.head_object(Bucket=loaded.bucket, Key=missing)) == ("404", 404)
    unknown = "123456789012-0000000-000000000000000000000000-s3alias"
    key = loaded.file("BAM/source1").key
    assert s3_error(lambda: s3.get_object(Bucket=unknown, Key=key)) == ("NoSuchBucket", 404)
    assert s3_error(lambda: s3.list_objects_v2(Bucket=unknown)) == ("NoSuchBucket", 404)
    assert s3_error(lambda: s3.head_bucket(Bucket=unknown)) == ("404", 404)
    assert s3.head_bucket(Bucket=loaded.bucket)["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == (
        "us-west-2"
    )


def test_error_documents_have_s3s_xml_shape(service: RunningService, loaded: Loaded) -> None:
    key = f"{loaded.prefix}readSet/nothing-here"
    request = urllib.request.Request(f"{service.s3_url}/{loaded.bucket}/{key}")
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(request, timeout=30)
    response = excinfo.value
    assert response.code == 404
    assert response.headers["Content-Type"] == "application/xml"
    root = ET.fromstring(response.read())
    assert root.tag == "Error"  # no namespace: botocore recognises S3 errors by this root
    fields = {child.tag: child.text for child in root}
    assert fields["Code"] == "NoSuchKey"
    assert fields["Message"] == "The specified key does not exist."
    assert fields["Key"] == key
    assert fields["RequestId"] == response.headers["x-amz-request-id"]
    assert response.headers["x-amz-id-2"]


# --------------------------------------------------------------------------------------------
# Listing


def test_listing_names_every_file_with_its_size_etag_and_time(loaded: Loaded, s3: Any) -> None:
    listed = s3.list_objects_v2(Bucket=loaded.bucket, Prefix=loaded.prefix)
    assert listed["KeyCount"] == len(loaded.files)
    assert listed["IsTruncated"] is False
    assert "NextContinuationToken" not in listed
    by_key = {item["Key"]: item for item in listed["Contents"]}
    assert [item["Key"] for item in listed["Contents"]] == sorted(by_key)
    assert set(by_key) == {f.key for f in loaded.files.values()}
    for stored in loaded.files.values():
        head = s3.head_object(Bucket=loaded.bucket, Key=stored.key)
        item = by_key[stored.key]
        assert item["Size"] == len(stored.content)
        assert item["ETag"] == head["ETag"]
        assert item["LastModified"].replace(microsecond=0) == head["LastModified"]
        assert item["StorageClass"] == "STANDARD"
    # The whole bucket is this store's prefix (each store has its own access point).
    assert s3.list_objects_v2(Bucket=loaded.bucket)["KeyCount"] == len(loaded.files)


def test_listing_pages_with_continuation_tokens(loaded: Loaded, s3: Any) -> None:
    everything = [f.key for f in sorted(loaded.files.values(), key=lambda f: f.key)]
    pages, token = [], None
    while True:
        extra: dict[str, Any] = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=loaded.bucket, Prefix=loaded.prefix, MaxKeys=2, **extra)
        assert page["MaxKeys"] == 2
        assert page["KeyCount"] == len(page.get("Contents", [])) <= 2
        pages.append([item["Key"] for item in page.get("Contents", [])])
        if not page["IsTruncated"]:
            assert "NextContinuationToken" not in page
            break
        token = page["NextContinuationToken"]
        assert page.get("ContinuationToken") == (extra.get("ContinuationToken"))
    assert len(pages) == -(-len(everything) // 2)
    assert [key for page in pages for key in page] == everything
    paginator = s3.get_paginator("list_objects_v2")
    walked = paginator.paginate(Bucket=loaded.bucket, Prefix=loaded.prefix, PaginationConfig={"PageSize": 3})
    assert [item["Key"] for page in walked for item in page["Contents"]] == everything


def test_listing_with_delimiter_prefix_and_start_after(loaded: Loaded, s3: Any) -> None:
    everything = sorted(f.key for f in loaded.files.values())
    top = s3.list_objects_v2(Bucket=loaded.bucket, Prefix=loaded.prefix, Delimiter="/")
    assert "Contents" not in top
    assert top["CommonPrefixes"] == [{"Prefix": f"{loaded.prefix}readSet/"}]
    assert top["Delimiter"] == "/"
    folders = s3.list_objects_v2(Bucket=loaded.bucket, Prefix=f"{loaded.prefix}readSet/", Delimiter="/")
    expected = sorted(f"{loaded.prefix}readSet/{rs}/" for rs in loaded.read_sets.values())
    assert [p["Prefix"] for p in folders["CommonPrefixes"]] == expected
    assert folders["KeyCount"] == len(expected)
    # A common prefix counts once against MaxKeys, and pages never repeat one.
    walked, token = [], None
    while True:
        extra: dict[str, Any] = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(
            Bucket=loaded.bucket, Prefix=f"{loaded.prefix}readSet/", Delimiter="/", MaxKeys=1, **extra
        )
        walked += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert walked == expected
    bam_folder = f"{loaded.prefix}readSet/{loaded.read_sets['BAM']}/"
    inside = s3.list_objects_v2(Bucket=loaded.bucket, Prefix=bam_folder)
    assert [item["Key"] for item in inside["Contents"]] == [
        loaded.file("BAM/source1").key,
        loaded.file("BAM/index").key,
    ]
    after = s3.list_objects_v2(Bucket=loaded.bucket, Prefix=loaded.prefix, StartAfter=everything[1])
    assert [item["Key"] for item in after["Contents"]] == everything[2:]
    assert after["StartAfter"] == everything[1]
    assert s3.list_objects_v2(Bucket=loaded.bucket, Prefix=f"{loaded.prefix}nothing/")["KeyCount"] == 0
    assert s3.list_objects_v2(Bucket=loaded.bucket, MaxKeys=5000)["MaxKeys"] == 1000


def test_listing_refuses_bad_arguments(service: RunningService, loaded: Loaded, s3: Any) -> None:
    assert s3_error(lambda: s3.list_objects_v2(Bucket=loaded.bucket, ContinuationToken="not-ours")) == (
        "InvalidArgument",
        400,
    )
    assert s3_error(lambda: s3.list_objects_v2(Bucket=loaded.bucket, EncodingType="gzip")) == (
        "InvalidArgument",
        400,
    )
    url = f"{service.s3_url}/{loaded.bucket}?list-type=2&max-keys=many"
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(url, timeout=30)
    assert excinfo.value.code == 400
    assert ET.fromstring(excinfo.value.read()).findtext("Code") == "InvalidArgument"


def test_list_objects_v1_pages_with_markers(loaded: Loaded, s3: Any) -> None:
    everything = sorted(f.key for f in loaded.files.values())
    keys, marker = [], ""
    while True:
        page = s3.list_objects(Bucket=loaded.bucket, Prefix=loaded.prefix, MaxKeys=3, Marker=marker)
        keys += [item["Key"] for item in page.get("Contents", [])]
        assert all(item["Owner"]["ID"] == "123456789012" for item in page.get("Contents", []))
        if not page["IsTruncated"]:
            break
        marker = page["Contents"][-1]["Key"]
    assert keys == everything
    folders = s3.list_objects(
        Bucket=loaded.bucket, Prefix=f"{loaded.prefix}readSet/", Delimiter="/", MaxKeys=2
    )
    assert folders["IsTruncated"] is True
    assert folders["NextMarker"] == folders["CommonPrefixes"][-1]["Prefix"]


def test_keys_with_spaces_and_plus_signs_round_trip(
    service: RunningService, sample: SampleFiles, s3: Any
) -> None:
    omics = service.client()
    store = omics.create_sequence_store(name="s3-names")
    read_set = upload_file(omics, store["id"], {"SOURCE1": sample.fastq1}, "FASTQ", name="run 1+2 (a)")
    service.drain()
    info = omics.get_read_set_metadata(sequenceStoreId=store["id"], id=read_set)["files"]["source1"]
    bucket, key = split_uri(info["s3Access"]["s3Uri"])
    assert key.endswith("/run 1+2 (a)_source1.fastq.gz")
    [listed] = s3.list_objects_v2(Bucket=bucket)["Contents"]  # botocore asks for url encoding
    assert listed["Key"] == key
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == sample.fastq1.read_bytes()


# --------------------------------------------------------------------------------------------
# Tags


def test_object_tags_are_the_system_tags_and_the_propagated_read_set_tags(loaded: Loaded, s3: Any) -> None:
    bam = loaded.file("BAM/source1")
    tagging = s3.get_object_tagging(Bucket=loaded.bucket, Key=bam.key)
    assert {t["Key"]: t["Value"] for t in tagging["TagSet"]} == {
        "omics:subjectId": "subject-1",
        "omics:sampleId": "sample-1",
        "project": "p1",  # in the store's propagatedSetLevelTags; "private" is not
    }
    assert s3.get_object(Bucket=loaded.bucket, Key=bam.key, Range="bytes=0-0")["TagCount"] == 3
    cram = s3.get_object_tagging(Bucket=loaded.bucket, Key=loaded.file("CRAM/index").key)
    assert {t["Key"] for t in cram["TagSet"]} == {"omics:subjectId", "omics:sampleId"}
    assert s3_error(lambda: s3.get_object_tagging(Bucket=loaded.bucket, Key=f"{bam.key}.nope")) == (
        "NoSuchKey",
        404,
    )


# --------------------------------------------------------------------------------------------
# Read-only


def write_calls(s3: Any, bucket: str, key: str) -> dict[str, Callable[[], Any]]:
    """Every write an S3 client can attempt, against one object of the access point."""
    upload = {"Bucket": bucket, "Key": key, "UploadId": "0123"}
    return {
        "PutObject": lambda: s3.put_object(Bucket=bucket, Key=f"{key}.new", Body=b"x" * 2_000_000),
        "PutObject(replace)": lambda: s3.put_object(Bucket=bucket, Key=key, Body=b"x"),
        "CopyObject": lambda: s3.copy_object(Bucket=bucket, Key=f"{key}.copy", CopySource=f"{bucket}/{key}"),
        "DeleteObject": lambda: s3.delete_object(Bucket=bucket, Key=key),
        "DeleteObjects": lambda: s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}]}),
        "CreateMultipartUpload": lambda: s3.create_multipart_upload(Bucket=bucket, Key=f"{key}.mp"),
        "UploadPart": lambda: s3.upload_part(**upload, PartNumber=1, Body=b"x"),
        "CompleteMultipartUpload": lambda: s3.complete_multipart_upload(
            **upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"x"'}]}
        ),
        "AbortMultipartUpload": lambda: s3.abort_multipart_upload(**upload),
        "PutObjectTagging": lambda: s3.put_object_tagging(
            Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}
        ),
        "DeleteObjectTagging": lambda: s3.delete_object_tagging(Bucket=bucket, Key=key),
        "PutObjectAcl": lambda: s3.put_object_acl(Bucket=bucket, Key=key, ACL="public-read"),
        "RestoreObject": lambda: s3.restore_object(Bucket=bucket, Key=key, RestoreRequest={"Days": 1}),
        "CreateBucket": lambda: s3.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
        ),
        "DeleteBucket": lambda: s3.delete_bucket(Bucket=bucket),
        "PutBucketPolicy": lambda: s3.put_bucket_policy(Bucket=bucket, Policy="{}"),
        "PutBucketVersioning": lambda: s3.put_bucket_versioning(
            Bucket=bucket, VersioningConfiguration={"Status": "Suspended"}
        ),
        # reads outside the subset: the access point's policy grants none of them
        "GetBucketPolicy": lambda: s3.get_bucket_policy(Bucket=bucket),
        "GetObjectAcl": lambda: s3.get_object_acl(Bucket=bucket, Key=key),
        "ListMultipartUploads": lambda: s3.list_multipart_uploads(Bucket=bucket),
        "ListObjectVersions": lambda: s3.list_object_versions(Bucket=bucket),
        "ListBuckets": lambda: s3.list_buckets(),
    }


def test_every_write_verb_is_access_denied_and_changes_nothing(
    private_service: RunningService, sample: SampleFiles
) -> None:
    omics = private_service.client()
    store = omics.create_sequence_store(name="s3-readonly")
    arn = import_reference(private_service, sample.reference)
    read_set = upload_file(omics, store["id"], {"SOURCE1": sample.bam}, "BAM", name="ro", referenceArn=arn)
    private_service.drain()
    info = omics.get_read_set_metadata(sequenceStoreId=store["id"], id=read_set)["files"]["source1"]
    bucket, key = split_uri(info["s3Access"]["s3Uri"])
    s3 = private_service.s3_client()
    before = s3.list_objects_v2(Bucket=bucket)["Contents"]
    # Even a policy that allows everything does not make the access point writable.
    access_point = store["s3Access"]["s3AccessPointArn"]
    allow_all = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}]}
    omics.put_s3_access_policy(s3AccessPointArn=access_point, s3AccessPolicy=json.dumps(allow_all))
    private_service.reset_stats()
    calls = write_calls(s3, bucket, key)
    for name, call in calls.items():
        assert s3_error(call) == ("AccessDenied", 403), name
        # the connection a refused upload leaves behind is not reused half-read
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == info["contentLength"], name
    errors = private_service.admin("GET", "stats")["errors"]
    refused = {op for op, codes in errors.items() if codes.get("AccessDenied")}
    assert refused == {name.split("(")[0] for name in calls}
    assert s3.list_objects_v2(Bucket=bucket)["Contents"] == before
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == download(omics, store["id"], read_set)


# --------------------------------------------------------------------------------------------
# The store's S3 access policy


def statement(effect: str, action: Any, resource: Any, principal: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": effect, "Principal": principal, "Action": action, "Resource": resource, **extra}


@pytest.fixture
def policed(service: RunningService, sample: SampleFiles) -> Loaded:
    """A store of the test's own: its policy changes must not reach the other tests."""
    omics = service.client()
    store = dict(omics.create_sequence_store(name="s3-policy"))
    read_sets = {
        "A": upload_file(omics, store["id"], {"SOURCE1": sample.fastq1}, "FASTQ", name="a", sampleId="A"),
        "B": upload_file(omics, store["id"], {"SOURCE1": sample.fastq2}, "FASTQ", name="b", sampleId="B"),
    }
    service.drain()
    files = {}
    for label, read_set in read_sets.items():
        info = omics.get_read_set_metadata(sequenceStoreId=store["id"], id=read_set)["files"]["source1"]
        files[label] = StoredFile(read_set, "source1", split_uri(info["s3Access"]["s3Uri"])[1], b"")
    bucket, prefix = split_uri(store["s3Access"]["s3Uri"])
    return Loaded(store, bucket, prefix, read_sets, files)


def put_policy(service: RunningService, store: dict[str, Any], *statements: dict[str, Any]) -> None:
    policy = {"Version": "2012-10-17", "Statement": list(statements)}
    service.client().put_s3_access_policy(
        s3AccessPointArn=store["s3Access"]["s3AccessPointArn"], s3AccessPolicy=json.dumps(policy)
    )


def reads(s3: Any, loaded: Loaded) -> dict[str, str]:
    """What each S3 call on the store answers: "ok" or the error code."""

    def outcome(call: Callable[[], Any]) -> str:
        try:
            call()
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return "ok"

    a = loaded.file("A").key
    return {
        "get": outcome(lambda: s3.get_object(Bucket=loaded.bucket, Key=a)["Body"].read()),
        "head": outcome(lambda: s3.head_object(Bucket=loaded.bucket, Key=a)),
        "tagging": outcome(lambda: s3.get_object_tagging(Bucket=loaded.bucket, Key=a)),
        "list": outcome(lambda: s3.list_objects_v2(Bucket=loaded.bucket, Prefix=loaded.prefix)),
        "get B": outcome(
            lambda: s3.get_object(Bucket=loaded.bucket, Key=loaded.file("B").key)["Body"].read()
        ),
        "missing": outcome(lambda: s3.get_object(Bucket=loaded.bucket, Key=f"{a}.nope")),
    }


ALL_OK = {"get": "ok", "head": "ok", "tagging": "ok", "list": "ok", "get B": "ok", "missing": "NoSuchKey"}


def test_a_policy_that_denies_the_caller_switches_s3_access_off_and_back_on(
    service: RunningService, policed: Loaded, s3: Any
) -> None:
    assert reads(s3, policed) == ALL_OK  # no stored policy: the default lets the owner read
    ap = policed.store["s3Access"]["s3AccessPointArn"]
    put_policy(service, policed.store, statement("Deny", "s3:*", [ap, f"{ap}/object/*"]))
    denied = dict.fromkeys(ALL_OK, "AccessDenied")
    assert reads(s3, policed) == {**denied, "head": "403"}
    # The HealthOmics plane does not go through the S3 access policy.
    omics = service.client()
    part = omics.get_read_set(sequenceStoreId=policed.store["id"], id=policed.read_sets["A"], partNumber=1)
    assert part["payload"].read()
    omics.delete_s3_access_policy(s3AccessPointArn=ap)
    assert reads(s3, policed) == ALL_OK
    owner = {"AWS": "arn:aws:iam::123456789012:root"}
    put_policy(
        service,
        policed.store,
        statement("Allow", ["s3:GetObject", "s3:GetObjectTagging"], f"{ap}/object/*", owner),
        statement("Allow", "s3:ListBucket", ap, {"AWS": "123456789012"}),
    )
    assert reads(s3, policed) == ALL_OK


def test_policy_statements_are_evaluated_with_explicit_deny_winning(
    service: RunningService, policed: Loaded, s3: Any
) -> None:
    ap = policed.store["s3Access"]["s3AccessPointArn"]
    objects = f"{ap}/object/{policed.prefix}*"
    # Only ListBucket: reads are implicitly denied.
    put_policy(service, policed.store, statement("Allow", "s3:ListBucket", ap))
    assert reads(s3, policed) == {
        "get": "AccessDenied", "head": "403", "tagging": "AccessDenied", "list": "ok",
        "get B": "AccessDenied", "missing": "AccessDenied",
    }  # fmt: skip
    # Reads but no ListBucket: a missing key is AccessDenied, not NoSuchKey (as in S3).
    put_policy(service, policed.store, statement("Allow", "s3:Get*", objects))
    assert reads(s3, policed) == {**ALL_OK, "list": "AccessDenied", "missing": "AccessDenied"}
    # An explicit Deny on one read set's folder beats the Allow.
    b_folder = f"{ap}/object/{policed.prefix}readSet/{policed.read_sets['B']}/*"
    put_policy(
        service,
        policed.store,
        statement("Allow", "s3:*", [ap, objects]),
        statement("Deny", "s3:GetObject", b_folder),
    )
    assert reads(s3, policed) == {**ALL_OK, "get B": "AccessDenied"}
    # Another account's principal is not the caller.
    put_policy(service, policed.store, statement("Allow", "s3:*", [ap, objects], {"AWS": "999999999999"}))
    assert reads(s3, policed)["get"] == "AccessDenied"
    # Conditions: object tags and the listing prefix.
    put_policy(
        service,
        policed.store,
        statement("Allow", "s3:GetObject", objects,
                  Condition={"StringEquals": {"s3:ExistingObjectTag/omics:sampleId": "A"}}),
        statement("Allow", "s3:ListBucket", ap,
                  Condition={"StringLike": {"s3:prefix": f"{policed.prefix}readSet/*"}}),
    )  # fmt: skip
    outcome = reads(s3, policed)
    assert (outcome["get"], outcome["get B"], outcome["list"]) == ("ok", "AccessDenied", "AccessDenied")
    listed = s3.list_objects_v2(Bucket=policed.bucket, Prefix=f"{policed.prefix}readSet/")
    assert listed["KeyCount"] == 2


def test_a_policy_the_service_cannot_evaluate_fails_closed(
    service: RunningService, policed: Loaded, s3: Any
) -> None:
    ap = policed.store["s3Access"]["s3AccessPointArn"]
    service.client().put_s3_access_policy(s3AccessPointArn=ap, s3AccessPolicy="this is not JSON")
    assert set(reads(s3, policed).values()) == {"AccessDenied", "403"}
    # An Allow with an unknown condition grants nothing; the rest of the policy still applies.
    put_policy(
        service,
        policed.store,
        statement("Allow", "s3:*", [ap, f"{ap}/object/*"]),
        statement("Deny", "s3:GetObject", f"{ap}/object/*",
                  Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
    )  # fmt: skip
    assert reads(s3, policed) == {**ALL_OK, "get": "AccessDenied", "head": "403", "get B": "AccessDenied",
                                  "missing": "AccessDenied"}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Read set lifecycle


def test_an_archived_read_set_is_not_reachable_until_activated(
    service: RunningService, policed: Loaded, s3: Any
) -> None:
    omics = service.client()
    a = policed.file("A")
    before = s3.head_object(Bucket=policed.bucket, Key=a.key)
    content = s3.get_object(Bucket=policed.bucket, Key=a.key)["Body"].read()
    service.admin("POST", f"archive/{policed.store['id']}/{a.read_set}")
    listed = [item["Key"] for item in s3.list_objects_v2(Bucket=policed.bucket)["Contents"]]
    assert listed == [policed.file("B").key]
    assert s3_error(lambda: s3.get_object(Bucket=policed.bucket, Key=a.key)) == ("AccessDenied", 403)
    assert s3_error(lambda: s3.head_object(Bucket=policed.bucket, Key=a.key)) == ("403", 403)
    assert s3_error(lambda: s3.get_object_tagging(Bucket=policed.bucket, Key=a.key)) == ("AccessDenied", 403)
    job = omics.start_read_set_activation_job(
        sequenceStoreId=policed.store["id"], sources=[{"readSetId": a.read_set}]
    )
    service.drain()
    assert (
        omics.get_read_set_activation_job(sequenceStoreId=policed.store["id"], id=job["id"])["status"]
        == "COMPLETED"
    )
    # "When a read set is activated, it's restored to the same URI path each time."
    after = s3.head_object(Bucket=policed.bucket, Key=a.key)
    assert (after["ETag"], after["ContentLength"]) == (before["ETag"], before["ContentLength"])
    assert s3.get_object(Bucket=policed.bucket, Key=a.key)["Body"].read() == content
    assert len(s3.list_objects_v2(Bucket=policed.bucket)["Contents"]) == 2


def test_a_deleted_read_set_has_no_objects(service: RunningService, policed: Loaded, s3: Any) -> None:
    a = policed.file("A")
    service.client().batch_delete_read_set(sequenceStoreId=policed.store["id"], ids=[a.read_set])
    assert s3_error(lambda: s3.get_object(Bucket=policed.bucket, Key=a.key)) == ("NoSuchKey", 404)
    assert [item["Key"] for item in s3.list_objects_v2(Bucket=policed.bucket)["Contents"]] == [
        policed.file("B").key
    ]


def test_a_read_set_still_processing_has_no_objects(
    service: RunningService, sample: SampleFiles, policed: Loaded, s3: Any
) -> None:
    omics = service.client()
    service.admin("PUT", "processing", b"hold")
    try:
        pending = upload_file(omics, policed.store["id"], {"SOURCE1": sample.fastq1}, "FASTQ", name="later")
        meta = omics.get_read_set_metadata(sequenceStoreId=policed.store["id"], id=pending)
        assert meta["status"] == "PROCESSING_UPLOAD"
        assert "files" not in meta
        assert s3.list_objects_v2(Bucket=policed.bucket)["KeyCount"] == 2
    finally:
        service.drain()
    meta = omics.get_read_set_metadata(sequenceStoreId=policed.store["id"], id=pending)
    _, key = split_uri(meta["files"]["source1"]["s3Access"]["s3Uri"])
    assert s3.get_object(Bucket=policed.bucket, Key=key)["Body"].read() == sample.fastq1.read_bytes()


def test_a_replaced_object_keeps_its_key_and_gets_a_new_etag(
    service: RunningService, policed: Loaded, s3: Any
) -> None:
    a = policed.file("A")
    old = s3.head_object(Bucket=policed.bucket, Key=a.key)
    new_bytes = b"\x1f\x8b" + b"different bytes " * 10_000
    answer = service.admin("PUT", f"replace/{policed.store['id']}/{a.read_set}/source1", new_bytes)
    assert answer["files"]["source1"]["contentLength"] == len(new_bytes)
    new = s3.head_object(Bucket=policed.bucket, Key=a.key)
    assert new["ETag"] != old["ETag"]
    assert new["ETag"] == expected_etag(new_bytes)
    assert new["ContentLength"] == len(new_bytes)
    assert new["LastModified"] >= old["LastModified"]
    # A reader holding the old ETag learns the object changed instead of mixing two versions.
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=policed.bucket, Key=a.key, IfMatch=old["ETag"], Range="bytes=0-99")
    assert error_of(excinfo) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=policed.bucket, Key=a.key)["Body"].read() == new_bytes
    assert download(service.client(), policed.store["id"], a.read_set) == new_bytes
    [listed] = [i for i in s3.list_objects_v2(Bucket=policed.bucket)["Contents"] if i["Key"] == a.key]
    assert (listed["Size"], listed["ETag"]) == (len(new_bytes), new["ETag"])
    with pytest.raises(urllib.error.HTTPError) as refused:  # only files a read set has
        service.admin("PUT", f"replace/{policed.store['id']}/{a.read_set}/source2", b"x")
    assert refused.value.code == 404


# --------------------------------------------------------------------------------------------
# Faults and counters


Faulty = tuple[RunningService, str, str, bytes]
#: What botocore raises when a body ends early: its own length check, or urllib3's underneath.
BROKEN_BODY = (ResponseStreamingError, IncompleteReadError, ConnectionClosedError)


@pytest.fixture
def faulty(private_service: RunningService, sample: SampleFiles) -> Faulty:
    """A private service with one BAM read set: (service, bucket, key, stored bytes)."""
    omics = private_service.client()
    store = omics.create_sequence_store(name="s3-faults")
    arn = import_reference(private_service, sample.reference)
    read_set = upload_file(omics, store["id"], {"SOURCE1": sample.bam}, "BAM", name="f", referenceArn=arn)
    private_service.drain()
    info = omics.get_read_set_metadata(sequenceStoreId=store["id"], id=read_set)["files"]["source1"]
    bucket, key = split_uri(info["s3Access"]["s3Uri"])
    content = download(omics, store["id"], read_set)
    private_service.reset_stats()
    return private_service, bucket, key, content


def test_s3_throttling_is_slowdown_in_the_counters(faulty: Faulty) -> None:
    service, bucket, key, content = faulty
    service.set_faults("throttle@GetObject,ListObjectsV2=1/2")
    s3 = service.s3_client()
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == content
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key=key)
    assert error_of(excinfo) == ("SlowDown", 503)
    s3.list_objects_v2(Bucket=bucket)
    assert s3_error(lambda: s3.list_objects_v2(Bucket=bucket)) == ("SlowDown", 503)
    stats = service.admin("GET", "stats")
    assert stats["requests"] == {"GetObject": 2, "ListObjectsV2": 2}
    assert stats["errors"] == {"GetObject": {"SlowDown": 1}, "ListObjectsV2": {"SlowDown": 1}}
    assert stats["faults"]["injected"] == {"throttle:GetObject": 1, "throttle:ListObjectsV2": 1}
    # botocore retries SlowDown: the 4th GetObject is throttled, its retry (the 5th) is not.
    s3.get_object(Bucket=bucket, Key=key)
    retrying = service.s3_client(retries={"mode": "standard", "total_max_attempts": 3})
    assert retrying.get_object(Bucket=bucket, Key=key)["Body"].read() == content
    stats = service.admin("GET", "stats")
    assert stats["requests"]["GetObject"] == 5
    assert stats["errors"]["GetObject"] == {"SlowDown": 2}


def test_s3_errors_are_internal_error_and_an_unscoped_rule_reaches_both_planes(
    faulty: Faulty,
) -> None:
    service, bucket, key, _ = faulty
    service.set_faults("error=1/1")
    s3 = service.s3_client()
    assert s3_error(lambda: s3.get_object(Bucket=bucket, Key=key)) == ("InternalError", 500)
    assert s3_error(lambda: s3.head_object(Bucket=bucket, Key=key)) == ("500", 500)
    assert s3_error(lambda: s3.get_object_tagging(Bucket=bucket, Key=key)) == ("InternalError", 500)
    omics = service.client()
    with pytest.raises(ClientError) as excinfo:
        omics.list_sequence_stores()
    assert error_of(excinfo) == ("InternalServerException", 500)
    injected = service.admin("GET", "stats")["faults"]["injected"]
    assert injected == {
        "error:GetObject": 1, "error:HeadObject": 1, "error:GetObjectTagging": 1,
        "error:ListSequenceStores": 1,
    }  # fmt: skip


@pytest.mark.parametrize("fault", ["cut", "reset"])
def test_s3_cut_and_reset_bodies_fail_the_read(faulty: Faulty, fault: str) -> None:
    service, bucket, key, content = faulty
    service.set_faults(f"{fault}@GetObject=1/1")
    s3 = service.s3_client()
    with pytest.raises(BROKEN_BODY):
        s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-199999")["Body"].read()
    stats = service.admin("GET", "stats")
    assert stats["faults"]["injected"] == {f"{fault}:GetObject": 1}
    assert stats["bytesSent"].get("GetObject", 0) == (100_000 if fault == "cut" else 0)
    service.set_faults("")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == content  # nothing was lost


def test_s3_short_body_has_a_consistent_length(faulty: Faulty) -> None:
    service, bucket, key, content = faulty
    service.set_faults("short@GetObject=1/1")
    got = service.s3_client().get_object(Bucket=bucket, Key=key, Range="bytes=1000-2999")
    body = got["Body"].read()
    assert got["ContentLength"] == len(body) == 1000
    assert got["ContentRange"] == f"bytes 1000-2999/{len(content)}"  # a careful client notices
    assert body == content[1000:2000]


def test_s3_bandwidth_and_latency_rules_apply_to_getobject(
    faulty: Faulty,
) -> None:
    service, bucket, key, content = faulty
    service.set_faults("bandwidth@GetObject=50MiB;latency@GetObject,HeadObject=1ms")
    s3 = service.s3_client()
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == content
    s3.head_object(Bucket=bucket, Key=key)
    stats = service.admin("GET", "stats")
    assert stats["faults"]["injected"] == {"bandwidth:GetObject": 1}
    assert stats["bytesSent"]["GetObject"] == len(content)
    assert stats["requests"] == {"GetObject": 1, "HeadObject": 1}


# --------------------------------------------------------------------------------------------
# The endpoint


def test_serve_prints_both_endpoints_on_the_chosen_host_and_ports(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.2", 0))
        port = probe.getsockname()[1]
    running = RunningService(tmp_path / "data", "--host", "127.0.0.2", "--s3-port", str(port))
    try:
        assert running.url.startswith("http://127.0.0.2:")
        assert running.s3_url == f"http://127.0.0.2:{port}"
        # The two ports route apart: S3 paths on the HealthOmics port are not S3, and back.
        with pytest.raises(urllib.error.HTTPError) as excinfo:
            urllib.request.urlopen(f"{running.url}/some-bucket?list-type=2", timeout=30)
        assert excinfo.value.headers["x-amzn-ErrorType"] == "UnknownOperationException"
        with pytest.raises(urllib.error.HTTPError) as excinfo:
            urllib.request.urlopen(f"{running.s3_url}/sequencestore", timeout=30)
        assert ET.fromstring(excinfo.value.read()).findtext("Code") == "NoSuchBucket"
    finally:
        assert running.stop() == 0


def test_serve_refuses_a_busy_s3_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ["serve", "--data-dir", str(tmp_path / "data"), "--s3-port", str(port)]
        done = subprocess.run(
            [sys.executable, "-m", "omicsfs", *args], capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 1
    assert f"--s3-port {port}" in done.stderr
    assert "listening" not in done.stdout


def test_read_sets_stored_before_the_s3_endpoint_get_their_etags_once(
    private_service: RunningService, sample: SampleFiles
) -> None:
    omics = private_service.client()
    store = omics.create_sequence_store(name="s3-older")
    arn = import_reference(private_service, sample.reference)
    read_set = upload_file(omics, store["id"], {"SOURCE1": sample.bam}, "BAM", name="old", referenceArn=arn)
    private_service.drain()
    info = omics.get_read_set_metadata(sequenceStoreId=store["id"], id=read_set)["files"]["source1"]
    bucket, key = split_uri(info["s3Access"]["s3Uri"])
    content = download(omics, store["id"], read_set)
    assert private_service.stop() == 0
    database = private_service.data_dir / "state.sqlite3"

    def stored_versions() -> Any:
        with closing(sqlite3.connect(database)) as db:
            (doc,) = db.execute("SELECT doc FROM resources WHERE id = ?", (read_set,)).fetchone()
            return json.loads(doc).get("_s3Objects")

    with closing(sqlite3.connect(database)) as db, db:  # what an older version left behind
        (doc,) = db.execute("SELECT doc FROM resources WHERE id = ?", (read_set,)).fetchone()
        older = {k: v for k, v in json.loads(doc).items() if k != "_s3Objects"}
        db.execute("UPDATE resources SET doc = ? WHERE id = ?", (json.dumps(older), read_set))
    assert stored_versions() is None
    restarted = RunningService(private_service.data_dir)
    try:
        s3 = restarted.s3_client()
        assert s3.head_object(Bucket=bucket, Key=key)["ETag"] == expected_etag(content)
        assert set(stored_versions()) == {"source1", "index"}
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == content
    finally:
        assert restarted.stop() == 0
