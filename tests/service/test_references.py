"""The service checks read sets against their reference as AWS does, the same for imports and uploads.

Each case goes in twice, the same bytes through a multipart upload and through an import job, and
must end the same way: ACTIVE and FINISHED, or UPLOAD_FAILED and FAILED with the same reason.
"""

from __future__ import annotations

import gzip
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pysam
import pytest
from botocore.exceptions import ClientError

from omicsfs.localservice.contigs import compute_contigs
from omicsfs.sample.data import SampleFiles
from tests.localservice import RunningService
from tests.service.alignments import Variants, make_variants
from tests.service.helpers import ROLE, error_of, import_reference, upload_file


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory, sample: SampleFiles) -> Variants:
    return make_variants(tmp_path_factory.mktemp("variants"), sample)


@pytest.fixture(scope="module")
def references(service: RunningService, sample: SampleFiles, variants: Variants) -> dict[str, str]:
    """Reference ARNs by role: the sample's own genome and its variants."""
    small = service.data_dir / "small.fasta"
    small.write_text(">small\n" + "ACGT" * 30 + "\n")
    files = {
        "sample": sample.reference,
        "superset": variants.superset_reference,
        "other": variants.other_reference,
        "renamed": variants.renamed_reference,
        "small": small,
    }
    return {role: import_reference(service, path, f"ref-{role}") for role, path in files.items()}


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str


def by_upload(
    service: RunningService, store_id: str, file_type: str, data: bytes, arn: str | None
) -> Outcome:
    omics = service.client()
    fields: dict[str, Any] = {"referenceArn": arn} if arn else {}
    read_set = upload_file(omics, store_id, {"SOURCE1": data}, file_type, **fields)
    service.drain()
    meta = omics.get_read_set_metadata(sequenceStoreId=store_id, id=read_set)
    assert meta["status"] in ("ACTIVE", "UPLOAD_FAILED"), meta
    return Outcome(meta["status"] == "ACTIVE", meta.get("statusMessage", ""))


def by_import(
    service: RunningService, store_id: str, file_type: str, data: bytes, arn: str | None
) -> Outcome:
    omics = service.client()
    key = f"imports-{uuid.uuid4().hex[:10]}/source"
    target = service.s3_root / "bucket" / key
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    source = {
        "sourceFiles": {"source1": f"s3://bucket/{key}"},
        "sourceFileType": file_type,
        "subjectId": "subject",
        "sampleId": "sample",
        **({"referenceArn": arn} if arn else {}),
    }
    started = omics.start_read_set_import_job(sequenceStoreId=store_id, roleArn=ROLE, sources=[source])
    service.drain()
    item = omics.get_read_set_import_job(sequenceStoreId=store_id, id=started["id"])["sources"][0]
    assert item["status"] in ("FINISHED", "FAILED"), item
    if item["status"] == "FAILED":
        assert "readSetId" not in item
    return Outcome(item["status"] == "FINISHED", item.get("statusMessage", ""))


CASES = [
    # (case, file type, source, reference role, accepted, fragment of the reason)
    ("bam-own-reference", "BAM", "bam", "sample", True, ""),
    ("cram-own-reference", "CRAM", "cram", "sample", True, ""),
    ("bam-subset-of-reference", "BAM", "bam", "superset", True, ""),
    ("cram-subset-of-reference", "CRAM", "cram", "superset", True, ""),
    ("bam-contigs-not-in-reference", "BAM", "bam", "small", False,
     "2 @SQ contigs are not in the reference: chr1 (LN 50000), chr2 (LN 30000)"),
    ("cram-contigs-not-in-reference", "CRAM", "cram", "small", False, "not in the reference: chr1"),
    ("bam-m5-matches-renamed-contigs", "BAM", "bam_with_m5", "renamed", True, ""),
    ("cram-m5-matches-renamed-contigs", "CRAM", "cram", "renamed", True, ""),  # htslib decodes by M5
    ("bam-no-m5-renamed-contigs", "BAM", "bam", "renamed", False, "not in the reference: chr1 (LN 50000)"),
    ("bam-same-names-other-m5", "BAM", "bam_with_wrong_m5", "sample", False, "not in the reference: chr1"),
    ("cram-m5-of-other-bases", "CRAM", "cram", "other", False, "not in the reference: chr1 (LN 50000, M5"),
    ("cram-without-m5-other-bases", "CRAM", "cram_without_m5", "other", False,
     "does not decode against its reference"),
    ("cram-without-m5-own-reference", "CRAM", "cram_without_m5", "sample", True, ""),
    ("bam-declared-ubam", "UBAM", "bam", None, False, "aligned BAM, not a uBAM"),
    ("ubam-with-aligned-record", "UBAM", "ubam_with_aligned_record", None, False,
     "record claims-aligned is aligned"),
    ("ubam-with-a-reference", "UBAM", "ubam", "sample", True, ""),
    ("plain-fastq", "FASTQ", "plain_fastq", None, False, "not gzip-compressed FASTQ"),
    ("gzip-fastq", "FASTQ", "fastq1", None, True, ""),
]  # fmt: skip


def _source(name: str, sample: SampleFiles, variants: Variants) -> bytes:
    if name == "plain_fastq":
        return gzip.decompress(sample.fastq1.read_bytes())
    path = getattr(sample, name, None) or getattr(variants, name)
    return Path(path).read_bytes()


