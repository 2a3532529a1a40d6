"""What the mount must show, fetched straight from the service API (the ground truth)."""

from __future__ import annotations

from typing import Any

from omicsfs.sample.load import LoadedSample
from tests.service.helpers import download

#: File name in the store folder -> (read set key in LoadedSample, service file).
READ_SET_FILES = {
    "NA12878-aligned.bam": ("bam", "SOURCE1"),
    "NA12878-aligned.bam.bai": ("bam", "INDEX"),
    "NA12878-aligned.cram": ("cram", "SOURCE1"),
    "NA12878-aligned.cram.crai": ("cram", "INDEX"),
    "NA12878-reads_1.fastq.gz": ("fastq", "SOURCE1"),
    "NA12878-reads_2.fastq.gz": ("fastq", "SOURCE2"),
    "NA12878-unaligned.bam": ("ubam", "SOURCE1"),
}
REFERENCE_FILES = {"demo-genome.fasta": "SOURCE", "demo-genome.fasta.fai": "INDEX"}

#: Keyed by the service and the object too: tests run against several services, in any order.
_cache: dict[tuple[str, str, str, str], bytes] = {}


def read_set_bytes(omics: Any, loaded: LoadedSample, name: str) -> bytes:
    key, file = READ_SET_FILES[name]
    read_set = loaded.read_sets[key]
    entry = (omics.meta.endpoint_url, loaded.sequence_store_id, read_set, file)
    if entry not in _cache:
        _cache[entry] = download(omics, loaded.sequence_store_id, read_set, file)
    return _cache[entry]


def reference_bytes(omics: Any, loaded: LoadedSample, name: str) -> bytes:
    file = REFERENCE_FILES[name]
    entry = (omics.meta.endpoint_url, loaded.reference_store_id, loaded.reference_id, file)
    if entry not in _cache:
        meta = omics.get_reference_metadata(
            referenceStoreId=loaded.reference_store_id, id=loaded.reference_id
        )
        parts = []
        for number in range(1, meta["files"][file.lower()]["totalParts"] + 1):
            parts.append(
                omics.get_reference(
                    referenceStoreId=loaded.reference_store_id,
                    id=loaded.reference_id,
                    file=file,
                    partNumber=number,
                )["payload"].read()
            )
        _cache[entry] = b"".join(parts)
    return _cache[entry]
