"""Read sets through the multipart upload: parts, checksums, processing, download, listing."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pysam
import pytest
from botocore.exceptions import ClientError

from omicsfs.sample.data import SampleFiles
from tests.localservice import RunningService
from tests.service.helpers import download, error_of, upload_file


def _records(path: str) -> list[str]:
    with pysam.AlignmentFile(path, check_sq=False) as handle:
        return [r.to_string() for r in handle.fetch(until_eof=True)]


def test_bam_upload_becomes_active_with_index_counts_and_etag(
    service: RunningService,
    omics: Any,
    store: dict[str, Any],
    sample: SampleFiles,
    reference_arn: str,
    tmp_path: Any,
) -> None:
    service.admin("PUT", "processing", b"hold")  # no race with the processing delay on a busy machine
    rs = upload_file(
        omics, store["id"], {"SOURCE1": sample.bam}, "BAM", sampleId="NA12878", referenceArn=reference_arn
    )
    assert omics.get_read_set_metadata(sequenceStoreId=store["id"], id=rs)["status"] == "PROCESSING_UPLOAD"
    with pytest.raises(ClientError) as excinfo:  # not readable until ACTIVE
        omics.get_read_set(sequenceStoreId=store["id"], id=rs, partNumber=1)
    assert error_of(excinfo) == ("ConflictException", 409)
    service.drain()  # ends the hold
    meta = omics.get_read_set_metadata(sequenceStoreId=store["id"], id=rs)
    assert meta["status"] == "ACTIVE"
    assert meta["creationType"] == "UPLOAD"
    assert meta["fileType"] == "BAM"
    assert meta["sequenceInformation"]["totalReadCount"] == 6000
    assert meta["sequenceInformation"]["totalBaseCount"] == 600_000
    assert meta["sequenceInformation"]["alignment"] == "ALIGNED"
    stored = download(omics, store["id"], rs)
    source = meta["files"]["source1"]
    assert source["contentLength"] == len(stored)
    assert source["partSize"] == 65536
    assert source["totalParts"] == -(-len(stored) // 65536)
    assert meta["etag"] == {"algorithm": "BAM_MD5up", "source1": hashlib.md5(stored).hexdigest()}
    # The real service stamps an @CO line; records are unchanged.
    local = tmp_path / "stored.bam"
    local.write_bytes(stored)
    header = pysam.AlignmentFile(str(local)).header.to_dict()
    assert any(store["id"] in line for line in header.get("CO", []))
    assert _records(str(local)) == _records(str(sample.bam))
    # The index the service built works with the stored BAM.
    (tmp_path / "stored.bam.bai").write_bytes(download(omics, store["id"], rs, "INDEX"))
    assert pysam.idxstats(str(local)) == pysam.idxstats(str(sample.bam))
    assert len(list(pysam.AlignmentFile(str(local)).fetch("chr2", 1000, 2000))) == len(
        list(pysam.AlignmentFile(str(sample.bam)).fetch("chr2", 1000, 2000))
    )


def test_paired_fastq_upload_keeps_bytes(
    service: RunningService, omics: Any, store: dict[str, Any], sample: SampleFiles
) -> None:
    rs = upload_file(omics, store["id"], {"SOURCE1": sample.fastq1, "SOURCE2": sample.fastq2}, "FASTQ")
    service.drain()
    meta = omics.get_read_set_metadata(sequenceStoreId=store["id"], id=rs)
    assert meta["status"] == "ACTIVE"
    assert meta["sequenceInformation"]["totalReadCount"] == 6000
    assert "index" not in meta["files"]
    assert download(omics, store["id"], rs, "SOURCE1") == sample.fastq1.read_bytes()
    assert download(omics, store["id"], rs, "SOURCE2") == sample.fastq2.read_bytes()
    assert meta["etag"]["algorithm"] == "FASTQ_MD5up"
    assert meta["etag"]["source2"] == hashlib.md5(sample.fastq2.read_bytes()).hexdigest()


def test_cram_and_ubam_uploads(
    service: RunningService, omics: Any, store: dict[str, Any], sample: SampleFiles, reference_arn: str
) -> None:
    cram = upload_file(
        omics, store["id"], {"SOURCE1": sample.cram}, "CRAM", name="c", referenceArn=reference_arn
    )
    ubam = upload_file(omics, store["id"], {"SOURCE1": sample.ubam}, "UBAM", name="u")
    service.drain()
    cram_meta = omics.get_read_set_metadata(sequenceStoreId=store["id"], id=cram)
    ubam_meta = omics.get_read_set_metadata(sequenceStoreId=store["id"], id=ubam)
    assert cram_meta["status"] == ubam_meta["status"] == "ACTIVE"
    assert "index" in cram_meta["files"]
    assert "index" not in ubam_meta["files"]
    assert cram_meta["etag"]["algorithm"] == "CRAM_MD5up"
    assert ubam_meta["etag"]["algorithm"] == "BAM_MD5up"  # no UBAM_* algorithm exists
    assert ubam_meta["sequenceInformation"]["alignment"] == "UNALIGNED"
    assert download(omics, store["id"], cram)[:4] == b"CRAM"


def test_sha512_store_hashes_with_sha512(service: RunningService, omics: Any, sample: SampleFiles) -> None:
    store = omics.create_sequence_store(name="sha", eTagAlgorithmFamily="SHA512up")
    rs = upload_file(omics, store["id"], {"SOURCE1": sample.fastq1}, "FASTQ")
    service.drain()
    etag = omics.get_read_set_metadata(sequenceStoreId=store["id"], id=rs)["etag"]
    assert etag == {
        "algorithm": "FASTQ_SHA512up",
        "source1": hashlib.sha512(sample.fastq1.read_bytes()).hexdigest(),
    }


@pytest.mark.parametrize(
    ("file_type", "content", "reason"),
    [
        ("BAM", b"not a bam at all" * 100, "BAM"),
        ("CRAM", gzip.compress(b"@r\nACGT\n+\nIIII\n"), "CRAM"),
        ("FASTQ", b"@r\nACGT\n+\nIIII\n", "gzip"),
    ],
)
def test_bytes_that_are_not_the_declared_format_fail_processing(
    service: RunningService,
    omics: Any,
    store: dict[str, Any],
    reference_arn: str,
    file_type: str,
    content: bytes,
    reason: str,
) -> None:
    fields: dict[str, Any] = {"referenceArn": reference_arn} if file_type in ("BAM", "CRAM") else {}
    rs = upload_file(omics, store["id"], {"SOURCE1": content}, file_type, **fields)
    service.drain()
    meta = omics.get_read_set_metadata(sequenceStoreId=store["id"], id=rs)
    assert meta["status"] == "UPLOAD_FAILED"
    assert reason in meta["statusMessage"]
    with pytest.raises(ClientError) as excinfo:
        omics.get_read_set(sequenceStoreId=store["id"], id=rs, partNumber=1)
    assert error_of(excinfo) == ("ConflictException", 409)


def test_reuploading_a_part_replaces_it_and_checksums_are_verified(
    service: RunningService, omics: Any, store: dict[str, Any], sample: SampleFiles
) -> None:
    data = sample.fastq1.read_bytes()
    half = len(data) // 2
    upload = omics.create_multipart_read_set_upload(
        sequenceStoreId=store["id"], sourceFileType="FASTQ", subjectId="s", sampleId="x", name="re"
    )
    sid, uid = store["id"], upload["uploadId"]

    def put(number: int, payload: bytes) -> str:
        return str(
            omics.upload_read_set_part(
                sequenceStoreId=sid, uploadId=uid, partSource="SOURCE1", partNumber=number, payload=payload
            )["checksum"]
        )

    stale = put(1, b"garbage that will be replaced")
    first = put(1, data[:half])
    second = put(2, data[half:])
    assert stale != first
    parts = omics.list_read_set_upload_parts(sequenceStoreId=sid, uploadId=uid, partSource="SOURCE1")
    assert [(p["partNumber"], p["partSize"]) for p in parts["parts"]] == [(1, half), (2, len(data) - half)]

    def complete(items: list[tuple[int, str]]) -> Any:
        return omics.complete_multipart_read_set_upload(
            sequenceStoreId=sid,
            uploadId=uid,
            parts=[{"partNumber": n, "partSource": "SOURCE1", "checksum": c} for n, c in items],
        )

    for wrong in ([(1, stale), (2, second)], [(1, first)], [(1, first), (2, second), (3, second)]):
        with pytest.raises(ClientError) as excinfo:
            complete(wrong)
        assert error_of(excinfo) == ("ValidationException", 400)
    # Nothing was created by the refused completions, and the upload is still open.
    assert omics.list_read_sets(sequenceStoreId=sid)["readSets"] == []
    assert [u["uploadId"] for u in omics.list_multipart_read_set_uploads(sequenceStoreId=sid)["uploads"]] == [
        uid
    ]
    rs = complete([(1, first), (2, second)])["readSetId"]
    assert omics.list_multipart_read_set_uploads(sequenceStoreId=sid)["uploads"] == []
    service.drain()
    assert download(omics, sid, rs) == data


def test_source2_only_for_fastq_and_part_limits(omics: Any, store: dict[str, Any]) -> None:
    upload = omics.create_multipart_read_set_upload(
        sequenceStoreId=store["id"], sourceFileType="UBAM", subjectId="s", sampleId="x", name="b"
    )
    with pytest.raises(ClientError) as excinfo:
        omics.upload_read_set_part(
            sequenceStoreId=store["id"], uploadId=upload["uploadId"], partSource="SOURCE2",
            partNumber=1, payload=b"x",
        )  # fmt: skip
    assert error_of(excinfo) == ("ValidationException", 400)
    with pytest.raises(ClientError) as excinfo:
        omics.upload_read_set_part(
            sequenceStoreId=store["id"], uploadId=upload["uploadId"], partSource="SOURCE1",
            partNumber=10001, payload=b"x",
        )  # fmt: skip
    assert error_of(excinfo) == ("ValidationException", 400)


def test_oversized_part_is_refused(omics: Any, store: dict[str, Any]) -> None:
    upload = omics.create_multipart_read_set_upload(
        sequenceStoreId=store["id"], sourceFileType="UBAM", subjectId="s", sampleId="x", name="big"
    )
    with pytest.raises(ClientError) as excinfo:
        omics.upload_read_set_part(
            sequenceStoreId=store["id"], uploadId=upload["uploadId"], partSource="SOURCE1",
            partNumber=1, payload=b"\0" * (100 * 1024 * 1024 + 1),
        )  # fmt: skip
    assert error_of(excinfo) == ("ValidationException", 400)
    parts = omics.list_read_set_upload_parts(
        sequenceStoreId=store["id"], uploadId=upload["uploadId"], partSource="SOURCE1"
    )
    assert parts["parts"] == []


def test_abort_leaves_nothing_behind(service: RunningService, omics: Any, store: dict[str, Any]) -> None:
    upload = omics.create_multipart_read_set_upload(
        sequenceStoreId=store["id"], sourceFileType="FASTQ", subjectId="s", sampleId="x", name="gone"
    )
    omics.upload_read_set_part(
        sequenceStoreId=store["id"], uploadId=upload["uploadId"], partSource="SOURCE1",
        partNumber=1, payload=b"\x1f\x8b" + b"x" * 1000,
    )  # fmt: skip
    assert (service.data_dir / "uploads" / upload["uploadId"]).exists()
    omics.abort_multipart_read_set_upload(sequenceStoreId=store["id"], uploadId=upload["uploadId"])
    assert omics.list_multipart_read_set_uploads(sequenceStoreId=store["id"])["uploads"] == []
    assert not (service.data_dir / "uploads" / upload["uploadId"]).exists()
    assert omics.list_read_sets(sequenceStoreId=store["id"])["readSets"] == []
    with pytest.raises(ClientError) as excinfo:
        omics.list_read_set_upload_parts(
            sequenceStoreId=store["id"], uploadId=upload["uploadId"], partSource="SOURCE1"
        )
    assert error_of(excinfo) == ("ResourceNotFoundException", 404)


def test_upload_listing_paginates(omics: Any, store: dict[str, Any]) -> None:
    ids = [
        omics.create_multipart_read_set_upload(
            sequenceStoreId=store["id"], sourceFileType="UBAM", subjectId="s", sampleId="x", name=f"u{i}"
        )["uploadId"]
        for i in range(3)
    ]
    pages = omics.get_paginator("list_multipart_read_set_uploads").paginate(
        sequenceStoreId=store["id"], PaginationConfig={"PageSize": 1}
    )
    assert [u["uploadId"] for page in pages for u in page["uploads"]] == ids


def test_read_set_filters(
    service: RunningService, omics: Any, store: dict[str, Any], sample: SampleFiles
) -> None:
    sid = store["id"]
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    a = upload_file(omics, sid, {"SOURCE1": sample.fastq1}, "FASTQ", name="alpha", sampleId="S1",
                    subjectId="P1", generatedFrom="lab-a")  # fmt: skip
    b = upload_file(omics, sid, {"SOURCE1": sample.ubam}, "UBAM", name="beta", sampleId="S2",
                    subjectId="P1")  # fmt: skip
    bad = upload_file(omics, sid, {"SOURCE1": b"junk"}, "UBAM", name="gamma", sampleId="S2")
    service.drain()

    def ids(**filter_: Any) -> list[str]:
        return [r["id"] for r in omics.list_read_sets(sequenceStoreId=sid, filter=filter_)["readSets"]]

    assert ids() == [a, b, bad]
    assert ids(name="beta") == [b]
    assert ids(sampleId="S2") == [b, bad]
    assert ids(subjectId="P1") == [a, b]
    assert ids(generatedFrom="lab-a") == [a]
    assert ids(status="UPLOAD_FAILED") == [bad]
    assert ids(status="ACTIVE") == [a, b]
    assert ids(creationType="UPLOAD") == [a, b, bad]
    assert ids(creationType="IMPORT") == []
    assert ids(referenceArn="") == [a, b, bad]
    assert ids(createdAfter=before) == [a, b, bad]
    assert ids(createdBefore=before) == []
    pages = omics.get_paginator("list_read_sets").paginate(
        sequenceStoreId=sid, PaginationConfig={"PageSize": 2}
    )
    assert [r["id"] for page in pages for r in page["readSets"]] == [a, b, bad]


def test_batch_delete_reports_unknown_ids_and_store_delete_conflicts(
    service: RunningService, omics: Any, store: dict[str, Any], sample: SampleFiles
) -> None:
    sid = store["id"]
    rs = upload_file(omics, sid, {"SOURCE1": sample.fastq1}, "FASTQ")
    service.drain()
    with pytest.raises(ClientError) as excinfo:
        omics.delete_sequence_store(id=sid)
    assert error_of(excinfo) == ("ConflictException", 409)
    result = omics.batch_delete_read_set(sequenceStoreId=sid, ids=[rs, "1111111111"])
    assert [(e["id"], e["code"]) for e in result["errors"]] == [("1111111111", "ResourceNotFoundException")]
    assert omics.list_read_sets(sequenceStoreId=sid)["readSets"] == []
    assert not (service.data_dir / "blobs" / "readSet" / rs).exists()
    omics.delete_sequence_store(id=sid)


def test_sixteen_concurrent_clients(service: RunningService, store: dict[str, Any]) -> None:
    """16 threads upload and read back at once; every byte lands in its own read set."""
    omics = service.client(max_pool_connections=16)
    payloads = [
        gzip.compress("".join(f"@c{i}r{j}\nACGTACGTAC\n+\nIIIIIIIIII\n" for j in range(3000 + i)).encode())
        for i in range(16)
    ]
    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(
            lambda p: upload_file(omics, store["id"], {"SOURCE1": p}, "FASTQ", part_size=5_000), payloads
        ))  # fmt: skip
        service.drain()
        metas = list(pool.map(lambda i: omics.get_read_set_metadata(sequenceStoreId=store["id"], id=i), ids))
        bodies = list(pool.map(lambda i: download(omics, store["id"], i), ids))
    assert len(set(ids)) == 16
    assert [m["status"] for m in metas] == ["ACTIVE"] * 16
    assert [m["sequenceInformation"]["totalReadCount"] for m in metas] == [3000 + i for i in range(16)]
    assert bodies == payloads