@pytest.mark.parametrize(
    ("case", "file_type", "source", "role", "accepted", "reason"), CASES, ids=[c[0] for c in CASES]
)
def test_import_and_upload_check_the_same_bytes_the_same_way(
    service: RunningService,
    store: dict[str, Any],
    sample: SampleFiles,
    variants: Variants,
    references: dict[str, str],
    case: str,
    file_type: str,
    source: str,
    role: str | None,
    accepted: bool,
    reason: str,
) -> None:
    data = _source(source, sample, variants)
    arn = references[role] if role else None
    uploaded = by_upload(service, store["id"], file_type, data, arn)
    imported = by_import(service, store["id"], file_type, data, arn)
    assert uploaded.ok == imported.ok == accepted, (uploaded, imported)
    assert reason in uploaded.message
    assert reason in imported.message
    listed = service.client().list_read_sets(sequenceStoreId=store["id"])["readSets"]
    # An import that failed made no read set; an upload that failed stays listed as UPLOAD_FAILED.
    assert len(listed) == (2 if accepted else 1)


@pytest.mark.parametrize("file_type", ["BAM", "CRAM"])
def test_aligned_read_sets_need_a_reference_arn_on_upload_and_import(
    omics: Any, store: dict[str, Any], file_type: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        omics.create_multipart_read_set_upload(
            sequenceStoreId=store["id"], sourceFileType=file_type, subjectId="s", sampleId="x", name="no-ref"
        )
    assert error_of(excinfo) == ("ValidationException", 400)
    assert "referenceArn" in excinfo.value.response["Error"]["Message"]
    source = {
        "sourceFiles": {"source1": "s3://bucket/anything.bam"},
        "sourceFileType": file_type,
        "subjectId": "s",
        "sampleId": "x",
    }
    with pytest.raises(ClientError) as excinfo:
        omics.start_read_set_import_job(sequenceStoreId=store["id"], roleArn=ROLE, sources=[source])
    assert error_of(excinfo) == ("ValidationException", 400)
    assert "sources[0]" in excinfo.value.response["Error"]["Message"]
    assert omics.list_multipart_read_set_uploads(sequenceStoreId=store["id"])["uploads"] == []
    assert omics.list_read_set_import_jobs(sequenceStoreId=store["id"])["importJobs"] == []


def test_a_reference_imported_before_contigs_were_kept_still_checks(
    tmp_path: Path, sample: SampleFiles
) -> None:
    """A data dir from before this check has references without their contig list: it is
    computed from the FASTA at the first aligned read set and kept."""
    service = RunningService(tmp_path / "data")
    try:
        arn = import_reference(service, sample.reference)
        ref_id = arn.rsplit("/", 1)[1]
        contigs = service.data_dir / "blobs" / "reference" / ref_id / "contigs"
        kept = contigs.read_text()
        contigs.unlink()
        omics = service.client()
        store_id = omics.create_sequence_store(name="legacy")["id"]
        assert by_upload(service, store_id, "CRAM", sample.cram.read_bytes(), arn).ok
        assert contigs.read_text() == kept
    finally:
        service.stop()


def test_an_upload_whose_reference_was_deleted_meanwhile_fails(tmp_path: Path, sample: SampleFiles) -> None:
    service = RunningService(tmp_path / "data")
    try:
        arn = import_reference(service, sample.reference)
        omics = service.client()
        store_id = omics.create_sequence_store(name="gone")["id"]
        upload = omics.create_multipart_read_set_upload(
            sequenceStoreId=store_id, sourceFileType="BAM", subjectId="s", sampleId="x", name="late",
            referenceArn=arn,
        )  # fmt: skip
        ref_store, ref_id = arn.split("referenceStore/")[1].split("/reference/")
        omics.delete_reference(referenceStoreId=ref_store, id=ref_id)  # no read set uses it yet
        checksum = omics.upload_read_set_part(
            sequenceStoreId=store_id, uploadId=upload["uploadId"], partSource="SOURCE1", partNumber=1,
            payload=sample.bam.read_bytes(),
        )["checksum"]  # fmt: skip
        read_set = omics.complete_multipart_read_set_upload(
            sequenceStoreId=store_id, uploadId=upload["uploadId"],
            parts=[{"partNumber": 1, "partSource": "SOURCE1", "checksum": checksum}],
        )["readSetId"]  # fmt: skip
        service.drain()
        meta = omics.get_read_set_metadata(sequenceStoreId=store_id, id=read_set)
        assert meta["status"] == "UPLOAD_FAILED"
        assert "reference" in meta["statusMessage"]
    finally:
        service.stop()


def test_contig_md5s_are_the_ones_samtools_writes_as_m5(tmp_path: Path) -> None:
    """Lower-case (soft-masked) bases, Ns, a short last line and CRLF line ends: the MD5 is of the
    upper-cased bases alone, as ``samtools dict`` computes M5."""
    fasta = tmp_path / "masked.fasta"
    fasta.write_bytes(
        b">one first\r\n" + b"ACGTacgtNN" * 6 + b"\r\n" + b"acgtAC\r\n>two\r\n" + b"NNNNnnnnGATTACA\r\n"
    )
    pysam.faidx(str(fasta))
    computed = {c.name: (c.length, c.md5) for c in compute_contigs(fasta)}
    dictionary = subprocess.run(["samtools", "dict", str(fasta)], check=True, capture_output=True, text=True)
    expected = {}
    for line in dictionary.stdout.splitlines():
        if line.startswith("@SQ"):
            tags = dict(field.split(":", 1) for field in line.split("\t")[1:])
            expected[tags["SN"]] = (int(tags["LN"]), tags["M5"])
    assert computed == expected == {"one": (66, computed["one"][1]), "two": (15, computed["two"][1])}
